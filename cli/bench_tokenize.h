/* bench_tokenize.h: `retnet bench --case tokenize` and `--case tokenizer-train`
 * (bench_tokenize.c). */
#ifndef RN_CLI_BENCH_TOKENIZE_H
#define RN_CLI_BENCH_TOKENIZE_H

/* Encode MB/s of ours and of the `tokenizers` library (tests/node), one
 * thread each; text_path and tokenizer may be NULL (the defaults). */
void bench_tokenize(const char *text_path, const char *tokenizer, int quick);

/* Seconds of rn_tokenizer_train for 8,192 and 32,768 merges (byte-level,
 * one thread) on text_path (NULL: data/brown.txt), next to the `tokenizers`
 * library's trainer on the same text (tests/node/train.js). */
void bench_tokenizer_train(const char *text_path);

#endif
