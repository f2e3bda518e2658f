/* srv-metrics.h - counters, gauges and histograms rendered in the Prometheus text format
 *
 * Families are declared once (name, type, help, histogram bounds); series within a family are
 * keyed by their label text, already formatted as Prometheus writes it: `method="GET",code="200"`
 * (NULL or "" for none; build it with srv_metrics_labels()). Every call is thread-safe.
 * Collectors run at scrape time so gauges that are cheap to read (queue depth, subscribers)
 * are read then, not kept up to date on every change.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef enum {
  SRV_METRIC_COUNTER,
  SRV_METRIC_GAUGE,
  SRV_METRIC_HISTOGRAM,
} SrvMetricType;

typedef struct _SrvMetrics SrvMetrics;

typedef void (*SrvMetricsCollectFunc) (SrvMetrics *metrics,
                                       gpointer    user_data);

SrvMetrics *srv_metrics_new               (void);
void        srv_metrics_free              (SrvMetrics            *metrics);

/* Declaring a family twice with the same type is harmless; @bounds (ascending, without +Inf)
 * only for histograms. */
void        srv_metrics_declare           (SrvMetrics            *metrics,
                                           const char            *name,
                                           SrvMetricType          type,
                                           const char            *help,
                                           const double          *bounds,
                                           guint                  n_bounds);
void        srv_metrics_add               (SrvMetrics            *metrics,
                                           const char            *name,
                                           const char            *labels,
                                           double                 value);
void        srv_metrics_set               (SrvMetrics            *metrics,
                                           const char            *name,
                                           const char            *labels,
                                           double                 value);
void        srv_metrics_observe           (SrvMetrics            *metrics,
                                           const char            *name,
                                           const char            *labels,
                                           double                 value);
/* The current value of a counter or gauge series (tests, the autoscaler's own view); 0 when
 * the series does not exist. */
double      srv_metrics_get               (SrvMetrics            *metrics,
                                           const char            *name,
                                           const char            *labels);
void        srv_metrics_add_collector     (SrvMetrics            *metrics,
                                           SrvMetricsCollectFunc  func,
                                           gpointer               user_data);
/* Runs the collectors, then writes every family: # HELP, # TYPE, then the series sorted by
 * labels; histograms as _bucket{le=...} (cumulative), _sum and _count. */
char       *srv_metrics_render            (SrvMetrics            *metrics);

/* `a="x",b="y"` from NULL-terminated name, value pairs, values escaped as the format wants. */
char       *srv_metrics_labels            (const char            *first_name,
                                           ...) G_GNUC_NULL_TERMINATED;

/* Bounds for request and job latencies in seconds: 1 ms to 10 s. */
extern const double srv_metrics_latency_bounds[];
extern const guint  srv_metrics_latency_n_bounds;

G_DEFINE_AUTOPTR_CLEANUP_FUNC (SrvMetrics, srv_metrics_free)

G_END_DECLS
