/* test_formats.c: the model file formats (rn_model_load_ex, rn_model_save_as,
 * rn_model_save_values), with no PyTorch needed (tests/cli/test_torch_parity.sh
 * checks the same files against PyTorch):
 * - every preset in ours and in its upstream formats, F32 and BF16 (and F64 in
 *   the float64 build): the format is detected, the parameters come back as
 *   their rounding, a second save is byte-identical, A -> B -> A is exact;
 * - the variants read: fla's attn.g_norm, a tied head stored beside the
 *   embedding (equal: accepted; different: refused), shards with an index;
 * - the seed's config from its shapes; gradients files under the format's names;
 * - bad input refused with one line naming the culprit: no config, another
 *   preset's config, unsupported config values, a wrong or malformed index,
 *   a tensor in two shards, a directory without weights, unknown files. */
#define _POSIX_C_SOURCE 200809L
#include "check.h"
#include "same_config.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[256];

/* tmpdir/NAME, formatted (a ring of buffers, a few usable at once). */
static const char *tp(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static const char *tp(const char *fmt, ...) {
    static char ring[8][512];
    static int k;
    char *b = ring[k++ & 7], name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    snprintf(b, 512, "%s/%s", tmpdir, name);
    return b;
}

/* The bytes of a file (NUL-terminated; len may be NULL). Exits on error. */
static char *contents(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    char *p = NULL;
    long n = -1;
    if (f && fseek(f, 0, SEEK_END) == 0) n = ftell(f);
    if (n >= 0 && fseek(f, 0, SEEK_SET) == 0 && (p = malloc((size_t)n + 1)) && fread(p, 1, (size_t)n, f) == (size_t)n) {
        p[n] = 0;
        if (len) *len = (size_t)n;
        fclose(f);
        return p;
    }
    fprintf(stderr, "test: cannot read %s\n", path);
    exit(1);
}

static void put(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n || fclose(f) != 0) { fprintf(stderr, "test: cannot write %s\n", path); exit(1); }
}

static void put_text(const char *path, const char *s) { put(path, s, strlen(s)); }

static int identical(const char *a, const char *b) {
    size_t na, nb;
    char *x = contents(a, &na), *y = contents(b, &nb);
    int same = na == nb && memcmp(x, y, na) == 0;
    free(x);
    free(y);
    return same;
}

/* ------------------------------------------- safetensors, taken apart */

typedef struct {
    cJSON *hdr;
    char *data;
    size_t len;
} st_parts;

static st_parts parts_read(const char *path) {
    size_t n;
    char *b = contents(path, &n);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = hl << 8 | (unsigned char)b[i];
    st_parts p = {cJSON_ParseWithLength(b + 8, (size_t)hl), malloc(n - 8 - (size_t)hl + 1), n - 8 - (size_t)hl};
    memcpy(p.data, b + 8 + hl, p.len);
    free(b);
    return p;
}

/* Writes the parts (header without padding: any length is valid). */
static void parts_write(const char *path, const st_parts *p) {
    char *js = cJSON_PrintUnformatted(p->hdr);
    size_t hl = strlen(js);
    char *b = malloc(8 + hl + p->len);
    for (int i = 0; i < 8; i++) b[i] = (char)(hl >> (8 * i));
    memcpy(b + 8, js, hl);
    memcpy(b + 8 + hl, p->data, p->len);
    put(path, b, 8 + hl + p->len);
    free(b);
    free(js);
}

static void parts_free(st_parts *p) {
    cJSON_Delete(p->hdr);
    free(p->data);
}

static void rename_key(cJSON *o, const char *from, const char *to) {
    cJSON *it = cJSON_DetachItemFromObjectCaseSensitive(o, from);
    if (!it) { fprintf(stderr, "test bug: no '%s'\n", from); exit(1); }
    cJSON_AddItemToObject(o, to, it);
}

/* Adds a copy of tensor `of` named `name` at the end of the data. */
static void add_copy(st_parts *p, const char *of, const char *name) {
    cJSON *src = cJSON_GetObjectItemCaseSensitive(p->hdr, of);
    cJSON *off = cJSON_GetObjectItemCaseSensitive(src, "data_offsets");
    size_t b = (size_t)cJSON_GetArrayItem(off, 0)->valuedouble, e = (size_t)cJSON_GetArrayItem(off, 1)->valuedouble;
    p->data = realloc(p->data, p->len + (e - b));
    memcpy(p->data + p->len, p->data + b, e - b);
    cJSON *t = cJSON_Duplicate(src, 1);
    cJSON *no = cJSON_CreateArray();
    cJSON_AddItemToArray(no, cJSON_CreateNumber((double)p->len));
    cJSON_AddItemToArray(no, cJSON_CreateNumber((double)(p->len + e - b)));
    cJSON_ReplaceItemInObjectCaseSensitive(t, "data_offsets", no);
    cJSON_AddItemToObject(p->hdr, name, t);
    p->len += e - b;
    /* the data changed: drop its checksum */
    cJSON_DeleteItemFromObjectCaseSensitive(cJSON_GetObjectItem(p->hdr, "__metadata__"), "checksum_xxh3");
}

/* -------------------------------------------------------------- models */

static rn_model *model(rn_preset p, int tie, uint64_t seed) {
    rn_config c;
    memset(&c, 0, sizeof c);
    rn_config_preset(&c, p, NULL);
    c.dim = 24; c.heads = 3; c.value_dim = 48; c.ffn_dim = 40; c.layers = 2; c.vocab = 29;
    c.tie_embed = tie;
    if (tie && p == RN_PRESET_TORCHSCALE) { c.scale_embed = 1; c.act = RN_ACT_SWISH; c.norm_eps = c.head_eps = 1e-5; }
    rn_model *m = NULL;
    if (rn_model_create(&c, &m) != RN_OK) { fprintf(stderr, "test: %s\n", rn_last_error()); exit(1); }
    rn_model_init_random(m, seed);
    /* every value distinct and off its init (norm weights too) */
    rn_rng r;
    rn_rng_seed(&r, seed + 99);
    rn_real *w = rn_model_params(m);
    for (size_t i = 0; i < rn_model_num_params(m); i++) w[i] += (rn_real)(0.1 * rn_rng_normal(&r));
    return m;
}

/* x rounded to bfloat16 (nearest even), from its float32 rounding. */
static rn_real bf16_round(rn_real x) {
    float f = (float)x;
    uint32_t u;
    memcpy(&u, &f, 4);
    u = (u + 0x7fffu + ((u >> 16) & 1)) & 0xffff0000u;
    memcpy(&f, &u, 4);
    return f;
}

/* x rounded to IEEE half (nearest even) by the compiler's _Float16
 * conversion: a reference independent of safetensors.c's. */
static rn_real f16_round(rn_real x) { return (rn_real)(_Float16)x; }

/* The loaded parameters are the originals rounded to dt, bit for bit. */
static void check_params(const rn_model *a, rn_model *b, rn_dtype dt, const char *what) {
    size_t n = rn_model_num_params(a), bad = 0;
    CHECK(rn_model_num_params(b) == n, "%s: %zu parameters, want %zu", what, rn_model_num_params(b), n);
    if (rn_model_num_params(b) != n) return;
    const rn_real *x = rn_model_params((rn_model *)a), *y = rn_model_params(b);
    for (size_t i = 0; i < n; i++) {
        rn_real want = dt == RN_DTYPE_BF16 ? bf16_round(x[i]) : dt == RN_DTYPE_F16 ? f16_round(x[i])
                     : dt == RN_DTYPE_F64 ? x[i] : (rn_real)(float)x[i];
        bad += memcmp(&want, &y[i], sizeof want) != 0;
    }
    CHECK(bad == 0, "%s: %zu of %zu parameters are not the %s rounding", what, bad, n, rn_dtype_name(dt));
    char *ca = rn_config_to_json(rn_model_config(a)), *cb = rn_config_to_json(rn_model_config(b));
    CHECK(strcmp(ca, cb) == 0, "%s: config %s, want %s", what, cb, ca);
    free(ca);
    free(cb);
}

static rn_model *load_as(const char *path, rn_format want, const char *what) {
    rn_model *m = NULL;
    rn_format got = (rn_format)-1;
    rn_status st = rn_model_load_ex(path, &m, &got);
    CHECK(st == RN_OK, "%s: load %s: %s", what, path, rn_last_error());
    CHECK(st != RN_OK || got == want, "%s: detected %s, want %s", what, rn_format_name(got), rn_format_name(want));
    return m;
}

/* The weights file of a save_as target (a directory for the formats with
 * a config.json). */
static const char *weights_of(const char *path, rn_format f) {
    int dir = f == RN_FORMAT_TORCHSCALE || f == RN_FORMAT_TORCHSCALE_HF || f == RN_FORMAT_FLA;
    return dir ? tp("%s/model.safetensors", path + strlen(tmpdir) + 1) : path;
}

static void round_trips(rn_preset p, int tie, const char *label) {
    rn_format formats[3] = {RN_FORMAT_RETNET};
    int nf = 1;
    if (p == RN_PRESET_TORCHSCALE) { formats[nf++] = RN_FORMAT_TORCHSCALE; formats[nf++] = RN_FORMAT_TORCHSCALE_HF; }
    if (p == RN_PRESET_SEED) formats[nf++] = RN_FORMAT_SEED;
    if (p == RN_PRESET_FLA) formats[nf++] = RN_FORMAT_FLA;
    rn_dtype dtypes[] = {RN_DTYPE_F32, RN_DTYPE_BF16, RN_DTYPE_F16, RN_DTYPE_F64};
    rn_model *m = model(p, tie, 3);
    char ours[512];
    snprintf(ours, sizeof ours, "%s", tp("%s.safetensors", label));
    CHECK_OK(rn_model_save(m, ours));
    for (int i = 0; i < nf; i++)
        for (int k = 0; k < (int)(sizeof dtypes / sizeof *dtypes); k++) {
            rn_format f = formats[i];
            rn_dtype dt = dtypes[k];
#ifndef RETNET_DOUBLE
            if (dt == RN_DTYPE_F64) continue;
#endif
            char what[128], a[512], b[520];
            snprintf(what, sizeof what, "%s as %s %s", label, rn_format_name(f), rn_dtype_name(dt));
            snprintf(a, sizeof a, "%s", tp("%s.%s.%s", label, rn_format_name(f), rn_dtype_name(dt)));
            snprintf(b, sizeof b, "%s.again", a);
            CHECK_OK(rn_model_save_as(m, a, f, dt));
            rn_model *m2 = load_as(a, f, what);
            if (!m2) continue;
            check_params(m, m2, dt, what);
            /* a second save of what was read is byte-identical */
            CHECK_OK(rn_model_save_as(m2, b, f, dt));
            CHECK(identical(weights_of(a, f), weights_of(b, f)), "%s: saving the loaded model changes the file", what);
            /* A -> B -> A: back in our format (F32), the file of the start */
            rn_model_free(m2);
            if (dt != RN_DTYPE_F32) continue;
            m2 = load_as(b, f, what);
            CHECK_OK(rn_model_save(m2, tp("%s.back", label)));
            CHECK(identical(ours, tp("%s.back", label)), "%s: retnet -> %s -> retnet is not byte-identical", what,
                  rn_format_name(f));
            rn_model_free(m2);
        }
    rn_model_free(m);
}

/* The error of loading path: one line naming `needle`, status want. */
static void expect_error(const char *path, rn_status want, const char *needle, const char *what) {
    rn_model *m = NULL;
    rn_status st = rn_model_load(path, &m);
    const char *e = rn_last_error();
    CHECK(st == want, "%s: status %s, want %s (%s)", what, rn_status_name(st), rn_status_name(want), e);
    CHECK(!strchr(e, '\n') && strstr(e, needle), "%s: message '%s' does not name '%s'", what, e, needle);
    rn_model_free(m);
}

static void variants(void) {
    /* fla's older attn.g_norm */
    rn_model *m = model(RN_PRESET_FLA, 0, 5);
    const char *dir = tp("fla-gnorm");
    CHECK_OK(rn_model_save_as(m, dir, RN_FORMAT_FLA, RN_DTYPE_F32));
    st_parts p = parts_read(tp("fla-gnorm/model.safetensors"));
    for (int i = 0; i < 2; i++) {
        char from[96], to[96];
        snprintf(from, sizeof from, "model.layers.%d.attn.g_norm_swish_gate.weight", i);
        snprintf(to, sizeof to, "model.layers.%d.attn.g_norm.weight", i);
        rename_key(p.hdr, from, to);
    }
    parts_write(tp("fla-gnorm/model.safetensors"), &p);
    parts_free(&p);
    rn_model *m2 = load_as(dir, RN_FORMAT_FLA, "fla with attn.g_norm");
    if (m2) check_params(m, m2, RN_DTYPE_F32, "fla with attn.g_norm");
    rn_model_free(m2);
    rn_model_free(m);

    /* a tied head stored beside the embedding: equal is fine, different is not */
    const char *names[][3] = {{"torchscale", "embed_tokens.weight", "output_projection.weight"},
                              {"fla", "model.embeddings.weight", "lm_head.weight"}};
    for (int k = 0; k < 2; k++) {
        rn_preset pr = k ? RN_PRESET_FLA : RN_PRESET_TORCHSCALE;
        rn_format f = k ? RN_FORMAT_FLA : RN_FORMAT_TORCHSCALE;
        m = model(pr, 1, 6);
        const char *d = tp("tied-%s", names[k][0]), *w = tp("tied-%s/model.safetensors", names[k][0]);
        CHECK_OK(rn_model_save_as(m, d, f, RN_DTYPE_F32));
        p = parts_read(w);
        add_copy(&p, names[k][1], names[k][2]);
        parts_write(w, &p);
        m2 = load_as(d, f, "tied head stored");
        if (m2) check_params(m, m2, RN_DTYPE_F32, "tied head stored");
        rn_model_free(m2);
        p.data[p.len - 4] ^= 0x01;  /* the head's last value, one ulp off */
        parts_write(w, &p);
        expect_error(d, RN_ERR_FORMAT, names[k][2], "tied head differing from the embedding");
        parts_free(&p);
        rn_model_free(m);
    }
}

/* A JSON file, parsed; written back (and freed) by json_store. */
static cJSON *json_load(const char *path) {
    char *text = contents(path, NULL);
    cJSON *o = cJSON_Parse(text);
    free(text);
    return o;
}

static void json_store(const char *path, cJSON *o) {
    char *js = cJSON_Print(o);
    put_text(path, js);
    free(js);
    cJSON_Delete(o);
}

/* Splits dir/model.safetensors into two shards (each header lists every
 * other tensor; both keep all the data) and writes the index. */
static void shard(const char *name) {
    st_parts p = parts_read(tp("%s/model.safetensors", name));
    cJSON *h2 = cJSON_CreateObject(), *map = cJSON_CreateObject();
    int i = 0;
    for (cJSON *t = p.hdr->child, *next; t; t = next, i++) {
        next = t->next;
        if (strcmp(t->string, "__metadata__") == 0) continue;
        cJSON_AddStringToObject(map, t->string, i % 2 ? "model-00002-of-00002.safetensors" : "model-00001-of-00002.safetensors");
        if (i % 2) cJSON_AddItemToObject(h2, t->string, cJSON_DetachItemViaPointer(p.hdr, t));
    }
    cJSON_DeleteItemFromObjectCaseSensitive(p.hdr, "__metadata__");  /* its checksum covers every tensor */
    parts_write(tp("%s/model-00001-of-00002.safetensors", name), &p);
    cJSON_Delete(p.hdr);
    p.hdr = h2;
    parts_write(tp("%s/model-00002-of-00002.safetensors", name), &p);
    parts_free(&p);
    cJSON *index = cJSON_CreateObject();
    cJSON_AddItemToObject(index, "weight_map", map);
    json_store(tp("%s/model.safetensors.index.json", name), index);
    unlink(tp("%s/model.safetensors", name));
}

/* Points the index's entry for tensor at file (NULL: the other shard). */
static void set_index_entry(const char *name, const char *tensor, const char *file) {
    const char *path = tp("%s/model.safetensors.index.json", name);
    cJSON *index = json_load(path), *map = cJSON_GetObjectItem(index, "weight_map");
    const char *now = cJSON_GetStringValue(cJSON_GetObjectItem(map, tensor));
    if (!file) file = strstr(now, "00001-of") ? "model-00002-of-00002.safetensors" : "model-00001-of-00002.safetensors";
    cJSON_ReplaceItemInObjectCaseSensitive(map, tensor, cJSON_CreateString(file));
    json_store(path, index);
}

static void shards(void) {
    rn_model *m = model(RN_PRESET_FLA, 0, 7);
    CHECK_OK(rn_model_save_as(m, tp("shards"), RN_FORMAT_FLA, RN_DTYPE_BF16));
    shard("shards");
    rn_model *m2 = load_as(tp("shards"), RN_FORMAT_FLA, "two shards");
    if (m2) check_params(m, m2, RN_DTYPE_BF16, "two shards");
    rn_model_free(m2);
    m2 = load_as(tp("shards/model.safetensors.index.json"), RN_FORMAT_FLA, "the index named");
    rn_model_free(m2);
    /* the index puts a tensor in the wrong shard */
    set_index_entry("shards", "model.embeddings.weight", NULL);
    expect_error(tp("shards"), RN_ERR_FORMAT, "model.embeddings.weight", "index naming the wrong shard");
    set_index_entry("shards", "model.embeddings.weight", "../model-00001-of-00002.safetensors");
    expect_error(tp("shards"), RN_ERR_FORMAT, "model.embeddings.weight", "index naming a file elsewhere");
    set_index_entry("shards", "model.embeddings.weight", "model-00003-of-00002.safetensors");
    expect_error(tp("shards"), RN_ERR_IO, "model-00003-of-00002.safetensors", "index naming a missing shard");
    /* a tensor in both shards */
    CHECK_OK(rn_model_save_as(m, tp("twice"), RN_FORMAT_FLA, RN_DTYPE_F32));
    shard("twice");
    st_parts p = parts_read(tp("twice/model-00002-of-00002.safetensors"));
    st_parts q = parts_read(tp("twice/model-00001-of-00002.safetensors"));
    char both[128];
    snprintf(both, sizeof both, "%s", q.hdr->child->string);
    cJSON_AddItemToObject(p.hdr, both, cJSON_Duplicate(q.hdr->child, 1));
    parts_write(tp("twice/model-00002-of-00002.safetensors"), &p);
    parts_free(&p);
    parts_free(&q);
    expect_error(tp("twice"), RN_ERR_FORMAT, both, "a tensor in two shards");
    /* a directory of several files and no index */
    unlink(tp("twice/model.safetensors.index.json"));
    expect_error(tp("twice"), RN_ERR_IO, "2 .safetensors", "several files, no index");
    rn_model_free(m);
}

/* Rewrites dir/config.json with key set to the JSON value (NULL: deleted). */
static void set_config(const char *dir, const char *key, const char *json) {
    const char *path = tp("%s/config.json", dir);
    cJSON *o = json_load(path);
    cJSON_DeleteItemFromObjectCaseSensitive(o, key);
    if (json) cJSON_AddItemToObject(o, key, cJSON_Parse(json));
    json_store(path, o);
}

static void configs(void) {
    rn_model *ts = model(RN_PRESET_TORCHSCALE, 0, 8), *fla = model(RN_PRESET_FLA, 0, 8);
    CHECK_OK(rn_model_save_as(ts, tp("cfg-ts"), RN_FORMAT_TORCHSCALE, RN_DTYPE_F32));
    CHECK_OK(rn_model_save_as(fla, tp("cfg-fla"), RN_FORMAT_FLA, RN_DTYPE_F32));
    /* unsupported values of upstream keys, and ones that are fine */
    struct { const char *dir, *key, *json; int ok; } cases[] = {
        {"cfg-ts", "deepnorm", "true", 0},          {"cfg-ts", "deepnorm", "false", 1},
        {"cfg-ts", "decoder_normalize_before", "false", 0}, {"cfg-ts", "multiway", "true", 0},
        {"cfg-ts", "no_output_layer", "true", 0},   {"cfg-ts", "use_lm_decay", "true", 0},
        {"cfg-ts", "moe_freq", "2", 0},             {"cfg-ts", "dropout", "0.1", 1},
        {"cfg-fla", "use_short_conv", "true", 0},   {"cfg-fla", "hidden_act", "\"gelu\"", 0},
        {"cfg-fla", "hidden_act", "\"silu\"", 1},   {"cfg-fla", "num_kv_heads", "1", 0},
        {"cfg-fla", "num_kv_heads", "3", 1},        {"cfg-fla", "num_kv_heads", "null", 1},
        {"cfg-fla", "feature_map", "\"relu\"", 0},  {"cfg-fla", "use_output_gate", "false", 0},
        {"cfg-fla", "attn_mode", "\"fused_chunk\"", 1},
        {"cfg-fla", "attnres_block_size", "64", 0}, {"cfg-fla", "attnres_block_size", "null", 1},
        {"cfg-ts", "use_glu", "false", 0},          {"cfg-ts", "use_glu", "true", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char what[128];
        snprintf(what, sizeof what, "%s: %s = %s", cases[i].dir, cases[i].key, cases[i].json);
        set_config(cases[i].dir, cases[i].key, cases[i].json);
        if (cases[i].ok) {
            rn_format f = strcmp(cases[i].dir, "cfg-ts") == 0 ? RN_FORMAT_TORCHSCALE : RN_FORMAT_FLA;
            rn_model *m = load_as(tp("%s", cases[i].dir), f, what);
            rn_model_free(m);
        } else {
            expect_error(tp("%s", cases[i].dir), RN_ERR_FORMAT, cases[i].key, what);
        }
        set_config(cases[i].dir, cases[i].key, NULL);
    }
    /* fla's limit of 256 key dimensions per head, read and written */
    {
        rn_config c;
        memset(&c, 0, sizeof c);
        rn_config_preset(&c, RN_PRESET_FLA, NULL);
        c.dim = 528; c.heads = 2; c.value_dim = 528; c.ffn_dim = 64; c.layers = 1; c.vocab = 8;
        rn_model *big = NULL;
        CHECK_OK(rn_model_create(&c, &big));
        if (big) {
            CHECK(rn_model_save_as(big, tp("cfg-fla-k264"), RN_FORMAT_FLA, RN_DTYPE_F32) == RN_ERR_ARG &&
                  strstr(rn_last_error(), "256"), "writing fla with a key dimension per head of 264: %s", rn_last_error());
            CHECK_OK(rn_model_save_as(big, tp("cfg-k264.safetensors"), RN_FORMAT_RETNET, RN_DTYPE_F32));
            rn_config parsed;
            const char *js = "{\"preset\": \"fla\", \"hidden_size\": 528, \"num_hidden_layers\": 1, \"num_heads\": 2, "
                             "\"expand_v\": 1, \"intermediate_size\": 64, \"vocab_size\": 8}";
            CHECK(rn_config_from_json(js, &parsed) == RN_ERR_FORMAT && strstr(rn_last_error(), "num_heads"),
                  "reading an fla config with a key dimension per head of 264: %s", rn_last_error());
            rn_model_free(big);
        }
    }
    /* another preset's config.json beside the tensors */
    char *fla_cfg = contents(tp("cfg-fla/config.json"), NULL), *ts_cfg = contents(tp("cfg-ts/config.json"), NULL);
    put_text(tp("cfg-ts/config.json"), fla_cfg);
    expect_error(tp("cfg-ts"), RN_ERR_FORMAT, "mismatched preset", "fla config.json, torchscale tensors");
    put_text(tp("cfg-ts/config.json"), "{\"preset\": \"seed\", \"vocab_size\": 29}");
    expect_error(tp("cfg-ts"), RN_ERR_FORMAT, "mismatched preset", "a config naming another preset");
    put_text(tp("cfg-fla/config.json"), ts_cfg);
    expect_error(tp("cfg-fla"), RN_ERR_FORMAT, "mismatched preset", "torchscale config.json, fla tensors");
    put_text(tp("cfg-ts/config.json"), "{\"decoder_embed_dim\": ");
    expect_error(tp("cfg-ts"), RN_ERR_FORMAT, "config.json", "config.json not JSON");
    unlink(tp("cfg-ts/config.json"));
    expect_error(tp("cfg-ts"), RN_ERR_FORMAT, "config.json", "no config.json");
    expect_error(tp("cfg-ts/model.safetensors"), RN_ERR_FORMAT, "__metadata__", "the file alone, no config");
    free(fla_cfg);
    free(ts_cfg);
    /* not a model of ours at all */
    st_parts p = parts_read(tp("cfg-fla/model.safetensors"));
    rename_key(p.hdr, "model.embeddings.weight", "transformer.wte.weight");
    parts_write(tp("cfg-fla/model.safetensors"), &p);
    parts_free(&p);
    expect_error(tp("cfg-fla"), RN_ERR_FORMAT, "model.embeddings.weight", "unknown naming");
    rmdir(tp("empty"));
    mkdir(tp("empty"), 0777);
    expect_error(tp("empty"), RN_ERR_IO, "0 .safetensors", "an empty directory");
    rn_model_free(ts);
    rn_model_free(fla);
}

static void seed_shapes(void) {
    /* the seed's config follows from the shapes: layers and heads counted */
    rn_model *m = model(RN_PRESET_SEED, 0, 9);
    const char *path = tp("seed-sd.safetensors");
    CHECK_OK(rn_model_save_as(m, path, RN_FORMAT_SEED, RN_DTYPE_F32));
    st_parts p = parts_read(path);
    cJSON *meta = cJSON_GetObjectItem(p.hdr, "__metadata__");
    CHECK(meta && !cJSON_GetObjectItem(meta, "retnet"), "seed format carries our config");
    cJSON_DeleteItemFromObjectCaseSensitive(p.hdr, "retnet.retentions.0.W_G");
    cJSON_DeleteItemFromObjectCaseSensitive(p.hdr, "__metadata__");
    parts_write(path, &p);
    parts_free(&p);
    expect_error(path, RN_ERR_FORMAT, "retnet.retentions.0.W_G", "seed state dict without W_G");
    rn_model_free(m);
}

static void values_and_targets(void) {
    /* gradients files: the format's parameter names, no buffers, no config */
    rn_model *ts = model(RN_PRESET_TORCHSCALE, 0, 10), *seed = model(RN_PRESET_SEED, 0, 10);
    mkdir(tp("vals"), 0777);
    CHECK_OK(rn_model_save_as(ts, tp("vals/ts.safetensors"), RN_FORMAT_TORCHSCALE_HF, RN_DTYPE_F32));  /* config.json */
    CHECK_OK(rn_model_save_values(ts, rn_model_params(ts), tp("vals/g.safetensors"), RN_FORMAT_TORCHSCALE_HF, RN_DTYPE_F32));
    st_parts p = parts_read(tp("vals/g.safetensors"));
    CHECK(cJSON_GetObjectItem(p.hdr, "model.layers.1.retention.q_proj.weight") && cJSON_GetObjectItem(p.hdr, "lm_head.weight"),
          "values file lacks the format's names");
    CHECK(!cJSON_GetObjectItem(p.hdr, "model.retnet_rel_pos.angle"), "values file holds the position buffers");
    parts_free(&p);
    rn_model *m2 = load_as(tp("vals/g.safetensors"), RN_FORMAT_TORCHSCALE_HF, "values file, config.json beside");
    if (m2) check_params(ts, m2, RN_DTYPE_F32, "values file");
    rn_model_free(m2);
    CHECK_OK(rn_model_save_values(seed, rn_model_params(seed), tp("vals/s.safetensors"), RN_FORMAT_SEED, RN_DTYPE_F32));
    m2 = load_as(tp("vals/s.safetensors"), RN_FORMAT_SEED, "seed values file");
    if (m2) check_params(seed, m2, RN_DTYPE_F32, "seed values file");
    rn_model_free(m2);
    /* targets refused */
    CHECK(rn_model_save_as(ts, tp("x"), RN_FORMAT_FLA, RN_DTYPE_F32) == RN_ERR_ARG && strstr(rn_last_error(), "fla"),
          "torchscale model written as fla: %s", rn_last_error());
    CHECK(rn_model_save_as(seed, tp("x"), RN_FORMAT_TORCHSCALE, RN_DTYPE_F32) == RN_ERR_ARG, "seed written as torchscale");
    CHECK(rn_model_save_values(seed, rn_model_params(seed), tp("x"), RN_FORMAT_FLA, RN_DTYPE_F32) == RN_ERR_ARG,
          "seed values written as fla");
    CHECK(rn_model_save_as(ts, tp("x"), (rn_format)17, RN_DTYPE_F32) == RN_ERR_ARG, "format 17 accepted");
    CHECK(rn_model_save_as(ts, tp("x"), RN_FORMAT_RETNET, (rn_dtype)9) == RN_ERR_ARG, "dtype 9 accepted");
    CHECK(rn_model_save_as(ts, tp("no/such/dir"), RN_FORMAT_TORCHSCALE, RN_DTYPE_F32) == RN_ERR_IO &&
          strstr(rn_last_error(), "no/such/dir"), "directory in a missing one: %s", rn_last_error());
    rn_model_free(ts);
    rn_model_free(seed);
}

static void names(void) {
    for (int f = 0; f < 5; f++) {
        rn_format g = (rn_format)-1;
        CHECK(rn_format_from_name(rn_format_name((rn_format)f), &g) == RN_OK && g == (rn_format)f, "format %d name", f);
    }
    for (int d = 0; d < 4; d++) {
        rn_dtype g = (rn_dtype)-1;
        CHECK(rn_dtype_from_name(rn_dtype_name((rn_dtype)d), &g) == RN_OK && g == (rn_dtype)d, "dtype %d name", d);
    }
    rn_format f;
    rn_dtype d;
    CHECK(rn_format_from_name("onnx", &f) == RN_ERR_ARG && strstr(rn_last_error(), "onnx"), "format onnx accepted");
    CHECK(rn_dtype_from_name("f8", &d) == RN_ERR_ARG, "dtype f8 accepted");
}

/* F16 at its edges: the largest finite value, ties, subnormals, signed
 * zero round as the compiler's _Float16 does; a value beyond the range is
 * refused naming its tensor, and no file is made. */
static void f16_edges(void) {
    rn_model *m = model(RN_PRESET_TORCHSCALE, 0, 4);
    rn_real *w = rn_model_params(m);
    const double v[] = {65504, 65519.99, -65519.99, 65505, 1.0 / (1 << 24), 1.0 / (1 << 25), 3.0 / (1 << 25),
                        1.5 / (1 << 24), 1e-8, -0.0, 0.1, 1.0 + 1.0 / 2048, 1.0 + 3.0 / 2048, 6.1e-5, 6.103515625e-05};
    int nv = (int)(sizeof v / sizeof *v);
    for (int i = 0; i < nv; i++) w[i] = (rn_real)v[i];
    const char *path = tp("f16-edges.safetensors");
    CHECK_OK(rn_model_save_as(m, path, RN_FORMAT_RETNET, RN_DTYPE_F16));
    rn_model *m2 = load_as(path, RN_FORMAT_RETNET, "f16 edges");
    if (m2) {
        check_params(m, m2, RN_DTYPE_F16, "f16 edges");
        const rn_real *y = rn_model_params(m2);
        CHECK(y[0] == 65504 && y[1] == 65504 && y[2] == -65504 && y[4] == (rn_real)(1.0 / (1 << 24)) && y[5] == 0 &&
              y[6] == (rn_real)(1.0 / (1 << 23)) && signbit(y[9]) && y[11] == 1 && y[12] == (rn_real)(1.0 + 4.0 / 2048),
              "f16 edges: known roundings");
        rn_model_free(m2);
    }
    w[7] = (rn_real)65520;
    const char *big = tp("f16-big.safetensors");
    rn_status st = rn_model_save_as(m, big, RN_FORMAT_RETNET, RN_DTYPE_F16);
    CHECK(st == RN_ERR_ARG && strstr(rn_last_error(), "embed") && strstr(rn_last_error(), "65504"),
          "f16 overflow: status %s, message '%s'", rn_status_name(st), rn_last_error());
    CHECK(access(big, F_OK) != 0, "f16 overflow: a file was written");
    rn_model_free(m);
}

/* Models read in place (docs: "Loading"): float32 files in our layout are
 * used where they are mapped; what rn_model_inspect says of a file matches
 * what a load does; logits of a model read in place equal those of its
 * copy, bit for bit; training and rn_model_params get a writable copy. */
static void in_place(void) {
    for (int p = 0; p < RN_PRESET_COUNT; p++) {
        rn_model *a = make_model((rn_preset)p, 32, 2, 64, 2, 41, 7);
        const char *f32 = tp("inplace-%d.safetensors", p), *bf = tp("inplace-%d-bf16.safetensors", p);
        CHECK(rn_model_save(a, f32) == RN_OK, "in place: save: %s", rn_last_error());
        CHECK(rn_model_save_as(a, bf, RN_FORMAT_RETNET, RN_DTYPE_BF16) == RN_OK, "in place: save bf16: %s", rn_last_error());
        rn_model_info info, ib;
        CHECK(rn_model_inspect(f32, &info) == RN_OK, "inspect: %s", rn_last_error());
        CHECK(rn_model_inspect(bf, &ib) == RN_OK, "inspect bf16: %s", rn_last_error());
        size_t np = rn_model_num_params(a), fsize;
        free(contents(f32, &fsize));
        /* The seed stores its projections transposed, per head: never in place. */
        int want = PRECISION[5] == '3' && p != RN_PRESET_SEED;  /* "float32" */
        CHECK(info.in_place == want, "%s: inspect says in place %d, want %d", rn_preset_name((rn_preset)p), info.in_place, want);
        CHECK(ib.in_place == 0, "%s: a bf16 file read in place", rn_preset_name((rn_preset)p));
        CHECK(info.format == RN_FORMAT_RETNET && info.n_files == 1 && info.file_bytes == fsize,
              "inspect: format %s, %d files, %zu bytes (file %zu)", rn_format_name(info.format), info.n_files, info.file_bytes, fsize);
        CHECK(same_config(&info.config, rn_model_config(a)), "inspect: another config");
        CHECK(ib.tensor_bytes[RN_DTYPE_BF16] >= 2 * np && ib.tensor_bytes[RN_DTYPE_F32] == 0,
              "inspect bf16: %zu bf16 bytes for %zu parameters", ib.tensor_bytes[RN_DTYPE_BF16], np);
        size_t V = 41, d = 32;
        /* every weight once as held (rn_real), one row of the embedding */
        size_t want_decode = sizeof(rn_real) * (np - (V - 1) * d);
        CHECK(info.decode_bytes == want_decode, "inspect: %zu bytes per token, want %zu", info.decode_bytes, want_decode);
        rn_model *b = NULL, *c = NULL;
        CHECK(rn_model_load(f32, &b) == RN_OK && rn_model_load(f32, &c) == RN_OK, "in place: load: %s", rn_last_error());
        if (!b || !c) { rn_model_free(a); rn_model_free(b); rn_model_free(c); continue; }
        rn_real *pc = rn_model_params(c);  /* c gets a copy of its own */
        CHECK(pc != NULL, "rn_model_params of a model read in place: %s", rn_last_error());
        int32_t tok[9] = {1, 5, 9, 40, 0, 3, 3, 17, 2};
        rn_real *lb = malloc(sizeof(rn_real) * 9 * V), *lc = malloc(sizeof(rn_real) * 9 * V);
        rn_state *sb, *sc;
        rn_state_create(b, 1, &sb);
        rn_state_create(c, 1, &sc);
        CHECK(rn_forward(b, sb, tok, 1, 9, RN_CHUNKWISE, 4, 0, lb) == RN_OK && rn_forward(c, sc, tok, 1, 9, RN_CHUNKWISE, 4, 0, lc) == RN_OK,
              "in place: forward: %s", rn_last_error());
        CHECK(memcmp(lb, lc, sizeof(rn_real) * 9 * V) == 0, "%s: logits read in place differ from the copy's", rn_preset_name((rn_preset)p));
        check_params(a, b, RN_DTYPE_F32, "in place");
        /* Saving a model read in place writes the same bytes. */
        const char *again = tp("inplace-%d-again.safetensors", p);
        rn_model *d2 = NULL;
        CHECK(rn_model_load(f32, &d2) == RN_OK && rn_model_save(d2, again) == RN_OK, "in place: save again: %s", rn_last_error());
        size_t n1, n2;
        char *x1 = contents(f32, &n1), *x2 = contents(again, &n2);
        CHECK(n1 == n2 && memcmp(x1, x2, n1) == 0, "%s: a model read in place saved differently", rn_preset_name((rn_preset)p));
        free(x1); free(x2);
        /* Training takes a writable copy, and the file stays as it was. */
        rn_train_config tc;
        rn_train_config_default(&tc);
        tc.batch = 1; tc.seq = 8; tc.steps = 2; tc.warmup = 0;
        rn_trainer *t = NULL;
        rn_step_info si;
        int32_t y[8] = {5, 9, 40, 0, 3, 3, 17, 2};
        CHECK(rn_trainer_create(d2, &tc, &t) == RN_OK && rn_trainer_step(t, tok, y, &si) == RN_OK,
              "training a model read in place: %s", rn_last_error());
        rn_model *e = NULL;
        CHECK(rn_model_load(f32, &e) == RN_OK, "reload after training: %s", rn_last_error());
        if (e) check_params(a, e, RN_DTYPE_F32, "file after training a model read from it");
        rn_trainer_free(t);
        rn_state_free(sb); rn_state_free(sc);
        free(lb); free(lc);
        rn_model_free(a); rn_model_free(b); rn_model_free(c); rn_model_free(d2); rn_model_free(e);
    }
    /* Bad input to inspect: one line, an error code. */
    CHECK(rn_model_inspect(tp("no-such-file.safetensors"), &(rn_model_info){0}) == RN_ERR_IO, "inspect of a missing file");
    CHECK(rn_model_verify(tp("no-such-file.safetensors")) == RN_ERR_IO, "verify of a missing file");
}

int main(void) {
    rn_set_threads(1);
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/retnet_test_formats.XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 1; }
    printf("test_formats (%s), files under %s\n", PRECISION, tmpdir);
    names();
    f16_edges();
    round_trips(RN_PRESET_TORCHSCALE, 0, "ts");
    round_trips(RN_PRESET_TORCHSCALE, 1, "ts-tied");
    round_trips(RN_PRESET_SEED, 0, "seed");
    round_trips(RN_PRESET_FLA, 0, "fla");
    round_trips(RN_PRESET_FLA, 1, "fla-tied");
    variants();
    shards();
    configs();
    seed_shapes();
    values_and_targets();
    in_place();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (!getenv("KEEP") && system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", tmpdir);
    CHECK_DONE();
}
