/* test_data.c: tests of the tokenizer, file reading, the dataset and the SVG
 * loss chart. Standalone: prints failures, then "N passed, N failed"; exits
 * non-zero if any check failed.
 * Build: gcc -std=c11 -Wall -Wextra -O2 -fopenmp -Iinclude -Isrc src/common.c
 *        src/data.c cli/plot.c tests/test_data.c -lopenblas -lm */
#define _POSIX_C_SOURCE 200809L
#include "retnet_data.h"
#include "scratch.h"
#include "internal.h"
#include "../cli/plot.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int n_pass = 0, n_fail = 0;

#define CHECK(cond)                                                       \
    do {                                                                  \
        if (cond) n_pass++;                                               \
        else {                                                            \
            n_fail++;                                                     \
            printf("FAIL %s:%d: %s  [last error: %s]\n", __FILE__, __LINE__, \
                   #cond, rn_last_error());                               \
        }                                                                 \
    } while (0)

/* ------------------------------------------------------------- tokenizer */

static void test_byte_tokenizer(void) {
    rn_tokenizer *tok = NULL;
    CHECK(rn_tokenizer_byte_create(&tok) == RN_OK && tok);
    if (!tok) return;
    CHECK(tok->vocab_size == 256);
    CHECK(strcmp(tok->name, "byte") == 0);

    /* Every byte value, including NUL and bytes >= 0x80, round-trips. */
    char text[300];
    for (int i = 0; i < 300; i++) text[i] = (char)(unsigned char)((i * 7 + 3) % 256);
    int32_t ids[300];
    size_t n = 0;
    CHECK(rn_tokenizer_encode(tok, text, sizeof text, ids, 300, &n) == RN_OK && n == 300);
    int ok = 1;
    for (int i = 0; i < 300; i++) ok &= ids[i] == (int32_t)(unsigned char)text[i];
    CHECK(ok);
    char back[300];
    ok = 1;
    for (int i = 0; i < 300; i++) {
        const char *piece = NULL;
        size_t len = 0;
        ok &= rn_tokenizer_decode(tok, ids[i], &piece, &len) == RN_OK && len == 1;
        if (ok) back[i] = piece[0];
    }
    CHECK(ok && memcmp(back, text, sizeof text) == 0);

    /* UTF-8 text round-trips byte for byte. */
    const char *utf8 = "na\xc3\xafve caf\xc3\xa9 \xe2\x80\x94 ok";
    size_t ulen = strlen(utf8);
    CHECK(rn_tokenizer_encode(tok, utf8, ulen, ids, 300, &n) == RN_OK && n == ulen);
    char ub[64];
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        const char *piece;
        size_t len;
        if (rn_tokenizer_decode(tok, ids[i], &piece, &len) != RN_OK) break;
        memcpy(ub + m, piece, len);
        m += len;
    }
    CHECK(m == ulen && memcmp(ub, utf8, ulen) == 0);

    /* Count query, and a buffer too small: the first cap ids, the full n. */
    CHECK(rn_tokenizer_encode(tok, "hello", 5, NULL, 0, &n) == RN_OK && n == 5);
    int32_t small[3] = {-1, -1, -1};
    CHECK(rn_tokenizer_encode(tok, "hello", 5, small, 2, &n) == RN_OK && n == 5);
    CHECK(small[0] == 'h' && small[1] == 'e' && small[2] == -1);
    CHECK(rn_tokenizer_encode(tok, "", 0, small, 3, &n) == RN_OK && n == 0);

    /* Ids outside the vocabulary are refused. */
    const char *piece;
    size_t len;
    CHECK(rn_tokenizer_decode(tok, 256, &piece, &len) == RN_ERR_ARG);
    CHECK(rn_tokenizer_decode(tok, -1, &piece, &len) == RN_ERR_ARG);
    CHECK(strstr(rn_last_error(), "-1") != NULL);
    CHECK(rn_tokenizer_encode(tok, NULL, 4, ids, 4, &n) == RN_ERR_ARG);

    rn_tokenizer_free(tok);
    rn_tokenizer_free(NULL);
}

/* ----------------------------------------------------------------- files */

static void test_read_file(void) {
    const char *p = tmp_path("read.txt");
    const char text[] = "line one\nline two\n";
    CHECK(write_file(p, text, sizeof text - 1) == 0);
    char *data = NULL;
    size_t len = 0;
    CHECK(rn_read_file(p, 0, &data, &len) == RN_OK);
    CHECK(data && len == sizeof text - 1 && memcmp(data, text, len) == 0 && data[len] == '\0');
    free(data);

    /* The size limit: exactly at it is fine, one byte under is not. */
    CHECK(rn_read_file(p, sizeof text - 1, &data, &len) == RN_OK);
    free(data);
    CHECK(rn_read_file(p, sizeof text - 2, &data, &len) == RN_ERR_ARG);
    CHECK(data == NULL && len == 0 && strstr(rn_last_error(), p) != NULL);

    CHECK(rn_read_file(tmp_path("missing.txt"), 0, &data, &len) == RN_ERR_IO);
    CHECK(strstr(rn_last_error(), "missing.txt") != NULL);
    CHECK(rn_read_file(tmpdir, 0, &data, &len) == RN_ERR_IO);
    CHECK(strstr(rn_last_error(), "directory") != NULL);
    remove(p);
}

/* --------------------------------------------------------------- dataset */

static void test_split_sizes(void) {
    enum { N = 1000 };
    static int32_t tok[N];
    for (int i = 0; i < N; i++) tok[i] = i % 256;
    rn_dataset *ds = NULL;
    CHECK(rn_dataset_from_tokens(tok, N, 256, 0.1, &ds) == RN_OK && ds);
    CHECK(rn_dataset_size(ds, RN_SPLIT_TRAIN) == 900);
    CHECK(rn_dataset_size(ds, RN_SPLIT_VAL) == 100);
    CHECK(rn_dataset_vocab_size(ds) == 256);
    /* Train is the first part, validation the contiguous last part. */
    const int32_t *tr = rn_dataset_tokens(ds, RN_SPLIT_TRAIN), *va = rn_dataset_tokens(ds, RN_SPLIT_VAL);
    CHECK(tr && va && memcmp(tr, tok, 900 * sizeof *tok) == 0 &&
          memcmp(va, tok + 900, 100 * sizeof *tok) == 0);
    rn_dataset_free(ds);

    /* Rounding to the nearest token; no validation split with 0. */
    CHECK(rn_dataset_from_tokens(tok, 999, 256, 0.0025, &ds) == RN_OK);
    CHECK(rn_dataset_size(ds, RN_SPLIT_VAL) == 2 && rn_dataset_size(ds, RN_SPLIT_TRAIN) == 997);
    rn_dataset_free(ds);
    CHECK(rn_dataset_from_tokens(tok, 10, 256, 0.0, &ds) == RN_OK);
    CHECK(rn_dataset_size(ds, RN_SPLIT_TRAIN) == 10 && rn_dataset_size(ds, RN_SPLIT_VAL) == 0);
    CHECK(rn_dataset_num_windows(ds, RN_SPLIT_VAL, 4) == 0);
    rn_dataset_free(ds);

    /* Bad fractions, splits too short, tokens outside the vocabulary. */
    ds = NULL;
    CHECK(rn_dataset_from_tokens(tok, N, 256, 1.0, &ds) == RN_ERR_ARG && ds == NULL);
    CHECK(rn_dataset_from_tokens(tok, N, 256, -0.1, &ds) == RN_ERR_ARG);
    CHECK(rn_dataset_from_tokens(tok, N, 256, NAN, &ds) == RN_ERR_ARG);
    CHECK(rn_dataset_from_tokens(tok, 3, 256, 0.5, &ds) == RN_ERR_FORMAT);
    CHECK(rn_dataset_from_tokens(tok, 1, 256, 0.0, &ds) == RN_ERR_FORMAT);
    CHECK(rn_dataset_from_tokens(tok, 100, 256, 0.001, &ds) == RN_ERR_FORMAT);
    CHECK(rn_dataset_from_tokens(tok, 0, 256, 0.0, &ds) == RN_ERR_FORMAT);
    CHECK(rn_dataset_from_tokens(tok, N, 200, 0.1, &ds) == RN_ERR_FORMAT);
    CHECK(strstr(rn_last_error(), "vocabulary") != NULL);
    CHECK(ds == NULL);
}

static void test_open_file(rn_tokenizer *tok) {
    const char *p = tmp_path("corpus.txt");
    char text[2001];
    for (int i = 0; i < 2000; i++) text[i] = "the quick brown fox jumps\n"[i % 26];
    text[2000] = 0;
    CHECK(write_file(p, text, 2000) == 0);
    rn_dataset *ds = NULL;
    CHECK(rn_dataset_open(p, tok, 0.25, &ds) == RN_OK && ds);
    if (ds) {
        CHECK(rn_dataset_size(ds, RN_SPLIT_TRAIN) == 1500 && rn_dataset_size(ds, RN_SPLIT_VAL) == 500);
        const int32_t *tr = rn_dataset_tokens(ds, RN_SPLIT_TRAIN), *va = rn_dataset_tokens(ds, RN_SPLIT_VAL);
        int ok = 1;
        for (int i = 0; i < 1500; i++) ok &= tr[i] == (unsigned char)text[i];
        for (int i = 0; i < 500; i++) ok &= va[i] == (unsigned char)text[1500 + i];
        CHECK(ok);
    }
    rn_dataset_free(ds);

    /* Errors name the file. */
    ds = NULL;
    CHECK(rn_dataset_open(tmp_path("no_such_corpus.txt"), tok, 0.1, &ds) == RN_ERR_IO);
    CHECK(ds == NULL && strstr(rn_last_error(), "no_such_corpus.txt") != NULL);
    const char *e = tmp_path("empty.txt");
    CHECK(write_file(e, "", 0) == 0);
    CHECK(rn_dataset_open(e, tok, 0.1, &ds) == RN_ERR_FORMAT);
    CHECK(strstr(rn_last_error(), "empty.txt") != NULL && strstr(rn_last_error(), "empty") != NULL);
    const char *s = tmp_path("short.txt");
    CHECK(write_file(s, "abc", 3) == 0);
    CHECK(rn_dataset_open(s, tok, 0.5, &ds) == RN_ERR_FORMAT);
    CHECK(strstr(rn_last_error(), "short.txt") != NULL);
    CHECK(rn_dataset_open(s, tok, 1.5, &ds) == RN_ERR_ARG);
    CHECK(rn_dataset_open(tmpdir, tok, 0.1, &ds) == RN_ERR_IO);
    CHECK(ds == NULL);
    remove(p);
    remove(e);
    remove(s);
}

/* Tokens 0..n-1 (vocab n): a window's content tells where it starts. */
static rn_dataset *identity_dataset(size_t n, double val_fraction) {
    int32_t *t = malloc(n * sizeof *t);
    if (!t) return NULL;
    for (size_t i = 0; i < n; i++) t[i] = (int32_t)i;
    rn_dataset *ds = NULL;
    rn_dataset_from_tokens(t, n, (int)n, val_fraction, &ds);
    free(t);
    return ds;
}

static void test_sample(void) {
    enum { B = 8, T = 16 };
    rn_dataset *ds = identity_dataset(5000, 0.2);
    CHECK(ds != NULL);
    if (!ds) return;
    int32_t x1[B * T], y1[B * T], x2[B * T], y2[B * T];

    /* The same seed gives the same batches, batch after batch. */
    rn_rng r1, r2;
    rn_rng_seed(&r1, 42);
    rn_rng_seed(&r2, 42);
    int same = 1;
    for (int k = 0; k < 5; k++) {
        CHECK(rn_dataset_sample(ds, RN_SPLIT_TRAIN, &r1, B, T, x1, y1) == RN_OK);
        CHECK(rn_dataset_sample(ds, RN_SPLIT_TRAIN, &r2, B, T, x2, y2) == RN_OK);
        same &= memcmp(x1, x2, sizeof x1) == 0 && memcmp(y1, y2, sizeof y1) == 0;
    }
    CHECK(same);
    /* The rng state is the data position: a copy continues identically. */
    rn_rng r3 = r1;
    CHECK(rn_dataset_sample(ds, RN_SPLIT_TRAIN, &r1, B, T, x1, y1) == RN_OK);
    CHECK(rn_dataset_sample(ds, RN_SPLIT_TRAIN, &r3, B, T, x2, y2) == RN_OK);
    CHECK(memcmp(x1, x2, sizeof x1) == 0);
    /* Another seed gives other batches. */
    rn_rng_seed(&r1, 42);
    rn_rng_seed(&r2, 43);
    CHECK(rn_dataset_sample(ds, RN_SPLIT_TRAIN, &r1, B, T, x1, y1) == RN_OK);
    CHECK(rn_dataset_sample(ds, RN_SPLIT_TRAIN, &r2, B, T, x2, y2) == RN_OK);
    CHECK(memcmp(x1, x2, sizeof x1) != 0);

    /* Shape and shift: each row is T consecutive tokens of the split and y
     * is x moved by one (y[t] == x[t+1], and y[T-1] the next token). */
    for (int split = 0; split < 2; split++) {
        size_t lo = split ? rn_dataset_size(ds, RN_SPLIT_TRAIN) : 0;
        size_t hi = lo + rn_dataset_size(ds, (rn_split)split);
        int ok = 1;
        for (int k = 0; k < 20; k++) {
            CHECK(rn_dataset_sample(ds, (rn_split)split, &r1, B, T, x1, y1) == RN_OK);
            for (int b = 0; b < B; b++) {
                const int32_t *x_b = x1 + b * T, *y_b = y1 + b * T;
                ok &= (size_t)x_b[0] >= lo && (size_t)y_b[T - 1] < hi;
                for (int t = 0; t < T; t++) {
                    ok &= y_b[t] == x_b[t] + 1;
                    if (t + 1 < T) ok &= y_b[t] == x_b[t + 1];
                }
            }
        }
        CHECK(ok);
    }

    /* Every start position is reachable, the first and the last included. */
    rn_dataset *small = identity_dataset(10, 0.0);
    int seen[7] = {0}, all = 1;
    int32_t xs[3], ys[3];
    for (int k = 0; k < 2000; k++) {
        if (rn_dataset_sample(small, RN_SPLIT_TRAIN, &r1, 1, 3, xs, ys) != RN_OK || xs[0] > 6) {
            all = 0;
            break;
        }
        seen[xs[0]]++;
    }
    for (int i = 0; i < 7; i++) all &= seen[i] > 0;
    CHECK(all);
    /* T+1 tokens needed: 10 tokens allow T = 9, not T = 10. */
    int32_t xb[10], yb[10];
    CHECK(rn_dataset_sample(small, RN_SPLIT_TRAIN, &r1, 1, 9, xb, yb) == RN_OK && xb[0] == 0 && yb[8] == 9);
    CHECK(rn_dataset_sample(small, RN_SPLIT_TRAIN, &r1, 1, 10, xb, yb) == RN_ERR_ARG);
    CHECK(rn_dataset_sample(small, RN_SPLIT_VAL, &r1, 1, 1, xb, yb) == RN_ERR_ARG);
    CHECK(rn_dataset_sample(small, RN_SPLIT_TRAIN, &r1, 0, 4, xb, yb) == RN_ERR_ARG);
    CHECK(rn_dataset_sample(small, RN_SPLIT_TRAIN, &r1, 1, 0, xb, yb) == RN_ERR_ARG);
    rn_dataset_free(small);
    rn_dataset_free(ds);
}

static void test_windows(void) {
    rn_dataset *ds = identity_dataset(1003, 0.3);
    CHECK(ds != NULL);
    if (!ds) return;
    const int Ts[] = {1, 7, 64, 300, 701, 702, 2000};
    for (int split = 0; split < 2; split++) {
        size_t size = rn_dataset_size(ds, (rn_split)split);
        const int32_t *tok = rn_dataset_tokens(ds, (rn_split)split);
        for (size_t k = 0; k < sizeof Ts / sizeof Ts[0]; k++) {
            int T = Ts[k];
            size_t nw = rn_dataset_num_windows(ds, (rn_split)split, T);
            CHECK(nw == (size - 1 + (size_t)T - 1) / (size_t)T);
            int32_t *x = malloc((size_t)T * sizeof *x), *y = malloc((size_t)T * sizeof *y);
            /* Concatenated, the windows are exactly tokens[0..size-2] as
             * inputs and tokens[1..size-1] as targets; only the last window
             * may be short, and its padding is zero. */
            size_t pos = 0;
            int ok = x && y;
            for (size_t i = 0; ok && i < nw; i++) {
                int n = -1;
                ok &= rn_dataset_window(ds, (rn_split)split, i, T, x, y, &n) == RN_OK;
                ok &= n >= 1 && n <= T && (n == T || i == nw - 1);
                for (int t = 0; ok && t < n; t++) ok &= x[t] == tok[pos + (size_t)t] && y[t] == tok[pos + (size_t)t + 1];
                for (int t = n; ok && t < T; t++) ok &= x[t] == 0 && y[t] == 0;
                pos += (size_t)n;
            }
            CHECK(ok && pos == size - 1);
            int n;
            if (x && y) {
                CHECK(rn_dataset_window(ds, (rn_split)split, nw, T, x, y, &n) == RN_ERR_ARG);
                CHECK(rn_dataset_window(ds, (rn_split)split, 0, 0, x, y, &n) == RN_ERR_ARG);
            }
            free(x);
            free(y);
        }
    }
    rn_dataset_free(ds);
}

/* ------------------------------------------------------------------- svg */

static int count(const char *s, const char *needle) {
    int c = 0;
    for (const char *p = s; (p = strstr(p, needle)); p++) c++;
    return c;
}

static void test_svg(void) {
    enum { N = 300, V = 7 };
    double st[N], tl[N], vs[V], vl[V];
    for (int i = 0; i < N; i++) { st[i] = i + 1; tl[i] = 1.5 + 4.0 * exp(-i / 60.0); }
    for (int i = 0; i < V; i++) { vs[i] = 50.0 * i; vl[i] = 1.7 + 3.8 * exp(-vs[i] / 60.0); }
    tl[100] = NAN;  /* skipped, not fatal */
    const char *p = tmp_path("loss.svg");
    CHECK(plot_loss_svg(p, st, tl, N, vs, vl, V, "demo <run> & \"co\"") == 0);
    char *svg = NULL;
    size_t len = 0;
    CHECK(rn_read_file(p, 0, &svg, &len) == RN_OK);
    if (svg) {
        CHECK(strncmp(svg, "<svg", 4) == 0);
        CHECK(strstr(svg, "</svg>") != NULL);
        CHECK(count(svg, "<path") == 2);       /* the two series */
        CHECK(strstr(svg, "train loss") != NULL && strstr(svg, "validation loss") != NULL);
        CHECK(strstr(svg, "demo &lt;run&gt; &amp; &quot;co&quot;") != NULL);
        CHECK(strstr(svg, "nan") == NULL && strstr(svg, "inf") == NULL);
        CHECK(count(svg, "<circle") == V + 1);  /* markers + legend */
    }
    free(svg);

    /* Empty series still make a chart; no temp files are left behind. */
    const char *q = tmp_path("empty.svg");
    CHECK(plot_loss_svg(q, NULL, NULL, 0, NULL, NULL, 0, NULL) == 0);
    CHECK(rn_read_file(q, 0, &svg, &len) == RN_OK && strncmp(svg, "<svg", 4) == 0);
    free(svg);
    DIR *d = opendir(tmpdir);
    int stray = 0;
    struct dirent *de;
    while (d && (de = readdir(d)))
        if (strstr(de->d_name, ".tmp.")) stray++;
    if (d) closedir(d);
    CHECK(stray == 0);

    /* Failures are returned, not printed. */
    CHECK(plot_loss_svg(tmp_path("no/such/dir/x.svg"), st, tl, N, vs, vl, V, "x") != 0);
    CHECK(strstr(rn_last_error(), "no/such/dir") != NULL);
    CHECK(plot_loss_svg(p, NULL, tl, N, NULL, NULL, 0, "x") != 0);
    remove(p);
    remove(q);
}

int main(void) {
    if (scratch_open("rn_test_data") != 0) {
        printf("cannot create a temporary directory\n0 passed, 1 failed\n");
        return 1;
    }
    rn_tokenizer *tok = NULL;
    if (rn_tokenizer_byte_create(&tok) != RN_OK) {
        printf("cannot create the byte tokenizer\n0 passed, 1 failed\n");
        return 1;
    }
    test_byte_tokenizer();
    test_read_file();
    test_split_sizes();
    test_open_file(tok);
    test_sample();
    test_windows();
    test_svg();
    rn_tokenizer_free(tok);
    scratch_close();
    printf("%d passed, %d failed\n", n_pass, n_fail);
    return n_fail != 0;
}
