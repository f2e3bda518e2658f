/* srv-sse.c - Server-Sent Events framing */
#include "config.h"

#include "srv-sse.h"

#include <string.h>

/* Writes "FIELD: line\n" for each line of @text. */
static void
append_lines (GString    *out,
              const char *field,
              const char *text)
{
  const char *p = text;

  for (;;)
    {
      gsize n = strcspn (p, "\r\n");

      g_string_append (out, field);
      g_string_append_len (out, p, n);
      g_string_append_c (out, '\n');
      p += n;
      if (*p == '\0')
        break;
      if (p[0] == '\r' && p[1] == '\n')
        p += 2;
      else
        p++;
    }
}

void
srv_sse_append_event (GString    *out,
                      gint64      id,
                      const char *event,
                      const char *data)
{
  g_return_if_fail (out != NULL && event != NULL && data != NULL);
  g_return_if_fail (strpbrk (event, "\r\n") == NULL);

  g_string_append_printf (out, "id: %" G_GINT64_FORMAT "\nevent: %s\n", id, event);
  append_lines (out, "data: ", data);
  g_string_append_c (out, '\n');
}

void
srv_sse_append_comment (GString    *out,
                        const char *text)
{
  g_return_if_fail (out != NULL && text != NULL);

  append_lines (out, ": ", text);
  g_string_append_c (out, '\n');
}

void
srv_sse_append_retry (GString *out,
                      guint    ms)
{
  g_string_append_printf (out, "retry: %u\n\n", ms);
}

gboolean
srv_sse_parse_last_event_id (const char *value,
                             gint64     *id)
{
  guint64 v = 0;

  if (value == NULL || !g_ascii_isdigit (value[0]))
    return FALSE;
  if (!g_ascii_string_to_unsigned (value, 10, 0, G_MAXINT64, &v, NULL))
    return FALSE;
  *id = (gint64) v;
  return TRUE;
}
