/* test-multipart.c - large photos go up to a real magpied in parts: credentials refreshed and
 * replaced mid-upload, an upload aborted when its photo is deleted, and a real `magpie`
 * process killed mid-upload that sends only the missing parts when it starts again
 *
 * The photos are PNGs of random noise (4000x2400, about 29 MB: four parts of 8 MiB), real
 * images the server decodes and tags. What the store received is counted on the server's side
 * (magpied_s3_requests_total by operation and outcome, from /metrics) and the stored object is
 * read back and hashed. MAGPIE_TEST_UPLOAD_RATE slows the parts down so that the test can act
 * while a photo is on its way. Persistence across app processes needs the identity in a
 * keyring: the test runs its own gnome-keyring-daemon with an unlocked login keyring.
 */
#include "config.h"

#include <fcntl.h>
#include <glib/gstdio.h>
#include <signal.h>
#include <unistd.h>
#include <sqlite3.h>
#include <string.h>

#include "app-test-util.h"
#include "magpie-credentials.h"
#include "magpie-s3.h"
#include "magpie-window.h"

#define PHOTO_WIDTH 4000
#define PHOTO_HEIGHT 2400
#define N_PARTS 4
/* Slow enough to act between parts, fast enough for the suite: a part in about 2 s, the
 * whole photo in over 7 s (were it sent from the main loop, the loop would stall that long). */
#define TEST_RATE "4000000"
#define MAX_STALL_US (5 * G_USEC_PER_SEC)
#define WAIT_MS (120 * 1000)

static MagpieApplication *app;
static char *home;
static GSubprocess *keyring;

static gboolean
never (gpointer user_data)
{
  return FALSE;
}

/* Lets the main loop run for @ms. */
static void
spin (guint ms)
{
  app_test_wait (never, NULL, ms);
}

static double
s3_count (AppTestServer *server,
          const char    *op,
          const char    *code)
{
  g_autoptr(SoupSession) session = soup_session_new ();
  g_autofree char *series = g_strdup_printf ("magpied_s3_requests_total{op=\"%s\",code=\"%s\"}",
                                             op, code);
  double value = mp_test_metric (session, server->url, series);

  return value < 0 ? 0 : value;
}

/* Waits (running the main loop) until the server has counted @at_least @op requests that
 * ended in @code. */
static gboolean
wait_s3_count (AppTestServer *server,
               const char    *op,
               const char    *code,
               double         at_least,
               guint          timeout_ms)
{
  gint64 deadline = g_get_monotonic_time () + (gint64) timeout_ms * 1000;

  while (s3_count (server, op, code) < at_least)
    {
      if (g_get_monotonic_time () > deadline)
        return FALSE;
      spin (100);
    }
  return TRUE;
}

static char *
sha256_of_file (const char *path)
{
  g_autoptr(GMappedFile) mapped = g_mapped_file_new (path, FALSE, NULL);

  g_assert_nonnull (mapped);
  return g_compute_checksum_for_data (G_CHECKSUM_SHA256,
                                      (const guchar *) g_mapped_file_get_contents (mapped),
                                      g_mapped_file_get_length (mapped));
}

/* A PNG of random noise from @seed: incompressible, so about 3 bytes a pixel on disk. */
static char *
noise_png (const char *dir,
           guint32     seed)
{
  g_autofree char *path = g_strdup_printf ("%s/noise-%u.png", dir, seed);
  g_autoptr(GdkPixbuf) pixbuf = gdk_pixbuf_new (GDK_COLORSPACE_RGB, FALSE, 8, PHOTO_WIDTH,
                                                PHOTO_HEIGHT);
  g_autoptr(GRand) rand = g_rand_new_with_seed (seed);
  g_autoptr(GError) error = NULL;
  guchar *pixels = gdk_pixbuf_get_pixels (pixbuf);
  int rowstride = gdk_pixbuf_get_rowstride (pixbuf);
  GStatBuf st;

  for (int y = 0; y < PHOTO_HEIGHT; y++)
    for (int x = 0; x < PHOTO_WIDTH * 3; x += 4)
      {
        guint32 r = g_rand_int (rand);

        memcpy (pixels + (gsize) y * rowstride + x, &r, MIN (4, PHOTO_WIDTH * 3 - x));
      }
  g_assert_true (gdk_pixbuf_save (pixbuf, path, "png", &error, "compression", "0", NULL));
  g_assert_no_error (error);
  g_assert_cmpint (g_stat (path, &st), ==, 0);
  g_assert_cmpint (st.st_size, >, 20 * 1024 * 1024);
  g_assert_cmpint (st.st_size, >, (N_PARTS - 1) * 8 * 1024 * 1024);
  g_assert_cmpint (st.st_size, <=, N_PARTS * 8 * 1024 * 1024);
  return g_steal_pointer (&path);
}

static void
result_cb (GObject      *object,
           GAsyncResult *result,
           gpointer      user_data)
{
  *(GAsyncResult **) user_data = g_object_ref (result);
}

static gboolean
have_result (gpointer user_data)
{
  return *(GAsyncResult **) user_data != NULL;
}

static MagpieS3Credentials *
credentials_from (MagpieCredentials *credentials,
                  const char        *url)
{
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GError) error = NULL;
  MagpieS3Credentials *c;

  magpie_credentials_get_async (credentials, url, NULL, result_cb, &result);
  g_assert_true (app_test_wait (have_result, &result, 30000));
  c = magpie_credentials_get_finish (credentials, result, &error);
  g_assert_no_error (error);
  return c;
}

/* Credentials for the identity the keyring holds for @url: the one a `magpie` process
 * created there. */
static MagpieS3Credentials *
keyring_credentials (const char *url)
{
  g_autoptr(SoupSession) session = soup_session_new ();
  g_autoptr(MagpieIdentity) identity = magpie_identity_new (session);
  g_autoptr(MagpieCredentials) credentials = magpie_credentials_new (session, identity);
  MagpieS3Credentials *c = credentials_from (credentials, url);

  g_assert_true (magpie_identity_get_in_keyring (identity));
  return c;
}

/* The catalog's photos for these credentials' identity. */
static JsonArray *
catalog (const char                *url,
         const MagpieS3Credentials *creds)
{
  g_autoptr(SoupSession) session = soup_session_new ();
  g_autofree char *list_url = g_strconcat (url, "/v1/photos?limit=100", NULL);
  g_autoptr(JsonNode) root = NULL;
  guint status = 0;

  root = mp_test_http_call (session, "GET", list_url, creds->api_token, NULL, &status, NULL);
  g_assert_cmpuint (status, ==, 200);
  return json_array_ref (json_object_get_array_member (json_node_get_object (root), "photos"));
}

typedef struct {
  const char                *url;
  const MagpieS3Credentials *creds;
} CatalogWait;

static gboolean
catalog_has_tagged (gpointer user_data)
{
  CatalogWait *wait = user_data;
  g_autoptr(JsonArray) photos = catalog (wait->url, wait->creds);

  for (guint i = 0; i < json_array_get_length (photos); i++)
    if (g_strcmp0 (json_object_get_string_member_with_default (
                     json_array_get_object_element (photos, i), "state", ""), "tagged") == 0)
      return TRUE;
  return FALSE;
}

static gboolean
wait_catalog_tagged (const char                *url,
                     const MagpieS3Credentials *creds,
                     guint                      timeout_ms)
{
  CatalogWait wait = { url, creds };
  gint64 deadline = g_get_monotonic_time () + (gint64) timeout_ms * 1000;

  while (!catalog_has_tagged (&wait))
    {
      if (g_get_monotonic_time () > deadline)
        return FALSE;
      spin (200);
    }
  return TRUE;
}

/* Reads the stored object back (SigV4 GET, streamed) and checks it is the file's bytes; its
 * ETag says how many parts it was assembled from. */
static void
assert_stored_object (const MagpieS3Credentials *creds,
                      const char                *path,
                      guint                      n_parts)
{
  g_autofree char *sha256 = sha256_of_file (path);
  g_autofree char *base = g_path_get_basename (path);
  g_autofree char *key = g_strdup_printf ("%s%s.png", creds->prefix, sha256);
  g_autofree char *suffix = g_strdup_printf ("-%u\"", n_parts);
  g_autoptr(SoupSession) session = soup_session_new ();
  g_autoptr(SoupMessage) message = NULL;
  g_autoptr(GInputStream) stream = NULL;
  g_autoptr(GChecksum) checksum = g_checksum_new (G_CHECKSUM_SHA256);
  g_autoptr(GError) error = NULL;
  g_autofree guint8 *buffer = g_malloc (1024 * 1024);
  const char *etag;
  gssize n;

  message = magpie_s3_message_new (creds, "GET", key, NULL, NULL, NULL, &error);
  g_assert_no_error (error);
  stream = soup_session_send (session, message, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (soup_message_get_status (message), ==, 200);
  while ((n = g_input_stream_read (stream, buffer, 1024 * 1024, NULL, &error)) > 0)
    g_checksum_update (checksum, buffer, n);
  g_assert_no_error (error);
  g_assert_cmpstr (g_checksum_get_string (checksum), ==, sha256);
  etag = soup_message_headers_get_one (soup_message_get_response_headers (message), "ETag");
  g_test_message ("%s stored as %s, ETag %s", base, key, etag);
  g_assert_true (etag != NULL && g_str_has_suffix (etag, suffix));
}

static MagpieWindow *
main_window (void)
{
  g_application_activate (G_APPLICATION (app));
  return MAGPIE_WINDOW (gtk_application_get_active_window (GTK_APPLICATION (app)));
}

static void
drop_file (MagpieWindow *window,
           const char   *path)
{
  GtkDropTarget *target =
    magpie_gallery_page_get_drop_target (magpie_window_get_gallery_page (window));
  g_autoptr(GFile) file = g_file_new_for_path (path);
  g_auto(GValue) value = G_VALUE_INIT;
  gboolean accepted = FALSE;

  g_value_init (&value, GDK_TYPE_FILE_LIST);
  g_value_take_boxed (&value, gdk_file_list_new_from_array (&file, 1));
  g_signal_emit_by_name (target, "drop", &value, 100.0, 100.0, &accepted);
  g_assert_true (accepted);
}

static gboolean
imports_done (gpointer user_data)
{
  return magpie_gallery_page_get_n_imports (user_data) == 0;
}

static MagpiePhoto *
newest_photo (void)
{
  GListModel *library = G_LIST_MODEL (magpie_application_get_library (app));

  g_assert_cmpuint (g_list_model_get_n_items (library), >, 0);
  return g_list_model_get_item (library, 0);
}

static gboolean
photo_done (gpointer user_data)
{
  MagpiePhoto *photo = user_data;
  GPtrArray *tags = magpie_photo_get_tags (photo);

  return magpie_photo_get_state (photo) == MAGPIE_PHOTO_STATE_TAGGED &&
         (tags->len == 0 || ((MagpieTag *) tags->pdata[0])->source == MAGPIE_TAG_SOURCE_SERVER);
}

static gboolean
fetched_more (gpointer user_data)
{
  guint *before = user_data;

  return magpie_credentials_get_n_fetched (
    magpie_application_get_credentials (app)) > *before;
}

/* The main loop's longest stall while the upload runs: nothing may block it. */
typedef struct {
  gint64 last;
  gint64 worst;
} Stall;

static gboolean
tick_cb (gpointer user_data)
{
  Stall *stall = user_data;
  gint64 now = g_get_monotonic_time ();

  stall->worst = MAX (stall->worst, now - stall->last);
  stall->last = now;
  return G_SOURCE_CONTINUE;
}

/* A 29 MB photo dropped on the Gallery goes up in four parts. Halfway, its credentials come
 * close to expiry (they are refreshed before the next part), then the store refuses the fresh
 * ones as if they had been revoked (they are replaced and the part sent again). */
static void
test_upload (void)
{
  g_autofree char *server_dir = mp_test_make_tmpdir ("magpied-multipart");
  g_autofree char *model = mp_test_photo_model (server_dir);
  g_autofree char *photo_dir = mp_test_make_tmpdir ("magpie-multipart-photos");
  const char *args[] = { "--photo-model", model, NULL };
  g_autoptr(AppTestServer) server = NULL;
  g_autoptr(GSettings) settings = g_settings_new (APPLICATION_ID);
  g_autoptr(GError) error = NULL;
  g_autoptr(MagpieS3Credentials) aging = NULL;
  g_autoptr(MagpieS3Credentials) revoked = NULL;
  g_autoptr(MagpieS3Credentials) check = NULL;
  g_autoptr(MagpiePhoto) photo = NULL;
  g_autoptr(JsonArray) photos = NULL;
  g_autofree char *path = NULL;
  MagpieCredentials *credentials = magpie_application_get_credentials (app);
  MagpieUploader *uploader = magpie_application_get_uploader (app);
  MagpieWindow *window;
  Stall stall = { 0 };
  guint tick;
  guint fetched;
  gint64 start;

  if (model == NULL)
    {
      g_test_skip ("the shared photo model is missing");
      mp_test_rm_rf (server_dir);
      mp_test_rm_rf (photo_dir);
      return;
    }
  path = noise_png (photo_dir, 1);
  server = mp_test_server_start (server_dir, args, &error);
  g_assert_no_error (error);
  g_settings_set_string (settings, "server-url", server->url);
  window = main_window ();

  start = g_get_monotonic_time ();
  drop_file (window, path);
  g_assert_true (app_test_wait (imports_done, magpie_window_get_gallery_page (window), 60000));
  photo = newest_photo ();
  /* From the upload's start: the import before it has a thumbnail and local tags to make. */
  g_assert_true (wait_s3_count (server, "CreateMultipartUpload", "OK", 1, WAIT_MS));
  stall.last = g_get_monotonic_time ();
  tick = g_timeout_add (20, tick_cb, &stall);

  /* After the first part: the cached credentials have less than the margin left. */
  g_assert_true (wait_s3_count (server, "UploadPart", "OK", 1, WAIT_MS));
  aging = credentials_from (credentials, server->url);
  fetched = magpie_credentials_get_n_fetched (credentials);
  aging->expiration = g_get_real_time () / G_USEC_PER_SEC + MAGPIE_CREDENTIALS_MARGIN_S - 1;
  g_assert_true (app_test_wait (fetched_more, &fetched, WAIT_MS));
  g_test_message ("credentials refreshed mid-upload (%u fetched so far)",
                  magpie_credentials_get_n_fetched (credentials));

  /* Then the store no longer takes the fresh session token. */
  revoked = credentials_from (credentials, server->url);
  g_assert_true (revoked != aging);
  fetched = magpie_credentials_get_n_fetched (credentials);
  {
    char *c = revoked->session_token + strlen (revoked->session_token) / 2;

    *c = *c == 'A' ? 'B' : 'A';
  }

  if (!app_test_wait (photo_done, photo, WAIT_MS))
    {
      g_autofree char *state = magpie_photo_describe_state (photo);

      g_test_message ("%s", state);
    }
  g_assert_true (photo_done (photo));
  g_source_remove (tick);
  g_test_message ("29 MB photo uploaded in parts and tagged %.1f s after the drop; the main "
                  "loop stalled at most %.0f ms from the upload's start",
                  (g_get_monotonic_time () - start) / (double) G_USEC_PER_SEC,
                  stall.worst / 1000.0);
  g_assert_cmpint (stall.worst, <, MAX_STALL_US * mp_test_slowdown ());
  g_assert_cmpuint (magpie_credentials_get_n_fetched (credentials), >, fetched);

  /* What the store saw: one upload, each part once, one refusal of the revoked token. */
  g_assert_cmpfloat (s3_count (server, "CreateMultipartUpload", "OK"), ==, 1);
  g_assert_cmpfloat (s3_count (server, "UploadPart", "OK"), ==, N_PARTS);
  g_assert_cmpfloat (s3_count (server, "CompleteMultipartUpload", "OK"), ==, 1);
  g_assert_cmpfloat (s3_count (server, "UploadPart", "InvalidToken") +
                     s3_count (server, "CompleteMultipartUpload", "InvalidToken"), ==, 1);
  g_assert_cmpfloat (s3_count (server, "PutObject", "OK"), ==, 0);
  g_assert_cmpuint (magpie_uploader_get_n_multipart (uploader), ==, 1);
  g_assert_cmpuint (magpie_uploader_get_n_put (uploader), ==, 0);

  check = credentials_from (credentials, server->url);
  assert_stored_object (check, path, N_PARTS);
  photos = catalog (server->url, check);
  g_assert_cmpuint (json_array_get_length (photos), ==, 1);

  app_test_server_stop (server);
  mp_test_rm_rf (server_dir);
  mp_test_rm_rf (photo_dir);
}

/* The count @sql gives in the app's database at @db_path (-1 while it has no such table). */
static int
count_rows (const char *db_path,
            const char *sql)
{
  sqlite3 *db = NULL;
  sqlite3_stmt *stmt = NULL;
  int n = -1;

  if (!g_file_test (db_path, G_FILE_TEST_EXISTS))
    return -1;
  g_assert_cmpint (sqlite3_open_v2 (db_path, &db, SQLITE_OPEN_READONLY, NULL), ==, SQLITE_OK);
  sqlite3_busy_timeout (db, 5000);
  if (sqlite3_prepare_v2 (db, sql, -1, &stmt, NULL) == SQLITE_OK &&
      sqlite3_step (stmt) == SQLITE_ROW)
    n = sqlite3_column_int (stmt, 0);
  sqlite3_finalize (stmt);
  sqlite3_close (db);
  return n;
}

static gboolean
uploads_recorded_zero (gpointer user_data)
{
  return count_rows (user_data, "SELECT count(*) FROM multipart_uploads") == 0;
}

/* Deleting a photo whose parts are on their way stops the upload and aborts it on the store;
 * nothing more is sent for it. */
static void
test_delete_aborts (void)
{
  g_autofree char *server_dir = mp_test_make_tmpdir ("magpied-multipart-delete");
  g_autofree char *photo_dir = mp_test_make_tmpdir ("magpie-multipart-delete");
  g_autofree char *db_path = g_build_filename (home, "data", "magpie", "library.sqlite", NULL);
  g_autoptr(AppTestServer) server = NULL;
  g_autoptr(GSettings) settings = g_settings_new (APPLICATION_ID);
  g_autoptr(GError) error = NULL;
  g_autoptr(MagpiePhoto) photo = NULL;
  g_autofree char *path = NULL;
  MagpieUploader *uploader = magpie_application_get_uploader (app);
  MagpieWindow *window = main_window ();
  MagpieGalleryPage *page = magpie_window_get_gallery_page (window);
  guint aborted = magpie_uploader_get_n_aborted (uploader);
  double parts;

  path = noise_png (photo_dir, 2);
  server = mp_test_server_start (server_dir, NULL, &error);
  g_assert_no_error (error);
  g_settings_set_string (settings, "server-url", server->url);

  drop_file (window, path);
  g_assert_true (app_test_wait (imports_done, page, 60000));
  photo = newest_photo ();
  g_assert_true (wait_s3_count (server, "UploadPart", "OK", 1, WAIT_MS));
  g_assert_cmpint (count_rows (db_path, "SELECT count(*) FROM multipart_uploads"), ==, 1);

  /* As a person does it: the photo's page, Delete (the undo toast stays up). */
  magpie_gallery_page_show_photo (page, photo);
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (page), "gallery.delete", NULL));
  g_assert_true (wait_s3_count (server, "AbortMultipartUpload", "OK", 1, WAIT_MS));
  g_assert_true (app_test_wait (uploads_recorded_zero, db_path, WAIT_MS));
  g_assert_cmpuint (magpie_uploader_get_n_aborted (uploader), ==, aborted + 1);

  /* Nothing more goes out for it. */
  parts = s3_count (server, "UploadPart", "OK");
  spin (3000);
  g_assert_cmpfloat (s3_count (server, "UploadPart", "OK"), ==, parts);
  g_assert_cmpfloat (parts, <, N_PARTS);
  g_assert_cmpfloat (s3_count (server, "CompleteMultipartUpload", "OK"), ==, 0);

  app_test_close_all ();
  app_test_server_stop (server);
  mp_test_rm_rf (server_dir);
  mp_test_rm_rf (photo_dir);
}

static gboolean
photo_failed (gpointer user_data)
{
  return magpie_photo_get_state (user_data) == MAGPIE_PHOTO_STATE_FAILED;
}

/* The photo's own copy turns out shorter mid-upload (a damaged disk, someone editing the
 * library's files): the photo fails for good with the reason on its tile, and the parts already
 * on the store are aborted rather than left there. */
static void
test_failed_part (void)
{
  g_autofree char *server_dir = mp_test_make_tmpdir ("magpied-multipart-failed");
  g_autofree char *photo_dir = mp_test_make_tmpdir ("magpie-multipart-failed");
  g_autofree char *db_path = g_build_filename (home, "data", "magpie", "library.sqlite", NULL);
  g_autoptr(AppTestServer) server = NULL;
  g_autoptr(GSettings) settings = g_settings_new (APPLICATION_ID);
  g_autoptr(GError) error = NULL;
  g_autoptr(MagpiePhoto) photo = NULL;
  g_autofree char *path = NULL;
  g_autofree char *copy = NULL;
  g_autofree char *state = NULL;
  MagpieWindow *window = main_window ();
  int fd;

  path = noise_png (photo_dir, 5);
  server = mp_test_server_start (server_dir, NULL, &error);
  g_assert_no_error (error);
  g_settings_set_string (settings, "server-url", server->url);

  drop_file (window, path);
  g_assert_true (app_test_wait (imports_done, magpie_window_get_gallery_page (window), 60000));
  photo = newest_photo ();
  g_assert_true (wait_s3_count (server, "UploadPart", "OK", 1, WAIT_MS));

  copy = g_file_get_path (magpie_photo_get_file (photo));
  fd = g_open (copy, O_WRONLY, 0);
  g_assert_cmpint (fd, >=, 0);
  g_assert_cmpint (ftruncate (fd, 12 * 1024 * 1024), ==, 0);
  close (fd);

  g_assert_true (app_test_wait (photo_failed, photo, WAIT_MS));
  state = magpie_photo_describe_state (photo);
  g_test_message ("the tile says: %s", state);
  g_assert_cmpstr (magpie_photo_get_failure_reason (photo), ==,
                   "The photo’s file is shorter than when it was imported");
  g_assert_true (wait_s3_count (server, "AbortMultipartUpload", "OK", 1, WAIT_MS));
  g_assert_true (app_test_wait (uploads_recorded_zero, db_path, WAIT_MS));
  g_assert_cmpfloat (s3_count (server, "CompleteMultipartUpload", "OK"), ==, 0);

  app_test_server_stop (server);
  mp_test_rm_rf (server_dir);
  mp_test_rm_rf (photo_dir);
}

/* A `magpie` process ------------------------------------------------------------------------ */

typedef struct {
  char *dir;      /* its own XDG data, cache and config dirs */
  char *db_path;
  char *log_path;
} AppHome;

static void
app_home_free (AppHome *h)
{
  mp_test_rm_rf (h->dir);
  g_free (h->dir);
  g_free (h->db_path);
  g_free (h->log_path);
  g_free (h);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (AppHome, app_home_free)

static AppHome *
app_home_new (void)
{
  AppHome *h = g_new0 (AppHome, 1);

  h->dir = mp_test_make_tmpdir ("magpie-process");
  h->db_path = g_build_filename (h->dir, "data", "magpie", "library.sqlite", NULL);
  h->log_path = g_build_filename (h->dir, "magpie.log", NULL);
  return h;
}

/* Starts the built magpie in @h's dirs against @url, importing @file (or none); paced by
 * MAGPIE_TEST_UPLOAD_RATE when @paced. */
static GSubprocess *
spawn_magpie (AppHome    *h,
              const char *url,
              const char *file,
              gboolean    paced)
{
  g_autoptr(GSubprocessLauncher) launcher =
    g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_SILENCE);
  const char *magpie = g_getenv ("MAGPIE");
  const char *argv[] = { magpie, "--server-url", url, file, NULL };
  const char *dirs[][2] = {
    { "XDG_DATA_HOME", "data" }, { "XDG_CACHE_HOME", "cache" }, { "XDG_CONFIG_HOME", "config" },
  };
  g_autoptr(GError) error = NULL;
  GSubprocess *process;

  g_assert_nonnull (magpie);
  for (guint i = 0; i < G_N_ELEMENTS (dirs); i++)
    {
      g_autofree char *dir = g_build_filename (h->dir, dirs[i][1], NULL);

      g_assert_cmpint (g_mkdir_with_parents (dir, 0700), ==, 0);
      g_subprocess_launcher_setenv (launcher, dirs[i][0], dir, TRUE);
    }
  if (paced)
    g_subprocess_launcher_setenv (launcher, "MAGPIE_TEST_UPLOAD_RATE", TEST_RATE, TRUE);
  else
    g_subprocess_launcher_unsetenv (launcher, "MAGPIE_TEST_UPLOAD_RATE");
  g_subprocess_launcher_set_stderr_file_path (launcher, h->log_path);
  process = g_subprocess_launcher_spawnv (launcher, argv, &error);
  g_assert_no_error (error);
  return process;
}

static void
print_log (const char *path)
{
  g_autofree char *text = NULL;

  if (g_file_get_contents (path, &text, NULL, NULL))
    g_test_message ("--- %s\n%s", path, text);
}

/* What the app said about its multipart uploads. */
static void
print_upload_messages (const char *path)
{
  g_autofree char *text = NULL;
  g_auto(GStrv) lines = NULL;

  if (!g_file_get_contents (path, &text, NULL, NULL))
    return;
  lines = g_strsplit (text, "\n", -1);
  for (guint i = 0; lines[i] != NULL; i++)
    if (strstr (lines[i], "magpie-uploader") != NULL)
      g_test_message ("magpie: %s", lines[i]);
}

static gboolean
part_recorded (gpointer user_data)
{
  AppHome *h = user_data;

  return count_rows (h->db_path, "SELECT count(*) FROM multipart_parts") >= 1;
}

/* Waits for the first part of @h's photo to reach the store (and, when @recorded_first, the
 * app's database), then kills magpie outright: no chance to clean up, as in a crash or a
 * power cut. Returns the parts the store had then. */
static guint
kill_after_first_part (AppHome       *h,
                       GSubprocess   *process,
                       AppTestServer *server,
                       gboolean       recorded_first)
{
  g_autoptr(GError) error = NULL;
  gboolean reached = wait_s3_count (server, "UploadPart", "OK", 1, WAIT_MS) &&
                     (!recorded_first || app_test_wait (part_recorded, h, WAIT_MS));
  guint stored;
  int recorded;

  if (!reached)
    print_log (h->log_path);
  g_assert_true (reached);
  g_subprocess_send_signal (process, SIGKILL);
  g_assert_true (g_subprocess_wait (process, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpint (g_subprocess_get_term_sig (process), ==, SIGKILL);

  stored = (guint) s3_count (server, "UploadPart", "OK");
  recorded = count_rows (h->db_path, "SELECT count(*) FROM multipart_parts");
  g_test_message ("killed with %u of %u parts on the store, %u recorded by the app", stored,
                  N_PARTS, recorded);
  g_assert_cmpuint (stored, >=, 1);
  g_assert_cmpuint (stored, <, N_PARTS);
  /* The part confirmed last may not have been written down before the kill. */
  g_assert_cmpint (recorded, <=, stored);
  g_assert_cmpint (recorded + 1, >=, stored);
  g_assert_cmpint (count_rows (h->db_path, "SELECT count(*) FROM multipart_uploads"), ==, 1);
  g_assert_cmpfloat (s3_count (server, "CompleteMultipartUpload", "OK"), ==, 0);
  return stored;
}

/* Starts magpie again (no file, full speed) and waits until the catalog has the photo
 * tagged; returns its credentials. */
static MagpieS3Credentials *
restart_until_tagged (AppHome       *h,
                      AppTestServer *server)
{
  g_autoptr(GSubprocess) process = spawn_magpie (h, server->url, NULL, FALSE);
  g_autoptr(MagpieS3Credentials) creds = keyring_credentials (server->url);
  g_autoptr(GError) error = NULL;
  gboolean tagged = wait_catalog_tagged (server->url, creds, WAIT_MS);

  if (!tagged)
    print_log (h->log_path);
  g_assert_true (tagged);
  print_upload_messages (h->log_path);
  g_subprocess_send_signal (process, SIGTERM);
  g_assert_true (g_subprocess_wait (process, NULL, &error));
  return g_steal_pointer (&creds);
}

static gboolean
have_keyring (void)
{
  if (keyring == NULL)
    g_test_skip ("gnome-keyring-daemon did not start: the identity cannot outlive a process");
  return keyring != NULL;
}

/* Killed after the first part, magpie starts again, asks the store which parts it has and
 * sends only the others; the photo is in the catalog once, tagged. */
static void
test_resume_after_kill (void)
{
  g_autofree char *server_dir = NULL;
  g_autofree char *model = NULL;
  g_autofree char *path = NULL;
  g_autoptr(AppHome) h = NULL;
  g_autoptr(AppTestServer) server = NULL;
  g_autoptr(GSubprocess) first = NULL;
  g_autoptr(MagpieS3Credentials) creds = NULL;
  g_autoptr(JsonArray) photos = NULL;
  g_autoptr(GError) error = NULL;
  const char *args[] = { "--photo-model", NULL, NULL };
  guint before;

  if (!have_keyring ())
    return;
  server_dir = mp_test_make_tmpdir ("magpied-multipart-resume");
  model = mp_test_photo_model (server_dir);
  args[1] = model;
  h = app_home_new ();
  path = noise_png (h->dir, 3);
  server = mp_test_server_start (server_dir, model != NULL ? args : NULL, &error);
  g_assert_no_error (error);

  first = spawn_magpie (h, server->url, path, TRUE);
  before = kill_after_first_part (h, first, server, TRUE);

  creds = restart_until_tagged (h, server);
  g_test_message ("the second run sent %u parts", N_PARTS - before);
  g_assert_cmpfloat (s3_count (server, "UploadPart", "OK"), ==, N_PARTS);
  g_assert_cmpfloat (s3_count (server, "CreateMultipartUpload", "OK"), ==, 1);
  g_assert_cmpfloat (s3_count (server, "ListParts", "OK"), >=, 1);
  g_assert_cmpfloat (s3_count (server, "CompleteMultipartUpload", "OK"), ==, 1);
  g_assert_cmpfloat (s3_count (server, "PutObject", "OK"), ==, 0);
  g_assert_cmpint (count_rows (h->db_path, "SELECT count(*) FROM multipart_uploads"), ==, 0);
  assert_stored_object (creds, path, N_PARTS);
  photos = catalog (server->url, creds);
  g_assert_cmpuint (json_array_get_length (photos), ==, 1);

  app_test_server_stop (server);
  mp_test_rm_rf (server_dir);
}

/* Aborts @h's recorded upload behind the app's back, as a bucket's lifecycle rule would. */
static void
abort_out_of_band (AppHome                   *h,
                   const MagpieS3Credentials *creds)
{
  g_autoptr(SoupSession) session = soup_session_new ();
  g_autoptr(SoupMessage) message = NULL;
  g_autoptr(GBytes) body = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *key = NULL;
  g_autofree char *upload_id = NULL;
  g_autofree char *escaped = NULL;
  g_autofree char *query = NULL;
  sqlite3 *db = NULL;
  sqlite3_stmt *stmt = NULL;

  g_assert_cmpint (sqlite3_open_v2 (h->db_path, &db, SQLITE_OPEN_READONLY, NULL), ==,
                   SQLITE_OK);
  g_assert_cmpint (sqlite3_prepare_v2 (db, "SELECT key, upload_id FROM multipart_uploads", -1,
                                       &stmt, NULL), ==, SQLITE_OK);
  g_assert_cmpint (sqlite3_step (stmt), ==, SQLITE_ROW);
  key = g_strdup ((const char *) sqlite3_column_text (stmt, 0));
  upload_id = g_strdup ((const char *) sqlite3_column_text (stmt, 1));
  sqlite3_finalize (stmt);
  sqlite3_close (db);

  escaped = g_uri_escape_string (upload_id, NULL, FALSE);
  query = g_strdup_printf ("uploadId=%s", escaped);
  message = magpie_s3_message_new (creds, "DELETE", key, query, NULL, NULL, &error);
  g_assert_no_error (error);
  body = soup_session_send_and_read (session, message, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (soup_message_get_status (message), ==, 204);
}

/* The store forgot the upload while magpie was down (NoSuchUpload): the next run starts a
 * new one and sends the whole photo, which ends in the catalog once. */
static void
test_no_such_upload (void)
{
  g_autofree char *server_dir = NULL;
  g_autofree char *path = NULL;
  g_autoptr(AppHome) h = NULL;
  g_autoptr(AppTestServer) server = NULL;
  g_autoptr(GSubprocess) first = NULL;
  g_autoptr(MagpieS3Credentials) creds = NULL;
  g_autoptr(MagpieS3Credentials) after = NULL;
  g_autoptr(JsonArray) photos = NULL;
  g_autoptr(GError) error = NULL;
  guint before;

  if (!have_keyring ())
    return;
  server_dir = mp_test_make_tmpdir ("magpied-multipart-lost");
  h = app_home_new ();
  path = noise_png (h->dir, 4);
  server = mp_test_server_start (server_dir, NULL, &error);
  g_assert_no_error (error);

  first = spawn_magpie (h, server->url, path, TRUE);
  before = kill_after_first_part (h, first, server, FALSE);
  creds = keyring_credentials (server->url);
  abort_out_of_band (h, creds);

  after = restart_until_tagged (h, server);
  g_assert_cmpfloat (s3_count (server, "ListParts", "NoSuchUpload"), ==, 1);
  g_assert_cmpfloat (s3_count (server, "CreateMultipartUpload", "OK"), ==, 2);
  g_assert_cmpfloat (s3_count (server, "UploadPart", "OK"), ==, before + N_PARTS);
  g_assert_cmpfloat (s3_count (server, "CompleteMultipartUpload", "OK"), ==, 1);
  g_assert_cmpint (count_rows (h->db_path, "SELECT count(*) FROM multipart_uploads"), ==, 0);
  assert_stored_object (after, path, N_PARTS);
  photos = catalog (server->url, after);
  g_assert_cmpuint (json_array_get_length (photos), ==, 1);

  app_test_server_stop (server);
  mp_test_rm_rf (server_dir);
}

/* The keyring ----------------------------------------------------------------------------- */

static gboolean
secrets_owned (gpointer user_data)
{
  g_autoptr(GDBusConnection) bus = g_bus_get_sync (G_BUS_TYPE_SESSION, NULL, NULL);
  g_autoptr(GVariant) reply = NULL;
  gboolean owned = FALSE;

  if (bus == NULL)
    return FALSE;
  reply = g_dbus_connection_call_sync (bus, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                       "org.freedesktop.DBus", "NameHasOwner",
                                       g_variant_new ("(s)", "org.freedesktop.secrets"),
                                       G_VARIANT_TYPE ("(b)"), G_DBUS_CALL_FLAGS_NONE, -1, NULL,
                                       NULL);
  if (reply != NULL)
    g_variant_get (reply, "(b)", &owned);
  return owned;
}

/* A gnome-keyring-daemon on this test's session bus whose login keyring (in this test's
 * XDG_DATA_HOME) is unlocked by the password on its stdin, so nothing ever prompts. */
static GSubprocess *
start_keyring (void)
{
  g_autofree char *daemon = g_find_program_in_path ("gnome-keyring-daemon");
  g_autoptr(GSubprocess) process = NULL;
  g_autoptr(GError) error = NULL;
  GOutputStream *in;

  if (daemon == NULL)
    return NULL;
  process = g_subprocess_new (G_SUBPROCESS_FLAGS_STDIN_PIPE | G_SUBPROCESS_FLAGS_STDOUT_SILENCE,
                              &error, daemon, "--foreground", "--unlock",
                              "--components=secrets", NULL);
  if (process == NULL)
    return NULL;
  in = g_subprocess_get_stdin_pipe (process);
  g_output_stream_write_all (in, "magpie-test", 11, NULL, NULL, NULL);
  g_output_stream_close (in, NULL, NULL);
  if (!app_test_wait (secrets_owned, NULL, 15000))
    {
      g_subprocess_force_exit (process);
      g_subprocess_wait (process, NULL, NULL);
      return NULL;
    }
  return g_steal_pointer (&process);
}

int
main (int   argc,
      char *argv[])
{
  int status;

  g_test_init (&argc, &argv, NULL);
  home = app_test_isolate_dirs ();
  /* Before anything asks the session bus for a Secret Service (which would start one that
   * prompts for a new keyring's password). */
  keyring = start_keyring ();
  g_setenv ("MAGPIE_TEST_UPLOAD_RATE", TEST_RATE, TRUE);
  app = app_test_application_new ();
  g_object_set (gtk_settings_get_default (), "gtk-enable-animations", FALSE, NULL);

  g_test_add_func ("/ui/multipart/upload", test_upload);
  g_test_add_func ("/ui/multipart/delete-aborts", test_delete_aborts);
  g_test_add_func ("/ui/multipart/failed-part", test_failed_part);
  g_test_add_func ("/ui/multipart/resume-after-kill", test_resume_after_kill);
  g_test_add_func ("/ui/multipart/no-such-upload", test_no_such_upload);

  status = g_test_run ();
  app_test_close_all ();
  magpie_application_stop_workers (app);
  g_clear_object (&app);
  if (keyring != NULL)
    {
      g_subprocess_send_signal (keyring, SIGTERM);
      g_subprocess_wait (keyring, NULL, NULL);
      g_clear_object (&keyring);
    }
  mp_test_rm_rf (home);
  g_free (home);
  return status;
}
