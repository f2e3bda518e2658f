/* nn-labels.c - the class names of Magpie's bundled models in the user's language */
#include "config.h"

#include <glib/gi18n-lib.h>
#include <math.h>
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

char *
nn_label_short_name (const char *label)
{
  const char *start = label;
  const char *comma;

  /* A WordNet id: 'n' and eight digits, then a space. */
  if (label[0] == 'n' && strlen (label) > 10 && label[9] == ' ')
    {
      gboolean wnid = TRUE;

      for (int i = 1; i < 9; i++)
        wnid = wnid && g_ascii_isdigit (label[i]);
      if (wnid)
        start = label + 10;
    }
  comma = strchr (start, ',');
  return g_strstrip (comma ? g_strndup (start, comma - start) : g_strdup (start));
}

void
nn_scores_to_probabilities (const float *scores,
                            gsize        n,
                            float       *out)
{
  double sum = 0, mx = -INFINITY;
  gboolean is_dist = TRUE;

  for (gsize i = 0; i < n; i++)
    {
      is_dist = is_dist && scores[i] >= 0.0f && scores[i] <= 1.0f;
      sum += scores[i];
      mx = fmax (mx, scores[i]);
    }
  if (is_dist && fabs (sum - 1.0) < 1e-3)
    {
      memmove (out, scores, n * sizeof *out);
      return;
    }
  sum = 0;
  for (gsize i = 0; i < n; i++)
    sum += out[i] = (float) exp (scores[i] - mx);
  for (gsize i = 0; i < n; i++)
    out[i] = (float) (out[i] / sum);
}
