/* torchscale.c: the torchscale preset: Microsoft's official RetNetDecoder (and its Hugging Face port):
 * rotation over pairs, decays 1 - 2^(-5-h), rows normalised by their decay
 * sums, RMS norms, GLU FFN with GELU. */
#include "../preset.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static void switches(rn_config *c) {
    c->norm_eps = c->head_eps = 1e-6;
    c->rotation = RN_ROT_TORCHSCALE; c->decay = RN_DECAY_POW2; c->decay_norm = 1;
    c->qk_scale = RN_QK_SCALE_K; c->head_norm = RN_HEADNORM_RMS; c->block_norm = RN_NORM_RMS;
    c->final_norm = 1; c->ffn = RN_FFN_GLU; c->act = RN_ACT_GELU;
}

/* torchscale's named sizes (embed / value / ffn / layers / heads). */
static const rni_named_size sizes[] = {
    {"base", 512, 864, 864, 6, 2},        {"medium", 1024, 1728, 1728, 16, 4},
    {"xl", 2048, 3456, 3456, 24, 8},      {"3b", 2560, 4280, 4280, 32, 10},
    {"7b", 4096, 6912, 6912, 32, 16},     {"13b", 5120, 8560, 8560, 40, 20},
    {"65b", 8192, 13824, 13824, 64, 32},
};

static const rni_fixed_key fixed_keys[] = {
    {"decoder_normalize_before", "true"}, {"deepnorm", "false"}, {"multiway", "false"},
    {"no_output_layer", "false"},         {"use_lm_decay", "false"}, {"moe_freq", "0"},
    {"use_glu", "true"},  /* false: a plain FFN, another model */
};

/* RetNetConfig's keys; its defaults where a key is absent. */
static const char *config_read(const cJSON *o, rn_config *c) {
    const char *bad = NULL;
    c->dim = 768; c->value_dim = 1280; c->heads = 3; c->ffn_dim = 1280; c->layers = 12; c->vocab = -1;
    int noscale = 1;
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(o, "activation_fn");
    if (!rni_json_int(o, "decoder_embed_dim", &c->dim, 0)) bad = "decoder_embed_dim";
    else if (!rni_json_int(o, "decoder_value_embed_dim", &c->value_dim, 0)) bad = "decoder_value_embed_dim";
    else if (!rni_json_int(o, "decoder_retention_heads", &c->heads, 0)) bad = "decoder_retention_heads";
    else if (!rni_json_int(o, "decoder_ffn_embed_dim", &c->ffn_dim, 0)) bad = "decoder_ffn_embed_dim";
    else if (!rni_json_int(o, "decoder_layers", &c->layers, 0)) bad = "decoder_layers";
    else if (!rni_json_int(o, "vocab_size", &c->vocab, 1)) bad = "vocab_size";
    else if (!rni_json_double(o, "layernorm_eps", &c->norm_eps)) bad = "layernorm_eps";
    else if (!rni_json_bool(o, "no_scale_embedding", &noscale)) bad = "no_scale_embedding";
    else if (!rni_json_bool(o, "share_decoder_input_output_embed", &c->tie_embed)) bad = "share_decoder_input_output_embed";
    else if (!rni_json_bool(o, "layernorm_embedding", &c->embed_norm)) bad = "layernorm_embedding";
    else if (act && !(cJSON_IsString(act) && (strcmp(act->valuestring, "gelu") == 0 ||
                                             strcmp(act->valuestring, "swish") == 0 ||
                                             strcmp(act->valuestring, "silu") == 0)))
        bad = "activation_fn (gelu or swish)";
    if (!bad) {
        c->head_eps = c->norm_eps;
        c->scale_embed = !noscale;
        if (act && strcmp(act->valuestring, "gelu") != 0) c->act = RN_ACT_SWISH;
    }
    return bad;
}

static void config_write(const rn_config *c, cJSON *o) {
    cJSON_AddNumberToObject(o, "decoder_embed_dim", c->dim);
    cJSON_AddNumberToObject(o, "decoder_value_embed_dim", c->value_dim);
    cJSON_AddNumberToObject(o, "decoder_retention_heads", c->heads);
    cJSON_AddNumberToObject(o, "decoder_ffn_embed_dim", c->ffn_dim);
    cJSON_AddNumberToObject(o, "decoder_layers", c->layers);
    cJSON_AddNumberToObject(o, "vocab_size", c->vocab);
    rni_json_add_number(o, "layernorm_eps", c->norm_eps);
    cJSON_AddStringToObject(o, "activation_fn", c->act == RN_ACT_GELU ? "gelu" : "swish");
    cJSON_AddBoolToObject(o, "no_scale_embedding", !c->scale_embed);
    cJSON_AddBoolToObject(o, "share_decoder_input_output_embed", c->tie_embed);
    cJSON_AddBoolToObject(o, "layernorm_embedding", c->embed_norm);
}

/* RetNetDecoder's state dict (fairseq names), or its Hugging Face port's. */
static void tensors(rni_file_list *l, const rn_model *m, const rn_names *nm) {
    const rn_config *c = &m->cfg;
    int d = c->dim, Vd = c->value_dim, F = c->ffn_dim, H = c->heads, K = m->K;
    const char *prefix = nm->hf_prefix ? "model." : "";
    const char *head = nm->hf_prefix ? "lm_head.weight" : "output_projection.weight";
    l->prefix = prefix;
    rni_add_block(l, m, RN_T_EMBED, -1, 0, -1, 0, "embed_tokens.weight");
    rni_add_block(l, m, RN_T_EMBED_NORM_W, -1, 0, -1, 0, "layernorm_embedding.weight");
    for (int i = 0; i < c->layers; i++) {
        rni_add_block(l, m, RN_T_WQKVG, i, 0, d, 0, "layers.%d.retention.q_proj.weight", i);
        rni_add_block(l, m, RN_T_WQKVG, i, d, d, 0, "layers.%d.retention.k_proj.weight", i);
        rni_add_block(l, m, RN_T_WQKVG, i, 2 * d, Vd, 0, "layers.%d.retention.v_proj.weight", i);
        rni_add_block(l, m, RN_T_WQKVG, i, 2 * d + Vd, Vd, 0, "layers.%d.retention.g_proj.weight", i);
        rni_add_block(l, m, RN_T_WO, i, 0, -1, 0, "layers.%d.retention.out_proj.weight", i);
        rni_add_block(l, m, RN_T_NORM1_W, i, 0, -1, 0, "layers.%d.retention_layer_norm.weight", i);
        rni_add_block(l, m, RN_T_NORM2_W, i, 0, -1, 0, "layers.%d.final_layer_norm.weight", i);
        rni_add_block(l, m, RN_T_FC1, i, 0, F, 0, "layers.%d.ffn.fc1.weight", i);
        rni_add_block(l, m, RN_T_FC1, i, F, F, 0, "layers.%d.ffn.gate.weight", i);
        rni_add_block(l, m, RN_T_FC2, i, 0, -1, 0, "layers.%d.ffn.fc2.weight", i);
    }
    rni_add_block(l, m, RN_T_FINAL_W, -1, 0, -1, 0, "layer_norm.weight");
    l->prefix = "";  /* the head has no prefix in the Hugging Face port */
    rni_add_block(l, m, RN_T_HEAD, -1, 0, -1, 0, "%s", head);
    rni_add_tied_head(l, m, head);
    l->prefix = prefix;
    double *angle = malloc(sizeof(double) * (size_t)K), *decay = malloc(sizeof(double) * (size_t)H);
    if (angle) for (int j = 0; j < K; j++) angle[j] = m->rot_freq[j / 2];
    if (decay) for (int h = 0; h < H; h++) decay[h] = m->head[h].lambda;
    rni_add_buffer(l, "retnet_rel_pos.angle", K, angle);
    rni_add_buffer(l, "retnet_rel_pos.decay", H, decay);
}

/* torchscale's init: xavier_uniform with gain 2^-2.5 for q, k, v, g and 0.5
 * for out_proj, N(0, 1/d) embeddings, PyTorch's Linear default for the FFN. */
static void init(const rn_model *m, const rn_tensor_info *t, rn_real *p, rn_rng *rng) {
    size_t d = m->cfg.dim, Vd = m->cfg.value_dim, n = (size_t)t->rows * t->cols;
    double g = pow(2.0, -2.5);
    switch (t->kind) {
    case RN_T_EMBED: case RN_T_HEAD: rni_fill_normal(rng, p, n, 1.0 / sqrt((double)d)); break;
    case RN_T_WQKVG:
        rni_xavier(rng, p, d, d, g);
        rni_xavier(rng, p + d * d, d, d, g);
        rni_xavier(rng, p + 2 * d * d, Vd, d, g);
        rni_xavier(rng, p + 2 * d * d + Vd * d, Vd, d, g);
        break;
    case RN_T_WO: rni_xavier(rng, p, d, Vd, 0.5); break;
    case RN_T_FC1: case RN_T_FC2: rni_fill_uniform(rng, p, n, 1.0 / sqrt((double)t->cols)); break;
    default: break;  /* norms: preset.c */
    }
}

const rni_preset_desc rni_preset_torchscale = {
    RN_PRESET_TORCHSCALE, "torchscale", switches, sizes, sizeof sizes / sizeof *sizes,
    "decoder_embed_dim", fixed_keys, sizeof fixed_keys / sizeof *fixed_keys,
    config_read, config_write, NULL, tensors, init,
};
