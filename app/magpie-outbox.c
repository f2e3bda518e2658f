/* magpie-outbox.c - imported photos on disk, waiting for the server
 *
 * An import is recorded in the store (source URI and name) before anything else happens, so
 * a crash at any later point leaves a row that the next start finishes. Then the bytes are
 * copied into the library's own folder while they are hashed (one read), fsynced and renamed
 * to <sha256>.<ext>: content addressed, so the same bytes imported twice are one photo.
 *
 * Uploaders take due entries (take → progress → complete, or fail → retried later with
 * exponential backoff and jitter, up to MAGPIE_OUTBOX_MAX_ATTEMPTS). An entry taken by a
 * process that died is simply due again at the next start (see magpie-library.c).
 */
#define G_LOG_DOMAIN "magpie-outbox"

#include "config.h"

#include "magpie-outbox.h"

#include <errno.h>
#include <fcntl.h>
#include <gdk-pixbuf/gdk-pixbuf.h>
#include <glib/gi18n.h>
#include <glib/gstdio.h>
#include <sqlite3.h>
#include <string.h>
#include <unistd.h>

#include "magpie-client-error.h"
#include "mp-image.h"

#define MAGPIE_OUTBOX_COPY_CHUNK (256 * 1024)
/* First retry after 2 s, doubling up to 10 min: a server that is down for maintenance is not
 * hammered, and a short blip costs seconds. */
#define MAGPIE_OUTBOX_BACKOFF_BASE_US (2 * G_USEC_PER_SEC)
#define MAGPIE_OUTBOX_BACKOFF_MAX_US (600 * G_USEC_PER_SEC)

struct _MagpieOutbox {
  GObject      parent_instance;

  MagpieStore *store;
  char        *photos_dir;
};

G_DEFINE_FINAL_TYPE (MagpieOutbox, magpie_outbox, G_TYPE_OBJECT)

enum {
  ENTRY_CHANGED,
  N_SIGNALS
};

static guint signals[N_SIGNALS];

static void
magpie_outbox_finalize (GObject *object)
{
  MagpieOutbox *self = MAGPIE_OUTBOX (object);

  g_clear_object (&self->store);
  g_free (self->photos_dir);

  G_OBJECT_CLASS (magpie_outbox_parent_class)->finalize (object);
}

static void
magpie_outbox_class_init (MagpieOutboxClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = magpie_outbox_finalize;

  /* An entry's upload state changed: (id, MagpieUploadState, progress 0..1, error or NULL). */
  signals[ENTRY_CHANGED] =
    g_signal_new ("entry-changed", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 4,
                  G_TYPE_INT64, G_TYPE_INT, G_TYPE_DOUBLE, G_TYPE_STRING);
}

static void
magpie_outbox_init (MagpieOutbox *self)
{
}

/* Photos are kept in @photos_dir, their rows in @store. */
MagpieOutbox *
magpie_outbox_new (MagpieStore *store,
                   const char  *photos_dir)
{
  MagpieOutbox *self;

  g_return_val_if_fail (MAGPIE_IS_STORE (store), NULL);
  g_return_val_if_fail (photos_dir != NULL, NULL);

  self = g_object_new (MAGPIE_TYPE_OUTBOX, NULL);
  self->store = g_object_ref (store);
  self->photos_dir = g_strdup (photos_dir);
  return self;
}

MagpieStore *
magpie_outbox_get_store (MagpieOutbox *self)
{
  g_return_val_if_fail (MAGPIE_IS_OUTBOX (self), NULL);
  return self->store;
}

GFile *
magpie_outbox_get_photo_file (MagpieOutbox *self,
                              const char   *sha256,
                              const char   *extension)
{
  g_autofree char *name = NULL;
  g_autofree char *path = NULL;

  g_return_val_if_fail (MAGPIE_IS_OUTBOX (self), NULL);
  g_return_val_if_fail (sha256 != NULL && extension != NULL, NULL);

  name = g_strdup_printf ("%s.%s", sha256, extension);
  path = g_build_filename (self->photos_dir, name, NULL);
  return g_file_new_for_path (path);
}

/* The object's key in the bucket: the identity's own prefix, then the content's hash. */
char *
magpie_outbox_object_key (const char *identity,
                          const char *sha256,
                          const char *extension)
{
  g_return_val_if_fail (identity != NULL && *identity != '\0', NULL);
  g_return_val_if_fail (sha256 != NULL && strlen (sha256) == 64, NULL);
  g_return_val_if_fail (extension != NULL, NULL);

  return g_strdup_printf ("users/%s/%s.%s", identity, sha256, extension);
}

/* The wait before retry number @attempts (1 = after the first failure): exponential, capped,
 * and spread by @jitter in [0, 1) over its upper half so many clients do not retry in step. */
gint64
magpie_outbox_backoff_us (int    attempts,
                          double jitter)
{
  gint64 backoff = MAGPIE_OUTBOX_BACKOFF_BASE_US;

  g_return_val_if_fail (attempts >= 1, 0);

  for (int i = 1; i < attempts && backoff < MAGPIE_OUTBOX_BACKOFF_MAX_US; i++)
    backoff *= 2;
  backoff = MIN (backoff, MAGPIE_OUTBOX_BACKOFF_MAX_US);
  jitter = CLAMP (jitter, 0.0, 1.0);
  return backoff / 2 + (gint64) (backoff / 2 * jitter);
}

static void
emit_entry_changed (MagpieOutbox         *self,
                    const MagpieStoreRow *row)
{
  g_signal_emit (self, signals[ENTRY_CHANGED], 0, row->id, (int) row->upload,
                 row->upload == MAGPIE_UPLOAD_UPLOADED ? 1.0 :
                 (row->size > 0 ? (double) row->sent / row->size : 0.0),
                 row->last_error);
}

/* Import ---------------------------------------------------------------------------------- */

typedef struct {
  GFile          *source;
  char           *name;
  gint64          id;
  /* filled by the copy */
  char           *sha256;
  char           *extension;
  gint64          size;
  int             width;
  int             height;
  gboolean        duplicate;
  MagpieStoreRow *row;
} ImportJob;

static void
import_job_free (ImportJob *job)
{
  g_clear_object (&job->source);
  g_free (job->name);
  g_free (job->sha256);
  g_free (job->extension);
  magpie_store_row_free (job->row);
  g_free (job);
}

typedef struct {
  char   *source;
  char   *name;
  gint64  imported;
} RecordArgs;

static void
record_args_free (RecordArgs *args)
{
  g_free (args->source);
  g_free (args->name);
  g_free (args);
}

static gpointer
record_import_sql (sqlite3   *db,
                   gpointer   data,
                   GError   **error)
{
  RecordArgs *args = data;
  sqlite3_stmt *stmt = NULL;
  gint64 *id;

  if (sqlite3_prepare_v2 (db, "INSERT INTO photos (source, name, imported, upload) "
                          "VALUES (?, ?, ?, 0)", -1, &stmt, NULL) != SQLITE_OK)
    {
      g_set_error (error, MAGPIE_CLIENT_ERROR, MAGPIE_CLIENT_ERROR_STORAGE,
                   "recording an import: %s", sqlite3_errmsg (db));
      return NULL;
    }
  sqlite3_bind_text (stmt, 1, args->source, -1, SQLITE_TRANSIENT);
  sqlite3_bind_text (stmt, 2, args->name, -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64 (stmt, 3, args->imported);
  if (sqlite3_step (stmt) != SQLITE_DONE)
    {
      g_set_error (error, MAGPIE_CLIENT_ERROR, MAGPIE_CLIENT_ERROR_STORAGE,
                   "recording an import: %s", sqlite3_errmsg (db));
      sqlite3_finalize (stmt);
      return NULL;
    }
  sqlite3_finalize (stmt);
  id = g_new (gint64, 1);
  *id = sqlite3_last_insert_rowid (db);
  return id;
}

/* The extension the photo is stored under: the file's own when its format claims it,
 * otherwise the format's first ("jpeg" for a JPEG called photo.dat). */
static char *
choose_extension (GdkPixbufFormat *format,
                  const char      *name)
{
  g_auto(GStrv) extensions = gdk_pixbuf_format_get_extensions (format);
  const char *dot = name != NULL ? strrchr (name, '.') : NULL;

  if (dot != NULL)
    {
      g_autofree char *own = g_ascii_strdown (dot + 1, -1);

      for (guint i = 0; extensions[i] != NULL; i++)
        if (g_str_equal (extensions[i], own))
          return g_steal_pointer (&own);
    }
  return g_strdup (extensions[0] != NULL ? extensions[0] : "img");
}

static gboolean
fsync_path (const char  *path,
            gboolean     directory,
            GError     **error)
{
  int fd = g_open (path, (directory ? O_DIRECTORY : 0) | O_RDONLY, 0);
  int errsv;

  if (fd >= 0 && fsync (fd) == 0)
    {
      close (fd);
      return TRUE;
    }
  errsv = errno;
  if (fd >= 0)
    close (fd);
  g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errsv),
               "Cannot sync %s: %s", path, g_strerror (errsv));
  return FALSE;
}

/* Thread: copies the source into the photos folder while hashing it, then checks it is an
 * image, and names the copy by its hash. */
static void
copy_thread (GTask        *task,
             gpointer      source_object,
             gpointer      task_data,
             GCancellable *cancellable)
{
  MagpieOutbox *self = source_object;
  ImportJob *job = task_data;
  g_autoptr(GFileInputStream) in = NULL;
  g_autoptr(GChecksum) checksum = g_checksum_new (G_CHECKSUM_SHA256);
  g_autoptr(GError) error = NULL;
  g_autofree char *temp_name = g_strdup_printf (".import-%" G_GINT64_FORMAT ".tmp", job->id);
  g_autofree char *temp_path = g_build_filename (self->photos_dir, temp_name, NULL);
  g_autofree guint8 *buffer = g_malloc (MAGPIE_OUTBOX_COPY_CHUNK);
  g_autoptr(GFile) final = NULL;
  g_autofree char *final_path = NULL;
  GdkPixbufFormat *format;
  g_autofree char *format_name = NULL;
  FILE *out = NULL;
  gssize n;

  if (g_mkdir_with_parents (self->photos_dir, 0700) != 0)
    {
      int errsv = errno;

      g_task_return_new_error (task, G_IO_ERROR, g_io_error_from_errno (errsv),
                               "Cannot create %s: %s", self->photos_dir, g_strerror (errsv));
      return;
    }

  in = g_file_read (job->source, cancellable, &error);
  if (in == NULL)
    {
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }
  out = g_fopen (temp_path, "wb");
  if (out == NULL)
    {
      int errsv = errno;

      g_task_return_new_error (task, G_IO_ERROR, g_io_error_from_errno (errsv),
                               "Cannot write %s: %s", temp_path, g_strerror (errsv));
      return;
    }

  job->size = 0;
  while ((n = g_input_stream_read (G_INPUT_STREAM (in), buffer, MAGPIE_OUTBOX_COPY_CHUNK,
                                   cancellable, &error)) > 0)
    {
      g_checksum_update (checksum, buffer, n);
      if (fwrite (buffer, 1, n, out) != (size_t) n)
        {
          int errsv = errno;

          g_set_error (&error, G_IO_ERROR, g_io_error_from_errno (errsv),
                       "Cannot write %s: %s", temp_path, g_strerror (errsv));
          break;
        }
      job->size += n;
    }
  if (error == NULL && (fflush (out) != 0 || fsync (fileno (out)) != 0))
    {
      int errsv = errno;

      g_set_error (&error, G_IO_ERROR, g_io_error_from_errno (errsv),
                   "Cannot write %s: %s", temp_path, g_strerror (errsv));
    }
  fclose (out);
  if (error != NULL)
    {
      g_unlink (temp_path);
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }

  /* The header only: what the file is and how large it says it is. Only the formats the
   * server and the thumbnailer decode (mp-image.h) count as photos, and a photo no one could
   * decode within the limits is turned away here with the reason, not stored to fail later. */
  format = gdk_pixbuf_get_file_info (temp_path, &job->width, &job->height);
  format_name = format != NULL ? gdk_pixbuf_format_get_name (format) : NULL;
  if (format == NULL || job->width <= 0 || job->height <= 0 ||
      !mp_image_format_is_decoded (format_name))
    {
      g_unlink (temp_path);
      g_task_return_new_error (task, MAGPIE_CLIENT_ERROR, MAGPIE_CLIENT_ERROR_NOT_AN_IMAGE,
                               _("“%s” is not an image"), job->name);
      return;
    }
  if ((gint64) job->width * job->height > MP_IMAGE_MAX_PIXELS_DEFAULT)
    {
      g_unlink (temp_path);
      /* Translators: a file name, its width and height, and the limit */
      g_task_return_new_error (task, MP_IMAGE_ERROR, MP_IMAGE_ERROR_DIMENSIONS,
                               _("“%s” is %d×%d pixels, over the limit of %d megapixels"),
                               job->name, job->width, job->height,
                               MP_IMAGE_MAX_PIXELS_DEFAULT / 1000000);
      return;
    }

  job->sha256 = g_strdup (g_checksum_get_string (checksum));
  job->extension = choose_extension (format, job->name);
  final = magpie_outbox_get_photo_file (self, job->sha256, job->extension);
  final_path = g_file_get_path (final);

  /* The same bytes are already there under this name: nothing to keep. */
  if (g_file_test (final_path, G_FILE_TEST_EXISTS))
    g_unlink (temp_path);
  else if (g_rename (temp_path, final_path) != 0)
    {
      int errsv = errno;

      g_unlink (temp_path);
      g_task_return_new_error (task, G_IO_ERROR, g_io_error_from_errno (errsv),
                               "Cannot rename %s: %s", temp_path, g_strerror (errsv));
      return;
    }
  if (!fsync_path (self->photos_dir, TRUE, &error))
    {
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }
  g_task_return_boolean (task, TRUE);
}

static gpointer
finish_import_sql (sqlite3   *db,
                   gpointer   data,
                   GError   **error)
{
  ImportJob *job = data;
  sqlite3_stmt *stmt = NULL;
  gint64 existing = 0;

  if (!magpie_store_exec (db, "BEGIN IMMEDIATE", error))
    return NULL;

  if (sqlite3_prepare_v2 (db, "SELECT id, deleted FROM photos WHERE sha256 = ?", -1, &stmt,
                          NULL) == SQLITE_OK)
    {
      sqlite3_bind_text (stmt, 1, job->sha256, -1, SQLITE_TRANSIENT);
      if (sqlite3_step (stmt) == SQLITE_ROW)
        {
          existing = sqlite3_column_int64 (stmt, 0);
          /* A photo deleted moments ago (its undo toast still up) comes back. */
          job->duplicate = sqlite3_column_int (stmt, 1) == 0;
        }
    }
  sqlite3_finalize (stmt);

  if (existing != 0)
    {
      if (!magpie_store_run_ids (db, "DELETE FROM photos WHERE id = ?", "finishing an import",
                                 error, 1, (gint64) job->id) ||
          !magpie_store_run_ids (db, "UPDATE photos SET deleted = 0 WHERE id = ?",
                                 "finishing an import", error, 1, (gint64) existing))
        {
          magpie_store_exec (db, "ROLLBACK", NULL);
          return NULL;
        }
      job->id = existing;
    }
  else
    {
      if (sqlite3_prepare_v2 (db, "UPDATE photos SET sha256 = ?, extension = ?, size = ?, "
                              "width = ?, height = ?, upload = ? WHERE id = ?", -1, &stmt,
                              NULL) != SQLITE_OK)
        goto fail;
      sqlite3_bind_text (stmt, 1, job->sha256, -1, SQLITE_TRANSIENT);
      sqlite3_bind_text (stmt, 2, job->extension, -1, SQLITE_TRANSIENT);
      sqlite3_bind_int64 (stmt, 3, job->size);
      sqlite3_bind_int (stmt, 4, job->width);
      sqlite3_bind_int (stmt, 5, job->height);
      sqlite3_bind_int (stmt, 6, MAGPIE_UPLOAD_WAITING);
      sqlite3_bind_int64 (stmt, 7, job->id);
      if (sqlite3_step (stmt) != SQLITE_DONE)
        {
          sqlite3_finalize (stmt);
          goto fail;
        }
      sqlite3_finalize (stmt);
    }

  if (!magpie_store_exec (db, "COMMIT", error))
    return NULL;
  return magpie_store_read_row (db, job->id, error);

fail:
  return magpie_store_fail_transaction (db, "finishing an import", error);
}

static gpointer
drop_import_sql (sqlite3   *db,
                 gpointer   data,
                 GError   **error)
{
  gint64 *id = data;

  magpie_store_run_ids (db, "DELETE FROM photos WHERE id = ? AND upload = 0",
                        "dropping an import", error, 1, (gint64) *id);
  return NULL;
}

static void
import_finished_cb (GObject      *object,
                    GAsyncResult *result,
                    gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  ImportJob *job = g_task_get_task_data (task);
  GError *error = NULL;

  job->row = magpie_store_run_finish (MAGPIE_STORE (object), result, &error);
  if (job->row == NULL)
    {
      if (error == NULL)
        error = g_error_new (MAGPIE_CLIENT_ERROR, MAGPIE_CLIENT_ERROR_STORAGE,
                             "photo %" G_GINT64_FORMAT " vanished while being imported",
                             job->id);
      g_task_return_error (task, error);
      return;
    }
  g_task_return_boolean (task, TRUE);
}

static void
dropped_cb (GObject      *object,
            GAsyncResult *result,
            gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  GError *error = g_object_steal_data (G_OBJECT (task), "import-error");

  magpie_store_run_finish (MAGPIE_STORE (object), result, NULL);
  g_task_return_error (task, error);
}

static void
copied_cb (GObject      *object,
           GAsyncResult *result,
           gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  MagpieOutbox *self = g_task_get_source_object (task);
  ImportJob *job = g_task_get_task_data (task);
  GError *error = NULL;

  if (!g_task_propagate_boolean (G_TASK (result), &error))
    {
      gint64 *id = g_new (gint64, 1);

      /* Nothing to keep from a file that is not an image or cannot be read: the row goes,
       * the error is reported. */
      *id = job->id;
      g_object_set_data_full (G_OBJECT (task), "import-error", error, NULL);
      magpie_store_run_async (self->store, drop_import_sql, id, g_free, NULL, NULL,
                              dropped_cb, g_steal_pointer (&task));
      return;
    }

  magpie_store_run_async (self->store, finish_import_sql, job, NULL,
                          (GDestroyNotify) magpie_store_row_free, NULL,
                          import_finished_cb, g_steal_pointer (&task));
}

static void
start_copy (GTask *task)
{
  GTask *copy = g_task_new (g_task_get_source_object (task), g_task_get_cancellable (task),
                            copied_cb, task);

  g_task_set_source_tag (copy, start_copy);
  g_task_set_task_data (copy, g_task_get_task_data (task), NULL);
  g_task_run_in_thread (copy, copy_thread);
  g_object_unref (copy);
}

static void
recorded_cb (GObject      *object,
             GAsyncResult *result,
             gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  ImportJob *job = g_task_get_task_data (task);
  g_autofree gint64 *id = NULL;
  GError *error = NULL;

  id = magpie_store_run_finish (MAGPIE_STORE (object), result, &error);
  if (id == NULL)
    {
      g_task_return_error (task, error);
      return;
    }
  job->id = *id;
  start_copy (g_steal_pointer (&task));
}

/* Records @source (shown as @name, or its display name) in the store, then copies, hashes
 * and checks it off the main thread. Finishes with the photo's row; *duplicate is set when
 * the same bytes were in the library already (the row is then that photo's). */
void
magpie_outbox_import_async (MagpieOutbox        *self,
                            GFile               *source,
                            const char          *name,
                            GCancellable        *cancellable,
                            GAsyncReadyCallback  callback,
                            gpointer             user_data)
{
  g_autoptr(GTask) task = NULL;
  ImportJob *job;
  RecordArgs *args;

  g_return_if_fail (MAGPIE_IS_OUTBOX (self));
  g_return_if_fail (G_IS_FILE (source));

  job = g_new0 (ImportJob, 1);
  job->source = g_object_ref (source);
  job->name = name != NULL ? g_strdup (name) : g_file_get_basename (source);

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, magpie_outbox_import_async);
  g_task_set_task_data (task, job, (GDestroyNotify) import_job_free);

  args = g_new0 (RecordArgs, 1);
  args->source = g_file_get_uri (source);
  args->name = g_strdup (job->name);
  args->imported = g_get_real_time () / G_USEC_PER_SEC;
  magpie_store_run_async (self->store, record_import_sql, args,
                          (GDestroyNotify) record_args_free, g_free, NULL,
                          recorded_cb, g_steal_pointer (&task));
}

/* Finishes an import that was recorded but never completed (the app stopped during it). */
void
magpie_outbox_resume_import_async (MagpieOutbox         *self,
                                   const MagpieStoreRow *row,
                                   GCancellable         *cancellable,
                                   GAsyncReadyCallback   callback,
                                   gpointer              user_data)
{
  g_autoptr(GTask) task = NULL;
  ImportJob *job;

  g_return_if_fail (MAGPIE_IS_OUTBOX (self));
  g_return_if_fail (row != NULL && row->upload == MAGPIE_UPLOAD_IMPORTING);

  job = g_new0 (ImportJob, 1);
  job->source = g_file_new_for_uri (row->source);
  job->name = g_strdup (row->name);
  job->id = row->id;

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, magpie_outbox_import_async);
  g_task_set_task_data (task, job, (GDestroyNotify) import_job_free);
  start_copy (g_steal_pointer (&task));
}

MagpieStoreRow *
magpie_outbox_import_finish (MagpieOutbox  *self,
                             GAsyncResult  *result,
                             gboolean      *duplicate,
                             GError       **error)
{
  ImportJob *job;

  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == magpie_outbox_import_async,
                        NULL);

  if (!g_task_propagate_boolean (G_TASK (result), error))
    return NULL;
  job = g_task_get_task_data (G_TASK (result));
  if (duplicate != NULL)
    *duplicate = job->duplicate;
  return g_steal_pointer (&job->row);
}

/* Upload side ----------------------------------------------------------------------------- */

typedef struct {
  gint64          now;
  gint64          next_due;
  MagpieStoreRow *row;
} TakeJob;

static void
take_job_free (TakeJob *job)
{
  magpie_store_row_free (job->row);
  g_free (job);
}

static gpointer
take_sql (sqlite3   *db,
          gpointer   data,
          GError   **error)
{
  TakeJob *job = data;
  sqlite3_stmt *stmt = NULL;
  gint64 id = 0;

  if (!magpie_store_exec (db, "BEGIN IMMEDIATE", error))
    return NULL;
  if (sqlite3_prepare_v2 (db, "SELECT id, next_attempt FROM photos WHERE upload = ? AND "
                          "deleted = 0 ORDER BY next_attempt, id LIMIT 1", -1, &stmt,
                          NULL) != SQLITE_OK)
    goto fail;
  sqlite3_bind_int (stmt, 1, MAGPIE_UPLOAD_WAITING);
  if (sqlite3_step (stmt) == SQLITE_ROW)
    {
      gint64 due = sqlite3_column_int64 (stmt, 1);

      if (due <= job->now)
        id = sqlite3_column_int64 (stmt, 0);
      else
        job->next_due = due;
    }
  sqlite3_finalize (stmt);

  if (id != 0)
    {
      if (!magpie_store_run_ids (db, "UPDATE photos SET upload = ? WHERE id = ?",
                                 "taking from the outbox", error, 2,
                                 (gint64) MAGPIE_UPLOAD_UPLOADING, (gint64) id))
        {
          magpie_store_exec (db, "ROLLBACK", NULL);
          return NULL;
        }
    }
  if (!magpie_store_exec (db, "COMMIT", error))
    return NULL;
  if (id != 0)
    job->row = magpie_store_read_row (db, id, error);
  return GINT_TO_POINTER (1);

fail:
  return magpie_store_fail_transaction (db, "taking from the outbox", error);
}

static void
taken_cb (GObject      *object,
          GAsyncResult *result,
          gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  MagpieOutbox *self = g_task_get_source_object (task);
  TakeJob *job = g_task_get_task_data (task);
  GError *error = NULL;

  if (magpie_store_run_finish (MAGPIE_STORE (object), result, &error) == NULL)
    {
      g_task_return_error (task, error);
      return;
    }
  if (job->row != NULL)
    emit_entry_changed (self, job->row);
  g_task_return_boolean (task, TRUE);
}

/* Takes the entry that has waited longest and is due, marking it uploading. Finishes with
 * NULL and no error when none is due; *next_due_us then says when one will be (0: none). */
void
magpie_outbox_take_async (MagpieOutbox        *self,
                          GCancellable        *cancellable,
                          GAsyncReadyCallback  callback,
                          gpointer             user_data)
{
  g_autoptr(GTask) task = NULL;
  TakeJob *job;

  g_return_if_fail (MAGPIE_IS_OUTBOX (self));

  job = g_new0 (TakeJob, 1);
  job->now = g_get_real_time ();
  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, magpie_outbox_take_async);
  g_task_set_task_data (task, job, (GDestroyNotify) take_job_free);
  magpie_store_run_async (self->store, take_sql, job, NULL, NULL, NULL,
                          taken_cb, g_steal_pointer (&task));
}

MagpieStoreRow *
magpie_outbox_take_finish (MagpieOutbox  *self,
                           GAsyncResult  *result,
                           gint64        *next_due_us,
                           GError       **error)
{
  TakeJob *job;

  g_return_val_if_fail (g_task_is_valid (result, self), NULL);

  if (!g_task_propagate_boolean (G_TASK (result), error))
    return NULL;
  job = g_task_get_task_data (G_TASK (result));
  if (next_due_us != NULL)
    *next_due_us = job->next_due;
  return g_steal_pointer (&job->row);
}

typedef struct {
  gint64             id;
  MagpieUploadState  upload;
  gint64             sent;
  char              *reason;
  gboolean           retryable;
  double             jitter;
  gint64             now;
} UpdateArgs;

static void
update_args_free (UpdateArgs *args)
{
  g_free (args->reason);
  g_free (args);
}

static gpointer
update_sql (sqlite3   *db,
            gpointer   data,
            GError   **error)
{
  UpdateArgs *args = data;
  g_autoptr(MagpieStoreRow) row = magpie_store_read_row (db, args->id, error);
  sqlite3_stmt *stmt = NULL;
  MagpieUploadState upload = args->upload;
  gint64 next_attempt = 0;
  int attempts;

  if (row == NULL)
    {
      if (error != NULL && *error == NULL)
        g_set_error (error, MAGPIE_CLIENT_ERROR, MAGPIE_CLIENT_ERROR_STORAGE,
                     "no outbox entry %" G_GINT64_FORMAT, args->id);
      return NULL;
    }

  attempts = row->attempts;
  if (upload == MAGPIE_UPLOAD_FAILED)
    {
      attempts++;
      if (args->retryable && attempts < MAGPIE_OUTBOX_MAX_ATTEMPTS)
        {
          upload = MAGPIE_UPLOAD_WAITING;
          next_attempt = args->now + magpie_outbox_backoff_us (attempts, args->jitter);
        }
    }

  if (sqlite3_prepare_v2 (db, "UPDATE photos SET upload = ?, sent = ?, attempts = ?, "
                          "next_attempt = ?, last_error = ? WHERE id = ?", -1, &stmt,
                          NULL) != SQLITE_OK)
    {
      g_set_error (error, MAGPIE_CLIENT_ERROR, MAGPIE_CLIENT_ERROR_STORAGE,
                   "updating the outbox: %s", sqlite3_errmsg (db));
      return NULL;
    }
  sqlite3_bind_int (stmt, 1, upload);
  sqlite3_bind_int64 (stmt, 2, args->upload == MAGPIE_UPLOAD_UPLOADED ? row->size : args->sent);
  sqlite3_bind_int (stmt, 3, args->upload == MAGPIE_UPLOAD_UPLOADED ? 0 : attempts);
  sqlite3_bind_int64 (stmt, 4, next_attempt);
  if (args->reason != NULL)
    sqlite3_bind_text (stmt, 5, args->reason, -1, SQLITE_TRANSIENT);
  else
    sqlite3_bind_null (stmt, 5);
  sqlite3_bind_int64 (stmt, 6, args->id);
  if (sqlite3_step (stmt) != SQLITE_DONE)
    {
      g_set_error (error, MAGPIE_CLIENT_ERROR, MAGPIE_CLIENT_ERROR_STORAGE,
                   "updating the outbox: %s", sqlite3_errmsg (db));
      sqlite3_finalize (stmt);
      return NULL;
    }
  sqlite3_finalize (stmt);
  return magpie_store_read_row (db, args->id, error);
}

static void
updated_cb (GObject      *object,
            GAsyncResult *result,
            gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  MagpieOutbox *self = g_task_get_source_object (task);
  MagpieStoreRow *row;
  GError *error = NULL;

  row = magpie_store_run_finish (MAGPIE_STORE (object), result, &error);
  if (row == NULL)
    {
      if (g_task_get_source_tag (task) == magpie_outbox_set_progress)
        g_warning ("Cannot record upload progress: %s", error->message);
      g_task_return_error (task, error);
      return;
    }
  emit_entry_changed (self, row);
  g_task_return_pointer (task, row, (GDestroyNotify) magpie_store_row_free);
}

static void
run_update (MagpieOutbox        *self,
            UpdateArgs          *args,
            gpointer             source_tag,
            GCancellable        *cancellable,
            GAsyncReadyCallback  callback,
            gpointer             user_data)
{
  GTask *task = g_task_new (self, cancellable, callback, user_data);

  g_task_set_source_tag (task, source_tag);
  magpie_store_run_async (self->store, update_sql, args, (GDestroyNotify) update_args_free,
                          (GDestroyNotify) magpie_store_row_free, NULL, updated_cb, task);
}

/* Records that @sent of @total bytes of entry @id are on the server (for resuming), and
 * tells the library so. */
void
magpie_outbox_set_progress (MagpieOutbox *self,
                            gint64        id,
                            gint64        sent,
                            gint64        total)
{
  UpdateArgs *args;

  g_return_if_fail (MAGPIE_IS_OUTBOX (self));

  args = g_new0 (UpdateArgs, 1);
  args->id = id;
  args->upload = MAGPIE_UPLOAD_UPLOADING;
  args->sent = CLAMP (sent, 0, total);
  run_update (self, args, magpie_outbox_set_progress, NULL, NULL, NULL);
}

/* The server has entry @id: it leaves the outbox. */
void
magpie_outbox_complete_async (MagpieOutbox        *self,
                              gint64               id,
                              GCancellable        *cancellable,
                              GAsyncReadyCallback  callback,
                              gpointer             user_data)
{
  UpdateArgs *args;

  g_return_if_fail (MAGPIE_IS_OUTBOX (self));

  args = g_new0 (UpdateArgs, 1);
  args->id = id;
  args->upload = MAGPIE_UPLOAD_UPLOADED;
  run_update (self, args, magpie_outbox_complete_async, cancellable, callback, user_data);
}

/* An attempt at entry @id failed for @reason (plain words). A @retryable failure puts it
 * back in the outbox after a backoff until MAGPIE_OUTBOX_MAX_ATTEMPTS; otherwise, or after
 * that, the entry is failed for good. Finishes with the entry as it now is. */
void
magpie_outbox_fail_async (MagpieOutbox        *self,
                          gint64               id,
                          const char          *reason,
                          gboolean             retryable,
                          GCancellable        *cancellable,
                          GAsyncReadyCallback  callback,
                          gpointer             user_data)
{
  UpdateArgs *args;

  g_return_if_fail (MAGPIE_IS_OUTBOX (self));
  g_return_if_fail (reason != NULL);

  args = g_new0 (UpdateArgs, 1);
  args->id = id;
  args->upload = MAGPIE_UPLOAD_FAILED;
  args->reason = g_strdup (reason);
  args->retryable = retryable;
  args->jitter = g_random_double ();
  args->now = g_get_real_time ();
  run_update (self, args, magpie_outbox_fail_async, cancellable, callback, user_data);
}

/* Entry @id goes back to waiting, due at once and without counting an attempt: its upload
 * was stopped on purpose (the photo was deleted, and undo brings it back to the outbox; or
 * Work Offline was switched on). */
void
magpie_outbox_release_async (MagpieOutbox        *self,
                             gint64               id,
                             GCancellable        *cancellable,
                             GAsyncReadyCallback  callback,
                             gpointer             user_data)
{
  UpdateArgs *args;

  g_return_if_fail (MAGPIE_IS_OUTBOX (self));

  args = g_new0 (UpdateArgs, 1);
  args->id = id;
  args->upload = MAGPIE_UPLOAD_WAITING;
  args->sent = 0;
  run_update (self, args, magpie_outbox_release_async, cancellable, callback, user_data);
}

static gpointer
retry_now_sql (sqlite3   *db,
               gpointer   data,
               GError   **error)
{
  if (!magpie_store_run_ids (db, "UPDATE photos SET next_attempt = 0 WHERE upload = ?",
                             "retrying the outbox", error, 1, (gint64) MAGPIE_UPLOAD_WAITING))
    return NULL;
  return GINT_TO_POINTER (1);
}

static void
retried_now_cb (GObject      *object,
                GAsyncResult *result,
                gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  GError *error = NULL;

  if (magpie_store_run_finish (MAGPIE_STORE (object), result, &error) == NULL)
    g_task_return_error (task, error);
  else
    g_task_return_boolean (task, TRUE);
}

/* Makes every waiting entry due now, however long its backoff: for when the server is back
 * after an outage that made attempts fail. Failed attempts still count. */
void
magpie_outbox_retry_now_async (MagpieOutbox        *self,
                               GCancellable        *cancellable,
                               GAsyncReadyCallback  callback,
                               gpointer             user_data)
{
  GTask *task;

  g_return_if_fail (MAGPIE_IS_OUTBOX (self));

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, magpie_outbox_retry_now_async);
  magpie_store_run_async (self->store, retry_now_sql, NULL, NULL, NULL, NULL, retried_now_cb,
                          task);
}

gboolean
magpie_outbox_retry_now_finish (MagpieOutbox  *self,
                                GAsyncResult  *result,
                                GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  return g_task_propagate_boolean (G_TASK (result), error);
}

MagpieStoreRow *
magpie_outbox_update_finish (MagpieOutbox  *self,
                             GAsyncResult  *result,
                             GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  return g_task_propagate_pointer (G_TASK (result), error);
}
