/* fuzz-sigv4.c - SigV4 as magpied receives it: Authorization headers, presigned queries,
 * canonical URIs and queries, verification, and srv_s3_authenticate() with session tokens
 *
 * Input: lines "METHOD", "/path", "query", "Authorization value", then "name: value"
 * headers. Besides not crashing, one property must hold: a request that lib's signer signs
 * (header and presigned forms), lib's verifier accepts. A disagreement between the two is a
 * client that cannot talk to its own server.
 */
#include "config.h"

#include "fuzz-common.h"

#include "fuzz-fixture.h"
#include "mp-sigv4.h"
#include "srv-s3-auth.h"
#include "srv-token.h"

static SrvKeyring *keyring;

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  fuzz_init_logging ();
  /* The seeds' session tokens were minted under its key (make-seeds.c). */
  keyring = fuzz_keyring_new ();
  return 0;
}

static gboolean
is_token_name (const char *s)
{
  if (*s == '\0')
    return FALSE;
  for (; *s; s++)
    if (!g_ascii_isalnum (*s) && strchr ("!#$%&'*+-.^_`|~", *s) == NULL)
      return FALSE;
  return TRUE;
}

/* What an HTTP parser would hand over: a token name and a value without CR or LF. */
static gboolean
is_wire_header (const MpSigv4Header *h)
{
  return is_token_name (h->name) && strpbrk (h->value, "\r\n") == NULL;
}

static gint64
request_time (const MpSigv4Auth *auth)
{
  gint64 t;

  if (auth != NULL && auth->amz_date != NULL && mp_sigv4_parse_amz_date (auth->amz_date, &t))
    return t;
  return FUZZ_NOW;
}

static void
check_round_trip (MpSigv4Request *request,
                  GArray         *headers)
{
  MpSigv4SigningParams params = { FUZZ_AKID, FUZZ_SECRET, NULL, FUZZ_REGION, "s3", FUZZ_NOW,
                                  MP_SIGV4_FLAGS_S3 };
  MpSigv4VerifyParams verify = { FUZZ_NOW, FUZZ_REGION, "s3", MP_SIGV4_FLAGS_S3 };
  g_autoptr(GArray) wire = g_array_new (FALSE, FALSE, sizeof (MpSigv4Header));
  g_autoptr(MpSigv4Signed) s = NULL;
  g_autoptr(MpSigv4Auth) auth = NULL;
  g_autoptr(GError) error = NULL;
  MpSigv4Request signed_request;

  for (guint i = 0; i < headers->len; i++)
    {
      const MpSigv4Header *h = &g_array_index (headers, MpSigv4Header, i);

      /* The signer signs the caller's own x-amz-content-sha256 as it is: garbage in there is
       * the caller's to answer for, and the verifier rightly refuses it. */
      if (!is_wire_header (h) || g_ascii_strcasecmp (h->name, "x-amz-content-sha256") == 0)
        return;
    }
  /* Header signing: the signer's headers replace the request's of the same name. */
  s = mp_sigv4_sign (request, &params, &error);
  if (s == NULL)
    return;
  for (guint i = 0; i < headers->len; i++)
    {
      MpSigv4Header *h = &g_array_index (headers, MpSigv4Header, i);
      gboolean replaced = FALSE;

      for (gsize k = 0; k < s->n_set_headers; k++)
        replaced = replaced || g_ascii_strcasecmp (h->name, s->set_headers[k].name) == 0;
      if (!replaced)
        g_array_append_val (wire, *h);
    }
  g_array_append_vals (wire, s->set_headers, s->n_set_headers);
  signed_request = *request;
  signed_request.headers = (const MpSigv4Header *) wire->data;
  signed_request.n_headers = wire->len;
  signed_request.payload_hash = NULL;
  auth = mp_sigv4_parse_request (&signed_request, &error);
  fuzz_check (auth != NULL, "signed request does not parse: %s\ncanonical:\n%s",
              error->message, s->canonical_request);
  fuzz_check (mp_sigv4_verify (auth, &signed_request, FUZZ_SECRET, &verify, &error),
              "signed request does not verify: %s\ncanonical:\n%s", error->message,
              s->canonical_request);
}

static void
check_presign_round_trip (MpSigv4Request *request,
                          GArray         *headers)
{
  MpSigv4SigningParams params = { FUZZ_AKID, FUZZ_SECRET, "token", FUZZ_REGION, "s3", FUZZ_NOW,
                                  MP_SIGV4_FLAGS_S3 };
  MpSigv4VerifyParams verify = { FUZZ_NOW + 10, FUZZ_REGION, "s3", MP_SIGV4_FLAGS_S3 };
  g_autoptr(GArray) wire = g_array_new (FALSE, FALSE, sizeof (MpSigv4Header));
  g_autoptr(MpSigv4Signed) s = NULL;
  g_autoptr(MpSigv4Auth) auth = NULL;
  g_autoptr(GError) error = NULL;
  MpSigv4Request presigned;

  for (guint i = 0; i < headers->len; i++)
    {
      const MpSigv4Header *h = &g_array_index (headers, MpSigv4Header, i);

      if (!is_wire_header (h))
        return;
      /* A presigned URL travels without these; a browser cannot add them. */
      if (g_ascii_strcasecmp (h->name, "authorization") != 0 &&
          g_ascii_strcasecmp (h->name, "x-amz-date") != 0 &&
          g_ascii_strcasecmp (h->name, "x-amz-security-token") != 0 &&
          g_ascii_strcasecmp (h->name, "x-amz-content-sha256") != 0)
        g_array_append_val (wire, *h);
    }
  presigned = *request;
  presigned.headers = (const MpSigv4Header *) wire->data;
  presigned.n_headers = wire->len;
  presigned.payload_hash = NULL;
  s = mp_sigv4_presign (&presigned, &params, 300, &error);
  if (s == NULL)
    return;
  presigned.query = s->query;
  auth = mp_sigv4_parse_request (&presigned, &error);
  fuzz_check (auth != NULL, "presigned request does not parse: %s\nquery: %s", error->message,
              s->query);
  fuzz_check (mp_sigv4_verify (auth, &presigned, FUZZ_SECRET, &verify, &error),
              "presigned request does not verify: %s\nquery: %s\ncanonical:\n%s",
              error->message, s->query, s->canonical_request);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  FuzzFields f;
  g_autoptr(GArray) headers = g_array_new (FALSE, FALSE, sizeof (MpSigv4Header));
  g_autoptr(MpSigv4Auth) parsed = NULL;
  g_autoptr(GError) error = NULL;
  const char *authorization;
  MpSigv4Request request = { 0 };
  gboolean has_host = FALSE, signed_already;

  fuzz_fields_split (&f, data, size, 16);
  request.method = *fuzz_field (&f, 0) ? fuzz_field (&f, 0) : "GET";
  request.path = fuzz_field (&f, 1);
  request.query = fuzz_field (&f, 2);
  authorization = fuzz_field (&f, 3);

  /* The pieces on their own. */
  g_free (mp_sigv4_canonical_uri (request.path, MP_SIGV4_FLAGS_S3));
  g_free (mp_sigv4_canonical_uri (request.path, MP_SIGV4_FLAGS_GENERIC));
  g_free (mp_sigv4_canonical_query (request.query, TRUE));
  g_free (mp_sigv4_canonical_query (request.query, FALSE));
  mp_sigv4_auth_free (mp_sigv4_parse_authorization (authorization, NULL));
  mp_sigv4_auth_free (mp_sigv4_parse_presigned (request.query, NULL));

  for (guint i = 4; i < f.n; i++)
    {
      char *colon = strchr (f.field[i], ':');
      MpSigv4Header h;

      if (colon == NULL)
        continue;
      *colon = '\0';
      h.name = f.field[i];
      h.value = colon + 1;
      while (*h.value == ' ')
        h.value++;
      has_host = has_host || g_ascii_strcasecmp (h.name, "host") == 0;
      g_array_append_val (headers, h);
    }
  if (!has_host)
    {
      MpSigv4Header h = { "host", "127.0.0.1:8080" };

      g_array_append_val (headers, h);
    }

  /* Unsigned first: the signer's round trip. */
  request.headers = (const MpSigv4Header *) headers->data;
  request.n_headers = headers->len;
  parsed = mp_sigv4_parse_request (&request, &error);
  signed_already = parsed != NULL || !g_error_matches (error, MP_SIGV4_ERROR,
                                                       MP_SIGV4_ERROR_MISSING_AUTH);
  if (!signed_already && *authorization == '\0')
    {
      check_round_trip (&request, headers);
      check_presign_round_trip (&request, headers);
    }

  /* Then as received: verification and the server's authentication. */
  if (*authorization != '\0')
    {
      MpSigv4Header h = { "Authorization", authorization };

      g_array_append_val (headers, h);
      request.headers = (const MpSigv4Header *) headers->data;
      request.n_headers = headers->len;
    }
  g_clear_pointer (&parsed, mp_sigv4_auth_free);
  g_clear_error (&error);
  parsed = mp_sigv4_parse_request (&request, &error);
  if (parsed != NULL)
    {
      MpSigv4VerifyParams params = { request_time (parsed), NULL, NULL, MP_SIGV4_FLAGS_S3 };

      mp_sigv4_verify (parsed, &request, FUZZ_SECRET, &params, NULL);
    }
  {
    SrvS3AdminKey admin = { FUZZ_AKID, FUZZ_SECRET };
    SrvS3Principal *principal;

    principal = srv_s3_authenticate (keyring, &admin, &request, FUZZ_REGION,
                                     request_time (parsed), NULL);
    srv_s3_principal_free (principal);
  }
  fuzz_fields_clear (&f);
  return 0;
}
