/* load-report.c - samples and scrapes into samples.json and summary.md */
#include "config.h"

#include "load-report.h"

#include <json-glib/json-glib.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const kind_names[LOAD_N_KINDS] = {
  [LOAD_KIND_IDENTITY] = "identity",
  [LOAD_KIND_CREDENTIALS] = "credentials",
  [LOAD_KIND_EVENTS] = "events",
  [LOAD_KIND_PUT] = "put",
  [LOAD_KIND_REGISTER] = "register",
  [LOAD_KIND_TAG] = "tag",
  [LOAD_KIND_SESSION] = "session",
  [LOAD_KIND_PREDICT] = "predict",
};

const char *
load_kind_name (LoadKind kind)
{
  g_return_val_if_fail (kind < LOAD_N_KINDS, "?");
  return kind_names[kind];
}

gboolean
load_kind_from_name (const char *name,
                     LoadKind   *out)
{
  for (LoadKind k = 0; k < LOAD_N_KINDS; k++)
    if (g_strcmp0 (name, kind_names[k]) == 0)
      {
        *out = k;
        return TRUE;
      }
  return FALSE;
}

static void
sample_clear (gpointer data)
{
  LoadSample *s = data;

  g_free (s->detail);
}

LoadReport *
load_report_new (const LoadPlan *plan,
                 const char     *mode,
                 const char     *url,
                 const char     *command_line)
{
  LoadReport *report = g_new0 (LoadReport, 1);

  report->plan = plan;
  report->mode = g_strdup (mode);
  report->url = g_strdup (url);
  report->command_line = g_strdup (command_line);
  report->started_at = g_date_time_new_now_utc ();
  report->window_s = 10;
  for (guint i = 0; i < 2; i++)
    for (guint j = 0; j < 3; j++)
      report->loadavg[i][j] = NAN;
  report->samples = g_array_new (FALSE, FALSE, sizeof (LoadSample));
  g_array_set_clear_func (report->samples, sample_clear);
  report->scrapes = g_array_new (FALSE, FALSE, sizeof (LoadScrape));
  return report;
}

void
load_report_free (LoadReport *report)
{
  if (report == NULL)
    return;
  g_free (report->mode);
  g_free (report->url);
  g_free (report->command_line);
  g_clear_pointer (&report->started_at, g_date_time_unref);
  g_array_unref (report->samples);
  g_array_unref (report->scrapes);
  g_free (report);
}

void
load_report_add (LoadReport *report,
                 double      t,
                 int         phase,
                 LoadKind    kind,
                 double      latency_ms,
                 guint       status,
                 const char *error_class,
                 const char *detail)
{
  /* Kept at the precision samples.json writes (0.1 ms, 1 µs), so a --replot computes the
   * very same percentiles. */
  LoadSample s = { round (t * 1e4) / 1e4, round (latency_ms * 1e3) / 1e3, phase, kind, status,
                   NULL, NULL };

  if (error_class != NULL)
    {
      s.error = g_intern_string (error_class);
      if (detail != NULL)
        {
          /* cut on a character boundary, and keep it on one line */
          const char *end = detail;

          while (*end != '\0' && end - detail < LOAD_DETAIL_MAX)
            end = g_utf8_next_char (end);
          s.detail = g_strndup (detail, end - detail);
          g_strdelimit (s.detail, "\r\n\t", ' ');
        }
    }
  g_array_append_val (report->samples, s);
}

void
load_report_add_scrape (LoadReport       *report,
                        const LoadScrape *scrape)
{
  LoadScrape m = *scrape;

  m.t = round (m.t * 1e3) / 1e3;   /* as samples.json keeps it */
  g_array_append_val (report->scrapes, m);
}

guint
load_report_count_errors (const LoadReport *report)
{
  guint n = 0;

  for (guint i = 0; i < report->samples->len; i++)
    n += g_array_index (report->samples, LoadSample, i).error != NULL;
  return n;
}

static int
cmp_double (const void *a,
            const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;

  return x < y ? -1 : x > y;
}

GArray *
load_report_latencies (const LoadReport *report,
                       int               phase,
                       LoadKind          kind,
                       double            from,
                       double            to)
{
  GArray *out = g_array_new (FALSE, FALSE, sizeof (double));

  for (guint i = 0; i < report->samples->len; i++)
    {
      const LoadSample *s = &g_array_index (report->samples, LoadSample, i);
      double end = s->t + s->latency_ms / 1000;

      if (s->error != NULL || s->kind != kind || (phase >= 0 && s->phase != phase))
        continue;
      if (to > from && (end < from || end >= to))
        continue;
      g_array_append_val (out, s->latency_ms);
    }
  qsort (out->data, out->len, sizeof (double), cmp_double);
  return out;
}

double
load_percentile (const GArray *sorted,
                 double        q)
{
  gsize rank;

  if (sorted->len == 0)
    return NAN;
  rank = (gsize) ceil (q * sorted->len);
  rank = CLAMP (rank, 1, sorted->len);
  return g_array_index (sorted, double, rank - 1);
}

/* Prometheus text format: `name{labels} value [timestamp]`, `#` lines are comments. */
gboolean
load_scrape_parse (const char *text,
                   LoadScrape *out)
{
  static const struct { const char *series; gsize offset; } wanted[] = {
    { "magpied_queue_depth", G_STRUCT_OFFSET (LoadScrape, queue_depth) },
    { "magpied_queue_leased", G_STRUCT_OFFSET (LoadScrape, queue_leased) },
    { "magpied_workers_current", G_STRUCT_OFFSET (LoadScrape, workers) },
    { "magpied_workers_desired", G_STRUCT_OFFSET (LoadScrape, workers_desired) },
    { "magpied_jobs_total{result=\"done\"}", G_STRUCT_OFFSET (LoadScrape, jobs_done) },
    { "magpied_sse_subscribers", G_STRUCT_OFFSET (LoadScrape, sse_subscribers) },
  };
  gboolean any = FALSE;
  const char *line = text;

  for (guint i = 0; i < G_N_ELEMENTS (wanted); i++)
    G_STRUCT_MEMBER (double, out, wanted[i].offset) = NAN;

  while (line != NULL && *line != '\0')
    {
      const char *eol = strchr (line, '\n');
      gsize len = eol ? (gsize) (eol - line) : strlen (line);
      const char *space;
      g_autofree char *copy = NULL;

      if (len > 0 && line[0] != '#')
        {
          copy = g_strndup (line, len);
          /* the value follows the last space outside the labels */
          space = strchr (copy, '}') ? strchr (strchr (copy, '}'), ' ') : strchr (copy, ' ');
          if (space != NULL)
            {
              char *end = NULL;
              double v = g_ascii_strtod (space + 1, &end);

              if (end != space + 1)
                {
                  any = TRUE;
                  for (guint i = 0; i < G_N_ELEMENTS (wanted); i++)
                    if ((gsize) (space - copy) == strlen (wanted[i].series) &&
                        strncmp (copy, wanted[i].series, space - copy) == 0)
                      G_STRUCT_MEMBER (double, out, wanted[i].offset) = v;
                }
            }
        }
      line = eol ? eol + 1 : NULL;
    }
  return any;
}

/* samples.json */

/* A JSON number in @format (locale-independent), or null for NAN. */
static void
append_number (GString    *out,
               const char *format,
               double      v)
{
  char buf[G_ASCII_DTOSTR_BUF_SIZE];

  if (!isfinite (v))
    g_string_append (out, "null");
  else
    g_string_append (out, g_ascii_formatd (buf, sizeof buf, format, v));
}

/* A JSON string (json-glib does the escaping), or null. */
static void
append_json_string (GString    *out,
                    const char *text)
{
  g_autoptr(JsonNode) node = NULL;
  g_autoptr(JsonGenerator) gen = NULL;

  if (text == NULL)
    {
      g_string_append (out, "null");
      return;
    }
  node = json_node_init_string (json_node_alloc (), text);
  gen = json_generator_new ();
  json_generator_set_root (gen, node);
  json_generator_to_gstring (gen, out);
}

static const char *
phase_name (const LoadReport *report,
            int               phase)
{
  return phase >= 0 && (guint) phase < report->plan->n_phases
         ? report->plan->phases[phase].name : "-";
}

gboolean
load_report_write_json (const LoadReport *report,
                        const char       *path,
                        GError          **error)
{
  g_autoptr(GString) out = g_string_new ("{\n\"meta\": ");
  g_autoptr(JsonBuilder) b = json_builder_new ();
  g_autoptr(JsonNode) meta = NULL;
  g_autofree char *started = g_date_time_format_iso8601 (report->started_at);
  guint errors = load_report_count_errors (report);

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "tool");
  json_builder_add_string_value (b, "magpie-load " PACKAGE_VERSION);
  json_builder_set_member_name (b, "command");
  json_builder_add_string_value (b, report->command_line);
  json_builder_set_member_name (b, "url");
  json_builder_add_string_value (b, report->url);
  json_builder_set_member_name (b, "mode");
  json_builder_add_string_value (b, report->mode);
  json_builder_set_member_name (b, "started_at");
  json_builder_add_string_value (b, started);
  json_builder_set_member_name (b, "elapsed_s");
  json_builder_add_double_value (b, report->elapsed_s);
  json_builder_set_member_name (b, "generator_cpu_s");
  json_builder_add_double_value (b, round (report->cpu_s * 100) / 100);
  json_builder_set_member_name (b, "loadavg");
  json_builder_begin_object (b);
  for (guint i = 0; i < 2; i++)
    {
      json_builder_set_member_name (b, i == 0 ? "start" : "end");
      if (isnan (report->loadavg[i][0]))
        {
          json_builder_add_null_value (b);
          continue;
        }
      json_builder_begin_array (b);
      for (guint j = 0; j < 3; j++)
        json_builder_add_double_value (b, round (report->loadavg[i][j] * 100) / 100);
      json_builder_end_array (b);
    }
  json_builder_end_object (b);
  json_builder_set_member_name (b, "concurrency");
  json_builder_add_int_value (b, report->concurrency);
  json_builder_set_member_name (b, "source_addresses");
  json_builder_add_int_value (b, report->n_addresses);
  json_builder_set_member_name (b, "main_kind");
  json_builder_add_string_value (b, load_kind_name (report->main_kind));
  json_builder_set_member_name (b, "session_kind");
  json_builder_add_string_value (b, load_kind_name (report->session_kind));
  json_builder_set_member_name (b, "phases");
  json_builder_begin_array (b);
  for (guint i = 0; i < report->plan->n_phases; i++)
    {
      const LoadPhase *p = &report->plan->phases[i];

      json_builder_begin_object (b);
      json_builder_set_member_name (b, "name");
      json_builder_add_string_value (b, p->name);
      json_builder_set_member_name (b, "start_s");
      json_builder_add_double_value (b, p->start_s);
      json_builder_set_member_name (b, "duration_s");
      json_builder_add_double_value (b, p->duration_s);
      json_builder_set_member_name (b, "rate_from");
      json_builder_add_double_value (b, p->rate_from);
      json_builder_set_member_name (b, "rate_to");
      json_builder_add_double_value (b, p->rate_to);
      json_builder_end_object (b);
    }
  json_builder_end_array (b);
  json_builder_set_member_name (b, "totals");
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "samples");
  json_builder_add_int_value (b, report->samples->len);
  json_builder_set_member_name (b, "ok");
  json_builder_add_int_value (b, report->samples->len - errors);
  json_builder_set_member_name (b, "errors");
  json_builder_add_int_value (b, errors);
  json_builder_set_member_name (b, "scrape_failures");
  json_builder_add_int_value (b, report->scrape_failures);
  json_builder_end_object (b);
  json_builder_end_object (b);
  meta = json_builder_get_root (b);
  {
    g_autoptr(JsonGenerator) gen = json_generator_new ();

    json_generator_set_root (gen, meta);
    json_generator_set_pretty (gen, TRUE);
    json_generator_set_indent (gen, 1);
    json_generator_to_gstring (gen, out);
  }

  /* One line per sample, printed with the digits that mean something: a run of 100,000
   * samples stays a few MB and never becomes a tree in memory. */
  g_string_append (out, ",\n\"samples\": [\n");
  for (guint i = 0; i < report->samples->len; i++)
    {
      const LoadSample *s = &g_array_index (report->samples, LoadSample, i);

      g_string_append (out, "{\"t\": ");
      append_number (out, "%.4f", s->t);  /* load_report_add() rounded both */
      g_string_append (out, ", \"phase\": ");
      append_json_string (out, phase_name (report, s->phase));
      g_string_append_printf (out, ", \"kind\": \"%s\", \"latency_ms\": ",
                              load_kind_name (s->kind));
      append_number (out, "%.3f", s->latency_ms);
      g_string_append_printf (out, ", \"status\": %u, \"error\": ", s->status);
      append_json_string (out, s->error);
      if (s->detail != NULL)
        {
          g_string_append (out, ", \"detail\": ");
          append_json_string (out, s->detail);
        }
      g_string_append (out, i + 1 < report->samples->len ? "},\n" : "}\n");
    }
  g_string_append (out, "],\n\"metrics\": [\n");
  for (guint i = 0; i < report->scrapes->len; i++)
    {
      const LoadScrape *m = &g_array_index (report->scrapes, LoadScrape, i);
      const struct { const char *name; double v; } fields[] = {
        { "queue_depth", m->queue_depth }, { "queue_leased", m->queue_leased },
        { "workers", m->workers }, { "workers_desired", m->workers_desired },
        { "jobs_done", m->jobs_done }, { "sse_subscribers", m->sse_subscribers },
      };

      g_string_append (out, "{\"t\": ");
      append_number (out, "%.3f", m->t);
      for (guint f = 0; f < G_N_ELEMENTS (fields); f++)
        {
          g_string_append_printf (out, ", \"%s\": ", fields[f].name);
          append_number (out, "%.10g", fields[f].v);
        }
      g_string_append (out, i + 1 < report->scrapes->len ? "},\n" : "}\n");
    }
  g_string_append (out, "]\n}\n");
  return g_file_set_contents (path, out->str, out->len, error);
}

/* Reading samples.json back (--replot) */

static double
member_double (JsonObject *o,
               const char *name)
{
  JsonNode *n = o ? json_object_get_member (o, name) : NULL;

  if (n == NULL || !JSON_NODE_HOLDS_VALUE (n) || json_node_get_value_type (n) == G_TYPE_STRING)
    return NAN;
  return json_node_get_double (n);
}

static const char *
member_string (JsonObject *o,
               const char *name)
{
  JsonNode *n = o ? json_object_get_member (o, name) : NULL;

  if (n == NULL || !JSON_NODE_HOLDS_VALUE (n) || json_node_get_value_type (n) != G_TYPE_STRING)
    return NULL;
  return json_node_get_string (n);
}

/* A count: 0 when absent, negative or not a number. */
static guint
member_uint (JsonObject *o,
             const char *name)
{
  double v = member_double (o, name);

  return v >= 0 && v <= G_MAXUINT ? (guint) v : 0;
}

static JsonObject *
member_object (JsonObject *o,
               const char *name)
{
  JsonNode *n = o ? json_object_get_member (o, name) : NULL;

  return n && JSON_NODE_HOLDS_OBJECT (n) ? json_node_get_object (n) : NULL;
}

static JsonArray *
member_array (JsonObject *o,
              const char *name)
{
  JsonNode *n = o ? json_object_get_member (o, name) : NULL;

  return n && JSON_NODE_HOLDS_ARRAY (n) ? json_node_get_array (n) : NULL;
}

static JsonObject *
object_at (JsonArray *a,
           guint      i)
{
  JsonNode *n = json_array_get_element (a, i);

  return JSON_NODE_HOLDS_OBJECT (n) ? json_node_get_object (n) : NULL;
}

LoadReport *
load_report_read_json (const char  *path,
                       LoadPlan   **out_plan,
                       GError     **error)
{
  g_autoptr(JsonParser) parser = json_parser_new ();
  g_autoptr(LoadPlan) plan = g_new0 (LoadPlan, 1);
  g_autoptr(LoadReport) report = NULL;
  JsonObject *root, *meta;
  JsonArray *phases, *samples, *metrics;
  const char *started;
  LoadKind main_kind, session_kind;

  if (!json_parser_load_from_mapped_file (parser, path, error))
    return NULL;
  root = JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser))
         ? json_node_get_object (json_parser_get_root (parser)) : NULL;
  meta = member_object (root, "meta");
  phases = member_array (meta, "phases");
  samples = member_array (root, "samples");
  metrics = member_array (root, "metrics");
  if (phases == NULL || samples == NULL || metrics == NULL || json_array_get_length (phases) == 0 ||
      member_string (meta, "mode") == NULL || member_string (meta, "url") == NULL ||
      member_string (meta, "command") == NULL ||
      json_array_get_length (phases) > LOAD_PLAN_MAX_PHASES ||
      !load_kind_from_name (member_string (meta, "main_kind"), &main_kind) ||
      !load_kind_from_name (member_string (meta, "session_kind"), &session_kind))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   "%s is not a samples.json that magpie-load wrote", path);
      return NULL;
    }

  plan->phases = g_new0 (LoadPhase, json_array_get_length (phases));
  for (guint i = 0; i < json_array_get_length (phases); i++)
    {
      JsonObject *o = object_at (phases, i);
      LoadPhase *p = &plan->phases[i];
      const char *name = member_string (o, "name");

      p->start_s = member_double (o, "start_s");
      p->duration_s = member_double (o, "duration_s");
      p->rate_from = member_double (o, "rate_from");
      p->rate_to = member_double (o, "rate_to");
      if (name == NULL || strchr (name, '-') == NULL || !(p->duration_s > 0) ||
          !isfinite (p->start_s + p->rate_from + p->rate_to))
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                       "%s: phase %u is not one magpie-load wrote", path, i + 1);
          return NULL;
        }
      p->name = g_strdup (name);
      p->kind = g_strndup (name, strchr (name, '-') - name);
      plan->n_phases++;
      plan->total_s = MAX (plan->total_s, p->start_s + p->duration_s);
    }

  report = load_report_new (plan, member_string (meta, "mode"), member_string (meta, "url"),
                            member_string (meta, "command"));
  started = member_string (meta, "started_at");
  if (started != NULL)
    {
      g_autoptr(GDateTime) when = g_date_time_new_from_iso8601 (started, NULL);

      if (when != NULL)
        {
          g_date_time_unref (report->started_at);
          report->started_at = g_steal_pointer (&when);
        }
    }
  report->elapsed_s = MAX (member_double (meta, "elapsed_s"), 0);  /* MAX: NAN becomes 0 */
  report->cpu_s = MAX (member_double (meta, "generator_cpu_s"), 0);
  for (guint i = 0; i < 2; i++)
    {
      JsonNode *n = member_object (meta, "loadavg")
                    ? json_object_get_member (member_object (meta, "loadavg"),
                                              i == 0 ? "start" : "end")
                    : NULL;
      JsonArray *a = n && JSON_NODE_HOLDS_ARRAY (n) ? json_node_get_array (n) : NULL;

      for (guint j = 0; a && json_array_get_length (a) == 3 && j < 3; j++)
        {
          JsonNode *v = json_array_get_element (a, j);

          if (JSON_NODE_HOLDS_VALUE (v) && json_node_get_value_type (v) != G_TYPE_STRING)
            report->loadavg[i][j] = json_node_get_double (v);
        }
    }
  report->concurrency = member_uint (meta, "concurrency");
  report->n_addresses = member_uint (meta, "source_addresses");
  report->scrape_failures = member_uint (member_object (meta, "totals"), "scrape_failures");
  report->main_kind = main_kind;
  report->session_kind = session_kind;

  for (guint i = 0; i < json_array_get_length (samples); i++)
    {
      JsonObject *o = object_at (samples, i);
      const char *phase_name_ = member_string (o, "phase");
      int phase = -1;
      LoadKind kind;

      if (!load_kind_from_name (member_string (o, "kind"), &kind) ||
          !isfinite (member_double (o, "t")) || !isfinite (member_double (o, "latency_ms")))
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                       "%s: sample %u is not one magpie-load wrote", path, i + 1);
          return NULL;
        }
      for (guint p = 0; p < plan->n_phases && phase_name_ != NULL; p++)
        if (strcmp (plan->phases[p].name, phase_name_) == 0)
          phase = (int) p;
      load_report_add (report, member_double (o, "t"), phase, kind,
                       member_double (o, "latency_ms"), member_uint (o, "status"),
                       member_string (o, "error"), member_string (o, "detail"));
    }
  for (guint i = 0; i < json_array_get_length (metrics); i++)
    {
      JsonObject *o = object_at (metrics, i);
      LoadScrape m = {
        member_double (o, "t"), member_double (o, "queue_depth"),
        member_double (o, "queue_leased"), member_double (o, "workers"),
        member_double (o, "workers_desired"), member_double (o, "jobs_done"),
        member_double (o, "sse_subscribers"),
      };

      if (isfinite (m.t))
        load_report_add_scrape (report, &m);
    }
  *out_plan = g_steal_pointer (&plan);
  return g_steal_pointer (&report);
}

/* summary.md */

static void
append_ms (GString *out,
           double   ms)
{
  if (isnan (ms))
    g_string_append (out, " – |");
  else if (ms >= 100)
    g_string_append_printf (out, " %.0f |", ms);
  else
    g_string_append_printf (out, " %.1f |", ms);
}

static void
append_percentiles (GString      *out,
                    const GArray *sorted)
{
  append_ms (out, load_percentile (sorted, 0.50));
  append_ms (out, load_percentile (sorted, 0.95));
  append_ms (out, load_percentile (sorted, 0.99));
}

typedef struct {
  guint vusers;
  guint ok;
  guint dropped;
  guint failed;
} SessionCounts;

static SessionCounts
count_sessions (const LoadReport *report,
                int               phase)
{
  SessionCounts c = { 0 };

  for (guint i = 0; i < report->samples->len; i++)
    {
      const LoadSample *s = &g_array_index (report->samples, LoadSample, i);

      if (s->kind != report->session_kind || (phase >= 0 && s->phase != phase))
        continue;
      c.vusers++;
      if (s->error == NULL)
        c.ok++;
      else if (strcmp (s->error, "dropped") == 0)
        c.dropped++;
      else
        c.failed++;
    }
  return c;
}

static guint
count_ok_ending (const LoadReport *report,
                 LoadKind          kind,
                 double            from,
                 double            to)
{
  g_autoptr(GArray) l = load_report_latencies (report, -1, kind, from, to);

  return l->len;
}

/* @from and @to bound when the answers counted for the rate ended; both 0: all of them, over
 * @seconds. */
static void
append_phase_row (GString          *out,
                  const LoadReport *report,
                  const char       *name,
                  const char       *plan_text,
                  int               phase,
                  double            from,
                  double            to,
                  double            seconds)
{
  SessionCounts c = count_sessions (report, phase);
  g_autoptr(GArray) main_l = load_report_latencies (report, phase, report->main_kind, 0, 0);
  guint done = count_ok_ending (report, report->main_kind, from, to);

  g_string_append_printf (out, "| %s | %s | %u | %u | %u | %u | %.1f |", name, plan_text,
                          c.vusers, c.ok, c.failed, c.dropped, seconds > 0 ? done / seconds : 0);
  append_percentiles (out, main_l);
  if (report->session_kind != report->main_kind)
    {
      g_autoptr(GArray) session_l = load_report_latencies (report, phase, report->session_kind,
                                                           0, 0);

      append_ms (out, load_percentile (session_l, 0.95));
      append_ms (out, load_percentile (session_l, 0.99));
    }
  g_string_append_c (out, '\n');
}

static void
append_phases (GString          *out,
               const LoadReport *report)
{
  const char *main_name = load_kind_name (report->main_kind);
  double end = report->plan->total_s;

  g_string_append_printf (out, "## Phases\n\n"
                          "Virtual users are counted in the phase they arrived in, with their "
                          "%s latency; %s/s counts the %s answers that completed within the "
                          "phase's time (the `drain` row: after the last phase).\n\n",
                          main_name, main_name, main_name);
  g_string_append_printf (out, "| phase | plan | vusers | completed | failed | dropped | %s/s "
                          "| %s p50 ms | p95 | p99 |", main_name, main_name);
  if (report->session_kind != report->main_kind)
    g_string_append (out, " session p95 ms | session p99 |\n|---|---|---:|---:|---:|---:|---:|"
                          "---:|---:|---:|---:|---:|\n");
  else
    g_string_append (out, "\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  for (guint i = 0; i < report->plan->n_phases; i++)
    {
      const LoadPhase *p = &report->plan->phases[i];
      g_autofree char *desc = load_phase_describe (p);

      append_phase_row (out, report, p->name, desc, (int) i, p->start_s,
                        p->start_s + p->duration_s, p->duration_s);
    }
  if (report->elapsed_s > end + 0.5)
    {
      g_autofree char *desc = g_strdup_printf ("%.1fs after the plan", report->elapsed_s - end);
      g_autoptr(GArray) none = g_array_new (FALSE, FALSE, sizeof (double));
      guint done = count_ok_ending (report, report->main_kind, end, G_MAXDOUBLE);

      g_string_append_printf (out, "| drain | %s | | | | | %.1f |", desc,
                              done / (report->elapsed_s - end));
      append_percentiles (out, none);
      if (report->session_kind != report->main_kind)
        g_string_append (out, " | |");
      g_string_append_c (out, '\n');
    }
  append_phase_row (out, report, "**all**", "", -1, 0, 0,
                    MAX (report->elapsed_s, report->plan->total_s));
  g_string_append_c (out, '\n');
}

static void
append_kinds (GString          *out,
              const LoadReport *report)
{
  g_string_append (out, "## Requests by kind\n\n"
                        "| kind | samples | ok | errors | ok/s | p50 ms | p95 | p99 | max |\n"
                        "|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  for (LoadKind k = 0; k < LOAD_N_KINDS; k++)
    {
      g_autoptr(GArray) l = load_report_latencies (report, -1, k, 0, 0);
      guint n = 0;

      for (guint i = 0; i < report->samples->len; i++)
        n += g_array_index (report->samples, LoadSample, i).kind == k;
      if (n == 0)
        continue;
      g_string_append_printf (out, "| %s | %u | %u | %u | %.1f |", load_kind_name (k), n, l->len,
                              n - l->len, report->elapsed_s > 0 ? l->len / report->elapsed_s : 0);
      append_percentiles (out, l);
      append_ms (out, l->len ? g_array_index (l, double, l->len - 1) : NAN);
      g_string_append_c (out, '\n');
    }
  g_string_append_c (out, '\n');

  g_string_append (out, "### Latency by phase (ms)\n\n| phase | kind | ok | p50 | p95 | p99 |\n"
                        "|---|---|---:|---:|---:|---:|\n");
  for (guint i = 0; i < report->plan->n_phases; i++)
    for (LoadKind k = 0; k < LOAD_N_KINDS; k++)
      {
        g_autoptr(GArray) l = load_report_latencies (report, (int) i, k, 0, 0);

        if (l->len == 0)
          continue;
        g_string_append_printf (out, "| %s | %s | %u |", report->plan->phases[i].name,
                                load_kind_name (k), l->len);
        append_percentiles (out, l);
        g_string_append_c (out, '\n');
      }
  g_string_append_c (out, '\n');
}

typedef struct {
  LoadKind    kind;
  const char *error;
  guint       count;
  const char *example;
} ErrorRow;

static int
cmp_error_rows (const void *a,
                const void *b)
{
  const ErrorRow *x = a, *y = b;

  return x->count != y->count ? (x->count < y->count ? 1 : -1)
                              : (int) x->kind - (int) y->kind;
}

static void
append_errors (GString          *out,
               const LoadReport *report)
{
  g_autoptr(GArray) rows = g_array_new (FALSE, FALSE, sizeof (ErrorRow));

  for (guint i = 0; i < report->samples->len; i++)
    {
      const LoadSample *s = &g_array_index (report->samples, LoadSample, i);
      gboolean found = FALSE;

      if (s->error == NULL)
        continue;
      for (guint r = 0; r < rows->len && !found; r++)
        {
          ErrorRow *row = &g_array_index (rows, ErrorRow, r);

          /* interned: pointers compare */
          if (row->kind == s->kind && row->error == s->error)
            {
              row->count++;
              found = TRUE;
            }
        }
      if (!found)
        {
          ErrorRow row = { s->kind, s->error, 1, s->detail };

          g_array_append_val (rows, row);
        }
    }
  g_string_append (out, "## Errors by kind\n\n");
  if (rows->len == 0)
    {
      g_string_append (out, "None.\n\n");
      return;
    }
  qsort (rows->data, rows->len, sizeof (ErrorRow), cmp_error_rows);
  g_string_append (out, "| kind | error | count | example |\n|---|---|---:|---|\n");
  for (guint r = 0; r < rows->len; r++)
    {
      const ErrorRow *row = &g_array_index (rows, ErrorRow, r);
      g_autofree char *example = g_strdup (row->example ? row->example : "");

      g_strdelimit (example, "|", '/');
      g_string_append_printf (out, "| %s | %s | %u | %s |\n", load_kind_name (row->kind),
                              row->error, row->count, example);
    }
  g_string_append_c (out, '\n');
}

static void
append_queue (GString          *out,
              const LoadReport *report)
{
  const LoadScrape *first, *last;
  double peak_depth = NAN, peak_depth_t = 0, peak_workers = NAN;
  guint base = 0;

  g_string_append (out, "## Queue and workers (from /metrics)\n\n");
  if (report->scrapes->len < 2)
    {
      g_string_append_printf (out, "Too few scrapes of /metrics (%u, %u failed).\n\n",
                              report->scrapes->len, report->scrape_failures);
      return;
    }
  first = &g_array_index (report->scrapes, LoadScrape, 0);
  last = &g_array_index (report->scrapes, LoadScrape, report->scrapes->len - 1);
  for (guint i = 0; i < report->scrapes->len; i++)
    {
      const LoadScrape *m = &g_array_index (report->scrapes, LoadScrape, i);

      if (!isnan (m->queue_depth) && !(m->queue_depth <= peak_depth))
        {
          peak_depth = m->queue_depth;
          peak_depth_t = m->t;
        }
      if (!isnan (m->workers) && !(m->workers <= peak_workers))
        peak_workers = m->workers;
    }
  g_string_append_printf (out, "%u scrapes (%u failed). Peak queue depth %.0f at %.0f s; peak "
                          "workers %.0f; photos tagged during the run: %.0f.\n\n",
                          report->scrapes->len, report->scrape_failures, peak_depth,
                          peak_depth_t, peak_workers, last->jobs_done - first->jobs_done);
  g_string_append_printf (out, "| window s | queue depth (max) | leased (max) | workers (max) | "
                          "tagged | images/min |\n|---|---:|---:|---:|---:|---:|\n");
  for (double w = 0; w < last->t; w += report->window_s)
    {
      double depth = NAN, leased = NAN, workers = NAN;
      guint end = base;

      for (guint i = base; i < report->scrapes->len; i++)
        {
          const LoadScrape *m = &g_array_index (report->scrapes, LoadScrape, i);

          if (m->t >= w + report->window_s)
            break;
          end = i;
          if (m->t < w)
            continue;
          depth = isnan (depth) || m->queue_depth > depth ? m->queue_depth : depth;
          leased = isnan (leased) || m->queue_leased > leased ? m->queue_leased : leased;
          workers = isnan (workers) || m->workers > workers ? m->workers : workers;
        }
      if (end > base && MIN (w + report->window_s, last->t) - w >= 0.5)
        {
          const LoadScrape *a = &g_array_index (report->scrapes, LoadScrape, base);
          const LoadScrape *b = &g_array_index (report->scrapes, LoadScrape, end);
          double tagged = b->jobs_done - a->jobs_done;

          g_string_append_printf (out, "| %.0f–%.0f | %.0f | %.0f | %.0f | %.0f | %.0f |\n", w,
                                  MIN (w + report->window_s, last->t), depth, leased, workers,
                                  tagged, tagged / (b->t - a->t) * 60);
        }
      base = end;
    }
  g_string_append_c (out, '\n');
}

gboolean
load_report_write_summary (const LoadReport  *report,
                           const char        *path,
                           const char *const *charts,
                           GError           **error)
{
  g_autoptr(GString) out = g_string_new (NULL);
  g_autofree char *started = g_date_time_format (report->started_at, "%Y-%m-%d %H:%M:%S UTC");
  guint errors = load_report_count_errors (report);

  g_string_append_printf (out, "# magpie-load: %s against %s\n\n", report->mode, report->url);
  g_string_append_printf (out, "```\n%s\n```\n\n", report->command_line);
  g_string_append_printf (out, "Started %s; %.1f s until the last virtual user finished "
                          "(plan %.1f s); at most %u virtual users in flight; %u source "
                          "address%s; magpie-load itself used %.1f CPU-seconds.\n\n", started,
                          report->elapsed_s, report->plan->total_s, report->concurrency,
                          report->n_addresses, report->n_addresses == 1 ? "" : "es",
                          report->cpu_s);
  if (!isnan (report->loadavg[0][0]) && !isnan (report->loadavg[1][0]))
    g_string_append_printf (out, "Load average of the machine (1, 5, 15 min): %.2f, %.2f, %.2f "
                            "at the start; %.2f, %.2f, %.2f at the end.\n\n",
                            report->loadavg[0][0], report->loadavg[0][1], report->loadavg[0][2],
                            report->loadavg[1][0], report->loadavg[1][1], report->loadavg[1][2]);
  g_string_append_printf (out, "**samples: %u (ok: %u, errors: %u)**\n\n", report->samples->len,
                          report->samples->len - errors, errors);
  append_phases (out, report);
  append_kinds (out, report);
  append_errors (out, report);
  append_queue (out, report);
  if (charts != NULL && charts[0] != NULL)
    {
      g_string_append (out, "## Charts\n\n");
      for (const char *const *c = charts; *c != NULL; c++)
        g_string_append_printf (out, "![%s](%s.png) ([SVG](%s.svg))\n\n", *c, *c, *c);
    }
  return g_file_set_contents (path, out->str, out->len, error);
}
