/* srv-s3-proto.h - the S3 wire protocol's pure parts: operation routing, error codes, XML
 *
 * No sockets and no soup here: srv-s3.c adapts messages to these functions, and the tests
 * call them directly. XML bodies follow the 2006-03-01 schema that every S3 client parses.
 */
#pragma once

#include <glib.h>

#include "srv-store.h"

G_BEGIN_DECLS

#define SRV_S3_ERROR (srv_s3_error_quark ())

/* Errors of the S3 front itself (the store has its own domain); each names its S3 code. */
typedef enum {
  SRV_S3_ERROR_ACCESS_DENIED,            /* AccessDenied 403 */
  SRV_S3_ERROR_SIGNATURE_DOES_NOT_MATCH, /* SignatureDoesNotMatch 403 */
  SRV_S3_ERROR_INVALID_ACCESS_KEY_ID,    /* InvalidAccessKeyId 403 */
  SRV_S3_ERROR_EXPIRED_TOKEN,            /* ExpiredToken 403 */
  SRV_S3_ERROR_INVALID_TOKEN,            /* InvalidToken 403 */
  SRV_S3_ERROR_REQUEST_TIME_TOO_SKEWED,  /* RequestTimeTooSkewed 403 */
  SRV_S3_ERROR_AUTH_HEADER_MALFORMED,    /* AuthorizationHeaderMalformed 400 */
  SRV_S3_ERROR_AUTH_QUERY_ERROR,         /* AuthorizationQueryParametersError 400 */
  SRV_S3_ERROR_CONTENT_SHA256_MISMATCH,  /* XAmzContentSHA256Mismatch 400 */
  SRV_S3_ERROR_INVALID_REQUEST,          /* InvalidRequest 400 */
  SRV_S3_ERROR_INVALID_ARGUMENT,         /* InvalidArgument 400 */
  SRV_S3_ERROR_MALFORMED_XML,            /* MalformedXML 400 */
  SRV_S3_ERROR_INCOMPLETE_BODY,          /* IncompleteBody 400 */
  SRV_S3_ERROR_ENTITY_TOO_LARGE,         /* EntityTooLarge 400 */
  SRV_S3_ERROR_MISSING_CONTENT_LENGTH,   /* MissingContentLength 411 */
  SRV_S3_ERROR_NO_SUCH_BUCKET,           /* NoSuchBucket 404 */
  SRV_S3_ERROR_BUCKET_OWNED,             /* BucketAlreadyOwnedByYou 409 */
  SRV_S3_ERROR_METHOD_NOT_ALLOWED,       /* MethodNotAllowed 405 */
  SRV_S3_ERROR_NOT_IMPLEMENTED,          /* NotImplemented 501 */
  SRV_S3_ERROR_PRECONDITION_FAILED,      /* PreconditionFailed 412 */
  SRV_S3_ERROR_INTERNAL,                 /* InternalError 500 */
} SrvS3Error;

typedef enum {
  SRV_S3_OP_LIST_BUCKETS,
  SRV_S3_OP_HEAD_BUCKET,
  SRV_S3_OP_CREATE_BUCKET,
  SRV_S3_OP_GET_BUCKET_LOCATION,
  SRV_S3_OP_LIST_OBJECTS,
  SRV_S3_OP_LIST_OBJECTS_V2,
  SRV_S3_OP_LIST_UPLOADS,
  SRV_S3_OP_DELETE_OBJECTS,
  SRV_S3_OP_PUT_OBJECT,
  SRV_S3_OP_COPY_OBJECT,
  SRV_S3_OP_GET_OBJECT,
  SRV_S3_OP_HEAD_OBJECT,
  SRV_S3_OP_DELETE_OBJECT,
  SRV_S3_OP_CREATE_UPLOAD,
  SRV_S3_OP_UPLOAD_PART,
  SRV_S3_OP_COMPLETE_UPLOAD,
  SRV_S3_OP_ABORT_UPLOAD,
  SRV_S3_OP_LIST_PARTS,
  SRV_S3_N_OPS,
} SrvS3Op;

typedef struct {
  SrvS3Op  op;
  char    *bucket;   /* NULL for ListBuckets */
  char    *key;      /* decoded; NULL for bucket and service operations */
} SrvS3Route;

GQuark       srv_s3_error_quark      (void);

/* The S3 code and HTTP status for an error of SRV_S3_ERROR, SRV_STORE_ERROR,
 * MP_SIGV4_ERROR or SRV_TOKEN_ERROR; InternalError/500 for anything else. */
const char  *srv_s3_error_code       (const GError  *error,
                                      guint         *http_status);
/* The operation's name as AWS documents it ("PutObject"), for logs and metric labels. */
const char  *srv_s3_op_name          (SrvS3Op        op);

/* Path-style routing: @raw_path is percent-encoded as received, @query the decoded query
 * parameters (may be NULL). Returns FALSE and sets @error (MethodNotAllowed,
 * NotImplemented for subresources we do not serve, InvalidArgument for a key that does not
 * decode to UTF-8 without NUL). */
gboolean     srv_s3_route            (const char    *method,
                                      const char    *raw_path,
                                      GHashTable    *query,
                                      gboolean       has_copy_source,
                                      SrvS3Route    *route,
                                      GError       **error);
void         srv_s3_route_clear      (SrvS3Route    *route);

/* The raw query string as S3 reads it: parameters without '=' ("?uploads", "?delete") are
 * present with an empty value (soup's form decoding drops them); '+' is a space; the first
 * of repeated names wins. Returns NULL for a NULL or empty query. Undecodable (escaped NUL)
 * parameters are dropped. */
GHashTable  *srv_s3_parse_query      (const char    *raw_query);

/* x-amz-copy-source ("/bucket/key" or "bucket/key", percent-encoded, optional ?versionId)
 * split into bucket and decoded key. FALSE with InvalidArgument when malformed. */
gboolean     srv_s3_parse_copy_source (const char   *value,
                                       char        **bucket,
                                       char        **key,
                                       GError      **error);

/* Times: ISO 8601 with milliseconds for XML, RFC 1123 for Last-Modified. @us is
 * microseconds since the epoch. */
char        *srv_s3_iso8601          (gint64         us);
char        *srv_s3_http_date        (gint64         us);

/* XML documents, each a complete body with the XML declaration. */
char        *srv_s3_xml_error        (const char    *code,
                                      const char    *message,
                                      const char    *resource,
                                      const char    *request_id);
char        *srv_s3_xml_list_buckets (GPtrArray     *buckets,   /* SrvBucketInfo */
                                      const char    *owner_id);
char        *srv_s3_xml_location     (const char    *region);
/* ListObjectsV2 when @v2, else ListObjects (v1, where @start_after is the marker). With
 * @url_encode, keys and prefixes are percent-encoded (encoding-type=url). */
char        *srv_s3_xml_list_objects (const SrvListResult *result,
                                      gboolean       v2,
                                      const char    *bucket,
                                      const char    *prefix,
                                      const char    *delimiter,
                                      int            max_keys,
                                      const char    *start_after,
                                      const char    *continuation_token,
                                      gboolean       url_encode);
char        *srv_s3_xml_copy_result  (const SrvObjectInfo *info);
char        *srv_s3_xml_initiate     (const char    *bucket,
                                      const char    *key,
                                      const char    *upload_id);
char        *srv_s3_xml_complete     (const char    *location,
                                      const char    *bucket,
                                      const char    *key,
                                      const char    *etag);
char        *srv_s3_xml_list_parts   (const SrvPartList *list,
                                      const char    *bucket,
                                      const char    *key,
                                      const char    *upload_id,
                                      guint          part_number_marker,
                                      int            max_parts);
char        *srv_s3_xml_list_uploads (const SrvUploadList *list,
                                      const char    *bucket,
                                      const char    *prefix,
                                      int            max_uploads);
/* DeleteResult: @results are SrvDeleteResult; errors keep their own S3 code. */
char        *srv_s3_xml_delete_result (GPtrArray    *results,
                                       gboolean      quiet);

/* Request bodies. Returns NULL and sets MalformedXML when the document is not what S3
 * expects. */
GPtrArray   *srv_s3_parse_delete     (const char    *xml,
                                      gsize          len,
                                      gboolean      *quiet,
                                      GError       **error);   /* char * keys */
/* CompleteMultipartUpload: parts as SrvCompletedPart with etags owned by @etags_out. */
GArray      *srv_s3_parse_complete   (const char    *xml,
                                      gsize          len,
                                      GPtrArray    **etags_out,
                                      GError       **error);

G_END_DECLS
