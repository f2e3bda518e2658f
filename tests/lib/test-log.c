/* test-log.c - structured log lines: logfmt quoting, JSON form, field names */
#include "config.h"

#include <json-glib/json-glib.h>

#include "mp-log.h"

/* 2026-11-23T09:41:05.123Z */
#define T0 (G_GINT64_CONSTANT (1795426865) * G_USEC_PER_SEC + 123456)

static void
test_logfmt_plain (void)
{
  const GLogField fields[] = {
    { "GLIB_DOMAIN", "magpied", -1 },
    { "MESSAGE", "listening", -1 },
    { "URL", "http://127.0.0.1:8080", -1 },
    { "CODE_FILE", "main.c", -1 },
    { "PRIORITY", "6", -1 },
  };
  g_autofree char *line = mp_log_format_line (MP_LOG_FORMAT_LOGFMT, "magpied", T0,
                                              G_LOG_LEVEL_INFO, fields, G_N_ELEMENTS (fields));

  g_assert_cmpstr (line, ==, "ts=2026-11-23T09:41:05.123Z level=info prog=magpied "
                             "domain=magpied msg=listening url=http://127.0.0.1:8080");
}

static void
test_logfmt_quoting (void)
{
  const GLogField fields[] = {
    { "MESSAGE", "cannot start: \"port\" in use\nretry", -1 },
    { "EMPTY", "", -1 },
    { "EQ", "a=b", -1 },
    { "LEN", "abcdef", 3 },
  };
  g_autofree char *line = mp_log_format_line (MP_LOG_FORMAT_LOGFMT, NULL, T0,
                                              G_LOG_LEVEL_WARNING, fields, G_N_ELEMENTS (fields));

  g_assert_cmpstr (line, ==, "ts=2026-11-23T09:41:05.123Z level=warning "
                             "msg=\"cannot start: \\\"port\\\" in use\\nretry\" empty=\"\" "
                             "eq=\"a=b\" len=abc");
  g_assert_null (strchr (line, '\n'));
}

static void
test_json (void)
{
  const GLogField fields[] = {
    { "MESSAGE", "request \"x\"", -1 },
    { "STATUS", "200", -1 },
  };
  g_autofree char *line = mp_log_format_line (MP_LOG_FORMAT_JSON, "magpied", T0,
                                              G_LOG_LEVEL_DEBUG, fields, G_N_ELEMENTS (fields));
  g_autoptr(JsonParser) parser = json_parser_new ();
  g_autoptr(GError) error = NULL;
  JsonObject *o;

  json_parser_load_from_data (parser, line, -1, &error);
  g_assert_no_error (error);
  o = json_node_get_object (json_parser_get_root (parser));
  g_assert_cmpstr (json_object_get_string_member (o, "ts"), ==, "2026-11-23T09:41:05.123Z");
  g_assert_cmpstr (json_object_get_string_member (o, "level"), ==, "debug");
  g_assert_cmpstr (json_object_get_string_member (o, "prog"), ==, "magpied");
  g_assert_cmpstr (json_object_get_string_member (o, "msg"), ==, "request \"x\"");
  g_assert_cmpstr (json_object_get_string_member (o, "status"), ==, "200");
}

static void
test_format_parse (void)
{
  MpLogFormat f = MP_LOG_FORMAT_JSON;

  g_assert_true (mp_log_format_parse ("logfmt", &f));
  g_assert_cmpint (f, ==, MP_LOG_FORMAT_LOGFMT);
  g_assert_true (mp_log_format_parse ("json", &f));
  g_assert_cmpint (f, ==, MP_LOG_FORMAT_JSON);
  g_assert_false (mp_log_format_parse ("xml", &f));
  g_assert_false (mp_log_format_parse (NULL, &f));
}

int
main (int argc, char *argv[])
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/lib/log/logfmt-plain", test_logfmt_plain);
  g_test_add_func ("/lib/log/logfmt-quoting", test_logfmt_quoting);
  g_test_add_func ("/lib/log/json", test_json);
  g_test_add_func ("/lib/log/format-parse", test_format_parse);
  return g_test_run ();
}
