/* magpie-credentials.h - temporary S3 credentials from magpied, cached and refreshed */
#pragma once

#include "magpie-identity.h"

G_BEGIN_DECLS

/* Refreshed this long before they expire, so no request goes out with a dying key. */
#define MAGPIE_CREDENTIALS_MARGIN_S (5 * 60)

typedef struct {
  char   *access_key_id;
  char   *secret_access_key;
  char   *session_token;
  char   *api_token;      /* the REST bearer: session_token means nothing to magpied when the
                           * S3 keys come from a remote store's STS */
  char   *endpoint;
  char   *region;
  char   *bucket;
  char   *prefix;
  char   *identity_id;
  gint64  expiration;   /* unix seconds */
} MagpieS3Credentials;

#define MAGPIE_TYPE_S3_CREDENTIALS (magpie_s3_credentials_get_type ())

GType                magpie_s3_credentials_get_type (void) G_GNUC_CONST;
MagpieS3Credentials *magpie_s3_credentials_ref      (MagpieS3Credentials *credentials);
void                 magpie_s3_credentials_unref    (MagpieS3Credentials *credentials);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (MagpieS3Credentials, magpie_s3_credentials_unref)

#define MAGPIE_TYPE_CREDENTIALS (magpie_credentials_get_type ())

G_DECLARE_FINAL_TYPE (MagpieCredentials, magpie_credentials, MAGPIE, CREDENTIALS, GObject)

MagpieCredentials   *magpie_credentials_new          (SoupSession         *session,
                                                      MagpieIdentity      *identity);
MagpieIdentity      *magpie_credentials_get_identity (MagpieCredentials   *self);
void                 magpie_credentials_invalidate   (MagpieCredentials   *self);
void                 magpie_credentials_get_async    (MagpieCredentials   *self,
                                                      const char          *server_url,
                                                      GCancellable        *cancellable,
                                                      GAsyncReadyCallback  callback,
                                                      gpointer             user_data);
MagpieS3Credentials *magpie_credentials_get_finish   (MagpieCredentials   *self,
                                                      GAsyncResult        *result,
                                                      GError             **error);
guint                magpie_credentials_get_n_fetched (MagpieCredentials  *self);

G_END_DECLS
