/* srv-s3.h - the embedded S3 endpoint: path-style S3 on magpied's one port */
#pragma once

#include "srv-context.h"

G_BEGIN_DECLS

/* S3's single-PUT limit; larger objects go multipart. */
#define SRV_S3_MAX_PUT_SIZE    (G_GINT64_CONSTANT (5) << 30)
/* DeleteObjects of 1000 keys of 1 KiB, or CompleteMultipartUpload of 10000 parts, fit. */
#define SRV_S3_MAX_XML_BODY    (4 * 1024 * 1024)

/* Takes over the default handler (every path no other module claims), with an early
 * handler that authenticates before a body is read. Returns NULL and sets @error when the
 * spool directory cannot be made. */
SrvS3 *srv_s3_start (SrvContext *ctx,
                     GError    **error);
void   srv_s3_stop  (SrvS3      *s3);

G_END_DECLS
