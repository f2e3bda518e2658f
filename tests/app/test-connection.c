/* test-connection.c - the connection indicator's model against a real magpied */
#include "config.h"

#include <string.h>

#include "app-test-util.h"
#include "magpie-client-error.h"
#include "magpie-connection.h"

/* Nothing listens here: the port is taken from the kernel and released again. */
static char *
closed_port_url (void)
{
  g_autoptr(GSocket) socket = NULL;
  g_autoptr(GInetAddress) loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr(GSocketAddress) address = g_inet_socket_address_new (loopback, 0);
  g_autoptr(GSocketAddress) bound = NULL;
  g_autoptr(GError) error = NULL;
  guint16 port;

  socket = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP,
                         &error);
  g_assert_no_error (error);
  g_socket_bind (socket, address, FALSE, &error);
  g_assert_no_error (error);
  bound = g_socket_get_local_address (socket, &error);
  g_assert_no_error (error);
  port = g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound));
  g_socket_close (socket, NULL);
  return g_strdup_printf ("http://127.0.0.1:%u", port);
}

static gboolean
is_online (gpointer user_data)
{
  return magpie_connection_get_state (user_data) == MAGPIE_CONNECTION_STATE_ONLINE;
}

static gboolean
is_unreachable (gpointer user_data)
{
  return magpie_connection_get_state (user_data) == MAGPIE_CONNECTION_STATE_UNREACHABLE;
}

static void
test_check_url (void)
{
  const char *valid[] = {
    "http://127.0.0.1:8080",
    "https://magpie.example.org",
    "HTTP://EXAMPLE.ORG/",
    "http://[::1]:8080/magpie/",
  };
  const char *invalid[] = {
    "",
    "127.0.0.1:8080",
    "ftp://example.org",
    "file:///tmp",
    "http://",
    "http:///path",
    "https://example.org/?a=b",
    "https://example.org/#top",
    "not a url",
  };

  for (gsize i = 0; i < G_N_ELEMENTS (valid); i++)
    {
      g_autoptr(GError) error = NULL;

      g_assert_true (magpie_connection_check_url (valid[i], &error));
      g_assert_no_error (error);
    }
  for (gsize i = 0; i < G_N_ELEMENTS (invalid); i++)
    {
      g_autoptr(GError) error = NULL;

      g_assert_false (magpie_connection_check_url (invalid[i], &error));
      g_assert_error (error, MAGPIE_CLIENT_ERROR, MAGPIE_CLIENT_ERROR_INVALID_URL);
      g_assert_nonnull (error->message);
    }
}

static void
test_online_then_unreachable (void)
{
  g_autoptr(AppTestServer) server = app_test_server_start ();
  g_autoptr(MagpieConnection) connection = NULL;

  /* Checked every second, so the server's going is noticed without any nudge. */
  connection = magpie_connection_new (server->url, 1);
  g_assert_cmpuint (magpie_connection_get_check_interval (connection), ==, 1);
  g_assert_cmpint (magpie_connection_get_state (connection), ==,
                   MAGPIE_CONNECTION_STATE_UNKNOWN);
  g_assert_true (app_test_wait (is_online, connection, 10000));
  g_assert_cmpstr (magpie_connection_get_server_version (connection), ==, PACKAGE_VERSION);
  g_assert_null (magpie_connection_get_error_message (connection));

  app_test_server_stop (server);
  g_assert_true (app_test_wait (is_unreachable, connection, 10000));
  g_assert_null (magpie_connection_get_server_version (connection));
  g_assert_nonnull (magpie_connection_get_error_message (connection));
}

static void
test_url_change_checks_at_once (void)
{
  g_autoptr(AppTestServer) server = app_test_server_start ();
  g_autoptr(MagpieConnection) connection = NULL;
  g_autofree char *closed = closed_port_url ();
  g_autofree char *with_slash = NULL;
  g_autofree char *version = NULL;

  /* The default interval is 15 s; every wait below is far shorter, so only the immediate
   * check on a URL change can pass them. */
  connection = magpie_connection_new (closed, 0);
  g_assert_cmpuint (magpie_connection_get_check_interval (connection), ==, 15);
  g_assert_true (app_test_wait (is_unreachable, connection, 5000));

  with_slash = g_strconcat (server->url, "/", NULL);
  g_object_set (connection, "server-url", with_slash, NULL);
  g_assert_cmpstr (magpie_connection_get_server_url (connection), ==, with_slash);
  g_assert_true (app_test_wait (is_online, connection, 5000));

  g_object_get (connection, "server-version", &version, NULL);
  g_assert_cmpstr (version, ==, PACKAGE_VERSION);

  magpie_connection_set_server_url (connection, closed);
  g_assert_cmpint (magpie_connection_get_state (connection), ==,
                   MAGPIE_CONNECTION_STATE_UNKNOWN);
  g_assert_true (app_test_wait (is_unreachable, connection, 5000));

  /* magpie_connection_refresh() checks again without waiting for the interval. */
  magpie_connection_set_server_url (connection, server->url);
  g_assert_true (app_test_wait (is_online, connection, 5000));
  app_test_server_stop (server);
  magpie_connection_refresh (connection);
  g_assert_true (app_test_wait (is_unreachable, connection, 5000));
}

static void
test_not_magpied (void)
{
  g_autoptr(AppTestServer) server = app_test_server_start ();
  g_autoptr(MagpieConnection) connection = NULL;
  g_autofree char *wrong_path = NULL;

  /* Below another path magpied answers an error (404, or 403 from its S3 front, which takes
   * the first segment for a bucket): a server, but not the one asked for. */
  wrong_path = g_strconcat (server->url, "/not-magpie", NULL);
  connection = magpie_connection_new (wrong_path, 0);
  g_assert_true (app_test_wait (is_unreachable, connection, 5000));
  g_assert_nonnull (strstr (magpie_connection_get_error_message (connection),
                            "The server answered"));
}

static gboolean
became_true (gpointer user_data)
{
  return *(gboolean *) user_data;
}

static gboolean
set_true_cb (gpointer user_data)
{
  *(gboolean *) user_data = TRUE;
  return G_SOURCE_REMOVE;
}

static void
test_dispose_cancels (void)
{
  g_autoptr(AppTestServer) server = app_test_server_start ();
  MagpieConnection *connection;
  gboolean done = FALSE;

  /* A check in flight when the last reference goes is cancelled; its callback must not
   * touch the finalized object (a crash or warning would fail this test). */
  connection = magpie_connection_new (server->url, 0);
  g_object_add_weak_pointer (G_OBJECT (connection), (gpointer *) &connection);
  g_object_unref (connection);
  g_assert_null (connection);

  g_timeout_add (500, set_true_cb, &done);
  g_assert_true (app_test_wait (became_true, &done, 5000));
}

static gboolean
is_offline (gpointer user_data)
{
  return magpie_connection_get_state (user_data) == MAGPIE_CONNECTION_STATE_OFFLINE;
}

static double
health_checks (SoupSession   *session,
               AppTestServer *server)
{
  return MAX (mp_test_metric (session, server->url,
                              "magpied_http_requests_total{api=\"health\",code=\"200\"}"), 0);
}

/* Work Offline: the state is offline at once and stays so, and not one check reaches the
 * server, however short the interval; turned off, the server is checked at once. */
static void
test_work_offline (void)
{
  g_autoptr(AppTestServer) server = app_test_server_start ();
  g_autoptr(SoupSession) session = soup_session_new ();
  g_autoptr(MagpieConnection) connection = magpie_connection_new (server->url, 1);
  guint notified = 0;
  gboolean done = FALSE;
  double checks;

  g_assert_true (app_test_wait (is_online, connection, 10000));
  g_signal_connect_swapped (connection, "notify::work-offline", G_CALLBACK (g_atomic_int_inc),
                            &notified);
  g_object_set (connection, "work-offline", TRUE, NULL);
  g_assert_true (magpie_connection_get_work_offline (connection));
  g_assert_cmpuint (notified, ==, 1);
  g_assert_cmpint (magpie_connection_get_state (connection), ==,
                   MAGPIE_CONNECTION_STATE_OFFLINE);
  g_assert_null (magpie_connection_get_server_version (connection));

  /* Three check intervals, a new address and a refresh: still nothing sent. */
  checks = health_checks (session, server);
  g_timeout_add (3000, set_true_cb, &done);
  g_assert_true (app_test_wait (became_true, &done, 10000));
  magpie_connection_refresh (connection);
  magpie_connection_set_server_url (connection, server->url);
  g_assert_true (app_test_wait (is_offline, connection, 10));
  g_assert_cmpfloat (health_checks (session, server), ==, checks);

  magpie_connection_set_work_offline (connection, FALSE);
  g_assert_cmpuint (notified, ==, 2);
  g_assert_true (app_test_wait (is_online, connection, 5000));
  g_assert_cmpfloat (health_checks (session, server), >, checks);
}

/* A server that comes back is noticed within seconds, even after a long outage and with the
 * default (15 s) interval between checks of a server that answers. */
static void
test_back_within_seconds (void)
{
  g_autoptr(AppTestServer) server = app_test_server_start ();
  g_autoptr(MagpieConnection) connection = magpie_connection_new (server->url, 0);
  g_autoptr(GError) error = NULL;
  gboolean done = FALSE;
  gint64 start;
  double seconds;

  g_assert_true (app_test_wait (is_online, connection, 10000));
  app_test_server_stop (server);
  magpie_connection_refresh (connection);
  g_assert_true (app_test_wait (is_unreachable, connection, 5000));
  /* Long enough for the retries to back off to their longest wait. */
  g_timeout_add (12000, set_true_cb, &done);
  g_assert_true (app_test_wait (became_true, &done, 20000));
  g_assert_true (is_unreachable (connection));

  g_assert_true (mp_test_server_restart (server, NULL, &error));
  g_assert_no_error (error);
  start = g_get_monotonic_time ();
  g_assert_true (app_test_wait (is_online, connection, 15000 * mp_test_slowdown ()));
  seconds = (g_get_monotonic_time () - start) / (double) G_USEC_PER_SEC;
  g_test_message ("back online %.2f s after the server was", seconds);
  /* The longest retry wait is 5 s; a check takes well under a second here. */
  g_assert_cmpfloat (seconds, <, 6.0 * mp_test_slowdown ());
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/app/connection/check-url", test_check_url);
  g_test_add_func ("/app/connection/online-then-unreachable", test_online_then_unreachable);
  g_test_add_func ("/app/connection/url-change-checks-at-once", test_url_change_checks_at_once);
  g_test_add_func ("/app/connection/not-magpied", test_not_magpied);
  g_test_add_func ("/app/connection/dispose-cancels", test_dispose_cancels);
  g_test_add_func ("/app/connection/work-offline", test_work_offline);
  g_test_add_func ("/app/connection/back-within-seconds", test_back_within_seconds);

  return g_test_run ();
}
