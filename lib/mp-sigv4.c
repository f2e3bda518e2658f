/* mp-sigv4.c - AWS Signature Version 4 signer and verifier, and the aws-chunked codec */
#include "config.h"

#include <string.h>

#include "mp-sigv4.h"

#define CHUNK_STS_ALGORITHM "AWS4-HMAC-SHA256-PAYLOAD"
#define CHUNK_SIG_PREFIX    ";chunk-signature="
#define CHUNK_SIZE_DIGITS   16  /* a guint64 in hex; more digits cannot be a sane size */

G_DEFINE_QUARK (mp-sigv4-error-quark, mp_sigv4_error)

/* ---- small helpers ---------------------------------------------------------------------- */

static gboolean
is_unreserved (guchar c)
{
  return g_ascii_isalnum (c) || c == '-' || c == '.' || c == '_' || c == '~';
}

static void
append_encoded (GString *out, const char *data, gsize len)
{
  static const char hex[] = "0123456789ABCDEF";

  for (gsize i = 0; i < len; i++)
    {
      guchar c = data[i];

      if (is_unreserved (c))
        g_string_append_c (out, c);
      else
        {
          g_string_append_c (out, '%');
          g_string_append_c (out, hex[c >> 4]);
          g_string_append_c (out, hex[c & 15]);
        }
    }
}

/* RFC 3986 percent-decoding; '+' stays '+', a '%' without two hex digits stays literal. */
static GString *
percent_decode (const char *data, gsize len)
{
  GString *out = g_string_sized_new (len);

  for (gsize i = 0; i < len; i++)
    {
      if (data[i] == '%' && i + 2 < len &&
          g_ascii_isxdigit (data[i + 1]) && g_ascii_isxdigit (data[i + 2]))
        {
          g_string_append_c (out, (char) (g_ascii_xdigit_value (data[i + 1]) * 16 +
                                          g_ascii_xdigit_value (data[i + 2])));
          i += 2;
        }
      else
        g_string_append_c (out, data[i]);
    }
  return out;
}

static gboolean
is_lower_hex (const char *s, gsize len)
{
  if (s == NULL || strlen (s) != len)
    return FALSE;
  for (gsize i = 0; i < len; i++)
    if (!g_ascii_isdigit (s[i]) && !(s[i] >= 'a' && s[i] <= 'f'))
      return FALSE;
  return TRUE;
}

char *
mp_sigv4_sha256_hex (const void *data, gsize len)
{
  return g_compute_checksum_for_data (G_CHECKSUM_SHA256, data, len);
}

static void
hmac_sha256 (const guint8 *key, gsize key_len, const char *msg, guint8 out[32])
{
  g_autoptr(GHmac) hmac = g_hmac_new (G_CHECKSUM_SHA256, key, key_len);
  gsize len = 32;

  g_hmac_update (hmac, (const guchar *) msg, strlen (msg));
  g_hmac_get_digest (hmac, out, &len);
  g_assert (len == 32);
}

void
mp_sigv4_signing_key (const char *secret_access_key,
                      const char *date,
                      const char *region,
                      const char *service,
                      guint8      out_key[32])
{
  g_autofree char *k_secret = g_strconcat ("AWS4", secret_access_key, NULL);
  guint8 k_date[32], k_region[32], k_service[32];

  hmac_sha256 ((const guint8 *) k_secret, strlen (k_secret), date, k_date);
  hmac_sha256 (k_date, 32, region, k_region);
  hmac_sha256 (k_region, 32, service, k_service);
  hmac_sha256 (k_service, 32, "aws4_request", out_key);
  memset (k_secret, 0, strlen (k_secret));
}

char *
mp_sigv4_hmac_hex (const guint8 key[32], const char *string_to_sign)
{
  g_autoptr(GHmac) hmac = g_hmac_new (G_CHECKSUM_SHA256, key, 32);

  g_hmac_update (hmac, (const guchar *) string_to_sign, strlen (string_to_sign));
  return g_strdup (g_hmac_get_string (hmac));
}

/* Constant time in the contents: a forged signature learns nothing from timing. */
gboolean
mp_sigv4_equal (const char *a, const char *b)
{
  gsize la, lb;
  guint diff;

  if (a == NULL || b == NULL)
    return FALSE;
  la = strlen (a);
  lb = strlen (b);
  diff = (la != lb);
  for (gsize i = 0; i < la; i++)
    diff |= (guchar) a[i] ^ (guchar) (i < lb ? b[i] : 0);
  return diff == 0;
}

char *
mp_sigv4_format_amz_date (gint64 unix_s)
{
  g_autoptr(GDateTime) dt = g_date_time_new_from_unix_utc (unix_s);

  g_return_val_if_fail (dt != NULL, NULL);
  return g_date_time_format (dt, "%Y%m%dT%H%M%SZ");
}

static gboolean
all_digits (const char *s, gsize n)
{
  for (gsize i = 0; i < n; i++)
    if (!g_ascii_isdigit (s[i]))
      return FALSE;
  return TRUE;
}

static int
digits_value (const char *s, gsize n)
{
  int v = 0;

  for (gsize i = 0; i < n; i++)
    v = v * 10 + (s[i] - '0');
  return v;
}

static gboolean
valid_scope_date (const char *s)
{
  if (s == NULL || strlen (s) != 8 || !all_digits (s, 8))
    return FALSE;
  return g_date_valid_dmy (digits_value (s + 6, 2), digits_value (s + 4, 2),
                           digits_value (s, 4));
}

gboolean
mp_sigv4_parse_amz_date (const char *text, gint64 *out_unix_s)
{
  g_autoptr(GDateTime) dt = NULL;
  int hh, mm, ss;

  if (text == NULL || strlen (text) != 16 || text[8] != 'T' || text[15] != 'Z')
    return FALSE;
  if (!all_digits (text, 8) || !all_digits (text + 9, 6))
    return FALSE;
  hh = digits_value (text + 9, 2);
  mm = digits_value (text + 11, 2);
  ss = digits_value (text + 13, 2);
  if (hh > 23 || mm > 59 || ss > 59)
    return FALSE;
  if (!g_date_valid_dmy (digits_value (text + 6, 2), digits_value (text + 4, 2),
                         digits_value (text, 4)))
    return FALSE;
  dt = g_date_time_new_utc (digits_value (text, 4), digits_value (text + 4, 2),
                            digits_value (text + 6, 2), hh, mm, ss);
  if (dt == NULL)
    return FALSE;
  if (out_unix_s)
    *out_unix_s = g_date_time_to_unix (dt);
  return TRUE;
}

/* ---- canonical request ------------------------------------------------------------------- */

static void
append_path_segment (GString *out, const char *seg, gsize len, MpSigv4Flags flags)
{
  if (flags & MP_SIGV4_FLAG_DOUBLE_ENCODE_PATH)
    append_encoded (out, seg, len);
  else
    {
      /* S3: the wire path is already encoded once; decode and re-encode so that the
       * canonical form does not depend on how a client spelled its escapes. */
      g_autoptr(GString) raw = percent_decode (seg, len);

      append_encoded (out, raw->str, raw->len);
    }
}

char *
mp_sigv4_canonical_uri (const char *path, MpSigv4Flags flags)
{
  GString *out = g_string_new (NULL);

  if (path == NULL || *path == '\0')
    path = "/";

  if (flags & MP_SIGV4_FLAG_NORMALIZE_PATH)
    {
      g_auto(GStrv) parts = g_strsplit (path, "/", -1);
      g_autoptr(GPtrArray) kept = g_ptr_array_new ();
      /* as botocore does: a trailing slash survives only if the path ended in one */
      gboolean trailing = g_str_has_suffix (path, "/");

      for (guint i = 0; parts[i]; i++)
        {
          const char *seg = parts[i];

          if (strcmp (seg, "") == 0 || strcmp (seg, ".") == 0)
            continue;
          if (strcmp (seg, "..") == 0)
            {
              if (kept->len > 0)
                g_ptr_array_remove_index (kept, kept->len - 1);
              continue;
            }
          g_ptr_array_add (kept, (gpointer) seg);
        }
      for (guint i = 0; i < kept->len; i++)
        {
          const char *seg = g_ptr_array_index (kept, i);

          g_string_append_c (out, '/');
          append_path_segment (out, seg, strlen (seg), flags);
        }
      if (out->len == 0 || trailing)
        g_string_append_c (out, '/');
    }
  else
    {
      const char *p = path;

      if (*p != '/')
        g_string_append_c (out, '/');
      while (*p)
        {
          const char *slash = strchr (p, '/');
          gsize len = slash ? (gsize) (slash - p) : strlen (p);

          append_path_segment (out, p, len, flags);
          p += len;
          if (*p == '/')
            {
              g_string_append_c (out, '/');
              p++;
            }
        }
    }
  return g_string_free (out, FALSE);
}

typedef struct {
  char *name;
  char *value;
} QueryPair;

static int
query_pair_compare (gconstpointer a, gconstpointer b)
{
  const QueryPair *pa = a, *pb = b;
  int r = strcmp (pa->name, pb->name);

  return r != 0 ? r : strcmp (pa->value, pb->value);
}

static void
query_pair_clear (gpointer p)
{
  QueryPair *pair = p;

  g_free (pair->name);
  g_free (pair->value);
}

/* Decoded (name, value) pairs of a raw query, in order; empty components are skipped. */
static GArray *
query_split_decoded (const char *query)
{
  GArray *pairs = g_array_new (FALSE, FALSE, sizeof (QueryPair));
  const char *p = query ? query : "";

  g_array_set_clear_func (pairs, query_pair_clear);
  while (*p)
    {
      const char *amp = strchr (p, '&');
      gsize len = amp ? (gsize) (amp - p) : strlen (p);
      const char *eq = memchr (p, '=', len);

      if (len > 0)
        {
          gsize name_len = eq ? (gsize) (eq - p) : len;
          GString *name = percent_decode (p, name_len);
          GString *value = eq ? percent_decode (eq + 1, len - name_len - 1) : g_string_new (NULL);
          QueryPair pair = { g_string_free (name, FALSE), g_string_free (value, FALSE) };

          g_array_append_val (pairs, pair);
        }
      p += len;
      if (*p == '&')
        p++;
    }
  return pairs;
}

char *
mp_sigv4_canonical_query (const char *query, gboolean drop_signature)
{
  g_autoptr(GArray) pairs = query_split_decoded (query);
  g_autoptr(GArray) encoded = g_array_new (FALSE, FALSE, sizeof (QueryPair));
  GString *out = g_string_new (NULL);

  g_array_set_clear_func (encoded, query_pair_clear);
  for (guint i = 0; i < pairs->len; i++)
    {
      QueryPair *pair = &g_array_index (pairs, QueryPair, i);
      GString *name, *value;
      QueryPair enc;

      if (drop_signature && strcmp (pair->name, "X-Amz-Signature") == 0)
        continue;
      name = g_string_new (NULL);
      value = g_string_new (NULL);
      append_encoded (name, pair->name, strlen (pair->name));
      append_encoded (value, pair->value, strlen (pair->value));
      enc.name = g_string_free (name, FALSE);
      enc.value = g_string_free (value, FALSE);
      g_array_append_val (encoded, enc);
    }
  /* AWS sorts by the encoded names, then values, byte by byte. */
  g_array_sort (encoded, query_pair_compare);
  for (guint i = 0; i < encoded->len; i++)
    {
      QueryPair *pair = &g_array_index (encoded, QueryPair, i);

      g_string_append_printf (out, "%s%s=%s", i ? "&" : "", pair->name, pair->value);
    }
  return g_string_free (out, FALSE);
}

static gboolean
is_space (char c)
{
  return c == ' ' || c == '\t';
}

/* Trimall: trim, collapse runs of blanks to one space. A value folded over several lines
 * (obs-fold) becomes its lines joined with commas, as the AWS suite expects. */
static void
append_canonical_value (GString *out, const char *value)
{
  gboolean first_line = TRUE;
  const char *p = value;

  while (TRUE)
    {
      const char *end = p;
      const char *s, *e;

      while (*end && *end != '\n' && *end != '\r')
        end++;
      s = p;
      e = end;
      while (s < e && is_space (*s))
        s++;
      while (e > s && is_space (e[-1]))
        e--;
      if (s < e)
        {
          if (!first_line)
            g_string_append_c (out, ',');
          first_line = FALSE;
          for (const char *c = s; c < e; c++)
            {
              if (is_space (*c))
                {
                  if (!is_space (c[-1]))
                    g_string_append_c (out, ' ');
                }
              else
                g_string_append_c (out, *c);
            }
        }
      if (*end == '\0')
        break;
      p = end + 1;
    }
}

/* Headers a signer leaves out: proxies and HTTP stacks rewrite them (as botocore does). */
static gboolean
header_skipped_when_signing (const char *lower_name)
{
  static const char *const skipped[] = {
    "authorization", "expect", "user-agent", "x-amzn-trace-id",
  };

  for (gsize i = 0; i < G_N_ELEMENTS (skipped); i++)
    if (strcmp (lower_name, skipped[i]) == 0)
      return TRUE;
  return FALSE;
}

static const char *
request_find_header (const MpSigv4Request *request, const char *name, guint *count)
{
  const char *found = NULL;
  guint n = 0;

  for (gsize i = 0; i < request->n_headers; i++)
    if (g_ascii_strcasecmp (request->headers[i].name, name) == 0)
      {
        if (found == NULL)
          found = request->headers[i].value;
        n++;
      }
  if (count)
    *count = n;
  return found;
}

static int
strcmp_ptr (gconstpointer a, gconstpointer b)
{
  return strcmp (*(const char *const *) a, *(const char *const *) b);
}

/* "a;b;c" from every signable header of @request, lowercase, sorted, unique. */
static char *
default_signed_headers (const MpSigv4Request *request)
{
  g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  GString *out = g_string_new (NULL);

  for (gsize i = 0; i < request->n_headers; i++)
    {
      char *lower = g_ascii_strdown (request->headers[i].name, -1);

      g_strstrip (lower);
      if (header_skipped_when_signing (lower) || *lower == '\0')
        g_free (lower);
      else
        g_ptr_array_add (names, lower);
    }
  g_ptr_array_sort (names, strcmp_ptr);
  for (guint i = 0; i < names->len; i++)
    {
      const char *name = g_ptr_array_index (names, i);

      if (i > 0 && strcmp (name, g_ptr_array_index (names, i - 1)) == 0)
        continue;
      if (out->len)
        g_string_append_c (out, ';');
      g_string_append (out, name);
    }
  return g_string_free (out, FALSE);
}

static char *
canonical_request_full (const MpSigv4Request *request,
                        const char           *signed_headers,
                        MpSigv4Flags          flags,
                        gboolean              drop_signature,
                        const char           *payload_hash,
                        char                **out_signed_headers,
                        GError              **error)
{
  g_autofree char *signed_owned = NULL;
  g_autofree char *uri = NULL;
  g_autofree char *query = NULL;
  g_auto(GStrv) names = NULL;
  GString *out;

  if (signed_headers == NULL)
    signed_headers = signed_owned = default_signed_headers (request);
  names = g_strsplit (signed_headers, ";", -1);

  uri = mp_sigv4_canonical_uri (request->path, flags);
  query = mp_sigv4_canonical_query (request->query, drop_signature);
  out = g_string_new (request->method);
  g_string_append_printf (out, "\n%s\n%s\n", uri, query);

  for (guint i = 0; names[i]; i++)
    {
      gboolean found = FALSE;

      g_string_append_printf (out, "%s:", names[i]);
      for (gsize h = 0; h < request->n_headers; h++)
        {
          g_autofree char *lower = g_ascii_strdown (request->headers[h].name, -1);

          if (strcmp (g_strstrip (lower), names[i]) != 0)
            continue;
          if (found)
            g_string_append_c (out, ',');
          found = TRUE;
          append_canonical_value (out, request->headers[h].value ? request->headers[h].value : "");
        }
      if (!found)
        {
          g_set_error (error, MP_SIGV4_ERROR, MP_SIGV4_ERROR_MISSING_SIGNED_HEADER,
                       "signed header '%s' is not in the request", names[i]);
          g_string_free (out, TRUE);
          return NULL;
        }
      g_string_append_c (out, '\n');
    }

  if (payload_hash == NULL)
    payload_hash = request->payload_hash;
  if (payload_hash == NULL)
    payload_hash = request_find_header (request, "x-amz-content-sha256", NULL);
  if (payload_hash == NULL)
    payload_hash = MP_SIGV4_EMPTY_SHA256;
  g_string_append_printf (out, "\n%s\n%s", signed_headers, payload_hash);

  if (out_signed_headers)
    *out_signed_headers = g_strdup (signed_headers);
  return g_string_free (out, FALSE);
}

char *
mp_sigv4_canonical_request (const MpSigv4Request *request,
                            const char           *signed_headers,
                            MpSigv4Flags          flags,
                            char                **out_signed_headers,
                            GError              **error)
{
  g_return_val_if_fail (request != NULL && request->method != NULL, NULL);
  return canonical_request_full (request, signed_headers, flags, FALSE, NULL,
                                 out_signed_headers, error);
}

char *
mp_sigv4_string_to_sign (const char *amz_date, const char *scope, const char *canonical_request)
{
  g_autofree char *hash = mp_sigv4_sha256_hex (canonical_request, strlen (canonical_request));

  return g_strdup_printf (MP_SIGV4_ALGORITHM "\n%s\n%s\n%s", amz_date, scope, hash);
}

/* ---- signing ----------------------------------------------------------------------------- */

static void
signed_add_header (MpSigv4Signed *s, const char *name, char *owned_value)
{
  g_assert (s->n_set_headers < G_N_ELEMENTS (s->set_headers));
  s->strings_[s->n_set_headers] = owned_value;
  s->set_headers[s->n_set_headers].name = name;
  s->set_headers[s->n_set_headers].value = owned_value;
  s->n_set_headers++;
}

void
mp_sigv4_signed_free (MpSigv4Signed *s)
{
  if (s == NULL)
    return;
  g_free (s->canonical_request);
  g_free (s->string_to_sign);
  g_free (s->signature);
  g_free (s->signed_headers);
  g_free (s->amz_date);
  g_free (s->scope);
  g_free (s->authorization);
  g_free (s->query);
  for (gsize i = 0; i < G_N_ELEMENTS (s->strings_); i++)
    g_free (s->strings_[i]);
  g_free (s);
}

static gboolean
check_signing_params (const MpSigv4Request *request, const MpSigv4SigningParams *params,
                      GError **error)
{
  g_return_val_if_fail (request != NULL && request->method != NULL, FALSE);
  g_return_val_if_fail (params != NULL && params->access_key_id != NULL &&
                        params->secret_access_key != NULL && params->region != NULL &&
                        params->service != NULL, FALSE);
  if (request_find_header (request, "host", NULL) == NULL)
    {
      g_set_error_literal (error, MP_SIGV4_ERROR, MP_SIGV4_ERROR_MISSING_SIGNED_HEADER,
                           "the request has no Host header to sign");
      return FALSE;
    }
  return TRUE;
}

/* Copies the request's headers without the ones signing is about to (re)set. */
static GArray *
headers_without (const MpSigv4Request *request, const char *const *drop)
{
  GArray *out = g_array_new (FALSE, FALSE, sizeof (MpSigv4Header));

  for (gsize i = 0; i < request->n_headers; i++)
    {
      gboolean keep = TRUE;

      for (guint d = 0; drop[d]; d++)
        if (g_ascii_strcasecmp (request->headers[i].name, drop[d]) == 0)
          keep = FALSE;
      if (keep)
        g_array_append_val (out, request->headers[i]);
    }
  return out;
}

static void
append_header (GArray *headers, const char *name, const char *value)
{
  MpSigv4Header h = { name, value };

  g_array_append_val (headers, h);
}

static MpSigv4Signed *
signed_new (const MpSigv4SigningParams *params)
{
  MpSigv4Signed *s = g_new0 (MpSigv4Signed, 1);
  g_autofree char *date = NULL;

  s->amz_date = mp_sigv4_format_amz_date (params->now);
  date = g_strndup (s->amz_date, 8);
  s->scope = g_strdup_printf ("%s/%s/%s/aws4_request", date, params->region, params->service);
  return s;
}

static void
signed_finish (MpSigv4Signed *s, const MpSigv4SigningParams *params)
{
  g_autofree char *date = g_strndup (s->amz_date, 8);
  guint8 key[32];

  s->string_to_sign = mp_sigv4_string_to_sign (s->amz_date, s->scope, s->canonical_request);
  mp_sigv4_signing_key (params->secret_access_key, date, params->region, params->service, key);
  s->signature = mp_sigv4_hmac_hex (key, s->string_to_sign);
  memset (key, 0, sizeof key);
}

MpSigv4Signed *
mp_sigv4_sign (const MpSigv4Request       *request,
               const MpSigv4SigningParams *params,
               GError                    **error)
{
  /* a caller's own token / x-amz-content-sha256 header stays unless we set that header */
  const char *drop[5] = { "authorization", "x-amz-date", NULL, };
  guint n_drop = 2;
  g_autoptr(MpSigv4Signed) s = NULL;
  g_autoptr(GArray) headers = NULL;
  const char *payload;
  const char *token = params ? params->session_token : NULL;
  MpSigv4Request work;

  if (!check_signing_params (request, params, error))
    return NULL;

  s = signed_new (params);
  payload = request->payload_hash;
  if (payload == NULL)
    payload = request_find_header (request, "x-amz-content-sha256", NULL);
  if (payload == NULL)
    payload = MP_SIGV4_EMPTY_SHA256;

  if (token)
    drop[n_drop++] = "x-amz-security-token";
  if (params->flags & MP_SIGV4_FLAG_CONTENT_SHA256_HEADER)
    drop[n_drop++] = "x-amz-content-sha256";
  headers = headers_without (request, drop);

  signed_add_header (s, "X-Amz-Date", g_strdup (s->amz_date));
  append_header (headers, "x-amz-date", s->amz_date);
  if (token)
    {
      signed_add_header (s, "X-Amz-Security-Token", g_strdup (token));
      if (!(params->flags & MP_SIGV4_FLAG_OMIT_SESSION_TOKEN))
        append_header (headers, "x-amz-security-token", token);
    }
  if (params->flags & MP_SIGV4_FLAG_CONTENT_SHA256_HEADER)
    {
      signed_add_header (s, "X-Amz-Content-SHA256", g_strdup (payload));
      append_header (headers, "x-amz-content-sha256", payload);
    }

  work = *request;
  work.headers = (const MpSigv4Header *) headers->data;
  work.n_headers = headers->len;
  s->canonical_request = canonical_request_full (&work, NULL, params->flags, FALSE, payload,
                                                 &s->signed_headers, error);
  if (s->canonical_request == NULL)
    return NULL;
  signed_finish (s, params);
  s->authorization = g_strdup_printf (MP_SIGV4_ALGORITHM " Credential=%s/%s, SignedHeaders=%s, "
                                      "Signature=%s", params->access_key_id, s->scope,
                                      s->signed_headers, s->signature);
  signed_add_header (s, "Authorization", g_strdup (s->authorization));
  return g_steal_pointer (&s);
}

static void
append_query_param (GString *q, const char *name, const char *value)
{
  if (q->len)
    g_string_append_c (q, '&');
  append_encoded (q, name, strlen (name));
  g_string_append_c (q, '=');
  append_encoded (q, value, strlen (value));
}

/* The query authentication parameters presigning adds (and parsing rejects twice). */
static const char *const presign_params[] = {
  "X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires",
  "X-Amz-SignedHeaders", "X-Amz-Security-Token", "X-Amz-Signature",
};

/* @query without the components whose (decoded) name is one of presign_params: presigning
 * again (a URL about to expire, say) replaces them, as botocore's dict of parameters does,
 * instead of repeating them into a URL no server accepts. */
static GString *
query_without_presign_params (const char *query)
{
  GString *out = g_string_new (NULL);
  const char *p = query ? query : "";

  while (*p)
    {
      const char *amp = strchr (p, '&');
      gsize len = amp ? (gsize) (amp - p) : strlen (p);
      const char *eq = memchr (p, '=', len);
      g_autoptr(GString) name = percent_decode (p, eq ? (gsize) (eq - p) : len);
      gboolean drop = FALSE;

      for (gsize i = 0; i < G_N_ELEMENTS (presign_params); i++)
        drop = drop || strcmp (name->str, presign_params[i]) == 0;
      if (len > 0 && !drop)
        {
          if (out->len)
            g_string_append_c (out, '&');
          g_string_append_len (out, p, len);
        }
      p += len;
      if (*p == '&')
        p++;
    }
  return out;
}

MpSigv4Signed *
mp_sigv4_presign (const MpSigv4Request       *request,
                  const MpSigv4SigningParams *params,
                  gint64                      expires_s,
                  GError                    **error)
{
  static const char *const drop[] = { "authorization", "x-amz-date", "x-amz-security-token", NULL };
  g_autoptr(MpSigv4Signed) s = NULL;
  g_autoptr(GArray) headers = NULL;
  g_autofree char *credential = NULL;
  g_autofree char *expires = NULL;
  const char *payload;
  const char *token = params ? params->session_token : NULL;
  gboolean sign_token;
  GString *query;
  MpSigv4Request work;

  if (!check_signing_params (request, params, error))
    return NULL;
  if (expires_s < 1 || expires_s > MP_SIGV4_MAX_EXPIRES_S)
    {
      g_set_error (error, MP_SIGV4_ERROR, MP_SIGV4_ERROR_MALFORMED,
                   "presigned URLs expire after 1 to %d seconds, not %" G_GINT64_FORMAT,
                   MP_SIGV4_MAX_EXPIRES_S, expires_s);
      return NULL;
    }

  s = signed_new (params);
  headers = headers_without (request, drop);
  work = *request;
  work.headers = (const MpSigv4Header *) headers->data;
  work.n_headers = headers->len;
  s->signed_headers = default_signed_headers (&work);

  payload = request->payload_hash;
  if (payload == NULL)
    payload = request_find_header (request, "x-amz-content-sha256", NULL);
  if (payload == NULL)
    payload = MP_SIGV4_UNSIGNED_PAYLOAD;

  credential = g_strdup_printf ("%s/%s", params->access_key_id, s->scope);
  expires = g_strdup_printf ("%" G_GINT64_FORMAT, expires_s);
  sign_token = token != NULL && !(params->flags & MP_SIGV4_FLAG_OMIT_SESSION_TOKEN);
  query = query_without_presign_params (request->query);
  append_query_param (query, "X-Amz-Algorithm", MP_SIGV4_ALGORITHM);
  append_query_param (query, "X-Amz-Credential", credential);
  append_query_param (query, "X-Amz-Date", s->amz_date);
  append_query_param (query, "X-Amz-Expires", expires);
  append_query_param (query, "X-Amz-SignedHeaders", s->signed_headers);
  if (sign_token)
    append_query_param (query, "X-Amz-Security-Token", token);

  work.query = query->str;
  s->canonical_request = canonical_request_full (&work, s->signed_headers, params->flags, FALSE,
                                                 payload, NULL, error);
  if (s->canonical_request == NULL)
    {
      g_string_free (query, TRUE);
      return NULL;
    }
  signed_finish (s, params);
  append_query_param (query, "X-Amz-Signature", s->signature);
  if (token != NULL && !sign_token)
    append_query_param (query, "X-Amz-Security-Token", token);
  s->query = g_string_free (query, FALSE);
  return g_steal_pointer (&s);
}

/* ---- parsing what a client sent ---------------------------------------------------------- */

void
mp_sigv4_auth_free (MpSigv4Auth *auth)
{
  if (auth == NULL)
    return;
  g_free (auth->access_key_id);
  g_free (auth->date);
  g_free (auth->region);
  g_free (auth->service);
  g_free (auth->scope);
  g_free (auth->signed_headers);
  g_free (auth->signature);
  g_free (auth->amz_date);
  g_free (auth->security_token);
  g_free (auth->payload_hash);
  g_free (auth);
}

static gboolean
malformed (GError **error, const char *format, ...) G_GNUC_PRINTF (2, 3);

static gboolean
malformed (GError **error, const char *format, ...)
{
  va_list args;

  va_start (args, format);
  g_propagate_error (error, g_error_new_valist (MP_SIGV4_ERROR, MP_SIGV4_ERROR_MALFORMED, format,
                                                args));
  va_end (args);
  return FALSE;
}

static gboolean
parse_credential (MpSigv4Auth *auth, const char *credential, GError **error)
{
  g_auto(GStrv) parts = g_strsplit (credential, "/", -1);

  if (g_strv_length (parts) != 5)
    return malformed (error, "credential '%s' is not AKID/date/region/service/aws4_request",
                      credential);
  for (guint i = 0; i < 5; i++)
    if (*parts[i] == '\0')
      return malformed (error, "credential '%s' has an empty field", credential);
  if (!valid_scope_date (parts[1]))
    return malformed (error, "credential date '%s' is not a YYYYMMDD date", parts[1]);
  if (strcmp (parts[4], "aws4_request") != 0)
    return malformed (error, "credential must end in aws4_request, not '%s'", parts[4]);
  auth->access_key_id = g_strdup (parts[0]);
  auth->date = g_strdup (parts[1]);
  auth->region = g_strdup (parts[2]);
  auth->service = g_strdup (parts[3]);
  auth->scope = g_strdup_printf ("%s/%s/%s/aws4_request", parts[1], parts[2], parts[3]);
  return TRUE;
}

static gboolean
is_tchar_lower (char c)
{
  return (c >= 'a' && c <= 'z') || g_ascii_isdigit (c) || (c && strchr ("!#$%&'*+-.^_`|~", c));
}

static gboolean
parse_signed_headers (MpSigv4Auth *auth, const char *list, GError **error)
{
  g_auto(GStrv) names = g_strsplit (list, ";", -1);

  for (guint i = 0; names[i]; i++)
    {
      if (*names[i] == '\0')
        return malformed (error, "SignedHeaders '%s' has an empty name", list);
      for (const char *c = names[i]; *c; c++)
        if (!is_tchar_lower (*c))
          return malformed (error, "SignedHeaders name '%s' is not a lowercase header name",
                            names[i]);
      if (i > 0 && strcmp (names[i - 1], names[i]) >= 0)
        return malformed (error, "SignedHeaders '%s' is not sorted or repeats a name", list);
    }
  auth->signed_headers = g_strdup (list);
  return TRUE;
}

static gboolean
parse_signature (MpSigv4Auth *auth, const char *signature, GError **error)
{
  if (!is_lower_hex (signature, 64))
    return malformed (error, "signature is not 64 lowercase hex digits");
  auth->signature = g_strdup (signature);
  return TRUE;
}

MpSigv4Auth *
mp_sigv4_parse_authorization (const char *header_value, GError **error)
{
  g_autoptr(MpSigv4Auth) auth = g_new0 (MpSigv4Auth, 1);
  g_auto(GStrv) parts = NULL;
  const char *space, *rest;
  gboolean seen_credential = FALSE, seen_signed = FALSE, seen_signature = FALSE;

  auth->expires = -1;
  if (header_value == NULL || *header_value == '\0')
    {
      g_set_error_literal (error, MP_SIGV4_ERROR, MP_SIGV4_ERROR_MISSING_AUTH,
                           "empty Authorization header");
      return NULL;
    }
  space = strchr (header_value, ' ');
  if (space == NULL || (gsize) (space - header_value) != strlen (MP_SIGV4_ALGORITHM) ||
      strncmp (header_value, MP_SIGV4_ALGORITHM, space - header_value) != 0)
    {
      g_autofree char *algorithm = g_strndup (header_value, space ? (gsize) (space - header_value)
                                                                  : strlen (header_value));
      if (strcmp (algorithm, MP_SIGV4_ALGORITHM) == 0)
        malformed (error, "Authorization header has no Credential, SignedHeaders, Signature");
      else
        g_set_error (error, MP_SIGV4_ERROR, MP_SIGV4_ERROR_UNSUPPORTED_ALGORITHM,
                     "unsupported authorization algorithm '%s' (only " MP_SIGV4_ALGORITHM ")",
                     algorithm);
      return NULL;
    }

  rest = space + 1;
  parts = g_strsplit (rest, ",", -1);
  for (guint i = 0; parts[i]; i++)
    {
      char *part = g_strstrip (parts[i]);
      char *eq = strchr (part, '=');
      const char *value;

      if (eq == NULL || eq == part || eq[1] == '\0')
        {
          malformed (error, "Authorization component '%s' is not Key=Value", part);
          return NULL;
        }
      *eq = '\0';
      value = eq + 1;
      if (strcmp (part, "Credential") == 0 && !seen_credential)
        {
          seen_credential = TRUE;
          if (!parse_credential (auth, value, error))
            return NULL;
        }
      else if (strcmp (part, "SignedHeaders") == 0 && !seen_signed)
        {
          seen_signed = TRUE;
          if (!parse_signed_headers (auth, value, error))
            return NULL;
        }
      else if (strcmp (part, "Signature") == 0 && !seen_signature)
        {
          seen_signature = TRUE;
          if (!parse_signature (auth, value, error))
            return NULL;
        }
      else
        {
          malformed (error, "Authorization component '%s' is unknown or repeated", part);
          return NULL;
        }
    }
  if (!seen_credential || !seen_signed || !seen_signature)
    {
      malformed (error, "Authorization header lacks %s",
                 !seen_credential ? "Credential" : !seen_signed ? "SignedHeaders" : "Signature");
      return NULL;
    }
  return g_steal_pointer (&auth);
}

static gboolean
query_is_presigned (const char *query)
{
  g_autoptr(GArray) pairs = query_split_decoded (query);

  for (guint i = 0; i < pairs->len; i++)
    {
      const char *name = g_array_index (pairs, QueryPair, i).name;

      if (strcmp (name, "X-Amz-Algorithm") == 0 || strcmp (name, "X-Amz-Signature") == 0 ||
          strcmp (name, "X-Amz-Credential") == 0)
        return TRUE;
    }
  return FALSE;
}

MpSigv4Auth *
mp_sigv4_parse_presigned (const char *query, GError **error)
{
  static const char *const keys[] = {
    "X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires",
    "X-Amz-SignedHeaders", "X-Amz-Signature", "X-Amz-Security-Token",
  };
  enum { ALG, CRED, DATE, EXPIRES, SIGNED, SIG, TOKEN, N_KEYS };
  g_autoptr(MpSigv4Auth) auth = g_new0 (MpSigv4Auth, 1);
  g_autoptr(GArray) pairs = query_split_decoded (query);
  const char *values[N_KEYS] = { NULL, };
  guint64 expires = 0;

  for (guint i = 0; i < pairs->len; i++)
    {
      QueryPair *pair = &g_array_index (pairs, QueryPair, i);

      for (guint k = 0; k < N_KEYS; k++)
        if (strcmp (pair->name, keys[k]) == 0)
          {
            if (values[k] != NULL)
              {
                malformed (error, "query repeats %s", keys[k]);
                return NULL;
              }
            values[k] = pair->value;
          }
    }
  if (values[ALG] == NULL && values[SIG] == NULL && values[CRED] == NULL)
    {
      g_set_error_literal (error, MP_SIGV4_ERROR, MP_SIGV4_ERROR_MISSING_AUTH,
                           "the query carries no presigned authentication");
      return NULL;
    }
  if (values[ALG] == NULL)
    {
      malformed (error, "presigned query lacks X-Amz-Algorithm");
      return NULL;
    }
  if (strcmp (values[ALG], MP_SIGV4_ALGORITHM) != 0)
    {
      g_set_error (error, MP_SIGV4_ERROR, MP_SIGV4_ERROR_UNSUPPORTED_ALGORITHM,
                   "unsupported X-Amz-Algorithm '%s' (only " MP_SIGV4_ALGORITHM ")",
                   values[ALG]);
      return NULL;
    }
  for (guint k = 0; k < TOKEN; k++)
    if (values[k] == NULL)
      {
        malformed (error, "presigned query lacks %s", keys[k]);
        return NULL;
      }
  if (!parse_credential (auth, values[CRED], error) ||
      !parse_signed_headers (auth, values[SIGNED], error) ||
      !parse_signature (auth, values[SIG], error))
    return NULL;
  if (!mp_sigv4_parse_amz_date (values[DATE], NULL))
    {
      malformed (error, "X-Amz-Date '%s' is not YYYYMMDDTHHMMSSZ", values[DATE]);
      return NULL;
    }
  if (*values[EXPIRES] == '\0' || strlen (values[EXPIRES]) > 7 ||
      !all_digits (values[EXPIRES], strlen (values[EXPIRES])) ||
      (expires = g_ascii_strtoull (values[EXPIRES], NULL, 10)) < 1 ||
      expires > MP_SIGV4_MAX_EXPIRES_S)
    {
      malformed (error, "X-Amz-Expires '%s' is not 1 to %d seconds", values[EXPIRES],
                 MP_SIGV4_MAX_EXPIRES_S);
      return NULL;
    }
  auth->amz_date = g_strdup (values[DATE]);
  auth->expires = (gint64) expires;
  auth->security_token = g_strdup (values[TOKEN]);
  auth->presigned = TRUE;
  return g_steal_pointer (&auth);
}

/* What S3 accepts in x-amz-content-sha256; anything else cannot describe the body. */
static gboolean
valid_content_sha256 (const char *value)
{
  static const char *const literals[] = {
    MP_SIGV4_UNSIGNED_PAYLOAD, MP_SIGV4_STREAMING_PAYLOAD,
    "STREAMING-UNSIGNED-PAYLOAD-TRAILER", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
  };
  g_autofree char *v = g_strstrip (g_strdup (value));

  for (gsize i = 0; i < G_N_ELEMENTS (literals); i++)
    if (strcmp (v, literals[i]) == 0)
      return TRUE;
  return is_lower_hex (v, 64);
}

MpSigv4Auth *
mp_sigv4_parse_request (const MpSigv4Request *request, GError **error)
{
  g_autoptr(MpSigv4Auth) auth = NULL;
  guint n_authz = 0;
  const char *authz;
  const char *payload;
  gboolean presigned;

  g_return_val_if_fail (request != NULL, NULL);

  authz = request_find_header (request, "authorization", &n_authz);
  presigned = query_is_presigned (request->query);
  if (n_authz > 1)
    {
      malformed (error, "the request has %u Authorization headers", n_authz);
      return NULL;
    }
  if (authz && presigned)
    {
      malformed (error, "the request is signed both in the Authorization header and the query");
      return NULL;
    }
  if (authz)
    {
      guint n_dates = 0;
      const char *date = request_find_header (request, "x-amz-date", &n_dates);
      const char *token = request_find_header (request, "x-amz-security-token", NULL);

      auth = mp_sigv4_parse_authorization (authz, error);
      if (auth == NULL)
        return NULL;
      if (n_dates > 1)
        {
          malformed (error, "the request has %u x-amz-date headers", n_dates);
          return NULL;
        }
      if (date)
        auth->amz_date = g_strstrip (g_strdup (date));
      if (token)
        auth->security_token = g_strstrip (g_strdup (token));
    }
  else if (presigned)
    {
      auth = mp_sigv4_parse_presigned (request->query, error);
      if (auth == NULL)
        return NULL;
    }
  else
    {
      g_set_error_literal (error, MP_SIGV4_ERROR, MP_SIGV4_ERROR_MISSING_AUTH,
                           "the request is not signed");
      return NULL;
    }

  payload = request->payload_hash;
  if (payload == NULL)
    {
      payload = request_find_header (request, "x-amz-content-sha256", NULL);
      if (payload && !valid_content_sha256 (payload))
        {
          malformed (error, "x-amz-content-sha256 '%s' is neither a hex SHA-256 nor one of "
                     "UNSIGNED-PAYLOAD, STREAMING-*", payload);
          return NULL;
        }
    }
  if (payload == NULL)
    payload = auth->presigned ? MP_SIGV4_UNSIGNED_PAYLOAD : MP_SIGV4_EMPTY_SHA256;
  auth->payload_hash = g_strstrip (g_strdup (payload));
  return g_steal_pointer (&auth);
}

/* ---- verification ------------------------------------------------------------------------ */

static gboolean
signed_headers_contain (const char *list, const char *name)
{
  g_auto(GStrv) names = g_strsplit (list, ";", -1);

  return g_strv_contains ((const char *const *) names, name);
}

gboolean
mp_sigv4_verify (const MpSigv4Auth         *auth,
                 const MpSigv4Request      *request,
                 const char                *secret_access_key,
                 const MpSigv4VerifyParams *params,
                 GError                   **error)
{
  g_autofree char *canonical = NULL;
  g_autofree char *sts = NULL;
  g_autofree char *expected = NULL;
  gint64 t;
  guint8 key[32];
  gboolean ok;

  g_return_val_if_fail (auth != NULL && request != NULL && params != NULL, FALSE);
  g_return_val_if_fail (secret_access_key != NULL, FALSE);

  if (!signed_headers_contain (auth->signed_headers, "host"))
    {
      g_set_error_literal (error, MP_SIGV4_ERROR, MP_SIGV4_ERROR_MISSING_SIGNED_HEADER,
                           "the host header must be signed");
      return FALSE;
    }
  if (!auth->presigned && !signed_headers_contain (auth->signed_headers, "x-amz-date"))
    {
      g_set_error_literal (error, MP_SIGV4_ERROR, MP_SIGV4_ERROR_MISSING_SIGNED_HEADER,
                           "the x-amz-date header must be signed");
      return FALSE;
    }
  if (auth->amz_date == NULL)
    {
      g_set_error_literal (error, MP_SIGV4_ERROR, MP_SIGV4_ERROR_MISSING_SIGNED_HEADER,
                           "the request has no x-amz-date");
      return FALSE;
    }
  if (!mp_sigv4_parse_amz_date (auth->amz_date, &t))
    return malformed (error, "x-amz-date '%s' is not YYYYMMDDTHHMMSSZ", auth->amz_date);
  if (strncmp (auth->amz_date, auth->date, 8) != 0)
    {
      g_set_error (error, MP_SIGV4_ERROR, MP_SIGV4_ERROR_SCOPE_MISMATCH,
                   "credential date %s is not the date of x-amz-date %s", auth->date,
                   auth->amz_date);
      return FALSE;
    }
  if ((params->region && strcmp (params->region, auth->region) != 0) ||
      (params->service && strcmp (params->service, auth->service) != 0))
    {
      g_set_error (error, MP_SIGV4_ERROR, MP_SIGV4_ERROR_SCOPE_MISMATCH,
                   "credential scope %s/%s does not match %s/%s", auth->region, auth->service,
                   params->region ? params->region : auth->region,
                   params->service ? params->service : auth->service);
      return FALSE;
    }

  if (auth->presigned)
    {
      if (t - params->now > MP_SIGV4_MAX_SKEW_S)
        {
          g_set_error (error, MP_SIGV4_ERROR, MP_SIGV4_ERROR_CLOCK_SKEW,
                       "presigned request is not valid before %s", auth->amz_date);
          return FALSE;
        }
      if (params->now > t + auth->expires)
        {
          g_set_error (error, MP_SIGV4_ERROR, MP_SIGV4_ERROR_REQUEST_EXPIRED,
                       "presigned request expired %" G_GINT64_FORMAT " s ago",
                       params->now - t - auth->expires);
          return FALSE;
        }
    }
  else if (t - params->now > MP_SIGV4_MAX_SKEW_S || params->now - t > MP_SIGV4_MAX_SKEW_S)
    {
      g_set_error (error, MP_SIGV4_ERROR, MP_SIGV4_ERROR_CLOCK_SKEW,
                   "request time %s is %" G_GINT64_FORMAT " s from the server's clock "
                   "(at most %d s allowed)", auth->amz_date, ABS (params->now - t),
                   MP_SIGV4_MAX_SKEW_S);
      return FALSE;
    }

  canonical = canonical_request_full (request, auth->signed_headers, params->flags,
                                      auth->presigned, auth->payload_hash, NULL, error);
  if (canonical == NULL)
    return FALSE;
  sts = mp_sigv4_string_to_sign (auth->amz_date, auth->scope, canonical);
  mp_sigv4_signing_key (secret_access_key, auth->date, auth->region, auth->service, key);
  expected = mp_sigv4_hmac_hex (key, sts);
  memset (key, 0, sizeof key);
  ok = mp_sigv4_equal (expected, auth->signature);
  if (!ok)
    g_set_error_literal (error, MP_SIGV4_ERROR, MP_SIGV4_ERROR_SIGNATURE_MISMATCH,
                         "the request signature does not match");
  return ok;
}

MpSigv4Auth *
mp_sigv4_verify_request (const MpSigv4Request      *request,
                         const MpSigv4VerifyParams *params,
                         MpSigv4SecretLookup        lookup,
                         gpointer                   user_data,
                         GError                   **error)
{
  g_autoptr(MpSigv4Auth) auth = NULL;
  g_autofree char *secret = NULL;

  g_return_val_if_fail (lookup != NULL, NULL);

  auth = mp_sigv4_parse_request (request, error);
  if (auth == NULL)
    return NULL;
  secret = lookup (auth->access_key_id, auth->security_token, user_data, error);
  if (secret == NULL)
    {
      if (error && *error == NULL)
        g_set_error (error, MP_SIGV4_ERROR, MP_SIGV4_ERROR_UNKNOWN_ACCESS_KEY,
                     "unknown access key id '%s'", auth->access_key_id);
      return NULL;
    }
  if (!mp_sigv4_verify (auth, request, secret, params, error))
    {
      memset (secret, 0, strlen (secret));
      return NULL;
    }
  memset (secret, 0, strlen (secret));
  return g_steal_pointer (&auth);
}

/* ---- aws-chunked ------------------------------------------------------------------------- */

typedef struct {
  guint8  key[32];
  char   *amz_date;
  char   *scope;
  char   *previous;   /* the signature the next chunk chains from */
} ChunkChain;

static void
chunk_chain_init (ChunkChain *chain, const char *secret, const char *date, const char *region,
                  const char *service, const char *amz_date, const char *scope,
                  const char *seed)
{
  mp_sigv4_signing_key (secret, date, region, service, chain->key);
  chain->amz_date = g_strdup (amz_date);
  chain->scope = g_strdup (scope);
  chain->previous = g_strdup (seed);
}

static void
chunk_chain_clear (ChunkChain *chain)
{
  memset (chain->key, 0, sizeof chain->key);
  g_free (chain->amz_date);
  g_free (chain->scope);
  g_free (chain->previous);
}

static char *
chunk_chain_sign (const ChunkChain *chain, const char *data_hash)
{
  g_autofree char *sts = g_strdup_printf (CHUNK_STS_ALGORITHM "\n%s\n%s\n%s\n"
                                          MP_SIGV4_EMPTY_SHA256 "\n%s", chain->amz_date,
                                          chain->scope, chain->previous, data_hash);

  return mp_sigv4_hmac_hex (chain->key, sts);
}

typedef enum {
  DEC_HEADER,      /* reading "hex;chunk-signature=...\r\n" */
  DEC_DATA,
  DEC_DATA_CR,
  DEC_DATA_LF,
  DEC_FINAL_CR,
  DEC_FINAL_LF,
  DEC_DONE,
  DEC_FAILED,
} DecoderState;

struct _MpSigv4ChunkDecoder {
  ChunkChain    chain;
  DecoderState  state;
  GString      *line;
  GChecksum    *checksum;
  char          signature[65];
  guint64       remaining;
  guint64       total;
  guint64       verified;
  gsize         max_chunk_size;
  gint64        decoded_length;
};

MpSigv4ChunkDecoder *
mp_sigv4_chunk_decoder_new (const MpSigv4Auth *auth,
                            const char        *secret_access_key,
                            gsize              max_chunk_size,
                            gint64             decoded_length)
{
  MpSigv4ChunkDecoder *dec;

  g_return_val_if_fail (auth != NULL && auth->amz_date != NULL && auth->signature != NULL, NULL);
  g_return_val_if_fail (secret_access_key != NULL && max_chunk_size > 0, NULL);

  dec = g_new0 (MpSigv4ChunkDecoder, 1);
  chunk_chain_init (&dec->chain, secret_access_key, auth->date, auth->region, auth->service,
                    auth->amz_date, auth->scope, auth->signature);
  dec->line = g_string_sized_new (128);
  dec->checksum = g_checksum_new (G_CHECKSUM_SHA256);
  dec->max_chunk_size = max_chunk_size;
  dec->decoded_length = decoded_length;
  dec->state = DEC_HEADER;
  return dec;
}

void
mp_sigv4_chunk_decoder_free (MpSigv4ChunkDecoder *dec)
{
  if (dec == NULL)
    return;
  chunk_chain_clear (&dec->chain);
  g_string_free (dec->line, TRUE);
  g_checksum_free (dec->checksum);
  g_free (dec);
}

guint64
mp_sigv4_chunk_decoder_get_verified_length (MpSigv4ChunkDecoder *dec)
{
  return dec->verified;
}

static gboolean
decoder_fail (MpSigv4ChunkDecoder *dec, GError **error, MpSigv4Error code, const char *format,
              ...) G_GNUC_PRINTF (4, 5);

static gboolean
decoder_fail (MpSigv4ChunkDecoder *dec, GError **error, MpSigv4Error code, const char *format,
              ...)
{
  va_list args;

  va_start (args, format);
  g_propagate_error (error, g_error_new_valist (MP_SIGV4_ERROR, code, format, args));
  va_end (args);
  dec->state = DEC_FAILED;
  return FALSE;
}

static gboolean
decoder_check_signature (MpSigv4ChunkDecoder *dec, GError **error)
{
  g_autofree char *expected = chunk_chain_sign (&dec->chain, g_checksum_get_string (dec->checksum));

  if (!mp_sigv4_equal (expected, dec->signature))
    return decoder_fail (dec, error, MP_SIGV4_ERROR_SIGNATURE_MISMATCH,
                         "chunk signature does not match at decoded offset %" G_GUINT64_FORMAT,
                         dec->verified);
  g_free (dec->chain.previous);
  dec->chain.previous = g_steal_pointer (&expected);
  g_checksum_reset (dec->checksum);
  return TRUE;
}

static gboolean
decoder_parse_line (MpSigv4ChunkDecoder *dec, GError **error)
{
  const char *line = dec->line->str;
  const char *semi = strchr (line, ';');
  gsize digits = semi ? (gsize) (semi - line) : 0;
  guint64 size = 0;

  if (semi == NULL || digits == 0 || digits > CHUNK_SIZE_DIGITS)
    return decoder_fail (dec, error, MP_SIGV4_ERROR_MALFORMED,
                         "chunk header is not hex-size;chunk-signature=<sig>");
  for (gsize i = 0; i < digits; i++)
    {
      if (!g_ascii_isxdigit (line[i]))
        return decoder_fail (dec, error, MP_SIGV4_ERROR_MALFORMED,
                             "chunk size '%.*s' is not hexadecimal", (int) digits, line);
      size = size * 16 + g_ascii_xdigit_value (line[i]);
    }
  if (strncmp (semi, CHUNK_SIG_PREFIX, strlen (CHUNK_SIG_PREFIX)) != 0 ||
      !is_lower_hex (semi + strlen (CHUNK_SIG_PREFIX), 64))
    return decoder_fail (dec, error, MP_SIGV4_ERROR_MALFORMED,
                         "chunk header lacks a 64-hex-digit chunk-signature");
  if (size > dec->max_chunk_size)
    return decoder_fail (dec, error, MP_SIGV4_ERROR_CHUNK_TOO_LARGE,
                         "chunk of %" G_GUINT64_FORMAT " bytes is over the %" G_GSIZE_FORMAT
                         " byte limit", size, dec->max_chunk_size);
  if (dec->decoded_length >= 0 && dec->total + size > (guint64) dec->decoded_length)
    return decoder_fail (dec, error, MP_SIGV4_ERROR_LENGTH_MISMATCH,
                         "body is longer than x-amz-decoded-content-length %" G_GINT64_FORMAT,
                         dec->decoded_length);
  memcpy (dec->signature, semi + strlen (CHUNK_SIG_PREFIX), 64);
  dec->signature[64] = '\0';
  g_string_truncate (dec->line, 0);

  if (size == 0)
    {
      if (!decoder_check_signature (dec, error))
        return FALSE;
      if (dec->decoded_length >= 0 && dec->total != (guint64) dec->decoded_length)
        return decoder_fail (dec, error, MP_SIGV4_ERROR_LENGTH_MISMATCH,
                             "decoded %" G_GUINT64_FORMAT " bytes, x-amz-decoded-content-length "
                             "says %" G_GINT64_FORMAT, dec->total, dec->decoded_length);
      dec->state = DEC_FINAL_CR;
    }
  else
    {
      dec->remaining = size;
      dec->state = DEC_DATA;
    }
  return TRUE;
}

static gboolean
decoder_expect (MpSigv4ChunkDecoder *dec, guint8 got, char want, DecoderState next,
                GError **error)
{
  if (got != (guint8) want)
    return decoder_fail (dec, error, MP_SIGV4_ERROR_MALFORMED,
                         "expected %s after chunk data, got byte 0x%02x",
                         want == '\r' ? "CR" : "LF", got);
  dec->state = next;
  return TRUE;
}

gboolean
mp_sigv4_chunk_decoder_feed (MpSigv4ChunkDecoder *dec,
                             const guint8        *data,
                             gsize                len,
                             GByteArray          *out,
                             GError             **error)
{
  gsize i = 0;

  g_return_val_if_fail (dec != NULL, FALSE);
  g_return_val_if_fail (data != NULL || len == 0, FALSE);

  if (dec->state == DEC_FAILED)
    return malformed (error, "the aws-chunked body was already rejected");

  while (i < len)
    {
      switch (dec->state)
        {
        case DEC_HEADER:
          if (data[i] == '\n')
            {
              if (dec->line->len == 0 || dec->line->str[dec->line->len - 1] != '\r')
                return decoder_fail (dec, error, MP_SIGV4_ERROR_MALFORMED,
                                     "chunk header line does not end in CRLF");
              g_string_truncate (dec->line, dec->line->len - 1);
              i++;
              if (!decoder_parse_line (dec, error))
                return FALSE;
              break;
            }
          if (dec->line->len >= MP_SIGV4_CHUNK_LINE_MAX)
            return decoder_fail (dec, error, MP_SIGV4_ERROR_MALFORMED,
                                 "chunk header line longer than %d bytes",
                                 MP_SIGV4_CHUNK_LINE_MAX);
          if (data[i] == '\0' || (dec->line->len > 0 && dec->line->str[dec->line->len - 1] == '\r'))
            return decoder_fail (dec, error, MP_SIGV4_ERROR_MALFORMED,
                                 "stray byte in chunk header line");
          g_string_append_c (dec->line, data[i]);
          i++;
          break;

        case DEC_DATA:
          {
            gsize n = (gsize) MIN ((guint64) (len - i), dec->remaining);

            g_checksum_update (dec->checksum, data + i, n);
            if (out)
              g_byte_array_append (out, data + i, n);
            dec->remaining -= n;
            dec->total += n;
            i += n;
            if (dec->remaining == 0)
              {
                if (!decoder_check_signature (dec, error))
                  return FALSE;
                dec->verified = dec->total;
                dec->state = DEC_DATA_CR;
              }
          }
          break;

        case DEC_DATA_CR:
          if (!decoder_expect (dec, data[i++], '\r', DEC_DATA_LF, error))
            return FALSE;
          break;
        case DEC_DATA_LF:
          if (!decoder_expect (dec, data[i++], '\n', DEC_HEADER, error))
            return FALSE;
          break;
        case DEC_FINAL_CR:
          if (!decoder_expect (dec, data[i++], '\r', DEC_FINAL_LF, error))
            return FALSE;
          break;
        case DEC_FINAL_LF:
          if (!decoder_expect (dec, data[i++], '\n', DEC_DONE, error))
            return FALSE;
          break;
        case DEC_DONE:
          return decoder_fail (dec, error, MP_SIGV4_ERROR_MALFORMED,
                               "%" G_GSIZE_FORMAT " bytes of trailing garbage after the final "
                               "chunk", len - i);
        case DEC_FAILED:
        default:
          g_assert_not_reached ();
        }
    }
  return TRUE;
}

gboolean
mp_sigv4_chunk_decoder_finish (MpSigv4ChunkDecoder *dec, GError **error)
{
  g_return_val_if_fail (dec != NULL, FALSE);

  if (dec->state == DEC_DONE)
    return TRUE;
  if (dec->state == DEC_FAILED)
    return malformed (error, "the aws-chunked body was already rejected");
  return decoder_fail (dec, error, MP_SIGV4_ERROR_TRUNCATED,
                       "aws-chunked body ended after %" G_GUINT64_FORMAT " bytes without its "
                       "final chunk", dec->total);
}

struct _MpSigv4ChunkEncoder {
  ChunkChain chain;
};

MpSigv4ChunkEncoder *
mp_sigv4_chunk_encoder_new (const MpSigv4SigningParams *params, const MpSigv4Signed *seed)
{
  MpSigv4ChunkEncoder *enc;
  g_autofree char *date = NULL;

  g_return_val_if_fail (params != NULL && seed != NULL && seed->signature != NULL, NULL);

  enc = g_new0 (MpSigv4ChunkEncoder, 1);
  date = g_strndup (seed->amz_date, 8);
  chunk_chain_init (&enc->chain, params->secret_access_key, date, params->region,
                    params->service, seed->amz_date, seed->scope, seed->signature);
  return enc;
}

static void
encoder_emit (MpSigv4ChunkEncoder *enc, const guint8 *data, gsize len, GByteArray *out)
{
  g_autofree char *hash = mp_sigv4_sha256_hex (data ? data : (const guint8 *) "", len);
  g_autofree char *sig = chunk_chain_sign (&enc->chain, hash);
  g_autofree char *head = g_strdup_printf ("%" G_GSIZE_MODIFIER "x" CHUNK_SIG_PREFIX "%s\r\n",
                                           len, sig);

  g_byte_array_append (out, (const guint8 *) head, strlen (head));
  if (len)
    g_byte_array_append (out, data, len);
  g_byte_array_append (out, (const guint8 *) "\r\n", 2);
  g_free (enc->chain.previous);
  enc->chain.previous = g_steal_pointer (&sig);
}

void
mp_sigv4_chunk_encoder_add (MpSigv4ChunkEncoder *enc,
                            const guint8        *data,
                            gsize                len,
                            GByteArray          *out)
{
  g_return_if_fail (enc != NULL && out != NULL);
  g_return_if_fail (len > 0 && data != NULL);  /* an empty chunk would end the body */

  encoder_emit (enc, data, len, out);
}

void
mp_sigv4_chunk_encoder_finish (MpSigv4ChunkEncoder *enc, GByteArray *out)
{
  g_return_if_fail (enc != NULL && out != NULL);

  encoder_emit (enc, NULL, 0, out);
}

void
mp_sigv4_chunk_encoder_free (MpSigv4ChunkEncoder *enc)
{
  if (enc == NULL)
    return;
  chunk_chain_clear (&enc->chain);
  g_free (enc);
}

static guint64
framed_chunk_length (guint64 size)
{
  guint digits = 1;

  for (guint64 v = size >> 4; v; v >>= 4)
    digits++;
  return digits + strlen (CHUNK_SIG_PREFIX) + 64 + 2 + size + 2;
}

guint64
mp_sigv4_chunked_length (guint64 decoded_length, gsize chunk_size)
{
  guint64 full, rest, total;

  g_return_val_if_fail (chunk_size > 0, 0);

  full = decoded_length / chunk_size;
  rest = decoded_length % chunk_size;
  total = full * framed_chunk_length (chunk_size) + framed_chunk_length (0);
  if (rest)
    total += framed_chunk_length (rest);
  return total;
}
