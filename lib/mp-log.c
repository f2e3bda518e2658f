/* mp-log.c - a GLogWriterFunc that writes one structured line per message to stderr
 *
 * logfmt by default (`ts=… level=info prog=magpied domain=… msg="…" key=value`), JSON lines on
 * request, so a person can read it and a collector (Loki, journald, Vector) can parse it.
 * Extra fields passed to g_log_structured() become keys of their own.
 */
#include "config.h"

#include "mp-log.h"

#include <json-glib/json-glib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static char *log_program;
static MpLogFormat log_format = MP_LOG_FORMAT_LOGFMT;

static const char *
level_name (GLogLevelFlags level)
{
  if (level & G_LOG_LEVEL_ERROR)
    return "fatal";
  if (level & G_LOG_LEVEL_CRITICAL)
    return "critical";
  if (level & G_LOG_LEVEL_WARNING)
    return "warning";
  if (level & G_LOG_LEVEL_MESSAGE)
    return "notice";
  if (level & G_LOG_LEVEL_INFO)
    return "info";
  return "debug";
}

/* Fields GLib or the journal add that say nothing a reader of one line needs. */
static gboolean
field_is_internal (const char *key)
{
  return g_str_has_prefix (key, "CODE_") || strcmp (key, "PRIORITY") == 0 ||
         strcmp (key, "GLIB_OLD_LOG_API") == 0 || strcmp (key, "SYSLOG_IDENTIFIER") == 0;
}

static char *
field_key (const char *key)
{
  if (strcmp (key, "MESSAGE") == 0)
    return g_strdup ("msg");
  if (strcmp (key, "GLIB_DOMAIN") == 0)
    return g_strdup ("domain");
  return g_ascii_strdown (key, -1);
}

static char *
field_value (const GLogField *field)
{
  if (field->length < 0)
    return g_strdup (field->value);
  return g_strndup (field->value, field->length);
}

static void
append_logfmt_value (GString *out, const char *value)
{
  gboolean quote = *value == '\0';

  for (const char *p = value; *p && !quote; p++)
    if (*p == ' ' || *p == '=' || *p == '"' || (guchar) *p < 0x20)
      quote = TRUE;

  if (!quote)
    {
      g_string_append (out, value);
      return;
    }

  g_string_append_c (out, '"');
  for (const char *p = value; *p; p++)
    {
      switch (*p)
        {
        case '"': g_string_append (out, "\\\""); break;
        case '\\': g_string_append (out, "\\\\"); break;
        case '\n': g_string_append (out, "\\n"); break;
        case '\t': g_string_append (out, "\\t"); break;
        case '\r': g_string_append (out, "\\r"); break;
        default:
          if ((guchar) *p < 0x20)
            g_string_append_printf (out, "\\x%02x", (guchar) *p);
          else
            g_string_append_c (out, *p);
        }
    }
  g_string_append_c (out, '"');
}

/* Position of a field in the line: domain and message first, the rest as given. */
static int
field_rank (const char *key)
{
  if (strcmp (key, "GLIB_DOMAIN") == 0)
    return 0;
  if (strcmp (key, "MESSAGE") == 0)
    return 1;
  return 2;
}

/* Returns the line without a trailing newline. Pure: the time is given, not read. */
char *
mp_log_format_line (MpLogFormat      format,
                    const char      *program,
                    gint64           unix_usec,
                    GLogLevelFlags   level,
                    const GLogField *fields,
                    gsize            n_fields)
{
  g_autoptr(GDateTime) dt = g_date_time_new_from_unix_utc (unix_usec / G_USEC_PER_SEC);
  g_autofree char *stamp = NULL;
  g_autofree char *ts = NULL;

  g_return_val_if_fail (dt != NULL, NULL);

  stamp = g_date_time_format (dt, "%Y-%m-%dT%H:%M:%S");
  ts = g_strdup_printf ("%s.%03dZ", stamp, (int) ((unix_usec % G_USEC_PER_SEC) / 1000));

  if (format == MP_LOG_FORMAT_JSON)
    {
      g_autoptr(JsonBuilder) b = json_builder_new ();
      g_autoptr(JsonGenerator) gen = json_generator_new ();
      g_autoptr(JsonNode) root = NULL;

      json_builder_begin_object (b);
      json_builder_set_member_name (b, "ts");
      json_builder_add_string_value (b, ts);
      json_builder_set_member_name (b, "level");
      json_builder_add_string_value (b, level_name (level));
      if (program)
        {
          json_builder_set_member_name (b, "prog");
          json_builder_add_string_value (b, program);
        }
      for (int rank = 0; rank < 3; rank++)
      for (gsize i = 0; i < n_fields; i++)
        {
          g_autofree char *key = NULL;
          g_autofree char *value = NULL;

          if (field_is_internal (fields[i].key) || field_rank (fields[i].key) != rank)
            continue;
          key = field_key (fields[i].key);
          value = field_value (&fields[i]);
          json_builder_set_member_name (b, key);
          json_builder_add_string_value (b, value);
        }
      json_builder_end_object (b);
      root = json_builder_get_root (b);
      json_generator_set_root (gen, root);
      return json_generator_to_data (gen, NULL);
    }
  else
    {
      GString *out = g_string_new (NULL);

      g_string_append_printf (out, "ts=%s level=%s", ts, level_name (level));
      if (program)
        {
          g_string_append (out, " prog=");
          append_logfmt_value (out, program);
        }
      for (int rank = 0; rank < 3; rank++)
      for (gsize i = 0; i < n_fields; i++)
        {
          g_autofree char *key = NULL;
          g_autofree char *value = NULL;

          if (field_is_internal (fields[i].key) || field_rank (fields[i].key) != rank)
            continue;
          key = field_key (fields[i].key);
          value = field_value (&fields[i]);
          g_string_append_printf (out, " %s=", key);
          append_logfmt_value (out, value);
        }
      return g_string_free (out, FALSE);
    }
}

static GLogWriterOutput
mp_log_writer (GLogLevelFlags   level,
               const GLogField *fields,
               gsize            n_fields,
               gpointer         user_data)
{
  g_autofree char *line = NULL;

  /* Info is part of a server's record (requests, start, stop); only debug needs asking for,
   * with G_MESSAGES_DEBUG as everywhere in GLib. */
  if (level & G_LOG_LEVEL_DEBUG)
    {
      const char *domain = NULL;

      for (gsize i = 0; i < n_fields; i++)
        if (strcmp (fields[i].key, "GLIB_DOMAIN") == 0)
          domain = fields[i].value;
      if (g_log_writer_default_would_drop (level, domain))
        return G_LOG_WRITER_HANDLED;
    }

  line = mp_log_format_line (log_format, log_program, g_get_real_time (), level, fields, n_fields);
  if (line == NULL)
    return G_LOG_WRITER_UNHANDLED;

  /* One write per line so that lines of concurrent threads never interleave. */
  {
    g_autofree char *with_nl = g_strconcat (line, "\n", NULL);
    size_t len = strlen (with_nl);
    const char *p = with_nl;

    while (len > 0)
      {
        ssize_t n = write (STDERR_FILENO, p, len);
        if (n <= 0)
          break;
        p += n;
        len -= (size_t) n;
      }
  }
  return G_LOG_WRITER_HANDLED;
}

gboolean
mp_log_format_parse (const char  *text,
                     MpLogFormat *format)
{
  if (g_strcmp0 (text, "logfmt") == 0 || g_strcmp0 (text, "text") == 0)
    *format = MP_LOG_FORMAT_LOGFMT;
  else if (g_strcmp0 (text, "json") == 0)
    *format = MP_LOG_FORMAT_JSON;
  else
    return FALSE;
  return TRUE;
}

/* Installs the writer for the whole process. Call once, early in main(). */
void
mp_log_init (const char  *program,
             MpLogFormat  format)
{
  static gsize once;

  g_free (log_program);
  log_program = g_strdup (program);
  log_format = format;
  if (g_once_init_enter (&once))
    {
      g_log_set_writer_func (mp_log_writer, NULL, NULL);
      g_once_init_leave (&once, 1);
    }
}
