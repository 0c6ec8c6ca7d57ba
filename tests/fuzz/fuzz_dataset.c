/* fuzz_dataset.c: training text files through the byte tokenizer into a
 * dataset (rn_dataset_open), the batch sampler and the evaluation windows;
 * and token arrays from memory (rn_dataset_from_tokens). The first 4 bytes
 * of the input choose the validation fraction, the batch B and length T;
 * the rest is the file. Properties, for every input:
 * - no crash, leak or undefined behaviour; a refusal has a one-line message;
 * - the splits partition the tokens, which are the file's bytes;
 * - sampled batches are windows of the split with y = x shifted by one;
 * - the evaluation windows cover every target of a split exactly once;
 * - encoding into a short buffer writes only cap ids and reports the length;
 *   every id decodes, and ids outside the vocabulary are refused. */
#define _POSIX_C_SOURCE 200809L
#include "fuzz.h"
#include "retnet_data.h"

static rn_tokenizer *tok;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    if (rn_tokenizer_byte_create(&tok) != RN_OK) abort();
    return 0;
}

static void check_split(const rn_dataset *ds, rn_split sp, int B, int T, uint64_t seed) {
    size_t size = rn_dataset_size(ds, sp);
    const int32_t *tk = rn_dataset_tokens(ds, sp);
    int32_t x[64 * 16], y[64 * 16];
    rn_rng rng;
    rn_rng_seed(&rng, seed);
    rn_status st = rn_dataset_sample(ds, sp, &rng, B, T, x, y);
    if ((st == RN_OK) != (size >= (size_t)T + 1)) fuzz_fail("sample", rn_last_error());
    if (st == RN_OK)
        for (int b = 0; b < B; b++) {
            const int32_t *xb = x + b * T, *yb = y + b * T;
            for (int t = 0; t + 1 < T; t++)
                if (xb[t + 1] != yb[t]) fuzz_fail("sample", "y is not x shifted");
            /* the window is somewhere in the split */
            int found = 0;
            for (size_t s = 0; s + (size_t)T < size && !found; s++)
                found = memcmp(tk + s, xb, sizeof *xb * (size_t)T) == 0 && tk[s + (size_t)T] == yb[T - 1];
            if (!found) fuzz_fail("sample", "a window that is not in the split");
        }
    size_t nw = rn_dataset_num_windows(ds, sp, T), covered = 0;
    for (size_t w = 0; w < nw; w++) {
        int n;
        if (rn_dataset_window(ds, sp, w, T, x, y, &n) != RN_OK) fuzz_fail("window", rn_last_error());
        if (n < 1 || n > T || (n < T && w + 1 != nw)) fuzz_fail("window", "bad length");
        for (int t = 0; t < n; t++)
            if (x[t] != tk[covered + (size_t)t] || y[t] != tk[covered + (size_t)t + 1]) fuzz_fail("window", "wrong tokens");
        for (int t = n; t < T; t++)
            if (x[t] != 0 || y[t] != 0) fuzz_fail("window", "padding not zeroed");
        covered += (size_t)n;
    }
    if (covered != (size < 2 ? 0 : size - 1)) fuzz_fail("window", "targets not covered exactly once");
    int n;
    if (rn_dataset_window(ds, sp, nw, T, x, y, &n) == RN_OK) fuzz_fail("window", "index past the end accepted");
}

static void check_tokenizer(const uint8_t *text, size_t len) {
    int32_t ids[64];
    size_t n = 0, cap = len % 65;
    for (size_t i = 0; i < 64; i++) ids[i] = -7;
    if (rn_tokenizer_encode(tok, (const char *)text, len, ids, cap, &n) != RN_OK) fuzz_fail("encode", rn_last_error());
    if (n > len) fuzz_fail("encode", "more ids than bytes");
    for (size_t i = 0; i < 64; i++) {
        if (i >= cap && ids[i] != -7) fuzz_fail("encode", "wrote past cap");
        if (i < cap && i < n) {
            const char *piece;
            size_t pl;
            if (rn_tokenizer_decode(tok, ids[i], &piece, &pl) != RN_OK || pl != 1 || (uint8_t)piece[0] != text[i])
                fuzz_fail("decode", "does not give the byte back");
        }
    }
    const char *piece;
    size_t pl;
    if (rn_tokenizer_decode(tok, -1, &piece, &pl) == RN_OK || rn_tokenizer_decode(tok, tok->vocab_size, &piece, &pl) == RN_OK)
        fuzz_fail("decode", "an id outside the vocabulary");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 4) return 0;
    double vf = data[0] < 200 ? data[0] / 200.0 : -1.0 + data[0] / 100.0;  /* some outside [0, 1) */
    int B = 1 + data[1] % 16, T = 1 + data[2] % 64;
    const uint8_t *text = data + 4;
    size_t len = size - 4;
    check_tokenizer(text, len);

    const char *path = fuzz_write("data.txt", text, len);
    rn_dataset *ds = NULL;
    if (rn_dataset_open(path, tok, vf, &ds) != RN_OK) {
        fuzz_check_message("rn_dataset_open");
    } else {
        size_t nt = rn_dataset_size(ds, RN_SPLIT_TRAIN), nv = rn_dataset_size(ds, RN_SPLIT_VAL);
        if (nt + nv != len || rn_dataset_tokens(ds, RN_SPLIT_VAL) != rn_dataset_tokens(ds, RN_SPLIT_TRAIN) + nt)
            fuzz_fail("split", "the splits do not partition the file");
        for (size_t i = 0; i < len; i++)
            if (rn_dataset_tokens(ds, RN_SPLIT_TRAIN)[i] != text[i]) fuzz_fail("tokens", "not the file's bytes");
        check_split(ds, RN_SPLIT_TRAIN, B, T, data[3]);
        check_split(ds, RN_SPLIT_VAL, B, T, data[3]);
        rn_dataset_free(ds);
    }

    /* The same bytes as int32 tokens against a vocabulary from data[3]. */
    size_t nt = len / 4;
    int32_t *t32 = malloc(sizeof *t32 * (nt ? nt : 1));
    if (!t32) return 0;
    memcpy(t32, text, nt * 4);
    int vocab = data[3] == 255 ? 0 : data[3] < 128 ? data[3] : (int)(0x7fffffffu >> (data[3] - 128) % 31);
    if (rn_dataset_from_tokens(t32, nt, vocab, vf, &ds) == RN_OK) {
        for (size_t i = 0; i < nt; i++)
            if (t32[i] < 0 || t32[i] >= vocab) fuzz_fail("from_tokens", "accepted a token outside the vocabulary");
        check_split(ds, RN_SPLIT_TRAIN, B, T, data[3]);
        rn_dataset_free(ds);
    } else {
        fuzz_check_message("rn_dataset_from_tokens");
    }
    free(t32);
    return 0;
}
