/* magpie-photo-tile.h - one photo in the gallery grid: thumbnail, state, tag chips */
#pragma once

#include <adwaita.h>

#include "magpie-photo.h"

G_BEGIN_DECLS

/* Chips on a tile; the photo page shows all tags. */
#define MAGPIE_PHOTO_TILE_MAX_CHIPS 2

#define MAGPIE_TYPE_PHOTO_TILE (magpie_photo_tile_get_type ())

G_DECLARE_FINAL_TYPE (MagpiePhotoTile, magpie_photo_tile, MAGPIE, PHOTO_TILE, GtkWidget)

GtkWidget   *magpie_photo_tile_new            (void);
MagpiePhoto *magpie_photo_tile_get_photo      (MagpiePhotoTile *self);
void         magpie_photo_tile_set_photo      (MagpiePhotoTile *self,
                                               MagpiePhoto     *photo);
double       magpie_photo_tile_get_threshold  (MagpiePhotoTile *self);
void         magpie_photo_tile_set_threshold  (MagpiePhotoTile *self,
                                               double           threshold);
GtkWidget   *magpie_tag_chip_new              (const MagpieTag *tag);
char        *magpie_tag_describe              (const MagpieTag *tag);

G_END_DECLS
