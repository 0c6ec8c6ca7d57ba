/* io.c: model files in safetensors (the PyTorch world's format), under the
 * tensor names of each preset (spec, RETNET.md) and their variants, read
 * from one file or several (shards); the config as JSON in
 * __metadata__["retnet"]. Every field read is validated before use. Which
 * format a model is in, and where its config is, is formats.c's part. */
#define _POSIX_C_SOURCE 200809L
#include "io.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <float.h>
#include <fcntl.h>
#include <stdarg.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_HEADER ((size_t)100 << 20)  /* 100 MiB of JSON is already absurd */

/* ------------------------------------------------- file tensor mapping */

/* A tensor as the file holds it: a block of rows [row0, row0+rows) of
 * the internal tensor at param offset off (cols wide), stored transposed
 * when transpose is set; or a constant buffer (values, checked on read). */
typedef struct {
    char name[112];
    int ndim;
    int64_t shape[2];        /* file shape */
    size_t off;              /* first element of the block in params */
    int rows, cols;          /* internal block shape */
    int transpose;
    double *buffer;          /* constant buffer values (rows) or NULL */
    int alias;               /* a second name of a block listed before it (a
                                tied head): optional, checked equal on read,
                                not written */
} file_tensor;

typedef struct {
    file_tensor *t;
    int n, cap;
    const char *prefix;      /* before every name added */
} file_list;

static file_tensor *ft_add(file_list *l, const char *name) {
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 64;
        file_tensor *t = realloc(l->t, sizeof *t * (size_t)cap);
        if (!t) return NULL;
        l->t = t; l->cap = cap;
    }
    file_tensor *t = &l->t[l->n++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s%s", l->prefix ? l->prefix : "", name);
    return t;
}

static void ft_free(file_list *l) {
    for (int i = 0; i < l->n; i++) free(l->t[i].buffer);
    free(l->t);
}

static const rn_tensor_info *find_kind(const rn_model *m, rn_tensor_kind k, int layer) {
    for (int i = 0; i < m->n_tensors; i++)
        if (m->tensors[i].kind == k && m->tensors[i].layer == layer) return &m->tensors[i];
    return NULL;
}

/* Adds a block of an internal tensor; tr = stored [in, out]. */
static int add_block(file_list *l, const rn_model *m, rn_tensor_kind k, int layer, int row0,
                     int rows, int tr, const char *fmt, ...) __attribute__((format(printf, 8, 9)));
static int add_block(file_list *l, const rn_model *m, rn_tensor_kind k, int layer, int row0,
                     int rows, int tr, const char *fmt, ...) {
    const rn_tensor_info *ti = find_kind(m, k, layer);
    if (!ti) return 1;  /* this architecture has no such tensor */
    char name[112];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    file_tensor *t = ft_add(l, name);
    if (!t) return 0;
    if (rows < 0) rows = ti->rows;
    t->off = ti->offset + (size_t)row0 * ti->cols;
    t->rows = rows; t->cols = ti->cols; t->transpose = tr;
    if (ti->cols == 1) { t->ndim = 1; t->shape[0] = rows; }
    else { t->ndim = 2; t->shape[0] = tr ? ti->cols : rows; t->shape[1] = tr ? rows : ti->cols; }
    return 1;
}

static int add_buffer(file_list *l, const char *name, int n, double *values) {
    file_tensor *t = ft_add(l, name);
    if (!t) { free(values); return 0; }
    t->ndim = 1; t->shape[0] = n; t->rows = n; t->cols = 1; t->buffer = values;
    return 1;
}

/* The head of a tied model under its own name, as files may still hold it
 * (equal to the embedding). */
static int add_tied_head(file_list *l, const rn_model *m, const char *name) {
    if (!m->cfg.tie_embed) return 1;
    if (!add_block(l, m, RN_T_EMBED, -1, 0, -1, 0, "%s", name)) return 0;
    l->t[l->n - 1].alias = 1;
    return 1;
}

/* The file tensors of m's preset under the names nm. */
static rn_status file_tensors(const rn_model *m, const rn_names *nm, file_list *l) {
    const rn_config *c = &m->cfg;
    int d = c->dim, Vd = c->value_dim, F = c->ffn_dim, H = c->heads, K = m->K, Dv = m->Dv;
    int ok = 1;
    memset(l, 0, sizeof *l);
    if (c->preset == RN_PRESET_TORCHSCALE) {
        const char *prefix = nm->hf_prefix ? "model." : "";
        const char *head = nm->hf_prefix ? "lm_head.weight" : "output_projection.weight";
        l->prefix = prefix;
        ok &= add_block(l, m, RN_T_EMBED, -1, 0, -1, 0, "embed_tokens.weight");
        ok &= add_block(l, m, RN_T_EMBED_NORM_W, -1, 0, -1, 0, "layernorm_embedding.weight");
        for (int i = 0; i < c->layers; i++) {
            ok &= add_block(l, m, RN_T_WQKVG, i, 0, d, 0, "layers.%d.retention.q_proj.weight", i);
            ok &= add_block(l, m, RN_T_WQKVG, i, d, d, 0, "layers.%d.retention.k_proj.weight", i);
            ok &= add_block(l, m, RN_T_WQKVG, i, 2 * d, Vd, 0, "layers.%d.retention.v_proj.weight", i);
            ok &= add_block(l, m, RN_T_WQKVG, i, 2 * d + Vd, Vd, 0, "layers.%d.retention.g_proj.weight", i);
            ok &= add_block(l, m, RN_T_WO, i, 0, -1, 0, "layers.%d.retention.out_proj.weight", i);
            ok &= add_block(l, m, RN_T_NORM1_W, i, 0, -1, 0, "layers.%d.retention_layer_norm.weight", i);
            ok &= add_block(l, m, RN_T_NORM2_W, i, 0, -1, 0, "layers.%d.final_layer_norm.weight", i);
            ok &= add_block(l, m, RN_T_FC1, i, 0, F, 0, "layers.%d.ffn.fc1.weight", i);
            ok &= add_block(l, m, RN_T_FC1, i, F, F, 0, "layers.%d.ffn.gate.weight", i);
            ok &= add_block(l, m, RN_T_FC2, i, 0, -1, 0, "layers.%d.ffn.fc2.weight", i);
        }
        ok &= add_block(l, m, RN_T_FINAL_W, -1, 0, -1, 0, "layer_norm.weight");
        l->prefix = "";  /* the head has no prefix in the Hugging Face port */
        ok &= add_block(l, m, RN_T_HEAD, -1, 0, -1, 0, "%s", head);
        ok &= add_tied_head(l, m, head);
        l->prefix = prefix;
        double *angle = malloc(sizeof(double) * (size_t)K), *decay = malloc(sizeof(double) * (size_t)H);
        if (angle) for (int j = 0; j < K; j++) angle[j] = m->rot_freq[j / 2];
        if (decay) for (int h = 0; h < H; h++) decay[h] = m->head[h].lambda;
        ok &= add_buffer(l, "retnet_rel_pos.angle", K, angle) && angle;
        ok &= add_buffer(l, "retnet_rel_pos.decay", H, decay) && decay;
    } else if (c->preset == RN_PRESET_SEED) {
        ok &= add_block(l, m, RN_T_EMBED, -1, 0, -1, 0, "embed.weight");
        ok &= add_block(l, m, RN_T_HEAD, -1, 0, -1, 1, "proj");
        for (int i = 0; i < c->layers; i++) {
            const char *p = "retnet.retentions";
            for (int h = 0; h < H; h++) {
                ok &= add_block(l, m, RN_T_WQKVG, i, h * K, K, 1, "%s.%d.retentions.%d.W_Q", p, i, h);
                ok &= add_block(l, m, RN_T_WQKVG, i, d + h * K, K, 1, "%s.%d.retentions.%d.W_K", p, i, h);
                ok &= add_block(l, m, RN_T_WQKVG, i, 2 * d + h * Dv, Dv, 1, "%s.%d.retentions.%d.W_V", p, i, h);
            }
            ok &= add_block(l, m, RN_T_WQKVG, i, 2 * d + Vd, Vd, 1, "%s.%d.W_G", p, i);
            ok &= add_block(l, m, RN_T_WO, i, 0, -1, 1, "%s.%d.W_O", p, i);
            ok &= add_block(l, m, RN_T_HN_W, i, 0, -1, 0, "%s.%d.group_norm.weight", p, i);
            ok &= add_block(l, m, RN_T_HN_B, i, 0, -1, 0, "%s.%d.group_norm.bias", p, i);
            ok &= add_block(l, m, RN_T_FC1, i, 0, -1, 0, "retnet.ffns.%d.0.weight", i);
            ok &= add_block(l, m, RN_T_FC1_B, i, 0, -1, 0, "retnet.ffns.%d.0.bias", i);
            ok &= add_block(l, m, RN_T_FC2, i, 0, -1, 0, "retnet.ffns.%d.2.weight", i);
            ok &= add_block(l, m, RN_T_FC2_B, i, 0, -1, 0, "retnet.ffns.%d.2.bias", i);
            ok &= add_block(l, m, RN_T_NORM1_W, i, 0, -1, 0, "retnet.layer_norms_1.%d.weight", i);
            ok &= add_block(l, m, RN_T_NORM1_B, i, 0, -1, 0, "retnet.layer_norms_1.%d.bias", i);
            ok &= add_block(l, m, RN_T_NORM2_W, i, 0, -1, 0, "retnet.layer_norms_2.%d.weight", i);
            ok &= add_block(l, m, RN_T_NORM2_B, i, 0, -1, 0, "retnet.layer_norms_2.%d.bias", i);
            for (int h = 0; h < H; h++) {
                char name[112];
                double *z = malloc(sizeof(double) * (size_t)(K / 2));
                if (z) for (int j = 0; j < K / 2; j++) z[j] = (2.0 * j + 0.4 * K) / (1.4 * K);
                snprintf(name, sizeof name, "%s.%d.retentions.%d.xpos.scale", p, i, h);
                ok &= add_buffer(l, name, K / 2, z) && z;
            }
        }
    } else {
        ok &= add_block(l, m, RN_T_EMBED, -1, 0, -1, 0, "model.embeddings.weight");
        for (int i = 0; i < c->layers; i++) {
            const char *p = "model.layers";
            ok &= add_block(l, m, RN_T_NORM1_W, i, 0, -1, 0, "%s.%d.attn_norm.weight", p, i);
            ok &= add_block(l, m, RN_T_WQKVG, i, 0, d, 0, "%s.%d.attn.q_proj.weight", p, i);
            ok &= add_block(l, m, RN_T_WQKVG, i, d, d, 0, "%s.%d.attn.k_proj.weight", p, i);
            ok &= add_block(l, m, RN_T_WQKVG, i, 2 * d, Vd, 0, "%s.%d.attn.v_proj.weight", p, i);
            ok &= add_block(l, m, RN_T_WQKVG, i, 2 * d + Vd, Vd, 0, "%s.%d.attn.g_proj.weight", p, i);
            ok &= add_block(l, m, RN_T_WO, i, 0, -1, 0, "%s.%d.attn.o_proj.weight", p, i);
            ok &= add_block(l, m, RN_T_HN_W, i, 0, -1, 0, "%s.%d.attn.%s.weight", p, i,
                            nm->g_norm_alias ? "g_norm" : "g_norm_swish_gate");
            ok &= add_block(l, m, RN_T_NORM2_W, i, 0, -1, 0, "%s.%d.mlp_norm.weight", p, i);
            /* fused: [gate; up] is the internal layout of the GLU block */
            ok &= add_block(l, m, RN_T_FC1, i, 0, nm->fused_mlp ? 2 * F : F, 0, "%s.%d.mlp.gate_proj.weight", p, i);
            if (!nm->fused_mlp) ok &= add_block(l, m, RN_T_FC1, i, F, F, 0, "%s.%d.mlp.up_proj.weight", p, i);
            ok &= add_block(l, m, RN_T_FC2, i, 0, -1, 0, "%s.%d.mlp.down_proj.weight", p, i);
        }
        ok &= add_block(l, m, RN_T_FINAL_W, -1, 0, -1, 0, "model.norm.weight");
        ok &= add_block(l, m, RN_T_HEAD, -1, 0, -1, 0, "lm_head.weight");
        ok &= add_tied_head(l, m, "lm_head.weight");
    }
    if (!ok) { ft_free(l); return rni_fail(RN_ERR_NOMEM, "out of memory"); }
    return RN_OK;
}

/* ---------------------------------------------------------- dtypes */

/* The safetensors name and element size of each rn_dtype (read and written). */
static const struct { const char *name; size_t size; } dtypes[] = {
    [RN_DTYPE_F32] = {"F32", 4}, [RN_DTYPE_BF16] = {"BF16", 2}, [RN_DTYPE_F64] = {"F64", 8}, [RN_DTYPE_F16] = {"F16", 2}};

static int parse_dtype(const char *s, rn_dtype *dt, size_t *size) {
    for (size_t i = 0; i < sizeof dtypes / sizeof *dtypes; i++)
        if (strcmp(s, dtypes[i].name) == 0) { *dt = (rn_dtype)i; *size = dtypes[i].size; return 1; }
    return 0;
}

static double half_to_double(uint16_t h) {
    int s = h >> 15, e = (h >> 10) & 31, f = h & 1023;
    double v;
    if (e == 0) v = ldexp(f, -24);
    else if (e == 31) v = f ? NAN : INFINITY;
    else v = ldexp(f + 1024, e - 25);
    return s ? -v : v;
}

/* Element i of raw little-endian data (unaligned-safe). */
static double read_elem(const unsigned char *p, rn_dtype dt, size_t i) {
    switch (dt) {
    case RN_DTYPE_F32: { float f; memcpy(&f, p + 4 * i, 4); return f; }
    case RN_DTYPE_F64: { double f; memcpy(&f, p + 8 * i, 8); return f; }
    case RN_DTYPE_F16: { uint16_t h; memcpy(&h, p + 2 * i, 2); return half_to_double(h); }
    case RN_DTYPE_BF16: {
        uint16_t h; memcpy(&h, p + 2 * i, 2);
        uint32_t u = (uint32_t)h << 16; float f; memcpy(&f, &u, 4); return f;
    }
    default: return 0;
    }
}

/* ------------------------------------------------------------- load */

typedef struct {
    const char *name;
    rn_dtype dt;
    size_t esize, begin, end;
    int ndim;
    int64_t shape[8];
    int used;
} st_entry;

static int cmp_begin(const void *a, const void *b) {
    const st_entry *x = *(st_entry *const *)a, *y = *(st_entry *const *)b;
    return x->begin < y->begin ? -1 : x->begin > y->begin;
}

static int cmp_name(const void *a, const void *b) {
    return strcmp((*(st_entry *const *)a)->name, (*(st_entry *const *)b)->name);
}

static void shape_str(char *buf, size_t n, int ndim, const int64_t *shape) {
    size_t o = snprintf(buf, n, "[");
    for (int i = 0; i < ndim && o < n; i++) o += snprintf(buf + o, n - o, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (o < n) snprintf(buf + o, n - o, "]");
}

/* Parses and validates the header: every entry's dtype, shape, offsets
 * inside the data section, sizes that match, no overlaps. */
static rn_status parse_header(const char *path, cJSON *hdr, size_t data_len, st_entry **out, int *n_out,
                              const char **meta_json) {
    *out = NULL; *n_out = 0; *meta_json = NULL;
    int n = 0;
    for (cJSON *it = hdr->child; it; it = it->next) n++;
    st_entry *e = calloc((size_t)n + 1, sizeof *e);
    st_entry **sorted = calloc((size_t)n + 1, sizeof *sorted);
    if (!e || !sorted) { free(e); free(sorted); return rni_fail(RN_ERR_NOMEM, "out of memory"); }
    int k = 0;
    rn_status st = RN_OK;
    for (cJSON *it = hdr->child; it; it = it->next) {
        if (strcmp(it->string, "__metadata__") == 0) {
            if (!cJSON_IsObject(it)) { st = rni_fail(RN_ERR_FORMAT, "%s: __metadata__ is not an object", path); break; }
            cJSON *r = cJSON_GetObjectItemCaseSensitive(it, "retnet");
            if (r && !cJSON_IsString(r)) { st = rni_fail(RN_ERR_FORMAT, "%s: __metadata__.retnet is not a string", path); break; }
            if (r) *meta_json = r->valuestring;
            continue;
        }
        st_entry *t = &e[k];
        t->name = it->string;
        cJSON *dt = cJSON_GetObjectItemCaseSensitive(it, "dtype");
        cJSON *sh = cJSON_GetObjectItemCaseSensitive(it, "shape");
        cJSON *of = cJSON_GetObjectItemCaseSensitive(it, "data_offsets");
        if (!cJSON_IsObject(it) || !cJSON_IsString(dt) || !cJSON_IsArray(sh) || !cJSON_IsArray(of) ||
            cJSON_GetArraySize(of) != 2) {
            st = rni_fail(RN_ERR_FORMAT, "%s: tensor '%s' has a malformed header entry", path, t->name);
            break;
        }
        if (!parse_dtype(dt->valuestring, &t->dt, &t->esize)) {
            st = rni_fail(RN_ERR_FORMAT, "%s: tensor '%s' has unsupported dtype %s (F32, F16, BF16, F64)", path, t->name, dt->valuestring);
            break;
        }
        t->ndim = cJSON_GetArraySize(sh);
        if (t->ndim > 8) { st = rni_fail(RN_ERR_FORMAT, "%s: tensor '%s' has %d dimensions", path, t->name, t->ndim); break; }
        size_t count = 1;
        for (int i = 0; i < t->ndim && st == RN_OK; i++) {
            cJSON *v = cJSON_GetArrayItem(sh, i);
            if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 9e15 || v->valuedouble != floor(v->valuedouble) ||
                !rni_mul_ok(count, (size_t)v->valuedouble, &count))
                st = rni_fail(RN_ERR_FORMAT, "%s: tensor '%s' has an invalid shape", path, t->name);
            else t->shape[i] = (int64_t)v->valuedouble;
        }
        if (st != RN_OK) break;
        cJSON *b0 = cJSON_GetArrayItem(of, 0), *b1 = cJSON_GetArrayItem(of, 1);
        size_t bytes;
        if (!cJSON_IsNumber(b0) || !cJSON_IsNumber(b1) || b0->valuedouble < 0 || b1->valuedouble < b0->valuedouble ||
            b1->valuedouble > (double)data_len || b0->valuedouble != floor(b0->valuedouble) ||
            b1->valuedouble != floor(b1->valuedouble)) {
            st = rni_fail(RN_ERR_FORMAT, "%s: tensor '%s' has invalid data offsets (want integers 0 <= begin <= end <= %zu, the data size)%s",
                         path, t->name, data_len,
                         cJSON_IsNumber(b1) && b1->valuedouble > (double)data_len ? ": a truncated file?" : "");
            break;
        }
        t->begin = (size_t)b0->valuedouble; t->end = (size_t)b1->valuedouble;
        if (!rni_mul_ok(count, t->esize, &bytes)) {
            st = rni_fail(RN_ERR_FORMAT, "%s: tensor '%s' has a shape too large for its dtype", path, t->name);
            break;
        }
        if (bytes != t->end - t->begin) {
            st = rni_fail(RN_ERR_FORMAT, "%s: tensor '%s' holds %zu bytes but its shape and dtype need %zu", path, t->name,
                         t->end - t->begin, bytes);
            break;
        }
        sorted[k] = t;
        k++;
    }
    if (st == RN_OK) {
        qsort(sorted, (size_t)k, sizeof *sorted, cmp_begin);
        for (int i = 1; i < k; i++)
            if (sorted[i]->begin < sorted[i - 1]->end) {
                st = rni_fail(RN_ERR_FORMAT, "%s: tensors '%s' and '%s' overlap", path, sorted[i - 1]->name, sorted[i]->name);
                break;
            }
    }
    if (st == RN_OK) {
        /* JSON objects may repeat a key (cJSON keeps both): refuse. */
        qsort(sorted, (size_t)k, sizeof *sorted, cmp_name);
        for (int i = 1; i < k; i++)
            if (strcmp(sorted[i]->name, sorted[i - 1]->name) == 0) {
                st = rni_fail(RN_ERR_FORMAT, "%s: tensor '%s' appears twice in the header", path, sorted[i]->name);
                break;
            }
    }
    free(sorted);
    if (st != RN_OK) { free(e); return st; }
    *out = e; *n_out = k;
    return RN_OK;
}

/* An open safetensors file: mapped, header parsed and validated. */
typedef struct {
    const char *path;
    unsigned char *map;
    size_t size;
    cJSON *hdr;
    const char *config;          /* __metadata__["retnet"] or NULL */
    st_entry *e;
    int ne;
    const unsigned char *data;   /* the data section */
    size_t data_len;
} st_file;

static void st_close(st_file *f) {
    free(f->e);
    cJSON_Delete(f->hdr);
    if (f->map) munmap(f->map, f->size);
    memset(f, 0, sizeof *f);
}

/* FNV-1a 64 of the data section: detects truncated or bit-flipped files. */
static uint64_t fnv1a(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}
#define FNV_INIT 0xcbf29ce484222325ull

/* FNV-1a 64 of the metadata: every key and string value, in order, but
 * the checksums. Checkpoints store it (a flipped digit of the learning rate
 * or the step would otherwise load); the tensor entries need none, as a
 * flip in one of them breaks their agreement with the others. */
static uint64_t meta_hash(const cJSON *meta) {
    uint64_t h = FNV_INIT;
    for (const cJSON *it = meta ? meta->child : NULL; it; it = it->next)
        if (cJSON_IsString(it) && strncmp(it->string, "checksum_", 9) != 0) {
            h = fnv1a(h, it->string, strlen(it->string) + 1);
            h = fnv1a(h, it->valuestring, strlen(it->valuestring) + 1);
        }
    return h;
}

/* A stored checksum (hex) against h. */
static int sum_matches(const char *sum, uint64_t h) {
    char want[32];
    snprintf(want, sizeof want, "%016llx", (unsigned long long)h);
    return strcmp(sum, want) == 0;
}

static const char *st_meta(const st_file *f, const char *key) {
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(f->hdr, "__metadata__");
    const cJSON *v = m ? cJSON_GetObjectItemCaseSensitive(m, key) : NULL;
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Refuses (before anything is allocated) a config whose parameters cannot
 * fit in data_len bytes of files at 2 bytes each. */
static rn_status config_fits(const char *path, const rn_config *cfg, size_t data_len) {
    size_t n = rn_config_num_params(cfg), bytes;
    if (!rni_mul_ok(n, 2, &bytes) || bytes > data_len)
        return rni_fail(RN_ERR_FORMAT, "%s: the config needs %zu parameters, more than the file's %zu data bytes hold",
                       path, n, data_len);
    return RN_OK;
}

/* The config of an open file, refused when it cannot fit (config_fits). */
static rn_status st_config(const st_file *f, rn_config *cfg) {
    rn_status st = rn_config_from_json(f->config, cfg);
    if (st != RN_OK) {
        char msg[512];  /* rni_fail formats into the buffer rn_last_error returns */
        snprintf(msg, sizeof msg, "%s", rn_last_error());
        return rni_fail(st, "%s: %s", f->path, msg);
    }
    return config_fits(f->path, cfg, f->data_len);
}

static rn_status st_open(const char *path, st_file *f) {
    memset(f, 0, sizeof *f);
    f->path = path;
    int fd = open(path, O_RDONLY);
    if (fd < 0) return rni_fail(RN_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return rni_fail(RN_ERR_IO, "%s is not a regular file", path);
    }
    f->size = (size_t)sb.st_size;
    if (f->size < 8) { close(fd); return rni_fail(RN_ERR_FORMAT, "%s: too short for a safetensors file (%zu bytes)", path, f->size); }
    /* Memory-mapped: weights are read straight from the page cache. */
    f->map = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (f->map == MAP_FAILED) {
        f->map = NULL;
        return rni_fail(RN_ERR_IO, "cannot map %s: %s", path, strerror(errno));
    }
    rn_status st = RN_OK;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | f->map[i];
    if (hlen > f->size - 8) {
        st = rni_fail(RN_ERR_FORMAT, "%s: header length %llu exceeds the file size %zu (truncated or not safetensors)", path,
                     (unsigned long long)hlen, f->size);
        goto fail;
    }
    if (hlen > MAX_HEADER) {
        st = rni_fail(RN_ERR_FORMAT, "%s: header length %llu is more than the %zu bytes a header may have", path,
                     (unsigned long long)hlen, MAX_HEADER);
        goto fail;
    }
    const char *hdr_end = NULL, *hdr_lim = (const char *)f->map + 8 + hlen;
    f->hdr = cJSON_ParseWithLengthOpts((const char *)f->map + 8, (size_t)hlen, &hdr_end, 0);
    if (!f->hdr || !cJSON_IsObject(f->hdr)) { st = rni_fail(RN_ERR_FORMAT, "%s: header is not a valid JSON object", path); goto fail; }
    /* Only whitespace may pad the JSON (as the reference reader demands). */
    for (const char *p = hdr_end; p && p < hdr_lim; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            st = rni_fail(RN_ERR_FORMAT, "%s: header has stray bytes after its JSON (at header offset %zu)", path,
                         (size_t)(p - (const char *)f->map - 8));
            goto fail;
        }
    f->data = f->map + 8 + hlen;
    f->data_len = f->size - 8 - (size_t)hlen;
    if ((st = parse_header(path, f->hdr, f->data_len, &f->e, &f->ne, &f->config)) != RN_OK) goto fail;
    const char *sum = st_meta(f, "checksum_fnv1a64"), *msum = st_meta(f, "checksum_meta_fnv1a64");
    if ((sum && !sum_matches(sum, fnv1a(FNV_INIT, f->data, f->data_len))) ||
        (msum && !sum_matches(msum, meta_hash(cJSON_GetObjectItemCaseSensitive(f->hdr, "__metadata__"))))) {
        st = rni_fail(RN_ERR_FORMAT, "%s: checksum mismatch (file corrupted or truncated)", path);
        goto fail;
    }
    return RN_OK;
fail:
    st_close(f);
    return st;
}

static st_entry *st_find(st_file *f, const char *name) {
    for (int i = 0; i < f->ne; i++)
        if (strcmp(f->e[i].name, name) == 0) return &f->e[i];
    return NULL;
}

/* ------------------------------------------------------- tensor sets */

/* A tensor of a set: its name, file and header entry. */
typedef struct {
    const char *name;
    int file;
    st_entry *e;
} set_entry;

struct rn_tensor_set {
    const char *label;
    st_file *f;              /* (nf) */
    int nf;
    set_entry *idx;          /* (nidx) sorted by name */
    int nidx;
    size_t data_len;         /* of all files */
};

static int cmp_set_name(const void *a, const void *b) {
    return strcmp(((const set_entry *)a)->name, ((const set_entry *)b)->name);
}

void rni_tensor_set_close(rn_tensor_set *s) {
    if (!s) return;
    for (int i = 0; i < s->nf; i++) st_close(&s->f[i]);
    free(s->f);
    free(s->idx);
    free(s);
}

rn_status rni_tensor_set_open(const char *label, const char *const *paths, int n, rn_tensor_set **out) {
    *out = NULL;
    rn_tensor_set *s = calloc(1, sizeof *s);
    if (!s || !(s->f = calloc((size_t)n + 1, sizeof *s->f))) {
        free(s);
        return rni_fail(RN_ERR_NOMEM, "out of memory");
    }
    s->label = label;
    rn_status st = RN_OK;
    size_t total = 0;
    for (int i = 0; i < n && st == RN_OK; i++)
        if ((st = st_open(paths[i], &s->f[i])) == RN_OK) {
            s->nf++;
            total += (size_t)s->f[i].ne;
            s->data_len += s->f[i].data_len;
        }
    if (st == RN_OK && !(s->idx = calloc(total + 1, sizeof *s->idx))) st = rni_fail(RN_ERR_NOMEM, "out of memory");
    for (int i = 0; st == RN_OK && i < s->nf; i++)
        for (int j = 0; j < s->f[i].ne; j++) s->idx[s->nidx++] = (set_entry){s->f[i].e[j].name, i, &s->f[i].e[j]};
    if (st == RN_OK) {
        qsort(s->idx, (size_t)s->nidx, sizeof *s->idx, cmp_set_name);
        for (int i = 1; i < s->nidx && st == RN_OK; i++)
            if (strcmp(s->idx[i].name, s->idx[i - 1].name) == 0)
                st = rni_fail(RN_ERR_FORMAT, "%s: tensor '%s' is in both %s and %s", label, s->idx[i].name,
                             s->f[s->idx[i - 1].file].path, s->f[s->idx[i].file].path);
    }
    if (st != RN_OK) { rni_tensor_set_close(s); return st; }
    *out = s;
    return RN_OK;
}

const char *rni_tensor_set_meta(const rn_tensor_set *s, const char *key) {
    return s->nf ? st_meta(&s->f[0], key) : NULL;
}

static set_entry *set_find(const rn_tensor_set *s, const char *name) {
    set_entry key = {name, 0, NULL};
    return s->nidx ? bsearch(&key, s->idx, (size_t)s->nidx, sizeof *s->idx, cmp_set_name) : NULL;
}

int rni_tensor_set_find(const rn_tensor_set *s, const char *name, int *ndim, int64_t *shape) {
    const set_entry *e = set_find(s, name);
    if (!e) return -1;
    if (ndim) *ndim = e->e->ndim;
    if (shape) memcpy(shape, e->e->shape, sizeof e->e->shape);
    return e->file;
}

/* v is finite and stays finite as rn_real (an F64 1e300 would not in float). */
static int real_ok(double v) {
#ifdef RETNET_DOUBLE
    return fabs(v) <= DBL_MAX;
#else
    return fabs(v) <= FLT_MAX;
#endif
}

/* Reads one file tensor into m's parameters, or checks a buffer or an
 * alias against what it must hold. */
static rn_status read_tensor(rn_model *m, const file_tensor *t, const st_file *f, const st_entry *en) {
    const char *path = f->path;
    if (en->ndim != t->ndim || en->shape[0] != t->shape[0] || (t->ndim == 2 && en->shape[1] != t->shape[1])) {
        char want[64], got[64];
        shape_str(want, sizeof want, t->ndim, t->shape);
        shape_str(got, sizeof got, en->ndim, en->shape);
        return rni_fail(RN_ERR_FORMAT, "%s: tensor '%s' has shape %s, the config needs %s", path, t->name, got, want);
    }
    const unsigned char *src = f->data + en->begin;
    if (t->buffer) {
        for (int j = 0; j < t->rows; j++) {
            double v = read_elem(src, en->dt, (size_t)j), want = t->buffer[j];
            /* half precision files (a PyTorch model cast and saved) round them */
            double tol = en->dt == RN_DTYPE_BF16 ? 1e-2 : en->dt == RN_DTYPE_F16 ? 1e-3 : 1e-5;
            if (!(fabs(v - want) <= tol * fabs(want) + 1e-6))
                return rni_fail(RN_ERR_FORMAT, "%s: buffer '%s'[%d] = %g disagrees with the config (%g)", path, t->name, j, v, want);
        }
        return RN_OK;
    }
    rn_real *dst = m->params + t->off;
    size_t rows = (size_t)t->rows, cols = (size_t)t->cols;
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < cols; c++) {
            /* internal (r, c) <- file (c, r) when transposed */
            double v = read_elem(src, en->dt, t->transpose ? c * rows + r : r * cols + c);
            if (!real_ok(v)) return rni_fail(RN_ERR_FORMAT, "%s: tensor '%s' holds a non-finite value", path, t->name);
            if (!t->alias) dst[r * cols + c] = (rn_real)v;
            else if (dst[r * cols + c] != (rn_real)v)
                return rni_fail(RN_ERR_FORMAT, "%s: tensor '%s' differs from the embedding it is tied to (the config ties them)",
                               path, t->name);
        }
    return RN_OK;
}

rn_status rni_tensor_set_model(rn_tensor_set *s, const rn_config *cfg, const rn_names *names, rn_model **out) {
    *out = NULL;
    rn_status st = config_fits(s->label, cfg, s->data_len);
    if (st != RN_OK) return st;
    rn_model *m = NULL;
    file_list fl = {0};
    for (int i = 0; i < s->nidx; i++) s->idx[i].e->used = 0;
    if ((st = rn_model_create(cfg, &m)) == RN_OK) st = file_tensors(m, names, &fl);
    for (int i = 0; i < fl.n && st == RN_OK; i++) {
        const file_tensor *t = &fl.t[i];
        set_entry *se = set_find(s, t->name);
        if (se) {
            se->e->used = 1;
            st = read_tensor(m, t, &s->f[se->file], se->e);
        } else if (!t->buffer && !t->alias) {  /* buffers and aliases are optional on read */
            st = rni_fail(RN_ERR_FORMAT, "%s: missing tensor '%s'", s->label, t->name);
        }
    }
    for (int i = 0; i < s->nidx && st == RN_OK; i++)
        if (!s->idx[i].e->used)
            st = rni_fail(RN_ERR_FORMAT, "%s: unknown tensor '%s' for the %s preset", s->f[s->idx[i].file].path,
                         s->idx[i].name, rn_preset_name(cfg->preset));
    ft_free(&fl);
    if (st != RN_OK) { rn_model_free(m); return st; }
    *out = m;
    return RN_OK;
}

/* ------------------------------------------------------------- save */

/* A tensor to write: count elements produced by get(ctx, i). */
typedef struct {
    const char *name;
    int ndim;
    int64_t shape[2];
    size_t count;
    double (*get)(const void *ctx, size_t i);
    const void *ctx;
} st_out;

/* Element producer of one file tensor from values laid out like params. */
typedef struct { const rn_real *values; const file_tensor *t; } model_src;

static double model_get(const void *ctx, size_t j) {
    const model_src *s = ctx;
    const file_tensor *t = s->t;
    if (t->buffer) return t->buffer[j];
    /* file element j of a transposed block is internal (j % rows, j / rows) */
    if (t->transpose) return s->values[t->off + (j % t->rows) * t->cols + j / t->rows];
    return s->values[t->off + j];
}

static double flat_get(const void *ctx, size_t j) { return ((const rn_real *)ctx)[j]; }

/* v rounded to IEEE half precision, to nearest even, as its bits; *ok = 0
 * when |v| rounds beyond 65504 (the caller refuses it). */
static uint16_t f16_bits(double v, int *ok) {
    uint16_t sign = signbit(v) ? 0x8000 : 0;
    double a = fabs(v);
    if (isnan(v)) return 0x7e00;
    if (a >= 65520.0) { *ok = 0; return sign | 0x7c00; }  /* 65520: halfway to 2^16 */
    int e;
    frexp(a, &e);                               /* a = m 2^e, m in [0.5, 1) */
    int E = a == 0 ? -15 : e - 1;               /* a = 1.f 2^E */
    double q = ldexp(1.0, (E >= -14 ? E : -14) - 10);  /* the spacing at a (subnormals: 2^-24) */
    double n = nearbyint(a / q);                /* a / q is exact; ties to even */
    if (E < -14) return sign | (uint16_t)n;     /* subnormal (n = 1024 is the least normal's bits) */
    if (n == 2048) { n = 1024; E++; }           /* rounded up to the next binade */
    return sign | (uint16_t)((E + 15) << 10) | (uint16_t)(n - 1024);
}

/* v rounded to bfloat16, to nearest even, as the bits of its upper half. */
static uint16_t bf16_bits(double v) {
    float f = (float)v;
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);  /* NaN stays NaN */
    /* (float)v rounded onto a midpoint of the bf16 grid: v itself decides */
    if ((u & 0xffffu) == 0x8000u && (double)f != v) return (uint16_t)((u >> 16) + (fabs(v) > fabs((double)f)));
    u += 0x7fffu + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

/* Streams the tensors through fn in chunks of dtype bytes. */
static rn_status st_stream(const st_out *t, int n, rn_dtype dt, rn_status (*fn)(void *, const void *, size_t), void *arg) {
    union { float f[1024]; double d[1024]; uint16_t h[1024]; } buf;
    rn_status st = RN_OK;
    for (int i = 0; i < n && st == RN_OK; i++) {
        size_t nb = 0;
        for (size_t j = 0; j < t[i].count && st == RN_OK; j++) {
            double v = t[i].get(t[i].ctx, j);
            int ok = 1;
            if (dt == RN_DTYPE_F64) buf.d[nb++] = v;
            else if (dt == RN_DTYPE_BF16) buf.h[nb++] = bf16_bits(v);
            else if (dt == RN_DTYPE_F16) buf.h[nb++] = f16_bits(v, &ok);
            else buf.f[nb++] = (float)v;
            if (!ok) return rni_fail(RN_ERR_ARG, "tensor '%s' holds %g, beyond the range of f16 (65504)", t[i].name, v);
            if (nb == 1024 || j + 1 == t[i].count) { st = fn(arg, &buf, nb * dtypes[dt].size); nb = 0; }
        }
    }
    return st;
}

static rn_status hash_chunk(void *arg, const void *p, size_t n) {
    *(uint64_t *)arg = fnv1a(*(uint64_t *)arg, p, n);
    return RN_OK;
}

static rn_status write_chunk(void *arg, const void *p, size_t n) { return rn_atomic_write(arg, p, n); }

/* Writes a safetensors file atomically, with the FNV-1a checksum of the
 * data section in the metadata. meta is consumed. */
static rn_status st_write(const char *path, cJSON *meta, const st_out *t, int n, rn_dtype dt) {
    rn_status st = RN_OK;
    cJSON *hdr = cJSON_CreateObject();
    char *js = NULL;
    if (!hdr || !meta) { cJSON_Delete(hdr); cJSON_Delete(meta); return rni_fail(RN_ERR_NOMEM, "out of memory"); }
    uint64_t h = FNV_INIT;
    if ((st = st_stream(t, n, dt, hash_chunk, &h)) != RN_OK) {  /* refused before any file is made */
        cJSON_Delete(hdr);
        cJSON_Delete(meta);
        return st;
    }
    char sum[32];
    snprintf(sum, sizeof sum, "%016llx", (unsigned long long)h);
    cJSON_AddStringToObject(meta, "checksum_fnv1a64", sum);
    cJSON_AddItemToObject(hdr, "__metadata__", meta);
    size_t off = 0, es = dtypes[dt].size;
    for (int i = 0; i < n; i++) {
        cJSON *o = cJSON_AddObjectToObject(hdr, t[i].name);
        cJSON_AddStringToObject(o, "dtype", dtypes[dt].name);
        cJSON *sh = cJSON_AddArrayToObject(o, "shape");
        for (int j = 0; j < t[i].ndim; j++) cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)t[i].shape[j]));
        cJSON *of = cJSON_AddArrayToObject(o, "data_offsets");
        cJSON_AddItemToArray(of, cJSON_CreateNumber((double)off));
        cJSON_AddItemToArray(of, cJSON_CreateNumber((double)(off + t[i].count * es)));
        off += t[i].count * es;
    }
    js = cJSON_PrintUnformatted(hdr);
    cJSON_Delete(hdr);
    if (!js) return rni_fail(RN_ERR_NOMEM, "out of memory");
    size_t jl = strlen(js), padded = (jl + 7) & ~(size_t)7;
    unsigned char lenb[8];
    for (int i = 0; i < 8; i++) lenb[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    rn_atomic_file af;
    if ((st = rn_atomic_open(&af, path)) == RN_OK) {
        st = rn_atomic_write(&af, lenb, 8);
        if (st == RN_OK) st = rn_atomic_write(&af, js, jl);
        if (st == RN_OK) st = rn_atomic_write(&af, "        ", padded - jl);
        if (st == RN_OK) st = st_stream(t, n, dt, write_chunk, &af);
        if (st == RN_OK) st = rn_atomic_commit(&af);
        else rn_atomic_abort(&af);
    }
    free(js);
    return st;
}

/* The metadata of a file: PyTorch's "format" and our config when given. */
static cJSON *file_meta(const char *config_json) {
    cJSON *meta = cJSON_CreateObject();
    if (!meta) return NULL;
    cJSON_AddStringToObject(meta, "format", "pt");
    if (config_json) cJSON_AddStringToObject(meta, "retnet", config_json);
    return meta;
}

static cJSON *config_meta(const rn_config *c) {
    char *cfg = rn_config_to_json(c);
    cJSON *meta = cfg ? file_meta(cfg) : NULL;
    free(cfg);
    return meta;
}

rn_status rni_tensors_save(const char *path, const rn_model *m, const rn_real *values, const rn_names *names,
                          int buffers, rn_dtype dtype, const char *config_json) {
    file_list fl;
    rn_status st = file_tensors(m, names, &fl);
    if (st != RN_OK) return st;
    st_out *t = calloc((size_t)fl.n, sizeof *t);
    model_src *src = calloc((size_t)fl.n, sizeof *src);
    if (!t || !src) st = rni_fail(RN_ERR_NOMEM, "out of memory");
    int n = 0;
    for (int i = 0; st == RN_OK && i < fl.n; i++) {
        if (fl.t[i].alias || (fl.t[i].buffer && !buffers)) continue;
        src[n] = (model_src){values, &fl.t[i]};
        t[n] = (st_out){fl.t[i].name, fl.t[i].ndim, {fl.t[i].shape[0], fl.t[i].shape[1]},
                        (size_t)fl.t[i].rows * fl.t[i].cols, model_get, &src[n]};
        n++;
    }
    if (st == RN_OK) st = st_write(path, file_meta(config_json), t, n, dtype);
    free(t);
    free(src);
    ft_free(&fl);
    return st;
}

/* ------------------------------------------------------- checkpoints */

#ifdef RETNET_DOUBLE
#define CKPT_DTYPE RN_DTYPE_F64
#else
#define CKPT_DTYPE RN_DTYPE_F32
#endif

/* The metadata of a checkpoint, all of it: anything else is a key with a
 * bit flipped (which could hide a checksum), refused on load. */
static const char *const ckpt_meta_keys[] = {"format", "retnet", "train", "checksum_meta_fnv1a64", "checksum_fnv1a64"};

rn_status rni_ckpt_save(const char *path, const rn_model *m, const rn_real *const *bufs,
                       const char *const *names, int nbuf, const char *train_json) {
    st_out t[8];
    if (nbuf > 7) return rni_fail(RN_ERR_ARG, "too many checkpoint buffers");
    t[0] = (st_out){"params", 1, {(int64_t)m->n_params, 0}, m->n_params, flat_get, m->params};
    for (int i = 0; i < nbuf; i++) t[i + 1] = (st_out){names[i], 1, {(int64_t)m->n_params, 0}, m->n_params, flat_get, bufs[i]};
    cJSON *meta = config_meta(&m->cfg);
    if (meta) {
        char msum[32];
        cJSON_AddStringToObject(meta, "train", train_json ? train_json : "{}");
        snprintf(msum, sizeof msum, "%016llx", (unsigned long long)meta_hash(meta));
        cJSON_AddStringToObject(meta, "checksum_meta_fnv1a64", msum);
    }
    /* Exact resume: the native precision, bit for bit. */
    return st_write(path, meta, t, nbuf + 1, CKPT_DTYPE);
}

static rn_status read_flat(st_file *f, const char *name, size_t n, rn_real *dst) {
    st_entry *e = st_find(f, name);
    if (!e) return rni_fail(RN_ERR_FORMAT, "%s: missing tensor '%s'", f->path, name);
    if (e->ndim != 1 || (size_t)e->shape[0] != n)
        return rni_fail(RN_ERR_FORMAT, "%s: tensor '%s' does not match the model's %zu parameters", f->path, name, n);
    for (size_t i = 0; i < n; i++) {
        double v = read_elem(f->data + e->begin, e->dt, i);
        if (!real_ok(v)) return rni_fail(RN_ERR_FORMAT, "%s: tensor '%s' holds a non-finite value", f->path, name);
        dst[i] = (rn_real)v;
    }
    return RN_OK;
}

rn_status rni_ckpt_load(const char *path, rn_model **mout, rn_real **bufs, const char *const *names,
                       int nbuf, char **train_json) {
    *mout = NULL;
    for (int i = 0; i < nbuf; i++) bufs[i] = NULL;
    *train_json = NULL;
    st_file f;
    rn_status st = st_open(path, &f);
    if (st != RN_OK) return st;
    rn_model *m = NULL;
    rn_config cfg;
    const char *tj = st_meta(&f, "train");
    if (!f.config || !tj) { st = rni_fail(RN_ERR_FORMAT, "%s: not a retnet training checkpoint", path); goto done; }
    for (const cJSON *it = cJSON_GetObjectItemCaseSensitive(f.hdr, "__metadata__")->child; it; it = it->next) {
        size_t k = 0, nk = sizeof ckpt_meta_keys / sizeof *ckpt_meta_keys;
        while (k < nk && strcmp(it->string, ckpt_meta_keys[k]) != 0) k++;
        if (k == nk) { st = rni_fail(RN_ERR_FORMAT, "%s: unknown metadata '%s' (file corrupted?)", path, it->string); goto done; }
    }
    if ((st = st_config(&f, &cfg)) != RN_OK) goto done;
    if ((st = rn_model_create(&cfg, &m)) != RN_OK) goto done;
    if ((st = read_flat(&f, "params", m->n_params, m->params)) != RN_OK) goto done;
    for (int i = 0; i < nbuf; i++) {
        bufs[i] = rni_alloc(m->n_params, sizeof(rn_real));
        if (!bufs[i]) { st = rni_fail(RN_ERR_NOMEM, "out of memory"); goto done; }
        if ((st = read_flat(&f, names[i], m->n_params, bufs[i])) != RN_OK) goto done;
    }
    *train_json = strdup(tj);
    if (!*train_json) st = rni_fail(RN_ERR_NOMEM, "out of memory");
done:
    st_close(&f);
    if (st != RN_OK) {
        rn_model_free(m);
        for (int i = 0; i < nbuf; i++) { rni_free(bufs[i]); bufs[i] = NULL; }
        return st;
    }
    *mout = m;
    return RN_OK;
}

/* -------------------------------------------------------------- .npy */

rn_status rn_npy_save(const char *path, const rn_real *data, int ndim, const int64_t *shape) {
    if (ndim < 1 || ndim > 4) return rni_fail(RN_ERR_ARG, "npy: %d dimensions", ndim);
    char dict[256];
    size_t o = snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': (");
    size_t count = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0 || !rni_mul_ok(count, (size_t)shape[i], &count) || count > ((size_t)1 << 46))
            return rni_fail(RN_ERR_ARG, "npy: invalid shape (dimension %d is %lld)", i, (long long)shape[i]);
        o += snprintf(dict + o, sizeof dict - o, "%lld,%s", (long long)shape[i], i + 1 < ndim ? " " : "");
    }
    o += snprintf(dict + o, sizeof dict - o, "), }");
    /* magic (6) + version (2) + header length (2) + dict, padded to 64 with a final \n */
    size_t total = (10 + o + 1 + 63) & ~(size_t)63;
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, 0, 0};
    size_t hl = total - 10;
    pre[8] = (unsigned char)(hl & 255); pre[9] = (unsigned char)(hl >> 8);
    memset(dict + o, ' ', hl - o - 1);
    dict[hl - 1] = '\n';
    rn_atomic_file af;
    rn_status st = rn_atomic_open(&af, path);
    if (st != RN_OK) return st;
    st = rn_atomic_write(&af, pre, 10);
    if (st == RN_OK) st = rn_atomic_write(&af, dict, hl);
    float buf[1024];
    size_t nb = 0;
    for (size_t i = 0; i < count && st == RN_OK; i++) {
        buf[nb++] = (float)data[i];
        if (nb == 1024 || i + 1 == count) { st = rn_atomic_write(&af, buf, nb * 4); nb = 0; }
    }
    if (st == RN_OK) return rn_atomic_commit(&af);
    rn_atomic_abort(&af);
    return st;
}
