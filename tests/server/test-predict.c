/* test-predict.c - POST /v1/predict/{photo,digit} and GET /v1/models against a real magpied
 * serving SqueezeNet (as the photo model) and the bundled data/models/digits.onnx */
#include "config.h"

#include <gdk-pixbuf/gdk-pixbuf.h>
#include <gio/gio.h>
#include <math.h>
#include <string.h>

#include "mp-test-util.h"

typedef struct {
  char         *model_dir;
  char         *photo_model;
  char         *digit_model;
  MpTestServer *server;
  SoupSession  *session;
  char         *token;
  char         *etag;
} Fixture;

static GBytes *
read_file (const char *path)
{
  char *contents;
  gsize length;

  g_assert_true (g_file_get_contents (path, &contents, &length, NULL));
  return g_bytes_new_take (contents, length);
}

/* Sends @body with @content_type (NULL: none) and returns the answer's bytes. */
static GBytes *
send (Fixture    *f,
      const char *method,
      const char *path,
      const char *token,
      const char *content_type,
      GBytes     *body,
      const char *if_none_match,
      guint      *status)
{
  g_autofree char *url = g_strconcat (f->server->url, path, NULL);
  g_autoptr(SoupMessage) msg = soup_message_new (method, url);
  g_autoptr(GError) error = NULL;
  GBytes *response;

  if (token != NULL)
    {
      g_autofree char *auth = g_strconcat ("Bearer ", token, NULL);
      soup_message_headers_replace (soup_message_get_request_headers (msg), "Authorization",
                                    auth);
    }
  if (if_none_match != NULL)
    soup_message_headers_replace (soup_message_get_request_headers (msg), "If-None-Match",
                                  if_none_match);
  if (body != NULL)
    soup_message_set_request_body_from_bytes (msg, content_type, body);
  response = soup_session_send_and_read (f->session, msg, NULL, &error);
  g_assert_no_error (error);
  *status = soup_message_get_status (msg);
  g_clear_pointer (&f->etag, g_free);
  f->etag = g_strdup (soup_message_headers_get_one (soup_message_get_response_headers (msg),
                                                    "ETag"));
  return response;
}

static JsonObject *
send_json (Fixture    *f,
           const char *method,
           const char *path,
           const char *token,
           const char *content_type,
           GBytes     *body,
           guint      *status)
{
  g_autoptr(GBytes) response = send (f, method, path, token, content_type, body, NULL, status);
  g_autoptr(JsonParser) parser = json_parser_new ();
  gsize len;
  const char *data = g_bytes_get_data (response, &len);

  if (len == 0 || !json_parser_load_from_data (parser, data, len, NULL) ||
      !JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser)))
    return NULL;
  return json_object_ref (json_node_get_object (json_parser_get_root (parser)));
}

static char *
new_token (Fixture *f)
{
  guint status = 0;
  g_autoptr(JsonObject) guest = send_json (f, "POST", "/v1/identities", NULL, NULL, NULL,
                                           &status);
  g_autoptr(JsonObject) creds = NULL;
  g_autoptr(GBytes) body = NULL;

  g_assert_cmpuint (status, ==, 201);
  {
    char *text = g_strdup_printf ("{\"identity_id\":\"%s\",\"secret\":\"%s\"}",
                                  json_object_get_string_member (guest, "identity_id"),
                                  json_object_get_string_member (guest, "secret"));
    body = g_bytes_new_take (text, strlen (text));
  }
  creds = send_json (f, "POST", "/v1/credentials", NULL, "application/json", body, &status);
  g_assert_cmpuint (status, ==, 200);
  return g_strdup (json_object_get_string_member (creds, "session_token"));
}

static gboolean
fixture_setup (Fixture *f, gboolean with_models)
{
  g_autoptr(GError) error = NULL;

  memset (f, 0, sizeof *f);
  f->model_dir = mp_test_make_tmpdir ("magpie-predict-models");
  f->photo_model = mp_test_photo_model (f->model_dir);
  f->digit_model = g_build_filename (MAGPIE_SOURCE_DIR, "data", "models", "digits.onnx", NULL);
  g_assert_true (g_file_test (f->digit_model, G_FILE_TEST_IS_REGULAR));
  if (f->photo_model == NULL)
    return FALSE;
  if (!with_models)
    {
      g_free (f->photo_model);
      g_free (f->digit_model);
      /* named but absent, so a photos.onnx landing in the tree cannot change the answer */
      f->photo_model = g_build_filename (f->model_dir, "absent.onnx", NULL);
      f->digit_model = g_build_filename (f->model_dir, "absent-digits.onnx", NULL);
    }
  {
    const char *args[] = { "--photo-model", f->photo_model, "--digit-model", f->digit_model,
                           NULL };

    f->server = mp_test_server_start (NULL, args, &error);
    g_assert_no_error (error);
  }
  f->session = soup_session_new ();
  f->token = new_token (f);
  return TRUE;
}

static void
fixture_teardown (Fixture *f)
{
  g_clear_object (&f->session);
  g_clear_pointer (&f->server, mp_test_server_free);
  if (f->model_dir)
    mp_test_rm_rf (f->model_dir);
  g_free (f->model_dir);
  g_free (f->photo_model);
  g_free (f->digit_model);
  g_free (f->token);
  g_free (f->etag);
}

static void
test_photo (void)
{
  Fixture f;
  g_autofree char *retriever_path = mp_test_shared_data ("photos/golden_retriever_winml.jpg");
  g_autofree char *text_path = mp_test_shared_data ("bad-images/text_named.jpg");
  g_autoptr(GBytes) retriever = NULL;
  g_autoptr(GBytes) text = NULL;
  guint status = 0;

  if (!fixture_setup (&f, TRUE) || retriever_path == NULL || text_path == NULL)
    {
      fixture_teardown (&f);
      g_test_skip ("shared data (MAGPIE_SHARED_DATA) has no squeezenet, mnist-8 or photos");
      return;
    }
  retriever = read_file (retriever_path);
  text = read_file (text_path);
  {
    g_autoptr(JsonObject) o = send_json (&f, "POST", "/v1/predict/photo", f.token, "image/jpeg",
                                         retriever, &status);
    JsonArray *tags;
    JsonObject *top;

    g_assert_cmpuint (status, ==, 200);
    g_assert_cmpstr (json_object_get_string_member (o, "model"), ==, "photos");
    tags = json_object_get_array_member (o, "tags");
    g_assert_cmpuint (json_array_get_length (tags), >=, 1);
    g_assert_cmpuint (json_array_get_length (tags), <=, 5);
    top = json_array_get_object_element (tags, 0);
    g_assert_cmpstr (json_object_get_string_member (top, "label"), ==, "golden retriever");
    g_assert_cmpfloat (json_object_get_double_member (top, "confidence"), >, 0.9);
  }
  {
    g_autoptr(JsonObject) o = send_json (&f, "POST", "/v1/predict/photo", f.token, "image/jpeg",
                                         text, &status);

    g_assert_cmpuint (status, ==, 422);
    g_assert_cmpstr (json_object_get_string_member (json_object_get_object_member (o, "error"),
                                                    "code"), ==, "bad_image");
  }
  {
    g_autoptr(JsonObject) o = send_json (&f, "POST", "/v1/predict/photo", NULL, "image/jpeg",
                                         retriever, &status);
    g_assert_cmpuint (status, ==, 401);
  }
  {
    g_autoptr(JsonObject) o = send_json (&f, "GET", "/v1/predict/photo", f.token, NULL, NULL,
                                         &status);
    g_assert_cmpuint (status, ==, 405);
  }
  {
    g_autoptr(JsonObject) o = send_json (&f, "POST", "/v1/predict/cat", f.token, "image/jpeg",
                                         retriever, &status);
    g_assert_cmpuint (status, ==, 404);
  }
  fixture_teardown (&f);
}

/* The first @n test images (28×28, 0..255) and labels of MNIST's t10k. */
static gboolean
read_mnist (guint n, guint8 *images, guint8 *labels)
{
  const char *files[2] = { "mnist/t10k-images-idx3-ubyte.gz", "mnist/t10k-labels-idx1-ubyte.gz" };
  const gsize header[2] = { 16, 8 };
  guint8 *out[2] = { images, labels };
  const gsize size[2] = { 784, 1 };

  for (int k = 0; k < 2; k++)
    {
      g_autofree char *path = mp_test_shared_data (files[k]);
      g_autoptr(GFile) file = NULL;
      g_autoptr(GInputStream) raw = NULL;
      g_autoptr(GConverter) gunzip = NULL;
      g_autoptr(GInputStream) in = NULL;
      g_autofree guint8 *buf = NULL;
      gsize want = header[k] + n * size[k], got = 0;

      if (path == NULL)
        return FALSE;
      file = g_file_new_for_path (path);
      raw = G_INPUT_STREAM (g_file_read (file, NULL, NULL));
      gunzip = G_CONVERTER (g_zlib_decompressor_new (G_ZLIB_COMPRESSOR_FORMAT_GZIP));
      in = g_converter_input_stream_new (raw, gunzip);
      buf = g_malloc (want);
      g_assert_true (g_input_stream_read_all (in, buf, want, &got, NULL, NULL));
      g_assert_cmpuint (got, ==, want);
      memcpy (out[k], buf + header[k], n * size[k]);
    }
  return TRUE;
}

static GBytes *
pixels_json (const guint8 *img, double scale, guint n)
{
  GString *s = g_string_new ("{\"pixels\": [");

  for (guint i = 0; i < n; i++)
    {
      char num[G_ASCII_DTOSTR_BUF_SIZE];

      g_string_append_printf (s, "%s%s", i ? "," : "",
                              g_ascii_dtostr (num, sizeof num, img[i % 784] * scale));
    }
  g_string_append (s, "]}");
  return g_string_free_to_bytes (s);
}

/* An MNIST digit as a person would photograph it: dark ink on white, 4× larger, PNG. */
static GBytes *
digit_png (const guint8 *img)
{
  g_autoptr(GdkPixbuf) small = gdk_pixbuf_new (GDK_COLORSPACE_RGB, FALSE, 8, 28, 28);
  g_autoptr(GdkPixbuf) big = NULL;
  guint8 *px = gdk_pixbuf_get_pixels (small);
  int stride = gdk_pixbuf_get_rowstride (small);
  gchar *buf = NULL;
  gsize len = 0;

  for (int y = 0; y < 28; y++)
    for (int x = 0; x < 28; x++)
      for (int c = 0; c < 3; c++)
        px[y * stride + x * 3 + c] = 255 - img[y * 28 + x];
  big = gdk_pixbuf_scale_simple (small, 112, 112, GDK_INTERP_BILINEAR);
  g_assert_true (gdk_pixbuf_save_to_buffer (big, &buf, &len, "png", NULL, NULL));
  return g_bytes_new_take (buf, len);
}

static void
test_digit (void)
{
  Fixture f;
  guint8 images[784 * 10], labels[10];
  guint status = 0;
  guint right_png = 0;

  if (!fixture_setup (&f, TRUE) || !read_mnist (10, images, labels))
    {
      fixture_teardown (&f);
      g_test_skip ("shared data (MAGPIE_SHARED_DATA) has no models or MNIST t10k");
      return;
    }
  for (guint i = 0; i < 10; i++)
    {
      /* 0..255 and 0..1 give the same answer, the one MNIST's label gives */
      g_autoptr(GBytes) raw = pixels_json (images + i * 784, 1.0, 784);
      g_autoptr(GBytes) unit = pixels_json (images + i * 784, 1.0 / 255.0, 784);
      g_autoptr(GBytes) png = digit_png (images + i * 784);
      g_autoptr(JsonObject) a = send_json (&f, "POST", "/v1/predict/digit", f.token,
                                           "application/json", raw, &status);
      g_autoptr(JsonObject) b = NULL;
      g_autoptr(JsonObject) c = NULL;
      JsonArray *probs;
      double sum = 0;

      g_assert_cmpuint (status, ==, 200);
      g_assert_cmpint (json_object_get_int_member (a, "digit"), ==, labels[i]);
      probs = json_object_get_array_member (a, "probabilities");
      g_assert_cmpuint (json_array_get_length (probs), ==, 10);
      for (guint k = 0; k < 10; k++)
        sum += json_array_get_double_element (probs, k);
      g_assert_cmpfloat_with_epsilon (sum, 1.0, 1e-4);
      b = send_json (&f, "POST", "/v1/predict/digit", f.token, "application/json", unit,
                     &status);
      g_assert_cmpuint (status, ==, 200);
      g_assert_cmpint (json_object_get_int_member (b, "digit"), ==, labels[i]);
      c = send_json (&f, "POST", "/v1/predict/digit", f.token, "image/png", png, &status);
      g_assert_cmpuint (status, ==, 200);
      right_png += json_object_get_int_member (c, "digit") == labels[i];
    }
  /* cropped and centred as MNIST was made, an MNIST digit comes back as itself */
  g_test_message ("image bytes: %u of 10 right", right_png);
  g_assert_cmpuint (right_png, >=, 9);

  {
    g_autoptr(GBytes) short_ = pixels_json (images, 1.0, 783);
    g_autoptr(JsonObject) o = send_json (&f, "POST", "/v1/predict/digit", f.token,
                                         "application/json", short_, &status);
    g_assert_cmpuint (status, ==, 400);
    g_assert_nonnull (strstr (json_object_get_string_member (
      json_object_get_object_member (o, "error"), "message"), "784"));
  }
  {
    g_autoptr(GBytes) hot = pixels_json (images, 2.0, 784);
    g_autoptr(JsonObject) o = send_json (&f, "POST", "/v1/predict/digit", f.token,
                                         "application/json", hot, &status);
    g_assert_cmpuint (status, ==, 400);
  }
  fixture_teardown (&f);
}

/* Digits as a canvas draws them, in canvas units (0..1) of the digit's square; NAN ends a
 * stroke. The same shapes as tests/ui/test-draw.c. */
typedef struct {
  double x, y;
} Point;

static GArray *
drawn_digit (int digit)
{
  GArray *points = g_array_new (FALSE, FALSE, sizeof (Point));
  Point end = { NAN, NAN };

  switch (digit)
    {
    case 0:
      for (int i = 0; i <= 32; i++)
        {
          double t = 2 * G_PI * i / 32;
          Point p = { 0.5 + 0.19 * sin (t), 0.5 - 0.29 * cos (t) };

          g_array_append_val (points, p);
        }
      break;
    case 1:
      {
        Point line[] = { { 0.52, 0.2 }, { 0.5, 0.8 } };

        g_array_append_vals (points, line, G_N_ELEMENTS (line));
      }
      break;
    case 4:
      {
        Point line[] = { { 0.58, 0.2 }, { 0.3, 0.6 }, { 0.75, 0.6 }, end,
                         { 0.6, 0.38 }, { 0.6, 0.82 } };

        g_array_append_vals (points, line, G_N_ELEMENTS (line));
      }
      break;
    case 7:
    default:
      {
        Point line[] = { { 0.3, 0.22 }, { 0.7, 0.22 }, { 0.46, 0.81 } };

        g_array_append_vals (points, line, G_N_ELEMENTS (line));
      }
      break;
    }
  return points;
}

typedef enum {
  INK_DARK_ON_LIGHT,  /* a pen on paper */
  INK_LIGHT_ON_DARK,  /* as MNIST's files are */
  INK_ON_TRANSPARENT, /* a canvas exported with no background */
} Ink;

static double
segment_distance (double px, double py, Point a, Point b)
{
  double dx = b.x - a.x, dy = b.y - a.y, len2 = dx * dx + dy * dy;
  double t = len2 > 0 ? CLAMP (((px - a.x) * dx + (py - a.y) * dy) / len2, 0.0, 1.0) : 0.0;

  return hypot (px - (a.x + t * dx), py - (a.y + t * dy));
}

/* @digit drawn with a round pen into a @side-pixel square at (@left, @top) of a 320×240
 * picture, antialiased, as PNG: small and off-centre, as a person leaves it on a canvas. */
static GBytes *
drawn_png (int digit, Ink ink, int left, int top, int side)
{
  g_autoptr(GArray) points = drawn_digit (digit);
  g_autoptr(GdkPixbuf) pixbuf = gdk_pixbuf_new (GDK_COLORSPACE_RGB, TRUE, 8, 320, 240);
  guint8 *px = gdk_pixbuf_get_pixels (pixbuf);
  int stride = gdk_pixbuf_get_rowstride (pixbuf);
  const Point *p = (const Point *) points->data;
  double radius = 0.075 / 2 * side;
  gchar *buf = NULL;
  gsize len = 0;

  for (int y = 0; y < 240; y++)
    for (int x = 0; x < 320; x++)
      {
        guint8 *o = px + y * stride + x * 4;
        double d = INFINITY, cover;
        guint8 v;

        for (guint i = 0; i + 1 < points->len; i++)
          if (!isnan (p[i].x) && !isnan (p[i + 1].x))
            {
              Point a = { left + p[i].x * side, top + p[i].y * side };
              Point b = { left + p[i + 1].x * side, top + p[i + 1].y * side };

              d = MIN (d, segment_distance (x + 0.5, y + 0.5, a, b));
            }
        cover = CLAMP (radius + 0.5 - d, 0.0, 1.0);
        v = (guint8) lround (255 * cover);
        switch (ink)
          {
          case INK_DARK_ON_LIGHT:
            o[0] = o[1] = o[2] = 255 - v;
            o[3] = 255;
            break;
          case INK_LIGHT_ON_DARK:
            o[0] = o[1] = o[2] = v;
            o[3] = 255;
            break;
          case INK_ON_TRANSPARENT:
          default:
            o[0] = o[1] = o[2] = 20;
            o[3] = v;
            break;
          }
      }
  g_assert_true (gdk_pixbuf_save_to_buffer (pixbuf, &buf, &len, "png", NULL, NULL));
  return g_bytes_new_take (buf, len);
}

/* A digit drawn small in a corner of a large picture is cropped and centred as the Draw page
 * does it, whichever way round the ink is; a blank picture is a blank canvas. */
static void
test_drawn_digit (void)
{
  Fixture f;
  const int digits[] = { 0, 1, 4, 7 };
  guint status = 0;

  if (!fixture_setup (&f, TRUE))
    {
      fixture_teardown (&f);
      g_test_skip ("shared data (MAGPIE_SHARED_DATA) has no photo model for magpied");
      return;
    }
  for (guint i = 0; i < G_N_ELEMENTS (digits); i++)
    for (Ink ink = INK_DARK_ON_LIGHT; ink <= INK_ON_TRANSPARENT; ink++)
      {
        g_autoptr(GBytes) png = drawn_png (digits[i], ink, 200 - 60 * (int) ink, 130, 100);
        g_autoptr(JsonObject) o = send_json (&f, "POST", "/v1/predict/digit", f.token,
                                             "image/png", png, &status);

        g_assert_cmpuint (status, ==, 200);
        g_test_message ("drew %d (ink %d), magpied sees %" G_GINT64_FORMAT, digits[i], ink,
                        json_object_get_int_member (o, "digit"));
        g_assert_cmpint (json_object_get_int_member (o, "digit"), ==, digits[i]);
      }
  fixture_teardown (&f);
}

static void
test_models (void)
{
  Fixture f;
  g_autoptr(GBytes) onnx = NULL;
  g_autofree char *sha = NULL;
  g_autofree char *quoted = NULL;
  guint status = 0;

  if (!fixture_setup (&f, TRUE))
    {
      fixture_teardown (&f);
      g_test_skip ("shared data (MAGPIE_SHARED_DATA) has no squeezenet or mnist-8");
      return;
    }
  onnx = read_file (f.photo_model);
  sha = g_compute_checksum_for_bytes (G_CHECKSUM_SHA256, onnx);
  {
    g_autoptr(JsonObject) o = send_json (&f, "GET", "/v1/models", f.token, NULL, NULL, &status);
    JsonArray *models;
    JsonObject *photos, *digits;

    g_assert_cmpuint (status, ==, 200);
    models = json_object_get_array_member (o, "models");
    g_assert_cmpuint (json_array_get_length (models), ==, 2);
    photos = json_array_get_object_element (models, 0);
    digits = json_array_get_object_element (models, 1);
    g_assert_cmpstr (json_object_get_string_member (photos, "name"), ==, "photos");
    g_assert_cmpstr (json_object_get_string_member (photos, "sha256"), ==, sha);
    g_assert_cmpint (json_object_get_int_member (photos, "size"), ==, g_bytes_get_size (onnx));
    g_assert_cmpuint (json_array_get_length (json_object_get_array_member (photos, "labels")),
                      ==, 1000);
    g_assert_cmpstr (json_object_get_string_member (photos, "url"), ==, "/v1/models/photos");
    /* The preparation the sidecar asks for, so a client can tag as the server does. */
    {
      JsonObject *pre = json_object_get_object_member (photos, "preprocessing");
      JsonArray *size = json_object_get_array_member (pre, "input_size");
      JsonArray *mean = json_object_get_array_member (pre, "mean");

      g_assert_cmpint (json_array_get_int_element (size, 0), ==, 224);
      g_assert_cmpint (json_array_get_int_element (size, 1), ==, 224);
      g_assert_cmpint (json_object_get_int_member (pre, "resize"), ==, 256);
      g_assert_cmpstr (json_object_get_string_member (pre, "channel_order"), ==, "BGR");
      g_assert_cmpstr (json_object_get_string_member (pre, "layout"), ==, "NCHW");
      g_assert_false (json_object_get_boolean_member (pre, "grayscale"));
      g_assert_cmpfloat (json_array_get_double_element (mean, 0), ==, 104.0);
      g_assert_cmpfloat (json_array_get_double_element (mean, 2), ==, 123.0);
    }
    g_assert_cmpstr (json_object_get_string_member (digits, "name"), ==, "digits");
  }
  {
    g_autoptr(GBytes) got = send (&f, "GET", "/v1/models/photos", f.token, NULL, NULL, NULL,
                                  &status);

    g_assert_cmpuint (status, ==, 200);
    g_assert_true (g_bytes_equal (got, onnx));
    quoted = g_strdup_printf ("\"%s\"", sha);
    g_assert_cmpstr (f.etag, ==, quoted);
  }
  {
    g_autoptr(GBytes) got = send (&f, "GET", "/v1/models/photos.onnx", f.token, NULL, NULL,
                                  quoted, &status);

    g_assert_cmpuint (status, ==, 304);
    g_assert_cmpuint (g_bytes_get_size (got), ==, 0);
  }
  {
    g_autoptr(GBytes) got = send (&f, "GET", "/v1/models/nope", f.token, NULL, NULL, NULL,
                                  &status);
    g_assert_cmpuint (status, ==, 404);
  }
  {
    g_autoptr(GBytes) got = send (&f, "GET", "/v1/models", NULL, NULL, NULL, NULL, &status);
    g_assert_cmpuint (status, ==, 401);
  }
  fixture_teardown (&f);
}

static void
test_no_model (void)
{
  Fixture f;
  g_autoptr(GBytes) body = g_bytes_new_static ("\x89PNG", 4);
  guint status = 0;

  if (!fixture_setup (&f, FALSE))
    {
      fixture_teardown (&f);
      g_test_skip ("shared data (MAGPIE_SHARED_DATA) has no squeezenet or mnist-8");
      return;
    }
  for (guint i = 0; i < 2; i++)
    {
      g_autoptr(JsonObject) o = send_json (&f, "POST", i ? "/v1/predict/digit"
                                                         : "/v1/predict/photo",
                                           f.token, "image/png", body, &status);
      JsonObject *err;

      g_assert_cmpuint (status, ==, 503);
      err = json_object_get_object_member (o, "error");
      g_assert_cmpstr (json_object_get_string_member (err, "code"), ==, "model_unavailable");
      g_assert_nonnull (strstr (json_object_get_string_member (err, "message"), "absent"));
    }
  {
    g_autoptr(JsonObject) o = send_json (&f, "GET", "/v1/models", f.token, NULL, NULL, &status);

    g_assert_cmpuint (status, ==, 200);
    g_assert_cmpuint (json_array_get_length (json_object_get_array_member (o, "models")), ==, 0);
  }
  fixture_teardown (&f);
}

int
main (int argc, char *argv[])
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/srv/predict/photo", test_photo);
  g_test_add_func ("/srv/predict/digit", test_digit);
  g_test_add_func ("/srv/predict/drawn-digit", test_drawn_digit);
  g_test_add_func ("/srv/predict/models", test_models);
  g_test_add_func ("/srv/predict/no-model", test_no_model);
  return g_test_run ();
}
