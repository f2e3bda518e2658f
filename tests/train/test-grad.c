/* test-grad.c - every training kernel's backward pass against central finite differences,
 * and whole networks (residual, dense, loss) the same way */
#include "config.h"

#include <math.h>
#include <string.h>

#include "tr-net.h"
#include "tr-ops.h"

static void
fill (float *v, size_t n, TrRng *rng, float scale)
{
  for (size_t i = 0; i < n; i++)
    v[i] = scale * tr_rng_normal (rng);
}

/* loss = sum (r * f (x)) for a fixed random r, so dL/dy = r */
typedef double (*LossFunc) (gpointer data);

/* Checks analytic gradient @grad of the loss with respect to @x (n values) against
 * central differences at a sample of positions. */
static void
check_grad (const char *what, float *x, const float *grad, size_t n, LossFunc loss,
            gpointer data, double tol)
{
  const float h = 1e-2f;
  double worst = 0.0;
  size_t step = MAX (n / 97, 1);

  for (size_t i = 0; i < n; i += step)
    {
      float keep = x[i];
      double lp, lm, num, err;

      x[i] = keep + h;
      lp = loss (data);
      x[i] = keep - h;
      lm = loss (data);
      x[i] = keep;
      num = (lp - lm) / (2.0 * h);
      err = fabs (num - grad[i]) / MAX (1.0, fabs (num) + fabs (grad[i]));
      worst = MAX (worst, err);
      if (err > tol)
        g_error ("%s: gradient %zu: analytic %.6g, numeric %.6g", what, i, grad[i], num);
    }
  g_test_message ("%s: worst relative error %.2g over %zu values", what, worst, n);
}

static double
dot (const float *a, const float *b, size_t n)
{
  double s = 0.0;

  for (size_t i = 0; i < n; i++)
    s += (double) a[i] * b[i];
  return s;
}

/* --- convolution --- */

typedef struct {
  TrConvShape s;
  float *x, *w, *y, *r, *col;
} ConvCase;

static double
conv_loss (gpointer data)
{
  ConvCase *c = data;

  for (int n0 = 0; n0 < c->s.N; n0 += 2)
    tr_conv_forward_chunk (&c->s, c->x, c->w, c->y, n0, MIN (2, c->s.N - n0), c->col);
  return dot (c->y, c->r, (size_t) c->s.M * c->s.N * c->s.OH * c->s.OW);
}

static void
conv_case (int C, int N, int H, int W, int M, int k, int stride, int pad)
{
  ConvCase c;
  TrRng rng;
  size_t nx, nw, ny, ncol;
  g_autofree float *dw = NULL, *dx = NULL, *part = NULL;
  g_autofree char *name = g_strdup_printf ("conv C%d N%d %dx%d M%d k%d s%d p%d", C, N, H, W, M,
                                           k, stride, pad);

  tr_rng_init (&rng, 42, 1);
  tr_conv_shape (&c.s, C, N, H, W, M, k, stride, pad);
  nx = (size_t) C * N * H * W;
  nw = (size_t) M * C * k * k;
  ny = (size_t) M * N * c.s.OH * c.s.OW;
  ncol = (size_t) C * k * k * N * c.s.OH * c.s.OW;
  c.x = g_new (float, nx);
  c.w = g_new (float, nw);
  c.y = g_new (float, ny);
  c.r = g_new (float, ny);
  c.col = g_new (float, ncol);
  fill (c.x, nx, &rng, 1.0f);
  fill (c.w, nw, &rng, 0.5f);
  fill (c.r, ny, &rng, 1.0f);
  dw = g_new0 (float, nw);
  part = g_new (float, nw);
  dx = g_new (float, nx);
  /* beta 1 must add: start from a known gradient and subtract it after */
  for (size_t i = 0; i < nx; i++)
    dx[i] = 3.0f;
  for (int n0 = 0; n0 < N; n0 += 2)
    {
      tr_conv_backward_chunk (&c.s, c.x, c.w, c.r, part, dx, 1.0f, n0, MIN (2, N - n0), c.col);
      for (size_t i = 0; i < nw; i++)
        dw[i] += part[i];
    }
  for (size_t i = 0; i < nx; i++)
    dx[i] -= 3.0f;
  check_grad (name, c.w, dw, nw, conv_loss, &c, 2e-3);
  check_grad (name, c.x, dx, nx, conv_loss, &c, 2e-3);
  /* beta 0 overwrites */
  for (size_t i = 0; i < nx; i++)
    dx[i] = NAN;
  for (int n0 = 0; n0 < N; n0 += 2)
    tr_conv_backward_chunk (&c.s, c.x, c.w, c.r, part, dx, 0.0f, n0, MIN (2, N - n0), c.col);
  check_grad (name, c.x, dx, nx, conv_loss, &c, 2e-3);
  g_free (c.x);
  g_free (c.w);
  g_free (c.y);
  g_free (c.r);
  g_free (c.col);
}

static void
test_conv (void)
{
  conv_case (3, 5, 7, 6, 4, 3, 1, 1);
  conv_case (2, 3, 8, 8, 5, 3, 2, 1);
  conv_case (4, 2, 5, 5, 3, 1, 1, 0);
  conv_case (1, 4, 9, 7, 2, 5, 1, 2);
}

/* --- batch norm, ReLU, max pooling, global average pooling (single kernels) --- */

typedef struct {
  int kind;
  float *x, *y, *r;
  size_t n;
  int H, W;
  float gamma, beta, mean, invstd;
  guint8 *arg;
} Elem;

enum { BN, RELU, POOL, GAP };

static double
elem_loss (gpointer data)
{
  Elem *e = data;
  size_t ny = e->n;

  switch (e->kind)
    {
    case BN:
      tr_bn_forward_train (e->x, e->y, e->n, e->gamma, e->beta, 1e-5f, &e->mean, &e->invstd);
      break;
    case RELU:
      tr_relu_forward (e->x, e->y, e->n);
      break;
    case POOL:
      ny = e->n / 4;
      tr_maxpool2_forward (e->x, e->y, e->arg, e->n / (e->H * e->W), e->H, e->W);
      break;
    case GAP:
      ny = e->n / (e->H * e->W);
      tr_gap_forward (e->x, e->y, ny, e->H * e->W);
      break;
    }
  return dot (e->y, e->r, ny);
}

static void
elem_case (int kind, const char *name)
{
  Elem e = { .kind = kind, .n = 3 * 8 * 6, .H = 8, .W = 6, .gamma = 1.7f, .beta = -0.3f };
  g_autofree float *x = g_new (float, e.n), *y = g_new (float, e.n), *r = g_new (float, e.n);
  g_autofree float *dx = g_new (float, e.n);
  g_autofree guint8 *arg = g_new (guint8, e.n);
  TrRng rng;

  tr_rng_init (&rng, 7, (guint64) kind);
  /* values apart from each other and from 0, so that no max or ReLU kink sits within h */
  for (size_t i = 0; i < e.n; i++)
    x[i] = (float) (i % 2 ? 1 : -1) * (0.05f + 0.03f * (float) ((i * 37) % e.n));
  fill (r, e.n, &rng, 1.0f);
  e.x = x, e.y = y, e.r = r, e.arg = arg;
  elem_loss (&e);
  for (size_t i = 0; i < e.n; i++)
    dx[i] = 5.0f;
  switch (kind)
    {
    case BN:
      {
        float dg, db;

        tr_bn_backward (x, r, dx, 1.0f, e.n, e.gamma, e.mean, e.invstd, &dg, &db);
        for (size_t i = 0; i < e.n; i++)
          dx[i] -= 5.0f;
        check_grad ("bn x", x, dx, e.n, elem_loss, &e, 2e-3);
        /* gamma and beta through a one-value view */
        check_grad ("bn gamma", &e.gamma, &dg, 1, elem_loss, &e, 2e-3);
        check_grad ("bn beta", &e.beta, &db, 1, elem_loss, &e, 2e-3);
        tr_bn_backward (x, r, dx, 0.0f, e.n, e.gamma, e.mean, e.invstd, &dg, &db);
      }
      break;
    case RELU:
      tr_relu_backward (y, r, dx, 1.0f, e.n);
      for (size_t i = 0; i < e.n; i++)
        dx[i] -= 5.0f;
      check_grad (name, x, dx, e.n, elem_loss, &e, 2e-3);
      tr_relu_backward (y, r, dx, 0.0f, e.n);
      break;
    case POOL:
      tr_maxpool2_backward (r, arg, dx, 1.0f, e.n / 48, e.H, e.W);
      for (size_t i = 0; i < e.n; i++)
        dx[i] -= 5.0f;
      check_grad (name, x, dx, e.n, elem_loss, &e, 2e-3);
      tr_maxpool2_backward (r, arg, dx, 0.0f, e.n / 48, e.H, e.W);
      break;
    case GAP:
      tr_gap_backward (r, dx, 1.0f, e.n / 48, 48);
      for (size_t i = 0; i < e.n; i++)
        dx[i] -= 5.0f;
      check_grad (name, x, dx, e.n, elem_loss, &e, 2e-3);
      tr_gap_backward (r, dx, 0.0f, e.n / 48, 48);
      break;
    }
  check_grad (name, x, dx, e.n, elem_loss, &e, 2e-3);
}

static void
test_bn (void)
{
  elem_case (BN, "bn");
}

static void
test_relu (void)
{
  elem_case (RELU, "relu");
}

static void
test_maxpool (void)
{
  elem_case (POOL, "maxpool");
}

static void
test_gap (void)
{
  elem_case (GAP, "gap");
}

/* --- dense and softmax cross-entropy --- */

typedef struct {
  float *x, *w, *b, *z;
  guint8 labels[5];
  int M, K, N;
  float scale, smoothing;
} Dense;

static double
dense_loss (gpointer data)
{
  Dense *d = data;

  tr_dense_forward (d->x, d->w, d->b, d->z, d->M, d->K, d->N);
  return tr_softmax_xent (d->z, d->labels, d->M, d->N, d->scale, d->smoothing, NULL, NULL);
}

static void
test_dense_xent (void)
{
  Dense d = { .M = 4, .K = 6, .N = 5, .scale = 0.5f, .smoothing = 0.1f,
              .labels = { 0, 3, 2, 3, 1 } };
  g_autofree float *x = g_new (float, 30), *w = g_new (float, 24), *b = g_new (float, 4);
  g_autofree float *z = g_new (float, 20), *dz = g_new (float, 20);
  g_autofree float *dx = g_new (float, 30), *dw = g_new (float, 24), *db = g_new (float, 4);
  TrRng rng;
  double loss;

  tr_rng_init (&rng, 3, 3);
  fill (x, 30, &rng, 1.0f);
  fill (w, 24, &rng, 1.0f);
  fill (b, 4, &rng, 1.0f);
  d.x = x, d.w = w, d.b = b, d.z = z;
  dense_loss (&d);
  loss = tr_softmax_xent (z, d.labels, 4, 5, d.scale, d.smoothing, dz, NULL);
  g_assert_cmpfloat (loss, >, 0.0);
  tr_dense_backward (x, w, dz, dw, db, dx, 0.0f, 4, 6, 5);
  check_grad ("dense x", x, dx, 30, dense_loss, &d, 2e-3);
  check_grad ("dense w", w, dw, 24, dense_loss, &d, 2e-3);
  check_grad ("dense b", b, db, 4, dense_loss, &d, 2e-3);
}

static void
test_xent_values (void)
{
  /* two classes, logits 0 and log 3: p = (1/4, 3/4) */
  float z[2] = { 0.0f, logf (3.0f) }, dz[2];
  guint8 label = 1;
  int correct = 0;
  double loss = tr_softmax_xent (z, &label, 2, 1, 1.0f, 0.0f, dz, &correct);

  g_assert_cmpfloat_with_epsilon (loss, -log (0.75), 1e-6);
  g_assert_cmpfloat_with_epsilon (dz[0], 0.25, 1e-6);
  g_assert_cmpfloat_with_epsilon (dz[1], -0.25, 1e-6);
  g_assert_cmpint (correct, ==, 1);
  /* smoothing 0.2 over 2 classes: targets (0.1, 0.9) */
  loss = tr_softmax_xent (z, &label, 2, 1, 1.0f, 0.2f, dz, NULL);
  g_assert_cmpfloat_with_epsilon (loss, -(0.1 * log (0.25) + 0.9 * log (0.75)), 1e-6);
  g_assert_cmpfloat_with_epsilon (dz[0], 0.15, 1e-6);
}

/* --- a whole network: residual add, fan-out, BN in training mode, the loss --- */

typedef struct {
  TrNet *net;
  guint8 labels[8];
} NetCase;

static double
net_loss (gpointer data)
{
  NetCase *c = data;

  tr_net_forward (c->net, TRUE);
  return tr_net_loss_backward (c->net, c->labels, 0.1f, FALSE, NULL);
}

static void
test_net (void)
{
  g_autoptr(TrNet) net = tr_net_new (2, 8, 8, 2);
  NetCase c = { net, { 0, 1, 2, 0, 1, 2, 2, 1 } };
  TrRng rng;
  int x;

  x = tr_net_add_relu (net, tr_net_add_bn (net, tr_net_add_conv (net, -1, 4, 3, 1, 1)));
  x = tr_net_add_add (net, x, tr_net_add_relu (net, tr_net_add_bn (net,
                                                  tr_net_add_conv (net, x, 4, 3, 1, 1))));
  x = tr_net_add_relu (net, tr_net_add_bn (net, tr_net_add_maxpool (net, x)));
  x = tr_net_add_gap (net, x);
  tr_net_add_dense (net, x, 3);
  net->logit_scale = 0.5f;
  tr_net_init (net, 9);
  tr_net_set_batch (net, 8);
  tr_rng_init (&rng, 5, 5);
  fill (net->x, (size_t) 2 * 8 * 8 * 8, &rng, 1.0f);
  tr_net_forward (net, TRUE);
  tr_net_loss_backward (net, c.labels, 0.1f, TRUE, NULL);
  for (int i = 0; i < tr_net_n_layers (net); i++)
    {
      TrLayer *l = tr_net_layer (net, i);
      g_autofree char *name = g_strdup_printf ("net layer %d", i);
      g_autofree float *gw = l->w.n ? g_memdup2 (l->w.g, sizeof (float) * l->w.n) : NULL;
      g_autofree float *gb = l->b.n ? g_memdup2 (l->b.g, sizeof (float) * l->b.n) : NULL;

      /* finite differences of BN statistics over a batch of 8 need a looser bound */
      if (gw)
        check_grad (name, l->w.v, gw, l->w.n, net_loss, &c, 1e-2);
      if (gb)
        check_grad (name, l->b.v, gb, l->b.n, net_loss, &c, 1e-2);
    }
}

/* the same seed gives the same weights with 1 and 2 threads */
static void
test_threads_deterministic (void)
{
  float *w[2];

  for (int t = 0; t < 2; t++)
    {
      g_autoptr(TrNet) net = tr_net_new (1, 12, 12, t + 1);
      guint8 labels[40];
      TrRng rng;
      int x;

      x = tr_net_add_relu (net, tr_net_add_bn (net, tr_net_add_conv (net, -1, 6, 3, 1, 1)));
      x = tr_net_add_gap (net, tr_net_add_maxpool (net, x));
      tr_net_add_dense (net, x, 4);
      tr_net_init (net, 11);
      tr_net_set_batch (net, 40);
      tr_rng_init (&rng, 1, 1);
      for (int step = 0; step < 3; step++)
        {
          fill (net->x, (size_t) 40 * 144, &rng, 1.0f);
          for (int i = 0; i < 40; i++)
            labels[i] = (guint8) tr_rng_below (&rng, 4);
          tr_net_forward (net, TRUE);
          tr_net_loss_backward (net, labels, 0.0f, TRUE, NULL);
          tr_net_sgd_step (net, 0.1f, 0.9f, 1e-3f);
        }
      w[t] = g_memdup2 (tr_net_layer (net, 0)->w.v, sizeof (float) * 54);
    }
  g_assert_cmpmem (w[0], sizeof (float) * 54, w[1], sizeof (float) * 54);
  g_free (w[0]);
  g_free (w[1]);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/train/grad/conv", test_conv);
  g_test_add_func ("/train/grad/batchnorm", test_bn);
  g_test_add_func ("/train/grad/relu", test_relu);
  g_test_add_func ("/train/grad/maxpool", test_maxpool);
  g_test_add_func ("/train/grad/global-average-pool", test_gap);
  g_test_add_func ("/train/grad/dense-softmax-xent", test_dense_xent);
  g_test_add_func ("/train/xent/values", test_xent_values);
  g_test_add_func ("/train/grad/network", test_net);
  g_test_add_func ("/train/threads-deterministic", test_threads_deterministic);
  return g_test_run ();
}
