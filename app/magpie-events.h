/* magpie-events.h - the server's live event stream (SSE): tags as the workers produce them */
#pragma once

#include "magpie-connection.h"
#include "magpie-credentials.h"
#include "magpie-library.h"

G_BEGIN_DECLS

/* Reconnects wait 1 s, 2 s, 4 s, ... up to this, spread by jitter. */
#define MAGPIE_EVENTS_MAX_BACKOFF_S 60

#define MAGPIE_TYPE_EVENTS (magpie_events_get_type ())

G_DECLARE_FINAL_TYPE (MagpieEvents, magpie_events, MAGPIE, EVENTS, GObject)

MagpieEvents *magpie_events_new                (SoupSession       *session,
                                                MagpieLibrary     *library,
                                                MagpieConnection  *connection,
                                                MagpieCredentials *credentials);
gboolean      magpie_events_get_connected      (MagpieEvents      *self);
const char   *magpie_events_get_last_event_id  (MagpieEvents      *self);
guint         magpie_events_get_n_connects     (MagpieEvents      *self);
void          magpie_events_disconnect         (MagpieEvents      *self);

G_END_DECLS
