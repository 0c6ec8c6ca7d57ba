/* config.c: architecture presets, named sizes, validation, and the config's
 * JSON form (upstream key names: torchscale's RetNetConfig, the seed's
 * constructor arguments, fla's config.json). */
#include "internal.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Limits that keep every size computation far from overflow and refuse
 * absurd files before anything is allocated. */
#define RN_MAX_DIM    (1 << 16)
#define RN_MAX_LAYERS 1024
#define RN_MAX_VOCAB  (1 << 22)

static const char *const preset_names[] = {"torchscale", "seed", "fla"};
static const char *const mode_names[] = {"parallel", "chunkwise", "recurrent"};
_Static_assert(sizeof preset_names / sizeof *preset_names == RN_PRESET_COUNT, "one name per preset");
_Static_assert(sizeof mode_names / sizeof *mode_names == RN_MODE_COUNT, "one name per mode");

const char *rn_preset_name(rn_preset p) { return rni_name_of(preset_names, RN_PRESET_COUNT, (int)p); }
const char *rn_mode_name(rn_mode m) { return rni_name_of(mode_names, RN_MODE_COUNT, (int)m); }

rn_status rn_preset_from_name(const char *name, rn_preset *out) {
    int i = 0;
    rn_status st = rni_name_lookup(preset_names, RN_PRESET_COUNT, "preset", name, &i);
    if (st == RN_OK) *out = (rn_preset)i;
    return st;
}

rn_status rn_mode_from_name(const char *name, rn_mode *out) {
    int i = 0;
    rn_status st = rni_name_lookup(mode_names, RN_MODE_COUNT, "mode", name, &i);
    if (st == RN_OK) *out = (rn_mode)i;
    return st;
}

typedef struct { const char *name; int dim, value_dim, ffn, layers, heads; } named_size;

/* torchscale's named sizes (embed / value / ffn / layers / heads). */
static const named_size torchscale_sizes[] = {
    {"base", 512, 864, 864, 6, 2},        {"medium", 1024, 1728, 1728, 16, 4},
    {"xl", 2048, 3456, 3456, 24, 8},      {"3b", 2560, 4280, 4280, 32, 10},
    {"7b", 4096, 6912, 6912, 32, 16},     {"13b", 5120, 8560, 8560, 40, 20},
    {"65b", 8192, 13824, 13824, 64, 32},
};
/* Small sizes of our own, for tests and demos (value width 2d as upstream's
 * ratio suggests; the seed preset derives it from double_v_dim). */
static const named_size small_sizes[] = {
    {"tiny", 64, 128, 128, 2, 4},
    {"small", 128, 256, 256, 4, 4},
    {"demo", 192, 384, 384, 4, 4},
};

static void set_switches(rn_config *c, rn_preset p) {
    c->preset = p;
    switch (p) {
    case RN_PRESET_TORCHSCALE:
        c->norm_eps = c->head_eps = 1e-6;
        c->rotation = RN_ROT_TORCHSCALE; c->decay = RN_DECAY_POW2; c->decay_norm = 1;
        c->qk_scale = RN_QK_SCALE_K; c->head_norm = RN_HEADNORM_RMS; c->block_norm = RN_NORM_RMS;
        c->final_norm = 1; c->ffn = RN_FFN_GLU; c->act = RN_ACT_GELU;
        break;
    case RN_PRESET_SEED:
        c->norm_eps = c->head_eps = 1e-5;
        c->rotation = RN_ROT_XPOS; c->decay = RN_DECAY_LOGSPACE; c->decay_norm = 0;
        c->qk_scale = RN_QK_NONE; c->head_norm = RN_HEADNORM_GROUP; c->block_norm = RN_NORM_LAYER;
        c->final_norm = 0; c->ffn = RN_FFN_MLP; c->act = RN_ACT_GELU;
        break;
    case RN_PRESET_FLA:
        c->norm_eps = c->head_eps = 1e-6;
        c->rotation = RN_ROT_HALF; c->decay = RN_DECAY_POW2; c->decay_norm = 0;
        c->qk_scale = RN_QK_SCALE_Q; c->head_norm = RN_HEADNORM_RMS_SHARED; c->block_norm = RN_NORM_RMS;
        c->final_norm = 1; c->ffn = RN_FFN_GLU; c->act = RN_ACT_SWISH;
        break;
    default: break;
    }
    c->tie_embed = 0; c->scale_embed = 0; c->embed_norm = 0;
}

rn_status rn_config_preset(rn_config *c, rn_preset p, const char *size) {
    if ((unsigned)p >= RN_PRESET_COUNT) return rni_fail(RN_ERR_ARG, "unknown preset %d", (int)p);
    set_switches(c, p);
    if (c->vocab <= 0) c->vocab = 256;
    if (!size) return RN_OK;
    const named_size *found = NULL;
    for (size_t i = 0; i < sizeof small_sizes / sizeof *small_sizes; i++)
        if (strcmp(size, small_sizes[i].name) == 0) found = &small_sizes[i];
    if (p == RN_PRESET_TORCHSCALE)
        for (size_t i = 0; i < sizeof torchscale_sizes / sizeof *torchscale_sizes; i++)
            if (strcmp(size, torchscale_sizes[i].name) == 0) found = &torchscale_sizes[i];
    if (!found)
        return rni_fail(RN_ERR_ARG, "unknown size '%s' for preset %s (tiny, small, demo%s)", size,
                       rn_preset_name(p), p == RN_PRESET_TORCHSCALE ? ", base, medium, xl, 3b, 7b, 13b, 65b" : "");
    c->dim = found->dim; c->value_dim = found->value_dim; c->ffn_dim = found->ffn;
    c->layers = found->layers; c->heads = found->heads;
    return RN_OK;
}

rn_status rn_config_validate(const rn_config *c) {
    if ((unsigned)c->preset >= RN_PRESET_COUNT) return rni_fail(RN_ERR_ARG, "unknown preset %d", (int)c->preset);
#define CHECK_RANGE(v, lo, hi, what) \
    if ((v) < (lo) || (v) > (hi)) return rni_fail(RN_ERR_ARG, "%s = %d out of range [%d, %d]", what, (int)(v), (int)(lo), (int)(hi))
    CHECK_RANGE(c->dim, 2, RN_MAX_DIM, "dim");
    CHECK_RANGE(c->value_dim, 1, RN_MAX_DIM, "value dim");
    CHECK_RANGE(c->heads, 1, c->dim / 2, "heads");
    CHECK_RANGE(c->ffn_dim, 1, 4 * RN_MAX_DIM, "ffn dim");
    CHECK_RANGE(c->layers, 1, RN_MAX_LAYERS, "layers");
    CHECK_RANGE(c->vocab, 1, RN_MAX_VOCAB, "vocab");
#undef CHECK_RANGE
    if (c->dim % c->heads) return rni_fail(RN_ERR_ARG, "dim %d is not divisible by heads %d", c->dim, c->heads);
    if ((c->dim / c->heads) % 2) return rni_fail(RN_ERR_ARG, "head dim %d (dim/heads) must be even for the rotation", c->dim / c->heads);
    if (c->value_dim % c->heads) return rni_fail(RN_ERR_ARG, "value dim %d is not divisible by heads %d", c->value_dim, c->heads);
    if (!(c->norm_eps >= 0 && c->norm_eps < 1) || !(c->head_eps >= 0 && c->head_eps < 1))
        return rni_fail(RN_ERR_ARG, "norm eps out of range [0, 1)");
    if (c->preset == RN_PRESET_SEED && c->value_dim != c->dim && c->value_dim != 2 * c->dim)
        return rni_fail(RN_ERR_ARG, "seed preset: value dim must be dim or 2*dim (double_v_dim)");
    if ((unsigned)c->rotation >= RN_ROT_COUNT || (unsigned)c->decay >= RN_DECAY_COUNT ||
        (unsigned)c->qk_scale >= RN_QK_COUNT || (unsigned)c->head_norm >= RN_HEADNORM_COUNT ||
        (unsigned)c->block_norm >= RN_NORM_COUNT || (unsigned)c->ffn >= RN_FFN_COUNT || (unsigned)c->act >= RN_ACT_COUNT)
        return rni_fail(RN_ERR_ARG, "invalid architecture switch");
    return RN_OK;
}

/* ------------------------------------------------------------------ JSON */

static int json_int(const cJSON *o, const char *key, int *out, int required) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v) return !required;
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || fabs(v->valuedouble) > 1e9) return 0;
    *out = (int)v->valuedouble;
    return 1;
}

static int json_bool(const cJSON *o, const char *key, int *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v) return 1;
    if (cJSON_IsBool(v)) { *out = cJSON_IsTrue(v); return 1; }
    if (cJSON_IsNumber(v)) { *out = v->valuedouble != 0; return 1; }
    return 0;
}

static int json_double(const cJSON *o, const char *key, double *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v) return 1;
    if (!cJSON_IsNumber(v)) return 0;
    *out = v->valuedouble;
    return 1;
}

/* A key only one preset's configs have: tells whose a config.json is. */
static const char *const signature_key[] = {"decoder_embed_dim", "hidden_dim", "hidden_size"};

/* Upstream config keys that would take the model away from its preset's
 * math: accepted when absent or with one of the values listed (JSON, '|'
 * separated). */
static const struct { rn_preset preset; const char *key, *values; } fixed_keys[] = {
    {RN_PRESET_TORCHSCALE, "decoder_normalize_before", "true"},
    {RN_PRESET_TORCHSCALE, "deepnorm", "false"},
    {RN_PRESET_TORCHSCALE, "multiway", "false"},
    {RN_PRESET_TORCHSCALE, "no_output_layer", "false"},
    {RN_PRESET_TORCHSCALE, "use_lm_decay", "false"},
    {RN_PRESET_TORCHSCALE, "moe_freq", "0"},
    {RN_PRESET_FLA, "hidden_act", "\"swish\"|\"silu\""},
    {RN_PRESET_FLA, "use_short_conv", "false"},
    {RN_PRESET_FLA, "use_output_gate", "true"},
    {RN_PRESET_FLA, "elementwise_affine", "true"},
    {RN_PRESET_FLA, "feature_map", "null"},
    {RN_PRESET_FLA, "attn", "null"},
};

/* Is js one of the '|'-separated alternatives? */
static int one_of(const char *js, const char *alts) {
    size_t n = strlen(js);
    for (const char *a = alts;; a++) {
        if (strncmp(a, js, n) == 0 && (a[n] == '|' || a[n] == 0)) return 1;
        if (!(a = strchr(a, '|'))) return 0;
    }
}

/* The first key of o that is not supported for preset p, or NULL. */
static const char *unsupported_key(const cJSON *o, rn_preset p) {
    for (size_t i = 0; i < sizeof fixed_keys / sizeof *fixed_keys; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, fixed_keys[i].key);
        if (fixed_keys[i].preset != p || !v) continue;
        char *js = cJSON_PrintUnformatted(v);
        int ok = js && one_of(js, fixed_keys[i].values);
        free(js);
        if (!ok) return fixed_keys[i].key;
    }
    const cJSON *kv = cJSON_GetObjectItemCaseSensitive(o, "num_kv_heads"), *h = cJSON_GetObjectItemCaseSensitive(o, "num_heads");
    if (p == RN_PRESET_FLA && kv && !cJSON_IsNull(kv) && !(cJSON_IsNumber(kv) && cJSON_IsNumber(h) && kv->valuedouble == h->valuedouble))
        return "num_kv_heads";
    return NULL;
}

rn_status rn_config_from_json(const char *json, rn_config *c) {
    return rni_config_from_json_as(json, -1, c);
}

rn_status rni_config_from_json_as(const char *json, int forced, rn_config *c) {
    cJSON *o = cJSON_Parse(json);
    if (!o || !cJSON_IsObject(o)) { cJSON_Delete(o); return rni_fail(RN_ERR_FORMAT, "config is not a JSON object"); }
    rn_status st = RN_OK;
    memset(c, 0, sizeof *c);
    const cJSON *pv = cJSON_GetObjectItemCaseSensitive(o, "preset");
    rn_preset p = RN_PRESET_TORCHSCALE;
    if (pv && (!cJSON_IsString(pv) || rn_preset_from_name(pv->valuestring, &p) != RN_OK)) {
        st = rni_fail(RN_ERR_FORMAT, "config: unknown preset %s", cJSON_IsString(pv) ? pv->valuestring : "(not a string)");
        goto done;
    }
    if (forced >= 0 && pv && (int)p != forced) {
        st = rni_fail(RN_ERR_FORMAT, "config: preset %s, but the tensors are the %s preset's (mismatched preset)",
                     rn_preset_name(p), rn_preset_name((rn_preset)forced));
        goto done;
    }
    for (int q = 0; forced >= 0 && q < RN_PRESET_COUNT; q++)
        if (q != forced && cJSON_GetObjectItemCaseSensitive(o, signature_key[q]) &&
            !cJSON_GetObjectItemCaseSensitive(o, signature_key[forced])) {
            st = rni_fail(RN_ERR_FORMAT, "config: %s keys ('%s'), but the tensors are the %s preset's (mismatched preset)",
                         rn_preset_name((rn_preset)q), signature_key[q], rn_preset_name((rn_preset)forced));
            goto done;
        }
    if (forced >= 0) p = (rn_preset)forced;
    set_switches(c, p);
    const char *bad = unsupported_key(o, p);
    if (bad) {
        st = rni_fail(RN_ERR_FORMAT, "config: '%s' has a value this library does not support (a model other than the %s preset's)",
                     bad, rn_preset_name(p));
        goto done;
    }
    if (p == RN_PRESET_TORCHSCALE) {
        c->dim = 768; c->value_dim = 1280; c->heads = 3; c->ffn_dim = 1280; c->layers = 12; c->vocab = -1;
        int noscale = 1;
        const cJSON *act = cJSON_GetObjectItemCaseSensitive(o, "activation_fn");
        if (!json_int(o, "decoder_embed_dim", &c->dim, 0)) bad = "decoder_embed_dim";
        else if (!json_int(o, "decoder_value_embed_dim", &c->value_dim, 0)) bad = "decoder_value_embed_dim";
        else if (!json_int(o, "decoder_retention_heads", &c->heads, 0)) bad = "decoder_retention_heads";
        else if (!json_int(o, "decoder_ffn_embed_dim", &c->ffn_dim, 0)) bad = "decoder_ffn_embed_dim";
        else if (!json_int(o, "decoder_layers", &c->layers, 0)) bad = "decoder_layers";
        else if (!json_int(o, "vocab_size", &c->vocab, 1)) bad = "vocab_size";
        else if (!json_double(o, "layernorm_eps", &c->norm_eps)) bad = "layernorm_eps";
        else if (!json_bool(o, "no_scale_embedding", &noscale)) bad = "no_scale_embedding";
        else if (!json_bool(o, "share_decoder_input_output_embed", &c->tie_embed)) bad = "share_decoder_input_output_embed";
        else if (!json_bool(o, "layernorm_embedding", &c->embed_norm)) bad = "layernorm_embedding";
        else if (act && !(cJSON_IsString(act) && (strcmp(act->valuestring, "gelu") == 0 ||
                                                 strcmp(act->valuestring, "swish") == 0 ||
                                                 strcmp(act->valuestring, "silu") == 0)))
            bad = "activation_fn (gelu or swish)";
        if (!bad) {
            c->head_eps = c->norm_eps;
            c->scale_embed = !noscale;
            if (act && strcmp(act->valuestring, "gelu") != 0) c->act = RN_ACT_SWISH;
        }
    } else if (p == RN_PRESET_SEED) {
        int dv = 0;
        if (!json_int(o, "layers", &c->layers, 1)) bad = "layers";
        else if (!json_int(o, "hidden_dim", &c->dim, 1)) bad = "hidden_dim";
        else if (!json_int(o, "ffn_size", &c->ffn_dim, 1)) bad = "ffn_size";
        else if (!json_int(o, "heads", &c->heads, 1)) bad = "heads";
        else if (!json_bool(o, "double_v_dim", &dv)) bad = "double_v_dim";
        else if (!json_int(o, "vocab_size", &c->vocab, 1)) bad = "vocab_size";
        if (!bad) c->value_dim = dv ? 2 * c->dim : c->dim;
    } else {
        /* Defaults of fla's RetNetConfig; a null hidden_ratio is its MLP's 4,
         * a null intermediate_size is derived from the ratio. */
        double ek = 1, ev = 2, ratio = 2;
        int inter = 0;
        const cJSON *hr = cJSON_GetObjectItemCaseSensitive(o, "hidden_ratio");
        const cJSON *is = cJSON_GetObjectItemCaseSensitive(o, "intermediate_size");
        if (cJSON_IsNull(hr)) ratio = 4;
        if (!json_int(o, "hidden_size", &c->dim, 1)) bad = "hidden_size";
        else if (!json_int(o, "num_hidden_layers", &c->layers, 1)) bad = "num_hidden_layers";
        else if (!json_int(o, "num_heads", &c->heads, 1)) bad = "num_heads";
        else if (!json_double(o, "expand_k", &ek)) bad = "expand_k";
        else if (!json_double(o, "expand_v", &ev)) bad = "expand_v";
        else if (!cJSON_IsNull(hr) && !json_double(o, "hidden_ratio", &ratio)) bad = "hidden_ratio";
        else if (!cJSON_IsNull(is) && !json_int(o, "intermediate_size", &inter, 0)) bad = "intermediate_size";
        else if (!json_double(o, "norm_eps", &c->norm_eps)) bad = "norm_eps";
        else if (!json_int(o, "vocab_size", &c->vocab, 1)) bad = "vocab_size";
        else if (!json_bool(o, "tie_word_embeddings", &c->tie_embed)) bad = "tie_word_embeddings";
        else if (ek != 1) bad = "expand_k (only 1 is supported)";
        /* bounded before the float-to-int conversions below */
        else if (!(fabs(ev * c->dim) <= RN_MAX_DIM)) bad = "expand_v";
        else if (inter <= 0 && !(fabs(ratio * c->dim) <= 4.0 * RN_MAX_DIM)) bad = "hidden_ratio";
        if (!bad) {
            c->head_eps = c->norm_eps;
            c->value_dim = (int)(c->dim * ev);
            if (inter <= 0) {
                int h = (int)(c->dim * ratio * 2 / 3);
                inter = 256 * ((h + 255) / 256);
            }
            c->ffn_dim = inter;
        }
    }
    if (bad) { st = rni_fail(RN_ERR_FORMAT, "config: missing or invalid '%s'", bad); goto done; }
    st = rn_config_validate(c);
    if (st != RN_OK) {
        char msg[512];  /* rni_fail formats into the buffer rn_last_error returns */
        snprintf(msg, sizeof msg, "%s", rn_last_error());
        st = rni_fail(RN_ERR_FORMAT, "config: %s", msg);
    }
done:
    cJSON_Delete(o);
    return st;
}

cJSON *rni_json_add_number(cJSON *o, const char *key, double v) {
    char buf[32];
    if (!isfinite(v)) return cJSON_AddNullToObject(o, key);
    snprintf(buf, sizeof buf, "%.15g", v);
    if (strtod(buf, NULL) != v) snprintf(buf, sizeof buf, "%.17g", v);
    return cJSON_AddRawToObject(o, key, buf);
}

char *rn_config_to_json(const rn_config *c) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddStringToObject(o, "preset", rn_preset_name(c->preset));
    switch (c->preset) {
    case RN_PRESET_TORCHSCALE:
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
        break;
    case RN_PRESET_SEED:
        cJSON_AddNumberToObject(o, "layers", c->layers);
        cJSON_AddNumberToObject(o, "hidden_dim", c->dim);
        cJSON_AddNumberToObject(o, "ffn_size", c->ffn_dim);
        cJSON_AddNumberToObject(o, "heads", c->heads);
        cJSON_AddBoolToObject(o, "double_v_dim", c->value_dim == 2 * c->dim);
        cJSON_AddNumberToObject(o, "vocab_size", c->vocab);
        break;
    case RN_PRESET_FLA: {
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
        break;
    }
    default: break;
    }
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}
