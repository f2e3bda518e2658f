/* nn-digits.h - a digit drawn on a canvas, prepared as MNIST's digits were made
 *
 * Shared by the app's Draw page and the server's POST /v1/predict/digit so that both feed
 * the bundled digit model (data/models/digits.onnx) the same way:
 *
 *   1. crop to the ink (pixels above NN_DIGITS_INK_THRESHOLD),
 *   2. scale the longer side to 20 pixels keeping the aspect ratio (area-averaged, so thin
 *      strokes stay grey instead of vanishing),
 *   3. place it in a 28x28 field with its centre of mass at the centre.
 */
#pragma once

#include <glib.h>

#include "nn-image.h"

G_BEGIN_DECLS

#define NN_DIGITS_SIZE 28
#define NN_DIGITS_BOX 20              /* the longer side of the digit inside the field */
#define NN_DIGITS_INK_THRESHOLD 24    /* faint antialiasing fringes do not count as ink */

/* @gray: width x height bytes, @stride bytes a row, 0 = empty canvas, 255 = full ink (for
 * black ink on white, pass 255 - value). Writes 28x28 values in 0..1 (ink) to @out.
 * Returns FALSE, with @out all zero, when there is no ink. */
gboolean nn_digits_preprocess (const guint8 *gray,
                               int           width,
                               int           height,
                               int           stride,
                               float         out[NN_DIGITS_SIZE * NN_DIGITS_SIZE]);

/* Applies the model's normalisation from its sidecar ((v * 255 * scale - mean) / std) in
 * place, giving the model's (1, 1, 28, 28) input. */
void     nn_digits_normalize  (const NnImageConfig *cfg,
                               float                values[NN_DIGITS_SIZE * NN_DIGITS_SIZE]);

G_END_DECLS
