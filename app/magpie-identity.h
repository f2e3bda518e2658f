/* magpie-identity.h - who this installation is to magpied: a guest identity or an account, kept
 * in the keyring */
#pragma once

#include <libsecret/secret.h>
#include <libsoup/soup.h>

G_BEGIN_DECLS

#define MAGPIE_TYPE_IDENTITY (magpie_identity_get_type ())

G_DECLARE_FINAL_TYPE (MagpieIdentity, magpie_identity, MAGPIE, IDENTITY, GObject)

const SecretSchema *magpie_identity_get_schema       (void) G_GNUC_CONST;
MagpieIdentity     *magpie_identity_new              (SoupSession         *session);
const char         *magpie_identity_get_server_url   (MagpieIdentity      *self);
const char         *magpie_identity_get_id           (MagpieIdentity      *self);
const char         *magpie_identity_get_secret       (MagpieIdentity      *self);
gboolean            magpie_identity_get_in_keyring   (MagpieIdentity      *self);
const char         *magpie_identity_get_username     (MagpieIdentity      *self);
void                magpie_identity_ensure_async     (MagpieIdentity      *self,
                                                      const char          *server_url,
                                                      GCancellable        *cancellable,
                                                      GAsyncReadyCallback  callback,
                                                      gpointer             user_data);
gboolean            magpie_identity_ensure_finish    (MagpieIdentity      *self,
                                                      GAsyncResult        *result,
                                                      GError             **error);
void                magpie_identity_sign_in_async    (MagpieIdentity      *self,
                                                      const char          *server_url,
                                                      const char          *username,
                                                      const char          *password,
                                                      gboolean             create_account,
                                                      GCancellable        *cancellable,
                                                      GAsyncReadyCallback  callback,
                                                      gpointer             user_data);
gboolean            magpie_identity_sign_in_finish   (MagpieIdentity      *self,
                                                      GAsyncResult        *result,
                                                      GError             **error);
void                magpie_identity_sign_out_async   (MagpieIdentity      *self,
                                                      GCancellable        *cancellable,
                                                      GAsyncReadyCallback  callback,
                                                      gpointer             user_data);
gboolean            magpie_identity_sign_out_finish  (MagpieIdentity      *self,
                                                      GAsyncResult        *result,
                                                      GError             **error);

G_END_DECLS
