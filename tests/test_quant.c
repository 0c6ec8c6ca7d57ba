/* test_quant.c: typed weights (src/quant.c): f16/bf16 rounding at the bit
 * level, ggml's q8_0/q4_0 layouts on hand-made blocks, round-trip error
 * bounds, and every product kernel against a float64 reference of the same
 * dequantised weights (shapes, strides, accumulate, threads). The kernels
 * are float32 whatever rn_real is, so both builds run all of it. */
#include "check.h"
#include "quant.h"

#include <stdint.h>
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
static void test_round_trip(void) {
    enum { K = 4096 };
    static float x[K], y[K];
    static unsigned char buf[K * 4];
    rn_rng r;
    rn_rng_seed(&r, 7);
    double worst8 = 0, worst4 = 0, worst4c = 0;
    int bad = 0;
    for (int rep = 0; rep < 20; rep++) {
        fill(&r, x, K, rep & 1);
        if (rep == 2) for (int k = 0; k < K; k++) x[k] *= 1e-3f;
        for (int t = 0; t < RN_WTYPE_COUNT; t++) {
            CHECK_OK(rn_quantize_row(t, x, buf, K));
            CHECK_OK(rn_dequantize_row(t, buf, y, K));
            if (t == RN_WTYPE_F32) bad += memcmp(x, y, sizeof x) != 0;
            if (t == RN_WTYPE_BF16 || t == RN_WTYPE_F16)
                for (int k = 0; k < K; k++)
                    bad += y[k] != (t == RN_WTYPE_BF16 ? rni_bf16_to_f32(rni_f32_to_bf16(x[k]))
                                                        : rni_f16_to_f32(rni_f32_to_f16(x[k])));
            if (t < RN_WTYPE_Q8_0) continue;
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
                        if (d16 != 0) worst8 = fmax(worst8, e / fabs(d16));
                    } else if (d != 0 && xb[j] / d > 7.5) {
                        bad += e > fabs(d16) + 8 * dd + slack;
                        worst4c = fmax(worst4c, e / fabs(d16));
                    } else {
                        bad += e > fabs(d16) / 2 + 8 * dd + slack;
                        if (d16 != 0) worst4 = fmax(worst4, e / fabs(d16));
                    }
                }
            }
        }
    }
    CHECK(bad == 0, "round trip: %d weights beyond their bound", bad);
    printf("round trip, worst error over the block scale: q8_0 %.3f d, q4_0 %.3f d (clamped top code %.3f d)\n",
           worst8, worst4, worst4c);
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
    printf("kernels: %d shapes x {=, +=} against float64 (simd kernels: %s)\n", shapes,
           rni_matmul_w_simd() ? "AVX2+FMA" : "scalar");
    free(X); free(Wf); free(Wd); free(Y); free(Yr); free(Y64); free(Ya); free(W);
}

/* rn_matmul_w_x8: X quantised to q8_0. Against float64 with the same
 * quantised X (float32 rounding only), and against the float-activation
 * product within the bound sum_k |w_k| |x_k - xhat_k|. */
static void test_x8(void) {
    static const int Ms[] = {1, 2, 3, 4, 5, 7, 8, 9};
    static const int Ns[] = {1, 13, 24, 37};
    static const int Ks[] = {32, 256, 4096};
    enum { Kmax = 4096, Nmax = 37, Mmax = 9 };
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
                                double want = M <= 8 ? Yq[m * N + n] : Yf[m * N + n];
                                bad += fabs(Y[i] - base - want) > tol || fabs(Yr[i] - base - want) > tol;
                                /* the bound against float activations */
                                double bound = 0;
                                for (int k = 0; k < K; k++)
                                    bound += fabs(Wd[(size_t)n * K + k]) * fabs(X[(size_t)m * ldx + k] - Xh[(size_t)m * K + k]);
                                double dev = fabs(Y[i] - base - Yf[m * N + n]);
                                bad_bound += dev > bound + tol + 1e-5 * Yfa[m * N + n];
                                if (!acc && M <= 8) {
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

int main(void) {
    test_f16();
    test_bf16();
    test_known_blocks();
    test_round_trip();
    test_kernels();
    test_x8();
    test_threads();
    (void)f_bits;
    CHECK_DONE();
}
