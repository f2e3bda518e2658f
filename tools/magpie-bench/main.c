/* magpie-bench - time an ONNX model on random input and print one JSON object:
 * {"model", "batch", "threads", "images_per_second", "ms_per_batch_p50",
 *  "ms_per_batch_p95", "peak_rss_mb"} */
#include "config.h"

#include <json-glib/json-glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>

#include "nn.h"

#define EXIT_BAD_INPUT 2
#define MIN_RUNS 3

static char *opt_model;
static int opt_batch = 1;
static int opt_threads;
static double opt_seconds = 3.0;
static gboolean opt_reference;

static const GOptionEntry entries[] = {
  { "model", 'm', 0, G_OPTION_ARG_FILENAME, &opt_model, "ONNX model", "M.onnx" },
  { "batch", 'b', 0, G_OPTION_ARG_INT, &opt_batch, "Images per run (1)", "N" },
  { "threads", 't', 0, G_OPTION_ARG_INT, &opt_threads, "Kernel threads (default: cores)", "N" },
  { "seconds", 's', 0, G_OPTION_ARG_DOUBLE, &opt_seconds, "How long to measure (3)", "S" },
  { "reference", 0, 0, G_OPTION_ARG_NONE, &opt_reference, "Use only the reference kernels", NULL },
  { NULL }
};

static int
cmp_double (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;

  return x < y ? -1 : x > y;
}

static double
percentile (const double *sorted, guint n, double q)
{
  guint i = (guint) (q * (n - 1) + 0.5);

  return sorted[MIN (i, n - 1)];
}

int
main (int argc, char **argv)
{
  g_autoptr(GOptionContext) ctx = g_option_context_new ("- time an ONNX model");
  g_autoptr(GError) error = NULL;
  g_autoptr(NnModel) model = NULL;
  g_autoptr(GArray) times = g_array_new (FALSE, FALSE, sizeof (double));
  g_autoptr(GPtrArray) inputs = g_ptr_array_new_with_free_func ((GDestroyNotify) nn_tensor_free);
  g_autofree NnTensor *ins = NULL;
  g_autoptr(JsonBuilder) b = json_builder_new ();
  g_autoptr(JsonGenerator) gen = json_generator_new ();
  g_autoptr(JsonNode) root = NULL;
  g_autofree char *text = NULL;
  g_autoptr(GRand) rand = g_rand_new_with_seed (42);
  struct rusage ru;
  gint64 start, total = 0;
  guint n_in;

  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    {
      g_printerr ("magpie-bench: %s\n", error->message);
      return EXIT_BAD_INPUT;
    }
  if (!opt_model || opt_batch < 1 || opt_seconds <= 0)
    {
      g_printerr ("magpie-bench: usage: magpie-bench --model M.onnx [--batch N] [--threads N] "
                  "[--seconds S]\n");
      return EXIT_BAD_INPUT;
    }
  model = nn_model_new_from_file (opt_model, &error);
  if (!model)
    {
      g_printerr ("magpie-bench: bad model: %s\n", error->message);
      return EXIT_BAD_INPUT;
    }
  nn_model_set_threads (model, opt_threads);
  if (opt_reference)
    nn_model_set_fast (model, FALSE);

  n_in = nn_model_get_n_inputs (model);
  ins = g_new0 (NnTensor, MAX (n_in, 1));
  for (guint i = 0; i < n_in; i++)
    {
      int64_t ne[NN_MAX_DIMS];
      int rank = nn_model_get_input_shape (model, i, ne);
      NnTensor *t;

      if (rank < 1 || nn_model_get_input_dtype (model, i) != NN_DTYPE_FLOAT)
        {
          g_printerr ("magpie-bench: input '%s' needs a float tensor of known rank\n",
                      nn_model_get_input_name (model, i));
          return EXIT_BAD_INPUT;
        }
      if (ne[0] > 0 && ne[0] != opt_batch)
        {
          g_printerr ("magpie-bench: input '%s' has a fixed batch of %" G_GINT64_FORMAT "\n",
                      nn_model_get_input_name (model, i), ne[0]);
          return EXIT_BAD_INPUT;
        }
      ne[0] = opt_batch;
      for (int d = 1; d < rank; d++)
        if (ne[d] < 0)
          {
            g_printerr ("magpie-bench: input '%s' has a dynamic dim %d besides the batch\n",
                        nn_model_get_input_name (model, i), d);
            return EXIT_BAD_INPUT;
          }
      t = nn_tensor_new (NN_DTYPE_FLOAT, rank, ne);
      for (int64_t k = 0; k < nn_tensor_numel (t); k++)
        ((float *) t->data)[k] = (float) g_rand_double_range (rand, -1.0, 1.0);
      g_ptr_array_add (inputs, t);
      ins[i] = *t;
    }

  /* the first run plans; it is not timed */
  if (!nn_model_run (model, ins, n_in, &error))
    {
      g_printerr ("magpie-bench: %s\n", error->message);
      return EXIT_BAD_INPUT;
    }
  while (times->len < MIN_RUNS || total < opt_seconds * G_USEC_PER_SEC)
    {
      double ms;

      start = g_get_monotonic_time ();
      nn_model_run (model, ins, n_in, NULL);
      ms = (g_get_monotonic_time () - start) / 1000.0;
      total += g_get_monotonic_time () - start;
      g_array_append_val (times, ms);
    }
  qsort (times->data, times->len, sizeof (double), cmp_double);
  getrusage (RUSAGE_SELF, &ru);

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "model");
  json_builder_add_string_value (b, opt_model);
  json_builder_set_member_name (b, "batch");
  json_builder_add_int_value (b, opt_batch);
  json_builder_set_member_name (b, "threads");
  json_builder_add_int_value (b, nn_model_get_threads (model));
  json_builder_set_member_name (b, "images_per_second");
  json_builder_add_double_value (b, opt_batch * times->len / (total / (double) G_USEC_PER_SEC));
  json_builder_set_member_name (b, "ms_per_batch_p50");
  json_builder_add_double_value (b, percentile ((double *) times->data, times->len, 0.50));
  json_builder_set_member_name (b, "ms_per_batch_p95");
  json_builder_add_double_value (b, percentile ((double *) times->data, times->len, 0.95));
  json_builder_set_member_name (b, "peak_rss_mb");
  json_builder_add_double_value (b, ru.ru_maxrss / 1024.0);
  json_builder_end_object (b);
  root = json_builder_get_root (b);
  json_generator_set_root (gen, root);
  text = json_generator_to_data (gen, NULL);
  printf ("%s\n", text);
  return EXIT_SUCCESS;
}
