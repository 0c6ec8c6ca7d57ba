/* bench_tokenize.h: `retnet bench --case tokenize` (bench_tokenize.c). */
#ifndef RN_CLI_BENCH_TOKENIZE_H
#define RN_CLI_BENCH_TOKENIZE_H

/* Encode MB/s of ours and of the `tokenizers` library (tests/node), one
 * thread each; text_path and tokenizer may be NULL (the defaults). */
void bench_tokenize(const char *text_path, const char *tokenizer, int quick);

#endif
