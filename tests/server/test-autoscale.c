/* test-autoscale.c - the autoscaler's decision: clamp(ceil(depth/target)), out at once, in
 * after the cooldown */
#include "config.h"

#include "srv-autoscale.h"

#define S(x) ((gint64) (x) * G_USEC_PER_SEC)

static void
test_desired (void)
{
  const SrvAutoscalePolicy p = { .min = 1, .max = 4, .target = 8, .cooldown_us = S (30) };
  static const struct { gint64 depth; guint want; } cases[] = {
    { -5, 1 }, { 0, 1 }, { 1, 1 }, { 8, 1 }, { 9, 2 }, { 16, 2 }, { 17, 3 }, { 24, 3 },
    { 25, 4 }, { 32, 4 }, { 33, 4 }, { G_MAXINT64 / 2, 4 },
  };
  const SrvAutoscalePolicy fixed = { .min = 3, .max = 3, .target = 1, .cooldown_us = 0 };
  const SrvAutoscalePolicy floor2 = { .min = 2, .max = 64, .target = 5, .cooldown_us = 0 };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    g_assert_cmpuint (srv_autoscale_desired (&p, cases[i].depth), ==, cases[i].want);
  g_assert_cmpuint (srv_autoscale_desired (&fixed, 0), ==, 3);
  g_assert_cmpuint (srv_autoscale_desired (&fixed, 1000), ==, 3);
  g_assert_cmpuint (srv_autoscale_desired (&floor2, 1), ==, 2);
  g_assert_cmpuint (srv_autoscale_desired (&floor2, 11), ==, 3);
  g_assert_cmpuint (srv_autoscale_desired (&floor2, 320), ==, 64);
  g_assert_cmpuint (srv_autoscale_desired (&floor2, 321), ==, 64);
}

static void
test_out_at_once_in_after_cooldown (void)
{
  const SrvAutoscalePolicy p = { .min = 1, .max = 4, .target = 10, .cooldown_us = S (30) };
  SrvAutoscaleState st = { 0 };

  g_assert_cmpuint (srv_autoscale_step (&p, &st, 0, S (0)), ==, 1);
  /* a burst: straight to max on the same tick */
  g_assert_cmpuint (srv_autoscale_step (&p, &st, 300, S (1)), ==, 4);
  /* the queue drains; nothing shrinks before the cooldown has passed since it was high */
  g_assert_cmpuint (srv_autoscale_step (&p, &st, 15, S (2)), ==, 4);
  g_assert_cmpuint (srv_autoscale_step (&p, &st, 0, S (20)), ==, 4);
  g_assert_cmpuint (srv_autoscale_step (&p, &st, 0, S (30)), ==, 4);
  g_assert_cmpuint (srv_autoscale_step (&p, &st, 0, S (31)), ==, 1);
  g_assert_cmpuint (srv_autoscale_step (&p, &st, 0, S (100)), ==, 1);
}

static void
test_new_high_restarts_cooldown (void)
{
  const SrvAutoscalePolicy p = { .min = 1, .max = 8, .target = 1, .cooldown_us = S (10) };
  SrvAutoscaleState st = { 0 };

  g_assert_cmpuint (srv_autoscale_step (&p, &st, 5, S (0)), ==, 5);
  g_assert_cmpuint (srv_autoscale_step (&p, &st, 1, S (8)), ==, 5);
  /* the queue wants 5 again: the quiet period starts over */
  g_assert_cmpuint (srv_autoscale_step (&p, &st, 5, S (9)), ==, 5);
  g_assert_cmpuint (srv_autoscale_step (&p, &st, 2, S (18)), ==, 5);
  /* shrinks to what the queue wants at the moment of shrinking, not to the minimum */
  g_assert_cmpuint (srv_autoscale_step (&p, &st, 2, S (19)), ==, 2);
  /* growing again is immediate even right after a shrink */
  g_assert_cmpuint (srv_autoscale_step (&p, &st, 7, S (19) + 1), ==, 7);
  g_assert_cmpuint (srv_autoscale_step (&p, &st, 100, S (19) + 2), ==, 8);
}

static void
test_zero_cooldown_follows_queue (void)
{
  const SrvAutoscalePolicy p = { .min = 2, .max = 6, .target = 4, .cooldown_us = 0 };
  SrvAutoscaleState st = { 0 };

  g_assert_cmpuint (srv_autoscale_step (&p, &st, 24, 0), ==, 6);
  g_assert_cmpuint (srv_autoscale_step (&p, &st, 12, 1), ==, 3);
  g_assert_cmpuint (srv_autoscale_step (&p, &st, 0, 2), ==, 2);
}

int
main (int argc, char *argv[])
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/srv/autoscale/desired", test_desired);
  g_test_add_func ("/srv/autoscale/out-at-once-in-after-cooldown",
                   test_out_at_once_in_after_cooldown);
  g_test_add_func ("/srv/autoscale/new-high-restarts-cooldown", test_new_high_restarts_cooldown);
  g_test_add_func ("/srv/autoscale/zero-cooldown", test_zero_cooldown_follows_queue);
  return g_test_run ();
}
