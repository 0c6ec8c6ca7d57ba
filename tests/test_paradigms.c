/* test_paradigms.c: parallel, chunkwise and recurrent compute the same
 * function (spec: relative error <= 1e-12 in float64, 1e-5 in float32), at
 * any length and chunk size, for every preset; states hand over exactly
 * between paradigms; long recurrent runs stay finite and exact. */
#include "check.h"

typedef struct { int dim, heads, value_dim; } shape;

/* Logits (B, T, V) of tokens from a fresh state in one paradigm. */
static rn_real *run(rn_model *m, const int32_t *tok, int B, int T, rn_mode mode, int chunk) {
    int V = rn_model_config(m)->vocab;
    rn_real *out = malloc(sizeof(rn_real) * (size_t)B * T * V);
    rn_state *s;
    CHECK_OK(rn_state_create(m, B, &s));
    CHECK_OK(rn_forward(m, s, tok, B, T, mode, chunk, 0, out));
    CHECK(rn_state_pos(s) == T, "state position %lld != %d", (long long)rn_state_pos(s), T);
    rn_state_free(s);
    return out;
}

static void agreement(rn_preset p, shape sh, int B, int T, const int *chunks, int nchunks, int recurrent) {
    rn_model *m = make_model(p, sh.dim, sh.heads, sh.value_dim, 2, 37, 1000 + T);
    int V = 37;
    size_t n = (size_t)B * T * V;
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)B * T);
    random_tokens(tok, (size_t)B * T, V, T * 7 + B);
    rn_real *par = run(m, tok, B, T, RN_PARALLEL, 0);
    CHECK(all_finite(par, n), "parallel logits not finite");
    double worst = 0;
    for (int i = 0; i < nchunks; i++) {
        rn_real *ch = run(m, tok, B, T, RN_CHUNKWISE, chunks[i]);
        double e = rel_err(ch, par, n);
        CHECK(e <= AGREE_TOL, "%s %s d=%d H=%d Vd=%d B=%d T=%d chunk=%d: chunkwise vs parallel %.3g",
              rn_preset_name(p), PRECISION, sh.dim, sh.heads, sh.value_dim, B, T, chunks[i], e);
        if (e > worst) worst = e;
        free(ch);
    }
    if (recurrent) {
        rn_real *rec = run(m, tok, B, T, RN_RECURRENT, 0);
        double e = rel_err(rec, par, n);
        CHECK(e <= AGREE_TOL, "%s %s d=%d H=%d B=%d T=%d: recurrent vs parallel %.3g", rn_preset_name(p),
              PRECISION, sh.dim, sh.heads, B, T, e);
        if (e > worst) worst = e;
        free(rec);
    }
    printf("  %-10s %s d=%-3d H=%d Vd=%-3d B=%d T=%-5d worst rel err %.2e\n", rn_preset_name(p), PRECISION,
           sh.dim, sh.heads, sh.value_dim, B, T, worst);
    free(par);
    free(tok);
    rn_model_free(m);
}

/* Prefill N tokens in one paradigm, continue in another: equals parallel
 * over all tokens. */
static void handoff(rn_preset p) {
    rn_model *m = make_model(p, 32, 4, 64, 2, 37, 77);
    int B = 2, T = 150, V = 37;
    int32_t tok[2 * 150];
    random_tokens(tok, (size_t)B * T, V, 5);
    rn_real *ref = run(m, tok, B, T, RN_PARALLEL, 0);
    struct { rn_mode first; int chunk; int split; rn_mode second; } cases[] = {
        {RN_CHUNKWISE, 16, 100, RN_RECURRENT}, {RN_PARALLEL, 0, 37, RN_RECURRENT},
        {RN_CHUNKWISE, 7, 64, RN_CHUNKWISE},   {RN_RECURRENT, 0, 10, RN_PARALLEL},
        {RN_PARALLEL, 0, 149, RN_CHUNKWISE},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        int N = cases[c].split;
        rn_real *out = malloc(sizeof(rn_real) * (size_t)B * T * V), *part = malloc(sizeof(rn_real) * (size_t)B * T * V);
        int32_t a[2 * 150], b[2 * 150];
        for (int bb = 0; bb < B; bb++) {
            memcpy(a + bb * N, tok + bb * T, sizeof(int32_t) * N);
            memcpy(b + bb * (T - N), tok + bb * T + N, sizeof(int32_t) * (T - N));
        }
        rn_state *s;
        CHECK_OK(rn_state_create(m, B, &s));
        CHECK_OK(rn_forward(m, s, a, B, N, cases[c].first, cases[c].chunk, 0, part));
        for (int bb = 0; bb < B; bb++) memcpy(out + (size_t)bb * T * V, part + (size_t)bb * N * V, sizeof(rn_real) * N * V);
        CHECK_OK(rn_forward(m, s, b, B, T - N, cases[c].second, 5, 0, part));
        for (int bb = 0; bb < B; bb++)
            memcpy(out + ((size_t)bb * T + N) * V, part + (size_t)bb * (T - N) * V, sizeof(rn_real) * (T - N) * V);
        double e = rel_err(out, ref, (size_t)B * T * V);
        CHECK(e <= AGREE_TOL, "%s hand-off case %zu: rel err %.3g", rn_preset_name(p), c, e);
        printf("  %-10s hand-off %zu (split at %d): rel err %.2e\n", rn_preset_name(p), c, N, e);
        rn_state_free(s);
        free(out);
        free(part);
    }
    free(ref);
    rn_model_free(m);
}

/* 100,000 recurrent steps of the seed preset: finite, and equal to
 * chunkwise over the same tokens (xPos must not under/overflow). */
static void long_run(void) {
    rn_model *m = make_model(RN_PRESET_SEED, 16, 2, 32, 1, 11, 3);
    int T = 100000, V = 11;
    int32_t *tok = malloc(sizeof(int32_t) * T);
    random_tokens(tok, T, V, 9);
    rn_real *ch = run(m, tok, 1, T, RN_CHUNKWISE, 512);
    rn_real *rec = run(m, tok, 1, T, RN_RECURRENT, 0);
    CHECK(all_finite(rec, (size_t)T * V), "recurrent logits not finite over 100000 steps");
    double e = rel_err(rec, ch, (size_t)T * V);
    double e_tail = rel_err(rec + (size_t)(T - 1000) * V, ch + (size_t)(T - 1000) * V, 1000 * (size_t)V);
    CHECK(e <= AGREE_TOL && e_tail <= AGREE_TOL, "seed 100k: recurrent vs chunkwise %.3g (last 1000: %.3g)", e, e_tail);
    printf("  seed 100000 recurrent steps vs chunkwise: rel err %.2e (last 1000 positions %.2e)\n", e, e_tail);
    free(ch); free(rec); free(tok);
    rn_model_free(m);
}

int main(void) {
    rn_set_threads(2);
    const int chunks[] = {1, 3, 64, 512};
    const shape shapes[] = {{32, 4, 64}, {48, 3, 48}, {64, 2, 128}};
    for (int p = 0; p < RN_PRESET_COUNT; p++) {
        rn_preset pr = (rn_preset)p;
        for (int s = 0; s < 3; s++) {
            agreement(pr, shapes[s], 1, 1, chunks, 4, 1);
            agreement(pr, shapes[s], 3, 7, chunks, 4, 1);
            agreement(pr, shapes[s], 1, 64, chunks, 4, 1);
            agreement(pr, shapes[s], 3, 513, chunks, 4, 1);
        }
        agreement(pr, shapes[0], 1, 4096, chunks, 4, 1);
        agreement(pr, shapes[1], 3, 4096, chunks + 2, 2, 0);
        handoff(pr);
    }
    long_run();
    CHECK_DONE();
}
