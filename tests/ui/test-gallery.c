/* test-gallery.c - the Gallery in a real window: drops, tiles, tags, search, delete and undo */
#include "config.h"

#include <glib/gstdio.h>
#include <string.h>
#include <unistd.h>

#include "app-test-util.h"
#include "magpie-photo-tile.h"
#include "magpie-window.h"

#define N_PHOTOS 20

static MagpieApplication *app;
static char *screenshot_dir;

static gboolean
window_mapped (gpointer user_data)
{
  return gtk_widget_get_mapped (user_data);
}

static MagpieWindow *
main_window (void)
{
  MagpieWindow *window;

  g_application_activate (G_APPLICATION (app));
  window = MAGPIE_WINDOW (gtk_application_get_active_window (GTK_APPLICATION (app)));
  g_assert_nonnull (window);
  g_assert_true (app_test_wait (window_mapped, window, 10000));
  return window;
}

typedef struct {
  MagpieWindow *window;
  guint         n_photos;
  gboolean      need_tags;
} TileWait;

/* Tiles on screen showing distinct photos, with their thumbnails (and tags when asked). */
static guint
count_tiles (MagpieWindow *window,
             gboolean      need_tags)
{
  g_autoptr(GPtrArray) tiles = g_ptr_array_new ();
  g_autoptr(GHashTable) photos = g_hash_table_new (NULL, NULL);

  app_test_collect_widgets (GTK_WIDGET (window), MAGPIE_TYPE_PHOTO_TILE, tiles);
  for (guint i = 0; i < tiles->len; i++)
    {
      MagpiePhotoTile *tile = tiles->pdata[i];
      MagpiePhoto *photo = magpie_photo_tile_get_photo (tile);

      if (photo == NULL || !gtk_widget_get_mapped (GTK_WIDGET (tile)) ||
          magpie_photo_get_thumbnail (photo) == NULL)
        continue;
      if (need_tags && magpie_photo_get_tags (photo)->len == 0)
        continue;
      g_hash_table_add (photos, photo);
    }
  return g_hash_table_size (photos);
}

static gboolean
tiles_shown (gpointer user_data)
{
  TileWait *wait = user_data;

  return count_tiles (wait->window, wait->need_tags) >= wait->n_photos;
}

static gboolean
label_shown (GtkWidget  *root,
             const char *text)
{
  g_autoptr(GPtrArray) labels = g_ptr_array_new ();

  app_test_collect_widgets (root, GTK_TYPE_LABEL, labels);
  for (guint i = 0; i < labels->len; i++)
    if (strstr (gtk_label_get_label (labels->pdata[i]), text) != NULL &&
        gtk_widget_get_mapped (labels->pdata[i]))
      return TRUE;
  return FALSE;
}

typedef struct {
  GtkWidget  *root;
  const char *text;
} LabelWait;

static gboolean
label_shown_cb (gpointer user_data)
{
  LabelWait *wait = user_data;

  return label_shown (wait->root, wait->text);
}

static void
test_drop_twenty (void)
{
  MagpieWindow *window = main_window ();
  MagpieGalleryPage *page = magpie_window_get_gallery_page (window);
  MagpieLibrary *library = magpie_application_get_library (app);
  g_autoptr(GPtrArray) files = app_test_shared_photos ();
  TileWait wait = { window, N_PHOTOS, FALSE };
  gint64 start;

  if (files->len < N_PHOTOS)
    {
      g_test_skip ("fewer than 20 shared photos");
      return;
    }

  /* The whole screen: six tiles across, four rows, so all twenty are on it. */
  gtk_window_set_default_size (GTK_WINDOW (window), 1280, 800);
  gtk_window_maximize (GTK_WINDOW (window));

  start = g_get_monotonic_time ();
  app_test_drop_files (window, (GFile **) files->pdata, N_PHOTOS);
  g_assert_true (app_test_wait (app_test_imports_done, page, 60000));
  g_test_message ("20 photos imported in %.2f s",
                  (g_get_monotonic_time () - start) / (double) G_USEC_PER_SEC);
  g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (library)), ==, N_PHOTOS);

  /* The header counts what waits for the server. */
  {
    GtkWidget *indicator = GTK_WIDGET (gtk_widget_get_template_child (GTK_WIDGET (window),
                                                                      MAGPIE_TYPE_WINDOW,
                                                                      "upload_indicator"));

    g_assert_true (gtk_widget_get_visible (indicator));
    g_assert_cmpstr (gtk_widget_get_tooltip_text (indicator), ==, "20 photos waiting to upload");
  }
  g_assert_true (app_test_wait (tiles_shown, &wait, 60000));
  g_test_message ("20 tiles with thumbnails after %.2f s",
                  (g_get_monotonic_time () - start) / (double) G_USEC_PER_SEC);

  /* The bundled photo model (data/models/photos.onnx) tags every photo on this device. */
  {
    g_autoptr(GPtrArray) boxes = g_ptr_array_new ();
    guint local_chips = 0;

    wait.need_tags = TRUE;
    g_assert_true (app_test_wait (tiles_shown, &wait, 120000));
    g_test_message ("20 tiles tagged on this device after %.2f s",
                    (g_get_monotonic_time () - start) / (double) G_USEC_PER_SEC);
    /* Each tile's chips say where their tags came from. */
    app_test_collect_widgets (GTK_WIDGET (window), GTK_TYPE_BOX, boxes);
    for (guint i = 0; i < boxes->len; i++)
      {
        GtkWidget *chip = boxes->pdata[i];
        const char *tooltip = gtk_widget_get_tooltip_text (chip);

        if (gtk_widget_has_css_class (chip, "tag-chip") && gtk_widget_get_mapped (chip))
          {
            g_assert_true (gtk_widget_has_css_class (chip, "local"));
            g_assert_nonnull (strstr (tooltip, "on this device"));
            local_chips++;
          }
      }
    g_assert_cmpuint (local_chips, >=, N_PHOTOS);
  }
  /* A frame or two for the last thumbnails to be drawn. */
  g_usleep (G_USEC_PER_SEC / 2);
  while (g_main_context_iteration (NULL, FALSE))
    ;
  app_test_screenshot (screenshot_dir, "magpie-gallery.png");

  /* The same drop again adds nothing and says so. */
  {
    LabelWait label = { GTK_WIDGET (window), "already in the gallery" };

    app_test_drop_files (window, (GFile **) files->pdata, 3);
    g_assert_true (app_test_wait (app_test_imports_done, page, 60000));
    g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (library)), ==, N_PHOTOS);
    g_assert_true (app_test_wait (label_shown_cb, &label, 5000));
  }
}

static void
test_refuse_non_images (void)
{
  MagpieWindow *window = main_window ();
  MagpieGalleryPage *page = magpie_window_get_gallery_page (window);
  MagpieLibrary *library = magpie_application_get_library (app);
  g_autofree char *dir = mp_test_make_tmpdir ("magpie-drop");
  g_autofree char *notes = g_build_filename (dir, "notes & plans.txt", NULL);
  g_autofree char *sheet = g_build_filename (dir, "budget.csv", NULL);
  g_autoptr(GFile) folder = g_file_new_for_path (dir);
  guint before = g_list_model_get_n_items (G_LIST_MODEL (library));
  LabelWait label = { GTK_WIDGET (window), "“notes &amp; plans.txt”" };

  g_assert_true (g_file_set_contents (notes, "not a photo\n", -1, NULL));
  g_assert_true (g_file_set_contents (sheet, "a,b\n1,2\n", -1, NULL));

  app_test_drop_files (window, &folder, 1);
  g_assert_true (app_test_wait (app_test_imports_done, page, 60000));
  g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (library)), ==, before);
  /* One toast names both; the markup is escaped, so "&" shows as "&". */
  g_assert_true (app_test_wait (label_shown_cb, &label, 5000));
  label.text = "“budget.csv”";
  g_assert_true (label_shown (GTK_WIDGET (window), label.text));
  mp_test_rm_rf (dir);
}

static GtkWidget *
find_undo (MagpieWindow *window)
{
  g_autoptr(GPtrArray) buttons = g_ptr_array_new ();

  app_test_collect_widgets (GTK_WIDGET (window), GTK_TYPE_BUTTON, buttons);
  for (guint i = 0; i < buttons->len; i++)
    if (g_strcmp0 (gtk_button_get_label (buttons->pdata[i]), "_Undo") == 0 &&
        gtk_widget_get_mapped (buttons->pdata[i]))
      return buttons->pdata[i];
  return NULL;
}

static gboolean
undo_shown (gpointer user_data)
{
  return find_undo (user_data) != NULL;
}

typedef struct {
  GListModel *model;
  guint       n;
} CountWait;

static gboolean
n_items_is (gpointer user_data)
{
  CountWait *wait = user_data;

  return g_list_model_get_n_items (wait->model) == wait->n;
}

static void
test_search_and_delete (void)
{
  MagpieWindow *window = main_window ();
  MagpieGalleryPage *page = magpie_window_get_gallery_page (window);
  MagpieLibrary *library = magpie_application_get_library (app);
  g_autoptr(GPtrArray) files = app_test_shared_photos ();
  g_autoptr(GPtrArray) tags = g_ptr_array_new_with_free_func ((GDestroyNotify) magpie_tag_free);
  g_autoptr(MagpiePhoto) photo = NULL;
  GtkEditable *entry;
  GtkStack *stack;
  GListModel *shown;
  guint n;

  if (files->len < 2)
    {
      g_test_skip ("no shared photos");
      return;
    }
  app_test_drop_files (window, (GFile **) files->pdata, 2);
  g_assert_true (app_test_wait (app_test_imports_done, page, 60000));
  n = g_list_model_get_n_items (G_LIST_MODEL (library));
  g_assert_cmpuint (n, >=, 2);

  /* A server tag on one photo; a search finds it by the start of a word. */
  photo = g_list_model_get_item (G_LIST_MODEL (library), 0);
  g_ptr_array_add (tags, magpie_tag_new ("snow leopard", 0.9, MAGPIE_TAG_SOURCE_SERVER));
  magpie_library_set_tags (library, photo, tags, MAGPIE_TAG_SOURCE_SERVER);

  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (window), "window.search", NULL));
  entry = GTK_EDITABLE (gtk_widget_get_template_child (GTK_WIDGET (page),
                                                       MAGPIE_TYPE_GALLERY_PAGE, "search_entry"));
  stack = GTK_STACK (gtk_widget_get_template_child (GTK_WIDGET (page), MAGPIE_TYPE_GALLERY_PAGE,
                                                    "stack"));
  shown = G_LIST_MODEL (gtk_grid_view_get_model (
    GTK_GRID_VIEW (gtk_widget_get_template_child (GTK_WIDGET (page), MAGPIE_TYPE_GALLERY_PAGE,
                                                  "grid"))));
  /* The entry waits for typing to pause before it searches. */
  gtk_editable_set_text (entry, "leop");
  g_assert_true (app_test_wait (n_items_is, &(CountWait) { shown, 1 }, 5000));
  gtk_editable_set_text (entry, "no such tag anywhere");
  g_assert_true (app_test_wait (n_items_is, &(CountWait) { shown, 0 }, 5000));
  g_assert_cmpstr (gtk_stack_get_visible_child_name (stack), ==, "no-results");
  gtk_editable_set_text (entry, "");
  g_assert_true (app_test_wait (n_items_is, &(CountWait) { shown, n }, 5000));

  /* The photo page, then Delete: gone from the grid, back with Undo. */
  magpie_gallery_page_show_photo (page, photo);
  g_assert_cmpstr (gtk_stack_get_visible_child_name (stack), ==, "photo");
  g_assert_true (label_shown (GTK_WIDGET (window), "snow leopard"));
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (page), "gallery.delete", NULL));
  g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (library)), ==, n - 1);
  g_assert_null (magpie_gallery_page_get_shown_photo (page));
  /* The undo toast waits its turn behind the toasts of the tests before. */
  g_assert_true (app_test_wait (undo_shown, window, 30000));
  g_signal_emit_by_name (find_undo (window), "clicked");
  g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (library)), ==, n);
  g_assert_nonnull (magpie_library_find (library, magpie_photo_get_id (photo)));
}

typedef struct {
  MagpieLibrary *library;
  guint          n;
} LibraryWait;

static gboolean
library_has (gpointer user_data)
{
  LibraryWait *wait = user_data;

  return g_list_model_get_n_items (G_LIST_MODEL (wait->library)) >= wait->n;
}

/* `magpie FILE…` and files opened with Magpie come in through GApplication::open. */
static void
test_open_files (void)
{
  MagpieLibrary *library = magpie_application_get_library (app);
  guint before = g_list_model_get_n_items (G_LIST_MODEL (library));
  g_autofree char *dir = mp_test_make_tmpdir ("magpie-open");
  g_autofree char *path = g_build_filename (dir, "opened.png", NULL);
  g_autoptr(GdkPixbuf) pixbuf = gdk_pixbuf_new (GDK_COLORSPACE_RGB, FALSE, 8, 64, 48);
  g_autoptr(GFile) file = g_file_new_for_path (path);
  g_autoptr(GError) error = NULL;
  LibraryWait wait = { library, before + 1 };

  /* Bytes no other test imports: a colour from the clock. */
  gdk_pixbuf_fill (pixbuf, (guint32) g_get_real_time () << 8);
  gdk_pixbuf_save (pixbuf, path, "png", &error, NULL);
  g_assert_no_error (error);

  main_window ();
  g_application_open (G_APPLICATION (app), &file, 1, "");
  g_assert_true (app_test_wait (library_has, &wait, 60000));
  g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (library)), ==, before + 1);
  mp_test_rm_rf (dir);
}

static gboolean
incoming_empty (gpointer user_data)
{
  g_autofree char *path = g_build_filename (g_get_user_data_dir (), "magpie", "incoming", NULL);
  g_autoptr(GDir) dir = g_dir_open (path, 0, NULL);

  /* The paste made the folder, so it must be there. */
  g_assert_nonnull (dir);
  return g_dir_read_name (dir) == NULL;
}

/* An image copied in another application (here: put on the clipboard as a texture) is
 * pasted as a PNG; copied files are imported as files. */
static void
test_paste (void)
{
  MagpieWindow *window = main_window ();
  MagpieGalleryPage *page = magpie_window_get_gallery_page (window);
  MagpieLibrary *library = magpie_application_get_library (app);
  GdkClipboard *clipboard = gtk_widget_get_clipboard (GTK_WIDGET (page));
  g_autoptr(GdkPixbuf) pixbuf = gdk_pixbuf_new (GDK_COLORSPACE_RGB, TRUE, 8, 40, 30);
  g_autoptr(GdkTexture) texture = NULL;
  g_autoptr(MagpiePhoto) pasted = NULL;
  guint before = g_list_model_get_n_items (G_LIST_MODEL (library));
  LibraryWait wait = { library, before + 1 };
  int width = 0;

  gdk_pixbuf_fill (pixbuf, 0x3366ccff ^ ((guint32) g_get_real_time () << 8));
  texture = gdk_texture_new_for_pixbuf (pixbuf);
  gdk_clipboard_set_texture (clipboard, texture);
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (page), "gallery.paste", NULL));
  g_assert_true (app_test_wait (library_has, &wait, 30000));
  pasted = g_list_model_get_item (G_LIST_MODEL (library), 0);
  g_assert_true (g_str_has_prefix (magpie_photo_get_name (pasted), "Pasted image "));
  g_assert_cmpstr (magpie_photo_get_extension (pasted), ==, "png");
  magpie_photo_get_dimensions (pasted, &width, NULL);
  g_assert_cmpint (width, ==, 40);
  /* The PNG the paste was written to goes once the library has its copy. */
  g_assert_true (app_test_wait (incoming_empty, NULL, 10000));

  /* Text is not an image: nothing is added, and the toast says why. */
  {
    LabelWait label = { GTK_WIDGET (window), "no image" };

    gdk_clipboard_set_text (clipboard, "just words");
    g_assert_true (gtk_widget_activate_action (GTK_WIDGET (page), "gallery.paste", NULL));
    g_assert_true (app_test_wait (label_shown_cb, &label, 30000));
    g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (library)), ==, before + 1);
  }
}

int
main (int   argc,
      char *argv[])
{
  g_autofree char *home = NULL;
  int status;

  g_test_init (&argc, &argv, NULL);
  home = app_test_isolate_dirs ();
  screenshot_dir = g_strdup (g_getenv ("MAGPIE_SCREENSHOT_DIR") != NULL
                             ? g_getenv ("MAGPIE_SCREENSHOT_DIR") : home);

  app = app_test_application_new ();
  /* libadwaita 1.2 can crash finishing a toast's hide animation while the window that held
   * it is being destroyed (adw_animation_skip() unrefs a freed toast widget); without
   * animations no toast is mid-animation when the tests close the window. */
  g_object_set (gtk_settings_get_default (), "gtk-enable-animations", FALSE, NULL);

  g_test_add_func ("/ui/gallery/drop-twenty", test_drop_twenty);
  g_test_add_func ("/ui/gallery/refuse-non-images", test_refuse_non_images);
  g_test_add_func ("/ui/gallery/search-and-delete", test_search_and_delete);
  g_test_add_func ("/ui/gallery/open-files", test_open_files);
  g_test_add_func ("/ui/gallery/paste", test_paste);

  status = g_test_run ();
  app_test_close_all ();
  /* As at the end of g_application_run(): no model thread outlives main(). */
  magpie_application_stop_workers (app);
  g_clear_object (&app);
  mp_test_rm_rf (home);
  g_free (screenshot_dir);
  return status;
}
