/* model.c: the parameter table, model and state objects, initialisation. */
#include "model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *kind_names[] = {
    "embed", "embed_norm.weight", "embed_norm.bias", "norm1.weight", "norm1.bias", "wqkvg", "wo",
    "head_norm.weight", "head_norm.bias", "norm2.weight", "norm2.bias", "fc1", "fc1.bias", "fc2",
    "fc2.bias", "final_norm.weight", "final_norm.bias", "lm_head"};

const char *rni_tensor_kind_name(rn_tensor_kind k) { return kind_names[k]; }

int rni_param_table(const rn_config *c, rn_tensor_info *tab, size_t *n_params) {
    int n = 0;
    size_t off = 0;
    size_t d = c->dim, Vd = c->value_dim, F = c->ffn_dim, V = c->vocab, H = c->heads;
    int lnb = c->block_norm == RN_NORM_LAYER;
#define ADD(k, l, r, cc) do { \
        if (tab) tab[n] = (rn_tensor_info){(k), (l), off, (int)(r), (int)(cc)}; \
        off += (size_t)(r) * (cc); n++; } while (0)
    ADD(RN_T_EMBED, -1, V, d);
    if (c->embed_norm) { ADD(RN_T_EMBED_NORM_W, -1, d, 1); if (lnb) ADD(RN_T_EMBED_NORM_B, -1, d, 1); }
    for (int l = 0; l < c->layers; l++) {
        ADD(RN_T_NORM1_W, l, d, 1);
        if (lnb) ADD(RN_T_NORM1_B, l, d, 1);
        ADD(RN_T_WQKVG, l, 2 * d + 2 * Vd, d);
        ADD(RN_T_WO, l, d, Vd);
        if (c->head_norm == RN_HEADNORM_GROUP) { ADD(RN_T_HN_W, l, Vd, 1); ADD(RN_T_HN_B, l, Vd, 1); }
        if (c->head_norm == RN_HEADNORM_RMS_SHARED) ADD(RN_T_HN_W, l, Vd / H, 1);
        ADD(RN_T_NORM2_W, l, d, 1);
        if (lnb) ADD(RN_T_NORM2_B, l, d, 1);
        if (c->ffn == RN_FFN_GLU) {
            ADD(RN_T_FC1, l, 2 * F, d);
        } else {
            ADD(RN_T_FC1, l, F, d);
            ADD(RN_T_FC1_B, l, F, 1);
        }
        ADD(RN_T_FC2, l, d, F);
        if (c->ffn == RN_FFN_MLP) ADD(RN_T_FC2_B, l, d, 1);
    }
    if (c->final_norm) { ADD(RN_T_FINAL_W, -1, d, 1); if (lnb) ADD(RN_T_FINAL_B, -1, d, 1); }
    if (!c->tie_embed) ADD(RN_T_HEAD, -1, V, d);
#undef ADD
    if (n_params) *n_params = off;
    return n;
}

rn_status rni_weights_bind(const rn_config *c, const rn_tensor_info *tab, int n, rn_real *buf,
                          rn_weights *w) {
    rn_layer_w *layers = w->layer;
    memset(w, 0, sizeof *w);
    w->layer = layers;
    memset(layers, 0, sizeof *layers * (size_t)c->layers);
    for (int i = 0; i < n; i++) {
        rn_real *p = buf + tab[i].offset;
        rn_layer_w *lw = tab[i].layer >= 0 ? &layers[tab[i].layer] : NULL;
        switch (tab[i].kind) {
        case RN_T_EMBED: w->embed = p; break;
        case RN_T_EMBED_NORM_W: w->embed_norm_w = p; break;
        case RN_T_EMBED_NORM_B: w->embed_norm_b = p; break;
        case RN_T_NORM1_W: lw->norm1_w = p; break;
        case RN_T_NORM1_B: lw->norm1_b = p; break;
        case RN_T_WQKVG: lw->wqkvg = p; break;
        case RN_T_WO: lw->wo = p; break;
        case RN_T_HN_W: lw->hn_w = p; break;
        case RN_T_HN_B: lw->hn_b = p; break;
        case RN_T_NORM2_W: lw->norm2_w = p; break;
        case RN_T_NORM2_B: lw->norm2_b = p; break;
        case RN_T_FC1: lw->fc1 = p; break;
        case RN_T_FC1_B: lw->fc1_b = p; break;
        case RN_T_FC2: lw->fc2 = p; break;
        case RN_T_FC2_B: lw->fc2_b = p; break;
        case RN_T_FINAL_W: w->final_w = p; break;
        case RN_T_FINAL_B: w->final_b = p; break;
        case RN_T_HEAD: w->head = p; break;
        }
    }
    if (c->tie_embed) w->head = w->embed;
    return RN_OK;
}

size_t rn_config_num_params(const rn_config *c) {
    if (rn_config_validate(c) != RN_OK) return 0;
    size_t n;
    rni_param_table(c, NULL, &n);
    return n;
}

rn_status rn_model_create(const rn_config *cfg, rn_model **out) {
    *out = NULL;
    rn_status st = rn_config_validate(cfg);
    if (st != RN_OK) return st;
    rn_model *m = calloc(1, sizeof *m);
    if (!m) return rni_fail(RN_ERR_NOMEM, "out of memory");
    m->cfg = *cfg;
    m->K = cfg->dim / cfg->heads;
    m->Dv = cfg->value_dim / cfg->heads;
    m->n_tensors = rni_param_table(cfg, NULL, &m->n_params);
    m->tensors = calloc((size_t)m->n_tensors, sizeof *m->tensors);
    m->w.layer = calloc((size_t)cfg->layers, sizeof *m->w.layer);
    m->params = rni_calloc(m->n_params, sizeof(rn_real));
    m->head = calloc((size_t)cfg->heads, sizeof *m->head);
    m->rot_freq = calloc((size_t)m->K / 2, sizeof(double));
    if (cfg->rotation == RN_ROT_XPOS) m->xpos_logz = calloc((size_t)m->K, sizeof(double));
    if (!m->tensors || !m->w.layer || !m->params || !m->head || !m->rot_freq ||
        (cfg->rotation == RN_ROT_XPOS && !m->xpos_logz)) {
        rn_model_free(m);
        return rni_fail(RN_ERR_NOMEM, "out of memory for a model of %zu parameters", rn_config_num_params(cfg));
    }
    rni_param_table(cfg, m->tensors, NULL);
    rni_weights_bind(cfg, m->tensors, m->n_tensors, m->params, &m->w);
    rni_model_consts(m);
    *out = m;
    return RN_OK;
}

void rn_model_free(rn_model *m) {
    if (!m) return;
    free(m->tensors);
    free(m->w.layer);
    rni_free(m->params);
    free(m->head);
    free(m->rot_freq);
    free(m->xpos_logz);
    rni_acts_free(m->inf);
    rni_acts_free(m->inf_step);
    rni_acts_free(m->train);
    free(m);
}

const rn_config *rn_model_config(const rn_model *m) { return &m->cfg; }
size_t rn_model_num_params(const rn_model *m) { return m->n_params; }
rn_real *rn_model_params(rn_model *m) { return m->params; }

/* ---------------------------------------------------------------- init */

static void fill_uniform(rn_rng *r, rn_real *p, size_t n, double bound) {
    for (size_t i = 0; i < n; i++) p[i] = (rn_real)((2 * rn_rng_uniform(r) - 1) * bound);
}

static void fill_normal(rn_rng *r, rn_real *p, size_t n, double std) {
    for (size_t i = 0; i < n; i++) p[i] = (rn_real)(rn_rng_normal(r) * std);
}

static void fill_const(rn_real *p, size_t n, double v) {
    for (size_t i = 0; i < n; i++) p[i] = (rn_real)v;
}

/* xavier_uniform: U(-a, a), a = gain sqrt(6 / (fan_in + fan_out)). */
static void xavier(rn_rng *r, rn_real *p, int rows, int cols, double gain) {
    fill_uniform(r, p, (size_t)rows * cols, gain * sqrt(6.0 / (rows + cols)));
}

rn_status rn_model_init_random(rn_model *m, uint64_t seed) {
    const rn_config *c = &m->cfg;
    rn_rng rng;
    rn_rng_seed(&rng, seed);
    size_t d = c->dim, Vd = c->value_dim;
    for (int i = 0; i < m->n_tensors; i++) {
        const rn_tensor_info *t = &m->tensors[i];
        rn_real *p = m->params + t->offset;
        size_t n = (size_t)t->rows * t->cols;
        switch (t->kind) {
        case RN_T_EMBED_NORM_W: case RN_T_NORM1_W: case RN_T_NORM2_W: case RN_T_FINAL_W: case RN_T_HN_W:
            fill_const(p, n, 1.0);
            break;
        case RN_T_EMBED_NORM_B: case RN_T_NORM1_B: case RN_T_NORM2_B: case RN_T_FINAL_B: case RN_T_HN_B:
            fill_const(p, n, 0.0);
            break;
        case RN_T_EMBED: case RN_T_HEAD:
            if (c->preset == RN_PRESET_TORCHSCALE) fill_normal(&rng, p, n, 1.0 / sqrt((double)d));
            else if (c->preset == RN_PRESET_SEED) fill_normal(&rng, p, n, t->kind == RN_T_EMBED ? 1.0 : 1.0 / d);
            else fill_normal(&rng, p, n, 0.02);
            break;
        case RN_T_WQKVG:
            if (c->preset == RN_PRESET_TORCHSCALE) {
                double g = pow(2.0, -2.5);
                xavier(&rng, p, d, d, g);
                xavier(&rng, p + d * d, d, d, g);
                xavier(&rng, p + 2 * d * d, Vd, d, g);
                xavier(&rng, p + 2 * d * d + Vd * d, Vd, d, g);
            } else if (c->preset == RN_PRESET_SEED) {
                fill_normal(&rng, p, n, 1.0 / d);   /* torch.randn(d, .) / d */
            } else {
                fill_normal(&rng, p, n, 0.02);
            }
            break;
        case RN_T_WO:
            if (c->preset == RN_PRESET_TORCHSCALE) xavier(&rng, p, d, Vd, 0.5);
            else if (c->preset == RN_PRESET_SEED) fill_normal(&rng, p, n, 1.0 / Vd);
            else fill_normal(&rng, p, n, 0.02);
            break;
        case RN_T_FC1: case RN_T_FC2:
            /* PyTorch's default Linear init: U(-1/sqrt(in), 1/sqrt(in)) */
            if (c->preset == RN_PRESET_FLA) fill_normal(&rng, p, n, 0.02);
            else fill_uniform(&rng, p, n, 1.0 / sqrt((double)t->cols));
            break;
        case RN_T_FC1_B:
            fill_uniform(&rng, p, n, 1.0 / sqrt((double)d));
            break;
        case RN_T_FC2_B:
            fill_uniform(&rng, p, n, 1.0 / sqrt((double)c->ffn_dim));
            break;
        }
    }
    return RN_OK;
}

/* --------------------------------------------------------------- state */

rn_status rn_state_create(const rn_model *m, int batch, rn_state **out) {
    *out = NULL;
    if (batch < 1 || batch > (1 << 20)) return rni_fail(RN_ERR_ARG, "batch %d out of range", batch);
    rn_state *s = calloc(1, sizeof *s);
    if (!s) return rni_fail(RN_ERR_NOMEM, "out of memory");
    s->B = batch; s->L = m->cfg.layers; s->H = m->cfg.heads; s->K = m->K; s->Dv = m->Dv;
    size_t n = (size_t)s->L * s->B * s->H * s->K * s->Dv;
    s->U = rni_calloc(n, sizeof(rn_real));
    if (!s->U) { free(s); return rni_fail(RN_ERR_NOMEM, "out of memory for a recurrent state"); }
    *out = s;
    return RN_OK;
}

void rn_state_free(rn_state *s) {
    if (!s) return;
    rni_free(s->U);
    free(s);
}

void rn_state_reset(rn_state *s) {
    memset(s->U, 0, sizeof(rn_real) * (size_t)s->L * s->B * s->H * s->K * s->Dv);
    s->pos = 0;
}

int64_t rn_state_pos(const rn_state *s) { return s->pos; }
int rn_state_batch(const rn_state *s) { return s->B; }

rn_status rn_state_copy(rn_state *dst, const rn_state *src) {
    if (dst->B != src->B || dst->L != src->L || dst->H != src->H || dst->K != src->K || dst->Dv != src->Dv)
        return rni_fail(RN_ERR_ARG, "state shapes differ");
    memcpy(dst->U, src->U, sizeof(rn_real) * (size_t)src->L * src->B * src->H * src->K * src->Dv);
    dst->pos = src->pos;
    return RN_OK;
}
