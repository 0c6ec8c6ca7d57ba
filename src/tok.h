/* tok.h: the pieces of the Hugging Face tokenizer (tokenizer.c) shared by
 * its files (not public):
 *   tok_text.c  byte strings, piece lists, PCRE2 regexes, utf8proc, and the
 *               normalizers, pre-tokenizers and decoders;
 *   tok_bpe.c   the BPE model: vocabulary and merge tables, the merge loop,
 *               the cache of encoded pre-tokens.
 * Everything follows the semantics of Hugging Face's `tokenizers` library
 * (Rust, 0.23); comments name the behaviour they reproduce. */
#ifndef RN_TOK_H
#define RN_TOK_H

#include "retnet.h"

#include <stddef.h>
#include <stdint.h>

struct cJSON;

/* ---------------------------------------------------------------- bytes */

/* A growable byte buffer. */
typedef struct {
    char *p;
    size_t len, cap;
} tk_buf;

rn_status tk_buf_reserve(tk_buf *b, size_t extra);
rn_status tk_buf_add(tk_buf *b, const void *s, size_t n);
void tk_buf_free(tk_buf *b);

/* A list of strings: pieces of one text buffer. A piece with id >= 0 is
 * already a token (an added token) and is passed through untouched by the
 * normalizers, pre-tokenizers and the model. */
typedef struct {
    size_t off, len;  /* bytes [off, off + len) of text */
    int32_t id;       /* -1: still text */
    int at_start;     /* begins at offset 0 of the original text */
} tk_piece;

typedef struct {
    tk_buf text;
    tk_piece *v;
    size_t n, cap;
} tk_pieces;

rn_status tk_pieces_push(tk_pieces *l, const char *s, size_t len, int32_t id, int at_start);
void tk_pieces_clear(tk_pieces *l);
void tk_pieces_free(tk_pieces *l);

/* ---------------------------------------------------------------- text */

/* Length of the UTF-8 character at s (n >= 1 bytes left): 1..4, and 1 for a
 * byte that does not begin a valid character (so invalid UTF-8 moves on
 * byte by byte). *cp receives the code point, or -1 for an invalid byte. */
int tk_utf8_next(const unsigned char *s, size_t n, int32_t *cp);
/* Appends the UTF-8 encoding of cp. */
rn_status tk_utf8_put(tk_buf *b, int32_t cp);

/* The GPT-2 byte-to-character map of the ByteLevel pre-tokenizer and
 * decoder: byte b is shown as code point tk_byte_char[b]; tk_char_byte maps
 * back (-1 for a character that is not one of the 256). */
extern int32_t tk_byte_char[256];
int tk_char_byte(int32_t cp);
void tk_bytelevel_init(void);

/* A compiled PCRE2 pattern (UTF, UCP, JIT). */
typedef struct tk_regex tk_regex;
/* pattern is a regex, or (literal != 0) a string matched as is. On a
 * pattern PCRE2 refuses: RN_ERR_FORMAT naming where (file and field). */
rn_status tk_regex_compile(const char *pattern, size_t len, int literal, const char *where,
                           tk_regex **out);
void tk_regex_free(tk_regex *re);
/* The non-empty matches of re in s[0, n), left to right, written as
 * (start, end) pairs into *m (grown as needed, *nm pairs). Empty matches
 * are skipped, as the library's splits drop empty pieces. */
rn_status tk_regex_find_all(const tk_regex *re, const char *s, size_t n, size_t **m, size_t *mcap,
                            size_t *nm);

/* ---------------------------------------------------- pipeline components */

typedef struct tk_normalizer tk_normalizer;
typedef struct tk_pretok tk_pretok;
typedef struct tk_decoder tk_decoder;

/* Per-call scratch of the text pipeline (no allocation per piece once warm). */
typedef struct {
    tk_buf a, b;               /* normalizer ping-pong buffers */
    size_t *m; size_t mcap;    /* regex matches */
    tk_pieces p1, p2;          /* pre-tokenizer ping-pong lists */
} tk_scratch;
void tk_scratch_free(tk_scratch *s);

/* Each loader reads one JSON object (NULL is "none", a NULL component) and
 * fails with RN_ERR_FORMAT naming file and field for what it does not know. */
rn_status tk_normalizer_load(const struct cJSON *j, const char *file, const char *field,
                             tk_normalizer **out);
rn_status tk_pretok_load(const struct cJSON *j, const char *file, const char *field, tk_pretok **out);
rn_status tk_decoder_load(const struct cJSON *j, const char *file, const char *field, tk_decoder **out);
void tk_normalizer_free(tk_normalizer *n);
void tk_pretok_free(tk_pretok *p);
void tk_decoder_free(tk_decoder *d);

/* Normalizes s (n bytes) into out (replaced). n may be NULL (copies). */
rn_status tk_normalize(const tk_normalizer *nz, const char *s, size_t n, tk_scratch *sc, tk_buf *out);
/* Pre-tokenizes every text piece of *in; on return *in holds the result
 * (the lists are swapped with sc->p1 / sc->p2). */
rn_status tk_pretokenize(const tk_pretok *pt, tk_pieces **in, tk_scratch *sc);
/* Runs the decoder chain over a list of token strings (in place) and
 * leaves the joined result in *out. NULL decoder: tokens joined by " ". */
rn_status tk_decode_chain(const tk_decoder *d, tk_pieces *toks, tk_pieces *tmp, tk_buf *out);
/* The bytes one token stands for (the vtable's per-id decode): the
 * decoder chain's per-token steps (ByteLevel's byte map undone, <0xNN> as
 * that byte, Replace, Metaspace's replacement as a space) without the
 * sequence-level ones (Strip, Fuse, Metaspace's first-token strip). */
rn_status tk_decode_piece(const tk_decoder *d, const char *tok, size_t n, tk_buf *out);
/* Does the decoder chain undo the byte-level map / fall back to bytes? */
int tk_decoder_has(const tk_decoder *d, const char *type);
int tk_pretok_has(const tk_pretok *p, const char *type);

/* ------------------------------------------------------------------ BPE */

typedef struct tk_bpe tk_bpe;

/* Largest vocabulary id + 1 accepted (the CLI's --vocab limit). */
#define TK_MAX_VOCAB 4194304

/* Reads a BPE model object ("model" of tokenizer.json). */
rn_status tk_bpe_load(const struct cJSON *model, const char *file, tk_bpe **out);
/* GPT-2's vocab.json (token -> id) and merges.txt ("a b" per line). */
rn_status tk_bpe_load_files(const char *vocab_json, const char *vocab_path, const char *merges_txt,
                            size_t merges_len, const char *merges_path, tk_bpe **out);
void tk_bpe_free(tk_bpe *m);
/* Largest id + 1, and the number of tokens (they differ when ids have holes). */
int32_t tk_bpe_vocab_size(const tk_bpe *m);
size_t tk_bpe_vocab_count(const tk_bpe *m);
/* Token string of id (NULL if none); *len its length. */
const char *tk_bpe_id_to_token(const tk_bpe *m, int32_t id, size_t *len);
int32_t tk_bpe_token_to_id(const tk_bpe *m, const char *s, size_t n);
int tk_bpe_byte_fallback(const tk_bpe *m);

/* Per-call scratch of the merge loop. */
typedef struct tk_bpe_scratch tk_bpe_scratch;
void tk_bpe_scratch_free(tk_bpe_scratch *s);
/* Encodes one pre-token (n > 0 bytes), appending its ids to *ids (grown). */
rn_status tk_bpe_encode(const tk_bpe *m, const char *s, size_t n, tk_bpe_scratch **sc,
                        int32_t **ids, size_t *nids, size_t *cap);

#endif
