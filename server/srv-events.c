/* srv-events.c - GET /v1/events: photo events per identity as Server-Sent Events
 *
 * The catalog calls us on the committing thread with (identity, event id); we hop to the main
 * context, and each subscriber of that identity reads its events newer than the last one it
 * sent from the catalog (on a worker thread) and appends them to its chunked response. The
 * same read serves a Last-Event-ID replay, so live and resumed streams cannot disagree, and
 * since event ids are assigned in commit order, reading "newer than mine" never skips one.
 */
#define G_LOG_DOMAIN "magpied-events"

#include "config.h"

#include "srv-events.h"

#include <string.h>

#include "srv-http.h"
#include "srv-reply.h"
#include "srv-sse.h"

struct _SrvEvents {
  gatomicrefcount  ref;          /* the context's, and one per notice in flight */
  SrvContext      *ctx;          /* NULL once stopped */
  GHashTable      *by_identity;  /* identity id → GPtrArray of Subscriber */
  guint            watch_id;
  guint            keepalive_id;
  guint            n_subscribers;

  GMutex           fetch_lock;   /* catalog reads in flight, so stop can wait for them */
  GCond            fetch_cond;
  guint            fetching;
};

typedef struct {
  gatomicrefcount    ref;
  SrvEvents         *events;
  SoupServerMessage *msg;
  char              *identity_id;
  gint64             last_id;     /* newest event sent; -1 until the stream has a position */
  gsize              pending;     /* bytes appended and not yet written to the socket */
  gboolean           fetching;
  gboolean           dirty;       /* news arrived while fetching: read again */
  gboolean           closed;
  gboolean           started;     /* the headers and the hello went out */
} Subscriber;

typedef struct {
  SrvEvents *events;
  SrvDb     *db;
  char      *identity_id;
  gint64     last_id;     /* in: -1 to start after the newest event; out: where it started */
} FetchData;

typedef struct {
  SrvEvents *events;
  char      *identity_id;
  gint64     event_id;
} Notice;

static SrvEvents *
events_ref (SrvEvents *events)
{
  g_atomic_ref_count_inc (&events->ref);
  return events;
}

static void
events_unref (SrvEvents *events)
{
  if (!g_atomic_ref_count_dec (&events->ref))
    return;
  g_mutex_clear (&events->fetch_lock);
  g_cond_clear (&events->fetch_cond);
  g_free (events);
}

static Subscriber *
subscriber_ref (Subscriber *sub)
{
  g_atomic_ref_count_inc (&sub->ref);
  return sub;
}

static void
subscriber_unref (Subscriber *sub)
{
  if (!g_atomic_ref_count_dec (&sub->ref))
    return;
  g_object_unref (sub->msg);
  g_free (sub->identity_id);
  g_free (sub);
}

static void subscriber_wrote_cb    (SoupServerMessage *msg, guint chunk_size, gpointer user_data);
static void subscriber_finished_cb (SoupServerMessage *msg, gpointer user_data);

/* Forgets @sub: off the table, signals disconnected. The stream itself is ended by the
 * caller (or has ended already). */
static void
subscriber_detach (Subscriber *sub)
{
  SrvEvents *events = sub->events;
  GPtrArray *subs;

  if (sub->closed)
    return;
  sub->closed = TRUE;
  g_signal_handlers_disconnect_by_func (sub->msg, subscriber_wrote_cb, sub);
  g_signal_handlers_disconnect_by_func (sub->msg, subscriber_finished_cb, sub);
  subs = g_hash_table_lookup (events->by_identity, sub->identity_id);
  if (subs != NULL)
    {
      g_ptr_array_remove_fast (subs, sub);   /* drops the table's reference */
      if (subs->len == 0)
        g_hash_table_remove (events->by_identity, sub->identity_id);
    }
  events->n_subscribers--;
}

static void
subscriber_finished_cb (SoupServerMessage *msg,
                        gpointer           user_data)
{
  Subscriber *sub = subscriber_ref (user_data);

  subscriber_detach (sub);
  subscriber_unref (sub);
}

/* Cuts the connection: the client sees the stream end and resumes with Last-Event-ID. */
static void
subscriber_drop (Subscriber *sub,
                 const char *why)
{
  GIOStream *conn;

  subscriber_ref (sub);
  g_log_structured (G_LOG_DOMAIN, G_LOG_LEVEL_INFO,
                    "IDENTITY", sub->identity_id, "REASON", why,
                    "MESSAGE", "event stream dropped");
  srv_metrics_add (sub->events->ctx->metrics, "magpied_sse_dropped_total", NULL, 1);
  subscriber_detach (sub);
  conn = soup_server_message_steal_connection (sub->msg);
  if (conn != NULL)
    {
      g_io_stream_close (conn, NULL, NULL);
      g_object_unref (conn);
    }
  subscriber_unref (sub);
}

static void
subscriber_wrote_cb (SoupServerMessage *msg,
                     guint              chunk_size,
                     gpointer           user_data)
{
  Subscriber *sub = user_data;

  sub->pending -= MIN (sub->pending, chunk_size);
}

/* Queues @text on the stream, or drops a subscriber that is too far behind. */
static void
subscriber_send (Subscriber *sub,
                 GString    *text)
{
  gsize len = text->len;

  if (sub->closed || len == 0)
    return;
  if (sub->pending + len > SRV_SSE_BUFFER_MAX)
    {
      subscriber_drop (sub, "client reads too slowly");
      return;
    }
  sub->pending += len;
  soup_message_body_append (soup_server_message_get_response_body (sub->msg),
                            SOUP_MEMORY_COPY, text->str, len);
  soup_server_message_unpause (sub->msg);
}

static void subscriber_fetch (Subscriber *sub);

static void
fetch_data_free (gpointer data)
{
  FetchData *fd = data;

  g_free (fd->identity_id);
  g_free (fd);
}

static void
fetch_thread (GTask        *task,
              gpointer      source,
              gpointer      task_data,
              GCancellable *cancellable)
{
  FetchData *fd = task_data;
  SrvEvents *events = fd->events;
  GError *error = NULL;
  GPtrArray *list = NULL;

  /* Asked of the catalog, not remembered here: another process (a worker node) may have
   * committed events this one never heard of. */
  if (fd->last_id < 0)
    fd->last_id = srv_db_last_event_id (fd->db, &error);
  if (fd->last_id >= 0)
    list = srv_db_events_since (fd->db, fd->identity_id, fd->last_id, SRV_SSE_FETCH_MAX, &error);

  if (list != NULL)
    g_task_return_pointer (task, list, (GDestroyNotify) g_ptr_array_unref);
  else
    g_task_return_error (task, error);

  g_mutex_lock (&events->fetch_lock);
  events->fetching--;
  g_cond_broadcast (&events->fetch_cond);
  g_mutex_unlock (&events->fetch_lock);
}

static void
fetch_done_cb (GObject      *source,
               GAsyncResult *result,
               gpointer      user_data)
{
  Subscriber *sub = user_data;
  FetchData *fd = g_task_get_task_data (G_TASK (result));
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) list = g_task_propagate_pointer (G_TASK (result), &error);
  g_autoptr(GString) out = NULL;

  sub->fetching = FALSE;
  if (sub->closed)
    goto out;
  if (list == NULL)
    {
      g_log_structured (G_LOG_DOMAIN, G_LOG_LEVEL_WARNING,
                        "ERROR", error->message, "MESSAGE", "cannot read events");
      subscriber_drop (sub, "catalog read failed");
      goto out;
    }
  sub->last_id = MAX (sub->last_id, fd->last_id);
  out = g_string_new (NULL);
  if (!sub->started)
    {
      /* The stream has a position now: only from here on may the client believe it is live. */
      srv_sse_append_retry (out, SRV_SSE_RETRY_MS);
      srv_sse_append_comment (out, "magpie events");
      sub->started = TRUE;
    }
  for (guint i = 0; i < list->len; i++)
    {
      const SrvEvent *event = list->pdata[i];

      srv_sse_append_event (out, event->id, srv_event_type_to_string (event->type), event->data);
      sub->last_id = event->id;
    }
  subscriber_send (sub, out);
  if (!sub->closed && (sub->dirty || list->len == SRV_SSE_FETCH_MAX))
    subscriber_fetch (sub);

out:
  subscriber_unref (sub);
}

/* Reads the subscriber's events newer than the last one sent; one read at a time. */
static void
subscriber_fetch (Subscriber *sub)
{
  SrvEvents *events = sub->events;
  g_autoptr(GTask) task = NULL;
  FetchData *fd;

  if (sub->closed)
    return;
  if (sub->fetching)
    {
      sub->dirty = TRUE;
      return;
    }
  sub->fetching = TRUE;
  sub->dirty = FALSE;
  fd = g_new0 (FetchData, 1);
  fd->events = events;
  fd->db = events->ctx->db;
  fd->identity_id = g_strdup (sub->identity_id);
  fd->last_id = sub->last_id;
  task = g_task_new (NULL, NULL, fetch_done_cb, subscriber_ref (sub));
  g_task_set_source_tag (task, subscriber_fetch);
  g_task_set_task_data (task, fd, fetch_data_free);
  g_mutex_lock (&events->fetch_lock);
  events->fetching++;
  g_mutex_unlock (&events->fetch_lock);
  g_task_run_in_thread (task, fetch_thread);
}

/* Main context: news for one identity. */
static gboolean
notice_cb (gpointer user_data)
{
  Notice *notice = user_data;
  SrvEvents *events = notice->events;
  GPtrArray *subs;

  if (events->ctx == NULL)
    return G_SOURCE_REMOVE;
  subs = g_hash_table_lookup (events->by_identity, notice->identity_id);
  for (guint i = 0; subs != NULL && i < subs->len; i++)
    subscriber_fetch (subs->pdata[i]);
  return G_SOURCE_REMOVE;
}

static void
notice_free (gpointer data)
{
  Notice *notice = data;

  events_unref (notice->events);
  g_free (notice->identity_id);
  g_free (notice);
}

/* The committing thread: hand the news to the main context and return at once. */
static void
event_committed_cb (const char *identity_id,
                    gint64      event_id,
                    gpointer    user_data)
{
  SrvEvents *events = user_data;
  Notice *notice = g_new0 (Notice, 1);

  notice->events = events_ref (events);
  notice->identity_id = g_strdup (identity_id);
  notice->event_id = event_id;
  g_main_context_invoke_full (events->ctx->main_context, G_PRIORITY_DEFAULT,
                              notice_cb, notice, notice_free);
}

static gboolean
keepalive_cb (gpointer user_data)
{
  SrvEvents *events = user_data;
  g_autoptr(GString) text = g_string_new (NULL);
  g_autoptr(GPtrArray) all = g_ptr_array_new_with_free_func ((GDestroyNotify) subscriber_unref);
  GHashTableIter iter;
  gpointer value;

  srv_sse_append_comment (text, "keep-alive");
  /* Sending may drop a subscriber, which edits the table: walk a copy. */
  g_hash_table_iter_init (&iter, events->by_identity);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    {
      GPtrArray *subs = value;

      for (guint i = 0; i < subs->len; i++)
        if (((Subscriber *) subs->pdata[i])->started)
          g_ptr_array_add (all, subscriber_ref (subs->pdata[i]));
    }
  for (guint i = 0; i < all->len; i++)
    subscriber_send (all->pdata[i], text);
  return G_SOURCE_CONTINUE;
}

static void
collect_events (SrvMetrics *metrics,
                gpointer    user_data)
{
  SrvEvents *events = user_data;

  srv_metrics_set (metrics, "magpied_sse_subscribers", NULL, events->n_subscribers);
}

static void
events_cb (SoupServer        *soup,
           SoupServerMessage *msg,
           const char        *path,
           GHashTable        *query,
           gpointer           user_data)
{
  SrvEvents *events = user_data;
  SoupMessageHeaders *headers;
  const char *last_event_id;
  g_autoptr(SrvCredentials) creds = NULL;
  g_autoptr(GString) hello = g_string_new (NULL);
  Subscriber *sub;
  GPtrArray *subs;
  gint64 resume_from = -1;

  if (strcmp (path, "/v1/events") != 0)
    {
      srv_reply_error (msg, SOUP_STATUS_NOT_FOUND, "not_found", "no such endpoint: %s", path);
      return;
    }
  if (!srv_http_check_method (msg, "GET"))
    return;
  creds = srv_http_authenticate (events->ctx, msg, query, TRUE);
  if (creds == NULL)
    return;
  last_event_id = soup_message_headers_get_one (soup_server_message_get_request_headers (msg),
                                                "Last-Event-ID");
  if (last_event_id != NULL && !srv_sse_parse_last_event_id (last_event_id, &resume_from))
    {
      srv_reply_error (msg, SOUP_STATUS_BAD_REQUEST, "bad_request",
                       "Last-Event-ID must be an event id this server sent");
      return;
    }

  headers = soup_server_message_get_response_headers (msg);
  soup_server_message_set_status (msg, SOUP_STATUS_OK, NULL);
  soup_message_headers_replace (headers, "Content-Type", "text/event-stream; charset=utf-8");
  soup_message_headers_replace (headers, "Cache-Control", "no-cache");
  /* nginx buffers responses unless told not to; a buffered stream is no stream. */
  soup_message_headers_replace (headers, "X-Accel-Buffering", "no");
  soup_message_headers_set_encoding (headers, SOUP_ENCODING_CHUNKED);
  soup_message_body_set_accumulate (soup_server_message_get_response_body (msg), FALSE);

  sub = g_new0 (Subscriber, 1);
  g_atomic_ref_count_init (&sub->ref);
  sub->events = events;
  sub->msg = g_object_ref (msg);
  sub->identity_id = g_strdup (creds->identity_id);
  sub->last_id = resume_from;
  subs = g_hash_table_lookup (events->by_identity, sub->identity_id);
  if (subs == NULL)
    {
      subs = g_ptr_array_new_with_free_func ((GDestroyNotify) subscriber_unref);
      g_hash_table_insert (events->by_identity, g_strdup (sub->identity_id), subs);
    }
  g_ptr_array_add (subs, sub);
  events->n_subscribers++;
  g_signal_connect (msg, "wrote-body-data", G_CALLBACK (subscriber_wrote_cb), sub);
  g_signal_connect (msg, "finished", G_CALLBACK (subscriber_finished_cb), sub);

  /* Something to send at once, so the headers go out and the client knows it is live; but a
   * new stream that starts after the newest event must first learn which that is, or an event
   * committed between a client seeing the headers and the read would be lost to it. Until
   * then the response waits, headers included. */
  if (resume_from >= 0)
    {
      srv_sse_append_retry (hello, SRV_SSE_RETRY_MS);
      srv_sse_append_comment (hello, "magpie events");
      sub->started = TRUE;
      subscriber_send (sub, hello);
    }
  else
    soup_server_message_pause (msg);
  subscriber_fetch (sub);
}

void
srv_events_start (SrvContext *ctx)
{
  SrvEvents *events;

  g_return_if_fail (ctx->events == NULL);

  events = g_new0 (SrvEvents, 1);
  g_atomic_ref_count_init (&events->ref);
  events->ctx = ctx;
  events->by_identity = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                               (GDestroyNotify) g_ptr_array_unref);
  g_mutex_init (&events->fetch_lock);
  g_cond_init (&events->fetch_cond);

  srv_metrics_declare (ctx->metrics, "magpied_sse_subscribers", SRV_METRIC_GAUGE,
                       "Open event streams (GET /v1/events)", NULL, 0);
  srv_metrics_declare (ctx->metrics, "magpied_sse_dropped_total", SRV_METRIC_COUNTER,
                       "Event streams cut off because the client fell too far behind", NULL, 0);
  srv_metrics_add_collector (ctx->metrics, collect_events, events);
  events->watch_id = srv_db_add_event_watch (ctx->db, event_committed_cb, events, NULL);
  events->keepalive_id = g_timeout_add_seconds (SRV_SSE_KEEPALIVE_S, keepalive_cb, events);
  soup_server_add_handler (ctx->soup, "/v1/events", events_cb, events, NULL);
  ctx->events = events;
}

void
srv_events_stop (SrvContext *ctx)
{
  SrvEvents *events = ctx->events;
  GHashTableIter iter;
  gpointer value;

  if (events == NULL)
    return;
  soup_server_remove_handler (ctx->soup, "/v1/events");
  srv_db_remove_event_watch (ctx->db, events->watch_id);
  g_source_remove (events->keepalive_id);

  /* End every stream cleanly: the body completes and soup finishes the message. */
  g_hash_table_iter_init (&iter, events->by_identity);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    {
      GPtrArray *subs = value;

      for (guint i = 0; i < subs->len; i++)
        {
          Subscriber *sub = subs->pdata[i];

          sub->closed = TRUE;
          g_signal_handlers_disconnect_by_func (sub->msg, subscriber_wrote_cb, sub);
          g_signal_handlers_disconnect_by_func (sub->msg, subscriber_finished_cb, sub);
          soup_message_body_complete (soup_server_message_get_response_body (sub->msg));
          soup_server_message_unpause (sub->msg);
        }
    }
  g_hash_table_remove_all (events->by_identity);
  events->n_subscribers = 0;

  g_mutex_lock (&events->fetch_lock);
  while (events->fetching > 0)
    g_cond_wait (&events->fetch_cond, &events->fetch_lock);
  g_mutex_unlock (&events->fetch_lock);

  /* The metrics collector keeps its pointer, but /metrics is no longer served. */
  g_hash_table_unref (events->by_identity);
  events->ctx = NULL;
  ctx->events = NULL;
  events_unref (events);
}
