/* test-roles.c - magpied --role=api and --role=worker as separate processes on one PostgreSQL
 * catalog: two api nodes and a worker node, tokens of one api node accepted by the other, photos
 * registered on one api node and tagged by the worker, and the tags reaching an event stream on
 * the other api node through LISTEN/NOTIFY. Runs under tests/with-postgres.sh only. */
#include "config.h"

#include <signal.h>
#include <string.h>

#include "mp-test-sse.h"
#include "mp-test-util.h"
#include "srv-api.h"
#include "srv-db.h"
#include "srv-store.h"

#define BUCKET "magpie"
#define N_PHOTOS 6

static JsonNode *
call (SoupSession *session, const char *base, const char *method, const char *path,
      const char *token, const char *body, guint *status)
{
  g_autofree char *url = g_strconcat (base, path, NULL);

  return mp_test_http_call (session, method, url, token, body, status, NULL);
}

static char *
photo_id_of (const char *json)
{
  g_autoptr(JsonParser) parser = json_parser_new ();

  g_assert_true (json_parser_load_from_data (parser, json, -1, NULL));
  return g_strdup (json_object_get_string_member (json_node_get_object (
    json_parser_get_root (parser)), "id"));
}

static void
test_api_and_worker (void)
{
  g_autofree char *photo_path = mp_test_shared_data ("photos/golden_retriever_winml.jpg");
  g_autofree char *dir = NULL;
  g_autofree char *data_dir = NULL;
  g_autofree char *identity = NULL;
  g_autofree char *secret = srv_api_new_secret ();
  g_autofree char *token = NULL;
  g_autoptr(SoupSession) session = soup_session_new ();
  g_autoptr(GError) error = NULL;
  g_autoptr(MpTestServer) api_a = NULL;
  g_autoptr(MpTestServer) api_b = NULL;
  g_autoptr(MpTestServer) worker = NULL;
  g_autoptr(MpTestSse) sse = NULL;
  g_autoptr(GHashTable) registered = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                                            NULL);
  g_autoptr(GHashTable) tagged = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  const char *api_args[] = { "--role=api", NULL };
  const char *worker_args[] = { "--role=worker", "--workers", "2:2", NULL };
  guint status = 0;

  if (!mp_test_db_is_postgresql ())
    {
      g_test_skip ("roles share a PostgreSQL catalog: run under tests/with-postgres.sh");
      return;
    }
  if (photo_path == NULL)
    {
      g_test_skip ("shared data (MAGPIE_SHARED_DATA) has no photos");
      return;
    }
  dir = mp_test_make_tmpdir ("magpie-roles");
  data_dir = g_build_filename (dir, "data", NULL);

  /* The objects are in the store the nodes share (its directory) before they start, as if
   * uploaded earlier; the identity is made in the catalog with a secret we know. */
  {
    g_autofree char *store_dir = g_build_filename (data_dir, "store", NULL);
    g_autofree char *location = mp_test_db_location (data_dir);
    g_autofree char *hash = srv_api_hash_secret (secret);
    const char *buckets[] = { BUCKET, NULL };
    g_autoptr(SrvStore) store = NULL;
    g_autoptr(SrvDb) db = NULL;
    g_autoptr(SrvIdentity) who = NULL;
    g_autoptr(GBytes) photo = NULL;
    char *contents;
    gsize length;

    g_assert_true (g_file_get_contents (photo_path, &contents, &length, NULL));
    photo = g_bytes_new_take (contents, length);
    g_assert_cmpint (g_mkdir_with_parents (data_dir, 0700), ==, 0);
    db = srv_db_open (location, &error);
    g_assert_no_error (error);
    g_assert_true (srv_db_is_shared (db));
    who = srv_db_create_identity (db, SRV_IDENTITY_GUEST, NULL, NULL, hash, &error);
    g_assert_no_error (error);
    identity = g_strdup (who->id);
    store = srv_store_open (store_dir, buckets, NULL, &error);
    g_assert_no_error (error);
    for (guint i = 0; i < N_PHOTOS; i++)
      {
        g_autofree char *key = g_strdup_printf ("users/%s/%u.jpg", identity, i);
        g_autoptr(GInputStream) in = g_memory_input_stream_new_from_bytes (photo);
        g_autoptr(SrvObjectInfo) info = srv_store_put (store, BUCKET, key, in, length,
                                                       "image/jpeg", NULL, NULL, NULL, &error);

        g_assert_no_error (error);
      }
  }

  api_a = mp_test_server_start (data_dir, api_args, &error);
  g_assert_no_error (error);
  api_b = mp_test_server_start (data_dir, api_args, &error);
  g_assert_no_error (error);

  /* A token from node A, and node B takes it: the keyring is the catalog's, not a file's. */
  {
    g_autofree char *body = g_strdup_printf ("{\"identity_id\":\"%s\",\"secret\":\"%s\"}",
                                             identity, secret);
    g_autoptr(JsonNode) creds = call (session, api_a->url, "POST", "/v1/credentials", NULL,
                                      body, &status);
    g_autoptr(JsonNode) list = NULL;
    g_autofree char *keyring = g_build_filename (data_dir, "keyring", NULL);

    g_assert_cmpuint (status, ==, 200);
    token = g_strdup (json_object_get_string_member (json_node_get_object (creds),
                                                     "session_token"));
    list = call (session, api_b->url, "GET", "/v1/photos", token, NULL, &status);
    g_assert_cmpuint (status, ==, 200);
    g_assert_false (g_file_test (keyring, G_FILE_TEST_EXISTS));
  }

  /* An api node tags nothing: registered photos wait until a worker node starts. */
  {
    g_autofree char *url = g_strconcat (api_b->url, "/v1/events", NULL);

    sse = mp_test_sse_open (url, token, NULL, 120, &status, &error);
    g_assert_no_error (error);
    g_assert_cmpuint (status, ==, 200);
  }
  for (guint i = 0; i < N_PHOTOS; i++)
    {
      g_autofree char *body = g_strdup_printf ("{\"key\":\"users/%s/%u.jpg\"}", identity, i);
      g_autoptr(JsonNode) photo = call (session, api_a->url, "POST", "/v1/photos", token, body,
                                        &status);

      g_assert_cmpuint (status, ==, 201);
      g_hash_table_add (registered, g_strdup (json_object_get_string_member (
        json_node_get_object (photo), "id")));
    }
  g_assert_cmpfloat (mp_test_metric (session, api_a->url, "magpied_queue_depth"), ==, N_PHOTOS);
  g_assert_cmpfloat (mp_test_metric (session, api_a->url, "magpied_workers_current"), ==, -1);

  worker = mp_test_server_start (data_dir, worker_args, &error);
  g_assert_no_error (error);

  /* Node B's stream hears of photos registered on node A and tagged on the worker node:
   * neither event was committed in B's process. */
  while (g_hash_table_size (tagged) < N_PHOTOS)
    {
      g_autoptr(MpTestSseEvent) e = mp_test_sse_next (sse, &error);
      g_autofree char *id = NULL;

      g_assert_no_error (error);
      id = photo_id_of (e->data);
      g_assert_true (g_hash_table_contains (registered, id));
      if (g_strcmp0 (e->event, "photo.tagged") == 0)
        {
          g_assert_false (g_hash_table_contains (tagged, id));
          g_assert_nonnull (strstr (e->data, "\"state\":\"tagged\""));
          g_assert_nonnull (strstr (e->data, "\"tags\":[{\"label\":"));
          g_hash_table_add (tagged, g_steal_pointer (&id));
        }
      else
        g_assert_cmpstr (e->event, ==, "photo.created");
    }

  /* The worker node serves its probes and metrics, nothing else. */
  {
    g_autofree char *health = NULL;
    g_autoptr(JsonNode) ready = call (session, worker->url, "GET", "/readyz", NULL, NULL,
                                      &status);
    g_autoptr(JsonNode) refused = NULL;
    g_autofree char *url = g_strconcat (worker->url, "/healthz", NULL);

    g_assert_cmpuint (status, ==, 200);
    g_assert_cmpstr (json_object_get_string_member (
      json_object_get_object_member (json_node_get_object (ready), "checks"), "role"), ==,
      "worker");
    g_assert_cmpstr (json_object_get_string_member (
      json_object_get_object_member (json_node_get_object (ready), "checks"), "catalog"), ==,
      "postgresql");
    health = mp_test_http_text (session, "GET", url, &status);
    g_assert_cmpuint (status, ==, 200);
    refused = call (session, worker->url, "GET", "/v1/photos", token, NULL, &status);
    g_assert_cmpuint (status, ==, 404);
    g_assert_nonnull (strstr (json_object_get_string_member (json_object_get_object_member (
      json_node_get_object (refused), "error"), "message"), "--role=worker"));
    g_clear_pointer (&refused, json_node_unref);
    refused = call (session, worker->url, "GET", "/" BUCKET "/", NULL, NULL, &status);
    g_assert_cmpuint (status, ==, 404);
    /* The worker counts a job once its commit returns, which can be after a stream already
     * read the event that commit carried. */
    {
      gint64 deadline = g_get_monotonic_time () + 5 * G_USEC_PER_SEC * mp_test_slowdown ();

      while (mp_test_metric (session, worker->url, "magpied_jobs_total{result=\"done\"}") <
             N_PHOTOS && g_get_monotonic_time () < deadline)
        g_usleep (20 * 1000);
    }
    g_assert_cmpfloat (mp_test_metric (session, worker->url,
                                       "magpied_jobs_total{result=\"done\"}"), ==, N_PHOTOS);
    g_assert_cmpfloat (mp_test_metric (session, worker->url, "magpied_queue_depth"), ==, 0);
  }
  /* Every api node reads the tags from the catalog. */
  for (guint n = 0; n < 2; n++)
    {
      g_autoptr(JsonNode) list = call (session, n == 0 ? api_a->url : api_b->url, "GET",
                                       "/v1/photos", token, NULL, &status);
      JsonArray *photos;

      g_assert_cmpuint (status, ==, 200);
      photos = json_object_get_array_member (json_node_get_object (list), "photos");
      g_assert_cmpuint (json_array_get_length (photos), ==, N_PHOTOS);
      for (guint i = 0; i < N_PHOTOS; i++)
        {
          JsonObject *p = json_array_get_object_element (photos, i);

          g_assert_cmpstr (json_object_get_string_member (p, "state"), ==, "tagged");
          g_assert_cmpuint (json_array_get_length (json_object_get_array_member (p, "tags")),
                            >, 0);
        }
    }

  g_assert_cmpint (mp_test_server_stop (worker, SIGTERM, NULL), ==, 0);
  g_assert_cmpint (mp_test_server_stop (api_b, SIGTERM, NULL), ==, 0);
  g_assert_cmpint (mp_test_server_stop (api_a, SIGTERM, NULL), ==, 0);
  mp_test_rm_rf (dir);
}

int
main (int argc, char *argv[])
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/srv/roles/api-and-worker", test_api_and_worker);
  return g_test_run ();
}
