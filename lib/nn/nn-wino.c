/* nn-wino.c - Winograd convolution on the XNNPACK path: which convolutions take it, the
 * weight transform at plan time, and a run's three phases on the plan's thread pool. The
 * transforms themselves are in nn-wino-kern.h, compiled once per instruction set; the
 * reference convolution (nn_ref_conv) is the oracle in tests/nn/test-wino.c. */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <xnnpack.h>

#include "nn-wino.h"

/* the baseline build of the transforms: 4-float vectors (SSE2 on x86-64, NEON on arm64) */
#define NN_WINO_VW 4
#define NN_WINO_ISA generic
#include "nn-wino-kern.h"

/* The rule's thresholds (nn_wino_pick) */
#define NN_WINO_MIN_CHANNELS 32
#define NN_WINO_MIN_TILES 32

/* Past this many scratch bytes a layer keeps the direct convolution: the transformed
 * tensors are 2.25x (F(4x4)) or 4x (F(2x2)) the activations they come from. */
#define NN_WINO_MAX_SCRATCH ((size_t) 512 << 20)

struct _NnWino {
  NnWinoShape          s;
  const NnWinoKernels *k;
  int                  f;        /* 0: F(2x2,3x3), 1: F(4x4,3x3) */
  int                  P;        /* transform points, (m+2)^2 */
  float               *bias;     /* (Mp) */
  xnn_operator_t       fc[36];   /* one (T,C) x (C,M) product per point */
  pthreadpool_t        pool;
  uint32_t             flags;
  size_t               chunk;    /* tiles per transform task */
};

gboolean
nn_wino_applies (const NnConvParams *p)
{
  return p->nsp == 2 && p->in[0] == 1 && p->G == 1 && p->k[1] == 3 && p->k[2] == 3 &&
         p->stride[1] == 1 && p->stride[2] == 1 && p->dil[1] == 1 && p->dil[2] == 1 &&
         p->out[1] > 0 && p->out[2] > 0 && p->N > 0 && p->C > 0 && p->M > 0;
}

/* MAGPIE_NN_WINOGRAD: "0" never, "2" or "4" that tile size wherever it applies, otherwise
 * (unset, "auto") the engine's rule; -1 for the rule. Read at plan time, not per run. */
static int
forced_tile (void)
{
  const char *v = g_getenv ("MAGPIE_NN_WINOGRAD");

  if (g_strcmp0 (v, "0") == 0)
    return 0;
  if (g_strcmp0 (v, "2") == 0 || g_strcmp0 (v, "4") == 0)
    return v[0] - '0';
  return -1;
}

static int64_t
round_up (int64_t v, int64_t to)
{
  return (v + to - 1) / to * to;
}

/* Tiles of a tile size over the whole batch: the rows of each point's product. */
static int64_t
tiles (const NnConvParams *p, int m)
{
  return p->N * ((p->out[1] + m - 1) / m) * ((p->out[2] + m - 1) / m);
}

static size_t
scratch_for (const NnConvParams *p, int m)
{
  const int64_t P = (m + 2) * (m + 2);
  const int64_t T = tiles (p, m);

  return (size_t) (P * T * (round_up (p->C, NN_WINO_CH_ALIGN) +
                            round_up (p->M, NN_WINO_CH_ALIGN))) * sizeof (float);
}

int
nn_wino_pick (const NnConvParams *p)
{
  int m = forced_tile ();

  if (!nn_wino_applies (p) || m == 0)
    return 0;
  if (m < 0)
    {
      /* The rule, from resnet18's layers timed one by one (MAGPIE_NN_PROFILE=2) when this was
       * written; the whole-model figures are in BENCHMARKS.md. Each point's product reads
       * its (C, M) weights once for all tiles; with few tiles that read, not the arithmetic,
       * sets the time, and F(4x4)'s weights are 4x the direct ones. With few channels the
       * transforms cost as much as the products save. */
      if (p->C < NN_WINO_MIN_CHANNELS || p->M < NN_WINO_MIN_CHANNELS)
        return 0;
      if (tiles (p, 4) >= NN_WINO_MIN_TILES)
        m = 4;
      else if (tiles (p, 2) >= NN_WINO_MIN_TILES)
        m = 2;
      else
        return 0;
    }
  return scratch_for (p, m) <= NN_WINO_MAX_SCRATCH ? m : 0;
}

const char *const *
nn_wino_isas (void)
{
  static const char *isas[4];
  static gsize once;

  if (g_once_init_enter (&once))
    {
      int n = 0;

#if defined(NN_WINO_AVX512)
      if (__builtin_cpu_supports ("avx512f") && __builtin_cpu_supports ("fma"))
        isas[n++] = "avx512";
#endif
#if defined(NN_WINO_AVX2)
      if (__builtin_cpu_supports ("avx2") && __builtin_cpu_supports ("fma"))
        isas[n++] = "avx2";
#endif
      isas[n++] = "generic";
      isas[n] = NULL;
      g_once_init_leave (&once, 1);
    }
  return isas;
}

static const NnWinoKernels *
kernels_for (const char *isa)
{
  const NnWinoKernels *all[] = {
#if defined(NN_WINO_AVX512)
    &nn_wino_kernels_avx512,
#endif
#if defined(NN_WINO_AVX2)
    &nn_wino_kernels_avx2,
#endif
    &nn_wino_kernels_generic,
  };

  if (!isa)
    isa = nn_wino_isas ()[0];
  if (!g_strv_contains ((const char *const *) nn_wino_isas (), isa))
    return NULL;
  for (gsize i = 0; i < G_N_ELEMENTS (all); i++)
    if (g_str_equal (all[i]->isa, isa))
      return all[i];
  return NULL;
}

/* U = G g G^T for each (m, c), in double; u (P, M, C) */
static void
transform_weights (float *u, const float *w, int64_t M, int64_t C, int m)
{
  static const double G2[4][3] = {
    { 1.0, 0.0, 0.0 }, { 0.5, 0.5, 0.5 }, { 0.5, -0.5, 0.5 }, { 0.0, 0.0, 1.0 },
  };
  static const double G4[6][3] = {
    { 1.0 / 4, 0.0, 0.0 },
    { -1.0 / 6, -1.0 / 6, -1.0 / 6 },
    { -1.0 / 6, 1.0 / 6, -1.0 / 6 },
    { 1.0 / 24, 1.0 / 12, 1.0 / 6 },
    { 1.0 / 24, -1.0 / 12, 1.0 / 6 },
    { 0.0, 0.0, 1.0 },
  };
  const int n = m + 2;
  const double (*G)[3] = m == 4 ? G4 : G2;

  for (int64_t o = 0; o < M; o++)
    for (int64_t c = 0; c < C; c++)
      {
        const float *g = w + (o * C + c) * 9;
        double gt[6][3];

        /* G g */
        for (int a = 0; a < n; a++)
          for (int j = 0; j < 3; j++)
            gt[a][j] = G[a][0] * g[j] + G[a][1] * g[3 + j] + G[a][2] * g[6 + j];
        /* (G g) G^T */
        for (int a = 0; a < n; a++)
          for (int b = 0; b < n; b++)
            u[((int64_t) (a * n + b) * M + o) * C + c] =
              (float) (gt[a][0] * G[b][0] + gt[a][1] * G[b][1] + gt[a][2] * G[b][2]);
      }
}

NnWino *
nn_wino_new (const NnConvParams *p, const float *w, const float *bias, int m, float lo,
             float hi, const char *isa, pthreadpool_t pool, uint32_t flags)
{
  NnWino *wino;
  g_autofree float *u = NULL;
  const NnWinoKernels *k = kernels_for (isa);
  NnWinoShape *s;

  g_return_val_if_fail (nn_wino_applies (p) && (m == 2 || m == 4), NULL);
  if (!k || xnn_initialize (NULL) != xnn_status_success)
    return NULL;
  wino = g_new0 (NnWino, 1);
  wino->k = k;
  wino->f = m == 4;
  wino->P = (m + 2) * (m + 2);
  wino->pool = pool;
  wino->flags = flags;
  s = &wino->s;
  s->N = p->N;
  s->H = p->in[1];
  s->W = p->in[2];
  s->C = p->C;
  s->M = p->M;
  s->OH = p->out[1];
  s->OW = p->out[2];
  s->pad_t = p->pad[1];
  s->pad_l = p->pad[2];
  s->m = m;
  s->th = (s->OH + m - 1) / m;
  s->tw = (s->OW + m - 1) / m;
  s->T = s->N * s->th * s->tw;
  s->Cp = round_up (s->C, NN_WINO_CH_ALIGN);
  s->Mp = round_up (s->M, NN_WINO_CH_ALIGN);
  /* tile-major: a tile's transform writes (and reads back) one contiguous run of P
   * vectors; each point's product reads and writes its rows P vectors apart */
  s->v_point = s->Cp;
  s->v_tile = wino->P * s->Cp;
  s->y_point = s->Mp;
  s->y_tile = wino->P * s->Mp;
  s->lo = lo;
  s->hi = hi;
  wino->bias = g_new0 (float, s->Mp);
  if (bias)
    memcpy (wino->bias, bias, s->M * sizeof (float));
  s->bias = wino->bias;

  u = g_new (float, (size_t) wino->P * s->M * s->C);
  transform_weights (u, w, s->M, s->C, m);
  for (int i = 0; i < wino->P; i++)
    if (xnn_create_fully_connected_nc_f32 (s->C, s->M, s->v_tile, s->y_tile,
                                           u + (int64_t) i * s->M * s->C,
                                           NULL, -INFINITY, INFINITY, 0,
                                           &wino->fc[i]) != xnn_status_success)
      {
        nn_wino_free (wino);
        return NULL;
      }
  return wino;
}

size_t
nn_wino_scratch (const NnWino *wino)
{
  return (size_t) wino->P * wino->s.T * (wino->s.Cp + wino->s.Mp) * sizeof (float);
}

gboolean
nn_wino_setup (NnWino *wino, const float *in, float *out, float *scratch)
{
  NnWinoShape *s = &wino->s;
  const size_t threads = wino->pool ? pthreadpool_get_threads_count (wino->pool) : 1;

  s->x = in;
  s->o = out;
  s->v = scratch;
  s->y = scratch + (size_t) wino->P * s->T * s->Cp;
  /* a few tasks per thread, so that one held up by the scheduler is made up by the others */
  wino->chunk = MAX (1, (size_t) s->T / (threads * 4));
  for (int i = 0; i < wino->P; i++)
    if (xnn_setup_fully_connected_nc_f32 (wino->fc[i], s->T, s->v + i * s->v_point,
                                          s->y + i * s->y_point, NULL) != xnn_status_success)
      return FALSE;
  return TRUE;
}

static void
input_task (void *ctx, size_t t0, size_t n)
{
  const NnWino *wino = ctx;

  wino->k->input[wino->f] (&wino->s, (int64_t) t0, (int64_t) (t0 + n));
}

static void
product_task (void *ctx, size_t i)
{
  const NnWino *wino = ctx;

  /* set up at plan time on this (T, C) slice; runs single-threaded inside the pool's task */
  if (G_UNLIKELY (xnn_run_operator (wino->fc[i], NULL) != xnn_status_success))
    g_critical ("nn-wino: XNNPACK failed to run a fully connected operator it had set up");
}

static void
output_task (void *ctx, size_t t0, size_t n)
{
  const NnWino *wino = ctx;

  wino->k->output[wino->f] (&wino->s, (int64_t) t0, (int64_t) (t0 + n));
}

void
nn_wino_run (const NnWino *wino)
{
  void *ctx = (void *) wino;

  pthreadpool_parallelize_1d_tile_1d (wino->pool, input_task, ctx, wino->s.T, wino->chunk, 0);
  pthreadpool_parallelize_1d (wino->pool, product_task, ctx, wino->P, 0);
  pthreadpool_parallelize_1d_tile_1d (wino->pool, output_task, ctx, wino->s.T, wino->chunk,
                                      wino->flags);
}

void
nn_wino_free (void *p)
{
  NnWino *wino = p;

  if (!wino)
    return;
  for (int i = 0; i < wino->P; i++)
    if (wino->fc[i])
      xnn_delete_operator (wino->fc[i]);
  g_free (wino->bias);
  g_free (wino);
}
