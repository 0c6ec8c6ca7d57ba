/* bench.c (CLI): `retnet bench`. Every figure is printed next to a limit
 * measured in the same run on the same machine with the same threads (BLAS
 * sgemm FLOP/s, streaming-read bandwidth), because absolute times on shared
 * machines drift. */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"
#include <cblas.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------- limits */

/* GFLOP/s of one 1024^3 sgemm (buffers made on first use, kept). */
static double sgemm_once(void) {
    enum { n = 1024 };
    static float *a, *b, *c;
    if (!a) {
        a = malloc(sizeof(float) * n * n); b = malloc(sizeof(float) * n * n); c = malloc(sizeof(float) * n * n);
        if (!a || !b || !c) die("out of memory");
        for (int i = 0; i < n * n; i++) { a[i] = (float)(i % 7) * 0.1f; b[i] = (float)(i % 5) * 0.1f; }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b, n, 0, c, n);  /* warm-up */
    }
    double t0 = now_seconds();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b, n, 0, c, n);
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

/* Best-of-n streaming read bandwidth (GB/s) over a buffer of `mb` MiB. */
static double read_bandwidth(size_t mb) {
    size_t n = mb << 18;  /* floats */
    float *x = malloc(n * sizeof *x);
    if (!x) die("out of memory");
    for (size_t i = 0; i < n; i++) x[i] = (float)(i & 7);
    double best = 1e30, sink = 0;
    for (int r = 0; r < 5; r++) {
        double t0 = now_seconds();
        float s = 0;
        /* simd: many partial sums, so the loop waits on memory, not on adds */
#pragma omp parallel for simd reduction(+ : s) schedule(static)
        for (size_t i = 0; i < n; i++) s += x[i];
        double t = now_seconds() - t0;
        sink += s;
        if (t < best) best = t;
    }
    free(x);
    if (sink == 42) fputc(' ', stderr);
    return (double)(n * sizeof(float)) / best / 1e9;
}

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
static rn_model *bench_model(const char *preset, const char *size) {
    rn_config c;
    memset(&c, 0, sizeof c);
    c.vocab = 256;
    rn_preset p;
    if (rn_preset_from_name(preset, &p) != RN_OK || rn_config_preset(&c, p, size) != RN_OK) die("%s", rn_last_error());
    if (!size) { c.dim = 256; c.layers = 4; c.heads = 4; c.value_dim = 512; c.ffn_dim = 512; }
    rn_model *m;
    if (rn_model_create(&c, &m) != RN_OK) die("%s", rn_last_error());
    rn_model_init_random(m, 1);
    return m;
}

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
    struct { const char *name, *size; int B, T, chunk; } cases[] = {
        {"torchscale d256 L4 H4 v512 f512, seq 256, batch 8", NULL, 8, 256, 0},
        {"torchscale base, seq 512, batch 4", "base", 4, 512, 0},
        {"torchscale d256 L4, chunkwise seq 8192 (chunk 256), batch 1", NULL, 1, 8192, 256},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        if (quick && i == 1) continue;
        rn_model *m = bench_model("torchscale", cases[i].size);
        train_result r = bench_train(m, cases[i].B, cases[i].T, cases[i].chunk ? RN_CHUNKWISE : RN_PARALLEL,
                                     cases[i].chunk, quick ? 2 : 10);
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

static void section_decode(double bw, int quick) {
    rn_model *m = bench_model("torchscale", "demo");
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

int cmd_bench(int argc, char **argv) {
    const char *which = "all", *text = NULL, *tokenizer = NULL;
    int threads = 0, quick = 0;
    opt opts[] = {{"case", OPT_STR, &which, 0, 0, "all, train, scaling, threads, decode or tokenize", 0},
                  {"text", OPT_STR, &text, 0, 0, "tokenize: the text (default data/brown.txt)", 0},
                  {"tokenizer", OPT_STR, &tokenizer, 0, 0, "tokenize: one tokenizer.json (default: the three of tests/node)", 0},
                  {"threads", OPT_INT, &threads, 1, 1024, "threads (default: all cores)", 0},
                  {"quick", OPT_FLAG, &quick, 0, 0, "fewer repetitions, smaller models", 0},
                  {0}};
    command_spec cmd = {"bench", "[--case all|train|scaling|threads|decode|tokenize] [--threads N] [--quick]",
                        "Benchmarks, each printed as a ratio to a limit measured in the same run.", opts};
    args_parse(&cmd, argc, argv);
    if (threads) rn_set_threads(threads);
    int all = strcmp(which, "all") == 0;
    if (!all && strcmp(which, "train") && strcmp(which, "scaling") && strcmp(which, "threads") && strcmp(which, "decode") &&
        strcmp(which, "tokenize"))
        die_usage("bench", "unknown case '%s'", which);
    /* Tokenizing is one thread against the reference: no machine limits needed. */
    if (!strcmp(which, "tokenize")) {
        bench_tokenize(text, tokenizer, quick);
        return 0;
    }
    double peak = sgemm_gflops(5), bw = read_bandwidth(512);
    printf("# retnet bench (%s, %d threads)\n\nlimits measured now: sgemm 1024^3 %.1f GFLOP/s; streaming read %.1f GB/s\n",
           sizeof(rn_real) == 4 ? "float32" : "float64", rn_get_threads(), peak, bw);
    if (all || !strcmp(which, "train")) section_train(quick);
    if (all || !strcmp(which, "scaling")) section_scaling(quick);
    if (all || !strcmp(which, "threads")) section_threads();
    if (all || !strcmp(which, "decode")) section_decode(bw, quick);
    if (all) bench_tokenize(text, tokenizer, quick);
    return 0;
}
