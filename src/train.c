/* train.c: AdamW with decoupled weight decay, the learning-rate schedule,
 * gradient clipping and accumulation, and training checkpoints. */
#define _POSIX_C_SOURCE 200809L
#include "model.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

struct rn_trainer {
    rn_model *m;
    rn_train_config tc;
    int64_t step;         /* optimiser steps done */
    rn_real *grad;        /* (n_params) */
    rn_real *adam_m;      /* (n_params) first moment */
    rn_real *adam_v;      /* (n_params) second moment */
    unsigned char *decay; /* (n_tensors) weight decay applies */
};

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
        return rn_fail(RN_ERR_ARG, "batch, seq, accum and steps must be >= 1, warmup >= 0");
    if (tc->mode != RN_PARALLEL && tc->mode != RN_CHUNKWISE) return rn_fail(RN_ERR_ARG, "training mode must be parallel or chunkwise");
    if (tc->mode == RN_CHUNKWISE && tc->chunk < 1) return rn_fail(RN_ERR_ARG, "chunk must be >= 1");
    if (!(tc->lr > 0 && tc->lr < 10) || !(tc->min_lr_ratio >= 0 && tc->min_lr_ratio <= 1) || !(tc->beta1 >= 0 && tc->beta1 < 1) ||
        !(tc->beta2 >= 0 && tc->beta2 < 1) || !(tc->eps > 0) || !(tc->weight_decay >= 0) || !(tc->grad_clip >= 0))
        return rn_fail(RN_ERR_ARG, "optimiser settings out of range");
    if ((unsigned)tc->schedule > RN_SCHED_CONSTANT) return rn_fail(RN_ERR_ARG, "unknown schedule");
    return RN_OK;
}

rn_status rn_trainer_create(rn_model *m, const rn_train_config *tc, rn_trainer **out) {
    *out = NULL;
    rn_status st = check_tc(tc);
    if (st != RN_OK) return st;
    rn_trainer *t = calloc(1, sizeof *t);
    if (!t) return rn_fail(RN_ERR_NOMEM, "out of memory");
    t->m = m;
    t->tc = *tc;
    t->grad = rn_calloc(m->n_params, sizeof(rn_real));
    t->adam_m = rn_calloc(m->n_params, sizeof(rn_real));
    t->adam_v = rn_calloc(m->n_params, sizeof(rn_real));
    t->decay = calloc((size_t)m->n_tensors, 1);
    if (!t->grad || !t->adam_m || !t->adam_v || !t->decay) {
        rn_trainer_free(t);
        return rn_fail(RN_ERR_NOMEM, "out of memory for the optimiser");
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
    rn_free(t->grad);
    rn_free(t->adam_m);
    rn_free(t->adam_v);
    free(t->decay);
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

rn_status rn_trainer_step(rn_trainer *t, const int32_t *x, const int32_t *y, rn_step_info *info) {
    rn_model *m = t->m;
    const rn_train_config *tc = &t->tc;
    size_t np = m->n_params, bt = (size_t)tc->batch * tc->seq;
    memset(t->grad, 0, np * sizeof *t->grad);
    double loss = 0;
    int tokens = 0;
    for (int a = 0; a < tc->accum; a++) {
        double l;
        int cnt;
        rn_status st = rn_model_loss_grad(m, x + a * bt, y + a * bt, tc->batch, tc->seq, tc->mode, tc->chunk,
                                          1.0 / tc->accum, t->grad, &l, &cnt);
        if (st != RN_OK) return st;
        loss += l / tc->accum;
        tokens += cnt;
    }
    double gn2 = 0;
    for (size_t i = 0; i < np; i++) gn2 += (double)t->grad[i] * t->grad[i];
    double gnorm = sqrt(gn2), lr = rn_lr_at(tc, t->step);
    if (info) { info->loss = loss; info->grad_norm = gnorm; info->lr = lr; info->tokens = tokens; info->step = t->step; }
    /* A non-finite loss or gradient must not touch the weights. */
    if (!isfinite(loss) || !isfinite(gnorm))
        return rn_fail(RN_ERR_NUMERIC, "non-finite %s at step %lld (loss %g, gradient norm %g)",
                       isfinite(loss) ? "gradient" : "loss", (long long)t->step + 1, loss, gnorm);
    double clip = tc->grad_clip > 0 && gnorm > tc->grad_clip ? tc->grad_clip / gnorm : 1.0;
    int64_t s = t->step + 1;
    double b1 = tc->beta1, b2 = tc->beta2, bc1 = 1 - pow(b1, (double)s), bc2 = 1 - pow(b2, (double)s);
    for (int ti = 0; ti < m->n_tensors; ti++) {
        const rn_tensor_info *inf = &m->tensors[ti];
        size_t off = inf->offset, n = (size_t)inf->rows * inf->cols;
        double wd = t->decay[ti] ? tc->weight_decay : 0;
        rn_real *p = m->params + off, *g = t->grad + off, *mm = t->adam_m + off, *vv = t->adam_v + off;
#pragma omp parallel for schedule(static) if (n > 65536)
        for (size_t i = 0; i < n; i++) {
            double gi = g[i] * clip;
            double mi = b1 * mm[i] + (1 - b1) * gi, vi = b2 * vv[i] + (1 - b2) * gi * gi;
            mm[i] = (rn_real)mi;
            vv[i] = (rn_real)vi;
            double upd = (mi / bc1) / (sqrt(vi / bc2) + tc->eps);
            p[i] = (rn_real)(p[i] - lr * (upd + wd * p[i]));
        }
    }
    t->step = s;
    return RN_OK;
}

/* ------------------------------------------------------- checkpoints */

static const char *const moment_names[2] = {"adam.m", "adam.v"};

rn_status rn_trainer_save(const rn_trainer *t, const char *path, const char *user_json) {
    const rn_train_config *tc = &t->tc;
    cJSON *o = cJSON_CreateObject();
    if (!o) return rn_fail(RN_ERR_NOMEM, "out of memory");
    cJSON_AddNumberToObject(o, "step", (double)t->step);
    cJSON_AddNumberToObject(o, "batch", tc->batch);
    cJSON_AddNumberToObject(o, "seq", tc->seq);
    cJSON_AddNumberToObject(o, "accum", tc->accum);
    cJSON_AddNumberToObject(o, "mode", tc->mode);
    cJSON_AddNumberToObject(o, "chunk", tc->chunk);
    cJSON_AddNumberToObject(o, "steps", tc->steps);
    cJSON_AddNumberToObject(o, "warmup", tc->warmup);
    cJSON_AddNumberToObject(o, "lr", tc->lr);
    cJSON_AddNumberToObject(o, "min_lr_ratio", tc->min_lr_ratio);
    cJSON_AddNumberToObject(o, "beta1", tc->beta1);
    cJSON_AddNumberToObject(o, "beta2", tc->beta2);
    cJSON_AddNumberToObject(o, "eps", tc->eps);
    cJSON_AddNumberToObject(o, "weight_decay", tc->weight_decay);
    cJSON_AddNumberToObject(o, "grad_clip", tc->grad_clip);
    cJSON_AddNumberToObject(o, "schedule", tc->schedule);
    cJSON_AddNumberToObject(o, "decay_embed", tc->decay_embed);
    if (user_json) {
        cJSON *u = cJSON_Parse(user_json);
        if (!u) { cJSON_Delete(o); return rn_fail(RN_ERR_ARG, "checkpoint user data is not JSON"); }
        cJSON_AddItemToObject(o, "user", u);
    }
    char *js = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!js) return rn_fail(RN_ERR_NOMEM, "out of memory");
    const rn_real *bufs[2] = {t->adam_m, t->adam_v};
    rn_status st = rn_ckpt_save(path, t->m, bufs, moment_names, 2, js);
    free(js);
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
    rn_status st = rn_ckpt_load(path, &m, bufs, moment_names, 2, &js);
    if (st != RN_OK) return st;
    cJSON *o = cJSON_Parse(js);
    free(js);
    rn_train_config tc;
    rn_train_config_default(&tc);
    double v[18];
    const char *keys[18] = {"step", "batch", "seq", "accum", "mode", "chunk", "steps", "warmup", "lr", "min_lr_ratio",
                            "beta1", "beta2", "eps", "weight_decay", "grad_clip", "schedule", "decay_embed", NULL};
    int ok = o != NULL;
    for (int i = 0; ok && keys[i]; i++) ok = get_num(o, keys[i], &v[i]);
    if (ok) {
        tc.batch = (int)v[1]; tc.seq = (int)v[2]; tc.accum = (int)v[3]; tc.mode = (rn_mode)(int)v[4];
        tc.chunk = (int)v[5]; tc.steps = (int)v[6]; tc.warmup = (int)v[7]; tc.lr = v[8]; tc.min_lr_ratio = v[9];
        tc.beta1 = v[10]; tc.beta2 = v[11]; tc.eps = v[12]; tc.weight_decay = v[13]; tc.grad_clip = v[14];
        tc.schedule = (rn_schedule)(int)v[15]; tc.decay_embed = (int)v[16];
        ok = v[0] >= 0 && v[0] < 1e15 && check_tc(&tc) == RN_OK;
    }
    rn_trainer *t = NULL;
    if (!ok) st = rn_fail(RN_ERR_FORMAT, "%s: invalid training state in the checkpoint", path);
    else st = rn_trainer_create(m, &tc, &t);
    if (st == RN_OK) {
        memcpy(t->adam_m, bufs[0], m->n_params * sizeof(rn_real));
        memcpy(t->adam_v, bufs[1], m->n_params * sizeof(rn_real));
        t->step = (int64_t)v[0];
        const cJSON *u = cJSON_GetObjectItemCaseSensitive(o, "user");
        if (user_json && u) *user_json = cJSON_PrintUnformatted(u);
    }
    cJSON_Delete(o);
    rn_free(bufs[0]);
    rn_free(bufs[1]);
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
