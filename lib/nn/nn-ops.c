/* nn-ops.c - the op table: per op, the ONNX semantics across opsets (attributes versus
 * inputs, defaults), output shapes, parameters, and the choice of kernel */
#include "config.h"

#include <float.h>
#include <math.h>
#include <string.h>

#include "nn-ops.h"

typedef gboolean (*NnOpPlanFunc) (NnOpCtx *c, GError **error);

typedef struct {
  const char   *name;
  NnOpPlanFunc  plan;
  int           min_in, max_in;
  int           shape_only;
} NnOpInfo;

/* step->in/out hold NULL past n_in/n_out (step_init clears them) */
#define IN(c, k)    ((c)->step->in[k])
#define KNOWN(c, k) ((k) < (c)->step->n_in && (c)->step->in[k] && (c)->known[k])
#define OUT(c, k)   ((c)->step->out[k])
#define P(c, T)     ((T *) (c)->step->p.bytes)

G_STATIC_ASSERT (sizeof (NnConvParams) <= NN_PARAM_BYTES);
G_STATIC_ASSERT (sizeof (NnBinaryParams) <= NN_PARAM_BYTES);
G_STATIC_ASSERT (sizeof (NnPadParams) <= NN_PARAM_BYTES);
G_STATIC_ASSERT (sizeof (NnMatMulParams) <= NN_PARAM_BYTES);
G_STATIC_ASSERT (sizeof (NnConcatParams) <= NN_PARAM_BYTES);

static gboolean G_GNUC_PRINTF (3, 4)
fail (NnOpCtx *c, GError **error, const char *fmt, ...)
{
  g_autofree char *msg = NULL;
  va_list ap;

  va_start (ap, fmt);
  msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  g_set_error (error, NN_ERROR, NN_ERROR_INVALID, "node '%s' (%s): %s", c->node->name,
               c->node->op_type, msg);
  return FALSE;
}

static gboolean G_GNUC_PRINTF (3, 4)
unsupported (NnOpCtx *c, GError **error, const char *fmt, ...)
{
  g_autofree char *msg = NULL;
  va_list ap;

  va_start (ap, fmt);
  msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  g_set_error (error, NN_ERROR, NN_ERROR_UNSUPPORTED, "node '%s' (%s): %s", c->node->name,
               c->node->op_type, msg);
  return FALSE;
}

static const char *
shape_str (NnOpCtx *c, int ndim, const int64_t *ne)
{
  char *buf = c->shape_buf[c->shape_next++ % G_N_ELEMENTS (c->shape_buf)];
  size_t len = sizeof c->shape_buf[0], at = 0;

  at += g_snprintf (buf, len, "(");
  for (int i = 0; i < ndim && at < len; i++)
    at += g_snprintf (buf + at, len - at, "%s%" G_GINT64_FORMAT, i ? "," : "", ne[i]);
  if (at < len)
    g_snprintf (buf + at, len - at, ")");
  return buf;
}

static gboolean
set_out (NnOpCtx *c, int k, NnDType dtype, int ndim, const int64_t *ne, GError **error)
{
  NnTensor *t = OUT (c, k);

  if (!t)
    return TRUE;
  if (!nn_shape_numel_checked (ndim, ne, NULL, error))
    {
      g_prefix_error (error, "node '%s' (%s) output: ", c->node->name, c->node->op_type);
      return FALSE;
    }
  t->dtype = dtype;
  t->ndim = ndim;
  for (int i = 0; i < NN_MAX_DIMS; i++)
    t->ne[i] = i < ndim ? ne[i] : 0;
  return TRUE;
}

static gboolean
need_input (NnOpCtx *c, int k, GError **error)
{
  if (!IN (c, k))
    return fail (c, error, "input %d is required", k);
  return TRUE;
}

static gboolean
need_known (NnOpCtx *c, int k, const char *what, GError **error)
{
  if (!KNOWN (c, k))
    return unsupported (c, error, "%s must be a constant (or computable from input shapes)",
                        what);
  return TRUE;
}

static gboolean
need_float (NnOpCtx *c, int k, GError **error)
{
  if (IN (c, k) && IN (c, k)->dtype != NN_DTYPE_FLOAT)
    return unsupported (c, error, "input %d has type %s; this op runs on float32 only", k,
                        nn_dtype_name (IN (c, k)->dtype));
  return TRUE;
}

static gboolean
norm_axis (NnOpCtx *c, int64_t axis, int rank, int *out, GError **error)
{
  *out = 0;
  if (axis < -rank || axis >= rank)
    return fail (c, error, "axis %" G_GINT64_FORMAT " is out of range for rank %d", axis, rank);
  *out = (int) (axis < 0 ? axis + rank : axis);
  return TRUE;
}

static int64_t
prod (const int64_t *ne, int from, int to)
{
  int64_t n = 1;

  for (int i = from; i < to; i++)
    n *= ne[i];
  return n;
}

/* Reads a 1-D integer tensor (a known input) or an INTS attribute into @v. */
static gboolean
read_ints (NnOpCtx *c, const NnTensor *t, int64_t *v, int max, int *n, GError **error)
{
  int64_t numel = nn_tensor_numel (t);

  if (t->dtype != NN_DTYPE_INT64 && t->dtype != NN_DTYPE_INT32)
    return fail (c, error, "'%s' must be int64", t->name ? t->name : "");
  if (numel > max)
    return fail (c, error, "'%s' has %" G_GINT64_FORMAT " values (max %d)",
                 t->name ? t->name : "", numel, max);
  for (int64_t i = 0; i < numel; i++)
    v[i] = nn_tensor_get_int (t, i);
  *n = (int) numel;
  return TRUE;
}

/* ---- kernels: adapt a step to the explicit-size kernels ---- */

#define D(t) ((t) ? (t)->data : NULL)

static void
k_conv_ref (const NnStep *s, const NnExec *e)
{
  nn_ref_conv (s->out[0]->data, s->in[0]->data, s->in[1]->data,
               s->n_in > 2 ? D (s->in[2]) : NULL, (const NnConvParams *) s->p.bytes);
}

static void
k_conv_fast (const NnStep *s, const NnExec *e)
{
  nn_fast_conv (s->out[0]->data, s->in[0]->data, s->in[1]->data,
                s->n_in > 2 ? D (s->in[2]) : NULL, s->scratch,
                (const NnConvParams *) s->p.bytes);
}

static void
k_pool (const NnStep *s, const NnExec *e)
{
  nn_ref_pool (s->out[0]->data, s->n_out > 1 ? D (s->out[1]) : NULL, s->in[0]->data,
               (const NnConvParams *) s->p.bytes);
}

static void
k_binary (const NnStep *s, const NnExec *e)
{
  nn_ref_binary (s->out[0]->data, s->in[0]->data, s->in[1]->data,
                 (const NnBinaryParams *) s->p.bytes);
}

static void
k_unary (const NnStep *s, const NnExec *e)
{
  const NnUnaryParams *p = (const NnUnaryParams *) s->p.bytes;

  if (p->lo_input || p->hi_input)
    {
      NnUnaryParams q = *p;

      if (q.lo_input)
        q.lo = nn_tensor_get_double (s->in[1], 0);
      if (q.hi_input)
        q.hi = nn_tensor_get_double (s->in[2], 0);
      nn_ref_unary (s->out[0]->data, s->in[0]->data, &q);
      return;
    }
  nn_ref_unary (s->out[0]->data, s->in[0]->data, p);
}

static void
k_gemm_ref (const NnStep *s, const NnExec *e)
{
  nn_ref_gemm (s->out[0]->data, s->in[0]->data, s->in[1]->data,
               s->n_in > 2 ? D (s->in[2]) : NULL, (const NnGemmParams *) s->p.bytes);
}

static void
k_gemm_fast (const NnStep *s, const NnExec *e)
{
  nn_fast_gemm (s->out[0]->data, s->in[0]->data, s->in[1]->data,
                s->n_in > 2 ? D (s->in[2]) : NULL, (const NnGemmParams *) s->p.bytes);
}

static void
k_matmul_ref (const NnStep *s, const NnExec *e)
{
  nn_ref_matmul (s->out[0]->data, s->in[0]->data, s->in[1]->data,
                 (const NnMatMulParams *) s->p.bytes);
}

static void
k_matmul_fast (const NnStep *s, const NnExec *e)
{
  nn_fast_matmul (s->out[0]->data, s->in[0]->data, s->in[1]->data,
                  (const NnMatMulParams *) s->p.bytes);
}

static void
k_batchnorm (const NnStep *s, const NnExec *e)
{
  nn_ref_batchnorm (s->out[0]->data, s->in[0]->data, s->in[1]->data, s->in[2]->data,
                    s->in[3]->data, s->in[4]->data, s->n_out > 1 ? D (s->out[1]) : NULL,
                    s->n_out > 2 ? D (s->out[2]) : NULL, (const NnBatchNormParams *) s->p.bytes);
}

static void
k_concat (const NnStep *s, const NnExec *e)
{
  const void *ins[NN_MAX_IO];

  for (int i = 0; i < s->n_in; i++)
    ins[i] = s->in[i]->data;
  nn_ref_concat (s->out[0]->data, ins, s->n_in, (const NnConcatParams *) s->p.bytes);
}

static void
k_transpose (const NnStep *s, const NnExec *e)
{
  nn_ref_transpose (s->out[0]->data, s->in[0]->data, (const NnTransposeParams *) s->p.bytes);
}

static void
k_copy (const NnStep *s, const NnExec *e)
{
  const NnCopyParams *p = (const NnCopyParams *) s->p.bytes;

  if (s->out[0]->data != s->in[0]->data)
    memcpy (s->out[0]->data, s->in[0]->data, p->bytes);
  if (p->mask_out && s->out[1])
    {
      NnTensor *m = s->out[1];

      if (m->dtype == NN_DTYPE_FLOAT)
        for (int64_t i = 0; i < p->mask_numel; i++)
          ((float *) m->data)[i] = 1.0f;
      else
        memset (m->data, 1, p->mask_numel * nn_dtype_size (m->dtype));
    }
}

static void
k_softmax (const NnStep *s, const NnExec *e)
{
  nn_ref_softmax (s->out[0]->data, s->in[0]->data, (const NnSoftmaxParams *) s->p.bytes);
}

static void
k_gather (const NnStep *s, const NnExec *e)
{
  nn_ref_gather (s->out[0]->data, s->in[0]->data, s->in[1], (const NnGatherParams *) s->p.bytes);
}

static void
k_pad (const NnStep *s, const NnExec *e)
{
  const NnPadParams *p = (const NnPadParams *) s->p.bytes;

  if (p->value_input)
    {
      NnPadParams q = *p;

      q.value = nn_tensor_get_double (s->in[2], 0);
      nn_ref_pad (s->out[0]->data, s->in[0]->data, &q);
      return;
    }
  nn_ref_pad (s->out[0]->data, s->in[0]->data, p);
}

static void
k_reduce_mean (const NnStep *s, const NnExec *e)
{
  nn_ref_reduce_mean (s->out[0]->data, s->in[0]->data, (const NnReduceParams *) s->p.bytes);
}

static void
k_gap (const NnStep *s, const NnExec *e)
{
  nn_ref_gap (s->out[0]->data, s->in[0]->data, (const NnGapParams *) s->p.bytes);
}

static void
k_shape (const NnStep *s, const NnExec *e)
{
  const int64_t *range = (const int64_t *) s->p.bytes;

  for (int64_t i = range[0]; i < range[1]; i++)
    ((int64_t *) s->out[0]->data)[i - range[0]] = s->in[0]->ne[i];
}

static void
k_constant (const NnStep *s, const NnExec *e)
{
  const NnTensor *src = *(NnTensor *const *) s->p.bytes;

  memcpy (s->out[0]->data, src->data, nn_tensor_numel (src) * nn_dtype_size (src->dtype));
}

static void
k_constant_scalars (const NnStep *s, const NnExec *e)
{
  const NnAttr *a = *(const NnAttr *const *) s->p.bytes;

  switch (a->type)
    {
    case NN_ATTR_FLOAT:  *(float *) s->out[0]->data = a->f; break;
    case NN_ATTR_INT:    *(int64_t *) s->out[0]->data = a->i; break;
    case NN_ATTR_FLOATS: memcpy (s->out[0]->data, a->floats, a->n * sizeof (float)); break;
    case NN_ATTR_INTS:   memcpy (s->out[0]->data, a->ints, a->n * sizeof (int64_t)); break;
    default: break;
    }
}

/* ---- conv and pool geometry ---- */

static gboolean
spatial_geometry (NnOpCtx *c, const NnTensor *x, const int64_t *kernel, gboolean pool,
                  NnConvParams *p, GError **error)
{
  const NnNode *node = c->node;
  const int64_t *strides, *dil, *pads;
  int nsp = x->ndim - 2, n_strides, n_dil, n_pads, off;
  const char *auto_pad = nn_node_attr_string (node, "auto_pad", "NOTSET");
  int ceil_mode = pool ? (int) nn_node_attr_int (node, "ceil_mode", 0) : 0;

  if (nsp < 1 || nsp > NN_MAX_SPATIAL)
    return unsupported (c, error, "input of rank %d; magpie handles 1 to 3 spatial dims",
                        x->ndim);
  n_strides = nn_node_attr_ints (node, "strides", &strides);
  n_dil = nn_node_attr_ints (node, "dilations", &dil);
  n_pads = nn_node_attr_ints (node, "pads", &pads);
  if ((n_strides >= 0 && n_strides != nsp) || (n_dil >= 0 && n_dil != nsp) ||
      (n_pads >= 0 && n_pads != 2 * nsp))
    return fail (c, error, "strides, dilations or pads do not match %d spatial dims", nsp);

  p->nsp = nsp;
  p->N = x->ne[0];
  p->C = x->ne[1];
  off = NN_MAX_SPATIAL - nsp;
  for (int d = 0; d < NN_MAX_SPATIAL; d++)
    {
      p->in[d] = p->k[d] = p->stride[d] = p->dil[d] = p->out[d] = 1;
      p->pad[d] = p->pad_end[d] = 0;
    }
  for (int i = 0; i < nsp; i++)
    {
      int d = off + i;
      int64_t ek, total;

      p->in[d] = x->ne[2 + i];
      p->k[d] = kernel[i];
      p->stride[d] = n_strides > 0 ? strides[i] : 1;
      p->dil[d] = n_dil > 0 ? dil[i] : 1;
      if (p->k[d] < 1 || p->stride[d] < 1 || p->dil[d] < 1 || p->k[d] > NN_MAX_ELEMENTS ||
          p->stride[d] > NN_MAX_ELEMENTS || p->dil[d] > NN_MAX_ELEMENTS)
        return fail (c, error, "kernel, stride and dilation must be positive");
      ek = (p->k[d] - 1) * p->dil[d] + 1;
      if (g_str_equal (auto_pad, "SAME_UPPER") || g_str_equal (auto_pad, "SAME_LOWER"))
        {
          p->out[d] = (p->in[d] + p->stride[d] - 1) / p->stride[d];
          total = MAX (0, (p->out[d] - 1) * p->stride[d] + ek - p->in[d]);
          p->pad[d] = g_str_equal (auto_pad, "SAME_UPPER") ? total / 2 : total - total / 2;
          p->pad_end[d] = total - p->pad[d];
          continue;
        }
      if (g_str_equal (auto_pad, "VALID"))
        p->pad[d] = p->pad_end[d] = 0;
      else if (g_str_equal (auto_pad, "NOTSET"))
        {
          p->pad[d] = n_pads > 0 ? pads[i] : 0;
          p->pad_end[d] = n_pads > 0 ? pads[nsp + i] : 0;
        }
      else
        return fail (c, error, "unknown auto_pad '%s'", auto_pad);
      if (p->pad[d] < 0 || p->pad_end[d] < 0 || p->pad[d] > NN_MAX_ELEMENTS ||
          p->pad_end[d] > NN_MAX_ELEMENTS)
        return fail (c, error, "pads must be between 0 and %" G_GINT64_FORMAT, NN_MAX_ELEMENTS);
      total = p->in[d] + p->pad[d] + p->pad_end[d] - ek;
      if (total < 0)
        return fail (c, error, "the kernel is larger than the padded input");
      if (ceil_mode)
        {
          p->out[d] = (total + p->stride[d] - 1) / p->stride[d] + 1;
          /* no window may start in the end padding (PyTorch's rule, which ORT follows) */
          if ((p->out[d] - 1) * p->stride[d] >= p->in[d] + p->pad[d])
            p->out[d]--;
        }
      else
        p->out[d] = total / p->stride[d] + 1;
    }
  return TRUE;
}

static void
spatial_out_shape (const NnConvParams *p, int64_t channels, int64_t *ne)
{
  ne[0] = p->N;
  ne[1] = channels;
  for (int i = 0; i < p->nsp; i++)
    ne[2 + i] = p->out[NN_MAX_SPATIAL - p->nsp + i];
}

static gboolean
plan_conv (NnOpCtx *c, GError **error)
{
  NnConvParams *p = P (c, NnConvParams);
  const NnTensor *x = IN (c, 0), *w = IN (c, 1), *b = IN (c, 2);
  const int64_t *ks;
  int64_t ne[NN_MAX_DIMS];
  int nk;

  if (!need_input (c, 1, error) || !need_float (c, 0, error) || !need_float (c, 1, error) ||
      !need_float (c, 2, error))
    return FALSE;
  if (w->ndim != x->ndim)
    return fail (c, error, "weight rank %d does not match input rank %d", w->ndim, x->ndim);
  nk = nn_node_attr_ints (c->node, "kernel_shape", &ks);
  if (nk >= 0 && nk != x->ndim - 2)
    return fail (c, error, "kernel_shape has %d values for %d spatial dims", nk, x->ndim - 2);
  for (int i = 0; nk > 0 && i < nk; i++)
    if (ks[i] != w->ne[2 + i])
      return fail (c, error, "kernel_shape does not match the weights");
  if (!spatial_geometry (c, x, w->ne + 2, FALSE, p, error))
    return FALSE;
  p->G = nn_node_attr_int (c->node, "group", 1);
  p->M = w->ne[0];
  if (p->G < 1 || p->C % p->G != 0 || p->M % p->G != 0 || w->ne[1] * p->G != p->C)
    return fail (c, error, "group %" G_GINT64_FORMAT " does not fit %" G_GINT64_FORMAT
                 " input and %" G_GINT64_FORMAT " output channels with weights %s", p->G,
                 p->C, p->M, shape_str (c, w->ndim, w->ne));
  p->has_bias = b != NULL;
  if (b && nn_tensor_numel (b) != p->M)
    return fail (c, error, "bias has %" G_GINT64_FORMAT " values for %" G_GINT64_FORMAT
                 " output channels", nn_tensor_numel (b), p->M);
  p->dtype = NN_DTYPE_FLOAT;
  spatial_out_shape (p, p->M, ne);
  c->step->run = k_conv_ref;
  if (c->fast && nn_fast_conv_supported (p))
    {
      c->step->run = k_conv_fast;
      c->step->kernel_name = "im2col-sgemm";
      c->step->scratch_bytes = nn_fast_conv_scratch (p);
    }
  return set_out (c, 0, NN_DTYPE_FLOAT, x->ndim, ne, error);
}

static gboolean
plan_pool (NnOpCtx *c, gboolean is_max, GError **error)
{
  NnConvParams *p = P (c, NnConvParams);
  const NnTensor *x = IN (c, 0);
  const int64_t *ks;
  int64_t ne[NN_MAX_DIMS];
  int nk = nn_node_attr_ints (c->node, "kernel_shape", &ks);

  if (nk != x->ndim - 2)
    return fail (c, error, "kernel_shape must have one value per spatial dim");
  if (x->dtype != NN_DTYPE_FLOAT &&
      !(is_max && (x->dtype == NN_DTYPE_UINT8 || x->dtype == NN_DTYPE_INT8)))
    return unsupported (c, error, "input type %s is not supported", nn_dtype_name (x->dtype));
  if (!spatial_geometry (c, x, ks, TRUE, p, error))
    return FALSE;
  p->is_max = is_max;
  p->M = p->C;
  p->G = p->C;
  p->dtype = x->dtype;
  p->count_include_pad = (int) nn_node_attr_int (c->node, "count_include_pad", 0);
  p->storage_order = (int) nn_node_attr_int (c->node, "storage_order", 0);
  if (!is_max && p->nsp > 0)
    for (int d = 0; d < NN_MAX_SPATIAL; d++)
      if (p->dil[d] != 1)
        return unsupported (c, error, "AveragePool with dilations");
  spatial_out_shape (p, p->C, ne);
  c->step->run = k_pool;
  if (!set_out (c, 0, x->dtype, x->ndim, ne, error))
    return FALSE;
  return set_out (c, 1, NN_DTYPE_INT64, x->ndim, ne, error);
}

static gboolean
plan_maxpool (NnOpCtx *c, GError **error)
{
  return plan_pool (c, TRUE, error);
}

static gboolean
plan_avgpool (NnOpCtx *c, GError **error)
{
  return plan_pool (c, FALSE, error);
}

static gboolean
plan_gap (NnOpCtx *c, GError **error)
{
  NnGapParams *p = P (c, NnGapParams);
  const NnTensor *x = IN (c, 0);
  int64_t ne[NN_MAX_DIMS];

  if (!need_float (c, 0, error))
    return FALSE;
  if (x->ndim < 3)
    return fail (c, error, "input must have at least one spatial dim");
  p->NC = x->ne[0] * x->ne[1];
  p->S = prod (x->ne, 2, x->ndim);
  for (int i = 0; i < x->ndim; i++)
    ne[i] = i < 2 ? x->ne[i] : 1;
  c->step->run = k_gap;
  return set_out (c, 0, NN_DTYPE_FLOAT, x->ndim, ne, error);
}

/* ---- elementwise ---- */

static gboolean
broadcast (NnOpCtx *c, const NnTensor *a, const NnTensor *b, NnBinaryParams *p, GError **error)
{
  int64_t bne[NN_MAX_DIMS];
  int bnd = b->ndim;

  memcpy (bne, b->ne, sizeof bne);
  /* opsets before 7 broadcast b into a at 'axis' when broadcast=1 */
  if (c->g->opset < 7 && nn_node_attr_int (c->node, "broadcast", 0) &&
      nn_node_attr (c->node, "axis"))
    {
      int axis;

      if (!norm_axis (c, nn_node_attr_int (c->node, "axis", 0), a->ndim, &axis, error))
        return FALSE;
      while (bnd < a->ndim - axis && bnd < NN_MAX_DIMS)
        bne[bnd++] = 1;
    }
  p->ndim = MAX (a->ndim, bnd);
  p->numel = 1;
  for (int i = 0; i < p->ndim; i++)
    {
      int ia = i - (p->ndim - a->ndim), ib = i - (p->ndim - bnd);
      int64_t da = ia >= 0 ? a->ne[ia] : 1, db = ib >= 0 ? bne[ib] : 1;

      if (da != db && da != 1 && db != 1)
        return fail (c, error, "shapes %s and %s do not broadcast",
                     shape_str (c, a->ndim, a->ne), shape_str (c, b->ndim, b->ne));
      p->ne[i] = da == 1 ? db : da;
      p->numel *= p->ne[i];
    }
  {
    int64_t s_a = 1, s_b = 1;

    for (int i = p->ndim - 1; i >= 0; i--)
      {
        int ia = i - (p->ndim - a->ndim), ib = i - (p->ndim - bnd);
        int64_t da = ia >= 0 ? a->ne[ia] : 1, db = ib >= 0 ? bne[ib] : 1;

        p->sa[i] = da == 1 ? 0 : s_a;
        p->sb[i] = db == 1 ? 0 : s_b;
        s_a *= da;
        s_b *= db;
      }
  }
  p->same_shape = nn_tensor_same_shape (a, b);
  return TRUE;
}

static gboolean
plan_binary (NnOpCtx *c, NnBinOp op, GError **error)
{
  NnBinaryParams *p = P (c, NnBinaryParams);
  const NnTensor *a = IN (c, 0), *b = IN (c, 1);

  if (!need_input (c, 1, error))
    return FALSE;
  if (a->dtype != b->dtype)
    return fail (c, error, "inputs have different types (%s, %s)", nn_dtype_name (a->dtype),
                 nn_dtype_name (b->dtype));
  if (a->dtype == NN_DTYPE_BOOL)
    return unsupported (c, error, "bool inputs");
  if (!broadcast (c, a, b, p, error))
    return FALSE;
  p->op = op;
  p->dtype = a->dtype;
  c->step->run = k_binary;
  return set_out (c, 0, a->dtype, p->ndim, p->ne, error);
}

static gboolean plan_add (NnOpCtx *c, GError **e) { return plan_binary (c, NN_BIN_ADD, e); }
static gboolean plan_sub (NnOpCtx *c, GError **e) { return plan_binary (c, NN_BIN_SUB, e); }
static gboolean plan_mul (NnOpCtx *c, GError **e) { return plan_binary (c, NN_BIN_MUL, e); }
static gboolean plan_div (NnOpCtx *c, GError **e) { return plan_binary (c, NN_BIN_DIV, e); }

static gboolean
plan_unary (NnOpCtx *c, NnUnaryOp op, GError **error)
{
  NnUnaryParams *p = P (c, NnUnaryParams);
  const NnTensor *x = IN (c, 0);

  if (op != NN_UN_CLIP && !need_float (c, 0, error))
    return FALSE;
  p->op = op;
  p->dtype = x->dtype;
  p->numel = nn_tensor_numel (x);
  switch (op)
    {
    case NN_UN_LEAKY_RELU:
      p->alpha = nn_node_attr_float (c->node, "alpha", 0.01f);
      break;
    case NN_UN_HARD_SIGMOID:
      p->alpha = nn_node_attr_float (c->node, "alpha", 0.2f);
      p->beta = nn_node_attr_float (c->node, "beta", 0.5f);
      break;
    case NN_UN_CLIP:
      if (x->dtype == NN_DTYPE_BOOL)
        return unsupported (c, error, "bool input");
      p->lo = -INFINITY;
      p->hi = INFINITY;
      if (c->g->opset < 11)
        {
          p->lo = nn_node_attr_float (c->node, "min", -FLT_MAX);
          p->hi = nn_node_attr_float (c->node, "max", FLT_MAX);
        }
      for (int k = 1; k <= 2; k++)
        {
          const NnTensor *t = IN (c, k);

          if (!t)
            continue;
          if (t->dtype != x->dtype || nn_tensor_numel (t) != 1)
            return fail (c, error, "min and max must be scalars of the input's type");
          if (KNOWN (c, k))
            *(k == 1 ? &p->lo : &p->hi) = nn_tensor_get_double (t, 0);
          else
            *(k == 1 ? &p->lo_input : &p->hi_input) = 1;
        }
      break;
    case NN_UN_RELU:
    case NN_UN_SIGMOID:
    case NN_UN_HARD_SWISH:
    case NN_UN_TANH:
    default:
      break;
    }
  c->step->run = k_unary;
  return set_out (c, 0, x->dtype, x->ndim, x->ne, error);
}

static gboolean plan_relu (NnOpCtx *c, GError **e) { return plan_unary (c, NN_UN_RELU, e); }
static gboolean plan_leaky (NnOpCtx *c, GError **e) { return plan_unary (c, NN_UN_LEAKY_RELU, e); }
static gboolean plan_sigmoid (NnOpCtx *c, GError **e) { return plan_unary (c, NN_UN_SIGMOID, e); }
static gboolean plan_hsigmoid (NnOpCtx *c, GError **e) { return plan_unary (c, NN_UN_HARD_SIGMOID, e); }
static gboolean plan_hswish (NnOpCtx *c, GError **e) { return plan_unary (c, NN_UN_HARD_SWISH, e); }
static gboolean plan_tanh (NnOpCtx *c, GError **e) { return plan_unary (c, NN_UN_TANH, e); }
static gboolean plan_clip (NnOpCtx *c, GError **e) { return plan_unary (c, NN_UN_CLIP, e); }

/* ---- linear algebra ---- */

static gboolean
plan_gemm (NnOpCtx *c, GError **error)
{
  NnGemmParams *p = P (c, NnGemmParams);
  const NnTensor *a = IN (c, 0), *b = IN (c, 1), *cc = IN (c, 2);
  int64_t ne[2], kb;

  if (!need_input (c, 1, error) || !need_float (c, 0, error) || !need_float (c, 1, error) ||
      !need_float (c, 2, error))
    return FALSE;
  if (a->ndim != 2 || b->ndim != 2)
    return fail (c, error, "A and B must be matrices");
  p->trans_a = (int) nn_node_attr_int (c->node, "transA", 0);
  p->trans_b = (int) nn_node_attr_int (c->node, "transB", 0);
  p->alpha = nn_node_attr_float (c->node, "alpha", 1.0f);
  p->beta = nn_node_attr_float (c->node, "beta", 1.0f);
  p->M = p->trans_a ? a->ne[1] : a->ne[0];
  p->K = p->trans_a ? a->ne[0] : a->ne[1];
  p->N = p->trans_b ? b->ne[0] : b->ne[1];
  kb = p->trans_b ? b->ne[1] : b->ne[0];
  if (kb != p->K)
    return fail (c, error, "A %s and B %s do not multiply", shape_str (c, 2, a->ne),
                 shape_str (c, 2, b->ne));
  p->has_c = cc != NULL;
  if (cc)
    {
      int64_t rows = cc->ndim == 2 ? cc->ne[0] : 1;
      int64_t cols = cc->ndim >= 1 ? cc->ne[cc->ndim - 1] : 1;

      if (cc->ndim > 2 || (rows != 1 && rows != p->M) || (cols != 1 && cols != p->N))
        return fail (c, error, "C %s does not broadcast to (%" G_GINT64_FORMAT ",%"
                     G_GINT64_FORMAT ")", shape_str (c, cc->ndim, cc->ne), p->M, p->N);
      p->c_cs = cols == 1 ? 0 : 1;
      p->c_rs = rows == 1 ? 0 : cols;
    }
  ne[0] = p->M;
  ne[1] = p->N;
  c->step->run = c->fast ? k_gemm_fast : k_gemm_ref;
  c->step->kernel_name = c->fast ? "sgemm" : "ref";
  return set_out (c, 0, NN_DTYPE_FLOAT, 2, ne, error);
}

static gboolean
plan_matmul (NnOpCtx *c, GError **error)
{
  NnMatMulParams *p = P (c, NnMatMulParams);
  const NnTensor *a = IN (c, 0), *b = IN (c, 1);
  int64_t ane[NN_MAX_DIMS], bne[NN_MAX_DIMS], ne[NN_MAX_DIMS];
  int and_ = a->ndim, bnd = b->ndim, nb, nd = 0;

  if (!need_input (c, 1, error) || !need_float (c, 0, error) || !need_float (c, 1, error))
    return FALSE;
  if (and_ < 1 || bnd < 1)
    return fail (c, error, "inputs must have rank 1 or more");
  memcpy (ane, a->ne, sizeof ane);
  memcpy (bne, b->ne, sizeof bne);
  if (and_ == 1)
    {
      ane[1] = ane[0];
      ane[0] = 1;
      and_ = 2;
    }
  if (bnd == 1)
    {
      bne[1] = 1;
      bnd = 2;
    }
  p->M = ane[and_ - 2];
  p->K = ane[and_ - 1];
  p->N = bne[bnd - 1];
  if (bne[bnd - 2] != p->K)
    return fail (c, error, "shapes %s and %s do not multiply",
                 shape_str (c, a->ndim, a->ne), shape_str (c, b->ndim, b->ne));
  nb = MAX (and_, bnd) - 2;
  p->nbatch = nb;
  p->batch = 1;
  {
    int64_t s_a = 1, s_b = 1;

    for (int i = nb - 1; i >= 0; i--)
      {
        int ia = i - (nb - (and_ - 2)), ib = i - (nb - (bnd - 2));
        int64_t da = ia >= 0 ? ane[ia] : 1, db = ib >= 0 ? bne[ib] : 1;

        if (da != db && da != 1 && db != 1)
          return fail (c, error, "batch dims of %s and %s do not broadcast",
                       shape_str (c, a->ndim, a->ne), shape_str (c, b->ndim, b->ne));
        /* A 0 against a 1 is 0, not the larger: an empty batch stays empty. */
        p->bne[i] = da == 1 ? db : da;
        p->sa[i] = da == 1 ? 0 : s_a;
        p->sb[i] = db == 1 ? 0 : s_b;
        s_a *= da;
        s_b *= db;
        p->batch *= p->bne[i];
      }
  }
  for (int i = 0; i < nb; i++)
    ne[nd++] = p->bne[i];
  if (a->ndim > 1)
    ne[nd++] = p->M;
  if (b->ndim > 1)
    ne[nd++] = p->N;
  c->step->run = c->fast ? k_matmul_fast : k_matmul_ref;
  c->step->kernel_name = c->fast ? "sgemm" : "ref";
  return set_out (c, 0, NN_DTYPE_FLOAT, nd, ne, error);
}

static gboolean
plan_batchnorm (NnOpCtx *c, GError **error)
{
  NnBatchNormParams *p = P (c, NnBatchNormParams);
  const NnTensor *x = IN (c, 0);
  int64_t cne[1];

  for (int k = 0; k < 5; k++)
    if (!need_input (c, k, error) || !need_float (c, k, error))
      return FALSE;
  if (x->ndim < 2)
    return fail (c, error, "input must have rank 2 or more");
  if (c->g->opset < 9 && nn_node_attr_int (c->node, "spatial", 1) == 0)
    return unsupported (c, error, "spatial=0 (per-activation statistics)");
  p->N = x->ne[0];
  p->C = x->ne[1];
  p->S = prod (x->ne, 2, x->ndim);
  for (int k = 1; k < 5; k++)
    if (nn_tensor_numel (IN (c, k)) != p->C)
      return fail (c, error, "input %d must have %" G_GINT64_FORMAT " values", k, p->C);
  p->eps = nn_node_attr_float (c->node, "epsilon", 1e-5f);
  p->momentum = nn_node_attr_float (c->node, "momentum", 0.9f);
  p->training = c->g->opset >= 14 && nn_node_attr_int (c->node, "training_mode", 0) != 0;
  for (int k = 1; k < c->step->n_out; k++)
    if (OUT (c, k) && !(p->training && k <= 2))
      return unsupported (c, error, "the training outputs (mean, var, saved statistics) "
                          "of old opsets");
  c->step->run = k_batchnorm;
  cne[0] = p->C;
  return set_out (c, 0, NN_DTYPE_FLOAT, x->ndim, x->ne, error) &&
         set_out (c, 1, NN_DTYPE_FLOAT, 1, cne, error) &&
         set_out (c, 2, NN_DTYPE_FLOAT, 1, cne, error);
}

/* ---- data movement ---- */

static gboolean
plan_concat (NnOpCtx *c, GError **error)
{
  NnConcatParams *p = P (c, NnConcatParams);
  const NnTensor *x = IN (c, 0);
  int64_t ne[NN_MAX_DIMS];
  int axis;

  if (!nn_node_attr (c->node, "axis") && c->g->opset >= 4)
    return fail (c, error, "the axis attribute is required");
  if (!norm_axis (c, nn_node_attr_int (c->node, "axis", 1), x->ndim, &axis, error))
    return FALSE;
  memcpy (ne, x->ne, sizeof ne);
  ne[axis] = 0;
  for (int i = 0; i < c->step->n_in; i++)
    {
      const NnTensor *t = IN (c, i);

      if (!t)
        return fail (c, error, "input %d is missing", i);
      if (t->dtype != x->dtype || t->ndim != x->ndim)
        return fail (c, error, "inputs differ in type or rank");
      for (int d = 0; d < x->ndim; d++)
        if (d != axis && t->ne[d] != x->ne[d])
          return fail (c, error, "input %d has shape %s, which does not fit %s", i,
                       shape_str (c, t->ndim, t->ne), shape_str (c, x->ndim, x->ne));
      p->axis_len[i] = t->ne[axis];
      ne[axis] += t->ne[axis];
    }
  p->outer = prod (x->ne, 0, axis);
  p->inner = prod (x->ne, axis + 1, x->ndim);
  p->out_axis = ne[axis];
  p->esize = nn_dtype_size (x->dtype);
  c->step->run = k_concat;
  return set_out (c, 0, x->dtype, x->ndim, ne, error);
}

static gboolean
plan_copy_to (NnOpCtx *c, int ndim, const int64_t *ne, GError **error)
{
  NnCopyParams *p = P (c, NnCopyParams);
  const NnTensor *x = IN (c, 0);

  if (prod (ne, 0, ndim) != nn_tensor_numel (x))
    return fail (c, error, "cannot reshape %s to %s", shape_str (c, x->ndim, x->ne),
                 shape_str (c, ndim, ne));
  p->bytes = nn_tensor_numel (x) * nn_dtype_size (x->dtype);
  c->step->run = k_copy;
  return set_out (c, 0, x->dtype, ndim, ne, error);
}

static gboolean
plan_identity (NnOpCtx *c, GError **error)
{
  return plan_copy_to (c, IN (c, 0)->ndim, IN (c, 0)->ne, error);
}

static gboolean
plan_dropout (NnOpCtx *c, GError **error)
{
  NnCopyParams *p = P (c, NnCopyParams);
  const NnTensor *x = IN (c, 0);
  gboolean training = FALSE;
  double ratio = nn_node_attr_float (c->node, "ratio", 0.5f);

  if (c->g->opset < 7)
    training = nn_node_attr_int (c->node, "is_test", 0) == 0 && OUT (c, 1) != NULL;
  if (IN (c, 2))
    {
      if (!need_known (c, 2, "training_mode", error))
        return FALSE;
      training = nn_tensor_get_int (IN (c, 2), 0) != 0;
    }
  /* the ratio only matters in training mode */
  if (training && IN (c, 1))
    {
      if (!need_known (c, 1, "ratio", error))
        return FALSE;
      ratio = nn_tensor_get_double (IN (c, 1), 0);
    }
  if (training && ratio != 0.0)
    return unsupported (c, error, "training-mode Dropout (random); magpie runs inference only");
  if (!plan_copy_to (c, x->ndim, x->ne, error))
    return FALSE;
  p->mask_out = OUT (c, 1) != NULL;
  p->mask_numel = nn_tensor_numel (x);
  return set_out (c, 1, c->g->opset >= 10 ? NN_DTYPE_BOOL : x->dtype, x->ndim, x->ne, error);
}

static gboolean
plan_flatten (NnOpCtx *c, GError **error)
{
  const NnTensor *x = IN (c, 0);
  int64_t axis = nn_node_attr_int (c->node, "axis", 1), ne[2];

  if (axis < -x->ndim || axis > x->ndim)
    return fail (c, error, "axis %" G_GINT64_FORMAT " is out of range", axis);
  if (axis < 0)
    axis += x->ndim;
  ne[0] = prod (x->ne, 0, (int) axis);
  ne[1] = prod (x->ne, (int) axis, x->ndim);
  return plan_copy_to (c, 2, ne, error);
}

static gboolean
plan_reshape (NnOpCtx *c, GError **error)
{
  const NnTensor *x = IN (c, 0);
  int64_t shape[NN_MAX_DIMS], known = 1;
  int n = 0, infer = -1;
  gboolean allowzero = nn_node_attr_int (c->node, "allowzero", 0) != 0;

  if (c->g->opset < 5)
    {
      const int64_t *v;

      n = nn_node_attr_ints (c->node, "shape", &v);
      if (n < 0 || n > NN_MAX_DIMS)
        return fail (c, error, "the shape attribute is missing or too long");
      memcpy (shape, v, n * sizeof (int64_t));
    }
  else if (!need_input (c, 1, error) || !need_known (c, 1, "the shape input", error) ||
           !read_ints (c, IN (c, 1), shape, NN_MAX_DIMS, &n, error))
    return FALSE;
  for (int i = 0; i < n; i++)
    {
      if (shape[i] == 0 && !allowzero)
        {
          if (i >= x->ndim)
            return fail (c, error, "shape has 0 at %d, past the input's rank", i);
          shape[i] = x->ne[i];
        }
      if (shape[i] == -1)
        {
          if (infer >= 0)
            return fail (c, error, "shape has more than one -1");
          infer = i;
          continue;
        }
      if (shape[i] < 0)
        return fail (c, error, "shape has a negative dim");
      /* each factor at most 2^28, so the product cannot overflow before the check */
      if (shape[i] > NN_MAX_ELEMENTS)
        return fail (c, error, "shape is too large");
      known *= shape[i];
      if (known > NN_MAX_ELEMENTS)
        return fail (c, error, "shape is too large");
    }
  if (infer >= 0)
    {
      if (known == 0 || nn_tensor_numel (x) % known != 0)
        return fail (c, error, "cannot infer the -1 dim from %s", shape_str (c, x->ndim, x->ne));
      shape[infer] = nn_tensor_numel (x) / known;
    }
  return plan_copy_to (c, n, shape, error);
}

/* Axes from the 'axes' attribute (older opsets) or input 1 (opset 13+); -1 when absent. */
static gboolean
get_axes (NnOpCtx *c, int64_t *axes, int *n, GError **error)
{
  *n = -1;
  if (IN (c, 1))
    {
      if (!need_known (c, 1, "the axes input", error))
        return FALSE;
      return read_ints (c, IN (c, 1), axes, NN_MAX_DIMS, n, error);
    }
  else
    {
      const int64_t *v;
      int k = nn_node_attr_ints (c->node, "axes", &v);

      if (k > NN_MAX_DIMS)
        return fail (c, error, "too many axes");
      if (k >= 0)
        memcpy (axes, v, k * sizeof (int64_t));
      *n = k;
    }
  return TRUE;
}

static gboolean
plan_squeeze (NnOpCtx *c, GError **error)
{
  const NnTensor *x = IN (c, 0);
  int64_t axes[NN_MAX_DIMS], ne[NN_MAX_DIMS];
  int drop[NN_MAX_DIMS] = { 0 }, n, nd = 0;

  if (!get_axes (c, axes, &n, error))
    return FALSE;
  for (int i = 0; i < n; i++)
    {
      int a;

      if (!norm_axis (c, axes[i], x->ndim, &a, error))
        return FALSE;
      if (x->ne[a] != 1)
        return fail (c, error, "cannot squeeze dim %d of size %" G_GINT64_FORMAT, a, x->ne[a]);
      drop[a] = 1;
    }
  for (int d = 0; d < x->ndim; d++)
    if (!(n < 0 ? x->ne[d] == 1 : drop[d]))
      ne[nd++] = x->ne[d];
  return plan_copy_to (c, nd, ne, error);
}

static gboolean
plan_unsqueeze (NnOpCtx *c, GError **error)
{
  const NnTensor *x = IN (c, 0);
  int64_t axes[NN_MAX_DIMS], ne[NN_MAX_DIMS];
  int add[NN_MAX_DIMS] = { 0 }, n, rank, j = 0;

  if (!get_axes (c, axes, &n, error))
    return FALSE;
  if (n < 0)
    return fail (c, error, "axes are required");
  rank = x->ndim + n;
  if (rank > NN_MAX_DIMS)
    return unsupported (c, error, "output rank %d (max %d)", rank, NN_MAX_DIMS);
  for (int i = 0; i < n; i++)
    {
      int a;

      if (!norm_axis (c, axes[i], rank, &a, error))
        return FALSE;
      if (add[a])
        return fail (c, error, "axis %d is repeated", a);
      add[a] = 1;
    }
  for (int d = 0; d < rank; d++)
    ne[d] = add[d] ? 1 : x->ne[j++];
  return plan_copy_to (c, rank, ne, error);
}

static gboolean
plan_transpose (NnOpCtx *c, GError **error)
{
  NnTransposeParams *p = P (c, NnTransposeParams);
  const NnTensor *x = IN (c, 0);
  const int64_t *perm;
  int n = nn_node_attr_ints (c->node, "perm", &perm), seen[NN_MAX_DIMS] = { 0 };
  int64_t ne[NN_MAX_DIMS];

  if (n >= 0 && n != x->ndim)
    return fail (c, error, "perm has %d values for rank %d", n, x->ndim);
  p->ndim = x->ndim;
  p->esize = nn_dtype_size (x->dtype);
  memcpy (p->ne, x->ne, sizeof p->ne);
  for (int d = 0; d < x->ndim; d++)
    {
      int64_t v = n >= 0 ? perm[d] : x->ndim - 1 - d;

      if (v < 0 || v >= x->ndim || seen[v])
        return fail (c, error, "perm is not a permutation");
      seen[v] = 1;
      p->perm[d] = (int) v;
      ne[d] = x->ne[v];
    }
  c->step->run = k_transpose;
  return set_out (c, 0, x->dtype, x->ndim, ne, error);
}

static gboolean
plan_softmax_common (NnOpCtx *c, gboolean log, GError **error)
{
  NnSoftmaxParams *p = P (c, NnSoftmaxParams);
  const NnTensor *x = IN (c, 0);
  gboolean legacy = c->g->opset < 13;
  int axis;

  if (!need_float (c, 0, error))
    return FALSE;
  if (x->ndim == 0)
    return fail (c, error, "input must have rank 1 or more");
  if (!norm_axis (c, nn_node_attr_int (c->node, "axis", legacy ? 1 : -1), x->ndim, &axis, error))
    return FALSE;
  p->log = log;
  p->outer = prod (x->ne, 0, axis);
  /* before opset 13 the input is coerced to 2-D at axis: one softmax over all trailing dims */
  p->n = legacy ? prod (x->ne, axis, x->ndim) : x->ne[axis];
  p->inner = legacy ? 1 : prod (x->ne, axis + 1, x->ndim);
  c->step->run = k_softmax;
  return set_out (c, 0, NN_DTYPE_FLOAT, x->ndim, x->ne, error);
}

static gboolean plan_softmax (NnOpCtx *c, GError **e) { return plan_softmax_common (c, FALSE, e); }
static gboolean plan_logsoftmax (NnOpCtx *c, GError **e) { return plan_softmax_common (c, TRUE, e); }

static gboolean
plan_gather (NnOpCtx *c, GError **error)
{
  NnGatherParams *p = P (c, NnGatherParams);
  const NnTensor *x = IN (c, 0), *idx = IN (c, 1);
  int64_t ne[NN_MAX_DIMS];
  int axis, nd = 0;

  if (!need_input (c, 1, error))
    return FALSE;
  if (idx->dtype != NN_DTYPE_INT64 && idx->dtype != NN_DTYPE_INT32)
    return fail (c, error, "indices must be int32 or int64");
  if (!norm_axis (c, nn_node_attr_int (c->node, "axis", 0), x->ndim, &axis, error))
    return FALSE;
  if (x->ndim - 1 + idx->ndim > NN_MAX_DIMS)
    return unsupported (c, error, "output rank above %d", NN_MAX_DIMS);
  for (int d = 0; d < axis; d++)
    ne[nd++] = x->ne[d];
  for (int d = 0; d < idx->ndim; d++)
    ne[nd++] = idx->ne[d];
  for (int d = axis + 1; d < x->ndim; d++)
    ne[nd++] = x->ne[d];
  p->outer = prod (x->ne, 0, axis);
  p->axis_len = x->ne[axis];
  p->inner = prod (x->ne, axis + 1, x->ndim);
  p->n_idx = nn_tensor_numel (idx);
  p->esize = nn_dtype_size (x->dtype);
  c->step->run = k_gather;
  return set_out (c, 0, x->dtype, nd, ne, error);
}

static gboolean
plan_pad (NnOpCtx *c, GError **error)
{
  NnPadParams *p = P (c, NnPadParams);
  const NnTensor *x = IN (c, 0);
  const char *mode = nn_node_attr_string (c->node, "mode", "constant");
  int64_t pads[2 * NN_MAX_DIMS];
  int n;

  if (c->g->opset < 11)
    {
      const int64_t *v;

      n = nn_node_attr_ints (c->node, c->g->opset < 2 ? "paddings" : "pads", &v);
      if (n < 0)
        return fail (c, error, "the pads attribute is required");
      if (n > 2 * NN_MAX_DIMS)
        return fail (c, error, "too many pads");
      memcpy (pads, v, n * sizeof (int64_t));
      p->value = nn_node_attr_float (c->node, "value", 0.0f);
    }
  else
    {
      if (!need_input (c, 1, error) || !need_known (c, 1, "the pads input", error) ||
          !read_ints (c, IN (c, 1), pads, 2 * NN_MAX_DIMS, &n, error))
        return FALSE;
      p->value = 0;
      if (IN (c, 2))
        {
          if (IN (c, 2)->dtype != x->dtype || nn_tensor_numel (IN (c, 2)) != 1)
            return fail (c, error, "constant_value must be a scalar of the input's type");
          if (KNOWN (c, 2))
            p->value = nn_tensor_get_double (IN (c, 2), 0);
          else
            p->value_input = 1;
        }
    }
  if (n != 2 * x->ndim)
    return fail (c, error, "pads has %d values for rank %d", n, x->ndim);
  if (g_str_equal (mode, "constant"))
    p->mode = NN_PAD_CONSTANT;
  else if (g_str_equal (mode, "reflect"))
    p->mode = NN_PAD_REFLECT;
  else if (g_str_equal (mode, "edge"))
    p->mode = NN_PAD_EDGE;
  else
    return unsupported (c, error, "pad mode '%s'", mode);
  p->ndim = x->ndim;
  p->dtype = x->dtype;
  for (int d = 0; d < x->ndim; d++)
    {
      p->ne[d] = x->ne[d];
      p->pb[d] = pads[d];
      p->pe[d] = pads[x->ndim + d];
      if (ABS (p->pb[d]) > NN_MAX_ELEMENTS || ABS (p->pe[d]) > NN_MAX_ELEMENTS)
        return fail (c, error, "pads are too large");
      p->one[d] = x->ne[d] + p->pb[d] + p->pe[d];
      if (p->one[d] < 0)
        return fail (c, error, "negative pads remove more than the input has");
      if (p->mode != NN_PAD_CONSTANT && x->ne[d] == 0 && p->one[d] > 0)
        return fail (c, error, "cannot %s-pad an empty dim", mode);
    }
  c->step->run = k_pad;
  return set_out (c, 0, x->dtype, x->ndim, p->one, error);
}

static gboolean
plan_reduce_mean (NnOpCtx *c, GError **error)
{
  NnReduceParams *p = P (c, NnReduceParams);
  const NnTensor *x = IN (c, 0);
  int64_t axes[NN_MAX_DIMS], ne[NN_MAX_DIMS];
  int n, nd = 0;
  gboolean keep = nn_node_attr_int (c->node, "keepdims", 1) != 0;

  if (!need_float (c, 0, error) || !get_axes (c, axes, &n, error))
    return FALSE;
  p->ndim = x->ndim;
  memcpy (p->ne, x->ne, sizeof p->ne);
  memset (p->reduce, 0, sizeof p->reduce);
  if (n <= 0 && nn_node_attr_int (c->node, "noop_with_empty_axes", 0))
    return plan_identity (c, error);
  for (int i = 0; i < n; i++)
    {
      int a;

      if (!norm_axis (c, axes[i], x->ndim, &a, error))
        return FALSE;
      p->reduce[a] = 1;
    }
  for (int d = 0; d < x->ndim; d++)
    {
      if (n <= 0)
        p->reduce[d] = 1;
      if (!p->reduce[d])
        ne[nd++] = x->ne[d];
      else if (keep)
        ne[nd++] = 1;
    }
  c->step->run = k_reduce_mean;
  return set_out (c, 0, NN_DTYPE_FLOAT, nd, ne, error);
}

static gboolean
plan_shape (NnOpCtx *c, GError **error)
{
  int64_t *range = P (c, int64_t);
  const NnTensor *x = IN (c, 0);
  int64_t r = x->ndim, start = nn_node_attr_int (c->node, "start", 0);
  int64_t end = nn_node_attr_int (c->node, "end", r), ne[1];

  if (start < 0)
    start += r;
  if (end < 0)
    end += r;
  start = CLAMP (start, 0, r);
  end = CLAMP (end, 0, r);
  range[0] = start;
  range[1] = MAX (start, end);
  ne[0] = range[1] - range[0];
  c->step->run = k_shape;
  return set_out (c, 0, NN_DTYPE_INT64, 1, ne, error);
}

static gboolean
plan_constant (NnOpCtx *c, GError **error)
{
  const NnNode *node = c->node;
  const char *scalar_names[] = { "value_float", "value_floats", "value_int", "value_ints" };
  const NnAttr *a = nn_node_attr (node, "value");
  int64_t ne[1];

  if (a && a->type == NN_ATTR_TENSOR && a->t)
    {
      *(const NnTensor **) c->step->p.bytes = a->t;
      c->step->run = k_constant;
      return set_out (c, 0, a->t->dtype, a->t->ndim, a->t->ne, error);
    }
  for (guint i = 0; i < G_N_ELEMENTS (scalar_names); i++)
    {
      a = nn_node_attr (node, scalar_names[i]);
      if (!a)
        continue;
      *(const NnAttr **) c->step->p.bytes = a;
      c->step->run = k_constant_scalars;
      ne[0] = a->n;
      switch (a->type)
        {
        case NN_ATTR_FLOAT:  return set_out (c, 0, NN_DTYPE_FLOAT, 0, ne, error);
        case NN_ATTR_INT:    return set_out (c, 0, NN_DTYPE_INT64, 0, ne, error);
        case NN_ATTR_FLOATS: return set_out (c, 0, NN_DTYPE_FLOAT, 1, ne, error);
        case NN_ATTR_INTS:   return set_out (c, 0, NN_DTYPE_INT64, 1, ne, error);
        default:             return fail (c, error, "attribute '%s' has the wrong type", a->name);
        }
    }
  return unsupported (c, error, "only tensor, float(s) and int(s) values are supported "
                      "(not sparse or string constants)");
}

/* Sorted by name: nn_supported_ops() lists them in this order. */
static const NnOpInfo ops[] = {
  { "Add", plan_add, 2, 2, 0 },
  { "AveragePool", plan_avgpool, 1, 1, 0 },
  { "BatchNormalization", plan_batchnorm, 5, 5, 0 },
  { "Clip", plan_clip, 1, 3, 0 },
  { "Concat", plan_concat, 1, NN_MAX_IO, 0 },
  { "Constant", plan_constant, 0, 0, 0 },
  { "Conv", plan_conv, 2, 3, 0 },
  { "Div", plan_div, 2, 2, 0 },
  { "Dropout", plan_dropout, 1, 3, 0 },
  { "Flatten", plan_flatten, 1, 1, 0 },
  { "Gather", plan_gather, 2, 2, 0 },
  { "Gemm", plan_gemm, 2, 3, 0 },
  { "GlobalAveragePool", plan_gap, 1, 1, 0 },
  { "HardSigmoid", plan_hsigmoid, 1, 1, 0 },
  { "HardSwish", plan_hswish, 1, 1, 0 },
  { "Identity", plan_identity, 1, 1, 0 },
  { "LeakyRelu", plan_leaky, 1, 1, 0 },
  { "LogSoftmax", plan_logsoftmax, 1, 1, 0 },
  { "MatMul", plan_matmul, 2, 2, 0 },
  { "MaxPool", plan_maxpool, 1, 1, 0 },
  { "Mul", plan_mul, 2, 2, 0 },
  { "Pad", plan_pad, 1, 3, 0 },
  { "ReduceMean", plan_reduce_mean, 1, 2, 0 },
  { "Relu", plan_relu, 1, 1, 0 },
  { "Reshape", plan_reshape, 1, 2, 0 },
  { "Shape", plan_shape, 1, 1, 1 },
  { "Sigmoid", plan_sigmoid, 1, 1, 0 },
  { "Softmax", plan_softmax, 1, 1, 0 },
  { "Squeeze", plan_squeeze, 1, 2, 0 },
  { "Sub", plan_sub, 2, 2, 0 },
  { "Tanh", plan_tanh, 1, 1, 0 },
  { "Transpose", plan_transpose, 1, 1, 0 },
  { "Unsqueeze", plan_unsqueeze, 1, 2, 0 },
};

int
nn_op_lookup (const char *op_type)
{
  for (guint i = 0; i < G_N_ELEMENTS (ops); i++)
    if (g_str_equal (ops[i].name, op_type))
      return (int) i;
  return -1;
}

const char *
nn_op_name (int op)
{
  return op >= 0 && op < (int) G_N_ELEMENTS (ops) ? ops[op].name : "?";
}

gboolean
nn_op_shape_only (int op)
{
  return ops[op].shape_only;
}

const char *
nn_supported_ops (void)
{
  static char *list;
  static gsize once;

  if (g_once_init_enter (&once))
    {
      GString *s = g_string_new (NULL);

      for (guint i = 0; i < G_N_ELEMENTS (ops); i++)
        g_string_append_printf (s, "%s%s", i ? ", " : "", ops[i].name);
      list = g_string_free (s, FALSE);
      g_once_init_leave (&once, 1);
    }
  return list;
}

gboolean
nn_op_plan (NnOpCtx *c, GError **error)
{
  const NnOpInfo *info = &ops[c->node->op];
  int present = 0;

  for (int k = 0; k < c->step->n_in; k++)
    if (c->step->in[k])
      present = k + 1;
  if (present < info->min_in || c->step->n_in > info->max_in)
    return fail (c, error, "has %d inputs; the op takes %d to %d", c->step->n_in, info->min_in,
                 info->max_in);
  if (info->min_in > 0 && !IN (c, 0))
    return fail (c, error, "input 0 is required");
  if (c->step->n_out < 1 || !OUT (c, 0))
    return fail (c, error, "the first output is required");
  return info->plan (c, error);
}
