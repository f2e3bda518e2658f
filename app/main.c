/* main.c - the magpie executable: everything else lives in the magpie-app library */
#include "config.h"

#include <glib/gi18n.h>
#include <locale.h>

#include "magpie-application.h"

int
main (int   argc,
      char *argv[])
{
  g_autoptr(MagpieApplication) app = NULL;

  /* Before the command line is parsed, so --help is translated too. */
  setlocale (LC_ALL, "");

  app = magpie_application_new ();
  return g_application_run (G_APPLICATION (app), argc, argv);
}
