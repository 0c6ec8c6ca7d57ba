/* test_generate.c: generation and evaluation. Greedy decoding equals the
 * argmax of the parallel logits; top-k / top-p select exactly the right
 * support; a seed reproduces its text; scoring a stream with the state
 * carried over arbitrary splits equals one pass and the logits' loss. */
#include "check.h"

static int argmax(const rn_real *x, int n) {
    int b = 0;
    for (int i = 1; i < n; i++) if (x[i] > x[b]) b = i;
    return b;
}

static void greedy(rn_preset p) {
    rn_model *m = make_model(p, 32, 4, 64, 2, 41, 9);
    int V = 41, P = 13, G = 60;
    int32_t seq[13 + 60];
    random_tokens(seq, (size_t)P, V, 3);
    rn_sampler_config sc = {0, 0, 1, 1};
    rn_session *s;
    CHECK_OK(rn_session_create(m, &sc, 4, &s));
    CHECK_OK(rn_session_prefill(s, seq, P));
    for (int i = 0; i < G; i++) CHECK_OK(rn_session_step(s, &seq[P + i]));
    CHECK(rn_session_pos(s) == P + G, "session position %lld", (long long)rn_session_pos(s));
    rn_real *logits = malloc(sizeof(rn_real) * (size_t)(P + G) * V);
    rn_state *st;
    CHECK_OK(rn_state_create(m, 1, &st));
    CHECK_OK(rn_forward(m, st, seq, 1, P + G, RN_PARALLEL, 0, 0, logits));
    int same = 0;
    for (int i = 0; i < G; i++) same += argmax(logits + (size_t)(P - 1 + i) * V, V) == seq[P + i];
    CHECK(same == G, "%s: greedy tokens equal the parallel argmax at %d of %d positions", rn_preset_name(p), same, G);
    printf("  %-10s greedy decoding = parallel argmax at %d/%d positions\n", rn_preset_name(p), same, G);
    rn_state_free(st);
    free(logits);
    rn_session_free(s);
    rn_model_free(m);
}

/* Support of the sampler on logits log(p). */
static void support(void) {
    const double p[6] = {0.4, 0.3, 0.15, 0.1, 0.04, 0.01};
    rn_real logits[6];
    for (int i = 0; i < 6; i++) logits[i] = (rn_real)log(p[i]);
    /* shuffle the order so sorting matters: ids 5,3,0,1,4,2 */
    const int perm[6] = {2, 3, 5, 1, 4, 0};
    rn_real lg[6];
    for (int i = 0; i < 6; i++) lg[perm[i]] = logits[i];
    struct { int k; double top_p, temp; int n; } cases[] = {
        {0, 1, 1, 6}, {2, 1, 1, 2}, {0, 0.65, 1, 2}, {0, 0.71, 1, 3}, {0, 0.39, 1, 1}, {0, 0.41, 1, 2},
        {3, 0.8, 1, 2}, {3, 0.9, 1, 3}, {4, 1, 1, 4}, {0, 0.999, 1, 6},
    };
    int32_t sup[6];
    double pr[6];
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        rn_sampler_config sc = {cases[c].temp, cases[c].k, cases[c].top_p, 1};
        rn_sampler *s;
        CHECK_OK(rn_sampler_create(6, &sc, &s));
        int n = rn_sampler_support(s, lg, sup, pr);
        CHECK(n == cases[c].n, "case %zu (top-k %d, top-p %g): support of %d, want %d", c, cases[c].k, cases[c].top_p, n, cases[c].n);
        double z = 0;
        for (int i = 0; i < n && i < cases[c].n; i++) {
            CHECK(sup[i] == perm[i], "case %zu: support[%d] = %d, want %d", c, i, (int)sup[i], perm[i]);
            z += p[i];
        }
        for (int i = 0; i < n && i < cases[c].n; i++)
            CHECK(fabs(pr[i] - p[i] / z) < 1e-6, "case %zu: probability %g, want %g", c, pr[i], p[i] / z);
        rn_sampler_free(s);
    }
    /* Draws follow the renormalised probabilities and stay in the support. */
    rn_sampler_config sc = {1, 2, 1, 42};
    rn_sampler *s;
    CHECK_OK(rn_sampler_create(6, &sc, &s));
    int cnt[6] = {0}, N = 20000;
    for (int i = 0; i < N; i++) cnt[rn_sampler_sample(s, lg)]++;
    CHECK(cnt[perm[0]] + cnt[perm[1]] == N, "top-k 2 drew outside its support");
    double f = (double)cnt[perm[0]] / N;
    CHECK(fabs(f - 0.4 / 0.7) < 0.02, "top-k 2 frequency %.3f, want %.3f", f, 0.4 / 0.7);
    rn_sampler_free(s);
    /* Temperature 0 is argmax; a high temperature flattens. */
    rn_sampler_config g = {0, 0, 1, 1};
    CHECK_OK(rn_sampler_create(6, &g, &s));
    CHECK(rn_sampler_sample(s, lg) == perm[0], "greedy is not the argmax");
    rn_sampler_free(s);
}

static void seeds(void) {
    rn_model *m = make_model(RN_PRESET_TORCHSCALE, 32, 4, 64, 2, 41, 9);
    int32_t prompt[3] = {1, 2, 3}, out[3][50];
    uint64_t seed[3] = {5, 5, 6};
    for (int r = 0; r < 3; r++) {
        rn_sampler_config sc = {1.0, 0, 0.95, seed[r]};
        rn_session *s;
        CHECK_OK(rn_session_create(m, &sc, 8, &s));
        CHECK_OK(rn_session_prefill(s, prompt, 3));
        for (int i = 0; i < 50; i++) CHECK_OK(rn_session_step(s, &out[r][i]));
        rn_session_free(s);
    }
    CHECK(memcmp(out[0], out[1], sizeof out[0]) == 0, "the same seed gave different text");
    CHECK(memcmp(out[0], out[2], sizeof out[0]) != 0, "different seeds gave the same text");
    rn_model_free(m);
}

/* Scoring with the state carried over splits = one pass = the loss of the
 * logits of one forward. */
static void scoring(rn_preset p) {
    rn_model *m = make_model(p, 32, 4, 64, 2, 41, 9);
    int V = 41, T = 700;
    int32_t *tok = malloc(sizeof(int32_t) * (T + 1));
    random_tokens(tok, (size_t)T + 1, V, 8);
    rn_state *st;
    CHECK_OK(rn_state_create(m, 1, &st));
    double one, part, total = 0;
    int cnt, c2, n = 0;
    CHECK_OK(rn_model_score(m, st, tok, tok + 1, T, 64, &one, &cnt));
    rn_state_reset(st);
    const int cuts[] = {0, 1, 2, 97, 300, 301, 555, 700};
    for (int i = 0; i + 1 < 8; i++) {
        CHECK_OK(rn_model_score(m, st, tok + cuts[i], tok + cuts[i] + 1, cuts[i + 1] - cuts[i], 16, &part, &c2));
        total += part;
        n += c2;
    }
    CHECK(n == cnt && fabs(total - one) <= AGREE_TOL * 10 * fabs(one), "%s: split scoring %.17g vs one pass %.17g",
          rn_preset_name(p), total, one);
    rn_real *logits = malloc(sizeof(rn_real) * (size_t)T * V);
    rn_state_reset(st);
    CHECK_OK(rn_forward(m, st, tok, 1, T, RN_PARALLEL, 0, 0, logits));
    double ref = 0;
    for (int t = 0; t < T; t++) {
        const rn_real *l = logits + (size_t)t * V;
        double mx = l[0], s = 0;
        for (int i = 1; i < V; i++) mx = l[i] > mx ? l[i] : mx;
        for (int i = 0; i < V; i++) s += exp(l[i] - mx);
        ref += mx + log(s) - l[tok[t + 1]];
    }
    CHECK(fabs(ref - one) <= AGREE_TOL * 10 * fabs(ref), "%s: score %.17g vs logits' loss %.17g", rn_preset_name(p), one, ref);
    printf("  %-10s split scoring vs one pass: %.2e; vs parallel logits: %.2e (relative)\n", rn_preset_name(p),
           fabs(total - one) / fabs(one), fabs(ref - one) / fabs(ref));
    free(logits);
    free(tok);
    rn_state_free(st);
    rn_model_free(m);
}

int main(void) {
    rn_set_threads(2);
    for (int p = 0; p < 3; p++) {
        greedy((rn_preset)p);
        scoring((rn_preset)p);
    }
    support();
    seeds();
    CHECK_DONE();
}
