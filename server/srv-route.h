/* srv-route.h - which REST endpoint a /v1 path names, and which methods it takes
 *
 * Pure: no soup, no sockets, so the table is tested on its own. /v1/events, /v1/predict and
 * /v1/models have handlers of their own and are not routed here.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef enum {
  SRV_ROUTE_IDENTITIES = 1,   /* /v1/identities */
  SRV_ROUTE_ACCOUNTS,         /* /v1/accounts */
  SRV_ROUTE_SESSIONS,         /* /v1/sessions */
  SRV_ROUTE_CREDENTIALS,      /* /v1/credentials */
  SRV_ROUTE_PHOTOS,           /* /v1/photos */
  SRV_ROUTE_PHOTO,            /* /v1/photos/{id} */
  SRV_ROUTE_S3_EVENTS,        /* /v1/s3-events */
} SrvRouteId;

typedef struct {
  SrvRouteId  id;
  const char *allow;   /* the methods the endpoint takes, as an Allow header lists them */
  char       *param;   /* the {id} segment, or NULL */
} SrvRoute;

/* Fills @route and returns TRUE when @path names an endpoint; FALSE means 404. A path
 * parameter must be 1..64 characters of A-Z, a-z, 0-9, '-' and '_' (the ids we hand out). */
gboolean  srv_route_match   (const char     *path,
                             SrvRoute       *route);
/* TRUE when @method is one of @route's; otherwise the answer is 405 with route->allow. */
gboolean  srv_route_allows  (const SrvRoute *route,
                             const char     *method);
void      srv_route_clear   (SrvRoute       *route);

G_END_DECLS
