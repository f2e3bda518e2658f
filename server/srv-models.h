/* srv-models.h - the models magpied serves: the photo tagger and the digit reader
 *
 * A model is read once (file bytes kept, so each worker thread opens its own engine instance
 * from memory, and GET /v1/models/{name} serves the same bytes it runs), with its image
 * sidecar (model.json) and labels. Engine instances are not thread-safe: workers own one
 * each; request handlers borrow one from a small pool.
 */
#pragma once

#include <gdk-pixbuf/gdk-pixbuf.h>

#include "nn.h"
#include "nn-image.h"
#include "srv-config.h"

G_BEGIN_DECLS

typedef struct _SrvModel SrvModel;

/* Where the default models live: PKGDATADIR/models when installed, else the source tree's
 * data/models (uninstalled runs). Returns NULL when neither has @file_name. */
char          *srv_models_find_default   (const char          *file_name);

/* Returns NULL and sets @error when the file or its sidecar cannot be read or the engine
 * refuses the model. @name is what clients see ("photos"). */
SrvModel      *srv_model_load            (const char          *name,
                                          const char          *path,
                                          GError             **error);
void           srv_model_free            (SrvModel            *model);

const char    *srv_model_get_name        (SrvModel            *model);
const char    *srv_model_get_sha256      (SrvModel            *model);
GBytes        *srv_model_get_bytes       (SrvModel            *model);
/* Label lines, NULL-terminated; NULL when the sidecar names none. */
const char * const *srv_model_get_labels (SrvModel            *model);
const NnImageConfig *srv_model_get_image_config (SrvModel     *model);
/* Elements of one input item (784 for a 1×1×28×28 model). */
gint64         srv_model_get_input_numel (SrvModel            *model);
/* TRUE when the first input's batch dimension is dynamic: a batch runs in one call. */
gboolean       srv_model_can_batch       (SrvModel            *model);

/* A new engine instance, single-threaded (the pool's threads are the parallelism). */
NnModel       *srv_model_new_instance    (SrvModel            *model,
                                          GError             **error);
/* Borrow and give back a pooled instance (request handlers). */
NnModel       *srv_model_acquire         (SrvModel            *model,
                                          GError             **error);
void           srv_model_release         (SrvModel            *model,
                                          NnModel             *instance);

/* Runs @instance on @n decoded images (one call when the model can batch) and returns n
 * probability vectors of *n_classes floats each, back to back. */
float         *srv_model_classify        (SrvModel            *model,
                                          NnModel             *instance,
                                          GdkPixbuf * const   *images,
                                          guint                n,
                                          guint               *n_classes,
                                          GError             **error);
/* Runs @instance on one raw input item of srv_model_get_input_numel() floats, already
 * normalised for the model; returns the probabilities. */
float         *srv_model_run_raw         (SrvModel            *model,
                                          NnModel             *instance,
                                          const float         *input,
                                          guint               *n_classes,
                                          GError             **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (SrvModel, srv_model_free)

G_END_DECLS
