/* tr-data.c - MNIST and CIFAR-10 readers, augmentation */
#include "config.h"

#include <math.h>
#include <string.h>
#include <zlib.h>

#include "tr-data.h"

G_DEFINE_QUARK (tr-data-error-quark, tr_data_error)

/* the largest file we accept decompressed: CIFAR-10 batches are 30.7 MB, MNIST 47 MB */
#define MAX_DECOMPRESSED (64u << 20)

void
tr_dataset_free (TrDataset *ds)
{
  if (!ds)
    return;
  g_free (ds->images);
  g_free (ds->labels);
  g_ptr_array_unref (ds->files);
  g_free (ds);
}

static TrDataset *
dataset_new (void)
{
  TrDataset *ds = g_new0 (TrDataset, 1);

  ds->files = g_ptr_array_new_with_free_func (g_free);
  return ds;
}

/* Reads and decompresses a whole .gz file, noting its name and SHA-256 in @ds. */
static GBytes *
read_gz (TrDataset *ds, const char *dir, const char *name, GError **error)
{
  g_autofree char *path = g_build_filename (dir, name, NULL);
  g_autofree char *raw = NULL;
  gsize raw_len = 0;
  z_stream z = { 0 };
  GByteArray *out;
  int rc;

  if (!g_file_get_contents (path, &raw, &raw_len, error))
    {
      g_prefix_error (error, "cannot read the data set: ");
      return NULL;
    }
  if (raw_len < 18 || (guint8) raw[0] != 0x1f || (guint8) raw[1] != 0x8b)
    {
      g_set_error (error, TR_DATA_ERROR, TR_DATA_ERROR_FORMAT,
                   "%s: not a gzip file (expected the original .gz download)", path);
      return NULL;
    }
  g_ptr_array_add (ds->files, g_strdup (name));
  g_ptr_array_add (ds->files, g_compute_checksum_for_data (G_CHECKSUM_SHA256, (guint8 *) raw,
                                                           raw_len));
  out = g_byte_array_sized_new (raw_len * 4);
  g_assert (inflateInit2 (&z, 16 + MAX_WBITS) == Z_OK);
  z.next_in = (Bytef *) raw;
  z.avail_in = (uInt) raw_len;
  do
    {
      guint8 buf[1 << 16];

      z.next_out = buf;
      z.avail_out = sizeof buf;
      rc = inflate (&z, Z_NO_FLUSH);
      if (rc != Z_OK && rc != Z_STREAM_END)
        break;
      g_byte_array_append (out, buf, sizeof buf - z.avail_out);
      if (out->len > MAX_DECOMPRESSED)
        break;
    }
  while (rc != Z_STREAM_END);
  inflateEnd (&z);
  if (rc != Z_STREAM_END)
    {
      g_set_error (error, TR_DATA_ERROR, TR_DATA_ERROR_FORMAT, "%s: %s", path,
                   out->len > MAX_DECOMPRESSED ? "decompresses to more than any data set file"
                   : "corrupt or truncated gzip data");
      g_byte_array_unref (out);
      return NULL;
    }
  return g_byte_array_free_to_bytes (out);
}

static guint32
be32 (const guint8 *p)
{
  return (guint32) p[0] << 24 | (guint32) p[1] << 16 | (guint32) p[2] << 8 | p[3];
}

TrDataset *
tr_mnist_load (const char *dir, gboolean train, GError **error)
{
  const char *img_name = train ? "train-images-idx3-ubyte.gz" : "t10k-images-idx3-ubyte.gz";
  const char *lbl_name = train ? "train-labels-idx1-ubyte.gz" : "t10k-labels-idx1-ubyte.gz";
  g_autoptr(TrDataset) ds = dataset_new ();
  g_autoptr(GBytes) img = NULL, lbl = NULL;
  const guint8 *ip, *lp;
  gsize il, ll;
  guint32 n;

  if (!(img = read_gz (ds, dir, img_name, error)) || !(lbl = read_gz (ds, dir, lbl_name, error)))
    return NULL;
  ip = g_bytes_get_data (img, &il);
  lp = g_bytes_get_data (lbl, &ll);
  if (il < 16 || be32 (ip) != 2051)
    {
      g_set_error (error, TR_DATA_ERROR, TR_DATA_ERROR_FORMAT,
                   "%s/%s: not an MNIST image file (idx3 magic 2051 expected, found %u)", dir,
                   img_name, il < 4 ? 0 : be32 (ip));
      return NULL;
    }
  if (ll < 8 || be32 (lp) != 2049)
    {
      g_set_error (error, TR_DATA_ERROR, TR_DATA_ERROR_FORMAT,
                   "%s/%s: not an MNIST label file (idx1 magic 2049 expected, found %u)", dir,
                   lbl_name, ll < 4 ? 0 : be32 (lp));
      return NULL;
    }
  n = be32 (ip + 4);
  if (be32 (ip + 8) != 28 || be32 (ip + 12) != 28 || n == 0 || n > 1000000
      || il != 16 + (gsize) n * 784)
    {
      g_set_error (error, TR_DATA_ERROR, TR_DATA_ERROR_FORMAT,
                   "%s/%s: %u images of %ux%u in %zu bytes; expected 28x28 images and "
                   "16 + n*784 bytes", dir, img_name, n, be32 (ip + 8), be32 (ip + 12), il);
      return NULL;
    }
  if (be32 (lp + 4) != n || ll != 8 + (gsize) n)
    {
      g_set_error (error, TR_DATA_ERROR, TR_DATA_ERROR_FORMAT,
                   "%s/%s: %u labels in %zu bytes for %u images", dir, lbl_name, be32 (lp + 4),
                   ll, n);
      return NULL;
    }
  for (guint32 i = 0; i < n; i++)
    if (lp[8 + i] > 9)
      {
        g_set_error (error, TR_DATA_ERROR, TR_DATA_ERROR_FORMAT,
                     "%s/%s: label %u of image %u is not a digit", dir, lbl_name, lp[8 + i], i);
        return NULL;
      }
  ds->n = (int) n;
  ds->C = 1;
  ds->H = ds->W = 28;
  ds->images = g_memdup2 (ip + 16, (gsize) n * 784);
  ds->labels = g_memdup2 (lp + 8, n);
  return g_steal_pointer (&ds);
}

#define CIFAR_PER_FILE 10000
#define CIFAR_RECORD (1 + 3 * 32 * 32)

TrDataset *
tr_cifar10_load (const char *dir, gboolean train, GError **error)
{
  g_autoptr(TrDataset) ds = dataset_new ();
  int n_files = train ? 5 : 1;

  ds->n = n_files * CIFAR_PER_FILE;
  ds->C = 3;
  ds->H = ds->W = 32;
  ds->images = g_new (guint8, (gsize) ds->n * 3072);
  ds->labels = g_new (guint8, ds->n);
  for (int f = 0; f < n_files; f++)
    {
      g_autofree char *name = train ? g_strdup_printf ("data_batch_%d.bin.gz", f + 1)
                                    : g_strdup ("test_batch.bin.gz");
      g_autoptr(GBytes) bytes = read_gz (ds, dir, name, error);
      const guint8 *p;
      gsize len;

      if (!bytes)
        return NULL;
      p = g_bytes_get_data (bytes, &len);
      if (len != (gsize) CIFAR_PER_FILE * CIFAR_RECORD)
        {
          g_set_error (error, TR_DATA_ERROR, TR_DATA_ERROR_FORMAT,
                       "%s/%s: %zu bytes; a CIFAR-10 binary batch has 10000 records of 3073 "
                       "bytes (30730000)", dir, name, len);
          return NULL;
        }
      for (int i = 0; i < CIFAR_PER_FILE; i++)
        {
          const guint8 *r = p + (gsize) i * CIFAR_RECORD;
          int j = f * CIFAR_PER_FILE + i;

          if (r[0] > 9)
            {
              g_set_error (error, TR_DATA_ERROR, TR_DATA_ERROR_FORMAT,
                           "%s/%s: record %d has label %u; CIFAR-10 labels are 0..9 (is this "
                           "the CIFAR-100 file?)", dir, name, i, r[0]);
              return NULL;
            }
          ds->labels[j] = r[0];
          memcpy (ds->images + (gsize) j * 3072, r + 1, 3072);
        }
    }
  return g_steal_pointer (&ds);
}

void
tr_dataset_truncate (TrDataset *ds, int n)
{
  ds->n = CLAMP (n, 0, ds->n);
}

/* stroke thickness: grow (max) or shrink (min) over the 4-neighbourhood */
static void
morph (const guint8 *src, guint8 *dst, gboolean grow)
{
  for (int y = 0; y < 28; y++)
    for (int x = 0; x < 28; x++)
      {
        int v = src[y * 28 + x];
        const int dx[4] = { -1, 1, 0, 0 }, dy[4] = { 0, 0, -1, 1 };

        for (int d = 0; d < 4; d++)
          {
            int xx = x + dx[d], yy = y + dy[d], u = 0;

            if (xx >= 0 && xx < 28 && yy >= 0 && yy < 28)
              u = src[yy * 28 + xx];
            v = grow ? MAX (v, u) : MIN (v, u);
          }
        dst[y * 28 + x] = (guint8) v;
      }
}

void
tr_augment_digit (const guint8 *src, float *out, TrRng *rng)
{
  guint8 thick[784];
  const guint8 *img = src;
  float t = tr_rng_uniform (rng);
  float angle = (tr_rng_uniform (rng) * 2.0f - 1.0f) * 12.0f * (float) G_PI / 180.0f;
  float scale = 0.9f + 0.2f * tr_rng_uniform (rng);
  float aspect = 0.92f + 0.16f * tr_rng_uniform (rng);
  float shear = (tr_rng_uniform (rng) * 2.0f - 1.0f) * 0.1f;
  float tx = (tr_rng_uniform (rng) * 2.0f - 1.0f) * 2.0f;
  float ty = (tr_rng_uniform (rng) * 2.0f - 1.0f) * 2.0f;
  float sx = scale * aspect, sy = scale / aspect, ca = cosf (angle), sa = sinf (angle);
  /* forward map A = R * Shear * S; sampling uses its inverse */
  float a00 = ca * sx, a01 = (ca * shear - sa) * sy, a10 = sa * sx, a11 = (sa * shear + ca) * sy;
  float det = a00 * a11 - a01 * a10;
  float i00 = a11 / det, i01 = -a01 / det, i10 = -a10 / det, i11 = a00 / det;

  /* a quarter thicker, an eighth thinner: canvas pens are often bolder than MNIST's */
  if (t < 0.25f || t > 0.875f)
    {
      morph (src, thick, t < 0.25f);
      img = thick;
    }
  for (int y = 0; y < 28; y++)
    for (int x = 0; x < 28; x++)
      {
        float ox = x - 13.5f - tx, oy = y - 13.5f - ty;
        float u = i00 * ox + i01 * oy + 13.5f, v = i10 * ox + i11 * oy + 13.5f;
        int u0 = (int) floorf (u), v0 = (int) floorf (v);
        float fu = u - u0, fv = v - v0, s = 0.0f;

        for (int j = 0; j < 2; j++)
          for (int i = 0; i < 2; i++)
            {
              int uu = u0 + i, vv = v0 + j;

              if (uu >= 0 && uu < 28 && vv >= 0 && vv < 28)
                s += img[vv * 28 + uu] * (i ? fu : 1.0f - fu) * (j ? fv : 1.0f - fv);
            }
        out[y * 28 + x] = s * (1.0f / 255.0f);
      }
}

static int
reflect (int i, int n)
{
  if (i < 0)
    return -i;
  if (i >= n)
    return 2 * n - 2 - i;
  return i;
}

void
tr_augment_photo (const guint8 *src, float *out, TrRng *rng)
{
  int ox = (int) tr_rng_below (rng, 9) - 4, oy = (int) tr_rng_below (rng, 9) - 4;
  gboolean flip = tr_rng_below (rng, 2);

  for (int c = 0; c < 3; c++)
    for (int y = 0; y < 32; y++)
      for (int x = 0; x < 32; x++)
        {
          int sx = reflect ((flip ? 31 - x : x) + ox, 32), sy = reflect (y + oy, 32);

          out[(c * 32 + y) * 32 + x] = src[(c * 32 + sy) * 32 + sx] * (1.0f / 255.0f);
        }
}
