/* sample.c: sampling (temperature, top-k, top-p), generation sessions
 * (chunkwise prefill, then O(1) recurrent steps), and scoring of token
 * streams with the state carried across calls. */
#include "forward.h"
#include "ops.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------- sampler */

/* The sampler draws from the probabilities at the temperature, sorted most
 * likely first (ties: lower id first), cut to the top k, then to the
 * shortest prefix whose mass reaches top_p of what is left. Sorting the
 * whole vocabulary for every token would cost O(V log V) (about 20 ms at
 * V = 128,000); instead it sorts only a set that provably holds the
 * support: the k best from a heap of k (top-k), or the tokens above a
 * probability found from a histogram of the mass (top-p alone), with a
 * radix sort on the probabilities' bits when that set is large. The
 * support, its probabilities and the draws are bit for bit those of the
 * full sort: sums run over the same sorted prefix in the same order, and
 * the one quantity summed in another order (the top-p total, which is 1
 * up to rounding) is only compared against with a margin of its rounding
 * error; an undecided comparison falls back to the full sort. All scratch
 * space is the sampler's own, so samplers on different threads are
 * independent. */

typedef struct {
    double p;       /* probability at the temperature */
    int32_t id;
} cand;

/* Histogram buckets of a probability in [0, 1]: its exponent and the first
 * two mantissa bits, i.e. the double's bits above bit 50 (monotone in the
 * value for non-negative doubles; 1.0 is bucket 4092). */
enum { N_BUCKETS = 4096 };

/* The radix sort of many candidates: 6 passes of 11 bits over 64. */
enum { RADIX_BITS = 11, RADIX = 1 << RADIX_BITS, RADIX_PASSES = 6, RADIX_MIN = 1024 };

struct rn_sampler {
    rn_sampler_config cfg;
    int V;
    rn_rng rng;
    double *prob;     /* (V) probabilities at the temperature, by id */
    cand *cand;       /* (V) the candidates, most likely first */
    cand *tmp;        /* (V) scratch of the merge sort */
    double *mass;     /* (N_BUCKETS) top-p histogram */
    size_t *count;    /* (RADIX_PASSES x RADIX) radix sort counts */
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
    s->cand = malloc(sizeof(cand) * (size_t)vocab);
    s->tmp = malloc(sizeof(cand) * (size_t)vocab);
    s->mass = malloc(sizeof(double) * N_BUCKETS);
    s->count = malloc(sizeof(size_t) * RADIX_PASSES * RADIX);
    if (!s->prob || !s->cand || !s->tmp || !s->mass || !s->count) { rn_sampler_free(s); return rni_fail(RN_ERR_NOMEM, "out of memory"); }
    rn_rng_seed(&s->rng, sc->seed);
    *out = s;
    return RN_OK;
}

void rn_sampler_free(rn_sampler *s) {
    if (!s) return;
    free(s->prob);
    free(s->cand);
    free(s->tmp);
    free(s->mass);
    free(s->count);
    free(s);
}

void rn_sampler_reseed(rn_sampler *s, uint64_t seed) { rn_rng_seed(&s->rng, seed); }

/* The sampler's order: more likely first, ties by lower id. (With NaN
 * probabilities it is no order, but every routine below stays in bounds.) */
static inline int before(const cand *a, const cand *b) { return a->p > b->p || (a->p == b->p && a->id < b->id); }

/* Sorts c[0..n) in the sampler's order: insertion sort of runs of 16,
 * then bottom-up merges through tmp (n). */
static void merge_sort_cands(cand *c, size_t n, cand *tmp) {
    enum { RUN = 16 };
    for (size_t lo = 0; lo < n; lo += RUN) {
        size_t hi = lo + RUN < n ? lo + RUN : n;
        for (size_t i = lo + 1; i < hi; i++) {
            cand x = c[i];
            size_t j = i;
            for (; j > lo && before(&x, &c[j - 1]); j--) c[j] = c[j - 1];
            c[j] = x;
        }
    }
    cand *src = c, *dst = tmp;
    for (size_t w = RUN; w < n; w *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * w) {
            size_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n, i = lo, j = mid, k = lo;
            while (i < mid && j < hi) dst[k++] = before(&src[j], &src[i]) ? src[j++] : src[i++];
            while (i < mid) dst[k++] = src[i++];
            while (j < hi) dst[k++] = src[j++];
        }
        cand *t = src; src = dst; dst = t;
    }
    if (src != c) memcpy(c, src, n * sizeof *c);
}

/* The sort key: ascending in it is the sampler's order for probabilities
 * (non-negative doubles order as their bits; complemented: descending). */
static inline uint64_t radix_key(double p) {
    uint64_t b;
    memcpy(&b, &p, sizeof b);
    return ~b;
}

/* Sorts c[0..n), given in increasing id order, in the sampler's order: a
 * stable LSD radix sort on the probabilities' bits through tmp (n), so
 * equal probabilities keep their id order. Passes on a digit that every
 * candidate shares are skipped. */
static void radix_sort_cands(cand *c, size_t n, cand *tmp, size_t *count) {
    memset(count, 0, sizeof(size_t) * RADIX_PASSES * RADIX);
    for (size_t i = 0; i < n; i++) {
        uint64_t k = radix_key(c[i].p);
        for (int p = 0; p < RADIX_PASSES; p++) count[p * RADIX + ((k >> (p * RADIX_BITS)) & (RADIX - 1))]++;
    }
    cand *src = c, *dst = tmp;
    for (int p = 0; p < RADIX_PASSES; p++) {
        size_t *h = count + p * RADIX, sum = 0;
        int shift = p * RADIX_BITS;
        if (h[(radix_key(src[0].p) >> shift) & (RADIX - 1)] == n) continue;
        for (int d = 0; d < RADIX; d++) { size_t t = h[d]; h[d] = sum; sum += t; }
        for (size_t i = 0; i < n; i++) dst[h[(radix_key(src[i].p) >> shift) & (RADIX - 1)]++] = src[i];
        cand *t = src; src = dst; dst = t;
    }
    if (src != c) memcpy(c, src, n * sizeof *c);
}

/* Sorts c[0..n), given in increasing id order, in the sampler's order. */
static void sort_cands(rn_sampler *s, size_t n) {
    if (n >= RADIX_MIN) radix_sort_cands(s->cand, n, s->tmp, s->count);
    else merge_sort_cands(s->cand, n, s->tmp);
}

/* Heap of the k best seen so far with the least likely at h[0]. */
static void sift_down(cand *h, int n, int i) {
    for (;;) {
        int l = 2 * i + 1, r = l + 1, w = i;
        if (l < n && before(&h[w], &h[l])) w = l;
        if (r < n && before(&h[w], &h[r])) w = r;
        if (w == i) return;
        cand t = h[i]; h[i] = h[w]; h[w] = t;
        i = w;
    }
}

/* c[0..k) := the k most likely of prob (V), sorted: one pass keeping a
 * heap of k (most tokens lose against its root at once), then heapsort. */
static void select_top_k(const double *prob, int V, int k, cand *c) {
    for (int i = 0; i < k; i++) c[i] = (cand){prob[i], i};
    for (int i = k / 2 - 1; i >= 0; i--) sift_down(c, k, i);
    for (int i = k; i < V; i++) {
        cand x = {prob[i], i};
        if (before(&x, &c[0])) { c[0] = x; sift_down(c, k, 0); }
    }
    for (int n = k - 1; n > 0; n--) {
        cand t = c[0]; c[0] = c[n]; c[n] = t;
        sift_down(c, n, 0);
    }
}

static inline int bucket_of(double p) {
    uint64_t b;
    memcpy(&b, &p, sizeof b);
    return (int)(b >> 50);
}

/* The shortest prefix of c[0..n) (sorted) whose mass reaches top_p of
 * theirs, exactly as the full sort computes it. */
static int cut_top_p(const cand *c, int n, double top_p) {
    double total = 0, cum = 0;
    for (int i = 0; i < n; i++) total += c[i].p;
    for (int i = 0; i < n; i++) {
        cum += c[i].p;
        if (cum >= top_p * total) return i + 1;
    }
    return n;
}

/* Top-p over the whole vocabulary without sorting it: sorts into c only
 * the tokens whose histogram bucket is at or above the one where the mass
 * from the top reaches top_p (a prefix of the full order: every other
 * token is less likely than all of these), and finds the cut there.
 * Returns the support size, or 0 when the full sort must decide (NaN
 * probabilities, a set that is the whole vocabulary, or a comparison
 * within the rounding margin). */
static int top_p_prefix(rn_sampler *s, double top_p) {
    const double *prob = s->prob;
    int V = s->V;
    double *mass = s->mass, tot = 0;
    memset(mass, 0, sizeof(double) * N_BUCKETS);
    for (int i = 0; i < V; i++) {
        int b = bucket_of(prob[i]);
        if (b >= N_BUCKETS) return 0;  /* NaN */
        mass[b] += prob[i];
        tot += prob[i];
    }
    /* The full sort's total sums the same values in another order: it is
     * within delta of tot (naive summation of V non-negative values errs by
     * at most (V - 1) u times their sum for each order; twice that here). */
    double delta = 2.0 * V * DBL_EPSILON * tot, want = top_p * (tot + 2 * delta), acc = 0;
    int first = N_BUCKETS - 1;
    for (; first > 0; first--)
        if ((acc += mass[first]) >= want) break;
    if (first == 0) return 0;
    int m = 0;
    for (int i = 0; i < V; i++) {  /* branch-free: written always, kept when in the set (m <= i) */
        s->cand[m] = (cand){prob[i], i};
        m += bucket_of(prob[i]) >= first;
    }
    sort_cands(s, (size_t)m);
    /* The full sort's threshold top_p * total lies in [lo, hi]: the cut is
     * decided when the first prefix to reach lo also reaches hi. */
    double lo = top_p * (tot - delta), hi = top_p * (tot + delta), cum = 0;
    for (int i = 0; i < m; i++) {
        cum += s->cand[i].p;
        if (cum >= lo) return cum >= hi ? i + 1 : 0;
    }
    return 0;
}

/* The first index of the largest logit and its value, as the loop
 * `if (logits[i] > logits[best]) best = i` from best = 0 finds them (NaN
 * never wins; logits[0] = NaN gives 0), with 8 independent lanes. */
static int argmax_first(const rn_real *logits, int V) {
    enum { L = 8 };
    rn_real m[L];
    int b[L];
    for (int j = 0; j < L; j++) { m[j] = logits[0]; b[j] = 0; }
    int i = 1;
    for (; i + L <= V; i += L)
        for (int j = 0; j < L; j++)
            if (logits[i + j] > m[j]) { m[j] = logits[i + j]; b[j] = i + j; }
    for (; i < V; i++)
        if (logits[i] > m[0]) { m[0] = logits[i]; b[0] = i; }
    int best = b[0];
    for (int j = 1; j < L; j++)
        if (m[j] > logits[best] || (m[j] == logits[best] && b[j] < best)) best = b[j];
    return best;
}

/* Fills s->cand[0..n) with the support, most likely first; returns n. */
static int candidates(rn_sampler *s, const rn_real *logits) {
    int V = s->V, k = s->cfg.top_k > 0 && s->cfg.top_k < V ? s->cfg.top_k : 0;
    double T = s->cfg.temperature, mx = logits[argmax_first(logits, V)], sum = 0, top_p = s->cfg.top_p;
    double *prob = s->prob;
    for (int i = 0; i < V; i++) { prob[i] = exp((logits[i] - mx) / T); sum += prob[i]; }
    for (int i = 0; i < V; i++) prob[i] /= sum;
    int n = V;
    if (k) {
        select_top_k(prob, V, k, s->cand);
        n = k;
    } else if (top_p < 1 && (n = top_p_prefix(s, top_p)) > 0) {
        return n;
    } else {
        for (int i = 0; i < V; i++) s->cand[i] = (cand){prob[i], i};
        sort_cands(s, (size_t)V);
        n = V;
    }
    return top_p < 1 ? cut_top_p(s->cand, n, top_p) : n;
}

int rn_sampler_support(rn_sampler *s, const rn_real *logits, int32_t *support, double *probs) {
    if (s->cfg.temperature == 0) {
        support[0] = argmax_first(logits, s->V);
        if (probs) probs[0] = 1;
        return 1;
    }
    int n = candidates(s, logits);
    double z = 0;
    for (int i = 0; i < n; i++) z += s->cand[i].p;
    for (int i = 0; i < n; i++) {
        support[i] = s->cand[i].id;
        if (probs) probs[i] = s->cand[i].p / z;
    }
    return n;
}

int32_t rn_sampler_sample(rn_sampler *s, const rn_real *logits) {
    if (s->cfg.temperature == 0) return argmax_first(logits, s->V);
    int n = candidates(s, logits);
    const cand *c = s->cand;
    if (n == 1) return c[0].id;
    double z = 0;
    for (int i = 0; i < n; i++) z += c[i].p;
    double u = rn_rng_uniform(&s->rng) * z, cum = 0;
    for (int i = 0; i < n; i++) {
        cum += c[i].p;
        if (u < cum) return c[i].id;
    }
    return c[n - 1].id;
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
