/* srv-reply.h - JSON responses and the one error envelope of the REST API */
#pragma once

#include <json-glib/json-glib.h>
#include <libsoup/soup.h>

G_BEGIN_DECLS

void   srv_reply_json   (SoupServerMessage *msg,
                         guint              status,
                         JsonNode          *body);
void   srv_reply_error  (SoupServerMessage *msg,
                         guint              status,
                         const char        *code,
                         const char        *format,
                         ...) G_GNUC_PRINTF (4, 5);
char  *srv_error_body   (const char        *code,
                         const char        *message);
/* The envelope with a printf-style message, for srv_reply_error() and its off-thread twin. */
char  *srv_error_body_valist (const char   *code,
                              const char   *format,
                              va_list       args) G_GNUC_PRINTF (2, 0);

G_END_DECLS
