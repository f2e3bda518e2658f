/* test-requeue.c - the queue survives kill -9: a real magpied is killed while 200 tagging jobs
 * are queued or leased; after a restart every photo ends tagged, exactly once */
#include "config.h"

#include <gio/gio.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "mp-test-util.h"
#include "srv-db.h"
#include "srv-store.h"

#define BUCKET "magpie"
#define N_PHOTOS 200

static void
test_kill_9 (void)
{
  g_autofree char *photo_path = mp_test_shared_data ("photos/golden_retriever_winml.jpg");
  g_autofree char *dir = NULL;
  g_autofree char *data_dir = NULL;
  g_autofree char *model = NULL;
  g_autofree char *catalog = NULL;
  g_autofree char *identity = NULL;
  g_autoptr(SoupSession) session = soup_session_new ();
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) photo = NULL;
  g_autoptr(GPtrArray) ids = g_ptr_array_new_with_free_func (g_free);
  double done_before = 0, leased_before = 0;
  gint64 deadline;
  const char *args[] = { "--photo-model", NULL, "--workers", "2:2", NULL };

  dir = mp_test_make_tmpdir ("magpie-requeue");
  model = mp_test_photo_model (dir);
  if (model == NULL || photo_path == NULL)
    {
      mp_test_rm_rf (dir);
      g_test_skip ("shared data (MAGPIE_SHARED_DATA) has no squeezenet, synset or photos");
      return;
    }
  data_dir = g_build_filename (dir, "data", NULL);
  catalog = mp_test_db_location (data_dir);
  args[1] = model;
  {
    g_autofree char *contents = NULL;
    gsize length;

    g_assert_true (g_file_get_contents (photo_path, &contents, &length, NULL));
    photo = g_bytes_new_take (g_steal_pointer (&contents), length);
  }

  /* The photos are in the catalog and the store before magpied first runs, as if uploaded
   * and registered a moment before. */
  {
    g_autofree char *store_dir = g_build_filename (data_dir, "store", NULL);
    const char *buckets[] = { BUCKET, NULL };
    g_autoptr(SrvDb) db = NULL;
    g_autoptr(SrvStore) store = NULL;
    g_autoptr(SrvIdentity) who = NULL;

    g_assert_cmpint (g_mkdir_with_parents (data_dir, 0700), ==, 0);
    db = srv_db_open (catalog, &error);
    g_assert_no_error (error);
    store = srv_store_open (store_dir, buckets, NULL, &error);
    g_assert_no_error (error);
    who = srv_db_create_identity (db, SRV_IDENTITY_GUEST, NULL, NULL, "s", &error);
    g_assert_no_error (error);
    identity = g_strdup (who->id);
    for (guint i = 0; i < N_PHOTOS; i++)
      {
        g_autofree char *key = g_strdup_printf ("users/%s/%03u.jpg", identity, i);
        g_autofree char *sha = g_compute_checksum_for_string (G_CHECKSUM_SHA256, key, -1);
        g_autoptr(GInputStream) in = g_memory_input_stream_new_from_bytes (photo);
        g_autoptr(SrvObjectInfo) info = srv_store_put (store, BUCKET, key, in,
                                                       g_bytes_get_size (photo), "image/jpeg",
                                                       NULL, NULL, NULL, &error);
        g_autoptr(SrvPhoto) p = NULL;

        g_assert_no_error (error);
        p = srv_db_register_photo (db, identity, key, g_bytes_get_size (photo), "image/jpeg",
                                   sha, 0, 0, NULL, &error);
        g_assert_no_error (error);
        g_ptr_array_add (ids, g_strdup (p->id));
      }
  }

  {
    g_autoptr(MpTestServer) first = mp_test_server_start (data_dir, args, &error);

    g_assert_no_error (error);
    /* kill it mid-flight: some photos tagged, a batch in the workers' hands */
    deadline = g_get_monotonic_time () + 60 * G_USEC_PER_SEC;
    while (g_get_monotonic_time () < deadline)
      {
        done_before = mp_test_metric (session, first->url, "magpied_jobs_total{result=\"done\"}");
        leased_before = mp_test_metric (session, first->url, "magpied_queue_leased");
        if (done_before >= 10 && leased_before > 0)
          break;
        g_usleep (5 * 1000);
      }
    g_assert_cmpfloat (done_before, >=, 10);
    g_assert_cmpfloat (done_before, <, N_PHOTOS);
    g_assert_cmpint (mp_test_server_stop (first, SIGKILL, NULL), !=, 0);
    g_test_message ("killed with %.0f done, %.0f leased", done_before, leased_before);
  }
  {
    g_autoptr(MpTestServer) second = mp_test_server_start (data_dir, args, &error);
    g_autofree char *log = NULL;

    g_assert_no_error (error);
    deadline = g_get_monotonic_time () + 120 * G_USEC_PER_SEC;
    for (;;)
      {
        double depth = mp_test_metric (session, second->url, "magpied_queue_depth");
        double leased = mp_test_metric (session, second->url, "magpied_queue_leased");

        if (depth == 0 && leased == 0)
          break;
        g_assert_cmpint (g_get_monotonic_time (), <, deadline);
        g_usleep (50 * 1000);
      }
    g_assert_cmpint (mp_test_server_stop (second, SIGTERM, NULL), ==, 0);
    log = mp_test_server_log (second);
    g_assert_nonnull (strstr (log, "re-queued jobs leased by the previous run"));
  }

  {
    g_autoptr(SrvDb) db = srv_db_open (catalog, &error);
    g_autoptr(GHashTable) tagged = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
    SrvQueueStats stats = { 0 };
    gint64 last = 0;

    g_assert_no_error (error);
    g_assert_true (srv_db_queue_stats (db, &stats, &error));
    g_assert_cmpint (stats.done, ==, N_PHOTOS);
    g_assert_cmpint (stats.dead, ==, 0);
    for (guint i = 0; i < ids->len; i++)
      {
        g_autoptr(SrvPhoto) p = srv_db_get_photo (db, identity, ids->pdata[i], &error);

        g_assert_no_error (error);
        g_assert_cmpint (p->state, ==, SRV_PHOTO_TAGGED);
        g_assert_cmpstr (g_array_index (p->tags, SrvTag, 0).label, ==, "golden retriever");
      }
    /* exactly once: one photo.tagged event per photo, however the kill fell */
    for (;;)
      {
        g_autoptr(GPtrArray) events = srv_db_events_since (db, identity, last, 500, &error);

        g_assert_no_error (error);
        if (events->len == 0)
          break;
        for (guint i = 0; i < events->len; i++)
          {
            SrvEvent *e = events->pdata[i];
            g_autoptr(JsonNode) node = NULL;
            const char *id;

            last = e->id;
            if (e->type != SRV_EVENT_PHOTO_TAGGED)
              continue;
            node = json_from_string (e->data, NULL);
            id = json_object_get_string_member (json_node_get_object (node), "id");
            g_assert_false (g_hash_table_contains (tagged, id));
            g_hash_table_add (tagged, g_strdup (id));
          }
      }
    g_assert_cmpuint (g_hash_table_size (tagged), ==, N_PHOTOS);
  }
  mp_test_rm_rf (dir);
}

int
main (int argc, char *argv[])
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/srv/requeue/kill-9", test_kill_9);
  return g_test_run ();
}
