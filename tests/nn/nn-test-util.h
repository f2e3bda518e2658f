/* nn-test-util.h - helpers the engine tests share: data locations, tensor comparison */
#pragma once

#include "nn.h"

G_BEGIN_DECLS

/* The libonnx-testdata root, or NULL when it is not installed. */
const char *nn_test_onnx_data      (void);
/* A path under the shared test data (MAGPIE_SHARED_DATA), or NULL when absent. */
char       *nn_test_shared         (const char      *relative);
/* numpy.testing.assert_allclose for floats (|a-b| <= atol + rtol*|b|), exact for the
 * rest. Returns NULL when @got matches @want, else a description of the first mismatch. */
char       *nn_test_compare        (const NnTensor  *got,
                                    const NnTensor  *want,
                                    double           rtol,
                                    double           atol);
/* Fills a tensor with uniform values in [lo, hi) from @rand. */
void        nn_test_fill_random    (NnTensor        *t,
                                    GRand           *rand,
                                    double           lo,
                                    double           hi);

G_END_DECLS

G_BEGIN_DECLS

/* A tiny protobuf writer, enough to build ONNX models by hand in tests. */
void        pb_varint_field        (GByteArray      *buf,
                                    guint            field,
                                    guint64          v);
void        pb_bytes_field         (GByteArray      *buf,
                                    guint            field,
                                    const void      *data,
                                    gsize            len);
void        pb_string_field        (GByteArray      *buf,
                                    guint            field,
                                    const char      *s);
/* Appends @msg as a length-delimited field and frees it. */
void        pb_msg_field           (GByteArray      *buf,
                                    guint            field,
                                    GByteArray      *msg);
/* A ValueInfoProto for a float tensor; dims < 0 become a "N" dim_param. */
GByteArray *nn_test_value_info     (const char      *name,
                                    int              elem_type,
                                    int              ndim,
                                    const int64_t   *dims);
/* A ModelProto (IR 7, opset 13) around a GraphProto's bytes. */
GBytes     *nn_test_model          (GByteArray      *graph,
                                    int              opset);

G_END_DECLS
