/* test_tok_train.c: rn_tokenizer_train without any downloaded file: the
 * merges of a small text known by hand (ties to the smallest pair of ids,
 * as Hugging Face's BpeTrainer), the incremental pair counts against a
 * naive trainer that recounts every pair before each merge (random texts),
 * the files it writes loading and encoding losslessly (random bytes
 * through the byte-level kind, unseen characters through byte fallback),
 * and bad input refused with the right status. The comparison with the
 * `tokenizers` library itself is tests/cli/test_tokenizer_train.sh. */
#define _GNU_SOURCE
#include "check.h"
#include "retnet_data.h"
#include "scratch.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

static cJSON *read_json(const char *path) {
    char *data;
    size_t n;
    if (rn_read_file(path, 0, &data, &n) != RN_OK) return NULL;
    cJSON *j = cJSON_Parse(data);
    free(data);
    return j;
}

/* The merges of a written tokenizer.json as "a b" strings (n of them). */
static char **merges_of(const char *path, int *n) {
    cJSON *j = read_json(path);
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "model"), "merges");
    *n = cJSON_GetArraySize(m);
    char **out = calloc((size_t)*n + 1, sizeof *out);
    int i = 0;
    for (const cJSON *x = m ? m->child : NULL; x; x = x->next, i++) {
        const char *a = cJSON_GetArrayItem(x, 0)->valuestring, *b = cJSON_GetArrayItem(x, 1)->valuestring;
        out[i] = malloc(strlen(a) + strlen(b) + 2);
        sprintf(out[i], "%s %s", a, b);
    }
    cJSON_Delete(j);
    return out;
}

static void free_strs(char **s, int n) {
    for (int i = 0; i < n; i++) free(s[i]);
    free(s);
}

static rn_status train(const char *data, rn_tokenizer_kind kind, int vocab, const char *out,
                       rn_tokenizer_train_stats *st) {
    rn_tokenizer_train_options o;
    rn_tokenizer_train_defaults(&o);
    o.kind = kind;
    o.vocab_size = vocab;
    const char *files[1] = {data};
    return rn_tokenizer_train(files, 1, &o, out, st);
}

/* ------------------------------------------------------ known by hand */

static void test_known(void) {
    /* One word "abcd" (and the line break, alone): the three pairs tie at
     * count 1; the smallest ids win: (a, b); then (ab, c) and (c, d) tie
     * again and c < ab (new ids come after the alphabet): (c, d); then
     * (ab, cd). */
    const char *d = write_tmp("abcd.txt", "abcd\n", 5);
    rn_tokenizer_train_stats st;
    CHECK_OK(train(d, RN_TOKENIZER_BYTELEVEL, 259, tmp_path("abcd.json"), &st));
    int n;
    char **m = merges_of(tmp_path("abcd.json"), &n);
    CHECK(n == 3 && !strcmp(m[0], "a b") && !strcmp(m[1], "c d") && !strcmp(m[2], "ab cd"),
          "abcd: %d merges: %s | %s | %s", n, n > 0 ? m[0] : "", n > 1 ? m[1] : "", n > 2 ? m[2] : "");
    CHECK(st.base_vocab == 256 && st.vocab_size == 259 && st.merges == 3, "abcd: base %d vocab %d merges %d",
          st.base_vocab, st.vocab_size, st.merges);
    free_strs(m, n);
    /* Counts decide before ids: " zz" twice beats "ab" once. Words keep to
     * their pre-tokens (GPT-2's regex: " zz" is one, its space shown as
     * U+0120, id above z's): (z, z) and (U+0120, z) tie at 2, z < U+0120:
     * "z z" first, then U+0120 + "zz". No pair crosses a space. */
    d = write_tmp("zz.txt", "ab zz zz\n", 9);
    CHECK_OK(train(d, RN_TOKENIZER_BYTELEVEL, 258, tmp_path("zz.json"), &st));
    m = merges_of(tmp_path("zz.json"), &n);
    CHECK(n == 2 && !strcmp(m[0], "z z") && !strcmp(m[1], "\xc4\xa0 zz"), "zz: %d merges: %s | %s", n,
          n > 0 ? m[0] : "", n > 1 ? m[1] : "");
    free_strs(m, n);
    /* No pair left: training stops below the vocabulary size asked. */
    CHECK_OK(train(d, RN_TOKENIZER_BYTELEVEL, 1000, tmp_path("zz2.json"), &st));
    CHECK(st.merges == 3 && st.vocab_size == 259, "zz: all pairs merged: %d merges, %d tokens", st.merges,
          st.vocab_size);
    /* min_frequency: only " zz" (count 2) may merge. */
    rn_tokenizer_train_options o;
    rn_tokenizer_train_defaults(&o);
    o.vocab_size = 1000;
    o.min_frequency = 2;
    const char *files[1] = {d};
    CHECK_OK(rn_tokenizer_train(files, 1, &o, tmp_path("zz3.json"), &st));
    CHECK(st.merges == 2, "min_frequency 2: %d merges, want 2 (the pairs of \" zz\")", st.merges);
}

/* ------------------------------------------- against a naive trainer */

/* Byte-level ids of the 256 GPT-2 byte characters: their rank in code
 * point order (printable Latin-1 as themselves, the rest from U+0100). */
static int byte_id(unsigned char b) {
    int cp[256], n = 0;
    for (int x = 0; x < 256; x++) {
        int keep = (x >= '!' && x <= '~') || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE && x <= 0xFF);
        cp[x] = keep ? x : 256 + n++;
    }
    int r = 0;
    for (int x = 0; x < 256; x++) r += cp[x] < cp[b];
    return r;
}

typedef struct {
    int sym[64], n;
    long count;
} nword;

/* The naive trainer on words of letters: every pair recounted before each
 * merge, the best by (count, then smallest ids), merged in every word. */
static int naive(nword *w, int nw, int vocab, char merges[][128], char tok[][128]) {
    int ntok = 256, nm = 0;
    while (ntok < vocab) {
        long best = 0;
        int ba = -1, bb = -1;
        /* Pairs of ids below ntok: a small table suffices here. */
        static long cnt[1024][1024];
        memset(cnt, 0, sizeof cnt);
        for (int i = 0; i < nw; i++)
            for (int k = 0; k + 1 < w[i].n; k++) cnt[w[i].sym[k]][w[i].sym[k + 1]] += w[i].count;
        for (int a = 0; a < ntok; a++)
            for (int b = 0; b < ntok; b++)
                if (cnt[a][b] > best) best = cnt[a][b], ba = a, bb = b;
        if (best < 1) break;
        char s[128];
        snprintf(s, sizeof s, "%s%s", tok[ba], tok[bb]);
        int id = -1;
        for (int t = 0; t < ntok; t++)
            if (!strcmp(tok[t], s)) id = t;
        if (id < 0) snprintf(tok[id = ntok++], 128, "%s", s);
        snprintf(merges[nm++], 128, "%s %s", tok[ba], tok[bb]);
        for (int i = 0; i < nw; i++) {
            int o = 0;
            for (int k = 0; k < w[i].n;) {
                if (k + 1 < w[i].n && w[i].sym[k] == ba && w[i].sym[k + 1] == bb) w[i].sym[o++] = id, k += 2;
                else w[i].sym[o++] = w[i].sym[k++];
            }
            w[i].n = o;
        }
    }
    return nm;
}

static void test_naive(void) {
    static char tok[1024][128], merges[1024][128];
    for (int trial = 0; trial < 4; trial++) {
        /* Lines of words over a small alphabet (so pairs repeat and tie):
         * the first word of a line alone, the others with their space
         * (GPT-2's " ?\p{L}+"), the line break a word of its own. */
        char text[20000];
        size_t len = 0;
        nword words[600];
        int nw = 0;
        int letters = 3 + trial;
        for (int line = 0; line < 60; line++) {
            int nwords = 1 + (int)(rnd() % 8);
            for (int k = 0; k < nwords; k++) {
                char wd[16];
                int wl = 1 + (int)(rnd() % 7), o = 0;
                if (k) text[len++] = ' ';
                for (int c = 0; c < wl; c++) wd[o++] = (char)('a' + rnd() % (uint64_t)letters);
                memcpy(text + len, wd, (size_t)o);
                len += (size_t)o;
                nword x = {{0}, 0, 1};
                if (k) x.sym[x.n++] = byte_id(' ');
                for (int c = 0; c < o; c++) x.sym[x.n++] = byte_id((unsigned char)wd[c]);
                int found = -1;
                for (int i = 0; i < nw; i++)
                    if (words[i].n == x.n && !memcmp(words[i].sym, x.sym, sizeof(int) * (size_t)x.n)) found = i;
                if (found >= 0) words[found].count++;
                else words[nw++] = x;
            }
            text[len++] = '\n';
        }
        for (int b = 0; b < 256; b++) {
            /* The byte-level token of byte b, as its UTF-8 character. */
            int cp[256], n = 0;
            for (int x = 0; x < 256; x++) {
                int keep = (x >= '!' && x <= '~') || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE && x <= 0xFF);
                cp[x] = keep ? x : 256 + n++;
            }
            char *t = tok[byte_id((unsigned char)b)];
            if (cp[b] < 128) t[0] = (char)cp[b], t[1] = 0;
            else t[0] = (char)(0xC0 | (cp[b] >> 6)), t[1] = (char)(0x80 | (cp[b] & 0x3F)), t[2] = 0;
        }
        int vocab = 256 + 150;
        int nm = naive(words, nw, vocab, merges, tok);
        const char *d = write_tmp("rand.txt", text, len);
        rn_tokenizer_train_stats st;
        CHECK_OK(train(d, RN_TOKENIZER_BYTELEVEL, vocab, tmp_path("rand.json"), &st));
        int n;
        char **m = merges_of(tmp_path("rand.json"), &n);
        int same = n == nm, first = -1;
        for (int i = 0; i < n && i < nm; i++)
            if (strcmp(m[i], merges[i])) {
                same = 0;
                first = i;
                break;
            }
        CHECK(same, "trial %d (%d letters): %d merges vs the naive trainer's %d, first difference at %d: %s vs %s",
              trial, letters, n, nm, first, first >= 0 ? m[first] : "", first >= 0 ? merges[first] : "");
        free_strs(m, n);
    }
}

/* ------------------------------------------- the files it writes work */

static void test_lossless(void) {
    /* A text with some structure, then random bytes through it. */
    char text[40000];
    size_t len = 0;
    const char *wds[] = {"the ", "cat ", "sat ", "on ", "a ", "mat", ". ", "\n", "caf\xc3\xa9 ", "42 ", "\t"};
    while (len < sizeof text - 16) {
        const char *w = wds[rnd() % (sizeof wds / sizeof *wds)];
        memcpy(text + len, w, strlen(w));
        len += strlen(w);
    }
    const char *d = write_tmp("text.txt", text, len);
    rn_tokenizer_train_stats st;
    CHECK_OK(train(d, RN_TOKENIZER_BYTELEVEL, 300, tmp_path("bl.json"), &st));
    rn_tokenizer *tok = NULL;
    CHECK_OK(rn_tokenizer_load(tmp_path("bl.json"), &tok));
    if (!tok) return;
    CHECK(tok->vocab_size == 300 && st.vocab_size == 300, "byte-level: %d ids, want 300", tok->vocab_size);
    size_t n;
    CHECK_OK(rn_tokenizer_encode(tok, text, len, NULL, 0, &n));
    CHECK(n < len / 2, "byte-level: the training text takes %zu tokens for %zu bytes", n, len);
    unsigned char bytes[3000];
    int32_t ids[3000];
    char back[3000 * 4];
    int lossless = 1;
    for (int trial = 0; trial < 20; trial++) {
        size_t nb = 1 + rnd() % sizeof bytes;
        for (size_t i = 0; i < nb; i++) bytes[i] = trial % 2 ? (unsigned char)rnd() : (unsigned char)text[rnd() % len];
        size_t k, bl = 0;
        if (rn_tokenizer_encode(tok, (const char *)bytes, nb, ids, 3000, &k) != RN_OK || k > 3000) {
            lossless = 0;
            break;
        }
        for (size_t i = 0; i < k; i++) {
            const char *p;
            size_t pl;
            rn_tokenizer_decode(tok, ids[i], &p, &pl);
            memcpy(back + bl, p, pl);
            bl += pl;
        }
        lossless &= bl == nb && !memcmp(back, bytes, nb);
    }
    CHECK(lossless, "byte-level: random bytes do not come back from their pieces");
    rn_tokenizer_free(tok);

    /* SentencePiece-BPE: <unk> <s> </s>, the 256 byte tokens, characters;
     * an unseen character falls back to its bytes and decodes back. */
    CHECK_OK(train(d, RN_TOKENIZER_SENTENCEPIECE_BPE, 400, tmp_path("sp.json"), &st));
    tok = NULL;
    CHECK_OK(rn_tokenizer_load(tmp_path("sp.json"), &tok));
    if (!tok) return;
    CHECK(rn_tokenizer_token_to_id(tok, "<unk>") == 0 && rn_tokenizer_token_to_id(tok, "<s>") == 1 &&
              rn_tokenizer_token_to_id(tok, "</s>") == 2 && rn_tokenizer_token_to_id(tok, "<0x00>") == 3 &&
              rn_tokenizer_token_to_id(tok, "<0xFF>") == 258,
          "sentencepiece-bpe: the first ids are not <unk> <s> </s> <0x00>..<0xFF>");
    CHECK(rn_tokenizer_bos(tok) == 1, "sentencepiece-bpe: BOS %d, want 1", (int)rn_tokenizer_bos(tok));
    const char *s = "the \xe2\x82\xac cat";  /* the euro sign was never seen */
    CHECK_OK(rn_tokenizer_encode(tok, s, strlen(s), ids, 3000, &n));
    int fallback = 0;
    for (size_t i = 0; i < n; i++) fallback += ids[i] == 3 + 0xE2 || ids[i] == 3 + 0x82 || ids[i] == 3 + 0xAC;
    CHECK(fallback == 3, "sentencepiece-bpe: the euro sign is not its 3 byte tokens (%d)", fallback);
    size_t ol;
    CHECK_OK(rn_tokenizer_decode_all(tok, ids, n, 0, back, sizeof back, &ol));
    CHECK(ol == strlen(s) && !memcmp(back, s, ol), "sentencepiece-bpe: decode gives '%.*s'", (int)ol, back);
    CHECK_OK(rn_tokenizer_encode_special(tok, s, strlen(s), 1, ids, 3000, &n));
    CHECK(n > 0 && ids[0] == 1, "sentencepiece-bpe: with special tokens, the first id is %d, not <s>", ids[0]);
    rn_tokenizer_free(tok);

    /* Special tokens take the first ids and are matched whole in text. */
    rn_tokenizer_train_options o;
    rn_tokenizer_train_defaults(&o);
    o.vocab_size = 300;
    const char *sp[2] = {"<|endoftext|>", "<pad>"};
    o.special = sp;
    o.nspecial = 2;
    const char *files[1] = {d};
    CHECK_OK(rn_tokenizer_train(files, 1, &o, tmp_path("spec.json"), &st));
    tok = NULL;
    CHECK_OK(rn_tokenizer_load(tmp_path("spec.json"), &tok));
    if (!tok) return;
    CHECK(rn_tokenizer_token_to_id(tok, "<|endoftext|>") == 0 && rn_tokenizer_token_to_id(tok, "<pad>") == 1,
          "special tokens are not ids 0 and 1");
    CHECK_OK(rn_tokenizer_encode(tok, "a<pad>b", 7, ids, 3000, &n));
    CHECK(n == 3 && ids[1] == 1, "<pad> in text is not one id (%zu ids)", n);
    rn_tokenizer_free(tok);
}

/* ------------------------------------------------------------ bad input */

static void test_bad(void) {
    rn_tokenizer_train_stats st;
    const char *empty = write_tmp("empty.txt", "", 0);
    CHECK(train(empty, RN_TOKENIZER_BYTELEVEL, 300, tmp_path("x.json"), &st) == RN_ERR_FORMAT &&
              strstr(rn_last_error(), "empty.txt"),
          "an empty file: %s", rn_last_error());
    CHECK(train(tmp_path("missing.txt"), RN_TOKENIZER_BYTELEVEL, 300, tmp_path("x.json"), &st) == RN_ERR_IO &&
              strstr(rn_last_error(), "missing.txt"),
          "a missing file: %s", rn_last_error());
    CHECK(train(tmpdir, RN_TOKENIZER_BYTELEVEL, 300, tmp_path("x.json"), &st) == RN_ERR_IO, "a directory: %s",
          rn_last_error());
    const char *d = write_tmp("small.txt", "hello world\n", 12);
    CHECK(train(d, RN_TOKENIZER_BYTELEVEL, 255, tmp_path("x.json"), &st) == RN_ERR_ARG &&
              strstr(rn_last_error(), "255") && strstr(rn_last_error(), "256"),
          "vocabulary below the 256 bytes: %s", rn_last_error());
    CHECK(train(d, RN_TOKENIZER_SENTENCEPIECE_BPE, 260, tmp_path("x.json"), &st) == RN_ERR_ARG,
          "vocabulary below <unk> <s> </s>, 256 bytes and the characters: %s", rn_last_error());
    CHECK(train(d, RN_TOKENIZER_BYTELEVEL, 0, tmp_path("x.json"), &st) == RN_ERR_ARG, "vocabulary 0");
    CHECK(train(d, (rn_tokenizer_kind)7, 300, tmp_path("x.json"), &st) == RN_ERR_ARG, "an unknown kind");
    struct stat sb;
    CHECK(stat(tmp_path("x.json"), &sb) != 0, "a failed training wrote its output");
    rn_tokenizer_train_options o;
    rn_tokenizer_train_defaults(&o);
    const char *bad[1] = {"\xff"};
    o.special = bad;
    o.nspecial = 1;
    const char *files[1] = {d};
    CHECK(rn_tokenizer_train(files, 1, &o, tmp_path("x.json"), &st) == RN_ERR_ARG, "a special token not UTF-8");
    CHECK(rn_tokenizer_train(files, 0, &o, tmp_path("x.json"), &st) == RN_ERR_ARG, "no files");
    /* A file that is not text at all still trains (byte-level): NULs and
     * invalid UTF-8 are bytes like the others. */
    char junk[4096];
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = (char)rnd();
    d = write_tmp("junk.bin", junk, sizeof junk);
    CHECK_OK(train(d, RN_TOKENIZER_BYTELEVEL, 300, tmp_path("junk.json"), &st));
    CHECK_OK(train(d, RN_TOKENIZER_SENTENCEPIECE_BPE, 700, tmp_path("junksp.json"), &st));
    rn_tokenizer *tok = NULL;
    CHECK_OK(rn_tokenizer_load(tmp_path("junksp.json"), &tok));
    rn_tokenizer_free(tok);
}

int main(void) {
    if (scratch_open("retnet_tok_train") != 0) return 1;
    test_known();
    test_naive();
    test_lossless();
    test_bad();
    scratch_close();
    CHECK_DONE();
}
