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
