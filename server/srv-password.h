/* srv-password.h - account names, password policy and argon2id hashing */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define SRV_PASSWORD_ERROR (srv_password_error_quark ())

typedef enum {
  SRV_PASSWORD_ERROR_POLICY,    /* the username or password breaks the stated rules */
  SRV_PASSWORD_ERROR_FAILED,    /* hashing itself failed (out of memory) */
} SrvPasswordError;

#define SRV_PASSWORD_MIN_LEN  8
#define SRV_PASSWORD_MAX_LEN  1024   /* argon2 takes any length; we bound the work we accept */
#define SRV_USERNAME_MIN_LEN  3
#define SRV_USERNAME_MAX_LEN  64

GQuark    srv_password_error_quark  (void);
gboolean  srv_username_check        (const char  *username,
                                     GError     **error);
gboolean  srv_password_check        (const char  *password,
                                     GError     **error);
char     *srv_password_hash         (const char  *password,
                                     GError     **error);
gboolean  srv_password_verify       (const char  *hash,
                                     const char  *password);

G_END_DECLS
