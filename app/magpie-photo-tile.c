/* magpie-photo-tile.c - one photo in the gallery grid: thumbnail, state, tag chips
 *
 * Tiles are recycled by the grid: set_photo() moves a tile from one photo to the next and
 * follows the new photo's changes (state, upload progress, tags, thumbnail) only.
 */
#define G_LOG_DOMAIN "magpie-photo-tile"

#include "config.h"

#include "magpie-photo-tile.h"

#include <glib/gi18n.h>

#include "nn-labels.h"

struct _MagpiePhotoTile {
  GtkWidget    parent_instance;

  MagpiePhoto *photo;
  double       threshold;

  /* template children */
  GtkWidget   *overlay;
  GtkPicture  *picture;
  GtkBox      *chips;
  GtkImage    *state_icon;
  GtkLabel    *state_label;
};

G_DEFINE_FINAL_TYPE (MagpiePhotoTile, magpie_photo_tile, GTK_TYPE_WIDGET)

enum {
  PROP_0,
  PROP_PHOTO,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

/* "cat, 87 %, on this device": a tag in words, in the user's language (the bundled model's
 * labels are translated, nn-labels.c), for tooltips and screen readers. */
char *
magpie_tag_describe (const MagpieTag *tag)
{
  int percent = (int) (tag->confidence * 100.0 + 0.5);

  if (tag->source == MAGPIE_TAG_SOURCE_LOCAL)
    /* Translators: a tag, its confidence in percent and where it came from */
    return g_strdup_printf (_("%s, %d %%, on this device"), nn_label_display_name (tag->label),
                            percent);
  /* Translators: a tag and its confidence in percent */
  return g_strdup_printf (_("%s, %d %%"), nn_label_display_name (tag->label), percent);
}

/* A chip for @tag: its label and confidence; a tag from the local model carries a
 * computer icon and says "on this device" in its tooltip and accessible label. */
GtkWidget *
magpie_tag_chip_new (const MagpieTag *tag)
{
  GtkWidget *chip = gtk_box_new (GTK_ORIENTATION_HORIZONTAL, 3);
  g_autofree char *text = NULL;
  g_autofree char *description = magpie_tag_describe (tag);
  GtkWidget *label;

  gtk_widget_add_css_class (chip, "tag-chip");
  if (tag->source == MAGPIE_TAG_SOURCE_LOCAL)
    {
      GtkWidget *icon = gtk_image_new_from_icon_name ("computer-symbolic");

      gtk_image_set_pixel_size (GTK_IMAGE (icon), 10);
      gtk_box_append (GTK_BOX (chip), icon);
      gtk_widget_add_css_class (chip, "local");
    }
  /* Translators: a tag chip: the tag and its confidence in percent */
  text = g_strdup_printf (_("%s %d %%"), nn_label_display_name (tag->label),
                          (int) (tag->confidence * 100.0 + 0.5));
  label = gtk_label_new (text);
  gtk_label_set_ellipsize (GTK_LABEL (label), PANGO_ELLIPSIZE_END);
  gtk_label_set_max_width_chars (GTK_LABEL (label), 12);
  gtk_box_append (GTK_BOX (chip), label);
  gtk_widget_set_tooltip_text (chip, description);
  gtk_accessible_update_property (GTK_ACCESSIBLE (chip), GTK_ACCESSIBLE_PROPERTY_LABEL,
                                  description, -1);
  return chip;
}

static void
update_thumbnail (MagpiePhotoTile *self)
{
  gtk_picture_set_paintable (self->picture,
                             self->photo != NULL
                             ? GDK_PAINTABLE (magpie_photo_get_thumbnail (self->photo)) : NULL);
}

static void
update_state (MagpiePhotoTile *self)
{
  g_autofree char *text = NULL;
  const char *icon = NULL;
  GtkWidget *widget = GTK_WIDGET (self);

  if (self->photo == NULL)
    return;

  text = magpie_photo_describe_state (self->photo);
  switch (magpie_photo_get_state (self->photo))
    {
    case MAGPIE_PHOTO_STATE_WAITING:
      icon = "document-open-recent-symbolic";
      break;
    case MAGPIE_PHOTO_STATE_UPLOADING:
      icon = "send-to-symbolic";
      break;
    case MAGPIE_PHOTO_STATE_TAGGING:
      icon = "content-loading-symbolic";
      break;
    case MAGPIE_PHOTO_STATE_TAGGED:
      icon = "object-select-symbolic";
      break;
    case MAGPIE_PHOTO_STATE_FAILED:
    default:
      icon = "dialog-warning-symbolic";
      break;
    }
  gtk_image_set_from_icon_name (self->state_icon, icon);
  gtk_label_set_label (self->state_label, text);
  gtk_widget_set_tooltip_text (GTK_WIDGET (self->state_label), text);
  if (magpie_photo_get_state (self->photo) == MAGPIE_PHOTO_STATE_FAILED)
    gtk_widget_add_css_class (widget, "failed");
  else
    gtk_widget_remove_css_class (widget, "failed");
}

static void
update_accessible_label (MagpiePhotoTile *self)
{
  g_autoptr(GString) text = NULL;
  g_autofree char *state = NULL;
  GPtrArray *tags;

  if (self->photo == NULL)
    return;
  text = g_string_new (magpie_photo_get_name (self->photo));
  state = magpie_photo_describe_state (self->photo);
  g_string_append_printf (text, ", %s", state);
  tags = magpie_photo_get_tags (self->photo);
  for (guint i = 0; i < tags->len; i++)
    if (((MagpieTag *) tags->pdata[i])->confidence >= self->threshold)
      {
        g_autofree char *tag = magpie_tag_describe (tags->pdata[i]);

        g_string_append_printf (text, "; %s", tag);
      }
  gtk_accessible_update_property (GTK_ACCESSIBLE (self), GTK_ACCESSIBLE_PROPERTY_LABEL,
                                  text->str, -1);
}

static void
update_chips (MagpiePhotoTile *self)
{
  GtkWidget *child;
  GPtrArray *tags;
  guint shown = 0;

  while ((child = gtk_widget_get_first_child (GTK_WIDGET (self->chips))) != NULL)
    gtk_box_remove (self->chips, child);
  if (self->photo == NULL)
    return;

  tags = magpie_photo_get_tags (self->photo);
  for (guint i = 0; i < tags->len && shown < MAGPIE_PHOTO_TILE_MAX_CHIPS; i++)
    {
      const MagpieTag *tag = tags->pdata[i];

      if (tag->confidence < self->threshold)
        continue;
      gtk_box_append (self->chips, magpie_tag_chip_new (tag));
      shown++;
    }
  gtk_widget_set_visible (GTK_WIDGET (self->chips), shown > 0);
  update_accessible_label (self);
}

static void
photo_state_cb (MagpiePhotoTile *self)
{
  update_state (self);
  update_accessible_label (self);
}

static void
magpie_photo_tile_dispose (GObject *object)
{
  MagpiePhotoTile *self = MAGPIE_PHOTO_TILE (object);
  GtkWidget *child;

  magpie_photo_tile_set_photo (self, NULL);
  gtk_widget_dispose_template (GTK_WIDGET (self), MAGPIE_TYPE_PHOTO_TILE);
  while ((child = gtk_widget_get_first_child (GTK_WIDGET (self))) != NULL)
    gtk_widget_unparent (child);

  G_OBJECT_CLASS (magpie_photo_tile_parent_class)->dispose (object);
}

static void
magpie_photo_tile_get_property (GObject    *object,
                                guint       prop_id,
                                GValue     *value,
                                GParamSpec *pspec)
{
  MagpiePhotoTile *self = MAGPIE_PHOTO_TILE (object);

  switch (prop_id)
    {
    case PROP_PHOTO:
      g_value_set_object (value, self->photo);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
magpie_photo_tile_set_property (GObject      *object,
                                guint         prop_id,
                                const GValue *value,
                                GParamSpec   *pspec)
{
  MagpiePhotoTile *self = MAGPIE_PHOTO_TILE (object);

  switch (prop_id)
    {
    case PROP_PHOTO:
      magpie_photo_tile_set_photo (self, g_value_get_object (value));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
magpie_photo_tile_class_init (MagpiePhotoTileClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->dispose = magpie_photo_tile_dispose;
  object_class->get_property = magpie_photo_tile_get_property;
  object_class->set_property = magpie_photo_tile_set_property;

  properties[PROP_PHOTO] =
    g_param_spec_object ("photo", NULL, NULL, MAGPIE_TYPE_PHOTO,
                         G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | G_PARAM_EXPLICIT_NOTIFY);
  g_object_class_install_properties (object_class, N_PROPS, properties);

  gtk_widget_class_set_template_from_resource (widget_class,
                                               RESOURCE_BASE "/magpie-photo-tile.ui");
  gtk_widget_class_bind_template_child (widget_class, MagpiePhotoTile, overlay);
  gtk_widget_class_bind_template_child (widget_class, MagpiePhotoTile, picture);
  gtk_widget_class_bind_template_child (widget_class, MagpiePhotoTile, chips);
  gtk_widget_class_bind_template_child (widget_class, MagpiePhotoTile, state_icon);
  gtk_widget_class_bind_template_child (widget_class, MagpiePhotoTile, state_label);
  gtk_widget_class_set_layout_manager_type (widget_class, GTK_TYPE_BIN_LAYOUT);
  gtk_widget_class_set_css_name (widget_class, "magpie-photo-tile");
  gtk_widget_class_set_accessible_role (widget_class, GTK_ACCESSIBLE_ROLE_IMG);
}

static void
magpie_photo_tile_init (MagpiePhotoTile *self)
{
  gtk_widget_init_template (GTK_WIDGET (self));
}

GtkWidget *
magpie_photo_tile_new (void)
{
  return g_object_new (MAGPIE_TYPE_PHOTO_TILE, NULL);
}

MagpiePhoto *
magpie_photo_tile_get_photo (MagpiePhotoTile *self)
{
  g_return_val_if_fail (MAGPIE_IS_PHOTO_TILE (self), NULL);
  return self->photo;
}

void
magpie_photo_tile_set_photo (MagpiePhotoTile *self,
                             MagpiePhoto     *photo)
{
  g_return_if_fail (MAGPIE_IS_PHOTO_TILE (self));
  g_return_if_fail (photo == NULL || MAGPIE_IS_PHOTO (photo));

  if (self->photo == photo)
    return;
  if (self->photo != NULL)
    g_signal_handlers_disconnect_by_data (self->photo, self);
  g_set_object (&self->photo, photo);
  if (photo != NULL)
    {
      g_signal_connect_swapped (photo, "notify::thumbnail", G_CALLBACK (update_thumbnail), self);
      g_signal_connect_swapped (photo, "notify::state", G_CALLBACK (photo_state_cb), self);
      g_signal_connect_swapped (photo, "notify::progress", G_CALLBACK (photo_state_cb), self);
      g_signal_connect_swapped (photo, "notify::failure-reason", G_CALLBACK (photo_state_cb),
                                self);
      g_signal_connect_swapped (photo, "notify::tags", G_CALLBACK (update_chips), self);
    }
  update_thumbnail (self);
  update_state (self);
  update_chips (self);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_PHOTO]);
}

double
magpie_photo_tile_get_threshold (MagpiePhotoTile *self)
{
  g_return_val_if_fail (MAGPIE_IS_PHOTO_TILE (self), 0.0);
  return self->threshold;
}

/* Tags below @threshold are not shown on the tile. */
void
magpie_photo_tile_set_threshold (MagpiePhotoTile *self,
                                 double           threshold)
{
  g_return_if_fail (MAGPIE_IS_PHOTO_TILE (self));

  if (self->threshold == threshold)
    return;
  self->threshold = threshold;
  update_chips (self);
}
