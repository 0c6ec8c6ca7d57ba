/* test_batch.c: continuous batching (what `retnet serve` runs). Streams at
 * different positions step together in one rn_forward, each row from its
 * own position, and each gives what it gives alone: per preset (its
 * rotation, xPos and decay normalisation all depend on the position),
 * twelve streams with prompts of different lengths join a batch one step
 * after another, decode greedily together and leave when done; every
 * step's logits equal the stream's alone bit for bit (the few-row product
 * computes each row alike whatever the batch: ops.c) and so do the greedy
 * tokens. A chunkwise piece over rows at positions 9, 5 and 0 equals
 * each row alone. The row API keeps, moves and resets rows and refuses
 * rows that do not exist. The few-row product itself: every row of an
 * M-row product (M up to 64, shapes with tails in N and K, accumulating
 * or not, one thread or the columns split over two) equals that row's
 * product alone bit for bit, and a float64 sum to rounding; so does the
 * panel kernel's, from packed weights and from W packed as it goes. */
#define _POSIX_C_SOURCE 200809L  /* mkstemp */
#include "check.h"
#include "ops.h"

#include <stdlib.h>
#include <unistd.h>

#define V 41
#define NS 12   /* streams: more than the 8 rows of the small-product path */
#define G 20    /* tokens each */

static int argmax(const rn_real *x, int n) {
    int b = 0;
    for (int i = 1; i < n; i++) if (x[i] > x[b]) b = i;
    return b;
}

/* Stream i alone: prompt of 1 + 3i tokens, then G greedy tokens; logits (G, V). */
static void alone(rn_model *m, const int32_t *prompt, int n, int32_t *toks, rn_real *logits) {
    rn_state *s;
    CHECK_OK(rn_state_create(m, 1, &s));
    CHECK_OK(rn_forward(m, s, prompt, 1, n, RN_CHUNKWISE, 4, RN_FWD_LAST_ONLY, logits));
    for (int k = 0; k < G; k++) {
        toks[k] = argmax(logits + (size_t)k * V, V);
        if (k + 1 < G) CHECK_OK(rn_forward(m, s, &toks[k], 1, 1, RN_RECURRENT, 1, RN_FWD_LAST_ONLY, logits + (size_t)(k + 1) * V));
    }
    rn_state_free(s);
}

static void staggered(rn_model *m, const char *label) {
    int32_t prompt[NS][1 + 3 * NS], want[NS][G];
    static rn_real ref[NS][G * V];
    for (int i = 0; i < NS; i++) {
        random_tokens(prompt[i], (size_t)(1 + 3 * i), V, 100 + (uint64_t)i);
        alone(m, prompt[i], 1 + 3 * i, want[i], ref[i]);
    }
    /* Stream i joins before step i (prefilled alone, moved into the batch)
     * and leaves after its G tokens: rows at many positions every step. */
    rn_state *batch, *one;
    CHECK_OK(rn_state_create(m, 1, &batch));
    CHECK_OK(rn_state_create(m, 1, &one));
    rn_real logits[NS * V];
    int32_t feed[NS];
    int who[NS], done[NS] = {0}, nd = 0, worst_tok = 0, joined = 0, steps = 0, max_rows = 0;
    double worst = 0;
    while (joined < NS || nd > 0) {
        if (joined < NS) {
            int i = joined++;
            rn_state_reset(one);
            CHECK_OK(rn_forward(m, one, prompt[i], 1, 1 + 3 * i, RN_CHUNKWISE, 4, RN_FWD_LAST_ONLY, logits + (size_t)nd * V));
            CHECK_OK(rn_state_resize(batch, nd + 1));
            CHECK_OK(rn_state_copy_row(batch, nd, one, 0));
            who[nd++] = i;
        }
        if (nd > max_rows) max_rows = nd;
        for (int r = 0; r < nd; r++) {
            int i = who[r], k = done[i];
            double e = rel_err(logits + (size_t)r * V, ref[i] + (size_t)k * V, V);
            if (e > worst) worst = e;
            feed[r] = argmax(logits + (size_t)r * V, V);
            worst_tok += feed[r] != want[i][k];
            CHECK(rn_state_row_pos(batch, r) == 1 + 3 * i + k, "row %d at position %lld", r, (long long)rn_state_row_pos(batch, r));
            done[i]++;
        }
        /* leave: the last row moves into the place of a finished one */
        for (int r = nd - 1; r >= 0; r--)
            if (done[who[r]] == G) {
                nd--;
                if (r != nd) {
                    CHECK_OK(rn_state_copy_row(batch, r, batch, nd));
                    who[r] = who[nd];
                    feed[r] = feed[nd];
                }
            }
        if (nd == 0) continue;
        CHECK_OK(rn_state_resize(batch, nd));
        CHECK_OK(rn_forward(m, batch, feed, nd, 1, RN_RECURRENT, 1, RN_FWD_LAST_ONLY, logits));
        steps++;
    }
    CHECK(worst == 0, "%s: batched logits differ from alone by %.2e", label, worst);
    CHECK(worst_tok == 0, "%s: %d greedy tokens differ from alone", label, worst_tok);
    printf("  %-16s %d streams joining and leaving, up to %d rows a step (%d steps): logits rel err %.1e, greedy tokens equal\n",
           label, NS, max_rows, steps, worst);
    rn_state_free(one);
    rn_state_free(batch);
}

/* The same loaded from a file in f32, bf16, f16, q8_0 and q4_0 (int8
 * activations): their kernels take all the rows of a step at once, each
 * row by the same operations, so a row's bits do not depend on the batch
 * either (the float64 build dequantises them on load). */
static void staggered_quantized(void) {
    rn_model *m = make_model(RN_PRESET_TORCHSCALE, 32, 2, 64, 2, V, 17);
    /* f32 first: loaded, its products read the weights packed in panels */
    const rn_wtype ts[] = {RN_WTYPE_F32, RN_WTYPE_BF16, RN_WTYPE_F16, RN_WTYPE_Q8_0, RN_WTYPE_Q4_0};
    for (int i = 0; i < 5; i++) {
        char path[] = "/tmp/test_batch_XXXXXX", label[64];
        int fd = mkstemp(path);
        CHECK(fd >= 0, "mkstemp");
        if (fd < 0) continue;
        close(fd);
        rn_model *q = NULL;
        rn_status st = ts[i] == RN_WTYPE_F32 ? rn_model_save(m, path) : rn_model_quantize(m, path, ts[i], 0);
        CHECK(st == RN_OK && rn_model_load(path, &q) == RN_OK, "quantize %s: %s", rn_wtype_name(ts[i]), rn_last_error());
        if (q) {
            snprintf(label, sizeof label, "torchscale %s", rn_wtype_name(ts[i]));
            staggered(q, label);
            rn_model_free(q);
        }
        unlink(path);
    }
    rn_model_free(m);
}

/* A chunkwise piece of 6 tokens (chunks of 4) over rows at positions 9, 5
 * and 0 (a row reset alone) equals each row alone. */
static void chunk_rows(rn_preset p) {
    rn_model *m = make_model(p, 32, 2, 64, 2, V, 23);
    int32_t pre[14], x[3 * 6];
    random_tokens(pre, 14, V, 7);
    random_tokens(x, 18, V, 8);
    rn_state *b, *s;
    CHECK_OK(rn_state_create(m, 3, &b));
    CHECK_OK(rn_state_create(m, 1, &s));
    int32_t p3[3 * 5];
    for (int r = 0; r < 3; r++) memcpy(p3 + r * 5, pre + r * 4, 5 * sizeof(int32_t));
    CHECK_OK(rn_forward(m, b, p3, 3, 5, RN_CHUNKWISE, 4, 0, NULL));       /* all at 5 */
    CHECK(rn_state_pos(b) == 5 && rn_state_row_pos(b, 2) == 5, "rows at 5");
    rn_state_reset(s);
    CHECK_OK(rn_forward(m, s, pre, 1, 9, RN_CHUNKWISE, 4, 0, NULL));
    CHECK_OK(rn_state_copy_row(b, 0, s, 0));                            /* row 0 at 9 */
    CHECK_OK(rn_state_reset_row(b, 2));                                 /* row 2 at 0 */
    CHECK(rn_state_row_pos(b, 0) == 9 && rn_state_row_pos(b, 1) == 5 && rn_state_row_pos(b, 2) == 0,
          "row positions %lld %lld %lld", (long long)rn_state_row_pos(b, 0), (long long)rn_state_row_pos(b, 1),
          (long long)rn_state_row_pos(b, 2));
    rn_real got[3 * 6 * V], want[6 * V];
    CHECK_OK(rn_forward(m, b, x, 3, 6, RN_CHUNKWISE, 4, 0, got));
    const int start[3] = {9, 5, 0};
    double worst = 0;
    for (int r = 0; r < 3; r++) {
        rn_state_reset(s);
        if (r == 0) CHECK_OK(rn_forward(m, s, pre, 1, 9, RN_CHUNKWISE, 4, 0, NULL));
        if (r == 1) CHECK_OK(rn_forward(m, s, pre + 4, 1, 5, RN_CHUNKWISE, 4, 0, NULL));
        CHECK_OK(rn_forward(m, s, x + r * 6, 1, 6, RN_CHUNKWISE, 4, 0, want));
        double e = rel_err(got + (size_t)r * 6 * V, want, 6 * V);
        if (e > worst) worst = e;
        CHECK(rn_state_row_pos(b, r) == start[r] + 6, "row %d ends at %lld", r, (long long)rn_state_row_pos(b, r));
    }
    CHECK(worst <= AGREE_TOL, "%s: chunkwise rows at 9, 5, 0 differ from alone by %.2e", rn_preset_name(p), worst);
    printf("  %-10s chunkwise piece over rows at positions 9, 5, 0: rel err %.1e\n", rn_preset_name(p), worst);
    rn_state_free(s);
    rn_state_free(b);
    rn_model_free(m);
}

/* Resizing keeps rows (and their positions); new rows are empty at 0;
 * rows that do not exist, and states of another model, are refused. */
static void row_api(void) {
    rn_model *m = make_model(RN_PRESET_TORCHSCALE, 32, 2, 64, 2, V, 5);
    rn_model *m2 = make_model(RN_PRESET_TORCHSCALE, 32, 4, 64, 2, V, 5);
    rn_state *b, *o, *bad;
    CHECK_OK(rn_state_create(m, 2, &b));
    CHECK_OK(rn_state_create(m, 1, &o));
    CHECK_OK(rn_state_create(m2, 1, &bad));
    int32_t t[2 * 3] = {1, 2, 3, 4, 5, 6};
    rn_real l1[V], l2[V];
    CHECK_OK(rn_forward(m, b, t, 2, 3, RN_CHUNKWISE, 2, 0, NULL));
    CHECK_OK(rn_state_resize(b, 5));
    CHECK(rn_state_batch(b) == 5 && rn_state_row_pos(b, 1) == 3 && rn_state_row_pos(b, 4) == 0, "resize keeps rows");
    CHECK_OK(rn_state_resize(b, 1));
    CHECK_OK(rn_state_resize(b, 2));
    CHECK(rn_state_row_pos(b, 1) == 0, "a row dropped and grown again starts at 0");
    /* row 0 moved out continues as its own stream */
    CHECK_OK(rn_state_copy_row(o, 0, b, 0));
    int32_t nx = 7;
    CHECK_OK(rn_forward(m, o, &nx, 1, 1, RN_RECURRENT, 1, 0, l1));
    rn_state_reset(o);
    CHECK_OK(rn_forward(m, o, t, 1, 3, RN_CHUNKWISE, 3, 0, NULL));
    CHECK_OK(rn_forward(m, o, &nx, 1, 1, RN_RECURRENT, 1, 0, l2));
    CHECK(rel_err(l1, l2, V) <= AGREE_TOL, "a row moved out continues its stream: %.2e", rel_err(l1, l2, V));
    CHECK(rn_state_copy_row(b, 2, o, 0) == RN_ERR_ARG, "copy into a row past the batch");
    CHECK(rn_state_copy_row(b, 0, o, -1) == RN_ERR_ARG, "copy from row -1");
    CHECK(rn_state_copy_row(b, 0, bad, 0) == RN_ERR_ARG, "copy from another model's state");
    CHECK(rn_state_reset_row(b, 2) == RN_ERR_ARG, "reset a row past the batch");
    CHECK(rn_state_resize(b, 0) == RN_ERR_ARG, "resize to 0");
    CHECK(rn_state_row_pos(b, -1) == -1 && rn_state_row_pos(b, 2) == -1, "positions of missing rows");
    CHECK(rn_state_copy(b, o) == RN_ERR_ARG, "rn_state_copy needs equal batches");
    rn_state_free(bad);
    rn_state_free(o);
    rn_state_free(b);
    rn_model_free(m2);
    rn_model_free(m);
}

/* The library's few-row products (internal: ops.h): rni_gemm's and the
 * panel kernel's, which decoding runs. */
/* The worst relative error of row i of C = A W^T (+ C0 with beta) against
 * a float64 sum. */
static double row_error(const rn_real *A, const rn_real *W, const rn_real *C0, const rn_real *C, int i, int N, int K,
                        int beta) {
    double worst = 0;
    for (int j = 0; j < N; j++) {
        double want = beta ? C0[(size_t)i * N + j] : 0;
        for (int k = 0; k < K; k++) want += (double)A[(size_t)i * K + k] * W[(size_t)j * K + k];
        worst = fmax(worst, fabs(C[(size_t)i * N + j] - want) / (1 + fabs(want)));
    }
    return worst;
}

static void few_rows(void) {
    const int shapes[][2] = {{1, 16}, {5, 7}, {131, 300}, {1536, 256}, {256, 512}}; /* N, K */
    int saved = rn_get_threads();
    for (int si = 0; si < 5; si++) {
        int N = shapes[si][0], K = shapes[si][1], Mmax = 64;
        rn_real *A = malloc(sizeof(rn_real) * Mmax * K), *W = malloc(sizeof(rn_real) * (size_t)N * K);
        rn_real *C = malloc(sizeof(rn_real) * Mmax * N), *C1 = malloc(sizeof(rn_real) * N), *C0 = malloc(sizeof(rn_real) * Mmax * N);
        rn_rng r;
        rn_rng_seed(&r, 12345 + si);
        for (int i = 0; i < Mmax * K; i++) A[i] = (rn_real)rn_rng_uniform(&r) - 0.5f;
        for (size_t i = 0; i < (size_t)N * K; i++) W[i] = (rn_real)rn_rng_uniform(&r) - 0.5f;
        for (int i = 0; i < Mmax * N; i++) C0[i] = (rn_real)rn_rng_uniform(&r);
        int differ = 0;
        double worst = 0;
        for (int th = 1; th <= 2; th++) {
            rn_set_threads(th);
            for (int beta = 0; beta <= 1; beta++)
                for (int M = 1; M <= Mmax; M += M < 8 ? 1 : 7) {
                    memcpy(C, C0, sizeof(rn_real) * M * N);
                    rni_gemm(0, 1, M, N, K, 1, A, K, W, K, beta, C, N);
                    for (int i = 0; i < M; i++) {
                        /* row i alone, on one thread */
                        rn_set_threads(1);
                        memcpy(C1, C0 + (size_t)i * N, sizeof(rn_real) * N);
                        rni_gemm(0, 1, 1, N, K, 1, A + (size_t)i * K, K, W, K, beta, C1, N);
                        rn_set_threads(th);
                        differ += memcmp(C1, C + (size_t)i * N, sizeof(rn_real) * N) != 0;
                        worst = fmax(worst, row_error(A, W, C0, C, i, N, K, beta));
                    }
                }
        }
        /* the same from W packed in panels (what a loaded model's
         * products read): each row alone equal to it in any batch, and
         * within rounding of the float64 sum */
        rn_real *pk = malloc(sizeof(rn_real) * rni_panel_size(N, K)), *C2 = malloc(sizeof(rn_real) * Mmax * N);
        rni_panel_pack(W, K, N, K, pk);
        for (int th = 1; th <= 2; th++) {
            rn_set_threads(th);
            for (int acc = 0; acc <= 1; acc++)
                for (int M = 1; M <= Mmax; M += M < 12 ? 1 : 5) {
                    memcpy(C, C0, sizeof(rn_real) * M * N);
                    rni_panel_gemm(M, N, K, A, K, pk, C, N, acc);
                    /* all M rows from W unpacked (packed block by block as it goes) */
                    memcpy(C2, C0, sizeof(rn_real) * M * N);
                    rni_panel_gemm_w(M, N, K, A, K, NULL, W, K, C2, N, acc);
                    differ += memcmp(C2, C, sizeof(rn_real) * M * N) != 0;
                    for (int i = 0; i < M; i++) {
                        rn_set_threads(1);
                        memcpy(C1, C0 + (size_t)i * N, sizeof(rn_real) * N);
                        rni_panel_gemm(1, N, K, A + (size_t)i * K, K, pk, C1, N, acc);
                        rn_set_threads(th);
                        differ += memcmp(C1, C + (size_t)i * N, sizeof(rn_real) * N) != 0;
                        /* from W unpacked (packed as it goes): the same bits */
                        memcpy(C1, C0 + (size_t)i * N, sizeof(rn_real) * N);
                        rni_panel_gemm_w(1, N, K, A + (size_t)i * K, K, NULL, W, K, C1, N, acc);
                        differ += memcmp(C1, C + (size_t)i * N, sizeof(rn_real) * N) != 0;
                        worst = fmax(worst, row_error(A, W, C0, C, i, N, K, acc));
                    }
                }
        }
        free(pk); free(C2);
        CHECK(differ == 0, "few-row product N %d K %d: %d rows differ from the row alone", N, K, differ);
        CHECK(worst < (sizeof(rn_real) == 4 ? 2e-5 : 1e-13), "few-row product N %d K %d: off the float64 sum by %.2e", N, K, worst);
        free(A); free(W); free(C); free(C1); free(C0);
    }
    rn_set_threads(saved);
}

int main(void) {
    printf("continuous batching (%s)\n", PRECISION);
    few_rows();
    const rn_preset ps[] = {RN_PRESET_TORCHSCALE, RN_PRESET_SEED, RN_PRESET_FLA};
    for (int i = 0; i < 3; i++) {
        rn_model *m = make_model(ps[i], 32, 2, 64, 2, V, 17);
        staggered(m, rn_preset_name(ps[i]));
        rn_model_free(m);
        chunk_rows(ps[i]);
    }
    staggered_quantized();
    row_api();
    CHECK_DONE();
}
