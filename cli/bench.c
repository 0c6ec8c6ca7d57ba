/* bench.c (CLI): `retnet bench`. Every figure is printed next to a limit
 * measured in the same run on the same machine with the same threads (BLAS
 * sgemm FLOP/s, streaming-read bandwidth), because absolute times on shared
 * machines drift. */
#define _GNU_SOURCE  /* sysconf(_SC_LEVEL3_CACHE_SIZE) */
#include "args.h"
#include "bench_batch.h"
#include "bench_load.h"
#include "bench_quant.h"
#include "bench_tokenize.h"
#include "cli.h"
#include "common.h"
#include "retnet.h"
#include "util.h"

#include <cblas.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__AVX2__)
#include <immintrin.h>
#endif

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ------------------------------------------------------------- limits */

/* A 1024^3 sgemm as libretnet runs one: BLAS on one thread (libretnet
 * holds it there), each of OpenMP's threads a block of rows. */
static void sgemm_rows(int n, const float *a, const float *b, float *c) {
    int nt = rn_get_threads(), blk = (n + nt - 1) / nt;
#pragma omp parallel for schedule(static) num_threads(nt)
    for (int t = 0; t < nt; t++) {
        int i0 = t * blk, m = n - i0 < blk ? n - i0 : blk;
        if (m > 0) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, n, 1, a + (size_t)i0 * n, n, b, n, 0,
                               c + (size_t)i0 * n, n);
    }
}

/* GFLOP/s of one 1024^3 sgemm (buffers made on first use, kept). */
static double sgemm_once(void) {
    enum { n = 1024 };
    static float *a, *b, *c;
    if (!a) {
        a = malloc(sizeof(float) * n * n); b = malloc(sizeof(float) * n * n); c = malloc(sizeof(float) * n * n);
        if (!a || !b || !c) die("out of memory");
        for (int i = 0; i < n * n; i++) { a[i] = (float)(i % 7) * 0.1f; b[i] = (float)(i % 5) * 0.1f; }
        sgemm_rows(n, a, b, c);  /* warm-up */
    }
    double t0 = now_seconds();
    sgemm_rows(n, a, b, c);
    return 2.0 * n * n * n / (now_seconds() - t0) / 1e9;
}

/* Best-of-n GFLOP/s of a 1024^3 sgemm. */
static double sgemm_gflops(int reps) {
    double best = 0;
    for (int r = 0; r < reps; r++) {
        double g = sgemm_once();
        if (g > best) best = g;
    }
    return best;
}

/* Streaming-read bandwidth (GB/s): every thread sums its contiguous share
 * of a buffer of `bytes` (rounded to whole 256-byte lines of work) with
 * AVX2 loads into eight independent accumulators, so the loop waits on
 * memory only; best of seven passes (the first touches the pages). A
 * buffer of >= 1 GiB is far beyond any cache. The strongest read probe
 * we have: the limit every weight-streaming kernel is held to. */
/* With cpu_gbs set, also the bytes per second of process CPU time of the
 * best pass by that clock (what a loaded machine's time slicing leaves
 * comparable). */
static double bench_read_bandwidth_cpu(size_t bytes, double *cpu_gbs) {
    size_t n = bytes / 256 * 64;  /* floats, a multiple of 64 */
    float *x = aligned_alloc(64, n * sizeof *x);
    if (!x) die("out of memory");
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) x[i] = (float)(i & 7);
    double best = 1e30, best_cpu = 1e30, sink = 0;
    for (int r = 0; r < 7; r++) {
        double t0 = now_seconds(), c0 = cpu_seconds(), s = 0;
#pragma omp parallel reduction(+ : s)
        {
#ifdef _OPENMP
            int nt = omp_get_num_threads(), id = omp_get_thread_num();
#else
            int nt = 1, id = 0;
#endif
            size_t lines = n / 64, l0 = lines * id / nt, l1 = lines * (id + 1) / nt;
#if defined(__AVX2__)
            __m256 a[8];
            for (int j = 0; j < 8; j++) a[j] = _mm256_setzero_ps();
            for (size_t l = l0; l < l1; l++) {
                const float *p = x + l * 64;
                for (int j = 0; j < 8; j++) a[j] = _mm256_add_ps(a[j], _mm256_load_ps(p + 8 * j));
            }
            for (int j = 1; j < 8; j++) a[0] = _mm256_add_ps(a[0], a[j]);
            float f[8];
            _mm256_storeu_ps(f, a[0]);
            for (int j = 0; j < 8; j++) s += f[j];
#else
            float f = 0;
#pragma omp simd reduction(+ : f)
            for (size_t i = l0 * 64; i < l1 * 64; i++) f += x[i];
            s += f;
#endif
        }
        double t = now_seconds() - t0, tc = cpu_seconds() - c0;
        sink += s;
        if (t < best) best = t;
        if (tc < best_cpu) best_cpu = tc;
    }
    free(x);
    if (sink == 42) fputc(' ', stderr);
    if (cpu_gbs) *cpu_gbs = (double)(n * sizeof(float)) / best_cpu / 1e9;
    return (double)(n * sizeof(float)) / best / 1e9;
}

static double bench_read_bandwidth(size_t bytes) { return bench_read_bandwidth_cpu(bytes, NULL); }

/* The probe over 1 GiB, for the cases that sample it between their runs. */
static double read_bandwidth_1g(double *cpu_gbs) { return bench_read_bandwidth_cpu((size_t)1 << 30, cpu_gbs); }

static double rss_mb(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    double kb = 0;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0) kb = atof(line + 6);
    if (f) fclose(f);
    return kb / 1024;
}

/* A model of a named size, or (size NULL) the reference shape:
 * d 256, 4 layers, 4 heads, value 512, ffn 512, vocabulary 256. */
static rn_model *bench_model_dim(const char *preset, const char *size, int dim) {
    rn_config c;
    memset(&c, 0, sizeof c);
    c.vocab = 256;
    rn_preset p;
    if (rn_preset_from_name(preset, &p) != RN_OK || rn_config_preset(&c, p, size) != RN_OK) die("%s", rn_last_error());
    if (!size) { c.dim = dim; c.layers = 4; c.heads = 4; c.value_dim = 2 * dim; c.ffn_dim = 2 * dim; }
    rn_model *m;
    if (rn_model_create(&c, &m) != RN_OK) die("%s", rn_last_error());
    rn_model_init_random(m, 1);
    return m;
}

static rn_model *bench_model(const char *preset, const char *size) { return bench_model_dim(preset, size, 256); }

/* ------------------------------------------------------------ training */

/* Best step of `steps` and, for the ratio, the best sgemm sampled between
 * the steps: both maxima over the same minutes, so a machine that speeds
 * up or slows down during the case moves both. */
typedef struct { double tok_s, gflops, sgemm; } train_result;

static train_result bench_train(rn_model *m, int B, int T, rn_mode mode, int chunk, int steps) {
    rn_train_config tc;
    rn_train_config_default(&tc);
    tc.batch = B; tc.seq = T; tc.mode = mode; tc.chunk = chunk; tc.warmup = 0;
    rn_trainer *t;
    if (rn_trainer_create(m, &tc, &t) != RN_OK) die("%s", rn_last_error());
    int32_t *x = malloc(sizeof(int32_t) * (size_t)B * T), *y = malloc(sizeof(int32_t) * (size_t)B * T);
    if (!x || !y) die("out of memory");
    rn_rng r;
    rn_rng_seed(&r, 1);
    for (size_t i = 0; i < (size_t)B * T; i++) { x[i] = (int32_t)(rn_rng_u64(&r) % 256); y[i] = (int32_t)(rn_rng_u64(&r) % 256); }
    if (rn_trainer_step(t, x, y, NULL) != RN_OK) die("%s", rn_last_error());  /* warm-up: allocation */
    double best = 1e30, peak = sgemm_gflops(3);
    for (int s = 0; s < steps; s++) {
        double g = sgemm_gflops(2);
        if (g > peak) peak = g;
        double t0 = now_seconds();
        if (rn_trainer_step(t, x, y, NULL) != RN_OK) die("%s", rn_last_error());
        double el = now_seconds() - t0;
        if (el < best) best = el;
    }
    free(x); free(y);
    rn_trainer_free(t);
    train_result res = {(double)B * T / best, rn_train_flops(rn_model_config(m), B, T, mode, chunk) / best / 1e9, peak};
    return res;
}

static void section_train(int quick) {
    printf("\n## training: full step (forward, backward, AdamW), %d threads\n\n", rn_get_threads());
    printf("| case | tokens/s | GFLOP/s | sgemm GFLOP/s (same minutes) | / sgemm |\n|---|---|---|---|---|\n");
    struct { const char *name, *size; int dim, B, T, chunk; } cases[] = {
        {"torchscale d256 L4 H4 v512 f512, seq 256, batch 8", NULL, 256, 8, 256, 0},
        {"torchscale d128 L4 H4 v256 f256, seq 64, batch 12 (nanoGPT's size)", NULL, 128, 12, 64, 0},
        {"torchscale base, seq 512, batch 4", "base", 0, 4, 512, 0},
        {"torchscale d256 L4, chunkwise seq 8192 (chunk 256), batch 1", NULL, 256, 1, 8192, 256},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        if (quick && i == 2) continue;
        rn_model *m = bench_model_dim("torchscale", cases[i].size, cases[i].dim);
        /* a small step is short: more of them for the best */
        int steps = (quick ? 2 : 10) * (cases[i].dim == 128 ? 8 : 1);
        train_result r = bench_train(m, cases[i].B, cases[i].T, cases[i].chunk ? RN_CHUNKWISE : RN_PARALLEL,
                                     cases[i].chunk, steps);
        printf("| %s | %.0f | %.1f | %.1f | %.2f |\n", cases[i].name, r.tok_s, r.gflops, r.sgemm, r.gflops / r.sgemm);
        fflush(stdout);
        rn_model_free(m);
    }
}

static void section_scaling(int quick) {
    printf("\n## scaling: training time per token against sequence length (torchscale small, chunk 128)\n\n");
    printf("| T | chunkwise us/token | parallel us/token |\n|---|---|---|\n");
    int Ts[3] = {1024, 4096, 16384};
    rn_model *m = bench_model("torchscale", "small");
    double base_c = 0, base_p = 0;
    for (int i = 0; i < 3; i++) {
        int T = Ts[i];
        train_result c = bench_train(m, 1, T, RN_CHUNKWISE, 128, quick ? 1 : 2);
        train_result p = {0, 0, 0};
        if (T <= 4096) p = bench_train(m, 1, T, RN_PARALLEL, 0, 1);  /* quadratic: contrast only */
        if (i == 0) { base_c = 1e6 / c.tok_s; base_p = 1e6 / p.tok_s; }
        printf("| %d | %.1f (x%.2f) | ", T, 1e6 / c.tok_s, 1e6 / c.tok_s / base_c);
        if (p.tok_s > 0) printf("%.1f (x%.2f) |\n", 1e6 / p.tok_s, 1e6 / p.tok_s / base_p);
        else printf("skipped |\n");
        fflush(stdout);
    }
    rn_model_free(m);
}

static void section_threads(void) {
    printf("\n## threads: training tokens/s, torchscale d256 L4, seq 256, batch 8\n\n");
    printf("| threads | tokens/s | speed-up |\n|---|---|---|\n");
    int saved = rn_get_threads();
    double one = 0;
    for (int th = 1; th <= saved && th <= 2; th++) {
        rn_set_threads(th);
        rn_model *m = bench_model("torchscale", NULL);
        train_result r = bench_train(m, 8, 256, RN_PARALLEL, 0, 2);
        if (th == 1) one = r.tok_s;
        printf("| %d | %.0f | %.2f |\n", th, r.tok_s, r.tok_s / one);
        fflush(stdout);
        rn_model_free(m);
    }
    rn_set_threads(saved);
}

/* ----------------------------------------------------------- inference */

static double fma_peak_gflops(int threads);  /* with the kernels, below */
/* The BLAS and the kernels it runs (src/ops.c; internal, as the kernel
 * declarations below). */
const char *rni_blas_name(void);

/* Decode tokens/s over `n` steps of a session. */
static double time_decode(rn_session *s, int n) {
    double t0 = now_seconds();
    for (int i = 0; i < n; i++) {
        int32_t tok;
        if (rn_session_step(s, &tok) != RN_OK) die("%s", rn_last_error());
    }
    return n / (now_seconds() - t0);
}

static void prefill_to(rn_session *s, int64_t pos, int32_t *buf) {
    while (rn_session_pos(s) < pos) {
        int64_t n = pos - rn_session_pos(s);
        if (n > 4096) n = 4096;
        if (rn_session_prefill(s, buf, (int)n) != RN_OK) die("%s", rn_last_error());
    }
}

/* GFLOP/s of one thread's FMA loop at the width of the f32 few-row
 * kernel (src/ops.c: 64-byte vectors, AVX-512 where the build targets it;
 * else the AVX2 loop). */
static double kernel_fma_peak_gflops(void) { return 2 * bench_fma_madds(now_seconds) / 1e9; }

/* Best of 3 rounds of decode tokens/s of a fresh session on `threads`. */
static double decode_rate(rn_model *m, int threads, int quick) {
    int saved = rn_get_threads();
    rn_set_threads(threads);
    rn_sampler_config sc = {1.0, 0, 1, 1};
    rn_session *s;
    if (rn_session_create(m, &sc, 64, &s) != RN_OK) die("%s", rn_last_error());
    int32_t p[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    if (rn_session_prefill(s, p, 8) != RN_OK) die("%s", rn_last_error());
    time_decode(s, 20);
    double best = 0;
    for (int r = 0; r < 3; r++) {
        double t = time_decode(s, quick ? 200 : 500);
        if (t > best) best = t;
    }
    rn_session_free(s);
    rn_set_threads(saved);
    return best;
}

/* Single-stream decoding of issue 18's d256 model: a token reads every
 * weight once (2 FLOP each; the embedding row is a lookup). The 14.9 MB of
 * f32 weights it streams exceed the cores' L2 (2 MB each here) and stay in L3, so
 * each token streams them from L3 at a bandwidth that is per core: the
 * bound is that bandwidth (measured now, the same probe as the DRAM one on
 * a buffer of the weights' size) over the weight bytes, on one thread and
 * on all; the FMA peak (one core, the kernel's vector width) is far off. */
static void decode_vs_peak(int quick) {
    rn_model *m = model_reloaded_or_die(bench_model("torchscale", NULL));  /* as `generate` holds it */
    const rn_config *c = rn_model_config(m);
    double flops = 2.0 * ((double)rn_model_num_params(m) - (double)c->vocab * c->dim);
    double wbytes = flops / 2 * sizeof(rn_real); /* streamed a token: all but the embedding */
    int all = rn_get_threads();
    double peak = kernel_fma_peak_gflops();
    printf("\n### decode, torchscale d256 L4 H4 v512 f512 (issue 18), %.1f MB of weights read a token\n\n", wbytes / 1e6);
    printf("| threads | tokens/s | GFLOP/s | of threads x one core's FMA peak (%.1f GFLOP/s) | L3 read GB/s (%.0f MB) | "
           "L3 bound tokens/s | of the bound |\n|---|---|---|---|---|---|---|\n", peak, wbytes / 1e6);
    for (int th = 1; th <= all; th = th == all ? all + 1 : all) {
        rn_set_threads(th);
        double l3 = bench_read_bandwidth((size_t)wbytes);
        rn_set_threads(all);
        double r = decode_rate(m, th, quick), bound = l3 * 1e9 / wbytes;
        printf("| %d | %.0f | %.1f | %.2f | %.1f | %.0f | %.2f |\n", th, r, r * flops / 1e9, r * flops / 1e9 / (th * peak),
               l3, bound, r / bound);
        fflush(stdout);
    }
    rn_model_free(m);
}

static void section_decode(double bw, int quick) {
    rn_model *m = model_reloaded_or_die(bench_model("torchscale", "demo"));
    size_t wbytes = rn_model_num_params(m) * sizeof(rn_real);
    printf("\n## decoding one stream (torchscale demo size, %.1f MB of weights)\n\n", wbytes / 1e6);
    printf("| position | decode tokens/s | RSS MB |\n|---|---|---|\n");
    rn_sampler_config sc = {1.0, 0, 1, 1};
    rn_session *s;
    if (rn_session_create(m, &sc, 512, &s) != RN_OK) die("%s", rn_last_error());
    int32_t *buf = malloc(sizeof(int32_t) * 4096);
    for (int i = 0; i < 4096; i++) buf[i] = (i * 7919) % 256;
    int64_t positions[3] = {100, 10000, 100000};
    double first = 0;
    for (int i = 0; i < 3; i++) {
        prefill_to(s, positions[i], buf);
        double r = time_decode(s, quick ? 200 : 500);
        if (i == 0) first = r;
        printf("| %lld | %.0f (x%.2f) | %.1f |\n", (long long)positions[i], r, r / first, rss_mb());
        fflush(stdout);
    }
    rn_session_free(s);
    /* Prefill of a 4096-token prompt: chunkwise vs token by token */
    rn_state *st;
    if (rn_state_create(m, 1, &st) != RN_OK) die("%s", rn_last_error());
    double t0 = now_seconds();
    if (rn_forward(m, st, buf, 1, 4096, RN_CHUNKWISE, 256, RN_FWD_LAST_ONLY, NULL) != RN_OK) die("%s", rn_last_error());
    double chunk_s = 4096 / (now_seconds() - t0);
    rn_state_reset(st);
    t0 = now_seconds();
    if (rn_forward(m, st, buf, 1, 4096, RN_RECURRENT, 1, RN_FWD_LAST_ONLY, NULL) != RN_OK) die("%s", rn_last_error());
    double rec_s = 4096 / (now_seconds() - t0);
    printf("\nprefill of 4096 tokens: chunkwise %.0f tokens/s, recurrent %.0f tokens/s: x%.1f\n", chunk_s, rec_s, chunk_s / rec_s);
    rn_state_free(st);
    rn_model_free(m);
    free(buf);
    decode_vs_peak(quick);

    /* Against the memory-bandwidth bound: a model larger than the cache. */
    const char *size = quick ? "base" : "medium";
    m = bench_model("torchscale", size);
    wbytes = rn_model_num_params(m) * sizeof(rn_real);
    if (rn_session_create(m, &sc, 64, &s) != RN_OK) die("%s", rn_last_error());
    int32_t p[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    if (rn_session_prefill(s, p, 8) != RN_OK) die("%s", rn_last_error());
    time_decode(s, 2);
    double r = time_decode(s, quick ? 10 : 20), bound = bw * 1e9 / wbytes;
    printf("\ndecode, torchscale %s (%.0f MB of weights): %.2f tokens/s; bandwidth bound %.2f tokens/s "
           "(%.1f GB/s streaming read): %.0f%% of the bound\n", size, wbytes / 1e6, r, bound, bw, 100 * r / bound);
    rn_session_free(s);
    rn_model_free(m);
}

/* ------------------------------------------------------------- sampler */

/* Mean microseconds of rn_sampler_sample on logits (V), best of 5 rounds
 * of n draws. */
static double time_sampler(const rn_sampler_config *sc, const rn_real *logits, int V, int n) {
    rn_sampler *s;
    if (rn_sampler_create(V, sc, &s) != RN_OK) die("%s", rn_last_error());
    double best = 1e30;
    int64_t sink = 0;
    for (int r = 0; r < 5; r++) {
        double t0 = now_seconds();
        for (int i = 0; i < n; i++) sink += rn_sampler_sample(s, logits);
        double t = (now_seconds() - t0) / n;
        if (t < best) best = t;
    }
    rn_sampler_free(s);
    if (sink == -1) fputc(' ', stderr);
    return best * 1e6;
}

/* Microseconds of one pass that reads the V logits (a sum, vectorised so
 * that it waits on the loads), best of 5 rounds of 1000 passes: the least
 * any sampler must do, on the same thread. */
static double time_logits_read(const rn_real *logits, int V) {
    double best = 1e30, sink = 0;
    for (int r = 0; r < 5; r++) {
        double t0 = now_seconds();
        for (int k = 0; k < 1000; k++) {
            rn_real acc = 0;
#pragma omp simd reduction(+ : acc)
            for (int i = 0; i < V; i++) acc += logits[i];
            sink += acc;
            __asm__ volatile("" ::: "memory");  /* one pass per k, not hoisted */
        }
        double t = (now_seconds() - t0) / 1000;
        if (t < best) best = t;
    }
    if (sink == 42) fputc(' ', stderr);
    return best * 1e6;
}

/* The sampler at a tokenizer-sized vocabulary, V = 128,000, one thread.
 * The logits are shaped like a language model's: the i-th most likely of
 * (shuffled) token ids has logit -ln i, so at temperature 0.8 the
 * probabilities fall as i^-1.25 (Zipf-like) and top-p 0.9 keeps about
 * 1,400 tokens. Flat logits (N(0, 1)) are the sampler's worst case for
 * top-p: most of the vocabulary is in its support. */
static void section_sample(int quick) {
    enum { V = 128000 };
    rn_real *zipf = malloc(sizeof(rn_real) * V), *flat = malloc(sizeof(rn_real) * V);
    int *perm = malloc(sizeof(int) * V);
    if (!zipf || !flat || !perm) die("out of memory");
    rn_rng r;
    rn_rng_seed(&r, 7);
    for (int i = 0; i < V; i++) perm[i] = i;
    for (int i = V - 1; i > 0; i--) {
        int j = (int)(rn_rng_u64(&r) % (uint64_t)(i + 1)), t = perm[i];
        perm[i] = perm[j]; perm[j] = t;
    }
    for (int i = 0; i < V; i++) { zipf[perm[i]] = (rn_real)-log(i + 1.0); flat[i] = (rn_real)rn_rng_normal(&r); }
    double read = time_logits_read(zipf, V);
    printf("\n## sampling one token, V = %d, one thread\n\n", V);
    printf("one pass that reads the %d logits (%.0f KB): %.1f us\n\n", V, V * sizeof(rn_real) / 1e3, read);
    printf("| sampler | logits | us/token | / one read of the logits |\n|---|---|---|---|\n");
    struct { const char *name; rn_sampler_config sc; int flat; } cases[] = {
        {"greedy", {0, 0, 1, 1}, 0},
        {"top-k 40, temperature 0.8", {0.8, 40, 1, 1}, 0},
        {"top-p 0.9, temperature 0.8", {0.8, 0, 0.9, 1}, 0},
        {"top-p 0.9, temperature 0.8", {0.8, 0, 0.9, 1}, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        double us = time_sampler(&cases[i].sc, cases[i].flat ? flat : zipf, V, quick ? 5 : 20);
        printf("| %s | %s | %.1f | %.1f |\n", cases[i].name, cases[i].flat ? "flat" : "Zipf-like", us, us / read);
        fflush(stdout);
    }
    free(zipf); free(flat); free(perm);
}

/* ------------------------------------------------------------- kernels */

/* GFLOP/s of a register-blocked FMA loop (12 independent 8-wide
 * accumulators: two FMA ports times four cycles of latency, with room) on
 * every thread of the team: the FMA peak of the AVX2 kernels. */
static double fma_peak_gflops(int threads) {
    const long iters = 20000000;
    double best = 0, sink = 0;
    for (int r = 0; r < 3; r++) {
        double t0 = now_seconds(), s = 0;
#pragma omp parallel num_threads(threads) reduction(+ : s)
        {
#if defined(__AVX2__) && defined(__FMA__)
            __m256 a[12], m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
            for (int j = 0; j < 12; j++) a[j] = _mm256_set1_ps((float)j);
            for (long i = 0; i < iters; i++)
                for (int j = 0; j < 12; j++) a[j] = _mm256_fmadd_ps(a[j], m, c);
            for (int j = 1; j < 12; j++) a[0] = _mm256_add_ps(a[0], a[j]);
            float f[8];
            _mm256_storeu_ps(f, a[0]);
            s += f[0];
#else
            s += 0;
#endif
        }
        double t = now_seconds() - t0;
        sink += s;
        double g = 2.0 * 8 * 12 * iters * threads / t / 1e9;
        if (g > best) best = g;
    }
    if (sink == 42) fputc(' ', stderr);
    return best;
}

/* Seconds per call of X (M, K) W^T, best of `passes` passes over `copies`
 * copies of W (bytes_each apart), one call per copy: with copies spanning
 * more than the last-level cache every call reads its W from memory. */
static double time_matmul(int M, int N, int K, const float *X, const unsigned char *W, size_t bytes_each,
                          int copies, rn_wtype t, float *Y, int passes, int x8) {
    size_t ws = rn_wtype_row_bytes(t, K);
    double best = 1e30;
    for (int p = 0; p < passes; p++) {
        double t0 = now_seconds();
        for (int c = 0; c < copies; c++)
            (x8 ? rn_matmul_w_x8 : rn_matmul_w)(M, N, K, X, K, W + (size_t)c * bytes_each, t, ws, Y, N, 0);
        double el = (now_seconds() - t0) / copies;
        if (el < best) best = el;
    }
    return best;
}

/* The loop rni_gemm runs today for M <= 8 (src/ops.c): one dot product
 * per output element, one horizontal sum each; for the comparison. */
static void simd_dot_loop(int M, int N, int K, const float *A, const float *B, float *C) {
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            const float *a = A + (size_t)i * K, *b = B + (size_t)j * K;
            float acc = 0;
#pragma omp simd reduction(+ : acc)
            for (int k = 0; k < K; k++) acc += a[k] * b[k];
            C[(size_t)i * N + j] = acc;
        }
}

static void section_kernels(int quick) {
    /* decode-sized: W 4096 x 4096 (64 MiB as f32) */
    enum { N = 4096, K = 4096 };
    long l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);
    size_t span = l3 > 0 ? 2 * (size_t)l3 : 0;  /* bytes of W copies cycled through, per type */
    if (span < ((size_t)256 << 20)) span = (size_t)256 << 20;
    if (quick) span /= 2;
    printf("\n## kernels: Y = X W^T, W %d x %d (%.0f MiB as f32), weights read from memory\n\n", N, K,
           (double)N * K * 4 / (1 << 20));
    printf("copies of W cycled through per type: %.0f MiB (last-level cache %.0f MiB); each row's limit is the\n"
           "streaming read measured just before it with the same threads\n\n",
           span / 1048576.0, l3 > 0 ? l3 / 1048576.0 : 0);
    printf("| type | threads | MiB of W | read GB/s | M = 1 GB/s | / read | M = 4 GB/s | / read |\n"
           "|---|---|---|---|---|---|---|---|\n");
    float *Wf = malloc(sizeof(float) * (size_t)N * K), *X = malloc(sizeof(float) * 8 * K), *Y = malloc(sizeof(float) * 8 * N);
    if (!Wf || !X || !Y) die("out of memory");
    rn_rng r;
    rn_rng_seed(&r, 3);
    for (size_t i = 0; i < (size_t)N * K; i++) Wf[i] = (float)(rn_rng_uniform(&r) - 0.5);
    for (int i = 0; i < 8 * K; i++) X[i] = (float)(rn_rng_uniform(&r) - 0.5);
    rn_wtype types[4] = {RN_WTYPE_F32, RN_WTYPE_BF16, RN_WTYPE_Q8_0, RN_WTYPE_Q4_0};
    int saved = rn_get_threads();
    for (int ti = 0; ti < 4; ti++) {
        rn_wtype t = types[ti];
        size_t ws = rn_wtype_row_bytes(t, K), each = ws * N;
        int copies = (int)((span + each - 1) / each);
        unsigned char *W = malloc(each * copies);
        if (!W) die("out of memory");
        for (int n = 0; n < N; n++) rn_quantize_row(t, Wf + (size_t)n * K, W + n * ws, K);
#pragma omp parallel for schedule(static)
        for (int c = 1; c < copies; c++) memcpy(W + (size_t)c * each, W, each);
        /* the block types also with the activations quantised (x8) */
        for (int x8 = 0; x8 <= (t == RN_WTYPE_Q8_0 || t == RN_WTYPE_Q4_0); x8++)
            for (int th = 1; th <= saved; th = th < saved ? saved : th + 1) {
                rn_set_threads(th);
                double bwt = bench_read_bandwidth((size_t)1 << 30);
                time_matmul(1, N, K, X, W, each, copies, t, Y, 1, x8);  /* warm-up */
                double t1 = time_matmul(1, N, K, X, W, each, copies, t, Y, quick ? 3 : 5, x8);
                double t4 = time_matmul(4, N, K, X, W, each, copies, t, Y, quick ? 3 : 5, x8);
                double g1 = each / t1 / 1e9, g4 = each / t4 / 1e9;
                printf("| %s%s | %d | %.1f | %.1f | %.1f | %.2f | %.1f | %.2f |\n", rn_wtype_name(t),
                       x8 ? " x8 (int8 activations)" : "", th, each / 1048576.0, bwt, g1, g1 / bwt, g4, g4 / bwt);
                fflush(stdout);
            }
        free(W);
    }
    rn_set_threads(saved);
    free(Wf);

    /* cache-resident f32: W 256 x 1024 (1 MiB), against the FMA peak */
    enum { Nc = 256, Kc = 1024 };
    float *Wc = malloc(sizeof(float) * Nc * Kc);
    if (!Wc) die("out of memory");
    for (int i = 0; i < Nc * Kc; i++) Wc[i] = (float)(rn_rng_uniform(&r) - 0.5);
    int reps = quick ? 300 : 1000;
    printf("\n## kernels: f32 W %d x %d (1 MiB, in cache) against the AVX2 FMA peak\n\n", Nc, Kc);
    printf("| threads | FMA peak GFLOP/s | M = 1 GFLOP/s | / peak | M = 4 GFLOP/s | / peak |\n|---|---|---|---|---|---|\n");
    double old[2];
    for (int th = 1; th <= saved && th <= 2; th++) {
        rn_set_threads(th);
        double peak = fma_peak_gflops(th), g[2];
        int Ms[2] = {1, 4};
        for (int i = 0; i < 2; i++) {
            int M = Ms[i];
            double best = 1e30;
            for (int p = 0; p < 5; p++) {
                double t0 = now_seconds();
                for (int k = 0; k < reps; k++) rn_matmul_w(M, Nc, Kc, X, Kc, Wc, RN_WTYPE_F32, Kc * 4, Y, Nc, 0);
                double el = (now_seconds() - t0) / reps;
                if (el < best) best = el;
            }
            g[i] = 2.0 * M * Nc * Kc / best / 1e9;
        }
        if (th == 1)
            for (int i = 0; i < 2; i++) {
                double best = 1e30;
                for (int p = 0; p < 5; p++) {
                    double t0 = now_seconds();
                    for (int k = 0; k < reps; k++) simd_dot_loop(Ms[i], Nc, Kc, X, Wc, Y);
                    double el = (now_seconds() - t0) / reps;
                    if (el < best) best = el;
                }
                old[i] = 2.0 * Ms[i] * Nc * Kc / best / 1e9 / peak;
            }
        printf("| %d | %.1f | %.1f | %.2f | %.1f | %.2f |\n", th, peak, g[0], g[0] / peak, g[1], g[1] / peak);
        fflush(stdout);
    }
    printf("\nfor comparison, the one-core omp simd dot loop of rni_gemm (src/ops.c) on the same product: "
           "M = 1 %.2f, M = 4 %.2f of the one-thread peak\n", old[0], old[1]);
    rn_set_threads(saved);
    free(Wc); free(X); free(Y);
}

int cmd_bench(int argc, char **argv) {
    const char *which = "all", *text = NULL, *tokenizer = NULL;
    int threads = 0, quick = 0;
    const char *load_child = NULL, *size = NULL;
    int load_f32 = 0;
    opt opts[] = {{"case", OPT_STR, &which, 0, 0, "all, train, scaling, threads, decode, decode-quant, batch, sample, kernels, load, load-bf16, tokenize or tokenizer-train", 0},
                  {"text", OPT_STR, &text, 0, 0, "tokenize, tokenizer-train: the text (default data/brown.txt)", 0},
                  {"tokenizer", OPT_STR, &tokenizer, 0, 0, "tokenize: one tokenizer.json (default: the three of tests/node)", 0},
                  {"threads", OPT_INT, &threads, 1, 1024, "threads (default: all cores)", 0},
                  {"quick", OPT_FLAG, &quick, 0, 0, "fewer repetitions, smaller models", 0},
                  {"size", OPT_STR, &size, 0, 0, "decode-quant, load-bf16: the model, medium (default; --quick: base), xl or fla-1.3b (load-bf16's default)", 0},
                  {"load-child", OPT_STR, &load_child, 0, 0, "(internal) the timed process of --case load", 0},
                  {"load-f32", OPT_FLAG, &load_f32, 0, 0, "(internal) --load-child loads with RN_LOAD_F32", 0},
                  {0}};
    command_spec cmd = {"bench", "[--case all|train|scaling|threads|decode|decode-quant|batch|sample|kernels|load|load-bf16|tokenize|tokenizer-train] [--threads N] [--quick] [--size medium|xl|fla-1.3b]",
                        "Benchmarks, each printed as a ratio to a limit measured in the same run.", opts};
    args_parse(&cmd, argc, argv);
    /* The training cases run as retnet train does (util.h); decoding keeps
     * libgomp's default. */
    if (!strcmp(which, "train") || !strcmp(which, "scaling") || !strcmp(which, "threads"))
        wait_passively("bench", argc, argv, threads);
    if (threads) rn_set_threads(threads);
    if (load_child) return bench_load_child(load_child, load_f32);
    int all = strcmp(which, "all") == 0;
    if (!all && strcmp(which, "train") && strcmp(which, "scaling") && strcmp(which, "threads") && strcmp(which, "decode") && strcmp(which, "batch") &&
        strcmp(which, "decode-quant") && strcmp(which, "sample") && strcmp(which, "kernels") && strcmp(which, "load") && strcmp(which, "load-bf16") && strcmp(which, "tokenize") &&
        strcmp(which, "tokenizer-train"))
        die_usage("bench", "unknown case '%s'", which);
    if (size && strcmp(size, "base") && strcmp(size, "medium") && strcmp(size, "xl") && strcmp(size, "fla-1.3b"))
        die_usage("bench", "--size must be base, medium, xl or fla-1.3b, not '%s'", size);
    /* Tokenizing is one thread against the reference: no machine limits needed. */
    if (!strcmp(which, "tokenize")) {
        bench_tokenize(text, tokenizer, quick);
        return 0;
    }
    if (!strcmp(which, "tokenizer-train")) {
        bench_tokenizer_train(text);
        return 0;
    }
    double peak = sgemm_gflops(5), bw = bench_read_bandwidth((size_t)1 << 30);
    printf("# retnet bench (%s, %d threads, %s)\n\nlimits measured now: sgemm 1024^3 %.1f GFLOP/s; streaming read %.1f GB/s\n",
           sizeof(rn_real) == 4 ? "float32" : "float64", rn_get_threads(), rni_blas_name(), peak, bw);
    if (all || !strcmp(which, "train")) section_train(quick);
    if (all || !strcmp(which, "scaling")) section_scaling(quick);
    if (all || !strcmp(which, "threads")) section_threads();
    if (all || !strcmp(which, "decode")) section_decode(bw, quick);
    if (all || !strcmp(which, "batch")) bench_batch(quick);
    if (all || !strcmp(which, "decode-quant")) bench_decode_quant(read_bandwidth_1g, quick, size);
    if (all || !strcmp(which, "sample")) section_sample(quick);
    if (all || !strcmp(which, "kernels")) section_kernels(quick);
    if (all || !strcmp(which, "load")) bench_load(quick);
    if (all || !strcmp(which, "load-bf16")) bench_load_bf16(quick, size);
    if (all) bench_tokenize(text, tokenizer, quick);
    if (all) bench_tokenizer_train(text);
    return 0;
}
