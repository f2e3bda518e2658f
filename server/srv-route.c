/* srv-route.c - the /v1 route table: path → endpoint, endpoint → methods */
#include "config.h"

#include "srv-route.h"

#include <string.h>

static const struct {
  const char *path;
  SrvRouteId  id;
  const char *allow;
} fixed_routes[] = {
  { "/v1/identities",  SRV_ROUTE_IDENTITIES,  "POST" },
  { "/v1/credentials", SRV_ROUTE_CREDENTIALS, "POST" },
};

gboolean
srv_route_match (const char *path,
                 SrvRoute   *route)
{
  g_return_val_if_fail (path != NULL && route != NULL, FALSE);

  memset (route, 0, sizeof *route);
  for (gsize i = 0; i < G_N_ELEMENTS (fixed_routes); i++)
    if (strcmp (path, fixed_routes[i].path) == 0)
      {
        route->id = fixed_routes[i].id;
        route->allow = fixed_routes[i].allow;
        return TRUE;
      }
  return FALSE;
}

gboolean
srv_route_allows (const SrvRoute *route,
                  const char     *method)
{
  const char *p;
  gsize len;

  g_return_val_if_fail (route != NULL && route->allow != NULL && method != NULL, FALSE);

  len = strlen (method);
  if (len == 0)
    return FALSE;
  for (p = route->allow; (p = strstr (p, method)) != NULL; p += len)
    if ((p == route->allow || p[-1] == ' ') && (p[len] == ',' || p[len] == '\0'))
      return TRUE;
  return FALSE;
}

void
srv_route_clear (SrvRoute *route)
{
  g_clear_pointer (&route->param, g_free);
}
