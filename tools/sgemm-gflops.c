/* sgemm-gflops.c - what OpenBLAS sgemm reaches on this machine: the ceiling for a GEMM-based
 * convolution. Linked to -lopenblas directly because Debian's numpy goes through the
 * libblas.so.3 alternative, which may be the reference BLAS.
 *
 *   cc -O2 tools/sgemm-gflops.c -lopenblas -o sgemm-gflops
 *   OPENBLAS_CORETYPE=SkylakeX OPENBLAS_NUM_THREADS=2 ./sgemm-gflops [seconds]
 *
 * Prints one JSON object per shape: mean and best GFLOP/s over repeated calls. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

char *openblas_get_corename (void);
int openblas_get_num_threads (void);

static double
now_s (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static float *
random_matrix (size_t n)
{
  float *m = malloc (n * sizeof *m);
  if (m == NULL)
    {
      fprintf (stderr, "sgemm-gflops: out of memory\n");
      exit (1);
    }
  for (size_t i = 0; i < n; i++)
    m[i] = (float) rand () / RAND_MAX - 0.5f;
  return m;
}

/* C (M,N) = A (M,K) B (K,N), row-major, for at least @seconds after two untimed calls. */
static void
bench (const char *label, int M, int N, int K, double seconds)
{
  float *a = random_matrix ((size_t) M * K);
  float *b = random_matrix ((size_t) K * N);
  float *c = random_matrix ((size_t) M * N);
  double flop = 2.0 * M * N * K, total = 0, best = 0;
  int calls = 0;

  for (int i = 0; i < 2; i++)
    cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, a, K, b, N, 0.0f, c, N);
  while (total < seconds)
    {
      double t0 = now_s ();
      cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, a, K, b, N, 0.0f, c, N);
      double dt = now_s () - t0;
      total += dt;
      calls++;
      if (flop / dt > best)
        best = flop / dt;
    }
  printf ("{\"shape\": \"%s\", \"M\": %d, \"N\": %d, \"K\": %d, \"core\": \"%s\", \"threads\": %d, "
          "\"calls\": %d, \"gflops_mean\": %.1f, \"gflops_best\": %.1f}\n",
          label, M, N, K, openblas_get_corename (), openblas_get_num_threads (), calls,
          flop * calls / total * 1e-9, best * 1e-9);
  free (a);
  free (b);
  free (c);
}

int
main (int argc, char **argv)
{
  double seconds = argc > 1 ? atof (argv[1]) : 3.0;

  if (seconds <= 0)
    {
      fprintf (stderr, "usage: sgemm-gflops [seconds > 0]\n");
      return 2;
    }
  bench ("square", 1024, 1024, 1024, seconds);
  /* ResNet-18 layer1 3x3 conv, 64->64 channels at 56x56, as im2col GEMM:
   * weights (Cout, Cin*3*3) times columns (Cin*3*3, H*W). */
  bench ("resnet18-layer1-conv3x3", 64, 56 * 56, 64 * 9, seconds);
  return 0;
}
