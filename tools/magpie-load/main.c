/* magpie-load - a workload generator for magpied: open-loop phases of virtual users that do
 * what the app does (or hammer one endpoint), with samples.json, summary.md and charts (SVG,
 * PNG) in --out. Exit status: 0 after a run (failed requests are results, not errors), 1 when
 * the run could not start or its files could not be written, 2 for bad arguments. */
#include "config.h"

#include <errno.h>
#include <gio/gio.h>
#include <glib/gstdio.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "load-chart.h"
#include "load-driver.h"
#include "load-plan.h"
#include "load-report.h"

#define EXIT_RUN_FAILED 1
#define EXIT_BAD_USAGE  2

#define DEFAULT_PHASES      "ramp:30s:0-50/s,steady:60s:50/s,ramp:30s:50-0/s"
/* Loopback targets: virtual users come from this many addresses, as real users would; the
 * server limits guest identities per address (a burst of 100, then 10/s). */
#define DEFAULT_LOOPBACK_ADDRESSES 32

static char *opt_url;
static char *opt_photos;
static char *opt_phases;
static char *opt_mode;
static char *opt_out;
static char *opt_addresses;
static char *opt_replot;
static int opt_concurrency = 200;
static int opt_photos_per_user = 1;
static double opt_timeout = 60;
static double opt_scrape = 1;
static double opt_linger;
static double opt_window = 10;

static const GOptionEntry entries[] = {
  { "url", 'u', 0, G_OPTION_ARG_STRING, &opt_url, "magpied's base URL", "URL" },
  { "photos", 'p', 0, G_OPTION_ARG_FILENAME, &opt_photos,
    "Directory of .jpg/.png/.webp images to upload (photos) or classify (digits)", "DIR" },
  { "phases", 0, 0, G_OPTION_ARG_STRING, &opt_phases,
    "Arrival phases (default " DEFAULT_PHASES "); also steady:60s:50/s and pause:10s",
    "PHASES" },
  { "concurrency", 'c', 0, G_OPTION_ARG_INT, &opt_concurrency,
    "Virtual users in flight at most; later arrivals are dropped and counted (200)", "N" },
  { "mode", 'm', 0, G_OPTION_ARG_STRING, &opt_mode,
    "photos (the app's upload and tag flow), digits (/v1/predict/digit), credentials "
    "(/v1/credentials) or watch (no users, only /metrics); default photos", "MODE" },
  { "out", 'o', 0, G_OPTION_ARG_FILENAME, &opt_out,
    "Where samples.json, summary.md and the charts go (default magpie-load-TIMESTAMP)", "DIR" },
  { "photos-per-user", 0, 0, G_OPTION_ARG_INT, &opt_photos_per_user,
    "Photos each virtual user uploads, one after another (1)", "N" },
  { "timeout", 't', 0, G_OPTION_ARG_DOUBLE, &opt_timeout,
    "Seconds a virtual user may take in all before it counts as timed out (60)", "S" },
  { "source-addresses", 0, 0, G_OPTION_ARG_STRING, &opt_addresses,
    "Spread users over N loopback addresses 127.0.1.x (default auto: 32 for a 127.x URL, "
    "else 0)", "N|auto" },
  { "scrape-interval", 0, 0, G_OPTION_ARG_DOUBLE, &opt_scrape,
    "Seconds between scrapes of /metrics (1)", "S" },
  { "linger", 0, 0, G_OPTION_ARG_DOUBLE, &opt_linger,
    "Keep scraping /metrics this long after the last user, to watch workers scale in (0)",
    "S" },
  { "window", 0, 0, G_OPTION_ARG_DOUBLE, &opt_window,
    "Seconds per row of the summary's queue table (10)", "S" },
  { "replot", 0, 0, G_OPTION_ARG_FILENAME, &opt_replot,
    "Run nothing: redraw the charts and summary.md of an earlier run from DIR/samples.json "
    "(into --out, default DIR)", "DIR" },
  { NULL }
};

static int G_GNUC_PRINTF (1, 2)
usage_error (const char *format,
             ...)
{
  g_autofree char *message = NULL;
  va_list ap;

  va_start (ap, format);
  message = g_strdup_vprintf (format, ap);
  va_end (ap);
  fprintf (stderr, "magpie-load: %s\n", message);
  return EXIT_BAD_USAGE;
}

/* samples.json (unless replotting), the charts, then summary.md, which links them. */
static int
write_outputs (LoadReport *report,
               const char *dir,
               gboolean    with_json)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *json_path = g_build_filename (dir, "samples.json", NULL);
  g_autofree char *summary_path = g_build_filename (dir, "summary.md", NULL);

  if ((with_json && !load_report_write_json (report, json_path, &error)) ||
      !load_chart_write_all (report, dir, &error) ||
      !load_report_write_summary (report, summary_path, load_chart_names, &error))
    {
      fprintf (stderr, "magpie-load: %s\n", error->message);
      return EXIT_RUN_FAILED;
    }
  fprintf (stderr, "magpie-load: %u samples, %u errors; report in %s\n", report->samples->len,
           load_report_count_errors (report), summary_path);
  return EXIT_SUCCESS;
}

static int
replot (const char *dir)
{
  g_autofree char *json_path = g_build_filename (dir, "samples.json", NULL);
  g_autoptr(GError) error = NULL;
  g_autoptr(LoadPlan) plan = NULL;
  g_autoptr(LoadReport) report = load_report_read_json (json_path, &plan, &error);

  if (report == NULL)
    return usage_error ("--replot: %s", error->message);
  report->window_s = opt_window;
  if (opt_out != NULL && g_mkdir_with_parents (opt_out, 0755) != 0)
    {
      fprintf (stderr, "magpie-load: cannot create --out %s: %s\n", opt_out, g_strerror (errno));
      return EXIT_RUN_FAILED;
    }
  return write_outputs (report, opt_out ? opt_out : dir, FALSE);
}

/* /proc/loadavg's 1, 5 and 15 minute figures into @out; they stay NAN where it cannot be read. */
static void
read_loadavg (double out[3])
{
  g_autofree char *text = NULL;

  if (!g_file_get_contents ("/proc/loadavg", &text, NULL, NULL) ||
      sscanf (text, "%lf %lf %lf", &out[0], &out[1], &out[2]) != 3)
    out[0] = out[1] = out[2] = NAN;
}

static char *
command_line (int    argc,
              char **argv)
{
  g_autoptr(GString) line = g_string_new (NULL);

  for (int i = 0; i < argc; i++)
    {
      gboolean plain = argv[i][0] != '\0' && strspn (argv[i], "abcdefghijklmnopqrstuvwxyz"
                                                     "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                                                     "-_=./:,") == strlen (argv[i]);
      g_autofree char *quoted = plain ? g_strdup (argv[i]) : g_shell_quote (argv[i]);

      g_string_append_printf (line, "%s%s", i ? " " : "", quoted);
    }
  return g_string_free (g_steal_pointer (&line), FALSE);
}

/* 127.x.y.z literals only: a name may resolve to ::1, which an IPv4 source cannot reach. */
static gboolean
is_loopback_v4 (GUri *uri)
{
  g_autoptr(GInetAddress) address = g_inet_address_new_from_string (g_uri_get_host (uri));

  return address != NULL && g_inet_address_get_family (address) == G_SOCKET_FAMILY_IPV4 &&
         g_inet_address_get_is_loopback (address);
}

int
main (int    argc,
      char **argv)
{
  g_autoptr(GOptionContext) ctx = g_option_context_new ("--url URL --photos DIR - load "
                                                        "magpied the way the app does");
  g_autoptr(GError) error = NULL;
  g_autoptr(LoadPlan) plan = NULL;
  g_autoptr(LoadReport) report = NULL;
  g_autoptr(GPtrArray) photos = NULL;
  g_autoptr(GUri) uri = NULL;
  g_autofree char *cmd = command_line (argc, argv);
  g_autofree char *url = NULL;
  LoadOptions options = { 0 };
  struct rusage usage;
  LoadMode mode;

  g_option_context_add_main_entries (ctx, entries, NULL);
  g_option_context_set_description (ctx,
    "Each phase is ramp:DURATION:FROM-TO/s, steady:DURATION:RATE/s or pause:DURATION; rates\n"
    "are virtual users arriving per second (open loop). A photos-mode user gets a guest\n"
    "identity and credentials, opens GET /v1/events, PUTs its photos with SigV4, registers\n"
    "them and waits for each photo.tagged.");
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    return usage_error ("%s (see --help)", error->message);
  if (argc > 1)
    return usage_error ("unexpected argument '%s' (see --help)", argv[1]);
  if (!(opt_window >= 1 && opt_window <= 3600))
    return usage_error ("--window %g: use 1 to 3600 seconds", opt_window);
  if (opt_replot != NULL)
    return replot (opt_replot);
  if (opt_url == NULL)
    return usage_error ("--url is required, e.g. --url http://127.0.0.1:8080");
  uri = g_uri_parse (opt_url, G_URI_FLAGS_NONE, NULL);
  if (uri == NULL || g_uri_get_host (uri) == NULL || g_uri_get_host (uri)[0] == '\0' ||
      (g_strcmp0 (g_uri_get_scheme (uri), "http") != 0 &&
       g_strcmp0 (g_uri_get_scheme (uri), "https") != 0))
    return usage_error ("--url '%s' is not an http:// or https:// URL", opt_url);
  url = g_strdup (opt_url);
  while (g_str_has_suffix (url, "/"))
    url[strlen (url) - 1] = '\0';

  if (opt_mode == NULL || strcmp (opt_mode, "photos") == 0)
    mode = LOAD_MODE_PHOTOS;
  else if (strcmp (opt_mode, "digits") == 0)
    mode = LOAD_MODE_DIGITS;
  else if (strcmp (opt_mode, "credentials") == 0)
    mode = LOAD_MODE_CREDENTIALS;
  else if (strcmp (opt_mode, "watch") == 0)
    mode = LOAD_MODE_WATCH;
  else
    return usage_error ("--mode '%s': use photos, digits, credentials or watch", opt_mode);

  plan = load_plan_parse (opt_phases ? opt_phases : DEFAULT_PHASES, &error);
  if (plan == NULL)
    return usage_error ("--phases: %s", error->message);
  if (mode == LOAD_MODE_WATCH)
    for (guint i = 0; i < plan->n_phases; i++)
      if (strcmp (plan->phases[i].kind, "pause") != 0)
        return usage_error ("--mode watch sends no users: give only pause phases, e.g. "
                            "--phases pause:120s");
  if (opt_concurrency < 1 || opt_concurrency > 100000)
    return usage_error ("--concurrency %d: use 1 to 100000", opt_concurrency);
  if (opt_photos_per_user < 1 || opt_photos_per_user > 1000)
    return usage_error ("--photos-per-user %d: use 1 to 1000", opt_photos_per_user);
  if (!(opt_timeout >= 0.1 && opt_timeout <= 24 * 3600))
    return usage_error ("--timeout %g: use 0.1 to 86400 seconds", opt_timeout);
  if (!(opt_scrape >= 0.1 && opt_scrape <= 3600))
    return usage_error ("--scrape-interval %g: use 0.1 to 3600 seconds", opt_scrape);
  if (!(opt_linger >= 0 && opt_linger <= 24 * 3600))
    return usage_error ("--linger %g: use 0 to 86400 seconds", opt_linger);

  if (opt_addresses == NULL || strcmp (opt_addresses, "auto") == 0)
    options.n_addresses = is_loopback_v4 (uri) ? DEFAULT_LOOPBACK_ADDRESSES : 0;
  else
    {
      guint64 n;

      if (!g_ascii_string_to_unsigned (opt_addresses, 10, 0, LOAD_MAX_ADDRESSES, &n, NULL))
        return usage_error ("--source-addresses '%s': use auto or 0 to %d", opt_addresses,
                            LOAD_MAX_ADDRESSES);
      if (n > 0 && !is_loopback_v4 (uri))
        return usage_error ("--source-addresses needs a 127.x.y.z URL (the addresses are "
                            "127.0.1.x on loopback)");
      options.n_addresses = (guint) n;
    }

  if (mode == LOAD_MODE_PHOTOS || mode == LOAD_MODE_DIGITS)
    {
      if (opt_photos == NULL)
        return usage_error ("--photos DIR is required in %s mode", load_mode_name (mode));
      photos = load_photos_read (opt_photos, &error);
      if (photos == NULL)
        return usage_error ("--photos: %s", error->message);
      /* a user's photos must differ: the same bytes twice are one object key, one photo */
      if (mode == LOAD_MODE_PHOTOS && photos->len < (guint) opt_photos_per_user)
        return usage_error ("--photos-per-user %d needs at least that many images; %s has %u",
                            opt_photos_per_user, opt_photos, photos->len);
    }
  else
    photos = g_ptr_array_new ();

  if (opt_out == NULL)
    {
      g_autoptr(GDateTime) now = g_date_time_new_now_local ();

      opt_out = g_date_time_format (now, "magpie-load-%Y%m%d-%H%M%S");
    }
  if (g_mkdir_with_parents (opt_out, 0755) != 0)
    {
      fprintf (stderr, "magpie-load: cannot create --out %s: %s\n", opt_out, g_strerror (errno));
      return EXIT_RUN_FAILED;
    }

  options.url = url;
  options.mode = mode;
  options.plan = plan;
  options.photos = photos;
  options.concurrency = (guint) opt_concurrency;
  options.photos_per_user = (guint) opt_photos_per_user;
  options.timeout_s = opt_timeout;
  options.scrape_interval_s = opt_scrape;
  options.linger_s = opt_linger;
  options.progress_tty = isatty (STDERR_FILENO);

  report = load_report_new (plan, load_mode_name (mode), url, cmd);
  report->window_s = opt_window;
  read_loadavg (report->loadavg[0]);
  if (!load_driver_run (&options, report, &error))
    {
      fprintf (stderr, "magpie-load: %s\n", error->message);
      return EXIT_RUN_FAILED;
    }

  read_loadavg (report->loadavg[1]);
  if (getrusage (RUSAGE_SELF, &usage) == 0)
    report->cpu_s = usage.ru_utime.tv_sec + usage.ru_utime.tv_usec / 1e6 +
                    usage.ru_stime.tv_sec + usage.ru_stime.tv_usec / 1e6;

  return write_outputs (report, opt_out, TRUE);
}
