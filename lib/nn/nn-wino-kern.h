/* nn-wino-kern.h - the Winograd input and output transforms over channels-last tiles,
 * written once on GCC vector types and compiled once per instruction set: nn-wino.c includes
 * it for the baseline (4 floats), nn-wino-avx2.c (8) and nn-wino-avx512.c (16) with their
 * -m flags. The including file defines NN_WINO_VW (vector width in floats) and NN_WINO_ISA
 * (the suffix of the kernel table's name). Each function handles the tiles [t0, t1).
 *
 * Layouts: x (N,H,W,C), o (N,OH,OW,M); the transformed input v holds Cp floats per tile and
 * point, at v + t * v_tile + point * v_point, and the products y Mp floats at
 * y + t * y_tile + point * y_point (P = (m+2)^2 points, T tiles, Cp and Mp the channel
 * counts rounded up to NN_WINO_CH_ALIGN). */

#include <string.h>

#include "nn-wino.h"

#define NN_WINO_CAT_(a, b) a##_##b
#define NN_WINO_CAT(a, b) NN_WINO_CAT_ (a, b)
#define NN_WINO_FN(name) NN_WINO_CAT (name, NN_WINO_ISA)

G_STATIC_ASSERT (NN_WINO_CH_ALIGN % NN_WINO_VW == 0);

typedef float vf __attribute__ ((vector_size (NN_WINO_VW * sizeof (float))));
typedef int32_t vi __attribute__ ((vector_size (NN_WINO_VW * sizeof (float))));

/* @avail floats at @p (at most a vector's worth used); missing lanes are zero */
static inline vf
load_part (const float *p, int64_t avail)
{
  vf v = { 0 };

  memcpy (&v, p, (size_t) MIN (avail, (int64_t) NN_WINO_VW) * sizeof (float));
  return v;
}

static inline vf
load_full (const float *p)
{
  vf v;

  memcpy (&v, p, sizeof v);
  return v;
}

static inline void
store_full (float *p, vf v)
{
  memcpy (p, &v, sizeof v);
}

static inline void
store_part (float *p, vf v, int64_t avail)
{
  if (avail >= NN_WINO_VW)
    memcpy (p, &v, sizeof v);
  else
    memcpy (p, &v, (size_t) avail * sizeof (float));
}

/* (C has no ?: on vectors: select through the comparison masks) */
static inline vf
clamp (vf v, vf lo, vf hi)
{
  vi below = v < lo, above = v > hi;

  v = (vf) (((vi) lo & below) | ((vi) v & ~below));
  return (vf) (((vi) hi & above) | ((vi) v & ~above));
}

/* The window of input rows/columns a tile reads, with a flag per row/column that lies inside
 * the image (outside is the convolution's zero padding). */
static inline const float *
tile_window (const NnWinoShape *s, int64_t t, int n_in, gboolean *row_ok, gboolean *col_ok)
{
  const int64_t per_image = s->th * s->tw;
  const int64_t n = t / per_image, r = t % per_image;
  const int64_t iy0 = (r / s->tw) * s->m - s->pad_t, ix0 = (r % s->tw) * s->m - s->pad_l;

  for (int i = 0; i < n_in; i++)
    {
      row_ok[i] = iy0 + i >= 0 && iy0 + i < s->H;
      col_ok[i] = ix0 + i >= 0 && ix0 + i < s->W;
    }
  /* may point outside the tensor: only entries whose flags are set are read */
  return s->x + ((n * s->H + iy0) * s->W + ix0) * s->C;
}

/* v = B^T d B for F(2x2, 3x3), B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1] */
static void
NN_WINO_FN (nn_wino_input_f2) (const NnWinoShape *s, int64_t t0, int64_t t1)
{
  for (int64_t t = t0; t < t1; t++)
    {
      gboolean row_ok[4], col_ok[4];
      const float *base = tile_window (s, t, 4, row_ok, col_ok);
      float *vt = s->v + t * s->v_tile;

      for (int64_t c = 0; c < s->Cp; c += NN_WINO_VW)
        {
          const int64_t avail = s->C - c;
          vf d[4][4], u[4][4];

          for (int i = 0; i < 4; i++)
            for (int j = 0; j < 4; j++)
              {
                const float *p = base + ((int64_t) i * s->W + j) * s->C + c;

                d[i][j] = (vf) { 0 };
                if (row_ok[i] && col_ok[j] && avail > 0)
                  d[i][j] = avail >= NN_WINO_VW ? load_full (p) : load_part (p, avail);
              }
          for (int j = 0; j < 4; j++)
            {
              vf d0 = d[0][j], d1 = d[1][j], d2 = d[2][j], d3 = d[3][j];

              u[0][j] = d0 - d2;
              u[1][j] = d1 + d2;
              u[2][j] = d2 - d1;
              u[3][j] = d1 - d3;
            }
          for (int i = 0; i < 4; i++)
            {
              vf d0 = u[i][0], d1 = u[i][1], d2 = u[i][2], d3 = u[i][3];
              float *o = vt + (int64_t) (i * 4) * s->v_point + c;
              const int64_t step = s->v_point;

              store_full (o, d0 - d2);
              store_full (o + step, d1 + d2);
              store_full (o + 2 * step, d2 - d1);
              store_full (o + 3 * step, d1 - d3);
            }
        }
    }
}

/* v = B^T d B for F(4x4, 3x3) with the points 0, ±1, ±2, ∞ (Lavin and Gray):
 * B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0; 0 2 -1 -2 1 0;
 *        0 4 0 -5 0 1] */
#define NN_WINO_BT6(d0, d1, d2, d3, d4, d5, r0, r1, r2, r3, r4, r5) \
  do                                                                \
    {                                                               \
      r0 = (d0) * 4.0f - (d2) * 5.0f + (d4);                        \
      r1 = ((d3) + (d4)) - ((d1) + (d2)) * 4.0f;                    \
      r2 = ((d4) - (d3)) + ((d1) - (d2)) * 4.0f;                    \
      r3 = ((d4) - (d2)) + ((d3) - (d1)) * 2.0f;                    \
      r4 = ((d4) - (d2)) + ((d1) - (d3)) * 2.0f;                    \
      r5 = (d1) * 4.0f - (d3) * 5.0f + (d5);                        \
    }                                                               \
  while (0)

static void
NN_WINO_FN (nn_wino_input_f4) (const NnWinoShape *s, int64_t t0, int64_t t1)
{
  const int64_t step = s->v_point;

  for (int64_t t = t0; t < t1; t++)
    {
      gboolean row_ok[6], col_ok[6];
      const float *base = tile_window (s, t, 6, row_ok, col_ok);
      float *vt = s->v + t * s->v_tile;

      for (int64_t c = 0; c < s->Cp; c += NN_WINO_VW)
        {
          const int64_t avail = s->C - c;
          vf u[6][6];

          for (int j = 0; j < 6; j++)
            {
              vf d[6];

              for (int i = 0; i < 6; i++)
                {
                  const float *p = base + ((int64_t) i * s->W + j) * s->C + c;

                  d[i] = (vf) { 0 };
                  if (row_ok[i] && col_ok[j] && avail > 0)
                    d[i] = avail >= NN_WINO_VW ? load_full (p) : load_part (p, avail);
                }
              NN_WINO_BT6 (d[0], d[1], d[2], d[3], d[4], d[5],
                           u[0][j], u[1][j], u[2][j], u[3][j], u[4][j], u[5][j]);
            }
          for (int i = 0; i < 6; i++)
            {
              vf r0, r1, r2, r3, r4, r5;
              float *o = vt + (int64_t) (i * 6) * step + c;

              NN_WINO_BT6 (u[i][0], u[i][1], u[i][2], u[i][3], u[i][4], u[i][5],
                           r0, r1, r2, r3, r4, r5);
              store_full (o, r0);
              store_full (o + step, r1);
              store_full (o + 2 * step, r2);
              store_full (o + 3 * step, r3);
              store_full (o + 4 * step, r4);
              store_full (o + 5 * step, r5);
            }
        }
    }
}

/* The output tile's place and how many of its rows and columns fall inside the output. */
static inline float *
tile_out (const NnWinoShape *s, int64_t t, int64_t *rows, int64_t *cols)
{
  const int64_t per_image = s->th * s->tw;
  const int64_t n = t / per_image, r = t % per_image;
  const int64_t oy = (r / s->tw) * s->m, ox = (r % s->tw) * s->m;

  *rows = MIN (s->m, s->OH - oy);
  *cols = MIN (s->m, s->OW - ox);
  return s->o + ((n * s->OH + oy) * s->OW + ox) * s->M;
}

/* o = A^T y A + bias, clamped, for F(2x2, 3x3), A^T = [1 1 1 0; 0 1 -1 -1] */
static void
NN_WINO_FN (nn_wino_output_f2) (const NnWinoShape *s, int64_t t0, int64_t t1)
{
  const int64_t step = s->y_point;
  const vf lo = (vf) { 0 } + s->lo, hi = (vf) { 0 } + s->hi;

  for (int64_t t = t0; t < t1; t++)
    {
      int64_t rows, cols;
      float *ot = tile_out (s, t, &rows, &cols);
      const float *yt = s->y + t * s->y_tile;

      for (int64_t c = 0; c < s->M; c += NN_WINO_VW)
        {
          const int64_t avail = s->M - c;
          const vf b = load_full (s->bias + c);
          vf u[2][4], r[2][2];

          for (int j = 0; j < 4; j++)
            {
              vf m0 = load_full (yt + (0 * 4 + j) * step + c);
              vf m1 = load_full (yt + (1 * 4 + j) * step + c);
              vf m2 = load_full (yt + (2 * 4 + j) * step + c);
              vf m3 = load_full (yt + (3 * 4 + j) * step + c);

              u[0][j] = m0 + m1 + m2;
              u[1][j] = m1 - m2 - m3;
            }
          for (int i = 0; i < 2; i++)
            {
              r[i][0] = u[i][0] + u[i][1] + u[i][2] + b;
              r[i][1] = u[i][1] - u[i][2] - u[i][3] + b;
            }
          for (int i = 0; i < rows; i++)
            for (int j = 0; j < cols; j++)
              store_part (ot + ((int64_t) i * s->OW + j) * s->M + c, clamp (r[i][j], lo, hi),
                          avail);
        }
    }
}

/* o = A^T y A + bias, clamped, for F(4x4, 3x3),
 * A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1] */
#define NN_WINO_AT6(m0, m1, m2, m3, m4, m5, r0, r1, r2, r3) \
  do                                                        \
    {                                                       \
      vf a_ = (m1) + (m2), b_ = (m1) - (m2);                \
      vf c_ = (m3) + (m4), d_ = (m3) - (m4);                \
      r0 = (m0) + a_ + c_;                                  \
      r1 = b_ + d_ * 2.0f;                                  \
      r2 = a_ + c_ * 4.0f;                                  \
      r3 = b_ + d_ * 8.0f + (m5);                           \
    }                                                       \
  while (0)

static void
NN_WINO_FN (nn_wino_output_f4) (const NnWinoShape *s, int64_t t0, int64_t t1)
{
  const int64_t step = s->y_point;
  const vf lo = (vf) { 0 } + s->lo, hi = (vf) { 0 } + s->hi;

  for (int64_t t = t0; t < t1; t++)
    {
      int64_t rows, cols;
      float *ot = tile_out (s, t, &rows, &cols);
      const float *yt = s->y + t * s->y_tile;

      for (int64_t c = 0; c < s->M; c += NN_WINO_VW)
        {
          const int64_t avail = s->M - c;
          const vf b = load_full (s->bias + c);
          vf u[4][6];

          for (int j = 0; j < 6; j++)
            {
              vf m[6];

              for (int i = 0; i < 6; i++)
                m[i] = load_full (yt + (int64_t) (i * 6 + j) * step + c);
              NN_WINO_AT6 (m[0], m[1], m[2], m[3], m[4], m[5], u[0][j], u[1][j], u[2][j], u[3][j]);
            }
          for (int i = 0; i < rows; i++)
            {
              vf r[4];
              float *orow = ot + (int64_t) i * s->OW * s->M + c;

              NN_WINO_AT6 (u[i][0], u[i][1], u[i][2], u[i][3], u[i][4], u[i][5],
                           r[0], r[1], r[2], r[3]);
              for (int j = 0; j < cols; j++)
                store_part (orow + (int64_t) j * s->M, clamp (r[j] + b, lo, hi), avail);
            }
        }
    }
}

const NnWinoKernels NN_WINO_CAT (nn_wino_kernels, NN_WINO_ISA) = {
  G_STRINGIFY (NN_WINO_ISA),
  { NN_WINO_FN (nn_wino_input_f2), NN_WINO_FN (nn_wino_input_f4) },
  { NN_WINO_FN (nn_wino_output_f2), NN_WINO_FN (nn_wino_output_f4) },
};
