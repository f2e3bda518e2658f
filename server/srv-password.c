/* srv-password.c - account names, password policy and argon2id (libsodium) hashing
 *
 * Verification of an unknown user runs the same argon2id work against a dummy hash, so a
 * wrong password and an unknown user cost the same time and give the same answer.
 */
#include "config.h"

#include "srv-password.h"

#include <sodium.h>
#include <string.h>

/* libsodium's "interactive" profile: about 0.1 s and 64 MiB on this class of machine, the
 * figure OWASP gives for argon2id on a login path. */
#define SRV_PASSWORD_OPSLIMIT crypto_pwhash_OPSLIMIT_INTERACTIVE
#define SRV_PASSWORD_MEMLIMIT crypto_pwhash_MEMLIMIT_INTERACTIVE

G_DEFINE_QUARK (srv-password-error-quark, srv_password_error)

/* Lower-case letters, digits, '.', '_' and '-', 3 to 64 characters, starting with a letter
 * or digit: easy to type, unambiguous in logs and URLs. */
gboolean
srv_username_check (const char  *username,
                    GError     **error)
{
  gsize len = username ? strlen (username) : 0;

  if (len < SRV_USERNAME_MIN_LEN || len > SRV_USERNAME_MAX_LEN)
    goto bad;
  if (!g_ascii_islower (username[0]) && !g_ascii_isdigit (username[0]))
    goto bad;
  for (const char *p = username; *p; p++)
    if (!g_ascii_islower (*p) && !g_ascii_isdigit (*p) && *p != '.' && *p != '_' && *p != '-')
      goto bad;
  return TRUE;

bad:
  g_set_error (error, SRV_PASSWORD_ERROR, SRV_PASSWORD_ERROR_POLICY,
               "username must be %d to %d characters of a-z, 0-9, '.', '_' and '-', "
               "starting with a letter or digit", SRV_USERNAME_MIN_LEN, SRV_USERNAME_MAX_LEN);
  return FALSE;
}

gboolean
srv_password_check (const char  *password,
                    GError     **error)
{
  gsize len = password ? strlen (password) : 0;

  if (password == NULL || !g_utf8_validate (password, -1, NULL) ||
      g_utf8_strlen (password, -1) < SRV_PASSWORD_MIN_LEN || len > SRV_PASSWORD_MAX_LEN)
    {
      g_set_error (error, SRV_PASSWORD_ERROR, SRV_PASSWORD_ERROR_POLICY,
                   "password must be valid UTF-8, at least %d characters and at most %d bytes",
                   SRV_PASSWORD_MIN_LEN, SRV_PASSWORD_MAX_LEN);
      return FALSE;
    }
  return TRUE;
}

/* Returns an argon2id string ("$argon2id$v=19$m=...") or NULL with @error. Slow by design:
 * call it off the main loop. */
char *
srv_password_hash (const char  *password,
                   GError     **error)
{
  char out[crypto_pwhash_STRBYTES];

  if (!srv_password_check (password, error))
    return NULL;
  if (sodium_init () < 0 ||
      crypto_pwhash_str_alg (out, password, strlen (password), SRV_PASSWORD_OPSLIMIT,
                             SRV_PASSWORD_MEMLIMIT, crypto_pwhash_ALG_ARGON2ID13) != 0)
    {
      g_set_error (error, SRV_PASSWORD_ERROR, SRV_PASSWORD_ERROR_FAILED,
                   "cannot hash the password (out of memory)");
      return NULL;
    }
  return g_strdup (out);
}

static const char *
dummy_hash (void)
{
  static gsize once;
  static char *hash;

  if (g_once_init_enter (&once))
    {
      guint8 random[32];
      char password[sodium_base64_ENCODED_LEN (32, sodium_base64_VARIANT_ORIGINAL)];
      char *h;

      randombytes_buf (random, sizeof random);
      sodium_bin2base64 (password, sizeof password, random, sizeof random,
                         sodium_base64_VARIANT_ORIGINAL);
      h = srv_password_hash (password, NULL);
      g_assert (h != NULL);
      hash = h;
      g_once_init_leave (&once, 1);
    }
  return hash;
}

/* TRUE when @password matches @hash. A NULL @hash (unknown user) does the same work and
 * returns FALSE. Slow by design: call it off the main loop. */
gboolean
srv_password_verify (const char *hash,
                     const char *password)
{
  gboolean known = hash != NULL;
  gsize len;

  if (sodium_init () < 0)
    return FALSE;
  if (password == NULL)
    password = "";
  len = MIN (strlen (password), SRV_PASSWORD_MAX_LEN);
  if (!known)
    hash = dummy_hash ();
  if (crypto_pwhash_str_verify (hash, password, len) != 0)
    return FALSE;
  return known && strlen (password) <= SRV_PASSWORD_MAX_LEN;
}
