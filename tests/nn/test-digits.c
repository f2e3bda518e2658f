/* test-digits.c - canvas preprocessing (nn-digits.h) and the bundled digit model on digits
 * drawn the way a mouse draws them: polylines with a round, antialiased pen */
#include "config.h"

#include <math.h>
#include <string.h>

#include "nn-digits.h"
#include "nn-labels.h"
#include "nn.h"

#define CANVAS 280

/* --- a plain rasteriser: the distance from each pixel to a polyline, a round pen --- */

typedef struct {
  double x, y;
} Pt;

static double
seg_dist (double px, double py, Pt a, Pt b)
{
  double dx = b.x - a.x, dy = b.y - a.y, len2 = dx * dx + dy * dy, t;

  t = len2 > 0 ? ((px - a.x) * dx + (py - a.y) * dy) / len2 : 0.0;
  t = CLAMP (t, 0.0, 1.0);
  return hypot (px - (a.x + t * dx), py - (a.y + t * dy));
}

/* ink = coverage of the pixel by a pen of @radius, 1 px of antialiasing */
static void
draw_polyline (guint8 *img, const Pt *p, int n, double radius)
{
  double x0 = CANVAS, y0 = CANVAS, x1 = 0, y1 = 0;

  for (int i = 0; i < n; i++)
    {
      x0 = MIN (x0, p[i].x), x1 = MAX (x1, p[i].x);
      y0 = MIN (y0, p[i].y), y1 = MAX (y1, p[i].y);
    }
  for (int y = MAX (0, (int) (y0 - radius - 2)); y < MIN (CANVAS, (int) (y1 + radius + 2)); y++)
    for (int x = MAX (0, (int) (x0 - radius - 2)); x < MIN (CANVAS, (int) (x1 + radius + 2)); x++)
      {
        double d = 1e9, cov;

        for (int i = 0; i + 1 < n; i++)
          d = MIN (d, seg_dist (x + 0.5, y + 0.5, p[i], p[i + 1]));
        cov = CLAMP (radius + 0.5 - d, 0.0, 1.0);
        img[y * CANVAS + x] = (guint8) MAX (img[y * CANVAS + x], (int) lround (cov * 255));
      }
}

/* --- digit shapes in a unit box (y down), as strokes of points --- */

typedef struct {
  Pt  p[128];
  int n;
} Stroke;

static void
add (Stroke *s, double x, double y)
{
  g_assert (s->n < (int) G_N_ELEMENTS (s->p));
  s->p[s->n++] = (Pt) { x, y };
}

/* degrees, 0 = right, 90 = down */
static void
arc (Stroke *s, double cx, double cy, double rx, double ry, double a0, double a1)
{
  int steps = (int) (fabs (a1 - a0) / 10) + 2;

  for (int i = 0; i <= steps; i++)
    {
      double a = (a0 + (a1 - a0) * i / steps) * G_PI / 180.0;

      add (s, cx + rx * cos (a), cy + ry * sin (a));
    }
}

static int
digit_strokes (int digit, int variant, Stroke *st)
{
  memset (st, 0, sizeof (Stroke) * 2);
  switch (digit)
    {
    case 0:
      arc (&st[0], 0.5, 0.5, 0.3, 0.5, -90, 275);
      return 1;
    case 1:
      if (variant % 2)
        add (&st[0], 0.3, 0.18);
      add (&st[0], 0.52, 0.0);
      add (&st[0], 0.5, 1.0);
      return 1;
    case 2:
      arc (&st[0], 0.5, 0.28, 0.3, 0.28, 195, 380);
      add (&st[0], 0.15, 1.0);
      add (&st[0], 0.88, 1.0);
      return 1;
    case 3:
      arc (&st[0], 0.5, 0.26, 0.28, 0.26, 200, 450);
      arc (&st[0], 0.5, 0.74, 0.32, 0.26, 270, 515);
      return 1;
    case 4:
      add (&st[0], 0.62, 1.0);
      add (&st[0], 0.62, 0.0);
      add (&st[0], 0.08, 0.66);
      add (&st[0], 0.9, 0.66);
      return 1;
    case 5:
      add (&st[0], 0.82, 0.0);
      add (&st[0], 0.25, 0.0);
      add (&st[0], 0.2, 0.45);
      arc (&st[0], 0.48, 0.69, 0.33, 0.31, 230, 505);
      return 1;
    case 6:
      add (&st[0], 0.72, 0.0);
      add (&st[0], 0.48, 0.12);
      add (&st[0], 0.3, 0.35);
      add (&st[0], 0.22, 0.66);
      arc (&st[0], 0.5, 0.73, 0.28, 0.27, 180, 540);
      return 1;
    case 7:
      add (&st[0], 0.1, 0.0);
      add (&st[0], 0.9, 0.0);
      add (&st[0], 0.4, 1.0);
      return 1;
    case 8:
      arc (&st[0], 0.5, 0.25, 0.24, 0.25, 0, 360);
      arc (&st[1], 0.5, 0.73, 0.3, 0.27, -90, 270);
      return 2;
    case 9:
      arc (&st[0], 0.45, 0.3, 0.28, 0.29, 0, 360);
      add (&st[0], 0.71, 1.0);
      return 1;
    default:
      g_assert_not_reached ();
    }
}

/* one drawing: the digit's strokes placed, sized, slanted, rotated and wobbled at random */
static void
draw_digit (guint8 *img, int digit, int variant, GRand *rand)
{
  Stroke st[2];
  int n = digit_strokes (digit, variant, st);
  double height = g_rand_double_range (rand, 110, 230);
  double width = height * g_rand_double_range (rand, 0.55, 0.8);
  double slant = g_rand_double_range (rand, -0.25, 0.25);
  double rot = g_rand_double_range (rand, -8, 8) * G_PI / 180.0;
  double radius = g_rand_double_range (rand, 4, 13);
  double cx = g_rand_double_range (rand, width / 2 + 15, CANVAS - width / 2 - 15);
  double cy = g_rand_double_range (rand, height / 2 + 15, CANVAS - height / 2 - 15);

  memset (img, 0, CANVAS * CANVAS);
  for (int s = 0; s < n; s++)
    {
      Pt p[128];

      for (int i = 0; i < st[s].n; i++)
        {
          /* the hand shakes a little */
          double u = st[s].p[i].x - 0.5 + g_rand_double_range (rand, -0.02, 0.02);
          double v = st[s].p[i].y - 0.5 + g_rand_double_range (rand, -0.015, 0.015);
          double x = u * width - slant * v * height, y = v * height;

          p[i].x = cx + x * cos (rot) - y * sin (rot);
          p[i].y = cy + x * sin (rot) + y * cos (rot);
        }
      draw_polyline (img, p, st[s].n, radius);
    }
}

/* --- preprocessing --- */

static void
test_empty (void)
{
  g_autofree guint8 *img = g_new0 (guint8, 50 * 40);
  float out[784];

  /* below the threshold is not ink */
  img[5 * 40 + 5] = NN_DIGITS_INK_THRESHOLD;
  g_assert_false (nn_digits_preprocess (img, 40, 50, 40, out));
  for (int i = 0; i < 784; i++)
    g_assert_cmpfloat (out[i], ==, 0.0f);
}

/* a solid 30 x 60 bar: its longer side becomes 20, its width 10, centred on (14, 14) */
static void
test_box_and_centre (void)
{
  const int W = 100, H = 90, stride = 104;
  g_autofree guint8 *img = g_new0 (guint8, stride * H);
  float out[784];
  int x0 = 28, x1 = -1, y0 = 28, y1 = -1;
  double mass = 0, mx = 0, my = 0;

  for (int y = 20; y < 80; y++)
    for (int x = 5; x < 35; x++)
      img[y * stride + x] = 255;
  /* past the row's width: padding, not image */
  img[50 * stride + 101] = 255;
  g_assert_true (nn_digits_preprocess (img, W, H, stride, out));
  for (int y = 0; y < 28; y++)
    for (int x = 0; x < 28; x++)
      if (out[y * 28 + x] > 0)
        {
          g_assert_cmpfloat_with_epsilon (out[y * 28 + x], 1.0f, 1e-5);
          x0 = MIN (x0, x), x1 = MAX (x1, x), y0 = MIN (y0, y), y1 = MAX (y1, y);
          mass += out[y * 28 + x];
          mx += x * out[y * 28 + x];
          my += y * out[y * 28 + x];
        }
  g_assert_cmpint (y1 - y0 + 1, ==, 20);
  g_assert_cmpint (x1 - x0 + 1, ==, 10);
  g_assert_cmpfloat (fabs (mx / mass - 14.0), <=, 0.5);
  g_assert_cmpfloat (fabs (my / mass - 14.0), <=, 0.5);
}

/* a thin stroke is averaged into grey, not lost */
static void
test_thin_stroke (void)
{
  g_autofree guint8 *img = g_new0 (guint8, 200 * 200);
  float out[784], sum = 0;

  for (int y = 0; y < 200; y++)
    img[y * 200 + y] = 255;
  g_assert_true (nn_digits_preprocess (img, 200, 200, 200, out));
  for (int i = 0; i < 784; i++)
    sum += out[i];
  /* 200 px of 1-px line scaled by 1/10: about 20 px of length, 0.1 wide */
  g_assert_cmpfloat (sum, >, 1.0f);
  g_assert_cmpfloat (sum, <, 4.0f);
}

/* --- the bundled model on synthetic drawings --- */

static void
test_model_strokes (void)
{
  g_autofree char *model_path = g_build_filename (MAGPIE_SOURCE_DIR, "data", "models",
                                                  "digits.onnx", NULL);
  g_autofree char *sidecar = g_build_filename (MAGPIE_SOURCE_DIR, "data", "models",
                                               "digits.json", NULL);
  g_autoptr(GError) error = NULL;
  g_autoptr(NnModel) model = nn_model_new_from_file (model_path, &error);
  g_autoptr(NnImageConfig) cfg = nn_image_config_new ();
  g_autoptr(GRand) rand = g_rand_new_with_seed (2024);
  g_autofree guint8 *img = g_new (guint8, CANVAS * CANVAS);
  const int per_digit = 40;
  int64_t ne[4] = { 1, 1, 28, 28 };
  g_autoptr(NnTensor) x = nn_tensor_new (NN_DTYPE_FLOAT, 4, ne);
  int correct = 0, per[10] = { 0 };

  g_assert_no_error (error);
  g_assert_true (nn_image_config_load (cfg, sidecar, &error));
  g_assert_no_error (error);
  for (int d = 0; d < 10; d++)
    for (int i = 0; i < per_digit; i++)
      {
        const NnTensor *y;
        const float *p;
        int best = 0;

        draw_digit (img, d, i, rand);
        g_assert_true (nn_digits_preprocess (img, CANVAS, CANVAS, CANVAS, x->data));
        nn_digits_normalize (cfg, x->data);
        g_assert_true (nn_model_run (model, x, 1, &error));
        y = nn_model_get_output (model, 0);
        p = y->data;
        for (int k = 1; k < 10; k++)
          if (p[k] > p[best])
            best = k;
        if (best == d)
          correct++, per[d]++;
      }
  for (int d = 0; d < 10; d++)
    g_test_message ("digit %d: %d of %d recognised", d, per[d], per_digit);
  g_test_message ("%d of %d drawings recognised (%.1f %%)", correct, 10 * per_digit,
                  100.0 * correct / (10 * per_digit));
  g_assert_cmpfloat ((double) correct / (10 * per_digit), >=, 0.97);
}

static void
test_labels (void)
{
  /* untranslated here (no catalogue bound): known names come back as they are, others too */
  g_assert_cmpstr (nn_label_display_name ("cat"), ==, "cat");
  g_assert_cmpstr (nn_label_display_name ("n02123045 tabby"), ==, "n02123045 tabby");
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/nn/digits/empty", test_empty);
  g_test_add_func ("/nn/digits/box-and-centre", test_box_and_centre);
  g_test_add_func ("/nn/digits/thin-stroke", test_thin_stroke);
  g_test_add_func ("/nn/digits/model-on-strokes", test_model_strokes);
  g_test_add_func ("/nn/labels/display-name", test_labels);
  return g_test_run ();
}
