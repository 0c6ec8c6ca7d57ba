/* quant.h: typed weights (f32, bf16, f16, q8_0, q4_0) and the product
 * kernels that read them: Y (M, N) = X (M, K) W^T with W stored as N rows
 * of K weights of one type, float32 activations and accumulation.
 *
 * The block types follow ggml exactly (layout, rounding), so weights can be
 * written and read in ggml's convention:
 *   q8_0: 32 weights in 34 bytes: f16 scale d, then 32 int8 q; w = q * d.
 *   q4_0: 32 weights in 18 bytes: f16 scale d, then 16 bytes; byte j holds
 *         weight j in its low nibble and weight j + 16 in its high nibble;
 *         w = (nibble - 8) * d.
 * Every function here is float32 whatever rn_real is (the file compiles in
 * both builds). */
#ifndef RN_QUANT_H
#define RN_QUANT_H

#include "internal.h"

#include <stddef.h>
#include <stdint.h>

typedef enum {
    RNI_WTYPE_F32,
    RNI_WTYPE_BF16,
    RNI_WTYPE_F16,
    RNI_WTYPE_Q8_0,
    RNI_WTYPE_Q4_0,
    RNI_WTYPE_COUNT
} rni_wtype;

/* Weights per block of the block types. */
#define RNI_QK 32

typedef struct {
    uint16_t d;           /* f16 scale */
    int8_t qs[RNI_QK];    /* (32) */
} rni_block_q8_0;         /* 34 bytes */

typedef struct {
    uint16_t d;             /* f16 scale */
    uint8_t qs[RNI_QK / 2]; /* (16) byte j: weight j (low nibble), j + 16 (high) */
} rni_block_q4_0;           /* 18 bytes */

/* "f32", "bf16", "f16", "q8_0", "q4_0" ("unknown" out of range). */
const char *rni_wtype_name(rni_wtype t);

/* Bytes of one row of K weights of type t; 0 when t is unknown, K <= 0, or
 * K is not a multiple of 32 for a block type (such rows are refused). */
size_t rni_wtype_row_bytes(rni_wtype t, int K);

/* One row of K floats to type t (ggml's reference rounding: bf16 and f16
 * round to nearest even; q8_0 d = amax / 127, q = roundf(x / d); q4_0
 * d = (the value of largest magnitude) / -8, q = min(15, (int)(x / d + 8.5))).
 * RN_ERR_ARG (rni_fail) when rni_wtype_row_bytes(t, K) is 0. */
rn_status rni_quantize_row(rni_wtype t, const float *x, void *dst, int K);
/* And back: y (K) = the weights as float32 (exact for every type). */
rn_status rni_dequantize_row(rni_wtype t, const void *src, float *y, int K);

/* Y (M, N) = X (M, K) W^T, or Y += X W^T when accumulate is set. X rows
 * are ldx floats apart, Y rows ldy; W is N rows of K weights of type t,
 * row n at (char *)W + n * w_row_stride_bytes (at least
 * rni_wtype_row_bytes(t, K); W and the stride aligned to 4 bytes for f32,
 * to 2 for the others, as ggml's blocks are). Preconditions, not
 * checked: M, N >= 0, rni_wtype_row_bytes(t, K) > 0, no aliasing of Y
 * with X or W.
 *
 * M <= RNI_SMALL_M (decoding, batched decoding): register-blocked AVX2/FMA
 * kernels, several rows of W per pass, the weights converted to float in
 * registers, float32 accumulation; the output columns are split across
 * OpenMP threads when M N K >= RNI_MATMUL_PAR_MADDS (see quant.c for the
 * measurement). Every output element is computed by the same sequence of
 * operations whatever the thread count, so threads on/off agree bit for bit.
 * Larger M: BLAS sgemm, on W itself for f32, else on panels of W rows
 * dequantised into a per-thread scratch buffer (a thread-local buffer grown
 * on demand and kept for the thread's life: no allocation once warm; at
 * most RNI_PANEL_FLOATS floats). If that scratch cannot be allocated the
 * product falls back to the small-M kernels (slower, same result up to
 * float rounding). Both paths use float activations: the result is the
 * product of the dequantised weights to float32 rounding, whatever M. */
#define RNI_SMALL_M 8
void rni_matmul_w(int M, int N, int K, const float *X, int ldx, const void *W, rni_wtype t,
                  size_t w_row_stride_bytes, float *Y, int ldy, int accumulate);

/* The scalar reference of rni_matmul_w (same contract): dot products of the
 * dequantised weights in float32, k in order. For the tests and for builds
 * without AVX2 + FMA (rni_matmul_w then runs these loops). */
void rni_matmul_w_ref(int M, int N, int K, const float *X, int ldx, const void *W, rni_wtype t,
                      size_t w_row_stride_bytes, float *Y, int ldy, int accumulate);

/* rni_matmul_w with the activations quantised, as ggml does: for q8_0 and
 * q4_0 weights and M <= RNI_SMALL_M, each row of X is quantised to q8_0
 * blocks (ggml's rounding: x ~ qx dx, |x - qx dx| <= dx / 2 + 127 |dx -
 * f16(dx)|) and each block product is an int8 dot product, scaled by
 * d_w dx and summed in float32. Several times less work per weight than
 * converting the weights to float, so decoding from q4_0/q8_0 can keep up
 * with memory; the price is the rounding of X: the result is the product
 * of the dequantised weights with the dequantised q8_0 X (to float32
 * rounding), i.e. off the float-activation product by at most
 * sum_k |w_k| |x_k - qx_k dx| (docs/PERFORMANCE.md gives the measured
 * size). Other types, larger M, or no scratch: exactly rni_matmul_w. The
 * quantised X lives in a per-thread scratch (grown on demand, kept). */
void rni_matmul_w_x8(int M, int N, int K, const float *X, int ldx, const void *W, rni_wtype t,
                     size_t w_row_stride_bytes, float *Y, int ldy, int accumulate);
/* Its scalar reference (the same int8 block products, scalar sums). */
void rni_matmul_w_x8_ref(int M, int N, int K, const float *X, int ldx, const void *W, rni_wtype t,
                         size_t w_row_stride_bytes, float *Y, int ldy, int accumulate);

/* Whether rni_matmul_w runs the AVX2 + FMA kernels in this build. */
int rni_matmul_w_simd(void);

/* Scalar conversions, bit-exact (round to nearest even; NaN stays NaN,
 * quiet; overflow to f16 gives Inf as IEEE rounding does). */
float rni_f16_to_f32(uint16_t h);
uint16_t rni_f32_to_f16(float f);
static inline float rni_bf16_to_f32(uint16_t h) {
    union { uint32_t u; float f; } v = {(uint32_t)h << 16};
    return v.f;
}
static inline uint16_t rni_f32_to_bf16(float f) {
    union { float f; uint32_t u; } v = {f};
    if ((v.u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((v.u >> 16) | 64);  /* quiet NaN */
    return (uint16_t)((v.u + 0x7fffu + ((v.u >> 16) & 1)) >> 16);
}

#endif
