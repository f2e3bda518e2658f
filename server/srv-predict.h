/* srv-predict.h - the model endpoints: POST /v1/predict/{digit,photo}, GET /v1/models[/{name}] */
#pragma once

#include <json-glib/json-glib.h>

#include "srv-context.h"

G_BEGIN_DECLS

/* Registers the handlers on ctx->soup; they use the models of ctx->workers. */
void srv_predict_register (SrvContext *ctx);

/* MNIST input from JSON pixels: @n values in 0..1 (all of them) or 0..255, written to @out
 * in 0..255. FALSE with a reason in @error for NaN, negatives or values over 255. */
gboolean srv_predict_digit_pixels (JsonArray  *pixels,
                                   float      *out,
                                   guint       n,
                                   GError    **error);

G_END_DECLS
