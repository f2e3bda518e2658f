/* magpie-draw-page.c - the Draw page: a canvas, and what the digit model makes of it
 *
 * Strokes are kept in canvas units (0..1), so the drawing survives a resize and the model
 * sees the same strokes whatever the window size. Every stroke segment asks for a new
 * prediction; while one runs, later segments only mark the drawing changed, and the newest
 * drawing is predicted as soon as the running one is done, so the bars never lag by more
 * than one prediction and the model is never queued up behind a fast hand.
 */
#define G_LOG_DOMAIN "magpie-draw-page"

#include "config.h"

#include "magpie-draw-page.h"

#include <glib/gi18n.h>
#include <math.h>

struct _MagpieDrawPage {
  GtkWidget           parent_instance;

  MagpieDigits       *digits;
  GCancellable       *cancellable;
  GPtrArray          *strokes;        /* GArray of MagpiePoint */
  GArray             *current;        /* the stroke being drawn, or NULL */
  double              drag_x;
  double              drag_y;
  gboolean            predicting;
  gboolean            changed;
  MagpieDigitsResult  result;
  GtkLevelBar        *levels[MAGPIE_DIGITS_N_CLASSES];
  GtkLabel           *percents[MAGPIE_DIGITS_N_CLASSES];
  GtkGesture         *drag;

  /* template children */
  GtkStack           *stack;
  GtkDrawingArea     *canvas;
  GtkLabel           *prediction_label;
  GtkGrid            *bars;
};

G_DEFINE_FINAL_TYPE (MagpieDrawPage, magpie_draw_page, GTK_TYPE_WIDGET)

enum {
  PROP_0,
  PROP_PREDICTION,
  PROP_BUSY,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

static void request_prediction (MagpieDrawPage *self);

static void
show_result (MagpieDrawPage *self)
{
  g_autofree char *text = NULL;
  g_autofree char *description = NULL;
  int best = self->result.best;

  for (int i = 0; i < MAGPIE_DIGITS_N_CLASSES; i++)
    {
      double p = best >= 0 ? self->result.probabilities[i] : 0.0;
      g_autofree char *percent = g_strdup_printf (_("%d %%"), (int) (p * 100.0 + 0.5));
      GtkWidget *row = GTK_WIDGET (self->levels[i]);

      gtk_level_bar_set_value (self->levels[i], p);
      gtk_label_set_label (self->percents[i], percent);
      if (i == best)
        gtk_widget_add_css_class (row, "best");
      else
        gtk_widget_remove_css_class (row, "best");
    }

  if (best < 0)
    {
      text = g_strdup (_("Draw a digit"));
      description = g_strdup (_("Empty canvas"));
    }
  else
    {
      int percent = (int) (self->result.probabilities[best] * 100.0 + 0.5);

      /* Translators: the digit the model sees, and how sure it is in percent */
      text = g_strdup_printf (_("Looks like %d (%d %%)"), best, percent);
      /* Translators: the canvas's description for screen readers */
      description = g_strdup_printf (_("Drawn digit recognised as %d, %d %% sure"), best,
                                     percent);
    }
  gtk_label_set_label (self->prediction_label, text);
  gtk_accessible_update_property (GTK_ACCESSIBLE (self->canvas),
                                  GTK_ACCESSIBLE_PROPERTY_DESCRIPTION, description, -1);
}

static void
predicted_cb (GObject      *object,
              GAsyncResult *result,
              gpointer      user_data)
{
  MagpieDrawPage *self = user_data;
  g_autofree MagpieDigitsResult *digits_result = NULL;
  g_autoptr(GError) error = NULL;

  digits_result = magpie_digits_predict_finish (MAGPIE_DIGITS (object), result, &error);
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    {
      g_object_unref (self);
      return;
    }
  self->predicting = FALSE;
  if (digits_result == NULL)
    {
      g_warning ("Cannot recognise the drawing: %s", error->message);
      gtk_stack_set_visible_child_name (self->stack, "unavailable");
    }
  else
    {
      g_debug ("Predicted %d in %.2f ms (model %.2f ms)", digits_result->best,
               digits_result->elapsed_us / 1000.0, digits_result->inference_us / 1000.0);
      self->result = *digits_result;
      show_result (self);
      g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_PREDICTION]);
    }
  if (self->changed)
    request_prediction (self);
  else
    g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_BUSY]);
  g_object_unref (self);
}

static void
request_prediction (MagpieDrawPage *self)
{
  gboolean was_busy = self->predicting || self->changed;

  if (self->digits == NULL)
    return;
  if (self->predicting)
    {
      self->changed = TRUE;
      return;
    }
  self->changed = FALSE;
  self->predicting = TRUE;
  magpie_digits_predict_async (self->digits, self->strokes, self->cancellable, predicted_cb,
                               g_object_ref (self));
  if (!was_busy)
    g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_BUSY]);
}

/* Strokes --------------------------------------------------------------------------------- */

static void
add_point (MagpieDrawPage *self,
           double          x,
           double          y)
{
  int width = gtk_widget_get_width (GTK_WIDGET (self->canvas));
  int height = gtk_widget_get_height (GTK_WIDGET (self->canvas));
  int side = MAX (1, MIN (width, height));
  MagpiePoint point;

  /* The canvas is square in its aspect frame; strokes outside it are clamped to its edge. */
  point.x = CLAMP (x / side, 0.0, 1.0);
  point.y = CLAMP (y / side, 0.0, 1.0);
  g_array_append_val (self->current, point);
}

static void
stroke_begin (MagpieDrawPage *self,
              double          x,
              double          y)
{
  self->current = g_array_new (FALSE, FALSE, sizeof (MagpiePoint));
  g_ptr_array_add (self->strokes, self->current);
  add_point (self, x, y);
  gtk_widget_queue_draw (GTK_WIDGET (self->canvas));
  request_prediction (self);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "draw.undo", TRUE);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "draw.clear", TRUE);
}

static void
stroke_extend (MagpieDrawPage *self,
               double          x,
               double          y)
{
  if (self->current == NULL)
    return;
  add_point (self, x, y);
  gtk_widget_queue_draw (GTK_WIDGET (self->canvas));
  request_prediction (self);
}

static void
stroke_end (MagpieDrawPage *self)
{
  self->current = NULL;
}

static void
drag_begin_cb (GtkGestureDrag *gesture,
               double          x,
               double          y,
               MagpieDrawPage *self)
{
  GdkDevice *device = gtk_gesture_get_device (GTK_GESTURE (gesture));

  if (device != NULL && gdk_device_get_source (device) == GDK_SOURCE_PEN)
    {
      gtk_gesture_set_state (GTK_GESTURE (gesture), GTK_EVENT_SEQUENCE_DENIED);
      return;
    }
  self->drag_x = x;
  self->drag_y = y;
  stroke_begin (self, x, y);
}

static void
drag_update_cb (GtkGestureDrag *gesture,
                double          dx,
                double          dy,
                MagpieDrawPage *self)
{
  stroke_extend (self, self->drag_x + dx, self->drag_y + dy);
}

static void
drag_end_cb (GtkGestureDrag *gesture,
             double          dx,
             double          dy,
             MagpieDrawPage *self)
{
  if (self->current == NULL)
    return;
  stroke_extend (self, self->drag_x + dx, self->drag_y + dy);
  stroke_end (self);
}

/* A pen is followed by the stylus gesture alone (the drag leaves it be, see
 * drag_begin_cb()), with every position the tablet reported since the last event. */
static void
stylus_down_cb (GtkGestureStylus *stylus,
                double            x,
                double            y,
                MagpieDrawPage   *self)
{
  stroke_begin (self, x, y);
}

static void
stylus_motion_cb (GtkGestureStylus *stylus,
                  double            x,
                  double            y,
                  MagpieDrawPage   *self)
{
  g_autofree GdkTimeCoord *backlog = NULL;
  guint n = 0;

  if (self->current == NULL)
    return;
  if (gtk_gesture_stylus_get_backlog (stylus, &backlog, &n))
    for (guint i = 0; i < n; i++)
      if ((backlog[i].flags & GDK_AXIS_FLAG_X) && (backlog[i].flags & GDK_AXIS_FLAG_Y))
        add_point (self, backlog[i].axes[GDK_AXIS_X], backlog[i].axes[GDK_AXIS_Y]);
  stroke_extend (self, x, y);
}

static void
stylus_up_cb (GtkGestureStylus *stylus,
              double            x,
              double            y,
              MagpieDrawPage   *self)
{
  stroke_extend (self, x, y);
  stroke_end (self);
}

static void
draw_strokes (GtkDrawingArea *area,
              cairo_t        *cr,
              int             width,
              int             height,
              gpointer        user_data)
{
  MagpieDrawPage *self = user_data;
  int side = MIN (width, height);

  cairo_set_source_rgb (cr, 0.1, 0.1, 0.12);
  cairo_scale (cr, side, side);
  magpie_digits_trace (cr, self->strokes);
}

static void
strokes_changed (MagpieDrawPage *self)
{
  gtk_widget_queue_draw (GTK_WIDGET (self->canvas));
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "draw.undo", self->strokes->len > 0);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "draw.clear", self->strokes->len > 0);
  request_prediction (self);
}

/* Takes back the last stroke. */
void
magpie_draw_page_undo (MagpieDrawPage *self)
{
  g_return_if_fail (MAGPIE_IS_DRAW_PAGE (self));

  if (self->strokes->len == 0)
    return;
  self->current = NULL;
  g_ptr_array_set_size (self->strokes, self->strokes->len - 1);
  strokes_changed (self);
}

void
magpie_draw_page_clear (MagpieDrawPage *self)
{
  g_return_if_fail (MAGPIE_IS_DRAW_PAGE (self));

  self->current = NULL;
  g_ptr_array_set_size (self->strokes, 0);
  strokes_changed (self);
}

static void
undo_action_cb (GtkWidget  *widget,
                const char *action_name,
                GVariant   *parameter)
{
  magpie_draw_page_undo (MAGPIE_DRAW_PAGE (widget));
}

static void
clear_action_cb (GtkWidget  *widget,
                 const char *action_name,
                 GVariant   *parameter)
{
  magpie_draw_page_clear (MAGPIE_DRAW_PAGE (widget));
}

/* Accessors ------------------------------------------------------------------------------- */

MagpieDigits *
magpie_draw_page_get_digits (MagpieDrawPage *self)
{
  g_return_val_if_fail (MAGPIE_IS_DRAW_PAGE (self), NULL);
  return self->digits;
}

/* The model the page asks; NULL shows that recognition is unavailable. */
void
magpie_draw_page_set_digits (MagpieDrawPage *self,
                             MagpieDigits   *digits)
{
  g_return_if_fail (MAGPIE_IS_DRAW_PAGE (self));
  g_return_if_fail (digits == NULL || MAGPIE_IS_DIGITS (digits));

  g_set_object (&self->digits, digits);
  gtk_stack_set_visible_child_name (self->stack, digits != NULL ? "canvas" : "unavailable");
  if (digits != NULL && self->strokes->len > 0)
    request_prediction (self);
}

/* The drag gesture strokes come from, for tests that draw the way a hand does. */
GtkGesture *
magpie_draw_page_get_drag (MagpieDrawPage *self)
{
  g_return_val_if_fail (MAGPIE_IS_DRAW_PAGE (self), NULL);
  return self->drag;
}

GtkWidget *
magpie_draw_page_get_canvas (MagpieDrawPage *self)
{
  g_return_val_if_fail (MAGPIE_IS_DRAW_PAGE (self), NULL);
  return GTK_WIDGET (self->canvas);
}

guint
magpie_draw_page_get_n_strokes (MagpieDrawPage *self)
{
  g_return_val_if_fail (MAGPIE_IS_DRAW_PAGE (self), 0);
  return self->strokes->len;
}

/* The digit shown, or -1 for an empty canvas. */
int
magpie_draw_page_get_prediction (MagpieDrawPage *self)
{
  g_return_val_if_fail (MAGPIE_IS_DRAW_PAGE (self), -1);
  return self->result.best;
}

const float *
magpie_draw_page_get_probabilities (MagpieDrawPage *self)
{
  g_return_val_if_fail (MAGPIE_IS_DRAW_PAGE (self), NULL);
  return self->result.probabilities;
}

/* Whether the shown prediction is behind the drawing. */
gboolean
magpie_draw_page_is_busy (MagpieDrawPage *self)
{
  g_return_val_if_fail (MAGPIE_IS_DRAW_PAGE (self), FALSE);
  return self->predicting || self->changed;
}

/* Object ---------------------------------------------------------------------------------- */

static void
magpie_draw_page_dispose (GObject *object)
{
  MagpieDrawPage *self = MAGPIE_DRAW_PAGE (object);
  GtkWidget *child;

  g_cancellable_cancel (self->cancellable);
  gtk_widget_dispose_template (GTK_WIDGET (self), MAGPIE_TYPE_DRAW_PAGE);
  while ((child = gtk_widget_get_first_child (GTK_WIDGET (self))) != NULL)
    gtk_widget_unparent (child);
  g_clear_object (&self->digits);
  g_clear_object (&self->cancellable);
  g_clear_pointer (&self->strokes, g_ptr_array_unref);

  G_OBJECT_CLASS (magpie_draw_page_parent_class)->dispose (object);
}

static void
magpie_draw_page_get_property (GObject    *object,
                               guint       prop_id,
                               GValue     *value,
                               GParamSpec *pspec)
{
  MagpieDrawPage *self = MAGPIE_DRAW_PAGE (object);

  switch (prop_id)
    {
    case PROP_PREDICTION:
      g_value_set_int (value, self->result.best);
      break;
    case PROP_BUSY:
      g_value_set_boolean (value, magpie_draw_page_is_busy (self));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
magpie_draw_page_class_init (MagpieDrawPageClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->dispose = magpie_draw_page_dispose;
  object_class->get_property = magpie_draw_page_get_property;

  properties[PROP_PREDICTION] =
    g_param_spec_int ("prediction", NULL, NULL, -1, 9, -1,
                      G_PARAM_READABLE | G_PARAM_STATIC_STRINGS | G_PARAM_EXPLICIT_NOTIFY);
  properties[PROP_BUSY] =
    g_param_spec_boolean ("busy", NULL, NULL, FALSE,
                          G_PARAM_READABLE | G_PARAM_STATIC_STRINGS | G_PARAM_EXPLICIT_NOTIFY);
  g_object_class_install_properties (object_class, N_PROPS, properties);

  gtk_widget_class_set_template_from_resource (widget_class,
                                               RESOURCE_BASE "/magpie-draw-page.ui");
  gtk_widget_class_bind_template_child (widget_class, MagpieDrawPage, stack);
  gtk_widget_class_bind_template_child (widget_class, MagpieDrawPage, canvas);
  gtk_widget_class_bind_template_child (widget_class, MagpieDrawPage, prediction_label);
  gtk_widget_class_bind_template_child (widget_class, MagpieDrawPage, bars);

  gtk_widget_class_install_action (widget_class, "draw.undo", NULL, undo_action_cb);
  gtk_widget_class_install_action (widget_class, "draw.clear", NULL, clear_action_cb);
  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_z, GDK_CONTROL_MASK,
                                       "draw.undo", NULL);
  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_Delete, GDK_CONTROL_MASK,
                                       "draw.clear", NULL);

  gtk_widget_class_set_layout_manager_type (widget_class, GTK_TYPE_BIN_LAYOUT);
}

static void
magpie_draw_page_init (MagpieDrawPage *self)
{
  GtkGesture *stylus;

  gtk_widget_init_template (GTK_WIDGET (self));

  self->cancellable = g_cancellable_new ();
  self->strokes = g_ptr_array_new_with_free_func ((GDestroyNotify) g_array_unref);
  self->result.best = -1;

  for (int i = 0; i < MAGPIE_DIGITS_N_CLASSES; i++)
    {
      g_autofree char *digit = g_strdup_printf ("%d", i);
      GtkWidget *label = gtk_label_new (digit);
      GtkWidget *level = gtk_level_bar_new_for_interval (0.0, 1.0);
      GtkWidget *percent = gtk_label_new (NULL);

      gtk_widget_add_css_class (label, "numeric");
      gtk_widget_set_hexpand (level, TRUE);
      gtk_widget_set_valign (level, GTK_ALIGN_CENTER);
      gtk_level_bar_remove_offset_value (GTK_LEVEL_BAR (level), GTK_LEVEL_BAR_OFFSET_LOW);
      gtk_level_bar_remove_offset_value (GTK_LEVEL_BAR (level), GTK_LEVEL_BAR_OFFSET_HIGH);
      gtk_level_bar_remove_offset_value (GTK_LEVEL_BAR (level), GTK_LEVEL_BAR_OFFSET_FULL);
      gtk_label_set_xalign (GTK_LABEL (percent), 1.0);
      gtk_label_set_width_chars (GTK_LABEL (percent), 5);
      gtk_widget_add_css_class (percent, "numeric");
      gtk_widget_add_css_class (percent, "dim-label");
      gtk_accessible_update_relation (GTK_ACCESSIBLE (level), GTK_ACCESSIBLE_RELATION_LABELLED_BY,
                                      label, NULL, -1);
      gtk_grid_attach (self->bars, label, 0, i, 1, 1);
      gtk_grid_attach (self->bars, level, 1, i, 1, 1);
      gtk_grid_attach (self->bars, percent, 2, i, 1, 1);
      self->levels[i] = GTK_LEVEL_BAR (level);
      self->percents[i] = GTK_LABEL (percent);
    }

  gtk_widget_set_cursor_from_name (GTK_WIDGET (self->canvas), "crosshair");
  gtk_drawing_area_set_draw_func (self->canvas, draw_strokes, self, NULL);

  /* Mouse and touch. */
  self->drag = gtk_gesture_drag_new ();
  gtk_gesture_single_set_button (GTK_GESTURE_SINGLE (self->drag), GDK_BUTTON_PRIMARY);
  g_signal_connect (self->drag, "drag-begin", G_CALLBACK (drag_begin_cb), self);
  g_signal_connect (self->drag, "drag-update", G_CALLBACK (drag_update_cb), self);
  g_signal_connect (self->drag, "drag-end", G_CALLBACK (drag_end_cb), self);
  gtk_widget_add_controller (GTK_WIDGET (self->canvas), GTK_EVENT_CONTROLLER (self->drag));

  /* Pens: with the tablet's full motion history rather than coalesced pointer motion. */
  stylus = gtk_gesture_stylus_new ();
  g_signal_connect (stylus, "down", G_CALLBACK (stylus_down_cb), self);
  g_signal_connect (stylus, "motion", G_CALLBACK (stylus_motion_cb), self);
  g_signal_connect (stylus, "up", G_CALLBACK (stylus_up_cb), self);
  gtk_widget_add_controller (GTK_WIDGET (self->canvas), GTK_EVENT_CONTROLLER (stylus));

  gtk_widget_action_set_enabled (GTK_WIDGET (self), "draw.undo", FALSE);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "draw.clear", FALSE);
  gtk_stack_set_visible_child_name (self->stack, "unavailable");
  show_result (self);
}
