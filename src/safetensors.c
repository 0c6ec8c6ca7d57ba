/* safetensors.c: the safetensors container (the PyTorch world's weight
 * files): an 8-byte header length, a JSON header naming each tensor's dtype,
 * shape and byte range, then the data. Files are memory-mapped and every
 * header field is validated before use; written files carry an FNV-1a
 * checksum of their data (and checkpoints of their metadata). What the
 * tensors mean is tensor_io.c's part. */
#define _DEFAULT_SOURCE  /* MAP_POPULATE */
#include "safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
/* xxHash's own header, compiled inline with our flags: its AVX2 path where
 * the build targets AVX2 (Debian's libxxhash is built for baseline x86-64). */
#define XXH_INLINE_ALL
#include <xxhash.h>

#define MAX_HEADER ((size_t)100 << 20)  /* 100 MiB of JSON is already absurd */

/* ---------------------------------------------------------- dtypes */

/* The safetensors name and element size of each rn_dtype (read and written). */
static const struct { const char *name; size_t size; } dtypes[] = {
    [RN_DTYPE_F32] = {"F32", 4}, [RN_DTYPE_BF16] = {"BF16", 2}, [RN_DTYPE_F64] = {"F64", 8}, [RN_DTYPE_F16] = {"F16", 2},
    [RNI_DTYPE_U8] = {"U8", 1}};

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
double rni_st_elem(const unsigned char *p, rn_dtype dt, size_t i) {
    switch (dt) {
    case RN_DTYPE_F32: { float f; memcpy(&f, p + 4 * i, 4); return f; }
    case RN_DTYPE_F64: { double f; memcpy(&f, p + 8 * i, 8); return f; }
    case RN_DTYPE_F16: { uint16_t h; memcpy(&h, p + 2 * i, 2); return half_to_double(h); }
    case RN_DTYPE_BF16: {
        uint16_t h; memcpy(&h, p + 2 * i, 2);
        uint32_t u = (uint32_t)h << 16; float f; memcpy(&f, &u, 4); return f;
    }
    case RNI_DTYPE_U8: return p[i];
    default: return 0;
    }
}

/* ------------------------------------------------------------- read */


static int cmp_begin(const void *a, const void *b) {
    const st_entry *x = *(st_entry *const *)a, *y = *(st_entry *const *)b;
    return x->begin < y->begin ? -1 : x->begin > y->begin;
}

static int cmp_name(const void *a, const void *b) {
    return strcmp((*(st_entry *const *)a)->name, (*(st_entry *const *)b)->name);
}

void rni_shape_str(char *buf, size_t n, int ndim, const int64_t *shape) {
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
            st = rni_fail(RN_ERR_FORMAT, "%s: tensor '%s' has unsupported dtype %s (F32, F16, BF16, F64, U8)", path, t->name, dt->valuestring);
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


void rni_st_close(st_file *f) {
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
uint64_t rni_st_meta_hash(const cJSON *meta) {
    uint64_t h = FNV_INIT;
    for (const cJSON *it = meta ? meta->child : NULL; it; it = it->next)
        if (cJSON_IsString(it) && strncmp(it->string, "checksum_", 9) != 0) {
            h = fnv1a(h, it->string, strlen(it->string) + 1);
            h = fnv1a(h, it->valuestring, strlen(it->valuestring) + 1);
        }
    return h;
}

/* Adds digest d to the checksum's top-level hash, as 8 little-endian bytes. */
static void add_digest(XXH3_state_t *top, uint64_t d) {
    unsigned char le[8];
    for (int k = 0; k < 8; k++) le[k] = (unsigned char)(d >> (8 * k));
    XXH3_64bits_update(top, le, 8);
}

/* The data checksum of new files: XXH3-64 of each RNI_HASH_BLOCK bytes (the
 * last block may be shorter), then XXH3-64 of those digests as
 * little-endian 64-bit values. Blocks hash in parallel, so a file is
 * verified at about the memory bandwidth. */
uint64_t rni_st_data_hash(const void *p, size_t n) {
    size_t nb = (n + RNI_HASH_BLOCK - 1) / RNI_HASH_BLOCK;
    uint64_t one, *dig = nb > 1 ? malloc(nb * sizeof *dig) : &one;
    if (!dig) return 0;  /* a mismatch, reported as corruption; memory is short anyway */
    const unsigned char *b = p;
#pragma omp parallel for schedule(static) if (nb > 2)
    for (size_t i = 0; i < nb; i++) {
        size_t len = i + 1 < nb ? RNI_HASH_BLOCK : n - i * RNI_HASH_BLOCK;
        dig[i] = XXH3_64bits(b + i * RNI_HASH_BLOCK, len);
    }
    XXH3_state_t *st = XXH3_createState();
    uint64_t h = 0;
    if (st && XXH3_64bits_reset(st) == XXH_OK) {
        for (size_t i = 0; i < nb; i++) add_digest(st, dig[i]);
        h = XXH3_64bits_digest(st);
    }
    XXH3_freeState(st);
    if (dig != &one) free(dig);
    return h;
}

/* A stored checksum (hex) against h. */
static int sum_matches(const char *sum, uint64_t h) {
    char want[32];
    snprintf(want, sizeof want, "%016llx", (unsigned long long)h);
    return strcmp(sum, want) == 0;
}

const char *rni_st_meta(const st_file *f, const char *key) {
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(f->hdr, "__metadata__");
    const cJSON *v = m ? cJSON_GetObjectItemCaseSensitive(m, key) : NULL;
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Refuses (before anything is allocated) a config whose parameters cannot
 * fit in data_len bytes of files at 2 bytes each. */
rn_status rni_st_config_fits(const char *path, const rn_config *cfg, size_t data_len) {
    /* q4_0, the smallest type read, holds 32 weights in 18 bytes */
    size_t n = rn_config_num_params(cfg), bytes;
    if (!rni_mul_ok(n / 32, 18, &bytes) || bytes > data_len)
        return rni_fail(RN_ERR_FORMAT, "%s: the config needs %zu parameters, more than the file's %zu data bytes hold",
                       path, n, data_len);
    return RN_OK;
}

/* The config of an open file, refused when it cannot fit (rni_st_config_fits). */
rn_status rni_st_config(const st_file *f, rn_config *cfg) {
    rn_status st = rn_config_from_json(f->config, cfg);
    if (st != RN_OK) {
        char msg[512];  /* rni_fail formats into the buffer rn_last_error returns */
        snprintf(msg, sizeof msg, "%s", rn_last_error());
        return rni_fail(st, "%s: %s", f->path, msg);
    }
    return rni_st_config_fits(f->path, cfg, f->data_len);
}

rn_status rni_st_open(const char *path, st_file *f, int verify) {
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
    /* Memory-mapped: weights are read straight from the page cache. With
     * verify every page is read at once: populated in one go, not faulted
     * in one by one. */
    f->map = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE | (verify ? MAP_POPULATE : 0), fd, 0);
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
    /* Files written before the XXH3 checksum carry FNV-1a, still verified
     * (byte by byte, so slowly). */
    const char *xsum = rni_st_meta(f, "checksum_xxh3"), *sum = rni_st_meta(f, "checksum_fnv1a64");
    const char *msum = rni_st_meta(f, "checksum_meta_fnv1a64");
    if ((verify && xsum && !sum_matches(xsum, rni_st_data_hash(f->data, f->data_len))) ||
        (verify && sum && !xsum && !sum_matches(sum, fnv1a(FNV_INIT, f->data, f->data_len))) ||
        (msum && !sum_matches(msum, rni_st_meta_hash(cJSON_GetObjectItemCaseSensitive(f->hdr, "__metadata__"))))) {
        st = rni_fail(RN_ERR_FORMAT, "%s: checksum mismatch (file corrupted or truncated)", path);
        goto fail;
    }
    return RN_OK;
fail:
    rni_st_close(f);
    return st;
}

st_entry *rni_st_find(st_file *f, const char *name) {
    for (int i = 0; i < f->ne; i++)
        if (strcmp(f->e[i].name, name) == 0) return &f->e[i];
    return NULL;
}

/* v is finite and stays finite as rn_real (an F64 1e300 would not in float). */
int rni_real_ok(double v) {
#ifdef RETNET_DOUBLE
    return fabs(v) <= DBL_MAX;
#else
    return fabs(v) <= FLT_MAX;
#endif
}

/* ------------------------------------------------------------ write */


double rni_st_flat_get(const void *ctx, size_t j) { return ((const rn_real *)ctx)[j]; }

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
        if (t[i].raw) {  /* as it is, in chunks */
            size_t bytes = t[i].count * dtypes[t[i].raw_dt].size, step = (size_t)1 << 20;
            for (size_t o = 0; o < bytes && st == RN_OK; o += step)
                st = fn(arg, (const unsigned char *)t[i].raw + o, bytes - o < step ? bytes - o : step);
            continue;
        }
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

/* rni_st_data_hash over a stream of chunks: one XXH3 state per block. */
typedef struct {
    XXH3_state_t *block, *top;  /* the current block; the digests */
    size_t in_block;            /* bytes of the current block so far */
} stream_hash;

static void block_done(stream_hash *h) {
    add_digest(h->top, XXH3_64bits_digest(h->block));
    XXH3_64bits_reset(h->block);
    h->in_block = 0;
}

static rn_status hash_chunk(void *arg, const void *p, size_t n) {
    stream_hash *h = arg;
    const unsigned char *b = p;
    while (n) {
        size_t take = RNI_HASH_BLOCK - h->in_block < n ? RNI_HASH_BLOCK - h->in_block : n;
        XXH3_64bits_update(h->block, b, take);
        h->in_block += take; b += take; n -= take;
        if (h->in_block == RNI_HASH_BLOCK) block_done(h);
    }
    return RN_OK;
}

static rn_status write_chunk(void *arg, const void *p, size_t n) { return rn_atomic_write(arg, p, n); }

/* Writes a safetensors file atomically, with the XXH3 block checksum of the
 * data section in the metadata. meta is consumed. */
rn_status rni_st_write(const char *path, cJSON *meta, const st_out *t, int n, rn_dtype dt) {
    rn_status st = RN_OK;
    cJSON *hdr = cJSON_CreateObject();
    char *js = NULL;
    if (!hdr || !meta) { cJSON_Delete(hdr); cJSON_Delete(meta); return rni_fail(RN_ERR_NOMEM, "out of memory"); }
    stream_hash sh = {XXH3_createState(), XXH3_createState(), 0};
    if (!sh.block || !sh.top || XXH3_64bits_reset(sh.block) != XXH_OK || XXH3_64bits_reset(sh.top) != XXH_OK)
        st = rni_fail(RN_ERR_NOMEM, "out of memory");
    if (st == RN_OK) st = st_stream(t, n, dt, hash_chunk, &sh);  /* refused before any file is made */
    uint64_t h = 0;
    if (st == RN_OK) {
        if (sh.in_block) block_done(&sh);  /* the last, short block */
        h = XXH3_64bits_digest(sh.top);
    }
    XXH3_freeState(sh.block);
    XXH3_freeState(sh.top);
    if (st != RN_OK) {
        cJSON_Delete(hdr);
        cJSON_Delete(meta);
        return st;
    }
    char sum[32];
    snprintf(sum, sizeof sum, "%016llx", (unsigned long long)h);
    cJSON_AddStringToObject(meta, "checksum_xxh3", sum);
    cJSON_AddItemToObject(hdr, "__metadata__", meta);
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        rn_dtype tdt = t[i].raw ? t[i].raw_dt : dt;
        size_t es = dtypes[tdt].size;
        cJSON *o = cJSON_AddObjectToObject(hdr, t[i].name);
        cJSON_AddStringToObject(o, "dtype", dtypes[tdt].name);
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
cJSON *rni_st_file_meta(const char *config_json) {
    cJSON *meta = cJSON_CreateObject();
    if (!meta) return NULL;
    cJSON_AddStringToObject(meta, "format", "pt");
    if (config_json) cJSON_AddStringToObject(meta, "retnet", config_json);
    return meta;
}

cJSON *rni_st_config_meta(const rn_config *c) {
    char *cfg = rn_config_to_json(c);
    cJSON *meta = cfg ? rni_st_file_meta(cfg) : NULL;
    free(cfg);
    return meta;
}

