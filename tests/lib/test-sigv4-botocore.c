/* test-sigv4-botocore.c - interoperability with a real client: requests signed offline by
 * botocore (sigv4-botocore.py) must verify with mp-sigv4, and mp-sigv4 must sign them the same */
#include "config.h"

#include <string.h>
#include <json-glib/json-glib.h>

#include "mp-sigv4.h"

#define PYTHON "/usr/bin/python3"

static JsonArray *cases;

static const char *
member_string (JsonObject *o, const char *name)
{
  JsonNode *node = json_object_get_member (o, name);

  return node && !JSON_NODE_HOLDS_NULL (node) ? json_node_get_string (node) : NULL;
}

static gboolean
is_auth_header (const char *name)
{
  return g_ascii_strcasecmp (name, "authorization") == 0 ||
         g_ascii_strcasecmp (name, "x-amz-date") == 0 ||
         g_ascii_strcasecmp (name, "x-amz-security-token") == 0 ||
         g_ascii_strcasecmp (name, "x-amz-content-sha256") == 0;
}

/* The query without the X-Amz-* parameters a presigner adds. */
static char *
strip_presign_params (const char *query)
{
  g_auto(GStrv) parts = g_strsplit (query, "&", -1);
  GString *out = g_string_new (NULL);

  for (guint i = 0; parts[i]; i++)
    {
      if (g_str_has_prefix (parts[i], "X-Amz-"))
        continue;
      if (out->len)
        g_string_append_c (out, '&');
      g_string_append (out, parts[i]);
    }
  return g_string_free (out, FALSE);
}

static const char *
query_param (const char *query, const char *name, char **owned)
{
  g_auto(GStrv) parts = g_strsplit (query, "&", -1);
  g_autofree char *prefix = g_strconcat (name, "=", NULL);

  for (guint i = 0; parts[i]; i++)
    if (g_str_has_prefix (parts[i], prefix))
      return *owned = g_strdup (parts[i] + strlen (prefix));
  return NULL;
}

static void
test_case (gconstpointer data)
{
  JsonObject *c = json_array_get_object_element (cases, GPOINTER_TO_UINT (data));
  const char *kind = member_string (c, "kind");
  const char *service = member_string (c, "service");
  const char *region = member_string (c, "region");
  const char *secret = member_string (c, "secret");
  const char *body_sha256 = member_string (c, "body_sha256");
  gboolean s3 = g_strcmp0 (service, "s3") == 0;
  gboolean presign = g_strcmp0 (kind, "presign") == 0;
  MpSigv4Flags flags = s3 ? MP_SIGV4_FLAGS_S3 : MP_SIGV4_FLAGS_GENERIC;
  JsonArray *json_headers = json_object_get_array_member (c, "headers");
  g_autoptr(GArray) headers = g_array_new (FALSE, FALSE, sizeof (MpSigv4Header));
  g_autoptr(GArray) unsigned_headers = g_array_new (FALSE, FALSE, sizeof (MpSigv4Header));
  MpSigv4Header host = { "Host", member_string (c, "host") };
  const char *authorization = NULL;
  gint64 now = 0;
  MpSigv4Request req = { 0, };
  g_autoptr(MpSigv4Auth) auth = NULL;
  g_autoptr(MpSigv4Signed) s = NULL;
  g_autoptr(GError) error = NULL;
  MpSigv4VerifyParams vparams;
  MpSigv4SigningParams sparams;

  g_test_message ("botocore case %s", member_string (c, "name"));
  g_assert_true (mp_sigv4_parse_amz_date (member_string (c, "timestamp"), &now));

  g_array_append_val (headers, host);
  g_array_append_val (unsigned_headers, host);
  for (guint i = 0; i < json_array_get_length (json_headers); i++)
    {
      JsonArray *pair = json_array_get_array_element (json_headers, i);
      MpSigv4Header h = { json_array_get_string_element (pair, 0),
                          json_array_get_string_element (pair, 1) };

      g_array_append_val (headers, h);
      if (g_ascii_strcasecmp (h.name, "authorization") == 0)
        authorization = h.value;
      if (!is_auth_header (h.name))
        g_array_append_val (unsigned_headers, h);
    }

  /* 1. what botocore signed, mp-sigv4 verifies (a few seconds later, as a server would) */
  req.method = member_string (c, "method");
  req.path = member_string (c, "path");
  req.query = member_string (c, "query");
  req.headers = (const MpSigv4Header *) headers->data;
  req.n_headers = headers->len;
  req.payload_hash = s3 ? NULL : body_sha256;
  vparams = (MpSigv4VerifyParams) { now + 3, region, service, flags };
  auth = mp_sigv4_parse_request (&req, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (auth->access_key_id, ==, member_string (c, "access_key_id"));
  g_assert_cmpstr (auth->security_token, ==, member_string (c, "token"));
  g_assert_true (mp_sigv4_verify (auth, &req, secret, &vparams, &error));
  g_assert_no_error (error);

  /* ... and rejects it under another secret */
  {
    g_autofree char *wrong = g_strconcat (secret, "x", NULL);
    g_autoptr(GError) mismatch = NULL;

    g_assert_false (mp_sigv4_verify (auth, &req, wrong, &vparams, &mismatch));
    g_assert_error (mismatch, MP_SIGV4_ERROR, MP_SIGV4_ERROR_SIGNATURE_MISMATCH);
  }

  /* 2. mp-sigv4 signs the unsigned request exactly as botocore did */
  sparams = (MpSigv4SigningParams) { member_string (c, "access_key_id"), secret,
                                     member_string (c, "token"), region, service, now, flags };
  req.headers = (const MpSigv4Header *) unsigned_headers->data;
  req.n_headers = unsigned_headers->len;
  if (presign)
    {
      g_autofree char *original_query = strip_presign_params (req.query);
      g_autofree char *expected_signature = NULL;
      g_autofree char *signature = NULL;

      req.query = original_query;
      req.payload_hash = NULL;
      s = mp_sigv4_presign (&req, &sparams, json_object_get_int_member (c, "expires"), &error);
      g_assert_no_error (error);
      query_param (member_string (c, "query"), "X-Amz-Signature", &expected_signature);
      query_param (s->query, "X-Amz-Signature", &signature);
      g_assert_cmpstr (signature, ==, expected_signature);
      g_assert_cmpstr (s->query, ==, member_string (c, "query"));
    }
  else
    {
      req.payload_hash = body_sha256;
      s = mp_sigv4_sign (&req, &sparams, &error);
      g_assert_no_error (error);
      g_assert_nonnull (authorization);
      g_assert_cmpstr (s->authorization, ==, authorization);
    }
}

int
main (int argc, char *argv[])
{
  g_autofree char *script = NULL;
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  g_autoptr(JsonParser) parser = json_parser_new ();
  g_autoptr(GError) error = NULL;
  const char *argv_py[3] = { PYTHON, NULL, NULL };
  int status = 0;

  g_test_init (&argc, &argv, NULL);

  if (!g_file_test (PYTHON, G_FILE_TEST_IS_EXECUTABLE))
    {
      g_print ("SKIP: " PYTHON " is not installed\n");
      return 77;
    }
  script = g_build_filename (g_getenv ("MAGPIE_SOURCE_DIR") ? g_getenv ("MAGPIE_SOURCE_DIR")
                                                            : MAGPIE_SOURCE_DIR,
                             "tests", "lib", "sigv4-botocore.py", NULL);
  argv_py[1] = script;
  if (!g_spawn_sync (NULL, (char **) argv_py, NULL, G_SPAWN_DEFAULT, NULL, NULL, &out, &err,
                     &status, &error))
    g_error ("cannot run %s: %s", script, error->message);
  if (!g_spawn_check_wait_status (status, &error))
    {
      if (g_error_matches (error, G_SPAWN_EXIT_ERROR, 77))
        {
          g_print ("SKIP: %s", err);
          return 77;
        }
      g_error ("%s failed: %s\n%s", script, error->message, err);
    }
  if (!json_parser_load_from_data (parser, out, -1, &error))
    g_error ("%s printed no JSON: %s", script, error->message);
  cases = json_node_get_array (json_parser_get_root (parser));

  for (guint i = 0; i < json_array_get_length (cases); i++)
    {
      JsonObject *c = json_array_get_object_element (cases, i);
      g_autofree char *path = g_strconcat ("/lib/sigv4/botocore/", member_string (c, "name"),
                                           NULL);

      g_test_add_data_func (path, GUINT_TO_POINTER (i), test_case);
    }
  status = g_test_run ();
  g_print ("# botocore interop: %u requests signed by botocore %s\n",
           json_array_get_length (cases), status == 0 ? "verified and re-signed identically"
                                                      : "checked, with failures");
  return status;
}
