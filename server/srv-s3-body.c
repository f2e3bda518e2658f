/* srv-s3-body.c - an S3 request body spooled to an unlinked file as it arrives */
#define G_LOG_DOMAIN "srv-s3"

#include "config.h"

#include "srv-s3-body.h"

#include <errno.h>
#include <fcntl.h>
#include <gio/gunixinputstream.h>
#include <glib/gstdio.h>
#include <string.h>
#include <unistd.h>

#include "srv-s3-proto.h"
#include "srv-store.h"

/* A plain body's signed SHA-256 is checked by the reader (a blocking-pool thread), not by
 * got-chunk on the main loop, which then only copies bytes: the main loop serves every
 * connection, and 20 MB of SHA-256 is ~130 ms of it. The last read that completes the body
 * fails instead of returning its bytes when the hash differs, so the store, which commits
 * only after reading the whole body, never makes a mismatching object visible. */
#define SRV_TYPE_S3_VERIFY_STREAM (srv_s3_verify_stream_get_type ())
G_DECLARE_FINAL_TYPE (SrvS3VerifyStream, srv_s3_verify_stream, SRV, S3_VERIFY_STREAM,
                      GFilterInputStream)

struct _SrvS3VerifyStream {
  GFilterInputStream  parent_instance;
  GChecksum          *sha256;
  char               *expected;
  gint64              remaining;
};

G_DEFINE_FINAL_TYPE (SrvS3VerifyStream, srv_s3_verify_stream, G_TYPE_FILTER_INPUT_STREAM)

static gssize
verify_read (GInputStream  *stream,
             void          *buffer,
             gsize          count,
             GCancellable  *cancellable,
             GError       **error)
{
  SrvS3VerifyStream *self = SRV_S3_VERIFY_STREAM (stream);
  GInputStream *base = g_filter_input_stream_get_base_stream (G_FILTER_INPUT_STREAM (stream));
  gssize n = g_input_stream_read (base, buffer, count, cancellable, error);

  if (n <= 0 || self->sha256 == NULL)
    return n;
  g_checksum_update (self->sha256, buffer, n);
  self->remaining -= n;
  if (self->remaining <= 0)
    {
      const char *got = g_checksum_get_string (self->sha256);

      if (strcmp (got, self->expected) != 0)
        {
          g_set_error (error, SRV_S3_ERROR, SRV_S3_ERROR_CONTENT_SHA256_MISMATCH,
                       "the body's SHA-256 %s is not the signed x-amz-content-sha256 %s",
                       got, self->expected);
          return -1;
        }
      g_clear_pointer (&self->sha256, g_checksum_free);
    }
  return n;
}

static void
srv_s3_verify_stream_finalize (GObject *object)
{
  SrvS3VerifyStream *self = SRV_S3_VERIFY_STREAM (object);

  g_clear_pointer (&self->sha256, g_checksum_free);
  g_free (self->expected);
  G_OBJECT_CLASS (srv_s3_verify_stream_parent_class)->finalize (object);
}

static void
srv_s3_verify_stream_class_init (SrvS3VerifyStreamClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = srv_s3_verify_stream_finalize;
  G_INPUT_STREAM_CLASS (klass)->read_fn = verify_read;
}

static void
srv_s3_verify_stream_init (SrvS3VerifyStream *self)
{
}

struct _SrvS3Body {
  int                  fd;
  char                *expected;     /* a plain body's signed hash, checked by readers */
  MpSigv4ChunkDecoder *decoder;      /* aws-chunked */
  GByteArray          *decoded;      /* scratch for one piece's payload */
  gint64               max_size;
  gint64               size;
  gint64               wire_size;
  GError              *error;
};

/* A full disk is 507 InsufficientStorage, which clients retry later, like the store's own;
 * anything else is our 500. */
static void
set_spool_error (GError    **error,
                 int         errsv,
                 const char *what)
{
  if (errsv == ENOSPC || errsv == EDQUOT)
    g_set_error (error, SRV_STORE_ERROR, SRV_STORE_ERROR_NO_SPACE,
                 "the server is out of disk space: %s: %s", what, g_strerror (errsv));
  else
    g_set_error (error, SRV_S3_ERROR, SRV_S3_ERROR_INTERNAL, "%s: %s", what, g_strerror (errsv));
}

static gboolean
is_hex_sha256 (const char *s)
{
  if (strlen (s) != 64)
    return FALSE;
  for (; *s; s++)
    if (!g_ascii_isxdigit (*s))
      return FALSE;
  return TRUE;
}

SrvS3Body *
srv_s3_body_new (const char        *dir,
                 const char        *payload_hash,
                 const MpSigv4Auth *auth,
                 const char        *secret,
                 gint64             decoded_length,
                 gint64             max_size,
                 GError           **error)
{
  g_autoptr(SrvS3Body) body = g_new0 (SrvS3Body, 1);
  g_autofree char *template = g_build_filename (dir, "spool-XXXXXX", NULL);

  body->fd = -1;
  body->max_size = max_size;
  if (payload_hash == NULL || strcmp (payload_hash, MP_SIGV4_UNSIGNED_PAYLOAD) == 0)
    ;
  else if (strcmp (payload_hash, MP_SIGV4_STREAMING_PAYLOAD) == 0)
    {
      g_return_val_if_fail (auth != NULL && secret != NULL, NULL);
      if (decoded_length > max_size)
        {
          g_set_error (error, SRV_S3_ERROR, SRV_S3_ERROR_ENTITY_TOO_LARGE,
                       "x-amz-decoded-content-length %" G_GINT64_FORMAT " is over the "
                       "maximum of %" G_GINT64_FORMAT " bytes", decoded_length, max_size);
          return NULL;
        }
      body->decoder = mp_sigv4_chunk_decoder_new (auth, secret, SRV_S3_BODY_MAX_CHUNK,
                                                  decoded_length);
      body->decoded = g_byte_array_new ();
    }
  else if (is_hex_sha256 (payload_hash))
    {
      body->expected = g_ascii_strdown (payload_hash, -1);
    }
  else
    {
      g_set_error (error, SRV_S3_ERROR, SRV_S3_ERROR_INVALID_ARGUMENT,
                   "x-amz-content-sha256 must be a hex SHA-256, UNSIGNED-PAYLOAD or "
                   MP_SIGV4_STREAMING_PAYLOAD ", not '%s'", payload_hash);
      return NULL;
    }

  body->fd = g_mkstemp_full (template, O_RDWR | O_CLOEXEC, 0600);
  if (body->fd < 0)
    {
      int saved_errno = errno;
      g_autofree char *what = g_strdup_printf ("cannot create a spool file in %s", dir);

      set_spool_error (error, saved_errno, what);
      return NULL;
    }
  /* Nameless from here on: the space is freed with the last descriptor, whatever happens. */
  g_unlink (template);
  return g_steal_pointer (&body);
}

void
srv_s3_body_free (SrvS3Body *body)
{
  if (body == NULL)
    return;
  if (body->fd >= 0)
    close (body->fd);
  g_free (body->expected);
  g_clear_pointer (&body->decoder, mp_sigv4_chunk_decoder_free);
  if (body->decoded)
    g_byte_array_unref (body->decoded);
  g_clear_error (&body->error);
  g_free (body);
}

static gboolean
write_all (SrvS3Body    *body,
           const guint8 *data,
           gsize         len)
{
  if (body->size + (gint64) len > body->max_size)
    {
      g_set_error (&body->error, SRV_S3_ERROR, SRV_S3_ERROR_ENTITY_TOO_LARGE,
                   "the body is over the maximum of %" G_GINT64_FORMAT " bytes",
                   body->max_size);
      return FALSE;
    }
  while (len > 0)
    {
      gssize n = write (body->fd, data, len);

      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        {
          set_spool_error (&body->error, errno, "cannot spool the request body");
          return FALSE;
        }
      data += n;
      len -= n;
      body->size += n;
    }
  return TRUE;
}

void
srv_s3_body_feed (SrvS3Body    *body,
                  const guint8 *data,
                  gsize         len)
{
  if (body->error != NULL)
    return;
  body->wire_size += len;
  if (body->decoder != NULL)
    {
      g_byte_array_set_size (body->decoded, 0);
      if (!mp_sigv4_chunk_decoder_feed (body->decoder, data, len, body->decoded, &body->error))
        return;
      write_all (body, body->decoded->data, body->decoded->len);
      return;
    }
  write_all (body, data, len);
}

gboolean
srv_s3_body_finish (SrvS3Body *body,
                    GError   **error)
{
  if (body->error == NULL && body->decoder != NULL)
    mp_sigv4_chunk_decoder_finish (body->decoder, &body->error);
  if (body->error != NULL)
    {
      g_propagate_error (error, g_error_copy (body->error));
      return FALSE;
    }
  return TRUE;
}

gint64
srv_s3_body_get_size (SrvS3Body *body)
{
  return body->size;
}

gint64
srv_s3_body_get_wire_size (SrvS3Body *body)
{
  return body->wire_size;
}

GInputStream *
srv_s3_body_open (SrvS3Body *body,
                  GError   **error)
{
  /* The reopened descriptor has its own offset, so readers never race the writer. */
  g_autofree char *path = g_strdup_printf ("/proc/self/fd/%d", body->fd);
  int fd = g_open (path, O_RDONLY | O_CLOEXEC, 0);
  g_autoptr(GInputStream) raw = NULL;
  SrvS3VerifyStream *verify;

  if (fd < 0)
    {
      int saved_errno = errno;

      g_set_error (error, SRV_S3_ERROR, SRV_S3_ERROR_INTERNAL,
                   "cannot reopen the spooled body: %s", g_strerror (saved_errno));
      return NULL;
    }
  raw = g_unix_input_stream_new (fd, TRUE);
  if (body->expected == NULL)
    return g_steal_pointer (&raw);
  verify = g_object_new (SRV_TYPE_S3_VERIFY_STREAM, "base-stream", raw, NULL);
  verify->sha256 = g_checksum_new (G_CHECKSUM_SHA256);
  verify->expected = g_strdup (body->expected);
  verify->remaining = body->size;
  /* An empty body completes at once: check it here, as no read will. */
  if (body->size == 0 && strcmp (body->expected, MP_SIGV4_EMPTY_SHA256) != 0)
    {
      g_object_unref (verify);
      g_set_error (error, SRV_S3_ERROR, SRV_S3_ERROR_CONTENT_SHA256_MISMATCH,
                   "the empty body is not the signed x-amz-content-sha256 %s", body->expected);
      return NULL;
    }
  return G_INPUT_STREAM (verify);
}

GBytes *
srv_s3_body_read_all (SrvS3Body *body,
                      gsize      max,
                      GError   **error)
{
  g_autoptr(GInputStream) in = NULL;
  g_autoptr(GBytes) bytes = NULL;

  if (body->size > (gint64) max)
    {
      g_set_error (error, SRV_S3_ERROR, SRV_S3_ERROR_ENTITY_TOO_LARGE,
                   "the request document is %" G_GINT64_FORMAT " bytes; at most %"
                   G_GSIZE_FORMAT " are accepted", body->size, max);
      return NULL;
    }
  in = srv_s3_body_open (body, error);
  if (in == NULL)
    return NULL;
  if (body->size == 0)
    return g_bytes_new (NULL, 0);
  bytes = g_input_stream_read_bytes (in, (gsize) body->size, NULL, error);
  if (bytes == NULL)
    return NULL;
  if ((gint64) g_bytes_get_size (bytes) != body->size)
    {
      g_set_error (error, SRV_S3_ERROR, SRV_S3_ERROR_INTERNAL, "short read of the spooled body");
      return NULL;
    }
  return g_steal_pointer (&bytes);
}
