/* config.c: architecture presets, named sizes, validation, and the config's
 * JSON form (upstream key names: torchscale's RetNetConfig, the seed's
 * constructor arguments, fla's config.json). */
#include "preset.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


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

/* Small sizes of our own, for every preset, for tests and demos (value
 * width 2d as upstream's ratio suggests; the seed preset derives it from
 * double_v_dim). */
static const rni_named_size small_sizes[] = {
    {"tiny", 64, 128, 128, 2, 4},
    {"small", 128, 256, 256, 4, 4},
    {"demo", 192, 384, 384, 4, 4},
};

static void set_switches(rn_config *c, rn_preset p) {
    c->preset = p;
    rni_preset(p)->switches(c);
    c->tie_embed = 0; c->scale_embed = 0; c->embed_norm = 0;
}

rn_status rn_config_preset(rn_config *c, rn_preset p, const char *size) {
    if ((unsigned)p >= RN_PRESET_COUNT) return rni_fail(RN_ERR_ARG, "unknown preset %d", (int)p);
    set_switches(c, p);
    if (c->vocab <= 0) c->vocab = 256;
    if (!size) return RN_OK;
    const rni_preset_desc *pd = rni_preset(p);
    const rni_named_size *found = NULL;
    for (size_t i = 0; i < sizeof small_sizes / sizeof *small_sizes; i++)
        if (strcmp(size, small_sizes[i].name) == 0) found = &small_sizes[i];
    for (int i = 0; i < pd->n_sizes; i++)
        if (strcmp(size, pd->sizes[i].name) == 0) found = &pd->sizes[i];
    if (!found) {
        char list[256] = "tiny, small, demo";
        for (int i = 0; i < pd->n_sizes; i++) snprintf(list + strlen(list), sizeof list - strlen(list), ", %s", pd->sizes[i].name);
        return rni_fail(RN_ERR_ARG, "unknown size '%s' for preset %s (%s)", size, pd->name, list);
    }
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
    const rni_preset_desc *pd = rni_preset(p);
    for (int i = 0; i < pd->n_fixed; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, pd->fixed_keys[i].key);
        if (!v) continue;
        char *js = cJSON_PrintUnformatted(v);
        int ok = js && one_of(js, pd->fixed_keys[i].values);
        free(js);
        if (!ok) return pd->fixed_keys[i].key;
    }
    return pd->config_unsupported ? pd->config_unsupported(o) : NULL;
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
        if (q != forced && cJSON_GetObjectItemCaseSensitive(o, rni_preset((rn_preset)q)->signature_key) &&
            !cJSON_GetObjectItemCaseSensitive(o, rni_preset((rn_preset)forced)->signature_key)) {
            st = rni_fail(RN_ERR_FORMAT, "config: %s keys ('%s'), but the tensors are the %s preset's (mismatched preset)",
                         rn_preset_name((rn_preset)q), rni_preset((rn_preset)q)->signature_key, rn_preset_name((rn_preset)forced));
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
    bad = rni_preset(p)->config_read(o, c);
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
    const rni_preset_desc *pd = rni_preset(c->preset);
    if (pd) pd->config_write(c, o);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}
