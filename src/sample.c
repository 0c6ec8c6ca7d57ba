/* sample.c: sampling (temperature, top-k, top-p), generation sessions
 * (chunkwise prefill, then O(1) recurrent steps), and scoring of token
 * streams with the state carried across calls. */
#include "forward.h"
#include "ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------- sampler */

struct rn_sampler {
    rn_sampler_config cfg;
    int V;
    rn_rng rng;
    double *prob;   /* (V) */
    int *idx;       /* (V) */
};

void rn_sampler_config_default(rn_sampler_config *sc) {
    sc->temperature = 0.8;
    sc->top_k = 0;
    sc->top_p = 0.95;
    sc->seed = 1;
}

rn_status rn_sampler_create(int vocab, const rn_sampler_config *sc, rn_sampler **out) {
    *out = NULL;
    if (vocab < 1) return rni_fail(RN_ERR_ARG, "sampler: vocabulary %d", vocab);
    if (!(sc->temperature >= 0) || sc->top_k < 0 || !(sc->top_p > 0 && sc->top_p <= 1))
        return rni_fail(RN_ERR_ARG, "sampler: temperature must be >= 0, top-k >= 0, top-p in (0, 1]");
    rn_sampler *s = calloc(1, sizeof *s);
    if (!s) return rni_fail(RN_ERR_NOMEM, "out of memory");
    s->cfg = *sc;
    s->V = vocab;
    s->prob = malloc(sizeof(double) * (size_t)vocab);
    s->idx = malloc(sizeof(int) * (size_t)vocab);
    if (!s->prob || !s->idx) { rn_sampler_free(s); return rni_fail(RN_ERR_NOMEM, "out of memory"); }
    rn_rng_seed(&s->rng, sc->seed);
    *out = s;
    return RN_OK;
}

void rn_sampler_free(rn_sampler *s) {
    if (!s) return;
    free(s->prob);
    free(s->idx);
    free(s);
}

void rn_sampler_reseed(rn_sampler *s, uint64_t seed) { rn_rng_seed(&s->rng, seed); }

/* Sorts idx[0..n) by descending prob (ties: lower id first). */
static const double *sort_prob;
static int by_prob_desc(const void *a, const void *b) {
    int i = *(const int *)a, j = *(const int *)b;
    if (sort_prob[i] != sort_prob[j]) return sort_prob[i] > sort_prob[j] ? -1 : 1;
    return i - j;
}

int rn_sampler_support(rn_sampler *s, const rn_real *logits, int32_t *support, double *probs) {
    int V = s->V;
    double T = s->cfg.temperature, mx = logits[0];
    for (int i = 1; i < V; i++) mx = logits[i] > mx ? logits[i] : mx;
    if (T == 0) {
        int best = 0;
        for (int i = 1; i < V; i++) if (logits[i] > logits[best]) best = i;
        support[0] = best;
        if (probs) probs[0] = 1;
        return 1;
    }
    double sum = 0;
    for (int i = 0; i < V; i++) { s->prob[i] = exp((logits[i] - mx) / T); sum += s->prob[i]; s->idx[i] = i; }
    for (int i = 0; i < V; i++) s->prob[i] /= sum;
    sort_prob = s->prob;
    qsort(s->idx, (size_t)V, sizeof *s->idx, by_prob_desc);
    int n = V;
    if (s->cfg.top_k > 0 && s->cfg.top_k < n) n = s->cfg.top_k;
    if (s->cfg.top_p < 1) {
        /* The smallest prefix whose mass reaches top_p (of the top-k mass). */
        double total = 0, cum = 0;
        for (int i = 0; i < n; i++) total += s->prob[s->idx[i]];
        for (int i = 0; i < n; i++) {
            cum += s->prob[s->idx[i]];
            if (cum >= s->cfg.top_p * total) { n = i + 1; break; }
        }
    }
    double z = 0;
    for (int i = 0; i < n; i++) z += s->prob[s->idx[i]];
    for (int i = 0; i < n; i++) {
        support[i] = s->idx[i];
        if (probs) probs[i] = s->prob[s->idx[i]] / z;
    }
    return n;
}

int32_t rn_sampler_sample(rn_sampler *s, const rn_real *logits) {
    /* The support lands in idx (sorted), its probabilities in prob order. */
    int32_t *sup = (int32_t *)s->idx;
    int n = rn_sampler_support(s, logits, sup, NULL);
    if (n == 1) return sup[0];
    double z = 0;
    for (int i = 0; i < n; i++) z += s->prob[sup[i]];
    double u = rn_rng_uniform(&s->rng) * z, cum = 0;
    for (int i = 0; i < n; i++) {
        cum += s->prob[sup[i]];
        if (u < cum) return sup[i];
    }
    return sup[n - 1];
}

/* ------------------------------------------------------------ sessions */

struct rn_session {
    rn_model *m;
    rn_state *state;
    rn_sampler *sampler;
    int chunk;
    rn_real *logits;     /* (V): the next token's logits */
    int has_logits;
};

rn_status rn_session_create(rn_model *m, const rn_sampler_config *sc, int chunk, rn_session **out) {
    *out = NULL;
    if (chunk < 1) return rni_fail(RN_ERR_ARG, "session: chunk length %d must be >= 1", chunk);
    rn_session *s = calloc(1, sizeof *s);
    if (!s) return rni_fail(RN_ERR_NOMEM, "out of memory");
    s->m = m;
    s->chunk = chunk;
    rn_status st = rn_state_create(m, 1, &s->state);
    if (st == RN_OK) st = rn_sampler_create(m->cfg.vocab, sc, &s->sampler);
    if (st == RN_OK && !(s->logits = malloc(sizeof(rn_real) * (size_t)m->cfg.vocab))) st = rni_fail(RN_ERR_NOMEM, "out of memory");
    if (st != RN_OK) { rn_session_free(s); return st; }
    *out = s;
    return RN_OK;
}

void rn_session_free(rn_session *s) {
    if (!s) return;
    rn_state_free(s->state);
    rn_sampler_free(s->sampler);
    free(s->logits);
    free(s);
}

void rn_session_reset(rn_session *s) {
    rn_state_reset(s->state);
    s->has_logits = 0;
}

rn_status rn_session_prefill(rn_session *s, const int32_t *tokens, int n) {
    if (n < 1) return rni_fail(RN_ERR_ARG, "prefill: no tokens");
    rn_status st = rn_forward(s->m, s->state, tokens, 1, n, RN_CHUNKWISE, s->chunk, RN_FWD_LAST_ONLY, s->logits);
    if (st == RN_OK) s->has_logits = 1;
    return st;
}

rn_status rn_session_feed(rn_session *s, int32_t token) {
    rn_status st = rn_forward(s->m, s->state, &token, 1, 1, RN_RECURRENT, 1, RN_FWD_LAST_ONLY, s->logits);
    if (st == RN_OK) s->has_logits = 1;
    return st;
}

rn_status rn_session_step(rn_session *s, int32_t *token) {
    if (!s->has_logits) return rni_fail(RN_ERR_ARG, "step: prefill a prompt first");
    *token = rn_sampler_sample(s->sampler, s->logits);
    return rn_session_feed(s, *token);
}

const rn_real *rn_session_logits(const rn_session *s) { return s->has_logits ? s->logits : NULL; }
int64_t rn_session_pos(const rn_session *s) { return rn_state_pos(s->state); }
rn_state *rn_session_state(rn_session *s) { return s->state; }

/* --------------------------------------------------------------- score */

rn_status rn_model_score(rn_model *m, rn_state *state, const int32_t *x, const int32_t *y, int T,
                         int chunk, double *sum_nll, int *count) {
    int V = m->cfg.vocab;
    rn_real *logits = rni_alloc((size_t)T * V, sizeof(rn_real));
    if (!logits) return rni_fail(RN_ERR_NOMEM, "out of memory for %d x %d logits", T, V);
    for (int i = 0; i < T; i++)
        if (y[i] >= V) { rni_free(logits); return rni_fail(RN_ERR_ARG, "target %d is outside the vocabulary", (int)y[i]); }
    rn_status st = rn_forward(m, state, x, 1, T, RN_CHUNKWISE, chunk, 0, logits);
    if (st == RN_OK) *sum_nll = rni_cross_entropy(logits, y, T, V, 0, count);
    rni_free(logits);
    return st;
}
