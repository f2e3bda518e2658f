/* srv-db-pg.c - the PostgreSQL backend of srv-db.h: a libpq pool, row locks, LISTEN/NOTIFY
 *
 * Several magpied processes (api and worker nodes) share one database. Each call borrows a
 * connection from a small pool and runs one transaction on it, READ COMMITTED for writes (row
 * locks, not a database lock, keep writers apart) and REPEATABLE READ READ ONLY for reads (one
 * snapshot for a photo and its tags). Jobs are leased with SELECT ... FOR UPDATE SKIP LOCKED, so
 * leasing workers never wait for each other and never take the same job. Serialization
 * failures, deadlocks and a lost connection rerun the whole transaction a few times before the
 * caller sees SRV_DB_ERROR_BUSY.
 *
 * Events: ids come from a counter row (event_seq, migration 003) whose row lock is held until
 * commit, so they increase in commit order as the SSE stream needs; the id, the event row and
 * its NOTIFY are one statement, the last before COMMIT, so writers queue for as short as can be. Each event also sends a NOTIFY in
 * its transaction; a listener thread per process turns the notifications of other processes
 * into srv_db_events_committed() calls, so an SSE stream on an api node wakes for a tag a worker
 * node stored. This process's own events are announced right after their commit, as SQLite's
 * are, and the listener skips them by their origin tag.
 *
 * Durability follows the SQLite backend: acknowledged writes commit with the server's
 * synchronous_commit; leases and requeues set it off for their transaction, as losing one merely
 * runs a job again.
 */
#define G_LOG_DOMAIN "magpied-db"

#include "config.h"

#include "srv-db.h"

#include <errno.h>
#include <glib-unix.h>
#include <libpq-fe.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

/* Connections one process keeps at most: a worker pool, the HTTP blocking pool and the SSE
 * readers rarely hold more than a few at once; five nodes at this bound stay well under
 * PostgreSQL's default max_connections of 100. Callers past it wait for a free one. */
#define PG_POOL_MAX 12
/* Whole-transaction reruns after a serialization failure, a deadlock or a lost connection. */
#define PG_TXN_RETRIES 4
#define PG_CONNECT_TIMEOUT_S "10"
#define PG_CHANNEL "magpie_events"
/* The advisory lock key (a fixed number no other tool of ours uses; "magpie" 1 was the event
 * lock before migration 003). */
#define PG_LOCK_MIGRATE 0x6d61677069650002  /* "magpie" 2: one node migrates at a time */
/* The listener re-reads the events table this often even when no notification came, and
 * reconnects after this long when the server went away. */
#define PG_LISTEN_POLL_MS 30000
#define PG_LISTEN_RETRY_MS 1000

typedef struct {
  char   *identity_id;
  gint64  id;
} PendingEvent;

typedef struct {
  PGconn     *pg;
  GHashTable *stmts;     /* SQL text -> prepared statement name */
  guint       next_stmt;
  GArray     *pending;   /* PendingEvent of the open transaction */
  gboolean    broken;    /* the connection failed: close it instead of pooling it */
} Conn;

typedef struct {
  char      *conninfo;
  char      *origin;     /* tags this process's NOTIFYs, so its listener skips them */
  GMutex     lock;
  GCond      cond;
  GPtrArray *idle;       /* Conn */
  guint      n_open;     /* idle and borrowed */

  GThread   *listener;
  int        wake[2];    /* a byte on wake[1] stops the listener */
  gboolean   listening;  /* under lock: the first LISTEN is in place */
  gint       stopping;   /* atomic */
  gint64     heard;      /* under lock: newest event id announced in this process */
} Pg;

typedef enum {
  TXN_READ,
  TXN_WRITE,
  TXN_WRITE_DURABLE,
} TxnKind;

typedef gboolean (*TxnFunc) (Conn *c, SrvDb *db, gpointer data, GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (PGresult, PQclear)

#define PHOTO_COLS "p.id, p.identity_id, p.key, p.size, p.content_type, p.width, p.height, " \
                   "p.sha256, p.state, p.model, p.error, p.created_at, p.tagged_at"
#define JOB_COLS "j.id, j.photo_id, p.identity_id, p.key, j.state, j.attempts, j.max_attempts, " \
                 "j.not_before, j.lease_owner, j.lease_expires_at, j.last_error, j.created_at, " \
                 "j.updated_at"
#define IDENTITY_COLS "id, kind, username, password_hash, secret_hash, created_at, disabled"

/* Parameters: libpq takes text; numbers are formatted into the slots here. */

#define PG_MAX_PARAMS 12

typedef struct {
  const char *values[PG_MAX_PARAMS];
  char        buf[PG_MAX_PARAMS][G_ASCII_DTOSTR_BUF_SIZE];
  int         n;
} Params;

static void
p_text (Params *p, const char *text)
{
  g_assert (p->n < PG_MAX_PARAMS);
  p->values[p->n++] = text;
}

static void
p_int (Params *p, gint64 v)
{
  g_assert (p->n < PG_MAX_PARAMS);
  g_snprintf (p->buf[p->n], sizeof p->buf[p->n], "%" G_GINT64_FORMAT, v);
  p->values[p->n] = p->buf[p->n];
  p->n++;
}

static void
p_double (Params *p, double v)
{
  g_assert (p->n < PG_MAX_PARAMS);
  g_ascii_dtostr (p->buf[p->n], sizeof p->buf[p->n], v);
  p->values[p->n] = p->buf[p->n];
  p->n++;
}

/* A PostgreSQL array literal of @n strings, each quoted, so any label survives. */
static char *
array_literal (const char * const *items, guint n)
{
  GString *s = g_string_new ("{");

  for (guint i = 0; i < n; i++)
    {
      if (i > 0)
        g_string_append_c (s, ',');
      g_string_append_c (s, '"');
      for (const char *c = items[i]; *c; c++)
        {
          if (*c == '"' || *c == '\\')
            g_string_append_c (s, '\\');
          g_string_append_c (s, *c);
        }
      g_string_append_c (s, '"');
    }
  g_string_append_c (s, '}');
  return g_string_free (s, FALSE);
}

static char *
col_text (PGresult *r, int row, int col)
{
  return PQgetisnull (r, row, col) ? NULL : g_strdup (PQgetvalue (r, row, col));
}

static gint64
col_int (PGresult *r, int row, int col)
{
  return PQgetisnull (r, row, col) ? 0 : g_ascii_strtoll (PQgetvalue (r, row, col), NULL, 10);
}

static gboolean
col_bool (PGresult *r, int row, int col)
{
  return !PQgetisnull (r, row, col) && PQgetvalue (r, row, col)[0] == 't';
}

/* Errors */

static gboolean
sqlstate_is_retryable (const char *state)
{
  /* serialization_failure, deadlock_detected, lock_not_available, and the connection class:
   * another attempt, on a fresh connection if need be, may well succeed. */
  return state == NULL || g_str_has_prefix (state, "08") || strcmp (state, "40001") == 0 ||
         strcmp (state, "40P01") == 0 || strcmp (state, "55P03") == 0 ||
         strcmp (state, "57P01") == 0 || strcmp (state, "57P02") == 0 ||
         strcmp (state, "57P03") == 0;
}

/* Sets @error from a failed result (or a NULL one), mapping SQLSTATE to SrvDbError. */
static gboolean
set_error (Conn *c, PGresult *r, GError **error)
{
  const char *state = r ? PQresultErrorField (r, PG_DIAG_SQLSTATE) : NULL;
  const char *message = r ? PQresultErrorMessage (r) : "";
  g_autofree char *text = NULL;
  SrvDbError code = SRV_DB_ERROR_INTERNAL;

  if (PQstatus (c->pg) != CONNECTION_OK)
    c->broken = TRUE;
  if (c->broken || sqlstate_is_retryable (state))
    code = SRV_DB_ERROR_BUSY;
  else if (strcmp (state, "23505") == 0)
    code = SRV_DB_ERROR_CONFLICT;
  else if (strcmp (state, "23503") == 0)
    code = SRV_DB_ERROR_NOT_FOUND;
  else if (g_str_has_prefix (state, "23") || g_str_has_prefix (state, "22"))
    code = SRV_DB_ERROR_INVALID;
  if (message == NULL || *message == '\0')
    message = PQerrorMessage (c->pg);
  text = g_strstrip (g_strdup (message));
  g_set_error (error, SRV_DB_ERROR, code, "postgresql: %s%s%s%s", text,
               state ? " (SQLSTATE " : "", state ? state : "", state ? ")" : "");
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
pending_clear (PendingEvent *p)
{
  g_free (p->identity_id);
}

static void
conn_free (Conn *c)
{
  if (c == NULL)
    return;
  g_clear_pointer (&c->stmts, g_hash_table_unref);
  g_clear_pointer (&c->pending, g_array_unref);
  g_clear_pointer (&c->pg, PQfinish);
  g_free (c);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Conn, conn_free)

static void
quiet_notices (void *arg, const char *message)
{
  /* "relation already exists, skipping" and the like: worth a debug line at most. */
  g_debug ("postgresql: %s", message);
}

static PGconn *
pg_connect (const char *conninfo, GError **error)
{
  /* Defaults first, then the caller's URI (expand_dbname), then what the code relies on. */
  const char *keys[] = { "application_name", "connect_timeout", "dbname", "client_encoding",
                         NULL };
  const char *values[] = { "magpied", PG_CONNECT_TIMEOUT_S, conninfo, "UTF8", NULL };
  PGconn *pg = PQconnectdbParams (keys, values, 1);

  if (pg == NULL || PQstatus (pg) != CONNECTION_OK)
    {
      g_autofree char *why = g_strstrip (g_strdup (pg ? PQerrorMessage (pg) : "out of memory"));

      g_set_error (error, SRV_DB_ERROR, SRV_DB_ERROR_BUSY,
                   "cannot connect to PostgreSQL: %s", why);
      g_clear_pointer (&pg, PQfinish);
      return NULL;
    }
  PQsetNoticeProcessor (pg, quiet_notices, NULL);
  return pg;
}

static Conn *
conn_open (const char *conninfo, GError **error)
{
  g_autoptr(Conn) c = g_new0 (Conn, 1);

  c->stmts = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  c->pending = g_array_new (FALSE, FALSE, sizeof (PendingEvent));
  g_array_set_clear_func (c->pending, (GDestroyNotify) pending_clear);
  c->pg = pg_connect (conninfo, error);
  if (c->pg == NULL)
    return NULL;
  return g_steal_pointer (&c);
}

/* Runs @sql, prepared once per connection. Returns the result, or NULL with @error set. */
static PGresult *
query (Conn *c, const char *sql, const Params *params, GError **error)
{
  const char *name = g_hash_table_lookup (c->stmts, sql);
  int n = params ? params->n : 0;
  PGresult *r;
  ExecStatusType status;

  if (name == NULL)
    {
      g_autofree char *fresh = g_strdup_printf ("s%u", c->next_stmt++);
      g_autoptr(PGresult) prepared = PQprepare (c->pg, fresh, sql, 0, NULL);

      if (prepared == NULL || PQresultStatus (prepared) != PGRES_COMMAND_OK)
        return set_error (c, prepared, error), NULL;
      name = fresh;
      g_hash_table_insert (c->stmts, g_strdup (sql), g_steal_pointer (&fresh));
    }
  r = PQexecPrepared (c->pg, name, n, params ? params->values : NULL, NULL, NULL, 0);
  status = r ? PQresultStatus (r) : PGRES_FATAL_ERROR;
  if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK)
    {
      set_error (c, r, error);
      PQclear (r);
      return NULL;
    }
  return r;
}

static gboolean
exec (Conn *c, const char *sql, const Params *params, GError **error)
{
  g_autoptr(PGresult) r = query (c, sql, params, error);

  return r != NULL;
}

/* Plain (unprepared) statements: transaction control and migrations, several per string. */
static gboolean
exec_simple (Conn *c, const char *sql, GError **error)
{
  g_autoptr(PGresult) r = PQexec (c->pg, sql);

  if (r == NULL || (PQresultStatus (r) != PGRES_COMMAND_OK &&
                    PQresultStatus (r) != PGRES_TUPLES_OK))
    return set_error (c, r, error);
  return TRUE;
}

static gint64
affected (PGresult *r)
{
  return g_ascii_strtoll (PQcmdTuples (r), NULL, 10);
}

static Conn *
pool_take (Pg *self, GError **error)
{
  Conn *c = NULL;

  g_mutex_lock (&self->lock);
  while (self->idle->len == 0 && self->n_open >= PG_POOL_MAX)
    g_cond_wait (&self->cond, &self->lock);
  if (self->idle->len > 0)
    c = g_ptr_array_steal_index_fast (self->idle, self->idle->len - 1);
  else
    self->n_open++;
  g_mutex_unlock (&self->lock);
  if (c != NULL)
    return c;
  c = conn_open (self->conninfo, error);
  if (c == NULL)
    {
      g_mutex_lock (&self->lock);
      self->n_open--;
      g_cond_signal (&self->cond);
      g_mutex_unlock (&self->lock);
    }
  return c;
}

static void
pool_give (Pg *self, Conn *c)
{
  g_mutex_lock (&self->lock);
  if (c->broken)
    {
      conn_free (c);
      self->n_open--;
    }
  else
    g_ptr_array_add (self->idle, c);
  g_cond_signal (&self->cond);
  g_mutex_unlock (&self->lock);
}

/* Runs @func in one transaction, rerun as a whole after a retryable failure; @func must be safe
 * to rerun. */
static gboolean
run_txn (SrvDb *db, TxnKind kind, TxnFunc func, gpointer data, GError **error)
{
  Pg *self = srv_db_backend (db);
  const char *begin = kind == TXN_READ ? "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
                      : kind == TXN_WRITE ? "BEGIN; SET LOCAL synchronous_commit = off"
                      : "BEGIN";
  gboolean ok = FALSE;
  Conn *c = NULL;

  for (int attempt = 0;; attempt++)
    {
      g_autoptr(GError) local = NULL;

      c = pool_take (self, &local);
      if (c != NULL)
        {
          g_array_set_size (c->pending, 0);
          if (exec_simple (c, begin, &local))
            {
              ok = func (c, db, data, &local) && exec_simple (c, "COMMIT", &local);
              if (!ok && !c->broken)
                {
                  g_autoptr(PGresult) r = PQexec (c->pg, "ROLLBACK");

                  if (r == NULL || PQresultStatus (r) != PGRES_COMMAND_OK)
                    c->broken = TRUE;
                }
            }
          if (ok)
            break;
          g_array_set_size (c->pending, 0);
          pool_give (self, g_steal_pointer (&c));
        }
      if (!g_error_matches (local, SRV_DB_ERROR, SRV_DB_ERROR_BUSY) || attempt >= PG_TXN_RETRIES)
        {
          g_propagate_error (error, g_steal_pointer (&local));
          return FALSE;
        }
      g_debug ("rerunning a transaction: %s", local->message);
      /* Jittered and growing, so the transactions that collided do not collide again. */
      g_usleep (g_random_int_range (1000, 20000) * (attempt + 1));
    }

  for (guint i = 0; i < c->pending->len; i++)
    {
      PendingEvent *p = &g_array_index (c->pending, PendingEvent, i);

      g_mutex_lock (&self->lock);
      self->heard = MAX (self->heard, p->id);
      g_mutex_unlock (&self->lock);
      srv_db_events_committed (db, p->identity_id, p->id);
    }
  g_array_set_size (c->pending, 0);
  pool_give (self, c);
  return TRUE;
}

/* Rows */

static SrvIdentity *
identity_from_row (PGresult *r, int row)
{
  SrvIdentity *identity = g_new0 (SrvIdentity, 1);

  identity->id = col_text (r, row, 0);
  identity->kind = g_strcmp0 (PQgetvalue (r, row, 1), "account") == 0 ? SRV_IDENTITY_ACCOUNT
                                                                       : SRV_IDENTITY_GUEST;
  identity->username = col_text (r, row, 2);
  identity->password_hash = col_text (r, row, 3);
  identity->secret_hash = col_text (r, row, 4);
  identity->created_at = col_int (r, row, 5);
  identity->disabled = col_int (r, row, 6) != 0;
  return identity;
}

static SrvPhoto *
photo_from_row (PGresult *r, int row)
{
  SrvPhoto *photo = g_new0 (SrvPhoto, 1);

  photo->id = col_text (r, row, 0);
  photo->identity_id = col_text (r, row, 1);
  photo->key = col_text (r, row, 2);
  photo->size = col_int (r, row, 3);
  photo->content_type = col_text (r, row, 4);
  photo->width = (int) col_int (r, row, 5);
  photo->height = (int) col_int (r, row, 6);
  photo->sha256 = col_text (r, row, 7);
  photo->state = srv_photo_state_from_string (PQgetvalue (r, row, 8));
  photo->model = col_text (r, row, 9);
  photo->error = col_text (r, row, 10);
  photo->created_at = col_int (r, row, 11);
  photo->tagged_at = col_int (r, row, 12);
  photo->tags = srv_tag_array_new ();
  return photo;
}

static SrvJob *
job_from_row (PGresult *r, int row)
{
  SrvJob *job = g_new0 (SrvJob, 1);

  job->id = col_text (r, row, 0);
  job->photo_id = col_text (r, row, 1);
  job->identity_id = col_text (r, row, 2);
  job->photo_key = col_text (r, row, 3);
  job->state = srv_job_state_from_string (PQgetvalue (r, row, 4));
  job->attempts = (int) col_int (r, row, 5);
  job->max_attempts = (int) col_int (r, row, 6);
  job->not_before = col_int (r, row, 7);
  job->lease_owner = col_text (r, row, 8);
  job->lease_expires_at = col_int (r, row, 9);
  job->last_error = col_text (r, row, 10);
  job->created_at = col_int (r, row, 11);
  job->updated_at = col_int (r, row, 12);
  return job;
}

static gboolean
load_tags (Conn *c, SrvPhoto *photo, GError **error)
{
  Params p = { 0 };
  g_autoptr(PGresult) r = NULL;

  p_text (&p, photo->id);
  r = query (c, "SELECT label, confidence FROM tags WHERE photo_id = $1 ORDER BY rank", &p,
             error);
  if (r == NULL)
    return FALSE;
  g_array_set_size (photo->tags, 0);
  for (int i = 0; i < PQntuples (r); i++)
    {
      SrvTag tag = { col_text (r, i, 0), g_ascii_strtod (PQgetvalue (r, i, 1), NULL) };

      g_array_append_val (photo->tags, tag);
    }
  return TRUE;
}

/* The photo @photo_id with its tags, or NULL: with @error set on failure, without when absent
 * (or owned by someone other than @identity_id, when that is given). @lock takes its row lock
 * for the rest of the transaction. */
static SrvPhoto *
load_photo (Conn *c, const char *identity_id, const char *photo_id, gboolean lock,
            GError **error)
{
  Params p = { 0 };
  g_autoptr(PGresult) r = NULL;
  g_autoptr(SrvPhoto) photo = NULL;

  p_text (&p, photo_id);
  r = query (c, lock ? "SELECT " PHOTO_COLS " FROM photos p WHERE p.id = $1 FOR UPDATE"
                     : "SELECT " PHOTO_COLS " FROM photos p WHERE p.id = $1", &p, error);
  if (r == NULL || PQntuples (r) == 0)
    return NULL;
  photo = photo_from_row (r, 0);
  if (identity_id != NULL && strcmp (photo->identity_id, identity_id) != 0)
    return NULL;
  if (!load_tags (c, photo, error))
    return NULL;
  return g_steal_pointer (&photo);
}

/* Appends an event carrying @photo's JSON and its NOTIFY; watchers in this process hear of it
 * once the transaction commits, other processes through their listeners. */
static gboolean
add_event (Conn *c, SrvDb *db, SrvEventType type, const SrvPhoto *photo, GError **error)
{
  Pg *self = srv_db_backend (db);
  g_autofree char *data = srv_photo_to_json (photo);
  g_autoptr(PGresult) r = NULL;
  Params p = { 0 };
  PendingEvent pending;

  /* The counter row stays locked to commit: the next writer's id is higher and commits later. */
  p_text (&p, photo->identity_id);
  p_text (&p, srv_event_type_to_string (type));
  p_text (&p, data);
  p_int (&p, srv_db_now (db));
  p_text (&p, self->origin);
  r = query (c, "WITH s AS (UPDATE event_seq SET id = id + 1 RETURNING id), "
                "e AS (INSERT INTO events (id, identity_id, type, data, created_at) "
                "SELECT s.id, $1::text, $2::text, $3::text, $4::bigint FROM s RETURNING id) "
                "SELECT id, pg_notify('" PG_CHANNEL "', $5::text || ' ' || $1::text || ' ' || id) "
                "FROM e",
             &p, error);
  if (r == NULL)
    return FALSE;
  pending.identity_id = g_strdup (photo->identity_id);
  pending.id = col_int (r, 0, 0);
  g_array_append_val (c->pending, pending);
  return TRUE;
}

static gboolean
bump_counter (Conn *c, const char *name, gint64 by, GError **error)
{
  Params p = { 0 };

  p_text (&p, name);
  p_int (&p, by);
  return exec (c, "UPDATE job_counters SET value = value + $2 WHERE name = $1", &p, error);
}

/* Migrations */

static gboolean
migrate (Conn *c, SrvDb *db, GError **error)
{
  g_autoptr(GPtrArray) migrations = srv_db_migrations ("postgresql", error);
  g_autoptr(PGresult) newest = NULL;
  Params lock = { 0 };
  int known, have;

  if (migrations == NULL)
    return FALSE;
  known = migrations->len ? ((SrvDbMigration *) g_ptr_array_index (migrations,
                                                                  migrations->len - 1))->version
                          : 0;
  /* One transaction with DDL in it: nodes that start together take turns under the lock, and
   * a migration that fails leaves nothing behind. */
  if (!exec_simple (c, "BEGIN", error))
    return FALSE;
  p_int (&lock, PG_LOCK_MIGRATE);
  if (!exec (c, "SELECT pg_advisory_xact_lock($1)", &lock, error) ||
      !exec_simple (c, "CREATE TABLE IF NOT EXISTS schema_migrations ("
                       "  version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
                       "  applied_at BIGINT NOT NULL)", error))
    goto rollback;
  newest = query (c, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations", NULL, error);
  if (newest == NULL)
    goto rollback;
  have = (int) col_int (newest, 0, 0);
  if (have > known)
    {
      g_set_error (error, SRV_DB_ERROR, SRV_DB_ERROR_INVALID,
                   "the database has schema version %d, newer than this magpied knows (%d); "
                   "run a newer magpied", have, known);
      goto rollback;
    }
  for (guint i = 0; i < migrations->len; i++)
    {
      SrvDbMigration *m = g_ptr_array_index (migrations, i);
      Params p = { 0 };

      if (m->version <= have)
        continue;
      g_debug ("applying migration %s", m->name);
      p_int (&p, m->version);
      p_text (&p, m->name);
      p_int (&p, srv_db_now (db));
      if (!exec_simple (c, m->sql, error) ||
          !exec (c, "INSERT INTO schema_migrations (version, name, applied_at) "
                    "VALUES ($1, $2, $3)", &p, error))
        {
          g_prefix_error (error, "migration %s: ", m->name);
          goto rollback;
        }
    }
  if (exec_simple (c, "COMMIT", error))
    return TRUE;

rollback:
  PQclear (PQexec (c->pg, "ROLLBACK"));
  return FALSE;
}

/* Event notifications from other processes */

/* Announces the events committed since the newest one this process heard of, one call per
 * identity: after a (re)connect nothing said while the listener was away is lost. */
static gboolean
catch_up (SrvDb *db, PGconn *pg)
{
  Pg *self = srv_db_backend (db);
  g_autoptr(PGresult) r = NULL;
  char since[32];
  const char *values[1] = { since };
  gint64 newest;

  g_mutex_lock (&self->lock);
  g_snprintf (since, sizeof since, "%" G_GINT64_FORMAT, self->heard);
  g_mutex_unlock (&self->lock);
  r = PQexecParams (pg, "SELECT identity_id, MAX(id) FROM events WHERE id > $1 "
                        "GROUP BY identity_id ORDER BY 2", 1, NULL, values, NULL, NULL, 0);
  if (r == NULL || PQresultStatus (r) != PGRES_TUPLES_OK)
    return FALSE;
  newest = 0;
  for (int i = 0; i < PQntuples (r); i++)
    {
      newest = MAX (newest, col_int (r, i, 1));
      srv_db_events_committed (db, PQgetvalue (r, i, 0), col_int (r, i, 1));
    }
  g_mutex_lock (&self->lock);
  self->heard = MAX (self->heard, newest);
  g_mutex_unlock (&self->lock);
  return TRUE;
}

/* "ORIGIN IDENTITY ID" from another process: announce it here. */
static void
handle_notify (SrvDb *db, const char *payload)
{
  Pg *self = srv_db_backend (db);
  g_auto(GStrv) words = g_strsplit (payload, " ", 4);
  gint64 id;

  if (g_strv_length (words) != 3 || strcmp (words[0], self->origin) == 0)
    return;
  id = g_ascii_strtoll (words[2], NULL, 10);
  g_mutex_lock (&self->lock);
  self->heard = MAX (self->heard, id);
  g_mutex_unlock (&self->lock);
  srv_db_events_committed (db, words[1], id);
}

static gboolean
listener_should_stop (Pg *self, int timeout_ms)
{
  struct pollfd pfd = { self->wake[0], POLLIN, 0 };

  return poll (&pfd, 1, timeout_ms) > 0 || g_atomic_int_get (&self->stopping);
}

static void
listener_ready (Pg *self)
{
  g_mutex_lock (&self->lock);
  self->listening = TRUE;
  g_cond_broadcast (&self->cond);
  g_mutex_unlock (&self->lock);
}

static gpointer
listener_thread (gpointer data)
{
  SrvDb *db = data;
  Pg *self = srv_db_backend (db);

  while (!g_atomic_int_get (&self->stopping))
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(PGresult) listen = NULL;
      PGconn *pg = pg_connect (self->conninfo, &error);

      if (pg != NULL)
        listen = PQexec (pg, "LISTEN " PG_CHANNEL);
      if (pg == NULL || listen == NULL || PQresultStatus (listen) != PGRES_COMMAND_OK ||
          !catch_up (db, pg))
        {
          g_message ("event listener: %s; retrying",
                     error ? error->message : PQerrorMessage (pg));
          g_clear_pointer (&pg, PQfinish);
          listener_ready (self);  /* srv_db_open() waits for the first try, not for success */
          if (listener_should_stop (self, PG_LISTEN_RETRY_MS))
            break;
          continue;
        }
      listener_ready (self);

      while (!g_atomic_int_get (&self->stopping))
        {
          struct pollfd fds[2] = { { PQsocket (pg), POLLIN, 0 }, { self->wake[0], POLLIN, 0 } };
          PGnotify *n;
          int ready = poll (fds, 2, PG_LISTEN_POLL_MS);

          if (ready < 0 && errno != EINTR)
            break;
          if (fds[1].revents)
            break;
          if (ready == 0)
            {
              /* Quiet for a while: a cheap round trip proves the connection and catches up
               * on anything a notification could have missed. */
              if (!catch_up (db, pg))
                break;
              continue;
            }
          if (!PQconsumeInput (pg))
            break;
          while ((n = PQnotifies (pg)) != NULL)
            {
              handle_notify (db, n->extra);
              PQfreemem (n);
            }
        }
      if (!g_atomic_int_get (&self->stopping))
        g_message ("event listener: connection lost (%s); reconnecting",
                   g_strstrip (PQerrorMessage (pg)));
      PQfinish (pg);
    }
  return NULL;
}

/* Open and close */

static void pg_close (gpointer backend);

static gpointer
pg_open (SrvDb *db, const char *location, GError **error)
{
  Pg *self;
  Conn *c = conn_open (location, error);
  g_autofree char *origin = srv_db_new_id ();

  if (c == NULL)
    return NULL;
  if (!migrate (c, db, error))
    {
      conn_free (c);
      return NULL;
    }
  self = g_new0 (Pg, 1);
  self->conninfo = g_strdup (location);
  self->origin = g_steal_pointer (&origin);
  g_mutex_init (&self->lock);
  g_cond_init (&self->cond);
  self->idle = g_ptr_array_new_with_free_func ((GDestroyNotify) conn_free);
  g_ptr_array_add (self->idle, c);
  self->n_open = 1;
  if (!g_unix_open_pipe (self->wake, FD_CLOEXEC, error))
    {
      self->wake[0] = self->wake[1] = -1;
      pg_close (self);
      return NULL;
    }
  return self;
}

/* The listener needs srv_db_backend() to work, so it starts once open() has returned. */
static void
pg_start_listener (SrvDb *db)
{
  Pg *self = srv_db_backend (db);
  g_autoptr(PGresult) r = NULL;
  Conn *c = self->idle->pdata[0];

  /* Events from before this open are history: only newer ones are news. */
  r = PQexec (c->pg, "SELECT COALESCE(MAX(id), 0) FROM events");
  if (r != NULL && PQresultStatus (r) == PGRES_TUPLES_OK)
    self->heard = col_int (r, 0, 0);
  self->listener = g_thread_new ("pg-listener", listener_thread, db);
  /* A watcher added right after open() must not miss an event committed right after it. */
  g_mutex_lock (&self->lock);
  while (!self->listening)
    g_cond_wait (&self->cond, &self->lock);
  g_mutex_unlock (&self->lock);
}

static void
pg_close (gpointer backend)
{
  Pg *self = backend;

  if (self->listener != NULL)
    {
      g_atomic_int_set (&self->stopping, 1);
      while (write (self->wake[1], "x", 1) < 0 && errno == EINTR)
        ;
      g_thread_join (self->listener);
    }
  if (self->wake[0] >= 0)
    {
      close (self->wake[0]);
      close (self->wake[1]);
    }
  g_ptr_array_unref (self->idle);
  g_mutex_clear (&self->lock);
  g_cond_clear (&self->cond);
  g_free (self->conninfo);
  g_free (self->origin);
  g_free (self);
}

static gboolean
schema_versions_txn (Conn *c, SrvDb *db, gpointer data, GError **error)
{
  GArray *versions = data;
  g_autoptr(PGresult) r = query (c, "SELECT version FROM schema_migrations ORDER BY version",
                                 NULL, error);

  if (r == NULL)
    return FALSE;
  g_array_set_size (versions, 0);
  for (int i = 0; i < PQntuples (r); i++)
    {
      int v = (int) col_int (r, i, 0);

      g_array_append_val (versions, v);
    }
  return TRUE;
}

static GArray *
pg_schema_versions (SrvDb *db, GError **error)
{
  g_autoptr(GArray) versions = g_array_new (FALSE, FALSE, sizeof (int));

  if (!run_txn (db, TXN_READ, schema_versions_txn, versions, error))
    return NULL;
  return g_steal_pointer (&versions);
}

/* PostgreSQL guards its pages itself and enforces the foreign keys; what is left to check is
 * what the schema cannot say: every photo has its one job, every tagged photo its time. */
static gboolean
integrity_txn (Conn *c, SrvDb *db, gpointer data, GError **error)
{
  static const struct {
    const char *sql;
    const char *what;
  } checks[] = {
    { "SELECT COUNT(*) FROM photos p WHERE NOT EXISTS "
      "(SELECT 1 FROM jobs j WHERE j.photo_id = p.id)", "photos without a job" },
    { "SELECT COUNT(*) FROM photos WHERE state = 'tagged' AND tagged_at IS NULL",
      "tagged photos without a time" },
    { "SELECT COUNT(*) FROM jobs WHERE state = 'leased' AND lease_owner IS NULL",
      "leases without an owner" },
  };
  g_autoptr(GString) problems = g_string_new (NULL);

  for (gsize i = 0; i < G_N_ELEMENTS (checks); i++)
    {
      g_autoptr(PGresult) r = query (c, checks[i].sql, NULL, error);

      if (r == NULL)
        return FALSE;
      if (col_int (r, 0, 0) != 0)
        g_string_append_printf (problems, "%s: %s; ", checks[i].what, PQgetvalue (r, 0, 0));
    }
  if (problems->len > 0)
    {
      g_set_error (error, SRV_DB_ERROR, SRV_DB_ERROR_INTERNAL, "integrity check: %s",
                   problems->str);
      return FALSE;
    }
  return TRUE;
}

static gboolean
pg_check_integrity (SrvDb *db, GError **error)
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
  Params p = { 0 };

  p_text (&p, op->in->id);
  p_text (&p, op->in->kind == SRV_IDENTITY_ACCOUNT ? "account" : "guest");
  p_text (&p, op->in->username);
  p_text (&p, op->in->password_hash);
  p_text (&p, op->in->secret_hash);
  p_int (&p, op->in->created_at);
  p_int (&p, op->in->disabled ? 1 : 0);
  if (!exec (c, "INSERT INTO identities (" IDENTITY_COLS ") "
                "VALUES ($1, $2, $3, $4, $5, $6, $7)", &p, error))
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
  g_autoptr(PGresult) r = NULL;
  Params p = { 0 };

  p_text (&p, op->id ? op->id : op->username);
  if (op->id)
    r = query (c, "SELECT " IDENTITY_COLS " FROM identities WHERE id = $1", &p, error);
  else
    r = query (c, "SELECT " IDENTITY_COLS " FROM identities "
                  "WHERE lower(username) = lower($1::text COLLATE \"C\")", &p, error);
  g_clear_pointer (&op->out, srv_identity_free);
  if (r == NULL)
    return FALSE;
  if (PQntuples (r) == 0)
    return not_found (error, "identity");
  op->out = identity_from_row (r, 0);
  return TRUE;
}

static SrvIdentity *
pg_create_identity (SrvDb *db, const SrvIdentity *identity, GError **error)
{
  IdentityOp op = { .in = identity };

  if (!run_txn (db, TXN_WRITE_DURABLE, create_identity_txn, &op, error))
    return NULL;
  return srv_identity_copy (identity);
}

static SrvIdentity *
pg_get_identity (SrvDb *db, const char *id, const char *username, GError **error)
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
  g_autoptr(PGresult) inserted = NULL;
  g_autoptr(PGresult) existing = NULL;
  g_autofree char *job_id = NULL;
  Params p = { 0 };
  Params by_key = { 0 };
  gint64 now = srv_db_now (db);

  g_clear_pointer (&op->out, srv_photo_free);
  op->created = FALSE;

  /* ON CONFLICT waits out a concurrent registration of the same key and then yields to it,
   * so two nodes registering one upload still make one photo. The photo and its job are one
   * statement, and the new photo is not read back (it is what was inserted, with no tags):
   * under a burst each round trip to a busy client is what a registration waits for. */
  job_id = srv_db_new_id ();
  p_text (&p, in->id);
  p_text (&p, in->identity_id);
  p_text (&p, in->key);
  p_int (&p, in->size);
  p_text (&p, in->content_type);
  p_int (&p, in->width);
  p_int (&p, in->height);
  p_text (&p, in->sha256);
  p_int (&p, in->created_at);
  p_text (&p, job_id);
  p_int (&p, SRV_DB_JOB_MAX_ATTEMPTS);
  p_int (&p, now);
  inserted = query (c, "WITH p AS (INSERT INTO photos (id, identity_id, key, size, "
                       "content_type, width, height, sha256, state, created_at) "
                       "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'queued', $9) "
                       "ON CONFLICT (key) DO NOTHING RETURNING id) "
                       "INSERT INTO jobs (id, photo_id, state, attempts, max_attempts, "
                       "not_before, created_at, updated_at) "
                       "SELECT $10, id, 'queued', 0, $11, $12, $12, $12 FROM p", &p, error);
  if (inserted == NULL)
    {
      if (g_error_matches (*error, SRV_DB_ERROR, SRV_DB_ERROR_NOT_FOUND))
        {
          g_clear_error (error);
          not_found (error, "identity");
        }
      return FALSE;
    }
  if (affected (inserted) == 0)
    {
      p_text (&by_key, in->key);
      existing = query (c, "SELECT id, identity_id FROM photos WHERE key = $1", &by_key, error);
      if (existing == NULL)
        return FALSE;
      if (PQntuples (existing) == 0)
        {
          /* Deleted between the conflict and this read: a rerun registers it afresh. */
          g_set_error (error, SRV_DB_ERROR, SRV_DB_ERROR_BUSY, "key %s changed hands", in->key);
          return FALSE;
        }
      if (strcmp (PQgetvalue (existing, 0, 1), in->identity_id) != 0)
        {
          g_set_error (error, SRV_DB_ERROR, SRV_DB_ERROR_CONFLICT,
                       "key %s belongs to another identity", in->key);
          return FALSE;
        }
      op->out = load_photo (c, NULL, PQgetvalue (existing, 0, 0), FALSE, error);
      return op->out != NULL;
    }

  op->out = g_new0 (SrvPhoto, 1);
  op->out->id = g_strdup (in->id);
  op->out->identity_id = g_strdup (in->identity_id);
  op->out->key = g_strdup (in->key);
  op->out->size = in->size;
  op->out->content_type = g_strdup (in->content_type);
  op->out->width = in->width;
  op->out->height = in->height;
  op->out->sha256 = g_strdup (in->sha256);
  op->out->state = SRV_PHOTO_QUEUED;
  op->out->created_at = in->created_at;
  op->out->tags = srv_tag_array_new ();
  if (!add_event (c, db, SRV_EVENT_PHOTO_CREATED, op->out, error))
    return FALSE;
  op->created = TRUE;
  return TRUE;
}

static SrvPhoto *
pg_register_photo (SrvDb *db, const SrvPhoto *photo, gboolean *created, GError **error)
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
  op->out = load_photo (c, op->identity_id, op->photo_id, FALSE, &local);
  if (local)
    g_propagate_error (error, g_steal_pointer (&local));
  else if (op->out == NULL)
    not_found (error, "photo");
  return op->out != NULL;
}

static SrvPhoto *
pg_get_photo (SrvDb *db, const char *identity_id, const char *photo_id, GError **error)
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
                                         "WHERE p.identity_id = $1");
  g_autoptr(PGresult) r = NULL;
  Params p = { 0 };

  g_ptr_array_set_size (op->photos, 0);
  g_clear_pointer (&op->next_cursor, g_free);
  p_text (&p, op->identity_id);
  /* Parameters are numbered as they are added: PostgreSQL wants no gaps. */
  if (op->after_id)
    {
      p_int (&p, op->after_created_at);
      p_text (&p, op->after_id);
      g_string_append_printf (sql, " AND (p.created_at < $%d OR (p.created_at = $%d AND "
                              "p.id < $%d))", p.n - 1, p.n - 1, p.n);
    }
  if (q->tag || q->min_confidence > 0)
    {
      g_string_append (sql, " AND EXISTS (SELECT 1 FROM tags t WHERE t.photo_id = p.id");
      if (q->tag)
        {
          p_text (&p, q->tag);
          g_string_append_printf (sql, " AND lower(t.label) = lower($%d::text COLLATE \"C\")",
                                  p.n);
        }
      if (q->min_confidence > 0)
        {
          p_double (&p, q->min_confidence);
          g_string_append_printf (sql, " AND t.confidence >= $%d::float8", p.n);
        }
      g_string_append (sql, ")");
    }
  if (q->key)
    {
      p_text (&p, q->key);
      g_string_append_printf (sql, " AND p.key = $%d::text COLLATE \"C\"", p.n);
    }
  /* One row more than asked tells whether there is a next page. */
  p_int (&p, q->limit + 1);
  g_string_append_printf (sql, " ORDER BY p.created_at DESC, p.id DESC LIMIT $%d", p.n);
  r = query (c, sql->str, &p, error);
  if (r == NULL)
    return FALSE;
  for (int i = 0; i < PQntuples (r); i++)
    {
      if (op->photos->len == q->limit)
        {
          SrvPhoto *last = g_ptr_array_index (op->photos, op->photos->len - 1);

          op->next_cursor = srv_db_cursor_encode (last->created_at, last->id);
          break;
        }
      g_ptr_array_add (op->photos, photo_from_row (r, i));
    }
  for (guint i = 0; i < op->photos->len; i++)
    if (!load_tags (c, g_ptr_array_index (op->photos, i), error))
      return FALSE;
  return TRUE;
}

static GPtrArray *
pg_list_photos (SrvDb               *db,
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
    "DELETE FROM tags WHERE photo_id = $1",
    "DELETE FROM jobs WHERE photo_id = $1",
    "DELETE FROM photos WHERE id = $1",
  };
  g_autoptr(SrvPhoto) photo = NULL;
  g_autoptr(GError) local = NULL;
  Params p = { 0 };

  /* The row lock first: a worker storing tags now either finished (and its tags go too) or
   * waits and then finds the photo gone. */
  photo = load_photo (c, op->identity_id, op->photo_id, TRUE, &local);
  if (local)
    {
      g_propagate_error (error, g_steal_pointer (&local));
      return FALSE;
    }
  if (photo == NULL)
    return not_found (error, "photo");
  p_text (&p, photo->id);
  for (gsize i = 0; i < G_N_ELEMENTS (deletes); i++)
    if (!exec (c, deletes[i], &p, error))
      return FALSE;
  if (!add_event (c, db, SRV_EVENT_PHOTO_DELETED, photo, error))
    return FALSE;
  g_free (op->key);
  op->key = g_strdup (photo->key);
  return TRUE;
}

static char *
pg_delete_photo (SrvDb *db, const char *identity_id, const char *photo_id, GError **error)
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
 * all), photo.failed event. The caller holds the job's row lock. */
static gboolean
mark_dead (Conn *c, SrvDb *db, const char *job_id, const char *photo_id, const char *message,
           GError **error)
{
  g_autoptr(SrvPhoto) loaded = NULL;
  Params job = { 0 };
  Params photo = { 0 };

  p_text (&job, job_id);
  p_text (&job, message);
  p_int (&job, srv_db_now (db));
  if (!exec (c, "UPDATE jobs SET state = 'dead', last_error = $2, lease_owner = NULL, "
                "lease_expires_at = NULL, updated_at = $3 WHERE id = $1", &job, error))
    return FALSE;
  p_text (&photo, photo_id);
  p_text (&photo, message);
  if (!exec (c, "UPDATE photos SET state = 'failed', error = $2 "
                "WHERE id = $1 AND tagged_at IS NULL", &photo, error))
    return FALSE;
  loaded = load_photo (c, NULL, photo_id, FALSE, error);
  return loaded != NULL && bump_counter (c, "dead", 1, error) &&
         add_event (c, db, SRV_EVENT_PHOTO_FAILED, loaded, error);
}

typedef struct {
  const char *owner;
  guint       max_n;
  gint64      timeout;
  GPtrArray  *jobs;
} LeaseOp;

/* Appends the first column of @r's rows to @ids. */
static void
collect_ids (PGresult *r, GPtrArray *ids)
{
  for (int i = 0; i < PQntuples (r); i++)
    g_ptr_array_add (ids, col_text (r, i, 0));
}

static gboolean
lease_jobs_txn (Conn *c, SrvDb *db, gpointer data, GError **error)
{
  LeaseOp *op = data;
  gint64 now = srv_db_now (db);
  g_autoptr(PGresult) spent = NULL;
  g_autoptr(PGresult) expired = NULL;
  g_autoptr(PGresult) due = NULL;
  g_autoptr(PGresult) leased = NULL;
  g_autoptr(GPtrArray) ids = g_ptr_array_new_with_free_func (g_free);
  g_autofree char *id_array = NULL;
  Params at = { 0 };
  Params p = { 0 };
  guint n_expired;

  g_ptr_array_set_size (op->jobs, 0);
  p_int (&at, now);

  /* An expired lease on the last attempt: the worker died on this photo every time. SKIP
   * LOCKED here too, so another node dead-lettering the same job is no reason to wait. */
  spent = query (c, "SELECT id, photo_id FROM jobs WHERE state = 'leased' "
                    "AND lease_expires_at <= $1 AND attempts >= max_attempts "
                    "FOR UPDATE SKIP LOCKED", &at, error);
  if (spent == NULL)
    return FALSE;
  for (int i = 0; i < PQntuples (spent); i++)
    {
      g_autofree char *message = g_strdup_printf ("lease expired on each of %d attempts",
                                                  SRV_DB_JOB_MAX_ATTEMPTS);

      if (!mark_dead (c, db, PQgetvalue (spent, i, 0), PQgetvalue (spent, i, 1), message,
                      error))
        return FALSE;
    }

  /* Expired leases first (they waited longest), then due jobs in order. Rows another
   * transaction holds are skipped, not waited for: that is what keeps leases exclusive
   * without making the workers of every node take turns. */
  p_int (&p, now);
  p_int (&p, op->max_n);
  expired = query (c, "SELECT id FROM jobs WHERE state = 'leased' AND lease_expires_at <= $1 "
                      "ORDER BY lease_expires_at LIMIT $2 FOR UPDATE SKIP LOCKED", &p, error);
  if (expired == NULL)
    return FALSE;
  collect_ids (expired, ids);
  n_expired = ids->len;
  if (ids->len < op->max_n)
    {
      Params more = { 0 };

      p_int (&more, now);
      p_int (&more, op->max_n - ids->len);
      due = query (c, "SELECT id FROM jobs WHERE state = 'queued' AND not_before <= $1 "
                      "ORDER BY not_before LIMIT $2 FOR UPDATE SKIP LOCKED", &more, error);
      if (due == NULL)
        return FALSE;
      collect_ids (due, ids);
    }
  if (ids->len == 0)
    return TRUE;

  id_array = array_literal ((const char * const *) ids->pdata, ids->len);
  {
    Params upd = { 0 };

    p_text (&upd, id_array);
    p_text (&upd, op->owner);
    p_int (&upd, now + op->timeout);
    p_int (&upd, now);
    if (!exec (c, "UPDATE jobs SET state = 'leased', attempts = attempts + 1, "
                  "lease_owner = $2, lease_expires_at = $3, updated_at = $4 "
                  "WHERE id = ANY ($1::text[])", &upd, error))
      return FALSE;
  }
  {
    Params photos = { 0 };

    p_text (&photos, id_array);
    if (!exec (c, "UPDATE photos SET state = 'tagging' WHERE state = 'queued' AND id IN "
                  "(SELECT photo_id FROM jobs WHERE id = ANY ($1::text[]))", &photos, error))
      return FALSE;
  }
  if (n_expired > 0 && !bump_counter (c, "expired", n_expired, error))
    return FALSE;
  {
    Params load = { 0 };

    p_text (&load, id_array);
    leased = query (c, "SELECT " JOB_COLS " FROM jobs j JOIN photos p ON p.id = j.photo_id "
                       "WHERE j.id = ANY ($1::text[]) "
                       "ORDER BY array_position ($1::text[], j.id::text)", &load, error);
    if (leased == NULL)
      return FALSE;
  }
  for (int i = 0; i < PQntuples (leased); i++)
    g_ptr_array_add (op->jobs, job_from_row (leased, i));
  return TRUE;
}

static GPtrArray *
pg_lease_jobs (SrvDb      *db,
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
  g_autoptr(PGresult) find = NULL;
  g_autoptr(SrvPhoto) tagged = NULL;
  g_autofree char *photo_id = NULL;
  Params p = { 0 };
  Params done = { 0 };
  Params photo = { 0 };

  op->applied = FALSE;
  /* Both rows locked: a second delivery of this job, on any node, waits here and then sees
   * the tag set this one stores. */
  p_text (&p, op->job_id);
  find = query (c, "SELECT j.photo_id, p.tagged_at IS NOT NULL FROM jobs j "
                   "JOIN photos p ON p.id = j.photo_id WHERE j.id = $1 FOR UPDATE OF j, p",
                &p, error);
  if (find == NULL)
    return FALSE;
  if (PQntuples (find) == 0)
    return not_found (error, "job");
  photo_id = col_text (find, 0, 0);

  p_text (&done, op->job_id);
  p_int (&done, now);
  if (!exec (c, "UPDATE jobs SET state = 'done', lease_owner = NULL, lease_expires_at = NULL, "
                "updated_at = $2 WHERE id = $1 AND state <> 'done'", &done, error))
    return FALSE;
  /* One tag set per photo, ever: a second delivery of the same job only closes it. */
  if (col_bool (find, 0, 1))
    return TRUE;

  if (op->n_tags > 0)
    {
      g_autofree const char **labels = g_new0 (const char *, op->n_tags);
      g_autofree const char **confidences = g_new0 (const char *, op->n_tags);
      g_auto(GStrv) numbers = g_new0 (char *, op->n_tags + 1);
      g_autofree char *label_array = NULL;
      g_autofree char *confidence_array = NULL;
      Params tags = { 0 };

      for (guint i = 0; i < op->n_tags; i++)
        {
          numbers[i] = g_malloc (G_ASCII_DTOSTR_BUF_SIZE);
          g_ascii_dtostr (numbers[i], G_ASCII_DTOSTR_BUF_SIZE, op->tags[i].confidence);
          labels[i] = op->tags[i].label;
          confidences[i] = numbers[i];
        }
      label_array = array_literal (labels, op->n_tags);
      confidence_array = array_literal (confidences, op->n_tags);
      p_text (&tags, photo_id);
      p_text (&tags, label_array);
      p_text (&tags, confidence_array);
      if (!exec (c, "INSERT INTO tags (photo_id, rank, label, confidence) "
                    "SELECT $1::text, t.n - 1, t.label, t.confidence "
                    "FROM unnest ($2::text[], $3::float8[]) WITH ORDINALITY "
                    "AS t (label, confidence, n)", &tags, error))
        return FALSE;
    }
  p_text (&photo, photo_id);
  p_text (&photo, op->model);
  p_int (&photo, now);
  if (!exec (c, "UPDATE photos SET state = 'tagged', model = $2, tagged_at = $3, error = NULL "
                "WHERE id = $1", &photo, error))
    return FALSE;
  /* Every completion locks the "done" counter and the event counter to commit: both last. */
  tagged = load_photo (c, NULL, photo_id, FALSE, error);
  if (tagged == NULL || !bump_counter (c, "done", 1, error) ||
      !add_event (c, db, SRV_EVENT_PHOTO_TAGGED, tagged, error))
    return FALSE;
  op->applied = TRUE;
  return TRUE;
}

static gboolean
pg_complete_job (SrvDb        *db,
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
  g_autoptr(PGresult) find = NULL;
  g_autofree char *photo_id = NULL;
  Params p = { 0 };
  Params retry = { 0 };
  Params photo = { 0 };
  int attempts;

  p_text (&p, op->job_id);
  find = query (c, "SELECT state, lease_owner, attempts, max_attempts, photo_id "
                   "FROM jobs WHERE id = $1 FOR UPDATE", &p, error);
  if (find == NULL)
    return FALSE;
  if (PQntuples (find) == 0)
    return not_found (error, "job");
  if (g_strcmp0 (PQgetvalue (find, 0, 0), "leased") != 0 || PQgetisnull (find, 0, 1) ||
      g_strcmp0 (PQgetvalue (find, 0, 1), op->owner) != 0)
    {
      g_set_error (error, SRV_DB_ERROR, SRV_DB_ERROR_CONFLICT,
                   "job %s is no longer leased to %s", op->job_id, op->owner);
      return FALSE;
    }
  attempts = (int) col_int (find, 0, 2);
  photo_id = col_text (find, 0, 4);

  if (!op->retryable || attempts >= col_int (find, 0, 3))
    {
      op->new_state = SRV_JOB_DEAD;
      return mark_dead (c, db, op->job_id, photo_id, op->message, error);
    }

  op->new_state = SRV_JOB_QUEUED;
  p_text (&retry, op->job_id);
  p_int (&retry, now + srv_db_backoff_us (attempts, g_random_double ()));
  p_text (&retry, op->message);
  p_int (&retry, now);
  if (!exec (c, "UPDATE jobs SET state = 'queued', not_before = $2, last_error = $3, "
                "lease_owner = NULL, lease_expires_at = NULL, updated_at = $4 WHERE id = $1",
             &retry, error))
    return FALSE;
  p_text (&photo, photo_id);
  return exec (c, "UPDATE photos SET state = 'queued' WHERE id = $1 AND state = 'tagging'",
               &photo, error) &&
         bump_counter (c, "retried", 1, error);
}

static gboolean
pg_fail_job (SrvDb       *db,
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
  g_autoptr(PGresult) jobs = NULL;
  Params photos = { 0 };
  Params p = { 0 };

  p_text (&photos, op->owner);
  if (!exec (c, "UPDATE photos SET state = 'queued' WHERE state = 'tagging' AND id IN "
                "(SELECT photo_id FROM jobs WHERE state = 'leased' "
                "AND ($1::text IS NULL OR lease_owner = $1::text))", &photos, error))
    return FALSE;
  p_int (&p, srv_db_now (db));
  p_text (&p, op->owner);
  jobs = query (c, "UPDATE jobs SET state = 'queued', lease_owner = NULL, "
                   "lease_expires_at = NULL, not_before = $1, updated_at = $1 "
                   "WHERE state = 'leased' AND ($2::text IS NULL OR lease_owner = $2::text)",
                &p, error);
  if (jobs == NULL)
    return FALSE;
  op->count = affected (jobs);
  return TRUE;
}

static gint64
pg_requeue_leased (SrvDb *db, const char *owner, GError **error)
{
  CountOp op = { .owner = owner };

  return run_txn (db, TXN_WRITE, requeue_txn, &op, error) ? op.count : -1;
}

static gboolean
lease_owners_txn (Conn *c, SrvDb *db, gpointer data, GError **error)
{
  GPtrArray *owners = data;
  g_autoptr(PGresult) r = query (c, "SELECT DISTINCT lease_owner FROM jobs "
                                    "WHERE state = 'leased' AND lease_owner IS NOT NULL "
                                    "ORDER BY 1", NULL, error);

  if (r == NULL)
    return FALSE;
  g_ptr_array_set_size (owners, 0);
  collect_ids (r, owners);
  return TRUE;
}

static GPtrArray *
pg_lease_owners (SrvDb *db, GError **error)
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
  g_autoptr(PGresult) r = NULL;
  Params p = { 0 };

  p_text (&p, op->photo_id);
  p_int (&p, op->width);
  p_int (&p, op->height);
  r = query (c, "UPDATE photos SET width = $2, height = $3 WHERE id = $1", &p, error);
  if (r == NULL)
    return FALSE;
  if (affected (r) == 0)
    {
      g_set_error (error, SRV_DB_ERROR, SRV_DB_ERROR_NOT_FOUND, "no photo %s", op->photo_id);
      return FALSE;
    }
  return TRUE;
}

static gboolean
pg_set_photo_size (SrvDb *db, const char *photo_id, int width, int height, GError **error)
{
  SizeOp op = { photo_id, width, height };

  return run_txn (db, TXN_WRITE, set_photo_size_txn, &op, error);
}

static gboolean
queue_stats_txn (Conn *c, SrvDb *db, gpointer data, GError **error)
{
  SrvQueueStats *stats = ((CountOp *) data)->stats;
  g_autoptr(PGresult) depth = query (c, "SELECT state, COUNT(*) FROM jobs "
                                        "WHERE state IN ('queued', 'leased') GROUP BY state",
                                     NULL, error);
  g_autoptr(PGresult) totals = NULL;

  if (depth == NULL)
    return FALSE;
  stats->queued = stats->leased = 0;
  for (int i = 0; i < PQntuples (depth); i++)
    {
      if (srv_job_state_from_string (PQgetvalue (depth, i, 0)) == SRV_JOB_LEASED)
        stats->leased = col_int (depth, i, 1);
      else
        stats->queued = col_int (depth, i, 1);
    }
  totals = query (c, "SELECT name, value FROM job_counters", NULL, error);
  if (totals == NULL)
    return FALSE;
  for (int i = 0; i < PQntuples (totals); i++)
    {
      const char *name = PQgetvalue (totals, i, 0);
      gint64 n = col_int (totals, i, 1);

      if (g_strcmp0 (name, "done") == 0)
        stats->done = n;
      else if (g_strcmp0 (name, "dead") == 0)
        stats->dead = n;
      else if (g_strcmp0 (name, "retried") == 0)
        stats->retried = n;
      else if (g_strcmp0 (name, "expired") == 0)
        stats->expired = n;
    }
  return TRUE;
}

static gboolean
pg_queue_stats (SrvDb *db, SrvQueueStats *stats, GError **error)
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
  g_autoptr(PGresult) r = NULL;
  Params p = { 0 };

  g_ptr_array_set_size (op->events, 0);
  p_text (&p, op->identity_id);
  p_int (&p, op->last_id);
  p_int (&p, op->limit);
  r = query (c, "SELECT id, identity_id, type, data, created_at FROM events "
                "WHERE identity_id = $1 AND id > $2 ORDER BY id LIMIT $3", &p, error);
  if (r == NULL)
    return FALSE;
  for (int i = 0; i < PQntuples (r); i++)
    {
      SrvEvent *event = g_new0 (SrvEvent, 1);

      event->id = col_int (r, i, 0);
      event->identity_id = col_text (r, i, 1);
      event->type = srv_event_type_from_string (PQgetvalue (r, i, 2));
      event->data = col_text (r, i, 3);
      event->created_at = col_int (r, i, 4);
      g_ptr_array_add (op->events, event);
    }
  return TRUE;
}

static GPtrArray *
pg_events_since (SrvDb      *db,
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
  g_autoptr(PGresult) r = NULL;
  Params p = { 0 };

  /* The newest event stays whatever its age: MAX(id) + 1 must never fall back. */
  p_int (&p, op->older_than);
  r = query (c, "DELETE FROM events WHERE created_at < $1 "
                "AND id < (SELECT MAX(id) FROM events)", &p, error);
  if (r == NULL)
    return FALSE;
  op->count = affected (r);
  return TRUE;
}

static gint64
pg_prune_events (SrvDb *db, gint64 older_than, GError **error)
{
  CountOp op = { .older_than = older_than };

  return run_txn (db, TXN_WRITE, prune_events_txn, &op, error) ? op.count : -1;
}

static gboolean
last_event_id_txn (Conn *c, SrvDb *db, gpointer data, GError **error)
{
  CountOp *op = data;
  g_autoptr(PGresult) r = query (c, "SELECT COALESCE(MAX(id), 0) FROM events", NULL, error);

  if (r == NULL)
    return FALSE;
  op->count = col_int (r, 0, 0);
  return TRUE;
}

static gint64
pg_last_event_id (SrvDb *db, GError **error)
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
  g_autoptr(PGresult) r = NULL;
  Params put = { 0 };
  Params get = { 0 };

  /* A node that lost the race waits on the winner's row, then reads the winner's value. */
  p_text (&put, op->name);
  p_text (&put, op->value);
  p_int (&put, srv_db_now (db));
  if (!exec (c, "INSERT INTO settings (name, value, created_at) VALUES ($1, $2, $3) "
                "ON CONFLICT (name) DO NOTHING", &put, error))
    return FALSE;
  p_text (&get, op->name);
  r = query (c, "SELECT value FROM settings WHERE name = $1", &get, error);
  if (r == NULL)
    return FALSE;
  if (PQntuples (r) == 0)
    return not_found (error, "setting");
  g_free (op->stored);
  op->stored = col_text (r, 0, 0);
  return TRUE;
}

static char *
pg_setting_once (SrvDb *db, const char *name, const char *value, GError **error)
{
  SettingOp op = { name, value, NULL };

  if (!run_txn (db, TXN_WRITE_DURABLE, setting_once_txn, &op, error))
    {
      g_free (op.stored);
      return NULL;
    }
  return op.stored;
}

const SrvDbVTable srv_db_pg_vtable = {
  .name = "postgresql",
  .shared = TRUE,
  .open = pg_open,
  .started = pg_start_listener,
  .close = pg_close,
  .schema_versions = pg_schema_versions,
  .check_integrity = pg_check_integrity,
  .create_identity = pg_create_identity,
  .get_identity = pg_get_identity,
  .register_photo = pg_register_photo,
  .get_photo = pg_get_photo,
  .list_photos = pg_list_photos,
  .delete_photo = pg_delete_photo,
  .lease_jobs = pg_lease_jobs,
  .complete_job = pg_complete_job,
  .fail_job = pg_fail_job,
  .requeue_leased = pg_requeue_leased,
  .lease_owners = pg_lease_owners,
  .set_photo_size = pg_set_photo_size,
  .queue_stats = pg_queue_stats,
  .events_since = pg_events_since,
  .prune_events = pg_prune_events,
  .last_event_id = pg_last_event_id,
  .setting_once = pg_setting_once,
};
