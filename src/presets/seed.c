/* seed.c: the seed preset: the real-valued seed repository (Jamie-Stirling/RetNet): xPos,
 * log-spaced decays, GroupNorm over heads, LayerNorm blocks, GELU MLP with
 * biases. */
#include "../preset.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static void switches(rn_config *c) {
    c->norm_eps = c->head_eps = 1e-5;
    c->rotation = RN_ROT_XPOS; c->decay = RN_DECAY_LOGSPACE; c->decay_norm = 0;
    c->qk_scale = RN_QK_NONE; c->head_norm = RN_HEADNORM_GROUP; c->block_norm = RN_NORM_LAYER;
    c->final_norm = 0; c->ffn = RN_FFN_MLP; c->act = RN_ACT_GELU;
}

/* The seed's constructor arguments (it has no config file of its own). */
static const char *config_read(const cJSON *o, rn_config *c) {
    const char *bad = NULL;
    int dv = 0;
    if (!rni_json_int(o, "layers", &c->layers, 1)) bad = "layers";
    else if (!rni_json_int(o, "hidden_dim", &c->dim, 1)) bad = "hidden_dim";
    else if (!rni_json_int(o, "ffn_size", &c->ffn_dim, 1)) bad = "ffn_size";
    else if (!rni_json_int(o, "heads", &c->heads, 1)) bad = "heads";
    else if (!rni_json_bool(o, "double_v_dim", &dv)) bad = "double_v_dim";
    else if (!rni_json_int(o, "vocab_size", &c->vocab, 1)) bad = "vocab_size";
    if (!bad) c->value_dim = dv ? 2 * c->dim : c->dim;
    return bad;
}

static void config_write(const rn_config *c, cJSON *o) {
    cJSON_AddNumberToObject(o, "layers", c->layers);
    cJSON_AddNumberToObject(o, "hidden_dim", c->dim);
    cJSON_AddNumberToObject(o, "ffn_size", c->ffn_dim);
    cJSON_AddNumberToObject(o, "heads", c->heads);
    cJSON_AddBoolToObject(o, "double_v_dim", c->value_dim == 2 * c->dim);
    cJSON_AddNumberToObject(o, "vocab_size", c->vocab);
}

/* RetNetCLM's state dict: per-head W_Q, W_K, W_V stored [in, out]. */
static void tensors(rni_file_list *l, const rn_model *m, const rn_names *nm) {
    (void)nm;
    const rn_config *c = &m->cfg;
    int d = c->dim, Vd = c->value_dim, H = c->heads, K = m->K, Dv = m->Dv;
    rni_add_block(l, m, RN_T_EMBED, -1, 0, -1, 0, "embed.weight");
    rni_add_block(l, m, RN_T_HEAD, -1, 0, -1, 1, "proj");
    for (int i = 0; i < c->layers; i++) {
        const char *p = "retnet.retentions";
        for (int h = 0; h < H; h++) {
            rni_add_block(l, m, RN_T_WQKVG, i, h * K, K, 1, "%s.%d.retentions.%d.W_Q", p, i, h);
            rni_add_block(l, m, RN_T_WQKVG, i, d + h * K, K, 1, "%s.%d.retentions.%d.W_K", p, i, h);
            rni_add_block(l, m, RN_T_WQKVG, i, 2 * d + h * Dv, Dv, 1, "%s.%d.retentions.%d.W_V", p, i, h);
        }
        rni_add_block(l, m, RN_T_WQKVG, i, 2 * d + Vd, Vd, 1, "%s.%d.W_G", p, i);
        rni_add_block(l, m, RN_T_WO, i, 0, -1, 1, "%s.%d.W_O", p, i);
        rni_add_block(l, m, RN_T_HN_W, i, 0, -1, 0, "%s.%d.group_norm.weight", p, i);
        rni_add_block(l, m, RN_T_HN_B, i, 0, -1, 0, "%s.%d.group_norm.bias", p, i);
        rni_add_block(l, m, RN_T_FC1, i, 0, -1, 0, "retnet.ffns.%d.0.weight", i);
        rni_add_block(l, m, RN_T_FC1_B, i, 0, -1, 0, "retnet.ffns.%d.0.bias", i);
        rni_add_block(l, m, RN_T_FC2, i, 0, -1, 0, "retnet.ffns.%d.2.weight", i);
        rni_add_block(l, m, RN_T_FC2_B, i, 0, -1, 0, "retnet.ffns.%d.2.bias", i);
        rni_add_block(l, m, RN_T_NORM1_W, i, 0, -1, 0, "retnet.layer_norms_1.%d.weight", i);
        rni_add_block(l, m, RN_T_NORM1_B, i, 0, -1, 0, "retnet.layer_norms_1.%d.bias", i);
        rni_add_block(l, m, RN_T_NORM2_W, i, 0, -1, 0, "retnet.layer_norms_2.%d.weight", i);
        rni_add_block(l, m, RN_T_NORM2_B, i, 0, -1, 0, "retnet.layer_norms_2.%d.bias", i);
        for (int h = 0; h < H; h++) {
            char name[112];
            double *z = malloc(sizeof(double) * (size_t)(K / 2));
            if (z) for (int j = 0; j < K / 2; j++) z[j] = (2.0 * j + 0.4 * K) / (1.4 * K);
            snprintf(name, sizeof name, "%s.%d.retentions.%d.xpos.scale", p, i, h);
            rni_add_buffer(l, name, K / 2, z);
        }
    }
}

/* The seed's init: torch.randn(d, .) / d projections, N(0, 1) embeddings,
 * N(0, 1/d) head, PyTorch's Linear default (with biases) for the FFN. */
static void init(const rn_model *m, const rn_tensor_info *t, rn_real *p, rn_rng *rng) {
    size_t d = m->cfg.dim, Vd = m->cfg.value_dim, n = (size_t)t->rows * t->cols;
    switch (t->kind) {
    case RN_T_EMBED: rni_fill_normal(rng, p, n, 1.0); break;
    case RN_T_HEAD: rni_fill_normal(rng, p, n, 1.0 / d); break;
    case RN_T_WQKVG: rni_fill_normal(rng, p, n, 1.0 / d); break;
    case RN_T_WO: rni_fill_normal(rng, p, n, 1.0 / Vd); break;
    case RN_T_FC1: case RN_T_FC2: rni_fill_uniform(rng, p, n, 1.0 / sqrt((double)t->cols)); break;
    case RN_T_FC1_B: rni_fill_uniform(rng, p, n, 1.0 / sqrt((double)d)); break;
    case RN_T_FC2_B: rni_fill_uniform(rng, p, n, 1.0 / sqrt((double)m->cfg.ffn_dim)); break;
    default: break;  /* norms: preset.c */
    }
}

const rni_preset_desc rni_preset_seed = {
    RN_PRESET_SEED, "seed", switches, NULL, 0,
    "hidden_dim", NULL, 0,
    config_read, config_write, NULL, tensors, init,
};
