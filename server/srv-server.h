/* srv-server.h - the magpied process: HTTP listener, routes, lifetime */
#pragma once

#include <glib.h>

#include "srv-config.h"

G_BEGIN_DECLS

typedef struct _SrvServer SrvServer;

SrvServer  *srv_server_new       (const SrvConfig *config,
                                  GError         **error);
void        srv_server_free      (SrvServer       *server);
const char *srv_server_get_url   (SrvServer       *server);
void        srv_server_shutdown  (SrvServer       *server);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (SrvServer, srv_server_free)

G_END_DECLS
