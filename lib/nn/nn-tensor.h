/* nn-tensor.h - tensors inside the engine: sizes, limits, allocation */
#pragma once

#include "nn.h"

G_BEGIN_DECLS

/* Limits that keep a hostile file from making us allocate without bound: a single tensor
 * holds at most 2^28 elements (1 GiB of float), a model at most 2 GiB of weights. */
#define NN_MAX_ELEMENTS   (G_GINT64_CONSTANT (1) << 28)
#define NN_MAX_WEIGHTS    (G_GINT64_CONSTANT (2) << 30)
#define NN_MAX_MODEL_SIZE (G_GINT64_CONSTANT (2) << 30)
/* Kernels assume 64-byte aligned buffers (one AVX-512 vector, one cache line). */
#define NN_ALIGN 64
/* Every buffer a kernel reads ends with this much slack: XNNPACK's vector kernels may read up
 * to XNN_EXTRA_BYTES (16) past the last element of a tensor (nn-xnn.c checks the two agree). */
#define NN_READ_SLACK 16

/* Checks every dim is >= 0 and the product is within NN_MAX_ELEMENTS without overflow. */
gboolean  nn_shape_numel_checked  (int             ndim,
                                   const int64_t  *ne,
                                   int64_t        *numel,
                                   GError        **error);
gboolean  nn_dtype_supported      (int             dtype);
const char *nn_dtype_name         (NnDType         dtype);
char     *nn_shape_to_string      (int             ndim,
                                   const int64_t  *ne);
/* Copies @src (shape, dtype, data, name) into a new tensor that owns its data. */
NnTensor *nn_tensor_dup           (const NnTensor *src);
gboolean  nn_tensor_same_shape    (const NnTensor *a,
                                   const NnTensor *b);
/* Reads element @i of an integer tensor (int32/int64/uint8/int8/bool) as int64. */
int64_t   nn_tensor_get_int       (const NnTensor *t,
                                   int64_t         i);
double    nn_tensor_get_double    (const NnTensor *t,
                                   int64_t         i);
/* Parses a serialized TensorProto. */
NnTensor *nn_tensor_from_pb_data  (const guint8   *data,
                                   gsize           size,
                                   GError        **error);

G_END_DECLS
