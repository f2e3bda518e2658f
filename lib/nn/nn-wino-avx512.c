/* nn-wino-avx512.c - the Winograd transforms built with AVX512 (meson adds the -m flags); used only
 * when the CPU reports the instructions (nn_wino_isas) */
#include "config.h"

#define NN_WINO_VW 16
#define NN_WINO_ISA avx512
#include "nn-wino-kern.h"
