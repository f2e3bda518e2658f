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
#include "srv-reply.h"
#include "srv-route.h"

/* `disabled` is the one field of an identity that changes, so a cached identity is trusted
 * for a minute: a disable takes hold within that, and a busy client costs one catalog read
 * a minute instead of one per credential call. */
#define SRV_API_CACHE_TTL_US   (60 * G_USEC_PER_SEC)
/* About 100 bytes an entry: 10 MB at most. A full cache starts over rather than keeping
 * LRU order on the hot path; refilling costs one catalog read per active identity. */
#define SRV_API_CACHE_MAX      100000

#define SRV_API_ERROR (srv_api_error_quark ())

typedef enum {
  SRV_API_ERROR_NOT_AUTHORIZED,   /* 401: the identity and secret do not match */
  SRV_API_ERROR_DISABLED,         /* 403: the identity exists but may not sign in */
} SrvApiError;

static G_DEFINE_QUARK (srv-api-error-quark, srv_api_error)

typedef struct {
  guint8           hash[crypto_hash_sha256_BYTES];
  SrvIdentityKind  kind;
  gboolean         disabled;
  gint64           expires_us;
} CachedIdentity;

struct _SrvApi {
  SrvContext *ctx;
  GMutex      cache_lock;
  GHashTable *cache;        /* identity id → CachedIdentity */
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
  JsonNode *node = json_object_get_member (o, name);

  *out = NULL;
  if (node == NULL || (!required && JSON_NODE_HOLDS_NULL (node)))
    {
      if (!required)
        return TRUE;
      srv_reply_error (msg, SOUP_STATUS_BAD_REQUEST, "bad_request", "\"%s\" is required", name);
      return FALSE;
    }
  if (!JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_STRING)
    {
      srv_reply_error (msg, SOUP_STATUS_BAD_REQUEST, "bad_request",
                       "\"%s\" must be a string", name);
      return FALSE;
    }
  *out = json_node_get_string (node);
  return TRUE;
}

/* An optional integer member; @out keeps its default when the member is absent or null. */
static gboolean
get_int (SoupServerMessage *msg,
         JsonObject        *o,
         const char        *name,
         gint64            *out)
{
  JsonNode *node = json_object_get_member (o, name);

  if (node == NULL || JSON_NODE_HOLDS_NULL (node))
    return TRUE;
  if (!JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_INT64)
    {
      srv_reply_error (msg, SOUP_STATUS_BAD_REQUEST, "bad_request",
                       "\"%s\" must be an integer", name);
      return FALSE;
    }
  *out = json_node_get_int (node);
  return TRUE;
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

/* Checks @secret against @identity and mints. Returns the reply body, or NULL with @error. */
static JsonNode *
issue_credentials (SrvApi               *api,
                   const char           *identity_id,
                   const char           *secret,
                   gint64                lifetime_s,
                   const CachedIdentity *identity,
                   GError              **error)
{
  SrvContext *ctx = api->ctx;
  g_autoptr(SrvCredentials) creds = NULL;
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
  creds = srv_credentials_mint (ctx->keyring, identity_id, identity->kind,
                                g_get_real_time () / G_USEC_PER_SEC, lifetime_s, error);
  if (creds == NULL)
    return NULL;

  expiration = srv_api_format_time (creds->expires_at);
  b = json_builder_new ();
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "access_key_id");
  json_builder_add_string_value (b, creds->access_key_id);
  json_builder_set_member_name (b, "secret_access_key");
  json_builder_add_string_value (b, creds->secret_access_key);
  json_builder_set_member_name (b, "session_token");
  json_builder_add_string_value (b, creds->session_token);
  json_builder_set_member_name (b, "expiration");
  json_builder_add_string_value (b, expiration);
  json_builder_set_member_name (b, "endpoint");
  json_builder_add_string_value (b, ctx->url);
  json_builder_set_member_name (b, "region");
  json_builder_add_string_value (b, ctx->config->region);
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

  if (cache_lookup (api, identity_id, &cached))
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

/* Dispatch */

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
    case SRV_ROUTE_SESSIONS:
    case SRV_ROUTE_PHOTOS:
    case SRV_ROUTE_PHOTO:
    default:
      g_assert_not_reached ();
    }
  srv_route_clear (&route);
}

void
srv_api_start (SrvContext *ctx)
{
  SrvApi *api = g_new0 (SrvApi, 1);

  g_return_if_fail (ctx->api == NULL);

  if (sodium_init () < 0)
    g_error ("libsodium cannot initialise");
  api->ctx = ctx;
  g_mutex_init (&api->cache_lock);
  api->cache = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  srv_metrics_declare (ctx->metrics, "magpied_auth_failures_total", SRV_METRIC_COUNTER,
                       "Rejected identity secrets and passwords, by endpoint", NULL, 0);
  soup_server_add_handler (ctx->soup, "/v1", v1_cb, api, NULL);
  ctx->api = api;
}

void
srv_api_stop (SrvContext *ctx)
{
  SrvApi *api = ctx->api;

  if (api == NULL)
    return;
  soup_server_remove_handler (ctx->soup, "/v1");
  g_hash_table_unref (api->cache);
  g_mutex_clear (&api->cache_lock);
  g_free (api);
  ctx->api = NULL;
}
