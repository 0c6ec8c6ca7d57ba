/* tokenizer.c: Hugging Face tokenizer.json (model type BPE) behind the
 * rn_tokenizer vtable, with the semantics of the `tokenizers` library:
 *
 *   raw text --split on added tokens that match the raw text (normalized:
 *   false)--> pieces --normalizer--> --split on added tokens that match the
 *   normalized text--> --pre-tokenizer--> pre-tokens --BPE--> ids
 *   [--post-processor: BOS/EOS when asked-->]
 *
 * and decoding: ids -> token strings -> decoder chain -> text. The parts
 * live in tok_text.c (normalizers, pre-tokenizers, decoders) and tok_bpe.c
 * (the model); this file reads the JSON, matches added tokens and runs the
 * pipeline. */
#define _POSIX_C_SOURCE 200809L
#include "retnet_data.h"
#include "internal.h"
#include "tok.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <utf8proc.h>

/* Largest tokenizer file read (Llama 3's is 9 MB). */
#define MAX_TOKENIZER_BYTES ((size_t)1 << 30)

typedef struct {
    char *content;      /* as written in the file */
    size_t len;
    char *pattern;      /* what is matched: content, or its normalized form */
    size_t plen;
    int32_t id;
    int special, lstrip, rstrip, single_word, normalized;
} added_token;

/* A set of added tokens matched leftmost-longest (upstream uses an
 * Aho-Corasick automaton in that mode): by first byte, longest first. */
typedef struct {
    uint8_t first[256];   /* 1 if some pattern starts with that byte */
    size_t *idx;          /* (n) indices into added, sorted by (first byte, length desc) */
    size_t n;
    size_t start[257];    /* idx[start[b] .. start[b+1]) begin with byte b */
} matcher;

typedef struct {
    rn_tokenizer base;
    char *file;
    tk_bpe *bpe;
    tk_normalizer *norm;
    tk_pretok *pre;
    tk_decoder *dec;
    added_token *added;
    size_t nadded;
    matcher raw_m, norm_m;
    int32_t *tpl_pre, *tpl_post;  /* ids the post-processor puts around the text */
    size_t ntpl_pre, ntpl_post;
    int32_t bos, eos;
    int cfg_add_bos, cfg_add_eos; /* -1: not said by tokenizer_config.json */
    tk_buf pieces;                /* per-id decoded bytes (the vtable's decode) */
    size_t *poff;                 /* (vocab_size + 1) offsets into pieces */
} hf_tok;

/* ------------------------------------------------------------ added tokens */

/* Sort key of a pattern: first byte, then longest first. */
typedef struct {
    unsigned char first;
    size_t len, idx;
} pat_key;

static int cmp_key(const void *a, const void *b) {
    const pat_key *x = a, *y = b;
    if (x->first != y->first) return x->first < y->first ? -1 : 1;
    if (x->len != y->len) return x->len > y->len ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Builds the matcher of the added tokens with normalized == norm. */
static rn_status matcher_build(matcher *m, const added_token *a, size_t n, int norm) {
    memset(m, 0, sizeof *m);
    m->idx = malloc((n + 1) * sizeof *m->idx);
    pat_key *k = malloc((n + 1) * sizeof *k);
    if (!m->idx || !k) {
        free(k);
        return rni_fail(RN_ERR_NOMEM, "out of memory (added tokens)");
    }
    for (size_t i = 0; i < n; i++)
        if (!a[i].normalized == !norm && a[i].plen) k[m->n++] = (pat_key){(unsigned char)a[i].pattern[0], a[i].plen, i};
    qsort(k, m->n, sizeof *k, cmp_key);
    for (size_t i = 0; i < m->n; i++) m->idx[i] = k[i].idx, m->first[k[i].first] = 1;
    free(k);
    size_t j = 0;
    for (int b = 0; b < 256; b++) {
        m->start[b] = j;
        while (j < m->n && (unsigned char)a[m->idx[j]].pattern[0] == b) j++;
    }
    m->start[256] = j;
    return RN_OK;
}

/* Rust regex \w (Unicode): letters, marks, decimal digits, connectors. */
static int is_word_cp(int32_t c) {
    if (c < 0) return 0;
    if (c < 128) return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    utf8proc_category_t k = utf8proc_category(c);
    return (k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_ND) || k == UTF8PROC_CATEGORY_PC ||
           c == 0x200C || c == 0x200D;
}

static int is_space_cp(int32_t c) {
    return (c >= 9 && c <= 13) || c == ' ' || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
           c == 0x3000;
}

/* The code point ending at s[n) (-1 if invalid) and its start. */
static int32_t last_cp(const char *s, size_t n, size_t *at) {
    size_t j = n - 1;
    while (j > 0 && ((unsigned char)s[j] & 0xC0) == 0x80 && n - j < 4) j--;
    int32_t cp;
    if ((size_t)tk_utf8_next((const unsigned char *)s + j, n - j, &cp) != n - j) cp = -1, j = n - 1;
    *at = j;
    return cp;
}

/* One split of the added-token pass: [a, b) is token id, or text (id -1). */
typedef struct {
    size_t a, b;
    int32_t id;
} seg;

/* Upstream's AddedVocabulary::find_matches on s (n): the segments, text
 * and tokens, covering s; single_word / lstrip / rstrip as upstream. */
static rn_status find_added(const hf_tok *t, const matcher *m, const char *s, size_t n, seg **out,
                            size_t *nout, size_t *cap) {
    *nout = 0;
    size_t start_off = 0;
#define PUSH(A, B, ID)                                                             \
    do {                                                                           \
        if (*nout == *cap) {                                                       \
            size_t nc = *cap ? 2 * *cap : 16;                                      \
            seg *p = realloc(*out, nc * sizeof *p);                                \
            if (!p) return rni_fail(RN_ERR_NOMEM, "out of memory (added tokens)"); \
            *out = p;                                                              \
            *cap = nc;                                                             \
        }                                                                          \
        (*out)[(*nout)++] = (seg){(A), (B), (ID)};                                 \
    } while (0)
    for (size_t i = 0; m->n && i < n;) {
        unsigned char c = (unsigned char)s[i];
        if (!m->first[c]) {
            i++;
            continue;
        }
        const added_token *hit = NULL;
        for (size_t k = m->start[c]; k < m->start[c + 1]; k++) {
            const added_token *a = &t->added[m->idx[k]];
            if (a->plen <= n - i && memcmp(s + i, a->pattern, a->plen) == 0) {
                hit = a;
                break;
            }
        }
        if (!hit) {
            i++;
            continue;
        }
        size_t start = i, stop = i + hit->plen;
        i = stop;  /* the automaton resumes after the match in every case */
        if (hit->single_word) {
            size_t at;
            int sw = start == 0 || !is_word_cp(last_cp(s, start, &at));
            int32_t nc = -1;
            if (stop < n) tk_utf8_next((const unsigned char *)s + stop, n - stop, &nc);
            int ew = stop == n || !is_word_cp(nc);
            if (!sw || !ew) continue;
        }
        if (hit->lstrip) {
            size_t ns = start;
            while (ns > 0) {
                size_t at;
                if (!is_space_cp(last_cp(s, ns, &at))) break;
                ns = at;
            }
            start = ns > start_off ? ns : start_off;
        }
        if (hit->rstrip) {
            while (stop < n) {
                int32_t cp;
                int l = tk_utf8_next((const unsigned char *)s + stop, n - stop, &cp);
                if (!is_space_cp(cp)) break;
                stop += (size_t)l;
            }
        }
        if (start_off < start) PUSH(start_off, start, -1);
        PUSH(start, stop, hit->id);
        start_off = stop;
    }
    if (start_off < n) PUSH(start_off, n, -1);
#undef PUSH
    return RN_OK;
}

/* --------------------------------------------------------------- encode */

/* Everything one encode call needs, so the tokenizer itself stays
 * read-only (apart from the BPE cache, which has its own lock). */
typedef struct {
    tk_scratch sc;
    tk_buf norm;
    seg *s1, *s2;
    size_t cap1, cap2;
    tk_bpe_scratch *bs;
    int32_t *ids;
    size_t nids, cap;
} enc_ctx;

static void enc_free(enc_ctx *c) {
    tk_scratch_free(&c->sc);
    tk_buf_free(&c->norm);
    free(c->s1);
    free(c->s2);
    tk_bpe_scratch_free(c->bs);
    free(c->ids);
}

static rn_status push_id(enc_ctx *c, int32_t id) {
    if (c->nids == c->cap) {
        size_t nc = c->cap ? 2 * c->cap : 256;
        int32_t *p = realloc(c->ids, nc * sizeof *p);
        if (!p) return rni_fail(RN_ERR_NOMEM, "out of memory (token ids)");
        c->ids = p;
        c->cap = nc;
    }
    c->ids[c->nids++] = id;
    return RN_OK;
}

/* One text segment of the raw pass: normalize, split on normalized added
 * tokens, pre-tokenize, BPE. */
static rn_status encode_segment(const hf_tok *t, enc_ctx *c, const char *s, size_t n, int at_start) {
    rn_status st = tk_normalize(t->norm, s, n, &c->sc, &c->norm);
    if (st) return st;
    tk_pieces *pl = &c->sc.p1;
    tk_pieces_clear(pl);
    size_t ns;
    const char *ns_text = c->norm.p ? c->norm.p : "";
    if ((st = find_added(t, &t->norm_m, ns_text, c->norm.len, &c->s2, &ns, &c->cap2))) return st;
    for (size_t k = 0; k < ns; k++) {
        seg g = c->s2[k];
        if (g.b > g.a && (st = tk_pieces_push(pl, ns_text + g.a, g.b - g.a, g.id, at_start && g.a == 0)))
            return st;
    }
    if ((st = tk_pretokenize(t->pre, &pl, &c->sc))) return st;
    for (size_t k = 0; k < pl->n; k++) {
        const tk_piece *p = &pl->v[k];
        st = p->id >= 0 ? push_id(c, p->id)
                        : tk_bpe_encode(t->bpe, pl->text.p + p->off, p->len, &c->bs, &c->ids, &c->nids, &c->cap);
        if (st) return st;
    }
    return RN_OK;
}

static rn_status encode_all(const hf_tok *t, const char *text, size_t len, int add_special, enc_ctx *c) {
    rn_status st = RN_OK;
    if (add_special) {
        const int32_t *pre = t->tpl_pre;
        size_t npre = t->ntpl_pre;
        if (t->cfg_add_bos >= 0 || t->cfg_add_eos >= 0) npre = t->cfg_add_bos > 0 && t->bos >= 0, pre = &t->bos;
        for (size_t i = 0; i < npre && !st; i++) st = push_id(c, pre[i]);
    }
    size_t n1;
    if (!st) st = find_added(t, &t->raw_m, text ? text : "", len, &c->s1, &n1, &c->cap1);
    for (size_t k = 0; !st && k < n1; k++) {
        seg g = c->s1[k];
        if (g.id >= 0) st = push_id(c, g.id);
        else if (g.b > g.a) st = encode_segment(t, c, text + g.a, g.b - g.a, g.a == 0);
    }
    if (add_special && !st) {
        const int32_t *post = t->tpl_post;
        size_t npost = t->ntpl_post;
        if (t->cfg_add_bos >= 0 || t->cfg_add_eos >= 0) npost = t->cfg_add_eos > 0 && t->eos >= 0, post = &t->eos;
        for (size_t i = 0; i < npost && !st; i++) st = push_id(c, post[i]);
    }
    return st;
}

static rn_status hf_encode_ex(const hf_tok *t, const char *text, size_t len, int add_special, int32_t *ids,
                              size_t cap, size_t *n) {
    enc_ctx c = {0};
    rn_status st = encode_all(t, text, len, add_special, &c);
    if (!st) {
        *n = c.nids;
        size_t k = c.nids < cap ? c.nids : cap;
        if (k) memcpy(ids, c.ids, k * sizeof *ids);
    }
    enc_free(&c);
    return st;
}

static rn_status hf_encode(const rn_tokenizer *tok, const char *text, size_t len, int32_t *ids, size_t cap,
                           size_t *n) {
    return hf_encode_ex((const hf_tok *)tok, text, len, 0, ids, cap, n);
}

static void hf_decode(const rn_tokenizer *tok, int32_t id, const char **piece, size_t *len) {
    const hf_tok *t = (const hf_tok *)tok;
    *piece = t->pieces.p + t->poff[id];
    *len = t->poff[id + 1] - t->poff[id];
}

/* ---------------------------------------------------------- lookups */

static const added_token *added_by_id(const hf_tok *t, int32_t id) {
    for (size_t i = 0; i < t->nadded; i++)
        if (t->added[i].id == id) return &t->added[i];
    return NULL;
}

static const added_token *added_by_content(const hf_tok *t, const char *s, size_t n) {
    for (size_t i = 0; i < t->nadded; i++)
        if (t->added[i].len == n && memcmp(t->added[i].content, s, n) == 0) return &t->added[i];
    return NULL;
}

/* ------------------------------------------------------------- free */

static void hf_free(rn_tokenizer *tok) {
    hf_tok *t = (hf_tok *)tok;
    free(t->file);
    tk_bpe_free(t->bpe);
    tk_normalizer_free(t->norm);
    tk_pretok_free(t->pre);
    tk_decoder_free(t->dec);
    for (size_t i = 0; i < t->nadded; i++) {
        if (t->added[i].pattern != t->added[i].content) free(t->added[i].pattern);
        free(t->added[i].content);
    }
    free(t->added);
    free(t->raw_m.idx);
    free(t->norm_m.idx);
    free(t->tpl_pre);
    free(t->tpl_post);
    tk_buf_free(&t->pieces);
    free(t->poff);
    free(t);
}

/* ------------------------------------------------------------- loading */

/* added_tokens, with upstream's ids: the file's "id" is checked but, as
 * the library does on loading (AddedVocabulary::add_tokens), a token takes
 * the id of the same content already added (whose flags it then
 * replaces), else of the model's vocabulary, else the next free id from
 * the vocabulary's size (in file order). For well-formed files these are
 * the ids written. */
static rn_status load_added(hf_tok *t, const cJSON *arr, const char *file) {
    if (!arr || cJSON_IsNull(arr)) return RN_OK;
    if (!cJSON_IsArray(arr)) return rni_fail(RN_ERR_FORMAT, "%s: added_tokens is not an array", file);
    size_t n = (size_t)cJSON_GetArraySize(arr);
    t->added = calloc(n + 1, sizeof *t->added);
    if (!t->added) return rni_fail(RN_ERR_NOMEM, "out of memory (added tokens)");
    int64_t next_id = (int64_t)tk_bpe_vocab_count(t->bpe);
    size_t i = 0;
    for (const cJSON *x = arr->child; x; x = x->next, i++) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(x, "id"),
                    *content = cJSON_GetObjectItemCaseSensitive(x, "content");
        if (!cJSON_IsNumber(id) || id->valuedouble < 0 || id->valuedouble > 2147483646.0 ||
            id->valuedouble != (double)(int32_t)id->valuedouble || !cJSON_IsString(content))
            return rni_fail(RN_ERR_FORMAT, "%s: added_tokens[%zu]: needs an integer \"id\" and a \"content\" string",
                            file, i);
        added_token tok = {0};
        const char *flags[] = {"special", "lstrip", "rstrip", "single_word", "normalized"};
        int *dst[] = {&tok.special, &tok.lstrip, &tok.rstrip, &tok.single_word, &tok.normalized};
        for (int f = 0; f < 5; f++) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(x, flags[f]);
            /* Upstream's defaults: normalized = !special, the rest false. */
            if (!v || cJSON_IsNull(v)) *dst[f] = f == 4 ? !tok.special : 0;
            else if (cJSON_IsBool(v)) *dst[f] = cJSON_IsTrue(v);
            else return rni_fail(RN_ERR_FORMAT, "%s: added_tokens[%zu].%s is not a boolean", file, i, flags[f]);
        }
        const char *c = content->valuestring;
        size_t cl = strlen(c);
        if (!cl) continue;  /* upstream ignores empty tokens */
        added_token *same = NULL;
        for (size_t k = 0; k < t->nadded && !same; k++)
            if (t->added[k].len == cl && !memcmp(t->added[k].content, c, cl)) same = &t->added[k];
        if (same) {
            tok.content = same->content, tok.id = same->id;
        } else {
            int32_t mid = tk_bpe_token_to_id(t->bpe, c, cl);
            if (mid < 0 && next_id > 2147483646) return rni_fail(RN_ERR_FORMAT, "%s: added_tokens: too many", file);
            tok.id = mid >= 0 ? mid : (int32_t)next_id++;
            if (!(tok.content = strdup(c))) return rni_fail(RN_ERR_NOMEM, "out of memory");
            same = &t->added[t->nadded++];
        }
        tok.len = tok.plen = cl;
        tok.pattern = tok.content;
        *same = tok;
    }
    return RN_OK;
}

/* Normalized added tokens are matched in their normalized form. */
static rn_status normalize_added(hf_tok *t) {
    if (!t->norm) return RN_OK;
    tk_scratch sc = {0};
    tk_buf out = {0};
    rn_status st = RN_OK;
    for (size_t i = 0; i < t->nadded && !st; i++) {
        added_token *a = &t->added[i];
        if (!a->normalized) continue;
        st = tk_normalize(t->norm, a->content, a->len, &sc, &out);
        if (!st && (out.len != a->len || memcmp(out.p, a->content, a->len))) {
            if (!(a->pattern = malloc(out.len + 1))) st = rni_fail(RN_ERR_NOMEM, "out of memory");
            else {
                memcpy(a->pattern, out.p, out.len + 1);
                a->plen = out.len;
            }
        }
    }
    tk_scratch_free(&sc);
    tk_buf_free(&out);
    return st;
}

/* Appends the ids of one post-processor (TemplateProcessing, Bert,
 * Roberta, ByteLevel, Sequence) to the template. */
static rn_status push_tpl(int32_t **v, size_t *n, int32_t id) {
    int32_t *p = realloc(*v, (*n + 1) * sizeof *p);
    if (!p) return rni_fail(RN_ERR_NOMEM, "out of memory");
    *v = p;
    p[(*n)++] = id;
    return RN_OK;
}

static rn_status load_post(hf_tok *t, const cJSON *j, const char *file, const char *field) {
    if (!j || cJSON_IsNull(j)) return RN_OK;
    const cJSON *ty = cJSON_GetObjectItemCaseSensitive(j, "type");
    const char *type = cJSON_IsString(ty) ? ty->valuestring : NULL;
    char sub[300];
    if (!type) return rni_fail(RN_ERR_FORMAT, "%s: %s: missing \"type\"", file, field);
    if (!strcmp(type, "ByteLevel")) return RN_OK;  /* offsets only */
    if (!strcmp(type, "Sequence")) {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(j, "processors");
        if (!cJSON_IsArray(a)) return rni_fail(RN_ERR_FORMAT, "%s: %s: Sequence without \"processors\"", file, field);
        size_t i = 0;
        for (const cJSON *x = a->child; x; x = x->next, i++) {
            snprintf(sub, sizeof sub, "%s.processors[%zu]", field, i);
            rn_status st = load_post(t, x, file, sub);
            if (st) return st;
        }
        return RN_OK;
    }
    if (!strcmp(type, "BertProcessing") || !strcmp(type, "RobertaProcessing")) {
        const cJSON *cls = cJSON_GetObjectItemCaseSensitive(j, "cls"), *sep = cJSON_GetObjectItemCaseSensitive(j, "sep");
        if (!cJSON_IsArray(cls) || !cJSON_IsArray(sep) || !cJSON_IsNumber(cJSON_GetArrayItem(cls, 1)) ||
            !cJSON_IsNumber(cJSON_GetArrayItem(sep, 1)))
            return rni_fail(RN_ERR_FORMAT, "%s: %s: needs \"cls\" and \"sep\" as [token, id]", file, field);
        rn_status st = push_tpl(&t->tpl_pre, &t->ntpl_pre, (int32_t)cJSON_GetArrayItem(cls, 1)->valuedouble);
        return st ? st : push_tpl(&t->tpl_post, &t->ntpl_post, (int32_t)cJSON_GetArrayItem(sep, 1)->valuedouble);
    }
    if (strcmp(type, "TemplateProcessing"))
        return rni_fail(RN_ERR_FORMAT, "%s: %s: post-processor type '%.60s' is not supported", file, field, type);
    const cJSON *single = cJSON_GetObjectItemCaseSensitive(j, "single"),
                *specials = cJSON_GetObjectItemCaseSensitive(j, "special_tokens");
    if (!cJSON_IsArray(single))
        return rni_fail(RN_ERR_FORMAT, "%s: %s.single is missing or not an array", file, field);
    int seen_a = 0;
    size_t i = 0;
    for (const cJSON *x = single->child; x; x = x->next, i++) {
        const cJSON *sp = cJSON_GetObjectItemCaseSensitive(x, "SpecialToken");
        const cJSON *sq = cJSON_GetObjectItemCaseSensitive(x, "Sequence");
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(sp ? sp : sq, "id");
        if (!cJSON_IsString(id))
            return rni_fail(RN_ERR_FORMAT, "%s: %s.single[%zu]: neither SpecialToken nor Sequence with an id", file,
                            field, i);
        if (sq) {
            if (strcmp(id->valuestring, "A") || seen_a)
                return rni_fail(RN_ERR_FORMAT, "%s: %s.single[%zu]: a single template has one Sequence A", file,
                                field, i);
            seen_a = 1;
            continue;
        }
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(specials, id->valuestring);
        const cJSON *ids = cJSON_GetObjectItemCaseSensitive(st, "ids");
        if (!cJSON_IsArray(ids))
            return rni_fail(RN_ERR_FORMAT, "%s: %s.special_tokens['%.40s'] is missing or has no ids", file, field,
                            id->valuestring);
        for (const cJSON *y = ids->child; y; y = y->next) {
            if (!cJSON_IsNumber(y) || y->valuedouble < 0 || y->valuedouble > 2147483646.0)
                return rni_fail(RN_ERR_FORMAT, "%s: %s.special_tokens['%.40s'].ids: not an id", file, field,
                                id->valuestring);
            rn_status s2 = seen_a ? push_tpl(&t->tpl_post, &t->ntpl_post, (int32_t)y->valuedouble)
                                  : push_tpl(&t->tpl_pre, &t->ntpl_pre, (int32_t)y->valuedouble);
            if (s2) return s2;
        }
    }
    return RN_OK;
}

/* bos_token / eos_token of tokenizer_config.json: a string or {"content": s}. */
static const char *config_token(const cJSON *cfg, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (cJSON_IsString(v)) return v->valuestring;
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(v, "content");
    return cJSON_IsString(c) ? c->valuestring : NULL;
}

static rn_status load_config(hf_tok *t, const char *path) {
    t->cfg_add_bos = t->cfg_add_eos = -1;
    struct stat st;
    if (stat(path, &st) != 0) return RN_OK;  /* optional */
    char *data;
    size_t len;
    rn_status s = rn_read_file(path, MAX_TOKENIZER_BYTES, &data, &len);
    if (s) return s;
    cJSON *j = cJSON_ParseWithLength(data, len);
    free(data);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return rni_fail(RN_ERR_FORMAT, "%s: malformed JSON", path);
    }
    const char *keys[2] = {"bos_token", "eos_token"};
    int32_t *dst[2] = {&t->bos, &t->eos};
    for (int k = 0; k < 2 && !s; k++) {
        const char *tok = config_token(j, keys[k]);
        if (!tok) continue;
        int32_t id = rn_tokenizer_token_to_id(&t->base, tok);
        if (id < 0) s = rni_fail(RN_ERR_FORMAT, "%s: %s '%.40s' is not a token", path, keys[k], tok);
        *dst[k] = id;
    }
    const char *flags[2] = {"add_bos_token", "add_eos_token"};
    int *fd[2] = {&t->cfg_add_bos, &t->cfg_add_eos};
    for (int k = 0; k < 2 && !s; k++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, flags[k]);
        if (!v || cJSON_IsNull(v)) continue;
        if (!cJSON_IsBool(v)) s = rni_fail(RN_ERR_FORMAT, "%s: %s is not a boolean", path, flags[k]);
        else *fd[k] = cJSON_IsTrue(v);
    }
    cJSON_Delete(j);
    return s;
}

/* The per-id pieces of the vtable's decode, and the vocabulary size. */
static rn_status build_pieces(hf_tok *t) {
    int32_t V = tk_bpe_vocab_size(t->bpe);
    for (size_t i = 0; i < t->nadded; i++)
        if (t->added[i].id >= V) V = t->added[i].id + 1;
    t->base.vocab_size = V;
    t->poff = malloc(((size_t)V + 1) * sizeof *t->poff);
    if (!t->poff) return rni_fail(RN_ERR_NOMEM, "out of memory (vocabulary of %ld)", (long)V);
    tk_buf one = {0};
    rn_status st = tk_buf_add(&t->pieces, "", 0);
    for (int32_t id = 0; id < V && !st; id++) {
        t->poff[id] = t->pieces.len;
        const added_token *a = added_by_id(t, id);
        size_t n = 0;
        const char *s = a ? NULL : tk_bpe_id_to_token(t->bpe, id, &n);
        if (a) st = tk_buf_add(&t->pieces, a->content, a->len);
        else if (s && !(st = tk_decode_piece(t->dec, s, n, &one))) st = tk_buf_add(&t->pieces, one.p, one.len);
    }
    t->poff[V] = t->pieces.len;
    tk_buf_free(&one);
    return st;
}

/* The GPT-2 ByteLevel pipeline, for vocab.json + merges.txt. */
static rn_status gpt2_pipeline(hf_tok *t, const char *file) {
    cJSON *pre = cJSON_Parse("{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":true}");
    cJSON *dec = cJSON_Parse("{\"type\":\"ByteLevel\"}");
    rn_status st = pre && dec ? RN_OK : rni_fail(RN_ERR_NOMEM, "out of memory");
    if (!st) st = tk_pretok_load(pre, file, "pre_tokenizer", &t->pre);
    if (!st) st = tk_decoder_load(dec, file, "decoder", &t->dec);
    cJSON_Delete(pre);
    cJSON_Delete(dec);
    /* GPT-2's end of text, special as in its tokenizer.json. */
    int32_t eot = st ? -1 : tk_bpe_token_to_id(t->bpe, "<|endoftext|>", 13);
    if (eot >= 0) {
        t->added = calloc(1, sizeof *t->added);
        if (!t->added || !(t->added[0].content = strdup("<|endoftext|>"))) return rni_fail(RN_ERR_NOMEM, "out of memory");
        t->added[0].pattern = t->added[0].content;
        t->added[0].len = t->added[0].plen = 13;
        t->added[0].id = eot;
        t->added[0].special = 1;
        t->nadded = 1;
        t->bos = t->eos = eot;
    }
    return st;
}

static int is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

/* tokenizer.json text: the pipeline and model. */
static rn_status load_json(hf_tok *t, const char *data, size_t len, const char *file) {
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(data, len, &end, 0);
    if (!j) return rni_fail(RN_ERR_FORMAT, "%s: malformed or truncated JSON near byte %zu", file,
                            end ? (size_t)(end - data) : (size_t)0);
    rn_status st = RN_OK;
    if (!cJSON_IsObject(j)) st = rni_fail(RN_ERR_FORMAT, "%s: not a JSON object (with a model)", file);
    const cJSON *model = st ? NULL : cJSON_GetObjectItemCaseSensitive(j, "model");
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(model, "type");
    if (!st && !cJSON_IsObject(model)) st = rni_fail(RN_ERR_FORMAT, "%s: model is missing", file);
    /* Files without model.type are BPE when they have merges, as upstream guesses. */
    if (!st && cJSON_IsString(mt) && strcmp(mt->valuestring, "BPE"))
        st = rni_fail(RN_ERR_FORMAT, "%s: model.type: '%.40s' is not supported (only BPE)", file, mt->valuestring);
    if (!st && !mt && !cJSON_GetObjectItemCaseSensitive(model, "merges"))
        st = rni_fail(RN_ERR_FORMAT, "%s: model.type is missing and there are no merges (only BPE is supported)", file);
    const char *refuse[] = {"truncation", "padding"};
    for (int k = 0; k < 2 && !st; k++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, refuse[k]);
        if (v && !cJSON_IsNull(v)) st = rni_fail(RN_ERR_FORMAT, "%s: %s: only null is supported", file, refuse[k]);
    }
    if (!st) st = tk_bpe_load(model, file, &t->bpe);
    if (!st) st = tk_normalizer_load(cJSON_GetObjectItemCaseSensitive(j, "normalizer"), file, "normalizer", &t->norm);
    if (!st) st = tk_pretok_load(cJSON_GetObjectItemCaseSensitive(j, "pre_tokenizer"), file, "pre_tokenizer", &t->pre);
    if (!st) st = tk_decoder_load(cJSON_GetObjectItemCaseSensitive(j, "decoder"), file, "decoder", &t->dec);
    if (!st) st = load_post(t, cJSON_GetObjectItemCaseSensitive(j, "post_processor"), file, "post_processor");
    if (!st) st = load_added(t, cJSON_GetObjectItemCaseSensitive(j, "added_tokens"), file);
    cJSON_Delete(j);
    return st;
}

static rn_status load_impl(hf_tok *t, const char *path) {
    char buf[4096], cfg[4096];
    const char *file = path;
    int dir = is_dir(path);
    if (dir) {
        snprintf(buf, sizeof buf, "%s/tokenizer.json", path);
        file = buf;
    }
    /* The directory holding the file, for tokenizer_config.json. */
    if (dir) snprintf(cfg, sizeof cfg, "%s/tokenizer_config.json", path);
    else {
        const char *sl = strrchr(path, '/');
        if (sl) snprintf(cfg, sizeof cfg, "%.*s/tokenizer_config.json", (int)(sl - path), path);
        else snprintf(cfg, sizeof cfg, "tokenizer_config.json");
    }
    rn_status st;
    char *data = NULL, *merges = NULL;
    size_t len = 0, mlen = 0;
    if (dir && !exists(buf)) {
        char vj[4096], mt[4096];
        snprintf(vj, sizeof vj, "%s/vocab.json", path);
        snprintf(mt, sizeof mt, "%s/merges.txt", path);
        if (!exists(vj) || !exists(mt))
            return rni_fail(RN_ERR_IO, "%s: no tokenizer.json (nor vocab.json + merges.txt) in the directory", path);
        st = rn_read_file(vj, MAX_TOKENIZER_BYTES, &data, &len);
        if (!st) st = rn_read_file(mt, MAX_TOKENIZER_BYTES, &merges, &mlen);
        if (!st) st = tk_bpe_load_files(data, vj, merges, mlen, mt, &t->bpe);
        if (!st) st = gpt2_pipeline(t, vj);
        if (!(t->file = strdup(vj))) st = rni_fail(RN_ERR_NOMEM, "out of memory");
    } else {
        st = rn_read_file(file, MAX_TOKENIZER_BYTES, &data, &len);
        if (!st) st = load_json(t, data, len, file);
        if (!(t->file = strdup(file))) st = rni_fail(RN_ERR_NOMEM, "out of memory");
    }
    free(data);
    free(merges);
    if (st) return st;
    int32_t V = tk_bpe_vocab_size(t->bpe);
    for (size_t i = 0; i < t->nadded; i++) if (t->added[i].id >= V) V = t->added[i].id + 1;
    for (size_t i = 0; i < t->ntpl_pre + t->ntpl_post; i++) {
        int32_t id = i < t->ntpl_pre ? t->tpl_pre[i] : t->tpl_post[i - t->ntpl_pre];
        if (id >= V) return rni_fail(RN_ERR_FORMAT, "%s: post_processor: id %ld is beyond the vocabulary (%ld)", file, (long)id, (long)V);
    }
    if ((st = normalize_added(t))) return st;
    if ((st = matcher_build(&t->raw_m, t->added, t->nadded, 0))) return st;
    if ((st = matcher_build(&t->norm_m, t->added, t->nadded, 1))) return st;
    if ((st = build_pieces(t))) return st;
    if (t->ntpl_pre) t->bos = t->tpl_pre[0];
    if (t->ntpl_post) t->eos = t->tpl_post[t->ntpl_post - 1];
    return load_config(t, cfg);
}

static pthread_once_t bytelevel_once = PTHREAD_ONCE_INIT;

rn_status rn_tokenizer_load(const char *path, rn_tokenizer **out) {
    if (!path || !out) return rni_fail(RN_ERR_ARG, "rn_tokenizer_load: NULL argument");
    *out = NULL;
    pthread_once(&bytelevel_once, tk_bytelevel_init);
    hf_tok *t = calloc(1, sizeof *t);
    if (!t) return rni_fail(RN_ERR_NOMEM, "out of memory (tokenizer)");
    t->base.name = "bpe";
    t->base.encode = hf_encode;
    t->base.decode = hf_decode;
    t->base.free = hf_free;
    t->base.impl = t;
    t->bos = t->eos = -1;
    rn_status st = load_impl(t, path);
    if (st) {
        hf_free(&t->base);
        return st;
    }
    *out = &t->base;
    return RN_OK;
}

/* ------------------------------------------------------ public helpers */

static const hf_tok *as_hf(const rn_tokenizer *t) {
    return t && t->free == hf_free ? (const hf_tok *)t : NULL;
}

int32_t rn_tokenizer_bos(const rn_tokenizer *tok) {
    const hf_tok *t = as_hf(tok);
    return t ? t->bos : -1;
}

int32_t rn_tokenizer_eos(const rn_tokenizer *tok) {
    const hf_tok *t = as_hf(tok);
    return t ? t->eos : -1;
}

rn_status rn_tokenizer_encode_special(const rn_tokenizer *tok, const char *text, size_t len, int add_special,
                                      int32_t *ids, size_t cap, size_t *n) {
    if (!tok || !n || (len && !text) || (cap && !ids))
        return rni_fail(RN_ERR_ARG, "rn_tokenizer_encode_special: NULL argument");
    *n = 0;
    const hf_tok *t = as_hf(tok);
    if (!t) return rn_tokenizer_encode(tok, text, len, ids, cap, n);
    return hf_encode_ex(t, text, len, add_special, ids, cap, n);
}

int32_t rn_tokenizer_token_to_id(const rn_tokenizer *tok, const char *token) {
    const hf_tok *t = as_hf(tok);
    if (!token) return -1;
    if (!t) {
        /* The byte tokenizer: one-byte tokens. */
        return tok && token[0] && !token[1] ? (int32_t)(unsigned char)token[0] : -1;
    }
    size_t n = strlen(token);
    const added_token *a = added_by_content(t, token, n);
    return a ? a->id : tk_bpe_token_to_id(t->bpe, token, n);
}

const char *rn_tokenizer_id_to_token(const rn_tokenizer *tok, int32_t id) {
    const hf_tok *t = as_hf(tok);
    if (!t || id < 0 || id >= t->base.vocab_size) return NULL;
    const added_token *a = added_by_id(t, id);
    size_t n;
    return a ? a->content : tk_bpe_id_to_token(t->bpe, id, &n);
}

rn_status rn_tokenizer_decode_all(const rn_tokenizer *tok, const int32_t *ids, size_t n, int skip_special,
                                  char *out, size_t cap, size_t *len) {
    if (!tok || !len || (n && !ids) || (cap && !out))
        return rni_fail(RN_ERR_ARG, "rn_tokenizer_decode_all: NULL argument");
    *len = 0;
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= tok->vocab_size)
            return rni_fail(RN_ERR_ARG, "token id %ld outside the vocabulary [0, %d)", (long)ids[i], tok->vocab_size);
    const hf_tok *t = as_hf(tok);
    tk_buf res = {0};
    rn_status st = RN_OK;
    if (!t) {
        /* Not a tokenizer.json: the pieces, concatenated. */
        for (size_t i = 0; i < n && !st; i++) {
            const char *p;
            size_t pl;
            tok->decode(tok, ids[i], &p, &pl);
            st = tk_buf_add(&res, p, pl);
        }
    } else {
        /* Upstream's decode: token strings (added tokens in their matched
         * form), special ones dropped when asked, through the decoder. */
        tk_pieces toks = {0}, tmp = {0};
        for (size_t i = 0; i < n && !st; i++) {
            const added_token *a = added_by_id(t, ids[i]);
            size_t tl = 0;
            const char *s = a ? a->pattern : tk_bpe_id_to_token(t->bpe, ids[i], &tl);
            if (a) tl = a->plen;
            if (!s) continue;
            const added_token *sp = added_by_content(t, s, tl);
            if (skip_special && sp && sp->special) continue;
            st = tk_pieces_push(&toks, s, tl, -1, 0);
        }
        if (!st) st = tk_decode_chain(t->dec, &toks, &tmp, &res);
        tk_pieces_free(&toks);
        tk_pieces_free(&tmp);
    }
    if (!st) {
        *len = res.len;
        size_t k = res.len < cap ? res.len : cap;
        if (k) memcpy(out, res.p, k);
        if (res.len < cap) out[res.len] = 0;
    }
    tk_buf_free(&res);
    return st;
}
