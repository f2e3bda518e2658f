/* magpie-digits.h - the digit model: strokes on a canvas in, ten probabilities out */
#pragma once

#include <cairo.h>
#include <gio/gio.h>

G_BEGIN_DECLS

#define MAGPIE_DIGITS_N_CLASSES 10
/* The square the strokes are rendered into before MNIST preprocessing: big enough that a
 * stroke's antialiased edge survives the scale down to 20 pixels. */
#define MAGPIE_DIGITS_RASTER 112
/* Pen width as a share of the canvas side: MNIST strokes are 2 to 3 of 28 pixels wide. */
#define MAGPIE_DIGITS_PEN_WIDTH 0.075

/* Points are in canvas units, 0..1 on both axes. */
typedef struct {
  double x;
  double y;
} MagpiePoint;

typedef struct {
  float    probabilities[MAGPIE_DIGITS_N_CLASSES];
  int      best;        /* -1 when the canvas is empty */
  gint64   elapsed_us;   /* rasterising, preprocessing and inference */
  gint64   inference_us; /* the model alone */
} MagpieDigitsResult;

#define MAGPIE_TYPE_DIGITS (magpie_digits_get_type ())

G_DECLARE_FINAL_TYPE (MagpieDigits, magpie_digits, MAGPIE, DIGITS, GObject)

MagpieDigits             *magpie_digits_new            (const char          *model_path);
const char               *magpie_digits_get_model      (MagpieDigits        *self);
void                      magpie_digits_trace          (cairo_t             *cr,
                                                        GPtrArray           *strokes);
void                      magpie_digits_rasterize      (GPtrArray           *strokes,
                                                        guint8              *gray,
                                                        int                  size);
void                      magpie_digits_predict_async  (MagpieDigits        *self,
                                                        GPtrArray           *strokes,
                                                        GCancellable        *cancellable,
                                                        GAsyncReadyCallback  callback,
                                                        gpointer             user_data);
MagpieDigitsResult       *magpie_digits_predict_finish (MagpieDigits        *self,
                                                        GAsyncResult        *result,
                                                        GError             **error);

void magpie_digits_close (MagpieDigits *self);

G_END_DECLS
