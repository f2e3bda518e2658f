/* test-window.c - the main window: its pages, its state, the windows its actions open */
#include "config.h"

#include <string.h>

#include "app-test-util.h"
#include "magpie-preferences-window.h"
#include "magpie-window.h"

static MagpieApplication *app;

static gboolean
window_mapped (gpointer user_data)
{
  return gtk_widget_get_mapped (user_data);
}

static MagpieWindow *
activate_window (void)
{
  MagpieWindow *window;

  g_application_activate (G_APPLICATION (app));
  window = MAGPIE_WINDOW (gtk_application_get_active_window (GTK_APPLICATION (app)));
  g_assert_nonnull (window);
  g_assert_true (app_test_wait (window_mapped, window, 5000));
  return window;
}

static void
test_pages (void)
{
  MagpieWindow *window = activate_window ();
  AdwViewStack *stack;
  g_autoptr(GtkSelectionModel) pages = NULL;
  const char *names[] = { "gallery", "draw" };
  GType types[2];

  types[0] = MAGPIE_TYPE_GALLERY_PAGE;
  types[1] = MAGPIE_TYPE_DRAW_PAGE;
  stack = ADW_VIEW_STACK (gtk_widget_get_template_child (GTK_WIDGET (window), MAGPIE_TYPE_WINDOW,
                                                         "stack"));
  g_assert_nonnull (stack);
  pages = adw_view_stack_get_pages (stack);
  g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (pages)), ==, G_N_ELEMENTS (names));

  for (guint i = 0; i < G_N_ELEMENTS (names); i++)
    {
      g_autoptr(AdwViewStackPage) page = g_list_model_get_item (G_LIST_MODEL (pages), i);
      GtkWidget *child = adw_view_stack_page_get_child (page);

      g_assert_cmpstr (adw_view_stack_page_get_name (page), ==, names[i]);
      g_assert_nonnull (adw_view_stack_page_get_title (page));
      g_assert_nonnull (adw_view_stack_page_get_icon_name (page));
      g_assert_true (G_TYPE_CHECK_INSTANCE_TYPE (child, types[i]));
    }
  g_assert_true (magpie_window_get_gallery_page (window) ==
                 MAGPIE_GALLERY_PAGE (adw_view_stack_get_child_by_name (stack, "gallery")));
  g_assert_true (magpie_gallery_page_get_library (magpie_window_get_gallery_page (window)) ==
                 magpie_application_get_library (app));

  g_assert_cmpstr (adw_view_stack_get_visible_child_name (stack), ==, "gallery");
  adw_view_stack_set_visible_child_name (stack, "draw");
  g_assert_cmpstr (adw_view_stack_get_visible_child_name (stack), ==, "draw");

  app_test_close_all ();
}

static void
test_state_saved (void)
{
  g_autoptr(GSettings) settings = g_settings_new (APPLICATION_ID);
  MagpieWindow *window = activate_window ();
  int width = 0;
  int height = 0;

  gtk_window_set_default_size (GTK_WINDOW (window), 720, 480);
  gtk_window_close (GTK_WINDOW (window));
  app_test_close_all ();

  g_assert_cmpint (g_settings_get_int (settings, "window-width"), ==, 720);
  g_assert_cmpint (g_settings_get_int (settings, "window-height"), ==, 480);
  g_assert_false (g_settings_get_boolean (settings, "window-maximized"));

  window = activate_window ();
  gtk_window_get_default_size (GTK_WINDOW (window), &width, &height);
  g_assert_cmpint (width, ==, 720);
  g_assert_cmpint (height, ==, 480);

  app_test_close_all ();
  g_settings_reset (settings, "window-width");
  g_settings_reset (settings, "window-height");
}

static gboolean
window_of_type_shown (gpointer user_data)
{
  GtkWindow *window = app_test_find_window (GPOINTER_TO_SIZE (user_data));

  return window != NULL && gtk_widget_get_mapped (GTK_WIDGET (window));
}

static void
test_about (void)
{
  MagpieWindow *window = activate_window ();
  AdwAboutWindow *about;
  g_autofree char *website = NULL;
  g_autofree char *issue_url = NULL;

  g_action_group_activate_action (G_ACTION_GROUP (app), "about", NULL);
  g_assert_true (app_test_wait (window_of_type_shown, GSIZE_TO_POINTER (ADW_TYPE_ABOUT_WINDOW),
                                5000));
  about = ADW_ABOUT_WINDOW (app_test_find_window (ADW_TYPE_ABOUT_WINDOW));
  g_assert_true (gtk_window_get_transient_for (GTK_WINDOW (about)) == GTK_WINDOW (window));
  g_assert_cmpstr (adw_about_window_get_application_name (about), ==, "Magpie");
  g_assert_cmpstr (adw_about_window_get_application_icon (about), ==, APPLICATION_ID);
  g_assert_cmpstr (adw_about_window_get_version (about), ==, PACKAGE_VERSION);
  g_assert_cmpstr (adw_about_window_get_developer_name (about), ==, "The Magpie developers");
  g_assert_cmpint (adw_about_window_get_license_type (about), ==, GTK_LICENSE_GPL_3_0);
  /* No made-up addresses: the project has not published any yet. */
  g_object_get (about, "website", &website, "issue-url", &issue_url, NULL);
  g_assert_true (website == NULL || *website == '\0');
  g_assert_true (issue_url == NULL || *issue_url == '\0');

  app_test_close_all ();
}

static void
test_shortcuts (void)
{
  MagpieWindow *window = activate_window ();
  g_auto(GStrv) help_accels = NULL;
  g_auto(GStrv) quit_accels = NULL;
  g_auto(GStrv) preferences_accels = NULL;
  g_auto(GStrv) add_accels = NULL;
  g_auto(GStrv) search_accels = NULL;

  help_accels = gtk_application_get_accels_for_action (GTK_APPLICATION (app),
                                                       "win.show-help-overlay");
  quit_accels = gtk_application_get_accels_for_action (GTK_APPLICATION (app), "app.quit");
  preferences_accels = gtk_application_get_accels_for_action (GTK_APPLICATION (app),
                                                              "app.preferences");
  g_assert_true (g_strv_contains ((const char * const *) help_accels, "<Control>question"));
  g_assert_true (g_strv_contains ((const char * const *) quit_accels, "<Control>q"));
  g_assert_true (g_strv_contains ((const char * const *) preferences_accels, "<Control>comma"));
  add_accels = gtk_application_get_accels_for_action (GTK_APPLICATION (app), "window.add-photos");
  search_accels = gtk_application_get_accels_for_action (GTK_APPLICATION (app), "window.search");
  g_assert_true (g_strv_contains ((const char * const *) add_accels, "<Control>o"));
  g_assert_true (g_strv_contains ((const char * const *) search_accels, "<Control>f"));

  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (window), "win.show-help-overlay", NULL));
  g_assert_true (app_test_wait (window_of_type_shown,
                                GSIZE_TO_POINTER (GTK_TYPE_SHORTCUTS_WINDOW), 5000));

  app_test_close_all ();
}

static void
test_preferences_action (void)
{
  MagpieWindow *window = activate_window ();
  GtkWindow *preferences;
  guint n_preferences = 0;

  g_action_group_activate_action (G_ACTION_GROUP (app), "preferences", NULL);
  g_assert_true (app_test_wait (window_of_type_shown,
                                GSIZE_TO_POINTER (MAGPIE_TYPE_PREFERENCES_WINDOW), 5000));
  preferences = app_test_find_window (MAGPIE_TYPE_PREFERENCES_WINDOW);
  g_assert_true (gtk_window_get_transient_for (preferences) == GTK_WINDOW (window));

  /* Asking again brings the same window back rather than opening a second. */
  g_action_group_activate_action (G_ACTION_GROUP (app), "preferences", NULL);
  for (GList *l = gtk_application_get_windows (GTK_APPLICATION (app)); l; l = l->next)
    n_preferences += MAGPIE_IS_PREFERENCES_WINDOW (l->data);
  g_assert_cmpuint (n_preferences, ==, 1);

  app_test_close_all ();
}

typedef struct {
  GtkWidget  *indicator;
  const char *text;
} TooltipWait;

static gboolean
tooltip_contains (gpointer user_data)
{
  TooltipWait *wait = user_data;
  const char *tooltip = gtk_widget_get_tooltip_text (wait->indicator);

  return tooltip != NULL && strstr (tooltip, wait->text) != NULL;
}

static void
test_connection_indicator (void)
{
  g_autoptr(GSettings) settings = g_settings_new (APPLICATION_ID);
  g_autoptr(AppTestServer) server = app_test_server_start ();
  g_autofree char *online = NULL;
  MagpieWindow *window;
  TooltipWait wait;

  window = activate_window ();
  wait.indicator = GTK_WIDGET (gtk_widget_get_template_child (GTK_WIDGET (window),
                                                              MAGPIE_TYPE_WINDOW,
                                                              "connection_image"));
  g_assert_nonnull (wait.indicator);

  /* The header follows the setting: a new address is checked at once, not in 15 s. */
  g_settings_set_string (settings, "server-url", server->url);
  online = g_strdup_printf ("Connected to magpied %s at %s", PACKAGE_VERSION, server->url);
  wait.text = online;
  g_assert_true (app_test_wait (tooltip_contains, &wait, 5000));
  g_assert_true (gtk_widget_has_css_class (wait.indicator, "success"));

  app_test_server_stop (server);
  magpie_connection_refresh (magpie_application_get_connection (app));
  wait.text = "Server unreachable at";
  g_assert_true (app_test_wait (tooltip_contains, &wait, 5000));
  g_assert_true (gtk_widget_has_css_class (wait.indicator, "error"));
  g_assert_false (gtk_widget_has_css_class (wait.indicator, "success"));

  app_test_close_all ();
  g_settings_reset (settings, "server-url");
}

static gboolean
no_windows (gpointer user_data)
{
  return gtk_application_get_windows (GTK_APPLICATION (app)) == NULL;
}

static void
test_quit_action (void)
{
  g_autoptr(GSettings) settings = g_settings_new (APPLICATION_ID);
  MagpieWindow *window = activate_window ();

  /* Quitting closes the windows, so their size is saved as on any close. */
  gtk_window_set_default_size (GTK_WINDOW (window), 640, 400);
  g_action_group_activate_action (G_ACTION_GROUP (app), "quit", NULL);
  g_assert_true (app_test_wait (no_windows, NULL, 5000));
  g_assert_cmpint (g_settings_get_int (settings, "window-width"), ==, 640);

  app_test_close_all ();
  g_settings_reset (settings, "window-width");
  g_settings_reset (settings, "window-height");
}

int
main (int   argc,
      char *argv[])
{
  int status;
  g_autofree char *home = NULL;

  g_test_init (&argc, &argv, NULL);
  home = app_test_isolate_dirs ();

  app = app_test_application_new ();

  g_test_add_func ("/app/window/pages", test_pages);
  g_test_add_func ("/app/window/state-saved", test_state_saved);
  g_test_add_func ("/app/window/about", test_about);
  g_test_add_func ("/app/window/shortcuts", test_shortcuts);
  g_test_add_func ("/app/window/preferences-action", test_preferences_action);
  g_test_add_func ("/app/window/quit-action", test_quit_action);
  g_test_add_func ("/app/window/connection-indicator", test_connection_indicator);

  status = g_test_run ();
  g_clear_object (&app);
  mp_test_rm_rf (home);
  return status;
}
