// The portable path (any CPU), the activation rounding every path shares, and the dispatch.

#pragma STDC FP_CONTRACT OFF

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include "kernels_internal.h"

SCEN_DEFINE_DEQUANT(portable)

// MARK: Activation rounding (one implementation for every path), as ggml's CPU backend rounds
// the operand of a product with these weights, so a decode step computes what llama.cpp's does.

// Q8_0 (ggml's AVX2 quantize_row_q8_0): d = amax / 127 kept as f16, q = x · (127 / amax)
// rounded half to even.
static void quantize_row32(const float *x, int cols, scen_act32 *y) {
    for (int b = 0; b < cols / 32; b++, x += 32) {
        float amax = 0;
        for (int i = 0; i < 32; i++) { const float a = fabsf(x[i]); if (a > amax) amax = a; }
        const float id = amax > 0 ? 127 / amax : 0;
        int32_t sum = 0;
        for (int i = 0; i < 32; i++) {
            const int q = (int)lrintf(x[i] * id);
            y[b].qs[i] = (int8_t)(q > 127 ? 127 : q < -127 ? -127 : q);
            sum += y[b].qs[i];
        }
        y[b].d = (float)(_Float16)(amax / 127);
        y[b].sum = sum;
    }
}

// Q8_K (ggml's quantize_row_q8_K_ref): m = the value of largest |x| (the first, with its sign),
// iscale = −127 / m, q = min(127, iscale · x rounded half to even), d = 1 / iscale.
static void quantize_row256(const float *x, int cols, scen_act256 *y) {
    for (int b = 0; b < cols / 256; b++, x += 256) {
        float amax = 0, m = 0;
        for (int i = 0; i < 256; i++) { const float a = fabsf(x[i]); if (a > amax) { amax = a; m = x[i]; } }
        if (amax == 0) {
            memset(&y[b], 0, sizeof y[b]);
            continue;
        }
        const float iscale = -127 / m;
        for (int g = 0; g < 16; g++) {
            int sum = 0;
            for (int i = 16 * g; i < 16 * g + 16; i++) {
                const int q = (int)lrintf(iscale * x[i]);
                y[b].qs[i] = (int8_t)(q > 127 ? 127 : q);
                sum += y[b].qs[i];
            }
            y[b].bsums[g] = (int16_t)sum;
        }
        y[b].d = 1 / iscale;
    }
}

// MARK: Portable products: exact integer sums per block, Float32 terms added in block order.

typedef float (*row_dot_fn)(const uint8_t *p, const void *act, int nb);

static float dot_q8_0(const uint8_t *p, const void *act, int nb) {
    const scen_act32 *a = act;
    float acc = 0;
    for (int b = 0; b < nb; b++, p += Q8_0_BYTES) {
        const int8_t *q = (const int8_t *)(p + 2);
        int32_t s = 0;
        for (int i = 0; i < 32; i++) s += q[i] * a[b].qs[i];
        acc += scen_half(p) * a[b].d * (float)s;
    }
    return acc;
}

static float dot_q5_0(const uint8_t *p, const void *act, int nb) {
    const scen_act32 *a = act;
    float acc = 0;
    for (int b = 0; b < nb; b++, p += Q5_0_BYTES) {
        uint32_t qh; memcpy(&qh, p + 2, 4);
        const uint8_t *qs = p + 6;
        int32_t s = 0;
        for (int i = 0; i < 16; i++) {
            s += (int)((qs[i] & 0xF) | (((qh >> i) & 1) << 4)) * a[b].qs[i];
            s += (int)((qs[i] >> 4) | (((qh >> (i + 16)) & 1) << 4)) * a[b].qs[i + 16];
        }
        s -= 16 * a[b].sum;
        acc += scen_half(p) * a[b].d * (float)s;
    }
    return acc;
}

static float dot_q4_K(const uint8_t *p, const void *act, int nb) {
    const scen_act256 *a = act;
    float acc = 0;
    for (int b = 0; b < nb; b++, p += Q4_K_BYTES) {
        int32_t s = 0, m = 0;
        for (int g = 0; g < 4; g++) {
            uint8_t s0, m0, s1, m1;
            scen_q4k_scale_min(p + 4, 2 * g, &s0, &m0); scen_q4k_scale_min(p + 4, 2 * g + 1, &s1, &m1);
            const uint8_t *qs = p + 16 + 32 * g;
            const int8_t *aq = a[b].qs + 64 * g;
            int32_t t0 = 0, t1 = 0;
            for (int i = 0; i < 32; i++) { t0 += (qs[i] & 0xF) * aq[i]; t1 += (qs[i] >> 4) * aq[i + 32]; }
            s += s0 * t0 + s1 * t1;
            m += m0 * (a[b].bsums[4 * g] + a[b].bsums[4 * g + 1]) + m1 * (a[b].bsums[4 * g + 2] + a[b].bsums[4 * g + 3]);
        }
        acc += scen_half(p) * a[b].d * (float)s - scen_half(p + 2) * a[b].d * (float)m;
    }
    return acc;
}

static float dot_q6_K(const uint8_t *p, const void *act, int nb) {
    const scen_act256 *a = act;
    float acc = 0;
    for (int b = 0; b < nb; b++, p += Q6_K_BYTES) {
        const int8_t *sc = (const int8_t *)(p + 192);
        int32_t s = 0;
        for (int g = 0; g < 2; g++) {
            const uint8_t *ql = p + 64 * g, *qh = p + 128 + 32 * g;
            const int8_t *aq = a[b].qs + 128 * g, *sg = sc + 8 * g;
            int32_t t[8] = {0};
            for (int i = 0; i < 32; i++) {
                const int h = i / 16;
                t[h] += ((ql[i] & 0xF) | ((qh[i] & 3) << 4)) * aq[i];
                t[2 + h] += ((ql[i + 32] & 0xF) | (((qh[i] >> 2) & 3) << 4)) * aq[i + 32];
                t[4 + h] += ((ql[i] >> 4) | (((qh[i] >> 4) & 3) << 4)) * aq[i + 64];
                t[6 + h] += ((ql[i + 32] >> 4) | (((qh[i] >> 6) & 3) << 4)) * aq[i + 96];
            }
            for (int k = 0; k < 8; k++) s += sg[k] * t[k];
        }
        for (int g = 0; g < 16; g++) s -= 32 * sc[g] * a[b].bsums[g];
        acc += scen_half(p + 208) * a[b].d * (float)s;
    }
    return acc;
}

static void gemv_rows(row_dot_fn dot, const uint8_t *w, size_t row_bytes, int rows, int nb,
                      const void *act, size_t act_bytes, int n, float *y, size_t ldy) {
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < n; j++)
            y[(size_t)j * ldy + r] = dot(w + (size_t)r * row_bytes, (const uint8_t *)act + (size_t)j * act_bytes, nb);
}

#define PORTABLE_GEMV(T)                                                                            \
static void gemv_##T##_portable(const uint8_t *w, size_t row_bytes, int rows, int nb,              \
                                const void *act, size_t act_bytes, int n, float *y, size_t ldy) {  \
    gemv_rows(dot_##T, w, row_bytes, rows, nb, act, act_bytes, n, y, ldy);                          \
}
PORTABLE_GEMV(q8_0)
PORTABLE_GEMV(q5_0)
PORTABLE_GEMV(q4_K)
PORTABLE_GEMV(q6_K)

static void gemv_f32_q8_0_portable(const uint8_t *w, size_t row_bytes, int rows, int nb,
                                   const float *x, size_t ldx, int n, float *y, size_t ldy) {
    for (int r = 0; r < rows; r++) {
        for (int j = 0; j < n; j++) {
            const float *xj = x + (size_t)j * ldx;
            float acc = 0;
            const uint8_t *p = w + (size_t)r * row_bytes;
            for (int b = 0; b < nb; b++, p += Q8_0_BYTES) {
                const int8_t *q = (const int8_t *)(p + 2);
                float s = 0;
                for (int i = 0; i < 32; i++) s += (float)q[i] * xj[32 * b + i];
                acc += scen_half(p) * s;
            }
            y[(size_t)j * ldy + r] = acc;
        }
    }
}

const scen_kernel_table scen_table_portable = {
    gemv_f32_q8_0_portable,
    gemv_q8_0_portable, gemv_q5_0_portable, gemv_q4_K_portable, gemv_q6_K_portable,
    dequant_q8_0_portable, dequant_q5_0_portable, dequant_q4_K_portable, dequant_q6_K_portable,
};

// MARK: Dispatch

static int cpu_supports(int path) {
    switch (path) {
    case SCEN_KERNELS_PORTABLE: return 1;
#if defined(__x86_64__)
    case SCEN_KERNELS_AVX2:
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
    case SCEN_KERNELS_AVX512:
        return cpu_supports(SCEN_KERNELS_AVX2) && __builtin_cpu_supports("avx512f") &&
               __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
    case SCEN_KERNELS_AVX512_VNNI:
        return cpu_supports(SCEN_KERNELS_AVX512) && __builtin_cpu_supports("avx512vnni");
#endif
    default: return 0;
    }
}

int scen_kernels_supported(int path) { return path >= 0 && path < SCEN_KERNEL_PATH_COUNT && cpu_supports(path); }

static _Atomic int selected = -1;

int scen_kernels_path(void) {
    int p = atomic_load_explicit(&selected, memory_order_relaxed);
    if (p >= 0) return p;
    p = SCEN_KERNELS_PORTABLE;
    for (int q = SCEN_KERNEL_PATH_COUNT - 1; q > 0; q--) if (cpu_supports(q)) { p = q; break; }
    // SCEN_KERNELS=<name> picks a lower path (benchmarks); an unknown or unsupported name is ignored.
    const char *forced = getenv("SCEN_KERNELS");
    for (int q = 0; forced && q < SCEN_KERNEL_PATH_COUNT; q++)
        if (strcmp(forced, scen_kernels_path_name(q)) == 0 && cpu_supports(q)) p = q;
    atomic_store_explicit(&selected, p, memory_order_relaxed);
    return p;
}

const char *scen_kernels_path_name(int path) {
    switch (path) {
    case SCEN_KERNELS_PORTABLE: return "portable";
    case SCEN_KERNELS_AVX2: return "avx2";
    case SCEN_KERNELS_AVX512: return "avx512";
    case SCEN_KERNELS_AVX512_VNNI: return "avx512-vnni";
    default: return "unknown";
    }
}

static const scen_kernel_table *table(int path) {
    switch (path) {
#if defined(__x86_64__)
    case SCEN_KERNELS_AVX2: return &scen_table_avx2;
    case SCEN_KERNELS_AVX512: return &scen_table_avx512;
    case SCEN_KERNELS_AVX512_VNNI: return &scen_table_avx512_vnni;
#endif
    default: return &scen_table_portable;
    }
}

int scen_qtype_supported(int t) { return t == GGML_Q8_0 || t == GGML_Q5_0 || t == GGML_Q4_K || t == GGML_Q6_K; }

int scen_qtype_block_values(int t) {
    return t == GGML_Q8_0 || t == GGML_Q5_0 ? 32 : t == GGML_Q4_K || t == GGML_Q6_K ? 256 : 0;
}

size_t scen_qtype_row_bytes(int t, int cols) {
    switch (t) {
    case GGML_Q8_0: return (size_t)(cols / 32) * Q8_0_BYTES;
    case GGML_Q5_0: return (size_t)(cols / 32) * Q5_0_BYTES;
    case GGML_Q4_K: return (size_t)(cols / 256) * Q4_K_BYTES;
    case GGML_Q6_K: return (size_t)(cols / 256) * Q6_K_BYTES;
    default: return 0;
    }
}

size_t scen_activation_row_bytes(int t, int cols) {
    const int bv = scen_qtype_block_values(t);
    if (bv == 32) return (size_t)(cols / 32) * sizeof(scen_act32);
    if (bv == 256) return (size_t)(cols / 256) * sizeof(scen_act256);
    return 0;
}

void scen_quantize_activations(int t, const float *x, int n, int cols, size_t ldx, void *out) {
    const size_t rb = scen_activation_row_bytes(t, cols);
    for (int j = 0; j < n; j++) {
        void *o = (uint8_t *)out + (size_t)j * rb;
        if (scen_qtype_block_values(t) == 32) quantize_row32(x + (size_t)j * ldx, cols, o);
        else quantize_row256(x + (size_t)j * ldx, cols, o);
    }
}

void scen_gemv_on(int path, int t, const void *w, size_t row_bytes, int rows, int cols,
                  const void *act, int n, float *y, size_t ldy) {
    const scen_kernel_table *k = table(path);
    const size_t ab = scen_activation_row_bytes(t, cols);
    const int nb = cols / scen_qtype_block_values(t);
    switch (t) {
    case GGML_Q8_0: k->gemv_q8_0(w, row_bytes, rows, nb, act, ab, n, y, ldy); break;
    case GGML_Q5_0: k->gemv_q5_0(w, row_bytes, rows, nb, act, ab, n, y, ldy); break;
    case GGML_Q4_K: k->gemv_q4_K(w, row_bytes, rows, nb, act, ab, n, y, ldy); break;
    case GGML_Q6_K: k->gemv_q6_K(w, row_bytes, rows, nb, act, ab, n, y, ldy); break;
    default: break;
    }
}

void scen_gemv(int t, const void *w, size_t row_bytes, int rows, int cols, const void *act, int n, float *y, size_t ldy) {
    scen_gemv_on(scen_kernels_path(), t, w, row_bytes, rows, cols, act, n, y, ldy);
}

void scen_gemv_f32_q8_0_on(int path, const void *w, size_t row_bytes, int rows, int cols, const float *x, size_t ldx,
                           int n, float *y, size_t ldy) {
    table(path)->gemv_f32_q8_0(w, row_bytes, rows, cols / 32, x, ldx, n, y, ldy);
}

void scen_gemv_f32_q8_0(const void *w, size_t row_bytes, int rows, int cols, const float *x, size_t ldx, int n,
                        float *y, size_t ldy) {
    scen_gemv_f32_q8_0_on(scen_kernels_path(), w, row_bytes, rows, cols, x, ldx, n, y, ldy);
}

void scen_dequantize_on(int path, int t, const void *w, size_t row_bytes, int rows, int cols, float *out) {
    const scen_kernel_table *k = table(path);
    const int nb = cols / (scen_qtype_block_values(t) ? scen_qtype_block_values(t) : 1);
    switch (t) {
    case GGML_Q8_0: k->dequant_q8_0(w, row_bytes, rows, nb, out, cols); break;
    case GGML_Q5_0: k->dequant_q5_0(w, row_bytes, rows, nb, out, cols); break;
    case GGML_Q4_K: k->dequant_q4_K(w, row_bytes, rows, nb, out, cols); break;
    case GGML_Q6_K: k->dequant_q6_K(w, row_bytes, rows, nb, out, cols); break;
    default: break;
    }
}

void scen_dequantize(int t, const void *w, size_t row_bytes, int rows, int cols, float *out) {
    scen_dequantize_on(scen_kernels_path(), t, w, row_bytes, rows, cols, out);
}
