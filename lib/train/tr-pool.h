/* tr-pool.h - a parallel for over numbered tasks on a fixed set of threads
 *
 * The trainer splits work into tasks whose results do not depend on which thread runs them
 * (each task writes only its own outputs), so results are the same for any thread count.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct _TrPool TrPool;

/* fn (task, worker, data): @worker in [0, n_threads) indexes per-thread scratch. */
typedef void (*TrTaskFunc) (int task, int worker, gpointer data);

/* @n_threads <= 0 means one per core. */
TrPool *tr_pool_new          (int         n_threads);
void    tr_pool_free         (TrPool     *pool);
int     tr_pool_get_n_threads (TrPool    *pool);
/* Runs fn for every task in [0, n_tasks) and returns when all are done; the calling
 * thread works too. Not reentrant. */
void    tr_pool_run          (TrPool     *pool,
                              int         n_tasks,
                              TrTaskFunc  fn,
                              gpointer    data);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (TrPool, tr_pool_free)

G_END_DECLS
