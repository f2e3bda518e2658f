/* srv-ratelimit.h - token buckets keyed by text (a client address, an account name)
 *
 * Pure policy: the caller passes the time, so tests step a clock instead of sleeping. Not
 * thread-safe; the REST API uses its limiters on the main context only.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct _SrvRateLimit SrvRateLimit;

/* @burst tokens at most, refilled at @per_second; at most @max_keys buckets are kept. */
SrvRateLimit *srv_ratelimit_new   (double        burst,
                                   double        per_second,
                                   guint         max_keys);
void          srv_ratelimit_free  (SrvRateLimit *limit);
/* Takes one token from @key's bucket at @now_us (monotonic microseconds). Returns TRUE when
 * the attempt may go ahead; FALSE with *@retry_after_s (>= 1) the whole seconds until it may. */
gboolean      srv_ratelimit_take  (SrvRateLimit *limit,
                                   const char   *key,
                                   gint64        now_us,
                                   guint        *retry_after_s);
/* Buckets held now (tests: memory stays bounded). */
guint         srv_ratelimit_size  (SrvRateLimit *limit);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (SrvRateLimit, srv_ratelimit_free)

G_END_DECLS
