/* tr-ops.h - training kernels: the forward and backward pass of each layer
 *
 * Activations are (C, N, H, W): channel-major across the batch. Batch statistics of a
 * channel are then one contiguous run, and a convolution is one sgemm over the whole batch
 * (or a chunk of it) instead of a small one per image.
 *
 * Backward functions take @beta like BLAS: 0 overwrites the input gradient, 1 adds to it
 * (a tensor feeding two layers, as in a residual block, collects both gradients).
 * Sizes are explicit; every kernel is checked against finite differences in
 * tests/train/test-grad.c.
 */
#pragma once

#include <glib.h>
#include <stdint.h>

G_BEGIN_DECLS

typedef struct {
  int C, N, H, W;     /* input */
  int M, k, stride, pad;
  int OH, OW;         /* output, from tr_conv_shape() */
} TrConvShape;

void  tr_conv_shape            (TrConvShape       *s,
                                int                C,
                                int                N,
                                int                H,
                                int                W,
                                int                M,
                                int                k,
                                int                stride,
                                int                pad);
/* col (C*k*k, nb*OH*OW)  x (C, N, H, W); images [n0, n0 + nb) */
void  tr_im2col                (const TrConvShape *s,
                                const float       *x,
                                int                n0,
                                int                nb,
                                float             *col);
/* dx[c, n0 + i] += col2im (col) */
void  tr_col2im_add            (const TrConvShape *s,
                                const float       *col,
                                int                n0,
                                int                nb,
                                float             *dx);
/* y (M, N, OH, OW) columns of images [n0, n0 + nb)  x (C, N, H, W)  w (M, C, k, k);
 * @col is scratch of C*k*k*nb*OH*OW floats */
void  tr_conv_forward_chunk    (const TrConvShape *s,
                                const float       *x,
                                const float       *w,
                                float             *y,
                                int                n0,
                                int                nb,
                                float             *col);
/* dw_part (M, C*k*k) = the weight gradient of images [n0, n0 + nb) (overwritten);
 * dx (when not NULL) of those images gets beta * dx + its gradient */
void  tr_conv_backward_chunk   (const TrConvShape *s,
                                const float       *x,
                                const float       *w,
                                const float       *dy,
                                float             *dw_part,
                                float             *dx,
                                float              beta,
                                int                n0,
                                int                nb,
                                float             *col);

/* Batch normalisation of one channel: x, y hold @m = N*H*W values. Saves mean and
 * 1/sqrt(var + eps) for the backward pass and returns the biased variance. */
float tr_bn_forward_train      (const float       *x,
                                float             *y,
                                size_t             m,
                                float              gamma,
                                float              beta,
                                float              eps,
                                float             *mean,
                                float             *invstd);
void  tr_bn_forward_eval       (const float       *x,
                                float             *y,
                                size_t             m,
                                float              gamma,
                                float              beta,
                                float              mean,
                                float              var,
                                float              eps);
/* dgamma and dbeta are overwritten */
void  tr_bn_backward           (const float       *x,
                                const float       *dy,
                                float             *dx,
                                float              beta_acc,
                                size_t             m,
                                float              gamma,
                                float              mean,
                                float              invstd,
                                float             *dgamma,
                                float             *dbeta);

void  tr_relu_forward          (const float       *x,
                                float             *y,
                                size_t             n);
/* uses the output y: dx = dy where y > 0 */
void  tr_relu_backward         (const float       *y,
                                const float       *dy,
                                float             *dx,
                                float              beta,
                                size_t             n);

/* 2x2, stride 2, floor: y (P, H/2, W/2)  x (P, H, W) for P = C*N planes; @arg keeps the
 * winner (0..3) of each window */
void  tr_maxpool2_forward      (const float       *x,
                                float             *y,
                                guint8            *arg,
                                size_t             planes,
                                int                H,
                                int                W);
void  tr_maxpool2_backward     (const float       *dy,
                                const guint8      *arg,
                                float             *dx,
                                float              beta,
                                size_t             planes,
                                int                H,
                                int                W);

/* y (P)  x (P, HW) */
void  tr_gap_forward           (const float       *x,
                                float             *y,
                                size_t             planes,
                                int                hw);
void  tr_gap_backward          (const float       *dy,
                                float             *dx,
                                float              beta,
                                size_t             planes,
                                int                hw);

/* y (M, N) = w (M, K) x (K, N) + b */
void  tr_dense_forward         (const float       *x,
                                const float       *w,
                                const float       *b,
                                float             *y,
                                int                M,
                                int                K,
                                int                N);
/* dw, db overwritten; dx (when not NULL) = beta * dx + w^T dy */
void  tr_dense_backward        (const float       *x,
                                const float       *w,
                                const float       *dy,
                                float             *dw,
                                float             *db,
                                float             *dx,
                                float              beta,
                                int                M,
                                int                K,
                                int                N);

/* Mean softmax cross-entropy over N columns of z (K, N) times @scale, against labels
 * smoothed by @smoothing (targets (1 - s) one-hot + s / K). Writes dz (may be NULL) and
 * adds the number of correct argmaxes to *correct (may be NULL). */
double tr_softmax_xent         (const float       *z,
                                const guint8      *labels,
                                int                K,
                                int                N,
                                float              scale,
                                float              smoothing,
                                float             *dz,
                                int               *correct);

G_END_DECLS
