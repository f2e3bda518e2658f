/* tr-export.c - writing a trained network as ONNX */
#include "config.h"

#include <string.h>

#include "onnx.pb-c.h"
#include "tr-export.h"

#define OPSET 11

G_STATIC_ASSERT (G_BYTE_ORDER == G_LITTLE_ENDIAN);

/* Every message and buffer of the model being built; freed together. */
typedef struct {
  GPtrArray *mem;
  GPtrArray *nodes, *inits;
} Builder;

static gpointer
keep (Builder *b, gpointer p)
{
  g_ptr_array_add (b->mem, p);
  return p;
}

static char *
str (Builder *b, const char *fmt, ...) G_GNUC_PRINTF (2, 3);

static char *
str (Builder *b, const char *fmt, ...)
{
  va_list ap;
  char *s;

  va_start (ap, fmt);
  s = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  return keep (b, s);
}

static Onnx__AttributeProto *
attr_int (Builder *b, const char *name, int64_t v)
{
  Onnx__AttributeProto *a = keep (b, g_new (Onnx__AttributeProto, 1));

  onnx__attribute_proto__init (a);
  a->name = (char *) name;
  a->has_type = TRUE;
  a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
  a->has_i = TRUE;
  a->i = v;
  return a;
}

static Onnx__AttributeProto *
attr_float (Builder *b, const char *name, float v)
{
  Onnx__AttributeProto *a = keep (b, g_new (Onnx__AttributeProto, 1));

  onnx__attribute_proto__init (a);
  a->name = (char *) name;
  a->has_type = TRUE;
  a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT;
  a->has_f = TRUE;
  a->f = v;
  return a;
}

static Onnx__AttributeProto *
attr_ints (Builder *b, const char *name, int n, int64_t v)
{
  Onnx__AttributeProto *a = keep (b, g_new (Onnx__AttributeProto, 1));

  onnx__attribute_proto__init (a);
  a->name = (char *) name;
  a->has_type = TRUE;
  a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
  a->n_ints = n;
  a->ints = keep (b, g_new (int64_t, n));
  for (int i = 0; i < n; i++)
    a->ints[i] = v;
  return a;
}

/* node (op, inputs..., NULL) -> output; attributes added by the caller */
static Onnx__NodeProto *
node (Builder *b, const char *op, const char *out, ...)
{
  Onnx__NodeProto *n = keep (b, g_new (Onnx__NodeProto, 1));
  GPtrArray *in = g_ptr_array_new ();
  va_list ap;
  const char *s;

  onnx__node_proto__init (n);
  n->op_type = (char *) op;
  n->name = str (b, "%s_%u", op, b->nodes->len);
  va_start (ap, out);
  while ((s = va_arg (ap, const char *)))
    g_ptr_array_add (in, (gpointer) s);
  va_end (ap);
  n->n_input = in->len;
  n->input = keep (b, g_ptr_array_free (in, FALSE));
  n->n_output = 1;
  n->output = keep (b, g_new (char *, 1));
  n->output[0] = (char *) out;
  n->attribute = keep (b, g_new0 (Onnx__AttributeProto *, 8));
  g_ptr_array_add (b->nodes, n);
  return n;
}

static void
add_attr (Onnx__NodeProto *n, Onnx__AttributeProto *a)
{
  g_assert (n->n_attribute < 8);
  n->attribute[n->n_attribute++] = a;
}

/* a float initializer, copied (and scaled) so that the net is left as it is */
static const char *
init (Builder *b, const char *name, const float *v, float scale, int ndim, const int64_t *dims)
{
  Onnx__TensorProto *t = keep (b, g_new (Onnx__TensorProto, 1));
  size_t n = 1;
  float *data;

  onnx__tensor_proto__init (t);
  t->name = (char *) name;
  t->n_dims = ndim;
  t->dims = keep (b, g_memdup2 (dims, sizeof (int64_t) * ndim));
  for (int i = 0; i < ndim; i++)
    n *= dims[i];
  t->has_data_type = TRUE;
  t->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
  data = keep (b, g_new (float, n));
  for (size_t i = 0; i < n; i++)
    data[i] = v[i] * scale;
  /* raw_data is little-endian, as this machine (checked at the top of the file) */
  t->has_raw_data = TRUE;
  t->raw_data.data = (uint8_t *) data;
  t->raw_data.len = n * sizeof (float);
  g_ptr_array_add (b->inits, t);
  return name;
}

static Onnx__ValueInfoProto *
value_info (Builder *b, const char *name, int ndim, const int64_t *dims)
{
  Onnx__ValueInfoProto *vi = keep (b, g_new (Onnx__ValueInfoProto, 1));
  Onnx__TypeProto *tp = keep (b, g_new (Onnx__TypeProto, 1));
  Onnx__TypeProto__Tensor *tt = keep (b, g_new (Onnx__TypeProto__Tensor, 1));
  Onnx__TensorShapeProto *sh = keep (b, g_new (Onnx__TensorShapeProto, 1));

  onnx__value_info_proto__init (vi);
  onnx__type_proto__init (tp);
  onnx__type_proto__tensor__init (tt);
  onnx__tensor_shape_proto__init (sh);
  vi->name = (char *) name;
  vi->type = tp;
  tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
  tp->tensor_type = tt;
  tt->has_elem_type = TRUE;
  tt->elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
  tt->shape = sh;
  sh->n_dim = ndim;
  sh->dim = keep (b, g_new (Onnx__TensorShapeProto__Dimension *, ndim));
  for (int i = 0; i < ndim; i++)
    {
      Onnx__TensorShapeProto__Dimension *d = keep (b, g_new (Onnx__TensorShapeProto__Dimension, 1));

      onnx__tensor_shape_proto__dimension__init (d);
      if (dims[i] < 0)
        {
          d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
          d->dim_param = (char *) "N";
        }
      else
        {
          d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
          d->dim_value = dims[i];
        }
      sh->dim[i] = d;
    }
  return vi;
}

static const char *
tensor_name (Builder *b, int layer)
{
  return layer < 0 ? "input" : str (b, "t%d", layer);
}

gboolean
tr_export_onnx (TrNet *net, const char *name, const char *path, GError **error)
{
  Builder b = { g_ptr_array_new_with_free_func (g_free), g_ptr_array_new (), g_ptr_array_new () };
  Onnx__ModelProto model;
  Onnx__GraphProto graph;
  Onnx__OperatorSetIdProto opset;
  Onnx__OperatorSetIdProto *opsets[1] = { &opset };
  Onnx__ValueInfoProto *in_vi, *out_vi;
  const int n_layers = tr_net_n_layers (net);
  int64_t in_dims[4] = { -1, net->C, net->H, net->W }, out_dims[2] = { -1, 0 };
  g_autofree guint8 *buf = NULL;
  gboolean ok;
  size_t len;

  for (int i = 0; i < n_layers; i++)
    {
      TrLayer *l = tr_net_layer (net, i);
      const char *x = tensor_name (&b, l->src), *y = tensor_name (&b, i);
      int C = l->src < 0 ? net->C : tr_net_layer (net, l->src)->C;
      Onnx__NodeProto *n;

      switch (l->kind)
        {
        case TR_CONV:
          {
            int64_t d[4] = { l->C, C, l->k, l->k };
            const char *w = init (&b, str (&b, "conv%d.weight", i), l->w.v, 1.0f, 4, d);

            n = node (&b, "Conv", y, x, w, NULL);
            add_attr (n, attr_ints (&b, "kernel_shape", 2, l->k));
            add_attr (n, attr_ints (&b, "strides", 2, l->stride));
            add_attr (n, attr_ints (&b, "pads", 4, l->pad));
          }
          break;
        case TR_BN:
          {
            int64_t d[1] = { l->C };
            const char *g = init (&b, str (&b, "bn%d.weight", i), l->w.v, 1.0f, 1, d);
            const char *be = init (&b, str (&b, "bn%d.bias", i), l->b.v, 1.0f, 1, d);
            const char *m = init (&b, str (&b, "bn%d.running_mean", i), l->run_mean, 1.0f, 1, d);
            const char *v = init (&b, str (&b, "bn%d.running_var", i), l->run_var, 1.0f, 1, d);

            n = node (&b, "BatchNormalization", y, x, g, be, m, v, NULL);
            add_attr (n, attr_float (&b, "epsilon", net->bn_eps));
          }
          break;
        case TR_RELU:
          node (&b, "Relu", y, x, NULL);
          break;
        case TR_MAXPOOL:
          n = node (&b, "MaxPool", y, x, NULL);
          add_attr (n, attr_ints (&b, "kernel_shape", 2, 2));
          add_attr (n, attr_ints (&b, "strides", 2, 2));
          break;
        case TR_GAP:
          node (&b, "GlobalAveragePool", y, x, NULL);
          break;
        case TR_ADD:
          node (&b, "Add", y, x, tensor_name (&b, l->src2), NULL);
          break;
        case TR_DENSE:
          {
            TrLayer *s = l->src < 0 ? NULL : tr_net_layer (net, l->src);
            int64_t dw[2] = { l->C, (int64_t) (l->w.n / l->C) }, db[1] = { l->C };
            /* the last layer's logits are scaled in the loss; the exported Gemm does it */
            float scale = i == n_layers - 1 ? net->logit_scale : 1.0f;
            const char *flat = str (&b, "t%d.flat", i);
            const char *w = init (&b, str (&b, "fc%d.weight", i), l->w.v, scale, 2, dw);
            const char *bias = init (&b, str (&b, "fc%d.bias", i), l->b.v, scale, 1, db);

            g_assert (!s || (int64_t) s->C * s->H * s->W == dw[1]);
            n = node (&b, "Flatten", flat, x, NULL);
            add_attr (n, attr_int (&b, "axis", 1));
            n = node (&b, "Gemm", y, flat, w, bias, NULL);
            add_attr (n, attr_int (&b, "transB", 1));
          }
          break;
        }
    }
  {
    Onnx__NodeProto *n = node (&b, "Softmax", "probabilities",
                               tensor_name (&b, n_layers - 1), NULL);

    add_attr (n, attr_int (&b, "axis", 1));
  }
  out_dims[1] = tr_net_layer (net, n_layers - 1)->C;
  in_vi = value_info (&b, "input", 4, in_dims);
  out_vi = value_info (&b, "probabilities", 2, out_dims);

  onnx__graph_proto__init (&graph);
  graph.name = (char *) name;
  graph.n_node = b.nodes->len;
  graph.node = (Onnx__NodeProto **) b.nodes->pdata;
  graph.n_initializer = b.inits->len;
  graph.initializer = (Onnx__TensorProto **) b.inits->pdata;
  graph.n_input = 1;
  graph.input = &in_vi;
  graph.n_output = 1;
  graph.output = &out_vi;

  onnx__operator_set_id_proto__init (&opset);
  opset.domain = (char *) "";
  opset.has_version = TRUE;
  opset.version = OPSET;

  onnx__model_proto__init (&model);
  model.has_ir_version = TRUE;
  model.ir_version = 6;  /* what opset 11 shipped with */
  model.n_opset_import = 1;
  model.opset_import = opsets;
  model.producer_name = (char *) "magpie-train";
  model.producer_version = (char *) PACKAGE_VERSION;
  model.graph = &graph;

  len = onnx__model_proto__get_packed_size (&model);
  buf = g_malloc (len);
  onnx__model_proto__pack (&model, buf);
  ok = g_file_set_contents (path, (const char *) buf, len, error);
  g_ptr_array_unref (b.nodes);
  g_ptr_array_unref (b.inits);
  g_ptr_array_unref (b.mem);
  return ok;
}

const char *const *
tr_task_labels (TrTask task)
{
  static const char *const digits[] = { "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", NULL };
  /* CIFAR-10's batches.meta.txt order; lib/nn/nn-labels.c marks them for translation */
  static const char *const photos[] = { "airplane", "automobile", "bird", "cat", "deer", "dog",
                                        "frog", "horse", "ship", "truck", NULL };

  return task == TR_TASK_DIGITS ? digits : photos;
}

/* JSON is written by hand rather than with json-glib, whose %.17g makes 0.1307 read
 * 0.13070000000000001 in a file people read */
static void
json_string (GString *s, const char *v)
{
  g_string_append_c (s, '"');
  for (const char *p = v; *p; p++)
    {
      if (*p == '"' || *p == '\\')
        g_string_append_printf (s, "\\%c", *p);
      else if ((guchar) *p < 0x20)
        g_string_append_printf (s, "\\u%04x", (guchar) *p);
      else
        g_string_append_c (s, *p);
    }
  g_string_append_c (s, '"');
}

static void
json_number (GString *s, const char *fmt, double v)
{
  char buf[G_ASCII_DTOSTR_BUF_SIZE];

  g_string_append (s, g_ascii_formatd (buf, sizeof buf, fmt, v));
}

static void
json_floats (GString *s, const float *v, int n)
{
  if (n == 1)
    {
      json_number (s, "%.6g", v[0]);
      return;
    }
  g_string_append_c (s, '[');
  for (int i = 0; i < n; i++)
    {
      if (i)
        g_string_append (s, ", ");
      json_number (s, "%.6g", v[i]);
    }
  g_string_append_c (s, ']');
}

gboolean
tr_export_sidecar (const TrRecipe *r, const TrDataset *train, const TrTrainStats *stats,
                   const char *command, double test_accuracy, const char *path, GError **error)
{
  g_autoptr(GString) s = g_string_new ("{\n");
  const gboolean digits = r->task == TR_TASK_DIGITS;
  const int size = digits ? 28 : 32;
  const char *const *labels = tr_task_labels (r->task);

  g_string_append_printf (s, "  \"input_size\": [%d, %d],\n", size, size);
  if (digits)
    /* canvas drawings go through nn_digits_preprocess() (nn-digits.h), not a plain resize */
    g_string_append (s, "  \"grayscale\": true,\n  \"preprocess\": \"mnist-digit\",\n");
  else
    /* the shorter side to 32, then the centre square: CIFAR-10's photos are centred */
    g_string_append_printf (s, "  \"resize\": %d,\n", size);
  g_string_append (s, "  \"layout\": \"NCHW\",\n  \"channel_order\": \"RGB\",\n"
                   "  \"scale\": ");
  json_number (s, "%.9g", 1.0 / 255.0);
  g_string_append (s, ",\n  \"mean\": ");
  json_floats (s, r->mean, digits ? 1 : 3);
  g_string_append (s, ",\n  \"std\": ");
  json_floats (s, r->std, digits ? 1 : 3);
  g_string_append (s, ",\n  \"labels\": [");
  for (int i = 0; labels[i]; i++)
    {
      if (i)
        g_string_append (s, ", ");
      json_string (s, labels[i]);
    }
  g_string_append (s, "],\n  \"output\": \"probabilities\",\n  \"training\": {\n"
                   "    \"command\": ");
  json_string (s, command);
  g_string_append_printf (s, ",\n    \"seed\": %" G_GUINT64_FORMAT ",\n    \"epochs\": %d,\n"
                          "    \"batch\": %d,\n    \"threads\": %d,\n"
                          "    \"train_images\": %d,\n    \"train_seconds\": ",
                          r->seed, r->epochs, r->batch, r->threads, train->n);
  json_number (s, "%.1f", stats->seconds);
  g_string_append (s, ",\n    \"cpu_seconds\": ");
  json_number (s, "%.1f", stats->cpu_seconds);
  g_string_append (s, ",\n    \"data\": [");
  for (guint i = 0; i + 1 < train->files->len; i += 2)
    {
      g_string_append (s, i ? ",\n      {\"file\": " : "\n      {\"file\": ");
      json_string (s, g_ptr_array_index (train->files, i));
      g_string_append (s, ", \"sha256\": ");
      json_string (s, g_ptr_array_index (train->files, i + 1));
      g_string_append_c (s, '}');
    }
  g_string_append (s, "\n    ],\n    \"test_accuracy\": ");
  json_number (s, "%.4f", test_accuracy);
  g_string_append (s, "\n  }\n}\n");
  return g_file_set_contents (path, s->str, (gssize) s->len, error);
}
