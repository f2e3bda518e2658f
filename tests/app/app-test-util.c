/* app-test-util.c - what the app tests share: the real application, waiting on the main loop */
#define _GNU_SOURCE /* memmem: secrets are searched in binary files too */
#include "config.h"

#include "app-test-util.h"

#include <glib/gstdio.h>
#include <signal.h>
#include <string.h>

#define APP_TEST_MAX_SERVERS 8

/* Servers still running, for the SIGABRT handler: a failed g_assert() aborts the test
 * without running any g_autoptr cleanup, and magpied would outlive it. */
static AppTestServer *running_servers[APP_TEST_MAX_SERVERS];

/* abort() comes from g_assert() on the test's own thread, not from inside malloc, so freeing
 * here is safe enough for a process that is about to die anyway. */
static void
stop_servers_on_abort (int signum)
{
  for (guint i = 0; i < APP_TEST_MAX_SERVERS; i++)
    {
      AppTestServer *server = running_servers[i];

      if (server == NULL)
        continue;
      running_servers[i] = NULL;
      if (server->process != NULL)
        g_subprocess_force_exit (server->process);
      if (server->own_data_dir)
        mp_test_rm_rf (server->data_dir);
      g_unlink (server->log_path);
    }
  signal (SIGABRT, SIG_DFL);
  raise (SIGABRT);
}

static void
track_server (AppTestServer *server,
              gboolean       running)
{
  static gsize handler_installed = 0;

  if (g_once_init_enter (&handler_installed))
    {
      signal (SIGABRT, stop_servers_on_abort);
      g_once_init_leave (&handler_installed, 1);
    }

  for (guint i = 0; i < APP_TEST_MAX_SERVERS; i++)
    {
      if (running && running_servers[i] == NULL)
        {
          running_servers[i] = server;
          return;
        }
      if (!running && running_servers[i] == server)
        {
          running_servers[i] = NULL;
          return;
        }
    }
  g_assert_false (running);
}

/* A real magpied on a loopback port the kernel picks. */
AppTestServer *
app_test_server_start (void)
{
  g_autoptr(GError) error = NULL;
  AppTestServer *server = mp_test_server_start (NULL, NULL, &error);

  g_assert_no_error (error);
  track_server (server, TRUE);
  return server;
}

/* Stops the server as an operator would (SIGTERM) and waits for it to go. */
void
app_test_server_stop (AppTestServer *server)
{
  mp_test_server_stop (server, SIGTERM, NULL);
}

void
app_test_server_free (AppTestServer *server)
{
  if (server == NULL)
    return;
  track_server (server, FALSE);
  mp_test_server_free (server);
}

static gboolean
timed_out_cb (gpointer user_data)
{
  gboolean *timed_out = user_data;

  *timed_out = TRUE;
  return G_SOURCE_REMOVE;
}

/* Runs the default main context until @condition holds or @timeout_ms pass; returns whether
 * it holds. The loop never blocks longer than the next event or the deadline. */
gboolean
app_test_wait (AppTestCondition condition,
               gpointer         user_data,
               guint            timeout_ms)
{
  gboolean timed_out = FALSE;
  guint timeout_id = g_timeout_add (timeout_ms, timed_out_cb, &timed_out);

  while (!condition (user_data) && !timed_out)
    g_main_context_iteration (NULL, TRUE);
  if (!timed_out)
    g_source_remove (timeout_id);
  return condition (user_data);
}

/* The application as magpie runs it, registered (so started up) but not yet activated. Not
 * unique: a test must not meet another magpie on the session bus. */
MagpieApplication *
app_test_application_new (void)
{
  g_autoptr(MagpieApplication) app = magpie_application_new ();
  g_autoptr(GError) error = NULL;

  g_application_set_flags (G_APPLICATION (app),
                           g_application_get_flags (G_APPLICATION (app)) |
                           G_APPLICATION_NON_UNIQUE);
  g_application_register (G_APPLICATION (app), NULL, &error);
  g_assert_no_error (error);
  return g_steal_pointer (&app);
}

/* The first visible toplevel of @type, or NULL. */
GtkWindow *
app_test_find_window (GType type)
{
  g_autoptr(GList) toplevels = gtk_window_list_toplevels ();

  for (GList *l = toplevels; l != NULL; l = l->next)
    if (G_TYPE_CHECK_INSTANCE_TYPE (l->data, type) && gtk_widget_get_visible (l->data))
      return l->data;
  return NULL;
}

static gboolean
no_toplevels (gpointer user_data)
{
  g_autoptr(GList) toplevels = gtk_window_list_toplevels ();

  return toplevels == NULL;
}

/* Destroys every toplevel and waits until GTK has let go of them all. */
void
app_test_close_all (void)
{
  g_autoptr(GList) toplevels = gtk_window_list_toplevels ();

  for (GList *l = toplevels; l != NULL; l = l->next)
    gtk_window_destroy (l->data);
  g_assert_true (app_test_wait (no_toplevels, NULL, 5000));
}

/* Points the XDG data, cache and config dirs at a new temporary directory (returned; remove
 * it with mp_test_rm_rf()), so the application's photo library never touches the real ones.
 * Call before the application is created. */
char *
app_test_isolate_dirs (void)
{
  char *home = mp_test_make_tmpdir ("magpie-app-test");
  const char *vars[][2] = {
    { "XDG_DATA_HOME", "data" },
    { "XDG_CACHE_HOME", "cache" },
    { "XDG_CONFIG_HOME", "config" },
  };

  for (guint i = 0; i < G_N_ELEMENTS (vars); i++)
    {
      g_autofree char *dir = g_build_filename (home, vars[i][1], NULL);

      g_assert_cmpint (g_mkdir_with_parents (dir, 0700), ==, 0);
      g_setenv (vars[i][0], dir, TRUE);
    }
  return home;
}

/* Saves the whole X display as @dir/@name with ImageMagick's import (the UI tests run in
 * their own Xvfb); says so and does nothing when import is not installed. */
void
app_test_screenshot (const char *dir,
                     const char *name)
{
  g_autofree char *path = g_build_filename (dir, name, NULL);
  g_autofree char *command = g_strdup_printf ("import -window root '%s'", path);
  g_autofree char *import = g_find_program_in_path ("import");
  g_autoptr(GError) error = NULL;
  int status = 0;

  if (import == NULL)
    {
      g_test_message ("no screenshot: ImageMagick's import is not installed");
      return;
    }
  g_spawn_command_line_sync (command, NULL, NULL, &status, &error);
  g_assert_no_error (error);
  g_assert_true (g_spawn_check_wait_status (status, NULL));
  g_test_message ("screenshot: %s", path);
}

/* g_ptr_array_sort() hands the comparison pointers to the elements. */
static int
compare_names (gconstpointer a,
               gconstpointer b)
{
  return g_strcmp0 (*(const char * const *) a, *(const char * const *) b);
}

/* The shared test photos (JPEG and PNG in ../shared/data/photos), sorted by name, so every
 * process that asks gets them in the same order; empty when the shared data is not there. */
GPtrArray *
app_test_shared_photos (void)
{
  g_autofree char *dir_path = mp_test_shared_data ("photos");
  g_autoptr(GDir) dir = NULL;
  GPtrArray *files = g_ptr_array_new_with_free_func (g_object_unref);
  g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  const char *name;

  dir = dir_path != NULL ? g_dir_open (dir_path, 0, NULL) : NULL;
  while (dir != NULL && (name = g_dir_read_name (dir)) != NULL)
    if (g_str_has_suffix (name, ".jpg") || g_str_has_suffix (name, ".png"))
      g_ptr_array_add (names, g_strdup (name));
  g_ptr_array_sort (names, compare_names);
  for (guint i = 0; i < names->len; i++)
    g_ptr_array_add (files, g_file_new_build_filename (dir_path, names->pdata[i], NULL));
  return files;
}

/* The same entry point as a drag from a file manager: the Gallery page's drop target. */
void
app_test_drop_files (MagpieWindow  *window,
                     GFile        **files,
                     guint          n_files)
{
  GtkDropTarget *target =
    magpie_gallery_page_get_drop_target (magpie_window_get_gallery_page (window));
  g_auto(GValue) value = G_VALUE_INIT;
  gboolean accepted = FALSE;

  g_value_init (&value, GDK_TYPE_FILE_LIST);
  g_value_take_boxed (&value, gdk_file_list_new_from_array (files, n_files));
  g_signal_emit_by_name (target, "drop", &value, 100.0, 100.0, &accepted);
  g_assert_true (accepted);
}

/* An AppTestCondition: the Gallery page @gallery_page has no import under way. */
gboolean
app_test_imports_done (gpointer gallery_page)
{
  return magpie_gallery_page_get_n_imports (gallery_page) == 0;
}

/* Adds @root and every widget below it that is a @type to @found. */
void
app_test_collect_widgets (GtkWidget *root,
                          GType      type,
                          GPtrArray *found)
{
  if (G_TYPE_CHECK_INSTANCE_TYPE (root, type))
    g_ptr_array_add (found, root);
  for (GtkWidget *child = gtk_widget_get_first_child (root); child != NULL;
       child = gtk_widget_get_next_sibling (child))
    app_test_collect_widgets (child, type, found);
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

/* Credentials for @app's own identity at @url, as its uploader gets them. */
MagpieS3Credentials *
app_test_credentials (MagpieApplication *app,
                      const char        *url)
{
  g_autoptr(SoupSession) session = soup_session_new ();
  MagpieIdentity *identity = magpie_application_get_identity (app);
  g_autoptr(MagpieCredentials) credentials = magpie_credentials_new (session, identity);
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GError) error = NULL;
  MagpieS3Credentials *c;

  magpie_credentials_get_async (credentials, url, NULL, result_cb, &result);
  g_assert_true (app_test_wait (have_result, &result, 20000));
  c = magpie_credentials_get_finish (credentials, result, &error);
  g_assert_no_error (error);
  return c;
}

/* How many photos the server's catalog holds for the identity of @token (up to 100). */
guint
app_test_catalog_count (const char *url,
                        const char *token)
{
  g_autoptr(SoupSession) session = soup_session_new ();
  g_autofree char *list_url = g_strconcat (url, "/v1/photos?limit=100", NULL);
  g_autoptr(JsonNode) body = NULL;
  JsonObject *root;
  guint status = 0;

  body = mp_test_http_call (session, "GET", list_url, token, NULL, &status, NULL);
  g_assert_cmpuint (status, ==, 200);
  g_assert_nonnull (body);
  root = json_node_get_object (body);
  g_assert_true (!json_object_has_member (root, "next_cursor") ||
                 json_object_get_null_member (root, "next_cursor"));
  return json_array_get_length (json_object_get_array_member (root, "photos"));
}

/* Every photo tagged with the server's tags. */
gboolean
app_test_all_server_tagged (gpointer user_data)
{
  GListModel *library = user_data;
  guint n = g_list_model_get_n_items (library);

  for (guint i = 0; i < n; i++)
    {
      g_autoptr(MagpiePhoto) photo = g_list_model_get_item (library, i);
      GPtrArray *tags = magpie_photo_get_tags (photo);

      if (magpie_photo_get_state (photo) != MAGPIE_PHOTO_STATE_TAGGED || tags->len == 0 ||
          ((MagpieTag *) tags->pdata[0])->source != MAGPIE_TAG_SOURCE_SERVER)
        return FALSE;
    }
  return n > 0;
}

/* Every photo done by the server: tagged, with the server's tags if it found any. */
gboolean
app_test_all_server_done (gpointer user_data)
{
  GListModel *library = user_data;
  guint n = g_list_model_get_n_items (library);

  for (guint i = 0; i < n; i++)
    {
      g_autoptr(MagpiePhoto) photo = g_list_model_get_item (library, i);
      GPtrArray *tags = magpie_photo_get_tags (photo);

      if (magpie_photo_get_state (photo) != MAGPIE_PHOTO_STATE_TAGGED ||
          (tags->len > 0 &&
           ((MagpieTag *) tags->pdata[0])->source != MAGPIE_TAG_SOURCE_SERVER))
        return FALSE;
    }
  return n > 0;
}

/* Every photo on the server: being tagged or tagged. */
gboolean
app_test_all_uploaded (gpointer user_data)
{
  GListModel *library = user_data;
  guint n = g_list_model_get_n_items (library);

  for (guint i = 0; i < n; i++)
    {
      g_autoptr(MagpiePhoto) photo = g_list_model_get_item (library, i);
      MagpiePhotoState state = magpie_photo_get_state (photo);

      if (state != MAGPIE_PHOTO_STATE_TAGGING && state != MAGPIE_PHOTO_STATE_TAGGED)
        return FALSE;
    }
  return n > 0;
}

/* Says where each photo is, for a failed wait. */
void
app_test_dump_states (GListModel *library)
{
  for (guint i = 0; i < g_list_model_get_n_items (library); i++)
    {
      g_autoptr(MagpiePhoto) photo = g_list_model_get_item (library, i);
      g_autofree char *state = magpie_photo_describe_state (photo);

      g_test_message ("%s: %s", magpie_photo_get_name (photo), state);
    }
}


/* Files under @dir (recursively, links not followed) whose bytes contain @needle; each is
 * named in the test log. */
guint
app_test_files_containing (const char *dir,
                           const char *needle)
{
  g_autoptr(GDir) d = g_dir_open (dir, 0, NULL);
  const char *name;
  guint found = 0;

  while (d != NULL && (name = g_dir_read_name (d)) != NULL)
    {
      g_autofree char *path = g_build_filename (dir, name, NULL);
      g_autofree char *contents = NULL;
      gsize len;

      if (g_file_test (path, G_FILE_TEST_IS_SYMLINK))
        continue;
      if (g_file_test (path, G_FILE_TEST_IS_DIR))
        found += app_test_files_containing (path, needle);
      else if (g_file_test (path, G_FILE_TEST_IS_REGULAR) &&
               g_file_get_contents (path, &contents, &len, NULL) &&
               memmem (contents, len, needle, strlen (needle)) != NULL)
        {
          g_test_message ("%s holds a secret", path);
          found++;
        }
    }
  return found;
}
