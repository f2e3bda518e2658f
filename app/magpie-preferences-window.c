/* magpie-preferences-window.c - Preferences: the server address, the tag threshold
 *
 * The row shows the server-url key as it is; what people type is saved only when they apply
 * it (Enter or the apply button) and only if it is an http:// or https:// address, so a
 * half-typed address never reaches the connection.
 */
#define G_LOG_DOMAIN "magpie-preferences-window"

#include "config.h"

#include "magpie-preferences-window.h"

#include <glib/gi18n.h>

#include "magpie-connection.h"

struct _MagpiePreferencesWindow {
  AdwPreferencesWindow  parent_instance;

  GSettings            *settings;

  /* template children */
  AdwEntryRow          *server_url_row;
  GtkAdjustment        *threshold_adjustment;
};

G_DEFINE_FINAL_TYPE (MagpiePreferencesWindow, magpie_preferences_window,
                     ADW_TYPE_PREFERENCES_WINDOW)

enum {
  PROP_0,
  PROP_SETTINGS,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

static void
server_url_row_apply_cb (MagpiePreferencesWindow *self)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *url = NULL;

  url = g_strstrip (g_strdup (gtk_editable_get_text (GTK_EDITABLE (self->server_url_row))));
  if (!magpie_connection_check_url (url, &error))
    {
      gtk_widget_add_css_class (GTK_WIDGET (self->server_url_row), "error");
      adw_preferences_window_add_toast (ADW_PREFERENCES_WINDOW (self),
                                        adw_toast_new (error->message));
      return;
    }

  g_settings_set_string (self->settings, "server-url", url);
}

static void
server_url_row_changed_cb (MagpiePreferencesWindow *self)
{
  gtk_widget_remove_css_class (GTK_WIDGET (self->server_url_row), "error");
}

/* The key is a fraction (0..1), the row says percent. */
static gboolean
fraction_to_percent (GValue   *value,
                     GVariant *variant,
                     gpointer  user_data)
{
  g_value_set_double (value, g_variant_get_double (variant) * 100.0);
  return TRUE;
}

static GVariant *
percent_to_fraction (const GValue       *value,
                     const GVariantType *expected_type,
                     gpointer            user_data)
{
  return g_variant_new_double (g_value_get_double (value) / 100.0);
}

static void
magpie_preferences_window_constructed (GObject *object)
{
  MagpiePreferencesWindow *self = MAGPIE_PREFERENCES_WINDOW (object);

  G_OBJECT_CLASS (magpie_preferences_window_parent_class)->constructed (object);

  g_assert (G_IS_SETTINGS (self->settings));
  /* Only from the settings to the row: the row writes back in the apply handler, after
   * checking the address. */
  g_settings_bind (self->settings, "server-url", self->server_url_row, "text",
                   G_SETTINGS_BIND_GET);
  g_settings_bind_with_mapping (self->settings, "tag-threshold", self->threshold_adjustment,
                                "value", G_SETTINGS_BIND_DEFAULT, fraction_to_percent,
                                percent_to_fraction, NULL, NULL);
}

static void
magpie_preferences_window_dispose (GObject *object)
{
  MagpiePreferencesWindow *self = MAGPIE_PREFERENCES_WINDOW (object);

  if (self->server_url_row != NULL)
    g_settings_unbind (self->server_url_row, "text");
  if (self->threshold_adjustment != NULL)
    g_settings_unbind (self->threshold_adjustment, "value");
  gtk_widget_dispose_template (GTK_WIDGET (self), MAGPIE_TYPE_PREFERENCES_WINDOW);
  g_clear_object (&self->settings);

  G_OBJECT_CLASS (magpie_preferences_window_parent_class)->dispose (object);
}

static void
magpie_preferences_window_get_property (GObject    *object,
                                        guint       prop_id,
                                        GValue     *value,
                                        GParamSpec *pspec)
{
  MagpiePreferencesWindow *self = MAGPIE_PREFERENCES_WINDOW (object);

  switch (prop_id)
    {
    case PROP_SETTINGS:
      g_value_set_object (value, self->settings);
      break;

    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
magpie_preferences_window_set_property (GObject      *object,
                                        guint         prop_id,
                                        const GValue *value,
                                        GParamSpec   *pspec)
{
  MagpiePreferencesWindow *self = MAGPIE_PREFERENCES_WINDOW (object);

  switch (prop_id)
    {
    case PROP_SETTINGS:
      g_set_object (&self->settings, g_value_get_object (value));
      break;

    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
magpie_preferences_window_class_init (MagpiePreferencesWindowClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->constructed = magpie_preferences_window_constructed;
  object_class->dispose = magpie_preferences_window_dispose;
  object_class->get_property = magpie_preferences_window_get_property;
  object_class->set_property = magpie_preferences_window_set_property;

  properties[PROP_SETTINGS] =
    g_param_spec_object ("settings", NULL, NULL,
                         G_TYPE_SETTINGS,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);

  g_object_class_install_properties (object_class, N_PROPS, properties);

  gtk_widget_class_set_template_from_resource (widget_class,
                                               RESOURCE_BASE "/magpie-preferences-window.ui");
  gtk_widget_class_bind_template_child (widget_class, MagpiePreferencesWindow, server_url_row);
  gtk_widget_class_bind_template_child (widget_class, MagpiePreferencesWindow,
                                        threshold_adjustment);
  gtk_widget_class_bind_template_callback (widget_class, server_url_row_apply_cb);
  gtk_widget_class_bind_template_callback (widget_class, server_url_row_changed_cb);
}

static void
magpie_preferences_window_init (MagpiePreferencesWindow *self)
{
  gtk_widget_init_template (GTK_WIDGET (self));
}

/* A preferences window that shows and edits @settings (the io.github.magpiegallery.Magpie
 * schema). */
MagpiePreferencesWindow *
magpie_preferences_window_new (GSettings *settings)
{
  g_return_val_if_fail (G_IS_SETTINGS (settings), NULL);

  return g_object_new (MAGPIE_TYPE_PREFERENCES_WINDOW,
                       "settings", settings,
                       NULL);
}
