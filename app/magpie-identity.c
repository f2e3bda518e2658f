/* magpie-identity.c - who this installation is to magpied: a guest identity kept in the keyring
 *
 * The secret lives in the Secret Service (libsecret) and nowhere else: when no Secret Service
 * answers, the identity is kept in memory for this run only and "keyring-unavailable" is
 * emitted once, so the window can say so. */
#define G_LOG_DOMAIN "magpie-identity"

#include "config.h"

#include "magpie-identity.h"

#include <glib/gi18n.h>
#include <string.h>

#include "magpie-api.h"
#include "magpie-client-error.h"

struct _MagpieIdentity {
  GObject      parent_instance;

  SoupSession *session;
  char        *server_url;
  char        *id;
  char        *secret;
  GPtrArray   *waiting;     /* GTask: ensure calls while one is under way */
  gboolean     in_keyring;
  gboolean     keyring_broken;
};

G_DEFINE_FINAL_TYPE (MagpieIdentity, magpie_identity, G_TYPE_OBJECT)

enum {
  KEYRING_UNAVAILABLE,
  N_SIGNALS
};

static guint signals[N_SIGNALS];

const SecretSchema *
magpie_identity_get_schema (void)
{
  static const SecretSchema schema = {
    APPLICATION_ID ".Identity", SECRET_SCHEMA_NONE,
    {
      { "server", SECRET_SCHEMA_ATTRIBUTE_STRING },
      { "identity-id", SECRET_SCHEMA_ATTRIBUTE_STRING },
      { NULL, 0 },
    }
  };

  return &schema;
}

static void
magpie_identity_dispose (GObject *object)
{
  MagpieIdentity *self = MAGPIE_IDENTITY (object);

  g_clear_object (&self->session);
  g_clear_pointer (&self->waiting, g_ptr_array_unref);

  G_OBJECT_CLASS (magpie_identity_parent_class)->dispose (object);
}

static void
magpie_identity_finalize (GObject *object)
{
  MagpieIdentity *self = MAGPIE_IDENTITY (object);

  g_free (self->server_url);
  g_free (self->id);
  if (self->secret != NULL)
    memset (self->secret, 0, strlen (self->secret));
  g_free (self->secret);

  G_OBJECT_CLASS (magpie_identity_parent_class)->finalize (object);
}

static void
magpie_identity_class_init (MagpieIdentityClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = magpie_identity_dispose;
  object_class->finalize = magpie_identity_finalize;

  /* Emitted once per identity object when the Secret Service cannot keep the secret. */
  signals[KEYRING_UNAVAILABLE] =
    g_signal_new ("keyring-unavailable", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 0);
}

static void
magpie_identity_init (MagpieIdentity *self)
{
  self->waiting = g_ptr_array_new_with_free_func (g_object_unref);
}

MagpieIdentity *
magpie_identity_new (SoupSession *session)
{
  MagpieIdentity *self;

  g_return_val_if_fail (SOUP_IS_SESSION (session), NULL);

  self = g_object_new (MAGPIE_TYPE_IDENTITY, NULL);
  self->session = g_object_ref (session);
  return self;
}

const char *
magpie_identity_get_server_url (MagpieIdentity *self)
{
  g_return_val_if_fail (MAGPIE_IS_IDENTITY (self), NULL);
  return self->server_url;
}

/* The identity id once ensured, else NULL. */
const char *
magpie_identity_get_id (MagpieIdentity *self)
{
  g_return_val_if_fail (MAGPIE_IS_IDENTITY (self), NULL);
  return self->id;
}

const char *
magpie_identity_get_secret (MagpieIdentity *self)
{
  g_return_val_if_fail (MAGPIE_IS_IDENTITY (self), NULL);
  return self->secret;
}

/* Whether the secret is in the Secret Service (FALSE: in memory for this run only). */
gboolean
magpie_identity_get_in_keyring (MagpieIdentity *self)
{
  g_return_val_if_fail (MAGPIE_IS_IDENTITY (self), FALSE);
  return self->in_keyring;
}

static void
keyring_failed (MagpieIdentity *self,
                const GError   *error)
{
  self->in_keyring = FALSE;
  if (self->keyring_broken)
    return;
  self->keyring_broken = TRUE;
  g_message ("No Secret Service to keep the identity in (%s); it is kept in memory for this "
             "session", error->message);
  g_signal_emit (self, signals[KEYRING_UNAVAILABLE], 0);
}

/* Finishes every waiting ensure call: with @error, or with the identity now known. */
static void
finish_all (MagpieIdentity *self,
            const GError   *error)
{
  g_autoptr(GPtrArray) waiting = g_steal_pointer (&self->waiting);

  self->waiting = g_ptr_array_new_with_free_func (g_object_unref);
  for (guint i = 0; i < waiting->len; i++)
    {
      GTask *task = waiting->pdata[i];

      if (error != NULL)
        g_task_return_error (task, g_error_copy (error));
      else
        g_task_return_boolean (task, TRUE);
    }
}

static void
set_identity (MagpieIdentity *self,
              const char     *id,
              const char     *secret)
{
  g_free (self->id);
  self->id = g_strdup (id);
  if (self->secret != NULL)
    memset (self->secret, 0, strlen (self->secret));
  g_free (self->secret);
  self->secret = g_strdup (secret);
}

static void
stored_cb (GObject      *object,
           GAsyncResult *result,
           gpointer      user_data)
{
  g_autoptr(MagpieIdentity) self = user_data;
  g_autoptr(GError) error = NULL;

  if (secret_password_store_finish (result, &error))
    self->in_keyring = TRUE;
  else
    keyring_failed (self, error);
}

static void
created_cb (GObject      *object,
            GAsyncResult *result,
            gpointer      user_data)
{
  g_autoptr(MagpieIdentity) self = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) body = NULL;
  g_autofree char *label = NULL;
  const char *id;
  const char *secret;
  guint status;

  body = magpie_api_request_finish (result, &status, &error);
  if (body == NULL)
    {
      finish_all (self, error);
      return;
    }
  id = magpie_api_get_string (body, "identity_id");
  secret = magpie_api_get_string (body, "secret");
  if (status != SOUP_STATUS_CREATED || id == NULL || secret == NULL)
    {
      g_autofree char *message = magpie_api_error_message (body, status);

      error = g_error_new (MAGPIE_CLIENT_ERROR, MAGPIE_CLIENT_ERROR_BAD_RESPONSE,
                           /* Translators: %s is the server's reason */
                           _("The server did not give this computer an identity: %s"),
                           message);
      finish_all (self, error);
      return;
    }
  set_identity (self, id, secret);
  /* The identity is usable now; keeping it may wait on a keyring prompt, so it is kept in
   * the background. */
  finish_all (self, NULL);
  if (self->keyring_broken)
    return;
  /* Translators: the name of the identity in the keyring; %s is the server's address */
  label = g_strdup_printf (_("Magpie identity for %s"), self->server_url);
  secret_password_store (magpie_identity_get_schema (), SECRET_COLLECTION_DEFAULT, label,
                         self->secret, NULL, stored_cb, g_object_ref (self),
                         "server", self->server_url, "identity-id", self->id, NULL);
}

static void
create_identity (MagpieIdentity *self)
{
  magpie_api_request_async (self->session, "POST", self->server_url, "/v1/identities", NULL,
                            "{}", NULL, created_cb, g_object_ref (self));
}

typedef struct {
  MagpieIdentity *self;
  char           *id;
} Retrieval;

static void
retrieved_cb (GObject      *object,
              GAsyncResult *result,
              gpointer      user_data)
{
  Retrieval *retrieval = user_data;
  g_autoptr(MagpieIdentity) self = retrieval->self;
  g_autofree char *id = retrieval->id;
  g_autoptr(GError) error = NULL;
  g_autoptr(SecretValue) value = NULL;
  const char *text;

  g_free (retrieval);
  value = secret_retrievable_retrieve_secret_finish (SECRET_RETRIEVABLE (object), result,
                                                     &error);
  text = value != NULL ? secret_value_get_text (value) : NULL;
  if (text == NULL)
    {
      if (error != NULL)
        keyring_failed (self, error);
      create_identity (self);
      return;
    }
  set_identity (self, id, text);
  self->in_keyring = TRUE;
  finish_all (self, NULL);
}

static void
searched_cb (GObject      *object,
             GAsyncResult *result,
             gpointer      user_data)
{
  g_autoptr(MagpieIdentity) self = user_data;
  g_autoptr(GError) error = NULL;
  GList *items;
  g_autoptr(GHashTable) attributes = NULL;
  Retrieval *retrieval;

  items = secret_password_search_finish (result, &error);
  if (items == NULL)
    {
      if (error != NULL)
        keyring_failed (self, error);
      create_identity (self);
      return;
    }
  attributes = secret_retrievable_get_attributes (items->data);
  retrieval = g_new0 (Retrieval, 1);
  retrieval->self = g_steal_pointer (&self);
  retrieval->id = g_strdup (g_hash_table_lookup (attributes, "identity-id"));
  secret_retrievable_retrieve_secret (items->data, NULL, retrieved_cb, retrieval);
  g_list_free_full (items, g_object_unref);
}

/* Makes sure there is an identity for @server_url: the one in the keyring, else a new guest
 * identity from the server (stored in the keyring when there is one). Calls made while one is
 * under way finish together with it. */
void
magpie_identity_ensure_async (MagpieIdentity      *self,
                              const char          *server_url,
                              GCancellable        *cancellable,
                              GAsyncReadyCallback  callback,
                              gpointer             user_data)
{
  g_autoptr(GTask) task = NULL;

  g_return_if_fail (MAGPIE_IS_IDENTITY (self));
  g_return_if_fail (server_url != NULL);

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, magpie_identity_ensure_async);

  if (g_strcmp0 (server_url, self->server_url) == 0 && self->id != NULL)
    {
      g_task_return_boolean (task, TRUE);
      return;
    }
  if (self->waiting->len > 0 && g_strcmp0 (server_url, self->server_url) == 0)
    {
      g_ptr_array_add (self->waiting, g_steal_pointer (&task));
      return;
    }

  /* Another server, another identity. */
  g_free (self->server_url);
  self->server_url = g_strdup (server_url);
  set_identity (self, NULL, NULL);
  self->in_keyring = FALSE;
  g_ptr_array_add (self->waiting, g_steal_pointer (&task));

  if (self->keyring_broken)
    create_identity (self);
  else
    secret_password_search (magpie_identity_get_schema (),
                            SECRET_SEARCH_LOAD_SECRETS | SECRET_SEARCH_UNLOCK, NULL,
                            searched_cb, g_object_ref (self), "server", server_url, NULL);
}

gboolean
magpie_identity_ensure_finish (MagpieIdentity  *self,
                               GAsyncResult    *result,
                               GError         **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  return g_task_propagate_boolean (G_TASK (result), error);
}
