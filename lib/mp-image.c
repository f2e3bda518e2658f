/* mp-image.c - decoding untrusted image bytes under strict limits */
#include "config.h"

#include "mp-image.h"

#include <string.h>

/* Fed in slices so a refusal in "size-prepared" stops the decoder before the rest arrives. */
#define MP_IMAGE_FEED_CHUNK (64 * 1024)

G_DEFINE_QUARK (mp-image-error-quark, mp_image_error)

typedef struct {
  const MpImageLimits *limits;
  GError              *error;   /* set when the header was refused */
  int                  width;   /* as the header says */
  int                  height;
  gboolean             shrink_after;  /* the decoder has no cheap downscale: we do it after */
  int                  rows_done;     /* rows the decoder reported, for truncation */
  int                  rows_written;  /* of which before close (the JPEG loader makes up the
                                       * rest of a short file at close, in grey) */
} Probe;

void
mp_image_limits_init (MpImageLimits *limits)
{
  limits->max_bytes = MP_IMAGE_MAX_BYTES_DEFAULT;
  limits->max_pixels = MP_IMAGE_MAX_PIXELS_DEFAULT;
  limits->work_side = MP_IMAGE_WORK_SIDE_DEFAULT;
}

/* gdk_pixbuf_format_get_name() returns a new string each time. */
static gboolean
format_is (GdkPixbufFormat *format,
           const char      *name)
{
  g_autofree char *actual = format ? gdk_pixbuf_format_get_name (format) : NULL;

  return g_strcmp0 (actual, name) == 0;
}

/* The raster formats photos come in, told by their first bytes, so that only these loaders
 * ever see untrusted bytes. gdk-pixbuf would otherwise pick any installed loader by sniffing:
 * SVG (librsvg renders at any size asked and follows references) and the ICO, ANI, XPM, XBM,
 * TGA, PNM, ICNS and QTIF loaders, which GNOME no longer builds by default as unmaintained
 * attack surface. */
static const struct {
  const char *name;     /* gdk-pixbuf's loader */
  const char *magic;
  gsize       len;
  const char *magic8;   /* and at offset 8, for RIFF containers */
} raster_formats[] = {
  { "jpeg", "\xff\xd8\xff", 3, NULL },
  { "png", "\x89PNG\r\n\x1a\n", 8, NULL },
  { "webp", "RIFF", 4, "WEBP" },
  { "gif", "GIF87a", 6, NULL },
  { "gif", "GIF89a", 6, NULL },
  { "tiff", "II*\0", 4, NULL },
  { "tiff", "MM\0*", 4, NULL },
  { "bmp", "BM", 2, NULL },
};

#define MP_IMAGE_FORMATS_TEXT "JPEG, PNG, WebP, GIF, TIFF or BMP"

gboolean
mp_image_format_is_decoded (const char *name)
{
  for (gsize i = 0; name != NULL && i < G_N_ELEMENTS (raster_formats); i++)
    if (strcmp (raster_formats[i].name, name) == 0)
      return TRUE;
  return FALSE;
}

static const char *
sniff_format (const guint8 *data,
              gsize         length)
{
  for (gsize i = 0; i < G_N_ELEMENTS (raster_formats); i++)
    {
      const char *m8 = raster_formats[i].magic8;

      if (length >= raster_formats[i].len &&
          memcmp (data, raster_formats[i].magic, raster_formats[i].len) == 0 &&
          (m8 == NULL || (length >= 8 + strlen (m8) && memcmp (data + 8, m8, strlen (m8)) == 0)))
        return raster_formats[i].name;
    }
  return NULL;
}

/* gdk-pixbuf's BMP loader sizes its buffers from the header's own fields before it checks
 * anything: a 60-byte file whose header size said 4 GB asked for 4 GB, and a 58-byte one whose
 * pixel data offset said 2 GB asked for 2 GB (both found by tests/fuzz/fuzz-image). The
 * Windows and OS/2 bitmap headers come in these sizes only, and the pixels start inside the
 * file. */
static gboolean
bmp_header_plausible (const guint8 *data,
                      gsize         length)
{
  static const guint32 sizes[] = { 12, 16, 40, 52, 56, 64, 108, 124 };
  guint32 size, offset;

  if (length < 18)
    return FALSE;
  size = (guint32) data[14] | (guint32) data[15] << 8 | (guint32) data[16] << 16 |
         (guint32) data[17] << 24;
  offset = (guint32) data[10] | (guint32) data[11] << 8 | (guint32) data[12] << 16 |
           (guint32) data[13] << 24;
  if (offset > length)
    return FALSE;
  for (gsize i = 0; i < G_N_ELEMENTS (sizes); i++)
    if (size == sizes[i])
      return TRUE;
  return FALSE;
}

/* The data sub-blocks at @p (a length byte, that many bytes, ..., a 0): where they end. */
static gsize
gif_skip_blocks (const guint8 *data,
                 gsize         length,
                 gsize         p)
{
  while (p < length && data[p] != 0)
    p += (gsize) data[p] + 1;
  return p + 1;
}

/* gdk-pixbuf's GIF loader makes a pixbuf the size of each frame's descriptor without checking
 * it against anything: a frame 0 pixels wide made GLib log a critical (fatal where criticals
 * are) and the decode fail with "Not enough memory" (found by tests/fuzz/fuzz-image), and the
 * size-prepared check sees only the logical screen, not the frames. So every frame is looked
 * at first, walking the blocks as the loader does (bytes that start no block are skipped). */
static gboolean
gif_frames_plausible (const guint8 *data,
                      gsize         length,
                      gint64        max_pixels,
                      int          *width,
                      int          *height)
{
  gsize p = 13;

  if (length < 13)
    return TRUE;   /* the loader's own error: truncated */
  if (data[10] & 0x80)
    p += (gsize) 3 << ((data[10] & 7) + 1);   /* the global colour table */
  while (p < length && data[p] != 0x3b)
    {
      if (data[p] == 0x21)            /* extension: its label, then sub-blocks */
        p = gif_skip_blocks (data, length, p + 2);
      else if (data[p] == 0x2c)       /* image descriptor */
        {
          guint8 flags;

          if (p + 10 > length)
            return TRUE;
          *width = data[p + 5] | data[p + 6] << 8;
          *height = data[p + 7] | data[p + 8] << 8;
          if (*width == 0 || *height == 0 || (gint64) *width * *height > max_pixels)
            return FALSE;
          flags = data[p + 9];
          p += 10;
          if (flags & 0x80)
            p += (gsize) 3 << ((flags & 7) + 1);   /* a local colour table */
          p = gif_skip_blocks (data, length, p + 1);   /* past the LZW code size */
        }
      else
        p++;
    }
  return TRUE;
}

static void
size_prepared_cb (GdkPixbufLoader *loader,
                  int              width,
                  int              height,
                  gpointer         user_data)
{
  Probe *probe = user_data;
  const MpImageLimits *limits = probe->limits;
  int shorter;

  probe->width = width;
  probe->height = height;
  if (width <= 0 || height <= 0 || (gint64) width * height > limits->max_pixels)
    {
      g_set_error (&probe->error, MP_IMAGE_ERROR, MP_IMAGE_ERROR_DIMENSIONS,
                   "image of %dx%d pixels is empty or over the limit of %" G_GINT64_FORMAT
                   " pixels", width, height, limits->max_pixels);
      /* As gdk_pixbuf_get_file_info() does: a 0×0 request makes every loader stop before it
       * allocates pixels. */
      gdk_pixbuf_loader_set_size (loader, 0, 0);
      return;
    }
  shorter = MIN (width, height);
  if (limits->work_side > 0 && shorter > limits->work_side)
    {
      /* libjpeg alone shrinks while decoding, by 1/2, 1/4 or 1/8 (DCT scaling): ask for exactly
       * the largest such size still at least the working size. Any other size and the loader
       * would scale the result itself and hide its progress (area-updated) meanwhile, which
       * the truncation check needs. The rest of the shrink, and all of it for the other
       * formats, which decode at full size, happens after. */
      int d = 1;

      if (format_is (gdk_pixbuf_loader_get_format (loader), "jpeg"))
        while (d < 8 && MIN (width / (2 * d), height / (2 * d)) >= limits->work_side)
          d *= 2;
      if (d > 1)
        gdk_pixbuf_loader_set_size (loader, (width + d - 1) / d, (height + d - 1) / d);
      probe->shrink_after = TRUE;
    }
}

static void
area_updated_cb (GdkPixbufLoader *loader,
                 int              x,
                 int              y,
                 int              width,
                 int              height,
                 gpointer         user_data)
{
  Probe *probe = user_data;

  probe->rows_done = MAX (probe->rows_done, y + height);
}

/* gdk-pixbuf's PNG, JPEG and WebP loaders hand back a truncated image without an error, the
 * missing rows blank or grey. For PNG the rows that never arrived say so; the JPEG loader
 * decodes rows as the bytes arrive and, at close, makes up those of a short file (a
 * progressive JPEG cut short fails by itself); the WebP loader reports the whole area at close
 * regardless, but its RIFF header states the file's length. */
static gboolean
truncated (const Probe     *probe,
           GdkPixbufFormat *format,
           GdkPixbuf       *pixbuf,
           const guint8    *data,
           gsize            length)
{
  if (format_is (format, "png"))
    return probe->rows_done < gdk_pixbuf_get_height (pixbuf);
  if (format_is (format, "jpeg"))
    return probe->rows_written < gdk_pixbuf_get_height (pixbuf);
  if (format_is (format, "webp"))
    {
      guint32 riff_size;

      if (length < 12 || memcmp (data, "RIFF", 4) != 0)
        return TRUE;
      riff_size = (guint32) data[4] | (guint32) data[5] << 8 | (guint32) data[6] << 16 |
                  (guint32) data[7] << 24;
      return length - 8 < riff_size;
    }
  return FALSE;
}

static gboolean
orientation_swaps (GdkPixbuf *pixbuf)
{
  const char *o = gdk_pixbuf_get_option (pixbuf, "orientation");

  /* EXIF 5-8 are the transposed orientations: the displayed image is height × width. */
  return o != NULL && o[0] >= '5' && o[0] <= '8' && o[1] == '\0';
}

MpImage *
mp_image_decode (const guint8        *data,
                 gsize                length,
                 const MpImageLimits *limits,
                 GError             **error)
{
  g_autoptr(GdkPixbufLoader) loader = NULL;
  g_autoptr(GError) local_error = NULL;
  g_autoptr(MpImage) image = NULL;
  GdkPixbufFormat *format;
  g_autofree char *format_name = NULL;
  const char *sniffed;
  GdkPixbuf *raw;
  Probe probe = { limits, NULL, 0, 0, FALSE, 0, 0 };
  int frame_width = 0, frame_height = 0;
  gboolean ok = TRUE;

  g_return_val_if_fail (data != NULL || length == 0, NULL);
  g_return_val_if_fail (limits != NULL, NULL);

  if (length > limits->max_bytes)
    {
      g_set_error (error, MP_IMAGE_ERROR, MP_IMAGE_ERROR_TOO_LARGE,
                   "image of %" G_GSIZE_FORMAT " bytes is over the limit of %" G_GSIZE_FORMAT
                   " bytes", length, limits->max_bytes);
      return NULL;
    }
  if (length == 0)
    {
      g_set_error (error, MP_IMAGE_ERROR, MP_IMAGE_ERROR_FORMAT, "the file is empty");
      return NULL;
    }

  sniffed = sniff_format (data, length);
  if (sniffed == NULL)
    {
      g_set_error (error, MP_IMAGE_ERROR, MP_IMAGE_ERROR_FORMAT,
                   "not an image in a format Magpie decodes (" MP_IMAGE_FORMATS_TEXT ")");
      return NULL;
    }
  if (strcmp (sniffed, "bmp") == 0 && !bmp_header_plausible (data, length))
    {
      g_set_error (error, MP_IMAGE_ERROR, MP_IMAGE_ERROR_CORRUPT,
                   "cannot decode the bmp image: its header is damaged");
      return NULL;
    }
  if (strcmp (sniffed, "gif") == 0 &&
      !gif_frames_plausible (data, length, limits->max_pixels, &frame_width, &frame_height))
    {
      g_set_error (error, MP_IMAGE_ERROR, MP_IMAGE_ERROR_DIMENSIONS,
                   "the gif image has a frame of %dx%d pixels, empty or over the limit of %"
                   G_GINT64_FORMAT " pixels", frame_width, frame_height, limits->max_pixels);
      return NULL;
    }
  loader = gdk_pixbuf_loader_new_with_type (sniffed, &local_error);
  if (loader == NULL)
    {
      g_set_error (error, MP_IMAGE_ERROR, MP_IMAGE_ERROR_FORMAT,
                   "%s images cannot be decoded on this system: %s", sniffed,
                   local_error->message);
      return NULL;
    }
  g_signal_connect (loader, "size-prepared", G_CALLBACK (size_prepared_cb), &probe);
  g_signal_connect (loader, "area-updated", G_CALLBACK (area_updated_cb), &probe);
  for (gsize off = 0; ok && off < length && probe.error == NULL; off += MP_IMAGE_FEED_CHUNK)
    ok = gdk_pixbuf_loader_write (loader, data + off, MIN (MP_IMAGE_FEED_CHUNK, length - off),
                                  &local_error);
  probe.rows_written = probe.rows_done;
  /* close() must run in every case: a loader finalised while open warns. */
  if (!gdk_pixbuf_loader_close (loader, ok ? &local_error : NULL))
    ok = FALSE;

  if (probe.error != NULL)
    {
      g_propagate_error (error, probe.error);
      return NULL;
    }
  format = gdk_pixbuf_loader_get_format (loader);
  format_name = format ? gdk_pixbuf_format_get_name (format) : NULL;
  if (!ok)
    {
      g_set_error (error, MP_IMAGE_ERROR, MP_IMAGE_ERROR_CORRUPT, "cannot decode the %s "
                   "image: %s", sniffed,
                   local_error ? local_error->message : "the decoder gave no reason");
      return NULL;
    }
  raw = gdk_pixbuf_loader_get_pixbuf (loader);
  if (raw == NULL || format == NULL || probe.width <= 0)
    {
      g_set_error (error, MP_IMAGE_ERROR, MP_IMAGE_ERROR_CORRUPT,
                   "the decoder produced no image");
      return NULL;
    }
  if (truncated (&probe, format, raw, data, length))
    {
      g_set_error (error, MP_IMAGE_ERROR, MP_IMAGE_ERROR_CORRUPT,
                   "the %s image is truncated: the file ends early",
                   format_name);
      return NULL;
    }
  if (gdk_pixbuf_get_bits_per_sample (raw) != 8 || gdk_pixbuf_get_n_channels (raw) < 3 ||
      gdk_pixbuf_get_colorspace (raw) != GDK_COLORSPACE_RGB)
    {
      g_set_error (error, MP_IMAGE_ERROR, MP_IMAGE_ERROR_FORMAT,
                   "unsupported pixel layout (%d bits, %d channels)",
                   gdk_pixbuf_get_bits_per_sample (raw), gdk_pixbuf_get_n_channels (raw));
      return NULL;
    }

  image = g_new0 (MpImage, 1);
  image->format = g_steal_pointer (&format_name);
  image->width = probe.width;
  image->height = probe.height;
  if (orientation_swaps (raw))
    {
      image->width = probe.height;
      image->height = probe.width;
    }
  image->pixbuf = gdk_pixbuf_apply_embedded_orientation (raw);
  if (probe.shrink_after)
    {
      int w = gdk_pixbuf_get_width (image->pixbuf), h = gdk_pixbuf_get_height (image->pixbuf);
      double f = (double) limits->work_side / MIN (w, h);
      GdkPixbuf *small = gdk_pixbuf_scale_simple (image->pixbuf, MAX (1, (int) (w * f + 0.5)),
                                                  MAX (1, (int) (h * f + 0.5)),
                                                  GDK_INTERP_BILINEAR);

      g_object_unref (image->pixbuf);
      image->pixbuf = small;
    }
  return g_steal_pointer (&image);
}

MpImage *
mp_image_load_file (const char          *path,
                    const MpImageLimits *limits,
                    GError             **error)
{
  g_autoptr(GMappedFile) map = NULL;
  g_autoptr(GError) local = NULL;
  MpImage *image;
  gsize length;

  g_return_val_if_fail (path != NULL && limits != NULL, NULL);

  /* Mapped, not read: the byte limit is checked before a page of it is touched. */
  map = g_mapped_file_new (path, FALSE, &local);
  if (map == NULL)
    {
      g_propagate_error (error, g_steal_pointer (&local));
      return NULL;
    }
  length = g_mapped_file_get_length (map);
  image = mp_image_decode (length ? (const guint8 *) g_mapped_file_get_contents (map)
                                  : (const guint8 *) "", length, limits, &local);
  if (image == NULL)
    {
      g_propagate_prefixed_error (error, g_steal_pointer (&local), "%s: ", path);
      return NULL;
    }
  return image;
}

void
mp_image_free (MpImage *image)
{
  if (image == NULL)
    return;
  g_clear_object (&image->pixbuf);
  g_free (image->format);
  g_free (image);
}
