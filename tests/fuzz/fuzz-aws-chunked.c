/* fuzz-aws-chunked.c - aws-chunked request bodies (STREAMING-AWS4-HMAC-SHA256-PAYLOAD) through
 * SrvS3Body, which decodes them with lib's chunk decoder and spools the payload
 *
 * Byte 0 picks the mode. Even: the rest is a raw wire body, fed in pieces of 1 + byte 1
 * bytes, which must be refused or decoded without crashing. Odd: the rest is a payload that
 * lib's encoder frames and signs in chunks of 1 + byte 1 % 64 bytes; byte 2, when not zero,
 * flips one bit of the wire body at a place it picks. The properties: an intact body decodes
 * to exactly its payload however it is cut into pieces; a body with any bit flipped is
 * refused. (Except bit 5, the ASCII case bit: the chunk size is hex in either case and is not
 * itself signed, so "A" for "a" is the same body.)
 */
#include "config.h"

#include "fuzz-common.h"

#include "fuzz-fixture.h"
#include "mp-sigv4.h"
#include "srv-s3-body.h"
#include "srv-s3-proto.h"

#define FUZZ_MAX    (1024 * 1024)

static MpSigv4Signed *seed;
static MpSigv4Auth *auth;
static char *spool_dir;

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  fuzz_init_logging ();
  seed = fuzz_chunked_seed ();
  g_assert (seed != NULL);
  auth = mp_sigv4_parse_authorization (seed->authorization, NULL);
  g_assert (auth != NULL);
  auth->amz_date = g_strdup (seed->amz_date);
  auth->payload_hash = g_strdup (MP_SIGV4_STREAMING_PAYLOAD);
  spool_dir = g_dir_make_tmp ("fuzz-aws-chunked-XXXXXX", NULL);
  g_assert (spool_dir != NULL);
  return 0;
}

/* Feeds @wire in pieces of @piece bytes; returns the decoded payload, or NULL if refused. */
static GBytes *
decode (const guint8 *wire,
        gsize         len,
        gsize         piece,
        gint64        decoded_length)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(SrvS3Body) body = srv_s3_body_new (spool_dir, MP_SIGV4_STREAMING_PAYLOAD, auth,
                                               FUZZ_SECRET, decoded_length, FUZZ_MAX, &error);
  GBytes *payload;

  fuzz_check (body != NULL, "no body: %s", error->message);
  for (gsize off = 0; off < len; off += piece)
    srv_s3_body_feed (body, wire + off, MIN (piece, len - off));
  if (!srv_s3_body_finish (body, &error))
    {
      guint status = 0;

      srv_s3_error_code (error, &status);
      fuzz_check (status == 400 || status == 403, "a bad body answers %u (%s)", status,
                  error->message);
      return NULL;
    }
  fuzz_check (srv_s3_body_get_wire_size (body) == (gint64) len, "wire size %" G_GINT64_FORMAT
              " of %" G_GSIZE_FORMAT, srv_s3_body_get_wire_size (body), len);
  payload = srv_s3_body_read_all (body, FUZZ_MAX, &error);
  fuzz_check (payload != NULL, "decoded body unreadable: %s", error->message);
  if (decoded_length >= 0)
    fuzz_check ((gint64) g_bytes_get_size (payload) == decoded_length,
                "decoded %" G_GSIZE_FORMAT " bytes, declared %" G_GINT64_FORMAT,
                g_bytes_get_size (payload), decoded_length);
  return payload;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  g_autoptr(GByteArray) wire = NULL;
  g_autoptr(GBytes) payload = NULL;
  g_autoptr(MpSigv4ChunkEncoder) enc = NULL;
  const guint8 *body;
  gsize body_len, chunk, piece;
  guint flip;

  if (size < 3)
    return 0;
  if ((data[0] & 1) == 0)
    {
      g_bytes_unref (decode (data + 2, size - 2, 1 + data[1], -1));
      g_bytes_unref (decode (data + 2, size - 2, size, (gint64) data[0]));
      return 0;
    }

  body = data + 3;
  body_len = size - 3;
  chunk = 1 + data[1] % 64;
  flip = data[2];
  wire = g_byte_array_new ();
  enc = mp_sigv4_chunk_encoder_new (fuzz_signing_params (), seed);
  for (gsize off = 0; off < body_len; off += chunk)
    mp_sigv4_chunk_encoder_add (enc, body + off, MIN (chunk, body_len - off), wire);
  mp_sigv4_chunk_encoder_finish (enc, wire);
  fuzz_check (wire->len == mp_sigv4_chunked_length (body_len, chunk),
              "framed %u bytes, mp_sigv4_chunked_length says %" G_GUINT64_FORMAT, wire->len,
              mp_sigv4_chunked_length (body_len, chunk));
  piece = 1 + (data[1] ^ data[2]) % 97;

  if (flip == 0)
    {
      payload = decode (wire->data, wire->len, piece, data[1] & 0x80 ? -1 : (gint64) body_len);
      fuzz_check (payload != NULL, "an intact body of %" G_GSIZE_FORMAT " bytes was refused",
                  body_len);
      fuzz_check (g_bytes_get_size (payload) == body_len &&
                  (body_len == 0 || memcmp (g_bytes_get_data (payload, NULL), body, body_len) == 0),
                  "an intact body decoded to other bytes");
    }
  else
    {
      gsize at = ((gsize) flip * 7919) % wire->len;
      guint bit = flip % 7 < 5 ? flip % 7 : flip % 7 + 1;

      wire->data[at] ^= 1 << bit;
      payload = decode (wire->data, wire->len, piece, -1);
      fuzz_check (payload == NULL, "a body with bit %u of byte %" G_GSIZE_FORMAT " flipped "
                  "was accepted", bit, at);
    }
  return 0;
}
