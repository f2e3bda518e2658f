/* magpie-models.c - the offline photo model: the bundled one, or a newer one from the server
 *
 * Photos are tagged on this device by the bundled model until the server offers another: its
 * GET /v1/models listing names the model's SHA-256, size, labels and how it prepares images.
 * When that SHA-256 is not the one in use, the model is downloaded on a worker thread into
 * <data dir>/models/photos-<sha256>.onnx, checked against the listed size and SHA-256, given a
 * sidecar (photos-<sha256>.json) made of the listing's preparation and labels, loaded once to
 * be sure the engine can run it, and only then named in photos.current and handed to the
 * library's tagger. The server's model is the reference: the point of the offline model is to
 * tag as the server would, so a server that goes back to the bundled model takes the app back
 * too. The bundled model stays where it is, and the tagger falls back to it if the downloaded
 * one cannot be used. Nothing here runs while the connection is not online.
 */
#define G_LOG_DOMAIN "magpie-models"

#include "config.h"

#include "magpie-models.h"

#include <errno.h>
#include <glib/gi18n.h>
#include <glib/gstdio.h>
#include <string.h>

#include "magpie-api.h"
#include "magpie-client-error.h"
#include "magpie-tagger.h"
#include "nn-image.h"
#include "nn.h"

#define MAGPIE_MODELS_CURRENT "photos.current"
/* Reads of a model being downloaded or hashed. */
#define MAGPIE_MODELS_CHUNK (64 * 1024)

struct _MagpieModels {
  GObject                parent_instance;

  SoupSession           *session;
  MagpieConnection      *connection;
  MagpieCredentials     *credentials;
  MagpieLibrary         *library;
  char                  *models_dir;
  char                  *bundled;
  char                  *bundled_sha256;  /* NULL until a refresh has hashed it */
  char                  *photo_model;     /* in use: a downloaded one, or the bundled one */
  char                  *photo_sha256;    /* of a downloaded one in use, else NULL */
  GCancellable          *cancellable;     /* the refresh under way, NULL when none */
  GPtrArray             *waiting;         /* GTask: refresh calls that end with it */
  MagpieConnectionState  last_state;
  guint                  timer_id;
  guint                  n_downloads;
};

G_DEFINE_FINAL_TYPE (MagpieModels, magpie_models, G_TYPE_OBJECT)

enum {
  PROP_0,
  PROP_PHOTO_MODEL,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

/* The thread's part --------------------------------------------------------------------- */

typedef struct {
  char     *server_url;
  char     *token;
  char     *path;          /* the listing's url, e.g. /v1/models/photos */
  char     *sha256;
  gint64    size;
  char     *sidecar_json;  /* the sidecar to write beside it */
  char     *models_dir;
  char     *bundled;
  char     *bundled_sha256;
  /* out */
  char     *installed;     /* the model to use; NULL: the bundled one */
  gboolean  downloaded;
} InstallJob;

static void
install_job_free (InstallJob *job)
{
  g_free (job->server_url);
  g_free (job->token);
  g_free (job->path);
  g_free (job->sha256);
  g_free (job->sidecar_json);
  g_free (job->models_dir);
  g_free (job->bundled);
  g_free (job->bundled_sha256);
  g_free (job->installed);
  g_free (job);
}

/* The SHA-256 of the file at @path, in hex, read in chunks. */
static char *
file_sha256 (const char    *path,
             GCancellable  *cancellable,
             GError       **error)
{
  g_autoptr(GFile) file = g_file_new_for_path (path);
  g_autoptr(GFileInputStream) in = g_file_read (file, cancellable, error);
  g_autoptr(GChecksum) checksum = g_checksum_new (G_CHECKSUM_SHA256);
  g_autofree guchar *buffer = NULL;
  gssize n;

  if (in == NULL)
    return NULL;
  buffer = g_malloc (MAGPIE_MODELS_CHUNK);
  while ((n = g_input_stream_read (G_INPUT_STREAM (in), buffer, MAGPIE_MODELS_CHUNK,
                                   cancellable, error)) > 0)
    g_checksum_update (checksum, buffer, n);
  if (n < 0)
    return NULL;
  return g_strdup (g_checksum_get_string (checksum));
}

static char *
model_path (const char *models_dir,
            const char *sha256,
            const char *suffix)
{
  g_autofree char *name = g_strdup_printf ("photos-%s%s", sha256, suffix);

  return g_build_filename (models_dir, name, NULL);
}

/* Downloads the model into @part, refusing more than the listed size and checking its
 * SHA-256; @part is removed when anything is wrong. */
static gboolean
download (InstallJob    *job,
          const char    *part,
          GCancellable  *cancellable,
          GError       **error)
{
  g_autoptr(SoupSession) session = NULL;
  g_autoptr(SoupMessage) message = NULL;
  g_autoptr(GInputStream) in = NULL;
  g_autoptr(GFileOutputStream) out = NULL;
  g_autoptr(GFile) file = g_file_new_for_path (part);
  g_autoptr(GChecksum) checksum = g_checksum_new (G_CHECKSUM_SHA256);
  g_autofree guchar *buffer = g_malloc (MAGPIE_MODELS_CHUNK);
  g_autofree char *url = NULL;
  g_autofree char *bearer = NULL;
  gint64 total = 0;
  gssize n;
  guint status;

  /* This thread's own session, used by this thread only, as libsoup asks. */
  session = soup_session_new_with_options ("user-agent", "magpie/" PACKAGE_VERSION,
                                           "timeout", 60, NULL);
  url = g_strconcat (job->server_url,
                     g_str_has_suffix (job->server_url, "/") ? job->path + 1 : job->path, NULL);
  message = soup_message_new (SOUP_METHOD_GET, url);
  if (message == NULL)
    {
      g_set_error (error, MAGPIE_CLIENT_ERROR, MAGPIE_CLIENT_ERROR_BAD_RESPONSE,
                   _("The server named a model address Magpie cannot use"));
      return FALSE;
    }
  bearer = g_strconcat ("Bearer ", job->token, NULL);
  soup_message_headers_replace (soup_message_get_request_headers (message), "Authorization",
                                bearer);
  in = soup_session_send (session, message, cancellable, error);
  if (in == NULL)
    return FALSE;
  status = soup_message_get_status (message);
  if (status != SOUP_STATUS_OK)
    {
      g_set_error (error, MAGPIE_CLIENT_ERROR, MAGPIE_CLIENT_ERROR_BAD_RESPONSE,
                   /* Translators: %u is an HTTP status code */
                   _("The server did not hand out its photo model (HTTP %u)"), status);
      return FALSE;
    }

  out = g_file_replace (file, NULL, FALSE, G_FILE_CREATE_REPLACE_DESTINATION, cancellable,
                        error);
  if (out == NULL)
    return FALSE;
  while ((n = g_input_stream_read (in, buffer, MAGPIE_MODELS_CHUNK, cancellable, error)) > 0)
    {
      total += n;
      if (total > job->size)
        {
          g_set_error (error, MAGPIE_CLIENT_ERROR, MAGPIE_CLIENT_ERROR_BAD_RESPONSE,
                       _("The server’s photo model is larger than its listing says"));
          n = -1;
          break;
        }
      g_checksum_update (checksum, buffer, n);
      if (!g_output_stream_write_all (G_OUTPUT_STREAM (out), buffer, n, NULL, cancellable,
                                      error))
        {
          n = -1;
          break;
        }
    }
  if (n == 0 && total != job->size)
    {
      g_set_error (error, MAGPIE_CLIENT_ERROR, MAGPIE_CLIENT_ERROR_BAD_RESPONSE,
                   _("The server’s photo model is smaller than its listing says"));
      n = -1;
    }
  if (n == 0 && g_strcmp0 (g_checksum_get_string (checksum), job->sha256) != 0)
    {
      g_set_error (error, MAGPIE_CLIENT_ERROR, MAGPIE_CLIENT_ERROR_BAD_RESPONSE,
                   _("The downloaded photo model does not match its SHA-256 (%s)"),
                   g_checksum_get_string (checksum));
      n = -1;
    }
  if (n == 0 && !g_output_stream_close (G_OUTPUT_STREAM (out), cancellable, error))
    n = -1;
  if (n < 0)
    {
      g_output_stream_close (G_OUTPUT_STREAM (out), NULL, NULL);
      g_unlink (part);
      return FALSE;
    }
  return TRUE;
}

/* Whether the engine runs the model and the sidecar reads: a model this app cannot use is
 * never made the current one. */
static gboolean
check_usable (const char  *model,
              const char  *sidecar,
              GError     **error)
{
  g_autoptr(NnModel) nn = nn_model_new_from_file (model, error);
  g_autoptr(NnImageConfig) config = nn_image_config_new ();

  if (nn == NULL)
    return FALSE;
  return nn_image_config_load (config, sidecar, error);
}

/* Removes downloaded models other than the one with @keep (NULL: all of them). */
static void
remove_others (const char *models_dir,
               const char *keep)
{
  g_autoptr(GDir) dir = g_dir_open (models_dir, 0, NULL);
  const char *name;

  while (dir != NULL && (name = g_dir_read_name (dir)) != NULL)
    if (g_str_has_prefix (name, "photos-") && (keep == NULL || strstr (name, keep) == NULL))
      {
        g_autofree char *path = g_build_filename (models_dir, name, NULL);

        if (g_unlink (path) != 0)
          g_debug ("Cannot remove %s: %s", path, g_strerror (errno));
      }
}

static void
install_thread (GTask        *task,
                gpointer      source_object,
                gpointer      task_data,
                GCancellable *cancellable)
{
  InstallJob *job = task_data;
  g_autofree char *target = model_path (job->models_dir, job->sha256, ".onnx");
  g_autofree char *sidecar = model_path (job->models_dir, job->sha256, ".json");
  g_autofree char *part = model_path (job->models_dir, job->sha256, ".onnx.part");
  g_autofree char *current = g_build_filename (job->models_dir, MAGPIE_MODELS_CURRENT, NULL);
  g_autofree char *have = NULL;
  GError *error = NULL;

  if (job->bundled_sha256 == NULL && job->bundled != NULL)
    job->bundled_sha256 = file_sha256 (job->bundled, cancellable, NULL);
  /* The server went back to the bundled model: so does the app. */
  if (g_strcmp0 (job->bundled_sha256, job->sha256) == 0)
    {
      if (g_unlink (current) != 0 && errno != ENOENT)
        g_debug ("Cannot remove %s: %s", current, g_strerror (errno));
      remove_others (job->models_dir, NULL);
      g_task_return_boolean (task, TRUE);
      return;
    }

  if (g_mkdir_with_parents (job->models_dir, 0700) != 0)
    {
      int saved = errno;

      g_task_return_new_error (task, G_IO_ERROR, g_io_error_from_errno (saved),
                               "%s: %s", job->models_dir, g_strerror (saved));
      return;
    }
  /* Downloaded before (a refresh cut short after the download, say): no need again. */
  if (g_file_test (target, G_FILE_TEST_IS_REGULAR))
    have = file_sha256 (target, cancellable, NULL);
  if (g_strcmp0 (have, job->sha256) != 0)
    {
      if (!download (job, part, cancellable, &error) ||
          !g_file_set_contents (sidecar, job->sidecar_json, -1, &error) ||
          !check_usable (part, sidecar, &error))
        {
          g_unlink (part);
          g_task_return_error (task, error);
          return;
        }
      if (g_rename (part, target) != 0)
        {
          int saved = errno;

          g_unlink (part);
          g_task_return_new_error (task, G_IO_ERROR, g_io_error_from_errno (saved),
                                   "%s: %s", target, g_strerror (saved));
          return;
        }
      job->downloaded = TRUE;
    }
  else if (!g_file_set_contents (sidecar, job->sidecar_json, -1, &error) ||
           !check_usable (target, sidecar, &error))
    {
      g_task_return_error (task, error);
      return;
    }
  /* Named the current one last, atomically: a crash before this leaves the old one in use. */
  if (!g_file_set_contents (current, job->sha256, -1, &error))
    {
      g_task_return_error (task, error);
      return;
    }
  remove_others (job->models_dir, job->sha256);
  job->installed = g_steal_pointer (&target);
  g_task_return_boolean (task, TRUE);
}

/* The main thread's part ------------------------------------------------------------------ */

/* Tags with @path from now on, the bundled model standing by should it not load. */
static void
use_model (MagpieModels *self,
           const char   *path,
           const char   *sha256)
{
  g_autoptr(MagpieTagger) tagger = NULL;

  g_free (self->photo_sha256);
  self->photo_sha256 = g_strdup (sha256);
  if (g_strcmp0 (self->photo_model, path) == 0)
    return;
  g_free (self->photo_model);
  self->photo_model = g_strdup (path);
  tagger = magpie_tagger_new (path);
  if (self->bundled != NULL && g_strcmp0 (path, self->bundled) != 0)
    magpie_tagger_set_fallback (tagger, self->bundled);
  magpie_library_set_tagger (self->library, tagger);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_PHOTO_MODEL]);
}

/* Ends the refresh under way and every call waiting on it, with @error or success. */
static void
finish_all (MagpieModels *self,
            const GError *error)
{
  g_autoptr(GPtrArray) waiting = g_steal_pointer (&self->waiting);

  self->waiting = g_ptr_array_new_with_free_func (g_object_unref);
  g_clear_object (&self->cancellable);
  for (guint i = 0; i < waiting->len; i++)
    if (error != NULL)
      g_task_return_error (waiting->pdata[i], g_error_copy (error));
    else
      g_task_return_boolean (waiting->pdata[i], TRUE);
}

static void
installed_cb (GObject      *object,
              GAsyncResult *result,
              gpointer      user_data)
{
  g_autoptr(MagpieModels) self = user_data;
  InstallJob *job = g_task_get_task_data (G_TASK (result));
  g_autoptr(GError) error = NULL;

  if (!g_task_propagate_boolean (G_TASK (result), &error))
    {
      finish_all (self, error);
      return;
    }
  if (self->bundled_sha256 == NULL)
    self->bundled_sha256 = g_strdup (job->bundled_sha256);
  if (job->downloaded)
    {
      self->n_downloads++;
      g_info ("Downloaded the server's photo model %s", job->sha256);
    }
  if (job->installed != NULL)
    use_model (self, job->installed, job->sha256);
  else if (self->bundled != NULL)
    use_model (self, self->bundled, NULL);
  finish_all (self, NULL);
}

/* The sidecar for the listed model: the server's preparation and labels. */
static char *
sidecar_for (JsonObject *model)
{
  g_autoptr(JsonNode) root = json_node_new (JSON_NODE_OBJECT);
  JsonObject *sidecar = json_object_new ();
  JsonObject *preprocessing = json_object_get_object_member (model, "preprocessing");
  g_autoptr(GList) members = json_object_get_members (preprocessing);

  for (GList *l = members; l != NULL; l = l->next)
    if (!g_str_equal (l->data, "labels"))
      json_object_set_member (sidecar, l->data,
                              json_node_copy (json_object_get_member (preprocessing, l->data)));
  json_object_set_member (sidecar, "labels",
                          json_node_copy (json_object_get_member (model, "labels")));
  json_node_take_object (root, sidecar);
  return json_to_string (root, TRUE);
}

/* The listing's photo model when it is one Magpie can download and use, else NULL. */
static JsonObject *
find_photo_model (JsonNode *body)
{
  JsonArray *models;

  if (body == NULL || !JSON_NODE_HOLDS_OBJECT (body) ||
      !json_object_has_member (json_node_get_object (body), "models") ||
      !JSON_NODE_HOLDS_ARRAY (json_object_get_member (json_node_get_object (body), "models")))
    return NULL;
  models = json_object_get_array_member (json_node_get_object (body), "models");
  for (guint i = 0; i < json_array_get_length (models); i++)
    {
      JsonNode *node = json_array_get_element (models, i);
      JsonObject *model;
      const char *sha256;
      const char *url;
      gint64 size;

      if (!JSON_NODE_HOLDS_OBJECT (node))
        continue;
      model = json_node_get_object (node);
      if (g_strcmp0 (json_object_get_string_member_with_default (model, "name", NULL),
                     "photos") != 0)
        continue;
      sha256 = json_object_get_string_member_with_default (model, "sha256", "");
      url = json_object_get_string_member_with_default (model, "url", "");
      size = json_object_get_int_member_with_default (model, "size", 0);
      if (strlen (sha256) != 64 || strspn (sha256, "0123456789abcdef") != 64 ||
          url[0] != '/' || size <= 0 || size > MAGPIE_MODELS_MAX_BYTES ||
          !json_object_has_member (model, "labels") ||
          !JSON_NODE_HOLDS_ARRAY (json_object_get_member (model, "labels")) ||
          json_array_get_length (json_object_get_array_member (model, "labels")) == 0 ||
          !json_object_has_member (model, "preprocessing") ||
          !JSON_NODE_HOLDS_OBJECT (json_object_get_member (model, "preprocessing")))
        {
          g_debug ("The server's photo model is not one this app can take");
          return NULL;
        }
      return model;
    }
  return NULL;
}

typedef struct {
  MagpieModels        *self;
  MagpieS3Credentials *creds;
  char                *server_url;
} Refresh;

static void
refresh_free (Refresh *r)
{
  g_object_unref (r->self);
  g_clear_pointer (&r->creds, magpie_s3_credentials_unref);
  g_free (r->server_url);
  g_free (r);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Refresh, refresh_free)

static void
listed_cb (GObject      *object,
           GAsyncResult *result,
           gpointer      user_data)
{
  g_autoptr(Refresh) r = user_data;
  MagpieModels *self = r->self;
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) body = NULL;
  g_autoptr(GTask) task = NULL;
  JsonObject *model;
  InstallJob *job;
  guint status = 0;

  body = magpie_api_request_finish (result, &status, &error);
  if (body == NULL || status != SOUP_STATUS_OK)
    {
      if (error == NULL)
        error = g_error_new (MAGPIE_CLIENT_ERROR, MAGPIE_CLIENT_ERROR_BAD_RESPONSE,
                             /* Translators: %u is an HTTP status code */
                             _("The server did not list its models (HTTP %u)"), status);
      finish_all (self, error);
      return;
    }
  model = find_photo_model (body);
  /* None offered, or the one in use already. */
  if (model == NULL ||
      g_strcmp0 (json_object_get_string_member (model, "sha256"),
                 self->photo_sha256 != NULL ? self->photo_sha256 : self->bundled_sha256) == 0)
    {
      finish_all (self, NULL);
      return;
    }

  job = g_new0 (InstallJob, 1);
  job->server_url = g_strdup (r->server_url);
  job->token = g_strdup (r->creds->api_token);
  job->path = g_strdup (json_object_get_string_member (model, "url"));
  job->sha256 = g_strdup (json_object_get_string_member (model, "sha256"));
  job->size = json_object_get_int_member (model, "size");
  job->sidecar_json = sidecar_for (model);
  job->models_dir = g_strdup (self->models_dir);
  job->bundled = g_strdup (self->bundled);
  job->bundled_sha256 = g_strdup (self->bundled_sha256);
  task = g_task_new (self, self->cancellable, installed_cb, g_object_ref (self));
  g_task_set_source_tag (task, listed_cb);
  g_task_set_task_data (task, job, (GDestroyNotify) install_job_free);
  g_task_set_return_on_cancel (task, FALSE);
  g_task_run_in_thread (task, install_thread);
}

static void
credentials_cb (GObject      *object,
                GAsyncResult *result,
                gpointer      user_data)
{
  g_autoptr(Refresh) r = user_data;
  g_autoptr(GError) error = NULL;
  MagpieModels *self;

  r->creds = magpie_credentials_get_finish (MAGPIE_CREDENTIALS (object), result, &error);
  if (r->creds == NULL)
    {
      finish_all (r->self, error);
      return;
    }
  self = r->self;
  magpie_api_request_async (self->session, "GET", r->server_url, "/v1/models",
                            r->creds->api_token, NULL, self->cancellable, listed_cb, r);
  r = NULL;  /* listed_cb's now */
}

/* Looks at the server's listing and, when it offers a photo model other than the one in use,
 * downloads, checks and switches to it (or back to the bundled one). Calls made while one is
 * under way end with it. Fails at once when the connection is not online. */
void
magpie_models_refresh_async (MagpieModels        *self,
                             GCancellable        *cancellable,
                             GAsyncReadyCallback  callback,
                             gpointer             user_data)
{
  g_autoptr(GTask) task = NULL;
  Refresh *r;

  g_return_if_fail (MAGPIE_IS_MODELS (self));

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, magpie_models_refresh_async);
  if (magpie_connection_get_state (self->connection) != MAGPIE_CONNECTION_STATE_ONLINE)
    {
      g_task_return_new_error (task, G_IO_ERROR, G_IO_ERROR_NETWORK_UNREACHABLE,
                               _("The server cannot be reached"));
      return;
    }
  g_ptr_array_add (self->waiting, g_steal_pointer (&task));
  if (self->cancellable != NULL)
    return;

  self->cancellable = g_cancellable_new ();
  r = g_new0 (Refresh, 1);
  r->self = g_object_ref (self);
  r->server_url = g_strdup (magpie_connection_get_server_url (self->connection));
  magpie_credentials_get_async (self->credentials, r->server_url, self->cancellable,
                                credentials_cb, r);
}

gboolean
magpie_models_refresh_finish (MagpieModels  *self,
                              GAsyncResult  *result,
                              GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  return g_task_propagate_boolean (G_TASK (result), error);
}

static void
refreshed_cb (GObject      *object,
              GAsyncResult *result,
              gpointer      user_data)
{
  g_autoptr(GError) error = NULL;

  if (!magpie_models_refresh_finish (MAGPIE_MODELS (object), result, &error) &&
      !g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED) &&
      !g_error_matches (error, G_IO_ERROR, G_IO_ERROR_NETWORK_UNREACHABLE))
    g_message ("Cannot refresh the offline photo model: %s", error->message);
}

static gboolean
timer_cb (gpointer user_data)
{
  magpie_models_refresh_async (user_data, NULL, refreshed_cb, NULL);
  return G_SOURCE_CONTINUE;
}

static void
state_changed_cb (MagpieModels *self)
{
  MagpieConnectionState state = magpie_connection_get_state (self->connection);
  MagpieConnectionState last = self->last_state;

  self->last_state = state;
  if (state == MAGPIE_CONNECTION_STATE_ONLINE && last != MAGPIE_CONNECTION_STATE_ONLINE)
    {
      magpie_models_refresh_async (self, NULL, refreshed_cb, NULL);
      g_clear_handle_id (&self->timer_id, g_source_remove);
      self->timer_id = g_timeout_add_seconds (MAGPIE_MODELS_REFRESH_INTERVAL_S, timer_cb, self);
    }
  else if (state != MAGPIE_CONNECTION_STATE_ONLINE)
    {
      /* Off the network means off it, downloads included; the next connection resumes. */
      g_cancellable_cancel (self->cancellable);
      g_clear_handle_id (&self->timer_id, g_source_remove);
    }
}

static void
magpie_models_dispose (GObject *object)
{
  MagpieModels *self = MAGPIE_MODELS (object);

  g_cancellable_cancel (self->cancellable);
  g_clear_handle_id (&self->timer_id, g_source_remove);
  g_clear_object (&self->session);
  g_clear_object (&self->connection);
  g_clear_object (&self->credentials);
  g_clear_object (&self->library);

  G_OBJECT_CLASS (magpie_models_parent_class)->dispose (object);
}

static void
magpie_models_finalize (GObject *object)
{
  MagpieModels *self = MAGPIE_MODELS (object);

  g_clear_object (&self->cancellable);
  g_ptr_array_unref (self->waiting);
  g_free (self->models_dir);
  g_free (self->bundled);
  g_free (self->bundled_sha256);
  g_free (self->photo_model);
  g_free (self->photo_sha256);

  G_OBJECT_CLASS (magpie_models_parent_class)->finalize (object);
}

static void
magpie_models_get_property (GObject    *object,
                            guint       prop_id,
                            GValue     *value,
                            GParamSpec *pspec)
{
  MagpieModels *self = MAGPIE_MODELS (object);

  switch (prop_id)
    {
    case PROP_PHOTO_MODEL:
      g_value_set_string (value, self->photo_model);
      break;

    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
magpie_models_class_init (MagpieModelsClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = magpie_models_dispose;
  object_class->finalize = magpie_models_finalize;
  object_class->get_property = magpie_models_get_property;

  properties[PROP_PHOTO_MODEL] =
    g_param_spec_string ("photo-model", NULL, NULL,
                         NULL,
                         G_PARAM_READABLE | G_PARAM_STATIC_STRINGS | G_PARAM_EXPLICIT_NOTIFY);

  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void
magpie_models_init (MagpieModels *self)
{
  self->waiting = g_ptr_array_new_with_free_func (g_object_unref);
}

/* The downloaded model named current in @models_dir, if its files are there (a few bytes read
 * at start-up: the window does not wait on it). */
static char *
read_current (const char  *models_dir,
              char       **sha256)
{
  g_autofree char *pointer = g_build_filename (models_dir, MAGPIE_MODELS_CURRENT, NULL);
  g_autofree char *contents = NULL;
  g_autofree char *model = NULL;
  g_autofree char *sidecar = NULL;

  if (!g_file_get_contents (pointer, &contents, NULL, NULL))
    return NULL;
  g_strstrip (contents);
  if (strlen (contents) != 64 || strspn (contents, "0123456789abcdef") != 64)
    return NULL;
  model = model_path (models_dir, contents, ".onnx");
  sidecar = model_path (models_dir, contents, ".json");
  if (!g_file_test (model, G_FILE_TEST_IS_REGULAR) ||
      !g_file_test (sidecar, G_FILE_TEST_IS_REGULAR))
    return NULL;
  *sha256 = g_steal_pointer (&contents);
  return g_steal_pointer (&model);
}

/* Chooses the photo model for @library's tagger now (the one downloaded last, else @bundled,
 * which may be NULL) and keeps it current from the server whenever @connection is online.
 * Downloads live in @data_dir/models. */
MagpieModels *
magpie_models_new (SoupSession       *session,
                   MagpieConnection  *connection,
                   MagpieCredentials *credentials,
                   MagpieLibrary     *library,
                   const char        *data_dir,
                   const char        *bundled)
{
  MagpieModels *self;
  g_autofree char *current = NULL;
  g_autofree char *sha256 = NULL;

  g_return_val_if_fail (SOUP_IS_SESSION (session), NULL);
  g_return_val_if_fail (MAGPIE_IS_CONNECTION (connection), NULL);
  g_return_val_if_fail (MAGPIE_IS_CREDENTIALS (credentials), NULL);
  g_return_val_if_fail (MAGPIE_IS_LIBRARY (library), NULL);
  g_return_val_if_fail (data_dir != NULL, NULL);

  self = g_object_new (MAGPIE_TYPE_MODELS, NULL);
  self->session = g_object_ref (session);
  self->connection = g_object_ref (connection);
  self->credentials = g_object_ref (credentials);
  self->library = g_object_ref (library);
  self->models_dir = g_build_filename (data_dir, "models", NULL);
  self->bundled = g_strdup (bundled);

  current = read_current (self->models_dir, &sha256);
  if (current != NULL)
    use_model (self, current, sha256);
  else if (bundled != NULL)
    use_model (self, bundled, NULL);
  else
    g_info ("No photo model found; photos are tagged by the server only");

  self->last_state = MAGPIE_CONNECTION_STATE_UNKNOWN;
  g_signal_connect_object (connection, "notify::state", G_CALLBACK (state_changed_cb), self,
                           G_CONNECT_SWAPPED);
  state_changed_cb (self);
  return self;
}

/* The photo model the library's tagger uses, or NULL when there is none at all. */
const char *
magpie_models_get_photo_model (MagpieModels *self)
{
  g_return_val_if_fail (MAGPIE_IS_MODELS (self), NULL);
  return self->photo_model;
}

const char *
magpie_models_get_bundled (MagpieModels *self)
{
  g_return_val_if_fail (MAGPIE_IS_MODELS (self), NULL);
  return self->bundled;
}

/* How many models were downloaded: for tests that check an unchanged one is not. */
guint
magpie_models_get_n_downloads (MagpieModels *self)
{
  g_return_val_if_fail (MAGPIE_IS_MODELS (self), 0);
  return self->n_downloads;
}
