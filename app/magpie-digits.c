/* magpie-digits.c - the digit model: strokes on a canvas in, ten probabilities out
 *
 * A stroke is a GArray of MagpiePoint. Prediction copies the strokes, then on the model's own
 * thread renders them with a round pen into a MAGPIE_DIGITS_RASTER square, prepares that as
 * MNIST digits were prepared (nn_digits_preprocess, the same as magpied's /v1/predict/digit),
 * normalises it as the model's sidecar says and runs the model. The model is loaded by the
 * first prediction.
 */
#define G_LOG_DOMAIN "magpie-digits"

#include "config.h"

#include "magpie-digits.h"

#include "nn-labels.h"

#include <cairo.h>
#include <math.h>
#include <string.h>

#include "magpie-client-error.h"
#include "nn-digits.h"
#include "nn-image.h"
#include "nn.h"

struct _MagpieDigits {
  GObject      parent_instance;

  char          *model_path;
  GThreadPool   *pool;        /* NULL once closed */
  gint           closed;      /* atomic: queued work is dropped */
  /* only touched on the pool's thread */
  NnModel       *model;
  NnImageConfig *config;
  GError        *load_error;
};

G_DEFINE_FINAL_TYPE (MagpieDigits, magpie_digits, G_TYPE_OBJECT)

/* Strokes @strokes (GArray of MagpiePoint each) on @cr, scaled to canvas units, with the
 * round pen: quadratic curves through the midpoints of the samples, so the line is smooth
 * and still passes through the area of every sample. The canvas and the model both draw
 * with this, so the model sees what people see. */
void
magpie_digits_trace (cairo_t   *cr,
                     GPtrArray *strokes)
{
  cairo_set_line_cap (cr, CAIRO_LINE_CAP_ROUND);
  cairo_set_line_join (cr, CAIRO_LINE_JOIN_ROUND);
  cairo_set_line_width (cr, MAGPIE_DIGITS_PEN_WIDTH);
  for (guint s = 0; s < strokes->len; s++)
    {
      GArray *points = strokes->pdata[s];
      const MagpiePoint *p = (const MagpiePoint *) points->data;

      if (points->len == 0)
        continue;
      cairo_move_to (cr, p[0].x, p[0].y);
      if (points->len == 1)
        cairo_line_to (cr, p[0].x, p[0].y);
      for (guint i = 1; i + 1 < points->len; i++)
        {
          double mx = (p[i].x + p[i + 1].x) / 2;
          double my = (p[i].y + p[i + 1].y) / 2;
          double x0, y0;

          cairo_get_current_point (cr, &x0, &y0);
          cairo_curve_to (cr, x0 + 2.0 / 3.0 * (p[i].x - x0), y0 + 2.0 / 3.0 * (p[i].y - y0),
                          mx + 2.0 / 3.0 * (p[i].x - mx), my + 2.0 / 3.0 * (p[i].y - my),
                          mx, my);
        }
      if (points->len > 1)
        cairo_line_to (cr, p[points->len - 1].x, p[points->len - 1].y);
      cairo_stroke (cr);
    }
}

/* Renders @strokes (GArray of MagpiePoint, canvas units) white on black into @gray, a
 * @size × @size byte image, with the same round pen and smoothing the canvas draws. */
void
magpie_digits_rasterize (GPtrArray *strokes,
                         guint8    *gray,
                         int        size)
{
  cairo_surface_t *surface;
  cairo_t *cr;
  int stride;
  guint8 *data;

  surface = cairo_image_surface_create (CAIRO_FORMAT_A8, size, size);
  cr = cairo_create (surface);
  cairo_scale (cr, size, size);
  magpie_digits_trace (cr, strokes);
  cairo_destroy (cr);
  cairo_surface_flush (surface);

  data = cairo_image_surface_get_data (surface);
  stride = cairo_image_surface_get_stride (surface);
  for (int y = 0; y < size; y++)
    memcpy (gray + (gsize) y * size, data + (gsize) y * stride, size);
  cairo_surface_destroy (surface);
}

static gboolean
digits_load (MagpieDigits  *self,
             GError       **error)
{
  g_autofree char *sidecar = NULL;
  g_autoptr(GError) local_error = NULL;
  int64_t ne[NN_MAX_DIMS];

  if (self->model_path == NULL)
    {
      g_set_error_literal (error, MAGPIE_CLIENT_ERROR, MAGPIE_CLIENT_ERROR_NO_MODEL,
                           "no digit model is installed");
      return FALSE;
    }
  self->model = nn_model_new_from_file (self->model_path, &local_error);
  if (self->model == NULL)
    goto fail;
  /* One thread: a 28 × 28 model is done before more threads would have started. */
  nn_model_set_threads (self->model, 1);
  if (nn_model_get_input_shape (self->model, 0, ne) != 4 || ne[1] != 1 ||
      ne[2] != NN_DIGITS_SIZE || ne[3] != NN_DIGITS_SIZE)
    {
      g_set_error (&local_error, MAGPIE_CLIENT_ERROR, MAGPIE_CLIENT_ERROR_NO_MODEL,
                   "the model does not take one 28 × 28 grey image");
      goto fail;
    }

  self->config = nn_image_config_new ();
  sidecar = nn_image_sidecar_path (self->model_path);
  if (!nn_image_config_load (self->config, sidecar, &local_error))
    goto fail;
  return TRUE;

fail:
  g_set_error (error, MAGPIE_CLIENT_ERROR, MAGPIE_CLIENT_ERROR_NO_MODEL,
               "cannot use the digit model %s: %s", self->model_path, local_error->message);
  g_clear_pointer (&self->model, nn_model_free);
  g_clear_pointer (&self->config, nn_image_config_free);
  return FALSE;
}

static void
predict_worker (gpointer data,
                gpointer user_data)
{
  g_autoptr(GTask) task = data;
  MagpieDigits *self = user_data;
  GPtrArray *strokes = g_task_get_task_data (task);
  g_autofree MagpieDigitsResult *result = g_new0 (MagpieDigitsResult, 1);
  guint8 gray[MAGPIE_DIGITS_RASTER * MAGPIE_DIGITS_RASTER];
  float input[NN_DIGITS_SIZE * NN_DIGITS_SIZE];
  int64_t shape[4] = { 1, 1, NN_DIGITS_SIZE, NN_DIGITS_SIZE };
  NnTensor tensor = { NN_DTYPE_FLOAT, 4, { 0 }, input, NULL };
  const NnTensor *output;
  GError *error = NULL;
  gint64 start;

  if (g_atomic_int_get (&self->closed) || g_task_return_error_if_cancelled (task))
    {
      if (!g_task_had_error (task))
        g_task_return_new_error (task, G_IO_ERROR, G_IO_ERROR_CANCELLED, "closed");
      return;
    }
  if (self->model == NULL && self->load_error == NULL && !digits_load (self, &self->load_error))
    g_warning ("Digits are not recognised: %s", self->load_error->message);
  if (self->load_error != NULL)
    {
      g_task_return_error (task, g_error_copy (self->load_error));
      return;
    }

  start = g_get_monotonic_time ();
  result->best = -1;
  magpie_digits_rasterize (strokes, gray, MAGPIE_DIGITS_RASTER);
  if (!nn_digits_preprocess (gray, MAGPIE_DIGITS_RASTER, MAGPIE_DIGITS_RASTER,
                             MAGPIE_DIGITS_RASTER, input))
    {
      result->elapsed_us = g_get_monotonic_time () - start;
      g_task_return_pointer (task, g_steal_pointer (&result), g_free);
      return;
    }
  nn_digits_normalize (self->config, input);
  memcpy (tensor.ne, shape, sizeof shape);
  tensor.name = nn_model_get_input_name (self->model, 0);
  result->inference_us = g_get_monotonic_time ();
  if (!nn_model_run (self->model, &tensor, 1, &error))
    {
      g_task_return_error (task, error);
      return;
    }
  result->inference_us = g_get_monotonic_time () - result->inference_us;
  output = nn_model_get_output (self->model, 0);
  if (nn_tensor_numel (output) != MAGPIE_DIGITS_N_CLASSES)
    {
      g_task_return_new_error (task, MAGPIE_CLIENT_ERROR, MAGPIE_CLIENT_ERROR_NO_MODEL,
                               "the digit model gives %" G_GINT64_FORMAT " outputs, not 10",
                               nn_tensor_numel (output));
      return;
    }
  memcpy (result->probabilities, output->data, sizeof result->probabilities);
  nn_scores_to_probabilities (result->probabilities, MAGPIE_DIGITS_N_CLASSES,
                              result->probabilities);
  result->best = 0;
  for (int i = 1; i < MAGPIE_DIGITS_N_CLASSES; i++)
    if (result->probabilities[i] > result->probabilities[result->best])
      result->best = i;
  result->elapsed_us = g_get_monotonic_time () - start;
  g_task_return_pointer (task, g_steal_pointer (&result), g_free);
}

static void
magpie_digits_finalize (GObject *object)
{
  MagpieDigits *self = MAGPIE_DIGITS (object);

  if (self->pool != NULL)
    g_thread_pool_free (self->pool, FALSE, TRUE);
  g_clear_pointer (&self->model, nn_model_free);
  g_clear_pointer (&self->config, nn_image_config_free);
  g_clear_error (&self->load_error);
  g_free (self->model_path);

  G_OBJECT_CLASS (magpie_digits_parent_class)->finalize (object);
}

static void
magpie_digits_class_init (MagpieDigitsClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = magpie_digits_finalize;
}

static void
magpie_digits_init (MagpieDigits *self)
{
  self->pool = g_thread_pool_new (predict_worker, self, 1, FALSE, NULL);
}

/* The ONNX model at @model_path, with its sidecar (nn-image.h: scale, mean, std) beside it;
 * NULL makes one that says no model is installed. Loaded by the first prediction. */
MagpieDigits *
magpie_digits_new (const char *model_path)
{
  MagpieDigits *self = g_object_new (MAGPIE_TYPE_DIGITS, NULL);

  self->model_path = g_strdup (model_path);
  return self;
}

const char *
magpie_digits_get_model (MagpieDigits *self)
{
  g_return_val_if_fail (MAGPIE_IS_DIGITS (self), NULL);
  return self->model_path;
}

static GPtrArray *
copy_strokes (GPtrArray *strokes)
{
  GPtrArray *copy = g_ptr_array_new_with_free_func ((GDestroyNotify) g_array_unref);

  for (guint i = 0; i < strokes->len; i++)
    {
      GArray *points = strokes->pdata[i];
      GArray *points_copy = g_array_sized_new (FALSE, FALSE, sizeof (MagpiePoint), points->len);

      g_array_append_vals (points_copy, points->data, points->len);
      g_ptr_array_add (copy, points_copy);
    }
  return copy;
}

/* Predicts the digit @strokes (GArray of MagpiePoint each; copied) draw. */
void
magpie_digits_predict_async (MagpieDigits        *self,
                             GPtrArray           *strokes,
                             GCancellable        *cancellable,
                             GAsyncReadyCallback  callback,
                             gpointer             user_data)
{
  GTask *task;

  g_return_if_fail (MAGPIE_IS_DIGITS (self));
  g_return_if_fail (strokes != NULL);

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, magpie_digits_predict_async);
  g_task_set_task_data (task, copy_strokes (strokes), (GDestroyNotify) g_ptr_array_unref);
  if (self->pool == NULL)
    {
      g_task_return_new_error (task, G_IO_ERROR, G_IO_ERROR_CANCELLED, "closed");
      g_object_unref (task);
      return;
    }
  g_thread_pool_push (self->pool, task, NULL);
}

/* Drops the work still queued (it finishes as cancelled) and waits for the running piece:
 * the process may then exit without a thread still inside the model. */
void
magpie_digits_close (MagpieDigits *self)
{
  g_return_if_fail (MAGPIE_IS_DIGITS (self));

  g_atomic_int_set (&self->closed, TRUE);
  if (self->pool != NULL)
    g_thread_pool_free (g_steal_pointer (&self->pool), FALSE, TRUE);
}

MagpieDigitsResult *
magpie_digits_predict_finish (MagpieDigits  *self,
                              GAsyncResult  *result,
                              GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  return g_task_propagate_pointer (G_TASK (result), error);
}
