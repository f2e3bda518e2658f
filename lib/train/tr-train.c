/* tr-train.c - the bundled models, their data pipelines and the training loop */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#include "tr-train.h"

void
tr_recipe_init (TrRecipe *r, TrTask task)
{
  memset (r, 0, sizeof *r);
  r->task = task;
  r->seed = 1;
  r->momentum = 0.9f;
  r->augment = TRUE;
  r->warmup = 0.2f;
  if (task == TR_TASK_DIGITS)
    {
      r->epochs = 8;
      r->batch = 128;
      r->lr = 0.2f;
      r->warmup = 0.15f;
      r->weight_decay = 5e-4f;
      r->smoothing = 0.05f;
      /* MNIST's own statistics */
      r->mean[0] = 0.1307f;
      r->std[0] = 0.3081f;
    }
  else
    {
      r->epochs = 18;
      r->width = 32;
      r->batch = 256;
      r->lr = 0.2f;
      r->weight_decay = 5e-4f;
      r->smoothing = 0.1f;
      /* CIFAR-10 training set statistics */
      r->mean[0] = 0.4914f, r->mean[1] = 0.4822f, r->mean[2] = 0.4465f;
      r->std[0] = 0.2470f, r->std[1] = 0.2435f, r->std[2] = 0.2616f;
    }
}

static int
conv_bn_relu (TrNet *net, int src, int M)
{
  return tr_net_add_relu (net, tr_net_add_bn (net, tr_net_add_conv (net, src, M, 3, 1, 1)));
}

/* pooling before the batch norm costs a quarter of the BN and ReLU work */
static int
conv_pool_bn_relu (TrNet *net, int src, int M)
{
  int c = tr_net_add_conv (net, src, M, 3, 1, 1);

  return tr_net_add_relu (net, tr_net_add_bn (net, tr_net_add_maxpool (net, c)));
}

static int
residual (TrNet *net, int src, int M)
{
  return tr_net_add_add (net, src, conv_bn_relu (net, conv_bn_relu (net, src, M), M));
}

TrNet *
tr_recipe_net (const TrRecipe *r)
{
  TrNet *net;
  int x;

  if (r->task == TR_TASK_DIGITS)
    {
      /* 28 -> 14 -> 7, then global pooling: 4.9 M multiply-adds */
      net = tr_net_new (1, 28, 28, r->threads);
      x = conv_pool_bn_relu (net, -1, 24);
      x = conv_pool_bn_relu (net, x, 48);
      x = conv_bn_relu (net, x, 128);
      x = tr_net_add_gap (net, x);
      tr_net_add_dense (net, x, 10);
      return net;
    }
  /* ResNet-9 (Page, "How to train your ResNet"); at the default half width, 32-64-128-256,
   * 95 M multiply-adds (3/8 width, 24-48-96-192, 54 M, stopped at 86 %) */
  net = tr_net_new (3, 32, 32, r->threads);
  x = conv_bn_relu (net, -1, r->width);
  x = conv_pool_bn_relu (net, x, 2 * r->width);
  x = residual (net, x, 2 * r->width);
  x = conv_pool_bn_relu (net, x, 4 * r->width);
  x = conv_pool_bn_relu (net, x, 8 * r->width);
  x = residual (net, x, 8 * r->width);
  x = tr_net_add_gap (net, x);
  tr_net_add_dense (net, x, 10);
  /* a cooler softmax at the start, as Page's net scales its logits by 1/8 */
  net->logit_scale = 0.125f;
  return net;
}

typedef struct {
  TrNet           *net;
  const TrRecipe  *r;
  const TrDataset *ds;
  const int       *idx;
  gboolean         augment;
  guint64          stream;
} FillJob;

static void
fill_task (int n, int worker, gpointer data)
{
  FillJob *job = data;
  const TrDataset *ds = job->ds;
  const int HW = ds->H * ds->W, N = job->net->N;
  const guint8 *src = ds->images + (size_t) job->idx[n] * ds->C * HW;
  float img[3 * 32 * 32];

  g_assert (ds->C * HW <= (int) G_N_ELEMENTS (img));
  if (job->augment)
    {
      TrRng rng;

      /* one stream per image and epoch: the same pictures whatever the thread count */
      tr_rng_init (&rng, job->r->seed, (job->stream << 24) ^ (guint64) job->idx[n]);
      if (job->r->task == TR_TASK_DIGITS)
        tr_augment_digit (src, img, &rng);
      else
        tr_augment_photo (src, img, &rng);
    }
  else
    for (int i = 0; i < ds->C * HW; i++)
      img[i] = src[i] * (1.0f / 255.0f);
  for (int c = 0; c < ds->C; c++)
    {
      float *dst = job->net->x + ((size_t) c * N + n) * HW;
      float m = job->r->mean[c], s = 1.0f / job->r->std[c];

      for (int i = 0; i < HW; i++)
        dst[i] = (img[c * HW + i] - m) * s;
    }
}

void
tr_fill_batch (TrNet *net, const TrRecipe *r, const TrDataset *ds, const int *idx, int n,
               gboolean augment, guint64 stream)
{
  FillJob job = { net, r, ds, idx, augment && r->augment, stream };

  tr_net_set_batch (net, n);
  tr_pool_run (net->pool, n, fill_task, &job);
}

static double
cpu_seconds (void)
{
  struct rusage ru;

  getrusage (RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + ru.ru_stime.tv_sec
         + ru.ru_stime.tv_usec * 1e-6;
}

static float
one_cycle (const TrRecipe *r, double t)
{
  if (t < r->warmup)
    return r->lr * (float) (t / r->warmup);
  return r->lr * (float) ((1.0 - t) / (1.0 - r->warmup));
}

double
tr_train (TrNet *net, const TrRecipe *r, const TrDataset *train, TrTrainStats *stats)
{
  const int n = train->n, steps_per_epoch = n / r->batch;
  const long total_steps = (long) steps_per_epoch * r->epochs;
  g_autofree int *perm = g_new (int, n);
  g_autofree guint8 *labels = g_new (guint8, r->batch);
  gint64 t0 = g_get_monotonic_time ();
  double cpu0 = cpu_seconds (), loss_sum = 0.0;
  long step = 0;
  int correct = 0;

  g_assert (steps_per_epoch > 0);
  tr_net_init (net, r->seed);
  for (int i = 0; i < n; i++)
    perm[i] = i;
  for (int epoch = 0; epoch < r->epochs; epoch++)
    {
      TrRng rng;
      gint64 e0 = g_get_monotonic_time ();
      double secs, elapsed;

      tr_rng_init (&rng, r->seed, 0x5eed0000u + (guint64) epoch);
      for (int i = n - 1; i > 0; i--)
        {
          int j = (int) tr_rng_below (&rng, (guint32) i + 1), t = perm[i];

          perm[i] = perm[j];
          perm[j] = t;
        }
      loss_sum = 0.0;
      correct = 0;
      /* the remainder of a shuffled epoch is dropped: a tiny last batch upsets BN */
      for (int b = 0; b < steps_per_epoch; b++, step++)
        {
          tr_fill_batch (net, r, train, perm + (size_t) b * r->batch, r->batch, TRUE,
                         (guint64) epoch + 1);
          tr_net_forward (net, TRUE);
          for (int i = 0; i < r->batch; i++)
            labels[i] = train->labels[perm[(size_t) b * r->batch + i]];
          loss_sum += tr_net_loss_backward (net, labels, r->smoothing, TRUE, &correct);
          tr_net_sgd_step (net, one_cycle (r, (double) step / total_steps), r->momentum,
                           r->weight_decay);
        }
      secs = (g_get_monotonic_time () - e0) / 1e6;
      elapsed = (g_get_monotonic_time () - t0) / 1e6;
      if (!r->quiet)
        {
          double eta = elapsed / (epoch + 1) * (r->epochs - epoch - 1);

          printf ("epoch %2d/%d  loss %.4f  acc %.4f  %6.0f img/s  %5.1f s  ETA %d:%02d\n",
                  epoch + 1, r->epochs, loss_sum / steps_per_epoch,
                  (double) correct / ((double) steps_per_epoch * r->batch),
                  (double) steps_per_epoch * r->batch / secs, elapsed, (int) eta / 60,
                  (int) eta % 60);
          fflush (stdout);
        }
    }
  if (stats)
    {
      stats->seconds = (g_get_monotonic_time () - t0) / 1e6;
      stats->cpu_seconds = cpu_seconds () - cpu0;
      stats->train_loss = loss_sum / steps_per_epoch;
      stats->train_accuracy = (double) correct / ((double) steps_per_epoch * r->batch);
    }
  return loss_sum / steps_per_epoch;
}

double
tr_evaluate (TrNet *net, const TrRecipe *r, const TrDataset *ds, int *confusion)
{
  const int B = 250;
  g_autofree int *idx = g_new (int, B);
  int correct = 0;

  if (confusion)
    memset (confusion, 0, sizeof (int) * 100);
  for (int b0 = 0; b0 < ds->n; b0 += B)
    {
      int nb = MIN (B, ds->n - b0);
      const float *out;

      for (int i = 0; i < nb; i++)
        idx[i] = b0 + i;
      tr_fill_batch (net, r, ds, idx, nb, FALSE, 0);
      tr_net_forward (net, FALSE);
      out = tr_net_output (net);
      for (int i = 0; i < nb; i++)
        {
          int best = 0;

          for (int k = 1; k < 10; k++)
            if (out[k * nb + i] > out[best * nb + i])
              best = k;
          correct += best == ds->labels[b0 + i];
          if (confusion)
            confusion[ds->labels[b0 + i] * 10 + best]++;
        }
    }
  return (double) correct / ds->n;
}
