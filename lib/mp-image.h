/* mp-image.h - decoding untrusted image bytes under strict limits (server workers, the app)
 *
 * The header's dimensions are checked before any pixel memory is allocated; large photos are
 * decoded straight to a working size, which JPEG's decoder does cheaply (DCT scaling); the
 * EXIF orientation is applied. The format is told by the first bytes, whatever the file is
 * called: JPEG, PNG, WebP (when its gdk-pixbuf loader is installed), GIF, TIFF and BMP. No other
 * gdk-pixbuf loader (SVG, ICO, XPM, TGA, ...) ever sees the bytes.
 */
#pragma once

#include <gdk-pixbuf/gdk-pixbuf.h>

G_BEGIN_DECLS

#define MP_IMAGE_ERROR (mp_image_error_quark ())

typedef enum {
  MP_IMAGE_ERROR_TOO_LARGE,    /* more bytes than the limit */
  MP_IMAGE_ERROR_DIMENSIONS,   /* zero, negative or more pixels than the limit */
  MP_IMAGE_ERROR_FORMAT,       /* not an image, or not one of the formats above */
  MP_IMAGE_ERROR_CORRUPT,      /* the decoder failed: truncated, bad data */
} MpImageError;

/* Photos from 2020s phones are 3-20 MB; 50 MB leaves room for 16-bit PNGs and TIFFs without
 * letting one upload pin a worker's memory. */
#define MP_IMAGE_MAX_BYTES_DEFAULT  (50 * 1024 * 1024)
/* 50 megapixels holds every phone and most DSLR sensors; PNG and GIF decode at full size, so
 * this bounds a decode at 200 MB of RGBA. (Pillow warns at 89 MP; we run several at once.) */
#define MP_IMAGE_MAX_PIXELS_DEFAULT (50 * 1000 * 1000)
/* Classifiers look at 224-299 px; a 768 px shorter side keeps detail for any of them and for
 * a better model later, while a 12 MP JPEG decodes at 1/4 scale. */
#define MP_IMAGE_WORK_SIDE_DEFAULT  768

typedef struct {
  gsize max_bytes;
  gint64 max_pixels;
  int   work_side;   /* shrink while decoding so the shorter side is about this; 0: never */
} MpImageLimits;

typedef struct {
  GdkPixbuf *pixbuf;  /* 8-bit RGB or RGBA, upright */
  int        width;   /* the full image as displayed (after orientation), before shrinking */
  int        height;
  char      *format;  /* gdk-pixbuf's name: "jpeg", "png", "webp", ... */
} MpImage;

GQuark   mp_image_error_quark  (void);
void     mp_image_limits_init  (MpImageLimits       *limits);
/* Returns NULL and sets @error (MP_IMAGE_ERROR) when @data is over a limit, not a raster image
 * or cannot be decoded; never allocates pixels for dimensions over the limit. */
MpImage *mp_image_decode       (const guint8        *data,
                                gsize                length,
                                const MpImageLimits *limits,
                                GError             **error);
/* The file at @path, mapped and decoded as mp_image_decode() does; errors name the file. */
MpImage *mp_image_load_file    (const char          *path,
                                const MpImageLimits *limits,
                                GError             **error);
/* Whether mp_image_decode() decodes the format gdk-pixbuf calls @name ("jpeg", "png", ...):
 * for code that learns a file's format from gdk_pixbuf_get_file_info() first. */
gboolean mp_image_format_is_decoded (const char *name);
void     mp_image_free         (MpImage             *image);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (MpImage, mp_image_free)

G_END_DECLS
