/* test-sigv4.c - SigV4 against the AWS and aws-c-auth vector suites, verification errors,
 * and the aws-chunked decoder under every byte split */
#include "config.h"

#include <string.h>
#include <json-glib/json-glib.h>

#include "mp-sigv4.h"
#include "mp-test-util.h"

/* The credentials and scope the AWS aws-sig-v4-test-suite documents for every case. */
#define SUITE_AKID    "AKIDEXAMPLE"
#define SUITE_SECRET  "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define SUITE_REGION  "us-east-1"
#define SUITE_SERVICE "service"

static guint aws_suite_ran, aws_suite_passed;
static guint c_auth_ran, c_auth_passed;

/* ---- a parsed .req / request.txt ---------------------------------------------------------- */

typedef struct {
  char    *method;
  char    *path;
  char    *query;
  GArray  *headers;   /* MpSigv4Header, strings owned below */
  GPtrArray *strings;
  GBytes  *body;
} TestRequest;

static void
test_request_free (TestRequest *r)
{
  g_free (r->method);
  g_free (r->path);
  g_free (r->query);
  g_array_unref (r->headers);
  g_ptr_array_unref (r->strings);
  g_bytes_unref (r->body);
  g_free (r);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (TestRequest, test_request_free)

static const char *
own (TestRequest *r, char *s)
{
  g_ptr_array_add (r->strings, s);
  return s;
}

static void
test_request_add_header (TestRequest *r, const char *name, const char *value)
{
  MpSigv4Header h = { own (r, g_strdup (name)), own (r, g_strdup (value)) };

  g_array_append_val (r->headers, h);
}

/* Removes every header called @name and returns the last value (owned by @r). */
static const char *
test_request_take_header (TestRequest *r, const char *name)
{
  const char *value = NULL;

  for (guint i = 0; i < r->headers->len;)
    {
      MpSigv4Header *h = &g_array_index (r->headers, MpSigv4Header, i);

      if (g_ascii_strcasecmp (h->name, name) == 0)
        {
          value = h->value;
          g_array_remove_index (r->headers, i);
        }
      else
        i++;
    }
  return value;
}

/* Reads an HTTP request the way the suites write it: LF or CRLF line ends, a request target
 * that may hold spaces, header lines starting with blanks continue the previous value. */
static TestRequest *
test_request_parse (const char *text, gsize len)
{
  g_autoptr(TestRequest) r = g_new0 (TestRequest, 1);
  g_autoptr(GString) clean = g_string_sized_new (len);
  const char *p, *eol, *sp1, *sp2, *qm;
  g_autofree char *target = NULL;

  for (gsize i = 0; i < len; i++)
    if (text[i] != '\r')
      g_string_append_c (clean, text[i]);
  r->headers = g_array_new (FALSE, FALSE, sizeof (MpSigv4Header));
  r->strings = g_ptr_array_new_with_free_func (g_free);

  p = clean->str;
  eol = strchr (p, '\n');
  if (eol == NULL)
    eol = p + strlen (p);
  sp1 = memchr (p, ' ', eol - p);
  sp2 = g_strrstr_len (p, eol - p, " ");
  g_assert_nonnull (sp1);
  g_assert_true (sp2 > sp1);
  r->method = g_strndup (p, sp1 - p);
  target = g_strndup (sp1 + 1, sp2 - sp1 - 1);
  qm = strchr (target, '?');
  r->path = qm ? g_strndup (target, qm - target) : g_strdup (target);
  r->query = qm ? g_strdup (qm + 1) : NULL;

  p = *eol ? eol + 1 : eol;
  while (*p)
    {
      eol = strchr (p, '\n');
      if (eol == NULL)
        eol = p + strlen (p);
      if (eol == p)
        {
          p++;
          break;
        }
      if ((*p == ' ' || *p == '\t') && r->headers->len > 0)
        {
          MpSigv4Header *last = &g_array_index (r->headers, MpSigv4Header, r->headers->len - 1);
          g_autofree char *line = g_strndup (p, eol - p);

          last->value = own (r, g_strconcat (last->value, "\n", line, NULL));
        }
      else
        {
          const char *colon = memchr (p, ':', eol - p);
          g_autofree char *name = NULL;
          g_autofree char *value = NULL;

          g_assert_nonnull (colon);
          name = g_strndup (p, colon - p);
          value = g_strndup (colon + 1, eol - colon - 1);
          test_request_add_header (r, name, value);
        }
      p = *eol ? eol + 1 : eol;
    }
  r->body = g_bytes_new (p, strlen (p));
  return g_steal_pointer (&r);
}

static MpSigv4Request
test_request_view (TestRequest *r, const char *payload_hash)
{
  MpSigv4Request req = {
    .method = r->method,
    .path = r->path,
    .query = r->query,
    .headers = (const MpSigv4Header *) r->headers->data,
    .n_headers = r->headers->len,
    .payload_hash = payload_hash,
  };

  return req;
}

static char *
body_sha256 (TestRequest *r)
{
  gsize len;
  const char *data = g_bytes_get_data (r->body, &len);

  return mp_sigv4_sha256_hex (data ? data : "", len);
}

/* Expected-output files: CR dropped, no trailing newline; NULL when the case lacks the file. */
static char *
read_expected (const char *dir, const char *name)
{
  g_autofree char *path = g_build_filename (dir, name, NULL);
  g_autofree char *text = NULL;
  GString *out;

  if (!g_file_get_contents (path, &text, NULL, NULL))
    return NULL;
  out = g_string_new (NULL);
  for (const char *c = text; *c; c++)
    if (*c != '\r')
      g_string_append_c (out, *c);
  while (out->len && out->str[out->len - 1] == '\n')
    g_string_truncate (out, out->len - 1);
  return g_string_free (out, FALSE);
}

/* ---- the AWS aws-sig-v4-test-suite ------------------------------------------------------- */

static void
test_aws_suite_case (gconstpointer data)
{
  const char *dir = data;
  g_autofree char *name = g_path_get_basename (dir);
  g_autofree char *req_name = g_strconcat (name, ".req", NULL);
  g_autofree char *req_path = g_build_filename (dir, req_name, NULL);
  g_autofree char *creq_name = g_strconcat (name, ".creq", NULL);
  g_autofree char *sts_name = g_strconcat (name, ".sts", NULL);
  g_autofree char *authz_name = g_strconcat (name, ".authz", NULL);
  g_autofree char *creq = read_expected (dir, creq_name);
  g_autofree char *sts = read_expected (dir, sts_name);
  g_autofree char *authz = read_expected (dir, authz_name);
  g_autofree char *text = NULL;
  g_autofree char *payload = NULL;
  g_autofree char *trimmed_date = NULL;
  g_autoptr(TestRequest) r = NULL;
  g_autoptr(MpSigv4Signed) s = NULL;
  g_autoptr(MpSigv4Auth) auth = NULL;
  g_autoptr(GError) error = NULL;
  /* The suite signs for a generic service called "service": normalised, double-encoded paths
   * (its normalize-path cases depend on that; the other cases read the same in S3 mode). */
  MpSigv4SigningParams params = {
    SUITE_AKID, SUITE_SECRET, NULL, SUITE_REGION, SUITE_SERVICE, 0, MP_SIGV4_FLAGS_GENERIC
  };
  MpSigv4VerifyParams vparams = { 0, SUITE_REGION, SUITE_SERVICE, MP_SIGV4_FLAGS_GENERIC };
  MpSigv4Request req;
  const char *date;
  gsize len;

  aws_suite_ran++;
  g_assert_true (g_file_get_contents (req_path, &text, &len, NULL));
  r = test_request_parse (text, len);
  payload = body_sha256 (r);

  /* The request carries its own time; a session token travels as a header the suite signs. */
  date = test_request_take_header (r, "X-Amz-Date");
  g_assert_nonnull (date);
  trimmed_date = g_strstrip (g_strdup (date));
  g_assert_true (mp_sigv4_parse_amz_date (trimmed_date, &params.now));
  params.session_token = test_request_take_header (r, "X-Amz-Security-Token");

  req = test_request_view (r, payload);
  s = mp_sigv4_sign (&req, &params, &error);
  g_assert_no_error (error);
  g_assert_nonnull (s);
  if (creq)
    g_assert_cmpstr (s->canonical_request, ==, creq);
  if (sts)
    g_assert_cmpstr (s->string_to_sign, ==, sts);
  if (authz)
    g_assert_cmpstr (s->authorization, ==, authz);

  /* What we signed, we verify. */
  for (gsize i = 0; i < s->n_set_headers; i++)
    test_request_add_header (r, s->set_headers[i].name, s->set_headers[i].value);
  req = test_request_view (r, payload);
  vparams.now = params.now;
  auth = mp_sigv4_parse_request (&req, &error);
  g_assert_no_error (error);
  g_assert_true (mp_sigv4_verify (auth, &req, SUITE_SECRET, &vparams, &error));
  g_assert_no_error (error);

  if (!g_test_failed ())
    aws_suite_passed++;
}

static int
compare_paths (gconstpointer a, gconstpointer b)
{
  return strcmp (*(const char *const *) a, *(const char *const *) b);
}

static void
find_aws_suite_cases (const char *dir, GPtrArray *cases)
{
  g_autoptr(GDir) d = g_dir_open (dir, 0, NULL);
  g_autofree char *name = g_path_get_basename (dir);
  g_autofree char *req_name = g_strconcat (name, ".req", NULL);
  g_autofree char *req_path = g_build_filename (dir, req_name, NULL);
  g_autoptr(GPtrArray) subdirs = g_ptr_array_new_with_free_func (g_free);
  const char *entry;

  if (d == NULL)
    return;
  if (g_file_test (req_path, G_FILE_TEST_IS_REGULAR))
    g_ptr_array_add (cases, g_strdup (dir));
  while ((entry = g_dir_read_name (d)))
    {
      char *sub = g_build_filename (dir, entry, NULL);

      if (g_file_test (sub, G_FILE_TEST_IS_DIR))
        g_ptr_array_add (subdirs, sub);
      else
        g_free (sub);
    }
  g_ptr_array_sort (subdirs, compare_paths);
  for (guint i = 0; i < subdirs->len; i++)
    find_aws_suite_cases (g_ptr_array_index (subdirs, i), cases);
}

/* ---- the aws-c-auth v4 suite --------------------------------------------------------------- */

typedef struct {
  char     *akid, *secret, *token, *region, *service, *signed_body_value;
  gint64    now;
  gint64    expires;
  gboolean  normalize, sign_body, omit_token;
} CAuthContext;

static void
c_auth_context_clear (CAuthContext *c)
{
  g_free (c->akid);
  g_free (c->secret);
  g_free (c->token);
  g_free (c->region);
  g_free (c->service);
  g_free (c->signed_body_value);
}

static char *
json_dup_string (JsonObject *o, const char *member)
{
  return json_object_has_member (o, member) ? g_strdup (json_object_get_string_member (o, member))
                                            : NULL;
}

static gboolean
json_bool (JsonObject *o, const char *member, gboolean fallback)
{
  return json_object_has_member (o, member) ? json_object_get_boolean_member (o, member)
                                            : fallback;
}

static void
c_auth_context_load (CAuthContext *c, const char *dir)
{
  g_autofree char *path = g_build_filename (dir, "context.json", NULL);
  g_autoptr(JsonParser) parser = json_parser_new ();
  g_autoptr(GError) error = NULL;
  g_autoptr(GDateTime) dt = NULL;
  g_autofree char *timestamp = NULL;
  JsonObject *root, *creds;

  json_parser_load_from_file (parser, path, &error);
  g_assert_no_error (error);
  root = json_node_get_object (json_parser_get_root (parser));
  creds = json_object_get_object_member (root, "credentials");
  c->akid = json_dup_string (creds, "access_key_id");
  c->secret = json_dup_string (creds, "secret_access_key");
  c->token = json_dup_string (creds, "token");
  c->region = json_dup_string (root, "region");
  c->service = json_dup_string (root, "service");
  c->signed_body_value = json_dup_string (root, "signed_body_value");
  timestamp = json_dup_string (root, "timestamp");
  dt = g_date_time_new_from_iso8601 (timestamp, NULL);
  g_assert_nonnull (dt);
  c->now = g_date_time_to_unix (dt);
  c->expires = json_object_has_member (root, "expiration_in_seconds")
                 ? json_object_get_int_member (root, "expiration_in_seconds") : 3600;
  c->normalize = json_bool (root, "normalize", TRUE);
  c->sign_body = json_bool (root, "sign_body", FALSE);
  c->omit_token = json_bool (root, "omit_session_token", FALSE);
}

static TestRequest *
c_auth_load_request (const char *dir)
{
  g_autofree char *path = g_build_filename (dir, "request.txt", NULL);
  g_autofree char *text = NULL;
  gsize len;

  g_assert_true (g_file_get_contents (path, &text, &len, NULL));
  return test_request_parse (text, len);
}

static void
c_auth_check (const char *dir, const char *prefix, MpSigv4Signed *s)
{
  g_autofree char *creq_name = g_strconcat (prefix, "-canonical-request.txt", NULL);
  g_autofree char *sts_name = g_strconcat (prefix, "-string-to-sign.txt", NULL);
  g_autofree char *sig_name = g_strconcat (prefix, "-signature.txt", NULL);
  g_autofree char *creq = read_expected (dir, creq_name);
  g_autofree char *sts = read_expected (dir, sts_name);
  g_autofree char *sig = read_expected (dir, sig_name);

  g_assert_true (creq || sts || sig);
  if (creq)
    g_assert_cmpstr (s->canonical_request, ==, creq);
  if (sts)
    g_assert_cmpstr (s->string_to_sign, ==, sts);
  if (sig)
    g_assert_cmpstr (s->signature, ==, g_strstrip (sig));
}

static void
test_c_auth_case (gconstpointer data)
{
  const char *dir = data;
  CAuthContext c = { NULL, };
  MpSigv4SigningParams params;
  MpSigv4VerifyParams vparams;
  MpSigv4Flags path_flags;
  g_autofree char *payload = NULL;

  c_auth_ran++;
  c_auth_context_load (&c, dir);
  path_flags = MP_SIGV4_FLAG_DOUBLE_ENCODE_PATH | (c.normalize ? MP_SIGV4_FLAG_NORMALIZE_PATH : 0);
  params = (MpSigv4SigningParams) { c.akid, c.secret, c.token, c.region, c.service, c.now,
                                    path_flags };
  if (c.omit_token)
    params.flags |= MP_SIGV4_FLAG_OMIT_SESSION_TOKEN;
  vparams = (MpSigv4VerifyParams) { c.now, c.region, c.service, path_flags };

  /* Authorization header */
  {
    g_autoptr(TestRequest) r = c_auth_load_request (dir);
    g_autoptr(MpSigv4Signed) s = NULL;
    g_autoptr(MpSigv4Auth) auth = NULL;
    g_autoptr(GError) error = NULL;
    MpSigv4SigningParams hp = params;
    MpSigv4Request req;

    payload = c.signed_body_value ? g_strdup (c.signed_body_value)
              : c.sign_body ? body_sha256 (r) : g_strdup (MP_SIGV4_EMPTY_SHA256);
    if (c.sign_body)
      hp.flags |= MP_SIGV4_FLAG_CONTENT_SHA256_HEADER;
    req = test_request_view (r, payload);
    s = mp_sigv4_sign (&req, &hp, &error);
    g_assert_no_error (error);
    g_assert_nonnull (s);
    c_auth_check (dir, "header", s);

    for (gsize i = 0; i < s->n_set_headers; i++)
      test_request_add_header (r, s->set_headers[i].name, s->set_headers[i].value);
    req = test_request_view (r, payload);
    auth = mp_sigv4_parse_request (&req, &error);
    g_assert_no_error (error);
    g_assert_true (mp_sigv4_verify (auth, &req, c.secret, &vparams, &error));
    g_assert_no_error (error);
  }

  /* presigned query */
  {
    g_autoptr(TestRequest) r = c_auth_load_request (dir);
    g_autoptr(MpSigv4Signed) s = NULL;
    g_autoptr(GError) error = NULL;
    MpSigv4Request req;

    if (c.signed_body_value)
      test_request_add_header (r, "x-amz-content-sha256", c.signed_body_value);
    req = test_request_view (r, payload);
    s = mp_sigv4_presign (&req, &params, c.expires, &error);
    g_assert_no_error (error);
    g_assert_nonnull (s);
    c_auth_check (dir, "query", s);

    /* a token added after signing is outside the signature: only the service knows it */
    if (!(c.token && c.omit_token))
      {
        g_autoptr(MpSigv4Auth) auth = NULL;

        g_free (r->query);
        r->query = g_strdup (s->query);
        req = test_request_view (r, payload);
        auth = mp_sigv4_parse_request (&req, &error);
        g_assert_no_error (error);
        g_assert_cmpint (auth->expires, ==, c.expires);
        g_assert_true (mp_sigv4_verify (auth, &req, c.secret, &vparams, &error));
        g_assert_no_error (error);
      }
  }

  c_auth_context_clear (&c);
  if (!g_test_failed ())
    c_auth_passed++;
}

static void
test_vectors_absent (gconstpointer data)
{
  g_autofree char *reason = g_strdup_printf ("%s not found under MAGPIE_SHARED_DATA",
                                             (const char *) data);

  g_test_skip (reason);
}

static void
add_vector_tests (void)
{
  g_autofree char *aws = mp_test_shared_data ("sigv4/aws-sig-v4-test-suite");
  g_autofree char *c_auth = mp_test_shared_data ("sigv4/aws-c-auth-v4");

  if (aws == NULL)
    g_test_add_data_func ("/lib/sigv4/aws-suite", "sigv4/aws-sig-v4-test-suite",
                          test_vectors_absent);
  else
    {
      GPtrArray *cases = g_ptr_array_new ();

      find_aws_suite_cases (aws, cases);
      for (guint i = 0; i < cases->len; i++)
        {
          char *dir = g_ptr_array_index (cases, i);
          /* named by the case's place in the suite, so nested cases cannot collide */
          g_autofree char *path = g_strconcat ("/lib/sigv4/", dir + strlen (aws) + 1, NULL);

          g_test_add_data_func_full (path, dir, test_aws_suite_case, g_free);
        }
      g_ptr_array_unref (cases);
    }

  if (c_auth == NULL)
    g_test_add_data_func ("/lib/sigv4/aws-c-auth", "sigv4/aws-c-auth-v4", test_vectors_absent);
  else
    {
      g_autoptr(GDir) d = g_dir_open (c_auth, 0, NULL);
      g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
      const char *entry;

      while (d && (entry = g_dir_read_name (d)))
        {
          g_autofree char *ctx = g_build_filename (c_auth, entry, "context.json", NULL);
          g_autofree char *request = g_build_filename (c_auth, entry, "request.txt", NULL);

          if (g_file_test (ctx, G_FILE_TEST_IS_REGULAR) &&
              g_file_test (request, G_FILE_TEST_IS_REGULAR))
            g_ptr_array_add (names, g_strdup (entry));
        }
      g_ptr_array_sort (names, compare_paths);
      for (guint i = 0; i < names->len; i++)
        {
          const char *name = g_ptr_array_index (names, i);
          g_autofree char *path = g_strconcat ("/lib/sigv4/c-auth/", name, NULL);

          g_test_add_data_func_full (path, g_build_filename (c_auth, name, NULL),
                                     test_c_auth_case, g_free);
        }
    }
}

/* ---- building blocks ----------------------------------------------------------------------- */

static void
test_canonical_uri (void)
{
  static const struct {
    const char *path;
    const char *s3;
    const char *generic;
  } cases[] = {
    { "", "/", "/" },
    { "/", "/", "/" },
    { "/bucket/a%20b/c+d", "/bucket/a%20b/c%2Bd", "/bucket/a%2520b/c%2Bd" },
    { "/my-object//example//photo.user", "/my-object//example//photo.user",
      "/my-object/example/photo.user" },
    { "/a/./b/../c/", "/a/./b/../c/", "/a/c/" },
    { "/%7e%2f%41", "/~%2FA", "/%257e%252f%2541" },
    { "/\xe1\x88\xb4 x", "/%E1%88%B4%20x", "/%E1%88%B4%20x" },
    { "/a/b/..", "/a/b/..", "/a" },
    { "/a/b/../", "/a/b/../", "/a/" },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autofree char *s3 = mp_sigv4_canonical_uri (cases[i].path, MP_SIGV4_FLAGS_S3);
      g_autofree char *generic = mp_sigv4_canonical_uri (cases[i].path, MP_SIGV4_FLAGS_GENERIC);

      g_assert_cmpstr (s3, ==, cases[i].s3);
      g_assert_cmpstr (generic, ==, cases[i].generic);
    }
}

static void
test_canonical_query (void)
{
  static const struct {
    const char *query;
    const char *canonical;
  } cases[] = {
    { NULL, "" },
    { "", "" },
    { "b=2&a=&c&a=1", "a=&a=1&b=2&c=" },
    { "x=a%20b+c&&y=%zz", "x=a%20b%2Bc&y=%25zz" },
    { "Param-3=3&Param=2&%e1%88%b4=1", "%E1%88%B4=1&Param=2&Param-3=3" },
    { "prefix=users/1/&list-type=2", "list-type=2&prefix=users%2F1%2F" },
    { "uploads", "uploads=" },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autofree char *q = mp_sigv4_canonical_query (cases[i].query, FALSE);

      g_assert_cmpstr (q, ==, cases[i].canonical);
    }
  {
    g_autofree char *q = mp_sigv4_canonical_query ("a=1&X-Amz-Signature=ff&b=2", TRUE);

    g_assert_cmpstr (q, ==, "a=1&b=2");
  }
}

static void
test_canonical_headers (void)
{
  const MpSigv4Header headers[] = {
    { "Host", "example.com" },
    { "X-Amz-Meta-B", "  two\t\t words  " },
    { "x-amz-meta-a", "" },
    { "X-AMZ-META-B", "again" },
    { "User-Agent", "not signed" },
    { "X-Folded", "one\r\n  two\n\tthree" },
  };
  MpSigv4Request req = { "GET", "/", NULL, headers, G_N_ELEMENTS (headers), NULL };
  g_autofree char *signed_headers = NULL;
  g_autofree char *creq = mp_sigv4_canonical_request (&req, NULL, MP_SIGV4_FLAGS_S3,
                                                      &signed_headers, NULL);
  g_autoptr(GError) error = NULL;
  g_autofree char *missing = NULL;

  g_assert_cmpstr (creq, ==, "GET\n/\n\nhost:example.com\nx-amz-meta-a:\n"
                             "x-amz-meta-b:two words,again\nx-folded:one,two,three\n\n"
                             "host;x-amz-meta-a;x-amz-meta-b;x-folded\n" MP_SIGV4_EMPTY_SHA256);
  g_assert_cmpstr (signed_headers, ==, "host;x-amz-meta-a;x-amz-meta-b;x-folded");

  missing = mp_sigv4_canonical_request (&req, "host;x-amz-date", MP_SIGV4_FLAGS_S3, NULL, &error);
  g_assert_error (error, MP_SIGV4_ERROR, MP_SIGV4_ERROR_MISSING_SIGNED_HEADER);
  g_assert_null (missing);
}

static void
test_amz_date (void)
{
  g_autofree char *s = mp_sigv4_format_amz_date (1440938160);
  gint64 t = 0;

  g_assert_cmpstr (s, ==, "20150830T123600Z");
  g_assert_true (mp_sigv4_parse_amz_date (s, &t));
  g_assert_cmpint (t, ==, 1440938160);
  g_assert_false (mp_sigv4_parse_amz_date ("20150830T123600", NULL));
  g_assert_false (mp_sigv4_parse_amz_date ("20150230T123600Z", NULL));
  g_assert_false (mp_sigv4_parse_amz_date ("20150830T246000Z", NULL));
  g_assert_false (mp_sigv4_parse_amz_date ("2015-08-30T12:36:00Z", NULL));
  g_assert_true (mp_sigv4_equal ("abc", "abc"));
  g_assert_false (mp_sigv4_equal ("abc", "abd"));
  g_assert_false (mp_sigv4_equal ("abc", "abcd"));
}

/* ---- verification -------------------------------------------------------------------------- */

#define T0      G_GINT64_CONSTANT (1795426865)   /* 2026-11-23T09:41:05Z */
#define AKID    "ASIAMAGPIETEST000001"
#define SECRET  "magpie/secret+key/for-tests-only"
#define TOKEN   "token/with+chars=="

typedef struct {
  GArray    *headers;
  GPtrArray *strings;
  char      *query;
  char      *payload;
} Fixture;

static void
fixture_set_header (Fixture *f, const char *name, const char *value)
{
  for (guint i = 0; i < f->headers->len; i++)
    {
      MpSigv4Header *h = &g_array_index (f->headers, MpSigv4Header, i);

      if (g_ascii_strcasecmp (h->name, name) == 0)
        {
          h->value = g_strdup (value);
          g_ptr_array_add (f->strings, (char *) h->value);
          return;
        }
    }
  {
    MpSigv4Header h = { g_strdup (name), g_strdup (value) };

    g_ptr_array_add (f->strings, (char *) h.name);
    g_ptr_array_add (f->strings, (char *) h.value);
    g_array_append_val (f->headers, h);
  }
}

static void
fixture_setup (Fixture *f, gconstpointer data)
{
  f->headers = g_array_new (FALSE, FALSE, sizeof (MpSigv4Header));
  f->strings = g_ptr_array_new_with_free_func (g_free);
  f->payload = mp_sigv4_sha256_hex ("hello", 5);
  fixture_set_header (f, "Host", "127.0.0.1:9000");
  fixture_set_header (f, "Content-Type", "image/jpeg");
  fixture_set_header (f, "x-amz-meta-sha256", "abc");
}

static void
fixture_teardown (Fixture *f, gconstpointer data)
{
  g_array_unref (f->headers);
  g_ptr_array_unref (f->strings);
  g_free (f->query);
  g_free (f->payload);
}

static MpSigv4Request
fixture_request (Fixture *f)
{
  MpSigv4Request req = { "PUT", "/photos/users/u1/a%20b.jpg", f->query,
                         (const MpSigv4Header *) f->headers->data, f->headers->len, NULL };

  return req;
}

static const MpSigv4SigningParams sign_params = {
  AKID, SECRET, TOKEN, "us-east-1", "s3", T0, MP_SIGV4_FLAGS_S3
};

/* Signs the fixture with an Authorization header and applies the result. */
static void
fixture_sign (Fixture *f)
{
  MpSigv4Request req = fixture_request (f);
  g_autoptr(MpSigv4Signed) s = NULL;
  g_autoptr(GError) error = NULL;

  req.payload_hash = f->payload;
  s = mp_sigv4_sign (&req, &sign_params, &error);
  g_assert_no_error (error);
  for (gsize i = 0; i < s->n_set_headers; i++)
    fixture_set_header (f, s->set_headers[i].name, s->set_headers[i].value);
}

static const char *
fixture_header (Fixture *f, const char *name)
{
  for (guint i = 0; i < f->headers->len; i++)
    if (g_ascii_strcasecmp (g_array_index (f->headers, MpSigv4Header, i).name, name) == 0)
      return g_array_index (f->headers, MpSigv4Header, i).value;
  return NULL;
}

static gboolean
fixture_verify (Fixture *f, const char *secret, gint64 now, GError **error)
{
  MpSigv4Request req = fixture_request (f);
  MpSigv4VerifyParams params = { now, "us-east-1", "s3", MP_SIGV4_FLAGS_S3 };
  g_autoptr(MpSigv4Auth) auth = mp_sigv4_parse_request (&req, error);

  if (auth == NULL)
    return FALSE;
  return mp_sigv4_verify (auth, &req, secret, &params, error);
}

static void
test_verify_header_ok (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  MpSigv4Request req;
  g_autoptr(MpSigv4Auth) auth = NULL;

  fixture_sign (f);
  g_assert_cmpstr (fixture_header (f, "x-amz-content-sha256"), ==, f->payload);
  g_assert_cmpstr (fixture_header (f, "x-amz-security-token"), ==, TOKEN);
  g_assert_true (fixture_verify (f, SECRET, T0, &error));
  g_assert_no_error (error);

  req = fixture_request (f);
  auth = mp_sigv4_parse_request (&req, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (auth->access_key_id, ==, AKID);
  g_assert_cmpstr (auth->region, ==, "us-east-1");
  g_assert_cmpstr (auth->service, ==, "s3");
  g_assert_cmpstr (auth->date, ==, "20261123");
  g_assert_cmpstr (auth->security_token, ==, TOKEN);
  g_assert_cmpstr (auth->payload_hash, ==, f->payload);
  g_assert_cmpstr (auth->signed_headers, ==, "content-type;host;x-amz-content-sha256;x-amz-date;"
                                             "x-amz-meta-sha256;x-amz-security-token");
  g_assert_cmpint (auth->expires, ==, -1);
  g_assert_false (auth->presigned);
}

static void
test_verify_forged (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *authz = NULL;
  char *sig;

  fixture_sign (f);
  authz = g_strdup (fixture_header (f, "Authorization"));
  sig = strstr (authz, "Signature=") + strlen ("Signature=");
  sig[10] = sig[10] == '0' ? '1' : '0';
  fixture_set_header (f, "Authorization", authz);
  g_assert_false (fixture_verify (f, SECRET, T0, &error));
  g_assert_error (error, MP_SIGV4_ERROR, MP_SIGV4_ERROR_SIGNATURE_MISMATCH);
}

static void
test_verify_wrong_secret (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;

  fixture_sign (f);
  g_assert_false (fixture_verify (f, SECRET "x", T0, &error));
  g_assert_error (error, MP_SIGV4_ERROR, MP_SIGV4_ERROR_SIGNATURE_MISMATCH);
}

static void
test_verify_tampered (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;

  fixture_sign (f);
  fixture_set_header (f, "x-amz-meta-sha256", "abd");
  g_assert_false (fixture_verify (f, SECRET, T0, &error));
  g_assert_error (error, MP_SIGV4_ERROR, MP_SIGV4_ERROR_SIGNATURE_MISMATCH);
  g_clear_error (&error);

  /* an unsigned header may change freely */
  fixture_set_header (f, "x-amz-meta-sha256", "abc");
  fixture_set_header (f, "User-Agent", "anything");
  g_assert_true (fixture_verify (f, SECRET, T0, &error));
  g_assert_no_error (error);
}

static void
test_verify_skew (Fixture *f, gconstpointer data)
{
  static const struct {
    gint64   offset;
    gboolean ok;
  } cases[] = {
    { 0, TRUE }, { 900, TRUE }, { -900, TRUE }, { 901, FALSE }, { -901, FALSE }, { 86400, FALSE },
  };

  fixture_sign (f);
  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr(GError) error = NULL;
      gboolean ok = fixture_verify (f, SECRET, T0 + cases[i].offset, &error);

      g_assert_cmpint (ok, ==, cases[i].ok);
      if (cases[i].ok)
        g_assert_no_error (error);
      else
        g_assert_error (error, MP_SIGV4_ERROR, MP_SIGV4_ERROR_CLOCK_SKEW);
    }
}

/* Re-signs by hand with a chosen SignedHeaders list so only that check can fail. */
static void
fixture_sign_with (Fixture *f, const char *signed_headers, const char *scope_date)
{
  MpSigv4Request req = fixture_request (f);
  g_autofree char *creq = NULL;
  g_autofree char *scope = g_strdup_printf ("%s/us-east-1/s3/aws4_request", scope_date);
  g_autofree char *sts = NULL;
  g_autofree char *sig = NULL;
  g_autofree char *authz = NULL;
  guint8 key[32];

  fixture_set_header (f, "x-amz-date", "20261123T094105Z");
  fixture_set_header (f, "x-amz-content-sha256", f->payload);
  req = fixture_request (f);
  creq = mp_sigv4_canonical_request (&req, signed_headers, MP_SIGV4_FLAGS_S3, NULL, NULL);
  g_assert_nonnull (creq);
  sts = mp_sigv4_string_to_sign ("20261123T094105Z", scope, creq);
  mp_sigv4_signing_key (SECRET, scope_date, "us-east-1", "s3", key);
  sig = mp_sigv4_hmac_hex (key, sts);
  authz = g_strdup_printf ("AWS4-HMAC-SHA256 Credential=" AKID "/%s, SignedHeaders=%s, "
                           "Signature=%s", scope, signed_headers, sig);
  fixture_set_header (f, "Authorization", authz);
}

static void
test_verify_unsigned_host (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;

  fixture_sign_with (f, "content-type;x-amz-content-sha256;x-amz-date", "20261123");
  g_assert_false (fixture_verify (f, SECRET, T0, &error));
  g_assert_error (error, MP_SIGV4_ERROR, MP_SIGV4_ERROR_MISSING_SIGNED_HEADER);
  g_clear_error (&error);

  fixture_sign_with (f, "content-type;host;x-amz-content-sha256", "20261123");
  g_assert_false (fixture_verify (f, SECRET, T0, &error));
  g_assert_error (error, MP_SIGV4_ERROR, MP_SIGV4_ERROR_MISSING_SIGNED_HEADER);
  g_clear_error (&error);

  /* the same construction with host and x-amz-date signed passes */
  fixture_sign_with (f, "host;x-amz-content-sha256;x-amz-date", "20261123");
  g_assert_true (fixture_verify (f, SECRET, T0, &error));
  g_assert_no_error (error);

  /* a signed header the request does not carry */
  fixture_sign_with (f, "host;x-amz-content-sha256;x-amz-date", "20261123");
  {
    g_autofree char *authz = g_strdup (fixture_header (f, "Authorization"));
    char *p = strstr (authz, "x-amz-date,");

    memcpy (p, "x-amz-datf", 10);
    fixture_set_header (f, "Authorization", authz);
  }
  g_assert_false (fixture_verify (f, SECRET, T0, &error));
  g_assert_error (error, MP_SIGV4_ERROR, MP_SIGV4_ERROR_MISSING_SIGNED_HEADER);
}

static void
test_verify_scope (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  MpSigv4Request req;
  g_autoptr(MpSigv4Auth) auth = NULL;
  MpSigv4VerifyParams params = { T0, "eu-west-1", "s3", MP_SIGV4_FLAGS_S3 };

  fixture_sign_with (f, "host;x-amz-content-sha256;x-amz-date", "20261122");
  g_assert_false (fixture_verify (f, SECRET, T0, &error));
  g_assert_error (error, MP_SIGV4_ERROR, MP_SIGV4_ERROR_SCOPE_MISMATCH);
  g_clear_error (&error);

  fixture_sign (f);
  req = fixture_request (f);
  auth = mp_sigv4_parse_request (&req, &error);
  g_assert_no_error (error);
  g_assert_false (mp_sigv4_verify (auth, &req, SECRET, &params, &error));
  g_assert_error (error, MP_SIGV4_ERROR, MP_SIGV4_ERROR_SCOPE_MISMATCH);
}

static void
test_parse_authorization_malformed (void)
{
  static const char sig[] = "fe5f80f77d5fa3beca038a248ff027d0445342fe2855ddc963176630326f1024";
  static const struct {
    const char   *value;
    MpSigv4Error  code;
  } cases[] = {
    { "", MP_SIGV4_ERROR_MISSING_AUTH },
    { "AWS AKIDEXAMPLE:qgk2+6Sv9/oM7G3qLEjTH1a1l1g=", MP_SIGV4_ERROR_UNSUPPORTED_ALGORITHM },
    { "AWS4-ECDSA-P256-SHA256 Credential=A/20150830/us-east-1/s3/aws4_request, "
      "SignedHeaders=host, Signature=00", MP_SIGV4_ERROR_UNSUPPORTED_ALGORITHM },
    { "aws4-hmac-sha256 Credential=A/20150830/us-east-1/s3/aws4_request, SignedHeaders=host, "
      "Signature=%s", MP_SIGV4_ERROR_UNSUPPORTED_ALGORITHM },
    { "AWS4-HMAC-SHA256", MP_SIGV4_ERROR_MALFORMED },
    { "AWS4-HMAC-SHA256 ", MP_SIGV4_ERROR_MALFORMED },
    { "AWS4-HMAC-SHA256 Credential=A/20150830/us-east-1/s3/aws4_request, SignedHeaders=host",
      MP_SIGV4_ERROR_MALFORMED },
    { "AWS4-HMAC-SHA256 Credential=A/20150830/us-east-1/s3, SignedHeaders=host, Signature=%s",
      MP_SIGV4_ERROR_MALFORMED },
    { "AWS4-HMAC-SHA256 Credential=A/20150830/us-east-1/s3/aws4_reqest, SignedHeaders=host, "
      "Signature=%s", MP_SIGV4_ERROR_MALFORMED },
    { "AWS4-HMAC-SHA256 Credential=A/20151330/us-east-1/s3/aws4_request, SignedHeaders=host, "
      "Signature=%s", MP_SIGV4_ERROR_MALFORMED },
    { "AWS4-HMAC-SHA256 Credential=/20150830/us-east-1/s3/aws4_request, SignedHeaders=host, "
      "Signature=%s", MP_SIGV4_ERROR_MALFORMED },
    { "AWS4-HMAC-SHA256 Credential=A/20150830/us-east-1/s3/aws4_request, "
      "SignedHeaders=x-amz-date;host, Signature=%s", MP_SIGV4_ERROR_MALFORMED },
    { "AWS4-HMAC-SHA256 Credential=A/20150830/us-east-1/s3/aws4_request, "
      "SignedHeaders=Host;x-amz-date, Signature=%s", MP_SIGV4_ERROR_MALFORMED },
    { "AWS4-HMAC-SHA256 Credential=A/20150830/us-east-1/s3/aws4_request, "
      "SignedHeaders=host;;x-amz-date, Signature=%s", MP_SIGV4_ERROR_MALFORMED },
    { "AWS4-HMAC-SHA256 Credential=A/20150830/us-east-1/s3/aws4_request, "
      "SignedHeaders=host, Signature=abc", MP_SIGV4_ERROR_MALFORMED },
    { "AWS4-HMAC-SHA256 Credential=A/20150830/us-east-1/s3/aws4_request, SignedHeaders=host, "
      "Signature=FE5F80F77D5FA3BECA038A248FF027D0445342FE2855DDC963176630326F1024",
      MP_SIGV4_ERROR_MALFORMED },
    { "AWS4-HMAC-SHA256 Credential=A/20150830/us-east-1/s3/aws4_request, SignedHeaders=host, "
      "Signature=%s, Signature=%s", MP_SIGV4_ERROR_MALFORMED },
    { "AWS4-HMAC-SHA256 Credential=A/20150830/us-east-1/s3/aws4_request, SignedHeaders=host, "
      "Signature=%s, Extra=1", MP_SIGV4_ERROR_MALFORMED },
    { "AWS4-HMAC-SHA256 Credential=A/20150830/us-east-1/s3/aws4_request SignedHeaders=host "
      "Signature=%s", MP_SIGV4_ERROR_MALFORMED },
    { "AWS4-HMAC-SHA256 Credential=, SignedHeaders=host, Signature=%s", MP_SIGV4_ERROR_MALFORMED },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr(GString) value = g_string_new (cases[i].value);
      g_autoptr(GError) error = NULL;
      g_autoptr(MpSigv4Auth) auth = NULL;

      g_string_replace (value, "%s", sig, 0);
      auth = mp_sigv4_parse_authorization (value->str, &error);
      g_test_message ("%s -> %s", value->str, error ? error->message : "(parsed)");
      g_assert_null (auth);
      g_assert_error (error, MP_SIGV4_ERROR, (gint) cases[i].code);
    }

  /* both spellings of the separators real clients use parse */
  {
    g_autofree char *v = g_strdup_printf ("AWS4-HMAC-SHA256 Credential=A/20150830/us-east-1/s3/"
                                          "aws4_request,SignedHeaders=host;x-amz-date,"
                                          "Signature=%s", sig);
    g_autoptr(MpSigv4Auth) auth = mp_sigv4_parse_authorization (v, NULL);

    g_assert_nonnull (auth);
    g_assert_cmpstr (auth->signed_headers, ==, "host;x-amz-date");
    g_assert_cmpstr (auth->signature, ==, sig);
  }
}

static void
test_parse_request_errors (void)
{
  const MpSigv4Header none[] = { { "Host", "h" } };
  const MpSigv4Header two[] = {
    { "Host", "h" }, { "Authorization", "AWS4-HMAC-SHA256 x" }, { "authorization", "y" },
  };
  const MpSigv4Header one[] = { { "Host", "h" }, { "Authorization", "AWS4-HMAC-SHA256 x" } };
  MpSigv4Request req = { "GET", "/", NULL, none, G_N_ELEMENTS (none), NULL };
  g_autoptr(GError) error = NULL;

  g_assert_null (mp_sigv4_parse_request (&req, &error));
  g_assert_error (error, MP_SIGV4_ERROR, MP_SIGV4_ERROR_MISSING_AUTH);
  g_clear_error (&error);

  req.headers = two;
  req.n_headers = G_N_ELEMENTS (two);
  g_assert_null (mp_sigv4_parse_request (&req, &error));
  g_assert_error (error, MP_SIGV4_ERROR, MP_SIGV4_ERROR_MALFORMED);
  g_clear_error (&error);

  req.headers = one;
  req.n_headers = G_N_ELEMENTS (one);
  req.query = "X-Amz-Algorithm=AWS4-HMAC-SHA256";
  g_assert_null (mp_sigv4_parse_request (&req, &error));
  g_assert_error (error, MP_SIGV4_ERROR, MP_SIGV4_ERROR_MALFORMED);
}

static void
test_verify_bad_content_sha256 (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;

  fixture_sign (f);
  fixture_set_header (f, "x-amz-content-sha256", "not-a-hash");
  g_assert_false (fixture_verify (f, SECRET, T0, &error));
  g_assert_error (error, MP_SIGV4_ERROR, MP_SIGV4_ERROR_MALFORMED);
}

/* ---- presigned URLs ------------------------------------------------------------------------ */

static char *
fixture_presign (Fixture *f, gint64 expires)
{
  MpSigv4Request req = fixture_request (f);
  MpSigv4SigningParams params = sign_params;
  g_autoptr(MpSigv4Signed) s = NULL;
  g_autoptr(GError) error = NULL;

  req.method = "PUT";
  s = mp_sigv4_presign (&req, &params, expires, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (s->n_set_headers, ==, 0);
  return g_strdup (s->query);
}

static void
test_presign (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  MpSigv4Request req;
  g_autoptr(MpSigv4Auth) auth = NULL;

  f->query = g_strdup ("partNumber=1&uploadId=a%2Fb");
  {
    g_autofree char *q = fixture_presign (f, 600);

    g_free (f->query);
    f->query = g_steal_pointer (&q);
  }
  g_assert_true (g_str_has_prefix (f->query, "partNumber=1&uploadId=a%2Fb&X-Amz-Algorithm="));
  g_assert_nonnull (strstr (f->query, "&X-Amz-Security-Token=token%2Fwith%2Bchars%3D%3D"));

  req = fixture_request (f);
  auth = mp_sigv4_parse_request (&req, &error);
  g_assert_no_error (error);
  g_assert_true (auth->presigned);
  g_assert_cmpint (auth->expires, ==, 600);
  g_assert_cmpstr (auth->security_token, ==, TOKEN);
  g_assert_cmpstr (auth->payload_hash, ==, MP_SIGV4_UNSIGNED_PAYLOAD);

  g_assert_true (fixture_verify (f, SECRET, T0, &error));
  g_assert_no_error (error);
  g_assert_true (fixture_verify (f, SECRET, T0 + 600, &error));
  g_assert_no_error (error);
  g_assert_true (fixture_verify (f, SECRET, T0 - 900, &error));
  g_assert_no_error (error);

  g_assert_false (fixture_verify (f, SECRET, T0 + 601, &error));
  g_assert_error (error, MP_SIGV4_ERROR, MP_SIGV4_ERROR_REQUEST_EXPIRED);
  g_clear_error (&error);
  g_assert_false (fixture_verify (f, SECRET, T0 - 901, &error));
  g_assert_error (error, MP_SIGV4_ERROR, MP_SIGV4_ERROR_CLOCK_SKEW);
  g_clear_error (&error);
  g_assert_false (fixture_verify (f, SECRET "x", T0, &error));
  g_assert_error (error, MP_SIGV4_ERROR, MP_SIGV4_ERROR_SIGNATURE_MISMATCH);
  g_clear_error (&error);

  /* the token is part of the signed query */
  {
    g_autoptr(GString) q = g_string_new (f->query);

    g_string_replace (q, "token%2Fwith", "token%2Fwiti", 1);
    g_free (f->query);
    f->query = g_string_free (g_steal_pointer (&q), FALSE);
  }
  g_assert_false (fixture_verify (f, SECRET, T0, &error));
  g_assert_error (error, MP_SIGV4_ERROR, MP_SIGV4_ERROR_SIGNATURE_MISMATCH);
}

/* Found by tests/fuzz/fuzz-sigv4: presigning a URL that already carries X-Amz-* parameters
 * (presigning again before it expires) repeated them, and the verifier refuses repeats. */
static void
test_presign_again (Fixture *f, gconstpointer data)
{
  static const char *const names[] = {
    "X-Amz-Algorithm=", "X-Amz-Credential=", "X-Amz-Date=", "X-Amz-Expires=",
    "X-Amz-SignedHeaders=", "X-Amz-Security-Token=", "X-Amz-Signature=",
  };
  g_autoptr(GError) error = NULL;

  f->query = g_strdup ("partNumber=1&uploadId=a%2Fb");
  for (int round = 0; round < 2; round++)
    {
      g_autofree char *q = fixture_presign (f, 600 + round);

      g_free (f->query);
      f->query = g_steal_pointer (&q);
    }
  /* also when a client spelled a name with escapes */
  {
    g_autofree char *q = g_strconcat ("X%2DAmz%2DDate=19700101T000000Z&", f->query, NULL);
    g_autofree char *again = NULL;

    g_free (f->query);
    f->query = g_steal_pointer (&q);
    again = fixture_presign (f, 602);
    g_free (f->query);
    f->query = g_steal_pointer (&again);
  }
  g_assert_true (g_str_has_prefix (f->query, "partNumber=1&uploadId=a%2Fb&X-Amz-Algorithm="));
  for (gsize i = 0; i < G_N_ELEMENTS (names); i++)
    {
      const char *first = strstr (f->query, names[i]);

      g_assert_nonnull (first);
      g_assert_null (strstr (first + 1, names[i]));
    }
  g_assert_nonnull (strstr (f->query, "X-Amz-Expires=602&"));
  g_assert_true (fixture_verify (f, SECRET, T0, &error));
  g_assert_no_error (error);
}

static void
test_presign_expires_bounds (Fixture *f, gconstpointer data)
{
  static const struct {
    const char   *replace;
    const char   *with;
    MpSigv4Error  code;
  } cases[] = {
    { "X-Amz-Expires=3600", "X-Amz-Expires=0", MP_SIGV4_ERROR_MALFORMED },
    { "X-Amz-Expires=3600", "X-Amz-Expires=604801", MP_SIGV4_ERROR_MALFORMED },
    { "X-Amz-Expires=3600", "X-Amz-Expires=-5", MP_SIGV4_ERROR_MALFORMED },
    { "X-Amz-Expires=3600", "X-Amz-Expires=1h", MP_SIGV4_ERROR_MALFORMED },
    { "X-Amz-Expires=3600", "X-Amz-Expires=3600&X-Amz-Expires=3600", MP_SIGV4_ERROR_MALFORMED },
    { "X-Amz-Expires=3600", "X-Amz-Expires=3601", MP_SIGV4_ERROR_SIGNATURE_MISMATCH },
    { "X-Amz-Algorithm=AWS4-HMAC-SHA256", "X-Amz-Algorithm=AWS4-HMAC-SHA1",
      MP_SIGV4_ERROR_UNSUPPORTED_ALGORITHM },
    { "X-Amz-Date=20261123T094105Z", "X-Amz-Date=20261123T094105", MP_SIGV4_ERROR_MALFORMED },
    { "X-Amz-Date=20261123T094105Z", "", MP_SIGV4_ERROR_MALFORMED },
    { "X-Amz-SignedHeaders=", "X-Amz-SignedHeaders=content-type%3B", MP_SIGV4_ERROR_MALFORMED },
  };
  g_autofree char *good = NULL;
  g_autoptr(GError) error = NULL;
  MpSigv4SigningParams params = sign_params;
  MpSigv4Request req = fixture_request (f);

  good = fixture_presign (f, 3600);
  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr(GString) q = g_string_new (good);

      g_assert_nonnull (strstr (good, cases[i].replace));
      g_string_replace (q, cases[i].replace, cases[i].with, 1);
      g_free (f->query);
      f->query = g_string_free (g_steal_pointer (&q), FALSE);
      g_assert_false (fixture_verify (f, SECRET, T0, &error));
      g_test_message ("%s -> %s", cases[i].with, error->message);
      g_assert_error (error, MP_SIGV4_ERROR, (gint) cases[i].code);
      g_clear_error (&error);
    }

  g_assert_null (mp_sigv4_presign (&req, &params, 0, &error));
  g_assert_error (error, MP_SIGV4_ERROR, MP_SIGV4_ERROR_MALFORMED);
  g_clear_error (&error);
  g_assert_null (mp_sigv4_presign (&req, &params, MP_SIGV4_MAX_EXPIRES_S + 1, &error));
  g_assert_error (error, MP_SIGV4_ERROR, MP_SIGV4_ERROR_MALFORMED);
  g_clear_error (&error);
  {
    g_autoptr(MpSigv4Signed) s = mp_sigv4_presign (&req, &params, MP_SIGV4_MAX_EXPIRES_S, &error);

    g_assert_no_error (error);
    g_assert_nonnull (s);
  }
}

static char *
lookup_secret (const char *akid, const char *token, gpointer user_data, GError **error)
{
  if (g_strcmp0 (akid, AKID) == 0 && g_strcmp0 (token, TOKEN) == 0)
    return g_strdup (SECRET);
  g_set_error (error, MP_SIGV4_ERROR, MP_SIGV4_ERROR_UNKNOWN_ACCESS_KEY,
               "no such access key %s", akid);
  return NULL;
}

static void
test_verify_request_lookup (Fixture *f, gconstpointer data)
{
  MpSigv4VerifyParams params = { T0, "us-east-1", "s3", MP_SIGV4_FLAGS_S3 };
  g_autoptr(GError) error = NULL;
  g_autoptr(MpSigv4Auth) auth = NULL;
  MpSigv4Request req;

  fixture_sign (f);
  req = fixture_request (f);
  auth = mp_sigv4_verify_request (&req, &params, lookup_secret, NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (auth);
  g_assert_cmpstr (auth->access_key_id, ==, AKID);

  fixture_set_header (f, "x-amz-security-token", "other");
  req = fixture_request (f);
  g_assert_null (mp_sigv4_verify_request (&req, &params, lookup_secret, NULL, &error));
  g_assert_error (error, MP_SIGV4_ERROR, MP_SIGV4_ERROR_UNKNOWN_ACCESS_KEY);
}

/* ---- aws-chunked ---------------------------------------------------------------------------- */

/* The worked example of the S3 documentation ("Signature Calculations for the Authorization
 * Header: Transferring Payload in Multiple Chunks"): 64 KiB + 1 KiB of 'a'. */
static void
test_chunked_aws_example (void)
{
  const MpSigv4Header headers[] = {
    { "Host", "s3.amazonaws.com" },
    { "x-amz-storage-class", "REDUCED_REDUNDANCY" },
    { "Content-Encoding", "aws-chunked" },
    { "x-amz-decoded-content-length", "66560" },
    { "Content-Length", "66824" },
  };
  MpSigv4Request req = { "PUT", "/examplebucket/chunkObject.txt", NULL, headers,
                         G_N_ELEMENTS (headers), MP_SIGV4_STREAMING_PAYLOAD };
  MpSigv4SigningParams params = {
    "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", NULL, "us-east-1", "s3",
    1369353600 /* 20130524T000000Z */, MP_SIGV4_FLAGS_S3
  };
  g_autoptr(MpSigv4Signed) s = mp_sigv4_sign (&req, &params, NULL);
  g_autoptr(MpSigv4ChunkEncoder) enc = NULL;
  g_autoptr(GByteArray) body = g_byte_array_new ();
  g_autofree guint8 *a = g_malloc (65536);
  g_autofree char *text = NULL;

  g_assert_nonnull (s);
  g_assert_cmpstr (s->signature, ==,
                   "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9");
  memset (a, 'a', 65536);
  enc = mp_sigv4_chunk_encoder_new (&params, s);
  mp_sigv4_chunk_encoder_add (enc, a, 65536, body);
  mp_sigv4_chunk_encoder_add (enc, a, 1024, body);
  mp_sigv4_chunk_encoder_finish (enc, body);
  g_assert_cmpuint (body->len, ==, 66824);
  g_assert_cmpuint (mp_sigv4_chunked_length (66560, 65536), ==, 66824);
  text = g_strndup ((const char *) body->data, 100);
  g_assert_cmpstr (text, ==, "10000;chunk-signature="
                   "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648\r\naaaaaaaaaa"
                   "aa");
  g_assert_nonnull (g_strstr_len ((const char *) body->data, body->len,
                                  "\r\n400;chunk-signature="
                                  "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497"
                                  "\r\n"));
  g_assert_nonnull (g_strstr_len ((const char *) body->data, body->len,
                                  "\r\n0;chunk-signature="
                                  "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9"
                                  "\r\n\r\n"));
}

typedef struct {
  MpSigv4Auth *auth;
  GByteArray  *body;
  GByteArray  *payload;
} Chunked;

#define CHUNK_MAX 64

/* A verified seed request and a body of chunks of 17, 1, 64 and 5 bytes. */
static void
chunked_setup (Chunked *c, gconstpointer data)
{
  const MpSigv4Header headers[] = {
    { "Host", "127.0.0.1:9000" },
    { "Content-Encoding", "aws-chunked" },
    { "x-amz-decoded-content-length", "87" },
  };
  MpSigv4Request req = { "PUT", "/photos/users/u1/x.jpg", NULL, headers, G_N_ELEMENTS (headers),
                         MP_SIGV4_STREAMING_PAYLOAD };
  static const gsize sizes[] = { 17, 1, 64, 5 };
  g_autoptr(MpSigv4Signed) s = mp_sigv4_sign (&req, &sign_params, NULL);
  g_autoptr(MpSigv4ChunkEncoder) enc = mp_sigv4_chunk_encoder_new (&sign_params, s);
  g_autoptr(GArray) all = g_array_new (FALSE, FALSE, sizeof (MpSigv4Header));
  MpSigv4VerifyParams params = { T0, "us-east-1", "s3", MP_SIGV4_FLAGS_S3 };
  gsize offset = 0;

  c->body = g_byte_array_new ();
  c->payload = g_byte_array_new ();
  for (gsize i = 0; i < 87; i++)
    {
      guint8 b = (guint8) (i * 7 + 3);

      g_byte_array_append (c->payload, &b, 1);
    }
  for (gsize i = 0; i < G_N_ELEMENTS (sizes); i++)
    {
      mp_sigv4_chunk_encoder_add (enc, c->payload->data + offset, sizes[i], c->body);
      offset += sizes[i];
    }
  mp_sigv4_chunk_encoder_finish (enc, c->body);
  g_assert_cmpuint (offset, ==, 87);

  g_array_append_vals (all, headers, G_N_ELEMENTS (headers));
  g_array_append_vals (all, s->set_headers, s->n_set_headers);
  req.headers = (const MpSigv4Header *) all->data;
  req.n_headers = all->len;
  req.payload_hash = NULL;
  c->auth = mp_sigv4_verify_request (&req, &params, lookup_secret, NULL, NULL);
  g_assert_nonnull (c->auth);
  g_assert_cmpstr (c->auth->payload_hash, ==, MP_SIGV4_STREAMING_PAYLOAD);
}

static void
chunked_teardown (Chunked *c, gconstpointer data)
{
  mp_sigv4_auth_free (c->auth);
  g_byte_array_unref (c->body);
  g_byte_array_unref (c->payload);
}

/* Feeds @body cut at the given offsets; returns the decoder's verdict. */
static gboolean
decode_split (Chunked *c, const guint8 *body, gsize len, const gsize *cuts, gsize n_cuts,
              gint64 decoded_length, GByteArray *out, GError **error)
{
  g_autoptr(MpSigv4ChunkDecoder) dec = mp_sigv4_chunk_decoder_new (c->auth, SECRET, CHUNK_MAX,
                                                                   decoded_length);
  gsize from = 0;

  for (gsize i = 0; i <= n_cuts; i++)
    {
      gsize to = i < n_cuts ? cuts[i] : len;

      if (!mp_sigv4_chunk_decoder_feed (dec, body + from, to - from, out, error))
        return FALSE;
      from = to;
    }
  return mp_sigv4_chunk_decoder_finish (dec, error);
}

static void
test_chunked_every_split (Chunked *c, gconstpointer data)
{
  /* per chunk: hex digits + ";chunk-signature=" + 64 + CRLF + data + CRLF */
  g_assert_cmpuint (c->body->len, ==, (2 + 1 + 2 + 1) + 4 * (17 + 64 + 4) + 87 + 86);

  /* every single cut point, each paired with a spread of second cut points */
  for (gsize i = 0; i <= c->body->len; i++)
    for (gsize j = i; j <= c->body->len; j += (j == i ? 1 : 13))
      {
        g_autoptr(GByteArray) out = g_byte_array_new ();
        g_autoptr(GError) error = NULL;
        gsize cuts[2] = { i, j };

        if (!decode_split (c, c->body->data, c->body->len, cuts, 2, 87, out, &error))
          g_error ("split at %" G_GSIZE_FORMAT ",%" G_GSIZE_FORMAT ": %s", i, j, error->message);
        g_assert_cmpmem (out->data, out->len, c->payload->data, c->payload->len);
      }

  /* one byte at a time */
  {
    g_autoptr(MpSigv4ChunkDecoder) dec = mp_sigv4_chunk_decoder_new (c->auth, SECRET, CHUNK_MAX,
                                                                     -1);
    g_autoptr(GByteArray) out = g_byte_array_new ();
    g_autoptr(GError) error = NULL;

    for (gsize i = 0; i < c->body->len; i++)
      g_assert_true (mp_sigv4_chunk_decoder_feed (dec, c->body->data + i, 1, out, &error));
    g_assert_true (mp_sigv4_chunk_decoder_finish (dec, &error));
    g_assert_no_error (error);
    g_assert_cmpmem (out->data, out->len, c->payload->data, c->payload->len);
    g_assert_cmpuint (mp_sigv4_chunk_decoder_get_verified_length (dec), ==, 87);
  }
}

static void
expect_decode_error (Chunked *c, GByteArray *body, gsize max, gint64 decoded_length,
                     MpSigv4Error code)
{
  g_autoptr(MpSigv4ChunkDecoder) dec = mp_sigv4_chunk_decoder_new (c->auth, SECRET, max,
                                                                   decoded_length);
  g_autoptr(GError) error = NULL;
  gboolean ok = mp_sigv4_chunk_decoder_feed (dec, body->data, body->len, NULL, &error);

  if (ok)
    ok = mp_sigv4_chunk_decoder_finish (dec, &error);
  g_assert_false (ok);
  g_test_message ("%s", error->message);
  g_assert_error (error, MP_SIGV4_ERROR, (gint) code);

  /* a rejected stream stays rejected */
  g_clear_error (&error);
  g_assert_false (mp_sigv4_chunk_decoder_feed (dec, (const guint8 *) "x", 1, NULL, &error));
  g_assert_nonnull (error);
}

static GByteArray *
body_copy (Chunked *c)
{
  GByteArray *b = g_byte_array_new ();

  g_byte_array_append (b, c->body->data, c->body->len);
  return b;
}

static void
test_chunked_corrupt (Chunked *c, gconstpointer data)
{
  g_autoptr(GByteArray) sig = body_copy (c);
  g_autoptr(GByteArray) payload = body_copy (c);
  g_autoptr(GByteArray) last = body_copy (c);
  g_autoptr(GByteArray) wrong_key = body_copy (c);
  guint8 *semi;

  /* a flipped hex digit in the first chunk signature */
  semi = memchr (sig->data, '=', sig->len);
  semi[5] = semi[5] == 'a' ? 'b' : 'a';
  expect_decode_error (c, sig, CHUNK_MAX, 87, MP_SIGV4_ERROR_SIGNATURE_MISMATCH);

  /* a flipped payload byte in the first chunk */
  payload->data[(guint8 *) memchr (payload->data, '\n', payload->len) - payload->data + 3] ^= 1;
  expect_decode_error (c, payload, CHUNK_MAX, 87, MP_SIGV4_ERROR_SIGNATURE_MISMATCH);

  /* the final chunk's signature */
  last->data[last->len - 5] = last->data[last->len - 5] == '0' ? '1' : '0';
  expect_decode_error (c, last, CHUNK_MAX, 87, MP_SIGV4_ERROR_SIGNATURE_MISMATCH);

  /* the right framing under another secret */
  {
    g_autoptr(MpSigv4ChunkDecoder) dec = mp_sigv4_chunk_decoder_new (c->auth, SECRET "x",
                                                                     CHUNK_MAX, 87);
    g_autoptr(GError) error = NULL;

    g_assert_false (mp_sigv4_chunk_decoder_feed (dec, wrong_key->data, wrong_key->len, NULL,
                                                 &error));
    g_assert_error (error, MP_SIGV4_ERROR, MP_SIGV4_ERROR_SIGNATURE_MISMATCH);
  }
}

static void
test_chunked_truncated (Chunked *c, gconstpointer data)
{
  for (gsize cut = 0; cut < c->body->len; cut++)
    {
      g_autoptr(MpSigv4ChunkDecoder) dec = mp_sigv4_chunk_decoder_new (c->auth, SECRET,
                                                                       CHUNK_MAX, 87);
      g_autoptr(GError) error = NULL;

      g_assert_true (mp_sigv4_chunk_decoder_feed (dec, c->body->data, cut, NULL, &error));
      g_assert_false (mp_sigv4_chunk_decoder_finish (dec, &error));
      g_assert_error (error, MP_SIGV4_ERROR, MP_SIGV4_ERROR_TRUNCATED);
    }
}

static void
test_chunked_framing (Chunked *c, gconstpointer data)
{
  static const char sig64[] = "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648";
  static const char *const bad_lines[] = {
    "zz;chunk-signature=%s\r\n",
    ";chunk-signature=%s\r\n",
    "11\r\n",
    "11;chunk-signature=abc\r\n",
    "11;chunk-signature=%s;x=y\r\n",
    "11;chunk-signatur=%s\r\n",
    "11;chunk-signature=%s\n",
    "11 ;chunk-signature=%s\r\n",
    "00000000000000011;chunk-signature=%s\r\n",
    "11;chunk-signature=%s\r\r\n",
  };

  for (gsize i = 0; i < G_N_ELEMENTS (bad_lines); i++)
    {
      g_autoptr(GString) line = g_string_new (bad_lines[i]);
      g_autoptr(GByteArray) body = g_byte_array_new ();

      g_string_replace (line, "%s", sig64, 0);
      g_byte_array_append (body, (const guint8 *) line->str, line->len);
      expect_decode_error (c, body, CHUNK_MAX, -1, MP_SIGV4_ERROR_MALFORMED);
    }

  /* an endless header line is refused at the bound, not buffered */
  {
    g_autoptr(GByteArray) body = g_byte_array_new ();
    g_autoptr(MpSigv4ChunkDecoder) dec = mp_sigv4_chunk_decoder_new (c->auth, SECRET, CHUNK_MAX,
                                                                     -1);
    g_autoptr(GError) error = NULL;
    gsize fed = 0;
    gboolean ok = TRUE;

    g_byte_array_set_size (body, 1024);
    memset (body->data, '1', body->len);
    while (ok && fed < 1024 * 1024)
      {
        ok = mp_sigv4_chunk_decoder_feed (dec, body->data, body->len, NULL, &error);
        fed += body->len;
      }
    g_assert_false (ok);
    g_assert_error (error, MP_SIGV4_ERROR, MP_SIGV4_ERROR_MALFORMED);
    g_assert_cmpuint (fed, <=, MP_SIGV4_CHUNK_LINE_MAX + 1024);
  }

  /* chunk data not followed by CRLF, and trailing garbage after the final chunk */
  {
    g_autoptr(GByteArray) no_crlf = body_copy (c);
    g_autoptr(GByteArray) garbage = body_copy (c);
    guint8 *first_data = memchr (no_crlf->data, '\n', no_crlf->len) + 1;

    first_data[17] = 'X';
    expect_decode_error (c, no_crlf, CHUNK_MAX, 87, MP_SIGV4_ERROR_MALFORMED);
    g_byte_array_append (garbage, (const guint8 *) "\r\n", 2);
    expect_decode_error (c, garbage, CHUNK_MAX, 87, MP_SIGV4_ERROR_MALFORMED);
  }
}

static void
test_chunked_limits (Chunked *c, gconstpointer data)
{
  /* the 64-byte chunk is over a 63-byte limit */
  expect_decode_error (c, c->body, CHUNK_MAX - 1, 87, MP_SIGV4_ERROR_CHUNK_TOO_LARGE);
  expect_decode_error (c, c->body, CHUNK_MAX, 88, MP_SIGV4_ERROR_LENGTH_MISMATCH);
  expect_decode_error (c, c->body, CHUNK_MAX, 86, MP_SIGV4_ERROR_LENGTH_MISMATCH);
  {
    g_autoptr(GByteArray) huge = g_byte_array_new ();
    const char *line = "ffffffffffffffff;chunk-signature="
                       "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648\r\n";

    g_byte_array_append (huge, (const guint8 *) line, strlen (line));
    expect_decode_error (c, huge, CHUNK_MAX, -1, MP_SIGV4_ERROR_CHUNK_TOO_LARGE);
  }
}

int
main (int argc, char *argv[])
{
  int rc;

  g_test_init (&argc, &argv, NULL);

  add_vector_tests ();
  g_test_add_func ("/lib/sigv4/canonical-uri", test_canonical_uri);
  g_test_add_func ("/lib/sigv4/canonical-query", test_canonical_query);
  g_test_add_func ("/lib/sigv4/canonical-headers", test_canonical_headers);
  g_test_add_func ("/lib/sigv4/amz-date", test_amz_date);
  g_test_add ("/lib/sigv4/verify/ok", Fixture, NULL, fixture_setup, test_verify_header_ok,
              fixture_teardown);
  g_test_add ("/lib/sigv4/verify/forged-signature", Fixture, NULL, fixture_setup,
              test_verify_forged, fixture_teardown);
  g_test_add ("/lib/sigv4/verify/wrong-secret", Fixture, NULL, fixture_setup,
              test_verify_wrong_secret, fixture_teardown);
  g_test_add ("/lib/sigv4/verify/tampered-header", Fixture, NULL, fixture_setup,
              test_verify_tampered, fixture_teardown);
  g_test_add ("/lib/sigv4/verify/clock-skew", Fixture, NULL, fixture_setup, test_verify_skew,
              fixture_teardown);
  g_test_add ("/lib/sigv4/verify/unsigned-host", Fixture, NULL, fixture_setup,
              test_verify_unsigned_host, fixture_teardown);
  g_test_add ("/lib/sigv4/verify/scope", Fixture, NULL, fixture_setup, test_verify_scope,
              fixture_teardown);
  g_test_add ("/lib/sigv4/verify/lookup", Fixture, NULL, fixture_setup,
              test_verify_request_lookup, fixture_teardown);
  g_test_add_func ("/lib/sigv4/verify/malformed-authorization",
                   test_parse_authorization_malformed);
  g_test_add_func ("/lib/sigv4/verify/request-errors", test_parse_request_errors);
  g_test_add ("/lib/sigv4/verify/bad-content-sha256", Fixture, NULL, fixture_setup,
              test_verify_bad_content_sha256, fixture_teardown);
  g_test_add ("/lib/sigv4/presign/verify", Fixture, NULL, fixture_setup, test_presign,
              fixture_teardown);
  g_test_add ("/lib/sigv4/presign/again", Fixture, NULL, fixture_setup, test_presign_again,
              fixture_teardown);
  g_test_add ("/lib/sigv4/presign/bad-query", Fixture, NULL, fixture_setup,
              test_presign_expires_bounds, fixture_teardown);
  g_test_add_func ("/lib/sigv4/chunked/aws-example", test_chunked_aws_example);
  g_test_add ("/lib/sigv4/chunked/every-split", Chunked, NULL, chunked_setup,
              test_chunked_every_split, chunked_teardown);
  g_test_add ("/lib/sigv4/chunked/corrupt-signature", Chunked, NULL, chunked_setup,
              test_chunked_corrupt, chunked_teardown);
  g_test_add ("/lib/sigv4/chunked/truncated", Chunked, NULL, chunked_setup,
              test_chunked_truncated, chunked_teardown);
  g_test_add ("/lib/sigv4/chunked/framing", Chunked, NULL, chunked_setup, test_chunked_framing,
              chunked_teardown);
  g_test_add ("/lib/sigv4/chunked/limits", Chunked, NULL, chunked_setup, test_chunked_limits,
              chunked_teardown);

  rc = g_test_run ();
  g_print ("# sigv4 vectors: aws-sig-v4-test-suite %u ran, %u passed; "
           "aws-c-auth-v4 %u ran, %u passed\n",
           aws_suite_ran, aws_suite_passed, c_auth_ran, c_auth_passed);
  return rc;
}
