/* test-route.c - the /v1 route table, without sockets */
#include "config.h"

#include "srv-route.h"

static void
test_route_fixed (void)
{
  static const struct {
    const char *path;
    SrvRouteId  id;
    const char *allow;
  } cases[] = {
    { "/v1/identities",  SRV_ROUTE_IDENTITIES,  "POST" },
    { "/v1/accounts",    SRV_ROUTE_ACCOUNTS,    "POST" },
    { "/v1/sessions",    SRV_ROUTE_SESSIONS,    "POST" },
    { "/v1/credentials", SRV_ROUTE_CREDENTIALS, "POST" },
    { "/v1/photos",      SRV_ROUTE_PHOTOS,      "GET, POST" },
    { "/v1/s3-events",   SRV_ROUTE_S3_EVENTS,   "POST" },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      SrvRoute route;

      g_assert_true (srv_route_match (cases[i].path, &route));
      g_assert_cmpint (route.id, ==, cases[i].id);
      g_assert_cmpstr (route.allow, ==, cases[i].allow);
      g_assert_null (route.param);
      srv_route_clear (&route);
    }
}

static void
test_route_not_found (void)
{
  static const char *paths[] = {
    "", "/", "/v1", "/v1/", "/v1/identities/", "/v1/identitiesx", "/v1/Identities",
    "/v2/identities", "/v1//identities", "/v1/credentials/x", "/v1/nothing-here",
    "/v1/photos/", "/v1/photos/a/b", "/v1/photos/a/", "/v1/photos/..", "/v1/photos/a.b",
    "/v1/photos/a%2Fb", "/v1/photos/\xc3\xa9",
    "/v1/photos/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
  };

  for (gsize i = 0; i < G_N_ELEMENTS (paths); i++)
    {
      SrvRoute route;

      g_assert_false (srv_route_match (paths[i], &route));
      g_assert_null (route.param);
    }
}

static void
test_route_photo (void)
{
  g_autofree char *longest = g_strnfill (64, 'z');
  g_autofree char *path = g_strconcat ("/v1/photos/", longest, NULL);
  SrvRoute route;

  g_assert_true (srv_route_match ("/v1/photos/AbC-_09", &route));
  g_assert_cmpint (route.id, ==, SRV_ROUTE_PHOTO);
  g_assert_cmpstr (route.param, ==, "AbC-_09");
  g_assert_cmpstr (route.allow, ==, "GET, DELETE");
  g_assert_true (srv_route_allows (&route, "GET"));
  g_assert_true (srv_route_allows (&route, "DELETE"));
  g_assert_false (srv_route_allows (&route, "POST"));
  g_assert_false (srv_route_allows (&route, "ET"));
  srv_route_clear (&route);
  g_assert_null (route.param);

  g_assert_true (srv_route_match (path, &route));
  g_assert_cmpstr (route.param, ==, longest);
  srv_route_clear (&route);
}

static void
test_route_methods (void)
{
  SrvRoute route;

  g_assert_true (srv_route_match ("/v1/credentials", &route));
  g_assert_true (srv_route_allows (&route, "POST"));
  g_assert_false (srv_route_allows (&route, "GET"));
  g_assert_false (srv_route_allows (&route, "POS"));
  g_assert_false (srv_route_allows (&route, "OST"));
  g_assert_false (srv_route_allows (&route, "post"));
  g_assert_false (srv_route_allows (&route, ""));
  srv_route_clear (&route);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/srv/route/fixed", test_route_fixed);
  g_test_add_func ("/srv/route/not-found", test_route_not_found);
  g_test_add_func ("/srv/route/photo", test_route_photo);
  g_test_add_func ("/srv/route/methods", test_route_methods);
  return g_test_run ();
}
