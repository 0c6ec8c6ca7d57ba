/* objects.c: the model and state objects: creation, initialisation, accessors, freeing. */
#define _DEFAULT_SOURCE
#include "model.h"
#include "objects.h"
#include "acts.h"
#include "ops.h"
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

/* Frees what the tensors point into when the model has no buffer: the
 * mapped files and the block of copied tensors. */
static void release_storage(rn_model *m) {
    for (int i = 0; i < m->n_maps; i++) munmap(m->maps[i], m->map_sizes[i]);
    free(m->maps);
    free(m->map_sizes);
    m->maps = NULL; m->map_sizes = NULL; m->n_maps = 0;
    rni_free(m->own);
    m->own = NULL;
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

/* Projection i in rni_projection_shape's order. */
static rni_wmat *projection(rn_model *m, int i) {
    if (i == 4 * m->cfg.layers) return &m->w.Whead;
    rn_layer_w *lw = &m->w.layer[i / 4];
    rni_wmat *w[4] = {&lw->Wqkvg, &lw->Wo, &lw->Wfc1, &lw->Wfc2};
    return w[i % 4];
}

static void drop_panels(rn_model *m) {
    if (!m->panels) return;
    rni_free(m->panels);
    m->panels = NULL;
    for (int i = 0; i < rni_projection_count(&m->cfg); i++) projection(m, i)->pk = NULL;
}

void rni_model_pack_panels(rn_model *m) {
    const rn_config *c = &m->cfg;
    if (m->panels || !rni_panel_model(c)) return;
    size_t total = 0;
    int N, K;
    for (int i = 0; i < rni_projection_count(c); i++) {
        rni_projection_shape(c, i, &N, &K);
        if (projection(m, i)->t == RN_WTYPE_F32) total += rni_panel_size(N, K);
    }
    if (!total || !(m->panels = rni_alloc(total, sizeof(rn_real)))) return;
    rn_real *pk = m->panels;
    for (int i = 0; i < rni_projection_count(c); i++) {
        rni_wmat *w = projection(m, i);
        if (w->t != RN_WTYPE_F32) continue;
        rni_projection_shape(c, i, &N, &K);
        rni_panel_pack(w->p, w->stride / sizeof(rn_real), N, K, pk);
        w->pk = pk;
        pk += rni_panel_size(N, K);
    }
}

rn_status rni_model_materialize(rn_model *m) {
    drop_panels(m);  /* the weights may change from here on */
    if (m->params) return RN_OK;
    /* A skeleton (no tensor has values yet) gets zeros, as rn_model_create. */
    int loaded = m->n_maps || m->own;
    rn_real *p = loaded ? rni_alloc(m->n_params, sizeof(rn_real)) : rni_calloc(m->n_params, sizeof(rn_real));
    if (!p) return rni_fail(RN_ERR_NOMEM, "out of memory for the %zu parameters", m->n_params);
    if (loaded) gather(m, p);
    m->params = p;
    for (int i = 0; i < m->n_tensors; i++) { m->tensors[i].wtype = RN_WTYPE_F32; m->tensors[i].wdata = NULL; }
    bind_params(m);
    release_storage(m);
    return RN_OK;
}

rn_status rni_model_alloc_params(rn_model *m) {
    /* not zeroed: pages are touched only as the loader writes them (a
     * calloc'd buffer would be resident before the file's pages are let go) */
    rn_real *p = rni_alloc(m->n_params, sizeof(rn_real));
    if (!p) return rni_fail(RN_ERR_NOMEM, "out of memory for the %zu parameters", m->n_params);
    m->params = p;
    bind_params(m);
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
    drop_panels(m);
    free(m->tensors);
    free(m->w.layer);
    rni_free(m->params);
    release_storage(m);
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
    if (t->wtype == RN_WTYPE_BF16 || t->wtype == RN_WTYPE_F16)  /* exact: widening loses nothing */
        return rni_fail(RN_ERR_ARG, "%s: the model holds its weights as %s (%s): load it with RN_LOAD_F32 "
                        "(rn_model_load_flags) to widen them to f32", what, rn_wtype_name(t->wtype),
                        rni_tensor_kind_name(t->kind));
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
    s->B = s->cap = batch; s->L = m->cfg.layers; s->H = m->cfg.heads; s->K = m->K; s->Dv = m->Dv;
    s->U = rni_calloc((size_t)batch * rni_state_row(s), sizeof(rn_real));
    s->pos = calloc((size_t)batch, sizeof *s->pos);
    if (!s->U || !s->pos) { rn_state_free(s); return rni_fail(RN_ERR_NOMEM, "out of memory for a recurrent state"); }
    *out = s;
    return RN_OK;
}

void rn_state_free(rn_state *s) {
    if (!s) return;
    rni_free(s->U);
    free(s->pos);
    free(s);
}

void rn_state_reset(rn_state *s) {
    memset(s->U, 0, sizeof(rn_real) * (size_t)s->B * rni_state_row(s));
    memset(s->pos, 0, sizeof *s->pos * (size_t)s->B);
}

int64_t rn_state_pos(const rn_state *s) { return s->pos[0]; }
int64_t rn_state_row_pos(const rn_state *s, int row) { return row >= 0 && row < s->B ? s->pos[row] : -1; }
int rn_state_batch(const rn_state *s) { return s->B; }

static int same_shape(const rn_state *a, const rn_state *b) {
    return a->L == b->L && a->H == b->H && a->K == b->K && a->Dv == b->Dv;
}

rn_status rn_state_copy(rn_state *dst, const rn_state *src) {
    if (dst->B != src->B || !same_shape(dst, src)) return rni_fail(RN_ERR_ARG, "state shapes differ");
    memcpy(dst->U, src->U, sizeof(rn_real) * (size_t)src->B * rni_state_row(src));
    memcpy(dst->pos, src->pos, sizeof *src->pos * (size_t)src->B);
    return RN_OK;
}

rn_status rn_state_copy_row(rn_state *dst, int drow, const rn_state *src, int srow) {
    if (!same_shape(dst, src)) return rni_fail(RN_ERR_ARG, "state shapes differ");
    if (drow < 0 || drow >= dst->B || srow < 0 || srow >= src->B)
        return rni_fail(RN_ERR_ARG, "state rows %d <- %d outside batches of %d and %d", drow, srow, dst->B, src->B);
    if (dst == src && drow == srow) return RN_OK;
    size_t n = rni_state_row(src);
    memcpy(dst->U + (size_t)drow * n, src->U + (size_t)srow * n, sizeof(rn_real) * n);
    dst->pos[drow] = src->pos[srow];
    return RN_OK;
}

rn_status rn_state_reset_row(rn_state *s, int row) {
    if (row < 0 || row >= s->B) return rni_fail(RN_ERR_ARG, "state row %d outside the batch of %d", row, s->B);
    size_t n = rni_state_row(s);
    memset(s->U + (size_t)row * n, 0, sizeof(rn_real) * n);
    s->pos[row] = 0;
    return RN_OK;
}

rn_status rn_state_resize(rn_state *s, int batch) {
    if (batch < 1 || batch > (1 << 20)) return rni_fail(RN_ERR_ARG, "batch %d out of range", batch);
    size_t n = rni_state_row(s);
    if (batch > s->cap) {
        rn_real *U = rni_alloc((size_t)batch * n, sizeof(rn_real));
        int64_t *pos = realloc(s->pos, sizeof *pos * (size_t)batch);
        if (pos) s->pos = pos;
        if (!U || !pos) { rni_free(U); return rni_fail(RN_ERR_NOMEM, "out of memory for a state of %d streams", batch); }
        memcpy(U, s->U, sizeof(rn_real) * (size_t)s->B * n);
        rni_free(s->U);
        s->U = U;
        s->cap = batch;
    }
    if (batch > s->B) {
        memset(s->U + (size_t)s->B * n, 0, sizeof(rn_real) * (size_t)(batch - s->B) * n);
        memset(s->pos + s->B, 0, sizeof *s->pos * (size_t)(batch - s->B));
    }
    s->B = batch;
    return RN_OK;
}
