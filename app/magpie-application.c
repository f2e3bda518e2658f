/* magpie-application.c - the Magpie application: actions, command line, the shared connection */
#define G_LOG_DOMAIN "magpie-application"

#include "config.h"

#include "magpie-application.h"

#include <glib/gi18n.h>

#include "magpie-preferences-window.h"
#include "magpie-resources.h"
#include "magpie-window.h"

/* The exit status for an option value that cannot be used: the same as GOptionContext gives
 * for options it cannot parse. */
#define MAGPIE_EXIT_USAGE 2

struct _MagpieApplication {
  AdwApplication    parent_instance;

  GSettings        *settings;
  MagpieConnection *connection;
  MagpieLibrary    *library;
  MagpieDigits     *digits;
  SoupSession      *session;
  MagpieIdentity   *identity;
  MagpieCredentials *credentials;
  MagpieUploader   *uploader;
  MagpieEvents     *events;
  MagpieModels     *models;
  char             *library_error;   /* why the library could not be opened, once it is known */
  gboolean          library_error_shown;
};

G_DEFINE_FINAL_TYPE (MagpieApplication, magpie_application, ADW_TYPE_APPLICATION)

static const GOptionEntry option_entries[] = {
  { "server-url", 0, 0, G_OPTION_ARG_STRING, NULL,
    N_("Use this magpied server for this run instead of the one in Preferences"), N_("URL") },
  { "version", 0, 0, G_OPTION_ARG_NONE, NULL, N_("Show the version and exit"), NULL },
  { G_OPTION_REMAINING, 0, 0, G_OPTION_ARG_FILENAME_ARRAY, NULL, NULL, N_("[FILE…]") },
  { NULL }
};

/* For this run only: the connection stops following the setting, which keeps its value. */
static void
apply_server_url_override (MagpieApplication *self,
                           const char        *url)
{
  g_settings_unbind (self->connection, "server-url");
  magpie_connection_set_server_url (self->connection, url);
}

/* The first window of @type, or NULL: the main window rather than whichever dialog had the
 * focus last, or the one preferences window there should be. */
static GtkWindow *
find_window (MagpieApplication *self,
             GType              type)
{
  for (GList *l = gtk_application_get_windows (GTK_APPLICATION (self)); l != NULL; l = l->next)
    if (G_TYPE_CHECK_INSTANCE_TYPE (l->data, type))
      return l->data;
  return NULL;
}

static int
magpie_application_handle_local_options (GApplication *application,
                                         GVariantDict *options)
{
  g_autoptr(GError) error = NULL;
  const char *url = NULL;

  if (g_variant_dict_contains (options, "version"))
    {
      g_print ("magpie %s\n", PACKAGE_VERSION);
      return EXIT_SUCCESS;
    }

  /* Checked here, in the process that was started, so a mistake is reported where it was
   * made and fails fast, whether or not another instance is already running. */
  if (g_variant_dict_lookup (options, "server-url", "&s", &url) &&
      !magpie_connection_check_url (url, &error))
    {
      /* Translators: %s is why the address cannot be used */
      g_printerr (_("magpie: cannot use --server-url: %s\n"), error->message);
      return MAGPIE_EXIT_USAGE;
    }

  return -1;
}

static int
magpie_application_command_line (GApplication            *application,
                                 GApplicationCommandLine *command_line)
{
  MagpieApplication *self = MAGPIE_APPLICATION (application);
  GVariantDict *options = g_application_command_line_get_options_dict (command_line);
  const char *url = NULL;

  g_autofree const char **paths = NULL;
  g_autoptr(GPtrArray) files = g_ptr_array_new_with_free_func (g_object_unref);

  if (g_variant_dict_lookup (options, "server-url", "&s", &url))
    apply_server_url_override (self, url);

  g_application_activate (application);

  /* Relative to where `magpie FILE…` was typed, which may not be where the primary instance
   * runs. */
  if (g_variant_dict_lookup (options, G_OPTION_REMAINING, "^a&ay", &paths))
    for (guint i = 0; paths[i] != NULL; i++)
      g_ptr_array_add (files, g_application_command_line_create_file_for_arg (command_line,
                                                                             paths[i]));
  if (files->len > 0)
    magpie_window_import (MAGPIE_WINDOW (find_window (self, MAGPIE_TYPE_WINDOW)),
                          (GFile **) files->pdata, files->len);
  return EXIT_SUCCESS;
}

/* Files opened with Magpie from a file manager or another application. */
static void
magpie_application_open (GApplication  *application,
                         GFile        **files,
                         int            n_files,
                         const char    *hint)
{
  MagpieApplication *self = MAGPIE_APPLICATION (application);

  g_application_activate (application);
  magpie_window_import (MAGPIE_WINDOW (find_window (self, MAGPIE_TYPE_WINDOW)), files, n_files);
}

/* The library could not be opened (a newer Magpie's, a damaged disk): say so once, in a
 * dialog over the main window, in plain words; the photos themselves are left as they are. */
static void
show_library_error (MagpieApplication *self)
{
  GtkWindow *window = find_window (self, MAGPIE_TYPE_WINDOW);
  GtkWidget *dialog;

  if (self->library_error == NULL || self->library_error_shown || window == NULL)
    return;
  self->library_error_shown = TRUE;
  dialog = adw_message_dialog_new (window, _("Cannot Open Your Photo Library"), NULL);
  adw_message_dialog_format_body (ADW_MESSAGE_DIALOG (dialog),
                                  /* Translators: %s is the reason, e.g. "… was written by a
                                   * newer Magpie …" */
                                  _("%s\n\nNothing was changed or removed. Photos you add now "
                                    "cannot be kept until this is resolved."),
                                  self->library_error);
  adw_message_dialog_add_response (ADW_MESSAGE_DIALOG (dialog), "close", _("_Close"));
  gtk_window_present (GTK_WINDOW (dialog));
}

static void
magpie_application_activate (GApplication *application)
{
  MagpieApplication *self = MAGPIE_APPLICATION (application);
  GtkWindow *window = find_window (self, MAGPIE_TYPE_WINDOW);

  if (window == NULL)
    window = GTK_WINDOW (magpie_window_new (self));
  gtk_window_present (window);
  show_library_error (self);
}

static void
quit_action_cb (GSimpleAction *action,
                GVariant      *parameter,
                gpointer       user_data)
{
  MagpieApplication *self = user_data;
  g_autoptr(GList) windows = NULL;

  /* Closing rather than quitting lets each window save its state in close-request. */
  windows = g_list_copy (gtk_application_get_windows (GTK_APPLICATION (self)));
  for (GList *l = windows; l != NULL; l = l->next)
    gtk_window_close (l->data);
}

static void
preferences_action_cb (GSimpleAction *action,
                       GVariant      *parameter,
                       gpointer       user_data)
{
  MagpieApplication *self = user_data;
  GtkWindow *preferences = find_window (self, MAGPIE_TYPE_PREFERENCES_WINDOW);

  /* One preferences window at a time: a second would show the same settings twice. */
  if (preferences == NULL)
    {
      preferences = GTK_WINDOW (magpie_preferences_window_new (self->settings, self->identity));
      gtk_window_set_transient_for (preferences, find_window (self, MAGPIE_TYPE_WINDOW));
      gtk_window_set_application (preferences, GTK_APPLICATION (self));
    }
  gtk_window_present (preferences);
}

static void
about_action_cb (GSimpleAction *action,
                 GVariant      *parameter,
                 gpointer       user_data)
{
  MagpieApplication *self = user_data;
  GtkWindow *parent = find_window (self, MAGPIE_TYPE_WINDOW);

  /* No website or issue tracker is named: the project has none published yet, and a made-up
   * address would send people nowhere. */
  adw_show_about_window (parent,
                         "application-name", _("Magpie"),
                         "application-icon", APPLICATION_ID,
                         "version", PACKAGE_VERSION,
                         "developer-name", _("The Magpie developers"),
                         "copyright", _("© 2026 The Magpie developers"),
                         "license-type", GTK_LICENSE_GPL_3_0,
                         "comments", _("A photo gallery that sees"),
                         NULL);
}

static const GActionEntry app_actions[] = {
  { "quit", quit_action_cb },
  { "preferences", preferences_action_cb },
  { "about", about_action_cb },
};

static void
library_loaded_cb (GObject      *object,
                   GAsyncResult *result,
                   gpointer      user_data)
{
  g_autoptr(MagpieApplication) self = user_data;
  g_autoptr(GError) error = NULL;

  if (magpie_library_load_finish (MAGPIE_LIBRARY (object), result, &error))
    return;
  /* Not a programming error but a state of the disk: the log and a dialog, no warning. */
  g_message ("Cannot load the photo library: %s", error->message);
  self->library_error = g_strdup (error->message);
  show_library_error (self);
}

/* The library lives in the XDG data dir (thumbnails in the cache dir) and loads in the
 * background: the window is up before a single row is read. A photo model named in the
 * settings tags photos on this device; otherwise setup_uploads() has MagpieModels choose. */
static void
setup_library (MagpieApplication *self)
{
  g_autofree char *data_dir = g_build_filename (g_get_user_data_dir (), "magpie", NULL);
  g_autofree char *cache_dir = g_build_filename (g_get_user_cache_dir (), "magpie", NULL);
  g_autofree char *configured = g_settings_get_string (self->settings, "photo-model");
  g_autoptr(MagpieTagger) tagger = NULL;

  self->library = magpie_library_new (data_dir, cache_dir);
  if (*configured != '\0')
    {
      g_autofree char *model = magpie_tagger_find_model (configured, "photos.onnx");

      if (model == NULL)
        g_message ("The photo model %s from the settings is not there", configured);
      tagger = magpie_tagger_new (model);
      magpie_library_set_tagger (self->library, tagger);
    }
  magpie_library_load_async (self->library, NULL, library_loaded_cb, g_object_ref (self));
}

/* The digit model is found now and loaded by the first stroke. */
static void
setup_digits (MagpieApplication *self)
{
  g_autofree char *configured = g_settings_get_string (self->settings, "digit-model");
  g_autofree char *model = magpie_tagger_find_model (configured, "digits.onnx");

  if (model != NULL)
    self->digits = magpie_digits_new (model);
  else
    g_info ("No digit model found; the Draw page says so");
}

/* Uploads start by themselves whenever the server is reachable; nothing here waits for it. */
static void
setup_uploads (MagpieApplication *self)
{
  self->session = soup_session_new_with_options ("user-agent", "magpie/" PACKAGE_VERSION,
                                                 NULL);
  self->identity = magpie_identity_new (self->session);
  self->credentials = magpie_credentials_new (self->session, self->identity);
  self->uploader = magpie_uploader_new (self->session, self->library, self->connection,
                                        self->credentials);
  self->events = magpie_events_new (self->session, self->library, self->connection,
                                    self->credentials);
  /* The bundled photo model, or a newer one the server offered, unless the settings name
   * one: then that is what people want, and it is not replaced. */
  if (magpie_library_get_tagger (self->library) == NULL)
    {
      g_autofree char *data_dir = g_build_filename (g_get_user_data_dir (), "magpie", NULL);
      g_autofree char *bundled = magpie_tagger_find_model (NULL, "photos.onnx");

      self->models = magpie_models_new (self->session, self->connection, self->credentials,
                                        self->library, data_dir, bundled);
    }
}

static void
magpie_application_startup (GApplication *application)
{
  MagpieApplication *self = MAGPIE_APPLICATION (application);
  static const char *quit_accels[] = { "<Control>q", NULL };
  static const char *preferences_accels[] = { "<Control>comma", NULL };
  static const char *add_photos_accels[] = { "<Control>o", NULL };
  static const char *search_accels[] = { "<Control>f", NULL };
  g_autoptr(GAction) work_offline = NULL;

  G_APPLICATION_CLASS (magpie_application_parent_class)->startup (application);

  self->settings = g_settings_new (APPLICATION_ID);
  self->connection = magpie_connection_new (NULL, 0);
  g_settings_bind (self->settings, "server-url", self->connection, "server-url",
                   G_SETTINGS_BIND_GET);
  g_settings_bind (self->settings, "work-offline", self->connection, "work-offline",
                   G_SETTINGS_BIND_GET);

  g_action_map_add_action_entries (G_ACTION_MAP (self), app_actions,
                                   G_N_ELEMENTS (app_actions), self);
  /* app.work-offline: a check item in the menu whose state is the setting, so the choice
   * outlives the run. */
  work_offline = g_settings_create_action (self->settings, "work-offline");
  g_action_map_add_action (G_ACTION_MAP (self), work_offline);
  gtk_application_set_accels_for_action (GTK_APPLICATION (self), "app.quit", quit_accels);
  gtk_application_set_accels_for_action (GTK_APPLICATION (self), "app.preferences",
                                         preferences_accels);
  gtk_application_set_accels_for_action (GTK_APPLICATION (self), "window.add-photos",
                                         add_photos_accels);
  gtk_application_set_accels_for_action (GTK_APPLICATION (self), "window.search",
                                         search_accels);

  setup_library (self);
  setup_digits (self);
  setup_uploads (self);
}

/* Stops the model threads (dropping queued work) and waits until every change asked of the
 * library is on disk: after this the process can exit with nothing half done. */
void
magpie_application_stop_workers (MagpieApplication *self)
{
  g_return_if_fail (MAGPIE_IS_APPLICATION (self));

  if (self->digits != NULL)
    magpie_digits_close (self->digits);
  if (self->library != NULL)
    {
      if (magpie_library_get_tagger (self->library) != NULL)
        magpie_tagger_close (magpie_library_get_tagger (self->library));
      magpie_library_sync (self->library);
    }
}

static void
magpie_application_shutdown (GApplication *application)
{
  magpie_application_stop_workers (MAGPIE_APPLICATION (application));

  G_APPLICATION_CLASS (magpie_application_parent_class)->shutdown (application);
}

static void
magpie_application_dispose (GObject *object)
{
  MagpieApplication *self = MAGPIE_APPLICATION (object);

  if (self->connection != NULL)
    {
      g_settings_unbind (self->connection, "server-url");
      g_settings_unbind (self->connection, "work-offline");
    }
  g_clear_object (&self->models);
  g_clear_object (&self->events);
  g_clear_object (&self->uploader);
  g_clear_object (&self->credentials);
  g_clear_object (&self->identity);
  g_clear_object (&self->session);
  g_clear_object (&self->connection);
  g_clear_object (&self->library);
  g_clear_object (&self->digits);
  g_clear_object (&self->settings);
  g_clear_pointer (&self->library_error, g_free);

  G_OBJECT_CLASS (magpie_application_parent_class)->dispose (object);
}

static void
magpie_application_class_init (MagpieApplicationClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GApplicationClass *app_class = G_APPLICATION_CLASS (klass);

  object_class->dispose = magpie_application_dispose;

  app_class->handle_local_options = magpie_application_handle_local_options;
  app_class->command_line = magpie_application_command_line;
  app_class->activate = magpie_application_activate;
  app_class->startup = magpie_application_startup;
  app_class->shutdown = magpie_application_shutdown;
  app_class->open = magpie_application_open;
}

static void
magpie_application_init (MagpieApplication *self)
{
  g_application_add_main_option_entries (G_APPLICATION (self), option_entries);
  g_application_set_option_context_summary (G_APPLICATION (self),
                                            _("A photo gallery that sees"));
}

MagpieApplication *
magpie_application_new (void)
{
  static gsize initialized = 0;

  /* Here rather than in main() so the tests, which link the same library, get the same
   * translations and resources as people do. The resources are registered by hand because
   * a constructor in a static library is dropped by the linker when nothing refers to it. */
  if (g_once_init_enter (&initialized))
    {
      bindtextdomain (GETTEXT_PACKAGE, LOCALEDIR);
      bind_textdomain_codeset (GETTEXT_PACKAGE, "UTF-8");
      textdomain (GETTEXT_PACKAGE);
      magpie_register_resource ();
      g_once_init_leave (&initialized, 1);
    }

  return g_object_new (MAGPIE_TYPE_APPLICATION,
                       "application-id", APPLICATION_ID,
                       "resource-base-path", RESOURCE_BASE,
                       "flags", G_APPLICATION_HANDLES_COMMAND_LINE |
                                G_APPLICATION_HANDLES_OPEN,
                       NULL);
}

/* The connection every window shows, NULL before start-up; its URL follows the settings
 * unless --server-url gave one for this run. */
MagpieConnection *
magpie_application_get_connection (MagpieApplication *self)
{
  g_return_val_if_fail (MAGPIE_IS_APPLICATION (self), NULL);

  return self->connection;
}

/* The photo library every window shows, NULL before start-up. */
MagpieLibrary *
magpie_application_get_library (MagpieApplication *self)
{
  g_return_val_if_fail (MAGPIE_IS_APPLICATION (self), NULL);

  return self->library;
}

/* The digit model the Draw page uses, or NULL when none is installed. */
MagpieDigits *
magpie_application_get_digits (MagpieApplication *self)
{
  g_return_val_if_fail (MAGPIE_IS_APPLICATION (self), NULL);

  return self->digits;
}

/* Who this installation is to the server, NULL before start-up. */
MagpieIdentity *
magpie_application_get_identity (MagpieApplication *self)
{
  g_return_val_if_fail (MAGPIE_IS_APPLICATION (self), NULL);

  return self->identity;
}

/* What sends the outbox to the server, NULL before start-up. */
/* The temporary S3 credentials the uploader signs with (for tests that age them). */
MagpieCredentials *
magpie_application_get_credentials (MagpieApplication *self)
{
  g_return_val_if_fail (MAGPIE_IS_APPLICATION (self), NULL);
  return self->credentials;
}

MagpieUploader *
magpie_application_get_uploader (MagpieApplication *self)
{
  g_return_val_if_fail (MAGPIE_IS_APPLICATION (self), NULL);

  return self->uploader;
}

/* What keeps the offline photo model current, NULL before start-up or when the settings name
 * a model of their own. */
MagpieModels *
magpie_application_get_models (MagpieApplication *self)
{
  g_return_val_if_fail (MAGPIE_IS_APPLICATION (self), NULL);

  return self->models;
}

/* The live event stream, NULL before start-up. */
MagpieEvents *
magpie_application_get_events (MagpieApplication *self)
{
  g_return_val_if_fail (MAGPIE_IS_APPLICATION (self), NULL);

  return self->events;
}
