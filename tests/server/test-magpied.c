/* test-magpied.c - the magpied process: command line, health, readiness, logs, signals */
#include "config.h"

#include <glib/gstdio.h>
#include <signal.h>
#include <sys/wait.h>

#include "mp-test-util.h"

static int
run_magpied (const char **args,
             char       **out,
             char       **err)
{
  g_autoptr(GPtrArray) argv = g_ptr_array_new ();
  g_autoptr(GError) error = NULL;
  int status = -1;

  g_ptr_array_add (argv, (char *) mp_test_magpied_path ());
  for (const char **a = args; *a; a++)
    g_ptr_array_add (argv, (char *) *a);
  g_ptr_array_add (argv, NULL);
  g_spawn_sync (NULL, (char **) argv->pdata, NULL, G_SPAWN_DEFAULT, NULL, NULL,
                out, err, &status, &error);
  g_assert_no_error (error);
  return status;
}

static void
test_cli_help_version (void)
{
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  const char *help[] = { "--help", NULL };
  const char *version[] = { "--version", NULL };
  int status;

  status = run_magpied (help, &out, &err);
  g_assert_true (WIFEXITED (status) && WEXITSTATUS (status) == 0);
  g_assert_nonnull (strstr (out, "--listen"));
  g_assert_nonnull (strstr (out, "--data-dir"));
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);

  status = run_magpied (version, &out, &err);
  g_assert_true (WIFEXITED (status) && WEXITSTATUS (status) == 0);
  g_assert_cmpstr (out, ==, "magpied " PACKAGE_VERSION "\n");
}

static void
test_cli_bad_flag (void)
{
  static const char *cases[][3] = {
    { "--frobnicate", NULL },
    { "--listen", "not-an-address" },
    { "--log-format", "yaml" },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autofree char *out = NULL;
      g_autofree char *err = NULL;
      const char *args[3] = { cases[i][0], cases[i][1], NULL };
      int status = run_magpied (args, &out, &err);

      g_assert_true (WIFEXITED (status));
      g_assert_cmpint (WEXITSTATUS (status), ==, 2);
      g_assert_true (g_str_has_prefix (err, "magpied: "));
      g_assert_nonnull (strstr (err, cases[i][1] ? cases[i][1] : cases[i][0]));
      g_assert_cmpstr (out, ==, "");
    }
}

static void
test_cli_port_in_use (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(MpTestServer) first = mp_test_server_start (NULL, NULL, &error);
  g_autofree char *listen = NULL;
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  g_autofree char *dir = mp_test_make_tmpdir ("magpied-busy");
  const char *args[6];
  int status;

  g_assert_no_error (error);
  listen = g_strdup (first->url + strlen ("http://"));
  args[0] = "--listen";
  args[1] = listen;
  args[2] = "--data-dir";
  args[3] = dir;
  args[4] = NULL;
  status = run_magpied (args, &out, &err);
  g_assert_true (WIFEXITED (status));
  g_assert_cmpint (WEXITSTATUS (status), ==, 1);
  g_assert_nonnull (strstr (err, "cannot listen on"));
  g_assert_nonnull (strstr (err, "level=warning"));
  mp_test_rm_rf (dir);
}

/* A remote store without the role to hand out its credentials is caught at start. */
static void
test_remote_store_needs_role (void)
{
  g_autofree char *dir = mp_test_make_tmpdir ("magpied-remote");
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  const char *args[] = { "--listen", "127.0.0.1:0", "--data-dir", dir,
                         "--s3-endpoint", "http://127.0.0.1:9", "--s3-access-key", "K",
                         "--s3-secret-key", "S", NULL };
  int status = run_magpied (args, &out, &err);

  g_assert_true (WIFEXITED (status));
  g_assert_cmpint (WEXITSTATUS (status), ==, 1);
  g_assert_nonnull (strstr (err, "--sts-role-arn"));
  mp_test_rm_rf (dir);
}

static void
test_health_ready (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(MpTestServer) server = mp_test_server_start (NULL, NULL, &error);
  g_autoptr(SoupSession) session = soup_session_new ();
  g_autofree char *healthz = NULL;
  g_autofree char *readyz = NULL;
  g_autofree char *missing = NULL;
  g_autoptr(JsonNode) body = NULL;
  JsonObject *o;
  guint status = 0;

  g_assert_no_error (error);
  g_assert_true (g_str_has_prefix (server->url, "http://127.0.0.1:"));
  g_assert_true (g_file_test (server->data_dir, G_FILE_TEST_IS_DIR));

  healthz = g_strconcat (server->url, "/healthz", NULL);
  body = mp_test_http_json (session, "GET", healthz, NULL, &status);
  g_assert_cmpuint (status, ==, 200);
  g_assert_nonnull (body);
  o = json_node_get_object (body);
  g_assert_cmpstr (json_object_get_string_member (o, "status"), ==, "ok");
  g_assert_cmpstr (json_object_get_string_member (o, "version"), ==, PACKAGE_VERSION);
  g_clear_pointer (&body, json_node_unref);

  body = mp_test_http_json (session, "POST", healthz, "{}", &status);
  g_assert_cmpuint (status, ==, 405);
  o = json_object_get_object_member (json_node_get_object (body), "error");
  g_assert_cmpstr (json_object_get_string_member (o, "code"), ==, "method_not_allowed");
  g_clear_pointer (&body, json_node_unref);

  readyz = g_strconcat (server->url, "/readyz", NULL);
  body = mp_test_http_json (session, "GET", readyz, NULL, &status);
  g_assert_cmpuint (status, ==, 200);
  g_assert_cmpstr (json_object_get_string_member (json_node_get_object (body), "status"), ==,
                   "ready");
  g_clear_pointer (&body, json_node_unref);

  {
    g_autofree char *metrics_url = g_strconcat (server->url, "/metrics", NULL);
    g_autofree char *text = mp_test_http_text (session, "GET", metrics_url, &status);

    g_assert_cmpuint (status, ==, 200);
    g_assert_nonnull (strstr (text, "magpied_http_requests_total{api=\"health\",code=\"200\"} 2\n"));
    g_assert_nonnull (strstr (text, "magpied_http_requests_total{api=\"health\",code=\"405\"} 1\n"));
    g_assert_nonnull (strstr (text, "# TYPE magpied_queue_depth gauge\nmagpied_queue_depth 0\n"));
    g_assert_nonnull (strstr (text, "magpied_store_objects 0\n"));
  }

  missing = g_strconcat (server->url, "/v1/nothing-here", NULL);
  body = mp_test_http_json (session, "GET", missing, NULL, &status);
  g_assert_cmpuint (status, ==, 404);
  o = json_object_get_object_member (json_node_get_object (body), "error");
  g_assert_cmpstr (json_object_get_string_member (o, "code"), ==, "not_found");
  g_assert_nonnull (strstr (json_object_get_string_member (o, "message"), "/v1/nothing-here"));
  g_clear_pointer (&body, json_node_unref);

  /* A data directory that disappears makes the server unready, not dead. */
  mp_test_rm_rf (server->data_dir);
  body = mp_test_http_json (session, "GET", readyz, NULL, &status);
  g_assert_cmpuint (status, ==, 503);
  o = json_object_get_object_member (json_node_get_object (body), "error");
  g_assert_cmpstr (json_object_get_string_member (o, "code"), ==, "not_ready");
  g_clear_pointer (&body, json_node_unref);
  body = mp_test_http_json (session, "GET", healthz, NULL, &status);
  g_assert_cmpuint (status, ==, 200);
}

static void
check_stops_on (int signum)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(MpTestServer) server = mp_test_server_start (NULL, NULL, &error);
  g_autoptr(SoupSession) session = soup_session_new ();
  g_autofree char *healthz = NULL;
  g_autoptr(JsonNode) body = NULL;
  g_autofree char *log = NULL;
  guint status = 0;
  gint64 elapsed = 0;
  int wait_status;

  g_assert_no_error (error);
  healthz = g_strconcat (server->url, "/healthz", NULL);
  body = mp_test_http_json (session, "GET", healthz, NULL, &status);
  g_assert_cmpuint (status, ==, 200);

  wait_status = mp_test_server_stop (server, signum, &elapsed);
  log = mp_test_server_log (server);
  if (!WIFEXITED (wait_status) || WEXITSTATUS (wait_status) != 0)
    g_test_message ("magpied wait status %d, log:\n%s", wait_status, log);
  g_assert_true (WIFEXITED (wait_status));
  g_assert_cmpint (WEXITSTATUS (wait_status), ==, 0);
  g_assert_cmpint (elapsed, <, G_USEC_PER_SEC * mp_test_slowdown ());

  /* Structured lines: start, the request, and the stop, each one logfmt line. */
  g_assert_nonnull (strstr (log, "level=info prog=magpied domain=magpied msg=listening url="));
  g_assert_nonnull (strstr (log, "msg=request method=GET path=/healthz status=200"));
  g_assert_nonnull (strstr (log, "msg=stopping reason=signal"));
  g_assert_nonnull (strstr (log, "msg=stopped"));
}

static void
test_stop_sigterm (void)
{
  check_stops_on (SIGTERM);
}

static void
test_stop_sigint (void)
{
  check_stops_on (SIGINT);
}

static void
test_json_logs (void)
{
  g_autoptr(GError) error = NULL;
  const char *args[] = { "--log-format=json", NULL };
  g_autoptr(MpTestServer) server = mp_test_server_start (NULL, args, &error);
  g_autofree char *log = NULL;
  g_auto(GStrv) lines = NULL;
  guint n = 0;

  g_assert_no_error (error);
  mp_test_server_stop (server, SIGTERM, NULL);
  log = mp_test_server_log (server);
  lines = g_strsplit (log, "\n", -1);
  for (char **l = lines; *l; l++)
    {
      g_autoptr(JsonParser) parser = json_parser_new ();
      JsonObject *o;

      if (**l == '\0')
        continue;
      json_parser_load_from_data (parser, *l, -1, &error);
      g_assert_no_error (error);
      o = json_node_get_object (json_parser_get_root (parser));
      g_assert_nonnull (o);
      g_assert_true (json_object_has_member (o, "ts"));
      g_assert_true (json_object_has_member (o, "level"));
      g_assert_true (json_object_has_member (o, "msg"));
      n++;
    }
  g_assert_cmpuint (n, >=, 3);
}

int
main (int argc, char *argv[])
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/srv/magpied/cli-help-version", test_cli_help_version);
  g_test_add_func ("/srv/magpied/cli-bad-flag", test_cli_bad_flag);
  g_test_add_func ("/srv/magpied/cli-port-in-use", test_cli_port_in_use);
  g_test_add_func ("/srv/magpied/health-ready", test_health_ready);
  g_test_add_func ("/srv/magpied/remote-store-needs-role", test_remote_store_needs_role);
  g_test_add_func ("/srv/magpied/stop-sigterm", test_stop_sigterm);
  g_test_add_func ("/srv/magpied/stop-sigint", test_stop_sigint);
  g_test_add_func ("/srv/magpied/json-logs", test_json_logs);
  return g_test_run ();
}
