/* srv-context.h - the services one magpied process shares between its modules
 *
 * srv-server.c opens them in order (keyring, catalog, store), hands the context to each
 * module's start function, and closes them in reverse. Modules keep their own state in
 * their slot below and find each other only through this struct.
 */
#pragma once

#include <libsoup/soup.h>

#include "srv-config.h"
#include "srv-db.h"
#include "srv-metrics.h"
#include "srv-store.h"
#include "srv-token.h"

G_BEGIN_DECLS

typedef struct _SrvApi     SrvApi;
typedef struct _SrvS3      SrvS3;
typedef struct _SrvWorkers SrvWorkers;
typedef struct _SrvEvents  SrvEvents;

typedef struct {
  SrvConfig    *config;
  const char   *url;           /* what clients reach us by: --public-url or the bound address */
  SrvDb        *db;
  SrvStore     *store;
  SrvKeyring   *keyring;
  SrvMetrics   *metrics;
  SoupServer   *soup;
  GMainContext *main_context;  /* where soup runs; replies are applied there */
  GThreadPool  *blocking;      /* srv_http_offload() runs handlers' slow halves here */

  SrvApi       *api;
  SrvS3        *s3;
  SrvWorkers   *workers;
  SrvEvents    *events;
} SrvContext;

G_END_DECLS
