/* tr-export.h - writing a trained network as ONNX (opset 11) and its JSON sidecar
 *
 * The graph is NCHW with a dynamic batch: input "input" (N, C, H, W), output
 * "probabilities" (N, classes) after a Softmax. Layers map one to one: Conv (no bias),
 * BatchNormalization with the running statistics, Relu, MaxPool, GlobalAveragePool, Add,
 * and Flatten + Gemm for the dense layer (the loss's logit scale folded into it).
 */
#pragma once

#include <glib.h>

#include "tr-net.h"
#include "tr-train.h"

G_BEGIN_DECLS

gboolean tr_export_onnx  (TrNet       *net,
                          const char  *name,
                          const char  *path,
                          GError     **error);

/* The sidecar lib/nn reads (nn-image.h) plus how the model was made: labels, the
 * normalisation, the command, seed, data files with their SHA-256, test accuracy. */
gboolean tr_export_sidecar (const TrRecipe     *r,
                            const TrDataset    *train,
                            const TrTrainStats *stats,
                            const char         *command,
                            double              test_accuracy,
                            const char         *path,
                            GError            **error);
/* the class names of a task, NULL-terminated */
const char *const *tr_task_labels (TrTask task);

G_END_DECLS
