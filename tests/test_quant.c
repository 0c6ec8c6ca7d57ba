/* test_quant.c: typed weights (src/quant.c): f16/bf16 rounding at the bit
 * level, ggml's q8_0/q4_0 layouts on hand-made blocks, round-trip error
 * bounds (random and trained weights), every product kernel, at every
 * level the machine has (AMX, AVX-512, AVX2, scalar), against a float64
 * reference of the same dequantised weights (shapes, strides, accumulate,
 * threads, a row alone and in a batch), and quantised models (rn_model_quantize): the
 * three paradigms agree at every type, the logits equal those of the
 * dequantised f32 model, bad files and training are refused. The kernels
 * are float32 whatever rn_real is, so both builds run all of it (the
 * float64 build dequantises quantised files on load). */
#define _POSIX_C_SOURCE 200809L
#include "check.h"
#include "quant.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>
#ifdef __F16C__
#include <immintrin.h>
#endif

static float bits_f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static uint32_t f_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

/* f16 h decoded by its definition, in double. */
static double f16_def(uint16_t h) {
    int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v = e == 0 ? ldexp(m, -24) : ldexp(1024 + m, e - 25);
    return s ? -v : v;
}

static void test_f16(void) {
    int bad_dec = 0, bad_rt = 0, bad_mid = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        int e = (h >> 10) & 31;
        float f = rni_f16_to_f32((uint16_t)h);
        if (e == 31) {
            if ((h & 1023) ? !isnan(f) : !isinf(f)) bad_dec++;
            continue;
        }
        if ((double)f != f16_def((uint16_t)h)) bad_dec++;
        if (rni_f32_to_f16(f) != h && !(f == 0 && h == 0x8000 && rni_f32_to_f16(f) == 0x8000)) bad_rt++;
        /* the midpoint to the next value up in magnitude (exact in float):
         * ties go to the even code, one float ulp either side to the nearer */
        if ((h & 0x7fff) < 0x7bff) {
            double a = f16_def((uint16_t)h), b = f16_def((uint16_t)(h + 1)), mid = (a + b) / 2;
            float fm = (float)mid;
            uint16_t even = (h & 1) ? (uint16_t)(h + 1) : (uint16_t)h;
            if ((double)fm != mid || rni_f32_to_f16(fm) != even) bad_mid++;
            float below = nextafterf(fm, (float)a), above = nextafterf(fm, (float)b);
            if (rni_f32_to_f16(below) != h || rni_f32_to_f16(above) != (uint16_t)(h + 1)) bad_mid++;
        }
    }
    CHECK(bad_dec == 0, "f16 decode: %d codes differ from the definition", bad_dec);
    CHECK(bad_rt == 0, "f16 encode(decode(h)) != h for %d codes", bad_rt);
    CHECK(bad_mid == 0, "f16 round to nearest even wrong at %d midpoints", bad_mid);
    /* overflow: 65504 is the largest; its midpoint with 65536 ties to Inf */
    CHECK(rni_f32_to_f16(65504.0f) == 0x7bff && rni_f32_to_f16(65519.99f) == 0x7bff, "f16 max");
    CHECK(rni_f32_to_f16(65520.0f) == 0x7c00 && rni_f32_to_f16(-1e30f) == 0xfc00, "f16 overflow to Inf");
    CHECK(rni_f32_to_f16(0x1p-25f) == 0 && rni_f32_to_f16(nextafterf(0x1p-25f, 1)) == 1, "f16 smallest subnormal");
    uint16_t hn = rni_f32_to_f16(bits_f(0x7f800001u));
    CHECK((hn & 0x7c00) == 0x7c00 && (hn & 0x3ff) && (hn & 0x200), "f16 NaN stays a quiet NaN: %04x", hn);
#ifdef __F16C__
    /* and the hardware's conversion on random bit patterns */
    rn_rng r;
    rn_rng_seed(&r, 5);
    int bad_hw = 0;
    for (int i = 0; i < 1000000; i++) {
        float f = bits_f((uint32_t)rn_rng_u64(&r));
        if (isnan(f)) continue;
        if (rni_f32_to_f16(f) != _cvtss_sh(f, 0)) bad_hw++;
    }
    CHECK(bad_hw == 0, "f16 encode differs from F16C on %d of 1e6 random floats", bad_hw);
#endif
}

static void test_bf16(void) {
    rn_rng r;
    rn_rng_seed(&r, 6);
    int bad = 0;
    for (int i = 0; i < 1000000; i++) {
        uint32_t u = (uint32_t)rn_rng_u64(&r);
        if (i < 1000) u = (u & 0xffff0000u) | 0x8000u;  /* exact ties */
        float f = bits_f(u);
        if (!isfinite(f)) continue;
        /* the two bf16 neighbours, by magnitude; the top one may be Inf */
        uint32_t lo = u & 0xffff0000u, hi = lo + 0x10000u;
        double dlo = fabs((double)f - bits_f(lo));
        double vhi = ((hi & 0x7f800000u) == 0x7f800000u) ? copysign(ldexp(1, 128), f) : bits_f(hi);
        double dhi = fabs(vhi - (double)f);
        uint32_t want = dlo < dhi ? lo : dhi < dlo ? hi : ((lo >> 16) & 1) ? hi : lo;
        if (rni_f32_to_bf16(f) != (uint16_t)(want >> 16)) bad++;
        if (rni_bf16_to_f32(rni_f32_to_bf16(f)) != bits_f(want)) bad++;
    }
    CHECK(bad == 0, "bf16 round to nearest even wrong on %d random floats", bad);
    uint16_t hn = rni_f32_to_bf16(bits_f(0x7f800001u));
    CHECK((hn & 0x7f80) == 0x7f80 && (hn & 0x7f), "bf16 NaN stays NaN: %04x", hn);
}

/* Hand-made blocks: x_j = j - 16, j = 0..31, the bytes worked out by hand
 * from ggml's rounding. */
static void test_known_blocks(void) {
    float x[32], y[32];
    for (int j = 0; j < 32; j++) x[j] = (float)(j - 16);
    /* q8_0: amax 16, d = 16/127 -> f16 0x3008; 1/d = 7.9375 exactly, so
     * q_j = roundf((j - 16) 7.9375): -127, -119, ... -63.5 -> -64, 0, 63.5 -> 64, 119 */
    unsigned char b8[34];
    CHECK_OK(rn_quantize_row(RN_WTYPE_Q8_0, x, b8, 32));
    CHECK(b8[0] == 0x08 && b8[1] == 0x30, "q8_0 scale bytes %02x %02x", b8[0], b8[1]);
    int8_t *q = (int8_t *)(b8 + 2);
    CHECK(q[0] == -127 && q[1] == -119 && q[8] == -64 && q[16] == 0 && q[24] == 64 && q[31] == 119,
          "q8_0 quants %d %d %d %d %d %d", q[0], q[1], q[8], q[16], q[24], q[31]);
    CHECK_OK(rn_dequantize_row(RN_WTYPE_Q8_0, b8, y, 32));
    CHECK(y[0] == -127 * rni_f16_to_f32(0x3008) && y[16] == 0, "q8_0 dequantise");
    /* q4_0: the value of largest magnitude is -16, d = 2 (f16 0x4000), 1/d
     * = 0.5: q_j = min(15, (int)((j - 16) / 2 + 8.5)); byte j = q_j | q_{j+16} << 4 */
    static const unsigned char want4[18] = {0x00, 0x40, 0x80, 0x91, 0x91, 0xA2, 0xA2, 0xB3, 0xB3, 0xC4, 0xC4,
                                            0xD5, 0xD5, 0xE6, 0xE6, 0xF7, 0xF7, 0xF8};
    unsigned char b4[18];
    CHECK_OK(rn_quantize_row(RN_WTYPE_Q4_0, x, b4, 32));
    CHECK(memcmp(b4, want4, 18) == 0, "q4_0 block bytes differ from ggml's layout");
    CHECK_OK(rn_dequantize_row(RN_WTYPE_Q4_0, want4, y, 32));
    CHECK(y[0] == -16 && y[1] == -14 && y[16] == 0 && y[30] == 14 && y[31] == 14, "q4_0 dequantise %g %g %g %g",
          y[0], y[1], y[16], y[31]);
    /* a zero block: d = 0 / -8 = -0 (f16 0x8000, as ggml writes it), all
     * quants the midpoint 8 */
    memset(x, 0, sizeof x);
    CHECK_OK(rn_quantize_row(RN_WTYPE_Q4_0, x, b4, 32));
    CHECK(b4[0] == 0 && b4[1] == 0x80 && b4[2] == 0x88 && b4[17] == 0x88, "q4_0 zero block");
    /* sizes */
    CHECK(rn_wtype_row_bytes(RN_WTYPE_F32, 5) == 20 && rn_wtype_row_bytes(RN_WTYPE_BF16, 5) == 10 &&
              rn_wtype_row_bytes(RN_WTYPE_Q8_0, 64) == 68 && rn_wtype_row_bytes(RN_WTYPE_Q4_0, 64) == 36,
          "row bytes");
    CHECK(rn_wtype_row_bytes(RN_WTYPE_Q8_0, 33) == 0 && rn_wtype_row_bytes(RN_WTYPE_Q4_0, 16) == 0 &&
              rn_wtype_row_bytes(RN_WTYPE_F32, 0) == 0 && rn_wtype_row_bytes(RN_WTYPE_COUNT, 32) == 0,
          "row bytes refused");
    CHECK(rn_quantize_row(RN_WTYPE_Q4_0, x, b4, 48) == RN_ERR_ARG && strstr(rn_last_error(), "q4_0"),
          "a row of 48 weights is refused for q4_0: %s", rn_last_error());
    CHECK(!strcmp(rn_wtype_name(RN_WTYPE_Q8_0), "q8_0"), "names");
}

static void fill(rn_rng *r, float *x, size_t n, int outliers) {
    for (size_t i = 0; i < n; i++) {
        double v = rn_rng_normal(r);
        if (outliers && rn_rng_u64(r) % 61 == 0) v *= 40;
        x[i] = (float)v;
    }
}

/* Quantise -> dequantise: the error of each weight against its block's
 * scale. q8_0: |x - y| <= d/2 + 127 |d - d16| (d16 the stored f16 scale);
 * q4_0: the same with 8 |d - d16| for weights within the grid, and |d16|
 * plus that at the clamped top code (x/d > 7.5: ggml maps -8 d..7 d). */
/* Weights of x (K) beyond the error bound of type t (q8_0: d / 2 plus the
 * f16 rounding of d, 127 |d - f16(d)|; q4_0: d / 2 + 8 |d - f16(d)|, or d
 * for the clamped top code; bf16 / f16: round to nearest even), and the
 * worst error in units of the block scale (worst[0] q8_0, [1] q4_0,
 * [2] q4_0 clamped). */
static int row_beyond_bound(rn_wtype t, const float *x, int K, double *worst) {
    static unsigned char buf[1 << 16];
    static float y[1 << 14];
    int bad = 0;
    if (rn_quantize_row(t, x, buf, K) != RN_OK || rn_dequantize_row(t, buf, y, K) != RN_OK) return K;
    if (t == RN_WTYPE_F32) return memcmp(x, y, sizeof(float) * (size_t)K) != 0;
    if (t == RN_WTYPE_BF16 || t == RN_WTYPE_F16) {
        for (int k = 0; k < K; k++)
            bad += y[k] != (t == RN_WTYPE_BF16 ? rni_bf16_to_f32(rni_f32_to_bf16(x[k])) : rni_f16_to_f32(rni_f32_to_f16(x[k])));
        return bad;
    }
    for (int b = 0; b < K / 32; b++) {
        const float *xb = x + b * 32, *yb = y + b * 32;
        float amax = 0, max = 0;
        for (int j = 0; j < 32; j++)
            if (amax < fabsf(xb[j])) { amax = fabsf(xb[j]); max = xb[j]; }
        size_t bs = t == RN_WTYPE_Q8_0 ? 34 : 18;
        uint16_t dh;
        memcpy(&dh, buf + b * bs, 2);
        double d16 = rni_f16_to_f32(dh);
        double d = t == RN_WTYPE_Q8_0 ? amax / 127.0f : max / -8.0f, dd = fabs(d - d16);
        for (int j = 0; j < 32; j++) {
            double e = fabs((double)xb[j] - yb[j]), slack = 1e-6 * amax;
            if (t == RN_WTYPE_Q8_0) {
                bad += e > fabs(d16) / 2 + 127 * dd + slack;
                if (d16 != 0) worst[0] = fmax(worst[0], e / fabs(d16));
            } else if (d != 0 && xb[j] / d > 7.5) {
                bad += e > fabs(d16) + 8 * dd + slack;
                worst[2] = fmax(worst[2], e / fabs(d16));
            } else {
                bad += e > fabs(d16) / 2 + 8 * dd + slack;
                if (d16 != 0) worst[1] = fmax(worst[1], e / fabs(d16));
            }
        }
    }
    return bad;
}

/* Non-finite and subnormal blocks: no conversion out of range (found by
 * fuzz_model: activations that overflowed), a NaN scale for a block with a
 * NaN or an infinity, and int8-activation products that are NaN then. */
static void test_nonfinite_blocks(void) {
    float x[64], y[64], w[64];
    unsigned char b[64 * 4];
    for (int k = 0; k < 64; k++) { x[k] = (float)(k % 7) - 3; w[k] = 0.25f * (float)(k % 5 - 2); }
    for (int t = RN_WTYPE_Q8_0; t <= RN_WTYPE_Q4_0; t++) {
        size_t bs = t == RN_WTYPE_Q8_0 ? 34 : 18;
        x[3] = NAN; x[40] = INFINITY;
        CHECK_OK(rn_quantize_row((rn_wtype)t, x, b, 64));
        uint16_t d0, d1;
        memcpy(&d0, b, 2);
        memcpy(&d1, b + bs, 2);
        CHECK(isnan(rni_f16_to_f32(d0)) && isnan(rni_f16_to_f32(d1)), "%s: non-finite blocks get NaN scales",
              rn_wtype_name((rn_wtype)t));
        CHECK(rni_wtype_first_bad_row((rn_wtype)t, b, 1, 64) == 0, "a NaN scale is found");
        for (int k = 0; k < 32; k++) x[k] = 1e-39f * (float)(k % 3 - 1);  /* subnormal: 1 / d overflows */
        x[40] = 2;
        CHECK_OK(rn_quantize_row((rn_wtype)t, x, b, 64));
        CHECK_OK(rn_dequantize_row((rn_wtype)t, b, y, 64));
        int bad = 0;
        for (int k = 0; k < 64; k++) bad += !isfinite(y[k]) || fabsf(y[k] - x[k]) > 0.4f;  /* within d of block 2 (3 / 8) */
        CHECK(bad == 0, "%s: a subnormal block round-trips (%d bad)", rn_wtype_name((rn_wtype)t), bad);
        /* activations with a NaN: the int8 product is NaN */
        CHECK_OK(rn_quantize_row((rn_wtype)t, w, b, 64));
        float xa[64], out = 0;
        for (int k = 0; k < 64; k++) xa[k] = 1;
        xa[5] = NAN;
        rn_matmul_w_x8(1, 1, 64, xa, 64, b, (rn_wtype)t, bs * 2, &out, 1, 0);
        CHECK(isnan(out), "%s: a NaN activation gives %g, not NaN", rn_wtype_name((rn_wtype)t), out);
        x[3] = 0;
    }
}

static void test_round_trip(void) {
    enum { K = 4096 };
    static float x[K];
    rn_rng r;
    rn_rng_seed(&r, 7);
    double worst[3] = {0, 0, 0};
    int bad = 0;
    for (int rep = 0; rep < 20; rep++) {
        fill(&r, x, K, rep & 1);
        if (rep == 2) for (int k = 0; k < K; k++) x[k] *= 1e-3f;
        for (int t = 0; t < RN_WTYPE_COUNT; t++) bad += row_beyond_bound((rn_wtype)t, x, K, worst);
    }
    CHECK(bad == 0, "round trip: %d weights beyond their bound", bad);
    printf("round trip, worst error over the block scale: q8_0 %.3f d, q4_0 %.3f d (clamped top code %.3f d)\n",
           worst[0], worst[1], worst[2]);
}

/* Y (M, N) of the dequantised weights in float64. */
static void ref64(int M, int N, int K, const float *X, int ldx, const float *Wd, double *Y, double *Yabs) {
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            double s = 0, a = 0;
            for (int k = 0; k < K; k++) {
                double p = (double)X[(size_t)m * ldx + k] * Wd[(size_t)n * K + k];
                s += p;
                a += fabs(p);
            }
            Y[(size_t)m * N + n] = s;
            Yabs[(size_t)m * N + n] = a;
        }
}

static void test_kernels(void) {
    static const int Ms[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 16, 33};
    static const int Ns[] = {1, 7, 13, 24, 37};
    static const int Ks[] = {32, 96, 256, 1000, 4096};
    rn_rng r;
    rn_rng_seed(&r, 8);
    int Kmax = 4096, Nmax = 37, Mmax = 33, ldx = Kmax + 3, ldy = Nmax + 2;
    float *X = malloc(sizeof(float) * (size_t)Mmax * ldx), *Wf = malloc(sizeof(float) * (size_t)Nmax * Kmax);
    float *Wd = malloc(sizeof(float) * (size_t)Nmax * Kmax);
    float *Y = malloc(sizeof(float) * (size_t)Mmax * ldy), *Yr = malloc(sizeof(float) * (size_t)Mmax * ldy);
    double *Y64 = malloc(sizeof(double) * (size_t)Mmax * Nmax), *Ya = malloc(sizeof(double) * (size_t)Mmax * Nmax);
    unsigned char *W = malloc((size_t)Nmax * (Kmax * 4 + 8));
    fill(&r, X, (size_t)Mmax * ldx, 0);
    fill(&r, Wf, (size_t)Nmax * Kmax, 1);
    int shapes = 0;
    for (int t = 0; t < RN_WTYPE_COUNT; t++)
        for (size_t ik = 0; ik < sizeof Ks / sizeof *Ks; ik++) {
            int K = Ks[ik];
            if (!rn_wtype_row_bytes(t, K)) continue;
            size_t ws = rn_wtype_row_bytes(t, K) + 8;  /* rows with a gap between them */
            for (int n = 0; n < Nmax; n++) {
                CHECK_OK(rn_quantize_row(t, Wf + (size_t)n * Kmax, W + n * ws, K));
                CHECK_OK(rn_dequantize_row(t, W + n * ws, Wd + (size_t)n * K, K));
            }
            for (size_t in = 0; in < sizeof Ns / sizeof *Ns; in++)
                for (size_t im = 0; im < sizeof Ms / sizeof *Ms; im++) {
                    int M = Ms[im], N = Ns[in];
                    ref64(M, N, K, X, ldx, Wd, Y64, Ya);
                    double worst = 0, worst_ref = 0;
                    int pad_ok = 1;
                    for (int acc = 0; acc < 2; acc++) {
                        for (int i = 0; i < Mmax * ldy; i++) Y[i] = Yr[i] = (float)(i % 5) - 2;
                        rn_matmul_w(M, N, K, X, ldx, W, t, ws, Y, ldy, acc);
                        rni_matmul_w_ref(M, N, K, X, ldx, W, t, ws, Yr, ldy, acc);
                        for (int m = 0; m < M; m++) {
                            for (int n = 0; n < N; n++) {
                                int i = m * ldy + n;
                                double want = Y64[(size_t)m * N + n] + (acc ? (float)(i % 5) - 2 : 0);
                                double tol = Ya[(size_t)m * N + n] + (acc ? 2 : 0);
                                worst = fmax(worst, fabs(Y[i] - want) / tol);
                                worst_ref = fmax(worst_ref, fabs(Yr[i] - want) / tol);
                            }
                            for (int n = N; n < ldy; n++) pad_ok &= Y[m * ldy + n] == (float)((m * ldy + n) % 5) - 2;
                        }
                        for (int i = M * ldy; i < Mmax * ldy; i++) pad_ok &= Y[i] == (float)(i % 5) - 2;
                    }
                    /* float32 sums: relative to sum |x w|, well inside K eps */
                    CHECK(worst < 1e-5 && worst_ref < 1e-5, "%s M %d N %d K %d: error %.3g (reference %.3g) of sum |xw|",
                          rn_wtype_name(t), M, N, K, worst, worst_ref);
                    CHECK(pad_ok, "%s M %d N %d K %d: wrote outside Y", rn_wtype_name(t), M, N, K);
                    shapes++;
                }
        }
    printf("kernels: %d shapes x {=, +=} against float64\n", shapes);
    free(X); free(Wf); free(Wd); free(Y); free(Yr); free(Y64); free(Ya); free(W);
}

/* rn_matmul_w_x8: X quantised to q8_0. Against float64 with the same
 * quantised X (float32 rounding only), and against the float-activation
 * product within the bound sum_k |w_k| |x_k - xhat_k|. */
static void test_x8(void) {
    static const int Ms[] = {1, 2, 3, 4, 5, 7, 8, 9, 16, 33};
    static const int Ns[] = {1, 13, 24, 37};
    static const int Ks[] = {32, 96, 256, 4096};  /* 96: an odd block count */
    enum { Kmax = 4096, Nmax = 37, Mmax = 33 };
    rn_rng r;
    rn_rng_seed(&r, 10);
    int ldx = Kmax + 1, ldy = Nmax + 1;
    float *X = malloc(sizeof(float) * Mmax * ldx), *Xh = malloc(sizeof(float) * Mmax * Kmax);
    float *Wf = malloc(sizeof(float) * Nmax * Kmax), *Wd = malloc(sizeof(float) * Nmax * Kmax);
    float *Y = malloc(sizeof(float) * Mmax * ldy), *Yr = malloc(sizeof(float) * Mmax * ldy);
    double *Yq = malloc(sizeof(double) * Mmax * Nmax), *Yqa = malloc(sizeof(double) * Mmax * Nmax);
    double *Yf = malloc(sizeof(double) * Mmax * Nmax), *Yfa = malloc(sizeof(double) * Mmax * Nmax);
    unsigned char *W = malloc((size_t)Nmax * Kmax * 2), xb[Kmax * 2];
    fill(&r, X, (size_t)Mmax * ldx, 0);
    fill(&r, Wf, (size_t)Nmax * Kmax, 1);
    double worst_rel = 0, se = 0, sy = 0;
    int bad = 0, bad_bound = 0;
    for (int t = RN_WTYPE_Q8_0; t <= RN_WTYPE_Q4_0; t++)
        for (size_t ik = 0; ik < sizeof Ks / sizeof *Ks; ik++) {
            int K = Ks[ik];
            size_t ws = rn_wtype_row_bytes(t, K);
            for (int n = 0; n < Nmax; n++) {
                rn_quantize_row(t, Wf + (size_t)n * Kmax, W + n * ws, K);
                rn_dequantize_row(t, W + n * ws, Wd + (size_t)n * K, K);
            }
            for (int m = 0; m < Mmax; m++) {
                rn_quantize_row(RN_WTYPE_Q8_0, X + (size_t)m * ldx, xb, K);
                rn_dequantize_row(RN_WTYPE_Q8_0, xb, Xh + (size_t)m * K, K);
            }
            for (size_t in = 0; in < sizeof Ns / sizeof *Ns; in++)
                for (size_t im = 0; im < sizeof Ms / sizeof *Ms; im++) {
                    int M = Ms[im], N = Ns[in];
                    ref64(M, N, K, Xh, K, Wd, Yq, Yqa);
                    ref64(M, N, K, X, ldx, Wd, Yf, Yfa);
                    for (int acc = 0; acc < 2; acc++) {
                        for (int i = 0; i < Mmax * ldy; i++) Y[i] = Yr[i] = (float)(i % 3);
                        rn_matmul_w_x8(M, N, K, X, ldx, W, t, ws, Y, ldy, acc);
                        rni_matmul_w_x8_ref(M, N, K, X, ldx, W, t, ws, Yr, ldy, acc);
                        for (int m = 0; m < M; m++)
                            for (int n = 0; n < N; n++) {
                                int i = m * ldy + n;
                                double base = acc ? (float)(i % 3) : 0, tol = 1e-5 * (Yqa[m * N + n] + base);
                                double want = Yq[m * N + n];
                                bad += fabs(Y[i] - base - want) > tol || fabs(Yr[i] - base - want) > tol;
                                /* the bound against float activations */
                                double bound = 0;
                                for (int k = 0; k < K; k++)
                                    bound += fabs(Wd[(size_t)n * K + k]) * fabs(X[(size_t)m * ldx + k] - Xh[(size_t)m * K + k]);
                                double dev = fabs(Y[i] - base - Yf[m * N + n]);
                                bad_bound += dev > bound + tol + 1e-5 * Yfa[m * N + n];
                                if (!acc) {
                                    worst_rel = fmax(worst_rel, dev / Yfa[m * N + n]);
                                    se += dev * dev;
                                    sy += Yf[m * N + n] * Yf[m * N + n];
                                }
                            }
                    }
                }
        }
    CHECK(bad == 0, "x8 kernels: %d outputs off the product with quantised X", bad);
    CHECK(bad_bound == 0, "x8 kernels: %d outputs beyond the activation-rounding bound", bad_bound);
    printf("x8 (activations as q8_0): off the float-activation product by %.2e rms relative, worst %.2e of sum |xw|\n",
           sqrt(se / sy), worst_rel);
    free(X); free(Xh); free(Wf); free(Wd); free(Y); free(Yr); free(Yq); free(Yqa); free(Yf); free(Yfa); free(W);
}

/* A product large enough to be split across threads gives the same bits
 * on one thread. */
static void test_threads(void) {
    enum { N = 301, K = 1024, M = 4 };
    rn_rng r;
    rn_rng_seed(&r, 9);
    float *X = malloc(sizeof(float) * M * K), *Wf = malloc(sizeof(float) * (size_t)N * K);
    float *Y1 = malloc(sizeof(float) * M * N), *Y2 = malloc(sizeof(float) * M * N);
    unsigned char *W = malloc((size_t)N * K * 4);
    fill(&r, X, (size_t)M * K, 0);
    fill(&r, Wf, (size_t)N * K, 0);
    int saved = rn_get_threads();
    for (int t = 0; t < RN_WTYPE_COUNT; t++) {
        size_t ws = rn_wtype_row_bytes(t, K);
        for (int n = 0; n < N; n++) rn_quantize_row(t, Wf + (size_t)n * K, W + n * ws, K);
        for (int m = 1; m <= M; m += 3) {
            rn_set_threads(1);
            rn_matmul_w(m, N, K, X, K, W, t, ws, Y1, N, 0);
            rn_set_threads(2);
            rn_matmul_w(m, N, K, X, K, W, t, ws, Y2, N, 0);
            CHECK(memcmp(Y1, Y2, sizeof(float) * m * N) == 0, "%s M %d: one thread and two differ", rn_wtype_name(t), m);
            rn_set_threads(1);
            rn_matmul_w_x8(m, N, K, X, K, W, t, ws, Y1, N, 0);
            rn_set_threads(2);
            rn_matmul_w_x8(m, N, K, X, K, W, t, ws, Y2, N, 0);
            CHECK(memcmp(Y1, Y2, sizeof(float) * m * N) == 0, "x8 %s M %d: one thread and two differ", rn_wtype_name(t), m);
        }
    }
    rn_set_threads(saved);
    free(X); free(Wf); free(Y1); free(Y2); free(W);
}


/* Activations quantised by the int8 kernels' own code (vector code at
 * the AVX-512 levels) are rn_quantize_row's bits: random blocks, exact
 * ties of roundf (k + 1/2 steps, away from zero), zeros, subnormals. */
static void test_act_quant(void) {
    rn_rng r;
    rn_rng_seed(&r, 12);
    float x[RN_QK];
    int bad = 0;
    for (int it = 0; it < 20000; it++) {
        int kind = it % 4;
        for (int j = 0; j < RN_QK; j++) {
            double u = rn_rng_uniform(&r) * 2 - 1;
            x[j] = kind == 0 ? (float)(u * 3)
                 : kind == 1 ? (float)((int)(u * 126) + (u < 0 ? -0.5 : 0.5))  /* ties at d = 1 */
                 : kind == 2 ? (float)(u * 1e-40)                               /* subnormal */
                 : (float)(j % 3 ? 0 : u);
        }
        if (kind == 1) x[7] = 127;  /* amax 127: d = 1, x / d the ties themselves */
        rni_block_q8_0 a, b;
        rni_quantize_act_q8_0(x, &a);
        rn_quantize_row(RN_WTYPE_Q8_0, x, &b, RN_QK);
        bad += memcmp(&a, &b, sizeof a) != 0;
    }
    CHECK(bad == 0, "activation quantisation: %d of 20000 blocks differ from rn_quantize_row", bad);
}

#ifndef RETNET_DOUBLE
/* The model's products (rni_linear_forward) give a row the same bits
 * alone as among up to 64 rows, at every type, float or int8 activations:
 * what batched decoding promises (test_batch checks it on models). */
static void test_rows_alone(void) {
    enum { N = 61, K = 1024, M = RNI_BATCH_M };
    rn_rng r;
    rn_rng_seed(&r, 11);
    float *X = malloc(sizeof(float) * M * K), *Wf = malloc(sizeof(float) * (size_t)N * K);
    float *Y = malloc(sizeof(float) * M * N), *Y1 = malloc(sizeof(float) * N);
    unsigned char *W = malloc((size_t)N * K * 4);
    fill(&r, X, (size_t)M * K, 0);
    fill(&r, Wf, (size_t)N * K, 1);
    int bad = 0;
    for (int t = 1; t < RN_WTYPE_COUNT; t++) {  /* f32: rni_gemm (ops.c) */
        rni_wmat w = {W, (rn_wtype)t, rn_wtype_row_bytes(t, K), 0, NULL};
        for (int n = 0; n < N; n++) rn_quantize_row(t, Wf + (size_t)n * K, W + n * w.stride, K);
        for (int x8 = 0; x8 < 2; x8++)
            for (int rows = 13; rows <= M; rows += M - 13) {
                rni_linear_forward(&w, rows, N, K, X, K, Y, N, 0, x8);
                for (int m = 0; m < rows; m++) {
                    rni_linear_forward(&w, 1, N, K, X + (size_t)m * K, K, Y1, N, 0, x8);
                    bad += memcmp(Y1, Y + (size_t)m * N, sizeof(float) * N) != 0;
                }
            }
    }
    CHECK(bad == 0, "%d rows differ alone and in a batch", bad);
    free(X); free(Wf); free(Y); free(Y1); free(W);
}
#endif

/* ------------------------------------------------------ quantised models */

static char tmpdir[256];

static const char *tp(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static const char *tp(const char *fmt, ...) {
    static char ring[8][512];
    static int k;
    char *b = ring[k++ & 7], name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    snprintf(b, 512, "%s/%s", tmpdir, name);
    return b;
}

/* The logits (T, V) of tokens from a fresh state. */
static rn_real *logits_of(rn_model *m, const int32_t *tok, int T, rn_mode mode, int chunk) {
    int V = rn_model_config(m)->vocab;
    rn_real *l = malloc(sizeof(rn_real) * (size_t)T * V);
    rn_state *s = NULL;
    if (!l || rn_state_create(m, 1, &s) != RN_OK) exit(1);
    if (mode == RN_RECURRENT) {  /* token by token, as decoding does */
        for (int t = 0; t < T; t++)
            if (rn_forward(m, s, tok + t, 1, 1, RN_RECURRENT, 1, 0, l + (size_t)t * V) != RN_OK) {
                fprintf(stderr, "forward: %s\n", rn_last_error());
                exit(1);
            }
    } else if (rn_forward(m, s, tok, 1, T, mode, chunk, 0, l) != RN_OK) {
        fprintf(stderr, "forward: %s\n", rn_last_error());
        exit(1);
    }
    rn_state_free(s);
    return l;
}

static double max_abs(const rn_real *a, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs(a[i]));
    return m;
}

static double max_diff(const rn_real *a, const rn_real *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - b[i]));
    return m;
}

/* Relative differences allowed: float32 rounding through the layers (the
 * paradigms sum in other orders), and the int8-activation path of decoding
 * from q8_0 / q4_0 (each product off by up to sum |w| |x - xq|; measured
 * 0.5-2% of the largest logit on these models, so 5% fails only on a
 * real fault). */
#define TOL_F32 2e-5
#define TOL_X8 5e-2

static void test_models(void) {
    const rn_wtype types[] = {RN_WTYPE_BF16, RN_WTYPE_F16, RN_WTYPE_Q8_0, RN_WTYPE_Q4_0};
    enum { T = 23 };
    int32_t tok[T];
    double worst_x8 = 0;
    for (int p = 0; p < RN_PRESET_COUNT; p++) {
        rn_model *a = make_model((rn_preset)p, 64, 2, 128, 2, 96, 11 + p);
        random_tokens(tok, T, 96, 5 + p);
        const char *f32 = tp("m%d.safetensors", p);
        CHECK_OK(rn_model_save(a, f32));
        for (size_t ti = 0; ti < sizeof types / sizeof *types; ti++) {
            rn_wtype t = types[ti];
            for (unsigned flags = 0; flags < 2; flags++) {
                const char *qp = tp("m%d-%s-%u.safetensors", p, rn_wtype_name(t), flags);
                CHECK(rn_model_quantize(a, qp, t, flags ? RN_QUANT_KEEP_HEAD : 0) == RN_OK, "quantize %s: %s",
                      rn_wtype_name(t), rn_last_error());
                rn_model *q = NULL, *dq = NULL;
                CHECK(rn_model_load(qp, &q) == RN_OK && rn_model_load(qp, &dq) == RN_OK, "load %s: %s", qp, rn_last_error());
                if (!q || !dq) { rn_model_free(q); rn_model_free(dq); continue; }
                rn_model_info info;
                CHECK_OK(rn_model_inspect(qp, &info));
#ifdef RETNET_DOUBLE
                CHECK(!rn_model_quantized(q) && !info.in_place, "float64: a quantised file is dequantised on load");
#else
                /* the seed's f32 head is stored transposed (kept with --keep-head): it is
                 * copied, the typed tensors still read in place */
                int want_in_place = !(p == RN_PRESET_SEED && flags);
                CHECK(info.in_place == want_in_place, "%s: in place %d, want %d", qp, info.in_place, want_in_place);
                CHECK(want_in_place ? info.copy_bytes == 0 : info.copy_bytes >= sizeof(float) * 96 * 64,
                      "%s: %zu bytes copied", qp, info.copy_bytes);
                CHECK(rn_model_quantized(q), "%s: not quantised", qp);
                CHECK(info.wtype_tensors[t] > 0 && rn_model_decode_bytes(q) == info.decode_bytes,
                      "%s: %d tensors of %s, %zu decode bytes (inspect %zu)", qp, info.wtype_tensors[t],
                      rn_wtype_name(t), rn_model_decode_bytes(q), info.decode_bytes);
                for (int i = 0; i < rn_model_num_tensors(q); i++) {
                    rn_tensor_desc d;
                    CHECK_OK(rn_model_tensor(q, i, &d));
                    int proj = d.cols > 1 && !(flags && !strcmp(d.kind, "lm_head")) &&
                               !(flags && rn_model_config(q)->tie_embed && !strcmp(d.kind, "embed"));
                    if (d.wtype != (proj ? t : RN_WTYPE_F32)) {
                        CHECK(0, "%s: tensor %s (layer %d) is %s", qp, d.kind, d.layer, rn_wtype_name(d.wtype));
                        break;
                    }
                }
#endif
                CHECK(rn_model_params(dq) != NULL && !rn_model_quantized(dq), "dequantise: %s", rn_last_error());
                size_t n = (size_t)T * 96;
                rn_real *ref = logits_of(dq, tok, T, RN_PARALLEL, T), *ref_rec = logits_of(dq, tok, T, RN_RECURRENT, 1);
                double scale = max_abs(ref, n);
                rn_model_set_int8_activations(q, 0);
                rn_real *lp = logits_of(q, tok, T, RN_PARALLEL, T), *lc = logits_of(q, tok, T, RN_CHUNKWISE, 5),
                        *lr = logits_of(q, tok, T, RN_RECURRENT, 1);
                double dpc = max_diff(lp, lc, n) / scale, dpr = max_diff(lp, lr, n) / scale;
                double dref = max_diff(lp, ref, n) / scale, drec = max_diff(lr, ref_rec, n) / scale;
                CHECK(dpc <= TOL_F32 && dpr <= TOL_F32, "%s %s: paradigms differ by %.2e (chunkwise), %.2e (recurrent)",
                      rn_preset_name((rn_preset)p), qp, dpc, dpr);
                CHECK(dref <= TOL_F32 && drec <= TOL_F32, "%s: off the dequantised model by %.2e (parallel), %.2e (recurrent)",
                      qp, dref, drec);
                rn_model_set_int8_activations(q, 1);
                rn_real *lx = logits_of(q, tok, T, RN_RECURRENT, 1);
                double dx = max_diff(lx, ref_rec, n) / scale;
                if (t == RN_WTYPE_Q8_0 || t == RN_WTYPE_Q4_0) worst_x8 = fmax(worst_x8, dx);
                CHECK(dx <= ((t == RN_WTYPE_Q8_0 || t == RN_WTYPE_Q4_0) ? TOL_X8 : TOL_F32),
                      "%s: int8-activation decoding off the dequantised model by %.2e of the largest logit", qp, dx);
                /* training and gradients refuse it; made f32, it is the dequantised model */
                rn_train_config tc;
                rn_train_config_default(&tc);
                rn_trainer *tr = NULL;
#ifndef RETNET_DOUBLE
                double loss;
                int cnt;
                int blocks = t == RN_WTYPE_Q8_0 || t == RN_WTYPE_Q4_0;
                CHECK(rn_trainer_create(q, &tc, &tr) == RN_ERR_ARG &&
                          strstr(rn_last_error(), blocks ? "quantised" : "RN_LOAD_F32"),
                      "training a quantised model: %s", rn_last_error());
                CHECK(rn_model_loss_grad(q, tok, tok, 1, T, RN_PARALLEL, T, 1, NULL, &loss, &cnt) == RN_ERR_ARG,
                      "gradients of a quantised model are refused");
                /* loaded with RN_LOAD_F32: bf16 / f16 widened (then it trains), q8_0 / q4_0 kept */
                rn_model *w = NULL;
                CHECK_OK(rn_model_load_flags(qp, RN_LOAD_F32, &w, NULL));
                if (w) {
                    CHECK(rn_model_quantized(w) == blocks, "%s with RN_LOAD_F32: quantised %d", qp, rn_model_quantized(w));
                    rn_trainer *tw = NULL;
                    CHECK((rn_trainer_create(w, &tc, &tw) == RN_OK) == !blocks, "%s with RN_LOAD_F32: training: %s", qp,
                          rn_last_error());
                    rn_trainer_free(tw);
                    rn_model_free(w);
                }
#endif
                rn_trainer_free(tr);
                CHECK(rn_model_params(q) != NULL && !rn_model_quantized(q), "materialise: %s", rn_last_error());
                rn_real *lm = logits_of(q, tok, T, RN_PARALLEL, T);
                CHECK(memcmp(lm, ref, sizeof(rn_real) * n) == 0, "%s: materialised, not the dequantised model", qp);
                free(ref); free(ref_rec); free(lp); free(lc); free(lr); free(lx); free(lm);
                rn_model_free(q);
                rn_model_free(dq);
            }
        }
        rn_model_free(a);
    }
    printf("quantised models: int8-activation decoding off the dequantised model by at most %.2e of the largest logit\n",
           worst_x8);
    /* widths that are not whole blocks: refused for q8_0 / q4_0, fine for bf16 */
    rn_model *odd = make_model(RN_PRESET_TORCHSCALE, 48, 2, 96, 1, 50, 3);
    CHECK(rn_model_quantize(odd, tp("odd.safetensors"), RN_WTYPE_Q8_0, 0) == RN_ERR_ARG &&
              strstr(rn_last_error(), "not a multiple of 32") && strstr(rn_last_error(), "embed"),
          "odd widths: %s", rn_last_error());
    CHECK(access(tp("odd.safetensors"), F_OK) != 0, "a refused quantisation left a file");
    CHECK(rn_model_quantize(odd, tp("odd.safetensors"), RN_WTYPE_BF16, 0) == RN_OK, "odd widths bf16: %s", rn_last_error());
    rn_model_free(odd);
}

/* The bytes of a file; exits on error. */
static unsigned char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) exit(1);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    rewind(f);
    unsigned char *b = malloc(*len + 1);
    if (!b || fread(b, 1, *len, f) != *len) exit(1);
    fclose(f);
    return b;
}

static void spit(const char *path, const unsigned char *b, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(b, 1, len, f) != len) exit(1);
    fclose(f);
}

/* The first occurrence of s in b (len), or NULL. */
static unsigned char *find(unsigned char *b, size_t len, const char *s) {
    size_t k = strlen(s);
    for (size_t i = 0; i + k <= len; i++)
        if (!memcmp(b + i, s, k)) return b + i;
    return NULL;
}

/* Loading a damaged quantised file fails with one message naming the
 * tensor. The data checksum is disabled first (its key renamed, the
 * header keeps its length), so the damage reaches the checks behind it. */
static void test_bad_files(void) {
    rn_model *a = make_model(RN_PRESET_TORCHSCALE, 64, 2, 128, 1, 64, 9);
    const char *qp = tp("bad.safetensors"), *out = tp("bad-x.safetensors");
    CHECK_OK(rn_model_quantize(a, qp, RN_WTYPE_Q8_0, 0));
    rn_model_free(a);
    size_t len;
    unsigned char *orig = slurp(qp, &len);
    const char *name = "layers.0.ffn.fc1.weight";  /* torchscale's name of fc1 */
    struct { const char *what, *from, *to, *want; int nan_scale; size_t cut; } cases[] = {
        {"unknown type", "\"q8_0 [", "\"q5_0 [", "unknown weight type 'q5_0'", 0, 0},
        {"block count", "\"q8_0 [", "\"q4_0 [", "block count disagrees", 0, 0},
        {"logical shape", "q8_0 [128, 64]", "q8_0 [128, 96]", "config needs [128, 64]", 0, 0},
        {"no type", "\"wtype.layers.0.ffn.fc1", "\"wtypX.layers.0.ffn.fc1", "is U8 but __metadata__ has no", 0, 0},
        {"NaN scale", NULL, NULL, "non-finite scale", 1, 0},
        {"truncated", NULL, NULL, "truncated", 0, 100},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        unsigned char *b = malloc(len);
        memcpy(b, orig, len);
        unsigned char *sum = find(b, len, "checksum_xxh3");
        CHECK(sum != NULL, "no checksum key");
        if (sum) sum[9] = 'X';
        char key[160];
        snprintf(key, sizeof key, "\"wtype.%s\":", name);
        unsigned char *k = find(b, len, key);
        CHECK(k != NULL, "%s: no metadata key %s", cases[c].what, key);
        if (!k) { free(b); continue; }
        if (cases[c].from) {
            unsigned char *at = find(cases[c].from[1] == 'w' ? b : k, len - (size_t)((cases[c].from[1] == 'w' ? b : k) - b),
                                     cases[c].from);
            CHECK(at != NULL, "%s: '%s' not in the header", cases[c].what, cases[c].from);
            if (at) memcpy(at, cases[c].to, strlen(cases[c].to));
        }
        if (cases[c].nan_scale) {  /* the first block of fc1: its data offset from the header */
            char ent[160];
            snprintf(ent, sizeof ent, "\"%s\":{\"dtype\":\"U8\"", name);
            unsigned char *e = find(b, len, ent);
            unsigned char *of = e ? find(e, len - (size_t)(e - b), "\"data_offsets\":[") : NULL;
            uint64_t hl = 0;
            for (int i = 7; i >= 0; i--) hl = (hl << 8) | b[i];
            CHECK(of != NULL, "NaN scale: no entry for %s", name);
            if (of) {
                size_t begin = strtoull((char *)of + 16, NULL, 10);
                b[8 + hl + begin] = 0x00;
                b[8 + hl + begin + 1] = 0x7e;  /* f16 NaN */
            }
        }
        spit(out, b, len - cases[c].cut);
        rn_model *m = NULL;
        rn_status st = rn_model_load(out, &m);
        const char *msg = rn_last_error();
        CHECK(st == RN_ERR_FORMAT && strstr(msg, cases[c].want) && (cases[c].cut || strstr(msg, name)) && !strchr(msg, '\n'),
              "%s: status %d, '%s'", cases[c].what, (int)st, msg);
        rn_model_free(m);
        free(b);
    }
    free(orig);
}

/* Quantise -> dequantise of trained weights stays within each format's
 * bound (trained weights have outliers random ones lack). */
static void test_trained_round_trip(void) {
    rn_model *m = make_model(RN_PRESET_TORCHSCALE, 64, 2, 128, 2, 64, 21);
    rn_train_config tc;
    rn_train_config_default(&tc);
    tc.batch = 4;
    tc.seq = 32;
    tc.accum = 1;
    tc.steps = 40;
    tc.warmup = 4;
    tc.lr = 3e-3;
    rn_trainer *tr;
    CHECK_OK(rn_trainer_create(m, &tc, &tr));
    enum { B = 4, T = 32 };
    int32_t x[B * T], y[B * T];
    for (int s = 0; s < tc.steps; s++) {
        for (int i = 0; i < B * T; i++) x[i] = (int32_t)((i * 7 + s * 3 + (i / 5) % 11) % 64);  /* a learnable pattern */
        for (int i = 0; i < B * T; i++) y[i] = i % T == T - 1 ? -1 : x[i + 1];
        rn_step_info si;
        CHECK_OK(rn_trainer_step(tr, x, y, &si));
    }
    rn_trainer_free(tr);
    double worst[3] = {0, 0, 0};
    int bad = 0, rows = 0;
    float row[256];
    for (int i = 0; i < rn_model_num_tensors(m); i++) {
        rn_tensor_desc d;
        CHECK_OK(rn_model_tensor(m, i, &d));
        if (d.cols < 32 || d.cols % 32) continue;
        const rn_real *p = rn_model_params(m);
        size_t off = 0;  /* the tensor's offset: the sum of those before it */
        for (int j = 0; j < i; j++) {
            rn_tensor_desc e;
            rn_model_tensor(m, j, &e);
            off += (size_t)e.rows * e.cols;
        }
        for (int r = 0; r < d.rows; r++, rows++) {
            for (int c = 0; c < d.cols; c++) row[c] = (float)p[off + (size_t)r * d.cols + c];
            for (int t = 0; t < RN_WTYPE_COUNT; t++) bad += row_beyond_bound((rn_wtype)t, row, d.cols, worst);
        }
    }
    CHECK(bad == 0 && rows > 500, "trained weights: %d beyond their bound (%d rows)", bad, rows);
    printf("trained weights (%d rows), worst error over the block scale: q8_0 %.3f d, q4_0 %.3f d (clamped %.3f d)\n",
           rows, worst[0], worst[1], worst[2]);
    rn_model_free(m);
}

int main(void) {
    test_f16();
    test_bf16();
    test_known_blocks();
    test_nonfinite_blocks();
    test_round_trip();
    /* every kernel level this build and CPU have: AMX, AVX-512, AVX2, scalar */
    static const char *const level_names[] = {"scalar", "AVX2+FMA", "AVX-512+VNNI", "AMX (int8), AVX-512"};
    for (int level = rni_matmul_w_set_simd(3); level >= 0; level--) {
        if (rni_matmul_w_set_simd(level) != level) continue;
        printf("-- kernels: %s\n", level_names[level]);
        test_act_quant();
        test_kernels();
        test_x8();
        test_threads();
#ifndef RETNET_DOUBLE
        test_rows_alone();
#endif
    }
    rni_matmul_w_set_simd(3);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/retnet_test_quant.XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    test_models();
    test_bad_files();
    test_trained_round_trip();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    (void)f_bits;
    CHECK_DONE();
}
