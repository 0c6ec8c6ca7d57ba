/* bench_quant.c (CLI): `retnet bench --case decode-quant`: decoding from
 * typed weights (retnet quantize) on a model larger than the caches
 * (torchscale medium; --quick: base), each type next to its bound: weight
 * bytes per token over the streaming-read bandwidth measured in the same
 * run, and the share of the recurrent state in each step's traffic
 * (--size: medium, xl, or the shape of fla's 1.3B). Then 16 streams
 * against 1, chunkwise prefill q8_0 against f32, the start of a q8_0 file
 * in a fresh process (load, first token, peak RSS), and rn_matmul_w's f32 kernel
 * against sgemm for a few rows (a library kernel: the model's own f32
 * products run rni_gemm's few-row kernel, which keeps batched rows
 * bit-identical to lone ones up to 64 rows). */
#define _DEFAULT_SOURCE
#include "bench_quant.h"
#include "bench_load.h"
#include "retnet.h"
#include "util.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Tokens/s of decoding B streams (one token each per step) over n steps,
 * after 2 warm-up steps, on state s (B streams); *cpu_rate: tokens per
 * second of process CPU time. */
static double decode_rate(rn_model *m, rn_state *s, int B, int n, double *cpu_rate) {
    int V = rn_model_config(m)->vocab;
    rn_real *logits = malloc(sizeof(rn_real) * (size_t)B * V);
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)B);
    if (!logits || !tok) die("out of memory");
    double t0 = 0, c0 = 0;
    for (int i = 0; i < n + 2; i++) {
        if (i == 2) { t0 = now_seconds(); c0 = cpu_seconds(); }
        for (int b = 0; b < B; b++) tok[b] = (int32_t)((i * 31 + b * 7) % V);
        if (rn_forward(m, s, tok, B, 1, RN_RECURRENT, 1, 0, logits) != RN_OK) die("%s", rn_last_error());
    }
    double rate = (double)B * n / (now_seconds() - t0);
    if (cpu_rate) *cpu_rate = (double)B * n / (cpu_seconds() - c0);
    free(logits);
    free(tok);
    return rate;
}

/* Tokens/s of a chunkwise prefill of T tokens. */
static double prefill_rate(rn_model *m, int T) {
    int V = rn_model_config(m)->vocab;
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)T);
    rn_state *s;
    if (!tok || rn_state_create(m, 1, &s) != RN_OK) die("out of memory");
    for (int i = 0; i < T; i++) tok[i] = (int32_t)((i * 7919) % V);
    double t0 = now_seconds();
    if (rn_forward(m, s, tok, 1, T, RN_CHUNKWISE, 128, RN_FWD_LAST_ONLY, NULL) != RN_OK) die("%s", rn_last_error());
    double rate = T / (now_seconds() - t0);
    rn_state_free(s);
    free(tok);
    return rate;
}

/* Microseconds of Y (M, N) = X W^T, f32, best of reps: the
 * register-blocked kernel (rn_matmul_w, M <= 8) or sgemm. */
static double product_us(int M, int N, int K, const float *X, const float *W, float *Y, int blas, int reps) {
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = now_seconds();
        if (blas)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, X, K, W, K, 0.0f, Y, N);
        else
            rn_matmul_w(M, N, K, X, K, W, RN_WTYPE_F32, (size_t)K * 4, Y, N, 0);
        double t = now_seconds() - t0;
        if (t < best) best = t;
    }
    return best * 1e6;
}

static void f32_crossover(int d) {
    int N = 3 * d, K = d;
    float *W = malloc(sizeof(float) * (size_t)N * K), *X = malloc(sizeof(float) * 16 * (size_t)K),
          *Y = malloc(sizeof(float) * 16 * (size_t)N);
    if (!W || !X || !Y) die("out of memory");
    for (size_t i = 0; i < (size_t)N * K; i++) W[i] = (float)((i * 2654435761u) >> 20 & 255) / 256 - 0.5f;
    for (int i = 0; i < 16 * K; i++) X[i] = (float)(i % 13) / 13 - 0.5f;
    printf("\nf32 products of a few rows, W [%d, %d] (%.1f MB, cache-resident at d 256): rn_matmul_w's kernel vs sgemm, us\n\n", N, K,
           4.0 * N * K / 1e6);
    printf("| rows | register-blocked kernel | sgemm | kernel / sgemm time |\n|---|---|---|---|\n");
    for (int M = 1; M <= 8; M *= 2) {
        double a = product_us(M, N, K, X, W, Y, 0, 200), b = product_us(M, N, K, X, W, Y, 1, 200);
        printf("| %d | %.1f | %.1f | %.2f |\n", M, a, b, a / b);
    }
    free(W); free(X); free(Y);
}

/* The models of every type are loaded together and timed in rounds, one
 * type after the other, the best round of each kept (with the bandwidth
 * probe among them): on a machine shared with other work, every type then
 * sees the same spread of load. */
void bench_decode_quant(double (*probe)(double *cpu_gbs), int quick, const char *size_arg) {
    const char *size = size_arg ? size_arg : quick ? "base" : "medium";
    int big = strcmp(size, "base") && strcmp(size, "medium");
    rn_config c;
    bench_config(size, &c);
    rn_model *m[RN_WTYPE_COUNT] = {NULL};
    if (rn_model_create(&c, &m[0]) != RN_OK) die("%s", rn_last_error());
    /* Values do not matter for speed: a cheap pattern, not the slow random initialisation. */
    rn_real *p = rn_model_params(m[0]);
    size_t np = rn_model_num_params(m[0]);
    for (size_t i = 0; i < np; i++) p[i] = (rn_real)((double)((i * 2654435761u) >> 22 & 1023) / 51200.0 - 0.01);
    const char *dir = getenv("TMPDIR");
    char path[RN_WTYPE_COUNT][512];
    rn_state *st[RN_WTYPE_COUNT];
    for (int t = 0; t < RN_WTYPE_COUNT; t++) {
        snprintf(path[t], sizeof path[t], "%s/retnet-bench-quant-%ld-%s.safetensors", dir && *dir ? dir : "/tmp",
                 (long)getpid(), rn_wtype_name((rn_wtype)t));
        if (t) fprintf(stderr, "bench: writing the %s model\n", rn_wtype_name((rn_wtype)t));
        if (t && (rn_model_quantize(m[0], path[t], (rn_wtype)t, 0) != RN_OK || rn_model_load(path[t], &m[t]) != RN_OK))
            die("%s", rn_last_error());
        if (rn_state_create(m[t], 1, &st[t]) != RN_OK) die("%s", rn_last_error());
    }
    /* The recurrent state one step reads and writes: per layer and head a
     * dk x dv float matrix (what rn_state holds). */
    double state_bytes = 2.0 * c.layers * c.heads * (double)(c.dim / c.heads) * (c.value_dim / c.heads) * sizeof(rn_real);
    int steps = quick || big ? 6 : 12, rounds = quick || big ? 3 : 5;
    double best[RN_WTYPE_COUNT] = {0}, best_cpu[RN_WTYPE_COUNT] = {0}, bw = 0, bw_cpu = 0;
    for (int r = 0; r < rounds; r++) {
        double bc, b = probe(&bc);
        if (b > bw) bw = b;
        if (bc > bw_cpu) bw_cpu = bc;
        for (int t = 0; t < RN_WTYPE_COUNT; t++) {
            double rc, rate = decode_rate(m[t], st[t], 1, steps, &rc);
            if (rate > best[t]) best[t] = rate;
            if (rc > best_cpu[t]) best_cpu[t] = rc;
        }
    }
    printf("\n## decoding from typed weights (%s%s, %.0f M parameters, vocabulary %d; %d threads; "
           "best of %d rounds of %d tokens)\n\n", strcmp(size, "fla-1.3b") ? "torchscale " : "", size, np / 1e6, c.vocab,
           rn_get_threads(), rounds, steps);
    printf("Wall clock, and per second of this process's CPU time (on a machine shared with other work, time\n"
           "slicing stretches the wall clock of both the probe and the decoding; the CPU-time columns are the\n"
           "ones an idle machine would show, barrier waits counted against us). The bound is the weight bytes\n"
           "per token over the streaming read; every step also reads and writes the float32 recurrent state,\n"
           "%.0f MB per token (read + written, counted at the read bandwidth), its share of the traffic and\n"
           "the fraction of the bound with it counted in are the last columns.\n\n", state_bytes / 1e6);
    printf("| type | weight MB per token | tokens/s | bound (%.1f GB/s) | of the bound | vs f32 | tokens per CPU s | "
           "bound (%.1f GB per CPU s) | of the bound | vs f32 | state share of the traffic | of the bound with the state |\n"
           "|---|---|---|---|---|---|---|---|---|---|---|---|\n", bw, bw_cpu);
    for (int t = 0; t < RN_WTYPE_COUNT; t++) {
        size_t bytes = rn_model_decode_bytes(m[t]);
        double bound = bw * 1e9 / bytes, bound_cpu = bw_cpu * 1e9 / bytes, bound_st = bw * 1e9 / (bytes + state_bytes);
        printf("| %s | %.0f | %.2f | %.2f | %.2f | x%.2f | %.2f | %.2f | %.2f | x%.2f | %.0f%% | %.2f |\n",
               rn_wtype_name((rn_wtype)t), bytes / 1e6, best[t], bound, best[t] / bound, best[t] / best[0], best_cpu[t],
               bound_cpu, best_cpu[t] / bound_cpu, best_cpu[t] / best_cpu[0], 100 * state_bytes / (bytes + state_bytes),
               best[t] / bound_st);
    }
    fflush(stdout);
    rn_model *q8 = m[RN_WTYPE_Q8_0];
    rn_state *s16;
    if (rn_state_create(q8, 16, &s16) != RN_OK) die("%s", rn_last_error());
    double one = 0, many = 0, one_c = 0, many_c = 0;
    for (int r = 0; r < rounds; r++) {
        double ac, bc, a = decode_rate(q8, st[RN_WTYPE_Q8_0], 1, steps, &ac), b = decode_rate(q8, s16, 16, steps, &bc);
        if (a > one) one = a;
        if (b > many) many = b;
        if (ac > one_c) one_c = ac;
        if (bc > many_c) many_c = bc;
    }
    rn_state_free(s16);
    /* a step of B streams reads the weights once and every stream's state */
    double wq = (double)rn_model_decode_bytes(q8), bound16 = 16 * (wq + state_bytes) / (wq + 16 * state_bytes);
    printf("\nbatched decoding, q8_0: 1 stream %.2f tokens/s, 16 streams %.2f tokens/s: x%.2f "
           "(per CPU second: %.2f, %.2f: x%.2f); the traffic bounds it at x%.2f (a step reads the %.0f MB of\n"
           "weights once, and reads and writes each stream's %.0f MB of state)\n", one, many, many / one, one_c, many_c,
           many_c / one_c, bound16, wq / 1e6, state_bytes / 2e6);
    int T = quick || big ? 256 : 512;
    double pf = 0, pq = 0;
    for (int r = 0; r < 2; r++) {
        double a = prefill_rate(m[0], T), b = prefill_rate(q8, T);
        if (a > pf) pf = a;
        if (b > pq) pq = b;
    }
    printf("chunkwise prefill of %d tokens (chunk 128): f32 %.0f tokens/s, q8_0 %.0f tokens/s: %.2f of f32\n", T, pf, pq,
           pq / pf);
    for (int t = 0; t < RN_WTYPE_COUNT; t++) {
        rn_state_free(st[t]);
        rn_model_free(m[t]);
    }
    long rss;
    load_times lt = bench_timed_start(path[RN_WTYPE_Q8_0], 0, &rss);
    rn_model_info info;
    /* (the fresh process's RSS counts the pages of the file it touched) */
    if (rn_model_inspect(path[RN_WTYPE_Q8_0], &info) != RN_OK) die("%s", rn_last_error());
    printf("start of the q8_0 file (%.0f MB%s), fresh process: load %.2f s, first token %.2f s, peak RSS %.0f MB\n",
           info.file_bytes / 1e6, info.in_place ? ", read in place" : "", lt.load, lt.first, rss / 1024.0);
    for (int t = 1; t < RN_WTYPE_COUNT; t++) unlink(path[t]);
    f32_crossover(256);
    f32_crossover(1024);
}
