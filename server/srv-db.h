/* srv-db.h - magpied's catalog and job queue: identities, photos, tags, jobs, events
 *
 * One API over interchangeable backends (SQLite, PostgreSQL), chosen by the location given to
 * srv_db_open(). Every call is synchronous and safe from any thread. Times are integer
 * microseconds since the Unix epoch, UTC (g_get_real_time() units); JSON shows them as RFC 3339.
 */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>

#include "srv-token.h"

G_BEGIN_DECLS

#define SRV_DB_ERROR (srv_db_error_quark ())

typedef enum {
  SRV_DB_ERROR_NOT_FOUND,  /* no such row, or it belongs to another identity */
  SRV_DB_ERROR_CONFLICT,   /* a unique value is taken, or a job lease was lost */
  SRV_DB_ERROR_INVALID,    /* an argument the schema rejects (bad cursor, limit, tag) */
  SRV_DB_ERROR_BUSY,       /* the database stayed locked past the retries: try again later */
  SRV_DB_ERROR_INTERNAL,   /* I/O error, corruption, a bug */
} SrvDbError;

/* Retries back off exponentially from 2 s (a worker crash or an object-store hiccup usually
 * clears within seconds) up to 5 min (past that a retry is no longer "soon"; max_attempts is
 * what ends a hopeless job). */
#define SRV_DB_BACKOFF_BASE_US   (2 * G_USEC_PER_SEC)
#define SRV_DB_BACKOFF_CAP_US    (5 * 60 * G_USEC_PER_SEC)
/* Five leases: enough to ride out a restart or two and a flaky store, few enough that a photo
 * that crashes the decoder is dead-lettered within minutes. */
#define SRV_DB_JOB_MAX_ATTEMPTS  5
/* Events are kept a week so a laptop closed over a long weekend still resumes its stream with
 * Last-Event-ID; a client further behind re-lists its photos instead. */
#define SRV_DB_EVENT_RETENTION_US ((gint64) 7 * 24 * 3600 * G_USEC_PER_SEC)
#define SRV_DB_LIST_LIMIT_MAX    200

typedef struct _SrvDb SrvDb;

/* SrvIdentityKind comes from srv-token.h: tokens carry the kind, the catalog stores it. */

typedef struct {
  char            *id;             /* 22 chars, base64url of 128 random bits */
  SrvIdentityKind  kind;
  char            *username;       /* NULL for guests; unique ignoring ASCII case */
  char            *password_hash;  /* argon2id string, opaque here; NULL for guests */
  char            *secret_hash;
  gint64           created_at;
  gboolean         disabled;
} SrvIdentity;

typedef enum {
  SRV_PHOTO_QUEUED,
  SRV_PHOTO_TAGGING,
  SRV_PHOTO_TAGGED,
  SRV_PHOTO_FAILED,
} SrvPhotoState;

typedef struct {
  char   *label;
  double  confidence;  /* 0..1 */
} SrvTag;

typedef struct {
  char          *id;
  char          *identity_id;
  char          *key;           /* object key in the store, unique */
  gint64         size;
  char          *content_type;
  int            width;
  int            height;
  char          *sha256;        /* lowercase hex */
  SrvPhotoState  state;
  char          *model;         /* NULL until tagged */
  char          *error;         /* NULL unless failed */
  gint64         created_at;
  gint64         tagged_at;     /* 0 until tagged */
  GArray        *tags;          /* SrvTag, best first */
} SrvPhoto;

typedef struct {
  const char *tag;             /* NULL: any; else an exact label, ASCII case ignored */
  double      min_confidence;  /* > 0: only photos with such a tag (matching @tag if set) */
  guint       limit;           /* 1..SRV_DB_LIST_LIMIT_MAX */
  const char *cursor;          /* NULL for the first page, else a next_cursor */
  const char *key;             /* NULL: any; else only the photo stored under this key */
} SrvPhotoQuery;

typedef enum {
  SRV_JOB_QUEUED,
  SRV_JOB_LEASED,
  SRV_JOB_DONE,
  SRV_JOB_DEAD,
} SrvJobState;

typedef struct {
  char        *id;
  char        *photo_id;
  char        *identity_id;   /* of the photo, so a worker needs no second lookup */
  char        *photo_key;
  SrvJobState  state;
  int          attempts;      /* leases so far, this one included */
  int          max_attempts;
  gint64       not_before;
  char        *lease_owner;
  gint64       lease_expires_at;
  char        *last_error;
  gint64       created_at;
  gint64       updated_at;
} SrvJob;

typedef struct {
  gint64 queued;     /* gauges, counted over an index */
  gint64 leased;
  gint64 done;       /* monotonic totals since the database was created */
  gint64 dead;
  gint64 retried;
  gint64 expired;    /* leases that ran out and were taken again */
} SrvQueueStats;

typedef enum {
  SRV_EVENT_PHOTO_CREATED,
  SRV_EVENT_PHOTO_TAGGED,
  SRV_EVENT_PHOTO_FAILED,
  SRV_EVENT_PHOTO_DELETED,
} SrvEventType;

typedef struct {
  gint64        id;           /* strictly increasing in commit order */
  char         *identity_id;
  SrvEventType  type;
  char         *data;         /* srv_photo_to_json() of the photo at that moment */
  gint64        created_at;
} SrvEvent;

typedef gint64 (*SrvDbClockFunc) (gpointer user_data);
/* Runs on the committing thread right after the commit; must not call back into the watch
 * functions (hand the news to a main context with g_main_context_invoke() instead). */
typedef void   (*SrvDbEventFunc) (const char *identity_id,
                                  gint64      event_id,
                                  gpointer    user_data);

GQuark       srv_db_error_quark           (void);

/* Opens (creating and migrating) "sqlite:PATH", a plain PATH, or a libpq URI
 * "postgresql://..." / "postgres://..." (the database must exist; its tables are made here). */
SrvDb       *srv_db_open                  (const char          *location,
                                           GError             **error);
/* Call once no other thread uses @db any more. */
void         srv_db_close                 (SrvDb               *db);
const char  *srv_db_backend_name          (SrvDb               *db);
/* TRUE when other processes (other nodes) may use the same catalog at once: PostgreSQL. */
gboolean     srv_db_is_shared             (SrvDb               *db);
/* @location as it may be logged: a password in a URI is left out. */
char        *srv_db_location_for_display  (const char          *location);
/* Replaces the wall clock (tests); NULL restores it. Set before other threads use @db. */
void         srv_db_set_clock             (SrvDb               *db,
                                           SrvDbClockFunc       func,
                                           gpointer             user_data);
gint64       srv_db_now                   (SrvDb               *db);
/* Versions of the applied migrations, ascending. */
GArray      *srv_db_schema_versions       (SrvDb               *db,
                                           GError             **error);
/* FALSE with the backend's complaint in @error when the store is damaged. */
gboolean     srv_db_check_integrity       (SrvDb               *db,
                                           GError             **error);

/* CONFLICT when @username is taken; INVALID when a guest has a username or an account none. */
SrvIdentity *srv_db_create_identity       (SrvDb               *db,
                                           SrvIdentityKind      kind,
                                           const char          *username,
                                           const char          *password_hash,
                                           const char          *secret_hash,
                                           GError             **error);
SrvIdentity *srv_db_get_identity          (SrvDb               *db,
                                           const char          *id,
                                           GError             **error);
SrvIdentity *srv_db_get_identity_by_username (SrvDb            *db,
                                           const char          *username,
                                           GError             **error);

/* Idempotent by @key: the first call stores the photo, its job and a photo.created event in
 * one transaction (*created = TRUE); later calls return the stored photo (*created = FALSE).
 * CONFLICT when another identity owns @key, NOT_FOUND when @identity_id does not exist. */
SrvPhoto    *srv_db_register_photo        (SrvDb               *db,
                                           const char          *identity_id,
                                           const char          *key,
                                           gint64               size,
                                           const char          *content_type,
                                           const char          *sha256,
                                           int                  width,
                                           int                  height,
                                           gboolean            *created,
                                           GError             **error);
/* NOT_FOUND also when the photo belongs to another identity. */
SrvPhoto    *srv_db_get_photo             (SrvDb               *db,
                                           const char          *identity_id,
                                           const char          *photo_id,
                                           GError             **error);
/* Newest first (created_at, then id, descending) as SrvPhoto*; *next_cursor is NULL on the
 * last page. INVALID for a bad limit or a cursor this API did not make. */
GPtrArray   *srv_db_list_photos           (SrvDb               *db,
                                           const char          *identity_id,
                                           const SrvPhotoQuery *query,
                                           char               **next_cursor,
                                           GError             **error);
/* Removes the photo, its tags and job, records photo.deleted; returns the object key so the
 * caller deletes the object. NOT_FOUND for another identity's photo. */
char        *srv_db_delete_photo          (SrvDb               *db,
                                           const char          *identity_id,
                                           const char          *photo_id,
                                           GError             **error);

/* Leases up to @max_n due jobs (queued and not_before <= now, or leased with an expired lease)
 * to @owner for @visibility_timeout_us; each lease is an attempt. An expired lease that used the
 * last attempt dead-letters the job instead. Returns SrvJob*, possibly none. */
GPtrArray   *srv_db_lease_jobs            (SrvDb               *db,
                                           const char          *owner,
                                           guint                max_n,
                                           gint64               visibility_timeout_us,
                                           GError             **error);
/* Stores @tags as the photo's one tag set and marks the job done. When the photo already has a
 * tag set (a duplicate delivery) only the job is marked done and *applied is FALSE. Accepted
 * from any @owner, even after the lease ran out or the job was dead-lettered: the work is real.
 * NOT_FOUND when the job is gone (its photo was deleted). */
gboolean     srv_db_complete_job          (SrvDb               *db,
                                           const char          *job_id,
                                           const char          *owner,
                                           const char          *model,
                                           const SrvTag        *tags,
                                           guint                n_tags,
                                           gboolean            *applied,
                                           GError             **error);
/* Requeues with backoff when @retryable and attempts remain, else dead-letters (photo failed,
 * photo.failed event); *new_state says which. CONFLICT when @owner no longer holds the lease. */
gboolean     srv_db_fail_job              (SrvDb               *db,
                                           const char          *job_id,
                                           const char          *owner,
                                           const char          *error_message,
                                           gboolean             retryable,
                                           SrvJobState         *new_state,
                                           GError             **error);
/* Records the dimensions a worker decoded (photos are registered before anyone has looked at
 * their pixels). NOT_FOUND when the photo is gone; INVALID for negative sizes. */
gboolean     srv_db_set_photo_size        (SrvDb               *db,
                                           const char          *photo_id,
                                           int                  width,
                                           int                  height,
                                           GError             **error);
/* At start-up: every leased job back to queued, due now. Returns how many, -1 on error. */
gint64       srv_db_requeue_leased        (SrvDb               *db,
                                           GError             **error);
/* The same for the jobs leased to @owner only (a process known to be dead), for catalogs that
 * other processes share. */
gint64       srv_db_requeue_owner         (SrvDb               *db,
                                           const char          *owner,
                                           GError             **error);
/* The distinct owners of the leased jobs (char*), so a node can find its dead predecessors. */
GPtrArray   *srv_db_lease_owners          (SrvDb               *db,
                                           GError             **error);
gboolean     srv_db_queue_stats           (SrvDb               *db,
                                           SrvQueueStats       *stats,
                                           GError             **error);
/* Delay before retry number @attempts (1 = after the first failure): exponential from
 * SRV_DB_BACKOFF_BASE_US, capped, then "equal jitter" with @jitter in [0, 1]. */
gint64       srv_db_backoff_us            (int                  attempts,
                                           double               jitter);

/* Events of @identity_id with id > @last_id, oldest first, at most @limit (SrvEvent*). */
GPtrArray   *srv_db_events_since          (SrvDb               *db,
                                           const char          *identity_id,
                                           gint64               last_id,
                                           guint                limit,
                                           GError             **error);
/* Deletes events older than SRV_DB_EVENT_RETENTION_US, always keeping the newest one so ids
 * never restart. Returns how many, -1 on error. */
gint64       srv_db_prune_events          (SrvDb               *db,
                                           GError             **error);
/* The newest event id of anyone (0 when there is none), -1 on error: a stream that starts
 * without Last-Event-ID starts after it. */
gint64       srv_db_last_event_id         (SrvDb               *db,
                                           GError             **error);
guint        srv_db_add_event_watch       (SrvDb               *db,
                                           SrvDbEventFunc       func,
                                           gpointer             user_data,
                                           GDestroyNotify       notify);
void         srv_db_remove_event_watch    (SrvDb               *db,
                                           guint                watch_id);
/* Blocks until events newer than generation @seen commit or @timeout_us passes; returns the
 * current generation (start with srv_db_event_generation()). */
guint64      srv_db_event_generation      (SrvDb               *db);
guint64      srv_db_wait_events           (SrvDb               *db,
                                           guint64              seen,
                                           gint64               timeout_us);

/* The setting @name: stored as @value_if_absent by the first caller, whatever every later one
 * proposes, so nodes that start together still agree. Returns the stored value. */
char        *srv_db_setting_once          (SrvDb               *db,
                                           const char          *name,
                                           const char          *value_if_absent,
                                           GError             **error);

/* The photo as clients see it: {"id","key",...,"tags":[{"label","confidence"}],...}. */
JsonNode    *srv_photo_to_json_node       (const SrvPhoto      *photo);
char        *srv_photo_to_json            (const SrvPhoto      *photo);
const char  *srv_photo_state_to_string    (SrvPhotoState        state);
const char  *srv_job_state_to_string      (SrvJobState          state);
const char  *srv_event_type_to_string     (SrvEventType         type);
char        *srv_db_new_id                (void);

void         srv_identity_free            (SrvIdentity         *identity);
void         srv_photo_free               (SrvPhoto            *photo);
void         srv_job_free                 (SrvJob              *job);
void         srv_event_free               (SrvEvent            *event);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (SrvDb, srv_db_close)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SrvIdentity, srv_identity_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SrvPhoto, srv_photo_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SrvJob, srv_job_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SrvEvent, srv_event_free)

/* The backend side, Redis ae_*.c style: each backend fills one table and keeps its state in
 * the pointer open() returns. Dispatch validates arguments first, so backends may assume them. */
typedef struct {
  const char  *name;
  gboolean     shared;            /* several processes use one catalog (srv_db_is_shared) */
  gpointer   (*open)              (SrvDb *db, const char *location, GError **error);
  /* Optional: runs once srv_db_backend() answers, before srv_db_open() returns. */
  void       (*started)           (SrvDb *db);
  void       (*close)             (gpointer backend);
  GArray    *(*schema_versions)   (SrvDb *db, GError **error);
  gboolean   (*check_integrity)   (SrvDb *db, GError **error);
  SrvIdentity *(*create_identity) (SrvDb *db, const SrvIdentity *identity, GError **error);
  SrvIdentity *(*get_identity)    (SrvDb *db, const char *id, const char *username,
                                   GError **error);
  SrvPhoto  *(*register_photo)    (SrvDb *db, const SrvPhoto *photo, gboolean *created,
                                   GError **error);
  SrvPhoto  *(*get_photo)         (SrvDb *db, const char *identity_id, const char *photo_id,
                                   GError **error);
  GPtrArray *(*list_photos)       (SrvDb *db, const char *identity_id, const SrvPhotoQuery *query,
                                   gint64 after_created_at, const char *after_id,
                                   char **next_cursor, GError **error);
  char      *(*delete_photo)      (SrvDb *db, const char *identity_id, const char *photo_id,
                                   GError **error);
  GPtrArray *(*lease_jobs)        (SrvDb *db, const char *owner, guint max_n,
                                   gint64 visibility_timeout_us, GError **error);
  gboolean   (*complete_job)      (SrvDb *db, const char *job_id, const char *owner,
                                   const char *model, const SrvTag *tags, guint n_tags,
                                   gboolean *applied, GError **error);
  gboolean   (*fail_job)          (SrvDb *db, const char *job_id, const char *owner,
                                   const char *error_message, gboolean retryable,
                                   SrvJobState *new_state, GError **error);
  /* @owner NULL: every leased job. */
  gint64     (*requeue_leased)    (SrvDb *db, const char *owner, GError **error);
  GPtrArray *(*lease_owners)      (SrvDb *db, GError **error);
  gboolean   (*set_photo_size)    (SrvDb *db, const char *photo_id, int width, int height,
                                   GError **error);
  gboolean   (*queue_stats)       (SrvDb *db, SrvQueueStats *stats, GError **error);
  GPtrArray *(*events_since)      (SrvDb *db, const char *identity_id, gint64 last_id,
                                   guint limit, GError **error);
  gint64     (*prune_events)      (SrvDb *db, gint64 older_than, GError **error);
  gint64     (*last_event_id)     (SrvDb *db, GError **error);
  char      *(*setting_once)      (SrvDb *db, const char *name, const char *value,
                                   GError **error);
} SrvDbVTable;

extern const SrvDbVTable srv_db_sqlite_vtable;
extern const SrvDbVTable srv_db_pg_vtable;

gpointer     srv_db_backend               (SrvDb               *db);
/* A backend calls this after committing an event so watchers and waiters wake up. */
void         srv_db_events_committed      (SrvDb               *db,
                                           const char          *identity_id,
                                           gint64               event_id);
typedef struct {
  int   version;  /* from the file name, "001_init.sql" is 1 */
  char *name;
  char *sql;
} SrvDbMigration;

/* The numbered migrations of @dialect ("sqlite", "postgresql"), ascending (SrvDbMigration*). */
GPtrArray   *srv_db_migrations            (const char          *dialect,
                                           GError             **error);
SrvPhotoState srv_photo_state_from_string (const char         *s);
SrvJobState  srv_job_state_from_string    (const char          *s);
SrvEventType srv_event_type_from_string   (const char          *s);
SrvIdentity *srv_identity_copy            (const SrvIdentity   *identity);
/* An empty SrvTag array that frees its labels, as SrvPhoto.tags expects. */
GArray      *srv_tag_array_new            (void);
/* Cursor text for a keyset position, shared so every backend hands out the same cursors. */
char        *srv_db_cursor_encode         (gint64               created_at,
                                           const char          *id);
gboolean     srv_db_cursor_decode         (const char          *cursor,
                                           gint64              *created_at,
                                           char               **id);

G_END_DECLS
