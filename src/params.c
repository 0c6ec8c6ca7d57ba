/* params.c: the parameter table: which tensors a config has, in which
 * order, at which offsets of the one parameter buffer. */
#include "params.h"

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
        if (tab) tab[n] = (rn_tensor_info){(k), (l), off, (int)(r), (int)(cc), NULL, RN_WTYPE_F32, NULL}; \
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

int rni_projection_count(const rn_config *c) { return 4 * c->layers + 1; }

void rni_projection_shape(const rn_config *c, int i, int *N, int *K) {
    int d = c->dim, Vd = c->value_dim, F = c->ffn_dim, Fw = c->ffn == RN_FFN_GLU ? 2 * F : F;
    const int shape[5][2] = {{2 * d + 2 * Vd, d}, {d, Vd}, {Fw, d}, {d, F}, {c->vocab, d}}; /* Wqkvg, Wo, Wfc1, Wfc2, head */
    int k = i == 4 * c->layers ? 4 : i % 4;
    *N = shape[k][0];
    *K = shape[k][1];
}

int rni_panel_model(const rn_config *c) {
    double bytes = 0;
    for (int i = 0; i < rni_projection_count(c); i++) {
        int N, K;
        rni_projection_shape(c, i, &N, &K);
        bytes += (double)N * K * sizeof(rn_real);
    }
    return bytes <= (double)RNI_PANEL_MAX_BYTES;
}

rn_status rni_weights_bind(const rn_config *c, const rn_tensor_info *tab, int n, rn_real *buf,
                          rn_weights *w) {
    int panel = rni_panel_model(c);
    rn_layer_w *layers = w->layer;
    memset(w, 0, sizeof *w);
    w->layer = layers;
    memset(layers, 0, sizeof *layers * (size_t)c->layers);
    for (int i = 0; i < n; i++) {
        rn_real *p = buf ? buf + tab[i].offset : tab[i].data;
        rn_layer_w *lw = tab[i].layer >= 0 ? &layers[tab[i].layer] : NULL;
        /* the tensor as held: a buffer is f32 */
        rn_wtype t = buf ? RN_WTYPE_F32 : tab[i].wtype;
        rni_wmat wm = {t == RN_WTYPE_F32 ? (const void *)p : tab[i].wdata, t,
                       t == RN_WTYPE_F32 ? sizeof(rn_real) * (size_t)tab[i].cols : rn_wtype_row_bytes(t, tab[i].cols),
                       t == RN_WTYPE_F32 && panel, NULL};
        switch (tab[i].kind) {
        case RN_T_EMBED: w->embed = p; w->Wembed = wm; break;
        case RN_T_EMBED_NORM_W: w->embed_norm_w = p; break;
        case RN_T_EMBED_NORM_B: w->embed_norm_b = p; break;
        case RN_T_NORM1_W: lw->norm1_w = p; break;
        case RN_T_NORM1_B: lw->norm1_b = p; break;
        case RN_T_WQKVG: lw->wqkvg = p; lw->Wqkvg = wm; break;
        case RN_T_WO: lw->wo = p; lw->Wo = wm; break;
        case RN_T_HN_W: lw->hn_w = p; break;
        case RN_T_HN_B: lw->hn_b = p; break;
        case RN_T_NORM2_W: lw->norm2_w = p; break;
        case RN_T_NORM2_B: lw->norm2_b = p; break;
        case RN_T_FC1: lw->fc1 = p; lw->Wfc1 = wm; break;
        case RN_T_FC1_B: lw->fc1_b = p; break;
        case RN_T_FC2: lw->fc2 = p; lw->Wfc2 = wm; break;
        case RN_T_FC2_B: lw->fc2_b = p; break;
        case RN_T_FINAL_W: w->final_w = p; break;
        case RN_T_FINAL_B: w->final_b = p; break;
        case RN_T_HEAD: w->head = p; w->Whead = wm; break;
        }
    }
    if (c->tie_embed) { w->head = w->embed; w->Whead = w->Wembed; }
    return RN_OK;
}

size_t rn_config_num_params(const rn_config *c) {
    if (rn_config_validate(c) != RN_OK) return 0;
    size_t n;
    rni_param_table(c, NULL, &n);
    return n;
}

