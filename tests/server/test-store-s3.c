/* test-store-s3.c - the "s3" store backend against a real S3 implementation: moto_server
 *
 * moto (an independent S3 and STS in Python) runs on a loopback port the kernel picked, as a
 * direct child of this test, stopped by PID at the end. Every store call the server makes
 * goes over the wire to it: put/head/get (ranges, checksums)/list/delete, errors mapped onto
 * SrvStoreError, many threads on one store, and finally moto's signature checks switched on
 * so a wrong key pair must come back as ACCESS_DENIED.
 */
#include "config.h"

#include <gio/gio.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

#include "mp-test-util.h"
#include "srv-remote.h"
#include "srv-store.h"

#define BUCKET  "magpie-remote"
#define KEY_ID  "AKIAMAGPIETEST000001"
#define SECRET  "magpie-test-secret-key-0123456789abcdef"

static GSubprocess *moto;
static char *moto_url;
static const char *skip_reason;

static void
die_with_parent (gpointer data)
{
  prctl (PR_SET_PDEATHSIG, SIGKILL);
}

static guint16
free_port (void)
{
  g_autoptr(GSocket) sock = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM,
                                          G_SOCKET_PROTOCOL_TCP, NULL);
  g_autoptr(GInetAddress) lo = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr(GSocketAddress) any = g_inet_socket_address_new (lo, 0);
  g_autoptr(GSocketAddress) bound = NULL;

  g_assert_true (g_socket_bind (sock, any, FALSE, NULL));
  bound = g_socket_get_local_address (sock, NULL);
  return g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound));
}

/* An unsigned plain HTTP call to moto's own API (/moto-api/...). */
static guint
moto_post (const char *path,
           const char *body)
{
  g_autoptr(SoupSession) session = soup_session_new ();
  g_autofree char *url = g_strconcat (moto_url, path, NULL);
  g_autoptr(SoupMessage) msg = soup_message_new ("POST", url);
  g_autoptr(GBytes) bytes = g_bytes_new (body, strlen (body));
  g_autoptr(GBytes) answer = NULL;

  soup_message_set_request_body_from_bytes (msg, "text/plain", bytes);
  answer = soup_session_send_and_read (session, msg, NULL, NULL);
  return soup_message_get_status (msg);
}

static gboolean
start_moto (void)
{
  g_autoptr(GSubprocessLauncher) launcher = NULL;
  g_autofree char *path = g_find_program_in_path ("moto_server");
  g_autofree char *port = NULL;
  g_autoptr(GError) error = NULL;
  gint64 deadline;

  if (path == NULL)
    {
      skip_reason = "moto_server is not on PATH";
      return FALSE;
    }
  port = g_strdup_printf ("%u", free_port ());
  launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_SILENCE |
                                        G_SUBPROCESS_FLAGS_STDERR_SILENCE);
  g_subprocess_launcher_set_child_setup (launcher, die_with_parent, NULL, NULL);
  moto = g_subprocess_launcher_spawn (launcher, &error, path, "-H", "127.0.0.1", "-p", port,
                                      NULL);
  g_assert_no_error (error);
  moto_url = g_strdup_printf ("http://127.0.0.1:%s", port);

  /* A cold Python start takes seconds on a loaded machine. */
  deadline = g_get_monotonic_time () +
             (gint64) (60 * G_USEC_PER_SEC * mp_test_slowdown ());
  while (g_get_monotonic_time () < deadline)
    {
      g_autoptr(SoupSession) session = soup_session_new ();
      g_autofree char *url = g_strconcat (moto_url, "/moto-api/", NULL);
      g_autoptr(SoupMessage) msg = soup_message_new ("GET", url);
      g_autoptr(GBytes) body = soup_session_send_and_read (session, msg, NULL, NULL);

      if (body != NULL && soup_message_get_status (msg) == SOUP_STATUS_OK)
        return TRUE;
      if (g_subprocess_get_identifier (moto) == NULL)
        g_error ("moto_server exited during start-up");
      g_usleep (100 * 1000);
    }
  g_error ("moto_server did not answer on %s", moto_url);
}

static void
stop_moto (void)
{
  if (moto == NULL)
    return;
  g_subprocess_send_signal (moto, SIGTERM);
  g_subprocess_wait (moto, NULL, NULL);
  g_clear_object (&moto);
}

static SrvRemote *
remote_for (const char *key_id,
            const char *secret)
{
  g_autoptr(GError) error = NULL;
  SrvRemote *remote = srv_remote_new (moto_url, "us-east-1", key_id, secret, &error);

  g_assert_no_error (error);
  return remote;
}

/* A raw signed request straight to moto; returns the status. */
static guint
raw (const char          *method,
     const char          *path,
     const MpSigv4Header *headers,
     gsize                n_headers,
     const char          *body)
{
  g_autoptr(SrvRemote) remote = remote_for (KEY_ID, SECRET);
  g_autoptr(GBytes) bytes = body ? g_bytes_new (body, strlen (body)) : NULL;
  g_autoptr(SoupMessage) msg = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GInputStream) in = NULL;
  g_autoptr(GBytes) answer = NULL;
  SrvRemoteRequest request = {
    .method = method, .path = path, .headers = headers, .n_headers = n_headers,
    .service = "s3", .flags = MP_SIGV4_FLAGS_S3, .body = bytes,
  };

  in = srv_remote_send (remote, &request, &msg, NULL, &error);
  g_assert_no_error (error);
  answer = srv_remote_read_all (in, 1 << 20, NULL, &error);
  g_assert_no_error (error);
  return soup_message_get_status (msg);
}

static SrvStore *
open_store (const char *bucket,
            const char *endpoint,
            const char *key_id,
            const char *secret)
{
  const char *buckets[] = { bucket, NULL };
  SrvStoreOptions options = {
    .backend = "s3", .endpoint = endpoint, .region = "us-east-1",
    .access_key_id = key_id, .secret_access_key = secret,
  };
  g_autoptr(GError) error = NULL;
  SrvStore *store = srv_store_open ("/nonexistent-and-unused", buckets, &options, &error);

  g_assert_no_error (error);
  g_assert_cmpstr (srv_store_backend_name (store), ==, "s3");
  return store;
}

static SrvObjectInfo *
put_text (SrvStore   *store,
          const char *key,
          const char *text,
          GHashTable *metadata)
{
  g_autoptr(GInputStream) body = g_memory_input_stream_new_from_data (text, strlen (text), NULL);
  g_autoptr(GError) error = NULL;
  SrvObjectInfo *info = srv_store_put (store, BUCKET, key, body, strlen (text), "text/plain",
                                       metadata, NULL, NULL, &error);

  g_assert_no_error (error);
  return info;
}

static char *
read_text (SrvStore     *store,
           const char   *key,
           const char   *range,
           SrvByteRange *served,
           gboolean     *partial,
           gint64       *size,
           GError      **error)
{
  g_autoptr(SrvObjectInfo) info = NULL;
  g_autoptr(GInputStream) in = srv_store_open_read (store, BUCKET, key, range, &info, served,
                                                    partial, error);
  char buf[4096];
  gsize got = 0;

  if (in == NULL)
    return NULL;
  g_assert_true (g_input_stream_read_all (in, buf, sizeof buf - 1, &got, NULL, NULL));
  buf[got] = '\0';
  *size = info->size;
  return g_strdup (buf);
}

static gboolean
check_moto (void)
{
  if (skip_reason != NULL)
    {
      g_test_skip (skip_reason);
      return FALSE;
    }
  return TRUE;
}

static void
test_objects (void)
{
  g_autoptr(SrvStore) store = NULL;
  g_autoptr(GHashTable) metadata = g_hash_table_new (g_str_hash, g_str_equal);
  g_autoptr(SrvObjectInfo) put = NULL;
  g_autoptr(SrvObjectInfo) head = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *text = NULL;
  g_autofree char *md5 = g_compute_checksum_for_string (G_CHECKSUM_MD5, "hello, remote world", -1);
  g_autofree char *etag = g_strdup_printf ("\"%s\"", md5);
  SrvByteRange served = { 0 };
  gboolean partial = TRUE;
  gint64 size = 0;
  /* Keys as S3 allows them: spaces, plus, percent, unicode, deep paths. */
  static const char *keys[] = {
    "users/abc/plain.txt", "users/abc/with space+plus%25.txt", "users/abc/ünï/cødé ✓.txt",
    "users/abc/a/b/c/d/e.txt",
  };

  if (!check_moto ())
    return;
  store = open_store (BUCKET, moto_url, KEY_ID, SECRET);
  g_assert_true (srv_store_ping (store, BUCKET, &error));
  g_assert_no_error (error);

  g_hash_table_insert (metadata, "Origin", "magpie test");
  put = put_text (store, keys[0], "hello, remote world", metadata);
  g_assert_cmpint (put->size, ==, 19);
  g_assert_cmpstr (put->md5, ==, md5);
  g_assert_cmpstr (put->etag, ==, etag);

  head = srv_store_head (store, BUCKET, keys[0], &error);
  g_assert_no_error (error);
  g_assert_cmpint (head->size, ==, 19);
  g_assert_cmpstr (head->etag, ==, put->etag);
  g_assert_cmpstr (head->md5, ==, put->md5);
  g_assert_cmpstr (head->content_type, ==, "text/plain");
  g_assert_cmpstr (g_hash_table_lookup (head->metadata, "origin"), ==, "magpie test");
  g_assert_null (head->sha256);
  g_assert_cmpint (head->last_modified, >, 0);

  text = read_text (store, keys[0], NULL, &served, &partial, &size, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (text, ==, "hello, remote world");
  g_assert_false (partial);
  g_assert_cmpint (served.first, ==, 0);
  g_assert_cmpint (served.last, ==, 18);
  g_clear_pointer (&text, g_free);

  text = read_text (store, keys[0], "bytes=7-12", &served, &partial, &size, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (text, ==, "remote");
  g_assert_true (partial);
  g_assert_cmpint (served.first, ==, 7);
  g_assert_cmpint (served.last, ==, 12);
  g_assert_cmpint (size, ==, 19);
  g_clear_pointer (&text, g_free);

  text = read_text (store, keys[0], "bytes=100-", &served, &partial, &size, &error);
  g_assert_null (text);
  g_assert_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_INVALID_RANGE);
  g_clear_error (&error);

  for (gsize i = 1; i < G_N_ELEMENTS (keys); i++)
    {
      g_autoptr(SrvObjectInfo) info = put_text (store, keys[i], keys[i], NULL);
      g_autofree char *back = read_text (store, keys[i], NULL, &served, &partial, &size,
                                         &error);

      g_assert_no_error (error);
      g_assert_cmpstr (back, ==, keys[i]);
    }

  {
    g_autoptr(SrvListResult) list = srv_store_list_v2 (store, BUCKET, "users/abc/", NULL, -1,
                                                       NULL, NULL, &error);

    g_assert_no_error (error);
    g_assert_cmpuint (list->contents->len, ==, G_N_ELEMENTS (keys));
    for (guint i = 0; i < list->contents->len; i++)
      {
        SrvObjectInfo *info = g_ptr_array_index (list->contents, i);
        gboolean known = FALSE;

        for (gsize k = 0; k < G_N_ELEMENTS (keys); k++)
          known |= strcmp (info->key, keys[k]) == 0;
        g_assert_true (known);
        /* Each key holds its own name as bytes, but the first. */
        g_assert_cmpint (info->size, ==, strcmp (info->key, keys[0]) == 0
                                         ? 19 : (gint64) strlen (info->key));
        g_assert_nonnull (info->etag);
        g_assert_cmpint (info->last_modified, >, 0);
      }
  }

  for (gsize i = 0; i < G_N_ELEMENTS (keys); i++)
    {
      g_autoptr(SrvObjectInfo) gone = NULL;

      g_assert_true (srv_store_delete (store, BUCKET, keys[i], &error));
      g_assert_no_error (error);
      gone = srv_store_head (store, BUCKET, keys[i], &error);
      g_assert_null (gone);
      g_assert_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_NO_SUCH_KEY);
      g_clear_error (&error);
    }
  /* Deleting what is not there succeeds, as in S3. */
  g_assert_true (srv_store_delete (store, BUCKET, keys[0], &error));
  g_assert_no_error (error);
  g_assert_null (read_text (store, keys[0], NULL, &served, &partial, &size, &error));
  g_assert_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_NO_SUCH_KEY);
}

static void
test_list_pages (void)
{
  g_autoptr(SrvStore) store = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) seen = g_ptr_array_new_with_free_func (g_free);
  g_autofree char *token = NULL;

  if (!check_moto ())
    return;
  store = open_store (BUCKET, moto_url, KEY_ID, SECRET);
  for (int i = 0; i < 5; i++)
    {
      g_autofree char *key = g_strdup_printf ("pages/p/%d", i);
      g_autoptr(SrvObjectInfo) info = put_text (store, key, "x", NULL);
    }
  {
    g_autoptr(SrvObjectInfo) info = put_text (store, "pages/q/only", "x", NULL);
  }

  do
    {
      g_autoptr(SrvListResult) page = srv_store_list_v2 (store, BUCKET, "pages/p/", NULL, 2, NULL,
                                                         token, &error);

      g_assert_no_error (error);
      g_assert_cmpuint (page->contents->len, <=, 2);
      for (guint i = 0; i < page->contents->len; i++)
        g_ptr_array_add (seen, g_strdup (((SrvObjectInfo *) page->contents->pdata[i])->key));
      g_clear_pointer (&token, g_free);
      if (page->is_truncated)
        {
          g_assert_nonnull (page->next_continuation_token);
          token = g_strdup (page->next_continuation_token);
        }
    }
  while (token != NULL);
  g_assert_cmpuint (seen->len, ==, 5);
  for (int i = 0; i < 5; i++)
    {
      g_autofree char *key = g_strdup_printf ("pages/p/%d", i);

      g_assert_cmpstr (seen->pdata[i], ==, key);
    }

  {
    g_autoptr(SrvListResult) dirs = srv_store_list_v2 (store, BUCKET, "pages/", "/", -1, NULL,
                                                       NULL, &error);

    g_assert_no_error (error);
    g_assert_cmpuint (dirs->contents->len, ==, 0);
    g_assert_cmpuint (dirs->common_prefixes->len, ==, 2);
    g_assert_cmpstr (dirs->common_prefixes->pdata[0], ==, "pages/p/");
    g_assert_cmpstr (dirs->common_prefixes->pdata[1], ==, "pages/q/");
    g_assert_false (dirs->is_truncated);
  }
  {
    /* DeleteObjects goes key by key; every result is a success. */
    const char *keys[] = { "pages/p/0", "pages/p/1", "pages/p/2", "pages/p/3", "pages/p/4",
                           "pages/q/only", NULL };
    g_autoptr(GPtrArray) results = srv_store_delete_many (store, BUCKET, keys, &error);
    g_autoptr(SrvListResult) empty = NULL;

    g_assert_no_error (error);
    g_assert_cmpuint (results->len, ==, 6);
    for (guint i = 0; i < results->len; i++)
      g_assert_no_error (((SrvDeleteResult *) results->pdata[i])->error);
    empty = srv_store_list_v2 (store, BUCKET, "pages/", NULL, -1, NULL, NULL, &error);
    g_assert_no_error (error);
    g_assert_cmpuint (empty->contents->len, ==, 0);
  }
}

static void
test_checksums (void)
{
  const char *photo = "not really a jpeg, but bytes all the same";
  g_autofree char *expected = g_compute_checksum_for_string (G_CHECKSUM_SHA256, photo, -1);
  g_autoptr(SrvStore) store = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(SrvObjectInfo) with = NULL;
  g_autoptr(SrvObjectInfo) without = NULL;
  g_autoptr(SrvObjectInfo) read_info = NULL;
  g_autofree char *hashed = NULL;
  g_autofree char *b64 = NULL;
  guint8 digest[32];
  gsize digest_len = sizeof digest;
  g_autoptr(GChecksum) sha = g_checksum_new (G_CHECKSUM_SHA256);

  if (!check_moto ())
    return;
  g_checksum_update (sha, (const guchar *) photo, strlen (photo));
  g_checksum_get_digest (sha, digest, &digest_len);
  b64 = g_base64_encode (digest, digest_len);
  {
    /* What an SDK that sends a SHA-256 checksum leaves behind (moto, unlike AWS, also wants
     * the SDK's algorithm header before it keeps the checksum). */
    MpSigv4Header headers[] = { { "x-amz-checksum-sha256", b64 },
                                { "x-amz-sdk-checksum-algorithm", "SHA256" } };

    g_assert_cmpuint (raw ("PUT", "/" BUCKET "/users/abc/with-checksum.jpg", headers, 2, photo),
                      ==, 200);
    g_assert_cmpuint (raw ("PUT", "/" BUCKET "/users/abc/without.jpg", NULL, 0, photo), ==, 200);
  }
  store = open_store (BUCKET, moto_url, KEY_ID, SECRET);

  with = srv_store_head (store, BUCKET, "users/abc/with-checksum.jpg", &error);
  g_assert_no_error (error);
  g_assert_cmpstr (with->sha256, ==, expected);

  without = srv_store_head (store, BUCKET, "users/abc/without.jpg", &error);
  g_assert_no_error (error);
  g_assert_null (without->sha256);
  hashed = srv_store_hash_object (store, BUCKET, "users/abc/without.jpg", &read_info, NULL,
                                  &error);
  g_assert_no_error (error);
  g_assert_cmpstr (hashed, ==, expected);
  g_assert_cmpint (read_info->size, ==, strlen (photo));
}

typedef struct {
  SrvStore *store;
  guint     ok;
} ThreadData;

static gpointer
reader_thread (gpointer data)
{
  ThreadData *t = data;

  for (int i = 0; i < 10; i++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(SrvObjectInfo) info = srv_store_head (t->store, BUCKET, "threads/shared", &error);
      SrvByteRange served;
      gboolean partial;
      gint64 size;
      g_autofree char *text = read_text (t->store, "threads/shared", NULL, &served, &partial,
                                         &size, &error);

      if (info != NULL && g_strcmp0 (text, "one store, many threads") == 0)
        t->ok++;
    }
  return NULL;
}

/* Workers and the blocking pool share one store: sync sends from many threads at once. */
static void
test_threads (void)
{
  g_autoptr(SrvStore) store = NULL;
  g_autoptr(SrvObjectInfo) info = NULL;
  ThreadData data[8];
  GThread *threads[8];

  if (!check_moto ())
    return;
  store = open_store (BUCKET, moto_url, KEY_ID, SECRET);
  info = put_text (store, "threads/shared", "one store, many threads", NULL);
  for (int i = 0; i < 8; i++)
    {
      data[i] = (ThreadData) { store, 0 };
      threads[i] = g_thread_new ("reader", reader_thread, &data[i]);
    }
  for (int i = 0; i < 8; i++)
    {
      g_thread_join (threads[i]);
      g_assert_cmpuint (data[i].ok, ==, 10);
    }
}

static void
test_errors (void)
{
  g_autoptr(SrvStore) store = NULL;
  g_autoptr(SrvStore) missing = NULL;
  g_autoptr(SrvStore) nowhere = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GInputStream) body = g_memory_input_stream_new_from_data ("x", 1, NULL);
  g_autofree char *closed = g_strdup_printf ("http://127.0.0.1:%u", free_port ());
  const char *buckets[] = { BUCKET, NULL };
  SrvStoreOptions bad = { .backend = "s3", .endpoint = "ftp://example.org", .region = "r",
                          .access_key_id = "a", .secret_access_key = "s" };
  SrvByteRange served;
  gboolean partial;
  gint64 size;
  guint status = 0;

  if (!check_moto ())
    return;
  store = open_store (BUCKET, moto_url, KEY_ID, SECRET);

  /* The store serves its one bucket; others are not there, without asking the remote. */
  g_assert_null (srv_store_head (store, "another-bucket", "k", &error));
  g_assert_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_NO_SUCH_BUCKET);
  g_clear_error (&error);

  g_assert_null (srv_store_put (store, BUCKET, "k", body, -1, NULL, NULL, NULL, NULL, &error));
  g_assert_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  g_assert_null (srv_store_copy (store, BUCKET, "a", BUCKET, "b", SRV_METADATA_COPY, NULL, NULL,
                                 NULL, &error));
  g_assert_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_NOT_IMPLEMENTED);
  g_assert_cmpstr (srv_store_error_s3 (error, &status), ==, "NotImplemented");
  g_assert_cmpuint (status, ==, 501);
  g_clear_error (&error);
  g_assert_null (srv_store_create_upload (store, BUCKET, "k", NULL, NULL, &error));
  g_assert_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_NOT_IMPLEMENTED);
  g_clear_error (&error);

  /* A bucket the remote does not have. */
  missing = open_store ("no-such-bucket-here", moto_url, KEY_ID, SECRET);
  g_assert_false (srv_store_ping (missing, "no-such-bucket-here", &error));
  g_assert_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_NO_SUCH_BUCKET);
  g_clear_error (&error);
  g_assert_null (srv_store_list_v2 (missing, "no-such-bucket-here", NULL, NULL, -1, NULL, NULL,
                                    &error));
  g_assert_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_NO_SUCH_BUCKET);
  g_assert_nonnull (strstr (error->message, "NoSuchBucket"));
  g_clear_error (&error);

  /* Nobody listening: unavailable, which workers retry. */
  nowhere = open_store (BUCKET, closed, KEY_ID, SECRET);
  g_assert_null (read_text (nowhere, "k", NULL, &served, &partial, &size, &error));
  g_assert_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_UNAVAILABLE);
  g_assert_cmpstr (srv_store_error_s3 (error, &status), ==, "ServiceUnavailable");
  g_assert_cmpuint (status, ==, 503);
  g_clear_error (&error);
  g_assert_false (srv_store_ping (nowhere, BUCKET, &error));
  g_assert_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_UNAVAILABLE);
  g_clear_error (&error);

  g_assert_null (srv_store_open ("/unused", buckets, &bad, &error));
  g_assert_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (error->message, "ftp://example.org"));
}

/* Last: from here on moto checks every signature against its IAM users. */
static void
test_access_denied (void)
{
  g_autoptr(SrvStore) store = NULL;
  g_autoptr(GError) error = NULL;
  guint status = 0;

  if (!check_moto ())
    return;
  g_assert_cmpuint (moto_post ("/moto-api/reset-auth", "0"), ==, 200);
  store = open_store (BUCKET, moto_url, "AKIANOBODYKNOWSTHIS1", "wrong-secret-wrong-secret");
  g_assert_null (srv_store_head (store, BUCKET, "threads/shared", &error));
  g_assert_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_ACCESS_DENIED);
  g_clear_error (&error);
  g_assert_false (srv_store_delete (store, BUCKET, "threads/shared", &error));
  g_assert_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_ACCESS_DENIED);
  g_assert_nonnull (strstr (error->message, "InvalidAccessKeyId"));
  g_assert_cmpstr (srv_store_error_s3 (error, &status), ==, "AccessDenied");
  g_assert_cmpuint (status, ==, 403);
}

int
main (int argc, char *argv[])
{
  int status;

  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/srv/store-s3/objects", test_objects);
  g_test_add_func ("/srv/store-s3/list-pages", test_list_pages);
  g_test_add_func ("/srv/store-s3/checksums", test_checksums);
  g_test_add_func ("/srv/store-s3/threads", test_threads);
  g_test_add_func ("/srv/store-s3/errors", test_errors);
  g_test_add_func ("/srv/store-s3/access-denied", test_access_denied);

  if (start_moto ())
    g_assert_cmpuint (raw ("PUT", "/" BUCKET, NULL, 0, NULL), ==, 200);
  status = g_test_run ();
  stop_moto ();
  g_free (moto_url);
  return status;
}
