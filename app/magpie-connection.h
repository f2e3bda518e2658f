/* magpie-connection.h - whether the magpied server can be reached, checked in the background */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

typedef enum {
  MAGPIE_CONNECTION_STATE_UNKNOWN,
  MAGPIE_CONNECTION_STATE_ONLINE,
  MAGPIE_CONNECTION_STATE_UNREACHABLE,
  MAGPIE_CONNECTION_STATE_OFFLINE,     /* no network, or "Work Offline": nothing is sent */
} MagpieConnectionState;

#define MAGPIE_TYPE_CONNECTION (magpie_connection_get_type ())

G_DECLARE_FINAL_TYPE (MagpieConnection, magpie_connection, MAGPIE, CONNECTION, GObject)

MagpieConnection      *magpie_connection_new                (const char       *server_url,
                                                             guint             check_interval);
const char            *magpie_connection_get_server_url     (MagpieConnection *self);
void                   magpie_connection_set_server_url     (MagpieConnection *self,
                                                             const char       *server_url);
MagpieConnectionState  magpie_connection_get_state          (MagpieConnection *self);
const char            *magpie_connection_get_server_version (MagpieConnection *self);
const char            *magpie_connection_get_error_message  (MagpieConnection *self);
guint                  magpie_connection_get_check_interval (MagpieConnection *self);
gboolean               magpie_connection_get_work_offline   (MagpieConnection *self);
void                   magpie_connection_set_work_offline   (MagpieConnection *self,
                                                             gboolean          work_offline);
void                   magpie_connection_refresh            (MagpieConnection *self);
gboolean               magpie_connection_check_url          (const char       *url,
                                                             GError          **error);

G_END_DECLS
