/* test-load.c - magpie-load against a real magpied on loopback with the bundled photo model:
 * a short run in each mode, its files checked against each other, and bad arguments */
#include "config.h"

#include <gdk-pixbuf/gdk-pixbuf.h>
#include <string.h>

#include "mp-test-util.h"

typedef struct {
  MpTestServer *server;
  char         *tmp;
  char         *photos;
  char         *digits;
} Fixture;

static const char *
load_path (void)
{
  const char *path = g_getenv ("MAGPIE_LOAD");

  return path ? path : MAGPIE_BUILD_DIR "/tools/magpie-load/magpie-load";
}

/* @n JPEGs (or PNGs) of @size px, each a different gradient, so every one has its own SHA-256. */
static char *
make_images (const char *parent,
             const char *name,
             guint       n,
             int         size,
             const char *type)
{
  char *dir = g_build_filename (parent, name, NULL);

  g_assert_cmpint (g_mkdir_with_parents (dir, 0700), ==, 0);
  for (guint i = 0; i < n; i++)
    {
      g_autoptr(GdkPixbuf) pb = gdk_pixbuf_new (GDK_COLORSPACE_RGB, FALSE, 8, size, size);
      g_autofree char *file = g_strdup_printf ("%s/img-%02u.%s", dir, i,
                                               strcmp (type, "jpeg") == 0 ? "jpg" : type);
      g_autoptr(GError) error = NULL;
      guint8 *px = gdk_pixbuf_get_pixels (pb);
      int stride = gdk_pixbuf_get_rowstride (pb);

      for (int y = 0; y < size; y++)
        for (int x = 0; x < size; x++)
          {
            guint8 *p = px + y * stride + x * 3;

            p[0] = (guint8) (x * 255 / size);
            p[1] = (guint8) (y * 255 / size);
            p[2] = (guint8) (i * 37);
          }
      if (strcmp (type, "png") == 0)
        {
          /* a digit-like stroke: a dark bar on light paper */
          for (int y = size / 5; y < size * 4 / 5; y++)
            for (int x = size / 2 - 3 - (int) i % 3; x < size / 2 + 3; x++)
              memset (px + y * stride + x * 3, 0, 3);
        }
      gdk_pixbuf_save (pb, file, type, &error, NULL);
      g_assert_no_error (error);
    }
  return dir;
}

static void
fixture_set_up (Fixture       *f,
                gconstpointer  data)
{
  const char *args[] = { "--workers", "1:2", "--worker-cooldown", "1", NULL };
  g_autoptr(GError) error = NULL;

  f->tmp = mp_test_make_tmpdir ("magpie-load-test");
  f->photos = make_images (f->tmp, "photos", 6, 96, "jpeg");
  f->digits = make_images (f->tmp, "digits", 3, 56, "png");
  f->server = mp_test_server_start (NULL, args, &error);
  g_assert_no_error (error);
}

static void
fixture_tear_down (Fixture       *f,
                   gconstpointer  data)
{
  g_clear_pointer (&f->server, mp_test_server_free);
  mp_test_rm_rf (f->tmp);
  g_free (f->tmp);
  g_free (f->photos);
  g_free (f->digits);
}

/* Runs magpie-load with @args after --url; returns its exit status, stderr in @err. */
static int
run_load (Fixture     *f,
          const char **args,
          char       **err)
{
  g_autoptr(GPtrArray) argv = g_ptr_array_new ();
  g_autoptr(GError) error = NULL;
  g_autoptr(GSubprocess) p = NULL;

  g_ptr_array_add (argv, (char *) load_path ());
  g_ptr_array_add (argv, "--url");
  g_ptr_array_add (argv, f->server->url);
  for (const char **a = args; *a; a++)
    g_ptr_array_add (argv, (char *) *a);
  g_ptr_array_add (argv, NULL);
  p = g_subprocess_newv ((const char *const *) argv->pdata,
                         G_SUBPROCESS_FLAGS_STDOUT_SILENCE | G_SUBPROCESS_FLAGS_STDERR_PIPE,
                         &error);
  g_assert_no_error (error);
  g_subprocess_communicate_utf8 (p, NULL, NULL, NULL, err, &error);
  g_assert_no_error (error);
  g_assert_true (g_subprocess_get_if_exited (p));
  return g_subprocess_get_exit_status (p);
}

static JsonObject *
load_json (const char  *dir,
           JsonParser  *parser)
{
  g_autofree char *path = g_build_filename (dir, "samples.json", NULL);
  g_autoptr(GError) error = NULL;

  json_parser_load_from_file (parser, path, &error);
  g_assert_no_error (error);
  g_assert_true (JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser)));
  return json_node_get_object (json_parser_get_root (parser));
}

typedef struct {
  guint samples;
  guint ok;
  guint errors;
  guint ok_of_kind;   /* successes of the kind asked for */
  guint of_kind;
} Counts;

/* Counts the samples, checks each one's shape, and holds the totals and summary.md to them. */
static Counts
check_report (const char *dir,
              const char *kind)
{
  g_autoptr(JsonParser) parser = json_parser_new ();
  JsonObject *root = load_json (dir, parser);
  JsonObject *totals = json_object_get_object_member (json_object_get_object_member (root, "meta"),
                                                      "totals");
  JsonArray *samples = json_object_get_array_member (root, "samples");
  g_autofree char *summary_path = g_build_filename (dir, "summary.md", NULL);
  g_autofree char *summary = NULL;
  g_autofree char *line = NULL;
  Counts c = { 0 };

  for (guint i = 0; i < json_array_get_length (samples); i++)
    {
      JsonObject *s = json_array_get_object_element (samples, i);
      JsonNode *error = json_object_get_member (s, "error");

      g_assert_true (json_object_has_member (s, "t"));
      g_assert_true (json_object_has_member (s, "phase"));
      g_assert_true (json_object_has_member (s, "status"));
      g_assert_cmpfloat (json_object_get_double_member (s, "latency_ms"), >=, 0);
      g_assert_nonnull (error);
      c.samples++;
      if (JSON_NODE_HOLDS_NULL (error))
        c.ok++;
      else
        c.errors++;
      if (strcmp (json_object_get_string_member (s, "kind"), kind) == 0)
        {
          c.of_kind++;
          c.ok_of_kind += JSON_NODE_HOLDS_NULL (error);
        }
    }
  g_assert_cmpuint (c.samples, ==, c.ok + c.errors);
  g_assert_cmpint (json_object_get_int_member (totals, "samples"), ==, c.samples);
  g_assert_cmpint (json_object_get_int_member (totals, "ok"), ==, c.ok);
  g_assert_cmpint (json_object_get_int_member (totals, "errors"), ==, c.errors);

  g_assert_true (g_file_get_contents (summary_path, &summary, NULL, NULL));
  line = g_strdup_printf ("**samples: %u (ok: %u, errors: %u)**", c.samples, c.ok, c.errors);
  if (strstr (summary, line) == NULL)
    g_error ("summary.md lacks '%s':\n%s", line, summary);
  return c;
}

/* summary.md in @dir holds @text verbatim. */
static void
summary_has (const char *dir,
             const char *text)
{
  g_autofree char *path = g_build_filename (dir, "summary.md", NULL);
  g_autofree char *summary = NULL;

  g_assert_true (g_file_get_contents (path, &summary, NULL, NULL));
  if (strstr (summary, text) == NULL)
    g_error ("%s lacks '%s':\n%s", path, text, summary);
}

static void
check_charts (const char *dir)
{
  static const char *const names[] = { "requests", "latency", "queue", "dashboard" };
  static const guint8 png_signature[8] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n' };
  g_autoptr(GPtrArray) argv = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(GSubprocess) python = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *out = NULL;

  g_ptr_array_add (argv, g_strdup ("/usr/bin/python3"));
  g_ptr_array_add (argv, g_strdup ("-c"));
  g_ptr_array_add (argv, g_strdup (
    "import sys, xml.etree.ElementTree as E\n"
    "for f in sys.argv[1:]:\n"
    "    root = E.parse(f).getroot()\n"
    "    assert root.tag == '{http://www.w3.org/2000/svg}svg', (f, root.tag)\n"
    "    assert len(list(root.iter())) > 20, f\n"
    "print('svg ok', len(sys.argv) - 1)\n"));
  for (guint i = 0; i < G_N_ELEMENTS (names); i++)
    {
      g_autofree char *png = g_strdup_printf ("%s/%s.png", dir, names[i]);
      g_autofree char *data = NULL;
      gsize len = 0;

      g_assert_true (g_file_get_contents (png, &data, &len, NULL));
      g_assert_cmpuint (len, >, 1000);
      g_assert_cmpmem (data, 8, png_signature, 8);
      /* IHDR: width and height, big-endian, at bytes 16 and 20 */
      g_assert_cmpuint (GUINT32_FROM_BE (*(guint32 *) (data + 16)), ==, 900);
      g_assert_cmpuint (GUINT32_FROM_BE (*(guint32 *) (data + 20)), ==,
                        strcmp (names[i], "dashboard") == 0 ? 960 : 320);
      g_ptr_array_add (argv, g_strdup_printf ("%s/%s.svg", dir, names[i]));
    }
  g_ptr_array_add (argv, NULL);
  python = g_subprocess_newv ((const char *const *) argv->pdata,
                              G_SUBPROCESS_FLAGS_STDOUT_PIPE, &error);
  g_assert_no_error (error);
  g_subprocess_communicate_utf8 (python, NULL, NULL, &out, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (g_subprocess_get_successful (python));
  g_assert_cmpstr (out, ==, "svg ok 4\n");
}

/* --replot draws the same report from samples.json alone. */
static void
check_replot (Fixture    *f,
              const char *out)
{
  g_autofree char *again = g_build_filename (f->tmp, "replot", NULL);
  g_autofree char *first_path = g_build_filename (out, "summary.md", NULL);
  g_autofree char *again_path = g_build_filename (again, "summary.md", NULL);
  g_autofree char *first = NULL;
  g_autofree char *second = NULL;
  g_autofree char *err = NULL;
  const char *args[] = { "--replot", out, "--out", again, NULL };
  g_autoptr(GError) error = NULL;
  g_autoptr(GSubprocess) p = g_subprocess_new (G_SUBPROCESS_FLAGS_STDERR_PIPE, &error,
                                               load_path (), args[0], args[1], args[2], args[3],
                                               NULL);

  g_assert_no_error (error);
  g_subprocess_communicate_utf8 (p, NULL, NULL, NULL, &err, &error);
  g_assert_no_error (error);
  g_assert_true (g_subprocess_get_successful (p));
  g_assert_true (g_file_get_contents (first_path, &first, NULL, NULL));
  g_assert_true (g_file_get_contents (again_path, &second, NULL, NULL));
  g_assert_cmpstr (first, ==, second);
  check_charts (again);
}

static void
test_photos (Fixture       *f,
             gconstpointer  data)
{
  g_autofree char *out = g_build_filename (f->tmp, "out-photos", NULL);
  g_autofree char *timeout = g_strdup_printf ("%.0f", 60 * mp_test_slowdown ());
  /* 5 users in the ramp ((1 + 4) / 2 × 2 s) and 12 in the steady phase */
  const char *args[] = { "--photos", f->photos, "--phases", "ramp:2s:1-4/s,steady:3s:4/s",
                         "--concurrency", "50", "--timeout", timeout, "--scrape-interval",
                         "0.5", "--out", out, NULL };
  g_autofree char *err = NULL;
  g_autoptr(JsonParser) parser = json_parser_new ();
  JsonArray *metrics;
  JsonObject *last;
  Counts sessions, tags;
  int status = run_load (f, args, &err);

  g_test_message ("magpie-load: %s", err);
  g_assert_cmpint (status, ==, 0);

  sessions = check_report (out, "session");
  tags = check_report (out, "tag");
  /* Every planned user arrived, and on a real server every one of them got its tag. */
  g_assert_cmpuint (sessions.of_kind, ==, 17);
  g_assert_cmpuint (sessions.ok_of_kind, ==, 17);
  g_assert_cmpuint (tags.ok_of_kind, ==, 17);
  /* identity, credentials, events, put, register, tag, session: seven samples a user */
  g_assert_cmpuint (sessions.samples, ==, 17 * 7);
  g_assert_cmpuint (sessions.errors, ==, 0);

  metrics = json_object_get_array_member (load_json (out, parser), "metrics");
  g_assert_cmpuint (json_array_get_length (metrics), >=, 5);
  last = json_array_get_object_element (metrics, json_array_get_length (metrics) - 1);
  /* the scrapes saw the work happen (the last may precede the last job's counter update) */
  g_assert_cmpfloat (json_object_get_double_member (last, "jobs_done"), >=, 1);
  g_assert_cmpfloat (json_object_get_double_member (last, "workers"), >=, 1);
  g_assert_false (JSON_NODE_HOLDS_NULL (json_object_get_member (last, "queue_depth")));

  /* the summary's tables: each phase's users, all completed, no errors */
  summary_has (out, "| ramp-1 | ramp 2s 1→4/s | 5 | 5 | 0 | 0 |");
  summary_has (out, "| steady-2 | steady 3s at 4/s | 12 | 12 | 0 | 0 |");
  summary_has (out, "| **all** |  | 17 | 17 | 0 | 0 |");
  summary_has (out, "| tag | 17 | 17 | 0 |");
  summary_has (out, "## Errors by kind\n\nNone.\n");
  /* the machine's load beside the figures, from /proc/loadavg */
  summary_has (out, "Load average of the machine (1, 5, 15 min): ");

  check_charts (out);
  check_replot (f, out);
}

static void
test_other_modes (Fixture       *f,
                  gconstpointer  data)
{
  g_autofree char *out_digits = g_build_filename (f->tmp, "out-digits", NULL);
  g_autofree char *out_creds = g_build_filename (f->tmp, "out-creds", NULL);
  const char *digits[] = { "--mode", "digits", "--photos", f->digits, "--phases",
                           "steady:1s:6/s", "--out", out_digits, NULL };
  const char *creds[] = { "--mode", "credentials", "--phases", "steady:1s:20/s", "--out",
                          out_creds, NULL };
  g_autofree char *err = NULL;
  g_autofree char *err2 = NULL;
  Counts c;

  g_assert_cmpint (run_load (f, digits, &err), ==, 0);
  c = check_report (out_digits, "predict");
  g_assert_cmpuint (c.of_kind, ==, 6);
  g_assert_cmpuint (c.ok_of_kind, ==, 6);
  g_assert_cmpuint (c.samples, ==, 6);

  /* an image the server cannot decode: every request an error of its own kind, in the
   * summary's table with the server's reason */
  {
    g_autofree char *bad_dir = g_build_filename (f->tmp, "bad", NULL);
    g_autofree char *bad_file = g_build_filename (bad_dir, "noise.png", NULL);
    g_autofree char *out_bad = g_build_filename (f->tmp, "out-bad-digits", NULL);
    const char *bad[] = { "--mode", "digits", "--photos", bad_dir, "--phases", "steady:1s:3/s",
                          "--out", out_bad, NULL };
    g_autofree char *err_bad = NULL;

    g_assert_cmpint (g_mkdir_with_parents (bad_dir, 0700), ==, 0);
    g_assert_true (g_file_set_contents (bad_file, "not a PNG at all", -1, NULL));
    g_assert_cmpint (run_load (f, bad, &err_bad), ==, 0);
    c = check_report (out_bad, "predict");
    g_assert_cmpuint (c.of_kind, ==, 3);
    g_assert_cmpuint (c.errors, ==, 3);
    summary_has (out_bad, "| predict | http-422 | 3 | bad_image: ");
  }

  g_assert_cmpint (run_load (f, creds, &err2), ==, 0);
  c = check_report (out_creds, "credentials");
  g_assert_cmpuint (c.of_kind, ==, 20);
  g_assert_cmpuint (c.ok_of_kind, ==, 20);
  check_charts (out_creds);

  /* watch: no users, only /metrics */
  {
    g_autofree char *out_watch = g_build_filename (f->tmp, "out-watch", NULL);
    const char *watch[] = { "--mode", "watch", "--phases", "pause:2s", "--scrape-interval", "0.5",
                            "--out", out_watch, NULL };
    g_autoptr(JsonParser) parser = json_parser_new ();
    g_autofree char *err3 = NULL;
    JsonObject *root;

    g_assert_cmpint (run_load (f, watch, &err3), ==, 0);
    c = check_report (out_watch, "session");
    g_assert_cmpuint (c.samples, ==, 0);
    root = load_json (out_watch, parser);
    g_assert_cmpuint (json_array_get_length (json_object_get_array_member (root, "metrics")),
                      >=, 3);
    check_charts (out_watch);
  }
}

static void
test_bad_phases (Fixture       *f,
                 gconstpointer  data)
{
  g_autofree char *out = g_build_filename (f->tmp, "out-bad", NULL);
  const char *args[] = { "--photos", f->photos, "--phases", "ramp:30x:0-50/s", "--out", out,
                         NULL };
  const char *mode[] = { "--photos", f->photos, "--mode", "videos", "--out", out, NULL };
  const char *watch[] = { "--mode", "watch", "--phases", "pause:1s,steady:1s:5/s", "--out", out,
                          NULL };
  g_autofree char *err = NULL;
  g_autofree char *err2 = NULL;
  g_autofree char *err3 = NULL;

  g_assert_cmpint (run_load (f, args, &err), ==, 2);
  g_assert_nonnull (strstr (err, "--phases"));
  g_assert_nonnull (strstr (err, "duration '30x'"));
  g_assert_nonnull (strstr (err, "ramp:DURATION:FROM-TO/s"));
  /* refused before anything was made */
  g_assert_false (g_file_test (out, G_FILE_TEST_EXISTS));

  g_assert_cmpint (run_load (f, mode, &err2), ==, 2);
  g_assert_nonnull (strstr (err2, "--mode 'videos'"));

  g_assert_cmpint (run_load (f, watch, &err3), ==, 2);
  g_assert_nonnull (strstr (err3, "only pause phases"));
  g_assert_false (g_file_test (out, G_FILE_TEST_EXISTS));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add ("/tools/load/photos", Fixture, NULL, fixture_set_up, test_photos,
              fixture_tear_down);
  g_test_add ("/tools/load/other-modes", Fixture, NULL, fixture_set_up,
              test_other_modes, fixture_tear_down);
  g_test_add ("/tools/load/bad-phases", Fixture, NULL, fixture_set_up, test_bad_phases,
              fixture_tear_down);
  return g_test_run ();
}
