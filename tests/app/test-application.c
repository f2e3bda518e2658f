/* test-application.c - the magpie command line: --version, --server-url and its checks */
#include "config.h"

#include <glib/gstdio.h>
#include <sqlite3.h>
#include <string.h>
#include <sys/wait.h>

#include "app-test-util.h"

static const char *
magpie_path (void)
{
  const char *path = g_getenv ("MAGPIE");

  return path ? path : MAGPIE_BUILD_DIR "/app/magpie";
}

static int
run_magpie (const char  *arg1,
            const char  *arg2,
            char       **out,
            char       **err)
{
  const char *argv[] = { magpie_path (), arg1, arg2, NULL };
  g_autoptr(GError) error = NULL;
  int status = -1;

  g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_DEFAULT, NULL, NULL, out, err, &status,
                &error);
  g_assert_no_error (error);
  return status;
}

static void
test_version (void)
{
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  int status = run_magpie ("--version", NULL, &out, &err);

  g_assert_true (WIFEXITED (status));
  g_assert_cmpint (WEXITSTATUS (status), ==, 0);
  g_assert_cmpstr (out, ==, "magpie " PACKAGE_VERSION "\n");
}

static void
test_help_names_option (void)
{
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  int status = run_magpie ("--help", NULL, &out, &err);

  g_assert_true (WIFEXITED (status));
  g_assert_cmpint (WEXITSTATUS (status), ==, 0);
  g_assert_nonnull (strstr (out, "--server-url=URL"));
}

static void
test_bad_server_url (void)
{
  const char *bad[] = { "ftp://example.org", "example.org", "http://", "" };

  for (gsize i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autofree char *out = NULL;
      g_autofree char *err = NULL;
      int status = run_magpie ("--server-url", bad[i], &out, &err);

      g_test_message ("--server-url '%s': %s", bad[i], err);
      g_assert_true (WIFEXITED (status));
      g_assert_cmpint (WEXITSTATUS (status), ==, 2);
      g_assert_nonnull (strstr (err, "--server-url"));
      g_assert_cmpstr (out, ==, "");
    }
}

typedef struct {
  MagpieApplication *app;
  const char        *url;
  gboolean           checked;
} OverrideCheck;

static gboolean
connection_online (gpointer user_data)
{
  MagpieConnection *connection = user_data;

  return magpie_connection_get_state (connection) == MAGPIE_CONNECTION_STATE_ONLINE;
}

static gboolean
check_override_cb (gpointer user_data)
{
  OverrideCheck *check = user_data;
  MagpieConnection *connection = magpie_application_get_connection (check->app);
  g_autoptr(GSettings) settings = g_settings_new (APPLICATION_ID);
  g_autofree char *saved = g_settings_get_string (settings, "server-url");

  g_assert_nonnull (gtk_application_get_active_window (GTK_APPLICATION (check->app)));
  g_assert_cmpstr (magpie_connection_get_server_url (connection), ==, check->url);
  g_assert_true (app_test_wait (connection_online, connection, 10000));

  /* For this run only: the setting keeps its value, and changing it does not move the
   * connection away from the server named on the command line. */
  g_assert_cmpstr (saved, ==, "http://127.0.0.1:8080");
  g_settings_set_string (settings, "server-url", "http://192.0.2.1:8080");
  g_assert_cmpstr (magpie_connection_get_server_url (connection), ==, check->url);
  g_settings_reset (settings, "server-url");

  check->checked = TRUE;
  g_action_group_activate_action (G_ACTION_GROUP (check->app), "quit", NULL);
  return G_SOURCE_REMOVE;
}

static void
test_server_url_override (void)
{
  g_autoptr(AppTestServer) server = app_test_server_start ();
  g_autoptr(MagpieApplication) app = magpie_application_new ();
  OverrideCheck check = { app, NULL, FALSE };
  char *argv[] = { "magpie", "--server-url", NULL, NULL };
  int status;

  check.url = server->url;
  argv[2] = server->url;

  g_application_set_flags (G_APPLICATION (app),
                           g_application_get_flags (G_APPLICATION (app)) |
                           G_APPLICATION_NON_UNIQUE);
  g_idle_add (check_override_cb, &check);
  status = g_application_run (G_APPLICATION (app), G_N_ELEMENTS (argv) - 1, argv);

  g_assert_true (check.checked);
  g_assert_cmpint (status, ==, 0);
}

static int
user_version (const char *path)
{
  sqlite3 *db = NULL;
  sqlite3_stmt *stmt = NULL;
  int version = -1;

  g_assert_cmpint (sqlite3_open_v2 (path, &db, SQLITE_OPEN_READONLY, NULL), ==, SQLITE_OK);
  g_assert_cmpint (sqlite3_prepare_v2 (db, "PRAGMA user_version", -1, &stmt, NULL), ==,
                   SQLITE_OK);
  if (sqlite3_step (stmt) == SQLITE_ROW)
    version = sqlite3_column_int (stmt, 0);
  sqlite3_finalize (stmt);
  sqlite3_close (db);
  return version;
}

static gboolean
dialog_shown (gpointer user_data)
{
  return app_test_find_window (ADW_TYPE_MESSAGE_DIALOG) != NULL;
}

/* A library written by a newer Magpie: the window comes up, a dialog says why the library
 * cannot be opened, no warning is logged (this runs with fatal warnings), and the file is left
 * as it was. */
static void
test_newer_library (void)
{
  if (g_test_subprocess ())
    {
      g_autofree char *dir = g_build_filename (g_get_user_data_dir (), "magpie", NULL);
      g_autofree char *path = g_build_filename (dir, "library.sqlite", NULL);
      g_autoptr(MagpieApplication) app = NULL;
      sqlite3 *db = NULL;
      AdwMessageDialog *dialog;

      g_assert_cmpint (g_mkdir_with_parents (dir, 0700), ==, 0);
      g_assert_cmpint (sqlite3_open (path, &db), ==, SQLITE_OK);
      g_assert_cmpint (sqlite3_exec (db, "CREATE TABLE future (x); PRAGMA user_version = 99;",
                                     NULL, NULL, NULL), ==, SQLITE_OK);
      sqlite3_close (db);

      app = app_test_application_new ();
      g_application_activate (G_APPLICATION (app));
      g_assert_true (app_test_wait (dialog_shown, NULL, 30000));
      dialog = ADW_MESSAGE_DIALOG (app_test_find_window (ADW_TYPE_MESSAGE_DIALOG));
      g_assert_cmpstr (adw_message_dialog_get_heading (dialog), ==,
                       "Cannot Open Your Photo Library");
      g_test_message ("the dialog says: %s", adw_message_dialog_get_body (dialog));
      g_assert_nonnull (strstr (adw_message_dialog_get_body (dialog), "newer Magpie"));
      g_assert_true (GTK_IS_WINDOW (gtk_window_get_transient_for (GTK_WINDOW (dialog))));
      g_assert_cmpint (user_version (path), ==, 99);
      app_test_close_all ();
      return;
    }
  g_test_trap_subprocess (NULL, 60 * G_USEC_PER_SEC, G_TEST_SUBPROCESS_INHERIT_STDERR);
  g_test_trap_assert_passed ();
}

int
main (int   argc,
      char *argv[])
{
  g_autofree char *home = NULL;
  int status;

  g_test_init (&argc, &argv, NULL);
  home = app_test_isolate_dirs ();

  g_test_add_func ("/app/application/version", test_version);
  g_test_add_func ("/app/application/help-names-option", test_help_names_option);
  g_test_add_func ("/app/application/bad-server-url", test_bad_server_url);
  g_test_add_func ("/app/application/server-url-override", test_server_url_override);
  g_test_add_func ("/app/application/newer-library", test_newer_library);

  status = g_test_run ();
  mp_test_rm_rf (home);
  return status;
}
