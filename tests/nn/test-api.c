/* test-api.c - the public engine API: names and shapes, dynamic batch, plan reuse, input
 * checks, threads, fast and reference paths agreeing */
#include "config.h"

#include <string.h>

#include "nn-test-util.h"

/* Y = Relu (X), X float (N, 4) */
static NnModel *
relu_model (void)
{
  GByteArray *graph = g_byte_array_new ();
  GByteArray *node = g_byte_array_new ();
  const int64_t dims[2] = { -1, 4 };
  g_autoptr(GBytes) bytes = NULL;
  g_autoptr(GError) error = NULL;
  NnModel *model;
  gsize len;
  const guint8 *data;

  pb_string_field (node, 1, "X");
  pb_string_field (node, 2, "Y");
  pb_string_field (node, 4, "Relu");
  pb_msg_field (graph, 1, node);
  pb_msg_field (graph, 11, nn_test_value_info ("X", 1, 2, dims));
  pb_msg_field (graph, 12, nn_test_value_info ("Y", 1, 2, dims));
  bytes = nn_test_model (graph, 13);
  data = g_bytes_get_data (bytes, &len);
  model = nn_model_new_from_data (data, len, &error);
  g_assert_no_error (error);
  return model;
}

static void
test_describe (void)
{
  g_autoptr(NnModel) model = relu_model ();
  int64_t ne[NN_MAX_DIMS];

  g_assert_cmpuint (nn_model_get_n_inputs (model), ==, 1);
  g_assert_cmpuint (nn_model_get_n_outputs (model), ==, 1);
  g_assert_cmpstr (nn_model_get_input_name (model, 0), ==, "X");
  g_assert_cmpstr (nn_model_get_output_name (model, 0), ==, "Y");
  g_assert_cmpint (nn_model_get_input_shape (model, 0, ne), ==, 2);
  g_assert_cmpint (ne[0], ==, -1);
  g_assert_cmpint (ne[1], ==, 4);
  g_assert_cmpint (nn_model_get_input_dtype (model, 0), ==, NN_DTYPE_FLOAT);
  g_assert_cmpint (nn_model_get_threads (model), >=, 1);
  nn_model_set_threads (model, 2);
  g_assert_cmpint (nn_model_get_threads (model), ==, 2);
  nn_model_set_threads (model, 0);
  g_assert_cmpint (nn_model_get_threads (model), ==, (int) g_get_num_processors ());
  g_assert_nonnull (strstr (nn_supported_ops (), "Conv, Div"));
}

static void
test_batches (void)
{
  g_autoptr(NnModel) model = relu_model ();
  g_autoptr(GError) error = NULL;

  for (int round = 0; round < 2; round++)
    for (int64_t n = 1; n <= 5; n += 2)
      {
        int64_t ne[2] = { n, 4 };
        g_autoptr(NnTensor) x = nn_tensor_new (NN_DTYPE_FLOAT, 2, ne);
        const NnTensor *y;
        const void *first;

        for (int64_t i = 0; i < n * 4; i++)
          ((float *) x->data)[i] = (float) (i % 3) - 1.0f;
        g_assert_true (nn_model_run (model, x, 1, &error));
        g_assert_no_error (error);
        y = nn_model_get_output (model, 0);
        g_assert_cmpint (y->ndim, ==, 2);
        g_assert_cmpint (y->ne[0], ==, n);
        for (int64_t i = 0; i < n * 4; i++)
          g_assert_cmpfloat (((float *) y->data)[i], ==, MAX ((float) (i % 3) - 1.0f, 0.0f));
        /* the same shape again reuses the plan and its buffers */
        first = y->data;
        g_assert_true (nn_model_run (model, x, 1, &error));
        g_assert_true (nn_model_get_output (model, 0)->data == first);
        g_assert_cmpint (nn_model_get_output_shape (model, 0, ne), ==, 2);
        g_assert_cmpint (ne[0], ==, n);
      }
}

static void
test_bad_inputs (void)
{
  g_autoptr(NnModel) model = relu_model ();
  g_autoptr(GError) error = NULL;
  int64_t wrong[2] = { 2, 5 }, rank3[3] = { 1, 2, 4 }, ok[2] = { 2, 4 };
  g_autoptr(NnTensor) a = nn_tensor_new (NN_DTYPE_FLOAT, 2, wrong);
  g_autoptr(NnTensor) b = nn_tensor_new (NN_DTYPE_FLOAT, 3, rank3);
  g_autoptr(NnTensor) c = nn_tensor_new (NN_DTYPE_INT64, 2, ok);

  g_assert_false (nn_model_run (model, a, 1, &error));
  g_assert_error (error, NN_ERROR, NN_ERROR_INPUT);
  g_assert_nonnull (strstr (error->message, "'X'"));
  g_clear_error (&error);
  g_assert_false (nn_model_run (model, b, 1, &error));
  g_assert_error (error, NN_ERROR, NN_ERROR_INPUT);
  g_clear_error (&error);
  g_assert_false (nn_model_run (model, c, 1, &error));
  g_assert_error (error, NN_ERROR, NN_ERROR_INPUT);
  g_clear_error (&error);
  g_assert_false (nn_model_run (model, NULL, 0, &error));
  g_assert_error (error, NN_ERROR, NN_ERROR_INPUT);
}

static void
test_squeezenet_batch (void)
{
  g_autofree char *path = nn_test_shared ("models/squeezenet1.1-fp32.onnx");
  g_autoptr(NnModel) model = NULL;
  g_autoptr(GError) error = NULL;
  int64_t ne[NN_MAX_DIMS];

  if (!path)
    {
      g_test_skip ("no squeezenet in the shared data");
      return;
    }
  model = nn_model_new_from_file (path, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (nn_model_get_input_name (model, 0), ==, "data_0");
  g_assert_cmpint (nn_model_get_input_shape (model, 0, ne), ==, 4);
  g_assert_cmpint (ne[1], ==, 3);
  g_assert_cmpint (ne[2], ==, 224);
  /* planned at load for the declared shape */
  g_assert_cmpint (nn_model_get_output_shape (model, 0, ne), ==, 4);
  g_assert_cmpint (ne[1], ==, 1000);
}

static void
int64_initializer (GByteArray *graph, const char *name, int ndim, const int64_t *dims,
                   const int64_t *values, int n)
{
  GByteArray *t = g_byte_array_new ();

  for (int i = 0; i < ndim; i++)
    pb_varint_field (t, 1, (guint64) dims[i]);
  pb_varint_field (t, 2, NN_DTYPE_INT64);
  pb_string_field (t, 8, name);
  pb_bytes_field (t, 9, values, n * sizeof (int64_t));
  pb_msg_field (graph, 5, t);
}

static void
add_node (GByteArray *graph, const char *op, const char *a, const char *b, const char *out,
          int64_t axis)
{
  GByteArray *node = g_byte_array_new ();

  pb_string_field (node, 1, a);
  if (b)
    pb_string_field (node, 1, b);
  pb_string_field (node, 2, out);
  pb_string_field (node, 4, op);
  if (axis >= 0)
    {
      GByteArray *attr = g_byte_array_new ();

      pb_string_field (attr, 1, "axis");
      pb_varint_field (attr, 20, 2);
      pb_varint_field (attr, 3, (guint64) axis);
      pb_msg_field (node, 5, attr);
    }
  pb_msg_field (graph, 1, node);
}

/* PyTorch's flatten with a dynamic batch: Shape -> Gather -> Unsqueeze -> Concat -> Reshape,
 * folded to a constant shape for each batch size the model sees */
static void
test_shape_subgraph (void)
{
  GByteArray *graph = g_byte_array_new ();
  const int64_t in_dims[3] = { -1, 2, 3 }, out_dims[2] = { -1, 6 };
  const int64_t zero = 0, minus_one = -1, one_dim = 1;
  g_autoptr(GBytes) bytes = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(NnModel) model = NULL;
  gsize len;
  const guint8 *data;

  add_node (graph, "Shape", "X", NULL, "shape", -1);
  add_node (graph, "Gather", "shape", "zero", "batch", 0);
  add_node (graph, "Unsqueeze", "batch", "axes0", "batch1", -1);
  add_node (graph, "Concat", "batch1", "minus_one", "target", 0);
  add_node (graph, "Reshape", "X", "target", "Y", -1);
  int64_initializer (graph, "zero", 0, NULL, &zero, 1);
  int64_initializer (graph, "axes0", 1, &one_dim, &zero, 1);
  int64_initializer (graph, "minus_one", 1, &one_dim, &minus_one, 1);
  pb_msg_field (graph, 11, nn_test_value_info ("X", 1, 3, in_dims));
  pb_msg_field (graph, 12, nn_test_value_info ("Y", 1, 2, out_dims));
  bytes = nn_test_model (graph, 13);
  data = g_bytes_get_data (bytes, &len);
  model = nn_model_new_from_data (data, len, &error);
  g_assert_no_error (error);
  for (int64_t n = 1; n <= 3; n += 2)
    {
      int64_t ne[3] = { n, 2, 3 };
      g_autoptr(NnTensor) x = nn_tensor_new (NN_DTYPE_FLOAT, 3, ne);
      const NnTensor *y;

      for (int64_t i = 0; i < n * 6; i++)
        ((float *) x->data)[i] = (float) i;
      g_assert_true (nn_model_run (model, x, 1, &error));
      y = nn_model_get_output (model, 0);
      g_assert_cmpint (y->ndim, ==, 2);
      g_assert_cmpint (y->ne[0], ==, n);
      g_assert_cmpint (y->ne[1], ==, 6);
      g_assert_cmpfloat (((float *) y->data)[n * 6 - 1], ==, (float) (n * 6 - 1));
    }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/nn/api/describe", test_describe);
  g_test_add_func ("/nn/api/batches", test_batches);
  g_test_add_func ("/nn/api/bad-inputs", test_bad_inputs);
  g_test_add_func ("/nn/api/squeezenet", test_squeezenet_batch);
  g_test_add_func ("/nn/api/shape-subgraph", test_shape_subgraph);
  return g_test_run ();
}
