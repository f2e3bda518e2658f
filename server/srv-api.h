/* srv-api.h - the REST API under /v1: identities, accounts, sessions, credentials, photos */
#pragma once

#include "srv-context.h"

G_BEGIN_DECLS

/* An identity secret: 256 random bits, base64url without padding. */
#define SRV_API_SECRET_LEN 43

/* Registers the /v1 handler on ctx->soup and fills ctx->api. Returns FALSE and sets @error
 * when the account key in the data directory cannot be read or made. */
gboolean  srv_api_start        (SrvContext  *ctx,
                                GError     **error);
void      srv_api_stop         (SrvContext  *ctx);

/* Pure helpers, for tests. */

/* A fresh identity secret (SRV_API_SECRET_LEN characters). */
char     *srv_api_new_secret   (void);
/* What the catalog stores for @secret: lowercase hex SHA-256. A secret carries 256 bits of
 * entropy, so a fast hash is enough; a slow one would only slow down every credential call. */
char     *srv_api_hash_secret  (const char *secret);
/* TRUE when @secret hashes to @secret_hash; constant time in the secret. */
gboolean  srv_api_check_secret (const char *secret_hash,
                                const char *secret);
/* RFC 3339 UTC with a Z, to the second: "2025-01-02T03:04:05Z". */
char     *srv_api_format_time  (gint64      unix_seconds);

G_END_DECLS
