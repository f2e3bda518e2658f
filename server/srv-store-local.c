/* srv-store-local.c - the local object-store backend: object files plus a SQLite index
 *
 * Layout under the data directory:
 *   store.db                         the index: buckets, objects, uploads, parts
 *   data/tmp/<id>                    a write in progress
 *   data/objects/<id[0:2]>/<id>      an object's bytes; immutable once published
 *   data/multipart/<upload>/<id>     an uploaded part
 * File names are random 128-bit ids, never derived from keys, so no key can reach outside
 * the directory. A write streams into tmp/, is fsynced, renamed into place, the directory is
 * fsynced, and only then does one index transaction make it visible (and retire the file of
 * the version it replaces, unlinked after the commit). A crash anywhere leaves at worst a
 * file no row refers to, which fsck removes on the next open.
 *
 * Threads: one SQLite connection behind one mutex. The mutex covers index statements only,
 * never body I/O or fsyncs, so a slow client does not hold up the others. Readers keep the
 * file they opened: replacing or deleting an object unlinks a name, not open descriptors.
 */
#define G_LOG_DOMAIN "srv-store"

#include "config.h"

#include "srv-store.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <sqlite3.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#define SRV_STORE_LOCAL_SCHEMA_VERSION 1
/* A writer elsewhere (a backup with the sqlite3 shell) gets this long before we give up. */
#define SRV_STORE_LOCAL_BUSY_MS        5000
/* Large enough that syscall cost vanishes next to hashing, small enough to allocate per
 * request without a thought. */
#define SRV_STORE_LOCAL_IO_CHUNK       (128 * 1024)
/* A reader retries this often when an overwrite retires the file between lookup and open. */
#define SRV_STORE_LOCAL_OPEN_RETRIES   5
#define SRV_STORE_LOCAL_ID_LEN         32

typedef struct {
  SrvStore    parent;
  char       *root;
  char       *tmp_dir;
  char       *objects_dir;
  char       *multipart_dir;
  gint64      max_object_size;
  gint64      min_part_size;
  GHashTable *buckets;        /* served name → SrvBucketInfo; read-only after open */
  GMutex      lock;           /* guards db and inflight */
  sqlite3    *db;
  GHashTable *inflight;       /* ids of files and uploads being created: fsck spares them */
} SrvStoreLocal;

#define LOCAL(s) ((SrvStoreLocal *) (s))

static const char schema_sql[] =
  "CREATE TABLE buckets ("
  "  name TEXT PRIMARY KEY, created INTEGER NOT NULL,"
  "  objects INTEGER NOT NULL DEFAULT 0, bytes INTEGER NOT NULL DEFAULT 0);"
  /* BINARY collation compares UTF-8 bytes: exactly S3's listing order. */
  "CREATE TABLE objects ("
  "  bucket TEXT NOT NULL, key TEXT NOT NULL, file TEXT NOT NULL UNIQUE,"
  "  size INTEGER NOT NULL, etag TEXT NOT NULL, md5 TEXT NOT NULL, sha256 TEXT NOT NULL,"
  "  content_type TEXT, metadata TEXT NOT NULL, last_modified INTEGER NOT NULL,"
  "  PRIMARY KEY (bucket, key)) WITHOUT ROWID;"
  /* Usage is kept as counters so /metrics never scans the objects table. */
  "CREATE TRIGGER objects_ins AFTER INSERT ON objects BEGIN"
  "  UPDATE buckets SET objects = objects + 1, bytes = bytes + NEW.size"
  "  WHERE name = NEW.bucket; END;"
  "CREATE TRIGGER objects_del AFTER DELETE ON objects BEGIN"
  "  UPDATE buckets SET objects = objects - 1, bytes = bytes - OLD.size"
  "  WHERE name = OLD.bucket; END;"
  "CREATE TRIGGER objects_upd AFTER UPDATE OF size ON objects BEGIN"
  "  UPDATE buckets SET bytes = bytes - OLD.size + NEW.size WHERE name = NEW.bucket; END;"
  "CREATE TABLE uploads ("
  "  id TEXT PRIMARY KEY, bucket TEXT NOT NULL, key TEXT NOT NULL, content_type TEXT,"
  "  metadata TEXT NOT NULL, initiated INTEGER NOT NULL);"
  "CREATE INDEX uploads_by_key ON uploads (bucket, key, id);"
  "CREATE TABLE parts ("
  "  upload TEXT NOT NULL REFERENCES uploads (id) ON DELETE CASCADE,"
  "  number INTEGER NOT NULL, file TEXT NOT NULL UNIQUE, size INTEGER NOT NULL,"
  "  md5 TEXT NOT NULL, last_modified INTEGER NOT NULL,"
  "  PRIMARY KEY (upload, number)) WITHOUT ROWID;";

#define OBJECT_COLUMNS "key, size, etag, md5, sha256, content_type, metadata, last_modified, file"

/* ---- errors ---------------------------------------------------------------------------- */

static void
set_errno_error (GError **error, int errsv, const char *what, const char *path)
{
  int code = (errsv == ENOSPC || errsv == EDQUOT) ? SRV_STORE_ERROR_NO_SPACE
                                                  : SRV_STORE_ERROR_INTERNAL;

  g_set_error (error, SRV_STORE_ERROR, code, "%s %s: %s", what, path, g_strerror (errsv));
}

static gboolean
db_error (SrvStoreLocal *self, int rc, const char *what, GError **error)
{
  int code = (rc & 0xff) == SQLITE_FULL ? SRV_STORE_ERROR_NO_SPACE : SRV_STORE_ERROR_INTERNAL;

  g_set_error (error, SRV_STORE_ERROR, code, "store index, %s: %s", what,
               sqlite3_errmsg (self->db));
  return FALSE;
}

/* ---- index helpers (call with the lock held) ------------------------------------------- */

static sqlite3_stmt *
prep (SrvStoreLocal *self, const char *sql, GError **error)
{
  sqlite3_stmt *stmt = NULL;
  int rc = sqlite3_prepare_v2 (self->db, sql, -1, &stmt, NULL);

  if (rc != SQLITE_OK)
    {
      db_error (self, rc, "prepare", error);
      return NULL;
    }
  return stmt;
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (sqlite3_stmt, sqlite3_finalize)

static gboolean
exec (SrvStoreLocal *self, const char *sql, GError **error)
{
  int rc = sqlite3_exec (self->db, sql, NULL, NULL, NULL);

  return rc == SQLITE_OK || db_error (self, rc, sql, error);
}

/* Binds by name so one statement text can leave optional clauses out. */
static void
bind_text (sqlite3_stmt *stmt, const char *name, const char *value, int length)
{
  int i = sqlite3_bind_parameter_index (stmt, name);

  if (i == 0)
    return;
  if (value == NULL)
    sqlite3_bind_null (stmt, i);
  else
    sqlite3_bind_text (stmt, i, value, length, SQLITE_STATIC);
}

static void
bind_int (sqlite3_stmt *stmt, const char *name, gint64 value)
{
  int i = sqlite3_bind_parameter_index (stmt, name);

  if (i != 0)
    sqlite3_bind_int64 (stmt, i, value);
}

static char *
col_dup (sqlite3_stmt *stmt, int col)
{
  const unsigned char *text = sqlite3_column_text (stmt, col);

  return text ? g_strndup ((const char *) text, sqlite3_column_bytes (stmt, col)) : NULL;
}

/* Ends the transaction; on a failed COMMIT rolls back so the connection stays usable. */
static gboolean
commit (SrvStoreLocal *self, GError **error)
{
  int rc = sqlite3_exec (self->db, "COMMIT", NULL, NULL, NULL);

  if (rc == SQLITE_OK)
    return TRUE;
  db_error (self, rc, "commit", error);
  sqlite3_exec (self->db, "ROLLBACK", NULL, NULL, NULL);
  return FALSE;
}

static void
rollback (SrvStoreLocal *self)
{
  if (!sqlite3_get_autocommit (self->db))
    sqlite3_exec (self->db, "ROLLBACK", NULL, NULL, NULL);
}

/* ---- small pieces ---------------------------------------------------------------------- */

static void
new_id (char out[SRV_STORE_LOCAL_ID_LEN + 1])
{
  guint8 raw[16];
  gsize got = 0;

  while (got < sizeof raw)
    {
      ssize_t n = getrandom (raw + got, sizeof raw - got, 0);

      if (n < 0 && errno != EINTR)
        break;
      if (n > 0)
        got += n;
    }
  /* getrandom() cannot fail on Linux ≥ 3.17; uniqueness, not secrecy, is what ids need. */
  for (; got < sizeof raw; got++)
    raw[got] = g_random_int_range (0, 256);
  for (gsize i = 0; i < sizeof raw; i++)
    g_snprintf (out + 2 * i, 3, "%02x", raw[i]);
}

static gboolean
is_id (const char *name)
{
  if (strlen (name) != SRV_STORE_LOCAL_ID_LEN)
    return FALSE;
  for (const char *p = name; *p; p++)
    if (!g_ascii_isxdigit (*p) || g_ascii_isupper (*p))
      return FALSE;
  return TRUE;
}

static char *
object_path (SrvStoreLocal *self, const char *id)
{
  char sub[3] = { id[0], id[1], '\0' };

  return g_build_filename (self->objects_dir, sub, id, NULL);
}

static char *
part_path (SrvStoreLocal *self, const char *upload, const char *id)
{
  return g_build_filename (self->multipart_dir, upload, id, NULL);
}

static gboolean
fsync_dir (const char *path, GError **error)
{
  int fd = open (path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  int errsv;

  if (fd < 0 || fsync (fd) < 0)
    {
      errsv = errno;
      if (fd >= 0)
        close (fd);
      set_errno_error (error, errsv, "cannot sync directory", path);
      return FALSE;
    }
  close (fd);
  return TRUE;
}

static void
inflight_add (SrvStoreLocal *self, const char *id)
{
  g_mutex_lock (&self->lock);
  g_hash_table_add (self->inflight, g_strdup (id));
  g_mutex_unlock (&self->lock);
}

static void
inflight_remove_locked (SrvStoreLocal *self, const char *id)
{
  g_hash_table_remove (self->inflight, id);
}

static void
inflight_remove (SrvStoreLocal *self, const char *id)
{
  g_mutex_lock (&self->lock);
  inflight_remove_locked (self, id);
  g_mutex_unlock (&self->lock);
}

static char *
metadata_to_json (GHashTable *metadata)
{
  g_autoptr(JsonBuilder) b = json_builder_new ();
  g_autoptr(JsonNode) root = NULL;
  GHashTableIter iter;
  gpointer k, v;

  json_builder_begin_object (b);
  if (metadata != NULL)
    {
      g_hash_table_iter_init (&iter, metadata);
      while (g_hash_table_iter_next (&iter, &k, &v))
        {
          g_autofree char *lower = g_ascii_strdown (k, -1);

          json_builder_set_member_name (b, lower);
          json_builder_add_string_value (b, v ? v : "");
        }
    }
  json_builder_end_object (b);
  root = json_builder_get_root (b);
  return json_to_string (root, FALSE);
}

static GHashTable *
metadata_from_json (const char *json)
{
  GHashTable *metadata = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  g_autoptr(JsonNode) root = json ? json_from_string (json, NULL) : NULL;

  if (root != NULL && JSON_NODE_HOLDS_OBJECT (root))
    {
      JsonObject *obj = json_node_get_object (root);
      JsonObjectIter iter;
      const char *name;
      JsonNode *node;

      json_object_iter_init (&iter, obj);
      while (json_object_iter_next (&iter, &name, &node))
        if (JSON_NODE_HOLDS_VALUE (node))
          g_hash_table_insert (metadata, g_strdup (name), g_strdup (json_node_get_string (node)));
    }
  return metadata;
}

/* Row columns as in OBJECT_COLUMNS; @with_metadata FALSE for listings. */
static SrvObjectInfo *
object_from_row (sqlite3_stmt *stmt, gboolean with_metadata)
{
  SrvObjectInfo *info = g_new0 (SrvObjectInfo, 1);

  info->key = col_dup (stmt, 0);
  info->size = sqlite3_column_int64 (stmt, 1);
  info->etag = col_dup (stmt, 2);
  info->md5 = col_dup (stmt, 3);
  info->sha256 = col_dup (stmt, 4);
  info->content_type = col_dup (stmt, 5);
  if (with_metadata)
    info->metadata = metadata_from_json ((const char *) sqlite3_column_text (stmt, 6));
  info->last_modified = sqlite3_column_int64 (stmt, 7);
  return info;
}

/* The smallest string greater than every string starting with @s, or NULL if none is (all
 * bytes 0xff). Keys are UTF-8, which never contains 0xff, so this is exact. */
static char *
successor (const char *s, gsize len)
{
  char *out = g_strndup (s, len);

  while (len > 0 && (guchar) out[len - 1] == 0xff)
    out[--len] = '\0';
  if (len == 0)
    {
      g_free (out);
      return NULL;
    }
  out[len - 1] = (char) ((guchar) out[len - 1] + 1);
  return out;
}

/* ---- staging: stream bytes into tmp/, hashed and fsynced -------------------------------- */

typedef struct {
  char       id[SRV_STORE_LOCAL_ID_LEN + 1];
  char      *tmp_path;
  int        fd;
  gint64     size;
  GChecksum *md5;
  GChecksum *sha256;
  guint8     md5_raw[16];
  char      *md5_hex;
  char      *sha256_hex;
} Staged;

static void
staged_clear (SrvStoreLocal *self, Staged *st, gboolean unlink_tmp)
{
  if (st->fd >= 0)
    close (st->fd);
  st->fd = -1;
  if (unlink_tmp && st->tmp_path != NULL)
    g_unlink (st->tmp_path);
  g_clear_pointer (&st->tmp_path, g_free);
  g_clear_pointer (&st->md5, g_checksum_free);
  g_clear_pointer (&st->sha256, g_checksum_free);
  g_clear_pointer (&st->md5_hex, g_free);
  g_clear_pointer (&st->sha256_hex, g_free);
  if (st->id[0] != '\0')
    inflight_remove (self, st->id);
  st->id[0] = '\0';
}

static void
staged_init (Staged *st)
{
  memset (st, 0, sizeof *st);
  st->fd = -1;
}

/* Creates tmp/<new id>, registered as in flight until staged_clear(). */
static gboolean
stage_begin (SrvStoreLocal *self, Staged *st, GError **error)
{
  staged_init (st);
  new_id (st->id);
  inflight_add (self, st->id);
  st->tmp_path = g_build_filename (self->tmp_dir, st->id, NULL);
  st->md5 = g_checksum_new (G_CHECKSUM_MD5);
  st->sha256 = g_checksum_new (G_CHECKSUM_SHA256);
  st->fd = open (st->tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (st->fd < 0)
    {
      set_errno_error (error, errno, "cannot create", st->tmp_path);
      g_clear_pointer (&st->tmp_path, g_free);
      return FALSE;
    }
  return TRUE;
}

static gboolean
stage_write (Staged *st, const guint8 *buf, gsize len, GError **error)
{
  gsize done = 0;

  g_checksum_update (st->md5, buf, len);
  g_checksum_update (st->sha256, buf, len);
  while (done < len)
    {
      ssize_t n = write (st->fd, buf + done, len - done);

      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        {
          set_errno_error (error, errno, "cannot write", st->tmp_path);
          return FALSE;
        }
      done += n;
    }
  st->size += len;
  return TRUE;
}

static gboolean
stage_finish (Staged *st, GError **error)
{
  gsize len = sizeof st->md5_raw;
  int errsv;

  g_checksum_get_digest (st->md5, st->md5_raw, &len);
  st->md5_hex = g_strdup (g_checksum_get_string (st->md5));
  st->sha256_hex = g_strdup (g_checksum_get_string (st->sha256));
  if (fsync (st->fd) < 0)
    {
      set_errno_error (error, errno, "cannot sync", st->tmp_path);
      return FALSE;
    }
  errsv = close (st->fd) < 0 ? errno : 0;
  st->fd = -1;
  if (errsv != 0)
    {
      set_errno_error (error, errsv, "cannot close", st->tmp_path);
      return FALSE;
    }
  return TRUE;
}

/* Reads @body to its end into a new staged file. */
static gboolean
stage_stream (SrvStoreLocal *self, Staged *st, GInputStream *body, gint64 expected_size,
              gint64 max_size, const char *content_md5, GCancellable *cancellable,
              GError **error)
{
  g_autofree guint8 *buf = NULL;

  staged_init (st);
  if (expected_size > max_size)
    {
      g_set_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_ENTITY_TOO_LARGE,
                   "%" G_GINT64_FORMAT " bytes is over the limit of %" G_GINT64_FORMAT,
                   expected_size, max_size);
      return FALSE;
    }
  if (!stage_begin (self, st, error))
    return FALSE;
  buf = g_malloc (SRV_STORE_LOCAL_IO_CHUNK);
  for (;;)
    {
      gssize n;

      /* Not every stream checks: a memory or converter stream reads on regardless. */
      if (g_cancellable_set_error_if_cancelled (cancellable, error))
        return FALSE;
      n = g_input_stream_read (body, buf, SRV_STORE_LOCAL_IO_CHUNK, cancellable, error);
      if (n < 0)
        return FALSE;
      if (n == 0)
        break;
      if (st->size + n > max_size)
        {
          g_set_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_ENTITY_TOO_LARGE,
                       "the body is over the limit of %" G_GINT64_FORMAT " bytes", max_size);
          return FALSE;
        }
      if (expected_size >= 0 && st->size + n > expected_size)
        break;
      if (!stage_write (st, buf, n, error))
        return FALSE;
    }
  if (expected_size >= 0 && st->size != expected_size)
    {
      g_set_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_INCOMPLETE_BODY,
                   "the body does not have the %" G_GINT64_FORMAT " bytes announced",
                   expected_size);
      return FALSE;
    }
  if (!stage_finish (st, error))
    return FALSE;
  if (content_md5 != NULL)
    {
      gsize len = 0;
      g_autofree guchar *want = g_base64_decode (content_md5, &len);

      if (len != 16 || memcmp (want, st->md5_raw, 16) != 0)
        {
          g_set_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_BAD_DIGEST,
                       "the Content-MD5 you specified did not match what we received");
          return FALSE;
        }
    }
  return TRUE;
}

/* Renames the staged file to @dest and makes the rename durable. On failure the staged file
 * is still in tmp/ (or already gone) and staged_clear() removes it. */
static gboolean
stage_publish (Staged *st, const char *dest, GError **error)
{
  g_autofree char *dir = g_path_get_dirname (dest);

  if (g_rename (st->tmp_path, dest) < 0)
    {
      set_errno_error (error, errno, "cannot publish", dest);
      return FALSE;
    }
  g_clear_pointer (&st->tmp_path, g_free);
  if (!fsync_dir (dir, error))
    {
      g_unlink (dest);
      return FALSE;
    }
  return TRUE;
}

/* ---- open / close ---------------------------------------------------------------------- */

static gboolean local_fsck (SrvStore *store, SrvStoreFsckReport *report, GError **error);

static void
local_close (SrvStore *store)
{
  SrvStoreLocal *self = LOCAL (store);

  if (self->db != NULL)
    sqlite3_close (self->db);
  g_clear_pointer (&self->buckets, g_hash_table_unref);
  g_clear_pointer (&self->inflight, g_hash_table_unref);
  g_mutex_clear (&self->lock);
  g_free (self->root);
  g_free (self->tmp_dir);
  g_free (self->objects_dir);
  g_free (self->multipart_dir);
  g_free (self);
}

static gboolean
make_dir (const char *path, GError **error)
{
  if (g_mkdir_with_parents (path, 0700) < 0)
    {
      set_errno_error (error, errno, "cannot create directory", path);
      return FALSE;
    }
  return TRUE;
}

static gboolean
open_index (SrvStoreLocal *self, GError **error)
{
  g_autofree char *path = g_build_filename (self->root, "store.db", NULL);
  g_autoptr(sqlite3_stmt) stmt = NULL;
  int rc;
  int version;

  /* FULLMUTEX although self->lock serialises us: it keeps a statement finalised after the
   * unlock (an early return) harmless. */
  rc = sqlite3_open_v2 (path, &self->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL);
  if (rc != SQLITE_OK)
    {
      g_set_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_INTERNAL, "cannot open %s: %s",
                   path, self->db ? sqlite3_errmsg (self->db) : sqlite3_errstr (rc));
      return FALSE;
    }
  sqlite3_busy_timeout (self->db, SRV_STORE_LOCAL_BUSY_MS);
  /* FULL: a commit is on disk when it returns, so an acknowledged PUT survives power loss. */
  if (!exec (self, "PRAGMA journal_mode = WAL", error) ||
      !exec (self, "PRAGMA synchronous = FULL", error) ||
      !exec (self, "PRAGMA foreign_keys = ON", error) ||
      !exec (self, "BEGIN IMMEDIATE", error))
    return FALSE;
  if ((stmt = prep (self, "PRAGMA user_version", error)) == NULL)
    goto fail;
  sqlite3_step (stmt);
  version = sqlite3_column_int (stmt, 0);
  g_clear_pointer (&stmt, sqlite3_finalize);
  if (version == 0)
    {
      g_autofree char *set_version =
        g_strdup_printf ("PRAGMA user_version = %d", SRV_STORE_LOCAL_SCHEMA_VERSION);

      if (!exec (self, schema_sql, error) || !exec (self, set_version, error))
        goto fail;
    }
  else if (version != SRV_STORE_LOCAL_SCHEMA_VERSION)
    {
      g_set_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_INTERNAL,
                   "%s has store schema %d; this magpied knows %d", path, version,
                   SRV_STORE_LOCAL_SCHEMA_VERSION);
      goto fail;
    }
  return commit (self, error);

fail:
  rollback (self);
  return FALSE;
}

static gboolean
open_buckets (SrvStoreLocal *self, const char * const *names, GError **error)
{
  g_autoptr(sqlite3_stmt) ins = NULL;
  g_autoptr(sqlite3_stmt) sel = NULL;
  int rc;

  if ((ins = prep (self, "INSERT OR IGNORE INTO buckets (name, created) VALUES (:n, :t)",
                   error)) == NULL ||
      (sel = prep (self, "SELECT name, created FROM buckets", error)) == NULL)
    return FALSE;
  for (const char * const *n = names; n && *n; n++)
    {
      sqlite3_reset (ins);
      bind_text (ins, ":n", *n, -1);
      bind_int (ins, ":t", g_get_real_time ());
      if ((rc = sqlite3_step (ins)) != SQLITE_DONE)
        return db_error (self, rc, "create bucket", error);
    }
  while ((rc = sqlite3_step (sel)) == SQLITE_ROW)
    {
      const char *name = (const char *) sqlite3_column_text (sel, 0);

      if (names != NULL && g_strv_contains (names, name))
        {
          SrvBucketInfo *b = g_new0 (SrvBucketInfo, 1);

          b->name = g_strdup (name);
          b->created = sqlite3_column_int64 (sel, 1);
          g_hash_table_insert (self->buckets, b->name, b);
        }
      else
        g_log_structured (G_LOG_DOMAIN, G_LOG_LEVEL_INFO, "BUCKET", name,
                          "MESSAGE", "bucket kept on disk but not served (not configured)");
    }
  return rc == SQLITE_DONE || db_error (self, rc, "list buckets", error);
}

static SrvStore *
local_open (const char             *data_dir,
            const char * const     *buckets,
            const SrvStoreOptions  *options,
            GError                **error)
{
  SrvStoreLocal *self = g_new0 (SrvStoreLocal, 1);
  g_autofree char *data = NULL;
  SrvStoreFsckReport report;

  self->parent.vt = &srv_store_local_vtable;
  g_mutex_init (&self->lock);
  self->root = g_canonicalize_filename (data_dir, NULL);
  data = g_build_filename (self->root, "data", NULL);
  self->tmp_dir = g_build_filename (data, "tmp", NULL);
  self->objects_dir = g_build_filename (data, "objects", NULL);
  self->multipart_dir = g_build_filename (data, "multipart", NULL);
  self->max_object_size = options->max_object_size ? options->max_object_size
                                                   : SRV_STORE_MAX_OBJECT_SIZE_DEFAULT;
  self->min_part_size = options->min_part_size ? options->min_part_size
                                               : SRV_STORE_MIN_PART_SIZE_DEFAULT;
  self->buckets = g_hash_table_new_full (g_str_hash, g_str_equal, NULL,
                                         (GDestroyNotify) srv_bucket_info_free);
  self->inflight = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);

  if (!make_dir (self->tmp_dir, error) || !make_dir (self->multipart_dir, error))
    goto fail;
  /* All 256 fan-out directories up front, so a PUT never has to create one. */
  for (int i = 0; i < 256; i++)
    {
      g_autofree char *sub = g_strdup_printf ("%s/%02x", self->objects_dir, i);

      if (!make_dir (sub, error))
        goto fail;
    }
  if (!open_index (self, error) || !open_buckets (self, buckets, error) ||
      !local_fsck (&self->parent, &report, error))
    goto fail;
  return &self->parent;

fail:
  local_close (&self->parent);
  return NULL;
}

/* ---- buckets --------------------------------------------------------------------------- */

static gint
bucket_cmp (gconstpointer a, gconstpointer b)
{
  const SrvBucketInfo *x = *(SrvBucketInfo * const *) a;
  const SrvBucketInfo *y = *(SrvBucketInfo * const *) b;

  return strcmp (x->name, y->name);
}

static GPtrArray *
local_list_buckets (SrvStore *store)
{
  SrvStoreLocal *self = LOCAL (store);
  GPtrArray *out = g_ptr_array_new_with_free_func ((GDestroyNotify) srv_bucket_info_free);
  GHashTableIter iter;
  gpointer v;

  g_hash_table_iter_init (&iter, self->buckets);
  while (g_hash_table_iter_next (&iter, NULL, &v))
    {
      SrvBucketInfo *b = g_new0 (SrvBucketInfo, 1);

      b->name = g_strdup (((SrvBucketInfo *) v)->name);
      b->created = ((SrvBucketInfo *) v)->created;
      g_ptr_array_add (out, b);
    }
  g_ptr_array_sort (out, bucket_cmp);
  return out;
}

static gboolean
local_head_bucket (SrvStore *store, const char *bucket, GError **error)
{
  if (g_hash_table_contains (LOCAL (store)->buckets, bucket))
    return TRUE;
  g_set_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_NO_SUCH_BUCKET,
               "the bucket '%s' does not exist", bucket);
  return FALSE;
}

/* ---- objects --------------------------------------------------------------------------- */

/* Looks @key up; with @file, also returns its file id. Lock held. */
static SrvObjectInfo *
lookup_locked (SrvStoreLocal *self, const char *bucket, const char *key, char **file,
               GError **error)
{
  g_autoptr(sqlite3_stmt) stmt = NULL;
  SrvObjectInfo *info;
  int rc;

  if ((stmt = prep (self, "SELECT " OBJECT_COLUMNS " FROM objects "
                          "WHERE bucket = :b AND key = :k", error)) == NULL)
    return NULL;
  bind_text (stmt, ":b", bucket, -1);
  bind_text (stmt, ":k", key, -1);
  rc = sqlite3_step (stmt);
  if (rc == SQLITE_DONE)
    {
      g_set_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_NO_SUCH_KEY,
                   "the key '%s' does not exist", key);
      return NULL;
    }
  if (rc != SQLITE_ROW)
    {
      db_error (self, rc, "look up", error);
      return NULL;
    }
  info = object_from_row (stmt, TRUE);
  if (file != NULL)
    *file = col_dup (stmt, 8);
  return info;
}

/* Makes the published file @st the current version of @key inside the caller's transaction;
 * returns the replaced version's file id in @old_file (NULL if there was none). Lock held. */
static SrvObjectInfo *
upsert_object_locked (SrvStoreLocal *self, const char *bucket, const char *key, Staged *st,
                      const char *etag, const char *content_type, const char *metadata_json,
                      char **old_file, GError **error)
{
  g_autoptr(sqlite3_stmt) sel = NULL;
  g_autoptr(sqlite3_stmt) up = NULL;
  SrvObjectInfo *info;
  gint64 now = g_get_real_time ();
  int rc;

  *old_file = NULL;
  if ((sel = prep (self, "SELECT file FROM objects WHERE bucket = :b AND key = :k", error)) ==
        NULL ||
      (up = prep (self, "INSERT INTO objects (bucket, key, file, size, etag, md5, sha256,"
                        " content_type, metadata, last_modified)"
                        " VALUES (:b, :k, :f, :s, :e, :m, :h, :c, :j, :t)"
                        " ON CONFLICT (bucket, key) DO UPDATE SET file = excluded.file,"
                        " size = excluded.size, etag = excluded.etag, md5 = excluded.md5,"
                        " sha256 = excluded.sha256, content_type = excluded.content_type,"
                        " metadata = excluded.metadata, last_modified = excluded.last_modified",
                  error)) == NULL)
    return NULL;
  bind_text (sel, ":b", bucket, -1);
  bind_text (sel, ":k", key, -1);
  rc = sqlite3_step (sel);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE)
    {
      db_error (self, rc, "look up", error);
      return NULL;
    }
  bind_text (up, ":b", bucket, -1);
  bind_text (up, ":k", key, -1);
  bind_text (up, ":f", st->id, -1);
  bind_int (up, ":s", st->size);
  bind_text (up, ":e", etag, -1);
  bind_text (up, ":m", st->md5_hex, -1);
  bind_text (up, ":h", st->sha256_hex, -1);
  bind_text (up, ":c", content_type, -1);
  bind_text (up, ":j", metadata_json, -1);
  bind_int (up, ":t", now);
  if (rc == SQLITE_ROW)
    *old_file = col_dup (sel, 0);
  if ((rc = sqlite3_step (up)) != SQLITE_DONE)
    {
      db_error (self, rc, "store", error);
      g_clear_pointer (old_file, g_free);
      return NULL;
    }

  info = g_new0 (SrvObjectInfo, 1);
  info->key = g_strdup (key);
  info->size = st->size;
  info->etag = g_strdup (etag);
  info->md5 = g_strdup (st->md5_hex);
  info->sha256 = g_strdup (st->sha256_hex);
  info->content_type = g_strdup (content_type);
  info->metadata = metadata_from_json (metadata_json);
  info->last_modified = now;
  return info;
}

static void
unlink_object_file (SrvStoreLocal *self, const char *id)
{
  g_autofree char *path = object_path (self, id);

  if (g_unlink (path) < 0 && errno != ENOENT)
    g_log_structured (G_LOG_DOMAIN, G_LOG_LEVEL_WARNING, "PATH", path,
                      "ERROR", g_strerror (errno), "MESSAGE", "cannot remove a retired object");
}

/* Publishes @st as @key; on any failure the staged or published file is gone and the
 * previous version untouched. Consumes @st. */
static SrvObjectInfo *
publish_object (SrvStoreLocal *self, const char *bucket, const char *key, Staged *st,
                const char *etag, const char *content_type, GHashTable *metadata,
                GError **error)
{
  g_autofree char *dest = object_path (self, st->id);
  g_autofree char *json = metadata_to_json (metadata);
  g_autofree char *old_file = NULL;
  SrvObjectInfo *info = NULL;

  if (!stage_publish (st, dest, error))
    {
      staged_clear (self, st, TRUE);
      return NULL;
    }
  g_mutex_lock (&self->lock);
  if (exec (self, "BEGIN IMMEDIATE", error))
    {
      info = upsert_object_locked (self, bucket, key, st, etag, content_type, json, &old_file,
                                   error);
      if (info != NULL && !commit (self, error))
        g_clear_pointer (&info, srv_object_info_free);
      rollback (self);
    }
  g_mutex_unlock (&self->lock);
  if (info == NULL)
    {
      g_clear_pointer (&old_file, g_free);
      g_unlink (dest);
    }
  staged_clear (self, st, TRUE);
  if (old_file != NULL)
    unlink_object_file (self, old_file);
  return info;
}

static SrvObjectInfo *
put_internal (SrvStoreLocal *self, const char *bucket, const char *key, GInputStream *body,
              gint64 expected_size, const char *content_type, GHashTable *metadata,
              const char *content_md5, GCancellable *cancellable, GError **error)
{
  Staged st;
  g_autofree char *etag = NULL;

  if (!stage_stream (self, &st, body, expected_size, self->max_object_size, content_md5,
                     cancellable, error))
    {
      staged_clear (self, &st, TRUE);
      return NULL;
    }
  etag = g_strdup_printf ("\"%s\"", st.md5_hex);
  return publish_object (self, bucket, key, &st, etag, content_type, metadata, error);
}

static SrvObjectInfo *
local_put (SrvStore *store, const char *bucket, const char *key, GInputStream *body,
           gint64 expected_size, const char *content_type, GHashTable *metadata,
           const char *content_md5, GCancellable *cancellable, GError **error)
{
  return put_internal (LOCAL (store), bucket, key, body, expected_size, content_type,
                       metadata, content_md5, cancellable, error);
}

static SrvObjectInfo *
local_head (SrvStore *store, const char *bucket, const char *key, GError **error)
{
  SrvStoreLocal *self = LOCAL (store);
  SrvObjectInfo *info;

  g_mutex_lock (&self->lock);
  info = lookup_locked (self, bucket, key, NULL, error);
  g_mutex_unlock (&self->lock);
  return info;
}

/* A GInputStream over [offset, end) of a file descriptor it owns, read with pread(). */
#define SRV_TYPE_FILE_RANGE_STREAM (srv_file_range_stream_get_type ())
G_DECLARE_FINAL_TYPE (SrvFileRangeStream, srv_file_range_stream, SRV, FILE_RANGE_STREAM,
                      GInputStream)

struct _SrvFileRangeStream {
  GInputStream parent_instance;
  int          fd;
  gint64       offset;
  gint64       end;
};

G_DEFINE_FINAL_TYPE (SrvFileRangeStream, srv_file_range_stream, G_TYPE_INPUT_STREAM)

static gssize
srv_file_range_stream_read (GInputStream  *stream,
                            void          *buffer,
                            gsize          count,
                            GCancellable  *cancellable,
                            GError       **error)
{
  SrvFileRangeStream *self = SRV_FILE_RANGE_STREAM (stream);
  gsize want = MIN (count, (gsize) (self->end - self->offset));
  ssize_t n;

  if (g_cancellable_set_error_if_cancelled (cancellable, error))
    return -1;
  if (want == 0)
    return 0;
  do
    n = pread (self->fd, buffer, want, self->offset);
  while (n < 0 && errno == EINTR);
  if (n < 0)
    {
      int errsv = errno;

      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errsv), "cannot read object: %s",
                   g_strerror (errsv));
      return -1;
    }
  self->offset += n;
  return n;
}

static gssize
srv_file_range_stream_skip (GInputStream  *stream,
                            gsize          count,
                            GCancellable  *cancellable,
                            GError       **error)
{
  SrvFileRangeStream *self = SRV_FILE_RANGE_STREAM (stream);
  gsize n = MIN (count, (gsize) (self->end - self->offset));

  self->offset += n;
  return n;
}

static gboolean
srv_file_range_stream_close (GInputStream  *stream,
                             GCancellable  *cancellable,
                             GError       **error)
{
  SrvFileRangeStream *self = SRV_FILE_RANGE_STREAM (stream);

  if (self->fd >= 0)
    close (self->fd);
  self->fd = -1;
  return TRUE;
}

static void
srv_file_range_stream_finalize (GObject *object)
{
  SrvFileRangeStream *self = SRV_FILE_RANGE_STREAM (object);

  if (self->fd >= 0)
    close (self->fd);
  G_OBJECT_CLASS (srv_file_range_stream_parent_class)->finalize (object);
}

static void
srv_file_range_stream_class_init (SrvFileRangeStreamClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GInputStreamClass *stream_class = G_INPUT_STREAM_CLASS (klass);

  object_class->finalize = srv_file_range_stream_finalize;
  stream_class->read_fn = srv_file_range_stream_read;
  stream_class->skip = srv_file_range_stream_skip;
  stream_class->close_fn = srv_file_range_stream_close;
}

static void
srv_file_range_stream_init (SrvFileRangeStream *self)
{
  self->fd = -1;
}

static GInputStream *
file_range_stream_new (int fd, gint64 first, gint64 end)
{
  SrvFileRangeStream *self = g_object_new (SRV_TYPE_FILE_RANGE_STREAM, NULL);

  self->fd = fd;
  self->offset = first;
  self->end = end;
  return G_INPUT_STREAM (self);
}

/* Opens the current version's file: an overwrite may retire the file between the index
 * lookup and open(), so ENOENT means "look again", a few times. */
static int
open_current (SrvStoreLocal *self, const char *bucket, const char *key, SrvObjectInfo **info,
              GError **error)
{
  for (int attempt = 0; attempt < SRV_STORE_LOCAL_OPEN_RETRIES; attempt++)
    {
      g_autofree char *file = NULL;
      g_autofree char *path = NULL;
      SrvObjectInfo *found;
      int fd;

      g_mutex_lock (&self->lock);
      found = lookup_locked (self, bucket, key, &file, error);
      g_mutex_unlock (&self->lock);
      if (found == NULL)
        return -1;
      path = object_path (self, file);
      fd = open (path, O_RDONLY | O_CLOEXEC);
      if (fd >= 0)
        {
          *info = found;
          return fd;
        }
      srv_object_info_free (found);
      if (errno != ENOENT)
        {
          set_errno_error (error, errno, "cannot open", path);
          return -1;
        }
    }
  g_set_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_INTERNAL,
               "the file of '%s' is missing from the store", key);
  return -1;
}

static GInputStream *
local_open_read (SrvStore *store, const char *bucket, const char *key, const char *range,
                 SrvObjectInfo **info, SrvByteRange *served, gboolean *partial, GError **error)
{
  SrvStoreLocal *self = LOCAL (store);
  g_autoptr(SrvObjectInfo) found = NULL;
  g_autoptr(GError) range_error = NULL;
  SrvByteRange r;
  gboolean is_partial = FALSE;
  int fd;

  if ((fd = open_current (self, bucket, key, &found, error)) < 0)
    return NULL;
  r.first = 0;
  r.last = found->size - 1;
  if (range != NULL)
    {
      if (srv_store_parse_range (range, found->size, &r, &range_error))
        is_partial = TRUE;
      else if (g_error_matches (range_error, SRV_STORE_ERROR, SRV_STORE_ERROR_INVALID_RANGE))
        {
          close (fd);
          g_propagate_error (error, g_steal_pointer (&range_error));
          return NULL;
        }
    }
  if (served)
    *served = r;
  if (partial)
    *partial = is_partial;
  if (info)
    *info = g_steal_pointer (&found);
  return file_range_stream_new (fd, r.first, r.last + 1);
}

static gboolean
local_delete (SrvStore *store, const char *bucket, const char *key, GError **error)
{
  SrvStoreLocal *self = LOCAL (store);
  g_autoptr(sqlite3_stmt) stmt = NULL;
  g_autofree char *file = NULL;
  int rc = SQLITE_ERROR;

  g_mutex_lock (&self->lock);
  if ((stmt = prep (self, "DELETE FROM objects WHERE bucket = :b AND key = :k RETURNING file",
                    error)) != NULL)
    {
      bind_text (stmt, ":b", bucket, -1);
      bind_text (stmt, ":k", key, -1);
      if ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
        {
          file = col_dup (stmt, 0);
          rc = sqlite3_step (stmt);
        }
      if (rc != SQLITE_DONE)
        db_error (self, rc, "delete", error);
    }
  g_clear_pointer (&stmt, sqlite3_finalize);
  g_mutex_unlock (&self->lock);
  if (file != NULL)
    unlink_object_file (self, file);
  return rc == SQLITE_DONE;
}

static gboolean
local_delete_many (SrvStore *store, const char *bucket, GPtrArray *results, GError **error)
{
  SrvStoreLocal *self = LOCAL (store);
  g_autoptr(sqlite3_stmt) stmt = NULL;
  g_autoptr(GPtrArray) files = g_ptr_array_new_with_free_func (g_free);
  gboolean ok = FALSE;

  g_mutex_lock (&self->lock);
  if (exec (self, "BEGIN IMMEDIATE", error) &&
      (stmt = prep (self, "DELETE FROM objects WHERE bucket = :b AND key = :k RETURNING file",
                    error)) != NULL)
    {
      ok = TRUE;
      for (guint i = 0; ok && i < results->len; i++)
        {
          SrvDeleteResult *r = g_ptr_array_index (results, i);
          int rc;

          if (r->error != NULL)
            continue;
          sqlite3_reset (stmt);
          bind_text (stmt, ":b", bucket, -1);
          bind_text (stmt, ":k", r->key, -1);
          if ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
            {
              g_ptr_array_add (files, col_dup (stmt, 0));
              rc = sqlite3_step (stmt);
            }
          if (rc != SQLITE_DONE)
            ok = db_error (self, rc, "delete", error);
        }
      g_clear_pointer (&stmt, sqlite3_finalize);
      ok = ok && commit (self, error);
    }
  rollback (self);
  g_mutex_unlock (&self->lock);
  for (guint i = 0; ok && i < files->len; i++)
    unlink_object_file (self, g_ptr_array_index (files, i));
  return ok;
}

static SrvObjectInfo *
local_copy (SrvStore *store, const char *src_bucket, const char *src_key,
            const char *dst_bucket, const char *dst_key, SrvMetadataDirective directive,
            const char *content_type, GHashTable *metadata, GCancellable *cancellable,
            GError **error)
{
  SrvStoreLocal *self = LOCAL (store);
  g_autoptr(SrvObjectInfo) src = NULL;
  g_autoptr(GInputStream) in = NULL;
  SrvObjectInfo *info;

  /* A copy reads the source version current now; overwriting it meanwhile is harmless. */
  in = local_open_read (store, src_bucket, src_key, NULL, &src, NULL, NULL, error);
  if (in == NULL)
    return NULL;
  if (directive == SRV_METADATA_COPY)
    {
      content_type = src->content_type;
      metadata = src->metadata;
    }
  info = put_internal (self, dst_bucket, dst_key, in, src->size, content_type, metadata, NULL,
                       cancellable, error);
  g_input_stream_close (in, NULL, NULL);
  return info;
}

/* ---- listing --------------------------------------------------------------------------- */

/* Continuation tokens: base64 of 'K' + the last key returned, or 'P' + the last common prefix
 * (whose keys must all be skipped). Only strings that round-trip are accepted. */
static char *
token_encode (char kind, const char *text)
{
  g_autofree char *raw = g_strdup_printf ("%c%s", kind, text);

  return g_base64_encode ((const guchar *) raw, strlen (raw));
}

static char *
token_decode (const char *token, char *kind, GError **error)
{
  gsize len = 0;
  g_autofree guchar *raw = NULL;
  g_autofree char *again = NULL;

  if (*token != '\0')
    raw = g_base64_decode (token, &len);
  if (raw != NULL && len >= 2)
    again = g_base64_encode (raw, len);
  if (again == NULL || strcmp (again, token) != 0 || (raw[0] != 'K' && raw[0] != 'P') ||
      !srv_store_check_key ((const char *) raw + 1, len - 1, NULL))
    {
      g_set_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_INVALID_ARGUMENT,
                   "the continuation token provided is incorrect");
      return NULL;
    }
  *kind = raw[0];
  return g_strndup ((const char *) raw + 1, len - 1);
}

static SrvListResult *
local_list_v2 (SrvStore *store, const char *bucket, const char *prefix, const char *delimiter,
               int max_keys, const char *start_after, const char *continuation_token,
               GError **error)
{
  SrvStoreLocal *self = LOCAL (store);
  g_autoptr(SrvListResult) res = g_new0 (SrvListResult, 1);
  g_autofree char *lo = NULL;        /* scan from here ... */
  gboolean lo_inclusive = FALSE;
  g_autofree char *hi = NULL;        /* ... to before here (NULL: the end) */
  g_autofree char *last = NULL;
  char last_kind = 'K';
  gsize plen = prefix ? strlen (prefix) : 0;
  gsize dlen = delimiter ? strlen (delimiter) : 0;
  int count = 0;
  gboolean ok = TRUE;

  res->contents = g_ptr_array_new_with_free_func ((GDestroyNotify) srv_object_info_free);
  res->common_prefixes = g_ptr_array_new_with_free_func (g_free);

  if (continuation_token != NULL)
    {
      char kind;

      if ((lo = token_decode (continuation_token, &kind, error)) == NULL)
        return NULL;
      if (kind == 'P')
        {
          char *next = successor (lo, strlen (lo));

          g_free (lo);
          lo = next;
          lo_inclusive = TRUE;
        }
    }
  else if (start_after != NULL && *start_after != '\0')
    lo = g_strdup (start_after);
  if (lo == NULL && continuation_token != NULL)
    return g_steal_pointer (&res);   /* the token skipped past every possible key */
  if (prefix != NULL && (lo == NULL || strcmp (lo, prefix) < 0))
    {
      g_free (lo);
      lo = g_strdup (prefix);
      lo_inclusive = TRUE;
    }
  if (lo == NULL)
    {
      lo = g_strdup ("");
      lo_inclusive = TRUE;
    }
  if (prefix != NULL)
    hi = successor (prefix, plen);
  if (max_keys == 0)
    return g_steal_pointer (&res);

  /* Walk the (bucket, key) index in order. A key under a common prefix emits the prefix and
   * the walk jumps past every key that shares it (seek to its successor), so a prefix costs
   * one index seek however many keys it holds. One row past max-keys tells truncation. */
  g_mutex_lock (&self->lock);
  while (ok)
    {
      g_autoptr(sqlite3_stmt) stmt = NULL;
      g_autofree char *sql = NULL;
      gboolean requery = FALSE;
      int rows = 0;
      int limit = count < max_keys ? max_keys - count : 1;
      int rc;

      sql = g_strdup_printf ("SELECT " OBJECT_COLUMNS " FROM objects WHERE bucket = :b"
                             " AND key %s :lo %s ORDER BY key LIMIT :n",
                             lo_inclusive ? ">=" : ">", hi ? "AND key < :hi" : "");
      if ((stmt = prep (self, sql, error)) == NULL)
        {
          ok = FALSE;
          break;
        }
      bind_text (stmt, ":b", bucket, -1);
      bind_text (stmt, ":lo", lo, -1);
      bind_text (stmt, ":hi", hi, -1);
      bind_int (stmt, ":n", limit);
      while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
        {
          const char *key = (const char *) sqlite3_column_text (stmt, 0);
          const char *d = delimiter ? strstr (key + plen, delimiter) : NULL;

          rows++;
          if (count == max_keys)
            {
              res->is_truncated = TRUE;
              break;
            }
          count++;
          if (d != NULL)
            {
              char *cp = g_strndup (key, d - key + dlen);

              g_ptr_array_add (res->common_prefixes, cp);
              g_free (last);
              last = g_strdup (cp);
              last_kind = 'P';
              g_free (lo);
              lo = successor (cp, strlen (cp));
              lo_inclusive = TRUE;
              requery = TRUE;
              break;
            }
          g_ptr_array_add (res->contents, object_from_row (stmt, FALSE));
          g_free (last);
          last = g_strdup (key);
          last_kind = 'K';
          g_free (lo);
          lo = g_strdup (key);
          lo_inclusive = FALSE;
        }
      if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        ok = db_error (self, rc, "list", error);
      if (res->is_truncated || (!requery && rows < limit) || lo == NULL)
        break;
    }
  g_mutex_unlock (&self->lock);
  if (!ok)
    return NULL;
  if (res->is_truncated)
    res->next_continuation_token = token_encode (last_kind, last);
  return g_steal_pointer (&res);
}

/* ---- multipart ------------------------------------------------------------------------- */

typedef struct {
  char   *content_type;
  char   *metadata;
} Upload;

static void
upload_clear (Upload *u)
{
  g_clear_pointer (&u->content_type, g_free);
  g_clear_pointer (&u->metadata, g_free);
}

/* Checks the upload exists for this bucket and key. Lock held. */
static gboolean
upload_lookup_locked (SrvStoreLocal *self, const char *bucket, const char *key,
                      const char *upload_id, Upload *u, GError **error)
{
  g_autoptr(sqlite3_stmt) stmt = NULL;
  int rc;

  if ((stmt = prep (self, "SELECT content_type, metadata FROM uploads"
                          " WHERE id = :u AND bucket = :b AND key = :k", error)) == NULL)
    return FALSE;
  bind_text (stmt, ":u", upload_id, -1);
  bind_text (stmt, ":b", bucket, -1);
  bind_text (stmt, ":k", key, -1);
  rc = sqlite3_step (stmt);
  if (rc == SQLITE_ROW)
    {
      if (u != NULL)
        {
          u->content_type = col_dup (stmt, 0);
          u->metadata = col_dup (stmt, 1);
        }
      return TRUE;
    }
  if (rc != SQLITE_DONE)
    return db_error (self, rc, "look up upload", error);
  g_set_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_NO_SUCH_UPLOAD,
               "the upload '%s' does not exist (aborted or completed?)", upload_id);
  return FALSE;
}

static char *
local_create_upload (SrvStore *store, const char *bucket, const char *key,
                     const char *content_type, GHashTable *metadata, GError **error)
{
  SrvStoreLocal *self = LOCAL (store);
  g_autoptr(sqlite3_stmt) stmt = NULL;
  g_autofree char *json = metadata_to_json (metadata);
  g_autofree char *dir = NULL;
  char id[SRV_STORE_LOCAL_ID_LEN + 1];
  gboolean ok = FALSE;
  int rc;

  new_id (id);
  dir = g_build_filename (self->multipart_dir, id, NULL);
  /* The directory first: a crash before the row leaves an empty directory fsck removes. */
  g_mutex_lock (&self->lock);
  g_hash_table_add (self->inflight, g_strdup (id));
  if (g_mkdir (dir, 0700) < 0)
    set_errno_error (error, errno, "cannot create", dir);
  else if (fsync_dir (self->multipart_dir, error) &&
           (stmt = prep (self, "INSERT INTO uploads (id, bucket, key, content_type, metadata,"
                               " initiated) VALUES (:u, :b, :k, :c, :j, :t)", error)) != NULL)
    {
      bind_text (stmt, ":u", id, -1);
      bind_text (stmt, ":b", bucket, -1);
      bind_text (stmt, ":k", key, -1);
      bind_text (stmt, ":c", content_type, -1);
      bind_text (stmt, ":j", json, -1);
      bind_int (stmt, ":t", g_get_real_time ());
      if ((rc = sqlite3_step (stmt)) == SQLITE_DONE)
        ok = TRUE;
      else
        db_error (self, rc, "create upload", error);
    }
  if (!ok)
    g_rmdir (dir);
  g_clear_pointer (&stmt, sqlite3_finalize);
  inflight_remove_locked (self, id);
  g_mutex_unlock (&self->lock);
  return ok ? g_strdup (id) : NULL;
}

static SrvPartInfo *
local_upload_part (SrvStore *store, const char *bucket, const char *key, const char *upload_id,
                   guint number, GInputStream *body, gint64 expected_size,
                   const char *content_md5, GCancellable *cancellable, GError **error)
{
  SrvStoreLocal *self = LOCAL (store);
  g_autoptr(sqlite3_stmt) sel = NULL;
  g_autoptr(sqlite3_stmt) up = NULL;
  g_autofree char *dest = NULL;
  g_autofree char *old_file = NULL;
  SrvPartInfo *part = NULL;
  gint64 now = g_get_real_time ();
  Staged st;
  gboolean exists;
  int rc;

  g_mutex_lock (&self->lock);
  exists = upload_lookup_locked (self, bucket, key, upload_id, NULL, error);
  g_mutex_unlock (&self->lock);
  if (!exists)
    return NULL;
  if (!stage_stream (self, &st, body, expected_size, self->max_object_size, content_md5,
                     cancellable, error))
    goto out;
  dest = part_path (self, upload_id, st.id);
  if (!stage_publish (&st, dest, error))
    {
      g_autofree char *updir = g_build_filename (self->multipart_dir, upload_id, NULL);

      if (!g_file_test (updir, G_FILE_TEST_IS_DIR))
        {
          g_clear_error (error);
          g_set_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_NO_SUCH_UPLOAD,
                       "the upload '%s' was aborted or completed meanwhile", upload_id);
        }
      goto out;
    }

  g_mutex_lock (&self->lock);
  if (!exec (self, "BEGIN IMMEDIATE", error))
    goto unlock;
  if (!upload_lookup_locked (self, bucket, key, upload_id, NULL, error) ||
      (sel = prep (self, "SELECT file FROM parts WHERE upload = :u AND number = :n",
                   error)) == NULL ||
      (up = prep (self, "INSERT INTO parts (upload, number, file, size, md5, last_modified)"
                        " VALUES (:u, :n, :f, :s, :m, :t) ON CONFLICT (upload, number)"
                        " DO UPDATE SET file = excluded.file, size = excluded.size,"
                        " md5 = excluded.md5, last_modified = excluded.last_modified",
                  error)) == NULL)
    goto rollback;
  bind_text (sel, ":u", upload_id, -1);
  bind_int (sel, ":n", number);
  if ((rc = sqlite3_step (sel)) == SQLITE_ROW)
    old_file = col_dup (sel, 0);
  else if (rc != SQLITE_DONE)
    {
      db_error (self, rc, "look up part", error);
      goto rollback;
    }
  bind_text (up, ":u", upload_id, -1);
  bind_int (up, ":n", number);
  bind_text (up, ":f", st.id, -1);
  bind_int (up, ":s", st.size);
  bind_text (up, ":m", st.md5_hex, -1);
  bind_int (up, ":t", now);
  if ((rc = sqlite3_step (up)) != SQLITE_DONE)
    {
      db_error (self, rc, "store part", error);
      goto rollback;
    }
  if (!commit (self, error))
    goto unlock;
  part = g_new0 (SrvPartInfo, 1);
  part->number = number;
  part->size = st.size;
  part->etag = g_strdup_printf ("\"%s\"", st.md5_hex);
  part->last_modified = now;
  goto unlock;

rollback:
  rollback (self);
unlock:
  g_clear_pointer (&sel, sqlite3_finalize);
  g_clear_pointer (&up, sqlite3_finalize);
  g_mutex_unlock (&self->lock);
  if (part == NULL)
    g_unlink (dest);
  else if (old_file != NULL)
    {
      g_autofree char *old_path = part_path (self, upload_id, old_file);

      g_unlink (old_path);
    }
out:
  staged_clear (self, &st, TRUE);
  return part;
}

static SrvPartInfo *
part_from_row (sqlite3_stmt *stmt)
{
  SrvPartInfo *p = g_new0 (SrvPartInfo, 1);

  p->number = sqlite3_column_int (stmt, 0);
  p->size = sqlite3_column_int64 (stmt, 1);
  p->etag = g_strdup_printf ("\"%s\"", sqlite3_column_text (stmt, 2));
  p->last_modified = sqlite3_column_int64 (stmt, 3);
  return p;
}

static SrvPartList *
local_list_parts (SrvStore *store, const char *bucket, const char *key, const char *upload_id,
                  guint part_number_marker, int max_parts, GError **error)
{
  SrvStoreLocal *self = LOCAL (store);
  g_autoptr(SrvPartList) list = g_new0 (SrvPartList, 1);
  g_autoptr(sqlite3_stmt) stmt = NULL;
  int rc = SQLITE_ERROR;

  list->parts = g_ptr_array_new_with_free_func ((GDestroyNotify) srv_part_info_free);
  g_mutex_lock (&self->lock);
  if (upload_lookup_locked (self, bucket, key, upload_id, NULL, error) &&
      (stmt = prep (self, "SELECT number, size, md5, last_modified FROM parts"
                          " WHERE upload = :u AND number > :m ORDER BY number LIMIT :n",
                    error)) != NULL)
    {
      bind_text (stmt, ":u", upload_id, -1);
      bind_int (stmt, ":m", part_number_marker);
      bind_int (stmt, ":n", max_parts + 1);
      while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
        {
          if ((int) list->parts->len == max_parts)
            {
              list->is_truncated = TRUE;
              continue;
            }
          g_ptr_array_add (list->parts, part_from_row (stmt));
        }
      if (rc != SQLITE_DONE)
        db_error (self, rc, "list parts", error);
    }
  g_clear_pointer (&stmt, sqlite3_finalize);
  g_mutex_unlock (&self->lock);
  if (rc != SQLITE_DONE)
    return NULL;
  if (list->is_truncated && list->parts->len > 0)
    list->next_part_number_marker =
      ((SrvPartInfo *) g_ptr_array_index (list->parts, list->parts->len - 1))->number;
  return g_steal_pointer (&list);
}

static SrvUploadList *
local_list_uploads (SrvStore *store, const char *bucket, const char *prefix,
                    const char *key_marker, const char *upload_id_marker, int max_uploads,
                    GError **error)
{
  SrvStoreLocal *self = LOCAL (store);
  g_autoptr(SrvUploadList) list = g_new0 (SrvUploadList, 1);
  g_autoptr(sqlite3_stmt) stmt = NULL;
  g_autofree char *hi = prefix && *prefix ? successor (prefix, strlen (prefix)) : NULL;
  g_autofree char *sql = NULL;
  int rc = SQLITE_ERROR;

  list->uploads = g_ptr_array_new_with_free_func ((GDestroyNotify) srv_upload_info_free);
  if (max_uploads == 0)
    return g_steal_pointer (&list);
  sql = g_strdup_printf ("SELECT id, key, initiated FROM uploads WHERE bucket = :b%s%s%s"
                         " ORDER BY key, id LIMIT :n",
                         prefix && *prefix ? " AND key >= :p" : "",
                         hi ? " AND key < :hi" : "",
                         key_marker && *key_marker
                           ? (upload_id_marker ? " AND (key > :km OR (key = :km AND id > :um))"
                                               : " AND key > :km")
                           : "");
  g_mutex_lock (&self->lock);
  if ((stmt = prep (self, sql, error)) != NULL)
    {
      bind_text (stmt, ":b", bucket, -1);
      bind_text (stmt, ":p", prefix, -1);
      bind_text (stmt, ":hi", hi, -1);
      bind_text (stmt, ":km", key_marker, -1);
      bind_text (stmt, ":um", upload_id_marker, -1);
      bind_int (stmt, ":n", max_uploads + 1);
      while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
        {
          SrvUploadInfo *u;

          if ((int) list->uploads->len == max_uploads)
            {
              list->is_truncated = TRUE;
              continue;
            }
          u = g_new0 (SrvUploadInfo, 1);
          u->upload_id = col_dup (stmt, 0);
          u->key = col_dup (stmt, 1);
          u->initiated = sqlite3_column_int64 (stmt, 2);
          g_ptr_array_add (list->uploads, u);
        }
      if (rc != SQLITE_DONE)
        db_error (self, rc, "list uploads", error);
    }
  g_clear_pointer (&stmt, sqlite3_finalize);
  g_mutex_unlock (&self->lock);
  if (rc != SQLITE_DONE)
    return NULL;
  if (list->is_truncated)
    {
      SrvUploadInfo *u = g_ptr_array_index (list->uploads, list->uploads->len - 1);

      list->next_key_marker = g_strdup (u->key);
      list->next_upload_id_marker = g_strdup (u->upload_id);
    }
  return g_steal_pointer (&list);
}

/* Removes an upload's rows in the current transaction and returns its part file ids. */
static GPtrArray *
drop_upload_locked (SrvStoreLocal *self, const char *upload_id, GError **error)
{
  g_autoptr(GPtrArray) files = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(sqlite3_stmt) sel = NULL;
  g_autoptr(sqlite3_stmt) del = NULL;
  int rc;

  if ((sel = prep (self, "SELECT file FROM parts WHERE upload = :u", error)) == NULL ||
      (del = prep (self, "DELETE FROM uploads WHERE id = :u", error)) == NULL)
    return NULL;
  bind_text (sel, ":u", upload_id, -1);
  while ((rc = sqlite3_step (sel)) == SQLITE_ROW)
    g_ptr_array_add (files, col_dup (sel, 0));
  if (rc != SQLITE_DONE)
    {
      db_error (self, rc, "list parts", error);
      return NULL;
    }
  bind_text (del, ":u", upload_id, -1);
  if ((rc = sqlite3_step (del)) != SQLITE_DONE)
    {
      db_error (self, rc, "drop upload", error);
      return NULL;
    }
  return g_steal_pointer (&files);
}

static void
remove_upload_files (SrvStoreLocal *self, const char *upload_id, GPtrArray *files)
{
  g_autofree char *dir = g_build_filename (self->multipart_dir, upload_id, NULL);

  for (guint i = 0; files && i < files->len; i++)
    {
      g_autofree char *path = part_path (self, upload_id, g_ptr_array_index (files, i));

      g_unlink (path);
    }
  g_rmdir (dir);
}

static gboolean
local_abort_upload (SrvStore *store, const char *bucket, const char *key,
                    const char *upload_id, GError **error)
{
  SrvStoreLocal *self = LOCAL (store);
  g_autoptr(GPtrArray) files = NULL;

  g_mutex_lock (&self->lock);
  if (exec (self, "BEGIN IMMEDIATE", error))
    {
      if (upload_lookup_locked (self, bucket, key, upload_id, NULL, error) &&
          (files = drop_upload_locked (self, upload_id, error)) != NULL &&
          !commit (self, error))
        g_clear_pointer (&files, g_ptr_array_unref);
      rollback (self);
    }
  g_mutex_unlock (&self->lock);
  if (files == NULL)
    return FALSE;
  remove_upload_files (self, upload_id, files);
  return TRUE;
}

typedef struct {
  char   *file;
  gint64  size;
  char   *md5;
} PartRow;

static void
part_row_free (PartRow *p)
{
  g_free (p->file);
  g_free (p->md5);
  g_free (p);
}

/* number → PartRow of every part of the upload. Lock held. */
static GHashTable *
load_parts_locked (SrvStoreLocal *self, const char *upload_id, GError **error)
{
  g_autoptr(GHashTable) parts = g_hash_table_new_full (NULL, NULL, NULL,
                                                       (GDestroyNotify) part_row_free);
  g_autoptr(sqlite3_stmt) stmt = NULL;
  int rc;

  if ((stmt = prep (self, "SELECT number, file, size, md5 FROM parts WHERE upload = :u",
                    error)) == NULL)
    return NULL;
  bind_text (stmt, ":u", upload_id, -1);
  while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
    {
      PartRow *p = g_new0 (PartRow, 1);

      p->file = col_dup (stmt, 1);
      p->size = sqlite3_column_int64 (stmt, 2);
      p->md5 = col_dup (stmt, 3);
      g_hash_table_insert (parts, GINT_TO_POINTER (sqlite3_column_int (stmt, 0)), p);
    }
  if (rc != SQLITE_DONE)
    {
      db_error (self, rc, "load parts", error);
      return NULL;
    }
  return g_steal_pointer (&parts);
}

/* Etags from clients come quoted or not, in any case. */
static gboolean
etag_matches (const char *given, const char *md5_hex)
{
  gsize len = strlen (given);

  if (len >= 2 && given[0] == '"' && given[len - 1] == '"')
    {
      given++;
      len -= 2;
    }
  return len == strlen (md5_hex) && g_ascii_strncasecmp (given, md5_hex, len) == 0;
}

static gboolean
append_part (SrvStoreLocal *self, Staged *st, const char *upload_id, const PartRow *p,
             guint number, guint8 *buf, GCancellable *cancellable, GError **error)
{
  g_autofree char *path = part_path (self, upload_id, p->file);
  int fd = open (path, O_RDONLY | O_CLOEXEC);
  gint64 done = 0;

  if (fd < 0)
    {
      if (errno == ENOENT)
        g_set_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_INVALID_PART,
                     "part %u was replaced while the upload was being completed", number);
      else
        set_errno_error (error, errno, "cannot open", path);
      return FALSE;
    }
  while (done < p->size)
    {
      ssize_t n;

      if (g_cancellable_set_error_if_cancelled (cancellable, error))
        break;
      n = read (fd, buf, MIN ((gint64) SRV_STORE_LOCAL_IO_CHUNK, p->size - done));
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        {
          if (n == 0)
            g_set_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_INTERNAL,
                         "part %u is shorter than recorded", number);
          else
            set_errno_error (error, errno, "cannot read", path);
          break;
        }
      if (!stage_write (st, buf, n, error))
        break;
      done += n;
    }
  close (fd);
  return done == p->size;
}

static SrvObjectInfo *
local_complete_upload (SrvStore *store, const char *bucket, const char *key,
                       const char *upload_id, const SrvCompletedPart *parts, guint n_parts,
                       GCancellable *cancellable, GError **error)
{
  SrvStoreLocal *self = LOCAL (store);
  g_autoptr(GHashTable) rows = NULL;
  g_autoptr(GHashTable) now_rows = NULL;
  g_autoptr(GPtrArray) part_files = NULL;
  g_autofree guint8 *md5s = g_malloc (16 * n_parts);
  g_autofree guint8 *buf = NULL;
  g_autofree char *etag = NULL;
  g_autofree char *dest = NULL;
  g_autofree char *old_file = NULL;
  Upload u = { 0, };
  g_autofree char *json = NULL;
  SrvObjectInfo *info = NULL;
  Staged st;

  staged_init (&st);
  g_mutex_lock (&self->lock);
  if (upload_lookup_locked (self, bucket, key, upload_id, &u, error))
    rows = load_parts_locked (self, upload_id, error);
  g_mutex_unlock (&self->lock);
  if (rows == NULL)
    goto out;

  for (guint i = 0; i < n_parts; i++)
    {
      PartRow *p = g_hash_table_lookup (rows, GUINT_TO_POINTER (parts[i].number));
      gsize len = 16;

      if (p == NULL || !etag_matches (parts[i].etag, p->md5))
        {
          g_set_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_INVALID_PART,
                       "part %u was not uploaded or its etag is not %s", parts[i].number,
                       parts[i].etag);
          goto out;
        }
      if (i + 1 < n_parts && p->size < self->min_part_size)
        {
          g_set_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_ENTITY_TOO_SMALL,
                       "part %u has %" G_GINT64_FORMAT " bytes; all but the last need at "
                       "least %" G_GINT64_FORMAT, parts[i].number, p->size,
                       self->min_part_size);
          goto out;
        }
      for (gsize j = 0; j < len; j++)
        {
          int hi = g_ascii_xdigit_value (p->md5[2 * j]);
          int lo = g_ascii_xdigit_value (p->md5[2 * j + 1]);

          md5s[16 * i + j] = (guint8) (hi << 4 | lo);
        }
    }

  if (!stage_begin (self, &st, error))
    goto out;
  buf = g_malloc (SRV_STORE_LOCAL_IO_CHUNK);
  for (guint i = 0; i < n_parts; i++)
    if (!append_part (self, &st, upload_id,
                      g_hash_table_lookup (rows, GUINT_TO_POINTER (parts[i].number)),
                      parts[i].number, buf, cancellable, error))
      goto out;
  if (!stage_finish (&st, error))
    goto out;
  dest = object_path (self, st.id);
  if (!stage_publish (&st, dest, error))
    goto out;
  etag = srv_store_multipart_etag (md5s, n_parts);
  json = u.metadata ? g_strdup (u.metadata) : metadata_to_json (NULL);

  g_mutex_lock (&self->lock);
  /* The upload may have been aborted, or parts re-uploaded, while we were copying. */
  if (exec (self, "BEGIN IMMEDIATE", error) &&
      upload_lookup_locked (self, bucket, key, upload_id, NULL, error) &&
      (now_rows = load_parts_locked (self, upload_id, error)) != NULL)
    {
      gboolean same = TRUE;

      for (guint i = 0; same && i < n_parts; i++)
        {
          PartRow *a = g_hash_table_lookup (rows, GUINT_TO_POINTER (parts[i].number));
          PartRow *b = g_hash_table_lookup (now_rows, GUINT_TO_POINTER (parts[i].number));

          same = b != NULL && strcmp (a->file, b->file) == 0;
        }
      if (!same)
        g_set_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_INVALID_PART,
                     "parts were re-uploaded while the upload was being completed");
      else if ((part_files = drop_upload_locked (self, upload_id, error)) != NULL)
        {
          info = upsert_object_locked (self, bucket, key, &st, etag, u.content_type, json,
                                       &old_file, error);
          if (info != NULL && !commit (self, error))
            g_clear_pointer (&info, srv_object_info_free);
        }
    }
  rollback (self);
  g_mutex_unlock (&self->lock);

  if (info == NULL)
    {
      g_clear_pointer (&old_file, g_free);
      g_unlink (dest);
      goto out;
    }
  remove_upload_files (self, upload_id, part_files);
  if (old_file != NULL)
    unlink_object_file (self, old_file);

out:
  staged_clear (self, &st, TRUE);
  upload_clear (&u);
  return info;
}

/* ---- usage and fsck -------------------------------------------------------------------- */

static void
local_usage (SrvStore *store, SrvStoreUsage *usage)
{
  SrvStoreLocal *self = LOCAL (store);
  g_autoptr(sqlite3_stmt) b = NULL;
  g_autoptr(sqlite3_stmt) u = NULL;

  g_mutex_lock (&self->lock);
  if ((b = prep (self, "SELECT name, objects, bytes FROM buckets", NULL)) != NULL)
    while (sqlite3_step (b) == SQLITE_ROW)
      if (g_hash_table_contains (self->buckets, sqlite3_column_text (b, 0)))
        {
          usage->objects += sqlite3_column_int64 (b, 1);
          usage->bytes += sqlite3_column_int64 (b, 2);
        }
  if ((u = prep (self, "SELECT count(*) FROM uploads", NULL)) != NULL &&
      sqlite3_step (u) == SQLITE_ROW)
    usage->uploads = sqlite3_column_int64 (u, 0);
  g_clear_pointer (&b, sqlite3_finalize);
  g_clear_pointer (&u, sqlite3_finalize);
  g_mutex_unlock (&self->lock);
}

/* Whether @id is referenced by a row in @table or is being written. Lock held. */
static gboolean
referenced_locked (SrvStoreLocal *self, const char *table, const char *column, const char *id)
{
  g_autofree char *sql = g_strdup_printf ("SELECT 1 FROM %s WHERE %s = :id", table, column);
  g_autoptr(sqlite3_stmt) stmt = NULL;

  if (g_hash_table_contains (self->inflight, id))
    return TRUE;
  /* On an index error keep the file: fsck must never delete what it cannot prove unused. */
  if ((stmt = prep (self, sql, NULL)) == NULL)
    return TRUE;
  bind_text (stmt, ":id", id, -1);
  return sqlite3_step (stmt) != SQLITE_DONE;
}

/* Removes @path if, checked under the lock, nothing refers to @id. */
static gboolean
remove_if_orphan (SrvStoreLocal *self, const char *path, const char *table, const char *column,
                  const char *id, gboolean is_dir)
{
  gboolean removed = FALSE;

  g_mutex_lock (&self->lock);
  if (!referenced_locked (self, table, column, id))
    {
      if (is_dir)
        {
          g_autoptr(GDir) dir = g_dir_open (path, 0, NULL);
          const char *name;

          while (dir && (name = g_dir_read_name (dir)) != NULL)
            {
              g_autofree char *child = g_build_filename (path, name, NULL);

              g_unlink (child);
            }
          removed = g_rmdir (path) == 0;
        }
      else
        removed = g_unlink (path) == 0;
    }
  g_mutex_unlock (&self->lock);
  return removed;
}

static gboolean
file_missing_locked (SrvStoreLocal *self, const char *table, const char *id,
                     const char *path)
{
  return referenced_locked (self, table, "file", id) &&
         !g_hash_table_contains (self->inflight, id) &&
         !g_file_test (path, G_FILE_TEST_EXISTS);
}

static gboolean
local_fsck (SrvStore *store, SrvStoreFsckReport *report, GError **error)
{
  SrvStoreLocal *self = LOCAL (store);
  g_autoptr(GDir) tmp = NULL;
  g_autoptr(GDir) mp = NULL;
  const char *name;

  memset (report, 0, sizeof *report);

  if ((tmp = g_dir_open (self->tmp_dir, 0, error)) == NULL)
    return FALSE;
  while ((name = g_dir_read_name (tmp)) != NULL)
    {
      g_autofree char *path = g_build_filename (self->tmp_dir, name, NULL);
      gboolean spare;

      g_mutex_lock (&self->lock);
      spare = g_hash_table_contains (self->inflight, name);
      if (!spare && g_unlink (path) == 0)
        report->tmp_removed++;
      g_mutex_unlock (&self->lock);
    }

  for (int i = 0; i < 256; i++)
    {
      g_autofree char *sub = g_strdup_printf ("%s/%02x", self->objects_dir, i);
      g_autoptr(GDir) dir = g_dir_open (sub, 0, NULL);

      while (dir && (name = g_dir_read_name (dir)) != NULL)
        {
          g_autofree char *path = g_build_filename (sub, name, NULL);

          if (is_id (name) && remove_if_orphan (self, path, "objects", "file", name, FALSE))
            report->orphans_removed++;
        }
    }

  if ((mp = g_dir_open (self->multipart_dir, 0, error)) == NULL)
    return FALSE;
  while ((name = g_dir_read_name (mp)) != NULL)
    {
      g_autofree char *updir = g_build_filename (self->multipart_dir, name, NULL);
      g_autoptr(GDir) dir = NULL;
      const char *part;

      if (!is_id (name))
        continue;
      if (remove_if_orphan (self, updir, "uploads", "id", name, TRUE))
        {
          report->orphans_removed++;
          continue;
        }
      dir = g_dir_open (updir, 0, NULL);
      while (dir && (part = g_dir_read_name (dir)) != NULL)
        {
          g_autofree char *path = g_build_filename (updir, part, NULL);

          if (is_id (part) && remove_if_orphan (self, path, "parts", "file", part, FALSE))
            report->orphans_removed++;
        }
    }

  /* Rows whose file is gone: data loss to report, never to hide by dropping the row. */
  {
    g_autoptr(GPtrArray) ids = g_ptr_array_new_with_free_func (g_free);
    g_autoptr(GPtrArray) part_ids = g_ptr_array_new_with_free_func (g_free);
    g_autoptr(sqlite3_stmt) stmt = NULL;

    g_mutex_lock (&self->lock);
    if ((stmt = prep (self, "SELECT file FROM objects", error)) != NULL)
      while (sqlite3_step (stmt) == SQLITE_ROW)
        g_ptr_array_add (ids, col_dup (stmt, 0));
    g_clear_pointer (&stmt, sqlite3_finalize);
    if ((stmt = prep (self, "SELECT upload || '/' || file FROM parts", error)) != NULL)
      while (sqlite3_step (stmt) == SQLITE_ROW)
        g_ptr_array_add (part_ids, col_dup (stmt, 0));
    g_clear_pointer (&stmt, sqlite3_finalize);
    g_mutex_unlock (&self->lock);

    for (guint i = 0; i < ids->len; i++)
      {
        const char *id = g_ptr_array_index (ids, i);
        g_autofree char *path = object_path (self, id);

        if (g_file_test (path, G_FILE_TEST_EXISTS))
          continue;
        g_mutex_lock (&self->lock);
        if (file_missing_locked (self, "objects", id, path))
          report->missing++;
        g_mutex_unlock (&self->lock);
      }
    for (guint i = 0; i < part_ids->len; i++)
      {
        const char *rel = g_ptr_array_index (part_ids, i);
        g_autofree char *path = g_build_filename (self->multipart_dir, rel, NULL);

        if (g_file_test (path, G_FILE_TEST_EXISTS))
          continue;
        g_mutex_lock (&self->lock);
        if (file_missing_locked (self, "parts", strchr (rel, '/') + 1, path))
          report->missing++;
        g_mutex_unlock (&self->lock);
      }
  }

  /* g_log_structured() takes string values only; counts go into MESSAGE. */
  if (report->tmp_removed > 0 || report->orphans_removed > 0)
    g_log_structured (G_LOG_DOMAIN, G_LOG_LEVEL_INFO, "DATA_DIR", self->root,
                      "MESSAGE", "store: removed %u temp files and %u unreferenced files "
                      "left by interrupted writes", report->tmp_removed,
                      report->orphans_removed);
  if (report->missing > 0)
    g_log_structured (G_LOG_DOMAIN, G_LOG_LEVEL_WARNING, "DATA_DIR", self->root,
                      "MESSAGE", "store: %u index rows point at missing files (data loss)",
                      report->missing);
  return TRUE;
}

const SrvStoreVTable srv_store_local_vtable = {
  .name = "local",
  .open = local_open,
  .close = local_close,
  .list_buckets = local_list_buckets,
  .head_bucket = local_head_bucket,
  .put = local_put,
  .head = local_head,
  .open_read = local_open_read,
  .delete = local_delete,
  .delete_many = local_delete_many,
  .list_v2 = local_list_v2,
  .copy = local_copy,
  .create_upload = local_create_upload,
  .upload_part = local_upload_part,
  .list_parts = local_list_parts,
  .list_uploads = local_list_uploads,
  .abort_upload = local_abort_upload,
  .complete_upload = local_complete_upload,
  .usage = local_usage,
  .fsck = local_fsck,
};
