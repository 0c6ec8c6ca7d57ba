/* fuzz_tokenizer.c: the Hugging Face tokenizer.json loader and the
 * encode/decode pipeline. The input is a tokenizer.json, then (after the
 * first NUL byte, if any) a text. Properties, for every input:
 * - no crash, leak or undefined behaviour; a refusal (RN_ERR_FORMAT) has a
 *   one-line message;
 * - a tokenizer that loads encodes the text (any bytes) to ids in
 *   [0, vocab_size), the same with a buffer of the counted size as when
 *   only counting, with and without special tokens; every id decodes (the
 *   per-id pieces and the full decode, in the count-then-fill convention). */
#define _POSIX_C_SOURCE 200809L
#include "fuzz.h"
#include "retnet_data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *nul = memchr(data, 0, size);
    size_t jlen = nul ? (size_t)(nul - data) : size;
    const char *text = nul ? (const char *)nul + 1 : "";
    size_t tlen = nul ? size - jlen - 1 : 0;
    const char *path = fuzz_write("tokenizer.json", data, jlen);
    rn_tokenizer *t;
    rn_status s = rn_tokenizer_load(path, &t);
    if (s != RN_OK) {
        if (s != RN_ERR_FORMAT && s != RN_ERR_NOMEM) fuzz_fail("rn_tokenizer_load", rn_last_error());
        fuzz_check_message("rn_tokenizer_load");
        return 0;
    }
    for (int special = 0; special < 2; special++) {
        size_t n, n2;
        if (rn_tokenizer_encode_special(t, text, tlen, special, NULL, 0, &n) != RN_OK) {
            fuzz_check_message("encode (count)");
            continue;
        }
        int32_t *ids = malloc((n + 1) * sizeof *ids);
        if (!ids) break;
        if (rn_tokenizer_encode_special(t, text, tlen, special, ids, n, &n2) != RN_OK) fuzz_fail("encode", rn_last_error());
        if (n2 != n) fuzz_fail("encode", "the count changed between calls");
        for (size_t i = 0; i < n; i++) {
            if (ids[i] < 0 || ids[i] >= t->vocab_size) fuzz_fail("encode", "id outside the vocabulary");
            const char *p;
            size_t pl;
            if (rn_tokenizer_decode(t, ids[i], &p, &pl) != RN_OK) fuzz_fail("decode", rn_last_error());
        }
        size_t len, len2;
        if (rn_tokenizer_decode_all(t, ids, n, special, NULL, 0, &len) != RN_OK) fuzz_fail("decode_all", rn_last_error());
        char *out = malloc(len + 1);
        if (out && rn_tokenizer_decode_all(t, ids, n, special, out, len + 1, &len2) != RN_OK)
            fuzz_fail("decode_all", rn_last_error());
        if (out && len2 != len) fuzz_fail("decode_all", "the length changed between calls");
        free(out);
        free(ids);
    }
    rn_tokenizer_free(t);
    return 0;
}
