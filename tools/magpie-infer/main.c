/* magpie-infer - classify images (or feed raw TensorProto .pb files) with an ONNX model and
 * print one JSON object per input: {"file", "top": [{"label", "index", "confidence"}],
 * "output" (with --raw)} */
#include "config.h"

#include <json-glib/json-glib.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mp-image.h"
#include "nn.h"
#include "nn-image.h"

#define EXIT_BAD_INPUT 2
/* A file, not an upload: room for an uncompressed TIFF at NN_IMAGE_MAX_PIXELS. */
#define MAGPIE_INFER_MAX_BYTES ((gsize) 256 * 1024 * 1024)

static char *opt_model;
static char *opt_labels;
static int opt_top = 5;
static gboolean opt_raw;
static char *opt_size;
static int opt_resize = -1;
static char *opt_mean;
static char *opt_std;
static double opt_scale;
static gboolean opt_bgr;
static gboolean opt_rgb;
static int opt_threads;
static gboolean opt_reference;
static char **opt_files;

static const GOptionEntry entries[] = {
  { "model", 'm', 0, G_OPTION_ARG_FILENAME, &opt_model, "ONNX model", "M.onnx" },
  { "labels", 'l', 0, G_OPTION_ARG_FILENAME, &opt_labels, "Labels, one per line", "L.txt" },
  { "top", 'k', 0, G_OPTION_ARG_INT, &opt_top, "How many classes to print (5)", "K" },
  { "raw", 0, 0, G_OPTION_ARG_NONE, &opt_raw, "Also print the model's first output", NULL },
  { "size", 0, 0, G_OPTION_ARG_STRING, &opt_size, "Model input size", "WxH|N" },
  { "resize", 0, 0, G_OPTION_ARG_INT, &opt_resize, "Shorter side before the centre crop", "N" },
  { "mean", 0, 0, G_OPTION_ARG_STRING, &opt_mean, "Per-channel mean (model channel order)", "A,B,C" },
  { "std", 0, 0, G_OPTION_ARG_STRING, &opt_std, "Per-channel std", "A,B,C" },
  { "scale", 0, 0, G_OPTION_ARG_DOUBLE, &opt_scale, "Multiply 0..255 pixels by this first", "S" },
  { "bgr", 0, 0, G_OPTION_ARG_NONE, &opt_bgr, "Feed channels as BGR", NULL },
  { "rgb", 0, 0, G_OPTION_ARG_NONE, &opt_rgb, "Feed channels as RGB", NULL },
  { "threads", 't', 0, G_OPTION_ARG_INT, &opt_threads, "Kernel threads (default: cores)", "N" },
  { "reference", 0, 0, G_OPTION_ARG_NONE, &opt_reference, "Use only the reference kernels", NULL },
  { G_OPTION_REMAINING, 0, 0, G_OPTION_ARG_FILENAME_ARRAY, &opt_files, NULL, "FILE..." },
  { NULL }
};

static gboolean
parse_triple (const char *s, float *v, const char *what, GError **error)
{
  g_auto(GStrv) parts = g_strsplit (s, ",", -1);
  guint n = g_strv_length (parts);

  if (n != 1 && n != 3)
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE, "--%s takes 1 or 3 numbers",
                   what);
      return FALSE;
    }
  for (guint i = 0; i < 3; i++)
    {
      char *end;

      v[i] = (float) g_ascii_strtod (parts[n == 1 ? 0 : i], &end);
      if (*end || end == parts[n == 1 ? 0 : i])
        {
          g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE, "--%s: '%s' is not a "
                       "number", what, parts[n == 1 ? 0 : i]);
          return FALSE;
        }
    }
  return TRUE;
}

static gboolean
apply_flags (NnImageConfig *cfg, GError **error)
{
  if (opt_size)
    {
      int w = 0, h = 0;

      if (sscanf (opt_size, "%dx%d", &w, &h) != 2)
        h = w = atoi (opt_size);
      if (w < 1 || h < 1 || w > 16384 || h > 16384)
        {
          g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE, "--size must be WxH or N");
          return FALSE;
        }
      cfg->width = w;
      cfg->height = h;
    }
  if (opt_resize >= 0)
    cfg->resize = opt_resize;
  if (opt_mean && !parse_triple (opt_mean, cfg->mean, "mean", error))
    return FALSE;
  if (opt_std && !parse_triple (opt_std, cfg->std, "std", error))
    return FALSE;
  for (int c = 0; c < 3; c++)
    if (cfg->std[c] == 0.0f)
      {
        g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE, "--std must not be 0");
        return FALSE;
      }
  if (opt_scale != 0.0)
    cfg->scale = (float) opt_scale;
  if (opt_bgr)
    cfg->bgr = TRUE;
  if (opt_rgb)
    cfg->bgr = FALSE;
  if (opt_labels)
    {
      g_free (cfg->labels);
      cfg->labels = g_strdup (opt_labels);
    }
  return TRUE;
}

/* Confidences: the output itself when it already is a distribution, else its softmax. */
static void
confidences (const float *x, int64_t n, double *p)
{
  double sum = 0, mx = -INFINITY;
  gboolean is_dist = TRUE;

  for (int64_t i = 0; i < n; i++)
    {
      is_dist = is_dist && x[i] >= 0.0f && x[i] <= 1.0f;
      sum += x[i];
      mx = fmax (mx, x[i]);
    }
  if (is_dist && fabs (sum - 1.0) < 1e-3)
    {
      for (int64_t i = 0; i < n; i++)
        p[i] = x[i];
      return;
    }
  sum = 0;
  for (int64_t i = 0; i < n; i++)
    sum += p[i] = exp (x[i] - mx);
  for (int64_t i = 0; i < n; i++)
    p[i] /= sum;
}

static void
print_result (const char *file, const NnTensor *out, int64_t item, GStrv labels)
{
  g_autoptr(JsonBuilder) b = json_builder_new ();
  g_autoptr(JsonGenerator) gen = json_generator_new ();
  g_autoptr(JsonNode) root = NULL;
  g_autofree char *text = NULL;
  int64_t n = out->ndim > 0 ? nn_tensor_numel (out) / MAX (out->ne[0], 1) : 1;
  const float *x = (const float *) out->data + item * n;
  g_autofree double *p = g_new (double, MAX (n, 1));
  g_autofree gboolean *taken = g_new0 (gboolean, MAX (n, 1));
  guint n_labels = labels ? g_strv_length (labels) : 0;

  confidences (x, n, p);
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "file");
  json_builder_add_string_value (b, file);
  json_builder_set_member_name (b, "top");
  json_builder_begin_array (b);
  for (int k = 0; k < opt_top && k < n; k++)
    {
      int64_t best = -1;

      for (int64_t i = 0; i < n; i++)
        if (!taken[i] && (best < 0 || p[i] > p[best]))
          best = i;
      taken[best] = TRUE;
      json_builder_begin_object (b);
      json_builder_set_member_name (b, "label");
      if (best < n_labels)
        json_builder_add_string_value (b, labels[best]);
      else
        {
          g_autofree char *s = g_strdup_printf ("%" G_GINT64_FORMAT, best);
          json_builder_add_string_value (b, s);
        }
      json_builder_set_member_name (b, "index");
      json_builder_add_int_value (b, best);
      json_builder_set_member_name (b, "confidence");
      json_builder_add_double_value (b, p[best]);
      json_builder_end_object (b);
    }
  json_builder_end_array (b);
  if (opt_raw)
    {
      json_builder_set_member_name (b, "output");
      json_builder_begin_array (b);
      for (int64_t i = 0; i < n; i++)
        json_builder_add_double_value (b, x[i]);
      json_builder_end_array (b);
    }
  json_builder_end_object (b);
  root = json_builder_get_root (b);
  json_generator_set_root (gen, root);
  text = json_generator_to_data (gen, NULL);
  printf ("%s\n", text);
  fflush (stdout);
}

/* Images are decoded as magpied decodes uploads (mp-image: the format told by its first
 * bytes, dimensions checked before pixels are allocated, truncated files refused rather
 * than classified with their missing part grey), at full size, as the Python pipelines we
 * are compared with do. */
static NnTensor *
load_image (const NnImageConfig *cfg,
            const char          *path,
            GError             **error)
{
  g_autoptr(MpImage) image = NULL;
  MpImageLimits limits;

  if (cfg->width <= 0 || cfg->height <= 0)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "the model's input size is unknown; give it in the sidecar or with --size");
      return NULL;
    }
  mp_image_limits_init (&limits);
  limits.max_pixels = NN_IMAGE_MAX_PIXELS;
  limits.max_bytes = MAGPIE_INFER_MAX_BYTES;
  limits.work_side = 0;
  image = mp_image_load_file (path, &limits, error);
  if (image == NULL)
    return NULL;
  return nn_image_from_pixbuf (cfg, image->pixbuf);
}

int
main (int argc, char **argv)
{
  g_autoptr(GOptionContext) ctx = g_option_context_new ("FILE... - classify images with an ONNX model");
  g_autoptr(GError) error = NULL;
  g_autoptr(NnModel) model = NULL;
  g_autoptr(NnImageConfig) cfg = nn_image_config_new ();
  g_autofree char *sidecar = NULL;
  g_auto(GStrv) labels = NULL;
  int status = EXIT_SUCCESS;

  setlocale (LC_ALL, "");
  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    {
      g_printerr ("magpie-infer: %s\n", error->message);
      return EXIT_BAD_INPUT;
    }
  if (!opt_model || !opt_files || !opt_files[0])
    {
      g_printerr ("magpie-infer: usage: magpie-infer --model M.onnx [--labels L.txt] [--top K] "
                  "[--raw] FILE...\n");
      return EXIT_BAD_INPUT;
    }
  model = nn_model_new_from_file (opt_model, &error);
  if (!model)
    {
      g_printerr ("magpie-infer: bad model: %s\n", error->message);
      return EXIT_BAD_INPUT;
    }
  if (opt_threads > 0)
    nn_model_set_threads (model, opt_threads);
  if (opt_reference)
    nn_model_set_fast (model, FALSE);

  sidecar = nn_image_sidecar_path (opt_model);
  if (g_file_test (sidecar, G_FILE_TEST_EXISTS) && !nn_image_config_load (cfg, sidecar, &error))
    {
      g_printerr ("magpie-infer: bad sidecar: %s\n", error->message);
      return EXIT_BAD_INPUT;
    }
  if (!apply_flags (cfg, &error))
    {
      g_printerr ("magpie-infer: %s\n", error->message);
      return EXIT_BAD_INPUT;
    }
  nn_image_config_fit_model (cfg, model);
  if (cfg->labels && !(labels = nn_labels_load (cfg->labels, &error)))
    {
      g_printerr ("magpie-infer: cannot read labels: %s\n", error->message);
      return EXIT_BAD_INPUT;
    }
  if (!labels && cfg->label_names)
    labels = g_strdupv (cfg->label_names);
  if (nn_model_get_n_inputs (model) != 1)
    {
      g_printerr ("magpie-infer: the model takes %u inputs; magpie-infer feeds one\n",
                  nn_model_get_n_inputs (model));
      return EXIT_BAD_INPUT;
    }

  for (int i = 0; opt_files[i]; i++)
    {
      const char *file = opt_files[i];
      g_autoptr(NnTensor) input = NULL;
      g_autoptr(GError) local = NULL;
      const NnTensor *out;

      if (g_str_has_suffix (file, ".pb"))
        input = nn_tensor_load_pb (file, &local);
      else
        input = load_image (cfg, file, &local);
      if (!input || !nn_model_run (model, input, 1, &local))
        {
          if (g_str_has_prefix (local->message, file))
            g_printerr ("magpie-infer: %s\n", local->message);
          else
            g_printerr ("magpie-infer: %s: %s\n", file, local->message);
          status = EXIT_BAD_INPUT;
          continue;
        }
      out = nn_model_get_output (model, 0);
      if (out->dtype != NN_DTYPE_FLOAT)
        {
          g_printerr ("magpie-infer: the model's first output is not float\n");
          return EXIT_BAD_INPUT;
        }
      for (int64_t item = 0; item < (out->ndim > 0 ? out->ne[0] : 1); item++)
        print_result (file, out, item, labels);
    }
  return status;
}
