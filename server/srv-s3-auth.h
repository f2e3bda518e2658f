/* srv-s3-auth.h - who sent an S3 request (SigV4 + session token) and what they may touch
 *
 * Pure functions over plain inputs: the keyring, the request as MpSigv4Request, the clock.
 * srv-s3.c calls them before it reads a body, so a bad signature costs no upload.
 */
#pragma once

#include <glib.h>

#include "mp-sigv4.h"
#include "srv-s3-proto.h"
#include "srv-token.h"

G_BEGIN_DECLS

/* The operator's key pair from the config: no token, reaches every key of the bucket. */
typedef struct {
  const char *access_key_id;
  const char *secret_access_key;
} SrvS3AdminKey;

#define SRV_S3_ADMIN_IDENTITY "admin"

typedef struct {
  SrvCredentials *credentials;  /* from the session token */
  MpSigv4Auth    *auth;         /* the verified signature: payload hash, seed for chunks */
} SrvS3Principal;

/* Verifies the request's SigV4 (header or presigned query) against the secret derived from
 * its x-amz-security-token, whose access key must be the one in the credential scope; or,
 * without a token, against @admin's secret when its access key is @admin's (@admin may be
 * NULL; the admin principal has prefix "" and identity SRV_S3_ADMIN_IDENTITY).
 * Returns NULL and sets @error: AccessDenied (anonymous), InvalidAccessKeyId, ExpiredToken,
 * InvalidToken, SignatureDoesNotMatch, RequestTimeTooSkewed, AuthorizationHeaderMalformed
 * (as srv_s3_error_code() maps them). */
SrvS3Principal *srv_s3_authenticate     (SrvKeyring           *keyring,
                                         const SrvS3AdminKey  *admin,
                                         const MpSigv4Request *request,
                                         const char           *region,
                                         gint64                now,
                                         GError              **error);
void            srv_s3_principal_free   (SrvS3Principal       *principal);

/* Temporary credentials reach only their prefix in the served bucket. @list_prefix is the
 * listing's prefix for List* operations; @copy_bucket/@copy_key the CopyObject source.
 * Returns FALSE with AccessDenied (or BucketAlreadyOwnedByYou for CreateBucket on the
 * served bucket). DeleteObjects is checked per key with srv_s3_key_allowed(). */
gboolean        srv_s3_authorize        (const SrvCredentials *credentials,
                                         const char           *served_bucket,
                                         const SrvS3Route     *route,
                                         const char           *list_prefix,
                                         const char           *copy_bucket,
                                         const char           *copy_key,
                                         GError              **error);
gboolean        srv_s3_key_allowed      (const SrvCredentials *credentials,
                                         const char           *key);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (SrvS3Principal, srv_s3_principal_free)

G_END_DECLS
