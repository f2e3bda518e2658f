/* test-application.c - the magpie command line: --version, --server-url and its checks */
#include "config.h"

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

  status = g_test_run ();
  mp_test_rm_rf (home);
  return status;
}
