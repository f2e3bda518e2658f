/* srv-predict.c - the model endpoints: predict a digit or a photo's tags, list and download
 * the served models
 *
 * Decoding and inference run on the blocking pool (srv_http_offload) with an engine instance
 * borrowed from the model's pool. Without a model the endpoints answer 503 and say which file
 * is missing. Image-bytes digits are prepared as the app's Draw page prepares its canvas
 * (nn_digits_preprocess: crop to the ink, longer side to 20, centred by mass in 28×28), so a
 * digit drawn anywhere on a canvas of any size gets the same answer here as in the app.
 */
#define G_LOG_DOMAIN "magpied-predict"

#include "config.h"

#include "srv-predict.h"

#include <math.h>
#include <string.h>

#include "mp-image.h"
#include "nn-digits.h"
#include "srv-http.h"
#include "srv-reply.h"
#include "srv-workers.h"

typedef enum {
  PREDICT_PHOTO,
  PREDICT_DIGIT_IMAGE,
  PREDICT_DIGIT_PIXELS,
} PredictKind;

typedef struct {
  SrvContext  *ctx;
  SrvModel    *model;
  PredictKind  kind;
  GBytes      *body;    /* image bytes */
  float       *pixels;  /* digits: the input item (0..255 as sent, or prepared from an image) */
} Predict;

static void
predict_free (gpointer data)
{
  Predict *p = data;

  g_clear_pointer (&p->body, g_bytes_unref);
  g_free (p->pixels);
  g_free (p);
}

gboolean
srv_predict_digit_pixels (JsonArray  *pixels,
                          float      *out,
                          guint       n,
                          GError    **error)
{
  gboolean unit = TRUE;

  if (json_array_get_length (pixels) != n)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   "\"pixels\" has %u values; the model reads %u (28×28 row by row)",
                   json_array_get_length (pixels), n);
      return FALSE;
    }
  for (guint i = 0; i < n; i++)
    {
      JsonNode *v = json_array_get_element (pixels, i);
      double x;

      if (!JSON_NODE_HOLDS_VALUE (v) || json_node_get_value_type (v) == G_TYPE_STRING ||
          json_node_get_value_type (v) == G_TYPE_BOOLEAN)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                       "\"pixels\"[%u] is not a number", i);
          return FALSE;
        }
      x = json_node_get_double (v);
      if (!(x >= 0.0 && x <= 255.0))
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                       "\"pixels\"[%u] = %g is outside 0..255", i, x);
          return FALSE;
        }
      out[i] = (float) x;
      unit = unit && x <= 1.0;
    }
  /* All within 0..1: a canvas's coverage, scaled to the 0..255 of MNIST's files. */
  if (unit)
    for (guint i = 0; i < n; i++)
      out[i] *= 255.0f;
  return TRUE;
}

/* The model's own normalisation (sidecar scale, mean, std) of 0..255 grey values. */
static void
normalise_gray (const NnImageConfig *cfg,
                float               *v,
                gint64               n)
{
  for (gint64 i = 0; i < n; i++)
    v[i] = (v[i] * cfg->scale - cfg->mean[0]) / cfg->std[0];
}

/* The ink of @pixbuf, 0 (none) .. 255 (full), into @ink (width × height bytes). A picture
 * with transparency is ink where it is opaque (strokes on a transparent canvas); an opaque
 * one is ink where it differs from its background, taken to be dark when the mean luminance
 * is, so dark-on-light (a photographed page) and light-on-dark (MNIST) both work. */
static void
digit_ink (GdkPixbuf *pixbuf,
           guint8    *ink)
{
  int w = gdk_pixbuf_get_width (pixbuf), h = gdk_pixbuf_get_height (pixbuf);
  int stride = gdk_pixbuf_get_rowstride (pixbuf), nc = gdk_pixbuf_get_n_channels (pixbuf);
  const guint8 *px = gdk_pixbuf_read_pixels (pixbuf);
  gboolean alpha = gdk_pixbuf_get_has_alpha (pixbuf) && nc == 4;
  gboolean transparent = FALSE;
  double sum = 0;

  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++)
      {
        const guint8 *p = px + (gsize) y * stride + (gsize) x * nc;
        guint8 luma = (guint8) lround (0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2]);

        ink[(gsize) y * w + x] = luma;
        sum += luma;
        transparent = transparent || (alpha && p[3] < 255);
      }
  if (transparent)
    {
      for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
          ink[(gsize) y * w + x] = px[(gsize) y * stride + (gsize) x * nc + 3];
      return;
    }
  if (sum / ((double) w * h) > 127.5)
    for (gsize i = 0; i < (gsize) w * h; i++)
      ink[i] = 255 - ink[i];
}

static void
predict_work (SrvHttpReply *reply,
              gpointer      user_data)
{
  Predict *p = user_data;
  SrvWorkers *workers = p->ctx->workers;
  g_autoptr(GError) error = NULL;
  g_autoptr(MpImage) image = NULL;
  g_autoptr(JsonBuilder) b = json_builder_new ();
  g_autoptr(JsonNode) root = NULL;
  g_autofree float *probs = NULL;
  NnModel *instance;
  guint n_classes = 0;

  if (p->kind != PREDICT_DIGIT_PIXELS)
    {
      gsize length;
      const guint8 *data = g_bytes_get_data (p->body, &length);

      image = mp_image_decode (data ? data : (const guint8 *) "", length,
                               srv_workers_get_limits (workers), &error);
      if (image == NULL)
        {
          srv_http_reply_set_error (reply, error->code == MP_IMAGE_ERROR_TOO_LARGE ?
                                    SOUP_STATUS_REQUEST_ENTITY_TOO_LARGE :
                                    SOUP_STATUS_UNPROCESSABLE_ENTITY,
                                    "bad_image", "not a usable image: %s", error->message);
          return;
        }
    }
  if (p->kind == PREDICT_DIGIT_IMAGE)
    {
      int w = gdk_pixbuf_get_width (image->pixbuf), h = gdk_pixbuf_get_height (image->pixbuf);
      g_autofree guint8 *ink = NULL;

      if (srv_model_get_input_numel (p->model) != NN_DIGITS_SIZE * NN_DIGITS_SIZE)
        {
          srv_http_reply_set_error (reply, SOUP_STATUS_INTERNAL_SERVER_ERROR, "model_failed",
                                    "the %s model does not take one 28×28 grey image, which "
                                    "image bytes are prepared as", srv_model_get_name (p->model));
          return;
        }
      ink = g_malloc ((gsize) w * h);
      digit_ink (image->pixbuf, ink);
      p->pixels = g_new (float, NN_DIGITS_SIZE * NN_DIGITS_SIZE);
      /* no ink is a blank canvas: all zero, as the app's model sees it */
      nn_digits_preprocess (ink, w, h, w, p->pixels);
      nn_digits_normalize (srv_model_get_image_config (p->model), p->pixels);
    }

  instance = srv_model_acquire (p->model, &error);
  if (instance == NULL)
    {
      srv_http_reply_set_error (reply, SOUP_STATUS_SERVICE_UNAVAILABLE, "model_unavailable",
                                "%s", error->message);
      return;
    }
  if (p->kind == PREDICT_PHOTO)
    probs = srv_model_classify (p->model, instance, &image->pixbuf, 1, &n_classes, &error);
  else
    {
      if (p->kind == PREDICT_DIGIT_PIXELS)
        normalise_gray (srv_model_get_image_config (p->model), p->pixels,
                        srv_model_get_input_numel (p->model));
      probs = srv_model_run_raw (p->model, instance, p->pixels, &n_classes, &error);
    }
  srv_model_release (p->model, instance);
  if (probs == NULL)
    {
      srv_http_reply_set_error (reply, SOUP_STATUS_INTERNAL_SERVER_ERROR, "model_failed",
                                "the %s model failed: %s", srv_model_get_name (p->model),
                                error ? error->message : "no output");
      return;
    }

  json_builder_begin_object (b);
  if (p->kind == PREDICT_PHOTO)
    {
      g_autoptr(GArray) tags = srv_workers_tags_for (workers, probs, n_classes);

      json_builder_set_member_name (b, "tags");
      json_builder_begin_array (b);
      for (guint i = 0; i < tags->len; i++)
        {
          const SrvTag *t = &g_array_index (tags, SrvTag, i);

          json_builder_begin_object (b);
          json_builder_set_member_name (b, "label");
          json_builder_add_string_value (b, t->label);
          json_builder_set_member_name (b, "confidence");
          json_builder_add_double_value (b, t->confidence);
          json_builder_end_object (b);
        }
      json_builder_end_array (b);
      json_builder_set_member_name (b, "model");
      json_builder_add_string_value (b, srv_model_get_name (p->model));
      json_builder_set_member_name (b, "width");
      json_builder_add_int_value (b, image->width);
      json_builder_set_member_name (b, "height");
      json_builder_add_int_value (b, image->height);
    }
  else
    {
      guint best = 0;

      for (guint i = 1; i < n_classes; i++)
        if (probs[i] > probs[best])
          best = i;
      json_builder_set_member_name (b, "digit");
      json_builder_add_int_value (b, best);
      json_builder_set_member_name (b, "probabilities");
      json_builder_begin_array (b);
      for (guint i = 0; i < n_classes; i++)
        json_builder_add_double_value (b, probs[i]);
      json_builder_end_array (b);
      json_builder_set_member_name (b, "model");
      json_builder_add_string_value (b, srv_model_get_name (p->model));
    }
  json_builder_end_object (b);
  root = json_builder_get_root (b);
  srv_http_reply_set_json (reply, SOUP_STATUS_OK, root);
}

static gboolean
is_json (SoupServerMessage *msg)
{
  const char *type = soup_message_headers_get_content_type (
    soup_server_message_get_request_headers (msg), NULL);

  return type != NULL && g_ascii_strcasecmp (type, "application/json") == 0;
}

static void
predict_cb (SoupServer        *soup,
            SoupServerMessage *msg,
            const char        *path,
            GHashTable        *query,
            gpointer           user_data)
{
  SrvContext *ctx = user_data;
  g_autoptr(SrvCredentials) credentials = NULL;
  SoupMessageBody *body = soup_server_message_get_request_body (msg);
  const char *reason = NULL;
  Predict *p;
  SrvModel *model;
  gboolean photo = g_strcmp0 (path, "/v1/predict/photo") == 0;

  if (!photo && g_strcmp0 (path, "/v1/predict/digit") != 0)
    {
      srv_reply_error (msg, SOUP_STATUS_NOT_FOUND, "not_found",
                       "no such endpoint: %s (use /v1/predict/digit or /v1/predict/photo)", path);
      return;
    }
  if (!srv_http_check_method (msg, "POST"))
    return;
  credentials = srv_http_authenticate (ctx, msg, query, FALSE);
  if (credentials == NULL)
    return;
  model = photo ? srv_workers_get_photo_model (ctx->workers, &reason)
                : srv_workers_get_digit_model (ctx->workers, &reason);
  if (model == NULL)
    {
      srv_reply_error (msg, SOUP_STATUS_SERVICE_UNAVAILABLE, "model_unavailable", "%s", reason);
      return;
    }

  p = g_new0 (Predict, 1);
  p->ctx = ctx;
  p->model = model;
  if (!photo && is_json (msg))
    {
      g_autoptr(JsonObject) o = srv_http_read_json (msg);
      g_autoptr(GError) error = NULL;
      JsonNode *pixels;
      gint64 n = srv_model_get_input_numel (model);

      if (o == NULL)
        {
          predict_free (p);
          return;
        }
      pixels = json_object_get_member (o, "pixels");
      p->kind = PREDICT_DIGIT_PIXELS;
      p->pixels = g_new0 (float, n);
      if (pixels == NULL || !JSON_NODE_HOLDS_ARRAY (pixels))
        g_set_error (&error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                     "a JSON body needs \"pixels\": an array of %" G_GINT64_FORMAT " numbers", n);
      else
        srv_predict_digit_pixels (json_node_get_array (pixels), p->pixels, (guint) n, &error);
      if (error != NULL)
        {
          srv_reply_error (msg, SOUP_STATUS_BAD_REQUEST, "bad_request", "%s", error->message);
          predict_free (p);
          return;
        }
    }
  else
    {
      const MpImageLimits *limits = srv_workers_get_limits (ctx->workers);

      if (body->length <= 0)
        {
          srv_reply_error (msg, SOUP_STATUS_BAD_REQUEST, "bad_request",
                           "send the image bytes as the body%s",
                           photo ? "" : ", or JSON {\"pixels\": [784 numbers]}");
          predict_free (p);
          return;
        }
      if ((guint64) body->length > limits->max_bytes)
        {
          srv_reply_error (msg, SOUP_STATUS_REQUEST_ENTITY_TOO_LARGE, "too_large",
                           "image of %" G_GINT64_FORMAT " bytes is over the limit of %"
                           G_GSIZE_FORMAT, body->length, limits->max_bytes);
          predict_free (p);
          return;
        }
      p->kind = photo ? PREDICT_PHOTO : PREDICT_DIGIT_IMAGE;
      p->body = soup_message_body_flatten (body);
    }
  srv_http_offload (ctx, msg, predict_work, p, predict_free);
}

static void
add_triple (JsonBuilder *b,
            const char  *name,
            const float  v[3])
{
  json_builder_set_member_name (b, name);
  json_builder_begin_array (b);
  for (guint c = 0; c < 3; c++)
    json_builder_add_double_value (b, v[c]);
  json_builder_end_array (b);
}

/* How the server prepares an image for the model, in the words of a sidecar (nn-image.h), so
 * a client that downloads the model tags exactly as the server does. */
static void
add_preprocessing_json (JsonBuilder         *b,
                        const NnImageConfig *image)
{
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "input_size");
  json_builder_begin_array (b);
  json_builder_add_int_value (b, image->width);
  json_builder_add_int_value (b, image->height);
  json_builder_end_array (b);
  json_builder_set_member_name (b, "resize");
  json_builder_add_int_value (b, image->resize);
  json_builder_set_member_name (b, "channel_order");
  json_builder_add_string_value (b, image->bgr ? "BGR" : "RGB");
  json_builder_set_member_name (b, "layout");
  json_builder_add_string_value (b, image->nhwc ? "NHWC" : "NCHW");
  json_builder_set_member_name (b, "grayscale");
  json_builder_add_boolean_value (b, image->grayscale);
  json_builder_set_member_name (b, "scale");
  json_builder_add_double_value (b, image->scale);
  add_triple (b, "mean", image->mean);
  add_triple (b, "std", image->std);
  json_builder_end_object (b);
}

static void
add_model_json (JsonBuilder *b,
                SrvModel    *model)
{
  const char * const *labels = srv_model_get_labels (model);
  g_autofree char *url = g_strconcat ("/v1/models/", srv_model_get_name (model), NULL);

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "name");
  json_builder_add_string_value (b, srv_model_get_name (model));
  json_builder_set_member_name (b, "sha256");
  json_builder_add_string_value (b, srv_model_get_sha256 (model));
  json_builder_set_member_name (b, "size");
  json_builder_add_int_value (b, g_bytes_get_size (srv_model_get_bytes (model)));
  json_builder_set_member_name (b, "url");
  json_builder_add_string_value (b, url);
  json_builder_set_member_name (b, "labels");
  json_builder_begin_array (b);
  for (guint i = 0; labels && labels[i]; i++)
    json_builder_add_string_value (b, labels[i]);
  json_builder_end_array (b);
  json_builder_set_member_name (b, "preprocessing");
  add_preprocessing_json (b, srv_model_get_image_config (model));
  json_builder_end_object (b);
}

static void
models_cb (SoupServer        *soup,
           SoupServerMessage *msg,
           const char        *path,
           GHashTable        *query,
           gpointer           user_data)
{
  SrvContext *ctx = user_data;
  g_autoptr(SrvCredentials) credentials = NULL;
  SrvModel *models[2];
  const char *name;

  if (!srv_http_check_method (msg, "GET, HEAD"))
    return;
  credentials = srv_http_authenticate (ctx, msg, query, FALSE);
  if (credentials == NULL)
    return;
  models[0] = srv_workers_get_photo_model (ctx->workers, NULL);
  models[1] = srv_workers_get_digit_model (ctx->workers, NULL);

  if (g_strcmp0 (path, "/v1/models") == 0 || g_strcmp0 (path, "/v1/models/") == 0)
    {
      g_autoptr(JsonBuilder) b = json_builder_new ();
      g_autoptr(JsonNode) root = NULL;

      json_builder_begin_object (b);
      json_builder_set_member_name (b, "models");
      json_builder_begin_array (b);
      for (guint i = 0; i < G_N_ELEMENTS (models); i++)
        if (models[i] != NULL)
          add_model_json (b, models[i]);
      json_builder_end_array (b);
      json_builder_end_object (b);
      root = json_builder_get_root (b);
      srv_reply_json (msg, SOUP_STATUS_OK, root);
      return;
    }

  name = path + strlen ("/v1/models/");
  for (guint i = 0; i < G_N_ELEMENTS (models); i++)
    {
      g_autofree char *etag = NULL;
      g_autofree char *disposition = NULL;
      SoupMessageHeaders *headers = soup_server_message_get_response_headers (msg);
      const char *inm;
      GBytes *bytes;

      if (models[i] == NULL || (strcmp (name, srv_model_get_name (models[i])) != 0 &&
                                !(g_str_has_prefix (name, srv_model_get_name (models[i])) &&
                                  strcmp (name + strlen (srv_model_get_name (models[i])),
                                          ".onnx") == 0)))
        continue;
      /* The sha256 is the ETag, so the app's refresh is a cheap 304 when nothing changed. */
      etag = g_strdup_printf ("\"%s\"", srv_model_get_sha256 (models[i]));
      disposition = g_strdup_printf ("attachment; filename=\"%s.onnx\"",
                                     srv_model_get_name (models[i]));
      soup_message_headers_replace (headers, "ETag", etag);
      soup_message_headers_replace (headers, "Cache-Control", "no-cache");
      inm = soup_message_headers_get_one (soup_server_message_get_request_headers (msg),
                                          "If-None-Match");
      if (inm != NULL && strcmp (inm, etag) == 0)
        {
          soup_server_message_set_status (msg, SOUP_STATUS_NOT_MODIFIED, NULL);
          return;
        }
      soup_message_headers_replace (headers, "Content-Disposition", disposition);
      bytes = srv_model_get_bytes (models[i]);
      soup_server_message_set_status (msg, SOUP_STATUS_OK, NULL);
      soup_message_headers_set_content_type (headers, "application/octet-stream", NULL);
      soup_message_body_append_bytes (soup_server_message_get_response_body (msg), bytes);
      return;
    }
  srv_reply_error (msg, SOUP_STATUS_NOT_FOUND, "not_found", "no served model is named '%s'",
                   name);
}

void
srv_predict_register (SrvContext *ctx)
{
  soup_server_add_handler (ctx->soup, "/v1/predict", predict_cb, ctx, NULL);
  soup_server_add_handler (ctx->soup, "/v1/models", models_cb, ctx, NULL);
}
