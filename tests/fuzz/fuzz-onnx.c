/* fuzz-onnx.c - the ONNX loader: protobuf unpacking, graph building, constant folding and
 * planning for the declared input shapes (all of nn_model_new_from_data), and
 * nn_onnx_inspect()
 *
 * A model that opens must describe itself consistently: every input and output has a name
 * and a rank within NN_MAX_DIMS.
 */
#include "config.h"

#include "fuzz-common.h"

#include "nn.h"
#include "nn-onnx.h"

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  fuzz_init_logging ();
  return 0;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  g_autoptr(NnModel) model = NULL;
  g_autoptr(GError) error = NULL;
  g_auto(GStrv) ops = NULL;
  g_autofree char *io_problem = NULL;

  if (nn_onnx_inspect (data, size, &ops, &io_problem, NULL))
    fuzz_check (ops != NULL, "inspected without an op list");

  model = nn_model_new_from_data (data, size, &error);
  if (model == NULL)
    {
      fuzz_check (error != NULL && error->domain == NN_ERROR, "refused without an NN_ERROR");
      return 0;
    }
  for (guint i = 0; i < nn_model_get_n_inputs (model); i++)
    {
      int64_t ne[NN_MAX_DIMS];
      int rank = nn_model_get_input_shape (model, i, ne);

      fuzz_check (nn_model_get_input_name (model, i) != NULL, "input %u has no name", i);
      fuzz_check (rank <= NN_MAX_DIMS, "input %u has rank %d", i, rank);
    }
  for (guint i = 0; i < nn_model_get_n_outputs (model); i++)
    {
      int64_t ne[NN_MAX_DIMS];
      int rank = nn_model_get_output_shape (model, i, ne);

      fuzz_check (nn_model_get_output_name (model, i) != NULL, "output %u has no name", i);
      fuzz_check (rank <= NN_MAX_DIMS, "output %u has rank %d", i, rank);
    }
  return 0;
}
