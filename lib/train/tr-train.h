/* tr-train.h - the bundled models, their data pipelines and the training loop
 *
 * Two recipes: "digits" (MNIST, a small CNN) and "photos" (CIFAR-10, a half-width
 * ResNet-9-like net). Mini-batch SGD with Nesterov momentum and weight decay, a one-cycle
 * learning rate (linear warm-up, then linear decay to zero), label smoothing.
 */
#pragma once

#include <glib.h>

#include "tr-data.h"
#include "tr-net.h"

G_BEGIN_DECLS

typedef enum {
  TR_TASK_DIGITS,
  TR_TASK_PHOTOS,
} TrTask;

typedef struct {
  TrTask   task;
  int      epochs;
  int      batch;
  float    lr;           /* peak */
  float    warmup;       /* fraction of the steps spent rising to the peak */
  float    momentum;
  float    weight_decay;
  float    smoothing;
  int      width;        /* photos: channels of the first conv (the net is width-2w-4w-8w) */
  guint64  seed;
  int      threads;
  gboolean augment;
  gboolean quiet;        /* no progress lines */
  float    mean[3], std[3];  /* input normalisation of 0..1 pixels */
} TrRecipe;

typedef struct {
  double seconds;        /* wall time of the training loop */
  double cpu_seconds;    /* process CPU time (user + system) of the training loop */
  double train_loss;     /* mean over the last epoch */
  double train_accuracy; /* on augmented images, last epoch */
} TrTrainStats;

/* Defaults for a task: what data/models/README.md documents. */
void    tr_recipe_init     (TrRecipe        *r,
                            TrTask           task);
TrNet  *tr_recipe_net      (const TrRecipe  *r);
double  tr_train           (TrNet           *net,
                            const TrRecipe  *r,
                            const TrDataset *train,
                            TrTrainStats    *stats);
/* Accuracy of the trained net (BN with running statistics) on @ds; fills @confusion
 * (10 x 10, true label rows) when not NULL. */
double  tr_evaluate        (TrNet           *net,
                            const TrRecipe  *r,
                            const TrDataset *ds,
                            int             *confusion);
/* Normalised (C, N, H, W) batch input of images idx[0..n) of @ds; augmented with @epoch's
 * random stream when r->augment and @augment. */
void    tr_fill_batch      (TrNet           *net,
                            const TrRecipe  *r,
                            const TrDataset *ds,
                            const int       *idx,
                            int              n,
                            gboolean         augment,
                            guint64          stream);

G_END_DECLS
