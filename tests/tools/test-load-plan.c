/* test-load-plan.c - magpie-load's pure parts: phases, the arrival schedule, percentiles and
 * the /metrics parser */
#include "config.h"

#include <math.h>

#include "load-plan.h"
#include "load-report.h"

static void
test_parse (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(LoadPlan) plan = load_plan_parse ("ramp:30s:0-50/s, steady:1m:50/s,"
                                              "ramp:500ms:600-0/min,pause:2s", &error);

  g_assert_no_error (error);
  g_assert_cmpuint (plan->n_phases, ==, 4);
  g_assert_cmpstr (plan->phases[0].name, ==, "ramp-1");
  g_assert_cmpstr (plan->phases[1].name, ==, "steady-2");
  g_assert_cmpstr (plan->phases[3].kind, ==, "pause");
  g_assert_cmpfloat_with_epsilon (plan->phases[1].start_s, 30, 1e-9);
  g_assert_cmpfloat_with_epsilon (plan->phases[1].duration_s, 60, 1e-9);
  /* per minute: the unit after TO applies to FROM too */
  g_assert_cmpfloat_with_epsilon (plan->phases[2].rate_from, 10, 1e-9);
  g_assert_cmpfloat_with_epsilon (plan->phases[2].rate_to, 0, 1e-9);
  g_assert_cmpfloat_with_epsilon (plan->phases[2].duration_s, 0.5, 1e-9);
  g_assert_cmpfloat_with_epsilon (plan->total_s, 92.5, 1e-9);
}

static void
test_schedule (void)
{
  g_autoptr(LoadPlan) plan = load_plan_parse ("ramp:30s:0-50/s,steady:60s:50/s,"
                                              "ramp:30s:50-0/s", NULL);

  g_assert_nonnull (plan);
  g_assert_cmpfloat_with_epsilon (load_plan_rate_at (plan, 15), 25, 1e-9);
  g_assert_cmpfloat_with_epsilon (load_plan_rate_at (plan, 60), 50, 1e-9);
  g_assert_cmpfloat_with_epsilon (load_plan_rate_at (plan, 105), 25, 1e-9);
  g_assert_cmpfloat (load_plan_rate_at (plan, 120), ==, 0);
  g_assert_cmpfloat (load_plan_rate_at (plan, -1), ==, 0);
  /* a ramp from 0 to 50 over 30 s brings 750 users; the steady 3,000; the whole plan 4,500 */
  g_assert_cmpfloat_with_epsilon (load_plan_arrivals_by (plan, 30), 750, 1e-6);
  g_assert_cmpfloat_with_epsilon (load_plan_arrivals_by (plan, 15), 187.5, 1e-6);
  g_assert_cmpfloat_with_epsilon (load_plan_arrivals_by (plan, 90), 3750, 1e-6);
  g_assert_cmpfloat_with_epsilon (load_plan_arrivals_by (plan, 1000), 4500, 1e-6);
  g_assert_cmpint (load_plan_phase_at (plan, 0), ==, 0);
  g_assert_cmpint (load_plan_phase_at (plan, 30), ==, 1);
  g_assert_cmpint (load_plan_phase_at (plan, 119.9), ==, 2);
  g_assert_cmpint (load_plan_phase_at (plan, 120), ==, -1);
}

static void
test_bad (void)
{
  static const struct { const char *text; const char *says; } cases[] = {
    { "", "no phases" },
    { "ramp:30x:0-50/s", "duration '30x'" },
    { "ramp:30s:50/s", "FROM-TO" },
    { "steady:30s:0-50/s", "RATE/s" },
    { "steady:30s", "a duration and a rate" },
    { "pause:1s:5/s", "only a duration" },
    { "walk:1s:1/s", "'walk' is not ramp, steady or pause" },
    { "steady:0s:1/s", "above 0" },
    { "steady:25h:1/s", "at most 24 h" },
    { "steady:1s:-5/s", "RATE/s" },
    { "steady:1s:nan/s", "RATE/s" },
    { "steady:1s:5e5/s", "above 100000" },
    { "steady:1s:5/s,,steady:1s:5/s", "phase 2" },
    { "steady:1s:5/hour", "RATE/s" },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(LoadPlan) plan = load_plan_parse (cases[i].text, &error);

      g_assert_null (plan);
      g_assert_error (error, LOAD_PLAN_ERROR, LOAD_PLAN_ERROR_INVALID);
      if (strstr (error->message, cases[i].says) == NULL)
        g_error ("'%s': message '%s' lacks '%s'", cases[i].text, error->message, cases[i].says);
    }
}

static void
test_percentile (void)
{
  g_autoptr(GArray) a = g_array_new (FALSE, FALSE, sizeof (double));

  g_assert_true (isnan (load_percentile (a, 0.5)));
  for (int i = 1; i <= 100; i++)
    {
      double v = i;

      g_array_append_val (a, v);
    }
  /* nearest rank: p95 of 1..100 is 95, p99 is 99, p50 is 50 */
  g_assert_cmpfloat (load_percentile (a, 0.50), ==, 50);
  g_assert_cmpfloat (load_percentile (a, 0.95), ==, 95);
  g_assert_cmpfloat (load_percentile (a, 0.99), ==, 99);
  g_assert_cmpfloat (load_percentile (a, 1.0), ==, 100);
}

static void
test_scrape (void)
{
  LoadScrape s;

  g_assert_true (load_scrape_parse (
    "# HELP magpied_queue_depth Jobs waiting\n"
    "# TYPE magpied_queue_depth gauge\n"
    "magpied_queue_depth 12\n"
    "magpied_queue_leased 3\n"
    "magpied_workers_current 2\n"
    "magpied_jobs_total{result=\"dead\"} 1\n"
    "magpied_jobs_total{result=\"done\"} 4500\n"
    "magpied_http_request_duration_seconds_bucket{le=\"0.5\"} 7\n", &s));
  g_assert_cmpfloat (s.queue_depth, ==, 12);
  g_assert_cmpfloat (s.queue_leased, ==, 3);
  g_assert_cmpfloat (s.workers, ==, 2);
  g_assert_cmpfloat (s.jobs_done, ==, 4500);
  g_assert_true (isnan (s.workers_desired));
  g_assert_true (isnan (s.sse_subscribers));

  g_assert_false (load_scrape_parse ("<html>not metrics</html>", &s));
  g_assert_false (load_scrape_parse ("", &s));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/tools/load/plan/parse", test_parse);
  g_test_add_func ("/tools/load/plan/schedule", test_schedule);
  g_test_add_func ("/tools/load/plan/bad", test_bad);
  g_test_add_func ("/tools/load/percentile", test_percentile);
  g_test_add_func ("/tools/load/scrape", test_scrape);
  return g_test_run ();
}
