/* load-http.h - small HTTP and JSON helpers for magpie-load (libsoup 3, json-glib) */
#pragma once

#include <json-glib/json-glib.h>
#include <libsoup/soup.h>

G_BEGIN_DECLS

/* The JSON object in @body, or NULL; *@out_root holds a reference to its node. */
JsonObject  *load_http_parse_object  (GBytes       *body,
                                      JsonNode    **out_root);
/* A copy of the string member @name of @o (which may be NULL), or NULL. */
char        *load_json_dup_string    (JsonObject   *o,
                                      const char   *name);
/* What an unexpected answer said: the JSON envelope's code and message, an S3 XML <Message>,
 * or the start of the body; NULL for an empty one. */
char        *load_http_answer_detail (GBytes       *body);
/* A short name for a transport failure: connection-refused, io-timeout, ..., transport. */
const char  *load_http_error_class   (const GError *error);
/* @method @url with `Authorization: Bearer @token` (NULL: none) and @body (NULL: none).
 * NULL when @url cannot be parsed. */
SoupMessage *load_http_request_new   (const char   *method,
                                      const char   *url,
                                      const char   *token,
                                      const char   *content_type,
                                      GBytes       *body);
/* {"name": "value", ...} from NULL-terminated name, value pairs. */
GBytes      *load_http_json_body     (const char   *first_name,
                                      ...) G_GNUC_NULL_TERMINATED;

G_END_DECLS
