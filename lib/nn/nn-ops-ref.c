/* nn-ops-ref.c - reference kernels: plain loops over explicit sizes, the oracle every fast
 * kernel is tested against. Readable first; they accumulate in double where it is cheap. */
#include "config.h"

#include <math.h>
#include <string.h>

#include "nn-ops.h"

/* out (N,M,oD,oH,oW)  in (N,C,D,H,W)  w (M,C/G,kD,kH,kW)  bias (M) */
void
nn_ref_conv (float *out, const float *in, const float *w, const float *bias,
             const NnConvParams *p)
{
  const int64_t cg = p->C / p->G, mg = p->M / p->G;
  const int64_t isz = p->in[0] * p->in[1] * p->in[2];
  const int64_t osz = p->out[0] * p->out[1] * p->out[2];
  const int64_t ksz = p->k[0] * p->k[1] * p->k[2];

  for (int64_t n = 0; n < p->N; n++)
    for (int64_t m = 0; m < p->M; m++)
      {
        const int64_t g = m / mg;
        float *o = out + (n * p->M + m) * osz;

        for (int64_t od = 0; od < p->out[0]; od++)
          for (int64_t oh = 0; oh < p->out[1]; oh++)
            for (int64_t ow = 0; ow < p->out[2]; ow++)
              {
                double acc = bias ? bias[m] : 0.0;

                for (int64_t c = 0; c < cg; c++)
                  {
                    const float *x = in + (n * p->C + g * cg + c) * isz;
                    const float *k = w + (m * cg + c) * ksz;

                    for (int64_t kd = 0; kd < p->k[0]; kd++)
                      {
                        int64_t id = od * p->stride[0] - p->pad[0] + kd * p->dil[0];

                        if (id < 0 || id >= p->in[0])
                          continue;
                        for (int64_t kh = 0; kh < p->k[1]; kh++)
                          {
                            int64_t ih = oh * p->stride[1] - p->pad[1] + kh * p->dil[1];

                            if (ih < 0 || ih >= p->in[1])
                              continue;
                            for (int64_t kw = 0; kw < p->k[2]; kw++)
                              {
                                int64_t iw = ow * p->stride[2] - p->pad[2] + kw * p->dil[2];

                                if (iw < 0 || iw >= p->in[2])
                                  continue;
                                acc += (double) x[(id * p->in[1] + ih) * p->in[2] + iw] *
                                       k[(kd * p->k[1] + kh) * p->k[2] + kw];
                              }
                          }
                      }
                  }
                o[(od * p->out[1] + oh) * p->out[2] + ow] = (float) acc;
              }
      }
}

/* out (N,C,oD,oH,oW)  in (N,C,D,H,W)  indices like out (MaxPool only, may be NULL) */
#define POOL_MAX_BODY(T)                                                                   \
  {                                                                                        \
    const T *x = (const T *) in + nc * isz;                                                \
    T *o = (T *) out + nc * osz;                                                           \
    int found = 0;                                                                         \
    T best = 0;                                                                            \
    int64_t bi = 0;                                                                        \
    for (int64_t kd = 0; kd < p->k[0]; kd++)                                               \
      {                                                                                    \
        int64_t id = od * p->stride[0] - p->pad[0] + kd * p->dil[0];                       \
        if (id < 0 || id >= p->in[0])                                                      \
          continue;                                                                        \
        for (int64_t kh = 0; kh < p->k[1]; kh++)                                           \
          {                                                                                \
            int64_t ih = oh * p->stride[1] - p->pad[1] + kh * p->dil[1];                   \
            if (ih < 0 || ih >= p->in[1])                                                  \
              continue;                                                                    \
            for (int64_t kw = 0; kw < p->k[2]; kw++)                                       \
              {                                                                            \
                int64_t iw = ow * p->stride[2] - p->pad[2] + kw * p->dil[2];               \
                T v;                                                                       \
                if (iw < 0 || iw >= p->in[2])                                              \
                  continue;                                                                \
                v = x[(id * p->in[1] + ih) * p->in[2] + iw];                               \
                if (!found || v > best)                                                    \
                  {                                                                        \
                    found = 1;                                                             \
                    best = v;                                                              \
                    bi = p->storage_order                                                  \
                         ? (iw * p->in[1] + ih) * p->in[0] + id                            \
                         : (id * p->in[1] + ih) * p->in[2] + iw;                           \
                  }                                                                        \
              }                                                                            \
          }                                                                                \
      }                                                                                    \
    o[oi] = best;                                                                          \
    if (indices)                                                                           \
      indices[nc * osz + oi] = nc * isz + bi;                                              \
  }

void
nn_ref_pool (void *out, int64_t *indices, const void *in, const NnConvParams *p)
{
  const int64_t isz = p->in[0] * p->in[1] * p->in[2];
  const int64_t osz = p->out[0] * p->out[1] * p->out[2];

  for (int64_t nc = 0; nc < p->N * p->C; nc++)
    for (int64_t od = 0; od < p->out[0]; od++)
      for (int64_t oh = 0; oh < p->out[1]; oh++)
        for (int64_t ow = 0; ow < p->out[2]; ow++)
          {
            const int64_t oi = (od * p->out[1] + oh) * p->out[2] + ow;

            if (p->is_max && p->dtype == NN_DTYPE_UINT8)
              POOL_MAX_BODY (uint8_t)
            else if (p->is_max && p->dtype == NN_DTYPE_INT8)
              POOL_MAX_BODY (int8_t)
            else if (p->is_max)
              POOL_MAX_BODY (float)
            else
              {
                const float *x = (const float *) in + nc * isz;
                double sum = 0;
                int64_t count = 1;

                /* the divisor counts the window's cells inside the input, or inside the
                 * padded input with count_include_pad; cells past the padding (ceil_mode)
                 * never count */
                for (int d = 0; d < NN_MAX_SPATIAL; d++)
                  {
                    int64_t o = d == 0 ? od : d == 1 ? oh : ow, cnt = 0;

                    for (int64_t k = 0; k < p->k[d]; k++)
                      {
                        int64_t i = o * p->stride[d] - p->pad[d] + k * p->dil[d];

                        if (p->count_include_pad ? (i >= -p->pad[d] && i < p->in[d] + p->pad_end[d])
                                                 : (i >= 0 && i < p->in[d]))
                          cnt++;
                      }
                    count *= cnt;
                  }
                for (int64_t kd = 0; kd < p->k[0]; kd++)
                  {
                    int64_t id = od * p->stride[0] - p->pad[0] + kd * p->dil[0];

                    if (id < 0 || id >= p->in[0])
                      continue;
                    for (int64_t kh = 0; kh < p->k[1]; kh++)
                      {
                        int64_t ih = oh * p->stride[1] - p->pad[1] + kh * p->dil[1];

                        if (ih < 0 || ih >= p->in[1])
                          continue;
                        for (int64_t kw = 0; kw < p->k[2]; kw++)
                          {
                            int64_t iw = ow * p->stride[2] - p->pad[2] + kw * p->dil[2];

                            if (iw < 0 || iw >= p->in[2])
                              continue;
                            sum += x[(id * p->in[1] + ih) * p->in[2] + iw];
                          }
                      }
                  }
                ((float *) out)[nc * osz + oi] = count ? (float) (sum / count) : 0.0f;
              }
          }
}

/* out (ne)  a, b broadcast to ne through the strides sa, sb */
#define BIN_LOOP(T, EXPR)                                                                  \
  do {                                                                                     \
    T *o = out;                                                                            \
    const T *A = a, *B = b;                                                                \
    if (p->same_shape)                                                                     \
      {                                                                                    \
        for (int64_t i = 0; i < p->numel; i++)                                             \
          {                                                                                \
            T x = A[i], y = B[i];                                                          \
            o[i] = (T) (EXPR);                                                             \
          }                                                                                \
      }                                                                                    \
    else                                                                                   \
      {                                                                                    \
        int64_t idx[NN_MAX_DIMS] = { 0 }, ia = 0, ib = 0;                                  \
        for (int64_t i = 0; i < p->numel; i++)                                             \
          {                                                                                \
            T x = A[ia], y = B[ib];                                                        \
            o[i] = (T) (EXPR);                                                             \
            for (int d = p->ndim - 1; d >= 0; d--)                                         \
              {                                                                            \
                idx[d]++;                                                                  \
                ia += p->sa[d];                                                            \
                ib += p->sb[d];                                                            \
                if (idx[d] < p->ne[d])                                                     \
                  break;                                                                   \
                ia -= p->sa[d] * p->ne[d];                                                 \
                ib -= p->sb[d] * p->ne[d];                                                 \
                idx[d] = 0;                                                                \
              }                                                                            \
          }                                                                                \
      }                                                                                    \
  } while (0)

#define BIN_TYPED(T, INTDIV)                                                               \
  switch (p->op)                                                                           \
    {                                                                                      \
    case NN_BIN_ADD: BIN_LOOP (T, x + y); break;                                           \
    case NN_BIN_SUB: BIN_LOOP (T, x - y); break;                                           \
    case NN_BIN_MUL: BIN_LOOP (T, x * y); break;                                           \
    case NN_BIN_DIV: BIN_LOOP (T, INTDIV); break;                                          \
    default: break;                                                                        \
    }

void
nn_ref_binary (void *out, const void *a, const void *b, const NnBinaryParams *p)
{
  /* integer division by zero is undefined in ONNX; give 0 rather than a SIGFPE */
  switch (p->dtype)
    {
    case NN_DTYPE_FLOAT: BIN_TYPED (float, x / y); break;
    case NN_DTYPE_INT64: BIN_TYPED (int64_t, y ? x / y : 0); break;
    case NN_DTYPE_INT32: BIN_TYPED (int32_t, y ? x / y : 0); break;
    case NN_DTYPE_UINT8: BIN_TYPED (uint8_t, y ? x / y : 0); break;
    case NN_DTYPE_INT8:  BIN_TYPED (int8_t, y ? x / y : 0); break;
    case NN_DTYPE_BOOL:
    case NN_DTYPE_UNDEFINED:
    default:
      break;
    }
}

#define CLIP_LOOP(T)                                                                       \
  do {                                                                                     \
    const T *xs = in;                                                                      \
    T *os = out;                                                                           \
    for (int64_t i = 0; i < p->numel; i++)                                                 \
      {                                                                                    \
        double v = xs[i];                                                                  \
        v = v < p->lo ? p->lo : v;                                                         \
        v = v > p->hi ? p->hi : v;                                                         \
        os[i] = (T) v;                                                                     \
      }                                                                                    \
  } while (0)

/* out (numel)  in (numel) */
void
nn_ref_unary (void *out, const void *in, const NnUnaryParams *p)
{
  const float *x = in;
  float *o = out;

  if (p->op == NN_UN_CLIP)
    {
      switch (p->dtype)
        {
        case NN_DTYPE_FLOAT: CLIP_LOOP (float); break;
        case NN_DTYPE_INT64: CLIP_LOOP (int64_t); break;
        case NN_DTYPE_INT32: CLIP_LOOP (int32_t); break;
        case NN_DTYPE_UINT8: CLIP_LOOP (uint8_t); break;
        case NN_DTYPE_INT8:  CLIP_LOOP (int8_t); break;
        case NN_DTYPE_BOOL:
        case NN_DTYPE_UNDEFINED:
        default: break;
        }
      return;
    }
  /* one loop per op so each one vectorises */
  switch (p->op)
    {
    case NN_UN_RELU:
      for (int64_t i = 0; i < p->numel; i++)
        o[i] = x[i] > 0 ? x[i] : 0;
      break;
    case NN_UN_LEAKY_RELU:
      for (int64_t i = 0; i < p->numel; i++)
        o[i] = x[i] >= 0 ? x[i] : x[i] * p->alpha;
      break;
    case NN_UN_SIGMOID:
      for (int64_t i = 0; i < p->numel; i++)
        o[i] = (float) (1.0 / (1.0 + exp (-(double) x[i])));
      break;
    case NN_UN_HARD_SIGMOID:
      for (int64_t i = 0; i < p->numel; i++)
        o[i] = fmaxf (0.0f, fminf (1.0f, p->alpha * x[i] + p->beta));
      break;
    case NN_UN_HARD_SWISH:
      for (int64_t i = 0; i < p->numel; i++)
        o[i] = x[i] * fmaxf (0.0f, fminf (1.0f, x[i] / 6.0f + 0.5f));
      break;
    case NN_UN_TANH:
      for (int64_t i = 0; i < p->numel; i++)
        o[i] = tanhf (x[i]);
      break;
    case NN_UN_CLIP:
    default:
      break;
    }
}

/* out (M,N) = alpha * op(a) op(b) + beta * c;  a (M,K) or (K,M)  b (K,N) or (N,K)
 * c broadcast to (M,N) through c_rs, c_cs */
void
nn_ref_gemm (float *out, const float *a, const float *b, const float *c,
             const NnGemmParams *p)
{
  for (int64_t m = 0; m < p->M; m++)
    for (int64_t n = 0; n < p->N; n++)
      {
        double acc = 0;

        for (int64_t k = 0; k < p->K; k++)
          {
            float av = p->trans_a ? a[k * p->M + m] : a[m * p->K + k];
            float bv = p->trans_b ? b[n * p->K + k] : b[k * p->N + n];

            acc += (double) av * bv;
          }
        acc *= p->alpha;
        if (c && p->has_c)
          acc += (double) p->beta * c[m * p->c_rs + n * p->c_cs];
        out[m * p->N + n] = (float) acc;
      }
}

/* out (batch..., M, N)  a (batch_a..., M, K)  b (batch_b..., K, N), batch dims broadcast */
void
nn_ref_matmul (float *out, const float *a, const float *b, const NnMatMulParams *p)
{
  int64_t idx[NN_MAX_DIMS] = { 0 };

  for (int64_t bi = 0; bi < p->batch; bi++)
    {
      int64_t ao = 0, bo = 0;
      float *o = out + bi * p->M * p->N;

      for (int d = 0; d < p->nbatch; d++)
        {
          ao += idx[d] * p->sa[d];
          bo += idx[d] * p->sb[d];
        }
      for (int64_t m = 0; m < p->M; m++)
        for (int64_t n = 0; n < p->N; n++)
          {
            double acc = 0;

            for (int64_t k = 0; k < p->K; k++)
              acc += (double) a[ao * p->M * p->K + m * p->K + k] * b[bo * p->K * p->N + k * p->N + n];
            o[m * p->N + n] = (float) acc;
          }
      for (int d = p->nbatch - 1; d >= 0; d--)
        {
          if (++idx[d] < p->bne[d])
            break;
          idx[d] = 0;
        }
    }
}

/* out (N,C,S...)  in (N,C,S...)  scale, bias, mean, var (C); in training mode the batch
 * statistics normalise and run_mean/run_var (C) receive the updated running values */
void
nn_ref_batchnorm (float *out, const float *in, const float *scale, const float *bias,
                  const float *mean, const float *var, float *run_mean, float *run_var,
                  const NnBatchNormParams *p)
{
  for (int64_t c = 0; c < p->C; c++)
    {
      double mu = mean[c], sigma2 = var[c], s, t;

      if (p->training)
        {
          double sum = 0, sq = 0, cnt = (double) (p->N * p->S);

          for (int64_t n = 0; n < p->N; n++)
            for (int64_t i = 0; i < p->S; i++)
              sum += in[(n * p->C + c) * p->S + i];
          mu = cnt ? sum / cnt : 0;
          for (int64_t n = 0; n < p->N; n++)
            for (int64_t i = 0; i < p->S; i++)
              {
                double d = in[(n * p->C + c) * p->S + i] - mu;
                sq += d * d;
              }
          sigma2 = cnt ? sq / cnt : 0;
          if (run_mean)
            run_mean[c] = (float) (mean[c] * p->momentum + mu * (1.0 - p->momentum));
          if (run_var)
            run_var[c] = (float) (var[c] * p->momentum + sigma2 * (1.0 - p->momentum));
        }
      s = scale[c] / sqrt (sigma2 + p->eps);
      t = bias[c] - mu * s;
      for (int64_t n = 0; n < p->N; n++)
        for (int64_t i = 0; i < p->S; i++)
          {
            int64_t j = (n * p->C + c) * p->S + i;
            out[j] = (float) (in[j] * s + t);
          }
    }
}

/* out (outer, sum of axis_len, inner)  ins[i] (outer, axis_len[i], inner) */
void
nn_ref_concat (void *out, const void *const *ins, int n, const NnConcatParams *p)
{
  guint8 *o = out;

  for (int64_t j = 0; j < p->outer; j++)
    for (int i = 0; i < n; i++)
      {
        size_t bytes = p->axis_len[i] * p->inner * p->esize;

        memcpy (o, (const guint8 *) ins[i] + j * bytes, bytes);
        o += bytes;
      }
}

/* out (ne[perm[0]], ..., ne[perm[ndim-1]])  in (ne) */
void
nn_ref_transpose (void *out, const void *in, const NnTransposeParams *p)
{
  int64_t istride[NN_MAX_DIMS], ostride[NN_MAX_DIMS], one[NN_MAX_DIMS], idx[NN_MAX_DIMS] = { 0 };
  int64_t numel = 1, off = 0;

  for (int d = p->ndim - 1; d >= 0; d--)
    {
      istride[d] = numel;
      numel *= p->ne[d];
    }
  for (int d = 0; d < p->ndim; d++)
    {
      one[d] = p->ne[p->perm[d]];
      ostride[d] = istride[p->perm[d]];
    }
  for (int64_t i = 0; i < numel; i++)
    {
      memcpy ((guint8 *) out + i * p->esize, (const guint8 *) in + off * p->esize, p->esize);
      for (int d = p->ndim - 1; d >= 0; d--)
        {
          idx[d]++;
          off += ostride[d];
          if (idx[d] < one[d])
            break;
          off -= ostride[d] * one[d];
          idx[d] = 0;
        }
    }
}

/* out (outer, n, inner)  in (outer, n, inner), normalised along n */
void
nn_ref_softmax (float *out, const float *in, const NnSoftmaxParams *p)
{
  for (int64_t o = 0; o < p->outer; o++)
    for (int64_t j = 0; j < p->inner; j++)
      {
        const float *x = in + o * p->n * p->inner + j;
        float *y = out + o * p->n * p->inner + j;
        double mx = -INFINITY, sum = 0;

        for (int64_t i = 0; i < p->n; i++)
          mx = fmax (mx, x[i * p->inner]);
        for (int64_t i = 0; i < p->n; i++)
          sum += exp (x[i * p->inner] - mx);
        for (int64_t i = 0; i < p->n; i++)
          y[i * p->inner] = p->log ? (float) (x[i * p->inner] - mx - log (sum))
                                   : (float) (exp (x[i * p->inner] - mx) / sum);
      }
}

/* out (outer, n_idx, inner)  data (outer, axis_len, inner)  indices (n_idx), negative
 * indices count from the end; out-of-range ones give zeros */
void
nn_ref_gather (void *out, const void *data, const NnTensor *indices, const NnGatherParams *p)
{
  const size_t row = p->inner * p->esize;

  for (int64_t o = 0; o < p->outer; o++)
    for (int64_t j = 0; j < p->n_idx; j++)
      {
        int64_t k = nn_tensor_get_int (indices, j);
        guint8 *dst = (guint8 *) out + (o * p->n_idx + j) * row;

        if (k < 0)
          k += p->axis_len;
        if (k < 0 || k >= p->axis_len)
          memset (dst, 0, row);
        else
          memcpy (dst, (const guint8 *) data + (o * p->axis_len + k) * row, row);
      }
}

static inline int64_t
pad_index (int64_t i, int64_t n, NnPadMode mode)
{
  if (i >= 0 && i < n)
    return i;
  if (mode == NN_PAD_CONSTANT || n == 0)
    return -1;
  if (mode == NN_PAD_EDGE || n == 1)
    return i < 0 ? 0 : n - 1;
  /* reflect without repeating the edge, folding as often as the pad needs */
  while (i < 0 || i >= n)
    i = i < 0 ? -i : 2 * (n - 1) - i;
  return i;
}

/* out (ne + pb + pe)  in (ne) */
void
nn_ref_pad (void *out, const void *in, const NnPadParams *p)
{
  const size_t es = nn_dtype_size (p->dtype);
  int64_t istride[NN_MAX_DIMS], idx[NN_MAX_DIMS] = { 0 }, numel = 1, s = 1;
  guint8 fill[8] = { 0 };

  switch (p->dtype)
    {
    case NN_DTYPE_FLOAT: { float v = (float) p->value; memcpy (fill, &v, 4); } break;
    case NN_DTYPE_INT64: { int64_t v = (int64_t) p->value; memcpy (fill, &v, 8); } break;
    case NN_DTYPE_INT32: { int32_t v = (int32_t) p->value; memcpy (fill, &v, 4); } break;
    case NN_DTYPE_INT8:  { int8_t v = (int8_t) p->value; memcpy (fill, &v, 1); } break;
    case NN_DTYPE_UINT8:
    case NN_DTYPE_BOOL:  { uint8_t v = (uint8_t) p->value; memcpy (fill, &v, 1); } break;
    case NN_DTYPE_UNDEFINED:
    default: break;
    }
  for (int d = p->ndim - 1; d >= 0; d--)
    {
      istride[d] = s;
      s *= p->ne[d];
      numel *= p->one[d];
    }
  for (int64_t i = 0; i < numel; i++)
    {
      int64_t off = 0;
      gboolean inside = TRUE;

      for (int d = 0; d < p->ndim && inside; d++)
        {
          int64_t j = pad_index (idx[d] - p->pb[d], p->ne[d], p->mode);

          if (j < 0)
            inside = FALSE;
          else
            off += j * istride[d];
        }
      memcpy ((guint8 *) out + i * es, inside ? (const guint8 *) in + off * es : fill, es);
      for (int d = p->ndim - 1; d >= 0; d--)
        {
          if (++idx[d] < p->one[d])
            break;
          idx[d] = 0;
        }
    }
}

/* out (ne with reduced dims set to 1)  in (ne) */
void
nn_ref_reduce_mean (float *out, const float *in, const NnReduceParams *p)
{
  int64_t idx[NN_MAX_DIMS] = { 0 }, ostride[NN_MAX_DIMS], numel = 1, onumel = 1, count = 1;

  for (int d = p->ndim - 1; d >= 0; d--)
    {
      ostride[d] = p->reduce[d] ? 0 : onumel;
      onumel *= p->reduce[d] ? 1 : p->ne[d];
      numel *= p->ne[d];
      count *= p->reduce[d] ? p->ne[d] : 1;
    }
  memset (out, 0, onumel * sizeof (float));
  for (int64_t i = 0; i < numel; i++)
    {
      int64_t o = 0;

      for (int d = 0; d < p->ndim; d++)
        o += idx[d] * ostride[d];
      out[o] += in[i];
      for (int d = p->ndim - 1; d >= 0; d--)
        {
          if (++idx[d] < p->ne[d])
            break;
          idx[d] = 0;
        }
    }
  for (int64_t o = 0; o < onumel; o++)
    out[o] = count ? out[o] / count : NAN;
}

/* out (NC)  in (NC, S) */
void
nn_ref_gap (float *out, const float *in, const NnGapParams *p)
{
  for (int64_t i = 0; i < p->NC; i++)
    {
      double sum = 0;

      for (int64_t j = 0; j < p->S; j++)
        sum += in[i * p->S + j];
      out[i] = p->S ? (float) (sum / p->S) : 0.0f;
    }
}
