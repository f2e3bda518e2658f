/* tr-data.h - the training sets: MNIST (idx .gz) and CIFAR-10 (binary .bin.gz) readers,
 * and the augmentations the bundled models are trained with
 *
 * Readers check magic numbers, sizes and labels and say which file is wrong and how.
 */
#pragma once

#include <glib.h>

#include "tr-rng.h"

G_BEGIN_DECLS

#define TR_DATA_ERROR (tr_data_error_quark ())

typedef enum {
  TR_DATA_ERROR_FORMAT,  /* wrong magic number, size or label (a missing file is a
                          * G_FILE_ERROR) */
} TrDataError;

typedef struct {
  int     n, C, H, W;   /* images are (C, H, W) bytes each */
  guint8 *images;
  guint8 *labels;
  GPtrArray *files;     /* "name" then "sha256" of each file read, alternating */
} TrDataset;

GQuark     tr_data_error_quark  (void);
void       tr_dataset_free      (TrDataset    *ds);
/* train: train-images-idx3-ubyte.gz + train-labels-idx1-ubyte.gz, else the t10k files */
TrDataset *tr_mnist_load        (const char   *dir,
                                 gboolean      train,
                                 GError      **error);
/* train: data_batch_1..5.bin.gz, else test_batch.bin.gz */
TrDataset *tr_cifar10_load      (const char   *dir,
                                 gboolean      train,
                                 GError      **error);
/* the first @n images (a fraction of the training set; MNIST's are shuffled already) */
void       tr_dataset_truncate  (TrDataset    *ds,
                                 int           n);

/* A random small affine map (shift, rotation, scale, shear) and stroke thickness change,
 * as hand-drawn digits vary; out is 28x28 floats 0..1. */
void       tr_augment_digit     (const guint8 *src,
                                 float        *out,
                                 TrRng        *rng);
/* Random crop of the image padded by 4 (reflected) and a horizontal flip; (3, 32, 32) bytes
 * in, floats 0..1 out. */
void       tr_augment_photo     (const guint8 *src,
                                 float        *out,
                                 TrRng        *rng);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (TrDataset, tr_dataset_free)

G_END_DECLS
