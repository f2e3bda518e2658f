/* magpie-preferences-window.c - Preferences: the server address, the account, the tag threshold
 *
 * The row shows the server-url key as it is; what people type is saved only when they apply
 * it (Enter or the apply button) and only if it is an http:// or https:// address, so a
 * half-typed address never reaches the connection.
 *
 * Account: signed out, the group offers Username and Password with Sign In and Create Account;
 * signed in, it names the account and offers Sign Out. The password field is cleared once the
 * server has answered; a refusal is said in a toast in the server's terms ("Wrong username or
 * password").
 */
#define G_LOG_DOMAIN "magpie-preferences-window"

#include "config.h"

#include "magpie-preferences-window.h"

#include <glib/gi18n.h>

#include "magpie-connection.h"
#include "magpie-identity.h"

struct _MagpiePreferencesWindow {
  AdwPreferencesWindow  parent_instance;

  GSettings            *settings;
  MagpieIdentity       *identity;
  GCancellable         *cancellable;
  gboolean              busy;

  /* template children */
  AdwEntryRow          *server_url_row;
  GtkAdjustment        *threshold_adjustment;
  AdwPreferencesGroup  *account_group;
  AdwActionRow         *account_row;
  GtkWidget            *sign_out_button;
  AdwEntryRow          *username_row;
  AdwEntryRow          *password_row;
  GtkWidget            *login_buttons;
  GtkWidget            *sign_in_button;
  GtkWidget            *create_account_button;
};

G_DEFINE_FINAL_TYPE (MagpiePreferencesWindow, magpie_preferences_window,
                     ADW_TYPE_PREFERENCES_WINDOW)

enum {
  PROP_0,
  PROP_SETTINGS,
  PROP_IDENTITY,
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

/* Account ------------------------------------------------------------------------------- */

static void
update_account (MagpiePreferencesWindow *self)
{
  const char *username = self->identity != NULL ? magpie_identity_get_username (self->identity)
                                                : NULL;
  const char *text_user = gtk_editable_get_text (GTK_EDITABLE (self->username_row));
  const char *text_password = gtk_editable_get_text (GTK_EDITABLE (self->password_row));
  gboolean can_send = !self->busy && *text_user != '\0' && *text_password != '\0';

  gtk_widget_set_visible (GTK_WIDGET (self->account_group), self->identity != NULL);
  if (username != NULL)
    {
      g_autofree char *subtitle = NULL;

      /* Translators: %s is the server's address */
      subtitle = g_strdup_printf (_("Signed in on %s"),
                                  magpie_identity_get_server_url (self->identity));
      adw_preferences_row_set_title (ADW_PREFERENCES_ROW (self->account_row), username);
      adw_action_row_set_subtitle (self->account_row, subtitle);
    }
  else
    {
      adw_preferences_row_set_title (ADW_PREFERENCES_ROW (self->account_row), _("Guest"));
      adw_action_row_set_subtitle (self->account_row,
                                   _("Sign in to keep your photos under your own account"));
    }
  gtk_widget_set_visible (self->sign_out_button, username != NULL);
  gtk_widget_set_sensitive (self->sign_out_button, !self->busy);
  gtk_widget_set_visible (GTK_WIDGET (self->username_row), username == NULL);
  gtk_widget_set_visible (GTK_WIDGET (self->password_row), username == NULL);
  gtk_widget_set_visible (self->login_buttons, username == NULL);
  gtk_widget_set_sensitive (self->sign_in_button, can_send);
  gtk_widget_set_sensitive (self->create_account_button, can_send);
}

static void
login_changed_cb (MagpiePreferencesWindow *self)
{
  update_account (self);
}

static void
toast (MagpiePreferencesWindow *self,
       const char              *text)
{
  adw_preferences_window_add_toast (ADW_PREFERENCES_WINDOW (self), adw_toast_new (text));
}

static void
signed_in_cb (GObject      *object,
              GAsyncResult *result,
              gpointer      user_data)
{
  g_autoptr(MagpiePreferencesWindow) self = user_data;
  g_autoptr(GError) error = NULL;

  if (!magpie_identity_sign_in_finish (MAGPIE_IDENTITY (object), result, &error))
    {
      if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        return;
      g_message ("Cannot sign in: %s", error->message);
      self->busy = FALSE;
      toast (self, error->message);
      update_account (self);
      return;
    }
  self->busy = FALSE;
  gtk_editable_set_text (GTK_EDITABLE (self->password_row), "");
  /* Translators: %s is the account's username */
  {
    g_autofree char *text = g_strdup_printf (_("Signed in as %s"),
                                             magpie_identity_get_username (self->identity));

    toast (self, text);
  }
  update_account (self);
}

static void
sign_in (MagpiePreferencesWindow *self,
         gboolean                 create_account)
{
  g_autofree char *url = g_settings_get_string (self->settings, "server-url");
  g_autofree char *username = NULL;
  g_autoptr(GError) error = NULL;

  if (self->busy || self->identity == NULL)
    return;
  username = g_strstrip (g_strdup (gtk_editable_get_text (GTK_EDITABLE (self->username_row))));
  if (*username == '\0' || *gtk_editable_get_text (GTK_EDITABLE (self->password_row)) == '\0')
    return;
  if (!magpie_connection_check_url (url, &error))
    {
      toast (self, error->message);
      return;
    }
  self->busy = TRUE;
  update_account (self);
  magpie_identity_sign_in_async (self->identity, url, username,
                                 gtk_editable_get_text (GTK_EDITABLE (self->password_row)),
                                 create_account, self->cancellable, signed_in_cb,
                                 g_object_ref (self));
}

static void
sign_in_clicked_cb (MagpiePreferencesWindow *self)
{
  sign_in (self, FALSE);
}

static void
create_account_clicked_cb (MagpiePreferencesWindow *self)
{
  sign_in (self, TRUE);
}

static void
signed_out_cb (GObject      *object,
               GAsyncResult *result,
               gpointer      user_data)
{
  g_autoptr(MagpiePreferencesWindow) self = user_data;
  g_autoptr(GError) error = NULL;

  if (!magpie_identity_sign_out_finish (MAGPIE_IDENTITY (object), result, &error))
    g_message ("Cannot sign out cleanly: %s", error->message);
  self->busy = FALSE;
  update_account (self);
}

static void
sign_out_clicked_cb (MagpiePreferencesWindow *self)
{
  if (self->busy || self->identity == NULL)
    return;
  self->busy = TRUE;
  update_account (self);
  magpie_identity_sign_out_async (self->identity, NULL, signed_out_cb, g_object_ref (self));
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
  if (self->identity != NULL)
    g_signal_connect_object (self->identity, "notify::username", G_CALLBACK (update_account),
                             self, G_CONNECT_SWAPPED);
  update_account (self);
}

static void
magpie_preferences_window_dispose (GObject *object)
{
  MagpiePreferencesWindow *self = MAGPIE_PREFERENCES_WINDOW (object);

  if (self->server_url_row != NULL)
    g_settings_unbind (self->server_url_row, "text");
  if (self->threshold_adjustment != NULL)
    g_settings_unbind (self->threshold_adjustment, "value");
  g_cancellable_cancel (self->cancellable);
  gtk_widget_dispose_template (GTK_WIDGET (self), MAGPIE_TYPE_PREFERENCES_WINDOW);
  g_clear_object (&self->settings);
  g_clear_object (&self->identity);
  g_clear_object (&self->cancellable);

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

    case PROP_IDENTITY:
      g_value_set_object (value, self->identity);
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

    case PROP_IDENTITY:
      g_set_object (&self->identity, g_value_get_object (value));
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
  /* Whom to sign in and out; NULL hides the Account group. */
  properties[PROP_IDENTITY] =
    g_param_spec_object ("identity", NULL, NULL,
                         MAGPIE_TYPE_IDENTITY,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);

  g_object_class_install_properties (object_class, N_PROPS, properties);

  gtk_widget_class_set_template_from_resource (widget_class,
                                               RESOURCE_BASE "/magpie-preferences-window.ui");
  gtk_widget_class_bind_template_child (widget_class, MagpiePreferencesWindow, server_url_row);
  gtk_widget_class_bind_template_child (widget_class, MagpiePreferencesWindow,
                                        threshold_adjustment);
  gtk_widget_class_bind_template_child (widget_class, MagpiePreferencesWindow, account_group);
  gtk_widget_class_bind_template_child (widget_class, MagpiePreferencesWindow, account_row);
  gtk_widget_class_bind_template_child (widget_class, MagpiePreferencesWindow, sign_out_button);
  gtk_widget_class_bind_template_child (widget_class, MagpiePreferencesWindow, username_row);
  gtk_widget_class_bind_template_child (widget_class, MagpiePreferencesWindow, password_row);
  gtk_widget_class_bind_template_child (widget_class, MagpiePreferencesWindow, login_buttons);
  gtk_widget_class_bind_template_child (widget_class, MagpiePreferencesWindow, sign_in_button);
  gtk_widget_class_bind_template_child (widget_class, MagpiePreferencesWindow,
                                        create_account_button);
  gtk_widget_class_bind_template_callback (widget_class, server_url_row_apply_cb);
  gtk_widget_class_bind_template_callback (widget_class, login_changed_cb);
  gtk_widget_class_bind_template_callback (widget_class, sign_in_clicked_cb);
  gtk_widget_class_bind_template_callback (widget_class, create_account_clicked_cb);
  gtk_widget_class_bind_template_callback (widget_class, sign_out_clicked_cb);
  gtk_widget_class_bind_template_callback (widget_class, server_url_row_changed_cb);
}

static void
magpie_preferences_window_init (MagpiePreferencesWindow *self)
{
  gtk_widget_init_template (GTK_WIDGET (self));
  self->cancellable = g_cancellable_new ();
}

/* A preferences window that shows and edits @settings (the io.github.magpiegallery.Magpie
 * schema) and signs @identity in and out (NULL: no Account group). */
MagpiePreferencesWindow *
magpie_preferences_window_new (GSettings      *settings,
                               MagpieIdentity *identity)
{
  g_return_val_if_fail (G_IS_SETTINGS (settings), NULL);
  g_return_val_if_fail (identity == NULL || MAGPIE_IS_IDENTITY (identity), NULL);

  return g_object_new (MAGPIE_TYPE_PREFERENCES_WINDOW,
                       "settings", settings,
                       "identity", identity,
                       NULL);
}

/* For tests: the account widgets, as people reach them. */
void
magpie_preferences_window_get_account_widgets (MagpiePreferencesWindow  *self,
                                               GtkEditable             **username,
                                               GtkEditable             **password,
                                               GtkButton               **sign_in,
                                               GtkButton               **create_account,
                                               GtkButton               **sign_out)
{
  g_return_if_fail (MAGPIE_IS_PREFERENCES_WINDOW (self));
  *username = GTK_EDITABLE (self->username_row);
  *password = GTK_EDITABLE (self->password_row);
  *sign_in = GTK_BUTTON (self->sign_in_button);
  *create_account = GTK_BUTTON (self->create_account_button);
  *sign_out = GTK_BUTTON (self->sign_out_button);
}
