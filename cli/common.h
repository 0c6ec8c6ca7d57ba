/* common.h: what several subcommands share that involves the library:
 * the architecture flags of init and train, loading a model, token lists. */
#ifndef RN_CLI_COMMON_H
#define RN_CLI_COMMON_H

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
/* The same, with f32 (--f32): every weight held as float32, bf16 / f16
 * widened at load and q8_0 / q4_0 dequantised (to compare a model with its
 * stored types against float32). */
rn_model *load_model_as_or_die(const char *path, int f32);
/* made written to a temporary file and loaded back (made freed): the
 * model as `generate` and `serve` hold it (a loaded model's f32 products
 * read its weights packed in panels), for benchmarks. */
rn_model *model_reloaded_or_die(rn_model *made);
/* The --f32 flag of the commands that run a model. */
#define F32_OPT(var) \
    {"f32", OPT_FLAG, &(var), 0, 0, "hold every weight as float32 (16-bit ones widened, q8_0 / q4_0 dequantised) instead of as stored", 0}

/* The tokenizer of a model: override when given ("byte", or a
 * tokenizer.json file or directory), else the tokenizer.json beside the
 * model (its directory, the Hugging Face layout), else the byte tokenizer.
 * Exits with one line when it does not load, or when its ids exceed the
 * model's vocabulary (naming both sizes). */
struct rn_tokenizer;
/* spec: "byte", or a tokenizer.json file or a directory holding one; exits
 * with one line when it does not load. */
struct rn_tokenizer *load_tokenizer_or_die(const char *spec);
struct rn_tokenizer *model_tokenizer(const char *cmd, const char *model_path, const char *override, int vocab);

/* Parses "1,2,3" or "@file" (whitespace/comma separated ids); exits 2 on
 * a bad list. The caller frees the array. */
int32_t *parse_tokens(const char *cmd, const char *spec, int *n);

#endif
