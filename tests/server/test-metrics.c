/* test-metrics.c - the Prometheus registry: exposition format, histograms, collectors */
#include "config.h"

#include "srv-metrics.h"

static void
test_counters_and_gauges (void)
{
  g_autoptr(SrvMetrics) m = srv_metrics_new ();
  g_autofree char *get = srv_metrics_labels ("method", "GET", "code", "200", NULL);
  g_autofree char *put = srv_metrics_labels ("method", "PUT", "code", "403", NULL);
  g_autofree char *text = NULL;

  srv_metrics_declare (m, "t_requests_total", SRV_METRIC_COUNTER, "Requests", NULL, 0);
  srv_metrics_declare (m, "t_depth", SRV_METRIC_GAUGE, "Depth\nwith newline", NULL, 0);
  srv_metrics_add (m, "t_requests_total", get, 1);
  srv_metrics_add (m, "t_requests_total", get, 2);
  srv_metrics_add (m, "t_requests_total", put, 1);
  srv_metrics_add (m, "t_requests_total", put, -5);  /* counters never go down */
  srv_metrics_set (m, "t_depth", NULL, 7);
  srv_metrics_set (m, "t_depth", NULL, 4.5);

  g_assert_cmpfloat (srv_metrics_get (m, "t_requests_total", get), ==, 3);
  g_assert_cmpfloat (srv_metrics_get (m, "t_requests_total", put), ==, 1);
  g_assert_cmpfloat (srv_metrics_get (m, "t_depth", NULL), ==, 4.5);
  g_assert_cmpfloat (srv_metrics_get (m, "t_missing", NULL), ==, 0);

  text = srv_metrics_render (m);
  g_assert_cmpstr (text, ==,
                   "# HELP t_depth Depth\\nwith newline\n"
                   "# TYPE t_depth gauge\n"
                   "t_depth 4.5\n"
                   "# HELP t_requests_total Requests\n"
                   "# TYPE t_requests_total counter\n"
                   "t_requests_total{method=\"GET\",code=\"200\"} 3\n"
                   "t_requests_total{method=\"PUT\",code=\"403\"} 1\n");
}

static void
test_histogram (void)
{
  static const double bounds[] = { 0.1, 1.0 };
  g_autoptr(SrvMetrics) m = srv_metrics_new ();
  g_autofree char *text = NULL;

  srv_metrics_declare (m, "t_seconds", SRV_METRIC_HISTOGRAM, "Latency", bounds, 2);
  srv_metrics_observe (m, "t_seconds", "api=\"s3\"", 0.05);
  srv_metrics_observe (m, "t_seconds", "api=\"s3\"", 0.1);   /* le is inclusive */
  srv_metrics_observe (m, "t_seconds", "api=\"s3\"", 0.5);
  srv_metrics_observe (m, "t_seconds", "api=\"s3\"", 30);
  text = srv_metrics_render (m);
  g_assert_cmpstr (text, ==,
                   "# HELP t_seconds Latency\n"
                   "# TYPE t_seconds histogram\n"
                   "t_seconds_bucket{api=\"s3\",le=\"0.1\"} 2\n"
                   "t_seconds_bucket{api=\"s3\",le=\"1\"} 3\n"
                   "t_seconds_bucket{api=\"s3\",le=\"+Inf\"} 4\n"
                   "t_seconds_sum{api=\"s3\"} 30.65\n"
                   "t_seconds_count{api=\"s3\"} 4\n");
}

static void
collect (SrvMetrics *m,
         gpointer    user_data)
{
  int *calls = user_data;

  (*calls)++;
  srv_metrics_set (m, "t_subscribers", NULL, *calls * 10);
}

static void
test_collector_and_escaping (void)
{
  g_autoptr(SrvMetrics) m = srv_metrics_new ();
  g_autofree char *labels = srv_metrics_labels ("path", "a\"b\\c\nd", NULL);
  g_autofree char *first = NULL;
  g_autofree char *second = NULL;
  int calls = 0;

  g_assert_cmpstr (labels, ==, "path=\"a\\\"b\\\\c\\nd\"");
  srv_metrics_declare (m, "t_subscribers", SRV_METRIC_GAUGE, "Subscribers", NULL, 0);
  srv_metrics_add_collector (m, collect, &calls);
  first = srv_metrics_render (m);
  second = srv_metrics_render (m);
  g_assert_cmpint (calls, ==, 2);
  g_assert_nonnull (strstr (first, "t_subscribers 10\n"));
  g_assert_nonnull (strstr (second, "t_subscribers 20\n"));
}

static void
test_undeclared (void)
{
  if (g_test_subprocess ())
    {
      g_autoptr(SrvMetrics) m = srv_metrics_new ();

      srv_metrics_add (m, "t_typo_total", NULL, 1);
      return;
    }
  g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_failed ();
  g_test_trap_assert_stderr ("*t_typo_total is not declared*");
}

int
main (int argc, char *argv[])
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/srv/metrics/counters-and-gauges", test_counters_and_gauges);
  g_test_add_func ("/srv/metrics/histogram", test_histogram);
  g_test_add_func ("/srv/metrics/collector-and-escaping", test_collector_and_escaping);
  g_test_add_func ("/srv/metrics/undeclared", test_undeclared);
  return g_test_run ();
}
