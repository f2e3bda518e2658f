/* test-models.c - whole models from the shared test data: SqueezeNet 1.1 against its
 * test_data_set outputs (1e-4), also with every Winograd tile size forced and against the
 * reference kernels, MNIST-8 top-1 accuracy on the t10k set, and photos */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "nn-graph.h"
#include "nn-image.h"
#include "nn-onnx.h"
#include "nn-test-util.h"

static void
check_squeezenet (gboolean fast)
{
  g_autofree char *model_path = nn_test_shared ("models/squeezenet1.1-fp32.onnx");
  g_autoptr(NnModel) model = NULL;
  g_autoptr(GError) error = NULL;

  if (!model_path)
    {
      g_test_skip ("shared data (MAGPIE_SHARED_DATA) has no squeezenet1.1-fp32.onnx");
      return;
    }
  model = nn_model_new_from_file (model_path, &error);
  g_assert_no_error (error);
  nn_model_set_fast (model, fast);
  for (int s = 0; s < 2; s++)
    {
      g_autofree char *dir = g_strdup_printf ("models/squeezenet1.1-fp32-testdata/test_data_set_%d", s);
      g_autofree char *in_rel = g_build_filename (dir, "input_0.pb", NULL);
      g_autofree char *out_rel = g_build_filename (dir, "output_0.pb", NULL);
      g_autofree char *in_path = nn_test_shared (in_rel);
      g_autofree char *out_path = nn_test_shared (out_rel);
      g_autoptr(NnTensor) in = NULL;
      g_autoptr(NnTensor) want = NULL;
      g_autofree char *diff = NULL;

      g_assert_nonnull (in_path);
      in = nn_tensor_load_pb (in_path, &error);
      g_assert_no_error (error);
      want = nn_tensor_load_pb (out_path, &error);
      g_assert_no_error (error);
      nn_model_run (model, in, 1, &error);
      g_assert_no_error (error);
      diff = nn_test_compare (nn_model_get_output (model, 0), want, 0.0, 1e-4);
      g_assert_null (diff);
    }
}

static void
test_squeezenet_fast (void)
{
  check_squeezenet (TRUE);
}

static void
test_squeezenet_reference (void)
{
  check_squeezenet (FALSE);
}

/* Conv steps of @path's fast plan for @x that run with @kernel */
static int
count_conv_kernel (const char *path, const NnTensor *x, const char *kernel)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *data = NULL;
  gsize len;
  NnPlanOptions opts = { TRUE, 2, FALSE };
  NnGraph *g;
  NnPlan *plan;
  int n = 0;

  g_assert_true (g_file_get_contents (path, &data, &len, &error));
  g = nn_onnx_load ((const guint8 *) data, len, &error);
  g_assert_no_error (error);
  g_assert_true (nn_graph_fold (g, &error));
  plan = nn_plan_new (g, x, 1, &opts, &error);
  g_assert_no_error (error);
  for (guint s = 0; s < plan->steps->len; s++)
    {
      const NnStep *st = &g_array_index (plan->steps, NnStep, s);

      n += st->node && g_str_equal (st->node->op_type, "Conv") &&
           g_strcmp0 (st->kernel_name, kernel) == 0;
    }
  nn_plan_free (plan);
  nn_graph_free (g);
  return n;
}

/* The whole of SqueezeNet with Winograd forced to each tile size (its 3x3 expand layers,
 * 16 to 64 input channels; MAGPIE_NN_WINOGRAD is read when a plan is made): the same 1e-4
 * against the zoo's outputs as above, and 1e-4 against the reference kernels on the same
 * input, so a Winograd error cannot hide in what the zoo's tolerance leaves over. */
static void
test_squeezenet_winograd (void)
{
  g_autofree char *model_path = nn_test_shared ("models/squeezenet1.1-fp32.onnx");
  g_autofree char *in_path = nn_test_shared ("models/squeezenet1.1-fp32-testdata/test_data_set_0/input_0.pb");
  g_autofree char *out_path = nn_test_shared ("models/squeezenet1.1-fp32-testdata/test_data_set_0/output_0.pb");
  g_autoptr(GError) error = NULL;
  g_autoptr(NnModel) ref = NULL;
  g_autoptr(NnTensor) in = NULL;
  g_autoptr(NnTensor) want = NULL;

  if (!model_path || !in_path || !out_path)
    {
      g_test_skip ("shared data (MAGPIE_SHARED_DATA) has no squeezenet1.1-fp32 test data");
      return;
    }
  in = nn_tensor_load_pb (in_path, &error);
  g_assert_no_error (error);
  want = nn_tensor_load_pb (out_path, &error);
  g_assert_no_error (error);
  ref = nn_model_new_from_file (model_path, &error);
  g_assert_no_error (error);
  nn_model_set_fast (ref, FALSE);
  g_assert_true (nn_model_run (ref, in, 1, &error));
  g_assert_no_error (error);

  for (int m = 2; m <= 4; m += 2)
    {
      g_autofree char *env = g_strdup_printf ("%d", m);
      g_autofree char *kernel = g_strdup_printf ("wino-f%d", m);
      g_autoptr(NnModel) fast = NULL;
      g_autofree char *diff_zoo = NULL;
      g_autofree char *diff_ref = NULL;
      int n;

      g_setenv ("MAGPIE_NN_WINOGRAD", env, TRUE);
      n = count_conv_kernel (model_path, in, kernel);
      fast = nn_model_new_from_file (model_path, &error);
      g_assert_no_error (error);
      nn_model_set_threads (fast, 2);
      g_assert_true (nn_model_run (fast, in, 1, &error));
      g_assert_no_error (error);
      g_unsetenv ("MAGPIE_NN_WINOGRAD");
      /* fire2..fire9 each have one 3x3 stride-1 expand convolution */
      g_assert_cmpint (n, ==, 8);
      diff_zoo = nn_test_compare (nn_model_get_output (fast, 0), want, 0.0, 1e-4);
      diff_ref = nn_test_compare (nn_model_get_output (fast, 0), nn_model_get_output (ref, 0),
                                  0.0, 1e-4);
      if (diff_zoo || diff_ref)
        g_error ("squeezenet with %s: vs zoo %s, vs reference %s", kernel,
                 diff_zoo ? diff_zoo : "ok", diff_ref ? diff_ref : "ok");
    }
}

static guint8 *
read_gz (const char *path, gsize *len)
{
  gzFile f = gzopen (path, "rb");
  GByteArray *buf = g_byte_array_new ();
  guint8 chunk[65536];
  int n;

  g_assert_nonnull (f);
  while ((n = gzread (f, chunk, sizeof chunk)) > 0)
    g_byte_array_append (buf, chunk, n);
  gzclose (f);
  *len = buf->len;
  return g_byte_array_free (buf, FALSE);
}

/* The model zoo's MNIST-8 scores 98.91 % on t10k with raw 0..255 pixels (SOURCES.md). */
static void
test_mnist_accuracy (void)
{
  g_autofree char *model_path = nn_test_shared ("models/mnist-8.onnx");
  g_autofree char *img_path = nn_test_shared ("mnist/t10k-images-idx3-ubyte.gz");
  g_autofree char *lbl_path = nn_test_shared ("mnist/t10k-labels-idx1-ubyte.gz");
  g_autoptr(NnModel) model = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree guint8 *images = NULL, *labels = NULL;
  gsize ilen, llen;
  int correct = 0, n;
  int64_t ne[4] = { 1, 1, 28, 28 };
  g_autoptr(NnTensor) x = nn_tensor_new (NN_DTYPE_FLOAT, 4, ne);

  if (!model_path || !img_path || !lbl_path)
    {
      g_test_skip ("shared data (MAGPIE_SHARED_DATA) has no mnist-8.onnx or MNIST t10k");
      return;
    }
  model = nn_model_new_from_file (model_path, &error);
  g_assert_no_error (error);
  images = read_gz (img_path, &ilen);
  labels = read_gz (lbl_path, &llen);
  n = (int) (llen - 8);
  g_assert_cmpint (n, ==, 10000);
  g_assert_cmpuint (ilen, ==, 16 + (gsize) n * 784);
  for (int i = 0; i < n; i++)
    {
      const NnTensor *y;
      int best = 0;

      for (int k = 0; k < 784; k++)
        ((float *) x->data)[k] = images[16 + (gsize) i * 784 + k];
      nn_model_run (model, x, 1, &error);
      g_assert_no_error (error);
      y = nn_model_get_output (model, 0);
      g_assert_cmpint (nn_tensor_numel (y), ==, 10);
      for (int k = 1; k < 10; k++)
        if (((float *) y->data)[k] > ((float *) y->data)[best])
          best = k;
      correct += best == labels[8 + i];
    }
  g_test_message ("mnist-8 top-1 on t10k: %.2f %%", 100.0 * correct / n);
  g_assert_cmpint (correct, >=, 9880);
  g_assert_cmpint (correct, <=, 9900);
}

/* Photos through the preprocessing SOURCES.md gives for SqueezeNet (shorter side 256,
 * centre crop 224, BGR, mean 104/117/123) against the reference top-5 in labels.tsv */
static void
test_photos (void)
{
  g_autofree char *model_path = nn_test_shared ("models/squeezenet1.1-fp32.onnx");
  g_autofree char *tsv = nn_test_shared ("photos/labels.tsv");
  g_autoptr(NnModel) model = NULL;
  g_autoptr(NnImageConfig) cfg = nn_image_config_new ();
  g_autoptr(GError) error = NULL;
  g_autofree char *contents = NULL;
  g_auto(GStrv) lines = NULL;
  int n = 0, exact = 0;

  if (!model_path || !tsv)
    {
      g_test_skip ("shared data (MAGPIE_SHARED_DATA) has no squeezenet or photos");
      return;
    }
  model = nn_model_new_from_file (model_path, &error);
  g_assert_no_error (error);
  cfg->resize = 256;
  cfg->bgr = TRUE;
  cfg->mean[0] = 104;
  cfg->mean[1] = 117;
  cfg->mean[2] = 123;
  nn_image_config_fit_model (cfg, model);
  g_assert_cmpint (cfg->width, ==, 224);
  g_assert_true (g_file_get_contents (tsv, &contents, NULL, &error));
  lines = g_strsplit (contents, "\n", -1);
  for (int i = 1; lines[i]; i++)
    {
      g_auto(GStrv) fields = g_strsplit (lines[i], "\t", -1);
      g_auto(GStrv) ref = NULL;
      g_autofree char *rel = NULL;
      g_autofree char *photo = NULL;
      g_autoptr(NnTensor) x = NULL;
      const float *y;
      gboolean taken[1000] = { FALSE }, same = TRUE;

      if (g_strv_length (fields) < 4 || !*fields[3])
        continue;
      rel = g_build_filename ("photos", fields[0], NULL);
      photo = nn_test_shared (rel);
      g_assert_nonnull (photo);
      x = nn_image_load (cfg, photo, &error);
      g_assert_no_error (error);
      g_assert_true (nn_model_run (model, x, 1, &error));
      y = nn_model_get_output (model, 0)->data;
      ref = g_strsplit (fields[3], ",", -1);
      for (int k = 0; ref[k] && k < 5; k++)
        {
          int best = -1, want = atoi (ref[k]);
          double p = g_ascii_strtod (strchr (ref[k], ':') + 1, NULL);

          for (int c = 0; c < 1000; c++)
            if (!taken[c] && (best < 0 || y[c] > y[best]))
              best = c;
          taken[best] = TRUE;
          /* the top class must agree everywhere; the rest almost everywhere */
          if (k == 0)
            g_assert_cmpint (best, ==, want);
          same = same && best == want && fabs (y[best] - p) <= 0.0005 + 1e-6;
        }
      n++;
      exact += same;
      if (!same)
        g_test_message ("%s differs from the reference top-5 %s", fields[0], fields[3]);
    }
  g_test_message ("%d of %d photos give the reference top-5", exact, n);
  g_assert_cmpint (n, >=, 20);
  g_assert_cmpint (exact, >=, n - 1);
}

int
main (int argc, char **argv)
{
  g_autofree char *root = nn_test_shared ("models");

  g_test_init (&argc, &argv, NULL);
  if (!root)
    {
      g_print ("1..0 # SKIP shared test data is absent (set MAGPIE_SHARED_DATA)\n");
      return 77;
    }
  g_test_add_func ("/nn/models/squeezenet-fast", test_squeezenet_fast);
  g_test_add_func ("/nn/models/squeezenet-reference", test_squeezenet_reference);
  g_test_add_func ("/nn/models/squeezenet-winograd", test_squeezenet_winograd);
  g_test_add_func ("/nn/models/mnist-accuracy", test_mnist_accuracy);
  g_test_add_func ("/nn/models/photos", test_photos);
  return g_test_run ();
}
