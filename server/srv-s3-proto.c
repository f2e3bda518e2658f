/* srv-s3-proto.c - the S3 wire protocol's pure parts: operation routing, error codes, XML */
#define G_LOG_DOMAIN "srv-s3"

#include "config.h"

#include "srv-s3-proto.h"

#include <libsoup/soup.h>
#include <string.h>

#include "mp-sigv4.h"
#include "srv-token.h"

#define S3_XMLNS "http://s3.amazonaws.com/doc/2006-03-01/"
#define XML_DECL "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"

G_DEFINE_QUARK (srv-s3-error-quark, srv_s3_error)

static const struct {
  const char *code;
  guint       status;
} s3_errors[] = {
  [SRV_S3_ERROR_ACCESS_DENIED]            = { "AccessDenied", 403 },
  [SRV_S3_ERROR_SIGNATURE_DOES_NOT_MATCH] = { "SignatureDoesNotMatch", 403 },
  [SRV_S3_ERROR_INVALID_ACCESS_KEY_ID]    = { "InvalidAccessKeyId", 403 },
  /* AWS answers these two with 400; clients treat both as final, and a 403 keeps every
   * authentication failure in one class for proxies and dashboards. */
  [SRV_S3_ERROR_EXPIRED_TOKEN]            = { "ExpiredToken", 403 },
  [SRV_S3_ERROR_INVALID_TOKEN]            = { "InvalidToken", 403 },
  [SRV_S3_ERROR_REQUEST_TIME_TOO_SKEWED]  = { "RequestTimeTooSkewed", 403 },
  [SRV_S3_ERROR_AUTH_HEADER_MALFORMED]    = { "AuthorizationHeaderMalformed", 400 },
  [SRV_S3_ERROR_AUTH_QUERY_ERROR]         = { "AuthorizationQueryParametersError", 400 },
  [SRV_S3_ERROR_CONTENT_SHA256_MISMATCH]  = { "XAmzContentSHA256Mismatch", 400 },
  [SRV_S3_ERROR_INVALID_REQUEST]          = { "InvalidRequest", 400 },
  [SRV_S3_ERROR_INVALID_ARGUMENT]         = { "InvalidArgument", 400 },
  [SRV_S3_ERROR_MALFORMED_XML]            = { "MalformedXML", 400 },
  [SRV_S3_ERROR_INCOMPLETE_BODY]          = { "IncompleteBody", 400 },
  [SRV_S3_ERROR_ENTITY_TOO_LARGE]         = { "EntityTooLarge", 400 },
  [SRV_S3_ERROR_MISSING_CONTENT_LENGTH]   = { "MissingContentLength", 411 },
  [SRV_S3_ERROR_NO_SUCH_BUCKET]           = { "NoSuchBucket", 404 },
  [SRV_S3_ERROR_BUCKET_OWNED]             = { "BucketAlreadyOwnedByYou", 409 },
  [SRV_S3_ERROR_METHOD_NOT_ALLOWED]       = { "MethodNotAllowed", 405 },
  [SRV_S3_ERROR_NOT_IMPLEMENTED]          = { "NotImplemented", 501 },
  [SRV_S3_ERROR_PRECONDITION_FAILED]      = { "PreconditionFailed", 412 },
  [SRV_S3_ERROR_INTERNAL]                 = { "InternalError", 500 },
};

static const char *op_names[SRV_S3_N_OPS] = {
  [SRV_S3_OP_LIST_BUCKETS]        = "ListBuckets",
  [SRV_S3_OP_HEAD_BUCKET]         = "HeadBucket",
  [SRV_S3_OP_CREATE_BUCKET]       = "CreateBucket",
  [SRV_S3_OP_GET_BUCKET_LOCATION] = "GetBucketLocation",
  [SRV_S3_OP_LIST_OBJECTS]        = "ListObjects",
  [SRV_S3_OP_LIST_OBJECTS_V2]     = "ListObjectsV2",
  [SRV_S3_OP_LIST_UPLOADS]        = "ListMultipartUploads",
  [SRV_S3_OP_DELETE_OBJECTS]      = "DeleteObjects",
  [SRV_S3_OP_PUT_OBJECT]          = "PutObject",
  [SRV_S3_OP_COPY_OBJECT]         = "CopyObject",
  [SRV_S3_OP_GET_OBJECT]          = "GetObject",
  [SRV_S3_OP_HEAD_OBJECT]         = "HeadObject",
  [SRV_S3_OP_DELETE_OBJECT]       = "DeleteObject",
  [SRV_S3_OP_CREATE_UPLOAD]       = "CreateMultipartUpload",
  [SRV_S3_OP_UPLOAD_PART]         = "UploadPart",
  [SRV_S3_OP_COMPLETE_UPLOAD]     = "CompleteMultipartUpload",
  [SRV_S3_OP_ABORT_UPLOAD]        = "AbortMultipartUpload",
  [SRV_S3_OP_LIST_PARTS]          = "ListParts",
};

const char *
srv_s3_op_name (SrvS3Op op)
{
  g_return_val_if_fail (op < SRV_S3_N_OPS, "Unknown");
  return op_names[op];
}

static SrvS3Error
sigv4_to_s3 (const GError *error)
{
  switch ((MpSigv4Error) error->code)
    {
    case MP_SIGV4_ERROR_MISSING_AUTH:
      return SRV_S3_ERROR_ACCESS_DENIED;
    case MP_SIGV4_ERROR_UNSUPPORTED_ALGORITHM:
      return SRV_S3_ERROR_INVALID_REQUEST;
    case MP_SIGV4_ERROR_MISSING_SIGNED_HEADER:
      return SRV_S3_ERROR_ACCESS_DENIED;
    case MP_SIGV4_ERROR_MALFORMED:
    case MP_SIGV4_ERROR_SCOPE_MISMATCH:
      return SRV_S3_ERROR_AUTH_HEADER_MALFORMED;
    case MP_SIGV4_ERROR_UNKNOWN_ACCESS_KEY:
      return SRV_S3_ERROR_INVALID_ACCESS_KEY_ID;
    case MP_SIGV4_ERROR_REQUEST_EXPIRED:
      return SRV_S3_ERROR_ACCESS_DENIED;
    case MP_SIGV4_ERROR_CLOCK_SKEW:
      return SRV_S3_ERROR_REQUEST_TIME_TOO_SKEWED;
    case MP_SIGV4_ERROR_SIGNATURE_MISMATCH:
      return SRV_S3_ERROR_SIGNATURE_DOES_NOT_MATCH;
    case MP_SIGV4_ERROR_CHUNK_TOO_LARGE:
      return SRV_S3_ERROR_INVALID_REQUEST;
    case MP_SIGV4_ERROR_LENGTH_MISMATCH:
    case MP_SIGV4_ERROR_TRUNCATED:
      return SRV_S3_ERROR_INCOMPLETE_BODY;
    default:
      return SRV_S3_ERROR_INTERNAL;
    }
}

const char *
srv_s3_error_code (const GError *error,
                   guint        *http_status)
{
  SrvS3Error e = SRV_S3_ERROR_INTERNAL;

  if (error != NULL && error->domain == SRV_STORE_ERROR)
    return srv_store_error_s3 (error, http_status);
  if (error != NULL && error->domain == SRV_S3_ERROR &&
      error->code >= 0 && (guint) error->code < G_N_ELEMENTS (s3_errors))
    e = error->code;
  else if (error != NULL && error->domain == MP_SIGV4_ERROR)
    e = sigv4_to_s3 (error);
  else if (error != NULL && error->domain == SRV_TOKEN_ERROR)
    e = error->code == SRV_TOKEN_ERROR_EXPIRED ? SRV_S3_ERROR_EXPIRED_TOKEN
                                               : SRV_S3_ERROR_INVALID_TOKEN;
  if (http_status)
    *http_status = s3_errors[e].status;
  return s3_errors[e].code;
}

/* ---- routing ----------------------------------------------------------------------------- */

/* Subresources of buckets and objects that exist in S3 but not here: answered NotImplemented
 * rather than misread as a plain GET or PUT of the object. */
static const char * const unserved_subresources[] = {
  "accelerate", "acl", "analytics", "attributes", "cors", "encryption", "intelligent-tiering",
  "inventory", "legal-hold", "lifecycle", "logging", "metrics", "notification", "object-lock",
  "ownershipControls", "policy", "policyStatus", "publicAccessBlock", "replication",
  "requestPayment", "restore", "retention", "select", "tagging", "torrent", "versioning",
  "versions", "website",
};

static gboolean
has (GHashTable *query,
     const char *name)
{
  return query != NULL && g_hash_table_contains (query, name);
}

static const char *
unserved (GHashTable *query)
{
  for (guint i = 0; i < G_N_ELEMENTS (unserved_subresources); i++)
    if (has (query, unserved_subresources[i]))
      return unserved_subresources[i];
  return NULL;
}

static gboolean
route_bucket (const char *method,
              GHashTable *query,
              SrvS3Route *route,
              GError    **error)
{
  const char *sub = unserved (query);

  if (sub != NULL)
    {
      g_set_error (error, SRV_S3_ERROR, SRV_S3_ERROR_NOT_IMPLEMENTED,
                   "the bucket subresource '%s' is not implemented", sub);
      return FALSE;
    }
  if (strcmp (method, "GET") == 0)
    {
      const char *list_type = query ? g_hash_table_lookup (query, "list-type") : NULL;

      if (has (query, "location"))
        route->op = SRV_S3_OP_GET_BUCKET_LOCATION;
      else if (has (query, "uploads"))
        route->op = SRV_S3_OP_LIST_UPLOADS;
      else if (list_type != NULL && strcmp (list_type, "2") == 0)
        route->op = SRV_S3_OP_LIST_OBJECTS_V2;
      else if (list_type != NULL)
        {
          g_set_error (error, SRV_S3_ERROR, SRV_S3_ERROR_INVALID_ARGUMENT,
                       "list-type must be 2 (or absent for ListObjects)");
          return FALSE;
        }
      else
        route->op = SRV_S3_OP_LIST_OBJECTS;
      return TRUE;
    }
  if (strcmp (method, "HEAD") == 0)
    route->op = SRV_S3_OP_HEAD_BUCKET;
  else if (strcmp (method, "PUT") == 0)
    route->op = SRV_S3_OP_CREATE_BUCKET;
  else if (strcmp (method, "POST") == 0 && has (query, "delete"))
    route->op = SRV_S3_OP_DELETE_OBJECTS;
  else if (strcmp (method, "DELETE") == 0 || strcmp (method, "POST") == 0)
    {
      g_set_error (error, SRV_S3_ERROR, SRV_S3_ERROR_NOT_IMPLEMENTED,
                   "%s on a bucket is not implemented", method);
      return FALSE;
    }
  else
    {
      g_set_error (error, SRV_S3_ERROR, SRV_S3_ERROR_METHOD_NOT_ALLOWED,
                   "%s is not allowed on a bucket", method);
      return FALSE;
    }
  return TRUE;
}

static gboolean
route_object (const char *method,
              GHashTable *query,
              gboolean    has_copy_source,
              SrvS3Route *route,
              GError    **error)
{
  const char *sub = unserved (query);

  if (sub != NULL)
    {
      g_set_error (error, SRV_S3_ERROR, SRV_S3_ERROR_NOT_IMPLEMENTED,
                   "the object subresource '%s' is not implemented", sub);
      return FALSE;
    }
  if (strcmp (method, "GET") == 0)
    route->op = has (query, "uploadId") ? SRV_S3_OP_LIST_PARTS : SRV_S3_OP_GET_OBJECT;
  else if (strcmp (method, "HEAD") == 0)
    route->op = SRV_S3_OP_HEAD_OBJECT;
  else if (strcmp (method, "PUT") == 0)
    {
      if (has (query, "uploadId") || has (query, "partNumber"))
        {
          if (has_copy_source)
            {
              g_set_error (error, SRV_S3_ERROR, SRV_S3_ERROR_NOT_IMPLEMENTED,
                           "UploadPartCopy is not implemented");
              return FALSE;
            }
          if (!has (query, "uploadId") || !has (query, "partNumber"))
            {
              g_set_error (error, SRV_S3_ERROR, SRV_S3_ERROR_INVALID_ARGUMENT,
                           "UploadPart needs both uploadId and partNumber");
              return FALSE;
            }
          route->op = SRV_S3_OP_UPLOAD_PART;
        }
      else
        route->op = has_copy_source ? SRV_S3_OP_COPY_OBJECT : SRV_S3_OP_PUT_OBJECT;
    }
  else if (strcmp (method, "POST") == 0)
    {
      if (has (query, "uploads"))
        route->op = SRV_S3_OP_CREATE_UPLOAD;
      else if (has (query, "uploadId"))
        route->op = SRV_S3_OP_COMPLETE_UPLOAD;
      else
        {
          g_set_error (error, SRV_S3_ERROR, SRV_S3_ERROR_NOT_IMPLEMENTED,
                       "POST on an object needs ?uploads or ?uploadId (browser POST uploads "
                       "are not implemented)");
          return FALSE;
        }
    }
  else if (strcmp (method, "DELETE") == 0)
    route->op = has (query, "uploadId") ? SRV_S3_OP_ABORT_UPLOAD : SRV_S3_OP_DELETE_OBJECT;
  else
    {
      g_set_error (error, SRV_S3_ERROR, SRV_S3_ERROR_METHOD_NOT_ALLOWED,
                   "%s is not allowed on an object", method);
      return FALSE;
    }
  return TRUE;
}

gboolean
srv_s3_route (const char *method,
              const char *raw_path,
              GHashTable *query,
              gboolean    has_copy_source,
              SrvS3Route *route,
              GError    **error)
{
  const char *p;
  const char *slash;
  g_autofree char *bucket = NULL;
  g_autofree char *key = NULL;

  g_return_val_if_fail (raw_path != NULL && raw_path[0] == '/', FALSE);
  memset (route, 0, sizeof *route);

  p = raw_path + 1;
  if (*p == '\0')
    {
      if (strcmp (method, "GET") != 0 && strcmp (method, "HEAD") != 0)
        {
          g_set_error (error, SRV_S3_ERROR, SRV_S3_ERROR_METHOD_NOT_ALLOWED,
                       "only GET (ListBuckets) is allowed on /");
          return FALSE;
        }
      route->op = SRV_S3_OP_LIST_BUCKETS;
      return TRUE;
    }

  slash = strchr (p, '/');
  bucket = slash ? g_uri_unescape_segment (p, slash, NULL) : g_uri_unescape_string (p, NULL);
  if (bucket == NULL || *bucket == '\0')
    {
      g_set_error (error, SRV_S3_ERROR, SRV_S3_ERROR_INVALID_ARGUMENT,
                   "the path does not name a bucket");
      return FALSE;
    }

  if (slash == NULL || slash[1] == '\0')
    {
      if (!route_bucket (method, query, route, error))
        return FALSE;
      route->bucket = g_steal_pointer (&bucket);
      return TRUE;
    }

  /* NULL for an escaped NUL: S3 keys cannot hold one. */
  key = g_uri_unescape_string (slash + 1, NULL);
  if (key == NULL)
    {
      g_set_error (error, SRV_S3_ERROR, SRV_S3_ERROR_INVALID_ARGUMENT,
                   "the object key does not decode to text without NUL");
      return FALSE;
    }
  if (!srv_store_check_key (key, strlen (key), error))
    return FALSE;
  if (!route_object (method, query, has_copy_source, route, error))
    return FALSE;
  route->bucket = g_steal_pointer (&bucket);
  route->key = g_steal_pointer (&key);
  return TRUE;
}

void
srv_s3_route_clear (SrvS3Route *route)
{
  g_clear_pointer (&route->bucket, g_free);
  g_clear_pointer (&route->key, g_free);
}

static char *
form_unescape (const char *start,
               const char *end)
{
  g_autofree char *copy = g_strndup (start, end - start);

  for (char *p = copy; *p; p++)
    if (*p == '+')
      *p = ' ';
  return g_uri_unescape_string (copy, NULL);
}

GHashTable *
srv_s3_parse_query (const char *raw_query)
{
  GHashTable *params;
  g_auto(GStrv) pairs = NULL;

  if (raw_query == NULL || *raw_query == '\0')
    return NULL;
  params = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  pairs = g_strsplit (raw_query, "&", -1);
  for (char **p = pairs; *p; p++)
    {
      const char *eq = strchr (*p, '=');
      const char *end = *p + strlen (*p);
      char *name;
      char *value;

      if (**p == '\0')
        continue;
      name = form_unescape (*p, eq ? eq : end);
      value = eq ? form_unescape (eq + 1, end) : g_strdup ("");
      if (name == NULL || value == NULL || g_hash_table_contains (params, name))
        {
          g_free (name);
          g_free (value);
          continue;
        }
      g_hash_table_insert (params, name, value);
    }
  return params;
}

gboolean
srv_s3_parse_copy_source (const char  *value,
                          char       **bucket,
                          char       **key,
                          GError     **error)
{
  g_autofree char *path = NULL;
  g_autofree char *decoded = NULL;
  const char *q;
  const char *start;
  char *slash;

  if (value == NULL)
    goto bad;
  q = strchr (value, '?');
  path = q ? g_strndup (value, q - value) : g_strdup (value);
  decoded = g_uri_unescape_string (path, NULL);
  if (decoded == NULL)
    goto bad;
  start = decoded[0] == '/' ? decoded + 1 : decoded;
  slash = strchr (start, '/');
  if (slash == NULL || slash == start || slash[1] == '\0')
    goto bad;
  if (!srv_store_check_key (slash + 1, strlen (slash + 1), error))
    return FALSE;
  *bucket = g_strndup (start, slash - start);
  *key = g_strdup (slash + 1);
  return TRUE;

bad:
  g_set_error (error, SRV_S3_ERROR, SRV_S3_ERROR_INVALID_ARGUMENT,
               "x-amz-copy-source must be /<bucket>/<key>, URL-encoded");
  return FALSE;
}

/* ---- times ------------------------------------------------------------------------------- */

char *
srv_s3_iso8601 (gint64 us)
{
  g_autoptr(GDateTime) dt = g_date_time_new_from_unix_utc (us / G_USEC_PER_SEC);

  return g_strdup_printf ("%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
                          g_date_time_get_year (dt), g_date_time_get_month (dt),
                          g_date_time_get_day_of_month (dt), g_date_time_get_hour (dt),
                          g_date_time_get_minute (dt), g_date_time_get_second (dt),
                          (int) ((us % G_USEC_PER_SEC) / 1000));
}

char *
srv_s3_http_date (gint64 us)
{
  g_autoptr(GDateTime) dt = g_date_time_new_from_unix_utc (us / G_USEC_PER_SEC);

  return soup_date_time_to_string (dt, SOUP_DATE_HTTP);
}

/* ---- XML out ----------------------------------------------------------------------------- */

static void
elem (GString    *s,
      const char *name,
      const char *text)
{
  g_autofree char *escaped = g_markup_escape_text (text ? text : "", -1);

  g_string_append_printf (s, "<%s>", name);
  /* g_markup_escape_text() leaves CR as it is, and every XML parser reads a raw CR (or CR LF)
   * as LF: a key with a CR would be listed as another key. S3 sends it as &#13;. */
  for (const char *p = escaped; *p; p++)
    {
      if (*p == '\r')
        g_string_append (s, "&#13;");
      else
        g_string_append_c (s, *p);
    }
  g_string_append_printf (s, "</%s>", name);
}

static void
elem_int (GString    *s,
          const char *name,
          gint64      value)
{
  g_string_append_printf (s, "<%s>%" G_GINT64_FORMAT "</%s>", name, value, name);
}

static void
elem_bool (GString    *s,
           const char *name,
           gboolean    value)
{
  g_string_append_printf (s, "<%s>%s</%s>", name, value ? "true" : "false", name);
}

/* encoding-type=url: what S3 escapes (everything but unreserved characters and '/'). */
static void
elem_key (GString    *s,
          const char *name,
          const char *text,
          gboolean    url_encode)
{
  if (url_encode && text != NULL)
    {
      g_autofree char *enc = g_uri_escape_string (text, "/", FALSE);

      elem (s, name, enc);
    }
  else
    elem (s, name, text);
}

static void
elem_time (GString    *s,
           const char *name,
           gint64      us)
{
  g_autofree char *t = srv_s3_iso8601 (us);

  elem (s, name, t);
}

char *
srv_s3_xml_error (const char *code,
                  const char *message,
                  const char *resource,
                  const char *request_id)
{
  GString *s = g_string_new (XML_DECL "<Error>");

  elem (s, "Code", code);
  elem (s, "Message", message);
  if (resource)
    elem (s, "Resource", resource);
  elem (s, "RequestId", request_id);
  g_string_append (s, "</Error>");
  return g_string_free (s, FALSE);
}

char *
srv_s3_xml_list_buckets (GPtrArray  *buckets,
                         const char *owner_id)
{
  GString *s = g_string_new (XML_DECL "<ListAllMyBucketsResult xmlns=\"" S3_XMLNS "\">");

  g_string_append (s, "<Owner>");
  elem (s, "ID", owner_id);
  elem (s, "DisplayName", owner_id);
  g_string_append (s, "</Owner><Buckets>");
  for (guint i = 0; i < buckets->len; i++)
    {
      const SrvBucketInfo *b = buckets->pdata[i];

      g_string_append (s, "<Bucket>");
      elem (s, "Name", b->name);
      elem_time (s, "CreationDate", b->created);
      g_string_append (s, "</Bucket>");
    }
  g_string_append (s, "</Buckets></ListAllMyBucketsResult>");
  return g_string_free (s, FALSE);
}

char *
srv_s3_xml_location (const char *region)
{
  GString *s = g_string_new (XML_DECL "<LocationConstraint xmlns=\"" S3_XMLNS "\">");
  g_autofree char *escaped = NULL;

  /* S3 answers an empty constraint for us-east-1; clients map that back. */
  if (g_strcmp0 (region, "us-east-1") != 0)
    {
      escaped = g_markup_escape_text (region, -1);
      g_string_append (s, escaped);
    }
  g_string_append (s, "</LocationConstraint>");
  return g_string_free (s, FALSE);
}

char *
srv_s3_xml_list_objects (const SrvListResult *result,
                         gboolean             v2,
                         const char          *bucket,
                         const char          *prefix,
                         const char          *delimiter,
                         int                  max_keys,
                         const char          *start_after,
                         const char          *continuation_token,
                         gboolean             url_encode)
{
  GString *s = g_string_new (XML_DECL "<ListBucketResult xmlns=\"" S3_XMLNS "\">");

  elem (s, "Name", bucket);
  elem_key (s, "Prefix", prefix ? prefix : "", url_encode);
  if (delimiter)
    elem_key (s, "Delimiter", delimiter, url_encode);
  elem_int (s, "MaxKeys", max_keys);
  if (url_encode)
    elem (s, "EncodingType", "url");
  elem_bool (s, "IsTruncated", result->is_truncated);
  if (v2)
    {
      elem_int (s, "KeyCount", result->contents->len + result->common_prefixes->len);
      if (continuation_token)
        elem (s, "ContinuationToken", continuation_token);
      if (result->next_continuation_token)
        elem (s, "NextContinuationToken", result->next_continuation_token);
      if (start_after)
        elem_key (s, "StartAfter", start_after, url_encode);
    }
  else
    {
      elem_key (s, "Marker", start_after ? start_after : "", url_encode);
      /* v1 clients page with the last key or prefix of this page as the next marker. */
      if (result->is_truncated)
        {
          const char *last_key = result->contents->len
            ? ((SrvObjectInfo *) result->contents->pdata[result->contents->len - 1])->key : NULL;
          const char *last_prefix = result->common_prefixes->len
            ? result->common_prefixes->pdata[result->common_prefixes->len - 1] : NULL;
          const char *next = last_key;

          if (next == NULL || (last_prefix != NULL && strcmp (last_prefix, next) > 0))
            next = last_prefix;
          if (next)
            elem_key (s, "NextMarker", next, url_encode);
        }
    }
  for (guint i = 0; i < result->contents->len; i++)
    {
      const SrvObjectInfo *o = result->contents->pdata[i];

      g_string_append (s, "<Contents>");
      elem_key (s, "Key", o->key, url_encode);
      elem_time (s, "LastModified", o->last_modified);
      elem (s, "ETag", o->etag);
      elem_int (s, "Size", o->size);
      if (!v2)
        g_string_append (s, "<Owner><ID>magpie</ID><DisplayName>magpie</DisplayName></Owner>");
      elem (s, "StorageClass", "STANDARD");
      g_string_append (s, "</Contents>");
    }
  for (guint i = 0; i < result->common_prefixes->len; i++)
    {
      g_string_append (s, "<CommonPrefixes>");
      elem_key (s, "Prefix", result->common_prefixes->pdata[i], url_encode);
      g_string_append (s, "</CommonPrefixes>");
    }
  g_string_append (s, "</ListBucketResult>");
  return g_string_free (s, FALSE);
}

char *
srv_s3_xml_copy_result (const SrvObjectInfo *info)
{
  GString *s = g_string_new (XML_DECL "<CopyObjectResult xmlns=\"" S3_XMLNS "\">");

  elem_time (s, "LastModified", info->last_modified);
  elem (s, "ETag", info->etag);
  g_string_append (s, "</CopyObjectResult>");
  return g_string_free (s, FALSE);
}

char *
srv_s3_xml_initiate (const char *bucket,
                     const char *key,
                     const char *upload_id)
{
  GString *s = g_string_new (XML_DECL "<InitiateMultipartUploadResult xmlns=\"" S3_XMLNS "\">");

  elem (s, "Bucket", bucket);
  elem (s, "Key", key);
  elem (s, "UploadId", upload_id);
  g_string_append (s, "</InitiateMultipartUploadResult>");
  return g_string_free (s, FALSE);
}

char *
srv_s3_xml_complete (const char *location,
                     const char *bucket,
                     const char *key,
                     const char *etag)
{
  GString *s = g_string_new (XML_DECL "<CompleteMultipartUploadResult xmlns=\"" S3_XMLNS "\">");

  elem (s, "Location", location);
  elem (s, "Bucket", bucket);
  elem (s, "Key", key);
  elem (s, "ETag", etag);
  g_string_append (s, "</CompleteMultipartUploadResult>");
  return g_string_free (s, FALSE);
}

char *
srv_s3_xml_list_parts (const SrvPartList *list,
                       const char        *bucket,
                       const char        *key,
                       const char        *upload_id,
                       guint              part_number_marker,
                       int                max_parts)
{
  GString *s = g_string_new (XML_DECL "<ListPartsResult xmlns=\"" S3_XMLNS "\">");

  elem (s, "Bucket", bucket);
  elem (s, "Key", key);
  elem (s, "UploadId", upload_id);
  elem (s, "StorageClass", "STANDARD");
  elem_int (s, "PartNumberMarker", part_number_marker);
  if (list->is_truncated)
    elem_int (s, "NextPartNumberMarker", list->next_part_number_marker);
  elem_int (s, "MaxParts", max_parts);
  elem_bool (s, "IsTruncated", list->is_truncated);
  for (guint i = 0; i < list->parts->len; i++)
    {
      const SrvPartInfo *p = list->parts->pdata[i];

      g_string_append (s, "<Part>");
      elem_int (s, "PartNumber", p->number);
      elem_time (s, "LastModified", p->last_modified);
      elem (s, "ETag", p->etag);
      elem_int (s, "Size", p->size);
      g_string_append (s, "</Part>");
    }
  g_string_append (s, "</ListPartsResult>");
  return g_string_free (s, FALSE);
}

char *
srv_s3_xml_list_uploads (const SrvUploadList *list,
                         const char          *bucket,
                         const char          *prefix,
                         int                  max_uploads)
{
  GString *s = g_string_new (XML_DECL "<ListMultipartUploadsResult xmlns=\"" S3_XMLNS "\">");

  elem (s, "Bucket", bucket);
  elem (s, "Prefix", prefix ? prefix : "");
  if (list->is_truncated)
    {
      elem (s, "NextKeyMarker", list->next_key_marker);
      elem (s, "NextUploadIdMarker", list->next_upload_id_marker);
    }
  elem_int (s, "MaxUploads", max_uploads);
  elem_bool (s, "IsTruncated", list->is_truncated);
  for (guint i = 0; i < list->uploads->len; i++)
    {
      const SrvUploadInfo *u = list->uploads->pdata[i];

      g_string_append (s, "<Upload>");
      elem (s, "Key", u->key);
      elem (s, "UploadId", u->upload_id);
      elem (s, "StorageClass", "STANDARD");
      elem_time (s, "Initiated", u->initiated);
      g_string_append (s, "</Upload>");
    }
  g_string_append (s, "</ListMultipartUploadsResult>");
  return g_string_free (s, FALSE);
}

char *
srv_s3_xml_delete_result (GPtrArray *results,
                          gboolean   quiet)
{
  GString *s = g_string_new (XML_DECL "<DeleteResult xmlns=\"" S3_XMLNS "\">");

  for (guint i = 0; i < results->len; i++)
    {
      const SrvDeleteResult *r = results->pdata[i];

      if (r->error == NULL)
        {
          if (quiet)
            continue;
          g_string_append (s, "<Deleted>");
          elem (s, "Key", r->key);
          g_string_append (s, "</Deleted>");
        }
      else
        {
          g_string_append (s, "<Error>");
          elem (s, "Key", r->key);
          elem (s, "Code", srv_s3_error_code (r->error, NULL));
          elem (s, "Message", r->error->message);
          g_string_append (s, "</Error>");
        }
    }
  g_string_append (s, "</DeleteResult>");
  return g_string_free (s, FALSE);
}

/* ---- XML in ------------------------------------------------------------------------------ */

/* A small element-path parser: S3 request bodies are flat lists of records, so the parser
 * collects the text of leaf elements at depth 3 (Root/Record/Field) and of depth-2 flags. */
typedef struct {
  const char *root;         /* "Delete" or "CompleteMultipartUpload" */
  const char *record;       /* "Object" or "Part" */
  GPtrArray  *stack;        /* element names, borrowed from GMarkup while open */
  GString    *text;
  GPtrArray  *records;      /* GHashTable field -> text, one per record */
  GHashTable *current;
  GHashTable *top_fields;   /* depth-2 leaves (Quiet) */
  guint       n_records_max;
} BodyParser;

static void
bp_start (GMarkupParseContext *context,
          const char          *name,
          const char         **attr_names,
          const char         **attr_values,
          gpointer             user_data,
          GError             **error)
{
  BodyParser *bp = user_data;
  guint depth = bp->stack->len;

  if (depth == 0 && strcmp (name, bp->root) != 0)
    {
      g_set_error (error, SRV_S3_ERROR, SRV_S3_ERROR_MALFORMED_XML,
                   "the root element must be <%s>, not <%s>", bp->root, name);
      return;
    }
  if (depth == 1 && strcmp (name, bp->record) == 0)
    {
      if (bp->records->len >= bp->n_records_max)
        {
          g_set_error (error, SRV_S3_ERROR, SRV_S3_ERROR_MALFORMED_XML,
                       "more than %u <%s> elements", bp->n_records_max, bp->record);
          return;
        }
      bp->current = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
      g_ptr_array_add (bp->records, bp->current);
    }
  if (depth >= 4)
    {
      g_set_error (error, SRV_S3_ERROR, SRV_S3_ERROR_MALFORMED_XML, "unexpected nesting");
      return;
    }
  g_ptr_array_add (bp->stack, (gpointer) name);
  g_string_truncate (bp->text, 0);
}

static void
bp_end (GMarkupParseContext *context,
        const char          *name,
        gpointer             user_data,
        GError             **error)
{
  BodyParser *bp = user_data;
  guint depth = bp->stack->len;

  if (depth == 3 && bp->current != NULL)
    g_hash_table_replace (bp->current, g_strdup (name), g_strdup (bp->text->str));
  else if (depth == 2 && strcmp (name, bp->record) != 0)
    g_hash_table_replace (bp->top_fields, g_strdup (name), g_strdup (bp->text->str));
  else if (depth == 2)
    bp->current = NULL;
  g_ptr_array_set_size (bp->stack, depth - 1);
  g_string_truncate (bp->text, 0);
}

static void
bp_text (GMarkupParseContext *context,
         const char          *text,
         gsize                len,
         gpointer             user_data,
         GError             **error)
{
  BodyParser *bp = user_data;

  if (bp->text->len + len > SRV_STORE_KEY_MAX * 8)
    {
      g_set_error (error, SRV_S3_ERROR, SRV_S3_ERROR_MALFORMED_XML, "element text too long");
      return;
    }
  g_string_append_len (bp->text, text, len);
}

static GPtrArray *
parse_records (const char  *xml,
               gsize        len,
               const char  *root,
               const char  *record,
               guint        max_records,
               GHashTable **top_fields,
               GError     **error)
{
  static const GMarkupParser parser = { bp_start, bp_end, bp_text, NULL, NULL };
  BodyParser bp = { root, record, g_ptr_array_new (), g_string_new (NULL),
                    g_ptr_array_new_with_free_func ((GDestroyNotify) g_hash_table_unref), NULL,
                    g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free),
                    max_records };
  g_autoptr(GMarkupParseContext) ctx = g_markup_parse_context_new (&parser, 0, &bp, NULL);
  g_autoptr(GError) local = NULL;
  gboolean ok;

  ok = g_markup_parse_context_parse (ctx, xml, len, &local) &&
       g_markup_parse_context_end_parse (ctx, &local);
  g_ptr_array_unref (bp.stack);
  g_string_free (bp.text, TRUE);
  if (!ok)
    {
      g_ptr_array_unref (bp.records);
      g_hash_table_unref (bp.top_fields);
      if (local->domain == SRV_S3_ERROR)
        g_propagate_error (error, g_steal_pointer (&local));
      else
        g_set_error (error, SRV_S3_ERROR, SRV_S3_ERROR_MALFORMED_XML,
                     "the XML you provided was not well-formed: %s", local->message);
      return NULL;
    }
  *top_fields = bp.top_fields;
  return bp.records;
}

GPtrArray *
srv_s3_parse_delete (const char *xml,
                     gsize       len,
                     gboolean   *quiet,
                     GError    **error)
{
  g_autoptr(GHashTable) top = NULL;
  g_autoptr(GPtrArray) records = parse_records (xml, len, "Delete", "Object", SRV_STORE_LIST_MAX,
                                                &top, error);
  g_autoptr(GPtrArray) keys = NULL;
  const char *q;

  if (records == NULL)
    return NULL;
  if (records->len == 0)
    {
      g_set_error (error, SRV_S3_ERROR, SRV_S3_ERROR_MALFORMED_XML,
                   "<Delete> lists no <Object>");
      return NULL;
    }
  keys = g_ptr_array_new_with_free_func (g_free);
  for (guint i = 0; i < records->len; i++)
    {
      const char *key = g_hash_table_lookup (records->pdata[i], "Key");

      if (key == NULL || *key == '\0')
        {
          g_set_error (error, SRV_S3_ERROR, SRV_S3_ERROR_MALFORMED_XML,
                       "<Object> number %u has no <Key>", i + 1);
          return NULL;
        }
      g_ptr_array_add (keys, g_strdup (key));
    }
  q = g_hash_table_lookup (top, "Quiet");
  *quiet = q != NULL && g_ascii_strcasecmp (g_strstrip ((char *) q), "true") == 0;
  return g_steal_pointer (&keys);
}

GArray *
srv_s3_parse_complete (const char *xml,
                       gsize       len,
                       GPtrArray **etags_out,
                       GError    **error)
{
  g_autoptr(GHashTable) top = NULL;
  g_autoptr(GPtrArray) records = parse_records (xml, len, "CompleteMultipartUpload", "Part",
                                                SRV_STORE_MAX_PART_NUMBER, &top, error);
  g_autoptr(GArray) parts = NULL;
  g_autoptr(GPtrArray) etags = NULL;

  if (records == NULL)
    return NULL;
  if (records->len == 0)
    {
      g_set_error (error, SRV_S3_ERROR, SRV_S3_ERROR_MALFORMED_XML,
                   "<CompleteMultipartUpload> lists no <Part>");
      return NULL;
    }
  parts = g_array_sized_new (FALSE, TRUE, sizeof (SrvCompletedPart), records->len);
  etags = g_ptr_array_new_with_free_func (g_free);
  for (guint i = 0; i < records->len; i++)
    {
      const char *number = g_hash_table_lookup (records->pdata[i], "PartNumber");
      const char *etag = g_hash_table_lookup (records->pdata[i], "ETag");
      guint64 n = 0;
      SrvCompletedPart part;
      char *copy;

      if (number == NULL || etag == NULL ||
          !g_ascii_string_to_unsigned (g_strstrip ((char *) number), 10, 1,
                                       SRV_STORE_MAX_PART_NUMBER, &n, NULL))
        {
          g_set_error (error, SRV_S3_ERROR, SRV_S3_ERROR_MALFORMED_XML,
                       "<Part> number %u needs a <PartNumber> (1..%d) and an <ETag>",
                       i + 1, SRV_STORE_MAX_PART_NUMBER);
          return NULL;
        }
      copy = g_strstrip (g_strdup (etag));
      g_ptr_array_add (etags, copy);
      part.number = (guint) n;
      part.etag = copy;
      g_array_append_val (parts, part);
    }
  *etags_out = g_steal_pointer (&etags);
  return g_steal_pointer (&parts);
}
