/* test-token.c - session tokens: round trip, limits, forgery, expiry, rotation, keyring file */
#include "config.h"

#include <glib/gstdio.h>
#include <sodium.h>
#include <sys/stat.h>

#include "srv-token.h"

#define NOW G_GINT64_CONSTANT (1795426865)

static SrvKeyring *
fixed_keyring (guint8 fill)
{
  SrvKeyring *keyring = srv_keyring_new ();
  guint8 key[32];

  memset (key, fill, sizeof key);
  srv_keyring_add_key (keyring, 1, key, NOW - 100, 0);
  return keyring;
}

static void
test_round_trip (void)
{
  g_autoptr(SrvKeyring) keyring = fixed_keyring (7);
  g_autoptr(GError) error = NULL;
  g_autoptr(SrvCredentials) minted = NULL;
  g_autoptr(SrvCredentials) checked = NULL;

  minted = srv_credentials_mint (keyring, "id_Abc-123", SRV_IDENTITY_ACCOUNT, NOW,
                                 SRV_TOKEN_DEFAULT_LIFETIME_S, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (minted->prefix, ==, "users/id_Abc-123/");
  g_assert_cmpint (minted->expires_at, ==, NOW + 3600);
  g_assert_cmpuint (strlen (minted->access_key_id), ==, 20);
  g_assert_true (g_str_has_prefix (minted->access_key_id, "ASIA"));
  for (const char *p = minted->access_key_id + 4; *p; p++)
    g_assert_true ((*p >= 'A' && *p <= 'Z') || (*p >= '2' && *p <= '7'));
  g_assert_cmpuint (strlen (minted->secret_access_key), ==, 40);

  checked = srv_credentials_verify (keyring, minted->session_token, NOW + 10, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (checked->identity_id, ==, "id_Abc-123");
  g_assert_cmpint (checked->kind, ==, SRV_IDENTITY_ACCOUNT);
  g_assert_cmpstr (checked->access_key_id, ==, minted->access_key_id);
  g_assert_cmpstr (checked->secret_access_key, ==, minted->secret_access_key);
  g_assert_cmpstr (checked->prefix, ==, minted->prefix);
  g_assert_cmpint (checked->expires_at, ==, minted->expires_at);
  g_assert_cmpuint (checked->key_id, ==, 1);
}

static void
test_unique (void)
{
  g_autoptr(SrvKeyring) keyring = fixed_keyring (1);
  g_autoptr(GHashTable) seen = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);

  for (int i = 0; i < 1000; i++)
    {
      g_autoptr(SrvCredentials) c = srv_credentials_mint (keyring, "guest1", SRV_IDENTITY_GUEST,
                                                          NOW, 900, NULL);
      g_assert_true (g_hash_table_add (seen, g_strdup (c->access_key_id)));
      g_assert_true (g_hash_table_add (seen, g_strdup (c->session_token)));
      g_assert_true (g_hash_table_add (seen, g_strdup (c->secret_access_key)));
    }
}

static void
test_limits (void)
{
  g_autoptr(SrvKeyring) keyring = fixed_keyring (2);
  static const gint64 bad_lifetimes[] = { -1, 0, 899, 43201, G_MAXINT64 };
  static const gint64 good_lifetimes[] = { 900, 3600, 43200 };
  static const char *bad_ids[] = {
    "", "a/b", "../x", "a b", "é", "users/x", "x\n",
    "0123456789012345678901234567890123456789012345678901234567890123456789",
  };

  for (gsize i = 0; i < G_N_ELEMENTS (bad_lifetimes); i++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(SrvCredentials) c = srv_credentials_mint (keyring, "x", SRV_IDENTITY_GUEST, NOW,
                                                          bad_lifetimes[i], &error);
      g_assert_null (c);
      g_assert_error (error, SRV_TOKEN_ERROR, SRV_TOKEN_ERROR_INVALID);
      g_assert_nonnull (strstr (error->message, "duration_seconds"));
    }
  for (gsize i = 0; i < G_N_ELEMENTS (good_lifetimes); i++)
    {
      g_autoptr(SrvCredentials) c = srv_credentials_mint (keyring, "x", SRV_IDENTITY_GUEST, NOW,
                                                          good_lifetimes[i], NULL);
      g_assert_nonnull (c);
      g_assert_cmpint (c->expires_at, ==, NOW + good_lifetimes[i]);
    }
  for (gsize i = 0; i < G_N_ELEMENTS (bad_ids); i++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(SrvCredentials) c = srv_credentials_mint (keyring, bad_ids[i], SRV_IDENTITY_GUEST,
                                                          NOW, 900, &error);
      g_assert_null (c);
      g_assert_error (error, SRV_TOKEN_ERROR, SRV_TOKEN_ERROR_INVALID);
    }
}

static void
test_expiry (void)
{
  g_autoptr(SrvKeyring) keyring = fixed_keyring (3);
  g_autoptr(SrvCredentials) c = srv_credentials_mint (keyring, "x", SRV_IDENTITY_GUEST, NOW, 900,
                                                      NULL);
  g_autoptr(SrvCredentials) ok = srv_credentials_verify (keyring, c->session_token,
                                                         NOW + 899, NULL);
  g_autoptr(GError) error = NULL;
  g_autoptr(SrvCredentials) late = srv_credentials_verify (keyring, c->session_token,
                                                           NOW + 900, &error);

  g_assert_nonnull (ok);
  g_assert_null (late);
  g_assert_error (error, SRV_TOKEN_ERROR, SRV_TOKEN_ERROR_EXPIRED);
  g_assert_nonnull (strstr (error->message, "expired"));
}

/* Every single-bit change of the decoded token, and every changed character of the text,
 * must be refused: nothing but the exact token verifies. */
static void
test_tampering (void)
{
  g_autoptr(SrvKeyring) keyring = fixed_keyring (4);
  g_autoptr(SrvCredentials) c = srv_credentials_mint (keyring, "victim", SRV_IDENTITY_GUEST,
                                                      NOW, 3600, NULL);
  guint8 raw[256];
  size_t raw_len = 0;
  gsize text_len = strlen (c->session_token);

  g_assert_cmpint (sodium_base642bin (raw, sizeof raw, c->session_token, text_len, NULL, &raw_len,
                                      NULL, sodium_base64_VARIANT_URLSAFE_NO_PADDING), ==, 0);
  for (size_t byte = 0; byte < raw_len; byte++)
    for (int bit = 0; bit < 8; bit++)
      {
        char text[512];
        g_autoptr(GError) error = NULL;
        g_autoptr(SrvCredentials) v = NULL;

        raw[byte] ^= 1u << bit;
        sodium_bin2base64 (text, sizeof text, raw, raw_len,
                           sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        v = srv_credentials_verify (keyring, text, NOW + 1, &error);
        raw[byte] ^= 1u << bit;
        g_assert_null (v);
        g_assert_true (g_error_matches (error, SRV_TOKEN_ERROR, SRV_TOKEN_ERROR_FORGED) ||
                       g_error_matches (error, SRV_TOKEN_ERROR, SRV_TOKEN_ERROR_MALFORMED));
      }

  for (gsize i = 0; i < text_len; i++)
    {
      g_autofree char *text = g_strdup (c->session_token);
      g_autoptr(SrvCredentials) v = NULL;

      text[i] = text[i] == 'A' ? 'B' : 'A';
      v = srv_credentials_verify (keyring, text, NOW + 1, NULL);
      /* base64 has slack bits only in the last character; changing them decodes the same. */
      if (v != NULL)
        g_assert_cmpuint (i, ==, text_len - 1);
    }

  for (gsize len = 0; len < text_len; len++)
    {
      g_autofree char *text = g_strndup (c->session_token, len);
      g_autoptr(GError) error = NULL;
      g_autoptr(SrvCredentials) v = srv_credentials_verify (keyring, text, NOW + 1, &error);

      g_assert_null (v);
      g_assert_nonnull (error);
    }
}

static void
test_garbage (void)
{
  g_autoptr(SrvKeyring) keyring = fixed_keyring (5);
  g_autofree char *huge = g_strnfill (100000, 'A');
  const char *inputs[] = { "", "not a token", "====", "AAAA", "Bearer x", "\xff\xfe", huge };

  for (gsize i = 0; i < G_N_ELEMENTS (inputs); i++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(SrvCredentials) v = srv_credentials_verify (keyring, inputs[i], NOW, &error);

      g_assert_null (v);
      g_assert_error (error, SRV_TOKEN_ERROR, SRV_TOKEN_ERROR_MALFORMED);
    }
  {
    g_autoptr(GError) error = NULL;
    g_assert_null (srv_credentials_verify (keyring, NULL, NOW, &error));
    g_assert_error (error, SRV_TOKEN_ERROR, SRV_TOKEN_ERROR_MALFORMED);
  }
}

static void
test_other_server (void)
{
  g_autoptr(SrvKeyring) ours = fixed_keyring (6);
  g_autoptr(SrvKeyring) theirs = fixed_keyring (9);
  g_autoptr(SrvCredentials) c = srv_credentials_mint (theirs, "x", SRV_IDENTITY_GUEST, NOW, 900,
                                                      NULL);
  g_autoptr(GError) error = NULL;
  g_autoptr(SrvCredentials) v = srv_credentials_verify (ours, c->session_token, NOW, &error);

  g_assert_null (v);
  g_assert_error (error, SRV_TOKEN_ERROR, SRV_TOKEN_ERROR_FORGED);
}

static void
test_keyring_file_and_rotation (void)
{
  g_autofree char *dir = g_dir_make_tmp ("magpied-keys-XXXXXX", NULL);
  g_autofree char *path = g_build_filename (dir, "server-keys", NULL);
  g_autoptr(SrvKeyring) node_a = srv_keyring_new ();
  g_autoptr(SrvKeyring) node_b = srv_keyring_new ();
  g_autoptr(SrvKeyring) node_c = srv_keyring_new ();
  g_autoptr(SrvCredentials) old = NULL;
  g_autoptr(SrvCredentials) fresh = NULL;
  g_autoptr(GError) error = NULL;
  GStatBuf st;

  /* First start creates the file, private to the server's user. */
  g_assert_true (srv_keyring_load (node_a, path, NOW, &error));
  g_assert_no_error (error);
  g_assert_cmpint (g_stat (path, &st), ==, 0);
  g_assert_cmpint (st.st_mode & 0777, ==, 0600);
  g_assert_cmpuint (srv_keyring_current_id (node_a), ==, 1);

  /* A second node with the same file verifies and derives the same secret. */
  g_assert_true (srv_keyring_load (node_b, path, NOW, &error));
  old = srv_credentials_mint (node_a, "alice", SRV_IDENTITY_ACCOUNT, NOW, 43200, NULL);
  {
    g_autoptr(SrvCredentials) v = srv_credentials_verify (node_b, old->session_token, NOW, &error);
    g_assert_no_error (error);
    g_assert_cmpstr (v->secret_access_key, ==, old->secret_access_key);
  }

  /* Rotation: new tokens use key 2, old tokens keep working until they expire. */
  g_assert_true (srv_keyring_rotate (node_a, path, NOW + 60, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (srv_keyring_current_id (node_a), ==, 2);
  fresh = srv_credentials_mint (node_a, "alice", SRV_IDENTITY_ACCOUNT, NOW + 60, 900, NULL);
  g_assert_cmpuint (fresh->key_id, ==, 2);
  g_assert_true (srv_keyring_load (node_c, path, NOW + 61, &error));
  g_assert_cmpuint (srv_keyring_size (node_c), ==, 2);
  {
    g_autoptr(SrvCredentials) v1 = srv_credentials_verify (node_c, old->session_token,
                                                           NOW + 43199, &error);
    g_autoptr(SrvCredentials) v2 = srv_credentials_verify (node_c, fresh->session_token,
                                                           NOW + 100, &error);
    g_assert_no_error (error);
    g_assert_nonnull (v1);
    g_assert_nonnull (v2);
  }

  /* One maximum lifetime after retirement the old key is gone for good. */
  g_assert_true (srv_keyring_rotate (node_c, path, NOW + 60 + 43201, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (srv_keyring_size (node_c), ==, 2);  /* key 2 (retired now) and key 3 */
  {
    g_autoptr(SrvCredentials) v = srv_credentials_verify (node_c, old->session_token,
                                                          NOW + 60 + 43201, &error);
    g_assert_null (v);
    g_assert_error (error, SRV_TOKEN_ERROR, SRV_TOKEN_ERROR_FORGED);
    g_clear_error (&error);
  }

  /* A damaged keyring is an error, not a silently fresh key. */
  g_assert_true (g_file_set_contents (path, "key id=1 secret=short\n", -1, NULL));
  {
    g_autoptr(SrvKeyring) broken = srv_keyring_new ();
    g_assert_false (srv_keyring_load (broken, path, NOW, &error));
    g_assert_error (error, SRV_TOKEN_ERROR, SRV_TOKEN_ERROR_KEYRING);
    g_assert_nonnull (strstr (error->message, ":1:"));
  }

  g_unlink (path);
  g_rmdir (dir);
}

int
main (int argc, char *argv[])
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/srv/token/round-trip", test_round_trip);
  g_test_add_func ("/srv/token/unique", test_unique);
  g_test_add_func ("/srv/token/limits", test_limits);
  g_test_add_func ("/srv/token/expiry", test_expiry);
  g_test_add_func ("/srv/token/tampering", test_tampering);
  g_test_add_func ("/srv/token/garbage", test_garbage);
  g_test_add_func ("/srv/token/other-server", test_other_server);
  g_test_add_func ("/srv/token/keyring-file-and-rotation", test_keyring_file_and_rotation);
  return g_test_run ();
}
