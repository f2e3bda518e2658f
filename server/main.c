/* main.c - magpied: command line, signals, main loop */
#define G_LOG_DOMAIN "magpied"

#include "config.h"

#include <glib-unix.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>

#include "mp-log.h"
#include "srv-config.h"
#include "srv-server.h"

static gboolean
quit_on_signal_cb (gpointer user_data)
{
  GMainLoop *loop = user_data;

  g_log_structured (G_LOG_DOMAIN, G_LOG_LEVEL_INFO, "REASON", "signal", "MESSAGE", "stopping");
  g_main_loop_quit (loop);
  return G_SOURCE_CONTINUE;
}

int
main (int   argc,
      char *argv[])
{
  g_autoptr(SrvConfig) config = srv_config_new ();
  g_autoptr(GError) error = NULL;
  g_autoptr(SrvServer) server = NULL;
  g_autoptr(GMainLoop) loop = NULL;
  g_auto(GStrv) envp = g_get_environ ();

  setlocale (LC_ALL, "");

  if (!srv_config_load (config, &argc, &argv, (const char * const *) envp, &error))
    {
      fprintf (stderr, "magpied: %s\n", error->message);
      if (g_error_matches (error, SRV_CONFIG_ERROR, SRV_CONFIG_ERROR_USAGE))
        fprintf (stderr, "Try 'magpied --help' for more information.\n");
      return 2;
    }
  if (argc == 0)
    {
      printf ("magpied %s\n", PACKAGE_VERSION);
      return 0;
    }

  mp_log_init ("magpied", config->log_format);

  server = srv_server_new (config, &error);
  if (server == NULL)
    {
      g_log_structured (G_LOG_DOMAIN, G_LOG_LEVEL_WARNING,
                        "ERROR", error->message, "MESSAGE", "cannot start");
      return 1;
    }

  loop = g_main_loop_new (NULL, FALSE);
  g_unix_signal_add (SIGTERM, quit_on_signal_cb, loop);
  g_unix_signal_add (SIGINT, quit_on_signal_cb, loop);

  g_log_structured (G_LOG_DOMAIN, G_LOG_LEVEL_INFO,
                    "URL", srv_server_get_url (server),
                    "DATA_DIR", config->data_dir,
                    "ROLE", srv_role_to_string (config->role),
                    "VERSION", PACKAGE_VERSION,
                    "MESSAGE", "listening");

  g_main_loop_run (loop);

  srv_server_shutdown (server);
  /* Let the closed connections' pending callbacks run so they release their sockets;
   * bounded, so a stuck source cannot hold up the stop. */
  for (int i = 0; i < 100 && g_main_context_iteration (NULL, FALSE); i++)
    ;
  g_log_structured (G_LOG_DOMAIN, G_LOG_LEVEL_INFO, "MESSAGE", "stopped");
  return 0;
}
