/* nn-image.h - preparing images for a model: resize, centre crop, channel order, mean/std,
 * layout; described by a JSON sidecar next to the model (model.onnx + model.json):
 *
 *   { "input_size": [224, 224], "resize": 256, "channel_order": "BGR",
 *     "mean": [104, 117, 123], "std": [1, 1, 1], "scale": 1.0,
 *     "layout": "NCHW", "grayscale": false, "labels": "synset.txt" }
 *
 * "labels" is a file with one label per line, or the list itself (["cat", "dog"]). Other
 * members are ignored here (magpie-train records how the model was made in "training").
 *
 * Pixels go 0..255 -> (v * scale - mean[c]) / std[c], in the channel order given. Resizing
 * reproduces Pillow's bilinear resize (antialiased when shrinking, 8-bit between passes), so
 * results match Python pipelines built on PIL and torchvision.
 */
#pragma once

#include <gdk-pixbuf/gdk-pixbuf.h>

#include "nn.h"

G_BEGIN_DECLS

typedef struct {
  int      width, height;  /* model input; 0 = take it from the model */
  int      resize;         /* shorter side before the centre crop; 0 = resize to the input */
  float    mean[3];
  float    std[3];
  float    scale;
  gboolean bgr;
  gboolean nhwc;
  gboolean grayscale;
  char    *labels;         /* absolute path, or NULL */
  GStrv    label_names;    /* "labels" given inline as a list, or NULL */
} NnImageConfig;

/* Decoding limit: larger images are refused before they are decoded. */
#define NN_IMAGE_MAX_PIXELS (64 * 1024 * 1024)

NnImageConfig *nn_image_config_new        (void);
void           nn_image_config_free       (NnImageConfig       *cfg);
/* Reads a sidecar; a relative "labels" path is taken relative to the sidecar's folder. */
gboolean       nn_image_config_load       (NnImageConfig       *cfg,
                                           const char          *json_path,
                                           GError             **error);
/* "dir/model.onnx" -> "dir/model.json" */
char          *nn_image_sidecar_path      (const char          *model_path);
/* Fills width/height from a model whose first input is (N,C,H,W) or (N,H,W,C). */
void           nn_image_config_fit_model  (NnImageConfig       *cfg,
                                           NnModel             *model);

/* Preprocesses 8-bit RGB(A) pixels into @out (C*height*width floats). */
void           nn_image_preprocess_rgb    (const NnImageConfig *cfg,
                                           const guint8        *pixels,
                                           int                  width,
                                           int                  height,
                                           int                  rowstride,
                                           int                  n_channels,
                                           float               *out);
/* Decodes @path (refusing images over NN_IMAGE_MAX_PIXELS) into a (1,C,H,W) or
 * (1,H,W,C) float tensor. */
NnTensor      *nn_image_load              (const NnImageConfig *cfg,
                                           const char          *path,
                                           GError             **error);
/* As nn_image_load(), but a large JPEG is decoded at a fraction of its size (1/2 .. 1/8 in
 * the DCT, still at least twice the model's input) before the resize: most of the time to
 * tag a photo is otherwise spent decoding pixels the model never sees. */
NnTensor      *nn_image_load_scaled       (const NnImageConfig *cfg,
                                           const char          *path,
                                           GError             **error);
NnTensor      *nn_image_from_pixbuf       (const NnImageConfig *cfg,
                                           GdkPixbuf           *pixbuf);
/* One label per line; returns NULL and sets @error when unreadable. */
GStrv          nn_labels_load             (const char          *path,
                                           GError             **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (NnImageConfig, nn_image_config_free)

G_END_DECLS
