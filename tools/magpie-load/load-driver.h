/* load-driver.h - magpie-load's virtual users: open-loop arrivals on one GMainContext with
 * libsoup 3, each doing what the app does (or one predict/credentials request), plus the
 * /metrics scraper and the progress line */
#pragma once

#include <glib.h>

#include "load-plan.h"
#include "load-report.h"

G_BEGIN_DECLS

typedef enum {
  LOAD_MODE_PHOTOS,       /* identity → credentials → events → PutObject → register → tag */
  LOAD_MODE_DIGITS,       /* POST /v1/predict/digit with an image */
  LOAD_MODE_CREDENTIALS,  /* POST /v1/credentials */
  LOAD_MODE_WATCH,        /* no users: only scrape /metrics (e.g. a queue draining) */
} LoadMode;

/* Images bigger than the server takes are no use to send. */
#define LOAD_PHOTO_MAX_BYTES  (50 * 1024 * 1024)
#define LOAD_PHOTOS_MAX_TOTAL (G_GINT64_CONSTANT (2) * 1024 * 1024 * 1024)
#define LOAD_PHOTOS_MAX_FILES 100000
#define LOAD_MAX_ADDRESSES    250

typedef struct {
  char   *name;
  char   *extension;     /* lower case, as the object key carries it */
  char   *content_type;
  GBytes *bytes;
  char   *sha256;        /* hex; the object key and the signed payload hash */
} LoadPhoto;

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

/* Reads the .jpg, .jpeg, .png and .webp files of @dir, sorted by name; of files with the same
 * bytes only one is kept (they would be one object). Returns NULL and sets @error when there
 * are none or a limit above is passed. */
GPtrArray *load_photos_read (const char         *dir,
                             GError            **error);
const char *load_mode_name  (LoadMode            mode);

/* Runs the plan against the server, recording into @report. Returns FALSE and sets @error
 * when the run could not start (no server, no token for the shared modes); virtual users that
 * fail are samples, not errors. */
gboolean   load_driver_run  (const LoadOptions  *options,
                             LoadReport         *report,
                             GError            **error);

G_END_DECLS
