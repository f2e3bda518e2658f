/* test-s3-auth.c - S3 request authentication, prefix authorization and body spooling */
#include "config.h"

#include <glib/gstdio.h>
#include <string.h>

#include "mp-sigv4.h"
#include "srv-s3-auth.h"
#include "srv-s3-body.h"

#define NOW G_GINT64_CONSTANT (1795426865)

typedef struct {
  SrvKeyring     *keyring;
  SrvCredentials *alice;
  SrvCredentials *bob;
  char           *dir;
} Fixture;

static void
fixture_setup (Fixture       *f,
               gconstpointer  data)
{
  guint8 key[32];

  memset (key, 42, sizeof key);
  f->keyring = srv_keyring_new ();
  srv_keyring_add_key (f->keyring, 1, key, NOW - 1000, 0);
  f->alice = srv_credentials_mint (f->keyring, "alice", SRV_IDENTITY_GUEST, NOW, 3600, NULL);
  f->bob = srv_credentials_mint (f->keyring, "bob", SRV_IDENTITY_GUEST, NOW, 3600, NULL);
  f->dir = g_dir_make_tmp ("test-s3-auth-XXXXXX", NULL);
}

static void
fixture_teardown (Fixture       *f,
                  gconstpointer  data)
{
  srv_keyring_free (f->keyring);
  srv_credentials_free (f->alice);
  srv_credentials_free (f->bob);
  g_assert_cmpint (g_rmdir (f->dir), ==, 0);  /* spool files are nameless: nothing left */
  g_free (f->dir);
}

/* A request as a client builds it: Host plus what the signer sets. Owns its strings. */
typedef struct {
  MpSigv4Request  request;
  GArray         *headers;
  MpSigv4Signed  *signed_request;
  char           *query;
} Signed;

static void
signed_free (Signed *s)
{
  g_array_unref (s->headers);
  mp_sigv4_signed_free (s->signed_request);
  g_free (s->query);
  g_free (s);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Signed, signed_free)

static Signed *
sign (const SrvCredentials *creds,
      const char           *method,
      const char           *path,
      const char           *payload_hash,
      const char           *region,
      gint64                now,
      gboolean              presign)
{
  Signed *s = g_new0 (Signed, 1);
  MpSigv4Header host = { "Host", "127.0.0.1:9000" };
  MpSigv4SigningParams params = { creds->access_key_id, creds->secret_access_key,
                                  creds->session_token, region, "s3", now, MP_SIGV4_FLAGS_S3 };
  g_autoptr(GError) error = NULL;

  s->headers = g_array_new (FALSE, FALSE, sizeof (MpSigv4Header));
  g_array_append_val (s->headers, host);
  s->request.method = method;
  s->request.path = path;
  s->request.headers = (MpSigv4Header *) s->headers->data;
  s->request.n_headers = s->headers->len;
  s->request.payload_hash = payload_hash;
  s->signed_request = presign ? mp_sigv4_presign (&s->request, &params, 300, &error)
                              : mp_sigv4_sign (&s->request, &params, &error);
  g_assert_no_error (error);
  if (presign)
    s->query = g_strdup (s->signed_request->query);
  for (gsize i = 0; i < s->signed_request->n_set_headers; i++)
    g_array_append_val (s->headers, s->signed_request->set_headers[i]);
  s->request.query = s->query;
  s->request.headers = (MpSigv4Header *) s->headers->data;
  s->request.n_headers = s->headers->len;
  /* The server reads the hash from x-amz-content-sha256, as it arrives on the wire. */
  s->request.payload_hash = NULL;
  return s;
}

static void
assert_s3_error (const GError *error,
                 const char   *code,
                 guint         status)
{
  guint got_status = 0;

  g_assert_nonnull (error);
  g_assert_cmpstr (srv_s3_error_code (error, &got_status), ==, code);
  g_assert_cmpuint (got_status, ==, status);
}

static void
test_valid (Fixture *f, gconstpointer data)
{
  g_autoptr(Signed) s = sign (f->alice, "GET", "/magpie/users/alice/a%20b.jpg", NULL,
                              "us-east-1", NOW, FALSE);
  g_autoptr(GError) error = NULL;
  g_autoptr(SrvS3Principal) p = srv_s3_authenticate (f->keyring, NULL, &s->request, "us-east-1",
                                                     NOW + 60, &error);

  g_assert_no_error (error);
  g_assert_cmpstr (p->credentials->identity_id, ==, "alice");
  g_assert_cmpstr (p->auth->payload_hash, ==, MP_SIGV4_EMPTY_SHA256);
}

static void
test_presigned (Fixture *f, gconstpointer data)
{
  g_autoptr(Signed) s = sign (f->alice, "GET", "/magpie/users/alice/x", NULL, "us-east-1", NOW,
                              TRUE);
  g_autoptr(GError) error = NULL;
  g_autoptr(SrvS3Principal) p = srv_s3_authenticate (f->keyring, NULL, &s->request, "us-east-1",
                                                     NOW + 10, &error);

  g_assert_no_error (error);
  g_assert_true (p->auth->presigned);
  g_assert_null (srv_s3_authenticate (f->keyring, NULL, &s->request, "us-east-1", NOW + 301, &error));
  assert_s3_error (error, "AccessDenied", 403);
}

static void
test_anonymous (Fixture *f, gconstpointer data)
{
  MpSigv4Header host = { "Host", "127.0.0.1" };
  MpSigv4Request r = { "GET", "/magpie/users/alice/x", NULL, &host, 1, NULL };
  g_autoptr(GError) error = NULL;

  g_assert_null (srv_s3_authenticate (f->keyring, NULL, &r, "us-east-1", NOW, &error));
  assert_s3_error (error, "AccessDenied", 403);
}

/* Drops x-amz-security-token: only temporary credentials exist. */
static void
test_no_token (Fixture *f, gconstpointer data)
{
  g_autoptr(Signed) s = sign (f->alice, "GET", "/magpie/users/alice/x", NULL, "us-east-1", NOW,
                              FALSE);
  g_autoptr(GError) error = NULL;

  for (guint i = 0; i < s->headers->len; i++)
    if (g_ascii_strcasecmp (g_array_index (s->headers, MpSigv4Header, i).name,
                            "x-amz-security-token") == 0)
      g_array_remove_index (s->headers, i);
  s->request.headers = (MpSigv4Header *) s->headers->data;
  s->request.n_headers = s->headers->len;
  g_assert_null (srv_s3_authenticate (f->keyring, NULL, &s->request, "us-east-1", NOW, &error));
  assert_s3_error (error, "InvalidAccessKeyId", 403);
}

static void
test_expired (Fixture *f, gconstpointer data)
{
  g_autoptr(Signed) s = sign (f->alice, "GET", "/magpie/users/alice/x", NULL, "us-east-1",
                              NOW + 3601, FALSE);
  g_autoptr(GError) error = NULL;

  g_assert_null (srv_s3_authenticate (f->keyring, NULL, &s->request, "us-east-1", NOW + 3601, &error));
  assert_s3_error (error, "ExpiredToken", 403);
}

static void
test_forged (Fixture *f, gconstpointer data)
{
  g_autoptr(SrvCredentials) forged = srv_credentials_mint (f->keyring, "alice",
                                                           SRV_IDENTITY_GUEST, NOW, 3600, NULL);
  g_autoptr(Signed) s = NULL;
  g_autoptr(GError) error = NULL;
  gsize len = strlen (forged->session_token);

  forged->session_token[len - 2] = forged->session_token[len - 2] == 'A' ? 'B' : 'A';
  s = sign (forged, "GET", "/magpie/users/alice/x", NULL, "us-east-1", NOW, FALSE);
  g_assert_null (srv_s3_authenticate (f->keyring, NULL, &s->request, "us-east-1", NOW, &error));
  assert_s3_error (error, "InvalidToken", 403);
}

/* Bob's token with Alice's key id and secret: the key must be the token's. */
static void
test_token_of_another (Fixture *f, gconstpointer data)
{
  SrvCredentials mixed = *f->alice;
  g_autoptr(Signed) s = NULL;
  g_autoptr(GError) error = NULL;

  mixed.session_token = f->bob->session_token;
  s = sign (&mixed, "GET", "/magpie/users/alice/x", NULL, "us-east-1", NOW, FALSE);
  g_assert_null (srv_s3_authenticate (f->keyring, NULL, &s->request, "us-east-1", NOW, &error));
  assert_s3_error (error, "InvalidAccessKeyId", 403);
}

static void
test_signature_mismatch (Fixture *f, gconstpointer data)
{
  g_autoptr(Signed) s = sign (f->alice, "GET", "/magpie/users/alice/x", NULL, "us-east-1", NOW,
                              FALSE);
  g_autoptr(GError) error = NULL;

  s->request.path = "/magpie/users/alice/y";
  g_assert_null (srv_s3_authenticate (f->keyring, NULL, &s->request, "us-east-1", NOW, &error));
  assert_s3_error (error, "SignatureDoesNotMatch", 403);
}

static void
test_skew_and_region (Fixture *f, gconstpointer data)
{
  g_autoptr(Signed) s = sign (f->alice, "GET", "/magpie/users/alice/x", NULL, "us-east-1", NOW,
                              FALSE);
  g_autoptr(Signed) r = sign (f->alice, "GET", "/magpie/users/alice/x", NULL, "eu-west-1", NOW,
                              FALSE);
  g_autoptr(GError) error = NULL;

  g_assert_null (srv_s3_authenticate (f->keyring, NULL, &s->request, "us-east-1", NOW + 16 * 60,
                                      &error));
  assert_s3_error (error, "RequestTimeTooSkewed", 403);
  g_clear_error (&error);
  g_assert_null (srv_s3_authenticate (f->keyring, NULL, &r->request, "us-east-1", NOW, &error));
  assert_s3_error (error, "AuthorizationHeaderMalformed", 400);
}

static void
test_authorize (Fixture *f, gconstpointer data)
{
  SrvS3Route own = { SRV_S3_OP_GET_OBJECT, "magpie", "users/alice/p.jpg" };
  SrvS3Route other = { SRV_S3_OP_PUT_OBJECT, "magpie", "users/bob/p.jpg" };
  SrvS3Route sneaky = { SRV_S3_OP_PUT_OBJECT, "magpie", "users/alice" };
  SrvS3Route bucket = { SRV_S3_OP_GET_OBJECT, "other", "users/alice/p.jpg" };
  SrvS3Route list = { SRV_S3_OP_LIST_OBJECTS_V2, "magpie", NULL };
  SrvS3Route copy = { SRV_S3_OP_COPY_OBJECT, "magpie", "users/alice/c.jpg" };
  SrvS3Route create = { SRV_S3_OP_CREATE_BUCKET, "magpie", NULL };
  SrvS3Route buckets = { SRV_S3_OP_LIST_BUCKETS, NULL, NULL };
  g_autoptr(GError) error = NULL;

  g_assert_true (srv_s3_authorize (f->alice, "magpie", &own, NULL, NULL, NULL, &error));
  g_assert_true (srv_s3_authorize (f->alice, "magpie", &buckets, NULL, NULL, NULL, &error));
  g_assert_true (srv_s3_authorize (f->alice, "magpie", &list, "users/alice/", NULL, NULL, &error));
  g_assert_true (srv_s3_authorize (f->alice, "magpie", &copy, NULL, "magpie",
                                   "users/alice/p.jpg", &error));
  g_assert_no_error (error);

  g_assert_false (srv_s3_authorize (f->alice, "magpie", &other, NULL, NULL, NULL, &error));
  assert_s3_error (error, "AccessDenied", 403);
  g_clear_error (&error);
  g_assert_false (srv_s3_authorize (f->alice, "magpie", &sneaky, NULL, NULL, NULL, &error));
  g_clear_error (&error);
  g_assert_false (srv_s3_authorize (f->alice, "magpie", &bucket, NULL, NULL, NULL, &error));
  g_clear_error (&error);
  g_assert_false (srv_s3_authorize (f->alice, "magpie", &list, NULL, NULL, NULL, &error));
  g_clear_error (&error);
  g_assert_false (srv_s3_authorize (f->alice, "magpie", &list, "users/", NULL, NULL, &error));
  g_clear_error (&error);
  g_assert_false (srv_s3_authorize (f->alice, "magpie", &list, "users/alicex/", NULL, NULL,
                                    &error));
  g_clear_error (&error);
  g_assert_false (srv_s3_authorize (f->alice, "magpie", &copy, NULL, "magpie",
                                    "users/bob/p.jpg", &error));
  assert_s3_error (error, "AccessDenied", 403);
  g_clear_error (&error);
  g_assert_false (srv_s3_authorize (f->alice, "magpie", &create, NULL, NULL, NULL, &error));
  assert_s3_error (error, "BucketAlreadyOwnedByYou", 409);
  g_assert_true (srv_s3_key_allowed (f->alice, "users/alice/x"));
  g_assert_false (srv_s3_key_allowed (f->alice, "users/bob/x"));
}

/* The operator's key pair: signs without a token and reaches every key of the bucket. */
static void
test_admin (Fixture *f, gconstpointer data)
{
  SrvS3AdminKey admin = { "MAGPIEADMIN0000000001", "an-operator-secret-of-forty-characters-x" };
  SrvCredentials creds = { 0 };
  SrvS3Route other = { SRV_S3_OP_PUT_OBJECT, "magpie", "users/bob/p.jpg" };
  SrvS3Route list = { SRV_S3_OP_LIST_OBJECTS_V2, "magpie", NULL };
  SrvS3Route bucket = { SRV_S3_OP_GET_OBJECT, "other", "users/bob/p.jpg" };
  g_autoptr(GError) error = NULL;

  creds.access_key_id = (char *) admin.access_key_id;
  creds.secret_access_key = (char *) admin.secret_access_key;

  {
    g_autoptr(Signed) s = sign (&creds, "PUT", "/magpie/users/bob/p.jpg", NULL, "us-east-1",
                                NOW, FALSE);
    g_autoptr(SrvS3Principal) p = srv_s3_authenticate (f->keyring, &admin, &s->request,
                                                       "us-east-1", NOW, &error);

    g_assert_no_error (error);
    g_assert_cmpstr (p->credentials->identity_id, ==, SRV_S3_ADMIN_IDENTITY);
    g_assert_cmpstr (p->credentials->prefix, ==, "");
    g_assert_true (srv_s3_authorize (p->credentials, "magpie", &other, NULL, NULL, NULL, &error));
    g_assert_true (srv_s3_authorize (p->credentials, "magpie", &list, NULL, NULL, NULL, &error));
    g_assert_no_error (error);
    g_assert_false (srv_s3_authorize (p->credentials, "magpie", &bucket, NULL, NULL, NULL,
                                      &error));
    assert_s3_error (error, "AccessDenied", 403);
    g_clear_error (&error);

    /* Without the admin pair configured the same request names an unknown key. */
    g_assert_null (srv_s3_authenticate (f->keyring, NULL, &s->request, "us-east-1", NOW,
                                        &error));
    assert_s3_error (error, "InvalidAccessKeyId", 403);
    g_clear_error (&error);
  }
  {
    /* Signed with the wrong secret. */
    g_autoptr(Signed) s = NULL;

    creds.secret_access_key = (char *) "not-the-operator-secret-of-forty-chars-x";
    s = sign (&creds, "GET", "/magpie/users/bob/p.jpg", NULL, "us-east-1", NOW, FALSE);
    g_assert_null (srv_s3_authenticate (f->keyring, &admin, &s->request, "us-east-1", NOW,
                                        &error));
    assert_s3_error (error, "SignatureDoesNotMatch", 403);
  }
}

/* ---- bodies ------------------------------------------------------------------------------ */

static GBytes *
read_back (SrvS3Body *body)
{
  g_autoptr(GError) error = NULL;
  GBytes *bytes = srv_s3_body_read_all (body, 1 << 24, &error);

  g_assert_no_error (error);
  return bytes;
}

static void
test_body_sha256 (Fixture *f, gconstpointer data)
{
  const char *text = "hello magpie";
  g_autofree char *hash = mp_sigv4_sha256_hex (text, strlen (text));
  g_autoptr(SrvS3Body) good = srv_s3_body_new (f->dir, hash, NULL, NULL, -1, 100, NULL);
  g_autoptr(SrvS3Body) bad = srv_s3_body_new (f->dir, hash, NULL, NULL, -1, 100, NULL);
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) back = NULL;

  srv_s3_body_feed (good, (const guint8 *) text, 5);
  srv_s3_body_feed (good, (const guint8 *) text + 5, strlen (text) - 5);
  g_assert_true (srv_s3_body_finish (good, &error));
  g_assert_no_error (error);
  back = read_back (good);
  g_assert_cmpmem (g_bytes_get_data (back, NULL), g_bytes_get_size (back), text, strlen (text));

  /* The wire part is fine; the reader that would hand the bytes on refuses them. */
  srv_s3_body_feed (bad, (const guint8 *) "hello magpiE", 12);
  g_assert_true (srv_s3_body_finish (bad, &error));
  g_assert_null (srv_s3_body_read_all (bad, 100, &error));
  assert_s3_error (error, "XAmzContentSHA256Mismatch", 400);
  g_clear_error (&error);
  {
    g_autoptr(GInputStream) in = srv_s3_body_open (bad, &error);
    char buf[8];

    g_assert_no_error (error);
    g_assert_cmpint (g_input_stream_read (in, buf, sizeof buf, NULL, &error), ==, 8);
    g_assert_cmpint (g_input_stream_read (in, buf, sizeof buf, NULL, &error), ==, -1);
    assert_s3_error (error, "XAmzContentSHA256Mismatch", 400);
  }
}

static void
test_body_empty (Fixture *f, gconstpointer data)
{
  g_autofree char *other = mp_sigv4_sha256_hex ("x", 1);
  g_autoptr(SrvS3Body) empty = srv_s3_body_new (f->dir, MP_SIGV4_EMPTY_SHA256, NULL, NULL, -1,
                                                100, NULL);
  g_autoptr(SrvS3Body) lie = srv_s3_body_new (f->dir, other, NULL, NULL, -1, 100, NULL);
  g_autoptr(GInputStream) in = NULL;
  g_autoptr(GError) error = NULL;

  g_assert_true (srv_s3_body_finish (empty, &error));
  in = srv_s3_body_open (empty, &error);
  g_assert_no_error (error);
  g_assert_nonnull (in);
  g_assert_true (srv_s3_body_finish (lie, &error));
  g_assert_null (srv_s3_body_open (lie, &error));
  assert_s3_error (error, "XAmzContentSHA256Mismatch", 400);
}

static void
test_body_limits (Fixture *f, gconstpointer data)
{
  g_autoptr(SrvS3Body) body = srv_s3_body_new (f->dir, MP_SIGV4_UNSIGNED_PAYLOAD, NULL, NULL, -1,
                                               10, NULL);
  g_autoptr(GError) error = NULL;

  srv_s3_body_feed (body, (const guint8 *) "0123456789", 10);
  srv_s3_body_feed (body, (const guint8 *) "x", 1);
  g_assert_false (srv_s3_body_finish (body, &error));
  assert_s3_error (error, "EntityTooLarge", 400);
  g_clear_error (&error);
  g_assert_null (srv_s3_body_new (f->dir, "md5-please", NULL, NULL, -1, 10, &error));
  assert_s3_error (error, "InvalidArgument", 400);
}

/* An aws-chunked body as the SDKs send it, fed in odd-sized pieces; @damage flips one
 * payload byte, @cut drops the final chunk. */
static void
run_chunked (Fixture    *f,
             gboolean    damage,
             gboolean    cut,
             const char *expect_code)
{
  MpSigv4SigningParams params = { f->alice->access_key_id, f->alice->secret_access_key,
                                  f->alice->session_token, "us-east-1", "s3", NOW,
                                  MP_SIGV4_FLAGS_S3 };
  g_autoptr(Signed) s = sign (f->alice, "PUT", "/magpie/users/alice/big", MP_SIGV4_STREAMING_PAYLOAD,
                              "us-east-1", NOW, FALSE);
  g_autoptr(GError) error = NULL;
  g_autoptr(SrvS3Principal) p = srv_s3_authenticate (f->keyring, NULL, &s->request, "us-east-1", NOW,
                                                     &error);
  g_autoptr(MpSigv4ChunkEncoder) enc = mp_sigv4_chunk_encoder_new (&params, s->signed_request);
  g_autoptr(GByteArray) wire = g_byte_array_new ();
  g_autoptr(SrvS3Body) body = NULL;
  g_autofree guint8 *payload = g_malloc (200000);
  gsize at = 0;

  g_assert_no_error (error);
  g_assert_cmpstr (p->auth->payload_hash, ==, MP_SIGV4_STREAMING_PAYLOAD);
  for (gsize i = 0; i < 200000; i++)
    payload[i] = (guint8) (i * 7 + i / 251);
  mp_sigv4_chunk_encoder_add (enc, payload, 65536, wire);
  mp_sigv4_chunk_encoder_add (enc, payload + 65536, 65536, wire);
  mp_sigv4_chunk_encoder_add (enc, payload + 131072, 200000 - 131072, wire);
  if (!cut)
    mp_sigv4_chunk_encoder_finish (enc, wire);
  if (damage)
    wire->data[70000] ^= 1;

  body = srv_s3_body_new (f->dir, p->auth->payload_hash, p->auth,
                          p->credentials->secret_access_key, 200000, 1 << 20, &error);
  g_assert_no_error (error);
  while (at < wire->len)
    {
      gsize piece = 1 + (gsize) g_test_rand_int_range (0, 9000);  /* MIN evaluates twice */
      gsize n = MIN (wire->len - at, piece);

      srv_s3_body_feed (body, wire->data + at, n);
      at += n;
    }
  if (expect_code == NULL)
    {
      g_autoptr(GBytes) back = NULL;

      g_assert_true (srv_s3_body_finish (body, &error));
      g_assert_no_error (error);
      g_assert_cmpint (srv_s3_body_get_size (body), ==, 200000);
      g_assert_cmpint (srv_s3_body_get_wire_size (body), ==, wire->len);
      back = read_back (body);
      g_assert_cmpmem (g_bytes_get_data (back, NULL), g_bytes_get_size (back), payload, 200000);
    }
  else
    {
      g_assert_false (srv_s3_body_finish (body, &error));
      assert_s3_error (error, expect_code, expect_code[0] == 'S' ? 403 : 400);
    }
}

static void
test_body_chunked (Fixture *f, gconstpointer data)
{
  run_chunked (f, FALSE, FALSE, NULL);
}

static void
test_body_chunked_damaged (Fixture *f, gconstpointer data)
{
  run_chunked (f, TRUE, FALSE, "SignatureDoesNotMatch");
}

static void
test_body_chunked_truncated (Fixture *f, gconstpointer data)
{
  run_chunked (f, FALSE, TRUE, "IncompleteBody");
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

#define ADD(path, fn) g_test_add (path, Fixture, NULL, fixture_setup, fn, fixture_teardown)
  ADD ("/srv/s3/auth/admin", test_admin);
  ADD ("/srv/s3/auth/valid", test_valid);
  ADD ("/srv/s3/auth/presigned", test_presigned);
  ADD ("/srv/s3/auth/anonymous", test_anonymous);
  ADD ("/srv/s3/auth/no-token", test_no_token);
  ADD ("/srv/s3/auth/expired-token", test_expired);
  ADD ("/srv/s3/auth/forged-token", test_forged);
  ADD ("/srv/s3/auth/token-of-another", test_token_of_another);
  ADD ("/srv/s3/auth/signature-mismatch", test_signature_mismatch);
  ADD ("/srv/s3/auth/skew-and-region", test_skew_and_region);
  ADD ("/srv/s3/auth/authorize", test_authorize);
  ADD ("/srv/s3/body/sha256", test_body_sha256);
  ADD ("/srv/s3/body/empty", test_body_empty);
  ADD ("/srv/s3/body/limits", test_body_limits);
  ADD ("/srv/s3/body/chunked", test_body_chunked);
  ADD ("/srv/s3/body/chunked-damaged", test_body_chunked_damaged);
  ADD ("/srv/s3/body/chunked-truncated", test_body_chunked_truncated);
#undef ADD

  return g_test_run ();
}
