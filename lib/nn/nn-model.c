/* nn-model.c - the public engine API (nn.h): open, describe, run, free */
#include "config.h"

#include <string.h>

#include "nn-graph.h"
#include "nn-onnx.h"
#include "nn-ops.h"

struct _NnModel {
  NnGraph  *graph;
  NnPlan   *plan;
  int       n_threads;
  gboolean  fast;
  NnTensor *outputs;
};

static int
default_threads (void)
{
  return (int) MAX (g_get_num_processors (), 1);
}

/* Plans for the declared input shapes (a dynamic batch as 1) so that a model that cannot
 * run fails when it is opened, not on its first image. Integer inputs, and other dynamic
 * dims, are left to the first run, since they may decide shapes. With a dynamic batch only
 * what does not depend on shapes (an unsupported attribute, say) fails the open. */
static gboolean
plan_declared (NnModel *model, GError **error)
{
  NnGraph *g = model->graph;
  g_autofree NnTensor *ins = g_new0 (NnTensor, MAX (g->inputs->len, 1));
  NnPlanOptions opts = { model->fast, model->n_threads };
  g_autoptr(GError) local = NULL;
  gboolean dynamic = FALSE;

  for (guint i = 0; i < g->inputs->len; i++)
    {
      const NnValue *v = nn_graph_value (g, g_array_index (g->inputs, int, i));

      if (v->dtype != NN_DTYPE_FLOAT || v->ndim < 0)
        return TRUE;
      ins[i].dtype = v->dtype;
      ins[i].ndim = v->ndim;
      for (int d = 0; d < v->ndim; d++)
        {
          if (v->ne[d] < 0 && d > 0)
            return TRUE;
          dynamic = dynamic || v->ne[d] < 0;
          ins[i].ne[d] = v->ne[d] < 0 ? 1 : v->ne[d];
        }
    }
  model->plan = nn_plan_new (g, ins, (int) g->inputs->len, &opts, &local);
  if (!model->plan && (!dynamic || g_error_matches (local, NN_ERROR, NN_ERROR_UNSUPPORTED)))
    {
      g_propagate_error (error, g_steal_pointer (&local));
      return FALSE;
    }
  return TRUE;
}

static NnModel *
model_from_graph (NnGraph *g, GError **error)
{
  NnModel *model;

  if (!g)
    return NULL;
  if (!nn_graph_fold (g, error))
    {
      nn_graph_free (g);
      return NULL;
    }
  model = g_new0 (NnModel, 1);
  model->graph = g;
  model->n_threads = default_threads ();
  model->fast = TRUE;
  model->outputs = g_new0 (NnTensor, g->outputs->len);
  if (!plan_declared (model, error))
    {
      nn_model_free (model);
      return NULL;
    }
  return model;
}

NnModel *
nn_model_new_from_data (const void *data, gsize size, GError **error)
{
  g_return_val_if_fail (data != NULL || size == 0, NULL);
  return model_from_graph (nn_onnx_load (data, size, error), error);
}

NnModel *
nn_model_new_from_file (const char *path, GError **error)
{
  g_autoptr(GMappedFile) map = NULL;
  g_autoptr(GError) local = NULL;
  NnModel *model = NULL;
  gpointer proto;

  g_return_val_if_fail (path != NULL, NULL);
  map = g_mapped_file_new (path, FALSE, &local);
  if (!map)
    {
      g_set_error (error, NN_ERROR, NN_ERROR_IO, "cannot read model: %s", local->message);
      return NULL;
    }
  proto = nn_onnx_unpack ((const guint8 *) g_mapped_file_get_contents (map),
                          g_mapped_file_get_length (map), error);
  /* the parsed copy is all we need: let the file's pages go before building the graph */
  g_clear_pointer (&map, g_mapped_file_unref);
  if (proto)
    model = model_from_graph (nn_onnx_graph (proto, error), error);
  if (!model)
    g_prefix_error (error, "%s: ", path);
  return model;
}

void
nn_model_free (NnModel *model)
{
  if (!model)
    return;
  nn_plan_free (model->plan);
  nn_graph_free (model->graph);
  g_free (model->outputs);
  g_free (model);
}

void
nn_model_set_threads (NnModel *model, int n_threads)
{
  int n;

  g_return_if_fail (model != NULL);
  n = n_threads > 0 ? n_threads : default_threads ();
  if (model->n_threads == n)
    return;
  model->n_threads = n;
  /* The plan made at open owns a thread pool of the old size (XNNPACK's pthreadpool, whose
   * workers spin): plan again on the next run. */
  g_clear_pointer (&model->plan, nn_plan_free);
}

int
nn_model_get_threads (NnModel *model)
{
  g_return_val_if_fail (model != NULL, 0);
  return model->n_threads;
}

void
nn_model_set_fast (NnModel *model, gboolean fast)
{
  g_return_if_fail (model != NULL);
  if (model->fast == !!fast)
    return;
  model->fast = !!fast;
  g_clear_pointer (&model->plan, nn_plan_free);
}

guint
nn_model_get_n_inputs (NnModel *model)
{
  g_return_val_if_fail (model != NULL, 0);
  return model->graph->inputs->len;
}

guint
nn_model_get_n_outputs (NnModel *model)
{
  g_return_val_if_fail (model != NULL, 0);
  return model->graph->outputs->len;
}

static const NnValue *
io_value (NnModel *model, GArray *ids, guint i)
{
  return nn_graph_value (model->graph, g_array_index (ids, int, i));
}

const char *
nn_model_get_input_name (NnModel *model, guint i)
{
  g_return_val_if_fail (model != NULL && i < model->graph->inputs->len, NULL);
  return io_value (model, model->graph->inputs, i)->name;
}

NnDType
nn_model_get_input_dtype (NnModel *model, guint i)
{
  g_return_val_if_fail (model != NULL && i < model->graph->inputs->len, NN_DTYPE_UNDEFINED);
  return io_value (model, model->graph->inputs, i)->dtype;
}

int
nn_model_get_input_shape (NnModel *model, guint i, int64_t *ne)
{
  const NnValue *v;

  g_return_val_if_fail (model != NULL && i < model->graph->inputs->len, -1);
  v = io_value (model, model->graph->inputs, i);
  if (ne && v->ndim > 0)
    memcpy (ne, v->ne, v->ndim * sizeof (int64_t));
  return v->ndim;
}

const char *
nn_model_get_output_name (NnModel *model, guint i)
{
  g_return_val_if_fail (model != NULL && i < model->graph->outputs->len, NULL);
  return io_value (model, model->graph->outputs, i)->name;
}

/* The output shape of the current plan (the last run, or the declared input shapes). */
int
nn_model_get_output_shape (NnModel *model, guint i, int64_t *ne)
{
  const NnTensor *t;

  g_return_val_if_fail (model != NULL && i < model->graph->outputs->len, -1);
  if (!model->plan)
    return -1;
  t = &model->plan->vals[g_array_index (model->graph->outputs, int, i)];
  if (ne && t->ndim > 0)
    memcpy (ne, t->ne, t->ndim * sizeof (int64_t));
  return t->ndim;
}

gboolean
nn_model_run (NnModel *model, const NnTensor *inputs, guint n_inputs, GError **error)
{
  NnExec exec = { model->n_threads, NULL };

  g_return_val_if_fail (model != NULL, FALSE);
  g_return_val_if_fail (inputs != NULL || n_inputs == 0, FALSE);
  for (guint i = 0; i < n_inputs; i++)
    if (!inputs[i].data && nn_tensor_numel (&inputs[i]) > 0)
      {
        g_set_error (error, NN_ERROR, NN_ERROR_INPUT, "input %u has no data", i);
        return FALSE;
      }
  if (!model->plan || !nn_plan_fits (model->plan, inputs, (int) n_inputs))
    {
      NnPlanOptions opts = { model->fast, model->n_threads };

      g_clear_pointer (&model->plan, nn_plan_free);
      model->plan = nn_plan_new (model->graph, inputs, (int) n_inputs, &opts, error);
      if (!model->plan)
        return FALSE;
    }
  /* OpenBLAS threads spin after each call; next to XNNPACK's pool they would steal its cores */
  if (model->plan->uses_blas)
    nn_fast_set_threads (model->plan->nhwc ? 1 : model->n_threads);
  nn_plan_run (model->plan, inputs, (int) n_inputs, &exec);
  for (guint i = 0; i < model->graph->outputs->len; i++)
    {
      int id = g_array_index (model->graph->outputs, int, i);

      model->outputs[i] = model->plan->vals[id];
      if (!model->plan->known[id])
        for (guint k = 0; k < n_inputs; k++)
          if (g_array_index (model->graph->inputs, int, k) == id)
            model->outputs[i].data = inputs[k].data;
    }
  return TRUE;
}

const NnTensor *
nn_model_get_output (NnModel *model, guint i)
{
  g_return_val_if_fail (model != NULL && i < model->graph->outputs->len, NULL);
  return &model->outputs[i];
}
