/* nn-tensor.c - tensor allocation, sizes and limits */
#include "config.h"

#include <string.h>

#include "nn-tensor.h"
#include "nn-onnx.h"

G_DEFINE_QUARK (nn-error-quark, nn_error)

size_t
nn_dtype_size (NnDType dtype)
{
  switch (dtype)
    {
    case NN_DTYPE_FLOAT: return 4;
    case NN_DTYPE_INT32: return 4;
    case NN_DTYPE_INT64: return 8;
    case NN_DTYPE_UINT8:
    case NN_DTYPE_INT8:
    case NN_DTYPE_BOOL:  return 1;
    case NN_DTYPE_UNDEFINED:
    default:             return 0;
    }
}

gboolean
nn_dtype_supported (int dtype)
{
  return dtype == NN_DTYPE_FLOAT || dtype == NN_DTYPE_UINT8 || dtype == NN_DTYPE_INT8 ||
         dtype == NN_DTYPE_INT32 || dtype == NN_DTYPE_INT64 || dtype == NN_DTYPE_BOOL;
}

const char *
nn_dtype_name (NnDType dtype)
{
  switch (dtype)
    {
    case NN_DTYPE_FLOAT: return "float";
    case NN_DTYPE_UINT8: return "uint8";
    case NN_DTYPE_INT8:  return "int8";
    case NN_DTYPE_INT32: return "int32";
    case NN_DTYPE_INT64: return "int64";
    case NN_DTYPE_BOOL:  return "bool";
    case NN_DTYPE_UNDEFINED:
    default:             return "undefined";
    }
}

int64_t
nn_tensor_numel (const NnTensor *t)
{
  int64_t n = 1;

  for (int i = 0; i < t->ndim; i++)
    n *= t->ne[i];
  return n;
}

gboolean
nn_shape_numel_checked (int ndim, const int64_t *ne, int64_t *numel, GError **error)
{
  int64_t n = 1;

  if (ndim < 0 || ndim > NN_MAX_DIMS)
    {
      g_set_error (error, NN_ERROR, NN_ERROR_UNSUPPORTED,
                   "tensor rank %d is outside what magpie handles (0 to %d)", ndim, NN_MAX_DIMS);
      return FALSE;
    }
  for (int i = 0; i < ndim; i++)
    {
      if (ne[i] < 0 || ne[i] > NN_MAX_ELEMENTS)
        {
          g_set_error (error, NN_ERROR, NN_ERROR_INVALID,
                       "tensor dimension %" G_GINT64_FORMAT " is out of range", ne[i]);
          return FALSE;
        }
      /* both factors are <= 2^28, so the product fits in int64 before the check */
      n *= ne[i];
      if (n > NN_MAX_ELEMENTS)
        {
          g_set_error (error, NN_ERROR, NN_ERROR_INVALID,
                       "tensor of %" G_GINT64_FORMAT "+ elements exceeds the limit of %"
                       G_GINT64_FORMAT, n, NN_MAX_ELEMENTS);
          return FALSE;
        }
    }
  if (numel)
    *numel = n;
  return TRUE;
}

char *
nn_shape_to_string (int ndim, const int64_t *ne)
{
  GString *s = g_string_new ("(");

  for (int i = 0; i < ndim; i++)
    g_string_append_printf (s, "%s%" G_GINT64_FORMAT, i ? "," : "", ne[i]);
  g_string_append_c (s, ')');
  return g_string_free (s, FALSE);
}

NnTensor *
nn_tensor_new (NnDType dtype, int ndim, const int64_t *ne)
{
  NnTensor *t = g_new0 (NnTensor, 1);
  int64_t n;
  size_t bytes;

  g_return_val_if_fail (ndim >= 0 && ndim <= NN_MAX_DIMS, NULL);
  t->dtype = dtype;
  t->ndim = ndim;
  if (ndim)
    memcpy (t->ne, ne, ndim * sizeof (int64_t));
  n = nn_tensor_numel (t);
  bytes = MAX ((size_t) n * nn_dtype_size (dtype), 1);
  bytes = (bytes + NN_ALIGN - 1) / NN_ALIGN * NN_ALIGN;
  t->data = g_aligned_alloc0 (bytes, 1, NN_ALIGN);
  return t;
}

void
nn_tensor_free (NnTensor *t)
{
  if (!t)
    return;
  g_aligned_free (t->data);
  g_free ((char *) t->name);
  g_free (t);
}

NnTensor *
nn_tensor_dup (const NnTensor *src)
{
  NnTensor *t = nn_tensor_new (src->dtype, src->ndim, src->ne);

  memcpy (t->data, src->data, nn_tensor_numel (src) * nn_dtype_size (src->dtype));
  t->name = g_strdup (src->name);
  return t;
}

gboolean
nn_tensor_same_shape (const NnTensor *a, const NnTensor *b)
{
  if (a->ndim != b->ndim)
    return FALSE;
  for (int i = 0; i < a->ndim; i++)
    if (a->ne[i] != b->ne[i])
      return FALSE;
  return TRUE;
}

int64_t
nn_tensor_get_int (const NnTensor *t, int64_t i)
{
  switch (t->dtype)
    {
    case NN_DTYPE_INT64: return ((const int64_t *) t->data)[i];
    case NN_DTYPE_INT32: return ((const int32_t *) t->data)[i];
    case NN_DTYPE_UINT8: return ((const uint8_t *) t->data)[i];
    case NN_DTYPE_BOOL:  return ((const uint8_t *) t->data)[i];
    case NN_DTYPE_INT8:  return ((const int8_t *) t->data)[i];
    case NN_DTYPE_FLOAT: return (int64_t) ((const float *) t->data)[i];
    case NN_DTYPE_UNDEFINED:
    default:             return 0;
    }
}

double
nn_tensor_get_double (const NnTensor *t, int64_t i)
{
  if (t->dtype == NN_DTYPE_FLOAT)
    return ((const float *) t->data)[i];
  return (double) nn_tensor_get_int (t, i);
}

NnTensor *
nn_tensor_load_pb (const char *path, GError **error)
{
  g_autofree char *contents = NULL;
  gsize len = 0;

  if (!g_file_get_contents (path, &contents, &len, error))
    return NULL;
  return nn_tensor_from_pb_data ((const guint8 *) contents, len, error);
}
