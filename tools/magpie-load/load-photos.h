/* load-photos.h - the images magpie-load uploads or classifies */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Images bigger than the server takes are no use to send. */
#define LOAD_PHOTO_MAX_BYTES  (50 * 1024 * 1024)
#define LOAD_PHOTOS_MAX_TOTAL (G_GINT64_CONSTANT (2) * 1024 * 1024 * 1024)
#define LOAD_PHOTOS_MAX_FILES 100000

typedef struct {
  char   *name;
  char   *extension;     /* lower case, as the object key carries it */
  char   *content_type;
  GBytes *bytes;
  char   *sha256;        /* hex; the object key and the signed payload hash */
} LoadPhoto;

/* Reads the .jpg, .jpeg, .png and .webp files of @dir, sorted by name; of files with the same
 * bytes only one is kept (they would be one object). Returns NULL and sets @error when there
 * are none or a limit above is passed. */
GPtrArray *load_photos_read (const char  *dir,
                             GError     **error);

G_END_DECLS
