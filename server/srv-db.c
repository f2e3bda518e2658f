/* srv-db.c - catalog dispatch: argument checks, the clock, event wake-ups, ids, cursors, JSON
 *
 * Everything here is backend-independent; the backends (srv-db-sqlite.c, srv-db-pg.c) only
 * move rows. A caller's bad argument is refused here, so all backends refuse it alike.
 */
#define G_LOG_DOMAIN "magpied-db"

#include "config.h"

#include "srv-db.h"

#include <errno.h>
#include <gio/gio.h>
#include <string.h>
#include <sys/random.h>

#include "srv-migrations-resources.h"

#define SRV_DB_MIGRATIONS_PATH "/io/github/magpiegallery/Magpie/server/migrations"
#define SRV_DB_CURSOR_PREFIX "c1."

typedef struct {
  guint          id;
  SrvDbEventFunc func;
  gpointer       user_data;
  GDestroyNotify notify;
} EventWatch;

struct _SrvDb {
  const SrvDbVTable *vt;
  gpointer           backend;
  SrvDbClockFunc     clock;
  gpointer           clock_data;

  GMutex             event_lock;
  GCond              event_cond;
  guint64            event_generation;
  GArray            *watches;       /* EventWatch */
  guint              next_watch_id;
};

G_DEFINE_QUARK (srv-db-error-quark, srv_db_error)

static const struct {
  const char        *prefix;
  const SrvDbVTable *vt;
  gboolean           keep_prefix;  /* the backend wants the whole location (a libpq URI) */
} backends[] = {
  { "sqlite:", &srv_db_sqlite_vtable, FALSE },
  { "postgresql://", &srv_db_pg_vtable, TRUE },
  { "postgres://", &srv_db_pg_vtable, TRUE },
};

SrvDb *
srv_db_open (const char *location, GError **error)
{
  g_autoptr(SrvDb) db = NULL;
  const SrvDbVTable *vt = &srv_db_sqlite_vtable;
  const char *rest = location;

  g_return_val_if_fail (location != NULL, NULL);

  for (gsize i = 0; i < G_N_ELEMENTS (backends); i++)
    if (g_str_has_prefix (location, backends[i].prefix))
      {
        vt = backends[i].vt;
        rest = backends[i].keep_prefix ? location : location + strlen (backends[i].prefix);
      }
  /* "postgres:foo" is a typo for a URI far more often than a SQLite file by that name. */
  if (vt == &srv_db_sqlite_vtable &&
      (g_str_has_prefix (location, "postgres:") || g_str_has_prefix (location, "postgresql:")))
    {
      g_set_error (error, SRV_DB_ERROR, SRV_DB_ERROR_INVALID,
                   "'%s' is not a PostgreSQL URI: write postgresql://[user@]host[:port]/dbname",
                   location);
      return NULL;
    }
  if (*rest == '\0')
    {
      g_set_error (error, SRV_DB_ERROR, SRV_DB_ERROR_INVALID, "empty database location");
      return NULL;
    }

  db = g_new0 (SrvDb, 1);
  db->vt = vt;
  g_mutex_init (&db->event_lock);
  g_cond_init (&db->event_cond);
  db->watches = g_array_new (FALSE, FALSE, sizeof (EventWatch));
  db->next_watch_id = 1;
  db->backend = vt->open (db, rest, error);
  if (db->backend == NULL)
    return NULL;
  if (vt->started)
    vt->started (db);
  return g_steal_pointer (&db);
}

void
srv_db_close (SrvDb *db)
{
  if (db == NULL)
    return;
  if (db->backend != NULL)
    db->vt->close (db->backend);
  for (guint i = 0; i < db->watches->len; i++)
    {
      EventWatch *w = &g_array_index (db->watches, EventWatch, i);

      if (w->notify)
        w->notify (w->user_data);
    }
  g_array_unref (db->watches);
  g_mutex_clear (&db->event_lock);
  g_cond_clear (&db->event_cond);
  g_free (db);
}

const char *
srv_db_backend_name (SrvDb *db)
{
  return db->vt->name;
}

gboolean
srv_db_is_shared (SrvDb *db)
{
  return db->vt->shared;
}

char *
srv_db_location_for_display (const char *location)
{
  g_autoptr(GUri) uri = NULL;

  if (!g_str_has_prefix (location, "postgres"))
    return g_strdup (location);
  uri = g_uri_parse (location, G_URI_FLAGS_HAS_PASSWORD | G_URI_FLAGS_ENCODED, NULL);
  if (uri == NULL)
    return g_strdup ("(a PostgreSQL URI that does not parse)");
  /* libpq also takes password=... as a query parameter; leave the whole query out then. */
  if (g_uri_get_query (uri) != NULL && strstr (g_uri_get_query (uri), "password") != NULL)
    return g_uri_to_string_partial (uri, G_URI_HIDE_PASSWORD | G_URI_HIDE_QUERY);
  return g_uri_to_string_partial (uri, G_URI_HIDE_PASSWORD);
}

gpointer
srv_db_backend (SrvDb *db)
{
  return db->backend;
}

void
srv_db_set_clock (SrvDb *db, SrvDbClockFunc func, gpointer user_data)
{
  db->clock = func;
  db->clock_data = user_data;
}

gint64
srv_db_now (SrvDb *db)
{
  return db->clock ? db->clock (db->clock_data) : g_get_real_time ();
}

GArray *
srv_db_schema_versions (SrvDb *db, GError **error)
{
  return db->vt->schema_versions (db, error);
}

gboolean
srv_db_check_integrity (SrvDb *db, GError **error)
{
  return db->vt->check_integrity (db, error);
}

/* Arguments */

static gboolean
invalid (GError **error, const char *what)
{
  g_set_error (error, SRV_DB_ERROR, SRV_DB_ERROR_INVALID, "invalid %s", what);
  return FALSE;
}

static gboolean
is_text (const char *s)
{
  return s != NULL && *s != '\0' && g_utf8_validate (s, -1, NULL);
}

static gboolean
is_sha256_hex (const char *s)
{
  if (s == NULL || strlen (s) != 64)
    return FALSE;
  for (; *s; s++)
    if (!g_ascii_isdigit (*s) && !(*s >= 'a' && *s <= 'f'))
      return FALSE;
  return TRUE;
}

SrvIdentity *
srv_db_create_identity (SrvDb           *db,
                        SrvIdentityKind  kind,
                        const char      *username,
                        const char      *password_hash,
                        const char      *secret_hash,
                        GError         **error)
{
  g_autofree char *id = srv_db_new_id ();
  SrvIdentity identity = {
    .id = id, .kind = kind, .username = (char *) username,
    .password_hash = (char *) password_hash, .secret_hash = (char *) secret_hash,
    .created_at = srv_db_now (db),
  };

  g_return_val_if_fail (db != NULL, NULL);

  if (kind != SRV_IDENTITY_GUEST && kind != SRV_IDENTITY_ACCOUNT)
    return invalid (error, "identity kind"), NULL;
  if ((kind == SRV_IDENTITY_GUEST) != (username == NULL))
    return invalid (error, "username: accounts have one, guests none"), NULL;
  if (username != NULL && !is_text (username))
    return invalid (error, "username"), NULL;
  return db->vt->create_identity (db, &identity, error);
}

SrvIdentity *
srv_db_get_identity (SrvDb *db, const char *id, GError **error)
{
  g_return_val_if_fail (db != NULL && id != NULL, NULL);
  return db->vt->get_identity (db, id, NULL, error);
}

SrvIdentity *
srv_db_get_identity_by_username (SrvDb *db, const char *username, GError **error)
{
  g_return_val_if_fail (db != NULL && username != NULL, NULL);
  return db->vt->get_identity (db, NULL, username, error);
}

/* Photos */

SrvPhoto *
srv_db_register_photo (SrvDb      *db,
                       const char *identity_id,
                       const char *key,
                       gint64      size,
                       const char *content_type,
                       const char *sha256,
                       int         width,
                       int         height,
                       gboolean   *created,
                       GError    **error)
{
  g_autofree char *id = srv_db_new_id ();
  gboolean dummy;
  SrvPhoto photo = {
    .id = id, .identity_id = (char *) identity_id, .key = (char *) key, .size = size,
    .content_type = (char *) content_type, .width = width, .height = height,
    .sha256 = (char *) sha256, .state = SRV_PHOTO_QUEUED, .created_at = srv_db_now (db),
  };

  g_return_val_if_fail (db != NULL && identity_id != NULL, NULL);

  if (!is_text (key))
    return invalid (error, "key"), NULL;
  if (size < 0)
    return invalid (error, "size"), NULL;
  if (!is_text (content_type))
    return invalid (error, "content type"), NULL;
  if (!is_sha256_hex (sha256))
    return invalid (error, "sha256: want 64 lowercase hex digits"), NULL;
  if (width < 0 || height < 0)
    return invalid (error, "dimensions"), NULL;
  return db->vt->register_photo (db, &photo, created ? created : &dummy, error);
}

SrvPhoto *
srv_db_get_photo (SrvDb *db, const char *identity_id, const char *photo_id, GError **error)
{
  g_return_val_if_fail (db != NULL && identity_id != NULL && photo_id != NULL, NULL);
  return db->vt->get_photo (db, identity_id, photo_id, error);
}

GPtrArray *
srv_db_list_photos (SrvDb               *db,
                    const char          *identity_id,
                    const SrvPhotoQuery *query,
                    char               **next_cursor,
                    GError             **error)
{
  g_autofree char *after_id = NULL;
  g_autofree char *dummy = NULL;
  gint64 after_created_at = 0;

  g_return_val_if_fail (db != NULL && identity_id != NULL && query != NULL, NULL);

  if (next_cursor == NULL)
    next_cursor = &dummy;
  *next_cursor = NULL;
  if (query->limit < 1 || query->limit > SRV_DB_LIST_LIMIT_MAX)
    return invalid (error, "limit: want 1 to " G_STRINGIFY (SRV_DB_LIST_LIMIT_MAX)), NULL;
  if (query->tag != NULL && !is_text (query->tag))
    return invalid (error, "tag"), NULL;
  if (!(query->min_confidence >= 0 && query->min_confidence <= 1))
    return invalid (error, "min_confidence: want 0 to 1"), NULL;
  if (query->cursor != NULL &&
      !srv_db_cursor_decode (query->cursor, &after_created_at, &after_id))
    return invalid (error, "cursor"), NULL;
  return db->vt->list_photos (db, identity_id, query, after_created_at, after_id, next_cursor,
                              error);
}

char *
srv_db_delete_photo (SrvDb *db, const char *identity_id, const char *photo_id, GError **error)
{
  g_return_val_if_fail (db != NULL && identity_id != NULL && photo_id != NULL, NULL);
  return db->vt->delete_photo (db, identity_id, photo_id, error);
}

/* Jobs */

GPtrArray *
srv_db_lease_jobs (SrvDb      *db,
                   const char *owner,
                   guint       max_n,
                   gint64      visibility_timeout_us,
                   GError    **error)
{
  g_return_val_if_fail (db != NULL, NULL);

  if (!is_text (owner))
    return invalid (error, "lease owner"), NULL;
  if (max_n == 0)
    return g_ptr_array_new_with_free_func ((GDestroyNotify) srv_job_free);
  if (visibility_timeout_us <= 0)
    return invalid (error, "visibility timeout"), NULL;
  return db->vt->lease_jobs (db, owner, max_n, visibility_timeout_us, error);
}

gboolean
srv_db_complete_job (SrvDb        *db,
                     const char   *job_id,
                     const char   *owner,
                     const char   *model,
                     const SrvTag *tags,
                     guint         n_tags,
                     gboolean     *applied,
                     GError      **error)
{
  gboolean dummy;

  g_return_val_if_fail (db != NULL && job_id != NULL, FALSE);

  if (!is_text (owner))
    return invalid (error, "lease owner");
  if (!is_text (model))
    return invalid (error, "model name");
  for (guint i = 0; i < n_tags; i++)
    {
      if (!is_text (tags[i].label))
        return invalid (error, "tag label");
      if (!(tags[i].confidence >= 0 && tags[i].confidence <= 1))
        return invalid (error, "tag confidence: want 0 to 1");
    }
  return db->vt->complete_job (db, job_id, owner, model, tags, n_tags,
                               applied ? applied : &dummy, error);
}

gboolean
srv_db_fail_job (SrvDb       *db,
                 const char  *job_id,
                 const char  *owner,
                 const char  *error_message,
                 gboolean     retryable,
                 SrvJobState *new_state,
                 GError     **error)
{
  SrvJobState dummy;

  g_return_val_if_fail (db != NULL && job_id != NULL, FALSE);

  if (!is_text (owner))
    return invalid (error, "lease owner");
  if (!is_text (error_message))
    return invalid (error, "error message");
  return db->vt->fail_job (db, job_id, owner, error_message, retryable,
                           new_state ? new_state : &dummy, error);
}

gint64
srv_db_requeue_leased (SrvDb *db, GError **error)
{
  g_return_val_if_fail (db != NULL, -1);
  return db->vt->requeue_leased (db, NULL, error);
}

gint64
srv_db_requeue_owner (SrvDb *db, const char *owner, GError **error)
{
  g_return_val_if_fail (db != NULL, -1);
  if (!is_text (owner))
    return invalid (error, "lease owner"), -1;
  return db->vt->requeue_leased (db, owner, error);
}

GPtrArray *
srv_db_lease_owners (SrvDb *db, GError **error)
{
  g_return_val_if_fail (db != NULL, NULL);
  return db->vt->lease_owners (db, error);
}

gboolean
srv_db_set_photo_size (SrvDb *db, const char *photo_id, int width, int height, GError **error)
{
  g_return_val_if_fail (db != NULL && photo_id != NULL, FALSE);
  if (width < 0 || height < 0)
    {
      g_set_error (error, SRV_DB_ERROR, SRV_DB_ERROR_INVALID, "invalid size %dx%d", width,
                   height);
      return FALSE;
    }
  return db->vt->set_photo_size (db, photo_id, width, height, error);
}

gboolean
srv_db_queue_stats (SrvDb *db, SrvQueueStats *stats, GError **error)
{
  g_return_val_if_fail (db != NULL && stats != NULL, FALSE);
  memset (stats, 0, sizeof *stats);
  return db->vt->queue_stats (db, stats, error);
}

gint64
srv_db_backoff_us (int attempts, double jitter)
{
  gint64 delay = SRV_DB_BACKOFF_BASE_US;

  for (int i = 1; i < attempts && delay < SRV_DB_BACKOFF_CAP_US; i++)
    delay *= 2;
  delay = MIN (delay, SRV_DB_BACKOFF_CAP_US);
  /* Equal jitter: at least half the delay (the backoff still backs off), the rest random so
   * jobs that failed together (the store went away) do not come back together. */
  return delay / 2 + (gint64) (CLAMP (jitter, 0.0, 1.0) * (delay / 2));
}

/* Events */

GPtrArray *
srv_db_events_since (SrvDb      *db,
                     const char *identity_id,
                     gint64      last_id,
                     guint       limit,
                     GError    **error)
{
  g_return_val_if_fail (db != NULL && identity_id != NULL, NULL);

  if (limit == 0)
    return invalid (error, "limit"), NULL;
  return db->vt->events_since (db, identity_id, MAX (last_id, 0), limit, error);
}

gint64
srv_db_prune_events (SrvDb *db, GError **error)
{
  g_return_val_if_fail (db != NULL, -1);
  return db->vt->prune_events (db, srv_db_now (db) - SRV_DB_EVENT_RETENTION_US, error);
}

gint64
srv_db_last_event_id (SrvDb *db, GError **error)
{
  g_return_val_if_fail (db != NULL, -1);
  return db->vt->last_event_id (db, error);
}

char *
srv_db_setting_once (SrvDb      *db,
                     const char *name,
                     const char *value_if_absent,
                     GError    **error)
{
  g_return_val_if_fail (db != NULL, NULL);
  if (!is_text (name))
    return invalid (error, "setting name"), NULL;
  if (!is_text (value_if_absent))
    return invalid (error, "setting value"), NULL;
  return db->vt->setting_once (db, name, value_if_absent, error);
}

guint
srv_db_add_event_watch (SrvDb         *db,
                        SrvDbEventFunc func,
                        gpointer       user_data,
                        GDestroyNotify notify)
{
  EventWatch w = { 0, func, user_data, notify };

  g_return_val_if_fail (db != NULL && func != NULL, 0);

  g_mutex_lock (&db->event_lock);
  w.id = db->next_watch_id++;
  g_array_append_val (db->watches, w);
  g_mutex_unlock (&db->event_lock);
  return w.id;
}

void
srv_db_remove_event_watch (SrvDb *db, guint watch_id)
{
  EventWatch found = { 0 };

  g_mutex_lock (&db->event_lock);
  for (guint i = 0; i < db->watches->len; i++)
    if (g_array_index (db->watches, EventWatch, i).id == watch_id)
      {
        found = g_array_index (db->watches, EventWatch, i);
        g_array_remove_index (db->watches, i);
        break;
      }
  g_mutex_unlock (&db->event_lock);
  if (found.notify)
    found.notify (found.user_data);
}

void
srv_db_events_committed (SrvDb *db, const char *identity_id, gint64 event_id)
{
  /* Callbacks run under the lock so that once remove_event_watch() returns, its callback
   * never runs again; the contract keeps them short and away from the watch functions. */
  g_mutex_lock (&db->event_lock);
  db->event_generation++;
  g_cond_broadcast (&db->event_cond);
  for (guint i = 0; i < db->watches->len; i++)
    {
      EventWatch *w = &g_array_index (db->watches, EventWatch, i);

      w->func (identity_id, event_id, w->user_data);
    }
  g_mutex_unlock (&db->event_lock);
}

guint64
srv_db_event_generation (SrvDb *db)
{
  guint64 generation;

  g_mutex_lock (&db->event_lock);
  generation = db->event_generation;
  g_mutex_unlock (&db->event_lock);
  return generation;
}

guint64
srv_db_wait_events (SrvDb *db, guint64 seen, gint64 timeout_us)
{
  gint64 deadline = g_get_monotonic_time () + timeout_us;
  guint64 generation;

  g_mutex_lock (&db->event_lock);
  while (db->event_generation == seen)
    if (!g_cond_wait_until (&db->event_cond, &db->event_lock, deadline))
      break;
  generation = db->event_generation;
  g_mutex_unlock (&db->event_lock);
  return generation;
}

/* Ids, cursors, migrations */

char *
srv_db_new_id (void)
{
  guint8 bytes[16];
  gsize got = 0;
  char *id;

  while (got < sizeof bytes)
    {
      ssize_t n = getrandom (bytes + got, sizeof bytes - got, 0);

      if (n > 0)
        got += n;
      else
        g_assert (errno == EINTR);
    }
  id = g_base64_encode (bytes, sizeof bytes);
  g_strdelimit (id, "+", '-');
  g_strdelimit (id, "/", '_');
  id[22] = '\0';  /* drop the "==" padding */
  return id;
}

char *
srv_db_cursor_encode (gint64 created_at, const char *id)
{
  g_autofree char *plain = g_strdup_printf ("%" G_GINT64_FORMAT ":%s", created_at, id);
  g_autofree char *b64 = g_base64_encode ((const guchar *) plain, strlen (plain));

  g_strdelimit (b64, "+", '-');
  g_strdelimit (b64, "/", '_');
  g_strdelimit (b64, "=", '.');
  return g_strconcat (SRV_DB_CURSOR_PREFIX, b64, NULL);
}

gboolean
srv_db_cursor_decode (const char *cursor, gint64 *created_at, char **id)
{
  g_autofree char *b64 = NULL;
  g_autofree guchar *plain = NULL;
  g_autofree char *text = NULL;
  const char *colon;
  char *end;
  gsize len = 0;

  if (!g_str_has_prefix (cursor, SRV_DB_CURSOR_PREFIX))
    return FALSE;
  b64 = g_strdup (cursor + strlen (SRV_DB_CURSOR_PREFIX));
  if (*b64 == '\0' || strlen (b64) % 4 != 0 ||
      strspn (b64, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.") !=
        strlen (b64))
    return FALSE;
  g_strdelimit (b64, "-", '+');
  g_strdelimit (b64, "_", '/');
  g_strdelimit (b64, ".", '=');
  plain = g_base64_decode (b64, &len);
  text = g_strndup ((const char *) plain, len);
  if (strlen (text) != len || (colon = strchr (text, ':')) == NULL || colon[1] == '\0')
    return FALSE;
  *created_at = g_ascii_strtoll (text, &end, 10);
  if (end != colon || end == text)
    return FALSE;
  *id = g_strdup (colon + 1);
  return TRUE;
}

static void
migration_free (SrvDbMigration *m)
{
  g_free (m->name);
  g_free (m->sql);
  g_free (m);
}

static int
migration_cmp (gconstpointer a, gconstpointer b)
{
  const SrvDbMigration *ma = *(SrvDbMigration * const *) a;
  const SrvDbMigration *mb = *(SrvDbMigration * const *) b;

  return (ma->version > mb->version) - (ma->version < mb->version);
}

GPtrArray *
srv_db_migrations (const char *dialect, GError **error)
{
  g_autofree char *dir = g_strconcat (SRV_DB_MIGRATIONS_PATH "/", dialect, "/", NULL);
  g_autoptr(GPtrArray) list = g_ptr_array_new_with_free_func ((GDestroyNotify) migration_free);
  g_auto(GStrv) names = NULL;
  GResource *resource = srv_migrations_get_resource ();

  names = g_resource_enumerate_children (resource, dir, G_RESOURCE_LOOKUP_FLAGS_NONE, error);
  if (names == NULL)
    return NULL;
  for (char **n = names; *n; n++)
    {
      g_autofree char *path = g_strconcat (dir, *n, NULL);
      g_autoptr(GBytes) bytes = NULL;
      SrvDbMigration *m;
      char *end;

      if (!g_str_has_suffix (*n, ".sql"))
        continue;
      bytes = g_resource_lookup_data (resource, path, G_RESOURCE_LOOKUP_FLAGS_NONE, error);
      if (bytes == NULL)
        return NULL;
      m = g_new0 (SrvDbMigration, 1);
      m->version = (int) g_ascii_strtoll (*n, &end, 10);
      m->name = g_strdup (*n);
      m->sql = g_strndup (g_bytes_get_data (bytes, NULL), g_bytes_get_size (bytes));
      g_ptr_array_add (list, m);
      if (*end != '_' || m->version <= 0)
        {
          g_set_error (error, SRV_DB_ERROR, SRV_DB_ERROR_INTERNAL,
                       "migration %s is not named NNN_what.sql", *n);
          return NULL;
        }
    }
  g_ptr_array_sort (list, migration_cmp);
  for (guint i = 1; i < list->len; i++)
    if (((SrvDbMigration *) list->pdata[i])->version ==
        ((SrvDbMigration *) list->pdata[i - 1])->version)
      {
        g_set_error (error, SRV_DB_ERROR, SRV_DB_ERROR_INTERNAL, "two migrations numbered %d",
                     ((SrvDbMigration *) list->pdata[i])->version);
        return NULL;
      }
  return g_steal_pointer (&list);
}

/* Names and JSON */

const char *
srv_photo_state_to_string (SrvPhotoState state)
{
  static const char *names[] = { "queued", "tagging", "tagged", "failed" };

  g_return_val_if_fail ((guint) state < G_N_ELEMENTS (names), NULL);
  return names[state];
}

const char *
srv_job_state_to_string (SrvJobState state)
{
  static const char *names[] = { "queued", "leased", "done", "dead" };

  g_return_val_if_fail ((guint) state < G_N_ELEMENTS (names), NULL);
  return names[state];
}

const char *
srv_event_type_to_string (SrvEventType type)
{
  static const char *names[] = { "photo.created", "photo.tagged", "photo.failed",
                                 "photo.deleted" };

  g_return_val_if_fail ((guint) type < G_N_ELEMENTS (names), NULL);
  return names[type];
}

/* The inverses, for backends reading rows: an unknown name reads as the first state. */
SrvPhotoState
srv_photo_state_from_string (const char *s)
{
  if (g_strcmp0 (s, "tagging") == 0)
    return SRV_PHOTO_TAGGING;
  if (g_strcmp0 (s, "tagged") == 0)
    return SRV_PHOTO_TAGGED;
  if (g_strcmp0 (s, "failed") == 0)
    return SRV_PHOTO_FAILED;
  return SRV_PHOTO_QUEUED;
}

SrvJobState
srv_job_state_from_string (const char *s)
{
  if (g_strcmp0 (s, "leased") == 0)
    return SRV_JOB_LEASED;
  if (g_strcmp0 (s, "done") == 0)
    return SRV_JOB_DONE;
  if (g_strcmp0 (s, "dead") == 0)
    return SRV_JOB_DEAD;
  return SRV_JOB_QUEUED;
}

SrvEventType
srv_event_type_from_string (const char *s)
{
  if (g_strcmp0 (s, "photo.tagged") == 0)
    return SRV_EVENT_PHOTO_TAGGED;
  if (g_strcmp0 (s, "photo.failed") == 0)
    return SRV_EVENT_PHOTO_FAILED;
  if (g_strcmp0 (s, "photo.deleted") == 0)
    return SRV_EVENT_PHOTO_DELETED;
  return SRV_EVENT_PHOTO_CREATED;
}

/* RFC 3339 in UTC with microseconds, "2026-11-23T09:44:55.123456Z". */
static char *
format_time (gint64 us)
{
  g_autoptr(GDateTime) dt = g_date_time_new_from_unix_utc (us / G_USEC_PER_SEC);
  g_autofree char *base = NULL;

  if (dt == NULL)
    return NULL;
  base = g_date_time_format (dt, "%Y-%m-%dT%H:%M:%S");
  return g_strdup_printf ("%s.%06dZ", base, (int) (us % G_USEC_PER_SEC));
}

static void
add_string_or_null (JsonBuilder *b, const char *name, const char *value)
{
  json_builder_set_member_name (b, name);
  if (value)
    json_builder_add_string_value (b, value);
  else
    json_builder_add_null_value (b);
}

static void
add_time_or_null (JsonBuilder *b, const char *name, gint64 us)
{
  g_autofree char *text = us > 0 ? format_time (us) : NULL;

  add_string_or_null (b, name, text);
}

JsonNode *
srv_photo_to_json_node (const SrvPhoto *photo)
{
  g_autoptr(JsonBuilder) b = json_builder_new_immutable ();

  g_return_val_if_fail (photo != NULL, NULL);

  json_builder_begin_object (b);
  add_string_or_null (b, "id", photo->id);
  add_string_or_null (b, "key", photo->key);
  json_builder_set_member_name (b, "size");
  json_builder_add_int_value (b, photo->size);
  add_string_or_null (b, "content_type", photo->content_type);
  json_builder_set_member_name (b, "width");
  json_builder_add_int_value (b, photo->width);
  json_builder_set_member_name (b, "height");
  json_builder_add_int_value (b, photo->height);
  add_string_or_null (b, "sha256", photo->sha256);
  add_string_or_null (b, "state", srv_photo_state_to_string (photo->state));
  json_builder_set_member_name (b, "tags");
  json_builder_begin_array (b);
  for (guint i = 0; photo->tags && i < photo->tags->len; i++)
    {
      const SrvTag *t = &g_array_index (photo->tags, SrvTag, i);

      json_builder_begin_object (b);
      add_string_or_null (b, "label", t->label);
      json_builder_set_member_name (b, "confidence");
      json_builder_add_double_value (b, t->confidence);
      json_builder_end_object (b);
    }
  json_builder_end_array (b);
  add_string_or_null (b, "model", photo->model);
  add_time_or_null (b, "created_at", photo->created_at);
  add_time_or_null (b, "tagged_at", photo->tagged_at);
  add_string_or_null (b, "error", photo->error);
  json_builder_end_object (b);
  return json_builder_get_root (b);
}

char *
srv_photo_to_json (const SrvPhoto *photo)
{
  g_autoptr(JsonNode) node = srv_photo_to_json_node (photo);

  return json_to_string (node, FALSE);
}

/* Ownership */

SrvIdentity *
srv_identity_copy (const SrvIdentity *identity)
{
  SrvIdentity *copy = g_memdup2 (identity, sizeof *identity);

  copy->id = g_strdup (identity->id);
  copy->username = g_strdup (identity->username);
  copy->password_hash = g_strdup (identity->password_hash);
  copy->secret_hash = g_strdup (identity->secret_hash);
  return copy;
}

void
srv_identity_free (SrvIdentity *identity)
{
  if (identity == NULL)
    return;
  g_free (identity->id);
  g_free (identity->username);
  g_free (identity->password_hash);
  g_free (identity->secret_hash);
  g_free (identity);
}

static void
tag_clear (SrvTag *tag)
{
  g_free (tag->label);
}

void
srv_photo_free (SrvPhoto *photo)
{
  if (photo == NULL)
    return;
  g_free (photo->id);
  g_free (photo->identity_id);
  g_free (photo->key);
  g_free (photo->content_type);
  g_free (photo->sha256);
  g_free (photo->model);
  g_free (photo->error);
  g_clear_pointer (&photo->tags, g_array_unref);
  g_free (photo);
}

GArray *
srv_tag_array_new (void)
{
  GArray *tags = g_array_new (FALSE, TRUE, sizeof (SrvTag));

  g_array_set_clear_func (tags, (GDestroyNotify) tag_clear);
  return tags;
}

void
srv_job_free (SrvJob *job)
{
  if (job == NULL)
    return;
  g_free (job->id);
  g_free (job->photo_id);
  g_free (job->identity_id);
  g_free (job->photo_key);
  g_free (job->lease_owner);
  g_free (job->last_error);
  g_free (job);
}

void
srv_event_free (SrvEvent *event)
{
  if (event == NULL)
    return;
  g_free (event->identity_id);
  g_free (event->data);
  g_free (event);
}
