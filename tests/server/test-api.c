/* test-api.c - the REST API under /v1 against a real magpied on loopback */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "mp-test-util.h"
#include "srv-api.h"
#include "srv-db.h"
#include "srv-token.h"


/* The server's signing keys as it holds them: the data dir's keyring file, or with a shared
 * (PostgreSQL) catalog the keyring stored in it. */
static gboolean
load_server_keyring (MpTestServer *server, SrvKeyring *keyring, gint64 now, GError **error)
{
  g_autofree char *keyring_path = g_build_filename (server->data_dir, "keyring", NULL);
  g_autoptr(SrvDb) db = NULL;
  g_autofree char *text = NULL;

  if (!mp_test_db_is_postgresql ())
    return srv_keyring_load (keyring, keyring_path, now, error);
  g_assert_false (g_file_test (keyring_path, G_FILE_TEST_EXISTS));
  db = srv_db_open (server->database, error);
  if (db == NULL)
    return FALSE;
  /* The server stored it at start-up; this proposal is never written. */
  text = srv_db_setting_once (db, "token-keyring", "unused", error);
  g_assert_cmpstr (text, !=, "unused");
  return text != NULL && srv_keyring_load_text (keyring, text, "catalog", now, error);
}

typedef struct {
  MpTestServer *server;
  SoupSession  *session;
  char         *retry_after;   /* of the last response, or NULL */
  char         *allow;
} Fixture;

static void
fixture_start (Fixture     *f,
               const char **args)
{
  g_autoptr(GError) error = NULL;

  f->server = mp_test_server_start (NULL, args, &error);
  g_assert_no_error (error);
  f->session = soup_session_new ();
}

static void
fixture_setup (Fixture       *f,
               gconstpointer  data)
{
  fixture_start (f, (const char **) data);
}

static void
fixture_teardown (Fixture       *f,
                  gconstpointer  data)
{
  g_clear_object (&f->session);
  g_clear_pointer (&f->server, mp_test_server_free);
  g_clear_pointer (&f->retry_after, g_free);
  g_clear_pointer (&f->allow, g_free);
}

/* Sends @body (NULL for none) to @path with an optional bearer @token; returns the parsed JSON
 * answer (NULL when it is not JSON) and keeps its Retry-After and Allow headers. */
static JsonNode *
call (Fixture     *f,
      const char  *method,
      const char  *path,
      const char  *token,
      const char  *body,
      guint       *status)
{
  g_autofree char *url = g_strconcat (f->server->url, path, NULL);
  SoupMessageHeaders *headers = NULL;
  JsonNode *node = mp_test_http_call (f->session, method, url, token, body, status, &headers);

  g_free (f->retry_after);
  f->retry_after = g_strdup (soup_message_headers_get_one (headers, "Retry-After"));
  g_free (f->allow);
  f->allow = g_strdup (soup_message_headers_get_one (headers, "Allow"));
  soup_message_headers_unref (headers);
  return node;
}

/* Asserts @node is the error envelope with @code. */
static void
assert_error (JsonNode   *node,
              const char *code)
{
  JsonObject *error;

  g_assert_nonnull (node);
  g_assert_true (JSON_NODE_HOLDS_OBJECT (node));
  error = json_object_get_object_member (json_node_get_object (node), "error");
  g_assert_nonnull (error);
  g_assert_cmpstr (json_object_get_string_member (error, "code"), ==, code);
  g_assert_true (strlen (json_object_get_string_member (error, "message")) > 0);
}

static void
expect_error (Fixture    *f,
              const char *method,
              const char *path,
              const char *token,
              const char *body,
              guint       want_status,
              const char *want_code)
{
  guint status = 0;
  g_autoptr(JsonNode) node = call (f, method, path, token, body, &status);

  if (status != want_status)
    g_error ("%s %s %s: status %u, expected %u", method, path, body ? body : "", status,
             want_status);
  assert_error (node, want_code);
}

/* A new guest: fills @identity_id and @secret. */
static void
new_guest (Fixture  *f,
           char    **identity_id,
           char    **secret)
{
  guint status = 0;
  g_autoptr(JsonNode) node = call (f, "POST", "/v1/identities", NULL, NULL, &status);
  JsonObject *o;

  g_assert_cmpuint (status, ==, 201);
  o = json_node_get_object (node);
  *identity_id = g_strdup (json_object_get_string_member (o, "identity_id"));
  *secret = g_strdup (json_object_get_string_member (o, "secret"));
}

static char *
credentials_body (const char *identity_id,
                  const char *secret,
                  gint64      duration)
{
  if (duration > 0)
    return g_strdup_printf ("{\"identity_id\":\"%s\",\"secret\":\"%s\",\"duration_seconds\":%"
                            G_GINT64_FORMAT "}", identity_id, secret, duration);
  return g_strdup_printf ("{\"identity_id\":\"%s\",\"secret\":\"%s\"}", identity_id, secret);
}

static char *
metrics_text (Fixture *f)
{
  g_autofree char *url = g_strconcat (f->server->url, "/metrics", NULL);
  guint status = 0;
  char *text = mp_test_http_text (f->session, "GET", url, &status);

  g_assert_cmpuint (status, ==, 200);
  return text;
}

static gboolean
contains (const char *haystack,
          gsize       len,
          const char *needle)
{
  gsize n = strlen (needle);

  for (gsize i = 0; i + n <= len; i++)
    if (memcmp (haystack + i, needle, n) == 0)
      return TRUE;
  return FALSE;
}

/* Pure helpers */

static void
test_secret_helpers (void)
{
  g_autofree char *a = srv_api_new_secret ();
  g_autofree char *b = srv_api_new_secret ();
  g_autofree char *hash = srv_api_hash_secret (a);
  g_autofree char *tampered = g_strdup (a);
  g_autofree char *t = NULL;

  g_assert_cmpuint (strlen (a), ==, SRV_API_SECRET_LEN);
  g_assert_cmpstr (a, !=, b);
  for (const char *p = a; *p; p++)
    g_assert_true (g_ascii_isalnum (*p) || *p == '-' || *p == '_');
  g_assert_cmpuint (strlen (hash), ==, 64);
  g_assert_true (srv_api_check_secret (hash, a));
  g_assert_false (srv_api_check_secret (hash, b));
  tampered[0] = tampered[0] == 'A' ? 'B' : 'A';
  g_assert_false (srv_api_check_secret (hash, tampered));
  g_assert_false (srv_api_check_secret (NULL, a));
  g_assert_false (srv_api_check_secret ("", a));
  g_assert_false (srv_api_check_secret ("zz", a));
  /* The well-known SHA-256 of "abc". */
  g_clear_pointer (&hash, g_free);
  hash = srv_api_hash_secret ("abc");
  g_assert_cmpstr (hash, ==, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");

  t = srv_api_format_time (0);
  g_assert_cmpstr (t, ==, "1970-01-01T00:00:00Z");
  g_clear_pointer (&t, g_free);
  t = srv_api_format_time (1735787045);
  g_assert_cmpstr (t, ==, "2025-01-02T03:04:05Z");
}

/* Identities */

static void
test_identities_create (Fixture       *f,
                        gconstpointer  data)
{
  g_autofree char *id1 = NULL;
  g_autofree char *secret1 = NULL;
  g_autofree char *id2 = NULL;
  g_autofree char *secret2 = NULL;

  new_guest (f, &id1, &secret1);
  new_guest (f, &id2, &secret2);
  g_assert_true (srv_identity_id_is_valid (id1));
  g_assert_cmpuint (strlen (secret1), ==, SRV_API_SECRET_LEN);
  g_assert_cmpstr (id1, !=, id2);
  g_assert_cmpstr (secret1, !=, secret2);

  /* Only the hash is stored: the secret appears nowhere in the catalog. */
  if (mp_test_db_is_postgresql ())
    {
      PGconn *pg = PQconnectdb (f->server->database);
      PGresult *r = PQexec (pg, "SELECT string_agg (i::text, ' ') FROM identities i");

      g_assert_cmpint (PQresultStatus (r), ==, PGRES_TUPLES_OK);
      g_assert_nonnull (strstr (PQgetvalue (r, 0, 0), id1));  /* the dump does hold the rows */
      g_assert_null (strstr (PQgetvalue (r, 0, 0), secret1));
      PQclear (r);
      PQfinish (pg);
    }
  else
  {
    g_autofree char *catalog = g_build_filename (f->server->data_dir, "catalog.db", NULL);
    g_autofree char *wal = g_strconcat (catalog, "-wal", NULL);
    g_autofree char *bytes = NULL;
    gsize len = 0;

    for (int i = 0; i < 2; i++)
      if (g_file_get_contents (i == 0 ? catalog : wal, &bytes, &len, NULL))
        {
          g_assert_false (contains (bytes, len, secret1));
          g_clear_pointer (&bytes, g_free);
        }
  }

  expect_error (f, "GET", "/v1/identities", NULL, NULL, 405, "method_not_allowed");
  expect_error (f, "DELETE", "/v1/identities", NULL, NULL, 405, "method_not_allowed");
  expect_error (f, "POST", "/v1/identities/x", NULL, NULL, 404, "not_found");
  expect_error (f, "POST", "/v1/", NULL, NULL, 404, "not_found");
}

static void
test_identities_guests_off (Fixture       *f,
                            gconstpointer  data)
{
  expect_error (f, "POST", "/v1/identities", NULL, NULL, 403, "guests_disabled");
}

/* Credentials */

static void
check_credentials (Fixture    *f,
                   JsonObject *o,
                   const char *identity_id,
                   gint64      lifetime)
{
  g_autofree char *prefix = g_strdup_printf ("users/%s/", identity_id);
  g_autoptr(GDateTime) expiration = NULL;
  g_autoptr(SrvKeyring) keyring = srv_keyring_new ();
  g_autoptr(SrvCredentials) verified = NULL;
  g_autoptr(GError) error = NULL;
  gint64 now = g_get_real_time () / G_USEC_PER_SEC;
  gint64 exp;

  g_assert_true (g_str_has_prefix (json_object_get_string_member (o, "access_key_id"), "ASIA"));
  g_assert_cmpuint (strlen (json_object_get_string_member (o, "access_key_id")), ==, 20);
  g_assert_cmpuint (strlen (json_object_get_string_member (o, "secret_access_key")), ==, 40);
  g_assert_cmpstr (json_object_get_string_member (o, "endpoint"), ==, f->server->url);
  g_assert_cmpstr (json_object_get_string_member (o, "region"), ==, "us-east-1");
  g_assert_cmpstr (json_object_get_string_member (o, "bucket"), ==, "magpie");
  g_assert_cmpstr (json_object_get_string_member (o, "prefix"), ==, prefix);

  expiration = g_date_time_new_from_iso8601 (json_object_get_string_member (o, "expiration"),
                                             NULL);
  g_assert_nonnull (expiration);
  g_assert_true (g_str_has_suffix (json_object_get_string_member (o, "expiration"), "Z"));
  exp = g_date_time_to_unix (expiration);
  g_assert_cmpint (exp, >=, now + lifetime - 5);
  g_assert_cmpint (exp, <=, now + lifetime + 5);

  /* A real token: the server's keyring verifies it, for this identity and this prefix. */
  g_assert_true (load_server_keyring (f->server, keyring, now, &error));
  g_assert_no_error (error);
  verified = srv_credentials_verify (keyring, json_object_get_string_member (o, "session_token"),
                                     now, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (verified->identity_id, ==, identity_id);
  g_assert_cmpstr (verified->prefix, ==, prefix);
  g_assert_cmpstr (verified->access_key_id, ==, json_object_get_string_member (o, "access_key_id"));
  g_assert_cmpstr (verified->secret_access_key, ==,
                   json_object_get_string_member (o, "secret_access_key"));
  g_assert_cmpint (verified->expires_at, ==, exp);
}

static void
test_credentials_ok (Fixture       *f,
                     gconstpointer  data)
{
  g_autofree char *id = NULL;
  g_autofree char *secret = NULL;
  static const gint64 lifetimes[] = { 0, 900, 43200 };

  new_guest (f, &id, &secret);
  for (gsize i = 0; i < G_N_ELEMENTS (lifetimes); i++)
    {
      g_autofree char *body = credentials_body (id, secret, lifetimes[i]);
      guint status = 0;
      g_autoptr(JsonNode) node = call (f, "POST", "/v1/credentials", NULL, body, &status);

      g_assert_cmpuint (status, ==, 200);
      check_credentials (f, json_node_get_object (node), id,
                         lifetimes[i] ? lifetimes[i] : 3600);
    }
}

/* After a restart the identity cache is cold: the catalog path must answer the same. */
static void
test_credentials_after_restart (Fixture       *f,
                                gconstpointer  data)
{
  g_autofree char *id = NULL;
  g_autofree char *secret = NULL;
  g_autofree char *good = NULL;
  g_autofree char *bad = NULL;
  g_autofree char *dir = NULL;
  const char *args[] = { NULL };
  g_autoptr(GError) error = NULL;
  guint status = 0;

  new_guest (f, &id, &secret);
  good = credentials_body (id, secret, 0);
  bad = credentials_body (id, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", 0);

  /* Keep the data directory across the restart. */
  dir = g_strdup (f->server->data_dir);
  f->server->own_data_dir = FALSE;
  mp_test_server_free (f->server);
  f->server = mp_test_server_start (dir, args, &error);
  g_assert_no_error (error);
  f->server->own_data_dir = TRUE;

  expect_error (f, "POST", "/v1/credentials", NULL, bad, 401, "not_authorized");
  {
    g_autoptr(JsonNode) node = call (f, "POST", "/v1/credentials", NULL, good, &status);

    g_assert_cmpuint (status, ==, 200);
    check_credentials (f, json_node_get_object (node), id, 3600);
  }
  /* And again from the cache, which the catalog read filled. */
  expect_error (f, "POST", "/v1/credentials", NULL, bad, 401, "not_authorized");
  {
    g_autoptr(JsonNode) node = call (f, "POST", "/v1/credentials", NULL, good, &status);

    g_assert_cmpuint (status, ==, 200);
  }
}

static void
test_credentials_errors (Fixture       *f,
                         gconstpointer  data)
{
  g_autofree char *id = NULL;
  g_autofree char *secret = NULL;
  g_autofree char *other_id = NULL;
  g_autofree char *other_secret = NULL;
  g_autofree char *metrics = NULL;
  struct {
    char       *body;
    guint       status;
    const char *code;
  } cases[] = {
    { g_strdup ("{"), 400, "bad_request" },
    { g_strdup ("[]"), 400, "bad_request" },
    { g_strdup ("\"x\""), 400, "bad_request" },
    { g_strdup ("{}"), 400, "bad_request" },
    { NULL, 400, "bad_request" },
    { g_strdup ("{\"secret\":\"x\"}"), 400, "bad_request" },
    { g_strdup_printf ("{\"identity_id\":\"%s\"}", "abc"), 400, "bad_request" },
    { g_strdup_printf ("{\"identity_id\":42,\"secret\":\"%s\"}", "x"), 400, "bad_request" },
    { g_strdup_printf ("{\"identity_id\":\"%s\",\"secret\":[1]}", "abc"), 400, "bad_request" },
    { g_strdup ("{\"identity_id\":\"../../etc\",\"secret\":\"x\"}"), 400, "bad_request" },
    { g_strdup ("{\"identity_id\":\"\",\"secret\":\"x\"}"), 400, "bad_request" },
    { NULL, 0, NULL },  /* filled below with the real identity */
  };
  gsize n_cases = G_N_ELEMENTS (cases) - 1;
  g_autofree char *wrong_secret = NULL;
  g_autofree char *swapped = NULL;
  g_autofree char *unknown = NULL;
  g_autofree char *big = NULL;

  new_guest (f, &id, &secret);
  new_guest (f, &other_id, &other_secret);

  /* Empty body: no JSON at all. */
  expect_error (f, "POST", "/v1/credentials", NULL, NULL, 400, "bad_request");
  for (gsize i = 0; i < n_cases; i++)
    if (cases[i].body != NULL)
      expect_error (f, "POST", "/v1/credentials", NULL, cases[i].body, cases[i].status,
                    cases[i].code);

  /* duration_seconds: type and range. */
  {
    static const char *durations[] = { "899", "43201", "0", "-1", "3600.5", "\"3600\"",
                                       "true", "99999999999999999999" };

    for (gsize i = 0; i < G_N_ELEMENTS (durations); i++)
      {
        g_autofree char *body =
          g_strdup_printf ("{\"identity_id\":\"%s\",\"secret\":\"%s\",\"duration_seconds\":%s}",
                           id, secret, durations[i]);

        expect_error (f, "POST", "/v1/credentials", NULL, body, 400, "bad_request");
      }
  }

  /* Wrong secret, another identity's secret, an identity that does not exist. */
  wrong_secret = credentials_body (id, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", 0);
  swapped = credentials_body (id, other_secret, 0);
  unknown = credentials_body ("AAAAAAAAAAAAAAAAAAAAAA", secret, 0);
  expect_error (f, "POST", "/v1/credentials", NULL, wrong_secret, 401, "not_authorized");
  expect_error (f, "POST", "/v1/credentials", NULL, swapped, 401, "not_authorized");
  expect_error (f, "POST", "/v1/credentials", NULL, unknown, 401, "not_authorized");
  metrics = metrics_text (f);
  g_assert_nonnull (strstr (metrics, "magpied_auth_failures_total{endpoint=\"credentials\"} 3\n"));

  /* Over the JSON body limit: refused before parsing. */
  big = g_strnfill (100 * 1024, ' ');
  expect_error (f, "POST", "/v1/credentials", NULL, big, 413, "too_large");

  expect_error (f, "GET", "/v1/credentials", NULL, NULL, 405, "method_not_allowed");

  for (gsize i = 0; i < n_cases; i++)
    g_free (cases[i].body);
}

/* Accounts and sessions */

static char *
login_body (const char *username,
            const char *password)
{
  return g_strdup_printf ("{\"username\":\"%s\",\"password\":\"%s\"}", username, password);
}

/* Runs with guests off: accounts are how such a server is used. */
static void
test_accounts_sessions (Fixture       *f,
                        gconstpointer  data)
{
  g_autofree char *body = login_body ("alice", "correct horse battery");
  g_autofree char *wrong = login_body ("alice", "incorrect horse battery");
  g_autofree char *unknown = login_body ("nobody", "correct horse battery");
  g_autofree char *id = NULL;
  g_autofree char *secret = NULL;
  g_autofree char *message_wrong = NULL;
  guint status = 0;

  {
    g_autoptr(JsonNode) node = call (f, "POST", "/v1/accounts", NULL, body, &status);
    JsonObject *o;

    g_assert_cmpuint (status, ==, 201);
    o = json_node_get_object (node);
    id = g_strdup (json_object_get_string_member (o, "identity_id"));
    secret = g_strdup (json_object_get_string_member (o, "secret"));
    g_assert_true (srv_identity_id_is_valid (id));
    g_assert_cmpuint (strlen (secret), ==, SRV_API_SECRET_LEN);
  }
  expect_error (f, "POST", "/v1/accounts", NULL, body, 409, "username_taken");

  /* The account's secret gets credentials like a guest's. */
  {
    g_autofree char *creds = credentials_body (id, secret, 0);
    g_autoptr(JsonNode) node = call (f, "POST", "/v1/credentials", NULL, creds, &status);

    g_assert_cmpuint (status, ==, 200);
    check_credentials (f, json_node_get_object (node), id, 3600);
  }

  /* Signing in gives back the same identity and secret. */
  {
    g_autoptr(JsonNode) node = call (f, "POST", "/v1/sessions", NULL, body, &status);
    JsonObject *o;

    g_assert_cmpuint (status, ==, 200);
    o = json_node_get_object (node);
    g_assert_cmpstr (json_object_get_string_member (o, "identity_id"), ==, id);
    g_assert_cmpstr (json_object_get_string_member (o, "secret"), ==, secret);
  }

  /* Wrong password and unknown user: the same status, code and message. */
  {
    g_autoptr(JsonNode) a = call (f, "POST", "/v1/sessions", NULL, wrong, &status);
    g_autoptr(JsonNode) b = NULL;

    g_assert_cmpuint (status, ==, 401);
    assert_error (a, "not_authorized");
    b = call (f, "POST", "/v1/sessions", NULL, unknown, &status);
    g_assert_cmpuint (status, ==, 401);
    assert_error (b, "not_authorized");
    g_assert_true (json_node_equal (a, b));
  }

  /* Policy and shape errors. */
  {
    static const char *bad[] = {
      "{\"username\":\"Al\",\"password\":\"correct horse\"}",
      "{\"username\":\"bad name\",\"password\":\"correct horse\"}",
      "{\"username\":\"carol\",\"password\":\"short\"}",
      "{\"username\":\"carol\"}",
      "{\"password\":\"correct horse\"}",
      "{\"username\":7,\"password\":\"correct horse\"}",
      "{\"username\":\"carol\",\"password\":null}",
      "{\"username\":\"carol\",\"password\":\"correct horse\"",
    };

    for (gsize i = 0; i < G_N_ELEMENTS (bad); i++)
      expect_error (f, "POST", "/v1/accounts", NULL, bad[i], 400, "bad_request");
    for (gsize i = 3; i < G_N_ELEMENTS (bad); i++)
      expect_error (f, "POST", "/v1/sessions", NULL, bad[i], 400, "bad_request");
  }
  expect_error (f, "GET", "/v1/sessions", NULL, NULL, 405, "method_not_allowed");
  g_assert_cmpstr (f->allow, ==, "POST");
}

/* Five attempts a minute per account: the sixth is refused before any password work, with a
 * Retry-After; another account from the same address is not affected. */
static void
test_sessions_rate_limit (Fixture       *f,
                          gconstpointer  data)
{
  g_autofree char *create = login_body ("dave", "correct horse battery");
  g_autofree char *wrong = login_body ("dave", "not the password");
  g_autofree char *other = login_body ("erin", "whatever it is");
  g_autofree char *metrics = NULL;
  guint status = 0;

  {
    g_autoptr(JsonNode) node = call (f, "POST", "/v1/accounts", NULL, create, &status);

    g_assert_cmpuint (status, ==, 201);
  }
  for (int i = 0; i < 5; i++)
    expect_error (f, "POST", "/v1/sessions", NULL, wrong, 401, "not_authorized");
  expect_error (f, "POST", "/v1/sessions", NULL, wrong, 429, "rate_limited");
  g_assert_nonnull (f->retry_after);
  g_assert_cmpint (atoi (f->retry_after), >=, 1);
  g_assert_cmpint (atoi (f->retry_after), <=, 12);
  /* The right password is refused too while the account is limited. */
  expect_error (f, "POST", "/v1/sessions", NULL, create, 429, "rate_limited");
  expect_error (f, "POST", "/v1/sessions", NULL, other, 401, "not_authorized");

  /* And per address: 20 a minute in all, 9 used so far; argon2's time refills a few. */
  {
    int attempts = 0;

    for (;; attempts++)
      {
        g_autofree char *name = g_strdup_printf ("user%d", attempts);
        g_autofree char *body = login_body (name, "whatever it is");
        g_autoptr(JsonNode) node = call (f, "POST", "/v1/sessions", NULL, body, &status);

        /* Each attempt runs argon2: on a loaded machine more of the minute passes, and the
         * bucket refills further. */
        g_assert_cmpint (attempts, <, 30 * mp_test_slowdown ());
        if (status == 429)
          break;
        g_assert_cmpuint (status, ==, 401);
      }
    g_assert_cmpint (attempts, >=, 11);
  }
  expect_error (f, "POST", "/v1/sessions", NULL, other, 429, "rate_limited");
  expect_error (f, "POST", "/v1/accounts", NULL, other, 429, "rate_limited");

  metrics = metrics_text (f);
  g_assert_nonnull (strstr (metrics, "magpied_rate_limited_total 5\n"));
  g_assert_nonnull (strstr (metrics, "magpied_auth_failures_total{endpoint=\"sessions\"}"));
}

/* Photos: authentication and the error paths */

static char *
new_token (Fixture     *f,
           char       **identity_id)
{
  g_autofree char *id = NULL;
  g_autofree char *secret = NULL;
  g_autofree char *body = NULL;
  g_autoptr(JsonNode) node = NULL;
  guint status = 0;

  new_guest (f, &id, &secret);
  body = credentials_body (id, secret, 0);
  node = call (f, "POST", "/v1/credentials", NULL, body, &status);
  g_assert_cmpuint (status, ==, 200);
  if (identity_id)
    *identity_id = g_strdup (id);
  return g_strdup (json_object_get_string_member (json_node_get_object (node), "session_token"));
}

/* A token minted with @keyring (the server's or a stranger's) at @now for @lifetime. */
static char *
mint_token (SrvKeyring *keyring,
            const char *identity_id,
            gint64      now,
            gint64      lifetime)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(SrvCredentials) creds = srv_credentials_mint (keyring, identity_id,
                                                          SRV_IDENTITY_GUEST, now, lifetime,
                                                          &error);

  g_assert_no_error (error);
  return g_strdup (creds->session_token);
}

static void
test_photos_auth (Fixture       *f,
                  gconstpointer  data)
{
  g_autofree char *id = NULL;
  g_autofree char *token = new_token (f, &id);
  g_autoptr(SrvKeyring) server_keys = srv_keyring_new ();
  g_autoptr(SrvKeyring) stranger_keys = srv_keyring_new ();
  g_autofree char *stranger_dir = mp_test_make_tmpdir ("magpie-stranger");
  g_autofree char *stranger_path = g_build_filename (stranger_dir, "keyring", NULL);
  g_autofree char *expired = NULL;
  g_autofree char *forged = NULL;
  g_autofree char *tampered = g_strdup (token);
  g_autoptr(GError) error = NULL;
  gint64 now = g_get_real_time () / G_USEC_PER_SEC;
  const char *paths[] = { "/v1/photos", "/v1/photos/AAAAAAAAAAAAAAAAAAAAAA" };

  g_assert_true (load_server_keyring (f->server, server_keys, now, &error));
  g_assert_true (srv_keyring_load (stranger_keys, stranger_path, now, &error));
  g_assert_no_error (error);
  expired = mint_token (server_keys, id, now - 7200, 900);
  forged = mint_token (stranger_keys, id, now, 3600);
  tampered[strlen (tampered) / 2] = tampered[strlen (tampered) / 2] == 'A' ? 'B' : 'A';

  for (gsize i = 0; i < G_N_ELEMENTS (paths); i++)
    {
      guint status = 0;
      g_autoptr(JsonNode) ok = call (f, "GET", paths[i], token, NULL, &status);

      g_assert_cmpuint (status, ==, i == 0 ? 200 : 404);
      expect_error (f, "GET", paths[i], NULL, NULL, 401, "unauthorized");
      expect_error (f, "GET", paths[i], "", NULL, 401, "unauthorized");
      expect_error (f, "GET", paths[i], "not-a-token", NULL, 401, "invalid_token");
      expect_error (f, "GET", paths[i], expired, NULL, 401, "token_expired");
      expect_error (f, "GET", paths[i], forged, NULL, 401, "invalid_token");
      expect_error (f, "GET", paths[i], tampered, NULL, 401, "invalid_token");
    }
  /* The REST endpoints take the token only as a header. */
  {
    g_autofree char *path = g_strdup_printf ("/v1/photos?access_token=%s", token);

    expect_error (f, "GET", path, NULL, NULL, 401, "unauthorized");
  }
  mp_test_rm_rf (stranger_dir);
}

static void
test_photos_errors (Fixture       *f,
                    gconstpointer  data)
{
  g_autofree char *id = NULL;
  g_autofree char *token = new_token (f, &id);
  g_autofree char *other_id = NULL;
  g_autofree char *other_token = new_token (f, &other_id);
  g_autofree char *missing = g_strdup_printf ("{\"key\":\"users/%s/none.jpg\"}", id);
  g_autofree char *others = g_strdup_printf ("{\"key\":\"users/%s/a.jpg\"}", other_id);
  g_autofree char *bare_prefix = g_strdup_printf ("{\"key\":\"users/%s/\"}", id);
  g_autofree char *sneaky = g_strdup_printf ("{\"key\":\"users/%sx/a.jpg\"}", id);
  guint status = 0;

  /* An empty catalog lists as an empty page. */
  {
    g_autoptr(JsonNode) node = call (f, "GET", "/v1/photos", token, NULL, &status);
    JsonObject *o;

    g_assert_cmpuint (status, ==, 200);
    o = json_node_get_object (node);
    g_assert_cmpuint (json_array_get_length (json_object_get_array_member (o, "photos")), ==, 0);
    g_assert_true (json_object_has_member (o, "next_cursor"));
    g_assert_true (json_object_get_null_member (o, "next_cursor"));
  }

  expect_error (f, "POST", "/v1/photos", token, missing, 404, "no_such_object");
  expect_error (f, "POST", "/v1/photos", token, others, 403, "forbidden");
  expect_error (f, "POST", "/v1/photos", token, bare_prefix, 403, "forbidden");
  expect_error (f, "POST", "/v1/photos", token, sneaky, 403, "forbidden");
  expect_error (f, "POST", "/v1/photos", token, "{\"key\":\"\"}", 400, "bad_request");
  expect_error (f, "POST", "/v1/photos", token, "{\"key\":5}", 400, "bad_request");
  expect_error (f, "POST", "/v1/photos", token, "{}", 400, "bad_request");
  expect_error (f, "POST", "/v1/photos", token, "{\"key\":", 400, "bad_request");
  expect_error (f, "POST", "/v1/photos", token, NULL, 400, "bad_request");

  {
    static const char *queries[] = {
      "limit=0", "limit=201", "limit=abc", "limit=-1", "limit=1.5", "min_confidence=2",
      "min_confidence=-0.1", "min_confidence=nan", "min_confidence=x", "min_confidence=0.5x",
      "cursor=not-a-cursor",
    };

    for (gsize i = 0; i < G_N_ELEMENTS (queries); i++)
      {
        g_autofree char *path = g_strconcat ("/v1/photos?", queries[i], NULL);

        expect_error (f, "GET", path, token, NULL, 400, "bad_request");
      }
  }
  {
    g_autoptr(JsonNode) node = call (f, "GET", "/v1/photos?limit=200&min_confidence=0.5&tag=cat",
                                     token, NULL, &status);

    g_assert_cmpuint (status, ==, 200);
  }

  expect_error (f, "GET", "/v1/photos/AAAAAAAAAAAAAAAAAAAAAA", token, NULL, 404, "not_found");
  expect_error (f, "DELETE", "/v1/photos/AAAAAAAAAAAAAAAAAAAAAA", token, NULL, 404, "not_found");
  expect_error (f, "GET", "/v1/photos/a.b", token, NULL, 404, "not_found");
  expect_error (f, "PUT", "/v1/photos", token, "{}", 405, "method_not_allowed");
  g_assert_cmpstr (f->allow, ==, "GET, POST");
  expect_error (f, "POST", "/v1/photos/AAAAAAAAAAAAAAAAAAAAAA", token, "{}", 405,
                "method_not_allowed");
  g_assert_cmpstr (f->allow, ==, "GET, DELETE");
}

/* The server's peak resident memory (VmHWM), in kB. */
static gint64
server_hwm_kb (Fixture *f)
{
  g_autofree char *path = g_strdup_printf ("/proc/%s/status",
                                           g_subprocess_get_identifier (f->server->process));
  g_autofree char *status = NULL;
  const char *line;

  g_assert_true (g_file_get_contents (path, &status, NULL, NULL));
  line = strstr (status, "VmHWM:");
  g_assert_nonnull (line);
  return g_ascii_strtoll (line + strlen ("VmHWM:"), NULL, 10);
}

/* One request as raw HTTP/1.1 on a fresh connection: @head (request line and headers) then
 * @body_len bytes, as chunks when @chunked. Sending stops as soon as the server answers;
 * @sent says how much of the body went out. Returns the whole response. */
static char *
raw_request (Fixture    *f,
             const char *head,
             gsize       body_len,
             gboolean    chunked,
             gsize      *sent)
{
  g_autoptr(GUri) uri = g_uri_parse (f->server->url, G_URI_FLAGS_NONE, NULL);
  g_autoptr(GSocketClient) client = g_socket_client_new ();
  g_autoptr(GSocketConnection) conn = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GByteArray) response = g_byte_array_new ();
  g_autofree char *request = g_strconcat (head, "Connection: close\r\n\r\n", NULL);
  g_autofree guint8 *block = g_malloc (64 * 1024);
  GOutputStream *out;
  GInputStream *in;
  GSocket *socket;
  guint8 buf[4096];
  gssize n;

  conn = g_socket_client_connect_to_host (client, g_uri_get_host (uri), g_uri_get_port (uri),
                                          NULL, &error);
  g_assert_no_error (error);
  out = g_io_stream_get_output_stream (G_IO_STREAM (conn));
  in = g_io_stream_get_input_stream (G_IO_STREAM (conn));
  socket = g_socket_connection_get_socket (conn);
  g_assert_true (g_output_stream_write_all (out, request, strlen (request), NULL, NULL, &error));
  memset (block, '{', 64 * 1024);
  *sent = 0;
  /* A server that answers at once (Expect: 100-continue) gets a moment to do so. */
  g_socket_condition_timed_wait (socket, G_IO_IN, G_USEC_PER_SEC / 5, NULL, NULL);
  while (*sent < body_len && !(g_socket_condition_check (socket, G_IO_IN) & G_IO_IN))
    {
      gsize len = MIN (64 * 1024, body_len - *sent);
      g_autofree char *size_line = g_strdup_printf ("%" G_GSIZE_MODIFIER "x\r\n", len);

      if ((chunked && !g_output_stream_write_all (out, size_line, strlen (size_line), NULL, NULL,
                                                  NULL)) ||
          !g_output_stream_write_all (out, block, len, NULL, NULL, NULL) ||
          (chunked && !g_output_stream_write_all (out, "\r\n", 2, NULL, NULL, NULL)))
        break;
      *sent += len;
    }
  if (chunked && *sent == body_len)
    g_output_stream_write_all (out, "0\r\n\r\n", 5, NULL, NULL, NULL);
  while ((n = g_input_stream_read (in, buf, sizeof buf, NULL, NULL)) > 0)
    g_byte_array_append (response, buf, n);
  g_byte_array_append (response, (const guint8 *) "", 1);
  return (char *) g_byte_array_free (g_steal_pointer (&response), FALSE);
}

/* Bodies the REST handlers hold in memory are bounded while they arrive. Before, soup kept a
 * whole body of any size (chunked, or with any Content-Length) and the handler only then
 * looked at its size: 64 MB sent to /v1/identities cost the server 128 MB. */
static void
test_body_bounds (Fixture       *f,
                  gconstpointer  data)
{
  const gsize big = 64 * 1024 * 1024;
  gint64 hwm_before = server_hwm_kb (f);
  gsize sent = 0;

  {
    g_autofree char *r = raw_request (f, "POST /v1/credentials HTTP/1.1\r\nHost: x\r\n"
                                         "Content-Length: 1000000000\r\n"
                                         "Expect: 100-continue\r\n", 1000000000, FALSE, &sent);

    g_assert_true (g_str_has_prefix (r, "HTTP/1.1 413"));
    g_assert_nonnull (strstr (r, "\"too_large\""));
    g_assert_cmpuint (sent, ==, 0);
  }
  {
    g_autofree char *r = raw_request (f, "POST /v1/identities HTTP/1.1\r\nHost: x\r\n"
                                         "Transfer-Encoding: chunked\r\n", big, TRUE, &sent);

    g_assert_true (g_str_has_prefix (r, "HTTP/1.1 413"));
    g_assert_nonnull (strstr (r, "\"too_large\""));
  }
  {
    g_autofree char *head = g_strdup_printf ("POST /v1/sessions HTTP/1.1\r\nHost: x\r\n"
                                             "Content-Length: %" G_GSIZE_FORMAT "\r\n", big);
    g_autofree char *r = raw_request (f, head, big, FALSE, &sent);

    g_assert_true (g_str_has_prefix (r, "HTTP/1.1 413"));
  }
  {
    g_autofree char *r = raw_request (f, "POST /v1/credentials HTTP/1.1\r\nHost: x\r\n"
                                         "Content-Encoding: gzip\r\nContent-Length: 20\r\n",
                                      20, FALSE, &sent);

    g_assert_true (g_str_has_prefix (r, "HTTP/1.1 415"));
    g_assert_nonnull (strstr (r, "\"unsupported_encoding\""));
  }
  g_test_message ("peak RSS grew by %" G_GINT64_FORMAT " kB", server_hwm_kb (f) - hwm_before);
  g_assert_cmpint (server_hwm_kb (f) - hwm_before, <, 16 * 1024);

  /* A body within the bound still reaches its handler, chunked or not. */
  {
    g_autofree char *r = raw_request (f, "POST /v1/credentials HTTP/1.1\r\nHost: x\r\n"
                                         "Transfer-Encoding: chunked\r\n", 1000, TRUE, &sent);

    g_assert_true (g_str_has_prefix (r, "HTTP/1.1 400"));
    g_assert_nonnull (strstr (r, "not JSON"));
  }
}

int
main (int argc, char **argv)
{
  static const char *guests_off[] = { "--guests=no", NULL };

  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/srv/api/secret-helpers", test_secret_helpers);
  g_test_add ("/srv/api/identities/create", Fixture, NULL,
              fixture_setup, test_identities_create, fixture_teardown);
  g_test_add ("/srv/api/identities/guests-off", Fixture, guests_off,
              fixture_setup, test_identities_guests_off, fixture_teardown);
  g_test_add ("/srv/api/credentials/ok", Fixture, NULL,
              fixture_setup, test_credentials_ok, fixture_teardown);
  g_test_add ("/srv/api/credentials/after-restart", Fixture, NULL,
              fixture_setup, test_credentials_after_restart, fixture_teardown);
  g_test_add ("/srv/api/credentials/errors", Fixture, NULL,
              fixture_setup, test_credentials_errors, fixture_teardown);
  g_test_add ("/srv/api/accounts/sessions", Fixture, guests_off,
              fixture_setup, test_accounts_sessions, fixture_teardown);
  g_test_add ("/srv/api/sessions/rate-limit", Fixture, NULL,
              fixture_setup, test_sessions_rate_limit, fixture_teardown);
  g_test_add ("/srv/api/photos/auth", Fixture, NULL,
              fixture_setup, test_photos_auth, fixture_teardown);
  g_test_add ("/srv/api/photos/errors", Fixture, NULL,
              fixture_setup, test_photos_errors, fixture_teardown);
  g_test_add ("/srv/api/body-bounds", Fixture, NULL,
              fixture_setup, test_body_bounds, fixture_teardown);
  return g_test_run ();
}
