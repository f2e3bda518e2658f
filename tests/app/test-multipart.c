/* test-multipart.c - the bookkeeping of multipart uploads: part ranges, what a resumed upload
 * sends again, the store's XML answers, the outbox's durable records and the schema migration */
#include "config.h"

#include <gdk-pixbuf/gdk-pixbuf.h>
#include <sqlite3.h>
#include <string.h>

#include "app-test-util.h"
#include "magpie-client-error.h"
#include "magpie-multipart.h"
#include "magpie-outbox.h"
#include "magpie-range-stream.h"
#include "magpie-s3.h"
#include "mp-sigv4.h"

#define MIB (1024 * 1024)

/* Part arithmetic ---------------------------------------------------------------------------- */

static void
test_ranges (void)
{
  gint64 size = 20 * MIB + 12345;
  gint64 offset = -1, length = -1, covered = 0;
  guint n = magpie_multipart_count_parts (size, MAGPIE_MULTIPART_PART_SIZE);

  g_assert_cmpuint (n, ==, 3);
  for (guint number = 1; number <= n; number++)
    {
      g_assert_true (magpie_multipart_part_range (size, MAGPIE_MULTIPART_PART_SIZE, number,
                                                  &offset, &length));
      g_assert_cmpint (offset, ==, covered);
      g_assert_cmpint (length, ==, number < n ? MAGPIE_MULTIPART_PART_SIZE : 4 * MIB + 12345);
      covered += length;
    }
  g_assert_cmpint (covered, ==, size);
  g_assert_false (magpie_multipart_part_range (size, MAGPIE_MULTIPART_PART_SIZE, 0, NULL, NULL));
  g_assert_false (magpie_multipart_part_range (size, MAGPIE_MULTIPART_PART_SIZE, 4, NULL, NULL));

  /* Exact multiples have no empty last part; an empty file is one (empty) part. */
  g_assert_cmpuint (magpie_multipart_count_parts (24 * MIB, 8 * MIB), ==, 3);
  g_assert_true (magpie_multipart_part_range (24 * MIB, 8 * MIB, 3, &offset, &length));
  g_assert_cmpint (length, ==, 8 * MIB);
  g_assert_cmpuint (magpie_multipart_count_parts (0, 8 * MIB), ==, 1);

  /* Over 10,000 parts of 8 MiB the parts grow, in whole MiB, never under S3's minimum. */
  g_assert_cmpint (magpie_multipart_part_size (30 * MIB), ==, MAGPIE_MULTIPART_PART_SIZE);
  for (gint64 big = 70 * (gint64) 1024 * MIB; big < 5 * (gint64) 1024 * 1024 * MIB;
       big = big * 3 + 7)
    {
      gint64 part_size = magpie_multipart_part_size (big);

      g_assert_cmpint (part_size % MIB, ==, 0);
      g_assert_cmpint (part_size, >=, MAGPIE_MULTIPART_MIN_PART_SIZE);
      g_assert_cmpuint (magpie_multipart_count_parts (big, part_size), <=,
                        MAGPIE_MULTIPART_MAX_PARTS);
    }
}

static void
add_part (GArray     *parts,
          guint       number,
          gint64      size,
          const char *etag)
{
  MagpiePart part = { number, size, g_strdup (etag) };

  g_array_append_val (parts, part);
}

static MagpiePlannedPart *
planned (GArray *plan,
         guint   number)
{
  return &g_array_index (plan, MagpiePlannedPart, number - 1);
}

/* A part counts as done only when recorded here AND listed by the store with the same ETag
 * and the size its number must have; what the store alone lists is to be verified. */
static void
test_plan (void)
{
  gint64 size = 4 * MAGPIE_MULTIPART_PART_SIZE + 100;
  g_autoptr(GArray) recorded = magpie_part_array_new ();
  g_autoptr(GArray) listed = magpie_part_array_new ();
  g_autoptr(GArray) fresh = NULL;
  g_autoptr(GArray) plan = NULL;

  fresh = magpie_multipart_plan (size, MAGPIE_MULTIPART_PART_SIZE, NULL, NULL);
  g_assert_cmpuint (fresh->len, ==, 5);
  for (guint i = 1; i <= fresh->len; i++)
    g_assert_cmpint (planned (fresh, i)->state, ==, MAGPIE_PART_MISSING);
  g_assert_cmpint (planned (fresh, 5)->size, ==, 100);
  g_assert_cmpint (magpie_multipart_done_bytes (fresh), ==, 0);

  /* 1: recorded and listed alike (the store's quotes and case do not matter). */
  add_part (recorded, 1, MAGPIE_MULTIPART_PART_SIZE, "\"0123456789abcdef0123456789abcdef\"");
  add_part (listed, 1, MAGPIE_MULTIPART_PART_SIZE, "0123456789ABCDEF0123456789ABCDEF");
  /* 2: recorded, but the store lost it. */
  add_part (recorded, 2, MAGPIE_MULTIPART_PART_SIZE, "\"22222222222222222222222222222222\"");
  /* 3: listed only (the app stopped before recording it). */
  add_part (listed, 3, MAGPIE_MULTIPART_PART_SIZE, "\"33333333333333333333333333333333\"");
  /* 4: both, but the store has other bytes under the number. */
  add_part (recorded, 4, MAGPIE_MULTIPART_PART_SIZE, "\"44444444444444444444444444444444\"");
  add_part (listed, 4, MAGPIE_MULTIPART_PART_SIZE, "\"ffffffffffffffffffffffffffffffff\"");
  /* 5: listed with a size part 5 cannot have; 6: a number this file does not have. */
  add_part (listed, 5, 99, "\"55555555555555555555555555555555\"");
  add_part (listed, 6, 100, "\"66666666666666666666666666666666\"");

  plan = magpie_multipart_plan (size, MAGPIE_MULTIPART_PART_SIZE, recorded, listed);
  g_assert_cmpuint (plan->len, ==, 5);
  g_assert_cmpint (planned (plan, 1)->state, ==, MAGPIE_PART_DONE);
  g_assert_cmpstr (planned (plan, 1)->etag, ==, "0123456789ABCDEF0123456789ABCDEF");
  g_assert_cmpint (planned (plan, 2)->state, ==, MAGPIE_PART_MISSING);
  g_assert_null (planned (plan, 2)->etag);
  g_assert_cmpint (planned (plan, 3)->state, ==, MAGPIE_PART_UNVERIFIED);
  g_assert_cmpint (planned (plan, 4)->state, ==, MAGPIE_PART_UNVERIFIED);
  g_assert_cmpstr (planned (plan, 4)->etag, ==, "\"ffffffffffffffffffffffffffffffff\"");
  g_assert_cmpint (planned (plan, 5)->state, ==, MAGPIE_PART_MISSING);
  g_assert_cmpint (magpie_multipart_done_bytes (plan), ==, MAGPIE_MULTIPART_PART_SIZE);

  g_assert_true (magpie_multipart_etag_is_md5 ("\"33333333333333333333333333333333\"",
                                               "33333333333333333333333333333333"));
  g_assert_false (magpie_multipart_etag_is_md5 ("\"33333333333333333333333333333333-2\"",
                                                "33333333333333333333333333333333"));
  g_assert_false (magpie_multipart_etag_is_md5 ("\"\"", ""));
  g_assert_false (magpie_multipart_etag_is_md5 (NULL, "33333333333333333333333333333333"));
}

/* The store's XML ------------------------------------------------------------------------------ */

static GBytes *
text (const char *xml)
{
  return g_bytes_new (xml, strlen (xml));
}

static void
test_xml (void)
{
  g_autoptr(GBytes) initiate = text (
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<InitiateMultipartUploadResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
    "<Bucket>magpie</Bucket><Key>users/a/b.png</Key>"
    "<UploadId>VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA</UploadId>"
    "</InitiateMultipartUploadResult>");
  g_autoptr(GBytes) page = text (
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
    "<ListPartsResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
    "<Bucket>magpie</Bucket><Key>k</Key><UploadId>u</UploadId>"
    "<Initiator><ID>someone</ID></Initiator>"
    "<PartNumberMarker>0</PartNumberMarker><NextPartNumberMarker>2</NextPartNumberMarker>"
    "<MaxParts>2</MaxParts><IsTruncated>true</IsTruncated>"
    "<Part><PartNumber>1</PartNumber><LastModified>2024-01-01T00:00:00.000Z</LastModified>"
    "<ETag>&quot;7778aef83f66abc1fa1e8477f296d394&quot;</ETag><Size>8388608</Size></Part>"
    "<Part><PartNumber>2</PartNumber><ETag>\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"</ETag>"
    "<Size>8388608</Size></Part>"
    "</ListPartsResult>");
  g_autoptr(GBytes) last = text (
    "<ListPartsResult><IsTruncated>false</IsTruncated></ListPartsResult>");
  g_autoptr(GBytes) error_doc = text (
    "<?xml version=\"1.0\"?><Error><Code>NoSuchUpload</Code>"
    "<Message>The specified upload does not exist.</Message></Error>");
  const char *bad_lists[] = {
    "not xml at all",
    "<ListPartsResult><Part><PartNumber>1",
    "<Error><Code>AccessDenied</Code></Error>",
    "<ListPartsResult><Part><PartNumber>0</PartNumber><ETag>x</ETag><Size>1</Size></Part>"
    "</ListPartsResult>",
    "<ListPartsResult><Part><PartNumber>10001</PartNumber><ETag>x</ETag><Size>1</Size></Part>"
    "</ListPartsResult>",
    "<ListPartsResult><Part><PartNumber>1</PartNumber><ETag>x</ETag><Size>-1</Size></Part>"
    "</ListPartsResult>",
    "<ListPartsResult><Part><PartNumber>1</PartNumber><Size>1</Size></Part></ListPartsResult>",
    "<ListPartsResult><IsTruncated>true</IsTruncated></ListPartsResult>",
  };
  g_autoptr(GArray) parts = magpie_part_array_new ();
  g_autoptr(GError) error = NULL;
  g_autofree char *upload_id = NULL;
  g_autofree char *code = NULL;
  g_autoptr(GArray) plan = NULL;
  g_autofree char *complete = NULL;
  gboolean truncated = FALSE;
  guint marker = 0;

  upload_id = magpie_s3_parse_upload_id (initiate, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (upload_id, ==, "VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA");
  g_assert_null (magpie_s3_parse_upload_id (error_doc, &error));
  g_assert_error (error, MAGPIE_CLIENT_ERROR, MAGPIE_CLIENT_ERROR_BAD_RESPONSE);
  g_clear_error (&error);

  g_assert_true (magpie_s3_parse_list_parts (page, parts, &truncated, &marker, &error));
  g_assert_no_error (error);
  g_assert_true (truncated);
  g_assert_cmpuint (marker, ==, 2);
  g_assert_cmpuint (parts->len, ==, 2);
  g_assert_cmpuint (g_array_index (parts, MagpiePart, 0).number, ==, 1);
  g_assert_cmpint (g_array_index (parts, MagpiePart, 0).size, ==, 8388608);
  g_assert_cmpstr (g_array_index (parts, MagpiePart, 0).etag, ==,
                   "\"7778aef83f66abc1fa1e8477f296d394\"");
  g_assert_true (magpie_s3_parse_list_parts (last, parts, &truncated, &marker, &error));
  g_assert_false (truncated);
  g_assert_cmpuint (parts->len, ==, 2);

  for (guint i = 0; i < G_N_ELEMENTS (bad_lists); i++)
    {
      g_autoptr(GBytes) bad = text (bad_lists[i]);

      g_assert_false (magpie_s3_parse_list_parts (bad, parts, &truncated, &marker, &error));
      g_assert_error (error, MAGPIE_CLIENT_ERROR, MAGPIE_CLIENT_ERROR_BAD_RESPONSE);
      g_clear_error (&error);
    }

  code = magpie_s3_error_code (error_doc);
  g_assert_cmpstr (code, ==, "NoSuchUpload");
  g_assert_null (magpie_s3_error_code (initiate));
  g_assert_null (magpie_s3_error_code (NULL));
  g_assert_true (magpie_s3_credentials_error ("ExpiredToken"));
  g_assert_true (magpie_s3_credentials_error ("InvalidToken"));
  g_assert_false (magpie_s3_credentials_error ("NoSuchUpload"));
  g_assert_false (magpie_s3_credentials_error (NULL));

  /* Completing lists every part in order, ETags escaped as XML text. */
  plan = magpie_multipart_plan (2 * MAGPIE_MULTIPART_PART_SIZE, MAGPIE_MULTIPART_PART_SIZE,
                                NULL, NULL);
  g_array_index (plan, MagpiePlannedPart, 0).etag = g_strdup ("\"a<b&c\"");
  g_array_index (plan, MagpiePlannedPart, 1).etag = g_strdup ("\"d\"");
  complete = magpie_s3_complete_xml (plan);
  g_assert_cmpstr (complete, ==,
                   "<CompleteMultipartUpload>"
                   "<Part><PartNumber>1</PartNumber><ETag>&quot;a&lt;b&amp;c&quot;</ETag></Part>"
                   "<Part><PartNumber>2</PartNumber><ETag>&quot;d&quot;</ETag></Part>"
                   "</CompleteMultipartUpload>");
}

/* Signed messages: path-style URLs under the endpoint's own path, SigV4 headers. */
static void
test_message (void)
{
  const char *cases[][3] = {
    { "http://127.0.0.1:8080", NULL, "http://127.0.0.1:8080/magpie/users/id/a%20b.png" },
    { "http://127.0.0.1:8080/", "uploads",
      "http://127.0.0.1:8080/magpie/users/id/a%20b.png?uploads" },
    { "https://store.example/s3/", "partNumber=2&uploadId=x%2By",
      "https://store.example/s3/magpie/users/id/a%20b.png?partNumber=2&uploadId=x%2By" },
    { "https://store.example/s3", NULL, "https://store.example/s3/magpie/users/id/a%20b.png" },
  };
  MagpieS3Credentials creds = {
    .access_key_id = (char *) "ASIAEXAMPLE", .secret_access_key = (char *) "secret",
    .session_token = (char *) "token", .region = (char *) "us-east-1",
    .bucket = (char *) "magpie", .prefix = (char *) "users/id/",
  };
  g_autoptr(GError) error = NULL;

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr(SoupMessage) message = NULL;
      g_autofree char *uri = NULL;
      SoupMessageHeaders *headers;

      creds.endpoint = (char *) cases[i][0];
      message = magpie_s3_message_new (&creds, "PUT", "users/id/a b.png", cases[i][1],
                                       "image/png", MP_SIGV4_EMPTY_SHA256, &error);
      g_assert_no_error (error);
      uri = g_uri_to_string (soup_message_get_uri (message));
      g_assert_cmpstr (uri, ==, cases[i][2]);
      headers = soup_message_get_request_headers (message);
      g_assert_true (g_str_has_prefix (soup_message_headers_get_one (headers, "Authorization"),
                                       "AWS4-HMAC-SHA256 Credential=ASIAEXAMPLE/"));
      g_assert_cmpstr (soup_message_headers_get_one (headers, "x-amz-security-token"), ==,
                       "token");
      g_assert_cmpstr (soup_message_headers_get_one (headers, "Content-Type"), ==, "image/png");
    }

  creds.endpoint = (char *) "ftp://store.example";
  g_assert_null (magpie_s3_message_new (&creds, "GET", "k", NULL, NULL, NULL, &error));
  g_assert_error (error, MAGPIE_CLIENT_ERROR, MAGPIE_CLIENT_ERROR_BAD_RESPONSE);
}

/* The range stream --------------------------------------------------------------------------- */

static void
test_range_stream (void)
{
  g_autoptr(GBytes) bytes = g_bytes_new_static ("0123456789abcdef", 16);
  g_autoptr(GInputStream) base = g_memory_input_stream_new_from_bytes (bytes);
  g_autoptr(GInputStream) window = NULL;
  g_autoptr(GInputStream) short_window = NULL;
  g_autoptr(GInputStream) paced = NULL;
  g_autoptr(GBytes) all = NULL;
  g_autoptr(GError) error = NULL;
  char buffer[64];
  gsize n = 0;
  gint64 start;

  g_assert_true (g_seekable_seek (G_SEEKABLE (base), 4, G_SEEK_SET, NULL, &error));
  window = magpie_range_stream_new (base, 6, 0);
  g_assert_true (g_input_stream_read_all (window, buffer, sizeof buffer, &n, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (n, ==, 6);
  g_assert_cmpmem (buffer, n, "456789", 6);

  /* A file shorter than the part is an error, not a short part. */
  short_window = magpie_range_stream_new (base, 100, 0);
  g_assert_false (g_input_stream_read_all (short_window, buffer, sizeof buffer, &n, NULL,
                                           &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_PARTIAL_INPUT);
  g_clear_error (&error);

  /* Paced: 200 KiB at 1 MiB/s takes about 0.2 s (the first 64 KiB go at once). */
  {
    g_autofree guint8 *data = g_malloc0 (200 * 1024);
    g_autoptr(GInputStream) source = g_memory_input_stream_new_from_data (data, 200 * 1024,
                                                                          NULL);
    gint64 elapsed_us;

    paced = magpie_range_stream_new (source, 200 * 1024, MIB);
    start = g_get_monotonic_time ();
    all = g_input_stream_read_bytes (paced, 300 * 1024, NULL, &error);
    while (all != NULL && g_bytes_get_size (all) > 0)
      {
        g_clear_pointer (&all, g_bytes_unref);
        all = g_input_stream_read_bytes (paced, 300 * 1024, NULL, &error);
      }
    g_assert_no_error (error);
    elapsed_us = g_get_monotonic_time () - start;
    g_assert_cmpint (elapsed_us, >=, 130 * 1000);
    g_assert_cmpint (elapsed_us, <, 5 * G_USEC_PER_SEC);
  }
}

/* The outbox's records ------------------------------------------------------------------------ */

static gboolean
result_arrived (gpointer user_data)
{
  return *(GAsyncResult **) user_data != NULL;
}

static void
store_result_cb (GObject      *object,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  *(GAsyncResult **) user_data = g_object_ref (result);
}

static GAsyncResult *
wait_result (GAsyncResult **slot)
{
  g_assert_true (app_test_wait (result_arrived, slot, 30000));
  return *slot;
}

static gpointer
exec_sql (sqlite3   *db,
          gpointer   data,
          GError   **error)
{
  return magpie_store_exec (db, data, error) ? GINT_TO_POINTER (1) : NULL;
}

static void
run_sql (MagpieStore *store,
         const char  *sql)
{
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GError) error = NULL;

  magpie_store_run_async (store, exec_sql, (gpointer) sql, NULL, NULL, NULL, store_result_cb,
                          &result);
  g_assert_nonnull (magpie_store_run_finish (store, wait_result (&result), &error));
  g_assert_no_error (error);
}

static MagpieStoreRow *
import_png (MagpieOutbox *outbox,
            const char   *dir,
            guint32       colour)
{
  g_autofree char *path = g_strdup_printf ("%s/photo-%08x.png", dir, colour);
  g_autoptr(GdkPixbuf) pixbuf = gdk_pixbuf_new (GDK_COLORSPACE_RGB, FALSE, 8, 16, 16);
  g_autoptr(GFile) file = g_file_new_for_path (path);
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GError) error = NULL;
  MagpieStoreRow *row;

  gdk_pixbuf_fill (pixbuf, colour);
  g_assert_true (gdk_pixbuf_save (pixbuf, path, "png", &error, NULL));
  magpie_outbox_import_async (outbox, file, NULL, NULL, store_result_cb, &result);
  row = magpie_outbox_import_finish (outbox, wait_result (&result), NULL, &error);
  g_assert_no_error (error);
  return row;
}

static MagpieMultipartRecord *
begin (MagpieOutbox *outbox,
       gint64        photo,
       const char   *upload_id)
{
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GError) error = NULL;
  MagpieMultipartRecord *record;

  magpie_outbox_begin_multipart_async (outbox, photo, "http://127.0.0.1:1", "magpie",
                                       "users/me/x.png", upload_id, 20 * MIB, 8 * MIB, NULL,
                                       store_result_cb, &result);
  record = magpie_outbox_multipart_finish (outbox, wait_result (&result), &error);
  g_assert_no_error (error);
  g_assert_nonnull (record);
  g_assert_cmpint (record->id, >, 0);
  return record;
}

static MagpieMultipartRecord *
get (MagpieOutbox *outbox,
     gint64        photo)
{
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GError) error = NULL;
  MagpieMultipartRecord *record;

  magpie_outbox_get_multipart_async (outbox, photo, NULL, store_result_cb, &result);
  record = magpie_outbox_multipart_finish (outbox, wait_result (&result), &error);
  g_assert_no_error (error);
  return record;
}

static GPtrArray *
abandoned (MagpieOutbox *outbox)
{
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GError) error = NULL;
  GPtrArray *records;

  magpie_outbox_list_abandoned_async (outbox, NULL, store_result_cb, &result);
  records = magpie_outbox_multipart_finish (outbox, wait_result (&result), &error);
  g_assert_no_error (error);
  g_assert_nonnull (records);
  return records;
}

static void
record_part (MagpieOutbox *outbox,
             gint64        upload,
             guint         number,
             const char   *etag)
{
  MagpiePart part = { number, 8 * MIB, (char *) etag };
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GError) error = NULL;

  magpie_outbox_add_part_async (outbox, upload, &part, NULL, store_result_cb, &result);
  g_assert_true (magpie_outbox_multipart_update_finish (outbox, wait_result (&result), &error));
  g_assert_no_error (error);
}

/* Recorded parts survive the store being closed and opened again (a restart); deleted and
 * replaced uploads are listed for aborting; forgotten ones are gone with their parts. */
static void
test_records (void)
{
  g_autofree char *dir = mp_test_make_tmpdir ("magpie-multipart");
  g_autofree char *db_path = g_build_filename (dir, "library.sqlite", NULL);
  g_autofree char *photos_dir = g_build_filename (dir, "photos", NULL);
  g_autoptr(MagpieStore) store = magpie_store_new (db_path);
  g_autoptr(MagpieOutbox) outbox = magpie_outbox_new (store, photos_dir);
  g_autoptr(MagpieStoreRow) first = import_png (outbox, dir, 0xff0000ff);
  g_autoptr(MagpieStoreRow) second = import_png (outbox, dir, 0x00ff00ff);
  g_autoptr(MagpieMultipartRecord) one = begin (outbox, first->id, "upload-one");
  g_autoptr(MagpieMultipartRecord) two = begin (outbox, second->id, "upload-two");
  g_autoptr(MagpieMultipartRecord) again = NULL;
  g_autoptr(MagpieMultipartRecord) replaced = NULL;
  g_autoptr(GPtrArray) list = NULL;
  g_autoptr(GAsyncResult) result = NULL;

  record_part (outbox, one->id, 2, "\"bbbb\"");
  record_part (outbox, one->id, 1, "\"aaaa\"");
  record_part (outbox, one->id, 2, "\"cccc\"");  /* sent again: the store's last word counts */
  record_part (outbox, 999999, 1, "\"dddd\"");   /* an upload forgotten meanwhile: no-op */

  /* A restart: new objects over the same file. */
  g_clear_object (&outbox);
  magpie_store_sync (store);
  g_clear_object (&store);
  store = magpie_store_new (db_path);
  outbox = magpie_outbox_new (store, photos_dir);

  again = get (outbox, first->id);
  g_assert_nonnull (again);
  g_assert_cmpint (again->id, ==, one->id);
  g_assert_cmpstr (again->upload_id, ==, "upload-one");
  g_assert_cmpstr (again->key, ==, "users/me/x.png");
  g_assert_cmpint (again->size, ==, 20 * MIB);
  g_assert_cmpint (again->part_size, ==, 8 * MIB);
  g_assert_cmpuint (again->parts->len, ==, 2);
  g_assert_cmpuint (g_array_index (again->parts, MagpiePart, 0).number, ==, 1);
  g_assert_cmpstr (g_array_index (again->parts, MagpiePart, 0).etag, ==, "\"aaaa\"");
  g_assert_cmpstr (g_array_index (again->parts, MagpiePart, 1).etag, ==, "\"cccc\"");
  g_assert_null (get (outbox, 424242));

  /* Nothing is abandoned while both photos are there. */
  list = abandoned (outbox);
  g_assert_cmpuint (list->len, ==, 0);
  g_clear_pointer (&list, g_ptr_array_unref);

  /* A new upload of the first photo leaves the old one to abort. */
  replaced = begin (outbox, first->id, "upload-three");
  g_clear_pointer (&again, magpie_multipart_record_free);
  again = get (outbox, first->id);
  g_assert_cmpstr (again->upload_id, ==, "upload-three");
  g_assert_cmpuint (again->parts->len, ==, 0);
  list = abandoned (outbox);
  g_assert_cmpuint (list->len, ==, 1);
  g_assert_cmpstr (((MagpieMultipartRecord *) list->pdata[0])->upload_id, ==, "upload-one");
  g_assert_cmpint (((MagpieMultipartRecord *) list->pdata[0])->photo, ==, 0);
  g_clear_pointer (&list, g_ptr_array_unref);

  /* The second photo deleted (undo pending), then for good. */
  {
    g_autofree char *mark = g_strdup_printf ("UPDATE photos SET deleted = 1 WHERE id = %"
                                             G_GINT64_FORMAT, second->id);
    g_autofree char *purge = g_strdup_printf ("DELETE FROM photos WHERE id = %"
                                              G_GINT64_FORMAT, second->id);

    run_sql (store, mark);
    list = abandoned (outbox);
    g_assert_cmpuint (list->len, ==, 2);
    g_clear_pointer (&list, g_ptr_array_unref);
    run_sql (store, purge);
    list = abandoned (outbox);
    g_assert_cmpuint (list->len, ==, 2);
    g_assert_cmpstr (((MagpieMultipartRecord *) list->pdata[1])->upload_id, ==, "upload-two");
    g_assert_cmpint (((MagpieMultipartRecord *) list->pdata[1])->photo, ==, 0);
    g_clear_pointer (&list, g_ptr_array_unref);
  }

  /* A photo failed for good, or on the server, has nothing left to resume. */
  {
    g_autofree char *failed = g_strdup_printf ("UPDATE photos SET upload = %d WHERE id = %"
                                               G_GINT64_FORMAT, MAGPIE_UPLOAD_FAILED,
                                               first->id);
    g_autofree char *waiting = g_strdup_printf ("UPDATE photos SET upload = %d WHERE id = %"
                                                G_GINT64_FORMAT, MAGPIE_UPLOAD_WAITING,
                                                first->id);

    run_sql (store, failed);
    list = abandoned (outbox);
    g_assert_cmpuint (list->len, ==, 3);
    g_clear_pointer (&list, g_ptr_array_unref);
    run_sql (store, waiting);
  }

  /* Forgotten (aborted): gone, parts too. */
  magpie_outbox_forget_multipart_async (outbox, one->id, NULL, store_result_cb, &result);
  g_assert_true (magpie_outbox_multipart_update_finish (outbox, wait_result (&result), NULL));
  g_clear_object (&result);
  magpie_outbox_forget_multipart_async (outbox, two->id, NULL, store_result_cb, &result);
  g_assert_true (magpie_outbox_multipart_update_finish (outbox, wait_result (&result), NULL));
  list = abandoned (outbox);
  g_assert_cmpuint (list->len, ==, 0);

  g_clear_object (&outbox);
  magpie_store_sync (store);
  g_clear_object (&store);
  {
    sqlite3 *db = NULL;
    sqlite3_stmt *stmt = NULL;

    g_assert_cmpint (sqlite3_open (db_path, &db), ==, SQLITE_OK);
    g_assert_cmpint (sqlite3_prepare_v2 (db, "SELECT count(*) FROM multipart_parts WHERE "
                                         "upload NOT IN (SELECT id FROM multipart_uploads)",
                                         -1, &stmt, NULL), ==, SQLITE_OK);
    g_assert_cmpint (sqlite3_step (stmt), ==, SQLITE_ROW);
    g_assert_cmpint (sqlite3_column_int (stmt, 0), ==, 0);
    sqlite3_finalize (stmt);
    sqlite3_close (db);
  }
  mp_test_rm_rf (dir);
}

/* A library written by the first schema gains the multipart tables and keeps its photos. */
static void
test_migration (void)
{
  g_autofree char *dir = mp_test_make_tmpdir ("magpie-migration");
  g_autofree char *db_path = g_build_filename (dir, "library.sqlite", NULL);
  g_autofree char *photos_dir = g_build_filename (dir, "photos", NULL);
  g_autoptr(MagpieStore) store = NULL;
  g_autoptr(MagpieOutbox) outbox = NULL;
  g_autoptr(MagpieMultipartRecord) record = NULL;
  sqlite3 *db = NULL;
  sqlite3_stmt *stmt = NULL;

  g_assert_cmpint (sqlite3_open (db_path, &db), ==, SQLITE_OK);
  g_assert_cmpint (sqlite3_exec (db,
                                 "CREATE TABLE photos (id INTEGER PRIMARY KEY, source TEXT NOT "
                                 "NULL, name TEXT NOT NULL, sha256 TEXT UNIQUE, extension TEXT,"
                                 " size INTEGER NOT NULL DEFAULT 0, width INTEGER NOT NULL "
                                 "DEFAULT 0, height INTEGER NOT NULL DEFAULT 0, imported "
                                 "INTEGER NOT NULL, upload INTEGER NOT NULL DEFAULT 0, attempts"
                                 " INTEGER NOT NULL DEFAULT 0, next_attempt INTEGER NOT NULL "
                                 "DEFAULT 0, sent INTEGER NOT NULL DEFAULT 0, last_error TEXT,"
                                 " deleted INTEGER NOT NULL DEFAULT 0);"
                                 "CREATE TABLE tags (photo INTEGER NOT NULL REFERENCES "
                                 "photos(id) ON DELETE CASCADE, label TEXT NOT NULL, confidence"
                                 " REAL NOT NULL, source INTEGER NOT NULL, PRIMARY KEY (photo, "
                                 "label));"
                                 "INSERT INTO photos (id, source, name, sha256, extension, size,"
                                 " imported, upload) VALUES (7, 'file:///a.png', 'a.png', '"
                                 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                                 "', 'png', 30000000, 1, 1);"
                                 "PRAGMA user_version = 1;", NULL, NULL, NULL), ==, SQLITE_OK);
  sqlite3_close (db);

  store = magpie_store_new (db_path);
  outbox = magpie_outbox_new (store, photos_dir);
  g_clear_pointer (&record, magpie_multipart_record_free);
  record = begin (outbox, 7, "after-migration");
  g_clear_pointer (&record, magpie_multipart_record_free);
  record = get (outbox, 7);
  g_assert_cmpstr (record->upload_id, ==, "after-migration");
  g_clear_object (&outbox);
  magpie_store_sync (store);
  g_clear_object (&store);

  g_assert_cmpint (sqlite3_open (db_path, &db), ==, SQLITE_OK);
  g_assert_cmpint (sqlite3_prepare_v2 (db, "PRAGMA user_version", -1, &stmt, NULL), ==,
                   SQLITE_OK);
  g_assert_cmpint (sqlite3_step (stmt), ==, SQLITE_ROW);
  g_assert_cmpint (sqlite3_column_int (stmt, 0), ==, 2);
  sqlite3_finalize (stmt);
  g_assert_cmpint (sqlite3_prepare_v2 (db, "SELECT name, size FROM photos", -1, &stmt, NULL),
                   ==, SQLITE_OK);
  g_assert_cmpint (sqlite3_step (stmt), ==, SQLITE_ROW);
  g_assert_cmpstr ((const char *) sqlite3_column_text (stmt, 0), ==, "a.png");
  g_assert_cmpint (sqlite3_column_int64 (stmt, 1), ==, 30000000);
  sqlite3_finalize (stmt);
  sqlite3_close (db);
  mp_test_rm_rf (dir);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/app/multipart/ranges", test_ranges);
  g_test_add_func ("/app/multipart/plan", test_plan);
  g_test_add_func ("/app/multipart/xml", test_xml);
  g_test_add_func ("/app/multipart/message", test_message);
  g_test_add_func ("/app/multipart/range-stream", test_range_stream);
  g_test_add_func ("/app/multipart/records", test_records);
  g_test_add_func ("/app/multipart/migration", test_migration);
  return g_test_run ();
}
