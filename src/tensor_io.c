/* tensor_io.c: a model's tensors in safetensors files, under the tensor
 * names of each preset and their variants, read from one file or several
 * (shards) and written as one. Which format a model is in, and where its
 * config is, is formats.c's part; the container is safetensors.c's. */
#define _POSIX_C_SOURCE 200809L
#include "tensor_io.h"
#include "preset.h"
#include "safetensors.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------- file tensor lists */

static rni_file_tensor *ft_add(rni_file_list *l, const char *name) {
    if (!l->ok) return NULL;
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 64;
        rni_file_tensor *t = realloc(l->t, sizeof *t * (size_t)cap);
        if (!t) { l->ok = 0; return NULL; }
        l->t = t; l->cap = cap;
    }
    rni_file_tensor *t = &l->t[l->n++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s%s", l->prefix ? l->prefix : "", name);
    return t;
}

void rni_file_list_free(rni_file_list *l) {
    for (int i = 0; i < l->n; i++) free(l->t[i].buffer);
    free(l->t);
    memset(l, 0, sizeof *l);
}

static const rn_tensor_info *find_kind(const rn_model *m, rn_tensor_kind k, int layer) {
    for (int i = 0; i < m->n_tensors; i++)
        if (m->tensors[i].kind == k && m->tensors[i].layer == layer) return &m->tensors[i];
    return NULL;
}

void rni_add_block(rni_file_list *l, const rn_model *m, rn_tensor_kind k, int layer, int row0, int rows,
                   int tr, const char *fmt, ...) {
    const rn_tensor_info *ti = find_kind(m, k, layer);
    if (!ti) return;  /* this architecture has no such tensor */
    char name[112];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    rni_file_tensor *t = ft_add(l, name);
    if (!t) return;
    if (rows < 0) rows = ti->rows;
    t->off = ti->offset + (size_t)row0 * ti->cols;
    t->rows = rows; t->cols = ti->cols; t->transpose = tr;
    if (ti->cols == 1) { t->ndim = 1; t->shape[0] = rows; }
    else { t->ndim = 2; t->shape[0] = tr ? ti->cols : rows; t->shape[1] = tr ? rows : ti->cols; }
}

void rni_add_buffer(rni_file_list *l, const char *name, int n, double *values) {
    rni_file_tensor *t = values ? ft_add(l, name) : NULL;
    if (!t) { free(values); l->ok = 0; return; }
    t->ndim = 1; t->shape[0] = n; t->rows = n; t->cols = 1; t->buffer = values;
}

void rni_add_tied_head(rni_file_list *l, const rn_model *m, const char *name) {
    if (!m->cfg.tie_embed) return;
    int n = l->n;
    rni_add_block(l, m, RN_T_EMBED, -1, 0, -1, 0, "%s", name);
    if (l->n > n) l->t[l->n - 1].alias = 1;
}

/* The file tensors of m's preset under the names nm. */
static rn_status rni_file_tensors(const rn_model *m, const rn_names *nm, rni_file_list *l) {
    memset(l, 0, sizeof *l);
    l->ok = 1;
    rni_preset(m->cfg.preset)->tensors(l, m, nm);
    if (!l->ok) { rni_file_list_free(l); return rni_fail(RN_ERR_NOMEM, "out of memory"); }
    l->prefix = NULL;
    return RN_OK;
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
    for (int i = 0; i < s->nf; i++) rni_st_close(&s->f[i]);
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
        if ((st = rni_st_open(paths[i], &s->f[i])) == RN_OK) {
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
    return s->nf ? rni_st_meta(&s->f[0], key) : NULL;
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

/* Reads one file tensor into m's parameters, or checks a buffer or an
 * alias against what it must hold. */
static rn_status read_tensor(rn_model *m, const rni_file_tensor *t, const st_file *f, const st_entry *en) {
    const char *path = f->path;
    if (en->ndim != t->ndim || en->shape[0] != t->shape[0] || (t->ndim == 2 && en->shape[1] != t->shape[1])) {
        char want[64], got[64];
        rni_shape_str(want, sizeof want, t->ndim, t->shape);
        rni_shape_str(got, sizeof got, en->ndim, en->shape);
        return rni_fail(RN_ERR_FORMAT, "%s: tensor '%s' has shape %s, the config needs %s", path, t->name, got, want);
    }
    const unsigned char *src = f->data + en->begin;
    if (t->buffer) {
        for (int j = 0; j < t->rows; j++) {
            double v = rni_st_elem(src, en->dt, (size_t)j), want = t->buffer[j];
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
            double v = rni_st_elem(src, en->dt, t->transpose ? c * rows + r : r * cols + c);
            if (!rni_real_ok(v)) return rni_fail(RN_ERR_FORMAT, "%s: tensor '%s' holds a non-finite value", path, t->name);
            if (!t->alias) dst[r * cols + c] = (rn_real)v;
            else if (dst[r * cols + c] != (rn_real)v)
                return rni_fail(RN_ERR_FORMAT, "%s: tensor '%s' differs from the embedding it is tied to (the config ties them)",
                               path, t->name);
        }
    return RN_OK;
}

rn_status rni_tensor_set_model(rn_tensor_set *s, const rn_config *cfg, const rn_names *names, rn_model **out) {
    *out = NULL;
    rn_status st = rni_st_config_fits(s->label, cfg, s->data_len);
    if (st != RN_OK) return st;
    rn_model *m = NULL;
    rni_file_list fl = {0};
    for (int i = 0; i < s->nidx; i++) s->idx[i].e->used = 0;
    if ((st = rn_model_create(cfg, &m)) == RN_OK) st = rni_file_tensors(m, names, &fl);
    for (int i = 0; i < fl.n && st == RN_OK; i++) {
        const rni_file_tensor *t = &fl.t[i];
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
    rni_file_list_free(&fl);
    if (st != RN_OK) { rn_model_free(m); return st; }
    *out = m;
    return RN_OK;
}

/* ------------------------------------------------------------ write */

/* Element producer of one file tensor from values laid out like params. */
typedef struct { const rn_real *values; const rni_file_tensor *t; } model_src;

static double model_get(const void *ctx, size_t j) {
    const model_src *s = ctx;
    const rni_file_tensor *t = s->t;
    if (t->buffer) return t->buffer[j];
    /* file element j of a transposed block is internal (j % rows, j / rows) */
    if (t->transpose) return s->values[t->off + (j % t->rows) * t->cols + j / t->rows];
    return s->values[t->off + j];
}

rn_status rni_tensors_save(const char *path, const rn_model *m, const rn_real *values, const rn_names *names,
                          int buffers, rn_dtype dtype, const char *config_json) {
    rni_file_list fl;
    rn_status st = rni_file_tensors(m, names, &fl);
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
    if (st == RN_OK) st = rni_st_write(path, rni_st_file_meta(config_json), t, n, dtype);
    free(t);
    free(src);
    rni_file_list_free(&fl);
    return st;
}

