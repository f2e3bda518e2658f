/* nn-ops.h - the op table, per-op parameters and the kernels (reference and fast)
 *
 * Each op has a plan function (nn-ops.c) that checks its inputs, computes its output
 * shapes, fills a parameter struct and picks a kernel. Reference kernels (nn-ops-ref.c)
 * are plain loops over explicit sizes and are the oracle; fast kernels (nn-ops-fast.c)
 * are tested against them.
 */
#pragma once

#include "nn-graph.h"

G_BEGIN_DECLS

int         nn_op_lookup   (const char  *op_type);
const char *nn_op_name     (int          op);

typedef struct {
  NnGraph      *g;
  const NnNode *node;
  NnStep       *step;
  const gboolean *known;     /* per step input: value available at plan time */
  gboolean      fast;
  int           n_threads;
  /* shapes printed into error messages, without allocating */
  char          shape_buf[4][NN_MAX_DIMS * 21 + 3];
  int           shape_next;
} NnOpCtx;

/* Plans one node: fills step->out shapes/dtypes, step->p, step->run, step->scratch_bytes. */
gboolean    nn_op_plan         (NnOpCtx *c,
                                GError **error);
/* Ops whose output depends only on the shapes of their inputs (Shape). */
gboolean    nn_op_shape_only   (int      op);

/* ---- parameters ---- */

#define NN_MAX_SPATIAL 3

/* Conv and pools over 1 to 3 spatial dims; missing dims are 1 (kernel 1, stride 1, pad 0). */
typedef struct {
  int64_t N, C, M, G;          /* batch, in channels, out channels, groups */
  int64_t in[NN_MAX_SPATIAL];  /* D, H, W */
  int64_t out[NN_MAX_SPATIAL];
  int64_t k[NN_MAX_SPATIAL];
  int64_t stride[NN_MAX_SPATIAL];
  int64_t dil[NN_MAX_SPATIAL];
  int64_t pad[NN_MAX_SPATIAL]; /* begin padding */
  int64_t pad_end[NN_MAX_SPATIAL];
  int     nsp;
  int     has_bias;
  /* pools */
  int     is_max;
  int     count_include_pad;
  int     storage_order;
  NnDType dtype;
} NnConvParams;

typedef enum {
  NN_BIN_ADD, NN_BIN_SUB, NN_BIN_MUL, NN_BIN_DIV,
} NnBinOp;

typedef struct {
  NnBinOp op;
  NnDType dtype;
  int     ndim;
  int64_t ne[NN_MAX_DIMS];     /* output shape */
  int64_t sa[NN_MAX_DIMS];     /* element strides of a and b, 0 on broadcast dims */
  int64_t sb[NN_MAX_DIMS];
  int64_t numel;
  int     same_shape;
} NnBinaryParams;

typedef enum {
  NN_UN_RELU, NN_UN_LEAKY_RELU, NN_UN_SIGMOID, NN_UN_HARD_SIGMOID, NN_UN_HARD_SWISH,
  NN_UN_TANH, NN_UN_CLIP,
} NnUnaryOp;

typedef struct {
  NnUnaryOp op;
  NnDType   dtype;
  int64_t   numel;
  float     alpha, beta;       /* LeakyRelu alpha; HardSigmoid alpha, beta */
  double    lo, hi;            /* Clip bounds, from attributes or constant inputs */
  int       lo_input, hi_input;/* Clip bound read from step->in[1]/[2] at run time */
} NnUnaryParams;

typedef struct {
  int64_t M, N, K;
  int     trans_a, trans_b;
  float   alpha, beta;
  int     has_c;
  int64_t c_rs, c_cs;          /* C strides (0 where it broadcasts) */
} NnGemmParams;

typedef struct {
  int64_t M, N, K;
  int64_t batch;               /* product of the output batch dims */
  int     nbatch;
  int64_t bne[NN_MAX_DIMS];    /* output batch dims */
  int64_t sa[NN_MAX_DIMS];     /* matrix strides (in matrices) of a and b per batch dim */
  int64_t sb[NN_MAX_DIMS];
} NnMatMulParams;

typedef struct {
  int64_t N, C, S;             /* batch, channels, spatial size */
  float   eps, momentum;
  int     training;
} NnBatchNormParams;

typedef struct {
  int64_t outer, inner;        /* products of dims before and after the axis */
  int64_t axis_len[NN_MAX_IO];
  int64_t out_axis;
  size_t  esize;
} NnConcatParams;

typedef struct {
  int     ndim;
  int64_t ne[NN_MAX_DIMS];     /* input shape */
  int     perm[NN_MAX_DIMS];
  size_t  esize;
} NnTransposeParams;

typedef struct {
  size_t bytes;
  int    mask_out;             /* Dropout: out[1] is an all-true mask */
  int64_t mask_numel;
} NnCopyParams;

typedef struct {
  int64_t outer, n, inner;
  int     log;
} NnSoftmaxParams;

typedef struct {
  int64_t outer, axis_len, inner, n_idx;
  size_t  esize;
} NnGatherParams;

typedef enum { NN_PAD_CONSTANT, NN_PAD_REFLECT, NN_PAD_EDGE } NnPadMode;

typedef struct {
  int       ndim;
  int64_t   ne[NN_MAX_DIMS];   /* input shape */
  int64_t   pb[NN_MAX_DIMS];   /* begin pads, may be negative (crop) */
  int64_t   pe[NN_MAX_DIMS];
  int64_t   one[NN_MAX_DIMS];  /* output shape */
  NnPadMode mode;
  NnDType   dtype;
  double    value;
  int       value_input;       /* constant_value read from step->in[2] at run time */
} NnPadParams;

typedef struct {
  int     ndim;
  int64_t ne[NN_MAX_DIMS];
  int     reduce[NN_MAX_DIMS];
} NnReduceParams;

typedef struct {
  int64_t NC, S;
} NnGapParams;

/* ---- reference kernels (nn-ops-ref.c) ---- */

void nn_ref_conv        (float *out, const float *in, const float *w, const float *bias,
                         const NnConvParams *p);
void nn_ref_pool        (void *out, int64_t *indices, const void *in, const NnConvParams *p);
void nn_ref_binary      (void *out, const void *a, const void *b, const NnBinaryParams *p);
void nn_ref_unary       (void *out, const void *in, const NnUnaryParams *p);
void nn_ref_gemm        (float *out, const float *a, const float *b, const float *c,
                         const NnGemmParams *p);
void nn_ref_matmul      (float *out, const float *a, const float *b, const NnMatMulParams *p);
void nn_ref_batchnorm   (float *out, const float *in, const float *scale, const float *bias,
                         const float *mean, const float *var, float *run_mean,
                         float *run_var, const NnBatchNormParams *p);
void nn_ref_concat      (void *out, const void *const *ins, int n, const NnConcatParams *p);
void nn_ref_transpose   (void *out, const void *in, const NnTransposeParams *p);
void nn_ref_softmax     (float *out, const float *in, const NnSoftmaxParams *p);
void nn_ref_gather      (void *out, const void *data, const NnTensor *indices,
                         const NnGatherParams *p);
void nn_ref_pad         (void *out, const void *in, const NnPadParams *p);
void nn_ref_reduce_mean (float *out, const float *in, const NnReduceParams *p);
void nn_ref_gap         (float *out, const float *in, const NnGapParams *p);

/* ---- fast kernels (nn-ops-fast.c) ---- */

/* Scratch bytes nn_fast_conv needs, or 0 when it does not handle these parameters. */
gboolean nn_fast_conv_supported (const NnConvParams *p);
size_t   nn_fast_conv_scratch   (const NnConvParams *p);
void     nn_fast_conv           (float *out, const float *in, const float *w, const float *bias,
                                 float *scratch, const NnConvParams *p);
void     nn_fast_gemm           (float *out, const float *a, const float *b, const float *c,
                                 const NnGemmParams *p);
void     nn_fast_matmul         (float *out, const float *a, const float *b,
                                 const NnMatMulParams *p);
void     nn_fast_set_threads    (int n);

G_END_DECLS
