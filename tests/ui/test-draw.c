/* test-draw.c - the Draw page in a real window: digits drawn through the drag gesture */
#include "config.h"

#include <math.h>
#include <string.h>

#include "app-test-util.h"
#include "magpie-tagger.h"
#include "magpie-window.h"

static MagpieApplication *app;
static char *screenshot_dir;

/* Polylines in canvas units (0..1), a stroke ending at a NaN x; as people draw them. */
#define END { NAN, NAN }

typedef struct {
  double x;
  double y;
} P;

static GArray *
digit_strokes (int digit)
{
  GArray *points = g_array_new (FALSE, FALSE, sizeof (P));
  P end = END;

  switch (digit)
    {
    case 0:
      for (int i = 0; i <= 32; i++)
        {
          double t = 2 * G_PI * i / 32;
          P p = { 0.5 + 0.19 * sin (t), 0.5 - 0.29 * cos (t) };

          g_array_append_val (points, p);
        }
      break;
    case 1:
      {
        P line[] = { { 0.52, 0.2 }, { 0.5, 0.8 } };

        g_array_append_vals (points, line, G_N_ELEMENTS (line));
      }
      break;
    case 2:
      {
        P line[] = { { 0.3, 0.33 }, { 0.38, 0.22 }, { 0.5, 0.19 }, { 0.63, 0.23 }, { 0.68, 0.34 },
                     { 0.62, 0.47 }, { 0.3, 0.8 }, { 0.72, 0.8 } };

        g_array_append_vals (points, line, G_N_ELEMENTS (line));
      }
      break;
    case 3:
      {
        P line[] = { { 0.3, 0.25 }, { 0.45, 0.19 }, { 0.63, 0.22 }, { 0.67, 0.34 },
                     { 0.55, 0.47 }, { 0.43, 0.5 }, { 0.58, 0.53 }, { 0.69, 0.64 },
                     { 0.64, 0.77 }, { 0.47, 0.81 }, { 0.3, 0.76 } };

        g_array_append_vals (points, line, G_N_ELEMENTS (line));
      }
      break;
    case 4:
      {
        P line[] = { { 0.58, 0.2 }, { 0.3, 0.6 }, { 0.75, 0.6 }, END,
                     { 0.6, 0.38 }, { 0.6, 0.82 } };

        g_array_append_vals (points, line, G_N_ELEMENTS (line));
      }
      break;
    case 5:
      {
        P line[] = { { 0.68, 0.2 }, { 0.36, 0.2 }, { 0.33, 0.47 }, { 0.5, 0.43 },
                     { 0.65, 0.5 }, { 0.69, 0.64 }, { 0.62, 0.77 }, { 0.47, 0.81 },
                     { 0.31, 0.75 } };

        g_array_append_vals (points, line, G_N_ELEMENTS (line));
      }
      break;
    case 6:
      {
        P line[] = { { 0.63, 0.2 }, { 0.48, 0.3 }, { 0.37, 0.48 }, { 0.35, 0.66 },
                     { 0.42, 0.78 }, { 0.53, 0.81 }, { 0.64, 0.74 }, { 0.66, 0.62 },
                     { 0.57, 0.53 }, { 0.45, 0.54 }, { 0.36, 0.62 } };

        g_array_append_vals (points, line, G_N_ELEMENTS (line));
      }
      break;
    case 7:
      {
        P line[] = { { 0.3, 0.22 }, { 0.7, 0.22 }, { 0.46, 0.81 } };

        g_array_append_vals (points, line, G_N_ELEMENTS (line));
      }
      break;
    case 8:
      for (int i = 0; i <= 40; i++)
        {
          double t = 2 * G_PI * i / 40;
          P p = { 0.5 + 0.17 * sin (2 * t), 0.5 - 0.3 * cos (t) };

          g_array_append_val (points, p);
        }
      break;
    case 9:
    default:
      for (int i = 0; i <= 28; i++)
        {
          double t = 2 * G_PI * i / 28;
          P p = { 0.5 + 0.16 * cos (t), 0.36 - 0.15 * sin (t) };

          g_array_append_val (points, p);
        }
      g_array_append_val (points, end);
      {
        P line[] = { { 0.66, 0.34 }, { 0.63, 0.81 } };

        g_array_append_vals (points, line, G_N_ELEMENTS (line));
      }
      break;
    }
  return points;
}

/* Feeds a polyline to the page's drag gesture as a hand would: press, motion every couple
 * of pixels (so each segment is many events), release. */
static void
draw_polylines (MagpieDrawPage *page,
                GArray         *points)
{
  GtkGesture *drag = magpie_draw_page_get_drag (page);
  GtkWidget *canvas = magpie_draw_page_get_canvas (page);
  double side = MIN (gtk_widget_get_width (canvas), gtk_widget_get_height (canvas));
  gboolean down = FALSE;
  double x0 = 0, y0 = 0, px = 0, py = 0;

  for (guint i = 0; i <= points->len; i++)
    {
      P p = i < points->len ? g_array_index (points, P, i) : (P) END;

      if (isnan (p.x))
        {
          if (down)
            g_signal_emit_by_name (drag, "drag-end", px - x0, py - y0);
          down = FALSE;
          continue;
        }
      p.x *= side;
      p.y *= side;
      if (!down)
        {
          x0 = px = p.x;
          y0 = py = p.y;
          g_signal_emit_by_name (drag, "drag-begin", x0, y0);
          down = TRUE;
          continue;
        }
      {
        double length = hypot (p.x - px, p.y - py);
        int steps = MAX (1, (int) (length / 3.0));

        for (int s = 1; s <= steps; s++)
          g_signal_emit_by_name (drag, "drag-update",
                                 px + (p.x - px) * s / steps - x0,
                                 py + (p.y - py) * s / steps - y0);
      }
      px = p.x;
      py = p.y;
    }
}

static gboolean
idle (gpointer user_data)
{
  return !magpie_draw_page_is_busy (user_data);
}

static gboolean
canvas_ready (gpointer user_data)
{
  GtkWidget *canvas = magpie_draw_page_get_canvas (user_data);

  return gtk_widget_get_mapped (canvas) && gtk_widget_get_width (canvas) >= 200;
}

static MagpieDrawPage *
show_draw_page (MagpieWindow **window_out)
{
  MagpieWindow *window;
  MagpieDrawPage *page;
  AdwViewStack *stack;

  g_application_activate (G_APPLICATION (app));
  window = MAGPIE_WINDOW (gtk_application_get_active_window (GTK_APPLICATION (app)));
  stack = ADW_VIEW_STACK (gtk_widget_get_template_child (GTK_WIDGET (window), MAGPIE_TYPE_WINDOW,
                                                         "stack"));
  adw_view_stack_set_visible_child_name (stack, "draw");
  page = magpie_window_get_draw_page (window);
  g_assert_true (app_test_wait (canvas_ready, page, 10000));
  if (window_out != NULL)
    *window_out = window;
  return page;
}

/* With no setting the app finds data/models/digits.onnx, as an uninstalled build does. */
static void
test_digits (void)
{
  g_autofree char *bundled = magpie_tagger_find_model (NULL, "digits.onnx");
  MagpieDrawPage *page;
  int correct = 0;

  g_assert_nonnull (bundled);
  g_assert_nonnull (magpie_application_get_digits (app));
  g_assert_cmpstr (magpie_digits_get_model (magpie_application_get_digits (app)), ==, bundled);
  page = show_draw_page (NULL);

  for (int digit = 0; digit < 10; digit++)
    {
      g_autoptr(GArray) points = digit_strokes (digit);
      int predicted;

      magpie_draw_page_clear (page);
      g_assert_true (app_test_wait (idle, page, 10000));
      g_assert_cmpint (magpie_draw_page_get_prediction (page), ==, -1);
      draw_polylines (page, points);
      g_assert_true (app_test_wait (idle, page, 10000));
      predicted = magpie_draw_page_get_prediction (page);
      g_test_message ("drew %d, the model sees %d (%.0f %%)", digit, predicted,
                      100.0 * magpie_draw_page_get_probabilities (page)[MAX (predicted, 0)]);
      correct += predicted == digit;
    }
  g_test_message ("%d of 10 digits recognised", correct);
  g_assert_cmpint (correct, >=, 9);
}

static void
test_undo_clear_accessible (void)
{
  MagpieWindow *window;
  MagpieDrawPage *page;
  g_autoptr(GArray) seven = digit_strokes (7);
  g_autoptr(GArray) four = digit_strokes (4);
  g_autofree char *description = NULL;
  int predicted;

  g_assert_nonnull (magpie_application_get_digits (app));
  page = show_draw_page (&window);
  magpie_draw_page_clear (page);
  g_assert_true (app_test_wait (idle, page, 10000));
  g_assert_cmpuint (magpie_draw_page_get_n_strokes (page), ==, 0);

  draw_polylines (page, four);
  g_assert_cmpuint (magpie_draw_page_get_n_strokes (page), ==, 2);
  g_assert_true (app_test_wait (idle, page, 10000));
  predicted = magpie_draw_page_get_prediction (page);
  g_assert_cmpint (predicted, >=, 0);

  /* The canvas tells screen readers what the model sees. */
  description = g_strdup_printf ("Drawn digit recognised as %d, %d %% sure", predicted,
                                 (int) (magpie_draw_page_get_probabilities (page)[predicted] *
                                        100.0 + 0.5));
  gtk_test_accessible_assert_property (magpie_draw_page_get_canvas (page),
                                       GTK_ACCESSIBLE_PROPERTY_DESCRIPTION, description);

  /* Undo takes back the last stroke only; Clear empties the canvas. */
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (page), "draw.undo", NULL));
  g_assert_cmpuint (magpie_draw_page_get_n_strokes (page), ==, 1);
  g_assert_true (app_test_wait (idle, page, 10000));
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (page), "draw.clear", NULL));
  g_assert_cmpuint (magpie_draw_page_get_n_strokes (page), ==, 0);
  g_assert_true (app_test_wait (idle, page, 10000));
  g_assert_cmpint (magpie_draw_page_get_prediction (page), ==, -1);
  gtk_test_accessible_assert_property (magpie_draw_page_get_canvas (page),
                                       GTK_ACCESSIBLE_PROPERTY_DESCRIPTION, "Empty canvas");

  /* A seven for the README. */
  gtk_window_set_default_size (GTK_WINDOW (window), 960, 640);
  draw_polylines (page, seven);
  g_assert_true (app_test_wait (idle, page, 10000));
  g_usleep (G_USEC_PER_SEC / 2);
  while (g_main_context_iteration (NULL, FALSE))
    ;
  app_test_screenshot (screenshot_dir, "magpie-draw.png");
}

int
main (int   argc,
      char *argv[])
{
  g_autofree char *home = NULL;
  int status;

  g_test_init (&argc, &argv, NULL);
  home = app_test_isolate_dirs ();
  screenshot_dir = g_strdup (g_getenv ("MAGPIE_SCREENSHOT_DIR") != NULL
                             ? g_getenv ("MAGPIE_SCREENSHOT_DIR") : home);
  app = app_test_application_new ();

  g_test_add_func ("/ui/draw/digits", test_digits);
  g_test_add_func ("/ui/draw/undo-clear-accessible", test_undo_clear_accessible);

  status = g_test_run ();
  app_test_close_all ();
  /* As at the end of g_application_run(): no model thread outlives main(). */
  magpie_application_stop_workers (app);
  g_clear_object (&app);
  mp_test_rm_rf (home);
  g_free (screenshot_dir);
  return status;
}
