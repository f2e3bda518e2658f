/* load-plan.c - parse --phases and turn it into an open-loop arrival schedule */
#include "config.h"

#include "load-plan.h"

#include <math.h>
#include <string.h>

G_DEFINE_QUARK (load-plan-error-quark, load_plan_error)

#define LOAD_PLAN_SYNTAX "ramp:DURATION:FROM-TO/s, steady:DURATION:RATE/s or pause:DURATION"

/* A number that is all of @text (no sign, finite), or FALSE. */
static gboolean
parse_number (const char *text,
              gsize       len,
              double     *out)
{
  g_autofree char *copy = g_strndup (text, len);
  char *end = NULL;
  double v;

  if (len == 0 || !(g_ascii_isdigit (copy[0]) || copy[0] == '.'))
    return FALSE;
  v = g_ascii_strtod (copy, &end);
  if (end == copy || *end != '\0' || !isfinite (v) || v < 0)
    return FALSE;
  *out = v;
  return TRUE;
}

static gboolean
parse_duration (const char *text,
                double     *out_s)
{
  static const struct { const char *unit; double scale; } units[] = {
    { "ms", 0.001 }, { "min", 60 }, { "s", 1 }, { "m", 60 }, { "h", 3600 },
  };
  gsize len = strlen (text);

  for (guint i = 0; i < G_N_ELEMENTS (units); i++)
    {
      gsize ulen = strlen (units[i].unit);
      double v;

      if (len > ulen && g_str_has_suffix (text, units[i].unit) &&
          parse_number (text, len - ulen, &v))
        {
          *out_s = v * units[i].scale;
          return TRUE;
        }
    }
  return FALSE;
}

/* "50/s", "600/min" → arrivals per second. */
static gboolean
parse_rate (const char *text,
            gsize       len,
            double     *out)
{
  g_autofree char *copy = g_strndup (text, len);
  const char *slash = strrchr (copy, '/');
  double v, per;

  if (slash == NULL)
    return FALSE;
  if (strcmp (slash, "/s") == 0)
    per = 1;
  else if (strcmp (slash, "/min") == 0 || strcmp (slash, "/m") == 0)
    per = 60;
  else
    return FALSE;
  if (!parse_number (copy, slash - copy, &v))
    return FALSE;
  *out = v / per;
  return TRUE;
}

static gboolean
parse_phase (const char  *text,
             guint        index,
             LoadPhase   *phase,
             GError     **error)
{
  g_auto(GStrv) parts = g_strsplit (text, ":", 4);
  guint n = g_strv_length (parts);
  const char *kind = n > 0 ? parts[0] : "";

#define FAIL(...) G_STMT_START {                                                          \
    g_autofree char *why_ = g_strdup_printf (__VA_ARGS__);                                \
    g_set_error (error, LOAD_PLAN_ERROR, LOAD_PLAN_ERROR_INVALID,                          \
                 "phase %u '%s': %s (each phase is " LOAD_PLAN_SYNTAX ")", index + 1, text, \
                 why_);                                                                   \
    return FALSE;                                                                         \
  } G_STMT_END

  if (strcmp (kind, "ramp") != 0 && strcmp (kind, "steady") != 0 && strcmp (kind, "pause") != 0)
    FAIL ("'%s' is not ramp, steady or pause", kind);
  if (strcmp (kind, "pause") == 0 ? n != 2 : n != 3)
    FAIL ("%s takes %s", kind, strcmp (kind, "pause") == 0 ? "only a duration"
                                                            : "a duration and a rate");
  if (!parse_duration (parts[1], &phase->duration_s))
    FAIL ("duration '%s' is not a number with a unit (ms, s, m, h), e.g. 30s", parts[1]);
  if (phase->duration_s <= 0 || phase->duration_s > LOAD_PLAN_MAX_PHASE_S)
    FAIL ("duration '%s' must be above 0 and at most 24 h", parts[1]);

  if (strcmp (kind, "pause") == 0)
    phase->rate_from = phase->rate_to = 0;
  else if (strcmp (kind, "steady") == 0)
    {
      if (!parse_rate (parts[2], strlen (parts[2]), &phase->rate_from))
        FAIL ("rate '%s' is not RATE/s or RATE/min, e.g. 50/s", parts[2]);
      phase->rate_to = phase->rate_from;
    }
  else
    {
      const char *dash = strchr (parts[2], '-');

      if (dash == NULL ||
          !parse_number (parts[2], dash - parts[2], &phase->rate_from) ||
          !parse_rate (dash + 1, strlen (dash + 1), &phase->rate_to))
        FAIL ("rate '%s' is not FROM-TO/s or FROM-TO/min, e.g. 0-50/s", parts[2]);
      /* the unit after TO applies to FROM as well */
      if (g_str_has_suffix (parts[2], "/min") || g_str_has_suffix (parts[2], "/m"))
        phase->rate_from /= 60;
    }
  if (phase->rate_from > LOAD_PLAN_MAX_RATE || phase->rate_to > LOAD_PLAN_MAX_RATE)
    FAIL ("rates above %.0f/s are not supported", LOAD_PLAN_MAX_RATE);
#undef FAIL

  phase->kind = g_strdup (kind);
  phase->name = g_strdup_printf ("%s-%u", kind, index + 1);
  return TRUE;
}

LoadPlan *
load_plan_parse (const char  *text,
                 GError     **error)
{
  g_autoptr(LoadPlan) plan = g_new0 (LoadPlan, 1);
  g_auto(GStrv) pieces = NULL;
  guint n;

  g_return_val_if_fail (text != NULL, NULL);

  pieces = g_strsplit (text, ",", -1);
  n = g_strv_length (pieces);
  if (n == 0 || (n == 1 && g_strstrip (pieces[0])[0] == '\0'))
    {
      g_set_error (error, LOAD_PLAN_ERROR, LOAD_PLAN_ERROR_INVALID,
                   "no phases given (each phase is " LOAD_PLAN_SYNTAX ")");
      return NULL;
    }
  if (n > LOAD_PLAN_MAX_PHASES)
    {
      g_set_error (error, LOAD_PLAN_ERROR, LOAD_PLAN_ERROR_INVALID,
                   "%u phases given; at most %d are supported", n, LOAD_PLAN_MAX_PHASES);
      return NULL;
    }
  plan->phases = g_new0 (LoadPhase, n);
  for (guint i = 0; i < n; i++)
    {
      LoadPhase *phase = &plan->phases[i];

      if (!parse_phase (g_strstrip (pieces[i]), i, phase, error))
        return NULL;
      plan->n_phases++;
      phase->start_s = plan->total_s;
      plan->total_s += phase->duration_s;
    }
  return g_steal_pointer (&plan);
}

void
load_plan_free (LoadPlan *plan)
{
  if (plan == NULL)
    return;
  for (guint i = 0; i < plan->n_phases; i++)
    {
      g_free (plan->phases[i].name);
      g_free (plan->phases[i].kind);
    }
  g_free (plan->phases);
  g_free (plan);
}

int
load_plan_phase_at (const LoadPlan *plan,
                    double          t)
{
  if (t < 0)
    return -1;
  for (guint i = 0; i < plan->n_phases; i++)
    if (t < plan->phases[i].start_s + plan->phases[i].duration_s)
      return (int) i;
  return -1;
}

double
load_plan_rate_at (const LoadPlan *plan,
                   double          t)
{
  int i = load_plan_phase_at (plan, t);
  const LoadPhase *p;

  if (i < 0)
    return 0;
  p = &plan->phases[i];
  return p->rate_from + (p->rate_to - p->rate_from) * (t - p->start_s) / p->duration_s;
}

double
load_plan_arrivals_by (const LoadPlan *plan,
                       double          t)
{
  double sum = 0;

  for (guint i = 0; i < plan->n_phases && t > plan->phases[i].start_s; i++)
    {
      const LoadPhase *p = &plan->phases[i];
      double dt = MIN (t - p->start_s, p->duration_s);

      /* ∫ from + (to - from) x / T dx over [0, dt] */
      sum += p->rate_from * dt + (p->rate_to - p->rate_from) * dt * dt / (2 * p->duration_s);
    }
  return sum;
}

char *
load_phase_describe (const LoadPhase *phase)
{
  if (strcmp (phase->kind, "pause") == 0)
    return g_strdup_printf ("pause %gs", phase->duration_s);
  if (strcmp (phase->kind, "steady") == 0)
    return g_strdup_printf ("steady %gs at %g/s", phase->duration_s, phase->rate_from);
  return g_strdup_printf ("ramp %gs %g→%g/s", phase->duration_s, phase->rate_from,
                          phase->rate_to);
}
