/* srv-s3-body.h - an S3 request body spooled to an unlinked file as it arrives
 *
 * Fed from soup's got-chunk on the main thread: aws-chunked bodies are decoded with every
 * chunk signature checked as they arrive; plain bodies are checked against the signed
 * x-amz-content-sha256 by the streams srv_s3_body_open() returns, as they are read.
 * The file is unlinked at creation, so every path (errors, client disconnects, crashes)
 * frees its space when the body is freed. Memory stays at one chunk-header line.
 */
#pragma once

#include <gio/gio.h>

#include "mp-sigv4.h"

G_BEGIN_DECLS

/* aws-chunked chunks are 8 KiB to 1 MiB in the SDKs; anything past this is hostile. */
#define SRV_S3_BODY_MAX_CHUNK (16 * 1024 * 1024)

typedef struct _SrvS3Body SrvS3Body;

/* @payload_hash is what the signature covers (hex SHA-256, UNSIGNED-PAYLOAD or
 * STREAMING-AWS4-HMAC-SHA256-PAYLOAD, which needs @auth and @secret); @decoded_length the
 * x-amz-decoded-content-length (-1 if absent); @max_size the most payload bytes accepted.
 * Returns NULL and sets @error for an unknown payload hash form or an unusable @dir. */
SrvS3Body    *srv_s3_body_new        (const char        *dir,
                                      const char        *payload_hash,
                                      const MpSigv4Auth *auth,
                                      const char        *secret,
                                      gint64             decoded_length,
                                      gint64             max_size,
                                      GError           **error);
void          srv_s3_body_free       (SrvS3Body         *body);
/* Takes the next piece of the wire body. After the first failure it ignores the rest
 * (the failure is reported by srv_s3_body_finish()). */
void          srv_s3_body_feed       (SrvS3Body         *body,
                                      const guint8      *data,
                                      gsize              len);
/* At the end of the wire body: FALSE with the first failure, or IncompleteBody (truncated
 * chunks), SignatureDoesNotMatch (a chunk), EntityTooLarge. */
gboolean      srv_s3_body_finish     (SrvS3Body         *body,
                                      GError           **error);
/* Payload bytes spooled (decoded for aws-chunked). */
gint64        srv_s3_body_get_size   (SrvS3Body         *body);
gint64        srv_s3_body_get_wire_size (SrvS3Body      *body);
/* A fresh stream over the payload, from its start; any thread. For a hashed plain body the
 * read that completes it fails with XAmzContentSHA256Mismatch when the hash differs. */
GInputStream *srv_s3_body_open       (SrvS3Body         *body,
                                      GError           **error);
/* The whole payload in memory, for XML request bodies; FALSE (EntityTooLarge) over @max. */
GBytes       *srv_s3_body_read_all   (SrvS3Body         *body,
                                      gsize              max,
                                      GError           **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (SrvS3Body, srv_s3_body_free)

G_END_DECLS
