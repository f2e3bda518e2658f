/* load-driver.h - magpie-load's virtual users: open-loop arrivals on one GMainContext with
 * libsoup 3, each doing what the app does (or one predict/credentials request), plus the
 * /metrics scraper and the progress line */
#pragma once

#include <glib.h>

#include "load-photos.h"
#include "load-plan.h"
#include "load-report.h"

G_BEGIN_DECLS

typedef enum {
  LOAD_MODE_PHOTOS,       /* identity → credentials → events → PutObject → register → tag */
  LOAD_MODE_DIGITS,       /* POST /v1/predict/digit with an image */
  LOAD_MODE_CREDENTIALS,  /* POST /v1/credentials */
  LOAD_MODE_WATCH,        /* no users: only scrape /metrics (e.g. a queue draining) */
} LoadMode;

/* Source addresses 127.0.1.1 ... 127.0.1.250: one /24 of loopback is plenty of clients. */
#define LOAD_MAX_ADDRESSES 250

typedef struct {
  const char     *url;              /* base URL, without a trailing slash */
  LoadMode        mode;
  const LoadPlan *plan;
  GPtrArray      *photos;           /* LoadPhoto*; may be empty in credentials and watch modes */
  guint           concurrency;      /* virtual users in flight at most; arrivals past it drop */
  guint           photos_per_user;
  double          timeout_s;        /* per virtual user */
  guint           n_addresses;      /* loopback source addresses to spread users over; 0 none */
  double          scrape_interval_s;
  double          linger_s;         /* keep scraping this long after the last user */
  gboolean        progress_tty;     /* \r-updated progress line (else a line every 5 s) */
} LoadOptions;

const char *load_mode_name  (LoadMode            mode);

/* Runs the plan against the server, recording into @report. Returns FALSE and sets @error
 * when the run could not start (no server, no token for the shared modes); virtual users that
 * fail are samples, not errors. */
gboolean   load_driver_run  (const LoadOptions  *options,
                             LoadReport         *report,
                             GError            **error);

G_END_DECLS
