/* test-identity.c - the guest identity and accounts in the keyring (or in memory), temporary
 * credentials, and signing in and out from Preferences */
#include "config.h"

#include <string.h>

#include "app-test-util.h"
#include "magpie-credentials.h"
#include "magpie-identity.h"
#include "magpie-preferences-window.h"
#include "magpie-resources.h"

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
  g_assert_cmpstr (schema->attributes[2].name, ==, "username");
  g_assert_null (schema->attributes[3].name);
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

static gboolean
is_in_keyring (gpointer user_data)
{
  return magpie_identity_get_in_keyring (user_data);
}

/* The secret the Secret Service holds for @server_url and @id, read by another client (libsecret
 * through Python's GObject bindings, in a process of its own); NULL when it holds none. */
static char *
lookup_with_python (const char *server_url,
                    const char *id)
{
  const char *script =
    "import sys, gi\n"
    "gi.require_version('Secret', '1')\n"
    "from gi.repository import Secret\n"
    "schema = Secret.Schema.new(sys.argv[1], Secret.SchemaFlags.NONE,\n"
    "    {'server': Secret.SchemaAttributeType.STRING,\n"
    "     'identity-id': Secret.SchemaAttributeType.STRING})\n"
    "secret = Secret.password_lookup_sync(schema, {'server': sys.argv[2],\n"
    "                                               'identity-id': sys.argv[3]}, None)\n"
    "sys.stdout.write(secret if secret is not None else '')\n";
  const char *argv[] = { "/usr/bin/python3", "-c", script, APPLICATION_ID ".Identity",
                         server_url, id, NULL };
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  g_autoptr(GError) error = NULL;
  int status = 0;

  g_assert_true (g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_DEFAULT, NULL, NULL, &out,
                               &err, &status, &error));
  g_assert_no_error (error);
  if (!g_spawn_check_wait_status (status, NULL))
    g_error ("python3 could not ask the Secret Service: %s", err);
  return *out != '\0' ? g_steal_pointer (&out) : NULL;
}

/* A real Secret Service (gnome-keyring, unlocked, as tests/with-display.sh starts it): the
 * guest identity's secret is stored there, another client reads the same secret back, a new
 * run finds the same identity, and the secret is in no file, the keyring's own included. */
static void
test_keyring (void)
{
  g_autoptr(AppTestServer) server = NULL;
  g_autoptr(SoupSession) session = soup_session_new ();
  g_autoptr(MagpieIdentity) identity = magpie_identity_new (session);
  g_autoptr(MagpieIdentity) next_run = magpie_identity_new (session);
  g_autoptr(GError) error = NULL;
  g_autofree char *stored = NULL;
  g_autofree char *home = NULL;
  guint told = 0;

  if (!g_file_test ("/usr/bin/python3", G_FILE_TEST_IS_EXECUTABLE) ||
      g_getenv ("XDG_RUNTIME_DIR") == NULL ||
      !g_file_test (g_getenv ("XDG_RUNTIME_DIR"), G_FILE_TEST_IS_DIR))
    {
      g_test_skip ("no python3 to read the keyring back with, or no runtime dir");
      return;
    }
  home = app_test_isolate_dirs ();
  server = app_test_server_start ();
  g_signal_connect (identity, "keyring-unavailable", G_CALLBACK (count_cb), &told);
  g_assert_true (ensure (identity, server->url, &error));
  g_assert_no_error (error);
  if (!app_test_wait (is_in_keyring, identity, 20000) && told > 0)
    {
      /* No Secret Service here (gnome-keyring is not installed): the memory test covers it. */
      g_test_skip ("no Secret Service in this session");
      mp_test_rm_rf (home);
      return;
    }
  g_assert_true (magpie_identity_get_in_keyring (identity));
  g_assert_cmpuint (told, ==, 0);

  stored = lookup_with_python (server->url, magpie_identity_get_id (identity));
  g_assert_cmpstr (stored, ==, magpie_identity_get_secret (identity));

  /* The next run of the app: the same identity, from the keyring, not a new guest. */
  g_assert_true (ensure (next_run, server->url, &error));
  g_assert_no_error (error);
  g_assert_cmpstr (magpie_identity_get_id (next_run), ==, magpie_identity_get_id (identity));
  g_assert_cmpstr (magpie_identity_get_secret (next_run), ==, stored);
  g_assert_true (magpie_identity_get_in_keyring (next_run));
  check_credentials (next_run, server->url);

  /* In no file: not the app's (its data, config and cache dirs), not the server's (which keeps
   * a hash), not the keyring's (which keeps it encrypted), nothing in the session's runtime
   * dir. The search itself finds a planted copy. */
  g_assert_cmpuint (app_test_files_containing (home, stored), ==, 0);
  g_assert_cmpuint (app_test_files_containing (server->data_dir, stored), ==, 0);
  g_assert_cmpuint (app_test_files_containing (g_getenv ("XDG_RUNTIME_DIR"), stored), ==, 0);
  {
    g_autofree char *planted = g_build_filename (home, "data", "planted", NULL);

    g_assert_true (g_file_set_contents (planted, stored, -1, NULL));
    g_assert_cmpuint (app_test_files_containing (home, stored), ==, 1);
  }
  mp_test_rm_rf (home);
}

static gboolean
has_username (gpointer user_data)
{
  return magpie_identity_get_username (user_data) != NULL;
}

static gboolean
has_no_username (gpointer user_data)
{
  return magpie_identity_get_username (user_data) == NULL;
}

static gboolean
is_sensitive (gpointer user_data)
{
  return gtk_widget_get_sensitive (user_data);
}

static gboolean
visible_and_sensitive (gpointer user_data)
{
  return gtk_widget_get_visible (user_data) && gtk_widget_get_sensitive (user_data);
}

/* As a click: GtkButton's activate emits "clicked" only after a short press animation. */
static void
click (GtkButton *button)
{
  g_assert_true (gtk_widget_get_visible (GTK_WIDGET (button)));
  g_assert_true (gtk_widget_get_sensitive (GTK_WIDGET (button)));
  g_signal_emit_by_name (button, "clicked");
}

static void
type_login (GtkEditable *username,
            GtkEditable *password,
            const char  *name,
            const char  *secret)
{
  gtk_editable_set_text (username, name);
  gtk_editable_set_text (password, secret);
}

/* Preferences → Account, driven through its widgets against a real magpied and keyring: create
 * an account (the identity, its credentials and its keyring item become the account's; the guest
 * item is gone), a new run finds the account, Sign Out makes a new guest, a wrong password is
 * refused and changes nothing, Sign In finds the account again. The password is in no file. */
static void
test_account (void)
{
  g_autoptr(AppTestServer) server = NULL;
  g_autoptr(SoupSession) session = soup_session_new ();
  g_autoptr(MagpieIdentity) identity = magpie_identity_new (session);
  g_autoptr(MagpieCredentials) credentials = magpie_credentials_new (session, identity);
  g_autoptr(GSettings) settings = g_settings_new (APPLICATION_ID);
  g_autoptr(GError) error = NULL;
  g_autoptr(MagpieS3Credentials) guest_creds = NULL;
  g_autoptr(MagpieS3Credentials) account_creds = NULL;
  g_autofree char *home = NULL;
  g_autofree char *guest_id = NULL;
  g_autofree char *account_id = NULL;
  g_autofree char *account_secret = NULL;
  g_autofree char *name = g_strdup_printf ("alice%u", g_random_int_range (0, 1000000));
  g_autofree char *prefix = NULL;
  const char *password = "correct horse battery";
  MagpiePreferencesWindow *window;
  GtkEditable *username_entry, *password_entry;
  GtkButton *sign_in, *create_account, *sign_out;

  if (g_getenv ("XDG_RUNTIME_DIR") == NULL ||
      !g_file_test (g_getenv ("XDG_RUNTIME_DIR"), G_FILE_TEST_IS_DIR))
    {
      g_test_skip ("no runtime dir: no Secret Service session");
      return;
    }
  home = app_test_isolate_dirs ();
  server = app_test_server_start ();
  g_settings_set_string (settings, "server-url", server->url);
  g_assert_true (ensure (identity, server->url, &error));
  g_assert_no_error (error);
  if (!app_test_wait (is_in_keyring, identity, 20000))
    {
      g_test_skip ("no Secret Service in this session");
      mp_test_rm_rf (home);
      return;
    }
  guest_id = g_strdup (magpie_identity_get_id (identity));
  g_assert_null (magpie_identity_get_username (identity));
  guest_creds = get_credentials (credentials, server->url);

  window = magpie_preferences_window_new (settings, identity);
  gtk_window_present (GTK_WINDOW (window));
  magpie_preferences_window_get_account_widgets (window, &username_entry, &password_entry,
                                                 &sign_in, &create_account, &sign_out);
  g_assert_false (gtk_widget_get_visible (GTK_WIDGET (sign_out)));
  g_assert_false (gtk_widget_get_sensitive (GTK_WIDGET (create_account)));

  /* Create Account: the identity becomes the account's. */
  type_login (username_entry, password_entry, name, password);
  g_assert_true (gtk_widget_get_sensitive (GTK_WIDGET (create_account)));
  click (create_account);
  g_assert_true (app_test_wait (has_username, identity, 20000));
  g_assert_cmpstr (magpie_identity_get_username (identity), ==, name);
  account_id = g_strdup (magpie_identity_get_id (identity));
  account_secret = g_strdup (magpie_identity_get_secret (identity));
  g_assert_cmpstr (account_id, !=, guest_id);
  g_assert_cmpstr (gtk_editable_get_text (password_entry), ==, "");
  g_assert_true (gtk_widget_get_visible (GTK_WIDGET (sign_out)));
  g_assert_false (gtk_widget_get_visible (GTK_WIDGET (username_entry)));

  /* Its credentials reach its own prefix, not the guest's. */
  account_creds = get_credentials (credentials, server->url);
  prefix = g_strdup_printf ("users/%s/", account_id);
  g_assert_cmpstr (account_creds->prefix, ==, prefix);
  g_assert_cmpstr (account_creds->prefix, !=, guest_creds->prefix);

  /* The keyring holds the account's identity for this server, and the guest's no more. */
  g_assert_true (app_test_wait (is_in_keyring, identity, 20000));
  {
    g_autofree char *stored = lookup_with_python (server->url, account_id);
    g_autofree char *guest_stored = lookup_with_python (server->url, guest_id);

    g_assert_cmpstr (stored, ==, account_secret);
    g_assert_null (guest_stored);
  }

  /* The next run is signed in. */
  {
    g_autoptr(MagpieIdentity) next_run = magpie_identity_new (session);

    g_assert_true (ensure (next_run, server->url, &error));
    g_assert_no_error (error);
    g_assert_cmpstr (magpie_identity_get_id (next_run), ==, account_id);
    g_assert_cmpstr (magpie_identity_get_username (next_run), ==, name);
  }

  /* Sign Out: a new guest at the next use, and the account's item is gone. */
  g_assert_true (app_test_wait (visible_and_sensitive, sign_out, 20000));
  click (sign_out);
  g_assert_true (app_test_wait (has_no_username, identity, 20000));
  g_assert_true (ensure (identity, server->url, &error));
  g_assert_no_error (error);
  g_assert_cmpstr (magpie_identity_get_id (identity), !=, account_id);
  g_assert_cmpstr (magpie_identity_get_id (identity), !=, guest_id);
  g_assert_true (app_test_wait (is_in_keyring, identity, 20000));
  {
    g_autofree char *stored = lookup_with_python (server->url, account_id);

    g_assert_null (stored);
  }

  /* A wrong password is refused and changes nothing; the typed password stays to be fixed. */
  {
    g_autofree char *second_guest = g_strdup (magpie_identity_get_id (identity));

    type_login (username_entry, password_entry, name, "not the password");
    g_assert_true (app_test_wait (is_sensitive, sign_in, 20000));
    click (sign_in);
    g_assert_false (gtk_widget_get_sensitive (GTK_WIDGET (sign_in)));
    g_assert_true (app_test_wait (is_sensitive, sign_in, 20000));
    g_assert_null (magpie_identity_get_username (identity));
    g_assert_cmpstr (magpie_identity_get_id (identity), ==, second_guest);
    g_assert_cmpstr (gtk_editable_get_text (password_entry), ==, "not the password");
  }

  /* Sign In with the right one: the same account as before. */
  type_login (username_entry, password_entry, name, password);
  click (sign_in);
  g_assert_true (app_test_wait (has_username, identity, 20000));
  g_assert_cmpstr (magpie_identity_get_id (identity), ==, account_id);

  /* Neither the password nor the account's secret is in any file of the app or the session. */
  g_assert_true (app_test_wait (is_in_keyring, identity, 20000));
  g_assert_cmpuint (app_test_files_containing (home, password), ==, 0);
  g_assert_cmpuint (app_test_files_containing (g_getenv ("XDG_RUNTIME_DIR"), password), ==, 0);
  g_assert_cmpuint (app_test_files_containing (home, account_secret), ==, 0);

  app_test_close_all ();
  g_settings_reset (settings, "server-url");
  mp_test_rm_rf (home);
}

int
main (int   argc,
      char *argv[])
{
  gtk_test_init (&argc, &argv, NULL);
  /* The Preferences window without an application: its template and style by hand. */
  adw_init ();
  magpie_register_resource ();

  g_test_add_func ("/app/identity/schema", test_schema);
  g_test_add_func ("/app/identity/memory", test_memory);
  g_test_add_func ("/app/identity/keyring", test_keyring);
  g_test_add_func ("/app/identity/account", test_account);
  return g_test_run ();
}
