/* srv-route.c - the /v1 route table: path → endpoint, endpoint → methods */
#include "config.h"

#include "srv-route.h"

#include <string.h>

#define SRV_ROUTE_PARAM_MAX 64

static const struct {
  const char *path;
  SrvRouteId  id;
  const char *allow;
} fixed_routes[] = {
  { "/v1/identities",  SRV_ROUTE_IDENTITIES,  "POST" },
  { "/v1/accounts",    SRV_ROUTE_ACCOUNTS,    "POST" },
  { "/v1/sessions",    SRV_ROUTE_SESSIONS,    "POST" },
  { "/v1/credentials", SRV_ROUTE_CREDENTIALS, "POST" },
  { "/v1/photos",      SRV_ROUTE_PHOTOS,      "GET, POST" },
  { "/v1/s3-events",   SRV_ROUTE_S3_EVENTS,   "POST" },
};

static gboolean
param_is_valid (const char *s)
{
  gsize len = strlen (s);

  if (len == 0 || len > SRV_ROUTE_PARAM_MAX)
    return FALSE;
  for (; *s; s++)
    if (!g_ascii_isalnum (*s) && *s != '-' && *s != '_')
      return FALSE;
  return TRUE;
}

gboolean
srv_route_match (const char *path,
                 SrvRoute   *route)
{
  const char *photo_prefix = "/v1/photos/";

  g_return_val_if_fail (path != NULL && route != NULL, FALSE);

  memset (route, 0, sizeof *route);
  for (gsize i = 0; i < G_N_ELEMENTS (fixed_routes); i++)
    if (strcmp (path, fixed_routes[i].path) == 0)
      {
        route->id = fixed_routes[i].id;
        route->allow = fixed_routes[i].allow;
        return TRUE;
      }
  if (g_str_has_prefix (path, photo_prefix) && param_is_valid (path + strlen (photo_prefix)))
    {
      route->id = SRV_ROUTE_PHOTO;
      route->allow = "GET, DELETE";
      route->param = g_strdup (path + strlen (photo_prefix));
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
