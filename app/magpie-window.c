/* magpie-window.c - the main window: gallery and draw pages, connection indicator */
#define G_LOG_DOMAIN "magpie-window"

#include "config.h"

#include "magpie-window.h"

#include <glib/gi18n.h>

#include "magpie-draw-page.h"
#include "magpie-gallery-page.h"

struct _MagpieWindow {
  AdwApplicationWindow   parent_instance;

  GSettings             *settings;
  MagpieConnection      *connection;
  MagpieLibrary         *library;
  MagpieConnectionState  shown_state;

  /* template children */
  AdwViewStack          *stack;
  AdwToastOverlay       *toast_overlay;
  GtkImage              *connection_image;
  MagpieGalleryPage     *gallery_page;
  MagpieDrawPage        *draw_page;
  GtkWidget             *upload_indicator;
  GtkLabel              *upload_label;
};

G_DEFINE_FINAL_TYPE (MagpieWindow, magpie_window, ADW_TYPE_APPLICATION_WINDOW)

enum {
  PROP_0,
  PROP_CONNECTION,
  PROP_LIBRARY,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

static void
update_connection_indicator (MagpieWindow *self)
{
  MagpieConnectionState state = magpie_connection_get_state (self->connection);
  const char *url = magpie_connection_get_server_url (self->connection);
  GtkWidget *image = GTK_WIDGET (self->connection_image);
  g_autofree char *tooltip = NULL;
  const char *icon_name;
  const char *css_class;

  if (url == NULL)
    url = "";

  switch (state)
    {
    case MAGPIE_CONNECTION_STATE_ONLINE:
      icon_name = "network-server-symbolic";
      css_class = "success";
      /* Translators: the first %s is the server's version, the second its address */
      tooltip = g_strdup_printf (_("Connected to magpied %s at %s"),
                                 magpie_connection_get_server_version (self->connection), url);
      break;

    case MAGPIE_CONNECTION_STATE_UNREACHABLE:
      icon_name = "network-offline-symbolic";
      css_class = "error";
      /* Translators: %s is the server's address, then the reason follows on the next line */
      tooltip = g_strdup_printf (_("Server unreachable at %s\n%s"), url,
                                 magpie_connection_get_error_message (self->connection));
      break;

    case MAGPIE_CONNECTION_STATE_OFFLINE:
      icon_name = "network-offline-symbolic";
      css_class = "dim-label";
      if (magpie_connection_get_work_offline (self->connection))
        tooltip = g_strdup (_("Working offline: photos are tagged on this device and wait to "
                              "be uploaded"));
      else
        tooltip = g_strdup_printf (_("Offline: %s\nPhotos are tagged on this device and wait "
                                     "to be uploaded"),
                                   magpie_connection_get_error_message (self->connection));
      break;

    case MAGPIE_CONNECTION_STATE_UNKNOWN:
    default:
      icon_name = "network-server-symbolic";
      css_class = "dim-label";
      /* Translators: %s is the server's address */
      tooltip = g_strdup_printf (_("Checking the server at %s…"), url);
      break;
    }

  gtk_image_set_from_icon_name (self->connection_image, icon_name);
  gtk_widget_remove_css_class (image, "success");
  gtk_widget_remove_css_class (image, "error");
  gtk_widget_remove_css_class (image, "dim-label");
  gtk_widget_add_css_class (image, css_class);
  gtk_widget_set_tooltip_text (image, tooltip);
  gtk_accessible_update_property (GTK_ACCESSIBLE (image),
                                  GTK_ACCESSIBLE_PROPERTY_LABEL, tooltip,
                                  -1);

  /* Only a server that was there and went away is news; one that never answered is shown
   * by the indicator alone. */
  if (self->shown_state == MAGPIE_CONNECTION_STATE_ONLINE &&
      state == MAGPIE_CONNECTION_STATE_UNREACHABLE)
    adw_toast_overlay_add_toast (self->toast_overlay,
                                 adw_toast_new (_("Lost the connection to the server")));
  self->shown_state = state;
}

/* How many photos are not on the server yet: shown while there are any. */
static void
update_upload_indicator (MagpieWindow *self)
{
  guint n = magpie_library_get_n_pending (self->library);
  g_autofree char *count = g_strdup_printf ("%u", n);
  g_autofree char *text = NULL;

  /* Translators: shown on the header's upload indicator */
  text = g_strdup_printf (g_dngettext (GETTEXT_PACKAGE, "%u photo waiting to upload",
                                       "%u photos waiting to upload", n), n);
  gtk_label_set_label (self->upload_label, count);
  gtk_widget_set_tooltip_text (self->upload_indicator, text);
  gtk_accessible_update_property (GTK_ACCESSIBLE (self->upload_indicator),
                                  GTK_ACCESSIBLE_PROPERTY_LABEL, text, -1);
  gtk_widget_set_visible (self->upload_indicator, n > 0);
}

static void
save_window_state (MagpieWindow *self)
{
  int width = 0;
  int height = 0;

  gtk_window_get_default_size (GTK_WINDOW (self), &width, &height);

  g_settings_delay (self->settings);
  if (width > 0 && height > 0)
    {
      g_settings_set_int (self->settings, "window-width", width);
      g_settings_set_int (self->settings, "window-height", height);
    }
  g_settings_set_boolean (self->settings, "window-maximized",
                          gtk_window_is_maximized (GTK_WINDOW (self)));
  g_settings_apply (self->settings);
}

static gboolean
magpie_window_close_request (GtkWindow *window)
{
  save_window_state (MAGPIE_WINDOW (window));

  return GTK_WINDOW_CLASS (magpie_window_parent_class)->close_request (window);
}

static void
keyring_unavailable_cb (MagpieWindow *self)
{
  adw_toast_overlay_add_toast (self->toast_overlay,
                               adw_toast_new (_("No keyring available: this computer’s Magpie "
                                                "identity is kept only until you quit")));
}

static void
magpie_window_constructed (GObject *object)
{
  MagpieWindow *self = MAGPIE_WINDOW (object);
  GApplication *app = g_application_get_default ();

  G_OBJECT_CLASS (magpie_window_parent_class)->constructed (object);

  g_assert (MAGPIE_IS_CONNECTION (self->connection));
  magpie_gallery_page_set_library (self->gallery_page, self->library);
  if (self->library != NULL)
    {
      g_signal_connect_object (self->library, "notify::n-pending",
                               G_CALLBACK (update_upload_indicator), self, G_CONNECT_SWAPPED);
      update_upload_indicator (self);
    }

  g_signal_connect_object (self->connection, "notify::state",
                           G_CALLBACK (update_connection_indicator), self, G_CONNECT_SWAPPED);
  g_signal_connect_object (self->connection, "notify::server-url",
                           G_CALLBACK (update_connection_indicator), self, G_CONNECT_SWAPPED);
  g_signal_connect_object (self->connection, "notify::server-version",
                           G_CALLBACK (update_connection_indicator), self, G_CONNECT_SWAPPED);
  g_signal_connect_object (self->connection, "notify::work-offline",
                           G_CALLBACK (update_connection_indicator), self, G_CONNECT_SWAPPED);
  update_connection_indicator (self);

  if (MAGPIE_IS_APPLICATION (app) && magpie_application_get_identity (MAGPIE_APPLICATION (app)))
    g_signal_connect_object (magpie_application_get_identity (MAGPIE_APPLICATION (app)),
                             "keyring-unavailable", G_CALLBACK (keyring_unavailable_cb), self,
                             G_CONNECT_SWAPPED);
}

static void
magpie_window_dispose (GObject *object)
{
  MagpieWindow *self = MAGPIE_WINDOW (object);

  gtk_widget_dispose_template (GTK_WIDGET (self), MAGPIE_TYPE_WINDOW);
  g_clear_object (&self->connection);
  g_clear_object (&self->library);
  g_clear_object (&self->settings);

  G_OBJECT_CLASS (magpie_window_parent_class)->dispose (object);
}

static void
magpie_window_get_property (GObject    *object,
                            guint       prop_id,
                            GValue     *value,
                            GParamSpec *pspec)
{
  MagpieWindow *self = MAGPIE_WINDOW (object);

  switch (prop_id)
    {
    case PROP_CONNECTION:
      g_value_set_object (value, self->connection);
      break;

    case PROP_LIBRARY:
      g_value_set_object (value, self->library);
      break;

    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
magpie_window_set_property (GObject      *object,
                            guint         prop_id,
                            const GValue *value,
                            GParamSpec   *pspec)
{
  MagpieWindow *self = MAGPIE_WINDOW (object);

  switch (prop_id)
    {
    case PROP_CONNECTION:
      g_set_object (&self->connection, g_value_get_object (value));
      break;

    case PROP_LIBRARY:
      g_set_object (&self->library, g_value_get_object (value));
      break;

    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
show_gallery (MagpieWindow *self)
{
  adw_view_stack_set_visible_child_name (self->stack, "gallery");
}

static void
add_photos_action_cb (GtkWidget  *widget,
                      const char *action_name,
                      GVariant   *parameter)
{
  MagpieWindow *self = MAGPIE_WINDOW (widget);

  show_gallery (self);
  magpie_gallery_page_add_photos (self->gallery_page);
}

static void
search_action_cb (GtkWidget  *widget,
                  const char *action_name,
                  GVariant   *parameter)
{
  MagpieWindow *self = MAGPIE_WINDOW (widget);

  show_gallery (self);
  magpie_gallery_page_toggle_search (self->gallery_page);
}

static void
paste_action_cb (GtkWidget  *widget,
                 const char *action_name,
                 GVariant   *parameter)
{
  MagpieWindow *self = MAGPIE_WINDOW (widget);

  show_gallery (self);
  magpie_gallery_page_paste (self->gallery_page);
}

/* Imports @files into the gallery and shows it: `magpie FILE…` and files opened with Magpie. */
void
magpie_window_import (MagpieWindow  *self,
                      GFile        **files,
                      guint          n_files)
{
  g_return_if_fail (MAGPIE_IS_WINDOW (self));

  show_gallery (self);
  magpie_gallery_page_import (self->gallery_page, files, n_files);
}

MagpieDrawPage *
magpie_window_get_draw_page (MagpieWindow *self)
{
  g_return_val_if_fail (MAGPIE_IS_WINDOW (self), NULL);
  return self->draw_page;
}

MagpieGalleryPage *
magpie_window_get_gallery_page (MagpieWindow *self)
{
  g_return_val_if_fail (MAGPIE_IS_WINDOW (self), NULL);
  return self->gallery_page;
}

static void
magpie_window_class_init (MagpieWindowClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);
  GtkWindowClass *window_class = GTK_WINDOW_CLASS (klass);

  object_class->constructed = magpie_window_constructed;
  object_class->dispose = magpie_window_dispose;
  object_class->get_property = magpie_window_get_property;
  object_class->set_property = magpie_window_set_property;

  window_class->close_request = magpie_window_close_request;

  properties[PROP_CONNECTION] =
    g_param_spec_object ("connection", NULL, NULL,
                         MAGPIE_TYPE_CONNECTION,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);

  properties[PROP_LIBRARY] =
    g_param_spec_object ("library", NULL, NULL,
                         MAGPIE_TYPE_LIBRARY,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);

  g_object_class_install_properties (object_class, N_PROPS, properties);

  gtk_widget_class_set_template_from_resource (widget_class, RESOURCE_BASE "/magpie-window.ui");
  gtk_widget_class_bind_template_child (widget_class, MagpieWindow, stack);
  gtk_widget_class_bind_template_child (widget_class, MagpieWindow, toast_overlay);
  gtk_widget_class_bind_template_child (widget_class, MagpieWindow, connection_image);
  gtk_widget_class_bind_template_child (widget_class, MagpieWindow, gallery_page);
  gtk_widget_class_bind_template_child (widget_class, MagpieWindow, draw_page);
  gtk_widget_class_bind_template_child (widget_class, MagpieWindow, upload_indicator);
  gtk_widget_class_bind_template_child (widget_class, MagpieWindow, upload_label);

  gtk_widget_class_install_action (widget_class, "window.add-photos", NULL, add_photos_action_cb);
  gtk_widget_class_install_action (widget_class, "window.search", NULL, search_action_cb);
  gtk_widget_class_install_action (widget_class, "window.paste", NULL, paste_action_cb);
}

static void
magpie_window_init (MagpieWindow *self)
{
  g_type_ensure (MAGPIE_TYPE_GALLERY_PAGE);
  g_type_ensure (MAGPIE_TYPE_DRAW_PAGE);
  gtk_widget_init_template (GTK_WIDGET (self));

  self->settings = g_settings_new (APPLICATION_ID);
  gtk_window_set_default_size (GTK_WINDOW (self),
                               g_settings_get_int (self->settings, "window-width"),
                               g_settings_get_int (self->settings, "window-height"));
  if (g_settings_get_boolean (self->settings, "window-maximized"))
    gtk_window_maximize (GTK_WINDOW (self));
}

MagpieWindow *
magpie_window_new (MagpieApplication *application)
{
  MagpieWindow *self;

  g_return_val_if_fail (MAGPIE_IS_APPLICATION (application), NULL);

  self = g_object_new (MAGPIE_TYPE_WINDOW,
                       "application", application,
                       "connection", magpie_application_get_connection (application),
                       "library", magpie_application_get_library (application),
                       NULL);
  magpie_draw_page_set_digits (self->draw_page, magpie_application_get_digits (application));
  return self;
}
