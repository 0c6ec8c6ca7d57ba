/* objects.c: the model and state objects: creation, initialisation, accessors, freeing. */
#define _DEFAULT_SOURCE
#include "model.h"
#include "objects.h"
#include "acts.h"
#include "params.h"
#include "preset.h"
#include "retention.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* Points the table and the weights into the one parameter buffer. */
static void bind_params(rn_model *m) {
    for (int i = 0; i < m->n_tensors; i++) m->tensors[i].data = m->params + m->tensors[i].offset;
    rni_weights_bind(&m->cfg, m->tensors, m->n_tensors, m->params, &m->w);
}

static void unmap_all(rn_model *m) {
    for (int i = 0; i < m->n_maps; i++) munmap(m->maps[i], m->map_sizes[i]);
    free(m->maps);
    free(m->map_sizes);
    m->maps = NULL; m->map_sizes = NULL; m->n_maps = 0;
}

/* The values of every tensor, wherever they are, into p (n_params): typed
 * ones dequantised (only the float build holds them). */
static void gather(const rn_model *m, rn_real *p) {
    for (int i = 0; i < m->n_tensors; i++) {
        const rn_tensor_info *t = &m->tensors[i];
        if (t->wtype == RN_WTYPE_F32) {
            memcpy(p + t->offset, t->data, sizeof(rn_real) * (size_t)t->rows * t->cols);
            continue;
        }
        size_t rb = rn_wtype_row_bytes(t->wtype, t->cols);
#pragma omp parallel for schedule(static) if ((size_t)t->rows * t->cols >= ((size_t)1 << 18))
        for (int r = 0; r < t->rows; r++)
            rn_dequantize_row(t->wtype, (const char *)t->wdata + (size_t)r * rb,
                              (float *)(p + t->offset + (size_t)r * t->cols), t->cols);
    }
}

rn_status rni_model_materialize(rn_model *m) {
    if (m->params) return RN_OK;
    /* A skeleton (no tensor has values yet) gets zeros, as rn_model_create. */
    rn_real *p = m->n_maps ? rni_alloc(m->n_params, sizeof(rn_real)) : rni_calloc(m->n_params, sizeof(rn_real));
    if (!p) return rni_fail(RN_ERR_NOMEM, "out of memory for the %zu parameters", m->n_params);
    if (m->n_maps) gather(m, p);
    m->params = p;
    for (int i = 0; i < m->n_tensors; i++) { m->tensors[i].wtype = RN_WTYPE_F32; m->tensors[i].wdata = NULL; }
    bind_params(m);
    unmap_all(m);
    return RN_OK;
}

rn_status rn_model_create(const rn_config *cfg, rn_model **out) {
    return rni_model_new(cfg, 1, out);
}

rn_status rni_model_new(const rn_config *cfg, int with_params, rn_model **out) {
    *out = NULL;
    rn_status st = rn_config_validate(cfg);
    if (st != RN_OK) return st;
    rn_model *m = calloc(1, sizeof *m);
    if (!m) return rni_fail(RN_ERR_NOMEM, "out of memory");
    m->cfg = *cfg;
    m->x8 = 1;
    m->K = cfg->dim / cfg->heads;
    m->Dv = cfg->value_dim / cfg->heads;
    m->n_tensors = rni_param_table(cfg, NULL, &m->n_params);
    m->tensors = calloc((size_t)m->n_tensors, sizeof *m->tensors);
    m->w.layer = calloc((size_t)cfg->layers, sizeof *m->w.layer);
    if (with_params) m->params = rni_calloc(m->n_params, sizeof(rn_real));
    m->head = calloc((size_t)cfg->heads, sizeof *m->head);
    m->rot_freq = calloc((size_t)m->K / 2, sizeof(double));
    if (cfg->rotation == RN_ROT_XPOS) m->xpos_logz = calloc((size_t)m->K, sizeof(double));
    if (!m->tensors || !m->w.layer || (with_params && !m->params) || !m->head || !m->rot_freq ||
        (cfg->rotation == RN_ROT_XPOS && !m->xpos_logz)) {
        rn_model_free(m);
        return rni_fail(RN_ERR_NOMEM, "out of memory for a model of %zu parameters", rn_config_num_params(cfg));
    }
    rni_param_table(cfg, m->tensors, NULL);
    if (with_params) bind_params(m);
    rni_model_consts(m);
    *out = m;
    return RN_OK;
}

void rn_model_free(rn_model *m) {
    if (!m) return;
    free(m->tensors);
    free(m->w.layer);
    rni_free(m->params);
    unmap_all(m);
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
rn_real *rn_model_params(rn_model *m) { return rni_model_materialize(m) == RN_OK ? m->params : NULL; }

/* --------------------------------------------------------- typed weights */

int rn_model_num_tensors(const rn_model *m) { return m->n_tensors; }

static size_t tensor_bytes(const rn_tensor_info *t) {
    return t->wtype == RN_WTYPE_F32 ? sizeof(rn_real) * (size_t)t->rows * t->cols
                                    : (size_t)t->rows * rn_wtype_row_bytes(t->wtype, t->cols);
}

rn_status rn_model_tensor(const rn_model *m, int i, rn_tensor_desc *out) {
    if (i < 0 || i >= m->n_tensors) return rni_fail(RN_ERR_ARG, "tensor %d out of range [0, %d)", i, m->n_tensors);
    const rn_tensor_info *t = &m->tensors[i];
    *out = (rn_tensor_desc){rni_tensor_kind_name(t->kind), t->layer, t->rows, t->cols, t->wtype, tensor_bytes(t)};
    return RN_OK;
}

int rn_model_quantized(const rn_model *m) { return rni_model_typed(m) != NULL; }

const rn_tensor_info *rni_model_typed(const rn_model *m) {
    for (int i = 0; i < m->n_tensors; i++)
        if (m->tensors[i].wtype != RN_WTYPE_F32) return &m->tensors[i];
    return NULL;
}

rn_status rni_model_check_f32(const rn_model *m, const char *what) {
    const rn_tensor_info *t = rni_model_typed(m);
    if (!t) return RN_OK;
    return rni_fail(RN_ERR_ARG, "%s: the model's weights are quantised (%s %s): train in f32 and quantise for inference",
                    what, rni_tensor_kind_name(t->kind), rn_wtype_name(t->wtype));
}

size_t rn_model_decode_bytes(const rn_model *m) {
    size_t total = 0;
    for (int i = 0; i < m->n_tensors; i++) {
        const rn_tensor_info *t = &m->tensors[i];
        size_t b = tensor_bytes(t);
        /* an untied embedding: one row per token */
        total += t->kind == RN_T_EMBED && !m->cfg.tie_embed ? b / (size_t)t->rows : b;
    }
    return total;
}

void rn_model_set_int8_activations(rn_model *m, int on) { m->x8 = on != 0; }

/* ---------------------------------------------------------------- init */

/* Norms start as the identity (weights 1, biases 0) in every preset; the
 * rest is the preset's own initialisation (preset.h). */
rn_status rn_model_init_random(rn_model *m, uint64_t seed) {
    rn_status st = rni_model_materialize(m);
    if (st != RN_OK) return st;
    rn_rng rng;
    rn_rng_seed(&rng, seed);
    const rni_preset_desc *pd = rni_preset(m->cfg.preset);
    for (int i = 0; i < m->n_tensors; i++) {
        const rn_tensor_info *t = &m->tensors[i];
        rn_real *p = m->params + t->offset;
        size_t n = (size_t)t->rows * t->cols;
        switch (t->kind) {
        case RN_T_EMBED_NORM_W: case RN_T_NORM1_W: case RN_T_NORM2_W: case RN_T_FINAL_W: case RN_T_HN_W:
            for (size_t j = 0; j < n; j++) p[j] = 1;
            break;
        case RN_T_EMBED_NORM_B: case RN_T_NORM1_B: case RN_T_NORM2_B: case RN_T_FINAL_B: case RN_T_HN_B:
            for (size_t j = 0; j < n; j++) p[j] = 0;
            break;
        default:
            pd->init(m, t, p, &rng);
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
