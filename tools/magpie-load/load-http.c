/* load-http.c - the small HTTP and JSON pieces magpie-load's users and its setup share */
#include "config.h"

#include "load-http.h"

#include <string.h>

#include "load-report.h"

JsonObject *
load_http_parse_object (GBytes     *body,
                        JsonNode  **out_root)
{
  g_autoptr(JsonParser) parser = json_parser_new ();
  gsize len = 0;
  const char *data = body ? g_bytes_get_data (body, &len) : NULL;
  JsonNode *root;

  *out_root = NULL;
  if (data == NULL || !json_parser_load_from_data (parser, data, len, NULL))
    return NULL;
  root = json_parser_get_root (parser);
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root))
    return NULL;
  *out_root = json_node_ref (root);
  return json_node_get_object (root);
}

char *
load_json_dup_string (JsonObject *o,
                      const char *name)
{
  JsonNode *n = o ? json_object_get_member (o, name) : NULL;

  if (n == NULL || !JSON_NODE_HOLDS_VALUE (n) || json_node_get_value_type (n) != G_TYPE_STRING)
    return NULL;
  return g_strdup (json_node_get_string (n));
}

/* What an unexpected answer said: the JSON envelope's message, an S3 XML <Message>, or the
 * start of the body. */
char *
load_http_answer_detail (GBytes *body)
{
  g_autoptr(JsonNode) root = NULL;
  JsonObject *o;
  gsize len = 0;
  const char *data = body ? g_bytes_get_data (body, &len) : NULL;
  const char *m;

  if (data == NULL || len == 0)
    return NULL;
  o = load_http_parse_object (body, &root);
  if (o != NULL && json_object_has_member (o, "error") &&
      JSON_NODE_HOLDS_OBJECT (json_object_get_member (o, "error")))
    {
      JsonObject *e = json_object_get_object_member (o, "error");
      g_autofree char *code = load_json_dup_string (e, "code");
      g_autofree char *message = load_json_dup_string (e, "message");

      return g_strdup_printf ("%s: %s", code ? code : "?", message ? message : "");
    }
  if ((m = g_strstr_len (data, MIN (len, 4096), "<Message>")) != NULL)
    {
      const char *end = g_strstr_len (m, data + len - m, "</Message>");

      if (end != NULL)
        return g_strndup (m + strlen ("<Message>"), end - m - strlen ("<Message>"));
    }
  return g_utf8_make_valid (data, MIN (len, LOAD_DETAIL_MAX));
}

const char *
load_http_error_class (const GError *error)
{
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CONNECTION_REFUSED))
    return "connection-refused";
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT))
    return "io-timeout";
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_TOO_MANY_OPEN_FILES))
    return "too-many-open-files";
  return "transport";
}

SoupMessage *
load_http_request_new (const char *method,
                       const char *url,
                       const char *token,
                       const char *content_type,
                       GBytes     *body)
{
  SoupMessage *msg = soup_message_new (method, url);
  SoupMessageHeaders *h;

  if (msg == NULL)
    return NULL;
  h = soup_message_get_request_headers (msg);
  if (token != NULL)
    {
      g_autofree char *auth = g_strdup_printf ("Bearer %s", token);

      soup_message_headers_replace (h, "Authorization", auth);
    }
  if (body != NULL)
    soup_message_set_request_body_from_bytes (msg, content_type, body);
  return msg;
}

GBytes *
load_http_json_body (const char *first_name,
                     ...)
{
  g_autoptr(JsonBuilder) b = json_builder_new ();
  g_autoptr(JsonGenerator) gen = json_generator_new ();
  g_autoptr(JsonNode) root = NULL;
  const char *name = first_name;
  va_list ap;
  gsize len;
  char *text;

  json_builder_begin_object (b);
  va_start (ap, first_name);
  while (name != NULL)
    {
      json_builder_set_member_name (b, name);
      json_builder_add_string_value (b, va_arg (ap, const char *));
      name = va_arg (ap, const char *);
    }
  va_end (ap);
  json_builder_end_object (b);
  root = json_builder_get_root (b);
  json_generator_set_root (gen, root);
  text = json_generator_to_data (gen, &len);
  return g_bytes_new_take (text, len);
}
