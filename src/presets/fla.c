/* fla.c: the fla preset: flash-linear-attention's Hugging Face RetNet: NeoX half rotation,
 * q scaled, RMS norm per head shared over heads, swish gate, SwiGLU FFN. */
#include "../preset.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static void switches(rn_config *c) {
    c->norm_eps = c->head_eps = 1e-6;
    c->rotation = RN_ROT_HALF; c->decay = RN_DECAY_POW2; c->decay_norm = 0;
    c->qk_scale = RN_QK_SCALE_Q; c->head_norm = RN_HEADNORM_RMS_SHARED; c->block_norm = RN_NORM_RMS;
    c->final_norm = 1; c->ffn = RN_FFN_GLU; c->act = RN_ACT_SWISH;
}

static const rni_fixed_key fixed_keys[] = {
    {"hidden_act", "\"swish\"|\"silu\""}, {"use_short_conv", "false"}, {"use_output_gate", "true"},
    {"elementwise_affine", "true"},       {"feature_map", "null"},       {"attn", "null"},
    {"attnres_block_size", "null"},       /* block attention residuals: another model */
};

/* Grouped keys and values (fewer key/value heads) are another model. */
static const char *config_unsupported(const cJSON *o) {
    const cJSON *kv = cJSON_GetObjectItemCaseSensitive(o, "num_kv_heads"), *h = cJSON_GetObjectItemCaseSensitive(o, "num_heads");
    if (kv && !cJSON_IsNull(kv) && !(cJSON_IsNumber(kv) && cJSON_IsNumber(h) && kv->valuedouble == h->valuedouble))
        return "num_kv_heads";
    return NULL;
}

/* fla's RetNetConfig keys. */
static const char *config_read(const cJSON *o, rn_config *c) {
    const char *bad = NULL;
    /* Defaults of fla's RetNetConfig; a null hidden_ratio is its MLP's 4,
     * a null intermediate_size is derived from the ratio. */
    double ek = 1, ev = 2, ratio = 2;
    int inter = 0;
    const cJSON *hr = cJSON_GetObjectItemCaseSensitive(o, "hidden_ratio");
    const cJSON *is = cJSON_GetObjectItemCaseSensitive(o, "intermediate_size");
    if (cJSON_IsNull(hr)) ratio = 4;
    if (!rni_json_int(o, "hidden_size", &c->dim, 1)) bad = "hidden_size";
    else if (!rni_json_int(o, "num_hidden_layers", &c->layers, 1)) bad = "num_hidden_layers";
    else if (!rni_json_int(o, "num_heads", &c->heads, 1)) bad = "num_heads";
    else if (!rni_json_double(o, "expand_k", &ek)) bad = "expand_k";
    else if (!rni_json_double(o, "expand_v", &ev)) bad = "expand_v";
    else if (!cJSON_IsNull(hr) && !rni_json_double(o, "hidden_ratio", &ratio)) bad = "hidden_ratio";
    else if (!cJSON_IsNull(is) && !rni_json_int(o, "intermediate_size", &inter, 0)) bad = "intermediate_size";
    else if (!rni_json_double(o, "norm_eps", &c->norm_eps)) bad = "norm_eps";
    else if (!rni_json_int(o, "vocab_size", &c->vocab, 1)) bad = "vocab_size";
    else if (!rni_json_bool(o, "tie_word_embeddings", &c->tie_embed)) bad = "tie_word_embeddings";
    else if (ek != 1) bad = "expand_k (only 1 is supported)";
    /* bounded before the float-to-int conversions below */
    else if (!(fabs(ev * c->dim) <= RN_MAX_DIM)) bad = "expand_v";
    else if (inter <= 0 && !(fabs(ratio * c->dim) <= 4.0 * RN_MAX_DIM)) bad = "hidden_ratio";
    /* fla's kernels assert head_k_dim <= 256: such a file is not fla's model */
    else if (c->heads > 0 && c->dim / c->heads > RNI_FLA_MAX_HEAD_K) bad = "hidden_size / num_heads (fla allows a key dimension per head of at most 256)";
    if (!bad) {
        c->head_eps = c->norm_eps;
        c->value_dim = (int)(c->dim * ev);
        if (inter <= 0) {
            int h = (int)(c->dim * ratio * 2 / 3);
            inter = 256 * ((h + 255) / 256);
        }
        c->ffn_dim = inter;
    }
    return bad;
}

static void config_write(const rn_config *c, cJSON *o) {
    /* fla (and rn_config_from_json) compute value_dim as
     * int(hidden_size * expand_v): the ratio is nudged up where the
     * rounding of value_dim / dim would make that one less (and written
     * exactly). */
    double ev = (double)c->value_dim / c->dim;
    while ((int)(c->dim * ev) < c->value_dim) ev = nextafter(ev, INFINITY);
    cJSON_AddNumberToObject(o, "hidden_size", c->dim);
    cJSON_AddNumberToObject(o, "num_hidden_layers", c->layers);
    cJSON_AddNumberToObject(o, "num_heads", c->heads);
    cJSON_AddNumberToObject(o, "expand_k", 1);
    rni_json_add_number(o, "expand_v", ev);
    cJSON_AddNumberToObject(o, "intermediate_size", c->ffn_dim);
    rni_json_add_number(o, "norm_eps", c->norm_eps);
    cJSON_AddNumberToObject(o, "vocab_size", c->vocab);
    cJSON_AddBoolToObject(o, "tie_word_embeddings", c->tie_embed);
}

/* RetNetForCausalLM's state dict, and its older variants (nm). */
static void tensors(rni_file_list *l, const rn_model *m, const rn_names *nm) {
    const rn_config *c = &m->cfg;
    int d = c->dim, Vd = c->value_dim, F = c->ffn_dim;
    rni_add_block(l, m, RN_T_EMBED, -1, 0, -1, 0, "model.embeddings.weight");
    for (int i = 0; i < c->layers; i++) {
        const char *p = "model.layers";
        rni_add_block(l, m, RN_T_NORM1_W, i, 0, -1, 0, "%s.%d.attn_norm.weight", p, i);
        rni_add_block(l, m, RN_T_WQKVG, i, 0, d, 0, "%s.%d.attn.q_proj.weight", p, i);
        rni_add_block(l, m, RN_T_WQKVG, i, d, d, 0, "%s.%d.attn.k_proj.weight", p, i);
        rni_add_block(l, m, RN_T_WQKVG, i, 2 * d, Vd, 0, "%s.%d.attn.v_proj.weight", p, i);
        rni_add_block(l, m, RN_T_WQKVG, i, 2 * d + Vd, Vd, 0, "%s.%d.attn.g_proj.weight", p, i);
        rni_add_block(l, m, RN_T_WO, i, 0, -1, 0, "%s.%d.attn.o_proj.weight", p, i);
        rni_add_block(l, m, RN_T_HN_W, i, 0, -1, 0, "%s.%d.attn.%s.weight", p, i,
                        nm->g_norm_alias ? "g_norm" : "g_norm_swish_gate");
        rni_add_block(l, m, RN_T_NORM2_W, i, 0, -1, 0, "%s.%d.mlp_norm.weight", p, i);
        /* fused: [gate; up] is the internal layout of the GLU block */
        rni_add_block(l, m, RN_T_FC1, i, 0, nm->fused_mlp ? 2 * F : F, 0, "%s.%d.mlp.gate_proj.weight", p, i);
        if (!nm->fused_mlp) rni_add_block(l, m, RN_T_FC1, i, F, F, 0, "%s.%d.mlp.up_proj.weight", p, i);
        rni_add_block(l, m, RN_T_FC2, i, 0, -1, 0, "%s.%d.mlp.down_proj.weight", p, i);
    }
    rni_add_block(l, m, RN_T_FINAL_W, -1, 0, -1, 0, "model.norm.weight");
    rni_add_block(l, m, RN_T_HEAD, -1, 0, -1, 0, "lm_head.weight");
    rni_add_tied_head(l, m, "lm_head.weight");
}

/* fla's init: N(0, 0.02) for every matrix. */
static void init(const rn_model *m, const rn_tensor_info *t, rn_real *p, rn_rng *rng) {
    (void)m;
    switch (t->kind) {
    case RN_T_EMBED: case RN_T_HEAD: case RN_T_WQKVG: case RN_T_WO: case RN_T_FC1: case RN_T_FC2:
        rni_fill_normal(rng, p, (size_t)t->rows * t->cols, 0.02);
        break;
    default: break;  /* norms: preset.c */
    }
}

const rni_preset_desc rni_preset_fla = {
    RN_PRESET_FLA, "fla", switches, NULL, 0,
    "hidden_size", fixed_keys, sizeof fixed_keys / sizeof *fixed_keys,
    config_read, config_write, config_unsupported, tensors, init,
};
