/* srv-workers.h - the tagging worker pool: threads that lease jobs, decode, run the photo
 * model and store tags, sized by the autoscaler from the queue depth
 *
 * A controller thread ticks every SRV_WORKERS_TICK_MS: it reads the queue, asks
 * srv_autoscale_step() for a size and starts or stops worker threads to match. A worker told
 * to stop finishes the batch it holds. Without a photo model the pool starts no workers: jobs
 * stay queued (none is failed for a missing model) until a magpied with the model runs.
 */
#pragma once

#include "srv-context.h"
#include "mp-image.h"
#include "srv-models.h"

G_BEGIN_DECLS

#define SRV_WORKERS_TICK_MS 250      /* scale-out reacts within a quarter second */
/* Up to this many photos per inference when the queue is deep: a batch amortises the
 * engine's per-call cost; past 8 images of 224² the win is gone and a batch's latency grows. */
#define SRV_WORKERS_BATCH_MAX 8
/* An idle worker waits for catalog events (a new photo) this long before looking again, for
 * retries whose backoff ran out (no event marks those) and to notice a stop. */
#define SRV_WORKERS_IDLE_WAIT_US (500 * 1000)  /* µs */

/* Loads the models (a missing or broken one is logged, not fatal: see above) and the tag rules
 * (fatal when given and broken). With @tag it also re-queues jobs leased by a previous run,
 * declares the metrics and starts the controller; without (--role=api) the pool only serves
 * the models to the predict endpoints. Sets ctx->workers. */
gboolean     srv_workers_start          (SrvContext  *ctx,
                                         gboolean     tag,
                                         GError     **error);
/* Stops the controller and every worker (each finishes its batch), joins them and frees the
 * pool; call before the catalog and store close. Safe with ctx->workers == NULL. */
void         srv_workers_stop           (SrvContext  *ctx);

/* The lease a batch of @batch photos takes: @lease_ms plus a third of it per photo (see
 * SRV_CONFIG_JOB_LEASE_DEFAULT_S). */
gint64       srv_workers_lease_us       (guint        lease_ms,
                                         guint        batch);

/* The served models, or NULL with the reason (for 503 answers). */
SrvModel    *srv_workers_get_photo_model (SrvWorkers *workers,
                                          const char **reason);
SrvModel    *srv_workers_get_digit_model (SrvWorkers *workers,
                                          const char **reason);
/* Tags for one probability vector of the photo model, with the configured rules. */
GArray      *srv_workers_tags_for       (SrvWorkers  *workers,
                                         const float *probabilities,
                                         guint        n_classes);
const MpImageLimits *srv_workers_get_limits (SrvWorkers *workers);

G_END_DECLS
