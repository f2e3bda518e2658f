/* nn-wino.h - Winograd convolution F(2x2,3x3) and F(4x4,3x3) for 3x3, stride 1, dilation 1,
 * ungrouped 2-D convolutions on channels-last activations (the XNNPACK path's layout).
 *
 * Weights are transformed once, when the plan is made, into P = (m+2)^2 matrices (M, C);
 * a run transforms the input tiles (P, T, C), multiplies each point's (T, C) by its (C, M)
 * with an XNNPACK fully connected operator, and transforms the products back, adding the
 * bias and clamping (a fused Relu or Clip). The three phases run on the plan's pthreadpool.
 * F(4x4,3x3) does 4x fewer multiplications than direct convolution, F(2x2,3x3) 2.25x. */
#pragma once

#include <pthreadpool.h>

#include "nn-ops.h"

G_BEGIN_DECLS

/* Channel counts in the transformed buffers are rounded up to this, one AVX-512 vector,
 * so that the transforms never need a partial vector there. */
#define NN_WINO_CH_ALIGN 16

typedef struct _NnWino NnWino;

/* The output tile size (2 or 4) the engine uses for this convolution, or 0 when Winograd
 * does not apply or does not pay off (see nn-wino.c). MAGPIE_NN_WINOGRAD=0 turns it off,
 * =2 or =4 forces that tile size on every convolution it applies to. */
int          nn_wino_pick        (const NnConvParams *p);
/* Whether Winograd can compute this convolution at all (3x3, stride 1, dilation 1, G 1). */
gboolean     nn_wino_applies     (const NnConvParams *p);
/* Instruction sets this machine runs the transforms with, best first. */
const char *const *nn_wino_isas  (void);

/* out (N,OH,OW,M)  in (N,H,W,C)  w (M,C,3,3)  bias (M) or NULL; outputs clamped to
 * [lo, hi]. @isa is one of nn_wino_isas() or NULL for the best. Runs on @pool (NULL: the
 * calling thread); @flags go to its last phase (PTHREADPOOL_FLAG_YIELD_WORKERS when this is
 * the plan's last parallel step). Returns NULL when XNNPACK refuses the fully connected
 * operators. */
NnWino      *nn_wino_new         (const NnConvParams *p,
                                  const float        *w,
                                  const float        *bias,
                                  int                 m,
                                  float               lo,
                                  float               hi,
                                  const char         *isa,
                                  pthreadpool_t       pool,
                                  uint32_t            flags);
/* Scratch bytes (transformed input and products) a run needs. */
size_t       nn_wino_scratch     (const NnWino       *wino);
/* Binds the buffers, once they are placed. */
gboolean     nn_wino_setup       (NnWino             *wino,
                                  const float        *in,
                                  float              *out,
                                  float              *scratch);
void         nn_wino_run         (const NnWino       *wino);
void         nn_wino_free        (void               *wino);

/* ---- for the per-instruction-set transform kernels (nn-wino-kern.h) ---- */

typedef struct {
  int64_t      N, H, W, C, M;    /* input (N,H,W,C), M output channels */
  int64_t      OH, OW;
  int64_t      pad_t, pad_l;
  int64_t      m;                /* output tile size */
  int64_t      th, tw, T;        /* tiles down, across, in all */
  int64_t      Cp, Mp;           /* C and M rounded up to NN_WINO_CH_ALIGN */
  int64_t      v_tile, v_point;  /* strides (floats) in v between tiles and between points */
  int64_t      y_tile, y_point;
  float        lo, hi;
  const float *x;                /* input */
  float       *o;                /* output */
  float       *v;                /* transformed input, (T, P, Cp) */
  float       *y;                /* products, (T, P, Mp) */
  const float *bias;             /* (Mp), zero padded */
} NnWinoShape;

typedef void (*NnWinoTransform) (const NnWinoShape *s,
                                 int64_t            t0,
                                 int64_t            t1);

typedef struct {
  const char     *isa;
  NnWinoTransform input[2];      /* F(2x2,3x3), F(4x4,3x3) */
  NnWinoTransform output[2];
} NnWinoKernels;

extern const NnWinoKernels nn_wino_kernels_generic;
#ifdef NN_WINO_AVX2
extern const NnWinoKernels nn_wino_kernels_avx2;
#endif
#ifdef NN_WINO_AVX512
extern const NnWinoKernels nn_wino_kernels_avx512;
#endif

G_END_DECLS
