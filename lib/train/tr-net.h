/* tr-net.h - a trainable network: a list of layers, each reading earlier layers' outputs,
 * with forward, backward and an SGD step
 *
 * Built once with the tr_net_add_*() calls (each returns the new layer's index; -1 names
 * the network's input), then sized for a batch with tr_net_set_batch(). Activations are
 * (C, N, H, W) (see tr-ops.h). Work is split into tasks that do not depend on the thread
 * count, so a seed gives the same weights with 1 or 2 threads.
 */
#pragma once

#include <glib.h>

#include "tr-pool.h"
#include "tr-rng.h"

G_BEGIN_DECLS

typedef enum {
  TR_CONV,      /* no bias: a batch norm follows */
  TR_BN,
  TR_RELU,
  TR_MAXPOOL,   /* 2x2, stride 2 */
  TR_GAP,
  TR_ADD,
  TR_DENSE,
} TrKind;

typedef struct {
  float   *v, *g, *m;  /* value, gradient, momentum */
  size_t   n;
  gboolean decay;      /* weight decay applies (weights, not biases or BN) */
} TrParam;

typedef struct {
  TrKind   kind;
  int      src, src2;  /* inputs: layer indices, -1 for the network's input */
  int      C, H, W;    /* output per image */
  int      k, stride, pad;
  TrParam  w, b;       /* conv: w (M, C, k, k); BN: w = gamma, b = beta; dense: w (M, K), b */
  float   *run_mean, *run_var, *mean, *invstd;
  float   *y, *dy;     /* (C, N, H, W) */
  guint8  *arg;
  gboolean dy_set;
} TrLayer;

typedef struct {
  int       C, H, W;   /* input per image */
  int       N;         /* batch the buffers are sized for */
  GArray   *layers;    /* TrLayer */
  float    *x;         /* input (C, N, H, W), filled by the caller */
  float     bn_eps, bn_momentum;
  float     logit_scale;  /* the last layer's outputs are multiplied by it in the loss */
  TrPool   *pool;
  float   **col;       /* per worker */
  size_t    col_size;
  float    *parts;     /* per-chunk weight gradients */
  size_t    parts_size;
} TrNet;

#define TR_NET_CHUNK 16  /* images per convolution task */

TrNet   *tr_net_new           (int        C,
                               int        H,
                               int        W,
                               int        n_threads);
void     tr_net_free          (TrNet     *net);
int      tr_net_add_conv      (TrNet     *net,
                               int        src,
                               int        M,
                               int        k,
                               int        stride,
                               int        pad);
int      tr_net_add_bn        (TrNet     *net,
                               int        src);
int      tr_net_add_relu      (TrNet     *net,
                               int        src);
int      tr_net_add_maxpool   (TrNet     *net,
                               int        src);
int      tr_net_add_gap       (TrNet     *net,
                               int        src);
int      tr_net_add_add       (TrNet     *net,
                               int        a,
                               int        b);
int      tr_net_add_dense     (TrNet     *net,
                               int        src,
                               int        M);
TrLayer *tr_net_layer         (TrNet     *net,
                               int        i);
int      tr_net_n_layers      (TrNet     *net);
/* He-normal convolutions, uniform dense layers, BN gamma 1 beta 0 */
void     tr_net_init          (TrNet     *net,
                               guint64    seed);
void     tr_net_set_batch     (TrNet     *net,
                               int        N);
/* Runs the layers on net->x; @train uses batch statistics and keeps what backward needs. */
void     tr_net_forward       (TrNet     *net,
                               gboolean   train);
/* The last layer's output (K, N). */
const float *tr_net_output    (TrNet     *net);
/* Mean loss of the last forward against @labels; with @backward, computes all gradients.
 * Adds the number of correct predictions to *correct. */
double   tr_net_loss_backward (TrNet     *net,
                               const guint8 *labels,
                               float      smoothing,
                               gboolean   backward,
                               int       *correct);
/* Nesterov SGD: g += wd w (decayed params); m = mu m + g; w -= lr (g + mu m) */
void     tr_net_sgd_step      (TrNet     *net,
                               float      lr,
                               float      momentum,
                               float      weight_decay);
size_t   tr_net_n_params      (TrNet     *net);
/* multiply-adds of one forward pass for one image */
double   tr_net_macs          (TrNet     *net);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (TrNet, tr_net_free)

G_END_DECLS
