/* serve_sched.c: the scheduler of `retnet serve` (see serve.h): continuous
 * batching. One thread owns the model. Each iteration:
 *   1. queued requests are admitted while their choices fit in --slots;
 *   2. admitted prompts are prefilled, in order, chunkwise, in pieces of
 *      --chunk tokens, at most --chunk tokens an iteration (at least one
 *      piece), so a long prompt delays the others by one piece at most; a
 *      finished prompt's state is copied into a row of the batch for each
 *      of its n choices (they share the prefill);
 *   3. every decoding row samples its token from its logits; finished and
 *      cancelled rows leave (the last row moves into their place);
 *   4. all rows advance by one token in one recurrent rn_forward over the
 *      batch: B token rows through each projection as one matrix product,
 *      each row at its own position.
 * After each prefill piece that ends on a multiple of the chunk length the
 * state is copied into an LRU cache keyed by the token prefix; a request
 * whose prompt starts with a cached prefix restores the state and prefills
 * only the rest. */
#define _POSIX_C_SOURCE 200809L
#include "serve.h"
#include "util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const int serve_codes[SERVE_N_CODES] = {200, 400, 401, 404, 405, 413, 500, 503, 504, 0};

struct cache_entry {
    uint64_t hash;
    int n;
    int32_t *toks;
    rn_state *st;
    rn_real *logits;              /* (V) a whole prompt's last logits, or NULL (a chunk boundary's state) */
    size_t bytes;
    cache_entry *prev, *next;
};

void gen_request_free(gen_request *rq) {
    free(rq->prompt);
    for (int i = 0; i < rq->n_stop; i++) free(rq->stop[i]);
    memset(rq, 0, sizeof *rq);
}

void count_status(server *S, int status) {
    pthread_mutex_lock(&S->mu);
    int i = 0;
    while (i < SERVE_N_CODES - 1 && serve_codes[i] != status) i++;
    S->status_count[i]++;
    pthread_mutex_unlock(&S->mu);
}

static uint64_t hash_tokens(const int32_t *t, int n) {
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < n; i++) {
        uint32_t v = (uint32_t)t[i];
        for (int b = 0; b < 4; b++) { h ^= (v >> (8 * b)) & 0xff; h *= 1099511628211ull; }
    }
    return h;
}

/* ------------------------------------------------------------- cache (mu) */

static void lru_unlink(server *S, cache_entry *e) {
    if (e->prev) e->prev->next = e->next; else S->lru_head = e->next;
    if (e->next) e->next->prev = e->prev; else S->lru_tail = e->prev;
    e->prev = e->next = NULL;
}

static void lru_push_front(server *S, cache_entry *e) {
    e->prev = NULL;
    e->next = S->lru_head;
    if (S->lru_head) S->lru_head->prev = e; else S->lru_tail = e;
    S->lru_head = e;
}

static void entry_free(server *S, cache_entry *e) {
    S->cache_bytes -= e->bytes;
    S->cache_entries--;
    rn_state_free(e->st);
    free(e->logits);
    free(e->toks);
    free(e);
}

static cache_entry *cache_find(server *S, const int32_t *t, int n) {
    uint64_t h = hash_tokens(t, n);
    for (cache_entry *e = S->lru_head; e; e = e->next)
        if (e->hash == h && e->n == n && memcmp(e->toks, t, sizeof(int32_t) * (size_t)n) == 0) return e;
    return NULL;
}

/* The whole prompt when it was prefilled before (its state and last
 * logits, into logits: nothing to run), else the longest cached prefix of
 * a multiple of --chunk tokens that leaves at least one prompt token to run
 * (its logits start the generation); 0 if none. Either is what a fresh
 * prefill computes, bit for bit: the chunks start where they would. */
static int cache_lookup(server *S, rn_state *st, rn_real *logits, const int32_t *t, int n) {
    if (S->cache_cap == 0 || n < S->chunk) return 0;
    int got = 0;
    pthread_mutex_lock(&S->mu);
    cache_entry *w = cache_find(S, t, n);
    if (w && w->logits && rn_state_copy(st, w->st) == RN_OK) {
        memcpy(logits, w->logits, sizeof(rn_real) * (size_t)S->vocab);
        lru_unlink(S, w);
        lru_push_front(S, w);
        got = n;
    }
    for (int k = (n - 1) / S->chunk; k >= 1 && !got; k--) {
        cache_entry *e = cache_find(S, t, k * S->chunk);
        if (e && rn_state_copy(st, e->st) == RN_OK) {
            lru_unlink(S, e);
            lru_push_front(S, e);
            got = e->n;
        }
    }
    if (got) { S->cache_hits++; S->cached_tokens += got; } else S->cache_misses++;
    pthread_mutex_unlock(&S->mu);
    return got;
}

/* Keeps the state after prompt tokens t (n), with the last logits for a
 * whole prompt (logits, or NULL at a chunk boundary). */
static void cache_put(server *S, const rn_state *st, const rn_real *logits, const int32_t *t, int n) {
    size_t bytes = S->state_bytes + sizeof(int32_t) * (size_t)n + sizeof(cache_entry) +
                   (logits ? sizeof(rn_real) * (size_t)S->vocab : 0);
    if (S->cache_cap == 0 || bytes > S->cache_cap) return;
    pthread_mutex_lock(&S->mu);
    if (cache_find(S, t, n)) { pthread_mutex_unlock(&S->mu); return; }
    while (S->lru_tail && S->cache_bytes + bytes > S->cache_cap) {
        cache_entry *e = S->lru_tail;
        lru_unlink(S, e);
        entry_free(S, e);
    }
    pthread_mutex_unlock(&S->mu);
    /* Only this thread adds entries: the copy is made outside the lock. */
    cache_entry *e = calloc(1, sizeof *e);
    if (!e) return;
    e->toks = malloc(sizeof(int32_t) * (size_t)n);
    if (logits && (e->logits = malloc(sizeof(rn_real) * (size_t)S->vocab)))
        memcpy(e->logits, logits, sizeof(rn_real) * (size_t)S->vocab);
    if (!e->toks || (logits && !e->logits) || rn_state_create(S->model, 1, &e->st) != RN_OK ||
        rn_state_copy(e->st, st) != RN_OK) {
        rn_state_free(e->st);
        free(e->logits);
        free(e->toks);
        free(e);
        return;
    }
    memcpy(e->toks, t, sizeof(int32_t) * (size_t)n);
    e->n = n;
    e->hash = hash_tokens(t, n);
    e->bytes = bytes;
    pthread_mutex_lock(&S->mu);
    lru_push_front(S, e);
    S->cache_bytes += bytes;
    S->cache_entries++;
    pthread_mutex_unlock(&S->mu);
}

/* ------------------------------------------------------------------ jobs */

void job_unref_locked(server *S, sjob *j) {
    (void)S;
    if (--j->refs > 0) return;
    for (int k = 0; j->ch && k < j->rq.n; k++) {
        free(j->ch[k].out);
        free(j->ch[k].lp);
        rn_sampler_free(j->ch[k].sampler);
    }
    free(j->ch);
    free(j->prompt_lp);
    gen_request_free(&j->rq);
    pthread_cond_destroy(&j->cv);
    free(j);
}

void job_signal_locked(sjob *j) {
    pthread_cond_broadcast(&j->cv);
    if (j->wake) pthread_cond_broadcast(j->wake);
}

sjob *job_submit(server *S, gen_request *rq) {
    sjob *j = calloc(1, sizeof *j);
    if (j && !(j->ch = calloc((size_t)rq->n, sizeof *j->ch))) { free(j); j = NULL; }
    if (!j) { gen_request_free(rq); return NULL; }
    pthread_mutex_lock(&S->mu);
    if (S->stopping || S->qlen >= S->queue_cap) {
        pthread_mutex_unlock(&S->mu);
        gen_request_free(rq);
        free(j->ch);
        free(j);
        return NULL;
    }
    j->rq = *rq;
    memset(rq, 0, sizeof *rq);
    j->refs = 2; /* the connection and the scheduler */
    j->phase = JOB_QUEUED;
    j->pos = -1;
    j->t_submit = now_seconds();
    pthread_cond_init(&j->cv, NULL);
    if (S->qtail) S->qtail->next = j; else S->qhead = j;
    S->qtail = j;
    S->qlen++;
    S->prompt_tokens += j->rq.n_prompt;
    pthread_cond_signal(&S->cv);
    pthread_mutex_unlock(&S->mu);
    return j;
}

/* Ends a job (mu held): wakes its connection, drops the scheduler's ref. */
static void job_finish_locked(server *S, sjob *j, int ok, const char *error) {
    j->ok = ok;
    if (error) snprintf(j->error, sizeof j->error, "%s", error);
    j->phase = JOB_DONE;
    j->prompt_done = 1;
    for (int k = 0; k < j->rq.n; k++) j->ch[k].ready = j->ch[k].len;
    j->t_done = now_seconds();
    if (j->t_first > 0) S->gen_seconds += j->t_done - j->t_first;
    S->requests_done++;
    job_signal_locked(j);
    job_unref_locked(S, j);
}

/* A job leaves before decoding (setup failed, cancelled, nothing to do):
 * its reserved rows are freed. */
static void job_drop(server *S, sjob *j, int ok, const char *error) {
    pthread_mutex_lock(&S->mu);
    S->busy -= j->rq.n;
    job_finish_locked(S, j, ok, error);
    pthread_mutex_unlock(&S->mu);
}

static int append(schoice *c, const char *p, size_t n) {
    if (c->len + n + 1 > c->cap) {
        size_t cap = (c->len + n + 1) * 2;
        char *o = realloc(c->out, cap);
        if (!o) return -1;
        c->out = o;
        c->cap = cap;
    }
    memcpy(c->out + c->len, p, n);
    c->len += n;
    c->out[c->len] = 0;
    return 0;
}

/* After new bytes from old_len on: cuts at the first stop string (returns
 * 1; logprobs of tokens wholly cut go too), else advances ready past what
 * cannot begin a stop string or is an incomplete UTF-8 sequence. */
static int check_stop(const gen_request *rq, schoice *c, size_t old_len) {
    size_t cut = (size_t)-1;
    for (int s = 0; s < rq->n_stop; s++) {
        size_t sl = strlen(rq->stop[s]);
        size_t from = old_len >= sl - 1 ? old_len - (sl - 1) : 0;
        for (size_t p = from; p + sl <= c->len; p++)
            if (memcmp(c->out + p, rq->stop[s], sl) == 0) {
                if (p < cut) cut = p;
                break;
            }
    }
    if (cut != (size_t)-1) {
        c->len = cut;
        c->out[cut] = 0;
        while (c->n_lp > 0 && c->lp[c->n_lp - 1].offset >= cut && c->n_lp > c->lp_sent) c->n_lp--;
        return 1;
    }
    size_t hold = 0;
    for (int s = 0; s < rq->n_stop; s++) {
        size_t sl = strlen(rq->stop[s]);
        for (size_t k = sl - 1; k > hold; k--)
            if (k <= c->len && memcmp(c->out + c->len - k, rq->stop[s], k) == 0) { hold = k; break; }
    }
    /* and a trailing UTF-8 character that is not whole yet */
    size_t ready = utf8_complete((const unsigned char *)c->out, c->len - hold);
    if (ready > c->ready) c->ready = ready;
    return 0;
}

/* The model's log probabilities (log softmax of the logits, before the
 * sampler's temperature and cuts, as llama.cpp reports them) of token t
 * and of the top n tokens, most likely first. */
static void logprobs(const rn_real *logits, int V, int32_t t, int n, serve_lp *out) {
    double mx = logits[0];
    for (int i = 1; i < V; i++) if (logits[i] > mx) mx = logits[i];
    double z = 0;
    for (int i = 0; i < V; i++) z += exp((double)logits[i] - mx);
    double lz = mx + log(z);
    out->id = t;
    out->lp = (float)(logits[t] - lz);
    int have = 0;
    for (int i = 0; i < V && n > 0; i++) {
        float lp = (float)(logits[i] - lz);
        if (have == n && lp <= out->top[n - 1].lp) continue;
        int p = have < n ? have++ : n - 1;
        while (p > 0 && out->top[p - 1].lp < lp) { out->top[p] = out->top[p - 1]; p--; }
        out->top[p] = (serve_alt){i, lp};
    }
}

/* Stream row r's token t (mu held): appends its text (and logprobs) to its
 * choice; returns its finish reason, "error" when out of memory, or NULL
 * while it goes on. */
static const char *emit_locked(server *S, int r, int32_t t, const serve_lp *lp) {
    sjob *j = S->row_job[r];
    schoice *c = &j->ch[S->row_choice[r]];
    if (j->t_first == 0) j->t_first = now_seconds();
    S->gen_tokens++;
    if (S->eos >= 0 && t == S->eos) return "stop";
    const char *piece = "";
    size_t pl = 0;
    if (t < S->tok->vocab_size) rn_tokenizer_decode(S->tok, t, &piece, &pl);
    c->n_gen++;
    size_t old = c->len;
    if (lp) {
        if (c->n_lp == c->cap_lp) {
            int cap = c->cap_lp ? 2 * c->cap_lp : 16;
            serve_lp *n = realloc(c->lp, sizeof *n * (size_t)cap);
            if (!n) return "error";
            c->lp = n;
            c->cap_lp = cap;
        }
        c->lp[c->n_lp] = *lp;
        c->lp[c->n_lp++].offset = old;
    }
    if (append(c, piece, pl) != 0) return "error";
    if (check_stop(&j->rq, c, old)) return "stop";
    if (c->n_gen >= j->rq.max_tokens) return "length";
    return NULL;
}

/* A choice has ended (mu held); the last one ends the job. */
static void choice_end_locked(server *S, sjob *j, int k, const char *finish) {
    if (finish) j->ch[k].finish = finish;
    j->ch[k].ready = j->ch[k].len;
    job_signal_locked(j);
    if (!finish && !j->error[0])
        snprintf(j->error, sizeof j->error, "%s",
                 S->stopping ? "the server is shutting down" : j->cancelled ? "cancelled" : "out of memory");
    S->busy--;
    if (--j->live > 0) return;
    int ok = 1;
    for (int i = 0; i < j->rq.n; i++) ok &= j->ch[i].finish != NULL;
    job_finish_locked(S, j, ok, NULL);
}

/* --------------------------------------------------------------- prefill */

/* Entries for a prompt's tokens: entry 0 has no logprob (NaN); offsets
 * are where each token's text starts in the prompt's text. */
static serve_lp *prompt_lp_alloc(const server *S, const gen_request *rq) {
    serve_lp *lp = calloc((size_t)rq->n_prompt, sizeof *lp);
    if (!lp) return NULL;
    size_t off = 0;
    for (int i = 0; i < rq->n_prompt; i++) {
        const char *p;
        size_t pl = 0;
        lp[i].id = rq->prompt[i];
        lp[i].offset = off;
        if (rq->prompt[i] < S->tok->vocab_size && rn_tokenizer_decode(S->tok, rq->prompt[i], &p, &pl) == RN_OK) off += pl;
    }
    lp[0].lp = NAN;
    return lp;
}

/* Job j's prompt is prefilled: its n choices join the batch, each a copy
 * of the prompt's state and logits. */
static int join_batch(server *S, sjob *j) {
    int V = S->vocab, r0 = S->rows, n = j->rq.n;
    if (rn_state_resize(S->dec, r0 + n) != RN_OK) return -1;
    for (int k = 0; k < n; k++) {
        if (rn_state_copy_row(S->dec, r0 + k, S->pre, 0) != RN_OK) return -1;
        memcpy(S->logits + (size_t)(r0 + k) * V, S->pre_logits, sizeof(rn_real) * (size_t)V);
        S->row_job[r0 + k] = j;
        S->row_choice[r0 + k] = k;
    }
    S->rows = r0 + n;
    return 0;
}

static void pf_pop(server *S) {
    sjob *j = S->pf_head;
    S->pf_head = j->next;
    if (!S->pf_head) S->pf_tail = NULL;
    j->next = NULL;
}

/* Prefills admitted prompts in order, pieces of --chunk tokens, at most
 * --chunk tokens in all (but always one piece). */
static void prefill(server *S) {
    int budget = S->chunk, first = 1;
    while (S->pf_head) {
        sjob *j = S->pf_head;
        pthread_mutex_lock(&S->mu);
        int cancel = j->cancelled || S->stopping;
        pthread_mutex_unlock(&S->mu);
        if (cancel) {
            pf_pop(S);
            job_drop(S, j, 0, S->stopping ? "the server is shutting down" : "cancelled");
            continue;
        }
        if (j->pos < 0) {
            for (int k = 0; k < j->rq.n; k++) {
                rn_sampler_config sc = j->rq.sc;
                sc.seed += (uint64_t)k; /* each choice its own draws */
                if (rn_sampler_create(S->vocab, &sc, &j->ch[k].sampler) != RN_OK) {
                    pf_pop(S);
                    job_drop(S, j, 0, rn_last_error());
                    j = NULL;
                    break;
                }
            }
            if (!j) continue;
            if (j->rq.max_tokens == 0 && !wants_prompt_lp(&j->rq)) {
                pf_pop(S);
                for (int k = 0; k < j->rq.n; k++) j->ch[k].finish = "length";
                job_drop(S, j, 1, NULL);
                continue;
            }
            rn_state_reset(S->pre);
            if (wants_prompt_lp(&j->rq)) {
                /* every prompt position's logits: nothing from the cache */
                if (!S->pre_all) S->pre_all = malloc(sizeof(rn_real) * (size_t)S->chunk * (size_t)S->vocab);
                if (!S->pre_all || !(j->prompt_lp = prompt_lp_alloc(S, &j->rq))) {
                    pf_pop(S);
                    job_drop(S, j, 0, "out of memory");
                    continue;
                }
                j->pos = 0;
            } else
                j->pos = cache_lookup(S, S->pre, S->pre_logits, j->rq.prompt, j->rq.n_prompt);
            j->cached_tokens = j->pos;
        }
        if (j->pos < j->rq.n_prompt) { /* a piece (a whole cached prompt has none left) */
            int n = j->rq.n_prompt - j->pos;
            if (n > S->chunk) n = S->chunk;
            if (!first && n > budget) return;
            first = 0;
            budget -= n;
            int all = j->prompt_lp != NULL;
            if (rn_forward(S->model, S->pre, j->rq.prompt + j->pos, 1, n, RN_CHUNKWISE, S->chunk,
                           all ? 0 : RN_FWD_LAST_ONLY, all ? S->pre_all : S->pre_logits) != RN_OK) {
                pf_pop(S);
                job_drop(S, j, 0, rn_last_error());
                continue;
            }
            if (all) {
                /* position p's logits score prompt token p + 1 */
                int V = S->vocab;
                for (int i = 0; i < n && j->pos + i + 1 < j->rq.n_prompt; i++) {
                    serve_lp *e = &j->prompt_lp[j->pos + i + 1];
                    size_t off = e->offset;
                    logprobs(S->pre_all + (size_t)i * V, V, j->rq.prompt[j->pos + i + 1], j->rq.logprobs, e);
                    e->offset = off;
                }
                memcpy(S->pre_logits, S->pre_all + (size_t)(n - 1) * V, sizeof(rn_real) * (size_t)V);
            }
            j->pos += n;
            /* a whole prompt of a chunk or more with its logits (shorter ones
             * prefill in one piece: not worth the memory); chunk boundaries */
            if (j->pos == j->rq.n_prompt && j->pos >= S->chunk) cache_put(S, S->pre, S->pre_logits, j->rq.prompt, j->pos);
            else if (j->pos % S->chunk == 0) cache_put(S, S->pre, NULL, j->rq.prompt, j->pos);
            if (j->pos < j->rq.n_prompt) continue;
        }
        pf_pop(S);
        if (j->rq.max_tokens == 0) { /* the prompt's logprobs only */
            for (int k = 0; k < j->rq.n; k++) j->ch[k].finish = "length";
            job_drop(S, j, 1, NULL);
            continue;
        }
        if (join_batch(S, j) != 0) { job_drop(S, j, 0, rn_last_error()); continue; }
        pthread_mutex_lock(&S->mu);
        j->live = j->rq.n;
        j->prompt_done = 1;
        job_signal_locked(j);
        pthread_mutex_unlock(&S->mu);
    }
}

/* ---------------------------------------------------------------- decode */

/* A streaming connection is woken for its first token, then at most once
 * every SERVE_WAKE_S with what has come since (and at its end): one
 * thread wake-up a token per stream cost a context switch each, 40% of the
 * server's CPU at 16 streams (serve_bench.py, small: 16 streams 11,018 ->
 * 16,300 tokens/s at 2 ms, 18,276 at 5 ms). A token waits at most this
 * long, far under what a reader notices. */
#define SERVE_WAKE_S 0.005

/* Every row samples its token; finished and cancelled rows leave; the
 * rest advance together by one recurrent step. */
static void decode(server *S) {
    double now = now_seconds();
    int V = S->vocab;
    for (int r = 0; r < S->rows; r++) {
        sjob *j = S->row_job[r];
        const rn_real *lg = S->logits + (size_t)r * V;
        S->feed[r] = rn_sampler_sample(j->ch[S->row_choice[r]].sampler, lg);
        if (j->rq.logprobs >= 0) logprobs(lg, V, S->feed[r], j->rq.logprobs, &S->row_lp[r]);
    }
    /* one lock for every row's text: the connections wait on it */
    pthread_mutex_lock(&S->mu);
    for (int r = 0; r < S->rows; r++) {
        sjob *j = S->row_job[r];
        const char *fin = j->cancelled || S->stopping ? "" : emit_locked(S, r, S->feed[r], j->rq.logprobs >= 0 ? &S->row_lp[r] : NULL);
        S->row_drop[r] = fin != NULL;
        if (fin) choice_end_locked(S, j, S->row_choice[r], *fin && strcmp(fin, "error") ? fin : NULL);
        else if (j->t_signal == 0 || now - j->t_signal >= SERVE_WAKE_S) {
            job_signal_locked(j);
            j->t_signal = now;
        }
    }
    pthread_mutex_unlock(&S->mu);
    /* leave: the last row moves into the place of a finished one */
    for (int r = S->rows - 1; r >= 0; r--) {
        if (!S->row_drop[r]) continue;
        int last = --S->rows;
        if (r == last) continue;
        rn_state_copy_row(S->dec, r, S->dec, last); /* rows of one state: cannot fail */
        S->row_job[r] = S->row_job[last];
        S->row_choice[r] = S->row_choice[last];
        S->feed[r] = S->feed[last];
        S->row_drop[r] = 0;
    }
    if (S->rows == 0) return;
    rn_state_resize(S->dec, S->rows); /* shrinking: cannot fail */
    if (rn_forward(S->model, S->dec, S->feed, S->rows, 1, RN_RECURRENT, 1, RN_FWD_LAST_ONLY, S->logits) != RN_OK) {
        const char *e = rn_last_error();
        pthread_mutex_lock(&S->mu);
        for (int r = 0; r < S->rows; r++) {
            sjob *j = S->row_job[r];
            if (!j->error[0]) snprintf(j->error, sizeof j->error, "%s", e);
            choice_end_locked(S, j, S->row_choice[r], NULL);
        }
        pthread_mutex_unlock(&S->mu);
        S->rows = 0;
        return;
    }
    pthread_mutex_lock(&S->mu);
    S->steps++;
    S->step_rows += S->rows;
    pthread_mutex_unlock(&S->mu);
}

static void *sched_main(void *arg) {
    server *S = arg;
    pthread_mutex_lock(&S->mu);
    for (;;) {
        /* admit, in order, while the job's choices fit */
        while (S->qhead && (S->busy + S->qhead->rq.n <= S->n_slots || S->qhead->cancelled || S->stopping)) {
            sjob *j = S->qhead;
            S->qhead = j->next;
            if (!S->qhead) S->qtail = NULL;
            S->qlen--;
            j->next = NULL;
            if (j->cancelled || S->stopping) {
                job_finish_locked(S, j, 0, S->stopping ? "the server is shutting down" : "cancelled");
                continue;
            }
            j->phase = JOB_RUNNING;
            S->busy += j->rq.n;
            if (S->pf_tail) S->pf_tail->next = j; else S->pf_head = j;
            S->pf_tail = j;
        }
        if (S->busy == 0) {
            if (S->stopping && !S->qhead) break;
            if (!S->qhead) pthread_cond_wait(&S->cv, &S->mu);
            continue;
        }
        pthread_mutex_unlock(&S->mu);
        prefill(S);
        decode(S);
        pthread_mutex_lock(&S->mu);
    }
    pthread_mutex_unlock(&S->mu);
    return NULL;
}

int sched_start(server *S) {
    size_t n = (size_t)S->n_slots, V = (size_t)S->vocab;
    S->logits = malloc(sizeof(rn_real) * n * V);
    S->pre_logits = malloc(sizeof(rn_real) * V);
    S->feed = calloc(n, sizeof *S->feed);
    S->row_job = calloc(n, sizeof *S->row_job);
    S->row_choice = calloc(n, sizeof *S->row_choice);
    S->row_drop = calloc(n, sizeof *S->row_drop);
    S->row_lp = calloc(n, sizeof *S->row_lp);
    if (!S->logits || !S->pre_logits || !S->feed || !S->row_job || !S->row_choice || !S->row_drop || !S->row_lp)
        return -1;
    /* the batch's memory for every slot at once: steps never allocate */
    if (rn_state_create(S->model, 1, &S->pre) != RN_OK || rn_state_create(S->model, S->n_slots, &S->dec) != RN_OK ||
        rn_state_resize(S->dec, 1) != RN_OK)
        return -1;
    const rn_config *c = rn_model_config(S->model);
    S->state_bytes = (size_t)c->layers * c->heads * (size_t)(c->dim / c->heads) * (size_t)(c->value_dim / c->heads) *
                     sizeof(rn_real);
    return pthread_create(&S->thread, NULL, sched_main, S) == 0 ? 0 : -1;
}

void sched_stop(server *S) {
    pthread_mutex_lock(&S->mu);
    S->stopping = 1;
    pthread_cond_broadcast(&S->cv);
    pthread_mutex_unlock(&S->mu);
    pthread_join(S->thread, NULL);
    rn_state_free(S->pre);
    rn_state_free(S->dec);
    while (S->lru_head) {
        cache_entry *e = S->lru_head;
        lru_unlink(S, e);
        entry_free(S, e);
    }
    free(S->logits);
    free(S->pre_logits);
    free(S->pre_all);
    free(S->feed);
    free(S->row_job);
    free(S->row_choice);
    free(S->row_drop);
    free(S->row_lp);
}
