/* nn-wino-avx2.c - the Winograd transforms built with AVX2 (meson adds the -m flags); used only
 * when the CPU reports the instructions (nn_wino_isas) */
#include "config.h"

#define NN_WINO_VW 8
#define NN_WINO_ISA avx2
#include "nn-wino-kern.h"
