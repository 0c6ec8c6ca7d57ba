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

typedef struct {
    uint16_t d;           /* f16 scale */
    int8_t qs[RN_QK];     /* (32) */
} rni_block_q8_0;         /* 34 bytes */

typedef struct {
    uint16_t d;             /* f16 scale */
    uint8_t qs[RN_QK / 2];  /* (16) byte j: weight j (low nibble), j + 16 (high) */
} rni_block_q4_0;           /* 18 bytes */

/* rn_matmul_w (retnet.h), in detail: W and the row stride aligned to 4
 * bytes for f32, to 2 for the others, as ggml's blocks are.
 * M <= RNI_SMALL_M (decoding): register-blocked kernels, several rows
 * of W per pass, the weights converted to float in registers, float32
 * accumulation: AVX-512 (16 lanes) where the CPU has F, BW, VL, DQ and
 * VNNI, chosen at run time (any x86-64 build carries them), else AVX2 +
 * FMA where the build targets it, else scalar loops. The output columns
 * are split across OpenMP threads when M N K >= RNI_MATMUL_PAR_MADDS (see
 * quant.c for the measurement). Every output element is computed by the
 * same sequence of operations whatever the thread count and whatever the
 * other rows, so threads on/off agree bit for bit.
 * Larger M: BLAS sgemm, on W itself for f32, else on panels of W rows
 * dequantised into a per-thread scratch buffer (a thread-local buffer grown
 * on demand and kept for the thread's life: no allocation once warm; at
 * most RNI_PANEL_FLOATS floats). If that scratch cannot be allocated the
 * product falls back to the small-M kernels (slower, same result up to
 * float rounding).
 * rn_matmul_w_x8 (q8_0 / q4_0, M <= RNI_BATCH_M): each row of X is
 * quantised to q8_0 blocks (ggml's rounding: |x - qx dx| <= dx / 2 + 127
 * |dx - f16(dx)|), each block product an int8 dot product (AMX tiles for
 * q8_0 where Linux lends them, else AVX-512 VNNI: vpdpbusd, two blocks a
 * vector) scaled by d_w dx and summed in float32;
 * the quantised X lives in a per-thread scratch (grown on demand, kept).
 * A row's result is the same bits alone or among up to RNI_BATCH_M rows
 * (on one machine: the AVX-512 and AVX2 kernels sum in other orders). */
#define RNI_SMALL_M 8
#define RNI_BATCH_M 64

/* The scalar reference of rn_matmul_w (same contract): dot products of the
 * dequantised weights in float32, k in order. For the tests and for builds
 * without AVX2 + FMA (rn_matmul_w then runs these loops). */
void rni_matmul_w_ref(int M, int N, int K, const float *X, int ldx, const void *W, rn_wtype t,
                      size_t w_row_stride_bytes, float *Y, int ldy, int accumulate);
/* The scalar reference of rn_matmul_w_x8 (the same int8 block products,
 * scalar sums). */
void rni_matmul_w_x8_ref(int M, int N, int K, const float *X, int ldx, const void *W, rn_wtype t,
                         size_t w_row_stride_bytes, float *Y, int ldy, int accumulate);

/* One block of 32 activations to q8_0 as rn_matmul_w_x8 quantises them
 * (vector code where the kernels are AVX-512): the bits of
 * rn_quantize_row's q8_0. */
void rni_quantize_act_q8_0(const float *x, rni_block_q8_0 *y);

/* Weight k of a row of K weights of type t, as float (exact). */
float rni_wtype_get(rn_wtype t, const void *row, int k);
/* Whether rows x K weights of type t at p are all finite: bf16 / f16
 * values, or the f16 scales of q8_0 / q4_0 blocks (f32: every value).
 * Returns the first bad row, or -1. */
long rni_wtype_first_bad_row(rn_wtype t, const void *p, size_t rows, int K);

/* A weight matrix as a model holds it: N rows of K weights of type t,
 * row n at (const char *)p + n * stride. */
typedef struct {
    const void *p;
    rn_wtype t;
    size_t stride;
    /* f32 of a model small enough (RNI_PANEL_MAX_BYTES): products of up
     * to 64 rows in the panel kernel's order, from pk, the weights packed
     * at load (rni_panel_pack), or else from p packed as they go */
    int panel;
    const rn_real *pk;
} rni_wmat;

/* y (M, N) = x (M, K) W^T, or y += x W^T with accumulate: the model's
 * weight products. f32: rni_gemm (its few-row kernel up to 64 rows, else
 * BLAS); any other type: rn_matmul_w's register-blocked kernels for all of
 * up to RNI_BATCH_M rows in one pass over W (else sgemm on dequantised
 * panels), or rn_matmul_w_x8's for q8_0 / q4_0 when x8 is set.
 * The float64 build holds f32 weights only and always calls rni_gemm. */
void rni_linear_forward(const rni_wmat *W, int M, int N, int K, const rn_real *x, int ldx, rn_real *y, int ldy,
                        int accumulate, int x8);

/* The kernels rn_matmul_w and rn_matmul_w_x8 run: 2 AVX-512 (+ VNNI),
 * 1 AVX2 + FMA, 0 scalar. rni_matmul_w_set_simd caps the level (tests run
 * every level the machine has; not thread-safe: call between products)
 * and returns the level then in use. */
int rni_matmul_w_simd(void);
int rni_matmul_w_set_simd(int max_level);

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
