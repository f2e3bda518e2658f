/* test-ratelimit.c - token buckets with a stepped clock */
#include "config.h"

#include "srv-ratelimit.h"

#define S G_GINT64_CONSTANT (1000000)

static void
test_ratelimit_burst_then_refill (void)
{
  g_autoptr(SrvRateLimit) rl = srv_ratelimit_new (3, 0.5, 16);
  gint64 now = 1000 * S;
  guint retry = 0;

  for (int i = 0; i < 3; i++)
    g_assert_true (srv_ratelimit_take (rl, "a", now, &retry));
  g_assert_false (srv_ratelimit_take (rl, "a", now, &retry));
  g_assert_cmpuint (retry, ==, 2);              /* one token per 2 s */
  /* Another key has its own bucket. */
  g_assert_true (srv_ratelimit_take (rl, "b", now, &retry));

  g_assert_false (srv_ratelimit_take (rl, "a", now + S, &retry));
  g_assert_cmpuint (retry, ==, 1);
  g_assert_true (srv_ratelimit_take (rl, "a", now + 2 * S, &retry));
  g_assert_false (srv_ratelimit_take (rl, "a", now + 2 * S, &retry));

  /* A long pause refills only up to the burst. */
  now += 3600 * S;
  for (int i = 0; i < 3; i++)
    g_assert_true (srv_ratelimit_take (rl, "a", now, &retry));
  g_assert_false (srv_ratelimit_take (rl, "a", now, &retry));
}

static void
test_ratelimit_retry_after_rounds_up (void)
{
  g_autoptr(SrvRateLimit) rl = srv_ratelimit_new (1, 1.0 / 30, 16);
  guint retry = 0;

  g_assert_true (srv_ratelimit_take (rl, "k", 0, &retry));
  g_assert_false (srv_ratelimit_take (rl, "k", S / 2, &retry));
  g_assert_cmpuint (retry, ==, 30);             /* 29.5 s left, never 0 */
  g_assert_false (srv_ratelimit_take (rl, "k", 29 * S + S / 2, &retry));
  g_assert_cmpuint (retry, ==, 1);
  g_assert_true (srv_ratelimit_take (rl, "k", 30 * S, &retry));
}

/* A flood of fresh keys never grows the table past its bound, and a key that is being
 * limited keeps its state while idle full buckets are what gets dropped. */
static void
test_ratelimit_bounded (void)
{
  g_autoptr(SrvRateLimit) rl = srv_ratelimit_new (2, 1, 64);
  guint retry = 0;

  g_assert_true (srv_ratelimit_take (rl, "victim", 0, &retry));
  g_assert_true (srv_ratelimit_take (rl, "victim", 0, &retry));
  for (int i = 0; i < 62; i++)
    {
      g_autofree char *key = g_strdup_printf ("idle-%d", i);

      g_assert_true (srv_ratelimit_take (rl, key, 0, &retry));
    }
  g_assert_cmpuint (srv_ratelimit_size (rl), ==, 63);
  /* At 1.5 s the idle buckets (one token used) are full again; the victim (two used) is
   * not, so making room drops only the idle ones. */
  for (int i = 0; i < 10; i++)
    {
      g_autofree char *key = g_strdup_printf ("new-%d", i);

      g_assert_true (srv_ratelimit_take (rl, key, 3 * S / 2, &retry));
    }
  g_assert_cmpuint (srv_ratelimit_size (rl), <=, 64);
  g_assert_true (srv_ratelimit_take (rl, "victim", 3 * S / 2, &retry));
  g_assert_false (srv_ratelimit_take (rl, "victim", 3 * S / 2, &retry));

  for (int i = 0; i < 100000; i++)
    {
      g_autofree char *key = g_strdup_printf ("flood-%d", i);

      srv_ratelimit_take (rl, key, 2 * S, &retry);
      g_assert_cmpuint (srv_ratelimit_size (rl), <=, 64);
    }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/srv/ratelimit/burst-then-refill", test_ratelimit_burst_then_refill);
  g_test_add_func ("/srv/ratelimit/retry-after-rounds-up", test_ratelimit_retry_after_rounds_up);
  g_test_add_func ("/srv/ratelimit/bounded", test_ratelimit_bounded);
  return g_test_run ();
}
