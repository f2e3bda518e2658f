/* srv-http.h - handler plumbing: run the slow half of a request off the main loop, bearer auth
 *
 * SoupServer runs on the main context and is not thread-safe, while the catalog, the store and
 * argon2 block. A handler parses on the main thread, then calls srv_http_offload(): the message
 * is paused, @func runs on the blocking pool and fills an SrvHttpReply (plain data, no soup
 * calls), and the reply is applied back on the main context, which unpauses the message. While
 * paused, @func may read (never write) the request's headers and body.
 */
#pragma once

#include <json-glib/json-glib.h>
#include <libsoup/soup.h>

#include "srv-context.h"

G_BEGIN_DECLS

typedef struct _SrvHttpReply SrvHttpReply;

typedef void (*SrvHttpFunc) (SrvHttpReply *reply,
                             gpointer      user_data);

/* Threads serving srv_http_offload(): enough to overlap I/O waits and argon2 on a small box. */
#define SRV_HTTP_BLOCKING_THREADS 8

/* JSON request bodies are small; anything bigger is a mistake or an attack. */
#define SRV_HTTP_JSON_BODY_MAX (64 * 1024)

/* The pool srv_http_offload() uses; srv-server.c makes one per process. */
GThreadPool  *srv_http_pool_new       (void);

void          srv_http_offload        (SrvContext        *ctx,
                                       SoupServerMessage *msg,
                                       SrvHttpFunc        func,
                                       gpointer           user_data,
                                       GDestroyNotify     destroy);

/* For @func: the paused message (read-only), and the reply to fill. */
SoupServerMessage *srv_http_reply_get_message (SrvHttpReply *reply);
void          srv_http_reply_set_status   (SrvHttpReply      *reply,
                                           guint              status);
void          srv_http_reply_add_header   (SrvHttpReply      *reply,
                                           const char        *name,
                                           const char        *value);
/* Takes @body (may be NULL for none). */
void          srv_http_reply_set_body     (SrvHttpReply      *reply,
                                           const char        *content_type,
                                           GBytes            *body);
/* Takes @stream; it is read on the main context in chunks and sent with Content-Length
 * @length (the caller knows it: an object's size or its served range). */
void          srv_http_reply_set_stream   (SrvHttpReply      *reply,
                                           const char        *content_type,
                                           GInputStream      *stream,
                                           gint64             length);
/* JSON with Cache-Control: no-store, as srv_reply_json() does. @body is not consumed. */
void          srv_http_reply_set_json     (SrvHttpReply      *reply,
                                           guint              status,
                                           JsonNode          *body);
void          srv_http_reply_set_error    (SrvHttpReply      *reply,
                                           guint              status,
                                           const char        *code,
                                           const char        *format,
                                           ...) G_GNUC_PRINTF (4, 5);

/* The session behind `Authorization: Bearer <token>` (or, when @allow_query, the
 * `access_token` query parameter, for EventSource which cannot set headers). Returns NULL
 * after replying 401 with the reason (missing, malformed, forged, expired). Main thread. */
SrvCredentials *srv_http_authenticate (SrvContext        *ctx,
                                       SoupServerMessage *msg,
                                       GHashTable        *query,
                                       gboolean           allow_query);

/* The request body as a JSON object. Returns NULL after replying 400 (not JSON, not an
 * object) or 413 (over SRV_HTTP_JSON_BODY_MAX). */
JsonObject   *srv_http_read_json      (SoupServerMessage *msg);
/* Its pure half: @data as a JSON object, or NULL with the reason in @error and the HTTP
 * status to answer with in @status (400, or 413 over SRV_HTTP_JSON_BODY_MAX). */
JsonObject   *srv_http_parse_json     (const char        *data,
                                       gsize              len,
                                       guint             *status,
                                       GError           **error);
/* Members of a request object. A string member must be a JSON string (absent or null is
 * allowed unless @required; @out is then NULL); an integer member, when present and not
 * null, a JSON integer (@out keeps its default otherwise). FALSE with a reason for a 400. */
gboolean      srv_http_json_string    (JsonObject        *o,
                                       const char        *name,
                                       gboolean           required,
                                       const char       **out,
                                       GError           **error);
gboolean      srv_http_json_int       (JsonObject        *o,
                                       const char        *name,
                                       gint64            *out,
                                       GError           **error);

/* The most body bytes a request to @path may send (the handlers hold them in memory). */
typedef gint64 (*SrvHttpBodyLimitFunc) (const char *path,
                                        gpointer    user_data);

/* Bounds every request body that no early handler streams: over @limit's answer it is refused
 * with 413 as it arrives (at once when Content-Length says so), and a Content-Encoding other
 * than identity with 415, before anything is inflated or kept. */
void          srv_http_bound_bodies   (SoupServer           *soup,
                                       SrvHttpBodyLimitFunc  limit,
                                       gpointer              user_data);

/* Replies 405 with an Allow header unless the method is one of @allowed ("GET, HEAD").
 * Returns TRUE when the method is allowed. */
gboolean      srv_http_check_method   (SoupServerMessage *msg,
                                       const char        *allowed);

G_END_DECLS
