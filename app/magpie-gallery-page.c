/* magpie-gallery-page.c - the Gallery: a grid of photos, import, search, one photo's page
 *
 * Every way in — drop, paste, "Add Photos…", `magpie FILE…` — ends in
 * magpie_gallery_page_import(), which hands the files to the library and reports what it
 * refused in one toast. Nothing here waits on the disk: the library imports, thumbnails
 * and previews are all made off the main thread.
 */
#define G_LOG_DOMAIN "magpie-gallery-page"

#include "config.h"

#include "magpie-gallery-page.h"

#include <glib/gi18n.h>
#include <glib/gstdio.h>

#include "magpie-photo-tile.h"
#include "nn-labels.h"

/* A preview larger than any screen it is shown on only costs memory. */
#define MAGPIE_PREVIEW_SIZE 2048
/* Names listed in a toast before "and N more". */
#define MAGPIE_TOAST_MAX_NAMES 3

struct _MagpieGalleryPage {
  GtkWidget           parent_instance;

  MagpieLibrary      *library;
  GtkFilterListModel *filtered;
  GtkCustomFilter    *filter;
  GSettings          *settings;
  GCancellable       *cancellable;
  GCancellable       *preview_cancellable;
  MagpiePhoto        *shown_photo;
  GtkDropTarget      *drop_target;
  guint               n_imports;   /* imports under way */

  /* template children */
  GtkSearchBar       *search_bar;
  GtkSearchEntry     *search_entry;
  GtkAdjustment      *threshold_adjustment;
  GtkStack           *stack;
  GtkGridView        *grid;
  GtkLabel           *photo_title;
  GtkPicture         *preview;
  GtkListBox         *tag_list;
  AdwActionRow       *state_row;
  AdwActionRow       *dimensions_row;
  AdwActionRow       *size_row;
  AdwActionRow       *imported_row;
  AdwActionRow       *sha_row;
};

G_DEFINE_FINAL_TYPE (MagpieGalleryPage, magpie_gallery_page, GTK_TYPE_WIDGET)

enum {
  PROP_0,
  PROP_LIBRARY,
  PROP_N_IMPORTS,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

static void
add_toast (MagpieGalleryPage *self,
           AdwToast          *toast)
{
  GtkWidget *overlay = gtk_widget_get_ancestor (GTK_WIDGET (self), ADW_TYPE_TOAST_OVERLAY);

  if (overlay != NULL)
    adw_toast_overlay_add_toast (ADW_TOAST_OVERLAY (overlay), toast);
  else
    {
      g_message ("%s", adw_toast_get_title (toast));
      g_object_unref (g_object_ref_sink (toast));
    }
}

static double
threshold (MagpieGalleryPage *self)
{
  return gtk_adjustment_get_value (self->threshold_adjustment) / 100.0;
}

static void
update_view (MagpieGalleryPage *self)
{
  const char *page;

  if (self->shown_photo != NULL)
    page = "photo";
  else if (self->library == NULL || !magpie_library_get_loaded (self->library) ||
           g_list_model_get_n_items (G_LIST_MODEL (self->filtered)) > 0)
    page = "grid";
  else if (g_list_model_get_n_items (G_LIST_MODEL (self->library)) == 0)
    page = "empty";
  else
    page = "no-results";
  gtk_stack_set_visible_child_name (self->stack, page);

  gtk_widget_action_set_enabled (GTK_WIDGET (self), "gallery.delete", self->shown_photo != NULL);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "gallery.back", self->shown_photo != NULL);
}

static gboolean
filter_photo (gpointer item,
              gpointer user_data)
{
  MagpieGalleryPage *self = user_data;

  return magpie_photo_matches (item, gtk_editable_get_text (GTK_EDITABLE (self->search_entry)),
                               threshold (self));
}

static void
set_tiles_threshold (GtkWidget *widget,
                     double     value)
{
  if (MAGPIE_IS_PHOTO_TILE (widget))
    {
      magpie_photo_tile_set_threshold (MAGPIE_PHOTO_TILE (widget), value);
      return;
    }
  for (GtkWidget *child = gtk_widget_get_first_child (widget); child != NULL;
       child = gtk_widget_get_next_sibling (child))
    set_tiles_threshold (child, value);
}

static void
search_changed_cb (MagpieGalleryPage *self)
{
  if (self->filter == NULL)
    return;
  gtk_filter_changed (GTK_FILTER (self->filter), GTK_FILTER_CHANGE_DIFFERENT);
  /* Tiles already on screen are not bound again: tell them the new threshold. */
  set_tiles_threshold (GTK_WIDGET (self->grid), threshold (self));
}

/* The setting is the default; the search bar's spin button changes it for one search. */
static void
threshold_setting_changed_cb (MagpieGalleryPage *self)
{
  gtk_adjustment_set_value (self->threshold_adjustment,
                            g_settings_get_double (self->settings, "tag-threshold") * 100.0);
}

static void
stop_search_cb (MagpieGalleryPage *self)
{
  gtk_editable_set_text (GTK_EDITABLE (self->search_entry), "");
  gtk_search_bar_set_search_mode (self->search_bar, FALSE);
}

/* Tiles ----------------------------------------------------------------------------------- */

static void
setup_tile_cb (GtkSignalListItemFactory *factory,
               GtkListItem              *item,
               MagpieGalleryPage        *self)
{
  gtk_list_item_set_child (item, magpie_photo_tile_new ());
}

static void
bind_tile_cb (GtkSignalListItemFactory *factory,
              GtkListItem              *item,
              MagpieGalleryPage        *self)
{
  MagpiePhotoTile *tile = MAGPIE_PHOTO_TILE (gtk_list_item_get_child (item));
  MagpiePhoto *photo = gtk_list_item_get_item (item);

  /* Only tiles that are bound ask for thumbnails: 5,000 photos cost what a screenful does. */
  magpie_photo_ensure_thumbnail (photo, magpie_library_get_thumbnail_dir (self->library));
  magpie_photo_tile_set_threshold (tile, threshold (self));
  magpie_photo_tile_set_photo (tile, photo);
}

static void
unbind_tile_cb (GtkSignalListItemFactory *factory,
                GtkListItem              *item,
                MagpieGalleryPage        *self)
{
  magpie_photo_tile_set_photo (MAGPIE_PHOTO_TILE (gtk_list_item_get_child (item)), NULL);
}

/* Import ---------------------------------------------------------------------------------- */

/* "a.txt", "a.txt and b.pdf", "a.txt, b.pdf, c.doc and 4 more", escaped for a toast's
 * markup. */
static char *
join_names (GPtrArray *names)
{
  g_autoptr(GString) text = g_string_new (NULL);
  guint shown = MIN (names->len, MAGPIE_TOAST_MAX_NAMES);

  for (guint i = 0; i < shown; i++)
    {
      g_autofree char *escaped = g_markup_escape_text (names->pdata[i], -1);

      if (i > 0 && i == names->len - 1)
        /* Translators: between the last two names of a list */
        g_string_append (text, _(" and "));
      else if (i > 0)
        g_string_append (text, ", ");
      /* Translators: a file name quoted in a list of names */
      g_string_append_printf (text, _("“%s”"), escaped);
    }
  if (names->len > shown)
    /* Translators: ends a list of file names that goes on */
    g_string_append_printf (text, g_dngettext (GETTEXT_PACKAGE, " and %u more", " and %u more",
                                               names->len - shown), names->len - shown);
  return g_string_free (g_steal_pointer (&text), FALSE);
}

static void
report_import (MagpieGalleryPage  *self,
               MagpieImportResult *result)
{
  if (result->refused->len > 0)
    {
      g_autofree char *names = join_names (result->refused);
      /* Translators: %s is a list of file names */
      g_autofree char *title = g_strdup_printf (g_dngettext (GETTEXT_PACKAGE,
                                                             "Not added, not an image: %s",
                                                             "Not added, not images: %s",
                                                             result->refused->len), names);
      AdwToast *toast = adw_toast_new (title);

      adw_toast_set_timeout (toast, 8);
      add_toast (self, toast);
    }
  if (result->failed->len > 0)
    {
      g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
      g_autofree char *list = NULL;
      g_autofree char *title = NULL;

      for (guint i = 0; i < result->failed->len; i++)
        {
          const char *line = result->failed->pdata[i];
          const char *colon = strchr (line, ':');

          g_message ("Import failed: %s", line);
          g_ptr_array_add (names, colon != NULL ? g_strndup (line, colon - line) : g_strdup (line));
        }
      list = join_names (names);
      /* Translators: %s is a list of file names; the reasons go to the log */
      title = g_strdup_printf (_("Could not add %s"), list);
      add_toast (self, adw_toast_new (title));
    }
  if (result->n_duplicates > 0 && result->n_added == 0 && result->refused->len == 0)
    {
      g_autofree char *title =
        g_strdup_printf (g_dngettext (GETTEXT_PACKAGE,
                                      "This photo is already in the gallery",
                                      "These %u photos are already in the gallery",
                                      result->n_duplicates), result->n_duplicates);

      add_toast (self, adw_toast_new (title));
    }
}

typedef struct {
  MagpieGalleryPage *self;
  GFile             *temporary;  /* a pasted image's file, removed once it is imported */
} ImportCall;

static void
import_call_free (ImportCall *call)
{
  g_object_unref (call->self);
  g_clear_object (&call->temporary);
  g_free (call);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (ImportCall, import_call_free)

static void
imported_cb (GObject      *object,
             GAsyncResult *result,
             gpointer      user_data)
{
  g_autoptr(ImportCall) call = user_data;
  MagpieGalleryPage *self = call->self;
  g_autoptr(MagpieImportResult) imported = NULL;
  g_autoptr(GError) error = NULL;

  self->n_imports--;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_N_IMPORTS]);
  imported = magpie_library_import_finish (MAGPIE_LIBRARY (object), result, &error);
  if (imported == NULL)
    {
      if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        return;
      g_message ("Import failed: %s", error->message);
      add_toast (self, adw_toast_new (_("Could not add the photos")));
      return;
    }
  /* The library has its own copy now (or refused it): the pasted file has done its job. */
  if (call->temporary != NULL)
    g_file_delete_async (call->temporary, G_PRIORITY_LOW, NULL, NULL, NULL);
  g_debug ("Imported %u, %u already there, %u refused, %u failed", imported->n_added,
           imported->n_duplicates, imported->refused->len, imported->failed->len);
  report_import (self, imported);
}

static void
import_files (MagpieGalleryPage  *self,
              GFile             **files,
              guint               n_files,
              GFile              *temporary)
{
  ImportCall *call;

  if (n_files == 0)
    return;
  call = g_new0 (ImportCall, 1);
  call->self = g_object_ref (self);
  call->temporary = temporary != NULL ? g_object_ref (temporary) : NULL;
  self->n_imports++;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_N_IMPORTS]);
  magpie_library_import_async (self->library, files, n_files, self->cancellable, imported_cb,
                               call);
}

/* The one way photos come in: dropped, pasted, chosen or named on the command line. */
void
magpie_gallery_page_import (MagpieGalleryPage  *self,
                            GFile             **files,
                            guint               n_files)
{
  g_return_if_fail (MAGPIE_IS_GALLERY_PAGE (self));
  g_return_if_fail (self->library != NULL);

  import_files (self, files, n_files, NULL);
}

/* Imports being worked on; 0 when every import has finished. */
guint
magpie_gallery_page_get_n_imports (MagpieGalleryPage *self)
{
  g_return_val_if_fail (MAGPIE_IS_GALLERY_PAGE (self), 0);
  return self->n_imports;
}

static void
import_file_list (MagpieGalleryPage *self,
                  GdkFileList       *list)
{
  g_autoptr(GSList) files = gdk_file_list_get_files (list);
  g_autoptr(GPtrArray) array = g_ptr_array_new ();

  for (GSList *l = files; l != NULL; l = l->next)
    g_ptr_array_add (array, l->data);
  magpie_gallery_page_import (self, (GFile **) array->pdata, array->len);
}

static gboolean
drop_cb (GtkDropTarget     *target,
         const GValue      *value,
         double             x,
         double             y,
         MagpieGalleryPage *self)
{
  if (!G_VALUE_HOLDS (value, GDK_TYPE_FILE_LIST) || self->library == NULL)
    return FALSE;
  import_file_list (self, g_value_get_boxed (value));
  return TRUE;
}

/* The page's drop target, for tests that drop files the way a drag does. */
GtkDropTarget *
magpie_gallery_page_get_drop_target (MagpieGalleryPage *self)
{
  g_return_val_if_fail (MAGPIE_IS_GALLERY_PAGE (self), NULL);
  return self->drop_target;
}

static void
chooser_response_cb (GtkNativeDialog   *dialog,
                     int                response,
                     MagpieGalleryPage *self)
{
  if (response == GTK_RESPONSE_ACCEPT)
    {
      g_autoptr(GListModel) files = gtk_file_chooser_get_files (GTK_FILE_CHOOSER (dialog));
      g_autoptr(GPtrArray) array = g_ptr_array_new_with_free_func (g_object_unref);

      for (guint i = 0; i < g_list_model_get_n_items (files); i++)
        g_ptr_array_add (array, g_list_model_get_item (files, i));
      magpie_gallery_page_import (self, (GFile **) array->pdata, array->len);
    }
  gtk_native_dialog_destroy (dialog);
  g_object_unref (dialog);
  g_object_unref (self);
}

/* Opens the file chooser; the chosen photos are imported. */
void
magpie_gallery_page_add_photos (MagpieGalleryPage *self)
{
  GtkFileChooserNative *chooser;
  g_autoptr(GtkFileFilter) images = gtk_file_filter_new ();
  GtkRoot *root;

  g_return_if_fail (MAGPIE_IS_GALLERY_PAGE (self));

  root = gtk_widget_get_root (GTK_WIDGET (self));
  chooser = gtk_file_chooser_native_new (_("Add Photos"),
                                         GTK_IS_WINDOW (root) ? GTK_WINDOW (root) : NULL,
                                         GTK_FILE_CHOOSER_ACTION_OPEN,
                                         _("_Add"), _("_Cancel"));
  gtk_file_chooser_set_select_multiple (GTK_FILE_CHOOSER (chooser), TRUE);
  gtk_file_filter_set_name (images, _("Images"));
  gtk_file_filter_add_pixbuf_formats (images);
  gtk_file_chooser_add_filter (GTK_FILE_CHOOSER (chooser), images);
  gtk_native_dialog_set_modal (GTK_NATIVE_DIALOG (chooser), TRUE);
  g_signal_connect (chooser, "response", G_CALLBACK (chooser_response_cb), g_object_ref (self));
  gtk_native_dialog_show (GTK_NATIVE_DIALOG (chooser));
}

/* Paste ----------------------------------------------------------------------------------- */

/* Thread: a pasted image becomes a PNG file in the library's incoming folder, imported from
 * there like any other file (and recorded before anything else like any other import). */
static void
save_texture_thread (GTask        *task,
                     gpointer      source_object,
                     gpointer      task_data,
                     GCancellable *cancellable)
{
  GdkTexture *texture = task_data;
  g_autoptr(GBytes) png = gdk_texture_save_to_png_bytes (texture);
  g_autofree char *dir = g_build_filename (g_get_user_data_dir (), "magpie", "incoming", NULL);
  g_autoptr(GDateTime) now = g_date_time_new_now_local ();
  g_autofree char *stamp = g_date_time_format (now, "%Y-%m-%d %H-%M-%S");
  /* Translators: the file name of an image pasted from the clipboard; %s is date and time */
  g_autofree char *name = g_strdup_printf (_("Pasted image %s.png"), stamp);
  g_autofree char *path = g_build_filename (dir, name, NULL);
  GError *error = NULL;

  if (g_mkdir_with_parents (dir, 0700) != 0)
    {
      int errsv = errno;

      g_task_return_new_error (task, G_IO_ERROR, g_io_error_from_errno (errsv),
                               "Cannot create %s: %s", dir, g_strerror (errsv));
      return;
    }
  if (!g_file_set_contents_full (path, g_bytes_get_data (png, NULL), g_bytes_get_size (png),
                                 G_FILE_SET_CONTENTS_CONSISTENT | G_FILE_SET_CONTENTS_DURABLE,
                                 0600, &error))
    {
      g_task_return_error (task, error);
      return;
    }
  g_task_return_pointer (task, g_file_new_for_path (path), g_object_unref);
}

static void
texture_saved_cb (GObject      *object,
                  GAsyncResult *result,
                  gpointer      user_data)
{
  MagpieGalleryPage *self = MAGPIE_GALLERY_PAGE (object);
  g_autoptr(GFile) file = NULL;
  g_autoptr(GError) error = NULL;

  file = g_task_propagate_pointer (G_TASK (result), &error);
  if (file == NULL)
    {
      if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        {
          g_warning ("Cannot keep the pasted image: %s", error->message);
          add_toast (self, adw_toast_new (_("Could not add the pasted image")));
        }
      return;
    }
  if (self->library != NULL)
    import_files (self, &file, 1, file);
}

static void
read_texture_cb (GObject      *object,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  g_autoptr(MagpieGalleryPage) self = user_data;
  g_autoptr(GdkTexture) texture = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GTask) task = NULL;

  texture = gdk_clipboard_read_texture_finish (GDK_CLIPBOARD (object), result, &error);
  if (texture == NULL)
    {
      if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        {
          g_warning ("Cannot read the image on the clipboard: %s", error->message);
          add_toast (self, adw_toast_new (_("Could not read the image on the clipboard")));
        }
      return;
    }
  task = g_task_new (self, self->cancellable, texture_saved_cb, NULL);
  g_task_set_source_tag (task, read_texture_cb);
  g_task_set_task_data (task, g_steal_pointer (&texture), g_object_unref);
  g_task_run_in_thread (task, save_texture_thread);
}

static void
read_files_cb (GObject      *object,
               GAsyncResult *result,
               gpointer      user_data)
{
  g_autoptr(MagpieGalleryPage) self = user_data;
  g_autoptr(GError) error = NULL;
  const GValue *value;

  value = gdk_clipboard_read_value_finish (GDK_CLIPBOARD (object), result, &error);
  if (value == NULL)
    {
      if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        {
          g_warning ("Cannot read the files on the clipboard: %s", error->message);
          add_toast (self, adw_toast_new (_("Could not read the files on the clipboard")));
        }
      return;
    }
  import_file_list (self, g_value_get_boxed (value));
}

/* Imports what the clipboard holds: copied files (as a file manager copies them) or an
 * image (as an image editor or a browser copies one). */
void
magpie_gallery_page_paste (MagpieGalleryPage *self)
{
  GdkClipboard *clipboard;
  GdkContentFormats *formats;

  g_return_if_fail (MAGPIE_IS_GALLERY_PAGE (self));

  clipboard = gtk_widget_get_clipboard (GTK_WIDGET (self));
  formats = gdk_clipboard_get_formats (clipboard);
  if (gdk_content_formats_contain_gtype (formats, GDK_TYPE_FILE_LIST))
    gdk_clipboard_read_value_async (clipboard, GDK_TYPE_FILE_LIST, G_PRIORITY_DEFAULT,
                                    self->cancellable, read_files_cb, g_object_ref (self));
  else if (gdk_content_formats_contain_gtype (formats, GDK_TYPE_TEXTURE))
    gdk_clipboard_read_texture_async (clipboard, self->cancellable, read_texture_cb,
                                      g_object_ref (self));
  else
    add_toast (self, adw_toast_new (_("The clipboard holds no image to add")));
}

/* Search ---------------------------------------------------------------------------------- */

void
magpie_gallery_page_toggle_search (MagpieGalleryPage *self)
{
  gboolean mode;

  g_return_if_fail (MAGPIE_IS_GALLERY_PAGE (self));

  if (self->shown_photo != NULL)
    magpie_gallery_page_show_photo (self, NULL);
  mode = !gtk_search_bar_get_search_mode (self->search_bar);
  gtk_search_bar_set_search_mode (self->search_bar, mode);
  if (mode)
    gtk_widget_grab_focus (GTK_WIDGET (self->search_entry));
}

/* The photo page -------------------------------------------------------------------------- */

static void
preview_thread (GTask        *task,
                gpointer      source_object,
                gpointer      task_data,
                GCancellable *cancellable)
{
  GFile *file = task_data;
  g_autofree char *path = g_file_get_path (file);
  g_autoptr(GdkPixbuf) pixbuf = NULL;
  g_autoptr(GdkPixbuf) upright = NULL;
  GError *error = NULL;

  pixbuf = gdk_pixbuf_new_from_file_at_scale (path, MAGPIE_PREVIEW_SIZE, MAGPIE_PREVIEW_SIZE,
                                              TRUE, &error);
  if (pixbuf == NULL)
    {
      g_task_return_error (task, error);
      return;
    }
  upright = gdk_pixbuf_apply_embedded_orientation (pixbuf);
  g_task_return_pointer (task, gdk_texture_new_for_pixbuf (upright), g_object_unref);
}

static void
preview_cb (GObject      *object,
            GAsyncResult *result,
            gpointer      user_data)
{
  MagpieGalleryPage *self = MAGPIE_GALLERY_PAGE (object);
  g_autoptr(GdkTexture) texture = NULL;
  g_autoptr(GError) error = NULL;

  texture = g_task_propagate_pointer (G_TASK (result), &error);
  if (texture == NULL)
    {
      if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        {
          g_warning ("Cannot show the photo: %s", error->message);
          add_toast (self, adw_toast_new (_("Could not show this photo")));
        }
      return;
    }
  gtk_picture_set_paintable (self->preview, GDK_PAINTABLE (texture));
}

static void
update_photo_details (MagpieGalleryPage *self)
{
  MagpiePhoto *photo = self->shown_photo;
  GtkWidget *child;
  g_autofree char *state = NULL;
  g_autofree char *dimensions = NULL;
  g_autofree char *size = NULL;
  g_autofree char *imported = NULL;
  GPtrArray *tags;
  int width = 0;
  int height = 0;

  while ((child = gtk_widget_get_first_child (GTK_WIDGET (self->tag_list))) != NULL)
    gtk_list_box_remove (self->tag_list, child);
  if (photo == NULL)
    return;

  gtk_label_set_label (self->photo_title, magpie_photo_get_name (photo));
  tags = magpie_photo_get_tags (photo);
  for (guint i = 0; i < tags->len; i++)
    {
      const MagpieTag *tag = tags->pdata[i];
      GtkWidget *row = adw_action_row_new ();
      GtkWidget *bar = gtk_level_bar_new_for_interval (0.0, 1.0);
      g_autofree char *percent = g_strdup_printf (_("%d %%"), (int) (tag->confidence * 100 + 0.5));
      g_autofree char *subtitle = NULL;

      subtitle = g_strdup_printf ("%s · %s", percent,
                                  tag->source == MAGPIE_TAG_SOURCE_LOCAL
                                  ? _("on this device") : _("from the server"));
      adw_preferences_row_set_title (ADW_PREFERENCES_ROW (row),
                                     nn_label_display_name (tag->label));
      adw_action_row_set_subtitle (ADW_ACTION_ROW (row), subtitle);
      gtk_level_bar_set_value (GTK_LEVEL_BAR (bar), tag->confidence);
      gtk_widget_set_size_request (bar, 60, -1);
      gtk_widget_set_valign (bar, GTK_ALIGN_CENTER);
      adw_action_row_add_suffix (ADW_ACTION_ROW (row), bar);
      gtk_list_box_append (self->tag_list, row);
    }
  if (tags->len == 0)
    {
      GtkWidget *row = adw_action_row_new ();

      adw_preferences_row_set_title (ADW_PREFERENCES_ROW (row), _("No tags yet"));
      gtk_list_box_append (self->tag_list, row);
    }

  state = magpie_photo_describe_state (photo);
  adw_action_row_set_subtitle (self->state_row, state);
  magpie_photo_get_dimensions (photo, &width, &height);
  /* Translators: width × height in pixels */
  dimensions = g_strdup_printf (_("%d × %d pixels"), width, height);
  adw_action_row_set_subtitle (self->dimensions_row, dimensions);
  size = g_format_size (magpie_photo_get_size (photo));
  adw_action_row_set_subtitle (self->size_row, size);
  if (magpie_photo_get_imported (photo) != NULL)
    imported = g_date_time_format (magpie_photo_get_imported (photo), "%x %X");
  adw_action_row_set_subtitle (self->imported_row, imported != NULL ? imported : "");
  adw_action_row_set_subtitle (self->sha_row, magpie_photo_get_sha256 (photo));
}

/* Shows @photo on its own page, or (NULL) goes back to the grid. */
void
magpie_gallery_page_show_photo (MagpieGalleryPage *self,
                                MagpiePhoto       *photo)
{
  g_return_if_fail (MAGPIE_IS_GALLERY_PAGE (self));
  g_return_if_fail (photo == NULL || MAGPIE_IS_PHOTO (photo));

  g_cancellable_cancel (self->preview_cancellable);
  g_clear_object (&self->preview_cancellable);
  if (self->shown_photo != NULL)
    g_signal_handlers_disconnect_by_data (self->shown_photo, self);
  g_set_object (&self->shown_photo, photo);
  gtk_picture_set_paintable (self->preview, NULL);

  if (photo != NULL)
    {
      g_autoptr(GTask) task = NULL;

      /* The thumbnail until the full preview is decoded. */
      gtk_picture_set_paintable (self->preview,
                                 GDK_PAINTABLE (magpie_photo_get_thumbnail (photo)));
      self->preview_cancellable = g_cancellable_new ();
      task = g_task_new (self, self->preview_cancellable, preview_cb, NULL);
      g_task_set_source_tag (task, magpie_gallery_page_show_photo);
      g_task_set_task_data (task, g_object_ref (magpie_photo_get_file (photo)), g_object_unref);
      g_task_run_in_thread (task, preview_thread);
      g_signal_connect_swapped (photo, "notify::tags", G_CALLBACK (update_photo_details), self);
      g_signal_connect_swapped (photo, "notify::state", G_CALLBACK (update_photo_details), self);
    }
  update_photo_details (self);
  update_view (self);
}

MagpiePhoto *
magpie_gallery_page_get_shown_photo (MagpieGalleryPage *self)
{
  g_return_val_if_fail (MAGPIE_IS_GALLERY_PAGE (self), NULL);
  return self->shown_photo;
}

static void
grid_activate_cb (MagpieGalleryPage *self,
                  guint              position)
{
  g_autoptr(MagpiePhoto) photo = g_list_model_get_item (G_LIST_MODEL (self->filtered), position);

  if (photo != NULL)
    magpie_gallery_page_show_photo (self, photo);
}

typedef struct {
  MagpieGalleryPage *self;
  MagpiePhoto       *photo;
  gboolean           undone;
} Deletion;

static void
deletion_free (gpointer  data,
               GClosure *closure)
{
  Deletion *deletion = data;

  g_object_unref (deletion->self);
  g_object_unref (deletion->photo);
  g_free (deletion);
}

static void
undo_delete_cb (AdwToast *toast,
                Deletion *deletion)
{
  deletion->undone = TRUE;
  if (deletion->self->library != NULL)
    magpie_library_restore (deletion->self->library, deletion->photo);
}

static void
delete_dismissed_cb (AdwToast *toast,
                     Deletion *deletion)
{
  if (!deletion->undone && deletion->self->library != NULL)
    magpie_library_purge (deletion->self->library, deletion->photo);
}

static void
delete_shown_photo (MagpieGalleryPage *self)
{
  Deletion *deletion;
  AdwToast *toast;
  g_autofree char *title = NULL;
  g_autofree char *name = NULL;

  if (self->shown_photo == NULL || self->library == NULL)
    return;

  deletion = g_new0 (Deletion, 1);
  deletion->self = g_object_ref (self);
  deletion->photo = g_object_ref (self->shown_photo);
  magpie_gallery_page_show_photo (self, NULL);
  magpie_library_remove (self->library, deletion->photo);

  name = g_markup_escape_text (magpie_photo_get_name (deletion->photo), -1);
  /* Translators: %s is a file name */
  title = g_strdup_printf (_("“%s” deleted"), name);
  toast = adw_toast_new (title);
  adw_toast_set_button_label (toast, _("_Undo"));
  /* Normal priority: libadwaita 1.2 asserts when a high-priority toast pushes back one that
   * is still on its way out (adw-toast-overlay.c show_toast). */
  g_signal_connect (toast, "button-clicked", G_CALLBACK (undo_delete_cb), deletion);
  g_signal_connect_data (toast, "dismissed", G_CALLBACK (delete_dismissed_cb), deletion,
                         deletion_free, 0);
  add_toast (self, toast);
}

static void
delete_action_cb (GtkWidget  *widget,
                  const char *action_name,
                  GVariant   *parameter)
{
  delete_shown_photo (MAGPIE_GALLERY_PAGE (widget));
}

static void
back_action_cb (GtkWidget  *widget,
                const char *action_name,
                GVariant   *parameter)
{
  magpie_gallery_page_show_photo (MAGPIE_GALLERY_PAGE (widget), NULL);
}

static void
paste_action_cb (GtkWidget  *widget,
                 const char *action_name,
                 GVariant   *parameter)
{
  magpie_gallery_page_paste (MAGPIE_GALLERY_PAGE (widget));
}

/* Object ---------------------------------------------------------------------------------- */

static void
library_changed_cb (MagpieGalleryPage *self)
{
  /* A photo deleted elsewhere, or restored, while its page is up. */
  if (self->shown_photo != NULL && self->library != NULL &&
      magpie_library_find (self->library, magpie_photo_get_id (self->shown_photo)) == NULL)
    magpie_gallery_page_show_photo (self, NULL);
  update_view (self);
}

MagpieLibrary *
magpie_gallery_page_get_library (MagpieGalleryPage *self)
{
  g_return_val_if_fail (MAGPIE_IS_GALLERY_PAGE (self), NULL);
  return self->library;
}

void
magpie_gallery_page_set_library (MagpieGalleryPage *self,
                                 MagpieLibrary     *library)
{
  g_return_if_fail (MAGPIE_IS_GALLERY_PAGE (self));
  g_return_if_fail (library == NULL || MAGPIE_IS_LIBRARY (library));

  if (self->library == library)
    return;
  if (self->library != NULL)
    g_signal_handlers_disconnect_by_data (self->library, self);
  magpie_gallery_page_show_photo (self, NULL);
  g_set_object (&self->library, library);
  gtk_filter_list_model_set_model (self->filtered, G_LIST_MODEL (library));
  if (library != NULL)
    {
      g_signal_connect_swapped (library, "notify::loaded", G_CALLBACK (update_view), self);
      g_signal_connect_swapped (library, "notify::n-items", G_CALLBACK (library_changed_cb), self);
    }
  update_view (self);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_LIBRARY]);
}

static void
magpie_gallery_page_dispose (GObject *object)
{
  MagpieGalleryPage *self = MAGPIE_GALLERY_PAGE (object);
  GtkWidget *child;

  g_cancellable_cancel (self->cancellable);
  g_cancellable_cancel (self->preview_cancellable);
  /* The grid may hold the filter model a while longer: it must not call back into a page
   * that is gone, nor follow the library. */
  if (self->filter != NULL)
    gtk_custom_filter_set_filter_func (self->filter, NULL, NULL, NULL);
  if (self->filtered != NULL)
    {
      g_signal_handlers_disconnect_by_data (self->filtered, self);
      gtk_filter_list_model_set_model (self->filtered, NULL);
    }
  self->filter = NULL;
  if (self->shown_photo != NULL)
    g_signal_handlers_disconnect_by_data (self->shown_photo, self);
  g_clear_object (&self->shown_photo);
  if (self->library != NULL)
    g_signal_handlers_disconnect_by_data (self->library, self);
  gtk_widget_dispose_template (GTK_WIDGET (self), MAGPIE_TYPE_GALLERY_PAGE);
  while ((child = gtk_widget_get_first_child (GTK_WIDGET (self))) != NULL)
    gtk_widget_unparent (child);
  g_clear_object (&self->filtered);
  g_clear_object (&self->library);
  if (self->settings != NULL)
    g_signal_handlers_disconnect_by_data (self->settings, self);
  g_clear_object (&self->settings);
  g_clear_object (&self->cancellable);
  g_clear_object (&self->preview_cancellable);

  G_OBJECT_CLASS (magpie_gallery_page_parent_class)->dispose (object);
}

static void
magpie_gallery_page_get_property (GObject    *object,
                                  guint       prop_id,
                                  GValue     *value,
                                  GParamSpec *pspec)
{
  MagpieGalleryPage *self = MAGPIE_GALLERY_PAGE (object);

  switch (prop_id)
    {
    case PROP_LIBRARY:
      g_value_set_object (value, self->library);
      break;
    case PROP_N_IMPORTS:
      g_value_set_uint (value, self->n_imports);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
magpie_gallery_page_set_property (GObject      *object,
                                  guint         prop_id,
                                  const GValue *value,
                                  GParamSpec   *pspec)
{
  MagpieGalleryPage *self = MAGPIE_GALLERY_PAGE (object);

  switch (prop_id)
    {
    case PROP_LIBRARY:
      magpie_gallery_page_set_library (self, g_value_get_object (value));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
magpie_gallery_page_class_init (MagpieGalleryPageClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->dispose = magpie_gallery_page_dispose;
  object_class->get_property = magpie_gallery_page_get_property;
  object_class->set_property = magpie_gallery_page_set_property;

  properties[PROP_LIBRARY] =
    g_param_spec_object ("library", NULL, NULL, MAGPIE_TYPE_LIBRARY,
                         G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | G_PARAM_EXPLICIT_NOTIFY);
  properties[PROP_N_IMPORTS] =
    g_param_spec_uint ("n-imports", NULL, NULL, 0, G_MAXUINT, 0,
                       G_PARAM_READABLE | G_PARAM_STATIC_STRINGS | G_PARAM_EXPLICIT_NOTIFY);
  g_object_class_install_properties (object_class, N_PROPS, properties);

  gtk_widget_class_set_template_from_resource (widget_class,
                                               RESOURCE_BASE "/magpie-gallery-page.ui");
  gtk_widget_class_bind_template_child (widget_class, MagpieGalleryPage, search_bar);
  gtk_widget_class_bind_template_child (widget_class, MagpieGalleryPage, search_entry);
  gtk_widget_class_bind_template_child (widget_class, MagpieGalleryPage, threshold_adjustment);
  gtk_widget_class_bind_template_child (widget_class, MagpieGalleryPage, stack);
  gtk_widget_class_bind_template_child (widget_class, MagpieGalleryPage, grid);
  gtk_widget_class_bind_template_child (widget_class, MagpieGalleryPage, photo_title);
  gtk_widget_class_bind_template_child (widget_class, MagpieGalleryPage, preview);
  gtk_widget_class_bind_template_child (widget_class, MagpieGalleryPage, tag_list);
  gtk_widget_class_bind_template_child (widget_class, MagpieGalleryPage, state_row);
  gtk_widget_class_bind_template_child (widget_class, MagpieGalleryPage, dimensions_row);
  gtk_widget_class_bind_template_child (widget_class, MagpieGalleryPage, size_row);
  gtk_widget_class_bind_template_child (widget_class, MagpieGalleryPage, imported_row);
  gtk_widget_class_bind_template_child (widget_class, MagpieGalleryPage, sha_row);
  gtk_widget_class_bind_template_callback (widget_class, search_changed_cb);
  gtk_widget_class_bind_template_callback (widget_class, stop_search_cb);
  gtk_widget_class_bind_template_callback (widget_class, grid_activate_cb);

  gtk_widget_class_install_action (widget_class, "gallery.delete", NULL, delete_action_cb);
  gtk_widget_class_install_action (widget_class, "gallery.back", NULL, back_action_cb);
  gtk_widget_class_install_action (widget_class, "gallery.paste", NULL, paste_action_cb);
  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_Delete, 0, "gallery.delete", NULL);
  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_Escape, 0, "gallery.back", NULL);
  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_Left, GDK_ALT_MASK,
                                       "gallery.back", NULL);
  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_v, GDK_CONTROL_MASK,
                                       "gallery.paste", NULL);

  gtk_widget_class_set_layout_manager_type (widget_class, GTK_TYPE_BIN_LAYOUT);
}

static void
magpie_gallery_page_init (MagpieGalleryPage *self)
{
  GtkListItemFactory *factory;
  GtkNoSelection *selection;

  gtk_widget_init_template (GTK_WIDGET (self));

  self->cancellable = g_cancellable_new ();
  self->filter = gtk_custom_filter_new (filter_photo, self, NULL);
  self->settings = g_settings_new (APPLICATION_ID);
  g_signal_connect_swapped (self->settings, "changed::tag-threshold",
                            G_CALLBACK (threshold_setting_changed_cb), self);
  threshold_setting_changed_cb (self);

  self->filtered = gtk_filter_list_model_new (NULL, GTK_FILTER (self->filter));
  selection = gtk_no_selection_new (G_LIST_MODEL (g_object_ref (self->filtered)));
  gtk_grid_view_set_model (self->grid, GTK_SELECTION_MODEL (selection));
  g_object_unref (selection);
  g_signal_connect_swapped (self->filtered, "items-changed", G_CALLBACK (update_view), self);

  factory = gtk_signal_list_item_factory_new ();
  g_signal_connect (factory, "setup", G_CALLBACK (setup_tile_cb), self);
  g_signal_connect (factory, "bind", G_CALLBACK (bind_tile_cb), self);
  g_signal_connect (factory, "unbind", G_CALLBACK (unbind_tile_cb), self);
  gtk_grid_view_set_factory (self->grid, factory);
  g_object_unref (factory);

  /* Typing in the gallery starts a search by tag. */
  gtk_search_bar_set_key_capture_widget (self->search_bar, GTK_WIDGET (self));

  self->drop_target = gtk_drop_target_new (GDK_TYPE_FILE_LIST, GDK_ACTION_COPY);
  g_signal_connect (self->drop_target, "drop", G_CALLBACK (drop_cb), self);
  gtk_widget_add_controller (GTK_WIDGET (self), GTK_EVENT_CONTROLLER (self->drop_target));

  update_view (self);
}
