/* tr-ops.c - training kernels: the forward and backward pass of each layer */
#include "config.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

#include "tr-ops.h"

void
tr_conv_shape (TrConvShape *s, int C, int N, int H, int W, int M, int k, int stride, int pad)
{
  s->C = C;
  s->N = N;
  s->H = H;
  s->W = W;
  s->M = M;
  s->k = k;
  s->stride = stride;
  s->pad = pad;
  s->OH = (H + 2 * pad - k) / stride + 1;
  s->OW = (W + 2 * pad - k) / stride + 1;
}

/* the output columns [ox0, ox1) whose input column ox * stride - pad + kx is inside */
static void
valid_range (int kx, int stride, int pad, int W, int OW, int *ox0, int *ox1)
{
  int lo = 0, hi = OW;

  while (lo < OW && lo * stride - pad + kx < 0)
    lo++;
  while (hi > lo && (hi - 1) * stride - pad + kx >= W)
    hi--;
  *ox0 = lo;
  *ox1 = hi;
}

void
tr_im2col (const TrConvShape *s, const float *x, int n0, int nb, float *col)
{
  const int k = s->k, OH = s->OH, OW = s->OW, H = s->H, W = s->W;
  const size_t HW = (size_t) H * W, cols = (size_t) nb * OH * OW;

  for (int c = 0; c < s->C; c++)
    for (int ky = 0; ky < k; ky++)
      for (int kx = 0; kx < k; kx++)
        {
          float *dst = col + ((size_t) (c * k + ky) * k + kx) * cols;
          int ox0, ox1;

          valid_range (kx, s->stride, s->pad, W, OW, &ox0, &ox1);
          for (int n = 0; n < nb; n++)
            {
              const float *src = x + ((size_t) c * s->N + n0 + n) * HW;

              for (int oy = 0; oy < OH; oy++, dst += OW)
                {
                  int iy = oy * s->stride - s->pad + ky;
                  const float *row;

                  if (iy < 0 || iy >= H || ox0 >= ox1)
                    {
                      memset (dst, 0, sizeof (float) * OW);
                      continue;
                    }
                  /* row[ox * stride] is input column ox * stride - pad + kx */
                  row = src + (size_t) iy * W + (kx - s->pad);
                  for (int ox = 0; ox < ox0; ox++)
                    dst[ox] = 0.0f;
                  if (s->stride == 1)
                    memcpy (dst + ox0, row + ox0, sizeof (float) * (ox1 - ox0));
                  else
                    for (int ox = ox0; ox < ox1; ox++)
                      dst[ox] = row[ox * s->stride];
                  for (int ox = ox1; ox < OW; ox++)
                    dst[ox] = 0.0f;
                }
            }
        }
}

void
tr_col2im_add (const TrConvShape *s, const float *col, int n0, int nb, float *dx)
{
  const int k = s->k, OH = s->OH, OW = s->OW, H = s->H, W = s->W;
  const size_t HW = (size_t) H * W, cols = (size_t) nb * OH * OW;

  for (int c = 0; c < s->C; c++)
    for (int ky = 0; ky < k; ky++)
      for (int kx = 0; kx < k; kx++)
        {
          const float *src = col + ((size_t) (c * k + ky) * k + kx) * cols;
          int ox0, ox1;

          valid_range (kx, s->stride, s->pad, W, OW, &ox0, &ox1);
          for (int n = 0; n < nb; n++)
            {
              float *dst = dx + ((size_t) c * s->N + n0 + n) * HW;

              for (int oy = 0; oy < OH; oy++, src += OW)
                {
                  int iy = oy * s->stride - s->pad + ky;
                  float *row;

                  if (iy < 0 || iy >= H)
                    continue;
                  row = dst + (size_t) iy * W + (kx - s->pad);
                  for (int ox = ox0; ox < ox1; ox++)
                    row[ox * s->stride] += src[ox];
                }
            }
        }
}

void
tr_conv_forward_chunk (const TrConvShape *s, const float *x, const float *w, float *y,
                       int n0, int nb, float *col)
{
  const int K = s->C * s->k * s->k, OHW = s->OH * s->OW;

  tr_im2col (s, x, n0, nb, col);
  cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasNoTrans, s->M, nb * OHW, K,
               1.0f, w, K, col, nb * OHW, 0.0f, y + (size_t) n0 * OHW, s->N * OHW);
}

void
tr_conv_backward_chunk (const TrConvShape *s, const float *x, const float *w, const float *dy,
                        float *dw_part, float *dx, float beta, int n0, int nb, float *col)
{
  const int K = s->C * s->k * s->k, OHW = s->OH * s->OW;
  const float *dyc = dy + (size_t) n0 * OHW;

  tr_im2col (s, x, n0, nb, col);
  cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, s->M, K, nb * OHW,
               1.0f, dyc, s->N * OHW, col, nb * OHW, 0.0f, dw_part, K);
  if (!dx)
    return;
  if (beta == 0.0f)
    for (int c = 0; c < s->C; c++)
      memset (dx + ((size_t) c * s->N + n0) * s->H * s->W, 0,
              sizeof (float) * nb * s->H * s->W);
  /* the columns are spent: reuse them for the input gradient's */
  cblas_sgemm (CblasRowMajor, CblasTrans, CblasNoTrans, K, nb * OHW, s->M,
               1.0f, w, K, dyc, s->N * OHW, 0.0f, col, nb * OHW);
  tr_col2im_add (s, col, n0, nb, dx);
}

float
tr_bn_forward_train (const float *x, float *y, size_t m, float gamma, float beta, float eps,
                     float *mean_out, float *invstd_out)
{
  double sum = 0.0, sq = 0.0, mean, var;
  float a, b;

  for (size_t i = 0; i < m; i++)
    sum += x[i];
  mean = sum / m;
  /* two passes: one pass of E[x²] - E[x]² loses the variance of large activations */
  for (size_t i = 0; i < m; i++)
    {
      double d = x[i] - mean;
      sq += d * d;
    }
  var = sq / m;
  *mean_out = (float) mean;
  *invstd_out = (float) (1.0 / sqrt (var + eps));
  a = gamma * *invstd_out;
  b = beta - (float) mean * a;
  for (size_t i = 0; i < m; i++)
    y[i] = x[i] * a + b;
  return (float) var;
}

void
tr_bn_forward_eval (const float *x, float *y, size_t m, float gamma, float beta, float mean,
                    float var, float eps)
{
  float a = gamma / sqrtf (var + eps), b = beta - mean * a;

  for (size_t i = 0; i < m; i++)
    y[i] = x[i] * a + b;
}

void
tr_bn_backward (const float *x, const float *dy, float *dx, float beta_acc, size_t m,
                float gamma, float mean, float invstd, float *dgamma, float *dbeta)
{
  double sdy = 0.0, sdyx = 0.0;
  float k1, k2, k3;

  for (size_t i = 0; i < m; i++)
    {
      sdy += dy[i];
      sdyx += dy[i] * (x[i] - mean);
    }
  *dbeta = (float) sdy;
  *dgamma = (float) (sdyx * invstd);
  /* dx = gamma invstd (dy - mean(dy) - xhat mean(dy xhat)) */
  k1 = gamma * invstd;
  k2 = (float) (sdy / m);
  k3 = (float) (sdyx * invstd * invstd / m);
  if (beta_acc == 0.0f)
    for (size_t i = 0; i < m; i++)
      dx[i] = k1 * (dy[i] - k2 - (x[i] - mean) * k3);
  else
    for (size_t i = 0; i < m; i++)
      dx[i] += k1 * (dy[i] - k2 - (x[i] - mean) * k3);
}

void
tr_relu_forward (const float *x, float *y, size_t n)
{
  for (size_t i = 0; i < n; i++)
    y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

void
tr_relu_backward (const float *y, const float *dy, float *dx, float beta, size_t n)
{
  if (beta == 0.0f)
    for (size_t i = 0; i < n; i++)
      dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
  else
    for (size_t i = 0; i < n; i++)
      dx[i] += y[i] > 0.0f ? dy[i] : 0.0f;
}

void
tr_maxpool2_forward (const float *x, float *y, guint8 *arg, size_t planes, int H, int W)
{
  const int OH = H / 2, OW = W / 2;

  for (size_t p = 0; p < planes; p++)
    {
      const float *xp = x + p * H * W;

      for (int oy = 0; oy < OH; oy++)
        for (int ox = 0; ox < OW; ox++)
          {
            const float *r0 = xp + (size_t) (2 * oy) * W + 2 * ox, *r1 = r0 + W;
            float best = r0[0];
            guint8 a = 0;

            if (r0[1] > best)
              best = r0[1], a = 1;
            if (r1[0] > best)
              best = r1[0], a = 2;
            if (r1[1] > best)
              best = r1[1], a = 3;
            *y++ = best;
            *arg++ = a;
          }
    }
}

void
tr_maxpool2_backward (const float *dy, const guint8 *arg, float *dx, float beta, size_t planes,
                      int H, int W)
{
  const int OH = H / 2, OW = W / 2;

  if (beta == 0.0f)
    memset (dx, 0, sizeof (float) * planes * H * W);
  for (size_t p = 0; p < planes; p++)
    {
      float *dp = dx + p * H * W;

      for (int oy = 0; oy < OH; oy++)
        for (int ox = 0; ox < OW; ox++)
          {
            guint8 a = *arg++;
            dp[(size_t) (2 * oy + (a >> 1)) * W + 2 * ox + (a & 1)] += *dy++;
          }
    }
}

void
tr_gap_forward (const float *x, float *y, size_t planes, int hw)
{
  for (size_t p = 0; p < planes; p++)
    {
      float s = 0.0f;

      for (int i = 0; i < hw; i++)
        s += x[p * hw + i];
      y[p] = s / hw;
    }
}

void
tr_gap_backward (const float *dy, float *dx, float beta, size_t planes, int hw)
{
  for (size_t p = 0; p < planes; p++)
    {
      float g = dy[p] / hw;

      for (int i = 0; i < hw; i++)
        dx[p * hw + i] = beta * dx[p * hw + i] + g;
    }
}

void
tr_dense_forward (const float *x, const float *w, const float *b, float *y, int M, int K, int N)
{
  for (int m = 0; m < M; m++)
    for (int n = 0; n < N; n++)
      y[(size_t) m * N + n] = b[m];
  cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, w, K, x, N, 1.0f, y, N);
}

void
tr_dense_backward (const float *x, const float *w, const float *dy, float *dw, float *db,
                   float *dx, float beta, int M, int K, int N)
{
  cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, M, K, N, 1.0f, dy, N, x, N, 0.0f, dw, K);
  for (int m = 0; m < M; m++)
    {
      double s = 0.0;

      for (int n = 0; n < N; n++)
        s += dy[(size_t) m * N + n];
      db[m] = (float) s;
    }
  if (dx)
    cblas_sgemm (CblasRowMajor, CblasTrans, CblasNoTrans, K, N, M, 1.0f, w, K, dy, N, beta, dx, N);
}

double
tr_softmax_xent (const float *z, const guint8 *labels, int K, int N, float scale,
                 float smoothing, float *dz, int *correct)
{
  double loss = 0.0;
  float p[256];

  g_assert (K <= 256);
  for (int n = 0; n < N; n++)
    {
      float mx = -INFINITY, sum = 0.0f;
      int best = 0;

      for (int k = 0; k < K; k++)
        {
          float v = scale * z[(size_t) k * N + n];

          if (v > mx)
            mx = v, best = k;
        }
      for (int k = 0; k < K; k++)
        sum += p[k] = expf (scale * z[(size_t) k * N + n] - mx);
      for (int k = 0; k < K; k++)
        {
          float q = smoothing / K + (k == labels[n] ? 1.0f - smoothing : 0.0f);

          p[k] /= sum;
          /* log p = z - mx - log sum, which stays finite where p underflows */
          loss -= q * (scale * z[(size_t) k * N + n] - mx - logf (sum));
          if (dz)
            dz[(size_t) k * N + n] = scale * (p[k] - q) / N;
        }
      if (correct && best == labels[n])
        (*correct)++;
    }
  return loss / N;
}
