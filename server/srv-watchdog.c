/* srv-watchdog.c - closes the connections of clients that stall, idle or leave
 *
 * libsoup 3 keeps no server-side timeouts: a connection that never sends a request, a request
 * line that never ends, or an upload that stops half-way is held forever, with its descriptor
 * and, for S3, its spool file. Each request is watched from request-started (before its first
 * byte) until got-body; every header block and body chunk that arrives is progress. When none
 * comes for the timeout, the socket is shut down under soup, which then sees the end of the
 * stream as it would see the client leave and frees everything the request held. A request
 * whose headers are in and which has no response yet is answered first, straight on the
 * socket, since soup is reading, not writing, at that moment.
 *
 * Between requests a kept-alive connection is watched too, for two reasons. The timeout: an
 * idle connection is closed after it, as nginx and S3 close theirs. And a libsoup 3.2 bug
 * (fixed in 3.3 by upstream commit d20c660): when a client closes a kept-alive connection,
 * soup reads the end of the stream for a request that has not started and then forgets the
 * connection without closing it, so every such connection stayed in CLOSE-WAIT holding a
 * descriptor for good. Here the end of the stream is seen too and the socket closed. Soup's
 * own small connection object still leaks (about 1.5 KB each); only a newer libsoup fixes that.
 */
#define G_LOG_DOMAIN "magpied"

#include "config.h"

#include "srv-watchdog.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "srv-reply.h"
#include "srv-s3-proto.h"

#define WATCH_KEY "srv-watchdog-watch"
#define IDLE_KEY  "srv-watchdog-idle"

struct _SrvWatchdog {
  gatomicrefcount ref;           /* srv_watchdog_start()'s, and one per watch */
  SrvContext *ctx;
  GHashTable *idle;              /* IdleWatch set, so stop can end them */
  gint64      timeout_us;
  guint       timeout_s;
};

typedef struct {
  SrvWatchdog       *dog;
  SoupServerMessage *msg;        /* not a reference: the watch lives in the message's data */
  gint64             last_us;    /* when the client last sent something */
  guint              source;
  gboolean           headers_in;
} Watch;

static void
dog_unref (SrvWatchdog *dog)
{
  if (g_atomic_ref_count_dec (&dog->ref))
    g_free (dog);
}

static void
watch_free (gpointer data)
{
  Watch *w = data;

  g_clear_handle_id (&w->source, g_source_remove);
  dog_unref (w->dog);
  g_free (w);
}

/* Between two requests of a kept-alive connection. */
typedef struct {
  SrvWatchdog *dog;
  GSocket     *socket;       /* not a reference: the watch lives in the socket's data */
  GSource     *readable;
  guint        timer;
} IdleWatch;

static void
idle_watch_free (gpointer data)
{
  IdleWatch *iw = data;

  if (iw->readable != NULL)
    {
      g_source_destroy (iw->readable);
      g_source_unref (iw->readable);
    }
  g_clear_handle_id (&iw->timer, g_source_remove);
  if (iw->dog->idle != NULL)
    g_hash_table_remove (iw->dog->idle, iw);
  dog_unref (iw->dog);
  g_free (iw);
}

static void
idle_watch_end (GSocket *socket)
{
  g_object_set_data (G_OBJECT (socket), IDLE_KEY, NULL);
}

/* 1: a request is arriving, 0: the client closed its end, -1: nothing yet. */
static int
peek (GSocket *socket)
{
  char byte;
  ssize_t n = recv (g_socket_get_fd (socket), &byte, 1, MSG_PEEK | MSG_DONTWAIT);

  if (n > 0)
    return 1;
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
    return -1;
  return 0;
}

static gboolean
idle_readable_cb (GSocket      *socket,
                  GIOCondition  condition,
                  gpointer      user_data)
{
  IdleWatch *iw = user_data;

  if (g_socket_is_closed (socket))
    {
      idle_watch_end (socket);
      return G_SOURCE_REMOVE;
    }
  switch (peek (socket))
    {
    case 1:
      /* The next request: soup reads it and request-started ends this watch; until then
       * only the timer stays, or this level-triggered source would spin. */
      g_clear_pointer (&iw->readable, g_source_unref);
      return G_SOURCE_REMOVE;
    case 0:
      g_socket_close (socket, NULL);
      idle_watch_end (socket);
      return G_SOURCE_REMOVE;
    default:
      return G_SOURCE_CONTINUE;
    }
}

static gboolean
idle_timeout_cb (gpointer user_data)
{
  IdleWatch *iw = user_data;
  GSocket *socket = iw->socket;

  iw->timer = 0;
  if (!g_socket_is_closed (socket) && peek (socket) != 1)
    {
      g_autofree char *labels = srv_metrics_labels ("stage", "idle", NULL);

      srv_metrics_add (iw->dog->ctx->metrics, "magpied_client_timeouts_total", labels, 1);
      g_socket_close (socket, NULL);
    }
  idle_watch_end (socket);
  return G_SOURCE_REMOVE;
}

static void
watch_end (SoupServerMessage *msg)
{
  g_object_set_data (G_OBJECT (msg), WATCH_KEY, NULL);
}

char *
srv_watchdog_timeout_response (const char *path,
                               const char *request_id,
                               guint       timeout_s,
                               gsize      *length)
{
  g_autofree char *message = g_strdup_printf ("your connection sent nothing for %u s in the "
                                              "middle of a request; it is closed", timeout_s);
  g_autofree char *body = NULL;
  g_autofree char *extra = NULL;
  gboolean rest = g_str_has_prefix (path, "/v1/") || strcmp (path, "/v1") == 0;
  char *out;

  if (rest)
    body = srv_error_body ("request_timeout", message);
  else
    body = srv_s3_xml_error ("RequestTimeout", message, path, request_id ? request_id : "-");
  if (!rest && request_id != NULL)
    extra = g_strdup_printf ("x-amz-request-id: %s\r\n", request_id);
  out = g_strdup_printf ("HTTP/1.1 %s\r\n"
                         "Content-Type: %s\r\n"
                         "Content-Length: %" G_GSIZE_FORMAT "\r\n"
                         "%s"
                         "Connection: close\r\n"
                         "\r\n"
                         "%s",
                         rest ? "408 Request Timeout" : "400 Bad Request",
                         rest ? "application/json" : "application/xml",
                         strlen (body), extra ? extra : "", body);
  *length = strlen (out);
  return out;
}

static void
cut (Watch *w)
{
  SoupServerMessage *msg = w->msg;
  GSocket *socket = soup_server_message_get_socket (msg);
  GUri *uri = soup_server_message_get_uri (msg);
  const char *remote = soup_server_message_get_remote_host (msg);
  const char *stage = w->headers_in ? "body" : "headers";
  g_autofree char *labels = srv_metrics_labels ("stage", stage, NULL);

  if (socket == NULL)
    return;
  g_log_structured (G_LOG_DOMAIN, G_LOG_LEVEL_INFO,
                    "STAGE", stage,
                    "PATH", uri && w->headers_in ? g_uri_get_path (uri) : "-",
                    "REMOTE", remote ? remote : "-",
                    "MESSAGE", "client stalled; connection closed");
  srv_metrics_add (w->dog->ctx->metrics, "magpied_client_timeouts_total", labels, 1);
  if (w->headers_in && uri != NULL && soup_server_message_get_status (msg) == 0)
    {
      const char *request_id = soup_message_headers_get_one (
        soup_server_message_get_response_headers (msg), "x-amz-request-id");
      gsize len = 0;
      g_autofree char *reply = srv_watchdog_timeout_response (g_uri_get_path (uri), request_id,
                                                              w->dog->timeout_s, &len);

      /* Best effort: a few hundred bytes into an idle send buffer. */
      g_socket_send_with_blocking (socket, reply, len, FALSE, NULL, NULL);
    }
  g_socket_shutdown (socket, TRUE, TRUE, NULL);
}

static gboolean
watch_timeout_cb (gpointer user_data)
{
  Watch *w = user_data;
  gint64 idle = g_get_monotonic_time () - w->last_us;

  if (idle < w->dog->timeout_us)
    {
      w->source = g_timeout_add ((guint) ((w->dog->timeout_us - idle) / 1000) + 1,
                                 watch_timeout_cb, w);
      return G_SOURCE_REMOVE;
    }
  w->source = 0;
  cut (w);
  watch_end (w->msg);
  return G_SOURCE_REMOVE;
}

static void
progress_cb (SoupServerMessage *msg)
{
  Watch *w = g_object_get_data (G_OBJECT (msg), WATCH_KEY);

  if (w != NULL)
    w->last_us = g_get_monotonic_time ();
}

static void
got_headers_cb (SoupServerMessage *msg,
                gpointer           user_data)
{
  Watch *w = g_object_get_data (G_OBJECT (msg), WATCH_KEY);

  if (w != NULL)
    {
      w->headers_in = TRUE;
      w->last_us = g_get_monotonic_time ();
    }
}

static void
got_chunk_cb (SoupServerMessage *msg,
              GBytes            *chunk,
              gpointer           user_data)
{
  progress_cb (msg);
}

static void
done_cb (SoupServerMessage *msg,
         gpointer           user_data)
{
  watch_end (msg);
}

static void
request_started_cb (SoupServer        *soup,
                    SoupServerMessage *msg,
                    gpointer           user_data)
{
  SrvWatchdog *dog = user_data;
  GSocket *socket = soup_server_message_get_socket (msg);
  Watch *w = g_new0 (Watch, 1);

  if (socket != NULL)
    idle_watch_end (socket);
  g_atomic_ref_count_inc (&dog->ref);
  w->dog = dog;
  w->msg = msg;
  w->last_us = g_get_monotonic_time ();
  w->source = g_timeout_add ((guint) (dog->timeout_us / 1000), watch_timeout_cb, w);
  g_object_set_data_full (G_OBJECT (msg), WATCH_KEY, w, watch_free);
  g_signal_connect (msg, "got-headers", G_CALLBACK (got_headers_cb), NULL);
  g_signal_connect (msg, "got-chunk", G_CALLBACK (got_chunk_cb), NULL);
  g_signal_connect (msg, "got-body", G_CALLBACK (done_cb), NULL);
  g_signal_connect (msg, "finished", G_CALLBACK (done_cb), NULL);
}

/* Whether soup keeps the connection for another request: its own test, which libsoup 3.2 keeps
 * private (soup_server_message_is_keepalive). */
static gboolean
keeps_alive (SoupServerMessage *msg)
{
  SoupMessageHeaders *request = soup_server_message_get_request_headers (msg);
  SoupMessageHeaders *response = soup_server_message_get_response_headers (msg);

  if (soup_message_headers_get_encoding (response) == SOUP_ENCODING_EOF)
    return FALSE;
  if (soup_server_message_get_http_version (msg) == SOUP_HTTP_1_0)
    return soup_message_headers_header_contains (response, "Connection", "Keep-Alive");
  return !soup_message_headers_header_contains (request, "Connection", "close") &&
         !soup_message_headers_header_contains (response, "Connection", "close");
}

/* A response went out and the connection stays open for the next request. */
static void
request_finished_cb (SoupServer        *soup,
                     SoupServerMessage *msg,
                     gpointer           user_data)
{
  SrvWatchdog *dog = user_data;
  GSocket *socket = soup_server_message_get_socket (msg);
  IdleWatch *iw;

  if (socket == NULL || g_socket_is_closed (socket) || !keeps_alive (msg))
    return;
  iw = g_new0 (IdleWatch, 1);
  g_atomic_ref_count_inc (&dog->ref);
  iw->dog = dog;
  iw->socket = socket;
  iw->readable = g_socket_create_source (socket, G_IO_IN | G_IO_HUP | G_IO_ERR, NULL);
  g_source_set_callback (iw->readable, (GSourceFunc) G_CALLBACK (idle_readable_cb), iw, NULL);
  g_source_attach (iw->readable, g_main_context_get_thread_default ());
  iw->timer = g_timeout_add ((guint) (dog->timeout_us / 1000), idle_timeout_cb, iw);
  g_hash_table_add (dog->idle, iw);
  g_object_set_data_full (G_OBJECT (socket), IDLE_KEY, iw, idle_watch_free);
}

SrvWatchdog *
srv_watchdog_start (SrvContext *ctx)
{
  SrvWatchdog *dog = g_new0 (SrvWatchdog, 1);

  g_atomic_ref_count_init (&dog->ref);
  dog->ctx = ctx;
  dog->idle = g_hash_table_new (NULL, NULL);
  dog->timeout_s = MAX (1, ctx->config->client_timeout_s);
  dog->timeout_us = (gint64) dog->timeout_s * G_USEC_PER_SEC;
  srv_metrics_declare (ctx->metrics, "magpied_client_timeouts_total", SRV_METRIC_COUNTER,
                       "Connections closed because the client sent nothing for "
                       "--client-timeout: mid-request (headers, body) or between requests "
                       "(idle)", NULL, 0);
  g_signal_connect (ctx->soup, "request-started", G_CALLBACK (request_started_cb), dog);
  g_signal_connect (ctx->soup, "request-finished", G_CALLBACK (request_finished_cb), dog);
  return dog;
}

void
srv_watchdog_stop (SrvWatchdog *dog)
{
  g_autoptr(GHashTable) idle = NULL;
  GHashTableIter iter;
  gpointer iw;

  if (dog == NULL)
    return;
  g_signal_handlers_disconnect_by_data (dog->ctx->soup, dog);
  /* The idle watches' sources hold their sockets: end them, or neither is ever freed. */
  idle = g_steal_pointer (&dog->idle);
  g_hash_table_iter_init (&iter, idle);
  while (g_hash_table_iter_next (&iter, &iw, NULL))
    idle_watch_end (((IdleWatch *) iw)->socket);
  dog_unref (dog);
}
