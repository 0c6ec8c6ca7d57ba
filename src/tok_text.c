/* tok_text.c: the text side of the Hugging Face tokenizer: byte strings and
 * piece lists, UTF-8, PCRE2 regexes, the GPT-2 byte map, and the
 * normalizers, pre-tokenizers and decoders of tokenizer.json, each one
 * small function with the semantics of the `tokenizers` library. */
#define _GNU_SOURCE
#define PCRE2_CODE_UNIT_WIDTH 8
#include "tok.h"
#include "internal.h"

#include <cjson/cJSON.h>
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

/* ------------------------------------------------------ buffers, pieces */

rn_status tk_buf_reserve(tk_buf *b, size_t extra) {
    if (b->len + extra <= b->cap) return RN_OK;
    size_t nc = b->cap ? b->cap : 256;
    while (nc < b->len + extra) nc *= 2;
    char *p = realloc(b->p, nc);
    if (!p) return rni_fail(RN_ERR_NOMEM, "out of memory (%zu bytes of text)", nc);
    b->p = p;
    b->cap = nc;
    return RN_OK;
}

rn_status tk_buf_add(tk_buf *b, const void *s, size_t n) {
    if (tk_buf_reserve(b, n + 1)) return RN_ERR_NOMEM;
    if (n) memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
    return RN_OK;
}

void tk_buf_free(tk_buf *b) {
    free(b->p);
    *b = (tk_buf){0};
}

rn_status tk_pieces_push(tk_pieces *l, const char *s, size_t len, int32_t id, int at_start) {
    if (l->n == l->cap) {
        size_t nc = l->cap ? 2 * l->cap : 64;
        tk_piece *p = realloc(l->v, nc * sizeof *p);
        if (!p) return rni_fail(RN_ERR_NOMEM, "out of memory (text pieces)");
        l->v = p;
        l->cap = nc;
    }
    size_t off = l->text.len;
    if (tk_buf_add(&l->text, s, len)) return RN_ERR_NOMEM;
    l->v[l->n++] = (tk_piece){off, len, id, at_start};
    return RN_OK;
}

void tk_pieces_clear(tk_pieces *l) {
    l->n = 0;
    l->text.len = 0;
}

void tk_pieces_free(tk_pieces *l) {
    tk_buf_free(&l->text);
    free(l->v);
    *l = (tk_pieces){0};
}

void tk_scratch_free(tk_scratch *s) {
    tk_buf_free(&s->a);
    tk_buf_free(&s->b);
    free(s->m);
    tk_pieces_free(&s->p1);
    tk_pieces_free(&s->p2);
    *s = (tk_scratch){0};
}

/* ----------------------------------------------------------------- UTF-8 */

int tk_utf8_next(const unsigned char *s, size_t n, int32_t *cp) {
    unsigned c = s[0];
    *cp = -1;
    if (c < 0x80) {
        *cp = (int32_t)c;
        return 1;
    }
    int len;
    int32_t v;
    unsigned lo = 0x80, hi = 0xBF;  /* allowed range of the second byte */
    if (c >= 0xC2 && c <= 0xDF) len = 2, v = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3, v = c & 0x0F;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;  /* no surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4, v = c & 0x07;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else
        return 1;
    if ((size_t)len > n) return 1;
    for (int i = 1; i < len; i++) {
        unsigned b = s[i];
        if (i == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF)) return 1;
        v = (v << 6) | (int32_t)(b & 0x3F);
    }
    *cp = v;
    return len;
}

/* Length of the maximal subpart of an ill-formed sequence at s (the unit
 * that Rust's from_utf8_lossy replaces by one U+FFFD): the longest prefix
 * of a well-formed sequence, at least 1 byte. */
static size_t utf8_bad_len(const unsigned char *s, size_t n) {
    unsigned c = s[0], lo = 0x80, hi = 0xBF;
    size_t len;
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c >= 0xE0 && c <= 0xEF) len = 3, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
    else if (c >= 0xF0 && c <= 0xF4) len = 4, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
    else return 1;
    size_t i = 1;
    for (; i < len && i < n; i++) {
        unsigned b = s[i];
        if (i == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF)) break;
    }
    return i;
}

rn_status tk_utf8_put(tk_buf *b, int32_t cp) {
    char u[4];
    size_t n;
    if (cp < 0x80) u[0] = (char)cp, n = 1;
    else if (cp < 0x800) u[0] = (char)(0xC0 | (cp >> 6)), u[1] = (char)(0x80 | (cp & 0x3F)), n = 2;
    else if (cp < 0x10000)
        u[0] = (char)(0xE0 | (cp >> 12)), u[1] = (char)(0x80 | ((cp >> 6) & 0x3F)),
        u[2] = (char)(0x80 | (cp & 0x3F)), n = 3;
    else
        u[0] = (char)(0xF0 | (cp >> 18)), u[1] = (char)(0x80 | ((cp >> 12) & 0x3F)),
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F)), u[3] = (char)(0x80 | (cp & 0x3F)), n = 4;
    return tk_buf_add(b, u, n);
}

/* Rust's char::is_whitespace (the White_Space property). */
static int is_ws(int32_t c) {
    return (c >= 9 && c <= 13) || c == ' ' || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
           c == 0x3000;
}

/* Rust's char::is_numeric: general categories Nd, Nl, No. */
static int is_numeric(int32_t c) {
    if (c < 0) return 0;
    if (c < 128) return c >= '0' && c <= '9';
    utf8proc_category_t k = utf8proc_category(c);
    return k == UTF8PROC_CATEGORY_ND || k == UTF8PROC_CATEGORY_NL || k == UTF8PROC_CATEGORY_NO;
}

/* The library's is_punc: ASCII punctuation or a Unicode P* category. */
static int is_punct(int32_t c) {
    if (c < 0) return 0;
    if (c < 128) return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) ||
                        (c >= 123 && c <= 126);
    utf8proc_category_t k = utf8proc_category(c);
    return k >= UTF8PROC_CATEGORY_PC && k <= UTF8PROC_CATEGORY_PO;
}

/* -------------------------------------------------------- GPT-2 byte map */

/* Printable Latin-1 bytes stand for themselves; the other 68 bytes take
 * the code points 256, 257, ... in byte order (GPT-2's bytes_to_unicode). */
int32_t tk_byte_char[256];
static int16_t char_byte_tab[324];

void tk_bytelevel_init(void) {
    int n = 0;
    for (int b = 0; b < 256; b++) {
        int keep = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        tk_byte_char[b] = keep ? b : 256 + n++;
    }
    for (int i = 0; i < 324; i++) char_byte_tab[i] = -1;
    for (int b = 0; b < 256; b++) char_byte_tab[tk_byte_char[b]] = (int16_t)b;
}

int tk_char_byte(int32_t cp) { return cp >= 0 && cp < 324 ? char_byte_tab[cp] : -1; }

/* ----------------------------------------------------------------- regex */

/* A literal pattern is matched with memmem (much faster than a regex for
 * the one-character Replace of SentencePiece-style files). */
struct tk_regex {
    pcre2_code *code;   /* NULL for a literal */
    int jit;
    char *lit;
    size_t nlit;
};

/* PCRE2's \s (UCP) still counts U+180E MONGOLIAN VOWEL SEPARATOR as a
 * space, which Unicode stopped doing in 6.3 and the library's Oniguruma
 * does not: rewrites \s, \S and classes holding them so U+180E is not a
 * space. Outside a class \s -> (?:(?!\x{180E})\s), \S -> (?:\S|\x{180E});
 * a class with \s (or \S) gets the same guard or alternative around it. */
static rn_status fix_space_class(const char *p, size_t n, tk_buf *out) {
    static const char NOT180E[] = "(?:(?!\\x{180E})", OR180E[] = "|\\x{180E})";
    rn_status st = RN_OK;
    for (size_t i = 0; i < n && !st;) {
        if (p[i] == '\\' && i + 1 < n) {
            if (p[i + 1] == 's') st = tk_buf_add(out, "(?:(?!\\x{180E})\\s)", strlen("(?:(?!\\x{180E})\\s)"));
            else if (p[i + 1] == 'S') st = tk_buf_add(out, "(?:\\S|\\x{180E})", strlen("(?:\\S|\\x{180E})"));
            else st = tk_buf_add(out, p + i, 2);
            i += 2;
            continue;
        }
        if (p[i] != '[') {
            st = tk_buf_add(out, p + i, 1);
            i++;
            continue;
        }
        /* A class: find its end, noting \s / \S and negation. */
        size_t j = i + 1;
        int neg = j < n && p[j] == '^', has_s = 0, has_S = 0;
        if (neg) j++;
        if (j < n && p[j] == ']') j++;
        while (j < n && p[j] != ']') {
            if (p[j] == '\\' && j + 1 < n) {
                has_s |= p[j + 1] == 's';
                has_S |= p[j + 1] == 'S';
                j += 2;
            } else if (p[j] == '[' && j + 1 < n && p[j + 1] == ':') {
                const char *e = memchr(p + j + 2, ']', n - j - 2);
                j = e ? (size_t)(e - p) + 1 : n;
            } else
                j++;
        }
        if (j < n) j++;  /* the ']' */
        int guard = has_s != has_S && (has_s ? !neg : neg);  /* PCRE2 matches U+180E, Oniguruma not */
        int alt = has_s != has_S && !guard;                  /* Oniguruma matches it, PCRE2 not */
        if (guard) st = tk_buf_add(out, NOT180E, sizeof NOT180E - 1);
        if (alt && !st) st = tk_buf_add(out, "(?:", 3);
        if (!st) st = tk_buf_add(out, p + i, j - i);
        if (!st && guard) st = tk_buf_add(out, ")", 1);
        if (!st && alt) st = tk_buf_add(out, OR180E, sizeof OR180E - 1);
        i = j;
    }
    if (!st && !out->p) st = tk_buf_add(out, "", 0);
    return st;
}

rn_status tk_regex_compile(const char *pattern, size_t len, int literal, const char *where,
                           tk_regex **out) {
    *out = NULL;
    if (literal) {
        tk_regex *re = calloc(1, sizeof *re);
        if (!re || !(re->lit = malloc(len + 1))) {
            free(re);
            return rni_fail(RN_ERR_NOMEM, "out of memory (pattern)");
        }
        memcpy(re->lit, pattern, len);
        re->lit[len] = 0;
        re->nlit = len;
        *out = re;
        return RN_OK;
    }
    int err;
    PCRE2_SIZE eoff;
    uint32_t opt = PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF;
    /* Refused patterns are reported on the file's own text. */
    pcre2_code *c = pcre2_compile((PCRE2_SPTR)pattern, len, opt, &err, &eoff, NULL);
    if (c) {
        pcre2_code_free(c);
        tk_buf fixed = {0};
        if (fix_space_class(pattern, len, &fixed)) return RN_ERR_NOMEM;
        c = pcre2_compile((PCRE2_SPTR)fixed.p, fixed.len, opt, &err, &eoff, NULL);
        tk_buf_free(&fixed);
    }
    if (!c) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        return rni_fail(RN_ERR_FORMAT, "%s: regex '%.60s' refused by PCRE2 at offset %zu: %s", where,
                        pattern, (size_t)eoff, (const char *)msg);
    }
    tk_regex *re = malloc(sizeof *re);
    if (!re) {
        pcre2_code_free(c);
        return rni_fail(RN_ERR_NOMEM, "out of memory (regex)");
    }
    re->code = c;
    re->lit = NULL;
    re->nlit = 0;
    re->jit = pcre2_jit_compile(c, PCRE2_JIT_COMPLETE) == 0;
    *out = re;
    return RN_OK;
}

void tk_regex_free(tk_regex *re) {
    if (!re) return;
    if (re->code) pcre2_code_free(re->code);
    free(re->lit);
    free(re);
}

static rn_status push_match(size_t **m, size_t *mcap, size_t *nm, size_t a, size_t b) {
    if (*nm + 1 > *mcap) {
        size_t nc = *mcap ? 2 * *mcap : 256;
        size_t *p = realloc(*m, nc * 2 * sizeof *p);
        if (!p) return rni_fail(RN_ERR_NOMEM, "out of memory (matches)");
        *m = p;
        *mcap = nc;
    }
    (*m)[2 * *nm] = a;
    (*m)[2 * *nm + 1] = b;
    (*nm)++;
    return RN_OK;
}

/* Non-overlapping occurrences, left to right (an empty literal matches
 * nothing, as its empty matches would be dropped). */
static rn_status literal_find_all(const tk_regex *re, const char *s, size_t n, size_t **m, size_t *mcap,
                                  size_t *nm) {
    if (!re->nlit) return RN_OK;
    const char *p = s, *end = s + n;
    while ((size_t)(end - p) >= re->nlit) {
        const char *q = re->nlit == 1 ? memchr(p, re->lit[0], (size_t)(end - p))
                                      : memmem(p, (size_t)(end - p), re->lit, re->nlit);
        if (!q) break;
        if (push_match(m, mcap, nm, (size_t)(q - s), (size_t)(q - s) + re->nlit)) return RN_ERR_NOMEM;
        p = q + re->nlit;
    }
    return RN_OK;
}

rn_status tk_regex_find_all(const tk_regex *re, const char *s, size_t n, size_t **m, size_t *mcap,
                            size_t *nm) {
    *nm = 0;
    if (!re->code) return literal_find_all(re, s, n, m, mcap, nm);
    pcre2_match_data *md = pcre2_match_data_create(1, NULL);
    if (!md) return rni_fail(RN_ERR_NOMEM, "out of memory (regex match)");
    rn_status st = RN_OK;
    size_t pos = 0;
    while (pos <= n) {
        int rc = re->jit ? pcre2_jit_match(re->code, (PCRE2_SPTR)s, n, pos, 0, md, NULL)
                         : pcre2_match(re->code, (PCRE2_SPTR)s, n, pos, 0, md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof msg);
            st = rni_fail(RN_ERR_FORMAT, "regex match failed: %s", (const char *)msg);
            break;
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t a = ov[0], b = ov[1];
        if (b > a) {
            if (*nm + 1 > *mcap) {
                size_t nc = *mcap ? 2 * *mcap : 256;
                size_t *p = realloc(*m, nc * 2 * sizeof *p);
                if (!p) {
                    st = rni_fail(RN_ERR_NOMEM, "out of memory (regex matches)");
                    break;
                }
                *m = p;
                *mcap = nc;
            }
            (*m)[2 * *nm] = a;
            (*m)[2 * *nm + 1] = b;
            (*nm)++;
            pos = b;
        } else {
            /* An empty match: go on one character later (as oniguruma's
             * iterator does); empty pieces are dropped anyway. */
            if (a >= n) break;
            int32_t cp;
            pos = a + (size_t)tk_utf8_next((const unsigned char *)s + a, n - a, &cp);
        }
    }
    pcre2_match_data_free(md);
    return st;
}

/* ------------------------------------------------------ JSON helpers */

static const char *jstr(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* A boolean field with a default; -1 when present but not a boolean. */
static int jbool(const cJSON *o, const char *key, int def) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) return def;
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : -1;
}

static rn_status bad(const char *file, const char *field, const char *what) {
    return rni_fail(RN_ERR_FORMAT, "%s: %s: %s", file, field, what);
}

/* A "pattern" object: {"String": s} or {"Regex": r}. */
static rn_status load_pattern(const cJSON *o, const char *file, const char *field, tk_regex **re) {
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(o, "pattern");
    char where[300];
    snprintf(where, sizeof where, "%s: %s.pattern", file, field);
    const char *s = jstr(p, "String"), *r = jstr(p, "Regex");
    if (s) return tk_regex_compile(s, strlen(s), 1, where, re);
    if (r) return tk_regex_compile(r, strlen(r), 0, where, re);
    return bad(file, where + strlen(file) + 2, "neither {\"String\": ...} nor {\"Regex\": ...}");
}

/* A single-character field (Metaspace replacement, Strip content). */
static rn_status load_char(const cJSON *o, const char *key, const char *file, const char *field,
                           int32_t *cp) {
    const char *s = jstr(o, key);
    char f[300];
    snprintf(f, sizeof f, "%s.%s", field, key);
    if (!s || !*s) return bad(file, f, "missing or not a one-character string");
    size_t n = strlen(s);
    if ((size_t)tk_utf8_next((const unsigned char *)s, n, cp) != n || *cp < 0)
        return bad(file, f, "not a single character");
    return RN_OK;
}

/* ------------------------------------------------------------ normalizers */

typedef enum { N_SEQ, N_PREPEND, N_REPLACE, N_NFC, N_NFKC, N_NFD, N_NFKD, N_LOWER, N_STRIP } nkind;

struct tk_normalizer {
    nkind kind;
    tk_normalizer **sub;  /* (nsub) for Sequence */
    size_t nsub;
    char *str;            /* Prepend: text; Replace: content */
    tk_regex *re;         /* Replace: pattern */
    int left, right;      /* Strip */
};

void tk_normalizer_free(tk_normalizer *n) {
    if (!n) return;
    for (size_t i = 0; i < n->nsub; i++) tk_normalizer_free(n->sub[i]);
    free(n->sub);
    free(n->str);
    tk_regex_free(n->re);
    free(n);
}

rn_status tk_normalizer_load(const cJSON *j, const char *file, const char *field, tk_normalizer **out) {
    *out = NULL;
    if (!j || cJSON_IsNull(j)) return RN_OK;
    const char *type = jstr(j, "type");
    if (!type) return bad(file, field, "missing \"type\"");
    tk_normalizer *n = calloc(1, sizeof *n);
    if (!n) return rni_fail(RN_ERR_NOMEM, "out of memory");
    rn_status s = RN_OK;
    char sub[300];
    if (!strcmp(type, "Sequence")) {
        n->kind = N_SEQ;
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(j, "normalizers");
        if (!cJSON_IsArray(a)) s = bad(file, field, "Sequence without a \"normalizers\" array");
        size_t k = s ? 0 : (size_t)cJSON_GetArraySize(a);
        if (!s && k && !(n->sub = calloc(k, sizeof *n->sub))) s = rni_fail(RN_ERR_NOMEM, "out of memory");
        for (const cJSON *x = s ? NULL : a->child; x && !s; x = x->next) {
            snprintf(sub, sizeof sub, "%s.normalizers[%zu]", field, n->nsub);
            s = tk_normalizer_load(x, file, sub, &n->sub[n->nsub]);
            if (!s && n->sub[n->nsub]) n->nsub++;
        }
    } else if (!strcmp(type, "Prepend")) {
        n->kind = N_PREPEND;
        const char *p = jstr(j, "prepend");
        if (!p) s = bad(file, field, "Prepend without a \"prepend\" string");
        else if (!(n->str = strdup(p))) s = rni_fail(RN_ERR_NOMEM, "out of memory");
    } else if (!strcmp(type, "Replace")) {
        n->kind = N_REPLACE;
        const char *c = jstr(j, "content");
        if (!c) s = bad(file, field, "Replace without a \"content\" string");
        else if (!(n->str = strdup(c))) s = rni_fail(RN_ERR_NOMEM, "out of memory");
        if (!s) s = load_pattern(j, file, field, &n->re);
    } else if (!strcmp(type, "NFC")) n->kind = N_NFC;
    else if (!strcmp(type, "NFKC")) n->kind = N_NFKC;
    else if (!strcmp(type, "NFD")) n->kind = N_NFD;
    else if (!strcmp(type, "NFKD")) n->kind = N_NFKD;
    else if (!strcmp(type, "Lowercase")) n->kind = N_LOWER;
    else if (!strcmp(type, "Strip")) {
        n->kind = N_STRIP;
        n->left = jbool(j, "strip_left", 1);
        n->right = jbool(j, "strip_right", 1);
        if (n->left < 0 || n->right < 0) s = bad(file, field, "strip_left/strip_right are not booleans");
    } else {
        snprintf(sub, sizeof sub, "normalizer type '%.60s' is not supported", type);
        s = bad(file, field, sub);
    }
    if (s) {
        tk_normalizer_free(n);
        return s;
    }
    *out = n;
    return RN_OK;
}

/* Unicode normalization of the valid UTF-8 runs of s (invalid bytes stay). */
static rn_status unicode_map(const char *s, size_t n, int opts, tk_buf *out) {
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        int32_t cp;
        while (j < n) {
            int l = tk_utf8_next((const unsigned char *)s + j, n - j, &cp);
            if (cp < 0) break;
            j += (size_t)l;
        }
        if (j > i) {
            utf8proc_uint8_t *r = NULL;
            utf8proc_ssize_t k = utf8proc_map((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(j - i), &r,
                                              (utf8proc_option_t)(opts | UTF8PROC_STABLE));
            if (k < 0) {
                free(r);
                return rni_fail(RN_ERR_FORMAT, "Unicode normalization failed: %s", utf8proc_errmsg(k));
            }
            rn_status st = tk_buf_add(out, r, (size_t)k);
            free(r);
            if (st) return st;
        }
        if (j < n) {
            if (tk_buf_add(out, s + j, 1)) return RN_ERR_NOMEM;
            j++;
        }
        i = j;
    }
    return RN_OK;
}

/* Rust's str::to_lowercase per character (utf8proc's simple mapping, plus
 * the one multi-character mapping outside final sigma: U+0130). */
static rn_status lowercase(const char *s, size_t n, tk_buf *out) {
    for (size_t i = 0; i < n;) {
        int32_t cp;
        int l = tk_utf8_next((const unsigned char *)s + i, n - i, &cp);
        rn_status st;
        if (cp < 0) st = tk_buf_add(out, s + i, 1);
        else if (cp < 128) {
            char c = (char)(cp >= 'A' && cp <= 'Z' ? cp + 32 : cp);
            st = tk_buf_add(out, &c, 1);
        } else if (cp == 0x130) st = tk_buf_add(out, "i\xCC\x87", 3);
        else st = tk_utf8_put(out, utf8proc_tolower(cp));
        if (st) return st;
        i += (size_t)l;
    }
    return RN_OK;
}

/* Replaces every match of re in s by content. */
static rn_status replace_all(const tk_regex *re, const char *content, const char *s, size_t n,
                             tk_scratch *sc, tk_buf *out) {
    size_t nm;
    rn_status st = tk_regex_find_all(re, s, n, &sc->m, &sc->mcap, &nm);
    size_t prev = 0, cl = strlen(content);
    for (size_t k = 0; !st && k < nm; k++) {
        st = tk_buf_add(out, s + prev, sc->m[2 * k] - prev);
        if (!st) st = tk_buf_add(out, content, cl);
        prev = sc->m[2 * k + 1];
    }
    if (!st) st = tk_buf_add(out, s + prev, n - prev);
    return st;
}

/* One normalizer step: in (n bytes) -> out (appended). */
static rn_status normalize_one(const tk_normalizer *nz, const char *s, size_t n, tk_scratch *sc,
                               tk_buf *out) {
    switch (nz->kind) {
    case N_PREPEND:
        /* The library prepends only to a non-empty string. */
        if (n && tk_buf_add(out, nz->str, strlen(nz->str))) return RN_ERR_NOMEM;
        return tk_buf_add(out, s, n);
    case N_REPLACE: return replace_all(nz->re, nz->str, s, n, sc, out);
    case N_NFC: return unicode_map(s, n, UTF8PROC_COMPOSE, out);
    case N_NFKC: return unicode_map(s, n, UTF8PROC_COMPOSE | UTF8PROC_COMPAT, out);
    case N_NFD: return unicode_map(s, n, UTF8PROC_DECOMPOSE, out);
    case N_NFKD: return unicode_map(s, n, UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT, out);
    case N_LOWER: return lowercase(s, n, out);
    case N_STRIP: {
        size_t a = 0, b = n;
        while (nz->left && a < b) {
            int32_t cp;
            int l = tk_utf8_next((const unsigned char *)s + a, b - a, &cp);
            if (!is_ws(cp)) break;
            a += (size_t)l;
        }
        while (nz->right && b > a) {
            size_t k = b - 1;
            while (k > a && ((unsigned char)s[k] & 0xC0) == 0x80 && b - k < 4) k--;
            int32_t cp;
            if ((size_t)tk_utf8_next((const unsigned char *)s + k, b - k, &cp) != b - k || !is_ws(cp)) break;
            b = k;
        }
        return tk_buf_add(out, s + a, b - a);
    }
    case N_SEQ: break;
    }
    return RN_OK;
}

static rn_status normalize_rec(const tk_normalizer *nz, tk_buf *cur, tk_buf *tmp, tk_scratch *sc) {
    if (nz->kind == N_SEQ) {
        for (size_t i = 0; i < nz->nsub; i++)
            if (normalize_rec(nz->sub[i], cur, tmp, sc)) return RN_ERR_NOMEM;
        return RN_OK;
    }
    tmp->len = 0;
    if (normalize_one(nz, cur->p ? cur->p : "", cur->len, sc, tmp)) return RN_ERR_NOMEM;
    tk_buf t = *cur;
    *cur = *tmp;
    *tmp = t;
    return RN_OK;
}

rn_status tk_normalize(const tk_normalizer *nz, const char *s, size_t n, tk_scratch *sc, tk_buf *out) {
    out->len = 0;
    if (tk_buf_add(out, s, n)) return RN_ERR_NOMEM;
    if (!nz) return RN_OK;
    return normalize_rec(nz, out, &sc->a, sc);
}

/* -------------------------------------------------------- pre-tokenizers */

typedef enum { P_SEQ, P_BYTELEVEL, P_SPLIT, P_METASPACE, P_DIGITS, P_PUNCT, P_WHITESPACE, P_WSSPLIT } pkind;

/* SplitDelimiterBehavior. */
typedef enum { B_REMOVED, B_ISOLATED, B_PREVIOUS, B_NEXT, B_CONTIGUOUS } behavior;

typedef enum { PREPEND_ALWAYS, PREPEND_NEVER, PREPEND_FIRST } prepend_scheme;

struct tk_pretok {
    pkind kind;
    tk_pretok **sub;
    size_t nsub;
    tk_regex *re;            /* Split, ByteLevel (use_regex), Whitespace */
    behavior beh;
    int invert;
    int add_prefix_space;    /* ByteLevel */
    int32_t repl;            /* Metaspace replacement */
    char repl_s[5];
    prepend_scheme scheme;   /* Metaspace */
    int split;               /* Metaspace */
    int individual;          /* Digits */
};

/* GPT-2's pre-tokenizer regex (ByteLevel with use_regex). */
static const char GPT2_RE[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

void tk_pretok_free(tk_pretok *p) {
    if (!p) return;
    for (size_t i = 0; i < p->nsub; i++) tk_pretok_free(p->sub[i]);
    free(p->sub);
    tk_regex_free(p->re);
    free(p);
}

static rn_status load_behavior(const cJSON *j, const char *file, const char *field, behavior def,
                               behavior *b) {
    const char *s = jstr(j, "behavior");
    *b = def;
    if (!s) return RN_OK;
    static const char *names[] = {"Removed", "Isolated", "MergedWithPrevious", "MergedWithNext",
                                  "Contiguous"};
    for (int i = 0; i < 5; i++)
        if (!strcmp(s, names[i])) {
            *b = (behavior)i;
            return RN_OK;
        }
    return bad(file, field, "unknown \"behavior\"");
}

rn_status tk_pretok_load(const cJSON *j, const char *file, const char *field, tk_pretok **out) {
    *out = NULL;
    if (!j || cJSON_IsNull(j)) return RN_OK;
    const char *type = jstr(j, "type");
    if (!type) return bad(file, field, "missing \"type\"");
    tk_pretok *p = calloc(1, sizeof *p);
    if (!p) return rni_fail(RN_ERR_NOMEM, "out of memory");
    rn_status s = RN_OK;
    char sub[300];
    if (!strcmp(type, "Sequence")) {
        p->kind = P_SEQ;
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(j, "pretokenizers");
        if (!cJSON_IsArray(a)) s = bad(file, field, "Sequence without a \"pretokenizers\" array");
        size_t k = s ? 0 : (size_t)cJSON_GetArraySize(a);
        if (!s && k && !(p->sub = calloc(k, sizeof *p->sub))) s = rni_fail(RN_ERR_NOMEM, "out of memory");
        for (const cJSON *x = s ? NULL : a->child; x && !s; x = x->next) {
            snprintf(sub, sizeof sub, "%s.pretokenizers[%zu]", field, p->nsub);
            s = tk_pretok_load(x, file, sub, &p->sub[p->nsub]);
            if (!s && p->sub[p->nsub]) p->nsub++;
        }
    } else if (!strcmp(type, "ByteLevel")) {
        p->kind = P_BYTELEVEL;
        p->add_prefix_space = jbool(j, "add_prefix_space", 1);
        int use_regex = jbool(j, "use_regex", 1);
        if (p->add_prefix_space < 0 || use_regex < 0 || jbool(j, "trim_offsets", 1) < 0)
            s = bad(file, field, "ByteLevel flags are not booleans");
        /* trim_offsets only changes offsets, which we do not report. */
        if (!s && use_regex) {
            snprintf(sub, sizeof sub, "%s: %s", file, field);
            s = tk_regex_compile(GPT2_RE, sizeof GPT2_RE - 1, 0, sub, &p->re);
        }
    } else if (!strcmp(type, "Split")) {
        p->kind = P_SPLIT;
        s = load_pattern(j, file, field, &p->re);
        if (!s) s = load_behavior(j, file, field, B_ISOLATED, &p->beh);
        p->invert = jbool(j, "invert", 0);
        if (!s && p->invert < 0) s = bad(file, field, "\"invert\" is not a boolean");
    } else if (!strcmp(type, "Metaspace")) {
        p->kind = P_METASPACE;
        s = load_char(j, "replacement", file, field, &p->repl);
        const char *sch = jstr(j, "prepend_scheme");
        int aps = jbool(j, "add_prefix_space", -2);
        p->scheme = PREPEND_ALWAYS;
        if (sch && !strcmp(sch, "never")) p->scheme = PREPEND_NEVER;
        else if (sch && !strcmp(sch, "first")) p->scheme = PREPEND_FIRST;
        else if (sch && strcmp(sch, "always")) s = s ? s : bad(file, field, "unknown \"prepend_scheme\"");
        if (aps == 0) p->scheme = PREPEND_NEVER;  /* the legacy flag, as upstream reads it */
        p->split = jbool(j, "split", 1);
        if (!s && p->split < 0) s = bad(file, field, "\"split\" is not a boolean");
    } else if (!strcmp(type, "Digits")) {
        p->kind = P_DIGITS;
        p->individual = jbool(j, "individual_digits", 0);
    } else if (!strcmp(type, "Punctuation")) {
        p->kind = P_PUNCT;
        s = load_behavior(j, file, field, B_ISOLATED, &p->beh);
    } else if (!strcmp(type, "Whitespace")) {
        p->kind = P_WHITESPACE;
        snprintf(sub, sizeof sub, "%s: %s", file, field);
        s = tk_regex_compile("\\w+|[^\\w\\s]+", strlen("\\w+|[^\\w\\s]+"), 0, sub, &p->re);
    } else if (!strcmp(type, "WhitespaceSplit")) {
        p->kind = P_WSSPLIT;
    } else {
        snprintf(sub, sizeof sub, "pre-tokenizer type '%.60s' is not supported", type);
        s = bad(file, field, sub);
    }
    if (s) {
        tk_pretok_free(p);
        return s;
    }
    if (p->kind == P_METASPACE) {
        tk_buf t = {0};
        if (tk_utf8_put(&t, p->repl)) {
            tk_pretok_free(p);
            return RN_ERR_NOMEM;
        }
        memcpy(p->repl_s, t.p, t.len + 1);
        tk_buf_free(&t);
    }
    *out = p;
    return RN_OK;
}

int tk_pretok_has(const tk_pretok *p, const char *type) {
    if (!p) return 0;
    if (p->kind == P_SEQ) {
        for (size_t i = 0; i < p->nsub; i++)
            if (tk_pretok_has(p->sub[i], type)) return 1;
        return 0;
    }
    return (!strcmp(type, "ByteLevel") && p->kind == P_BYTELEVEL) ||
           (!strcmp(type, "Metaspace") && p->kind == P_METASPACE);
}

/* Splits piece text s (n) at the matches m (nm (start, end) pairs) with the
 * library's NormalizedString::split: the pieces between and at matches,
 * kept, dropped or merged by behavior; empty pieces dropped. */
static rn_status split_apply(const char *s, size_t n, const size_t *m, size_t nm, int invert, behavior b,
                             int at_start, tk_pieces *out) {
    /* Walk the segments (start, end, is_match) covering s in order. */
    size_t prev = 0, k = 0;
    size_t cur_a = 0, cur_b = 0;  /* the piece being built */
    int have = 0, prev_match = 0;
    rn_status st = RN_OK;
#define EMIT(a, b_)                                                                   \
    do {                                                                              \
        if ((b_) > (a) && (st = tk_pieces_push(out, s + (a), (b_) - (a), -1, at_start && (a) == 0))) \
            return st;                                                                \
    } while (0)
    while (prev < n || k < nm) {
        size_t a, e;
        int match;
        if (k < nm && m[2 * k] == prev) a = m[2 * k], e = m[2 * k + 1], match = 1, k++;
        else a = prev, e = k < nm ? m[2 * k] : n, match = 0;
        if (e == a && !match) break;
        prev = e;
        if (invert) match = !match;
        switch (b) {
        case B_REMOVED:
            if (!match) EMIT(a, e);
            break;
        case B_ISOLATED: EMIT(a, e); break;
        case B_CONTIGUOUS:
            if (have && match == prev_match) cur_b = e;
            else {
                if (have) EMIT(cur_a, cur_b);
                cur_a = a, cur_b = e, have = 1;
            }
            break;
        case B_PREVIOUS:
            if (match && !prev_match && have) cur_b = e;
            else {
                if (have) EMIT(cur_a, cur_b);
                cur_a = a, cur_b = e, have = 1;
            }
            break;
        case B_NEXT:
            /* A match opens a piece; the non-matches after it join it. */
            if (!match && prev_match && have) cur_b = e;
            else if (!match && have && !prev_match) {
                EMIT(cur_a, cur_b);
                cur_a = a, cur_b = e;
            } else {
                if (have) EMIT(cur_a, cur_b);
                cur_a = a, cur_b = e, have = 1;
            }
            break;
        }
        prev_match = match;
    }
    if (have) EMIT(cur_a, cur_b);
#undef EMIT
    return RN_OK;
}

/* Matches of a character class: each character for which pred holds (or,
 * with pred NULL, each character equal to target). */
static rn_status class_matches(const char *s, size_t n, int (*pred)(int32_t), int32_t target, tk_scratch *sc,
                               size_t *nm) {
    *nm = 0;
    for (size_t i = 0; i < n;) {
        int32_t cp;
        size_t l = (size_t)tk_utf8_next((const unsigned char *)s + i, n - i, &cp);
        if (pred ? pred(cp) : cp == target) {
            if (*nm + 1 > sc->mcap) {
                size_t nc = sc->mcap ? 2 * sc->mcap : 256;
                size_t *p = realloc(sc->m, nc * 2 * sizeof *p);
                if (!p) return rni_fail(RN_ERR_NOMEM, "out of memory");
                sc->m = p;
                sc->mcap = nc;
            }
            sc->m[2 * *nm] = i;
            sc->m[2 * *nm + 1] = i + l;
            (*nm)++;
        }
        i += l;
    }
    return RN_OK;
}

/* One pre-tokenizer (not a Sequence) over one text piece. */
static rn_status pretok_piece(const tk_pretok *p, const tk_piece *pc, const char *s, tk_scratch *sc,
                              tk_pieces *out) {
    size_t n = pc->len, nm = 0;
    rn_status st = RN_OK;
    switch (p->kind) {
    case P_BYTELEVEL: {
        /* Prefix space, regex split, then every byte as its GPT-2 character. */
        tk_buf *t = &sc->b;
        t->len = 0;
        if (p->add_prefix_space && (n == 0 || s[0] != ' ') && tk_buf_add(t, " ", 1)) return RN_ERR_NOMEM;
        if (tk_buf_add(t, s, n)) return RN_ERR_NOMEM;
        size_t m1[2] = {0, t->len};
        const size_t *mm = m1;
        nm = 1;
        if (p->re) {
            if ((st = tk_regex_find_all(p->re, t->p, t->len, &sc->m, &sc->mcap, &nm))) return st;
            mm = sc->m;
        }
        /* Isolated: gaps between matches are pieces too. */
        size_t prev = 0;
        for (size_t k = 0; k <= nm; k++) {
            size_t a = k < nm ? mm[2 * k] : t->len, e = k < nm ? mm[2 * k + 1] : t->len;
            for (int pass = 0; pass < 2; pass++) {
                size_t x = pass ? a : prev, y = pass ? e : a;
                if (y <= x) continue;
                if (out->n == out->cap && tk_pieces_push(out, "", 0, -1, 0) == RN_OK) out->n--;
                if (out->n == out->cap) return RN_ERR_NOMEM;
                if (tk_buf_reserve(&out->text, 2 * (y - x) + 1)) return RN_ERR_NOMEM;
                size_t off = out->text.len;
                char *w = out->text.p + off;
                for (size_t i = x; i < y; i++) {
                    int32_t c = tk_byte_char[(unsigned char)t->p[i]];
                    if (c < 128) *w++ = (char)c;
                    else *w++ = (char)(0xC0 | (c >> 6)), *w++ = (char)(0x80 | (c & 0x3F));
                }
                out->text.len = (size_t)(w - out->text.p);
                out->text.p[out->text.len] = 0;
                out->v[out->n++] = (tk_piece){off, out->text.len - off, -1, pc->at_start && x == 0};
            }
            prev = e;
        }
        return RN_OK;
    }
    case P_SPLIT:
        if ((st = tk_regex_find_all(p->re, s, n, &sc->m, &sc->mcap, &nm))) return st;
        return split_apply(s, n, sc->m, nm, p->invert, p->beh, pc->at_start, out);
    case P_WHITESPACE:
        if ((st = tk_regex_find_all(p->re, s, n, &sc->m, &sc->mcap, &nm))) return st;
        return split_apply(s, n, sc->m, nm, 1, B_REMOVED, pc->at_start, out);
    case P_WSSPLIT:
        if ((st = class_matches(s, n, is_ws, 0, sc, &nm))) return st;
        return split_apply(s, n, sc->m, nm, 0, B_REMOVED, pc->at_start, out);
    case P_DIGITS:
        if ((st = class_matches(s, n, is_numeric, 0, sc, &nm))) return st;
        return split_apply(s, n, sc->m, nm, 0, p->individual ? B_ISOLATED : B_CONTIGUOUS, pc->at_start, out);
    case P_PUNCT:
        if ((st = class_matches(s, n, is_punct, 0, sc, &nm))) return st;
        return split_apply(s, n, sc->m, nm, 0, p->beh, pc->at_start, out);
    case P_METASPACE: {
        /* Spaces become the replacement; it is prepended per the scheme;
         * then the piece splits before each replacement. */
        tk_buf *t = &sc->b;
        t->len = 0;
        size_t rl = strlen(p->repl_s);
        for (size_t i = 0; i < n; i++)
            if ((s[i] == ' ' ? tk_buf_add(t, p->repl_s, rl) : tk_buf_add(t, s + i, 1))) return RN_ERR_NOMEM;
        int starts = t->len >= rl && memcmp(t->p, p->repl_s, rl) == 0;
        int pre = !starts && (p->scheme == PREPEND_ALWAYS || (p->scheme == PREPEND_FIRST && pc->at_start));
        if (pre) {
            if (tk_buf_reserve(t, rl + 1)) return RN_ERR_NOMEM;
            memmove(t->p + rl, t->p, t->len + 1);
            memcpy(t->p, p->repl_s, rl);
            t->len += rl;
        }
        if (!p->split) return tk_pieces_push(out, t->p, t->len, -1, pc->at_start);
        if ((st = class_matches(t->p, t->len, NULL, p->repl, sc, &nm))) return st;
        /* t is sc->b; split_apply copies out of it before it changes. */
        return split_apply(t->p, t->len, sc->m, nm, 0, B_NEXT, pc->at_start, out);
    }
    case P_SEQ: break;
    }
    return RN_OK;
}

rn_status tk_pretokenize(const tk_pretok *pt, tk_pieces **in, tk_scratch *sc) {
    if (!pt) return RN_OK;
    if (pt->kind == P_SEQ) {
        for (size_t i = 0; i < pt->nsub; i++)
            if (tk_pretokenize(pt->sub[i], in, sc)) return RN_ERR_NOMEM;
        return RN_OK;
    }
    tk_pieces *src = *in, *dst = src == &sc->p1 ? &sc->p2 : &sc->p1;
    tk_pieces_clear(dst);
    for (size_t i = 0; i < src->n; i++) {
        const tk_piece *pc = &src->v[i];
        rn_status st = pc->id >= 0 ? tk_pieces_push(dst, src->text.p + pc->off, pc->len, pc->id, pc->at_start)
                                   : pretok_piece(pt, pc, src->text.p + pc->off, sc, dst);
        if (st) return st;
    }
    *in = dst;
    return RN_OK;
}

/* -------------------------------------------------------------- decoders */

typedef enum { D_SEQ, D_BYTELEVEL, D_METASPACE, D_REPLACE, D_BYTEFALLBACK, D_FUSE, D_STRIP } dkind;

struct tk_decoder {
    dkind kind;
    tk_decoder **sub;
    size_t nsub;
    tk_regex *re;           /* Replace */
    char *content;          /* Replace */
    int32_t ch;             /* Metaspace replacement, Strip content */
    prepend_scheme scheme;  /* Metaspace */
    long start, stop;       /* Strip */
};

void tk_decoder_free(tk_decoder *d) {
    if (!d) return;
    for (size_t i = 0; i < d->nsub; i++) tk_decoder_free(d->sub[i]);
    free(d->sub);
    tk_regex_free(d->re);
    free(d->content);
    free(d);
}

rn_status tk_decoder_load(const cJSON *j, const char *file, const char *field, tk_decoder **out) {
    *out = NULL;
    if (!j || cJSON_IsNull(j)) return RN_OK;
    const char *type = jstr(j, "type");
    if (!type) return bad(file, field, "missing \"type\"");
    tk_decoder *d = calloc(1, sizeof *d);
    if (!d) return rni_fail(RN_ERR_NOMEM, "out of memory");
    rn_status s = RN_OK;
    char sub[300];
    if (!strcmp(type, "Sequence")) {
        d->kind = D_SEQ;
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(j, "decoders");
        if (!cJSON_IsArray(a)) s = bad(file, field, "Sequence without a \"decoders\" array");
        size_t k = s ? 0 : (size_t)cJSON_GetArraySize(a);
        if (!s && k && !(d->sub = calloc(k, sizeof *d->sub))) s = rni_fail(RN_ERR_NOMEM, "out of memory");
        for (const cJSON *x = s ? NULL : a->child; x && !s; x = x->next) {
            snprintf(sub, sizeof sub, "%s.decoders[%zu]", field, d->nsub);
            s = tk_decoder_load(x, file, sub, &d->sub[d->nsub]);
            if (!s && d->sub[d->nsub]) d->nsub++;
        }
    } else if (!strcmp(type, "ByteLevel")) d->kind = D_BYTELEVEL;
    else if (!strcmp(type, "ByteFallback")) d->kind = D_BYTEFALLBACK;
    else if (!strcmp(type, "Fuse")) d->kind = D_FUSE;
    else if (!strcmp(type, "Metaspace")) {
        d->kind = D_METASPACE;
        s = load_char(j, "replacement", file, field, &d->ch);
        const char *sch = jstr(j, "prepend_scheme");
        d->scheme = sch && !strcmp(sch, "never") ? PREPEND_NEVER
                    : sch && !strcmp(sch, "first") ? PREPEND_FIRST : PREPEND_ALWAYS;
        if (jbool(j, "add_prefix_space", -2) == 0) d->scheme = PREPEND_NEVER;
    } else if (!strcmp(type, "Replace")) {
        d->kind = D_REPLACE;
        const char *c = jstr(j, "content");
        if (!c) s = bad(file, field, "Replace without a \"content\" string");
        else if (!(d->content = strdup(c))) s = rni_fail(RN_ERR_NOMEM, "out of memory");
        if (!s) s = load_pattern(j, file, field, &d->re);
    } else if (!strcmp(type, "Strip")) {
        d->kind = D_STRIP;
        s = load_char(j, "content", file, field, &d->ch);
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(j, "start"), *b = cJSON_GetObjectItemCaseSensitive(j, "stop");
        if (!s && (!cJSON_IsNumber(a) || !cJSON_IsNumber(b) || a->valuedouble < 0 || b->valuedouble < 0))
            s = bad(file, field, "Strip needs numbers \"start\" and \"stop\"");
        if (!s) d->start = (long)a->valuedouble, d->stop = (long)b->valuedouble;
    } else {
        snprintf(sub, sizeof sub, "decoder type '%.60s' is not supported", type);
        s = bad(file, field, sub);
    }
    if (s) {
        tk_decoder_free(d);
        return s;
    }
    *out = d;
    return RN_OK;
}

int tk_decoder_has(const tk_decoder *d, const char *type) {
    if (!d) return 0;
    if (d->kind == D_SEQ) {
        for (size_t i = 0; i < d->nsub; i++)
            if (tk_decoder_has(d->sub[i], type)) return 1;
        return 0;
    }
    return (!strcmp(type, "ByteLevel") && d->kind == D_BYTELEVEL) ||
           (!strcmp(type, "ByteFallback") && d->kind == D_BYTEFALLBACK) ||
           (!strcmp(type, "Metaspace") && d->kind == D_METASPACE);
}

/* "<0xNN>" -> NN, else -1 (the ByteFallback decoder's test). */
static int byte_token(const char *s, size_t n) {
    if (n != 6 || memcmp(s, "<0x", 3) || s[5] != '>') return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

/* The token's bytes with the GPT-2 map undone, if every character is in
 * the map; else the token as is (upstream's ByteLevel decoder). */
static rn_status unmap_bytes(const char *s, size_t n, tk_buf *out) {
    size_t start = out->len;
    for (size_t i = 0; i < n;) {
        int32_t cp;
        int l = tk_utf8_next((const unsigned char *)s + i, n - i, &cp);
        int b = tk_char_byte(cp);
        if (b < 0) {
            out->len = start;
            return tk_buf_add(out, s, n);
        }
        char c = (char)b;
        if (tk_buf_add(out, &c, 1)) return RN_ERR_NOMEM;
        i += (size_t)l;
    }
    return RN_OK;
}

/* Rust's String::from_utf8_lossy: each maximal ill-formed subpart -> U+FFFD. */
static rn_status lossy_utf8(const char *s, size_t n, tk_buf *out) {
    for (size_t i = 0; i < n;) {
        int32_t cp;
        int l = tk_utf8_next((const unsigned char *)s + i, n - i, &cp);
        if (cp >= 0) {
            if (tk_buf_add(out, s + i, (size_t)l)) return RN_ERR_NOMEM;
            i += (size_t)l;
        } else {
            if (tk_buf_add(out, "\xEF\xBF\xBD", 3)) return RN_ERR_NOMEM;
            i += utf8_bad_len((const unsigned char *)s + i, n - i);
        }
    }
    return RN_OK;
}

static int utf8_valid(const char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        int32_t cp;
        i += (size_t)tk_utf8_next((const unsigned char *)s + i, n - i, &cp);
        if (cp < 0) return 0;
    }
    return 1;
}

/* Replaces each character ch of s by rep (rn bytes; 0 drops it). */
static rn_status replace_char(const char *s, size_t n, int32_t ch, const char *rep, size_t rn, tk_buf *out) {
    for (size_t i = 0; i < n;) {
        int32_t cp;
        int l = tk_utf8_next((const unsigned char *)s + i, n - i, &cp);
        if ((cp == ch ? tk_buf_add(out, rep, rn) : tk_buf_add(out, s + i, (size_t)l))) return RN_ERR_NOMEM;
        i += (size_t)l;
    }
    return RN_OK;
}

/* Strip decoder on one token: up to start leading and stop trailing ch. */
static rn_status strip_token(const tk_decoder *d, const char *s, size_t n, tk_buf *out) {
    size_t a = 0, b = n;
    for (long k = 0; k < d->start && a < b; k++) {
        int32_t cp;
        int l = tk_utf8_next((const unsigned char *)s + a, b - a, &cp);
        if (cp != d->ch) break;
        a += (size_t)l;
    }
    for (long k = 0; k < d->stop && b > a; k++) {
        size_t j = b - 1;
        while (j > a && ((unsigned char)s[j] & 0xC0) == 0x80) j--;
        int32_t cp;
        tk_utf8_next((const unsigned char *)s + j, b - j, &cp);
        if (cp != d->ch) break;
        b = j;
    }
    return tk_buf_add(out, s + a, b - a);
}

/* One decoder (not a Sequence): in -> out (a new list). */
static rn_status decode_one(const tk_decoder *d, const tk_pieces *in, tk_pieces *out, tk_buf *t) {
    rn_status st = RN_OK;
    tk_pieces_clear(out);
    switch (d->kind) {
    case D_BYTELEVEL: {
        tk_buf raw = {0};
        for (size_t i = 0; i < in->n && !st; i++)
            st = unmap_bytes(in->text.p + in->v[i].off, in->v[i].len, &raw);
        t->len = 0;
        if (!st) st = lossy_utf8(raw.p ? raw.p : "", raw.len, t);
        tk_buf_free(&raw);
        return st ? st : tk_pieces_push(out, t->p ? t->p : "", t->len, -1, 0);
    }
    case D_FUSE:
        t->len = 0;
        for (size_t i = 0; i < in->n && !st; i++) st = tk_buf_add(t, in->text.p + in->v[i].off, in->v[i].len);
        return st ? st : tk_pieces_push(out, t->p ? t->p : "", t->len, -1, 0);
    case D_BYTEFALLBACK: {
        /* Runs of <0xNN> tokens become their bytes if those are valid
         * UTF-8, else one U+FFFD per byte, as upstream. */
        tk_buf run = {0};
        for (size_t i = 0; i <= in->n && !st; i++) {
            const char *s = i < in->n ? in->text.p + in->v[i].off : NULL;
            size_t n = i < in->n ? in->v[i].len : 0;
            int b = s ? byte_token(s, n) : -1;
            if (b >= 0) {
                char c = (char)b;
                st = tk_buf_add(&run, &c, 1);
                continue;
            }
            if (run.len) {
                if (utf8_valid(run.p, run.len)) st = tk_pieces_push(out, run.p, run.len, -1, 0);
                else
                    for (size_t k = 0; k < run.len && !st; k++) st = tk_pieces_push(out, "\xEF\xBF\xBD", 3, -1, 0);
                run.len = 0;
            }
            if (s && !st) st = tk_pieces_push(out, s, n, -1, 0);
        }
        tk_buf_free(&run);
        return st;
    }
    case D_METASPACE:
    case D_REPLACE:
    case D_STRIP:
        for (size_t i = 0; i < in->n && !st; i++) {
            const char *s = in->text.p + in->v[i].off;
            size_t n = in->v[i].len;
            t->len = 0;
            if (d->kind == D_METASPACE)
                st = replace_char(s, n, d->ch, " ", i == 0 && d->scheme != PREPEND_NEVER ? 0 : 1, t);
            else if (d->kind == D_STRIP) st = strip_token(d, s, n, t);
            else {
                tk_scratch sc = {0};
                st = replace_all(d->re, d->content, s, n, &sc, t);
                tk_scratch_free(&sc);
            }
            if (!st) st = tk_pieces_push(out, t->p ? t->p : "", t->len, -1, 0);
        }
        return st;
    case D_SEQ: break;
    }
    return RN_OK;
}

static rn_status decode_rec(const tk_decoder *d, tk_pieces **cur, tk_pieces **other, tk_buf *t) {
    if (d->kind == D_SEQ) {
        for (size_t i = 0; i < d->nsub; i++)
            if (decode_rec(d->sub[i], cur, other, t)) return RN_ERR_NOMEM;
        return RN_OK;
    }
    if (decode_one(d, *cur, *other, t)) return RN_ERR_NOMEM;
    tk_pieces *x = *cur;
    *cur = *other;
    *other = x;
    return RN_OK;
}

rn_status tk_decode_chain(const tk_decoder *d, tk_pieces *toks, tk_pieces *tmp, tk_buf *out) {
    tk_pieces *cur = toks, *other = tmp;
    tk_buf t = {0};
    rn_status st = d ? decode_rec(d, &cur, &other, &t) : RN_OK;
    tk_buf_free(&t);
    out->len = 0;
    for (size_t i = 0; i < cur->n && !st; i++) {
        if (!d && i && tk_buf_add(out, " ", 1)) return RN_ERR_NOMEM;
        st = tk_buf_add(out, cur->text.p + cur->v[i].off, cur->v[i].len);
    }
    if (!st && !out->p) st = tk_buf_add(out, "", 0);
    return st;
}

/* The per-token steps of the chain on one token, in place in *cur. */
static rn_status piece_rec(const tk_decoder *d, tk_buf *cur, tk_buf *tmp) {
    if (d->kind == D_SEQ) {
        for (size_t i = 0; i < d->nsub; i++)
            if (piece_rec(d->sub[i], cur, tmp)) return RN_ERR_NOMEM;
        return RN_OK;
    }
    tmp->len = 0;
    rn_status st = RN_OK;
    const char *s = cur->p ? cur->p : "";
    size_t n = cur->len;
    int b;
    switch (d->kind) {
    case D_BYTELEVEL: st = unmap_bytes(s, n, tmp); break;
    case D_BYTEFALLBACK:
        b = byte_token(s, n);
        if (b >= 0) {
            char c = (char)b;
            st = tk_buf_add(tmp, &c, 1);
        } else
            st = tk_buf_add(tmp, s, n);
        break;
    case D_METASPACE: st = replace_char(s, n, d->ch, " ", 1, tmp); break;
    case D_REPLACE: {
        tk_scratch sc = {0};
        st = replace_all(d->re, d->content, s, n, &sc, tmp);
        tk_scratch_free(&sc);
        break;
    }
    default: return RN_OK;  /* Fuse, Strip: sequence-level only */
    }
    if (st) return st;
    tk_buf x = *cur;
    *cur = *tmp;
    *tmp = x;
    return RN_OK;
}

rn_status tk_decode_piece(const tk_decoder *d, const char *tok, size_t n, tk_buf *out) {
    out->len = 0;
    if (tk_buf_add(out, tok, n)) return RN_ERR_NOMEM;
    if (!d) return RN_OK;
    tk_buf tmp = {0};
    rn_status st = piece_rec(d, out, &tmp);
    tk_buf_free(&tmp);
    return st;
}
