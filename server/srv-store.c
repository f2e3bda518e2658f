/* srv-store.c - the object store's front: argument checks, backend dispatch, pure S3 helpers */
#define G_LOG_DOMAIN "srv-store"

#include "config.h"

#include "srv-store.h"

#include <string.h>

static const SrvStoreVTable *backends[] = {
  &srv_store_local_vtable,
  &srv_store_s3_vtable,
};

G_DEFINE_QUARK (srv-store-error-quark, srv_store_error)

static const struct {
  const char *code;
  guint       status;
} s3_errors[] = {
  [SRV_STORE_ERROR_NO_SUCH_BUCKET]     = { "NoSuchBucket", 404 },
  [SRV_STORE_ERROR_NO_SUCH_KEY]        = { "NoSuchKey", 404 },
  [SRV_STORE_ERROR_NO_SUCH_UPLOAD]     = { "NoSuchUpload", 404 },
  [SRV_STORE_ERROR_INVALID_PART]       = { "InvalidPart", 400 },
  [SRV_STORE_ERROR_INVALID_PART_ORDER] = { "InvalidPartOrder", 400 },
  [SRV_STORE_ERROR_ENTITY_TOO_SMALL]   = { "EntityTooSmall", 400 },
  [SRV_STORE_ERROR_ENTITY_TOO_LARGE]   = { "EntityTooLarge", 400 },
  [SRV_STORE_ERROR_INCOMPLETE_BODY]    = { "IncompleteBody", 400 },
  [SRV_STORE_ERROR_BAD_DIGEST]         = { "BadDigest", 400 },
  [SRV_STORE_ERROR_INVALID_DIGEST]     = { "InvalidDigest", 400 },
  [SRV_STORE_ERROR_KEY_TOO_LONG]       = { "KeyTooLongError", 400 },
  [SRV_STORE_ERROR_INVALID_ARGUMENT]   = { "InvalidArgument", 400 },
  [SRV_STORE_ERROR_INVALID_REQUEST]    = { "InvalidRequest", 400 },
  [SRV_STORE_ERROR_METADATA_TOO_LARGE] = { "MetadataTooLarge", 400 },
  [SRV_STORE_ERROR_INVALID_RANGE]      = { "InvalidRange", 416 },
  /* 507 as MinIO answers a full disk; clients retry it like a 5xx. */
  [SRV_STORE_ERROR_NO_SPACE]           = { "InsufficientStorage", 507 },
  [SRV_STORE_ERROR_INTERNAL]           = { "InternalError", 500 },
  [SRV_STORE_ERROR_ACCESS_DENIED]      = { "AccessDenied", 403 },
  [SRV_STORE_ERROR_UNAVAILABLE]        = { "ServiceUnavailable", 503 },
  [SRV_STORE_ERROR_NOT_IMPLEMENTED]    = { "NotImplemented", 501 },
};

const char *
srv_store_error_s3 (const GError *error,
                    guint        *http_status)
{
  guint i = SRV_STORE_ERROR_INTERNAL;

  if (error != NULL && error->domain == SRV_STORE_ERROR &&
      error->code >= 0 && (guint) error->code < G_N_ELEMENTS (s3_errors))
    i = error->code;
  if (http_status)
    *http_status = s3_errors[i].status;
  return s3_errors[i].code;
}

gboolean
srv_store_check_key (const char  *key,
                     gsize        length,
                     GError     **error)
{
  if (length == 0 || memchr (key, '\0', length) != NULL || !g_utf8_validate_len (key, length, NULL))
    {
      g_set_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_INVALID_ARGUMENT,
                   "an object key must be non-empty UTF-8 without NUL");
      return FALSE;
    }
  if (length > SRV_STORE_KEY_MAX)
    {
      g_set_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_KEY_TOO_LONG,
                   "the key is %" G_GSIZE_FORMAT " bytes; the maximum is %d",
                   length, SRV_STORE_KEY_MAX);
      return FALSE;
    }
  return TRUE;
}

static gboolean
check_key (const char *key, GError **error)
{
  if (key == NULL)
    {
      g_set_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_INVALID_ARGUMENT, "no object key");
      return FALSE;
    }
  return srv_store_check_key (key, strlen (key), error);
}

/* S3's rules for new buckets: 3..63 of [a-z0-9.-], alphanumeric at both ends, no "..", not
 * an IPv4 address. */
gboolean
srv_store_check_bucket_name (const char  *name,
                             GError     **error)
{
  gsize len = name ? strlen (name) : 0;
  gboolean ok = len >= 3 && len <= 63 && g_ascii_isalnum (name[0]) &&
                g_ascii_isalnum (name[len - 1]) && strstr (name, "..") == NULL &&
                !g_hostname_is_ip_address (name);

  for (gsize i = 0; ok && i < len; i++)
    ok = g_ascii_islower (name[i]) || g_ascii_isdigit (name[i]) || name[i] == '.' ||
         name[i] == '-';
  if (!ok)
    g_set_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_INVALID_ARGUMENT,
                 "'%s' is not a valid bucket name (3-63 of a-z, 0-9, '.', '-')",
                 name ? name : "");
  return ok;
}

static gboolean
parse_digits (const char *s, const char *end, gint64 *out)
{
  guint64 v = 0;

  if (s == end)
    return FALSE;
  for (; s < end; s++)
    {
      if (!g_ascii_isdigit (*s) || v > (G_MAXINT64 - 9) / 10)
        return FALSE;
      v = v * 10 + (*s - '0');
    }
  *out = (gint64) v;
  return TRUE;
}

gboolean
srv_store_parse_range (const char    *value,
                       gint64         size,
                       SrvByteRange  *range,
                       GError       **error)
{
  const char *spec;
  const char *dash;
  const char *end;
  gint64 first = -1;
  gint64 last = -1;

  g_return_val_if_fail (value != NULL && range != NULL && size >= 0, FALSE);

  if (g_ascii_strncasecmp (value, "bytes=", 6) != 0)
    goto malformed;
  spec = value + 6;
  end = spec + strlen (spec);
  while (end > spec && g_ascii_isspace (end[-1]))
    end--;
  while (spec < end && g_ascii_isspace (*spec))
    spec++;
  dash = memchr (spec, '-', end - spec);
  if (dash == NULL || memchr (spec, ',', end - spec) != NULL)
    goto malformed;

  if (dash == spec)
    {
      gint64 suffix;

      if (!parse_digits (dash + 1, end, &suffix))
        goto malformed;
      if (suffix == 0 || size == 0)
        goto unsatisfiable;
      first = suffix >= size ? 0 : size - suffix;
      last = size - 1;
    }
  else
    {
      if (!parse_digits (spec, dash, &first))
        goto malformed;
      if (dash + 1 == end)
        last = G_MAXINT64;
      else if (!parse_digits (dash + 1, end, &last) || last < first)
        goto malformed;
      if (first >= size)
        goto unsatisfiable;
      last = MIN (last, size - 1);
    }
  range->first = first;
  range->last = last;
  return TRUE;

malformed:
  g_set_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_INVALID_ARGUMENT,
               "Range '%s' is not one bytes=first-last, first- or -suffix range", value);
  return FALSE;
unsatisfiable:
  g_set_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_INVALID_RANGE,
               "Range '%s' is outside the object's %" G_GINT64_FORMAT " bytes", value, size);
  return FALSE;
}

char *
srv_store_multipart_etag (const guint8 *part_md5s,
                          guint         n_parts)
{
  g_autofree char *hex = g_compute_checksum_for_data (G_CHECKSUM_MD5, part_md5s, n_parts * 16);

  return g_strdup_printf ("\"%s-%u\"", hex, n_parts);
}

SrvStore *
srv_store_open (const char             *data_dir,
                const char * const     *buckets,
                const SrvStoreOptions  *options,
                GError                **error)
{
  static const SrvStoreOptions defaults = { 0, };
  const char *name;

  g_return_val_if_fail (data_dir != NULL, NULL);

  if (options == NULL)
    options = &defaults;
  name = options->backend ? options->backend : "local";
  for (const char * const *b = buckets; b && *b; b++)
    if (!srv_store_check_bucket_name (*b, error))
      return NULL;
  if (options->max_object_size < 0 || options->min_part_size < 0)
    {
      g_set_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_INVALID_ARGUMENT,
                   "store size limits must not be negative");
      return NULL;
    }
  for (gsize i = 0; i < G_N_ELEMENTS (backends); i++)
    if (strcmp (backends[i]->name, name) == 0)
      return backends[i]->open (data_dir, buckets, options, error);

  g_set_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_INVALID_ARGUMENT,
               "unknown store backend '%s' (known: local, s3)", name);
  return NULL;
}

void
srv_store_close (SrvStore *store)
{
  if (store != NULL)
    store->vt->close (store);
}

const char *
srv_store_backend_name (SrvStore *store)
{
  g_return_val_if_fail (store != NULL, NULL);
  return store->vt->name;
}

gboolean
srv_store_ping (SrvStore    *store,
                const char  *bucket,
                GError     **error)
{
  if (!srv_store_head_bucket (store, bucket, error))
    return FALSE;
  return store->vt->ping == NULL || store->vt->ping (store, bucket, error);
}

GPtrArray *
srv_store_list_buckets (SrvStore *store)
{
  g_return_val_if_fail (store != NULL, NULL);
  return store->vt->list_buckets (store);
}

gboolean
srv_store_head_bucket (SrvStore    *store,
                       const char  *bucket,
                       GError     **error)
{
  g_return_val_if_fail (store != NULL, FALSE);
  if (bucket == NULL)
    {
      g_set_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_NO_SUCH_BUCKET, "no bucket given");
      return FALSE;
    }
  return store->vt->head_bucket (store, bucket, error);
}

static gboolean
check_md5_header (const char *content_md5, GError **error)
{
  gsize len = 0;
  g_autofree guchar *raw = NULL;

  if (content_md5 == NULL)
    return TRUE;
  /* g_base64_decode() skips junk silently, so the length check is the validation. */
  if (strlen (content_md5) == 24)
    raw = g_base64_decode (content_md5, &len);
  if (len != 16)
    {
      g_set_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_INVALID_DIGEST,
                   "Content-MD5 '%s' is not the base64 of an MD5 digest", content_md5);
      return FALSE;
    }
  return TRUE;
}

/* User metadata travels as JSON in the index and as HTTP headers: UTF-8, and S3's size cap. */
static gboolean
check_metadata (GHashTable *metadata, GError **error)
{
  GHashTableIter iter;
  gpointer k, v;
  gsize total = 0;

  if (metadata == NULL)
    return TRUE;
  g_hash_table_iter_init (&iter, metadata);
  while (g_hash_table_iter_next (&iter, &k, &v))
    {
      if (k == NULL || *(char *) k == '\0' || !g_utf8_validate (k, -1, NULL) ||
          (v != NULL && !g_utf8_validate (v, -1, NULL)))
        {
          g_set_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_INVALID_ARGUMENT,
                       "user metadata names and values must be UTF-8");
          return FALSE;
        }
      total += strlen (k) + (v ? strlen (v) : 0);
    }
  if (total > SRV_STORE_METADATA_MAX)
    {
      g_set_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_METADATA_TOO_LARGE,
                   "user metadata is %" G_GSIZE_FORMAT " bytes; the maximum is %d", total,
                   SRV_STORE_METADATA_MAX);
      return FALSE;
    }
  return TRUE;
}

SrvObjectInfo *
srv_store_put (SrvStore      *store,
               const char    *bucket,
               const char    *key,
               GInputStream  *body,
               gint64         expected_size,
               const char    *content_type,
               GHashTable    *metadata,
               const char    *content_md5,
               GCancellable  *cancellable,
               GError       **error)
{
  g_return_val_if_fail (store != NULL && G_IS_INPUT_STREAM (body), NULL);
  if (!srv_store_head_bucket (store, bucket, error) || !check_key (key, error) ||
      !check_md5_header (content_md5, error) || !check_metadata (metadata, error))
    return NULL;
  return store->vt->put (store, bucket, key, body, expected_size, content_type, metadata,
                         content_md5, cancellable, error);
}

SrvObjectInfo *
srv_store_head (SrvStore    *store,
                const char  *bucket,
                const char  *key,
                GError     **error)
{
  g_return_val_if_fail (store != NULL, NULL);
  if (!srv_store_head_bucket (store, bucket, error) || !check_key (key, error))
    return NULL;
  return store->vt->head (store, bucket, key, error);
}

GInputStream *
srv_store_open_read (SrvStore       *store,
                     const char     *bucket,
                     const char     *key,
                     const char     *range,
                     SrvObjectInfo **info,
                     SrvByteRange   *served,
                     gboolean       *partial,
                     GError        **error)
{
  g_return_val_if_fail (store != NULL, NULL);
  if (!srv_store_head_bucket (store, bucket, error) || !check_key (key, error))
    return NULL;
  return store->vt->open_read (store, bucket, key, range, info, served, partial, error);
}

char *
srv_store_hash_object (SrvStore       *store,
                       const char     *bucket,
                       const char     *key,
                       SrvObjectInfo **info,
                       GCancellable   *cancellable,
                       GError        **error)
{
  g_autoptr(SrvObjectInfo) read_info = NULL;
  g_autoptr(GInputStream) in = NULL;
  g_autoptr(GChecksum) sha = g_checksum_new (G_CHECKSUM_SHA256);
  g_autofree guint8 *buf = g_malloc (64 * 1024);
  gint64 total = 0;
  SrvByteRange served;
  gboolean partial;

  in = srv_store_open_read (store, bucket, key, NULL, &read_info, &served, &partial, error);
  if (in == NULL)
    return NULL;
  for (;;)
    {
      gssize n = g_input_stream_read (in, buf, 64 * 1024, cancellable, error);

      if (n < 0)
        return NULL;
      if (n == 0)
        break;
      g_checksum_update (sha, buf, n);
      total += n;
    }
  if (total != read_info->size)
    {
      g_set_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_INCOMPLETE_BODY,
                   "%s ended after %" G_GINT64_FORMAT " of %" G_GINT64_FORMAT " bytes",
                   key, total, read_info->size);
      return NULL;
    }
  if (info)
    *info = g_steal_pointer (&read_info);
  return g_strdup (g_checksum_get_string (sha));
}

gboolean
srv_store_delete (SrvStore    *store,
                  const char  *bucket,
                  const char  *key,
                  GError     **error)
{
  g_return_val_if_fail (store != NULL, FALSE);
  if (!srv_store_head_bucket (store, bucket, error) || !check_key (key, error))
    return FALSE;
  return store->vt->delete (store, bucket, key, error);
}

GPtrArray *
srv_store_delete_many (SrvStore            *store,
                       const char          *bucket,
                       const char * const  *keys,
                       GError             **error)
{
  g_autoptr(GPtrArray) results = NULL;
  g_autoptr(GError) batch_error = NULL;
  guint n = keys ? g_strv_length ((char **) keys) : 0;

  g_return_val_if_fail (store != NULL, NULL);
  if (!srv_store_head_bucket (store, bucket, error))
    return NULL;
  if (n > SRV_STORE_LIST_MAX)
    {
      g_set_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_INVALID_ARGUMENT,
                   "%u keys in one DeleteObjects; the maximum is %d", n, SRV_STORE_LIST_MAX);
      return NULL;
    }
  results = g_ptr_array_new_full (n, (GDestroyNotify) srv_delete_result_free);
  for (guint i = 0; i < n; i++)
    {
      SrvDeleteResult *r = g_new0 (SrvDeleteResult, 1);

      r->key = g_strdup (keys[i]);
      check_key (keys[i], &r->error);
      g_ptr_array_add (results, r);
    }
  /* One batch, one index commit: a 1000-key delete costs one fsync, not a thousand. */
  if (!store->vt->delete_many (store, bucket, results, &batch_error))
    for (guint i = 0; i < n; i++)
      {
        SrvDeleteResult *r = g_ptr_array_index (results, i);

        if (r->error == NULL)
          r->error = g_error_copy (batch_error);
      }
  return g_steal_pointer (&results);
}

static gboolean
check_limit (int *max, const char *what, GError **error)
{
  if (*max < -1)
    {
      g_set_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_INVALID_ARGUMENT,
                   "%s must not be negative", what);
      return FALSE;
    }
  if (*max == -1 || *max > SRV_STORE_LIST_MAX)
    *max = SRV_STORE_LIST_MAX;
  return TRUE;
}

static gboolean
check_optional_utf8 (const char *value, const char *what, GError **error)
{
  if (value != NULL && !g_utf8_validate (value, -1, NULL))
    {
      g_set_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_INVALID_ARGUMENT,
                   "%s is not valid UTF-8", what);
      return FALSE;
    }
  return TRUE;
}

SrvListResult *
srv_store_list_v2 (SrvStore    *store,
                   const char  *bucket,
                   const char  *prefix,
                   const char  *delimiter,
                   int          max_keys,
                   const char  *start_after,
                   const char  *continuation_token,
                   GError     **error)
{
  g_return_val_if_fail (store != NULL, NULL);
  if (!srv_store_head_bucket (store, bucket, error) ||
      !check_limit (&max_keys, "max-keys", error) ||
      !check_optional_utf8 (prefix, "prefix", error) ||
      !check_optional_utf8 (delimiter, "delimiter", error) ||
      !check_optional_utf8 (start_after, "start-after", error))
    return NULL;
  if (prefix != NULL && *prefix == '\0')
    prefix = NULL;
  if (delimiter != NULL && *delimiter == '\0')
    delimiter = NULL;
  return store->vt->list_v2 (store, bucket, prefix, delimiter, max_keys, start_after,
                             continuation_token, error);
}

SrvObjectInfo *
srv_store_copy (SrvStore              *store,
                const char            *src_bucket,
                const char            *src_key,
                const char            *dst_bucket,
                const char            *dst_key,
                SrvMetadataDirective   directive,
                const char            *content_type,
                GHashTable            *metadata,
                GCancellable          *cancellable,
                GError               **error)
{
  g_return_val_if_fail (store != NULL, NULL);
  if (!srv_store_head_bucket (store, src_bucket, error) || !check_key (src_key, error) ||
      !srv_store_head_bucket (store, dst_bucket, error) || !check_key (dst_key, error) ||
      (directive == SRV_METADATA_REPLACE && !check_metadata (metadata, error)))
    return NULL;
  if (directive == SRV_METADATA_COPY && strcmp (src_bucket, dst_bucket) == 0 &&
      strcmp (src_key, dst_key) == 0)
    {
      g_set_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_INVALID_REQUEST,
                   "copying an object onto itself must change its metadata "
                   "(x-amz-metadata-directive: REPLACE)");
      return NULL;
    }
  return store->vt->copy (store, src_bucket, src_key, dst_bucket, dst_key, directive,
                          content_type, metadata, cancellable, error);
}

char *
srv_store_create_upload (SrvStore    *store,
                         const char  *bucket,
                         const char  *key,
                         const char  *content_type,
                         GHashTable  *metadata,
                         GError     **error)
{
  g_return_val_if_fail (store != NULL, NULL);
  if (!srv_store_head_bucket (store, bucket, error) || !check_key (key, error) ||
      !check_metadata (metadata, error))
    return NULL;
  return store->vt->create_upload (store, bucket, key, content_type, metadata, error);
}

/* Upload ids are ours: 32 lowercase hex digits. Checking here keeps them out of paths. */
static gboolean
check_upload (SrvStore *store, const char *bucket, const char *key, const char *upload_id,
              GError **error)
{
  gboolean ok = upload_id != NULL && strlen (upload_id) == 32;

  if (!srv_store_head_bucket (store, bucket, error) || !check_key (key, error))
    return FALSE;
  for (int i = 0; ok && i < 32; i++)
    ok = g_ascii_isxdigit (upload_id[i]) && !g_ascii_isupper (upload_id[i]);
  if (!ok)
    g_set_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_NO_SUCH_UPLOAD,
                 "no upload '%s'", upload_id ? upload_id : "");
  return ok;
}

SrvPartInfo *
srv_store_upload_part (SrvStore      *store,
                       const char    *bucket,
                       const char    *key,
                       const char    *upload_id,
                       guint          number,
                       GInputStream  *body,
                       gint64         expected_size,
                       const char    *content_md5,
                       GCancellable  *cancellable,
                       GError       **error)
{
  g_return_val_if_fail (store != NULL && G_IS_INPUT_STREAM (body), NULL);
  if (!check_upload (store, bucket, key, upload_id, error) ||
      !check_md5_header (content_md5, error))
    return NULL;
  if (number < 1 || number > SRV_STORE_MAX_PART_NUMBER)
    {
      g_set_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_INVALID_ARGUMENT,
                   "part number %u is outside 1..%d", number, SRV_STORE_MAX_PART_NUMBER);
      return NULL;
    }
  return store->vt->upload_part (store, bucket, key, upload_id, number, body, expected_size,
                                 content_md5, cancellable, error);
}

SrvPartList *
srv_store_list_parts (SrvStore    *store,
                      const char  *bucket,
                      const char  *key,
                      const char  *upload_id,
                      guint        part_number_marker,
                      int          max_parts,
                      GError     **error)
{
  g_return_val_if_fail (store != NULL, NULL);
  if (!check_upload (store, bucket, key, upload_id, error) ||
      !check_limit (&max_parts, "max-parts", error))
    return NULL;
  return store->vt->list_parts (store, bucket, key, upload_id, part_number_marker, max_parts,
                                error);
}

SrvUploadList *
srv_store_list_uploads (SrvStore    *store,
                        const char  *bucket,
                        const char  *prefix,
                        const char  *key_marker,
                        const char  *upload_id_marker,
                        int          max_uploads,
                        GError     **error)
{
  g_return_val_if_fail (store != NULL, NULL);
  if (!srv_store_head_bucket (store, bucket, error) ||
      !check_limit (&max_uploads, "max-uploads", error) ||
      !check_optional_utf8 (prefix, "prefix", error) ||
      !check_optional_utf8 (key_marker, "key-marker", error) ||
      !check_optional_utf8 (upload_id_marker, "upload-id-marker", error))
    return NULL;
  if (key_marker == NULL || *key_marker == '\0')
    upload_id_marker = NULL;
  return store->vt->list_uploads (store, bucket, prefix, key_marker, upload_id_marker,
                                  max_uploads, error);
}

gboolean
srv_store_abort_upload (SrvStore    *store,
                        const char  *bucket,
                        const char  *key,
                        const char  *upload_id,
                        GError     **error)
{
  g_return_val_if_fail (store != NULL, FALSE);
  if (!check_upload (store, bucket, key, upload_id, error))
    return FALSE;
  return store->vt->abort_upload (store, bucket, key, upload_id, error);
}

SrvObjectInfo *
srv_store_complete_upload (SrvStore                *store,
                           const char              *bucket,
                           const char              *key,
                           const char              *upload_id,
                           const SrvCompletedPart  *parts,
                           guint                    n_parts,
                           GCancellable            *cancellable,
                           GError                 **error)
{
  g_return_val_if_fail (store != NULL, NULL);
  if (!check_upload (store, bucket, key, upload_id, error))
    return NULL;
  if (n_parts == 0 || n_parts > SRV_STORE_MAX_PART_NUMBER)
    {
      g_set_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_INVALID_ARGUMENT,
                   "a completed upload needs 1..%d parts", SRV_STORE_MAX_PART_NUMBER);
      return NULL;
    }
  for (guint i = 0; i < n_parts; i++)
    {
      if (parts[i].number < 1 || parts[i].number > SRV_STORE_MAX_PART_NUMBER ||
          parts[i].etag == NULL)
        {
          g_set_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_INVALID_PART,
                       "part %u is not a valid part", parts[i].number);
          return NULL;
        }
      if (i > 0 && parts[i].number <= parts[i - 1].number)
        {
          g_set_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_INVALID_PART_ORDER,
                       "parts must be listed in ascending order (%u after %u)",
                       parts[i].number, parts[i - 1].number);
          return NULL;
        }
    }
  return store->vt->complete_upload (store, bucket, key, upload_id, parts, n_parts,
                                     cancellable, error);
}

void
srv_store_usage (SrvStore      *store,
                 SrvStoreUsage *usage)
{
  g_return_if_fail (store != NULL && usage != NULL);
  memset (usage, 0, sizeof *usage);
  store->vt->usage (store, usage);
}

gboolean
srv_store_fsck (SrvStore            *store,
                SrvStoreFsckReport  *report,
                GError             **error)
{
  SrvStoreFsckReport local;

  g_return_val_if_fail (store != NULL, FALSE);
  if (report == NULL)
    report = &local;
  memset (report, 0, sizeof *report);
  return store->vt->fsck (store, report, error);
}

void
srv_bucket_info_free (SrvBucketInfo *info)
{
  if (info == NULL)
    return;
  g_free (info->name);
  g_free (info);
}

void
srv_object_info_free (SrvObjectInfo *info)
{
  if (info == NULL)
    return;
  g_free (info->key);
  g_free (info->etag);
  g_free (info->md5);
  g_free (info->sha256);
  g_free (info->content_type);
  g_clear_pointer (&info->metadata, g_hash_table_unref);
  g_free (info);
}

void
srv_list_result_free (SrvListResult *result)
{
  if (result == NULL)
    return;
  g_clear_pointer (&result->contents, g_ptr_array_unref);
  g_clear_pointer (&result->common_prefixes, g_ptr_array_unref);
  g_free (result->next_continuation_token);
  g_free (result);
}

void
srv_delete_result_free (SrvDeleteResult *result)
{
  if (result == NULL)
    return;
  g_free (result->key);
  g_clear_error (&result->error);
  g_free (result);
}

void
srv_upload_info_free (SrvUploadInfo *info)
{
  if (info == NULL)
    return;
  g_free (info->upload_id);
  g_free (info->key);
  g_free (info);
}

void
srv_upload_list_free (SrvUploadList *list)
{
  if (list == NULL)
    return;
  g_clear_pointer (&list->uploads, g_ptr_array_unref);
  g_free (list->next_key_marker);
  g_free (list->next_upload_id_marker);
  g_free (list);
}

void
srv_part_info_free (SrvPartInfo *info)
{
  if (info == NULL)
    return;
  g_free (info->etag);
  g_free (info);
}

void
srv_part_list_free (SrvPartList *list)
{
  if (list == NULL)
    return;
  g_clear_pointer (&list->parts, g_ptr_array_unref);
  g_free (list);
}
