/* test-upload.c - photos dropped on the Gallery reach a real magpied: uploaded exactly once,
 * tagged by the server, and no credential is ever written to the app's files */
#include "config.h"

#include <string.h>

#include "app-test-util.h"
#include "magpie-credentials.h"
#include "magpie-window.h"

#define N_PHOTOS 20
#define TAGGED_WITHIN_S 30

static MagpieApplication *app;
static char *home;

static MagpieWindow *
main_window (void)
{
  g_application_activate (G_APPLICATION (app));
  return MAGPIE_WINDOW (gtk_application_get_active_window (GTK_APPLICATION (app)));
}

static guint
app_files_containing (const char *needle)
{
  /* The app's own dirs; a keyring's files are the Secret Service's business. */
  const char *dirs[] = { "data", "config", "cache" };
  guint found = 0;

  for (guint i = 0; i < G_N_ELEMENTS (dirs); i++)
    {
      g_autofree char *dir = g_build_filename (home, dirs[i], "magpie", NULL);

      found += app_test_files_containing (dir, needle);
    }
  return found;
}

static void
test_upload_twenty (void)
{
  g_autofree char *server_dir = mp_test_make_tmpdir ("magpied-upload");
  g_autofree char *model = mp_test_photo_model (server_dir);
  const char *args[] = { "--photo-model", model, NULL };
  g_autoptr(AppTestServer) server = NULL;
  g_autoptr(GSettings) settings = g_settings_new (APPLICATION_ID);
  g_autoptr(GPtrArray) files = app_test_shared_photos ();
  g_autoptr(MagpieS3Credentials) creds = NULL;
  g_autoptr(GError) error = NULL;
  MagpieWindow *window;
  MagpieGalleryPage *page;
  MagpieLibrary *library = magpie_application_get_library (app);
  MagpieUploader *uploader = magpie_application_get_uploader (app);
  MagpieIdentity *identity = magpie_application_get_identity (app);
  gint64 start;

  if (model == NULL || files->len < N_PHOTOS)
    {
      g_test_skip ("the shared photo model or twenty shared photos are missing");
      mp_test_rm_rf (server_dir);
      return;
    }
  server = mp_test_server_start (server_dir, args, &error);
  g_assert_no_error (error);
  g_settings_set_string (settings, "server-url", server->url);

  window = main_window ();
  page = magpie_window_get_gallery_page (window);
  start = g_get_monotonic_time ();
  app_test_drop_files (window, (GFile **) files->pdata, N_PHOTOS);
  g_assert_true (app_test_wait (app_test_imports_done, page, 60000));
  g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (library)), ==, N_PHOTOS);

  if (!app_test_wait (app_test_all_uploaded, library, TAGGED_WITHIN_S * 1000))
    app_test_dump_states (G_LIST_MODEL (library));
  g_assert_true (app_test_all_uploaded (library));
  g_test_message ("%d photos uploaded %.2f s after the drop", N_PHOTOS,
                  (g_get_monotonic_time () - start) / (double) G_USEC_PER_SEC);
  if (!app_test_wait (app_test_all_server_tagged, library,
                      TAGGED_WITHIN_S * 1000 - (g_get_monotonic_time () - start) / 1000))
    app_test_dump_states (G_LIST_MODEL (library));
  g_assert_true (app_test_all_server_tagged (library));
  g_test_message ("%d photos tagged by the server %.2f s after the drop", N_PHOTOS,
                  (g_get_monotonic_time () - start) / (double) G_USEC_PER_SEC);
  /* The live stream was open and its events were read (each carries an id to resume from). */
  g_assert_true (magpie_events_get_connected (magpie_application_get_events (app)));
  g_assert_nonnull (magpie_events_get_last_event_id (magpie_application_get_events (app)));
  app_test_screenshot (g_getenv ("MAGPIE_SCREENSHOT_DIR") != NULL
                       ? g_getenv ("MAGPIE_SCREENSHOT_DIR") : home, "magpie-uploaded.png");

  /* Exactly once: one PUT each, one catalog entry each, and a second drop sends nothing. */
  g_assert_cmpuint (magpie_uploader_get_n_put (uploader), ==, N_PHOTOS);
  creds = app_test_credentials (app, server->url);
  g_assert_cmpuint (app_test_catalog_count (server->url, creds->api_token), ==, N_PHOTOS);
  app_test_drop_files (window, (GFile **) files->pdata, 3);
  g_assert_true (app_test_wait (app_test_imports_done, page, 60000));
  g_assert_cmpuint (magpie_uploader_get_n_put (uploader), ==, N_PHOTOS);
  g_assert_cmpuint (app_test_catalog_count (server->url, creds->api_token), ==, N_PHOTOS);

  /* Nothing secret on disk. The search itself is checked on a file that does hold one. */
  {
    g_autofree char *planted_dir = g_build_filename (home, "cache", "magpie", "planted", NULL);
    g_autofree char *planted = g_build_filename (planted_dir, "secret", NULL);

    g_assert_cmpint (g_mkdir_with_parents (planted_dir, 0700), ==, 0);
    g_assert_true (g_file_set_contents (planted, magpie_identity_get_secret (identity), -1,
                                        NULL));
    g_assert_cmpuint (app_files_containing (magpie_identity_get_secret (identity)), ==, 1);
    mp_test_rm_rf (planted_dir);
  }
  magpie_application_stop_workers (app);
  g_assert_cmpuint (app_files_containing (magpie_identity_get_secret (identity)), ==, 0);
  g_assert_cmpuint (app_files_containing (creds->secret_access_key), ==, 0);
  g_assert_cmpuint (app_files_containing (creds->session_token), ==, 0);
  g_assert_cmpuint (app_files_containing (creds->api_token), ==, 0);

  app_test_server_stop (server);
  mp_test_rm_rf (server_dir);
}

static gboolean
is_state (gpointer user_data)
{
  MagpieConnection *connection = user_data;

  return magpie_connection_get_state (connection) == MAGPIE_CONNECTION_STATE_ONLINE;
}

static gboolean
is_unreachable (gpointer user_data)
{
  MagpieConnection *connection = user_data;

  return magpie_connection_get_state (connection) == MAGPIE_CONNECTION_STATE_UNREACHABLE;
}

/* Imported while the server is down, the photos wait; when it is back the outbox drains by
 * itself, each photo is stored once and the server's tags arrive. */
static void
test_offline_then_online (void)
{
  g_autofree char *server_dir = mp_test_make_tmpdir ("magpied-offline");
  g_autofree char *model = mp_test_photo_model (server_dir);
  g_autofree char *photo_dir = mp_test_make_tmpdir ("magpie-offline-photos");
  const char *args[] = { "--photo-model", model, NULL };
  g_autoptr(AppTestServer) server = NULL;
  g_autoptr(GSettings) settings = g_settings_new (APPLICATION_ID);
  g_autoptr(GPtrArray) files = g_ptr_array_new_with_free_func (g_object_unref);
  g_autoptr(MagpieS3Credentials) creds = NULL;
  g_autoptr(GError) error = NULL;
  MagpieConnection *connection = magpie_application_get_connection (app);
  MagpieLibrary *library = magpie_application_get_library (app);
  MagpieUploader *uploader = magpie_application_get_uploader (app);
  MagpieWindow *window = main_window ();
  MagpieGalleryPage *page = magpie_window_get_gallery_page (window);
  guint before = g_list_model_get_n_items (G_LIST_MODEL (library));
  guint put_before = magpie_uploader_get_n_put (uploader);

  if (model == NULL)
    {
      g_test_skip ("the shared photo model is missing");
      return;
    }
  /* A server that was there and is gone: its port now refuses connections. */
  server = mp_test_server_start (server_dir, args, &error);
  g_assert_no_error (error);
  app_test_server_stop (server);
  g_settings_set_string (settings, "server-url", server->url);
  g_assert_true (app_test_wait (is_unreachable, connection, 20000));

  for (guint i = 0; i < 5; i++)
    {
      g_autofree char *path = g_strdup_printf ("%s/offline-%u.png", photo_dir, i);
      g_autoptr(GdkPixbuf) pixbuf = gdk_pixbuf_new (GDK_COLORSPACE_RGB, FALSE, 8, 96, 64);

      gdk_pixbuf_fill (pixbuf, ((guint32) g_random_int () << 8) | 0xff);
      g_assert_true (gdk_pixbuf_save (pixbuf, path, "png", &error, NULL));
      g_ptr_array_add (files, g_file_new_for_path (path));
    }
  app_test_drop_files (window, (GFile **) files->pdata, files->len);
  g_assert_true (app_test_wait (app_test_imports_done, page, 60000));
  g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (library)), ==, before + 5);
  /* A moment offline: nothing is sent. */
  g_assert_false (app_test_wait (app_test_all_uploaded, library, 1000));
  g_assert_cmpuint (magpie_uploader_get_n_put (uploader), ==, put_before);

  /* Back: another magpied on another port (a new guest identity there). */
  g_clear_pointer (&server, app_test_server_free);
  server = mp_test_server_start (server_dir, args, &error);
  g_assert_no_error (error);
  g_settings_set_string (settings, "server-url", server->url);
  g_assert_true (app_test_wait (is_state, connection, 20000));
  /* Plain generated images: the model may find no tag above the threshold for some. */
  if (!app_test_wait (app_test_all_server_done, library, TAGGED_WITHIN_S * 1000))
    app_test_dump_states (G_LIST_MODEL (library));
  g_assert_true (app_test_all_server_done (library));
  g_assert_cmpuint (magpie_uploader_get_n_put (uploader), ==, put_before + 5);
  creds = app_test_credentials (app, server->url);
  g_assert_cmpuint (app_test_catalog_count (server->url, creds->api_token), ==, 5);

  app_test_server_stop (server);
  mp_test_rm_rf (server_dir);
  mp_test_rm_rf (photo_dir);
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

  /* In this order: the first expects an empty library. */
  g_test_add_func ("/ui/upload/twenty", test_upload_twenty);
  g_test_add_func ("/ui/upload/offline-then-online", test_offline_then_online);

  status = g_test_run ();
  app_test_close_all ();
  magpie_application_stop_workers (app);
  g_clear_object (&app);
  mp_test_rm_rf (home);
  g_free (home);
  return status;
}
