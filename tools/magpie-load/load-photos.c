/* load-photos.c - the images magpie-load sends, read once and hashed once */
#include "config.h"

#include "load-photos.h"

#include <gio/gio.h>
#include <string.h>

#include "mp-sigv4.h"

static void
load_photo_free (gpointer data)
{
  LoadPhoto *p = data;

  g_free (p->name);
  g_free (p->extension);
  g_free (p->content_type);
  g_bytes_unref (p->bytes);
  g_free (p->sha256);
  g_free (p);
}

static const char *
content_type_for (const char *extension)
{
  if (strcmp (extension, "jpg") == 0 || strcmp (extension, "jpeg") == 0)
    return "image/jpeg";
  if (strcmp (extension, "png") == 0)
    return "image/png";
  if (strcmp (extension, "webp") == 0)
    return "image/webp";
  return NULL;
}

static int
cmp_photo_names (gconstpointer a,
                 gconstpointer b)
{
  const LoadPhoto *x = *(LoadPhoto **) a, *y = *(LoadPhoto **) b;

  return strcmp (x->name, y->name);
}

GPtrArray *
load_photos_read (const char  *dir,
                  GError     **error)
{
  g_autoptr(GPtrArray) photos = g_ptr_array_new_with_free_func (load_photo_free);
  g_autoptr(GDir) d = g_dir_open (dir, 0, error);
  g_autoptr(GHashTable) seen = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  gint64 total = 0;
  const char *name;

  if (d == NULL)
    return NULL;
  while ((name = g_dir_read_name (d)) != NULL)
    {
      g_autofree char *path = g_build_filename (dir, name, NULL);
      const char *dot = strrchr (name, '.');
      g_autofree char *ext = dot ? g_ascii_strdown (dot + 1, -1) : NULL;
      const char *type = ext ? content_type_for (ext) : NULL;
      g_autoptr(GMappedFile) mapped = NULL;
      LoadPhoto *photo;
      char *sha256;
      gsize len;

      if (type == NULL || !g_file_test (path, G_FILE_TEST_IS_REGULAR))
        continue;
      if (photos->len == LOAD_PHOTOS_MAX_FILES)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_NO_SPACE,
                       "%s has more than %d images; point --photos at a smaller set", dir,
                       LOAD_PHOTOS_MAX_FILES);
          return NULL;
        }
      mapped = g_mapped_file_new (path, FALSE, error);
      if (mapped == NULL)
        return NULL;
      len = g_mapped_file_get_length (mapped);
      if (len == 0 || len > LOAD_PHOTO_MAX_BYTES)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                       "%s is %" G_GSIZE_FORMAT " bytes; images must be 1 byte to %d MB", path,
                       len, LOAD_PHOTO_MAX_BYTES / (1024 * 1024));
          return NULL;
        }
      total += len;
      if (total > LOAD_PHOTOS_MAX_TOTAL)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_NO_SPACE,
                       "the images in %s pass 2 GiB together; point --photos at a smaller set",
                       dir);
          return NULL;
        }
      sha256 = mp_sigv4_sha256_hex (g_mapped_file_get_contents (mapped), len);
      if (!g_hash_table_add (seen, sha256))
        continue;   /* the same bytes again would be the same object: one is enough */
      photo = g_new0 (LoadPhoto, 1);
      photo->name = g_strdup (name);
      photo->extension = g_steal_pointer (&ext);
      photo->content_type = g_strdup (type);
      photo->bytes = g_mapped_file_get_bytes (mapped);
      photo->sha256 = g_strdup (sha256);
      g_ptr_array_add (photos, photo);
    }
  if (photos->len == 0)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                   "%s holds no .jpg, .jpeg, .png or .webp files", dir);
      return NULL;
    }
  g_ptr_array_sort (photos, cmp_photo_names);
  return g_steal_pointer (&photos);
}
