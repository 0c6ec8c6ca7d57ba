/*
 * retnet_data.h: tokenizers and the training dataset of libretnet.
 *
 * Same conventions as retnet.h: functions that can fail return rn_status and
 * leave a one-line message for rn_last_error(); the library never prints.
 * Token ids are int32_t in [0, vocab_size). Shapes are given as (dim0, ...),
 * row-major.
 */
#ifndef RETNET_DATA_H
#define RETNET_DATA_H

#include "retnet.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------- tokenizer */

/* A tokenizer is a small vtable, so that the byte-level tokenizer and the BPE
 * tokenizer to come serve the same callers. Call it through the
 * rn_tokenizer_* wrappers below, which check their arguments. An
 * implementation may put its own data after this struct (or behind impl). */
typedef struct rn_tokenizer rn_tokenizer;
struct rn_tokenizer {
    int vocab_size;    /* ids are 0 .. vocab_size-1 */
    const char *name;  /* short kind name, e.g. "byte" */
    /* Encodes len bytes of text. Writes the first min(n, cap) ids to ids
     * (cap); sets *n to the length n of the full encoding. */
    rn_status (*encode)(const rn_tokenizer *tok, const char *text, size_t len,
                        int32_t *ids, size_t cap, size_t *n);
    /* Points *piece at the bytes of one id (*len of them, not
     * NUL-terminated), owned by the tokenizer; the id is in range. */
    void (*decode)(const rn_tokenizer *tok, int32_t id, const char **piece, size_t *len);
    /* Releases the tokenizer and everything it owns. */
    void (*free)(rn_tokenizer *tok);
    void *impl;        /* implementation data */
};

/* The byte-level tokenizer: vocab_size 256, id = byte value, every byte
 * string encodes losslessly to as many ids as it has bytes. */
RN_API rn_status rn_tokenizer_byte_create(rn_tokenizer **out);

/* Encodes text (len bytes, not necessarily NUL-terminated) into ids (cap).
 * On RN_OK, *n is the number of ids of the whole text; if *n > cap, only the
 * first cap ids were written (call again with a buffer of *n). ids may be
 * NULL when cap is 0, to ask for the count. For the byte-level tokenizer
 * *n == len; a tokenizer.json may give more ids than bytes (a prepended
 * space or U+2581, normalizer expansions), so size buffers by the count. */
RN_API rn_status rn_tokenizer_encode(const rn_tokenizer *tok, const char *text, size_t len,
                              int32_t *ids, size_t cap, size_t *n);

/* Points *piece at the bytes that id stands for (*len of them, not
 * NUL-terminated; valid until the tokenizer is freed). RN_ERR_ARG if id is
 * outside [0, vocab_size). */
RN_API rn_status rn_tokenizer_decode(const rn_tokenizer *tok, int32_t id,
                              const char **piece, size_t *len);

/* Frees a tokenizer (NULL is a no-op). */
RN_API void rn_tokenizer_free(rn_tokenizer *tok);

/* ------------------------------------------- Hugging Face tokenizer.json */

/* Loads a Hugging Face tokenizer with the semantics of the `tokenizers`
 * library (model type BPE only). path: a tokenizer.json file, or a
 * directory holding one, or GPT-2's vocab.json + merges.txt (read with
 * GPT-2's ByteLevel pipeline; "<|endoftext|>" becomes a special token). A
 * tokenizer_config.json beside it gives bos_token, eos_token,
 * add_bos_token, add_eos_token. Supported components: normalizers
 * Sequence, Prepend, Replace, NFC, NFKC, NFD, NFKD, Lowercase, Strip;
 * pre-tokenizers ByteLevel, Split, Metaspace, Digits, Punctuation,
 * Whitespace, WhitespaceSplit, Sequence; decoders ByteLevel, Metaspace,
 * Replace, ByteFallback, Fuse, Strip, Sequence; post-processors
 * TemplateProcessing, BertProcessing, RobertaProcessing, ByteLevel,
 * Sequence. Anything else (another model type, an unknown component, a
 * regex PCRE2 refuses, merges naming unknown tokens, duplicate ids,
 * malformed JSON) is RN_ERR_FORMAT with one line naming the file and the
 * field. The tokenizer may be used from several threads at once.
 *
 * Its vtable decode (rn_tokenizer_decode) gives the bytes one id stands
 * for: the decoder chain's per-token steps (the GPT-2 byte map undone for
 * ByteLevel, "<0xNN>" as byte NN for ByteFallback, Replace, the Metaspace
 * replacement as a space) without the sequence-level steps (Strip, Fuse,
 * and Metaspace's removal of the first token's leading space). So for
 * byte-level and byte-fallback tokenizers the concatenated pieces of an
 * encoding are exactly the encoded bytes, including invalid UTF-8, after
 * the normalizer: for Mistral/Llama-2 style files (Prepend "\u2581",
 * spaces as "\u2581") that is " " + text, the leading space that
 * rn_tokenizer_decode_all strips. Added tokens decode to their content. */
RN_API rn_status rn_tokenizer_load(const char *path, rn_tokenizer **out);

/* The beginning / end of sequence ids (tokenizer_config.json's bos_token /
 * eos_token, else the post-processor's first / last special token), or -1. */
RN_API int32_t rn_tokenizer_bos(const rn_tokenizer *t);
RN_API int32_t rn_tokenizer_eos(const rn_tokenizer *t);

/* rn_tokenizer_encode, and with add_special != 0 the special tokens of the
 * post-processor around the text (tokenizer_config.json's add_bos_token /
 * add_eos_token take precedence when it gives either). Without it, as
 * rn_tokenizer_encode, no special token is added, but added tokens written
 * in the text are still matched (as `tokenizers` does with
 * add_special_tokens false). Same count-then-fill convention. */
RN_API rn_status rn_tokenizer_encode_special(const rn_tokenizer *t, const char *text, size_t len,
                                             int add_special, int32_t *ids, size_t cap, size_t *n);

/* Full decode through the decoder pipeline, as `tokenizers`' decode (so
 * invalid UTF-8 comes out as U+FFFD): skip_special drops special added
 * tokens. Writes the first min(*len, cap) bytes to out, and a NUL after
 * them when *len < cap; *len is the full length. RN_ERR_ARG for an id
 * outside [0, vocab_size). For other tokenizers: the pieces concatenated. */
RN_API rn_status rn_tokenizer_decode_all(const rn_tokenizer *t, const int32_t *ids, size_t n,
                                         int skip_special, char *out, size_t cap, size_t *len);

/* Token string <-> id (added tokens first, then the model's vocabulary):
 * -1 / NULL when absent. The string is owned by the tokenizer. */
RN_API int32_t rn_tokenizer_token_to_id(const rn_tokenizer *t, const char *token);
RN_API const char *rn_tokenizer_id_to_token(const rn_tokenizer *t, int32_t id);

/* ------------------------------------------------- training a tokenizer */

typedef enum {
    /* GPT-2 style: the ByteLevel pre-tokenizer (GPT-2's regex, every byte
     * a character) and decoder; all 256 bytes in the vocabulary, so every
     * byte string encodes and decodes losslessly. */
    RN_TOKENIZER_BYTELEVEL = 0,
    /* Mistral / Llama 2 style: spaces as U+2581 (Metaspace, prepended to
     * the text), <unk> <s> </s> as ids 0 1 2, the 256 "<0xNN>" tokens for
     * byte fallback, then the characters seen; BOS added by the template. */
    RN_TOKENIZER_SENTENCEPIECE_BPE = 1
} rn_tokenizer_kind;

typedef struct {
    rn_tokenizer_kind kind;
    int vocab_size;              /* target size, special and base tokens included */
    const char *const *special;  /* nspecial special tokens (UTF-8), ids 0.. */
    int nspecial;
    uint64_t min_frequency;      /* a merge needs a pair seen this often (0: any) */
    /* Called now and then on long work (may be NULL): stage is
     * "counting words" (done/total in bytes) or "merging" (in merges). */
    void (*progress)(void *user, const char *stage, double done, double total);
    void *user;
} rn_tokenizer_train_options;

typedef struct {
    size_t bytes;                /* text read */
    size_t words, distinct_words;/* pre-tokens, and distinct ones */
    int base_vocab;              /* specials + byte tokens + alphabet */
    int merges, vocab_size;      /* learned; the final vocabulary */
    double count_seconds;        /* reading and counting words */
    double merge_seconds;        /* counting pairs and merging */
} rn_tokenizer_train_stats;

/* kind byte-level, vocab_size 8192, no special tokens, no progress. */
RN_API void rn_tokenizer_train_defaults(rn_tokenizer_train_options *o);

/* Learns a BPE tokenizer from the text files (nfiles, read line by line in
 * bounded memory: the distinct pre-tokens, not the text) and writes it as
 * a Hugging Face tokenizer.json at out, atomically. The merges are those
 * of the `tokenizers` library's BpeTrainer on the same files: the most
 * frequent pair first, ties to the smallest (left id, right id), pairs
 * never crossing a pre-token; learning stops at vocab_size tokens or when
 * no pair is left. stats (may be NULL) receives the figures. Errors: a
 * missing or unreadable file (RN_ERR_IO), no text (RN_ERR_FORMAT),
 * vocab_size below the base vocabulary or a bad option (RN_ERR_ARG). */
RN_API rn_status rn_tokenizer_train(const char *const *files, int nfiles, const rn_tokenizer_train_options *o,
                                    const char *out, rn_tokenizer_train_stats *stats);

/* ---------------------------------------------------------------- files */

/* Reads a whole file into a new buffer, *data (*len bytes, plus a NUL after
 * the last byte, so text can be used as a C string); release it with free().
 * Fails with RN_ERR_IO (cannot open, is a directory, read error) or
 * RN_ERR_ARG (larger than max_bytes; 0 means no limit); the message names
 * the file. On failure *data is NULL and *len 0. */
RN_API rn_status rn_read_file(const char *path, size_t max_bytes, char **data, size_t *len);

/* ---------------------------------------------------------------- shards */

/* Token shards in llm.c's format (dev/data/data_common.py write_datafile):
 * a header of 256 little-endian int32, [0] magic, [1] version, [2] the
 * token count n (the rest 0), then n tokens, little-endian:
 *   magic 20240520, version 1: uint16 tokens (GPT-2 files; vocab <= 65536)
 *   magic 20240801, version 7: uint32 tokens (llm.c's Llama 3 files)
 *   magic 20240520, version 2: uint32 tokens (read too)
 * The file is exactly 1024 + n * width bytes. */
#define RN_SHARD_HEADER_INTS 256
#define RN_SHARD_MAGIC 20240520
#define RN_SHARD_MAGIC_U32 20240801
#define RN_SHARD_VERSION_U32 7
/* The most tokens one shard holds: the count is an int32. */
#define RN_SHARD_MAX_TOKENS ((size_t)INT32_MAX)

/* A shard file, memory-mapped read-only: opening reads the header alone
 * (the tokens are paged in as they are read), so a shard may be larger
 * than memory. */
typedef struct rn_shard rn_shard;

/* Maps the shard at path and checks its header: magic and version (one of
 * the three above), a count >= 1, and a file size of exactly 1024 + count *
 * width bytes (so a truncated or padded file is refused). RN_ERR_IO when it
 * cannot be opened, RN_ERR_FORMAT otherwise; the message names the file. */
RN_API rn_status rn_shard_open(const char *path, rn_shard **out);

/* Unmaps and frees a shard (NULL is a no-op). */
RN_API void rn_shard_close(rn_shard *s);

/* Number of tokens; bytes per token (2 or 4); the path it was opened from. */
RN_API size_t rn_shard_size(const rn_shard *s);
RN_API int rn_shard_width(const rn_shard *s);
RN_API const char *rn_shard_path(const rn_shard *s);

/* Copies tokens [pos, pos + n) to out (n). With vocab_size > 0 every token
 * must be below it: RN_ERR_FORMAT naming the shard, the position and the
 * id otherwise. RN_ERR_ARG when the range is outside the shard. */
RN_API rn_status rn_shard_read(const rn_shard *s, size_t pos, size_t n, int vocab_size, int32_t *out);

/* Writes one shard atomically (a temporary beside path, fsync'ed and
 * renamed over path at close): uint16 tokens (magic 20240520, version 1)
 * when vocab_size <= 65536, else uint32 (20240801, version 7), as llm.c's
 * write_datafile writes for GPT-2 and Llama 3. Tokens are streamed to the
 * file, not held in memory; the count goes into the header at close. */
typedef struct rn_shard_writer rn_shard_writer;
RN_API rn_status rn_shard_writer_open(const char *path, int vocab_size, rn_shard_writer **out);

/* Appends n tokens, each in [0, vocab_size) (RN_ERR_ARG otherwise, or when
 * the shard would pass RN_SHARD_MAX_TOKENS). */
RN_API rn_status rn_shard_writer_write(rn_shard_writer *w, const int32_t *tokens, size_t n);

/* Tokens written so far. */
RN_API size_t rn_shard_writer_count(const rn_shard_writer *w);

/* Finishes the header and commits the file; frees w, also on failure
 * (then nothing is left at path). A shard needs at least one token. */
RN_API rn_status rn_shard_writer_close(rn_shard_writer *w);

/* Drops the file being written and frees w (NULL is a no-op). */
RN_API void rn_shard_writer_abort(rn_shard_writer *w);

/* --------------------------------------------------------------- dataset */

/* A token stream split in two: the training split and the validation
 * split. Read from a text file or from tokens in memory, it is one
 * contiguous array (the validation split the last val_fraction of the
 * tokens); opened from a directory of shards, each split is its shards
 * one after another, read where they are mapped. */
typedef struct rn_dataset rn_dataset;

typedef enum { RN_SPLIT_TRAIN = 0, RN_SPLIT_VAL = 1 } rn_split;

/* Largest text file rn_dataset_open reads. */
#define RN_DATASET_MAX_BYTES ((size_t)1 << 34)

/* Reads the text file at path, tokenizes it whole with tok and splits it:
 * the last round(n * val_fraction) tokens are the validation split, the rest
 * the training split. val_fraction is in [0, 1); with 0 there is no
 * validation split. Errors (messages name the file): missing or unreadable
 * file (RN_ERR_IO), empty file, or too few tokens for each split in use to
 * hold at least 2 tokens, one (input, target) pair (RN_ERR_FORMAT). tok is
 * only used during the call. */
RN_API rn_status rn_dataset_open(const char *path, const rn_tokenizer *tok, double val_fraction,
                          rn_dataset **out);

/* The same from tokens (n) already in memory (they are copied), for tests
 * and for callers with their own reader. Every token must be in
 * [0, vocab_size). */
RN_API rn_status rn_dataset_from_tokens(const int32_t *tokens, size_t n, int vocab_size,
                                 double val_fraction, rn_dataset **out);

/* A directory of shards (rn_shard_open): every regular file in dir whose
 * name ends in ".bin" and has "train" or "val" as a word (delimited by
 * '_', '-', '.' or the ends: "fineweb_train_000001.bin", "val_000000.bin",
 * "tiny_shakespeare_val.bin"; the last such word counts) belongs to that
 * split; others are ignored. Each split is its shards in name order, as
 * one stream (a window may run from one shard into the next, as llm.c's
 * shards are documents one after another). The shards are mapped, not
 * read: resident memory stays bounded whatever their size. Tokens are
 * checked against vocab_size (>= 1) as they are read, not at open (which
 * reads only the headers): rn_dataset_sample and rn_dataset_window fail
 * with RN_ERR_FORMAT naming the shard when a window holds a token >=
 * vocab_size. Errors: no training shard, a bad shard (rn_shard_open's
 * errors), RN_ERR_IO when dir cannot be read. The validation split may be
 * empty (no val shard). */
RN_API rn_status rn_dataset_open_shards(const char *dir, int vocab_size, rn_dataset **out);

/* Number of shards of a split (0 for a dataset not made of shards), and
 * the i-th of them in order (NULL when i is out of range), owned by ds. */
RN_API size_t rn_dataset_num_shards(const rn_dataset *ds, rn_split split);
RN_API const rn_shard *rn_dataset_shard(const rn_dataset *ds, rn_split split, size_t i);

/* Copies tokens [pos, pos + n) of a split to out (n): works for every
 * dataset, contiguous or not. RN_ERR_ARG when the range is outside the
 * split; RN_ERR_FORMAT (naming the shard) for a token >= the vocabulary. */
RN_API rn_status rn_dataset_read(const rn_dataset *ds, rn_split split, size_t pos, size_t n, int32_t *out);

/* Frees a dataset (NULL is a no-op). */
RN_API void rn_dataset_free(rn_dataset *ds);

/* Number of tokens in a split (0 for an unknown split). */
RN_API size_t rn_dataset_size(const rn_dataset *ds, rn_split split);

/* The tokens of a split (rn_dataset_size of them), owned by the dataset;
 * NULL for a dataset of shards, whose tokens are not one int32 array (read
 * them with rn_dataset_read). */
RN_API const int32_t *rn_dataset_tokens(const rn_dataset *ds, rn_split split);

/* Vocabulary size the tokens were checked against. */
RN_API int rn_dataset_vocab_size(const rn_dataset *ds);

/* A training batch: B windows of T+1 consecutive tokens of the split, each
 * starting at a position drawn uniformly from [0, size - T - 1] with rng
 * (so the data order is fully captured by the rng state). For window b:
 *   x[b*T + t] = window_b[t],  y[b*T + t] = window_b[t + 1],  t < T,
 * so y is x shifted by one: the next-token targets. x, y: (B, T).
 * RN_ERR_ARG if B < 1, T < 1, or the split has fewer than T+1 tokens;
 * for shards RN_ERR_FORMAT as rn_dataset_read. Allocates nothing. */
RN_API rn_status rn_dataset_sample(const rn_dataset *ds, rn_split split, rn_rng *rng, int B, int T,
                            int32_t *x, int32_t *y);

/* Number of windows of rn_dataset_window for the split and T: every one of
 * the size-1 targets of the split (tokens 1 .. size-1) is in exactly one
 * window, ceil((size - 1) / T) of them (0 if size < 2 or T < 1). */
RN_API size_t rn_dataset_num_windows(const rn_dataset *ds, rn_split split, int T);

/* The index-th evaluation window: with s = index * T and
 * n = min(T, size - 1 - s), x[t] = tokens[s + t] and y[t] = tokens[s + t + 1]
 * for t < n. Consecutive windows are adjacent (window i+1 starts where the
 * targets of window i end), so together they predict each token of the split
 * once. Only the last window may be short (n < T); entries n .. T-1 of x and
 * y are set to 0 and must be ignored. x, y: (T). RN_ERR_ARG if T < 1 or
 * index >= rn_dataset_num_windows; for shards RN_ERR_FORMAT as
 * rn_dataset_read. Allocates nothing. */
RN_API rn_status rn_dataset_window(const rn_dataset *ds, rn_split split, size_t index, int T,
                            int32_t *x, int32_t *y, int *n);

#ifdef __cplusplus
}
#endif
#endif /* RETNET_DATA_H */
