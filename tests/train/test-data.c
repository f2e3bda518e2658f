/* test-data.c - the MNIST and CIFAR-10 readers take the real files and refuse anything else
 * with a message that names the file and the problem; augmentation keeps the ink */
#include "config.h"

#include <glib/gstdio.h>
#include <math.h>
#include <string.h>
#include <zlib.h>

#include "tr-data.h"

static char *
shared (const char *rel)
{
  const char *root = g_getenv ("MAGPIE_SHARED_DATA");
  g_autofree char *path = g_build_filename (root ? root : MAGPIE_SOURCE_DIR "/../shared/data",
                                            rel, NULL);

  return g_file_test (path, G_FILE_TEST_EXISTS) ? g_steal_pointer (&path) : NULL;
}

static void
put_be32 (guint8 *p, guint32 v)
{
  p[0] = v >> 24, p[1] = v >> 16, p[2] = v >> 8, p[3] = v;
}

static void
write_gz (const char *dir, const char *name, const void *data, gsize len)
{
  g_autofree char *path = g_build_filename (dir, name, NULL);
  gzFile f = gzopen (path, "wb");

  g_assert_nonnull (f);
  g_assert_cmpint (gzwrite (f, data, (unsigned) len), ==, (int) len);
  gzclose (f);
}

/* an MNIST pair of @n images with the given magic numbers and image size */
static void
write_mnist (const char *dir, guint32 img_magic, guint32 lbl_magic, guint32 n, guint32 side,
             guint8 label)
{
  gsize il = 16 + (gsize) n * side * side, ll = 8 + n;
  g_autofree guint8 *img = g_new0 (guint8, il), *lbl = g_new0 (guint8, ll);

  put_be32 (img, img_magic);
  put_be32 (img + 4, n);
  put_be32 (img + 8, side);
  put_be32 (img + 12, side);
  put_be32 (lbl, lbl_magic);
  put_be32 (lbl + 4, n);
  memset (lbl + 8, label, n);
  write_gz (dir, "t10k-images-idx3-ubyte.gz", img, il);
  write_gz (dir, "t10k-labels-idx1-ubyte.gz", lbl, ll);
}

static void
expect_error (TrDataset *ds, GError *error, GQuark domain, const char *needle)
{
  int code = domain == TR_DATA_ERROR ? (int) TR_DATA_ERROR_FORMAT : (int) G_FILE_ERROR_NOENT;

  g_assert_null (ds);
  g_assert_error (error, domain, code);
  if (!strstr (error->message, needle))
    g_error ("message '%s' does not say '%s'", error->message, needle);
}

static void
test_mnist_bad (void)
{
  g_autofree char *dir = g_dir_make_tmp ("magpie-mnist-XXXXXX", NULL);
  g_autofree char *img = g_build_filename (dir, "t10k-images-idx3-ubyte.gz", NULL);
  g_autofree char *lbl = g_build_filename (dir, "t10k-labels-idx1-ubyte.gz", NULL);
  GError *error = NULL;
  TrDataset *ds;

  ds = tr_mnist_load (dir, FALSE, &error);
  expect_error (ds, error, G_FILE_ERROR, "t10k-images-idx3-ubyte.gz");
  g_clear_error (&error);

  /* good files load */
  write_mnist (dir, 2051, 2049, 3, 28, 7);
  ds = tr_mnist_load (dir, FALSE, &error);
  g_assert_no_error (error);
  g_assert_cmpint (ds->n, ==, 3);
  g_assert_cmpint (ds->labels[2], ==, 7);
  g_assert_cmpuint (ds->files->len, ==, 4);
  g_assert_cmpuint (strlen (g_ptr_array_index (ds->files, 1)), ==, 64);
  tr_dataset_free (ds);

  write_mnist (dir, 2049, 2049, 3, 28, 1);
  ds = tr_mnist_load (dir, FALSE, &error);
  expect_error (ds, error, TR_DATA_ERROR, "magic 2051 expected, found 2049");
  g_clear_error (&error);

  write_mnist (dir, 2051, 2051, 3, 28, 1);
  ds = tr_mnist_load (dir, FALSE, &error);
  expect_error (ds, error, TR_DATA_ERROR, "not an MNIST label file");
  g_clear_error (&error);

  write_mnist (dir, 2051, 2049, 3, 32, 1);
  ds = tr_mnist_load (dir, FALSE, &error);
  expect_error (ds, error, TR_DATA_ERROR, "expected 28x28");
  g_clear_error (&error);

  write_mnist (dir, 2051, 2049, 3, 28, 10);
  ds = tr_mnist_load (dir, FALSE, &error);
  expect_error (ds, error, TR_DATA_ERROR, "is not a digit");
  g_clear_error (&error);

  /* not gzip at all, and a gzip stream cut short */
  g_assert_true (g_file_set_contents (img, "P5 28 28 255\n", -1, NULL));
  ds = tr_mnist_load (dir, FALSE, &error);
  expect_error (ds, error, TR_DATA_ERROR, "not a gzip file");
  g_clear_error (&error);
  {
    g_autofree char *raw = NULL;
    gsize len;

    write_mnist (dir, 2051, 2049, 50, 28, 1);
    g_assert_true (g_file_get_contents (img, &raw, &len, NULL));
    g_assert_true (g_file_set_contents (img, raw, (gssize) (len / 2), NULL));
    ds = tr_mnist_load (dir, FALSE, &error);
    expect_error (ds, error, TR_DATA_ERROR, "corrupt or truncated");
    g_clear_error (&error);
  }
  g_unlink (img);
  g_unlink (lbl);
  g_rmdir (dir);
}

static void
test_cifar_bad (void)
{
  g_autofree char *dir = g_dir_make_tmp ("magpie-cifar-XXXXXX", NULL);
  g_autofree char *path = g_build_filename (dir, "test_batch.bin.gz", NULL);
  g_autofree guint8 *rec = g_new0 (guint8, 10000 * 3073);
  GError *error = NULL;
  TrDataset *ds;

  write_gz (dir, "test_batch.bin.gz", rec, 3073 * 100);
  ds = tr_cifar10_load (dir, FALSE, &error);
  expect_error (ds, error, TR_DATA_ERROR, "10000 records of 3073");
  g_clear_error (&error);

  rec[3073 * 5] = 42;  /* a CIFAR-100 fine label */
  write_gz (dir, "test_batch.bin.gz", rec, 10000 * 3073);
  ds = tr_cifar10_load (dir, FALSE, &error);
  expect_error (ds, error, TR_DATA_ERROR, "record 5 has label 42");
  g_clear_error (&error);

  rec[3073 * 5] = 9;
  rec[3073 * 5 + 1] = 200;
  write_gz (dir, "test_batch.bin.gz", rec, 10000 * 3073);
  ds = tr_cifar10_load (dir, FALSE, &error);
  g_assert_no_error (error);
  g_assert_cmpint (ds->n, ==, 10000);
  g_assert_cmpint (ds->labels[5], ==, 9);
  g_assert_cmpint (ds->images[5 * 3072], ==, 200);
  tr_dataset_free (ds);
  g_unlink (path);
  g_rmdir (dir);
}

/* the shared files are the real ones: counts and the first labels as published */
static void
test_real_files (void)
{
  g_autofree char *mnist = shared ("mnist");
  g_autofree char *cifar = shared ("cifar10/test_batch.bin.gz");
  g_autoptr(GError) error = NULL;

  if (!mnist)
    {
      g_test_skip ("MNIST is not in the shared data (MAGPIE_SHARED_DATA)");
      return;
    }
  {
    g_autoptr(TrDataset) ds = tr_mnist_load (mnist, FALSE, &error);

    g_assert_no_error (error);
    g_assert_cmpint (ds->n, ==, 10000);
    /* t10k starts 7, 2, 1, 0, 4 */
    g_assert_cmpmem (ds->labels, 5, "\7\2\1\0\4", 5);
    g_assert_cmpstr (g_ptr_array_index (ds->files, 1), ==,
                     "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6");
  }
  if (cifar)
    {
      g_autofree char *dir = g_path_get_dirname (cifar);
      g_autoptr(TrDataset) ds = tr_cifar10_load (dir, FALSE, &error);

      g_assert_no_error (error);
      g_assert_cmpint (ds->n, ==, 10000);
      /* the test batch starts cat, ship, ship, airplane */
      g_assert_cmpmem (ds->labels, 4, "\3\10\10\0", 4);
    }
}

/* augmentation moves and thickens strokes but keeps a digit's ink near the centre */
static void
test_augment_digit (void)
{
  guint8 img[784] = { 0 };
  float out[784];
  TrRng rng;

  for (int y = 8; y < 20; y++)
    for (int x = 12; x < 16; x++)
      img[y * 28 + x] = 255;
  tr_rng_init (&rng, 1, 1);
  for (int k = 0; k < 50; k++)
    {
      double mass = 0, mx = 0, my = 0;

      tr_augment_digit (img, out, &rng);
      for (int y = 0; y < 28; y++)
        for (int x = 0; x < 28; x++)
          {
            g_assert_cmpfloat (out[y * 28 + x], >=, 0.0f);
            g_assert_cmpfloat (out[y * 28 + x], <=, 1.0f + 1e-5f);
            mass += out[y * 28 + x];
            mx += x * out[y * 28 + x];
            my += y * out[y * 28 + x];
          }
      /* 48 px of ink: thinner, thicker, scaled by 0.9..1.1 squared */
      g_assert_cmpfloat (mass, >, 20);
      g_assert_cmpfloat (mass, <, 110);
      g_assert_cmpfloat (fabs (mx / mass - 13.5), <, 3.5);
      g_assert_cmpfloat (fabs (my / mass - 13.5), <, 3.5);
    }
}

static void
test_augment_photo (void)
{
  g_autofree guint8 *img = g_new (guint8, 3072);
  float out[3072];
  int flips = 0, same = 0;
  TrRng rng;

  for (int i = 0; i < 3072; i++)
    img[i] = (guint8) (i % 32 * 8);  /* brightness grows to the right */
  tr_rng_init (&rng, 1, 2);
  for (int k = 0; k < 200; k++)
    {
      tr_augment_photo (img, out, &rng);
      /* a crop of a horizontal ramp is a ramp, flipped or not */
      if (out[16] > out[20])
        flips++;
      /* rows are identical in this image: crops shift along x only in what they show */
      g_assert_cmpfloat (out[5 * 32 + 7], ==, out[9 * 32 + 7]);
      same += out[10] == img[10] / 255.0f;
    }
  g_assert_cmpint (flips, >, 60);
  g_assert_cmpint (flips, <, 140);
  g_assert_cmpint (same, <, 100);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/train/data/mnist-bad", test_mnist_bad);
  g_test_add_func ("/train/data/cifar10-bad", test_cifar_bad);
  g_test_add_func ("/train/data/real-files", test_real_files);
  g_test_add_func ("/train/data/augment-digit", test_augment_digit);
  g_test_add_func ("/train/data/augment-photo", test_augment_photo);
  return g_test_run ();
}
