/* nn.h - the Magpie neural-network engine: load an ONNX model, run it on the CPU
 *
 * A model is opened once (from a file or from memory), then run any number of times.
 * The first run for a given input shape plans the graph (shapes, constant folding, one
 * buffer arena, fast kernels); later runs with the same shapes reuse that plan and do not
 * allocate. A model is not thread-safe: use one per thread, or lock around nn_model_run().
 */
#pragma once

#include <glib.h>
#include <stdint.h>

G_BEGIN_DECLS

#define NN_ERROR (nn_error_quark ())

typedef enum {
  NN_ERROR_IO,          /* the file could not be read */
  NN_ERROR_PARSE,       /* not a valid ONNX protobuf, or truncated */
  NN_ERROR_INVALID,     /* well-formed but inconsistent (shapes, missing values, limits) */
  NN_ERROR_UNSUPPORTED, /* an op, attribute, data type or opset magpie does not handle */
  NN_ERROR_INPUT,       /* nn_model_run() called with inputs that do not fit the model */
} NnError;

/* Element types use the ONNX TensorProto.DataType numbers. */
typedef enum {
  NN_DTYPE_UNDEFINED = 0,
  NN_DTYPE_FLOAT = 1,
  NN_DTYPE_UINT8 = 2,
  NN_DTYPE_INT8 = 3,
  NN_DTYPE_INT32 = 6,
  NN_DTYPE_INT64 = 7,
  NN_DTYPE_BOOL = 9,
} NnDType;

#define NN_MAX_DIMS 8

/* A dense, row-major tensor; ne[0] is the outermost dimension (ONNX order). */
typedef struct {
  NnDType     dtype;
  int         ndim;
  int64_t     ne[NN_MAX_DIMS];
  void       *data;
  const char *name;
} NnTensor;

typedef struct _NnModel NnModel;

GQuark          nn_error_quark             (void);

/* Returns NULL and sets @error when the file is unreadable, corrupt, or uses an op or
 * data type the engine does not support (the message names the op and node). */
NnModel        *nn_model_new_from_file     (const char     *path,
                                            GError        **error);
NnModel        *nn_model_new_from_data     (const void     *data,
                                            gsize           size,
                                            GError        **error);
void            nn_model_free              (NnModel        *model);

/* Threads used by the kernels; 0 means one per core (the default). */
void            nn_model_set_threads       (NnModel        *model,
                                            int             n_threads);
int             nn_model_get_threads       (NnModel        *model);
/* Off forces the reference kernels everywhere (for tests and debugging). */
void            nn_model_set_fast          (NnModel        *model,
                                            gboolean        fast);

guint           nn_model_get_n_inputs      (NnModel        *model);
guint           nn_model_get_n_outputs     (NnModel        *model);
/* Declared shape; dynamic dimensions (such as the batch) are -1. Returns the rank. */
const char     *nn_model_get_input_name    (NnModel        *model,
                                            guint           i);
int             nn_model_get_input_shape   (NnModel        *model,
                                            guint           i,
                                            int64_t        *ne);
NnDType         nn_model_get_input_dtype   (NnModel        *model,
                                            guint           i);
const char     *nn_model_get_output_name   (NnModel        *model,
                                            guint           i);
int             nn_model_get_output_shape  (NnModel        *model,
                                            guint           i,
                                            int64_t        *ne);

/* Runs the model. @inputs are in graph-input order; their data is only read during the
 * call. Returns FALSE and sets @error when a shape or type does not fit. */
gboolean        nn_model_run               (NnModel        *model,
                                            const NnTensor *inputs,
                                            guint           n_inputs,
                                            GError        **error);
/* The i-th output of the last run; owned by the model, valid until the next run. */
const NnTensor *nn_model_get_output        (NnModel        *model,
                                            guint           i);

/* Comma-separated list of the ops the engine supports, sorted. */
const char     *nn_supported_ops           (void);

size_t          nn_dtype_size              (NnDType         dtype);
int64_t         nn_tensor_numel            (const NnTensor *t);

/* Reads a serialized ONNX TensorProto (the backend tests' .pb files). Free with
 * nn_tensor_free(). */
NnTensor       *nn_tensor_load_pb          (const char     *path,
                                            GError        **error);
NnTensor       *nn_tensor_new              (NnDType         dtype,
                                            int             ndim,
                                            const int64_t  *ne);
void            nn_tensor_free             (NnTensor       *t);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (NnModel, nn_model_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (NnTensor, nn_tensor_free)

G_END_DECLS
