/* test-tags.c - tags in the user's language: the bundled model's labels through gettext */
#include "config.h"

#include <glib/gi18n.h>
#include <locale.h>

#include "app-test-util.h"
#include "magpie-photo-tile.h"
#include "magpie-photo.h"

/* A German user sees "Katze" for the bundled model's "cat", finds the photo by either word,
 * and sees another model's labels ("Egyptian cat") as they are. */
static gboolean have_catalogue;

static void
test_german (void)
{
  g_autoptr(MagpieTag) cat = magpie_tag_new ("cat", 0.87, MAGPIE_TAG_SOURCE_LOCAL);
  g_autoptr(MagpieTag) car = magpie_tag_new ("automobile", 0.6, MAGPIE_TAG_SOURCE_SERVER);
  g_autoptr(MagpieTag) other = magpie_tag_new ("Egyptian cat", 0.5, MAGPIE_TAG_SOURCE_LOCAL);
  g_autoptr(GPtrArray) tags = g_ptr_array_new ();
  g_autoptr(GFile) file = g_file_new_for_path ("/nonexistent/IMG_0001.jpg");
  g_autoptr(MagpiePhoto) photo = magpie_photo_new (1, file, "00", "IMG_0001.jpg");
  g_autofree char *cat_text = NULL;
  g_autofree char *car_text = NULL;
  g_autofree char *other_text = NULL;

  if (!have_catalogue)
    {
      g_test_skip ("no C.UTF-8 locale or no MAGPIE_LOCALEDIR (the built catalogues)");
      return;
    }
  other_text = magpie_tag_describe (other);
  cat_text = magpie_tag_describe (cat);
  car_text = magpie_tag_describe (car);
  g_assert_cmpstr (cat_text, ==, "Katze, 87 %, auf diesem Gerät");
  g_assert_cmpstr (car_text, ==, "Auto, 60 %");
  g_assert_cmpstr (other_text, ==, "Egyptian cat, 50 %, auf diesem Gerät");

  g_ptr_array_add (tags, cat);
  magpie_photo_set_tags (photo, tags, MAGPIE_TAG_SOURCE_LOCAL);
  g_assert_true (magpie_photo_matches (photo, "katz", 0.1));
  g_assert_true (magpie_photo_matches (photo, "cat", 0.1));
  g_assert_false (magpie_photo_matches (photo, "hund", 0.1));
}

int
main (int   argc,
      char *argv[])
{
  const char *catalogs = g_getenv ("MAGPIE_LOCALEDIR");

  /* German through LANGUAGE, which gettext honours in any locale but "C" itself */
  g_setenv ("LANGUAGE", "de", TRUE);
  g_test_init (&argc, &argv, NULL);
  have_catalogue = catalogs != NULL && setlocale (LC_ALL, "C.UTF-8") != NULL;
  if (have_catalogue)
    {
      bindtextdomain (GETTEXT_PACKAGE, catalogs);
      bind_textdomain_codeset (GETTEXT_PACKAGE, "UTF-8");
      textdomain (GETTEXT_PACKAGE);
    }

  g_test_add_func ("/app/tags/german", test_german);

  return g_test_run ();
}
