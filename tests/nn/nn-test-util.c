/* nn-test-util.c - helpers the engine tests share */
#include "config.h"

#include <math.h>

#include "nn-tensor.h"
#include "nn-test-util.h"

const char *
nn_test_onnx_data (void)
{
  const char *dir = g_getenv ("MAGPIE_ONNX_TESTDATA");

  if (!dir)
    dir = "/usr/share/libonnx-testdata/data";
  return g_file_test (dir, G_FILE_TEST_IS_DIR) ? dir : NULL;
}

char *
nn_test_shared (const char *relative)
{
  const char *root = g_getenv ("MAGPIE_SHARED_DATA");
  char *path;

  if (!root)
    return NULL;
  path = g_build_filename (root, relative, NULL);
  if (!g_file_test (path, G_FILE_TEST_EXISTS))
    g_clear_pointer (&path, g_free);
  return path;
}

char *
nn_test_compare (const NnTensor *got, const NnTensor *want, double rtol, double atol)
{
  int64_t n = nn_tensor_numel (want);

  if (got->dtype != want->dtype)
    return g_strdup_printf ("type %s, expected %s", nn_dtype_name (got->dtype),
                            nn_dtype_name (want->dtype));
  if (!nn_tensor_same_shape (got, want))
    {
      g_autofree char *a = nn_shape_to_string (got->ndim, got->ne);
      g_autofree char *b = nn_shape_to_string (want->ndim, want->ne);

      return g_strdup_printf ("shape %s, expected %s", a, b);
    }
  for (int64_t i = 0; i < n; i++)
    {
      if (want->dtype == NN_DTYPE_FLOAT)
        {
          double a = ((const float *) got->data)[i], b = ((const float *) want->data)[i];

          if (isnan (a) && isnan (b))
            continue;
          if (isinf (a) && isinf (b) && (a > 0) == (b > 0))
            continue;
          if (!(fabs (a - b) <= atol + rtol * fabs (b)))
            return g_strdup_printf ("element %" G_GINT64_FORMAT ": %.9g, expected %.9g", i, a, b);
        }
      else if (nn_tensor_get_int (got, i) != nn_tensor_get_int (want, i))
        return g_strdup_printf ("element %" G_GINT64_FORMAT ": %" G_GINT64_FORMAT ", expected %"
                                G_GINT64_FORMAT, i, nn_tensor_get_int (got, i),
                                nn_tensor_get_int (want, i));
    }
  return NULL;
}

void
nn_test_fill_random (NnTensor *t, GRand *rand, double lo, double hi)
{
  int64_t n = nn_tensor_numel (t);

  for (int64_t i = 0; i < n; i++)
    {
      double v = g_rand_double_range (rand, lo, hi);

      switch (t->dtype)
        {
        case NN_DTYPE_FLOAT: ((float *) t->data)[i] = (float) v; break;
        case NN_DTYPE_INT64: ((int64_t *) t->data)[i] = (int64_t) floor (v); break;
        case NN_DTYPE_INT32: ((int32_t *) t->data)[i] = (int32_t) floor (v); break;
        default:             ((guint8 *) t->data)[i] = (guint8) floor (v); break;
        }
    }
}
