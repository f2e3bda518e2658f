/* test-store.c - the object store: round trips, ranges, listing against a reference,
 * multipart ETags, crash recovery, hostile keys, concurrency and a full disk */
#include "config.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <string.h>
#include <sys/mount.h>

#include "mp-test-util.h"
#include "srv-store.h"

#define BUCKET "photos"

typedef struct {
  char     *dir;
  SrvStore *store;
} Fixture;

static const char *buckets[] = { BUCKET, "other", NULL };

static SrvStore *
open_store (const char *dir, gint64 max_object_size)
{
  SrvStoreOptions options = { .max_object_size = max_object_size, .min_part_size = 1024 };
  g_autoptr(GError) error = NULL;
  SrvStore *store = srv_store_open (dir, buckets, &options, &error);

  g_assert_no_error (error);
  g_assert_nonnull (store);
  return store;
}

static void
fixture_set_up (Fixture *f, gconstpointer data)
{
  f->dir = mp_test_make_tmpdir ("magpie-store");
  f->store = open_store (f->dir, 0);
}

static void
fixture_tear_down (Fixture *f, gconstpointer data)
{
  g_clear_pointer (&f->store, srv_store_close);
  mp_test_rm_rf (f->dir);
  g_free (f->dir);
}

static GBytes *
random_bytes (gsize len, guint32 seed)
{
  g_autoptr(GRand) rand = g_rand_new_with_seed (seed);
  guint8 *data = g_malloc (len);

  for (gsize i = 0; i < len; i++)
    data[i] = g_rand_int_range (rand, 0, 256);
  return g_bytes_new_take (data, len);
}

static SrvObjectInfo *
put_full (SrvStore *store, const char *bucket, const char *key, GBytes *bytes, gint64 expected,
          const char *content_md5, GHashTable *metadata, GError **error)
{
  g_autoptr(GInputStream) in = g_memory_input_stream_new_from_bytes (bytes);

  return srv_store_put (store, bucket, key, in, expected, "image/jpeg", metadata, content_md5,
                        NULL, error);
}

static SrvObjectInfo *
put (SrvStore *store, const char *key, GBytes *bytes)
{
  g_autoptr(GError) error = NULL;
  SrvObjectInfo *info = put_full (store, BUCKET, key, bytes, g_bytes_get_size (bytes), NULL,
                                  NULL, &error);

  g_assert_no_error (error);
  g_assert_nonnull (info);
  return info;
}

static GBytes *
get_range (SrvStore *store, const char *key, const char *range, SrvByteRange *served,
           gboolean *partial, GError **error)
{
  g_autoptr(SrvObjectInfo) info = NULL;
  g_autoptr(GInputStream) in = srv_store_open_read (store, BUCKET, key, range, &info, served,
                                                    partial, error);
  g_autoptr(GOutputStream) out = NULL;

  if (in == NULL)
    return NULL;
  out = g_memory_output_stream_new_resizable ();
  g_assert_cmpint (g_output_stream_splice (out, in, G_OUTPUT_STREAM_SPLICE_CLOSE_SOURCE |
                                                    G_OUTPUT_STREAM_SPLICE_CLOSE_TARGET,
                                           NULL, NULL), >=, 0);
  return g_memory_output_stream_steal_as_bytes (G_MEMORY_OUTPUT_STREAM (out));
}

static GBytes *
get (SrvStore *store, const char *key)
{
  g_autoptr(GError) error = NULL;
  GBytes *bytes = get_range (store, key, NULL, NULL, NULL, &error);

  g_assert_no_error (error);
  return bytes;
}

static char *
md5_base64 (GBytes *bytes)
{
  g_autoptr(GChecksum) sum = g_checksum_new (G_CHECKSUM_MD5);
  guint8 digest[16];
  gsize len = sizeof digest;

  g_checksum_update (sum, g_bytes_get_data (bytes, NULL), g_bytes_get_size (bytes));
  g_checksum_get_digest (sum, digest, &len);
  return g_base64_encode (digest, len);
}

/* Files in a directory tree, counted. */
static guint
count_files (const char *path)
{
  g_autoptr(GDir) dir = g_dir_open (path, 0, NULL);
  const char *name;
  guint n = 0;

  while (dir && (name = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *child = g_build_filename (path, name, NULL);

      n += g_file_test (child, G_FILE_TEST_IS_DIR) ? count_files (child) : 1;
    }
  return n;
}

static guint
count_data (const char *root, const char *sub)
{
  g_autofree char *path = g_build_filename (root, "data", sub, NULL);

  return count_files (path);
}

static void
test_put_get (Fixture *f, gconstpointer data)
{
  g_autoptr(GBytes) bytes = random_bytes (300 * 1024 + 7, 1);
  g_autoptr(GHashTable) meta = g_hash_table_new (g_str_hash, g_str_equal);
  g_autoptr(SrvObjectInfo) put_info = NULL;
  g_autoptr(SrvObjectInfo) head = NULL;
  g_autoptr(GBytes) back = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) list = NULL;
  g_autofree char *md5 = g_compute_checksum_for_bytes (G_CHECKSUM_MD5, bytes);
  g_autofree char *sha = g_compute_checksum_for_bytes (G_CHECKSUM_SHA256, bytes);
  g_autofree char *etag = g_strdup_printf ("\"%s\"", md5);
  g_autofree char *content_md5 = md5_base64 (bytes);
  SrvByteRange served;
  gboolean partial = TRUE;
  guint status;

  g_hash_table_insert (meta, "Camera", "Pentax K-1");
  put_info = put_full (f->store, BUCKET, "users/a/photo.jpg", bytes, -1, content_md5, meta,
                       &error);
  g_assert_no_error (error);
  g_assert_cmpstr (put_info->etag, ==, etag);
  g_assert_cmpstr (put_info->sha256, ==, sha);

  head = srv_store_head (f->store, BUCKET, "users/a/photo.jpg", &error);
  g_assert_no_error (error);
  g_assert_cmpint (head->size, ==, g_bytes_get_size (bytes));
  g_assert_cmpstr (head->etag, ==, etag);
  g_assert_cmpstr (head->md5, ==, md5);
  g_assert_cmpstr (head->sha256, ==, sha);
  g_assert_cmpstr (head->content_type, ==, "image/jpeg");
  g_assert_cmpstr (g_hash_table_lookup (head->metadata, "camera"), ==, "Pentax K-1");
  g_assert_cmpint (head->last_modified, >, 0);

  back = get_range (f->store, "users/a/photo.jpg", NULL, &served, &partial, &error);
  g_assert_no_error (error);
  g_assert_true (g_bytes_equal (back, bytes));
  g_assert_false (partial);
  g_assert_cmpint (served.first, ==, 0);
  g_assert_cmpint (served.last, ==, g_bytes_get_size (bytes) - 1);

  g_assert_null (srv_store_head (f->store, BUCKET, "users/a/none.jpg", &error));
  g_assert_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_NO_SUCH_KEY);
  g_assert_cmpstr (srv_store_error_s3 (error, &status), ==, "NoSuchKey");
  g_assert_cmpuint (status, ==, 404);
  g_clear_error (&error);
  g_assert_null (srv_store_head (f->store, "nope", "k", &error));
  g_assert_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_NO_SUCH_BUCKET);
  g_clear_error (&error);

  list = srv_store_list_buckets (f->store);
  g_assert_cmpuint (list->len, ==, 2);
  g_assert_cmpstr (((SrvBucketInfo *) list->pdata[0])->name, ==, "other");
  g_assert_cmpstr (((SrvBucketInfo *) list->pdata[1])->name, ==, BUCKET);
  g_assert_cmpint (((SrvBucketInfo *) list->pdata[1])->created, >, 0);
  g_assert_true (srv_store_head_bucket (f->store, "other", NULL));

  /* An empty object is an object too. */
  {
    g_autoptr(GBytes) empty = g_bytes_new (NULL, 0);
    g_autoptr(SrvObjectInfo) info = put (f->store, "empty", empty);
    g_autoptr(GBytes) got = get (f->store, "empty");

    g_assert_cmpstr (info->etag, ==, "\"d41d8cd98f00b204e9800998ecf8427e\"");
    g_assert_cmpuint (g_bytes_get_size (got), ==, 0);
  }
}

static void
test_overwrite (Fixture *f, gconstpointer data)
{
  g_autoptr(GBytes) v1 = random_bytes (5000, 2);
  g_autoptr(GBytes) v2 = random_bytes (7000, 3);
  g_autoptr(SrvObjectInfo) i1 = put (f->store, "k", v1);
  g_autoptr(SrvObjectInfo) i2 = put (f->store, "k", v2);
  g_autoptr(GBytes) back = get (f->store, "k");
  SrvStoreUsage usage;

  g_assert_true (g_bytes_equal (back, v2));
  g_assert_cmpstr (i1->etag, !=, i2->etag);
  srv_store_usage (f->store, &usage);
  g_assert_cmpint (usage.objects, ==, 1);
  g_assert_cmpint (usage.bytes, ==, 7000);
  /* The replaced version's file is gone. */
  g_assert_cmpuint (count_data (f->dir, "objects"), ==, 1);
}

static void
test_bad_body (Fixture *f, gconstpointer data)
{
  g_autoptr(GBytes) v1 = random_bytes (4000, 4);
  g_autoptr(GBytes) v2 = random_bytes (4000, 5);
  g_autoptr(SrvObjectInfo) i1 = put (f->store, "k", v1);
  g_autofree char *wrong_md5 = md5_base64 (v1);
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) back = NULL;
  guint status;

  g_assert_null (put_full (f->store, BUCKET, "k", v2, -1, wrong_md5, NULL, &error));
  g_assert_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_BAD_DIGEST);
  g_assert_cmpstr (srv_store_error_s3 (error, &status), ==, "BadDigest");
  g_assert_cmpuint (status, ==, 400);
  g_clear_error (&error);

  g_assert_null (put_full (f->store, BUCKET, "k", v2, -1, "not base64!", NULL, &error));
  g_assert_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_INVALID_DIGEST);
  g_clear_error (&error);

  g_assert_null (put_full (f->store, BUCKET, "k", v2, 5000, NULL, NULL, &error));
  g_assert_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_INCOMPLETE_BODY);
  g_clear_error (&error);
  g_assert_null (put_full (f->store, BUCKET, "k", v2, 3000, NULL, NULL, &error));
  g_assert_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_INCOMPLETE_BODY);
  g_clear_error (&error);

  /* S3 caps user metadata at 2 KB, names plus values. */
  {
    g_autoptr(GHashTable) meta = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, g_free);

    g_hash_table_insert (meta, "big", g_strnfill (SRV_STORE_METADATA_MAX, 'm'));
    g_assert_null (put_full (f->store, BUCKET, "k", v2, -1, NULL, meta, &error));
    g_assert_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_METADATA_TOO_LARGE);
    g_clear_error (&error);
    g_hash_table_insert (meta, "big", g_strdup ("\xff"));
    g_assert_null (put_full (f->store, BUCKET, "k", v2, -1, NULL, meta, &error));
    g_assert_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_INVALID_ARGUMENT);
    g_clear_error (&error);
  }

  /* A client that goes away mid-body. */
  {
    g_autoptr(GCancellable) cancellable = g_cancellable_new ();
    g_autoptr(GInputStream) in = g_memory_input_stream_new_from_bytes (v2);

    g_cancellable_cancel (cancellable);
    g_assert_null (srv_store_put (f->store, BUCKET, "k", in, -1, NULL, NULL, NULL, cancellable,
                                  &error));
    g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
    g_clear_error (&error);
  }

  back = get (f->store, "k");
  g_assert_true (g_bytes_equal (back, v1));
  g_assert_cmpuint (count_data (f->dir, "tmp"), ==, 0);
  g_assert_cmpuint (count_data (f->dir, "objects"), ==, 1);

  /* Past the maximum object size, declared or not. */
  srv_store_close (f->store);
  f->store = open_store (f->dir, 3000);
  g_assert_null (put_full (f->store, BUCKET, "k", v2, 4000, NULL, NULL, &error));
  g_assert_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_ENTITY_TOO_LARGE);
  g_clear_error (&error);
  g_assert_null (put_full (f->store, BUCKET, "k", v2, -1, NULL, NULL, &error));
  g_assert_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_ENTITY_TOO_LARGE);
  g_clear_error (&error);
  g_clear_pointer (&back, g_bytes_unref);
  back = get (f->store, "k");
  g_assert_true (g_bytes_equal (back, v1));
  g_assert_cmpuint (count_data (f->dir, "tmp"), ==, 0);
}

static void
test_range_parse (void)
{
  static const struct {
    const char *value;
    gint64 size;
    int error;          /* -1: none */
    gint64 first, last;
  } cases[] = {
    { "bytes=0-0", 10, -1, 0, 0 },
    { "bytes=0-9", 10, -1, 0, 9 },
    { "bytes=0-99", 10, -1, 0, 9 },
    { "bytes=3-5", 10, -1, 3, 5 },
    { "bytes=9-", 10, -1, 9, 9 },
    { "bytes=4-", 10, -1, 4, 9 },
    { "bytes=-3", 10, -1, 7, 9 },
    { "bytes=-10", 10, -1, 0, 9 },
    { "bytes=-50", 10, -1, 0, 9 },
    { "BYTES=1-2", 10, -1, 1, 2 },
    { "bytes=10-", 10, SRV_STORE_ERROR_INVALID_RANGE, 0, 0 },
    { "bytes=10-20", 10, SRV_STORE_ERROR_INVALID_RANGE, 0, 0 },
    { "bytes=-0", 10, SRV_STORE_ERROR_INVALID_RANGE, 0, 0 },
    { "bytes=0-0", 0, SRV_STORE_ERROR_INVALID_RANGE, 0, 0 },
    { "bytes=-5", 0, SRV_STORE_ERROR_INVALID_RANGE, 0, 0 },
    { "bytes=5-3", 10, SRV_STORE_ERROR_INVALID_ARGUMENT, 0, 0 },
    { "bytes=0-1,3-4", 10, SRV_STORE_ERROR_INVALID_ARGUMENT, 0, 0 },
    { "bytes=", 10, SRV_STORE_ERROR_INVALID_ARGUMENT, 0, 0 },
    { "bytes=-", 10, SRV_STORE_ERROR_INVALID_ARGUMENT, 0, 0 },
    { "bytes=a-b", 10, SRV_STORE_ERROR_INVALID_ARGUMENT, 0, 0 },
    { "items=0-1", 10, SRV_STORE_ERROR_INVALID_ARGUMENT, 0, 0 },
    { "bytes=99999999999999999999-", 10, SRV_STORE_ERROR_INVALID_ARGUMENT, 0, 0 },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr(GError) error = NULL;
      SrvByteRange r = { -1, -1 };
      gboolean ok = srv_store_parse_range (cases[i].value, cases[i].size, &r, &error);

      g_test_message ("%s over %" G_GINT64_FORMAT, cases[i].value, cases[i].size);
      if (cases[i].error < 0)
        {
          g_assert_no_error (error);
          g_assert_true (ok);
          g_assert_cmpint (r.first, ==, cases[i].first);
          g_assert_cmpint (r.last, ==, cases[i].last);
        }
      else
        {
          g_assert_false (ok);
          g_assert_error (error, SRV_STORE_ERROR, cases[i].error);
        }
    }
}

static void
test_range_read (Fixture *f, gconstpointer data)
{
  g_autoptr(GBytes) bytes = random_bytes (1000, 6);
  g_autoptr(SrvObjectInfo) info = put (f->store, "r", bytes);
  static const struct {
    const char *range;
    gint64 first, last;
    gboolean partial;
  } cases[] = {
    { "bytes=0-0", 0, 0, TRUE },          /* first byte */
    { "bytes=999-999", 999, 999, TRUE },  /* last byte */
    { "bytes=100-199", 100, 199, TRUE },  /* middle */
    { "bytes=-100", 900, 999, TRUE },     /* suffix */
    { "bytes=500-", 500, 999, TRUE },     /* open-ended */
    { "bytes=900-5000", 900, 999, TRUE }, /* clamped */
    { "bytes=5-1", 0, 999, FALSE },       /* malformed: ignored, as S3 does */
    { "bytes=0-1,5-6", 0, 999, FALSE },   /* multi-range: ignored */
  };
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) none = NULL;
  guint status;

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      SrvByteRange served;
      gboolean partial;
      g_autoptr(GBytes) got = get_range (f->store, "r", cases[i].range, &served, &partial,
                                         &error);
      g_autoptr(GBytes) want = g_bytes_new_from_bytes (bytes, cases[i].first,
                                                       cases[i].last - cases[i].first + 1);

      g_assert_no_error (error);
      g_assert_true (g_bytes_equal (got, want));
      g_assert_cmpint (served.first, ==, cases[i].first);
      g_assert_cmpint (served.last, ==, cases[i].last);
      g_assert_cmpint (partial, ==, cases[i].partial);
    }

  none = get_range (f->store, "r", "bytes=1000-", NULL, NULL, &error);
  g_assert_null (none);
  g_assert_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_INVALID_RANGE);
  g_assert_cmpstr (srv_store_error_s3 (error, &status), ==, "InvalidRange");
  g_assert_cmpuint (status, ==, 416);
}

static void
test_delete (Fixture *f, gconstpointer data)
{
  g_autoptr(GBytes) bytes = random_bytes (100, 7);
  g_autoptr(SrvObjectInfo) a = put (f->store, "a", bytes);
  g_autoptr(SrvObjectInfo) b = put (f->store, "b", bytes);
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) results = NULL;
  const char *keys[] = { "b", "never-there", "\xff\xfe", NULL };
  SrvStoreUsage usage;

  g_assert_true (srv_store_delete (f->store, BUCKET, "a", &error));
  g_assert_no_error (error);
  g_assert_null (srv_store_head (f->store, BUCKET, "a", &error));
  g_assert_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_NO_SUCH_KEY);
  g_clear_error (&error);
  /* Deleting what is not there succeeds, as in S3. */
  g_assert_true (srv_store_delete (f->store, BUCKET, "a", &error));
  g_assert_no_error (error);

  results = srv_store_delete_many (f->store, BUCKET, keys, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (results->len, ==, 3);
  g_assert_no_error (((SrvDeleteResult *) results->pdata[0])->error);
  g_assert_no_error (((SrvDeleteResult *) results->pdata[1])->error);
  g_assert_error (((SrvDeleteResult *) results->pdata[2])->error, SRV_STORE_ERROR,
                  SRV_STORE_ERROR_INVALID_ARGUMENT);

  srv_store_usage (f->store, &usage);
  g_assert_cmpint (usage.objects, ==, 0);
  g_assert_cmpint (usage.bytes, ==, 0);
  g_assert_cmpuint (count_data (f->dir, "objects"), ==, 0);
}

/* ---- listing against a brute-force ListObjectsV2 ----------------------------------------- */

static gint
strcmp_ptr (gconstpointer a, gconstpointer b)
{
  return strcmp (*(char * const *) a, *(char * const *) b);
}

/* Every entry of the full listing, in order: "K<key>" or "P<common prefix>". */
static GPtrArray *
reference_list (GPtrArray *sorted, const char *prefix, const char *delimiter,
                const char *start_after)
{
  GPtrArray *out = g_ptr_array_new_with_free_func (g_free);
  gsize plen = prefix ? strlen (prefix) : 0;

  for (guint i = 0; i < sorted->len; i++)
    {
      const char *key = sorted->pdata[i];
      const char *d;

      if (prefix && !g_str_has_prefix (key, prefix))
        continue;
      if (start_after && strcmp (key, start_after) <= 0)
        continue;
      d = delimiter ? strstr (key + plen, delimiter) : NULL;
      if (d != NULL)
        {
          g_autofree char *cp = g_strndup (key, d - key + strlen (delimiter));
          char *entry = g_strconcat ("P", cp, NULL);

          if (out->len > 0 && strcmp (out->pdata[out->len - 1], entry) == 0)
            g_free (entry);
          else
            g_ptr_array_add (out, entry);
        }
      else
        g_ptr_array_add (out, g_strconcat ("K", key, NULL));
    }
  return out;
}

/* A page's contents and common prefixes merged back into listing order. */
static GPtrArray *
page_entries (SrvListResult *res)
{
  GPtrArray *out = g_ptr_array_new_with_free_func (g_free);
  guint k = 0, p = 0;

  while (k < res->contents->len || p < res->common_prefixes->len)
    {
      const char *key = k < res->contents->len
                          ? ((SrvObjectInfo *) res->contents->pdata[k])->key : NULL;
      const char *cp = p < res->common_prefixes->len ? res->common_prefixes->pdata[p] : NULL;

      if (cp == NULL || (key != NULL && strcmp (key, cp) < 0))
        {
          g_ptr_array_add (out, g_strconcat ("K", key, NULL));
          k++;
        }
      else
        {
          g_ptr_array_add (out, g_strconcat ("P", cp, NULL));
          p++;
        }
    }
  return out;
}

static void
test_list (Fixture *f, gconstpointer data)
{
  static const char *pieces[] = { "a", "b", "/", "/", "é", "日本", "z", "~", "0", "a/" };
  static const char *prefixes[] = { NULL, "a", "a/", "b/é", "日本", "zz-none", "/" };
  static const char *delimiters[] = { NULL, "/", "é", "a/" };
  static const int max_keys[] = { 1, 3, 1000 };
  static const char *start_afters[] = { NULL, "a/", "日" };
  g_autoptr(GRand) rand = g_rand_new_with_seed (42);
  g_autoptr(GPtrArray) keys = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(GHashTable) seen = g_hash_table_new (g_str_hash, g_str_equal);
  g_autoptr(GBytes) one = g_bytes_new_static ("x", 1);
  guint combos = 0;

  while (keys->len < 250)
    {
      GString *key = g_string_new (NULL);
      int n = g_rand_int_range (rand, 1, 7);

      for (int i = 0; i < n; i++)
        g_string_append (key, pieces[g_rand_int_range (rand, 0, G_N_ELEMENTS (pieces))]);
      if (g_hash_table_contains (seen, key->str))
        {
          g_string_free (key, TRUE);
          continue;
        }
      g_hash_table_add (seen, key->str);
      g_ptr_array_add (keys, g_string_free (key, FALSE));
    }
  for (guint i = 0; i < keys->len; i++)
    {
      g_autoptr(GInputStream) in = g_memory_input_stream_new_from_bytes (one);
      g_autoptr(GError) error = NULL;
      g_autoptr(SrvObjectInfo) info = srv_store_put (f->store, BUCKET, keys->pdata[i], in, 1,
                                                     NULL, NULL, NULL, NULL, &error);

      g_assert_no_error (error);
    }
  /* A key in another bucket must never show up. */
  {
    g_autoptr(GInputStream) in = g_memory_input_stream_new_from_bytes (one);
    g_autoptr(SrvObjectInfo) info = srv_store_put (f->store, "other", "a", in, 1, NULL, NULL,
                                                   NULL, NULL, NULL);

    g_assert_nonnull (info);
  }
  g_ptr_array_sort (keys, strcmp_ptr);

  for (gsize pi = 0; pi < G_N_ELEMENTS (prefixes); pi++)
    for (gsize di = 0; di < G_N_ELEMENTS (delimiters); di++)
      for (gsize mi = 0; mi < G_N_ELEMENTS (max_keys); mi++)
        for (gsize si = 0; si < G_N_ELEMENTS (start_afters); si++)
          {
            g_autoptr(GPtrArray) want = reference_list (keys, prefixes[pi], delimiters[di],
                                                        start_afters[si]);
            g_autofree char *token = NULL;
            guint at = 0;
            int pages = 0;

            combos++;
            do
              {
                g_autoptr(GError) error = NULL;
                g_autoptr(SrvListResult) res =
                  srv_store_list_v2 (f->store, BUCKET, prefixes[pi], delimiters[di],
                                     max_keys[mi], start_afters[si], token, &error);
                g_autoptr(GPtrArray) got = NULL;

                g_assert_no_error (error);
                got = page_entries (res);
                g_assert_cmpuint (got->len, <=, max_keys[mi]);
                for (guint i = 0; i < got->len; i++)
                  {
                    if (at + i >= want->len || strcmp (got->pdata[i], want->pdata[at + i]) != 0)
                      g_error ("prefix=%s delimiter=%s max-keys=%d start-after=%s page %d: "
                               "entry %u is %s, want %s", prefixes[pi], delimiters[di],
                               max_keys[mi], start_afters[si], pages, at + i,
                               (char *) got->pdata[i],
                               at + i < want->len ? (char *) want->pdata[at + i] : "(end)");
                  }
                at += got->len;
                g_assert_cmpint (res->is_truncated, ==, at < want->len);
                g_assert_cmpint (res->next_continuation_token != NULL, ==, res->is_truncated);
                g_free (token);
                token = g_strdup (res->next_continuation_token);
                pages++;
              }
            while (token != NULL);
            g_assert_cmpuint (at, ==, want->len);
          }
  g_test_message ("%u listings checked over %u keys", combos, keys->len);

  /* max-keys 0: an empty, untruncated page. */
  {
    g_autoptr(SrvListResult) res = srv_store_list_v2 (f->store, BUCKET, NULL, NULL, 0, NULL,
                                                      NULL, NULL);

    g_assert_cmpuint (res->contents->len + res->common_prefixes->len, ==, 0);
    g_assert_false (res->is_truncated);
  }
  /* -1 and anything above 1000 mean 1000. */
  {
    g_autoptr(SrvListResult) res = srv_store_list_v2 (f->store, BUCKET, NULL, NULL, 5000,
                                                      NULL, NULL, NULL);

    g_assert_cmpuint (res->contents->len, ==, keys->len);
    g_assert_false (res->is_truncated);
  }
}

static void
test_list_bad_token (Fixture *f, gconstpointer data)
{
  static const char *tokens[] = {
    "", "!!!!", "not a token", "Zm9v" /* "foo": no kind byte */, "Sw==" /* "K" alone */,
    "S/8=" /* "K\xff": not UTF-8 */, "Sw=", "SwAA" /* "K\0\0" */,
  };

  for (gsize i = 0; i < G_N_ELEMENTS (tokens); i++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(SrvListResult) res = srv_store_list_v2 (f->store, BUCKET, NULL, NULL, -1, NULL,
                                                        tokens[i], &error);

      g_test_message ("token '%s'", tokens[i]);
      g_assert_null (res);
      g_assert_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_INVALID_ARGUMENT);
    }
}

static void
test_copy (Fixture *f, gconstpointer data)
{
  g_autoptr(GBytes) bytes = random_bytes (3000, 8);
  g_autoptr(GHashTable) meta = g_hash_table_new (g_str_hash, g_str_equal);
  g_autoptr(GHashTable) meta2 = g_hash_table_new (g_str_hash, g_str_equal);
  g_autoptr(SrvObjectInfo) src = NULL;
  g_autoptr(SrvObjectInfo) copy = NULL;
  g_autoptr(SrvObjectInfo) replaced = NULL;
  g_autoptr(SrvObjectInfo) head = NULL;
  g_autoptr(GBytes) back = NULL;
  g_autoptr(GError) error = NULL;

  g_hash_table_insert (meta, "origin", "camera");
  src = put_full (f->store, BUCKET, "src", bytes, -1, NULL, meta, &error);
  g_assert_no_error (error);

  copy = srv_store_copy (f->store, BUCKET, "src", "other", "dst", SRV_METADATA_COPY,
                         "text/plain", NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (copy->etag, ==, src->etag);
  g_assert_cmpstr (copy->content_type, ==, "image/jpeg");
  g_assert_cmpstr (g_hash_table_lookup (copy->metadata, "origin"), ==, "camera");

  g_hash_table_insert (meta2, "origin", "copy");
  replaced = srv_store_copy (f->store, BUCKET, "src", BUCKET, "src", SRV_METADATA_REPLACE,
                             "image/png", meta2, NULL, &error);
  g_assert_no_error (error);
  head = srv_store_head (f->store, BUCKET, "src", &error);
  g_assert_cmpstr (head->content_type, ==, "image/png");
  g_assert_cmpstr (g_hash_table_lookup (head->metadata, "origin"), ==, "copy");
  back = get (f->store, "src");
  g_assert_true (g_bytes_equal (back, bytes));

  g_assert_null (srv_store_copy (f->store, BUCKET, "src", BUCKET, "src", SRV_METADATA_COPY,
                                 NULL, NULL, NULL, &error));
  g_assert_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_INVALID_REQUEST);
  g_clear_error (&error);
  g_assert_null (srv_store_copy (f->store, BUCKET, "missing", BUCKET, "x", SRV_METADATA_COPY,
                                 NULL, NULL, NULL, &error));
  g_assert_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_NO_SUCH_KEY);
}

/* ---- multipart -------------------------------------------------------------------------- */

static SrvPartInfo *
upload_part (SrvStore *store, const char *key, const char *upload, guint number, GBytes *bytes,
             GError **error)
{
  g_autoptr(GInputStream) in = g_memory_input_stream_new_from_bytes (bytes);

  return srv_store_upload_part (store, BUCKET, key, upload, number, in,
                                g_bytes_get_size (bytes), NULL, NULL, error);
}

/* S3's multipart ETag, computed here independently of the store. */
static char *
expected_multipart_etag (GBytes **parts, guint n)
{
  g_autoptr(GChecksum) outer = g_checksum_new (G_CHECKSUM_MD5);

  for (guint i = 0; i < n; i++)
    {
      g_autoptr(GChecksum) inner = g_checksum_new (G_CHECKSUM_MD5);
      guint8 digest[16];
      gsize len = sizeof digest;

      g_checksum_update (inner, g_bytes_get_data (parts[i], NULL), g_bytes_get_size (parts[i]));
      g_checksum_get_digest (inner, digest, &len);
      g_checksum_update (outer, digest, len);
    }
  return g_strdup_printf ("\"%s-%u\"", g_checksum_get_string (outer), n);
}

static void
test_multipart (Fixture *f, gconstpointer data)
{
  GBytes *parts[3] = { random_bytes (1500, 10), random_bytes (2048, 11), random_bytes (300, 12) };
  g_autoptr(GHashTable) meta = g_hash_table_new (g_str_hash, g_str_equal);
  g_autoptr(GError) error = NULL;
  g_autofree char *upload = NULL;
  g_autofree char *want_etag = expected_multipart_etag (parts, 3);
  char *etags[3] = { NULL, };
  g_autoptr(SrvObjectInfo) info = NULL;
  g_autoptr(SrvObjectInfo) head = NULL;
  g_autoptr(SrvPartList) plist = NULL;
  g_autoptr(SrvUploadList) ulist = NULL;
  g_autoptr(GBytes) back = NULL;
  g_autoptr(GByteArray) whole = g_byte_array_new ();
  g_autofree char *sha = NULL;
  SrvCompletedPart done[3];
  SrvStoreUsage usage;

  g_hash_table_insert (meta, "album", "holiday");
  upload = srv_store_create_upload (f->store, BUCKET, "big.jpg", "image/jpeg", meta, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (strlen (upload), ==, 32);

  /* Part 2 first with the wrong bytes, then replaced. */
  {
    g_autoptr(SrvPartInfo) p = upload_part (f->store, "big.jpg", upload, 2, parts[0], &error);

    g_assert_no_error (error);
  }
  for (guint i = 0; i < 3; i++)
    {
      g_autoptr(SrvPartInfo) p = upload_part (f->store, "big.jpg", upload, i + 1, parts[i],
                                              &error);
      g_autofree char *md5 = g_compute_checksum_for_bytes (G_CHECKSUM_MD5, parts[i]);
      g_autofree char *quoted = g_strdup_printf ("\"%s\"", md5);

      g_assert_no_error (error);
      g_assert_cmpstr (p->etag, ==, quoted);
      etags[i] = g_strdup (p->etag);
      g_byte_array_append (whole, g_bytes_get_data (parts[i], NULL), g_bytes_get_size (parts[i]));
    }
  g_assert_cmpuint (count_data (f->dir, "multipart"), ==, 3);

  plist = srv_store_list_parts (f->store, BUCKET, "big.jpg", upload, 0, 2, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (plist->parts->len, ==, 2);
  g_assert_true (plist->is_truncated);
  g_assert_cmpuint (plist->next_part_number_marker, ==, 2);
  g_clear_pointer (&plist, srv_part_list_free);
  plist = srv_store_list_parts (f->store, BUCKET, "big.jpg", upload, 2, 2, &error);
  g_assert_cmpuint (plist->parts->len, ==, 1);
  g_assert_false (plist->is_truncated);
  g_assert_cmpuint (((SrvPartInfo *) plist->parts->pdata[0])->size, ==, 300);

  ulist = srv_store_list_uploads (f->store, BUCKET, "big", NULL, NULL, -1, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (ulist->uploads->len, ==, 1);
  g_assert_cmpstr (((SrvUploadInfo *) ulist->uploads->pdata[0])->upload_id, ==, upload);
  g_clear_pointer (&ulist, srv_upload_list_free);
  ulist = srv_store_list_uploads (f->store, BUCKET, "small", NULL, NULL, -1, &error);
  g_assert_cmpuint (ulist->uploads->len, ==, 0);
  srv_store_usage (f->store, &usage);
  g_assert_cmpint (usage.uploads, ==, 1);

  for (guint i = 0; i < 3; i++)
    done[i] = (SrvCompletedPart) { i + 1, etags[i] };
  /* Etags are accepted without their quotes too. */
  {
    g_autofree char *bare = g_strndup (etags[1] + 1, 32);

    done[1].etag = bare;
    info = srv_store_complete_upload (f->store, BUCKET, "big.jpg", upload, done, 3, NULL,
                                      &error);
  }
  g_assert_no_error (error);
  g_assert_cmpstr (info->etag, ==, want_etag);
  sha = g_compute_checksum_for_data (G_CHECKSUM_SHA256, whole->data, whole->len);
  g_assert_cmpstr (info->sha256, ==, sha);

  head = srv_store_head (f->store, BUCKET, "big.jpg", &error);
  g_assert_no_error (error);
  g_assert_cmpstr (head->etag, ==, want_etag);
  g_assert_cmpint (head->size, ==, whole->len);
  g_assert_cmpstr (head->content_type, ==, "image/jpeg");
  g_assert_cmpstr (g_hash_table_lookup (head->metadata, "album"), ==, "holiday");
  back = get (f->store, "big.jpg");
  g_assert_cmpmem (g_bytes_get_data (back, NULL), g_bytes_get_size (back), whole->data,
                   whole->len);

  /* The upload and its parts are gone. */
  g_assert_cmpuint (count_data (f->dir, "multipart"), ==, 0);
  g_assert_null (srv_store_list_parts (f->store, BUCKET, "big.jpg", upload, 0, -1, &error));
  g_assert_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_NO_SUCH_UPLOAD);
  g_clear_error (&error);
  srv_store_usage (f->store, &usage);
  g_assert_cmpint (usage.uploads, ==, 0);
  g_assert_cmpint (usage.objects, ==, 1);

  for (guint i = 0; i < 3; i++)
    {
      g_bytes_unref (parts[i]);
      g_free (etags[i]);
    }
}

static void
test_multipart_errors (Fixture *f, gconstpointer data)
{
  g_autoptr(GBytes) big = random_bytes (2000, 20);
  g_autoptr(GBytes) small = random_bytes (100, 21);
  g_autoptr(GError) error = NULL;
  g_autofree char *upload = srv_store_create_upload (f->store, BUCKET, "m", NULL, NULL, &error);
  g_autoptr(SrvPartInfo) p1 = upload_part (f->store, "m", upload, 1, small, &error);
  g_autoptr(SrvPartInfo) p2 = upload_part (f->store, "m", upload, 2, big, &error);
  SrvCompletedPart order[] = { { 2, p2->etag }, { 1, p1->etag } };
  SrvCompletedPart dup[] = { { 1, p1->etag }, { 1, p1->etag } };
  SrvCompletedPart wrong[] = { { 1, p2->etag }, { 2, p2->etag } };
  SrvCompletedPart missing[] = { { 2, p2->etag }, { 3, p2->etag } };
  SrvCompletedPart too_small[] = { { 1, p1->etag }, { 2, p2->etag } };
  SrvCompletedPart last_small[] = { { 2, p2->etag } };
  guint status;

  g_assert_no_error (error);
  g_assert_null (srv_store_complete_upload (f->store, BUCKET, "m", upload, order, 2, NULL,
                                            &error));
  g_assert_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_INVALID_PART_ORDER);
  g_clear_error (&error);
  g_assert_null (srv_store_complete_upload (f->store, BUCKET, "m", upload, dup, 2, NULL,
                                            &error));
  g_assert_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_INVALID_PART_ORDER);
  g_clear_error (&error);
  g_assert_null (srv_store_complete_upload (f->store, BUCKET, "m", upload, wrong, 2, NULL,
                                            &error));
  g_assert_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_INVALID_PART);
  g_assert_cmpstr (srv_store_error_s3 (error, &status), ==, "InvalidPart");
  g_clear_error (&error);
  g_assert_null (srv_store_complete_upload (f->store, BUCKET, "m", upload, missing, 2, NULL,
                                            &error));
  g_assert_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_INVALID_PART);
  g_clear_error (&error);
  g_assert_null (srv_store_complete_upload (f->store, BUCKET, "m", upload, too_small, 2, NULL,
                                            &error));
  g_assert_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_ENTITY_TOO_SMALL);
  g_clear_error (&error);
  /* The wrong key for the upload, a bad part number, an unknown upload. */
  g_assert_null (srv_store_complete_upload (f->store, BUCKET, "other-key", upload, last_small,
                                            1, NULL, &error));
  g_assert_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_NO_SUCH_UPLOAD);
  g_clear_error (&error);
  g_assert_null (upload_part (f->store, "m", upload, 10001, small, &error));
  g_assert_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  g_assert_null (upload_part (f->store, "m", "../../../../etc", 1, small, &error));
  g_assert_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_NO_SUCH_UPLOAD);
  g_clear_error (&error);
  g_assert_null (upload_part (f->store, "m", "0123456789abcdef0123456789abcdef", 1, small,
                              &error));
  g_assert_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_NO_SUCH_UPLOAD);
  g_clear_error (&error);

  /* Abort: files and rows go; the upload is unknown afterwards. */
  g_assert_true (srv_store_abort_upload (f->store, BUCKET, "m", upload, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (count_data (f->dir, "multipart"), ==, 0);
  g_assert_false (srv_store_abort_upload (f->store, BUCKET, "m", upload, &error));
  g_assert_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_NO_SUCH_UPLOAD);
  g_clear_error (&error);
  g_assert_null (upload_part (f->store, "m", upload, 1, small, &error));
  g_assert_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_NO_SUCH_UPLOAD);
  g_clear_error (&error);
  g_assert_null (srv_store_head (f->store, BUCKET, "m", &error));
  g_assert_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_NO_SUCH_KEY);
}

static void
test_list_uploads (Fixture *f, gconstpointer data)
{
  const char *keys[] = { "a/1", "a/2", "a/2", "b/1" };
  g_autoptr(GPtrArray) ids = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(SrvUploadList) page1 = NULL;
  g_autoptr(SrvUploadList) page2 = NULL;
  g_autoptr(SrvUploadList) only_b = NULL;

  for (gsize i = 0; i < G_N_ELEMENTS (keys); i++)
    g_ptr_array_add (ids, srv_store_create_upload (f->store, BUCKET, keys[i], NULL, NULL, NULL));

  page1 = srv_store_list_uploads (f->store, BUCKET, "a/", NULL, NULL, 2, NULL);
  g_assert_cmpuint (page1->uploads->len, ==, 2);
  g_assert_true (page1->is_truncated);
  page2 = srv_store_list_uploads (f->store, BUCKET, "a/", page1->next_key_marker,
                                  page1->next_upload_id_marker, 2, NULL);
  g_assert_cmpuint (page2->uploads->len, ==, 1);
  g_assert_false (page2->is_truncated);
  g_assert_cmpstr (((SrvUploadInfo *) page1->uploads->pdata[0])->key, ==, "a/1");
  g_assert_cmpstr (((SrvUploadInfo *) page1->uploads->pdata[1])->key, ==, "a/2");
  g_assert_cmpstr (((SrvUploadInfo *) page2->uploads->pdata[0])->key, ==, "a/2");
  g_assert_cmpstr (((SrvUploadInfo *) page1->uploads->pdata[1])->upload_id, <,
                   ((SrvUploadInfo *) page2->uploads->pdata[0])->upload_id);
  only_b = srv_store_list_uploads (f->store, BUCKET, NULL, "a/2", NULL, -1, NULL);
  g_assert_cmpuint (only_b->uploads->len, ==, 1);
  g_assert_cmpstr (((SrvUploadInfo *) only_b->uploads->pdata[0])->key, ==, "b/1");
}

/* ---- crash safety, hostile keys, threads, a full disk ----------------------------------- */

static void
write_file (const char *path, const char *text)
{
  g_autoptr(GError) error = NULL;

  g_file_set_contents (path, text, -1, &error);
  g_assert_no_error (error);
}

static void
test_crash_recovery (Fixture *f, gconstpointer data)
{
  g_autoptr(GBytes) bytes = random_bytes (2048, 30);
  g_autoptr(SrvObjectInfo) info = put (f->store, "kept", bytes);
  g_autoptr(GError) error = NULL;
  g_autofree char *upload = srv_store_create_upload (f->store, BUCKET, "up", NULL, NULL, &error);
  g_autoptr(SrvPartInfo) part = upload_part (f->store, "up", upload, 1, bytes, &error);
  g_autofree char *tmp = g_build_filename (f->dir, "data", "tmp",
                                           "00112233445566778899aabbccddeeff", NULL);
  g_autofree char *orphan = g_build_filename (f->dir, "data", "objects", "ab",
                                              "ab112233445566778899aabbccddeeff", NULL);
  g_autofree char *orphan_dir = g_build_filename (f->dir, "data", "multipart",
                                                  "cd112233445566778899aabbccddeeff", NULL);
  g_autofree char *orphan_part = g_build_filename (orphan_dir, "ef112233445566778899aabbccddeeff",
                                                   NULL);
  g_autofree char *stray_part = g_build_filename (f->dir, "data", "multipart", upload,
                                                  "9f112233445566778899aabbccddeeff", NULL);
  g_autoptr(GBytes) back = NULL;
  g_autoptr(SrvPartList) parts = NULL;
  SrvStoreFsckReport report;

  g_assert_no_error (error);
  /* What a crash mid-write leaves: a temp file, a published file whose row never committed,
   * an upload directory whose row never committed, a part without its row. */
  srv_store_close (g_steal_pointer (&f->store));
  write_file (tmp, "half a photo");
  write_file (orphan, "a photo nobody knows");
  g_assert_cmpint (g_mkdir (orphan_dir, 0700), ==, 0);
  write_file (orphan_part, "part");
  write_file (stray_part, "part");

  f->store = open_store (f->dir, 0);
  g_assert_false (g_file_test (tmp, G_FILE_TEST_EXISTS));
  g_assert_false (g_file_test (orphan, G_FILE_TEST_EXISTS));
  g_assert_false (g_file_test (orphan_dir, G_FILE_TEST_EXISTS));
  g_assert_false (g_file_test (stray_part, G_FILE_TEST_EXISTS));

  /* The index and what it refers to are intact. */
  back = get (f->store, "kept");
  g_assert_true (g_bytes_equal (back, bytes));
  parts = srv_store_list_parts (f->store, BUCKET, "up", upload, 0, -1, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (parts->parts->len, ==, 1);
  g_assert_cmpuint (count_data (f->dir, "multipart"), ==, 1);

  g_assert_true (srv_store_fsck (f->store, &report, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (report.tmp_removed + report.orphans_removed + report.missing, ==, 0);

  /* fsck at run time, explicitly. */
  write_file (tmp, "again");
  g_assert_true (srv_store_fsck (f->store, &report, &error));
  g_assert_cmpuint (report.tmp_removed, ==, 1);
}

/* An object file lost behind the store's back is reported, never hidden by dropping its row.
 * In a subprocess: the report is a warning, which G_DEBUG=fatal-warnings would make fatal. */
static void
test_missing_file (void)
{
  g_autofree char *dir = NULL;
  SrvStoreFsckReport report;

  if (g_test_subprocess ())
    {
      g_autoptr(GBytes) bytes = random_bytes (10, 32);
      g_autoptr(GError) error = NULL;
      g_autoptr(SrvObjectInfo) head = NULL;
      g_autofree char *objects = NULL;
      SrvStore *store;

      g_log_set_always_fatal (G_LOG_FATAL_MASK);
      dir = mp_test_make_tmpdir ("magpie-store-missing");
      store = open_store (dir, 0);
      srv_object_info_free (put (store, "lost", bytes));
      objects = g_build_filename (dir, "data", "objects", NULL);
      mp_test_rm_rf (objects);
      g_assert_true (srv_store_fsck (store, &report, &error));
      g_assert_cmpuint (report.missing, ==, 1);
      head = srv_store_head (store, BUCKET, "lost", &error);
      g_assert_nonnull (head);
      g_assert_null (get_range (store, "lost", NULL, NULL, NULL, &error));
      g_assert_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_INTERNAL);
      srv_store_close (store);
      mp_test_rm_rf (dir);
      return;
    }
  g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed ();
  g_test_trap_assert_stderr ("*1 index rows point at missing files*");
}

static void
test_hostile_keys (Fixture *f, gconstpointer data)
{
  static const char *stored[] = {
    "../../etc/passwd", "/absolute", "a/../../b", "..", ".", "a//b", "con", "a\\b",
    "\xe2\x80\xae" "gpj.exe", "key with spaces and ?&#%",
  };
  static const char *rejected[] = { "", "\xff\xfe", "\xc3\x28", "a\xed\xa0\x80" };
  g_autoptr(GBytes) bytes = random_bytes (64, 31);
  g_autoptr(GError) error = NULL;
  g_autofree char *long_key = g_strnfill (SRV_STORE_KEY_MAX, 'k');
  g_autofree char *too_long = g_strnfill (SRV_STORE_KEY_MAX + 1, 'k');
  g_autoptr(GDir) dir = NULL;
  g_autofree char *etc = g_build_filename (f->dir, "..", "..", "etc", "passwd", NULL);
  guint status;

  for (gsize i = 0; i < G_N_ELEMENTS (stored); i++)
    {
      g_autoptr(SrvObjectInfo) info = put (f->store, stored[i], bytes);
      g_autoptr(GBytes) back = get (f->store, stored[i]);

      g_assert_true (g_bytes_equal (back, bytes));
    }
  {
    g_autoptr(SrvObjectInfo) info = put (f->store, long_key, bytes);
  }
  /* Every file in the store is named by an id; nothing escaped the data directory. */
  g_assert_cmpuint (count_data (f->dir, "objects"), ==, G_N_ELEMENTS (stored) + 1);
  dir = g_dir_open (f->dir, 0, NULL);
  {
    const char *name;

    while ((name = g_dir_read_name (dir)) != NULL)
      g_assert_true (g_str_has_prefix (name, "store.db") || strcmp (name, "data") == 0);
  }
  g_assert_false (g_file_test (etc, G_FILE_TEST_EXISTS) &&
                  g_file_test (etc, G_FILE_TEST_IS_DIR));

  for (gsize i = 0; i < G_N_ELEMENTS (rejected); i++)
    {
      g_assert_null (put_full (f->store, BUCKET, rejected[i], bytes, -1, NULL, NULL, &error));
      g_assert_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_INVALID_ARGUMENT);
      g_clear_error (&error);
    }
  g_assert_null (put_full (f->store, BUCKET, too_long, bytes, -1, NULL, NULL, &error));
  g_assert_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_KEY_TOO_LONG);
  g_assert_cmpstr (srv_store_error_s3 (error, &status), ==, "KeyTooLongError");
  g_clear_error (&error);
  /* A NUL inside a key (possible in a URL as %00) is refused. */
  g_assert_false (srv_store_check_key ("a\0b", 3, &error));
  g_assert_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  g_assert_false (srv_store_check_bucket_name ("../x", &error));
  g_assert_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  {
    const char *bad[] = { "../escape", NULL };

    g_assert_null (srv_store_open (f->dir, bad, NULL, &error));
    g_assert_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_INVALID_ARGUMENT);
  }
}

#define N_THREADS 4
#define N_PUTS    20

typedef struct {
  SrvStore *store;
  guint     index;
} Worker;

static gpointer
worker_thread (gpointer data)
{
  Worker *w = data;

  for (guint j = 0; j < N_PUTS; j++)
    {
      g_autofree char *own = g_strdup_printf ("t%u/%u", w->index, j);
      g_autoptr(GBytes) bytes = random_bytes (1000 + j * 37 + w->index, w->index * 100 + j);
      g_autoptr(SrvObjectInfo) a = put (w->store, "shared", bytes);
      g_autoptr(SrvObjectInfo) b = put (w->store, own, bytes);
      g_autoptr(GError) error = NULL;
      g_autoptr(SrvObjectInfo) info = NULL;
      g_autoptr(GInputStream) in = srv_store_open_read (w->store, BUCKET, "shared", NULL,
                                                        &info, NULL, NULL, &error);

      /* Whatever version a reader gets is whole and matches its own index row. */
      g_assert_no_error (error);
      {
        g_autoptr(GOutputStream) out = g_memory_output_stream_new_resizable ();
        g_autoptr(GBytes) got = NULL;
        g_autofree char *sha = NULL;

        g_output_stream_splice (out, in, G_OUTPUT_STREAM_SPLICE_CLOSE_TARGET, NULL, &error);
        g_assert_no_error (error);
        got = g_memory_output_stream_steal_as_bytes (G_MEMORY_OUTPUT_STREAM (out));
        sha = g_compute_checksum_for_bytes (G_CHECKSUM_SHA256, got);
        g_assert_cmpstr (sha, ==, info->sha256);
      }
      if (j % 5 == 0)
        g_assert_true (srv_store_delete (w->store, BUCKET, own, NULL));
    }
  return NULL;
}

static void
test_concurrent (Fixture *f, gconstpointer data)
{
  GThread *threads[N_THREADS];
  Worker workers[N_THREADS];
  g_autoptr(SrvObjectInfo) shared = NULL;
  g_autoptr(GBytes) back = NULL;
  g_autofree char *sha = NULL;
  SrvStoreUsage usage;
  SrvStoreFsckReport report;
  guint expected = 1 + N_THREADS * (N_PUTS - N_PUTS / 5);

  for (guint i = 0; i < N_THREADS; i++)
    {
      workers[i] = (Worker) { f->store, i };
      threads[i] = g_thread_new ("put", worker_thread, &workers[i]);
    }
  for (guint i = 0; i < N_THREADS; i++)
    g_thread_join (threads[i]);

  shared = srv_store_head (f->store, BUCKET, "shared", NULL);
  back = get (f->store, "shared");
  sha = g_compute_checksum_for_bytes (G_CHECKSUM_SHA256, back);
  g_assert_cmpstr (sha, ==, shared->sha256);
  srv_store_usage (f->store, &usage);
  g_assert_cmpint (usage.objects, ==, expected);
  g_assert_cmpuint (count_data (f->dir, "objects"), ==, expected);
  g_assert_cmpuint (count_data (f->dir, "tmp"), ==, 0);
  g_assert_true (srv_store_fsck (f->store, &report, NULL));
  g_assert_cmpuint (report.tmp_removed + report.orphans_removed + report.missing, ==, 0);
}

/* Runs in a subprocess so the parent unmounts and cleans up even when an assertion fails. */
static void
no_space_body (const char *dir)
{
  g_autoptr(GBytes) v1 = random_bytes (800 * 1024, 40);
  g_autoptr(GBytes) v2 = random_bytes (1400 * 1024, 41);
  g_autoptr(GError) error = NULL;
  g_autoptr(SrvObjectInfo) i1 = NULL;
  g_autoptr(GBytes) back = NULL;
  SrvStore *store = open_store (dir, 0);
  guint status;

  i1 = put (store, "k", v1);
  g_assert_null (put_full (store, BUCKET, "k", v2, -1, NULL, NULL, &error));
  g_assert_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_NO_SPACE);
  g_assert_cmpstr (srv_store_error_s3 (error, &status), ==, "InsufficientStorage");
  g_assert_cmpuint (status, ==, 507);
  g_clear_error (&error);

  /* The previous version is whole, nothing half-written is left, and space comes back. */
  back = get (store, "k");
  g_assert_true (g_bytes_equal (back, v1));
  g_assert_cmpuint (count_data (dir, "tmp"), ==, 0);
  g_assert_cmpuint (count_data (dir, "objects"), ==, 1);
  g_assert_true (srv_store_delete (store, BUCKET, "k", NULL));
  {
    g_autoptr(SrvObjectInfo) i2 = put (store, "k", v2);
  }
  srv_store_close (store);
}

static void
test_no_space (void)
{
  g_autofree char *dir = NULL;

  if (g_test_subprocess ())
    {
      no_space_body (g_getenv ("MAGPIE_TEST_FULL_DIR"));
      return;
    }
  dir = mp_test_make_tmpdir ("magpie-store-full");
  /* 2 MiB: room for the index and either version alone, not for both side by side. */
  if (mount ("magpie-test", dir, "tmpfs", 0, "size=2m,mode=0700") < 0)
    {
      g_autofree char *reason = g_strdup_printf ("cannot mount a small tmpfs to fill (%s); "
                                                 "run as root to test a full disk",
                                                 g_strerror (errno));

      mp_test_rm_rf (dir);
      g_test_skip (reason);
      return;
    }
  g_setenv ("MAGPIE_TEST_FULL_DIR", dir, TRUE);
  g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_INHERIT_STDERR);
  g_assert_cmpint (umount (dir), ==, 0);
  mp_test_rm_rf (dir);
  g_test_trap_assert_passed ();
}

int
main (int argc, char *argv[])
{
  g_test_init (&argc, &argv, NULL);

#define ADD(path, fn) g_test_add ("/srv/store/" path, Fixture, NULL, fixture_set_up, fn, \
                                  fixture_tear_down)
  ADD ("put-get", test_put_get);
  ADD ("overwrite", test_overwrite);
  ADD ("bad-body", test_bad_body);
  g_test_add_func ("/srv/store/range-parse", test_range_parse);
  ADD ("range-read", test_range_read);
  ADD ("delete", test_delete);
  ADD ("list", test_list);
  ADD ("list-bad-token", test_list_bad_token);
  ADD ("copy", test_copy);
  ADD ("multipart", test_multipart);
  ADD ("multipart-errors", test_multipart_errors);
  ADD ("list-uploads", test_list_uploads);
  ADD ("crash-recovery", test_crash_recovery);
  g_test_add_func ("/srv/store/missing-file", test_missing_file);
  ADD ("hostile-keys", test_hostile_keys);
  ADD ("concurrent", test_concurrent);
  g_test_add_func ("/srv/store/no-space", test_no_space);
#undef ADD

  return g_test_run ();
}
