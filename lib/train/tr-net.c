/* tr-net.c - a trainable network: layers, forward, backward, SGD */
#include "config.h"

#include <math.h>
#include <string.h>

#include "tr-net.h"
#include "tr-ops.h"

TrNet *
tr_net_new (int C, int H, int W, int n_threads)
{
  TrNet *net = g_new0 (TrNet, 1);

  net->C = C;
  net->H = H;
  net->W = W;
  net->layers = g_array_new (FALSE, TRUE, sizeof (TrLayer));
  net->bn_eps = 1e-5f;
  net->bn_momentum = 0.1f;
  net->logit_scale = 1.0f;
  net->pool = tr_pool_new (n_threads);
  net->col = g_new0 (float *, tr_pool_get_n_threads (net->pool));
  return net;
}

static void
param_free (TrParam *p)
{
  g_free (p->v);
  g_free (p->g);
  g_free (p->m);
}

static void
free_buffers (TrLayer *l)
{
  g_clear_pointer (&l->y, g_free);
  g_clear_pointer (&l->dy, g_free);
  g_clear_pointer (&l->arg, g_free);
}

void
tr_net_free (TrNet *net)
{
  if (!net)
    return;
  for (guint i = 0; i < net->layers->len; i++)
    {
      TrLayer *l = &g_array_index (net->layers, TrLayer, i);

      param_free (&l->w);
      param_free (&l->b);
      g_free (l->run_mean);
      g_free (l->run_var);
      g_free (l->mean);
      g_free (l->invstd);
      free_buffers (l);
    }
  g_array_unref (net->layers);
  for (int t = 0; t < tr_pool_get_n_threads (net->pool); t++)
    g_free (net->col[t]);
  g_free (net->col);
  g_free (net->parts);
  g_free (net->x);
  tr_pool_free (net->pool);
  g_free (net);
}

TrLayer *
tr_net_layer (TrNet *net, int i)
{
  g_assert (i >= 0 && (guint) i < net->layers->len);
  return &g_array_index (net->layers, TrLayer, i);
}

int
tr_net_n_layers (TrNet *net)
{
  return (int) net->layers->len;
}

/* the shape a layer reads */
static void
src_shape (TrNet *net, int src, int *C, int *H, int *W)
{
  if (src < 0)
    {
      *C = net->C;
      *H = net->H;
      *W = net->W;
      return;
    }
  *C = tr_net_layer (net, src)->C;
  *H = tr_net_layer (net, src)->H;
  *W = tr_net_layer (net, src)->W;
}

static void
param_alloc (TrParam *p, size_t n, gboolean decay)
{
  p->n = n;
  p->v = g_new0 (float, n);
  p->g = g_new0 (float, n);
  p->m = g_new0 (float, n);
  p->decay = decay;
}

static int
append (TrNet *net, TrLayer *l)
{
  g_assert (l->src < (int) net->layers->len && l->src2 < (int) net->layers->len);
  g_array_append_val (net->layers, *l);
  return (int) net->layers->len - 1;
}

int
tr_net_add_conv (TrNet *net, int src, int M, int k, int stride, int pad)
{
  TrLayer l = { .kind = TR_CONV, .src = src, .src2 = -1, .k = k, .stride = stride, .pad = pad };
  int C, H, W;

  src_shape (net, src, &C, &H, &W);
  l.C = M;
  l.H = (H + 2 * pad - k) / stride + 1;
  l.W = (W + 2 * pad - k) / stride + 1;
  param_alloc (&l.w, (size_t) M * C * k * k, TRUE);
  return append (net, &l);
}

int
tr_net_add_bn (TrNet *net, int src)
{
  TrLayer l = { .kind = TR_BN, .src = src, .src2 = -1 };

  src_shape (net, src, &l.C, &l.H, &l.W);
  param_alloc (&l.w, l.C, FALSE);
  param_alloc (&l.b, l.C, FALSE);
  l.run_mean = g_new0 (float, l.C);
  l.run_var = g_new0 (float, l.C);
  l.mean = g_new0 (float, l.C);
  l.invstd = g_new0 (float, l.C);
  return append (net, &l);
}

int
tr_net_add_relu (TrNet *net, int src)
{
  TrLayer l = { .kind = TR_RELU, .src = src, .src2 = -1 };

  src_shape (net, src, &l.C, &l.H, &l.W);
  return append (net, &l);
}

int
tr_net_add_maxpool (TrNet *net, int src)
{
  TrLayer l = { .kind = TR_MAXPOOL, .src = src, .src2 = -1 };

  src_shape (net, src, &l.C, &l.H, &l.W);
  l.H /= 2;
  l.W /= 2;
  g_assert (l.H > 0 && l.W > 0);
  return append (net, &l);
}

int
tr_net_add_gap (TrNet *net, int src)
{
  TrLayer l = { .kind = TR_GAP, .src = src, .src2 = -1 };
  int H, W;

  src_shape (net, src, &l.C, &H, &W);
  l.H = l.W = 1;
  return append (net, &l);
}

int
tr_net_add_add (TrNet *net, int a, int b)
{
  TrLayer l = { .kind = TR_ADD, .src = a, .src2 = b };
  int C, H, W;

  src_shape (net, a, &l.C, &l.H, &l.W);
  src_shape (net, b, &C, &H, &W);
  g_assert (C == l.C && H == l.H && W == l.W && a != b);
  return append (net, &l);
}

int
tr_net_add_dense (TrNet *net, int src, int M)
{
  TrLayer l = { .kind = TR_DENSE, .src = src, .src2 = -1 };
  int C, H, W;

  src_shape (net, src, &C, &H, &W);
  /* (C, N, 1, 1) is the (K, N) matrix the sgemm wants; a flattened (C, N, H, W) is not */
  g_assert (H == 1 && W == 1);
  l.C = M;
  l.H = l.W = 1;
  param_alloc (&l.w, (size_t) M * C, TRUE);
  param_alloc (&l.b, M, FALSE);
  return append (net, &l);
}

void
tr_net_init (TrNet *net, guint64 seed)
{
  for (int i = 0; i < tr_net_n_layers (net); i++)
    {
      TrLayer *l = tr_net_layer (net, i);
      TrRng rng;
      int C, H, W;

      tr_rng_init (&rng, seed, (guint64) i + 1);
      src_shape (net, l->src, &C, &H, &W);
      switch (l->kind)
        {
        case TR_CONV:
          {
            float std = sqrtf (2.0f / (C * l->k * l->k));

            for (size_t j = 0; j < l->w.n; j++)
              l->w.v[j] = std * tr_rng_normal (&rng);
          }
          break;
        case TR_DENSE:
          {
            float bound = 1.0f / sqrtf ((float) C * H * W);

            for (size_t j = 0; j < l->w.n; j++)
              l->w.v[j] = bound * (2.0f * tr_rng_uniform (&rng) - 1.0f);
            for (size_t j = 0; j < l->b.n; j++)
              l->b.v[j] = bound * (2.0f * tr_rng_uniform (&rng) - 1.0f);
          }
          break;
        case TR_BN:
          for (int c = 0; c < l->C; c++)
            {
              l->w.v[c] = 1.0f;
              l->b.v[c] = 0.0f;
              l->run_mean[c] = 0.0f;
              l->run_var[c] = 1.0f;
            }
          break;
        case TR_RELU:
        case TR_MAXPOOL:
        case TR_GAP:
        case TR_ADD:
          break;
        }
      for (TrParam *p = &l->w; p <= &l->b; p++)
        if (p->m)
          memset (p->m, 0, sizeof (float) * p->n);
    }
}

static int
n_chunks (int N)
{
  return (N + TR_NET_CHUNK - 1) / TR_NET_CHUNK;
}

void
tr_net_set_batch (TrNet *net, int N)
{
  size_t col = 0, parts = 0;

  if (net->N == N)
    return;
  net->N = N;
  g_free (net->x);
  net->x = g_new0 (float, (size_t) net->C * N * net->H * net->W);
  for (int i = 0; i < tr_net_n_layers (net); i++)
    {
      TrLayer *l = tr_net_layer (net, i);
      size_t n = (size_t) l->C * N * l->H * l->W;

      free_buffers (l);
      l->y = g_new0 (float, n);
      l->dy = g_new0 (float, n);
      if (l->kind == TR_MAXPOOL)
        l->arg = g_new0 (guint8, n);
      if (l->kind == TR_CONV)
        {
          int C, H, W;

          src_shape (net, l->src, &C, &H, &W);
          col = MAX (col, (size_t) C * l->k * l->k * MIN (N, TR_NET_CHUNK) * l->H * l->W);
          parts = MAX (parts, l->w.n * n_chunks (N));
        }
    }
  if (col > net->col_size)
    {
      for (int t = 0; t < tr_pool_get_n_threads (net->pool); t++)
        {
          g_free (net->col[t]);
          net->col[t] = g_new (float, col);
        }
      net->col_size = col;
    }
  if (parts > net->parts_size)
    {
      g_free (net->parts);
      net->parts = g_new (float, parts);
      net->parts_size = parts;
    }
}

static float *
src_y (TrNet *net, int src)
{
  return src < 0 ? net->x : tr_net_layer (net, src)->y;
}

typedef struct {
  TrNet      *net;
  TrLayer    *l;
  TrConvShape shape;
  gboolean    train;
  float      *dx, *dx2;
  float       beta, beta2;
  size_t      n;  /* elements, for the elementwise tasks */
  int         n_tasks;
} Job;

/* elementwise work splits into this many ranges per thread, for balance */
#define RANGES_PER_THREAD 4

static void
range (const Job *job, int task, size_t *lo, size_t *hi)
{
  *lo = job->n * task / job->n_tasks;
  *hi = job->n * (task + 1) / job->n_tasks;
}

static void
conv_forward_task (int task, int worker, gpointer data)
{
  Job *job = data;
  int n0 = task * TR_NET_CHUNK, nb = MIN (TR_NET_CHUNK, job->shape.N - n0);

  tr_conv_forward_chunk (&job->shape, src_y (job->net, job->l->src), job->l->w.v, job->l->y,
                         n0, nb, job->net->col[worker]);
}

static void
conv_backward_task (int task, int worker, gpointer data)
{
  Job *job = data;
  int n0 = task * TR_NET_CHUNK, nb = MIN (TR_NET_CHUNK, job->shape.N - n0);

  tr_conv_backward_chunk (&job->shape, src_y (job->net, job->l->src), job->l->w.v, job->l->dy,
                          job->net->parts + (size_t) task * job->l->w.n, job->dx, job->beta,
                          n0, nb, job->net->col[worker]);
}

/* the weight gradient is the sum of the chunks' parts, always in chunk order */
static void
conv_reduce_task (int task, int worker, gpointer data)
{
  Job *job = data;
  size_t lo, hi;
  int chunks = n_chunks (job->net->N);

  range (job, task, &lo, &hi);
  for (size_t i = lo; i < hi; i++)
    {
      float s = 0.0f;

      for (int c = 0; c < chunks; c++)
        s += job->net->parts[(size_t) c * job->l->w.n + i];
      job->l->w.g[i] = s;
    }
}

static void
bn_forward_task (int c, int worker, gpointer data)
{
  Job *job = data;
  TrNet *net = job->net;
  TrLayer *l = job->l;
  size_t m = (size_t) net->N * l->H * l->W;
  const float *x = src_y (net, l->src) + c * m;

  if (job->train)
    {
      float var = tr_bn_forward_train (x, l->y + c * m, m, l->w.v[c], l->b.v[c], net->bn_eps,
                                       &l->mean[c], &l->invstd[c]);
      float mom = net->bn_momentum;

      l->run_mean[c] = (1.0f - mom) * l->run_mean[c] + mom * l->mean[c];
      l->run_var[c] = (1.0f - mom) * l->run_var[c] + mom * var * m / MAX (m - 1, 1);
    }
  else
    tr_bn_forward_eval (x, l->y + c * m, m, l->w.v[c], l->b.v[c], l->run_mean[c],
                        l->run_var[c], net->bn_eps);
}

static void
bn_backward_task (int c, int worker, gpointer data)
{
  Job *job = data;
  TrNet *net = job->net;
  TrLayer *l = job->l;
  size_t m = (size_t) net->N * l->H * l->W;

  tr_bn_backward (src_y (net, l->src) + c * m, l->dy + c * m, job->dx + c * m, job->beta, m,
                  l->w.v[c], l->mean[c], l->invstd[c], &l->w.g[c], &l->b.g[c]);
}

static void
relu_forward_task (int task, int worker, gpointer data)
{
  Job *job = data;
  size_t lo, hi;

  range (job, task, &lo, &hi);
  tr_relu_forward (src_y (job->net, job->l->src) + lo, job->l->y + lo, hi - lo);
}

static void
relu_backward_task (int task, int worker, gpointer data)
{
  Job *job = data;
  size_t lo, hi;

  range (job, task, &lo, &hi);
  tr_relu_backward (job->l->y + lo, job->l->dy + lo, job->dx + lo, job->beta, hi - lo);
}

static void
add_forward_task (int task, int worker, gpointer data)
{
  Job *job = data;
  const float *a = src_y (job->net, job->l->src), *b = src_y (job->net, job->l->src2);
  size_t lo, hi;

  range (job, task, &lo, &hi);
  for (size_t i = lo; i < hi; i++)
    job->l->y[i] = a[i] + b[i];
}

static void
add_backward_task (int task, int worker, gpointer data)
{
  Job *job = data;
  const float *dy = job->l->dy;
  size_t lo, hi;

  range (job, task, &lo, &hi);
  for (size_t i = lo; i < hi; i++)
    {
      if (job->dx)
        job->dx[i] = job->beta * job->dx[i] + dy[i];
      if (job->dx2)
        job->dx2[i] = job->beta2 * job->dx2[i] + dy[i];
    }
}

/* max pooling by channel: each task owns N planes */
static void
pool_forward_task (int c, int worker, gpointer data)
{
  Job *job = data;
  TrLayer *l = job->l;
  size_t planes = job->net->N, out = (size_t) l->H * l->W;
  int H, W, C;

  src_shape (job->net, l->src, &C, &H, &W);
  tr_maxpool2_forward (src_y (job->net, l->src) + c * planes * H * W, l->y + c * planes * out,
                       l->arg + c * planes * out, planes, H, W);
}

static void
pool_backward_task (int c, int worker, gpointer data)
{
  Job *job = data;
  TrLayer *l = job->l;
  size_t planes = job->net->N, out = (size_t) l->H * l->W;
  int H, W, C;

  src_shape (job->net, l->src, &C, &H, &W);
  tr_maxpool2_backward (l->dy + c * planes * out, l->arg + c * planes * out,
                        job->dx + c * planes * H * W, job->beta, planes, H, W);
}

static void
run_ranges (TrNet *net, Job *job, size_t n, TrTaskFunc fn)
{
  job->n = n;
  job->n_tasks = (int) MIN ((size_t) tr_pool_get_n_threads (net->pool) * RANGES_PER_THREAD,
                            MAX (n / 4096, 1));
  tr_pool_run (net->pool, job->n_tasks, fn, job);
}

void
tr_net_forward (TrNet *net, gboolean train)
{
  const int N = net->N;

  g_assert (N > 0);
  for (int i = 0; i < tr_net_n_layers (net); i++)
    {
      TrLayer *l = tr_net_layer (net, i);
      Job job = { .net = net, .l = l, .train = train };
      int C, H, W;

      src_shape (net, l->src, &C, &H, &W);
      switch (l->kind)
        {
        case TR_CONV:
          tr_conv_shape (&job.shape, C, N, H, W, l->C, l->k, l->stride, l->pad);
          tr_pool_run (net->pool, n_chunks (N), conv_forward_task, &job);
          break;
        case TR_BN:
          tr_pool_run (net->pool, l->C, bn_forward_task, &job);
          break;
        case TR_RELU:
          run_ranges (net, &job, (size_t) l->C * N * l->H * l->W, relu_forward_task);
          break;
        case TR_ADD:
          run_ranges (net, &job, (size_t) l->C * N * l->H * l->W, add_forward_task);
          break;
        case TR_MAXPOOL:
          tr_pool_run (net->pool, l->C, pool_forward_task, &job);
          break;
        case TR_GAP:
          tr_gap_forward (src_y (net, l->src), l->y, (size_t) C * N, H * W);
          break;
        case TR_DENSE:
          tr_dense_forward (src_y (net, l->src), l->w.v, l->b.v, l->y, l->C, C * H * W, N);
          break;
        }
    }
}

const float *
tr_net_output (TrNet *net)
{
  return tr_net_layer (net, tr_net_n_layers (net) - 1)->y;
}

/* where a layer's input gradient goes, and whether it adds to what is there */
static float *
grad_target (TrNet *net, int src, float *beta)
{
  TrLayer *s;

  if (src < 0)
    return NULL;
  s = tr_net_layer (net, src);
  *beta = s->dy_set ? 1.0f : 0.0f;
  s->dy_set = TRUE;
  return s->dy;
}

double
tr_net_loss_backward (TrNet *net, const guint8 *labels, float smoothing, gboolean backward,
                      int *correct)
{
  const int N = net->N;
  TrLayer *last = tr_net_layer (net, tr_net_n_layers (net) - 1);
  double loss;

  loss = tr_softmax_xent (last->y, labels, last->C, N, net->logit_scale, smoothing,
                          backward ? last->dy : NULL, correct);
  if (!backward)
    return loss;
  for (int i = 0; i < tr_net_n_layers (net); i++)
    tr_net_layer (net, i)->dy_set = FALSE;
  last->dy_set = TRUE;
  for (int i = tr_net_n_layers (net) - 1; i >= 0; i--)
    {
      TrLayer *l = tr_net_layer (net, i);
      Job job = { .net = net, .l = l };
      int C, H, W;

      g_assert (l->dy_set);  /* every layer feeds the output */
      src_shape (net, l->src, &C, &H, &W);
      job.dx = grad_target (net, l->src, &job.beta);
      switch (l->kind)
        {
        case TR_CONV:
          tr_conv_shape (&job.shape, C, N, H, W, l->C, l->k, l->stride, l->pad);
          tr_pool_run (net->pool, n_chunks (N), conv_backward_task, &job);
          run_ranges (net, &job, l->w.n, conv_reduce_task);
          break;
        case TR_BN:
          tr_pool_run (net->pool, l->C, bn_backward_task, &job);
          break;
        case TR_RELU:
          run_ranges (net, &job, (size_t) l->C * N * l->H * l->W, relu_backward_task);
          break;
        case TR_ADD:
          job.dx2 = grad_target (net, l->src2, &job.beta2);
          run_ranges (net, &job, (size_t) l->C * N * l->H * l->W, add_backward_task);
          break;
        case TR_MAXPOOL:
          if (job.dx)
            tr_pool_run (net->pool, l->C, pool_backward_task, &job);
          break;
        case TR_GAP:
          if (job.dx)
            tr_gap_backward (l->dy, job.dx, job.beta, (size_t) C * N, H * W);
          break;
        case TR_DENSE:
          tr_dense_backward (src_y (net, l->src), l->w.v, l->dy, l->w.g, l->b.g, job.dx,
                             job.beta, l->C, C * H * W, N);
          break;
        }
    }
  return loss;
}

void
tr_net_sgd_step (TrNet *net, float lr, float momentum, float weight_decay)
{
  for (int i = 0; i < tr_net_n_layers (net); i++)
    {
      TrLayer *l = tr_net_layer (net, i);

      for (TrParam *p = &l->w; p <= &l->b; p++)
        {
          float wd = p->decay ? weight_decay : 0.0f;

          for (size_t j = 0; j < p->n; j++)
            {
              float g = p->g[j] + wd * p->v[j];

              p->m[j] = momentum * p->m[j] + g;
              p->v[j] -= lr * (g + momentum * p->m[j]);
            }
        }
    }
}

size_t
tr_net_n_params (TrNet *net)
{
  size_t n = 0;

  for (int i = 0; i < tr_net_n_layers (net); i++)
    n += tr_net_layer (net, i)->w.n + tr_net_layer (net, i)->b.n;
  return n;
}

double
tr_net_macs (TrNet *net)
{
  double macs = 0.0;

  for (int i = 0; i < tr_net_n_layers (net); i++)
    {
      TrLayer *l = tr_net_layer (net, i);

      if (l->kind == TR_CONV || l->kind == TR_DENSE)
        macs += (double) l->w.n * l->H * l->W;
    }
  return macs;
}
