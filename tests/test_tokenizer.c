/* test_tokenizer.c: the Hugging Face tokenizer.json support without any
 * downloaded file: each normalizer, pre-tokenizer and decoder on known
 * values (the examples of the `tokenizers` documentation), the heap merge
 * loop against a naive quadratic BPE on random words, added-token flags,
 * lossless bytes (random byte strings, invalid UTF-8 included) through
 * tiny byte-level and byte-fallback tokenizers written by the test, and
 * bad files refused with RN_ERR_FORMAT. */
#define _GNU_SOURCE
#include "check.h"
#include "internal.h"
#include "retnet_data.h"
#include "tok.h"
#include "scratch.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

/* Writes text to tmpdir/name atomically; returns the path. */
static const char *write_text(const char *name, const char *text) { return write_tmp(name, text, strlen(text)); }

/* "a|b|c": the pieces of a list joined by '|'. */
static const char *joined(const tk_pieces *l) {
    static char buf[1024];
    size_t k = 0;
    for (size_t i = 0; i < l->n && k + l->v[i].len + 2 < sizeof buf; i++) {
        if (i) buf[k++] = '|';
        memcpy(buf + k, l->text.p + l->v[i].off, l->v[i].len);
        k += l->v[i].len;
    }
    buf[k] = 0;
    return buf;
}

/* ------------------------------------------------------------ normalizers */

static void check_norm(const char *json, const char *in, const char *want) {
    cJSON *j = cJSON_Parse(json);
    tk_normalizer *n = NULL;
    tk_scratch sc = {0};
    tk_buf out = {0};
    CHECK_OK(tk_normalizer_load(j, "test", "normalizer", &n));
    CHECK_OK(tk_normalize(n, in, strlen(in), &sc, &out));
    CHECK(out.len == strlen(want) && memcmp(out.p, want, out.len) == 0, "%s on '%s': '%.*s', want '%s'", json, in,
          (int)out.len, out.p, want);
    tk_normalizer_free(n);
    tk_scratch_free(&sc);
    tk_buf_free(&out);
    cJSON_Delete(j);
}

static void test_normalizers(void) {
    check_norm("{\"type\":\"NFC\"}", "e\xCC\x81 a\xCC\x88", "\xC3\xA9 \xC3\xA4");
    check_norm("{\"type\":\"NFD\"}", "\xC3\xA9", "e\xCC\x81");
    check_norm("{\"type\":\"NFKC\"}", "\xEF\xAC\x81 \xE2\x91\xA0 \xEF\xBC\xA1", "fi 1 A");  /* ﬁ ① Ａ */
    check_norm("{\"type\":\"NFC\"}", "a\xFF" "e\xCC\x81", "a\xFF\xC3\xA9");  /* invalid bytes kept */
    check_norm("{\"type\":\"Lowercase\"}", "\xC3\x80" "BC \xCE\xA3", "\xC3\xA0" "bc \xCF\x83");
    check_norm("{\"type\":\"Lowercase\"}", "\xC4\xB0", "i\xCC\x87");  /* İ -> i + combining dot, as Rust */
    check_norm("{\"type\":\"Strip\",\"strip_left\":true,\"strip_right\":true}", " \t a b \xE3\x80\x80\n", "a b");
    check_norm("{\"type\":\"Strip\",\"strip_left\":false,\"strip_right\":true}", "  a  ", "  a");
    check_norm("{\"type\":\"Prepend\",\"prepend\":\"\xE2\x96\x81\"}", "x", "\xE2\x96\x81x");
    check_norm("{\"type\":\"Prepend\",\"prepend\":\"\xE2\x96\x81\"}", "", "");
    check_norm("{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"\xE2\x96\x81\"}", "a b  c",
               "a\xE2\x96\x81" "b\xE2\x96\x81\xE2\x96\x81" "c");
    check_norm("{\"type\":\"Replace\",\"pattern\":{\"Regex\":\"\\\\s+\"},\"content\":\" \"}", "a \t\n b", "a b");
    check_norm("{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"Prepend\",\"prepend\":\"_\"},"
               "{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"_\"}]}",
               "Hi you", "_Hi_you");
}

/* --------------------------------------------------------- pre-tokenizers */

static void check_pre(const char *json, const char *in, const char *want) {
    cJSON *j = cJSON_Parse(json);
    tk_pretok *p = NULL;
    tk_scratch sc = {0};
    CHECK_OK(tk_pretok_load(j, "test", "pre_tokenizer", &p));
    tk_pieces *l = &sc.p1;
    CHECK_OK(tk_pieces_push(l, in, strlen(in), -1, 1));
    CHECK_OK(tk_pretokenize(p, &l, &sc));
    const char *got = joined(l);
    CHECK(strcmp(got, want) == 0, "%s on '%s': '%s', want '%s'", json, in, got, want);
    tk_pretok_free(p);
    tk_scratch_free(&sc);
    cJSON_Delete(j);
}

static void test_pretokenizers(void) {
    /* The documented SplitDelimiterBehavior examples. */
    const char *t = "the-final--countdown";
    const char *beh[5][2] = {{"Removed", "the|final|countdown"},
                             {"Isolated", "the|-|final|-|-|countdown"},
                             {"MergedWithPrevious", "the-|final-|-|countdown"},
                             {"MergedWithNext", "the|-final|-|-countdown"},
                             {"Contiguous", "the|-|final|--|countdown"}};
    for (int i = 0; i < 5; i++) {
        char js[256];
        snprintf(js, sizeof js, "{\"type\":\"Split\",\"pattern\":{\"String\":\"-\"},\"behavior\":\"%s\",\"invert\":false}",
                 beh[i][0]);
        check_pre(js, t, beh[i][1]);
    }
    check_pre("{\"type\":\"Split\",\"pattern\":{\"Regex\":\"\\\\w+\"},\"behavior\":\"Removed\",\"invert\":true}",
              "ab, cd", "ab|cd");
    check_pre("{\"type\":\"Split\",\"pattern\":{\"Regex\":\"\\\\p{N}{1,3}\"},\"behavior\":\"Isolated\",\"invert\":false}",
              "x12345y", "x|123|45|y");
    /* U+180E is not a space (Unicode >= 6.3, Oniguruma), though PCRE2's \s says so. */
    check_pre("{\"type\":\"Split\",\"pattern\":{\"Regex\":\"\\\\s+\"},\"behavior\":\"Removed\",\"invert\":false}",
              "a\xE1\xA0\x8E" "b c", "a\xE1\xA0\x8E" "b|c");
    check_pre("{\"type\":\"Split\",\"pattern\":{\"Regex\":\"[^\\\\s]+\"},\"behavior\":\"Removed\",\"invert\":true}",
              "a\xE1\xA0\x8E" "b c", "a\xE1\xA0\x8E" "b|c");
    /* GPT-2: the regex split, then the byte map (space -> U+0120). */
    check_pre("{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":true}", "Hello world's  12",
              "Hello|\xC4\xA0world|'s|\xC4\xA0|\xC4\xA0" "12");
    check_pre("{\"type\":\"ByteLevel\",\"add_prefix_space\":true,\"use_regex\":false}", "a b", "\xC4\xA0" "a\xC4\xA0" "b");
    check_pre("{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":false}", "\xFF\n", "\xC3\xBF\xC4\x8A");
    check_pre("{\"type\":\"Metaspace\",\"replacement\":\"\xE2\x96\x81\",\"prepend_scheme\":\"always\",\"split\":true}",
              "Hey friend", "\xE2\x96\x81Hey|\xE2\x96\x81" "friend");
    check_pre("{\"type\":\"Metaspace\",\"replacement\":\"\xE2\x96\x81\",\"prepend_scheme\":\"never\",\"split\":true}",
              "Hey  friend", "Hey|\xE2\x96\x81|\xE2\x96\x81" "friend");
    check_pre("{\"type\":\"Metaspace\",\"replacement\":\"\xE2\x96\x81\",\"prepend_scheme\":\"first\",\"split\":false}",
              "Hey friend", "\xE2\x96\x81Hey\xE2\x96\x81" "friend");
    check_pre("{\"type\":\"Digits\",\"individual_digits\":true}", "Call 123 please", "Call |1|2|3| please");
    check_pre("{\"type\":\"Digits\",\"individual_digits\":false}", "Call 123 please", "Call |123| please");
    check_pre("{\"type\":\"Punctuation\",\"behavior\":\"Isolated\"}", "Hey, you!", "Hey|,| you|!");
    check_pre("{\"type\":\"Whitespace\"}", "Hey man!  ok", "Hey|man|!|ok");
    check_pre("{\"type\":\"WhitespaceSplit\"}", "Hey man!\t ok", "Hey|man!|ok");
    check_pre("{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"WhitespaceSplit\"},{\"type\":\"Digits\","
              "\"individual_digits\":true}]}", "ab12 c3", "ab|1|2|c|3");
}

/* --------------------------------------------------------------- decoders */

static void check_dec(const char *json, const char **toks, int n, const char *want) {
    cJSON *j = cJSON_Parse(json);
    tk_decoder *d = NULL;
    tk_pieces in = {0}, tmp = {0};
    tk_buf out = {0};
    CHECK_OK(tk_decoder_load(j, "test", "decoder", &d));
    for (int i = 0; i < n; i++) tk_pieces_push(&in, toks[i], strlen(toks[i]), -1, 0);
    CHECK_OK(tk_decode_chain(d, &in, &tmp, &out));
    CHECK(out.len == strlen(want) && memcmp(out.p, want, out.len) == 0, "%s: '%.*s', want '%s'", json, (int)out.len,
          out.p, want);
    tk_decoder_free(d);
    tk_pieces_free(&in);
    tk_pieces_free(&tmp);
    tk_buf_free(&out);
    cJSON_Delete(j);
}

static void test_decoders(void) {
    const char *bf[] = {"<0x61>", "b", "<0xE2>", "<0x82>", "c", "<0xE2>", "<0x82>", "<0xAC>"};
    check_dec("{\"type\":\"ByteFallback\"}", bf, 8, "ab\xEF\xBF\xBD\xEF\xBF\xBD" "c\xE2\x82\xAC");
    const char *ms[] = {"\xE2\x96\x81Hey", "\xE2\x96\x81" "friend"};
    check_dec("{\"type\":\"Metaspace\",\"replacement\":\"\xE2\x96\x81\",\"prepend_scheme\":\"always\",\"split\":true}",
              ms, 2, "Hey friend");
    check_dec("{\"type\":\"Metaspace\",\"replacement\":\"\xE2\x96\x81\",\"prepend_scheme\":\"never\",\"split\":true}",
              ms, 2, " Hey friend");
    const char *bl[] = {"\xC4\xA0hello", "\xC4\xA0", "\xC3\xA2\xC4\xA4\xC2\xAC", "\xC3\xBF"};
    check_dec("{\"type\":\"ByteLevel\"}", bl, 4, " hello \xE2\x82\xAC\xEF\xBF\xBD");
    const char *st[] = {"  a", " b ", "c"};
    check_dec("{\"type\":\"Strip\",\"content\":\" \",\"start\":1,\"stop\":1}", st, 3, " abc");
    check_dec("{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"Fuse\"},{\"type\":\"Strip\",\"content\":\" \","
              "\"start\":1,\"stop\":0}]}", st, 3, " a b c");
    const char *mi[] = {"\xE2\x96\x81Hello", "\xE2\x96\x81", "<0x21>"};
    check_dec("{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"Replace\",\"pattern\":{\"String\":\"\xE2\x96\x81\"},"
              "\"content\":\" \"},{\"type\":\"ByteFallback\"},{\"type\":\"Fuse\"},{\"type\":\"Strip\",\"content\":\" \","
              "\"start\":1,\"stop\":0}]}", mi, 3, "Hello !");
    const char *two[] = {"a", "b"};
    check_dec("null", two, 2, "a b");  /* no decoder: joined by spaces */
}

/* ------------------------------------------------ the merge loop vs naive */

/* Naive BPE: repeatedly merge the lowest-rank adjacent pair, leftmost on
 * ties, rescanning everything (O(n^2)); sym holds token ids. */
static int naive_bpe(int *sym, int n, int nmerges, const int (*mg)[3]) {
    for (;;) {
        int best = -1, at = -1;
        for (int i = 0; i + 1 < n; i++)
            for (int r = 0; r < nmerges; r++)
                if (mg[r][0] == sym[i] && mg[r][1] == sym[i + 1] && (best < 0 || r < best)) best = r, at = i;
        if (best < 0) return n;
        sym[at] = mg[best][2];
        memmove(sym + at + 1, sym + at + 2, (size_t)(n - at - 2) * sizeof *sym);
        n--;
    }
}

static void test_merge_loop(void) {
    /* Alphabet a..d; random merges build tokens as strings. */
    for (int trial = 0; trial < 20; trial++) {
        char tok[200][64];
        int nt = 4, mg[150][3], nm = 0;
        for (int c = 0; c < 4; c++) tok[c][0] = (char)('a' + c), tok[c][1] = 0;
        while (nm < 60 && nt < 200) {
            int x = (int)(rnd() % (uint64_t)nt), y = (int)(rnd() % (uint64_t)nt);
            if (strlen(tok[x]) + strlen(tok[y]) >= 63) continue;
            char cat[128];
            snprintf(cat, sizeof cat, "%s%s", tok[x], tok[y]);
            int id = -1, dup = 0;
            for (int k = 0; k < nt; k++) if (!strcmp(tok[k], cat)) id = k;
            for (int k = 0; k < nm; k++) dup |= mg[k][0] == x && mg[k][1] == y;
            if (dup) continue;
            if (id < 0) strcpy(tok[id = nt++], cat);
            mg[nm][0] = x, mg[nm][1] = y, mg[nm][2] = id, nm++;
        }
        /* tokenizer.json with these */
        cJSON *root = cJSON_CreateObject(), *model = cJSON_AddObjectToObject(root, "model");
        cJSON_AddStringToObject(model, "type", "BPE");
        cJSON *v = cJSON_AddObjectToObject(model, "vocab"), *m = cJSON_AddArrayToObject(model, "merges");
        for (int k = 0; k < nt; k++) cJSON_AddNumberToObject(v, tok[k], k);
        for (int k = 0; k < nm; k++) {
            char s[140];
            snprintf(s, sizeof s, "%s %s", tok[mg[k][0]], tok[mg[k][1]]);
            if (k % 2) cJSON_AddItemToArray(m, cJSON_CreateString(s));
            else {
                const char *pair[2] = {tok[mg[k][0]], tok[mg[k][1]]};
                cJSON_AddItemToArray(m, cJSON_CreateStringArray(pair, 2));  /* both merge forms */
            }
        }
        char *js = cJSON_PrintUnformatted(root);
        cJSON_Delete(root);
        rn_tokenizer *t = NULL;
        CHECK_OK(rn_tokenizer_load(write_text("merge.json", js), &t));
        free(js);
        if (!t) continue;
        int bad = 0;
        for (int w = 0; w < 200; w++) {
            int n = 1 + (int)(rnd() % 300), sym[300];
            char word[301];
            for (int i = 0; i < n; i++) word[i] = (char)('a' + rnd() % 4), sym[i] = word[i] - 'a';
            int k = naive_bpe(sym, n, nm, (const int (*)[3])mg);
            int32_t ids[300];
            size_t got;
            for (int rep = 0; rep < 2; rep++) {  /* the second from the cache */
                if (rn_tokenizer_encode(t, word, (size_t)n, ids, 300, &got) != RN_OK || got != (size_t)k) bad++;
                else
                    for (int i = 0; i < k; i++) bad += ids[i] != sym[i];
            }
        }
        CHECK(bad == 0, "trial %d: the heap merge loop differs from naive BPE (%d)", trial, bad);
        rn_tokenizer_free(t);
    }
}

/* ------------------------------------------------------ lossless tokenizers */

/* The GPT-2 byte map, as the test's own table (bytes_to_unicode). */
static void bytelevel_char(int b, char out[3]) {
    static int tab[256], init;
    if (!init) {
        int n = 0;
        for (int i = 0; i < 256; i++) {
            int keep = (i >= '!' && i <= '~') || (i >= 0xA1 && i <= 0xAC) || (i >= 0xAE && i <= 0xFF);
            tab[i] = keep ? i : 256 + n++;
        }
        init = 1;
    }
    int c = tab[b];
    if (c < 128) out[0] = (char)c, out[1] = 0;
    else out[0] = (char)(0xC0 | (c >> 6)), out[1] = (char)(0x80 | (c & 0x3F)), out[2] = 0;
}

/* Several threads encode the same texts at once (the cache is shared):
 * each must get what one thread alone gets. */
enum { NTEXT = 64, NTHREAD = 4 };
typedef struct {
    const rn_tokenizer *t;
    char (*text)[96];
    int32_t (*want)[96];
    size_t *nwant;
    int bad;
} par_job;

static void *par_encode(void *arg) {
    par_job *j = arg;
    for (int rep = 0; rep < 20; rep++)
        for (int i = 0; i < NTEXT; i++) {
            int32_t ids[96];
            size_t n;
            if (rn_tokenizer_encode(j->t, j->text[i], strlen(j->text[i]), ids, 96, &n) != RN_OK || n != j->nwant[i] ||
                memcmp(ids, j->want[i], n * sizeof *ids))
                j->bad++;
        }
    return NULL;
}

static void check_threads(const rn_tokenizer *t) {
    static char text[NTEXT][96];
    static int32_t want[NTEXT][96];
    size_t nwant[NTEXT];
    for (int i = 0; i < NTEXT; i++) {
        int n = (int)(rnd() % 90);
        for (int k = 0; k < n; k++) text[i][k] = " abab\n"[rnd() % 6];
        text[i][n] = 0;
        rn_tokenizer_encode(t, text[i], (size_t)n, want[i], 96, &nwant[i]);
    }
    pthread_t th[NTHREAD];
    par_job jobs[NTHREAD];
    for (int k = 0; k < NTHREAD; k++) {
        jobs[k] = (par_job){t, text, want, nwant, 0};
        pthread_create(&th[k], NULL, par_encode, &jobs[k]);
    }
    int bad = 0;
    for (int k = 0; k < NTHREAD; k++) {
        pthread_join(th[k], NULL);
        bad += jobs[k].bad;
    }
    CHECK(bad == 0, "%d encodes from %d threads differ from one thread's", bad, NTHREAD);
}

static void check_lossless(rn_tokenizer *t, const char *name, int prefix_space) {
    int bad = 0, bad_dec = 0;
    for (int trial = 0; trial < 300; trial++) {
        size_t n = rnd() % 200;
        char in[200], back[1200];
        for (size_t i = 0; i < n; i++) {
            uint64_t r = rnd();
            /* Mix raw random bytes with ASCII, spaces and valid multi-byte text. */
            in[i] = (char)(r % 4 == 0 ? (int)(r >> 8) : r % 4 == 1 ? ' ' : r % 4 == 2 ? 'a' + (int)(r >> 8) % 3 : 0xC3);
            if (r % 4 == 3 && i + 1 < n) in[++i] = (char)(0xA0 + (r >> 8) % 16);
        }
        if (memmem(in, n, "\xE2\x96\x81", 3)) continue;
        int32_t ids[1200];
        size_t k, m = 0;
        if (rn_tokenizer_encode(t, in, n, ids, 1200, &k) != RN_OK || k > 1200) {
            bad++;
            continue;
        }
        for (size_t i = 0; i < k; i++) {
            const char *p;
            size_t pl;
            rn_tokenizer_decode(t, ids[i], &p, &pl);
            if (m + pl <= sizeof back) memcpy(back + m, p, pl);
            m += pl;
        }
        size_t off = prefix_space && n ? 1 : 0;
        if (m != n + off || (off && back[0] != ' ') || memcmp(back + off, in, n) != 0) bad++;
        /* A full decode is the same text when the input is valid UTF-8. */
        int valid = 1;
        for (size_t i = 0; i < n;) {
            int32_t cp;
            i += (size_t)tk_utf8_next((const unsigned char *)in + i, n - i, &cp);
            valid &= cp >= 0;
        }
        size_t dl;
        if (valid && (rn_tokenizer_decode_all(t, ids, k, 0, back, sizeof back, &dl) != RN_OK || dl != n ||
                      memcmp(back, in, n) != 0))
            bad_dec++;
    }
    CHECK(bad == 0, "%s: %d random byte strings do not come back from the pieces", name, bad);
    CHECK(bad_dec == 0, "%s: %d valid UTF-8 strings do not come back from decode_all", name, bad_dec);
}

static void test_lossless(void) {
    /* Byte-level: the 256 byte characters, a few merges, GPT-2's pipeline. */
    cJSON *root = cJSON_CreateObject(), *model = cJSON_AddObjectToObject(root, "model");
    cJSON_AddStringToObject(model, "type", "BPE");
    cJSON *v = cJSON_AddObjectToObject(model, "vocab"), *m = cJSON_AddArrayToObject(model, "merges");
    for (int b = 0; b < 256; b++) {
        char c[3];
        bytelevel_char(b, c);
        cJSON_AddNumberToObject(v, c, b);
    }
    cJSON_AddNumberToObject(v, "\xC4\xA0" "a", 256);
    cJSON_AddNumberToObject(v, "ab", 257);
    cJSON_AddItemToArray(m, cJSON_CreateString("\xC4\xA0 a"));
    cJSON_AddItemToArray(m, cJSON_CreateString("a b"));
    cJSON_AddItemToObject(root, "pre_tokenizer", cJSON_Parse("{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":true}"));
    cJSON_AddItemToObject(root, "decoder", cJSON_Parse("{\"type\":\"ByteLevel\"}"));
    cJSON_AddItemToObject(root, "added_tokens", cJSON_Parse("[{\"id\":258,\"content\":\"<|end|>\",\"special\":true}]"));
    char *js = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    rn_tokenizer *t = NULL;
    CHECK_OK(rn_tokenizer_load(write_text("bytelevel.json", js), &t));
    free(js);
    if (t) {
        int32_t ids[16];
        size_t n;
        CHECK_OK(rn_tokenizer_encode(t, " ab a<|end|>", 12, ids, 16, &n));
        CHECK(n == 4 && ids[0] == 256 && ids[1] == 'b' && ids[2] == 256 && ids[3] == 258, "byte-level ' ab a<|end|>': %zu ids", n);
        CHECK(rn_tokenizer_token_to_id(t, "<|end|>") == 258 && rn_tokenizer_token_to_id(t, "zz") == -1, "token_to_id");
        CHECK(rn_tokenizer_id_to_token(t, 257) && !strcmp(rn_tokenizer_id_to_token(t, 257), "ab"), "id_to_token");
        char out[32];
        size_t len;
        CHECK_OK(rn_tokenizer_decode_all(t, ids, n, 1, out, sizeof out, &len));
        CHECK(len == 5 && !memcmp(out, " ab a", 5), "decode_all skipping special: '%.*s'", (int)len, out);
        CHECK(rn_tokenizer_bos(t) == -1 && rn_tokenizer_eos(t) == -1, "no BOS/EOS without a post-processor");
        check_lossless(t, "byte-level", 0);
        check_threads(t);
        rn_tokenizer_free(t);
    }

    /* Byte fallback: <unk> <s> </s>, the 256 <0xNN>, a few pieces; spaces
     * as U+2581; the Mistral decoder chain and post-processor. */
    root = cJSON_CreateObject();
    model = cJSON_AddObjectToObject(root, "model");
    cJSON_AddStringToObject(model, "type", "BPE");
    cJSON_AddStringToObject(model, "unk_token", "<unk>");
    cJSON_AddBoolToObject(model, "byte_fallback", 1);
    cJSON_AddBoolToObject(model, "fuse_unk", 1);
    v = cJSON_AddObjectToObject(model, "vocab");
    m = cJSON_AddArrayToObject(model, "merges");
    const char *sp[] = {"<unk>", "<s>", "</s>"};
    for (int i = 0; i < 3; i++) cJSON_AddNumberToObject(v, sp[i], i);
    for (int b = 0; b < 256; b++) {
        char c[8];
        snprintf(c, sizeof c, "<0x%02X>", b);
        cJSON_AddNumberToObject(v, c, 3 + b);
    }
    const char *pieces[] = {"\xE2\x96\x81", "a", "b", "ab", "\xE2\x96\x81" "a", "\xE2\x96\x81\xE2\x96\x81"};
    for (int i = 0; i < 6; i++) cJSON_AddNumberToObject(v, pieces[i], 259 + i);
    cJSON_AddItemToArray(m, cJSON_CreateString("a b"));
    cJSON_AddItemToArray(m, cJSON_CreateString("\xE2\x96\x81 a"));
    cJSON_AddItemToArray(m, cJSON_CreateString("\xE2\x96\x81 \xE2\x96\x81"));
    cJSON_AddItemToObject(root, "normalizer", cJSON_Parse(
        "{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"\xE2\x96\x81\"}"));
    cJSON_AddItemToObject(root, "decoder", cJSON_Parse(
        "{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"Replace\",\"pattern\":{\"String\":\"\xE2\x96\x81\"},"
        "\"content\":\" \"},{\"type\":\"ByteFallback\"},{\"type\":\"Fuse\"}]}"));
    cJSON_AddItemToObject(root, "post_processor", cJSON_Parse(
        "{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"<s>\",\"type_id\":0}},"
        "{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}],\"special_tokens\":{\"<s>\":{\"id\":\"<s>\",\"ids\":[1],\"tokens\":[\"<s>\"]}}}"));
    cJSON_AddItemToObject(root, "added_tokens", cJSON_Parse(
        "[{\"id\":0,\"content\":\"<unk>\",\"special\":true,\"normalized\":false},"
        "{\"id\":1,\"content\":\"<s>\",\"special\":true,\"normalized\":false},"
        "{\"id\":2,\"content\":\"</s>\",\"special\":true,\"normalized\":false}]"));
    js = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    CHECK_OK(rn_tokenizer_load(write_text("fallback.json", js), &t));
    free(js);
    if (t) {
        int32_t ids[16];
        size_t n;
        CHECK_OK(rn_tokenizer_encode_special(t, "ab a\xC3\xA9", 6, 1, ids, 16, &n));
        /* <s> ab ▁a <0xC3> <0xA9> */
        CHECK(n == 5 && ids[0] == 1 && ids[1] == 262 && ids[2] == 263 && ids[3] == 3 + 0xC3 && ids[4] == 3 + 0xA9,
              "byte fallback encode: %zu ids", n);
        CHECK(rn_tokenizer_bos(t) == 1, "BOS from the template");
        size_t k;
        CHECK_OK(rn_tokenizer_encode_special(t, "ab", 2, 1, NULL, 0, &k));  /* count only */
        CHECK(k == 2, "count-only call: %zu", k);
        check_lossless(t, "byte fallback", 0);
        rn_tokenizer_free(t);
    }
}

/* ------------------------------------------------------------ added tokens */

static void test_added_flags(void) {
    const char *js =
        "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\" \":1,\"x\":2},\"merges\":[]},"
        "\"added_tokens\":[{\"id\":3,\"content\":\"<m>\",\"lstrip\":true,\"rstrip\":true,\"normalized\":false,\"special\":true},"
        "{\"id\":4,\"content\":\"aa\",\"single_word\":true,\"normalized\":false,\"special\":false},"
        "{\"id\":5,\"content\":\"<mm>\",\"normalized\":false,\"special\":true}]}";
    rn_tokenizer *t = NULL;
    CHECK_OK(rn_tokenizer_load(write_text("added.json", js), &t));
    if (!t) return;
    struct { const char *in; int n; int32_t want[8]; } cases[] = {
        {"a  <m>  a", 3, {0, 3, 0}},           /* lstrip and rstrip eat the spaces */
        {"aa a", 3, {4, 1, 0}},                /* single word: matched */
        {"xaa", 3, {2, 0, 0}},                 /* single word inside a word: not matched */
        {"<mm><m>", 2, {5, 3}},                /* longest match first */
    };
    for (int c = 0; c < 4; c++) {
        int32_t ids[16];
        size_t n;
        CHECK_OK(rn_tokenizer_encode(t, cases[c].in, strlen(cases[c].in), ids, 16, &n));
        int same = (int)n == cases[c].n;
        for (int i = 0; same && i < cases[c].n; i++) same = ids[i] == cases[c].want[i];
        CHECK(same, "added tokens on '%s': %zu ids (%d %d %d)", cases[c].in, n, n > 0 ? ids[0] : -1, n > 1 ? ids[1] : -1,
              n > 2 ? ids[2] : -1);
    }
    rn_tokenizer_free(t);
}

/* ----------------------------------------------------- tokenizer_config.json */

static void test_config(void) {
    char dir[128];
    snprintf(dir, sizeof dir, "%s/model", tmpdir);
    mkdir(dir, 0700);
    write_text("model/tokenizer.json",
               "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"<s>\":0,\"</s>\":1,\"a\":2},\"merges\":[]},"
               "\"added_tokens\":[{\"id\":0,\"content\":\"<s>\",\"special\":true,\"normalized\":false},"
               "{\"id\":1,\"content\":\"</s>\",\"special\":true,\"normalized\":false}]}");
    write_text("model/tokenizer_config.json",
               "{\"bos_token\":{\"content\":\"<s>\",\"lstrip\":false},\"eos_token\":\"</s>\","
               "\"add_bos_token\":true,\"add_eos_token\":true}");
    rn_tokenizer *t = NULL;
    CHECK_OK(rn_tokenizer_load(dir, &t));
    if (!t) return;
    CHECK(rn_tokenizer_bos(t) == 0 && rn_tokenizer_eos(t) == 1, "bos %d eos %d from tokenizer_config.json",
          rn_tokenizer_bos(t), rn_tokenizer_eos(t));
    int32_t ids[8];
    size_t n;
    CHECK_OK(rn_tokenizer_encode_special(t, "aa", 2, 1, ids, 8, &n));
    CHECK(n == 4 && ids[0] == 0 && ids[1] == 2 && ids[2] == 2 && ids[3] == 1, "add_bos/add_eos: %zu ids", n);
    CHECK_OK(rn_tokenizer_encode(t, "a<s>", 4, ids, 8, &n));
    CHECK(n == 2 && ids[0] == 2 && ids[1] == 0, "special tokens in the text are matched without add_special");
    rn_tokenizer_free(t);
    /* A bos_token that is no token is refused, naming the config file. */
    write_text("model/tokenizer_config.json", "{\"bos_token\":\"<nope>\"}");
    CHECK(rn_tokenizer_load(dir, &t) == RN_ERR_FORMAT && strstr(rn_last_error(), "tokenizer_config.json") &&
              strstr(rn_last_error(), "bos_token"),
          "unknown bos_token: %s", rn_last_error());
}

/* --------------------------------------------------------------- bad files */

static void test_bad_files(void) {
    const char *bad[][2] = {
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]", "JSON"},
        {"{\"model\":{\"type\":\"WordPiece\",\"vocab\":{\"a\":0}}}", "model.type"},
        {"{\"model\":{\"type\":\"WordLevel\",\"vocab\":{\"a\":0}}}", "model.type"},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1},\"merges\":[\"a x\"]}}", "model.merges[0]"},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1},\"merges\":[\"a b\"]}}", "model.merges[0]"},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1},\"merges\":[\"ab\"]}}", "model.merges[0]"},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":1,\"b\":1},\"merges\":[]}}", "model.vocab"},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0.5},\"merges\":[]}}", "model.vocab"},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]},\"pre_tokenizer\":{\"type\":\"Split\","
         "\"pattern\":{\"Regex\":\"[a\"},\"behavior\":\"Isolated\"}}", "pre_tokenizer.pattern"},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]},\"pre_tokenizer\":{\"type\":\"BertPreTokenizer\"}}",
         "pre_tokenizer"},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]},\"post_processor\":{\"type\":\"TemplateProcessing\","
         "\"single\":[{\"SpecialToken\":{\"id\":\"<s>\",\"type_id\":0}}],\"special_tokens\":{}}}", "post_processor"},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[],\"dropout\":0.1}}", "model.dropout"},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]},\"truncation\":{\"max_length\":5}}", "truncation"},
        {"[]", "model"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char name[32];
        snprintf(name, sizeof name, "bad%zu.json", i);
        const char *path = write_text(name, bad[i][0]);
        rn_tokenizer *t = NULL;
        rn_status s = rn_tokenizer_load(path, &t);
        const char *msg = rn_last_error();
        CHECK(s == RN_ERR_FORMAT && !t && strstr(msg, path) && strstr(msg, bad[i][1]) && !strchr(msg, '\n'),
              "bad file %zu: %s: %s", i, rn_status_name(s), msg);
    }
    /* Every truncation of a small valid file: refused or loaded, never a crash. */
    const char *good = "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[[\"a\",\"b\"]]},"
                       "\"normalizer\":{\"type\":\"NFC\"},\"pre_tokenizer\":{\"type\":\"Whitespace\"}}";
    int crashes = 0;
    for (size_t cut = 0; cut < strlen(good); cut++) {
        char buf[512];
        memcpy(buf, good, cut);
        buf[cut] = 0;
        rn_tokenizer *t = NULL;
        rn_status s = rn_tokenizer_load(write_text("cut.json", buf), &t);
        crashes += s != RN_ERR_FORMAT;
        rn_tokenizer_free(t);
    }
    CHECK(crashes == 0, "%d truncations of a valid file were not refused as RN_ERR_FORMAT", crashes);
    rn_tokenizer *t = NULL;
    CHECK(rn_tokenizer_load("/nonexistent/tokenizer.json", &t) == RN_ERR_IO, "a missing file is RN_ERR_IO");
}

int main(void) {
    if (scratch_open("test_tokenizer") != 0) return 1;
    rn_tokenizer *init = NULL;  /* loading any tokenizer initialises the byte map */
    rn_tokenizer_load(write_text("init.json", "{\"model\":{\"type\":\"BPE\",\"vocab\":{},\"merges\":[]}}"), &init);
    rn_tokenizer_free(init);
    test_normalizers();
    test_pretokenizers();
    test_decoders();
    test_merge_loop();
    test_lossless();
    test_added_flags();
    test_config();
    test_bad_files();
    scratch_close();
    CHECK_DONE();
}
