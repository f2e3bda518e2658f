/* app-test-util.c - what the app tests share: the real application, waiting on the main loop */
#include "config.h"

#include "app-test-util.h"

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
