/* magpie-range-stream.h - a window of another input stream, optionally paced (for tests) */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

#define MAGPIE_TYPE_RANGE_STREAM (magpie_range_stream_get_type ())

G_DECLARE_FINAL_TYPE (MagpieRangeStream, magpie_range_stream, MAGPIE, RANGE_STREAM, GInputStream)

GInputStream *magpie_range_stream_new (GInputStream *base,
                                       gint64        length,
                                       guint64       bytes_per_second);

G_END_DECLS
