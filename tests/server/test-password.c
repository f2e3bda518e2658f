/* test-password.c - username and password policy, argon2id hashing, unknown-user verify */
#include "config.h"

#include "srv-password.h"

static void
test_policy (void)
{
  const char *good_users[] = { "alice", "bob.smith", "x_1-2", "007" };
  const char *bad_users[] = { "", "al", "Alice", "-bob", "a b", "é-ve", "a/b",
                              "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklm" };
  g_autofree char *long_password = g_strnfill (SRV_PASSWORD_MAX_LEN + 1, 'p');

  for (gsize i = 0; i < G_N_ELEMENTS (good_users); i++)
    g_assert_true (srv_username_check (good_users[i], NULL));
  for (gsize i = 0; i < G_N_ELEMENTS (bad_users); i++)
    {
      g_autoptr(GError) error = NULL;
      g_assert_false (srv_username_check (bad_users[i], &error));
      g_assert_error (error, SRV_PASSWORD_ERROR, SRV_PASSWORD_ERROR_POLICY);
    }
  g_assert_true (srv_password_check ("correct horse", NULL));
  g_assert_true (srv_password_check ("pässwörd", NULL));
  g_assert_false (srv_password_check ("short", NULL));
  g_assert_false (srv_password_check ("\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8", NULL));
  g_assert_false (srv_password_check (long_password, NULL));
  g_assert_false (srv_password_check (NULL, NULL));
}

static void
test_hash_verify (void)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *h1 = srv_password_hash ("correct horse battery", &error);
  g_autofree char *h2 = srv_password_hash ("correct horse battery", &error);

  g_assert_no_error (error);
  g_assert_true (g_str_has_prefix (h1, "$argon2id$"));
  g_assert_cmpstr (h1, !=, h2);   /* salted */
  g_assert_true (srv_password_verify (h1, "correct horse battery"));
  g_assert_true (srv_password_verify (h2, "correct horse battery"));
  g_assert_false (srv_password_verify (h1, "correct horse batterY"));
  g_assert_false (srv_password_verify (h1, ""));
  g_assert_false (srv_password_verify (h1, NULL));
  g_assert_false (srv_password_verify ("not a hash", "correct horse battery"));
  g_assert_null (srv_password_hash ("short", &error));
  g_assert_error (error, SRV_PASSWORD_ERROR, SRV_PASSWORD_ERROR_POLICY);
}

/* An unknown user costs the same argon2id work as a wrong password: within a factor. */
static void
test_unknown_user (void)
{
  g_autofree char *hash = srv_password_hash ("correct horse battery", NULL);
  gint64 t0, t_wrong, t_unknown;

  g_assert_false (srv_password_verify (NULL, "anything at all"));   /* warms the dummy hash */
  t0 = g_get_monotonic_time ();
  g_assert_false (srv_password_verify (hash, "wrong password"));
  t_wrong = g_get_monotonic_time () - t0;
  t0 = g_get_monotonic_time ();
  g_assert_false (srv_password_verify (NULL, "wrong password"));
  t_unknown = g_get_monotonic_time () - t0;
  g_test_message ("wrong password %" G_GINT64_FORMAT " us, unknown user %" G_GINT64_FORMAT " us",
                  t_wrong, t_unknown);
  g_assert_cmpint (t_unknown, >, t_wrong / 4);
}

int
main (int argc, char *argv[])
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/srv/password/policy", test_policy);
  g_test_add_func ("/srv/password/hash-verify", test_hash_verify);
  g_test_add_func ("/srv/password/unknown-user", test_unknown_user);
  return g_test_run ();
}
