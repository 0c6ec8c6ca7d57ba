/* tokenize.c (CLI): `retnet tokenize`: text to ids and ids to text with a
 * Hugging Face tokenizer.json (or the byte tokenizer, --tokenizer byte). */
#define _POSIX_C_SOURCE 200809L
#include "args.h"
#include "cli.h"
#include "common.h"
#include "util.h"
#include "retnet_data.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cmd_tokenize(int argc, char **argv) {
    const char *tpath = NULL, *text = NULL, *file = NULL, *decode = NULL;
    int special = 0, skip = 0, pieces = 0;
    opt opts[] = {{"tokenizer", OPT_STR, &tpath, 0, 0, "tokenizer.json, a directory holding one, or 'byte'", 0},
                  {"text", OPT_STR, &text, 0, 0, "text to encode", 0},
                  {"file", OPT_STR, &file, 0, 0, "encode the bytes of this file", 0},
                  {"special", OPT_FLAG, &special, 0, 0, "add BOS/EOS as the post-processor says", 0},
                  {"decode", OPT_STR, &decode, 0, 0, "ids to decode: \"1 2 3\", \"1,2,3\" or @file", 0},
                  {"skip-special", OPT_FLAG, &skip, 0, 0, "with --decode: drop special tokens", 0},
                  {"pieces", OPT_FLAG, &pieces, 0, 0, "with --decode: each id's raw bytes, concatenated (lossless)", 0},
                  {0}};
    command_spec cmd = {"tokenize", "--tokenizer T (--text S | --file F) [--special] | --tokenizer T --decode IDS",
                        "Prints the ids of a text, separated by single spaces, on one line; or, with\n"
                        "--decode, the text of ids (through the tokenizer's decoder).",
                        opts};
    args_parse(&cmd, argc, argv);
    if (!tpath) die_usage("tokenize", "--tokenizer is required");
    if ((text != NULL) + (file != NULL) + (decode != NULL) != 1)
        die_usage("tokenize", "give exactly one of --text, --file, --decode");
    if ((skip || pieces) && !decode) die_usage("tokenize", "--skip-special and --pieces go with --decode");
    rn_tokenizer *tok = load_tokenizer_or_die(tpath);
    if (decode) {
        int n = 0;
        int32_t *ids = NULL;
        /* No ids at all (an empty encoding) decode to nothing. */
        char *listed = NULL;
        size_t ll = 0;
        if (decode[0] == '@' && rn_read_file(decode + 1, 0, &listed, &ll) != RN_OK) die("%s", rn_last_error());
        if (strpbrk(listed ? listed : decode, "0123456789")) ids = parse_tokens("tokenize", decode, &n);
        free(listed);
        size_t len;
        if (pieces) {
            for (int i = 0; i < n; i++) {
                const char *p;
                if (rn_tokenizer_decode(tok, ids[i], &p, &len) != RN_OK) die("%s", rn_last_error());
                fwrite(p, 1, len, stdout);
            }
            free(ids);
            if (fflush(stdout) != 0) die("cannot write the output");
            rn_tokenizer_free(tok);
            return 0;
        }
        if (rn_tokenizer_decode_all(tok, ids, (size_t)n, skip, NULL, 0, &len) != RN_OK) die("%s", rn_last_error());
        char *out = malloc(len + 1);
        if (!out) die("out of memory");
        if (rn_tokenizer_decode_all(tok, ids, (size_t)n, skip, out, len + 1, &len) != RN_OK) die("%s", rn_last_error());
        fwrite(out, 1, len, stdout);
        free(out);
        free(ids);
    } else {
        char *data = NULL;
        size_t len = 0;
        if (file && rn_read_file(file, 0, &data, &len) != RN_OK) die("%s", rn_last_error());
        const char *s = file ? data : text;
        if (!file) len = strlen(text);
        size_t n;
        if (rn_tokenizer_encode_special(tok, s, len, special, NULL, 0, &n) != RN_OK) die("%s", rn_last_error());
        int32_t *ids = malloc((n ? n : 1) * sizeof *ids);
        if (!ids) die("out of memory");
        if (rn_tokenizer_encode_special(tok, s, len, special, ids, n, &n) != RN_OK) die("%s", rn_last_error());
        /* One buffered line; ids are at most 10 digits. */
        for (size_t i = 0; i < n; i++) printf(i ? " %ld" : "%ld", (long)ids[i]);
        putchar('\n');
        free(ids);
        free(data);
    }
    if (fflush(stdout) != 0) die("cannot write the output");
    rn_tokenizer_free(tok);
    return 0;
}
