/* quant.c: typed weights (f32, bf16, f16, ggml's q8_0 and q4_0): row
 * conversions, and the product Y = X W^T with W kept in its type, for the
 * few rows of decoding and batched decoding (register-blocked kernels:
 * AMX tiles, AVX-512 with VNNI, AVX2 + FMA or scalar, the best the CPU has,
 * chosen at run time) and for the many rows of prefill and training-size
 * products (BLAS sgemm on dequantised panels). */
#define _DEFAULT_SOURCE  /* syscall (AMX permission) */
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
/* AVX-512 (F, BW, VL, DQ, VNNI) kernels: in every x86-64 build, run where
 * the CPU has them (simd_level). */
#if defined(__x86_64__) && defined(__GNUC__)
#define RNI_QUANT_AVX512 1
#include <immintrin.h>
#else
#define RNI_QUANT_AVX512 0
#endif
/* AMX (tile) int8 products: where Linux lends the tiles (have_amx). */
#if RNI_QUANT_AVX512 && defined(__linux__) && (__GNUC__ >= 11 || defined(__clang__))
#define RNI_QUANT_AMX 1
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>
#else
#define RNI_QUANT_AMX 0
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

/* The f16 scale at the head of a block (rows may start at any byte). */
static inline uint16_t load_u16(const char *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return h;
}

static inline size_t block_bytes(rn_wtype t) {
    return t == RN_WTYPE_Q8_0 ? sizeof(rni_block_q8_0) : sizeof(rni_block_q4_0);
}

/* Rows of W per panel: the unit of the thread split, and the rows whose
 * weights stay in L1/L2 while the M chunks of up to 4 rows pass over them
 * (a multiple of every tile width: 8, 4, 3). */
#define PANEL 24

/* Prefetch: a tile reads NR rows of W side by side, each a short stream
 * (a q4_0 row of 4096 weights is 2.3 KB), and the hardware prefetcher
 * stops at every 4 KB page and restarts late on each new row; so the
 * same place of the next tile's rows is fetched while this tile runs
 * (medium model, 2 threads, quiet: q4_0 decoding 0.42 -> 0.54 of the
 * bandwidth bound, bf16 / f16 0.73 -> 0.82; README "Low-bit inference").
 * f32 rows, four times longer, stream well already and lost by it. */
#define PREFETCH_NEXT(p, ahead) __builtin_prefetch((const char *)(p) + (ahead), 0, 3)

#if RNI_QUANT_SIMD

#define AI static inline __attribute__((always_inline))

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
                if (t != RN_WTYPE_F32) PREFETCH_NEXT(W + (size_t)j * ws + (size_t)k * 2, (size_t)NR * ws);
                __m256 w = load8(t, W + (size_t)j * ws, k);
                for (int i = 0; i < MR; i++) c[i][j] = _mm256_fmadd_ps(x[i], w, c[i][j]);
            }
        }
    } else {
        const size_t bb = block_bytes(t);
        for (int b = 0; b < K / RN_QK; b++, k += RN_QK) {
            for (int j = 0; j < NR; j++) {
                const char *blk = W + (size_t)j * ws + (size_t)b * bb;
                PREFETCH_NEXT(blk, (size_t)NR * ws);
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

static void small_avx2(int M, int N, int K, const float *X, int ldx, const void *W, rn_wtype t, size_t ws,
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
            PREFETCH_NEXT(blk, (size_t)NR * ws);
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

#endif /* RNI_QUANT_SIMD */

/* No SIMD: the scalar loops, rows split across threads alike. */
static void small_scalar(int M, int N, int K, const float *X, int ldx, const void *W, rn_wtype t, size_t ws,
                         float *Y, int ldy, int acc) {
    int np = (N + PANEL - 1) / PANEL;
#pragma omp parallel for schedule(static) if ((size_t)M * N * K >= RNI_MATMUL_PAR_MADDS)
    for (int p = 0; p < np; p++) {
        int n0 = p * PANEL, n1 = n0 + PANEL < N ? n0 + PANEL : N;
        rni_matmul_w_ref(M, n1 - n0, K, X, ldx, (const char *)W + (size_t)n0 * ws, t, ws, Y + n0, ldy, acc);
    }
}

/* ---------------------------------------------------- AVX-512 kernels */

/* Compiled into every x86-64 build through the functions' target (so one
 * binary built for AVX2 runs them where the CPU has them) and chosen at
 * run time: simd_level() below. */
/* Bytes of a pair of blocks of a row of X prepared for the VNNI kernel
 * (prepare_x8_512). */
enum { X8_PAIR = 192 };

#if RNI_QUANT_AVX512

#define T512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,fma,f16c")))
#define AI512 static inline __attribute__((always_inline)) T512

/* Sixteen weights from k of a row of a float type, as float (bf16: the
 * bits shifted into place, exact; f16: vcvtph2ps, exact); the first r only
 * with a mask (the others 0, not read). */
AI512 __m512 load16(rn_wtype t, const char *row, int k, __mmask16 mk) {
    if (t == RN_WTYPE_F32) return _mm512_maskz_loadu_ps(mk, (const float *)row + k);
    __m256i h = _mm256_maskz_loadu_epi16(mk, (const uint16_t *)row + k);
    if (t == RN_WTYPE_BF16) return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    return _mm512_cvtph_ps(h);
}

/* Weights 16s..16s+15 of a block times its scale (dv = d, m8d = -8 d), as
 * block8 computes them. */
AI512 __m512 block16(rn_wtype t, const char *blk, int s, __m512 dv, __m512 m8d) {
    if (t == RN_WTYPE_Q8_0) {
        __m512i q = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(blk + 2 + 16 * s)));
        return _mm512_mul_ps(_mm512_cvtepi32_ps(q), dv);
    }
    __m128i v = _mm_loadu_si128((const __m128i *)(blk + 2));  /* s = 0: low nibbles, 1: high */
    if (s) v = _mm_srli_epi16(v, 4);
    v = _mm_and_si128(v, _mm_set1_epi8(15));
    return _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(v)), dv, m8d);
}

/* tile() with 16-wide vectors: the same contract (every element by the
 * same operations whatever MR and NR); the last K % 16 weights of the float
 * types through a masked load, so no scalar tail. */
AI512 void tile512(const rn_wtype t, const int MR, const int NR, int K, const float *X, int ldx, const char *W,
                   size_t ws, float *Y, int ldy, int acc) {
    __m512 c[4][8];
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < NR; j++) c[i][j] = _mm512_setzero_ps();
    if (t == RN_WTYPE_F32 || t == RN_WTYPE_BF16 || t == RN_WTYPE_F16) {
        for (int k = 0; k < K; k += 16) {
            __mmask16 mk = K - k >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (K - k)) - 1);
            __m512 x[4];
            for (int i = 0; i < MR; i++) x[i] = _mm512_maskz_loadu_ps(mk, X + (size_t)i * ldx + k);
            for (int j = 0; j < NR; j++) {
                if (t != RN_WTYPE_F32) PREFETCH_NEXT(W + (size_t)j * ws + (size_t)k * 2, (size_t)NR * ws);
                __m512 w = load16(t, W + (size_t)j * ws, k, mk);
                for (int i = 0; i < MR; i++) c[i][j] = _mm512_fmadd_ps(x[i], w, c[i][j]);
            }
        }
    } else {
        const size_t bb = block_bytes(t);
        for (int b = 0, k = 0; b < K / RN_QK; b++, k += RN_QK)
            for (int j = 0; j < NR; j++) {
                const char *blk = W + (size_t)j * ws + (size_t)b * bb;
                PREFETCH_NEXT(blk, (size_t)NR * ws);
                float d = _cvtsh_ss(load_u16(blk));
                __m512 dv = _mm512_set1_ps(d), m8d = _mm512_set1_ps(-8 * d);
                for (int s = 0; s < 2; s++) {
                    __m512 w = block16(t, blk, s, dv, m8d);
                    for (int i = 0; i < MR; i++)
                        c[i][j] = _mm512_fmadd_ps(_mm512_loadu_ps(X + (size_t)i * ldx + k + 16 * s), w, c[i][j]);
                }
            }
    }
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < NR; j++) {
            float *y = Y + (size_t)i * ldy + j, v = _mm512_reduce_add_ps(c[i][j]);
            *y = acc ? *y + v : v;
        }
}

/* Columns [n0, n1) of Y, as panel_rows: chunks of up to 4 rows of X,
 * tiles of 8 (1 row), 4 (2-3 rows) or 3 (4 rows) rows of W. */
#define DEF_PANEL512(name, T)                                                                                    \
    static T512 __attribute__((noinline)) void name(int M, int n0, int n1, int K, const float *X, int ldx,        \
                                                    const char *W, size_t ws, float *Y, int ldy, int acc) {      \
        for (int m = 0; m < M; m += 4) {                                                                         \
            int mr = M - m < 4 ? M - m : 4, n = n0;                                                              \
            const float *Xm = X + (size_t)m * ldx;                                                               \
            float *Ym = Y + (size_t)m * ldy;                                                                     \
            switch (mr) {                                                                                        \
            case 1: TILES512(T, 1, 8) break;                                                                     \
            case 2: TILES512(T, 2, 4) break;                                                                     \
            case 3: TILES512(T, 3, 4) break;                                                                     \
            default: TILES512(T, 4, 3) break;                                                                    \
            }                                                                                                    \
        }                                                                                                        \
    }
#define TILES512(T, MR, NR)                                                                                    \
    for (; n + NR <= n1; n += NR) tile512(T, MR, NR, K, Xm, ldx, W + (size_t)n * ws, ws, Ym + n, ldy, acc); \
    for (; n < n1; n++) tile512(T, MR, 1, K, Xm, ldx, W + (size_t)n * ws, ws, Ym + n, ldy, acc);
DEF_PANEL512(panel512_f32, RN_WTYPE_F32)
DEF_PANEL512(panel512_bf16, RN_WTYPE_BF16)
DEF_PANEL512(panel512_f16, RN_WTYPE_F16)
DEF_PANEL512(panel512_q8_0, RN_WTYPE_Q8_0)
DEF_PANEL512(panel512_q4_0, RN_WTYPE_Q4_0)
#undef TILES512
#undef DEF_PANEL512

/* The OpenMP loop outside the target functions (their outlined bodies
 * would need the target too); one call per panel of PANEL rows of W. */
static void small512(int M, int N, int K, const float *X, int ldx, const char *W, rn_wtype t, size_t ws, float *Y,
                     int ldy, int acc) {
    void (*panel)(int, int, int, int, const float *, int, const char *, size_t, float *, int, int) =
        t == RN_WTYPE_F32 ? panel512_f32 : t == RN_WTYPE_BF16 ? panel512_bf16 : t == RN_WTYPE_F16 ? panel512_f16
        : t == RN_WTYPE_Q8_0 ? panel512_q8_0 : panel512_q4_0;
    int np = (N + PANEL - 1) / PANEL;
#pragma omp parallel for schedule(dynamic, 2) if ((size_t)M * N * K >= RNI_MATMUL_PAR_MADDS)
    for (int p = 0; p < np; p++) {
        int n0 = p * PANEL, n1 = n0 + PANEL < N ? n0 + PANEL : N;
        panel(M, n0, n1, K, X, ldx, W, ws, Y, ldy, acc);
    }
}

/* ---- activations quantised to q8_0, VNNI: vpdpbusd takes 64 unsigned
 * bytes times 64 signed ones, four products summed into each of 16 int32
 * lanes, so one instruction covers two blocks (lanes 0-7 the first, 8-15
 * the second). The weights are made the unsigned side (q8_0: q + 128, one
 * xor; q4_0: the nibble itself, 0..15) and the activations x the signed
 * one; the offset (128 or 8 times the sum of x over a lane's four bytes) is
 * subtracted by starting the lane at minus it, precomputed per row of X.
 * Each row of X is prepared once per product as X8_PAIR bytes per pair of
 * blocks: the 64 int8 x, the 16 int32 starting values, and the 16 float
 * scales d_x (8 lanes each block). An odd last block is a pair whose
 * second half is zero (weights not read, x, start and scale 0). */

/* 64 weights of row blk (blocks blk, blk + bb; only blk when !two) as the
 * unsigned bytes vpdpbusd takes. */
AI512 __m512i x8w512(rn_wtype t, const char *blk, size_t bb, int two) {
    if (t == RN_WTYPE_Q8_0) {
        __m256i lo = _mm256_loadu_si256((const __m256i *)(blk + 2));
        __m512i v = two ? _mm512_inserti64x4(_mm512_castsi256_si512(lo), _mm256_loadu_si256((const __m256i *)(blk + bb + 2)), 1)
                        : _mm512_inserti64x4(_mm512_setzero_si512(), lo, 0);
        return _mm512_xor_si512(v, _mm512_set1_epi8((char)0x80));  /* a second half of zero x: products 0 */
    }
    /* q4_0: bytes j hold weights j (low nibble) and j + 16 (high): per block
     * the low nibbles then the high ones */
    __m128i b0 = _mm_loadu_si128((const __m128i *)(blk + 2));
    __m256i v = two ? _mm256_inserti128_si256(_mm256_castsi128_si256(b0), _mm_loadu_si128((const __m128i *)(blk + bb + 2)), 1)
                    : _mm256_inserti128_si256(_mm256_setzero_si256(), b0, 0);
    __m512i z = _mm512_inserti64x4(_mm512_castsi256_si512(v), _mm256_srli_epi16(v, 4), 1);
    z = _mm512_shuffle_i64x2(z, z, _MM_SHUFFLE(3, 1, 2, 0));  /* [lo b0, hi b0, lo b1, hi b1] */
    return _mm512_and_si512(z, _mm512_set1_epi8(15));
}

/* The two f16 scales of a pair of blocks, each on its 8 lanes (the second
 * 0 when !two). */
AI512 __m512 x8d512(const char *blk, size_t bb, int two) {
    uint32_t h = (uint32_t)load_u16(blk) | (two ? (uint32_t)load_u16(blk + bb) << 16 : 0);
    __m128 f = _mm_cvtph_ps(_mm_cvtsi32_si128((int)h));
    return _mm512_permutexvar_ps(_mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0),
                                 _mm512_castps128_ps512(f));
}

/* One pair of blocks p into the MR x NR accumulators. */
AI512 void x8step512(const rn_wtype t, const int MR, const int NR, int p, int two, const unsigned char *xp, size_t rs,
                     const char *W, size_t ws, __m512 c[4][8]) {
    const size_t bb = block_bytes(t);
    __m512i w[8];
    __m512 dw[8];
    for (int j = 0; j < NR; j++) {
        const char *blk = W + (size_t)j * ws + (size_t)p * 2 * bb;
        PREFETCH_NEXT(blk, (size_t)NR * ws);
        PREFETCH_NEXT(blk + 2 * bb - 1, (size_t)NR * ws);
        w[j] = x8w512(t, blk, bb, two);
        dw[j] = x8d512(blk, bb, two);
    }
    for (int i = 0; i < MR; i++) {
        const unsigned char *xi = xp + (size_t)i * rs + (size_t)p * X8_PAIR;
        __m512i xq = _mm512_load_si512(xi), start = _mm512_load_si512(xi + 64);
        __m512 dx = _mm512_load_ps(xi + 128);
        for (int j = 0; j < NR; j++) {
            __m512i s = _mm512_dpbusd_epi32(start, w[j], xq);
            c[i][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(dw[j], dx), c[i][j]);
        }
    }
}

/* One tile of the x8 product: as tile_x8, each accumulator seeing the same
 * operations whatever MR and NR. */
AI512 void tile_x8_512(const rn_wtype t, const int MR, const int NR, int nb, const unsigned char *xp, size_t rs,
                       const char *W, size_t ws, float *Y, int ldy, int acc) {
    __m512 c[4][8];
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < NR; j++) c[i][j] = _mm512_setzero_ps();
    int p = 0;
    for (; 2 * p + 1 < nb; p++) x8step512(t, MR, NR, p, 1, xp, rs, W, ws, c);
    if (nb & 1) x8step512(t, MR, NR, p, 0, xp, rs, W, ws, c);
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < NR; j++) {
            float *y = Y + (size_t)i * ldy + j, v = _mm512_reduce_add_ps(c[i][j]);
            *y = acc ? *y + v : v;
        }
}

#define DEF_X8_512(name, T)                                                                                     \
    static T512 __attribute__((noinline)) void name(int M, int n0, int n1, int nb, const unsigned char *xp,     \
                                                    size_t rs, const char *W, size_t ws, float *Y, int ldy,      \
                                                    int acc) {                                                   \
        for (int m = 0; m < M; m += 4) {                                                                         \
            int mr = M - m < 4 ? M - m : 4, n = n0;                                                              \
            const unsigned char *q = xp + (size_t)m * rs;                                                        \
            float *Ym = Y + (size_t)m * ldy;                                                                     \
            switch (mr) {                                                                                        \
            case 1: X8TILES512(T, 1, 8) break;                                                                   \
            case 2: X8TILES512(T, 2, 4) break;                                                                   \
            case 3: X8TILES512(T, 3, 4) break;                                                                   \
            default: X8TILES512(T, 4, 4) break;                                                                  \
            }                                                                                                    \
        }                                                                                                        \
    }
#define X8TILES512(T, MR, NR)                                                                                    \
    for (; n + NR <= n1; n += NR) tile_x8_512(T, MR, NR, nb, q, rs, W + (size_t)n * ws, ws, Ym + n, ldy, acc); \
    for (; n < n1; n++) tile_x8_512(T, MR, 1, nb, q, rs, W + (size_t)n * ws, ws, Ym + n, ldy, acc);
DEF_X8_512(x8panel512_q8_0, RN_WTYPE_Q8_0)
DEF_X8_512(x8panel512_q4_0, RN_WTYPE_Q4_0)
#undef X8TILES512
#undef DEF_X8_512

static void x8_512(rn_wtype t, int M, int N, int K, const unsigned char *xp, size_t rs, const char *W, size_t ws,
                   float *Y, int ldy, int acc) {
    void (*panel)(int, int, int, int, const unsigned char *, size_t, const char *, size_t, float *, int, int) =
        t == RN_WTYPE_Q8_0 ? x8panel512_q8_0 : x8panel512_q4_0;
    int np = (N + PANEL - 1) / PANEL;
#pragma omp parallel for schedule(dynamic, 2) if ((size_t)M * N * K >= RNI_MATMUL_PAR_MADDS)
    for (int p = 0; p < np; p++) {
        int n0 = p * PANEL, n1 = n0 + PANEL < N ? n0 + PANEL : N;
        panel(M, n0, n1, K / RN_QK, xp, rs, W, ws, Y, ldy, acc);
    }
}

/* quantize_q8_0 of one block in 16-lane vectors, the same bits: amax is
 * exact in any order, x / d's product rounds alike, and roundf (half away
 * from zero) is the truncation plus one where the part cut off is at least
 * one half. A block with a NaN or an infinity takes the scalar code. */
static T512 void quantize_block_q8_0_512(const float *x, rni_block_q8_0 *y) {
    __m512 a = _mm512_loadu_ps(x), b = _mm512_loadu_ps(x + 16);
    __mmask16 bad = _mm512_fpclass_ps_mask(a, 0x99) | _mm512_fpclass_ps_mask(b, 0x99);  /* NaN, +-Inf */
    if (bad) {
        quantize_q8_0(x, y, RN_QK);
        return;
    }
    float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(a), _mm512_abs_ps(b)));
    float d = amax / 127, id = d ? 1.0f / d : 0.0f;
    y->d = rni_f32_to_f16(d);
    __m512 vid = _mm512_set1_ps(id), half = _mm512_set1_ps(0.5f), one = _mm512_set1_ps(1.0f), top = _mm512_set1_ps(127.0f);
    for (int h = 0; h < 2; h++) {
        __m512 v = _mm512_mul_ps(h ? b : a, vid);
        __m512 t = _mm512_roundscale_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
        __mmask16 up = _mm512_cmp_ps_mask(_mm512_abs_ps(_mm512_sub_ps(v, t)), half, _CMP_GE_OQ);
        t = _mm512_mask_add_ps(t, up, t, _mm512_or_ps(one, _mm512_and_ps(v, _mm512_set1_ps(-0.0f))));
        t = _mm512_max_ps(_mm512_min_ps(t, top), _mm512_sub_ps(_mm512_setzero_ps(), top));
        t = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(v, v, _CMP_ORD_Q), t);  /* 0 x inf (1 / d overflowed): 0 */
        _mm_storeu_si128((__m128i *)(y->qs + 16 * h), _mm512_cvtepi32_epi8(_mm512_cvttps_epi32(t)));
    }
}

static int have_avx512(void) {
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512vnni");
}

#endif /* RNI_QUANT_AVX512 */

/* The kernels in use: 3 AMX for the int8 products (AVX-512 for the
 * others), 2 AVX-512, 1 AVX2 + FMA, 0 scalar; the best this build and CPU
 * have, at most simd_cap (rni_matmul_w_set_simd: tests). */
static int simd_cap = 3;

#if RNI_QUANT_AMX
static int have_amx(void);
#endif

static int simd_level(void) {
#if RNI_QUANT_AMX
    if (simd_cap >= 3 && have_amx()) return 3;
#endif
#if RNI_QUANT_AVX512
    if (simd_cap >= 2 && have_avx512()) return 2;
#endif
    return simd_cap >= 1 && RNI_QUANT_SIMD ? 1 : 0;
}

int rni_matmul_w_simd(void) { return simd_level(); }

int rni_matmul_w_set_simd(int max_level) {
    simd_cap = max_level;
    return simd_level();
}

static void matmul_small(int M, int N, int K, const float *X, int ldx, const void *W, rn_wtype t, size_t ws,
                         float *Y, int ldy, int acc) {
    switch (simd_level()) {
#if RNI_QUANT_AVX512
    case 3:
    case 2: small512(M, N, K, X, ldx, W, t, ws, Y, ldy, acc); return;
#endif
#if RNI_QUANT_SIMD
    case 1: small_avx2(M, N, K, X, ldx, W, t, ws, Y, ldy, acc); return;
#endif
    default: small_scalar(M, N, K, X, ldx, W, t, ws, Y, ldy, acc); return;
    }
}

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

/* ---------------------------------------------------------- AMX kernel */

/* Intel AMX (TMUL): tdpbssd multiplies a 16 x 64-byte tile of int8 by a
 * 16 x 64-byte one into 16 x 16 int32 sums. Here one instruction takes a
 * block of 16 rows of W (A: 16 rows x 32 int8, straight from the q8_0
 * blocks ws bytes apart) times the same block of 16 rows of X (B: 8 rows
 * of the 16 rows' 4-byte groups side by side, prepared once per product),
 * so it gives each output element its whole block sum; the float part is
 * then per element y = fma((float) sum_b, d_w d_x, y) block after block,
 * the same sequence for every element whatever rows and threads share
 * its tile (rows of W past the last full tile of 16 run it in scalar
 * code, fmaf: the same bits). Linux lends the tile registers to a process
 * that asks (arch_prctl). q8_0 only: q4_0's nibbles would have to be
 * unpacked into bytes for the tiles first (matmul_x8). Measured on the
 * 2-core Emerald Rapids, W 1024 x 1024 in L2, one thread: one row as fast
 * as VNNI (34 vs 34 us), 16 rows 4x faster (79 vs 307 us). */
/* Bytes of a block of 16 rows of X prepared for the tile kernel: the
 * B tile (512) and the 16 rows' d_x (64); rows of W a thread takes at once. */
enum { AMX_XB = 576, AMX_PANEL = 64, AMX_WIDE = 4 };

#if RNI_QUANT_AMX

#define TAMX __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma,f16c,amx-tile,amx-int8")))

typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} amx_tilecfg;

/* Tiles 0, 3: C (16 x 16 int32); 1, 4: A (16 rows x 32 bytes of W);
 * 2, 5: B (8 x 64 bytes of X); two of each so two blocks are in flight.
 * narrow: one row of X at a time (C 16 x 1, B 8 x 4 bytes), for M < 4,
 * where the 16-row tile would be mostly padding. */
static TAMX __attribute__((noinline)) void amx_begin(int narrow) {
    amx_tilecfg c;
    memset(&c, 0, sizeof c);
    c.palette = 1;
    for (int i = 0; i < 6; i += 3) {
        c.rows[i] = 16; c.colsb[i] = narrow ? 4 : 64;
        c.rows[i + 1] = 16; c.colsb[i + 1] = 32;
        c.rows[i + 2] = 8; c.colsb[i + 2] = narrow ? 4 : 64;
    }
    /* GCC 12 drops the stores above as dead: ldtilecfg is not known to read them */
    __asm__ volatile("" : : "r"(&c) : "memory");
    _tile_loadconfig(&c);
}

static TAMX __attribute__((noinline)) void amx_end(void) { _tile_release(); }

/* The 16 rows' block b of W as the int8 A tile, in place (ws apart). */
#define AMX_LOAD_A(tile, b) _tile_loadd(tile, W0 + (size_t)(b) * sizeof(rni_block_q8_0) + 2, (long)ws)
/* The next 16 rows' blocks b, b + 1 (see PREFETCH_NEXT). */
#define AMX_PREFETCH(b)                                                                                        \
    do {                                                                                                       \
        for (int r_ = 16; r_ < 32; r_++) {                                                                     \
            const char *p_ = W0 + (size_t)r_ * ws + (size_t)(b) * sizeof(rni_block_q8_0);                      \
            PREFETCH_NEXT(p_, 0);                                                                              \
            PREFETCH_NEXT(p_, 2 * sizeof(rni_block_q8_0) - 1);                                                 \
        }                                                                                                      \
    } while (0)

/* y for 16 rows of W (from W0) and one chunk of up to 16 rows of X (xb:
 * nb blocks of AMX_XB bytes): acc[n] holds the 16 rows of X in its lanes. */
static inline __attribute__((always_inline)) TAMX void amx_tile16(int nb, const unsigned char *xb, const char *W0,
                                                                   size_t ws, __m512 acc[16]) {
    const size_t bb = sizeof(rni_block_q8_0);
    _Alignas(64) int32_t cs[2][16][16];
    _Alignas(64) float dw[16];
    const __m512i offs = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                            _mm512_set1_epi32((int)ws));
    for (int n = 0; n < 16; n++) acc[n] = _mm512_setzero_ps();
    for (int b = 0; b < nb; b += 2) {
        int two = b + 1 < nb;
        AMX_PREFETCH(b);
        _tile_zero(0);
        AMX_LOAD_A(1, b);
        _tile_loadd(2, xb + (size_t)b * AMX_XB, 64);
        _tile_dpbssd(0, 1, 2);
        if (two) {
            _tile_zero(3);
            AMX_LOAD_A(4, b + 1);
            _tile_loadd(5, xb + (size_t)(b + 1) * AMX_XB, 64);
            _tile_dpbssd(3, 4, 5);
        }
        _tile_stored(0, cs[0], 64);
        if (two) _tile_stored(3, cs[1], 64);
        for (int h = 0; h <= two; h++) {
            /* the 16 rows' f16 scales of block b + h (4 bytes read at each) */
            __m512i g = _mm512_i32gather_epi32(offs, W0 + (size_t)(b + h) * bb, 1);
            _mm512_store_ps(dw, _mm512_cvtph_ps(_mm512_cvtepi32_epi16(g)));
            __m512 dx = _mm512_load_ps(xb + (size_t)(b + h) * AMX_XB + 512);
            for (int n = 0; n < 16; n++)
                acc[n] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_load_si512(cs[h][n])),
                                         _mm512_mul_ps(_mm512_set1_ps(dw[n]), dx), acc[n]);
        }
    }
}
/* The narrow form: one row of X (its column m in the chunk xb) against 16
 * rows of W, the 16 results in the lanes of the return; the same float
 * sequence per element. */
static inline __attribute__((always_inline)) TAMX __m512 amx_row16(int nb, const unsigned char *xb, int m,
                                                                   const char *W0, size_t ws) {
    const size_t bb = sizeof(rni_block_q8_0);
    _Alignas(64) int32_t cs[2][16];
    const __m512i offs = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                            _mm512_set1_epi32((int)ws));
    __m512 acc = _mm512_setzero_ps();
    for (int b = 0; b < nb; b += 2) {
        int two = b + 1 < nb;
        AMX_PREFETCH(b);
        _tile_zero(0);
        AMX_LOAD_A(1, b);
        _tile_loadd(2, xb + (size_t)b * AMX_XB + 4 * m, 64);
        _tile_dpbssd(0, 1, 2);
        if (two) {
            _tile_zero(3);
            AMX_LOAD_A(4, b + 1);
            _tile_loadd(5, xb + (size_t)(b + 1) * AMX_XB + 4 * m, 64);
            _tile_dpbssd(3, 4, 5);
        }
        _tile_stored(0, cs[0], 4);
        if (two) _tile_stored(3, cs[1], 4);
        for (int h = 0; h <= two; h++) {
            __m512i g = _mm512_i32gather_epi32(offs, W0 + (size_t)(b + h) * bb, 1);
            __m512 dw = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(g));
            float dx;
            memcpy(&dx, xb + (size_t)(b + h) * AMX_XB + 512 + 4 * m, 4);
            acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_load_si512(cs[h])), _mm512_mul_ps(dw, _mm512_set1_ps(dx)), acc);
        }
    }
    return acc;
}
#undef AMX_LOAD_A
#undef AMX_PREFETCH

/* Rows [n0, n1) of W (n1 - n0 a multiple of 16) for all M rows of X. */
static TAMX __attribute__((noinline)) void amx_q8_0(int M, int n0, int n1, int nb, const unsigned char *xb,
                                                    const char *W, size_t ws, float *Y, int ldy, int acc) {
    for (int n = n0; n < n1; n += 16) {
        if (M < AMX_WIDE) {
            for (int i = 0; i < M; i++) {
                _Alignas(64) float out[16];
                _mm512_store_ps(out, amx_row16(nb, xb, i, W + (size_t)n * ws, ws));
                float *y = Y + (size_t)i * ldy + n;
                for (int j = 0; j < 16; j++) y[j] = acc ? y[j] + out[j] : out[j];
            }
            continue;
        }
        for (int m0 = 0; m0 < M; m0 += 16) {
            __m512 a[16];
            _Alignas(64) float out[16][16];
            amx_tile16(nb, xb + (size_t)(m0 / 16) * nb * AMX_XB, W + (size_t)n * ws, ws, a);
            for (int j = 0; j < 16; j++) _mm512_store_ps(out[j], a[j]);
            int mr = M - m0 < 16 ? M - m0 : 16;
            for (int i = 0; i < mr; i++)
                for (int j = 0; j < 16; j++) {
                    float *y = Y + (size_t)(m0 + i) * ldy + n + j;
                    *y = acc ? *y + out[j][i] : out[j][i];
                }
        }
    }
}

/* Rows of X as the tile kernel reads them: per chunk of 16 rows (the last
 * padded with zeros) and block, the B tile (row r: each row's bytes
 * 4r..4r+3 side by side) and the 16 d_x. */
static void prepare_amx(int M, int K, const float *X, int ldx, unsigned char *xb) {
    int nb = K / RN_QK, nc = (M + 15) / 16;
    memset(xb, 0, (size_t)nc * nb * AMX_XB);
    rni_block_q8_0 blk;
    for (int m = 0; m < M; m++)
        for (int b = 0; b < nb; b++) {
            quantize_block_q8_0_512(X + (size_t)m * ldx + (size_t)b * RN_QK, &blk);
            unsigned char *o = xb + ((size_t)(m / 16) * nb + b) * AMX_XB;
            for (int r = 0; r < 8; r++) memcpy(o + 64 * r + 4 * (m % 16), blk.qs + 4 * r, 4);
            float d = rni_f16_to_f32(blk.d);
            memcpy(o + 512 + 4 * (m % 16), &d, 4);
        }
}

/* Rows [n0, N) of W past the last full tile, by the tile kernel's float
 * sequence in scalar code. */
static void amx_rest(int M, int n0, int N, int nb, const unsigned char *xb, const char *W, size_t ws, float *Y,
                     int ldy, int acc) {
    size_t bb = sizeof(rni_block_q8_0);
    for (int m = 0; m < M; m++)
        for (int n = n0; n < N; n++) {
            float s = 0;
            for (int b = 0; b < nb; b++) {
                const unsigned char *o = xb + ((size_t)(m / 16) * nb + b) * AMX_XB;
                const char *blk = W + (size_t)n * ws + (size_t)b * bb;
                int8_t x[RN_QK];
                float dx;
                for (int r = 0; r < 8; r++) memcpy(x + 4 * r, o + 64 * r + 4 * (m % 16), 4);
                memcpy(&dx, o + 512 + 4 * (m % 16), 4);
                s = fmaf((float)block_dot(RN_WTYPE_Q8_0, blk, x), rni_f16_to_f32(load_u16(blk)) * dx, s);
            }
            float *y = Y + (size_t)m * ldy + n;
            *y = acc ? *y + s : s;
        }
}

static void x8_amx(int M, int N, int K, const unsigned char *xb, const char *W, size_t ws, float *Y, int ldy,
                   int acc) {
    int nb = K / RN_QK, full = N / 16 * 16, np = (full + AMX_PANEL - 1) / AMX_PANEL;
#pragma omp parallel if ((size_t)M * N * K >= RNI_MATMUL_PAR_MADDS)
    {
        amx_begin(M < AMX_WIDE);
#pragma omp for schedule(dynamic, 1)
        for (int p = 0; p < np; p++) {
            int n0 = p * AMX_PANEL, n1 = n0 + AMX_PANEL < full ? n0 + AMX_PANEL : full;
            amx_q8_0(M, n0, n1, nb, xb, W, ws, Y, ldy, acc);
        }
        amx_end();
    }
    if (full < N) amx_rest(M, full, N, nb, xb, W, ws, Y, ldy, acc);
}

/* CPUID leaf 7: AMX-TILE (EDX bit 24) and AMX-INT8 (bit 25); then Linux's
 * permission for the tile data (ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA). */
static int have_amx(void) {
    static int have = -1;  /* asked once; a race asks twice, with one answer */
    int h = __atomic_load_n(&have, __ATOMIC_RELAXED);
    if (h < 0) {
        unsigned a, b, c, d;
        h = __get_cpuid_count(7, 0, &a, &b, &c, &d) && (d >> 24 & 3) == 3 && have_avx512() &&
            syscall(SYS_arch_prctl, 0x1023, 18) == 0;
        __atomic_store_n(&have, h, __ATOMIC_RELAXED);
    }
    return h;
}

#endif /* RNI_QUANT_AMX */

#if RNI_QUANT_AVX512
/* Rows of X as x8_512 reads them: X8_PAIR bytes a pair of blocks, rs
 * bytes a row (64-byte aligned); the offset the weights' unsigned side
 * adds (128 for q8_0, 8 for q4_0) taken off each lane's start. */
static void prepare_x8_512(rn_wtype t, int M, int K, const float *X, int ldx, unsigned char *xp, size_t rs) {
    int nb = K / RN_QK, off = t == RN_WTYPE_Q8_0 ? 128 : 8;
    rni_block_q8_0 blk;
    for (int m = 0; m < M; m++) {
        unsigned char *row = xp + (size_t)m * rs;
        memset(row, 0, rs);
        for (int b = 0; b < nb; b++) {
            quantize_block_q8_0_512(X + (size_t)m * ldx + (size_t)b * RN_QK, &blk);
            unsigned char *pr = row + (size_t)(b / 2) * X8_PAIR;
            int h = 32 * (b & 1);
            int32_t start[8];
            float dx[8], d = rni_f16_to_f32(blk.d);
            for (int l = 0; l < 8; l++) {
                start[l] = -off * (blk.qs[4 * l] + blk.qs[4 * l + 1] + blk.qs[4 * l + 2] + blk.qs[4 * l + 3]);
                dx[l] = d;
            }
            memcpy(pr + h, blk.qs, 32);
            memcpy(pr + 64 + h, start, sizeof start);
            memcpy(pr + 128 + h, dx, sizeof dx);
        }
    }
}
#endif

void rni_quantize_act_q8_0(const float *x, rni_block_q8_0 *y) {
#if RNI_QUANT_AVX512
    if (simd_level() >= 2) {
        quantize_block_q8_0_512(x, y);
        return;
    }
#endif
    quantize_q8_0(x, y, RN_QK);
}

static void matmul_x8(int ref, int M, int N, int K, const float *X, int ldx, const void *W, rn_wtype t, size_t ws,
                      float *Y, int ldy, int acc) {
    if (M <= 0 || N <= 0) return;
    int x8 = (t == RN_WTYPE_Q8_0 || t == RN_WTYPE_Q4_0) && M <= RNI_BATCH_M, level = ref ? 0 : simd_level();
    /* q4_0 keeps VNNI under AMX: unpacking its nibbles for the tiles costs
     * more than AMX saves for a few rows (measured: one row 2x slower) */
    if (level == 3 && t == RN_WTYPE_Q4_0) level = 2;
    size_t nb = (size_t)K / RN_QK, rs = (nb + 1) / 2 * X8_PAIR;
    size_t bytes = level == 3 ? (size_t)(M + 15) / 16 * nb * AMX_XB : level == 2 ? M * rs
                 : (size_t)M * K + M * nb * sizeof(float) + 64;
    unsigned char *buf = x8 ? x8_scratch(bytes) : NULL;
    if (!buf) {
        (ref ? rni_matmul_w_ref : rn_matmul_w)(M, N, K, X, ldx, W, t, ws, Y, ldy, acc);
        return;
    }
#if RNI_QUANT_AMX
    if (level == 3) {
        prepare_amx(M, K, X, ldx, buf);
        x8_amx(M, N, K, buf, W, ws, Y, ldy, acc);
        return;
    }
#endif
#if RNI_QUANT_AVX512
    if (level == 2) {
        prepare_x8_512(t, M, K, X, ldx, buf, rs);
        x8_512(t, M, N, K, buf, rs, W, ws, Y, ldy, acc);
        return;
    }
#endif
    float *xd = (float *)buf;
    int8_t *xq = (int8_t *)(buf + M * nb * sizeof(float));
    quantize_x8(M, K, X, ldx, xq, xd);
#if RNI_QUANT_SIMD
    if (level == 1) {
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
 * Other types take their few-row kernels for all of up to RNI_BATCH_M
 * rows at once (the same promise; each panel of W read once for every
 * row, where sgemm would dequantise all of W every step), sgemm on
 * dequantised panels beyond (prefill). */
void rni_linear_forward(const rni_wmat *W, int M, int N, int K, const rn_real *x, int ldx, rn_real *y, int ldy,
                        int accumulate, int x8) {
    if (W->panel && M <= 64) {  /* the same bits for a row in any batch, packed or not */
        rni_panel_gemm_w(M, N, K, x, ldx, W->pk, (const rn_real *)W->p, W->stride / sizeof(rn_real), y, ldy, accumulate);
        return;
    }
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
    if (M <= 0 || N <= 0) return;
    rni_gemm_count((uint64_t)M * N * K);
    if (M > RNI_BATCH_M) rn_matmul_w(M, N, K, x, ldx, W->p, W->t, W->stride, y, ldy, accumulate);
    else if (x8 && (W->t == RN_WTYPE_Q8_0 || W->t == RN_WTYPE_Q4_0))
        matmul_x8(0, M, N, K, x, ldx, W->p, W->t, W->stride, y, ldy, accumulate);
    else
        matmul_small(M, N, K, x, ldx, W->p, W->t, W->stride, y, ldy, accumulate);
#endif
}
