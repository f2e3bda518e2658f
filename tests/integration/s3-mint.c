/* s3-mint.c - mint temporary S3 credentials from a magpied data dir's keyring, for tests
 *
 * usage: s3-mint DATA_DIR IDENTITY_ID [AGE_S]
 * Prints the credentials as JSON, minted AGE_S seconds ago (default 0) with the minimum
 * lifetime, so an AGE_S above 900 gives credentials that have already expired. Tests use it
 * for the expired-token denials that /v1/credentials (rightly) cannot hand out.
 */
#include "config.h"

#include <json-glib/json-glib.h>
#include <stdio.h>

#include "srv-token.h"

int
main (int   argc,
      char *argv[])
{
  g_autoptr(SrvKeyring) keyring = srv_keyring_new ();
  g_autoptr(SrvCredentials) creds = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonBuilder) b = json_builder_new ();
  g_autoptr(JsonNode) root = NULL;
  g_autofree char *path = NULL;
  g_autofree char *text = NULL;
  gint64 now = g_get_real_time () / G_USEC_PER_SEC;
  gint64 age = 0;

  if (argc < 3 || argc > 4 || (argc == 4 && !g_ascii_string_to_signed (argv[3], 10, 0,
                                                                          G_MAXINT32, &age,
                                                                          NULL)))
    {
      fprintf (stderr, "usage: %s DATA_DIR IDENTITY_ID [AGE_S]\n", argv[0]);
      return 2;
    }
  path = g_build_filename (argv[1], "keyring", NULL);
  if (!srv_keyring_load (keyring, path, now, &error) ||
      (creds = srv_credentials_mint (keyring, argv[2], SRV_IDENTITY_GUEST, now - age,
                                     age > 0 ? SRV_TOKEN_MIN_LIFETIME_S
                                             : SRV_TOKEN_DEFAULT_LIFETIME_S,
                                     &error)) == NULL)
    {
      fprintf (stderr, "s3-mint: %s\n", error->message);
      return 1;
    }

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "identity_id");
  json_builder_add_string_value (b, creds->identity_id);
  json_builder_set_member_name (b, "access_key_id");
  json_builder_add_string_value (b, creds->access_key_id);
  json_builder_set_member_name (b, "secret_access_key");
  json_builder_add_string_value (b, creds->secret_access_key);
  json_builder_set_member_name (b, "session_token");
  json_builder_add_string_value (b, creds->session_token);
  json_builder_set_member_name (b, "prefix");
  json_builder_add_string_value (b, creds->prefix);
  json_builder_set_member_name (b, "expires_at");
  json_builder_add_int_value (b, creds->expires_at);
  json_builder_end_object (b);
  root = json_builder_get_root (b);
  text = json_to_string (root, FALSE);
  puts (text);
  return 0;
}
