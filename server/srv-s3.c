/* srv-s3.c - the embedded S3 endpoint: ListBuckets, PutObject, GetObject, multipart, ...
 *
 * Two halves per request. The early handler runs when the headers are in: it routes,
 * verifies the signature and the session token, checks the key against the token's prefix
 * and only then lets a body in, spooling it to an unlinked file while it is hashed or
 * aws-chunk decoded (srv-s3-body.c). The handler proper runs once the body is complete and
 * offloads the store call to the blocking pool; replies are S3 XML with x-amz-request-id.
 */
#define G_LOG_DOMAIN "srv-s3"

#include "config.h"

#include "srv-s3.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <string.h>

#include "srv-http.h"
#include "srv-reply.h"
#include "srv-s3-auth.h"
#include "srv-s3-body.h"
#include "srv-s3-proto.h"

#define S3_REQUEST_KEY "srv-s3-request"
#define S3_DEFAULT_CONTENT_TYPE "binary/octet-stream"  /* what S3 stores when none is given */

struct _SrvS3 {
  SrvContext *ctx;
  char       *spool_dir;
};

typedef struct {
  SrvS3          *s3;
  SrvS3Route      route;
  gboolean        routed;
  SrvS3Principal *principal;
  SrvS3Body      *body;
  GHashTable     *query;       /* decoded parameters, or NULL */
  char           *request_id;
  char           *resource;    /* the raw path, for <Resource> */
  char           *copy_bucket;
  char           *copy_key;
} S3Request;

static void
s3_request_free (gpointer data)
{
  S3Request *req = data;

  srv_s3_route_clear (&req->route);
  g_clear_pointer (&req->principal, srv_s3_principal_free);
  g_clear_pointer (&req->body, srv_s3_body_free);
  g_clear_pointer (&req->query, g_hash_table_unref);
  g_free (req->request_id);
  g_free (req->resource);
  g_free (req->copy_bucket);
  g_free (req->copy_key);
  g_free (req);
}

static const char *
qparam (S3Request  *req,
        const char *name)
{
  return req->query ? g_hash_table_lookup (req->query, name) : NULL;
}

static const char *
op_label (S3Request *req)
{
  return req->routed ? srv_s3_op_name (req->route.op) : "Unknown";
}

static void
count_request (S3Request  *req,
               const char *code)
{
  g_autofree char *labels = srv_metrics_labels ("op", op_label (req), "code", code, NULL);

  srv_metrics_add (req->s3->ctx->metrics, "magpied_s3_requests_total", labels, 1);
}

/* ---- replies ----------------------------------------------------------------------------- */

static char *
error_document (S3Request    *req,
                const GError *error,
                guint        *status)
{
  const char *code = srv_s3_error_code (error, status);

  count_request (req, code);
  if (*status >= 500)
    g_log_structured (G_LOG_DOMAIN, G_LOG_LEVEL_WARNING,
                      "REQUEST_ID", req->request_id, "OP", op_label (req),
                      "MESSAGE", "S3 request failed: %s", error->message);
  return srv_s3_xml_error (code, error->message, req->resource, req->request_id);
}

/* Main thread: answer now, before (or without) the body. */
static void
reply_error_now (SoupServerMessage *msg,
                 S3Request         *req,
                 const GError      *error)
{
  guint status;
  char *xml = error_document (req, error, &status);

  soup_server_message_set_status (msg, status, NULL);
  soup_server_message_set_response (msg, "application/xml", SOUP_MEMORY_TAKE, xml, strlen (xml));
}

static void
reply_error (SrvHttpReply *reply,
             S3Request    *req,
             const GError *error)
{
  guint status;
  char *xml = error_document (req, error, &status);

  srv_http_reply_set_status (reply, status);
  srv_http_reply_set_body (reply, "application/xml", g_bytes_new_take (xml, strlen (xml)));
}

static void
reply_xml (SrvHttpReply *reply,
           S3Request    *req,
           char         *xml)
{
  count_request (req, "OK");
  srv_http_reply_set_status (reply, SOUP_STATUS_OK);
  srv_http_reply_set_body (reply, "application/xml", g_bytes_new_take (xml, strlen (xml)));
}

static void
reply_empty (SrvHttpReply *reply,
             S3Request    *req,
             guint         status)
{
  count_request (req, "OK");
  srv_http_reply_set_status (reply, status);
}

/* ---- request parts ----------------------------------------------------------------------- */

static SoupMessageHeaders *
request_headers (SrvHttpReply *reply)
{
  return soup_server_message_get_request_headers (srv_http_reply_get_message (reply));
}

/* x-amz-meta-* without the prefix; repeated names joined with ',' as HTTP folds them. */
static GHashTable *
request_metadata (SoupMessageHeaders *headers)
{
  GHashTable *meta = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  SoupMessageHeadersIter iter;
  const char *name;
  const char *value;

  soup_message_headers_iter_init (&iter, headers);
  while (soup_message_headers_iter_next (&iter, &name, &value))
    {
      g_autofree char *lower = NULL;
      const char *old;

      if (g_ascii_strncasecmp (name, "x-amz-meta-", 11) != 0 || name[11] == '\0')
        continue;
      lower = g_ascii_strdown (name + 11, -1);
      old = g_hash_table_lookup (meta, lower);
      if (old)
        g_hash_table_replace (meta, g_steal_pointer (&lower), g_strconcat (old, ",", value, NULL));
      else
        g_hash_table_replace (meta, g_steal_pointer (&lower), g_strdup (value));
    }
  return meta;
}

static gboolean
parse_int_param (S3Request  *req,
                 const char *name,
                 gint64      min,
                 gint64      max,
                 gint64      fallback,
                 gint64     *out,
                 GError    **error)
{
  const char *text = qparam (req, name);

  *out = fallback;
  if (text == NULL)
    return TRUE;
  if (!g_ascii_string_to_signed (text, 10, min, max, out, NULL))
    {
      g_set_error (error, SRV_S3_ERROR, SRV_S3_ERROR_INVALID_ARGUMENT,
                   "%s must be an integer from %" G_GINT64_FORMAT " to %" G_GINT64_FORMAT,
                   name, min, max);
      return FALSE;
    }
  return TRUE;
}

static void
add_object_headers (SrvHttpReply        *reply,
                    const SrvObjectInfo *info)
{
  g_autofree char *date = srv_s3_http_date (info->last_modified);
  GHashTableIter iter;
  gpointer k, v;

  srv_http_reply_add_header (reply, "ETag", info->etag);
  srv_http_reply_add_header (reply, "Last-Modified", date);
  srv_http_reply_add_header (reply, "Accept-Ranges", "bytes");
  if (info->metadata == NULL)
    return;
  g_hash_table_iter_init (&iter, info->metadata);
  while (g_hash_table_iter_next (&iter, &k, &v))
    {
      g_autofree char *name = g_strconcat ("x-amz-meta-", (const char *) k, NULL);

      srv_http_reply_add_header (reply, name, v);
    }
}

static gboolean
etag_matches (const char *header,
              const char *etag)
{
  g_auto(GStrv) tags = NULL;
  gsize etag_len = strlen (etag);
  const char *bare = etag;

  if (etag_len >= 2 && etag[0] == '"')
    {
      bare = etag + 1;
      etag_len -= 2;
    }
  tags = g_strsplit (header, ",", -1);
  for (char **t = tags; *t; t++)
    {
      char *tag = g_strstrip (*t);
      gsize len = strlen (tag);

      if (strcmp (tag, "*") == 0)
        return TRUE;
      if (len >= 2 && tag[0] == '"' && tag[len - 1] == '"')
        {
          tag++;
          len -= 2;
        }
      if (len == etag_len && strncmp (tag, bare, len) == 0)
        return TRUE;
    }
  return FALSE;
}

static gint64
http_date_s (const char *text)
{
  g_autoptr(GDateTime) dt = text ? soup_date_time_new_from_http_string (text) : NULL;

  return dt ? g_date_time_to_unix (dt) : -1;
}

/* RFC 7232 order: If-Match, If-Unmodified-Since, If-None-Match, If-Modified-Since. Returns
 * FALSE with PreconditionFailed; *not_modified for a 304. */
static gboolean
check_conditions (SoupMessageHeaders  *headers,
                  const SrvObjectInfo *info,
                  gboolean            *not_modified,
                  GError             **error)
{
  const char *if_match = soup_message_headers_get_one (headers, "If-Match");
  const char *if_none = soup_message_headers_get_one (headers, "If-None-Match");
  gint64 unmodified = http_date_s (soup_message_headers_get_one (headers, "If-Unmodified-Since"));
  gint64 modified = http_date_s (soup_message_headers_get_one (headers, "If-Modified-Since"));
  gint64 mtime = info->last_modified / G_USEC_PER_SEC;

  *not_modified = FALSE;
  if ((if_match && !etag_matches (if_match, info->etag)) ||
      (if_match == NULL && unmodified >= 0 && mtime > unmodified))
    {
      g_set_error (error, SRV_S3_ERROR, SRV_S3_ERROR_PRECONDITION_FAILED,
                   "at least one of the preconditions you specified did not hold");
      return FALSE;
    }
  if (if_none)
    *not_modified = etag_matches (if_none, info->etag);
  else if (modified >= 0)
    *not_modified = mtime <= modified;
  return TRUE;
}

/* GetObject's response-* parameters override the stored headers (signed requests only,
 * which every request here is). */
static const struct {
  const char *param;
  const char *header;
} response_overrides[] = {
  { "response-content-type", "Content-Type" },
  { "response-content-language", "Content-Language" },
  { "response-expires", "Expires" },
  { "response-cache-control", "Cache-Control" },
  { "response-content-disposition", "Content-Disposition" },
  { "response-content-encoding", "Content-Encoding" },
};

/* ---- operations (blocking pool) ---------------------------------------------------------- */

static gboolean
op_get_or_head (SrvHttpReply *reply,
                S3Request    *req,
                GError      **error)
{
  SrvStore *store = req->s3->ctx->store;
  SoupMessageHeaders *headers = request_headers (reply);
  gboolean head = req->route.op == SRV_S3_OP_HEAD_OBJECT;
  g_autoptr(SrvObjectInfo) info = NULL;
  g_autoptr(GInputStream) stream = NULL;
  SrvByteRange served = { 0, -1 };
  gboolean partial = FALSE;
  gboolean not_modified;
  const char *content_type;
  gint64 length;

  if (head)
    {
      info = srv_store_head (store, req->route.bucket, req->route.key, error);
      if (info == NULL)
        return FALSE;
      served.last = info->size - 1;
      stream = g_memory_input_stream_new ();
    }
  else
    {
      stream = srv_store_open_read (store, req->route.bucket, req->route.key,
                                    soup_message_headers_get_one (headers, "Range"),
                                    &info, &served, &partial, error);
      if (stream == NULL)
        return FALSE;
    }
  if (!check_conditions (headers, info, &not_modified, error))
    return FALSE;
  if (not_modified)
    {
      g_autofree char *date = srv_s3_http_date (info->last_modified);

      srv_http_reply_add_header (reply, "ETag", info->etag);
      srv_http_reply_add_header (reply, "Last-Modified", date);
      reply_empty (reply, req, SOUP_STATUS_NOT_MODIFIED);
      return TRUE;
    }

  add_object_headers (reply, info);
  content_type = info->content_type ? info->content_type : S3_DEFAULT_CONTENT_TYPE;
  for (guint i = 0; i < G_N_ELEMENTS (response_overrides); i++)
    {
      const char *value = qparam (req, response_overrides[i].param);

      if (value == NULL)
        continue;
      if (i == 0)
        content_type = value;
      else
        srv_http_reply_add_header (reply, response_overrides[i].header, value);
    }
  length = served.last - served.first + 1;
  count_request (req, "OK");
  if (partial)
    {
      g_autofree char *range = g_strdup_printf ("bytes %" G_GINT64_FORMAT "-%" G_GINT64_FORMAT
                                                "/%" G_GINT64_FORMAT,
                                                served.first, served.last, info->size);

      srv_http_reply_add_header (reply, "Content-Range", range);
      srv_http_reply_set_status (reply, SOUP_STATUS_PARTIAL_CONTENT);
    }
  else
    srv_http_reply_set_status (reply, SOUP_STATUS_OK);
  if (!head)
    srv_metrics_add (req->s3->ctx->metrics, "magpied_s3_bytes_out_total", NULL, (double) length);
  srv_http_reply_set_stream (reply, content_type, g_steal_pointer (&stream), length);
  return TRUE;
}

static gboolean
op_put (SrvHttpReply *reply,
        S3Request    *req,
        GError      **error)
{
  SoupMessageHeaders *headers = request_headers (reply);
  g_autoptr(GInputStream) in = srv_s3_body_open (req->body, error);
  g_autoptr(GHashTable) meta = request_metadata (headers);
  const char *content_md5 = soup_message_headers_get_one (headers, "Content-MD5");
  gint64 size = srv_s3_body_get_size (req->body);

  if (in == NULL)
    return FALSE;
  if (req->route.op == SRV_S3_OP_UPLOAD_PART)
    {
      g_autoptr(SrvPartInfo) part = NULL;
      gint64 number;

      if (!parse_int_param (req, "partNumber", 1, SRV_STORE_MAX_PART_NUMBER, 0, &number, error))
        return FALSE;
      part = srv_store_upload_part (req->s3->ctx->store, req->route.bucket, req->route.key,
                                    qparam (req, "uploadId"), (guint) number, in, size,
                                    content_md5, NULL, error);
      if (part == NULL)
        return FALSE;
      srv_http_reply_add_header (reply, "ETag", part->etag);
    }
  else
    {
      g_autoptr(SrvObjectInfo) info = NULL;

      info = srv_store_put (req->s3->ctx->store, req->route.bucket, req->route.key, in, size,
                            soup_message_headers_get_one (headers, "Content-Type"), meta,
                            content_md5, NULL, error);
      if (info == NULL)
        return FALSE;
      srv_http_reply_add_header (reply, "ETag", info->etag);
    }
  srv_metrics_add (req->s3->ctx->metrics, "magpied_s3_bytes_in_total", NULL, (double) size);
  reply_empty (reply, req, SOUP_STATUS_OK);
  return TRUE;
}

static gboolean
op_copy (SrvHttpReply *reply,
         S3Request    *req,
         GError      **error)
{
  SoupMessageHeaders *headers = request_headers (reply);
  const char *directive = soup_message_headers_get_one (headers, "x-amz-metadata-directive");
  g_autoptr(GHashTable) meta = request_metadata (headers);
  g_autoptr(SrvObjectInfo) info = NULL;
  SrvMetadataDirective d = SRV_METADATA_COPY;

  if (directive != NULL && g_ascii_strcasecmp (directive, "REPLACE") == 0)
    d = SRV_METADATA_REPLACE;
  else if (directive != NULL && g_ascii_strcasecmp (directive, "COPY") != 0)
    {
      g_set_error (error, SRV_S3_ERROR, SRV_S3_ERROR_INVALID_ARGUMENT,
                   "x-amz-metadata-directive must be COPY or REPLACE");
      return FALSE;
    }
  info = srv_store_copy (req->s3->ctx->store, req->copy_bucket, req->copy_key,
                         req->route.bucket, req->route.key, d,
                         soup_message_headers_get_one (headers, "Content-Type"), meta, NULL,
                         error);
  if (info == NULL)
    return FALSE;
  reply_xml (reply, req, srv_s3_xml_copy_result (info));
  return TRUE;
}

static gboolean
op_list_objects (SrvHttpReply *reply,
                 S3Request    *req,
                 GError      **error)
{
  gboolean v2 = req->route.op == SRV_S3_OP_LIST_OBJECTS_V2;
  const char *encoding = qparam (req, "encoding-type");
  const char *start_after = qparam (req, v2 ? "start-after" : "marker");
  const char *token = v2 ? qparam (req, "continuation-token") : NULL;
  g_autoptr(SrvListResult) result = NULL;
  gint64 max_keys;

  if (encoding != NULL && strcmp (encoding, "url") != 0)
    {
      g_set_error (error, SRV_S3_ERROR, SRV_S3_ERROR_INVALID_ARGUMENT,
                   "encoding-type must be 'url'");
      return FALSE;
    }
  if (!parse_int_param (req, "max-keys", 0, G_MAXINT, SRV_STORE_LIST_MAX, &max_keys, error))
    return FALSE;
  max_keys = MIN (max_keys, SRV_STORE_LIST_MAX);
  result = srv_store_list_v2 (req->s3->ctx->store, req->route.bucket, qparam (req, "prefix"),
                              qparam (req, "delimiter"), (int) max_keys,
                              start_after && *start_after ? start_after : NULL,
                              token, error);
  if (result == NULL)
    return FALSE;
  reply_xml (reply, req, srv_s3_xml_list_objects (result, v2, req->route.bucket,
                                                  qparam (req, "prefix"),
                                                  qparam (req, "delimiter"), (int) max_keys,
                                                  start_after, token, encoding != NULL));
  return TRUE;
}

static gboolean
check_body_md5 (SoupMessageHeaders *headers,
                GBytes             *bytes,
                GError            **error)
{
  const char *want = soup_message_headers_get_one (headers, "Content-MD5");
  g_autoptr(GChecksum) md5 = NULL;
  guint8 digest[16];
  gsize len = sizeof digest;
  g_autofree char *b64 = NULL;

  if (want == NULL)
    return TRUE;
  md5 = g_checksum_new (G_CHECKSUM_MD5);
  g_checksum_update (md5, g_bytes_get_data (bytes, NULL), g_bytes_get_size (bytes));
  g_checksum_get_digest (md5, digest, &len);
  b64 = g_base64_encode (digest, len);
  if (strcmp (b64, want) != 0)
    {
      g_set_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_BAD_DIGEST,
                   "the Content-MD5 you specified did not match what we received");
      return FALSE;
    }
  return TRUE;
}

static gboolean
op_delete_objects (SrvHttpReply *reply,
                   S3Request    *req,
                   GError      **error)
{
  g_autoptr(GBytes) doc = srv_s3_body_read_all (req->body, SRV_S3_MAX_XML_BODY, error);
  g_autoptr(GPtrArray) keys = NULL;
  g_autoptr(GPtrArray) allowed = NULL;
  g_autoptr(GPtrArray) deleted = NULL;
  g_autoptr(GPtrArray) results = NULL;
  const SrvCredentials *creds = req->principal->credentials;
  gboolean quiet = FALSE;
  guint next = 0;

  if (doc == NULL || !check_body_md5 (request_headers (reply), doc, error))
    return FALSE;
  keys = srv_s3_parse_delete (g_bytes_get_data (doc, NULL), g_bytes_get_size (doc), &quiet,
                              error);
  if (keys == NULL)
    return FALSE;
  allowed = g_ptr_array_new ();
  for (guint i = 0; i < keys->len; i++)
    if (srv_s3_key_allowed (creds, keys->pdata[i]))
      g_ptr_array_add (allowed, keys->pdata[i]);
  g_ptr_array_add (allowed, NULL);
  if (allowed->len > 1)
    {
      deleted = srv_store_delete_many (req->s3->ctx->store, req->route.bucket,
                                       (const char * const *) allowed->pdata, error);
      if (deleted == NULL)
        return FALSE;
    }

  /* One result per requested key, in request order: the store's, or AccessDenied. */
  results = g_ptr_array_new_with_free_func ((GDestroyNotify) srv_delete_result_free);
  for (guint i = 0; i < keys->len; i++)
    {
      SrvDeleteResult *r;

      if (srv_s3_key_allowed (creds, keys->pdata[i]))
        {
          r = deleted->pdata[next];
          deleted->pdata[next++] = NULL;
        }
      else
        {
          r = g_new0 (SrvDeleteResult, 1);
          r->key = g_strdup (keys->pdata[i]);
          r->error = g_error_new (SRV_S3_ERROR, SRV_S3_ERROR_ACCESS_DENIED,
                                  "access denied: these credentials reach %s only",
                                  creds->prefix);
        }
      g_ptr_array_add (results, r);
    }
  reply_xml (reply, req, srv_s3_xml_delete_result (results, quiet));
  return TRUE;
}

static gboolean
op_complete (SrvHttpReply *reply,
             S3Request    *req,
             GError      **error)
{
  g_autoptr(GBytes) doc = srv_s3_body_read_all (req->body, SRV_S3_MAX_XML_BODY, error);
  g_autoptr(GPtrArray) etags = NULL;
  g_autoptr(GArray) parts = NULL;
  g_autoptr(SrvObjectInfo) info = NULL;
  g_autofree char *escaped = NULL;
  g_autofree char *location = NULL;

  if (doc == NULL)
    return FALSE;
  parts = srv_s3_parse_complete (g_bytes_get_data (doc, NULL), g_bytes_get_size (doc), &etags,
                                 error);
  if (parts == NULL)
    return FALSE;
  info = srv_store_complete_upload (req->s3->ctx->store, req->route.bucket, req->route.key,
                                    qparam (req, "uploadId"),
                                    (const SrvCompletedPart *) parts->data, parts->len, NULL,
                                    error);
  if (info == NULL)
    return FALSE;
  escaped = g_uri_escape_string (req->route.key, "/", FALSE);
  location = g_strdup_printf ("%s/%s/%s", req->s3->ctx->url, req->route.bucket, escaped);
  reply_xml (reply, req, srv_s3_xml_complete (location, req->route.bucket, req->route.key,
                                              info->etag));
  return TRUE;
}

static gboolean
op_list_parts (SrvHttpReply *reply,
               S3Request    *req,
               GError      **error)
{
  g_autoptr(SrvPartList) list = NULL;
  gint64 marker, max_parts;

  if (!parse_int_param (req, "part-number-marker", 0, SRV_STORE_MAX_PART_NUMBER, 0, &marker,
                        error) ||
      !parse_int_param (req, "max-parts", 0, G_MAXINT, SRV_STORE_LIST_MAX, &max_parts, error))
    return FALSE;
  max_parts = MIN (max_parts, SRV_STORE_LIST_MAX);
  list = srv_store_list_parts (req->s3->ctx->store, req->route.bucket, req->route.key,
                               qparam (req, "uploadId"), (guint) marker, (int) max_parts, error);
  if (list == NULL)
    return FALSE;
  reply_xml (reply, req, srv_s3_xml_list_parts (list, req->route.bucket, req->route.key,
                                                qparam (req, "uploadId"), (guint) marker,
                                                (int) max_parts));
  return TRUE;
}

static gboolean
op_list_uploads (SrvHttpReply *reply,
                 S3Request    *req,
                 GError      **error)
{
  g_autoptr(SrvUploadList) list = NULL;
  gint64 max_uploads;

  if (!parse_int_param (req, "max-uploads", 0, G_MAXINT, SRV_STORE_LIST_MAX, &max_uploads,
                        error))
    return FALSE;
  max_uploads = MIN (max_uploads, SRV_STORE_LIST_MAX);
  list = srv_store_list_uploads (req->s3->ctx->store, req->route.bucket, qparam (req, "prefix"),
                                 qparam (req, "key-marker"), qparam (req, "upload-id-marker"),
                                 (int) max_uploads, error);
  if (list == NULL)
    return FALSE;
  reply_xml (reply, req, srv_s3_xml_list_uploads (list, req->route.bucket,
                                                  qparam (req, "prefix"), (int) max_uploads));
  return TRUE;
}

static gboolean
run (SrvHttpReply *reply,
     S3Request    *req,
     GError      **error)
{
  SrvContext *ctx = req->s3->ctx;
  SrvStore *store = ctx->store;
  const char *bucket = req->route.bucket;
  const char *key = req->route.key;

  switch (req->route.op)
    {
    case SRV_S3_OP_LIST_BUCKETS:
      {
        g_autoptr(GPtrArray) buckets = srv_store_list_buckets (store);

        reply_xml (reply, req, srv_s3_xml_list_buckets (buckets,
                                                        req->principal->credentials->identity_id));
        return TRUE;
      }
    case SRV_S3_OP_HEAD_BUCKET:
      if (!srv_store_head_bucket (store, bucket, error))
        return FALSE;
      srv_http_reply_add_header (reply, "x-amz-bucket-region", ctx->config->region);
      reply_empty (reply, req, SOUP_STATUS_OK);
      return TRUE;
    case SRV_S3_OP_GET_BUCKET_LOCATION:
      if (!srv_store_head_bucket (store, bucket, error))
        return FALSE;
      reply_xml (reply, req, srv_s3_xml_location (ctx->config->region));
      return TRUE;
    case SRV_S3_OP_LIST_OBJECTS:
    case SRV_S3_OP_LIST_OBJECTS_V2:
      return op_list_objects (reply, req, error);
    case SRV_S3_OP_LIST_UPLOADS:
      return op_list_uploads (reply, req, error);
    case SRV_S3_OP_DELETE_OBJECTS:
      return op_delete_objects (reply, req, error);
    case SRV_S3_OP_PUT_OBJECT:
    case SRV_S3_OP_UPLOAD_PART:
      return op_put (reply, req, error);
    case SRV_S3_OP_COPY_OBJECT:
      return op_copy (reply, req, error);
    case SRV_S3_OP_GET_OBJECT:
    case SRV_S3_OP_HEAD_OBJECT:
      return op_get_or_head (reply, req, error);
    case SRV_S3_OP_DELETE_OBJECT:
      if (!srv_store_delete (store, bucket, key, error))
        return FALSE;
      reply_empty (reply, req, SOUP_STATUS_NO_CONTENT);
      return TRUE;
    case SRV_S3_OP_CREATE_UPLOAD:
      {
        SoupMessageHeaders *headers = request_headers (reply);
        g_autoptr(GHashTable) meta = request_metadata (headers);
        g_autofree char *upload_id = NULL;

        upload_id = srv_store_create_upload (store, bucket, key,
                                             soup_message_headers_get_one (headers,
                                                                           "Content-Type"),
                                             meta, error);
        if (upload_id == NULL)
          return FALSE;
        reply_xml (reply, req, srv_s3_xml_initiate (bucket, key, upload_id));
        return TRUE;
      }
    case SRV_S3_OP_COMPLETE_UPLOAD:
      return op_complete (reply, req, error);
    case SRV_S3_OP_ABORT_UPLOAD:
      if (!srv_store_abort_upload (store, bucket, key, qparam (req, "uploadId"), error))
        return FALSE;
      reply_empty (reply, req, SOUP_STATUS_NO_CONTENT);
      return TRUE;
    case SRV_S3_OP_LIST_PARTS:
      return op_list_parts (reply, req, error);
    case SRV_S3_OP_CREATE_BUCKET:
    case SRV_S3_N_OPS:
    default:
      break;
    }
  g_set_error (error, SRV_S3_ERROR, SRV_S3_ERROR_NOT_IMPLEMENTED, "operation not implemented");
  return FALSE;
}

static void
run_cb (SrvHttpReply *reply,
        gpointer      user_data)
{
  S3Request *req = user_data;
  g_autoptr(GError) error = NULL;

  if (!run (reply, req, &error))
    reply_error (reply, req, error);
}

/* ---- the two handlers (main thread) ------------------------------------------------------ */

static gboolean
is_rest_path (const char *path)
{
  return g_str_has_prefix (path, "/v1/") || strcmp (path, "/v1") == 0;
}

static gboolean
takes_body (SrvS3Op op)
{
  return op == SRV_S3_OP_PUT_OBJECT || op == SRV_S3_OP_UPLOAD_PART ||
         op == SRV_S3_OP_DELETE_OBJECTS || op == SRV_S3_OP_COMPLETE_UPLOAD;
}

static void
got_chunk_cb (SoupServerMessage *msg,
              GBytes            *chunk,
              gpointer           user_data)
{
  S3Request *req = user_data;
  gsize len;
  const guint8 *data = g_bytes_get_data (chunk, &len);

  if (req->body != NULL)
    srv_s3_body_feed (req->body, data, len);
}

static gboolean
open_body (S3Request          *req,
           SoupServerMessage  *msg,
           GError            **error)
{
  SoupMessageHeaders *headers = soup_server_message_get_request_headers (msg);
  SoupEncoding encoding = soup_message_headers_get_encoding (headers);
  const char *decoded = soup_message_headers_get_one (headers, "x-amz-decoded-content-length");
  const MpSigv4Auth *auth = req->principal->auth;
  gboolean streaming = g_strcmp0 (auth->payload_hash, MP_SIGV4_STREAMING_PAYLOAD) == 0;
  gint64 max = (req->route.op == SRV_S3_OP_PUT_OBJECT || req->route.op == SRV_S3_OP_UPLOAD_PART)
               ? SRV_S3_MAX_PUT_SIZE : SRV_S3_MAX_XML_BODY;
  gint64 decoded_length = -1;

  if (encoding != SOUP_ENCODING_CONTENT_LENGTH && encoding != SOUP_ENCODING_CHUNKED)
    {
      g_set_error (error, SRV_S3_ERROR, SRV_S3_ERROR_MISSING_CONTENT_LENGTH,
                   "you must provide the Content-Length HTTP header");
      return FALSE;
    }
  if (streaming)
    {
      if (decoded == NULL ||
          !g_ascii_string_to_signed (decoded, 10, 0, G_MAXINT64, &decoded_length, NULL))
        {
          g_set_error (error, SRV_S3_ERROR, SRV_S3_ERROR_MISSING_CONTENT_LENGTH,
                       "aws-chunked uploads need x-amz-decoded-content-length");
          return FALSE;
        }
    }
  else if (encoding == SOUP_ENCODING_CONTENT_LENGTH &&
           soup_message_headers_get_content_length (headers) > max)
    {
      g_set_error (error, SRV_S3_ERROR, SRV_S3_ERROR_ENTITY_TOO_LARGE,
                   "your proposed upload of %" G_GINT64_FORMAT " bytes exceeds the maximum "
                   "allowed size of %" G_GINT64_FORMAT " bytes",
                   soup_message_headers_get_content_length (headers), max);
      return FALSE;
    }
  req->body = srv_s3_body_new (req->s3->spool_dir, auth->payload_hash, auth,
                               req->principal->credentials->secret_access_key,
                               decoded_length, max, error);
  if (req->body == NULL)
    return FALSE;
  g_signal_connect (msg, "got-chunk", G_CALLBACK (got_chunk_cb), req);
  return TRUE;
}

/* Everything that does not need the body: route, authenticate, authorize, open the spool. */
static gboolean
prepare (S3Request         *req,
         SoupServerMessage *msg,
         GError           **error)
{
  SrvContext *ctx = req->s3->ctx;
  SoupMessageHeaders *headers = soup_server_message_get_request_headers (msg);
  GUri *uri = soup_server_message_get_uri (msg);
  const char *copy_source = soup_message_headers_get_one (headers, "x-amz-copy-source");
  g_autoptr(GArray) wire = g_array_new (FALSE, FALSE, sizeof (MpSigv4Header));
  SoupMessageHeadersIter iter;
  MpSigv4Header h;
  MpSigv4Request request = { 0 };

  if (!srv_s3_route (soup_server_message_get_method (msg), g_uri_get_path (uri), req->query,
                     copy_source != NULL, &req->route, error))
    return FALSE;
  req->routed = TRUE;

  soup_message_headers_iter_init (&iter, headers);
  while (soup_message_headers_iter_next (&iter, &h.name, &h.value))
    g_array_append_val (wire, h);
  request.method = soup_server_message_get_method (msg);
  request.path = g_uri_get_path (uri);
  request.query = g_uri_get_query (uri);
  request.headers = (const MpSigv4Header *) wire->data;
  request.n_headers = wire->len;
  {
    SrvS3AdminKey admin = { ctx->config->admin_access_key, ctx->config->admin_secret_key };

    req->principal = srv_s3_authenticate (ctx->keyring,
                                          admin.access_key_id != NULL ? &admin : NULL,
                                          &request, ctx->config->region,
                                          g_get_real_time () / G_USEC_PER_SEC, error);
  }
  if (req->principal == NULL)
    return FALSE;

  if (req->route.op == SRV_S3_OP_COPY_OBJECT &&
      !srv_s3_parse_copy_source (copy_source, &req->copy_bucket, &req->copy_key, error))
    return FALSE;
  if (!srv_s3_authorize (req->principal->credentials, ctx->config->bucket, &req->route,
                         qparam (req, "prefix"), req->copy_bucket, req->copy_key, error))
    return FALSE;

  if (takes_body (req->route.op) && !open_body (req, msg, error))
    return FALSE;
  return TRUE;
}

static char *
new_request_id (void)
{
  return g_strdup_printf ("%08X%08X", g_random_int (), g_random_int ());
}

static void
s3_early_cb (SoupServer        *soup,
             SoupServerMessage *msg,
             const char        *path,
             GHashTable        *query,
             gpointer           user_data)
{
  SrvS3 *self = user_data;
  SoupMessageHeaders *response = soup_server_message_get_response_headers (msg);
  g_autoptr(GError) error = NULL;
  S3Request *req;

  if (is_rest_path (path))
    return;

  /* Bodies never accumulate in memory: spooled when accepted, dropped when refused. */
  soup_message_body_set_accumulate (soup_server_message_get_request_body (msg), FALSE);

  req = g_new0 (S3Request, 1);
  req->s3 = self;
  req->query = srv_s3_parse_query (g_uri_get_query (soup_server_message_get_uri (msg)));
  req->request_id = new_request_id ();
  req->resource = g_strdup (path);
  g_object_set_data_full (G_OBJECT (msg), S3_REQUEST_KEY, req, s3_request_free);
  soup_message_headers_replace (response, "x-amz-request-id", req->request_id);
  soup_message_headers_replace (response, "x-amz-id-2", req->request_id);

  if (!prepare (req, msg, &error))
    {
      /* A refused body is drained unkept (or never sent, after Expect: 100-continue); the
       * connection closes after the error so a client that sends it anyway cannot
       * desynchronise the next request. */
      if (takes_body (req->route.op) || soup_message_headers_get_encoding (
            soup_server_message_get_request_headers (msg)) != SOUP_ENCODING_NONE)
        soup_message_headers_replace (response, "Connection", "close");
      reply_error_now (msg, req, error);
    }
}

static void
s3_cb (SoupServer        *soup,
       SoupServerMessage *msg,
       const char        *path,
       GHashTable        *query,
       gpointer           user_data)
{
  SrvS3 *self = user_data;
  S3Request *req = g_object_get_data (G_OBJECT (msg), S3_REQUEST_KEY);
  g_autoptr(GError) error = NULL;

  if (is_rest_path (path))
    {
      srv_reply_error (msg, SOUP_STATUS_NOT_FOUND, "not_found", "no such endpoint: %s", path);
      return;
    }
  g_assert (req != NULL);  /* s3_early_cb made it for every non-REST path */
  if (req->body != NULL && !srv_s3_body_finish (req->body, &error))
    {
      reply_error_now (msg, req, error);
      return;
    }
  srv_http_offload (self->ctx, msg, run_cb, req, NULL);
}

/* ---- lifecycle --------------------------------------------------------------------------- */

static void
declare_metrics (SrvMetrics *m)
{
  srv_metrics_declare (m, "magpied_s3_requests_total", SRV_METRIC_COUNTER,
                       "S3 requests answered, by operation and S3 result code", NULL, 0);
  srv_metrics_declare (m, "magpied_s3_bytes_in_total", SRV_METRIC_COUNTER,
                       "Object bytes stored by PutObject and UploadPart", NULL, 0);
  srv_metrics_declare (m, "magpied_s3_bytes_out_total", SRV_METRIC_COUNTER,
                       "Object bytes served by GetObject", NULL, 0);
  srv_metrics_add (m, "magpied_s3_bytes_in_total", NULL, 0);
  srv_metrics_add (m, "magpied_s3_bytes_out_total", NULL, 0);
}

SrvS3 *
srv_s3_start (SrvContext *ctx,
              GError    **error)
{
  g_autofree char *spool_dir = g_build_filename (ctx->config->data_dir, "spool", NULL);
  SrvS3 *self;

  if (g_mkdir_with_parents (spool_dir, 0700) != 0)
    {
      int saved_errno = errno;

      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved_errno),
                   "cannot create the upload spool %s: %s", spool_dir, g_strerror (saved_errno));
      return NULL;
    }

  self = g_new0 (SrvS3, 1);
  self->ctx = ctx;
  self->spool_dir = g_steal_pointer (&spool_dir);
  declare_metrics (ctx->metrics);
  soup_server_add_early_handler (ctx->soup, NULL, s3_early_cb, self, NULL);
  soup_server_add_handler (ctx->soup, NULL, s3_cb, self, NULL);
  return self;
}

void
srv_s3_stop (SrvS3 *self)
{
  if (self == NULL)
    return;
  g_free (self->spool_dir);
  g_free (self);
}
