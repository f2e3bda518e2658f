/* magpie-store.c - the library's database: one SQLite file, all statements on one thread
 *
 * Every statement runs on one worker thread, in the order it was asked for, so the main loop
 * never waits on the disk and a later write never overtakes an earlier one. The database is
 * opened by the first job, not by magpie_store_new(), so start-up does no I/O. synchronous=FULL
 * with WAL: a committed import survives a crash or power cut.
 */
#define G_LOG_DOMAIN "magpie-store"

#include "config.h"

#include "magpie-store.h"

#include <glib/gstdio.h>
#include <sqlite3.h>

#include "magpie-client-error.h"
#include "magpie-photo.h"

#define MAGPIE_STORE_SCHEMA_VERSION 2

struct _MagpieStore {
  GObject      parent_instance;

  char        *path;
  GThreadPool *pool;
  sqlite3     *db;   /* only touched on the pool's thread */
  GError      *open_error;
};

G_DEFINE_FINAL_TYPE (MagpieStore, magpie_store, G_TYPE_OBJECT)

typedef struct {
  MagpieStoreFunc func;
  gpointer        data;
  GDestroyNotify  data_free;
  GDestroyNotify  result_free;
} StoreJob;

static void
store_job_free (StoreJob *job)
{
  if (job->data_free != NULL)
    job->data_free (job->data);
  g_free (job);
}

void
magpie_store_row_free (MagpieStoreRow *row)
{
  if (row == NULL)
    return;
  g_free (row->source);
  g_free (row->name);
  g_free (row->sha256);
  g_free (row->extension);
  g_free (row->last_error);
  g_clear_pointer (&row->tags, g_ptr_array_unref);
  g_free (row);
}

static gboolean
set_sqlite_error (sqlite3     *db,
                  const char  *what,
                  GError     **error)
{
  g_set_error (error, MAGPIE_CLIENT_ERROR, MAGPIE_CLIENT_ERROR_STORAGE,
               "%s: %s", what, db != NULL ? sqlite3_errmsg (db) : "out of memory");
  return FALSE;
}

/* For a MagpieStoreFunc that fails inside a transaction: sets @error to "@what: <SQLite's
 * message>", rolls back, and returns NULL for the function to return. */
gpointer
magpie_store_fail_transaction (sqlite3     *db,
                               const char  *what,
                               GError     **error)
{
  set_sqlite_error (db, what, error);
  magpie_store_exec (db, "ROLLBACK", NULL);
  return NULL;
}

gboolean
magpie_store_run_ids (sqlite3     *db,
                      const char  *sql,
                      const char  *what,
                      GError     **error,
                      guint        n_ids,
                      ...)
{
  sqlite3_stmt *stmt = NULL;
  va_list args;
  int rc;

  if (sqlite3_prepare_v2 (db, sql, -1, &stmt, NULL) != SQLITE_OK)
    return set_sqlite_error (db, what, error);
  va_start (args, n_ids);
  for (guint i = 0; i < n_ids; i++)
    sqlite3_bind_int64 (stmt, (int) i + 1, va_arg (args, gint64));
  va_end (args);
  rc = sqlite3_step (stmt);
  if (rc != SQLITE_DONE)
    set_sqlite_error (db, what, error);
  sqlite3_finalize (stmt);
  return rc == SQLITE_DONE;
}

gboolean
magpie_store_exec (sqlite3     *db,
                   const char  *sql,
                   GError     **error)
{
  char *message = NULL;

  if (sqlite3_exec (db, sql, NULL, NULL, &message) != SQLITE_OK)
    {
      g_set_error (error, MAGPIE_CLIENT_ERROR, MAGPIE_CLIENT_ERROR_STORAGE,
                   "%s: %s", sql, message != NULL ? message : "unknown error");
      sqlite3_free (message);
      return FALSE;
    }
  return TRUE;
}

/* Each migration takes the database from the version before it to its own (its index + 1);
 * they run in order, each in one transaction, from whatever version the file is at. */
static const char *const migrations[] = {
  /* 1: the photos and their tags */
  "CREATE TABLE IF NOT EXISTS photos ("
  "  id INTEGER PRIMARY KEY,"
  "  source TEXT NOT NULL,"
  "  name TEXT NOT NULL,"
  "  sha256 TEXT UNIQUE,"
  "  extension TEXT,"
  "  size INTEGER NOT NULL DEFAULT 0,"
  "  width INTEGER NOT NULL DEFAULT 0,"
  "  height INTEGER NOT NULL DEFAULT 0,"
  "  imported INTEGER NOT NULL,"
  "  upload INTEGER NOT NULL DEFAULT 0,"
  "  attempts INTEGER NOT NULL DEFAULT 0,"
  "  next_attempt INTEGER NOT NULL DEFAULT 0,"
  "  sent INTEGER NOT NULL DEFAULT 0,"
  "  last_error TEXT,"
  "  deleted INTEGER NOT NULL DEFAULT 0);"
  "CREATE TABLE IF NOT EXISTS tags ("
  "  photo INTEGER NOT NULL REFERENCES photos(id) ON DELETE CASCADE,"
  "  label TEXT NOT NULL,"
  "  confidence REAL NOT NULL,"
  "  source INTEGER NOT NULL,"
  "  PRIMARY KEY (photo, label));",
  /* 2: multipart uploads under way and their finished parts, so the next run resumes them.
   * An upload outlives its photo (photo becomes NULL) until the store has aborted it. */
  "CREATE TABLE multipart_uploads ("
  "  id INTEGER PRIMARY KEY,"
  "  photo INTEGER UNIQUE REFERENCES photos(id) ON DELETE SET NULL,"
  "  endpoint TEXT NOT NULL,"
  "  bucket TEXT NOT NULL,"
  "  key TEXT NOT NULL,"
  "  upload_id TEXT NOT NULL,"
  "  size INTEGER NOT NULL,"
  "  part_size INTEGER NOT NULL,"
  "  created INTEGER NOT NULL);"
  "CREATE TABLE multipart_parts ("
  "  upload INTEGER NOT NULL REFERENCES multipart_uploads(id) ON DELETE CASCADE,"
  "  number INTEGER NOT NULL,"
  "  size INTEGER NOT NULL,"
  "  etag TEXT NOT NULL,"
  "  PRIMARY KEY (upload, number));",
};

G_STATIC_ASSERT (G_N_ELEMENTS (migrations) == MAGPIE_STORE_SCHEMA_VERSION);

static gboolean
migrate (sqlite3  *db,
         int       version,
         GError  **error)
{
  for (; version < MAGPIE_STORE_SCHEMA_VERSION; version++)
    {
      g_autofree char *set_version = g_strdup_printf ("PRAGMA user_version = %d;",
                                                      version + 1);

      if (!magpie_store_exec (db, "BEGIN IMMEDIATE", error))
        return FALSE;
      if (!magpie_store_exec (db, migrations[version], error) ||
          !magpie_store_exec (db, set_version, error))
        {
          magpie_store_exec (db, "ROLLBACK", NULL);
          return FALSE;
        }
      if (!magpie_store_exec (db, "COMMIT", error))
        return FALSE;
    }
  return TRUE;
}

static gboolean
store_open (MagpieStore  *self,
            GError      **error)
{
  g_autofree char *dir = g_path_get_dirname (self->path);
  int version = 0;
  sqlite3_stmt *stmt = NULL;

  if (g_mkdir_with_parents (dir, 0700) != 0)
    {
      int errsv = errno;

      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errsv),
                   "Cannot create %s: %s", dir, g_strerror (errsv));
      return FALSE;
    }

  if (sqlite3_open_v2 (self->path, &self->db,
                       SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                       NULL) != SQLITE_OK)
    {
      set_sqlite_error (self->db, self->path, error);
      g_clear_pointer (&self->db, sqlite3_close);
      return FALSE;
    }
  sqlite3_busy_timeout (self->db, 5000);

  if (!magpie_store_exec (self->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                          "PRAGMA foreign_keys=ON;", error))
    return FALSE;

  if (sqlite3_prepare_v2 (self->db, "PRAGMA user_version", -1, &stmt, NULL) == SQLITE_OK &&
      sqlite3_step (stmt) == SQLITE_ROW)
    version = sqlite3_column_int (stmt, 0);
  sqlite3_finalize (stmt);

  if (version > MAGPIE_STORE_SCHEMA_VERSION)
    {
      g_set_error (error, MAGPIE_CLIENT_ERROR, MAGPIE_CLIENT_ERROR_STORAGE,
                   "%s was written by a newer Magpie (schema %d, this one knows %d)",
                   self->path, version, MAGPIE_STORE_SCHEMA_VERSION);
      return FALSE;
    }
  return migrate (self->db, version, error);
}

static void
store_worker (gpointer data,
              gpointer user_data)
{
  g_autoptr(GTask) task = data;
  MagpieStore *self = user_data;
  StoreJob *job = g_task_get_task_data (task);
  GError *error = NULL;
  gpointer result;

  if (self->db == NULL && self->open_error == NULL && !store_open (self, &self->open_error))
    g_message ("Cannot open the library database: %s", self->open_error->message);
  if (self->open_error != NULL)
    {
      g_task_return_error (task, g_error_copy (self->open_error));
      return;
    }

  result = job->func (self->db, job->data, &error);
  if (error != NULL)
    {
      g_assert (result == NULL);
      g_task_return_error (task, error);
    }
  else
    g_task_return_pointer (task, result, job->result_free);
}

static void
magpie_store_finalize (GObject *object)
{
  MagpieStore *self = MAGPIE_STORE (object);

  /* Every queued job holds a reference to the store, so none is left here. */
  g_thread_pool_free (self->pool, FALSE, TRUE);
  g_clear_pointer (&self->db, sqlite3_close);
  g_clear_error (&self->open_error);
  g_free (self->path);

  G_OBJECT_CLASS (magpie_store_parent_class)->finalize (object);
}

static void
magpie_store_class_init (MagpieStoreClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = magpie_store_finalize;
}

static void
magpie_store_init (MagpieStore *self)
{
  /* One thread: statements run in the order they were asked for. */
  self->pool = g_thread_pool_new (store_worker, self, 1, FALSE, NULL);
}

/* A store for the database at @path, opened (and created) by the first job. */
MagpieStore *
magpie_store_new (const char *path)
{
  MagpieStore *self;

  g_return_val_if_fail (path != NULL, NULL);

  self = g_object_new (MAGPIE_TYPE_STORE, NULL);
  self->path = g_strdup (path);
  return self;
}

const char *
magpie_store_get_path (MagpieStore *self)
{
  g_return_val_if_fail (MAGPIE_IS_STORE (self), NULL);
  return self->path;
}

/* Queues @func to run on the store's thread after every job queued before it. @data is freed
 * with @data_free on the main thread afterwards; a result never collected is freed with
 * @result_free. */
void
magpie_store_run_async (MagpieStore         *self,
                        MagpieStoreFunc      func,
                        gpointer             data,
                        GDestroyNotify       data_free,
                        GDestroyNotify       result_free,
                        GCancellable        *cancellable,
                        GAsyncReadyCallback  callback,
                        gpointer             user_data)
{
  GTask *task;
  StoreJob *job;

  g_return_if_fail (MAGPIE_IS_STORE (self));
  g_return_if_fail (func != NULL);

  job = g_new0 (StoreJob, 1);
  job->func = func;
  job->data = data;
  job->data_free = data_free;
  job->result_free = result_free;

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, magpie_store_run_async);
  g_task_set_task_data (task, job, (GDestroyNotify) store_job_free);
  /* A write asked for must happen even when nobody waits for its answer any more. */
  g_task_set_check_cancellable (task, FALSE);
  g_thread_pool_push (self->pool, task, NULL);
}

gpointer
magpie_store_run_finish (MagpieStore   *self,
                         GAsyncResult  *result,
                         GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  return g_task_propagate_pointer (G_TASK (result), error);
}

typedef struct {
  GMutex   mutex;
  GCond    cond;
  gboolean done;
} Barrier;

static gpointer
barrier_sql (sqlite3   *db,
             gpointer   data,
             GError   **error)
{
  Barrier *barrier = data;

  g_mutex_lock (&barrier->mutex);
  barrier->done = TRUE;
  g_cond_signal (&barrier->cond);
  g_mutex_unlock (&barrier->mutex);
  return NULL;
}

/* Blocks until every job queued so far has run. Only for shutting down (the process must not
 * exit with writes still queued) and for tests; never on a live main loop. */
void
magpie_store_sync (MagpieStore *self)
{
  Barrier barrier = { .done = FALSE };

  g_return_if_fail (MAGPIE_IS_STORE (self));

  g_mutex_init (&barrier.mutex);
  g_cond_init (&barrier.cond);
  magpie_store_run_async (self, barrier_sql, &barrier, NULL, NULL, NULL, NULL, NULL);
  g_mutex_lock (&barrier.mutex);
  while (!barrier.done)
    g_cond_wait (&barrier.cond, &barrier.mutex);
  g_mutex_unlock (&barrier.mutex);
  g_mutex_clear (&barrier.mutex);
  g_cond_clear (&barrier.cond);
}

static char *
column_strdup (sqlite3_stmt *stmt,
               int           column)
{
  return g_strdup ((const char *) sqlite3_column_text (stmt, column));
}

#define ROW_COLUMNS "id, source, name, sha256, extension, size, width, height, imported, " \
                    "upload, attempts, next_attempt, sent, last_error"

static MagpieStoreRow *
row_from_statement (sqlite3_stmt *stmt)
{
  MagpieStoreRow *row = g_new0 (MagpieStoreRow, 1);

  row->id = sqlite3_column_int64 (stmt, 0);
  row->source = column_strdup (stmt, 1);
  row->name = column_strdup (stmt, 2);
  row->sha256 = column_strdup (stmt, 3);
  row->extension = column_strdup (stmt, 4);
  row->size = sqlite3_column_int64 (stmt, 5);
  row->width = sqlite3_column_int (stmt, 6);
  row->height = sqlite3_column_int (stmt, 7);
  row->imported = sqlite3_column_int64 (stmt, 8);
  row->upload = sqlite3_column_int (stmt, 9);
  row->attempts = sqlite3_column_int (stmt, 10);
  row->next_attempt = sqlite3_column_int64 (stmt, 11);
  row->sent = sqlite3_column_int64 (stmt, 12);
  row->last_error = column_strdup (stmt, 13);
  row->tags = g_ptr_array_new_with_free_func ((GDestroyNotify) magpie_tag_free);
  return row;
}

/* Every photo that is not deleted, oldest first, with its tags: two statements however large
 * the library. */
GPtrArray *
magpie_store_read_all_rows (sqlite3  *db,
                            GError  **error)
{
  g_autoptr(GPtrArray) rows =
    g_ptr_array_new_with_free_func ((GDestroyNotify) magpie_store_row_free);
  g_autoptr(GHashTable) by_id = g_hash_table_new (g_int64_hash, g_int64_equal);
  sqlite3_stmt *stmt = NULL;

  if (sqlite3_prepare_v2 (db, "SELECT " ROW_COLUMNS " FROM photos WHERE deleted = 0 "
                          "ORDER BY imported, id", -1, &stmt, NULL) != SQLITE_OK)
    {
      set_sqlite_error (db, "reading the library", error);
      return NULL;
    }
  while (sqlite3_step (stmt) == SQLITE_ROW)
    {
      MagpieStoreRow *row = row_from_statement (stmt);

      g_ptr_array_add (rows, row);
      g_hash_table_insert (by_id, &row->id, row);
    }
  sqlite3_finalize (stmt);

  if (sqlite3_prepare_v2 (db, "SELECT photo, label, confidence, source FROM tags "
                          "ORDER BY photo, confidence DESC", -1, &stmt, NULL) != SQLITE_OK)
    {
      set_sqlite_error (db, "reading tags", error);
      return NULL;
    }
  while (sqlite3_step (stmt) == SQLITE_ROW)
    {
      gint64 id = sqlite3_column_int64 (stmt, 0);
      MagpieStoreRow *row = g_hash_table_lookup (by_id, &id);

      if (row != NULL)
        g_ptr_array_add (row->tags,
                         magpie_tag_new ((const char *) sqlite3_column_text (stmt, 1),
                                         sqlite3_column_double (stmt, 2),
                                         sqlite3_column_int (stmt, 3)));
    }
  sqlite3_finalize (stmt);
  return g_steal_pointer (&rows);
}

/* The row @id with its tags, or NULL (no error) when there is none. */
MagpieStoreRow *
magpie_store_read_row (sqlite3  *db,
                       gint64    id,
                       GError  **error)
{
  sqlite3_stmt *stmt = NULL;
  MagpieStoreRow *row = NULL;

  if (sqlite3_prepare_v2 (db, "SELECT " ROW_COLUMNS " FROM photos WHERE id = ?", -1, &stmt,
                          NULL) != SQLITE_OK)
    {
      set_sqlite_error (db, "reading a photo", error);
      return NULL;
    }
  sqlite3_bind_int64 (stmt, 1, id);
  if (sqlite3_step (stmt) == SQLITE_ROW)
    row = row_from_statement (stmt);
  sqlite3_finalize (stmt);

  if (row == NULL)
    return NULL;

  if (sqlite3_prepare_v2 (db, "SELECT label, confidence, source FROM tags WHERE photo = ? "
                          "ORDER BY confidence DESC", -1, &stmt, NULL) != SQLITE_OK)
    {
      magpie_store_row_free (row);
      set_sqlite_error (db, "reading tags", error);
      return NULL;
    }
  sqlite3_bind_int64 (stmt, 1, id);
  while (sqlite3_step (stmt) == SQLITE_ROW)
    g_ptr_array_add (row->tags, magpie_tag_new ((const char *) sqlite3_column_text (stmt, 0),
                                                sqlite3_column_double (stmt, 1),
                                                sqlite3_column_int (stmt, 2)));
  sqlite3_finalize (stmt);
  return row;
}
