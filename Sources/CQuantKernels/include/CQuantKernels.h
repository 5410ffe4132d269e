// Matrix-vector products computed directly on GGUF's quantised blocks (Q8_0, Q5_0, Q4_K, Q6_K),
// with the activations rounded to 8-bit blocks first (Q8 per 32 values for Q8_0/Q5_0 weights,
// per 256 values with 16-value sums for the K-quants). The weights are read where they lie
// (the model file's memory map); nothing is widened or copied.
//
// Four implementations of the same arithmetic, chosen at run time from CPUID (or forced, for
// tests): portable C, AVX2+FMA, AVX-512 (BW/VL) and AVX-512 VNNI. Every path sums each block's
// integer products exactly; they differ only in the order the per-block Float32 terms are added.
// The activation rounding is the same code on every path.

#ifndef SCEN_CQUANTKERNELS_H
#define SCEN_CQUANTKERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// The implementations, in order of preference.
typedef enum {
    SCEN_KERNELS_PORTABLE = 0,
    SCEN_KERNELS_AVX2 = 1,
    SCEN_KERNELS_AVX512 = 2,
    SCEN_KERNELS_AVX512_VNNI = 3,
} scen_kernel_path;

/// Number of paths (for iteration).
#define SCEN_KERNEL_PATH_COUNT 4

/// 1 if this CPU (and this build) can run `path`.
int scen_kernels_supported(int path);
/// The path in use: the best supported one, unless the environment variable SCEN_KERNELS names
/// another supported one ("portable", "avx2", "avx512", "avx512-vnni"); read once.
int scen_kernels_path(void);
/// "portable", "avx2", "avx512", "avx512-vnni".
const char *scen_kernels_path_name(int path);

/// 1 for the GGML type ids these kernels handle: 8 (Q8_0), 6 (Q5_0), 12 (Q4_K), 14 (Q6_K).
int scen_qtype_supported(int ggml_type);
/// Values per weight block of `ggml_type` (32 or 256); 0 if unsupported.
int scen_qtype_block_values(int ggml_type);
/// Bytes of one row of `cols` weights of `ggml_type`.
size_t scen_qtype_row_bytes(int ggml_type, int cols);

/// Bytes of one activation row of `cols` values rounded for weights of `ggml_type`.
size_t scen_activation_row_bytes(int ggml_type, int cols);
/// Rounds `n` rows of `cols` floats (row stride `ldx`) to the 8-bit blocks that weights of
/// `ggml_type` multiply with; row j goes to out + j * scen_activation_row_bytes(type, cols).
/// As ggml's CPU backend rounds them (llama.cpp's decode numerics): Q8_0/Q5_0 per 32 values,
/// d = max|x| / 127 as f16, q = x · 127 / max|x| rounded half to even; K-quants (Q8_K) per 256
/// values, iscale = −127 / (the value of largest |x|), q = min(127, round(iscale · x)),
/// d = 1 / iscale, plus the sums of each 16 codes.
void scen_quantize_activations(int ggml_type, const float *x, int n, int cols, size_t ldx, void *out);

/// y[j * ldy + r] = Σ_c W[r, c] · A_j[c] for r < rows, j < n: W is `rows` rows of `cols`
/// weights of `ggml_type` starting at `w` (row_bytes apart), A the n activation rows made by
/// `scen_quantize_activations` for that type.
void scen_gemv(int ggml_type, const void *w, size_t row_bytes, int rows, int cols,
               const void *activations, int n, float *y, size_t ldy);

/// y[j * ldy + r] = Σ_c W[r, c] · x[j * ldx + c] for a Q8_0 matrix and n Float32 rows (no
/// activation rounding): the exact product of the stored weights, summed in Float32.
void scen_gemv_f32_q8_0(const void *w, size_t row_bytes, int rows, int cols, const float *x, size_t ldx, int n,
                        float *y, size_t ldy);

/// out[r * cols + c] = W[r, c] as Float32, for r < rows.
void scen_dequantize(int ggml_type, const void *w, size_t row_bytes, int rows, int cols, float *out);

/// Same as scen_gemv / scen_dequantize on an explicit path (tests); the path must be supported.
void scen_gemv_on(int path, int ggml_type, const void *w, size_t row_bytes, int rows, int cols,
                  const void *activations, int n, float *y, size_t ldy);
void scen_gemv_f32_q8_0_on(int path, const void *w, size_t row_bytes, int rows, int cols, const float *x, size_t ldx,
                           int n, float *y, size_t ldy);
void scen_dequantize_on(int path, int ggml_type, const void *w, size_t row_bytes, int rows, int cols, float *out);

/// A task of `scen_parallel_for`: index i of count.
typedef void (*scen_task_fn)(void *context, int index);
/// Runs fn(context, i) for every i < count, on the calling thread and up to threads − 1 threads
/// of a persistent pool (workers spin briefly between jobs, then sleep); returns when all are
/// done. One job runs at a time: a caller that finds the pool busy runs its whole job itself.
void scen_parallel_for(int count, int threads, scen_task_fn fn, void *context);

/// Returns memory that malloc keeps after frees to the system (glibc's malloc_trim; no-op elsewhere).
void scen_return_free_memory(void);

#ifdef __cplusplus
}
#endif

#endif
