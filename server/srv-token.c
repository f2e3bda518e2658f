/* srv-token.c - self-verifying session tokens (Cognito/STS-style) and the server keyring
 *
 * A token carries everything a node needs to check it: key id, expiry, identity, identity
 * kind and access key id, followed by an HMAC-SHA-256 over those bytes with a subkey of the
 * server key. The secret access key is an HMAC of the token's MAC with another subkey, so it
 * is never stored and any node holding the keyring derives the same one. No session table.
 *
 * Wire form (version 1), then base64url without padding:
 *   u8 version | u32 key id | i64 expires_at | u8 kind | u8 id_len | id | 20 B access key | 32 B MAC
 *
 * Rotation: the keyring's newest key signs; a retired key still verifies for one maximum
 * token lifetime after it was retired (every token it signed has expired by then).
 */
#include "config.h"

#include "srv-token.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <sodium.h>
#include <string.h>

#define TOKEN_VERSION        1
#define ACCESS_KEY_LEN       20
#define MAC_LEN              crypto_auth_hmacsha256_BYTES
#define KEY_LEN              crypto_kdf_KEYBYTES
#define HEADER_LEN           (1 + 4 + 8 + 1 + 1)
#define SECRET_RAW_LEN       30     /* base64 of 30 bytes is 40 characters, as AWS keys */
#define KDF_CONTEXT          "magpietk"
#define KDF_ID_MAC           1
#define KDF_ID_SECRET        2

typedef struct {
  guint32 id;
  guint8  key[KEY_LEN];
  gint64  created_at;
  gint64  retired_at;   /* 0 while current */
} SrvKey;

struct _SrvKeyring {
  GArray *keys;         /* SrvKey, oldest first */
};

G_DEFINE_QUARK (srv-token-error-quark, srv_token_error)

static void
ensure_sodium (void)
{
  static gsize once;

  if (g_once_init_enter (&once))
    {
      if (sodium_init () < 0)
        g_error ("libsodium failed to initialise");
      g_once_init_leave (&once, 1);
    }
}

static void
clear_key (gpointer data)
{
  SrvKey *key = data;

  sodium_memzero (key->key, sizeof key->key);
}

SrvKeyring *
srv_keyring_new (void)
{
  SrvKeyring *keyring = g_new0 (SrvKeyring, 1);

  ensure_sodium ();
  keyring->keys = g_array_new (FALSE, TRUE, sizeof (SrvKey));
  g_array_set_clear_func (keyring->keys, clear_key);
  return keyring;
}

void
srv_keyring_free (SrvKeyring *keyring)
{
  if (keyring == NULL)
    return;
  g_array_unref (keyring->keys);
  g_free (keyring);
}

/* Adds a key; @retired_at 0 makes it the signing key (the newest such key signs). */
void
srv_keyring_add_key (SrvKeyring   *keyring,
                     guint32       key_id,
                     const guint8 *key,
                     gint64        created_at,
                     gint64        retired_at)
{
  SrvKey k = { .id = key_id, .created_at = created_at, .retired_at = retired_at };

  memcpy (k.key, key, KEY_LEN);
  g_array_append_val (keyring->keys, k);
  sodium_memzero (k.key, sizeof k.key);
}

static const SrvKey *
current_key (SrvKeyring *keyring)
{
  for (guint i = keyring->keys->len; i > 0; i--)
    {
      const SrvKey *k = &g_array_index (keyring->keys, SrvKey, i - 1);

      if (k->retired_at == 0)
        return k;
    }
  return NULL;
}

static const SrvKey *
find_key (SrvKeyring *keyring,
          guint32     key_id,
          gint64      now)
{
  for (guint i = 0; i < keyring->keys->len; i++)
    {
      const SrvKey *k = &g_array_index (keyring->keys, SrvKey, i);

      if (k->id != key_id)
        continue;
      if (k->retired_at != 0 && now > k->retired_at + SRV_TOKEN_MAX_LIFETIME_S)
        return NULL;
      return k;
    }
  return NULL;
}

guint32
srv_keyring_current_id (SrvKeyring *keyring)
{
  const SrvKey *k = current_key (keyring);

  return k ? k->id : 0;
}

guint
srv_keyring_size (SrvKeyring *keyring)
{
  return keyring->keys->len;
}

/* The keyring file's text: one "key id=N created=T retired=T secret=BASE64" line per key. */
char *
srv_keyring_to_text (SrvKeyring *keyring)
{
  GString *text = g_string_new ("# magpied server keys: keep secret, share with every "
                                "node of one deployment\n");

  for (guint i = 0; i < keyring->keys->len; i++)
    {
      const SrvKey *k = &g_array_index (keyring->keys, SrvKey, i);
      g_autofree char *b64 = g_base64_encode (k->key, KEY_LEN);

      g_string_append_printf (text, "key id=%u created=%" G_GINT64_FORMAT
                              " retired=%" G_GINT64_FORMAT " secret=%s\n",
                              k->id, k->created_at, k->retired_at, b64);
      sodium_memzero (b64, strlen (b64));
    }
  return g_string_free (text, FALSE);
}

static gboolean
keyring_save (SrvKeyring  *keyring,
              const char  *path,
              GError     **error)
{
  g_autofree char *text = srv_keyring_to_text (keyring);
  g_autoptr(GError) local_error = NULL;
  gsize len = strlen (text);
  gboolean ok = g_file_set_contents_full (path, text, len,
                                          G_FILE_SET_CONTENTS_CONSISTENT |
                                            G_FILE_SET_CONTENTS_DURABLE,
                                          0600, &local_error);

  sodium_memzero (text, len);
  if (!ok)
    g_set_error (error, SRV_TOKEN_ERROR, SRV_TOKEN_ERROR_KEYRING,
                 "cannot write keyring %s: %s", path, local_error->message);
  return ok;
}

static void
add_fresh_key (SrvKeyring *keyring,
               gint64      now)
{
  guint8 key[KEY_LEN];
  guint32 id = 1;

  for (guint i = 0; i < keyring->keys->len; i++)
    id = MAX (id, g_array_index (keyring->keys, SrvKey, i).id + 1);
  crypto_kdf_keygen (key);
  srv_keyring_add_key (keyring, id, key, now, 0);
  sodium_memzero (key, sizeof key);
}

static void
drop_expired_keys (SrvKeyring *keyring,
                   gint64      now)
{
  for (guint i = keyring->keys->len; i > 0; i--)
    {
      const SrvKey *k = &g_array_index (keyring->keys, SrvKey, i - 1);

      if (k->retired_at != 0 && now > k->retired_at + SRV_TOKEN_MAX_LIFETIME_S)
        g_array_remove_index (keyring->keys, i - 1);
    }
}

static gboolean
parse_key_line (const char  *line,
                SrvKey      *out)
{
  g_auto(GStrv) words = g_strsplit (line, " ", -1);
  gboolean have_id = FALSE, have_secret = FALSE;

  if (g_strcmp0 (words[0], "key") != 0)
    return FALSE;
  memset (out, 0, sizeof *out);
  for (char **w = words + 1; *w; w++)
    {
      char *end = NULL;

      if (g_str_has_prefix (*w, "id="))
        {
          guint64 v = g_ascii_strtoull (*w + 3, &end, 10);
          if (*end != '\0' || v == 0 || v > G_MAXUINT32)
            return FALSE;
          out->id = (guint32) v;
          have_id = TRUE;
        }
      else if (g_str_has_prefix (*w, "created="))
        out->created_at = g_ascii_strtoll (*w + 8, &end, 10);
      else if (g_str_has_prefix (*w, "retired="))
        out->retired_at = g_ascii_strtoll (*w + 8, &end, 10);
      else if (g_str_has_prefix (*w, "secret="))
        {
          gsize len = 0;
          g_autofree guint8 *raw = g_base64_decode (*w + 7, &len);

          if (len != KEY_LEN)
            return FALSE;
          memcpy (out->key, raw, KEY_LEN);
          sodium_memzero (raw, len);
          have_secret = TRUE;
        }
      if (end != NULL && *end != '\0')
        return FALSE;
    }
  return have_id && have_secret;
}

/* Replaces the keys with those in @text (srv_keyring_to_text()'s form), dropping keys past
 * their grace. @where names the text's origin in errors. Returns FALSE on a malformed line. */
gboolean
srv_keyring_load_text (SrvKeyring  *keyring,
                       const char  *text,
                       const char  *where,
                       gint64       now,
                       GError     **error)
{
  g_auto(GStrv) lines = g_strsplit (text, "\n", -1);
  guint lineno = 0;
  gboolean ok = TRUE;

  g_array_set_size (keyring->keys, 0);
  for (char **l = lines; *l; l++)
    {
      SrvKey k;

      lineno++;
      g_strstrip (*l);
      if (ok && **l != '\0' && **l != '#')
        {
          if (parse_key_line (*l, &k))
            srv_keyring_add_key (keyring, k.id, k.key, k.created_at, k.retired_at);
          else
            {
              g_set_error (error, SRV_TOKEN_ERROR, SRV_TOKEN_ERROR_KEYRING,
                           "%s:%u: not a key line (expected: key id=N created=T retired=T "
                           "secret=BASE64)", where, lineno);
              ok = FALSE;
            }
          sodium_memzero (&k, sizeof k);
        }
      sodium_memzero (*l, strlen (*l));
    }
  if (!ok)
    {
      g_array_set_size (keyring->keys, 0);
      return FALSE;
    }
  drop_expired_keys (keyring, now);
  return TRUE;
}

/* Adds a new signing key when the keyring has none (a new deployment). Returns whether it did. */
gboolean
srv_keyring_ensure_current (SrvKeyring *keyring,
                            gint64      now)
{
  if (current_key (keyring) != NULL)
    return FALSE;
  add_fresh_key (keyring, now);
  return TRUE;
}

/* Loads the keyring file, creating it (mode 0600) with one fresh key when it does not
 * exist. Returns FALSE and sets @error when the file is unreadable or malformed. */
gboolean
srv_keyring_load (SrvKeyring  *keyring,
                  const char  *path,
                  gint64       now,
                  GError     **error)
{
  g_autofree char *text = NULL;
  g_autoptr(GError) local_error = NULL;
  gboolean ok;

  g_array_set_size (keyring->keys, 0);
  if (!g_file_get_contents (path, &text, NULL, &local_error))
    {
      if (!g_error_matches (local_error, G_FILE_ERROR, G_FILE_ERROR_NOENT))
        {
          g_set_error (error, SRV_TOKEN_ERROR, SRV_TOKEN_ERROR_KEYRING,
                       "cannot read keyring %s: %s", path, local_error->message);
          return FALSE;
        }
      add_fresh_key (keyring, now);
      return keyring_save (keyring, path, error);
    }

  ok = srv_keyring_load_text (keyring, text, path, now, error);
  sodium_memzero (text, strlen (text));
  if (!ok)
    return FALSE;
  if (srv_keyring_ensure_current (keyring, now))
    return keyring_save (keyring, path, error);
  return TRUE;
}

/* Retires the signing key, adds a new one, drops keys past their grace, saves. */
gboolean
srv_keyring_rotate (SrvKeyring  *keyring,
                    const char  *path,
                    gint64       now,
                    GError     **error)
{
  for (guint i = 0; i < keyring->keys->len; i++)
    {
      SrvKey *k = &g_array_index (keyring->keys, SrvKey, i);

      if (k->retired_at == 0)
        k->retired_at = now;
    }
  drop_expired_keys (keyring, now);
  add_fresh_key (keyring, now);
  return path == NULL || keyring_save (keyring, path, error);
}

gboolean
srv_identity_id_is_valid (const char *identity_id)
{
  gsize len;

  if (identity_id == NULL)
    return FALSE;
  len = strlen (identity_id);
  if (len == 0 || len > SRV_IDENTITY_ID_MAX)
    return FALSE;
  for (const char *p = identity_id; *p; p++)
    if (!g_ascii_isalnum (*p) && *p != '-' && *p != '_')
      return FALSE;
  return TRUE;
}

static char *
base64url_encode (const guint8 *data,
                  gsize         len)
{
  gsize out_len = sodium_base64_encoded_len (len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  char *out = g_malloc (out_len);

  sodium_bin2base64 (out, out_len, data, len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  return out;
}

static void
derive (const SrvKey *key,
        guint64       subkey_id,
        guint8        out[KEY_LEN])
{
  crypto_kdf_derive_from_key (out, KEY_LEN, subkey_id, KDF_CONTEXT, key->key);
}

static void
compute_mac (const SrvKey *key,
             const guint8 *data,
             gsize         len,
             guint8        mac[MAC_LEN])
{
  guint8 subkey[KEY_LEN];

  derive (key, KDF_ID_MAC, subkey);
  crypto_auth_hmacsha256 (mac, data, len, subkey);
  sodium_memzero (subkey, sizeof subkey);
}

static char *
secret_for_mac (const SrvKey *key,
                const guint8  mac[MAC_LEN])
{
  guint8 subkey[KEY_LEN];
  guint8 raw[MAC_LEN];
  char *secret;

  derive (key, KDF_ID_SECRET, subkey);
  crypto_auth_hmacsha256 (raw, mac, MAC_LEN, subkey);
  secret = g_base64_encode (raw, SECRET_RAW_LEN);
  sodium_memzero (subkey, sizeof subkey);
  sodium_memzero (raw, sizeof raw);
  return secret;
}

static char *
new_access_key_id (void)
{
  static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  char id[ACCESS_KEY_LEN + 1] = "ASIA";
  guint8 random[ACCESS_KEY_LEN];

  /* One draw for the whole id (randombytes_uniform() would make a syscall per character);
   * 256 is a multiple of 32, so taking the low five bits keeps every character uniform. */
  randombytes_buf (random, sizeof random);
  for (int i = 4; i < ACCESS_KEY_LEN; i++)
    id[i] = alphabet[random[i] & 31];
  id[ACCESS_KEY_LEN] = '\0';
  return g_strdup (id);
}

/* Mints credentials for @identity_id valid from @now for @lifetime_s seconds (900..43200).
 * Returns NULL with SRV_TOKEN_ERROR_INVALID for a bad identity id or lifetime. */
SrvCredentials *
srv_credentials_mint (SrvKeyring      *keyring,
                      const char      *identity_id,
                      SrvIdentityKind  kind,
                      gint64           now,
                      gint64           lifetime_s,
                      GError         **error)
{
  const SrvKey *key = current_key (keyring);
  g_autoptr(SrvCredentials) creds = NULL;
  g_autoptr(GByteArray) buf = NULL;
  guint8 mac[MAC_LEN];
  guint8 id_len;
  guint32 kid_be;
  gint64 exp_be;
  guint8 b;

  g_return_val_if_fail (key != NULL, NULL);

  if (!srv_identity_id_is_valid (identity_id))
    {
      g_set_error (error, SRV_TOKEN_ERROR, SRV_TOKEN_ERROR_INVALID,
                   "identity id must be 1 to %d characters of A-Z, a-z, 0-9, '-' and '_'",
                   SRV_IDENTITY_ID_MAX);
      return NULL;
    }
  if (lifetime_s < SRV_TOKEN_MIN_LIFETIME_S || lifetime_s > SRV_TOKEN_MAX_LIFETIME_S)
    {
      g_set_error (error, SRV_TOKEN_ERROR, SRV_TOKEN_ERROR_INVALID,
                   "duration_seconds must be between %d and %d, not %" G_GINT64_FORMAT,
                   SRV_TOKEN_MIN_LIFETIME_S, SRV_TOKEN_MAX_LIFETIME_S, lifetime_s);
      return NULL;
    }

  creds = g_new0 (SrvCredentials, 1);
  creds->identity_id = g_strdup (identity_id);
  creds->kind = kind;
  creds->access_key_id = new_access_key_id ();
  creds->prefix = g_strdup_printf ("users/%s/", identity_id);
  creds->expires_at = now + lifetime_s;
  creds->key_id = key->id;

  buf = g_byte_array_new ();
  b = TOKEN_VERSION;
  g_byte_array_append (buf, &b, 1);
  kid_be = GUINT32_TO_BE (key->id);
  g_byte_array_append (buf, (guint8 *) &kid_be, 4);
  exp_be = GINT64_TO_BE (creds->expires_at);
  g_byte_array_append (buf, (guint8 *) &exp_be, 8);
  b = (guint8) kind;
  g_byte_array_append (buf, &b, 1);
  id_len = (guint8) strlen (identity_id);
  g_byte_array_append (buf, &id_len, 1);
  g_byte_array_append (buf, (const guint8 *) identity_id, id_len);
  g_byte_array_append (buf, (const guint8 *) creds->access_key_id, ACCESS_KEY_LEN);
  compute_mac (key, buf->data, buf->len, mac);
  g_byte_array_append (buf, mac, MAC_LEN);

  creds->session_token = base64url_encode (buf->data, buf->len);
  creds->secret_access_key = secret_for_mac (key, mac);
  return g_steal_pointer (&creds);
}

/* Checks @session_token at time @now. Returns the credentials it stands for (with the derived
 * secret access key), or NULL with MALFORMED, FORGED (bad MAC, unknown or long-retired key)
 * or EXPIRED. Never trusts a field before the MAC has verified. */
SrvCredentials *
srv_credentials_verify (SrvKeyring  *keyring,
                        const char  *session_token,
                        gint64       now,
                        GError     **error)
{
  guint8 raw[HEADER_LEN + SRV_IDENTITY_ID_MAX + ACCESS_KEY_LEN + MAC_LEN];
  g_autoptr(SrvCredentials) creds = NULL;
  const SrvKey *key;
  guint8 mac[MAC_LEN];
  size_t raw_len = 0;
  guint32 kid;
  gint64 expires;
  guint8 kind, id_len;
  gsize body_len;

  if (session_token == NULL ||
      sodium_base642bin (raw, sizeof raw, session_token, strlen (session_token), NULL,
                         &raw_len, NULL, sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
      raw_len < HEADER_LEN + 1 + ACCESS_KEY_LEN + MAC_LEN || raw[0] != TOKEN_VERSION)
    {
      g_set_error (error, SRV_TOKEN_ERROR, SRV_TOKEN_ERROR_MALFORMED,
                   "the session token is not a Magpie token");
      return NULL;
    }

  memcpy (&kid, raw + 1, 4);
  kid = GUINT32_FROM_BE (kid);
  memcpy (&expires, raw + 5, 8);
  expires = GINT64_FROM_BE (expires);
  kind = raw[13];
  id_len = raw[14];
  body_len = HEADER_LEN + id_len + ACCESS_KEY_LEN;
  if (id_len == 0 || id_len > SRV_IDENTITY_ID_MAX || raw_len != body_len + MAC_LEN)
    {
      g_set_error (error, SRV_TOKEN_ERROR, SRV_TOKEN_ERROR_MALFORMED,
                   "the session token is not a Magpie token");
      return NULL;
    }

  key = find_key (keyring, kid, now);
  if (key == NULL)
    {
      g_set_error (error, SRV_TOKEN_ERROR, SRV_TOKEN_ERROR_FORGED,
                   "the session token was signed with a key this server does not hold");
      return NULL;
    }
  compute_mac (key, raw, body_len, mac);
  if (sodium_memcmp (mac, raw + body_len, MAC_LEN) != 0)
    {
      g_set_error (error, SRV_TOKEN_ERROR, SRV_TOKEN_ERROR_FORGED,
                   "the session token does not verify");
      return NULL;
    }

  /* Authentic from here on; a well-signed token still has to be well-formed and current. */
  if (kind > SRV_IDENTITY_ACCOUNT)
    {
      g_set_error (error, SRV_TOKEN_ERROR, SRV_TOKEN_ERROR_MALFORMED,
                   "the session token names an unknown identity kind");
      return NULL;
    }
  if (now >= expires)
    {
      g_autoptr(GDateTime) dt = g_date_time_new_from_unix_utc (expires);
      g_autofree char *when = dt ? g_date_time_format_iso8601 (dt) : g_strdup ("?");

      g_set_error (error, SRV_TOKEN_ERROR, SRV_TOKEN_ERROR_EXPIRED,
                   "the session token expired at %s", when);
      return NULL;
    }

  creds = g_new0 (SrvCredentials, 1);
  creds->identity_id = g_strndup ((const char *) raw + HEADER_LEN, id_len);
  if (!srv_identity_id_is_valid (creds->identity_id))
    {
      g_set_error (error, SRV_TOKEN_ERROR, SRV_TOKEN_ERROR_MALFORMED,
                   "the session token names an invalid identity");
      return NULL;
    }
  creds->kind = kind;
  creds->access_key_id = g_strndup ((const char *) raw + HEADER_LEN + id_len, ACCESS_KEY_LEN);
  creds->prefix = g_strdup_printf ("users/%s/", creds->identity_id);
  creds->expires_at = expires;
  creds->key_id = kid;
  creds->session_token = g_strdup (session_token);
  creds->secret_access_key = secret_for_mac (key, mac);
  return g_steal_pointer (&creds);
}

void
srv_credentials_free (SrvCredentials *credentials)
{
  if (credentials == NULL)
    return;
  g_free (credentials->identity_id);
  g_free (credentials->access_key_id);
  if (credentials->secret_access_key)
    sodium_memzero (credentials->secret_access_key, strlen (credentials->secret_access_key));
  g_free (credentials->secret_access_key);
  g_free (credentials->session_token);
  g_free (credentials->prefix);
  g_free (credentials);
}
