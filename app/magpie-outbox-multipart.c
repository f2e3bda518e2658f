/* magpie-outbox-multipart.c - the outbox's record of multipart uploads under way
 *
 * For each large photo on its way: the upload id the store gave, where (endpoint, bucket,
 * key), how the file is cut, and every part the store has confirmed (number, size, ETag).
 * Written as each part is confirmed, so the next run after a quit or a crash sends only the
 * parts that are missing. An upload whose photo was deleted stays recorded (photo NULL)
 * until the store has aborted it, so no run leaves parts behind on the store for good.
 */
#define G_LOG_DOMAIN "magpie-outbox"

#include "config.h"

#include "magpie-outbox.h"

#include <sqlite3.h>

#include "magpie-client-error.h"

#define RECORD_COLUMNS "m.id, m.photo, m.endpoint, m.bucket, m.key, m.upload_id, m.size, " \
                       "m.part_size"

static gpointer
fail_sql (sqlite3     *db,
          const char  *what,
          GError     **error)
{
  g_set_error (error, MAGPIE_CLIENT_ERROR, MAGPIE_CLIENT_ERROR_STORAGE, "%s: %s", what,
               sqlite3_errmsg (db));
  return NULL;
}

static MagpieMultipartRecord *
record_from_statement (sqlite3_stmt *stmt)
{
  MagpieMultipartRecord *record = g_new0 (MagpieMultipartRecord, 1);

  record->id = sqlite3_column_int64 (stmt, 0);
  record->photo = sqlite3_column_int64 (stmt, 1);
  record->endpoint = g_strdup ((const char *) sqlite3_column_text (stmt, 2));
  record->bucket = g_strdup ((const char *) sqlite3_column_text (stmt, 3));
  record->key = g_strdup ((const char *) sqlite3_column_text (stmt, 4));
  record->upload_id = g_strdup ((const char *) sqlite3_column_text (stmt, 5));
  record->size = sqlite3_column_int64 (stmt, 6);
  record->part_size = sqlite3_column_int64 (stmt, 7);
  record->parts = magpie_part_array_new ();
  return record;
}

static gboolean
read_parts (sqlite3                *db,
            MagpieMultipartRecord  *record,
            GError                **error)
{
  sqlite3_stmt *stmt = NULL;

  if (sqlite3_prepare_v2 (db, "SELECT number, size, etag FROM multipart_parts WHERE upload = ? "
                          "ORDER BY number", -1, &stmt, NULL) != SQLITE_OK)
    {
      fail_sql (db, "reading the parts of an upload", error);
      return FALSE;
    }
  sqlite3_bind_int64 (stmt, 1, record->id);
  while (sqlite3_step (stmt) == SQLITE_ROW)
    {
      MagpiePart part = { 0 };

      part.number = (guint) sqlite3_column_int64 (stmt, 0);
      part.size = sqlite3_column_int64 (stmt, 1);
      part.etag = g_strdup ((const char *) sqlite3_column_text (stmt, 2));
      g_array_append_val (record->parts, part);
    }
  sqlite3_finalize (stmt);
  return TRUE;
}

static void
run (MagpieOutbox        *self,
     MagpieStoreFunc      func,
     gpointer             data,
     GDestroyNotify       data_free,
     GDestroyNotify       result_free,
     gpointer             source_tag,
     GCancellable        *cancellable,
     GAsyncReadyCallback  callback,
     gpointer             user_data);

/* Get ------------------------------------------------------------------------------------- */

static gpointer
get_sql (sqlite3   *db,
         gpointer   data,
         GError   **error)
{
  gint64 photo = *(gint64 *) data;
  sqlite3_stmt *stmt = NULL;
  g_autoptr(MagpieMultipartRecord) record = NULL;

  if (sqlite3_prepare_v2 (db, "SELECT " RECORD_COLUMNS " FROM multipart_uploads m "
                          "WHERE m.photo = ?", -1, &stmt, NULL) != SQLITE_OK)
    return fail_sql (db, "reading an upload", error);
  sqlite3_bind_int64 (stmt, 1, photo);
  if (sqlite3_step (stmt) == SQLITE_ROW)
    record = record_from_statement (stmt);
  sqlite3_finalize (stmt);
  if (record != NULL && !read_parts (db, record, error))
    return NULL;
  return g_steal_pointer (&record);
}

/* The multipart upload recorded for @photo with the parts the store confirmed; finishes
 * with NULL and no error when there is none. */
void
magpie_outbox_get_multipart_async (MagpieOutbox        *self,
                                   gint64               photo,
                                   GCancellable        *cancellable,
                                   GAsyncReadyCallback  callback,
                                   gpointer             user_data)
{
  gint64 *args;

  g_return_if_fail (MAGPIE_IS_OUTBOX (self));

  args = g_new (gint64, 1);
  *args = photo;
  run (self, get_sql, args, g_free, (GDestroyNotify) magpie_multipart_record_free,
       magpie_outbox_get_multipart_async, cancellable, callback, user_data);
}

/* Begin ----------------------------------------------------------------------------------- */

static gpointer
begin_sql (sqlite3   *db,
           gpointer   data,
           GError   **error)
{
  const MagpieMultipartRecord *args = data;
  MagpieMultipartRecord *record;
  sqlite3_stmt *stmt = NULL;

  if (!magpie_store_exec (db, "BEGIN IMMEDIATE", error))
    return NULL;
  /* An older upload of the same photo (other server, other identity) is left to be aborted
   * like the uploads of deleted photos. */
  if (!magpie_store_run_ids (db, "UPDATE multipart_uploads SET photo = NULL WHERE photo = ?",
                             "recording an upload", error, 1, (gint64) args->photo))
    {
      magpie_store_exec (db, "ROLLBACK", NULL);
      return NULL;
    }
  if (sqlite3_prepare_v2 (db, "INSERT INTO multipart_uploads (photo, endpoint, bucket, key, "
                          "upload_id, size, part_size, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                          -1, &stmt, NULL) != SQLITE_OK)
    return magpie_store_fail_transaction (db, "recording an upload", error);
  sqlite3_bind_int64 (stmt, 1, args->photo);
  sqlite3_bind_text (stmt, 2, args->endpoint, -1, SQLITE_TRANSIENT);
  sqlite3_bind_text (stmt, 3, args->bucket, -1, SQLITE_TRANSIENT);
  sqlite3_bind_text (stmt, 4, args->key, -1, SQLITE_TRANSIENT);
  sqlite3_bind_text (stmt, 5, args->upload_id, -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64 (stmt, 6, args->size);
  sqlite3_bind_int64 (stmt, 7, args->part_size);
  sqlite3_bind_int64 (stmt, 8, g_get_real_time () / G_USEC_PER_SEC);
  if (sqlite3_step (stmt) != SQLITE_DONE)
    {
      sqlite3_finalize (stmt);
      return magpie_store_fail_transaction (db, "recording an upload", error);
    }
  sqlite3_finalize (stmt);
  if (!magpie_store_exec (db, "COMMIT", error))
    return NULL;

  record = g_new0 (MagpieMultipartRecord, 1);
  record->id = sqlite3_last_insert_rowid (db);
  record->photo = args->photo;
  record->endpoint = g_strdup (args->endpoint);
  record->bucket = g_strdup (args->bucket);
  record->key = g_strdup (args->key);
  record->upload_id = g_strdup (args->upload_id);
  record->size = args->size;
  record->part_size = args->part_size;
  record->parts = magpie_part_array_new ();
  return record;
}

/* Records that the store began upload @upload_id for @photo (the other fields as in
 * MagpieMultipartRecord; id and parts are ignored). Finishes with the record as kept. */
void
magpie_outbox_begin_multipart_async (MagpieOutbox        *self,
                                     gint64               photo,
                                     const char          *endpoint,
                                     const char          *bucket,
                                     const char          *key,
                                     const char          *upload_id,
                                     gint64               size,
                                     gint64               part_size,
                                     GCancellable        *cancellable,
                                     GAsyncReadyCallback  callback,
                                     gpointer             user_data)
{
  MagpieMultipartRecord *args;

  g_return_if_fail (MAGPIE_IS_OUTBOX (self));
  g_return_if_fail (endpoint != NULL && bucket != NULL && key != NULL && upload_id != NULL);

  args = g_new0 (MagpieMultipartRecord, 1);
  args->photo = photo;
  args->endpoint = g_strdup (endpoint);
  args->bucket = g_strdup (bucket);
  args->key = g_strdup (key);
  args->upload_id = g_strdup (upload_id);
  args->size = size;
  args->part_size = part_size;
  run (self, begin_sql, args, (GDestroyNotify) magpie_multipart_record_free,
       (GDestroyNotify) magpie_multipart_record_free, magpie_outbox_begin_multipart_async,
       cancellable, callback, user_data);
}

/* Parts and forgetting -------------------------------------------------------------------- */

typedef struct {
  gint64      upload;
  MagpiePart  part;
} PartArgs;

static void
part_args_free (PartArgs *args)
{
  magpie_part_clear (&args->part);
  g_free (args);
}

static gpointer
add_part_sql (sqlite3   *db,
              gpointer   data,
              GError   **error)
{
  PartArgs *args = data;
  sqlite3_stmt *stmt = NULL;
  int rc;

  /* Nothing to add to an upload that was forgotten meanwhile (aborted, started over). */
  if (sqlite3_prepare_v2 (db, "INSERT OR REPLACE INTO multipart_parts (upload, number, size, "
                          "etag) SELECT id, ?, ?, ? FROM multipart_uploads WHERE id = ?", -1,
                          &stmt, NULL) != SQLITE_OK)
    return fail_sql (db, "recording a part", error);
  sqlite3_bind_int64 (stmt, 1, args->part.number);
  sqlite3_bind_int64 (stmt, 2, args->part.size);
  sqlite3_bind_text (stmt, 3, args->part.etag, -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64 (stmt, 4, args->upload);
  rc = sqlite3_step (stmt);
  sqlite3_finalize (stmt);
  if (rc != SQLITE_DONE)
    return fail_sql (db, "recording a part", error);
  return GINT_TO_POINTER (1);
}

/* Records that the store confirmed @part of upload @upload (a record's id). */
void
magpie_outbox_add_part_async (MagpieOutbox        *self,
                              gint64               upload,
                              const MagpiePart    *part,
                              GCancellable        *cancellable,
                              GAsyncReadyCallback  callback,
                              gpointer             user_data)
{
  PartArgs *args;

  g_return_if_fail (MAGPIE_IS_OUTBOX (self));
  g_return_if_fail (part != NULL && part->etag != NULL);

  args = g_new0 (PartArgs, 1);
  args->upload = upload;
  args->part.number = part->number;
  args->part.size = part->size;
  args->part.etag = g_strdup (part->etag);
  run (self, add_part_sql, args, (GDestroyNotify) part_args_free, NULL,
       magpie_outbox_add_part_async, cancellable, callback, user_data);
}

static gpointer
forget_sql (sqlite3   *db,
            gpointer   data,
            GError   **error)
{
  gint64 upload = *(gint64 *) data;

  if (!magpie_store_run_ids (db, "DELETE FROM multipart_uploads WHERE id = ?",
                             "forgetting an upload", error, 1, upload))
    return NULL;
  return GINT_TO_POINTER (1);
}

/* Forgets upload @upload and its parts: completed, aborted, or unknown to the store. */
void
magpie_outbox_forget_multipart_async (MagpieOutbox        *self,
                                      gint64               upload,
                                      GCancellable        *cancellable,
                                      GAsyncReadyCallback  callback,
                                      gpointer             user_data)
{
  gint64 *args;

  g_return_if_fail (MAGPIE_IS_OUTBOX (self));

  args = g_new (gint64, 1);
  *args = upload;
  run (self, forget_sql, args, g_free, NULL, magpie_outbox_forget_multipart_async,
       cancellable, callback, user_data);
}

/* Finishes magpie_outbox_add_part_async() and magpie_outbox_forget_multipart_async(). */
gboolean
magpie_outbox_multipart_update_finish (MagpieOutbox  *self,
                                       GAsyncResult  *result,
                                       GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  return g_task_propagate_pointer (G_TASK (result), error) != NULL;
}

/* Abandoned uploads ----------------------------------------------------------------------- */

static gpointer
list_abandoned_sql (sqlite3   *db,
                    gpointer   data,
                    GError   **error)
{
  g_autoptr(GPtrArray) records =
    g_ptr_array_new_with_free_func ((GDestroyNotify) magpie_multipart_record_free);
  sqlite3_stmt *stmt = NULL;

  if (sqlite3_prepare_v2 (db, "SELECT " RECORD_COLUMNS " FROM multipart_uploads m "
                          "LEFT JOIN photos p ON p.id = m.photo "
                          "WHERE m.photo IS NULL OR p.id IS NULL OR p.deleted = 1 "
                          "OR p.upload IN (?, ?) ORDER BY m.id", -1, &stmt, NULL) != SQLITE_OK)
    return fail_sql (db, "reading abandoned uploads", error);
  sqlite3_bind_int (stmt, 1, MAGPIE_UPLOAD_UPLOADED);
  sqlite3_bind_int (stmt, 2, MAGPIE_UPLOAD_FAILED);
  while (sqlite3_step (stmt) == SQLITE_ROW)
    g_ptr_array_add (records, record_from_statement (stmt));
  sqlite3_finalize (stmt);
  return g_steal_pointer (&records);
}

/* The uploads to abort: their photo was deleted (or is in the undo window), another upload
 * of the photo replaced them, the photo failed for good, or it is on the server (the app
 * stopped between completing the upload and forgetting it: the store then no longer knows
 * the id). Finishes with a GPtrArray of MagpieMultipartRecord (without parts). */
void
magpie_outbox_list_abandoned_async (MagpieOutbox        *self,
                                    GCancellable        *cancellable,
                                    GAsyncReadyCallback  callback,
                                    gpointer             user_data)
{
  g_return_if_fail (MAGPIE_IS_OUTBOX (self));

  run (self, list_abandoned_sql, NULL, NULL, (GDestroyNotify) g_ptr_array_unref,
       magpie_outbox_list_abandoned_async, cancellable, callback, user_data);
}

/* Finishes magpie_outbox_get_multipart_async(), magpie_outbox_begin_multipart_async() (a
 * MagpieMultipartRecord) and magpie_outbox_list_abandoned_async() (a GPtrArray). */
gpointer
magpie_outbox_multipart_finish (MagpieOutbox  *self,
                                GAsyncResult  *result,
                                GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  return g_task_propagate_pointer (G_TASK (result), error);
}

/* Plumbing -------------------------------------------------------------------------------- */

typedef struct {
  GDestroyNotify result_free;
} RunData;

static void
ran_cb (GObject      *object,
        GAsyncResult *result,
        gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  RunData *data = g_task_get_task_data (task);
  GError *error = NULL;
  gpointer value;

  value = magpie_store_run_finish (MAGPIE_STORE (object), result, &error);
  if (error != NULL)
    {
      g_task_return_error (task, error);
      return;
    }
  g_task_return_pointer (task, value, data->result_free);
}

static void
logged_cb (GObject      *object,
           GAsyncResult *result,
           gpointer      user_data)
{
  g_autoptr(GError) error = NULL;

  if (!magpie_outbox_multipart_update_finish (MAGPIE_OUTBOX (object), result, &error))
    g_warning ("Cannot record a multipart upload's progress: %s", error->message);
}

static void
run (MagpieOutbox        *self,
     MagpieStoreFunc      func,
     gpointer             data,
     GDestroyNotify       data_free,
     GDestroyNotify       result_free,
     gpointer             source_tag,
     GCancellable        *cancellable,
     GAsyncReadyCallback  callback,
     gpointer             user_data)
{
  GTask *task;
  RunData *run_data = g_new0 (RunData, 1);

  /* A write nobody waits for still has to be heard of when it fails. */
  if (callback == NULL)
    callback = logged_cb;
  run_data->result_free = result_free;
  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, source_tag);
  g_task_set_task_data (task, run_data, g_free);
  magpie_store_run_async (magpie_outbox_get_store (self), func, data, data_free, result_free,
                          NULL, ran_cb, task);
}
