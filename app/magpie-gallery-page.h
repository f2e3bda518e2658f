/* magpie-gallery-page.h - the Gallery: a grid of photos, import, search, one photo's page */
#pragma once

#include <adwaita.h>

#include "magpie-library.h"

G_BEGIN_DECLS

#define MAGPIE_TYPE_GALLERY_PAGE (magpie_gallery_page_get_type ())

G_DECLARE_FINAL_TYPE (MagpieGalleryPage, magpie_gallery_page, MAGPIE, GALLERY_PAGE, GtkWidget)

MagpieLibrary  *magpie_gallery_page_get_library     (MagpieGalleryPage  *self);
void            magpie_gallery_page_set_library     (MagpieGalleryPage  *self,
                                                     MagpieLibrary      *library);
void            magpie_gallery_page_import          (MagpieGalleryPage  *self,
                                                     GFile             **files,
                                                     guint               n_files);
void            magpie_gallery_page_add_photos      (MagpieGalleryPage  *self);
void            magpie_gallery_page_paste           (MagpieGalleryPage  *self);
void            magpie_gallery_page_toggle_search   (MagpieGalleryPage  *self);
void            magpie_gallery_page_show_photo      (MagpieGalleryPage  *self,
                                                     MagpiePhoto        *photo);
MagpiePhoto    *magpie_gallery_page_get_shown_photo (MagpieGalleryPage  *self);
GtkDropTarget  *magpie_gallery_page_get_drop_target (MagpieGalleryPage  *self);
guint           magpie_gallery_page_get_n_imports   (MagpieGalleryPage  *self);

G_END_DECLS
