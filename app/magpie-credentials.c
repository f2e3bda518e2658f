/* magpie-credentials.c - temporary S3 credentials from magpied, cached and refreshed
 *
 * One set is cached per server until MAGPIE_CREDENTIALS_MARGIN_S before it expires; callers
 * that ask while a fetch is under way share it. The secret access key is only ever in memory. */
#define G_LOG_DOMAIN "magpie-credentials"

#include "config.h"

#include "magpie-credentials.h"

#include <glib/gi18n.h>
#include <string.h>

#include "magpie-api.h"
#include "magpie-client-error.h"

G_DEFINE_BOXED_TYPE (MagpieS3Credentials, magpie_s3_credentials,
                     magpie_s3_credentials_ref, magpie_s3_credentials_unref)

MagpieS3Credentials *
magpie_s3_credentials_ref (MagpieS3Credentials *credentials)
{
  return g_atomic_rc_box_acquire (credentials);
}

static void
s3_credentials_clear (MagpieS3Credentials *c)
{
  if (c->secret_access_key != NULL)
    memset (c->secret_access_key, 0, strlen (c->secret_access_key));
  g_free (c->access_key_id);
  g_free (c->secret_access_key);
  g_free (c->session_token);
  g_free (c->api_token);
  g_free (c->endpoint);
  g_free (c->region);
  g_free (c->bucket);
  g_free (c->prefix);
  g_free (c->identity_id);
}

void
magpie_s3_credentials_unref (MagpieS3Credentials *credentials)
{
  g_atomic_rc_box_release_full (credentials, (GDestroyNotify) s3_credentials_clear);
}

struct _MagpieCredentials {
  GObject              parent_instance;

  SoupSession         *session;
  MagpieIdentity      *identity;
  MagpieS3Credentials *cached;
  char                *cached_url;
  char                *fetching_url;
  char                *fetching_id;   /* the identity the request under way is for */
  GPtrArray           *waiting;   /* GTask */
  guint                n_fetched;
};

G_DEFINE_FINAL_TYPE (MagpieCredentials, magpie_credentials, G_TYPE_OBJECT)

static void
magpie_credentials_dispose (GObject *object)
{
  MagpieCredentials *self = MAGPIE_CREDENTIALS (object);

  g_clear_object (&self->session);
  g_clear_object (&self->identity);
  g_clear_pointer (&self->cached, magpie_s3_credentials_unref);
  g_clear_pointer (&self->waiting, g_ptr_array_unref);

  G_OBJECT_CLASS (magpie_credentials_parent_class)->dispose (object);
}

static void
magpie_credentials_finalize (GObject *object)
{
  MagpieCredentials *self = MAGPIE_CREDENTIALS (object);

  g_free (self->cached_url);
  g_free (self->fetching_url);
  g_free (self->fetching_id);

  G_OBJECT_CLASS (magpie_credentials_parent_class)->finalize (object);
}

static void
magpie_credentials_class_init (MagpieCredentialsClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = magpie_credentials_dispose;
  object_class->finalize = magpie_credentials_finalize;
}

static void
magpie_credentials_init (MagpieCredentials *self)
{
  self->waiting = g_ptr_array_new_with_free_func (g_object_unref);
}

MagpieCredentials *
magpie_credentials_new (SoupSession    *session,
                        MagpieIdentity *identity)
{
  MagpieCredentials *self;

  g_return_val_if_fail (SOUP_IS_SESSION (session), NULL);
  g_return_val_if_fail (MAGPIE_IS_IDENTITY (identity), NULL);

  self = g_object_new (MAGPIE_TYPE_CREDENTIALS, NULL);
  self->session = g_object_ref (session);
  self->identity = g_object_ref (identity);
  /* Signed in or out: the cached set is another identity's. */
  g_signal_connect_object (identity, "notify::id", G_CALLBACK (magpie_credentials_invalidate),
                           self, G_CONNECT_SWAPPED);
  return self;
}

MagpieIdentity *
magpie_credentials_get_identity (MagpieCredentials *self)
{
  g_return_val_if_fail (MAGPIE_IS_CREDENTIALS (self), NULL);
  return self->identity;
}

/* How many times credentials were fetched from the server: for tests of the cache. */
guint
magpie_credentials_get_n_fetched (MagpieCredentials *self)
{
  g_return_val_if_fail (MAGPIE_IS_CREDENTIALS (self), 0);
  return self->n_fetched;
}

/* Drops the cached set, e.g. after the store answered ExpiredToken. */
void
magpie_credentials_invalidate (MagpieCredentials *self)
{
  g_return_if_fail (MAGPIE_IS_CREDENTIALS (self));
  g_clear_pointer (&self->cached, magpie_s3_credentials_unref);
}

static void
finish_all (MagpieCredentials *self,
            const GError      *error)
{
  g_autoptr(GPtrArray) waiting = g_steal_pointer (&self->waiting);

  self->waiting = g_ptr_array_new_with_free_func (g_object_unref);
  g_clear_pointer (&self->fetching_url, g_free);
  for (guint i = 0; i < waiting->len; i++)
    {
      GTask *task = waiting->pdata[i];

      if (error != NULL)
        g_task_return_error (task, g_error_copy (error));
      else
        g_task_return_pointer (task, magpie_s3_credentials_ref (self->cached),
                               (GDestroyNotify) magpie_s3_credentials_unref);
    }
}

static gboolean
parse_credentials (JsonNode             *body,
                   MagpieS3Credentials  *c)
{
  const char *expiration = magpie_api_get_string (body, "expiration");
  g_autoptr(GDateTime) when = expiration != NULL ? g_date_time_new_from_iso8601 (expiration,
                                                                                 NULL) : NULL;

  c->access_key_id = g_strdup (magpie_api_get_string (body, "access_key_id"));
  c->secret_access_key = g_strdup (magpie_api_get_string (body, "secret_access_key"));
  c->session_token = g_strdup (magpie_api_get_string (body, "session_token"));
  /* Servers before remote stores sent no api_token; their session token was the bearer. */
  c->api_token = g_strdup (magpie_api_get_string (body, "api_token"));
  if (c->api_token == NULL)
    c->api_token = g_strdup (c->session_token);
  c->endpoint = g_strdup (magpie_api_get_string (body, "endpoint"));
  c->region = g_strdup (magpie_api_get_string (body, "region"));
  c->bucket = g_strdup (magpie_api_get_string (body, "bucket"));
  c->prefix = g_strdup (magpie_api_get_string (body, "prefix"));
  c->expiration = when != NULL ? g_date_time_to_unix (when) : 0;
  return c->access_key_id != NULL && c->secret_access_key != NULL && c->session_token != NULL &&
         c->endpoint != NULL && c->region != NULL && c->bucket != NULL && c->prefix != NULL &&
         when != NULL;
}

static void ensured_cb (GObject      *object,
                        GAsyncResult *result,
                        gpointer      user_data);

static void
fetched_cb (GObject      *object,
            GAsyncResult *result,
            gpointer      user_data)
{
  g_autoptr(MagpieCredentials) self = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) body = NULL;
  g_autoptr(MagpieS3Credentials) fresh = NULL;
  guint status;

  body = magpie_api_request_finish (result, &status, &error);
  if (g_strcmp0 (self->fetching_id, magpie_identity_get_id (self->identity)) != 0)
    {
      /* Someone signed in or out meanwhile: these would be the old identity's. */
      magpie_identity_ensure_async (self->identity, self->fetching_url, NULL, ensured_cb,
                                    g_object_ref (self));
      return;
    }
  if (body == NULL)
    {
      finish_all (self, error);
      return;
    }
  fresh = g_atomic_rc_box_new0 (MagpieS3Credentials);
  if (status != SOUP_STATUS_OK || !parse_credentials (body, fresh))
    {
      g_autofree char *message = magpie_api_error_message (body, status);

      error = g_error_new (MAGPIE_CLIENT_ERROR, MAGPIE_CLIENT_ERROR_BAD_RESPONSE,
                           /* Translators: %s is the server's reason */
                           _("The server did not give upload permission: %s"), message);
      finish_all (self, error);
      return;
    }
  fresh->identity_id = g_strdup (magpie_identity_get_id (self->identity));
  self->n_fetched++;
  g_clear_pointer (&self->cached, magpie_s3_credentials_unref);
  self->cached = g_steal_pointer (&fresh);
  g_free (self->cached_url);
  self->cached_url = g_strdup (self->fetching_url);
  finish_all (self, NULL);
}

static void
ensured_cb (GObject      *object,
            GAsyncResult *result,
            gpointer      user_data)
{
  g_autoptr(MagpieCredentials) self = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonBuilder) builder = json_builder_new ();
  g_autoptr(JsonNode) root = NULL;
  g_autofree char *body = NULL;

  if (!magpie_identity_ensure_finish (MAGPIE_IDENTITY (object), result, &error))
    {
      finish_all (self, error);
      return;
    }
  g_free (self->fetching_id);
  self->fetching_id = g_strdup (magpie_identity_get_id (self->identity));
  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "identity_id");
  json_builder_add_string_value (builder, magpie_identity_get_id (self->identity));
  json_builder_set_member_name (builder, "secret");
  json_builder_add_string_value (builder, magpie_identity_get_secret (self->identity));
  json_builder_end_object (builder);
  root = json_builder_get_root (builder);
  body = json_to_string (root, FALSE);
  magpie_api_request_async (self->session, "POST", self->fetching_url, "/v1/credentials", NULL,
                            body, NULL, fetched_cb, g_object_ref (self));
  memset (body, 0, strlen (body));
}

/* Credentials for @server_url: the cached ones while they have more than the margin left,
 * else fresh ones (ensuring the identity first). */
void
magpie_credentials_get_async (MagpieCredentials   *self,
                              const char          *server_url,
                              GCancellable        *cancellable,
                              GAsyncReadyCallback  callback,
                              gpointer             user_data)
{
  g_autoptr(GTask) task = NULL;

  g_return_if_fail (MAGPIE_IS_CREDENTIALS (self));
  g_return_if_fail (server_url != NULL);

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, magpie_credentials_get_async);

  if (self->cached != NULL && g_strcmp0 (self->cached_url, server_url) == 0 &&
      self->cached->expiration - MAGPIE_CREDENTIALS_MARGIN_S > g_get_real_time () / G_USEC_PER_SEC)
    {
      g_task_return_pointer (task, magpie_s3_credentials_ref (self->cached),
                             (GDestroyNotify) magpie_s3_credentials_unref);
      return;
    }
  g_ptr_array_add (self->waiting, g_steal_pointer (&task));
  if (self->fetching_url != NULL)
    return;
  self->fetching_url = g_strdup (server_url);
  magpie_identity_ensure_async (self->identity, server_url, NULL, ensured_cb,
                                g_object_ref (self));
}

MagpieS3Credentials *
magpie_credentials_get_finish (MagpieCredentials  *self,
                               GAsyncResult       *result,
                               GError            **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  return g_task_propagate_pointer (G_TASK (result), error);
}
