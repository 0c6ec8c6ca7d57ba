#define _POSIX_C_SOURCE 200809L
/* retnet.c: the command-line tool. One subcommand per task; each parses
 * its flags declaratively (args.c) and calls the library. */
#include "args.h"
#include "cli.h"
#include "common.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* -------------------------------------------------------------- init */

int cmd_init(int argc, char **argv) {
    arch_flags af = {"torchscale", NULL, 64, 2, 4, 128, 128, 256};
    int64_t seed = 1;
    const char *out = NULL;
    opt opts[] = {ARCH_OPTS(af),
                  {"seed", OPT_I64, &seed, 0, 9e15, "random seed", 0},
                  {"out", OPT_STR, &out, 0, 0, "output model file (.safetensors)", 0},
                  {0}};
    command_spec cmd = {"init", "--out FILE [--preset P] [--size NAME | --dim D ...]",
                        "Writes a randomly initialised model (the preset's own initialisation).", opts};
    args_parse(&cmd, argc, argv);
    if (!out) die_usage("init", "--out is required");
    rn_config c = arch_config(&cmd, &af);
    rn_model *m;
    if (rn_model_create(&c, &m) != RN_OK) die("%s", rn_last_error());
    rn_model_init_random(m, (uint64_t)seed);
    if (rn_model_save(m, out) != RN_OK) die("%s", rn_last_error());
    printf("wrote %s: %s preset, %zu parameters\n", out, rn_preset_name(c.preset), rn_model_num_params(m));
    rn_model_free(m);
    return 0;
}

/* -------------------------------------------------------------- info */

/* Reads headers and config only: instant whatever the model's size. */
int cmd_info(int argc, char **argv) {
    const char *path = NULL;
    int list = 0, f32 = 0;
    opt opts[] = {{"model", OPT_STR, &path, 0, 0, "model file or directory", 0},
                  {"tensors", OPT_FLAG, &list, 0, 0, "also load the model and list each tensor with its type", 0},
                  F32_OPT(f32),
                  {0}};
    command_spec cmd = {"info", "--model PATH [--tensors [--f32]]",
                        "Prints a model's format, configuration, parameter count, tensor types (the file's and\n"
                        "the weight types the model computes with) and the bytes of weights one decoding step\n"
                        "reads, from the file headers alone (no weights are read; --tensors loads it).",
                        opts};
    args_parse(&cmd, argc, argv);
    if (!path) die_usage("info", "--model is required");
    rn_model_info in;
    if (rn_model_inspect(path, &in) != RN_OK) die("%s", rn_last_error());
    const rn_config *c = &in.config;
    char *js = rn_config_to_json(c);
    size_t np = rn_config_num_params(c);
    printf("model:      %s\n", path);
    printf("format:     %s\n", rn_format_name(in.format));
    printf("files:      %d (%.1f MB)\n", in.n_files, in.file_bytes / 1e6);
    printf("preset:     %s\n", rn_preset_name(c->preset));
    printf("dim:        %d\nvalue dim:  %d\nheads:      %d (key %d, value %d per head)\n", c->dim, c->value_dim,
           c->heads, c->dim / c->heads, c->value_dim / c->heads);
    printf("ffn:        %d\nlayers:     %d\nvocab:      %d\n", c->ffn_dim, c->layers, c->vocab);
    printf("parameters: %zu (%.2f M)\n", np, np / 1e6);
    printf("tensors:    %zu:", in.n_tensors);
    for (int d = 0; d < RN_DTYPE_COUNT; d++)
        if (in.tensor_bytes[d]) printf(" %s %.1f MB", rn_dtype_name((rn_dtype)d), in.tensor_bytes[d] / 1e6);
    if (in.u8_bytes) printf(" u8 %.1f MB", in.u8_bytes / 1e6);
    printf("\nweights:   ");
    for (int t = 0; t < RN_WTYPE_COUNT; t++)
        if (in.wtype_tensors[t])
            printf(" %s %d tensors %.1f MB", rn_wtype_name((rn_wtype)t), in.wtype_tensors[t], in.wtype_bytes[t] / 1e6);
    printf("\nper token:  %.1f MB of weights read by one decoding step\n", in.decode_bytes / 1e6);
    size_t held = 0;
    for (int t = 0; t < RN_WTYPE_COUNT; t++) held += in.wtype_bytes[t];
    if (in.in_place)
        printf("loading:    in place (memory-mapped, no copy)\n");
    else if (in.copy_bytes < held)  /* typed tensors mapped, the others copied */
        printf("loading:    %.1f MB copied into memory, the rest in place (retnet quantize makes a file read wholly in place)\n",
               in.copy_bytes / 1e6);
    else
        printf("loading:    %.1f MB converted into memory (retnet convert --to retnet makes a file read in place)\n",
               in.copy_bytes / 1e6);
    printf("config:     %s\n", js ? js : "");
    free(js);
    if (!list) return 0;
    rn_model *m = load_model_as_or_die(path, f32);
    printf("%-18s %5s %-12s %-5s %12s\n", "tensor", "layer", "shape", "type", "bytes");
    for (int i = 0; i < rn_model_num_tensors(m); i++) {
        rn_tensor_desc t;
        if (rn_model_tensor(m, i, &t) != RN_OK) die("%s", rn_last_error());
        char shape[32];
        snprintf(shape, sizeof shape, t.cols > 1 ? "[%d, %d]" : "[%d]", t.rows, t.cols);
        printf("%-18s %5d %-12s %-5s %12zu\n", t.kind, t.layer, shape, rn_wtype_name(t.wtype), t.bytes);
    }
    printf("per token:  %.1f MB as loaded\n", rn_model_decode_bytes(m) / 1e6);
    rn_model_free(m);
    return 0;
}

/* ------------------------------------------------------------ verify */

int cmd_verify(int argc, char **argv) {
    const char *path = NULL;
    opt opts[] = {{"model", OPT_STR, &path, 0, 0, "model file or directory", 0}, {0}};
    command_spec cmd = {"verify", "--model PATH",
                        "Checks every byte of a model: the checksums of its files and that every value is finite "
                        "(what loading does). Exit 0 and 'ok' when it is sound.",
                        opts};
    args_parse(&cmd, argc, argv);
    if (!path) die_usage("verify", "--model is required");
    if (rn_model_verify(path) != RN_OK) die("%s", rn_last_error());
    printf("ok: %s\n", path);
    return 0;
}

/* ------------------------------------------------------------ logits */

int cmd_logits(int argc, char **argv) {
    const char *path = NULL, *tokens = NULL, *mode_s = "parallel", *out = NULL;
    int chunk = 64, absn = 0, f32 = 0;
    opt opts[] = {{"model", OPT_STR, &path, 0, 0, "model file", 0},
                  {"tokens", OPT_STR, &tokens, 0, 0, "token ids: 1,2,3 or @file (whitespace separated)", 0},
                  {"mode", OPT_STR, &mode_s, 0, 0, "parallel, chunkwise or recurrent", 0},
                  {"chunk", OPT_INT, &chunk, 1, 1 << 20, "chunk length for chunkwise", 0},
                  {"abs-norm", OPT_FLAG, &absn, 0, 0, "torchscale's parallel row clamp", 0},
                  {"out", OPT_STR, &out, 0, 0, "output .npy file: float32 [T, V]", 0},
                  F32_OPT(f32),
                  {0}};
    command_spec cmd = {"logits", "--model FILE --tokens IDS --out FILE.npy [--mode M]",
                        "Writes the logits of one token sequence as a float32 NumPy array [T, V].", opts};
    args_parse(&cmd, argc, argv);
    if (!path || !tokens || !out) die_usage("logits", "--model, --tokens and --out are required");
    rn_mode mode;
    if (rn_mode_from_name(mode_s, &mode) != RN_OK) die_usage("logits", "%s", rn_last_error());
    int T;
    int32_t *ids = parse_tokens("logits", tokens, &T);
    rn_model *m = load_model_as_or_die(path, f32);
    int V = rn_model_config(m)->vocab;
    rn_real *logits = malloc(sizeof(rn_real) * (size_t)T * V);
    rn_state *s;
    if (!logits || rn_state_create(m, 1, &s) != RN_OK) die("out of memory");
    if (rn_forward(m, s, ids, 1, T, mode, chunk, absn ? RN_FWD_ABS_NORM : 0, logits) != RN_OK)
        die("%s", rn_last_error());
    int64_t shape[2] = {T, V};
    if (rn_npy_save(out, logits, 2, shape) != RN_OK) die("%s", rn_last_error());
    fprintf(stderr, "wrote %s: logits [%d, %d] (%s)\n", out, T, V, mode_s);
    rn_state_free(s);
    rn_model_free(m);
    free(logits);
    free(ids);
    return 0;
}

/* -------------------------------------------------------------- main */

static const struct { const char *name; int (*fn)(int, char **); const char *help; } commands[] = {
    {"init", cmd_init, "write a randomly initialised model"},
    {"info", cmd_info, "print a model's configuration (from its headers: instant)"},
    {"verify", cmd_verify, "check a model's checksums and values"},
    {"logits", cmd_logits, "write the logits of a token sequence (.npy)"},
    {"convert", cmd_convert, "convert a model between file formats (torchscale, fla, ...)"},
    {"quantize", cmd_quantize, "write a model with bf16, f16, q8_0 or q4_0 weights"},
    {"grads", cmd_grads, "write the gradients of one sequence's loss (.safetensors)"},
    {"data", cmd_data, "tokenize text into token shards (llm.c's format) for training"},
    {"train", cmd_train, "train a model on a text file or token shards"},
    {"generate", cmd_generate, "generate text from a model"},
    {"eval", cmd_eval, "loss, bits per byte and perplexity of a file"},
    {"tokenize", cmd_tokenize, "text to token ids and back with a tokenizer.json"},
    {"tokenizer", cmd_tokenizer, "tokenizer train: learn a BPE tokenizer.json from text"},
    {"serve", cmd_serve, "an OpenAI-compatible HTTP server (completions, chat, streaming)"},
    {"bench", cmd_bench, "benchmarks against limits measured in the same run"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: retnet <command> [options]\n\nRetentive Networks in C: train, evaluate and run RetNet language models.\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].help);
    fprintf(f, "\nretnet <command> --help shows a command's options.\n");
}

int main(int argc, char **argv) {
    if (argc < 2) { usage(stderr); return 2; }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        if (strcmp(argv[1], commands[i].name) == 0) return commands[i].fn(argc - 2, argv + 2);
    fprintf(stderr, "retnet: unknown command '%s' (see retnet --help)\n", argv[1]);
    return 2;
}
