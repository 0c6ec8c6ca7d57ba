/* preset.c: the table of presets, and the helpers their descriptors share
 * (JSON readers, initialisers). */
#include "preset.h"

#include <cjson/cJSON.h>
#include <math.h>

extern const rni_preset_desc rni_preset_torchscale, rni_preset_seed, rni_preset_fla;

/* Indexed by rn_preset. */
static const rni_preset_desc *const presets[] = {&rni_preset_torchscale, &rni_preset_seed, &rni_preset_fla};
_Static_assert(sizeof presets / sizeof *presets == RN_PRESET_COUNT, "one descriptor per preset");

const rni_preset_desc *rni_preset(rn_preset p) {
    return (unsigned)p < RN_PRESET_COUNT ? presets[p] : NULL;
}

/* ------------------------------------------------------------------ JSON */

int rni_json_int(const cJSON *o, const char *key, int *out, int required) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v) return !required;
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || fabs(v->valuedouble) > 1e9) return 0;
    *out = (int)v->valuedouble;
    return 1;
}

int rni_json_bool(const cJSON *o, const char *key, int *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v) return 1;
    if (cJSON_IsBool(v)) { *out = cJSON_IsTrue(v); return 1; }
    if (cJSON_IsNumber(v)) { *out = v->valuedouble != 0; return 1; }
    return 0;
}

int rni_json_double(const cJSON *o, const char *key, double *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v) return 1;
    if (!cJSON_IsNumber(v)) return 0;
    *out = v->valuedouble;
    return 1;
}

/* ---------------------------------------------------------------- init */

void rni_fill_uniform(rn_rng *r, rn_real *p, size_t n, double bound) {
    for (size_t i = 0; i < n; i++) p[i] = (rn_real)((2 * rn_rng_uniform(r) - 1) * bound);
}

void rni_fill_normal(rn_rng *r, rn_real *p, size_t n, double std) {
    for (size_t i = 0; i < n; i++) p[i] = (rn_real)(rn_rng_normal(r) * std);
}

void rni_xavier(rn_rng *r, rn_real *p, int rows, int cols, double gain) {
    rni_fill_uniform(r, p, (size_t)rows * cols, gain * sqrt(6.0 / (rows + cols)));
}
