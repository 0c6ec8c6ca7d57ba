/* tok_train.c: rn_tokenizer_train, BPE training that writes a Hugging Face
 * tokenizer.json, with the semantics of the `tokenizers` library's
 * BpeTrainer (Rust, 0.23) so that its merges are the ones that library
 * learns from the same text:
 *
 *   1. Word counts: the files are read line by line (each line with its
 *      "\n", as Tokenizer::train_from_files feeds them), each line is
 *      pre-tokenized by the same pre-tokenizer the output file names (run
 *      through tok_text.c, so training and encoding split alike), and the
 *      pre-tokens are counted. Memory: the distinct words, not the text.
 *   2. Vocabulary: the special tokens, then (sentencepiece-bpe) the 256
 *      "<0xNN>" byte-fallback tokens, then the alphabet sorted by code
 *      point (byte-level: all 256 GPT-2 byte characters; else the
 *      characters seen).
 *   3. Merges: pair counts over the distinct words, weighted by their
 *      counts, and a max-heap of candidate merges ordered by (count, then
 *      the smallest (left id, right id)), each entry carrying the words it
 *      was found in. A popped entry whose count is stale is pushed back
 *      with the current count (lazy invalidation); otherwise its pair is
 *      merged in those words only, and the pairs that change are updated
 *      incrementally: -1 for the neighbours' old pairs, +1 (and a new heap
 *      entry with the words they appear in) for the pairs the new token
 *      forms. Nothing is recounted.
 *
 * As upstream, a merge may yield a token that already exists (another pair
 * made it); the vocabulary then does not grow, and when the same pair is
 * merged twice only its last rank is written. */
#define _POSIX_C_SOURCE 200809L
#include "retnet_data.h"
#include "internal.h"
#include "tok.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define META "\xe2\x96\x81"  /* U+2581, SentencePiece's space */
#define NONE UINT32_MAX
#define MAX_CP 0x110000

void rn_tokenizer_train_defaults(rn_tokenizer_train_options *o) {
    memset(o, 0, sizeof *o);
    o->kind = RN_TOKENIZER_BYTELEVEL;
    o->vocab_size = 8192;
}

static double seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 0x9E3779B97F4A7C15ull ^ (n * 0xff51afd7ed558ccdull);
    for (; n >= 8; s += 8, n -= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = (h ^ w) * 0xbf58476d1ce4e5b9ull;
        h ^= h >> 31;
    }
    uint64_t w = 0;
    memcpy(&w, s, n);
    h = (h ^ w) * 0x94d049bb133111ebull;
    return h ^ (h >> 29);
}

static uint64_t hash_u64(uint64_t k) {
    k = (k ^ (k >> 33)) * 0xff51afd7ed558ccdull;
    k = (k ^ (k >> 33)) * 0xc4ceb9fe1a85ec53ull;
    return k ^ (k >> 33);
}

static int grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 0;
    size_t nc = *cap ? *cap : 64;
    while (nc < need) nc *= 2;
    void *q = realloc(*p, nc * elem);
    if (!q) return -1;
    *p = q;
    *cap = nc;
    return 0;
}

/* ----------------------------------------------------- string interning */

/* Distinct strings, numbered in order of arrival (the words; the
 * vocabulary, where the number is the id). */
typedef struct {
    uint32_t *slot;     /* (mask + 1): index + 1, 0 = empty */
    size_t mask;
    size_t *off;        /* (n) into bytes */
    uint32_t *len;      /* (n) */
    uint64_t *hash;     /* (n) */
    size_t n, cap;
    tk_buf bytes;
} strtab;

static void strtab_free(strtab *t) {
    free(t->slot);
    free(t->off);
    free(t->len);
    free(t->hash);
    tk_buf_free(&t->bytes);
}

static const char *strtab_str(const strtab *t, uint32_t i) { return t->bytes.p + t->off[i]; }

/* The index of s (n bytes), added when absent and add is set; NONE when
 * absent and not added. *err on out of memory. */
static uint32_t strtab_get(strtab *t, const char *s, size_t n, int add, int *err) {
    uint64_t h = hash_bytes(s, n);
    if (t->slot) {
        for (size_t k = h & t->mask;; k = (k + 1) & t->mask) {
            uint32_t v = t->slot[k];
            if (!v) break;
            v--;
            if (t->hash[v] == h && t->len[v] == n && !memcmp(strtab_str(t, v), s, n)) return v;
        }
    }
    if (!add) return NONE;
    if (t->n + 1 > (t->mask + 1) / 2) {
        size_t nm = t->slot ? 2 * (t->mask + 1) : 1024;
        uint32_t *ns = calloc(nm, sizeof *ns);
        if (!ns) goto oom;
        for (size_t i = 0; i < t->n; i++) {
            size_t k = t->hash[i] & (nm - 1);
            while (ns[k]) k = (k + 1) & (nm - 1);
            ns[k] = (uint32_t)i + 1;
        }
        free(t->slot);
        t->slot = ns;
        t->mask = nm - 1;
    }
    if (t->n == t->cap) {
        size_t nc = t->cap ? 2 * t->cap : 1024;
        size_t *o = realloc(t->off, nc * sizeof *o);
        if (o) t->off = o;
        uint32_t *l = realloc(t->len, nc * sizeof *l);
        if (l) t->len = l;
        uint64_t *hh = realloc(t->hash, nc * sizeof *hh);
        if (hh) t->hash = hh;
        if (!o || !l || !hh) goto oom;
        t->cap = nc;
    }
    if (tk_buf_add(&t->bytes, s, n)) goto oom;
    uint32_t i = (uint32_t)t->n++;
    t->off[i] = t->bytes.len - n;
    t->len[i] = (uint32_t)n;
    t->hash[i] = h;
    size_t k = h & t->mask;
    while (t->slot[k]) k = (k + 1) & t->mask;
    t->slot[k] = i + 1;
    return i;
oom:
    *err = 1;
    return NONE;
}

/* ------------------------------------------------------------ training */

/* A pair of adjacent symbols and its count over all words (weighted). */
typedef struct {
    uint32_t a, b;
    int64_t count;
    uint32_t stamp;   /* the merge step that last gave it a word list */
    uint32_t list;    /* that list (while the step builds it) */
    int32_t last;     /* the last merge (rank) of this pair, -1: none */
} pair_rec;

/* A candidate merge: the pair's count when pushed, and the words it was
 * found in then (upstream's Merge { pair, count, pos }). */
typedef struct {
    uint64_t count;
    uint32_t a, b, pair, list;
} cand;

/* A set of word indices, kept in the order they were added. */
typedef struct {
    uint32_t *w;
    uint32_t n, cap;
} wlist;

typedef struct {
    const rn_tokenizer_train_options *o;
    /* words */
    strtab words;
    uint64_t *wcount;           /* (words.n) occurrences */
    size_t wcount_cap;
    int32_t *sym;               /* symbols of every word, back to back */
    size_t *woff;               /* (nw) start in sym */
    uint32_t *wlen;             /* (nw) current length */
    uint64_t *wcnt;             /* (nw) count of word i */
    size_t nw;
    /* vocabulary */
    strtab vocab;
    size_t base;                /* specials + bytes + alphabet */
    size_t nalpha;              /* characters of the alphabet */
    /* pairs */
    pair_rec *pr;
    size_t npr, prcap;
    uint32_t *pslot;            /* (pmask + 1): pair index + 1 */
    size_t pmask;
    uint64_t *pkey;             /* (npr) a << 32 | b */
    /* word lists */
    wlist *lists;
    size_t nlists, lcap;
    uint32_t *freel;
    size_t nfree, fcap;
    /* heap */
    cand *heap;
    size_t nheap, hcap;
    /* merges, and the pairs touched by one step */
    uint32_t *merges;           /* (nmerges) pair index of each merge */
    size_t nmerges, mcap;
    uint32_t *touched;
    size_t ntouched, tcap;
    int oom;
} trainer;

static rn_status oom(void) { return rni_fail(RN_ERR_NOMEM, "out of memory (tokenizer training)"); }

static uint32_t list_new(trainer *t) {
    if (t->nfree) return t->freel[--t->nfree];
    if (grow((void **)&t->lists, &t->lcap, t->nlists + 1, sizeof *t->lists)) {
        t->oom = 1;
        return NONE;
    }
    t->lists[t->nlists] = (wlist){0};
    return (uint32_t)t->nlists++;
}

static void list_free(trainer *t, uint32_t l) {
    t->lists[l].n = 0;
    if (grow((void **)&t->freel, &t->fcap, t->nfree + 1, sizeof *t->freel)) {
        t->oom = 1;
        return;
    }
    t->freel[t->nfree++] = l;
}

/* Adds word w unless it is the last one added (a word's pairs are visited
 * together, so that keeps each list a set). */
static void list_add(trainer *t, uint32_t l, uint32_t w) {
    wlist *x = &t->lists[l];
    if (x->n && x->w[x->n - 1] == w) return;
    if (x->n == x->cap) {
        uint32_t nc = x->cap ? 2 * x->cap : 4;
        uint32_t *p = realloc(x->w, nc * sizeof *p);
        if (!p) {
            t->oom = 1;
            return;
        }
        x->w = p;
        x->cap = nc;
    }
    x->w[x->n++] = w;
}

static uint32_t pair_get(trainer *t, uint32_t a, uint32_t b) {
    uint64_t key = (uint64_t)a << 32 | b, h = hash_u64(key);
    if (t->pslot)
        for (size_t k = h & t->pmask;; k = (k + 1) & t->pmask) {
            uint32_t v = t->pslot[k];
            if (!v) break;
            if (t->pkey[v - 1] == key) return v - 1;
        }
    if (t->npr + 1 > (t->pmask + 1) / 2) {
        size_t nm = t->pslot ? 2 * (t->pmask + 1) : 1 << 16;
        uint32_t *ns = calloc(nm, sizeof *ns);
        if (!ns) goto fail;
        for (size_t i = 0; i < t->npr; i++) {
            size_t k = hash_u64(t->pkey[i]) & (nm - 1);
            while (ns[k]) k = (k + 1) & (nm - 1);
            ns[k] = (uint32_t)i + 1;
        }
        free(t->pslot);
        t->pslot = ns;
        t->pmask = nm - 1;
    }
    size_t kc = t->prcap;
    if (grow((void **)&t->pr, &t->prcap, t->npr + 1, sizeof *t->pr)) goto fail;
    if (t->prcap != kc) {
        uint64_t *nk = realloc(t->pkey, t->prcap * sizeof *nk);
        if (!nk) goto fail;
        t->pkey = nk;
    }
    uint32_t i = (uint32_t)t->npr++;
    t->pr[i] = (pair_rec){a, b, 0, 0, NONE, -1};
    t->pkey[i] = key;
    size_t k = h & t->pmask;
    while (t->pslot[k]) k = (k + 1) & t->pmask;
    t->pslot[k] = i + 1;
    return i;
fail:
    t->oom = 1;
    return NONE;
}

/* Heap order: the larger count first, then the smaller pair. */
static int above(const cand *x, const cand *y) {
    if (x->count != y->count) return x->count > y->count;
    return x->a != y->a ? x->a < y->a : x->b < y->b;
}

static void heap_push(trainer *t, cand c) {
    if (grow((void **)&t->heap, &t->hcap, t->nheap + 1, sizeof *t->heap)) {
        t->oom = 1;
        return;
    }
    size_t i = t->nheap++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!above(&c, &t->heap[p])) break;
        t->heap[i] = t->heap[p];
        i = p;
    }
    t->heap[i] = c;
}

static cand heap_pop(trainer *t) {
    cand top = t->heap[0], last = t->heap[--t->nheap];
    size_t i = 0, n = t->nheap;
    for (;;) {
        size_t l = 2 * i + 1, best = i;
        const cand *bv = &last;
        if (l < n && above(&t->heap[l], bv)) best = l, bv = &t->heap[l];
        if (l + 1 < n && above(&t->heap[l + 1], bv)) best = l + 1;
        if (best == i) break;
        t->heap[i] = t->heap[best];
        i = best;
    }
    if (n) t->heap[i] = last;
    return top;
}

/* One change of a pair's count from word w (delta = +1 or -1 occurrence);
 * a pair formed anew remembers the word for its next heap entry. */
static void change(trainer *t, uint32_t a, uint32_t b, int delta, uint32_t w, uint32_t step) {
    uint32_t p = pair_get(t, a, b);
    if (p == NONE) return;
    pair_rec *r = &t->pr[p];
    r->count += delta * (int64_t)t->wcnt[w];
    if (delta < 0) return;
    if (r->stamp != step) {
        r->stamp = step;
        if ((r->list = list_new(t)) == NONE) return;
        if (grow((void **)&t->touched, &t->tcap, t->ntouched + 1, sizeof *t->touched)) {
            t->oom = 1;
            return;
        }
        t->touched[t->ntouched++] = p;
        r = &t->pr[p];
    }
    list_add(t, r->list, w);
}

/* Merges every (c1, c2) of word w into nw, left to right, as upstream's
 * Word::merge, reporting the pair changes. */
static void merge_word(trainer *t, uint32_t w, uint32_t c1, uint32_t c2, uint32_t nw, uint32_t step) {
    int32_t *s = t->sym + t->woff[w];
    uint32_t n = t->wlen[w], r = 0, o = 0;
    while (r < n) {
        if ((uint32_t)s[r] == c1 && r + 1 < n && (uint32_t)s[r + 1] == c2) {
            if (o > 0) {
                change(t, (uint32_t)s[o - 1], c1, -1, w, step);
                change(t, (uint32_t)s[o - 1], nw, +1, w, step);
            }
            s[o++] = (int32_t)nw;
            r += 2;
            if (r < n) {
                change(t, c2, (uint32_t)s[r], -1, w, step);
                change(t, nw, (uint32_t)s[r], +1, w, step);
            }
        } else
            s[o++] = s[r++];
    }
    t->wlen[w] = o;
}

/* Counts the pre-tokens of one line. */
static rn_status count_line(trainer *t, const tk_pretok *pre, tk_scratch *sc, const char *s, size_t n) {
    tk_pieces *pl = &sc->p1;
    tk_pieces_clear(pl);
    rn_status st = tk_pieces_push(pl, s, n, -1, 1);
    if (!st) st = tk_pretokenize(pre, &pl, sc);
    for (size_t k = 0; !st && k < pl->n; k++) {
        const tk_piece *p = &pl->v[k];
        if (!p->len) continue;
        int err = 0;
        size_t n0 = t->words.n;
        uint32_t i = strtab_get(&t->words, pl->text.p + p->off, p->len, 1, &err);
        if (err || grow((void **)&t->wcount, &t->wcount_cap, t->words.n, sizeof *t->wcount)) return oom();
        if (t->words.n > n0) t->wcount[i] = 0;
        t->wcount[i]++;
    }
    return st;
}

/* Reads the files line by line, each line with its line break. */
static rn_status count_words(trainer *t, const char *const *files, int nfiles, const tk_pretok *pre,
                             rn_tokenizer_train_stats *stats) {
    const rn_tokenizer_train_options *o = t->o;
    size_t total = 0, done = 0;
    for (int i = 0; i < nfiles; i++) {
        struct stat sb;
        if (stat(files[i], &sb) != 0) return rni_fail(RN_ERR_IO, "cannot open %s: %s", files[i], strerror(errno));
        if (S_ISDIR(sb.st_mode)) return rni_fail(RN_ERR_IO, "%s is a directory, not a text file", files[i]);
        total += (size_t)sb.st_size;
    }
    tk_scratch sc = {0};
    size_t cap = 1 << 20;
    char *buf = malloc(cap);
    if (!buf) return oom();
    rn_status st = RN_OK;
    double last = seconds();
    for (int i = 0; i < nfiles && !st; i++) {
        FILE *f = fopen(files[i], "rb");
        if (!f) {
            st = rni_fail(RN_ERR_IO, "cannot open %s: %s", files[i], strerror(errno));
            break;
        }
        size_t have = 0;
        for (;;) {
            if (have == cap) {
                /* A line longer than the buffer: grow it to hold the line. */
                char *nb = realloc(buf, 2 * cap);
                if (!nb) {
                    st = oom();
                    break;
                }
                buf = nb;
                cap *= 2;
            }
            size_t got = fread(buf + have, 1, cap - have, f);
            if (!got && ferror(f)) {
                st = rni_fail(RN_ERR_IO, "cannot read %s: %s", files[i], strerror(errno));
                break;
            }
            int eof = got == 0;
            have += got;
            done += got;
            size_t a = 0;
            for (;;) {
                char *nl = memchr(buf + a, '\n', have - a);
                if (!nl && !(eof && a < have)) break;
                size_t e = nl ? (size_t)(nl - buf) + 1 : have;
                if ((st = count_line(t, pre, &sc, buf + a, e - a))) break;
                a = e;
            }
            if (st) break;
            memmove(buf, buf + a, have - a);
            have -= a;
            if (eof) break;
            if (o->progress && seconds() - last > 0.25) {
                o->progress(o->user, "counting words", (double)done, (double)total);
                last = seconds();
            }
        }
        fclose(f);
    }
    free(buf);
    tk_scratch_free(&sc);
    if (stats) stats->bytes = done;
    return st;
}

static rn_status add_token(trainer *t, const char *s, size_t n) {
    int err = 0;
    strtab_get(&t->vocab, s, n, 1, &err);
    return err ? oom() : RN_OK;
}

/* The vocabulary before any merge, and each word as symbol ids (words of
 * one symbol take no part in merging and are left out). */
static rn_status build_base(trainer *t) {
    const rn_tokenizer_train_options *o = t->o;
    int sp = o->kind == RN_TOKENIZER_SENTENCEPIECE_BPE;
    rn_status st = RN_OK;
    if (sp) {
        static const char *const std[3] = {"<unk>", "<s>", "</s>"};
        for (int i = 0; i < 3 && !st; i++) st = add_token(t, std[i], strlen(std[i]));
    }
    for (int i = 0; i < o->nspecial && !st; i++) st = add_token(t, o->special[i], strlen(o->special[i]));
    for (int b = 0; sp && b < 256 && !st; b++) {
        char tok[8];
        snprintf(tok, sizeof tok, "<0x%02X>", b);
        st = add_token(t, tok, 6);
    }
    if (st) return st;
    /* The alphabet, in code point order. */
    uint8_t *seen = calloc(MAX_CP, 1);
    int32_t *cp_id = malloc(MAX_CP * sizeof *cp_id);
    if (!seen || !cp_id) {
        free(seen);
        free(cp_id);
        return oom();
    }
    if (!sp)
        for (int b = 0; b < 256; b++) seen[tk_byte_char[b]] = 1;
    size_t nsym = 0;
    for (size_t w = 0; w < t->words.n; w++) {
        const unsigned char *s = (const unsigned char *)strtab_str(&t->words, (uint32_t)w);
        size_t n = t->words.len[w];
        for (size_t i = 0; i < n;) {
            int32_t cp;
            i += (size_t)tk_utf8_next(s + i, n - i, &cp);
            /* NUL stays out of a Metaspace alphabet (a JSON key cannot
             * hold it): it falls back to <0x00>. */
            if (cp > 0 || (cp == 0 && !sp)) seen[cp] = 1;
            nsym++;
        }
    }
    for (int32_t c = 0; c < MAX_CP && !st; c++) {
        cp_id[c] = -1;
        if (!seen[c]) continue;
        tk_buf ch = {0};
        int err = 0;
        if (tk_utf8_put(&ch, c)) st = oom();
        uint32_t id = st ? NONE : strtab_get(&t->vocab, ch.p, ch.len, 1, &err);
        if (err) st = oom();
        cp_id[c] = (int32_t)id;
        t->nalpha++;
        tk_buf_free(&ch);
    }
    free(seen);
    t->base = t->vocab.n;
    if (!st && ((t->sym = malloc((nsym ? nsym : 1) * sizeof *t->sym)) == NULL ||
                (t->woff = malloc((t->words.n + 1) * sizeof *t->woff)) == NULL ||
                (t->wlen = malloc((t->words.n + 1) * sizeof *t->wlen)) == NULL ||
                (t->wcnt = malloc((t->words.n + 1) * sizeof *t->wcnt)) == NULL))
        st = oom();
    size_t at = 0;
    for (size_t w = 0; w < t->words.n && !st; w++) {
        const unsigned char *s = (const unsigned char *)strtab_str(&t->words, (uint32_t)w);
        size_t n = t->words.len[w], start = at;
        for (size_t i = 0; i < n;) {
            int32_t cp;
            i += (size_t)tk_utf8_next(s + i, n - i, &cp);
            /* Bytes that are not UTF-8 have no character: left out, as
             * upstream leaves out characters outside its alphabet. */
            if (cp >= 0 && cp_id[cp] >= 0) t->sym[at++] = cp_id[cp];
        }
        if (at - start < 2) {
            at = start;
            continue;
        }
        t->woff[t->nw] = start;
        t->wlen[t->nw] = (uint32_t)(at - start);
        t->wcnt[t->nw++] = t->wcount[w];
    }
    free(cp_id);
    return st;
}

/* The pair counts of every word and one heap entry per pair. */
static rn_status count_pairs(trainer *t) {
    for (uint32_t w = 0; w < t->nw && !t->oom; w++) {
        const int32_t *s = t->sym + t->woff[w];
        for (uint32_t i = 0; i + 1 < t->wlen[w] && !t->oom; i++) {
            uint32_t p = pair_get(t, (uint32_t)s[i], (uint32_t)s[i + 1]);
            if (p == NONE) break;
            pair_rec *r = &t->pr[p];
            r->count += (int64_t)t->wcnt[w];
            if (r->list == NONE && (r->list = list_new(t)) == NONE) break;
            list_add(t, t->pr[p].list, w);
        }
    }
    for (uint32_t p = 0; p < t->npr && !t->oom; p++) {
        pair_rec *r = &t->pr[p];
        if (r->count > 0) heap_push(t, (cand){(uint64_t)r->count, r->a, r->b, p, r->list});
        else list_free(t, r->list);
        r->list = NONE;
    }
    return t->oom ? oom() : RN_OK;
}

static rn_status merge_all(trainer *t) {
    const rn_tokenizer_train_options *o = t->o;
    tk_buf tok = {0};
    double last = seconds();
    uint32_t step = 0;
    while (t->vocab.n < (size_t)o->vocab_size && t->nheap && !t->oom) {
        cand top = heap_pop(t);
        int64_t now = t->pr[top.pair].count;
        if ((int64_t)top.count != now) {
            top.count = now > 0 ? (uint64_t)now : 0;
            heap_push(t, top);
            continue;
        }
        if (top.count < 1 || o->min_frequency > top.count) break;
        tok.len = 0;
        if (tk_buf_add(&tok, strtab_str(&t->vocab, top.a), t->vocab.len[top.a]) ||
            tk_buf_add(&tok, strtab_str(&t->vocab, top.b), t->vocab.len[top.b])) {
            t->oom = 1;
            break;
        }
        int err = 0;
        uint32_t nid = strtab_get(&t->vocab, tok.p, tok.len, 1, &err);
        if (err || grow((void **)&t->merges, &t->mcap, t->nmerges + 1, sizeof *t->merges)) {
            t->oom = 1;
            break;
        }
        t->merges[t->nmerges] = top.pair;
        t->pr[top.pair].last = (int32_t)t->nmerges++;
        step++;
        t->ntouched = 0;
        const wlist *wl = &t->lists[top.list];
        for (uint32_t i = 0; i < wl->n && !t->oom; i++) {
            merge_word(t, wl->w[i], top.a, top.b, nid, step);
            wl = &t->lists[top.list];  /* lists may have moved */
        }
        list_free(t, top.list);
        for (size_t k = 0; k < t->ntouched && !t->oom; k++) {
            pair_rec *r = &t->pr[t->touched[k]];
            if (r->count > 0) heap_push(t, (cand){(uint64_t)r->count, r->a, r->b, t->touched[k], r->list});
            else list_free(t, r->list);
            r->list = NONE;
        }
        if (o->progress && (step & 255) == 0 && seconds() - last > 0.25) {
            o->progress(o->user, "merging", (double)(t->vocab.n - t->base),
                        (double)((size_t)o->vocab_size - t->base));
            last = seconds();
        }
    }
    tk_buf_free(&tok);
    return t->oom ? oom() : RN_OK;
}

/* --------------------------------------------------------------- output */

static cJSON *flags_bytelevel(const char *type, int prefix, int trim) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "type", type);
    cJSON_AddBoolToObject(j, "add_prefix_space", prefix);
    cJSON_AddBoolToObject(j, "trim_offsets", trim);
    cJSON_AddBoolToObject(j, "use_regex", 1);
    return j;
}

/* The pre-tokenizer of each kind, as written in the file and as run on the
 * training text. */
static cJSON *pre_tokenizer_json(rn_tokenizer_kind kind) {
    if (kind == RN_TOKENIZER_BYTELEVEL) return flags_bytelevel("ByteLevel", 0, 1);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "type", "Metaspace");
    cJSON_AddStringToObject(j, "replacement", META);
    cJSON_AddStringToObject(j, "prepend_scheme", "first");
    cJSON_AddBoolToObject(j, "split", 1);
    return j;
}

static cJSON *template_item(const char *kind, const char *id, int type_id) {
    cJSON *x = cJSON_CreateObject(), *in = cJSON_AddObjectToObject(x, kind);
    cJSON_AddStringToObject(in, "id", id);
    cJSON_AddNumberToObject(in, "type_id", type_id);
    return x;
}

/* Mistral / Llama 2's: <s> before each sequence. */
static cJSON *bos_template(void) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "type", "TemplateProcessing");
    cJSON *single = cJSON_AddArrayToObject(j, "single"), *pair = cJSON_AddArrayToObject(j, "pair");
    cJSON_AddItemToArray(single, template_item("SpecialToken", "<s>", 0));
    cJSON_AddItemToArray(single, template_item("Sequence", "A", 0));
    cJSON_AddItemToArray(pair, template_item("SpecialToken", "<s>", 0));
    cJSON_AddItemToArray(pair, template_item("Sequence", "A", 0));
    cJSON_AddItemToArray(pair, template_item("SpecialToken", "<s>", 1));
    cJSON_AddItemToArray(pair, template_item("Sequence", "B", 1));
    cJSON *sp = cJSON_AddObjectToObject(j, "special_tokens"), *s = cJSON_AddObjectToObject(sp, "<s>");
    cJSON_AddStringToObject(s, "id", "<s>");
    cJSON_AddItemToObject(s, "ids", cJSON_CreateIntArray((const int[]){1}, 1));
    cJSON_AddItemToObject(s, "tokens", cJSON_CreateStringArray((const char *const[]){"<s>"}, 1));
    return j;
}

/* Mistral / Llama 2's: "\u2581" back to " ", <0xNN> to bytes, joined, and
 * the space the pre-tokenizer put first dropped. */
static cJSON *sp_decoder(void) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "type", "Sequence");
    cJSON *a = cJSON_AddArrayToObject(j, "decoders"), *x;
    x = cJSON_CreateObject();
    cJSON_AddStringToObject(x, "type", "Replace");
    cJSON_AddStringToObject(cJSON_AddObjectToObject(x, "pattern"), "String", META);
    cJSON_AddStringToObject(x, "content", " ");
    cJSON_AddItemToArray(a, x);
    x = cJSON_CreateObject();
    cJSON_AddStringToObject(x, "type", "ByteFallback");
    cJSON_AddItemToArray(a, x);
    x = cJSON_CreateObject();
    cJSON_AddStringToObject(x, "type", "Fuse");
    cJSON_AddItemToArray(a, x);
    x = cJSON_CreateObject();
    cJSON_AddStringToObject(x, "type", "Strip");
    cJSON_AddStringToObject(x, "content", " ");
    cJSON_AddNumberToObject(x, "start", 1);
    cJSON_AddNumberToObject(x, "stop", 0);
    cJSON_AddItemToArray(a, x);
    return j;
}

static cJSON *str_n(const char *s, size_t n) {
    char *c = malloc(n + 1);
    if (!c) return NULL;
    memcpy(c, s, n);
    c[n] = 0;
    cJSON *j = cJSON_CreateString(c);
    free(c);
    return j;
}

/* The whole tokenizer.json; NULL when out of memory. pre is taken over. */
static cJSON *tokenizer_json(const trainer *t, cJSON *pre) {
    const rn_tokenizer_train_options *o = t->o;
    int sp = o->kind == RN_TOKENIZER_SENTENCEPIECE_BPE;
    cJSON *j = cJSON_CreateObject();
    if (!j) {
        cJSON_Delete(pre);
        return NULL;
    }
    cJSON_AddStringToObject(j, "version", "1.0");
    cJSON_AddNullToObject(j, "truncation");
    cJSON_AddNullToObject(j, "padding");
    cJSON *added = cJSON_AddArrayToObject(j, "added_tokens");
    int nsp = (sp ? 3 : 0) + o->nspecial;
    for (int i = 0; i < nsp; i++) {
        const char *s = sp && i < 3 ? (const char *[]){"<unk>", "<s>", "</s>"}[i] : o->special[i - (sp ? 3 : 0)];
        int err = 0;
        uint32_t id = strtab_get((strtab *)&t->vocab, s, strlen(s), 0, &err);
        int dup = 0;
        for (const cJSON *x = added ? added->child : NULL; x; x = x->next)
            dup |= cJSON_GetObjectItemCaseSensitive(x, "id")->valuedouble == (double)id;
        if (id == NONE || dup) continue;
        cJSON *x = cJSON_CreateObject();
        cJSON_AddNumberToObject(x, "id", id);
        cJSON_AddStringToObject(x, "content", s);
        cJSON_AddBoolToObject(x, "single_word", 0);
        cJSON_AddBoolToObject(x, "lstrip", 0);
        cJSON_AddBoolToObject(x, "rstrip", 0);
        cJSON_AddBoolToObject(x, "normalized", 0);
        cJSON_AddBoolToObject(x, "special", 1);
        cJSON_AddItemToArray(added, x);
    }
    cJSON_AddNullToObject(j, "normalizer");
    cJSON_AddItemToObject(j, "pre_tokenizer", pre);
    cJSON_AddItemToObject(j, "post_processor", sp ? bos_template() : flags_bytelevel("ByteLevel", 1, 0));
    cJSON_AddItemToObject(j, "decoder", sp ? sp_decoder() : flags_bytelevel("ByteLevel", 1, 1));
    cJSON *m = cJSON_AddObjectToObject(j, "model");
    cJSON_AddStringToObject(m, "type", "BPE");
    cJSON_AddNullToObject(m, "dropout");
    if (sp) cJSON_AddStringToObject(m, "unk_token", "<unk>");
    else cJSON_AddNullToObject(m, "unk_token");
    cJSON_AddNullToObject(m, "continuing_subword_prefix");
    cJSON_AddNullToObject(m, "end_of_word_suffix");
    cJSON_AddBoolToObject(m, "fuse_unk", sp);
    cJSON_AddBoolToObject(m, "byte_fallback", sp);
    cJSON_AddBoolToObject(m, "ignore_merges", 0);
    cJSON *v = cJSON_AddObjectToObject(m, "vocab");
    for (uint32_t i = 0; v && i < t->vocab.n; i++) {
        cJSON *num = cJSON_CreateNumber(i);
        char *key = malloc(t->vocab.len[i] + 1);
        if (!num || !key) {
            cJSON_Delete(num);
            free(key);
            cJSON_Delete(j);
            return NULL;
        }
        memcpy(key, strtab_str(&t->vocab, i), t->vocab.len[i]);
        key[t->vocab.len[i]] = 0;
        cJSON_AddItemToObject(v, key, num);
        free(key);
    }
    cJSON *mg = cJSON_AddArrayToObject(m, "merges");
    for (size_t i = 0; mg && i < t->nmerges; i++) {
        const pair_rec *r = &t->pr[t->merges[i]];
        uint32_t a = r->a, b = r->b;
        /* A pair merged twice keeps its last rank, as upstream's merge map. */
        if (r->last != (int32_t)i) continue;
        cJSON *x = cJSON_CreateArray();
        cJSON_AddItemToArray(x, str_n(strtab_str(&t->vocab, a), t->vocab.len[a]));
        cJSON_AddItemToArray(x, str_n(strtab_str(&t->vocab, b), t->vocab.len[b]));
        cJSON_AddItemToArray(mg, x);
    }
    return j;
}

static rn_status write_json(cJSON *j, const char *path) {
    char *text = cJSON_PrintUnformatted(j);
    if (!text) return oom();
    rn_atomic_file af;
    rn_status st = rn_atomic_open(&af, path);
    if (!st) {
        st = rn_atomic_write(&af, text, strlen(text));
        if (!st) st = rn_atomic_write(&af, "\n", 1);
        if (!st) st = rn_atomic_commit(&af);
        else rn_atomic_abort(&af);
    }
    free(text);
    return st;
}

static void trainer_free(trainer *t) {
    strtab_free(&t->words);
    strtab_free(&t->vocab);
    free(t->wcount);
    free(t->sym);
    free(t->woff);
    free(t->wlen);
    free(t->wcnt);
    free(t->pr);
    free(t->pslot);
    free(t->pkey);
    for (size_t i = 0; i < t->nlists; i++) free(t->lists[i].w);
    free(t->lists);
    free(t->freel);
    free(t->heap);
    free(t->merges);
    free(t->touched);
}

static pthread_once_t bytelevel_once = PTHREAD_ONCE_INIT;

static rn_status check_options(const char *const *files, int nfiles, const rn_tokenizer_train_options *o,
                               const char *out) {
    if (!o || !out || !*out) return rni_fail(RN_ERR_ARG, "tokenizer training: no options or no output path");
    if (nfiles < 1 || !files) return rni_fail(RN_ERR_ARG, "tokenizer training: no data files");
    for (int i = 0; i < nfiles; i++)
        if (!files[i] || !*files[i]) return rni_fail(RN_ERR_ARG, "tokenizer training: empty data file name");
    if (o->kind != RN_TOKENIZER_BYTELEVEL && o->kind != RN_TOKENIZER_SENTENCEPIECE_BPE)
        return rni_fail(RN_ERR_ARG, "tokenizer training: unknown kind %d", (int)o->kind);
    if (o->vocab_size < 1 || o->vocab_size > TK_MAX_VOCAB)
        return rni_fail(RN_ERR_ARG, "tokenizer training: vocabulary size %d is outside [1, %d]", o->vocab_size,
                        TK_MAX_VOCAB);
    if (o->nspecial < 0 || o->nspecial > 4096 || (o->nspecial && !o->special))
        return rni_fail(RN_ERR_ARG, "tokenizer training: bad special token list");
    for (int i = 0; i < o->nspecial; i++) {
        const unsigned char *s = (const unsigned char *)o->special[i];
        size_t n = s ? strlen((const char *)s) : 0;
        if (!n) return rni_fail(RN_ERR_ARG, "tokenizer training: an empty special token");
        for (size_t k = 0; k < n;) {
            int32_t cp;
            k += (size_t)tk_utf8_next(s + k, n - k, &cp);
            if (cp < 0) return rni_fail(RN_ERR_ARG, "tokenizer training: special token %zu is not UTF-8", (size_t)i);
        }
    }
    return RN_OK;
}

rn_status rn_tokenizer_train(const char *const *files, int nfiles, const rn_tokenizer_train_options *o,
                             const char *out, rn_tokenizer_train_stats *stats) {
    if (stats) memset(stats, 0, sizeof *stats);
    rn_status st = check_options(files, nfiles, o, out);
    if (st) return st;
    pthread_once(&bytelevel_once, tk_bytelevel_init);
    trainer t = {.o = o};
    double t0 = seconds();
    cJSON *pre_j = pre_tokenizer_json(o->kind);
    tk_pretok *pre = NULL;
    if (!pre_j) return oom();
    if ((st = tk_pretok_load(pre_j, "(training)", "pre_tokenizer", &pre))) {
        cJSON_Delete(pre_j);
        return st;
    }
    st = count_words(&t, files, nfiles, pre, stats);
    tk_pretok_free(pre);
    if (!st && t.words.n == 0)
        st = rni_fail(RN_ERR_FORMAT, "no text to train a tokenizer on in %s%s", files[0], nfiles > 1 ? " ..." : "");
    if (!st) st = build_base(&t);
    if (!st && (size_t)o->vocab_size < t.base)
        st = rni_fail(RN_ERR_ARG,
                      "vocabulary size %d is smaller than the base vocabulary of %zu (%zu special tokens%s and the %zu "
                      "characters of the alphabet)", o->vocab_size, t.base,
                      t.base - t.nalpha - (o->kind == RN_TOKENIZER_SENTENCEPIECE_BPE ? 256 : 0),
                      o->kind == RN_TOKENIZER_SENTENCEPIECE_BPE ? ", 256 byte tokens" : "", t.nalpha);
    double t1 = seconds();
    if (!st) st = count_pairs(&t);
    if (!st) st = merge_all(&t);
    double t2 = seconds();
    cJSON *j = NULL;
    if (!st) {
        j = tokenizer_json(&t, pre_j);
        pre_j = NULL;
        st = j ? write_json(j, out) : oom();
    }
    if (stats) {
        stats->distinct_words = t.words.n;
        for (size_t i = 0; i < t.words.n; i++) stats->words += t.wcount[i];
        stats->base_vocab = (int)t.base;
        stats->vocab_size = (int)t.vocab.n;
        stats->merges = (int)t.nmerges;
        stats->count_seconds = t1 - t0;
        stats->merge_seconds = t2 - t1;
    }
    cJSON_Delete(pre_j);
    cJSON_Delete(j);
    trainer_free(&t);
    return st;
}
