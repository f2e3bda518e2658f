/* mp-test-util.c - start and stop real magpied processes for tests, and small HTTP helpers
 *
 * The server is a direct child of the test (PID 1 here does not reap orphans), listens on a
 * port the kernel picks (--listen 127.0.0.1:0), and announces its URL in its first log line,
 * which we read from a log file rather than a pipe so a chatty server can never block on us.
 */
#include "config.h"

#include "mp-test-util.h"

#include <glib/gstdio.h>
#include <libpq-fe.h>
#include <signal.h>
#include <sys/prctl.h>
#include <string.h>
#include <unistd.h>

#define MP_TEST_START_TIMEOUT_US (15 * G_USEC_PER_SEC)

double
mp_test_slowdown (void)
{
  const char *factor = g_getenv ("MAGPIE_TEST_SLOWDOWN");

  return factor ? MAX (g_ascii_strtod (factor, NULL), 1.0) : 1.0;
}

const char *
mp_test_magpied_path (void)
{
  const char *path = g_getenv ("MAGPIED");

  return path ? path : MAGPIE_BUILD_DIR "/server/magpied";
}

gboolean
mp_test_db_is_postgresql (void)
{
  const char *db = g_getenv ("MAGPIE_TEST_DB");

  return db != NULL && g_str_has_prefix (db, "postgres");
}

static void
quiet_notice (void *arg, const char *message)
{
}

char *
mp_test_db_location (const char *data_dir)
{
  const char *server = g_getenv ("MAGPIE_TEST_DB");
  g_autofree char *hash = NULL;
  g_autofree char *schema = NULL;
  g_autofree char *create = NULL;
  PGconn *pg;
  PGresult *r;

  if (!mp_test_db_is_postgresql ())
    return g_build_filename (data_dir, "catalog.db", NULL);

  /* One schema per data dir, so a restarted server (same dir) finds its catalog again. A
   * schema costs a fraction of a CREATE DATABASE, and the catalog living outside "public"
   * (search_path in the URI, as an operator would set it) is worth running anyway. */
  hash = g_compute_checksum_for_string (G_CHECKSUM_SHA256, data_dir, -1);
  schema = g_strdup_printf ("magpie_%.24s", hash);
  pg = PQconnectdb (server);
  if (PQstatus (pg) != CONNECTION_OK)
    g_error ("cannot reach the test PostgreSQL at %s: %s", server, PQerrorMessage (pg));
  PQsetNoticeProcessor (pg, quiet_notice, NULL);  /* "already exists, skipping" on a restart */
  create = g_strdup_printf ("CREATE SCHEMA IF NOT EXISTS %s", schema);
  r = PQexec (pg, create);
  if (PQresultStatus (r) != PGRES_COMMAND_OK)
    g_error ("cannot create test schema %s: %s", schema, PQresultErrorMessage (r));
  PQclear (r);
  PQfinish (pg);
  return g_strdup_printf ("%s%soptions=-csearch_path%%3D%s", server,
                          strchr (server, '?') ? "&" : "?", schema);
}

char *
mp_test_make_tmpdir (const char *prefix)
{
  g_autofree char *tmpl = g_strdup_printf ("%s-XXXXXX", prefix);
  g_autoptr(GError) error = NULL;
  char *dir = g_dir_make_tmp (tmpl, &error);

  g_assert_no_error (error);
  return dir;
}

void
mp_test_rm_rf (const char *path)
{
  g_autoptr(GDir) dir = NULL;
  const char *name;

  if (path == NULL)
    return;
  dir = g_dir_open (path, 0, NULL);
  if (dir != NULL)
    {
      while ((name = g_dir_read_name (dir)) != NULL)
        {
          g_autofree char *child = g_build_filename (path, name, NULL);

          if (g_file_test (child, G_FILE_TEST_IS_DIR) && !g_file_test (child, G_FILE_TEST_IS_SYMLINK))
            mp_test_rm_rf (child);
          else
            g_unlink (child);
        }
    }
  g_rmdir (path);
}

/* The URL from the "listening" line, in either log format. */
static char *
find_listening_url (const char *log)
{
  const char *line;
  const char *url;
  const char *end;

  if ((line = strstr (log, "msg=listening")) != NULL && (url = strstr (line, " url=")) != NULL)
    url += strlen (" url=");
  else if ((line = strstr (log, "\"msg\":\"listening\"")) != NULL &&
           (url = strstr (line, "\"url\":\"")) != NULL)
    url += strlen ("\"url\":\"");
  else
    return NULL;
  end = url + strcspn (url, " \"\n");
  if (*end == '\0')
    return NULL;  /* the line is still being written */
  return g_strndup (url, end - url);
}

/* A failed assertion aborts the test before its cleanup runs; the server must not outlive it. */
static void
die_with_parent (gpointer user_data)
{
  prctl (PR_SET_PDEATHSIG, SIGKILL);
}

/* Spawns magpied for @server (its data dir, catalog and log set) listening on @listen, and
 * waits for it to announce its URL. */
static gboolean
spawn_server (MpTestServer  *server,
              const char    *listen,
              const char   **extra_args,
              GError       **error)
{
  g_autoptr(GSubprocessLauncher) launcher = NULL;
  g_autoptr(GPtrArray) argv = g_ptr_array_new ();
  gint64 deadline;

  g_ptr_array_add (argv, (char *) mp_test_magpied_path ());
  g_ptr_array_add (argv, "--listen");
  g_ptr_array_add (argv, (char *) listen);
  g_ptr_array_add (argv, "--data-dir");
  g_ptr_array_add (argv, server->data_dir);
  if (mp_test_db_is_postgresql ())
    {
      g_ptr_array_add (argv, "--database");
      g_ptr_array_add (argv, server->database);
    }
  for (const char **a = extra_args; a && *a; a++)
    g_ptr_array_add (argv, (char *) *a);
  g_ptr_array_add (argv, NULL);

  g_clear_pointer (&server->url, g_free);
  launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_SILENCE);
  g_subprocess_launcher_set_stderr_file_path (launcher, server->log_path);
  g_subprocess_launcher_set_child_setup (launcher, die_with_parent, NULL, NULL);
  server->process = g_subprocess_launcher_spawnv (launcher,
                                                  (const char * const *) argv->pdata, error);
  if (server->process == NULL)
    return FALSE;

  deadline = g_get_monotonic_time () + MP_TEST_START_TIMEOUT_US;
  while (g_get_monotonic_time () < deadline)
    {
      g_autofree char *log = NULL;

      if (g_file_get_contents (server->log_path, &log, NULL, NULL))
        server->url = find_listening_url (log);
      if (server->url != NULL)
        return TRUE;
      /* GLib reaps the child on its worker thread; a NULL identifier means it is gone. */
      if (g_subprocess_get_identifier (server->process) == NULL)
        {
          g_autofree char *tail = NULL;

          g_file_get_contents (server->log_path, &tail, NULL, NULL);
          g_set_error (error, G_SPAWN_ERROR, G_SPAWN_ERROR_FAILED,
                       "magpied exited during start-up: %s", tail ? tail : "");
          return FALSE;
        }
      g_usleep (10 * 1000);
    }

  g_set_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT, "magpied did not announce its URL");
  return FALSE;
}

/* Starts magpied on 127.0.0.1 with a port the kernel picks. @data_dir NULL makes a fresh
 * temporary one that mp_test_server_free() removes. Returns NULL and sets @error if the
 * server exits or does not announce itself in time. */
MpTestServer *
mp_test_server_start (const char  *data_dir,
                      const char **extra_args,
                      GError     **error)
{
  g_autoptr(MpTestServer) server = g_new0 (MpTestServer, 1);

  if (data_dir == NULL)
    {
      server->data_dir = mp_test_make_tmpdir ("magpied-test");
      server->own_data_dir = TRUE;
    }
  else
    server->data_dir = g_strdup (data_dir);
  {
    static gint started;

    /* Numbered: several servers may share a data dir (api and worker nodes), each its log. */
    server->log_path = g_strdup_printf ("%s.%d.log", server->data_dir,
                                        g_atomic_int_add (&started, 1));
  }
  server->database = mp_test_db_location (server->data_dir);

  if (!spawn_server (server, "127.0.0.1:0", extra_args, error))
    return NULL;
  return g_steal_pointer (&server);
}

/* Starts a stopped @server again, as an operator restarts a service: the same data dir and
 * catalog, the same port (so clients find it at the URL they know), with @extra_args this
 * time. The log starts afresh. Returns FALSE and sets @error as mp_test_server_start() does. */
gboolean
mp_test_server_restart (MpTestServer  *server,
                        const char   **extra_args,
                        GError       **error)
{
  g_autoptr(GUri) uri = NULL;
  g_autofree char *listen = NULL;

  g_return_val_if_fail (server->process == NULL, FALSE);

  uri = g_uri_parse (server->url, G_URI_FLAGS_NONE, error);
  if (uri == NULL)
    return FALSE;
  listen = g_strdup_printf ("127.0.0.1:%d", g_uri_get_port (uri));
  return spawn_server (server, listen, extra_args, error);
}

/* Sends @signum and waits for the exit. Returns the wait status (as waitpid() gives it);
 * @elapsed_us gets the time the server took to go. */
int
mp_test_server_stop (MpTestServer *server,
                     int           signum,
                     gint64       *elapsed_us)
{
  gint64 start = g_get_monotonic_time ();
  g_autoptr(GError) error = NULL;
  int status;

  if (server->process == NULL)
    return -1;
  g_subprocess_send_signal (server->process, signum);
  g_subprocess_wait (server->process, NULL, &error);
  g_assert_no_error (error);
  if (elapsed_us)
    *elapsed_us = g_get_monotonic_time () - start;
  status = g_subprocess_get_status (server->process);
  g_clear_object (&server->process);
  return status;
}

char *
mp_test_server_log (MpTestServer *server)
{
  char *log = NULL;

  g_file_get_contents (server->log_path, &log, NULL, NULL);
  return log;
}

void
mp_test_server_free (MpTestServer *server)
{
  if (server == NULL)
    return;
  if (server->process != NULL)
    mp_test_server_stop (server, SIGKILL, NULL);
  if (server->own_data_dir)
    mp_test_rm_rf (server->data_dir);
  if (server->log_path)
    g_unlink (server->log_path);
  g_free (server->url);
  g_free (server->data_dir);
  g_free (server->database);
  g_free (server->log_path);
  g_free (server);
}

/* Sends @body (JSON, NULL for none) to @url with an optional bearer @token. Returns the parsed
 * answer (NULL when it is not JSON); *@response_headers, when asked for, gets a reference to
 * the response headers. */
JsonNode *
mp_test_http_call (SoupSession         *session,
                   const char          *method,
                   const char          *url,
                   const char          *token,
                   const char          *body,
                   guint               *status,
                   SoupMessageHeaders **response_headers)
{
  g_autoptr(SoupMessage) msg = soup_message_new (method, url);
  g_autoptr(GBytes) response = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonParser) parser = json_parser_new ();
  gsize len;
  const char *data;

  g_assert_nonnull (msg);
  if (token != NULL)
    {
      g_autofree char *auth = g_strconcat ("Bearer ", token, NULL);

      soup_message_headers_replace (soup_message_get_request_headers (msg), "Authorization", auth);
    }
  if (body != NULL)
    {
      g_autoptr(GBytes) bytes = g_bytes_new (body, strlen (body));

      soup_message_set_request_body_from_bytes (msg, "application/json", bytes);
    }
  response = soup_session_send_and_read (session, msg, NULL, &error);
  g_assert_no_error (error);
  *status = soup_message_get_status (msg);
  if (response_headers != NULL)
    *response_headers = soup_message_headers_ref (soup_message_get_response_headers (msg));
  data = g_bytes_get_data (response, &len);
  if (len == 0 || !json_parser_load_from_data (parser, data, len, NULL))
    return NULL;
  return json_node_copy (json_parser_get_root (parser));
}

JsonNode *
mp_test_http_json (SoupSession *session,
                   const char  *method,
                   const char  *url,
                   const char  *body,
                   guint       *status)
{
  return mp_test_http_call (session, method, url, NULL, body, status, NULL);
}

/* The response body as a string (NUL-terminated), whatever its type. */
char *
mp_test_http_text (SoupSession *session,
                   const char  *method,
                   const char  *url,
                   guint       *status)
{
  g_autoptr(SoupMessage) msg = soup_message_new (method, url);
  g_autoptr(GBytes) response = NULL;
  g_autoptr(GError) error = NULL;
  gsize len;
  const char *data;

  g_assert_nonnull (msg);
  response = soup_session_send_and_read (session, msg, NULL, &error);
  g_assert_no_error (error);
  *status = soup_message_get_status (msg);
  data = g_bytes_get_data (response, &len);
  return g_strndup (data, len);
}

/* Path of a file in ../shared/data, or NULL when that folder is not beside the checkout. */
char *
mp_test_shared_data (const char *relative)
{
  const char *root = g_getenv ("MAGPIE_SHARED_DATA");
  g_autofree char *path = NULL;

  if (root == NULL)
    return NULL;
  path = g_build_filename (root, relative, NULL);
  if (!g_file_test (path, G_FILE_TEST_EXISTS))
    return NULL;
  return g_steal_pointer (&path);
}

char *
mp_test_photo_model (const char *dir)
{
  g_autofree char *squeezenet = mp_test_shared_data ("models/squeezenet1.1-fp32.onnx");
  g_autofree char *synset = mp_test_shared_data ("models/synset.txt");
  g_autofree char *model = NULL;
  g_autofree char *sidecar = NULL;
  g_autofree char *json = NULL;

  if (squeezenet == NULL || synset == NULL)
    return NULL;
  model = g_build_filename (dir, "photos.onnx", NULL);
  sidecar = g_build_filename (dir, "photos.json", NULL);
  json = g_strdup_printf ("{\"resize\": 256, \"channel_order\": \"BGR\", "
                          "\"mean\": [104, 117, 123], \"labels\": \"%s\"}", synset);
  g_assert_cmpint (symlink (squeezenet, model), ==, 0);
  g_assert_true (g_file_set_contents (sidecar, json, -1, NULL));
  return g_steal_pointer (&model);
}

double
mp_test_metric (SoupSession *session,
                const char  *url,
                const char  *series)
{
  g_autofree char *metrics_url = g_strconcat (url, "/metrics", NULL);
  guint status = 0;
  g_autofree char *text = mp_test_http_text (session, "GET", metrics_url, &status);
  g_autofree char *needle = g_strconcat ("\n", series, " ", NULL);
  const char *at;

  g_assert_cmpuint (status, ==, 200);
  at = strstr (text, needle);
  return at ? g_ascii_strtod (at + strlen (needle), NULL) : -1;
}
