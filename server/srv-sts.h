/* srv-sts.h - temporary credentials from a remote store's STS: AssumeRole with a session
 * policy that confines them to one identity's prefix
 *
 * The policy, the request body and the response parsing are pure functions, tested without
 * sockets; srv_sts_assume_role() sends the request (SigV4, service "sts") and blocks.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define SRV_STS_ERROR (srv_sts_error_quark ())

typedef enum {
  SRV_STS_ERROR_REJECTED,      /* the STS answered with an error: role, policy, duration, keys */
  SRV_STS_ERROR_UNAVAILABLE,   /* no answer, or a 5xx / throttling one: try again later */
  SRV_STS_ERROR_MALFORMED,     /* an answer that is not an AssumeRoleResponse */
} SrvStsError;

typedef struct _SrvSts SrvSts;

typedef struct {
  char   *access_key_id;
  char   *secret_access_key;
  char   *session_token;
  gint64  expiration;          /* unix seconds */
} SrvStsCredentials;

GQuark             srv_sts_error_quark        (void);

/* The IAM partition of @role_arn ("aws", "aws-cn", "aws-us-gov", ...) for the S3 ARNs of the
 * session policy; "aws" when the ARN names none (MinIO and Ceph take any role string). */
char              *srv_sts_partition          (const char         *role_arn);
/* The session policy (JSON): Get/Put/DeleteObject and the multipart actions on
 * arn:PARTITION:s3:::@bucket/@prefix*, and ListBucket on the bucket only for s3:prefix
 * @prefix and below. @prefix ends in '/'. */
char              *srv_sts_session_policy     (const char         *partition,
                                               const char         *bucket,
                                               const char         *prefix);
/* A RoleSessionName for @identity_id: 2 to 64 of [A-Za-z0-9+=,.@_-], so CloudTrail and the
 * assumed-role ARN name the identity. */
char              *srv_sts_session_name       (const char         *identity_id);
/* The form-encoded AssumeRole request body. */
char              *srv_sts_assume_role_body   (const char         *role_arn,
                                               const char         *session_name,
                                               const char         *policy,
                                               gint64              duration_s);
/* Parses an AssumeRoleResponse; NULL with MALFORMED if it lacks any of the four fields. */
SrvStsCredentials *srv_sts_parse_response     (const char         *xml,
                                               gsize               len,
                                               GError            **error);

/* Returns NULL and sets @error (G_IO_ERROR_INVALID_ARGUMENT) for a bad @endpoint. */
SrvSts            *srv_sts_new                (const char         *endpoint,
                                               const char         *region,
                                               const char         *access_key_id,
                                               const char         *secret_access_key,
                                               GError            **error);
void               srv_sts_free               (SrvSts             *sts);
/* AssumeRole on @role_arn for @duration_s seconds with @policy. Blocks; any thread. */
SrvStsCredentials *srv_sts_assume_role        (SrvSts             *sts,
                                               const char         *role_arn,
                                               const char         *session_name,
                                               const char         *policy,
                                               gint64              duration_s,
                                               GError            **error);
SrvStsCredentials *srv_sts_credentials_copy   (const SrvStsCredentials *credentials);
void               srv_sts_credentials_free   (SrvStsCredentials  *credentials);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (SrvSts, srv_sts_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SrvStsCredentials, srv_sts_credentials_free)

G_END_DECLS
