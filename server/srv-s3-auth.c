/* srv-s3-auth.c - who sent an S3 request (SigV4 + session token) and what they may touch */
#define G_LOG_DOMAIN "srv-s3"

#include "config.h"

#include "srv-s3-auth.h"

#include <sodium.h>
#include <string.h>

SrvS3Principal *
srv_s3_authenticate (SrvKeyring           *keyring,
                     const SrvS3AdminKey  *admin,
                     const MpSigv4Request *request,
                     const char           *region,
                     gint64                now,
                     GError              **error)
{
  g_autoptr(MpSigv4Auth) auth = NULL;
  g_autoptr(SrvCredentials) credentials = NULL;
  g_autoptr(GError) local = NULL;
  SrvS3Principal *principal;
  MpSigv4VerifyParams params = { now, region, "s3", MP_SIGV4_FLAGS_S3 };

  auth = mp_sigv4_parse_request (request, &local);
  if (auth == NULL)
    {
      if (g_error_matches (local, MP_SIGV4_ERROR, MP_SIGV4_ERROR_MISSING_AUTH))
        g_set_error (error, SRV_S3_ERROR, SRV_S3_ERROR_ACCESS_DENIED,
                     "anonymous access is forbidden: sign requests with the temporary "
                     "credentials from POST /v1/credentials");
      else if (g_error_matches (local, MP_SIGV4_ERROR, MP_SIGV4_ERROR_MALFORMED) &&
               request->query != NULL && strstr (request->query, "X-Amz-") != NULL)
        g_set_error (error, SRV_S3_ERROR, SRV_S3_ERROR_AUTH_QUERY_ERROR, "%s", local->message);
      else
        g_propagate_error (error, g_steal_pointer (&local));
      return NULL;
    }
  if ((auth->security_token == NULL || *auth->security_token == '\0') && admin != NULL &&
      strlen (auth->access_key_id) == strlen (admin->access_key_id) &&
      sodium_memcmp (auth->access_key_id, admin->access_key_id,
                     strlen (admin->access_key_id)) == 0)
    {
      if (!mp_sigv4_verify (auth, request, admin->secret_access_key, &params, error))
        return NULL;
      credentials = g_new0 (SrvCredentials, 1);
      credentials->identity_id = g_strdup (SRV_S3_ADMIN_IDENTITY);
      credentials->kind = SRV_IDENTITY_ACCOUNT;
      credentials->access_key_id = g_strdup (admin->access_key_id);
      credentials->secret_access_key = g_strdup (admin->secret_access_key);
      credentials->prefix = g_strdup ("");
      credentials->expires_at = G_MAXINT64;
      principal = g_new0 (SrvS3Principal, 1);
      principal->credentials = g_steal_pointer (&credentials);
      principal->auth = g_steal_pointer (&auth);
      return principal;
    }
  if (auth->security_token == NULL || *auth->security_token == '\0')
    {
      /* Apart from the admin pair, only temporary credentials exist here, and they always
       * travel with their token. */
      g_set_error (error, SRV_S3_ERROR, SRV_S3_ERROR_INVALID_ACCESS_KEY_ID,
                   "the access key id %s does not exist in our records (is the "
                   "x-amz-security-token missing?)", auth->access_key_id);
      return NULL;
    }
  credentials = srv_credentials_verify (keyring, auth->security_token, now, &local);
  if (credentials == NULL)
    {
      if (g_error_matches (local, SRV_TOKEN_ERROR, SRV_TOKEN_ERROR_EXPIRED))
        g_set_error (error, SRV_S3_ERROR, SRV_S3_ERROR_EXPIRED_TOKEN,
                     "the provided token has expired: %s", local->message);
      else
        g_set_error (error, SRV_S3_ERROR, SRV_S3_ERROR_INVALID_TOKEN,
                     "the provided token is malformed or otherwise invalid: %s",
                     local->message);
      return NULL;
    }
  if (strcmp (credentials->access_key_id, auth->access_key_id) != 0)
    {
      g_set_error (error, SRV_S3_ERROR, SRV_S3_ERROR_INVALID_ACCESS_KEY_ID,
                   "the access key id %s does not belong to the session token",
                   auth->access_key_id);
      return NULL;
    }
  if (!mp_sigv4_verify (auth, request, credentials->secret_access_key, &params, error))
    return NULL;

  principal = g_new0 (SrvS3Principal, 1);
  principal->credentials = g_steal_pointer (&credentials);
  principal->auth = g_steal_pointer (&auth);
  return principal;
}

void
srv_s3_principal_free (SrvS3Principal *principal)
{
  if (principal == NULL)
    return;
  srv_credentials_free (principal->credentials);
  mp_sigv4_auth_free (principal->auth);
  g_free (principal);
}

gboolean
srv_s3_key_allowed (const SrvCredentials *credentials,
                    const char           *key)
{
  return key != NULL && g_str_has_prefix (key, credentials->prefix);
}

#define DENY(...) \
  G_STMT_START { \
    g_set_error (error, SRV_S3_ERROR, SRV_S3_ERROR_ACCESS_DENIED, __VA_ARGS__); \
    return FALSE; \
  } G_STMT_END

gboolean
srv_s3_authorize (const SrvCredentials *credentials,
                  const char           *served_bucket,
                  const SrvS3Route     *route,
                  const char           *list_prefix,
                  const char           *copy_bucket,
                  const char           *copy_key,
                  GError              **error)
{
  const char *prefix = credentials->prefix;

  if (route->op == SRV_S3_OP_LIST_BUCKETS)
    return TRUE;
  if (g_strcmp0 (route->bucket, served_bucket) != 0)
    DENY ("access to bucket %s is denied (these credentials reach %s in the served bucket "
          "only)", route->bucket, prefix);

  switch (route->op)
    {
    case SRV_S3_OP_HEAD_BUCKET:
    case SRV_S3_OP_GET_BUCKET_LOCATION:
    case SRV_S3_OP_DELETE_OBJECTS:
      return TRUE;
    case SRV_S3_OP_CREATE_BUCKET:
      g_set_error (error, SRV_S3_ERROR, SRV_S3_ERROR_BUCKET_OWNED,
                   "the bucket %s already exists and is served here", served_bucket);
      return FALSE;
    case SRV_S3_OP_LIST_OBJECTS:
    case SRV_S3_OP_LIST_OBJECTS_V2:
    case SRV_S3_OP_LIST_UPLOADS:
      if ((list_prefix == NULL && *prefix != '\0') ||
          (list_prefix != NULL && !g_str_has_prefix (list_prefix, prefix)))
        DENY ("listing prefix '%s' is denied: list under %s",
              list_prefix ? list_prefix : "", prefix);
      return TRUE;
    case SRV_S3_OP_COPY_OBJECT:
      if (g_strcmp0 (copy_bucket, served_bucket) != 0 || !g_str_has_prefix (copy_key, prefix))
        DENY ("reading the copy source %s is denied: these credentials reach %s",
              copy_key ? copy_key : "", prefix);
      G_GNUC_FALLTHROUGH;
    default:
      if (!g_str_has_prefix (route->key, prefix))
        DENY ("access to key %s is denied: these credentials reach %s only", route->key, prefix);
      return TRUE;
    }
}
