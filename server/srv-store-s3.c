/* srv-store-s3.c - the "s3" store backend: objects in a remote S3-compatible service
 *
 * AWS S3, MinIO, Ceph RGW or moto hold the bytes; nothing is kept locally. Clients upload to
 * the service directly with credentials from its STS (srv-sts.c), so magpied needs only
 * HeadObject (POST /v1/photos), GetObject (workers, streamed), DeleteObject (DELETE
 * /v1/photos/{id}), ListObjectsV2 and PutObject; copy and multipart answer NOT_IMPLEMENTED.
 * Requests are signed with the server's own key pair (srv-remote.c) and answered errors map
 * onto SrvStoreError by their S3 code, then by HTTP status.
 */
#define G_LOG_DOMAIN "srv-store-s3"

#include "config.h"

#include "srv-store.h"

#include <string.h>

#include "srv-remote.h"
#include "srv-xml.h"

#define S3_META_PREFIX "x-amz-meta-"

typedef struct {
  SrvStore   parent;
  SrvRemote *remote;
  char      *bucket;
  char      *virtual_host;    /* "bucket.host" when virtual-hosted, else NULL */
  gint64     opened;
  gint64     max_object_size;
} StoreS3;

static StoreS3 *
S3 (SrvStore *store)
{
  return (StoreS3 *) store;
}

/* Requests */

/* The request path for @key (NULL: the bucket itself), percent-encoded as S3 signs it. */
static char *
request_path (StoreS3    *self,
              const char *key)
{
  g_autofree char *escaped = key ? g_uri_escape_string (key, "/", FALSE) : NULL;

  if (self->virtual_host)
    return g_strconcat ("/", escaped, NULL);
  return escaped ? g_strconcat ("/", self->bucket, "/", escaped, NULL)
                 : g_strconcat ("/", self->bucket, NULL);
}

/* S3 error codes that mean "our keys are not good here", and "try again later". */
static const char *denied_codes[] = {
  "AccessDenied", "SignatureDoesNotMatch", "InvalidAccessKeyId", "ExpiredToken",
  "InvalidToken", "RequestTimeTooSkewed", "AuthorizationHeaderMalformed", "AllAccessDisabled",
};
static const char *unavailable_codes[] = {
  "SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "OperationAborted",
};

static SrvStoreError
error_for (guint status, const char *code, gboolean bucket_request)
{
  if (code != NULL)
    {
      for (gsize i = 0; i < G_N_ELEMENTS (denied_codes); i++)
        if (strcmp (code, denied_codes[i]) == 0)
          return SRV_STORE_ERROR_ACCESS_DENIED;
      for (gsize i = 0; i < G_N_ELEMENTS (unavailable_codes); i++)
        if (strcmp (code, unavailable_codes[i]) == 0)
          return SRV_STORE_ERROR_UNAVAILABLE;
      /* Every other code we know by name is one of ours. */
      for (int e = 0; e <= SRV_STORE_ERROR_NOT_IMPLEMENTED; e++)
        {
          GError probe = { SRV_STORE_ERROR, e, (char *) "" };

          if (e != SRV_STORE_ERROR_INTERNAL && strcmp (srv_store_error_s3 (&probe, NULL), code) == 0)
            return e;
        }
    }
  if (status == SOUP_STATUS_NOT_FOUND)
    return bucket_request ? SRV_STORE_ERROR_NO_SUCH_BUCKET : SRV_STORE_ERROR_NO_SUCH_KEY;
  if (status == SOUP_STATUS_FORBIDDEN || status == SOUP_STATUS_UNAUTHORIZED)
    return SRV_STORE_ERROR_ACCESS_DENIED;
  if (status == SOUP_STATUS_REQUESTED_RANGE_NOT_SATISFIABLE)
    return SRV_STORE_ERROR_INVALID_RANGE;
  if (status == SOUP_STATUS_NOT_IMPLEMENTED)
    return SRV_STORE_ERROR_NOT_IMPLEMENTED;
  if (status >= 500 || status == 429)
    return SRV_STORE_ERROR_UNAVAILABLE;
  if (status >= 400)
    return SRV_STORE_ERROR_INVALID_ARGUMENT;
  return SRV_STORE_ERROR_INTERNAL;
}

/* Sends and checks the status. Returns the body stream of a 2xx answer and *@message; NULL
 * with @error mapped onto SRV_STORE_ERROR otherwise (G_IO_ERROR_CANCELLED stays as it is). */
static GInputStream *
call (StoreS3              *self,
      const char           *method,
      const char           *key,
      const char           *query,
      const MpSigv4Header  *headers,
      gsize                 n_headers,
      GInputStream         *body,
      gint64                body_size,
      const char           *content_type,
      SoupMessage         **message,
      GCancellable         *cancellable,
      GError              **error)
{
  g_autofree char *path = request_path (self, key);
  g_autoptr(GError) local_error = NULL;
  g_autoptr(GInputStream) in = NULL;
  g_autoptr(SoupMessage) msg = NULL;
  g_autoptr(GBytes) error_body = NULL;
  g_autofree char *code = NULL;
  g_autofree char *text = NULL;
  SrvRemoteRequest request = {
    .method = method, .host = self->virtual_host, .path = path, .query = query,
    .headers = headers, .n_headers = n_headers, .service = "s3", .flags = MP_SIGV4_FLAGS_S3,
    .body_stream = body, .body_size = body_size, .content_type = content_type,
  };
  const char *what = key ? key : "";
  guint status;

  in = srv_remote_send (self->remote, &request, &msg, cancellable, &local_error);
  if (in == NULL)
    {
      if (g_error_matches (local_error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        g_propagate_error (error, g_steal_pointer (&local_error));
      else
        g_set_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_UNAVAILABLE,
                     "cannot reach the remote store: %s", local_error->message);
      return NULL;
    }
  status = soup_message_get_status (msg);
  if (SOUP_STATUS_IS_SUCCESSFUL (status))
    {
      *message = g_steal_pointer (&msg);
      return g_steal_pointer (&in);
    }

  if (strcmp (method, "HEAD") != 0)
    error_body = srv_remote_read_all (in, SRV_REMOTE_ERROR_BODY_MAX, cancellable, NULL);
  srv_remote_parse_error (error_body, &code, &text);
  g_set_error (error, SRV_STORE_ERROR, error_for (status, code, key == NULL),
               "the remote store answered %u%s%s to %s %s/%s%s%s", status,
               code ? " " : "", code ? code : "", method, self->bucket, what,
               text && *text ? ": " : "", text ? text : "");
  return NULL;
}

/* Object info */

static gint64
header_time_us (SoupMessageHeaders *headers,
                const char         *name)
{
  const char *value = soup_message_headers_get_one (headers, name);
  g_autoptr(GDateTime) dt = value ? soup_date_time_new_from_http_string (value) : NULL;

  return dt ? g_date_time_to_unix (dt) * G_USEC_PER_SEC : 0;
}

/* The MD5 a plain ETag is: 32 hex digits in quotes. Multipart ("-N") and SSE-KMS ETags
 * are not digests of the bytes. */
static char *
md5_of_etag (const char *etag)
{
  g_autofree char *bare = NULL;

  if (etag == NULL)
    return NULL;
  bare = g_ascii_strdown (etag[0] == '"' ? etag + 1 : etag, -1);
  if (bare[0] && bare[strlen (bare) - 1] == '"')
    bare[strlen (bare) - 1] = '\0';
  if (strlen (bare) != 32)
    return NULL;
  for (const char *c = bare; *c; c++)
    if (!g_ascii_isxdigit (*c))
      return NULL;
  return g_steal_pointer (&bare);
}

/* A full-object SHA-256 checksum (x-amz-checksum-sha256, base64) as lowercase hex; NULL for
 * none or for a composite one (multipart uploads: a checksum of checksums, "...-N"). */
static char *
sha256_of_checksum (SoupMessageHeaders *headers)
{
  const char *value = soup_message_headers_get_one (headers, "x-amz-checksum-sha256");
  const char *type = soup_message_headers_get_one (headers, "x-amz-checksum-type");
  g_autofree guchar *raw = NULL;
  gsize len = 0;
  GString *hex;

  if (value == NULL || strchr (value, '-') != NULL || strlen (value) != 44 ||
      (type != NULL && g_ascii_strcasecmp (type, "FULL_OBJECT") != 0))
    return NULL;
  raw = g_base64_decode (value, &len);
  if (len != 32)
    return NULL;
  hex = g_string_sized_new (64);
  for (gsize i = 0; i < len; i++)
    g_string_append_printf (hex, "%02x", raw[i]);
  return g_string_free (hex, FALSE);
}

static void
collect_metadata (const char *name,
                  const char *value,
                  gpointer    user_data)
{
  GHashTable *metadata = user_data;

  if (g_ascii_strncasecmp (name, S3_META_PREFIX, strlen (S3_META_PREFIX)) == 0 &&
      name[strlen (S3_META_PREFIX)] != '\0')
    g_hash_table_replace (metadata, g_ascii_strdown (name + strlen (S3_META_PREFIX), -1),
                          g_strdup (value));
}

static SrvObjectInfo *
info_from_response (const char  *key,
                    SoupMessage *msg,
                    gint64       size)
{
  SoupMessageHeaders *headers = soup_message_get_response_headers (msg);
  SrvObjectInfo *info = g_new0 (SrvObjectInfo, 1);
  const char *etag = soup_message_headers_get_one (headers, "ETag");
  const char *content_type = soup_message_headers_get_one (headers, "Content-Type");

  info->key = g_strdup (key);
  info->size = size;
  info->etag = etag ? g_strdup (etag) : NULL;
  info->md5 = md5_of_etag (etag);
  info->sha256 = sha256_of_checksum (headers);
  info->content_type = g_strdup (content_type);
  info->metadata = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  soup_message_headers_foreach (headers, collect_metadata, info->metadata);
  info->last_modified = header_time_us (headers, "Last-Modified");
  return info;
}

static gboolean
content_length (SoupMessage  *msg,
                const char   *key,
                gint64       *size,
                GError      **error)
{
  SoupMessageHeaders *headers = soup_message_get_response_headers (msg);

  if (soup_message_headers_get_encoding (headers) != SOUP_ENCODING_CONTENT_LENGTH)
    {
      g_set_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_INTERNAL,
                   "the remote store sent %s without a Content-Length", key);
      return FALSE;
    }
  *size = soup_message_headers_get_content_length (headers);
  return TRUE;
}

/* The backend */

static SrvStore *
s3_open (const char             *data_dir,
         const char * const     *buckets,
         const SrvStoreOptions  *options,
         GError                **error)
{
  g_autoptr(GError) local_error = NULL;
  StoreS3 *self;
  SrvRemote *remote;

  if (buckets == NULL || buckets[0] == NULL)
    {
      g_set_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_INVALID_ARGUMENT,
                   "the s3 store needs the name of the bucket it serves");
      return NULL;
    }
  if (options->endpoint == NULL || options->region == NULL ||
      options->access_key_id == NULL || options->secret_access_key == NULL)
    {
      g_set_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_INVALID_ARGUMENT,
                   "the s3 store needs an endpoint, a region and an access key pair");
      return NULL;
    }
  remote = srv_remote_new (options->endpoint, options->region, options->access_key_id,
                           options->secret_access_key, &local_error);
  if (remote == NULL)
    {
      g_set_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_INVALID_ARGUMENT,
                   "the s3 store's endpoint: %s", local_error->message);
      return NULL;
    }

  self = g_new0 (StoreS3, 1);
  self->parent.vt = &srv_store_s3_vtable;
  self->remote = remote;
  self->bucket = g_strdup (buckets[0]);
  if (options->virtual_hosted)
    self->virtual_host = g_strconcat (self->bucket, ".", srv_remote_host (remote), NULL);
  self->opened = g_get_real_time ();
  self->max_object_size = options->max_object_size ? options->max_object_size
                                                   : SRV_STORE_MAX_OBJECT_SIZE_DEFAULT;
  return &self->parent;
}

static void
s3_close (SrvStore *store)
{
  StoreS3 *self = S3 (store);

  srv_remote_free (self->remote);
  g_free (self->bucket);
  g_free (self->virtual_host);
  g_free (self);
}

static GPtrArray *
s3_list_buckets (SrvStore *store)
{
  GPtrArray *out = g_ptr_array_new_with_free_func ((GDestroyNotify) srv_bucket_info_free);
  SrvBucketInfo *info = g_new0 (SrvBucketInfo, 1);

  info->name = g_strdup (S3 (store)->bucket);
  info->created = S3 (store)->opened;
  g_ptr_array_add (out, info);
  return out;
}

/* Cheap and local: the front asks before every operation. srv_store_ping() asks the remote. */
static gboolean
s3_head_bucket (SrvStore    *store,
                const char  *bucket,
                GError     **error)
{
  if (strcmp (bucket, S3 (store)->bucket) == 0)
    return TRUE;
  g_set_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_NO_SUCH_BUCKET,
               "this server serves bucket %s of the remote store, not %s", S3 (store)->bucket,
               bucket);
  return FALSE;
}

static gboolean
s3_ping (SrvStore    *store,
         const char  *bucket,
         GError     **error)
{
  g_autoptr(SoupMessage) msg = NULL;
  g_autoptr(GInputStream) in = call (S3 (store), "HEAD", NULL, NULL, NULL, 0, NULL, 0, NULL,
                                     &msg, NULL, error);

  return in != NULL;
}

static SrvObjectInfo *
s3_put (SrvStore      *store,
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
  StoreS3 *self = S3 (store);
  g_autoptr(GArray) headers = g_array_new (FALSE, FALSE, sizeof (MpSigv4Header));
  g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(SoupMessage) msg = NULL;
  g_autoptr(GInputStream) in = NULL;
  SrvObjectInfo *info;

  if (expected_size < 0)
    {
      /* PutObject has no chunked bodies, and spooling an unbounded one is not our job. */
      g_set_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_INVALID_ARGUMENT,
                   "the s3 store needs the size of a body before sending it");
      return NULL;
    }
  if (expected_size > self->max_object_size)
    {
      g_set_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_ENTITY_TOO_LARGE,
                   "%" G_GINT64_FORMAT " bytes is over the single-PUT limit of %" G_GINT64_FORMAT,
                   expected_size, self->max_object_size);
      return NULL;
    }
  if (content_md5 != NULL)
    {
      MpSigv4Header h = { "content-md5", content_md5 };

      g_array_append_val (headers, h);
    }
  if (metadata != NULL)
    {
      GHashTableIter iter;
      gpointer k, v;

      g_hash_table_iter_init (&iter, metadata);
      while (g_hash_table_iter_next (&iter, &k, &v))
        {
          char *name = g_strconcat (S3_META_PREFIX, (const char *) k, NULL);
          MpSigv4Header h = { name, v ? v : "" };

          g_ptr_array_add (names, name);
          g_array_append_val (headers, h);
        }
    }
  in = call (self, "PUT", key, NULL, (const MpSigv4Header *) headers->data, headers->len, body,
             expected_size, content_type ? content_type : "binary/octet-stream", &msg,
             cancellable, error);
  if (in == NULL)
    return NULL;
  info = info_from_response (key, msg, expected_size);
  g_clear_pointer (&info->metadata, g_hash_table_unref);
  info->metadata = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  if (metadata != NULL)
    {
      GHashTableIter iter;
      gpointer k, v;

      g_hash_table_iter_init (&iter, metadata);
      while (g_hash_table_iter_next (&iter, &k, &v))
        g_hash_table_replace (info->metadata, g_ascii_strdown (k, -1), g_strdup (v));
    }
  g_free (info->content_type);
  info->content_type = g_strdup (content_type);
  info->last_modified = g_get_real_time ();
  return info;
}

static SrvObjectInfo *
s3_head (SrvStore    *store,
         const char  *bucket,
         const char  *key,
         GError     **error)
{
  /* Asks for the stored checksums, so an upload made with x-amz-checksum-sha256 gives the
   * catalog its SHA-256 without reading the object. */
  static const MpSigv4Header headers[] = { { "x-amz-checksum-mode", "ENABLED" } };
  g_autoptr(SoupMessage) msg = NULL;
  g_autoptr(GInputStream) in = NULL;
  gint64 size;

  in = call (S3 (store), "HEAD", key, NULL, headers, G_N_ELEMENTS (headers), NULL, 0, NULL, &msg,
             NULL, error);
  if (in == NULL || !content_length (msg, key, &size, error))
    return NULL;
  return info_from_response (key, msg, size);
}

static GInputStream *
s3_open_read (SrvStore       *store,
              const char     *bucket,
              const char     *key,
              const char     *range,
              SrvObjectInfo **info,
              SrvByteRange   *served,
              gboolean       *partial,
              GError        **error)
{
  MpSigv4Header headers[] = { { "range", range } };
  g_autoptr(SoupMessage) msg = NULL;
  g_autoptr(GInputStream) in = NULL;
  SoupMessageHeaders *response;
  gint64 length;

  in = call (S3 (store), "GET", key, NULL, headers, range ? 1 : 0, NULL, 0, NULL, &msg, NULL,
             error);
  if (in == NULL || !content_length (msg, key, &length, error))
    return NULL;
  response = soup_message_get_response_headers (msg);
  if (soup_message_get_status (msg) == SOUP_STATUS_PARTIAL_CONTENT)
    {
      goffset first, last, total;

      if (!soup_message_headers_get_content_range (response, &first, &last, &total) ||
          total < 0 || last - first + 1 != length)
        {
          g_set_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_INTERNAL,
                       "the remote store answered a range of %s with a Content-Range that "
                       "does not match its body", key);
          return NULL;
        }
      *served = (SrvByteRange) { first, last };
      *partial = TRUE;
      *info = info_from_response (key, msg, total);
    }
  else
    {
      *served = (SrvByteRange) { 0, length - 1 };
      *partial = FALSE;
      *info = info_from_response (key, msg, length);
    }
  return g_steal_pointer (&in);
}

static gboolean
s3_delete (SrvStore    *store,
           const char  *bucket,
           const char  *key,
           GError     **error)
{
  g_autoptr(GError) local_error = NULL;
  g_autoptr(SoupMessage) msg = NULL;
  g_autoptr(GInputStream) in = call (S3 (store), "DELETE", key, NULL, NULL, 0, NULL, 0, NULL,
                                     &msg, NULL, &local_error);

  /* S3 answers 204 for a missing key; some services say NoSuchKey. Either way it is gone. */
  if (in != NULL || g_error_matches (local_error, SRV_STORE_ERROR, SRV_STORE_ERROR_NO_SUCH_KEY))
    return TRUE;
  g_propagate_error (error, g_steal_pointer (&local_error));
  return FALSE;
}

/* One request per key: DeleteObjects would need Content-MD5 and XML both ways, and magpied
 * deletes one photo at a time. */
static gboolean
s3_delete_many (SrvStore    *store,
                const char  *bucket,
                GPtrArray   *results,
                GError     **error)
{
  for (guint i = 0; i < results->len; i++)
    {
      SrvDeleteResult *r = g_ptr_array_index (results, i);

      if (r->error == NULL)
        s3_delete (store, bucket, r->key, &r->error);
    }
  return TRUE;
}

static void
add_param (GString    *query,
           const char *name,
           const char *value)
{
  g_autofree char *escaped = NULL;

  if (value == NULL)
    return;
  escaped = g_uri_escape_string (value, NULL, FALSE);
  g_string_append_printf (query, "%s%s=%s", query->len ? "&" : "", name, escaped);
}

static gint64
iso8601_us (const char *text)
{
  g_autoptr(GDateTime) dt = text ? g_date_time_new_from_iso8601 (text, NULL) : NULL;

  return dt ? g_date_time_to_unix (dt) * G_USEC_PER_SEC + g_date_time_get_microsecond (dt) : 0;
}

static SrvListResult *
s3_list_v2 (SrvStore    *store,
            const char  *bucket,
            const char  *prefix,
            const char  *delimiter,
            int          max_keys,
            const char  *start_after,
            const char  *continuation_token,
            GError     **error)
{
  g_autoptr(GString) query = g_string_new (NULL);
  g_autoptr(SoupMessage) msg = NULL;
  g_autoptr(GInputStream) in = NULL;
  g_autoptr(GBytes) body = NULL;
  g_autoptr(SrvXmlNode) root = NULL;
  g_autoptr(SrvListResult) result = NULL;
  g_autoptr(GError) local_error = NULL;
  g_autofree char *max = g_strdup_printf ("%d", max_keys);
  const char *data;
  gsize len;

  add_param (query, "continuation-token", continuation_token);
  add_param (query, "delimiter", delimiter && *delimiter ? delimiter : NULL);
  add_param (query, "list-type", "2");
  add_param (query, "max-keys", max);
  add_param (query, "prefix", prefix && *prefix ? prefix : NULL);
  add_param (query, "start-after", start_after && *start_after ? start_after : NULL);
  in = call (S3 (store), "GET", NULL, query->str, NULL, 0, NULL, 0, NULL, &msg, NULL, error);
  if (in == NULL)
    return NULL;
  body = srv_remote_read_all (in, SRV_XML_MAX_BYTES, NULL, &local_error);
  data = body ? g_bytes_get_data (body, &len) : NULL;
  root = body ? srv_xml_parse (data ? data : "", len, &local_error) : NULL;
  if (root == NULL || strcmp (root->name, "ListBucketResult") != 0)
    {
      g_set_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_INTERNAL,
                   "the remote store's listing of %s is unreadable: %s", S3 (store)->bucket,
                   local_error ? local_error->message : "not a ListBucketResult");
      return NULL;
    }

  result = g_new0 (SrvListResult, 1);
  result->contents = g_ptr_array_new_with_free_func ((GDestroyNotify) srv_object_info_free);
  result->common_prefixes = g_ptr_array_new_with_free_func (g_free);
  for (guint i = 0; i < root->children->len; i++)
    {
      SrvXmlNode *child = g_ptr_array_index (root->children, i);

      if (strcmp (child->name, "Contents") == 0)
        {
          SrvObjectInfo *info = g_new0 (SrvObjectInfo, 1);
          const char *size = srv_xml_child_text (child, "Size");
          const char *etag = srv_xml_child_text (child, "ETag");

          info->key = g_strdup (srv_xml_child_text (child, "Key"));
          info->size = size ? g_ascii_strtoll (size, NULL, 10) : 0;
          info->etag = g_strdup (etag);
          info->md5 = md5_of_etag (etag);
          info->last_modified = iso8601_us (srv_xml_child_text (child, "LastModified"));
          if (info->key == NULL)
            {
              srv_object_info_free (info);
              continue;
            }
          g_ptr_array_add (result->contents, info);
        }
      else if (strcmp (child->name, "CommonPrefixes") == 0 &&
               srv_xml_child_text (child, "Prefix") != NULL)
        g_ptr_array_add (result->common_prefixes,
                         g_strdup (srv_xml_child_text (child, "Prefix")));
    }
  result->is_truncated = g_strcmp0 (srv_xml_child_text (root, "IsTruncated"), "true") == 0;
  if (result->is_truncated)
    result->next_continuation_token =
      g_strdup (srv_xml_child_text (root, "NextContinuationToken"));
  return g_steal_pointer (&result);
}

static gboolean
not_implemented (const char *what, GError **error)
{
  g_set_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_NOT_IMPLEMENTED,
               "%s is not available through magpied when it uses a remote store; clients use "
               "the store itself", what);
  return FALSE;
}

static SrvObjectInfo *
s3_copy (SrvStore *store, const char *src_bucket, const char *src_key, const char *dst_bucket,
         const char *dst_key, SrvMetadataDirective directive, const char *content_type,
         GHashTable *metadata, GCancellable *cancellable, GError **error)
{
  return not_implemented ("CopyObject", error), NULL;
}

static char *
s3_create_upload (SrvStore *store, const char *bucket, const char *key,
                  const char *content_type, GHashTable *metadata, GError **error)
{
  return not_implemented ("CreateMultipartUpload", error), NULL;
}

static SrvPartInfo *
s3_upload_part (SrvStore *store, const char *bucket, const char *key, const char *upload_id,
                guint number, GInputStream *body, gint64 expected_size, const char *content_md5,
                GCancellable *cancellable, GError **error)
{
  return not_implemented ("UploadPart", error), NULL;
}

static SrvPartList *
s3_list_parts (SrvStore *store, const char *bucket, const char *key, const char *upload_id,
               guint part_number_marker, int max_parts, GError **error)
{
  return not_implemented ("ListParts", error), NULL;
}

static SrvUploadList *
s3_list_uploads (SrvStore *store, const char *bucket, const char *prefix,
                 const char *key_marker, const char *upload_id_marker, int max_uploads,
                 GError **error)
{
  return not_implemented ("ListMultipartUploads", error), NULL;
}

static gboolean
s3_abort_upload (SrvStore *store, const char *bucket, const char *key, const char *upload_id,
                 GError **error)
{
  return not_implemented ("AbortMultipartUpload", error);
}

static SrvObjectInfo *
s3_complete_upload (SrvStore *store, const char *bucket, const char *key,
                    const char *upload_id, const SrvCompletedPart *parts, guint n_parts,
                    GCancellable *cancellable, GError **error)
{
  return not_implemented ("CompleteMultipartUpload", error), NULL;
}

/* The service keeps no counters we could read cheaply; /metrics leaves the store gauges out. */
static void
s3_usage (SrvStore      *store,
          SrvStoreUsage *usage)
{
  *usage = (SrvStoreUsage) { 0 };
}

/* Nothing local to repair: the service owns durability. */
static gboolean
s3_fsck (SrvStore           *store,
         SrvStoreFsckReport *report,
         GError            **error)
{
  *report = (SrvStoreFsckReport) { 0 };
  return TRUE;
}

const SrvStoreVTable srv_store_s3_vtable = {
  .name = "s3",
  .open = s3_open,
  .close = s3_close,
  .list_buckets = s3_list_buckets,
  .head_bucket = s3_head_bucket,
  .put = s3_put,
  .head = s3_head,
  .open_read = s3_open_read,
  .delete = s3_delete,
  .delete_many = s3_delete_many,
  .list_v2 = s3_list_v2,
  .copy = s3_copy,
  .create_upload = s3_create_upload,
  .upload_part = s3_upload_part,
  .list_parts = s3_list_parts,
  .list_uploads = s3_list_uploads,
  .abort_upload = s3_abort_upload,
  .complete_upload = s3_complete_upload,
  .usage = s3_usage,
  .fsck = s3_fsck,
  .ping = s3_ping,
};
