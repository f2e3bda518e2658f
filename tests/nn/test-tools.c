/* test-tools.c - magpie-infer and magpie-bench as people run them: JSON on stdout, exit
 * status 2 and a message on stderr for a bad model or image */
#include "config.h"

#include <json-glib/json-glib.h>
#include <string.h>

#include "nn-test-util.h"

static char *
tool_path (const char *name)
{
  const char *build = g_getenv ("MAGPIE_BUILD_DIR");

  return g_build_filename (build ? build : MAGPIE_BUILD_DIR, "tools", name, name, NULL);
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
  return g_subprocess_get_exit_status (p);
}

static void
test_infer (void)
{
  g_autofree char *tool = tool_path ("magpie-infer");
  g_autofree char *model = nn_test_shared ("models/squeezenet1.1-fp32.onnx");
  g_autofree char *labels = nn_test_shared ("models/synset.txt");
  g_autofree char *photo = nn_test_shared ("photos/golden_retriever_winml.jpg");
  g_autofree char *pb = nn_test_shared ("models/squeezenet1.1-fp32-testdata/test_data_set_1/input_0.pb");
  g_autofree char *out = NULL, *err = NULL;
  g_auto(GStrv) lines = NULL;
  g_autoptr(JsonParser) parser = json_parser_new ();
  g_autoptr(GError) error = NULL;
  JsonObject *o;
  JsonArray *top;

  if (!model || !photo || !pb || !labels)
    {
      g_test_skip ("shared data (MAGPIE_SHARED_DATA) is absent");
      return;
    }
  {
    const char *argv[] = { tool, "--model", model, "--labels", labels, "--top", "3", "--raw",
                           "--resize", "256", "--bgr", "--mean", "104,117,123", photo, pb, NULL };

    g_assert_cmpint (run (argv, &out, &err), ==, 0);
  }
  lines = g_strsplit (g_strstrip (out), "\n", -1);
  g_assert_cmpuint (g_strv_length (lines), ==, 2);
  json_parser_load_from_data (parser, lines[0], -1, &error);
  g_assert_no_error (error);
  o = json_node_get_object (json_parser_get_root (parser));
  g_assert_cmpstr (json_object_get_string_member (o, "file"), ==, photo);
  top = json_object_get_array_member (o, "top");
  g_assert_cmpuint (json_array_get_length (top), ==, 3);
  o = json_array_get_object_element (top, 0);
  g_assert_cmpint (json_object_get_int_member (o, "index"), ==, 207);
  g_assert_cmpstr (json_object_get_string_member (o, "label"), ==, "n02099601 golden retriever");
  g_assert_cmpfloat (json_object_get_double_member (o, "confidence"), >, 0.9);

  json_parser_load_from_data (parser, lines[1], -1, &error);
  g_assert_no_error (error);
  o = json_node_get_object (json_parser_get_root (parser));
  g_assert_cmpuint (json_array_get_length (json_object_get_array_member (o, "output")), ==, 1000);
  o = json_array_get_object_element (json_object_get_array_member (o, "top"), 0);
  g_assert_cmpint (json_object_get_int_member (o, "index"), ==, 335);
}

static void
test_infer_errors (void)
{
  g_autofree char *tool = tool_path ("magpie-infer");
  g_autofree char *model = nn_test_shared ("models/squeezenet1.1-fp32.onnx");
  g_autofree char *bad_image = nn_test_shared ("bad-images/text_named.jpg");
  g_autofree char *out = NULL, *err = NULL;

  {
    const char *argv[] = { tool, "--model", "/nonexistent.onnx", "x.jpg", NULL };

    g_assert_cmpint (run (argv, &out, &err), ==, 2);
    g_assert_nonnull (strstr (err, "bad model"));
  }
  if (!model || !bad_image)
    return;
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);
  {
    /* a model given as an image, and an image that is text */
    const char *argv[] = { tool, "--model", model, model, bad_image, NULL };

    g_assert_cmpint (run (argv, &out, &err), ==, 2);
    g_assert_nonnull (strstr (err, "text_named.jpg"));
    g_assert_cmpstr (out, ==, "");
  }
}

static void
test_bench (void)
{
  g_autofree char *tool = tool_path ("magpie-bench");
  g_autofree char *model = nn_test_shared ("models/mnist-8.onnx");
  g_autofree char *out = NULL, *err = NULL;
  g_autoptr(JsonParser) parser = json_parser_new ();
  g_autoptr(GError) error = NULL;
  JsonObject *o;
  const char *keys[] = { "model", "batch", "threads", "images_per_second", "ms_per_batch_p50",
                         "ms_per_batch_p95", "peak_rss_mb" };

  if (!model)
    {
      g_test_skip ("shared data (MAGPIE_SHARED_DATA) is absent");
      return;
    }
  {
    const char *argv[] = { tool, "--model", model, "--threads", "1", "--seconds", "0.2", NULL };

    g_assert_cmpint (run (argv, &out, &err), ==, 0);
  }
  json_parser_load_from_data (parser, out, -1, &error);
  g_assert_no_error (error);
  o = json_node_get_object (json_parser_get_root (parser));
  for (guint i = 0; i < G_N_ELEMENTS (keys); i++)
    g_assert_true (json_object_has_member (o, keys[i]));
  g_assert_cmpint (json_object_get_int_member (o, "batch"), ==, 1);
  g_assert_cmpint (json_object_get_int_member (o, "threads"), ==, 1);
  g_assert_cmpfloat (json_object_get_double_member (o, "images_per_second"), >, 0);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/nn/tools/infer", test_infer);
  g_test_add_func ("/nn/tools/infer-errors", test_infer_errors);
  g_test_add_func ("/nn/tools/bench", test_bench);
  return g_test_run ();
}
