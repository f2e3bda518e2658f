/* magpie-uploader.c - drains the outbox into the object store while the server is reachable
 *
 * For each entry: credentials (cached), then POST /v1/photos to ask whether the server already
 * has the object (content addressed: same bytes, same key), else a SigV4-signed PutObject
 * streamed from the stored file (a multipart upload for files over
 * MAGPIE_MULTIPART_THRESHOLD, see magpie-uploader-multipart.c), then POST /v1/photos.
 * Failures go back to the outbox, which retries with exponential backoff and jitter.
 *
 * MAGPIE_TEST_UPLOAD_RATE (bytes per second) paces the parts of multipart uploads. It is for
 * tests only, which must stop the app while a large photo is on its way; people never set it. */
#define G_LOG_DOMAIN "magpie-uploader"

#include "config.h"

#include "magpie-uploader.h"

#include <glib/gi18n.h>

#include "magpie-api.h"
#include "magpie-client-error.h"
#include "magpie-s3.h"
#include "magpie-uploader-private.h"

G_DEFINE_FINAL_TYPE (MagpieUploader, magpie_uploader, G_TYPE_OBJECT)

enum {
  PROP_0,
  PROP_N_ACTIVE,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

static void pump (MagpieUploader *self);

static void
upload_free (Upload *up)
{
  g_ptr_array_remove (up->self->uploads, up);
  _magpie_uploader_multipart_clear (up);
  g_clear_object (&up->cancellable);
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
  /* Given up on: the parts a multipart upload left on the store are aborted. */
  if (row != NULL && row->upload == MAGPIE_UPLOAD_FAILED && row->size > MAGPIE_MULTIPART_THRESHOLD)
    up->self->sweep_needed = TRUE;
  upload_done (up);
}

/* Ends @up: a @retryable failure goes back to the outbox for a later try. An upload stopped
 * on purpose ends without counting as a failure: a deleted photo's entry is released (undo
 * brings it back), and nothing is written while the uploader shuts down. */
void
_magpie_uploader_fail (Upload     *up,
                       const char *reason,
                       gboolean    retryable)
{
  if (g_cancellable_is_cancelled (up->self->cancellable))
    {
      upload_done (up);
      return;
    }
  if (up->abandoned || up->called_off)
    {
      /* Not failed: back in the outbox as it was, or released for undo. */
      g_debug ("Upload of %s stopped: %s", up->row->name,
               up->abandoned ? "the photo was deleted" : "working offline");
      magpie_outbox_release_async (up->self->outbox, up->row->id, NULL, recorded_cb, up);
      return;
    }
  g_message ("Upload of %s failed%s: %s", up->row->name, retryable ? " (will retry)" : "",
             reason);
  magpie_outbox_fail_async (up->self->outbox, up->row->id, reason, retryable, NULL, recorded_cb,
                            up);
}

/* No (usable) answer at all: the server may have gone, and the connection had better find out
 * now than at its next check, so that the outbox stops being drained into a void. */
static void
upload_fail_unanswered (Upload       *up,
                        const GError *error)
{
  if (!g_cancellable_is_cancelled (up->cancellable))
    magpie_connection_refresh (up->self->connection);
  _magpie_uploader_fail (up, error->message, TRUE);
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
      upload_fail_unanswered (up, error);
      return;
    }
  if (status == SOUP_STATUS_OK || status == SOUP_STATUS_CREATED)
    {
      magpie_library_apply_server_photo (up->self->library, body);
      /* A multipart upload the last run completed but did not get to forget is cleared by
       * the sweep once the photo is recorded as uploaded. */
      if (up->row->size > MAGPIE_MULTIPART_THRESHOLD)
        up->self->sweep_needed = TRUE;
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
  /* The session token was refused: the next try fetches new credentials. */
  if (status == SOUP_STATUS_UNAUTHORIZED)
    magpie_credentials_invalidate (up->self->credentials);
  _magpie_uploader_fail (up, message, status >= 500 || status == SOUP_STATUS_UNAUTHORIZED ||
                                      status == 429 /* Too Many Requests */);
}

void
_magpie_uploader_register_photo (Upload *up)
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
                            up->creds->api_token, body, up->cancellable,
                            registered_cb, up);
}

/* Tells the outbox (and so the tile) that @sent bytes are out: once per percent, since each
 * report is a database write. */
void
_magpie_uploader_report_progress (Upload  *up,
                                  goffset  sent)
{
  int percent = up->row->size > 0 ? (int) (sent * 100 / up->row->size) : 100;

  if (percent != up->last_percent)
    {
      up->last_percent = percent;
      magpie_outbox_set_progress (up->self->outbox, up->row->id, sent, up->row->size);
    }
}

static void
wrote_body_data_cb (SoupMessage *message,
                    guint        chunk_size,
                    gpointer     user_data)
{
  Upload *up = user_data;

  up->sent += chunk_size;
  _magpie_uploader_report_progress (up, up->sent);
}

static void
put_cb (GObject      *object,
        GAsyncResult *result,
        gpointer      user_data)
{
  Upload *up = user_data;
  SoupMessage *message = magpie_s3_send_get_message (result);
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) body = NULL;
  g_autofree char *code = NULL;
  g_autofree char *reason = NULL;
  guint status;

  body = magpie_s3_send_finish (SOUP_SESSION (object), result, &error);
  g_signal_handlers_disconnect_by_func (message, wrote_body_data_cb, up);
  if (body == NULL)
    {
      up->sent = 0;
      upload_fail_unanswered (up, error);
      return;
    }
  status = soup_message_get_status (message);
  if (SOUP_STATUS_IS_SUCCESSFUL (status))
    {
      up->self->n_put++;
      up->sent = MAX (up->sent, 1);
      _magpie_uploader_register_photo (up);
      return;
    }
  up->sent = 0;
  code = magpie_s3_error_code (body);
  if (magpie_s3_credentials_error (code))
    magpie_credentials_invalidate (up->self->credentials);
  /* Translators: %s is the storage's error code, %u an HTTP status */
  reason = g_strdup_printf (_("The storage refused the photo (%s, HTTP %u)"),
                            code != NULL ? code : "?", status);
  _magpie_uploader_fail (up, reason, status >= 500 || status == SOUP_STATUS_FORBIDDEN ||
                                     g_strcmp0 (code, "RequestTimeTooSkewed") == 0);
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
  const char *content_type = magpie_s3_content_type_for (up->row->extension);

  stream = g_file_read_finish (G_FILE (object), result, &error);
  if (stream == NULL)
    {
      _magpie_uploader_fail (up, error->message, FALSE);
      return;
    }
  /* The key is the SHA-256 of these very bytes, so the payload is signed without reading it
   * twice. */
  message = magpie_s3_message_new (up->creds, "PUT", up->key, NULL, content_type,
                                   up->row->sha256, &error);
  if (message == NULL)
    {
      _magpie_uploader_fail (up, error->message, TRUE);
      return;
    }
  soup_message_set_request_body (message, content_type, G_INPUT_STREAM (stream), up->row->size);

  up->sent = 0;
  up->last_percent = -1;
  g_signal_connect (message, "wrote-body-data", G_CALLBACK (wrote_body_data_cb), up);
  magpie_s3_send_async (up->self->session, message, up->cancellable, put_cb, up);
}

static void
put_object (Upload *up)
{
  g_autoptr(GFile) file = NULL;

  if (up->row->size > MAGPIE_MULTIPART_THRESHOLD)
    {
      _magpie_uploader_multipart (up);
      return;
    }
  file = magpie_outbox_get_photo_file (up->self->outbox, up->row->sha256, up->row->extension);
  g_file_read_async (file, G_PRIORITY_LOW, up->cancellable, opened_cb, up);
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
      _magpie_uploader_fail (up, error->message, TRUE);
      return;
    }
  up->key = magpie_outbox_object_key (up->creds->identity_id, up->row->sha256,
                                      up->row->extension);
  /* Asking first makes re-imports and restarts after a lost answer cost nothing. */
  up->sent = 0;
  _magpie_uploader_register_photo (up);
}

static void
start_upload (MagpieUploader *self,
              MagpieStoreRow *row)
{
  Upload *up = g_new0 (Upload, 1);

  g_debug ("Uploading %s", row->name);

  up->self = g_object_ref (self);
  up->row = row;
  up->cancellable = g_cancellable_new ();
  g_ptr_array_add (self->uploads, up);
  up->server_url = g_strdup (magpie_connection_get_server_url (self->connection));
  set_n_active (self, self->n_active + 1);
  magpie_credentials_get_async (self->credentials, up->server_url, up->cancellable,
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
  if (row != NULL && magpie_connection_get_state (self->connection) !=
                     MAGPIE_CONNECTION_STATE_ONLINE)
    {
      /* Offline since it was asked for: it stays in the outbox. */
      magpie_outbox_release_async (self->outbox, row->id, NULL, NULL, NULL);
      magpie_store_row_free (row);
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
  if (self->sweep_needed && !self->sweeping)
    _magpie_uploader_sweep (self);
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
retried_now_cb (GObject      *object,
                GAsyncResult *result,
                gpointer      user_data)
{
  g_autoptr(MagpieUploader) self = user_data;
  g_autoptr(GError) error = NULL;

  if (!magpie_outbox_retry_now_finish (MAGPIE_OUTBOX (object), result, &error))
    g_warning ("Cannot retry the outbox: %s", error->message);
  pump (self);
}

static void
state_changed_cb (MagpieUploader *self)
{
  MagpieConnectionState state = magpie_connection_get_state (self->connection);
  MagpieConnectionState last = self->last_state;

  self->last_state = state;
  if (state == MAGPIE_CONNECTION_STATE_ONLINE && last != MAGPIE_CONNECTION_STATE_ONLINE)
    {
      /* Back: what failed while the server was away goes now, not after its backoff. */
      g_clear_handle_id (&self->retry_source, g_source_remove);
      magpie_outbox_retry_now_async (self->outbox, NULL, retried_now_cb, g_object_ref (self));
    }
  else if (state == MAGPIE_CONNECTION_STATE_OFFLINE &&
           magpie_connection_get_work_offline (self->connection))
    {
      /* Work Offline means nothing more goes out, not even the rest of a photo (a multipart
       * upload keeps its parts and resumes from them later). */
      for (guint i = 0; i < self->uploads->len; i++)
        {
          Upload *up = self->uploads->pdata[i];

          up->called_off = TRUE;
          g_cancellable_cancel (up->cancellable);
        }
      g_clear_handle_id (&self->retry_source, g_source_remove);
    }
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

static gboolean
sweep_cb (gpointer user_data)
{
  MagpieUploader *self = user_data;

  self->sweep_source = 0;
  self->sweep_needed = TRUE;
  pump (self);
  return G_SOURCE_REMOVE;
}

/* New photos in the library are new entries in the outbox. A deleted photo's upload stops,
 * and its multipart upload is aborted once the library has marked it deleted (the idle runs
 * after magpie_library_remove() has queued that). */
static void
items_changed_cb (MagpieUploader *self,
                  guint           position,
                  guint           removed,
                  guint           added,
                  GListModel     *library)
{
  if (removed > 0)
    {
      for (guint i = 0; i < self->uploads->len; i++)
        {
          Upload *up = self->uploads->pdata[i];

          if (magpie_library_find (self->library, up->row->id) == NULL)
            {
              up->abandoned = TRUE;
              g_cancellable_cancel (up->cancellable);
            }
        }
      if (self->sweep_source == 0)
        self->sweep_source = g_idle_add (sweep_cb, self);
    }
  if (added > 0)
    pump (self);
}

static void
magpie_uploader_dispose (GObject *object)
{
  MagpieUploader *self = MAGPIE_UPLOADER (object);

  g_cancellable_cancel (self->cancellable);
  for (guint i = 0; i < self->uploads->len; i++)
    g_cancellable_cancel (((Upload *) self->uploads->pdata[i])->cancellable);
  g_clear_handle_id (&self->retry_source, g_source_remove);
  g_clear_handle_id (&self->sweep_source, g_source_remove);
  g_clear_object (&self->cancellable);
  g_clear_object (&self->session);
  g_clear_object (&self->library);
  g_clear_object (&self->outbox);
  g_clear_object (&self->connection);
  g_clear_object (&self->credentials);

  G_OBJECT_CLASS (magpie_uploader_parent_class)->dispose (object);
}

static void
magpie_uploader_finalize (GObject *object)
{
  MagpieUploader *self = MAGPIE_UPLOADER (object);

  /* Every upload holds a reference: none is left. */
  g_ptr_array_unref (self->uploads);

  G_OBJECT_CLASS (magpie_uploader_parent_class)->finalize (object);
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
  object_class->finalize = magpie_uploader_finalize;
  object_class->get_property = magpie_uploader_get_property;

  properties[PROP_N_ACTIVE] =
    g_param_spec_uint ("n-active", NULL, NULL, 0, G_MAXUINT, 0,
                       G_PARAM_READABLE | G_PARAM_STATIC_STRINGS | G_PARAM_EXPLICIT_NOTIFY);
  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void
magpie_uploader_init (MagpieUploader *self)
{
  const char *rate = g_getenv ("MAGPIE_TEST_UPLOAD_RATE");

  self->cancellable = g_cancellable_new ();
  self->uploads = g_ptr_array_new ();
  /* Anything left from an earlier run is aborted once the server is reachable. */
  self->sweep_needed = TRUE;
  if (rate != NULL &&
      !g_ascii_string_to_unsigned (rate, 10, 1, G_MAXUINT64, &self->test_rate, NULL))
    g_message ("MAGPIE_TEST_UPLOAD_RATE=%s is not a rate in bytes per second; ignored", rate);
  if (self->test_rate > 0)
    g_message ("Multipart uploads paced to %" G_GUINT64_FORMAT " bytes/s (a test setting)",
               self->test_rate);
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
  self->last_state = magpie_connection_get_state (connection);
  g_signal_connect_object (connection, "notify::state", G_CALLBACK (state_changed_cb), self,
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

/* How many multipart uploads were completed: for tests. */
guint
magpie_uploader_get_n_multipart (MagpieUploader *self)
{
  g_return_val_if_fail (MAGPIE_IS_UPLOADER (self), 0);
  return self->n_multipart;
}

/* How many abandoned multipart uploads the store aborted: for tests. */
guint
magpie_uploader_get_n_aborted (MagpieUploader *self)
{
  g_return_val_if_fail (MAGPIE_IS_UPLOADER (self), 0);
  return self->n_aborted;
}
