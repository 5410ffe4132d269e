// The avx2 path: x86_kernels.inc compiled for these instructions (see there).
#if defined(__x86_64__)
#pragma STDC FP_CONTRACT OFF
#include <immintrin.h>
#include "kernels_internal.h"
#pragma clang attribute push (__attribute__((target("avx2,fma,f16c"))), apply_to = function)
#define SUFFIX avx2
#define SCEN_VNNI 0
#define SCEN_AVX512 0
#include "x86_kernels.inc"
#pragma clang attribute pop
#endif
