/* test-register-rate.c - how many photos a second the catalog registers, on either backend
 *
 * srv_db_register_photo() as POST /v1/photos calls it, 300 times as fast as it returns:
 *   /srv/register-rate/alone         one registering thread, nothing else on the catalog;
 *   /srv/register-rate/with-workers  the same while four worker threads lease batches and
 *                                    store tags, as a magpied tagging a burst does;
 *   /srv/register-rate/concurrent    four registering threads (four HTTP requests at once).
 * Every registration and every stored tag set appends an event, and event ids must follow
 * commit order, so events are where writers serialise; these rows show what that costs.
 *
 * Prints photos/s (g_test_message, so run with --verbose); asserts only that every photo is
 * registered and every job done. Suite `slow`: measurements for BENCHMARKS.md.
 */
#include "config.h"

#include <string.h>

#include "mp-test-util.h"
#include "srv-db.h"

#define N_PHOTOS 300
#define N_THREADS 4
#define BATCH 8

typedef struct {
  SrvDb      *db;
  const char *identity;
  const char *round;
  guint       first;
  guint       n;
  gint       *registering;  /* atomic: registrars still running */
  gint       *done;         /* atomic: jobs completed */
} Work;

static gpointer
register_thread (gpointer data)
{
  Work *w = data;
  g_autofree char *sha = g_strnfill (64, 'c');

  for (guint i = w->first; i < w->first + w->n; i++)
    {
      g_autofree char *key = g_strdup_printf ("users/%s/%s-%u.jpg", w->identity, w->round, i);
      g_autoptr(GError) error = NULL;
      g_autoptr(SrvPhoto) p = srv_db_register_photo (w->db, w->identity, key, 100, "image/jpeg",
                                                     sha, 0, 0, NULL, &error);

      g_assert_no_error (error);
      g_assert_nonnull (p);
    }
  g_atomic_int_add (w->registering, -1);
  return NULL;
}

/* A worker's loop without the model: lease a batch, store one tag per photo, until the
 * registrars are done and the queue is empty. */
static gpointer
work_thread (gpointer data)
{
  Work *w = data;
  g_autofree char *owner = g_strdup_printf ("bench/worker-%u", w->first);

  for (;;)
    {
      guint64 generation = srv_db_event_generation (w->db);
      gboolean last = g_atomic_int_get (w->registering) == 0;
      g_autoptr(GError) error = NULL;
      g_autoptr(GPtrArray) jobs = srv_db_lease_jobs (w->db, owner, BATCH, 60 * G_USEC_PER_SEC,
                                                     &error);

      g_assert_no_error (error);
      for (guint i = 0; i < jobs->len; i++)
        {
          SrvJob *job = jobs->pdata[i];
          SrvTag tag = { (char *) "cat", 0.5 };

          g_assert_true (srv_db_complete_job (w->db, job->id, owner, "m", &tag, 1, NULL, &error));
          g_assert_no_error (error);
          g_atomic_int_inc (w->done);
        }
      if (jobs->len == 0)
        {
          if (last)
            break;
          srv_db_wait_events (w->db, generation, 100 * 1000);
        }
    }
  return NULL;
}

static void
run (const char *round, guint registrars, guint workers)
{
  g_autofree char *dir = mp_test_make_tmpdir ("magpie-register-rate");
  g_autofree char *location = mp_test_db_location (dir);
  g_autoptr(GError) error = NULL;
  g_autoptr(SrvDb) db = srv_db_open (location, &error);
  g_autoptr(SrvIdentity) who = NULL;
  g_autoptr(GPtrArray) threads = g_ptr_array_new ();
  g_autofree Work *work = g_new0 (Work, registrars + workers);
  gint registering = registrars, done = 0;
  gint64 t0, t1;

  g_assert_no_error (error);
  who = srv_db_create_identity (db, SRV_IDENTITY_GUEST, NULL, NULL, "s", &error);
  g_assert_no_error (error);

  t0 = g_get_monotonic_time ();
  for (guint i = 0; i < registrars + workers; i++)
    {
      Work *w = &work[i];

      w->db = db;
      w->identity = who->id;
      w->round = round;
      w->registering = &registering;
      w->done = &done;
      w->first = i < registrars ? i * (N_PHOTOS / registrars) : i;
      w->n = i < registrars ? N_PHOTOS / registrars : 0;
      g_ptr_array_add (threads, g_thread_new (round, i < registrars ? register_thread
                                                                     : work_thread, w));
    }
  for (guint i = 0; i < registrars; i++)
    g_thread_join (threads->pdata[i]);
  t1 = g_get_monotonic_time ();
  for (guint i = registrars; i < threads->len; i++)
    g_thread_join (threads->pdata[i]);

  g_test_message ("%s, %s: %d photos registered by %u thread(s) in %.2f s: %.1f photos/s%s",
                  mp_test_db_is_postgresql () ? "PostgreSQL" : "SQLite", round, N_PHOTOS,
                  registrars, (t1 - t0) / 1e6, N_PHOTOS / ((t1 - t0) / 1e6),
                  workers ? " (with workers tagging)" : "");
  if (workers)
    g_assert_cmpint (done, ==, N_PHOTOS);
  g_clear_pointer (&db, srv_db_close);
  mp_test_rm_rf (dir);
}

static void
test_alone (void)
{
  run ("alone", 1, 0);
}

static void
test_with_workers (void)
{
  run ("with-workers", 1, N_THREADS);
}

static void
test_concurrent (void)
{
  run ("concurrent", N_THREADS, 0);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/srv/register-rate/alone", test_alone);
  g_test_add_func ("/srv/register-rate/with-workers", test_with_workers);
  g_test_add_func ("/srv/register-rate/concurrent", test_concurrent);
  return g_test_run ();
}
