/* srv-watchdog.h - closes the connections of clients that stall while sending a request */
#pragma once

#include "srv-context.h"

G_BEGIN_DECLS

/* How long a client may go without sending a byte of a request (its headers, its body, or the
 * next request on a kept-alive connection) by default. S3 gives up near 20 s and nginx at 60 s;
 * a client silent this long mid-upload is gone, and each one holds a descriptor and a spool. */
#define SRV_WATCHDOG_TIMEOUT_DEFAULT_S 30

typedef struct _SrvWatchdog SrvWatchdog;

/* Watches every request ctx->soup starts, from its first byte until its body is complete. A
 * client silent for ctx->config->client_timeout_s has its connection shut down; one stalled
 * mid-body is told first (srv_watchdog_timeout_response()). */
SrvWatchdog *srv_watchdog_start              (SrvContext  *ctx);
void         srv_watchdog_stop               (SrvWatchdog *dog);

/* The whole HTTP/1.1 response for a request on @path whose client stalled mid-body: S3's
 * 400 RequestTimeout document for S3 paths (with @request_id when known), the REST error
 * envelope with 408 for /v1/... Ends with Connection: close. */
char        *srv_watchdog_timeout_response   (const char  *path,
                                              const char  *request_id,
                                              guint        timeout_s,
                                              gsize       *length);

G_END_DECLS
