/* nn-labels.c - the class names of Magpie's bundled models in the user's language */
#include "config.h"

#include <glib/gi18n-lib.h>
#include <string.h>

#include "nn-labels.h"

/* data/models/photos.json, CIFAR-10's order; each needs a translation in po/ */
static const char *const photo_labels[] = {
  /* Translators: a photo tag (an aeroplane) */
  N_("airplane"),
  /* Translators: a photo tag (a car) */
  N_("automobile"),
  N_("bird"),
  N_("cat"),
  N_("deer"),
  N_("dog"),
  N_("frog"),
  N_("horse"),
  N_("ship"),
  N_("truck"),
};

const char *
nn_label_display_name (const char *label)
{
  g_return_val_if_fail (label != NULL, NULL);

  /* only our own names go to the catalogue: another model's labels are its own business */
  for (guint i = 0; i < G_N_ELEMENTS (photo_labels); i++)
    if (strcmp (label, photo_labels[i]) == 0)
      return g_dgettext (GETTEXT_PACKAGE, photo_labels[i]);
  return label;
}
