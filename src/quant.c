/* quant.c: typed weights (f32, bf16, f16, ggml's q8_0 and q4_0): row
 * conversions, and the product Y = X W^T with W kept in its type, for the
 * few rows of decoding (register-blocked AVX2 + FMA kernels) and for the
 * many rows of prefill and training-size products (BLAS sgemm on
 * dequantised panels). */
#include "quant.h"
#include "ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#define RNI_QUANT_SIMD 1
#include <immintrin.h>
#else
#define RNI_QUANT_SIMD 0
#endif

_Static_assert(sizeof(rni_block_q8_0) == 34, "q8_0 block is 34 bytes (ggml)");
_Static_assert(sizeof(rni_block_q4_0) == 18, "q4_0 block is 18 bytes (ggml)");

static const char *const wtype_names[] = {"f32", "bf16", "f16", "q8_0", "q4_0"};
_Static_assert(sizeof wtype_names / sizeof *wtype_names == RN_WTYPE_COUNT, "a name per type");

const char *rn_wtype_name(rn_wtype t) { return rni_name_of(wtype_names, RN_WTYPE_COUNT, (int)t); }

rn_status rn_wtype_from_name(const char *name, rn_wtype *out) {
    int i = 0;
    rn_status st = rni_name_lookup(wtype_names, RN_WTYPE_COUNT, "weight type", name, &i);
    if (st == RN_OK) *out = (rn_wtype)i;
    return st;
}

size_t rn_wtype_row_bytes(rn_wtype t, int K) {
    if (K <= 0) return 0;
    switch (t) {
    case RN_WTYPE_F32: return (size_t)K * 4;
    case RN_WTYPE_BF16:
    case RN_WTYPE_F16: return (size_t)K * 2;
    case RN_WTYPE_Q8_0: return K % RN_QK ? 0 : (size_t)(K / RN_QK) * sizeof(rni_block_q8_0);
    case RN_WTYPE_Q4_0: return K % RN_QK ? 0 : (size_t)(K / RN_QK) * sizeof(rni_block_q4_0);
    default: return 0;
    }
}

int rni_matmul_w_simd(void) { return RNI_QUANT_SIMD; }

/* ------------------------------------------------------ f16 conversions */

static inline uint32_t f32_bits(float f) { union { float f; uint32_t u; } v = {f}; return v.u; }
static inline float bits_f32(uint32_t u) { union { uint32_t u; float f; } v = {u}; return v.f; }

float rni_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ff;
    if (e == 0) {
        /* zero or subnormal: m 2^-24, exact in float */
        float v = (float)m * 0x1p-24f;
        return sign ? -v : v;
    }
    if (e == 31) return bits_f32(sign | 0x7f800000u | (m << 13));  /* Inf, NaN (payload kept) */
    return bits_f32(sign | ((e + 112) << 23) | (m << 13));
}

uint16_t rni_f32_to_f16(float f) {
    uint32_t x = f32_bits(f), sign = (x >> 16) & 0x8000, ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) return (uint16_t)(sign | 0x7e00 | ((ax >> 13) & 0x3ff));  /* quiet NaN */
    if (ax >= 0x7f800000u) return (uint16_t)(sign | 0x7c00);
    if (ax < 0x33000000u) return (uint16_t)sign;  /* below 2^-25: rounds to zero */
    uint32_t e = ax >> 23;
    if (e < 113) {
        /* f16 subnormal (below 2^-14): the value in units of 2^-24 */
        uint32_t m = (ax & 0x7fffff) | 0x800000, shift = 126 - e;
        uint32_t r = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (r & 1))) r++;  /* 0x400: the smallest normal */
        return (uint16_t)(sign | r);
    }
    uint32_t r = ((e - 112) << 10) | ((ax >> 13) & 0x3ff), rem = ax & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (r & 1))) r++;  /* a carry moves into the exponent */
    if (r >= 0x7c00) r = 0x7c00;                            /* overflow: Inf */
    return (uint16_t)(sign | r);
}

/* ----------------------------------------------------- row conversions */

/* A block holding a NaN or an infinity (x - x is NaN only for those) gets
 * a NaN scale and zero codes: products with it are NaN, as they would be
 * in float, and loading refuses such weights; the conversions to integers
 * below then never see a value out of range. */
static int block_finite(const float *xb) {
    float z = 0;
    for (int j = 0; j < RN_QK; j++) z += xb[j] - xb[j];
    return z == 0;
}

/* ggml's quantize_row_q8_0_ref: d = amax / 127, q = roundf(x / d). */
static void quantize_q8_0(const float *x, rni_block_q8_0 *y, int K) {
    for (int b = 0; b < K / RN_QK; b++) {
        const float *xb = x + (size_t)b * RN_QK;
        if (!block_finite(xb)) {
            y[b].d = 0x7e00;
            memset(y[b].qs, 0, sizeof y[b].qs);
            continue;
        }
        float amax = 0;
        for (int j = 0; j < RN_QK; j++) amax = fmaxf(amax, fabsf(xb[j]));
        float d = amax / 127, id = d ? 1.0f / d : 0.0f;
        y[b].d = rni_f32_to_f16(d);
        for (int j = 0; j < RN_QK; j++) {  /* clamped: 1 / d may overflow for subnormal blocks */
            float v = roundf(xb[j] * id);
            y[b].qs[j] = (int8_t)(v > 127 ? 127 : v < -127 ? -127 : v == v ? v : 0);
        }
    }
}

/* ggml's quantize_row_q4_0_ref: d = (the value of largest magnitude) / -8,
 * so that value is exactly -8 d; q = min(15, (int8_t)(x / d + 8.5)). */
static void quantize_q4_0(const float *x, rni_block_q4_0 *y, int K) {
    for (int b = 0; b < K / RN_QK; b++) {
        const float *xb = x + (size_t)b * RN_QK;
        if (!block_finite(xb)) {
            y[b].d = 0x7e00;
            memset(y[b].qs, 0x88, sizeof y[b].qs);  /* codes 8: weights 0 */
            continue;
        }
        float amax = 0, max = 0;
        for (int j = 0; j < RN_QK; j++)
            if (amax < fabsf(xb[j])) { amax = fabsf(xb[j]); max = xb[j]; }
        float d = max / -8, id = d ? 1.0f / d : 0.0f;
        y[b].d = rni_f32_to_f16(d);
        for (int j = 0; j < RN_QK / 2; j++) {
            float a = xb[j] * id + 8.5f, c = xb[j + RN_QK / 2] * id + 8.5f;  /* truncated, as ggml's cast */
            uint8_t lo = (uint8_t)(a >= 15 ? 15 : a >= 0 ? (int)a : 0), hi = (uint8_t)(c >= 15 ? 15 : c >= 0 ? (int)c : 0);
            y[b].qs[j] = (uint8_t)(lo | (hi << 4));
        }
    }
}

rn_status rn_quantize_row(rn_wtype t, const float *x, void *dst, int K) {
    if (!rn_wtype_row_bytes(t, K))
        return rni_fail(RN_ERR_ARG, "cannot store a row of %d weights as %s (block types need a multiple of %d)", K,
                        rn_wtype_name(t), RN_QK);
    switch (t) {
    case RN_WTYPE_F32: memcpy(dst, x, (size_t)K * 4); break;
    case RN_WTYPE_BF16: for (int k = 0; k < K; k++) ((uint16_t *)dst)[k] = rni_f32_to_bf16(x[k]); break;
    case RN_WTYPE_F16: for (int k = 0; k < K; k++) ((uint16_t *)dst)[k] = rni_f32_to_f16(x[k]); break;
    case RN_WTYPE_Q8_0: quantize_q8_0(x, dst, K); break;
    case RN_WTYPE_Q4_0: quantize_q4_0(x, dst, K); break;
    default: break;
    }
    return RN_OK;
}

/* The dequantised value is (float)q * d, one rounding, computed the same
 * way (or with a fused multiply-add that rounds once to the same value) by
 * every kernel below. */
static void dequantize(rn_wtype t, const void *src, float *y, int K) {
    switch (t) {
    case RN_WTYPE_F32: memcpy(y, src, (size_t)K * 4); break;
    case RN_WTYPE_BF16: for (int k = 0; k < K; k++) y[k] = rni_bf16_to_f32(((const uint16_t *)src)[k]); break;
    case RN_WTYPE_F16: for (int k = 0; k < K; k++) y[k] = rni_f16_to_f32(((const uint16_t *)src)[k]); break;
    case RN_WTYPE_Q8_0:
        for (int b = 0; b < K / RN_QK; b++) {
            const rni_block_q8_0 *blk = (const rni_block_q8_0 *)src + b;
            float d = rni_f16_to_f32(blk->d);
            for (int j = 0; j < RN_QK; j++) y[b * RN_QK + j] = (float)blk->qs[j] * d;
        }
        break;
    case RN_WTYPE_Q4_0:
        for (int b = 0; b < K / RN_QK; b++) {
            const rni_block_q4_0 *blk = (const rni_block_q4_0 *)src + b;
            float d = rni_f16_to_f32(blk->d);
            for (int j = 0; j < RN_QK / 2; j++) {
                y[b * RN_QK + j] = (float)((blk->qs[j] & 15) - 8) * d;
                y[b * RN_QK + j + RN_QK / 2] = (float)((blk->qs[j] >> 4) - 8) * d;
            }
        }
        break;
    default: break;
    }
}

rn_status rn_dequantize_row(rn_wtype t, const void *src, float *y, int K) {
    if (!rn_wtype_row_bytes(t, K))
        return rni_fail(RN_ERR_ARG, "cannot read a row of %d weights as %s (block types need a multiple of %d)", K,
                        rn_wtype_name(t), RN_QK);
    dequantize(t, src, y, K);
    return RN_OK;
}

/* ----------------------------------------------------- scalar reference */

/* Weight k of a row of type t as float. */
static inline float weight_at(rn_wtype t, const char *row, int k) {
    switch (t) {
    case RN_WTYPE_F32: return ((const float *)row)[k];
    case RN_WTYPE_BF16: return rni_bf16_to_f32(((const uint16_t *)row)[k]);
    case RN_WTYPE_F16: return rni_f16_to_f32(((const uint16_t *)row)[k]);
    case RN_WTYPE_Q8_0: {
        const rni_block_q8_0 *b = (const rni_block_q8_0 *)row + k / RN_QK;
        return (float)b->qs[k % RN_QK] * rni_f16_to_f32(b->d);
    }
    case RN_WTYPE_Q4_0: {
        const rni_block_q4_0 *b = (const rni_block_q4_0 *)row + k / RN_QK;
        int j = k % RN_QK, q = j < RN_QK / 2 ? (b->qs[j] & 15) : (b->qs[j - RN_QK / 2] >> 4);
        return (float)(q - 8) * rni_f16_to_f32(b->d);
    }
    default: return 0;
    }
}

float rni_wtype_get(rn_wtype t, const void *row, int k) { return weight_at(t, row, k); }

long rni_wtype_first_bad_row(rn_wtype t, const void *p, size_t rows, int K) {
    size_t rb = rn_wtype_row_bytes(t, K);
    long first = (long)rows;
    if (!rb) return 0;
    /* exponent bits all ones: NaN or infinity */
#pragma omp parallel for schedule(dynamic, 64) reduction(min : first) if (rows * rb >= ((size_t)1 << 20))
    for (size_t r = 0; r < rows; r++) {
        const unsigned char *row = (const unsigned char *)p + r * rb;
        int ok = 1;
        switch (t) {
        case RN_WTYPE_F32:
            for (int k = 0; k < K; k++) { uint32_t u; memcpy(&u, row + 4 * (size_t)k, 4); ok &= (u & 0x7f800000u) != 0x7f800000u; }
            break;
        case RN_WTYPE_BF16:
            for (int k = 0; k < K; k++) { uint16_t h; memcpy(&h, row + 2 * (size_t)k, 2); ok &= (h & 0x7f80u) != 0x7f80u; }
            break;
        case RN_WTYPE_F16:
            for (int k = 0; k < K; k++) { uint16_t h; memcpy(&h, row + 2 * (size_t)k, 2); ok &= (h & 0x7c00u) != 0x7c00u; }
            break;
        default: {
            size_t bb = t == RN_WTYPE_Q8_0 ? sizeof(rni_block_q8_0) : sizeof(rni_block_q4_0);
            for (int b = 0; b < K / RN_QK; b++) { uint16_t h; memcpy(&h, row + (size_t)b * bb, 2); ok &= (h & 0x7c00u) != 0x7c00u; }
        }
        }
        if (!ok && (long)r < first) first = (long)r;
    }
    return first == (long)rows ? -1 : first;
}

void rni_matmul_w_ref(int M, int N, int K, const float *X, int ldx, const void *W, rn_wtype t,
                      size_t w_row_stride_bytes, float *Y, int ldy, int accumulate) {
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            const char *row = (const char *)W + (size_t)n * w_row_stride_bytes;
            const float *x = X + (size_t)m * ldx;
            float acc = 0;
            for (int k = 0; k < K; k++) acc += x[k] * weight_at(t, row, k);
            float *y = Y + (size_t)m * ldy + n;
            *y = accumulate ? *y + acc : acc;
        }
}

/* ------------------------------------------------- AVX2 + FMA kernels */

/* Threads for the small-M kernels: the output columns are split across
 * the OpenMP team when M N K (multiply-adds) reaches this. Measured on the
 * 2-core machine (cache-resident W, K 128..1024, best of 3000 calls, one
 * thread against two; the fork/join costs about 0.5-1 us):
 *   f32  M = 1: 16K madds 1.45 vs 1.56 us, 32K 2.44 vs 2.37, 64K 4.36 vs 3.09, 256K 16.2 vs 10.1
 *   f32  M = 4: 32K 1.56 vs 1.97 us, 64K 2.87 vs 3.05, 128K 4.38 vs 4.33, 256K 8.38 vs 5.59
 *   q4_0 M = 1: 16K 2.62 vs 2.55 us, 64K 8.71 vs 5.95;  M = 4: 64K 4.13 vs 4.06, 128K 7.34 vs 6.08
 * Two threads break even at 16K-128K madds; from 64K they win by 1.4x
 * (M = 1) or lose at most 6% (M = 4), so 64K. Override with
 * -DRNI_MATMUL_PAR_MADDS=... to measure again. */
#ifndef RNI_MATMUL_PAR_MADDS
#define RNI_MATMUL_PAR_MADDS ((size_t)1 << 16)
#endif

#if RNI_QUANT_SIMD

#define AI static inline __attribute__((always_inline))

/* The f16 scale at the head of a block (rows may start at any byte). */
AI uint16_t load_u16(const char *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return h;
}

AI float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* Eight weights from k of a row of a float type, as float. */
AI __m256 load8(rn_wtype t, const char *row, int k) {
    if (t == RN_WTYPE_F32) return _mm256_loadu_ps((const float *)row + k);
    __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)row + k));
    if (t == RN_WTYPE_BF16) return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    return _mm256_cvtph_ps(h);
}

/* Weights 8s..8s+7 of a block, times its scale d (dv = d, m8d = -8 d). */
AI __m256 block8(rn_wtype t, const char *blk, int s, __m256 dv, __m256 m8d) {
    if (t == RN_WTYPE_Q8_0) {
        const rni_block_q8_0 *b = (const rni_block_q8_0 *)blk;
        __m256i q = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(b->qs + 8 * s)));
        return _mm256_mul_ps(_mm256_cvtepi32_ps(q), dv);
    }
    /* q4_0: s = 0, 1 are the low nibbles of bytes 0-7, 8-15; s = 2, 3 the
     * high nibbles. q d - 8 d in one rounding is (q - 8) d rounded. */
    const rni_block_q4_0 *b = (const rni_block_q4_0 *)blk;
    __m128i v = _mm_loadl_epi64((const __m128i *)(b->qs + 8 * (s & 1)));
    if (s >= 2) v = _mm_srli_epi16(v, 4);
    v = _mm_and_si128(v, _mm_set1_epi8(15));
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(v)), dv, m8d);
}

AI size_t block_bytes(rn_wtype t) { return t == RN_WTYPE_Q8_0 ? sizeof(rni_block_q8_0) : sizeof(rni_block_q4_0); }

/* One tile: Y rows [0, MR) x columns [0, NR) from X rows (ldx) and W rows
 * (ws bytes apart). MR NR vector accumulators; one horizontal sum each at
 * the end. Each accumulator sees the same operations in the same order
 * whatever MR and NR, so every output element is the same whichever tile
 * computes it. */
AI void tile(const rn_wtype t, const int MR, const int NR, int K, const float *X, int ldx, const char *W,
             size_t ws, float *Y, int ldy, int acc) {
    /* fixed sizes (MR <= 4, NR <= 8): arrays the compiler keeps in registers */
    __m256 c[4][8];
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < NR; j++) c[i][j] = _mm256_setzero_ps();
    int k = 0;
    if (t == RN_WTYPE_F32 || t == RN_WTYPE_BF16 || t == RN_WTYPE_F16) {
        for (; k + 8 <= K; k += 8) {
            __m256 x[4];
            for (int i = 0; i < MR; i++) x[i] = _mm256_loadu_ps(X + (size_t)i * ldx + k);
            for (int j = 0; j < NR; j++) {
                __m256 w = load8(t, W + (size_t)j * ws, k);
                for (int i = 0; i < MR; i++) c[i][j] = _mm256_fmadd_ps(x[i], w, c[i][j]);
            }
        }
    } else {
        const size_t bb = block_bytes(t);
        for (int b = 0; b < K / RN_QK; b++, k += RN_QK) {
            for (int j = 0; j < NR; j++) {
                const char *blk = W + (size_t)j * ws + (size_t)b * bb;
                float d = _cvtsh_ss(load_u16(blk));
                __m256 dv = _mm256_set1_ps(d), m8d = _mm256_set1_ps(-8 * d);
                for (int s = 0; s < 4; s++) {
                    __m256 w = block8(t, blk, s, dv, m8d);
                    for (int i = 0; i < MR; i++)
                        c[i][j] = _mm256_fmadd_ps(_mm256_loadu_ps(X + (size_t)i * ldx + k + 8 * s), w, c[i][j]);
                }
            }
        }
    }
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < NR; j++) {
            float s = hsum8(c[i][j]);
            /* the last K % 8 weights (float types only) */
            for (int kk = k; kk < K; kk++) s += X[(size_t)i * ldx + kk] * weight_at(t, W + (size_t)j * ws, kk);
            float *y = Y + (size_t)i * ldy + j;
            *y = acc ? *y + s : s;
        }
}

/* Rows of W per panel: the unit of the thread split, and the rows whose
 * weights stay in L1/L2 while the M chunks of up to 4 rows pass over them
 * (a multiple of every tile width: 8, 4, 3). */
#define PANEL 24

/* Columns [n0, n1) of Y for all M rows: per panel of W rows, per chunk of
 * up to 4 rows of X, tiles of NR rows of W (8, 4, 4, 3 for 1-4 rows of X)
 * and single rows for the remainder. */
AI void panel_rows(const rn_wtype t, int M, int n0, int n1, int K, const float *X, int ldx, const char *W,
                   size_t ws, float *Y, int ldy, int acc) {
    for (int m = 0; m < M; m += 4) {
        int mr = M - m < 4 ? M - m : 4;
        const float *Xm = X + (size_t)m * ldx;
        float *Ym = Y + (size_t)m * ldy;
        int n = n0;
#define TILES(MR, NR)                                                                                   \
    for (; n + NR <= n1; n += NR) tile(t, MR, NR, K, Xm, ldx, W + (size_t)n * ws, ws, Ym + n, ldy, acc); \
    for (; n < n1; n++) tile(t, MR, 1, K, Xm, ldx, W + (size_t)n * ws, ws, Ym + n, ldy, acc);
        switch (mr) {
        case 1: TILES(1, 8) break;
        case 2: TILES(2, 4) break;
        case 3: TILES(3, 4) break;
        default: TILES(4, 3) break;
        }
#undef TILES
    }
}

#define DEF_SMALL(name, T)                                                                                 \
    static void name(int M, int N, int K, const float *X, int ldx, const char *W, size_t ws, float *Y,      \
                     int ldy, int acc) {                                                                  \
        int np = (N + PANEL - 1) / PANEL;                                                                  \
        _Pragma("omp parallel for schedule(dynamic, 2) if ((size_t)M * N * K >= RNI_MATMUL_PAR_MADDS)")         \
        for (int p = 0; p < np; p++) {                                                                     \
            int n0 = p * PANEL, n1 = n0 + PANEL < N ? n0 + PANEL : N;                                      \
            panel_rows(T, M, n0, n1, K, X, ldx, W, ws, Y, ldy, acc);                                       \
        }                                                                                                  \
    }
DEF_SMALL(small_f32, RN_WTYPE_F32)
DEF_SMALL(small_bf16, RN_WTYPE_BF16)
DEF_SMALL(small_f16, RN_WTYPE_F16)
DEF_SMALL(small_q8_0, RN_WTYPE_Q8_0)
DEF_SMALL(small_q4_0, RN_WTYPE_Q4_0)
#undef DEF_SMALL

static void matmul_small(int M, int N, int K, const float *X, int ldx, const void *W, rn_wtype t, size_t ws,
                         float *Y, int ldy, int acc) {
    const char *w = W;
    switch (t) {
    case RN_WTYPE_F32: small_f32(M, N, K, X, ldx, w, ws, Y, ldy, acc); break;
    case RN_WTYPE_BF16: small_bf16(M, N, K, X, ldx, w, ws, Y, ldy, acc); break;
    case RN_WTYPE_F16: small_f16(M, N, K, X, ldx, w, ws, Y, ldy, acc); break;
    case RN_WTYPE_Q8_0: small_q8_0(M, N, K, X, ldx, w, ws, Y, ldy, acc); break;
    case RN_WTYPE_Q4_0: small_q4_0(M, N, K, X, ldx, w, ws, Y, ldy, acc); break;
    default: break;
    }
}


/* ---- activations quantised to q8_0 (ggml's vec_dot_q8_0_q8_0 and
 * vec_dot_q4_0_q8_0): per block an int8 dot product (sign trick:
 * |w| (unsigned) times x with w's sign, pairs summed to int16 then int32),
 * scaled by d_w d_x and accumulated in float32. X is given as xq (int8,
 * rows of K) and xd (the float scales, rows of K / 32). */
AI void tile_x8(const rn_wtype t, const int MR, const int NR, int nb, const int8_t *xq, const float *xd, int K,
                const char *W, size_t ws, float *Y, int ldy, int acc) {
    __m256 c[4][8];
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < NR; j++) c[i][j] = _mm256_setzero_ps();
    const size_t bb = block_bytes(t);
    const __m256i ones = _mm256_set1_epi16(1);
    for (int b = 0; b < nb; b++)
        for (int j = 0; j < NR; j++) {
            const char *blk = W + (size_t)j * ws + (size_t)b * bb;
            float dw = _cvtsh_ss(load_u16(blk));
            __m256i w;
            if (t == RN_WTYPE_Q8_0) {
                w = _mm256_loadu_si256((const __m256i *)(blk + 2));
            } else {
                __m128i v = _mm_loadu_si128((const __m128i *)(blk + 2)), m = _mm_set1_epi8(15);
                w = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(v, 4), m), _mm_and_si128(v, m));
                w = _mm256_sub_epi8(w, _mm256_set1_epi8(8));
            }
            __m256i aw = _mm256_sign_epi8(w, w);
            for (int i = 0; i < MR; i++) {
                __m256i x = _mm256_loadu_si256((const __m256i *)(xq + (size_t)i * K + (size_t)b * RN_QK));
                __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(aw, _mm256_sign_epi8(x, w)), ones);
                c[i][j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(dw * xd[(size_t)i * nb + b]), c[i][j]);
            }
        }
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < NR; j++) {
            float *y = Y + (size_t)i * ldy + j, v = hsum8(c[i][j]);
            *y = acc ? *y + v : v;
        }
}

#define DEF_X8(name, T)                                                                                        \
    static void name(int M, int N, int K, const int8_t *xq, const float *xd, const char *W, size_t ws, float *Y, \
                     int ldy, int acc) {                                                                        \
        int np = (N + PANEL - 1) / PANEL, nb = K / RN_QK;                                                      \
        _Pragma("omp parallel for schedule(dynamic, 2) if ((size_t)M * N * K >= RNI_MATMUL_PAR_MADDS)")              \
        for (int p = 0; p < np; p++) {                                                                          \
            int n0 = p * PANEL, n1 = n0 + PANEL < N ? n0 + PANEL : N;                                           \
            for (int m = 0; m < M; m += 4) {                                                                    \
                int mr = M - m < 4 ? M - m : 4, n = n0;                                                         \
                const int8_t *q = xq + (size_t)m * K;                                                           \
                const float *d = xd + (size_t)m * nb;                                                           \
                float *Ym = Y + (size_t)m * ldy;                                                                \
                switch (mr) {                                                                                   \
                case 1: X8TILES(T, 1, 8) break;                                                                 \
                case 2: X8TILES(T, 2, 4) break;                                                                 \
                case 3: X8TILES(T, 3, 4) break;                                                                 \
                default: X8TILES(T, 4, 3) break;                                                                \
                }                                                                                               \
            }                                                                                                   \
        }                                                                                                       \
    }
#define X8TILES(T, MR, NR)                                                                                    \
    for (; n + NR <= n1; n += NR) tile_x8(T, MR, NR, nb, q, d, K, W + (size_t)n * ws, ws, Ym + n, ldy, acc); \
    for (; n < n1; n++) tile_x8(T, MR, 1, nb, q, d, K, W + (size_t)n * ws, ws, Ym + n, ldy, acc);
DEF_X8(x8_q8_0, RN_WTYPE_Q8_0)
DEF_X8(x8_q4_0, RN_WTYPE_Q4_0)
#undef X8TILES
#undef DEF_X8

#else /* no AVX2 + FMA: the scalar loops, rows split across threads alike */

static void matmul_small(int M, int N, int K, const float *X, int ldx, const void *W, rn_wtype t, size_t ws,
                         float *Y, int ldy, int acc) {
    enum { PANEL = 24 };
    int np = (N + PANEL - 1) / PANEL;
#pragma omp parallel for schedule(static) if ((size_t)M * N * K >= RNI_MATMUL_PAR_MADDS)
    for (int p = 0; p < np; p++) {
        int n0 = p * PANEL, n1 = n0 + PANEL < N ? n0 + PANEL : N;
        rni_matmul_w_ref(M, n1 - n0, K, X, ldx, (const char *)W + (size_t)n0 * ws, t, ws, Y + n0, ldy, acc);
    }
}

#endif

/* ---------------------------------------------------- many rows: BLAS */

/* Floats of dequantised weights per panel (4 MiB): large enough for sgemm
 * to run at speed, small enough to stay in the L2/L3 between the
 * dequantisation and the product. */
#define RNI_PANEL_FLOATS ((size_t)1 << 20)

/* The calling thread's scratch, grown on demand and kept (one per thread
 * that calls rn_matmul_w with many rows; never freed before the thread
 * ends). NULL if it cannot grow to n floats. */
static float *scratch(size_t n) {
    static _Thread_local float *buf;
    static _Thread_local size_t cap;
    if (n > cap) {
        float *p = rni_alloc(n, sizeof(float));
        if (!p) return NULL;
        rni_free(buf);
        buf = p;
        cap = n;
    }
    return buf;
}

void rn_matmul_w(int M, int N, int K, const float *X, int ldx, const void *W, rn_wtype t,
                  size_t w_row_stride_bytes, float *Y, int ldy, int accumulate) {
    if (M <= 0 || N <= 0) return;
    size_t ws = w_row_stride_bytes;
    if (M <= RNI_SMALL_M) {
        matmul_small(M, N, K, X, ldx, W, t, ws, Y, ldy, accumulate);
        return;
    }
    if (t == RN_WTYPE_F32) {
        rni_sgemm(0, 1, M, N, K, 1.0f, X, ldx, (const float *)W, (int)(ws / sizeof(float)), accumulate ? 1.0f : 0.0f,
                  Y, ldy);
        return;
    }
    int rows = (int)(RNI_PANEL_FLOATS / (size_t)K);
    if (rows < 16) rows = 16;
    if (rows > N) rows = N;
    float *buf = scratch((size_t)rows * K);
    if (!buf) {
        matmul_small(M, N, K, X, ldx, W, t, ws, Y, ldy, accumulate);
        return;
    }
    for (int n0 = 0; n0 < N; n0 += rows) {
        int nr = N - n0 < rows ? N - n0 : rows;
#pragma omp parallel for schedule(static) if ((size_t)nr * K >= ((size_t)1 << 16))
        for (int n = 0; n < nr; n++) dequantize(t, (const char *)W + (size_t)(n0 + n) * ws, buf + (size_t)n * K, K);
        rni_sgemm(0, 1, M, nr, K, 1.0f, X, ldx, buf, K, accumulate ? 1.0f : 0.0f, Y + n0, ldy);
    }
}

/* ------------------------------------- activations quantised to q8_0 */

/* X rows quantised as q8_0 blocks (ggml's rounding), split into the int8
 * values xq (M, K) and the float scales xd (M, K / 32). */
static void quantize_x8(int M, int K, const float *X, int ldx, int8_t *xq, float *xd) {
    rni_block_q8_0 blk;
    for (int m = 0; m < M; m++)
        for (int b = 0; b < K / RN_QK; b++) {
            quantize_q8_0(X + (size_t)m * ldx + (size_t)b * RN_QK, &blk, RN_QK);
            memcpy(xq + (size_t)m * K + (size_t)b * RN_QK, blk.qs, RN_QK);
            xd[(size_t)m * (K / RN_QK) + b] = rni_f16_to_f32(blk.d);
        }
}

/* Integer dot of one block of weights of row w with 32 int8 activations. */
static int32_t block_dot(rn_wtype t, const char *blk, const int8_t *x) {
    int32_t s = 0;
    if (t == RN_WTYPE_Q8_0) {
        const rni_block_q8_0 *b = (const rni_block_q8_0 *)blk;
        for (int j = 0; j < RN_QK; j++) s += b->qs[j] * x[j];
    } else {
        const rni_block_q4_0 *b = (const rni_block_q4_0 *)blk;
        for (int j = 0; j < RN_QK / 2; j++)
            s += ((b->qs[j] & 15) - 8) * x[j] + ((b->qs[j] >> 4) - 8) * x[j + RN_QK / 2];
    }
    return s;
}

static void x8_ref(int M, int N, int K, const int8_t *xq, const float *xd, const void *W, rn_wtype t, size_t ws,
                   float *Y, int ldy, int acc) {
    int nb = K / RN_QK;
    size_t bb = t == RN_WTYPE_Q8_0 ? sizeof(rni_block_q8_0) : sizeof(rni_block_q4_0);
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            const char *row = (const char *)W + (size_t)n * ws;
            float s = 0;
            for (int b = 0; b < nb; b++) {
                const char *blk = row + (size_t)b * bb;
                uint16_t dh;
                memcpy(&dh, blk, 2);
                s += (float)block_dot(t, blk, xq + (size_t)m * K + (size_t)b * RN_QK) *
                     (rni_f16_to_f32(dh) * xd[(size_t)m * nb + b]);
            }
            float *y = Y + (size_t)m * ldy + n;
            *y = acc ? *y + s : s;
        }
}

/* The calling thread's scratch for quantised activations (grown, kept). */
static void *x8_scratch(size_t bytes) {
    static _Thread_local void *buf;
    static _Thread_local size_t cap;
    if (bytes > cap) {
        void *p = rni_alloc(bytes, 1);
        if (!p) return NULL;
        rni_free(buf);
        buf = p;
        cap = bytes;
    }
    return buf;
}

static void matmul_x8(int ref, int M, int N, int K, const float *X, int ldx, const void *W, rn_wtype t, size_t ws,
                      float *Y, int ldy, int acc) {
    if (M <= 0 || N <= 0) return;
    int x8 = (t == RN_WTYPE_Q8_0 || t == RN_WTYPE_Q4_0) && M <= RNI_SMALL_M;
    size_t nb = (size_t)K / RN_QK, bytes = (size_t)M * K + M * nb * sizeof(float) + 64;
    unsigned char *buf = x8 ? x8_scratch(bytes) : NULL;
    if (!buf) {
        (ref ? rni_matmul_w_ref : rn_matmul_w)(M, N, K, X, ldx, W, t, ws, Y, ldy, acc);
        return;
    }
    float *xd = (float *)buf;
    int8_t *xq = (int8_t *)(buf + M * nb * sizeof(float));
    quantize_x8(M, K, X, ldx, xq, xd);
#if RNI_QUANT_SIMD
    if (!ref) {
        if (t == RN_WTYPE_Q8_0) x8_q8_0(M, N, K, xq, xd, W, ws, Y, ldy, acc);
        else x8_q4_0(M, N, K, xq, xd, W, ws, Y, ldy, acc);
        return;
    }
#endif
    x8_ref(M, N, K, xq, xd, W, t, ws, Y, ldy, acc);
}

void rn_matmul_w_x8(int M, int N, int K, const float *X, int ldx, const void *W, rn_wtype t,
                     size_t w_row_stride_bytes, float *Y, int ldy, int accumulate) {
    matmul_x8(0, M, N, K, X, ldx, W, t, w_row_stride_bytes, Y, ldy, accumulate);
}

void rni_matmul_w_x8_ref(int M, int N, int K, const float *X, int ldx, const void *W, rn_wtype t,
                         size_t w_row_stride_bytes, float *Y, int ldy, int accumulate) {
    matmul_x8(1, M, N, K, X, ldx, W, t, w_row_stride_bytes, Y, ldy, accumulate);
}

/* f32 weights go through rni_gemm, whose few-row kernel (up to 64 rows,
 * both cores over the output columns) gives a stream decoded in a batch
 * the bits it gets alone, which serve's batching promises; rn_matmul_w's
 * f32 kernel (up to 8 rows) would switch kernels inside that range.
 * Other types take their kernels in groups of 8 rows up to 64 rows (the
 * same promise), sgemm on dequantised panels beyond (prefill). */
void rni_linear_forward(const rni_wmat *W, int M, int N, int K, const rn_real *x, int ldx, rn_real *y, int ldy,
                        int accumulate, int x8) {
#ifdef RETNET_DOUBLE
    (void)x8;
    rni_gemm(0, 1, M, N, K, 1, x, ldx, (const rn_real *)W->p, (int)(W->stride / sizeof(rn_real)), accumulate ? 1 : 0,
             y, ldy);
#else
    if (W->t == RN_WTYPE_F32) {  /* rni_gemm's few-row kernel: the same bits for a row in any batch */
        rni_gemm(0, 1, M, N, K, 1, x, ldx, (const float *)W->p, (int)(W->stride / sizeof(float)), accumulate ? 1 : 0,
                 y, ldy);
        return;
    }
    if (M > 0 && N > 0) rni_gemm_count((uint64_t)M * N * K);
    void (*mm)(int, int, int, const float *, int, const void *, rn_wtype, size_t, float *, int, int) =
        x8 ? rn_matmul_w_x8 : rn_matmul_w;
    if (M > RNI_SMALL_M && M <= 64) {
        /* A batch of decoding streams: the few-row kernel over groups of
         * rows reads W once a group, where sgemm would dequantise all of W
         * every step; and a row gets the bits it gets alone. */
        for (int m0 = 0; m0 < M; m0 += RNI_SMALL_M) {
            int mr = M - m0 < RNI_SMALL_M ? M - m0 : RNI_SMALL_M;
            mm(mr, N, K, x + (size_t)m0 * ldx, ldx, W->p, W->t, W->stride, y + (size_t)m0 * ldy, ldy, accumulate);
        }
        return;
    }
    mm(M, N, K, x, ldx, W->p, W->t, W->stride, y, ldy, accumulate);
#endif
}
