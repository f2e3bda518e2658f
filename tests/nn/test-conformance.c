/* test-conformance.c - the ONNX backend node tests (Debian's libonnx-testdata): every case
 * in data/node, data/pytorch-converted and data/simple whose ops magpie supports must match
 * the expected outputs with rtol 1e-3, atol 1e-7 (numpy assert_allclose semantics) */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "nn-onnx.h"
#include "nn-test-util.h"

#define RTOL 1e-3
#define ATOL 1e-7
#define MIN_CASES 250

/* Cases whose expected output is random: ONNX draws the training-mode Dropout mask from
 * numpy's generator, which no other implementation reproduces. */
static const char *random_cases[] = {
  "test_training_dropout",
  "test_training_dropout_default",
  "test_training_dropout_default_mask",
  "test_training_dropout_mask",
};

static const char *suites[] = { "node", "pytorch-converted", "simple" };

typedef struct {
  char *dir;
  char *name;
  char *skip;
} Case;

static GPtrArray *cases;
static int n_ran, n_passed, n_skipped;
static GString *skipped;

static int
name_cmp (gconstpointer a, gconstpointer b)
{
  return strcmp (*(char *const *) a, *(char *const *) b);
}

static void
case_free (Case *c)
{
  g_free (c->dir);
  g_free (c->name);
  g_free (c->skip);
  g_free (c);
}

static char *
skip_reason (const char *name, const char *model_path)
{
  g_autofree char *contents = NULL;
  g_auto(GStrv) ops = NULL;
  g_autofree char *io = NULL;
  g_autoptr(GError) error = NULL;
  gsize len;
  const char *supported = nn_supported_ops ();
  g_auto(GStrv) sup = g_strsplit (supported, ", ", -1);
  g_autoptr(GString) missing = g_string_new (NULL);

  for (guint i = 0; i < G_N_ELEMENTS (random_cases); i++)
    if (g_str_equal (name, random_cases[i]))
      return g_strdup ("random output (training-mode Dropout)");
  if (!g_file_get_contents (model_path, &contents, &len, &error) ||
      !nn_onnx_inspect ((const guint8 *) contents, len, &ops, &io, &error))
    return g_strdup_printf ("unreadable model: %s", error->message);
  for (int i = 0; ops[i]; i++)
    if (!g_strv_contains ((const char *const *) sup, ops[i]))
      g_string_append_printf (missing, "%s%s", missing->len ? ", " : "", ops[i]);
  if (missing->len)
    return g_strdup_printf ("unsupported op %s", missing->str);
  if (io)
    return g_strdup_printf ("unsupported graph I/O: %s", io);
  return NULL;
}

static GPtrArray *
load_pbs (const char *dir, const char *prefix)
{
  GPtrArray *list = g_ptr_array_new_with_free_func ((GDestroyNotify) nn_tensor_free);

  for (int i = 0;; i++)
    {
      g_autofree char *file = g_strdup_printf ("%s_%d.pb", prefix, i);
      g_autofree char *path = g_build_filename (dir, file, NULL);
      g_autoptr(GError) error = NULL;
      NnTensor *t;

      if (!g_file_test (path, G_FILE_TEST_EXISTS))
        break;
      t = nn_tensor_load_pb (path, &error);
      g_assert_no_error (error);
      g_ptr_array_add (list, t);
    }
  return list;
}

static void
run_case (gconstpointer data)
{
  const Case *c = data;
  g_autofree char *model_path = g_build_filename (c->dir, "model.onnx", NULL);
  g_autoptr(NnModel) model = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GDir) d = NULL;
  g_autoptr(GPtrArray) sets = g_ptr_array_new_with_free_func (g_free);
  const char *entry;

  if (c->skip)
    {
      n_skipped++;
      g_string_append_printf (skipped, "  %s: %s\n", c->name, c->skip);
      g_test_skip (c->skip);
      return;
    }
  n_ran++;
  model = nn_model_new_from_file (model_path, &error);
  if (!model)
    {
      g_test_fail_printf ("%s: %s", c->name, error->message);
      return;
    }
  d = g_dir_open (c->dir, 0, &error);
  g_assert_no_error (error);
  while ((entry = g_dir_read_name (d)))
    if (g_str_has_prefix (entry, "test_data_set_"))
      g_ptr_array_add (sets, g_build_filename (c->dir, entry, NULL));
  g_assert_cmpuint (sets->len, >, 0);

  /* the fast path (the default) first, then the reference kernels alone */
  for (guint s = 0; s < 2 * sets->len; s++)
    {
      const char *set = g_ptr_array_index (sets, s % sets->len);
      g_autoptr(GPtrArray) ins = load_pbs (set, "input");
      g_autoptr(GPtrArray) outs = load_pbs (set, "output");
      g_autofree NnTensor *inputs = g_new0 (NnTensor, MAX (ins->len, 1));

      nn_model_set_fast (model, s < sets->len);
      for (guint i = 0; i < ins->len; i++)
        inputs[i] = *(NnTensor *) g_ptr_array_index (ins, i);
      if (!nn_model_run (model, inputs, ins->len, &error))
        {
          g_test_fail_printf ("%s, set %u: %s", c->name, s, error->message);
          return;
        }
      if (outs->len != nn_model_get_n_outputs (model))
        {
          g_test_fail_printf ("%s: %u expected outputs for %u graph outputs", c->name,
                              outs->len, nn_model_get_n_outputs (model));
          return;
        }
      for (guint i = 0; i < outs->len; i++)
        {
          g_autofree char *diff = nn_test_compare (nn_model_get_output (model, i),
                                                   g_ptr_array_index (outs, i), RTOL, ATOL);

          if (diff)
            {
              g_test_fail_printf ("%s, set %u, output %u: %s", c->name, s, i, diff);
              return;
            }
        }
    }
  n_passed++;
}

static void
summary (void)
{
  g_autofree char *line = g_strdup_printf ("conformance: %d cases ran, %d passed, %d skipped",
                                           n_ran, n_passed, n_skipped);

  g_test_message ("%s", line);
  g_test_message ("skipped:\n%s", skipped->str);
  /* also on stderr, so that meson's log and a person running the test see the numbers */
  fprintf (stderr, "%s\nskipped:\n%s", line, skipped->str);
  g_assert_cmpint (n_passed, ==, n_ran);
  g_assert_cmpint (n_ran, >=, MIN_CASES);
}

int
main (int argc, char **argv)
{
  const char *root = nn_test_onnx_data ();
  int ret;

  g_test_init (&argc, &argv, NULL);
  if (!root)
    {
      g_print ("1..0 # SKIP libonnx-testdata is not installed "
               "(/usr/share/libonnx-testdata/data)\n");
      return 77;
    }
  cases = g_ptr_array_new_with_free_func ((GDestroyNotify) case_free);
  skipped = g_string_new (NULL);
  for (guint s = 0; s < G_N_ELEMENTS (suites); s++)
    {
      g_autofree char *dir = g_build_filename (root, suites[s], NULL);
      g_autoptr(GDir) d = g_dir_open (dir, 0, NULL);
      g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
      const char *entry;

      if (!d)
        continue;
      while ((entry = g_dir_read_name (d)))
        g_ptr_array_add (names, g_strdup (entry));
      g_ptr_array_sort (names, name_cmp);
      for (guint i = 0; i < names->len; i++)
        {
          Case *c = g_new0 (Case, 1);
          g_autofree char *model_path = NULL;
          g_autofree char *path = NULL;

          c->name = g_strdup (g_ptr_array_index (names, i));
          c->dir = g_build_filename (dir, c->name, NULL);
          model_path = g_build_filename (c->dir, "model.onnx", NULL);
          if (!g_file_test (model_path, G_FILE_TEST_EXISTS))
            {
              case_free (c);
              continue;
            }
          c->skip = skip_reason (c->name, model_path);
          g_ptr_array_add (cases, c);
          path = g_strdup_printf ("/nn/conformance/%s/%s", suites[s], c->name);
          g_test_add_data_func (path, c, run_case);
        }
    }
  g_test_add_func ("/nn/conformance-summary/all", summary);
  ret = g_test_run ();
  g_ptr_array_free (cases, TRUE);
  g_string_free (skipped, TRUE);
  return ret;
}
