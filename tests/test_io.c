/* test_io.c: model files (safetensors) and .npy output.
 * - Round trips are bit-exact for every preset (torchscale with and without
 *   tied embeddings, seed with and without double_v_dim, fla), every file
 *   tensor maps to the right block of the internal layout (transposes
 *   included), and save(load(save(x))) is byte-identical.
 * - The header carries the upstream config keys and the preset's buffers.
 * - F16, BF16 and F64 tensors load as the rounded originals; BF16 / F16
 *   projections are kept as stored (in place or copied), the rest widened,
 *   and compute the widened model's logits to float32 rounding.
 * - Every malformed file we can think of is refused with RN_ERR_FORMAT or
 *   RN_ERR_IO and a one-line message naming the tensor involved, never a
 *   crash (run it under `make asan` too), and absurd configs are refused
 *   before anything is allocated.
 * - rn_npy_save writes a valid .npy. */
#define _POSIX_C_SOURCE 200809L
#include "check.h"
#include "same_config.h"
#include "model.h"
#include "safetensors.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------ files */

static char tmpdir[256];

/* A path in the temporary directory (a ring of buffers, so a few can be
 * used at once). */
static const char *tp(const char *name) {
    static char buf[8][512];
    static int k;
    char *b = buf[k++ & 7];
    snprintf(b, 512, "%s/%s", tmpdir, name);
    return b;
}

typedef struct { unsigned char *p; size_t n; } blob;

static blob slurp(const char *path) {
    blob b = {NULL, 0};
    FILE *f = fopen(path, "rb");
    if (!f) { fprintf(stderr, "cannot open %s: %s\n", path, strerror(errno)); exit(1); }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    b.n = (size_t)n;
    b.p = malloc(b.n + 1);
    if (!b.p || fread(b.p, 1, b.n, f) != b.n) { fprintf(stderr, "cannot read %s\n", path); exit(1); }
    fclose(f);
    return b;
}

static void spit(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(p, 1, n, f) != n) || fclose(f) != 0) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(1);
    }
}

static int same_file(const char *a, const char *b) {
    blob x = slurp(a), y = slurp(b);
    int same = x.n == y.n && memcmp(x.p, y.p, x.n) == 0;
    free(x.p); free(y.p);
    return same;
}

static void put_u64(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

/* Writes an 8-byte header length, the header bytes and the data. */
static void write_raw(const char *path, uint64_t hlen, const char *header, size_t header_bytes,
                      const void *data, size_t dlen) {
    unsigned char *buf = malloc(8 + header_bytes + dlen + 1);
    put_u64(buf, hlen);
    memcpy(buf + 8, header, header_bytes);
    if (dlen) memcpy(buf + 8 + header_bytes, data, dlen);
    spit(path, buf, 8 + header_bytes + dlen);
    free(buf);
}

/* ------------------------------------------- a parsed safetensors file */

typedef struct {
    cJSON *hdr;
    unsigned char *data;
    size_t dlen, hlen;
} stf;

static stf st_read(const char *path) {
    stf f = {0};
    blob b = slurp(path);
    if (b.n < 8) { fprintf(stderr, "%s: too short\n", path); exit(1); }
    for (int i = 7; i >= 0; i--) f.hlen = (f.hlen << 8) | b.p[i];
    if (f.hlen > b.n - 8) { fprintf(stderr, "%s: bad header length\n", path); exit(1); }
    f.hdr = cJSON_ParseWithLength((const char *)b.p + 8, f.hlen);
    if (!f.hdr) { fprintf(stderr, "%s: header is not JSON\n", path); exit(1); }
    f.dlen = b.n - 8 - f.hlen;
    f.data = malloc(f.dlen + 1);
    memcpy(f.data, b.p + 8 + f.hlen, f.dlen);
    free(b.p);
    return f;
}

static void st_free(stf *f) {
    cJSON_Delete(f->hdr);
    free(f->data);
    memset(f, 0, sizeof *f);
}

/* The checksum of the data section, as the writer stores it in
 * __metadata__.checksum_xxh3 (hex). */
static void checksum_hex(const unsigned char *p, size_t n, char out[17]) {
    snprintf(out, 17, "%016llx", (unsigned long long)rni_st_data_hash(p, n));
}

static int stale_checksum;  /* keep the stored checksum when the data changed */

/* Writes the header (padded with spaces to a multiple of 8) and data; a
 * stored checksum is brought up to date, so that each mutation tests only
 * the fault it makes. */
static void st_write(const char *path, const stf *f) {
    cJSON *md = cJSON_GetObjectItemCaseSensitive(f->hdr, "__metadata__");
    if (!stale_checksum && cJSON_IsObject(md) && cJSON_IsString(cJSON_GetObjectItem(md, "checksum_xxh3"))) {
        char sum[17];
        checksum_hex(f->data, f->dlen, sum);
        cJSON_ReplaceItemInObjectCaseSensitive(md, "checksum_xxh3", cJSON_CreateString(sum));
    }
    char *js = cJSON_PrintUnformatted(f->hdr);
    size_t jl = strlen(js), padded = (jl + 7) & ~(size_t)7;
    char *h = malloc(padded + 1);
    memcpy(h, js, jl);
    memset(h + jl, ' ', padded - jl);
    write_raw(path, padded, h, padded, f->data, f->dlen);
    free(h);
    free(js);
}

static cJSON *tensor(const stf *f, const char *name) {
    cJSON *t = cJSON_GetObjectItemCaseSensitive(f->hdr, name);
    if (!t) { fprintf(stderr, "test bug: no tensor %s in the file\n", name); exit(1); }
    return t;
}

static size_t t_begin(cJSON *t) { return (size_t)cJSON_GetArrayItem(cJSON_GetObjectItem(t, "data_offsets"), 0)->valuedouble; }
static size_t t_end(cJSON *t) { return (size_t)cJSON_GetArrayItem(cJSON_GetObjectItem(t, "data_offsets"), 1)->valuedouble; }

static void set_item(cJSON *o, const char *key, cJSON *v) {
    if (!v) { cJSON_DeleteItemFromObjectCaseSensitive(o, key); return; }
    if (cJSON_GetObjectItemCaseSensitive(o, key)) cJSON_ReplaceItemInObjectCaseSensitive(o, key, v);
    else cJSON_AddItemToObject(o, key, v);
}

static void set_offsets(cJSON *t, double b, double e) {
    cJSON *of = cJSON_CreateArray();
    cJSON_AddItemToArray(of, cJSON_CreateNumber(b));
    cJSON_AddItemToArray(of, cJSON_CreateNumber(e));
    set_item(t, "data_offsets", of);
}

static void set_shape(cJSON *t, int n, const double *dims) {
    cJSON *sh = cJSON_CreateArray();
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(sh, cJSON_CreateNumber(dims[i]));
    set_item(t, "shape", sh);
}

static float get_f32(const stf *f, const char *name, size_t i) {
    float v;
    memcpy(&v, f->data + t_begin(tensor(f, name)) + 4 * i, 4);
    return v;
}

static void poke_f32(stf *f, const char *name, size_t i, float v) {
    memcpy(f->data + t_begin(tensor(f, name)) + 4 * i, &v, 4);
}

/* The config stored in __metadata__.retnet, parsed (caller deletes). */
static cJSON *get_meta(const stf *f) {
    cJSON *md = cJSON_GetObjectItemCaseSensitive(f->hdr, "__metadata__");
    cJSON *r = md ? cJSON_GetObjectItemCaseSensitive(md, "retnet") : NULL;
    return cJSON_IsString(r) ? cJSON_Parse(r->valuestring) : NULL;
}

static void put_meta_str(stf *f, const char *json) {
    cJSON *md = cJSON_GetObjectItemCaseSensitive(f->hdr, "__metadata__");
    set_item(md, "retnet", cJSON_CreateString(json));
}

/* Sets (or with v NULL deletes) one key of the stored config. */
static void set_meta(stf *f, const char *key, cJSON *v) {
    cJSON *c = get_meta(f);
    set_item(c, key, v);
    char *s = cJSON_PrintUnformatted(c);
    put_meta_str(f, s);
    free(s);
    cJSON_Delete(c);
}

/* ------------------------------------------------- half precision */

static uint16_t f32_to_f16(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return sign | 0x7e00;          /* NaN */
    if (a >= 0x477ff000u) return sign | 0x7c00;         /* rounds to >= 65520: inf */
    if (a < 0x38800000u) {                              /* below 2^-14: subnormal */
        float v;
        memcpy(&v, &a, 4);
        return sign | (uint16_t)nearbyintf(v * 16777216.0f);  /* exact scaling, RNE */
    }
    uint32_t h = ((a >> 23) - 112) << 10 | ((a >> 13) & 0x3ff), rem = a & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++;
    return sign | (uint16_t)h;
}

static double f16_value(uint16_t h) {
    int e = (h >> 10) & 31, m = h & 1023;
    double v = e == 0 ? ldexp(m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexp(1024 + m, e - 25);
    return (h & 0x8000) ? -v : v;
}

static uint16_t f32_to_bf16(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

static double bf16_value(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Rewrites the data section with the named tensors (all when names is
 * NULL) converted from F32 to dtype (F16, BF16 or F64), repacked. */
static void convert(stf *f, const char *const *names, const char *dtype) {
    size_t esize = strcmp(dtype, "F64") == 0 ? 8 : 2;
    unsigned char *nd = malloc(f->dlen * 2 + 1);
    size_t off = 0;
    for (cJSON *t = f->hdr->child; t; t = t->next) {
        if (strcmp(t->string, "__metadata__") == 0) continue;
        int conv = names == NULL;
        for (int i = 0; names && names[i]; i++) conv |= strcmp(names[i], t->string) == 0;
        size_t b = t_begin(t), e = t_end(t), n = (e - b) / 4;
        if (!conv) {
            memcpy(nd + off, f->data + b, e - b);
            set_offsets(t, (double)off, (double)(off + e - b));
            off += e - b;
            continue;
        }
        for (size_t i = 0; i < n; i++) {
            float x;
            memcpy(&x, f->data + b + 4 * i, 4);
            if (esize == 8) { double d = x; memcpy(nd + off + 8 * i, &d, 8); continue; }
            uint16_t h = strcmp(dtype, "F16") == 0 ? f32_to_f16(x) : f32_to_bf16(x);
            memcpy(nd + off + 2 * i, &h, 2);
        }
        set_item(t, "dtype", cJSON_CreateString(dtype));
        set_offsets(t, (double)off, (double)(off + n * esize));
        off += n * esize;
    }
    free(f->data);
    f->data = nd;
    f->dlen = off;
}

/* ---------------------------------------------------------- models */

static rn_config config(rn_preset p, int d, int H, int Vd, int F, int L, int V) {
    rn_config c;
    memset(&c, 0, sizeof c);
    rn_config_preset(&c, p, NULL);
    c.dim = d; c.heads = H; c.value_dim = Vd; c.ffn_dim = F; c.layers = L; c.vocab = V;
    return c;
}

/* A model with every parameter random (norm weights and biases too, so
 * that a swapped or transposed tensor cannot go unnoticed). */
static rn_model *random_model(const rn_config *c, uint64_t seed) {
    rn_model *m = NULL;
    rn_status st = rn_model_create(c, &m);
    if (st != RN_OK) { fprintf(stderr, "rn_model_create: %s\n", rn_last_error()); exit(1); }
    rn_model_init_random(m, seed);
    rn_rng r;
    rn_rng_seed(&r, seed * 31 + 7);
    rn_real *p = rn_model_params(m);
    for (size_t i = 0; i < rn_model_num_params(m); i++) p[i] = (rn_real)(0.5 * rn_rng_normal(&r));
    return m;
}

/* Loaded parameters equal the originals rounded to float32 (the file
 * type), bit for bit. */
static void check_params_equal(rn_model *orig, rn_model *got, const char *what) {
    size_t n = rn_model_num_params(orig), bad = 0, first = 0;
    CHECK(rn_model_num_params(got) == n, "%s: %zu parameters, expected %zu", what, rn_model_num_params(got), n);
    if (rn_model_num_params(got) != n) return;
    const rn_real *a = rn_model_params(orig), *b = rn_model_params(got);
    for (size_t i = 0; i < n; i++) {
        rn_real want = (rn_real)(float)a[i];
        if (memcmp(&want, &b[i], sizeof want) != 0) { if (!bad) first = i; bad++; }
    }
    CHECK(bad == 0, "%s: %zu of %zu parameters differ (first at %zu: %.9g vs %.9g)", what, bad, n, first,
          (double)a[first], (double)b[first]);
}

/* File tensor name: shape [R, C] (C = 0 for a vector) holds the internal
 * block src, row-major [R, C], or its transpose (internal [C, R]). */
static void check_block(const stf *f, const char *name, const rn_real *src, int R, int C, int transposed) {
    cJSON *t = cJSON_GetObjectItemCaseSensitive(f->hdr, name);
    CHECK(t != NULL, "tensor '%s' missing from the file", name);
    if (!t) return;
    cJSON *sh = cJSON_GetObjectItem(t, "shape"), *dt = cJSON_GetObjectItem(t, "dtype");
    int nd = C ? 2 : 1;
    CHECK(cJSON_IsString(dt) && strcmp(dt->valuestring, "F32") == 0, "'%s' is not F32", name);
    int shape_ok = cJSON_GetArraySize(sh) == nd && cJSON_GetArrayItem(sh, 0)->valuedouble == R &&
                   (nd == 1 || cJSON_GetArrayItem(sh, 1)->valuedouble == C);
    CHECK(shape_ok, "'%s' has the wrong shape (want [%d, %d])", name, R, C);
    CHECK(t_end(t) - t_begin(t) == (size_t)R * (C ? C : 1) * 4, "'%s' has the wrong size", name);
    if (!shape_ok) return;
    size_t bad = 0, cols = C ? (size_t)C : 1;
    for (size_t r = 0; r < (size_t)R; r++)
        for (size_t c = 0; c < cols; c++) {
            float want = (float)(transposed ? src[c * R + r] : src[r * cols + c]);
            if (get_f32(f, name, r * cols + c) != want) bad++;
        }
    CHECK(bad == 0, "'%s': %zu values are not where the layout says", name, bad);
}

/* Every tensor of the preset's state dict maps to the right internal
 * block (the names and layouts of src/presets/). */
static void check_layout(rn_model *m, const stf *f) {
    const rn_config *c = rn_model_config(m);
    int d = c->dim, Vd = c->value_dim, F = c->ffn_dim, V = c->vocab, H = c->heads, K = d / H, Dv = Vd / H;
    const rn_weights *w = &m->w;
    char n[160];
    int count = 0;  /* tensors named by the spec, checked below */
    if (c->preset == RN_PRESET_TORCHSCALE) {
        check_block(f, "embed_tokens.weight", w->embed, V, d, 0); count++;
        if (c->embed_norm) { check_block(f, "layernorm_embedding.weight", w->embed_norm_w, d, 0, 0); count++; }
        for (int i = 0; i < c->layers; i++) {
            const rn_layer_w *l = &w->layer[i];
            static const char *qkvg[] = {"q", "k", "v", "g"};
            size_t row0[] = {0, (size_t)d, 2 * (size_t)d, 2 * (size_t)d + Vd};
            for (int j = 0; j < 4; j++) {
                snprintf(n, sizeof n, "layers.%d.retention.%s_proj.weight", i, qkvg[j]);
                check_block(f, n, l->wqkvg + row0[j] * d, j < 2 ? d : Vd, d, 0); count++;
            }
            snprintf(n, sizeof n, "layers.%d.retention.out_proj.weight", i); check_block(f, n, l->wo, d, Vd, 0);
            snprintf(n, sizeof n, "layers.%d.retention_layer_norm.weight", i); check_block(f, n, l->norm1_w, d, 0, 0);
            snprintf(n, sizeof n, "layers.%d.final_layer_norm.weight", i); check_block(f, n, l->norm2_w, d, 0, 0);
            snprintf(n, sizeof n, "layers.%d.ffn.fc1.weight", i); check_block(f, n, l->fc1, F, d, 0);
            snprintf(n, sizeof n, "layers.%d.ffn.gate.weight", i); check_block(f, n, l->fc1 + (size_t)F * d, F, d, 0);
            snprintf(n, sizeof n, "layers.%d.ffn.fc2.weight", i); check_block(f, n, l->fc2, d, F, 0);
            count += 6;
        }
        check_block(f, "layer_norm.weight", w->final_w, d, 0, 0); count++;
        if (c->tie_embed)
            CHECK(!cJSON_GetObjectItem(f->hdr, "output_projection.weight"), "tied model writes output_projection.weight");
        else { check_block(f, "output_projection.weight", w->head, V, d, 0); count++; }
        count += 2;  /* retnet_rel_pos.angle, .decay */
    } else if (c->preset == RN_PRESET_SEED) {
        check_block(f, "embed.weight", w->embed, V, d, 0);
        check_block(f, "proj", w->head, d, V, 1);
        count += 2;
        for (int i = 0; i < c->layers; i++) {
            const rn_layer_w *l = &w->layer[i];
            const char *p = "retnet.retentions";
            for (int h = 0; h < H; h++) {
                snprintf(n, sizeof n, "%s.%d.retentions.%d.W_Q", p, i, h);
                check_block(f, n, l->wqkvg + (size_t)h * K * d, d, K, 1);
                snprintf(n, sizeof n, "%s.%d.retentions.%d.W_K", p, i, h);
                check_block(f, n, l->wqkvg + ((size_t)d + h * K) * d, d, K, 1);
                snprintf(n, sizeof n, "%s.%d.retentions.%d.W_V", p, i, h);
                check_block(f, n, l->wqkvg + (2 * (size_t)d + h * Dv) * d, d, Dv, 1);
                count += 4;  /* with xpos.scale */
            }
            snprintf(n, sizeof n, "%s.%d.W_G", p, i); check_block(f, n, l->wqkvg + (2 * (size_t)d + Vd) * d, d, Vd, 1);
            snprintf(n, sizeof n, "%s.%d.W_O", p, i); check_block(f, n, l->wo, Vd, d, 1);
            snprintf(n, sizeof n, "%s.%d.group_norm.weight", p, i); check_block(f, n, l->hn_w, Vd, 0, 0);
            snprintf(n, sizeof n, "%s.%d.group_norm.bias", p, i); check_block(f, n, l->hn_b, Vd, 0, 0);
            snprintf(n, sizeof n, "retnet.ffns.%d.0.weight", i); check_block(f, n, l->fc1, F, d, 0);
            snprintf(n, sizeof n, "retnet.ffns.%d.0.bias", i); check_block(f, n, l->fc1_b, F, 0, 0);
            snprintf(n, sizeof n, "retnet.ffns.%d.2.weight", i); check_block(f, n, l->fc2, d, F, 0);
            snprintf(n, sizeof n, "retnet.ffns.%d.2.bias", i); check_block(f, n, l->fc2_b, d, 0, 0);
            snprintf(n, sizeof n, "retnet.layer_norms_1.%d.weight", i); check_block(f, n, l->norm1_w, d, 0, 0);
            snprintf(n, sizeof n, "retnet.layer_norms_1.%d.bias", i); check_block(f, n, l->norm1_b, d, 0, 0);
            snprintf(n, sizeof n, "retnet.layer_norms_2.%d.weight", i); check_block(f, n, l->norm2_w, d, 0, 0);
            snprintf(n, sizeof n, "retnet.layer_norms_2.%d.bias", i); check_block(f, n, l->norm2_b, d, 0, 0);
            count += 12;
        }
    } else {
        check_block(f, "model.embeddings.weight", w->embed, V, d, 0); count++;
        for (int i = 0; i < c->layers; i++) {
            const rn_layer_w *l = &w->layer[i];
            const char *p = "model.layers";
            static const char *qkvg[] = {"q", "k", "v", "g"};
            size_t row0[] = {0, (size_t)d, 2 * (size_t)d, 2 * (size_t)d + Vd};
            for (int j = 0; j < 4; j++) {
                snprintf(n, sizeof n, "%s.%d.attn.%s_proj.weight", p, i, qkvg[j]);
                check_block(f, n, l->wqkvg + row0[j] * d, j < 2 ? d : Vd, d, 0);
            }
            snprintf(n, sizeof n, "%s.%d.attn_norm.weight", p, i); check_block(f, n, l->norm1_w, d, 0, 0);
            snprintf(n, sizeof n, "%s.%d.attn.o_proj.weight", p, i); check_block(f, n, l->wo, d, Vd, 0);
            snprintf(n, sizeof n, "%s.%d.attn.g_norm_swish_gate.weight", p, i); check_block(f, n, l->hn_w, Dv, 0, 0);
            snprintf(n, sizeof n, "%s.%d.mlp_norm.weight", p, i); check_block(f, n, l->norm2_w, d, 0, 0);
            snprintf(n, sizeof n, "%s.%d.mlp.gate_proj.weight", p, i); check_block(f, n, l->fc1, F, d, 0);
            snprintf(n, sizeof n, "%s.%d.mlp.up_proj.weight", p, i); check_block(f, n, l->fc1 + (size_t)F * d, F, d, 0);
            snprintf(n, sizeof n, "%s.%d.mlp.down_proj.weight", p, i); check_block(f, n, l->fc2, d, F, 0);
            count += 11;
        }
        check_block(f, "model.norm.weight", w->final_w, d, 0, 0); count++;
        if (c->tie_embed) CHECK(!cJSON_GetObjectItem(f->hdr, "lm_head.weight"), "tied model writes lm_head.weight");
        else { check_block(f, "lm_head.weight", w->head, V, d, 0); count++; }
    }
    /* ... and nothing else. */
    int n_file = 0;
    for (cJSON *t = f->hdr->child; t; t = t->next) n_file += strcmp(t->string, "__metadata__") != 0;
    CHECK(n_file == count, "%s: the file holds %d tensors, the spec names %d", rn_preset_name(c->preset), n_file, count);
}

/* Header structure: length a multiple of 8, all tensors F32, packed in
 * order without gaps, covering the data section exactly. */
static void check_header_structure(const stf *f, const char *what) {
    CHECK(f->hlen % 8 == 0, "%s: header length %zu is not a multiple of 8", what, f->hlen);
    size_t off = 0;
    int ok = 1;
    for (cJSON *t = f->hdr->child; t; t = t->next) {
        if (strcmp(t->string, "__metadata__") == 0) continue;
        cJSON *dt = cJSON_GetObjectItem(t, "dtype"), *sh = cJSON_GetObjectItem(t, "shape");
        size_t n = 1;
        for (int i = 0; i < cJSON_GetArraySize(sh); i++) n *= (size_t)cJSON_GetArrayItem(sh, i)->valuedouble;
        if (!cJSON_IsString(dt) || strcmp(dt->valuestring, "F32") != 0 || t_begin(t) != off || t_end(t) != off + 4 * n) {
            ok = 0;
            fprintf(stderr, "  bad header entry %s\n", t->string);
        }
        off += 4 * n;
    }
    CHECK(ok && off == f->dlen, "%s: tensors are not packed F32 covering the %zu data bytes", what, f->dlen);
    cJSON *md = cJSON_GetObjectItemCaseSensitive(f->hdr, "__metadata__");
    cJSON *fmt = md ? cJSON_GetObjectItemCaseSensitive(md, "format") : NULL;
    CHECK(cJSON_IsString(fmt) && strcmp(fmt->valuestring, "pt") == 0, "%s: __metadata__.format is not \"pt\"", what);
}

static int meta_num(cJSON *c, const char *key, double want) {
    cJSON *v = cJSON_GetObjectItemCaseSensitive(c, key);
    int ok = cJSON_IsNumber(v) && v->valuedouble == want;
    CHECK(ok, "metadata key '%s' missing or not %g", key, want);
    return ok;
}

static int meta_bool(cJSON *c, const char *key, int want) {
    cJSON *v = cJSON_GetObjectItemCaseSensitive(c, key);
    int ok = cJSON_IsBool(v) && cJSON_IsTrue(v) == want;
    CHECK(ok, "metadata key '%s' missing or not %s", key, want ? "true" : "false");
    return ok;
}

/* The upstream config keys and the preset's constant buffers. */
static void check_metadata(const rn_config *c, const stf *f) {
    cJSON *m = get_meta(f);
    CHECK(m != NULL, "no __metadata__.retnet JSON string");
    if (!m) return;
    cJSON *p = cJSON_GetObjectItemCaseSensitive(m, "preset");
    CHECK(cJSON_IsString(p) && strcmp(p->valuestring, rn_preset_name(c->preset)) == 0, "metadata preset is not %s",
          rn_preset_name(c->preset));
    int K = c->dim / c->heads;
    if (c->preset == RN_PRESET_TORCHSCALE) {
        meta_num(m, "decoder_embed_dim", c->dim);
        meta_num(m, "decoder_value_embed_dim", c->value_dim);
        meta_num(m, "decoder_retention_heads", c->heads);
        meta_num(m, "decoder_ffn_embed_dim", c->ffn_dim);
        meta_num(m, "decoder_layers", c->layers);
        meta_num(m, "vocab_size", c->vocab);
        meta_num(m, "layernorm_eps", c->norm_eps);
        meta_bool(m, "share_decoder_input_output_embed", c->tie_embed);
        meta_bool(m, "no_scale_embedding", !c->scale_embed);
        meta_bool(m, "layernorm_embedding", c->embed_norm);
        cJSON *act = cJSON_GetObjectItemCaseSensitive(m, "activation_fn");
        CHECK(cJSON_IsString(act) && strcmp(act->valuestring, c->act == RN_ACT_GELU ? "gelu" : "swish") == 0,
              "metadata activation_fn");
        /* Buffers: angle [K] (each of K/2 angles twice), decay [H]. */
        cJSON *a = tensor(f, "retnet_rel_pos.angle"), *d = tensor(f, "retnet_rel_pos.decay");
        CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(a, "shape")) == 1 &&
              cJSON_GetArrayItem(cJSON_GetObjectItem(a, "shape"), 0)->valuedouble == K, "angle shape");
        CHECK(cJSON_GetArrayItem(cJSON_GetObjectItem(d, "shape"), 0)->valuedouble == c->heads, "decay shape");
        double worst = 0;
        for (int j = 0; j < K; j++) {
            int half = K / 2;
            double want = half == 1 ? 1.0 : 1.0 / pow(10000.0, (double)(j / 2) / (half - 1));
            worst = fmax(worst, fabs(get_f32(f, "retnet_rel_pos.angle", j) - want) / want);
        }
        for (int h = 0; h < c->heads; h++) {
            double want = log(1 - pow(2.0, -5.0 - h));
            worst = fmax(worst, fabs(get_f32(f, "retnet_rel_pos.decay", h) - want) / fabs(want));
        }
        CHECK(worst < 1e-6, "torchscale buffers differ from the spec by %.3g (relative)", worst);
    } else if (c->preset == RN_PRESET_SEED) {
        meta_num(m, "hidden_dim", c->dim);
        meta_num(m, "heads", c->heads);
        meta_num(m, "layers", c->layers);
        meta_num(m, "ffn_size", c->ffn_dim);
        meta_num(m, "vocab_size", c->vocab);
        meta_bool(m, "double_v_dim", c->value_dim == 2 * c->dim);
        double worst = 0;
        char n[160];
        for (int i = 0; i < c->layers; i++)
            for (int h = 0; h < c->heads; h++) {
                snprintf(n, sizeof n, "retnet.retentions.%d.retentions.%d.xpos.scale", i, h);
                cJSON *t = tensor(f, n);
                CHECK(cJSON_GetArrayItem(cJSON_GetObjectItem(t, "shape"), 0)->valuedouble == K / 2, "%s shape", n);
                for (int j = 0; j < K / 2; j++) {
                    double want = (2.0 * j + 0.4 * K) / (1.4 * K);
                    worst = fmax(worst, fabs(get_f32(f, n, j) - want) / want);
                }
            }
        CHECK(worst < 1e-6, "seed xpos.scale buffers differ from the spec by %.3g", worst);
    } else {
        meta_num(m, "hidden_size", c->dim);
        meta_num(m, "num_heads", c->heads);
        meta_num(m, "num_hidden_layers", c->layers);
        meta_num(m, "expand_k", 1);
        meta_num(m, "expand_v", (double)c->value_dim / c->dim);
        meta_num(m, "intermediate_size", c->ffn_dim);
        meta_num(m, "norm_eps", c->norm_eps);
        meta_num(m, "vocab_size", c->vocab);
        meta_bool(m, "tie_word_embeddings", c->tie_embed);
    }
    cJSON_Delete(m);
}

/* ------------------------------------------------------ round trips */

static void round_trip(const rn_config *c, const char *what) {
    rn_model *m = random_model(c, 11);
    const char *p1 = tp("rt1.safetensors"), *p2 = tp("rt2.safetensors");
    CHECK_OK(rn_model_save(m, p1));
    rn_model *m2 = NULL;
    CHECK_OK(rn_model_load(p1, &m2));
    if (!m2) { rn_model_free(m); return; }
    CHECK(same_config(c, rn_model_config(m2)), "%s: config changed in the round trip", what);
    check_params_equal(m, m2, what);
    stf f = st_read(p1);
    check_header_structure(&f, what);
    check_metadata(c, &f);
    check_layout(m, &f);
    st_free(&f);
    CHECK_OK(rn_model_save(m2, p2));
    CHECK(same_file(p1, p2), "%s: save(load(save(x))) is not byte-identical to save(x)", what);
    /* The loaded model computes what the saved one does. */
    int T = 9;
    int32_t tok[9];
    random_tokens(tok, T, c->vocab, 3);
    rn_real *a = malloc(sizeof(rn_real) * T * c->vocab), *b = malloc(sizeof(rn_real) * T * c->vocab);
    rn_state *s1, *s2;
    CHECK_OK(rn_state_create(m2, 1, &s1));
    CHECK_OK(rn_forward(m2, s1, tok, 1, T, RN_PARALLEL, 0, 0, a));
    rn_model *m3 = NULL;
    s2 = NULL;
    CHECK_OK(rn_model_load(p2, &m3));
    if (m3) {
        CHECK_OK(rn_state_create(m3, 1, &s2));
        CHECK_OK(rn_forward(m3, s2, tok, 1, T, RN_PARALLEL, 0, 0, b));
        CHECK(memcmp(a, b, sizeof(rn_real) * T * c->vocab) == 0, "%s: logits differ after a second round trip", what);
    }
    printf("  round trip %-34s %zu parameters: ok\n", what, rn_model_num_params(m));
    rn_state_free(s1); rn_state_free(s2);
    free(a); free(b);
    rn_model_free(m3);
    rn_model_free(m2);
    rn_model_free(m);
}

/* Half precision: every tensor (buffers too, as a PyTorch model cast to
 * half and saved holds them) as F16 / BF16 loads as the rounded values. */
static void half_precision(const rn_config *c, const char *what) {
    rn_model *m = random_model(c, 5);
    const char *p1 = tp("hp.safetensors"), *p2 = tp("hp2.safetensors");
    CHECK_OK(rn_model_save(m, p1));
    size_t n = rn_model_num_params(m);
    const rn_real *orig = rn_model_params(m);
    static const char *dts[] = {"F16", "BF16", "F64"};
    for (int k = 0; k < 3; k++) {
        stf f = st_read(p1);
        convert(&f, NULL, dts[k]);
        st_write(p2, &f);
        st_free(&f);
        rn_model *h = NULL;
        rn_status st = rn_model_load(p2, &h);
        CHECK(st == RN_OK, "%s %s: load failed: %s", what, dts[k], rn_last_error());
        if (!h) continue;
        const rn_real *got = rn_model_params(h);
        size_t bad = 0, first = 0;
        double worst = 0;
        for (size_t i = 0; i < n; i++) {
            float x = (float)orig[i];
            double want = k == 0 ? f16_value(f32_to_f16(x)) : k == 1 ? bf16_value(f32_to_bf16(x)) : x;
            if ((double)got[i] != (double)(rn_real)want) { if (!bad) first = i; bad++; }
            if (fabs(x) > 1e-4) worst = fmax(worst, fabs(got[i] - x) / fabs(x));
        }
        CHECK(bad == 0, "%s %s: %zu of %zu values are not the rounded originals (first at %zu: %.9g)", what, dts[k],
              bad, n, first, (double)got[first]);
        /* Independently of the decoder: within half an ulp of the originals. */
        double bound = k == 0 ? 0x1p-11 : k == 1 ? 0x1p-8 : 0;
        CHECK(worst <= bound, "%s %s: relative rounding error %.3g exceeds %.3g", what, dts[k], worst, bound);
        printf("  %-6s %-36s loads as the rounded originals (worst relative error %.2e)\n", dts[k], what, worst);
        rn_model_free(h);
    }
    rn_model_free(m);
}

/* A single tensor converted: mixed dtypes in one file. */
static void mixed_dtypes(void) {
    rn_config c = config(RN_PRESET_SEED, 32, 2, 64, 48, 1, 19);
    rn_model *m = random_model(&c, 8);
    const char *p1 = tp("mx.safetensors"), *p2 = tp("mx2.safetensors");
    CHECK_OK(rn_model_save(m, p1));
    stf f = st_read(p1);
    const char *names[] = {"proj", "retnet.retentions.0.retentions.1.W_K", NULL};
    convert(&f, names, "BF16");
    const char *names2[] = {"retnet.ffns.0.2.bias", NULL};
    convert(&f, names2, "F16");
    st_write(p2, &f);
    st_free(&f);
    rn_model *h = NULL;
    /* as stored: the BF16 head is held bf16; wqkvg, one block BF16 among
     * F32 ones, and the F16 bias are widened to f32 */
    CHECK_OK(rn_model_load(p2, &h));
#ifndef RETNET_DOUBLE
    if (h)
        CHECK(h->w.Whead.t == RN_WTYPE_BF16 && h->w.layer[0].Wqkvg.t == RN_WTYPE_F32 && h->w.layer[0].fc2_b,
              "mixed file: head held %s, wqkvg %s", rn_wtype_name(h->w.Whead.t), rn_wtype_name(h->w.layer[0].Wqkvg.t));
#endif
    rn_model_free(h);
    h = NULL;
    CHECK_OK(rn_model_load_flags(p2, RN_LOAD_F32, &h, NULL));  /* every value f32 */
    if (h) {
        /* proj is head^T: head (V, d) */
        const rn_real *a = m->w.head, *b = h->w.head;
        size_t bad = 0;
        for (size_t i = 0; i < (size_t)c.vocab * c.dim; i++)
            bad += (double)b[i] != (double)(rn_real)bf16_value(f32_to_bf16((float)a[i]));
        const rn_real *fa = m->w.layer[0].fc2_b, *fb = h->w.layer[0].fc2_b;
        for (int i = 0; i < c.dim; i++) bad += (double)fb[i] != (double)(rn_real)f16_value(f32_to_f16((float)fa[i]));
        const rn_real *qa = m->w.layer[0].wqkvg, *qb = h->w.layer[0].wqkvg;
        for (size_t i = 0; i < (size_t)c.dim * c.dim; i++) bad += (double)(rn_real)(float)qa[i] != (double)qb[i];  /* W_Q untouched */
        CHECK(bad == 0, "mixed F32/BF16/F16 file: %zu values wrong", bad);
        rn_model_free(h);
    }
    rn_model_free(m);
}

/* ------------------------------------------------- malformed files */

static int quiet;

/* Loading path must fail with FORMAT or IO (want, if not 0), out NULL,
 * and a one-line message that contains s1 and s2 (if given). */
static void expect_fail(const char *path, const char *what, rn_status want, const char *s1, const char *s2) {
    rn_model *m = (rn_model *)&quiet;  /* must be reset to NULL */
    rn_status st = rn_model_load(path, &m);
    const char *e = rn_last_error();
    CHECK(st == RN_ERR_FORMAT || st == RN_ERR_IO, "%s: load returned %s (%s)", what, rn_status_name(st), e);
    if (want) CHECK(st == want, "%s: load returned %s, expected %s (%s)", what, rn_status_name(st), rn_status_name(want), e);
    CHECK(m == NULL, "%s: *out is not NULL after a failure", what);
    CHECK(e[0] != 0 && strchr(e, '\n') == NULL, "%s: message empty or not one line: '%s'", what, e);
    if (s1) CHECK(strstr(e, s1) != NULL, "%s: message '%s' does not mention '%s'", what, e, s1);
    if (s2) CHECK(strstr(e, s2) != NULL, "%s: message '%s' does not mention '%s'", what, e, s2);
    if (st == RN_OK) rn_model_free(m);
    if (!quiet) printf("    %-44s %s\n", what, e);
}

static void expect_fail_st(const stf *f, const char *what, rn_status want, const char *s1, const char *s2) {
    const char *p = tp("bad.safetensors");
    st_write(p, f);
    expect_fail(p, what, want, s1, s2);
}

static void expect_load_ok(const stf *f, const char *what) {
    const char *p = tp("ok.safetensors");
    st_write(p, f);
    rn_model *m = NULL;
    rn_status st = rn_model_load(p, &m);
    CHECK(st == RN_OK, "%s: load failed: %s", what, rn_last_error());
    rn_model_free(m);
}

/* Fresh copy of the good file for one mutation. */
#define MUTATE(good, f) for (stf f = st_read(good), *once_ = &f; once_; st_free(&f), once_ = NULL)

/* ------------------------------------------- 16-bit weights kept as stored */

/* The tensors' data in the reverse of the header's order: a file whose
 * blocks of one projection (q, k, v, g) are not adjacent in row order, as
 * Hugging Face's writer (which sorts by name) leaves them. */
static void reverse_data(stf *f) {
    int n = 0;
    for (cJSON *t = f->hdr->child; t; t = t->next) n += strcmp(t->string, "__metadata__") != 0;
    cJSON **ts = malloc(sizeof *ts * (size_t)(n + 1));
    n = 0;
    for (cJSON *t = f->hdr->child; t; t = t->next)
        if (strcmp(t->string, "__metadata__") != 0) ts[n++] = t;
    unsigned char *nd = malloc(f->dlen + 1);
    size_t off = 0;
    for (int i = n - 1; i >= 0; i--) {
        size_t b = t_begin(ts[i]), e = t_end(ts[i]);
        memcpy(nd + off, f->data + b, e - b);
        set_offsets(ts[i], (double)off, (double)(off + e - b));
        off += e - b;
    }
    free(f->data);
    free(ts);
    f->data = nd;
}

/* Logits (T, V) of tok from a fresh state, in mode (recurrent: token by token). */
static rn_real *logits16(rn_model *m, const int32_t *tok, int T, rn_mode mode) {
    int V = rn_model_config(m)->vocab;
    rn_real *l = malloc(sizeof(rn_real) * (size_t)T * V);
    rn_state *s = NULL;
    CHECK_OK(rn_state_create(m, 1, &s));
    for (int t = 0; s && t < (mode == RN_RECURRENT ? T : 1); t++)
        CHECK_OK(mode == RN_RECURRENT ? rn_forward(m, s, tok + t, 1, 1, mode, 1, 0, l + (size_t)t * V)
                                      : rn_forward(m, s, tok, 1, T, mode, 4, 0, l));
    rn_state_free(s);
    return l;
}

static double rel_diff(const rn_real *a, const rn_real *b, size_t n) {
    double d = 0, s = 0;
    for (size_t i = 0; i < n; i++) { d = fmax(d, fabs((double)a[i] - b[i])); s = fmax(s, fabs((double)b[i])); }
    return d / s;
}

/* A file in BF16 / F16 (every tensor, as a cast PyTorch model saves it),
 * its tensors in our order (projections read in place) and reversed (the
 * blocks copied): the large projections are held in the file's type, the
 * rest widened; the logits are the widened model's (RN_LOAD_F32) to float32
 * rounding (the kernels sum in another order), the paradigms agree, the
 * values are the same bits; training needs RN_LOAD_F32; a NaN in a kept
 * projection is refused naming it. */
static void stored_16bit(const rn_config *c, const char *what) {
    rn_model *m = random_model(c, 9);
    const char *p1 = tp("s16.safetensors"), *p2 = tp("s16b.safetensors");
    CHECK_OK(rn_model_save(m, p1));
    enum { T = 13 };
    int32_t tok[T];
    for (int t = 0; t < T; t++) tok[t] = (int32_t)((t * 7 + 3) % c->vocab);
    size_t nl = (size_t)T * c->vocab;
    static const char *dts[] = {"BF16", "F16"};
    for (int k = 0; k < 2; k++)
        for (int rev = 0; rev < 2; rev++) {
            rn_wtype want = k == 0 ? RN_WTYPE_BF16 : RN_WTYPE_F16;
            stf f = st_read(p1);
            convert(&f, NULL, dts[k]);
            if (rev) reverse_data(&f);
            st_write(p2, &f);
            rn_model *h = NULL, *w = NULL;
            CHECK(rn_model_load(p2, &h) == RN_OK && rn_model_load_flags(p2, RN_LOAD_F32, &w, NULL) == RN_OK,
                  "%s %s%s: load: %s", what, dts[k], rev ? " reversed" : "", rn_last_error());
            rn_model_info in;
            CHECK_OK(rn_model_inspect(p2, &in));
            if (!h || !w) { rn_model_free(h); rn_model_free(w); st_free(&f); continue; }
            CHECK(!rn_model_quantized(w), "%s %s: RN_LOAD_F32 kept a 16-bit tensor", what, dts[k]);
#ifdef RETNET_DOUBLE
            CHECK(!rn_model_quantized(h), "%s %s: the float64 build holds a 16-bit tensor", what, dts[k]);
            (void)want;
#else
            int bad = 0;
            for (int i = 0; i < rn_model_num_tensors(h); i++) {
                rn_tensor_desc d;
                CHECK_OK(rn_model_tensor(h, i, &d));
                bad += d.wtype != (d.cols > 1 ? want : RN_WTYPE_F32);
            }
            CHECK(bad == 0, "%s %s%s: %d tensors not held as stored (projections %s, vectors f32)", what, dts[k],
                  rev ? " reversed" : "", bad, rn_wtype_name(want));
            CHECK(in.decode_bytes == rn_model_decode_bytes(h) && !in.in_place && in.copy_bytes > 0 &&
                      in.wtype_tensors[want] > 0 && in.wtype_bytes[RN_WTYPE_F32] < in.wtype_bytes[want] / 4,
                  "%s %s: inspect: %zu decode bytes (model %zu), in place %d, copied %zu", what, dts[k], in.decode_bytes,
                  rn_model_decode_bytes(h), in.in_place, in.copy_bytes);
            CHECK(rn_model_decode_bytes(h) <= 0.56 * rn_model_decode_bytes(w), "%s %s: %zu bytes per token, f32 %zu",
                  what, dts[k], rn_model_decode_bytes(h), rn_model_decode_bytes(w));
            rn_train_config tc;
            rn_train_config_default(&tc);
            rn_trainer *tr = NULL;
            CHECK(rn_trainer_create(h, &tc, &tr) == RN_ERR_ARG && strstr(rn_last_error(), "RN_LOAD_F32"),
                  "%s %s: training the kept model: %s", what, dts[k], rn_last_error());
            CHECK_OK(rn_trainer_create(w, &tc, &tr));
            rn_trainer_free(tr);
#endif
            rn_real *lh = logits16(h, tok, T, RN_PARALLEL), *lw = logits16(w, tok, T, RN_PARALLEL);
            rn_real *lc = logits16(h, tok, T, RN_CHUNKWISE), *lr = logits16(h, tok, T, RN_RECURRENT);
            double dw = rel_diff(lh, lw, nl), dc = rel_diff(lc, lh, nl), dr = rel_diff(lr, lh, nl);
            CHECK(dw <= 1e-5 && dc <= 2e-5 && dr <= 2e-5,
                  "%s %s%s: kept off the widened model by %.2e; chunkwise %.2e, recurrent %.2e off parallel", what,
                  dts[k], rev ? " reversed" : "", dw, dc, dr);
            printf("  %-5s %-34s%s kept as stored: %.1f KB per token (f32 %.1f), logits off f32 by %.1e\n", dts[k], what,
                   rev ? " (reversed)" : "", rn_model_decode_bytes(h) / 1e3, rn_model_decode_bytes(w) / 1e3, dw);
            /* the same values, bit for bit */
            const rn_real *a = rn_model_params(h), *b = rn_model_params(w);
            size_t np = rn_model_num_params(w), diff = 0;
            for (size_t i = 0; a && b && i < np; i++) diff += memcmp(&a[i], &b[i], sizeof *a) != 0;
            CHECK(a && b && diff == 0, "%s %s: %zu values differ from the widened ones", what, dts[k], diff);
            free(lh); free(lw); free(lc); free(lr);
            rn_model_free(h);
            rn_model_free(w);
            /* a NaN in the first projection (2-D tensor) of the file */
            cJSON *t = f.hdr->child;
            while (t && (strcmp(t->string, "__metadata__") == 0 || cJSON_GetArraySize(cJSON_GetObjectItem(t, "shape")) != 2))
                t = t->next;
            if (t) {
                uint16_t nan = k == 0 ? 0x7fc0 : 0x7e00;
                memcpy(f.data + t_begin(t) + 6, &nan, 2);
                st_write(p2, &f);
                expect_fail(p2, "NaN in a 16-bit projection", RN_ERR_FORMAT, t->string, "non-finite");
            }
            st_free(&f);
        }
    rn_model_free(m);
}

static void malformed_container(const char *good) {
    printf("  container:\n");
    blob g = slurp(good);
    const char *bad = tp("bad.safetensors");
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | g.p[i];

    expect_fail(tp("does-not-exist.safetensors"), "missing file", RN_ERR_IO, "does-not-exist.safetensors", NULL);
    expect_fail(tmpdir, "a directory", RN_ERR_IO, NULL, NULL);
    spit(bad, "", 0);
    expect_fail(bad, "empty file", RN_ERR_FORMAT, "bad.safetensors", NULL);
    spit(bad, g.p, 7);
    expect_fail(bad, "7 bytes", RN_ERR_FORMAT, NULL, NULL);
    spit(bad, g.p, 8);
    expect_fail(bad, "only the header length", RN_ERR_FORMAT, NULL, NULL);
    spit(bad, g.p, 8 + hlen);
    expect_fail(bad, "header without data", RN_ERR_FORMAT, NULL, NULL);
    /* Truncated at every 1/20th and by the last byte. */
    quiet = 1;
    for (int k = 0; k < 20; k++) {
        char what[64];
        snprintf(what, sizeof what, "truncated to %d/20", k);
        spit(bad, g.p, g.n * k / 20);
        expect_fail(bad, what, 0, NULL, NULL);
    }
    /* ... and at every byte around the header/data boundary. */
    for (size_t n = 8 + hlen - 40; n < 8 + hlen + 40; n++) {
        spit(bad, g.p, n);
        expect_fail(bad, "truncated near the header end", 0, NULL, NULL);
    }
    quiet = 0;
    spit(bad, g.p, g.n - 1);
    expect_fail(bad, "last byte missing", RN_ERR_FORMAT, "retnet_rel_pos.decay", "offsets");

    /* Header length lying. */
    unsigned char *c = malloc(g.n);
    uint64_t lies[] = {g.n - 8 + 1, (uint64_t)1 << 63, 100000000000ull, UINT64_MAX, hlen + 8 * 1024 * 1024};
    const char *lie_names[] = {"header length > file", "header length 2^63", "header length 100 GB",
                               "header length 2^64-1", "header length + 8 MiB"};
    for (int i = 0; i < 5; i++) {
        memcpy(c, g.p, g.n);
        put_u64(c, lies[i]);
        spit(bad, c, g.n);
        expect_fail(bad, lie_names[i], RN_ERR_FORMAT, "header length", NULL);
    }
    memcpy(c, g.p, g.n);
    put_u64(c, 0);
    spit(bad, c, g.n);
    expect_fail(bad, "header length 0", RN_ERR_FORMAT, NULL, NULL);
    memcpy(c, g.p, g.n);
    put_u64(c, hlen - 16);
    spit(bad, c, g.n);
    expect_fail(bad, "header length cuts the JSON", RN_ERR_FORMAT, NULL, NULL);
    free(c);

    /* Headers that are not a JSON object. */
    static const char *heads[] = {"hello, world!   ", "{\"a\": [1, 2,    ", "[1, 2, 3]       ", "\"a string\"      ",
                                  "42              ", "null            ", "{}}}}}}}        ", "{\"x\":1}  garbage",
                                  "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", "                "};
    static const char *head_names[] = {"header not JSON", "header JSON unterminated", "header a JSON array",
                                       "header a JSON string", "header a JSON number", "header JSON null",
                                       "header JSON with trailing braces", "header JSON with trailing garbage",
                                       "header all NUL bytes", "header all spaces"};
    for (int i = 0; i < 10; i++) {
        write_raw(bad, 16, heads[i], 16, g.p + 8 + hlen, g.n - 8 - hlen);
        expect_fail(bad, head_names[i], RN_ERR_FORMAT, "header", NULL);
    }
    /* Valid JSON followed by padding other than spaces. */
    {
        stf f = st_read(good);
        char *js = cJSON_PrintUnformatted(f.hdr);
        size_t jl = strlen(js), padded = (jl + 8 + 7) & ~(size_t)7;
        char *h = calloc(1, padded);
        memcpy(h, js, jl);
        write_raw(bad, padded, h, padded, f.data, f.dlen);
        expect_fail(bad, "header padded with NUL bytes", RN_ERR_FORMAT, "header", NULL);
        memset(h + jl, ' ', padded - jl);
        h[padded - 1] = '\n';
        write_raw(bad, padded, h, padded, f.data, f.dlen);
        rn_model *m = NULL;
        CHECK(rn_model_load(bad, &m) == RN_OK, "header padded with spaces and a newline: %s", rn_last_error());
        rn_model_free(m);
        free(h);
        free(js);
        st_free(&f);
    }
    free(g.p);
}

static void malformed_entries(const char *good) {
    printf("  header entries (torchscale file):\n");
    const char *Q = "layers.0.retention.q_proj.weight", *Kp = "layers.0.retention.k_proj.weight";
    const char *V = "layers.1.retention.v_proj.weight";
    MUTATE(good, f) {
        cJSON *t = tensor(&f, Kp);
        size_t b = t_begin(t);
        set_offsets(t, (double)b, (double)(f.dlen + 4));
        expect_fail_st(&f, "end offset past the data", RN_ERR_FORMAT, Kp, "offsets");
    }
    MUTATE(good, f) {
        set_offsets(tensor(&f, Kp), 1e30, 2e30);
        expect_fail_st(&f, "offsets 1e30", RN_ERR_FORMAT, Kp, NULL);
    }
    MUTATE(good, f) {
        set_offsets(tensor(&f, Kp), 18446744073709551616.0, 18446744073709551616.0 + 4096);
        expect_fail_st(&f, "offsets 2^64", RN_ERR_FORMAT, Kp, NULL);
    }
    MUTATE(good, f) {
        cJSON *t = tensor(&f, Kp);
        set_offsets(t, (double)t_end(t), (double)t_begin(t));
        expect_fail_st(&f, "offsets reversed", RN_ERR_FORMAT, Kp, NULL);
    }
    MUTATE(good, f) {
        cJSON *t = tensor(&f, Kp);
        set_offsets(t, -4.0, (double)t_end(t) - t_begin(t) - 4);
        expect_fail_st(&f, "negative offset", RN_ERR_FORMAT, Kp, NULL);
    }
    MUTATE(good, f) {
        cJSON *t = tensor(&f, Kp);
        set_offsets(t, t_begin(t) + 0.5, t_end(t) + 0.5);
        expect_fail_st(&f, "fractional offsets", RN_ERR_FORMAT, Kp, NULL);
    }
    MUTATE(good, f) {
        cJSON *t = tensor(&f, Kp), *of = cJSON_CreateArray();
        cJSON_AddItemToArray(of, cJSON_CreateString("0"));
        cJSON_AddItemToArray(of, cJSON_CreateString("16"));
        cJSON_ReplaceItemInObjectCaseSensitive(t, "data_offsets", of);
        expect_fail_st(&f, "offsets as strings", RN_ERR_FORMAT, Kp, NULL);
    }
    MUTATE(good, f) {
        cJSON *t = tensor(&f, Kp);
        cJSON_AddItemToArray(cJSON_GetObjectItem(t, "data_offsets"), cJSON_CreateNumber(0));
        expect_fail_st(&f, "three offsets", RN_ERR_FORMAT, Kp, NULL);
    }
    MUTATE(good, f) {
        set_item(tensor(&f, Kp), "data_offsets", NULL);
        expect_fail_st(&f, "no data_offsets", RN_ERR_FORMAT, Kp, NULL);
    }
    MUTATE(good, f) {
        cJSON *t = tensor(&f, Kp);
        set_offsets(t, (double)t_begin(t), (double)t_end(t) - 4);
        expect_fail_st(&f, "size smaller than shape x dtype", RN_ERR_FORMAT, Kp, "bytes");
    }
    MUTATE(good, f) {
        cJSON *t = tensor(&f, Kp);
        set_offsets(t, (double)t_begin(t), (double)t_end(t) + 4);
        expect_fail_st(&f, "size larger than shape x dtype", RN_ERR_FORMAT, Kp, NULL);
    }
    MUTATE(good, f) {
        cJSON *q = tensor(&f, Q);
        set_offsets(tensor(&f, Kp), (double)t_begin(q), (double)t_end(q));
        expect_fail_st(&f, "two tensors share their data", RN_ERR_FORMAT, Q, Kp);
    }
    MUTATE(good, f) {
        cJSON *q = tensor(&f, Q), *k = tensor(&f, Kp);  /* same size */
        size_t n = t_end(k) - t_begin(k);
        set_offsets(k, (double)t_begin(q) + 4, (double)(t_begin(q) + 4 + n));
        expect_fail_st(&f, "overlapping tensors", RN_ERR_FORMAT, "overlap", Kp);
    }
    MUTATE(good, f) {
        set_item(tensor(&f, Kp), "dtype", cJSON_CreateString("I8"));
        expect_fail_st(&f, "dtype I8", RN_ERR_FORMAT, Kp, "I8");
    }
    MUTATE(good, f) {
        set_item(tensor(&f, Kp), "dtype", cJSON_CreateString("F32x"));
        expect_fail_st(&f, "dtype F32x", RN_ERR_FORMAT, Kp, "F32x");
    }
    MUTATE(good, f) {
        set_item(tensor(&f, Kp), "dtype", cJSON_CreateString(""));
        expect_fail_st(&f, "dtype empty", RN_ERR_FORMAT, Kp, NULL);
    }
    MUTATE(good, f) {
        set_item(tensor(&f, Kp), "dtype", cJSON_CreateNumber(32));
        expect_fail_st(&f, "dtype a number", RN_ERR_FORMAT, Kp, NULL);
    }
    MUTATE(good, f) {
        set_item(tensor(&f, Kp), "dtype", NULL);
        expect_fail_st(&f, "no dtype", RN_ERR_FORMAT, Kp, NULL);
    }
    MUTATE(good, f) {
        /* F16 with the F32 byte count: sizes disagree. */
        set_item(tensor(&f, Kp), "dtype", cJSON_CreateString("F16"));
        expect_fail_st(&f, "dtype F16 on F32 bytes", RN_ERR_FORMAT, Kp, NULL);
    }
    MUTATE(good, f) {
        set_item(f.hdr, Kp, cJSON_CreateNumber(1));
        expect_fail_st(&f, "entry not an object", RN_ERR_FORMAT, Kp, NULL);
    }
    MUTATE(good, f) {
        set_item(tensor(&f, Kp), "shape", cJSON_CreateString("[48, 48]"));
        expect_fail_st(&f, "shape a string", RN_ERR_FORMAT, Kp, NULL);
    }
    MUTATE(good, f) {
        set_item(tensor(&f, Kp), "shape", NULL);
        expect_fail_st(&f, "no shape", RN_ERR_FORMAT, Kp, NULL);
    }
    /* Shapes: consistent with the byte count but not what the config needs. */
    MUTATE(good, f) {
        double s[] = {24, 96};
        set_shape(tensor(&f, Kp), 2, s);
        expect_fail_st(&f, "shape [d/2, 2d] for [d, d]", RN_ERR_FORMAT, Kp, "[24, 96]");
    }
    MUTATE(good, f) {
        double s[] = {48, 96};  /* v_proj is [96, 48] */
        set_shape(tensor(&f, V), 2, s);
        expect_fail_st(&f, "shape transposed", RN_ERR_FORMAT, V, "[96, 48]");
    }
    MUTATE(good, f) {
        double s[] = {48 * 48};
        set_shape(tensor(&f, Kp), 1, s);
        expect_fail_st(&f, "shape flattened", RN_ERR_FORMAT, Kp, NULL);
    }
    MUTATE(good, f) {
        double s[] = {1, 48, 48};
        set_shape(tensor(&f, Kp), 3, s);
        expect_fail_st(&f, "shape with an extra dimension", RN_ERR_FORMAT, Kp, NULL);
    }
    MUTATE(good, f) {
        double s[] = {48};
        set_shape(tensor(&f, "layer_norm.weight"), 0, s);
        expect_fail_st(&f, "vector as a scalar", RN_ERR_FORMAT, "layer_norm.weight", NULL);
    }
    MUTATE(good, f) {
        double s[] = {1, 1, 1, 1, 1, 1, 1, 1, 48, 48};
        set_shape(tensor(&f, Kp), 10, s);
        expect_fail_st(&f, "ten dimensions", RN_ERR_FORMAT, Kp, NULL);
    }
    MUTATE(good, f) {
        double s[] = {-48, -48};
        set_shape(tensor(&f, Kp), 2, s);
        expect_fail_st(&f, "negative shape", RN_ERR_FORMAT, Kp, "shape");
    }
    MUTATE(good, f) {
        double s[] = {48.5, 48};
        set_shape(tensor(&f, Kp), 2, s);
        expect_fail_st(&f, "fractional shape", RN_ERR_FORMAT, Kp, "shape");
    }
    MUTATE(good, f) {
        double s[] = {4611686018427387904.0, 1};  /* 2^62 elements */
        set_shape(tensor(&f, Kp), 2, s);
        expect_fail_st(&f, "shape of 2^62 elements", RN_ERR_FORMAT, Kp, NULL);
    }
    MUTATE(good, f) {
        double s[] = {2147483648.0, 2147483648.0, 2147483648.0};  /* product overflows */
        set_shape(tensor(&f, Kp), 3, s);
        expect_fail_st(&f, "shape product overflowing 64 bits", RN_ERR_FORMAT, Kp, NULL);
    }
    MUTATE(good, f) {
        double s[] = {1e300, 0};
        set_shape(tensor(&f, Kp), 2, s);
        expect_fail_st(&f, "shape 1e300 x 0", RN_ERR_FORMAT, Kp, NULL);
    }
    MUTATE(good, f) {
        cJSON *sh = cJSON_CreateArray();
        cJSON_AddItemToArray(sh, cJSON_CreateString("48"));
        cJSON_AddItemToArray(sh, cJSON_CreateNumber(48));
        set_item(tensor(&f, Kp), "shape", sh);
        expect_fail_st(&f, "shape entry a string", RN_ERR_FORMAT, Kp, NULL);
    }
    /* Tensors missing, extra, duplicated. */
    MUTATE(good, f) {
        set_item(f.hdr, "layers.1.ffn.fc2.weight", NULL);
        expect_fail_st(&f, "missing tensor", RN_ERR_FORMAT, "missing", "layers.1.ffn.fc2.weight");
    }
    MUTATE(good, f) {
        set_item(f.hdr, "output_projection.weight", NULL);
        expect_fail_st(&f, "missing output projection", RN_ERR_FORMAT, "output_projection.weight", NULL);
    }
    MUTATE(good, f) {
        cJSON *t = cJSON_CreateObject();
        cJSON_AddStringToObject(t, "dtype", "F32");
        double s[] = {4};
        set_shape(t, 1, s);
        unsigned char *d = realloc(f.data, f.dlen + 16);
        memset(d + f.dlen, 0, 16);
        f.data = d;
        set_offsets(t, (double)f.dlen, (double)f.dlen + 16);
        f.dlen += 16;
        cJSON_AddItemToObject(f.hdr, "foo.bar", t);
        expect_fail_st(&f, "unknown extra tensor", RN_ERR_FORMAT, "unknown", "foo.bar");
    }
    MUTATE(good, f) {
        /* The same name twice (cJSON keeps both): the second is refused. */
        cJSON *t = cJSON_Duplicate(tensor(&f, "layer_norm.weight"), 1);
        unsigned char *d = realloc(f.data, f.dlen + 48 * 4);
        memcpy(d + f.dlen, d + t_begin(t), 48 * 4);
        f.data = d;
        set_offsets(t, (double)f.dlen, (double)f.dlen + 48 * 4);
        f.dlen += 48 * 4;
        cJSON_AddItemToObject(f.hdr, "layer_norm.weight", t);
        expect_fail_st(&f, "tensor named twice", RN_ERR_FORMAT, "layer_norm.weight", "twice");
    }
    /* Values. */
    MUTATE(good, f) {
        poke_f32(&f, V, 100, NAN);
        expect_fail_st(&f, "NaN in a weight", RN_ERR_FORMAT, V, "non-finite");
    }
    MUTATE(good, f) {
        poke_f32(&f, "embed_tokens.weight", 0, -INFINITY);
        expect_fail_st(&f, "-Inf in a weight", RN_ERR_FORMAT, "embed_tokens.weight", NULL);
    }
    MUTATE(good, f) {
        const char *n = "layers.0.final_layer_norm.weight";
        uint16_t inf = 0x7c00;
        convert(&f, (const char *[]){n, NULL}, "F16");
        memcpy(f.data + t_begin(tensor(&f, n)) + 2 * 5, &inf, 2);
        expect_fail_st(&f, "F16 infinity in a weight", RN_ERR_FORMAT, n, NULL);
    }
    MUTATE(good, f) {
        const char *n = "layers.1.ffn.gate.weight";
        uint16_t nan = 0x7fc1;
        convert(&f, (const char *[]){n, NULL}, "BF16");
        memcpy(f.data + t_begin(tensor(&f, n)) + 2 * 7, &nan, 2);
        expect_fail_st(&f, "BF16 NaN in a weight", RN_ERR_FORMAT, n, NULL);
    }
    /* The data checksum. */
    MUTATE(good, f) {
        char sum[17];
        checksum_hex(f.data, f.dlen, sum);
        cJSON *v = cJSON_GetObjectItem(cJSON_GetObjectItem(f.hdr, "__metadata__"), "checksum_xxh3");
        CHECK(cJSON_IsString(v) && strcmp(v->valuestring, sum) == 0, "the file's checksum is not the XXH3 block hash of its data");
        f.data[f.dlen / 2] ^= 0x10;  /* one bit flipped in a weight */
        stale_checksum = 1;
        expect_fail_st(&f, "one bit flipped (stale checksum)", RN_ERR_FORMAT, "checksum", NULL);
        stale_checksum = 0;
    }
    MUTATE(good, f) {
        set_item(cJSON_GetObjectItem(f.hdr, "__metadata__"), "checksum_xxh3", cJSON_CreateString("0123456789abcdef"));
        stale_checksum = 1;
        expect_fail_st(&f, "wrong checksum", RN_ERR_FORMAT, "checksum", NULL);
        stale_checksum = 0;
    }
    MUTATE(good, f) {
        /* Files written before the XXH3 checksum carry FNV-1a 64: still verified. */
        uint64_t h = 0xcbf29ce484222325ull;
        for (size_t i = 0; i < f.dlen; i++) h = (h ^ f.data[i]) * 0x100000001b3ull;
        char sum[17];
        snprintf(sum, sizeof sum, "%016llx", (unsigned long long)h);
        set_item(cJSON_GetObjectItem(f.hdr, "__metadata__"), "checksum_xxh3", NULL);
        set_item(cJSON_GetObjectItem(f.hdr, "__metadata__"), "checksum_fnv1a64", cJSON_CreateString(sum));
        expect_load_ok(&f, "an older file's FNV-1a checksum");
        f.data[f.dlen / 3] ^= 0x01;
        expect_fail_st(&f, "one bit flipped under an FNV-1a checksum", RN_ERR_FORMAT, "checksum", NULL);
    }
    MUTATE(good, f) {
        /* Files written elsewhere (PyTorch) carry no checksum. */
        set_item(cJSON_GetObjectItem(f.hdr, "__metadata__"), "checksum_xxh3", NULL);
        f.data[f.dlen / 2] ^= 0x10;
        expect_load_ok(&f, "no checksum");
    }
    /* Buffers: optional, but checked when present. */
    MUTATE(good, f) {
        poke_f32(&f, "retnet_rel_pos.decay", 1, get_f32(&f, "retnet_rel_pos.decay", 1) * 1.01f);
        expect_fail_st(&f, "decay buffer 1% off", RN_ERR_FORMAT, "retnet_rel_pos.decay", NULL);
    }
    MUTATE(good, f) {
        poke_f32(&f, "retnet_rel_pos.angle", 3, NAN);
        expect_fail_st(&f, "angle buffer NaN", RN_ERR_FORMAT, "retnet_rel_pos.angle", NULL);
    }
    MUTATE(good, f) {
        /* Angles of the other convention (NeoX inv_freq). */
        int K = 16;
        for (int j = 0; j < K; j++) poke_f32(&f, "retnet_rel_pos.angle", j, (float)pow(10000.0, -(double)(j / 2) / (K / 2)));
        expect_fail_st(&f, "angle buffer of another rotation", RN_ERR_FORMAT, "retnet_rel_pos.angle", NULL);
    }
    MUTATE(good, f) {
        double s[] = {2};
        cJSON *t = tensor(&f, "retnet_rel_pos.decay");
        set_shape(t, 1, s);
        set_offsets(t, (double)t_begin(t), (double)t_begin(t) + 8);
        expect_fail_st(&f, "decay buffer of the wrong shape", RN_ERR_FORMAT, "retnet_rel_pos.decay", NULL);
    }
    MUTATE(good, f) {
        set_item(f.hdr, "retnet_rel_pos.angle", NULL);
        set_item(f.hdr, "retnet_rel_pos.decay", NULL);
        expect_load_ok(&f, "buffers absent");
    }
}

static void malformed_metadata(const char *good, const char *good_seed, const char *good_fla) {
    printf("  metadata and config:\n");
    MUTATE(good, f) {
        set_item(f.hdr, "__metadata__", NULL);
        expect_fail_st(&f, "no __metadata__", RN_ERR_FORMAT, "__metadata__", NULL);
    }
    MUTATE(good, f) {
        set_item(cJSON_GetObjectItem(f.hdr, "__metadata__"), "retnet", NULL);
        expect_fail_st(&f, "__metadata__ without retnet", RN_ERR_FORMAT, "retnet", NULL);
    }
    MUTATE(good, f) {
        set_item(f.hdr, "__metadata__", cJSON_CreateString("{}"));
        expect_fail_st(&f, "__metadata__ not an object", RN_ERR_FORMAT, "__metadata__", NULL);
    }
    MUTATE(good, f) {
        cJSON *c = get_meta(&f);
        set_item(cJSON_GetObjectItem(f.hdr, "__metadata__"), "retnet", c);  /* an object, not a string */
        expect_fail_st(&f, "retnet config not a string", RN_ERR_FORMAT, "retnet", NULL);
    }
    MUTATE(good, f) {
        put_meta_str(&f, "{\"preset\": \"torchscale\", ");
        expect_fail_st(&f, "retnet config not JSON", RN_ERR_FORMAT, "config", NULL);
    }
    MUTATE(good, f) {
        put_meta_str(&f, "[1, 2]");
        expect_fail_st(&f, "retnet config a JSON array", RN_ERR_FORMAT, "config", NULL);
    }
    MUTATE(good, f) {
        set_meta(&f, "preset", cJSON_CreateString("gpt2"));
        expect_fail_st(&f, "unknown preset", RN_ERR_FORMAT, "gpt2", NULL);
    }
    MUTATE(good, f) {
        set_meta(&f, "preset", cJSON_CreateNumber(0));
        expect_fail_st(&f, "preset a number", RN_ERR_FORMAT, "preset", NULL);
    }
    MUTATE(good, f) {
        set_meta(&f, "preset", cJSON_CreateString("seed"));
        expect_fail_st(&f, "preset seed on torchscale tensors", RN_ERR_FORMAT, NULL, NULL);
    }
    MUTATE(good, f) {
        set_meta(&f, "vocab_size", NULL);
        expect_fail_st(&f, "config without vocab_size", RN_ERR_FORMAT, "vocab_size", NULL);
    }
    struct { const char *key; const char *json; const char *what; const char *needle; } cases[] = {
        {"decoder_embed_dim", "\"48\"", "dim a string", "decoder_embed_dim"},
        {"decoder_embed_dim", "48.5", "dim fractional", "decoder_embed_dim"},
        {"decoder_embed_dim", "-48", "dim negative", "dim"},
        {"decoder_embed_dim", "0", "dim zero", "dim"},
        {"decoder_embed_dim", "null", "dim null", "decoder_embed_dim"},
        {"decoder_embed_dim", "[48]", "dim an array", "decoder_embed_dim"},
        {"decoder_embed_dim", "4611686018427387904", "dim 2^62", "decoder_embed_dim"},
        {"decoder_embed_dim", "1e300", "dim 1e300", "decoder_embed_dim"},
        {"decoder_embed_dim", "2147483648", "dim 2^31", "decoder_embed_dim"},
        {"decoder_embed_dim", "1000000000", "dim a billion", "dim"},
        {"decoder_layers", "1000000000", "a billion layers", "layers"},
        {"decoder_layers", "0", "zero layers", "layers"},
        {"vocab_size", "1000000000", "vocab a billion", "vocab"},
        {"vocab_size", "-1", "vocab -1", "vocab"},
        {"decoder_retention_heads", "5", "heads not dividing dim", "heads"},
        {"decoder_retention_heads", "0", "zero heads", "heads"},
        {"decoder_retention_heads", "16", "odd head dim", "even"},
        {"decoder_value_embed_dim", "97", "value dim not dividing", "value"},
        {"decoder_ffn_embed_dim", "0", "ffn zero", "ffn"},
        {"layernorm_eps", "\"1e-6\"", "eps a string", "layernorm_eps"},
        {"layernorm_eps", "2", "eps 2", "eps"},
        {"layernorm_eps", "-1", "eps negative", "eps"},
        {"activation_fn", "\"relu\"", "activation relu", "activation_fn"},
        {"activation_fn", "7", "activation a number", "activation_fn"},
        {"no_scale_embedding", "\"no\"", "bool a string", "no_scale_embedding"},
        {"share_decoder_input_output_embed", "[]", "bool an array", "share_decoder_input_output_embed"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        MUTATE(good, f) {
            set_meta(&f, cases[i].key, cJSON_Parse(cases[i].json));
            expect_fail_st(&f, cases[i].what, RN_ERR_FORMAT, "config", cases[i].needle);
        }
    }
    /* Valid configs that disagree with the tensors. */
    MUTATE(good, f) {
        set_meta(&f, "vocab_size", cJSON_CreateNumber(38));
        expect_fail_st(&f, "config vocab != embedding rows", RN_ERR_FORMAT, "embed_tokens.weight", "[37, 48]");
    }
    MUTATE(good, f) {
        set_meta(&f, "decoder_layers", cJSON_CreateNumber(3));
        expect_fail_st(&f, "config with one more layer", RN_ERR_FORMAT, "layers.2.", NULL);
    }
    MUTATE(good, f) {
        set_meta(&f, "decoder_layers", cJSON_CreateNumber(1));
        expect_fail_st(&f, "config with one layer fewer", RN_ERR_FORMAT, "unknown", "layers.1.");
    }
    MUTATE(good, f) {
        set_meta(&f, "decoder_retention_heads", cJSON_CreateNumber(4));
        expect_fail_st(&f, "config with other heads", RN_ERR_FORMAT, "retnet_rel_pos", NULL);
    }
    MUTATE(good, f) {
        set_meta(&f, "share_decoder_input_output_embed", cJSON_CreateTrue());
        expect_fail_st(&f, "config tied, file untied", RN_ERR_FORMAT, "output_projection.weight", NULL);
    }
    /* Absurd sizes within rn_config_validate's limits: refused before any
     * allocation (under ASan, allocating terabytes would abort). */
    struct { int d, Vd, F, L, H, V; const char *what; } huge[] = {
        {65536, 65536, 262144, 1024, 2, 4194304, "largest config the limits allow"},
        {65536, 131072 / 2, 4, 1, 2, 4194304, "2 TB of embeddings"},
        {4096, 6912, 6912, 1024, 16, 32000, "a 7b model with 1024 layers"},
        {1024, 2048, 2048, 4, 4, 32000, "100M parameters in a tiny file"},
    };
    for (size_t i = 0; i < sizeof huge / sizeof *huge; i++) {
        MUTATE(good, f) {
            set_meta(&f, "decoder_embed_dim", cJSON_CreateNumber(huge[i].d));
            set_meta(&f, "decoder_value_embed_dim", cJSON_CreateNumber(huge[i].Vd));
            set_meta(&f, "decoder_ffn_embed_dim", cJSON_CreateNumber(huge[i].F));
            set_meta(&f, "decoder_layers", cJSON_CreateNumber(huge[i].L));
            set_meta(&f, "decoder_retention_heads", cJSON_CreateNumber(huge[i].H));
            set_meta(&f, "vocab_size", cJSON_CreateNumber(huge[i].V));
            expect_fail_st(&f, huge[i].what, RN_ERR_FORMAT, "parameters", NULL);
        }
    }

    /* seed */
    MUTATE(good_seed, f) {
        set_meta(&f, "hidden_dim", NULL);
        expect_fail_st(&f, "seed config without hidden_dim", RN_ERR_FORMAT, "hidden_dim", NULL);
    }
    MUTATE(good_seed, f) {
        set_meta(&f, "double_v_dim", cJSON_CreateString("yes"));
        expect_fail_st(&f, "seed double_v_dim a string", RN_ERR_FORMAT, "double_v_dim", NULL);
    }
    MUTATE(good_seed, f) {
        set_meta(&f, "double_v_dim", cJSON_CreateFalse());
        expect_fail_st(&f, "seed double_v_dim flipped", RN_ERR_FORMAT, "W_V", NULL);
    }
    MUTATE(good_seed, f) {
        set_meta(&f, "layers", cJSON_CreateNumber(1e9));
        expect_fail_st(&f, "seed a billion layers", RN_ERR_FORMAT, "layers", NULL);
    }
    MUTATE(good_seed, f) {
        poke_f32(&f, "retnet.retentions.1.retentions.2.xpos.scale", 0, 0.5f);
        expect_fail_st(&f, "seed xpos.scale wrong", RN_ERR_FORMAT, "retnet.retentions.1.retentions.2.xpos.scale", NULL);
    }
    MUTATE(good_seed, f) {
        poke_f32(&f, "proj", 7, NAN);
        expect_fail_st(&f, "seed NaN in proj", RN_ERR_FORMAT, "'proj'", NULL);
    }
    /* fla */
    MUTATE(good_fla, f) {
        set_meta(&f, "expand_k", cJSON_CreateNumber(2));
        expect_fail_st(&f, "fla expand_k 2", RN_ERR_FORMAT, "expand_k", NULL);
    }
    MUTATE(good_fla, f) {
        set_meta(&f, "expand_v", cJSON_CreateNumber(1e300));
        expect_fail_st(&f, "fla expand_v 1e300", RN_ERR_FORMAT, "expand_v", NULL);
    }
    MUTATE(good_fla, f) {
        set_meta(&f, "expand_v", cJSON_CreateNumber(-2));
        expect_fail_st(&f, "fla expand_v negative", RN_ERR_FORMAT, NULL, NULL);
    }
    MUTATE(good_fla, f) {
        set_meta(&f, "intermediate_size", NULL);
        set_meta(&f, "hidden_ratio", cJSON_CreateNumber(1e300));
        expect_fail_st(&f, "fla hidden_ratio 1e300", RN_ERR_FORMAT, "hidden_ratio", NULL);
    }
    MUTATE(good_fla, f) {
        set_meta(&f, "num_heads", cJSON_CreateNumber(7));
        expect_fail_st(&f, "fla heads not dividing", RN_ERR_FORMAT, "heads", NULL);
    }
    MUTATE(good_fla, f) {
        set_meta(&f, "tie_word_embeddings", cJSON_CreateTrue());
        expect_fail_st(&f, "fla tied config, untied file", RN_ERR_FORMAT, "lm_head.weight", NULL);
    }
    MUTATE(good_fla, f) {
        set_item(f.hdr, "model.layers.0.attn.g_norm_swish_gate.weight", NULL);
        expect_fail_st(&f, "fla without the head norm", RN_ERR_FORMAT, "g_norm", NULL);
    }
}

/* ------------------------------------------------------------ save */

static void save_errors(void) {
    rn_config c = config(RN_PRESET_TORCHSCALE, 16, 2, 32, 16, 1, 11);
    rn_model *m = random_model(&c, 1);
    rn_status st = rn_model_save(m, tp("no/such/dir/m.safetensors"));
    CHECK(st == RN_ERR_IO, "save into a missing directory: %s", rn_status_name(st));
    CHECK(strstr(rn_last_error(), "no/such/dir") != NULL, "save error does not name the path: %s", rn_last_error());
    /* Overwrites an existing file atomically, leaving no temporary. */
    spit(tp("over.safetensors"), "junk", 4);
    CHECK_OK(rn_model_save(m, tp("over.safetensors")));
    rn_model *m2 = NULL;
    CHECK_OK(rn_model_load(tp("over.safetensors"), &m2));
    rn_model_free(m2);
    rn_model_free(m);
}

/* ------------------------------------------------------------- .npy */

static void npy(void) {
    struct { int ndim; int64_t shape[4]; const char *shape_str; } cases[] = {
        {2, {3, 5}, "(3, 5)"}, {1, {7}, "(7,)"}, {3, {2, 3, 4}, "(2, 3, 4)"}, {4, {1, 2, 1, 3}, "(1, 2, 1, 3)"},
        {2, {100, 37}, "(100, 37)"}, {1, {0}, "(0,)"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        size_t n = 1;
        for (int i = 0; i < cases[k].ndim; i++) n *= (size_t)cases[k].shape[i];
        rn_real *x = malloc(sizeof(rn_real) * (n + 1));
        for (size_t i = 0; i < n; i++) x[i] = (rn_real)((double)i * 0.37 - 3.0 + 1e-9 * i);
        const char *p = tp("x.npy");
        CHECK_OK(rn_npy_save(p, x, cases[k].ndim, cases[k].shape));
        blob b = slurp(p);
        int ok = b.n >= 10 && memcmp(b.p, "\x93NUMPY", 6) == 0 && b.p[6] == 1 && b.p[7] == 0;
        CHECK(ok, "npy %s: bad magic or version", cases[k].shape_str);
        if (!ok) { free(b.p); free(x); continue; }
        size_t hl = b.p[8] | (size_t)b.p[9] << 8;
        CHECK((10 + hl) % 64 == 0, "npy: header not padded to 64 bytes (%zu)", 10 + hl);
        CHECK(b.n == 10 + hl + 4 * n, "npy %s: file size %zu, expected %zu", cases[k].shape_str, b.n, 10 + hl + 4 * n);
        char *dict = calloc(1, hl + 1);
        memcpy(dict, b.p + 10, hl < b.n - 10 ? hl : b.n - 10);
        CHECK(dict[hl - 1] == '\n', "npy: header does not end with a newline");
        CHECK(dict[0] == '{' && strchr(dict, '}') != NULL, "npy: header is not a dict: %s", dict);
        CHECK(strstr(dict, "'descr': '<f4'") != NULL, "npy: descr: %s", dict);
        CHECK(strstr(dict, "'fortran_order': False") != NULL, "npy: fortran_order: %s", dict);
        /* the shape tuple, with or without a trailing comma for ndim > 1 */
        char want[64], want2[64];
        snprintf(want, sizeof want, "'shape': %s", cases[k].shape_str);
        snprintf(want2, sizeof want2, "'shape': %.*s,)", (int)strlen(cases[k].shape_str) - 1, cases[k].shape_str);
        CHECK(strstr(dict, want) || strstr(dict, want2), "npy: shape %s not in %s", cases[k].shape_str, dict);
        for (size_t i = 0; i < hl - 1; i++)
            if (dict[i] < 32 || dict[i] > 126) { CHECK(0, "npy: non-printable header byte %zu", i); break; }
        size_t bad = 0;
        for (size_t i = 0; i < n && b.n == 10 + hl + 4 * n; i++) {
            float v;
            memcpy(&v, b.p + 10 + hl + 4 * i, 4);
            bad += v != (float)x[i];
        }
        CHECK(bad == 0, "npy %s: %zu data values wrong", cases[k].shape_str, bad);
        free(dict);
        free(b.p);
        free(x);
    }
    rn_real x[4] = {1, 2, 3, 4};
    int64_t sh[5] = {1, 1, 1, 1, 4}, neg[2] = {-1, 4};
    CHECK(rn_npy_save(tp("y.npy"), x, 0, sh) == RN_ERR_ARG, "npy: ndim 0 accepted");
    CHECK(rn_npy_save(tp("y.npy"), x, 5, sh) == RN_ERR_ARG, "npy: ndim 5 accepted");
    CHECK(rn_npy_save(tp("y.npy"), x, 2, neg) == RN_ERR_ARG, "npy: negative shape accepted");
    rn_status st = rn_npy_save(tp("no/such/dir/y.npy"), x, 1, sh + 4);
    CHECK(st == RN_ERR_IO && strstr(rn_last_error(), "no/such/dir"), "npy into a missing directory: %s (%s)",
          rn_status_name(st), rn_last_error());
}

/* ----------------------------------------------------- config JSON */

static void config_json(void) {
    /* Each preset's JSON round trip. */
    rn_config cs[3];
    cs[0] = config(RN_PRESET_TORCHSCALE, 48, 3, 96, 80, 2, 37);
    cs[0].tie_embed = 1; cs[0].act = RN_ACT_SWISH; cs[0].norm_eps = cs[0].head_eps = 1e-5;
    cs[1] = config(RN_PRESET_SEED, 48, 3, 48, 72, 2, 37);
    cs[2] = config(RN_PRESET_FLA, 48, 3, 72, 80, 2, 37);  /* expand_v 1.5 */
    for (int i = 0; i < 3; i++) {
        char *js = rn_config_to_json(&cs[i]);
        rn_config back;
        CHECK(js != NULL, "rn_config_to_json returned NULL");
        if (!js) continue;
        CHECK_OK(rn_config_from_json(js, &back));
        CHECK(same_config(&cs[i], &back), "%s: config JSON round trip changed it: %s", rn_preset_name(cs[i].preset), js);
        free(js);
    }
    rn_config c;
    /* torchscale's RetNetConfig defaults (its 3 heads do not divide its
     * value width 1280, so upstream's own default is unusable: refused). */
    CHECK(rn_config_from_json("{\"vocab_size\": 100}", &c) == RN_ERR_FORMAT, "torchscale defaults (Vd 1280, 3 heads) accepted");
    CHECK_OK(rn_config_from_json("{\"vocab_size\": 100, \"decoder_retention_heads\": 4}", &c));
    CHECK(c.preset == RN_PRESET_TORCHSCALE && c.dim == 768 && c.value_dim == 1280 && c.heads == 4 && c.ffn_dim == 1280 &&
          c.layers == 12 && c.vocab == 100 && !c.tie_embed && !c.scale_embed && c.act == RN_ACT_GELU,
          "torchscale defaults: d %d Vd %d H %d F %d L %d", c.dim, c.value_dim, c.heads, c.ffn_dim, c.layers);
    CHECK_OK(rn_config_from_json("{\"vocab_size\": 100, \"decoder_retention_heads\": 4, \"no_scale_embedding\": false}", &c));
    CHECK(c.scale_embed == 1, "no_scale_embedding false does not scale the embedding");
    /* fla's config.json as Hugging Face writes it (the 1.3B model: MLP 2816). */
    const char *fla13 = "{\"preset\": \"fla\", \"hidden_size\": 2048, \"num_hidden_layers\": 24, \"num_heads\": 8, "
                        "\"expand_k\": 1, \"expand_v\": 2, \"hidden_ratio\": 2, \"intermediate_size\": null, "
                        "\"norm_eps\": 1e-06, \"vocab_size\": 32000, \"tie_word_embeddings\": false}";
    rn_status st = rn_config_from_json(fla13, &c);
    CHECK(st == RN_OK && c.dim == 2048 && c.value_dim == 4096 && c.ffn_dim == 2816 && c.heads == 8 && c.layers == 24,
          "fla 1.3B config.json: %s (F %d, Vd %d)", rn_last_error(), c.ffn_dim, c.value_dim);
    /* Keys left out take RetNetConfig's defaults (expand_v 2, hidden_ratio 2);
     * a null hidden_ratio is the MLP's own default, 4. */
    st = rn_config_from_json("{\"preset\": \"fla\", \"hidden_size\": 512, \"num_hidden_layers\": 2, "
                             "\"num_heads\": 4, \"vocab_size\": 100}", &c);
    CHECK(st == RN_OK && c.value_dim == 1024 && c.ffn_dim == 768, "fla defaults: %s (F %d, Vd %d)", rn_last_error(),
          c.ffn_dim, c.value_dim);
    st = rn_config_from_json("{\"preset\": \"fla\", \"hidden_size\": 512, \"num_hidden_layers\": 2, "
                             "\"num_heads\": 4, \"vocab_size\": 100, \"hidden_ratio\": null}", &c);
    CHECK(st == RN_OK && c.ffn_dim == 1536, "fla hidden_ratio null: %s (F %d)", rn_last_error(), c.ffn_dim);
    /* Errors: RN_ERR_FORMAT, one line naming the key. */
    struct { const char *json, *needle; } bad[] = {
        {"", "JSON"}, {"[]", "JSON"}, {"{\"preset\": \"seed\"}", "layers"},
        {"{\"preset\": \"fla\", \"hidden_size\": 512, \"num_hidden_layers\": 2, \"num_heads\": 4, \"vocab_size\": 100, "
         "\"expand_v\": 1e308}", "expand_v"},
        {"{\"preset\": \"fla\", \"hidden_size\": -1000000000, \"num_hidden_layers\": 2, \"num_heads\": 4, "
         "\"vocab_size\": 100, \"hidden_ratio\": 1e9}", NULL},
        {"{\"vocab_size\": 100, \"decoder_layers\": 1000000000}", "layers"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        st = rn_config_from_json(bad[i].json, &c);
        const char *e = rn_last_error();
        CHECK(st == RN_ERR_FORMAT && !strchr(e, '\n') && (!bad[i].needle || strstr(e, bad[i].needle)),
              "config JSON %zu: %s: '%s'", i, rn_status_name(st), e);
    }
}

/* ------------------------------------------------------------- main */

static void cleanup(void) {
    DIR *d = opendir(tmpdir);
    if (!d) return;
    struct dirent *e;
    int leftovers = 0;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        if (strstr(e->d_name, ".tmp.")) leftovers++;
        char p[600];
        snprintf(p, sizeof p, "%s/%s", tmpdir, e->d_name);
        unlink(p);
    }
    closedir(d);
    CHECK(leftovers == 0, "%d temporary files left behind by atomic writes", leftovers);
    CHECK(rmdir(tmpdir) == 0, "cannot remove %s: %s", tmpdir, strerror(errno));
}

int main(void) {
    rn_set_threads(2);
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/retnet_test_io.XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 1; }
    printf("test_io (%s), files under %s\n", PRECISION, tmpdir);

    /* Round trips. */
    rn_config ts = config(RN_PRESET_TORCHSCALE, 48, 3, 96, 80, 2, 37);
    rn_config ts_tied = ts;
    ts_tied.tie_embed = 1; ts_tied.scale_embed = 1; ts_tied.embed_norm = 1; ts_tied.act = RN_ACT_SWISH;
    ts_tied.norm_eps = ts_tied.head_eps = 1e-5;
    rn_config seed2 = config(RN_PRESET_SEED, 48, 3, 96, 72, 2, 37);
    rn_config seed1 = config(RN_PRESET_SEED, 48, 3, 48, 72, 2, 37);
    rn_config fla = config(RN_PRESET_FLA, 48, 3, 96, 80, 2, 37);
    rn_config fla_tied = config(RN_PRESET_FLA, 32, 2, 32, 64, 1, 29);
    fla_tied.tie_embed = 1;
    rn_config odd = config(RN_PRESET_TORCHSCALE, 6, 3, 9, 5, 1, 3);  /* K = 2, Dv = 3 */
    round_trip(&ts, "torchscale untied");
    round_trip(&ts_tied, "torchscale tied, scaled, embed norm");
    round_trip(&seed2, "seed double_v_dim");
    round_trip(&seed1, "seed single v dim");
    round_trip(&fla, "fla untied");
    round_trip(&fla_tied, "fla tied");
    round_trip(&odd, "torchscale K=2 Dv=3");

    half_precision(&ts, "torchscale");
    half_precision(&seed2, "seed");
    half_precision(&fla, "fla");
    mixed_dtypes();
    quiet = 1;
    stored_16bit(&ts, "torchscale");
    stored_16bit(&ts_tied, "torchscale tied");
    stored_16bit(&seed2, "seed (transposed blocks)");
    stored_16bit(&fla, "fla");
    stored_16bit(&fla_tied, "fla tied");
    quiet = 0;

    /* Malformed files, mutated from good ones. */
    rn_model *m = random_model(&ts, 2), *ms = random_model(&seed2, 2), *mf = random_model(&fla, 2);
    char good[512], good_seed[512], good_fla[512];
    snprintf(good, sizeof good, "%s", tp("good.safetensors"));
    snprintf(good_seed, sizeof good_seed, "%s", tp("good_seed.safetensors"));
    snprintf(good_fla, sizeof good_fla, "%s", tp("good_fla.safetensors"));
    CHECK_OK(rn_model_save(m, good));
    CHECK_OK(rn_model_save(ms, good_seed));
    CHECK_OK(rn_model_save(mf, good_fla));
    rn_model_free(m); rn_model_free(ms); rn_model_free(mf);
    {
        stf f = st_read(good);  /* the unmodified rewrite loads: the mutations are the only fault */
        expect_load_ok(&f, "unmodified rewrite");
        st_free(&f);
    }
    malformed_container(good);
    malformed_entries(good);
    malformed_metadata(good, good_seed, good_fla);

    config_json();
    save_errors();
    npy();
    cleanup();
    CHECK_DONE();
}
