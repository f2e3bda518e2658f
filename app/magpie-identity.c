/* magpie-identity.c - who this installation is to magpied: a guest identity or a signed-in
 * account, kept in the keyring
 *
 * The secret lives in the Secret Service (libsecret) and nowhere else: when no Secret Service
 * answers, the identity is kept in memory for this run only and "keyring-unavailable" is
 * emitted once, so the window can say so. One item per server: signing in to an account
 * replaces the guest's item with the account's (the password itself is never kept, only the
 * identity secret the server hands out for it), and signing out removes it, so that the next
 * use makes a new guest. Each change bumps a generation; answers to requests of an older
 * generation (a guest being created while someone signs in) are dropped. */
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
  char        *username;    /* NULL: a guest */
  GPtrArray   *waiting;     /* GTask: ensure calls while one is under way */
  guint        generation;
  guint        clearing;    /* keyring removals under way: searching would find old items */
  gboolean     in_keyring;
  gboolean     keyring_broken;
};

G_DEFINE_FINAL_TYPE (MagpieIdentity, magpie_identity, G_TYPE_OBJECT)

enum {
  KEYRING_UNAVAILABLE,
  N_SIGNALS
};

static guint signals[N_SIGNALS];

enum {
  PROP_0,
  PROP_ID,
  PROP_USERNAME,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

/* A request of one generation: its answer counts only if nothing changed meanwhile. */
typedef struct {
  MagpieIdentity *self;
  guint           generation;
  char           *id;
  char           *username;
  GTask          *task;       /* sign in / out */
} Pending;

static Pending *
pending_new (MagpieIdentity *self)
{
  Pending *p = g_new0 (Pending, 1);

  p->self = g_object_ref (self);
  p->generation = self->generation;
  return p;
}

static void
pending_free (Pending *p)
{
  g_clear_object (&p->self);
  g_free (p->id);
  g_free (p->username);
  g_clear_object (&p->task);
  g_free (p);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Pending, pending_free)

static gboolean
pending_is_stale (Pending *p)
{
  return p->generation != p->self->generation;
}

const SecretSchema *
magpie_identity_get_schema (void)
{
  static const SecretSchema schema = {
    APPLICATION_ID ".Identity", SECRET_SCHEMA_NONE,
    {
      { "server", SECRET_SCHEMA_ATTRIBUTE_STRING },
      { "identity-id", SECRET_SCHEMA_ATTRIBUTE_STRING },
      { "username", SECRET_SCHEMA_ATTRIBUTE_STRING },
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
  g_free (self->username);
  if (self->secret != NULL)
    memset (self->secret, 0, strlen (self->secret));
  g_free (self->secret);

  G_OBJECT_CLASS (magpie_identity_parent_class)->finalize (object);
}

static void
magpie_identity_get_property (GObject    *object,
                              guint       prop_id,
                              GValue     *value,
                              GParamSpec *pspec)
{
  MagpieIdentity *self = MAGPIE_IDENTITY (object);

  switch (prop_id)
    {
    case PROP_ID:
      g_value_set_string (value, self->id);
      break;
    case PROP_USERNAME:
      g_value_set_string (value, self->username);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
magpie_identity_class_init (MagpieIdentityClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = magpie_identity_dispose;
  object_class->finalize = magpie_identity_finalize;
  object_class->get_property = magpie_identity_get_property;

  /* The identity id: NULL until ensured, and changes when someone signs in or out. */
  properties[PROP_ID] =
    g_param_spec_string ("id", NULL, NULL, NULL,
                         G_PARAM_READABLE | G_PARAM_STATIC_STRINGS | G_PARAM_EXPLICIT_NOTIFY);
  /* The account signed in to, NULL for a guest identity. */
  properties[PROP_USERNAME] =
    g_param_spec_string ("username", NULL, NULL, NULL,
                         G_PARAM_READABLE | G_PARAM_STATIC_STRINGS | G_PARAM_EXPLICIT_NOTIFY);
  g_object_class_install_properties (object_class, N_PROPS, properties);

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
              const char     *secret,
              const char     *username)
{
  gboolean id_changed = g_strcmp0 (id, self->id) != 0;
  gboolean username_changed = g_strcmp0 (username, self->username) != 0;

  g_free (self->id);
  self->id = g_strdup (id);
  if (self->secret != NULL)
    memset (self->secret, 0, strlen (self->secret));
  g_free (self->secret);
  self->secret = g_strdup (secret);
  g_free (self->username);
  self->username = g_strdup (username);
  if (id_changed)
    g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_ID]);
  if (username_changed)
    g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_USERNAME]);
}

static void
stored_cb (GObject      *object,
           GAsyncResult *result,
           gpointer      user_data)
{
  g_autoptr(Pending) p = user_data;
  g_autoptr(GError) error = NULL;

  if (!secret_password_store_finish (result, &error))
    keyring_failed (p->self, error);
  else if (!pending_is_stale (p))
    p->self->in_keyring = TRUE;
}

/* Keeps the current identity in the keyring, in the background (it may wait on a prompt). */
static void
store_identity (MagpieIdentity *self)
{
  g_autofree char *label = NULL;

  if (self->keyring_broken)
    return;
  if (self->username != NULL)
    /* Translators: the name of the identity in the keyring; %s the account, %s the server */
    label = g_strdup_printf (_("Magpie account %s on %s"), self->username, self->server_url);
  else
    /* Translators: the name of the identity in the keyring; %s is the server's address */
    label = g_strdup_printf (_("Magpie identity for %s"), self->server_url);
  if (self->username != NULL)
    secret_password_store (magpie_identity_get_schema (), SECRET_COLLECTION_DEFAULT, label,
                           self->secret, NULL, stored_cb, pending_new (self),
                           "server", self->server_url, "identity-id", self->id,
                           "username", self->username, NULL);
  else
    secret_password_store (magpie_identity_get_schema (), SECRET_COLLECTION_DEFAULT, label,
                           self->secret, NULL, stored_cb, pending_new (self),
                           "server", self->server_url, "identity-id", self->id, NULL);
}

static void
created_cb (GObject      *object,
            GAsyncResult *result,
            gpointer      user_data)
{
  g_autoptr(Pending) p = user_data;
  MagpieIdentity *self = p->self;
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) body = NULL;
  const char *id;
  const char *secret;
  guint status;

  body = magpie_api_request_finish (result, &status, &error);
  if (pending_is_stale (p))
    return;
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
  set_identity (self, id, secret, NULL);
  /* The identity is usable now; keeping it may wait on a keyring prompt, so it is kept in
   * the background. */
  finish_all (self, NULL);
  store_identity (self);
}

static void
create_identity (MagpieIdentity *self)
{
  magpie_api_request_async (self->session, "POST", self->server_url, "/v1/identities", NULL,
                            "{}", NULL, created_cb, pending_new (self));
}

static void
retrieved_cb (GObject      *object,
              GAsyncResult *result,
              gpointer      user_data)
{
  g_autoptr(Pending) p = user_data;
  MagpieIdentity *self = p->self;
  g_autoptr(GError) error = NULL;
  g_autoptr(SecretValue) value = NULL;
  const char *text;

  value = secret_retrievable_retrieve_secret_finish (SECRET_RETRIEVABLE (object), result,
                                                     &error);
  if (pending_is_stale (p))
    return;
  text = value != NULL ? secret_value_get_text (value) : NULL;
  if (text == NULL)
    {
      if (error != NULL)
        keyring_failed (self, error);
      create_identity (self);
      return;
    }
  set_identity (self, p->id, text, p->username);
  self->in_keyring = TRUE;
  finish_all (self, NULL);
}

static void
searched_cb (GObject      *object,
             GAsyncResult *result,
             gpointer      user_data)
{
  g_autoptr(Pending) p = user_data;
  g_autoptr(GError) error = NULL;
  GList *items;
  g_autoptr(GHashTable) attributes = NULL;

  items = secret_password_search_finish (result, &error);
  if (pending_is_stale (p))
    {
      g_list_free_full (items, g_object_unref);
      return;
    }
  if (items == NULL)
    {
      if (error != NULL)
        keyring_failed (p->self, error);
      create_identity (p->self);
      return;
    }
  attributes = secret_retrievable_get_attributes (items->data);
  p->id = g_strdup (g_hash_table_lookup (attributes, "identity-id"));
  p->username = g_strdup (g_hash_table_lookup (attributes, "username"));
  secret_retrievable_retrieve_secret (items->data, NULL, retrieved_cb, g_steal_pointer (&p));
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
  self->generation++;
  set_identity (self, NULL, NULL, NULL);
  self->in_keyring = FALSE;
  g_ptr_array_add (self->waiting, g_steal_pointer (&task));

  if (self->keyring_broken || self->clearing > 0)
    create_identity (self);
  else
    secret_password_search (magpie_identity_get_schema (),
                            SECRET_SEARCH_LOAD_SECRETS | SECRET_SEARCH_UNLOCK, NULL,
                            searched_cb, pending_new (self), "server", server_url, NULL);
}

gboolean
magpie_identity_ensure_finish (MagpieIdentity  *self,
                               GAsyncResult    *result,
                               GError         **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  return g_task_propagate_boolean (G_TASK (result), error);
}

/* Signing in and out -------------------------------------------------------------------- */

/* The account signed in to on the current server, or NULL for a guest identity. */
const char *
magpie_identity_get_username (MagpieIdentity *self)
{
  g_return_val_if_fail (MAGPIE_IS_IDENTITY (self), NULL);
  return self->username;
}

static void
cleared_cb (GObject      *object,
            GAsyncResult *result,
            gpointer      user_data)
{
  g_autoptr(Pending) p = user_data;
  g_autoptr(GError) error = NULL;

  p->self->clearing--;
  if (!secret_password_clear_finish (result, &error) && error != NULL)
    keyring_failed (p->self, error);
  if (p->task != NULL)
    {
      /* Signed out: the next use of the server makes a new guest, at once if one is awaited. */
      g_task_return_boolean (p->task, TRUE);
      if (!pending_is_stale (p) && p->self->waiting->len > 0)
        create_identity (p->self);
      return;
    }
  if (!pending_is_stale (p))
    store_identity (p->self);
}

/* Replaces what the keyring holds for the current server with the current identity (or with
 * nothing, finishing @task, when signing out). */
static void
replace_in_keyring (MagpieIdentity *self,
                    GTask          *task)
{
  Pending *p = pending_new (self);

  p->task = task;
  self->in_keyring = FALSE;
  if (self->keyring_broken)
    {
      if (task != NULL)
        g_task_return_boolean (task, TRUE);
      pending_free (p);
      return;
    }
  self->clearing++;
  secret_password_clear (magpie_identity_get_schema (), NULL, cleared_cb, p,
                         "server", self->server_url, NULL);
}

static void
signed_in_cb (GObject      *object,
              GAsyncResult *result,
              gpointer      user_data)
{
  g_autoptr(Pending) p = user_data;
  MagpieIdentity *self = p->self;
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) body = NULL;
  const char *id;
  const char *secret;
  guint status;

  body = magpie_api_request_finish (result, &status, &error);
  if (body == NULL)
    {
      g_task_return_error (p->task, g_steal_pointer (&error));
      return;
    }
  id = magpie_api_get_string (body, "identity_id");
  secret = magpie_api_get_string (body, "secret");
  if ((status != SOUP_STATUS_OK && status != SOUP_STATUS_CREATED) || id == NULL ||
      secret == NULL)
    {
      g_autofree char *message = magpie_api_error_message (body, status);

      if (status == SOUP_STATUS_UNAUTHORIZED)
        error = g_error_new_literal (MAGPIE_CLIENT_ERROR, MAGPIE_CLIENT_ERROR_REFUSED,
                                     _("Wrong username or password"));
      else if (status == SOUP_STATUS_CONFLICT)
        error = g_error_new_literal (MAGPIE_CLIENT_ERROR, MAGPIE_CLIENT_ERROR_REFUSED,
                                     _("That username is taken"));
      else if (status == 429)
        error = g_error_new_literal (MAGPIE_CLIENT_ERROR, MAGPIE_CLIENT_ERROR_REFUSED,
                                     _("Too many attempts; try again in a minute"));
      else
        error = g_error_new (MAGPIE_CLIENT_ERROR, MAGPIE_CLIENT_ERROR_REFUSED,
                             /* Translators: %s is the server's reason */
                             _("The server refused: %s"), message);
      g_task_return_error (p->task, g_steal_pointer (&error));
      return;
    }
  if (g_strcmp0 (p->id, self->server_url) != 0)
    {
      g_task_return_new_error (p->task, G_IO_ERROR, G_IO_ERROR_CANCELLED,
                               _("The server address changed while signing in"));
      return;
    }
  /* Whatever was under way for the guest is answered with the account now. */
  self->generation++;
  set_identity (self, id, secret, p->username);
  finish_all (self, NULL);
  g_task_return_boolean (p->task, TRUE);
  replace_in_keyring (self, NULL);
}

/* Signs in to the account @username on @server_url (creating it first when @create_account),
 * which becomes this installation's identity there: the next credentials, uploads and the
 * event stream are the account's. The password goes to the server and is not kept. */
void
magpie_identity_sign_in_async (MagpieIdentity      *self,
                               const char          *server_url,
                               const char          *username,
                               const char          *password,
                               gboolean             create_account,
                               GCancellable        *cancellable,
                               GAsyncReadyCallback  callback,
                               gpointer             user_data)
{
  g_autoptr(JsonBuilder) builder = json_builder_new ();
  g_autoptr(JsonNode) root = NULL;
  g_autofree char *body = NULL;
  Pending *p;

  g_return_if_fail (MAGPIE_IS_IDENTITY (self));
  g_return_if_fail (server_url != NULL);
  g_return_if_fail (username != NULL && password != NULL);

  if (g_strcmp0 (server_url, self->server_url) != 0)
    {
      g_autoptr(GError) error = g_error_new_literal (G_IO_ERROR, G_IO_ERROR_CANCELLED,
                                                     _("The server address changed"));

      g_free (self->server_url);
      self->server_url = g_strdup (server_url);
      self->generation++;
      set_identity (self, NULL, NULL, NULL);
      finish_all (self, error);
    }
  p = pending_new (self);
  p->task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (p->task, magpie_identity_sign_in_async);
  p->id = g_strdup (server_url);   /* the server it is for */
  p->username = g_strdup (username);
  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "username");
  json_builder_add_string_value (builder, username);
  json_builder_set_member_name (builder, "password");
  json_builder_add_string_value (builder, password);
  json_builder_end_object (builder);
  root = json_builder_get_root (builder);
  body = json_to_string (root, FALSE);
  magpie_api_request_async (self->session, "POST", server_url,
                            create_account ? "/v1/accounts" : "/v1/sessions", NULL, body,
                            cancellable, signed_in_cb, p);
  memset (body, 0, strlen (body));
}

gboolean
magpie_identity_sign_in_finish (MagpieIdentity  *self,
                                GAsyncResult    *result,
                                GError         **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  return g_task_propagate_boolean (G_TASK (result), error);
}

/* Forgets the current identity (an account's or a guest's) on its server, in the keyring too;
 * the next use of the server makes a new guest identity. */
void
magpie_identity_sign_out_async (MagpieIdentity      *self,
                                GCancellable        *cancellable,
                                GAsyncReadyCallback  callback,
                                gpointer             user_data)
{
  GTask *task;

  g_return_if_fail (MAGPIE_IS_IDENTITY (self));

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, magpie_identity_sign_out_async);
  self->generation++;
  set_identity (self, NULL, NULL, NULL);
  if (self->server_url == NULL)
    {
      g_task_return_boolean (task, TRUE);
      g_object_unref (task);
      return;
    }
  replace_in_keyring (self, task);
}

gboolean
magpie_identity_sign_out_finish (MagpieIdentity  *self,
                                 GAsyncResult    *result,
                                 GError         **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  return g_task_propagate_boolean (G_TASK (result), error);
}
