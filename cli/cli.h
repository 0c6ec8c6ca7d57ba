/* cli.h: pieces shared by the CLI's subcommands. */
#ifndef RN_CLI_H
#define RN_CLI_H

#include "args.h"
#include "retnet.h"

/* Architecture flags shared by init and train. */
typedef struct {
    const char *preset, *size;
    int dim, layers, heads, value_dim, ffn, vocab;
} arch_flags;

#define ARCH_OPTS(af)                                                                                   \
    {"preset", OPT_STR, &(af).preset, 0, 0, "architecture: torchscale, seed or fla", 0},               \
    {"size", OPT_STR, &(af).size, 0, 0, "named size: tiny, small, demo; torchscale also base..65b", 0}, \
    {"dim", OPT_INT, &(af).dim, 2, 65536, "model width d", 0},                                           \
    {"layers", OPT_INT, &(af).layers, 1, 1024, "number of layers", 0},                                   \
    {"heads", OPT_INT, &(af).heads, 1, 4096, "retention heads", 0},                                      \
    {"value-dim", OPT_INT, &(af).value_dim, 1, 65536, "value width over all heads", 0},                  \
    {"ffn", OPT_INT, &(af).ffn, 1, 262144, "FFN width", 0},                                              \
    {"vocab", OPT_INT, &(af).vocab, 1, 4194304, "vocabulary size", 0}

/* Builds a validated config from the flags (exits 2 on a bad combination). */
rn_config arch_config(const command_spec *cmd, const arch_flags *af);

/* Loads a model file or exits with one line. */
rn_model *load_model_or_die(const char *path);

/* Parses "1,2,3" or "@file" (whitespace/comma separated ids). */
int32_t *parse_tokens(const char *cmd, const char *spec, int *n);

double now_seconds(void);

/* retnet bench --case tokenize (bench_tokenize.c): text_path and tokenizer may be NULL. */
void bench_tokenize(const char *text_path, const char *tokenizer, int quick);

int cmd_init(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_logits(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_grads(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);

#endif
