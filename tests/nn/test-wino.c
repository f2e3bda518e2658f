/* test-wino.c - Winograd convolution (nn-wino.c) against the reference convolution, which
 * accumulates in double: odd sizes, paddings 0 to 2 (asymmetric too), channel counts that
 * are not multiples of 16, batches of 1 and 3, fused Relu and Clip, F(2x2,3x3) and
 * F(4x4,3x3), every instruction set this CPU runs, with and without a thread pool. Then
 * whole models: the engine picks Winograd for ResNet-sized layers (and either tile size
 * when MAGPIE_NN_WINOGRAD forces it), fuses Relu and Clip, and agrees with the reference
 * path.
 *
 * Tolerance: every output within tol * S of the reference, where S is the same convolution
 * over |x| and |w| plus |bias| (the sum the rounding errors scale with); tol is 1e-6 for
 * F(2x2,3x3) and 1e-5 for F(4x4,3x3), about four times the worst seen (2.5e-7 and 2.7e-6 S),
 * since F(4x4)'s transforms multiply by up to 8 and 1/24. */
#include "config.h"

#include <math.h>
#include <string.h>

#include <pthreadpool.h>

#include "nn-onnx.h"
#include "nn-test-util.h"
#include "nn-wino.h"

typedef struct {
  int64_t N, C, M, H, W;
  int64_t pt, pl, pb, pr;      /* pads: top, left, bottom, right */
  int     act;                 /* 0 none, 1 Relu, 2 Clip [-0.5, 0.5] */
  int     bias;
} WinoCase;

static const WinoCase cases[] = {
  { 1, 1, 1, 3, 3, 0, 0, 0, 0, 0, 0 },     /* one output pixel */
  { 1, 3, 5, 7, 9, 1, 1, 1, 1, 0, 1 },
  { 3, 5, 7, 9, 7, 1, 1, 1, 1, 1, 1 },
  { 1, 17, 19, 11, 13, 0, 0, 0, 0, 2, 1 },
  { 3, 16, 16, 8, 8, 1, 1, 1, 1, 1, 0 },
  { 3, 33, 70, 14, 14, 1, 0, 0, 1, 0, 1 }, /* asymmetric */
  { 1, 20, 24, 5, 6, 2, 2, 2, 2, 1, 1 },   /* padding wider than the kernel's reach */
  { 3, 31, 15, 15, 15, 1, 2, 0, 1, 2, 1 },
  { 1, 64, 64, 28, 28, 1, 1, 1, 1, 1, 1 }, /* resnet18-like; small enough for valgrind */
  { 1, 160, 96, 14, 14, 1, 1, 1, 1, 1, 1 },
  { 3, 128, 128, 7, 7, 1, 1, 1, 1, 0, 1 },
};

static NnConvParams
params_for (const WinoCase *c)
{
  NnConvParams p;

  memset (&p, 0, sizeof p);
  p.N = c->N;
  p.C = c->C;
  p.M = c->M;
  p.G = 1;
  p.nsp = 2;
  p.in[0] = p.out[0] = p.k[0] = 1;
  p.in[1] = c->H;
  p.in[2] = c->W;
  p.k[1] = p.k[2] = 3;
  for (int d = 0; d < NN_MAX_SPATIAL; d++)
    p.stride[d] = p.dil[d] = 1;
  p.pad[1] = c->pt;
  p.pad[2] = c->pl;
  p.pad_end[1] = c->pb;
  p.pad_end[2] = c->pr;
  p.out[1] = c->H + c->pt + c->pb - 2;
  p.out[2] = c->W + c->pl + c->pr - 2;
  p.has_bias = c->bias;
  p.dtype = NN_DTYPE_FLOAT;
  return p;
}

/* (N, C, S) <-> (N, S, C) */
static void
to_nhwc (float *dst, const float *src, int64_t N, int64_t C, int64_t S)
{
  for (int64_t n = 0; n < N; n++)
    for (int64_t c = 0; c < C; c++)
      for (int64_t i = 0; i < S; i++)
        dst[(n * S + i) * C + c] = src[(n * C + c) * S + i];
}

static void
fill (float *v, int64_t n, GRand *rand)
{
  for (int64_t i = 0; i < n; i++)
    v[i] = (float) g_rand_double_range (rand, -1.0, 1.0);
}

/* Runs F(m x m, 3x3) with kernels @isa on @x_nhwc and checks every output against @want
 * within tol * @scale. */
static void
check_one (const WinoCase *c, const NnConvParams *p, const float *x_nhwc, const float *w,
           const float *b, const float *want, const float *scale, int m, const char *isa,
           pthreadpool_t pool)
{
  const int64_t OS = p->out[1] * p->out[2], n_out = c->N * c->M * OS;
  const float lo = c->act == 0 ? -INFINITY : c->act == 1 ? 0.0f : -0.5f;
  const float hi = c->act == 2 ? 0.5f : INFINITY;
  const double tol = m == 4 ? 1e-5 : 1e-6;
  /* a canary past the end catches a transform that stores a whole vector into the tail */
  g_autofree float *got = g_new (float, n_out + 16);
  g_autofree float *scratch = NULL;
  NnWino *wino = nn_wino_new (p, w, c->bias ? b : NULL, m, lo, hi, isa, pool, 0);
  double worst = 0.0;

  g_assert_nonnull (wino);
  scratch = g_malloc (nn_wino_scratch (wino));
  for (int i = 0; i < 16; i++)
    got[n_out + i] = 12345.0f;
  g_assert_true (nn_wino_setup (wino, x_nhwc, got, scratch));
  /* twice: a run must not depend on what the scratch held before */
  nn_wino_run (wino);
  nn_wino_run (wino);
  nn_wino_free (wino);

  for (int i = 0; i < 16; i++)
    g_assert_cmpfloat (got[n_out + i], ==, 12345.0f);
  for (int64_t n = 0; n < c->N; n++)
    for (int64_t o = 0; o < c->M; o++)
      for (int64_t i = 0; i < OS; i++)
        {
          const int64_t r = (n * c->M + o) * OS + i;
          const float ref = CLAMP (want[r], lo, hi);
          const float v = got[(n * OS + i) * c->M + o];
          const double err = fabs ((double) v - ref);

          if (err > tol * scale[r])
            g_error ("F(%dx%d,3x3) %s N%ld C%ld M%ld %ldx%ld: output (%ld, %ld, %ld) is %.9g, "
                     "reference %.9g, error %.3g > %.3g", m, m, isa, (long) c->N, (long) c->C,
                     (long) c->M, (long) c->H, (long) c->W, (long) n, (long) o, (long) i, v,
                     ref, err, tol * scale[r]);
          worst = MAX (worst, err / scale[r]);
        }
  g_test_message ("F(%dx%d,3x3) %-7s N%ld C%-3ld M%-3ld %ldx%ld pads %ld,%ld,%ld,%ld %s: "
                  "worst error %.2g x S", m, m, isa, (long) c->N, (long) c->C, (long) c->M,
                  (long) c->H, (long) c->W, (long) c->pt, (long) c->pl, (long) c->pb,
                  (long) c->pr, pool ? "pool" : "serial", worst);
}

/* One case's data and references, then every tile size and instruction set on them. */
static void
check_case (const WinoCase *c, pthreadpool_t pool, GRand *rand)
{
  NnConvParams p = params_for (c);
  const int64_t S = c->H * c->W, OS = p.out[1] * p.out[2];
  const char *const *isas = nn_wino_isas ();
  g_autofree float *x = g_new (float, c->N * c->C * S);
  g_autofree float *x_abs = g_new (float, c->N * c->C * S);
  g_autofree float *x_nhwc = g_new (float, c->N * c->C * S);
  g_autofree float *w = g_new (float, c->M * c->C * 9);
  g_autofree float *w_abs = g_new (float, c->M * c->C * 9);
  g_autofree float *b = g_new (float, c->M);
  g_autofree float *b_abs = g_new (float, c->M);
  g_autofree float *want = g_new (float, c->N * c->M * OS);
  g_autofree float *scale = g_new (float, c->N * c->M * OS);

  fill (x, c->N * c->C * S, rand);
  fill (w, c->M * c->C * 9, rand);
  fill (b, c->M, rand);
  for (int64_t i = 0; i < c->N * c->C * S; i++)
    x_abs[i] = fabsf (x[i]);
  for (int64_t i = 0; i < c->M * c->C * 9; i++)
    w_abs[i] = fabsf (w[i]);
  for (int64_t i = 0; i < c->M; i++)
    b_abs[i] = fabsf (b[i]);
  nn_ref_conv (want, x, w, c->bias ? b : NULL, &p);
  nn_ref_conv (scale, x_abs, w_abs, c->bias ? b_abs : NULL, &p);
  to_nhwc (x_nhwc, x, c->N, c->C, S);

  g_assert_nonnull (isas[0]);
  for (int k = 0; isas[k]; k++)
    for (int m = 2; m <= 4; m += 2)
      check_one (c, &p, x_nhwc, w, b, want, scale, m, isas[k], (k + m / 2) % 2 ? pool : NULL);
}

static void
test_kernels (void)
{
  g_autoptr(GRand) rand = g_rand_new_with_seed (31);
  pthreadpool_t pool = pthreadpool_create (2);

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    check_case (&cases[i], pool, rand);
  pthreadpool_destroy (pool);
}

static void
test_pick (void)
{
  const WinoCase layer1 = { 1, 64, 64, 56, 56, 1, 1, 1, 1, 1, 1 };
  const WinoCase tiny = { 1, 3, 5, 7, 9, 1, 1, 1, 1, 0, 1 };
  NnConvParams p = params_for (&layer1);

  g_assert_true (nn_wino_applies (&p));
  g_assert_cmpint (nn_wino_pick (&p), ==, 4);
  p.stride[1] = 2;
  g_assert_false (nn_wino_applies (&p));
  p = params_for (&layer1);
  p.dil[2] = 2;
  g_assert_false (nn_wino_applies (&p));
  p = params_for (&layer1);
  p.G = 2;
  g_assert_false (nn_wino_applies (&p));
  /* resnet18 at batch 1: layer3 takes F(2x2) (16 F(4x4) tiles are too few for its weights),
   * layer4 keeps the direct convolution, and at batch 8 both take F(4x4) */
  p = params_for (&(WinoCase) { 1, 256, 256, 14, 14, 1, 1, 1, 1, 1, 1 });
  g_assert_cmpint (nn_wino_pick (&p), ==, 2);
  p.N = 8;
  g_assert_cmpint (nn_wino_pick (&p), ==, 4);
  p = params_for (&(WinoCase) { 1, 512, 512, 7, 7, 1, 1, 1, 1, 1, 1 });
  g_assert_cmpint (nn_wino_pick (&p), ==, 0);
  p.N = 8;
  g_assert_cmpint (nn_wino_pick (&p), ==, 4);
  p = params_for (&tiny);
  g_assert_true (nn_wino_applies (&p));
  g_assert_cmpint (nn_wino_pick (&p), ==, 0);
  g_setenv ("MAGPIE_NN_WINOGRAD", "2", TRUE);
  g_assert_cmpint (nn_wino_pick (&p), ==, 2);
  p = params_for (&layer1);
  g_setenv ("MAGPIE_NN_WINOGRAD", "0", TRUE);
  g_assert_cmpint (nn_wino_pick (&p), ==, 0);
  g_unsetenv ("MAGPIE_NN_WINOGRAD");
  g_assert_null (nn_wino_new (&p, NULL, NULL, 4, 0.0f, 1.0f, "no-such-isa", NULL, 0));
}

/* The kernel the fast path's plan gives the model's Conv, for a 2-thread plan. */
static const char *
conv_kernel (const guint8 *data, gsize len, const NnTensor *x)
{
  g_autoptr(GError) error = NULL;
  NnGraph *g = nn_onnx_load (data, len, &error);
  NnPlanOptions opts = { TRUE, 2, FALSE };
  NnPlan *plan;
  const char *name = NULL;

  g_assert_no_error (error);
  g_assert_true (nn_graph_fold (g, &error));
  plan = nn_plan_new (g, x, 1, &opts, &error);
  g_assert_no_error (error);
  for (guint s = 0; s < plan->steps->len; s++)
    {
      const NnStep *st = &g_array_index (plan->steps, NnStep, s);

      if (st->node && g_str_equal (st->node->op_type, "Conv"))
        name = g_intern_string (st->kernel_name);
    }
  nn_plan_free (plan);
  nn_graph_free (g);
  return name;
}

static void
add_node (GByteArray *graph, const char *op, const char *const *ins, const char *out,
          GByteArray *attr)
{
  GByteArray *node = g_byte_array_new ();

  for (int i = 0; ins[i]; i++)
    pb_string_field (node, 1, ins[i]);
  pb_string_field (node, 2, out);
  pb_string_field (node, 4, op);
  if (attr)
    pb_msg_field (node, 5, attr);
  pb_msg_field (graph, 1, node);
}

static void
add_initializer (GByteArray *graph, const char *name, int ndim, const int64_t *dims,
                 const float *data)
{
  GByteArray *t = g_byte_array_new ();
  int64_t n = 1;

  for (int i = 0; i < ndim; i++)
    {
      pb_varint_field (t, 1, (guint64) dims[i]);
      n *= dims[i];
    }
  pb_varint_field (t, 2, 1);
  pb_string_field (t, 8, name);
  pb_bytes_field (t, 9, data, n * sizeof (float));
  pb_msg_field (graph, 5, t);
}

/* Conv (+ Relu or Clip) as a model: with MAGPIE_NN_WINOGRAD at @env the fast path's plan
 * takes the tile size nn_wino_pick() names, fuses the activation, and matches the reference
 * kernels to 1e-4 relative or 1e-6 * 9C absolute: an output near zero carries the rounding
 * of its whole 9C-term sum, whose size is about 9C * E|w| * E|x| = 9C here. */
static void
model_case (const WinoCase *c, const char *env, GRand *rand)
{
  GByteArray *graph = g_byte_array_new ();
  GByteArray *attr = g_byte_array_new ();
  NnConvParams p = params_for (c);
  const int64_t in[4] = { c->N, c->C, c->H, c->W }, wdims[4] = { c->M, c->C, 3, 3 };
  const int64_t bdims[1] = { c->M }, out_unknown[4] = { -1, -1, -1, -1 };
  const int64_t pads[4] = { c->pt, c->pl, c->pb, c->pr };
  const float lo = -0.5f, hi = 0.5f;
  g_autofree float *wdata = g_new (float, c->M * c->C * 9);
  g_autofree float *bdata = g_new (float, c->M);
  g_autofree char *want_kernel = NULL;
  g_autofree char *diff = NULL;
  g_autoptr(GBytes) bytes = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(NnModel) fast = NULL;
  g_autoptr(NnModel) ref = NULL;
  g_autoptr(NnTensor) x = nn_tensor_new (NN_DTYPE_FLOAT, 4, in);
  const guint8 *data;
  gsize len;
  int m;

  if (env)
    g_setenv ("MAGPIE_NN_WINOGRAD", env, TRUE);
  else
    g_unsetenv ("MAGPIE_NN_WINOGRAD");
  m = nn_wino_pick (&p);
  g_assert_cmpint (m, !=, 0);
  want_kernel = g_strdup_printf ("wino-f%d", m);

  pb_string_field (attr, 1, "pads");
  pb_varint_field (attr, 20, 7);
  for (int i = 0; i < 4; i++)
    pb_varint_field (attr, 8, (guint64) pads[i]);
  add_node (graph, "Conv", (const char *[]) { "X", "W", c->bias ? "B" : NULL, NULL },
            c->act ? "T" : "Y", attr);
  if (c->act == 1)
    add_node (graph, "Relu", (const char *[]) { "T", NULL }, "Y", NULL);
  if (c->act == 2)
    {
      add_node (graph, "Clip", (const char *[]) { "T", "lo", "hi", NULL }, "Y", NULL);
      add_initializer (graph, "lo", 0, NULL, &lo);
      add_initializer (graph, "hi", 0, NULL, &hi);
    }
  fill (wdata, c->M * c->C * 9, rand);
  fill (bdata, c->M, rand);
  add_initializer (graph, "W", 4, wdims, wdata);
  if (c->bias)
    add_initializer (graph, "B", 1, bdims, bdata);
  pb_msg_field (graph, 11, nn_test_value_info ("X", 1, 4, in));
  pb_msg_field (graph, 12, nn_test_value_info ("Y", 1, 4, out_unknown));
  bytes = nn_test_model (graph, 13);
  data = g_bytes_get_data (bytes, &len);

  fast = nn_model_new_from_data (data, len, &error);
  g_assert_no_error (error);
  ref = nn_model_new_from_data (data, len, &error);
  g_assert_no_error (error);
  nn_model_set_fast (ref, FALSE);
  nn_model_set_threads (fast, 2);
  nn_test_fill_random (x, rand, -2.0, 2.0);
  g_assert_true (nn_model_run (fast, x, 1, &error));
  g_assert_no_error (error);
  g_assert_true (nn_model_run (ref, x, 1, &error));
  g_assert_no_error (error);
  g_assert_cmpstr (conv_kernel (data, len, x), ==, want_kernel);
  diff = nn_test_compare (nn_model_get_output (fast, 0), nn_model_get_output (ref, 0), 1e-4,
                          1e-6 * 9 * c->C);
  if (diff)
    g_error ("%s N%ld C%ld M%ld %ldx%ld act %d: %s", want_kernel, (long) c->N, (long) c->C,
             (long) c->M, (long) c->H, (long) c->W, c->act, diff);
  g_unsetenv ("MAGPIE_NN_WINOGRAD");
}

static void
test_model (void)
{
  g_autoptr(GRand) rand = g_rand_new_with_seed (32);
  /* the engine's own choice on ResNet-sized layers, then each tile size forced on small,
   * odd ones */
  const WinoCase resnet[] = {
    { 1, 64, 64, 28, 28, 1, 1, 1, 1, 1, 1 },
    { 1, 128, 96, 14, 14, 1, 1, 1, 1, 1, 0 },
    { 3, 64, 80, 14, 14, 1, 1, 1, 1, 2, 1 },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (resnet); i++)
    model_case (&resnet[i], NULL, rand);
  for (gsize i = 0; i < 8; i++)
    for (int m = 2; m <= 4; m += 2)
      model_case (&cases[i], m == 2 ? "2" : "4", rand);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/nn/wino/kernels", test_kernels);
  g_test_add_func ("/nn/wino/pick", test_pick);
  g_test_add_func ("/nn/wino/model", test_model);
  return g_test_run ();
}
