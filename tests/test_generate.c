/* test_generate.c: generation and evaluation. Greedy decoding equals the
 * argmax of the parallel logits; top-k / top-p select exactly the right
 * support; at V = 128,000 the sampler (which sorts only candidates) equals
 * a full-sort reference bit for bit; samplers on two threads at once draw
 * what they draw one after the other; a seed reproduces its text; scoring
 * a stream with the state carried over arbitrary splits equals one pass
 * and the logits' loss. */
#include "check.h"

#include <pthread.h>

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

/* ------------------------------------------- the full-sort reference */

/* The sampler as it was before it selected candidates: probabilities at
 * the temperature, the whole vocabulary sorted (qsort; ties: lower id
 * first), top-k, then the shortest prefix reaching top_p of the rest. */
static const double *ref_prob;
static int ref_desc(const void *a, const void *b) {
    int i = *(const int *)a, j = *(const int *)b;
    if (ref_prob[i] != ref_prob[j]) return ref_prob[i] > ref_prob[j] ? -1 : 1;
    return i - j;
}

/* Support (ids, and their unnormalised probabilities in w) of cfg on
 * logits (V); returns its size. */
static int ref_support(const rn_sampler_config *cfg, const rn_real *logits, int V, int32_t *sup, double *w) {
    double T = cfg->temperature, mx = logits[0];
    for (int i = 1; i < V; i++) mx = logits[i] > mx ? logits[i] : mx;
    if (T == 0) {
        int best = 0;
        for (int i = 1; i < V; i++) if (logits[i] > logits[best]) best = i;
        sup[0] = best; w[0] = 1;
        return 1;
    }
    double *prob = malloc(sizeof(double) * V), sum = 0;
    int *idx = malloc(sizeof(int) * V);
    for (int i = 0; i < V; i++) { prob[i] = exp((logits[i] - mx) / T); sum += prob[i]; idx[i] = i; }
    for (int i = 0; i < V; i++) prob[i] /= sum;
    ref_prob = prob;
    qsort(idx, (size_t)V, sizeof *idx, ref_desc);
    int n = V;
    if (cfg->top_k > 0 && cfg->top_k < n) n = cfg->top_k;
    if (cfg->top_p < 1) {
        double total = 0, cum = 0;
        for (int i = 0; i < n; i++) total += prob[idx[i]];
        for (int i = 0; i < n; i++) {
            cum += prob[idx[i]];
            if (cum >= cfg->top_p * total) { n = i + 1; break; }
        }
    }
    for (int i = 0; i < n; i++) { sup[i] = idx[i]; w[i] = prob[idx[i]]; }
    free(prob); free(idx);
    return n;
}

/* The reference's draw from its support with generator r. */
static int32_t ref_draw(const int32_t *sup, const double *w, int n, rn_rng *r) {
    if (n == 1) return sup[0];
    double z = 0;
    for (int i = 0; i < n; i++) z += w[i];
    double u = rn_rng_uniform(r) * z, cum = 0;
    for (int i = 0; i < n; i++) {
        cum += w[i];
        if (u < cum) return sup[i];
    }
    return sup[n - 1];
}

/* Logits of V tokens: 0 Zipf-like (the i-th most likely of shuffled ids
 * has logit -ln i), 1 flat (N(0, 1)), 2 ties (8 distinct values) and some
 * -inf, 3 a peaked few over a flat rest. */
static void make_logits(rn_real *l, int V, int shape, uint64_t seed) {
    rn_rng r;
    rn_rng_seed(&r, seed);
    for (int i = 0; i < V; i++) {
        double g = rn_rng_normal(&r);
        switch (shape) {
        case 0: l[i] = (rn_real)-log(i + 1.0); break;
        case 1: l[i] = (rn_real)g; break;
        case 2: l[i] = rn_rng_u64(&r) % 100 == 0 ? (rn_real)-INFINITY : (rn_real)(int)(4 * g) * 0.5f; break;
        default: l[i] = (rn_real)(rn_rng_u64(&r) % 1000 == 0 ? 8 + g : g); break;
        }
    }
    if (shape == 0)
        for (int i = V - 1; i > 0; i--) {
            int j = (int)(rn_rng_u64(&r) % (uint64_t)(i + 1));
            rn_real t = l[i]; l[i] = l[j]; l[j] = t;
        }
}

/* V = 128,000 (a tokenizer's vocabulary): support, probabilities and 10
 * draws equal the full-sort reference exactly, for top-k, top-p, both,
 * temperature alone and greedy, on four shapes of logits. */
static void large_vocab(void) {
    enum { V = 128000, DRAWS = 10 };
    rn_real *l = malloc(sizeof(rn_real) * V);
    int32_t *sup = malloc(sizeof(int32_t) * V), *rsup = malloc(sizeof(int32_t) * V);
    double *pr = malloc(sizeof(double) * V), *rw = malloc(sizeof(double) * V);
    const rn_sampler_config cfgs[] = {
        {0, 0, 1, 3}, {0.8, 40, 1, 3}, {0.8, 0, 0.9, 3}, {1.0, 0, 0.5, 4}, {0.7, 0, 0.99, 5}, {0.8, 40, 0.9, 6},
        {1.2, 1000, 0.95, 7}, {0.8, 1, 1, 8}, {1.0, 0, 1, 9}, {0.5, 0, 0.999, 10},
    };
    int bad = 0, checked = 0;
    for (int shape = 0; shape < 4; shape++) {
        make_logits(l, V, shape, 100 + shape);
        for (size_t c = 0; c < sizeof cfgs / sizeof *cfgs; c++) {
            int rn = ref_support(&cfgs[c], l, V, rsup, rw);
            rn_sampler *s;
            CHECK_OK(rn_sampler_create(V, &cfgs[c], &s));
            int n = rn_sampler_support(s, l, sup, pr);
            int same = n == rn && memcmp(sup, rsup, sizeof *sup * (size_t)n) == 0;
            double z = 0;
            for (int i = 0; i < rn; i++) z += rw[i];
            for (int i = 0; same && i < n; i++) same = pr[i] == rw[i] / z;
            rn_rng r;
            rn_rng_seed(&r, cfgs[c].seed);
            for (int d = 0; same && d < DRAWS; d++) same = rn_sampler_sample(s, l) == ref_draw(rsup, rw, rn, &r);
            if (!same) {
                bad++;
                fprintf(stderr, "FAIL: shape %d, T %g top-k %d top-p %g: support %d (reference %d) or draws differ\n",
                        shape, cfgs[c].temperature, cfgs[c].top_k, cfgs[c].top_p, n, rn);
            }
            checked++;
            rn_sampler_free(s);
        }
    }
    CHECK(bad == 0, "%d of %d V = 128000 cases differ from the full-sort reference", bad, checked);
    printf("  V = %d: %d cases (4 shapes of logits x 10 settings) equal the full-sort reference\n", V, checked);
    free(l); free(sup); free(rsup); free(pr); free(rw);
}

/* Logits with NaN or infinities (a diverged model): any setting draws a
 * token of the vocabulary and a support of 1..V, without reading or
 * writing out of bounds (the sanitizer builds check that). */
static void nonfinite(void) {
    enum { V = 3000 };
    rn_real *l = malloc(sizeof(rn_real) * V);
    int32_t *sup = malloc(sizeof(int32_t) * V);
    double *pr = malloc(sizeof(double) * V);
    const rn_sampler_config cfgs[] = {{0, 0, 1, 1}, {0.8, 40, 1, 1}, {0.8, 0, 0.9, 1}, {1, 0, 1, 1}, {0.8, 40, 0.9, 1}};
    int bad = 0;
    for (int shape = 0; shape < 4; shape++) {
        make_logits(l, V, 1, 400 + shape);
        for (int i = 0; i < V; i++)
            if (shape == 0 || (i % 7 == 0 && shape == 1)) l[i] = (rn_real)NAN;
            else if (i % 11 == 0 && shape == 2) l[i] = (rn_real)INFINITY;
            else if (shape == 3 && i == 0) l[i] = (rn_real)NAN;
        for (size_t c = 0; c < sizeof cfgs / sizeof *cfgs; c++) {
            rn_sampler *s;
            CHECK_OK(rn_sampler_create(V, &cfgs[c], &s));
            int n = rn_sampler_support(s, l, sup, pr);
            bad += n < 1 || n > V;
            for (int i = 0; i < n && n <= V; i++) bad += sup[i] < 0 || sup[i] >= V;
            for (int d = 0; d < 5; d++) {
                int32_t t = rn_sampler_sample(s, l);
                bad += t < 0 || t >= V;
            }
            rn_sampler_free(s);
        }
    }
    CHECK(bad == 0, "%d draws or supports outside the vocabulary on non-finite logits", bad);
    free(l); free(sup); free(pr);
}

/* Two samplers on two threads at once draw what they draw one after the
 * other (the sampler keeps no shared state). */
typedef struct { const rn_sampler_config *cfg; const rn_real *logits; int V, n; int32_t *out; } sample_job;

static void *sample_run(void *arg) {
    sample_job *j = arg;
    rn_sampler *s;
    if (rn_sampler_create(j->V, j->cfg, &s) != RN_OK) return NULL;
    for (int i = 0; i < j->n; i++) j->out[i] = rn_sampler_sample(s, j->logits + (size_t)(i % 4) * j->V);
    rn_sampler_free(s);
    return j;
}

static void threads(void) {
    enum { V = 20000, N = 200 };
    rn_real *l[2] = {malloc(sizeof(rn_real) * 4 * V), malloc(sizeof(rn_real) * 4 * V)};
    for (int k = 0; k < 4; k++) { make_logits(l[0] + k * V, V, 1, 200 + k); make_logits(l[1] + k * V, V, 3, 300 + k); }
    /* temperature alone: both threads sort their whole vocabulary */
    const rn_sampler_config cfg[2] = {{1.0, 0, 1, 11}, {0.9, 0, 1, 12}};
    int32_t *seq = malloc(sizeof(int32_t) * 4 * N), *par = seq + 2 * N;
    for (int t = 0; t < 2; t++) {
        sample_job j = {&cfg[t], l[t], V, N, seq + t * N};
        sample_run(&j);
    }
    pthread_t th[2];
    sample_job jobs[2];
    int started = 1;
    for (int t = 0; t < 2; t++) {
        jobs[t] = (sample_job){&cfg[t], l[t], V, N, par + t * N};
        started &= pthread_create(&th[t], NULL, sample_run, &jobs[t]) == 0;
    }
    CHECK(started, "could not start two threads");
    void *ret[2] = {NULL, NULL};
    for (int t = 0; t < 2 && started; t++) pthread_join(th[t], &ret[t]);
    CHECK(ret[0] && ret[1], "a sampler on a thread failed");
    CHECK(memcmp(seq, par, sizeof(int32_t) * 2 * N) == 0, "two samplers on two threads drew other tokens than one after the other");
    free(l[0]); free(l[1]); free(seq);
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
    large_vocab();
    nonfinite();
    threads();
    seeds();
    CHECK_DONE();
}
