/* test-offline.c - offline for real: photos imported while the server is down survive a quit
 * and a restart of the app and are uploaded exactly once when the server is back; Work
 * Offline keeps everything off the network until it is turned off
 *
 * The offline drill of issue 6: server stopped -> import 10 photos -> local tags -> quit (the
 * app's quit action, in a process of its own) -> start the app again -> start the server (same
 * data dir and port) -> all 10 uploaded exactly once and the server's tags shown. Settings
 * live in a keyfile here, so the restarted app finds what the first one left, as it would.
 */
#include "config.h"

#include <sqlite3.h>
#include <string.h>

#include "app-test-util.h"
#include "magpie-photo-tile.h"

#define N_DRILL 10
#define N_OFFLINE 5
/* The longest wait between checks of an unreachable server is 5 s (magpie-connection.c). */
#define BACK_ONLINE_WITHIN_S 6
#define DRAINED_WITHIN_S 60

static MagpieApplication *app;
static char *home;

static const char *
screenshot_dir (void)
{
  return g_getenv ("MAGPIE_SCREENSHOT_DIR") != NULL ? g_getenv ("MAGPIE_SCREENSHOT_DIR") : home;
}

static MagpieWindow *
main_window (MagpieApplication *application)
{
  GtkWindow *window = gtk_application_get_active_window (GTK_APPLICATION (application));

  if (window == NULL)
    {
      g_application_activate (G_APPLICATION (application));
      window = gtk_application_get_active_window (GTK_APPLICATION (application));
    }
  return MAGPIE_WINDOW (window);
}

static gboolean
is_online (gpointer user_data)
{
  return magpie_connection_get_state (user_data) == MAGPIE_CONNECTION_STATE_ONLINE;
}

static gboolean
is_unreachable (gpointer user_data)
{
  return magpie_connection_get_state (user_data) == MAGPIE_CONNECTION_STATE_UNREACHABLE;
}

static gboolean
is_loaded (gpointer user_data)
{
  return magpie_library_get_loaded (user_data);
}

static gboolean
is_streaming (gpointer user_data)
{
  return magpie_events_get_connected (user_data);
}

/* Every photo in @photos (MagpiePhoto) has tags from the model on this device. */
static gboolean
all_local_tagged (gpointer user_data)
{
  GListModel *photos = user_data;
  guint n = g_list_model_get_n_items (photos);

  for (guint i = 0; i < n; i++)
    {
      g_autoptr(MagpiePhoto) photo = g_list_model_get_item (photos, i);
      GPtrArray *tags = magpie_photo_get_tags (photo);

      if (tags->len == 0 || ((MagpieTag *) tags->pdata[0])->source != MAGPIE_TAG_SOURCE_LOCAL)
        return FALSE;
    }
  return n > 0;
}

/* Tag chips on screen in @window: how many, and how many of them say "on this device". */
static guint
count_chips (MagpieWindow *window,
             guint        *n_local)
{
  g_autoptr(GPtrArray) boxes = g_ptr_array_new ();
  guint n = 0;

  *n_local = 0;
  app_test_collect_widgets (GTK_WIDGET (window), GTK_TYPE_BOX, boxes);
  for (guint i = 0; i < boxes->len; i++)
    {
      GtkWidget *chip = boxes->pdata[i];

      if (!gtk_widget_has_css_class (chip, "tag-chip") || !gtk_widget_get_mapped (chip))
        continue;
      n++;
      if (gtk_widget_has_css_class (chip, "local"))
        {
          g_assert_nonnull (strstr (gtk_widget_get_tooltip_text (chip), "on this device"));
          (*n_local)++;
        }
    }
  return n;
}

/* A frame or two for the last thumbnails to be drawn, then the whole display. */
static void
screenshot (const char *name)
{
  g_usleep (G_USEC_PER_SEC / 2);
  while (g_main_context_iteration (NULL, FALSE))
    ;
  app_test_screenshot (screenshot_dir (), name);
}

/* The drill, part 1 (its own process) --------------------------------------------------- */

static gboolean quit_asked;

/* Runs inside g_application_run(), once the window is up. */
static gboolean
import_offline_cb (gpointer user_data)
{
  MagpieApplication *application = user_data;
  MagpieWindow *window = main_window (application);
  MagpieGalleryPage *page = magpie_window_get_gallery_page (window);
  MagpieLibrary *library = magpie_application_get_library (application);
  MagpieConnection *connection = magpie_application_get_connection (application);
  g_autoptr(GPtrArray) files = app_test_shared_photos ();
  GtkWidget *indicator = GTK_WIDGET (gtk_widget_get_template_child (GTK_WIDGET (window),
                                                                    MAGPIE_TYPE_WINDOW,
                                                                    "upload_indicator"));
  guint n_local = 0;

  /* The whole screen, so every tile is in the screenshot. */
  gtk_window_set_default_size (GTK_WINDOW (window), 1280, 800);
  gtk_window_maximize (GTK_WINDOW (window));
  g_assert_true (app_test_wait (is_unreachable, connection, 20000));
  app_test_drop_files (window, (GFile **) files->pdata, N_DRILL);
  g_assert_true (app_test_wait (app_test_imports_done, page, 60000));
  g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (library)), ==, N_DRILL);

  /* Tagged on this device at once, every tile says so, and all of them wait. */
  g_assert_true (app_test_wait (all_local_tagged, library, 60000));
  g_assert_cmpuint (count_chips (window, &n_local), ==, n_local);
  g_assert_cmpuint (n_local, >=, N_DRILL);
  g_assert_cmpuint (magpie_library_get_n_pending (library), ==, N_DRILL);
  g_assert_cmpstr (gtk_widget_get_tooltip_text (indicator), ==, "10 photos waiting to upload");
  g_assert_cmpuint (magpie_uploader_get_n_put (magpie_application_get_uploader (application)),
                    ==, 0);
  screenshot ("magpie-offline-local.png");

  /* Quit as people do: the app's quit action (Ctrl+Q), which closes the window. */
  quit_asked = TRUE;
  g_action_group_activate_action (G_ACTION_GROUP (application), "quit", NULL);
  return G_SOURCE_REMOVE;
}

static void
activated_cb (GApplication *application)
{
  static gboolean once;

  if (!once)
    g_idle_add (import_offline_cb, application);
  once = TRUE;
}

static void
drill_first_run (void)
{
  g_autoptr(MagpieApplication) first = magpie_application_new ();
  char *argv[] = { (char *) "magpie", NULL };
  int status;

  g_application_set_flags (G_APPLICATION (first),
                           g_application_get_flags (G_APPLICATION (first)) |
                           G_APPLICATION_NON_UNIQUE);
  g_signal_connect_after (first, "activate", G_CALLBACK (activated_cb), NULL);
  /* The whole life of an app: start-up, the window, the quit action, shut-down. */
  status = g_application_run (G_APPLICATION (first), 1, argv);
  g_assert_cmpint (status, ==, 0);
  g_assert_true (quit_asked);
}

/* The drill, part 2 --------------------------------------------------------------------- */

static double
s3_puts (SoupSession   *session,
         AppTestServer *server)
{
  return MAX (mp_test_metric (session, server->url,
                              "magpied_s3_requests_total{op=\"PutObject\",code=\"OK\"}"), 0);
}

static void
test_drill (void)
{
  g_autofree char *server_dir = NULL;
  g_autofree char *model = NULL;
  const char *args[] = { "--photo-model", NULL, NULL };
  g_autoptr(AppTestServer) server = NULL;
  g_autoptr(GSettings) settings = NULL;
  g_autoptr(GPtrArray) files = app_test_shared_photos ();
  g_autoptr(MagpieS3Credentials) creds = NULL;
  g_autoptr(SoupSession) session = soup_session_new ();
  g_autoptr(GError) error = NULL;
  MagpieConnection *connection;
  MagpieLibrary *library;
  MagpieUploader *uploader;
  MagpieWindow *window;
  gint64 start;
  double online_s, uploaded_s, tagged_s;
  guint n_local = 0;

  if (g_test_subprocess ())
    {
      drill_first_run ();
      return;
    }

  server_dir = mp_test_make_tmpdir ("magpied-drill");
  model = mp_test_photo_model (server_dir);
  if (model == NULL || files->len < N_DRILL)
    {
      g_test_skip ("the shared photo model or ten shared photos are missing");
      mp_test_rm_rf (server_dir);
      return;
    }
  args[1] = model;

  /* A server that was there and is stopped: its port refuses connections. */
  server = mp_test_server_start (server_dir, args, &error);
  g_assert_no_error (error);
  app_test_server_stop (server);
  settings = g_settings_new (APPLICATION_ID);
  g_settings_set_string (settings, "server-url", server->url);
  g_settings_sync ();

  /* Import while it is down, then quit. */
  g_test_trap_subprocess (NULL, 240 * G_USEC_PER_SEC, G_TEST_SUBPROCESS_INHERIT_STDERR);
  g_test_trap_assert_passed ();

  /* Start the app again: the photos are there, tagged on this device, still waiting. */
  app = app_test_application_new ();
  connection = magpie_application_get_connection (app);
  library = magpie_application_get_library (app);
  uploader = magpie_application_get_uploader (app);
  window = main_window (app);
  gtk_window_set_default_size (GTK_WINDOW (window), 1280, 800);
  gtk_window_maximize (GTK_WINDOW (window));
  g_assert_cmpstr (magpie_connection_get_server_url (connection), ==, server->url);
  g_assert_true (app_test_wait (is_loaded, library, 20000));
  g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (library)), ==, N_DRILL);
  g_assert_true (all_local_tagged (library));
  g_assert_cmpuint (magpie_library_get_n_pending (library), ==, N_DRILL);
  g_assert_true (app_test_wait (is_unreachable, connection, 20000));

  /* The server comes back where it was. */
  g_assert_true (mp_test_server_restart (server, args, &error));
  g_assert_no_error (error);
  start = g_get_monotonic_time ();
  g_assert_true (app_test_wait (is_online, connection, 20000 * mp_test_slowdown ()));
  online_s = (g_get_monotonic_time () - start) / (double) G_USEC_PER_SEC;
  if (!app_test_wait (app_test_all_uploaded, library, DRAINED_WITHIN_S * 1000 *
                                                      mp_test_slowdown ()))
    app_test_dump_states (G_LIST_MODEL (library));
  g_assert_true (app_test_all_uploaded (library));
  uploaded_s = (g_get_monotonic_time () - start) / (double) G_USEC_PER_SEC;
  if (!app_test_wait (app_test_all_server_tagged, library,
                      DRAINED_WITHIN_S * 1000 * mp_test_slowdown ()))
    app_test_dump_states (G_LIST_MODEL (library));
  g_assert_true (app_test_all_server_tagged (library));
  tagged_s = (g_get_monotonic_time () - start) / (double) G_USEC_PER_SEC;
  g_test_message ("after the server came back: online in %.2f s, %d photos uploaded in %.2f s, "
                  "tagged by the server in %.2f s", online_s, N_DRILL, uploaded_s, tagged_s);
  g_assert_cmpfloat (online_s, <, BACK_ONLINE_WITHIN_S * mp_test_slowdown ());

  /* Exactly once: one PUT each as the app counts, as the server counts, and in its catalog. */
  g_assert_cmpuint (magpie_uploader_get_n_put (uploader), ==, N_DRILL);
  g_assert_cmpfloat (s3_puts (session, server), ==, N_DRILL);
  creds = app_test_credentials (app, server->url);
  g_assert_cmpuint (app_test_catalog_count (server->url, creds->api_token), ==, N_DRILL);

  /* The server's tags replaced the local ones on every tile. */
  g_assert_cmpuint (count_chips (window, &n_local), >=, N_DRILL);
  g_assert_cmpuint (n_local, ==, 0);
  screenshot ("magpie-offline-synced.png");

  app_test_server_stop (server);
  mp_test_rm_rf (server_dir);
}

/* Work Offline ---------------------------------------------------------------------------- */

/* Requests the server has answered, other than for its metrics (which these counts are). */
static double
server_requests (SoupSession   *session,
                 AppTestServer *server)
{
  g_autofree char *url = g_strconcat (server->url, "/metrics", NULL);
  guint status = 0;
  g_autofree char *text = mp_test_http_text (session, "GET", url, &status);
  g_auto(GStrv) lines = g_strsplit (text, "\n", -1);
  double sum = 0;

  g_assert_cmpuint (status, ==, 200);
  for (guint i = 0; lines[i] != NULL; i++)
    if (g_str_has_prefix (lines[i], "magpied_http_requests_total{") &&
        strstr (lines[i], "api=\"metrics\"") == NULL)
      sum += g_ascii_strtod (strrchr (lines[i], ' ') + 1, NULL);
  return sum;
}

static gboolean
is_uploading (gpointer user_data)
{
  return magpie_uploader_get_n_active (user_data) > 0;
}

static gboolean
is_idle (gpointer user_data)
{
  return magpie_uploader_get_n_active (user_data) == 0;
}

static gboolean
none_uploading (gpointer user_data)
{
  GListModel *photos = user_data;

  for (guint i = 0; i < g_list_model_get_n_items (photos); i++)
    {
      g_autoptr(MagpiePhoto) photo = g_list_model_get_item (photos, i);

      if (magpie_photo_get_state (photo) == MAGPIE_PHOTO_STATE_UPLOADING)
        return FALSE;
    }
  return TRUE;
}

/* The most failed attempts any photo in the library's database has on record. */
static int
max_attempts (MagpieLibrary *library)
{
  g_autofree char *path = g_build_filename (home, "data", "magpie", "library.sqlite", NULL);
  sqlite3 *db = NULL;
  sqlite3_stmt *stmt = NULL;
  int attempts;

  magpie_library_sync (library);
  g_assert_cmpint (sqlite3_open_v2 (path, &db, SQLITE_OPEN_READONLY, NULL), ==, SQLITE_OK);
  g_assert_cmpint (sqlite3_prepare_v2 (db, "SELECT MAX(attempts) FROM photos", -1, &stmt, NULL),
                   ==, SQLITE_OK);
  g_assert_cmpint (sqlite3_step (stmt), ==, SQLITE_ROW);
  attempts = sqlite3_column_int (stmt, 0);
  sqlite3_finalize (stmt);
  sqlite3_close (db);
  return attempts;
}

static gboolean
became_true (gpointer user_data)
{
  return *(gboolean *) user_data;
}

static gboolean
set_true_cb (gpointer user_data)
{
  *(gboolean *) user_data = TRUE;
  return G_SOURCE_REMOVE;
}

static void
test_work_offline (void)
{
  g_autofree char *server_dir = mp_test_make_tmpdir ("magpied-work-offline");
  g_autofree char *model = mp_test_photo_model (server_dir);
  g_autofree char *keyfile = NULL;
  g_autofree char *keyfile_text = NULL;
  const char *args[] = { "--photo-model", model, NULL };
  g_autoptr(AppTestServer) server = NULL;
  g_autoptr(GSettings) settings = g_settings_new (APPLICATION_ID);
  g_autoptr(GPtrArray) files = app_test_shared_photos ();
  g_autoptr(GListStore) new_photos = g_list_store_new (MAGPIE_TYPE_PHOTO);
  g_autoptr(SoupSession) session = soup_session_new ();
  g_autoptr(MagpieS3Credentials) creds = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) state = NULL;
  MagpieConnection *connection;
  MagpieLibrary *library;
  MagpieUploader *uploader;
  MagpieEvents *events;
  MagpieWindow *window;
  GtkWidget *connection_image;
  double requests;
  guint put_before;
  gboolean waited = FALSE;

  if (model == NULL || files->len < N_DRILL + N_OFFLINE)
    {
      g_test_skip ("the shared photo model or fifteen shared photos are missing");
      mp_test_rm_rf (server_dir);
      return;
    }
  if (app == NULL)
    app = app_test_application_new ();
  connection = magpie_application_get_connection (app);
  library = magpie_application_get_library (app);
  uploader = magpie_application_get_uploader (app);
  events = magpie_application_get_events (app);
  window = main_window (app);
  connection_image = GTK_WIDGET (gtk_widget_get_template_child (GTK_WIDGET (window),
                                                                MAGPIE_TYPE_WINDOW,
                                                                "connection_image"));

  server = mp_test_server_start (server_dir, args, &error);
  g_assert_no_error (error);
  g_settings_set_string (settings, "server-url", server->url);
  g_assert_true (app_test_wait (is_online, connection, 20000));
  g_assert_true (app_test_wait (is_streaming, events, 20000));

  /* The menu's check item: the action toggles, the setting and the header follow. */
  g_action_group_activate_action (G_ACTION_GROUP (app), "work-offline", NULL);
  state = g_action_group_get_action_state (G_ACTION_GROUP (app), "work-offline");
  g_assert_true (g_variant_get_boolean (state));
  g_assert_true (g_settings_get_boolean (settings, "work-offline"));
  g_assert_cmpint (magpie_connection_get_state (connection), ==,
                   MAGPIE_CONNECTION_STATE_OFFLINE);
  g_assert_false (magpie_events_get_connected (events));
  g_assert_true (g_str_has_prefix (gtk_widget_get_tooltip_text (connection_image),
                                   "Working offline"));
  /* Remembered: the settings keyfile says so. */
  g_settings_sync ();
  keyfile = g_build_filename (home, "config", "glib-2.0", "settings", "keyfile", NULL);
  g_assert_true (g_file_get_contents (keyfile, &keyfile_text, NULL, NULL));
  g_assert_nonnull (strstr (keyfile_text, "work-offline=true"));

  /* Photos come in, are tagged here, and nothing at all reaches the server. */
  requests = server_requests (session, server);
  put_before = magpie_uploader_get_n_put (uploader);
  app_test_drop_files (window, (GFile **) files->pdata + N_DRILL, N_OFFLINE);
  g_assert_true (app_test_wait (app_test_imports_done, magpie_window_get_gallery_page (window),
                                60000));
  for (guint i = 0; i < N_OFFLINE; i++)
    {
      g_autofree char *path = g_file_get_path (files->pdata[N_DRILL + i]);
      g_autofree char *contents = NULL;
      g_autofree char *sha256 = NULL;
      gsize length;
      MagpiePhoto *photo;

      g_assert_true (g_file_get_contents (path, &contents, &length, NULL));
      sha256 = g_compute_checksum_for_data (G_CHECKSUM_SHA256, (guchar *) contents, length);
      photo = magpie_library_find_by_sha256 (library, sha256);
      g_assert_nonnull (photo);
      g_list_store_append (new_photos, photo);
    }
  g_assert_true (app_test_wait (all_local_tagged, new_photos, 60000));
  g_timeout_add (3000, set_true_cb, &waited);
  g_assert_true (app_test_wait (became_true, &waited, 10000));
  for (guint i = 0; i < N_OFFLINE; i++)
    {
      g_autoptr(MagpiePhoto) photo = g_list_model_get_item (G_LIST_MODEL (new_photos), i);

      g_assert_cmpint (magpie_photo_get_state (photo), ==, MAGPIE_PHOTO_STATE_WAITING);
    }
  g_assert_cmpuint (magpie_uploader_get_n_put (uploader), ==, put_before);
  g_assert_cmpfloat (server_requests (session, server), ==, requests);
  g_test_message ("working offline: %d photos imported and tagged here, %.0f requests to the "
                  "server before and after", N_OFFLINE, requests);

  /* Back online, and offline again while photos are on their way: what was being sent is
   * called off and back in the outbox, not counted as a failed attempt. */
  g_action_group_activate_action (G_ACTION_GROUP (app), "work-offline", NULL);
  g_assert_false (g_settings_get_boolean (settings, "work-offline"));
  g_assert_true (app_test_wait (is_uploading, uploader, 60000 * mp_test_slowdown ()));
  g_action_group_activate_action (G_ACTION_GROUP (app), "work-offline", NULL);
  g_assert_true (app_test_wait (is_idle, uploader, 10000 * mp_test_slowdown ()));
  /* (One taken from the outbox just then goes back a moment later.) */
  g_assert_true (app_test_wait (none_uploading, new_photos, 10000 * mp_test_slowdown ()));
  g_assert_cmpuint (max_attempts (library), ==, 0);
  for (guint i = 0; i < N_OFFLINE; i++)
    {
      g_autoptr(MagpiePhoto) photo = g_list_model_get_item (G_LIST_MODEL (new_photos), i);

      g_assert_cmpint (magpie_photo_get_state (photo), !=, MAGPIE_PHOTO_STATE_FAILED);
    }
  requests = server_requests (session, server);
  waited = FALSE;
  g_timeout_add (2000, set_true_cb, &waited);
  g_assert_true (app_test_wait (became_true, &waited, 10000));
  g_assert_cmpfloat (server_requests (session, server), ==, requests);

  /* Online for good: everything resumes by itself, each photo stored once. */
  g_action_group_activate_action (G_ACTION_GROUP (app), "work-offline", NULL);
  g_assert_false (g_settings_get_boolean (settings, "work-offline"));
  if (!app_test_wait (app_test_all_server_tagged, new_photos,
                      DRAINED_WITHIN_S * 1000 * mp_test_slowdown ()))
    app_test_dump_states (G_LIST_MODEL (new_photos));
  g_assert_true (app_test_all_server_tagged (new_photos));
  /* The server counts each photo stored once; the app may not have seen the answer to a PUT
   * it called off just as it completed (the photo was then found there, not sent again). */
  g_assert_cmpfloat (s3_puts (session, server), ==, N_OFFLINE);
  g_assert_cmpuint (magpie_uploader_get_n_put (uploader), <=, put_before + N_OFFLINE);
  g_assert_true (app_test_wait (is_streaming, events, 20000));
  g_assert_cmpfloat (server_requests (session, server), >, requests);
  creds = app_test_credentials (app, server->url);
  g_assert_cmpuint (app_test_catalog_count (server->url, creds->api_token), ==, N_OFFLINE);

  app_test_server_stop (server);
  mp_test_rm_rf (server_dir);
}

int
main (int   argc,
      char *argv[])
{
  int status;

  /* Settings on disk (in the isolated config dir), so a restarted app reads what the first
   * one wrote. Before anything reads a setting. */
  g_setenv ("GSETTINGS_BACKEND", "keyfile", TRUE);
  g_test_init (&argc, &argv, NULL);
  /* The drill's first run is this program again; it inherits the dirs made here. */
  if (g_test_subprocess ())
    home = g_strdup (g_getenv ("MAGPIE_TEST_HOME"));
  else
    {
      home = app_test_isolate_dirs ();
      g_setenv ("MAGPIE_TEST_HOME", home, TRUE);
    }
  gtk_init ();
  g_object_set (gtk_settings_get_default (), "gtk-enable-animations", FALSE, NULL);

  /* In this order: the drill expects an empty library. */
  g_test_add_func ("/ui/offline/drill", test_drill);
  g_test_add_func ("/ui/offline/work-offline", test_work_offline);

  status = g_test_run ();
  if (app != NULL)
    {
      app_test_close_all ();
      magpie_application_stop_workers (app);
      g_clear_object (&app);
    }
  if (!g_test_subprocess ())
    mp_test_rm_rf (home);
  g_free (home);
  return status;
}
