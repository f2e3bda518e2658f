/* test-identity.c - the guest identity in the keyring (or in memory) and temporary credentials */
#include "config.h"

#include <string.h>

#include "app-test-util.h"
#include "magpie-credentials.h"
#include "magpie-identity.h"

typedef struct {
  GAsyncResult *result;
} Wait;

static gboolean
have_result (gpointer user_data)
{
  return ((Wait *) user_data)->result != NULL;
}

static void
result_cb (GObject      *object,
           GAsyncResult *result,
           gpointer      user_data)
{
  ((Wait *) user_data)->result = g_object_ref (result);
}

static gboolean
ensure (MagpieIdentity *identity,
        const char     *url,
        GError        **error)
{
  Wait wait = { NULL };
  gboolean ok;

  magpie_identity_ensure_async (identity, url, NULL, result_cb, &wait);
  g_assert_true (app_test_wait (have_result, &wait, 20000));
  ok = magpie_identity_ensure_finish (identity, wait.result, error);
  g_object_unref (wait.result);
  return ok;
}

static MagpieS3Credentials *
get_credentials (MagpieCredentials *credentials,
                 const char        *url)
{
  Wait wait = { NULL };
  g_autoptr(GError) error = NULL;
  MagpieS3Credentials *c;

  magpie_credentials_get_async (credentials, url, NULL, result_cb, &wait);
  g_assert_true (app_test_wait (have_result, &wait, 20000));
  c = magpie_credentials_get_finish (credentials, wait.result, &error);
  g_assert_no_error (error);
  g_object_unref (wait.result);
  return c;
}

static void
count_cb (MagpieIdentity *identity,
          gpointer        user_data)
{
  (*(guint *) user_data)++;
}

static void
test_schema (void)
{
  const SecretSchema *schema = magpie_identity_get_schema ();

  g_assert_cmpstr (schema->name, ==, APPLICATION_ID ".Identity");
  g_assert_cmpstr (schema->attributes[0].name, ==, "server");
  g_assert_cmpstr (schema->attributes[1].name, ==, "identity-id");
  g_assert_null (schema->attributes[2].name);
}

/* The credentials are real (the server accepts them for the identity's prefix), cached, and
 * shared between callers. */
static void
check_credentials (MagpieIdentity *identity,
                   const char     *url)
{
  g_autoptr(SoupSession) session = soup_session_new ();
  g_autoptr(MagpieCredentials) credentials = magpie_credentials_new (session, identity);
  g_autoptr(MagpieS3Credentials) first = get_credentials (credentials, url);
  g_autoptr(MagpieS3Credentials) second = NULL;
  g_autofree char *prefix = g_strdup_printf ("users/%s/", magpie_identity_get_id (identity));

  g_assert_cmpstr (first->prefix, ==, prefix);
  g_assert_true (g_str_has_prefix (first->access_key_id, "ASIA"));
  /* The embedded store's session token is also the REST bearer, and the server says so. */
  g_assert_cmpstr (first->api_token, ==, first->session_token);
  g_assert_cmpint (first->expiration, >, g_get_real_time () / G_USEC_PER_SEC + 900 - 60);
  g_assert_cmpuint (magpie_credentials_get_n_fetched (credentials), ==, 1);
  second = get_credentials (credentials, url);
  g_assert_true (first == second);
  g_assert_cmpuint (magpie_credentials_get_n_fetched (credentials), ==, 1);

  /* Past the margin before expiry they are fetched again. */
  first->expiration = g_get_real_time () / G_USEC_PER_SEC + MAGPIE_CREDENTIALS_MARGIN_S - 1;
  g_clear_pointer (&second, magpie_s3_credentials_unref);
  second = get_credentials (credentials, url);
  g_assert_true (first != second);
  g_assert_cmpuint (magpie_credentials_get_n_fetched (credentials), ==, 2);
}

/* No Secret Service (the session bus is unreachable): the identity works for the session,
 * is not persistent, and the app is told once. */
static void
test_memory (void)
{
  if (g_test_subprocess ())
    {
      g_autoptr(AppTestServer) server = app_test_server_start ();
      g_autoptr(SoupSession) session = soup_session_new ();
      g_autoptr(MagpieIdentity) identity = magpie_identity_new (session);
      g_autoptr(MagpieIdentity) again = magpie_identity_new (session);
      g_autoptr(GError) error = NULL;
      g_autofree char *first_id = NULL;
      guint told = 0;

      g_signal_connect (identity, "keyring-unavailable", G_CALLBACK (count_cb), &told);
      g_assert_true (ensure (identity, server->url, &error));
      g_assert_no_error (error);
      g_assert_nonnull (magpie_identity_get_id (identity));
      g_assert_cmpuint (strlen (magpie_identity_get_secret (identity)), >=, 16);
      g_assert_false (magpie_identity_get_in_keyring (identity));
      g_assert_cmpuint (told, ==, 1);
      first_id = g_strdup (magpie_identity_get_id (identity));
      g_assert_true (ensure (identity, server->url, &error));
      g_assert_cmpstr (magpie_identity_get_id (identity), ==, first_id);
      g_assert_cmpuint (told, ==, 1);

      /* Nothing kept it: another run is another guest. */
      g_assert_true (ensure (again, server->url, &error));
      g_assert_cmpstr (magpie_identity_get_id (again), !=, first_id);

      check_credentials (identity, server->url);
      return;
    }
  {
    g_autofree char *bus = g_strdup (g_getenv ("DBUS_SESSION_BUS_ADDRESS"));

    /* The child inherits the environment (GLib 2.74 has no per-child environment here). */
    g_setenv ("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/magpie-test-bus", TRUE);
    g_test_trap_subprocess (NULL, 60 * G_USEC_PER_SEC, G_TEST_SUBPROCESS_INHERIT_STDERR);
    if (bus != NULL)
      g_setenv ("DBUS_SESSION_BUS_ADDRESS", bus, TRUE);
    else
      g_unsetenv ("DBUS_SESSION_BUS_ADDRESS");
    g_test_trap_assert_passed ();
  }
}

int
main (int   argc,
      char *argv[])
{
  gtk_test_init (&argc, &argv, NULL);

  g_test_add_func ("/app/identity/schema", test_schema);
  g_test_add_func ("/app/identity/memory", test_memory);
  return g_test_run ();
}
