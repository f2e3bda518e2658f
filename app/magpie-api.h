/* magpie-api.h - JSON requests to magpied's REST API over a shared SoupSession */
#pragma once

#include <json-glib/json-glib.h>
#include <libsoup/soup.h>

G_BEGIN_DECLS

/* Sends @method @server_url@path with @body (JSON text, or NULL for none) and, when @token is
 * not NULL, "Authorization: Bearer @token". Finishes with the parsed JSON body and the HTTP
 * status of any answer the server gave; fails only when no answer arrived or it was not JSON. */
void      magpie_api_request_async  (SoupSession          *session,
                                     const char           *method,
                                     const char           *server_url,
                                     const char           *path,
                                     const char           *token,
                                     const char           *body,
                                     GCancellable         *cancellable,
                                     GAsyncReadyCallback   callback,
                                     gpointer              user_data);
JsonNode *magpie_api_request_finish (GAsyncResult         *result,
                                     guint                *status,
                                     GError              **error);
/* The server's error envelope's message, or a plain-words fallback naming @status. */
char     *magpie_api_error_message  (JsonNode             *body,
                                     guint                 status);
const char *magpie_api_get_string   (JsonNode             *node,
                                     const char           *member);

G_END_DECLS
