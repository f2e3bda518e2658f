/* srv-autoscale.h - the worker pool's scaling decision, a pure function of the queue and time
 *
 * After the controllers of the seed systems (Kubernetes HPA, KEDA): the desired size follows
 * the work outstanding at once when it grows, and only after a quiet cooldown when it shrinks,
 * so a bursty queue does not make threads flap.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Jobs one worker should have in front of it before another one is worth starting: a worker
 * takes micro-batches of up to SRV_WORKERS_BATCH_MAX photos, so 8 keeps each one busy with
 * full batches without queueing much latency behind it. */
#define SRV_AUTOSCALE_TARGET_DEFAULT   8
/* Scale in only after the queue has wanted fewer workers for this long: the Kubernetes HPA's
 * scale-down stabilisation is 5 min for whole pods; a thread is far cheaper to start again,
 * and uploads arrive in bursts seconds apart, so 30 s. */
#define SRV_AUTOSCALE_COOLDOWN_DEFAULT_MS 30000

typedef struct {
  guint  min;          /* 1 <= min <= max */
  guint  max;
  guint  target;       /* jobs per worker, >= 1 */
  gint64 cooldown_us;  /* >= 0 */
} SrvAutoscalePolicy;

typedef struct {
  guint  current;      /* the size last decided; 0 before the first decision */
  gint64 last_high_us; /* when the queue last wanted at least @current workers */
} SrvAutoscaleState;

/* clamp(ceil(@depth / target), min, max), ignoring time. */
guint srv_autoscale_desired (const SrvAutoscalePolicy *policy,
                             gint64                    depth);
/* One controller tick at monotonic time @now_us: returns the new size and updates @state.
 * Grows to the desired size at once; shrinks to it only when the desired size has stayed
 * below the current one for the whole cooldown. */
guint srv_autoscale_step    (const SrvAutoscalePolicy *policy,
                             SrvAutoscaleState        *state,
                             gint64                    depth,
                             gint64                    now_us);

G_END_DECLS
