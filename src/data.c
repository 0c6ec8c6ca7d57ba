/* data.c: the byte-level tokenizer, whole-file reading, and the dataset
 * (a token stream split into train and validation, in memory or in mapped
 * shards, sampled in random windows for training and enumerated in
 * consecutive windows for evaluation). */
#define _POSIX_C_SOURCE 200809L
#include "retnet_data.h"
#include "internal.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ------------------------------------------------------------- tokenizer */

rn_status rn_tokenizer_encode(const rn_tokenizer *tok, const char *text, size_t len,
                              int32_t *ids, size_t cap, size_t *n) {
    if (!tok || !tok->encode || !n || (len && !text) || (cap && !ids))
        return rni_fail(RN_ERR_ARG, "rn_tokenizer_encode: NULL argument");
    *n = 0;
    return tok->encode(tok, text, len, ids, cap, n);
}

rn_status rn_tokenizer_decode(const rn_tokenizer *tok, int32_t id,
                              const char **piece, size_t *len) {
    if (!tok || !tok->decode || !piece || !len)
        return rni_fail(RN_ERR_ARG, "rn_tokenizer_decode: NULL argument");
    if (id < 0 || id >= tok->vocab_size)
        return rni_fail(RN_ERR_ARG, "token id %ld outside the vocabulary [0, %d)",
                       (long)id, tok->vocab_size);
    tok->decode(tok, id, piece, len);
    return RN_OK;
}

void rn_tokenizer_free(rn_tokenizer *tok) {
    if (tok && tok->free) tok->free(tok);
}

/* The byte tokenizer carries its 256 one-byte pieces after the vtable. */
typedef struct {
    rn_tokenizer base;
    char bytes[256];
} rn_byte_tokenizer;

static rn_status byte_encode(const rn_tokenizer *tok, const char *text, size_t len,
                             int32_t *ids, size_t cap, size_t *n) {
    (void)tok;
    const unsigned char *u = (const unsigned char *)text;
    size_t m = len < cap ? len : cap;
    for (size_t i = 0; i < m; i++) ids[i] = (int32_t)u[i];
    *n = len;
    return RN_OK;
}

static void byte_decode(const rn_tokenizer *tok, int32_t id, const char **piece, size_t *len) {
    const rn_byte_tokenizer *bt = (const rn_byte_tokenizer *)tok;
    *piece = &bt->bytes[id];
    *len = 1;
}

static void byte_free(rn_tokenizer *tok) { free(tok); }

rn_status rn_tokenizer_byte_create(rn_tokenizer **out) {
    if (!out) return rni_fail(RN_ERR_ARG, "rn_tokenizer_byte_create: NULL argument");
    *out = NULL;
    rn_byte_tokenizer *bt = calloc(1, sizeof *bt);
    if (!bt) return rni_fail(RN_ERR_NOMEM, "out of memory (byte tokenizer)");
    for (int i = 0; i < 256; i++) bt->bytes[i] = (char)(unsigned char)i;
    bt->base.vocab_size = 256;
    bt->base.name = "byte";
    bt->base.encode = byte_encode;
    bt->base.decode = byte_decode;
    bt->base.free = byte_free;
    bt->base.impl = NULL;
    *out = &bt->base;
    return RN_OK;
}

/* ----------------------------------------------------------------- files */

rn_status rn_read_file(const char *path, size_t max_bytes, char **data, size_t *len) {
    if (!path || !data || !len) return rni_fail(RN_ERR_ARG, "rn_read_file: NULL argument");
    *data = NULL;
    *len = 0;
    if (max_bytes == 0 || max_bytes > SIZE_MAX - 1) max_bytes = SIZE_MAX - 1;

    FILE *f = fopen(path, "rb");
    if (!f) return rni_fail(RN_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0) {
        rn_status s = rni_fail(RN_ERR_IO, "cannot stat %s: %s", path, strerror(errno));
        fclose(f);
        return s;
    }
    if (S_ISDIR(st.st_mode)) {
        fclose(f);
        return rni_fail(RN_ERR_IO, "cannot read %s: is a directory", path);
    }
    if (S_ISREG(st.st_mode) && (uintmax_t)st.st_size > (uintmax_t)max_bytes) {
        fclose(f);
        return rni_fail(RN_ERR_ARG, "%s is %jd bytes, more than the limit of %zu", path,
                       (intmax_t)st.st_size, max_bytes);
    }

    /* Read to the end in a growing buffer: a regular file's size is only a
     * first guess (it may change), and pipes have none. */
    size_t cap = S_ISREG(st.st_mode) ? (size_t)st.st_size + 1 : 65536, n = 0;
    if (cap > max_bytes + 1) cap = max_bytes + 1;
    char *buf = malloc(cap);
    if (!buf) {
        fclose(f);
        return rni_fail(RN_ERR_NOMEM, "out of memory reading %s (%zu bytes)", path, cap);
    }
    for (;;) {
        if (n == cap) {
            if (n > max_bytes) {
                free(buf);
                fclose(f);
                return rni_fail(RN_ERR_ARG, "%s is more than the limit of %zu bytes", path,
                               max_bytes);
            }
            size_t ncap = cap > max_bytes / 2 ? max_bytes + 1 : cap * 2;
            char *nb = realloc(buf, ncap);
            if (!nb) {
                free(buf);
                fclose(f);
                return rni_fail(RN_ERR_NOMEM, "out of memory reading %s (%zu bytes)", path, ncap);
            }
            buf = nb;
            cap = ncap;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    if (ferror(f)) {
        rn_status s = rni_fail(RN_ERR_IO, "cannot read %s: %s", path, strerror(errno));
        free(buf);
        fclose(f);
        return s;
    }
    fclose(f);
    if (n > max_bytes) {
        free(buf);
        return rni_fail(RN_ERR_ARG, "%s is more than the limit of %zu bytes", path, max_bytes);
    }
    /* Room for the NUL: n < cap unless the last read filled the buffer. */
    if (n == cap) {
        char *nb = realloc(buf, n + 1);
        if (!nb) {
            free(buf);
            return rni_fail(RN_ERR_NOMEM, "out of memory reading %s", path);
        }
        buf = nb;
    }
    buf[n] = '\0';
    *data = buf;
    *len = n;
    return RN_OK;
}

/* --------------------------------------------------------------- dataset */

/* One split of a dataset of shards: its shards one after another. */
typedef struct {
    rn_shard **shard;  /* (count) */
    size_t *start;     /* (count): position of each shard's first token in the split */
    size_t count, n;   /* shards, tokens */
} shard_split;

struct rn_dataset {
    int32_t *tokens;  /* (n): train tokens [0, n_train), val tokens [n_train, n); NULL for shards */
    size_t n;
    size_t n_train;
    int vocab_size;
    shard_split sp[2];  /* by rn_split, when tokens is NULL */
};

/* Splits n tokens: the number that go to validation, or an error naming
 * what (a file name or "token array") is too short. */
static rn_status split_sizes(const char *what, size_t n, double val_fraction, size_t *n_val) {
    if (!(val_fraction >= 0.0 && val_fraction < 1.0))
        return rni_fail(RN_ERR_ARG, "validation fraction %g is not in [0, 1)", val_fraction);
    double v = floor((double)n * val_fraction + 0.5);
    size_t nv = v >= (double)n ? n : (size_t)v;
    if (n - nv < 2 || (val_fraction > 0.0 && nv < 2))
        return rni_fail(RN_ERR_FORMAT,
                       "%s has %zu tokens: too few for a validation fraction of %g "
                       "(each split needs at least 2 tokens)",
                       what, n, val_fraction);
    *n_val = nv;
    return RN_OK;
}

/* Takes ownership of tokens (n, allocated with rni_alloc); frees them on error. */
static rn_status dataset_make(const char *what, int32_t *tokens, size_t n, int vocab_size,
                              double val_fraction, rn_dataset **out) {
    size_t n_val = 0;
    rn_status s = split_sizes(what, n, val_fraction, &n_val);
    for (size_t i = 0; s == RN_OK && i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= vocab_size)
            s = rni_fail(RN_ERR_FORMAT, "%s: token %zu is %ld, outside the vocabulary [0, %d)",
                        what, i, (long)tokens[i], vocab_size);
    rn_dataset *ds = s == RN_OK ? malloc(sizeof *ds) : NULL;
    if (!ds) {
        rni_free(tokens);
        return s != RN_OK ? s : rni_fail(RN_ERR_NOMEM, "out of memory (dataset)");
    }
    memset(ds, 0, sizeof *ds);
    ds->tokens = tokens;
    ds->n = n;
    ds->n_train = n - n_val;
    ds->vocab_size = vocab_size;
    *out = ds;
    return RN_OK;
}

rn_status rn_dataset_open(const char *path, const rn_tokenizer *tok, double val_fraction,
                          rn_dataset **out) {
    if (!path || !tok || !out) return rni_fail(RN_ERR_ARG, "rn_dataset_open: NULL argument");
    *out = NULL;
    if (!(val_fraction >= 0.0 && val_fraction < 1.0))
        return rni_fail(RN_ERR_ARG, "validation fraction %g is not in [0, 1)", val_fraction);

    char *text = NULL;
    size_t len = 0;
    rn_status s = rn_read_file(path, RN_DATASET_MAX_BYTES, &text, &len);
    if (s != RN_OK) return s;
    if (len == 0) {
        free(text);
        return rni_fail(RN_ERR_FORMAT, "dataset %s is empty", path);
    }

    /* One pass for tokenizers that never expand text (byte, BPE); a second,
     * with the exact size, for any that do. */
    size_t cap = len, n = 0;
    int32_t *tokens = rni_alloc(cap, sizeof *tokens);
    if (!tokens) s = rni_fail(RN_ERR_NOMEM, "out of memory tokenizing %s", path);
    if (s == RN_OK) s = rn_tokenizer_encode(tok, text, len, tokens, cap, &n);
    if (s == RN_OK && n > cap) {
        rni_free(tokens);
        cap = n;
        tokens = rni_alloc(cap, sizeof *tokens);
        if (!tokens) s = rni_fail(RN_ERR_NOMEM, "out of memory tokenizing %s", path);
        if (s == RN_OK) s = rn_tokenizer_encode(tok, text, len, tokens, cap, &n);
        if (s == RN_OK && n != cap)
            s = rni_fail(RN_ERR_ARG, "tokenizer %s is not deterministic on %s",
                        tok->name ? tok->name : "?", path);
    }
    free(text);
    if (s != RN_OK) {
        rni_free(tokens);
        return s;
    }
    if (n == 0) {
        rni_free(tokens);
        return rni_fail(RN_ERR_FORMAT, "dataset %s has no tokens", path);
    }
    return dataset_make(path, tokens, n, tok->vocab_size, val_fraction, out);
}

rn_status rn_dataset_from_tokens(const int32_t *tokens, size_t n, int vocab_size,
                                 double val_fraction, rn_dataset **out) {
    if ((n && !tokens) || !out) return rni_fail(RN_ERR_ARG, "rn_dataset_from_tokens: NULL argument");
    *out = NULL;
    if (vocab_size < 1) return rni_fail(RN_ERR_ARG, "vocabulary size %d < 1", vocab_size);
    int32_t *copy = rni_alloc(n, sizeof *copy);
    if (!copy) return rni_fail(RN_ERR_NOMEM, "out of memory (%zu tokens)", n);
    if (n) memcpy(copy, tokens, n * sizeof *copy);
    return dataset_make("token array", copy, n, vocab_size, val_fraction, out);
}

/* The split a shard's file name gives: the last of the words "train" and
 * "val" in it (words end at '_', '-', '.' and the ends), or -1. */
static int shard_name_split(const char *name) {
    size_t len = strlen(name);
    if (len < 5 || strcmp(name + len - 4, ".bin") != 0) return -1;
    int split = -1;
    for (size_t i = 0; i < len;) {
        size_t j = i;
        while (j < len && !strchr("_-.", name[j])) j++;
        if (j - i == 5 && strncmp(name + i, "train", 5) == 0) split = RN_SPLIT_TRAIN;
        if (j - i == 3 && strncmp(name + i, "val", 3) == 0) split = RN_SPLIT_VAL;
        i = j + 1;
    }
    return split;
}

static int cmp_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Opens the shards of one split (names, count of them, sorted) of dir. */
static rn_status split_open(const char *dir, char **names, size_t count, shard_split *sp) {
    sp->shard = calloc(count ? count : 1, sizeof *sp->shard);
    sp->start = calloc(count ? count : 1, sizeof *sp->start);
    if (!sp->shard || !sp->start) return rni_fail(RN_ERR_NOMEM, "out of memory (%zu shards)", count);
    size_t plen = strlen(dir) + 2;
    for (size_t i = 0; i < count; i++) {
        char *path = malloc(plen + strlen(names[i]));
        if (!path) return rni_fail(RN_ERR_NOMEM, "out of memory (shard names)");
        sprintf(path, "%s/%s", dir, names[i]);
        rn_status s = rn_shard_open(path, &sp->shard[i]);
        free(path);
        if (s != RN_OK) return s;
        sp->count = i + 1;
        sp->start[i] = sp->n;
        sp->n += rn_shard_size(sp->shard[i]);
    }
    return RN_OK;
}

rn_status rn_dataset_open_shards(const char *dir, int vocab_size, rn_dataset **out) {
    if (!dir || !out) return rni_fail(RN_ERR_ARG, "rn_dataset_open_shards: NULL argument");
    *out = NULL;
    if (vocab_size < 1) return rni_fail(RN_ERR_ARG, "vocabulary size %d < 1", vocab_size);
    DIR *dp = opendir(dir);
    if (!dp) return rni_fail(RN_ERR_IO, "cannot read the shard directory %s: %s", dir, strerror(errno));
    char **names[2] = {NULL, NULL};
    size_t count[2] = {0, 0}, cap[2] = {0, 0};
    rn_status s = RN_OK;
    for (struct dirent *e; s == RN_OK && (e = readdir(dp));) {
        int split = shard_name_split(e->d_name);
        if (split < 0) continue;
        if (count[split] == cap[split]) {
            size_t nc = cap[split] ? 2 * cap[split] : 16;
            char **nn = realloc(names[split], nc * sizeof *nn);
            if (!nn) { s = rni_fail(RN_ERR_NOMEM, "out of memory (shard names)"); break; }
            names[split] = nn;
            cap[split] = nc;
        }
        if (!(names[split][count[split]] = strdup(e->d_name))) s = rni_fail(RN_ERR_NOMEM, "out of memory");
        else count[split]++;
    }
    closedir(dp);
    if (s == RN_OK && count[RN_SPLIT_TRAIN] == 0)
        s = rni_fail(RN_ERR_FORMAT, "%s has no training shard (*train*.bin in llm.c's format)", dir);
    rn_dataset *ds = s == RN_OK ? calloc(1, sizeof *ds) : NULL;
    if (s == RN_OK && !ds) s = rni_fail(RN_ERR_NOMEM, "out of memory (dataset)");
    for (int k = 0; k < 2; k++) {
        if (names[k]) qsort(names[k], count[k], sizeof *names[k], cmp_names);
        if (s == RN_OK) s = split_open(dir, names[k], count[k], &ds->sp[k]);
        for (size_t i = 0; i < count[k]; i++) free(names[k][i]);
        free(names[k]);
    }
    if (s != RN_OK) {
        rn_dataset_free(ds);
        return s;
    }
    ds->vocab_size = vocab_size;
    *out = ds;
    return RN_OK;
}

size_t rn_dataset_num_shards(const rn_dataset *ds, rn_split split) {
    if (!ds || ds->tokens || (split != RN_SPLIT_TRAIN && split != RN_SPLIT_VAL)) return 0;
    return ds->sp[split].count;
}

const rn_shard *rn_dataset_shard(const rn_dataset *ds, rn_split split, size_t i) {
    return i < rn_dataset_num_shards(ds, split) ? ds->sp[split].shard[i] : NULL;
}

void rn_dataset_free(rn_dataset *ds) {
    if (!ds) return;
    rni_free(ds->tokens);
    for (int k = 0; k < 2; k++) {
        for (size_t i = 0; i < ds->sp[k].count; i++) rn_shard_close(ds->sp[k].shard[i]);
        free(ds->sp[k].shard);
        free(ds->sp[k].start);
    }
    free(ds);
}

size_t rn_dataset_size(const rn_dataset *ds, rn_split split) {
    if (!ds) return 0;
    if (!ds->tokens) return split == RN_SPLIT_TRAIN || split == RN_SPLIT_VAL ? ds->sp[split].n : 0;
    if (split == RN_SPLIT_TRAIN) return ds->n_train;
    if (split == RN_SPLIT_VAL) return ds->n - ds->n_train;
    return 0;
}

/* Tokens [pos, pos + n) of a split, which the caller has checked to be in
 * range, wherever they are. */
static rn_status split_read(const rn_dataset *ds, rn_split split, size_t pos, size_t n, int32_t *out) {
    if (ds->tokens) {
        memcpy(out, rn_dataset_tokens(ds, split) + pos, n * sizeof *out);
        return RN_OK;
    }
    const shard_split *sp = &ds->sp[split];
    size_t lo = 0, hi = sp->count;  /* the last shard starting at or before pos */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (sp->start[mid] <= pos) lo = mid;
        else hi = mid;
    }
    for (size_t i = lo; n; i++) {
        size_t off = pos - sp->start[i], m = rn_shard_size(sp->shard[i]) - off;
        if (m > n) m = n;
        rn_status s = rn_shard_read(sp->shard[i], off, m, ds->vocab_size, out);
        if (s != RN_OK) return s;
        out += m;
        pos += m;
        n -= m;
    }
    return RN_OK;
}

rn_status rn_dataset_read(const rn_dataset *ds, rn_split split, size_t pos, size_t n, int32_t *out) {
    if (!ds || (n && !out)) return rni_fail(RN_ERR_ARG, "rn_dataset_read: NULL argument");
    if (split != RN_SPLIT_TRAIN && split != RN_SPLIT_VAL) return rni_fail(RN_ERR_ARG, "unknown split %d", (int)split);
    size_t size = rn_dataset_size(ds, split);
    if (pos > size || n > size - pos)
        return rni_fail(RN_ERR_ARG, "tokens [%zu, %zu) outside the %s split's %zu", pos, pos + n,
                        split == RN_SPLIT_TRAIN ? "training" : "validation", size);
    return split_read(ds, split, pos, n, out);
}

/* x (n) = tokens [s, s + n) and y (n) = tokens [s + 1, s + n + 1): x is
 * read, y is x shifted with one more token read. */
static rn_status read_pair(const rn_dataset *ds, rn_split split, size_t s, size_t n, int32_t *x, int32_t *y) {
    rn_status st = split_read(ds, split, s, n, x);
    if (st != RN_OK) return st;
    if (n > 1) memcpy(y, x + 1, (n - 1) * sizeof *y);
    return split_read(ds, split, s + n, 1, y + n - 1);
}

const int32_t *rn_dataset_tokens(const rn_dataset *ds, rn_split split) {
    if (!ds || !ds->tokens) return NULL;
    if (split == RN_SPLIT_TRAIN) return ds->tokens;
    if (split == RN_SPLIT_VAL) return ds->tokens + ds->n_train;
    return NULL;
}

int rn_dataset_vocab_size(const rn_dataset *ds) { return ds ? ds->vocab_size : 0; }

/* Uniform integer in [0, range), range >= 1, by rejection: unbiased, and
 * almost always one draw. */
static uint64_t rng_below(rn_rng *rng, uint64_t range) {
    uint64_t threshold = (0 - range) % range;  /* 2^64 mod range */
    for (;;) {
        uint64_t r = rn_rng_u64(rng);
        if (r >= threshold) return r % range;
    }
}

rn_status rn_dataset_sample(const rn_dataset *ds, rn_split split, rn_rng *rng, int B, int T,
                            int32_t *x, int32_t *y) {
    if (!ds || !rng || !x || !y) return rni_fail(RN_ERR_ARG, "rn_dataset_sample: NULL argument");
    if (split != RN_SPLIT_TRAIN && split != RN_SPLIT_VAL)
        return rni_fail(RN_ERR_ARG, "unknown split %d", (int)split);
    if (B < 1 || T < 1) return rni_fail(RN_ERR_ARG, "batch %d x %d: both must be >= 1", B, T);
    size_t size = rn_dataset_size(ds, split);
    if (size < (size_t)T + 1)
        return rni_fail(RN_ERR_ARG, "%s split has %zu tokens, fewer than T+1 = %ld",
                       split == RN_SPLIT_TRAIN ? "training" : "validation", size, (long)T + 1);
    /* Start positions 0 .. size-T-1: size-T of them. */
    uint64_t range = (uint64_t)(size - (size_t)T);
    for (int b = 0; b < B; b++) {
        size_t start = (size_t)rng_below(rng, range);
        rn_status s = read_pair(ds, split, start, (size_t)T, x + (size_t)b * (size_t)T, y + (size_t)b * (size_t)T);
        if (s != RN_OK) return s;
    }
    return RN_OK;
}

size_t rn_dataset_num_windows(const rn_dataset *ds, rn_split split, int T) {
    size_t size = rn_dataset_size(ds, split);
    if (T < 1 || size < 2) return 0;
    return (size - 1 + (size_t)T - 1) / (size_t)T;
}

rn_status rn_dataset_window(const rn_dataset *ds, rn_split split, size_t index, int T,
                            int32_t *x, int32_t *y, int *n) {
    if (!ds || !x || !y || !n) return rni_fail(RN_ERR_ARG, "rn_dataset_window: NULL argument");
    *n = 0;
    if (split != RN_SPLIT_TRAIN && split != RN_SPLIT_VAL)
        return rni_fail(RN_ERR_ARG, "unknown split %d", (int)split);
    if (T < 1) return rni_fail(RN_ERR_ARG, "window length %d < 1", T);
    size_t nw = rn_dataset_num_windows(ds, split, T);
    if (index >= nw)
        return rni_fail(RN_ERR_ARG, "window %zu out of range: the %s split has %zu of length %d",
                       index, split == RN_SPLIT_TRAIN ? "training" : "validation", nw, T);
    size_t size = rn_dataset_size(ds, split), s = index * (size_t)T;
    size_t m = size - 1 - s < (size_t)T ? size - 1 - s : (size_t)T;
    rn_status st = read_pair(ds, split, s, m, x, y);
    if (st != RN_OK) return st;
    if (m < (size_t)T) {
        memset(x + m, 0, ((size_t)T - m) * sizeof *x);
        memset(y + m, 0, ((size_t)T - m) * sizeof *y);
    }
    *n = (int)m;
    return RN_OK;
}
