/* mp-test-sse.c - a blocking Server-Sent Events client: parses the stream as the WHATWG
 * event-stream rules say (field lines, one optional space after the colon, comments, a blank
 * line dispatches), so tests see what a browser's EventSource would. */
#include "config.h"

#include "mp-test-sse.h"

#include <string.h>

struct _MpTestSse {
  SoupSession      *session;
  SoupMessage      *msg;
  GInputStream     *body;
  GDataInputStream *lines;
  guint             comments;
  guint             retry;
};

MpTestSse *
mp_test_sse_open (const char  *url,
                  const char  *token,
                  const char  *last_event_id,
                  guint        timeout_s,
                  guint       *status,
                  GError     **error)
{
  g_autoptr(MpTestSse) sse = g_new0 (MpTestSse, 1);
  SoupMessageHeaders *headers;

  sse->session = soup_session_new_with_options ("timeout", timeout_s, NULL);
  sse->msg = soup_message_new ("GET", url);
  g_return_val_if_fail (sse->msg != NULL, NULL);
  headers = soup_message_get_request_headers (sse->msg);
  soup_message_headers_replace (headers, "Accept", "text/event-stream");
  if (token != NULL)
    {
      g_autofree char *auth = g_strconcat ("Bearer ", token, NULL);

      soup_message_headers_replace (headers, "Authorization", auth);
    }
  if (last_event_id != NULL)
    soup_message_headers_replace (headers, "Last-Event-ID", last_event_id);

  sse->body = soup_session_send (sse->session, sse->msg, NULL, error);
  if (sse->body == NULL)
    return NULL;
  *status = soup_message_get_status (sse->msg);
  if (*status != SOUP_STATUS_OK)
    {
      /* Read the error body to its end, as a client does, rather than hanging up mid-reply. */
      g_autoptr(GOutputStream) sink = g_memory_output_stream_new_resizable ();

      g_output_stream_splice (sink, sse->body, G_OUTPUT_STREAM_SPLICE_CLOSE_SOURCE, NULL, NULL);
      return NULL;
    }
  sse->lines = g_data_input_stream_new (sse->body);
  g_data_input_stream_set_newline_type (sse->lines, G_DATA_STREAM_NEWLINE_TYPE_ANY);
  return g_steal_pointer (&sse);
}

MpTestSseEvent *
mp_test_sse_next (MpTestSse  *sse,
                  GError    **error)
{
  g_autofree char *id = NULL;
  g_autofree char *event = NULL;
  g_autoptr(GString) data = NULL;

  for (;;)
    {
      GError *local = NULL;
      gsize len = 0;
      g_autofree char *line = g_data_input_stream_read_line_utf8 (sse->lines, &len, NULL, &local);
      const char *colon;
      g_autofree char *field = NULL;
      const char *value;

      if (line == NULL)
        {
          if (local == NULL)
            g_set_error (error, G_IO_ERROR, G_IO_ERROR_CLOSED, "the event stream ended");
          else
            g_propagate_error (error, local);
          return NULL;
        }
      if (len == 0)
        {
          MpTestSseEvent *e;

          if (data == NULL)
            continue;   /* a blank line with no data dispatches nothing */
          e = g_new0 (MpTestSseEvent, 1);
          e->id = g_steal_pointer (&id);
          e->event = event ? g_steal_pointer (&event) : g_strdup ("message");
          e->data = g_string_free (g_steal_pointer (&data), FALSE);
          return e;
        }
      if (line[0] == ':')
        {
          sse->comments++;
          continue;
        }
      colon = strchr (line, ':');
      field = colon ? g_strndup (line, colon - line) : g_strdup (line);
      value = colon ? colon + 1 : "";
      if (*value == ' ')
        value++;
      if (strcmp (field, "data") == 0)
        {
          if (data == NULL)
            data = g_string_new (value);
          else
            g_string_append_printf (data, "\n%s", value);
        }
      else if (strcmp (field, "event") == 0)
        {
          g_free (event);
          event = g_strdup (value);
        }
      else if (strcmp (field, "id") == 0)
        {
          g_free (id);
          id = g_strdup (value);
        }
      else if (strcmp (field, "retry") == 0)
        sse->retry = (guint) g_ascii_strtoull (value, NULL, 10);
    }
}

guint
mp_test_sse_comments (MpTestSse *sse)
{
  return sse->comments;
}

guint
mp_test_sse_retry (MpTestSse *sse)
{
  return sse->retry;
}

SoupMessageHeaders *
mp_test_sse_headers (MpTestSse *sse)
{
  return soup_message_get_response_headers (sse->msg);
}

void
mp_test_sse_close (MpTestSse *sse)
{
  if (sse == NULL)
    return;
  g_clear_object (&sse->lines);
  if (sse->body)
    g_input_stream_close (sse->body, NULL, NULL);
  g_clear_object (&sse->body);
  g_clear_object (&sse->msg);
  g_clear_object (&sse->session);
  g_free (sse);
}

void
mp_test_sse_event_free (MpTestSseEvent *event)
{
  if (event == NULL)
    return;
  g_free (event->id);
  g_free (event->event);
  g_free (event->data);
  g_free (event);
}
