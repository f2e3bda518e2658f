/* bench-gallery.c - a big library in a real window: start-up and scrolling
 *
 *   bench-gallery [--photos N] [--dir DIR] [--runs N]
 *
 * Makes (once, kept in DIR) a library of N distinct photos imported through the code a drop
 * runs, tagged on this device (the app works offline here, so nothing waits on a server).
 * Then, each run in a fresh process of its own: the time from spawning the process to the
 * window's first frame, to the first tiles with thumbnails, the longest stall of the main loop
 * in the first three seconds of main() (what someone clicking would feel), then a scroll through the
 * whole grid and back, half a page per frame, timing every frame, and the peak RSS. Prints one
 * JSON object per run and a Markdown summary. A benchmark, not a test: it asserts nothing
 * about speed; the aim (interactive within 1 s, smooth scrolling of 5,000 photos) is
 * judged from its figures in BENCHMARKS.md.
 */
#include "config.h"

#include <gdk-pixbuf/gdk-pixbuf.h>
#include <glib/gstdio.h>
#include <stdio.h>
#include <string.h>

#include "app-test-util.h"
#include "magpie-photo-tile.h"
#include "magpie-window.h"

#define IMPORT_BATCH 250
#define STALL_WATCH_US (3 * G_USEC_PER_SEC)

static int opt_photos = 5000;
static char *opt_dir;
static int opt_runs = 3;
static gint64 opt_child_t0;    /* set in the measuring child: monotonic µs at the spawn */
static gboolean opt_populate;  /* the populating child */

static GOptionEntry entries[] = {
  { "photos", 'n', 0, G_OPTION_ARG_INT, &opt_photos, "Photos in the library (5000)", "N" },
  { "dir", 'd', 0, G_OPTION_ARG_FILENAME, &opt_dir, "Where the library is kept between runs",
    "DIR" },
  { "runs", 'r', 0, G_OPTION_ARG_INT, &opt_runs, "Measured starts (3)", "N" },
  { "child-t0", 0, G_OPTION_FLAG_HIDDEN, G_OPTION_ARG_INT64, &opt_child_t0, NULL, NULL },
  { "populate", 0, G_OPTION_FLAG_HIDDEN, G_OPTION_ARG_NONE, &opt_populate, NULL, NULL },
  { NULL }
};

static void
use_dirs (const char *dir)
{
  const char *vars[][2] = {
    { "XDG_DATA_HOME", "data" },
    { "XDG_CACHE_HOME", "cache" },
    { "XDG_CONFIG_HOME", "config" },
  };

  for (guint i = 0; i < G_N_ELEMENTS (vars); i++)
    {
      g_autofree char *path = g_build_filename (dir, vars[i][1], NULL);

      g_mkdir_with_parents (path, 0700);
      g_setenv (vars[i][0], path, TRUE);
    }
}

static gboolean
window_mapped (gpointer user_data)
{
  return gtk_widget_get_mapped (user_data);
}

static MagpieWindow *
open_window (MagpieApplication *app)
{
  MagpieWindow *window;
  g_autoptr(GSettings) settings = g_settings_new (APPLICATION_ID);

  /* Offline: no server to wait for or to upload to. */
  g_settings_set_boolean (settings, "work-offline", TRUE);
  g_application_activate (G_APPLICATION (app));
  window = MAGPIE_WINDOW (gtk_application_get_active_window (GTK_APPLICATION (app)));
  g_assert_nonnull (window);
  g_assert_true (app_test_wait (window_mapped, window, 30000));
  gtk_window_set_default_size (GTK_WINDOW (window), 1024, 768);
  return window;
}

static gboolean
library_loaded (gpointer user_data)
{
  return magpie_library_get_loaded (user_data);
}

static guint
n_tagged (MagpieLibrary *library)
{
  guint n = 0;

  for (guint i = 0; i < g_list_model_get_n_items (G_LIST_MODEL (library)); i++)
    {
      g_autoptr(MagpiePhoto) photo = g_list_model_get_item (G_LIST_MODEL (library), i);

      n += magpie_photo_get_tags (photo)->len > 0;
    }
  return n;
}

static gboolean
all_tagged (gpointer user_data)
{
  MagpieLibrary *library = user_data;

  return n_tagged (library) == g_list_model_get_n_items (G_LIST_MODEL (library));
}

/* A distinct photo: a gradient whose colours come from @i, with a few noise dots. */
static GFile *
make_photo (const char *dir,
            guint       i)
{
  g_autoptr(GdkPixbuf) pixbuf = gdk_pixbuf_new (GDK_COLORSPACE_RGB, FALSE, 8, 320, 240);
  g_autofree char *name = g_strdup_printf ("photo-%05u.jpg", i);
  g_autofree char *path = g_build_filename (dir, name, NULL);
  g_autoptr(GError) error = NULL;
  guchar *pixels = gdk_pixbuf_get_pixels (pixbuf);
  int stride = gdk_pixbuf_get_rowstride (pixbuf);
  GRand *rand = g_rand_new_with_seed (i);

  for (int y = 0; y < 240; y++)
    for (int x = 0; x < 320; x++)
      {
        guchar *p = pixels + y * stride + x * 3;

        p[0] = (guchar) ((x + i * 37) & 0xff);
        p[1] = (guchar) ((y + i * 11) & 0xff);
        p[2] = (guchar) (((x + y) / 2 + i * 101) & 0xff);
        if (g_rand_int_range (rand, 0, 50) == 0)
          p[0] = p[1] = p[2] = (guchar) g_rand_int_range (rand, 0, 256);
      }
  g_rand_free (rand);
  if (!gdk_pixbuf_save (pixbuf, path, "jpeg", &error, "quality", "85", NULL))
    g_error ("cannot write %s: %s", path, error->message);
  return g_file_new_for_path (path);
}

/* The populating child: imports what is missing, waits for the local tags, quits. */
static int
populate (void)
{
  g_autoptr(MagpieApplication) app = app_test_application_new ();
  MagpieWindow *window = open_window (app);
  MagpieLibrary *library = magpie_application_get_library (app);
  g_autofree char *source = g_build_filename (opt_dir, "source", NULL);
  gint64 start;
  guint have;

  g_assert_true (app_test_wait (library_loaded, library, 120000));
  have = g_list_model_get_n_items (G_LIST_MODEL (library));
  g_mkdir_with_parents (source, 0700);
  start = g_get_monotonic_time ();
  for (guint i = have; i < (guint) opt_photos; i += IMPORT_BATCH)
    {
      guint n = MIN (IMPORT_BATCH, (guint) opt_photos - i);
      g_autoptr(GPtrArray) files = g_ptr_array_new_with_free_func (g_object_unref);

      for (guint j = 0; j < n; j++)
        g_ptr_array_add (files, make_photo (source, i + j));
      app_test_drop_files (window, (GFile **) files->pdata, files->len);
      g_assert_true (app_test_wait (app_test_imports_done,
                                    magpie_window_get_gallery_page (window), 600000));
      g_printerr ("\rimported %u of %d", i + n, opt_photos);
    }
  g_assert_true (app_test_wait (all_tagged, library, 1800000));
  if (have < (guint) opt_photos)
    g_printerr ("\nimported and tagged %d photos in %.1f s\n", opt_photos - have,
                (g_get_monotonic_time () - start) / 1e6);
  g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (library)), >=, (guint) opt_photos);
  magpie_library_sync (library);
  app_test_close_all ();
  return 0;
}

/* The measuring child ------------------------------------------------------------------- */

typedef struct {
  gint64   t0;
  gint64   main_entered;
  gint64   first_frame;
  gint64   tiles_shown;
  gint64   last_tick;      /* of the stall watch */
  gint64   max_stall;
  GArray  *frames;         /* gint64 µs between frames while scrolling */
  gint64   last_frame;
  int      direction;
  gboolean scrolling;
  gboolean done;
} Run;

static gboolean
first_frame_cb (GtkWidget     *widget,
                GdkFrameClock *clock,
                gpointer       user_data)
{
  Run *run = user_data;

  if (run->first_frame == 0)
    run->first_frame = g_get_monotonic_time ();
  return G_SOURCE_REMOVE;
}

static gboolean
stall_watch_cb (gpointer user_data)
{
  Run *run = user_data;
  gint64 now = g_get_monotonic_time ();

  if (run->last_tick != 0)
    run->max_stall = MAX (run->max_stall, now - run->last_tick);
  run->last_tick = now;
  return now - run->main_entered < STALL_WATCH_US ? G_SOURCE_CONTINUE : G_SOURCE_REMOVE;
}

/* Tiles on screen with their thumbnails. */
static guint
tiles_with_thumbnails (GtkWidget *window)
{
  g_autoptr(GPtrArray) tiles = g_ptr_array_new ();
  guint n = 0;

  app_test_collect_widgets (window, MAGPIE_TYPE_PHOTO_TILE, tiles);
  for (guint i = 0; i < tiles->len; i++)
    {
      MagpiePhoto *photo = magpie_photo_tile_get_photo (tiles->pdata[i]);

      n += photo != NULL && gtk_widget_get_mapped (tiles->pdata[i]) &&
           gtk_widget_get_child_visible (tiles->pdata[i]) &&
           magpie_photo_get_thumbnail (photo) != NULL;
    }
  return n;
}

static gboolean
some_tiles_shown (gpointer user_data)
{
  return tiles_with_thumbnails (user_data) >= 6;
}

static gboolean
scroll_tick_cb (GtkWidget     *widget,
                GdkFrameClock *clock,
                gpointer       user_data)
{
  Run *run = user_data;
  GtkAdjustment *adj = gtk_scrollable_get_vadjustment (GTK_SCROLLABLE (widget));
  gint64 now = gdk_frame_clock_get_frame_time (clock);
  double value = gtk_adjustment_get_value (adj);
  double page = gtk_adjustment_get_page_size (adj);
  double bottom = gtk_adjustment_get_upper (adj) - page;

  if (run->last_frame != 0)
    {
      gint64 dt = now - run->last_frame;

      g_array_append_val (run->frames, dt);
    }
  run->last_frame = now;
  value += run->direction * page / 2;
  if (run->direction > 0 && value >= bottom)
    {
      value = bottom;
      run->direction = -1;
    }
  else if (run->direction < 0 && value <= 0)
    {
      gtk_adjustment_set_value (adj, 0);
      run->done = TRUE;
      return G_SOURCE_REMOVE;
    }
  gtk_adjustment_set_value (adj, value);
  return G_SOURCE_CONTINUE;
}

static gboolean
scroll_done (gpointer user_data)
{
  return ((Run *) user_data)->done;
}

static int
cmp_int64 (gconstpointer a,
           gconstpointer b)
{
  gint64 x = *(const gint64 *) a, y = *(const gint64 *) b;

  return (x > y) - (x < y);
}

static double
percentile_ms (GArray *sorted,
               double  p)
{
  guint i;

  if (sorted->len == 0)
    return 0;
  i = MIN (sorted->len - 1, (guint) (p * sorted->len));
  return g_array_index (sorted, gint64, i) / 1000.0;
}

static gint64
peak_rss_kb (void)
{
  g_autofree char *status = NULL;
  const char *line;

  if (!g_file_get_contents ("/proc/self/status", &status, NULL, NULL))
    return -1;
  line = strstr (status, "VmHWM:");
  return line != NULL ? g_ascii_strtoll (line + 6, NULL, 10) : -1;
}

static int
measure (void)
{
  Run run = { .t0 = opt_child_t0, .direction = 1 };
  g_autoptr(MagpieApplication) app = NULL;
  MagpieWindow *window;
  MagpieLibrary *library;
  g_autoptr(GPtrArray) grids = g_ptr_array_new ();
  GtkWidget *grid;
  gint64 mapped, loaded, scroll_start, scroll_end, settled;
  guint over_33 = 0;

  run.main_entered = g_get_monotonic_time ();
  g_timeout_add (5, stall_watch_cb, &run);
  app = app_test_application_new ();
  window = open_window (app);
  mapped = g_get_monotonic_time ();
  gtk_widget_add_tick_callback (GTK_WIDGET (window), first_frame_cb, &run, NULL);
  library = magpie_application_get_library (app);
  g_assert_true (app_test_wait (library_loaded, library, 60000));
  loaded = g_get_monotonic_time ();
  g_assert_true (app_test_wait (some_tiles_shown, window, 60000));
  run.tiles_shown = g_get_monotonic_time ();
  /* The stall watch runs its course: three seconds from main(). */
  while (g_get_monotonic_time () - run.main_entered < STALL_WATCH_US)
    g_main_context_iteration (NULL, TRUE);

  app_test_collect_widgets (GTK_WIDGET (window), GTK_TYPE_GRID_VIEW, grids);
  g_assert_cmpuint (grids->len, ==, 1);
  grid = grids->pdata[0];
  run.frames = g_array_new (FALSE, FALSE, sizeof (gint64));
  scroll_start = g_get_monotonic_time ();
  gtk_widget_add_tick_callback (grid, scroll_tick_cb, &run, NULL);
  g_assert_true (app_test_wait (scroll_done, &run, 600000));
  scroll_end = g_get_monotonic_time ();
  /* Back at the top: how long until the tiles there have their thumbnails again. */
  g_assert_true (app_test_wait (some_tiles_shown, window, 60000));
  settled = g_get_monotonic_time ();

  g_array_sort (run.frames, cmp_int64);
  for (guint i = 0; i < run.frames->len; i++)
    over_33 += g_array_index (run.frames, gint64, i) > 33333;
  printf ("{\"photos\": %u, \"process_start_ms\": %.1f, \"window_mapped_ms\": %.1f, "
          "\"first_frame_ms\": %.1f, \"library_loaded_ms\": %.1f, \"tiles_shown_ms\": %.1f, "
          "\"max_main_loop_stall_ms\": %.1f, \"scroll_frames\": %u, \"scroll_s\": %.2f, "
          "\"frame_p50_ms\": %.1f, \"frame_p95_ms\": %.1f, \"frame_p99_ms\": %.1f, "
          "\"frame_max_ms\": %.1f, \"frames_over_33ms\": %u, \"thumbnails_back_ms\": %.1f, "
          "\"peak_rss_mb\": %.1f}\n",
          g_list_model_get_n_items (G_LIST_MODEL (library)),
          (run.main_entered - run.t0) / 1000.0, (mapped - run.t0) / 1000.0,
          (run.first_frame - run.t0) / 1000.0, (loaded - run.t0) / 1000.0,
          (run.tiles_shown - run.t0) / 1000.0, run.max_stall / 1000.0, run.frames->len + 1,
          (scroll_end - scroll_start) / 1e6, percentile_ms (run.frames, 0.50),
          percentile_ms (run.frames, 0.95), percentile_ms (run.frames, 0.99),
          percentile_ms (run.frames, 1.0), over_33, (settled - scroll_end) / 1000.0,
          peak_rss_kb () / 1024.0);
  fflush (stdout);
  g_array_unref (run.frames);
  app_test_close_all ();
  return 0;
}

/* The parent ---------------------------------------------------------------------------- */

static int
spawn_self (const char *self,
            const char *mode_arg,
            char      **out)
{
  g_autofree char *photos = g_strdup_printf ("--photos=%d", opt_photos);
  g_autofree char *dir = g_strdup_printf ("--dir=%s", opt_dir);
  g_autofree char *t0 = g_strdup_printf ("--child-t0=%" G_GINT64_FORMAT,
                                         g_get_monotonic_time ());
  const char *argv[] = { self, photos, dir, mode_arg != NULL ? mode_arg : t0, NULL };
  g_autoptr(GError) error = NULL;
  int status = 0;

  if (!g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_CHILD_INHERITS_STDIN, NULL, NULL, out,
                     NULL, &status, &error))
    g_error ("cannot run %s: %s", self, error->message);
  return g_spawn_check_wait_status (status, NULL) ? 0 : 1;
}

int
main (int   argc,
      char *argv[])
{
  g_autoptr(GOptionContext) context = g_option_context_new ("- start-up and scrolling of a "
                                                            "big library");
  g_autoptr(GError) error = NULL;
  g_autofree char *self = NULL;
  gboolean own_dir;

  g_option_context_add_main_entries (context, entries, NULL);
  g_option_context_set_ignore_unknown_options (context, FALSE);
  if (!g_option_context_parse (context, &argc, &argv, &error) || opt_photos < 1 ||
      opt_runs < 1)
    {
      g_printerr ("bench-gallery: %s\n", error != NULL ? error->message : "bad numbers");
      return 2;
    }
  own_dir = opt_dir == NULL;
  if (own_dir)
    opt_dir = mp_test_make_tmpdir ("magpie-bench-gallery");
  use_dirs (opt_dir);
  if (opt_populate || opt_child_t0 != 0)
    {
      gtk_init ();
      return opt_populate ? populate () : measure ();
    }

  self = g_file_read_link ("/proc/self/exe", NULL);
  if (spawn_self (self, "--populate", NULL) != 0)
    g_error ("populating the library failed");
  printf ("| run | first frame | tiles shown | longest stall (first 3 s) | scroll frames "
          "p50 / p95 / p99 / max | frames > 33 ms | peak RSS |\n|---|---|---|---|---|---|---|\n");
  for (int i = 0; i < opt_runs; i++)
    {
      g_autofree char *out = NULL;
      g_autoptr(JsonParser) parser = json_parser_new ();
      JsonObject *o;

      if (spawn_self (self, NULL, &out) != 0 ||
          !json_parser_load_from_data (parser, out, -1, NULL))
        g_error ("run %d failed: %s", i + 1, out != NULL ? out : "");
      g_printerr ("%s", out);
      o = json_node_get_object (json_parser_get_root (parser));
      printf ("| %d | %.0f ms | %.0f ms | %.0f ms | %.1f / %.1f / %.1f / %.1f ms "
              "(%" G_GINT64_FORMAT " frames) | %" G_GINT64_FORMAT " | %.0f MB |\n", i + 1,
              json_object_get_double_member (o, "first_frame_ms"),
              json_object_get_double_member (o, "tiles_shown_ms"),
              json_object_get_double_member (o, "max_main_loop_stall_ms"),
              json_object_get_double_member (o, "frame_p50_ms"),
              json_object_get_double_member (o, "frame_p95_ms"),
              json_object_get_double_member (o, "frame_p99_ms"),
              json_object_get_double_member (o, "frame_max_ms"),
              json_object_get_int_member (o, "scroll_frames"),
              json_object_get_int_member (o, "frames_over_33ms"),
              json_object_get_double_member (o, "peak_rss_mb"));
      fflush (stdout);
    }
  if (own_dir)
    mp_test_rm_rf (opt_dir);
  return 0;
}
