/* nn-onnx.c - ONNX ModelProto/TensorProto -> NnGraph/NnTensor, with every size checked
 * against the limits in nn-tensor.h before anything is allocated */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "onnx.pb-c.h"

#include "nn-onnx.h"
#include "nn-ops.h"

#define NN_MIN_OPSET 1
#define NN_MAX_OPSET 17
#define NN_MIN_IR 3
#define NN_MAX_IR 8

/* protobuf-c allocates through this, 64-byte aligned, so that an initializer's raw_data can
 * become its tensor's buffer as is (nn_tensor_free releases it with g_aligned_free, which is
 * free() for posix_memalign memory): the weights are held once, not twice. */
static void *
pb_alloc (void *data, size_t size)
{
  void *p = NULL;

  if (posix_memalign (&p, NN_ALIGN, MAX (size, 1)) != 0)
    return NULL;
  return p;
}

static void
pb_free (void *data, void *p)
{
  free (p);
}

static ProtobufCAllocator pb_allocator = { pb_alloc, pb_free, NULL };

static NnTensor *
tensor_from_proto (Onnx__TensorProto *tp, GError **error)
{
  const char *what = tp->name && *tp->name ? tp->name : "(unnamed)";
  int64_t ne[NN_MAX_DIMS];
  int64_t numel;
  size_t esize;
  NnTensor *t;
  int dtype = tp->has_data_type ? tp->data_type : 0;

  if (!nn_dtype_supported (dtype))
    {
      g_set_error (error, NN_ERROR, NN_ERROR_UNSUPPORTED,
                   "tensor '%s' has data type %d; magpie supports float32 (and int8/uint8/"
                   "int32/int64/bool for indices and shapes)", what, dtype);
      return NULL;
    }
  if (tp->segment || (tp->has_data_location &&
                      tp->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL))
    {
      g_set_error (error, NN_ERROR, NN_ERROR_UNSUPPORTED,
                   "tensor '%s' uses external or segmented data, which magpie does not read",
                   what);
      return NULL;
    }
  if (tp->n_dims > NN_MAX_DIMS)
    {
      g_set_error (error, NN_ERROR, NN_ERROR_UNSUPPORTED, "tensor '%s' has rank %zu (max %d)",
                   what, tp->n_dims, NN_MAX_DIMS);
      return NULL;
    }
  for (size_t i = 0; i < tp->n_dims; i++)
    ne[i] = tp->dims[i];
  if (!nn_shape_numel_checked ((int) tp->n_dims, ne, &numel, error))
    {
      g_prefix_error (error, "tensor '%s': ", what);
      return NULL;
    }
  esize = nn_dtype_size (dtype);

  if (tp->has_raw_data)
    {
      if ((uint64_t) tp->raw_data.len != (uint64_t) numel * esize)
        {
          g_set_error (error, NN_ERROR, NN_ERROR_INVALID,
                       "tensor '%s' has %zu bytes of raw data where its shape needs %"
                       G_GINT64_FORMAT, what, tp->raw_data.len, numel * (int64_t) esize);
          return NULL;
        }
      t = g_new0 (NnTensor, 1);
      t->dtype = dtype;
      t->ndim = (int) tp->n_dims;
      memcpy (t->ne, ne, sizeof (int64_t) * tp->n_dims);
      if (numel)
        {
          /* take the buffer protobuf-c allocated (aligned, see pb_alloc) */
          t->data = tp->raw_data.data;
          tp->raw_data.data = NULL;
          tp->raw_data.len = 0;
          tp->has_raw_data = FALSE;
        }
      else
        t->data = g_aligned_alloc0 (1, NN_ALIGN, NN_ALIGN);
    }
  else
    {
      size_t have;

      switch (dtype)
        {
        case NN_DTYPE_FLOAT: have = tp->n_float_data; break;
        case NN_DTYPE_INT64: have = tp->n_int64_data; break;
        default:             have = tp->n_int32_data; break;
        }
      if ((uint64_t) have != (uint64_t) numel)
        {
          g_set_error (error, NN_ERROR, NN_ERROR_INVALID,
                       "tensor '%s' has %zu values where its shape needs %" G_GINT64_FORMAT,
                       what, have, numel);
          return NULL;
        }
      t = nn_tensor_new (dtype, (int) tp->n_dims, ne);
      for (int64_t i = 0; i < numel; i++)
        switch (dtype)
          {
          case NN_DTYPE_FLOAT: ((float *) t->data)[i] = tp->float_data[i]; break;
          case NN_DTYPE_INT64: ((int64_t *) t->data)[i] = tp->int64_data[i]; break;
          case NN_DTYPE_INT32: ((int32_t *) t->data)[i] = tp->int32_data[i]; break;
          case NN_DTYPE_INT8:  ((int8_t *) t->data)[i] = (int8_t) tp->int32_data[i]; break;
          default:             ((uint8_t *) t->data)[i] = (uint8_t) tp->int32_data[i]; break;
          }
    }
  t->name = g_strdup (tp->name ? tp->name : "");
  return t;
}

NnTensor *
nn_tensor_from_pb_data (const guint8 *data, gsize size, GError **error)
{
  Onnx__TensorProto *tp = onnx__tensor_proto__unpack (&pb_allocator, size, data);
  NnTensor *t;

  if (!tp)
    {
      g_set_error (error, NN_ERROR, NN_ERROR_PARSE,
                   "not a valid ONNX TensorProto (truncated or corrupt)");
      return NULL;
    }
  t = tensor_from_proto (tp, error);
  onnx__tensor_proto__free_unpacked (tp, &pb_allocator);
  return t;
}

static const char *
node_label (const Onnx__NodeProto *np, size_t index, char *buf, size_t len)
{
  if (np->name && *np->name)
    return np->name;
  g_snprintf (buf, len, "#%zu", index);
  return buf;
}

static gboolean
copy_attrs (NnNode *node, Onnx__NodeProto *np, GError **error)
{
  node->n_attrs = (int) np->n_attribute;
  node->attrs = g_new0 (NnAttr, np->n_attribute);
  for (size_t i = 0; i < np->n_attribute; i++)
    {
      Onnx__AttributeProto *ap = np->attribute[i];
      NnAttr *a = &node->attrs[i];

      a->name = g_strdup (ap->name ? ap->name : "");
      a->type = ap->has_type ? ap->type : 0;
      /* IR 3 files may leave the type out; infer it from the field that is set */
      if (!a->type)
        {
          if (ap->n_ints) a->type = NN_ATTR_INTS;
          else if (ap->n_floats) a->type = NN_ATTR_FLOATS;
          else if (ap->t) a->type = NN_ATTR_TENSOR;
          else if (ap->has_s) a->type = NN_ATTR_STRING;
          else if (ap->has_f) a->type = NN_ATTR_FLOAT;
          else if (ap->has_i) a->type = NN_ATTR_INT;
        }
      a->f = ap->f;
      a->i = ap->i;
      if (ap->has_s)
        a->s = g_strndup ((const char *) ap->s.data, ap->s.len);
      if (a->type == NN_ATTR_TENSOR && ap->t)
        {
          a->t = tensor_from_proto (ap->t, error);
          if (!a->t)
            {
              g_prefix_error (error, "attribute '%s': ", a->name);
              return FALSE;
            }
        }
      if (a->type == NN_ATTR_INTS)
        {
          if (ap->n_ints > NN_MAX_ELEMENTS)
            {
              g_set_error (error, NN_ERROR, NN_ERROR_INVALID, "attribute '%s' is too long",
                           a->name);
              return FALSE;
            }
          a->n = (int) ap->n_ints;
          a->ints = g_memdup2 (ap->ints, ap->n_ints * sizeof (int64_t));
        }
      if (a->type == NN_ATTR_FLOATS)
        {
          if (ap->n_floats > NN_MAX_ELEMENTS)
            {
              g_set_error (error, NN_ERROR, NN_ERROR_INVALID, "attribute '%s' is too long",
                           a->name);
              return FALSE;
            }
          a->n = (int) ap->n_floats;
          a->floats = g_memdup2 (ap->floats, ap->n_floats * sizeof (float));
        }
    }
  return TRUE;
}

static gboolean
read_value_info (NnValue *v, const Onnx__ValueInfoProto *vi, GError **error)
{
  const Onnx__TypeProto *tp = vi->type;
  const Onnx__TypeProto__Tensor *tt;

  if (!tp || tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !tp->tensor_type)
    {
      g_set_error (error, NN_ERROR, NN_ERROR_UNSUPPORTED,
                   "graph value '%s' is not a tensor (sequences, maps and optionals are not "
                   "supported)", v->name);
      return FALSE;
    }
  tt = tp->tensor_type;
  if (!tt->has_elem_type || !nn_dtype_supported (tt->elem_type))
    {
      g_set_error (error, NN_ERROR, NN_ERROR_UNSUPPORTED,
                   "graph value '%s' has element type %d; magpie supports float32 (and "
                   "int8/uint8/int32/int64/bool)", v->name, tt->has_elem_type ? tt->elem_type : 0);
      return FALSE;
    }
  v->dtype = tt->elem_type;
  v->ndim = -1;
  if (tt->shape)
    {
      if (tt->shape->n_dim > NN_MAX_DIMS)
        {
          g_set_error (error, NN_ERROR, NN_ERROR_UNSUPPORTED,
                       "graph value '%s' has rank %zu (max %d)", v->name, tt->shape->n_dim,
                       NN_MAX_DIMS);
          return FALSE;
        }
      v->ndim = (int) tt->shape->n_dim;
      for (size_t i = 0; i < tt->shape->n_dim; i++)
        {
          const Onnx__TensorShapeProto__Dimension *d = tt->shape->dim[i];

          if (d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE &&
              d->dim_value >= 0 && d->dim_value <= NN_MAX_ELEMENTS)
            v->ne[i] = d->dim_value;
          else
            v->ne[i] = -1;
        }
    }
  return TRUE;
}

static NnGraph *
graph_from_model (Onnx__ModelProto *mp, GError **error)
{
  g_autoptr(GHashTable) initializer_names = g_hash_table_new (g_str_hash, g_str_equal);
  Onnx__GraphProto *gp = mp->graph;
  NnGraph *g;
  int opset = -1;

  if (!mp->has_ir_version || mp->ir_version < NN_MIN_IR || mp->ir_version > NN_MAX_IR)
    {
      g_set_error (error, NN_ERROR, NN_ERROR_UNSUPPORTED,
                   "ONNX IR version %" G_GINT64_FORMAT " is not supported (magpie reads %d to %d)",
                   mp->has_ir_version ? mp->ir_version : (int64_t) 0, NN_MIN_IR, NN_MAX_IR);
      return NULL;
    }
  for (size_t i = 0; i < mp->n_opset_import; i++)
    {
      const Onnx__OperatorSetIdProto *os = mp->opset_import[i];

      if (!os->domain || !*os->domain || g_str_equal (os->domain, "ai.onnx"))
        opset = (int) CLAMP (os->version, -1, G_MAXINT);
    }
  if (opset < NN_MIN_OPSET || opset > NN_MAX_OPSET)
    {
      g_set_error (error, NN_ERROR, NN_ERROR_UNSUPPORTED,
                   "the model needs ONNX opset %d; magpie supports opsets %d to %d", opset,
                   NN_MIN_OPSET, NN_MAX_OPSET);
      return NULL;
    }
  if (!gp)
    {
      g_set_error (error, NN_ERROR, NN_ERROR_INVALID, "the model has no graph");
      return NULL;
    }

  g = g_new0 (NnGraph, 1);
  g->ir_version = mp->ir_version;
  g->opset = opset;
  g->values = g_ptr_array_new ();
  g->nodes = g_ptr_array_new ();
  g->inputs = g_array_new (FALSE, FALSE, sizeof (int));
  g->outputs = g_array_new (FALSE, FALSE, sizeof (int));
  g->by_name = g_hash_table_new (g_str_hash, g_str_equal);

  for (size_t i = 0; i < gp->n_initializer; i++)
    {
      NnTensor *t = tensor_from_proto (gp->initializer[i], error);
      int id;

      if (!t)
        goto fail;
      g->weight_bytes += nn_tensor_numel (t) * nn_dtype_size (t->dtype);
      if (g->weight_bytes > NN_MAX_WEIGHTS)
        {
          nn_tensor_free (t);
          g_set_error (error, NN_ERROR, NN_ERROR_INVALID, "the model's weights exceed %"
                       G_GINT64_FORMAT " bytes", NN_MAX_WEIGHTS);
          goto fail;
        }
      id = nn_graph_find (g, t->name);
      if (id < 0)
        id = nn_graph_add_value (g, t->name);
      else
        nn_tensor_free (nn_graph_value (g, id)->konst);
      nn_graph_value (g, id)->konst = t;
      nn_graph_value (g, id)->dtype = t->dtype;
      g_hash_table_add (initializer_names, nn_graph_value (g, id)->name);
    }

  for (size_t i = 0; i < gp->n_input; i++)
    {
      const char *name = gp->input[i]->name ? gp->input[i]->name : "";
      int id;

      /* before IR 4 initializers are listed as inputs too; they stay constants */
      if (g_hash_table_contains (initializer_names, name))
        continue;
      if (nn_graph_find (g, name) >= 0)
        {
          g_set_error (error, NN_ERROR, NN_ERROR_INVALID, "graph input '%s' is listed twice",
                       name);
          goto fail;
        }
      id = nn_graph_add_value (g, name);
      if (!read_value_info (nn_graph_value (g, id), gp->input[i], error))
        goto fail;
      g_array_append_val (g->inputs, id);
    }

  for (size_t i = 0; i < gp->n_node; i++)
    {
      Onnx__NodeProto *np = gp->node[i];
      NnNode *node;
      char buf[32];
      const char *label = node_label (np, i, buf, sizeof buf);
      const char *op_type = np->op_type ? np->op_type : "";
      int op = nn_op_lookup (op_type);

      if (np->domain && *np->domain && !g_str_equal (np->domain, "ai.onnx"))
        {
          g_set_error (error, NN_ERROR, NN_ERROR_UNSUPPORTED,
                       "model uses op '%s' from domain '%s' (node '%s') which magpie does not "
                       "support (supported: the default ONNX domain ops %s)", op_type,
                       np->domain, label, nn_supported_ops ());
          goto fail;
        }
      if (op < 0)
        {
          g_set_error (error, NN_ERROR, NN_ERROR_UNSUPPORTED,
                       "model uses op '%s' (node '%s') which magpie does not support yet "
                       "(supported: %s)", op_type, label, nn_supported_ops ());
          goto fail;
        }
      if (np->n_input > NN_MAX_IO || np->n_output > NN_MAX_IO)
        {
          g_set_error (error, NN_ERROR, NN_ERROR_UNSUPPORTED,
                       "node '%s' (%s) has %zu inputs and %zu outputs; magpie handles up to %d",
                       label, op_type, np->n_input, np->n_output, NN_MAX_IO);
          goto fail;
        }

      node = g_new0 (NnNode, 1);
      g_ptr_array_add (g->nodes, node);
      node->name = g_strdup (label);
      node->op_type = g_strdup (op_type);
      node->op = op;
      node->n_in = (int) np->n_input;
      node->n_out = (int) np->n_output;
      node->in = g_new (int, MAX (node->n_in, 1));
      node->out = g_new (int, MAX (node->n_out, 1));
      for (int k = 0; k < node->n_in; k++)
        {
          const char *name = np->input[k];

          node->in[k] = -1;
          if (!name || !*name)
            continue;
          node->in[k] = nn_graph_find (g, name);
          if (node->in[k] < 0)
            {
              g_set_error (error, NN_ERROR, NN_ERROR_INVALID,
                           "node '%s' (%s) reads '%s', which no earlier node, input or "
                           "initializer defines", label, op_type, name);
              goto fail;
            }
        }
      for (int k = 0; k < node->n_out; k++)
        {
          const char *name = np->output[k];

          node->out[k] = -1;
          if (!name || !*name)
            continue;
          if (nn_graph_find (g, name) >= 0)
            {
              g_set_error (error, NN_ERROR, NN_ERROR_INVALID,
                           "node '%s' (%s) writes '%s', which is already defined", label,
                           op_type, name);
              goto fail;
            }
          node->out[k] = nn_graph_add_value (g, name);
          nn_graph_value (g, node->out[k])->producer = (int) i;
        }
      if (!copy_attrs (node, np, error))
        {
          g_prefix_error (error, "node '%s' (%s): ", label, op_type);
          goto fail;
        }
    }

  for (size_t i = 0; i < gp->n_output; i++)
    {
      const char *name = gp->output[i]->name ? gp->output[i]->name : "";
      int id = nn_graph_find (g, name);

      if (id < 0)
        {
          g_set_error (error, NN_ERROR, NN_ERROR_INVALID,
                       "graph output '%s' is not produced by any node", name);
          goto fail;
        }
      g_array_append_val (g->outputs, id);
    }
  if (g->outputs->len == 0)
    {
      g_set_error (error, NN_ERROR, NN_ERROR_INVALID, "the graph has no outputs");
      goto fail;
    }
  return g;

fail:
  nn_graph_free (g);
  return NULL;
}

gpointer
nn_onnx_unpack (const guint8 *data, gsize size, GError **error)
{
  Onnx__ModelProto *mp;

  if (size > (guint64) NN_MAX_MODEL_SIZE)
    {
      g_set_error (error, NN_ERROR, NN_ERROR_INVALID, "model file of %" G_GSIZE_FORMAT
                   " bytes exceeds the limit of %" G_GINT64_FORMAT, size, NN_MAX_MODEL_SIZE);
      return NULL;
    }
  mp = onnx__model_proto__unpack (&pb_allocator, size, data);
  if (!mp)
    g_set_error (error, NN_ERROR, NN_ERROR_PARSE,
                 "not a valid ONNX model (the protobuf is truncated or corrupt)");
  return mp;
}

NnGraph *
nn_onnx_graph (gpointer proto, GError **error)
{
  Onnx__ModelProto *mp = proto;
  NnGraph *g = graph_from_model (mp, error);

  onnx__model_proto__free_unpacked (mp, &pb_allocator);
  return g;
}

NnGraph *
nn_onnx_load (const guint8 *data, gsize size, GError **error)
{
  gpointer mp = nn_onnx_unpack (data, size, error);

  return mp ? nn_onnx_graph (mp, error) : NULL;
}

static int
str_ptr_cmp (gconstpointer a, gconstpointer b)
{
  return strcmp (*(char *const *) a, *(char *const *) b);
}

static char *
io_type_problem (const Onnx__ValueInfoProto *vi)
{
  const Onnx__TypeProto *tp = vi->type;

  if (!tp || tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !tp->tensor_type)
    return g_strdup_printf ("'%s' is not a tensor (sequence, map or optional)", vi->name);
  if (!tp->tensor_type->has_elem_type || !nn_dtype_supported (tp->tensor_type->elem_type))
    return g_strdup_printf ("'%s' has element type %d", vi->name,
                            tp->tensor_type->has_elem_type ? tp->tensor_type->elem_type : 0);
  return NULL;
}

gboolean
nn_onnx_inspect (const guint8 *data, gsize size, GStrv *op_types, char **io_problem,
                 GError **error)
{
  Onnx__ModelProto *mp = onnx__model_proto__unpack (NULL, size, data);
  g_autoptr(GPtrArray) ops = g_ptr_array_new_with_free_func (g_free);
  char *problem = NULL;

  if (!mp || !mp->graph)
    {
      if (mp)
        onnx__model_proto__free_unpacked (mp, NULL);
      g_set_error (error, NN_ERROR, NN_ERROR_PARSE, "not a valid ONNX model");
      return FALSE;
    }
  for (size_t i = 0; i < mp->graph->n_node; i++)
    {
      const char *t = mp->graph->node[i]->op_type ? mp->graph->node[i]->op_type : "";
      gboolean seen = FALSE;

      for (guint k = 0; k < ops->len && !seen; k++)
        seen = g_str_equal (g_ptr_array_index (ops, k), t);
      if (!seen)
        g_ptr_array_add (ops, g_strdup (t));
    }
  for (size_t i = 0; i < mp->graph->n_input && !problem; i++)
    problem = io_type_problem (mp->graph->input[i]);
  for (size_t i = 0; i < mp->graph->n_output && !problem; i++)
    problem = io_type_problem (mp->graph->output[i]);
  onnx__model_proto__free_unpacked (mp, NULL);
  g_ptr_array_sort (ops, str_ptr_cmp);
  g_ptr_array_add (ops, NULL);
  if (op_types)
    *op_types = (GStrv) g_ptr_array_free (g_steal_pointer (&ops), FALSE);
  if (io_problem)
    *io_problem = problem;
  else
    g_free (problem);
  return TRUE;
}
