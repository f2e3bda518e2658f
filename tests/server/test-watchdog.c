/* test-watchdog.c - the answer a client gets when it stalls in the middle of a request */
#include "config.h"

#include <string.h>

#include "srv-watchdog.h"

/* Splits an HTTP/1.1 response into status line, headers and body, checking the framing. */
static char *
body_of (const char *response,
         gsize       length,
         char      **status_line)
{
  const char *end = strstr (response, "\r\n\r\n");
  const char *cl;
  guint64 content_length = 0;

  g_assert_nonnull (end);
  g_assert_cmpuint (strlen (response), ==, length);
  *status_line = g_strndup (response, strstr (response, "\r\n") - response);
  cl = strstr (response, "Content-Length: ");
  g_assert_true (cl != NULL && cl < end);
  content_length = g_ascii_strtoull (cl + 16, NULL, 10);
  g_assert_cmpuint (content_length, ==, strlen (end + 4));
  g_assert_nonnull (strstr (response, "Connection: close\r\n"));
  return g_strdup (end + 4);
}

static void
test_s3 (void)
{
  gsize len = 0;
  g_autofree char *response = srv_watchdog_timeout_response ("/magpie/users/x/a b.jpg",
                                                             "ABCDEF0123456789", 30, &len);
  g_autofree char *status = NULL;
  g_autofree char *body = body_of (response, len, &status);

  g_assert_cmpstr (status, ==, "HTTP/1.1 400 Bad Request");
  g_assert_nonnull (strstr (response, "Content-Type: application/xml\r\n"));
  g_assert_nonnull (strstr (response, "x-amz-request-id: ABCDEF0123456789\r\n"));
  g_assert_nonnull (strstr (body, "<Code>RequestTimeout</Code>"));
  g_assert_nonnull (strstr (body, "<RequestId>ABCDEF0123456789</RequestId>"));
  g_assert_nonnull (strstr (body, "30 s"));
}

static void
test_rest (void)
{
  gsize len = 0;
  g_autofree char *response = srv_watchdog_timeout_response ("/v1/photos", NULL, 7, &len);
  g_autofree char *status = NULL;
  g_autofree char *body = body_of (response, len, &status);
  g_autoptr(JsonParser) parser = json_parser_new ();
  JsonObject *error;

  g_assert_cmpstr (status, ==, "HTTP/1.1 408 Request Timeout");
  g_assert_nonnull (strstr (response, "Content-Type: application/json\r\n"));
  g_assert_null (strstr (response, "x-amz-request-id"));
  g_assert_true (json_parser_load_from_data (parser, body, -1, NULL));
  error = json_object_get_object_member (json_node_get_object (json_parser_get_root (parser)),
                                         "error");
  g_assert_cmpstr (json_object_get_string_member (error, "code"), ==, "request_timeout");
  g_assert_nonnull (strstr (json_object_get_string_member (error, "message"), "7 s"));
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/srv/watchdog/response-s3", test_s3);
  g_test_add_func ("/srv/watchdog/response-rest", test_rest);
  return g_test_run ();
}
