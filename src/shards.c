/* shards.c: token shard files in llm.c's format (include/retnet_data.h):
 * a reader that maps a shard and checks its header against the file size,
 * and a writer that streams tokens into a temporary and commits it
 * atomically. */
#define _POSIX_C_SOURCE 200809L
#include "retnet_data.h"
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* The tokens are read in place as little-endian integers. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "shards.c reads little-endian shards in place: a big-endian host needs byte swaps here"
#endif

#define HEADER_BYTES (RN_SHARD_HEADER_INTS * 4)

struct rn_shard {
    char *path;
    void *map;                 /* the whole file (map_len bytes) */
    size_t map_len;
    const unsigned char *tok;  /* map + HEADER_BYTES: n tokens of width bytes */
    size_t n;
    int width;
};

/* Bytes per token for a header's magic and version, or 0 if unknown. */
static int header_width(int32_t magic, int32_t version) {
    if (magic == RN_SHARD_MAGIC && version == 1) return 2;
    if (magic == RN_SHARD_MAGIC && version == 2) return 4;
    if (magic == RN_SHARD_MAGIC_U32 && version == RN_SHARD_VERSION_U32) return 4;
    return 0;
}

rn_status rn_shard_open(const char *path, rn_shard **out) {
    if (!path || !out) return rni_fail(RN_ERR_ARG, "rn_shard_open: NULL argument");
    *out = NULL;
    /* Non-blocking: a FIFO under a shard's name must not hang the open. */
    int fd = open(path, O_RDONLY | O_NONBLOCK);
    if (fd < 0) return rni_fail(RN_ERR_IO, "cannot open shard %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        rn_status s = rni_fail(RN_ERR_IO, "cannot stat shard %s: %s", path, strerror(errno));
        close(fd);
        return s;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return rni_fail(RN_ERR_IO, "shard %s is %s", path, S_ISDIR(st.st_mode) ? "a directory" : "not a regular file");
    }
    size_t size = (size_t)st.st_size;
    int32_t h[3] = {0, 0, 0};
    if (size < HEADER_BYTES) {
        close(fd);
        return rni_fail(RN_ERR_FORMAT, "shard %s is %zu bytes, shorter than its %d-byte header", path, size,
                        HEADER_BYTES);
    }
    if (pread(fd, h, sizeof h, 0) != (ssize_t)sizeof h) {
        rn_status s = rni_fail(RN_ERR_IO, "cannot read shard %s: %s", path, strerror(errno));
        close(fd);
        return s;
    }
    int width = header_width(h[0], h[1]);
    rn_status s = RN_OK;
    if (h[0] != RN_SHARD_MAGIC && h[0] != RN_SHARD_MAGIC_U32)
        s = rni_fail(RN_ERR_FORMAT, "shard %s: bad magic %ld (want %d, llm.c's format)", path, (long)h[0],
                     RN_SHARD_MAGIC);
    else if (!width)
        s = rni_fail(RN_ERR_FORMAT, "shard %s: unsupported version %ld for magic %ld", path, (long)h[1], (long)h[0]);
    else if (h[2] < 1)
        s = rni_fail(RN_ERR_FORMAT, "shard %s: token count %ld in the header (want >= 1)", path, (long)h[2]);
    else if (size != HEADER_BYTES + (size_t)h[2] * (size_t)width)
        s = rni_fail(RN_ERR_FORMAT, "shard %s: the header counts %ld tokens (%zu bytes) but the file is %zu bytes%s",
                     path, (long)h[2], HEADER_BYTES + (size_t)h[2] * (size_t)width, size,
                     size < HEADER_BYTES + (size_t)h[2] * (size_t)width ? " (truncated)" : "");
    if (s != RN_OK) {
        close(fd);
        return s;
    }
    rn_shard *sh = calloc(1, sizeof *sh);
    if (sh) sh->path = strdup(path);
    if (!sh || !sh->path) {
        free(sh);
        close(fd);
        return rni_fail(RN_ERR_NOMEM, "out of memory (shard %s)", path);
    }
    sh->map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (sh->map == MAP_FAILED) {
        s = rni_fail(RN_ERR_IO, "cannot map shard %s (%zu bytes): %s", path, size, strerror(errno));
        free(sh->path);
        free(sh);
        return s;
    }
    /* Training reads scattered windows: read-ahead would only fill memory. */
    posix_madvise(sh->map, size, POSIX_MADV_RANDOM);
    sh->map_len = size;
    sh->tok = (const unsigned char *)sh->map + HEADER_BYTES;
    sh->n = (size_t)h[2];
    sh->width = width;
    *out = sh;
    return RN_OK;
}

void rn_shard_close(rn_shard *s) {
    if (!s) return;
    munmap(s->map, s->map_len);
    free(s->path);
    free(s);
}

size_t rn_shard_size(const rn_shard *s) { return s ? s->n : 0; }
int rn_shard_width(const rn_shard *s) { return s ? s->width : 0; }
const char *rn_shard_path(const rn_shard *s) { return s ? s->path : NULL; }

rn_status rn_shard_read(const rn_shard *s, size_t pos, size_t n, int vocab_size, int32_t *out) {
    if (!s || (n && !out)) return rni_fail(RN_ERR_ARG, "rn_shard_read: NULL argument");
    if (pos > s->n || n > s->n - pos)
        return rni_fail(RN_ERR_ARG, "shard %s: tokens [%zu, %zu) outside its %zu", s->path, pos, pos + n, s->n);
    /* Widen and take the largest id in one branch-free pass (vectorised);
     * look for the culprit only when there is one. */
    uint32_t most = 0;
    if (s->width == 2) {
        const uint16_t *t = (const uint16_t *)(const void *)(s->tok) + pos;
        for (size_t i = 0; i < n; i++) {
            out[i] = t[i];
            most = t[i] > most ? t[i] : most;
        }
    } else {
        const uint32_t *t = (const uint32_t *)(const void *)(s->tok) + pos;
        for (size_t i = 0; i < n; i++) {
            out[i] = (int32_t)t[i];
            most = t[i] > most ? t[i] : most;
        }
    }
    if (vocab_size > 0 && most >= (uint32_t)vocab_size)
        for (size_t i = 0; i < n; i++)
            if ((uint32_t)out[i] >= (uint32_t)vocab_size)
                return rni_fail(RN_ERR_FORMAT, "shard %s: token %zu is %lu, outside the vocabulary [0, %d)", s->path,
                                pos + i, (unsigned long)(uint32_t)out[i], vocab_size);
    return RN_OK;
}

/* ---------------------------------------------------------------- writer */

struct rn_shard_writer {
    rn_atomic_file af;
    int width, vocab_size;
    size_t n;
    unsigned char buf[65536];  /* tokens converted to the file's width */
};

static void header_fill(int32_t *h, int width, size_t n) {
    memset(h, 0, HEADER_BYTES);
    h[0] = width == 2 ? RN_SHARD_MAGIC : RN_SHARD_MAGIC_U32;
    h[1] = width == 2 ? 1 : RN_SHARD_VERSION_U32;
    h[2] = (int32_t)n;
}

rn_status rn_shard_writer_open(const char *path, int vocab_size, rn_shard_writer **out) {
    if (!path || !out) return rni_fail(RN_ERR_ARG, "rn_shard_writer_open: NULL argument");
    *out = NULL;
    if (vocab_size < 1) return rni_fail(RN_ERR_ARG, "shard %s: vocabulary size %d < 1", path, vocab_size);
    rn_shard_writer *w = calloc(1, sizeof *w);
    if (!w) return rni_fail(RN_ERR_NOMEM, "out of memory (shard writer)");
    w->width = vocab_size <= 65536 ? 2 : 4;
    w->vocab_size = vocab_size;
    rn_status s = rn_atomic_open(&w->af, path);
    int32_t h[RN_SHARD_HEADER_INTS];
    header_fill(h, w->width, 0);  /* the count is written at close */
    if (s == RN_OK) s = rn_atomic_write(&w->af, h, sizeof h);
    if (s != RN_OK) {
        rn_atomic_abort(&w->af);
        free(w);
        return s;
    }
    *out = w;
    return RN_OK;
}

rn_status rn_shard_writer_write(rn_shard_writer *w, const int32_t *tokens, size_t n) {
    if (!w || (n && !tokens)) return rni_fail(RN_ERR_ARG, "rn_shard_writer_write: NULL argument");
    if (n > RN_SHARD_MAX_TOKENS - w->n)
        return rni_fail(RN_ERR_ARG, "shard %s would hold more than %zu tokens", w->af.path, RN_SHARD_MAX_TOKENS);
    size_t per = sizeof w->buf / (size_t)w->width;
    for (size_t i = 0; i < n; i += per) {
        size_t m = n - i < per ? n - i : per;
        const int32_t *t = tokens + i;
        uint32_t bad = 0;
        for (size_t j = 0; j < m; j++) bad |= (uint32_t)(t[j] < 0 || t[j] >= w->vocab_size);
        if (bad)
            for (size_t j = 0; j < m; j++)
                if (t[j] < 0 || t[j] >= w->vocab_size)
                    return rni_fail(RN_ERR_ARG, "shard %s: token %ld outside the vocabulary [0, %d)", w->af.path,
                                    (long)t[j], w->vocab_size);
        if (w->width == 2) {
            uint16_t *b = (uint16_t *)(void *)w->buf;
            for (size_t j = 0; j < m; j++) b[j] = (uint16_t)t[j];
        } else {
            uint32_t *b = (uint32_t *)(void *)w->buf;
            for (size_t j = 0; j < m; j++) b[j] = (uint32_t)t[j];
        }
        rn_status s = rn_atomic_write(&w->af, w->buf, m * (size_t)w->width);
        if (s != RN_OK) return s;
        w->n += m;
    }
    return RN_OK;
}

size_t rn_shard_writer_count(const rn_shard_writer *w) { return w ? w->n : 0; }

rn_status rn_shard_writer_close(rn_shard_writer *w) {
    if (!w) return rni_fail(RN_ERR_ARG, "rn_shard_writer_close: NULL argument");
    rn_status s = RN_OK;
    if (w->n == 0) s = rni_fail(RN_ERR_ARG, "shard %s has no tokens", w->af.path);
    /* The count goes into the header now that it is known. */
    FILE *f = w->af.f;
    int32_t h[RN_SHARD_HEADER_INTS];
    header_fill(h, w->width, w->n);
    if (s == RN_OK && (fflush(f) != 0 || fseek(f, 0, SEEK_SET) != 0 || fwrite(h, sizeof h, 1, f) != 1))
        s = rni_fail(RN_ERR_IO, "cannot write %s: %s", w->af.tmp, strerror(errno));
    if (s == RN_OK) s = rn_atomic_commit(&w->af);
    else rn_atomic_abort(&w->af);
    free(w);
    return s;
}

void rn_shard_writer_abort(rn_shard_writer *w) {
    if (!w) return;
    rn_atomic_abort(&w->af);
    free(w);
}
