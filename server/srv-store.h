/* srv-store.h - the object store under the embedded S3 endpoint: buckets, objects, multipart
 *
 * One synchronous, thread-safe API over interchangeable backends (the local file system, or
 * a remote S3-compatible service), chosen by SrvStoreOptions.backend. Every failure is either in
 * SRV_STORE_ERROR, whose codes are named after the S3 error they become (srv_store_error_s3()
 * gives the code and HTTP status), G_IO_ERROR_CANCELLED, or an error the caller's own body
 * stream raised. Times are microseconds since the Unix epoch (g_get_real_time() units).
 */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

#define SRV_STORE_ERROR (srv_store_error_quark ())

typedef enum {
  SRV_STORE_ERROR_NO_SUCH_BUCKET,      /* NoSuchBucket 404 */
  SRV_STORE_ERROR_NO_SUCH_KEY,         /* NoSuchKey 404 */
  SRV_STORE_ERROR_NO_SUCH_UPLOAD,      /* NoSuchUpload 404: unknown, aborted or completed */
  SRV_STORE_ERROR_INVALID_PART,        /* InvalidPart 400: missing part or etag differs */
  SRV_STORE_ERROR_INVALID_PART_ORDER,  /* InvalidPartOrder 400 */
  SRV_STORE_ERROR_ENTITY_TOO_SMALL,    /* EntityTooSmall 400: a non-last part under the minimum */
  SRV_STORE_ERROR_ENTITY_TOO_LARGE,    /* EntityTooLarge 400 */
  SRV_STORE_ERROR_INCOMPLETE_BODY,     /* IncompleteBody 400: body length != expected size */
  SRV_STORE_ERROR_BAD_DIGEST,          /* BadDigest 400: Content-MD5 does not match the body */
  SRV_STORE_ERROR_INVALID_DIGEST,      /* InvalidDigest 400: Content-MD5 not base64 of 16 bytes */
  SRV_STORE_ERROR_KEY_TOO_LONG,        /* KeyTooLongError 400: over SRV_STORE_KEY_MAX bytes */
  SRV_STORE_ERROR_INVALID_ARGUMENT,    /* InvalidArgument 400: bad key, token, marker, number */
  SRV_STORE_ERROR_INVALID_REQUEST,     /* InvalidRequest 400: copy onto itself without REPLACE */
  SRV_STORE_ERROR_METADATA_TOO_LARGE,  /* MetadataTooLarge 400: over SRV_STORE_METADATA_MAX */
  SRV_STORE_ERROR_INVALID_RANGE,       /* InvalidRange 416 */
  SRV_STORE_ERROR_NO_SPACE,            /* ENOSPC/EDQUOT: 507 InsufficientStorage */
  SRV_STORE_ERROR_INTERNAL,            /* InternalError 500: I/O error, corruption, a bug */
  SRV_STORE_ERROR_ACCESS_DENIED,       /* AccessDenied 403: a remote store refused our keys */
  SRV_STORE_ERROR_UNAVAILABLE,         /* ServiceUnavailable 503: a remote store is unreachable,
                                        * overloaded (SlowDown) or failing (5xx); retry later */
  SRV_STORE_ERROR_NOT_IMPLEMENTED,     /* NotImplemented 501: the backend lacks the operation */
} SrvStoreError;

/* S3's single-PUT limit; larger objects must go multipart. */
#define SRV_STORE_MAX_OBJECT_SIZE_DEFAULT (G_GINT64_CONSTANT (5) << 30)
/* S3 rejects completing an upload whose non-last parts are smaller than this. */
#define SRV_STORE_MIN_PART_SIZE_DEFAULT   (G_GINT64_CONSTANT (5) << 20)
#define SRV_STORE_MAX_PART_NUMBER         10000  /* S3's limit on parts per upload */
#define SRV_STORE_KEY_MAX                 1024   /* S3 keys are 1..1024 bytes of UTF-8 */
#define SRV_STORE_LIST_MAX                1000   /* S3's default and cap: max-keys/parts/uploads */
#define SRV_STORE_METADATA_MAX            2048   /* S3's cap on x-amz-meta-* names plus values */

typedef struct _SrvStore       SrvStore;
typedef struct _SrvStoreVTable SrvStoreVTable;

/* Backends embed this as their first member. */
struct _SrvStore {
  const SrvStoreVTable *vt;
};

typedef struct {
  const char *backend;          /* NULL or "local", or "s3" */
  gint64      max_object_size;  /* 0: SRV_STORE_MAX_OBJECT_SIZE_DEFAULT; also caps each part */
  gint64      min_part_size;    /* 0: SRV_STORE_MIN_PART_SIZE_DEFAULT; tests use small parts */
  /* "s3": the remote service and the server's own key pair for it. It serves exactly the
   * first of the buckets given to srv_store_open(), which must exist there already. */
  const char *endpoint;         /* http(s)://host[:port][/path] */
  const char *region;           /* what requests are signed for */
  const char *access_key_id;
  const char *secret_access_key;
  gboolean    virtual_hosted;   /* bucket.host/key rather than host/bucket/key (path style) */
} SrvStoreOptions;

typedef struct {
  char   *name;
  gint64  created;
} SrvBucketInfo;

typedef struct {
  char       *key;
  gint64      size;
  char       *etag;           /* quoted, as S3 sends it: "\"<md5 hex>\"" or "\"<hex>-<N>\"" */
  char       *md5;            /* lowercase hex MD5 of the bytes, multipart objects too; NULL
                               * when a remote store's ETag is not the MD5 (multipart, SSE) */
  char       *sha256;         /* lowercase hex SHA-256 of the bytes; NULL when a remote store
                               * holds no full-object SHA-256 checksum for it */
  char       *content_type;   /* NULL when none was given */
  GHashTable *metadata;       /* x-amz-meta-<name> lowercase name → value; NULL in listings */
  gint64      last_modified;
} SrvObjectInfo;

typedef struct {
  GPtrArray *contents;                 /* SrvObjectInfo, by key in UTF-8 byte order */
  GPtrArray *common_prefixes;          /* char *, each once, in the same order */
  gboolean   is_truncated;
  char      *next_continuation_token;  /* NULL unless truncated */
} SrvListResult;

typedef struct {
  char   *key;
  GError *error;                       /* NULL: deleted (or was not there, as S3 counts it) */
} SrvDeleteResult;

typedef enum {
  SRV_METADATA_COPY,                   /* x-amz-metadata-directive: COPY (the default) */
  SRV_METADATA_REPLACE,
} SrvMetadataDirective;

typedef struct {
  char   *upload_id;
  char   *key;
  gint64  initiated;
} SrvUploadInfo;

typedef struct {
  GPtrArray *uploads;                  /* SrvUploadInfo, by key then upload id */
  gboolean   is_truncated;
  char      *next_key_marker;          /* NULL unless truncated */
  char      *next_upload_id_marker;
} SrvUploadList;

typedef struct {
  guint   number;
  gint64  size;
  char   *etag;                        /* quoted MD5 of the part */
  gint64  last_modified;
} SrvPartInfo;

typedef struct {
  GPtrArray *parts;                    /* SrvPartInfo, by part number */
  gboolean   is_truncated;
  guint      next_part_number_marker;  /* 0 unless truncated */
} SrvPartList;

typedef struct {
  guint       number;
  const char *etag;                    /* with or without the quotes */
} SrvCompletedPart;

typedef struct {
  gint64 objects;
  gint64 bytes;                        /* logical: sum of object sizes */
  gint64 uploads;                      /* multipart uploads in progress */
} SrvStoreUsage;

typedef struct {
  guint tmp_removed;                   /* leftovers of interrupted writes */
  guint orphans_removed;               /* object and part files no index row refers to */
  guint missing;                       /* index rows whose file is gone (data loss, logged) */
} SrvStoreFsckReport;

/* A byte range to serve, both ends inclusive; an empty object is served as { 0, -1 }. */
typedef struct {
  gint64 first;
  gint64 last;
} SrvByteRange;

struct _SrvStoreVTable {
  const char *name;
  SrvStore      *(*open)            (const char *data_dir, const char * const *buckets,
                                     const SrvStoreOptions *options, GError **error);
  void           (*close)           (SrvStore *store);
  GPtrArray     *(*list_buckets)    (SrvStore *store);
  gboolean       (*head_bucket)     (SrvStore *store, const char *bucket, GError **error);
  SrvObjectInfo *(*put)             (SrvStore *store, const char *bucket, const char *key,
                                     GInputStream *body, gint64 expected_size,
                                     const char *content_type, GHashTable *metadata,
                                     const char *content_md5, GCancellable *cancellable,
                                     GError **error);
  SrvObjectInfo *(*head)            (SrvStore *store, const char *bucket, const char *key,
                                     GError **error);
  GInputStream  *(*open_read)       (SrvStore *store, const char *bucket, const char *key,
                                     const char *range, SrvObjectInfo **info,
                                     SrvByteRange *served, gboolean *partial, GError **error);
  gboolean       (*delete)          (SrvStore *store, const char *bucket, const char *key,
                                     GError **error);
  /* Deletes the keys of the SrvDeleteResults whose error is NULL (the front has checked
   * them), setting error on those it could not; FALSE if the whole batch failed. */
  gboolean       (*delete_many)     (SrvStore *store, const char *bucket, GPtrArray *results,
                                     GError **error);
  SrvListResult *(*list_v2)         (SrvStore *store, const char *bucket, const char *prefix,
                                     const char *delimiter, int max_keys,
                                     const char *start_after, const char *continuation_token,
                                     GError **error);
  SrvObjectInfo *(*copy)            (SrvStore *store, const char *src_bucket, const char *src_key,
                                     const char *dst_bucket, const char *dst_key,
                                     SrvMetadataDirective directive, const char *content_type,
                                     GHashTable *metadata, GCancellable *cancellable,
                                     GError **error);
  char          *(*create_upload)   (SrvStore *store, const char *bucket, const char *key,
                                     const char *content_type, GHashTable *metadata,
                                     GError **error);
  SrvPartInfo   *(*upload_part)     (SrvStore *store, const char *bucket, const char *key,
                                     const char *upload_id, guint number, GInputStream *body,
                                     gint64 expected_size, const char *content_md5,
                                     GCancellable *cancellable, GError **error);
  SrvPartList   *(*list_parts)      (SrvStore *store, const char *bucket, const char *key,
                                     const char *upload_id, guint part_number_marker,
                                     int max_parts, GError **error);
  SrvUploadList *(*list_uploads)    (SrvStore *store, const char *bucket, const char *prefix,
                                     const char *key_marker, const char *upload_id_marker,
                                     int max_uploads, GError **error);
  gboolean       (*abort_upload)    (SrvStore *store, const char *bucket, const char *key,
                                     const char *upload_id, GError **error);
  SrvObjectInfo *(*complete_upload) (SrvStore *store, const char *bucket, const char *key,
                                     const char *upload_id, const SrvCompletedPart *parts,
                                     guint n_parts, GCancellable *cancellable, GError **error);
  void           (*usage)           (SrvStore *store, SrvStoreUsage *usage);
  gboolean       (*fsck)            (SrvStore *store, SrvStoreFsckReport *report,
                                     GError **error);
  /* Optional: reaches whatever the store depends on (a remote service); NULL: nothing. */
  gboolean       (*ping)            (SrvStore *store, const char *bucket, GError **error);
};

/* The backends, for srv-store.c to choose from. */
extern const SrvStoreVTable srv_store_local_vtable;
extern const SrvStoreVTable srv_store_s3_vtable;

GQuark         srv_store_error_quark     (void);

/* Opens the store under @data_dir, creating it and the @buckets (S3 bucket names) that do
 * not exist yet, then runs fsck. Returns NULL and sets @error when a name is invalid or the
 * directory or index cannot be used. */
SrvStore      *srv_store_open            (const char              *data_dir,
                                          const char * const      *buckets,
                                          const SrvStoreOptions   *options,
                                          GError                 **error);
void           srv_store_close           (SrvStore                *store);
/* "local" or "s3". */
const char    *srv_store_backend_name    (SrvStore                *store);
/* For readiness: the bucket is served and, for a remote store, answers now. */
gboolean       srv_store_ping            (SrvStore                *store,
                                          const char              *bucket,
                                          GError                 **error);

/* SrvBucketInfo of every served bucket, by name. */
GPtrArray     *srv_store_list_buckets    (SrvStore                *store);
/* FALSE with NO_SUCH_BUCKET when @bucket is not served. */
gboolean       srv_store_head_bucket     (SrvStore                *store,
                                          const char              *bucket,
                                          GError                 **error);

/* Stores @body as @key, replacing any previous version only once the new one is durable.
 * @expected_size -1 when unknown; @content_md5 NULL or the Content-MD5 header (base64);
 * @metadata the x-amz-meta-* headers without that prefix (names are stored lowercase).
 * On any failure the previous version stays intact and nothing half-written is visible. */
SrvObjectInfo *srv_store_put             (SrvStore                *store,
                                          const char              *bucket,
                                          const char              *key,
                                          GInputStream            *body,
                                          gint64                   expected_size,
                                          const char              *content_type,
                                          GHashTable              *metadata,
                                          const char              *content_md5,
                                          GCancellable            *cancellable,
                                          GError                 **error);
/* NULL with NO_SUCH_KEY (or NO_SUCH_BUCKET) when there is no such object. */
SrvObjectInfo *srv_store_head            (SrvStore                *store,
                                          const char              *bucket,
                                          const char              *key,
                                          GError                 **error);
/* A stream of the object's bytes, or of @range (a Range header value, NULL for all). A
 * malformed or multi-range value is ignored as S3 does (*partial FALSE, whole object);
 * an unsatisfiable one fails with INVALID_RANGE. The stream keeps reading the version that
 * was current at the call even if the key is overwritten or deleted meanwhile. */
GInputStream  *srv_store_open_read       (SrvStore                *store,
                                          const char              *bucket,
                                          const char              *key,
                                          const char              *range,
                                          SrvObjectInfo          **info,
                                          SrvByteRange            *served,
                                          gboolean                *partial,
                                          GError                 **error);
/* Deleting a key that does not exist succeeds, as in S3. */
gboolean       srv_store_delete          (SrvStore                *store,
                                          const char              *bucket,
                                          const char              *key,
                                          GError                 **error);
/* One SrvDeleteResult per key of @keys, in order (DeleteObjects). FALSE only for a bad
 * bucket or more than SRV_STORE_LIST_MAX keys. */
GPtrArray     *srv_store_delete_many     (SrvStore                *store,
                                          const char              *bucket,
                                          const char * const      *keys,
                                          GError                 **error);
/* ListObjectsV2. @max_keys -1 for the default; above SRV_STORE_LIST_MAX it is capped, 0
 * gives an empty untruncated page. @continuation_token (opaque, from a previous page) wins
 * over @start_after; a token this store did not make fails with INVALID_ARGUMENT. */
SrvListResult *srv_store_list_v2         (SrvStore                *store,
                                          const char              *bucket,
                                          const char              *prefix,
                                          const char              *delimiter,
                                          int                      max_keys,
                                          const char              *start_after,
                                          const char              *continuation_token,
                                          GError                 **error);
/* CopyObject. COPY keeps the source's content type and metadata (then @content_type and
 * @metadata are ignored); copying a key onto itself needs REPLACE (else INVALID_REQUEST). */
SrvObjectInfo *srv_store_copy            (SrvStore                *store,
                                          const char              *src_bucket,
                                          const char              *src_key,
                                          const char              *dst_bucket,
                                          const char              *dst_key,
                                          SrvMetadataDirective     directive,
                                          const char              *content_type,
                                          GHashTable              *metadata,
                                          GCancellable            *cancellable,
                                          GError                 **error);

/* CreateMultipartUpload: returns the new upload id (32 hex digits). */
char          *srv_store_create_upload   (SrvStore                *store,
                                          const char              *bucket,
                                          const char              *key,
                                          const char              *content_type,
                                          GHashTable              *metadata,
                                          GError                 **error);
/* UploadPart: @number 1..SRV_STORE_MAX_PART_NUMBER; uploading a number again replaces it. */
SrvPartInfo   *srv_store_upload_part     (SrvStore                *store,
                                          const char              *bucket,
                                          const char              *key,
                                          const char              *upload_id,
                                          guint                    number,
                                          GInputStream            *body,
                                          gint64                   expected_size,
                                          const char              *content_md5,
                                          GCancellable            *cancellable,
                                          GError                 **error);
/* ListParts: parts numbered above @part_number_marker; @max_parts as @max_keys above. */
SrvPartList   *srv_store_list_parts      (SrvStore                *store,
                                          const char              *bucket,
                                          const char              *key,
                                          const char              *upload_id,
                                          guint                    part_number_marker,
                                          int                      max_parts,
                                          GError                 **error);
/* ListMultipartUploads of keys starting with @prefix, after the markers (NULL: none). */
SrvUploadList *srv_store_list_uploads    (SrvStore                *store,
                                          const char              *bucket,
                                          const char              *prefix,
                                          const char              *key_marker,
                                          const char              *upload_id_marker,
                                          int                      max_uploads,
                                          GError                 **error);
/* AbortMultipartUpload: removes the upload and its parts; NO_SUCH_UPLOAD if unknown. */
gboolean       srv_store_abort_upload    (SrvStore                *store,
                                          const char              *bucket,
                                          const char              *key,
                                          const char              *upload_id,
                                          GError                 **error);
/* CompleteMultipartUpload: @parts ascending (INVALID_PART_ORDER), each uploaded with that
 * etag (INVALID_PART), all but the last at least the minimum part size (ENTITY_TOO_SMALL).
 * The object appears atomically with S3's multipart ETag; the upload is gone afterwards. */
SrvObjectInfo *srv_store_complete_upload (SrvStore                *store,
                                          const char              *bucket,
                                          const char              *key,
                                          const char              *upload_id,
                                          const SrvCompletedPart  *parts,
                                          guint                    n_parts,
                                          GCancellable            *cancellable,
                                          GError                 **error);

/* Reads the object through and returns the lowercase hex SHA-256 of its bytes, with its
 * info in *@info (may be NULL); for objects whose head has no sha256. */
char          *srv_store_hash_object     (SrvStore                *store,
                                          const char              *bucket,
                                          const char              *key,
                                          SrvObjectInfo          **info,
                                          GCancellable            *cancellable,
                                          GError                 **error);

/* Totals over the served buckets for /metrics; cheap (kept as counters, not counted). */
void           srv_store_usage           (SrvStore                *store,
                                          SrvStoreUsage           *usage);
/* Removes leftovers of interrupted writes and files no index row refers to, and counts rows
 * whose file is missing. Safe while requests run: writes in flight are left alone. */
gboolean       srv_store_fsck            (SrvStore                *store,
                                          SrvStoreFsckReport      *report,
                                          GError                 **error);

/* Pure helpers, shared by the backends and the HTTP layer. */

/* The S3 error code ("NoSuchKey") for @error, and its HTTP status; InternalError/500 for
 * errors outside SRV_STORE_ERROR. */
const char    *srv_store_error_s3        (const GError            *error,
                                          guint                   *http_status);
/* FALSE with KEY_TOO_LONG or INVALID_ARGUMENT unless @key is 1..1024 bytes of UTF-8 (no NUL). */
gboolean       srv_store_check_key       (const char              *key,
                                          gsize                    length,
                                          GError                 **error);
/* FALSE with INVALID_ARGUMENT unless @name is a valid S3 bucket name. */
gboolean       srv_store_check_bucket_name (const char            *name,
                                            GError               **error);
/* Resolves a Range header value against @size bytes: "bytes=A-B", "bytes=A-", "bytes=-N".
 * FALSE with INVALID_RANGE when unsatisfiable, INVALID_ARGUMENT when malformed or multi-range
 * (S3 then serves the whole object). */
gboolean       srv_store_parse_range     (const char              *value,
                                          gint64                   size,
                                          SrvByteRange            *range,
                                          GError                 **error);
/* S3's multipart ETag, quoted: hex MD5 of the concatenated binary part MD5s, "-", the count. */
char          *srv_store_multipart_etag  (const guint8            *part_md5s,
                                          guint                    n_parts);

void           srv_bucket_info_free      (SrvBucketInfo           *info);
void           srv_object_info_free      (SrvObjectInfo           *info);
void           srv_list_result_free      (SrvListResult           *result);
void           srv_delete_result_free    (SrvDeleteResult         *result);
void           srv_upload_info_free      (SrvUploadInfo           *info);
void           srv_upload_list_free      (SrvUploadList           *list);
void           srv_part_info_free        (SrvPartInfo             *info);
void           srv_part_list_free        (SrvPartList             *list);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (SrvStore, srv_store_close)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SrvObjectInfo, srv_object_info_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SrvListResult, srv_list_result_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SrvUploadList, srv_upload_list_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SrvPartInfo, srv_part_info_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SrvPartList, srv_part_list_free)

G_END_DECLS
