/* srv-events.h - GET /v1/events: each identity's photo events as Server-Sent Events */
#pragma once

#include "srv-context.h"

G_BEGIN_DECLS

#define SRV_SSE_KEEPALIVE_S   15             /* proxies drop idle streams near 30 s */
/* What one subscriber may have queued and not yet taken off the socket: a few hundred photo
 * events. A client further behind is cut off and resumes with Last-Event-ID, so it never
 * holds memory, or the others, hostage. */
#define SRV_SSE_BUFFER_MAX    (256 * 1024)
/* The socket send buffer of an event stream. Left to itself Linux grows it to megabytes for
 * a client that has stopped reading, all taken before SRV_SSE_BUFFER_MAX can notice (the
 * slow-client drill measured 2.7 MB); an event stream never needs more than this to keep up. */
#define SRV_SSE_SNDBUF        (64 * 1024)
/* Events read from the catalog per round trip, for a replay or a burst. */
#define SRV_SSE_FETCH_MAX     100
#define SRV_SSE_RETRY_MS      3000           /* how soon EventSource reconnects */

/* Registers the /v1/events handler and the catalog watch; fills ctx->events. */
void      srv_events_start  (SrvContext  *ctx);
/* Ends every stream and waits for catalog reads in flight. */
void      srv_events_stop   (SrvContext  *ctx);

G_END_DECLS
