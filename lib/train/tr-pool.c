/* tr-pool.c - a parallel for over numbered tasks on a fixed set of threads */
#include "config.h"

#include "tr-pool.h"

struct _TrPool {
  GThreadPool *threads;  /* n_threads - 1 workers; the caller is worker 0 */
  int          n_threads;
  GMutex       lock;
  GCond        done_cond;
  int          running;  /* workers still in the current run */
  /* the current run */
  TrTaskFunc   fn;
  gpointer     data;
  int          n_tasks;
  int          next;
};

static void
drain (TrPool *pool, int worker)
{
  int task;

  while ((task = g_atomic_int_add (&pool->next, 1)) < pool->n_tasks)
    pool->fn (task, worker, pool->data);
}

static void
worker_main (gpointer item, gpointer user_data)
{
  TrPool *pool = user_data;

  drain (pool, GPOINTER_TO_INT (item));
  g_mutex_lock (&pool->lock);
  if (--pool->running == 0)
    g_cond_signal (&pool->done_cond);
  g_mutex_unlock (&pool->lock);
}

TrPool *
tr_pool_new (int n_threads)
{
  TrPool *pool = g_new0 (TrPool, 1);

  if (n_threads <= 0)
    n_threads = (int) g_get_num_processors ();
  pool->n_threads = CLAMP (n_threads, 1, 256);
  g_mutex_init (&pool->lock);
  g_cond_init (&pool->done_cond);
  if (pool->n_threads > 1)
    pool->threads = g_thread_pool_new (worker_main, pool, pool->n_threads - 1, TRUE, NULL);
  return pool;
}

void
tr_pool_free (TrPool *pool)
{
  if (!pool)
    return;
  if (pool->threads)
    g_thread_pool_free (pool->threads, FALSE, TRUE);
  g_mutex_clear (&pool->lock);
  g_cond_clear (&pool->done_cond);
  g_free (pool);
}

int
tr_pool_get_n_threads (TrPool *pool)
{
  return pool->n_threads;
}

void
tr_pool_run (TrPool *pool, int n_tasks, TrTaskFunc fn, gpointer data)
{
  int helpers = MIN (pool->n_threads, n_tasks) - 1;

  pool->fn = fn;
  pool->data = data;
  pool->n_tasks = n_tasks;
  g_atomic_int_set (&pool->next, 0);
  pool->running = helpers;
  for (int i = 1; i <= helpers; i++)
    g_thread_pool_push (pool->threads, GINT_TO_POINTER (i), NULL);
  drain (pool, 0);
  g_mutex_lock (&pool->lock);
  while (pool->running > 0)
    g_cond_wait (&pool->done_cond, &pool->lock);
  g_mutex_unlock (&pool->lock);
}
