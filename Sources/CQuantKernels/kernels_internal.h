// Shared by every path: block layouts, the activation formats, and the row dequantisers
// (plain loops that each path's compiler flags vectorise).

#ifndef SCEN_KERNELS_INTERNAL_H
#define SCEN_KERNELS_INTERNAL_H

#include <stdint.h>
#include <string.h>
#include "CQuantKernels.h"

enum { GGML_Q5_0 = 6, GGML_Q8_0 = 8, GGML_Q4_K = 12, GGML_Q6_K = 14 };

// Weight blocks as GGUF stores them (sizes in bytes).
enum { Q8_0_BYTES = 34, Q5_0_BYTES = 22, Q4_K_BYTES = 144, Q6_K_BYTES = 210 };

// Activations for Q8_0/Q5_0 weights: 32 codes, their scale and their sum.
typedef struct { float d; int32_t sum; int8_t qs[32]; } scen_act32;
// Activations for K-quant weights: 256 codes, their scale and the sums of each 16.
typedef struct { float d; int16_t bsums[16]; int8_t qs[256]; } scen_act256;

// One path's kernels: rows r < rows of W times n activation rows.
typedef void (*scen_gemv_fn)(const uint8_t *w, size_t row_bytes, int rows, int nb,
                             const void *act, size_t act_bytes, int n, float *y, size_t ldy);
typedef void (*scen_dequant_fn)(const uint8_t *w, size_t row_bytes, int rows, int nb, float *out, int cols);
typedef void (*scen_gemv_f32_fn)(const uint8_t *w, size_t row_bytes, int rows, int nb,
                                 const float *x, size_t ldx, int n, float *y, size_t ldy);
typedef struct {
    scen_gemv_f32_fn gemv_f32_q8_0;
    scen_gemv_fn gemv_q8_0, gemv_q5_0, gemv_q4_K, gemv_q6_K;
    scen_dequant_fn dequant_q8_0, dequant_q5_0, dequant_q4_K, dequant_q6_K;
} scen_kernel_table;

extern const scen_kernel_table scen_table_portable;
#if defined(__x86_64__)
extern const scen_kernel_table scen_table_avx2;
extern const scen_kernel_table scen_table_avx512;
extern const scen_kernel_table scen_table_avx512_vnni;
#endif

// IEEE half → float, exact (subnormals, infinities and NaNs included).
static inline float scen_half(const uint8_t *p) {
    uint16_t h = (uint16_t)(p[0] | (p[1] << 8));
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1F, man = h & 0x3FF, bits;
    if (exp == 0) {
        if (man == 0) { bits = sign; }
        else {  // subnormal: normalise
            int e = -1;
            do { man <<= 1; e++; } while (!(man & 0x400));
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3FF) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7F800000 | (man << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

// Q4_K: the 6-bit scale and min of sub-block j (0…7) from the 12 packed bytes.
static inline void scen_q4k_scale_min(const uint8_t *q, int j, uint8_t *sc, uint8_t *m) {
    if (j < 4) {
        *sc = q[j] & 63; *m = q[j + 4] & 63;
    } else {
        *sc = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

// Row dequantisers, shared source; each path's file compiles them with its own target flags.
#define SCEN_DEFINE_DEQUANT(SUFFIX)                                                                 \
static void dequant_q8_0_##SUFFIX(const uint8_t *w, size_t row_bytes, int rows, int nb, float *out, int cols) { \
    for (int r = 0; r < rows; r++) {                                                                \
        const uint8_t *p = w + (size_t)r * row_bytes; float *o = out + (size_t)r * cols;             \
        for (int b = 0; b < nb; b++, p += Q8_0_BYTES, o += 32) {                                    \
            const float d = scen_half(p); const int8_t *q = (const int8_t *)(p + 2);                \
            for (int i = 0; i < 32; i++) o[i] = d * (float)q[i];                                    \
        }                                                                                           \
    }                                                                                               \
}                                                                                                   \
static void dequant_q5_0_##SUFFIX(const uint8_t *w, size_t row_bytes, int rows, int nb, float *out, int cols) { \
    for (int r = 0; r < rows; r++) {                                                                \
        const uint8_t *p = w + (size_t)r * row_bytes; float *o = out + (size_t)r * cols;             \
        for (int b = 0; b < nb; b++, p += Q5_0_BYTES, o += 32) {                                    \
            const float d = scen_half(p); uint32_t qh; memcpy(&qh, p + 2, 4);                       \
            const uint8_t *qs = p + 6;                                                              \
            for (int i = 0; i < 16; i++) {                                                          \
                o[i] = d * (float)((int)((qs[i] & 0xF) | (((qh >> i) & 1) << 4)) - 16);             \
                o[i + 16] = d * (float)((int)((qs[i] >> 4) | (((qh >> (i + 16)) & 1) << 4)) - 16);  \
            }                                                                                       \
        }                                                                                           \
    }                                                                                               \
}                                                                                                   \
static void dequant_q4_K_##SUFFIX(const uint8_t *w, size_t row_bytes, int rows, int nb, float *out, int cols) { \
    for (int r = 0; r < rows; r++) {                                                                \
        const uint8_t *p = w + (size_t)r * row_bytes; float *o = out + (size_t)r * cols;             \
        for (int b = 0; b < nb; b++, p += Q4_K_BYTES, o += 256) {                                   \
            const float d = scen_half(p), dmin = scen_half(p + 2);                                  \
            for (int g = 0; g < 4; g++) {                                                           \
                uint8_t s0, m0, s1, m1;                                                             \
                scen_q4k_scale_min(p + 4, 2 * g, &s0, &m0); scen_q4k_scale_min(p + 4, 2 * g + 1, &s1, &m1); \
                const float a0 = d * s0, b0 = dmin * m0, a1 = d * s1, b1 = dmin * m1;              \
                const uint8_t *qs = p + 16 + 32 * g; float *og = o + 64 * g;                         \
                for (int i = 0; i < 32; i++) {                                                      \
                    og[i] = a0 * (float)(qs[i] & 0xF) - b0;                                         \
                    og[i + 32] = a1 * (float)(qs[i] >> 4) - b1;                                     \
                }                                                                                   \
            }                                                                                       \
        }                                                                                           \
    }                                                                                               \
}                                                                                                   \
static void dequant_q6_K_##SUFFIX(const uint8_t *w, size_t row_bytes, int rows, int nb, float *out, int cols) { \
    for (int r = 0; r < rows; r++) {                                                                \
        const uint8_t *p = w + (size_t)r * row_bytes; float *o = out + (size_t)r * cols;             \
        for (int b = 0; b < nb; b++, p += Q6_K_BYTES, o += 256) {                                   \
            const float d = scen_half(p + 208); const int8_t *sc = (const int8_t *)(p + 192);       \
            for (int g = 0; g < 2; g++) {                                                           \
                const uint8_t *ql = p + 64 * g, *qh = p + 128 + 32 * g;                              \
                float *og = o + 128 * g; const int8_t *s = sc + 8 * g;                               \
                for (int i = 0; i < 32; i++) {                                                      \
                    const int q0 = (ql[i] & 0xF) | ((qh[i] & 3) << 4);                              \
                    const int q1 = (ql[i + 32] & 0xF) | (((qh[i] >> 2) & 3) << 4);                  \
                    const int q2 = (ql[i] >> 4) | (((qh[i] >> 4) & 3) << 4);                        \
                    const int q3 = (ql[i + 32] >> 4) | (((qh[i] >> 6) & 3) << 4);                   \
                    og[i] = d * (float)s[i / 16] * (float)(q0 - 32);                                \
                    og[i + 32] = d * (float)s[2 + i / 16] * (float)(q1 - 32);                       \
                    og[i + 64] = d * (float)s[4 + i / 16] * (float)(q2 - 32);                       \
                    og[i + 96] = d * (float)s[6 + i / 16] * (float)(q3 - 32);                       \
                }                                                                                   \
            }                                                                                       \
        }                                                                                           \
    }                                                                                               \
}

#endif
