/* srv-api.c - the REST API under /v1: identities, accounts, sessions, credentials, photos
 *
 * Handlers are thin: parse and validate on the main context, then either answer there (a
 * credential call whose identity is cached costs one SHA-256, one HMAC and no I/O) or hand
 * the catalog, store and argon2 work to srv_http_offload().
 */
#define G_LOG_DOMAIN "magpied-api"

#include "config.h"

#include "srv-api.h"

#include <sodium.h>
#include <string.h>

#include "srv-http.h"
#include "srv-password.h"
#include "srv-ratelimit.h"
#include "srv-reply.h"
#include "srv-route.h"
#include "srv-sts.h"

/* `disabled` is the one field of an identity that changes, so a cached identity is trusted
 * for a minute: a disable takes hold within that, and a busy client costs one catalog read
 * a minute instead of one per credential call. */
#define SRV_API_CACHE_TTL_US   (60 * G_USEC_PER_SEC)
/* About 100 bytes an entry: 10 MB at most. A full cache starts over rather than keeping
 * LRU order on the hot path; refilling costs one catalog read per active identity. */
#define SRV_API_CACHE_MAX      100000
/* STS credentials handed out again to the same identity while this fresh: a client that asks
 * in a loop costs one AssumeRole per five minutes (STS throttles per account), and what it
 * gets still has at least three quarters of the lifetime it asked for. */
#define SRV_API_STS_REUSE_MAX_US  (300 * G_USEC_PER_SEC)

/* Sign-in attempts: five a minute for one account stops online guessing cold while a person
 * who mistypes twice never notices; twenty a minute from one address covers a household
 * behind one NAT. Guest identities are cheap but each is a catalog row: a hundred at once,
 * then ten a second, from one address. */
#define SRV_API_ACCOUNT_BURST        5
#define SRV_API_ACCOUNT_PER_S        (5.0 / 60)
#define SRV_API_ADDRESS_BURST        20
#define SRV_API_ADDRESS_PER_S        (20.0 / 60)
#define SRV_API_GUEST_BURST          100
#define SRV_API_GUEST_PER_S          10.0
#define SRV_API_RATELIMIT_KEYS       65536

/* RFC 6585; libsoup 3.2 has no name for it. */
#define SRV_API_STATUS_TOO_MANY_REQUESTS 429

#define SRV_API_LIST_DEFAULT         50
#define SRV_API_TAG_MAX              128

/* The key that derives account secrets; it never leaves the data directory. */
#define SRV_API_ACCOUNT_KEY_FILE     "account-secret.key"

#define SRV_API_ERROR (srv_api_error_quark ())

typedef enum {
  SRV_API_ERROR_NOT_AUTHORIZED,   /* 401: the identity and secret do not match */
  SRV_API_ERROR_DISABLED,         /* 403: the identity exists but may not sign in */
  SRV_API_ERROR_NO_SUCH_OBJECT,   /* 404: POST /v1/photos for a key the store does not hold */
  SRV_API_ERROR_USERNAME_TAKEN,   /* 409 */
} SrvApiError;

static G_DEFINE_QUARK (srv-api-error-quark, srv_api_error)

typedef struct {
  guint8           hash[crypto_hash_sha256_BYTES];
  SrvIdentityKind  kind;
  gboolean         disabled;
  gint64           expires_us;
} CachedIdentity;

typedef struct {
  SrvStsCredentials *creds;
  gint64             lifetime_s;   /* what was asked for */
  gint64             issued_us;    /* monotonic */
} CachedSts;

static void
cached_sts_free (gpointer data)
{
  CachedSts *entry = data;

  srv_sts_credentials_free (entry->creds);
  g_free (entry);
}

struct _SrvApi {
  SrvContext   *ctx;
  GMutex        cache_lock;
  GHashTable   *cache;            /* identity id → CachedIdentity */
  GHashTable   *sts_cache;        /* identity id → CachedSts; under cache_lock */
  SrvSts       *sts;              /* NULL with the embedded store */
  char         *sts_partition;    /* of the role ARN, for the session policy's S3 ARNs */
  guint8        account_key[crypto_auth_hmacsha256_KEYBYTES];
  /* Main context only. */
  SrvRateLimit *by_account;       /* sign-in attempts per username */
  SrvRateLimit *by_address;       /* sign-ins and sign-ups per client address */
  SrvRateLimit *guests;           /* guest identities per client address */
};

/* Secrets and times */

char *
srv_api_new_secret (void)
{
  guint8 random[32];
  char out[sodium_base64_ENCODED_LEN (32, sodium_base64_VARIANT_URLSAFE_NO_PADDING)];

  g_assert (sodium_init () >= 0);
  randombytes_buf (random, sizeof random);
  sodium_bin2base64 (out, sizeof out, random, sizeof random,
                     sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  sodium_memzero (random, sizeof random);
  return g_strdup (out);
}

static void
hash_secret_raw (const char *secret,
                 guint8      hash[crypto_hash_sha256_BYTES])
{
  crypto_hash_sha256 (hash, (const guint8 *) secret, strlen (secret));
}

char *
srv_api_hash_secret (const char *secret)
{
  guint8 hash[crypto_hash_sha256_BYTES];
  char hex[crypto_hash_sha256_BYTES * 2 + 1];

  g_return_val_if_fail (secret != NULL, NULL);
  hash_secret_raw (secret, hash);
  sodium_bin2hex (hex, sizeof hex, hash, sizeof hash);
  return g_strdup (hex);
}

/* Parses a stored hash; FALSE for anything that is not 64 hex digits (a NULL or damaged
 * column never matches). */
static gboolean
parse_secret_hash (const char *secret_hash,
                   guint8      hash[crypto_hash_sha256_BYTES])
{
  size_t len = 0;

  if (secret_hash == NULL || strlen (secret_hash) != crypto_hash_sha256_BYTES * 2)
    return FALSE;
  return sodium_hex2bin (hash, crypto_hash_sha256_BYTES, secret_hash,
                         crypto_hash_sha256_BYTES * 2, NULL, &len, NULL) == 0 &&
         len == crypto_hash_sha256_BYTES;
}

static gboolean
check_secret_raw (const guint8  hash[crypto_hash_sha256_BYTES],
                  const char   *secret)
{
  guint8 candidate[crypto_hash_sha256_BYTES];

  hash_secret_raw (secret, candidate);
  return sodium_memcmp (candidate, hash, crypto_hash_sha256_BYTES) == 0;
}

gboolean
srv_api_check_secret (const char *secret_hash,
                      const char *secret)
{
  guint8 hash[crypto_hash_sha256_BYTES];

  g_return_val_if_fail (secret != NULL, FALSE);
  if (!parse_secret_hash (secret_hash, hash))
    return FALSE;
  return check_secret_raw (hash, secret);
}

char *
srv_api_format_time (gint64 unix_seconds)
{
  g_autoptr(GDateTime) dt = g_date_time_new_from_unix_utc (unix_seconds);

  g_return_val_if_fail (dt != NULL, NULL);
  return g_date_time_format (dt, "%Y-%m-%dT%H:%M:%SZ");
}

/* Errors: one map from whatever failed to a status and a code of the envelope */

static guint
error_status (const GError  *error,
              const char   **code)
{
  if (error->domain == SRV_API_ERROR)
    switch ((SrvApiError) error->code)
      {
      case SRV_API_ERROR_NOT_AUTHORIZED:
        *code = "not_authorized";
        return SOUP_STATUS_UNAUTHORIZED;
      case SRV_API_ERROR_DISABLED:
        *code = "identity_disabled";
        return SOUP_STATUS_FORBIDDEN;
      case SRV_API_ERROR_NO_SUCH_OBJECT:
        *code = "no_such_object";
        return SOUP_STATUS_NOT_FOUND;
      case SRV_API_ERROR_USERNAME_TAKEN:
        *code = "username_taken";
        return SOUP_STATUS_CONFLICT;
      }
  if (error->domain == SRV_DB_ERROR)
    switch ((SrvDbError) error->code)
      {
      case SRV_DB_ERROR_NOT_FOUND:
        *code = "not_found";
        return SOUP_STATUS_NOT_FOUND;
      case SRV_DB_ERROR_CONFLICT:
        *code = "conflict";
        return SOUP_STATUS_CONFLICT;
      case SRV_DB_ERROR_INVALID:
        *code = "bad_request";
        return SOUP_STATUS_BAD_REQUEST;
      case SRV_DB_ERROR_BUSY:
        *code = "busy";
        return SOUP_STATUS_SERVICE_UNAVAILABLE;
      case SRV_DB_ERROR_INTERNAL:
        break;
      }
  if (g_error_matches (error, SRV_TOKEN_ERROR, SRV_TOKEN_ERROR_INVALID))
    {
      *code = "bad_request";
      return SOUP_STATUS_BAD_REQUEST;
    }
  if (g_error_matches (error, SRV_STS_ERROR, SRV_STS_ERROR_UNAVAILABLE) ||
      g_error_matches (error, SRV_STORE_ERROR, SRV_STORE_ERROR_UNAVAILABLE))
    {
      *code = "store_unavailable";
      return SOUP_STATUS_SERVICE_UNAVAILABLE;
    }
  if (error->domain == SRV_STS_ERROR ||
      g_error_matches (error, SRV_STORE_ERROR, SRV_STORE_ERROR_ACCESS_DENIED))
    {
      /* The remote store refused us, not the client: an operator has to look. */
      *code = "store_refused";
      return SOUP_STATUS_BAD_GATEWAY;
    }
  *code = "internal";
  return SOUP_STATUS_INTERNAL_SERVER_ERROR;
}

/* From the blocking pool. Server faults are logged here; the client gets the message too,
 * since a self-hosted server's operator is often its only user. */
static void
reply_set_gerror (SrvHttpReply *reply,
                  const GError *error)
{
  const char *code;
  guint status = error_status (error, &code);

  if (status >= 500)
    g_log_structured (G_LOG_DOMAIN, G_LOG_LEVEL_WARNING,
                      "ERROR", error->message, "MESSAGE", "request failed");
  if (status == SOUP_STATUS_SERVICE_UNAVAILABLE)
    srv_http_reply_add_header (reply, "Retry-After", "1");
  srv_http_reply_set_error (reply, status, code, "%s", error->message);
}

static void
reply_gerror (SoupServerMessage *msg,
              const GError      *error)
{
  const char *code;
  guint status = error_status (error, &code);

  if (status >= 500)
    g_log_structured (G_LOG_DOMAIN, G_LOG_LEVEL_WARNING,
                      "ERROR", error->message, "MESSAGE", "request failed");
  srv_reply_error (msg, status, code, "%s", error->message);
}

/* Request fields: each helper replies 400 itself and returns FALSE */

static gboolean
get_string (SoupServerMessage  *msg,
            JsonObject         *o,
            const char         *name,
            gboolean            required,
            const char        **out)
{
  g_autoptr(GError) error = NULL;

  if (srv_http_json_string (o, name, required, out, &error))
    return TRUE;
  srv_reply_error (msg, SOUP_STATUS_BAD_REQUEST, "bad_request", "%s", error->message);
  return FALSE;
}

/* An optional integer member; @out keeps its default when the member is absent or null. */
static gboolean
get_int (SoupServerMessage *msg,
         JsonObject        *o,
         const char        *name,
         gint64            *out)
{
  g_autoptr(GError) error = NULL;

  if (srv_http_json_int (o, name, out, &error))
    return TRUE;
  srv_reply_error (msg, SOUP_STATUS_BAD_REQUEST, "bad_request", "%s", error->message);
  return FALSE;
}

/* The identity cache */

static void
cache_store (SrvApi            *api,
             const SrvIdentity *identity)
{
  CachedIdentity *entry = g_new0 (CachedIdentity, 1);

  if (!parse_secret_hash (identity->secret_hash, entry->hash))
    {
      g_free (entry);
      return;
    }
  entry->kind = identity->kind;
  entry->disabled = identity->disabled;
  entry->expires_us = g_get_monotonic_time () + SRV_API_CACHE_TTL_US;
  g_mutex_lock (&api->cache_lock);
  if (g_hash_table_size (api->cache) >= SRV_API_CACHE_MAX)
    g_hash_table_remove_all (api->cache);
  g_hash_table_replace (api->cache, g_strdup (identity->id), entry);
  g_mutex_unlock (&api->cache_lock);
}

static gboolean
cache_lookup (SrvApi         *api,
              const char     *identity_id,
              CachedIdentity *out)
{
  CachedIdentity *entry;
  gboolean found = FALSE;

  g_mutex_lock (&api->cache_lock);
  entry = g_hash_table_lookup (api->cache, identity_id);
  if (entry != NULL && entry->expires_us > g_get_monotonic_time ())
    {
      *out = *entry;
      found = TRUE;
    }
  g_mutex_unlock (&api->cache_lock);
  return found;
}

/* Rate limits */

/* Takes a token from @limit for @key; replies 429 with Retry-After and returns FALSE when
 * there is none. */
static gboolean
rate_limit (SrvApi            *api,
            SrvRateLimit      *limit,
            SoupServerMessage *msg,
            const char        *key)
{
  guint retry_after = 0;
  char value[16];

  if (srv_ratelimit_take (limit, key, g_get_monotonic_time (), &retry_after))
    return TRUE;
  g_snprintf (value, sizeof value, "%u", retry_after);
  soup_message_headers_replace (soup_server_message_get_response_headers (msg),
                                "Retry-After", value);
  srv_metrics_add (api->ctx->metrics, "magpied_rate_limited_total", NULL, 1);
  srv_reply_error (msg, SRV_API_STATUS_TOO_MANY_REQUESTS, "rate_limited",
                   "too many attempts; try again in %u s", retry_after);
  return FALSE;
}

static const char *
client_address (SoupServerMessage *msg)
{
  const char *host = soup_server_message_get_remote_host (msg);

  return host ? host : "-";
}

/* POST /v1/identities */

static JsonNode *
identity_json (const char *identity_id,
               const char *secret)
{
  g_autoptr(JsonBuilder) b = json_builder_new ();

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "identity_id");
  json_builder_add_string_value (b, identity_id);
  json_builder_set_member_name (b, "secret");
  json_builder_add_string_value (b, secret);
  json_builder_end_object (b);
  return json_builder_get_root (b);
}

static void
create_guest_func (SrvHttpReply *reply,
                   gpointer      user_data)
{
  SrvApi *api = user_data;
  g_autoptr(GError) error = NULL;
  g_autofree char *secret = srv_api_new_secret ();
  g_autofree char *hash = srv_api_hash_secret (secret);
  g_autoptr(SrvIdentity) identity = NULL;
  g_autoptr(JsonNode) body = NULL;

  identity = srv_db_create_identity (api->ctx->db, SRV_IDENTITY_GUEST, NULL, NULL, hash, &error);
  if (identity == NULL)
    {
      reply_set_gerror (reply, error);
      return;
    }
  cache_store (api, identity);
  body = identity_json (identity->id, secret);
  srv_http_reply_set_json (reply, SOUP_STATUS_CREATED, body);
}

static void
handle_identities (SrvApi            *api,
                   SoupServerMessage *msg)
{
  if (!api->ctx->config->guests)
    {
      srv_reply_error (msg, SOUP_STATUS_FORBIDDEN, "guests_disabled",
                       "this server does not hand out guest identities; "
                       "create an account with POST /v1/accounts");
      return;
    }
  if (!rate_limit (api, api->guests, msg, client_address (msg)))
    return;
  srv_http_offload (api->ctx, msg, create_guest_func, api, NULL);
}

/* POST /v1/credentials */

typedef struct {
  SrvApi *api;
  char   *identity_id;
  char   *secret;
  gint64  lifetime_s;
} CredentialsRequest;

static void
credentials_request_free (gpointer data)
{
  CredentialsRequest *req = data;

  g_free (req->identity_id);
  sodium_memzero (req->secret, strlen (req->secret));
  g_free (req->secret);
  g_free (req);
}

/* AssumeRole at the remote store's STS for @identity_id, or a recent answer for the same
 * lifetime again. Blocks: call from the blocking pool only. */
static SrvStsCredentials *
remote_credentials (SrvApi      *api,
                    const char  *identity_id,
                    const char  *prefix,
                    gint64       lifetime_s,
                    GError     **error)
{
  SrvContext *ctx = api->ctx;
  gint64 now = g_get_monotonic_time ();
  gint64 reuse_us = MIN (SRV_API_STS_REUSE_MAX_US, lifetime_s * G_USEC_PER_SEC / 4);
  g_autofree char *policy = NULL;
  g_autofree char *session_name = NULL;
  SrvStsCredentials *creds = NULL;
  CachedSts *entry;

  g_mutex_lock (&api->cache_lock);
  entry = g_hash_table_lookup (api->sts_cache, identity_id);
  if (entry != NULL && entry->lifetime_s == lifetime_s && now - entry->issued_us <= reuse_us)
    creds = srv_sts_credentials_copy (entry->creds);
  g_mutex_unlock (&api->cache_lock);
  if (creds != NULL)
    {
      srv_metrics_add (ctx->metrics, "magpied_sts_requests_total", "result=\"cached\"", 1);
      return creds;
    }

  policy = srv_sts_session_policy (api->sts_partition, ctx->config->bucket, prefix);
  session_name = srv_sts_session_name (identity_id);
  creds = srv_sts_assume_role (api->sts, ctx->config->sts_role_arn, session_name, policy,
                               lifetime_s, error);
  if (creds == NULL)
    {
      srv_metrics_add (ctx->metrics, "magpied_sts_requests_total", "result=\"error\"", 1);
      return NULL;
    }
  srv_metrics_add (ctx->metrics, "magpied_sts_requests_total", "result=\"ok\"", 1);

  entry = g_new0 (CachedSts, 1);
  entry->creds = srv_sts_credentials_copy (creds);
  entry->lifetime_s = lifetime_s;
  entry->issued_us = now;
  g_mutex_lock (&api->cache_lock);
  if (g_hash_table_size (api->sts_cache) >= SRV_API_CACHE_MAX)
    g_hash_table_remove_all (api->sts_cache);
  g_hash_table_replace (api->sts_cache, g_strdup (identity_id), entry);
  g_mutex_unlock (&api->cache_lock);
  return creds;
}

/* Checks @secret against @identity and mints. Returns the reply body, or NULL with @error.
 * With a remote store this blocks on its STS. */
static JsonNode *
issue_credentials (SrvApi               *api,
                   const char           *identity_id,
                   const char           *secret,
                   gint64                lifetime_s,
                   const CachedIdentity *identity,
                   GError              **error)
{
  SrvContext *ctx = api->ctx;
  const SrvConfig *config = ctx->config;
  g_autoptr(SrvCredentials) creds = NULL;
  g_autoptr(SrvStsCredentials) remote = NULL;
  g_autoptr(JsonBuilder) b = NULL;
  g_autofree char *expiration = NULL;

  if (identity == NULL || !check_secret_raw (identity->hash, secret))
    {
      srv_metrics_add (ctx->metrics, "magpied_auth_failures_total", "endpoint=\"credentials\"", 1);
      g_set_error_literal (error, SRV_API_ERROR, SRV_API_ERROR_NOT_AUTHORIZED,
                           "identity_id and secret do not match");
      return NULL;
    }
  if (identity->disabled)
    {
      g_set_error_literal (error, SRV_API_ERROR, SRV_API_ERROR_DISABLED,
                           "this identity is disabled");
      return NULL;
    }
  /* Our own token is always minted: it is the bearer for the REST API, and with the embedded
   * store it is the S3 session token as well. */
  creds = srv_credentials_mint (ctx->keyring, identity_id, identity->kind,
                                g_get_real_time () / G_USEC_PER_SEC, lifetime_s, error);
  if (creds == NULL)
    return NULL;
  if (api->sts != NULL)
    {
      /* A cached answer is older than our fresh token, so the token outlives the S3 keys
       * and a client that renews by "expiration" never holds a dead bearer. */
      remote = remote_credentials (api, identity_id, creds->prefix, lifetime_s, error);
      if (remote == NULL)
        return NULL;
    }

  expiration = srv_api_format_time (remote ? remote->expiration : creds->expires_at);
  b = json_builder_new ();
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "access_key_id");
  json_builder_add_string_value (b, remote ? remote->access_key_id : creds->access_key_id);
  json_builder_set_member_name (b, "secret_access_key");
  json_builder_add_string_value (b, remote ? remote->secret_access_key
                                           : creds->secret_access_key);
  json_builder_set_member_name (b, "session_token");
  json_builder_add_string_value (b, remote ? remote->session_token : creds->session_token);
  json_builder_set_member_name (b, "expiration");
  json_builder_add_string_value (b, expiration);
  json_builder_set_member_name (b, "api_token");
  json_builder_add_string_value (b, creds->session_token);
  json_builder_set_member_name (b, "endpoint");
  if (remote)
    json_builder_add_string_value (b, config->s3_public_endpoint ? config->s3_public_endpoint
                                                                 : config->s3_endpoint);
  else
    json_builder_add_string_value (b, ctx->url);
  json_builder_set_member_name (b, "region");
  json_builder_add_string_value (b, remote && config->s3_region ? config->s3_region
                                                                 : config->region);
  json_builder_set_member_name (b, "bucket");
  json_builder_add_string_value (b, ctx->config->bucket);
  json_builder_set_member_name (b, "prefix");
  json_builder_add_string_value (b, creds->prefix);
  json_builder_set_member_name (b, "identity_id");
  json_builder_add_string_value (b, identity_id);
  json_builder_end_object (b);
  return json_builder_get_root (b);
}

/* The cache missed: read the identity, remember it, then answer as the fast path does. */
static void
credentials_func (SrvHttpReply *reply,
                  gpointer      user_data)
{
  CredentialsRequest *req = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(SrvIdentity) identity = NULL;
  g_autoptr(JsonNode) body = NULL;
  CachedIdentity cached = { 0 };
  gboolean known = FALSE;

  /* With a remote store every call comes here, cached identity or not. */
  if (cache_lookup (req->api, req->identity_id, &cached))
    {
      body = issue_credentials (req->api, req->identity_id, req->secret, req->lifetime_s,
                                &cached, &error);
      if (body == NULL)
        reply_set_gerror (reply, error);
      else
        srv_http_reply_set_json (reply, SOUP_STATUS_OK, body);
      return;
    }

  identity = srv_db_get_identity (req->api->ctx->db, req->identity_id, &error);
  if (identity == NULL && !g_error_matches (error, SRV_DB_ERROR, SRV_DB_ERROR_NOT_FOUND))
    {
      reply_set_gerror (reply, error);
      return;
    }
  g_clear_error (&error);
  if (identity != NULL)
    {
      cache_store (req->api, identity);
      known = parse_secret_hash (identity->secret_hash, cached.hash);
      cached.kind = identity->kind;
      cached.disabled = identity->disabled;
    }
  body = issue_credentials (req->api, req->identity_id, req->secret, req->lifetime_s,
                            known ? &cached : NULL, &error);
  if (body == NULL)
    reply_set_gerror (reply, error);
  else
    srv_http_reply_set_json (reply, SOUP_STATUS_OK, body);
}

static void
handle_credentials (SrvApi            *api,
                    SoupServerMessage *msg)
{
  g_autoptr(JsonObject) o = srv_http_read_json (msg);
  g_autoptr(JsonNode) body = NULL;
  g_autoptr(GError) error = NULL;
  const char *identity_id;
  const char *secret;
  gint64 lifetime_s = SRV_TOKEN_DEFAULT_LIFETIME_S;
  CachedIdentity cached;
  CredentialsRequest *req;

  if (o == NULL ||
      !get_string (msg, o, "identity_id", TRUE, &identity_id) ||
      !get_string (msg, o, "secret", TRUE, &secret) ||
      !get_int (msg, o, "duration_seconds", &lifetime_s))
    return;
  if (!srv_identity_id_is_valid (identity_id))
    {
      srv_reply_error (msg, SOUP_STATUS_BAD_REQUEST, "bad_request",
                       "\"identity_id\" is not an identity id (from POST /v1/identities)");
      return;
    }
  if (lifetime_s < SRV_TOKEN_MIN_LIFETIME_S || lifetime_s > SRV_TOKEN_MAX_LIFETIME_S)
    {
      srv_reply_error (msg, SOUP_STATUS_BAD_REQUEST, "bad_request",
                       "\"duration_seconds\" must be between %d and %d, not %" G_GINT64_FORMAT,
                       SRV_TOKEN_MIN_LIFETIME_S, SRV_TOKEN_MAX_LIFETIME_S, lifetime_s);
      return;
    }

  /* The fast path never blocks; asking a remote STS does. */
  if (api->sts == NULL && cache_lookup (api, identity_id, &cached))
    {
      body = issue_credentials (api, identity_id, secret, lifetime_s, &cached, &error);
      if (body == NULL)
        reply_gerror (msg, error);
      else
        srv_reply_json (msg, SOUP_STATUS_OK, body);
      return;
    }

  req = g_new0 (CredentialsRequest, 1);
  req->api = api;
  req->identity_id = g_strdup (identity_id);
  req->secret = g_strdup (secret);
  req->lifetime_s = lifetime_s;
  srv_http_offload (api->ctx, msg, credentials_func, req, credentials_request_free);
}

/* Accounts and sessions */

/* An account's secret is derived from its name with the server's account key, so signing in
 * again hands back the same secret without the catalog ever holding it. */
static char *
account_secret (SrvApi     *api,
                const char *username)
{
  g_autofree char *lower = g_ascii_strdown (username, -1);
  g_autofree char *message = g_strconcat ("magpie-account-secret:", lower, NULL);
  guint8 mac[crypto_auth_hmacsha256_BYTES];
  char out[sodium_base64_ENCODED_LEN (crypto_auth_hmacsha256_BYTES,
                                      sodium_base64_VARIANT_URLSAFE_NO_PADDING)];

  crypto_auth_hmacsha256 (mac, (const guint8 *) message, strlen (message), api->account_key);
  sodium_bin2base64 (out, sizeof out, mac, sizeof mac, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  return g_strdup (out);
}

typedef struct {
  SrvApi *api;
  char   *username;
  char   *password;
} LoginRequest;

static void
login_request_free (gpointer data)
{
  LoginRequest *req = data;

  g_free (req->username);
  sodium_memzero (req->password, strlen (req->password));
  g_free (req->password);
  g_free (req);
}

static void
create_account_func (SrvHttpReply *reply,
                     gpointer      user_data)
{
  LoginRequest *req = user_data;
  g_autoptr(GError) error = NULL;
  g_autofree char *password_hash = NULL;
  g_autofree char *secret = NULL;
  g_autofree char *secret_hash = NULL;
  g_autoptr(SrvIdentity) identity = NULL;
  g_autoptr(JsonNode) body = NULL;

  password_hash = srv_password_hash (req->password, &error);
  if (password_hash == NULL)
    {
      reply_set_gerror (reply, error);
      return;
    }
  secret = account_secret (req->api, req->username);
  secret_hash = srv_api_hash_secret (secret);
  identity = srv_db_create_identity (req->api->ctx->db, SRV_IDENTITY_ACCOUNT, req->username,
                                     password_hash, secret_hash, &error);
  if (identity == NULL)
    {
      if (g_error_matches (error, SRV_DB_ERROR, SRV_DB_ERROR_CONFLICT))
        srv_http_reply_set_error (reply, SOUP_STATUS_CONFLICT, "username_taken",
                                  "the username %s is taken", req->username);
      else
        reply_set_gerror (reply, error);
      return;
    }
  cache_store (req->api, identity);
  body = identity_json (identity->id, secret);
  srv_http_reply_set_json (reply, SOUP_STATUS_CREATED, body);
}

/* Unknown user and wrong password take the same argon2 work and give the same answer. */
static void
create_session_func (SrvHttpReply *reply,
                     gpointer      user_data)
{
  LoginRequest *req = user_data;
  SrvApi *api = req->api;
  g_autoptr(GError) error = NULL;
  g_autoptr(SrvIdentity) identity = NULL;
  g_autofree char *secret = NULL;
  g_autoptr(JsonNode) body = NULL;
  gboolean ok;

  identity = srv_db_get_identity_by_username (api->ctx->db, req->username, &error);
  if (identity == NULL && !g_error_matches (error, SRV_DB_ERROR, SRV_DB_ERROR_NOT_FOUND))
    {
      reply_set_gerror (reply, error);
      return;
    }
  ok = srv_password_verify (identity ? identity->password_hash : NULL, req->password);
  if (!ok || identity == NULL)
    {
      srv_metrics_add (api->ctx->metrics, "magpied_auth_failures_total",
                       "endpoint=\"sessions\"", 1);
      srv_http_reply_set_error (reply, SOUP_STATUS_UNAUTHORIZED, "not_authorized",
                                "username or password is wrong");
      return;
    }
  if (identity->disabled)
    {
      srv_http_reply_set_error (reply, SOUP_STATUS_FORBIDDEN, "identity_disabled",
                                "this account is disabled");
      return;
    }
  secret = account_secret (api, identity->username);
  body = identity_json (identity->id, secret);
  srv_http_reply_set_json (reply, SOUP_STATUS_OK, body);
}

/* POST /v1/accounts and POST /v1/sessions: same body, same limits. */
static void
handle_login (SrvApi            *api,
              SoupServerMessage *msg,
              gboolean           create)
{
  g_autoptr(JsonObject) o = srv_http_read_json (msg);
  g_autoptr(GError) error = NULL;
  g_autofree char *account_key = NULL;
  const char *username;
  const char *password;
  LoginRequest *req;

  if (o == NULL ||
      !get_string (msg, o, "username", TRUE, &username) ||
      !get_string (msg, o, "password", TRUE, &password))
    return;
  if (create && (!srv_username_check (username, &error) || !srv_password_check (password, &error)))
    {
      srv_reply_error (msg, SOUP_STATUS_BAD_REQUEST, "bad_request", "%s", error->message);
      return;
    }
  if (strlen (username) > SRV_USERNAME_MAX_LEN || strlen (password) > SRV_PASSWORD_MAX_LEN)
    {
      srv_reply_error (msg, SOUP_STATUS_BAD_REQUEST, "bad_request",
                       "username or password is too long");
      return;
    }
  if (!rate_limit (api, api->by_address, msg, client_address (msg)))
    return;
  account_key = g_ascii_strdown (username, -1);
  if (!create && !rate_limit (api, api->by_account, msg, account_key))
    return;

  req = g_new0 (LoginRequest, 1);
  req->api = api;
  req->username = g_strdup (username);
  req->password = g_strdup (password);
  srv_http_offload (api->ctx, msg, create ? create_account_func : create_session_func,
                    req, login_request_free);
}

/* Photos */

typedef struct {
  SrvApi         *api;
  SrvCredentials *creds;
  char           *photo_id;    /* GET and DELETE /v1/photos/{id} */
  char           *key;         /* POST /v1/photos */
  char           *tag;         /* GET /v1/photos */
  char           *cursor;
  double          min_confidence;
  guint           limit;
} PhotoRequest;

static void
photo_request_free (gpointer data)
{
  PhotoRequest *req = data;

  srv_credentials_free (req->creds);
  g_free (req->photo_id);
  g_free (req->key);
  g_free (req->tag);
  g_free (req->cursor);
  g_free (req);
}

static PhotoRequest *
photo_request_new (SrvApi         *api,
                   SrvCredentials *creds)
{
  PhotoRequest *req = g_new0 (PhotoRequest, 1);

  req->api = api;
  req->creds = creds;
  return req;
}

/* Thread: the photo stored under @key, registered for @identity_id (idempotent by key) with
 * the size, type and SHA-256 the store holds. SRV_STORE_ERROR_NO_SUCH_KEY when there is no such
 * object; the catalog's errors otherwise. */
static SrvPhoto *
register_key (SrvContext  *ctx,
              const char  *identity_id,
              const char  *key,
              gboolean    *created,
              GError     **error)
{
  g_autoptr(SrvObjectInfo) info = NULL;

  info = srv_store_head (ctx->store, ctx->config->bucket, key, error);
  if (info != NULL && info->sha256 == NULL)
    {
      /* A remote store that holds no SHA-256 checksum for the object: read it through once.
       * Size and type come from the same read, so they describe the bytes hashed. */
      g_autoptr(SrvObjectInfo) read_info = NULL;
      char *sha256 = srv_store_hash_object (ctx->store, ctx->config->bucket, key,
                                            &read_info, NULL, error);

      g_clear_pointer (&info, srv_object_info_free);
      if (sha256 != NULL)
        {
          info = g_steal_pointer (&read_info);
          g_free (info->sha256);
          info->sha256 = sha256;
        }
    }
  if (info == NULL)
    return NULL;
  return srv_db_register_photo (ctx->db, identity_id, key, info->size,
                                info->content_type ? info->content_type
                                                   : "application/octet-stream",
                                info->sha256, 0, 0, created, error);
}

static void
register_photo_func (SrvHttpReply *reply,
                     gpointer      user_data)
{
  PhotoRequest *req = user_data;
  SrvContext *ctx = req->api->ctx;
  g_autoptr(GError) error = NULL;
  g_autoptr(SrvPhoto) photo = NULL;
  g_autoptr(JsonNode) body = NULL;
  gboolean created = FALSE;

  photo = register_key (ctx, req->creds->identity_id, req->key, &created, &error);
  if (photo == NULL)
    {
      if (g_error_matches (error, SRV_STORE_ERROR, SRV_STORE_ERROR_NO_SUCH_KEY))
        srv_http_reply_set_error (reply, SOUP_STATUS_NOT_FOUND, "no_such_object",
                                  "there is no object %s in bucket %s; upload it first",
                                  req->key, ctx->config->bucket);
      else
        reply_set_gerror (reply, error);
      return;
    }
  body = srv_photo_to_json_node (photo);
  srv_http_reply_set_json (reply, created ? SOUP_STATUS_CREATED : SOUP_STATUS_OK, body);
}

static void
list_photos_func (SrvHttpReply *reply,
                  gpointer      user_data)
{
  PhotoRequest *req = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) photos = NULL;
  g_autofree char *next_cursor = NULL;
  g_autoptr(JsonBuilder) b = json_builder_new ();
  g_autoptr(JsonNode) body = NULL;
  SrvPhotoQuery query = {
    .tag = req->tag, .min_confidence = req->min_confidence, .limit = req->limit,
    .cursor = req->cursor, .key = req->key,
  };

  photos = srv_db_list_photos (req->api->ctx->db, req->creds->identity_id, &query,
                               &next_cursor, &error);
  if (photos == NULL)
    {
      reply_set_gerror (reply, error);
      return;
    }
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "photos");
  json_builder_begin_array (b);
  for (guint i = 0; i < photos->len; i++)
    json_builder_add_value (b, srv_photo_to_json_node (photos->pdata[i]));
  json_builder_end_array (b);
  json_builder_set_member_name (b, "next_cursor");
  if (next_cursor)
    json_builder_add_string_value (b, next_cursor);
  else
    json_builder_add_null_value (b);
  json_builder_end_object (b);
  body = json_builder_get_root (b);
  srv_http_reply_set_json (reply, SOUP_STATUS_OK, body);
}

static void
get_photo_func (SrvHttpReply *reply,
                gpointer      user_data)
{
  PhotoRequest *req = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(SrvPhoto) photo = NULL;
  g_autoptr(JsonNode) body = NULL;

  photo = srv_db_get_photo (req->api->ctx->db, req->creds->identity_id, req->photo_id, &error);
  if (photo == NULL)
    {
      reply_set_gerror (reply, error);
      return;
    }
  body = srv_photo_to_json_node (photo);
  srv_http_reply_set_json (reply, SOUP_STATUS_OK, body);
}

/* The catalog row goes first: once it is gone no client sees the photo, and an object left
 * behind by a failing store is an orphan fsck can find, never a photo without bytes. */
static void
delete_photo_func (SrvHttpReply *reply,
                   gpointer      user_data)
{
  PhotoRequest *req = user_data;
  SrvContext *ctx = req->api->ctx;
  g_autoptr(GError) error = NULL;
  g_autofree char *key = NULL;

  key = srv_db_delete_photo (ctx->db, req->creds->identity_id, req->photo_id, &error);
  if (key == NULL)
    {
      reply_set_gerror (reply, error);
      return;
    }
  if (!srv_store_delete (ctx->store, ctx->config->bucket, key, &error))
    g_log_structured (G_LOG_DOMAIN, G_LOG_LEVEL_WARNING,
                      "KEY", key, "ERROR", error->message,
                      "MESSAGE", "photo deleted but its object stays");
  srv_http_reply_set_status (reply, SOUP_STATUS_NO_CONTENT);
}

/* Query parameters of GET /v1/photos; replies 400 and returns FALSE on a bad one. */
static gboolean
parse_list_query (SoupServerMessage *msg,
                  GHashTable        *query,
                  PhotoRequest      *req)
{
  const char *tag = query ? g_hash_table_lookup (query, "tag") : NULL;
  const char *min = query ? g_hash_table_lookup (query, "min_confidence") : NULL;
  const char *limit = query ? g_hash_table_lookup (query, "limit") : NULL;
  const char *cursor = query ? g_hash_table_lookup (query, "cursor") : NULL;
  const char *key = query ? g_hash_table_lookup (query, "key") : NULL;

  req->limit = SRV_API_LIST_DEFAULT;
  if (tag != NULL && *tag != '\0')
    {
      if (strlen (tag) > SRV_API_TAG_MAX || !g_utf8_validate (tag, -1, NULL))
        {
          srv_reply_error (msg, SOUP_STATUS_BAD_REQUEST, "bad_request",
                           "tag must be UTF-8 of at most %d bytes", SRV_API_TAG_MAX);
          return FALSE;
        }
      req->tag = g_strdup (tag);
    }
  if (min != NULL && *min != '\0')
    {
      char *end = NULL;
      double v = g_ascii_strtod (min, &end);

      if (end == min || *end != '\0' || !(v >= 0.0 && v <= 1.0))
        {
          srv_reply_error (msg, SOUP_STATUS_BAD_REQUEST, "bad_request",
                           "min_confidence must be a number from 0 to 1, not \"%s\"", min);
          return FALSE;
        }
      req->min_confidence = v;
    }
  if (limit != NULL && *limit != '\0')
    {
      guint64 v = 0;

      if (!g_ascii_string_to_unsigned (limit, 10, 1, SRV_DB_LIST_LIMIT_MAX, &v, NULL))
        {
          srv_reply_error (msg, SOUP_STATUS_BAD_REQUEST, "bad_request",
                           "limit must be an integer from 1 to %d", SRV_DB_LIST_LIMIT_MAX);
          return FALSE;
        }
      req->limit = (guint) v;
    }
  if (cursor != NULL && *cursor != '\0')
    req->cursor = g_strdup (cursor);
  if (key != NULL && *key != '\0')
    {
      g_autoptr(GError) error = NULL;

      if (!srv_store_check_key (key, strlen (key), &error))
        {
          srv_reply_error (msg, SOUP_STATUS_BAD_REQUEST, "bad_request", "key: %s",
                           error->message);
          return FALSE;
        }
      req->key = g_strdup (key);
    }
  return TRUE;
}

static void
handle_photos (SrvApi            *api,
               SoupServerMessage *msg,
               GHashTable        *query)
{
  SrvCredentials *creds = srv_http_authenticate (api->ctx, msg, query, FALSE);
  PhotoRequest *req;

  if (creds == NULL)
    return;
  req = photo_request_new (api, creds);

  if (soup_server_message_get_method (msg) == SOUP_METHOD_POST)
    {
      g_autoptr(JsonObject) o = srv_http_read_json (msg);
      g_autoptr(GError) error = NULL;
      const char *key;

      if (o == NULL || !get_string (msg, o, "key", TRUE, &key))
        goto out;
      if (!srv_store_check_key (key, strlen (key), &error))
        {
          srv_reply_error (msg, SOUP_STATUS_BAD_REQUEST, "bad_request", "key: %s", error->message);
          goto out;
        }
      if (!g_str_has_prefix (key, creds->prefix) || strlen (key) == strlen (creds->prefix))
        {
          srv_reply_error (msg, SOUP_STATUS_FORBIDDEN, "forbidden",
                           "key must name an object under your prefix %s", creds->prefix);
          goto out;
        }
      req->key = g_strdup (key);
      srv_http_offload (api->ctx, msg, register_photo_func, g_steal_pointer (&req),
                        photo_request_free);
    }
  else
    {
      if (!parse_list_query (msg, query, req))
        goto out;
      srv_http_offload (api->ctx, msg, list_photos_func, g_steal_pointer (&req),
                        photo_request_free);
    }

out:
  g_clear_pointer (&req, photo_request_free);
}

static void
handle_photo (SrvApi            *api,
              SoupServerMessage *msg,
              GHashTable        *query,
              const char        *photo_id)
{
  SrvCredentials *creds = srv_http_authenticate (api->ctx, msg, query, FALSE);
  PhotoRequest *req;

  if (creds == NULL)
    return;
  req = photo_request_new (api, creds);
  req->photo_id = g_strdup (photo_id);
  srv_http_offload (api->ctx, msg,
                    soup_server_message_get_method (msg) == SOUP_METHOD_DELETE
                      ? delete_photo_func : get_photo_func,
                    req, photo_request_free);
}

/* Dispatch */

/* POST /v1/s3-events ------------------------------------------------------------------------
 *
 * S3 event notifications (the "Records" format AWS S3, MinIO and Ceph RGW send to a webhook)
 * as an alternative to the client's POST /v1/photos: ObjectCreated:* registers the object for
 * the identity whose prefix it is under (users/<id>/...), ObjectRemoved:* removes the photo
 * registered under that key. Both are idempotent, so a sender that retries after a 503 changes
 * nothing twice. The sender proves itself with a shared secret as its bearer token. Records
 * that can never be registered (another bucket, a key outside users/<id>/, an unknown identity,
 * an object that is not there) are answered as skipped, with the reason, and not retried. */

#define SRV_API_S3_EVENTS_MAX 100

typedef enum {
  S3_EVENT_CREATED,
  S3_EVENT_REMOVED,
} S3EventKind;

typedef struct {
  S3EventKind  kind;
  char        *key;
  char        *identity_id;
} S3EventRecord;

typedef struct {
  SrvApi    *api;
  GArray    *records;   /* S3EventRecord */
  JsonArray *skipped;   /* {"key", "reason"}, found while parsing */
} S3EventsRequest;

static void
s3_event_record_clear (gpointer data)
{
  S3EventRecord *r = data;

  g_free (r->key);
  g_free (r->identity_id);
}

static void
s3_events_request_free (gpointer data)
{
  S3EventsRequest *req = data;

  g_array_unref (req->records);
  json_array_unref (req->skipped);
  g_free (req);
}

static void
skip_record (JsonArray  *skipped,
             const char *key,
             const char *reason)
{
  JsonObject *o = json_object_new ();

  json_object_set_string_member (o, "key", key != NULL ? key : "");
  json_object_set_string_member (o, "reason", reason);
  json_array_add_object_element (skipped, o);
}

/* Object keys in S3 notifications are URL-encoded the form way: '+' is a space. */
static char *
event_key_decode (const char *encoded)
{
  g_autofree char *plus = g_strdup (encoded);

  g_strdelimit (plus, "+", ' ');
  return g_uri_unescape_string (plus, NULL);
}

static const char *
member_string (JsonObject *o,
               const char *path0,
               const char *path1,
               const char *name)
{
  JsonNode *node;

  if (o != NULL && path0 != NULL)
    o = json_object_has_member (o, path0) &&
        JSON_NODE_HOLDS_OBJECT (json_object_get_member (o, path0))
        ? json_object_get_object_member (o, path0) : NULL;
  if (o != NULL && path1 != NULL)
    o = json_object_has_member (o, path1) &&
        JSON_NODE_HOLDS_OBJECT (json_object_get_member (o, path1))
        ? json_object_get_object_member (o, path1) : NULL;
  if (o == NULL || !json_object_has_member (o, name))
    return NULL;
  node = json_object_get_member (o, name);
  return JSON_NODE_HOLDS_VALUE (node) && json_node_get_value_type (node) == G_TYPE_STRING
         ? json_node_get_string (node) : NULL;
}

static void
count_event (SrvContext *ctx,
             const char *result,
             guint       n)
{
  g_autofree char *labels = g_strdup_printf ("result=\"%s\"", result);

  if (n > 0)
    srv_metrics_add (ctx->metrics, "magpied_s3_events_total", labels, n);
}

static void
s3_events_func (SrvHttpReply *reply,
                gpointer      user_data)
{
  S3EventsRequest *req = user_data;
  SrvContext *ctx = req->api->ctx;
  g_autoptr(JsonBuilder) builder = json_builder_new ();
  g_autoptr(JsonNode) body = NULL;
  guint registered = 0, already = 0, deleted = 0;

  for (guint i = 0; i < req->records->len; i++)
    {
      S3EventRecord *r = &g_array_index (req->records, S3EventRecord, i);
      g_autoptr(GError) error = NULL;

      if (r->kind == S3_EVENT_CREATED)
        {
          g_autoptr(SrvPhoto) photo = NULL;
          g_autoptr(SrvIdentity) identity = NULL;
          gboolean created = FALSE;

          /* Whose it is first: an object under no identity's prefix has no owner to tag for. */
          identity = srv_db_get_identity (ctx->db, r->identity_id, &error);
          if (identity == NULL)
            {
              if (!g_error_matches (error, SRV_DB_ERROR, SRV_DB_ERROR_NOT_FOUND))
                goto transient;
              skip_record (req->skipped, r->key, "no such identity");
              continue;
            }
          photo = register_key (ctx, r->identity_id, r->key, &created, &error);
          if (photo != NULL)
            {
              registered += created;
              already += !created;
              continue;
            }
          if (g_error_matches (error, SRV_STORE_ERROR, SRV_STORE_ERROR_NO_SUCH_KEY))
            skip_record (req->skipped, r->key, "no such object (removed since?)");
          else if (g_error_matches (error, SRV_DB_ERROR, SRV_DB_ERROR_NOT_FOUND))
            skip_record (req->skipped, r->key, "no such identity");
          else if (g_error_matches (error, SRV_DB_ERROR, SRV_DB_ERROR_CONFLICT))
            skip_record (req->skipped, r->key, "the key is another identity's photo");
          else
            goto transient;
        }
      else
        {
          SrvPhotoQuery query = { .limit = 1, .key = r->key };
          g_autoptr(GPtrArray) found = NULL;
          g_autofree char *removed_key = NULL;
          g_autofree char *cursor = NULL;

          found = srv_db_list_photos (ctx->db, r->identity_id, &query, &cursor, &error);
          if (found == NULL)
            goto transient;
          if (found->len == 0)
            {
              skip_record (req->skipped, r->key, "not registered");
              continue;
            }
          removed_key = srv_db_delete_photo (ctx->db, r->identity_id,
                                             ((SrvPhoto *) found->pdata[0])->id, &error);
          if (removed_key != NULL)
            deleted++;
          else if (g_error_matches (error, SRV_DB_ERROR, SRV_DB_ERROR_NOT_FOUND))
            skip_record (req->skipped, r->key, "not registered");
          else
            goto transient;
        }
      continue;

    transient:
      /* The catalog or the store failed for now: the sender retries the whole batch, which
       * repeats nothing already done. */
      g_log_structured (G_LOG_DOMAIN, G_LOG_LEVEL_WARNING, "KEY", r->key,
                        "ERROR", error->message, "MESSAGE", "S3 event not applied; sender told "
                        "to retry");
      count_event (ctx, "retry", 1);
      srv_http_reply_set_error (reply, SOUP_STATUS_SERVICE_UNAVAILABLE, "unavailable",
                                "cannot apply the event for %s now: %s; send it again",
                                r->key, error->message);
      return;
    }

  count_event (ctx, "registered", registered);
  count_event (ctx, "already", already);
  count_event (ctx, "deleted", deleted);
  count_event (ctx, "skipped", json_array_get_length (req->skipped));
  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "records");
  json_builder_add_int_value (builder, req->records->len + json_array_get_length (req->skipped));
  json_builder_set_member_name (builder, "registered");
  json_builder_add_int_value (builder, registered);
  json_builder_set_member_name (builder, "already_registered");
  json_builder_add_int_value (builder, already);
  json_builder_set_member_name (builder, "deleted");
  json_builder_add_int_value (builder, deleted);
  json_builder_set_member_name (builder, "skipped");
  json_builder_add_value (builder, json_node_init_array (json_node_alloc (),
                                                         req->skipped));
  json_builder_end_object (builder);
  body = json_builder_get_root (builder);
  srv_http_reply_set_json (reply, SOUP_STATUS_OK, body);
}

/* Constant time, whatever the lengths: compares the SHA-256 of both. */
static gboolean
bearer_matches (SoupServerMessage *msg,
                const char        *secret)
{
  const char *auth = soup_message_headers_get_one (soup_server_message_get_request_headers (msg),
                                                   "Authorization");
  guint8 want[crypto_hash_sha256_BYTES];
  guint8 got[crypto_hash_sha256_BYTES];

  if (auth == NULL || g_ascii_strncasecmp (auth, "Bearer ", 7) != 0)
    return FALSE;
  crypto_hash_sha256 (want, (const guint8 *) secret, strlen (secret));
  crypto_hash_sha256 (got, (const guint8 *) auth + 7, strlen (auth + 7));
  return sodium_memcmp (want, got, sizeof want) == 0;
}

static void
handle_s3_events (SrvApi            *api,
                  SoupServerMessage *msg)
{
  const SrvConfig *config = api->ctx->config;
  g_autoptr(JsonObject) o = NULL;
  JsonArray *records;
  S3EventsRequest *req;

  if (config->s3_events_secret == NULL)
    {
      srv_reply_error (msg, SOUP_STATUS_NOT_FOUND, "not_found",
                       "S3 event notifications are off on this server (--s3-events-secret)");
      return;
    }
  if (!bearer_matches (msg, config->s3_events_secret))
    {
      srv_metrics_add (api->ctx->metrics, "magpied_auth_failures_total",
                       "endpoint=\"s3-events\"", 1);
      soup_message_headers_replace (soup_server_message_get_response_headers (msg),
                                    "WWW-Authenticate", "Bearer realm=\"magpied\"");
      srv_reply_error (msg, SOUP_STATUS_UNAUTHORIZED, "unauthorized",
                       "POST /v1/s3-events needs the shared secret as its bearer token");
      return;
    }
  o = srv_http_read_json (msg);
  if (o == NULL)
    return;
  if (!json_object_has_member (o, "Records"))
    {
      /* The test event S3 sends when notifications are configured carries no records. */
      if (g_strcmp0 (member_string (o, NULL, NULL, "Event"), "s3:TestEvent") == 0)
        {
          g_autoptr(JsonNode) empty = json_from_string ("{\"records\": 0, \"registered\": 0, "
                                                        "\"already_registered\": 0, "
                                                        "\"deleted\": 0, \"skipped\": []}",
                                                        NULL);

          srv_reply_json (msg, SOUP_STATUS_OK, empty);
          return;
        }
      srv_reply_error (msg, SOUP_STATUS_BAD_REQUEST, "bad_request",
                       "expected an S3 event notification: {\"Records\": [...]}");
      return;
    }
  if (!JSON_NODE_HOLDS_ARRAY (json_object_get_member (o, "Records")))
    {
      srv_reply_error (msg, SOUP_STATUS_BAD_REQUEST, "bad_request", "Records must be an array");
      return;
    }
  records = json_object_get_array_member (o, "Records");
  if (json_array_get_length (records) > SRV_API_S3_EVENTS_MAX)
    {
      srv_reply_error (msg, SOUP_STATUS_REQUEST_ENTITY_TOO_LARGE, "too_large",
                       "%u records in one request; at most %d", json_array_get_length (records),
                       SRV_API_S3_EVENTS_MAX);
      return;
    }

  req = g_new0 (S3EventsRequest, 1);
  req->api = api;
  req->records = g_array_new (FALSE, TRUE, sizeof (S3EventRecord));
  g_array_set_clear_func (req->records, s3_event_record_clear);
  req->skipped = json_array_new ();
  for (guint i = 0; i < json_array_get_length (records); i++)
    {
      JsonNode *node = json_array_get_element (records, i);
      JsonObject *rec = JSON_NODE_HOLDS_OBJECT (node) ? json_node_get_object (node) : NULL;
      const char *name = member_string (rec, NULL, NULL, "eventName");
      const char *bucket = member_string (rec, "s3", "bucket", "name");
      const char *encoded = member_string (rec, "s3", "object", "key");
      g_autofree char *key = encoded != NULL ? event_key_decode (encoded) : NULL;
      g_autoptr(GError) error = NULL;
      S3EventRecord r = { 0 };
      const char *id, *slash;

      if (name == NULL || bucket == NULL || encoded == NULL)
        {
          skip_record (req->skipped, key, "not an S3 event record (eventName, s3.bucket.name, "
                                          "s3.object.key)");
          continue;
        }
      if (key == NULL || !srv_store_check_key (key, strlen (key), &error))
        {
          skip_record (req->skipped, encoded, "the key is not a valid object key");
          continue;
        }
      if (g_str_has_prefix (name, "ObjectCreated:"))
        r.kind = S3_EVENT_CREATED;
      else if (g_str_has_prefix (name, "ObjectRemoved:"))
        r.kind = S3_EVENT_REMOVED;
      else
        {
          skip_record (req->skipped, key, "an event Magpie does not act on");
          continue;
        }
      if (strcmp (bucket, config->bucket) != 0)
        {
          skip_record (req->skipped, key, "another bucket");
          continue;
        }
      id = g_str_has_prefix (key, "users/") ? key + strlen ("users/") : NULL;
      slash = id != NULL ? strchr (id, '/') : NULL;
      if (slash == NULL || slash == id || slash[1] == '\0')
        {
          skip_record (req->skipped, key, "not under users/<identity>/");
          continue;
        }
      r.key = g_steal_pointer (&key);
      r.identity_id = g_strndup (id, slash - id);
      g_array_append_val (req->records, r);
    }
  srv_http_offload (api->ctx, msg, s3_events_func, req, s3_events_request_free);
}

static void
v1_cb (SoupServer        *soup,
       SoupServerMessage *msg,
       const char        *path,
       GHashTable        *query,
       gpointer           user_data)
{
  SrvApi *api = user_data;
  SrvRoute route;

  if (!srv_route_match (path, &route))
    {
      srv_reply_error (msg, SOUP_STATUS_NOT_FOUND, "not_found", "no such endpoint: %s", path);
      return;
    }
  if (!srv_route_allows (&route, soup_server_message_get_method (msg)))
    {
      soup_message_headers_replace (soup_server_message_get_response_headers (msg),
                                    "Allow", route.allow);
      srv_reply_error (msg, SOUP_STATUS_METHOD_NOT_ALLOWED, "method_not_allowed",
                       "%s does not accept %s (allowed: %s)",
                       path, soup_server_message_get_method (msg), route.allow);
      srv_route_clear (&route);
      return;
    }

  switch (route.id)
    {
    case SRV_ROUTE_IDENTITIES:
      handle_identities (api, msg);
      break;
    case SRV_ROUTE_CREDENTIALS:
      handle_credentials (api, msg);
      break;
    case SRV_ROUTE_ACCOUNTS:
      handle_login (api, msg, TRUE);
      break;
    case SRV_ROUTE_SESSIONS:
      handle_login (api, msg, FALSE);
      break;
    case SRV_ROUTE_PHOTOS:
      handle_photos (api, msg, query);
      break;
    case SRV_ROUTE_PHOTO:
      handle_photo (api, msg, query, route.param);
      break;
    case SRV_ROUTE_S3_EVENTS:
      handle_s3_events (api, msg);
      break;
    default:
      g_assert_not_reached ();
    }
  srv_route_clear (&route);
}

/* With a shared catalog every api node must derive the same account secrets: the key lives
 * in the catalog, written by the first node that starts. */
static gboolean
load_shared_account_key (SrvApi  *api,
                         SrvDb   *db,
                         GError **error)
{
  guint8 fresh[sizeof api->account_key];
  g_autofree char *proposal = NULL;
  g_autofree char *stored = NULL;
  g_autofree guchar *raw = NULL;
  gsize len = 0;

  crypto_auth_hmacsha256_keygen (fresh);
  proposal = g_base64_encode (fresh, sizeof fresh);
  sodium_memzero (fresh, sizeof fresh);
  stored = srv_db_setting_once (db, "account-key", proposal, error);
  sodium_memzero (proposal, strlen (proposal));
  if (stored == NULL)
    {
      g_prefix_error (error, "cannot read the account key from the catalog: ");
      return FALSE;
    }
  raw = g_base64_decode (stored, &len);
  sodium_memzero (stored, strlen (stored));
  if (len != sizeof api->account_key)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   "the catalog's account key is damaged (%" G_GSIZE_FORMAT " bytes, expected %"
                   G_GSIZE_FORMAT ")", len, sizeof api->account_key);
      return FALSE;
    }
  memcpy (api->account_key, raw, len);
  sodium_memzero (raw, len);
  return TRUE;
}

/* Reads the account key from the data directory, making it on first start. */
static gboolean
load_account_key (SrvApi      *api,
                  const char  *data_dir,
                  GError     **error)
{
  g_autofree char *path = g_build_filename (data_dir, SRV_API_ACCOUNT_KEY_FILE, NULL);
  g_autofree char *contents = NULL;
  gsize len = 0;

  if (g_file_get_contents (path, &contents, &len, NULL))
    {
      if (len != sizeof api->account_key)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                       "%s is damaged (%" G_GSIZE_FORMAT " bytes, expected %" G_GSIZE_FORMAT
                       "); account secrets cannot be derived without it", path, len,
                       sizeof api->account_key);
          return FALSE;
        }
      memcpy (api->account_key, contents, len);
      sodium_memzero (contents, len);
      return TRUE;
    }
  crypto_auth_hmacsha256_keygen (api->account_key);
  if (!g_file_set_contents_full (path, (const char *) api->account_key, sizeof api->account_key,
                                 G_FILE_SET_CONTENTS_CONSISTENT | G_FILE_SET_CONTENTS_DURABLE,
                                 0600, error))
    {
      g_prefix_error (error, "cannot create the account key: ");
      return FALSE;
    }
  return TRUE;
}

gboolean
srv_api_start (SrvContext  *ctx,
               GError     **error)
{
  g_autofree SrvApi *api = g_new0 (SrvApi, 1);

  g_return_val_if_fail (ctx->api == NULL, FALSE);

  if (sodium_init () < 0)
    g_error ("libsodium cannot initialise");
  if (srv_db_is_shared (ctx->db) ? !load_shared_account_key (api, ctx->db, error)
                                 : !load_account_key (api, ctx->config->data_dir, error))
    return FALSE;
  if (ctx->config->s3_endpoint != NULL)
    {
      const SrvConfig *config = ctx->config;

      if (config->sts_role_arn == NULL)
        {
          g_set_error (error, SRV_CONFIG_ERROR, SRV_CONFIG_ERROR_INVALID,
                       "with a remote store (--s3-endpoint), POST /v1/credentials hands out "
                       "that store's own credentials and needs --sts-role-arn");
          return FALSE;
        }
      api->sts = srv_sts_new (config->sts_endpoint ? config->sts_endpoint : config->s3_endpoint,
                              config->s3_region ? config->s3_region : config->region,
                              config->s3_access_key, config->s3_secret_key, error);
      if (api->sts == NULL)
        {
          g_prefix_error (error, "--sts-endpoint: ");
          return FALSE;
        }
      api->sts_partition = srv_sts_partition (config->sts_role_arn);
    }
  api->ctx = ctx;
  api->by_account = srv_ratelimit_new (SRV_API_ACCOUNT_BURST, SRV_API_ACCOUNT_PER_S,
                                       SRV_API_RATELIMIT_KEYS);
  api->by_address = srv_ratelimit_new (SRV_API_ADDRESS_BURST, SRV_API_ADDRESS_PER_S,
                                       SRV_API_RATELIMIT_KEYS);
  api->guests = srv_ratelimit_new (SRV_API_GUEST_BURST, SRV_API_GUEST_PER_S,
                                   SRV_API_RATELIMIT_KEYS);
  g_mutex_init (&api->cache_lock);
  api->cache = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  api->sts_cache = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, cached_sts_free);
  srv_metrics_declare (ctx->metrics, "magpied_auth_failures_total", SRV_METRIC_COUNTER,
                       "Rejected identity secrets and passwords, by endpoint", NULL, 0);
  srv_metrics_declare (ctx->metrics, "magpied_rate_limited_total", SRV_METRIC_COUNTER,
                       "Requests refused with 429 by the sign-in and sign-up limits", NULL, 0);
  srv_metrics_declare (ctx->metrics, "magpied_sts_requests_total", SRV_METRIC_COUNTER,
                       "Remote STS credentials handed out: ok (AssumeRole), cached, error",
                       NULL, 0);
  srv_metrics_declare (ctx->metrics, "magpied_s3_events_total", SRV_METRIC_COUNTER,
                       "S3 event notification records: registered, already, deleted, skipped, "
                       "retry", NULL, 0);
  soup_server_add_handler (ctx->soup, "/v1", v1_cb, api, NULL);
  ctx->api = g_steal_pointer (&api);
  return TRUE;
}

void
srv_api_stop (SrvContext *ctx)
{
  SrvApi *api = ctx->api;

  if (api == NULL)
    return;
  soup_server_remove_handler (ctx->soup, "/v1");
  g_hash_table_unref (api->cache);
  g_hash_table_unref (api->sts_cache);
  g_mutex_clear (&api->cache_lock);
  srv_sts_free (api->sts);
  g_free (api->sts_partition);
  srv_ratelimit_free (api->by_account);
  srv_ratelimit_free (api->by_address);
  srv_ratelimit_free (api->guests);
  sodium_memzero (api->account_key, sizeof api->account_key);
  g_free (api);
  ctx->api = NULL;
}
