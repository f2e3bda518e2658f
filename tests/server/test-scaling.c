/* test-scaling.c - the autoscaler live, as /metrics shows it: a real magpied, a burst of 300
 * photos, workers at max within a second, back at min after the cooldown */
#include "config.h"

#include <gio/gio.h>
#include <signal.h>
#include <string.h>

#include "mp-test-util.h"
#include "srv-db.h"
#include "srv-store.h"

#define BUCKET "magpie"
#define N_PHOTOS 300
#define COOLDOWN "1.5"
#define COOLDOWN_US (1500 * 1000)
#define TICK_US (250 * 1000)  /* SRV_WORKERS_TICK_MS */

typedef struct {
  SrvDb      *db;
  const char *identity;
  gint        done;  /* atomic */
} Burst;

/* Registers the burst as fast as the catalog takes it while the main thread watches. */
static gpointer
register_burst (gpointer data)
{
  Burst *b = data;

  for (guint i = 0; i < N_PHOTOS; i++)
    {
      g_autoptr(GError) error = NULL;
      g_autofree char *key = g_strdup_printf ("users/%s/%03u.jpg", b->identity, i);
      g_autofree char *sha = g_compute_checksum_for_string (G_CHECKSUM_SHA256, key, -1);
      g_autoptr(SrvPhoto) p = srv_db_register_photo (b->db, b->identity, key, 1, "image/jpeg",
                                                     sha, 0, 0, NULL, &error);

      g_assert_no_error (error);
    }
  g_atomic_int_set (&b->done, 1);
  return NULL;
}


static void
test_burst (void)
{
  g_autofree char *photo_path = mp_test_shared_data ("photos/golden_retriever_winml.jpg");
  g_autofree char *dir = NULL;
  g_autofree char *data_dir = NULL;
  g_autofree char *model = NULL;
  g_autofree char *catalog = NULL;
  g_autofree char *identity = NULL;
  g_autoptr(SoupSession) session = soup_session_new ();
  g_autoptr(GError) error = NULL;
  g_autoptr(MpTestServer) server = NULL;
  g_autoptr(SrvDb) db = NULL;
  gint64 t0, t_max = -1, t_below = -1, t_drained = -1, t_min = -1;
  GThread *registrar;
  Burst burst;
  const char *args[] = { "--photo-model", NULL, "--workers", "1:4", "--worker-target", "8",
                         "--worker-cooldown", COOLDOWN, NULL };

  dir = mp_test_make_tmpdir ("magpie-scaling");
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

  /* The objects are uploaded before the server starts (the store is one process's); the
   * burst is their registration while it runs, through the shared catalog. */
  {
    g_autofree char *store_dir = g_build_filename (data_dir, "store", NULL);
    const char *buckets[] = { BUCKET, NULL };
    g_autoptr(SrvStore) store = NULL;
    g_autoptr(SrvIdentity) who = NULL;
    g_autoptr(GBytes) photo = NULL;
    char *contents;
    gsize length;

    g_assert_true (g_file_get_contents (photo_path, &contents, &length, NULL));
    photo = g_bytes_new_take (contents, length);
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
        g_autoptr(GInputStream) in = g_memory_input_stream_new_from_bytes (photo);
        g_autoptr(SrvObjectInfo) info = srv_store_put (store, BUCKET, key, in, length,
                                                       "image/jpeg", NULL, NULL, NULL, &error);
        g_assert_no_error (error);
      }
  }

  server = mp_test_server_start (data_dir, args, &error);
  g_assert_no_error (error);
  g_usleep (2 * TICK_US);
  g_assert_cmpfloat (mp_test_metric (session, server->url, "magpied_workers_current"), ==, 1);
  g_assert_cmpfloat (mp_test_metric (session, server->url, "magpied_workers_desired"), ==, 1);

  burst.db = db;
  burst.identity = identity;
  burst.done = 0;
  t0 = g_get_monotonic_time ();
  registrar = g_thread_new ("burst", register_burst, &burst);

  while (t_min < 0)
    {
      gint64 now = g_get_monotonic_time ();
      double cur = mp_test_metric (session, server->url, "magpied_workers_current");

      if (t_max < 0 && cur == 4)
        t_max = now;
      if (t_max >= 0 && t_below < 0 && cur < 4)
        t_below = now;
      if (registrar != NULL && g_atomic_int_get (&burst.done))
        {
          g_thread_join (g_steal_pointer (&registrar));
          g_test_message ("burst registered in %.3f s", (g_get_monotonic_time () - t0) / 1e6);
        }
      if (registrar == NULL && t_drained < 0 && mp_test_metric (session, server->url, "magpied_queue_depth") == 0 &&
          mp_test_metric (session, server->url, "magpied_queue_leased") == 0)
        t_drained = now;
      if (t_drained >= 0 && cur == 1)
        t_min = now;
      g_assert_cmpint (now - t0, <, 120 * G_USEC_PER_SEC);
      g_usleep (10 * 1000);
    }
  g_test_message ("/metrics: workers at max %.3f s after the burst began", (t_max - t0) / 1e6);
  g_test_message ("/metrics: first scale-in %.3f s after max (cooldown " COOLDOWN " s)",
                  (t_below - t_max) / 1e6);
  g_test_message ("%d photos tagged in %.1f s", N_PHOTOS, (t_drained - t0) / 1e6);
  g_test_message ("/metrics: back at min %.3f s after the queue drained",
                  (t_min - t_drained) / 1e6);
  g_assert_cmpint (t_max, >, 0);
  g_assert_cmpint (t_max - t0, <, G_USEC_PER_SEC * mp_test_slowdown ());
  g_assert_cmpint (t_below - t_max, >=, COOLDOWN_US - TICK_US);
  g_assert_cmpint (t_min - t_drained, <=, 3 * (COOLDOWN_US + TICK_US));
  g_assert_cmpfloat (mp_test_metric (session, server->url, "magpied_workers_desired"), ==, 1);
  g_assert_cmpfloat (mp_test_metric (session, server->url, "magpied_jobs_total{result=\"done\"}"), ==,
                     N_PHOTOS);
  g_assert_cmpfloat (mp_test_metric (session, server->url, "magpied_job_duration_seconds_count"), ==,
                     N_PHOTOS);
  g_assert_cmpint (mp_test_server_stop (server, SIGTERM, NULL), ==, 0);
  g_clear_pointer (&db, srv_db_close);
  mp_test_rm_rf (dir);
}

int
main (int argc, char *argv[])
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/srv/scaling/burst-of-300", test_burst);
  return g_test_run ();
}
