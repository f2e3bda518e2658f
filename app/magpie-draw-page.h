/* magpie-draw-page.h - the Draw page: a canvas, and what the digit model makes of it */
#pragma once

#include <adwaita.h>

#include "magpie-digits.h"

G_BEGIN_DECLS

#define MAGPIE_TYPE_DRAW_PAGE (magpie_draw_page_get_type ())

G_DECLARE_FINAL_TYPE (MagpieDrawPage, magpie_draw_page, MAGPIE, DRAW_PAGE, GtkWidget)

MagpieDigits  *magpie_draw_page_get_digits     (MagpieDrawPage *self);
void           magpie_draw_page_set_digits     (MagpieDrawPage *self,
                                                MagpieDigits   *digits);
GtkGesture    *magpie_draw_page_get_drag       (MagpieDrawPage *self);
GtkWidget     *magpie_draw_page_get_canvas     (MagpieDrawPage *self);
guint          magpie_draw_page_get_n_strokes  (MagpieDrawPage *self);
int            magpie_draw_page_get_prediction (MagpieDrawPage *self);
const float   *magpie_draw_page_get_probabilities (MagpieDrawPage *self);
gboolean       magpie_draw_page_is_busy        (MagpieDrawPage *self);
void           magpie_draw_page_undo           (MagpieDrawPage *self);
void           magpie_draw_page_clear          (MagpieDrawPage *self);

G_END_DECLS
