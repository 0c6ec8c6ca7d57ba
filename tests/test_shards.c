/* test_shards.c: token shards in llm.c's format: the writer's bytes, write
 * and read round trips (uint16 and uint32), refusal of bad files with the
 * shard's name, and a dataset of shards sampling and windowing exactly as
 * the same tokens in memory do. */
#define _POSIX_C_SOURCE 200809L
#include "check.h"
#include "retnet_data.h"
#include "scratch.h"

#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

static long file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

/* A shard written by hand: header ints h0, h1, h2, then nbytes of payload. */
static void raw_shard(const char *path, int32_t h0, int32_t h1, int32_t h2, const void *payload, size_t nbytes) {
    unsigned char *b = calloc(1, 1024 + nbytes);
    int32_t h[3] = {h0, h1, h2};
    memcpy(b, h, sizeof h);
    if (nbytes) memcpy(b + 1024, payload, nbytes);
    CHECK(write_file(path, b, 1024 + nbytes) == 0, "cannot write %s", path);
    free(b);
}

static int32_t *shard_tokens_random(size_t n, int vocab, uint64_t seed) {
    rn_rng r;
    rn_rng_seed(&r, seed);
    int32_t *t = malloc(n * sizeof *t);
    for (size_t i = 0; i < n; i++) t[i] = (int32_t)(rn_rng_u64(&r) % (uint64_t)vocab);
    t[0] = 0;
    t[n - 1] = vocab - 1;  /* both ends of the range */
    return t;
}

static rn_status write_shard(const char *path, int vocab, const int32_t *t, size_t n) {
    rn_shard_writer *w;
    rn_status s = rn_shard_writer_open(path, vocab, &w);
    if (s != RN_OK) return s;
    /* In uneven pieces, past the writer's buffer. */
    for (size_t i = 0; i < n && s == RN_OK; i += 50001) s = rn_shard_writer_write(w, t + i, n - i < 50001 ? n - i : 50001);
    if (s != RN_OK) {
        rn_shard_writer_abort(w);
        return s;
    }
    return rn_shard_writer_close(w);
}

/* Writer, then reader: the bytes of llm.c's layout and the same tokens. */
static void test_round_trip(int vocab, int width, int32_t magic, int32_t version) {
    const char *p = tmp_path("rt.bin");
    size_t n = 123457;
    int32_t *t = shard_tokens_random(n, vocab, (uint64_t)vocab);
    CHECK_OK(write_shard(p, vocab, t, n));
    CHECK(file_size(p) == 1024 + (long)n * width, "vocab %d: file is %ld bytes", vocab, file_size(p));
    /* The header as llm.c's write_datafile makes it: 256 int32, three set. */
    FILE *f = fopen(p, "rb");
    int32_t h[256];
    CHECK(f && fread(h, sizeof h, 1, f) == 1, "cannot read the header back");
    int rest_zero = 1;
    for (int i = 3; i < 256; i++) rest_zero &= h[i] == 0;
    CHECK(h[0] == magic && h[1] == version && h[2] == (int32_t)n && rest_zero, "vocab %d: header %d %d %d", vocab,
          h[0], h[1], h[2]);
    /* The payload: little-endian integers of the width, in order. */
    unsigned char *pay = malloc(n * (size_t)width);
    CHECK(f && fread(pay, (size_t)width, n, f) == n, "cannot read the tokens back");
    if (f) fclose(f);
    int same = 1;
    for (size_t i = 0; i < n; i++) {
        uint32_t v = width == 2 ? (uint32_t)pay[2 * i] | (uint32_t)pay[2 * i + 1] << 8
                                : (uint32_t)pay[4 * i] | (uint32_t)pay[4 * i + 1] << 8 |
                                      (uint32_t)pay[4 * i + 2] << 16 | (uint32_t)pay[4 * i + 3] << 24;
        same &= v == (uint32_t)t[i];
    }
    CHECK(same, "vocab %d: the file's tokens differ from those written", vocab);
    free(pay);

    rn_shard *s;
    CHECK_OK(rn_shard_open(p, &s));
    CHECK(rn_shard_size(s) == n && rn_shard_width(s) == width && strcmp(rn_shard_path(s), p) == 0,
          "vocab %d: size %zu width %d", vocab, rn_shard_size(s), rn_shard_width(s));
    int32_t *back = malloc(n * sizeof *back);
    CHECK_OK(rn_shard_read(s, 0, n, vocab, back));
    CHECK(memcmp(back, t, n * sizeof *t) == 0, "vocab %d: tokens read differ from those written", vocab);
    CHECK_OK(rn_shard_read(s, 1000, 7, 0, back));
    CHECK(memcmp(back, t + 1000, 7 * sizeof *t) == 0, "vocab %d: a range read differs", vocab);
    CHECK(rn_shard_read(s, n - 3, 4, 0, back) == RN_ERR_ARG, "a range past the end was read");
    /* One id below the top of the vocabulary bounds it: the last token is vocab - 1. */
    CHECK(rn_shard_read(s, n - 1, 1, vocab - 1, back) == RN_ERR_FORMAT && strstr(rn_last_error(), p) &&
              strstr(rn_last_error(), "outside the vocabulary"),
          "a token beyond the vocabulary was not refused with the shard's name: %s", rn_last_error());
    rn_shard_close(s);
    free(back);
    free(t);
    unlink(p);
}

static void test_writer_errors(void) {
    const char *p = tmp_path("w.bin");
    rn_shard_writer *w;
    int32_t bad[3] = {1, 256, 2}, neg[1] = {-1};
    CHECK_OK(rn_shard_writer_open(p, 256, &w));
    CHECK(rn_shard_writer_write(w, bad, 3) == RN_ERR_ARG, "token 256 accepted for vocabulary 256");
    CHECK(rn_shard_writer_write(w, neg, 1) == RN_ERR_ARG, "token -1 accepted");
    CHECK(rn_shard_writer_close(w) != RN_OK, "a shard with no tokens was committed");
    CHECK(access(p, F_OK) != 0, "an empty shard was left at its path");
    CHECK_OK(rn_shard_writer_open(p, 256, &w));
    CHECK_OK(rn_shard_writer_write(w, bad, 1));
    rn_shard_writer_abort(w);
    CHECK(access(p, F_OK) != 0, "an aborted shard was left at its path");
    CHECK(rn_shard_writer_open(p, 0, &w) == RN_ERR_ARG, "vocabulary 0 accepted");
    /* Nothing but the committed files: no temporary left behind. */
    CHECK_OK(write_shard(p, 256, bad, 1));
    char tmp[300];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", p, (long)getpid());
    CHECK(access(tmp, F_OK) != 0 && file_size(p) == 1026, "after close: temporary %s left, or size %ld", tmp,
          file_size(p));
    unlink(p);
}

/* Each bad file is refused at open, with the path in the message. */
static void test_refusals(void) {
    uint16_t t16[4] = {1, 2, 3, 4};
    struct {
        const char *name, *what;
        int32_t h0, h1, h2;
        size_t nbytes;
    } cases[] = {
        {"magic.bin", "bad magic", 20240521, 1, 4, 8},
        {"version.bin", "version", 20240520, 3, 4, 8},
        {"truncated.bin", "truncated", 20240520, 1, 5, 8},
        {"padded.bin", "file is", 20240520, 1, 3, 8},
        {"wide.bin", "truncated", 20240520, 2, 4, 8},       /* version 2: uint32, 16 bytes wanted */
        {"llama.bin", "truncated", 20240801, 7, 4, 8},
        {"zero.bin", "token count", 20240520, 1, 0, 0},
        {"negative.bin", "token count", 20240520, 1, -4, 8},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const char *p = tmp_path(cases[i].name);
        raw_shard(p, cases[i].h0, cases[i].h1, cases[i].h2, t16, cases[i].nbytes);
        rn_shard *s = NULL;
        rn_status st = rn_shard_open(p, &s);
        CHECK(st == RN_ERR_FORMAT && !s && strstr(rn_last_error(), p) && strstr(rn_last_error(), cases[i].what),
              "%s: %s -> %s", cases[i].name, rn_status_name(st), rn_last_error());
        unlink(p);
    }
    /* Shorter than the header itself; not there; a directory. */
    const char *p = tmp_path("short.bin");
    CHECK(write_file(p, "\x38\x0b\x35\x01", 4) == 0, "write");
    rn_shard *s = NULL;
    CHECK(rn_shard_open(p, &s) == RN_ERR_FORMAT && strstr(rn_last_error(), p), "a 4-byte file: %s", rn_last_error());
    unlink(p);
    CHECK(rn_shard_open(p, &s) == RN_ERR_IO && strstr(rn_last_error(), p), "a missing file: %s", rn_last_error());
    CHECK(rn_shard_open(tmpdir, &s) == RN_ERR_IO, "a directory opened as a shard");
    /* Version 2 with uint32 tokens (the name for them) reads. */
    uint32_t t32[3] = {70000, 0, 123456};
    p = tmp_path("v2.bin");
    raw_shard(p, 20240520, 2, 3, t32, sizeof t32);
    int32_t back[3];
    CHECK_OK(rn_shard_open(p, &s));
    CHECK(s && rn_shard_width(s) == 4 && rn_shard_read(s, 0, 3, 0, back) == RN_OK && back[0] == 70000 &&
              back[2] == 123456,
          "version 2 shard read wrong");
    rn_shard_close(s);
    unlink(p);
}

/* A directory of shards against the same tokens in memory: sizes, reads
 * across shard boundaries, samples from the same generator state and
 * windows all equal. */
static void test_dataset(void) {
    const char *d = tmp_path("ds");
    mkdir(d, 0755);
    size_t ntr[3] = {1000, 1, 2500}, nva[2] = {700, 50}, all_tr = 3501, all_va = 750;
    int vocab = 300;
    int32_t *tr = shard_tokens_random(all_tr, vocab, 7), *va = shard_tokens_random(all_va, vocab, 8);
    char path[400];
    /* Names out of order on purpose, in both llm.c spellings. */
    const char *trn[3] = {"c_train_000000.bin", "c_train_000001.bin", "c_val_train_000002.bin"};
    const char *van[2] = {"c_val.bin", "d-val-000001.bin"};
    size_t off = 0;
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", d, trn[i]);
        CHECK_OK(write_shard(path, vocab, tr + off, ntr[i]));
        off += ntr[i];
    }
    off = 0;
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/%s", d, van[i]);
        CHECK_OK(write_shard(path, vocab, va + off, nva[i]));
        off += nva[i];
    }
    /* Not shards: ignored (another extension, no split word, "interval" is not "val"). */
    snprintf(path, sizeof path, "%s/interval.bin", d);
    write_file(path, "x", 1);
    snprintf(path, sizeof path, "%s/train.txt", d);
    write_file(path, "x", 1);

    rn_dataset *ds, *mt, *mv;
    CHECK_OK(rn_dataset_open_shards(d, vocab, &ds));
    CHECK_OK(rn_dataset_from_tokens(tr, all_tr, vocab, 0.0, &mt));
    CHECK_OK(rn_dataset_from_tokens(va, all_va, vocab, 0.0, &mv));
    CHECK(rn_dataset_size(ds, RN_SPLIT_TRAIN) == all_tr && rn_dataset_size(ds, RN_SPLIT_VAL) == all_va,
          "sizes %zu %zu", rn_dataset_size(ds, RN_SPLIT_TRAIN), rn_dataset_size(ds, RN_SPLIT_VAL));
    CHECK(rn_dataset_num_shards(ds, RN_SPLIT_TRAIN) == 3 && rn_dataset_num_shards(ds, RN_SPLIT_VAL) == 2 &&
              rn_dataset_num_shards(mt, RN_SPLIT_TRAIN) == 0,
          "shard counts");
    CHECK(rn_dataset_shard(ds, RN_SPLIT_TRAIN, 2) && strstr(rn_shard_path(rn_dataset_shard(ds, RN_SPLIT_TRAIN, 2)), trn[2]) &&
              rn_shard_size(rn_dataset_shard(ds, RN_SPLIT_TRAIN, 2)) == ntr[2] && !rn_dataset_shard(ds, RN_SPLIT_TRAIN, 3) &&
              !rn_dataset_shard(mt, RN_SPLIT_TRAIN, 0),
          "rn_dataset_shard");
    CHECK(rn_dataset_tokens(ds, RN_SPLIT_TRAIN) == NULL && rn_dataset_vocab_size(ds) == vocab, "tokens/vocab");
    int32_t buf[4000];
    CHECK_OK(rn_dataset_read(ds, RN_SPLIT_TRAIN, 990, 20, buf));
    CHECK(memcmp(buf, tr + 990, 20 * sizeof *buf) == 0, "a read across three shards differs");
    CHECK_OK(rn_dataset_read(ds, RN_SPLIT_TRAIN, 0, all_tr, buf));
    CHECK(memcmp(buf, tr, all_tr * sizeof *buf) == 0, "the whole training split differs");
    CHECK(rn_dataset_read(ds, RN_SPLIT_VAL, all_va - 1, 2, buf) == RN_ERR_ARG, "read past the end");

    /* The same generator state draws the same windows from both. */
    int B = 16, T = 37;
    int32_t xs[16 * 37], ys[16 * 37], xm[16 * 37], ym[16 * 37];
    rn_rng r1, r2;
    rn_rng_seed(&r1, 42);
    rn_rng_seed(&r2, 42);
    int same = 1;
    for (int k = 0; k < 50; k++) {
        CHECK_OK(rn_dataset_sample(ds, RN_SPLIT_TRAIN, &r1, B, T, xs, ys));
        CHECK_OK(rn_dataset_sample(mt, RN_SPLIT_TRAIN, &r2, B, T, xm, ym));
        same &= memcmp(xs, xm, sizeof xs) == 0 && memcmp(ys, ym, sizeof ys) == 0;
    }
    CHECK(same && r1.s[0] == r2.s[0], "shard samples differ from the same tokens in memory");
    size_t nw = rn_dataset_num_windows(ds, RN_SPLIT_VAL, T);
    CHECK(nw == rn_dataset_num_windows(mv, RN_SPLIT_TRAIN, T) && nw == (all_va - 1 + T - 1) / T, "windows %zu", nw);
    same = 1;
    for (size_t w = 0; w < nw; w++) {
        int n1, n2;
        CHECK_OK(rn_dataset_window(ds, RN_SPLIT_VAL, w, T, xs, ys, &n1));
        CHECK_OK(rn_dataset_window(mv, RN_SPLIT_TRAIN, w, T, xm, ym, &n2));
        same &= n1 == n2 && memcmp(xs, xm, (size_t)T * sizeof *xs) == 0 && memcmp(ys, ym, (size_t)T * sizeof *ys) == 0;
    }
    CHECK(same, "shard windows differ from the same tokens in memory");
    rn_dataset_free(ds);

    /* A smaller vocabulary: reads that meet a token beyond it fail naming the shard. */
    CHECK_OK(rn_dataset_open_shards(d, 10, &ds));
    int n;
    rn_status st = rn_dataset_window(ds, RN_SPLIT_VAL, 0, T, xs, ys, &n);
    CHECK(st == RN_ERR_FORMAT && strstr(rn_last_error(), "c_val.bin") && strstr(rn_last_error(), "vocabulary"),
          "window with a token beyond the vocabulary: %s", rn_last_error());
    rn_rng_seed(&r1, 1);
    st = rn_dataset_sample(ds, RN_SPLIT_TRAIN, &r1, B, T, xs, ys);
    CHECK(st == RN_ERR_FORMAT && strstr(rn_last_error(), "train"), "sample: %s", rn_last_error());
    rn_dataset_free(ds);
    rn_dataset_free(mt);
    rn_dataset_free(mv);

    /* One bad shard fails the directory, naming it; no training shard fails too. */
    snprintf(path, sizeof path, "%s/c_train_000001.bin", d);
    raw_shard(path, 20240520, 1, 3, buf, 4);
    CHECK(rn_dataset_open_shards(d, vocab, &ds) == RN_ERR_FORMAT && strstr(rn_last_error(), "c_train_000001.bin"),
          "a truncated shard in the directory: %s", rn_last_error());
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", d, trn[i]);
        unlink(path);
    }
    CHECK(rn_dataset_open_shards(d, vocab, &ds) == RN_ERR_FORMAT && strstr(rn_last_error(), "no training shard"),
          "no training shard: %s", rn_last_error());
    snprintf(path, sizeof path, "%s/nothere", d);
    CHECK(rn_dataset_open_shards(path, vocab, &ds) == RN_ERR_IO, "a missing directory");
    const char *rm[] = {"c_val.bin", "d-val-000001.bin", "interval.bin", "train.txt"};
    for (int i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s/%s", d, rm[i]);
        unlink(path);
    }
    rmdir(d);
    free(tr);
    free(va);
}

int main(void) {
    if (scratch_open("rn_shards") != 0) return 1;
    test_round_trip(256, 2, 20240520, 1);
    test_round_trip(65536, 2, 20240520, 1);
    test_round_trip(65537, 4, 20240801, 7);
    test_round_trip(128256, 4, 20240801, 7);
    test_writer_errors();
    test_refusals();
    test_dataset();
    scratch_close();
    CHECK_DONE();
}
