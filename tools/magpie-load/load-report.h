/* load-report.h - what a magpie-load run measured: every sample, the /metrics scrapes, and
 * the files made from them (samples.json, summary.md). No sockets here; the charts are in
 * load-chart.h. */
#pragma once

#include <glib.h>

#include "load-plan.h"

G_BEGIN_DECLS

typedef enum {
  LOAD_KIND_IDENTITY,     /* POST /v1/identities */
  LOAD_KIND_CREDENTIALS,  /* POST /v1/credentials */
  LOAD_KIND_EVENTS,       /* GET /v1/events until its headers arrive */
  LOAD_KIND_PUT,          /* SigV4 PutObject */
  LOAD_KIND_REGISTER,     /* POST /v1/photos */
  LOAD_KIND_TAG,          /* from the PutObject's start to the photo's photo.tagged event */
  LOAD_KIND_SESSION,      /* one virtual user, arrival to its last tag */
  LOAD_KIND_PREDICT,      /* POST /v1/predict/digit */
  LOAD_N_KINDS
} LoadKind;

typedef struct {
  double       t;           /* when it started, seconds from the start of the run */
  double       latency_ms;
  int          phase;       /* the plan phase its virtual user arrived in */
  LoadKind     kind;
  guint        status;      /* HTTP status; 0 when there was no HTTP answer */
  const char  *error;       /* interned class ("http-503", "timeout", ...); NULL: success */
  char        *detail;      /* what the error said, at most LOAD_DETAIL_MAX bytes */
} LoadSample;

#define LOAD_DETAIL_MAX 160

/* One scrape of /metrics; NAN where the server did not report the series. */
typedef struct {
  double t;
  double queue_depth;      /* magpied_queue_depth */
  double queue_leased;     /* magpied_queue_leased */
  double workers;          /* magpied_workers_current */
  double workers_desired;  /* magpied_workers_desired */
  double jobs_done;        /* magpied_jobs_total{result="done"} */
  double sse_subscribers;  /* magpied_sse_subscribers */
} LoadScrape;

typedef struct {
  const LoadPlan *plan;
  char           *mode;          /* photos, digits, credentials */
  char           *url;
  char           *command_line;
  GDateTime      *started_at;
  double          elapsed_s;     /* from the start until the last virtual user finished */
  guint           concurrency;
  guint           n_addresses;   /* source addresses the virtual users came from */
  guint           scrape_failures;
  double          cpu_s;         /* magpie-load's own user + system CPU time, to show it kept up */
  double          window_s;      /* the queue table's window */
  double          loadavg[2][3]; /* the machine's load average (1, 5, 15 min) at the start and
                                  * the end of the run; NAN when unknown */
  LoadKind        main_kind;     /* what "latency" means in this mode (tag, predict, ...) */
  LoadKind        session_kind;  /* one sample per virtual user */
  GArray         *samples;       /* LoadSample */
  GArray         *scrapes;       /* LoadScrape */
} LoadReport;

const char *load_kind_name          (LoadKind          kind);
/* The kind named @name; FALSE when there is none. */
gboolean    load_kind_from_name     (const char       *name,
                                     LoadKind         *out);
LoadReport *load_report_new         (const LoadPlan   *plan,
                                     const char       *mode,
                                     const char       *url,
                                     const char       *command_line);
void        load_report_free        (LoadReport       *report);
/* @error_class NULL records a success; it is interned, @detail copied (and cut). */
void        load_report_add         (LoadReport       *report,
                                     double            t,
                                     int               phase,
                                     LoadKind          kind,
                                     double            latency_ms,
                                     guint             status,
                                     const char       *error_class,
                                     const char       *detail);
void        load_report_add_scrape  (LoadReport       *report,
                                     const LoadScrape *scrape);
guint       load_report_count_errors (const LoadReport *report);

/* Latencies (ms) of the successful samples of @kind that arrived in @phase (-1: any) and, if
 * @to > @from, ended in [@from, @to) seconds; sorted ascending. */
GArray     *load_report_latencies   (const LoadReport *report,
                                     int               phase,
                                     LoadKind          kind,
                                     double            from,
                                     double            to);
/* Nearest-rank percentile (0 < @q <= 1) of an ascending array; NAN when it is empty. */
double      load_percentile         (const GArray     *sorted,
                                     double            q);

/* Reads a Prometheus text exposition into @out (series it lacks stay NAN). Returns FALSE
 * when no line of @text is a sample (not /metrics at all). */
gboolean    load_scrape_parse       (const char       *text,
                                     LoadScrape       *out);

/* Reads a samples.json written by load_report_write_json() back, with the plan it names in
 * *@out_plan (the report borrows it). Returns NULL and sets @error when it is not one. */
LoadReport *load_report_read_json     (const char       *path,
                                       LoadPlan        **out_plan,
                                       GError          **error);
gboolean    load_report_write_json    (const LoadReport *report,
                                       const char       *path,
                                       GError          **error);
gboolean    load_report_write_summary (const LoadReport *report,
                                       const char       *path,
                                       const char *const *charts,
                                       GError          **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (LoadReport, load_report_free)

G_END_DECLS
