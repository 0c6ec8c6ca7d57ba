/* fake_tokenizer.c: the tokenizer functions the tokenizer work adds to
 * libretnet (rn_tokenizer_load, rn_tokenizer_encode_special,
 * rn_tokenizer_decode_all, rn_tokenizer_bos/eos), faked over the byte
 * tokenizer in a library linked to libretnet.so, so that test_tokenizer.py
 * can check the binding's use of them before they land. BOS is id 1 and
 * EOS id 2 (bytes 0x01 and 0x02), or $FAKE_EOS. */
#include "retnet_data.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

__attribute__((visibility("default"))) rn_status rn_tokenizer_load(const char *path, rn_tokenizer **out) {
    FILE *f = fopen(path, "rb");
    if (!f) return RN_ERR_IO;
    fclose(f);
    return rn_tokenizer_byte_create(out);
}

__attribute__((visibility("default"))) rn_status rn_tokenizer_encode_special(const rn_tokenizer *tok, const char *text,
                                                                             size_t len, int add_special, int32_t *ids,
                                                                             size_t cap, size_t *n) {
    size_t off = add_special ? 1 : 0, m = 0;
    rn_status st = rn_tokenizer_encode(tok, text, len, cap > off ? ids + off : NULL, cap > off ? cap - off : 0, &m);
    if (st != RN_OK) return st;
    if (add_special && cap > 0) ids[0] = 1;
    *n = m + off;
    return RN_OK;
}

__attribute__((visibility("default"))) rn_status rn_tokenizer_decode_all(const rn_tokenizer *tok, const int32_t *ids,
                                                                          size_t n, int skip_special, char *out,
                                                                          size_t cap, size_t *len) {
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (skip_special && (ids[i] == 1 || ids[i] == 2)) continue;
        const char *p;
        size_t l;
        rn_status st = rn_tokenizer_decode(tok, ids[i], &p, &l);
        if (st != RN_OK) return st;
        for (size_t j = 0; j < l; j++, total++)
            if (total < cap) out[total] = p[j];
    }
    *len = total;
    return RN_OK;
}

__attribute__((visibility("default"))) int32_t rn_tokenizer_bos(const rn_tokenizer *tok) { (void)tok; return 1; }
__attribute__((visibility("default"))) int32_t rn_tokenizer_eos(const rn_tokenizer *tok) {
    (void)tok;
    const char *e = getenv("FAKE_EOS");
    return e ? (int32_t)atoi(e) : 2;
}
