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

G_END_DECLS
