/* load-chart.h - magpie-load's charts, drawn with cairo on its SVG and image surfaces:
 * requests/s, latency percentiles, and queue depth with workers over time, like the panels of
 * a CloudWatch dashboard. */
#pragma once

#include <glib.h>

#include "load-report.h"

G_BEGIN_DECLS

/* The charts load_chart_write_all() makes, without extension (each as .svg and .png). */
extern const char *const load_chart_names[];

/* Writes every chart into @dir as NAME.svg and NAME.png. Returns FALSE and sets @error when a
 * file cannot be written. */
gboolean load_chart_write_all (const LoadReport *report,
                               const char       *dir,
                               GError          **error);

G_END_DECLS
