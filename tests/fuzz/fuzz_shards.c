/* fuzz_shards.c: token shard files (llm.c's format) through rn_shard_open,
 * a directory of them through rn_dataset_open_shards, its reads, sampler
 * and evaluation windows, and the writer. Input: byte 0 picks the
 * vocabulary, 1 and 2 the batch B and length T, 3 the sampler's seed,
 * bytes 4-5 (little-endian) the length of the training shard; the rest is
 * the training shard's bytes, then the validation shard's (none when
 * empty). Properties, for every input:
 * - no crash, leak or undefined behaviour; a refusal has a one-line
 *   message, and a refused shard is named in it;
 * - a shard opens exactly when its header is valid (magic and version
 *   known, count >= 1, size = 1024 + count * width), and reads its tokens;
 * - a read, a sample or a window fails exactly when it meets a token
 *   beyond the vocabulary, and otherwise gives the tokens of the files;
 * - what the writer writes reads back the same. */
#define _POSIX_C_SOURCE 200809L
#include "fuzz.h"
#include "retnet_data.h"

/* What a shard's bytes hold by llm.c's rules: width (0 if invalid), and
 * the count. */
static int expect_width(const uint8_t *b, size_t n, size_t *count) {
    if (n < 1024) return 0;
    int32_t h[3];
    memcpy(h, b, sizeof h);
    int w = h[0] == 20240520 && h[1] == 1 ? 2 : (h[0] == 20240520 && h[1] == 2) || (h[0] == 20240801 && h[1] == 7) ? 4 : 0;
    if (!w || h[2] < 1 || n != 1024 + (size_t)h[2] * (size_t)w) return 0;
    *count = (size_t)h[2];
    return w;
}

static uint32_t raw_token(const uint8_t *b, int w, size_t i) {
    const uint8_t *p = b + 1024 + i * (size_t)w;
    return w == 2 ? (uint32_t)p[0] | (uint32_t)p[1] << 8
                  : (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

typedef struct {
    const uint8_t *b;
    int w;
    size_t n;
} raw_shard;

/* Token i of a split made of the raw shards r (k of them). */
static uint32_t split_token(const raw_shard *r, int k, size_t i) {
    for (int j = 0; j < k; j++) {
        if (i < r[j].n) return raw_token(r[j].b, r[j].w, i);
        i -= r[j].n;
    }
    fuzz_fail("split_token", "index out of range");
    return 0;
}

static int any_beyond(const raw_shard *r, int k, size_t s, size_t n, int vocab) {
    for (size_t i = s; i < s + n; i++)
        if (split_token(r, k, i) >= (uint32_t)vocab) return 1;
    return 0;
}

static void check_open(const char *path, const uint8_t *b, size_t n) {
    size_t count = 0;
    int w = expect_width(b, n, &count);
    rn_shard *s = NULL;
    rn_status st = rn_shard_open(path, &s);
    if ((st == RN_OK) != (w != 0)) fuzz_fail("rn_shard_open", st == RN_OK ? "accepted an invalid shard" : rn_last_error());
    if (st != RN_OK) {
        fuzz_check_message("rn_shard_open");
        if (!strstr(rn_last_error(), path)) fuzz_fail("rn_shard_open", "the message does not name the shard");
        return;
    }
    if (rn_shard_size(s) != count || rn_shard_width(s) != w) fuzz_fail("rn_shard_open", "size or width");
    size_t m = count < 64 ? count : 64;
    int32_t t[64];
    if (rn_shard_read(s, count - m, m, 0, t) != RN_OK) fuzz_fail("rn_shard_read", rn_last_error());
    for (size_t i = 0; i < m; i++)
        if ((uint32_t)t[i] != raw_token(b, w, count - m + i)) fuzz_fail("rn_shard_read", "tokens differ from the file's");
    if (rn_shard_read(s, count, 1, 0, t) == RN_OK) fuzz_fail("rn_shard_read", "read past the end");
    rn_shard_close(s);
}

static void check_dataset(const raw_shard *r, int vocab, int B, int T, uint64_t seed) {
    rn_dataset *ds = NULL;
    int ok = r[0].w && (r[1].w || !r[1].b);
    rn_status st = rn_dataset_open_shards(fuzz_dir, vocab, &ds);
    if ((st == RN_OK) != ok) fuzz_fail("rn_dataset_open_shards", st == RN_OK ? "accepted a bad shard" : rn_last_error());
    if (st != RN_OK) {
        fuzz_check_message("rn_dataset_open_shards");
        return;
    }
    int32_t x[8 * 32], y[8 * 32], all[4096];
    for (int sp = 0; sp < 2; sp++) {
        int k = r[sp].w ? 1 : 0;
        size_t size = rn_dataset_size(ds, (rn_split)sp);
        if (size != (k ? r[sp].n : 0)) fuzz_fail("size", "not the shard's count");
        if (size <= 4096) {
            st = rn_dataset_read(ds, (rn_split)sp, 0, size, all);
            if ((st == RN_OK) == any_beyond(&r[sp], k, 0, size, vocab)) fuzz_fail("read", "vocabulary check");
            for (size_t i = 0; st == RN_OK && i < size; i++)
                if ((uint32_t)all[i] != split_token(&r[sp], k, i)) fuzz_fail("read", "tokens differ from the file's");
        }
        rn_rng rng;
        rn_rng_seed(&rng, seed);
        st = rn_dataset_sample(ds, (rn_split)sp, &rng, B, T, x, y);
        if (size < (size_t)T + 1) {
            if (st != RN_ERR_ARG) fuzz_fail("sample", "a split shorter than T+1 sampled");
        } else if (st == RN_ERR_FORMAT) {
            if (!any_beyond(&r[sp], k, 0, size, vocab)) fuzz_fail("sample", "refused a split within the vocabulary");
            if (!strstr(rn_last_error(), ".bin")) fuzz_fail("sample", "the message does not name the shard");
        } else if (st != RN_OK) {
            fuzz_fail("sample", rn_last_error());
        } else {
            for (int b = 0; b < B; b++)
                for (int t = 0; t + 1 < T; t++)
                    if (x[b * T + t + 1] != y[b * T + t]) fuzz_fail("sample", "y is not x shifted");
        }
        size_t nw = rn_dataset_num_windows(ds, (rn_split)sp, T);
        for (size_t w = 0; w < nw && w < 64; w++) {
            int n;
            st = rn_dataset_window(ds, (rn_split)sp, w, T, x, y, &n);
            size_t s = w * (size_t)T, m = size - 1 - s < (size_t)T ? size - 1 - s : (size_t)T;
            if ((st == RN_OK) == any_beyond(&r[sp], k, s, m + 1, vocab)) fuzz_fail("window", "vocabulary check");
            if (st != RN_OK) continue;
            if ((size_t)n != m) fuzz_fail("window", "length");
            for (int t = 0; t < n; t++)
                if ((uint32_t)x[t] != split_token(&r[sp], k, s + (size_t)t) ||
                    (uint32_t)y[t] != split_token(&r[sp], k, s + (size_t)t + 1))
                    fuzz_fail("window", "tokens differ from the file's");
        }
    }
    rn_dataset_free(ds);
}

/* The writer: the training bytes as 16-bit tokens (within the vocabulary)
 * are written and read back. */
static void check_writer(const uint8_t *b, size_t n, int vocab) {
    size_t nt = n / 2;
    if (!nt) return;
    int32_t *t = malloc(nt * sizeof *t), *back = malloc(nt * sizeof *back);
    if (!t || !back) abort();
    for (size_t i = 0; i < nt; i++) t[i] = (int32_t)(((uint32_t)b[2 * i] | (uint32_t)b[2 * i + 1] << 8) % (uint32_t)vocab);
    const char *p = fuzz_path("written.shard");
    rn_shard_writer *w;
    if (rn_shard_writer_open(p, vocab, &w) != RN_OK) fuzz_fail("writer", rn_last_error());
    if (rn_shard_writer_write(w, t, nt / 2) != RN_OK || rn_shard_writer_write(w, t + nt / 2, nt - nt / 2) != RN_OK)
        fuzz_fail("writer", rn_last_error());
    if (rn_shard_writer_close(w) != RN_OK) fuzz_fail("writer", rn_last_error());
    rn_shard *s;
    if (rn_shard_open(p, &s) != RN_OK) fuzz_fail("writer", rn_last_error());
    if (rn_shard_size(s) != nt || rn_shard_read(s, 0, nt, vocab, back) != RN_OK || memcmp(t, back, nt * sizeof *t) != 0)
        fuzz_fail("writer", "read back differs");
    rn_shard_close(s);
    free(t);
    free(back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 6) return 0;
    int vocab = data[0] == 0 ? 65536 : data[0] < 128 ? 4 * data[0] + 1 : 1 << (data[0] % 31);
    int B = 1 + data[1] % 8, T = 1 + data[2] % 32;
    size_t rest = size - 6, k = (size_t)data[4] | (size_t)data[5] << 8;
    if (k > rest) k = rest;
    const uint8_t *tb = data + 6, *vb = data + 6 + k;
    size_t vn = rest - k;
    const char *tp = fuzz_write("f_train_000000.bin", tb, k);
    const char *vp = fuzz_path("f_val_000000.bin");
    unlink(vp);
    if (vn) fuzz_write("f_val_000000.bin", vb, vn);
    check_open(tp, tb, k);
    if (vn) check_open(vp, vb, vn);
    raw_shard r[2] = {{tb, 0, 0}, {vn ? vb : NULL, 0, 0}};
    r[0].w = expect_width(tb, k, &r[0].n);
    if (vn) r[1].w = expect_width(vb, vn, &r[1].n);
    check_dataset(r, vocab, B, T, data[3]);
    check_writer(tb, k < 4096 ? k : 4096, vocab);
    return 0;
}
