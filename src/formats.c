/* formats.c: the model file formats of the PyTorch world (README "File
 * formats"): where the weights are (a file, a directory, shards listed in
 * an index), where the config is (our metadata, a config.json, the shapes),
 * and which names the tensors have (detected from the files). The tensors
 * themselves are tensor_io.c's. */
#define _POSIX_C_SOURCE 200809L
#include "objects.h"
#include "tensor_io.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_JSON_FILE ((long)64 << 20)  /* config.json or an index: a few kB in practice */

static const char *const format_names[] = {"retnet", "torchscale", "torchscale-hf", "seed", "fla"};
static const char *const dtype_names[] = {"f32", "bf16", "f64", "f16"};
_Static_assert(sizeof format_names / sizeof *format_names == RN_FORMAT_COUNT, "one name per format");
_Static_assert(sizeof dtype_names / sizeof *dtype_names == RN_DTYPE_COUNT, "one name per dtype");

const char *rn_format_name(rn_format f) { return rni_name_of(format_names, RN_FORMAT_COUNT, (int)f); }
const char *rn_dtype_name(rn_dtype d) { return rni_name_of(dtype_names, RN_DTYPE_COUNT, (int)d); }

rn_status rn_format_from_name(const char *name, rn_format *out) {
    int i = 0;
    rn_status st = rni_name_lookup(format_names, RN_FORMAT_COUNT, "format", name, &i);
    if (st == RN_OK) *out = (rn_format)i;
    return st;
}

rn_status rn_dtype_from_name(const char *name, rn_dtype *out) {
    int i = 0;
    rn_status st = rni_name_lookup(dtype_names, RN_DTYPE_COUNT, "dtype", name, &i);
    if (st == RN_OK) *out = (rn_dtype)i;
    return st;
}

/* The preset whose names a format uses (-1: any, ours). */
static int format_preset(rn_format f) {
    switch (f) {
    case RN_FORMAT_TORCHSCALE: case RN_FORMAT_TORCHSCALE_HF: return RN_PRESET_TORCHSCALE;
    case RN_FORMAT_SEED: return RN_PRESET_SEED;
    case RN_FORMAT_FLA: return RN_PRESET_FLA;
    default: return -1;
    }
}

/* ------------------------------------------------------------- paths */

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static int is_file(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* dir/name, or NULL when out of memory. */
static char *path_join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* The directory part of a path ("." when it has none). */
static char *dir_of(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return strdup(".");
    if (slash == path) return strdup("/");
    char *d = malloc((size_t)(slash - path) + 1);
    if (d) { memcpy(d, path, (size_t)(slash - path)); d[slash - path] = 0; }
    return d;
}

/* A small text file (config.json, an index), NUL-terminated. */
static rn_status read_text(const char *path, char **out) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return rni_fail(RN_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    rn_status st = RN_OK;
    long n = -1;
    if (fseek(f, 0, SEEK_END) == 0) n = ftell(f);
    if (n < 0 || n > MAX_JSON_FILE || fseek(f, 0, SEEK_SET) != 0) st = rni_fail(RN_ERR_FORMAT, "%s: unreadable or too large", path);
    char *t = st == RN_OK ? malloc((size_t)n + 1) : NULL;
    if (st == RN_OK && !t) st = rni_fail(RN_ERR_NOMEM, "out of memory");
    if (st == RN_OK && fread(t, 1, (size_t)n, f) != (size_t)n) st = rni_fail(RN_ERR_IO, "cannot read %s", path);
    fclose(f);
    if (st != RN_OK) { free(t); return st; }
    t[n] = 0;
    *out = t;
    return RN_OK;
}

/* Where a model's pieces are. */
typedef struct {
    char *dir;          /* the directory of the weights: where config.json is */
    char **files;       /* (nfiles) the weights: one file, or the shards */
    int nfiles;
    char *index_path;   /* model.safetensors.index.json, when sharded */
    cJSON *weight_map;  /* its "weight_map" (owned by index) */
    cJSON *index;
} model_paths;

static void paths_free(model_paths *mp) {
    for (int i = 0; i < mp->nfiles; i++) free(mp->files[i]);
    free(mp->files);
    free(mp->dir);
    free(mp->index_path);
    cJSON_Delete(mp->index);
    memset(mp, 0, sizeof *mp);
}

static rn_status add_file(model_paths *mp, char *p) {
    char **f = p ? realloc(mp->files, sizeof *f * (size_t)(mp->nfiles + 1)) : NULL;
    if (!f) { free(p); return rni_fail(RN_ERR_NOMEM, "out of memory"); }
    mp->files = f;
    mp->files[mp->nfiles++] = p;
    return RN_OK;
}

/* The shards an index lists (weight_map: tensor -> file in the index's
 * directory), each once. */
static rn_status read_index(model_paths *mp) {
    char *text;
    rn_status st = read_text(mp->index_path, &text);
    if (st != RN_OK) return st;
    mp->index = cJSON_Parse(text);
    free(text);
    mp->weight_map = cJSON_GetObjectItemCaseSensitive(mp->index, "weight_map");
    if (!cJSON_IsObject(mp->weight_map) || !mp->weight_map->child)
        return rni_fail(RN_ERR_FORMAT, "%s: not a safetensors index (no weight_map object)", mp->index_path);
    for (cJSON *it = mp->weight_map->child; it; it = it->next) {
        const char *f = cJSON_IsString(it) ? it->valuestring : NULL;
        if (!f || !*f || strchr(f, '/') || f[0] == '.')
            return rni_fail(RN_ERR_FORMAT, "%s: tensor '%s' is mapped to an invalid file name", mp->index_path, it->string);
        int seen = 0;
        for (int i = 0; i < mp->nfiles && !seen; i++) seen = strcmp(strrchr(mp->files[i], '/') + 1, f) == 0;
        if (!seen && (st = add_file(mp, path_join(mp->dir, f))) != RN_OK) return st;
    }
    return RN_OK;
}

/* The weights of a directory: its index, model.safetensors, or its only
 * .safetensors file. */
static rn_status dir_weights(const char *path, model_paths *mp) {
    if (!(mp->index_path = path_join(path, "model.safetensors.index.json"))) return rni_fail(RN_ERR_NOMEM, "out of memory");
    if (is_file(mp->index_path)) return read_index(mp);
    free(mp->index_path);
    mp->index_path = NULL;
    char *single = path_join(path, "model.safetensors");
    if (single && is_file(single)) return add_file(mp, single);
    free(single);
    DIR *d = opendir(path);
    if (!d) return rni_fail(RN_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    int found = 0;
    rn_status st = RN_OK;
    for (struct dirent *e; st == RN_OK && (e = readdir(d));)
        if (ends_with(e->d_name, ".safetensors") && e->d_name[0] != '.' && found++ == 0) st = add_file(mp, path_join(path, e->d_name));
    closedir(d);
    if (st == RN_OK && found != 1)
        st = rni_fail(RN_ERR_IO, "%s: a directory with %d .safetensors files, and neither model.safetensors nor "
                     "model.safetensors.index.json", path, found);
    return st;
}

static rn_status resolve_paths(const char *path, model_paths *mp) {
    memset(mp, 0, sizeof *mp);
    struct stat sb;
    if (stat(path, &sb) != 0) return rni_fail(RN_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    rn_status st;
    if (S_ISDIR(sb.st_mode)) {
        mp->dir = strdup(path);
        st = mp->dir ? dir_weights(path, mp) : rni_fail(RN_ERR_NOMEM, "out of memory");
    } else {
        mp->dir = dir_of(path);
        if (!mp->dir) st = rni_fail(RN_ERR_NOMEM, "out of memory");
        else if (ends_with(path, ".index.json")) {
            mp->index_path = strdup(path);
            st = mp->index_path ? read_index(mp) : rni_fail(RN_ERR_NOMEM, "out of memory");
        } else {
            st = add_file(mp, strdup(path));
        }
    }
    if (st != RN_OK) paths_free(mp);
    return st;
}

/* Every tensor the index lists is in the shard it names. */
static rn_status check_index(const model_paths *mp, const rn_tensor_set *s) {
    for (cJSON *it = mp->weight_map ? mp->weight_map->child : NULL; it; it = it->next) {
        int f = rni_tensor_set_find(s, it->string, NULL, NULL);
        if (f < 0 || strcmp(strrchr(mp->files[f], '/') + 1, it->valuestring) != 0)
            return rni_fail(RN_ERR_FORMAT, "%s: tensor '%s' is not in %s, where the index puts it", mp->index_path,
                           it->string, it->valuestring);
    }
    return RN_OK;
}

/* --------------------------------------------------------- detection */

static int has(const rn_tensor_set *s, const char *name) { return rni_tensor_set_find(s, name, NULL, NULL) >= 0; }

/* Whose names the tensors have (-1: none we know), in which variant. */
static int detect_names(const rn_tensor_set *s, rn_names *nm, rn_format *fmt) {
    memset(nm, 0, sizeof *nm);
    if (has(s, "embed_tokens.weight")) { *fmt = RN_FORMAT_TORCHSCALE; return RN_PRESET_TORCHSCALE; }
    if (has(s, "model.embed_tokens.weight")) {
        nm->hf_prefix = 1;
        *fmt = RN_FORMAT_TORCHSCALE_HF;
        return RN_PRESET_TORCHSCALE;
    }
    if (has(s, "embed.weight")) { *fmt = RN_FORMAT_SEED; return RN_PRESET_SEED; }
    if (has(s, "model.embeddings.weight")) {
        nm->fused_mlp = has(s, "model.layers.0.mlp.gate_proj.weight") && !has(s, "model.layers.0.mlp.up_proj.weight");
        nm->g_norm_alias = has(s, "model.layers.0.attn.g_norm.weight") && !has(s, "model.layers.0.attn.g_norm_swish_gate.weight");
        *fmt = RN_FORMAT_FLA;
        return RN_PRESET_FLA;
    }
    return -1;
}

/* A dimension of a tensor in the files, or -1 (absent, or out of range). */
static int dim_of(const rn_tensor_set *s, const char *name, int ndim, int axis) {
    int nd;
    int64_t shape[8];
    if (rni_tensor_set_find(s, name, &nd, shape) < 0 || nd != ndim || shape[axis] > INT_MAX) return -1;
    return (int)shape[axis];
}

/* How many of the names pre0post, pre1post, ... the files hold. */
static int count_names(const rn_tensor_set *s, const char *pre, const char *post) {
    char name[128];
    for (int n = 0;; n++) {
        snprintf(name, sizeof name, "%s%d%s", pre, n, post);
        if (!has(s, name)) return n;
    }
}

/* The seed's config follows from its shapes (it has no other settings). */
static rn_status seed_config(const rn_tensor_set *s, const char *label, rn_config *c) {
    memset(c, 0, sizeof *c);
    rn_config_preset(c, RN_PRESET_SEED, NULL);
    c->vocab = dim_of(s, "embed.weight", 2, 0);
    c->dim = dim_of(s, "embed.weight", 2, 1);
    c->ffn_dim = dim_of(s, "retnet.ffns.0.0.weight", 2, 0);
    c->value_dim = dim_of(s, "retnet.retentions.0.W_G", 2, 1);
    c->layers = count_names(s, "retnet.layer_norms_1.", ".weight");
    c->heads = count_names(s, "retnet.retentions.0.retentions.", ".W_Q");
    const char *need[] = {"retnet.ffns.0.0.weight", "retnet.retentions.0.W_G"};
    for (int i = 0; i < 2; i++)
        if (dim_of(s, need[i], 2, 0) < 0)
            return rni_fail(RN_ERR_FORMAT, "%s: seed state dict without a config: tensor '%s' missing or not 2-D", label, need[i]);
    if (rn_config_validate(c) != RN_OK) {
        char msg[256];  /* rni_fail formats into the buffer rn_last_error returns */
        snprintf(msg, sizeof msg, "%s", rn_last_error());
        return rni_fail(RN_ERR_FORMAT, "%s: seed state dict without a config, whose shapes give no valid one: %s", label, msg);
    }
    return RN_OK;
}

/* The config from JSON of source (our metadata or a config.json) for the
 * preset the names say (-1: the config's own). */
static rn_status parse_config(const char *json, int preset, const char *label, const char *source, rn_config *c) {
    rn_status st = rni_config_from_json_as(json, preset, c);
    if (st == RN_OK) return RN_OK;
    char msg[512];
    snprintf(msg, sizeof msg, "%s", rn_last_error());
    return rni_fail(st, "%s: %s%s", label, source, msg);
}

/* The files, format, names and config of the model at path: everything but
 * its tensors' values (read only with verify, to check the checksums). On
 * success the caller closes *s and frees *mp. */
static rn_status open_model(const char *path, int verify, model_paths *mp_out, rn_tensor_set **s_out, rn_config *cfg_out,
                            rn_names *nm_out, rn_format *fmt_out) {
    *s_out = NULL;
    model_paths mp;
    rn_status st = resolve_paths(path, &mp);
    if (st != RN_OK) return st;
    rn_tensor_set *s = NULL;
    char *cfg_text = NULL;
    rn_config cfg;
    rn_names nm;
    rn_format fmt = RN_FORMAT_RETNET;
    if ((st = rni_tensor_set_open(path, (const char *const *)mp.files, mp.nfiles, verify, &s)) != RN_OK) goto done;
    if ((st = check_index(&mp, s)) != RN_OK) goto done;
    int named = detect_names(s, &nm, &fmt);
    const char *meta = rni_tensor_set_meta(s, "retnet");
    if (meta) {
        if ((st = parse_config(meta, -1, path, "", &cfg)) != RN_OK) goto done;
        if (named >= 0 && named != (int)cfg.preset) {
            st = rni_fail(RN_ERR_FORMAT, "%s: the config is the %s preset's, the tensor names the %s preset's (mismatched preset)",
                         path, rn_preset_name(cfg.preset), rn_preset_name((rn_preset)named));
            goto done;
        }
        /* ours, unless the names are a variant */
        if (!nm.hf_prefix && !nm.fused_mlp && !nm.g_norm_alias) fmt = RN_FORMAT_RETNET;
    } else if (named == RN_PRESET_SEED) {
        if ((st = seed_config(s, path, &cfg)) != RN_OK) goto done;
    } else if (named < 0) {
        st = rni_fail(RN_ERR_FORMAT, "%s: no __metadata__[\"retnet\"] config, and not a state dict we know: none of "
                     "embed_tokens.weight (torchscale), model.embed_tokens.weight (its Hugging Face port), "
                     "embed.weight (seed), model.embeddings.weight (fla)", path);
        goto done;
    } else {
        char *cj = path_join(mp.dir, "config.json");
        if (!cj) st = rni_fail(RN_ERR_NOMEM, "out of memory");
        else if (!is_file(cj))
            st = rni_fail(RN_ERR_FORMAT, "%s: a %s state dict without its config: no __metadata__[\"retnet\"] in the file "
                         "and no %s", path, rn_preset_name((rn_preset)named), cj);
        else if ((st = read_text(cj, &cfg_text)) == RN_OK)
            st = parse_config(cfg_text, named, path, "config.json: ", &cfg);
        free(cj);
        if (st != RN_OK) goto done;
    }
done:
    free(cfg_text);
    if (st != RN_OK) {
        rni_tensor_set_close(s);
        paths_free(&mp);
        return st;
    }
    *mp_out = mp; *s_out = s; *cfg_out = cfg; *nm_out = nm; *fmt_out = fmt;
    return RN_OK;
}

rn_status rn_model_load_ex(const char *path, rn_model **out, rn_format *format) {
    return rn_model_load_flags(path, 0, out, format);
}

rn_status rn_model_load_flags(const char *path, unsigned flags, rn_model **out, rn_format *format) {
    *out = NULL;
    if (flags & ~RN_LOAD_F32) return rni_fail(RN_ERR_ARG, "unknown load flags 0x%x", flags & ~RN_LOAD_F32);
    model_paths mp;
    rn_tensor_set *s;
    rn_config cfg;
    rn_names nm;
    rn_format fmt;
    rn_status st = open_model(path, 1, &mp, &s, &cfg, &nm, &fmt);
    if (st != RN_OK) return st;
    st = rni_tensor_set_model(s, &cfg, &nm, flags, out);
    if (st == RN_OK) rni_model_pack_panels(*out);
    if (st == RN_OK && format) *format = fmt;
    rni_tensor_set_close(s);
    paths_free(&mp);
    return st;
}

rn_status rn_model_inspect(const char *path, rn_model_info *info) {
    memset(info, 0, sizeof *info);
    model_paths mp;
    rn_tensor_set *s;
    rn_names nm;
    rn_status st = open_model(path, 0, &mp, &s, &info->config, &nm, &info->format);
    if (st != RN_OK) return st;
    st = rni_tensor_set_info(s, &info->config, &nm, info);
    rni_tensor_set_close(s);
    paths_free(&mp);
    return st;
}

rn_status rn_model_verify(const char *path) {
    rn_model *m;
    rn_status st = rn_model_load(path, &m);
    rn_model_free(m);
    return st;
}

rn_status rn_model_load(const char *path, rn_model **out) {
    return rn_model_load_ex(path, out, NULL);
}

/* ------------------------------------------------------------ saving */

/* The config.json of a format: the upstream keys of the preset (and for
 * fla the Hugging Face ones that name the model), human-readable. */
static char *upstream_config(const rn_config *c, rn_format fmt) {
    char *js = rn_config_to_json(c);
    cJSON *o = js ? cJSON_Parse(js) : NULL;
    free(js);
    if (!o) return NULL;
    cJSON_DeleteItemFromObjectCaseSensitive(o, "preset");
    if (fmt == RN_FORMAT_FLA) {
        cJSON_AddStringToObject(o, "model_type", "retnet");
        cJSON *arch = cJSON_AddArrayToObject(o, "architectures");
        if (arch) cJSON_AddItemToArray(arch, cJSON_CreateString("RetNetForCausalLM"));
        cJSON_AddStringToObject(o, "hidden_act", "swish");
        cJSON_AddBoolToObject(o, "use_short_conv", 0);
        cJSON_AddBoolToObject(o, "use_output_gate", 1);
        cJSON_AddBoolToObject(o, "elementwise_affine", 1);
        cJSON_AddNullToObject(o, "feature_map");
    }
    /* cJSON prints 15 digits, which may not round-trip: numbers are
     * written exactly, the rest copied. */
    cJSON *exact = cJSON_CreateObject();
    for (cJSON *it = o->child; exact && it; it = it->next) {
        if (cJSON_IsNumber(it)) rni_json_add_number(exact, it->string, it->valuedouble);
        else cJSON_AddItemToObject(exact, it->string, cJSON_Duplicate(it, 1));
    }
    char *out = exact ? cJSON_Print(exact) : NULL;
    cJSON_Delete(exact);
    cJSON_Delete(o);
    return out;
}

static rn_status write_text(const char *path, const char *text) {
    rn_atomic_file af;
    rn_status st = rn_atomic_open(&af, path);
    if (st != RN_OK) return st;
    if ((st = rn_atomic_write(&af, text, strlen(text))) == RN_OK) st = rn_atomic_write(&af, "\n", 1);
    if (st == RN_OK) return rn_atomic_commit(&af);
    rn_atomic_abort(&af);
    return st;
}

/* The files of a format with a config.json: PATH.safetensors and
 * config.json beside it, or PATH/model.safetensors and PATH/config.json. */
static rn_status out_paths(const char *path, char **weights, char **config) {
    char *dir;
    *weights = *config = NULL;
    if (ends_with(path, ".safetensors")) {
        dir = dir_of(path);
        *weights = strdup(path);
    } else {
        if (mkdir(path, 0777) != 0 && errno != EEXIST) return rni_fail(RN_ERR_IO, "cannot create %s: %s", path, strerror(errno));
        dir = strdup(path);
        *weights = path_join(path, "model.safetensors");
    }
    *config = dir ? path_join(dir, "config.json") : NULL;
    free(dir);
    if (*weights && *config) return RN_OK;
    free(*weights);
    free(*config);
    return rni_fail(RN_ERR_NOMEM, "out of memory");
}

/* Refuses a format or dtype out of range, or a format of another preset. */
static rn_status check_target(const rn_model *m, rn_format fmt, rn_dtype dt, rn_names *nm) {
    if ((unsigned)fmt >= (unsigned)RN_FORMAT_COUNT) return rni_fail(RN_ERR_ARG, "unknown format %d", (int)fmt);
    if ((unsigned)dt >= (unsigned)RN_DTYPE_COUNT) return rni_fail(RN_ERR_ARG, "unknown dtype %d", (int)dt);
    int p = format_preset(fmt);
    if (p >= 0 && p != (int)m->cfg.preset)
        return rni_fail(RN_ERR_ARG, "a %s model cannot be written in the %s format, which is the %s preset's (use retnet)",
                       rn_preset_name(m->cfg.preset), rn_format_name(fmt), rn_preset_name((rn_preset)p));
    if (fmt == RN_FORMAT_FLA && m->cfg.dim / m->cfg.heads > RNI_FLA_MAX_HEAD_K)
        return rni_fail(RN_ERR_ARG, "a key dimension per head of %d (dim %d / heads %d) is more than fla's %d: "
                       "fla could not run it (use more heads, or the retnet format)", m->cfg.dim / m->cfg.heads,
                       m->cfg.dim, m->cfg.heads, RNI_FLA_MAX_HEAD_K);
    memset(nm, 0, sizeof *nm);
    nm->hf_prefix = fmt == RN_FORMAT_TORCHSCALE_HF;
    return RN_OK;
}

rn_status rn_model_save_as(const rn_model *m, const char *path, rn_format fmt, rn_dtype dt) {
    rn_names nm;
    rn_status st = check_target(m, fmt, dt, &nm);
    if (st != RN_OK) return st;
    if (fmt == RN_FORMAT_RETNET || fmt == RN_FORMAT_SEED) {
        char *cfg = fmt == RN_FORMAT_RETNET ? rn_config_to_json(&m->cfg) : NULL;
        if (fmt == RN_FORMAT_RETNET && !cfg) return rni_fail(RN_ERR_NOMEM, "out of memory");
        st = rni_tensors_save(path, m, NULL, &nm, 1, dt, cfg);
        free(cfg);
        return st;
    }
    char *weights = NULL, *cfg_path = NULL, *cfg = upstream_config(&m->cfg, fmt);
    if (!cfg) return rni_fail(RN_ERR_NOMEM, "out of memory");
    if ((st = out_paths(path, &weights, &cfg_path)) == RN_OK) {
        st = rni_tensors_save(weights, m, NULL, &nm, 1, dt, NULL);
        if (st == RN_OK) st = write_text(cfg_path, cfg);
        free(weights);
        free(cfg_path);
    }
    free(cfg);
    return st;
}

rn_status rn_model_save(const rn_model *m, const char *path) {
    return rn_model_save_as(m, path, RN_FORMAT_RETNET, RN_DTYPE_F32);
}

rn_status rn_model_save_values(const rn_model *m, const rn_real *values, const char *path, rn_format fmt, rn_dtype dt) {
    rn_names nm;
    rn_status st = check_target(m, fmt, dt, &nm);
    if (st != RN_OK) return st;
    return rni_tensors_save(path, m, values, &nm, 0, dt, NULL);
}

rn_status rn_model_quantize(const rn_model *m, const char *path, rn_wtype t, unsigned flags) {
    rn_names nm;
    rn_status st = check_target(m, RN_FORMAT_RETNET, RN_DTYPE_F32, &nm);
    if (st != RN_OK) return st;
    if (flags & ~(RN_QUANT_KEEP_HEAD | RN_QUANT_KEEP_EMBED)) return rni_fail(RN_ERR_ARG, "unknown quantise flags %#x", flags);
    char *cfg = rn_config_to_json(&m->cfg);
    if (!cfg) return rni_fail(RN_ERR_NOMEM, "out of memory");
    st = rni_tensors_quantize(path, m, &nm, t, flags, cfg);
    free(cfg);
    return st;
}
