/* nn-onnx.h - reading ONNX protobuf files into an NnGraph */
#pragma once

#include "nn-graph.h"

G_BEGIN_DECLS

/* Parses a serialized ModelProto. Returns NULL and sets @error (NN_ERROR_PARSE for bytes
 * that are not a model, NN_ERROR_UNSUPPORTED for IR versions, opsets, types or ops magpie
 * does not handle, NN_ERROR_INVALID for inconsistent or oversized tensors). */
NnGraph *nn_onnx_load   (const guint8 *data,
                         gsize         size,
                         GError      **error);
/* The two halves of nn_onnx_load(), so that a caller can drop the file's bytes as soon as
 * they are parsed: unpack copies what it needs; graph consumes (frees) the proto. */
gpointer nn_onnx_unpack (const guint8 *data,
                         gsize         size,
                         GError      **error);
NnGraph *nn_onnx_graph  (gpointer      proto,
                         GError      **error);

G_END_DECLS

G_BEGIN_DECLS

/* For tests and tools: the distinct op types of a model (sorted), and whether every graph
 * input and output is a tensor of a type the engine handles (else a reason). */
gboolean nn_onnx_inspect (const guint8  *data,
                          gsize          size,
                          GStrv         *op_types,
                          char         **io_problem,
                          GError       **error);

G_END_DECLS
