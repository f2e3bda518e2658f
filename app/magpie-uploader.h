/* magpie-uploader.h - drains the outbox into the object store while the server is reachable */
#pragma once

#include "magpie-connection.h"
#include "magpie-credentials.h"
#include "magpie-library.h"

G_BEGIN_DECLS

/* Photos sent at once: enough to hide latency, few enough to leave the link to others. */
#define MAGPIE_UPLOADER_PARALLEL 2

#define MAGPIE_TYPE_UPLOADER (magpie_uploader_get_type ())

G_DECLARE_FINAL_TYPE (MagpieUploader, magpie_uploader, MAGPIE, UPLOADER, GObject)

MagpieUploader *magpie_uploader_new          (SoupSession       *session,
                                              MagpieLibrary     *library,
                                              MagpieConnection  *connection,
                                              MagpieCredentials *credentials);
guint           magpie_uploader_get_n_active (MagpieUploader    *self);
guint           magpie_uploader_get_n_put    (MagpieUploader    *self);
guint           magpie_uploader_get_n_multipart (MagpieUploader *self);
guint           magpie_uploader_get_n_aborted (MagpieUploader   *self);
void            magpie_uploader_kick         (MagpieUploader    *self);

G_END_DECLS
