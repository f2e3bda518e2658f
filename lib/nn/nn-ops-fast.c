/* nn-ops-fast.c - fast kernels on OpenBLAS: convolution as im2col + sgemm (1x1 convs
 * multiply the input directly), a direct depthwise convolution, Gemm and MatMul.
 * Each is tested against its reference kernel in tests/nn/test-fast.c. */
#include "config.h"

#include <cblas.h>
#include <string.h>

#include "nn-ops.h"

/* OpenBLAS's thread count is global to the process: set it only when it changes, so that
 * models running in other threads are not disturbed on every inference */
void
nn_fast_set_threads (int n)
{
  static int current = -1;

  n = MAX (n, 1);
  if (g_atomic_int_get (&current) == n)
    return;
  openblas_set_num_threads (n);
  g_atomic_int_set (&current, n);
}

static gboolean
is_pointwise (const NnConvParams *p)
{
  for (int d = 0; d < NN_MAX_SPATIAL; d++)
    if (p->k[d] != 1 || p->stride[d] != 1 || p->pad[d] != 0 || p->pad_end[d] != 0)
      return FALSE;
  return TRUE;
}

static gboolean
is_depthwise (const NnConvParams *p)
{
  return p->G == p->C && p->G == p->M && p->G > 1;
}

gboolean
nn_fast_conv_supported (const NnConvParams *p)
{
  /* 1-D and 2-D convolutions; 3-D ones stay on the reference kernel */
  return p->in[0] == 1 && p->k[0] == 1 && p->out[0] == 1 && p->pad[0] == 0 &&
         p->pad_end[0] == 0;
}

size_t
nn_fast_conv_scratch (const NnConvParams *p)
{
  if (is_pointwise (p) || is_depthwise (p))
    return 0;
  return (size_t) (p->C / p->G) * p->k[1] * p->k[2] * p->out[1] * p->out[2] * sizeof (float);
}

/* col (cg*kh*kw, oh*ow)  x (cg, H, W) */
static void
im2col (float *col, const float *x, int64_t cg, const NnConvParams *p)
{
  const int64_t H = p->in[1], W = p->in[2], OH = p->out[1], OW = p->out[2];

  for (int64_t c = 0; c < cg; c++)
    for (int64_t kh = 0; kh < p->k[1]; kh++)
      for (int64_t kw = 0; kw < p->k[2]; kw++)
        {
          float *row = col + ((c * p->k[1] + kh) * p->k[2] + kw) * OH * OW;

          for (int64_t oh = 0; oh < OH; oh++)
            {
              int64_t ih = oh * p->stride[1] - p->pad[1] + kh * p->dil[1];
              float *r = row + oh * OW;
              const float *src = x + (c * H + ih) * W;

              if (ih < 0 || ih >= H)
                {
                  memset (r, 0, OW * sizeof (float));
                  continue;
                }
              if (p->stride[2] == 1)
                {
                  int64_t off = kw * p->dil[2] - p->pad[2];
                  int64_t lo = MAX (0, -off), hi = MIN (OW, W - off);

                  if (lo > 0)
                    memset (r, 0, MIN (lo, OW) * sizeof (float));
                  if (hi > lo)
                    memcpy (r + lo, src + lo + off, (hi - lo) * sizeof (float));
                  if (hi < OW)
                    memset (r + MAX (hi, 0), 0, (OW - MAX (hi, 0)) * sizeof (float));
                  continue;
                }
              for (int64_t ow = 0; ow < OW; ow++)
                {
                  int64_t iw = ow * p->stride[2] - p->pad[2] + kw * p->dil[2];

                  r[ow] = iw >= 0 && iw < W ? src[iw] : 0.0f;
                }
            }
        }
}

/* out (N,C,OH,OW)  in (N,C,H,W)  w (C,1,kh,kw): each output row accumulates one kernel tap
 * at a time over its valid range, so the inner loop is a contiguous (or strided) axpy */
static void
conv_depthwise (float *out, const float *in, const float *w, const float *bias,
                const NnConvParams *p)
{
  const int64_t H = p->in[1], W = p->in[2], OH = p->out[1], OW = p->out[2];
  const int64_t sh = p->stride[1], sw = p->stride[2], KH = p->k[1], KW = p->k[2];

  for (int64_t nc = 0; nc < p->N * p->C; nc++)
    {
      const int64_t c = nc % p->C;
      const float *x = in + nc * H * W, *k = w + c * KH * KW;
      float *o = out + nc * OH * OW;
      const float b = bias ? bias[c] : 0.0f;

      for (int64_t oh = 0; oh < OH; oh++)
        {
          float *orow = o + oh * OW;

          for (int64_t ow = 0; ow < OW; ow++)
            orow[ow] = b;
          for (int64_t kh = 0; kh < KH; kh++)
            {
              int64_t ih = oh * sh - p->pad[1] + kh * p->dil[1];
              const float *xrow = x + ih * W;

              if (ih < 0 || ih >= H)
                continue;
              for (int64_t kw = 0; kw < KW; kw++)
                {
                  const int64_t off = kw * p->dil[2] - p->pad[2];
                  const float kv = k[kh * KW + kw];
                  /* valid ow: 0 <= ow*sw + off < W */
                  int64_t lo = off >= 0 ? 0 : (-off + sw - 1) / sw;
                  int64_t hi = W - off <= 0 ? 0 : MIN (OW, (W - off + sw - 1) / sw);

                  if (sw == 1)
                    for (int64_t ow = lo; ow < hi; ow++)
                      orow[ow] += kv * xrow[ow + off];
                  else
                    for (int64_t ow = lo; ow < hi; ow++)
                      orow[ow] += kv * xrow[ow * sw + off];
                }
            }
        }
    }
}

/* out (N,M,OH,OW)  in (N,C,H,W)  w (M,C/G,kh,kw)  bias (M)  scratch: im2col of one group */
void
nn_fast_conv (float *out, const float *in, const float *w, const float *bias, float *scratch,
              const NnConvParams *p)
{
  const int64_t cg = p->C / p->G, mg = p->M / p->G;
  const int64_t HW = p->in[1] * p->in[2], OHW = p->out[1] * p->out[2];
  const int64_t K = cg * p->k[1] * p->k[2];
  const gboolean pointwise = is_pointwise (p);

  if (is_depthwise (p))
    {
      conv_depthwise (out, in, w, bias, p);
      return;
    }
  for (int64_t n = 0; n < p->N; n++)
    for (int64_t g = 0; g < p->G; g++)
      {
        const float *x = in + (n * p->C + g * cg) * HW;
        float *o = out + (n * p->M + g * mg) * OHW;
        const float *col = x;

        if (!pointwise)
          {
            im2col (scratch, x, cg, p);
            col = scratch;
          }
        if (bias)
          for (int64_t m = 0; m < mg; m++)
            for (int64_t i = 0; i < OHW; i++)
              o[m * OHW + i] = bias[g * mg + m];
        cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasNoTrans, (int) mg, (int) OHW, (int) K,
                     1.0f, w + g * mg * K, (int) K, col, (int) OHW, bias ? 1.0f : 0.0f, o,
                     (int) OHW);
      }
}

/* out (M,N) = alpha * op(a) op(b) + beta * c */
void
nn_fast_gemm (float *out, const float *a, const float *b, const float *c,
              const NnGemmParams *p)
{
  gboolean with_c = c && p->has_c && p->beta != 0.0f;

  if (with_c)
    for (int64_t m = 0; m < p->M; m++)
      for (int64_t n = 0; n < p->N; n++)
        out[m * p->N + n] = p->beta * c[m * p->c_rs + n * p->c_cs];
  if (p->M == 0 || p->N == 0)
    return;
  if (p->K == 0)
    {
      if (!with_c)
        memset (out, 0, p->M * p->N * sizeof (float));
      return;
    }
  cblas_sgemm (CblasRowMajor, p->trans_a ? CblasTrans : CblasNoTrans,
               p->trans_b ? CblasTrans : CblasNoTrans, (int) p->M, (int) p->N, (int) p->K,
               p->alpha, a, p->trans_a ? (int) p->M : (int) p->K, b,
               p->trans_b ? (int) p->K : (int) p->N, with_c ? 1.0f : 0.0f, out, (int) p->N);
}

/* out (batch..., M, N)  a (batch_a..., M, K)  b (batch_b..., K, N) */
void
nn_fast_matmul (float *out, const float *a, const float *b, const NnMatMulParams *p)
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
      if (p->K == 0)
        memset (o, 0, p->M * p->N * sizeof (float));
      else if (p->M > 0 && p->N > 0)
        cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasNoTrans, (int) p->M, (int) p->N,
                     (int) p->K, 1.0f, a + ao * p->M * p->K, (int) p->K,
                     b + bo * p->K * p->N, (int) p->N, 0.0f, o, (int) p->N);
      for (int d = p->nbatch - 1; d >= 0; d--)
        {
          if (++idx[d] < p->bne[d])
            break;
          idx[d] = 0;
        }
    }
}
