/* srv-db-sqlite.c - the SQLite backend of srv-db.h: a connection pool, WAL, one writer at a time
 *
 * Each call borrows a connection from a small pool (one per concurrently calling thread) and
 * runs one transaction on it. Writers start with BEGIN IMMEDIATE, so the write lock is taken up
 * front and a transaction never fails half-way on SQLITE_BUSY; that single writer is also what
 * makes MAX(id) + 1 event ids increase in commit order and a lease exclusive.
 *
 * Durability: WAL with synchronous=NORMAL already survives kill -9 of magpied (a commit is in
 * the kernel's page cache when COMMIT returns), but not a power cut. Writes that are
 * acknowledged to someone who will not repeat them - a registered photo, a completed or failed
 * job, a new identity, a deletion - commit with synchronous=FULL; leases and requeues keep
 * NORMAL, as losing one merely runs a job again, which at-least-once allows anyway.
 */
#define G_LOG_DOMAIN "magpied-db"

#include "config.h"

#include "srv-db.h"

#include <sqlite3.h>
#include <string.h>

/* How long a connection waits for the write lock before the retry loop sees SQLITE_BUSY: far
 * longer than any of our transactions, which are a few row updates. */
#define SQLITE_BUSY_TIMEOUT_MS 5000
/* Whole-transaction retries after BUSY (e.g. a checkpoint or another process holding the lock
 * past the timeout) before giving up with SRV_DB_ERROR_BUSY. */
#define SQLITE_TXN_RETRIES 3

typedef struct {
  char   *identity_id;
  gint64  id;
} PendingEvent;

typedef struct {
  sqlite3    *handle;
  GHashTable *stmts;     /* SQL text -> prepared sqlite3_stmt */
  gboolean    durable;   /* synchronous=FULL is in force */
  GArray     *pending;   /* PendingEvent of the open transaction */
} Conn;

typedef struct {
  char      *path;
  GMutex     lock;
  GPtrArray *idle;       /* Conn */
} Sqlite;

typedef enum {
  TXN_READ,
  TXN_WRITE,
  TXN_WRITE_DURABLE,
} TxnKind;

typedef gboolean (*TxnFunc) (Conn *c, SrvDb *db, gpointer data, GError **error);

/* A cached statement borrowed for one use; the cleanup resets it for the next. */
typedef sqlite3_stmt Stmt;

static void
stmt_release (Stmt *s)
{
  sqlite3_reset (s);
  sqlite3_clear_bindings (s);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Stmt, stmt_release)

#define PHOTO_COLS "p.id, p.identity_id, p.key, p.size, p.content_type, p.width, p.height, " \
                   "p.sha256, p.state, p.model, p.error, p.created_at, p.tagged_at"
#define JOB_COLS "j.id, j.photo_id, p.identity_id, p.key, j.state, j.attempts, j.max_attempts, " \
                 "j.not_before, j.lease_owner, j.lease_expires_at, j.last_error, j.created_at, " \
                 "j.updated_at"
#define IDENTITY_COLS "id, kind, username, password_hash, secret_hash, created_at, disabled"

/* Errors */

static gboolean
set_error (Conn *c, int rc, GError **error)
{
  SrvDbError code = SRV_DB_ERROR_INTERNAL;

  switch (rc & 0xff)
    {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      code = SRV_DB_ERROR_BUSY;
      break;
    case SQLITE_CONSTRAINT:
      if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY)
        code = SRV_DB_ERROR_CONFLICT;
      else if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
        code = SRV_DB_ERROR_NOT_FOUND;
      else
        code = SRV_DB_ERROR_INVALID;
      break;
    default:
      break;
    }
  g_set_error (error, SRV_DB_ERROR, code, "sqlite: %s (%s)",
               c && c->handle ? sqlite3_errmsg (c->handle) : "", sqlite3_errstr (rc));
  return FALSE;
}

static gboolean
not_found (GError **error, const char *what)
{
  g_set_error (error, SRV_DB_ERROR, SRV_DB_ERROR_NOT_FOUND, "no such %s", what);
  return FALSE;
}

/* Connections */

static void
conn_free (Conn *c)
{
  if (c == NULL)
    return;
  g_clear_pointer (&c->stmts, g_hash_table_unref);
  g_clear_pointer (&c->pending, g_array_unref);
  sqlite3_close (c->handle);
  g_free (c);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Conn, conn_free)

static gboolean
conn_exec (Conn *c, const char *sql, GError **error)
{
  int rc = sqlite3_exec (c->handle, sql, NULL, NULL, NULL);

  return rc == SQLITE_OK ? TRUE : set_error (c, rc, error);
}

static void
pending_clear (PendingEvent *p)
{
  g_free (p->identity_id);
}

static void
stmt_finalize (gpointer s)
{
  sqlite3_finalize (s);
}

static Conn *
conn_open (const char *path, GError **error)
{
  g_autoptr(Conn) c = g_new0 (Conn, 1);
  int rc;

  c->stmts = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, stmt_finalize);
  c->pending = g_array_new (FALSE, FALSE, sizeof (PendingEvent));
  g_array_set_clear_func (c->pending, (GDestroyNotify) pending_clear);
  /* NOMUTEX: the pool hands a connection to one thread at a time. */
  rc = sqlite3_open_v2 (path, &c->handle,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
  if (rc != SQLITE_OK)
    return set_error (c, rc, error), NULL;
  sqlite3_extended_result_codes (c->handle, 1);
  sqlite3_busy_timeout (c->handle, SQLITE_BUSY_TIMEOUT_MS);
  if (!conn_exec (c, "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; "
                     "PRAGMA foreign_keys = ON", error))
    return NULL;
  return g_steal_pointer (&c);
}

static Stmt *
prep (Conn *c, const char *sql, GError **error)
{
  sqlite3_stmt *s = g_hash_table_lookup (c->stmts, sql);
  int rc;

  if (s != NULL)
    return s;
  rc = sqlite3_prepare_v3 (c->handle, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, NULL);
  if (rc != SQLITE_OK)
    return set_error (c, rc, error), NULL;
  g_hash_table_insert (c->stmts, g_strdup (sql), s);
  return s;
}

/* SQLITE_ROW or SQLITE_DONE, or -1 with @error set. */
static int
step (Conn *c, Stmt *s, GError **error)
{
  int rc = sqlite3_step (s);

  if (rc == SQLITE_ROW || rc == SQLITE_DONE)
    return rc;
  set_error (c, rc, error);
  return -1;
}

static gboolean
step_done (Conn *c, Stmt *s, GError **error)
{
  return step (c, s, error) == SQLITE_DONE;
}

static void
bind_text (Stmt *s, int i, const char *text)
{
  if (text)
    sqlite3_bind_text (s, i, text, -1, SQLITE_TRANSIENT);
  else
    sqlite3_bind_null (s, i);
}

static char *
col_text (Stmt *s, int i)
{
  return g_strdup ((const char *) sqlite3_column_text (s, i));
}

static Conn *
pool_take (Sqlite *self, GError **error)
{
  Conn *c = NULL;

  g_mutex_lock (&self->lock);
  if (self->idle->len > 0)
    c = g_ptr_array_steal_index_fast (self->idle, self->idle->len - 1);
  g_mutex_unlock (&self->lock);
  return c ? c : conn_open (self->path, error);
}

static void
pool_give (Sqlite *self, Conn *c)
{
  g_mutex_lock (&self->lock);
  g_ptr_array_add (self->idle, c);
  g_mutex_unlock (&self->lock);
}

/* Runs @func in one transaction, retried as a whole on BUSY; @func must be safe to rerun. */
static gboolean
run_txn (SrvDb *db, TxnKind kind, TxnFunc func, gpointer data, GError **error)
{
  Sqlite *self = srv_db_backend (db);
  gboolean want_durable = kind == TXN_WRITE_DURABLE;
  gboolean ok = FALSE;
  Conn *c = pool_take (self, error);

  if (c == NULL)
    return FALSE;
  for (int attempt = 0;; attempt++)
    {
      g_autoptr(GError) local = NULL;

      g_array_set_size (c->pending, 0);
      if (kind != TXN_READ && c->durable != want_durable)
        {
          if (!conn_exec (c, want_durable ? "PRAGMA synchronous = FULL"
                                          : "PRAGMA synchronous = NORMAL", &local))
            goto failed;
          c->durable = want_durable;
        }
      if (!conn_exec (c, kind == TXN_READ ? "BEGIN" : "BEGIN IMMEDIATE", &local))
        goto failed;
      ok = func (c, db, data, &local) && conn_exec (c, "COMMIT", &local);
      if (ok)
        break;
      sqlite3_exec (c->handle, "ROLLBACK", NULL, NULL, NULL);

    failed:
      if (!g_error_matches (local, SRV_DB_ERROR, SRV_DB_ERROR_BUSY) ||
          attempt >= SQLITE_TXN_RETRIES)
        {
          g_propagate_error (error, g_steal_pointer (&local));
          break;
        }
      g_usleep (g_random_int_range (1000, 20000));
    }
  if (ok)
    for (guint i = 0; i < c->pending->len; i++)
      {
        PendingEvent *p = &g_array_index (c->pending, PendingEvent, i);

        srv_db_events_committed (db, p->identity_id, p->id);
      }
  g_array_set_size (c->pending, 0);
  pool_give (self, c);
  return ok;
}

/* Rows */

static SrvIdentity *
identity_from_row (Stmt *s)
{
  SrvIdentity *identity = g_new0 (SrvIdentity, 1);

  identity->id = col_text (s, 0);
  identity->kind = g_strcmp0 ((const char *) sqlite3_column_text (s, 1), "account") == 0
                     ? SRV_IDENTITY_ACCOUNT : SRV_IDENTITY_GUEST;
  identity->username = col_text (s, 2);
  identity->password_hash = col_text (s, 3);
  identity->secret_hash = col_text (s, 4);
  identity->created_at = sqlite3_column_int64 (s, 5);
  identity->disabled = sqlite3_column_int (s, 6) != 0;
  return identity;
}

static SrvPhoto *
photo_from_row (Stmt *s)
{
  SrvPhoto *photo = g_new0 (SrvPhoto, 1);

  photo->id = col_text (s, 0);
  photo->identity_id = col_text (s, 1);
  photo->key = col_text (s, 2);
  photo->size = sqlite3_column_int64 (s, 3);
  photo->content_type = col_text (s, 4);
  photo->width = sqlite3_column_int (s, 5);
  photo->height = sqlite3_column_int (s, 6);
  photo->sha256 = col_text (s, 7);
  photo->state = srv_photo_state_from_string ((const char *) sqlite3_column_text (s, 8));
  photo->model = col_text (s, 9);
  photo->error = col_text (s, 10);
  photo->created_at = sqlite3_column_int64 (s, 11);
  photo->tagged_at = sqlite3_column_int64 (s, 12);
  photo->tags = srv_tag_array_new ();
  return photo;
}

static SrvJob *
job_from_row (Stmt *s)
{
  SrvJob *job = g_new0 (SrvJob, 1);

  job->id = col_text (s, 0);
  job->photo_id = col_text (s, 1);
  job->identity_id = col_text (s, 2);
  job->photo_key = col_text (s, 3);
  job->state = srv_job_state_from_string ((const char *) sqlite3_column_text (s, 4));
  job->attempts = sqlite3_column_int (s, 5);
  job->max_attempts = sqlite3_column_int (s, 6);
  job->not_before = sqlite3_column_int64 (s, 7);
  job->lease_owner = col_text (s, 8);
  job->lease_expires_at = sqlite3_column_int64 (s, 9);
  job->last_error = col_text (s, 10);
  job->created_at = sqlite3_column_int64 (s, 11);
  job->updated_at = sqlite3_column_int64 (s, 12);
  return job;
}

static gboolean
load_tags (Conn *c, SrvPhoto *photo, GError **error)
{
  g_autoptr(Stmt) s = prep (c, "SELECT label, confidence FROM tags WHERE photo_id = ?1 "
                               "ORDER BY rank", error);
  int rc;

  if (s == NULL)
    return FALSE;
  bind_text (s, 1, photo->id);
  g_array_set_size (photo->tags, 0);
  while ((rc = step (c, s, error)) == SQLITE_ROW)
    {
      SrvTag tag = { col_text (s, 0), sqlite3_column_double (s, 1) };

      g_array_append_val (photo->tags, tag);
    }
  return rc == SQLITE_DONE;
}

/* The photo @photo_id with its tags, or NULL: with @error set on failure, without when absent
 * (or owned by someone other than @identity_id, when that is given). */
static SrvPhoto *
load_photo (Conn *c, const char *identity_id, const char *photo_id, GError **error)
{
  g_autoptr(Stmt) s = prep (c, "SELECT " PHOTO_COLS " FROM photos p WHERE p.id = ?1", error);
  g_autoptr(SrvPhoto) photo = NULL;
  int rc;

  if (s == NULL)
    return NULL;
  bind_text (s, 1, photo_id);
  rc = step (c, s, error);
  if (rc != SQLITE_ROW)
    return NULL;
  photo = photo_from_row (s);
  if (identity_id != NULL && strcmp (photo->identity_id, identity_id) != 0)
    return NULL;
  if (!load_tags (c, photo, error))
    return NULL;
  return g_steal_pointer (&photo);
}

static SrvJob *
load_job (Conn *c, const char *job_id, GError **error)
{
  g_autoptr(Stmt) s = prep (c, "SELECT " JOB_COLS " FROM jobs j JOIN photos p "
                               "ON p.id = j.photo_id WHERE j.id = ?1", error);

  if (s == NULL)
    return NULL;
  bind_text (s, 1, job_id);
  return step (c, s, error) == SQLITE_ROW ? job_from_row (s) : NULL;
}

/* Appends an event carrying @photo's JSON; watchers hear of it once the transaction commits. */
static gboolean
add_event (Conn *c, SrvDb *db, SrvEventType type, const SrvPhoto *photo, GError **error)
{
  g_autoptr(Stmt) s = prep (c, "INSERT INTO events (id, identity_id, type, data, created_at) "
                               "SELECT COALESCE(MAX(id), 0) + 1, ?1, ?2, ?3, ?4 FROM events "
                               "RETURNING id", error);
  g_autofree char *data = srv_photo_to_json (photo);
  PendingEvent p;

  if (s == NULL)
    return FALSE;
  bind_text (s, 1, photo->identity_id);
  bind_text (s, 2, srv_event_type_to_string (type));
  bind_text (s, 3, data);
  sqlite3_bind_int64 (s, 4, srv_db_now (db));
  if (step (c, s, error) != SQLITE_ROW)
    return FALSE;
  p.identity_id = g_strdup (photo->identity_id);
  p.id = sqlite3_column_int64 (s, 0);
  g_array_append_val (c->pending, p);
  return step_done (c, s, error);
}

static gboolean
bump_counter (Conn *c, const char *name, GError **error)
{
  g_autoptr(Stmt) s = prep (c, "UPDATE job_counters SET value = value + 1 WHERE name = ?1", error);

  if (s == NULL)
    return FALSE;
  bind_text (s, 1, name);
  return step_done (c, s, error);
}

/* Migrations */

static gboolean
migrate (Conn *c, SrvDb *db, GError **error)
{
  g_autoptr(GPtrArray) migrations = srv_db_migrations ("sqlite", error);
  g_autoptr(Stmt) newest = NULL;
  int known;

  if (migrations == NULL)
    return FALSE;
  if (!conn_exec (c, "PRAGMA synchronous = FULL; "
                     "CREATE TABLE IF NOT EXISTS schema_migrations ("
                     "  version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
                     "  applied_at BIGINT NOT NULL)",
                     error))
    return FALSE;
  c->durable = TRUE;

  known = migrations->len ? ((SrvDbMigration *) g_ptr_array_index (migrations,
                                                                  migrations->len - 1))->version
                          : 0;
  newest = prep (c, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations", error);
  if (newest == NULL || step (c, newest, error) != SQLITE_ROW)
    return FALSE;
  if (sqlite3_column_int (newest, 0) > known)
    {
      g_set_error (error, SRV_DB_ERROR, SRV_DB_ERROR_INVALID,
                   "the database has schema version %d, newer than this magpied knows (%d); "
                   "run a newer magpied", sqlite3_column_int (newest, 0), known);
      return FALSE;
    }
  stmt_release (g_steal_pointer (&newest));

  for (guint i = 0; i < migrations->len; i++)
    {
      SrvDbMigration *m = g_ptr_array_index (migrations, i);
      g_autoptr(Stmt) applied = NULL;
      g_autoptr(Stmt) record = NULL;
      int rc;

      /* Another process may be migrating the same file: check again under the write lock. */
      if (!conn_exec (c, "BEGIN IMMEDIATE", error))
        return FALSE;
      applied = prep (c, "SELECT 1 FROM schema_migrations WHERE version = ?1", error);
      if (applied == NULL)
        goto rollback;
      sqlite3_bind_int (applied, 1, m->version);
      rc = step (c, applied, error);
      if (rc < 0)
        goto rollback;
      if (rc == SQLITE_DONE)
        {
          g_debug ("applying migration %s", m->name);
          record = prep (c, "INSERT INTO schema_migrations (version, name, applied_at) "
                            "VALUES (?1, ?2, ?3)", error);
          if (record == NULL || !conn_exec (c, m->sql, error))
            goto rollback;
          sqlite3_bind_int (record, 1, m->version);
          bind_text (record, 2, m->name);
          sqlite3_bind_int64 (record, 3, srv_db_now (db));
          if (!step_done (c, record, error))
            goto rollback;
        }
      stmt_release (g_steal_pointer (&applied));
      g_clear_pointer (&record, stmt_release);
      if (!conn_exec (c, "COMMIT", error))
        goto rollback;
      continue;

    rollback:
      g_clear_pointer (&applied, stmt_release);
      g_clear_pointer (&record, stmt_release);
      sqlite3_exec (c->handle, "ROLLBACK", NULL, NULL, NULL);
      g_prefix_error (error, "migration %s: ", m->name);
      return FALSE;
    }
  return TRUE;
}

static gpointer
sqlite_open (SrvDb *db, const char *location, GError **error)
{
  Sqlite *self;
  Conn *c = conn_open (location, error);

  if (c == NULL)
    return NULL;
  if (!migrate (c, db, error))
    {
      conn_free (c);
      return NULL;
    }
  self = g_new0 (Sqlite, 1);
  self->path = g_strdup (location);
  g_mutex_init (&self->lock);
  self->idle = g_ptr_array_new_with_free_func ((GDestroyNotify) conn_free);
  g_ptr_array_add (self->idle, c);
  return self;
}

static void
sqlite_close (gpointer backend)
{
  Sqlite *self = backend;

  g_ptr_array_unref (self->idle);
  g_mutex_clear (&self->lock);
  g_free (self->path);
  g_free (self);
}

static gboolean
schema_versions_txn (Conn *c, SrvDb *db, gpointer data, GError **error)
{
  GArray *versions = data;
  g_autoptr(Stmt) s = prep (c, "SELECT version FROM schema_migrations ORDER BY version", error);
  int rc;

  if (s == NULL)
    return FALSE;
  g_array_set_size (versions, 0);
  while ((rc = step (c, s, error)) == SQLITE_ROW)
    {
      int v = sqlite3_column_int (s, 0);

      g_array_append_val (versions, v);
    }
  return rc == SQLITE_DONE;
}

static GArray *
sqlite_schema_versions (SrvDb *db, GError **error)
{
  g_autoptr(GArray) versions = g_array_new (FALSE, FALSE, sizeof (int));

  if (!run_txn (db, TXN_READ, schema_versions_txn, versions, error))
    return NULL;
  return g_steal_pointer (&versions);
}

static gboolean
integrity_txn (Conn *c, SrvDb *db, gpointer data, GError **error)
{
  g_autoptr(Stmt) check = prep (c, "PRAGMA integrity_check", error);
  g_autoptr(Stmt) fk = NULL;
  g_autoptr(GString) problems = g_string_new (NULL);
  int rc;

  if (check == NULL)
    return FALSE;
  while ((rc = step (c, check, error)) == SQLITE_ROW)
    if (g_strcmp0 ((const char *) sqlite3_column_text (check, 0), "ok") != 0)
      g_string_append_printf (problems, "%s; ", sqlite3_column_text (check, 0));
  if (rc < 0)
    return FALSE;
  fk = prep (c, "PRAGMA foreign_key_check", error);
  if (fk == NULL)
    return FALSE;
  while ((rc = step (c, fk, error)) == SQLITE_ROW)
    g_string_append_printf (problems, "dangling reference in %s; ", sqlite3_column_text (fk, 0));
  if (rc < 0)
    return FALSE;
  if (problems->len > 0)
    {
      g_set_error (error, SRV_DB_ERROR, SRV_DB_ERROR_INTERNAL, "integrity check: %s",
                   problems->str);
      return FALSE;
    }
  return TRUE;
}

static gboolean
sqlite_check_integrity (SrvDb *db, GError **error)
{
  return run_txn (db, TXN_READ, integrity_txn, NULL, error);
}

/* Identities */

typedef struct {
  const SrvIdentity *in;
  const char        *id;
  const char        *username;
  SrvIdentity       *out;
} IdentityOp;

static gboolean
create_identity_txn (Conn *c, SrvDb *db, gpointer data, GError **error)
{
  IdentityOp *op = data;
  g_autoptr(Stmt) s = prep (c, "INSERT INTO identities (" IDENTITY_COLS ") "
                               "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)", error);

  if (s == NULL)
    return FALSE;
  bind_text (s, 1, op->in->id);
  bind_text (s, 2, op->in->kind == SRV_IDENTITY_ACCOUNT ? "account" : "guest");
  bind_text (s, 3, op->in->username);
  bind_text (s, 4, op->in->password_hash);
  bind_text (s, 5, op->in->secret_hash);
  sqlite3_bind_int64 (s, 6, op->in->created_at);
  sqlite3_bind_int (s, 7, op->in->disabled ? 1 : 0);
  if (!step_done (c, s, error))
    {
      if (g_error_matches (*error, SRV_DB_ERROR, SRV_DB_ERROR_CONFLICT))
        {
          g_clear_error (error);
          g_set_error (error, SRV_DB_ERROR, SRV_DB_ERROR_CONFLICT, "username %s is taken",
                       op->in->username);
        }
      return FALSE;
    }
  return TRUE;
}

static gboolean
get_identity_txn (Conn *c, SrvDb *db, gpointer data, GError **error)
{
  IdentityOp *op = data;
  g_autoptr(Stmt) s = NULL;
  int rc;

  if (op->id)
    s = prep (c, "SELECT " IDENTITY_COLS " FROM identities WHERE id = ?1", error);
  else
    s = prep (c, "SELECT " IDENTITY_COLS " FROM identities WHERE lower(username) = lower(?1)",
              error);
  if (s == NULL)
    return FALSE;
  bind_text (s, 1, op->id ? op->id : op->username);
  g_clear_pointer (&op->out, srv_identity_free);
  rc = step (c, s, error);
  if (rc == SQLITE_ROW)
    op->out = identity_from_row (s);
  return rc >= 0 && (op->out != NULL || not_found (error, "identity"));
}

static SrvIdentity *
sqlite_create_identity (SrvDb *db, const SrvIdentity *identity, GError **error)
{
  IdentityOp op = { .in = identity };

  if (!run_txn (db, TXN_WRITE_DURABLE, create_identity_txn, &op, error))
    return NULL;
  return srv_identity_copy (identity);
}

static SrvIdentity *
sqlite_get_identity (SrvDb *db, const char *id, const char *username, GError **error)
{
  IdentityOp op = { .id = id, .username = username };

  if (!run_txn (db, TXN_READ, get_identity_txn, &op, error))
    {
      g_clear_pointer (&op.out, srv_identity_free);
      return NULL;
    }
  return op.out;
}

/* Photos */

typedef struct {
  const SrvPhoto *in;
  const char     *identity_id;
  const char     *photo_id;
  gboolean        created;
  SrvPhoto       *out;
  char           *key;
} PhotoOp;

static gboolean
register_photo_txn (Conn *c, SrvDb *db, gpointer data, GError **error)
{
  PhotoOp *op = data;
  const SrvPhoto *in = op->in;
  g_autoptr(Stmt) by_key = prep (c, "SELECT id, identity_id FROM photos WHERE key = ?1", error);
  g_autoptr(Stmt) insert = NULL;
  g_autoptr(Stmt) job = NULL;
  g_autofree char *job_id = NULL;
  g_autofree char *existing = NULL;
  gint64 now = srv_db_now (db);
  int rc;

  g_clear_pointer (&op->out, srv_photo_free);
  op->created = FALSE;
  if (by_key == NULL)
    return FALSE;
  bind_text (by_key, 1, in->key);
  rc = step (c, by_key, error);
  if (rc < 0)
    return FALSE;
  if (rc == SQLITE_ROW)
    {
      if (strcmp ((const char *) sqlite3_column_text (by_key, 1), in->identity_id) != 0)
        {
          g_set_error (error, SRV_DB_ERROR, SRV_DB_ERROR_CONFLICT,
                       "key %s belongs to another identity", in->key);
          return FALSE;
        }
      existing = col_text (by_key, 0);
      op->out = load_photo (c, NULL, existing, error);
      return op->out != NULL;
    }

  insert = prep (c, "INSERT INTO photos (id, identity_id, key, size, content_type, width, "
                    "height, sha256, state, created_at) "
                    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'queued', ?9)", error);
  if (insert == NULL)
    return FALSE;
  bind_text (insert, 1, in->id);
  bind_text (insert, 2, in->identity_id);
  bind_text (insert, 3, in->key);
  sqlite3_bind_int64 (insert, 4, in->size);
  bind_text (insert, 5, in->content_type);
  sqlite3_bind_int (insert, 6, in->width);
  sqlite3_bind_int (insert, 7, in->height);
  bind_text (insert, 8, in->sha256);
  sqlite3_bind_int64 (insert, 9, in->created_at);
  if (!step_done (c, insert, error))
    {
      if (g_error_matches (*error, SRV_DB_ERROR, SRV_DB_ERROR_NOT_FOUND))
        {
          g_clear_error (error);
          not_found (error, "identity");
        }
      return FALSE;
    }

  job = prep (c, "INSERT INTO jobs (id, photo_id, state, attempts, max_attempts, not_before, "
                 "created_at, updated_at) VALUES (?1, ?2, 'queued', 0, ?3, ?4, ?4, ?4)", error);
  if (job == NULL)
    return FALSE;
  job_id = srv_db_new_id ();
  bind_text (job, 1, job_id);
  bind_text (job, 2, in->id);
  sqlite3_bind_int (job, 3, SRV_DB_JOB_MAX_ATTEMPTS);
  sqlite3_bind_int64 (job, 4, now);
  if (!step_done (c, job, error))
    return FALSE;

  op->out = load_photo (c, NULL, in->id, error);
  if (op->out == NULL || !add_event (c, db, SRV_EVENT_PHOTO_CREATED, op->out, error))
    return FALSE;
  op->created = TRUE;
  return TRUE;
}

static SrvPhoto *
sqlite_register_photo (SrvDb *db, const SrvPhoto *photo, gboolean *created, GError **error)
{
  PhotoOp op = { .in = photo };

  if (!run_txn (db, TXN_WRITE_DURABLE, register_photo_txn, &op, error))
    {
      g_clear_pointer (&op.out, srv_photo_free);
      return NULL;
    }
  *created = op.created;
  return op.out;
}

static gboolean
get_photo_txn (Conn *c, SrvDb *db, gpointer data, GError **error)
{
  PhotoOp *op = data;
  g_autoptr(GError) local = NULL;

  g_clear_pointer (&op->out, srv_photo_free);
  op->out = load_photo (c, op->identity_id, op->photo_id, &local);
  if (local)
    g_propagate_error (error, g_steal_pointer (&local));
  else if (op->out == NULL)
    not_found (error, "photo");
  return op->out != NULL;
}

static SrvPhoto *
sqlite_get_photo (SrvDb *db, const char *identity_id, const char *photo_id, GError **error)
{
  PhotoOp op = { .identity_id = identity_id, .photo_id = photo_id };

  if (!run_txn (db, TXN_READ, get_photo_txn, &op, error))
    {
      g_clear_pointer (&op.out, srv_photo_free);
      return NULL;
    }
  return op.out;
}

typedef struct {
  const char          *identity_id;
  const SrvPhotoQuery *query;
  gint64               after_created_at;
  const char          *after_id;
  GPtrArray           *photos;
  char                *next_cursor;
} ListOp;

static gboolean
list_photos_txn (Conn *c, SrvDb *db, gpointer data, GError **error)
{
  ListOp *op = data;
  const SrvPhotoQuery *q = op->query;
  g_autoptr(GString) sql = g_string_new ("SELECT " PHOTO_COLS " FROM photos p "
                                         "WHERE p.identity_id = ?1");
  g_autoptr(Stmt) s = NULL;
  int rc;

  g_ptr_array_set_size (op->photos, 0);
  g_clear_pointer (&op->next_cursor, g_free);
  if (op->after_id)
    g_string_append (sql, " AND (p.created_at < ?2 OR (p.created_at = ?2 AND p.id < ?3))");
  if (q->tag || q->min_confidence > 0)
    {
      g_string_append (sql, " AND EXISTS (SELECT 1 FROM tags t WHERE t.photo_id = p.id");
      if (q->tag)
        g_string_append (sql, " AND lower(t.label) = lower(?4)");
      if (q->min_confidence > 0)
        g_string_append (sql, " AND t.confidence >= ?5");
      g_string_append (sql, ")");
    }
  if (q->key)
    g_string_append (sql, " AND p.key = ?7");
  /* One row more than asked tells whether there is a next page. */
  g_string_append (sql, " ORDER BY p.created_at DESC, p.id DESC LIMIT ?6");
  s = prep (c, sql->str, error);
  if (s == NULL)
    return FALSE;
  bind_text (s, 1, op->identity_id);
  if (op->after_id)
    {
      sqlite3_bind_int64 (s, 2, op->after_created_at);
      bind_text (s, 3, op->after_id);
    }
  if (q->tag)
    bind_text (s, 4, q->tag);
  if (q->min_confidence > 0)
    sqlite3_bind_double (s, 5, q->min_confidence);
  sqlite3_bind_int (s, 6, q->limit + 1);
  if (q->key)
    bind_text (s, 7, q->key);
  while ((rc = step (c, s, error)) == SQLITE_ROW)
    {
      if (op->photos->len == q->limit)
        {
          SrvPhoto *last = g_ptr_array_index (op->photos, op->photos->len - 1);

          op->next_cursor = srv_db_cursor_encode (last->created_at, last->id);
          break;
        }
      g_ptr_array_add (op->photos, photo_from_row (s));
    }
  if (rc < 0)
    return FALSE;
  for (guint i = 0; i < op->photos->len; i++)
    if (!load_tags (c, g_ptr_array_index (op->photos, i), error))
      return FALSE;
  return TRUE;
}

static GPtrArray *
sqlite_list_photos (SrvDb               *db,
                    const char          *identity_id,
                    const SrvPhotoQuery *query,
                    gint64               after_created_at,
                    const char          *after_id,
                    char               **next_cursor,
                    GError             **error)
{
  g_autoptr(GPtrArray) photos = g_ptr_array_new_with_free_func ((GDestroyNotify) srv_photo_free);
  ListOp op = { identity_id, query, after_created_at, after_id, photos, NULL };

  if (!run_txn (db, TXN_READ, list_photos_txn, &op, error))
    {
      g_free (op.next_cursor);
      return NULL;
    }
  *next_cursor = op.next_cursor;
  return g_steal_pointer (&photos);
}

static gboolean
delete_photo_txn (Conn *c, SrvDb *db, gpointer data, GError **error)
{
  PhotoOp *op = data;
  static const char *deletes[] = {
    "DELETE FROM tags WHERE photo_id = ?1",
    "DELETE FROM jobs WHERE photo_id = ?1",
    "DELETE FROM photos WHERE id = ?1",
  };
  g_autoptr(SrvPhoto) photo = NULL;

  if (!get_photo_txn (c, db, op, error))
    return FALSE;
  photo = g_steal_pointer (&op->out);
  for (gsize i = 0; i < G_N_ELEMENTS (deletes); i++)
    {
      g_autoptr(Stmt) s = prep (c, deletes[i], error);

      if (s == NULL)
        return FALSE;
      bind_text (s, 1, photo->id);
      if (!step_done (c, s, error))
        return FALSE;
    }
  if (!add_event (c, db, SRV_EVENT_PHOTO_DELETED, photo, error))
    return FALSE;
  g_free (op->key);
  op->key = g_strdup (photo->key);
  return TRUE;
}

static char *
sqlite_delete_photo (SrvDb *db, const char *identity_id, const char *photo_id, GError **error)
{
  PhotoOp op = { .identity_id = identity_id, .photo_id = photo_id };

  if (!run_txn (db, TXN_WRITE_DURABLE, delete_photo_txn, &op, error))
    {
      g_free (op.key);
      return NULL;
    }
  return op.key;
}

/* Jobs */

/* Job @job_id of photo @photo_id gives up: dead job, failed photo (unless it has tags after
 * all), photo.failed event. */
static gboolean
mark_dead (Conn *c, SrvDb *db, const char *job_id, const char *photo_id, const char *message,
           GError **error)
{
  g_autoptr(Stmt) job = prep (c, "UPDATE jobs SET state = 'dead', last_error = ?2, "
                                 "lease_owner = NULL, lease_expires_at = NULL, updated_at = ?3 "
                                 "WHERE id = ?1", error);
  g_autoptr(Stmt) photo = NULL;
  g_autoptr(SrvPhoto) loaded = NULL;
  gint64 now = srv_db_now (db);

  if (job == NULL)
    return FALSE;
  bind_text (job, 1, job_id);
  bind_text (job, 2, message);
  sqlite3_bind_int64 (job, 3, now);
  if (!step_done (c, job, error))
    return FALSE;
  photo = prep (c, "UPDATE photos SET state = 'failed', error = ?2 "
                   "WHERE id = ?1 AND tagged_at IS NULL", error);
  if (photo == NULL)
    return FALSE;
  bind_text (photo, 1, photo_id);
  bind_text (photo, 2, message);
  if (!step_done (c, photo, error) || !bump_counter (c, "dead", error))
    return FALSE;
  loaded = load_photo (c, NULL, photo_id, error);
  return loaded != NULL && add_event (c, db, SRV_EVENT_PHOTO_FAILED, loaded, error);
}

typedef struct {
  const char *owner;
  guint       max_n;
  gint64      timeout;
  GPtrArray  *jobs;
} LeaseOp;

/* Ids (and photo ids) of rows from @s, at most @max. */
static int
collect_ids (Conn *c, Stmt *s, guint max, GPtrArray *ids, GPtrArray *photo_ids, GError **error)
{
  int rc = SQLITE_DONE;

  while (ids->len < max && (rc = step (c, s, error)) == SQLITE_ROW)
    {
      g_ptr_array_add (ids, col_text (s, 0));
      if (photo_ids)
        g_ptr_array_add (photo_ids, col_text (s, 1));
    }
  return ids->len >= max ? SQLITE_DONE : rc;
}

static gboolean
lease_jobs_txn (Conn *c, SrvDb *db, gpointer data, GError **error)
{
  LeaseOp *op = data;
  gint64 now = srv_db_now (db);
  g_autoptr(GPtrArray) spent = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(GPtrArray) spent_photos = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(GPtrArray) ids = g_ptr_array_new_with_free_func (g_free);
  guint n_expired;

  g_ptr_array_set_size (op->jobs, 0);

  /* An expired lease on the last attempt: the worker died on this photo every time. */
  {
    g_autoptr(Stmt) s = prep (c, "SELECT id, photo_id FROM jobs WHERE state = 'leased' "
                                 "AND lease_expires_at <= ?1 AND attempts >= max_attempts", error);

    if (s == NULL)
      return FALSE;
    sqlite3_bind_int64 (s, 1, now);
    if (collect_ids (c, s, G_MAXUINT, spent, spent_photos, error) < 0)
      return FALSE;
  }
  for (guint i = 0; i < spent->len; i++)
    {
      g_autofree char *message = g_strdup_printf ("lease expired on each of %d attempts",
                                                  SRV_DB_JOB_MAX_ATTEMPTS);

      if (!mark_dead (c, db, spent->pdata[i], spent_photos->pdata[i], message, error))
        return FALSE;
    }

  {
    g_autoptr(Stmt) expired = prep (c, "SELECT id FROM jobs WHERE state = 'leased' "
                                       "AND lease_expires_at <= ?1 ORDER BY lease_expires_at",
                                    error);
    g_autoptr(Stmt) due = NULL;

    if (expired == NULL)
      return FALSE;
    sqlite3_bind_int64 (expired, 1, now);
    if (collect_ids (c, expired, op->max_n, ids, NULL, error) < 0)
      return FALSE;
    n_expired = ids->len;
    stmt_release (g_steal_pointer (&expired));

    due = prep (c, "SELECT id FROM jobs WHERE state = 'queued' AND not_before <= ?1 "
                   "ORDER BY not_before", error);
    if (due == NULL)
      return FALSE;
    sqlite3_bind_int64 (due, 1, now);
    if (collect_ids (c, due, op->max_n, ids, NULL, error) < 0)
      return FALSE;
  }

  for (guint i = 0; i < ids->len; i++)
    {
      g_autoptr(Stmt) job = prep (c, "UPDATE jobs SET state = 'leased', attempts = attempts + 1, "
                                     "lease_owner = ?2, lease_expires_at = ?3, updated_at = ?4 "
                                     "WHERE id = ?1", error);
      g_autoptr(Stmt) photo = NULL;
      SrvJob *leased;

      if (job == NULL)
        return FALSE;
      bind_text (job, 1, ids->pdata[i]);
      bind_text (job, 2, op->owner);
      sqlite3_bind_int64 (job, 3, now + op->timeout);
      sqlite3_bind_int64 (job, 4, now);
      if (!step_done (c, job, error))
        return FALSE;
      if (i < n_expired && !bump_counter (c, "expired", error))
        return FALSE;
      leased = load_job (c, ids->pdata[i], error);
      if (leased == NULL)
        return FALSE;
      g_ptr_array_add (op->jobs, leased);
      photo = prep (c, "UPDATE photos SET state = 'tagging' WHERE id = ?1 AND state = 'queued'",
                    error);
      if (photo == NULL)
        return FALSE;
      bind_text (photo, 1, leased->photo_id);
      if (!step_done (c, photo, error))
        return FALSE;
    }
  return TRUE;
}

static GPtrArray *
sqlite_lease_jobs (SrvDb      *db,
                   const char *owner,
                   guint       max_n,
                   gint64      visibility_timeout_us,
                   GError    **error)
{
  g_autoptr(GPtrArray) jobs = g_ptr_array_new_with_free_func ((GDestroyNotify) srv_job_free);
  LeaseOp op = { owner, max_n, visibility_timeout_us, jobs };

  if (!run_txn (db, TXN_WRITE, lease_jobs_txn, &op, error))
    return NULL;
  return g_steal_pointer (&jobs);
}

typedef struct {
  const char   *job_id;
  const char   *owner;
  const char   *model;
  const SrvTag *tags;
  guint         n_tags;
  const char   *message;
  gboolean      retryable;
  gboolean      applied;
  SrvJobState   new_state;
} JobOp;

static gboolean
complete_job_txn (Conn *c, SrvDb *db, gpointer data, GError **error)
{
  JobOp *op = data;
  gint64 now = srv_db_now (db);
  g_autoptr(Stmt) find = prep (c, "SELECT j.photo_id, p.tagged_at IS NOT NULL FROM jobs j "
                                  "JOIN photos p ON p.id = j.photo_id WHERE j.id = ?1", error);
  g_autoptr(Stmt) done = NULL;
  g_autoptr(Stmt) photo = NULL;
  g_autoptr(SrvPhoto) tagged = NULL;
  g_autofree char *photo_id = NULL;
  gboolean has_tags;
  int rc;

  op->applied = FALSE;
  if (find == NULL)
    return FALSE;
  bind_text (find, 1, op->job_id);
  rc = step (c, find, error);
  if (rc < 0)
    return FALSE;
  if (rc == SQLITE_DONE)
    return not_found (error, "job");
  photo_id = col_text (find, 0);
  has_tags = sqlite3_column_int (find, 1) != 0;

  done = prep (c, "UPDATE jobs SET state = 'done', lease_owner = NULL, lease_expires_at = NULL, "
                  "updated_at = ?2 WHERE id = ?1 AND state <> 'done'", error);
  if (done == NULL)
    return FALSE;
  bind_text (done, 1, op->job_id);
  sqlite3_bind_int64 (done, 2, now);
  if (!step_done (c, done, error))
    return FALSE;
  /* One tag set per photo, ever: a second delivery of the same job only closes it. */
  if (has_tags)
    return TRUE;

  for (guint i = 0; i < op->n_tags; i++)
    {
      g_autoptr(Stmt) tag = prep (c, "INSERT INTO tags (photo_id, rank, label, confidence) "
                                     "VALUES (?1, ?2, ?3, ?4)", error);

      if (tag == NULL)
        return FALSE;
      bind_text (tag, 1, photo_id);
      sqlite3_bind_int (tag, 2, i);
      bind_text (tag, 3, op->tags[i].label);
      sqlite3_bind_double (tag, 4, op->tags[i].confidence);
      if (!step_done (c, tag, error))
        return FALSE;
    }
  photo = prep (c, "UPDATE photos SET state = 'tagged', model = ?2, tagged_at = ?3, error = NULL "
                   "WHERE id = ?1", error);
  if (photo == NULL)
    return FALSE;
  bind_text (photo, 1, photo_id);
  bind_text (photo, 2, op->model);
  sqlite3_bind_int64 (photo, 3, now);
  if (!step_done (c, photo, error) || !bump_counter (c, "done", error))
    return FALSE;
  tagged = load_photo (c, NULL, photo_id, error);
  if (tagged == NULL || !add_event (c, db, SRV_EVENT_PHOTO_TAGGED, tagged, error))
    return FALSE;
  op->applied = TRUE;
  return TRUE;
}

static gboolean
sqlite_complete_job (SrvDb        *db,
                     const char   *job_id,
                     const char   *owner,
                     const char   *model,
                     const SrvTag *tags,
                     guint         n_tags,
                     gboolean     *applied,
                     GError      **error)
{
  JobOp op = { .job_id = job_id, .owner = owner, .model = model, .tags = tags, .n_tags = n_tags };

  if (!run_txn (db, TXN_WRITE_DURABLE, complete_job_txn, &op, error))
    return FALSE;
  *applied = op.applied;
  return TRUE;
}

static gboolean
fail_job_txn (Conn *c, SrvDb *db, gpointer data, GError **error)
{
  JobOp *op = data;
  gint64 now = srv_db_now (db);
  g_autoptr(Stmt) find = prep (c, "SELECT state, lease_owner, attempts, max_attempts, photo_id "
                                  "FROM jobs WHERE id = ?1", error);
  g_autoptr(Stmt) retry = NULL;
  g_autoptr(Stmt) photo = NULL;
  g_autofree char *photo_id = NULL;
  int attempts, rc;

  if (find == NULL)
    return FALSE;
  bind_text (find, 1, op->job_id);
  rc = step (c, find, error);
  if (rc < 0)
    return FALSE;
  if (rc == SQLITE_DONE)
    return not_found (error, "job");
  if (g_strcmp0 ((const char *) sqlite3_column_text (find, 0), "leased") != 0 ||
      g_strcmp0 ((const char *) sqlite3_column_text (find, 1), op->owner) != 0)
    {
      g_set_error (error, SRV_DB_ERROR, SRV_DB_ERROR_CONFLICT,
                   "job %s is no longer leased to %s", op->job_id, op->owner);
      return FALSE;
    }
  attempts = sqlite3_column_int (find, 2);
  photo_id = col_text (find, 4);

  if (!op->retryable || attempts >= sqlite3_column_int (find, 3))
    {
      op->new_state = SRV_JOB_DEAD;
      return mark_dead (c, db, op->job_id, photo_id, op->message, error);
    }

  op->new_state = SRV_JOB_QUEUED;
  retry = prep (c, "UPDATE jobs SET state = 'queued', not_before = ?2, last_error = ?3, "
                   "lease_owner = NULL, lease_expires_at = NULL, updated_at = ?4 WHERE id = ?1",
                error);
  if (retry == NULL)
    return FALSE;
  bind_text (retry, 1, op->job_id);
  sqlite3_bind_int64 (retry, 2, now + srv_db_backoff_us (attempts, g_random_double ()));
  bind_text (retry, 3, op->message);
  sqlite3_bind_int64 (retry, 4, now);
  if (!step_done (c, retry, error))
    return FALSE;
  photo = prep (c, "UPDATE photos SET state = 'queued' WHERE id = ?1 AND state = 'tagging'",
                error);
  if (photo == NULL)
    return FALSE;
  bind_text (photo, 1, photo_id);
  return step_done (c, photo, error) && bump_counter (c, "retried", error);
}

static gboolean
sqlite_fail_job (SrvDb       *db,
                 const char  *job_id,
                 const char  *owner,
                 const char  *error_message,
                 gboolean     retryable,
                 SrvJobState *new_state,
                 GError     **error)
{
  JobOp op = { .job_id = job_id, .owner = owner, .message = error_message,
               .retryable = retryable };

  if (!run_txn (db, TXN_WRITE_DURABLE, fail_job_txn, &op, error))
    return FALSE;
  *new_state = op.new_state;
  return TRUE;
}

typedef struct {
  gint64         count;
  gint64         older_than;
  const char    *owner;
  SrvQueueStats *stats;
} CountOp;

static gboolean
requeue_txn (Conn *c, SrvDb *db, gpointer data, GError **error)
{
  CountOp *op = data;
  g_autoptr(Stmt) photos = prep (c, "UPDATE photos SET state = 'queued' WHERE state = 'tagging' "
                                    "AND id IN (SELECT photo_id FROM jobs WHERE state = 'leased' "
                                    "AND (?1 IS NULL OR lease_owner = ?1))",
                                 error);
  g_autoptr(Stmt) jobs = NULL;

  if (photos == NULL)
    return FALSE;
  bind_text (photos, 1, op->owner);
  if (!step_done (c, photos, error))
    return FALSE;
  jobs = prep (c, "UPDATE jobs SET state = 'queued', lease_owner = NULL, lease_expires_at = NULL, "
                  "not_before = ?1, updated_at = ?1 WHERE state = 'leased' "
                  "AND (?2 IS NULL OR lease_owner = ?2)", error);
  if (jobs == NULL)
    return FALSE;
  sqlite3_bind_int64 (jobs, 1, srv_db_now (db));
  bind_text (jobs, 2, op->owner);
  if (!step_done (c, jobs, error))
    return FALSE;
  op->count = sqlite3_changes (c->handle);
  return TRUE;
}

static gint64
sqlite_requeue_leased (SrvDb *db, const char *owner, GError **error)
{
  CountOp op = { .owner = owner };

  return run_txn (db, TXN_WRITE, requeue_txn, &op, error) ? op.count : -1;
}

static gboolean
lease_owners_txn (Conn *c, SrvDb *db, gpointer data, GError **error)
{
  GPtrArray *owners = data;
  g_autoptr(Stmt) s = prep (c, "SELECT DISTINCT lease_owner FROM jobs WHERE state = 'leased' "
                               "AND lease_owner IS NOT NULL ORDER BY 1", error);
  int rc;

  if (s == NULL)
    return FALSE;
  g_ptr_array_set_size (owners, 0);
  while ((rc = step (c, s, error)) == SQLITE_ROW)
    g_ptr_array_add (owners, col_text (s, 0));
  return rc == SQLITE_DONE;
}

static GPtrArray *
sqlite_lease_owners (SrvDb *db, GError **error)
{
  g_autoptr(GPtrArray) owners = g_ptr_array_new_with_free_func (g_free);

  if (!run_txn (db, TXN_READ, lease_owners_txn, owners, error))
    return NULL;
  return g_steal_pointer (&owners);
}

typedef struct {
  const char *photo_id;
  int         width;
  int         height;
} SizeOp;

static gboolean
set_photo_size_txn (Conn *c, SrvDb *db, gpointer data, GError **error)
{
  SizeOp *op = data;
  g_autoptr(Stmt) s = prep (c, "UPDATE photos SET width = ?2, height = ?3 WHERE id = ?1", error);

  if (s == NULL)
    return FALSE;
  bind_text (s, 1, op->photo_id);
  sqlite3_bind_int (s, 2, op->width);
  sqlite3_bind_int (s, 3, op->height);
  if (!step_done (c, s, error))
    return FALSE;
  if (sqlite3_changes (c->handle) == 0)
    {
      g_set_error (error, SRV_DB_ERROR, SRV_DB_ERROR_NOT_FOUND, "no photo %s", op->photo_id);
      return FALSE;
    }
  return TRUE;
}

static gboolean
sqlite_set_photo_size (SrvDb *db, const char *photo_id, int width, int height, GError **error)
{
  SizeOp op = { photo_id, width, height };

  return run_txn (db, TXN_WRITE, set_photo_size_txn, &op, error);
}

static gboolean
queue_stats_txn (Conn *c, SrvDb *db, gpointer data, GError **error)
{
  SrvQueueStats *stats = ((CountOp *) data)->stats;
  g_autoptr(Stmt) depth = prep (c, "SELECT state, COUNT(*) FROM jobs "
                                   "WHERE state IN ('queued', 'leased') GROUP BY state", error);
  g_autoptr(Stmt) totals = NULL;
  int rc;

  if (depth == NULL)
    return FALSE;
  while ((rc = step (c, depth, error)) == SQLITE_ROW)
    {
      gint64 n = sqlite3_column_int64 (depth, 1);

      if (srv_job_state_from_string ((const char *) sqlite3_column_text (depth, 0)) == SRV_JOB_LEASED)
        stats->leased = n;
      else
        stats->queued = n;
    }
  if (rc < 0)
    return FALSE;
  totals = prep (c, "SELECT name, value FROM job_counters", error);
  if (totals == NULL)
    return FALSE;
  while ((rc = step (c, totals, error)) == SQLITE_ROW)
    {
      const char *name = (const char *) sqlite3_column_text (totals, 0);
      gint64 n = sqlite3_column_int64 (totals, 1);

      if (g_strcmp0 (name, "done") == 0)
        stats->done = n;
      else if (g_strcmp0 (name, "dead") == 0)
        stats->dead = n;
      else if (g_strcmp0 (name, "retried") == 0)
        stats->retried = n;
      else if (g_strcmp0 (name, "expired") == 0)
        stats->expired = n;
    }
  return rc == SQLITE_DONE;
}

static gboolean
sqlite_queue_stats (SrvDb *db, SrvQueueStats *stats, GError **error)
{
  CountOp op = { .stats = stats };

  return run_txn (db, TXN_READ, queue_stats_txn, &op, error);
}

/* Events */

typedef struct {
  const char *identity_id;
  gint64      last_id;
  guint       limit;
  GPtrArray  *events;
} EventsOp;

static gboolean
events_since_txn (Conn *c, SrvDb *db, gpointer data, GError **error)
{
  EventsOp *op = data;
  g_autoptr(Stmt) s = prep (c, "SELECT id, identity_id, type, data, created_at FROM events "
                               "WHERE identity_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3", error);
  int rc;

  g_ptr_array_set_size (op->events, 0);
  if (s == NULL)
    return FALSE;
  bind_text (s, 1, op->identity_id);
  sqlite3_bind_int64 (s, 2, op->last_id);
  sqlite3_bind_int64 (s, 3, op->limit);
  while ((rc = step (c, s, error)) == SQLITE_ROW)
    {
      SrvEvent *event = g_new0 (SrvEvent, 1);

      event->id = sqlite3_column_int64 (s, 0);
      event->identity_id = col_text (s, 1);
      event->type = srv_event_type_from_string ((const char *) sqlite3_column_text (s, 2));
      event->data = col_text (s, 3);
      event->created_at = sqlite3_column_int64 (s, 4);
      g_ptr_array_add (op->events, event);
    }
  return rc == SQLITE_DONE;
}

static GPtrArray *
sqlite_events_since (SrvDb      *db,
                     const char *identity_id,
                     gint64      last_id,
                     guint       limit,
                     GError    **error)
{
  g_autoptr(GPtrArray) events = g_ptr_array_new_with_free_func ((GDestroyNotify) srv_event_free);
  EventsOp op = { identity_id, last_id, limit, events };

  if (!run_txn (db, TXN_READ, events_since_txn, &op, error))
    return NULL;
  return g_steal_pointer (&events);
}

static gboolean
prune_events_txn (Conn *c, SrvDb *db, gpointer data, GError **error)
{
  CountOp *op = data;
  /* The newest event stays whatever its age: MAX(id) + 1 must never fall back. */
  g_autoptr(Stmt) s = prep (c, "DELETE FROM events WHERE created_at < ?1 "
                               "AND id < (SELECT MAX(id) FROM events)", error);

  if (s == NULL)
    return FALSE;
  sqlite3_bind_int64 (s, 1, op->older_than);
  if (!step_done (c, s, error))
    return FALSE;
  op->count = sqlite3_changes (c->handle);
  return TRUE;
}

static gint64
sqlite_prune_events (SrvDb *db, gint64 older_than, GError **error)
{
  CountOp op = { .older_than = older_than };

  return run_txn (db, TXN_WRITE, prune_events_txn, &op, error) ? op.count : -1;
}

static gboolean
last_event_id_txn (Conn *c, SrvDb *db, gpointer data, GError **error)
{
  CountOp *op = data;
  g_autoptr(Stmt) s = prep (c, "SELECT COALESCE(MAX(id), 0) FROM events", error);

  if (s == NULL || step (c, s, error) != SQLITE_ROW)
    return FALSE;
  op->count = sqlite3_column_int64 (s, 0);
  return TRUE;
}

static gint64
sqlite_last_event_id (SrvDb *db, GError **error)
{
  CountOp op = { 0 };

  return run_txn (db, TXN_READ, last_event_id_txn, &op, error) ? op.count : -1;
}

typedef struct {
  const char *name;
  const char *value;
  char       *stored;
} SettingOp;

static gboolean
setting_once_txn (Conn *c, SrvDb *db, gpointer data, GError **error)
{
  SettingOp *op = data;
  g_autoptr(Stmt) put = prep (c, "INSERT INTO settings (name, value, created_at) "
                                 "VALUES (?1, ?2, ?3) ON CONFLICT (name) DO NOTHING", error);
  g_autoptr(Stmt) get = NULL;

  if (put == NULL)
    return FALSE;
  bind_text (put, 1, op->name);
  bind_text (put, 2, op->value);
  sqlite3_bind_int64 (put, 3, srv_db_now (db));
  if (!step_done (c, put, error))
    return FALSE;
  get = prep (c, "SELECT value FROM settings WHERE name = ?1", error);
  if (get == NULL)
    return FALSE;
  bind_text (get, 1, op->name);
  if (step (c, get, error) != SQLITE_ROW)
    return FALSE;
  g_free (op->stored);
  op->stored = col_text (get, 0);
  return TRUE;
}

static char *
sqlite_setting_once (SrvDb *db, const char *name, const char *value, GError **error)
{
  SettingOp op = { name, value, NULL };

  if (!run_txn (db, TXN_WRITE_DURABLE, setting_once_txn, &op, error))
    {
      g_free (op.stored);
      return NULL;
    }
  return op.stored;
}

const SrvDbVTable srv_db_sqlite_vtable = {
  .name = "sqlite",
  .open = sqlite_open,
  .close = sqlite_close,
  .schema_versions = sqlite_schema_versions,
  .check_integrity = sqlite_check_integrity,
  .create_identity = sqlite_create_identity,
  .get_identity = sqlite_get_identity,
  .register_photo = sqlite_register_photo,
  .get_photo = sqlite_get_photo,
  .list_photos = sqlite_list_photos,
  .delete_photo = sqlite_delete_photo,
  .lease_jobs = sqlite_lease_jobs,
  .complete_job = sqlite_complete_job,
  .fail_job = sqlite_fail_job,
  .requeue_leased = sqlite_requeue_leased,
  .set_photo_size = sqlite_set_photo_size,
  .queue_stats = sqlite_queue_stats,
  .events_since = sqlite_events_since,
  .prune_events = sqlite_prune_events,
  .last_event_id = sqlite_last_event_id,
  .lease_owners = sqlite_lease_owners,
  .setting_once = sqlite_setting_once,
};
