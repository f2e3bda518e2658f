/* test-loader.c - bad model files fail cleanly: truncated at many offsets, randomly
 * corrupted, unsupported ops (with the op, node and supported list in the message),
 * absurd dims, oversized raw data, missing values */
#include "config.h"

#include <glib/gstdio.h>
#include <string.h>

#include "nn-test-util.h"

static GBytes *
shared_model (const char *rel)
{
  g_autofree char *path = nn_test_shared (rel);
  char *contents;
  gsize len;

  if (!path || !g_file_get_contents (path, &contents, &len, NULL))
    return NULL;
  return g_bytes_new_take (contents, len);
}

/* Loading must either fail with a GError or give a model that runs. */
static gboolean
load_and_maybe_run (const guint8 *data, gsize len)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(NnModel) model = nn_model_new_from_data (data, len, &error);

  if (!model)
    {
      g_assert_nonnull (error);
      g_assert_true (error->domain == NN_ERROR);
      g_assert_nonnull (error->message);
      return FALSE;
    }
  g_assert_no_error (error);
  return TRUE;
}

/* @graph (consumed) as a model of opset 13, loaded. */
static NnModel *
load_graph (GByteArray  *graph,
            GError     **error)
{
  g_autoptr(GBytes) bytes = nn_test_model (graph, 13);
  gsize len;
  const guint8 *data = g_bytes_get_data (bytes, &len);

  return nn_model_new_from_data (data, len, error);
}

static void
test_truncated (void)
{
  g_autoptr(GBytes) bytes = shared_model ("models/mnist-8.onnx");
  gsize len;
  const guint8 *data;
  int loaded = 0, n = 0;

  if (!bytes)
    {
      g_test_skip ("no mnist-8.onnx in the shared data");
      return;
    }
  data = g_bytes_get_data (bytes, &len);
  for (gsize cut = 0; cut < len; cut += cut < 512 ? 1 : 37)
    {
      /* a copy of exactly @cut bytes, so that reading past it is a valgrind error */
      g_autofree guint8 *copy = g_memdup2 (data, cut);

      loaded += load_and_maybe_run (copy, cut);
      n++;
    }
  g_test_message ("%d truncations, %d of them still loaded", n, loaded);
  g_assert_cmpint (loaded, <, n / 10);
  g_assert_true (load_and_maybe_run (data, len));
}

static void
test_corrupt (void)
{
  g_autoptr(GBytes) bytes = shared_model ("models/mnist-8.onnx");
  g_autoptr(GRand) rand = g_rand_new_with_seed (1234);
  gsize len;
  const guint8 *data;

  if (!bytes)
    {
      g_test_skip ("no mnist-8.onnx in the shared data");
      return;
    }
  data = g_bytes_get_data (bytes, &len);
  for (int i = 0; i < 300; i++)
    {
      g_autofree guint8 *copy = g_memdup2 (data, len);
      int flips = g_rand_int_range (rand, 1, 8);

      for (int k = 0; k < flips; k++)
        copy[g_rand_int_range (rand, 0, (gint32) len)] = (guint8) g_rand_int (rand);
      load_and_maybe_run (copy, len);
    }
}

static void
test_garbage (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(NnModel) model = NULL;
  const char *text = "this is not a model\n";

  model = nn_model_new_from_data (text, strlen (text), &error);
  g_assert_null (model);
  g_assert_error (error, NN_ERROR, NN_ERROR_PARSE);
  g_clear_error (&error);

  model = nn_model_new_from_data ("", 0, &error);
  g_assert_null (model);
  g_assert_nonnull (error);
  g_clear_error (&error);

  model = nn_model_new_from_file ("/nonexistent/model.onnx", &error);
  g_assert_null (model);
  g_assert_error (error, NN_ERROR, NN_ERROR_IO);
}

static GByteArray *
relu_graph (const char *op)
{
  GByteArray *graph = g_byte_array_new ();
  GByteArray *node = g_byte_array_new ();
  const int64_t dims[2] = { -1, 4 };

  pb_string_field (node, 1, "X");
  pb_string_field (node, 2, "Y");
  pb_string_field (node, 3, "scale_up_1");
  pb_string_field (node, 4, op);
  pb_msg_field (graph, 1, node);
  pb_string_field (graph, 2, "g");
  pb_msg_field (graph, 11, nn_test_value_info ("X", 1, 2, dims));
  pb_msg_field (graph, 12, nn_test_value_info ("Y", 1, 2, dims));
  return graph;
}

static void
test_unsupported_op (void)
{
  g_autoptr(GBytes) bytes = nn_test_model (relu_graph ("Resize"), 13);
  g_autoptr(GError) error = NULL;
  g_autoptr(NnModel) model = NULL;
  gsize len;
  const guint8 *data = g_bytes_get_data (bytes, &len);

  model = nn_model_new_from_data (data, len, &error);
  g_assert_null (model);
  g_assert_error (error, NN_ERROR, NN_ERROR_UNSUPPORTED);
  g_assert_nonnull (strstr (error->message, "model uses op 'Resize' (node 'scale_up_1') which "
                                            "magpie does not support yet (supported: Add, "
                                            "AveragePool, "));
  g_assert_nonnull (strstr (error->message, "Unsqueeze)"));
}

static void
test_opset_and_ir (void)
{
  g_autoptr(GBytes) bytes = nn_test_model (relu_graph ("Relu"), 99);
  g_autoptr(GError) error = NULL;
  g_autoptr(NnModel) model = NULL;
  gsize len;
  const guint8 *data = g_bytes_get_data (bytes, &len);

  model = nn_model_new_from_data (data, len, &error);
  g_assert_null (model);
  g_assert_error (error, NN_ERROR, NN_ERROR_UNSUPPORTED);
  g_assert_nonnull (strstr (error->message, "opset 99"));
}

static GByteArray *
tensor_proto (const char *name, int ndim, const guint64 *dims, gsize raw_len)
{
  GByteArray *t = g_byte_array_new ();
  g_autofree guint8 *raw = g_malloc0 (MAX (raw_len, 1));

  for (int i = 0; i < ndim; i++)
    pb_varint_field (t, 1, dims[i]);
  pb_varint_field (t, 2, 1);
  pb_string_field (t, 8, name);
  pb_bytes_field (t, 9, raw, raw_len);
  return t;
}

static void
expect_bad_initializer (int ndim, const guint64 *dims, gsize raw_len, const char *fragment)
{
  GByteArray *graph = relu_graph ("Relu");
  g_autoptr(GError) error = NULL;
  g_autoptr(NnModel) model = NULL;

  pb_msg_field (graph, 5, tensor_proto ("W", ndim, dims, raw_len));
  model = load_graph (graph, &error);
  g_assert_null (model);
  g_assert_error (error, NN_ERROR, NN_ERROR_INVALID);
  if (!strstr (error->message, fragment))
    g_error ("'%s' does not mention '%s'", error->message, fragment);
}

static void
test_absurd_dims (void)
{
  const guint64 huge[1] = { G_GUINT64_CONSTANT (1) << 40 };
  const guint64 product[3] = { 65536, 65536, 65536 };
  const guint64 negative[2] = { 4, (guint64) -3 };
  const guint64 small[2] = { 2, 3 };

  expect_bad_initializer (1, huge, 4, "out of range");
  expect_bad_initializer (3, product, 4, "exceeds the limit");
  expect_bad_initializer (2, negative, 4, "out of range");
  /* raw data that does not match the shape, both ways */
  expect_bad_initializer (2, small, 4, "raw data");
  expect_bad_initializer (2, small, 4096, "raw data");
}

/* Found by tests/fuzz/fuzz-onnx: Reshape multiplied the target dims before checking each,
 * and 33554433 × 2^56 overflowed int64 (undefined behaviour) before the size check. */
static void
test_reshape_overflow (void)
{
  const gint64 target[2] = { 33554433, G_GINT64_CONSTANT (72057594037927940) };
  const int64_t dims[2] = { 1, 4 };
  GByteArray *graph = g_byte_array_new ();
  GByteArray *node = g_byte_array_new ();
  GByteArray *shape = g_byte_array_new ();
  g_autoptr(GError) error = NULL;
  g_autoptr(NnModel) model = NULL;
  guint8 raw[sizeof target];

  for (int i = 0; i < 2; i++)
    {
      guint64 le = GUINT64_TO_LE ((guint64) target[i]);

      memcpy (raw + i * 8, &le, 8);
    }
  pb_varint_field (shape, 1, 2);              /* dims: [2] */
  pb_varint_field (shape, 2, 7);              /* INT64 */
  pb_string_field (shape, 8, "shape");
  pb_bytes_field (shape, 9, raw, sizeof raw);
  pb_string_field (node, 1, "X");
  pb_string_field (node, 1, "shape");
  pb_string_field (node, 2, "Y");
  pb_string_field (node, 4, "Reshape");
  pb_msg_field (graph, 1, node);
  pb_string_field (graph, 2, "g");
  pb_msg_field (graph, 5, shape);
  pb_msg_field (graph, 11, nn_test_value_info ("X", 1, 2, dims));
  pb_msg_field (graph, 12, nn_test_value_info ("Y", 1, 2, dims));
  model = load_graph (graph, &error);
  g_assert_null (model);
  g_assert_nonnull (error);
  g_assert_true (error->domain == NN_ERROR);
  g_assert_nonnull (strstr (error->message, "shape is too large"));
}

static GByteArray *
add_node (const char *a, const char *b, const char *out)
{
  GByteArray *node = g_byte_array_new ();

  pb_string_field (node, 1, a);
  pb_string_field (node, 1, b);
  pb_string_field (node, 2, out);
  pb_string_field (node, 4, "Add");
  return node;
}

/* Found by tests/fuzz/fuzz-onnx (ASan): constant folding freed each node it folded but left
 * it in the graph, so when a later constant node failed to plan, freeing the graph freed the
 * folded ones again. Here (2) + (2) folds, then (2) + (3) cannot broadcast. */
static void
test_fold_failure (void)
{
  const int64_t dims[1] = { 2 };
  const guint64 two[1] = { 2 }, three[1] = { 3 };
  GByteArray *graph = g_byte_array_new ();
  g_autoptr(GError) error = NULL;
  g_autoptr(NnModel) model = NULL;

  pb_msg_field (graph, 1, add_node ("k1", "k2", "a"));
  pb_msg_field (graph, 1, add_node ("a", "k3", "b"));
  pb_msg_field (graph, 1, add_node ("X", "b", "Y"));
  pb_string_field (graph, 2, "g");
  pb_msg_field (graph, 5, tensor_proto ("k1", 1, two, 2 * sizeof (float)));
  pb_msg_field (graph, 5, tensor_proto ("k2", 1, two, 2 * sizeof (float)));
  pb_msg_field (graph, 5, tensor_proto ("k3", 1, three, 3 * sizeof (float)));
  pb_msg_field (graph, 11, nn_test_value_info ("X", 1, 1, dims));
  pb_msg_field (graph, 12, nn_test_value_info ("Y", 1, 1, dims));
  model = load_graph (graph, &error);
  g_assert_null (model);
  g_assert_nonnull (error);
  g_assert_true (error->domain == NN_ERROR);
  g_test_message ("%s", error->message);
}

/* Found by tests/fuzz/fuzz-onnx (ASan, heap-buffer-overflow): MatMul broadcast its batch dims
 * with MAX, so an empty batch (0) against a missing one (1) became 1 and the kernel read a
 * whole (M, K) matrix from a tensor of 0 values. Here (0, 3, 2) × (2, 5) is folded. */
static void
test_matmul_empty_batch (void)
{
  const guint64 a_dims[3] = { 0, 3, 2 }, w_dims[2] = { 2, 5 };
  const int64_t x_dims[1] = { 5 };
  GByteArray *graph = g_byte_array_new ();
  GByteArray *matmul = g_byte_array_new ();
  g_autoptr(GError) error = NULL;
  g_autoptr(NnModel) model = NULL;
  int64_t ne[8] = { 0 };

  pb_string_field (matmul, 1, "A");
  pb_string_field (matmul, 1, "W");
  pb_string_field (matmul, 2, "m");
  pb_string_field (matmul, 4, "MatMul");
  pb_msg_field (graph, 1, matmul);
  pb_msg_field (graph, 1, add_node ("X", "m", "Y"));
  pb_string_field (graph, 2, "g");
  pb_msg_field (graph, 5, tensor_proto ("A", 3, a_dims, 0));
  pb_msg_field (graph, 5, tensor_proto ("W", 2, w_dims, 10 * sizeof (float)));
  pb_msg_field (graph, 11, nn_test_value_info ("X", 1, 1, x_dims));
  pb_msg_field (graph, 12, nn_test_value_info ("Y", 1, 1, x_dims));
  model = load_graph (graph, &error);
  if (model == NULL)
    {
      /* Refusing the empty product is fine too, as long as it is an NN_ERROR. */
      g_assert_true (error->domain == NN_ERROR);
      g_test_message ("%s", error->message);
      return;
    }
  g_assert_cmpint (nn_model_get_output_shape (model, 0, ne), ==, 3);
  g_assert_cmpint (ne[0], ==, 0);
  g_assert_cmpint (ne[1], ==, 3);
  g_assert_cmpint (ne[2], ==, 5);
}

static void
test_undefined_value (void)
{
  GByteArray *graph = g_byte_array_new ();
  GByteArray *node = g_byte_array_new ();
  const int64_t dims[1] = { 4 };
  g_autoptr(GError) error = NULL;
  g_autoptr(NnModel) model = NULL;

  pb_string_field (node, 1, "X");
  pb_string_field (node, 1, "nowhere");
  pb_string_field (node, 2, "Y");
  pb_string_field (node, 4, "Add");
  pb_msg_field (graph, 1, node);
  pb_msg_field (graph, 11, nn_test_value_info ("X", 1, 1, dims));
  pb_msg_field (graph, 12, nn_test_value_info ("Y", 1, 1, dims));
  model = load_graph (graph, &error);
  g_assert_null (model);
  g_assert_error (error, NN_ERROR, NN_ERROR_INVALID);
  g_assert_nonnull (strstr (error->message, "nowhere"));
}

static void
test_bad_pb_tensor (void)
{
  g_autoptr(GError) error = NULL;
  const guint64 huge[2] = { G_GUINT64_CONSTANT (1) << 30, G_GUINT64_CONSTANT (1) << 30 };
  GByteArray *t = tensor_proto ("T", 2, huge, 16);
  NnTensor *tensor;

  tensor = nn_tensor_load_pb ("/nonexistent.pb", &error);
  g_assert_null (tensor);
  g_clear_error (&error);
  g_file_set_contents ("test-loader-bad.pb", (const char *) t->data, t->len, &error);
  g_assert_no_error (error);
  tensor = nn_tensor_load_pb ("test-loader-bad.pb", &error);
  g_assert_null (tensor);
  g_assert_error (error, NN_ERROR, NN_ERROR_INVALID);
  g_unlink ("test-loader-bad.pb");
  g_byte_array_unref (t);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/nn/loader/truncated", test_truncated);
  g_test_add_func ("/nn/loader/corrupt", test_corrupt);
  g_test_add_func ("/nn/loader/garbage", test_garbage);
  g_test_add_func ("/nn/loader/unsupported-op", test_unsupported_op);
  g_test_add_func ("/nn/loader/opset", test_opset_and_ir);
  g_test_add_func ("/nn/loader/absurd-dims", test_absurd_dims);
  g_test_add_func ("/nn/loader/undefined-value", test_undefined_value);
  g_test_add_func ("/nn/loader/reshape-overflow", test_reshape_overflow);
  g_test_add_func ("/nn/loader/fold-failure", test_fold_failure);
  g_test_add_func ("/nn/loader/matmul-empty-batch", test_matmul_empty_batch);
  g_test_add_func ("/nn/loader/bad-pb-tensor", test_bad_pb_tensor);
  return g_test_run ();
}
