/* srv-http.c - handler plumbing: the blocking pool, replies built off-thread, streamed bodies */
#define G_LOG_DOMAIN "magpied"

#include "config.h"

#include "srv-http.h"

#include <string.h>

#include "srv-reply.h"

/* Big enough that a GET of a photo is a handful of writes, small enough that a hundred slow
 * readers hold little memory. */
#define SRV_HTTP_STREAM_CHUNK (256 * 1024)

struct _SrvHttpReply {
  SrvContext        *ctx;
  SoupServerMessage *msg;
  SrvHttpFunc        func;
  gpointer           user_data;
  GDestroyNotify     destroy;

  guint              status;
  GPtrArray         *headers;       /* name, value, name, value, ... */
  char              *content_type;
  GBytes            *body;
  GInputStream      *stream;
  gint64             stream_length;
};

typedef struct {
  SoupServerMessage *msg;
  GInputStream      *stream;
  gint64             remaining;
  GCancellable      *cancellable;
  gulong             finished_id;
  gboolean           reading;    /* a read is in flight: it frees a finished streamer */
  gboolean           finished;
} Streamer;

static void
reply_free (SrvHttpReply *reply)
{
  if (reply->destroy)
    reply->destroy (reply->user_data);
  g_clear_object (&reply->msg);
  g_ptr_array_unref (reply->headers);
  g_free (reply->content_type);
  g_clear_pointer (&reply->body, g_bytes_unref);
  g_clear_object (&reply->stream);
  g_free (reply);
}

static void
streamer_free (Streamer *s)
{
  if (s->finished_id)
    g_signal_handler_disconnect (s->msg, s->finished_id);
  g_cancellable_cancel (s->cancellable);
  g_object_unref (s->cancellable);
  g_input_stream_close (s->stream, NULL, NULL);
  g_object_unref (s->stream);
  g_object_unref (s->msg);
  g_free (s);
}

static void stream_next (Streamer *s);

static void
stream_read_cb (GObject      *source,
                GAsyncResult *result,
                gpointer      user_data)
{
  Streamer *s = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) bytes = g_input_stream_read_bytes_finish (G_INPUT_STREAM (source),
                                                              result, &error);

  s->reading = FALSE;
  if (s->finished)
    {
      /* The client went away while we read. */
      streamer_free (s);
      return;
    }
  if (bytes == NULL || g_bytes_get_size (bytes) == 0)
    {
      /* The object shrank or the disk failed under us. Content-Length was promised, so the
       * only honest end is to drop the connection; the client sees a short read. */
      g_log_structured (G_LOG_DOMAIN, G_LOG_LEVEL_WARNING,
                        "ERROR", error ? error->message : "unexpected end of data",
                        "MESSAGE", "response body stream failed");
      {
        GIOStream *conn = soup_server_message_steal_connection (s->msg);

        if (conn != NULL)
          {
            g_io_stream_close (conn, NULL, NULL);
            g_object_unref (conn);
          }
      }
      return;
    }

  s->remaining -= (gint64) g_bytes_get_size (bytes);
  soup_message_body_append_bytes (soup_server_message_get_response_body (s->msg), bytes);
  if (s->remaining <= 0)
    soup_message_body_complete (soup_server_message_get_response_body (s->msg));
  soup_server_message_unpause (s->msg);
}

static void
stream_next (Streamer *s)
{
  if (s->remaining <= 0 || s->reading || s->finished)
    return;
  s->reading = TRUE;
  g_input_stream_read_bytes_async (s->stream, MIN (s->remaining, SRV_HTTP_STREAM_CHUNK),
                                   G_PRIORITY_DEFAULT, s->cancellable, stream_read_cb, s);
}

static void
stream_wrote_chunk_cb (SoupServerMessage *msg,
                       gpointer           user_data)
{
  stream_next (user_data);
}

static void
stream_finished_cb (SoupServerMessage *msg,
                    gpointer           user_data)
{
  Streamer *s = user_data;

  g_signal_handlers_disconnect_by_func (msg, stream_wrote_chunk_cb, s);
  g_signal_handler_disconnect (msg, s->finished_id);
  s->finished_id = 0;
  s->finished = TRUE;
  g_cancellable_cancel (s->cancellable);
  if (!s->reading)
    streamer_free (s);
}

static void
start_stream (SoupServerMessage *msg,
              GInputStream      *stream,
              gint64             length)
{
  Streamer *s = g_new0 (Streamer, 1);
  SoupMessageHeaders *headers = soup_server_message_get_response_headers (msg);

  s->msg = g_object_ref (msg);
  s->stream = g_object_ref (stream);
  s->remaining = length;
  s->cancellable = g_cancellable_new ();
  /* Sent chunks are dropped, so a 5 GB object streams through 256 KiB of memory. */
  soup_message_body_set_accumulate (soup_server_message_get_response_body (msg), FALSE);
  soup_message_headers_set_encoding (headers, SOUP_ENCODING_CONTENT_LENGTH);
  soup_message_headers_set_content_length (headers, length);
  if (length <= 0 || soup_server_message_get_method (msg) == SOUP_METHOD_HEAD)
    {
      soup_message_body_complete (soup_server_message_get_response_body (msg));
      streamer_free (s);
      return;
    }
  g_signal_connect (msg, "wrote-chunk", G_CALLBACK (stream_wrote_chunk_cb), s);
  s->finished_id = g_signal_connect (msg, "finished", G_CALLBACK (stream_finished_cb), s);
  stream_next (s);
}

/* Back on the main context: copy the reply into the message and let soup send it. */
static gboolean
apply_reply_cb (gpointer user_data)
{
  SrvHttpReply *reply = user_data;
  SoupServerMessage *msg = reply->msg;
  SoupMessageHeaders *headers = soup_server_message_get_response_headers (msg);

  soup_server_message_set_status (msg, reply->status ? reply->status : SOUP_STATUS_OK, NULL);
  for (guint i = 0; i + 1 < reply->headers->len; i += 2)
    soup_message_headers_append (headers, reply->headers->pdata[i], reply->headers->pdata[i + 1]);

  if (reply->stream != NULL)
    {
      if (reply->content_type)
        soup_message_headers_replace (headers, "Content-Type", reply->content_type);
      start_stream (msg, reply->stream, reply->stream_length);
    }
  else if (reply->body != NULL)
    {
      gsize len;
      const char *data = g_bytes_get_data (reply->body, &len);

      soup_server_message_set_response (msg, reply->content_type, SOUP_MEMORY_COPY, data, len);
    }
  else if (reply->content_type != NULL)
    soup_server_message_set_response (msg, reply->content_type, SOUP_MEMORY_STATIC, "", 0);

  soup_server_message_unpause (msg);
  reply_free (reply);
  return G_SOURCE_REMOVE;
}

static void
pool_func (gpointer data,
           gpointer pool_data)
{
  SrvHttpReply *reply = data;

  reply->func (reply, reply->user_data);
  g_main_context_invoke_full (reply->ctx->main_context, G_PRIORITY_DEFAULT,
                              apply_reply_cb, reply, NULL);
}

GThreadPool *
srv_http_pool_new (void)
{
  return g_thread_pool_new (pool_func, NULL, SRV_HTTP_BLOCKING_THREADS, FALSE, NULL);
}

void
srv_http_offload (SrvContext        *ctx,
                  SoupServerMessage *msg,
                  SrvHttpFunc        func,
                  gpointer           user_data,
                  GDestroyNotify     destroy)
{
  SrvHttpReply *reply = g_new0 (SrvHttpReply, 1);

  reply->ctx = ctx;
  reply->msg = g_object_ref (msg);
  reply->func = func;
  reply->user_data = user_data;
  reply->destroy = destroy;
  reply->headers = g_ptr_array_new_with_free_func (g_free);

  soup_server_message_pause (msg);
  g_thread_pool_push (ctx->blocking, reply, NULL);
}

SoupServerMessage *
srv_http_reply_get_message (SrvHttpReply *reply)
{
  return reply->msg;
}

void
srv_http_reply_set_status (SrvHttpReply *reply,
                           guint         status)
{
  reply->status = status;
}

void
srv_http_reply_add_header (SrvHttpReply *reply,
                           const char   *name,
                           const char   *value)
{
  g_ptr_array_add (reply->headers, g_strdup (name));
  g_ptr_array_add (reply->headers, g_strdup (value));
}

void
srv_http_reply_set_body (SrvHttpReply *reply,
                         const char   *content_type,
                         GBytes       *body)
{
  g_free (reply->content_type);
  reply->content_type = g_strdup (content_type);
  g_clear_pointer (&reply->body, g_bytes_unref);
  reply->body = body;
}

void
srv_http_reply_set_stream (SrvHttpReply *reply,
                           const char   *content_type,
                           GInputStream *stream,
                           gint64        length)
{
  g_free (reply->content_type);
  reply->content_type = g_strdup (content_type);
  g_clear_object (&reply->stream);
  reply->stream = stream;
  reply->stream_length = length;
}

void
srv_http_reply_set_json (SrvHttpReply *reply,
                         guint         status,
                         JsonNode     *body)
{
  g_autoptr(JsonGenerator) gen = json_generator_new ();
  gsize len = 0;
  char *data;

  json_generator_set_root (gen, body);
  data = json_generator_to_data (gen, &len);
  reply->status = status;
  srv_http_reply_add_header (reply, "Cache-Control", "no-store");
  srv_http_reply_set_body (reply, "application/json", g_bytes_new_take (data, len));
}

void
srv_http_reply_set_error (SrvHttpReply *reply,
                          guint         status,
                          const char   *code,
                          const char   *format,
                          ...)
{
  char *body;
  va_list args;

  va_start (args, format);
  body = srv_error_body_valist (code, format, args);
  va_end (args);

  reply->status = status;
  srv_http_reply_add_header (reply, "Cache-Control", "no-store");
  srv_http_reply_set_body (reply, "application/json", g_bytes_new_take (body, strlen (body)));
}

SrvCredentials *
srv_http_authenticate (SrvContext        *ctx,
                       SoupServerMessage *msg,
                       GHashTable        *query,
                       gboolean           allow_query)
{
  SoupMessageHeaders *headers = soup_server_message_get_request_headers (msg);
  const char *auth = soup_message_headers_get_one (headers, "Authorization");
  const char *token = NULL;
  g_autoptr(GError) error = NULL;
  SrvCredentials *credentials;

  if (auth != NULL && g_ascii_strncasecmp (auth, "Bearer ", 7) == 0)
    token = auth + 7;
  else if (auth == NULL && allow_query && query != NULL)
    token = g_hash_table_lookup (query, "access_token");

  if (token == NULL || *token == '\0')
    {
      soup_message_headers_replace (soup_server_message_get_response_headers (msg),
                                    "WWW-Authenticate", "Bearer realm=\"magpie\"");
      srv_reply_error (msg, SOUP_STATUS_UNAUTHORIZED, "unauthorized",
                       "this endpoint needs Authorization: Bearer <session_token> "
                       "(from POST /v1/credentials)");
      return NULL;
    }

  credentials = srv_credentials_verify (ctx->keyring, token, g_get_real_time () / G_USEC_PER_SEC,
                                        &error);
  if (credentials == NULL)
    {
      const char *code = g_error_matches (error, SRV_TOKEN_ERROR, SRV_TOKEN_ERROR_EXPIRED)
                         ? "token_expired" : "invalid_token";

      soup_message_headers_replace (soup_server_message_get_response_headers (msg),
                                    "WWW-Authenticate",
                                    "Bearer realm=\"magpie\", error=\"invalid_token\"");
      srv_reply_error (msg, SOUP_STATUS_UNAUTHORIZED, code, "%s", error->message);
      return NULL;
    }
  return credentials;
}

JsonObject *
srv_http_parse_json (const char  *data,
                     gsize        len,
                     guint       *status,
                     GError     **error)
{
  g_autoptr(JsonParser) parser = json_parser_new_immutable ();
  g_autoptr(GError) local = NULL;
  JsonNode *root;

  *status = SOUP_STATUS_BAD_REQUEST;
  if (len > SRV_HTTP_JSON_BODY_MAX)
    {
      *status = SOUP_STATUS_REQUEST_ENTITY_TOO_LARGE;
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_MESSAGE_TOO_LARGE,
                   "request body is %" G_GSIZE_FORMAT " bytes; at most %d are accepted",
                   len, SRV_HTTP_JSON_BODY_MAX);
      return NULL;
    }
  if (len == 0)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   "request body is empty; a JSON object is expected");
      return NULL;
    }
  if (!json_parser_load_from_data (parser, data, (gssize) len, &local))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   "request body is not JSON: %s", local->message);
      return NULL;
    }
  root = json_parser_get_root (parser);
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   "request body must be a JSON object");
      return NULL;
    }
  return json_object_ref (json_node_get_object (root));
}

JsonObject *
srv_http_read_json (SoupServerMessage *msg)
{
  SoupMessageBody *body = soup_server_message_get_request_body (msg);
  g_autoptr(GBytes) bytes = NULL;
  g_autoptr(GError) error = NULL;
  JsonObject *o;
  guint status;
  gsize len;
  const char *data;

  if (body->length > SRV_HTTP_JSON_BODY_MAX)
    {
      srv_reply_error (msg, SOUP_STATUS_REQUEST_ENTITY_TOO_LARGE, "too_large",
                       "request body is %" G_GINT64_FORMAT " bytes; at most %d are accepted",
                       body->length, SRV_HTTP_JSON_BODY_MAX);
      return NULL;
    }
  bytes = soup_message_body_flatten (body);
  data = g_bytes_get_data (bytes, &len);
  o = srv_http_parse_json (data, len, &status, &error);
  if (o == NULL)
    srv_reply_error (msg, status, status == SOUP_STATUS_REQUEST_ENTITY_TOO_LARGE
                                  ? "too_large" : "bad_request", "%s", error->message);
  return o;
}

gboolean
srv_http_json_string (JsonObject  *o,
                      const char  *name,
                      gboolean     required,
                      const char **out,
                      GError     **error)
{
  JsonNode *node = json_object_get_member (o, name);

  *out = NULL;
  if (node == NULL || (!required && JSON_NODE_HOLDS_NULL (node)))
    {
      if (!required)
        return TRUE;
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "\"%s\" is required", name);
      return FALSE;
    }
  if (!JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_STRING)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "\"%s\" must be a string",
                   name);
      return FALSE;
    }
  *out = json_node_get_string (node);
  return TRUE;
}

gboolean
srv_http_json_int (JsonObject  *o,
                   const char  *name,
                   gint64      *out,
                   GError     **error)
{
  JsonNode *node = json_object_get_member (o, name);

  if (node == NULL || JSON_NODE_HOLDS_NULL (node))
    return TRUE;
  if (!JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_INT64)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "\"%s\" must be an integer",
                   name);
      return FALSE;
    }
  *out = json_node_get_int (node);
  return TRUE;
}

/* Request bodies held in memory */

typedef struct {
  SrvHttpBodyLimitFunc limit;
  gpointer             user_data;
} BodyBound;

typedef struct {
  gint64   max;
  gboolean refused;
} BodyState;

/* The body is not read (after Expect: 100-continue) or drained unkept, and the connection
 * closes after the error, so a client that keeps sending cannot desynchronise the next
 * request. */
static void
refuse_body (SoupServerMessage *msg,
             guint              status,
             const char        *code,
             const char        *message)
{
  soup_message_headers_replace (soup_server_message_get_response_headers (msg),
                                "Connection", "close");
  srv_reply_error (msg, status, code, "%s", message);
}

static void
bounded_chunk_cb (SoupServerMessage *msg,
                  GBytes            *chunk,
                  gpointer           user_data)
{
  BodyState *state = user_data;
  SoupMessageBody *body = soup_server_message_get_request_body (msg);
  g_autofree char *message = NULL;

  if (state->refused)
    return;
  if (body->length + (gint64) g_bytes_get_size (chunk) <= state->max)
    {
      soup_message_body_append_bytes (body, chunk);
      return;
    }
  state->refused = TRUE;
  soup_message_body_truncate (body);
  message = g_strdup_printf ("the request body is over the limit of %" G_GINT64_FORMAT
                             " bytes for this endpoint", state->max);
  refuse_body (msg, SOUP_STATUS_REQUEST_ENTITY_TOO_LARGE, "too_large", message);
}

static void
bound_got_headers_cb (SoupServerMessage *msg,
                      gpointer           user_data)
{
  BodyBound *bound = user_data;
  SoupMessageHeaders *headers = soup_server_message_get_request_headers (msg);
  SoupMessageBody *body = soup_server_message_get_request_body (msg);
  const char *coding = soup_message_headers_get_one (headers, "Content-Encoding");
  guint status = soup_server_message_get_status (msg);
  g_autofree char *message = NULL;
  BodyState *state;

  /* Answered already, or streamed by its handler (the S3 front spools to disk). 100 is soup's
   * provisional answer to Expect: 100-continue, which a refusal here replaces, so that the
   * client never sends the body at all. */
  if ((status != 0 && status != SOUP_STATUS_CONTINUE) || !soup_message_body_get_accumulate (body))
    return;
  soup_message_body_set_accumulate (body, FALSE);
  state = g_new0 (BodyState, 1);
  state->max = bound->limit (g_uri_get_path (soup_server_message_get_uri (msg)),
                             bound->user_data);
  g_object_set_data_full (G_OBJECT (msg), "srv-http-body-state", state, g_free);

  /* Inflating would make a small upload a large one (a gzip bomb); nothing here needs it. */
  if (coding != NULL && g_ascii_strcasecmp (coding, "identity") != 0)
    {
      message = g_strdup_printf ("Content-Encoding '%s' is not accepted: send the body "
                                 "uncompressed", coding);
      refuse_body (msg, SOUP_STATUS_UNSUPPORTED_MEDIA_TYPE, "unsupported_encoding", message);
      state->refused = TRUE;
      return;
    }
  if (soup_message_headers_get_encoding (headers) == SOUP_ENCODING_CONTENT_LENGTH &&
      soup_message_headers_get_content_length (headers) > state->max)
    {
      message = g_strdup_printf ("the request body of %" G_GINT64_FORMAT " bytes is over the "
                                 "limit of %" G_GINT64_FORMAT " bytes for this endpoint",
                                 soup_message_headers_get_content_length (headers), state->max);
      refuse_body (msg, SOUP_STATUS_REQUEST_ENTITY_TOO_LARGE, "too_large", message);
      state->refused = TRUE;
      return;
    }
  g_signal_connect (msg, "got-chunk", G_CALLBACK (bounded_chunk_cb), state);
}

static void
bound_request_started_cb (SoupServer        *soup,
                          SoupServerMessage *msg,
                          gpointer           user_data)
{
  /* Connected after soup's own got-headers handler, so it runs after the early handlers. */
  g_signal_connect (msg, "got-headers", G_CALLBACK (bound_got_headers_cb), user_data);
}

/* Emitted before the handler runs: the body is whole, and soup_message_body_flatten() wants
 * the accumulate flag back. */
static void
bound_request_read_cb (SoupServer        *soup,
                       SoupServerMessage *msg,
                       gpointer           user_data)
{
  if (g_object_get_data (G_OBJECT (msg), "srv-http-body-state") != NULL)
    soup_message_body_set_accumulate (soup_server_message_get_request_body (msg), TRUE);
}

void
srv_http_bound_bodies (SoupServer           *soup,
                       SrvHttpBodyLimitFunc  limit,
                       gpointer              user_data)
{
  BodyBound *bound = g_new0 (BodyBound, 1);

  bound->limit = limit;
  bound->user_data = user_data;
  g_signal_connect_data (soup, "request-started", G_CALLBACK (bound_request_started_cb), bound,
                         (GClosureNotify) G_CALLBACK (g_free), 0);
  g_signal_connect (soup, "request-read", G_CALLBACK (bound_request_read_cb), NULL);
}

gboolean
srv_http_check_method (SoupServerMessage *msg,
                       const char        *allowed)
{
  const char *method = soup_server_message_get_method (msg);
  g_auto(GStrv) names = g_strsplit (allowed, ",", -1);

  for (char **n = names; *n; n++)
    if (strcmp (g_strstrip (*n), method) == 0)
      return TRUE;

  soup_message_headers_replace (soup_server_message_get_response_headers (msg), "Allow", allowed);
  srv_reply_error (msg, SOUP_STATUS_METHOD_NOT_ALLOWED, "method_not_allowed",
                   "%s does not accept %s (allowed: %s)",
                   g_uri_get_path (soup_server_message_get_uri (msg)), method, allowed);
  return FALSE;
}
