/* nn-labels.h - the class names of Magpie's bundled models in the user's language
 *
 * Sidecars keep labels in English ("cat"); the app and the server show them through
 * nn_label_display_name(), which translates the names of the bundled photo model (marked
 * for gettext in nn-labels.c, translated in po/) and passes any other label through.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Returns the translation of @label, or @label itself; never NULL for a non-NULL @label. */
const char *nn_label_display_name (const char *label);

/* A label as people read it: ImageNet synset lines "n02123045 tabby, tabby cat" become
 * "tabby"; other labels keep their first comma-separated name, trimmed. */
char       *nn_label_short_name   (const char *label);

/* A classifier's @n scores as probabilities: copied when they already are a distribution
 * (the model ends in Softmax), else their softmax. @out may be @scores. */
void        nn_scores_to_probabilities (const float *scores,
                                        gsize        n,
                                        float       *out);

G_END_DECLS
