/* srv-workers.c - the tagging worker pool and its autoscaling controller */
#define G_LOG_DOMAIN "magpied-workers"

#include "config.h"

#include "srv-workers.h"

#include <errno.h>
#include <gio/gio.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "srv-autoscale.h"
#include "srv-tags.h"

typedef struct {
  SrvWorkers *pool;
  GThread    *thread;
  char       *owner;    /* lease owner: node/worker-N */
  gint        stop;     /* atomic: finish the batch, then exit */
  gint        exited;   /* atomic: the thread function returned; join it */
} Worker;

struct _SrvWorkers {
  SrvContext         *ctx;
  SrvModel           *photo;
  char               *photo_reason;
  SrvModel           *digit;
  char               *digit_reason;
  SrvTagRules        *rules;
  MpImageLimits       limits;
  char               *node;

  SrvAutoscalePolicy  policy;
  SrvAutoscaleState   state;
  GThread            *controller;
  GMutex              lock;
  GCond               cond;
  gboolean            stopping;     /* under lock */
  GPtrArray          *workers;      /* Worker*, controller thread only */
  guint               next_id;
  gint                depth;        /* atomic: queued jobs at the last tick, for batch sizes */
  gint                active;       /* atomic: workers not told to stop */
};

static void
log_event (GLogLevelFlags level,
           const char    *job_id,
           const char    *photo_key,
           const char    *message,
           const char    *detail)
{
  g_log_structured (G_LOG_DOMAIN, level,
                    "JOB", job_id ? job_id : "-",
                    "KEY", photo_key ? photo_key : "-",
                    "DETAIL", detail ? detail : "-",
                    "MESSAGE", message);
}

static const char *
result_labels (const char *result)
{
  if (strcmp (result, "done") == 0)
    return "result=\"done\"";
  if (strcmp (result, "retried") == 0)
    return "result=\"retried\"";
  return "result=\"dead\"";
}

static void
fail (Worker       *w,
      const SrvJob *job,
      gboolean      retryable,
      gint64        started_us,
      const char   *reason)
{
  SrvContext *ctx = w->pool->ctx;
  g_autoptr(GError) error = NULL;
  SrvJobState state = SRV_JOB_QUEUED;

  if (!srv_db_fail_job (ctx->db, job->id, w->owner, reason, retryable, &state, &error))
    {
      /* Lost lease or a gone photo: whoever holds the job now decides. */
      log_event (G_LOG_LEVEL_INFO, job->id, job->photo_key, "could not record a failure",
                 error->message);
      return;
    }
  log_event (state == SRV_JOB_DEAD ? G_LOG_LEVEL_INFO : G_LOG_LEVEL_DEBUG, job->id,
             job->photo_key, state == SRV_JOB_DEAD ? "job failed for good" : "job will retry",
             reason);
  srv_metrics_add (ctx->metrics, "magpied_jobs_total",
                   result_labels (state == SRV_JOB_DEAD ? "dead" : "retried"), 1);
  srv_metrics_observe (ctx->metrics, "magpied_job_duration_seconds", NULL,
                       (g_get_monotonic_time () - started_us) / (double) G_USEC_PER_SEC);
}

/* Reads the object, refusing more than the byte limit. NULL with *retryable set on failure. */
static GBytes *
fetch (SrvWorkers   *pool,
       const SrvJob *job,
       gboolean     *retryable,
       GError      **error)
{
  SrvContext *ctx = pool->ctx;
  g_autoptr(SrvObjectInfo) info = NULL;
  g_autoptr(GInputStream) in = NULL;
  g_autofree guint8 *buf = NULL;
  SrvByteRange served = { 0 };
  gboolean partial = FALSE;
  gsize got = 0;

  in = srv_store_open_read (ctx->store, ctx->config->bucket, job->photo_key, NULL, &info,
                            &served, &partial, error);
  if (in == NULL)
    {
      /* A missing object will not appear by retrying; anything else (I/O) may pass. */
      *retryable = !g_error_matches (*error, SRV_STORE_ERROR, SRV_STORE_ERROR_NO_SUCH_KEY) &&
                   !g_error_matches (*error, SRV_STORE_ERROR, SRV_STORE_ERROR_NO_SUCH_BUCKET);
      g_prefix_error (error, "cannot read the object: ");
      return NULL;
    }
  if (info->size < 0 || (guint64) info->size > pool->limits.max_bytes)
    {
      *retryable = FALSE;
      g_set_error (error, MP_IMAGE_ERROR, MP_IMAGE_ERROR_TOO_LARGE,
                   "image of %" G_GINT64_FORMAT " bytes is over the limit of %" G_GSIZE_FORMAT
                   " bytes", info->size, pool->limits.max_bytes);
      return NULL;
    }
  buf = g_malloc (MAX (info->size, 1));
  if (!g_input_stream_read_all (in, buf, info->size, &got, NULL, error) ||
      got != (gsize) info->size)
    {
      *retryable = TRUE;
      if (error && *error == NULL)
        g_set_error (error, G_IO_ERROR, G_IO_ERROR_PARTIAL_INPUT,
                     "the object ended after %" G_GSIZE_FORMAT " of %" G_GINT64_FORMAT " bytes",
                     got, info->size);
      g_prefix_error (error, "cannot read the object: ");
      return NULL;
    }
  return g_bytes_new_take (g_steal_pointer (&buf), info->size);
}

static void
process_batch (Worker    *w,
               NnModel   *instance,
               GPtrArray *jobs)
{
  SrvWorkers *pool = w->pool;
  SrvContext *ctx = pool->ctx;
  g_autoptr(GPtrArray) ready = g_ptr_array_new ();   /* SrvJob*, decoded */
  g_autoptr(GPtrArray) images = g_ptr_array_new_with_free_func ((GDestroyNotify) mp_image_free);
  g_autoptr(GPtrArray) pixbufs = g_ptr_array_new ();
  g_autoptr(GError) error = NULL;
  g_autofree float *probs = NULL;
  gint64 started_us = g_get_monotonic_time ();
  guint n_classes = 0;

  for (guint i = 0; i < jobs->len; i++)
    {
      SrvJob *job = jobs->pdata[i];
      g_autoptr(GError) local_error = NULL;
      g_autoptr(GBytes) bytes = NULL;
      MpImage *image;
      gboolean retryable = FALSE;
      gsize length;
      const guint8 *data;

      bytes = fetch (pool, job, &retryable, &local_error);
      if (bytes == NULL)
        {
          fail (w, job, retryable, started_us, local_error->message);
          continue;
        }
      data = g_bytes_get_data (bytes, &length);
      image = mp_image_decode (data ? data : (const guint8 *) "", length, &pool->limits,
                               &local_error);
      if (image == NULL)
        {
          /* The bytes will not change: a corrupt or refused image fails for good. */
          g_autofree char *reason = g_strdup_printf ("not a usable image: %s",
                                                     local_error->message);
          fail (w, job, FALSE, started_us, reason);
          continue;
        }
      if (!srv_db_set_photo_size (ctx->db, job->photo_id, image->width, image->height,
                                  &local_error))
        log_event (G_LOG_LEVEL_INFO, job->id, job->photo_key, "could not record the size",
                   local_error->message);
      g_ptr_array_add (ready, job);
      g_ptr_array_add (images, image);
      g_ptr_array_add (pixbufs, image->pixbuf);
    }
  if (ready->len == 0)
    return;

  probs = srv_model_classify (pool->photo, instance, (GdkPixbuf * const *) pixbufs->pdata,
                              pixbufs->len, &n_classes, &error);
  for (guint i = 0; i < ready->len; i++)
    {
      SrvJob *job = ready->pdata[i];
      g_autoptr(GArray) tags = NULL;
      g_autoptr(GError) local_error = NULL;
      gboolean applied = FALSE;

      if (probs == NULL)
        {
          g_autofree char *reason = g_strdup_printf ("the model failed: %s", error->message);
          fail (w, job, TRUE, started_us, reason);
          continue;
        }
      tags = srv_workers_tags_for (pool, probs + (gsize) i * n_classes, n_classes);
      if (!srv_db_complete_job (ctx->db, job->id, w->owner, srv_model_get_name (pool->photo),
                                (const SrvTag *) tags->data, tags->len, &applied,
                                &local_error))
        {
          /* NOT_FOUND: the photo was deleted meanwhile. Else the lease expires and the job
           * runs again, which complete_job makes harmless. */
          log_event (G_LOG_LEVEL_INFO, job->id, job->photo_key, "could not store tags",
                     local_error->message);
          continue;
        }
      srv_metrics_add (ctx->metrics, "magpied_jobs_total", result_labels ("done"), 1);
      srv_metrics_observe (ctx->metrics, "magpied_job_duration_seconds", NULL,
                           (g_get_monotonic_time () - started_us) / (double) G_USEC_PER_SEC);
    }
}

gint64
srv_workers_lease_us (guint lease_ms,
                      guint batch)
{
  return (gint64) lease_ms * 1000 + (gint64) batch * lease_ms * 1000 / 3;
}

static gpointer
worker_thread (gpointer data)
{
  Worker *w = data;
  SrvWorkers *pool = w->pool;
  SrvDb *db = pool->ctx->db;
  g_autoptr(NnModel) instance = NULL;
  g_autoptr(GError) error = NULL;

  instance = srv_model_new_instance (pool->photo, &error);
  if (instance == NULL)
    {
      log_event (G_LOG_LEVEL_WARNING, NULL, NULL, "worker cannot open the photo model",
                 error->message);
      g_atomic_int_set (&w->exited, 1);
      return NULL;
    }

  while (!g_atomic_int_get (&w->stop))
    {
      g_autoptr(GPtrArray) jobs = NULL;
      guint64 generation = srv_db_event_generation (db);
      guint active = MAX (1, g_atomic_int_get (&pool->active));
      guint batch = CLAMP ((guint) g_atomic_int_get (&pool->depth) / active, 1,
                           SRV_WORKERS_BATCH_MAX);

      g_clear_error (&error);
      jobs = srv_db_lease_jobs (db, w->owner, batch,
                                srv_workers_lease_us (pool->ctx->config->job_lease_ms, batch),
                                &error);
      if (jobs == NULL)
        {
          /* Usually a busy or briefly unreachable catalog: say so, wait, try again. */
          log_event (G_LOG_LEVEL_MESSAGE, NULL, NULL, "cannot lease jobs", error->message);
          srv_db_wait_events (db, generation, SRV_WORKERS_IDLE_WAIT_US);
          continue;
        }
      if (jobs->len == 0)
        {
          srv_db_wait_events (db, generation, SRV_WORKERS_IDLE_WAIT_US);
          continue;
        }
      process_batch (w, instance, jobs);
    }
  g_atomic_int_set (&w->exited, 1);
  return NULL;
}

static void
worker_free (Worker *w)
{
  g_thread_join (w->thread);
  g_free (w->owner);
  g_free (w);
}

/* Joins workers that exited; returns how many are alive and how many of them active. */
static void
reap (SrvWorkers *pool,
      guint      *alive,
      guint      *active)
{
  *alive = *active = 0;
  for (guint i = 0; i < pool->workers->len;)
    {
      Worker *w = pool->workers->pdata[i];

      if (g_atomic_int_get (&w->exited))
        {
          g_ptr_array_remove_index (pool->workers, i);
          continue;
        }
      (*alive)++;
      if (!g_atomic_int_get (&w->stop))
        (*active)++;
      i++;
    }
}

static void
resize (SrvWorkers *pool,
        guint       target)
{
  guint alive, active;

  reap (pool, &alive, &active);
  while (active < target)
    {
      Worker *w = g_new0 (Worker, 1);
      g_autofree char *name = g_strdup_printf ("worker-%u", pool->next_id);

      w->pool = pool;
      w->owner = g_strdup_printf ("%s/worker-%u", pool->node, pool->next_id++);
      g_ptr_array_add (pool->workers, w);
      w->thread = g_thread_new (name, worker_thread, w);
      active++;
      alive++;
    }
  /* Stop the newest first: the oldest keep their warm engine instances. */
  for (guint i = pool->workers->len; i > 0 && active > target; i--)
    {
      Worker *w = pool->workers->pdata[i - 1];

      if (!g_atomic_int_get (&w->stop))
        {
          g_atomic_int_set (&w->stop, 1);
          active--;
        }
    }
  g_atomic_int_set (&pool->active, active);
  srv_metrics_set (pool->ctx->metrics, "magpied_workers_current", NULL, alive);
}

static void
tick (SrvWorkers *pool)
{
  g_autoptr(GError) error = NULL;
  SrvQueueStats stats = { 0 };
  gint64 outstanding;
  guint desired;

  if (!srv_db_queue_stats (pool->ctx->db, &stats, &error))
    {
      log_event (G_LOG_LEVEL_MESSAGE, NULL, NULL, "cannot read the queue depth",
                 error->message);
      resize (pool, pool->photo ? pool->state.current : 0);
      return;
    }
  /* Leased jobs are work in hand: counting them keeps the pool from shrinking under a batch. */
  outstanding = stats.queued + stats.leased;
  g_atomic_int_set (&pool->depth, (gint) MIN (stats.queued, G_MAXINT));
  desired = srv_autoscale_step (&pool->policy, &pool->state, outstanding,
                                g_get_monotonic_time ());
  srv_metrics_set (pool->ctx->metrics, "magpied_workers_desired", NULL, desired);
  resize (pool, pool->photo ? desired : 0);
}

static gpointer
controller_thread (gpointer data)
{
  SrvWorkers *pool = data;

  g_mutex_lock (&pool->lock);
  while (!pool->stopping)
    {
      gint64 deadline = g_get_monotonic_time () + SRV_WORKERS_TICK_MS * 1000;

      g_mutex_unlock (&pool->lock);
      tick (pool);
      g_mutex_lock (&pool->lock);
      while (!pool->stopping && g_cond_wait_until (&pool->cond, &pool->lock, deadline))
        ;
    }
  g_mutex_unlock (&pool->lock);

  for (guint i = 0; i < pool->workers->len; i++)
    g_atomic_int_set (&((Worker *) pool->workers->pdata[i])->stop, 1);
  g_ptr_array_set_size (pool->workers, 0);  /* joins each */
  srv_metrics_set (pool->ctx->metrics, "magpied_workers_current", NULL, 0);
  return NULL;
}

static SrvModel *
load_model (const char  *configured,
            const char  *name,
            char       **reason)
{
  g_autofree char *path = configured ? g_strdup (configured) : NULL;
  g_autofree char *file = g_strconcat (name, ".onnx", NULL);
  g_autoptr(GError) error = NULL;
  SrvModel *model;

  if (path == NULL)
    path = srv_models_find_default (file);
  if (path == NULL)
    {
      *reason = g_strdup_printf ("no %s model: %s is not installed in %s/models nor built in "
                                 "the source tree; give one with --%s-model",
                                 name, file, PKGDATADIR,
                                 strcmp (name, "photos") == 0 ? "photo" : "digit");
      log_event (G_LOG_LEVEL_INFO, NULL, NULL, "model missing", *reason);
      return NULL;
    }
  model = srv_model_load (name, path, &error);
  if (model == NULL)
    {
      *reason = g_strdup_printf ("the %s model cannot be used: %s", name, error->message);
      log_event (G_LOG_LEVEL_INFO, NULL, NULL, "model broken", *reason);
      return NULL;
    }
  g_log_structured (G_LOG_DOMAIN, G_LOG_LEVEL_INFO, "MODEL", name, "PATH", path,
                    "SHA256", srv_model_get_sha256 (model), "MESSAGE", "model loaded");
  return model;
}

static void
pool_free (SrvWorkers *pool)
{
  g_clear_pointer (&pool->workers, g_ptr_array_unref);
  g_clear_pointer (&pool->photo, srv_model_free);
  g_clear_pointer (&pool->digit, srv_model_free);
  g_clear_pointer (&pool->rules, srv_tag_rules_free);
  g_free (pool->photo_reason);
  g_free (pool->digit_reason);
  g_free (pool->node);
  g_mutex_clear (&pool->lock);
  g_cond_clear (&pool->cond);
  g_free (pool);
}

/* Whether lease owner @owner ("host:pid/worker-N") was a process of this host that is gone. */
static gboolean
owner_is_dead_here (const char *owner)
{
  g_autofree char *prefix = g_strdup_printf ("%s:", g_get_host_name ());
  const char *rest;
  char *end = NULL;
  guint64 pid;

  if (!g_str_has_prefix (owner, prefix))
    return FALSE;
  rest = owner + strlen (prefix);
  pid = g_ascii_strtoull (rest, &end, 10);
  if (end == rest || *end != '/' || pid == 0 || pid > G_MAXINT || (pid_t) pid == getpid ())
    return FALSE;
  return kill ((pid_t) pid, 0) != 0 && errno == ESRCH;
}

/* Jobs a previous run of this node leased and never finished go back to the queue now rather
 * than when their leases run out. A catalog of our own (SQLite) holds no one else's leases; on
 * a shared one only the leases of dead processes of this host are ours to take back (a pod
 * restarted under a new name leaves its leases to expire, as a crashed machine's do). */
static gint64
requeue_previous_run (SrvDb   *db,
                      GError **error)
{
  g_autoptr(GPtrArray) owners = NULL;
  gint64 total = 0;

  if (!srv_db_is_shared (db))
    return srv_db_requeue_leased (db, error);
  owners = srv_db_lease_owners (db, error);
  if (owners == NULL)
    return -1;
  for (guint i = 0; i < owners->len; i++)
    {
      gint64 n;

      if (!owner_is_dead_here (owners->pdata[i]))
        continue;
      n = srv_db_requeue_owner (db, owners->pdata[i], error);
      if (n < 0)
        return -1;
      total += n;
    }
  return total;
}

gboolean
srv_workers_start (SrvContext  *ctx,
                   gboolean     tag,
                   GError     **error)
{
  SrvWorkers *pool;
  const SrvConfig *config = ctx->config;
  SrvTagRules *rules = NULL;
  gint64 requeued = 0;

  g_return_val_if_fail (ctx->workers == NULL, FALSE);

  if (config->tag_rules != NULL)
    {
      rules = srv_tag_rules_load (config->tag_rules, error);
      if (rules == NULL)
        return FALSE;
    }
  if (tag)
    requeued = requeue_previous_run (ctx->db, error);
  if (requeued < 0)
    {
      srv_tag_rules_free (rules);
      g_prefix_error (error, "cannot re-queue the jobs of the previous run: ");
      return FALSE;
    }

  pool = g_new0 (SrvWorkers, 1);
  pool->ctx = ctx;
  pool->rules = rules;
  g_mutex_init (&pool->lock);
  g_cond_init (&pool->cond);
  mp_image_limits_init (&pool->limits);
  pool->node = g_strdup_printf ("%s:%d", g_get_host_name (), (int) getpid ());
  pool->workers = g_ptr_array_new_with_free_func ((GDestroyNotify) worker_free);
  pool->policy.min = config->workers_min;
  pool->policy.max = config->workers_max;
  pool->policy.target = MAX (config->worker_target, 1);
  pool->policy.cooldown_us = (gint64) config->worker_cooldown_ms * 1000;
  pool->photo = load_model (config->photo_model, "photos", &pool->photo_reason);
  pool->digit = load_model (config->digit_model, "digits", &pool->digit_reason);
  ctx->workers = pool;
  if (!tag)
    return TRUE;

  srv_metrics_declare (ctx->metrics, "magpied_workers_current", SRV_METRIC_GAUGE,
                       "Tagging worker threads running", NULL, 0);
  srv_metrics_declare (ctx->metrics, "magpied_workers_desired", SRV_METRIC_GAUGE,
                       "Tagging workers the autoscaler asks for", NULL, 0);
  srv_metrics_declare (ctx->metrics, "magpied_jobs_total", SRV_METRIC_COUNTER,
                       "Tagging jobs finished by this process, by result", NULL, 0);
  srv_metrics_declare (ctx->metrics, "magpied_job_duration_seconds", SRV_METRIC_HISTOGRAM,
                       "Time from a job's batch start to its tags stored (or its failure)",
                       srv_metrics_latency_bounds, srv_metrics_latency_n_bounds);
  for (guint i = 0; i < 3; i++)
    srv_metrics_add (ctx->metrics, "magpied_jobs_total",
                     result_labels (i == 0 ? "done" : i == 1 ? "retried" : "dead"), 0);
  srv_metrics_set (ctx->metrics, "magpied_workers_current", NULL, 0);
  srv_metrics_set (ctx->metrics, "magpied_workers_desired", NULL, 0);

  if (requeued > 0)
    {
      g_autofree char *n = g_strdup_printf ("%" G_GINT64_FORMAT, requeued);
      g_log_structured (G_LOG_DOMAIN, G_LOG_LEVEL_INFO, "JOBS", n,
                        "MESSAGE", "re-queued jobs leased by the previous run");
    }
  ctx->workers = pool;
  pool->controller = g_thread_new ("autoscaler", controller_thread, pool);
  return TRUE;
}

void
srv_workers_stop (SrvContext *ctx)
{
  SrvWorkers *pool = ctx->workers;

  if (pool == NULL)
    return;
  g_mutex_lock (&pool->lock);
  pool->stopping = TRUE;
  g_cond_broadcast (&pool->cond);
  g_mutex_unlock (&pool->lock);
  if (pool->controller != NULL)
    g_thread_join (pool->controller);
  ctx->workers = NULL;
  pool_free (pool);
}

SrvModel *
srv_workers_get_photo_model (SrvWorkers  *workers,
                             const char **reason)
{
  if (reason)
    *reason = workers->photo_reason;
  return workers->photo;
}

SrvModel *
srv_workers_get_digit_model (SrvWorkers  *workers,
                             const char **reason)
{
  if (reason)
    *reason = workers->digit_reason;
  return workers->digit;
}

GArray *
srv_workers_tags_for (SrvWorkers  *workers,
                      const float *probabilities,
                      guint        n_classes)
{
  return srv_tags_from_probabilities (probabilities, n_classes,
                                      srv_model_get_labels (workers->photo), workers->rules,
                                      workers->ctx->config->tag_min_confidence,
                                      workers->ctx->config->tag_top_k);
}

const MpImageLimits *
srv_workers_get_limits (SrvWorkers *workers)
{
  return &workers->limits;
}
