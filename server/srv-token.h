/* srv-token.h - self-verifying session tokens and the server keyring behind them */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define SRV_TOKEN_ERROR (srv_token_error_quark ())

typedef enum {
  SRV_TOKEN_ERROR_MALFORMED,    /* not a Magpie token at all */
  SRV_TOKEN_ERROR_FORGED,       /* MAC does not verify, or made with a key we do not hold */
  SRV_TOKEN_ERROR_EXPIRED,
  SRV_TOKEN_ERROR_INVALID,      /* a request to mint something we will not mint */
  SRV_TOKEN_ERROR_KEYRING,      /* the keyring file cannot be read or written */
} SrvTokenError;

/* AWS STS allows 15 min to 12 h; so do we. */
#define SRV_TOKEN_MIN_LIFETIME_S      900
#define SRV_TOKEN_MAX_LIFETIME_S      43200
#define SRV_TOKEN_DEFAULT_LIFETIME_S  3600
#define SRV_IDENTITY_ID_MAX           64

typedef enum {
  SRV_IDENTITY_GUEST,
  SRV_IDENTITY_ACCOUNT,
} SrvIdentityKind;

typedef struct _SrvKeyring SrvKeyring;

typedef struct {
  char            *identity_id;
  SrvIdentityKind  kind;
  char            *access_key_id;      /* "ASIA" + 16 base32 characters, as STS makes them */
  char            *secret_access_key;  /* 40 characters, derived, never stored */
  char            *session_token;
  char            *prefix;             /* "users/<identity_id>/" */
  gint64           expires_at;         /* unix seconds */
  guint32          key_id;
} SrvCredentials;

GQuark          srv_token_error_quark     (void);

SrvKeyring     *srv_keyring_new           (void);
void            srv_keyring_free          (SrvKeyring      *keyring);
void            srv_keyring_add_key       (SrvKeyring      *keyring,
                                           guint32          key_id,
                                           const guint8    *key,
                                           gint64           created_at,
                                           gint64           retired_at);
gboolean        srv_keyring_load          (SrvKeyring      *keyring,
                                           const char      *path,
                                           gint64           now,
                                           GError         **error);
gboolean        srv_keyring_load_text     (SrvKeyring      *keyring,
                                           const char      *text,
                                           const char      *where,
                                           gint64           now,
                                           GError         **error);
char           *srv_keyring_to_text       (SrvKeyring      *keyring);
gboolean        srv_keyring_ensure_current (SrvKeyring     *keyring,
                                           gint64           now);
gboolean        srv_keyring_rotate        (SrvKeyring      *keyring,
                                           const char      *path,
                                           gint64           now,
                                           GError         **error);
guint32         srv_keyring_current_id    (SrvKeyring      *keyring);
guint           srv_keyring_size          (SrvKeyring      *keyring);

gboolean        srv_identity_id_is_valid  (const char      *identity_id);
SrvCredentials *srv_credentials_mint      (SrvKeyring      *keyring,
                                           const char      *identity_id,
                                           SrvIdentityKind  kind,
                                           gint64           now,
                                           gint64           lifetime_s,
                                           GError         **error);
SrvCredentials *srv_credentials_verify    (SrvKeyring      *keyring,
                                           const char      *session_token,
                                           gint64           now,
                                           GError         **error);
void            srv_credentials_free      (SrvCredentials  *credentials);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (SrvKeyring, srv_keyring_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SrvCredentials, srv_credentials_free)

G_END_DECLS
