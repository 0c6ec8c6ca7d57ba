#define _POSIX_C_SOURCE 200809L
/* retnet.c: the command-line tool. One subcommand per task; each parses
 * its flags declaratively (args.c) and calls the library. */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ shared */

rn_config arch_config(const command_spec *cmd, const arch_flags *af) {
    rn_config c;
    memset(&c, 0, sizeof c);
    rn_preset p;
    if (rn_preset_from_name(af->preset, &p) != RN_OK) die_usage(cmd->name, "%s", rn_last_error());
    const char *size = af->size;
    if (!size && !args_seen(cmd, "dim")) size = "tiny";
    c.vocab = af->vocab;
    if (size && rn_config_preset(&c, p, size) != RN_OK) die_usage(cmd->name, "%s", rn_last_error());
    if (!size) rn_config_preset(&c, p, NULL);
    if (args_seen(cmd, "dim")) c.dim = af->dim;
    if (args_seen(cmd, "layers")) c.layers = af->layers;
    if (args_seen(cmd, "heads")) c.heads = af->heads;
    if (args_seen(cmd, "ffn")) c.ffn_dim = af->ffn;
    if (args_seen(cmd, "value-dim")) c.value_dim = af->value_dim;
    else if (!size || args_seen(cmd, "dim")) c.value_dim = 2 * c.dim;
    if (!size && !args_seen(cmd, "ffn")) c.ffn_dim = 2 * c.dim;
    if (!size && !args_seen(cmd, "layers")) c.layers = 2;
    if (!size && !args_seen(cmd, "heads")) c.heads = c.dim >= 64 ? 4 : 1;
    c.vocab = af->vocab;
    if (rn_config_validate(&c) != RN_OK) die_usage(cmd->name, "%s", rn_last_error());
    return c;
}

rn_model *load_model_or_die(const char *path) {
    rn_model *m;
    if (rn_model_load(path, &m) != RN_OK) die("%s", rn_last_error());
    return m;
}

int32_t *parse_tokens(const char *cmd, const char *spec, int *n) {
    char *text = NULL;
    if (spec[0] == '@') {
        FILE *f = fopen(spec + 1, "rb");
        if (!f) die("cannot open %s: %s", spec + 1, strerror(errno));
        size_t cap = 1 << 16, len = 0;
        text = malloc(cap + 1);
        size_t r;
        while (text && (r = fread(text + len, 1, cap - len, f)) > 0) {
            len += r;
            if (len == cap) {
                if (cap > ((size_t)1 << 30)) die("%s: too large", spec + 1);
                char *t = realloc(text, 2 * cap + 1);
                if (!t) die("out of memory");
                text = t; cap *= 2;
            }
        }
        fclose(f);
        if (!text) die("out of memory");
        text[len] = 0;
    } else {
        text = strdup(spec);
        if (!text) die("out of memory");
    }
    size_t cap = 1024, cnt = 0;
    int32_t *out = malloc(cap * sizeof *out);
    char *p = text;
    while (out) {
        while (*p == ',' || *p == ' ' || *p == '\n' || *p == '\t' || *p == '\r') p++;
        if (!*p) break;
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 0 || v > INT32_MAX || (*end && !strchr(", \n\t\r", *end)))
            die_usage(cmd, "bad token id near '%.16s'", p);
        if (cnt == cap) {
            int32_t *t = realloc(out, 2 * cap * sizeof *out);
            if (!t) die("out of memory");
            out = t; cap *= 2;
        }
        out[cnt++] = (int32_t)v;
        p = end;
    }
    free(text);
    if (!out) die("out of memory");
    if (cnt == 0) die_usage(cmd, "no tokens given");
    if (cnt > 10000000) die_usage(cmd, "too many tokens (%zu)", cnt);
    *n = (int)cnt;
    return out;
}

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

int cmd_info(int argc, char **argv) {
    const char *path = NULL;
    opt opts[] = {{"model", OPT_STR, &path, 0, 0, "model file", 0}, {0}};
    command_spec cmd = {"info", "--model FILE", "Prints a model's configuration and parameter count.", opts};
    args_parse(&cmd, argc, argv);
    if (!path) die_usage("info", "--model is required");
    rn_model *m;
    rn_format fmt;
    if (rn_model_load_ex(path, &m, &fmt) != RN_OK) die("%s", rn_last_error());
    const rn_config *c = rn_model_config(m);
    char *js = rn_config_to_json(c);
    printf("model:      %s\n", path);
    printf("format:     %s\n", rn_format_name(fmt));
    printf("preset:     %s\n", rn_preset_name(c->preset));
    printf("dim:        %d\nvalue dim:  %d\nheads:      %d (key %d, value %d per head)\n", c->dim, c->value_dim,
           c->heads, c->dim / c->heads, c->value_dim / c->heads);
    printf("ffn:        %d\nlayers:     %d\nvocab:      %d\n", c->ffn_dim, c->layers, c->vocab);
    printf("parameters: %zu (%.2f M)\n", rn_model_num_params(m), rn_model_num_params(m) / 1e6);
    printf("config:     %s\n", js ? js : "");
    free(js);
    rn_model_free(m);
    return 0;
}

/* ------------------------------------------------------------ logits */

int cmd_logits(int argc, char **argv) {
    const char *path = NULL, *tokens = NULL, *mode_s = "parallel", *out = NULL;
    int chunk = 64, absn = 0;
    opt opts[] = {{"model", OPT_STR, &path, 0, 0, "model file", 0},
                  {"tokens", OPT_STR, &tokens, 0, 0, "token ids: 1,2,3 or @file (whitespace separated)", 0},
                  {"mode", OPT_STR, &mode_s, 0, 0, "parallel, chunkwise or recurrent", 0},
                  {"chunk", OPT_INT, &chunk, 1, 1 << 20, "chunk length for chunkwise", 0},
                  {"abs-norm", OPT_FLAG, &absn, 0, 0, "torchscale's parallel row clamp", 0},
                  {"out", OPT_STR, &out, 0, 0, "output .npy file: float32 [T, V]", 0},
                  {0}};
    command_spec cmd = {"logits", "--model FILE --tokens IDS --out FILE.npy [--mode M]",
                        "Writes the logits of one token sequence as a float32 NumPy array [T, V].", opts};
    args_parse(&cmd, argc, argv);
    if (!path || !tokens || !out) die_usage("logits", "--model, --tokens and --out are required");
    rn_mode mode;
    if (rn_mode_from_name(mode_s, &mode) != RN_OK) die_usage("logits", "%s", rn_last_error());
    int T;
    int32_t *ids = parse_tokens("logits", tokens, &T);
    rn_model *m = load_model_or_die(path);
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
    {"info", cmd_info, "print a model's configuration"},
    {"logits", cmd_logits, "write the logits of a token sequence (.npy)"},
    {"convert", cmd_convert, "convert a model between file formats (torchscale, fla, ...)"},
    {"grads", cmd_grads, "write the gradients of one sequence's loss (.safetensors)"},
    {"train", cmd_train, "train a model on a text file"},
    {"generate", cmd_generate, "generate text from a model"},
    {"eval", cmd_eval, "loss, bits per byte and perplexity of a file"},
    {"tokenize", cmd_tokenize, "text to token ids and back with a tokenizer.json"},
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
