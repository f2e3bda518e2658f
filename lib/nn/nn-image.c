/* nn-image.c - image preprocessing for models and the JSON sidecar that describes it */
#include "config.h"

#include <json-glib/json-glib.h>
#include <math.h>
#include <string.h>

#include "nn-image.h"

NnImageConfig *
nn_image_config_new (void)
{
  NnImageConfig *cfg = g_new0 (NnImageConfig, 1);

  for (int c = 0; c < 3; c++)
    cfg->std[c] = 1.0f;
  cfg->scale = 1.0f;
  return cfg;
}

void
nn_image_config_free (NnImageConfig *cfg)
{
  if (!cfg)
    return;
  g_free (cfg->labels);
  g_strfreev (cfg->label_names);
  g_free (cfg);
}

char *
nn_image_sidecar_path (const char *model_path)
{
  g_autofree char *base = g_str_has_suffix (model_path, ".onnx")
                          ? g_strndup (model_path, strlen (model_path) - 5)
                          : g_strdup (model_path);

  return g_strconcat (base, ".json", NULL);
}

static gboolean
read_triple (JsonObject *o, const char *name, float *v, GError **error)
{
  JsonNode *n = json_object_get_member (o, name);
  JsonArray *a;

  if (!n)
    return TRUE;
  if (JSON_NODE_HOLDS_VALUE (n))
    {
      v[0] = v[1] = v[2] = (float) json_node_get_double (n);
      return TRUE;
    }
  if (!JSON_NODE_HOLDS_ARRAY (n) || (a = json_node_get_array (n), json_array_get_length (a) != 3))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   "'%s' must be a number or a list of 3 numbers", name);
      return FALSE;
    }
  for (guint i = 0; i < 3; i++)
    v[i] = (float) json_array_get_double_element (a, i);
  return TRUE;
}

gboolean
nn_image_config_load (NnImageConfig *cfg, const char *json_path, GError **error)
{
  g_autoptr(JsonParser) parser = json_parser_new ();
  JsonObject *o;
  JsonNode *n;
  const char *s;

  if (!json_parser_load_from_file (parser, json_path, error))
    {
      g_prefix_error (error, "%s: ", json_path);
      return FALSE;
    }
  if (!JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser)))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "%s: not a JSON object", json_path);
      return FALSE;
    }
  o = json_node_get_object (json_parser_get_root (parser));
  if ((n = json_object_get_member (o, "input_size")))
    {
      if (JSON_NODE_HOLDS_ARRAY (n) && json_array_get_length (json_node_get_array (n)) == 2)
        {
          cfg->width = (int) json_array_get_int_element (json_node_get_array (n), 0);
          cfg->height = (int) json_array_get_int_element (json_node_get_array (n), 1);
        }
      else if (JSON_NODE_HOLDS_VALUE (n))
        cfg->width = cfg->height = (int) json_node_get_int (n);
      if (cfg->width < 1 || cfg->height < 1 || cfg->width > 16384 || cfg->height > 16384)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                       "%s: input_size must be a size or [width, height] up to 16384", json_path);
          return FALSE;
        }
    }
  if (json_object_has_member (o, "resize"))
    cfg->resize = (int) CLAMP (json_object_get_int_member (o, "resize"), 0, 16384);
  if (!read_triple (o, "mean", cfg->mean, error) || !read_triple (o, "std", cfg->std, error))
    {
      g_prefix_error (error, "%s: ", json_path);
      return FALSE;
    }
  for (int c = 0; c < 3; c++)
    if (cfg->std[c] == 0.0f)
      {
        g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "%s: std must not be 0",
                     json_path);
        return FALSE;
      }
  if (json_object_has_member (o, "scale"))
    cfg->scale = (float) json_object_get_double_member (o, "scale");
  if ((s = json_object_get_string_member_with_default (o, "channel_order", NULL)))
    cfg->bgr = g_ascii_strcasecmp (s, "BGR") == 0;
  if ((s = json_object_get_string_member_with_default (o, "layout", NULL)))
    cfg->nhwc = g_ascii_strcasecmp (s, "NHWC") == 0;
  cfg->grayscale = json_object_get_boolean_member_with_default (o, "grayscale", FALSE);
  n = json_object_get_member (o, "labels");
  if (n && JSON_NODE_HOLDS_ARRAY (n))
    {
      JsonArray *a = json_node_get_array (n);
      guint len = json_array_get_length (a);

      g_strfreev (cfg->label_names);
      cfg->label_names = g_new0 (char *, len + 1);
      for (guint i = 0; i < len; i++)
        {
          JsonNode *e = json_array_get_element (a, i);

          if (!JSON_NODE_HOLDS_VALUE (e) || json_node_get_value_type (e) != G_TYPE_STRING)
            {
              g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                           "%s: labels must be a file name or a list of strings", json_path);
              return FALSE;
            }
          cfg->label_names[i] = g_strdup (json_node_get_string (e));
        }
    }
  else if (n && (!JSON_NODE_HOLDS_VALUE (n) || json_node_get_value_type (n) != G_TYPE_STRING))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   "%s: labels must be a file name or a list of strings", json_path);
      return FALSE;
    }
  else if ((s = json_object_get_string_member_with_default (o, "labels", NULL)))
    {
      g_autofree char *dir = g_path_get_dirname (json_path);

      g_free (cfg->labels);
      cfg->labels = g_path_is_absolute (s) ? g_strdup (s) : g_build_filename (dir, s, NULL);
    }
  return TRUE;
}

void
nn_image_config_fit_model (NnImageConfig *cfg, NnModel *model)
{
  int64_t ne[NN_MAX_DIMS];
  int rank;

  if (nn_model_get_n_inputs (model) < 1)
    return;
  rank = nn_model_get_input_shape (model, 0, ne);
  if (rank != 4)
    return;
  /* channels first unless the last dim looks like channels */
  if (ne[3] == 1 || ne[3] == 3)
    {
      if (ne[1] != 1 && ne[1] != 3)
        cfg->nhwc = TRUE;
    }
  if (cfg->width <= 0 && cfg->height <= 0)
    {
      int64_t h = cfg->nhwc ? ne[1] : ne[2], w = cfg->nhwc ? ne[2] : ne[3];

      if (h > 0 && w > 0)
        {
          cfg->height = (int) h;
          cfg->width = (int) w;
        }
    }
  if ((cfg->nhwc ? ne[3] : ne[1]) == 1)
    cfg->grayscale = TRUE;
}

/* Resizing follows Pillow's Image.resize (BILINEAR), which torchvision's Resize uses too:
 * a triangle filter widened by the scale when shrinking (so it antialiases), 8-bit
 * fixed-point coefficients, and a horizontal then a vertical pass that each round to 8 bits.
 * Reproducing it exactly lets magpie score photos as the PyTorch tooling does. */
#define PIL_PRECISION_BITS (32 - 8 - 2)

static double
triangle (double x)
{
  x = fabs (x);
  return x < 1.0 ? 1.0 - x : 0.0;
}

/* Pillow's precompute_coeffs + normalize_coeffs_8bpc: for each output index, the first
 * input index, how many inputs it reads, and their fixed-point weights. */
static int
pil_coeffs (int in_size, int out_size, int **bounds_out, int32_t **kk_out)
{
  const double scale = (double) in_size / out_size;
  const double filterscale = MAX (scale, 1.0), support = filterscale;
  const int ksize = (int) ceil (support) * 2 + 1;
  g_autofree double *pre = g_new0 (double, (size_t) out_size * ksize);
  int *bounds = g_new (int, (size_t) out_size * 2);
  int32_t *kk = g_new0 (int32_t, (size_t) out_size * ksize);

  for (int xx = 0; xx < out_size; xx++)
    {
      double center = (xx + 0.5) * scale, ww = 0.0, ss = 1.0 / filterscale;
      int xmin = (int) (center - support + 0.5), xmax = (int) (center + support + 0.5);
      double *k = pre + (size_t) xx * ksize;

      xmin = MAX (xmin, 0);
      xmax = MIN (xmax, in_size) - xmin;
      for (int x = 0; x < xmax; x++)
        {
          k[x] = triangle ((x + xmin - center + 0.5) * ss);
          ww += k[x];
        }
      for (int x = 0; x < xmax && ww != 0.0; x++)
        k[x] /= ww;
      bounds[xx * 2] = xmin;
      bounds[xx * 2 + 1] = xmax;
    }
  for (size_t i = 0; i < (size_t) out_size * ksize; i++)
    kk[i] = pre[i] < 0 ? (int32_t) (-0.5 + pre[i] * (1 << PIL_PRECISION_BITS))
                       : (int32_t) (0.5 + pre[i] * (1 << PIL_PRECISION_BITS));
  *bounds_out = bounds;
  *kk_out = kk;
  return ksize;
}

static guint8
clip8 (int32_t v)
{
  v >>= PIL_PRECISION_BITS;
  return (guint8) CLAMP (v, 0, 255);
}

/* dst (dh, dw, 3)  src (sh, sw, 3), both packed 8-bit RGB */
static void
resize_pil (const guint8 *src, int sw, int sh, guint8 *dst, int dw, int dh)
{
  g_autofree guint8 *tmp = NULL;
  const guint8 *rows = src;

  if (dw != sw)
    {
      g_autofree int *bounds = NULL;
      g_autofree int32_t *kk = NULL;
      int ksize = pil_coeffs (sw, dw, &bounds, &kk);

      tmp = g_new (guint8, (size_t) sh * dw * 3);
      for (int y = 0; y < sh; y++)
        for (int x = 0; x < dw; x++)
          for (int c = 0; c < 3; c++)
            {
              const int32_t *k = kk + (size_t) x * ksize;
              int32_t ss = 1 << (PIL_PRECISION_BITS - 1);

              for (int i = 0; i < bounds[x * 2 + 1]; i++)
                ss += src[((size_t) y * sw + bounds[x * 2] + i) * 3 + c] * k[i];
              tmp[((size_t) y * dw + x) * 3 + c] = clip8 (ss);
            }
      rows = tmp;
    }
  if (dh != sh)
    {
      g_autofree int *bounds = NULL;
      g_autofree int32_t *kk = NULL;
      int ksize = pil_coeffs (sh, dh, &bounds, &kk);

      for (int y = 0; y < dh; y++)
        for (int x = 0; x < dw; x++)
          for (int c = 0; c < 3; c++)
            {
              const int32_t *k = kk + (size_t) y * ksize;
              int32_t ss = 1 << (PIL_PRECISION_BITS - 1);

              for (int i = 0; i < bounds[y * 2 + 1]; i++)
                ss += rows[((size_t) (bounds[y * 2] + i) * dw + x) * 3 + c] * k[i];
              dst[((size_t) y * dw + x) * 3 + c] = clip8 (ss);
            }
      return;
    }
  memcpy (dst, rows, (size_t) dh * dw * 3);
}

void
nn_image_preprocess_rgb (const NnImageConfig *cfg, const guint8 *pixels, int width, int height,
                         int rowstride, int n_channels, float *out)
{
  const int W = cfg->width, H = cfg->height, C = cfg->grayscale ? 1 : 3;
  int rw = W, rh = H, x0, y0;
  g_autofree guint8 *src = g_new (guint8, (size_t) width * height * 3);
  g_autofree guint8 *resized = NULL;

  for (int y = 0; y < height; y++)
    for (int x = 0; x < width; x++)
      for (int c = 0; c < 3; c++)
        src[((size_t) y * width + x) * 3 + c] =
          pixels[(size_t) y * rowstride + (size_t) x * n_channels + (n_channels >= 3 ? c : 0)];

  /* shorter side to 'resize' keeping the aspect ratio, the longer one rounded to nearest
   * (halves to even, Python's round(): what the shared SqueezeNet reference outputs were
   * made with), then the centre crop */
  if (cfg->resize > 0)
    {
      if (width <= height)
        {
          rw = cfg->resize;
          rh = MAX ((int) nearbyint ((double) cfg->resize * height / width), 1);
        }
      else
        {
          rh = cfg->resize;
          rw = MAX ((int) nearbyint ((double) cfg->resize * width / height), 1);
        }
      rw = MAX (rw, W);
      rh = MAX (rh, H);
    }
  resized = g_new (guint8, (size_t) rw * rh * 3);
  resize_pil (src, width, height, resized, rw, rh);
  /* halves round to even, as Python's round() in torchvision's CenterCrop */
  x0 = (int) nearbyint ((rw - W) / 2.0);
  y0 = (int) nearbyint ((rh - H) / 2.0);

  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++)
      {
        const guint8 *px = resized + ((size_t) (y + y0) * rw + (x + x0)) * 3;

        for (int c = 0; c < C; c++)
          {
            int sc = cfg->bgr ? 2 - c : c;
            float v = C == 1 ? 0.299f * px[0] + 0.587f * px[1] + 0.114f * px[2] : px[sc];
            size_t o = cfg->nhwc ? ((size_t) y * W + x) * C + c : ((size_t) c * H + y) * W + x;

            out[o] = (v * cfg->scale - cfg->mean[c]) / cfg->std[c];
          }
      }
}

NnTensor *
nn_image_from_pixbuf (const NnImageConfig *cfg, GdkPixbuf *pixbuf)
{
  const int C = cfg->grayscale ? 1 : 3;
  int64_t ne[4] = { 1, C, cfg->height, cfg->width };
  NnTensor *t;

  g_return_val_if_fail (cfg->width > 0 && cfg->height > 0, NULL);
  if (cfg->nhwc)
    {
      ne[1] = cfg->height;
      ne[2] = cfg->width;
      ne[3] = C;
    }
  t = nn_tensor_new (NN_DTYPE_FLOAT, 4, ne);
  nn_image_preprocess_rgb (cfg, gdk_pixbuf_read_pixels (pixbuf), gdk_pixbuf_get_width (pixbuf),
                           gdk_pixbuf_get_height (pixbuf), gdk_pixbuf_get_rowstride (pixbuf),
                           gdk_pixbuf_get_n_channels (pixbuf), t->data);
  return t;
}

static NnTensor *
load_image (const NnImageConfig *cfg, const char *path, gboolean scaled, GError **error)
{
  g_autoptr(GdkPixbuf) pixbuf = NULL;
  g_autoptr(GdkPixbuf) oriented = NULL;
  int w = 0, h = 0, want;

  if (cfg->width <= 0 || cfg->height <= 0)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "the model's input size is unknown; give it in the sidecar or with --size");
      return NULL;
    }
  if (!gdk_pixbuf_get_file_info (path, &w, &h))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "%s: not an image format "
                   "this system can decode", path);
      return NULL;
    }
  if (w <= 0 || h <= 0 || (int64_t) w * h > NN_IMAGE_MAX_PIXELS)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   "%s: image of %dx%d pixels is empty or larger than the limit of %d pixels",
                   path, w, h, NN_IMAGE_MAX_PIXELS);
      return NULL;
    }
  /* the shorter side at twice what the resize (or the input) needs keeps the antialiased
   * resize meaningful; the aspect ratio is kept */
  want = 2 * MAX (cfg->resize, MAX (cfg->width, cfg->height));
  if (scaled && MIN (w, h) > want)
    pixbuf = gdk_pixbuf_new_from_file_at_scale (path, w <= h ? want : -1, w <= h ? -1 : want,
                                                TRUE, error);
  else
    pixbuf = gdk_pixbuf_new_from_file (path, error);
  if (!pixbuf)
    return NULL;
  /* camera photos carry their rotation in EXIF */
  oriented = gdk_pixbuf_apply_embedded_orientation (pixbuf);
  if (gdk_pixbuf_get_bits_per_sample (oriented) != 8 || gdk_pixbuf_get_n_channels (oriented) < 3)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "%s: unsupported pixel format",
                   path);
      return NULL;
    }
  return nn_image_from_pixbuf (cfg, oriented);
}

NnTensor *
nn_image_load (const NnImageConfig *cfg, const char *path, GError **error)
{
  return load_image (cfg, path, FALSE, error);
}

NnTensor *
nn_image_load_scaled (const NnImageConfig *cfg, const char *path, GError **error)
{
  return load_image (cfg, path, TRUE, error);
}

GStrv
nn_labels_load (const char *path, GError **error)
{
  g_autofree char *contents = NULL;
  g_auto(GStrv) lines = NULL;
  GPtrArray *out;

  if (!g_file_get_contents (path, &contents, NULL, error))
    return NULL;
  lines = g_strsplit (contents, "\n", -1);
  out = g_ptr_array_new ();
  for (int i = 0; lines[i]; i++)
    {
      g_strchomp (lines[i]);
      if (!lines[i + 1] && !*lines[i])
        break;  /* the final newline */
      g_ptr_array_add (out, g_strdup (lines[i]));
    }
  g_ptr_array_add (out, NULL);
  return (GStrv) g_ptr_array_free (out, FALSE);
}
