/* magpie-window.h - the main window: gallery and draw pages, connection indicator */
#pragma once

#include <adwaita.h>

#include "magpie-application.h"
#include "magpie-draw-page.h"
#include "magpie-gallery-page.h"

G_BEGIN_DECLS

#define MAGPIE_TYPE_WINDOW (magpie_window_get_type ())

G_DECLARE_FINAL_TYPE (MagpieWindow, magpie_window, MAGPIE, WINDOW, AdwApplicationWindow)

MagpieWindow      *magpie_window_new              (MagpieApplication  *application);
void               magpie_window_import           (MagpieWindow       *self,
                                                   GFile             **files,
                                                   guint               n_files);
MagpieGalleryPage *magpie_window_get_gallery_page (MagpieWindow       *self);
MagpieDrawPage    *magpie_window_get_draw_page    (MagpieWindow       *self);

G_END_DECLS
