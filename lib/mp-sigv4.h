/* mp-sigv4.h - AWS Signature Version 4: canonical requests, signing, presigning, verification
 * and aws-chunked streaming payloads. Pure functions over plain inputs: no sockets, no libsoup;
 * the app and magpied adapt their messages to MpSigv4Request. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define MP_SIGV4_ALGORITHM          "AWS4-HMAC-SHA256"
#define MP_SIGV4_EMPTY_SHA256 /* hex SHA-256 of no bytes */ \
  "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define MP_SIGV4_UNSIGNED_PAYLOAD   "UNSIGNED-PAYLOAD"
#define MP_SIGV4_STREAMING_PAYLOAD  "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
#define MP_SIGV4_MAX_SKEW_S         (15 * 60)           /* what AWS allows between clocks */
#define MP_SIGV4_MAX_EXPIRES_S      (7 * 24 * 60 * 60)  /* presigned URLs live at most a week */
#define MP_SIGV4_CHUNK_LINE_MAX     4096                /* valid chunk header lines are < 100 B */

#define MP_SIGV4_ERROR (mp_sigv4_error_quark ())

typedef enum {
  MP_SIGV4_ERROR_MALFORMED,             /* unparsable Authorization, query, date or chunk framing */
  MP_SIGV4_ERROR_MISSING_AUTH,          /* the request carries no SigV4 authentication at all */
  MP_SIGV4_ERROR_UNSUPPORTED_ALGORITHM, /* not AWS4-HMAC-SHA256 (SigV2, SigV4a, ...) */
  MP_SIGV4_ERROR_MISSING_SIGNED_HEADER, /* host/x-amz-date unsigned, or a signed header absent */
  MP_SIGV4_ERROR_SCOPE_MISMATCH,        /* credential date/region/service disagree */
  MP_SIGV4_ERROR_UNKNOWN_ACCESS_KEY,    /* the secret lookup knows no such access key id */
  MP_SIGV4_ERROR_REQUEST_EXPIRED,       /* presigned URL past X-Amz-Expires */
  MP_SIGV4_ERROR_CLOCK_SKEW,            /* request time more than 15 min from now */
  MP_SIGV4_ERROR_SIGNATURE_MISMATCH,    /* request or chunk signature does not match */
  MP_SIGV4_ERROR_CHUNK_TOO_LARGE,       /* aws-chunked chunk above the configured maximum */
  MP_SIGV4_ERROR_LENGTH_MISMATCH,       /* decoded length != x-amz-decoded-content-length */
  MP_SIGV4_ERROR_TRUNCATED,             /* aws-chunked body ended before its final chunk */
} MpSigv4Error;

typedef enum {
  MP_SIGV4_FLAG_NONE                  = 0,
  MP_SIGV4_FLAG_NORMALIZE_PATH        = 1 << 0, /* drop "." / ".." and empty path segments */
  MP_SIGV4_FLAG_DOUBLE_ENCODE_PATH    = 1 << 1, /* encode the wire path again ('%' -> %25) */
  MP_SIGV4_FLAG_CONTENT_SHA256_HEADER = 1 << 2, /* signer adds and signs x-amz-content-sha256 */
  MP_SIGV4_FLAG_OMIT_SESSION_TOKEN    = 1 << 3, /* token travels with the request but unsigned */
} MpSigv4Flags;

/* S3 never normalises or double-encodes object keys; every other service does both. */
#define MP_SIGV4_FLAGS_S3      (MP_SIGV4_FLAG_CONTENT_SHA256_HEADER)
#define MP_SIGV4_FLAGS_GENERIC (MP_SIGV4_FLAG_NORMALIZE_PATH | MP_SIGV4_FLAG_DOUBLE_ENCODE_PATH)

typedef struct {
  const char *name;
  const char *value;
} MpSigv4Header;

/* A request as it is (or will be) on the wire. @path is percent-encoded as sent, without the
 * query; @query is the raw query without '?' (NULL or "" for none). @payload_hash is the hex
 * SHA-256 of the body, MP_SIGV4_UNSIGNED_PAYLOAD or MP_SIGV4_STREAMING_PAYLOAD; NULL means:
 * the x-amz-content-sha256 header if present, else UNSIGNED-PAYLOAD for a presigned request,
 * else the hash of an empty body. */
typedef struct {
  const char          *method;
  const char          *path;
  const char          *query;
  const MpSigv4Header *headers;
  gsize                n_headers;
  const char          *payload_hash;
} MpSigv4Request;

typedef struct {
  const char   *access_key_id;
  const char   *secret_access_key;
  const char   *session_token;     /* NULL for long-term credentials */
  const char   *region;
  const char   *service;
  gint64        now;               /* unix seconds; the request time */
  MpSigv4Flags  flags;
} MpSigv4SigningParams;

/* What signing produced. @set_headers lists the headers to set (replacing any of the same
 * name) on the request: x-amz-date, x-amz-security-token, x-amz-content-sha256 and, for header
 * signing, Authorization. For presigning, @query is the complete new query string. */
typedef struct {
  char          *canonical_request;
  char          *string_to_sign;
  char          *signature;
  char          *signed_headers;
  char          *amz_date;
  char          *scope;
  char          *authorization;    /* header signing only */
  char          *query;            /* presigning only, without '?' */
  MpSigv4Header  set_headers[4];
  gsize          n_set_headers;
  char          *strings_[4];      /* private: owns set_headers values */
} MpSigv4Signed;

/* Parsed authentication of a received request (Authorization header or presigned query). */
typedef struct {
  char      *access_key_id;
  char      *date;            /* scope date, YYYYMMDD */
  char      *region;
  char      *service;
  char      *scope;           /* date/region/service/aws4_request */
  char      *signed_headers;  /* "host;x-amz-date" */
  char      *signature;       /* 64 lowercase hex digits */
  char      *amz_date;        /* YYYYMMDDTHHMMSSZ, NULL until known */
  char      *security_token;  /* NULL when none */
  char      *payload_hash;    /* what the signature covers: the server must hold the body to it
                               * (hex SHA-256, UNSIGNED-PAYLOAD, or STREAMING-*: decode chunks) */
  gint64     expires;         /* presigned: X-Amz-Expires seconds; -1 for header auth */
  gboolean   presigned;
} MpSigv4Auth;

typedef struct {
  gint64        now;          /* unix seconds */
  const char   *region;       /* required region, or NULL for any */
  const char   *service;      /* required service, or NULL for any */
  MpSigv4Flags  flags;        /* path rules: MP_SIGV4_FLAGS_S3 for the object store */
} MpSigv4VerifyParams;

/* Returns the secret for @access_key_id (g_free'd by the caller), or NULL and sets @error
 * (e.g. MP_SIGV4_ERROR_UNKNOWN_ACCESS_KEY). @session_token may be NULL. */
typedef char *(*MpSigv4SecretLookup) (const char  *access_key_id,
                                      const char  *session_token,
                                      gpointer     user_data,
                                      GError     **error);

typedef struct _MpSigv4ChunkDecoder MpSigv4ChunkDecoder;
typedef struct _MpSigv4ChunkEncoder MpSigv4ChunkEncoder;

GQuark         mp_sigv4_error_quark           (void);

/* Building blocks, exposed for tests and for callers with unusual needs. */
char          *mp_sigv4_sha256_hex            (const void                 *data,
                                               gsize                       len);
char          *mp_sigv4_format_amz_date       (gint64                      unix_s);
gboolean       mp_sigv4_parse_amz_date        (const char                 *text,
                                               gint64                     *out_unix_s);
char          *mp_sigv4_canonical_uri         (const char                 *path,
                                               MpSigv4Flags                flags);
char          *mp_sigv4_canonical_query       (const char                 *query,
                                               gboolean                    drop_signature);
/* @signed_headers ("host;x-amz-date") picks the headers; NULL signs every header except
 * hop-by-hop and client-noise ones. Fails with MISSING_SIGNED_HEADER when one is absent. */
char          *mp_sigv4_canonical_request     (const MpSigv4Request       *request,
                                               const char                 *signed_headers,
                                               MpSigv4Flags                flags,
                                               char                      **out_signed_headers,
                                               GError                    **error);
char          *mp_sigv4_string_to_sign        (const char                 *amz_date,
                                               const char                 *scope,
                                               const char                 *canonical_request);
void           mp_sigv4_signing_key           (const char                 *secret_access_key,
                                               const char                 *date,
                                               const char                 *region,
                                               const char                 *service,
                                               guint8                      out_key[32]);
char          *mp_sigv4_hmac_hex              (const guint8                key[32],
                                               const char                 *string_to_sign);
gboolean       mp_sigv4_equal                 (const char                 *a,
                                               const char                 *b);

/* Signing (clients). Returns NULL and sets @error when the request has no Host header. */
MpSigv4Signed *mp_sigv4_sign                  (const MpSigv4Request       *request,
                                               const MpSigv4SigningParams *params,
                                               GError                    **error);
MpSigv4Signed *mp_sigv4_presign               (const MpSigv4Request       *request,
                                               const MpSigv4SigningParams *params,
                                               gint64                      expires_s,
                                               GError                    **error);
void           mp_sigv4_signed_free           (MpSigv4Signed              *signed_request);

/* Verification (servers): parse, look the secret up by auth->access_key_id, verify. */
MpSigv4Auth   *mp_sigv4_parse_authorization   (const char                 *header_value,
                                               GError                    **error);
MpSigv4Auth   *mp_sigv4_parse_presigned       (const char                 *query,
                                               GError                    **error);
MpSigv4Auth   *mp_sigv4_parse_request         (const MpSigv4Request       *request,
                                               GError                    **error);
/* Checks signed host and x-amz-date, scope, clock skew, presign expiry, then the signature
 * in constant time. Returns FALSE and sets @error with the first failed check. */
gboolean       mp_sigv4_verify                (const MpSigv4Auth          *auth,
                                               const MpSigv4Request       *request,
                                               const char                 *secret_access_key,
                                               const MpSigv4VerifyParams  *params,
                                               GError                    **error);
/* parse + lookup + verify in one call; returns the verified auth (for chunk decoding). */
MpSigv4Auth   *mp_sigv4_verify_request        (const MpSigv4Request       *request,
                                               const MpSigv4VerifyParams  *params,
                                               MpSigv4SecretLookup         lookup,
                                               gpointer                    user_data,
                                               GError                    **error);
void           mp_sigv4_auth_free             (MpSigv4Auth                *auth);

/* aws-chunked (STREAMING-AWS4-HMAC-SHA256-PAYLOAD). The decoder takes the body in pieces of
 * any size, appends payload bytes to @out as they pass (provisional until the chunk's
 * signature is checked at its end: discard the upload on any error) and buffers at most one
 * chunk header line. @decoded_length is x-amz-decoded-content-length, or -1 if absent. */
MpSigv4ChunkDecoder *mp_sigv4_chunk_decoder_new    (const MpSigv4Auth     *auth,
                                                    const char            *secret_access_key,
                                                    gsize                  max_chunk_size,
                                                    gint64                 decoded_length);
gboolean       mp_sigv4_chunk_decoder_feed    (MpSigv4ChunkDecoder        *decoder,
                                               const guint8               *data,
                                               gsize                       len,
                                               GByteArray                 *out,
                                               GError                    **error);
/* Call at end of body: fails with TRUNCATED unless the final chunk arrived and was verified. */
gboolean       mp_sigv4_chunk_decoder_finish  (MpSigv4ChunkDecoder        *decoder,
                                               GError                    **error);
guint64        mp_sigv4_chunk_decoder_get_verified_length (MpSigv4ChunkDecoder *decoder);
void           mp_sigv4_chunk_decoder_free    (MpSigv4ChunkDecoder        *decoder);

/* The client side: sign with the same params and the seed request's MpSigv4Signed. */
MpSigv4ChunkEncoder *mp_sigv4_chunk_encoder_new    (const MpSigv4SigningParams *params,
                                                    const MpSigv4Signed        *seed);
void           mp_sigv4_chunk_encoder_add     (MpSigv4ChunkEncoder        *encoder,
                                               const guint8               *data,
                                               gsize                       len,
                                               GByteArray                 *out);
void           mp_sigv4_chunk_encoder_finish  (MpSigv4ChunkEncoder        *encoder,
                                               GByteArray                 *out);
void           mp_sigv4_chunk_encoder_free    (MpSigv4ChunkEncoder        *encoder);
/* Content-Length of an aws-chunked body of @decoded_length bytes cut into @chunk_size chunks. */
guint64        mp_sigv4_chunked_length        (guint64                     decoded_length,
                                               gsize                       chunk_size);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (MpSigv4Signed, mp_sigv4_signed_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MpSigv4Auth, mp_sigv4_auth_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MpSigv4ChunkDecoder, mp_sigv4_chunk_decoder_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MpSigv4ChunkEncoder, mp_sigv4_chunk_encoder_free)

G_END_DECLS
