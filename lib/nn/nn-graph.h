/* nn-graph.h - the engine's graph: values, nodes, attributes, plans and their steps */
#pragma once

#include "nn-tensor.h"

G_BEGIN_DECLS

/* ONNX AttributeProto.AttributeType numbers */
typedef enum {
  NN_ATTR_FLOAT = 1,
  NN_ATTR_INT = 2,
  NN_ATTR_STRING = 3,
  NN_ATTR_TENSOR = 4,
  NN_ATTR_FLOATS = 6,
  NN_ATTR_INTS = 7,
} NnAttrType;

typedef struct {
  char      *name;
  int        type;
  float      f;
  int64_t    i;
  char      *s;
  NnTensor  *t;
  int        n;       /* length of floats / ints */
  float     *floats;
  int64_t   *ints;
} NnAttr;

typedef struct {
  char    *name;
  char    *op_type;
  int      op;        /* index into the op table (nn-ops.c) */
  int      n_in;
  int      n_out;
  int     *in;        /* value ids; -1 marks an omitted optional input */
  int     *out;
  int      n_attrs;
  NnAttr  *attrs;
} NnNode;

typedef struct {
  char      *name;
  NnDType    dtype;
  int        ndim;       /* -1 when the model declares no shape */
  int64_t    ne[NN_MAX_DIMS];  /* -1 for a symbolic dimension */
  NnTensor  *konst;      /* initializers and values folded at load time */
  int        producer;   /* node index, -1 for inputs and constants */
} NnValue;

typedef struct {
  int64_t     ir_version;
  int         opset;
  GPtrArray  *values;    /* NnValue* */
  GPtrArray  *nodes;     /* NnNode* in topological order */
  GArray     *inputs;    /* int value ids of real graph inputs (not initializers) */
  GArray     *outputs;   /* int value ids */
  GHashTable *by_name;   /* name -> GINT_TO_POINTER (id + 1) */
  int64_t     weight_bytes;
} NnGraph;

void          nn_graph_free       (NnGraph      *g);
NnValue      *nn_graph_value      (NnGraph      *g,
                                   int           id);
NnNode       *nn_graph_node       (NnGraph      *g,
                                   int           i);
int           nn_graph_add_value  (NnGraph      *g,
                                   const char   *name);
int           nn_graph_find       (NnGraph      *g,
                                   const char   *name);
/* Evaluates nodes whose inputs are all constants and drops them. */
gboolean      nn_graph_fold       (NnGraph      *g,
                                   GError      **error);

const NnAttr *nn_node_attr        (const NnNode *node,
                                   const char   *name);
int64_t       nn_node_attr_int    (const NnNode *node,
                                   const char   *name,
                                   int64_t       def);
float         nn_node_attr_float  (const NnNode *node,
                                   const char   *name,
                                   float         def);
const char   *nn_node_attr_string (const NnNode *node,
                                   const char   *name,
                                   const char   *def);
/* INTS attribute; returns its length, or -1 (and *v = NULL) when absent. */
int           nn_node_attr_ints   (const NnNode *node,
                                   const char   *name,
                                   const int64_t **v);

/* ---- plans ---- */

typedef struct _NnPlan NnPlan;
typedef struct _NnStep NnStep;

typedef struct {
  int   n_threads;
  void *xnn_threadpool;
} NnExec;

typedef void (*NnKernel) (const NnStep *step, const NnExec *exec);

#define NN_MAX_IO 64  /* DenseNet concatenates dozens of tensors */
#define NN_PARAM_BYTES 640

struct _NnStep {
  const NnNode *node;
  NnKernel      run;
  const char   *kernel_name;   /* "ref" or the fast kernel's name, for tests and profiles */
  int           n_in;
  int           n_out;
  NnTensor     *in[NN_MAX_IO];   /* NULL for omitted optional inputs */
  NnTensor     *out[NN_MAX_IO];
  float        *scratch;         /* per-step view into the plan's shared scratch buffer */
  size_t        scratch_bytes;
  /* op parameters decided at plan time, one struct per op family (nn-ops.h) */
  union {
    guint8  bytes[NN_PARAM_BYTES];
    int64_t align_;
    double  align2_;
  } p;
  gint64        time_us;         /* accumulated with MAGPIE_NN_PROFILE=1 */
  void         *fast;            /* fast-path state owned by the plan (packed weights, ...) */
  void        (*fast_free) (void *fast);
};

struct _NnPlan {
  NnGraph   *graph;
  NnTensor  *vals;          /* one tensor per value id (then spare slots): shape, data */
  guint      n_vals;
  gboolean  *known;         /* value computed at plan time (constants, shapes) */
  GPtrArray *owned;         /* buffers of values folded at plan time */
  GArray    *steps;         /* NnStep, in run order */
  guint8    *arena;
  size_t     arena_bytes;
  float     *scratch;
  size_t     scratch_bytes;
  /* the inputs this plan was made for: shapes, and the contents of small integer inputs,
   * since those may decide shapes (Reshape, Squeeze, ...) */
  NnTensor  *key;
  int        n_key;
  gboolean   fast;
  void      *threadpool;    /* XNNPACK's pthreadpool when the fast path uses it */
  gboolean   nhwc;          /* the fast path keeps 4-D activations channels-last */
  gboolean   uses_blas;     /* some step calls OpenBLAS */
};

typedef struct {
  gboolean fast;
  int      n_threads;
  gboolean no_xnn;
} NnPlanOptions;

NnPlan   *nn_plan_new   (NnGraph             *g,
                         const NnTensor      *inputs,
                         int                  n_inputs,
                         const NnPlanOptions *opts,
                         GError             **error);
gboolean  nn_plan_fits  (NnPlan              *plan,
                         const NnTensor      *inputs,
                         int                  n_inputs);
void      nn_plan_run   (NnPlan              *plan,
                         const NnTensor      *inputs,
                         int                  n_inputs,
                         const NnExec        *exec);
void      nn_plan_free  (NnPlan              *plan);

/* The XNNPACK fast path (nn-xnn.c). rewrite runs once the steps are known: it moves
 * convolutions and pools to XNNPACK with channels-last activations, fuses activations and
 * adds layout conversions where needed; FALSE means XNNPACK refused an operator. setup runs
 * once buffers are placed. */
gboolean  nn_xnn_rewrite    (NnPlan *plan,
                             int     n_threads);
gboolean  nn_xnn_setup      (NnPlan *plan);
void      nn_xnn_plan_free  (NnPlan *plan);

G_END_DECLS
