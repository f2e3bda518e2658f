/* srv-metrics.c - a small Prometheus registry: families of labelled series, text exposition */
#include "config.h"

#include "srv-metrics.h"

#include <math.h>
#include <stdarg.h>
#include <string.h>

const double srv_metrics_latency_bounds[] = {
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
};
const guint srv_metrics_latency_n_bounds = G_N_ELEMENTS (srv_metrics_latency_bounds);

typedef struct {
  double  value;      /* counters and gauges */
  guint64 *buckets;   /* histograms: per bound, not cumulative; the last is +Inf */
  double  sum;
  guint64 count;
} Series;

typedef struct {
  char          *name;
  SrvMetricType  type;
  char          *help;
  double        *bounds;
  guint          n_bounds;
  GHashTable    *series;  /* label text → Series */
} Family;

typedef struct {
  SrvMetricsCollectFunc func;
  gpointer              user_data;
} Collector;

struct _SrvMetrics {
  GMutex      lock;
  GHashTable *families;    /* name → Family */
  GArray     *collectors;  /* Collector */
  GMutex      collect_lock;
};

static void
series_free (gpointer data)
{
  Series *s = data;

  g_free (s->buckets);
  g_free (s);
}

static void
family_free (gpointer data)
{
  Family *f = data;

  g_free (f->name);
  g_free (f->help);
  g_free (f->bounds);
  g_hash_table_unref (f->series);
  g_free (f);
}

SrvMetrics *
srv_metrics_new (void)
{
  SrvMetrics *m = g_new0 (SrvMetrics, 1);

  g_mutex_init (&m->lock);
  g_mutex_init (&m->collect_lock);
  m->families = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, family_free);
  m->collectors = g_array_new (FALSE, FALSE, sizeof (Collector));
  return m;
}

void
srv_metrics_free (SrvMetrics *m)
{
  if (m == NULL)
    return;
  g_hash_table_unref (m->families);
  g_array_unref (m->collectors);
  g_mutex_clear (&m->lock);
  g_mutex_clear (&m->collect_lock);
  g_free (m);
}

void
srv_metrics_declare (SrvMetrics    *m,
                     const char    *name,
                     SrvMetricType  type,
                     const char    *help,
                     const double  *bounds,
                     guint          n_bounds)
{
  Family *f;

  g_return_if_fail (type != SRV_METRIC_HISTOGRAM || n_bounds > 0);

  g_mutex_lock (&m->lock);
  f = g_hash_table_lookup (m->families, name);
  if (f == NULL)
    {
      f = g_new0 (Family, 1);
      f->name = g_strdup (name);
      f->type = type;
      f->help = g_strdup (help);
      if (type == SRV_METRIC_HISTOGRAM)
        {
          f->bounds = g_memdup2 (bounds, n_bounds * sizeof (double));
          f->n_bounds = n_bounds;
        }
      f->series = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, series_free);
      g_hash_table_insert (m->families, f->name, f);
    }
  else
    g_warn_if_fail (f->type == type);
  g_mutex_unlock (&m->lock);
}

/* With the lock held. NULL (and a critical) for an undeclared family or the wrong type, so a
 * typo in a metric name shows in the tests (fatal-warnings) instead of vanishing. */
static Series *
lookup (SrvMetrics    *m,
        const char    *name,
        const char    *labels,
        SrvMetricType  type)
{
  Family *f = g_hash_table_lookup (m->families, name);
  Series *s;

  if (f == NULL || f->type != type)
    {
      g_critical ("metric %s is not declared as that type", name);
      return NULL;
    }
  if (labels == NULL)
    labels = "";
  s = g_hash_table_lookup (f->series, labels);
  if (s == NULL)
    {
      s = g_new0 (Series, 1);
      if (type == SRV_METRIC_HISTOGRAM)
        s->buckets = g_new0 (guint64, f->n_bounds + 1);
      g_hash_table_insert (f->series, g_strdup (labels), s);
    }
  return s;
}

void
srv_metrics_add (SrvMetrics *m,
                 const char *name,
                 const char *labels,
                 double      value)
{
  Series *s;

  g_mutex_lock (&m->lock);
  s = lookup (m, name, labels, SRV_METRIC_COUNTER);
  if (s != NULL && value > 0)
    s->value += value;
  g_mutex_unlock (&m->lock);
}

void
srv_metrics_set (SrvMetrics *m,
                 const char *name,
                 const char *labels,
                 double      value)
{
  Series *s;

  g_mutex_lock (&m->lock);
  s = lookup (m, name, labels, SRV_METRIC_GAUGE);
  if (s != NULL)
    s->value = value;
  g_mutex_unlock (&m->lock);
}

void
srv_metrics_observe (SrvMetrics *m,
                     const char *name,
                     const char *labels,
                     double      value)
{
  Series *s;

  g_mutex_lock (&m->lock);
  s = lookup (m, name, labels, SRV_METRIC_HISTOGRAM);
  if (s != NULL)
    {
      Family *f = g_hash_table_lookup (m->families, name);
      guint i = 0;

      while (i < f->n_bounds && value > f->bounds[i])
        i++;
      s->buckets[i]++;
      s->sum += value;
      s->count++;
    }
  g_mutex_unlock (&m->lock);
}

double
srv_metrics_get (SrvMetrics *m,
                 const char *name,
                 const char *labels)
{
  Family *f;
  Series *s = NULL;
  double value = 0;

  g_mutex_lock (&m->lock);
  f = g_hash_table_lookup (m->families, name);
  if (f != NULL && f->type != SRV_METRIC_HISTOGRAM)
    s = g_hash_table_lookup (f->series, labels ? labels : "");
  if (s != NULL)
    value = s->value;
  g_mutex_unlock (&m->lock);
  return value;
}

void
srv_metrics_add_collector (SrvMetrics            *m,
                           SrvMetricsCollectFunc  func,
                           gpointer               user_data)
{
  Collector c = { func, user_data };

  g_mutex_lock (&m->collect_lock);
  g_array_append_val (m->collectors, c);
  g_mutex_unlock (&m->collect_lock);
}

/* The shortest of %.15g..%.17g that reads back exactly: 0.1, not 0.10000000000000001. */
static const char *
format_double (char   *buf,
               gsize   size,
               double  v)
{
  for (int precision = 15; precision <= 17; precision++)
    {
      char format[8];

      g_snprintf (format, sizeof format, "%%.%dg", precision);
      g_ascii_formatd (buf, size, format, v);
      if (g_ascii_strtod (buf, NULL) == v)
        break;
    }
  return buf;
}

static void
append_value (GString *out,
              double   v)
{
  char buf[G_ASCII_DTOSTR_BUF_SIZE];

  if (isnan (v))
    g_string_append (out, "NaN");
  else if (isinf (v))
    g_string_append (out, v > 0 ? "+Inf" : "-Inf");
  else if (v == floor (v) && fabs (v) < 1e15)
    g_string_append_printf (out, "%.0f", v);
  else
    g_string_append (out, format_double (buf, sizeof buf, v));
}

static void
append_series_name (GString    *out,
                    const char *name,
                    const char *suffix,
                    const char *labels,
                    const char *extra)
{
  gboolean has_labels = labels != NULL && *labels != '\0';

  g_string_append (out, name);
  g_string_append (out, suffix);
  if (has_labels || extra != NULL)
    {
      g_string_append_c (out, '{');
      if (has_labels)
        g_string_append (out, labels);
      if (has_labels && extra != NULL)
        g_string_append_c (out, ',');
      if (extra != NULL)
        g_string_append (out, extra);
      g_string_append_c (out, '}');
    }
  g_string_append_c (out, ' ');
}

static int
compare_strings (gconstpointer a,
                 gconstpointer b)
{
  return strcmp (*(char * const *) a, *(char * const *) b);
}

/* g_hash_table_get_keys_as_ptr_array() arrives in GLib 2.76. */
static GPtrArray *
sorted_keys (GHashTable *table)
{
  GPtrArray *keys = g_ptr_array_sized_new (g_hash_table_size (table));
  GHashTableIter iter;
  gpointer key;

  g_hash_table_iter_init (&iter, table);
  while (g_hash_table_iter_next (&iter, &key, NULL))
    g_ptr_array_add (keys, key);
  g_ptr_array_sort (keys, compare_strings);
  return keys;
}

static void
render_family (GString *out,
               Family  *f)
{
  static const char *type_names[] = { "counter", "gauge", "histogram" };
  g_autoptr(GPtrArray) keys = sorted_keys (f->series);

  g_string_append_printf (out, "# HELP %s ", f->name);
  for (const char *c = f->help; *c; c++)
    {
      if (*c == '\\')
        g_string_append (out, "\\\\");
      else if (*c == '\n')
        g_string_append (out, "\\n");
      else
        g_string_append_c (out, *c);
    }
  g_string_append_printf (out, "\n# TYPE %s %s\n", f->name, type_names[f->type]);

  for (guint k = 0; k < keys->len; k++)
    {
      const char *labels = keys->pdata[k];
      Series *s = g_hash_table_lookup (f->series, labels);
      guint64 cumulative = 0;

      if (f->type != SRV_METRIC_HISTOGRAM)
        {
          append_series_name (out, f->name, "", labels, NULL);
          append_value (out, s->value);
          g_string_append_c (out, '\n');
          continue;
        }

      for (guint i = 0; i <= f->n_bounds; i++)
        {
          char le[G_ASCII_DTOSTR_BUF_SIZE + 8];

          cumulative += s->buckets[i];
          if (i < f->n_bounds)
            {
              char num[G_ASCII_DTOSTR_BUF_SIZE];

              g_snprintf (le, sizeof le, "le=\"%s\"",
                          format_double (num, sizeof num, f->bounds[i]));
            }
          else
            g_strlcpy (le, "le=\"+Inf\"", sizeof le);
          append_series_name (out, f->name, "_bucket", labels, le);
          g_string_append_printf (out, "%" G_GUINT64_FORMAT "\n", cumulative);
        }
      append_series_name (out, f->name, "_sum", labels, NULL);
      append_value (out, s->sum);
      g_string_append_c (out, '\n');
      append_series_name (out, f->name, "_count", labels, NULL);
      g_string_append_printf (out, "%" G_GUINT64_FORMAT "\n", s->count);
    }
}

char *
srv_metrics_render (SrvMetrics *m)
{
  GString *out = g_string_sized_new (4096);
  g_autoptr(GPtrArray) names = NULL;

  /* One scrape at a time runs the collectors, so two scrapes cannot interleave their gauges. */
  g_mutex_lock (&m->collect_lock);
  for (guint i = 0; i < m->collectors->len; i++)
    {
      Collector *c = &g_array_index (m->collectors, Collector, i);

      c->func (m, c->user_data);
    }

  g_mutex_lock (&m->lock);
  names = sorted_keys (m->families);
  for (guint i = 0; i < names->len; i++)
    render_family (out, g_hash_table_lookup (m->families, names->pdata[i]));
  g_mutex_unlock (&m->lock);
  g_mutex_unlock (&m->collect_lock);

  return g_string_free (out, FALSE);
}

char *
srv_metrics_labels (const char *first_name,
                    ...)
{
  GString *out = g_string_new (NULL);
  const char *name = first_name;
  va_list args;

  va_start (args, first_name);
  while (name != NULL)
    {
      const char *value = va_arg (args, const char *);

      if (out->len > 0)
        g_string_append_c (out, ',');
      g_string_append_printf (out, "%s=\"", name);
      for (const char *c = value ? value : ""; *c; c++)
        {
          if (*c == '\\' || *c == '"')
            g_string_append_c (out, '\\');
          if (*c == '\n')
            g_string_append (out, "\\n");
          else
            g_string_append_c (out, *c);
        }
      g_string_append_c (out, '"');
      name = va_arg (args, const char *);
    }
  va_end (args);
  return g_string_free (out, FALSE);
}
