/* srv-sse.h - Server-Sent Events framing (the WHATWG event-stream format), pure */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Appends one event: "id: N", "event: TYPE", one "data:" line per line of @data (split at
 * CRLF, CR or LF, which a client joins back with LF), then the blank line that dispatches it. */
void      srv_sse_append_event         (GString    *out,
                                        gint64      id,
                                        const char *event,
                                        const char *data);
/* A comment (": text"): clients ignore it, proxies see traffic. */
void      srv_sse_append_comment       (GString    *out,
                                        const char *text);
/* "retry: MS": how long a client waits before reconnecting. */
void      srv_sse_append_retry         (GString    *out,
                                        guint       ms);
/* A Last-Event-ID value as this server writes ids: decimal digits, 0..G_MAXINT64, with
 * nothing around them. FALSE for anything else. */
gboolean  srv_sse_parse_last_event_id  (const char *value,
                                        gint64     *id);

G_END_DECLS
