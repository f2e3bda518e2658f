/* magpie-uploader-multipart.c - large photos go up in parts, and resume where they stopped
 *
 * CreateMultipartUpload, then UploadPart for each part (streamed from the photo's file and
 * signed with the part's SHA-256, computed off the main thread), then CompleteMultipartUpload
 * with the ETags, then POST /v1/photos as for any photo. The outbox records the upload id and
 * every confirmed part, so a later run (after a quit or a crash) asks the store which parts it
 * has (ListParts), checks them against its records and sends only the others; an upload id the
 * store no longer knows (NoSuchUpload) starts over cleanly.
 *
 * Each step (listing, creating, a part, completing) is retried here with the outbox's backoff
 * up to MAGPIE_UPLOADER_STEP_ATTEMPTS times; credentials are asked for before every part, so a
 * long upload refreshes them before they expire, and a store that calls them stale gets the
 * step again with fresh ones at once. Past that the photo goes back to the outbox, failed with
 * a reason the tile shows.
 *
 * The sweep aborts uploads whose photo was deleted (or that another upload of the photo
 * replaced), so no part is left on the store for good.
 */
#define G_LOG_DOMAIN "magpie-uploader"

#include "config.h"

#include <glib/gi18n.h>
#include <string.h>

#include "magpie-client-error.h"
#include "magpie-range-stream.h"
#include "magpie-s3.h"
#include "magpie-uploader-private.h"

#define MAGPIE_UPLOADER_HASH_CHUNK (256 * 1024)

static void list_parts   (Upload *up);
static void create       (Upload *up);
static void next_part    (Upload *up);
static void complete     (Upload *up);

void
_magpie_uploader_multipart_clear (Upload *up)
{
  g_clear_handle_id (&up->step_source, g_source_remove);
  g_clear_pointer (&up->record, magpie_multipart_record_free);
  g_clear_pointer (&up->listed, g_array_unref);
  g_clear_pointer (&up->plan, g_array_unref);
  g_clear_pointer (&up->part_sha256, g_free);
}

static gboolean
stopped (Upload *up)
{
  if (!g_cancellable_is_cancelled (up->cancellable) &&
      !g_cancellable_is_cancelled (up->self->cancellable))
    return FALSE;
  _magpie_uploader_fail (up, "stopped", TRUE);
  return TRUE;
}

static MagpiePlannedPart *
current_part (Upload *up)
{
  return &g_array_index (up->plan, MagpiePlannedPart, up->part);
}

static void with_credentials (Upload     *up,
                              UploadStep  step);

static gboolean
step_cb (gpointer user_data)
{
  Upload *up = user_data;

  up->step_source = 0;
  if (!stopped (up))
    with_credentials (up, up->step);
  return G_SOURCE_REMOVE;
}

/* Runs @step again after a failure, with credentials asked for again: at once when the
 * store called the last ones stale (@now), otherwise after the outbox's backoff. Past
 * MAGPIE_UPLOADER_STEP_ATTEMPTS tries the photo goes back to the outbox with @reason. */
static void
retry (Upload     *up,
       UploadStep  step,
       const char *reason,
       gboolean    now)
{
  gint64 wait_us;

  up->step = step;
  up->step_attempts++;
  if (up->step_attempts >= MAGPIE_UPLOADER_STEP_ATTEMPTS)
    {
      _magpie_uploader_fail (up, reason, TRUE);
      return;
    }
  wait_us = now ? 0 : magpie_outbox_backoff_us (up->step_attempts, g_random_double ());
  g_message ("%s: %s; trying again in %.1f s", up->row->name, reason,
             wait_us / (double) G_USEC_PER_SEC);
  up->step_source = g_timeout_add (wait_us / 1000, step_cb, up);
}

static void
step_done (Upload *up)
{
  up->step_attempts = 0;
}

static void
forget_record (Upload *up)
{
  if (up->record == NULL)
    return;
  magpie_outbox_forget_multipart_async (up->self->outbox, up->record->id, NULL, NULL, NULL);
  g_clear_pointer (&up->record, magpie_multipart_record_free);
}

/* The store lost the upload (NoSuchUpload) or will not assemble it: begin a new one, once. */
static void
start_over (Upload     *up,
            const char *code)
{
  g_message ("%s: the store answered %s for upload %s; starting over", up->row->name, code,
             up->record != NULL ? up->record->upload_id : "?");
  if (up->started_over)
    {
      /* Translators: %s is the storage's error code */
      g_autofree char *reason = g_strdup_printf (_("The storage lost the upload twice (%s)"),
                                                 code);

      _magpie_uploader_fail (up, reason, TRUE);
      return;
    }
  up->started_over = TRUE;
  forget_record (up);
  g_clear_pointer (&up->plan, g_array_unref);
  g_clear_pointer (&up->listed, g_array_unref);
  create (up);
}

/* A store's answer that is not a success, at @step: stale credentials are replaced and the
 * step runs again at once; throttling and server errors are retried after a backoff;
 * anything else fails the photo with the store's code in plain words. */
static void
store_refused (Upload     *up,
               UploadStep  step,
               SoupMessage *message,
               GBytes     *body)
{
  guint status = soup_message_get_status (message);
  g_autofree char *code = magpie_s3_error_code (body);
  g_autofree char *reason = NULL;
  gboolean transient;

  if (up->plan != NULL && step == next_part)
    /* Translators: %u part number, %u number of parts, %s the storage's error code, %u an HTTP
     * status */
    reason = g_strdup_printf (_("The storage refused part %u of %u (%s, HTTP %u)"),
                              current_part (up)->number, up->plan->len,
                              code != NULL ? code : "?", status);
  else
    /* Translators: %s is the storage's error code, %u an HTTP status */
    reason = g_strdup_printf (_("The storage refused the photo (%s, HTTP %u)"),
                              code != NULL ? code : "?", status);

  if (magpie_s3_credentials_error (code))
    {
      magpie_credentials_invalidate (up->self->credentials);
      retry (up, step, reason, TRUE);
      return;
    }
  if (g_strcmp0 (code, "NoSuchUpload") == 0 && up->record != NULL)
    {
      start_over (up, code);
      return;
    }
  transient = status >= 500 || status == SOUP_STATUS_REQUEST_TIMEOUT || status == 429 ||
              g_strcmp0 (code, "SlowDown") == 0 || g_strcmp0 (code, "RequestTimeout") == 0 ||
              g_strcmp0 (code, "RequestTimeTooSkewed") == 0 ||
              g_strcmp0 (code, "InternalError") == 0;
  if (transient)
    retry (up, step, reason, FALSE);
  else
    _magpie_uploader_fail (up, reason, status == SOUP_STATUS_FORBIDDEN);
}

/* Fresh credentials before each request: cached ones unless they are about to expire. */
static void
with_credentials_cb (GObject      *object,
                     GAsyncResult *result,
                     gpointer      user_data)
{
  Upload *up = user_data;
  g_autoptr(GError) error = NULL;
  MagpieS3Credentials *creds;

  creds = magpie_credentials_get_finish (MAGPIE_CREDENTIALS (object), result, &error);
  if (stopped (up))
    {
      g_clear_pointer (&creds, magpie_s3_credentials_unref);
      return;
    }
  if (creds == NULL)
    {
      retry (up, up->step, error->message, FALSE);
      return;
    }
  g_clear_pointer (&up->creds, magpie_s3_credentials_unref);
  up->creds = creds;
  up->step (up);
}

/* Runs @step with credentials that are good for a while yet. */
static void
with_credentials (Upload     *up,
                  UploadStep  step)
{
  up->step = step;
  magpie_credentials_get_async (up->self->credentials, up->server_url, up->cancellable,
                                with_credentials_cb, up);
}

static SoupMessage *
new_message (Upload     *up,
             const char *method,
             const char *query,
             const char *content_type,
             const char *payload_hash)
{
  g_autoptr(GError) error = NULL;
  SoupMessage *message;

  message = magpie_s3_message_new (up->creds, method, up->key, query, content_type,
                                   payload_hash, &error);
  if (message == NULL)
    _magpie_uploader_fail (up, error->message, TRUE);
  return message;
}

static char *
escaped_upload_id (Upload *up)
{
  return g_uri_escape_string (up->record->upload_id, NULL, FALSE);
}

/* Completing -------------------------------------------------------------------------------- */

static void
completed_cb (GObject      *object,
              GAsyncResult *result,
              gpointer      user_data)
{
  Upload *up = user_data;
  SoupMessage *message = magpie_s3_send_get_message (result);
  g_autoptr(GBytes) body = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *code = NULL;

  body = magpie_s3_send_finish (SOUP_SESSION (object), result, &error);
  if (stopped (up))
    return;
  if (body == NULL)
    {
      retry (up, complete, error->message, FALSE);
      return;
    }
  /* S3 may answer 200 and still fail: the error is then the body. */
  code = magpie_s3_error_code (body);
  if (SOUP_STATUS_IS_SUCCESSFUL (soup_message_get_status (message)) && code == NULL)
    {
      g_info ("%s: %u parts assembled by the store", up->row->name, up->plan->len);
      forget_record (up);
      up->self->n_multipart++;
      up->sent = up->row->size;
      _magpie_uploader_report_progress (up, up->sent);
      _magpie_uploader_register_photo (up);
      return;
    }
  if (g_strcmp0 (code, "NoSuchUpload") == 0)
    {
      /* Completed by an earlier try whose answer was lost, or lost: the server knows which. */
      forget_record (up);
      up->sent = up->row->size;
      _magpie_uploader_register_photo (up);
      return;
    }
  if (g_strcmp0 (code, "InvalidPart") == 0 || g_strcmp0 (code, "InvalidPartOrder") == 0 ||
      g_strcmp0 (code, "EntityTooSmall") == 0)
    {
      start_over (up, code);
      return;
    }
  store_refused (up, complete, message, body);
}

static void
complete (Upload *up)
{
  g_autofree char *xml = magpie_s3_complete_xml (up->plan);
  g_autofree char *sha256 = g_compute_checksum_for_string (G_CHECKSUM_SHA256, xml, -1);
  g_autofree char *id = escaped_upload_id (up);
  g_autofree char *query = g_strdup_printf ("uploadId=%s", id);
  g_autoptr(SoupMessage) message = NULL;
  g_autoptr(GBytes) bytes = NULL;
  gsize len = strlen (xml);

  up->step = complete;
  message = new_message (up, "POST", query, "application/xml", sha256);
  if (message == NULL)
    return;
  bytes = g_bytes_new_take (g_steal_pointer (&xml), len);
  soup_message_set_request_body_from_bytes (message, "application/xml", bytes);
  magpie_s3_send_async (up->self->session, message, up->cancellable, completed_cb, up);
}

/* Parts --------------------------------------------------------------------------------------- */

static void
part_wrote_cb (SoupMessage *message,
               guint        chunk_size,
               gpointer     user_data)
{
  Upload *up = user_data;

  up->part_sent += chunk_size;
  _magpie_uploader_report_progress (up, up->sent + up->part_sent);
}

static void
part_done (Upload     *up,
           const char *etag)
{
  MagpiePlannedPart *part = current_part (up);
  MagpiePart record = { part->number, part->size, (char *) etag };

  if (part->etag != etag)
    {
      g_free (part->etag);
      part->etag = g_strdup (etag);
    }
  part->state = MAGPIE_PART_DONE;
  magpie_outbox_add_part_async (up->self->outbox, up->record->id, &record, NULL, NULL, NULL);
  up->sent += part->size;
  up->part_sent = 0;
  step_done (up);
  _magpie_uploader_report_progress (up, up->sent);
  up->part++;
  next_part (up);
}

/* Whether the photo's own copy has become shorter than it was at import: then a refused or
 * broken part is the file's fault, not the storage's, and trying again cannot help. */
static gboolean
file_shrank (Upload *up)
{
  g_autoptr(GFile) file = magpie_outbox_get_photo_file (up->self->outbox, up->row->sha256,
                                                        up->row->extension);
  g_autoptr(GFileInfo) info = g_file_query_info (file, G_FILE_ATTRIBUTE_STANDARD_SIZE,
                                                 G_FILE_QUERY_INFO_NONE, NULL, NULL);

  if (info == NULL || g_file_info_get_size (info) >= up->row->size)
    return FALSE;
  _magpie_uploader_fail (up, _("The photo’s file is shorter than when it was imported"), FALSE);
  return TRUE;
}

static void
part_sent_cb (GObject      *object,
              GAsyncResult *result,
              gpointer      user_data)
{
  Upload *up = user_data;
  SoupMessage *message = magpie_s3_send_get_message (result);
  g_autoptr(GBytes) body = NULL;
  g_autoptr(GError) error = NULL;
  const char *etag;

  body = magpie_s3_send_finish (SOUP_SESSION (object), result, &error);
  g_signal_handlers_disconnect_by_func (message, part_wrote_cb, up);
  up->part_sent = 0;
  if (stopped (up))
    return;
  if ((body == NULL || !SOUP_STATUS_IS_SUCCESSFUL (soup_message_get_status (message))) &&
      file_shrank (up))
    return;
  if (body == NULL)
    {
      retry (up, next_part, error->message, FALSE);
      return;
    }
  if (!SOUP_STATUS_IS_SUCCESSFUL (soup_message_get_status (message)))
    {
      store_refused (up, next_part, message, body);
      return;
    }
  etag = soup_message_headers_get_one (soup_message_get_response_headers (message), "ETag");
  if (etag == NULL || *etag == '\0' || strlen (etag) > 1024)
    {
      retry (up, next_part, _("The storage did not confirm a part"), FALSE);
      return;
    }
  g_debug ("%s: part %u of %u stored", up->row->name, current_part (up)->number,
           up->plan->len);
  part_done (up, etag);
}

static void
part_opened_cb (GObject      *object,
                GAsyncResult *result,
                gpointer      user_data)
{
  Upload *up = user_data;
  MagpiePlannedPart *part;
  g_autoptr(GFileInputStream) file_stream = NULL;
  g_autoptr(GInputStream) stream = NULL;
  g_autoptr(SoupMessage) message = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *id = NULL;
  g_autofree char *query = NULL;

  file_stream = g_file_read_finish (G_FILE (object), result, &error);
  if (stopped (up))
    return;
  part = current_part (up);
  if (file_stream == NULL ||
      !g_seekable_seek (G_SEEKABLE (file_stream), part->offset, G_SEEK_SET, up->cancellable,
                        &error))
    {
      _magpie_uploader_fail (up, error->message, FALSE);
      return;
    }
  id = escaped_upload_id (up);
  query = g_strdup_printf ("partNumber=%u&uploadId=%s", part->number, id);
  message = new_message (up, "PUT", query, NULL, up->part_sha256);
  if (message == NULL)
    return;
  stream = magpie_range_stream_new (G_INPUT_STREAM (file_stream), part->size,
                                    up->self->test_rate);
  soup_message_set_request_body (message, NULL, stream, part->size);
  up->part_sent = 0;
  g_signal_connect (message, "wrote-body-data", G_CALLBACK (part_wrote_cb), up);
  magpie_s3_send_async (up->self->session, message, up->cancellable, part_sent_cb, up);
}

/* With credentials: the part's bytes go out, streamed from the file. */
static void
send_part (Upload *up)
{
  g_autoptr(GFile) file = magpie_outbox_get_photo_file (up->self->outbox, up->row->sha256,
                                                        up->row->extension);

  g_file_read_async (file, G_PRIORITY_LOW, up->cancellable, part_opened_cb, up);
}

typedef struct {
  GFile  *file;
  gint64  offset;
  gint64  size;
  char   *sha256;
  char   *md5;
} HashJob;

static void
hash_job_free (HashJob *job)
{
  g_clear_object (&job->file);
  g_free (job->sha256);
  g_free (job->md5);
  g_free (job);
}

/* Thread: the SHA-256 that signs the part, and its MD5 (what S3 and magpied give as its ETag,
 * for checking a part the store has but this client never recorded). */
static void
hash_thread (GTask        *task,
             gpointer      source_object,
             gpointer      task_data,
             GCancellable *cancellable)
{
  HashJob *job = task_data;
  g_autoptr(GFileInputStream) in = NULL;
  g_autoptr(GChecksum) sha256 = g_checksum_new (G_CHECKSUM_SHA256);
  g_autoptr(GChecksum) md5 = g_checksum_new (G_CHECKSUM_MD5);
  g_autofree guint8 *buffer = g_malloc (MAGPIE_UPLOADER_HASH_CHUNK);
  GError *error = NULL;
  gint64 left = job->size;

  in = g_file_read (job->file, cancellable, &error);
  if (in == NULL ||
      !g_seekable_seek (G_SEEKABLE (in), job->offset, G_SEEK_SET, cancellable, &error))
    {
      g_task_return_error (task, error);
      return;
    }
  while (left > 0)
    {
      gssize n = g_input_stream_read (G_INPUT_STREAM (in), buffer,
                                      MIN (left, MAGPIE_UPLOADER_HASH_CHUNK), cancellable,
                                      &error);

      if (n < 0)
        {
          g_task_return_error (task, error);
          return;
        }
      if (n == 0)
        {
          g_task_return_new_error (task, MAGPIE_CLIENT_ERROR, MAGPIE_CLIENT_ERROR_STORAGE,
                                   _("The photo’s file is shorter than when it was imported"));
          return;
        }
      g_checksum_update (sha256, buffer, n);
      g_checksum_update (md5, buffer, n);
      left -= n;
    }
  job->sha256 = g_strdup (g_checksum_get_string (sha256));
  job->md5 = g_strdup (g_checksum_get_string (md5));
  g_task_return_boolean (task, TRUE);
}

static void
hashed_cb (GObject      *object,
           GAsyncResult *result,
           gpointer      user_data)
{
  Upload *up = user_data;
  HashJob *job = g_task_get_task_data (G_TASK (result));
  MagpiePlannedPart *part;
  g_autoptr(GError) error = NULL;

  if (!g_task_propagate_boolean (G_TASK (result), &error))
    {
      if (!stopped (up))
        _magpie_uploader_fail (up, error->message, FALSE);
      return;
    }
  if (stopped (up))
    return;
  part = current_part (up);
  if (part->state == MAGPIE_PART_UNVERIFIED &&
      magpie_multipart_etag_is_md5 (part->etag, job->md5))
    {
      g_message ("%s: part %u was on the store already (the last run stopped before "
                 "recording it)", up->row->name, part->number);
      part_done (up, part->etag);
      return;
    }
  g_free (up->part_sha256);
  up->part_sha256 = g_steal_pointer (&job->sha256);
  with_credentials (up, send_part);
}

/* The next part that is not done: hashed off the main thread, then sent. After the last,
 * the store assembles them. A part that failed goes through here again, so a file that
 * changed meanwhile is noticed rather than sent. */
static void
next_part (Upload *up)
{
  g_autoptr(GTask) task = NULL;
  MagpiePlannedPart *part;
  HashJob *job;

  while (up->part < up->plan->len && current_part (up)->state == MAGPIE_PART_DONE)
    up->part++;
  if (up->part == up->plan->len)
    {
      with_credentials (up, complete);
      return;
    }
  part = current_part (up);
  job = g_new0 (HashJob, 1);
  job->file = magpie_outbox_get_photo_file (up->self->outbox, up->row->sha256,
                                            up->row->extension);
  job->offset = part->offset;
  job->size = part->size;
  task = g_task_new (NULL, up->cancellable, hashed_cb, up);
  g_task_set_source_tag (task, next_part);
  g_task_set_task_data (task, job, (GDestroyNotify) hash_job_free);
  g_task_set_priority (task, G_PRIORITY_LOW);
  g_task_run_in_thread (task, hash_thread);
}

static void
begin_parts (Upload *up)
{
  up->part = 0;
  up->sent = magpie_multipart_done_bytes (up->plan);
  up->last_percent = -1;
  _magpie_uploader_report_progress (up, up->sent);
  next_part (up);
}

/* Creating -------------------------------------------------------------------------------- */

static void
begun_cb (GObject      *object,
          GAsyncResult *result,
          gpointer      user_data)
{
  Upload *up = user_data;
  g_autoptr(GError) error = NULL;

  up->record = magpie_outbox_multipart_finish (MAGPIE_OUTBOX (object), result, &error);
  if (stopped (up))
    return;
  if (up->record == NULL)
    {
      _magpie_uploader_fail (up, error->message, FALSE);
      return;
    }
  up->plan = magpie_multipart_plan (up->row->size, up->record->part_size, NULL, NULL);
  g_info ("%s: upload %s begun, %u parts of up to %" G_GINT64_FORMAT " bytes",
          up->row->name, up->record->upload_id, up->plan->len, up->record->part_size);
  begin_parts (up);
}

static void
created_cb (GObject      *object,
            GAsyncResult *result,
            gpointer      user_data)
{
  Upload *up = user_data;
  SoupMessage *message = magpie_s3_send_get_message (result);
  g_autoptr(GBytes) body = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *upload_id = NULL;

  body = magpie_s3_send_finish (SOUP_SESSION (object), result, &error);
  if (stopped (up))
    return;
  if (body == NULL)
    {
      retry (up, create, error->message, FALSE);
      return;
    }
  if (!SOUP_STATUS_IS_SUCCESSFUL (soup_message_get_status (message)))
    {
      store_refused (up, create, message, body);
      return;
    }
  upload_id = magpie_s3_parse_upload_id (body, &error);
  if (upload_id == NULL)
    {
      retry (up, create, error->message, FALSE);
      return;
    }
  step_done (up);
  magpie_outbox_begin_multipart_async (up->self->outbox, up->row->id, up->creds->endpoint,
                                       up->creds->bucket, up->key, upload_id, up->row->size,
                                       magpie_multipart_part_size (up->row->size), NULL,
                                       begun_cb, up);
}

static void
create (Upload *up)
{
  g_autoptr(SoupMessage) message = NULL;

  up->step = create;
  message = new_message (up, "POST", "uploads",
                         magpie_s3_content_type_for (up->row->extension), NULL);
  if (message == NULL)
    return;
  magpie_s3_send_async (up->self->session, message, up->cancellable, created_cb, up);
}

/* Resuming -------------------------------------------------------------------------------- */

static void
listed_cb (GObject      *object,
           GAsyncResult *result,
           gpointer      user_data)
{
  Upload *up = user_data;
  SoupMessage *message = magpie_s3_send_get_message (result);
  g_autoptr(GBytes) body = NULL;
  g_autoptr(GError) error = NULL;
  gboolean truncated = FALSE;
  guint next_marker = 0;
  guint n_done;

  body = magpie_s3_send_finish (SOUP_SESSION (object), result, &error);
  if (stopped (up))
    return;
  if (body == NULL)
    {
      retry (up, list_parts, error->message, FALSE);
      return;
    }
  if (!SOUP_STATUS_IS_SUCCESSFUL (soup_message_get_status (message)))
    {
      store_refused (up, list_parts, message, body);
      return;
    }
  if (!magpie_s3_parse_list_parts (body, up->listed, &truncated, &next_marker, &error))
    {
      retry (up, list_parts, error->message, FALSE);
      return;
    }
  step_done (up);
  if (truncated && next_marker > up->list_marker)
    {
      up->list_marker = next_marker;
      list_parts (up);
      return;
    }
  up->plan = magpie_multipart_plan (up->row->size, up->record->part_size, up->record->parts,
                                    up->listed);
  n_done = 0;
  for (guint i = 0; i < up->plan->len; i++)
    n_done += g_array_index (up->plan, MagpiePlannedPart, i).state == MAGPIE_PART_DONE;
  g_message ("%s: resuming upload %s, %u of %u parts on the store", up->row->name,
             up->record->upload_id, n_done, up->plan->len);
  begin_parts (up);
}

/* ListParts, page by page: what the store has of the recorded upload. */
static void
list_parts (Upload *up)
{
  g_autoptr(SoupMessage) message = NULL;
  g_autofree char *id = escaped_upload_id (up);
  g_autofree char *query = NULL;

  up->step = list_parts;
  if (up->list_marker == 0)
    g_array_set_size (up->listed, 0);
  query = g_strdup_printf ("max-parts=1000&part-number-marker=%u&uploadId=%s", up->list_marker,
                           id);
  message = new_message (up, "GET", query, NULL, NULL);
  if (message == NULL)
    return;
  magpie_s3_send_async (up->self->session, message, up->cancellable, listed_cb, up);
}

/* Whether @record can be resumed by this upload: same store, same key, same file. */
static gboolean
record_usable (Upload                      *up,
               const MagpieMultipartRecord *record)
{
  return g_strcmp0 (record->endpoint, up->creds->endpoint) == 0 &&
         g_strcmp0 (record->bucket, up->creds->bucket) == 0 &&
         g_strcmp0 (record->key, up->key) == 0 && record->size == up->row->size &&
         record->part_size >= MAGPIE_MULTIPART_MIN_PART_SIZE &&
         magpie_multipart_count_parts (record->size, record->part_size) <=
         MAGPIE_MULTIPART_MAX_PARTS;
}

static void
got_record_cb (GObject      *object,
               GAsyncResult *result,
               gpointer      user_data)
{
  Upload *up = user_data;
  g_autoptr(MagpieMultipartRecord) record = NULL;
  g_autoptr(GError) error = NULL;

  record = magpie_outbox_multipart_finish (MAGPIE_OUTBOX (object), result, &error);
  if (stopped (up))
    return;
  if (error != NULL)
    {
      _magpie_uploader_fail (up, error->message, FALSE);
      return;
    }
  up->listed = magpie_part_array_new ();
  up->list_marker = 0;
  if (record != NULL && record_usable (up, record))
    {
      up->record = g_steal_pointer (&record);
      list_parts (up);
      return;
    }
  if (record != NULL)
    g_message ("%s: upload %s was for another store or key; beginning a new one",
               up->row->name, record->upload_id);
  create (up);
}

/* Sends @up's photo (over MAGPIE_MULTIPART_THRESHOLD) in parts, resuming a recorded upload. */
void
_magpie_uploader_multipart (Upload *up)
{
  g_assert (up->creds != NULL && up->key != NULL);

  up->started_over = FALSE;
  magpie_outbox_get_multipart_async (up->self->outbox, up->row->id, NULL, got_record_cb, up);
}

/* The sweep: aborting abandoned uploads --------------------------------------------------- */

typedef struct {
  MagpieUploader      *self;
  GPtrArray           *records;
  MagpieS3Credentials *creds;
  guint                next;
  gboolean             failed;
} Sweep;

static void
sweep_free (Sweep *sweep)
{
  sweep->self->sweeping = FALSE;
  /* Photos deleted while this sweep ran get theirs now; after a failure, only at the next
   * occasion (the connection coming back, another deletion, an import). */
  if (!sweep->failed && sweep->self->sweep_needed &&
      !g_cancellable_is_cancelled (sweep->self->cancellable))
    magpie_uploader_kick (sweep->self);
  g_clear_pointer (&sweep->records, g_ptr_array_unref);
  g_clear_pointer (&sweep->creds, magpie_s3_credentials_unref);
  g_object_unref (sweep->self);
  g_free (sweep);
}

static void abort_next (Sweep *sweep);

static void
sweep_again_later (Sweep      *sweep,
                   const char *reason)
{
  g_message ("Cannot abort an abandoned upload now: %s", reason);
  sweep->failed = TRUE;
  sweep->self->sweep_needed = TRUE;
  sweep_free (sweep);
}

static void
aborted_cb (GObject      *object,
            GAsyncResult *result,
            gpointer      user_data)
{
  Sweep *sweep = user_data;
  SoupMessage *message = magpie_s3_send_get_message (result);
  MagpieMultipartRecord *record = sweep->records->pdata[sweep->next];
  g_autoptr(GBytes) body = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *code = NULL;
  guint status;

  body = magpie_s3_send_finish (SOUP_SESSION (object), result, &error);
  if (g_cancellable_is_cancelled (sweep->self->cancellable))
    {
      sweep_free (sweep);
      return;
    }
  if (body == NULL)
    {
      sweep_again_later (sweep, error->message);
      return;
    }
  status = soup_message_get_status (message);
  code = magpie_s3_error_code (body);
  if (magpie_s3_credentials_error (code) || status >= 500 || status == 429)
    {
      if (magpie_s3_credentials_error (code))
        magpie_credentials_invalidate (sweep->self->credentials);
      sweep_again_later (sweep, code != NULL ? code : soup_message_get_reason_phrase (message));
      return;
    }
  if (SOUP_STATUS_IS_SUCCESSFUL (status))
    {
      g_message ("Aborted the upload %s of a photo that is gone", record->upload_id);
      sweep->self->n_aborted++;
    }
  else
    g_message ("The store answered %s to aborting upload %s; forgetting it",
               code != NULL ? code : "?", record->upload_id);
  magpie_outbox_forget_multipart_async (sweep->self->outbox, record->id, NULL, NULL, NULL);
  sweep->next++;
  abort_next (sweep);
}

static void
abort_next (Sweep *sweep)
{
  MagpieMultipartRecord *record;
  g_autoptr(MagpieS3Credentials) creds = NULL;
  g_autoptr(SoupMessage) message = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *id = NULL;
  g_autofree char *query = NULL;

  if (sweep->next >= sweep->records->len)
    {
      sweep_free (sweep);
      return;
    }
  record = sweep->records->pdata[sweep->next];
  /* An upload on another store, or under another identity's prefix, cannot be reached with
   * these credentials: the store's own expiry rules are left to remove it. */
  if (g_strcmp0 (record->endpoint, sweep->creds->endpoint) != 0 ||
      g_strcmp0 (record->bucket, sweep->creds->bucket) != 0 ||
      !g_str_has_prefix (record->key, sweep->creds->prefix))
    {
      g_message ("Forgetting upload %s: it is on another store or under another identity",
                 record->upload_id);
      magpie_outbox_forget_multipart_async (sweep->self->outbox, record->id, NULL, NULL, NULL);
      sweep->next++;
      abort_next (sweep);
      return;
    }
  id = g_uri_escape_string (record->upload_id, NULL, FALSE);
  query = g_strdup_printf ("uploadId=%s", id);
  message = magpie_s3_message_new (sweep->creds, "DELETE", record->key, query, NULL, NULL,
                                   &error);
  if (message == NULL)
    {
      sweep_again_later (sweep, error->message);
      return;
    }
  magpie_s3_send_async (sweep->self->session, message, sweep->self->cancellable, aborted_cb,
                        sweep);
}

static void
sweep_credentials_cb (GObject      *object,
                      GAsyncResult *result,
                      gpointer      user_data)
{
  Sweep *sweep = user_data;
  g_autoptr(GError) error = NULL;

  sweep->creds = magpie_credentials_get_finish (MAGPIE_CREDENTIALS (object), result, &error);
  if (g_cancellable_is_cancelled (sweep->self->cancellable))
    {
      sweep_free (sweep);
      return;
    }
  if (sweep->creds == NULL)
    {
      sweep_again_later (sweep, error->message);
      return;
    }
  abort_next (sweep);
}

static void
abandoned_cb (GObject      *object,
              GAsyncResult *result,
              gpointer      user_data)
{
  Sweep *sweep = user_data;
  g_autoptr(GError) error = NULL;
  const char *url;

  sweep->records = magpie_outbox_multipart_finish (MAGPIE_OUTBOX (object), result, &error);
  if (g_cancellable_is_cancelled (sweep->self->cancellable))
    {
      sweep_free (sweep);
      return;
    }
  if (sweep->records == NULL)
    {
      g_warning ("Cannot read abandoned uploads: %s", error->message);
      sweep_free (sweep);
      return;
    }
  url = magpie_connection_get_server_url (sweep->self->connection);
  if (sweep->records->len == 0)
    {
      sweep_free (sweep);
      return;
    }
  if (url == NULL)
    {
      sweep_again_later (sweep, "no server");
      return;
    }
  magpie_credentials_get_async (sweep->self->credentials, url, sweep->self->cancellable,
                                sweep_credentials_cb, sweep);
}

/* Aborts every multipart upload the outbox holds for photos that are gone; what cannot be
 * aborted now (no network) is tried again at the next sweep. */
void
_magpie_uploader_sweep (MagpieUploader *self)
{
  Sweep *sweep;

  g_return_if_fail (!self->sweeping);

  self->sweeping = TRUE;
  self->sweep_needed = FALSE;
  sweep = g_new0 (Sweep, 1);
  sweep->self = g_object_ref (self);
  magpie_outbox_list_abandoned_async (self->outbox, self->cancellable, abandoned_cb, sweep);
}
