/* make-seeds.c - writes the seeds that need lib's signer: requests signed with a session token
 * and with the operator's key, a presigned URL, aws-chunked bodies
 *
 *   build-fuzz/tests/fuzz/make-seeds tests/fuzz/corpus
 *
 * The keys and clock are those of fuzz-fixture.h, so the targets accept the signatures and
 * the fuzzer starts from requests that reach the end of verification.
 */
#include "config.h"

#include <glib/gstdio.h>
#include <stdlib.h>

#include "fuzz-fixture.h"
#include "mp-sigv4.h"
#include "srv-token.h"

static const char *out_dir;

static void
write_seed (const char   *target,
            const char   *name,
            const guint8 *data,
            gsize         len)
{
  g_autofree char *dir = g_build_filename (out_dir, target, NULL);
  g_autofree char *path = g_build_filename (dir, name, NULL);
  g_autoptr(GError) error = NULL;

  g_mkdir_with_parents (dir, 0755);
  if (!g_file_set_contents (path, (const char *) data, len, &error))
    g_error ("%s", error->message);
  g_print ("%s (%" G_GSIZE_FORMAT " bytes)\n", path, len);
}

/* fuzz-sigv4's input: METHOD, path, query, Authorization, then the headers. */
static void
write_request (const char          *name,
               const MpSigv4Request *request,
               const MpSigv4Signed  *s)
{
  GString *out = g_string_new (NULL);
  const char *authorization = "";

  for (gsize i = 0; s != NULL && i < s->n_set_headers; i++)
    if (g_ascii_strcasecmp (s->set_headers[i].name, "authorization") == 0)
      authorization = s->set_headers[i].value;
  g_string_append_printf (out, "%s\n%s\n%s\n%s", request->method, request->path,
                          s != NULL && s->query != NULL ? s->query
                                                        : request->query ? request->query : "",
                          authorization);
  for (gsize i = 0; i < request->n_headers; i++)
    g_string_append_printf (out, "\n%s: %s", request->headers[i].name, request->headers[i].value);
  for (gsize i = 0; s != NULL && i < s->n_set_headers; i++)
    if (g_ascii_strcasecmp (s->set_headers[i].name, "authorization") != 0)
      g_string_append_printf (out, "\n%s: %s", s->set_headers[i].name, s->set_headers[i].value);
  write_seed ("fuzz-sigv4", name, (const guint8 *) out->str, out->len);
  g_string_free (out, TRUE);
}

static void
sigv4_seeds (void)
{
  g_autoptr(SrvKeyring) keyring = fuzz_keyring_new ();
  g_autoptr(SrvCredentials) creds = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *hello_sha = mp_sigv4_sha256_hex ("hello", 5);
  g_autofree char *photo_path = NULL;
  g_autofree char *list_query = NULL;
  g_autofree char *presign_path = NULL;
  MpSigv4SigningParams token_params;

  creds = srv_credentials_mint (keyring, "fuzzidentity0001", SRV_IDENTITY_GUEST, FUZZ_NOW, 3600,
                                &error);
  if (creds == NULL)
    g_error ("%s", error->message);
  token_params = (MpSigv4SigningParams) { creds->access_key_id, creds->secret_access_key,
                                          creds->session_token, FUZZ_REGION, "s3", FUZZ_NOW,
                                          MP_SIGV4_FLAGS_S3 };
  photo_path = g_strdup_printf ("/magpie/%sphoto.jpg", creds->prefix);
  list_query = g_strdup_printf ("list-type=2&prefix=users%%2F%s%%2F&delimiter=%%2F",
                                creds->identity_id);
  presign_path = g_strdup_printf ("/magpie/%sa%%20b%%2Bc.jpg", creds->prefix);

  {
    const MpSigv4Header headers[] = {
      { "Host", "127.0.0.1:8080" },
      { "Content-Type", "image/jpeg" },
      { "Content-Length", "5" },
      { "x-amz-meta-camera", "  Pixel   8 " },
    };
    MpSigv4Request request = { "PUT", photo_path, NULL, headers, G_N_ELEMENTS (headers),
                               hello_sha };
    g_autoptr(MpSigv4Signed) s = mp_sigv4_sign (&request, &token_params, NULL);

    write_request ("put-with-token", &request, s);
  }
  {
    const MpSigv4Header headers[] = { { "Host", "127.0.0.1:8080" } };
    MpSigv4Request request = { "GET", "/magpie", list_query, headers, G_N_ELEMENTS (headers),
                               NULL };
    g_autoptr(MpSigv4Signed) s = mp_sigv4_sign (&request, &token_params, NULL);

    write_request ("list-with-token", &request, s);
  }
  {
    const MpSigv4Header headers[] = { { "Host", "127.0.0.1:8080" } };
    MpSigv4Request request = { "GET", presign_path, "response-content-type=image%2Fjpeg",
                               headers, G_N_ELEMENTS (headers), NULL };
    g_autoptr(MpSigv4Signed) s = mp_sigv4_presign (&request, &token_params, 900, NULL);

    write_request ("presigned-get", &request, s);
  }
  {
    const MpSigv4Header headers[] = { { "host", "localhost" } };
    MpSigv4Request request = { "GET", "/", NULL, headers, G_N_ELEMENTS (headers), NULL };
    g_autoptr(MpSigv4Signed) s = mp_sigv4_sign (&request, fuzz_signing_params (), NULL);

    write_request ("admin-list-buckets", &request, s);
  }
  {
    const MpSigv4Header headers[] = {
      { "host", "127.0.0.1" },
      { "x-amz-decoded-content-length", "66560" },
      { "content-encoding", "aws-chunked" },
    };
    MpSigv4Request request = { "PUT", "/magpie/users/fuzz/big.png",
                               "partNumber=2&uploadId=abc", headers, G_N_ELEMENTS (headers),
                               MP_SIGV4_STREAMING_PAYLOAD };
    g_autoptr(MpSigv4Signed) s = mp_sigv4_sign (&request, fuzz_signing_params (), NULL);

    write_request ("streaming-upload-part", &request, s);
  }
  {
    /* Unsigned: the target signs it itself and checks that its own signature verifies. */
    const MpSigv4Header headers[] = {
      { "host", "example.com" },
      { "x-amz-meta-note", "a\tb  c" },
      { "Range", "bytes=0-99" },
    };
    MpSigv4Request request = { "GET", "/magpie/users/fuzz/%E2%82%AC/./..//x",
                               "b=2&a=1&a=0&empty=&flag", headers, G_N_ELEMENTS (headers), NULL };

    write_request ("unsigned", &request, NULL);
  }
}

/* fuzz-aws-chunked's input: odd mode byte + chunk size + flip + payload, or even mode byte +
 * piece size + a wire body. */
static void
chunked_seeds (void)
{
  static const char payload[] = "The quick brown fox jumps over the lazy dog";
  g_autoptr(MpSigv4Signed) seed = fuzz_chunked_seed ();
  g_autoptr(MpSigv4ChunkEncoder) enc = mp_sigv4_chunk_encoder_new (fuzz_signing_params (), seed);
  g_autoptr(GByteArray) wire = g_byte_array_new ();
  g_autoptr(GByteArray) framed = g_byte_array_new ();
  guint8 head[3] = { 1, 7, 0 };

  g_byte_array_append (framed, head, 3);
  g_byte_array_append (framed, (const guint8 *) payload, sizeof payload - 1);
  write_seed ("fuzz-aws-chunked", "payload-intact", framed->data, framed->len);
  framed->data[2] = 33;
  write_seed ("fuzz-aws-chunked", "payload-flipped", framed->data, framed->len);

  g_byte_array_append (wire, (const guint8 *) "\0\5", 2);
  mp_sigv4_chunk_encoder_add (enc, (const guint8 *) payload, 16, wire);
  mp_sigv4_chunk_encoder_add (enc, (const guint8 *) payload + 16, sizeof payload - 1 - 16, wire);
  mp_sigv4_chunk_encoder_finish (enc, wire);
  write_seed ("fuzz-aws-chunked", "wire-two-chunks", wire->data, wire->len);
}

int
main (int argc, char **argv)
{
  if (argc != 2)
    {
      g_printerr ("usage: %s CORPUS_DIR (tests/fuzz/corpus)\n", argv[0]);
      return 2;
    }
  out_dir = argv[1];
  sigv4_seeds ();
  chunked_seeds ();
  return 0;
}
