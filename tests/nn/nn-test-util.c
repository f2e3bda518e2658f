/* nn-test-util.c - helpers the engine tests share */
#include "config.h"

#include <math.h>
#include <string.h>

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

static void
pb_varint (GByteArray *buf, guint64 v)
{
  do
    {
      guint8 b = v & 0x7f;

      v >>= 7;
      if (v)
        b |= 0x80;
      g_byte_array_append (buf, &b, 1);
    }
  while (v);
}

void
pb_varint_field (GByteArray *buf, guint field, guint64 v)
{
  pb_varint (buf, (guint64) field << 3);
  pb_varint (buf, v);
}

void
pb_bytes_field (GByteArray *buf, guint field, const void *data, gsize len)
{
  pb_varint (buf, ((guint64) field << 3) | 2);
  pb_varint (buf, len);
  g_byte_array_append (buf, data, (guint) len);
}

void
pb_string_field (GByteArray *buf, guint field, const char *s)
{
  pb_bytes_field (buf, field, s, strlen (s));
}

void
pb_msg_field (GByteArray *buf, guint field, GByteArray *msg)
{
  pb_bytes_field (buf, field, msg->data, msg->len);
  g_byte_array_unref (msg);
}

GByteArray *
nn_test_value_info (const char *name, int elem_type, int ndim, const int64_t *dims)
{
  GByteArray *vi = g_byte_array_new ();
  GByteArray *type = g_byte_array_new ();
  GByteArray *tensor = g_byte_array_new ();
  GByteArray *shape = g_byte_array_new ();

  for (int i = 0; i < ndim; i++)
    {
      GByteArray *dim = g_byte_array_new ();

      if (dims[i] < 0)
        pb_string_field (dim, 2, "N");
      else
        pb_varint_field (dim, 1, (guint64) dims[i]);
      pb_msg_field (shape, 1, dim);
    }
  pb_varint_field (tensor, 1, elem_type);
  pb_msg_field (tensor, 2, shape);
  pb_msg_field (type, 1, tensor);
  pb_string_field (vi, 1, name);
  pb_msg_field (vi, 2, type);
  return vi;
}

GBytes *
nn_test_model (GByteArray *graph, int opset)
{
  GByteArray *model = g_byte_array_new ();
  GByteArray *os = g_byte_array_new ();

  pb_varint_field (model, 1, 7);
  pb_string_field (os, 1, "");
  pb_varint_field (os, 2, opset);
  pb_msg_field (model, 8, os);
  pb_msg_field (model, 7, graph);
  return g_byte_array_free_to_bytes (model);
}
