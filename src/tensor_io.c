/* tensor_io.c: a model's tensors in safetensors files, under the tensor
 * names of each preset and their variants, read from one file or several
 * (shards) and written as one. Which format a model is in, and where its
 * config is, is formats.c's part; the container is safetensors.c's. */
#define _DEFAULT_SOURCE  /* madvise */
#include "tensor_io.h"
#include "objects.h"
#include "params.h"
#include "preset.h"
#include "quant.h"
#include "safetensors.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

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
static rn_status file_tensors(const rn_model *m, const rn_names *nm, rni_file_list *l) {
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

rn_status rni_tensor_set_open(const char *label, const char *const *paths, int n, int verify, rn_tensor_set **out) {
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
        if ((st = rni_st_open(paths[i], &s->f[i], verify)) == RN_OK) {
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

/* The index of the table tensor holding parameter offset off: the last one
 * starting at or before it (the table is in offset order). */
static int tensor_at(const rn_model *m, size_t off) {
    int lo = 0, hi = m->n_tensors - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (m->tensors[mid].offset <= off) lo = mid; else hi = mid - 1;
    }
    return lo;
}

/* The parameter at offset off of m's layout, wherever its tensor is. */
static rn_real *param_at(rn_model *m, size_t off) {
    if (m->params) return m->params + off;
    const rn_tensor_info *t = &m->tensors[tensor_at(m, off)];
    return t->data + (off - t->offset);
}

static rn_status check_shape(const rni_file_tensor *t, const st_file *f, const st_entry *en) {
    if (en->ndim != t->ndim || en->shape[0] != t->shape[0] || (t->ndim == 2 && en->shape[1] != t->shape[1])) {
        char want[64], got[64];
        rni_shape_str(want, sizeof want, t->ndim, t->shape);
        rni_shape_str(got, sizeof got, en->ndim, en->shape);
        return rni_fail(RN_ERR_FORMAT, "%s: tensor '%s' has shape %s, the config needs %s", f->path, t->name, got, want);
    }
    return RN_OK;
}

/* ------------------------------------------------------ typed tensors */

/* Quantised files (rn_model_quantize) name each tensor held in another
 * type than f32 in __metadata__: "wtype.NAME" = "TYPE [rows, cols]", the
 * logical shape [out, in] of the block. bf16 / f16 tensors are BF16 / F16
 * of that shape; q8_0 / q4_0 ones U8 [rows, row bytes] of ggml blocks. */
#define WTYPE_KEY "wtype."

/* The kinds that may be held typed: the large projections. */
static int typed_kind(rn_tensor_kind k) {
    return k == RN_T_WQKVG || k == RN_T_WO || k == RN_T_FC1 || k == RN_T_FC2 || k == RN_T_EMBED || k == RN_T_HEAD;
}

/* The weight type of file tensor t from the metadata of its file, checked
 * against its header entry: *wt = -1 when the file names none. */
static rn_status typed_entry(const st_file *f, const rni_file_tensor *t, rn_tensor_kind kind, const st_entry *en,
                             int *wt) {
    *wt = -1;
    char key[128];
    snprintf(key, sizeof key, WTYPE_KEY "%s", t->name);
    const char *v = rni_st_meta(f, key);
    if (!v) {
        if (en->dt == RNI_DTYPE_U8)
            return rni_fail(RN_ERR_FORMAT, "%s: tensor '%s' is U8 but __metadata__ has no \"%s\" naming its weight type",
                            f->path, t->name, key);
        return RN_OK;
    }
    char tname[16];
    long long r = -1, c = -1;
    rn_wtype ty;
    if (sscanf(v, "%15s [%lld, %lld]", tname, &r, &c) != 3)
        return rni_fail(RN_ERR_FORMAT, "%s: tensor '%s': __metadata__ \"%s\" is '%s', not 'TYPE [rows, cols]'", f->path,
                        t->name, key, v);
    if (rn_wtype_from_name(tname, &ty) != RN_OK || ty == RN_WTYPE_F32)
        return rni_fail(RN_ERR_FORMAT, "%s: tensor '%s' has unknown weight type '%s' (bf16, f16, q8_0, q4_0)", f->path,
                        t->name, tname);
    if (t->buffer || t->alias || t->cols == 1 || !typed_kind(kind))
        return rni_fail(RN_ERR_FORMAT, "%s: tensor '%s' is not a projection and cannot be %s", f->path, t->name, tname);
    if (r != t->rows || c != t->cols)
        return rni_fail(RN_ERR_FORMAT, "%s: tensor '%s' is %s [%lld, %lld] but the config needs [%d, %d]", f->path, t->name,
                        tname, r, c, t->rows, t->cols);
    size_t rb = rn_wtype_row_bytes(ty, t->cols);
    if (!rb)
        return rni_fail(RN_ERR_FORMAT, "%s: tensor '%s': %d columns are not a whole number of %s blocks of %d", f->path,
                        t->name, t->cols, tname, RN_QK);
    int blocks = ty == RN_WTYPE_Q8_0 || ty == RN_WTYPE_Q4_0;
    rn_dtype want = blocks ? RNI_DTYPE_U8 : ty == RN_WTYPE_BF16 ? RN_DTYPE_BF16 : RN_DTYPE_F16;
    int64_t w1 = blocks ? (int64_t)rb : t->cols;
    if (en->dt != want || en->ndim != 2 || en->shape[0] != t->rows || en->shape[1] != w1)
        return rni_fail(RN_ERR_FORMAT, "%s: tensor '%s' (%s [%d, %d]) must be %s [%d, %lld]%s", f->path, t->name, tname,
                        t->rows, t->cols, blocks ? "U8" : tname, t->rows, (long long)w1,
                        blocks ? ": the block count disagrees with the shape" : "");
    *wt = (int)ty;
    return RN_OK;
}

/* Reads one file tensor into m's parameters (when copy is set), or checks a
 * buffer or an alias against what it must hold. wt: its weight type, or -1
 * (then its dtype says). */
static rn_status read_tensor(rn_model *m, const rni_file_tensor *t, const st_file *f, const st_entry *en, int copy,
                             int wt) {
    const char *path = f->path;
    const unsigned char *src = f->data + en->begin;
    if (wt >= 0 && copy) {  /* typed, into a float buffer: dequantised (the float64 build, or not mappable) */
        rn_wtype ty = (rn_wtype)wt;
        size_t rb = rn_wtype_row_bytes(ty, t->cols);
        long bad = rni_wtype_first_bad_row(ty, src, (size_t)t->rows, t->cols);
        if (bad >= 0)
            return rni_fail(RN_ERR_FORMAT, "%s: tensor '%s' row %ld holds a non-finite %s", path, t->name, bad,
                            ty == RN_WTYPE_BF16 || ty == RN_WTYPE_F16 ? "value" : "scale");
        float *row = malloc(sizeof(float) * (size_t)t->cols);
        if (!row) return rni_fail(RN_ERR_NOMEM, "out of memory");
        rn_real *dst = param_at(m, t->off);
        for (int r = 0; r < t->rows; r++) {
            rn_dequantize_row(ty, src + (size_t)r * rb, row, t->cols);
            for (int c = 0; c < t->cols; c++) dst[(size_t)r * t->cols + c] = row[c];
        }
        free(row);
        return RN_OK;
    }
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
    if (!copy && !t->alias) return RN_OK;  /* read in place */
    /* an alias is compared with the embedding as held (f32 or typed) */
    const rn_tensor_info *ti = &m->tensors[tensor_at(m, t->off)];
    rn_real *dst = ti->wtype == RN_WTYPE_F32 ? param_at(m, t->off) : NULL;
    size_t rows = (size_t)t->rows, cols = (size_t)t->cols, rb = rn_wtype_row_bytes(ti->wtype, ti->cols);
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < cols; c++) {
            /* internal (r, c) <- file (c, r) when transposed */
            double v = rni_st_elem(src, en->dt, t->transpose ? c * rows + r : r * cols + c);
            if (!rni_real_ok(v)) return rni_fail(RN_ERR_FORMAT, "%s: tensor '%s' holds a non-finite value", path, t->name);
            if (!t->alias) dst[r * cols + c] = (rn_real)v;
            else if (dst ? dst[r * cols + c] != (rn_real)v
                         : rni_wtype_get(ti->wtype, (const char *)ti->wdata + r * rb, (int)c) != (float)v)
                return rni_fail(RN_ERR_FORMAT, "%s: tensor '%s' differs from the embedding it is tied to (the config ties them)",
                               path, t->name);
        }
    return RN_OK;
}

/* The first of n float32 ranges (x[i], len[i] values) holding a NaN or an
 * infinity (exponent bits all ones), or -1: one parallel, vectorised pass
 * over all of them, at memory speed. */
static int first_nonfinite(const float *const *x, const size_t *len, int n) {
    enum { CHUNK = 1 << 18 };
    size_t total = 0;
    for (int i = 0; i < n; i++) total += (len[i] + CHUNK - 1) / CHUNK;
    int bad = n;
#pragma omp parallel for schedule(dynamic, 4) reduction(min : bad) if (total > 8)
    for (size_t c = 0; c < total; c++) {
        int i = 0;
        size_t k = c;  /* chunk c is chunk k of range i */
        while (k >= (len[i] + CHUNK - 1) / CHUNK) k -= (len[i++] + CHUNK - 1) / CHUNK;
        const uint32_t *u = (const uint32_t *)x[i] + k * CHUNK;  /* 4-byte aligned: plan_hold checked */
        size_t m = len[i] - k * CHUNK < CHUNK ? len[i] - k * CHUNK : CHUNK;
        uint32_t top = 0;  /* the largest exponent field: all ones only for NaN and inf */
#pragma omp simd reduction(max : top)
        for (size_t j = 0; j < m; j++) {
            uint32_t e = u[j] & 0x7f800000u;
            top = e > top ? e : top;
        }
        if (top == 0x7f800000u && i < bad) bad = i;
    }
    return bad < n ? bad : -1;
}

/* ------------------------------------------------ how tensors are held */

/* The type one block is held in: that of a quantised file's metadata (wt);
 * of a plain file, BF16 or F16 as stored for a large projection (the
 * kernels convert in registers, so decoding reads half the bytes of f32);
 * anything else f32. RN_LOAD_F32 widens bf16 and f16. The float64 build
 * holds f32 only. */
static rn_wtype block_type(rn_tensor_kind k, const rni_file_tensor *t, const st_entry *en, int wt, unsigned flags) {
#ifdef RETNET_DOUBLE
    (void)k; (void)t; (void)en; (void)wt; (void)flags;
    return RN_WTYPE_F32;
#else
    rn_wtype ty = RN_WTYPE_F32;
    if (wt >= 0) ty = (rn_wtype)wt;
    else if (t->cols > 1 && typed_kind(k) && (en->dt == RN_DTYPE_BF16 || en->dt == RN_DTYPE_F16))
        ty = en->dt == RN_DTYPE_BF16 ? RN_WTYPE_BF16 : RN_WTYPE_F16;
    if ((flags & RN_LOAD_F32) && (ty == RN_WTYPE_BF16 || ty == RN_WTYPE_F16)) ty = RN_WTYPE_F32;
    return ty;
#endif
}

/* The file dtype of a held type read in place. */
static rn_dtype stored_dtype(rn_wtype t) {
    return t == RN_WTYPE_F32 ? RN_DTYPE_F32 : t == RN_WTYPE_BF16 ? RN_DTYPE_BF16 : t == RN_WTYPE_F16 ? RN_DTYPE_F16
                                                                                                 : RNI_DTYPE_U8;
}

static size_t held_bytes(const rn_tensor_info *ti, rn_wtype t) {
    return t == RN_WTYPE_F32 ? sizeof(rn_real) * (size_t)ti->rows * ti->cols
                             : (size_t)ti->rows * rn_wtype_row_bytes(t, ti->cols);
}

/* How each table tensor of a model will be held: its type, and whether it
 * is read in place (base: its first row in a mapped file) or copied into
 * the model's own block (at offset own). */
typedef struct {
    rn_wtype type;
    const unsigned char *base;
    size_t own;
} held_tensor;

typedef struct {
    held_tensor *h;           /* (n_tensors) */
    size_t own_bytes;         /* of the copied ones together */
    int all_in_place;         /* every tensor read in place */
    int typed;                /* some tensor held in another type than f32 */
} hold_plan;

/* Each tensor's type is that of its blocks (f32 when they differ). It is
 * read in place when its blocks (q, k, v, g of a stacked projection) are
 * stored as it is held, untransposed, adjacent and in row order in one
 * file, f32 at 4-byte and the others at 2-byte alignment; otherwise it is
 * copied (fla's separate q/k/v/g or gate/up, a transposed block, a vector
 * stored in 16 bits and widened). ent[i]: fl->t[i]'s entry. */
static rn_status plan_hold(const rn_model *m, const rn_tensor_set *s, const rni_file_list *fl, set_entry *const *ent,
                           const int *wt, unsigned flags, hold_plan *p) {
    int nt = m->n_tensors;
    memset(p, 0, sizeof *p);
    p->h = calloc((size_t)nt + 1, sizeof *p->h);
    int *file = calloc((size_t)nt + 1, sizeof *file);
    size_t *covered = calloc((size_t)nt + 1, sizeof *covered);
    char *seen = calloc((size_t)nt + 1, 1), *place = calloc((size_t)nt + 1, 1);
    if (!p->h || !file || !covered || !seen || !place) {
        free(p->h); free(file); free(covered); free(seen); free(place);
        p->h = NULL;
        return rni_fail(RN_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < fl->n; i++) {
        const rni_file_tensor *t = &fl->t[i];
        if (t->buffer || t->alias) continue;
        int e = tensor_at(m, t->off);
        rn_wtype bt = block_type(m->tensors[e].kind, t, ent[i]->e, wt[i], flags);
        if (!seen[e]) p->h[e].type = bt;
        else if (p->h[e].type != bt) p->h[e].type = RN_WTYPE_F32;  /* blocks of several types: widened */
        seen[e] = 1;
    }
#ifndef RETNET_DOUBLE  /* the float64 build computes in double: always a copy */
    for (int e = 0; e < nt; e++) place[e] = 1;
#endif
    /* the first rows of each tensor give its base; then every block must sit at its row */
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < fl->n; i++) {
            const rni_file_tensor *t = &fl->t[i];
            if (t->buffer || t->alias) continue;
            const st_entry *en = ent[i]->e;
            const unsigned char *q = s->f[ent[i]->file].data + en->begin;
            int e = tensor_at(m, t->off);
            const rn_tensor_info *ti = &m->tensors[e];
            rn_wtype ty = p->h[e].type;
            size_t row0 = (t->off - ti->offset) / (size_t)ti->cols;
            if (!place[e]) continue;
            /* typed blocks (wt >= 0) are [out, in] whatever the preset's float layout */
            if (en->dt != stored_dtype(ty) || (wt[i] < 0 && t->transpose)) place[e] = 0;
            else if (pass == 0 && row0 == 0) {
                p->h[e].base = q; file[e] = ent[i]->file;
                place[e] = (uintptr_t)q % (ty == RN_WTYPE_F32 ? sizeof(float) : 2) == 0;
            } else if (pass == 1) {
                place[e] = p->h[e].base && file[e] == ent[i]->file &&
                           q == p->h[e].base + row0 * rn_wtype_row_bytes(ty, ti->cols);
                covered[e] += (size_t)t->rows * t->cols;
            }
        }
    p->all_in_place = 1;
    for (int e = 0; e < nt; e++) {
        if (place[e]) place[e] = covered[e] == (size_t)m->tensors[e].rows * m->tensors[e].cols;
        if (!place[e]) {  /* copied: 64-byte aligned in the model's block */
            p->h[e].base = NULL;
            p->h[e].own = (p->own_bytes + 63) & ~(size_t)63;
            p->own_bytes = p->h[e].own + held_bytes(&m->tensors[e], p->h[e].type);
            p->all_in_place = 0;
        }
        if (p->h[e].type != RN_WTYPE_F32) p->typed = 1;
    }
    free(file); free(covered); free(seen); free(place);
    return RN_OK;
}

/* Copies block t (its entry en in file f) into its rows of ti, held as type
 * ty in the model's own block (dst: the tensor's first row there): 16-bit
 * values and ggml blocks bit for bit (transposed where the file holds a
 * block [in, out]), checked finite; wt: its metadata type or -1. f32 ones
 * are read_tensor's. */
static rn_status copy_block(const rn_tensor_info *ti, rn_wtype ty, void *dst, const rni_file_tensor *t,
                            const st_file *f, const st_entry *en, int wt) {
    const unsigned char *src = f->data + en->begin;
    size_t rb = rn_wtype_row_bytes(ty, ti->cols), row0 = (t->off - ti->offset) / (size_t)ti->cols;
    size_t rows = (size_t)t->rows, cols = (size_t)t->cols;
    unsigned char *d = (unsigned char *)dst + row0 * rb;
    if (!t->transpose || wt >= 0) {  /* typed blocks are [out, in] whatever the preset's layout */
        memcpy(d, src, rows * rb);
    } else {  /* internal (r, c) <- file (c, r) */
#pragma omp parallel for schedule(static) if (rows * cols >= ((size_t)1 << 18))
        for (size_t r = 0; r < rows; r++)
            for (size_t c = 0; c < cols; c++) memcpy(d + 2 * (r * cols + c), src + 2 * (c * rows + r), 2);
    }
    long bad = rni_wtype_first_bad_row(ty, d, rows, t->cols);
    if (bad >= 0)
        return rni_fail(RN_ERR_FORMAT, "%s: tensor '%s' row %ld holds a non-finite %s", f->path, t->name, bad,
                        ty == RN_WTYPE_BF16 || ty == RN_WTYPE_F16 ? "value" : "scale");
    return RN_OK;
}

/* Gives the pages of a block copied out of a file back to the system as
 * soon as it is copied (inward to whole pages: the neighbours may be read
 * in place): resident memory is then what the model holds, not that and
 * the file too. The mapping is private and read-only: a page touched again
 * is read again. */
static void drop_pages(const st_file *f, const st_entry *en) {
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE), a = (uintptr_t)(f->data + en->begin);
    uintptr_t b = a + (en->end - en->begin);
    a = (a + page - 1) & ~(page - 1);
    b &= ~(page - 1);
    if (b > a) madvise((void *)a, b - a, MADV_DONTNEED);
}

/* The mappings of s pass to m, which unmaps them when freed. */
static rn_status take_maps(rn_model *m, rn_tensor_set *s) {
    m->maps = calloc((size_t)s->nf, sizeof *m->maps);
    m->map_sizes = calloc((size_t)s->nf, sizeof *m->map_sizes);
    if (!m->maps || !m->map_sizes) return rni_fail(RN_ERR_NOMEM, "out of memory");
    for (int i = 0; i < s->nf; i++) {
        m->maps[i] = s->f[i].map; m->map_sizes[i] = s->f[i].size;
        s->f[i].map = NULL;  /* no longer the set's to unmap */
    }
    m->n_maps = s->nf;
    return RN_OK;
}

/* The file tensors of a skeleton model m (no parameters) of s and their
 * entries in s (ent[i], NULL for an absent optional one): every tensor
 * named, with its shape; none left over. */
static rn_status resolve(rn_tensor_set *s, rn_model *m, const rn_names *names, rni_file_list *fl, set_entry ***ent_out,
                         int **wt_out) {
    *ent_out = NULL;
    *wt_out = NULL;
    for (int i = 0; i < s->nidx; i++) s->idx[i].e->used = 0;
    rn_status st = file_tensors(m, names, fl);
    if (st != RN_OK) return st;
    set_entry **ent = calloc((size_t)fl->n + 1, sizeof *ent);
    int *wt = calloc((size_t)fl->n + 1, sizeof *wt);
    if (!ent || !wt) st = rni_fail(RN_ERR_NOMEM, "out of memory");
    for (int i = 0; i < fl->n && st == RN_OK; i++) {
        const rni_file_tensor *t = &fl->t[i];
        set_entry *se = set_find(s, t->name);
        wt[i] = -1;
        if (se) {
            se->e->used = 1;
            ent[i] = se;
            st = typed_entry(&s->f[se->file], t, m->tensors[tensor_at(m, t->off)].kind, se->e, &wt[i]);
            if (st == RN_OK && wt[i] < 0) st = check_shape(t, &s->f[se->file], se->e);
        } else if (!t->buffer && !t->alias) {  /* buffers and aliases are optional on read */
            st = rni_fail(RN_ERR_FORMAT, "%s: missing tensor '%s'", s->label, t->name);
        }
    }
    for (int i = 0; i < s->nidx && st == RN_OK; i++)
        if (!s->idx[i].e->used)
            st = rni_fail(RN_ERR_FORMAT, "%s: unknown tensor '%s' for the %s preset", s->f[s->idx[i].file].path,
                         s->idx[i].name, rn_preset_name(m->cfg.preset));
    if (st != RN_OK) { free(ent); free(wt); rni_file_list_free(fl); return st; }
    *ent_out = ent;
    *wt_out = wt;
    return RN_OK;
}

rn_status rni_tensor_set_model(rn_tensor_set *s, const rn_config *cfg, const rn_names *names, unsigned flags,
                               rn_model **out) {
    *out = NULL;
    rn_status st = rni_st_config_fits(s->label, cfg, s->data_len);
    if (st != RN_OK) return st;
    rn_model *m = NULL;
    rni_file_list fl = {0};
    set_entry **ent = NULL;
    int *wt = NULL;
    hold_plan hp = {0};
    if ((st = rni_model_new(cfg, 0, &m)) == RN_OK) st = resolve(s, m, names, &fl, &ent, &wt);
    if (st == RN_OK) st = plan_hold(m, s, &fl, ent, wt, flags, &hp);
    if (st != RN_OK) { free(ent); free(wt); rni_file_list_free(&fl); rn_model_free(m); return st; }
    /* All f32 and not all in place: one buffer of our own (what training
     * needs), every value converted and checked. Otherwise each tensor in
     * place where the layout allows (finite values checked at memory
     * speed), the rest copied into one block as held. */
    int whole = !hp.typed && !hp.all_in_place;
    if (whole) st = rni_model_alloc_params(m);  /* every value is read below */
    else if (hp.own_bytes && !(m->own = rni_alloc(hp.own_bytes, 1)))
        st = rni_fail(RN_ERR_NOMEM, "out of memory for %.1f MB of weights", hp.own_bytes / 1e6);
    if (st == RN_OK && !whole) {
        for (int e = 0; e < m->n_tensors; e++) {  /* mapped ones read only: PROT_READ */
            rn_tensor_info *ti = &m->tensors[e];
            ti->wtype = hp.h[e].type;
            ti->wdata = hp.h[e].base ? (const void *)hp.h[e].base : (const void *)((char *)m->own + hp.h[e].own);
            ti->data = ti->wtype == RN_WTYPE_F32 ? (rn_real *)ti->wdata : NULL;
        }
        rni_weights_bind(&m->cfg, m->tensors, m->n_tensors, NULL, &m->w);
    }
    /* the blocks first, then the buffers and a tied head checked against them */
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < fl.n && st == RN_OK; i++) {
            const rni_file_tensor *t = &fl.t[i];
            if (!ent[i] || (pass == 0) != !(t->buffer || t->alias)) continue;
            const st_file *f = &s->f[ent[i]->file];
            int e = t->buffer ? -1 : tensor_at(m, t->off);
            if (whole || e < 0 || t->alias) st = read_tensor(m, t, f, ent[i]->e, whole, wt[i]);
            else if (hp.h[e].base) continue;  /* in place: checked below */
            else if (hp.h[e].type == RN_WTYPE_F32) st = read_tensor(m, t, f, ent[i]->e, 1, wt[i]);
            else st = copy_block(&m->tensors[e], hp.h[e].type, (char *)m->own + hp.h[e].own, t, f, ent[i]->e, wt[i]);
            if (pass == 0) drop_pages(f, ent[i]->e);
        }
    for (int i = 0; i < fl.n && st == RN_OK && !whole; i++) {
        const rni_file_tensor *t = &fl.t[i];
        if (!ent[i] || t->buffer || t->alias) continue;
        const held_tensor *h = &hp.h[tensor_at(m, t->off)];
        if (h->base && h->type != RN_WTYPE_F32) {  /* typed, in place: values (bf16, f16) or block scales finite */
            long bad = rni_wtype_first_bad_row(h->type, s->f[ent[i]->file].data + ent[i]->e->begin, (size_t)t->rows,
                                               t->cols);
            if (bad >= 0)
                st = rni_fail(RN_ERR_FORMAT, "%s: tensor '%s' row %ld holds a non-finite %s", s->f[ent[i]->file].path,
                              t->name, bad, h->type == RN_WTYPE_BF16 || h->type == RN_WTYPE_F16 ? "value" : "scale");
        }
    }
    if (st == RN_OK && !whole) {  /* f32 in place */
        const float **x = calloc((size_t)fl.n + 1, sizeof *x);
        size_t *len = calloc((size_t)fl.n + 1, sizeof *len);
        int *which = calloc((size_t)fl.n + 1, sizeof *which), n = 0;
        if (!x || !len || !which) st = rni_fail(RN_ERR_NOMEM, "out of memory");
        for (int i = 0; st == RN_OK && i < fl.n; i++) {
            const rni_file_tensor *t = &fl.t[i];
            if (!ent[i] || t->buffer || t->alias) continue;
            const held_tensor *h = &hp.h[tensor_at(m, t->off)];
            if (h->base && h->type == RN_WTYPE_F32) {
                x[n] = (const float *)(s->f[ent[i]->file].data + ent[i]->e->begin);
                len[n] = (size_t)t->rows * t->cols;
                which[n++] = i;
            }
        }
        int bad = st == RN_OK ? first_nonfinite(x, len, n) : -1;
        if (bad >= 0)
            st = rni_fail(RN_ERR_FORMAT, "%s: tensor '%s' holds a non-finite value", s->f[ent[which[bad]]->file].path,
                          fl.t[which[bad]].name);
        free(x); free(len); free(which);
    }
    int mapped = 0;  /* the files stay mapped only for tensors read in place */
    for (int e = 0; e < m->n_tensors && !whole; e++) mapped |= hp.h[e].base != NULL;
    if (st == RN_OK && mapped) st = take_maps(m, s);
    free(hp.h);
    free(ent);
    free(wt);
    rni_file_list_free(&fl);
    if (st != RN_OK) { rn_model_free(m); return st; }
    *out = m;
    return RN_OK;
}

rn_status rni_tensor_set_info(rn_tensor_set *s, const rn_config *cfg, const rn_names *names, rn_model_info *info) {
    rn_model *m = NULL;
    rni_file_list fl = {0};
    set_entry **ent = NULL;
    int *wt = NULL;
    hold_plan hp = {0};
    rn_status st = rni_st_config_fits(s->label, cfg, s->data_len);
    if (st == RN_OK) st = rni_model_new(cfg, 0, &m);
    if (st == RN_OK) st = resolve(s, m, names, &fl, &ent, &wt);
    if (st == RN_OK) st = plan_hold(m, s, &fl, ent, wt, 0, &hp);
    if (st != RN_OK) { free(ent); free(wt); rni_file_list_free(&fl); rn_model_free(m); return st; }
    info->n_files = s->nf;
    info->file_bytes = 0;
    for (int i = 0; i < s->nf; i++) info->file_bytes += s->f[i].size;
    info->n_tensors = (size_t)s->nidx;
    memset(info->tensor_bytes, 0, sizeof info->tensor_bytes);
    size_t weights = 0;
    for (int i = 0; i < fl.n; i++) {
        if (!ent[i]) continue;
        size_t bytes = ent[i]->e->end - ent[i]->e->begin;
        if (ent[i]->e->dt < RN_DTYPE_COUNT) info->tensor_bytes[ent[i]->e->dt] += bytes;
        else info->u8_bytes += bytes;
        if (fl.t[i].buffer || fl.t[i].alias) continue;
        /* as held: its weight type, or converted to f32 */
        rn_wtype held = hp.h[tensor_at(m, fl.t[i].off)].type;
        size_t hb = held == RN_WTYPE_F32 ? sizeof(rn_real) * (size_t)fl.t[i].rows * fl.t[i].cols
                                         : (size_t)fl.t[i].rows * rn_wtype_row_bytes(held, fl.t[i].cols);
        info->wtype_bytes[held] += hb;
        info->wtype_tensors[held]++;
        /* A decoding step reads every weight once, but of an untied
         * embedding (the table's first tensor) only the row of its token. */
        weights += fl.t[i].off == 0 && !cfg->tie_embed ? hb / (size_t)fl.t[i].rows : hb;
    }
    info->decode_bytes = weights;
    info->in_place = hp.all_in_place;
    info->copy_bytes = hp.all_in_place ? 0 : !hp.typed ? sizeof(rn_real) * m->n_params : hp.own_bytes;
    free(hp.h);
    free(ent);
    free(wt);
    rni_file_list_free(&fl);
    rn_model_free(m);
    return RN_OK;
}

/* ------------------------------------------------------------ write */

/* Element producer of one file tensor: base is the block's first value
 * (values laid out like the parameters), or ti the tensor holding the
 * block, as held (f32 or typed), from row row0. */
typedef struct {
    const rn_real *base;
    const rn_tensor_info *ti;
    size_t row0;
    const rni_file_tensor *t;
} model_src;

/* Internal element (r, c) of the block. */
static double block_elem(const model_src *s, size_t r, size_t c) {
    if (s->base) return s->base[r * s->t->cols + c];
    const rn_tensor_info *ti = s->ti;
    size_t row = s->row0 + r;
    if (ti->wtype == RN_WTYPE_F32) return ti->data[row * (size_t)ti->cols + c];
    return rni_wtype_get(ti->wtype, (const char *)ti->wdata + row * rn_wtype_row_bytes(ti->wtype, ti->cols), (int)c);
}

static double model_get(const void *ctx, size_t j) {
    const model_src *s = ctx;
    const rni_file_tensor *t = s->t;
    if (t->buffer) return t->buffer[j];
    /* file element j of a transposed block is internal (j % rows, j / rows) */
    if (t->transpose) return block_elem(s, j % t->rows, j / t->rows);
    return block_elem(s, j / t->cols, j % t->cols);
}

static model_src block_src(const rn_model *m, const rn_real *values, const rni_file_tensor *t) {
    model_src src = {NULL, NULL, 0, t};
    if (t->buffer) return src;
    if (values) { src.base = values + t->off; return src; }
    src.ti = &m->tensors[tensor_at(m, t->off)];
    src.row0 = (t->off - src.ti->offset) / (size_t)src.ti->cols;
    return src;
}

rn_status rni_tensors_save(const char *path, const rn_model *m, const rn_real *values, const rn_names *names,
                          int buffers, rn_dtype dtype, const char *config_json) {
    rni_file_list fl;
    rn_status st = file_tensors(m, names, &fl);
    if (st != RN_OK) return st;
    st_out *t = calloc((size_t)fl.n, sizeof *t);
    model_src *src = calloc((size_t)fl.n, sizeof *src);
    if (!t || !src) st = rni_fail(RN_ERR_NOMEM, "out of memory");
    int n = 0;
    for (int i = 0; st == RN_OK && i < fl.n; i++) {
        if (fl.t[i].alias || (fl.t[i].buffer && !buffers)) continue;
        src[n] = block_src(m, values, &fl.t[i]);
        t[n] = (st_out){fl.t[i].name, fl.t[i].ndim, {fl.t[i].shape[0], fl.t[i].shape[1]},
                        (size_t)fl.t[i].rows * fl.t[i].cols, model_get, &src[n], NULL, RN_DTYPE_F32};
        n++;
    }
    if (st == RN_OK) st = rni_st_write(path, rni_st_file_meta(config_json), t, n, dtype);
    free(t);
    free(src);
    rni_file_list_free(&fl);
    return st;
}

/* Whether file tensor t (of internal kind k) is held as type wt in a file
 * quantised to wt with flags. */
static int quantised_here(const rn_model *m, rn_tensor_kind k, unsigned flags) {
    int keep_embed = (flags & RN_QUANT_KEEP_EMBED) || (m->cfg.tie_embed && (flags & RN_QUANT_KEEP_HEAD));
    if (k == RN_T_EMBED) return !keep_embed;
    if (k == RN_T_HEAD) return !(flags & RN_QUANT_KEEP_HEAD);
    return typed_kind(k);
}

/* The order tensors are written in: the typed ones after the f32 ones
 * (their sizes are multiples of 2, not of 4: the f32 ones stay aligned),
 * those in the row order of their tensor (so read in place: the seed lists
 * its per-head blocks interleaved). */
static void quant_order(const rni_file_list *fl, const char *typed, int *order) {
    int n = 0;
    for (int i = 0; i < fl->n; i++)
        if (!typed[i]) order[n++] = i;
    int first = n;
    for (int i = 0; i < fl->n; i++) {
        if (!typed[i]) continue;
        int k = n++;
        for (; k > first && fl->t[order[k - 1]].off > fl->t[i].off; k--) order[k] = order[k - 1];
        order[k] = i;
    }
}

rn_status rni_tensors_quantize(const char *path, const rn_model *m, const rn_names *names, rn_wtype wt,
                               unsigned flags, const char *config_json) {
    if ((unsigned)wt >= (unsigned)RN_WTYPE_COUNT) return rni_fail(RN_ERR_ARG, "unknown weight type %d", (int)wt);
    rni_file_list fl;
    rn_status st = file_tensors(m, names, &fl);
    if (st != RN_OK) return st;
    st_out *t = calloc((size_t)fl.n + 1, sizeof *t);
    model_src *src = calloc((size_t)fl.n + 1, sizeof *src);
    void **raw = calloc((size_t)fl.n + 1, sizeof *raw);
    char *typed = calloc((size_t)fl.n + 1, 1);
    int *order = calloc((size_t)fl.n + 1, sizeof *order);
    float *row = malloc(sizeof(float) * ((size_t)m->cfg.dim + m->cfg.value_dim + 2 * (size_t)m->cfg.ffn_dim + 64));
    cJSON *meta = rni_st_file_meta(config_json);
    if (!t || !src || !raw || !typed || !order || !row || !meta) st = rni_fail(RN_ERR_NOMEM, "out of memory");
    for (int i = 0; st == RN_OK && i < fl.n; i++) {
        const rni_file_tensor *ft = &fl.t[i];
        if (ft->alias || ft->buffer || ft->cols == 1 || wt == RN_WTYPE_F32) continue;
        if (!quantised_here(m, m->tensors[tensor_at(m, ft->off)].kind, flags)) continue;
        size_t rb = rn_wtype_row_bytes(wt, ft->cols);
        if (!rb) {
            st = rni_fail(RN_ERR_ARG, "tensor '%s' [%d, %d]: its %d inputs are not a multiple of %d, as %s blocks need "
                          "(quantise to bf16 or f16, or use widths that are multiples of %d)", ft->name, ft->rows,
                          ft->cols, ft->cols, RN_QK, rn_wtype_name(wt), RN_QK);
            break;
        }
        unsigned char *q = malloc((size_t)ft->rows * rb);
        if (!q) { st = rni_fail(RN_ERR_NOMEM, "out of memory for tensor '%s'", ft->name); break; }
        raw[i] = q;
        typed[i] = 1;
        model_src bs = block_src(m, NULL, ft);
        for (int r = 0; r < ft->rows && st == RN_OK; r++) {
            for (int c = 0; c < ft->cols; c++) row[c] = (float)block_elem(&bs, (size_t)r, (size_t)c);
            if (wt == RN_WTYPE_F16)
                for (int c = 0; c < ft->cols && st == RN_OK; c++)
                    if (fabsf(row[c]) >= 65520.0f)
                        st = rni_fail(RN_ERR_ARG, "tensor '%s' holds %g, beyond the range of f16 (65504)", ft->name, row[c]);
            if (st == RN_OK) st = rn_quantize_row(wt, row, q + (size_t)r * rb, ft->cols);
        }
        char key[128], val[96];
        snprintf(key, sizeof key, WTYPE_KEY "%s", ft->name);
        snprintf(val, sizeof val, "%s [%d, %d]", rn_wtype_name(wt), ft->rows, ft->cols);
        cJSON_AddStringToObject(meta, key, val);
    }
    int n = 0;
    if (st == RN_OK) {
        quant_order(&fl, typed, order);
        for (int k = 0; k < fl.n; k++) {
            int i = order[k];
            const rni_file_tensor *ft = &fl.t[i];
            if (ft->alias) continue;
            src[n] = block_src(m, NULL, ft);
            t[n] = (st_out){ft->name, ft->ndim, {ft->shape[0], ft->shape[1]}, (size_t)ft->rows * ft->cols, model_get,
                            &src[n], NULL, RN_DTYPE_F32};
            if (typed[i]) {  /* [out, in] whatever the preset's float layout */
                int blocks = wt == RN_WTYPE_Q8_0 || wt == RN_WTYPE_Q4_0;
                size_t rb = rn_wtype_row_bytes(wt, ft->cols);
                t[n].ndim = 2;
                t[n].shape[0] = ft->rows;
                t[n].shape[1] = blocks ? (int64_t)rb : ft->cols;
                t[n].count = blocks ? (size_t)ft->rows * rb : (size_t)ft->rows * ft->cols;
                t[n].raw = raw[i];
                t[n].raw_dt = blocks ? RNI_DTYPE_U8 : wt == RN_WTYPE_BF16 ? RN_DTYPE_BF16 : RN_DTYPE_F16;
            }
            n++;
        }
        st = rni_st_write(path, meta, t, n, RN_DTYPE_F32);
        meta = NULL;  /* consumed */
    }
    cJSON_Delete(meta);
    for (int i = 0; i < fl.n; i++) free(raw[i]);
    free(raw); free(typed); free(order); free(row); free(t); free(src);
    rni_file_list_free(&fl);
    return st;
}
