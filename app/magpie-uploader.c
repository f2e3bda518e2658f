/* magpie-uploader.c - drains the outbox into the object store while the server is reachable
 *
 * For each entry: credentials (cached), then POST /v1/photos to ask whether the server already
 * has the object (content addressed: same bytes, same key), else a SigV4-signed PutObject
 * streamed from the stored file, then POST /v1/photos. Failures go back to the outbox, which
 * retries with exponential backoff and jitter. */
#define G_LOG_DOMAIN "magpie-uploader"

#include "config.h"

#include "magpie-uploader.h"

#include <glib/gi18n.h>

#include "magpie-api.h"
#include "magpie-client-error.h"
#include "mp-sigv4.h"

struct _MagpieUploader {
  GObject            parent_instance;

  SoupSession       *session;
  MagpieLibrary     *library;
  MagpieOutbox      *outbox;
  MagpieConnection  *connection;
  MagpieCredentials *credentials;
  GCancellable      *cancellable;
  guint              retry_source;
  guint              n_active;
  guint              n_put;
  gboolean           taking;
  gboolean           again;    /* asked to look again while taking */
};

G_DEFINE_FINAL_TYPE (MagpieUploader, magpie_uploader, G_TYPE_OBJECT)

enum {
  PROP_0,
  PROP_N_ACTIVE,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

typedef struct {
  MagpieUploader      *self;
  MagpieStoreRow      *row;
  MagpieS3Credentials *creds;
  char                *server_url;
  char                *key;
  int                  last_percent;
  goffset              sent;
} Upload;

static void pump (MagpieUploader *self);

static void
upload_free (Upload *up)
{
  g_clear_pointer (&up->row, magpie_store_row_free);
  g_clear_pointer (&up->creds, magpie_s3_credentials_unref);
  g_free (up->server_url);
  g_free (up->key);
  g_clear_object (&up->self);
  g_free (up);
}

static void
set_n_active (MagpieUploader *self,
              guint           n)
{
  self->n_active = n;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_N_ACTIVE]);
}

static void
upload_done (Upload *up)
{
  MagpieUploader *self = up->self;

  set_n_active (self, self->n_active - 1);
  if (!g_cancellable_is_cancelled (self->cancellable))
    pump (self);
  upload_free (up);
}

/* The outbox has recorded how the upload ended (failed or completed); the slot is free. */
static void
recorded_cb (GObject      *object,
             GAsyncResult *result,
             gpointer      user_data)
{
  Upload *up = user_data;
  g_autoptr(MagpieStoreRow) row = NULL;
  g_autoptr(GError) error = NULL;

  row = magpie_outbox_update_finish (MAGPIE_OUTBOX (object), result, &error);
  if (row == NULL && error != NULL)
    g_warning ("Cannot record how the upload of %s ended: %s", up->row->name, error->message);
  upload_done (up);
}

static void
upload_fail (Upload     *up,
             const char *reason,
             gboolean    retryable)
{
  g_message ("Upload of %s failed%s: %s", up->row->name, retryable ? " (will retry)" : "",
             reason);
  magpie_outbox_fail_async (up->self->outbox, up->row->id, reason, retryable, NULL, recorded_cb,
                            up);
}

static void put_object (Upload *up);

static void
registered_cb (GObject      *object,
               GAsyncResult *result,
               gpointer      user_data)
{
  Upload *up = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) body = NULL;
  g_autofree char *message = NULL;
  guint status;

  body = magpie_api_request_finish (result, &status, &error);
  if (body == NULL)
    {
      upload_fail (up, error->message, TRUE);
      return;
    }
  if (status == SOUP_STATUS_OK || status == SOUP_STATUS_CREATED)
    {
      magpie_library_apply_server_photo (up->self->library, body);
      magpie_outbox_complete_async (up->self->outbox, up->row->id, NULL, recorded_cb, up);
      return;
    }
  /* Not there yet: send it (only the first time round; after a PUT it must be there). */
  if (status == SOUP_STATUS_NOT_FOUND && up->sent == 0)
    {
      put_object (up);
      return;
    }
  message = magpie_api_error_message (body, status);
  upload_fail (up, message, status >= 500 || status == SOUP_STATUS_UNAUTHORIZED ||
                            status == 429 /* Too Many Requests */);
}

static void
register_photo (Upload *up)
{
  g_autoptr(JsonBuilder) builder = json_builder_new ();
  g_autoptr(JsonNode) root = NULL;
  g_autofree char *body = NULL;

  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "key");
  json_builder_add_string_value (builder, up->key);
  json_builder_end_object (builder);
  root = json_builder_get_root (builder);
  body = json_to_string (root, FALSE);
  magpie_api_request_async (up->self->session, "POST", up->server_url, "/v1/photos",
                            up->creds->api_token, body, up->self->cancellable,
                            registered_cb, up);
}

static void
wrote_body_data_cb (SoupMessage *message,
                    guint        chunk_size,
                    gpointer     user_data)
{
  Upload *up = user_data;
  int percent;

  up->sent += chunk_size;
  percent = up->row->size > 0 ? (int) (up->sent * 100 / up->row->size) : 100;
  /* Each report is a database write: one per percent is smooth enough for the tile. */
  if (percent != up->last_percent)
    {
      up->last_percent = percent;
      magpie_outbox_set_progress (up->self->outbox, up->row->id, up->sent, up->row->size);
    }
}

static char *
s3_error_code (GBytes *body)
{
  gsize len;
  const char *data = body != NULL ? g_bytes_get_data (body, &len) : NULL;
  const char *start;
  const char *end;

  if (data == NULL)
    return NULL;
  start = g_strstr_len (data, len, "<Code>");
  end = start != NULL ? g_strstr_len (start, len - (start - data), "</Code>") : NULL;
  if (end == NULL)
    return NULL;
  return g_strndup (start + 6, end - start - 6);
}

static void
put_cb (GObject      *object,
        GAsyncResult *result,
        gpointer      user_data)
{
  Upload *up = user_data;
  SoupMessage *message = soup_session_get_async_result_message (SOUP_SESSION (object), result);
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) body = NULL;
  g_autofree char *code = NULL;
  g_autofree char *reason = NULL;
  guint status;

  body = soup_session_send_and_read_finish (SOUP_SESSION (object), result, &error);
  g_signal_handlers_disconnect_by_func (message, wrote_body_data_cb, up);
  if (body == NULL)
    {
      up->sent = 0;
      upload_fail (up, error->message, TRUE);
      return;
    }
  status = soup_message_get_status (message);
  if (SOUP_STATUS_IS_SUCCESSFUL (status))
    {
      up->self->n_put++;
      up->sent = MAX (up->sent, 1);
      register_photo (up);
      return;
    }
  up->sent = 0;
  code = s3_error_code (body);
  if (g_strcmp0 (code, "ExpiredToken") == 0 || g_strcmp0 (code, "InvalidAccessKeyId") == 0)
    magpie_credentials_invalidate (up->self->credentials);
  /* Translators: %s is the storage's error code, %u an HTTP status */
  reason = g_strdup_printf (_("The storage refused the photo (%s, HTTP %u)"),
                            code != NULL ? code : "?", status);
  upload_fail (up, reason, status >= 500 || status == SOUP_STATUS_FORBIDDEN ||
                           g_strcmp0 (code, "RequestTimeTooSkewed") == 0);
}

static const char *
content_type_for (const char *extension)
{
  g_autofree char *lower = g_ascii_strdown (extension, -1);

  if (g_str_equal (lower, "jpg") || g_str_equal (lower, "jpeg"))
    return "image/jpeg";
  if (g_str_equal (lower, "png"))
    return "image/png";
  if (g_str_equal (lower, "webp"))
    return "image/webp";
  if (g_str_equal (lower, "gif"))
    return "image/gif";
  return "application/octet-stream";
}

static void
opened_cb (GObject      *object,
           GAsyncResult *result,
           gpointer      user_data)
{
  Upload *up = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GFileInputStream) stream = NULL;
  g_autoptr(SoupMessage) message = NULL;
  g_autoptr(GUri) endpoint = NULL;
  g_autoptr(MpSigv4Signed) signed_request = NULL;
  g_autofree char *escaped_key = NULL;
  g_autofree char *path = NULL;
  g_autofree char *url = NULL;
  g_autofree char *host = NULL;
  const char *content_type = content_type_for (up->row->extension);
  SoupMessageHeaders *headers;
  MpSigv4Header sign_headers[2];
  MpSigv4Request request = { 0 };
  MpSigv4SigningParams params = { 0 };

  stream = g_file_read_finish (G_FILE (object), result, &error);
  if (stream == NULL)
    {
      upload_fail (up, error->message, FALSE);
      return;
    }
  endpoint = g_uri_parse (up->creds->endpoint, G_URI_FLAGS_NONE, &error);
  if (endpoint == NULL || g_uri_get_host (endpoint) == NULL)
    {
      upload_fail (up, _("The server named a storage address Magpie cannot use"), TRUE);
      return;
    }
  escaped_key = g_uri_escape_string (up->key, "/", FALSE);
  path = g_strconcat (g_str_has_suffix (g_uri_get_path (endpoint), "/") ?
                      "" : g_uri_get_path (endpoint), "/", up->creds->bucket, "/", escaped_key,
                      NULL);
  if (path[0] != '/')
    {
      g_autofree char *rooted = g_strconcat ("/", path, NULL);

      g_free (path);
      path = g_steal_pointer (&rooted);
    }
  host = g_uri_get_port (endpoint) > 0
         ? g_strdup_printf ("%s:%d", g_uri_get_host (endpoint), g_uri_get_port (endpoint))
         : g_strdup (g_uri_get_host (endpoint));
  url = g_strdup_printf ("%s://%s%s", g_uri_get_scheme (endpoint), host, path);
  message = soup_message_new ("PUT", url);
  if (message == NULL)
    {
      upload_fail (up, _("The server named a storage address Magpie cannot use"), TRUE);
      return;
    }

  sign_headers[0] = (MpSigv4Header) { "host", host };
  sign_headers[1] = (MpSigv4Header) { "content-type", content_type };
  request.method = "PUT";
  request.path = path;
  request.headers = sign_headers;
  request.n_headers = G_N_ELEMENTS (sign_headers);
  /* The key is the SHA-256 of these very bytes, so the payload is signed without reading it
   * twice. */
  request.payload_hash = up->row->sha256;
  params.access_key_id = up->creds->access_key_id;
  params.secret_access_key = up->creds->secret_access_key;
  params.session_token = up->creds->session_token;
  params.region = up->creds->region;
  params.service = "s3";
  params.now = g_get_real_time () / G_USEC_PER_SEC;
  params.flags = MP_SIGV4_FLAGS_S3;
  signed_request = mp_sigv4_sign (&request, &params, &error);
  if (signed_request == NULL)
    {
      upload_fail (up, error->message, FALSE);
      return;
    }
  headers = soup_message_get_request_headers (message);
  for (gsize i = 0; i < signed_request->n_set_headers; i++)
    soup_message_headers_replace (headers, signed_request->set_headers[i].name,
                                  signed_request->set_headers[i].value);
  soup_message_set_request_body (message, content_type, G_INPUT_STREAM (stream), up->row->size);

  up->sent = 0;
  up->last_percent = -1;
  g_signal_connect (message, "wrote-body-data", G_CALLBACK (wrote_body_data_cb), up);
  soup_session_send_and_read_async (up->self->session, message, G_PRIORITY_LOW,
                                    up->self->cancellable, put_cb, up);
}

static void
put_object (Upload *up)
{
  g_autoptr(GFile) file = magpie_outbox_get_photo_file (up->self->outbox, up->row->sha256,
                                                        up->row->extension);

  if (up->row->size > MAGPIE_UPLOADER_MULTIPART_THRESHOLD)
    g_info ("%s is %" G_GINT64_FORMAT " bytes: sent in one PUT (no multipart yet)",
            up->row->name, up->row->size);
  g_file_read_async (file, G_PRIORITY_LOW, up->self->cancellable, opened_cb, up);
}

static void
credentials_cb (GObject      *object,
                GAsyncResult *result,
                gpointer      user_data)
{
  Upload *up = user_data;
  g_autoptr(GError) error = NULL;

  up->creds = magpie_credentials_get_finish (MAGPIE_CREDENTIALS (object), result, &error);
  g_debug ("Credentials for %s: %s", up->row->name, error != NULL ? error->message : "ok");
  if (up->creds == NULL)
    {
      upload_fail (up, error->message, TRUE);
      return;
    }
  up->key = magpie_outbox_object_key (up->creds->identity_id, up->row->sha256,
                                      up->row->extension);
  /* Asking first makes re-imports and restarts after a lost answer cost nothing. */
  up->sent = 0;
  register_photo (up);
}

static void
start_upload (MagpieUploader *self,
              MagpieStoreRow *row)
{
  Upload *up = g_new0 (Upload, 1);

  g_debug ("Uploading %s", row->name);

  up->self = g_object_ref (self);
  up->row = row;
  up->server_url = g_strdup (magpie_connection_get_server_url (self->connection));
  set_n_active (self, self->n_active + 1);
  magpie_credentials_get_async (self->credentials, up->server_url, self->cancellable,
                                credentials_cb, up);
}

static gboolean
retry_cb (gpointer user_data)
{
  MagpieUploader *self = user_data;

  self->retry_source = 0;
  pump (self);
  return G_SOURCE_REMOVE;
}

static void
taken_cb (GObject      *object,
          GAsyncResult *result,
          gpointer      user_data)
{
  g_autoptr(MagpieUploader) self = user_data;
  g_autoptr(GError) error = NULL;
  MagpieStoreRow *row;
  gint64 next_due = 0;

  self->taking = FALSE;
  row = magpie_outbox_take_finish (MAGPIE_OUTBOX (object), result, &next_due, &error);
  if (g_cancellable_is_cancelled (self->cancellable))
    {
      g_clear_pointer (&row, magpie_store_row_free);
      return;
    }
  if (error != NULL)
    {
      g_warning ("Cannot take a photo from the outbox: %s", error->message);
      return;
    }
  if (row != NULL)
    {
      start_upload (self, row);
      pump (self);
      return;
    }
  if (self->again)
    {
      pump (self);
      return;
    }
  if (next_due > 0)
    {
      gint64 wait_ms = MAX ((next_due - g_get_real_time ()) / 1000, 50);

      g_clear_handle_id (&self->retry_source, g_source_remove);
      self->retry_source = g_timeout_add (MIN (wait_ms, G_MAXUINT), retry_cb, self);
    }
}

/* Takes due entries while uploads are free and the server is reachable. */
static void
pump (MagpieUploader *self)
{
  if (magpie_connection_get_state (self->connection) != MAGPIE_CONNECTION_STATE_ONLINE ||
      magpie_connection_get_server_url (self->connection) == NULL)
    return;
  if (self->taking)
    {
      self->again = TRUE;
      return;
    }
  if (self->n_active >= MAGPIE_UPLOADER_PARALLEL)
    return;
  self->taking = TRUE;
  self->again = FALSE;
  magpie_outbox_take_async (self->outbox, self->cancellable, taken_cb, g_object_ref (self));
}

/* Looks at the outbox again, e.g. after an import. */
void
magpie_uploader_kick (MagpieUploader *self)
{
  g_return_if_fail (MAGPIE_IS_UPLOADER (self));
  pump (self);
}

static void
entry_changed_cb (MagpieUploader *self,
                  gint64          id,
                  int             upload,
                  double          progress,
                  const char     *error,
                  MagpieOutbox   *outbox)
{
  if (upload == MAGPIE_UPLOAD_WAITING)
    pump (self);
}

/* New photos in the library are new entries in the outbox. */
static void
items_changed_cb (MagpieUploader *self,
                  guint           position,
                  guint           removed,
                  guint           added,
                  GListModel     *library)
{
  if (added > 0)
    pump (self);
}

static void
magpie_uploader_dispose (GObject *object)
{
  MagpieUploader *self = MAGPIE_UPLOADER (object);

  g_cancellable_cancel (self->cancellable);
  g_clear_handle_id (&self->retry_source, g_source_remove);
  g_clear_object (&self->cancellable);
  g_clear_object (&self->session);
  g_clear_object (&self->library);
  g_clear_object (&self->outbox);
  g_clear_object (&self->connection);
  g_clear_object (&self->credentials);

  G_OBJECT_CLASS (magpie_uploader_parent_class)->dispose (object);
}

static void
magpie_uploader_get_property (GObject    *object,
                              guint       prop_id,
                              GValue     *value,
                              GParamSpec *pspec)
{
  MagpieUploader *self = MAGPIE_UPLOADER (object);

  switch (prop_id)
    {
    case PROP_N_ACTIVE:
      g_value_set_uint (value, self->n_active);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
magpie_uploader_class_init (MagpieUploaderClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = magpie_uploader_dispose;
  object_class->get_property = magpie_uploader_get_property;

  properties[PROP_N_ACTIVE] =
    g_param_spec_uint ("n-active", NULL, NULL, 0, G_MAXUINT, 0,
                       G_PARAM_READABLE | G_PARAM_STATIC_STRINGS | G_PARAM_EXPLICIT_NOTIFY);
  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void
magpie_uploader_init (MagpieUploader *self)
{
  self->cancellable = g_cancellable_new ();
}

MagpieUploader *
magpie_uploader_new (SoupSession       *session,
                     MagpieLibrary     *library,
                     MagpieConnection  *connection,
                     MagpieCredentials *credentials)
{
  MagpieUploader *self;

  g_return_val_if_fail (SOUP_IS_SESSION (session), NULL);
  g_return_val_if_fail (MAGPIE_IS_LIBRARY (library), NULL);
  g_return_val_if_fail (MAGPIE_IS_CONNECTION (connection), NULL);
  g_return_val_if_fail (MAGPIE_IS_CREDENTIALS (credentials), NULL);

  self = g_object_new (MAGPIE_TYPE_UPLOADER, NULL);
  self->session = g_object_ref (session);
  self->library = g_object_ref (library);
  self->outbox = g_object_ref (magpie_library_get_outbox (library));
  self->connection = g_object_ref (connection);
  self->credentials = g_object_ref (credentials);
  g_signal_connect_object (connection, "notify::state", G_CALLBACK (magpie_uploader_kick), self,
                           G_CONNECT_SWAPPED);
  g_signal_connect_object (library, "items-changed", G_CALLBACK (items_changed_cb), self,
                           G_CONNECT_SWAPPED);
  g_signal_connect_object (self->outbox, "entry-changed", G_CALLBACK (entry_changed_cb), self,
                           G_CONNECT_SWAPPED);
  return self;
}

guint
magpie_uploader_get_n_active (MagpieUploader *self)
{
  g_return_val_if_fail (MAGPIE_IS_UPLOADER (self), 0);
  return self->n_active;
}

/* How many PutObject requests succeeded: for tests that check nothing is sent twice. */
guint
magpie_uploader_get_n_put (MagpieUploader *self)
{
  g_return_val_if_fail (MAGPIE_IS_UPLOADER (self), 0);
  return self->n_put;
}
