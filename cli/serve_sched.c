/* serve_sched.c: the scheduler of `retnet serve` (see serve.h). One thread
 * owns the model: each iteration it advances every active slot by one
 * prefill piece (--chunk tokens) or one token, round robin, so streams
 * interleave and a long prompt delays the others by one piece at most.
 * After each prefill piece that ends on a multiple of the chunk length the
 * state is copied into an LRU cache keyed by the token prefix; a request
 * whose prompt starts with a cached prefix restores the state and prefills
 * only the rest. */
#define _POSIX_C_SOURCE 200809L
#include "serve.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const int serve_codes[SERVE_N_CODES] = {200, 400, 401, 404, 405, 413, 500, 503, 504, 0};

struct cache_entry {
    uint64_t hash;
    int n;
    int32_t *toks;
    rn_state *st;
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
    free(e->toks);
    free(e);
}

static cache_entry *cache_find(server *S, const int32_t *t, int n) {
    uint64_t h = hash_tokens(t, n);
    for (cache_entry *e = S->lru_head; e; e = e->next)
        if (e->hash == h && e->n == n && memcmp(e->toks, t, sizeof(int32_t) * (size_t)n) == 0) return e;
    return NULL;
}

/* Longest cached prefix of a multiple of P tokens that leaves at least one
 * prompt token to run (its logits start the generation); 0 if none. */
static int cache_lookup(server *S, rn_session *s, const int32_t *t, int n) {
    if (S->cache_cap == 0 || n - 1 < S->chunk) return 0;
    int got = 0;
    pthread_mutex_lock(&S->mu);
    for (int k = (n - 1) / S->chunk; k >= 1 && !got; k--) {
        cache_entry *e = cache_find(S, t, k * S->chunk);
        if (e && rn_state_copy(rn_session_state(s), e->st) == RN_OK) {
            lru_unlink(S, e);
            lru_push_front(S, e);
            got = e->n;
        }
    }
    if (got) { S->cache_hits++; S->cached_tokens += got; } else S->cache_misses++;
    pthread_mutex_unlock(&S->mu);
    return got;
}

static void cache_put(server *S, const rn_state *st, const int32_t *t, int n) {
    size_t bytes = S->state_bytes + sizeof(int32_t) * (size_t)n + sizeof(cache_entry);
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
    if (!e->toks || rn_state_create(S->model, 1, &e->st) != RN_OK || rn_state_copy(e->st, st) != RN_OK) {
        rn_state_free(e->st);
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
    gen_request_free(&j->rq);
    free(j->out);
    pthread_cond_destroy(&j->cv);
    free(j);
}

sjob *job_submit(server *S, gen_request *rq) {
    sjob *j = calloc(1, sizeof *j);
    if (!j) { gen_request_free(rq); return NULL; }
    pthread_mutex_lock(&S->mu);
    if (S->stopping || S->qlen >= S->queue_cap) {
        pthread_mutex_unlock(&S->mu);
        gen_request_free(rq);
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
static void job_finish_locked(server *S, sjob *j, const char *finish, const char *error) {
    j->finish = finish;
    if (error) snprintf(j->error, sizeof j->error, "%s", error);
    j->phase = JOB_DONE;
    j->ready = j->len;
    j->t_done = now_seconds();
    if (j->t_first > 0) S->gen_seconds += j->t_done - j->t_first;
    S->requests_done++;
    rn_sampler_free(j->sampler);
    j->sampler = NULL;
    pthread_cond_broadcast(&j->cv);
    job_unref_locked(S, j);
}

static void slot_finish(server *S, int i, const char *finish, const char *error) {
    pthread_mutex_lock(&S->mu);
    job_finish_locked(S, S->slot_job[i], finish, error);
    S->slot_job[i] = NULL;
    S->busy--;
    pthread_mutex_unlock(&S->mu);
}

static int append(sjob *j, const char *p, size_t n) {
    if (j->len + n + 1 > j->cap) {
        size_t cap = (j->len + n + 1) * 2;
        char *o = realloc(j->out, cap);
        if (!o) return -1;
        j->out = o;
        j->cap = cap;
    }
    memcpy(j->out + j->len, p, n);
    j->len += n;
    j->out[j->len] = 0;
    return 0;
}

/* After new bytes from old_len on: cuts at the first stop string (returns
 * 1), else advances ready past what cannot begin a stop string or is an
 * incomplete UTF-8 sequence. */
static int check_stop(sjob *j, size_t old_len) {
    size_t cut = (size_t)-1;
    for (int s = 0; s < j->rq.n_stop; s++) {
        size_t sl = strlen(j->rq.stop[s]);
        size_t from = old_len >= sl - 1 ? old_len - (sl - 1) : 0;
        for (size_t p = from; p + sl <= j->len; p++)
            if (memcmp(j->out + p, j->rq.stop[s], sl) == 0) {
                if (p < cut) cut = p;
                break;
            }
    }
    if (cut != (size_t)-1) {
        j->len = cut;
        j->out[cut] = 0;
        return 1;
    }
    size_t hold = 0;
    for (int s = 0; s < j->rq.n_stop; s++) {
        size_t sl = strlen(j->rq.stop[s]);
        for (size_t k = sl - 1; k > hold; k--)
            if (k <= j->len && memcmp(j->out + j->len - k, j->rq.stop[s], k) == 0) { hold = k; break; }
    }
    /* and a trailing UTF-8 character that is not whole yet */
    size_t ready = utf8_complete((const unsigned char *)j->out, j->len - hold);
    if (ready > j->ready) j->ready = ready;
    return 0;
}

/* One unit of work for slot i: setup, a prefill piece, or one token. */
static void slot_advance(server *S, int i) {
    sjob *j = S->slot_job[i];
    rn_session *s = S->sess[i];
    pthread_mutex_lock(&S->mu);
    int cancel = j->cancelled || S->stopping;
    pthread_mutex_unlock(&S->mu);
    if (cancel) { slot_finish(S, i, NULL, "cancelled"); return; }
    if (j->pos < 0) {
        rn_session_reset(s);
        if (rn_sampler_create(S->vocab, &j->rq.sc, &j->sampler) != RN_OK) {
            slot_finish(S, i, NULL, rn_last_error());
            return;
        }
        if (j->rq.max_tokens == 0) { slot_finish(S, i, "length", NULL); return; }
        j->pos = cache_lookup(S, s, j->rq.prompt, j->rq.n_prompt);
        j->cached_tokens = j->pos;
    }
    if (j->pos < j->rq.n_prompt) {
        int n = j->rq.n_prompt - j->pos;
        if (n > S->chunk) n = S->chunk;
        if (rn_session_prefill(s, j->rq.prompt + j->pos, n) != RN_OK) {
            slot_finish(S, i, NULL, rn_last_error());
            return;
        }
        j->pos += n;
        if (j->pos % S->chunk == 0) cache_put(S, rn_session_state(s), j->rq.prompt, j->pos);
        if (j->pos < j->rq.n_prompt) return;
    }
    int32_t t = rn_sampler_sample(j->sampler, rn_session_logits(s));
    const char *piece = "";
    size_t pl = 0;
    int eos = S->eos >= 0 && t == S->eos;
    if (!eos && t < S->tok->vocab_size) rn_tokenizer_decode(S->tok, t, &piece, &pl);
    pthread_mutex_lock(&S->mu);
    if (j->t_first == 0) j->t_first = now_seconds();
    S->gen_tokens++;
    const char *finish = NULL;
    if (eos) finish = "stop";
    else {
        j->n_gen++;
        size_t old = j->len;
        if (append(j, piece, pl) != 0) {
            pthread_mutex_unlock(&S->mu);
            slot_finish(S, i, NULL, "out of memory");
            return;
        }
        if (check_stop(j, old)) finish = "stop";
        else if (j->n_gen >= j->rq.max_tokens) finish = "length";
    }
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&S->mu);
    if (finish) { slot_finish(S, i, finish, NULL); return; }
    if (rn_session_feed(s, t) != RN_OK) slot_finish(S, i, NULL, rn_last_error());
}

static void *sched_main(void *arg) {
    server *S = arg;
    pthread_mutex_lock(&S->mu);
    for (;;) {
        for (int i = 0; i < S->n_slots && S->qhead; i++) {
            if (S->slot_job[i]) continue;
            sjob *j = S->qhead;
            S->qhead = j->next;
            if (!S->qhead) S->qtail = NULL;
            S->qlen--;
            j->next = NULL;
            if (j->cancelled || S->stopping) {
                job_finish_locked(S, j, NULL, S->stopping ? "the server is shutting down" : "cancelled");
                i--;
                continue;
            }
            j->phase = JOB_RUNNING;
            S->slot_job[i] = j;
            S->busy++;
        }
        if (S->busy == 0) {
            if (S->stopping && !S->qhead) break;
            if (!S->qhead) pthread_cond_wait(&S->cv, &S->mu);
            continue;
        }
        pthread_mutex_unlock(&S->mu);
        for (int i = 0; i < S->n_slots; i++)
            if (S->slot_job[i]) slot_advance(S, i);
        pthread_mutex_lock(&S->mu);
    }
    pthread_mutex_unlock(&S->mu);
    return NULL;
}

int sched_start(server *S) {
    S->sess = calloc((size_t)S->n_slots, sizeof *S->sess);
    S->slot_job = calloc((size_t)S->n_slots, sizeof *S->slot_job);
    if (!S->sess || !S->slot_job) return -1;
    rn_sampler_config sc;
    rn_sampler_config_default(&sc);
    for (int i = 0; i < S->n_slots; i++)
        if (rn_session_create(S->model, &sc, S->chunk, &S->sess[i]) != RN_OK) return -1;
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
    for (int i = 0; i < S->n_slots; i++) rn_session_free(S->sess[i]);
    while (S->lru_head) {
        cache_entry *e = S->lru_head;
        lru_unlink(S, e);
        entry_free(S, e);
    }
    free(S->sess);
    free(S->slot_job);
}
