/* test-queue-latency.c - how long a job waits for a worker, on either catalog backend
 *
 * /srv/queue-latency/lease: photos are registered one at a time, spaced apart, and a leasing
 * loop shaped like srv-workers.c's (wait for catalog events, then lease) takes each; the
 * latency is commit of the registration to the lease that returns the job. Measured with the
 * leaser in the same process (one magpied doing everything) and in another process (an api
 * node and a worker node).
 *
 * /srv/queue-latency/tagged: real magpied processes, a photo registered with POST /v1/photos
 * until its photo.tagged event arrives on GET /v1/events: SQLite runs one --role=all node,
 * PostgreSQL an api node and a worker node.
 *
 * Prints percentiles (g_test_message, so run with --verbose); asserts only that every job
 * arrives. Suite `slow`: these are measurements, see BENCHMARKS.md.
 */
#include "config.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "mp-test-sse.h"
#include "mp-test-util.h"
#include "srv-api.h"
#include "srv-db.h"
#include "srv-store.h"

#define BUCKET "magpie"
#define N_LEASE 200
#define LEASE_GAP_US (20 * 1000)
#define N_TAGGED 40
#define TAGGED_GAP_US (300 * 1000)
/* srv-workers.c's idle wait: without a wake-up a worker looks again after this long. */
#define IDLE_WAIT_US (500 * 1000)

static char *self_exe;

static int
cmp_gint64 (gconstpointer a, gconstpointer b)
{
  gint64 x = *(const gint64 *) a, y = *(const gint64 *) b;

  return (x > y) - (x < y);
}

static void
report (const char *what, GArray *latencies_us)
{
  guint n = latencies_us->len;

  g_array_sort (latencies_us, cmp_gint64);
  g_test_message ("%s: n=%u p50=%.1f ms p90=%.1f ms p99=%.1f ms max=%.1f ms", what, n,
                  g_array_index (latencies_us, gint64, n / 2) / 1000.0,
                  g_array_index (latencies_us, gint64, n * 9 / 10) / 1000.0,
                  g_array_index (latencies_us, gint64, MIN (n - 1, n * 99 / 100)) / 1000.0,
                  g_array_index (latencies_us, gint64, n - 1) / 1000.0);
}

/* The worker's loop: prints "<photo id> <lease time>" per job until @n jobs. */
static void
lease_loop (SrvDb *db, guint n, FILE *out, GHashTable *leased_at)
{
  guint got = 0;

  while (got < n)
    {
      guint64 generation = srv_db_event_generation (db);
      g_autoptr(GError) error = NULL;
      g_autoptr(GPtrArray) jobs = srv_db_lease_jobs (db, "bench", 8, 60 * G_USEC_PER_SEC, &error);
      gint64 now = g_get_real_time ();

      g_assert_no_error (error);
      for (guint i = 0; i < jobs->len; i++)
        {
          SrvJob *job = jobs->pdata[i];
          SrvTag tag = { (char *) "cat", 0.5 };

          if (out)
            fprintf (out, "%s %" G_GINT64_FORMAT "\n", job->photo_id, now);
          else
            g_hash_table_insert (leased_at, g_strdup (job->photo_id), g_memdup2 (&now, sizeof now));
          g_assert_true (srv_db_complete_job (db, job->id, "bench", "m", &tag, 1, NULL, &error));
          g_assert_no_error (error);
          got++;
        }
      if (out)
        fflush (out);
      if (jobs->len == 0)
        srv_db_wait_events (db, generation, IDLE_WAIT_US);
    }
}

static int
lease_child (const char *location, const char *n_text)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(SrvDb) db = srv_db_open (location, &error);

  if (db == NULL)
    {
      g_printerr ("lease child: %s\n", error->message);
      return 1;
    }
  g_print ("READY\n");
  fflush (stdout);
  lease_loop (db, (guint) g_ascii_strtoull (n_text, NULL, 10), stdout, NULL);
  return 0;
}

typedef struct {
  SrvDb      *db;
  GHashTable *leased_at;
} LeaseThread;

static gpointer
lease_thread (gpointer data)
{
  LeaseThread *lt = data;

  lease_loop (lt->db, N_LEASE, NULL, lt->leased_at);
  return NULL;
}

/* Registers N_LEASE photos, LEASE_GAP_US apart; returns photo id -> commit time. */
static GHashTable *
register_spaced (SrvDb *db, const char *identity, const char *round)
{
  GHashTable *registered = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  g_autofree char *sha = g_strnfill (64, 'b');

  for (guint i = 0; i < N_LEASE; i++)
    {
      g_autofree char *key = g_strdup_printf ("users/%s/%s-%u.jpg", identity, round, i);
      g_autoptr(GError) error = NULL;
      g_autoptr(SrvPhoto) p = srv_db_register_photo (db, identity, key, 100, "image/jpeg", sha,
                                                     0, 0, NULL, &error);
      gint64 now = g_get_real_time ();

      g_assert_no_error (error);
      g_hash_table_insert (registered, g_strdup (p->id), g_memdup2 (&now, sizeof now));
      g_usleep (LEASE_GAP_US);
    }
  return registered;
}

static GArray *
latencies (GHashTable *registered, GHashTable *leased_at)
{
  GArray *out = g_array_new (FALSE, FALSE, sizeof (gint64));
  GHashTableIter iter;
  gpointer id, t0;

  g_assert_cmpuint (g_hash_table_size (leased_at), ==, g_hash_table_size (registered));
  g_hash_table_iter_init (&iter, registered);
  while (g_hash_table_iter_next (&iter, &id, &t0))
    {
      gint64 *t1 = g_hash_table_lookup (leased_at, id);
      gint64 d;

      g_assert_nonnull (t1);
      /* The commit returns to the registrar a hair after the leaser may already have it. */
      d = MAX (*t1 - *(gint64 *) t0, 0);
      g_array_append_val (out, d);
    }
  return out;
}

static void
test_lease (void)
{
  g_autofree char *dir = mp_test_make_tmpdir ("magpie-qlat");
  g_autofree char *location = mp_test_db_location (dir);
  g_autoptr(GError) error = NULL;
  g_autoptr(SrvDb) db = srv_db_open (location, &error);
  g_autoptr(SrvIdentity) who = NULL;
  const char *backend;

  g_assert_no_error (error);
  backend = srv_db_backend_name (db);
  who = srv_db_create_identity (db, SRV_IDENTITY_GUEST, NULL, NULL, "s", &error);
  g_assert_no_error (error);

  /* Same process: the commit wakes the leaser's srv_db_wait_events() directly. */
  {
    g_autoptr(GHashTable) leased_at = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                                             g_free);
    LeaseThread lt = { db, leased_at };
    GThread *thread = g_thread_new ("leaser", lease_thread, &lt);
    g_autoptr(GHashTable) registered = register_spaced (db, who->id, "same");
    g_autoptr(GArray) lat = NULL;
    g_autofree char *what = g_strdup_printf ("%s, leaser in the same process", backend);

    g_thread_join (thread);
    lat = latencies (registered, leased_at);
    report (what, lat);
  }

  /* Another process: PostgreSQL wakes it by NOTIFY; SQLite has no such channel, so the
   * worker's idle wait bounds it. */
  {
    g_autoptr(GHashTable) leased_at = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                                             g_free);
    g_autofree char *n_text = g_strdup_printf ("%u", N_LEASE);
    g_autoptr(GSubprocess) child = g_subprocess_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE, &error,
                                                     self_exe, "--lease-child", location,
                                                     n_text, NULL);
    g_autoptr(GDataInputStream) out = NULL;
    g_autoptr(GHashTable) registered = NULL;
    g_autoptr(GArray) lat = NULL;
    g_autofree char *ready = NULL;
    g_autofree char *what = g_strdup_printf ("%s, leaser in another process", backend);
    char *line;

    g_assert_no_error (error);
    out = g_data_input_stream_new (g_subprocess_get_stdout_pipe (child));
    ready = g_data_input_stream_read_line (out, NULL, NULL, &error);
    g_assert_cmpstr (ready, ==, "READY");
    registered = register_spaced (db, who->id, "other");
    while ((line = g_data_input_stream_read_line (out, NULL, NULL, &error)) != NULL)
      {
        g_auto(GStrv) words = g_strsplit (line, " ", 2);
        gint64 t = g_ascii_strtoll (words[1], NULL, 10);

        g_hash_table_insert (leased_at, g_strdup (words[0]), g_memdup2 (&t, sizeof t));
        g_free (line);
      }
    g_assert_no_error (error);
    g_assert_true (g_subprocess_wait_check (child, NULL, &error));
    g_assert_no_error (error);
    lat = latencies (registered, leased_at);
    report (what, lat);
  }
  g_clear_pointer (&db, srv_db_close);
  mp_test_rm_rf (dir);
}

static void
test_tagged (void)
{
  g_autofree char *photo_path = mp_test_shared_data ("photos/golden_retriever_winml.jpg");
  g_autofree char *dir = NULL;
  g_autofree char *data_dir = NULL;
  g_autofree char *identity = NULL;
  g_autofree char *secret = srv_api_new_secret ();
  g_autofree char *token = NULL;
  g_autofree char *what = NULL;
  g_autoptr(SoupSession) session = soup_session_new ();
  g_autoptr(GError) error = NULL;
  g_autoptr(MpTestServer) api = NULL;
  g_autoptr(MpTestServer) worker = NULL;
  g_autoptr(MpTestSse) sse = NULL;
  g_autoptr(GArray) lat = g_array_new (FALSE, FALSE, sizeof (gint64));
  gboolean shared = mp_test_db_is_postgresql ();
  const char *api_args[] = { shared ? "--role=api" : "--role=all", "--workers", "2:2", NULL };
  const char *worker_args[] = { "--role=worker", "--workers", "2:2", NULL };
  guint status = 0;

  if (photo_path == NULL)
    {
      g_test_skip ("shared data (MAGPIE_SHARED_DATA) has no photos");
      return;
    }
  dir = mp_test_make_tmpdir ("magpie-qlat");
  data_dir = g_build_filename (dir, "data", NULL);
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
    who = srv_db_create_identity (db, SRV_IDENTITY_GUEST, NULL, NULL, hash, &error);
    g_assert_no_error (error);
    identity = g_strdup (who->id);
    store = srv_store_open (store_dir, buckets, NULL, &error);
    g_assert_no_error (error);
    for (guint i = 0; i < N_TAGGED; i++)
      {
        g_autofree char *key = g_strdup_printf ("users/%s/%u.jpg", identity, i);
        g_autoptr(GInputStream) in = g_memory_input_stream_new_from_bytes (photo);
        g_autoptr(SrvObjectInfo) info = srv_store_put (store, BUCKET, key, in, length,
                                                       "image/jpeg", NULL, NULL, NULL, &error);

        g_assert_no_error (error);
      }
  }
  api = mp_test_server_start (data_dir, api_args, &error);
  g_assert_no_error (error);
  if (shared)
    {
      worker = mp_test_server_start (data_dir, worker_args, &error);
      g_assert_no_error (error);
    }
  {
    g_autofree char *body = g_strdup_printf ("{\"identity_id\":\"%s\",\"secret\":\"%s\"}",
                                             identity, secret);
    g_autofree char *url = g_strconcat (api->url, "/v1/credentials", NULL);
    g_autofree char *events_url = g_strconcat (api->url, "/v1/events", NULL);
    g_autoptr(JsonNode) creds = mp_test_http_call (session, "POST", url, NULL, body, &status,
                                                   NULL);

    g_assert_cmpuint (status, ==, 200);
    token = g_strdup (json_object_get_string_member (json_node_get_object (creds),
                                                     "session_token"));
    sse = mp_test_sse_open (events_url, token, NULL, 60, &status, &error);
    g_assert_no_error (error);
  }

  /* One photo at a time, so each latency is a photo's own, not a queue's. */
  for (guint i = 0; i < N_TAGGED; i++)
    {
      g_autofree char *url = g_strconcat (api->url, "/v1/photos", NULL);
      g_autofree char *body = g_strdup_printf ("{\"key\":\"users/%s/%u.jpg\"}", identity, i);
      g_autoptr(JsonNode) photo = mp_test_http_call (session, "POST", url, token, body, &status,
                                                     NULL);
      gint64 t0 = g_get_monotonic_time (), d;
      const char *id;

      g_assert_cmpuint (status, ==, 201);
      id = json_object_get_string_member (json_node_get_object (photo), "id");
      for (;;)
        {
          g_autoptr(MpTestSseEvent) e = mp_test_sse_next (sse, &error);

          g_assert_no_error (error);
          if (g_strcmp0 (e->event, "photo.tagged") == 0 && strstr (e->data, id) != NULL)
            break;
        }
      d = g_get_monotonic_time () - t0;
      g_array_append_val (lat, d);
      g_usleep (TAGGED_GAP_US);
    }
  what = g_strdup_printf ("%s, POST /v1/photos to photo.tagged on the stream (%s)",
                          shared ? "postgresql" : "sqlite",
                          shared ? "api node + worker node" : "one node");
  report (what, lat);
  if (worker)
    g_assert_cmpint (mp_test_server_stop (worker, SIGTERM, NULL), ==, 0);
  g_assert_cmpint (mp_test_server_stop (api, SIGTERM, NULL), ==, 0);
  mp_test_rm_rf (dir);
}

int
main (int argc, char *argv[])
{
  if (argc == 4 && g_strcmp0 (argv[1], "--lease-child") == 0)
    return lease_child (argv[2], argv[3]);

  self_exe = g_canonicalize_filename (argv[0], NULL);
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/srv/queue-latency/lease", test_lease);
  g_test_add_func ("/srv/queue-latency/tagged", test_tagged);
  return g_test_run ();
}
