/* mp-test-sse.h - a small blocking Server-Sent Events client for tests */
#pragma once

#include <gio/gio.h>
#include <libsoup/soup.h>

G_BEGIN_DECLS

typedef struct {
  char *id;      /* NULL when the event carried none */
  char *event;   /* "message" when it named none, as EventSource does */
  char *data;    /* data: lines joined with "\n" */
} MpTestSseEvent;

typedef struct _MpTestSse MpTestSse;

/* GET @url with `Authorization: Bearer @token` (NULL: none) and `Last-Event-ID` (NULL: none).
 * Reads time out after @timeout_s. Returns NULL with *@status set when the answer is not a
 * 200 (or with @error when there is no answer). */
MpTestSse      *mp_test_sse_open          (const char   *url,
                                           const char   *token,
                                           const char   *last_event_id,
                                           guint         timeout_s,
                                           guint        *status,
                                           GError      **error);
/* The next event; NULL with @error at the end of the stream or on a timeout
 * (G_IO_ERROR_TIMED_OUT). Comments are counted, not returned. */
MpTestSseEvent *mp_test_sse_next          (MpTestSse    *sse,
                                           GError      **error);
guint           mp_test_sse_comments      (MpTestSse    *sse);
/* The retry: value last seen, 0 if none. */
guint           mp_test_sse_retry         (MpTestSse    *sse);
SoupMessageHeaders *mp_test_sse_headers   (MpTestSse    *sse);
void            mp_test_sse_close         (MpTestSse    *sse);
void            mp_test_sse_event_free    (MpTestSseEvent *event);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (MpTestSse, mp_test_sse_close)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MpTestSseEvent, mp_test_sse_event_free)

G_END_DECLS
