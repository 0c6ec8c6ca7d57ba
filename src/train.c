/* train.c: AdamW with decoupled weight decay, the learning-rate schedule,
 * gradient clipping and accumulation, data-parallel replicas (gradient
 * averaging, ZeRO-1 sharded moments) and training checkpoints. */
#define _POSIX_C_SOURCE 200809L
#include "backward.h"
#include "checkpoint.h"
#include "objects.h"
#include "vmath.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <stddef.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

struct rn_trainer {
    rn_model *m;
    rn_train_config tc;
    int64_t step;         /* optimiser steps done */
    rn_real *grad;        /* (n_params) */
    rn_real *micro;       /* (n_params) one micro-batch's gradient (accum > 1), or NULL */
    rn_real *adam_m;      /* (hi - lo) first moment of the parameters [lo, hi) */
    rn_real *adam_v;      /* (hi - lo) second moment */
    size_t lo, hi;        /* the parameters this trainer updates: its shard, or all */
    unsigned char *decay; /* (n_tensors) weight decay applies */
    double *norm2;        /* (nblocks) squared gradient norm per RN_SHARD_ALIGN block */
    rn_replicas rp;       /* rp.size == 1: alone */
    int zero;             /* ZeRO stage: 0, or 1 (moments sharded) */
    size_t *shard_off;    /* (rp.size + 1) shard boundaries when zero */
};

static size_t num_blocks(size_t n) { return (n + RN_SHARD_ALIGN - 1) / RN_SHARD_ALIGN; }

void rn_train_config_default(rn_train_config *tc) {
    memset(tc, 0, sizeof *tc);
    tc->batch = 16; tc->seq = 256; tc->accum = 1;
    tc->mode = RN_PARALLEL; tc->chunk = 64;
    tc->steps = 1000; tc->warmup = 100;
    tc->lr = 2e-3; tc->min_lr_ratio = 0.1;
    tc->beta1 = 0.9; tc->beta2 = 0.95; tc->eps = 1e-8;
    tc->weight_decay = 0.1; tc->grad_clip = 1.0;
    tc->schedule = RN_SCHED_COSINE;
    tc->decay_embed = 0;
}

static rn_status check_tc(const rn_train_config *tc) {
    if (tc->batch < 1 || tc->seq < 1 || tc->accum < 1 || tc->steps < 1 || tc->warmup < 0)
        return rni_fail(RN_ERR_ARG, "batch, seq, accum and steps must be >= 1, warmup >= 0");
    /* Tokens per step, bounded so that no size computed from them can
     * overflow (a checkpoint may ask for anything). */
    size_t n;
    if (!rni_mul_ok((size_t)tc->batch, (size_t)tc->seq, &n) || !rni_mul_ok(n, (size_t)tc->accum, &n) || n > INT_MAX)
        return rni_fail(RN_ERR_ARG, "batch x seq x accum = %d x %d x %d tokens per step is too many", tc->batch, tc->seq, tc->accum);
    if (tc->mode != RN_PARALLEL && tc->mode != RN_CHUNKWISE) return rni_fail(RN_ERR_ARG, "training mode must be parallel or chunkwise");
    if (tc->mode == RN_CHUNKWISE && tc->chunk < 1) return rni_fail(RN_ERR_ARG, "chunk must be >= 1");
    if (!(tc->lr > 0 && tc->lr < 10) || !(tc->min_lr_ratio >= 0 && tc->min_lr_ratio <= 1) || !(tc->beta1 >= 0 && tc->beta1 < 1) ||
        !(tc->beta2 >= 0 && tc->beta2 < 1) || !(tc->eps > 0) || !(tc->weight_decay >= 0) || !(tc->grad_clip >= 0) ||
        !isfinite(tc->eps) || !isfinite(tc->weight_decay) || !isfinite(tc->grad_clip))
        return rni_fail(RN_ERR_ARG, "optimiser settings out of range");
    if ((unsigned)tc->schedule >= RN_SCHED_COUNT) return rni_fail(RN_ERR_ARG, "unknown schedule");
    return RN_OK;
}

static const char *const schedule_names[] = {"cosine", "linear", "constant"};
_Static_assert(sizeof schedule_names / sizeof *schedule_names == RN_SCHED_COUNT, "one name per schedule");

const char *rn_schedule_name(rn_schedule s) { return rni_name_of(schedule_names, RN_SCHED_COUNT, (int)s); }

rn_status rn_schedule_from_name(const char *name, rn_schedule *out) {
    int i = 0;
    rn_status st = rni_name_lookup(schedule_names, RN_SCHED_COUNT, "schedule", name, &i);
    if (st == RN_OK) *out = (rn_schedule)i;
    return st;
}

rn_status rn_trainer_create(rn_model *m, const rn_train_config *tc, rn_trainer **out) {
    *out = NULL;
    rn_status st = check_tc(tc);
    if (st == RN_OK) st = rni_model_check_f32(m, "training");
    if (st == RN_OK) st = rni_model_materialize(m);  /* the weights become writable */
    if (st != RN_OK) return st;
    rn_trainer *t = calloc(1, sizeof *t);
    if (!t) return rni_fail(RN_ERR_NOMEM, "out of memory");
    t->m = m;
    t->tc = *tc;
    t->lo = 0;
    t->hi = m->n_params;
    t->rp.size = 1;
    t->grad = rni_calloc(m->n_params, sizeof(rn_real));
    t->adam_m = rni_calloc(m->n_params, sizeof(rn_real));
    t->adam_v = rni_calloc(m->n_params, sizeof(rn_real));
    t->decay = calloc((size_t)m->n_tensors, 1);
    t->norm2 = calloc(num_blocks(m->n_params) + 2, sizeof(double));
    if (!t->grad || !t->adam_m || !t->adam_v || !t->decay || !t->norm2) {
        rn_trainer_free(t);
        return rni_fail(RN_ERR_NOMEM, "out of memory for the optimiser");
    }
    /* Decay matrices only: not norms, biases, or (by default) embeddings. */
    for (int i = 0; i < m->n_tensors; i++) {
        const rn_tensor_info *ti = &m->tensors[i];
        int is_embed = ti->kind == RN_T_EMBED || (ti->kind == RN_T_HEAD && m->cfg.tie_embed);
        t->decay[i] = ti->cols > 1 && (!is_embed || tc->decay_embed);
    }
    *out = t;
    return RN_OK;
}

void rn_trainer_free(rn_trainer *t) {
    if (!t) return;
    rni_free(t->grad);
    rni_free(t->micro);
    rni_free(t->adam_m);
    rni_free(t->adam_v);
    free(t->decay);
    free(t->norm2);
    free(t->shard_off);
    free(t);
}

const rn_train_config *rn_trainer_config(const rn_trainer *t) { return &t->tc; }
int64_t rn_trainer_step_count(const rn_trainer *t) { return t->step; }
rn_model *rn_trainer_model(rn_trainer *t) { return t->m; }

double rn_lr_at(const rn_train_config *tc, int64_t step) {
    double lr = tc->lr, lo = tc->lr * tc->min_lr_ratio;
    if (step < tc->warmup) return lr * (double)(step + 1) / (tc->warmup + 1);
    if (tc->schedule == RN_SCHED_CONSTANT || tc->steps <= tc->warmup) return lr;
    double p = (double)(step - tc->warmup) / (double)(tc->steps - tc->warmup);
    if (p > 1) p = 1;
    if (tc->schedule == RN_SCHED_LINEAR) return lr - (lr - lo) * p;
    return lo + 0.5 * (lr - lo) * (1 + cos(3.14159265358979323846 * p));
}

/* Receives each final range of a micro-batch's gradient from the backward
 * pass: adds it to the step's gradient when the micro-batch has a buffer of
 * its own, and hands it to the replicas on the step's last micro-batch. */
typedef struct {
    rn_trainer *t;
    const rn_real *micro;  /* the micro-batch's gradient, or NULL: computed in place */
    int last;              /* the step's last micro-batch */
    size_t done;           /* values received */
} ready_ctx;

static void on_ready(void *ctx, size_t off, size_t n) {
    ready_ctx *rc = ctx;
    rn_trainer *t = rc->t;
    if (rc->micro) {
        rn_real *g = t->grad + off;
        const rn_real *mg = rc->micro + off;
#pragma omp parallel for schedule(static) if (n > 65536)
        for (size_t i = 0; i < n; i++) g[i] += mg[i];
    }
    rc->done += n;
    if (rc->last && t->rp.grad_ready) t->rp.grad_ready(t->rp.ctx, t->grad, off, n);
}

/* The gradient of the step's micro-batches, scaled to the mean over all
 * replicas' micro-batches, and this replica's share of the mean loss. Each
 * micro-batch's gradient starts from zero and they are added in order, so
 * one replica with accum = R equals R replicas (R <= 2; beyond, up to the
 * order of the reduction) bit for bit. */
static rn_status accumulate(rn_trainer *t, const int32_t *x, const int32_t *y, double *loss, int *tokens) {
    rn_model *m = t->m;
    const rn_train_config *tc = &t->tc;
    size_t np = m->n_params, bt = (size_t)tc->batch * tc->seq;
    double share = 1.0 / ((double)tc->accum * t->rp.size);
    if (tc->accum > 1 && !t->micro && !(t->micro = rni_alloc(np, sizeof(rn_real))))
        return rni_fail(RN_ERR_NOMEM, "out of memory for gradient accumulation");
    memset(t->grad, 0, np * sizeof *t->grad);
    ready_ctx rc = {t, NULL, 0, 0};
    rn_grad_hook hook = {on_ready, &rc};
    *loss = 0;
    *tokens = 0;
    for (int a = 0; a < tc->accum; a++) {
        rc.micro = a ? t->micro : NULL;
        rc.last = a == tc->accum - 1;
        rc.done = 0;
        if (a) memset(t->micro, 0, np * sizeof *t->micro);
        double l;
        int cnt;
        rn_status st = rni_model_loss_grad_hook(m, x + a * bt, y + a * bt, tc->batch, tc->seq, tc->mode, tc->chunk,
                                               share, a ? t->micro : t->grad, &l, &cnt, &hook);
        if (st != RN_OK) return st;
        /* No scored target: no gradient, and no range was reported. */
        if (rc.last && rc.done == 0 && t->rp.grad_ready) t->rp.grad_ready(t->rp.ctx, t->grad, 0, np);
        *loss += l * share;
        *tokens += cnt;
    }
    return RN_OK;
}

rn_status rn_trainer_step(rn_trainer *t, const int32_t *x, const int32_t *y, rn_step_info *info) {
    rn_model *m = t->m;
    const rn_train_config *tc = &t->tc;
    const rn_replicas *rp = &t->rp;
    size_t np = m->n_params, nb = num_blocks(np);
    double loss = 0;
    int tokens = 0;
    rn_status st = accumulate(t, x, y, &loss, &tokens);
    if (st == RN_OK && rp->size > 1) st = rp->grad_reduce(rp->ctx, t->grad, np);
    if (st != RN_OK) return st;
    /* The squared norm in fixed blocks, added in order: the same sum
     * whatever the sharding. Sharded, each block is summed by its owner and
     * the others contribute zeros (exact). norm2[nb], [nb + 1]: the loss
     * and the tokens, summed over the replicas with the blocks. */
    double *norm2 = t->norm2;
    const rn_real *g = t->grad;
    memset(norm2, 0, nb * sizeof *norm2);
    size_t blk0 = t->lo / RN_SHARD_ALIGN, blk1 = num_blocks(t->hi);
#pragma omp parallel for schedule(static)
    for (size_t b = blk0; b < blk1; b++) {
        size_t i1 = (b + 1) * RN_SHARD_ALIGN < np ? (b + 1) * RN_SHARD_ALIGN : np;
        double s = 0;
#pragma omp simd reduction(+ : s)
        for (size_t i = b * RN_SHARD_ALIGN; i < i1; i++) s += (double)g[i] * g[i];
        norm2[b] = s;
    }
    norm2[nb] = loss;
    norm2[nb + 1] = tokens;
    if (rp->size > 1) {
        st = t->zero ? rp->sum(rp->ctx, norm2, (int)nb + 2) : rp->sum(rp->ctx, norm2 + nb, 2);
        if (st != RN_OK) return st;
        loss = norm2[nb];
        tokens = (int)norm2[nb + 1];
    }
    double gn2 = 0;
    for (size_t b = 0; b < nb; b++) gn2 += norm2[b];
    double gnorm = sqrt(gn2), lr = rn_lr_at(tc, t->step);
    if (info) { info->loss = loss; info->grad_norm = gnorm; info->lr = lr; info->tokens = tokens; info->step = t->step; }
    /* A non-finite loss or gradient must not touch the weights (the same
     * decision on every replica: the loss and the norm are global). */
    if (!isfinite(loss) || !isfinite(gnorm))
        return rni_fail(RN_ERR_NUMERIC, "non-finite %s at step %lld (loss %g, gradient norm %g)",
                       isfinite(loss) ? "gradient" : "loss", (long long)t->step + 1, loss, gnorm);
    double clip = tc->grad_clip > 0 && gnorm > tc->grad_clip ? tc->grad_clip / gnorm : 1.0;
    int64_t s = t->step + 1;
    double b1 = tc->beta1, b2 = tc->beta2, bc1 = 1 - pow(b1, (double)s), bc2 = 1 - pow(b2, (double)s);
    rn_real c1 = (rn_real)clip, a1 = (rn_real)b1, a2 = (rn_real)b2, ib1 = (rn_real)(1 / bc1),
            ib2 = (rn_real)(1 / bc2), e = (rn_real)tc->eps, lrr = (rn_real)lr;
    /* One parallel region over the whole buffer, each tensor's part split
     * statically without a barrier between tensors (every element is its
     * own update: the same values whatever the split); a small model's
     * dozens of tensors would otherwise pay a region each. */
#pragma omp parallel if (t->hi - t->lo > 65536)
    for (int ti = 0; ti < m->n_tensors; ti++) {
        /* The part of the tensor in [lo, hi) */
        const rn_tensor_info *inf = &m->tensors[ti];
        size_t end = inf->offset + (size_t)inf->rows * inf->cols;
        size_t i0 = inf->offset > t->lo ? inf->offset : t->lo, i1 = end < t->hi ? end : t->hi;
        if (i0 >= i1) continue;
        size_t n = i1 - i0;
        rn_real *p = m->params + i0, *mm = t->adam_m + (i0 - t->lo), *vv = t->adam_v + (i0 - t->lo);
        const rn_real *gt = t->grad + i0;
        /* In the parameters' precision, as PyTorch's AdamW: float32 halves
         * the bytes per lane of the vector divide and square root. Locals,
         * so the loop vectorises (the arrays written cannot alias them). */
        rn_real wdr = (rn_real)(t->decay[ti] ? tc->weight_decay : 0);
#pragma omp for simd schedule(static) nowait
        for (size_t i = 0; i < n; i++) {
            rn_real gi = gt[i] * c1;
            rn_real mi = a1 * mm[i] + (1 - a1) * gi, vi = a2 * vv[i] + (1 - a2) * gi * gi;
            mm[i] = mi;
            vv[i] = vi;
            rn_real upd = (mi * ib1) / (RN_SQRT_REAL(vi * ib2) + e);
            p[i] -= lrr * (upd + wdr * p[i]);
        }
    }
    t->step = s;
    /* Sharded: every replica gets the others' updated weights. */
    if (t->zero && rp->size > 1) return rp->gather(rp->ctx, m->params + t->lo, m->params, t->shard_off, -1);
    return RN_OK;
}

/* ----------------------------------------------------- replicas, ZeRO-1 */

size_t rn_shard_offset(size_t n, int size, int r) {
    if (size < 1 || r >= size) return n;
    if (r <= 0) return 0;
    /* Whole blocks, split as evenly as integer division allows. */
    size_t nb = num_blocks(n), off = (size_t)((unsigned long long)nb * (unsigned)r / (unsigned)size) * RN_SHARD_ALIGN;
    return off < n ? off : n;
}

rn_status rn_trainer_set_replicas(rn_trainer *t, const rn_replicas *rp, int zero_stage) {
    if (!rp || rp->size < 1 || rp->rank < 0 || rp->rank >= rp->size)
        return rni_fail(RN_ERR_ARG, "replica %d of %d: invalid", rp ? rp->rank : -1, rp ? rp->size : 0);
    if (zero_stage != 0 && zero_stage != 1) return rni_fail(RN_ERR_ARG, "ZeRO stage %d: only 0 and 1 exist", zero_stage);
    if (rp->size > 1 && (!rp->grad_reduce || !rp->sum || (zero_stage && !rp->gather)))
        return rni_fail(RN_ERR_ARG, "replicas need grad_reduce, sum%s", zero_stage ? " and gather" : "");
    if (t->zero) return rni_fail(RN_ERR_ARG, "the trainer's optimiser is already sharded");
    size_t np = t->m->n_params;
    if (zero_stage && rp->size > 1) {
        size_t *off = malloc(sizeof *off * ((size_t)rp->size + 1));
        if (!off) return rni_fail(RN_ERR_NOMEM, "out of memory");
        for (int r = 0; r <= rp->size; r++) off[r] = rn_shard_offset(np, rp->size, r);
        size_t lo = off[rp->rank], n = off[rp->rank + 1] - lo;
        /* Keep the shard's part of the moments (a loaded checkpoint's). */
        rn_real *mm = rni_alloc(n ? n : 1, sizeof(rn_real)), *vv = rni_alloc(n ? n : 1, sizeof(rn_real));
        if (!mm || !vv) {
            free(off); rni_free(mm); rni_free(vv);
            return rni_fail(RN_ERR_NOMEM, "out of memory for the optimiser shard");
        }
        memcpy(mm, t->adam_m + lo, n * sizeof *mm);
        memcpy(vv, t->adam_v + lo, n * sizeof *vv);
        rni_free(t->adam_m);
        rni_free(t->adam_v);
        t->adam_m = mm;
        t->adam_v = vv;
        t->shard_off = off;
        t->lo = lo;
        t->hi = lo + n;
        t->zero = 1;
    }
    t->rp = *rp;
    return RN_OK;
}

void rn_trainer_shard(const rn_trainer *t, size_t *off, size_t *n) {
    *off = t->lo;
    *n = t->hi - t->lo;
}

/* ------------------------------------------------------- checkpoints */

static const char *const moment_names[2] = {"adam.m", "adam.v"};

/* Replica 0's moments for a checkpoint: its own, or (sharded) every
 * replica's gathered into full[2] (n_params each; NULL elsewhere). If
 * replica 0 cannot allocate them, the others wait in the gather until the
 * caller's communication gives up (the CLI's collective timeout). */
static rn_status gather_moments(const rn_trainer *t, rn_real *full[2]) {
    full[0] = full[1] = NULL;
    if (!t->zero) return RN_OK;
    const rn_replicas *rp = &t->rp;
    size_t np = t->m->n_params;
    if (rp->rank == 0) {
        full[0] = rni_alloc(np, sizeof(rn_real));
        full[1] = rni_alloc(np, sizeof(rn_real));
        if (!full[0] || !full[1]) return rni_fail(RN_ERR_NOMEM, "out of memory for gathering the optimiser moments");
    }
    rn_status st = rp->gather(rp->ctx, t->adam_m, full[0], t->shard_off, 0);
    if (st == RN_OK) st = rp->gather(rp->ctx, t->adam_v, full[1], t->shard_off, 0);
    return st;
}

/* The training state a checkpoint keeps: rn_train_config's fields, each
 * under one key, in this order (enums as their int values). One table for
 * saving and loading. */
_Static_assert(sizeof(rn_mode) == sizeof(int) && sizeof(rn_schedule) == sizeof(int), "enums stored as int");
static const struct { const char *key; size_t off; int real; } train_keys[] = {
    {"batch", offsetof(rn_train_config, batch), 0},
    {"seq", offsetof(rn_train_config, seq), 0},
    {"accum", offsetof(rn_train_config, accum), 0},
    {"mode", offsetof(rn_train_config, mode), 0},
    {"chunk", offsetof(rn_train_config, chunk), 0},
    {"steps", offsetof(rn_train_config, steps), 0},
    {"warmup", offsetof(rn_train_config, warmup), 0},
    {"lr", offsetof(rn_train_config, lr), 1},
    {"min_lr_ratio", offsetof(rn_train_config, min_lr_ratio), 1},
    {"beta1", offsetof(rn_train_config, beta1), 1},
    {"beta2", offsetof(rn_train_config, beta2), 1},
    {"eps", offsetof(rn_train_config, eps), 1},
    {"weight_decay", offsetof(rn_train_config, weight_decay), 1},
    {"grad_clip", offsetof(rn_train_config, grad_clip), 1},
    {"schedule", offsetof(rn_train_config, schedule), 0},
    {"decay_embed", offsetof(rn_train_config, decay_embed), 0},
};
#define N_TRAIN_KEYS (sizeof train_keys / sizeof *train_keys)

/* The training state as the checkpoint's JSON (caller frees *js). */
static rn_status state_json(const rn_trainer *t, const char *user_json, char **js) {
    const rn_train_config *tc = &t->tc;
    cJSON *o = cJSON_CreateObject();
    if (!o) return rni_fail(RN_ERR_NOMEM, "out of memory");
    cJSON_AddNumberToObject(o, "step", (double)t->step);
    for (size_t i = 0; i < N_TRAIN_KEYS; i++) {
        const void *f = (const char *)tc + train_keys[i].off;
        if (train_keys[i].real) rni_json_add_number(o, train_keys[i].key, *(const double *)f);
        else cJSON_AddNumberToObject(o, train_keys[i].key, *(const int *)f);
    }
    if (user_json) {
        cJSON *u = cJSON_Parse(user_json);
        if (!u) { cJSON_Delete(o); return rni_fail(RN_ERR_ARG, "checkpoint user data is not JSON"); }
        cJSON_AddItemToObject(o, "user", u);
    }
    *js = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return *js ? RN_OK : rni_fail(RN_ERR_NOMEM, "out of memory");
}

rn_status rn_trainer_save(const rn_trainer *t, const char *path, const char *user_json) {
    rn_real *full[2];
    rn_status st = gather_moments(t, full);
    if (st == RN_OK && t->rp.rank == 0) {
        char *js = NULL;
        const rn_real *bufs[2] = {full[0] ? full[0] : t->adam_m, full[1] ? full[1] : t->adam_v};
        st = state_json(t, user_json, &js);
        if (st == RN_OK) st = rni_ckpt_save(path, t->m, bufs, moment_names, 2, js);
        free(js);
    }
    rni_free(full[0]);
    rni_free(full[1]);
    return st;
}

static int get_num(const cJSON *o, const char *k, double *v) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsNumber(x)) return 0;
    *v = x->valuedouble;
    return 1;
}

rn_status rn_trainer_load(const char *path, rn_trainer **out, char **user_json) {
    *out = NULL;
    if (user_json) *user_json = NULL;
    rn_model *m;
    rn_real *bufs[2];
    char *js;
    rn_status st = rni_ckpt_load(path, &m, bufs, moment_names, 2, &js);
    if (st != RN_OK) return st;
    cJSON *o = cJSON_Parse(js);
    free(js);
    rn_train_config tc;
    rn_train_config_default(&tc);
    double step = -1, v;
    int ok = o && get_num(o, "step", &step) && step >= 0 && step < 1e15;
    for (size_t i = 0; ok && i < N_TRAIN_KEYS; i++) {
        void *f = (char *)&tc + train_keys[i].off;
        ok = get_num(o, train_keys[i].key, &v);
        if (ok && train_keys[i].real) *(double *)f = v;
        /* an integer setting must fit in an int before it is converted */
        else if (ok && (ok = fabs(v) <= INT_MAX)) *(int *)f = (int)v;
    }
    ok = ok && check_tc(&tc) == RN_OK;
    rn_trainer *t = NULL;
    if (!ok) st = rni_fail(RN_ERR_FORMAT, "%s: invalid training state in the checkpoint", path);
    else st = rn_trainer_create(m, &tc, &t);
    if (st == RN_OK) {
        memcpy(t->adam_m, bufs[0], m->n_params * sizeof(rn_real));
        memcpy(t->adam_v, bufs[1], m->n_params * sizeof(rn_real));
        t->step = (int64_t)step;
        const cJSON *u = cJSON_GetObjectItemCaseSensitive(o, "user");
        if (user_json && u) *user_json = cJSON_PrintUnformatted(u);
    }
    cJSON_Delete(o);
    rni_free(bufs[0]);
    rni_free(bufs[1]);
    if (st != RN_OK) { rn_model_free(m); return st; }
    *out = t;
    return RN_OK;
}

/* Lets a resumed run change the schedule length or learning rate. */
rn_status rn_trainer_set_config(rn_trainer *t, const rn_train_config *tc) {
    rn_status st = check_tc(tc);
    if (st != RN_OK) return st;
    t->tc = *tc;
    return RN_OK;
}
