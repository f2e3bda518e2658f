/* fuzz-image.c - decoding untrusted image bytes under limits (mp_image_decode), then what the
 * server does with a decoded image: the digit preparation of POST /v1/predict/digit and the
 * photo model's resize and normalisation
 *
 * The limits are smaller than the server's (256×256 pixels instead of 50 MP, a working side of
 * 64 instead of 768) so that an image at the limit costs milliseconds under ASan, not
 * seconds; the checks are the same code. Properties: a decoded image is 8-bit RGB(A) with
 * positive dimensions within the limit; a refusal is an MP_IMAGE_ERROR with a reason.
 */
#include "config.h"

#include "fuzz-common.h"

#include "mp-image.h"
#include "nn-digits.h"
#include "nn-image.h"

#define FUZZ_MAX_PIXELS (256 * 256)

static NnImageConfig *photo_cfg;

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  fuzz_init_logging ();
  /* The bundled photo model's input (data/models/photos.json): 32×32 RGB, resized whole. */
  photo_cfg = nn_image_config_new ();
  photo_cfg->width = 32;
  photo_cfg->height = 32;
  return 0;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  MpImageLimits limits;
  g_autoptr(MpImage) image = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree guint8 *ink = NULL;
  g_autofree float *input = NULL;
  float digit[NN_DIGITS_SIZE * NN_DIGITS_SIZE];
  const guint8 *px;
  int w, h, stride, nc;

  mp_image_limits_init (&limits);
  limits.max_pixels = FUZZ_MAX_PIXELS;
  limits.work_side = 64;
  image = mp_image_decode (data, size, &limits, &error);
  if (image == NULL)
    {
      fuzz_check (error != NULL && error->domain == MP_IMAGE_ERROR, "refused without a reason");
      return 0;
    }
  w = gdk_pixbuf_get_width (image->pixbuf);
  h = gdk_pixbuf_get_height (image->pixbuf);
  stride = gdk_pixbuf_get_rowstride (image->pixbuf);
  nc = gdk_pixbuf_get_n_channels (image->pixbuf);
  fuzz_check (w > 0 && h > 0 && image->width > 0 && image->height > 0,
              "decoded to %dx%d (%dx%d)", w, h, image->width, image->height);
  fuzz_check ((gint64) image->width * image->height <= FUZZ_MAX_PIXELS,
              "decoded %dx%d over the limit", image->width, image->height);
  fuzz_check (gdk_pixbuf_get_bits_per_sample (image->pixbuf) == 8 && (nc == 3 || nc == 4),
              "decoded to %d bits, %d channels", gdk_pixbuf_get_bits_per_sample (image->pixbuf),
              nc);
  fuzz_check (image->format != NULL, "no format name");

  px = gdk_pixbuf_read_pixels (image->pixbuf);
  ink = g_malloc ((gsize) w * h);
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++)
      {
        const guint8 *p = px + (gsize) y * stride + (gsize) x * nc;

        ink[(gsize) y * w + x] = (guint8) ((299 * p[0] + 587 * p[1] + 114 * p[2]) / 1000);
      }
  nn_digits_preprocess (ink, w, h, w, digit);
  for (guint i = 0; i < G_N_ELEMENTS (digit); i++)
    fuzz_check (digit[i] >= 0.0f && digit[i] <= 1.0f, "digit pixel %u = %g", i, digit[i]);

  input = g_new (float, 3 * 32 * 32);
  nn_image_preprocess_rgb (photo_cfg, px, w, h, stride, nc, input);
  return 0;
}
