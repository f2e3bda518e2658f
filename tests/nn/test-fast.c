/* test-fast.c - every fast kernel against the reference ones, on random shapes: XNNPACK
 * convolutions (groups, depthwise, pads, strides, dilations, fused Relu/Clip), max pools
 * and average pools (ceil_mode), global average pools, adds, channel concats and batch
 * norms in NHWC, fully connected layers; OpenBLAS im2col and direct depthwise
 * convolutions (1-D), Gemm and MatMul */
#include "config.h"

#include <math.h>
#include <string.h>

#include "nn-test-util.h"

#define N_ROUNDS 40

static void
attr_int (GByteArray *node, const char *name, int64_t v)
{
  GByteArray *a = g_byte_array_new ();

  pb_string_field (a, 1, name);
  pb_varint_field (a, 20, 2);
  pb_varint_field (a, 3, (guint64) v);
  pb_msg_field (node, 5, a);
}

static void
attr_float (GByteArray *node, const char *name, float v)
{
  GByteArray *a = g_byte_array_new ();
  guint8 tag = (2 << 3) | 5;

  pb_string_field (a, 1, name);
  pb_varint_field (a, 20, 1);
  g_byte_array_append (a, &tag, 1);
  g_byte_array_append (a, (const guint8 *) &v, 4);
  pb_msg_field (node, 5, a);
}

static void
attr_ints (GByteArray *node, const char *name, int n, const int64_t *v)
{
  GByteArray *a = g_byte_array_new ();

  pb_string_field (a, 1, name);
  pb_varint_field (a, 20, 7);
  for (int i = 0; i < n; i++)
    pb_varint_field (a, 8, (guint64) v[i]);
  pb_msg_field (node, 5, a);
}

static GByteArray *
node_new (GByteArray *graph, const char *op, const char *in0, const char *in1,
          const char *in2, const char *out)
{
  GByteArray *node = g_byte_array_new ();

  pb_string_field (node, 1, in0);
  if (in1)
    pb_string_field (node, 1, in1);
  if (in2)
    pb_string_field (node, 1, in2);
  pb_string_field (node, 2, out);
  pb_string_field (node, 4, op);
  return node;
}

static void
initializer_full (GByteArray *graph, const char *name, int ndim, const int64_t *dims,
                  GRand *rand, double lo, double hi)
{
  GByteArray *t = g_byte_array_new ();
  int64_t n = 1;
  g_autofree float *data = NULL;

  for (int i = 0; i < ndim; i++)
    {
      pb_varint_field (t, 1, (guint64) dims[i]);
      n *= dims[i];
    }
  data = g_new (float, MAX (n, 1));
  for (int64_t i = 0; i < n; i++)
    data[i] = (float) g_rand_double_range (rand, lo, hi);
  pb_varint_field (t, 2, 1);
  pb_string_field (t, 8, name);
  pb_bytes_field (t, 9, data, n * sizeof (float));
  pb_msg_field (graph, 5, t);
}

static void
initializer (GByteArray *graph, const char *name, int ndim, const int64_t *dims, GRand *rand)
{
  initializer_full (graph, name, ndim, dims, rand, -1.0, 1.0);
}

static void
io (GByteArray *graph, guint field, const char *name, int ndim, const int64_t *dims)
{
  int64_t unknown[NN_MAX_DIMS];

  /* outputs are declared without sizes: the engine infers them */
  for (int i = 0; i < ndim; i++)
    unknown[i] = field == 12 ? -1 : dims[i];
  pb_msg_field (graph, field, nn_test_value_info (name, 1, ndim, unknown));
}

/* Runs @graph (inputs X and, when @ne2, X2) on random data with the fast path and with the
 * reference kernels, and checks they agree. */
static void
compare (GByteArray *graph, int ndim, const int64_t *ne, int ndim2, const int64_t *ne2,
         GRand *rand, const char *what)
{
  g_autoptr(GBytes) bytes = nn_test_model (graph, 13);
  g_autoptr(GError) error = NULL;
  g_autoptr(NnModel) fast = NULL;
  g_autoptr(NnModel) ref = NULL;
  g_autoptr(NnTensor) x = nn_tensor_new (NN_DTYPE_FLOAT, ndim, ne);
  g_autoptr(NnTensor) x2 = ndim2 ? nn_tensor_new (NN_DTYPE_FLOAT, ndim2, ne2) : NULL;
  NnTensor ins[2];
  g_autofree char *diff = NULL;
  gsize len;
  const guint8 *data = g_bytes_get_data (bytes, &len);

  fast = nn_model_new_from_data (data, len, &error);
  g_assert_no_error (error);
  ref = nn_model_new_from_data (data, len, &error);
  g_assert_no_error (error);
  nn_model_set_fast (ref, FALSE);
  nn_model_set_threads (fast, 2);
  nn_test_fill_random (x, rand, -2.0, 2.0);
  ins[0] = *x;
  if (x2)
    {
      nn_test_fill_random (x2, rand, -2.0, 2.0);
      ins[1] = *x2;
    }
  for (int round = 0; round < 2; round++)
    {
      g_assert_true (nn_model_run (fast, ins, x2 ? 2 : 1, &error));
      g_assert_no_error (error);
    }
  g_assert_true (nn_model_run (ref, ins, x2 ? 2 : 1, &error));
  g_assert_no_error (error);
  diff = nn_test_compare (nn_model_get_output (fast, 0), nn_model_get_output (ref, 0), 1e-4, 1e-4);
  if (diff)
    g_error ("%s: %s", what, diff);
}

static int64_t
rnd (GRand *rand, int64_t lo, int64_t hi)
{
  return g_rand_int_range (rand, (gint32) lo, (gint32) hi + 1);
}

static void
conv_case (GRand *rand, int nsp)
{
  GByteArray *graph = g_byte_array_new ();
  GByteArray *node;
  int64_t G = rnd (rand, 0, 2) == 0 ? 1 : rnd (rand, 1, 3);
  gboolean depthwise = rnd (rand, 0, 2) == 0;
  int64_t cg = depthwise ? 1 : rnd (rand, 1, 5), mg = depthwise ? rnd (rand, 1, 2) : rnd (rand, 1, 6);
  int64_t C, M, N = rnd (rand, 1, 2), k[2], s[2], d[2], pads[4], in[4], w[4], b[1];
  int act = (int) rnd (rand, 0, 2);
  g_autofree char *what = NULL;

  if (depthwise)
    G = rnd (rand, 2, 8);
  C = G * cg;
  M = G * mg;
  for (int i = 0; i < nsp; i++)
    {
      k[i] = rnd (rand, 1, 3) * 2 - 1;
      s[i] = rnd (rand, 1, 2);
      d[i] = rnd (rand, 1, 2);
      pads[i] = rnd (rand, 0, 2);
      pads[nsp + i] = rnd (rand, 0, 2);
    }
  in[0] = N;
  in[1] = C;
  w[0] = M;
  w[1] = cg;
  for (int i = 0; i < nsp; i++)
    {
      in[2 + i] = rnd (rand, (k[i] - 1) * d[i] + 1, 17);
      w[2 + i] = k[i];
    }
  b[0] = M;
  what = g_strdup_printf ("conv%dd N%ld C%ld M%ld G%ld k%ld s%ld d%ld pads %ld,%ld act %d", nsp,
                          (long) N, (long) C, (long) M, (long) G, (long) k[0], (long) s[0],
                          (long) d[0], (long) pads[0], (long) pads[nsp], act);
  node = node_new (graph, "Conv", "X", "W", rnd (rand, 0, 3) ? "B" : NULL, act ? "T" : "Y");
  attr_int (node, "group", G);
  attr_ints (node, "kernel_shape", nsp, k);
  attr_ints (node, "strides", nsp, s);
  attr_ints (node, "dilations", nsp, d);
  attr_ints (node, "pads", 2 * nsp, pads);
  pb_msg_field (graph, 1, node);
  if (act == 1)
    pb_msg_field (graph, 1, node_new (graph, "Relu", "T", NULL, NULL, "Y"));
  if (act == 2)
    {
      node = node_new (graph, "Clip", "T", "lo", "hi", "Y");
      pb_msg_field (graph, 1, node);
      initializer (graph, "lo", 0, NULL, rand);
      initializer (graph, "hi", 0, NULL, rand);
    }
  initializer (graph, "W", 2 + nsp, w, rand);
  initializer (graph, "B", 1, b, rand);
  io (graph, 11, "X", 2 + nsp, in);
  io (graph, 12, "Y", 2 + nsp, in);
  compare (graph, 2 + nsp, in, 0, NULL, rand, what);
}

static void
test_conv2d (void)
{
  g_autoptr(GRand) rand = g_rand_new_with_seed (11);

  for (int i = 0; i < N_ROUNDS; i++)
    conv_case (rand, 2);
}

static void
test_conv1d (void)
{
  g_autoptr(GRand) rand = g_rand_new_with_seed (12);

  for (int i = 0; i < N_ROUNDS; i++)
    conv_case (rand, 1);
}

static void
pool_case (GRand *rand, const char *op)
{
  for (int i = 0; i < N_ROUNDS; i++)
    {
      GByteArray *graph = g_byte_array_new ();
      GByteArray *node = node_new (graph, op, "X", NULL, NULL, "Y");
      int64_t k[2] = { rnd (rand, 2, 3), rnd (rand, 1, 3) }, s[2] = { rnd (rand, 1, 2), rnd (rand, 1, 3) };
      /* at most half the kernel, as PyTorch requires, so no window is all padding */
      int64_t pads[4] = { rnd (rand, 0, k[0] / 2), rnd (rand, 0, k[1] / 2),
                          rnd (rand, 0, k[0] / 2), rnd (rand, 0, k[1] / 2) };
      int64_t in[4] = { rnd (rand, 1, 2), rnd (rand, 1, 9), rnd (rand, 4, 15), rnd (rand, 4, 15) };

      attr_ints (node, "kernel_shape", 2, k);
      attr_ints (node, "strides", 2, s);
      attr_ints (node, "pads", 4, pads);
      attr_int (node, "ceil_mode", rnd (rand, 0, 1));
      pb_msg_field (graph, 1, node);
      io (graph, 11, "X", 4, in);
      io (graph, 12, "Y", 4, in);
      compare (graph, 4, in, 0, NULL, rand, op);
    }
}

static void
test_maxpool (void)
{
  g_autoptr(GRand) rand = g_rand_new_with_seed (13);

  pool_case (rand, "MaxPool");
}

static void
test_avgpool (void)
{
  g_autoptr(GRand) rand = g_rand_new_with_seed (17);

  pool_case (rand, "AveragePool");
}

/* Conv -> BatchNormalization -> Relu, BN kept apart (channels-last kernel) */
static void
test_batchnorm (void)
{
  g_autoptr(GRand) rand = g_rand_new_with_seed (18);

  for (int i = 0; i < N_ROUNDS / 4; i++)
    {
      GByteArray *graph = g_byte_array_new ();
      GByteArray *node;
      int64_t in[4] = { rnd (rand, 1, 2), rnd (rand, 1, 6), rnd (rand, 3, 9), rnd (rand, 3, 9) };
      int64_t w[4] = { rnd (rand, 2, 7), in[1], 3, 3 }, c[1] = { w[0] };

      pb_msg_field (graph, 1, node_new (graph, "Conv", "X", "W", NULL, "A"));
      node = g_byte_array_new ();
      pb_string_field (node, 1, "A");
      pb_string_field (node, 1, "S");
      pb_string_field (node, 1, "B");
      pb_string_field (node, 1, "M");
      pb_string_field (node, 1, "V");
      pb_string_field (node, 2, "D");
      pb_string_field (node, 4, "BatchNormalization");
      pb_msg_field (graph, 1, node);
      pb_msg_field (graph, 1, node_new (graph, "Relu", "D", NULL, NULL, "Y"));
      initializer (graph, "W", 4, w, rand);
      initializer (graph, "S", 1, c, rand);
      initializer (graph, "B", 1, c, rand);
      initializer (graph, "M", 1, c, rand);
      initializer_full (graph, "V", 1, c, rand, 0.1, 2.0);
      io (graph, 11, "X", 4, in);
      io (graph, 12, "Y", 4, in);
      compare (graph, 4, in, 0, NULL, rand, "batchnorm");
    }
}

static void
test_gap_add_concat (void)
{
  g_autoptr(GRand) rand = g_rand_new_with_seed (14);

  for (int i = 0; i < N_ROUNDS / 4; i++)
    {
      GByteArray *graph = g_byte_array_new ();
      GByteArray *node;
      int64_t in[4] = { rnd (rand, 1, 3), rnd (rand, 1, 9), rnd (rand, 1, 12), rnd (rand, 1, 12) };
      int64_t w[4] = { rnd (rand, 1, 6), in[1], 1, 1 };
      int64_t out[2] = { in[0], -1 };

      /* two branches, concatenated on channels, added to themselves, then pooled */
      node = node_new (graph, "Conv", "X", "W", NULL, "A");
      pb_msg_field (graph, 1, node);
      node = node_new (graph, "Conv", "X2", "W", NULL, "B");
      pb_msg_field (graph, 1, node);
      node = node_new (graph, "Concat", "A", "B", NULL, "C");
      attr_int (node, "axis", 1);
      pb_msg_field (graph, 1, node);
      pb_msg_field (graph, 1, node_new (graph, "Add", "C", "C", NULL, "D"));
      pb_msg_field (graph, 1, node_new (graph, "Relu", "D", NULL, NULL, "E"));
      pb_msg_field (graph, 1, node_new (graph, "GlobalAveragePool", "E", NULL, NULL, "F"));
      node = node_new (graph, "Flatten", "F", NULL, NULL, "Y");
      pb_msg_field (graph, 1, node);
      initializer (graph, "W", 4, w, rand);
      io (graph, 11, "X", 4, in);
      io (graph, 11, "X2", 4, in);
      io (graph, 12, "Y", 2, out);
      compare (graph, 4, in, 4, in, rand, "gap-add-concat");
    }
}

static void
int64_initializer (GByteArray *graph, const char *name, int n, const int64_t *values)
{
  GByteArray *t = g_byte_array_new ();

  pb_varint_field (t, 1, (guint64) n);
  pb_varint_field (t, 2, NN_DTYPE_INT64);
  pb_string_field (t, 8, name);
  pb_bytes_field (t, 9, values, n * sizeof (int64_t));
  pb_msg_field (graph, 5, t);
}

/* Channels-last regions around an op that needs NCHW (Pad, Transpose): the tensors that
 * cross over are converted, both ways */
static void
test_mixed_layouts (void)
{
  g_autoptr(GRand) rand = g_rand_new_with_seed (20);

  for (int i = 0; i < N_ROUNDS / 4; i++)
    {
      GByteArray *graph = g_byte_array_new ();
      GByteArray *node;
      int64_t in[4] = { rnd (rand, 1, 2), rnd (rand, 1, 5), rnd (rand, 3, 9), rnd (rand, 3, 9) };
      int64_t w[4] = { rnd (rand, 1, 6), in[1], 3, 3 }, w2[4] = { w[0], w[0], 1, 1 };
      int64_t pads[8] = { 0, 0, 1, 2, 0, 0, 2, 1 }, perm[4] = { 0, 1, 3, 2 };

      pb_msg_field (graph, 1, node_new (graph, "Conv", "X", "W", NULL, "A"));
      node = node_new (graph, "Pad", "A", "pads", NULL, "B");
      pb_string_field (node, 3, "pad");
      pb_msg_field (graph, 1, node);
      node = node_new (graph, "Transpose", "B", NULL, NULL, "C");
      attr_ints (node, "perm", 4, perm);
      pb_msg_field (graph, 1, node);
      pb_msg_field (graph, 1, node_new (graph, "Conv", "C", "W2", NULL, "D"));
      pb_msg_field (graph, 1, node_new (graph, "Add", "D", "C", NULL, "Y"));
      initializer (graph, "W", 4, w, rand);
      initializer (graph, "W2", 4, w2, rand);
      int64_initializer (graph, "pads", 8, pads);
      io (graph, 11, "X", 4, in);
      io (graph, 12, "Y", 4, in);
      compare (graph, 4, in, 0, NULL, rand, "mixed-layouts");
    }
}

static void
test_gemm (void)
{
  g_autoptr(GRand) rand = g_rand_new_with_seed (15);

  for (int i = 0; i < N_ROUNDS; i++)
    {
      GByteArray *graph = g_byte_array_new ();
      GByteArray *node = node_new (graph, "Gemm", "X", "W", "C", "Y");
      int64_t M = rnd (rand, 1, 20), K = rnd (rand, 1, 40), Nn = rnd (rand, 1, 30);
      int ta = (int) rnd (rand, 0, 1), tb = (int) rnd (rand, 0, 1);
      int64_t a[2] = { ta ? K : M, ta ? M : K }, b[2] = { tb ? Nn : K, tb ? K : Nn };
      int64_t c[2] = { rnd (rand, 0, 1) ? M : 1, Nn };

      attr_int (node, "transA", ta);
      attr_int (node, "transB", tb);
      attr_float (node, "alpha", (float) g_rand_double_range (rand, 0.5, 2.0));
      attr_float (node, "beta", (float) g_rand_double_range (rand, 0.0, 2.0));
      pb_msg_field (graph, 1, node);
      initializer (graph, "W", 2, b, rand);
      if (rnd (rand, 0, 1))
        initializer (graph, "C", 2, c, rand);
      else
        initializer (graph, "C", 1, c + 1, rand);
      io (graph, 11, "X", 2, a);
      io (graph, 12, "Y", 2, a);
      compare (graph, 2, a, 0, NULL, rand, "gemm");
    }
}

/* Gemm with alpha = beta = 1 and a bias row, and MatMul by a constant: XNNPACK's fully
 * connected operator, with a fused Relu */
static void
test_fully_connected (void)
{
  g_autoptr(GRand) rand = g_rand_new_with_seed (19);

  for (int i = 0; i < N_ROUNDS; i++)
    {
      GByteArray *graph = g_byte_array_new ();
      int64_t M = rnd (rand, 1, 20), K = rnd (rand, 1, 40), Nn = rnd (rand, 1, 30);
      int tb = (int) rnd (rand, 0, 1), gemm = (int) rnd (rand, 0, 1);
      int64_t a[2] = { M, K }, b[2] = { tb && gemm ? Nn : K, tb && gemm ? K : Nn }, c[1] = { Nn };
      GByteArray *node = node_new (graph, gemm ? "Gemm" : "MatMul", "X", "W",
                                   gemm ? "C" : NULL, "T");

      if (gemm)
        attr_int (node, "transB", tb);
      pb_msg_field (graph, 1, node);
      pb_msg_field (graph, 1, node_new (graph, "Relu", "T", NULL, NULL, "Y"));
      initializer (graph, "W", 2, b, rand);
      if (gemm)
        initializer (graph, "C", 1, c, rand);
      io (graph, 11, "X", 2, a);
      io (graph, 12, "Y", 2, a);
      compare (graph, 2, a, 0, NULL, rand, "fully-connected");
    }
}

static void
test_matmul (void)
{
  g_autoptr(GRand) rand = g_rand_new_with_seed (16);

  for (int i = 0; i < N_ROUNDS; i++)
    {
      GByteArray *graph = g_byte_array_new ();
      int64_t M = rnd (rand, 1, 9), K = rnd (rand, 1, 20), Nn = rnd (rand, 1, 9);
      int64_t a[4] = { rnd (rand, 1, 3), rnd (rand, 1, 3), M, K };
      int64_t b[3] = { a[1], K, Nn };

      if (rnd (rand, 0, 1))
        b[0] = 1;
      pb_msg_field (graph, 1, node_new (graph, "MatMul", "X", "X2", NULL, "Y"));
      io (graph, 11, "X", 4, a);
      io (graph, 11, "X2", 3, b);
      io (graph, 12, "Y", 4, a);
      compare (graph, 4, a, 3, b, rand, "matmul");
    }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/nn/fast/conv2d", test_conv2d);
  g_test_add_func ("/nn/fast/conv1d", test_conv1d);
  g_test_add_func ("/nn/fast/maxpool", test_maxpool);
  g_test_add_func ("/nn/fast/avgpool", test_avgpool);
  g_test_add_func ("/nn/fast/batchnorm", test_batchnorm);
  g_test_add_func ("/nn/fast/gap-add-concat", test_gap_add_concat);
  g_test_add_func ("/nn/fast/mixed-layouts", test_mixed_layouts);
  g_test_add_func ("/nn/fast/gemm", test_gemm);
  g_test_add_func ("/nn/fast/matmul", test_matmul);
  g_test_add_func ("/nn/fast/fully-connected", test_fully_connected);
  return g_test_run ();
}
