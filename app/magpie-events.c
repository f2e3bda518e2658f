/* magpie-events.c - the server's live event stream (SSE): tags as the workers produce them
 *
 * One GET /v1/events while the server is reachable. Events carry the photo JSON; those about
 * photos in the library update them (matched by SHA-256, which is the object key). After every
 * (re)connect the app reconciles with GET /v1/photos, so an event missed while disconnected
 * cannot leave a photo waiting; Last-Event-ID resumes the stream where it stopped. */
#define G_LOG_DOMAIN "magpie-events"

#include "config.h"

#include "magpie-events.h"

#include <string.h>

#include "magpie-api.h"

/* A line longer than this is not an event Magpie understands (photo JSON is ~1 KB). */
#define MAGPIE_EVENTS_MAX_LINE (256 * 1024)
/* Pages asked of GET /v1/photos when reconciling. */
#define MAGPIE_EVENTS_PAGE 100

struct _MagpieEvents {
  GObject            parent_instance;

  SoupSession       *session;
  MagpieLibrary     *library;
  MagpieConnection  *connection;
  MagpieCredentials *credentials;
  GCancellable      *stream_cancellable;   /* the current attempt, NULL when idle */
  GDataInputStream  *stream;
  char              *last_event_id;
  char              *event_id;             /* fields of the event being read */
  char              *event_type;
  GString           *data;
  guint              reconnect_source;
  guint              attempts;
  guint              n_connects;
  gboolean           connected;
};

G_DEFINE_FINAL_TYPE (MagpieEvents, magpie_events, G_TYPE_OBJECT)

static void start (MagpieEvents *self);

/* A half-read event dies with its stream. */
static void
forget_partial_event (MagpieEvents *self)
{
  g_clear_pointer (&self->event_id, g_free);
  g_clear_pointer (&self->event_type, g_free);
  g_string_truncate (self->data, 0);
}

static gboolean
reconnect_cb (gpointer user_data)
{
  MagpieEvents *self = user_data;

  self->reconnect_source = 0;
  start (self);
  return G_SOURCE_REMOVE;
}

/* The stream ended or never started: try again after a backoff while the server is up. */
static void
schedule_reconnect (MagpieEvents *self)
{
  gint64 delay_ms;

  self->connected = FALSE;
  g_clear_object (&self->stream);
  g_clear_object (&self->stream_cancellable);
  forget_partial_event (self);
  if (magpie_connection_get_state (self->connection) != MAGPIE_CONNECTION_STATE_ONLINE)
    return;
  /* A stream that ends may be a server that went away: the connection checks at once, and if
   * so the state change stops the reconnecting until the server is back. */
  magpie_connection_refresh (self->connection);
  self->attempts = MIN (self->attempts + 1, 16);
  delay_ms = MIN ((gint64) 1000 << (self->attempts - 1), MAGPIE_EVENTS_MAX_BACKOFF_S * 1000);
  delay_ms = delay_ms / 2 + (gint64) (g_random_double () * delay_ms / 2);
  g_debug ("Event stream closed; reconnecting in %" G_GINT64_FORMAT " ms", delay_ms);
  g_clear_handle_id (&self->reconnect_source, g_source_remove);
  self->reconnect_source = g_timeout_add (delay_ms, reconnect_cb, self);
}

static void
dispatch (MagpieEvents *self)
{
  if (self->event_id != NULL)
    {
      g_free (self->last_event_id);
      self->last_event_id = g_steal_pointer (&self->event_id);
    }
  if (self->data->len > 0 && self->event_type != NULL &&
      g_str_has_prefix (self->event_type, "photo.") &&
      !g_str_equal (self->event_type, "photo.deleted"))
    {
      g_autoptr(JsonParser) parser = json_parser_new ();

      if (json_parser_load_from_data (parser, self->data->str, self->data->len, NULL))
        magpie_library_apply_server_photo (self->library, json_parser_get_root (parser));
      else
        g_debug ("Ignoring an event that is not JSON");
    }
  forget_partial_event (self);
}

/* One line of text/event-stream (the framing of the WHATWG spec, fields Magpie uses). */
static void
handle_line (MagpieEvents *self,
             const char   *line)
{
  const char *colon = strchr (line, ':');
  g_autofree char *field = NULL;
  const char *value;

  if (*line == '\0')
    {
      dispatch (self);
      return;
    }
  if (colon == line)
    return;  /* a comment: the keep-alive */
  field = colon != NULL ? g_strndup (line, colon - line) : g_strdup (line);
  value = colon != NULL ? colon + 1 : "";
  if (*value == ' ')
    value++;
  if (g_str_equal (field, "data"))
    {
      if (self->data->len > 0)
        g_string_append_c (self->data, '\n');
      g_string_append (self->data, value);
    }
  else if (g_str_equal (field, "event"))
    {
      g_free (self->event_type);
      self->event_type = g_strdup (value);
    }
  else if (g_str_equal (field, "id"))
    {
      g_free (self->event_id);
      self->event_id = g_strdup (value);
    }
}

static void read_next (MagpieEvents *self);

static void
line_cb (GObject      *object,
         GAsyncResult *result,
         gpointer      user_data)
{
  g_autoptr(MagpieEvents) self = user_data;
  g_autoptr(GError) error = NULL;
  g_autofree char *line = NULL;
  gsize len = 0;

  line = g_data_input_stream_read_line_finish_utf8 (G_DATA_INPUT_STREAM (object), result, &len,
                                                    &error);
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED) ||
      G_DATA_INPUT_STREAM (object) != self->stream)
    return;
  if (line == NULL || len > MAGPIE_EVENTS_MAX_LINE)
    {
      if (error != NULL)
        g_debug ("Event stream: %s", error->message);
      schedule_reconnect (self);
      return;
    }
  if (len > 0 && line[len - 1] == '\r')
    line[len - 1] = '\0';
  handle_line (self, line);
  read_next (self);
}

static void
read_next (MagpieEvents *self)
{
  g_data_input_stream_read_line_async (self->stream, G_PRIORITY_DEFAULT,
                                       self->stream_cancellable, line_cb, g_object_ref (self));
}

typedef struct {
  MagpieEvents        *self;
  MagpieS3Credentials *creds;
  char                *server_url;
  GCancellable        *cancellable;
} Reconcile;

static void
reconcile_free (Reconcile *r)
{
  g_object_unref (r->self);
  g_clear_pointer (&r->creds, magpie_s3_credentials_unref);
  g_free (r->server_url);
  g_object_unref (r->cancellable);
  g_free (r);
}

static void reconcile_page (Reconcile  *r,
                            const char *cursor);

static void
page_cb (GObject      *object,
         GAsyncResult *result,
         gpointer      user_data)
{
  Reconcile *r = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) body = NULL;
  JsonObject *root;
  JsonArray *photos;
  const char *cursor;
  guint status;

  body = magpie_api_request_finish (result, &status, &error);
  if (body == NULL || status != SOUP_STATUS_OK || !JSON_NODE_HOLDS_OBJECT (body))
    {
      if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        g_debug ("Cannot reconcile with the server's catalog (HTTP %u)", status);
      reconcile_free (r);
      return;
    }
  root = json_node_get_object (body);
  photos = json_object_has_member (root, "photos") &&
           JSON_NODE_HOLDS_ARRAY (json_object_get_member (root, "photos"))
           ? json_object_get_array_member (root, "photos") : NULL;
  for (guint i = 0; photos != NULL && i < json_array_get_length (photos); i++)
    magpie_library_apply_server_photo (r->self->library, json_array_get_element (photos, i));
  cursor = magpie_api_get_string (body, "next_cursor");
  if (cursor != NULL && *cursor != '\0' && photos != NULL && json_array_get_length (photos) > 0)
    reconcile_page (r, cursor);
  else
    reconcile_free (r);
}

static void
reconcile_page (Reconcile  *r,
                const char *cursor)
{
  g_autofree char *escaped = cursor != NULL ? g_uri_escape_string (cursor, NULL, FALSE) : NULL;
  g_autofree char *path = g_strdup_printf ("/v1/photos?limit=%d%s%s", MAGPIE_EVENTS_PAGE,
                                           escaped != NULL ? "&cursor=" : "",
                                           escaped != NULL ? escaped : "");

  magpie_api_request_async (r->self->session, "GET", r->server_url, path,
                            r->creds->api_token, NULL, r->cancellable, page_cb, r);
}

static void
sent_cb (GObject      *object,
         GAsyncResult *result,
         gpointer      user_data)
{
  SoupMessage *message = soup_session_get_async_result_message (SOUP_SESSION (object), result);
  Reconcile *r = user_data;
  MagpieEvents *self = r->self;
  g_autoptr(GError) error = NULL;
  g_autoptr(GInputStream) body = NULL;

  body = soup_session_send_finish (SOUP_SESSION (object), result, &error);
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED) ||
      r->cancellable != self->stream_cancellable)
    {
      reconcile_free (r);
      return;
    }
  if (body == NULL || soup_message_get_status (message) != SOUP_STATUS_OK)
    {
      g_debug ("Cannot open the event stream: %s",
               error != NULL ? error->message : soup_message_get_reason_phrase (message));
      if (soup_message_get_status (message) == SOUP_STATUS_UNAUTHORIZED)
        magpie_credentials_invalidate (self->credentials);
      /* A resume point the server no longer knows: start afresh, reconcile covers the gap. */
      if (soup_message_get_status (message) == SOUP_STATUS_BAD_REQUEST)
        g_clear_pointer (&self->last_event_id, g_free);
      reconcile_free (r);
      schedule_reconnect (self);
      return;
    }
  self->connected = TRUE;
  self->attempts = 0;
  self->n_connects++;
  g_debug ("Event stream open");
  self->stream = g_data_input_stream_new (body);
  g_data_input_stream_set_newline_type (self->stream, G_DATA_STREAM_NEWLINE_TYPE_ANY);
  read_next (self);
  /* Whatever happened while no stream was open. */
  reconcile_page (r, NULL);
}

static void
credentials_cb (GObject      *object,
                GAsyncResult *result,
                gpointer      user_data)
{
  Reconcile *r = user_data;
  MagpieEvents *self = r->self;
  g_autoptr(GError) error = NULL;
  g_autoptr(SoupMessage) message = NULL;
  g_autofree char *url = NULL;
  g_autofree char *bearer = NULL;
  SoupMessageHeaders *headers;

  r->creds = magpie_credentials_get_finish (MAGPIE_CREDENTIALS (object), result, &error);
  if (r->creds == NULL || r->cancellable != self->stream_cancellable)
    {
      gboolean current = r->cancellable == self->stream_cancellable;

      if (error != NULL && !g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        g_debug ("No credentials for the event stream: %s", error->message);
      reconcile_free (r);
      if (current)
        schedule_reconnect (self);
      return;
    }
  url = g_strconcat (r->server_url, g_str_has_suffix (r->server_url, "/") ? "" : "/",
                     "v1/events", NULL);
  message = soup_message_new ("GET", url);
  if (message == NULL)
    {
      reconcile_free (r);
      return;
    }
  headers = soup_message_get_request_headers (message);
  bearer = g_strconcat ("Bearer ", r->creds->api_token, NULL);
  soup_message_headers_replace (headers, "Authorization", bearer);
  soup_message_headers_replace (headers, "Accept", "text/event-stream");
  if (self->last_event_id != NULL)
    soup_message_headers_replace (headers, "Last-Event-ID", self->last_event_id);
  soup_session_send_async (self->session, message, G_PRIORITY_DEFAULT, r->cancellable, sent_cb,
                           r);
}

static void
start (MagpieEvents *self)
{
  const char *server_url = magpie_connection_get_server_url (self->connection);
  Reconcile *r;

  if (self->stream_cancellable != NULL || server_url == NULL ||
      magpie_connection_get_state (self->connection) != MAGPIE_CONNECTION_STATE_ONLINE)
    return;
  g_clear_handle_id (&self->reconnect_source, g_source_remove);
  self->stream_cancellable = g_cancellable_new ();
  r = g_new0 (Reconcile, 1);
  r->self = g_object_ref (self);
  r->server_url = g_strdup (server_url);
  r->cancellable = g_object_ref (self->stream_cancellable);
  magpie_credentials_get_async (self->credentials, server_url, r->cancellable, credentials_cb,
                                r);
}

/* Closes the stream (and stops reconnecting until the server is back online). */
void
magpie_events_disconnect (MagpieEvents *self)
{
  g_return_if_fail (MAGPIE_IS_EVENTS (self));

  g_clear_handle_id (&self->reconnect_source, g_source_remove);
  if (self->stream_cancellable != NULL)
    g_cancellable_cancel (self->stream_cancellable);
  g_clear_object (&self->stream_cancellable);
  g_clear_object (&self->stream);
  self->connected = FALSE;
  forget_partial_event (self);
}

static void
state_changed_cb (MagpieEvents *self)
{
  if (magpie_connection_get_state (self->connection) == MAGPIE_CONNECTION_STATE_ONLINE)
    start (self);
  else
    magpie_events_disconnect (self);
}

static void
server_url_changed_cb (MagpieEvents *self)
{
  magpie_events_disconnect (self);
  g_clear_pointer (&self->last_event_id, g_free);
  self->attempts = 0;
  start (self);
}

static void
identity_changed_cb (MagpieEvents *self)
{
  MagpieIdentity *identity = magpie_credentials_get_identity (self->credentials);

  /* NULL while a new identity is being found: the stream opened then asks for it. */
  if (magpie_identity_get_id (identity) == NULL && self->stream == NULL)
    return;
  server_url_changed_cb (self);
}

static void
magpie_events_dispose (GObject *object)
{
  MagpieEvents *self = MAGPIE_EVENTS (object);

  magpie_events_disconnect (self);
  g_clear_object (&self->session);
  g_clear_object (&self->library);
  g_clear_object (&self->connection);
  g_clear_object (&self->credentials);

  G_OBJECT_CLASS (magpie_events_parent_class)->dispose (object);
}

static void
magpie_events_finalize (GObject *object)
{
  MagpieEvents *self = MAGPIE_EVENTS (object);

  g_free (self->last_event_id);
  g_free (self->event_id);
  g_free (self->event_type);
  g_string_free (self->data, TRUE);

  G_OBJECT_CLASS (magpie_events_parent_class)->finalize (object);
}

static void
magpie_events_class_init (MagpieEventsClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = magpie_events_dispose;
  object_class->finalize = magpie_events_finalize;
}

static void
magpie_events_init (MagpieEvents *self)
{
  self->data = g_string_new (NULL);
}

MagpieEvents *
magpie_events_new (SoupSession       *session,
                   MagpieLibrary     *library,
                   MagpieConnection  *connection,
                   MagpieCredentials *credentials)
{
  MagpieEvents *self;

  g_return_val_if_fail (SOUP_IS_SESSION (session), NULL);
  g_return_val_if_fail (MAGPIE_IS_LIBRARY (library), NULL);
  g_return_val_if_fail (MAGPIE_IS_CONNECTION (connection), NULL);
  g_return_val_if_fail (MAGPIE_IS_CREDENTIALS (credentials), NULL);

  self = g_object_new (MAGPIE_TYPE_EVENTS, NULL);
  self->session = g_object_ref (session);
  self->library = g_object_ref (library);
  self->connection = g_object_ref (connection);
  self->credentials = g_object_ref (credentials);
  g_signal_connect_object (connection, "notify::state", G_CALLBACK (state_changed_cb), self,
                           G_CONNECT_SWAPPED);
  g_signal_connect_object (connection, "notify::server-url",
                           G_CALLBACK (server_url_changed_cb), self, G_CONNECT_SWAPPED);
  /* Signed in or out: another identity's stream, from its start. */
  g_signal_connect_object (magpie_credentials_get_identity (credentials), "notify::id",
                           G_CALLBACK (identity_changed_cb), self, G_CONNECT_SWAPPED);
  start (self);
  return self;
}

gboolean
magpie_events_get_connected (MagpieEvents *self)
{
  g_return_val_if_fail (MAGPIE_IS_EVENTS (self), FALSE);
  return self->connected;
}

/* The id of the last event received, sent as Last-Event-ID on reconnect. */
const char *
magpie_events_get_last_event_id (MagpieEvents *self)
{
  g_return_val_if_fail (MAGPIE_IS_EVENTS (self), NULL);
  return self->last_event_id;
}

/* How many times the stream was opened: for tests of reconnecting. */
guint
magpie_events_get_n_connects (MagpieEvents *self)
{
  g_return_val_if_fail (MAGPIE_IS_EVENTS (self), 0);
  return self->n_connects;
}
