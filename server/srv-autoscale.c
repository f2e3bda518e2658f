/* srv-autoscale.c - the worker pool's scaling decision (pure: no threads, no clock) */
#include "config.h"

#include "srv-autoscale.h"

guint
srv_autoscale_desired (const SrvAutoscalePolicy *policy,
                       gint64                    depth)
{
  guint64 want;

  g_return_val_if_fail (policy->min >= 1 && policy->min <= policy->max, 1);
  g_return_val_if_fail (policy->target >= 1, policy->min);

  if (depth <= 0)
    return policy->min;
  want = ((guint64) depth + policy->target - 1) / policy->target;
  return (guint) CLAMP (want, policy->min, policy->max);
}

guint
srv_autoscale_step (const SrvAutoscalePolicy *policy,
                    SrvAutoscaleState        *state,
                    gint64                    depth,
                    gint64                    now_us)
{
  guint desired = srv_autoscale_desired (policy, depth);

  if (state->current == 0 || desired >= state->current)
    {
      /* First decision, growth or a steady queue: take it now and restart the quiet period. */
      state->current = desired;
      state->last_high_us = now_us;
    }
  else if (now_us - state->last_high_us >= policy->cooldown_us)
    {
      /* Quiet for a whole cooldown: shrink straight to what the queue wants now. */
      state->current = desired;
      state->last_high_us = now_us;
    }
  state->current = CLAMP (state->current, policy->min, policy->max);
  return state->current;
}
