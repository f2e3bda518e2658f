/* magpie-range-stream.c - a window of another input stream, optionally paced (for tests)
 *
 * One part of a multipart upload is streamed straight from the photo's file: the file stream
 * is positioned at the part's offset and this stream ends after the part's length, so libsoup
 * sends exactly Content-Length bytes without the part ever being in memory whole.
 *
 * Pacing exists for tests that must stop the app while a part is on its way
 * (MAGPIE_TEST_UPLOAD_RATE, see magpie-uploader.c). Reads happen on a GIO worker thread (this
 * class has no async implementation of its own), so the pause never touches the main loop.
 */
#define G_LOG_DOMAIN "magpie-range-stream"

#include "config.h"

#include "magpie-range-stream.h"

/* Paced reads hand out at most this much at a time, so the pace is smooth and a cancelled
 * upload stops within a few dozen milliseconds. */
#define MAGPIE_RANGE_STREAM_PACED_CHUNK (64 * 1024)

struct _MagpieRangeStream {
  GInputStream  parent_instance;

  GInputStream *base;
  gint64        remaining;
  guint64       bytes_per_second;
  guint64       paced_bytes;
  gint64        started_us;
};

G_DEFINE_FINAL_TYPE (MagpieRangeStream, magpie_range_stream, G_TYPE_INPUT_STREAM)

static gssize
magpie_range_stream_read (GInputStream  *stream,
                          void          *buffer,
                          gsize          count,
                          GCancellable  *cancellable,
                          GError       **error)
{
  MagpieRangeStream *self = MAGPIE_RANGE_STREAM (stream);
  gssize n;

  if (self->remaining <= 0)
    return 0;
  count = MIN (count, (guint64) self->remaining);
  if (self->bytes_per_second > 0)
    {
      gint64 due_us;

      count = MIN (count, MAGPIE_RANGE_STREAM_PACED_CHUNK);
      if (self->started_us == 0)
        self->started_us = g_get_monotonic_time ();
      due_us = self->started_us +
               (gint64) (self->paced_bytes * G_USEC_PER_SEC / self->bytes_per_second);
      if (due_us > g_get_monotonic_time ())
        g_usleep (due_us - g_get_monotonic_time ());
      if (g_cancellable_set_error_if_cancelled (cancellable, error))
        return -1;
    }
  n = g_input_stream_read (self->base, buffer, count, cancellable, error);
  if (n > 0)
    {
      self->remaining -= n;
      self->paced_bytes += n;
    }
  else if (n == 0)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_PARTIAL_INPUT,
                   "the file ended %" G_GINT64_FORMAT " bytes early", self->remaining);
      return -1;
    }
  return n;
}

static gboolean
magpie_range_stream_close (GInputStream  *stream,
                           GCancellable  *cancellable,
                           GError       **error)
{
  MagpieRangeStream *self = MAGPIE_RANGE_STREAM (stream);

  return g_input_stream_close (self->base, cancellable, error);
}

static void
magpie_range_stream_finalize (GObject *object)
{
  MagpieRangeStream *self = MAGPIE_RANGE_STREAM (object);

  g_clear_object (&self->base);

  G_OBJECT_CLASS (magpie_range_stream_parent_class)->finalize (object);
}

static void
magpie_range_stream_class_init (MagpieRangeStreamClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GInputStreamClass *stream_class = G_INPUT_STREAM_CLASS (klass);

  object_class->finalize = magpie_range_stream_finalize;
  stream_class->read_fn = magpie_range_stream_read;
  stream_class->close_fn = magpie_range_stream_close;
}

static void
magpie_range_stream_init (MagpieRangeStream *self)
{
}

/* The next @length bytes of @base (from where it stands), then the end; a @base that ends
 * sooner is an error. @bytes_per_second > 0 paces the reads to that rate. */
GInputStream *
magpie_range_stream_new (GInputStream *base,
                         gint64        length,
                         guint64       bytes_per_second)
{
  MagpieRangeStream *self;

  g_return_val_if_fail (G_IS_INPUT_STREAM (base), NULL);
  g_return_val_if_fail (length >= 0, NULL);

  self = g_object_new (MAGPIE_TYPE_RANGE_STREAM, NULL);
  self->base = g_object_ref (base);
  self->remaining = length;
  self->bytes_per_second = bytes_per_second;
  return G_INPUT_STREAM (self);
}
