/* test-live.c - the app keeps up with a real magpied that changes under it: the offline photo
 * model follows the server's (downloaded, checked, used, and dropped again), and the event
 * stream survives a restart of the server, resuming with Last-Event-ID
 */
#include "config.h"

#include <signal.h>
#include <string.h>

#include "app-test-util.h"
#include "magpie-outbox.h"
#include "magpie-tagger.h"

#define WITHIN_S 60

static MagpieApplication *app;
static char *home;

static MagpieWindow *
main_window (void)
{
  g_application_activate (G_APPLICATION (app));
  return MAGPIE_WINDOW (gtk_application_get_active_window (GTK_APPLICATION (app)));
}

static double
within_ms (void)
{
  return WITHIN_S * 1000 * mp_test_slowdown ();
}

static gboolean
is_online (gpointer user_data)
{
  return magpie_connection_get_state (user_data) == MAGPIE_CONNECTION_STATE_ONLINE;
}

static gboolean
is_not_online (gpointer user_data)
{
  return magpie_connection_get_state (user_data) != MAGPIE_CONNECTION_STATE_ONLINE;
}

static gboolean
is_streaming (gpointer user_data)
{
  return magpie_events_get_connected (user_data);
}

static gboolean
is_not_streaming (gpointer user_data)
{
  return !magpie_events_get_connected (user_data);
}

static gboolean
has_tags (gpointer user_data)
{
  GPtrArray *tags = magpie_photo_get_tags (user_data);

  return tags->len > 0;
}

static gboolean
has_server_tags (gpointer user_data)
{
  GPtrArray *tags = magpie_photo_get_tags (user_data);

  return magpie_photo_get_state (user_data) == MAGPIE_PHOTO_STATE_TAGGED && tags->len > 0 &&
         ((MagpieTag *) tags->pdata[0])->source == MAGPIE_TAG_SOURCE_SERVER;
}

static char *
file_sha256 (const char *path)
{
  g_autofree char *contents = NULL;
  gsize length;

  g_assert_true (g_file_get_contents (path, &contents, &length, NULL));
  return g_compute_checksum_for_data (G_CHECKSUM_SHA256, (const guchar *) contents, length);
}

/* Drops one shared photo on the Gallery and returns it once imported (not a reference). */
static MagpiePhoto *
drop_one (const char *name)
{
  g_autofree char *path = mp_test_shared_data (name);
  g_autoptr(GFile) file = g_file_new_for_path (path);
  g_autofree char *sha256 = file_sha256 (path);
  MagpieWindow *window = main_window ();
  MagpiePhoto *photo;

  app_test_drop_files (window, &file, 1);
  g_assert_true (app_test_wait (app_test_imports_done, magpie_window_get_gallery_page (window),
                                60000));
  photo = magpie_library_find_by_sha256 (magpie_application_get_library (app), sha256);
  g_assert_nonnull (photo);
  return photo;
}

static void
set_work_offline (gboolean work_offline)
{
  g_autoptr(GSettings) settings = g_settings_new (APPLICATION_ID);

  g_settings_set_boolean (settings, "work-offline", work_offline);
}

/* Model refresh ---------------------------------------------------------------------------- */

static gboolean
model_is_not (gpointer user_data)
{
  const char *path = magpie_models_get_photo_model (magpie_application_get_models (app));

  return g_strcmp0 (path, user_data) != 0;
}

static gboolean
have_result (gpointer user_data)
{
  return *(GAsyncResult **) user_data != NULL;
}

static void
result_cb (GObject      *object,
           GAsyncResult *result,
           gpointer      user_data)
{
  *(GAsyncResult **) user_data = g_object_ref (result);
}

static void
refresh (MagpieModels *models)
{
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GError) error = NULL;

  magpie_models_refresh_async (models, NULL, result_cb, &result);
  g_assert_true (app_test_wait (have_result, &result, within_ms ()));
  g_assert_true (magpie_models_refresh_finish (models, result, &error));
  g_assert_no_error (error);
}

static gboolean
tags_done (gpointer user_data)
{
  return *(GPtrArray **) user_data != NULL;
}

static void
tags_cb (GObject      *object,
         GAsyncResult *result,
         gpointer      user_data)
{
  g_autoptr(GError) error = NULL;

  *(GPtrArray **) user_data = magpie_tagger_tag_finish (MAGPIE_TAGGER (object), result, &error);
  g_assert_no_error (error);
}

/* What @tagger makes of the image at @path. */
static GPtrArray *
tag_with (MagpieTagger *tagger,
          const char   *path)
{
  g_autoptr(GFile) file = g_file_new_for_path (path);
  GPtrArray *tags = NULL;

  magpie_tagger_tag_async (tagger, file, NULL, tags_cb, &tags);
  g_assert_true (app_test_wait (tags_done, &tags, within_ms ()));
  return tags;
}

static gboolean
is_label_of (const char        *label,
             const char * const *labels)
{
  for (guint i = 0; labels[i] != NULL; i++)
    if (g_str_equal (label, labels[i]))
      return TRUE;
  return FALSE;
}

static void
test_model_refresh (void)
{
  g_autofree char *server_dir = mp_test_make_tmpdir ("magpied-models");
  g_autofree char *model = mp_test_photo_model (server_dir);
  g_autofree char *cat = mp_test_shared_data ("photos/tabby_caffe.jpg");
  const char *args[] = { "--photo-model", model, NULL };
  const char *cifar[] = { "airplane", "automobile", "bird", "cat", "deer", "dog", "frog",
                          "horse", "ship", "truck", NULL };
  g_autoptr(AppTestServer) server = NULL;
  g_autoptr(GSettings) settings = g_settings_new (APPLICATION_ID);
  g_autoptr(GError) error = NULL;
  g_autofree char *expected_sha = NULL;
  g_autofree char *downloaded = NULL;
  g_autofree char *downloaded_sha = NULL;
  g_autofree char *sidecar = NULL;
  g_autofree char *sidecar_text = NULL;
  g_autofree char *local_label = NULL;
  g_autofree char *models_dir = g_build_filename (home, "data", "magpie", "models", NULL);
  MagpieModels *models = magpie_application_get_models (app);
  MagpieLibrary *library = magpie_application_get_library (app);
  const char *bundled;
  MagpiePhoto *photo;
  GPtrArray *tags;
  double local_confidence;
  gint64 start;

  if (model == NULL || cat == NULL)
    {
      g_test_skip ("the shared photo model or photos are missing");
      mp_test_rm_rf (server_dir);
      return;
    }
  g_assert_nonnull (models);
  bundled = magpie_models_get_bundled (models);
  g_assert_nonnull (bundled);
  g_assert_cmpstr (magpie_models_get_photo_model (models), ==, bundled);
  g_assert_cmpstr (magpie_tagger_get_model (magpie_library_get_tagger (library)), ==, bundled);

  /* A server with another photo model (SqueezeNet: other labels, other preparation). As soon
   * as the app is online it has it, checked, and tags with it. */
  expected_sha = file_sha256 (model);
  server = mp_test_server_start (server_dir, args, &error);
  g_assert_no_error (error);
  start = g_get_monotonic_time ();
  g_settings_set_string (settings, "server-url", server->url);
  g_assert_true (app_test_wait (model_is_not, (gpointer) bundled, within_ms ()));
  g_test_message ("the server's photo model downloaded and in use %.2f s after connecting",
                  (g_get_monotonic_time () - start) / (double) G_USEC_PER_SEC);
  downloaded = g_strdup (magpie_models_get_photo_model (models));
  g_assert_true (g_str_has_prefix (downloaded, models_dir));
  g_assert_true (g_str_has_suffix (downloaded, ".onnx"));
  g_assert_nonnull (strstr (downloaded, expected_sha));
  downloaded_sha = file_sha256 (downloaded);
  g_assert_cmpstr (downloaded_sha, ==, expected_sha);
  g_assert_cmpuint (magpie_models_get_n_downloads (models), ==, 1);
  g_assert_cmpstr (magpie_tagger_get_model (magpie_library_get_tagger (library)), ==,
                   downloaded);
  g_assert_true (g_file_test (bundled, G_FILE_TEST_IS_REGULAR));
  /* Its sidecar holds the server's preparation and labels. */
  sidecar = g_strdup_printf ("%.*s.json", (int) strlen (downloaded) - 5, downloaded);
  g_assert_true (g_file_get_contents (sidecar, &sidecar_text, NULL, NULL));
  g_assert_nonnull (strstr (sidecar_text, "\"BGR\""));
  g_assert_nonnull (strstr (sidecar_text, "tabby"));

  /* Asked again: the same model, nothing downloaded. */
  refresh (models);
  g_assert_cmpuint (magpie_models_get_n_downloads (models), ==, 1);
  g_assert_cmpstr (magpie_models_get_photo_model (models), ==, downloaded);

  /* Offline, a cat is tagged on this device with the server's labels, not CIFAR's... */
  set_work_offline (TRUE);
  photo = drop_one ("photos/tabby_caffe.jpg");
  g_assert_true (app_test_wait (has_tags, photo, within_ms ()));
  tags = magpie_photo_get_tags (photo);
  g_assert_cmpint (((MagpieTag *) tags->pdata[0])->source, ==, MAGPIE_TAG_SOURCE_LOCAL);
  local_label = g_strdup (((MagpieTag *) tags->pdata[0])->label);
  local_confidence = ((MagpieTag *) tags->pdata[0])->confidence;
  g_assert_false (is_label_of (local_label, cifar));
  /* ...and back online, the server tags it as this device did: same model, same preparation. */
  set_work_offline (FALSE);
  g_assert_true (app_test_wait (has_server_tags, photo, within_ms ()));
  tags = magpie_photo_get_tags (photo);
  g_test_message ("tabby_caffe.jpg: on this device %s %.3f, by the server %s %.3f", local_label,
                  local_confidence, ((MagpieTag *) tags->pdata[0])->label,
                  ((MagpieTag *) tags->pdata[0])->confidence);
  g_assert_cmpstr (((MagpieTag *) tags->pdata[0])->label, ==, local_label);
  g_assert_cmpfloat_with_epsilon (((MagpieTag *) tags->pdata[0])->confidence, local_confidence,
                                  0.05);

  /* The bundled model stands by: a downloaded file that cannot be read falls back to it. */
  {
    g_autofree char *broken = g_build_filename (home, "broken.onnx", NULL);
    g_autofree char *broken_sidecar = g_build_filename (home, "broken.json", NULL);
    g_autoptr(MagpieTagger) tagger = magpie_tagger_new (broken);
    g_autoptr(GPtrArray) fallback_tags = NULL;

    g_assert_true (g_file_set_contents (broken, "not a model", -1, NULL));
    g_assert_true (g_file_set_contents (broken_sidecar, sidecar_text, -1, NULL));
    magpie_tagger_set_fallback (tagger, bundled);
    fallback_tags = tag_with (tagger, cat);
    g_assert_cmpuint (fallback_tags->len, >, 0);
    g_assert_true (is_label_of (((MagpieTag *) fallback_tags->pdata[0])->label, cifar));
    magpie_tagger_close (tagger);
  }

  /* A restarted app finds the downloaded model without the network. */
  {
    g_autofree char *other_data = g_build_filename (home, "other-library", NULL);
    g_autoptr(MagpieLibrary) other = magpie_library_new (other_data, other_data);
    g_autoptr(MagpieConnection) offline = magpie_connection_new (NULL, 0);
    g_autoptr(SoupSession) session = soup_session_new ();
    g_autoptr(MagpieIdentity) identity = magpie_identity_new (session);
    g_autoptr(MagpieCredentials) credentials = magpie_credentials_new (session, identity);
    g_autoptr(MagpieModels) again = NULL;
    g_autofree char *data_dir = g_build_filename (home, "data", "magpie", NULL);

    magpie_connection_set_work_offline (offline, TRUE);
    again = magpie_models_new (session, offline, credentials, other, data_dir, bundled);
    g_assert_cmpstr (magpie_models_get_photo_model (again), ==, downloaded);
    g_assert_cmpstr (magpie_tagger_get_model (magpie_library_get_tagger (other)), ==,
                     downloaded);
    magpie_tagger_close (magpie_library_get_tagger (other));
    magpie_library_sync (other);
    mp_test_rm_rf (other_data);
  }

  /* The server goes back to the bundled model: so does the app when it is back, and the
   * download goes. */
  app_test_server_stop (server);
  g_assert_true (app_test_wait (is_not_online, magpie_application_get_connection (app),
                                within_ms ()));
  g_assert_true (mp_test_server_restart (server, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (app_test_wait (model_is_not, downloaded, within_ms ()));
  g_assert_cmpstr (magpie_models_get_photo_model (models), ==, bundled);
  g_assert_cmpuint (magpie_models_get_n_downloads (models), ==, 1);
  g_assert_false (g_file_test (downloaded, G_FILE_TEST_EXISTS));
  g_assert_false (g_file_test (sidecar, G_FILE_TEST_EXISTS));
  tags = tag_with (magpie_library_get_tagger (library), cat);
  g_assert_true (is_label_of (((MagpieTag *) tags->pdata[0])->label, cifar));
  g_ptr_array_unref (tags);

  app_test_server_stop (server);
  mp_test_rm_rf (server_dir);
}

/* SSE reconnect ---------------------------------------------------------------------------- */

static gboolean
event_id_past (gpointer user_data)
{
  const char *last = magpie_events_get_last_event_id (magpie_application_get_events (app));

  return last != NULL && g_ascii_strtoll (last, NULL, 10) > g_ascii_strtoll (user_data, NULL, 10);
}

/* PUTs @path to @key with the aws CLI (a client that is not Magpie) as @creds allow. */
static void
aws_put (MagpieS3Credentials *creds,
         const char          *key,
         const char          *path)
{
  g_autofree char *config = g_build_filename (home, "aws-config", NULL);
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  g_auto(GStrv) env = g_get_environ ();
  g_autoptr(GError) error = NULL;
  const char *argv[] = { "/usr/bin/aws", "--endpoint-url", creds->endpoint, "--region",
                         creds->region, "s3api", "put-object", "--bucket", creds->bucket,
                         "--key", key, "--body", path, NULL };
  int status = 0;

  g_assert_true (g_file_set_contents (config, "[default]\ns3 =\n  addressing_style = path\n",
                                      -1, NULL));
  env = g_environ_setenv (env, "AWS_CONFIG_FILE", config, TRUE);
  env = g_environ_setenv (env, "AWS_SHARED_CREDENTIALS_FILE", "/dev/null", TRUE);
  env = g_environ_setenv (env, "AWS_ACCESS_KEY_ID", creds->access_key_id, TRUE);
  env = g_environ_setenv (env, "AWS_SECRET_ACCESS_KEY", creds->secret_access_key, TRUE);
  env = g_environ_setenv (env, "AWS_SESSION_TOKEN", creds->session_token, TRUE);
  env = g_environ_setenv (env, "AWS_MAX_ATTEMPTS", "1", TRUE);
  env = g_environ_setenv (env, "AWS_PAGER", "", TRUE);
  env = g_environ_setenv (env, "HOME", home, TRUE);
  g_assert_true (g_spawn_sync (NULL, (char **) argv, env, G_SPAWN_DEFAULT, NULL, NULL, &out,
                               &err, &status, &error));
  g_assert_no_error (error);
  if (!g_spawn_check_wait_status (status, NULL))
    g_error ("aws s3api put-object failed: %s", err);
}

/* The photo @sha256 in the server's catalog, as the identity of @token sees it. */
static char *
catalog_state (AppTestServer *server,
               const char    *token,
               const char    *sha256)
{
  g_autoptr(SoupSession) session = soup_session_new ();
  g_autofree char *url = g_strconcat (server->url, "/v1/photos?limit=100", NULL);
  g_autoptr(JsonNode) body = NULL;
  JsonArray *photos;
  guint status = 0;

  body = mp_test_http_call (session, "GET", url, token, NULL, &status, NULL);
  g_assert_cmpuint (status, ==, 200);
  photos = json_object_get_array_member (json_node_get_object (body), "photos");
  for (guint i = 0; i < json_array_get_length (photos); i++)
    {
      JsonObject *photo = json_array_get_object_element (photos, i);

      if (g_strcmp0 (json_object_get_string_member (photo, "sha256"), sha256) == 0)
        return g_strdup (json_object_get_string_member (photo, "state"));
    }
  return NULL;
}

static void
test_sse_reconnect (void)
{
  g_autofree char *server_dir = mp_test_make_tmpdir ("magpied-sse");
  g_autofree char *model = mp_test_photo_model (server_dir);
  const char *args[] = { "--photo-model", model, NULL };
  g_autoptr(AppTestServer) server = NULL;
  g_autoptr(GSettings) settings = g_settings_new (APPLICATION_ID);
  g_autoptr(MagpieS3Credentials) creds = NULL;
  g_autoptr(SoupSession) session = soup_session_new ();
  g_autoptr(GError) error = NULL;
  g_autofree char *before_id = NULL;
  g_autofree char *key = NULL;
  g_autofree char *body = NULL;
  g_autofree char *state = NULL;
  g_autofree char *file_name = NULL;
  g_autoptr(JsonNode) answer = NULL;
  MagpieConnection *connection = magpie_application_get_connection (app);
  MagpieEvents *events = magpie_application_get_events (app);
  MagpieUploader *uploader = magpie_application_get_uploader (app);
  MagpiePhoto *first;
  MagpiePhoto *second;
  guint connects;
  guint puts;
  guint status = 0;
  gint64 deadline;

  if (model == NULL)
    {
      g_test_skip ("the shared photo model is missing");
      mp_test_rm_rf (server_dir);
      return;
    }
  server = mp_test_server_start (server_dir, args, &error);
  g_assert_no_error (error);
  g_settings_set_string (settings, "server-url", server->url);
  g_assert_true (app_test_wait (is_online, connection, within_ms ()));
  g_assert_true (app_test_wait (is_streaming, events, within_ms ()));

  /* Connected, and the stream has delivered: a photo's tags came live. */
  first = drop_one ("photos/eagle_darknet.jpg");
  g_assert_true (app_test_wait (has_server_tags, first, within_ms ()));
  g_assert_nonnull (magpie_events_get_last_event_id (events));
  before_id = g_strdup (magpie_events_get_last_event_id (events));
  connects = magpie_events_get_n_connects (events);
  creds = app_test_credentials (app, server->url);

  /* magpied is killed; the app sees the stream end and the server gone. */
  mp_test_server_stop (server, SIGKILL, NULL);
  g_assert_true (app_test_wait (is_not_streaming, events, within_ms ()));
  g_assert_true (app_test_wait (is_not_online, connection, within_ms ()));

  /* A photo comes in meanwhile; it waits. */
  second = drop_one ("photos/horses_darknet.jpg");
  g_assert_cmpint (magpie_photo_get_state (second), ==, MAGPIE_PHOTO_STATE_WAITING);
  puts = magpie_uploader_get_n_put (uploader);

  /* From here the app's main loop does not run until the photo is tagged: magpied comes back
   * on the same port and data dir, and the photo reaches it as if the app's earlier attempt
   * had got through and only the answer was lost. The server tags it while no stream is open,
   * so only a resumed stream (or the reconcile) can tell the app. */
  g_assert_true (mp_test_server_restart (server, args, &error));
  g_assert_no_error (error);
  file_name = g_file_get_basename (magpie_photo_get_file (second));
  key = g_strdup_printf ("users/%s/%s", creds->identity_id, file_name);
  aws_put (creds, key, g_file_peek_path (magpie_photo_get_file (second)));
  body = g_strdup_printf ("{\"key\": \"%s\"}", key);
  {
    g_autofree char *url = g_strconcat (server->url, "/v1/photos", NULL);

    answer = mp_test_http_call (session, "POST", url, creds->api_token, body, &status, NULL);
  }
  g_assert_cmpuint (status, ==, 201);
  deadline = g_get_monotonic_time () + within_ms () * 1000;
  while (g_strcmp0 ((state = catalog_state (server, creds->api_token,
                                            magpie_photo_get_sha256 (second))), "tagged") != 0 &&
         g_get_monotonic_time () < deadline)
    {
      g_clear_pointer (&state, g_free);
      g_usleep (G_USEC_PER_SEC / 10);
    }
  g_assert_cmpstr (state, ==, "tagged");
  /* Nothing moved in the app while its loop stood still. */
  g_assert_cmpuint (magpie_events_get_n_connects (events), ==, connects);
  g_assert_cmpint (magpie_photo_get_state (second), ==, MAGPIE_PHOTO_STATE_WAITING);

  /* The app finds the server back, reopens the stream where it left off and shows the tags. */
  g_assert_true (app_test_wait (is_streaming, events, within_ms ()));
  g_assert_cmpuint (magpie_events_get_n_connects (events), >, connects);
  g_assert_true (app_test_wait (has_server_tags, second, within_ms ()));
  /* The events of the second photo, committed before the stream reopened, come to it: only a
   * Last-Event-ID resume sends those (a fresh stream starts after the newest event). The tags
   * may have come first, by the uploader's or the reconcile's answer. */
  g_assert_true (app_test_wait (event_id_past, before_id, within_ms ()));
  g_test_message ("event stream resumed after event %s, now at %s", before_id,
                  magpie_events_get_last_event_id (events));
  /* And the photo was not sent again: the server had it. */
  g_assert_cmpuint (magpie_uploader_get_n_put (uploader), ==, puts);
  g_assert_true (app_test_wait (app_test_all_server_done, magpie_application_get_library (app),
                                within_ms ()));
  g_assert_cmpuint (magpie_uploader_get_n_put (uploader), ==, puts);

  app_test_server_stop (server);
  mp_test_rm_rf (server_dir);
}

int
main (int   argc,
      char *argv[])
{
  int status;

  g_test_init (&argc, &argv, NULL);
  home = app_test_isolate_dirs ();
  app = app_test_application_new ();
  g_object_set (gtk_settings_get_default (), "gtk-enable-animations", FALSE, NULL);

  /* In this order: the first expects the bundled model in use. */
  g_test_add_func ("/ui/live/model-refresh", test_model_refresh);
  g_test_add_func ("/ui/live/sse-reconnect", test_sse_reconnect);

  status = g_test_run ();
  app_test_close_all ();
  magpie_application_stop_workers (app);
  g_clear_object (&app);
  mp_test_rm_rf (home);
  g_free (home);
  return status;
}
