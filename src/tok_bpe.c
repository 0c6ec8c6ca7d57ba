/* tok_bpe.c: the BPE model of Hugging Face tokenizers: the vocabulary
 * (string <-> id), the merge table ((left id, right id) -> (rank, merged
 * id)), the merge loop, and a bounded cache of encoded pre-tokens.
 *
 * The merge loop is the library's Word::merge_all: a binary heap of
 * candidate merges keyed by (rank, position), the symbols of the word in a
 * doubly linked list; popping the lowest rank merges two neighbours and
 * pushes the (at most two) new pairs they form. Stale heap entries are
 * recognised by looking the pair up again, so nothing is ever rescanned:
 * O(n log n) for a word of n characters. */
#define _POSIX_C_SOURCE 200809L
#include "tok.h"
#include "internal.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* --------------------------------------------------------------- hashing */

/* A fast 64-bit hash of short strings: 8 bytes at a time, multiply-mixed. */
static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 0x9E3779B97F4A7C15ull ^ (n * 0xff51afd7ed558ccdull);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = (h ^ w) * 0xbf58476d1ce4e5b9ull;
        h ^= h >> 31;
        s += 8;
        n -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, s, n);
    h = (h ^ w) * 0x94d049bb133111ebull;
    return h ^ (h >> 29);
}

static uint64_t hash_pair(uint64_t k) {
    k = (k ^ (k >> 33)) * 0xff51afd7ed558ccdull;
    k = (k ^ (k >> 33)) * 0xc4ceb9fe1a85ec53ull;
    return k ^ (k >> 33);
}

/* ----------------------------------------------------------------- model */

/* A merge-table slot: key = left << 32 | right; empty when new_id < 0. */
typedef struct {
    uint64_t key;
    int32_t rank, new_id;
} merge_slot;

/* One cache entry: a pre-token (up to CACHE_KEY bytes) and its ids. */
#define CACHE_KEY 46
#define CACHE_IDS 12
#define CACHE_SLOTS 65536
typedef struct {
    uint64_t hash;
    uint8_t klen, nids;
    char key[CACHE_KEY];
    int32_t ids[CACHE_IDS];
} cache_slot;

struct tk_bpe {
    tk_buf strings;          /* every token string, back to back */
    size_t *off;             /* (nid): offset of id's string, or SIZE_MAX for a hole */
    uint32_t *len;           /* (nid) */
    int32_t nid;             /* largest id + 1 */
    size_t nentries;         /* tokens in the vocabulary (upstream's vocab size) */
    int32_t *vslot;          /* (vmask + 1) open-addressed: id or -1 */
    size_t vmask;
    merge_slot *mslot;       /* (mmask + 1) open-addressed */
    size_t mmask;
    int32_t char_id[128];    /* ASCII character -> id (-1 none), when no prefix/suffix */
    int32_t byte_id[256];    /* "<0xNN>" -> id, for byte_fallback */
    char *unk_token, *prefix, *suffix;
    int32_t unk_id;          /* -1: no unk token (or not in the vocabulary) */
    int fuse_unk, byte_fallback, ignore_merges;
    int split_meta;          /* words may be cut before each "x\u2581", x != "\u2581" */
    cache_slot *cache;       /* (CACHE_SLOTS), guarded by lock */
    pthread_mutex_t lock;
};

int32_t tk_bpe_vocab_size(const tk_bpe *m) { return m->nid; }
size_t tk_bpe_vocab_count(const tk_bpe *m) { return m->nentries; }
int tk_bpe_byte_fallback(const tk_bpe *m) { return m->byte_fallback; }

const char *tk_bpe_id_to_token(const tk_bpe *m, int32_t id, size_t *len) {
    if (id < 0 || id >= m->nid || m->off[id] == SIZE_MAX) return NULL;
    *len = m->len[id];
    return m->strings.p + m->off[id];
}

int32_t tk_bpe_token_to_id(const tk_bpe *m, const char *s, size_t n) {
    for (size_t i = hash_bytes(s, n) & m->vmask;; i = (i + 1) & m->vmask) {
        int32_t id = m->vslot[i];
        if (id < 0) return -1;
        if (m->len[id] == n && memcmp(m->strings.p + m->off[id], s, n) == 0) return id;
    }
}

static int merge_find(const tk_bpe *m, int32_t a, int32_t b, int32_t *rank) {
    uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    for (size_t i = hash_pair(key) & m->mmask;; i = (i + 1) & m->mmask) {
        const merge_slot *s = &m->mslot[i];
        if (s->new_id < 0) return -1;
        if (s->key == key) {
            *rank = s->rank;
            return s->new_id;
        }
    }
}

void tk_bpe_free(tk_bpe *m) {
    if (!m) return;
    tk_buf_free(&m->strings);
    free(m->off);
    free(m->len);
    free(m->vslot);
    free(m->mslot);
    free(m->unk_token);
    free(m->prefix);
    free(m->suffix);
    free(m->cache);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

static size_t table_size(size_t n) {
    size_t s = 16;
    while (s < 2 * n) s <<= 1;
    return s;
}

/* A vocabulary entry as read from a file, before the tables are built. */
typedef struct {
    const char *s;
    size_t n;
    int32_t id;
} vocab_entry;

/* Builds the id arrays and the string hash from entries (n): refuses a
 * duplicate id or token string. what names the file and field. */
static rn_status build_vocab(tk_bpe *m, const vocab_entry *e, size_t n, const char *what) {
    int32_t nid = 0;
    for (size_t i = 0; i < n; i++)
        if (e[i].id >= nid) nid = e[i].id + 1;
    m->nid = nid;
    m->nentries = n;
    m->off = malloc(((size_t)nid + 1) * sizeof *m->off);
    m->len = calloc((size_t)nid + 1, sizeof *m->len);
    m->vmask = table_size(n) - 1;
    m->vslot = malloc((m->vmask + 1) * sizeof *m->vslot);
    if (!m->off || !m->len || !m->vslot) return rni_fail(RN_ERR_NOMEM, "out of memory (%s)", what);
    for (int32_t i = 0; i < nid; i++) m->off[i] = SIZE_MAX;
    memset(m->vslot, 0xff, (m->vmask + 1) * sizeof *m->vslot);
    for (size_t i = 0; i < n; i++) {
        int32_t id = e[i].id;
        if (m->off[id] != SIZE_MAX)
            return rni_fail(RN_ERR_FORMAT, "%s: id %ld is given to both '%.40s' and '%.40s'", what,
                            (long)id, m->strings.p + m->off[id], e[i].s);
        if (tk_bpe_token_to_id(m, e[i].s, e[i].n) >= 0)
            return rni_fail(RN_ERR_FORMAT, "%s: token '%.40s' appears twice", what, e[i].s);
        m->off[id] = m->strings.len;
        m->len[id] = (uint32_t)e[i].n;
        if (tk_buf_add(&m->strings, e[i].s, e[i].n) != RN_OK) return RN_ERR_NOMEM;
        size_t h = hash_bytes(e[i].s, e[i].n) & m->vmask;
        while (m->vslot[h] >= 0) h = (h + 1) & m->vmask;
        m->vslot[h] = id;
    }
    return RN_OK;
}

/* Adds merge number rank (a, b), both token strings: the library's rule is
 * that a, b and a + b-without-the-subword-prefix are all in the vocabulary,
 * and a pair listed twice keeps its last rank (the map is built in order). */
static rn_status add_merge(tk_bpe *m, const char *a, size_t na, const char *b, size_t nb,
                           int32_t rank, tk_buf *tmp, const char *what) {
    int32_t ia = tk_bpe_token_to_id(m, a, na), ib = tk_bpe_token_to_id(m, b, nb);
    if (ia < 0 || ib < 0)
        return rni_fail(RN_ERR_FORMAT, "%s[%ld]: token '%.*s' is not in the vocabulary", what,
                        (long)rank, (int)(ia < 0 ? na : nb), ia < 0 ? a : b);
    size_t plen = m->prefix ? strlen(m->prefix) : 0;
    if (plen > nb) plen = nb;
    tmp->len = 0;
    if (tk_buf_add(tmp, a, na) != RN_OK || tk_buf_add(tmp, b + plen, nb - plen) != RN_OK)
        return RN_ERR_NOMEM;
    int32_t inew = tk_bpe_token_to_id(m, tmp->p, tmp->len);
    if (inew < 0)
        return rni_fail(RN_ERR_FORMAT, "%s[%ld]: merged token '%.*s' is not in the vocabulary", what,
                        (long)rank, (int)tmp->len, tmp->p);
    uint64_t key = (uint64_t)(uint32_t)ia << 32 | (uint32_t)ib;
    size_t i = hash_pair(key) & m->mmask;
    while (m->mslot[i].new_id >= 0 && m->mslot[i].key != key) i = (i + 1) & m->mmask;
    m->mslot[i] = (merge_slot){key, rank, inew};
    return RN_OK;
}

/* Whether a word can be cut before every U+2581 that follows another
 * character without changing its BPE: true when "\u2581" is a token and, in
 * every token, U+2581 is only ever preceded by U+2581. A symbol's string is
 * the concatenation of its characters' token strings (a byte-fallback
 * piece "<0xNN>" ends in '>'), so no merge can then join the two sides of
 * such a cut, and the halves merge exactly as they would in the whole.
 * SentencePiece-style files without a pre-tokenizer (Mistral's) then give
 * words, not whole texts, to the merge loop and the cache. */
static int meta_splittable(const tk_bpe *m) {
    static const char meta[] = "\xE2\x96\x81";
    if (m->prefix || m->suffix || m->ignore_merges || tk_bpe_token_to_id(m, meta, 3) < 0) return 0;
    for (int32_t id = 0; id < m->nid; id++) {
        if (m->off[id] == SIZE_MAX) continue;
        const char *t = m->strings.p + m->off[id];
        size_t n = m->len[id];
        for (size_t i = 1; i + 3 <= n; i++)
            if (memcmp(t + i, meta, 3) == 0 && (i < 3 || memcmp(t + i - 3, meta, 3) != 0)) return 0;
    }
    return 1;
}

/* Tables that follow from the vocabulary and the options. */
static rn_status finish(tk_bpe *m) {
    m->split_meta = meta_splittable(m);
    m->unk_id = m->unk_token ? tk_bpe_token_to_id(m, m->unk_token, strlen(m->unk_token)) : -1;
    for (int c = 0; c < 128; c++) {
        char s = (char)c;
        m->char_id[c] = m->prefix || m->suffix ? -1 : tk_bpe_token_to_id(m, &s, 1);
    }
    for (int b = 0; b < 256; b++) {
        char s[8];
        snprintf(s, sizeof s, "<0x%02X>", b);
        m->byte_id[b] = tk_bpe_token_to_id(m, s, 6);
    }
    m->cache = calloc(CACHE_SLOTS, sizeof *m->cache);
    if (!m->cache) return rni_fail(RN_ERR_NOMEM, "out of memory (tokenizer cache)");
    return RN_OK;
}

static tk_bpe *bpe_new(void) {
    tk_bpe *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    pthread_mutex_init(&m->lock, NULL);
    m->unk_id = -1;
    return m;
}

static rn_status alloc_merges(tk_bpe *m, size_t n, const char *what) {
    m->mmask = table_size(n) - 1;
    m->mslot = malloc((m->mmask + 1) * sizeof *m->mslot);
    if (!m->mslot) return rni_fail(RN_ERR_NOMEM, "out of memory (%s)", what);
    for (size_t i = 0; i <= m->mmask; i++) m->mslot[i].new_id = -1;
    return RN_OK;
}

/* An optional string field: NULL/absent -> *out NULL. */
static rn_status opt_string(const cJSON *o, const char *key, const char *file, char **out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    *out = NULL;
    if (!v || cJSON_IsNull(v)) return RN_OK;
    if (!cJSON_IsString(v))
        return rni_fail(RN_ERR_FORMAT, "%s: model.%s is not a string", file, key);
    *out = strdup(v->valuestring);
    return *out ? RN_OK : rni_fail(RN_ERR_NOMEM, "out of memory");
}

static rn_status opt_bool(const cJSON *o, const char *key, const char *file, int *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    *out = 0;
    if (!v || cJSON_IsNull(v)) return RN_OK;
    if (!cJSON_IsBool(v)) return rni_fail(RN_ERR_FORMAT, "%s: model.%s is not a boolean", file, key);
    *out = cJSON_IsTrue(v);
    return RN_OK;
}

/* Reads a JSON object token -> id into entries (*n of them, malloc'ed). */
static rn_status read_vocab_object(const cJSON *vocab, const char *what, vocab_entry **out, size_t *n) {
    if (!cJSON_IsObject(vocab)) return rni_fail(RN_ERR_FORMAT, "%s is missing or not an object", what);
    size_t cnt = (size_t)cJSON_GetArraySize(vocab), i = 0;
    vocab_entry *e = malloc((cnt + 1) * sizeof *e);
    if (!e) return rni_fail(RN_ERR_NOMEM, "out of memory (%s)", what);
    for (const cJSON *v = vocab->child; v; v = v->next, i++) {
        /* Ids index dense tables, so they are bounded (as the CLI's --vocab). */
        double d = cJSON_IsNumber(v) ? v->valuedouble : -1;
        if (!(d >= 0 && d < TK_MAX_VOCAB) || d != (double)(int32_t)d) {
            free(e);
            return rni_fail(RN_ERR_FORMAT, "%s['%.40s']: id is not an integer in [0, %d)", what,
                            v->string ? v->string : "", TK_MAX_VOCAB);
        }
        e[i] = (vocab_entry){v->string, strlen(v->string), (int32_t)d};
    }
    *out = e;
    *n = cnt;
    return RN_OK;
}

rn_status tk_bpe_load(const cJSON *model, const char *file, tk_bpe **out) {
    *out = NULL;
    char what[512];
    tk_bpe *m = bpe_new();
    if (!m) return rni_fail(RN_ERR_NOMEM, "out of memory (BPE model)");
    vocab_entry *e = NULL;
    size_t ne = 0;
    tk_buf tmp = {0};
    rn_status s = opt_string(model, "unk_token", file, &m->unk_token);
    if (!s) s = opt_string(model, "continuing_subword_prefix", file, &m->prefix);
    if (!s) s = opt_string(model, "end_of_word_suffix", file, &m->suffix);
    /* An empty prefix or suffix (GPT-2's files say "") changes nothing. */
    if (m->prefix && !*m->prefix) free(m->prefix), m->prefix = NULL;
    if (m->suffix && !*m->suffix) free(m->suffix), m->suffix = NULL;
    if (!s) s = opt_bool(model, "fuse_unk", file, &m->fuse_unk);
    if (!s) s = opt_bool(model, "byte_fallback", file, &m->byte_fallback);
    if (!s) s = opt_bool(model, "ignore_merges", file, &m->ignore_merges);
    const cJSON *dropout = cJSON_GetObjectItemCaseSensitive(model, "dropout");
    if (!s && dropout && !cJSON_IsNull(dropout) && !(cJSON_IsNumber(dropout) && dropout->valuedouble == 0))
        s = rni_fail(RN_ERR_FORMAT, "%s: model.dropout: BPE dropout (random merges) is not supported", file);
    snprintf(what, sizeof what, "%s: model.vocab", file);
    if (!s) s = read_vocab_object(cJSON_GetObjectItemCaseSensitive(model, "vocab"), what, &e, &ne);
    if (!s) s = build_vocab(m, e, ne, what);
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    snprintf(what, sizeof what, "%s: model.merges", file);
    if (!s && !cJSON_IsArray(merges)) s = rni_fail(RN_ERR_FORMAT, "%s is missing or not an array", what);
    if (!s) s = alloc_merges(m, (size_t)cJSON_GetArraySize(merges), what);
    int32_t rank = 0;
    for (const cJSON *x = s ? NULL : merges->child; x && !s; x = x->next, rank++) {
        if (cJSON_IsString(x)) {
            /* The legacy form "a b": exactly one space (the library splits
             * on ' ' and wants two parts). */
            const char *str = x->valuestring, *sp = strchr(str, ' ');
            if (!sp || strchr(sp + 1, ' '))
                s = rni_fail(RN_ERR_FORMAT, "%s[%ld]: '%.40s' is not two tokens separated by one space",
                             what, (long)rank, str);
            else
                s = add_merge(m, str, (size_t)(sp - str), sp + 1, strlen(sp + 1), rank, &tmp, what);
        } else if (cJSON_IsArray(x) && cJSON_GetArraySize(x) == 2 && cJSON_IsString(x->child) &&
                   cJSON_IsString(x->child->next)) {
            const char *a = x->child->valuestring, *b = x->child->next->valuestring;
            s = add_merge(m, a, strlen(a), b, strlen(b), rank, &tmp, what);
        } else {
            s = rni_fail(RN_ERR_FORMAT, "%s[%ld]: neither \"a b\" nor [\"a\", \"b\"]", what, (long)rank);
        }
    }
    if (!s) s = finish(m);
    free(e);
    tk_buf_free(&tmp);
    if (s) {
        tk_bpe_free(m);
        return s;
    }
    *out = m;
    return RN_OK;
}

rn_status tk_bpe_load_files(const char *vocab_json, const char *vocab_path, const char *merges_txt,
                            size_t merges_len, const char *merges_path, tk_bpe **out) {
    *out = NULL;
    char what[512];
    cJSON *j = cJSON_Parse(vocab_json);
    if (!j) return rni_fail(RN_ERR_FORMAT, "%s: malformed JSON", vocab_path);
    tk_bpe *m = bpe_new();
    vocab_entry *e = NULL;
    size_t ne = 0;
    tk_buf tmp = {0};
    rn_status s = m ? RN_OK : rni_fail(RN_ERR_NOMEM, "out of memory (BPE model)");
    snprintf(what, sizeof what, "%s", vocab_path);
    if (!s) s = read_vocab_object(j, what, &e, &ne);
    if (!s) s = build_vocab(m, e, ne, what);
    size_t lines = 1;
    for (size_t i = 0; i < merges_len; i++) lines += merges_txt[i] == '\n';
    if (!s) s = alloc_merges(m, lines, merges_path);
    /* One merge per line; "#version" lines and empty lines are skipped. */
    int32_t rank = 0;
    size_t lineno = 0;
    for (size_t i = 0; !s && i < merges_len;) {
        size_t e2 = i;
        while (e2 < merges_len && merges_txt[e2] != '\n') e2++;
        size_t n = e2 - i;
        if (n && merges_txt[i + n - 1] == '\r') n--;
        lineno++;
        const char *ln = merges_txt + i;
        if (n && !(n >= 8 && memcmp(ln, "#version", 8) == 0)) {
            const char *sp = memchr(ln, ' ', n);
            snprintf(what, sizeof what, "%s: line %zu", merges_path, lineno);
            if (!sp || memchr(sp + 1, ' ', n - (size_t)(sp + 1 - ln)))
                s = rni_fail(RN_ERR_FORMAT, "%s: not two tokens separated by one space", what);
            else
                s = add_merge(m, ln, (size_t)(sp - ln), sp + 1, n - (size_t)(sp + 1 - ln), rank++, &tmp,
                              what);
        }
        i = e2 + 1;
    }
    if (!s) s = finish(m);
    free(e);
    cJSON_Delete(j);
    tk_buf_free(&tmp);
    if (s) {
        tk_bpe_free(m);
        return s;
    }
    *out = m;
    return RN_OK;
}

/* ------------------------------------------------------------ merge loop */

typedef struct {
    int32_t c;        /* token id */
    int32_t prev, next;
    uint32_t len;     /* bytes of the text it covers; 0 once merged away */
} symbol;

typedef struct {
    int32_t rank, pos, new_id;
} merge_cand;

struct tk_bpe_scratch {
    symbol *sym;
    size_t sym_cap;
    merge_cand *heap;
    size_t heap_cap;
    tk_buf tmp;
};

void tk_bpe_scratch_free(tk_bpe_scratch *s) {
    if (!s) return;
    free(s->sym);
    free(s->heap);
    tk_buf_free(&s->tmp);
    free(s);
}

static int cand_less(merge_cand a, merge_cand b) {
    return a.rank != b.rank ? a.rank < b.rank : a.pos < b.pos;
}

static void heap_push(merge_cand *h, size_t *n, merge_cand x) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!cand_less(x, h[p])) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = x;
}

static merge_cand heap_pop(merge_cand *h, size_t *n) {
    merge_cand top = h[0], x = h[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1;
        if (l >= *n) break;
        size_t c = l + 1 < *n && cand_less(h[l + 1], h[l]) ? l + 1 : l;
        if (!cand_less(h[c], x)) break;
        h[i] = h[c];
        i = c;
    }
    h[i] = x;
    return top;
}

static rn_status push_symbol(tk_bpe_scratch *sc, size_t *ns, int32_t id, uint32_t len) {
    if (*ns == sc->sym_cap) {
        size_t nc = sc->sym_cap ? 2 * sc->sym_cap : 64;
        symbol *p = realloc(sc->sym, nc * sizeof *p);
        if (!p) return rni_fail(RN_ERR_NOMEM, "out of memory (BPE word)");
        sc->sym = p;
        sc->sym_cap = nc;
    }
    int32_t i = (int32_t)*ns;
    sc->sym[i] = (symbol){id, i - 1, i + 1, len};
    (*ns)++;
    return RN_OK;
}

/* The id of the character s[0, n) at position first/last of the word, with
 * the subword prefix / word suffix the library adds; -1 if not a token. */
static int32_t char_token(const tk_bpe *m, tk_bpe_scratch *sc, const char *s, size_t n, int first,
                          int last) {
    if (n == 1 && (unsigned char)s[0] < 128 && !m->prefix && !m->suffix)
        return m->char_id[(unsigned char)s[0]];
    if ((!m->prefix || first) && (!m->suffix || !last)) return tk_bpe_token_to_id(m, s, n);
    sc->tmp.len = 0;
    if (m->prefix && !first && tk_buf_add(&sc->tmp, m->prefix, strlen(m->prefix))) return -2;
    if (tk_buf_add(&sc->tmp, s, n)) return -2;
    if (m->suffix && last && tk_buf_add(&sc->tmp, m->suffix, strlen(m->suffix))) return -2;
    return tk_bpe_token_to_id(m, sc->tmp.p, sc->tmp.len);
}

/* The library's merge_word: characters to initial symbols (byte fallback,
 * unk fusing), then merge_all. Leaves the live symbols linked from 0. */
static rn_status merge_word(const tk_bpe *m, tk_bpe_scratch *sc, const char *w, size_t n, size_t *ns) {
    *ns = 0;
    int32_t unk_len = 0;  /* > 0: a pending unk covering that many bytes */
    rn_status s = RN_OK;
    for (size_t i = 0; i < n && !s;) {
        int32_t cp;
        size_t cl = (size_t)tk_utf8_next((const unsigned char *)w + i, n - i, &cp);
        int32_t id = char_token(m, sc, w + i, cl, i == 0, i + cl == n);
        if (id == -2) return rni_fail(RN_ERR_NOMEM, "out of memory (BPE word)");
        if (id >= 0) {
            if (unk_len) s = push_symbol(sc, ns, m->unk_id, (uint32_t)unk_len);
            unk_len = 0;
            if (!s) s = push_symbol(sc, ns, id, (uint32_t)cl);
            i += cl;
            continue;
        }
        if (m->byte_fallback) {
            /* All bytes of the character (with any prefix/suffix, as the
             * library spells it) must have a <0xNN> token; the pending unk
             * is not flushed here, exactly as upstream. */
            const char *bs = w + i;
            size_t bn = cl;
            int sub = m->prefix || m->suffix;
            if (sub) {
                sc->tmp.len = 0;
                if ((m->prefix && i > 0 && tk_buf_add(&sc->tmp, m->prefix, strlen(m->prefix))) ||
                    tk_buf_add(&sc->tmp, w + i, cl) ||
                    (m->suffix && i + cl == n && tk_buf_add(&sc->tmp, m->suffix, strlen(m->suffix))))
                    return rni_fail(RN_ERR_NOMEM, "out of memory (BPE word)");
                bs = sc->tmp.p;
                bn = sc->tmp.len;
            }
            int all = 1;
            for (size_t k = 0; k < bn; k++) all &= m->byte_id[(unsigned char)bs[k]] >= 0;
            if (all) {
                for (size_t k = 0; k < bn && !s; k++)
                    s = push_symbol(sc, ns, m->byte_id[(unsigned char)bs[k]], 1);
                i += cl;
                continue;
            }
        }
        if (m->unk_token) {
            if (m->unk_id < 0)
                return rni_fail(RN_ERR_FORMAT, "unk_token '%.40s' is not in the model's vocabulary",
                                m->unk_token);
            if (unk_len && !m->fuse_unk) {
                s = push_symbol(sc, ns, m->unk_id, (uint32_t)unk_len);
                unk_len = 0;
            }
            unk_len += (int32_t)cl;
        }
        /* Without an unk token the character is dropped, as upstream. */
        i += cl;
    }
    if (!s && unk_len) s = push_symbol(sc, ns, m->unk_id, (uint32_t)unk_len);
    if (s || *ns == 0) return s;
    sc->sym[*ns - 1].next = -1;

    if (sc->heap_cap < *ns) {
        free(sc->heap);
        sc->heap_cap = *ns * 2;
        sc->heap = malloc(sc->heap_cap * sizeof *sc->heap);
        if (!sc->heap) {
            sc->heap_cap = 0;
            return rni_fail(RN_ERR_NOMEM, "out of memory (BPE heap)");
        }
    }
    /* Each merge removes a symbol and pushes at most two candidates, so
     * the heap never holds more than 3n entries; grow it lazily. */
    size_t hn = 0;
    symbol *y = sc->sym;
    for (size_t i = 0; i + 1 < *ns; i++) {
        int32_t rank, nid = merge_find(m, y[i].c, y[i + 1].c, &rank);
        if (nid >= 0) heap_push(sc->heap, &hn, (merge_cand){rank, (int32_t)i, nid});
    }
    while (hn) {
        merge_cand top = heap_pop(sc->heap, &hn);
        symbol *cur = &y[top.pos];
        if (cur->len == 0 || cur->next < 0) continue;
        symbol right = y[cur->next];
        int32_t rank, nid = merge_find(m, cur->c, right.c, &rank);
        if (nid != top.new_id) continue;  /* stale: the pair changed */
        cur->c = top.new_id;
        cur->len += right.len;
        y[cur->next].len = 0;
        cur->next = right.next;
        if (right.next >= 0) y[right.next].prev = top.pos;
        if (hn + 2 > sc->heap_cap) {
            size_t nc = sc->heap_cap * 2 + 4;
            merge_cand *h = realloc(sc->heap, nc * sizeof *h);
            if (!h) return rni_fail(RN_ERR_NOMEM, "out of memory (BPE heap)");
            sc->heap = h;
            sc->heap_cap = nc;
        }
        if (cur->prev >= 0) {
            nid = merge_find(m, y[cur->prev].c, cur->c, &rank);
            if (nid >= 0) heap_push(sc->heap, &hn, (merge_cand){rank, cur->prev, nid});
        }
        if (cur->next >= 0) {
            nid = merge_find(m, cur->c, y[cur->next].c, &rank);
            if (nid >= 0) heap_push(sc->heap, &hn, (merge_cand){rank, top.pos, nid});
        }
    }
    return RN_OK;
}

static rn_status ids_reserve(int32_t **ids, size_t *cap, size_t need) {
    if (need <= *cap) return RN_OK;
    size_t nc = *cap ? *cap : 256;
    while (nc < need) nc *= 2;
    int32_t *p = realloc(*ids, nc * sizeof *p);
    if (!p) return rni_fail(RN_ERR_NOMEM, "out of memory (%zu token ids)", nc);
    *ids = p;
    *cap = nc;
    return RN_OK;
}

static rn_status encode_word(const tk_bpe *m, const char *s, size_t n, tk_bpe_scratch **scp, int32_t **ids,
                             size_t *nids, size_t *cap);

rn_status tk_bpe_encode(const tk_bpe *m, const char *s, size_t n, tk_bpe_scratch **scp, int32_t **ids,
                        size_t *nids, size_t *cap) {
    if (!m->split_meta) return encode_word(m, s, n, scp, ids, nids, cap);
    /* Cut before each U+2581 that follows another character. */
    size_t a = 0;
    for (size_t i = 1; i + 3 <= n; i++) {
        if (memcmp(s + i, "\xE2\x96\x81", 3) || (i >= 3 && memcmp(s + i - 3, "\xE2\x96\x81", 3) == 0)) continue;
        rn_status st = encode_word(m, s + a, i - a, scp, ids, nids, cap);
        if (st) return st;
        a = i;
        i += 2;
    }
    return encode_word(m, s + a, n - a, scp, ids, nids, cap);
}

/* One word: the whole-word shortcut, the cache, else the merge loop. */
static rn_status encode_word(const tk_bpe *m, const char *s, size_t n, tk_bpe_scratch **scp, int32_t **ids,
                             size_t *nids, size_t *cap) {
    if (n == 0) return RN_OK;
    if (m->ignore_merges) {
        int32_t id = tk_bpe_token_to_id(m, s, n);
        if (id >= 0) {
            if (ids_reserve(ids, cap, *nids + 1)) return RN_ERR_NOMEM;
            (*ids)[(*nids)++] = id;
            return RN_OK;
        }
    }
    /* The cache: the lock is only tried, so concurrent encoders never wait
     * on each other (a busy cache is a miss). */
    tk_bpe *mm = (tk_bpe *)m;
    uint64_t h = 0;
    cache_slot *slot = NULL;
    if (n <= CACHE_KEY) {
        h = hash_bytes(s, n);
        slot = &mm->cache[h & (CACHE_SLOTS - 1)];
        if (pthread_mutex_trylock(&mm->lock) == 0) {
            if (slot->hash == h && slot->klen == n && memcmp(slot->key, s, n) == 0) {
                size_t k = slot->nids;
                rn_status st = ids_reserve(ids, cap, *nids + k);
                if (!st && k) memcpy(*ids + *nids, slot->ids, k * sizeof(int32_t));
                pthread_mutex_unlock(&mm->lock);
                if (!st) *nids += k;
                return st;
            }
            pthread_mutex_unlock(&mm->lock);
        }
    }
    if (!*scp && !(*scp = calloc(1, sizeof **scp))) return rni_fail(RN_ERR_NOMEM, "out of memory");
    tk_bpe_scratch *sc = *scp;
    size_t ns;
    rn_status st = merge_word(m, sc, s, n, &ns);
    if (st) return st;
    size_t first = *nids;
    for (int32_t i = ns ? 0 : -1; i >= 0; i = sc->sym[i].next) {
        if (ids_reserve(ids, cap, *nids + 1)) return RN_ERR_NOMEM;
        (*ids)[(*nids)++] = sc->sym[i].c;
    }
    size_t k = *nids - first;
    if (slot && k <= CACHE_IDS && pthread_mutex_trylock(&mm->lock) == 0) {
        slot->hash = h;
        slot->klen = (uint8_t)n;
        slot->nids = (uint8_t)k;
        memcpy(slot->key, s, n);
        if (k) memcpy(slot->ids, *ids + first, k * sizeof(int32_t));
        pthread_mutex_unlock(&mm->lock);
    }
    return RN_OK;
}
