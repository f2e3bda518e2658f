/* magpie-s3.h - requests to the object store: SigV4-signed messages and the XML they answer */
#pragma once

#include <libsoup/soup.h>

#include "magpie-credentials.h"
#include "magpie-multipart.h"

G_BEGIN_DECLS

/* Store answers (errors, upload ids, part lists) are small XML documents: 1,000 parts listed
 * are about 200 KiB. Anything bigger is not one of them. */
#define MAGPIE_S3_MAX_ANSWER (1024 * 1024)

SoupMessage *magpie_s3_message_new       (const MagpieS3Credentials  *credentials,
                                          const char                 *method,
                                          const char                 *key,
                                          const char                 *query,
                                          const char                 *content_type,
                                          const char                 *payload_hash,
                                          GError                    **error);
const char  *magpie_s3_content_type_for  (const char                 *extension);
void         magpie_s3_send_async        (SoupSession                *session,
                                          SoupMessage                *message,
                                          GCancellable               *cancellable,
                                          GAsyncReadyCallback         callback,
                                          gpointer                    user_data);
GBytes      *magpie_s3_send_finish       (SoupSession                *session,
                                          GAsyncResult               *result,
                                          GError                    **error);
SoupMessage *magpie_s3_send_get_message  (GAsyncResult               *result);

char        *magpie_s3_error_code        (GBytes                     *body);
char        *magpie_s3_parse_upload_id   (GBytes                     *body,
                                          GError                    **error);
gboolean     magpie_s3_parse_list_parts  (GBytes                     *body,
                                          GArray                     *parts,
                                          gboolean                   *truncated,
                                          guint                      *next_marker,
                                          GError                    **error);
char        *magpie_s3_complete_xml      (const GArray               *plan);
gboolean     magpie_s3_credentials_error (const char                 *code);

G_END_DECLS
