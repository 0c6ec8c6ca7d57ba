/* bench_batch.c (CLI): `retnet bench --case batch`: continuous batching as
 * `retnet serve` runs it. B streams, each at its own position, advance
 * together by one token per rn_forward (B token rows through each
 * projection as one matrix product); the figure is generated tokens/s
 * against one stream in the same run (best of interleaved rounds, so a
 * loaded machine moves every B alike), in wall time and per CPU second
 * (what the process got of a shared machine). The limit, measured in the
 * same run: a step of B rows cannot take less than B tokens' multiply-adds
 * at this core's FMA peak, nor less than one stream's step (which reads
 * all the weights); the bound column is B t_1 / max(t_1, B madds / peak),
 * per CPU second. Memory per stream is its state, checked not to grow:
 * resident memory before and after the batch runs thousands of positions
 * further. */
#define _POSIX_C_SOURCE 200809L
#include "bench_batch.h"
#include "common.h"
#include "retnet.h"
#include "util.h"

#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double rss_kb(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    double kb = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %lf", &kb) == 1) break;
    if (f) fclose(f);
    return kb;
}

double bench_fma_madds(double (*clock)(void)) {
    double best = 0;
    for (int r = 0; r < 3; r++) {
        const long iters = 4000000;
        double c0 = clock(), lanes = 0;
        float f[16] = {0};
#if defined(__AVX512F__)
        __m512 a[12], m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
        for (int j = 0; j < 12; j++) a[j] = _mm512_set1_ps((float)j);
        for (long i = 0; i < iters; i++)
            for (int j = 0; j < 12; j++) a[j] = _mm512_fmadd_ps(a[j], m, c);
        for (int j = 1; j < 12; j++) a[0] = _mm512_add_ps(a[0], a[j]);
        _mm512_storeu_ps(f, a[0]);
        lanes = 16;
#elif defined(__AVX2__) && defined(__FMA__)
        __m256 a[12], m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
        for (int j = 0; j < 12; j++) a[j] = _mm256_set1_ps((float)j);
        for (long i = 0; i < iters; i++)
            for (int j = 0; j < 12; j++) a[j] = _mm256_fmadd_ps(a[j], m, c);
        for (int j = 1; j < 12; j++) a[0] = _mm256_add_ps(a[0], a[j]);
        _mm256_storeu_ps(f, a[0]);
        lanes = 8;
#endif
        double t = clock() - c0, g = lanes * 12 * iters / t;
        if (f[0] == 42) fputc(' ', stderr); /* keeps the loop */
        if (g > best) best = g;
    }
    return best;
}

/* Multiply-adds per CPU second of one thread at the model's precision
 * (float64: half the lanes). */
static double fma_peak_madds(void) {
    double best = bench_fma_madds(cpu_seconds);
    return sizeof(rn_real) == 4 ? best : best / 2;
}

/* The library's panel-packed product (internal, src/ops.h): what a batched
 * step of a loaded f32 model runs. */
size_t rni_panel_size(int N, int K);
void rni_panel_pack(const rn_real *W, size_t ldw, int N, int K, rn_real *pk);
void rni_panel_gemm(int M, int N, int K, const rn_real *x, int ldx, const rn_real *pk, rn_real *y, int ldy,
                    int accumulate);

/* Multiply-adds per second of the few-row product alone for B rows over
 * the model's layer shapes (x W^T for W of (2d + 2v) x d, d x v, f x d,
 * d x f, layers copies): the fastest of many passes, each over every
 * layer's four products, so passes a shared machine interrupts drop out. */
static double rows_rate(const rn_config *c, int B, int threads) {
    int d = c->dim, v = c->value_dim, f = c->ffn_dim, L = c->layers;
    int N[4] = {2 * d + 2 * v, d, f, d}, K[4] = {d, v, d, f};
    size_t per = 0, amax = 0;
    for (int p = 0; p < 4; p++) {
        per += (size_t)N[p] * K[p];
        if ((size_t)B * (N[p] > K[p] ? N[p] : K[p]) > amax) amax = (size_t)B * (N[p] > K[p] ? N[p] : K[p]);
    }
    rn_real *W = malloc(sizeof(rn_real) * per * L), *A = malloc(sizeof(rn_real) * amax), *C = malloc(sizeof(rn_real) * amax);
    if (!W || !A || !C) die("out of memory");
    for (size_t i = 0; i < per * L; i++) W[i] = (rn_real)((i * 7919) % 255) / 255 - (rn_real)0.5;
    size_t packed = 0;
    for (int p = 0; p < 4; p++) packed += rni_panel_size(N[p], K[p]);
    rn_real *pk = malloc(sizeof(rn_real) * packed * L);
    if (!pk) die("out of memory");
    rn_real *q = pk;
    const rn_real *wl = W;
    for (int l = 0; l < L; l++)
        for (int p = 0; p < 4; p++) {
            rni_panel_pack(wl, K[p], N[p], K[p], q);
            wl += (size_t)N[p] * K[p];
            q += rni_panel_size(N[p], K[p]);
        }
    for (size_t i = 0; i < amax; i++) A[i] = (rn_real)((i * 31) % 97) / 97 - (rn_real)0.5;
    int saved = rn_get_threads();
    rn_set_threads(threads);
    double best = 1e30;
    for (int pass = 0; pass < 400; pass++) {
        double t0 = now_seconds();
        const rn_real *w = pk;
        for (int l = 0; l < L; l++)
            for (int p = 0; p < 4; p++) {
                rni_panel_gemm(B, N[p], K[p], A, K[p], w, C, N[p], p & 1);
                w += rni_panel_size(N[p], K[p]);
            }
        double t = now_seconds() - t0;
        if (t < best) best = t;
    }
    rn_set_threads(saved);
    free(W); free(pk); free(A); free(C);
    return (double)B * per * L / best;
}

/* A batch of B streams whose row b was prefilled with 5 + 13 b tokens. */
static rn_state *staggered(rn_model *m, int B, int32_t *buf) {
    rn_state *s, *one;
    if (rn_state_create(m, B, &s) != RN_OK || rn_state_create(m, 1, &one) != RN_OK) die("%s", rn_last_error());
    for (int b = 0; b < B; b++) {
        rn_state_reset(one);
        if (rn_forward(m, one, buf, 1, 5 + 13 * b, RN_CHUNKWISE, 64, RN_FWD_LAST_ONLY, NULL) != RN_OK ||
            rn_state_copy_row(s, b, one, 0) != RN_OK)
            die("%s", rn_last_error());
    }
    rn_state_free(one);
    return s;
}

static void batch_size(const char *size, double peak, int quick) {
    rn_config c = {0};
    if (rn_config_preset(&c, RN_PRESET_TORCHSCALE, size) != RN_OK) die("%s", rn_last_error());
    c.vocab = 256;
    rn_model *made;
    if (rn_model_create(&c, &made) != RN_OK || rn_model_init_random(made, 1) != RN_OK) die("%s", rn_last_error());
    rn_model *m = model_reloaded_or_die(made);  /* as `retnet serve` holds it */
    enum { NB = 4, MAXB = 64 };
    const int Bs[NB] = {1, 4, 16, 64};
    int32_t buf[5 + 13 * MAXB], tok[MAXB];
    for (int i = 0; i < (int)(sizeof buf / sizeof *buf); i++) buf[i] = (i * 7919) % 256;
    rn_real *logits = malloc(sizeof(rn_real) * MAXB * 256);
    if (!logits) die("out of memory");
    rn_state *st[NB];
    for (int i = 0; i < NB; i++) st[i] = staggered(m, Bs[i], buf);
    for (int b = 0; b < MAXB; b++) tok[b] = (b * 31) % 256;
    double wall[NB], cpu[NB];
    for (int i = 0; i < NB; i++) wall[i] = cpu[i] = 1e30;
    int rounds = quick ? 5 : 15;
    for (int r = 0; r < rounds; r++)
        for (int i = 0; i < NB; i++) {
            int B = Bs[i], steps = (quick ? 256 : 1024) / B + 4;
            double t0 = now_seconds(), c0 = cpu_seconds();
            for (int k = 0; k < steps; k++)
                if (rn_forward(m, st[i], tok, B, 1, RN_RECURRENT, 1, RN_FWD_LAST_ONLY, logits) != RN_OK)
                    die("%s", rn_last_error());
            double w = (now_seconds() - t0) / steps / B, cp = (cpu_seconds() - c0) / steps / B;
            if (w < wall[i]) wall[i] = w;
            if (cp < cpu[i]) cpu[i] = cp;
        }
    size_t kdv = (size_t)(c.dim / c.heads) * (c.value_dim / c.heads);
    size_t state = (size_t)c.layers * c.heads * kdv * sizeof(rn_real);
    /* a token's multiply-adds: every weight but the embedding's, and the
     * state's update and read */
    double madds = (double)rn_model_num_params(m) - (double)c.vocab * c.dim + 2.0 * c.layers * c.heads * kdv;
    printf("\n## continuous batching (torchscale %s, %.1f MB of weights; streams at different positions)\n\n", size,
           rn_model_num_params(m) * sizeof(rn_real) / 1e6);
    printf("FMA peak of one thread now: %.1f G multiply-adds per CPU second; %.2f M per token\n\n", peak / 1e9,
           madds / 1e6);
    printf("| streams | tokens/s | x one stream | tokens per CPU second | x one stream | bound: x one stream |\n"
           "|---|---|---|---|---|---|\n");
    for (int i = 0; i < NB; i++) {
        double t_min = Bs[i] * madds / peak, bound = peak > 0 ? Bs[i] * cpu[0] / (t_min > cpu[0] ? t_min : cpu[0]) : 0;
        printf("| %d | %.0f | %.2f | %.0f | %.2f | %.2f |\n", Bs[i], 1 / wall[i], wall[0] / wall[i], 1 / cpu[i],
               cpu[0] / cpu[i], bound);
    }
    /* the kernel alone: how near the peak the products run, where the
     * batch's step spends the rest */
    int th = rn_get_threads();
    printf("\nthe few-row product alone (the layers' four shapes, fastest of 400 passes): 1 row %.1f G, 16 rows %.1f G "
           "multiply-adds/s on 1 thread (%.2f of the FMA peak)", rows_rate(&c, 1, 1) / 1e9, rows_rate(&c, 16, 1) / 1e9,
           rows_rate(&c, 16, 1) / peak);
    if (th > 1) printf("; 1 row %.1f G, 16 rows %.1f G on %d threads", rows_rate(&c, 1, th) / 1e9, rows_rate(&c, 16, th) / 1e9, th);
    printf("\n");
    /* the state is all a stream keeps: thousands of positions later, no growth */
    double r0 = rss_kb();
    int64_t p0 = rn_state_row_pos(st[2], 0);
    for (int k = 0; k < (quick ? 1000 : 4000); k++)
        if (rn_forward(m, st[2], tok, Bs[2], 1, RN_RECURRENT, 1, RN_FWD_LAST_ONLY, logits) != RN_OK) die("%s", rn_last_error());
    double r1 = rss_kb();
    printf("\nstate per stream %.1f KiB; 16 streams from position %lld to %lld: resident %.0f -> %.0f kB (%+.0f kB)\n",
           state / 1024.0, (long long)p0, (long long)rn_state_row_pos(st[2], 0), r0, r1, r1 - r0);
    for (int i = 0; i < NB; i++) rn_state_free(st[i]);
    free(logits);
    rn_model_free(m);
}

void bench_batch(int quick) {
    double peak = fma_peak_madds();
    batch_size("small", peak, quick);
    if (!quick) batch_size("demo", peak, quick);
}
