// The avx512_vnni path: x86_kernels.inc compiled for these instructions (see there).
#if defined(__x86_64__)
#pragma STDC FP_CONTRACT OFF
#include <immintrin.h>
#include "kernels_internal.h"
#pragma clang attribute push (__attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni"))), apply_to = function)
#define SUFFIX avx512_vnni
#define SCEN_VNNI 1
#define SCEN_AVX512 1
#include "x86_kernels.inc"
#pragma clang attribute pop
#endif
