/* tokenizer_train.c (CLI): `retnet tokenizer train`: learns a BPE
 * tokenizer from text files and writes a Hugging Face tokenizer.json. */
#define _POSIX_C_SOURCE 200809L
#include "args.h"
#include "cli.h"
#include "util.h"
#include "retnet_data.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    int tty;
    double t0, last;
} progress_state;

/* Redrawn on a terminal; else a line every 10 s. */
static void show_progress(void *user, const char *stage, double done, double total) {
    progress_state *p = user;
    if (!p->tty && now_seconds() - p->last < 10) return;
    p->last = now_seconds();
    char eta[32];
    double el = now_seconds() - p->t0, frac = total > 0 ? done / total : 0;
    format_duration(eta, sizeof eta, frac > 0.01 ? el / frac - el : -1);
    fprintf(stderr, "%s%s: %5.1f%% (%.0f / %.0f), %.1fs, eta %s%s", p->tty ? "\r" : "", stage, 100 * frac, done, total,
            el, eta, p->tty ? "   " : "\n");
}

/* Takes the values after --NAME (up to the next --flag, any number of
 * times) out of argv, so that args_parse sees the rest. */
static int take_list(const char *name, int *argc, char **argv, const char ***vals) {
    int n = 0, k = 0;
    *vals = malloc(sizeof **vals * (size_t)(*argc + 1));
    if (!*vals) die("out of memory");
    for (int i = 0; i < *argc; i++) {
        if (strcmp(argv[i], name) != 0) {
            argv[k++] = argv[i];
            continue;
        }
        int any = 0;
        while (i + 1 < *argc && strncmp(argv[i + 1], "--", 2) != 0) (*vals)[n++] = argv[++i], any = 1;
        if (!any) die_usage("tokenizer train", "%s needs at least one value", name);
    }
    *argc = k;
    return n;
}

static int cmd_tokenizer_train(int argc, char **argv) {
    rn_tokenizer_train_options o;
    rn_tokenizer_train_defaults(&o);
    const char *out = NULL, *kind = "bytelevel", *data_help = NULL, *special_help = NULL;
    double minf = 0;
    int quiet = 0;
    opt opts[] = {{"data", OPT_STR, &data_help, 0, 0, "text files to learn from (one or more)", 0},
                  {"vocab", OPT_INT, &o.vocab_size, 1, 4194304, "vocabulary size, special and base tokens included", 0},
                  {"out", OPT_STR, &out, 0, 0, "the tokenizer.json to write", 0},
                  {"kind", OPT_STR, &kind, 0, 0, "bytelevel (GPT-2 style) or sentencepiece-bpe (Mistral / Llama 2 style)", 0},
                  {"special", OPT_STR, &special_help, 0, 0, "special tokens (one or more), ids 0.. in this order", 0},
                  {"min-frequency", OPT_DOUBLE, &minf, 0, 1e18, "merge only pairs seen at least this often", 0},
                  {"quiet", OPT_FLAG, &quiet, 0, 0, "no progress display", 0},
                  {0}};
    command_spec cmd = {"tokenizer train",
                        "--data FILE... --vocab N --out tokenizer.json [--kind bytelevel|sentencepiece-bpe] "
                        "[--special TOKEN...] [--min-frequency F]",
                        "Learns BPE merges from text files, as Hugging Face tokenizers' BpeTrainer does\n"
                        "(lines are pre-tokenized alone; the most frequent pair first, ties to the\n"
                        "smallest pair of ids), and writes a standard tokenizer.json.",
                        opts};
    const char **files, **special;
    int nfiles = take_list("--data", &argc, argv, &files);
    int nspecial = take_list("--special", &argc, argv, &special);
    args_parse(&cmd, argc, argv);
    if (!nfiles) die_usage(cmd.name, "--data is required");
    if (!out) die_usage(cmd.name, "--out is required");
    if (!args_seen(&cmd, "vocab")) die_usage(cmd.name, "--vocab is required");
    if (strcmp(kind, "bytelevel") == 0) o.kind = RN_TOKENIZER_BYTELEVEL;
    else if (strcmp(kind, "sentencepiece-bpe") == 0) o.kind = RN_TOKENIZER_SENTENCEPIECE_BPE;
    else die_usage(cmd.name, "--kind must be bytelevel or sentencepiece-bpe, not '%s'", kind);
    if (minf != (double)(uint64_t)minf) die_usage(cmd.name, "--min-frequency expects an integer");
    o.min_frequency = (uint64_t)minf;
    o.special = special;
    o.nspecial = nspecial;
    /* The output's directory, like the run directory of train. */
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", out);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = 0;
        if (make_dirs(dir) != 0) die("cannot create %s: %s", dir, strerror(errno));
    }
    progress_state ps = {isatty(2), now_seconds(), now_seconds()};
    if (!quiet) {
        o.progress = show_progress;
        o.user = &ps;
    }
    rn_tokenizer_train_stats s;
    rn_status st = rn_tokenizer_train(files, nfiles, &o, out, &s);
    if (!quiet && ps.tty) fputc('\n', stderr);
    if (st != RN_OK) die("%s", rn_last_error());
    fprintf(stderr,
            "wrote %s: %d tokens (%d base + %d merges) from %zu words (%zu distinct, %.1f MB); words %.1fs, merges "
            "%.1fs\n",
            out, s.vocab_size, s.base_vocab, s.merges, s.words, s.distinct_words, s.bytes / 1e6, s.count_seconds,
            s.merge_seconds);
    free(files);
    free(special);
    return 0;
}

int cmd_tokenizer(int argc, char **argv) {
    if (argc >= 1 && strcmp(argv[0], "train") == 0) return cmd_tokenizer_train(argc - 1, argv + 1);
    if (argc >= 1 && (strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0)) {
        printf("usage: retnet tokenizer train --data FILE... --vocab N --out tokenizer.json [options]\n\n"
               "retnet tokenizer train --help shows its options.\n");
        return 0;
    }
    die_usage("tokenizer", "expected a subcommand: train");
}
