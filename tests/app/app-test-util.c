/* app-test-util.c - what the app tests share: the real application, waiting on the main loop */
#include "config.h"

#include "app-test-util.h"

#include <glib/gstdio.h>
#include <signal.h>

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
