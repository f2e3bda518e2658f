/* tr-rng.h - a small, seedable random generator (PCG32) for initialisation, shuffling and
 * augmentation: the same seed gives the same run on any machine and thread count */
#pragma once

#include <glib.h>
#include <math.h>
#include <stdint.h>

typedef struct {
  uint64_t state, inc;
} TrRng;

static inline uint32_t
tr_rng_next (TrRng *r)
{
  uint64_t old = r->state;
  uint32_t xorshifted, rot;

  r->state = old * 6364136223846793005ULL + r->inc;
  xorshifted = (uint32_t) (((old >> 18u) ^ old) >> 27u);
  rot = (uint32_t) (old >> 59u);
  return (xorshifted >> rot) | (xorshifted << ((32 - rot) & 31));
}

/* @stream separates generators with the same seed (one per image, per epoch, ...) */
static inline void
tr_rng_init (TrRng *r, uint64_t seed, uint64_t stream)
{
  r->state = 0;
  r->inc = (stream << 1u) | 1u;
  tr_rng_next (r);
  r->state += seed;
  tr_rng_next (r);
}

/* uniform in [0, 1) */
static inline float
tr_rng_uniform (TrRng *r)
{
  return (tr_rng_next (r) >> 8) * (1.0f / 16777216.0f);
}

/* uniform integer in [0, n) */
static inline uint32_t
tr_rng_below (TrRng *r, uint32_t n)
{
  return (uint32_t) (((uint64_t) tr_rng_next (r) * n) >> 32);
}

static inline float
tr_rng_normal (TrRng *r)
{
  float u1 = (tr_rng_next (r) + 1.0f) * (1.0f / 4294967296.0f), u2 = tr_rng_uniform (r);

  return sqrtf (-2.0f * logf (u1)) * cosf (2.0f * (float) G_PI * u2);
}
