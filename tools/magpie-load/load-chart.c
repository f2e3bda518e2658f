/* load-chart.c - time-series panels with cairo: one drawing routine, two surfaces (SVG, PNG) */
#include "config.h"

#include "load-chart.h"

#include <cairo-svg.h>
#include <cairo.h>
#include <gio/gio.h>
#include <math.h>
#include <string.h>

#define CHART_W        900
#define CHART_H        320
#define CHART_FONT     "DejaVu Sans"
#define CHART_MAX_BINS 300   /* finer bins than this are wider than a pixel column pair */

const char *const load_chart_names[] = { "requests", "latency", "queue", "dashboard", NULL };

typedef struct {
  char     *label;
  double    rgb[3];
  gboolean  right;    /* on the right-hand axis */
  gboolean  dashed;
  GArray   *x;
  GArray   *y;        /* NAN breaks the line */
} Series;

typedef struct {
  char           *title;
  const char     *y_label;
  const char     *y2_label;  /* NULL: no right-hand axis */
  double          x_max;
  gboolean        counts;    /* both axes count things: whole-number ticks */
  const LoadPlan *plan;
  GPtrArray      *series;
} Chart;

static const double palette[][3] = {
  { 0.11, 0.44, 0.85 },  /* blue */
  { 0.90, 0.38, 0.00 },  /* orange */
  { 0.16, 0.62, 0.30 },  /* green */
  { 0.80, 0.15, 0.18 },  /* red */
  { 0.50, 0.33, 0.70 },  /* purple */
  { 0.45, 0.45, 0.45 },  /* grey */
};

static void
series_free (gpointer data)
{
  Series *s = data;

  g_free (s->label);
  g_array_unref (s->x);
  g_array_unref (s->y);
  g_free (s);
}

static Series *
chart_add (Chart      *chart,
           const char *label,
           guint       colour,
           gboolean    right,
           gboolean    dashed)
{
  Series *s = g_new0 (Series, 1);

  s->label = g_strdup (label);
  memcpy (s->rgb, palette[colour % G_N_ELEMENTS (palette)], sizeof s->rgb);
  s->right = right;
  s->dashed = dashed;
  s->x = g_array_new (FALSE, FALSE, sizeof (double));
  s->y = g_array_new (FALSE, FALSE, sizeof (double));
  g_ptr_array_add (chart->series, s);
  return s;
}

static void
series_point (Series *s,
              double  x,
              double  y)
{
  g_array_append_val (s->x, x);
  g_array_append_val (s->y, y);
}

/* 1, 2 or 5 times a power of ten, at least @raw. */
static double
nice_step (double raw)
{
  double p = pow (10, floor (log10 (raw)));
  double f = raw / p;

  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p;
}

static double
axis_max (const Chart *chart,
          gboolean     right)
{
  double m = 0;

  for (guint i = 0; i < chart->series->len; i++)
    {
      const Series *s = chart->series->pdata[i];

      if (s->right != right)
        continue;
      for (guint k = 0; k < s->y->len; k++)
        {
          double v = g_array_index (s->y, double, k);

          if (!isnan (v) && v > m)
            m = v;
        }
    }
  return m > 0 ? m : 1;
}

static void
text_at (cairo_t    *cr,
         double      x,
         double      y,
         double      align,   /* 0 left, 0.5 centre, 1 right */
         const char *text)
{
  cairo_text_extents_t ext;

  cairo_text_extents (cr, text, &ext);
  cairo_move_to (cr, x - align * ext.x_advance, y);
  cairo_show_text (cr, text);
}

static void
format_tick (char   *buf,
             gsize   size,
             double  v,
             double  step)
{
  if (step >= 1 || v == 0)
    g_snprintf (buf, size, "%.0f", v);
  else
    g_snprintf (buf, size, "%.*f", (int) ceil (-log10 (step)), v);
}

static void
chart_draw (const Chart *chart,
            cairo_t     *cr,
            double       ox,
            double       oy,
            double       w,
            double       h)
{
  const double left = 64, right = chart->y2_label ? 64 : 24, top = 52, bottom = 40;
  double px = ox + left, py = oy + top, pw = w - left - right, ph = h - top - bottom;
  double x_step = nice_step (MAX (chart->x_max, 1) / 10);
  double x_max = MAX (chart->x_max, 1);
  double y_max[2], y_step[2];
  double lx = ox + left;

  /* headroom above the highest point, so a flat line at the maximum is not the frame */
  for (int a = 0; a < 2; a++)
    {
      double top_value = axis_max (chart, a) * 1.08;

      y_step[a] = nice_step (top_value / 5);
      if (chart->counts)
        y_step[a] = MAX (y_step[a], 1);
      y_max[a] = ceil (top_value / y_step[a]) * y_step[a];
    }

  cairo_save (cr);
  cairo_rectangle (cr, ox, oy, w, h);
  cairo_set_source_rgb (cr, 1, 1, 1);
  cairo_fill (cr);
  cairo_select_font_face (cr, CHART_FONT, CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_BOLD);
  cairo_set_font_size (cr, 14);
  cairo_set_source_rgb (cr, 0.1, 0.1, 0.1);
  text_at (cr, ox + 12, oy + 20, 0, chart->title);

  /* legend under the title */
  cairo_select_font_face (cr, CHART_FONT, CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
  cairo_set_font_size (cr, 11);
  for (guint i = 0; i < chart->series->len; i++)
    {
      const Series *s = chart->series->pdata[i];
      cairo_text_extents_t ext;

      cairo_set_source_rgb (cr, s->rgb[0], s->rgb[1], s->rgb[2]);
      cairo_set_line_width (cr, 2);
      cairo_set_dash (cr, (double[]) { 4, 3 }, s->dashed ? 2 : 0, 0);
      cairo_move_to (cr, lx, oy + 36);
      cairo_line_to (cr, lx + 18, oy + 36);
      cairo_stroke (cr);
      cairo_set_source_rgb (cr, 0.2, 0.2, 0.2);
      cairo_text_extents (cr, s->label, &ext);
      text_at (cr, lx + 22, oy + 40, 0, s->label);
      lx += 22 + ext.x_advance + 16;
    }
  cairo_set_dash (cr, NULL, 0, 0);

  /* grid, ticks and axis labels */
  cairo_set_line_width (cr, 1);
  for (double v = 0; v <= y_max[0] + y_step[0] / 2; v += y_step[0])
    {
      double y = py + ph - v / y_max[0] * ph;
      char buf[32];

      cairo_set_source_rgb (cr, 0.9, 0.9, 0.9);
      cairo_move_to (cr, px, round (y) + 0.5);
      cairo_line_to (cr, px + pw, round (y) + 0.5);
      cairo_stroke (cr);
      cairo_set_source_rgb (cr, 0.35, 0.35, 0.35);
      format_tick (buf, sizeof buf, v, y_step[0]);
      text_at (cr, px - 6, y + 4, 1, buf);
    }
  if (chart->y2_label)
    for (double v = 0; v <= y_max[1] + y_step[1] / 2; v += y_step[1])
      {
        char buf[32];

        format_tick (buf, sizeof buf, v, y_step[1]);
        text_at (cr, px + pw + 6, py + ph - v / y_max[1] * ph + 4, 0, buf);
      }
  for (double v = 0; v <= x_max + 1e-9; v += x_step)
    {
      double x = px + v / x_max * pw;
      char buf[32];

      cairo_set_source_rgb (cr, 0.35, 0.35, 0.35);
      cairo_move_to (cr, round (x) + 0.5, py + ph);
      cairo_line_to (cr, round (x) + 0.5, py + ph + 4);
      cairo_stroke (cr);
      format_tick (buf, sizeof buf, v, x_step);
      text_at (cr, x, py + ph + 16, 0.5, buf);
    }
  text_at (cr, px + pw / 2, oy + h - 6, 0.5, "seconds since the start");
  /* rotate about the label's own centre */
  cairo_save (cr);
  cairo_translate (cr, ox + 16, py + ph / 2);
  cairo_rotate (cr, -G_PI / 2);
  text_at (cr, 0, 0, 0.5, chart->y_label);
  cairo_restore (cr);
  if (chart->y2_label)
    {
      cairo_save (cr);
      cairo_translate (cr, ox + w - 14, py + ph / 2);
      cairo_rotate (cr, G_PI / 2);
      text_at (cr, 0, 0, 0.5, chart->y2_label);
      cairo_restore (cr);
    }

  /* phase boundaries, named at the top of the plot */
  for (guint i = 0; chart->plan && i < chart->plan->n_phases; i++)
    {
      const LoadPhase *p = &chart->plan->phases[i];
      double x = px + p->start_s / x_max * pw;

      cairo_set_source_rgb (cr, 0.6, 0.6, 0.6);
      if (i > 0)
        {
          cairo_set_dash (cr, (double[]) { 2, 3 }, 2, 0);
          cairo_move_to (cr, round (x) + 0.5, py);
          cairo_line_to (cr, round (x) + 0.5, py + ph);
          cairo_stroke (cr);
          cairo_set_dash (cr, NULL, 0, 0);
        }
      cairo_set_font_size (cr, 10);
      text_at (cr, x + 4, py + 11, 0, p->name);
      cairo_set_font_size (cr, 11);
    }

  cairo_set_source_rgb (cr, 0.35, 0.35, 0.35);
  cairo_rectangle (cr, round (px) + 0.5, round (py) + 0.5, round (pw), round (ph));
  cairo_stroke (cr);

  /* the data, clipped to the plot */
  cairo_rectangle (cr, px, py, pw, ph);
  cairo_clip (cr);
  cairo_set_line_join (cr, CAIRO_LINE_JOIN_ROUND);
  for (guint i = 0; i < chart->series->len; i++)
    {
      const Series *s = chart->series->pdata[i];
      double ymax = y_max[s->right ? 1 : 0];
      gboolean pen_down = FALSE;

      cairo_set_source_rgb (cr, s->rgb[0], s->rgb[1], s->rgb[2]);
      cairo_set_line_width (cr, 1.6);
      cairo_set_dash (cr, (double[]) { 5, 3 }, s->dashed ? 2 : 0, 0);
      for (guint k = 0; k < s->x->len; k++)
        {
          double xv = g_array_index (s->x, double, k), yv = g_array_index (s->y, double, k);
          double x = px + xv / x_max * pw, y = py + ph - yv / ymax * ph;

          if (isnan (yv))
            {
              pen_down = FALSE;
              continue;
            }
          if (pen_down)
            cairo_line_to (cr, x, y);
          else
            cairo_move_to (cr, x, y);
          pen_down = TRUE;
        }
      cairo_stroke (cr);
    }
  cairo_restore (cr);
}

/* Bins of @bin_s seconds over [0, @x_max). */
static guint
n_bins (double x_max,
        double bin_s)
{
  return MAX (1, (guint) ceil (x_max / bin_s));
}

static gboolean
counts_as_request (LoadKind kind)
{
  return kind != LOAD_KIND_TAG && kind != LOAD_KIND_SESSION;
}

static Chart *
chart_new (const LoadReport *report,
           const char       *title,
           const char       *y_label,
           const char       *y2_label,
           double            x_max)
{
  Chart *chart = g_new0 (Chart, 1);

  chart->title = g_strdup (title);
  chart->y_label = y_label;
  chart->y2_label = y2_label;
  chart->x_max = x_max;
  chart->plan = report->plan;
  chart->series = g_ptr_array_new_with_free_func (series_free);
  return chart;
}

static void
chart_free (Chart *chart)
{
  g_ptr_array_unref (chart->series);
  g_free (chart->title);
  g_free (chart);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Chart, chart_free)

static Chart *
requests_chart (const LoadReport *report,
                double            x_max)
{
  double bin = MAX (1.0, x_max / CHART_MAX_BINS);
  guint n = n_bins (x_max, bin);
  g_autofree double *started = g_new0 (double, n);
  g_autofree double *requests = g_new0 (double, n);
  g_autofree double *main_ok = g_new0 (double, n);
  g_autofree double *errors = g_new0 (double, n);
  g_autofree char *main_label = g_strdup_printf ("%s ok/s", load_kind_name (report->main_kind));
  Chart *chart = chart_new (report, "Requests per second", "per second", NULL, x_max);
  Series *plan_s = chart_add (chart, "arrivals/s planned", 5, FALSE, TRUE);
  Series *started_s = chart_add (chart, "vusers started/s", 4, FALSE, FALSE);
  Series *requests_s = NULL, *main_s, *errors_s;

  if (report->main_kind != LOAD_KIND_PREDICT && report->main_kind != LOAD_KIND_CREDENTIALS)
    requests_s = chart_add (chart, "HTTP requests ok/s", 0, FALSE, FALSE);
  main_s = chart_add (chart, main_label, 2, FALSE, FALSE);
  errors_s = chart_add (chart, "errors/s", 3, FALSE, FALSE);

  for (guint i = 0; i < report->samples->len; i++)
    {
      const LoadSample *s = &g_array_index (report->samples, LoadSample, i);
      double end = s->t + s->latency_ms / 1000;
      guint b_start = MIN ((guint) (s->t / bin), n - 1), b_end = MIN ((guint) (end / bin), n - 1);
      gboolean dropped = s->error != NULL && strcmp (s->error, "dropped") == 0;

      if (s->kind == report->session_kind && !dropped)
        started[b_start]++;
      if (s->error != NULL)
        {
          /* a failed step fails its session too: count the step, not both */
          if (s->kind != report->session_kind || report->session_kind == report->main_kind ||
              dropped)
            errors[b_end]++;
          continue;
        }
      if (counts_as_request (s->kind))
        requests[b_end]++;
      if (s->kind == report->main_kind)
        main_ok[b_end]++;
    }
  for (guint b = 0; b < n; b++)
    {
      double x = (b + 0.5) * bin;

      series_point (plan_s, x, load_plan_rate_at (report->plan, x));
      series_point (started_s, x, started[b] / bin);
      if (requests_s)
        series_point (requests_s, x, requests[b] / bin);
      series_point (main_s, x, main_ok[b] / bin);
      series_point (errors_s, x, errors[b] / bin);
    }
  return chart;
}

static Chart *
latency_chart (const LoadReport *report,
               double            x_max)
{
  /* wider bins than the rate chart's: a p99 needs some samples behind it */
  double bin = MAX (2.0, x_max / 100);
  guint n = n_bins (x_max, bin);
  g_autofree char *title = g_strdup_printf ("Latency of %s (ms), by completion time",
                                            report->main_kind == LOAD_KIND_TAG
                                            ? "upload → tag" : load_kind_name (report->main_kind));
  Chart *chart = chart_new (report, title, "milliseconds", NULL, x_max);
  Series *p50 = chart_add (chart, "p50", 2, FALSE, FALSE);
  Series *p95 = chart_add (chart, "p95", 1, FALSE, FALSE);
  Series *p99 = chart_add (chart, "p99", 3, FALSE, FALSE);
  Series *session95 = NULL;

  if (report->session_kind != report->main_kind)
    session95 = chart_add (chart, "session p95", 4, FALSE, TRUE);
  for (guint b = 0; b < n; b++)
    {
      double from = b * bin, to = (b + 1) * bin, x = (b + 0.5) * bin;
      g_autoptr(GArray) l = load_report_latencies (report, -1, report->main_kind, from, to);

      series_point (p50, x, load_percentile (l, 0.50));
      series_point (p95, x, load_percentile (l, 0.95));
      series_point (p99, x, load_percentile (l, 0.99));
      if (session95)
        {
          g_autoptr(GArray) sl = load_report_latencies (report, -1, report->session_kind,
                                                        from, to);

          series_point (session95, x, load_percentile (sl, 0.95));
        }
    }
  return chart;
}

static Chart *
queue_chart (const LoadReport *report,
             double            x_max)
{
  Chart *chart = chart_new (report, "Queue depth and workers (from /metrics)", "jobs",
                            "workers", x_max);
  Series *depth = chart_add (chart, "queue depth", 0, FALSE, FALSE);
  Series *leased = chart_add (chart, "leased", 5, FALSE, TRUE);
  /* desired first, so the workers line is drawn over it where they agree */
  Series *desired = chart_add (chart, "desired workers (right)", 4, TRUE, TRUE);
  Series *workers = chart_add (chart, "workers (right)", 1, TRUE, FALSE);

  chart->counts = TRUE;

  for (guint i = 0; i < report->scrapes->len; i++)
    {
      const LoadScrape *m = &g_array_index (report->scrapes, LoadScrape, i);

      series_point (depth, m->t, m->queue_depth);
      series_point (leased, m->t, m->queue_leased);
      series_point (workers, m->t, m->workers);
      series_point (desired, m->t, m->workers_desired);
    }
  return chart;
}

static gboolean
check_surface (cairo_surface_t  *surface,
               const char       *path,
               GError          **error)
{
  cairo_status_t status = cairo_surface_status (surface);

  if (status == CAIRO_STATUS_SUCCESS)
    return TRUE;
  g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "cannot write %s: %s", path,
               cairo_status_to_string (status));
  return FALSE;
}

static void
draw_all (Chart   **charts,
          guint     n,
          cairo_t  *cr)
{
  for (guint i = 0; i < n; i++)
    chart_draw (charts[i], cr, 0, i * CHART_H, CHART_W, CHART_H);
}

/* NAME.svg and NAME.png of @charts stacked. */
static gboolean
write_pair (const char  *dir,
            const char  *name,
            Chart      **charts,
            guint        n,
            GError     **error)
{
  g_autofree char *svg_path = g_strdup_printf ("%s/%s.svg", dir, name);
  g_autofree char *png_path = g_strdup_printf ("%s/%s.png", dir, name);
  cairo_surface_t *surface;
  cairo_status_t status;
  cairo_t *cr;
  gboolean ok;

  surface = cairo_svg_surface_create (svg_path, CHART_W, CHART_H * n);
  cr = cairo_create (surface);
  draw_all (charts, n, cr);
  cairo_destroy (cr);
  cairo_surface_finish (surface);
  ok = check_surface (surface, svg_path, error);
  cairo_surface_destroy (surface);
  if (!ok)
    return FALSE;

  surface = cairo_image_surface_create (CAIRO_FORMAT_RGB24, CHART_W, CHART_H * n);
  cr = cairo_create (surface);
  draw_all (charts, n, cr);
  cairo_destroy (cr);
  status = cairo_surface_write_to_png (surface, png_path);
  cairo_surface_destroy (surface);
  if (status != CAIRO_STATUS_SUCCESS)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "cannot write %s: %s", png_path,
                   cairo_status_to_string (status));
      return FALSE;
    }
  return TRUE;
}

gboolean
load_chart_write_all (const LoadReport *report,
                      const char       *dir,
                      GError          **error)
{
  double x_max = MAX (report->elapsed_s, report->plan->total_s);
  g_autoptr(Chart) requests = NULL;
  g_autoptr(Chart) latency = NULL;
  g_autoptr(Chart) queue = NULL;
  Chart *all[3];

  if (report->scrapes->len > 0)
    x_max = MAX (x_max, g_array_index (report->scrapes, LoadScrape,
                                       report->scrapes->len - 1).t);
  requests = requests_chart (report, x_max);
  latency = latency_chart (report, x_max);
  queue = queue_chart (report, x_max);
  all[0] = requests;
  all[1] = latency;
  all[2] = queue;
  return write_pair (dir, load_chart_names[0], &all[0], 1, error) &&
         write_pair (dir, load_chart_names[1], &all[1], 1, error) &&
         write_pair (dir, load_chart_names[2], &all[2], 1, error) &&
         write_pair (dir, load_chart_names[3], all, 3, error);
}
