/* test-cli.c - magpie-train as people run it: bad flags and bad data exit 2 with a message;
 * eval reproduces the accuracy each bundled model's sidecar states */
#include "config.h"

#include <json-glib/json-glib.h>
#include <glib/gstdio.h>
#include <string.h>

static char *
tool (void)
{
  const char *build = g_getenv ("MAGPIE_BUILD_DIR");

  return g_build_filename (build ? build : MAGPIE_BUILD_DIR, "tools", "magpie-train",
                           "magpie-train", NULL);
}

static char *
shared (const char *rel)
{
  const char *root = g_getenv ("MAGPIE_SHARED_DATA");
  g_autofree char *path = g_build_filename (root ? root : MAGPIE_SOURCE_DIR "/../shared/data",
                                            rel, NULL);

  return g_file_test (path, G_FILE_TEST_EXISTS) ? g_steal_pointer (&path) : NULL;
}

static int
run (const char *const *argv, char **out, char **err)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GSubprocess) p = g_subprocess_newv (argv, G_SUBPROCESS_FLAGS_STDOUT_PIPE |
                                                G_SUBPROCESS_FLAGS_STDERR_PIPE, &error);

  g_assert_no_error (error);
  g_subprocess_communicate_utf8 (p, NULL, NULL, out, err, &error);
  g_assert_no_error (error);
  return g_subprocess_get_if_exited (p) ? g_subprocess_get_exit_status (p) : -1;
}

/* exit status 2 and @needle in the message */
static void
expect_bad (const char *const *argv, const char *needle)
{
  g_autofree char *out = NULL, *err = NULL;
  int status = run (argv, &out, &err);

  if (status != 2 || !strstr (err, needle))
    g_error ("%s %s: exit %d, stderr '%s' (wanted 2 and '%s')", argv[1], argv[2] ? argv[2] : "",
             status, err, needle);
}

static void
test_bad_input (void)
{
  g_autofree char *t = tool ();
  g_autofree char *tmp = g_dir_make_tmp ("magpie-train-cli-XXXXXX", NULL);
  g_autofree char *bogus = g_build_filename (tmp, "t10k-images-idx3-ubyte.gz", NULL);
  g_autofree char *model = g_build_filename (tmp, "m.onnx", NULL);

  {
    const char *argv[] = { t, NULL };
    expect_bad (argv, "usage:");
  }
  {
    const char *argv[] = { t, "dance", NULL };
    expect_bad (argv, "unknown command 'dance'");
  }
  {
    const char *argv[] = { t, "digits", "--out", "x.onnx", NULL };
    expect_bad (argv, "--mnist DIR");
  }
  {
    const char *argv[] = { t, "digits", "--mnist", tmp, "--out", "x.onnx", "--fraction", "0", NULL };
    expect_bad (argv, "--fraction must be in (0, 1]");
  }
  {
    const char *argv[] = { t, "digits", "--mnist", tmp, "--out", "x.onnx", "--epochs", "lots",
                           NULL };
    expect_bad (argv, "Cannot parse integer value");
  }
  {
    const char *argv[] = { t, "digits", "--mnist", tmp, "--out", "x.pt", NULL };
    expect_bad (argv, "--out must end in .onnx");
  }
  {
    const char *argv[] = { t, "photos", "--cifar10", tmp, "--out", "x.onnx", "--sweep", NULL };
    expect_bad (argv, "--sweep is for digits");
  }
  {
    const char *argv[] = { t, "digits", "--mnist", tmp, "--out", "x.onnx", NULL };
    expect_bad (argv, "cannot read the data set");
  }
  g_assert_true (g_file_set_contents (bogus, "not gzip", -1, NULL));
  {
    const char *argv[] = { t, "eval", "--model", "x.onnx", "--mnist", tmp, NULL };
    expect_bad (argv, "not a gzip file");
  }
  {
    const char *argv[] = { t, "eval", "--mnist", tmp, NULL };
    expect_bad (argv, "eval needs --model");
  }
  g_assert_true (g_file_set_contents (model, "\x08\x07garbage", -1, NULL));
  {
    const char *argv[] = { t, "eval", "--model", model, "--image", bogus, NULL };
    expect_bad (argv, model);
  }
  g_remove (bogus);
  g_remove (model);
  g_rmdir (tmp);
}

static double
sidecar_accuracy (const char *json)
{
  g_autoptr(JsonParser) p = json_parser_new ();
  g_autoptr(GError) error = NULL;

  json_parser_load_from_file (p, json, &error);
  g_assert_no_error (error);
  return json_object_get_double_member (
    json_object_get_object_member (json_node_get_object (json_parser_get_root (p)), "training"),
    "test_accuracy");
}

static void
eval_case (const char *name, const char *flag, const char *data_rel)
{
  g_autofree char *t = tool ();
  g_autofree char *model = g_strdup_printf ("%s/data/models/%s.onnx", MAGPIE_SOURCE_DIR, name);
  g_autofree char *json = g_strdup_printf ("%s/data/models/%s.json", MAGPIE_SOURCE_DIR, name);
  g_autofree char *data = shared (data_rel);
  g_autofree char *out = NULL, *err = NULL, *dir = NULL;
  const char *line;
  double acc;

  if (!g_file_test (model, G_FILE_TEST_EXISTS) || !data)
    {
      g_test_skip ("the model or its test set is absent");
      return;
    }
  dir = g_path_get_dirname (data);
  {
    const char *argv[] = { t, "eval", "--model", model, flag, dir, NULL };
    g_assert_cmpint (run (argv, &out, &err), ==, 0);
  }
  g_assert_nonnull (strstr (out, "confusion"));
  line = strstr (out, "accuracy: ");
  g_assert_nonnull (line);
  acc = g_ascii_strtod (line + 10, NULL);
  g_test_message ("%s: eval %.4f, sidecar %.4f", name, acc, sidecar_accuracy (json));
  g_assert_cmpfloat_with_epsilon (acc, sidecar_accuracy (json), 0.00005);
}

static void
test_eval_digits (void)
{
  eval_case ("digits", "--mnist", "mnist/t10k-images-idx3-ubyte.gz");
}

static void
test_eval_photos (void)
{
  eval_case ("photos", "--cifar10", "cifar10/test_batch.bin.gz");
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/train/cli/bad-input", test_bad_input);
  g_test_add_func ("/train/cli/eval-digits", test_eval_digits);
  g_test_add_func ("/train/cli/eval-photos", test_eval_photos);
  return g_test_run ();
}
