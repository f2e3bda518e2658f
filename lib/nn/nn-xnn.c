/* nn-xnn.c - the XNNPACK fast path. 4-D activations live channels-last (NHWC) wherever the
 * ops allow it: convolutions, max and average pools, global average pools and residual adds
 * run as XNNPACK operators (weights repacked once, at plan time) with a following Relu or
 * Clip fused in, channel concats and batch norms get channels-last kernels, and ops that do
 * not care about layout (elementwise, anything on 2-D data) keep theirs. Ops that need NCHW
 * stay NCHW, with one conversion per tensor that crosses over; a plan without any XNNPACK
 * operator stays as it was (OpenBLAS and reference kernels). */
#include "config.h"

#include <math.h>
#include <string.h>

#include <pthreadpool.h>
#include <xnnpack.h>

#include "nn-graph.h"
#include "nn-ops.h"
#include "nn-wino.h"

G_STATIC_ASSERT (NN_READ_SLACK >= XNN_EXTRA_BYTES);

typedef enum { XNN_CONV, XNN_MAXPOOL, XNN_AVGPOOL, XNN_GAP, XNN_ADD, XNN_FC } XnnKind;

typedef struct {
  XnnKind        kind;
  xnn_operator_t op;
  pthreadpool_t  pool;
  size_t         N, H, W, C;
  size_t         numel;
} XnnState;

/* Work below this (multiply-adds, or elements moved) runs on the calling thread: handing
 * it to the pool costs more than it saves, and far more when the cores are busy. */
#define NN_XNN_MIN_PARALLEL_WORK (256 * 1024)

static pthreadpool_t
pool_for (const NnPlan *plan, double work)
{
  return work >= NN_XNN_MIN_PARALLEL_WORK ? plan->threadpool : NULL;
}

static gboolean
xnn_ready (void)
{
  static gsize once;
  static gboolean ok;

  if (g_once_init_enter (&once))
    {
      ok = xnn_initialize (NULL) == xnn_status_success;
      g_once_init_leave (&once, 1);
    }
  return ok;
}

static void
xnn_state_free (void *p)
{
  XnnState *s = p;

  if (s->op)
    xnn_delete_operator (s->op);
  g_free (s);
}

static void
k_xnn (const NnStep *st, const NnExec *e)
{
  const XnnState *s = st->fast;

  xnn_run_operator (s->op, s->pool);
}

static void
k_wino (const NnStep *st, const NnExec *e)
{
  nn_wino_run (st->fast);
}

static gboolean
is_op (const NnStep *st, const char *name)
{
  return st->node && g_str_equal (nn_op_name (st->node->op), name);
}

/* Channels-first and channels-last are the same bytes when H*W or C is 1. */
static gboolean
layout_free (const NnTensor *t)
{
  return t->ndim != 4 || t->dtype != NN_DTYPE_FLOAT || t->ne[2] * t->ne[3] == 1 || t->ne[1] == 1;
}

static gboolean
all_layout_free (const NnStep *st)
{
  for (int k = 0; k < st->n_in; k++)
    if (st->in[k] && !layout_free (st->in[k]))
      return FALSE;
  for (int k = 0; k < st->n_out; k++)
    if (st->out[k] && !layout_free (st->out[k]))
      return FALSE;
  return TRUE;
}

static gboolean
conv2d_ok (const NnStep *st, const NnPlan *plan)
{
  const NnConvParams *p = (const NnConvParams *) st->p.bytes;

  return st->in[0]->ndim == 4 && plan->known[st->in[1] - plan->vals] &&
         (st->n_in < 3 || !st->in[2] || plan->known[st->in[2] - plan->vals]) &&
         p->nsp == 2;
}

static gboolean
is_known (const NnPlan *plan, const NnTensor *t)
{
  return t && plan->known[t - plan->vals];
}

/* Gemm (alpha 1, beta 1, a bias row) and MatMul by a constant matrix: a fully connected
 * layer. */
static gboolean
fc_ok (const NnStep *st, const NnPlan *plan)
{
  if (is_op (st, "Gemm"))
    {
      const NnGemmParams *p = (const NnGemmParams *) st->p.bytes;
      const NnTensor *c = st->n_in > 2 ? st->in[2] : NULL;

      return is_known (plan, st->in[1]) && !p->trans_a && p->alpha == 1.0f &&
             (!c || (is_known (plan, c) && p->beta == 1.0f && p->c_rs == 0 && p->c_cs == 1));
    }
  return st->in[1]->ndim == 2 && is_known (plan, st->in[1]) && st->in[0]->ndim >= 1;
}

/* How a step fares with channels-last activations: 2 = XNNPACK takes it, 1 = its kernel
 * works as is (or after new parameters), 0 = it needs channels-first. */
static int
classify (const NnStep *st, const NnPlan *plan)
{
  /* constants stay channels-first; only convolution weights are repacked */
  for (int k = is_op (st, "Conv") ? 1 : 0; k < st->n_in && !is_op (st, "Conv"); k++)
    if (st->in[k] && plan->known[st->in[k] - plan->vals] && !layout_free (st->in[k]))
      return 0;
  if (is_op (st, "Conv"))
    return conv2d_ok (st, plan) ? 2 : 0;
  if (is_op (st, "Gemm") || is_op (st, "MatMul"))
    return all_layout_free (st) && fc_ok (st, plan) ? 2 : all_layout_free (st);
  if (is_op (st, "MaxPool"))
    {
      const NnConvParams *p = (const NnConvParams *) st->p.bytes;

      return st->in[0]->ndim == 4 && st->in[0]->dtype == NN_DTYPE_FLOAT && p->nsp == 2 &&
             (st->n_out < 2 || !st->out[1]) && p->k[1] * p->k[2] > 1 ? 2 : 0;
    }
  if (is_op (st, "AveragePool"))
    {
      const NnConvParams *p = (const NnConvParams *) st->p.bytes;
      gboolean padded = p->pad[1] || p->pad[2] || p->pad_end[1] || p->pad_end[2];

      /* XNNPACK divides by the cells inside the input, ONNX's count_include_pad=0 */
      return st->in[0]->ndim == 4 && p->nsp == 2 && p->k[1] * p->k[2] > 1 &&
             (!p->count_include_pad || !padded) ? 2 : 0;
    }
  if (is_op (st, "BatchNormalization"))
    {
      const NnBatchNormParams *p = (const NnBatchNormParams *) st->p.bytes;

      return !p->training ? 1 : 0;
    }
  if (is_op (st, "GlobalAveragePool"))
    return st->in[0]->ndim == 4 ? 2 : 0;
  if (is_op (st, "Concat"))
    {
      const NnConcatParams *p = (const NnConcatParams *) st->p.bytes;

      if (all_layout_free (st))
        return 1;
      /* axis 1 of a 4-D tensor: outer = N, inner = H*W */
      return st->out[0]->ndim == 4 && p->outer == st->out[0]->ne[0] &&
             p->inner == st->out[0]->ne[2] * st->out[0]->ne[3] ? 1 : 0;
    }
  if (is_op (st, "Relu") || is_op (st, "LeakyRelu") || is_op (st, "Sigmoid") ||
      is_op (st, "HardSigmoid") || is_op (st, "HardSwish") || is_op (st, "Tanh") ||
      is_op (st, "Clip") || is_op (st, "Identity") || is_op (st, "Dropout"))
    return 1;
  if (is_op (st, "Add") || is_op (st, "Sub") || is_op (st, "Mul") || is_op (st, "Div"))
    {
      const NnBinaryParams *p = (const NnBinaryParams *) st->p.bytes;

      if (p->same_shape)
        return is_op (st, "Add") && p->dtype == NN_DTYPE_FLOAT ? 2 : 1;
      return all_layout_free (st) ? 1 : 0;
    }
  return all_layout_free (st) ? 1 : 0;
}

static int
readers (const NnPlan *plan, const NnTensor *t)
{
  int n = 0;

  for (guint s = 0; s < plan->steps->len; s++)
    {
      const NnStep *st = &g_array_index (plan->steps, NnStep, s);

      for (int k = 0; k < st->n_in; k++)
        n += st->in[k] == t;
    }
  return n;
}

static gboolean
is_graph_output (const NnPlan *plan, const NnTensor *t)
{
  for (guint i = 0; i < plan->graph->outputs->len; i++)
    if (&plan->vals[g_array_index (plan->graph->outputs, int, i)] == t)
      return TRUE;
  return FALSE;
}

/* A Relu or Clip with constant bounds reading only @t, folded into its producer. */
static gboolean
take_activation (NnPlan *plan, guint producer, float *lo, float *hi)
{
  NnStep *st = &g_array_index (plan->steps, NnStep, producer);
  NnTensor *t = st->out[0];

  if (is_graph_output (plan, t) || readers (plan, t) != 1)
    return FALSE;
  for (guint s = producer + 1; s < plan->steps->len; s++)
    {
      NnStep *next = &g_array_index (plan->steps, NnStep, s);
      const NnUnaryParams *u = (const NnUnaryParams *) next->p.bytes;

      if (next->in[0] != t)
        continue;
      if (is_op (next, "Relu"))
        {
          *lo = 0.0f;
          *hi = INFINITY;
        }
      else if (is_op (next, "Clip") && u->dtype == NN_DTYPE_FLOAT && !u->lo_input && !u->hi_input)
        {
          *lo = (float) u->lo;
          *hi = (float) u->hi;
        }
      else
        return FALSE;
      st->out[0] = next->out[0];
      g_array_remove_index (plan->steps, s);
      return TRUE;
    }
  return FALSE;
}

static XnnState *
make_conv (NnPlan *plan, NnStep *st, float lo, float hi, uint32_t flags)
{
  const NnConvParams *p = (const NnConvParams *) st->p.bytes;
  const int64_t cg = p->C / p->G, mg = p->M / p->G, kh = p->k[1], kw = p->k[2];
  const float *w = st->in[1]->data;
  g_autofree float *ohwi = g_new (float, p->M * cg * kh * kw);
  XnnState *s = g_new0 (XnnState, 1);

  /* ONNX (M, C/G, kh, kw) -> XNNPACK (G, M/G, kh, kw, C/G) */
  for (int64_t m = 0; m < p->M; m++)
    for (int64_t c = 0; c < cg; c++)
      for (int64_t y = 0; y < kh; y++)
        for (int64_t x = 0; x < kw; x++)
          ohwi[((m * kh + y) * kw + x) * cg + c] = w[((m * cg + c) * kh + y) * kw + x];
  s->kind = XNN_CONV;
  s->pool = pool_for (plan, (double) p->N * p->M * p->out[1] * p->out[2] * cg * kh * kw);
  s->N = p->N;
  s->H = p->in[1];
  s->W = p->in[2];
  if (xnn_create_convolution2d_nhwc_f32 ((uint32_t) p->pad[1], (uint32_t) p->pad_end[2],
                                         (uint32_t) p->pad_end[1], (uint32_t) p->pad[2],
                                         (uint32_t) kh, (uint32_t) kw,
                                         (uint32_t) p->stride[1], (uint32_t) p->stride[2],
                                         (uint32_t) p->dil[1], (uint32_t) p->dil[2],
                                         (uint32_t) p->G, cg, mg, p->C, p->M, ohwi,
                                         st->n_in > 2 && st->in[2] ? st->in[2]->data : NULL,
                                         lo, hi, flags, &s->op) != xnn_status_success)
    {
      g_free (s);
      return NULL;
    }
  return s;
}

static XnnState *
make_fc (NnPlan *plan, NnStep *st, float lo, float hi, uint32_t flags)
{
  XnnState *s = g_new0 (XnnState, 1);
  size_t K, N;
  const float *bias = NULL;
  gboolean transposed;

  if (is_op (st, "Gemm"))
    {
      const NnGemmParams *p = (const NnGemmParams *) st->p.bytes;

      K = p->K;
      N = p->N;
      s->numel = p->M;
      transposed = !p->trans_b;
      if (st->n_in > 2 && st->in[2])
        bias = st->in[2]->data;
    }
  else
    {
      K = st->in[1]->ne[0];
      N = st->in[1]->ne[1];
      s->numel = K ? nn_tensor_numel (st->in[0]) / K : 0;
      transposed = TRUE;
    }
  s->kind = XNN_FC;
  s->pool = pool_for (plan, (double) s->numel * K * N);
  if (xnn_create_fully_connected_nc_f32 (K, N, K, N, st->in[1]->data, bias, lo, hi,
                                         flags | (transposed ? XNN_FLAG_TRANSPOSE_WEIGHTS : 0),
                                         &s->op) != xnn_status_success)
    {
      g_free (s);
      return NULL;
    }
  return s;
}

static XnnState *
make_maxpool (NnPlan *plan, NnStep *st, uint32_t flags)
{
  const NnConvParams *p = (const NnConvParams *) st->p.bytes;
  XnnState *s = g_new0 (XnnState, 1);
  int64_t pad_b = p->pad_end[1], pad_r = p->pad_end[2];
  /* ceil_mode: XNNPACK floors, so pad the end until it gives the planned size */
  int64_t need_h = (p->out[1] - 1) * p->stride[1] + (p->k[1] - 1) * p->dil[1] + 1;
  int64_t need_w = (p->out[2] - 1) * p->stride[2] + (p->k[2] - 1) * p->dil[2] + 1;

  pad_b = MAX (pad_b, need_h - p->in[1] - p->pad[1]);
  pad_r = MAX (pad_r, need_w - p->in[2] - p->pad[2]);
  s->kind = XNN_MAXPOOL;
  s->pool = pool_for (plan, (double) p->N * p->C * p->out[1] * p->out[2] * p->k[1] * p->k[2]);
  s->N = p->N;
  s->H = p->in[1];
  s->W = p->in[2];
  if (xnn_create_max_pooling2d_nhwc_f32 ((uint32_t) p->pad[1], (uint32_t) pad_r,
                                         (uint32_t) pad_b, (uint32_t) p->pad[2],
                                         (uint32_t) p->k[1], (uint32_t) p->k[2],
                                         (uint32_t) p->stride[1], (uint32_t) p->stride[2],
                                         (uint32_t) p->dil[1], (uint32_t) p->dil[2],
                                         p->C, p->C, p->C, -INFINITY, INFINITY, flags,
                                         &s->op) != xnn_status_success)
    {
      g_free (s);
      return NULL;
    }
  return s;
}

static XnnState *
make_avgpool (NnPlan *plan, NnStep *st, uint32_t flags)
{
  const NnConvParams *p = (const NnConvParams *) st->p.bytes;
  XnnState *s = g_new0 (XnnState, 1);
  int64_t pad_b = p->pad_end[1], pad_r = p->pad_end[2];
  int64_t need_h = (p->out[1] - 1) * p->stride[1] + p->k[1];
  int64_t need_w = (p->out[2] - 1) * p->stride[2] + p->k[2];

  pad_b = MAX (pad_b, need_h - p->in[1] - p->pad[1]);
  pad_r = MAX (pad_r, need_w - p->in[2] - p->pad[2]);
  s->kind = XNN_AVGPOOL;
  s->pool = pool_for (plan, (double) p->N * p->C * p->out[1] * p->out[2] * p->k[1] * p->k[2]);
  s->N = p->N;
  s->H = p->in[1];
  s->W = p->in[2];
  if (xnn_create_average_pooling2d_nhwc_f32 ((uint32_t) p->pad[1], (uint32_t) pad_r,
                                             (uint32_t) pad_b, (uint32_t) p->pad[2],
                                             (uint32_t) p->k[1], (uint32_t) p->k[2],
                                             (uint32_t) p->stride[1], (uint32_t) p->stride[2],
                                             p->C, p->C, p->C, -INFINITY, INFINITY, flags,
                                             &s->op) != xnn_status_success)
    {
      g_free (s);
      return NULL;
    }
  return s;
}

/* out (N,H,W,C)  in (N,H,W,C): inference BatchNormalization, channels last */
static void
k_batchnorm_nhwc (const NnStep *st, const NnExec *e)
{
  const NnBatchNormParams *p = (const NnBatchNormParams *) st->p.bytes;
  const float *x = st->in[0]->data, *scale = st->in[1]->data, *bias = st->in[2]->data;
  const float *mean = st->in[3]->data, *var = st->in[4]->data;
  float *o = st->out[0]->data, *mul = st->scratch, *add = st->scratch + p->C;

  for (int64_t c = 0; c < p->C; c++)
    {
      mul[c] = (float) (scale[c] / sqrt ((double) var[c] + p->eps));
      add[c] = bias[c] - mean[c] * mul[c];
    }
  for (int64_t i = 0; i < p->N * p->S; i++)
    for (int64_t c = 0; c < p->C; c++)
      o[i * p->C + c] = x[i * p->C + c] * mul[c] + add[c];
}

static XnnState *
make_gap (NnPlan *plan, NnStep *st, uint32_t flags)
{
  const NnTensor *x = st->in[0];
  XnnState *s = g_new0 (XnnState, 1);

  s->kind = XNN_GAP;
  s->pool = pool_for (plan, (double) nn_tensor_numel (x));
  s->N = x->ne[0];
  s->C = x->ne[1];
  s->W = x->ne[2] * x->ne[3];
  if (xnn_create_global_average_pooling_nwc_f32 (s->C, s->C, s->C, -INFINITY, INFINITY, flags,
                                                 &s->op) != xnn_status_success)
    {
      g_free (s);
      return NULL;
    }
  return s;
}

static XnnState *
make_add (NnPlan *plan, NnStep *st, float lo, float hi, uint32_t flags)
{
  XnnState *s = g_new0 (XnnState, 1);

  s->kind = XNN_ADD;
  s->numel = nn_tensor_numel (st->out[0]);
  s->pool = pool_for (plan, (double) s->numel);
  if (xnn_create_add_nd_f32 (lo, hi, flags, &s->op) != xnn_status_success)
    {
      g_free (s);
      return NULL;
    }
  return s;
}

/* out (N,H,W,C)  in (N,C,H,W); 1-D params mean a plain copy */
static void
k_to_nhwc (const NnStep *st, const NnExec *e)
{
  const NnTransposeParams *p = (const NnTransposeParams *) st->p.bytes;
  const float *x = st->in[0]->data;
  float *o = st->out[0]->data;
  const int64_t C = p->ne[1], HW = p->ne[2] * p->ne[3];

  if (p->ndim == 1)
    {
      memcpy (o, x, p->ne[0] * p->esize);
      return;
    }
  for (int64_t n = 0; n < p->ne[0]; n++)
    for (int64_t c = 0; c < C; c++)
      for (int64_t i = 0; i < HW; i++)
        o[(n * HW + i) * C + c] = x[(n * C + c) * HW + i];
}

/* out (N,C,H,W)  in (N,H,W,C); 1-D params mean a plain copy */
static void
k_to_nchw (const NnStep *st, const NnExec *e)
{
  const NnTransposeParams *p = (const NnTransposeParams *) st->p.bytes;
  const float *x = st->in[0]->data;
  float *o = st->out[0]->data;
  const int64_t C = p->ne[1], HW = p->ne[2] * p->ne[3];

  if (p->ndim == 1)
    {
      memcpy (o, x, p->ne[0] * p->esize);
      return;
    }
  for (int64_t n = 0; n < p->ne[0]; n++)
    for (int64_t c = 0; c < C; c++)
      for (int64_t i = 0; i < HW; i++)
        o[(n * C + c) * HW + i] = x[(n * HW + i) * C + c];
}

/* Spare slots of plan->vals (past the graph's values) for re-laid-out copies. */
static NnTensor *
spare_slot (NnPlan *plan, guint *next, const NnTensor *like)
{
  NnTensor *t;

  g_assert (*next < plan->n_vals);
  t = &plan->vals[(*next)++];
  *t = *like;
  t->data = NULL;
  return t;
}

static NnStep
layout_step (NnTensor *in, NnTensor *out, gboolean to_nhwc)
{
  NnStep st;
  NnTransposeParams *tp = (NnTransposeParams *) st.p.bytes;

  memset (&st, 0, sizeof st);
  st.n_in = st.n_out = 1;
  st.in[0] = in;
  st.out[0] = out;
  st.run = to_nhwc ? k_to_nhwc : k_to_nchw;
  st.kernel_name = to_nhwc ? "nchw-to-nhwc" : "nhwc-to-nchw";
  /* a layout-free tensor is copied as a 1-D "transpose" */
  tp->ndim = layout_free (in) ? 1 : 4;
  tp->ne[0] = nn_tensor_numel (in);
  if (tp->ndim == 4)
    memcpy (tp->ne, in->ne, sizeof tp->ne);
  tp->esize = nn_dtype_size (in->dtype);
  return st;
}

/* Decides where each 4-D activation lives: steps that take channels-last (classify >= 1)
 * run in NHWC, the others in NCHW, with a conversion wherever a tensor crosses over (made
 * once per tensor). Runtime inputs are first copied into the arena, so that the XNNPACK
 * operators set up later see buffers that stay put; 4-D outputs end channels-first. */
static void
place_layouts (NnPlan *plan)
{
  NnGraph *g = plan->graph;
  GArray *steps = g_array_new (FALSE, TRUE, sizeof (NnStep));
  g_autofree gboolean *nhwc = g_new0 (gboolean, plan->n_vals);
  g_autofree NnTensor **other = g_new0 (NnTensor *, plan->n_vals);
  guint next = g->values->len;

  for (guint i = 0; i < g->inputs->len; i++)
    {
      NnTensor *in = &plan->vals[g_array_index (g->inputs, int, i)];
      NnTensor *copy;
      NnStep st;

      if (plan->known[in - plan->vals])
        continue;
      copy = spare_slot (plan, &next, in);
      nhwc[copy - plan->vals] = !layout_free (in);
      st = layout_step (in, copy, TRUE);
      g_array_append_val (steps, st);
      for (guint s = 0; s < plan->steps->len; s++)
        {
          NnStep *o = &g_array_index (plan->steps, NnStep, s);

          for (int k = 0; k < o->n_in; k++)
            if (o->in[k] == in)
              o->in[k] = copy;
        }
    }

  for (guint s = 0; s < plan->steps->len; s++)
    {
      NnStep st = g_array_index (plan->steps, NnStep, s);
      gboolean want = classify (&st, plan) >= 1;

      for (int k = 0; k < st.n_in; k++)
        {
          NnTensor *t = st.in[k];
          guint id;

          if (!t || layout_free (t) || plan->known[t - plan->vals] || nhwc[t - plan->vals] == want)
            continue;
          id = (guint) (t - plan->vals);
          if (!other[id])
            {
              NnStep conv;

              other[id] = spare_slot (plan, &next, t);
              nhwc[other[id] - plan->vals] = want;
              other[other[id] - plan->vals] = t;
              conv = layout_step (t, other[id], want);
              g_array_append_val (steps, conv);
            }
          st.in[k] = other[id];
        }
      for (int k = 0; k < st.n_out; k++)
        if (st.out[k])
          nhwc[st.out[k] - plan->vals] = want && !layout_free (st.out[k]);
      g_array_append_val (steps, st);
    }

  /* outputs produced channels-last: write a spare, then lay it out into the output */
  for (guint i = 0; i < g->outputs->len; i++)
    {
      NnTensor *out = &plan->vals[g_array_index (g->outputs, int, i)];
      NnTensor *spare;
      NnStep conv;

      if (!nhwc[out - plan->vals])
        continue;
      spare = spare_slot (plan, &next, out);
      for (guint s = 0; s < steps->len; s++)
        {
          NnStep *o = &g_array_index (steps, NnStep, s);

          for (int k = 0; k < o->n_in; k++)
            if (o->in[k] == out)
              o->in[k] = spare;
          for (int k = 0; k < o->n_out; k++)
            if (o->out[k] == out)
              o->out[k] = spare;
        }
      conv = layout_step (spare, out, FALSE);
      g_array_append_val (steps, conv);
    }
  g_array_free (plan->steps, TRUE);
  plan->steps = steps;
}

gboolean
nn_xnn_rewrite (NnPlan *plan, int n_threads)
{
  NnGraph *g = plan->graph;
  gboolean any = FALSE;
  guint n_xnn;

  if (!xnn_ready ())
    return TRUE;
  for (guint s = 0; s < plan->steps->len; s++)
    any = any || classify (&g_array_index (plan->steps, NnStep, s), plan) == 2;
  for (guint i = 0; i < g->outputs->len; i++)
    {
      int id = g_array_index (g->outputs, int, i);

      for (guint k = 0; k < g->inputs->len; k++)
        if (g_array_index (g->inputs, int, k) == id)
          return TRUE;
    }
  if (!any)
    return TRUE;

  plan->nhwc = TRUE;
  if (n_threads > 1)
    plan->threadpool = pthreadpool_create (n_threads);
  place_layouts (plan);
  /* the last operator lets the pool's workers sleep instead of spinning until the next
   * inference, so that an idle model leaves the cores to others */
  n_xnn = 0;
  for (guint s = 0; s < plan->steps->len; s++)
    if (g_array_index (plan->steps, NnStep, s).node &&
        classify (&g_array_index (plan->steps, NnStep, s), plan) == 2)
      n_xnn++;

  for (guint s = 0; s < plan->steps->len; s++)
    {
      NnStep *st = &g_array_index (plan->steps, NnStep, s);
      XnnState *x = NULL;
      float lo = -INFINITY, hi = INFINITY;
      uint32_t flags = 0;

      if (!st->node || classify (st, plan) == 0)
        continue;
      if (classify (st, plan) == 2 && --n_xnn == 0)
        flags = XNN_FLAG_YIELD_WORKERS;
      if (is_op (st, "Conv"))
        {
          const NnConvParams *p = (const NnConvParams *) st->p.bytes;
          int m = nn_wino_pick (p);
          NnWino *w;

          take_activation (plan, s, &lo, &hi);
          st = &g_array_index (plan->steps, NnStep, s);
          if (m && (w = nn_wino_new (p, st->in[1]->data,
                                     st->n_in > 2 && st->in[2] ? st->in[2]->data : NULL, m, lo,
                                     hi, NULL,
                                     pool_for (plan, (double) p->N * p->M * p->out[1] *
                                                     p->out[2] * p->C * 9),
                                     flags ? PTHREADPOOL_FLAG_YIELD_WORKERS : 0)))
            {
              st->fast = w;
              st->fast_free = nn_wino_free;
              st->run = k_wino;
              st->scratch_bytes = nn_wino_scratch (w);
              st->kernel_name = m == 4 ? "wino-f4" : "wino-f2";
              continue;
            }
          if (!(x = make_conv (plan, st, lo, hi, flags)))
            return FALSE;
          st->kernel_name = "xnn-conv";
        }
      else if ((is_op (st, "Gemm") || is_op (st, "MatMul")) && classify (st, plan) == 2)
        {
          take_activation (plan, s, &lo, &hi);
          st = &g_array_index (plan->steps, NnStep, s);
          if (!(x = make_fc (plan, st, lo, hi, flags)))
            return FALSE;
          st->kernel_name = "xnn-fc";
        }
      else if (is_op (st, "MaxPool"))
        {
          if (!(x = make_maxpool (plan, st, flags)))
            return FALSE;
          st->kernel_name = "xnn-maxpool";
        }
      else if (is_op (st, "AveragePool"))
        {
          if (!(x = make_avgpool (plan, st, flags)))
            return FALSE;
          st->kernel_name = "xnn-avgpool";
        }
      else if (is_op (st, "BatchNormalization") && !all_layout_free (st))
        {
          st->run = k_batchnorm_nhwc;
          st->kernel_name = "batchnorm-nhwc";
          st->scratch_bytes = 2 * sizeof (float) * ((const NnBatchNormParams *) st->p.bytes)->C;
        }
      else if (is_op (st, "GlobalAveragePool"))
        {
          if (!(x = make_gap (plan, st, flags)))
            return FALSE;
          st->kernel_name = "xnn-gap";
        }
      else if (is_op (st, "Add") && classify (st, plan) == 2)
        {
          take_activation (plan, s, &lo, &hi);
          st = &g_array_index (plan->steps, NnStep, s);
          if (!(x = make_add (plan, st, lo, hi, flags)))
            return FALSE;
          st->kernel_name = "xnn-add";
        }
      else if (is_op (st, "Concat") && !all_layout_free (st))
        {
          NnConcatParams *p = (NnConcatParams *) st->p.bytes;

          /* channels-last: one run of channels per input per pixel */
          p->outer = st->out[0]->ne[0] * st->out[0]->ne[2] * st->out[0]->ne[3];
          p->inner = 1;
          st->kernel_name = "concat-nhwc";
        }
      if (x)
        {
          st->fast = x;
          st->fast_free = xnn_state_free;
          st->run = k_xnn;
          st->scratch_bytes = 0;
        }
    }
  return TRUE;
}

gboolean
nn_xnn_setup (NnPlan *plan)
{
  for (guint i = 0; i < plan->steps->len; i++)
    {
      NnStep *st = &g_array_index (plan->steps, NnStep, i);
      XnnState *s = st->fast;
      enum xnn_status status = xnn_status_success;

      if (st->run == k_wino && !nn_wino_setup (st->fast, st->in[0]->data, st->out[0]->data,
                                               st->scratch))
        return FALSE;
      if (st->run != k_xnn)
        continue;
      switch (s->kind)
        {
        case XNN_CONV:
          status = xnn_setup_convolution2d_nhwc_f32 (s->op, s->N, s->H, s->W, st->in[0]->data,
                                                     st->out[0]->data, s->pool);
          break;
        case XNN_MAXPOOL:
          status = xnn_setup_max_pooling2d_nhwc_f32 (s->op, s->N, s->H, s->W, st->in[0]->data,
                                                     st->out[0]->data, s->pool);
          break;
        case XNN_AVGPOOL:
          status = xnn_setup_average_pooling2d_nhwc_f32 (s->op, s->N, s->H, s->W,
                                                         st->in[0]->data, st->out[0]->data,
                                                         s->pool);
          break;
        case XNN_FC:
          status = xnn_setup_fully_connected_nc_f32 (s->op, s->numel, st->in[0]->data,
                                                     st->out[0]->data, s->pool);
          break;
        case XNN_GAP:
          status = xnn_setup_global_average_pooling_nwc_f32 (s->op, s->N, s->W, st->in[0]->data,
                                                             st->out[0]->data, s->pool);
          break;
        case XNN_ADD:
          status = xnn_setup_add_nd_f32 (s->op, 1, &s->numel, 1, &s->numel, st->in[0]->data,
                                         st->in[1]->data, st->out[0]->data, s->pool);
          break;
        default:
          break;
        }
      if (status != xnn_status_success)
        return FALSE;
    }
  return TRUE;
}

void
nn_xnn_plan_free (NnPlan *plan)
{
  if (plan->threadpool)
    pthreadpool_destroy (plan->threadpool);
  plan->threadpool = NULL;
}
