/* nn-graph.c - graph bookkeeping, constant folding at load, and plans: shapes and folding
 * for one set of input shapes, one arena for every intermediate, then runs */
#include "config.h"

#include <string.h>

#include "nn-graph.h"
#include "nn-ops.h"

/* Integer graph inputs up to this many elements are read at plan time, so that shapes,
 * axes and pads fed as inputs can decide shapes; a change in their contents re-plans. */
#define NN_PLAN_TIME_INPUT_MAX 4096

static void
attr_clear (NnAttr *a)
{
  g_free (a->name);
  g_free (a->s);
  nn_tensor_free (a->t);
  g_free (a->floats);
  g_free (a->ints);
}

static void
node_free (NnNode *node)
{
  if (!node)
    return;
  for (int i = 0; i < node->n_attrs; i++)
    attr_clear (&node->attrs[i]);
  g_free (node->attrs);
  g_free (node->in);
  g_free (node->out);
  g_free (node->name);
  g_free (node->op_type);
  g_free (node);
}

static void
value_free (NnValue *v)
{
  nn_tensor_free (v->konst);
  g_free (v->name);
  g_free (v);
}

void
nn_graph_free (NnGraph *g)
{
  if (!g)
    return;
  for (guint i = 0; i < g->nodes->len; i++)
    node_free (g_ptr_array_index (g->nodes, i));
  g_ptr_array_free (g->nodes, TRUE);
  for (guint i = 0; i < g->values->len; i++)
    value_free (g_ptr_array_index (g->values, i));
  g_ptr_array_free (g->values, TRUE);
  g_array_free (g->inputs, TRUE);
  g_array_free (g->outputs, TRUE);
  g_hash_table_destroy (g->by_name);
  g_free (g);
}

NnValue *
nn_graph_value (NnGraph *g, int id)
{
  return g_ptr_array_index (g->values, id);
}

NnNode *
nn_graph_node (NnGraph *g, int i)
{
  return g_ptr_array_index (g->nodes, i);
}

int
nn_graph_add_value (NnGraph *g, const char *name)
{
  NnValue *v = g_new0 (NnValue, 1);
  int id = (int) g->values->len;

  v->name = g_strdup (name);
  v->ndim = -1;
  v->producer = -1;
  g_ptr_array_add (g->values, v);
  g_hash_table_insert (g->by_name, v->name, GINT_TO_POINTER (id + 1));
  return id;
}

int
nn_graph_find (NnGraph *g, const char *name)
{
  return GPOINTER_TO_INT (g_hash_table_lookup (g->by_name, name)) - 1;
}

const NnAttr *
nn_node_attr (const NnNode *node, const char *name)
{
  for (int i = 0; i < node->n_attrs; i++)
    if (g_str_equal (node->attrs[i].name, name))
      return &node->attrs[i];
  return NULL;
}

int64_t
nn_node_attr_int (const NnNode *node, const char *name, int64_t def)
{
  const NnAttr *a = nn_node_attr (node, name);

  return a && a->type == NN_ATTR_INT ? a->i : def;
}

float
nn_node_attr_float (const NnNode *node, const char *name, float def)
{
  const NnAttr *a = nn_node_attr (node, name);

  return a && a->type == NN_ATTR_FLOAT ? a->f : def;
}

const char *
nn_node_attr_string (const NnNode *node, const char *name, const char *def)
{
  const NnAttr *a = nn_node_attr (node, name);

  return a && a->type == NN_ATTR_STRING && a->s ? a->s : def;
}

int
nn_node_attr_ints (const NnNode *node, const char *name, const int64_t **v)
{
  const NnAttr *a = nn_node_attr (node, name);

  *v = NULL;
  if (!a || a->type != NN_ATTR_INTS)
    return -1;
  *v = a->ints;
  return a->n;
}

static void
step_init (NnStep *st, const NnNode *node, NnTensor *vals)
{
  memset (st, 0, sizeof *st);
  st->node = node;
  st->n_in = node->n_in;
  st->n_out = node->n_out;
  for (int k = 0; k < node->n_in; k++)
    st->in[k] = node->in[k] >= 0 ? &vals[node->in[k]] : NULL;
  for (int k = 0; k < node->n_out; k++)
    st->out[k] = node->out[k] >= 0 ? &vals[node->out[k]] : NULL;
  st->kernel_name = "ref";
}

static void
step_clear (NnStep *st)
{
  if (st->fast && st->fast_free)
    st->fast_free (st->fast);
  st->fast = NULL;
}

gboolean
nn_graph_fold (NnGraph *g, GError **error)
{
  guint nv = g->values->len;
  g_autofree NnTensor *vals = g_new0 (NnTensor, nv);
  g_autofree gboolean *used = g_new0 (gboolean, nv);
  GPtrArray *kept = g_ptr_array_new ();
  NnExec exec = { 1, NULL };

  for (guint i = 0; i < nv; i++)
    if (nn_graph_value (g, (int) i)->konst)
      vals[i] = *nn_graph_value (g, (int) i)->konst;

  for (guint i = 0; i < g->nodes->len; i++)
    {
      NnNode *node = nn_graph_node (g, (int) i);
      gboolean known[NN_MAX_IO], all = TRUE;
      NnStep st;
      NnOpCtx ctx = { g, node, &st, known, FALSE, 1 };

      for (int k = 0; k < node->n_in; k++)
        {
          known[k] = node->in[k] < 0 || nn_graph_value (g, node->in[k])->konst != NULL;
          all = all && known[k];
        }
      if (!all)
        {
          g_ptr_array_add (kept, node);
          continue;
        }
      step_init (&st, node, vals);
      if (!nn_op_plan (&ctx, error))
        {
          /* The nodes folded so far are freed already: the graph keeps only the others,
           * or freeing it would free those again. */
          for (guint j = i; j < g->nodes->len; j++)
            g_ptr_array_add (kept, g_ptr_array_index (g->nodes, j));
          g_ptr_array_free (g->nodes, TRUE);
          g->nodes = kept;
          return FALSE;
        }
      for (int k = 0; k < node->n_out; k++)
        if (st.out[k])
          {
            NnValue *v = nn_graph_value (g, node->out[k]);
            NnTensor *t = nn_tensor_new (st.out[k]->dtype, st.out[k]->ndim, st.out[k]->ne);

            t->name = g_strdup (v->name);
            v->konst = t;
            v->dtype = t->dtype;
            vals[node->out[k]] = *t;
          }
      st.run (&st, &exec);
      step_clear (&st);
      node_free (node);
    }
  g_ptr_array_free (g->nodes, TRUE);
  g->nodes = kept;

  /* drop constants nothing reads any more (weights that were only reshaped, say) */
  for (guint i = 0; i < g->nodes->len; i++)
    {
      NnNode *node = nn_graph_node (g, (int) i);

      for (int k = 0; k < node->n_in; k++)
        if (node->in[k] >= 0)
          used[node->in[k]] = TRUE;
    }
  for (guint i = 0; i < g->outputs->len; i++)
    used[g_array_index (g->outputs, int, i)] = TRUE;
  for (guint i = 0; i < nv; i++)
    {
      NnValue *v = nn_graph_value (g, (int) i);

      if (v->konst && !used[i])
        g_clear_pointer (&v->konst, nn_tensor_free);
    }
  return TRUE;
}

/* ---- plans ---- */

static gpointer
owned_buffer (NnPlan *plan, const NnTensor *t)
{
  size_t bytes = MAX ((size_t) nn_tensor_numel (t) * nn_dtype_size (t->dtype), 1);
  gpointer buf = g_aligned_alloc0 (1, (bytes + NN_READ_SLACK + NN_ALIGN - 1) / NN_ALIGN * NN_ALIGN,
                                   NN_ALIGN);

  g_ptr_array_add (plan->owned, buf);
  return buf;
}

static gboolean
check_inputs (NnGraph *g, const NnTensor *inputs, int n_inputs, GError **error)
{
  if (n_inputs != (int) g->inputs->len)
    {
      g_set_error (error, NN_ERROR, NN_ERROR_INPUT, "the model takes %u inputs, got %d",
                   g->inputs->len, n_inputs);
      return FALSE;
    }
  for (int i = 0; i < n_inputs; i++)
    {
      const NnValue *v = nn_graph_value (g, g_array_index (g->inputs, int, i));
      const NnTensor *t = &inputs[i];
      gboolean fits = t->dtype == v->dtype && (v->ndim < 0 || v->ndim == t->ndim);

      for (int d = 0; fits && v->ndim >= 0 && d < v->ndim; d++)
        fits = v->ne[d] < 0 || v->ne[d] == t->ne[d];
      if (!fits)
        {
          g_autofree char *want = v->ndim >= 0 ? nn_shape_to_string (v->ndim, v->ne) : g_strdup ("any shape");
          g_autofree char *got = nn_shape_to_string (CLAMP (t->ndim, 0, NN_MAX_DIMS), t->ne);

          g_set_error (error, NN_ERROR, NN_ERROR_INPUT,
                       "input '%s' must be %s %s (-1: any size), got %s %s", v->name,
                       nn_dtype_name (v->dtype), want, nn_dtype_name (t->dtype), got);
          return FALSE;
        }
      if (!nn_shape_numel_checked (t->ndim, t->ne, NULL, error))
        {
          g_prefix_error (error, "input '%s': ", v->name);
          if (error && *error)
            (*error)->code = NN_ERROR_INPUT;
          return FALSE;
        }
    }
  return TRUE;
}

static gboolean
plan_time_input (const NnTensor *t)
{
  int64_t n = nn_tensor_numel (t);

  /* scalars too: a Dropout ratio or Clip bound fed as an input */
  return t->data && (n <= 1 || (t->dtype != NN_DTYPE_FLOAT && n <= NN_PLAN_TIME_INPUT_MAX));
}

typedef struct {
  int     id;
  size_t  bytes;
  int     first, last;
  size_t  off;
} Block;

static int
block_cmp (gconstpointer a, gconstpointer b)
{
  const Block *x = a, *y = b;

  if (x->bytes != y->bytes)
    return x->bytes < y->bytes ? 1 : -1;
  return x->first - y->first;
}

/* Greedy by size (as TFLite's arena planner): the largest buffer first, each at the lowest
 * offset that does not overlap a placed buffer whose lifetime intersects its own. */
static size_t
assign_offsets (Block *blocks, int n)
{
  size_t total = 0;

  qsort (blocks, n, sizeof (Block), block_cmp);
  for (int i = 0; i < n; i++)
    {
      size_t off = 0;
      gboolean moved = TRUE;

      while (moved)
        {
          moved = FALSE;
          for (int j = 0; j < i; j++)
            {
              const Block *o = &blocks[j];

              if (o->last < blocks[i].first || blocks[i].last < o->first)
                continue;
              if (off < o->off + o->bytes && o->off < off + blocks[i].bytes)
                {
                  off = o->off + o->bytes;
                  moved = TRUE;
                }
            }
        }
      blocks[i].off = off;
      total = MAX (total, off + blocks[i].bytes);
    }
  return total;
}

NnPlan *
nn_plan_new (NnGraph *g, const NnTensor *inputs, int n_inputs, const NnPlanOptions *opts,
             GError **error)
{
  guint nv = g->values->len;
  NnPlan *plan;
  NnExec exec = { opts->n_threads, NULL };
  g_autofree int *first = NULL, *last = NULL;
  g_autofree Block *blocks = NULL;
  int nb = 0;

  if (!check_inputs (g, inputs, n_inputs, error))
    return NULL;

  plan = g_new0 (NnPlan, 1);
  plan->graph = g;
  plan->fast = opts->fast;
  /* spare slots for the fast path's re-laid-out copies: at most one per value, input and
   * output */
  plan->n_vals = 2 * nv + n_inputs + g->outputs->len;
  plan->vals = g_new0 (NnTensor, plan->n_vals);
  plan->known = g_new0 (gboolean, plan->n_vals);
  plan->owned = g_ptr_array_new_with_free_func (g_aligned_free);
  plan->steps = g_array_new (FALSE, TRUE, sizeof (NnStep));
  plan->n_key = n_inputs;
  plan->key = g_new0 (NnTensor, MAX (n_inputs, 1));

  for (guint i = 0; i < nv; i++)
    {
      NnValue *v = nn_graph_value (g, (int) i);

      plan->vals[i].name = v->name;
      if (v->konst)
        {
          plan->vals[i] = *v->konst;
          plan->vals[i].name = v->name;
          plan->known[i] = TRUE;
        }
    }
  for (int i = 0; i < n_inputs; i++)
    {
      int id = g_array_index (g->inputs, int, i);
      NnTensor *t = &plan->vals[id];

      t->dtype = inputs[i].dtype;
      t->ndim = inputs[i].ndim;
      memcpy (t->ne, inputs[i].ne, sizeof t->ne);
      plan->key[i] = *t;
      plan->key[i].data = NULL;
      if (plan_time_input (&inputs[i]))
        {
          t->data = owned_buffer (plan, t);
          memcpy (t->data, inputs[i].data, nn_tensor_numel (t) * nn_dtype_size (t->dtype));
          plan->key[i].data = t->data;
          plan->known[id] = TRUE;
        }
    }

  for (guint i = 0; i < g->nodes->len; i++)
    {
      const NnNode *node = nn_graph_node (g, (int) i);
      gboolean known[NN_MAX_IO], all = TRUE;
      NnStep st;
      NnOpCtx ctx = { g, node, &st, known, opts->fast, opts->n_threads };

      step_init (&st, node, plan->vals);
      for (int k = 0; k < node->n_in; k++)
        {
          known[k] = node->in[k] < 0 || plan->known[node->in[k]];
          all = all && known[k];
        }
      if (!nn_op_plan (&ctx, error))
        {
          step_clear (&st);
          nn_plan_free (plan);
          return NULL;
        }
      if (all || nn_op_shape_only (node->op))
        {
          /* computable now: shapes, constants, and what follows from them only */
          for (int k = 0; k < st.n_out; k++)
            if (st.out[k])
              {
                st.out[k]->data = owned_buffer (plan, st.out[k]);
                plan->known[node->out[k]] = TRUE;
              }
          if (st.scratch_bytes)
            st.scratch = owned_buffer (plan, &(NnTensor) { NN_DTYPE_UINT8, 1,
                                                           { (int64_t) st.scratch_bytes } });
          st.run (&st, &exec);
          step_clear (&st);
          continue;
        }
      g_array_append_val (plan->steps, st);
    }

  if (opts->fast && !opts->no_xnn && !nn_xnn_rewrite (plan, opts->n_threads))
    {
      /* XNNPACK refused an operator it had said it would take: plan without it */
      NnPlanOptions again = *opts;

      again.no_xnn = TRUE;
      nn_plan_free (plan);
      return nn_plan_new (g, inputs, n_inputs, &again, error);
    }

  /* lifetimes of the values the steps produce, by their slot in plan->vals */
  first = g_new (int, plan->n_vals);
  last = g_new (int, plan->n_vals);
  for (guint i = 0; i < plan->n_vals; i++)
    first[i] = last[i] = -1;
  for (guint s = 0; s < plan->steps->len; s++)
    {
      const NnStep *st = &g_array_index (plan->steps, NnStep, s);

      for (int k = 0; k < st->n_in; k++)
        if (st->in[k])
          last[st->in[k] - plan->vals] = (int) s;
      for (int k = 0; k < st->n_out; k++)
        if (st->out[k])
          first[st->out[k] - plan->vals] = last[st->out[k] - plan->vals] = (int) s;
      plan->scratch_bytes = MAX (plan->scratch_bytes, st->scratch_bytes);
    }
  for (guint i = 0; i < g->outputs->len; i++)
    last[g_array_index (g->outputs, int, i)] = G_MAXINT;
  blocks = g_new0 (Block, plan->n_vals);
  for (guint i = 0; i < plan->n_vals; i++)
    if (first[i] >= 0 && !plan->known[i])
      {
        const NnTensor *t = &plan->vals[i];
        size_t bytes = MAX ((size_t) nn_tensor_numel (t) * nn_dtype_size (t->dtype), 1);

        blocks[nb].id = (int) i;
        blocks[nb].bytes = (bytes + NN_ALIGN - 1) / NN_ALIGN * NN_ALIGN;
        blocks[nb].first = first[i];
        blocks[nb].last = MAX (last[i], first[i]);
        nb++;
      }
  plan->arena_bytes = assign_offsets (blocks, nb);
  plan->arena = g_aligned_alloc0 (1, plan->arena_bytes + NN_READ_SLACK, NN_ALIGN);
  for (int i = 0; i < nb; i++)
    plan->vals[blocks[i].id].data = plan->arena + blocks[i].off;
  if (plan->scratch_bytes)
    plan->scratch = g_aligned_alloc0 (1, plan->scratch_bytes + NN_READ_SLACK, NN_ALIGN);
  for (guint s = 0; s < plan->steps->len; s++)
    {
      NnStep *st = &g_array_index (plan->steps, NnStep, s);

      st->scratch = st->scratch_bytes ? plan->scratch : NULL;
    }
  for (guint s = 0; s < plan->steps->len; s++)
    {
      const char *k = g_array_index (plan->steps, NnStep, s).kernel_name;

      plan->uses_blas = plan->uses_blas || (k && g_str_has_suffix (k, "sgemm"));
    }
  if (!nn_xnn_setup (plan))
    {
      NnPlanOptions again = *opts;

      again.no_xnn = TRUE;
      nn_plan_free (plan);
      return nn_plan_new (g, inputs, n_inputs, &again, error);
    }
  return plan;
}

gboolean
nn_plan_fits (NnPlan *plan, const NnTensor *inputs, int n_inputs)
{
  if (n_inputs != plan->n_key)
    return FALSE;
  for (int i = 0; i < n_inputs; i++)
    {
      const NnTensor *k = &plan->key[i], *t = &inputs[i];

      if (k->dtype != t->dtype || !nn_tensor_same_shape (k, t))
        return FALSE;
      if (k->data && (!t->data || memcmp (k->data, t->data,
                                          nn_tensor_numel (t) * nn_dtype_size (t->dtype))))
        return FALSE;
      if (!k->data && plan_time_input (t))
        return FALSE;
    }
  return TRUE;
}

static gboolean profiling (void);
static void print_profile (NnPlan *plan);

void
nn_plan_run (NnPlan *plan, const NnTensor *inputs, int n_inputs, const NnExec *exec)
{
  for (int i = 0; i < n_inputs; i++)
    {
      int id = g_array_index (plan->graph->inputs, int, i);

      if (!plan->known[id])
        plan->vals[id].data = inputs[i].data;
    }
  if (G_UNLIKELY (profiling ()))
    {
      for (guint s = 0; s < plan->steps->len; s++)
        {
          NnStep *st = &g_array_index (plan->steps, NnStep, s);
          gint64 t0 = g_get_monotonic_time ();

          st->run (st, exec);
          st->time_us += g_get_monotonic_time () - t0;
        }
      return;
    }
  for (guint s = 0; s < plan->steps->len; s++)
    {
      const NnStep *st = &g_array_index (plan->steps, NnStep, s);

      st->run (st, exec);
    }
}

/* MAGPIE_NN_PROFILE=1: time every step and print the totals per op and kernel when the
 * plan goes away; MAGPIE_NN_PROFILE=2 also prints every step with its output shape. */
static int
profile_level (void)
{
  static gsize once;
  static int level;

  if (g_once_init_enter (&once))
    {
      const char *v = g_getenv ("MAGPIE_NN_PROFILE");

      level = g_strcmp0 (v, "1") == 0 ? 1 : g_strcmp0 (v, "2") == 0 ? 2 : 0;
      g_once_init_leave (&once, 1);
    }
  return level;
}

static gboolean
profiling (void)
{
  return profile_level () > 0;
}

static void
print_profile (NnPlan *plan)
{
  g_autoptr(GHashTable) totals = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  GHashTableIter it;
  gpointer key, value;

  for (guint s = 0; s < plan->steps->len; s++)
    {
      const NnStep *st = &g_array_index (plan->steps, NnStep, s);
      char *k = g_strdup_printf ("%s/%s", st->node ? nn_op_name (st->node->op) : "-",
                                 st->kernel_name ? st->kernel_name : "ref");
      gint64 t = GPOINTER_TO_SIZE (g_hash_table_lookup (totals, k)) + st->time_us;

      g_hash_table_replace (totals, k, GSIZE_TO_POINTER (t));
      if (profile_level () == 2)
        {
          const NnTensor *o = st->out[0];

          g_printerr ("step %3u %-20s %-14s %-28s out %ldx%ldx%ldx%ld %10.1f ms\n", s,
                      st->node ? nn_op_name (st->node->op) : "-",
                      st->kernel_name ? st->kernel_name : "ref",
                      st->node && st->node->name ? st->node->name : "",
                      o && o->ndim > 0 ? (long) o->ne[0] : 0L,
                      o && o->ndim > 1 ? (long) o->ne[1] : 0L,
                      o && o->ndim > 2 ? (long) o->ne[2] : 0L,
                      o && o->ndim > 3 ? (long) o->ne[3] : 0L, st->time_us / 1000.0);
        }
    }
  g_hash_table_iter_init (&it, totals);
  while (g_hash_table_iter_next (&it, &key, &value))
    g_printerr ("profile %-32s %10.1f ms\n", (char *) key, GPOINTER_TO_SIZE (value) / 1000.0);
}

void
nn_plan_free (NnPlan *plan)
{
  if (!plan)
    return;
  if (profiling ())
    print_profile (plan);
  for (guint s = 0; s < plan->steps->len; s++)
    step_clear (&g_array_index (plan->steps, NnStep, s));
  g_array_free (plan->steps, TRUE);
  g_ptr_array_free (plan->owned, TRUE);
  g_aligned_free (plan->arena);
  g_aligned_free (plan->scratch);
  g_free (plan->vals);
  g_free (plan->known);
  g_free (plan->key);
  nn_xnn_plan_free (plan);
  g_free (plan);
}
