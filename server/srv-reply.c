/* srv-reply.c - JSON responses and the error envelope {"error": {"code", "message"}} */
#include "config.h"

#include "srv-reply.h"

/* Sends @body (not consumed) as the response with @status. */
void
srv_reply_json (SoupServerMessage *msg,
                guint              status,
                JsonNode          *body)
{
  g_autoptr(JsonGenerator) gen = json_generator_new ();
  gsize len = 0;
  char *data;

  json_generator_set_root (gen, body);
  data = json_generator_to_data (gen, &len);
  soup_server_message_set_status (msg, status, NULL);
  soup_message_headers_replace (soup_server_message_get_response_headers (msg),
                                "Cache-Control", "no-store");
  soup_server_message_set_response (msg, "application/json", SOUP_MEMORY_TAKE, data, len);
}

/* The serialised envelope; pure, for tests and for non-soup callers. */
char *
srv_error_body (const char *code,
                const char *message)
{
  g_autoptr(JsonBuilder) b = json_builder_new ();
  g_autoptr(JsonGenerator) gen = json_generator_new ();
  g_autoptr(JsonNode) root = NULL;

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "error");
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "code");
  json_builder_add_string_value (b, code);
  json_builder_set_member_name (b, "message");
  json_builder_add_string_value (b, message);
  json_builder_end_object (b);
  json_builder_end_object (b);
  root = json_builder_get_root (b);
  json_generator_set_root (gen, root);
  return json_generator_to_data (gen, NULL);
}

char *
srv_error_body_valist (const char *code,
                       const char *format,
                       va_list     args)
{
  g_autofree char *message = g_strdup_vprintf (format, args);

  return srv_error_body (code, message);
}

void
srv_reply_error (SoupServerMessage *msg,
                 guint              status,
                 const char        *code,
                 const char        *format,
                 ...)
{
  char *body;
  va_list args;

  va_start (args, format);
  body = srv_error_body_valist (code, format, args);
  va_end (args);

  soup_server_message_set_status (msg, status, NULL);
  soup_message_headers_replace (soup_server_message_get_response_headers (msg),
                                "Cache-Control", "no-store");
  soup_server_message_set_response (msg, "application/json", SOUP_MEMORY_TAKE,
                                    body, strlen (body));
}
