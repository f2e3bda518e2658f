/* test-models.c - the served-model wrapper: sidecar and labels, and micro-batches: a batch of
 * photos in one engine call gives what one call per photo gives */
#include "config.h"

#include <string.h>

#include "mp-image.h"
#include "mp-test-util.h"
#include "onnx.pb-c.h"
#include "srv-models.h"

/* SqueezeNet's file with the batch dimension of its input and output made symbolic ("N"),
 * as exporters write models meant for batches. */
static GBytes *
dynamic_batch_copy (GBytes *fixed)
{
  gsize length;
  const guint8 *data = g_bytes_get_data (fixed, &length);
  Onnx__ModelProto *m = onnx__model_proto__unpack (NULL, length, data);
  Onnx__ValueInfoProto *ends[2];
  guint8 *out;
  gsize out_len;

  g_assert_nonnull (m);
  /* IR 3 lists the weights among the inputs too; the data input is the one without one */
  ends[0] = NULL;
  for (gsize i = 0; i < m->graph->n_input && ends[0] == NULL; i++)
    {
      gboolean weight = FALSE;

      for (gsize j = 0; j < m->graph->n_initializer; j++)
        weight |= g_strcmp0 (m->graph->initializer[j]->name, m->graph->input[i]->name) == 0;
      if (!weight)
        ends[0] = m->graph->input[i];
    }
  g_assert_nonnull (ends[0]);
  ends[1] = m->graph->output[0];
  for (int k = 0; k < 2; k++)
    {
      Onnx__TensorShapeProto__Dimension *d = ends[k]->type->tensor_type->shape->dim[0];

      g_assert_cmpint (d->value_case, ==, ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE);
      g_assert_cmpint (d->dim_value, ==, 1);
      d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
      d->dim_param = g_strdup ("N");
    }
  out_len = onnx__model_proto__get_packed_size (m);
  out = g_malloc (out_len);
  onnx__model_proto__pack (m, out);
  /* protobuf-c frees dim_param with free(), which g_strdup's malloc pairs with */
  onnx__model_proto__free_unpacked (m, NULL);
  return g_bytes_new_take (out, out_len);
}

static SrvModel *
load_with_sidecar (const char *dir, const char *name, GBytes *onnx, const char *synset)
{
  g_autofree char *file = g_strconcat (name, ".onnx", NULL);
  g_autofree char *path = g_build_filename (dir, file, NULL);
  g_autofree char *json_file = g_strconcat (name, ".json", NULL);
  g_autofree char *json_path = g_build_filename (dir, json_file, NULL);
  g_autofree char *json = g_strdup_printf ("{\"resize\": 256, \"channel_order\": \"BGR\", "
                                           "\"mean\": [104, 117, 123], \"labels\": \"%s\"}",
                                           synset);
  g_autoptr(GError) error = NULL;
  SrvModel *model;

  g_assert_true (g_file_set_contents (path, g_bytes_get_data (onnx, NULL),
                                      g_bytes_get_size (onnx), NULL));
  g_assert_true (g_file_set_contents (json_path, json, -1, NULL));
  model = srv_model_load ("photos", path, &error);
  g_assert_no_error (error);
  return model;
}

static void
test_batch_matches_single (void)
{
  static const char *photos[] = {
    "photos/golden_retriever_winml.jpg", "photos/squirrel_opencv.jpg",
    "photos/chelsea_cat_skimage.png", "photos/pelican_wonnx.jpeg",
  };
  g_autofree char *squeezenet = mp_test_shared_data ("models/squeezenet1.1-fp32.onnx");
  g_autofree char *synset = mp_test_shared_data ("models/synset.txt");
  g_autofree char *dir = NULL;
  g_autoptr(GBytes) fixed_bytes = NULL;
  g_autoptr(GBytes) dynamic_bytes = NULL;
  g_autoptr(SrvModel) fixed = NULL;
  g_autoptr(SrvModel) dynamic = NULL;
  g_autoptr(NnModel) fixed_nn = NULL;
  g_autoptr(NnModel) dynamic_nn = NULL;
  g_autoptr(GPtrArray) images = g_ptr_array_new_with_free_func ((GDestroyNotify) mp_image_free);
  g_autoptr(GPtrArray) pixbufs = g_ptr_array_new ();
  g_autoptr(GError) error = NULL;
  g_autofree float *batch = NULL;
  g_autofree float *single = NULL;
  MpImageLimits limits;
  guint k_batch = 0, k_single = 0;
  char *contents;
  gsize length;

  if (squeezenet == NULL || synset == NULL)
    {
      g_test_skip ("shared data (MAGPIE_SHARED_DATA) has no squeezenet or synset");
      return;
    }
  dir = mp_test_make_tmpdir ("magpie-models");
  g_assert_true (g_file_get_contents (squeezenet, &contents, &length, NULL));
  fixed_bytes = g_bytes_new_take (contents, length);
  dynamic_bytes = dynamic_batch_copy (fixed_bytes);
  fixed = load_with_sidecar (dir, "fixed", fixed_bytes, synset);
  dynamic = load_with_sidecar (dir, "dynamic", dynamic_bytes, synset);
  g_assert_false (srv_model_can_batch (fixed));
  g_assert_true (srv_model_can_batch (dynamic));
  g_assert_cmpint (srv_model_get_input_numel (fixed), ==, 3 * 224 * 224);
  g_assert_cmpuint (g_strv_length ((char **) srv_model_get_labels (fixed)), ==, 1000);

  mp_image_limits_init (&limits);
  for (guint i = 0; i < G_N_ELEMENTS (photos); i++)
    {
      g_autofree char *path = mp_test_shared_data (photos[i]);
      g_autofree char *bytes = NULL;
      gsize n;
      MpImage *image;

      g_assert_true (g_file_get_contents (path, &bytes, &n, NULL));
      image = mp_image_decode ((const guint8 *) bytes, n, &limits, &error);
      g_assert_no_error (error);
      g_ptr_array_add (images, image);
      g_ptr_array_add (pixbufs, image->pixbuf);
    }

  fixed_nn = srv_model_new_instance (fixed, &error);
  g_assert_no_error (error);
  dynamic_nn = srv_model_new_instance (dynamic, &error);
  g_assert_no_error (error);
  single = srv_model_classify (fixed, fixed_nn, (GdkPixbuf * const *) pixbufs->pdata,
                               pixbufs->len, &k_single, &error);
  g_assert_no_error (error);
  batch = srv_model_classify (dynamic, dynamic_nn, (GdkPixbuf * const *) pixbufs->pdata,
                              pixbufs->len, &k_batch, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (k_single, ==, 1000);
  g_assert_cmpuint (k_batch, ==, 1000);
  for (guint i = 0; i < pixbufs->len * 1000; i++)
    g_assert_cmpfloat_with_epsilon (batch[i], single[i], 1e-4);
  /* golden retriever (207) and fox squirrel (335) on top, as in SOURCES.md */
  {
    guint best0 = 0, best1 = 0;

    for (guint c = 1; c < 1000; c++)
      {
        best0 = batch[c] > batch[best0] ? c : best0;
        best1 = batch[1000 + c] > batch[1000 + best1] ? c : best1;
      }
    g_assert_cmpuint (best0, ==, 207);
    g_assert_cmpuint (best1, ==, 335);
  }
  mp_test_rm_rf (dir);
}

static void
test_bad_models (void)
{
  g_autofree char *dir = mp_test_make_tmpdir ("magpie-models-bad");
  g_autofree char *junk = g_build_filename (dir, "junk.onnx", NULL);
  g_autofree char *absent = g_build_filename (dir, "absent.onnx", NULL);
  g_autoptr(GError) error = NULL;
  g_autoptr(SrvModel) a = NULL;
  g_autoptr(SrvModel) b = NULL;

  g_assert_true (g_file_set_contents (junk, "not a protobuf at all", -1, NULL));
  a = srv_model_load ("photos", junk, &error);
  g_assert_null (a);
  g_assert_nonnull (strstr (error->message, "junk.onnx"));
  g_clear_error (&error);
  b = srv_model_load ("photos", absent, &error);
  g_assert_null (b);
  g_assert_error (error, G_FILE_ERROR, G_FILE_ERROR_NOENT);
  mp_test_rm_rf (dir);
}

int
main (int argc, char *argv[])
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/srv/models/batch-matches-single", test_batch_matches_single);
  g_test_add_func ("/srv/models/bad-models", test_bad_models);
  return g_test_run ();
}
