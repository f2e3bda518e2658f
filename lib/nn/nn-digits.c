/* nn-digits.c - a digit drawn on a canvas, prepared as MNIST's digits were made */
#include "config.h"

#include <math.h>
#include <string.h>

#include "nn-digits.h"

/* Area-averaging resample of src (sw x sh floats) to dst (dw x dh): each output pixel is
 * the mean of the source area it covers, counting partly covered pixels by their share. */
static void
resample_area (const float *src, int sw, int sh, float *dst, int dw, int dh)
{
  const double fx = (double) sw / dw, fy = (double) sh / dh;

  for (int y = 0; y < dh; y++)
    {
      double y0 = y * fy, y1 = (y + 1) * fy;

      for (int x = 0; x < dw; x++)
        {
          double x0 = x * fx, x1 = (x + 1) * fx, sum = 0.0;

          for (int sy = (int) y0; sy < (int) ceil (y1) && sy < sh; sy++)
            {
              double wy = MIN (y1, sy + 1.0) - MAX (y0, (double) sy);

              for (int sx = (int) x0; sx < (int) ceil (x1) && sx < sw; sx++)
                {
                  double wx = MIN (x1, sx + 1.0) - MAX (x0, (double) sx);

                  sum += wx * wy * src[(size_t) sy * sw + sx];
                }
            }
          dst[y * dw + x] = (float) (sum / (fx * fy));
        }
    }
}

gboolean
nn_digits_preprocess (const guint8 *gray, int width, int height, int stride,
                      float out[NN_DIGITS_SIZE * NN_DIGITS_SIZE])
{
  int x0 = width, y0 = height, x1 = -1, y1 = -1, cw, ch, bw, bh, ox, oy;
  g_autofree float *crop = NULL;
  float box[NN_DIGITS_BOX * NN_DIGITS_BOX];
  double mass = 0.0, mx = 0.0, my = 0.0;

  g_return_val_if_fail (gray != NULL && out != NULL, FALSE);
  g_return_val_if_fail (width > 0 && height > 0 && stride >= width, FALSE);

  memset (out, 0, sizeof (float) * NN_DIGITS_SIZE * NN_DIGITS_SIZE);
  for (int y = 0; y < height; y++)
    for (int x = 0; x < width; x++)
      if (gray[(size_t) y * stride + x] > NN_DIGITS_INK_THRESHOLD)
        {
          x0 = MIN (x0, x);
          x1 = MAX (x1, x);
          y0 = MIN (y0, y);
          y1 = MAX (y1, y);
        }
  if (x1 < 0)
    return FALSE;

  cw = x1 - x0 + 1;
  ch = y1 - y0 + 1;
  crop = g_new (float, (size_t) cw * ch);
  for (int y = 0; y < ch; y++)
    for (int x = 0; x < cw; x++)
      crop[(size_t) y * cw + x] = gray[(size_t) (y0 + y) * stride + x0 + x] / 255.0f;

  /* the longer side to 20; a "1" stays a thin upright bar */
  if (cw >= ch)
    {
      bw = NN_DIGITS_BOX;
      bh = MAX (1, (int) lround ((double) NN_DIGITS_BOX * ch / cw));
    }
  else
    {
      bh = NN_DIGITS_BOX;
      bw = MAX (1, (int) lround ((double) NN_DIGITS_BOX * cw / ch));
    }
  resample_area (crop, cw, ch, box, bw, bh);

  for (int y = 0; y < bh; y++)
    for (int x = 0; x < bw; x++)
      {
        double v = box[y * bw + x];

        mass += v;
        mx += v * x;
        my += v * y;
      }
  /* the centre of mass to pixel (14, 14), as LeCun et al. centred MNIST */
  ox = (int) lround (NN_DIGITS_SIZE / 2.0 - mx / mass);
  oy = (int) lround (NN_DIGITS_SIZE / 2.0 - my / mass);
  for (int y = 0; y < bh; y++)
    for (int x = 0; x < bw; x++)
      {
        int tx = x + ox, ty = y + oy;

        if (tx >= 0 && tx < NN_DIGITS_SIZE && ty >= 0 && ty < NN_DIGITS_SIZE)
          out[ty * NN_DIGITS_SIZE + tx] = MIN (box[y * bw + x], 1.0f);
      }
  return TRUE;
}

void
nn_digits_normalize (const NnImageConfig *cfg, float values[NN_DIGITS_SIZE * NN_DIGITS_SIZE])
{
  for (int i = 0; i < NN_DIGITS_SIZE * NN_DIGITS_SIZE; i++)
    values[i] = (values[i] * 255.0f * cfg->scale - cfg->mean[0]) / cfg->std[0];
}
