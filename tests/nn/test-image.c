/* test-image.c - preprocessing: sidecar parsing, resize and centre crop, channel order,
 * mean/std/scale, NCHW and NHWC layouts, decoding limits */
#include "config.h"

#include <glib/gstdio.h>
#include <math.h>
#include <string.h>

#include "nn-image.h"
#include "nn-test-util.h"

static char *
write_tmp (const char *name, const char *contents)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = g_dir_make_tmp ("nn-image-XXXXXX", &error);
  char *path;

  g_assert_no_error (error);
  path = g_build_filename (dir, name, NULL);
  g_file_set_contents (path, contents, -1, &error);
  g_assert_no_error (error);
  return path;
}

static void
remove_tmp (const char *path)
{
  g_autofree char *dir = g_path_get_dirname (path);

  g_unlink (path);
  g_rmdir (dir);
}

static void
test_sidecar (void)
{
  g_autofree char *path = write_tmp ("model.json",
                                     "{\"input_size\": [32, 24], \"resize\": 40, "
                                     "\"mean\": [104, 117, 123], \"std\": 2, \"scale\": 0.5, "
                                     "\"channel_order\": \"BGR\", \"layout\": \"NHWC\", "
                                     "\"labels\": \"synset.txt\"}");
  g_autoptr(NnImageConfig) cfg = nn_image_config_new ();
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = g_path_get_dirname (path);
  g_autofree char *labels = g_build_filename (dir, "synset.txt", NULL);
  g_autofree char *side = nn_image_sidecar_path ("/m/squeezenet.onnx");

  g_assert_cmpstr (side, ==, "/m/squeezenet.json");
  g_assert_true (nn_image_config_load (cfg, path, &error));
  g_assert_no_error (error);
  g_assert_cmpint (cfg->width, ==, 32);
  g_assert_cmpint (cfg->height, ==, 24);
  g_assert_cmpint (cfg->resize, ==, 40);
  g_assert_cmpfloat (cfg->mean[2], ==, 123.0f);
  g_assert_cmpfloat (cfg->std[1], ==, 2.0f);
  g_assert_cmpfloat (cfg->scale, ==, 0.5f);
  g_assert_true (cfg->bgr);
  g_assert_true (cfg->nhwc);
  g_assert_cmpstr (cfg->labels, ==, labels);
  remove_tmp (path);
}

static void
test_bad_sidecar (void)
{
  const char *bad[] = { "not json", "[1, 2]", "{\"mean\": [1, 2]}", "{\"std\": [1, 0, 1]}",
                        "{\"input_size\": [0, 5]}" };

  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autofree char *path = write_tmp ("m.json", bad[i]);
      g_autoptr(NnImageConfig) cfg = nn_image_config_new ();
      g_autoptr(GError) error = NULL;

      g_assert_false (nn_image_config_load (cfg, path, &error));
      g_assert_nonnull (error);
      remove_tmp (path);
    }
}

/* A 4x2 image (R = 10 * x, G = 100, B = 200 + y) cropped to 2x2 without resizing. */
static void
test_crop_order_norm (void)
{
  g_autoptr(NnImageConfig) cfg = nn_image_config_new ();
  guint8 px[2 * 4 * 3];
  float out[2 * 2 * 3];

  for (int y = 0; y < 2; y++)
    for (int x = 0; x < 4; x++)
      {
        px[(y * 4 + x) * 3 + 0] = (guint8) (10 * x);
        px[(y * 4 + x) * 3 + 1] = 100;
        px[(y * 4 + x) * 3 + 2] = (guint8) (200 + y);
      }
  cfg->width = 2;
  cfg->height = 2;
  cfg->resize = 2;  /* shorter side already 2: only the centre crop (x = 1..2) */
  cfg->bgr = TRUE;
  cfg->mean[0] = 200;
  cfg->mean[1] = 100;
  cfg->mean[2] = 0;
  cfg->std[2] = 10;
  nn_image_preprocess_rgb (cfg, px, 4, 2, 4 * 3, 3, out);
  /* NCHW, channel 0 = B - 200, channel 1 = G - 100, channel 2 = R / 10 */
  g_assert_cmpfloat (out[0], ==, 0.0f);
  g_assert_cmpfloat (out[2], ==, 1.0f);
  g_assert_cmpfloat (out[4], ==, 0.0f);
  g_assert_cmpfloat (out[8], ==, 1.0f);
  g_assert_cmpfloat (out[9], ==, 2.0f);

  cfg->nhwc = TRUE;
  nn_image_preprocess_rgb (cfg, px, 4, 2, 4 * 3, 3, out);
  /* NHWC: pixel (0,0) = B, G, R */
  g_assert_cmpfloat (out[0], ==, 0.0f);
  g_assert_cmpfloat (out[1], ==, 0.0f);
  g_assert_cmpfloat (out[2], ==, 1.0f);
  g_assert_cmpfloat (out[5], ==, 2.0f);
}

/* Bilinear with half-pixel centres: a 2x1 ramp scaled to 4x1 gives 0, 25, 75, 100. */
static void
test_resize (void)
{
  g_autoptr(NnImageConfig) cfg = nn_image_config_new ();
  guint8 px[2 * 3] = { 0, 0, 0, 100, 100, 100 };
  float out[4 * 1 * 3];

  cfg->width = 4;
  cfg->height = 1;
  nn_image_preprocess_rgb (cfg, px, 2, 1, 6, 3, out);
  g_assert_cmpfloat_with_epsilon (out[0], 0.0f, 1e-5);
  g_assert_cmpfloat_with_epsilon (out[1], 25.0f, 1e-5);
  g_assert_cmpfloat_with_epsilon (out[2], 75.0f, 1e-5);
  g_assert_cmpfloat_with_epsilon (out[3], 100.0f, 1e-5);

  cfg->grayscale = TRUE;
  px[3] = 100;
  px[4] = 0;
  px[5] = 0;
  nn_image_preprocess_rgb (cfg, px, 2, 1, 6, 3, out);
  g_assert_cmpfloat_with_epsilon (out[3], 29.9f, 1e-4);
}

static void
test_load_errors (void)
{
  g_autoptr(NnImageConfig) cfg = nn_image_config_new ();
  g_autofree char *text = write_tmp ("text.jpg", "this is not an image");
  g_autofree char *huge = nn_test_shared ("bad-images/huge_dims_100000x100000.png");
  g_autofree char *photo = nn_test_shared ("photos/tench_winml.png");
  g_autoptr(GError) error = NULL;
  NnTensor *t;

  t = nn_image_load (cfg, text, &error);
  g_assert_null (t);
  g_assert_nonnull (error);
  g_clear_error (&error);
  cfg->width = cfg->height = 8;
  t = nn_image_load (cfg, text, &error);
  g_assert_null (t);
  g_assert_nonnull (error);
  g_clear_error (&error);
  remove_tmp (text);
  if (huge)
    {
      t = nn_image_load (cfg, huge, &error);
      g_assert_null (t);
      g_assert_nonnull (strstr (error->message, "limit"));
      g_clear_error (&error);
    }
  if (photo)
    {
      t = nn_image_load (cfg, photo, &error);
      g_assert_no_error (error);
      g_assert_cmpint (t->ndim, ==, 4);
      g_assert_cmpint (t->ne[1], ==, 3);
      g_assert_cmpint (t->ne[3], ==, 8);
      nn_tensor_free (t);
    }
}

static void
test_labels (void)
{
  g_autofree char *path = write_tmp ("labels.txt", "cat\ndog\r\n\nbird\n");
  g_autoptr(GError) error = NULL;
  g_auto(GStrv) labels = nn_labels_load (path, &error);

  g_assert_no_error (error);
  g_assert_cmpuint (g_strv_length (labels), ==, 4);
  g_assert_cmpstr (labels[1], ==, "dog");
  g_assert_cmpstr (labels[2], ==, "");
  g_assert_cmpstr (labels[3], ==, "bird");
  remove_tmp (path);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/nn/image/sidecar", test_sidecar);
  g_test_add_func ("/nn/image/bad-sidecar", test_bad_sidecar);
  g_test_add_func ("/nn/image/crop-order-norm", test_crop_order_norm);
  g_test_add_func ("/nn/image/resize", test_resize);
  g_test_add_func ("/nn/image/load-errors", test_load_errors);
  g_test_add_func ("/nn/image/labels", test_labels);
  return g_test_run ();
}
