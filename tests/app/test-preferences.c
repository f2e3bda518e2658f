/* test-preferences.c - Preferences: the server address row and the server-url key */
#include "config.h"

#include "app-test-util.h"
#include "magpie-preferences-window.h"

#define DEFAULT_URL "http://127.0.0.1:8080"

typedef struct {
  GSettings               *settings;
  MagpiePreferencesWindow *window;
  AdwEntryRow             *row;
} Fixture;

static void
fixture_set_up (Fixture       *f,
                gconstpointer  data)
{
  f->settings = g_settings_new (APPLICATION_ID);
  g_settings_reset (f->settings, "server-url");
  f->window = magpie_preferences_window_new (f->settings, NULL);
  f->row = ADW_ENTRY_ROW (gtk_widget_get_template_child (GTK_WIDGET (f->window),
                                                         MAGPIE_TYPE_PREFERENCES_WINDOW,
                                                         "server_url_row"));
  g_assert_nonnull (f->row);
  gtk_window_present (GTK_WINDOW (f->window));
}

static void
fixture_tear_down (Fixture       *f,
                   gconstpointer  data)
{
  app_test_close_all ();
  g_settings_reset (f->settings, "server-url");
  g_clear_object (&f->settings);
}

static void
assert_saved_url (Fixture    *f,
                  const char *expected)
{
  g_autofree char *url = g_settings_get_string (f->settings, "server-url");

  g_assert_cmpstr (url, ==, expected);
}

static gboolean
row_focused (gpointer user_data)
{
  return gtk_widget_has_css_class (user_data, "focused");
}

/* As a person types: the row must have the focus for its apply button to appear. */
static void
type_text (Fixture    *f,
           const char *text)
{
  gtk_widget_grab_focus (GTK_WIDGET (f->row));
  g_assert_true (app_test_wait (row_focused, f->row, 5000));
  gtk_editable_set_text (GTK_EDITABLE (f->row), text);
}

/* What pressing Enter in the row does: its text field's key binding emits "activate". */
static void
press_enter (Fixture *f)
{
  GtkEditable *text = gtk_editable_get_delegate (GTK_EDITABLE (f->row));

  g_assert_true (GTK_IS_TEXT (text));
  g_signal_emit_by_name (text, "activate");
}

static void
test_reflects_setting (Fixture       *f,
                       gconstpointer  data)
{
  g_assert_cmpstr (gtk_editable_get_text (GTK_EDITABLE (f->row)), ==, DEFAULT_URL);

  g_settings_set_string (f->settings, "server-url", "https://magpie.example.org/");
  g_assert_cmpstr (gtk_editable_get_text (GTK_EDITABLE (f->row)), ==,
                   "https://magpie.example.org/");
}

static void
test_writes_setting (Fixture       *f,
                     gconstpointer  data)
{
  type_text (f, "http://192.0.2.7:9000");
  /* Typing alone saves nothing: a half-typed address must not reach the connection. */
  assert_saved_url (f, DEFAULT_URL);

  press_enter (f);
  assert_saved_url (f, "http://192.0.2.7:9000");
  g_assert_false (gtk_widget_has_css_class (GTK_WIDGET (f->row), "error"));

  /* The apply button does the same; surrounding blanks from a paste are dropped. */
  type_text (f, "  https://photos.example.net/magpie ");
  g_signal_emit_by_name (f->row, "apply");
  assert_saved_url (f, "https://photos.example.net/magpie");
}

static void
test_invalid_not_saved (Fixture       *f,
                        gconstpointer  data)
{
  const char *invalid[] = {
    "ftp://example.org",
    "example.org:8080",
    "http://",
    "",
    "https://example.org/?q=1",
  };

  for (gsize i = 0; i < G_N_ELEMENTS (invalid); i++)
    {
      type_text (f, invalid[i]);
      g_assert_false (gtk_widget_has_css_class (GTK_WIDGET (f->row), "error"));
      press_enter (f);
      assert_saved_url (f, DEFAULT_URL);
      g_assert_true (gtk_widget_has_css_class (GTK_WIDGET (f->row), "error"));
    }

  /* Editing again clears the error state; a good address is then saved. */
  type_text (f, "http://[::1]:8080");
  g_assert_false (gtk_widget_has_css_class (GTK_WIDGET (f->row), "error"));
  press_enter (f);
  assert_saved_url (f, "http://[::1]:8080");
}

static void
test_threshold (Fixture       *f,
                gconstpointer  data)
{
  GtkAdjustment *adjustment;

  adjustment = GTK_ADJUSTMENT (gtk_widget_get_template_child (GTK_WIDGET (f->window),
                                                              MAGPIE_TYPE_PREFERENCES_WINDOW,
                                                              "threshold_adjustment"));
  g_assert_nonnull (adjustment);
  /* The key holds a fraction, the row shows percent, both ways. */
  g_assert_cmpfloat_with_epsilon (gtk_adjustment_get_value (adjustment),
                                  g_settings_get_double (f->settings, "tag-threshold") * 100.0,
                                  1e-9);
  gtk_adjustment_set_value (adjustment, 35.0);
  g_assert_cmpfloat_with_epsilon (g_settings_get_double (f->settings, "tag-threshold"), 0.35,
                                  1e-9);
  g_settings_set_double (f->settings, "tag-threshold", 0.6);
  g_assert_cmpfloat_with_epsilon (gtk_adjustment_get_value (adjustment), 60.0, 1e-9);
  g_settings_reset (f->settings, "tag-threshold");
}

int
main (int   argc,
      char *argv[])
{
  g_autoptr(MagpieApplication) app = NULL;
  g_autofree char *home = NULL;
  int status;

  g_test_init (&argc, &argv, NULL);
  home = app_test_isolate_dirs ();

  app = app_test_application_new ();

  g_test_add ("/app/preferences/reflects-setting", Fixture, NULL,
              fixture_set_up, test_reflects_setting, fixture_tear_down);
  g_test_add ("/app/preferences/writes-setting", Fixture, NULL,
              fixture_set_up, test_writes_setting, fixture_tear_down);
  g_test_add ("/app/preferences/invalid-not-saved", Fixture, NULL,
              fixture_set_up, test_invalid_not_saved, fixture_tear_down);

  g_test_add ("/app/preferences/threshold", Fixture, NULL,
              fixture_set_up, test_threshold, fixture_tear_down);

  status = g_test_run ();
  mp_test_rm_rf (home);
  return status;
}
