/* generate.c (CLI): `retnet generate` (streamed sampling) and `retnet eval`
 * (loss, bits per byte and perplexity of a whole file). */
#define _POSIX_C_SOURCE 200809L
#include "args.h"
#include "cli.h"
#include "common.h"
#include "retnet_data.h"
#include "util.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t gen_stop = 0;
static void on_gen_signal(int sig) { (void)sig; gen_stop = 1; }

int cmd_generate(int argc, char **argv) {
    const char *path = NULL, *prompt = NULL, *prompt_file = NULL, *tok_path = NULL;
    int n = 256, chunk = 256, ignore_eos = 0, f32 = 0;
    rn_sampler_config sc;
    rn_sampler_config_default(&sc);
    int64_t seed = 1;
    int threads = 0;
    opt opts[] = {{"model", OPT_STR, &path, 0, 0, "model file", 0},
                  {"prompt", OPT_STR, &prompt, 0, 0, "prompt text", 0},
                  {"prompt-file", OPT_STR, &prompt_file, 0, 0, "read the prompt from a file", 0},
                  {"n", OPT_INT, &n, 0, 1e9, "tokens to generate", 0},
                  {"temperature", OPT_DOUBLE, &sc.temperature, 0, 100, "sampling temperature (0: greedy)", 0},
                  {"top-k", OPT_INT, &sc.top_k, 0, 1e9, "keep the k most likely tokens (0: all)", 0},
                  {"top-p", OPT_DOUBLE, &sc.top_p, 1e-9, 1, "nucleus: smallest set with this probability mass", 0},
                  {"seed", OPT_I64, &seed, 0, 9e15, "sampling seed", 0},
                  {"chunk", OPT_INT, &chunk, 1, 1 << 20, "chunk length of the prompt prefill", 0},
                  {"threads", OPT_INT, &threads, 1, 1024, "threads (default: all cores)", 0},
                  {"tokenizer", OPT_STR, &tok_path, 0, 0, "tokenizer.json file or directory, or byte (default: the model directory's tokenizer.json, else byte)", 0},
                  {"ignore-eos", OPT_FLAG, &ignore_eos, 0, 0, "go on past the tokenizer's end-of-sequence token", 0},
                  F32_OPT(f32),
                  {0}};
    command_spec cmd = {"generate", "--model FILE [--prompt TEXT | --prompt-file F] [--n N] [--temperature T] ...",
                        "Generates text: the prompt is prefilled chunkwise, then each token costs one\n"
                        "recurrent step (constant time and memory). Tokens stream to stdout; speeds to stderr.",
                        opts};
    for (int i = 0; i < argc; i++)
        if (strcmp(argv[i], "-n") == 0) argv[i] = "--n";
    args_parse(&cmd, argc, argv);
    if (!path) die_usage("generate", "--model is required");
    if (prompt && prompt_file) die_usage("generate", "give --prompt or --prompt-file, not both");
    if (threads) rn_set_threads(threads);
    sc.seed = (uint64_t)seed;
    rn_model *m = load_model_as_or_die(path, f32);
    rn_tokenizer *tok = model_tokenizer("generate", path, tok_path, rn_model_config(m)->vocab);
    int32_t eos = ignore_eos ? -1 : rn_tokenizer_eos(tok);
    char *text = NULL;
    size_t len = 0;
    if (prompt_file) {
        if (rn_read_file(prompt_file, (size_t)1 << 30, &text, &len) != RN_OK) die("%s", rn_last_error());
    } else {
        text = strdup(prompt ? prompt : "\n");
        if (!text) die("out of memory");
        len = strlen(text);
    }
    if (len == 0) die_usage("generate", "the prompt is empty");
    int32_t *ids = malloc(sizeof(int32_t) * (len + 1));
    size_t nids = 0;
    /* BOS (and what else the post-processor adds) as the tokenizer says */
    if (!ids || rn_tokenizer_encode_special(tok, text, len, 1, NULL, 0, &nids) != RN_OK) die("%s", rn_last_error());
    if (nids > len + 1) {
        int32_t *more = realloc(ids, sizeof(int32_t) * nids);
        if (!more) die("out of memory");
        ids = more;
    }
    if (rn_tokenizer_encode_special(tok, text, len, 1, ids, nids, &nids) != RN_OK) die("%s", rn_last_error());
    if (nids == 0) die_usage("generate", "the prompt encodes to no tokens");
    rn_session *s;
    if (rn_session_create(m, &sc, chunk, &s) != RN_OK) die("%s", rn_last_error());
    signal(SIGINT, on_gen_signal);
    fwrite(text, 1, len, stdout);
    fflush(stdout);
    double t0 = now_seconds();
    if (rn_session_prefill(s, ids, (int)nids) != RN_OK) die("%s", rn_last_error());
    double t1 = now_seconds();
    int done = 0;
    unsigned char held[8];  /* the incomplete UTF-8 character at the end (< 4 bytes) */
    size_t nheld = 0;
    for (; done < n && !gen_stop; done++) {
        int32_t t;
        if (rn_session_step(s, &t) != RN_OK) die("%s", rn_last_error());
        if (t == eos) { done++; break; }
        const char *piece;
        size_t pl;
        if (rn_tokenizer_decode(tok, t, &piece, &pl) != RN_OK) continue;
        /* held bytes, then the piece: print up to the last whole character */
        while (pl) {
            size_t take = pl < sizeof held - nheld ? pl : sizeof held - nheld;
            memcpy(held + nheld, piece, take);
            nheld += take; piece += take; pl -= take;
            size_t k = utf8_complete(held, nheld);
            if (!pl || nheld == sizeof held) {
                fwrite(held, 1, k, stdout);
                memmove(held, held + k, nheld - k);
                nheld -= k;
            }
        }
        fflush(stdout);
    }
    fwrite(held, 1, nheld, stdout);
    double t2 = now_seconds();
    printf("\n");
    fprintf(stderr, "%sprefill: %zu tokens, %.0f tok/s (chunkwise, chunk %d); decode: %d tokens, %.1f tok/s (recurrent)\n",
            gen_stop ? "interrupted; " : "", nids, nids / (t1 - t0), chunk, done, done / (t2 - t1 > 0 ? t2 - t1 : 1e-9));
    rn_session_free(s);
    free(ids);
    free(text);
    rn_tokenizer_free(tok);
    rn_model_free(m);
    return 0;
}

int cmd_eval(int argc, char **argv) {
    const char *path = NULL, *data = NULL, *tok_path = NULL;
    int chunk = 512, window = 0, seg = 4096, threads = 0, quiet = 0, f32 = 0;
    opt opts[] = {{"model", OPT_STR, &path, 0, 0, "model file", 0},
                  {"data", OPT_STR, &data, 0, 0, "text file to score", 0},
                  {"chunk", OPT_INT, &chunk, 1, 1 << 20, "chunk length of the chunkwise forward", 0},
                  {"window", OPT_INT, &window, 1, 1 << 30, "cut the context to windows of W tokens (default: carry the state over the whole file)", 0},
                  {"segment", OPT_INT, &seg, 1, 1 << 20, "tokens per forward call (memory, not results)", 0},
                  {"threads", OPT_INT, &threads, 1, 1024, "threads (default: all cores)", 0},
                  {"quiet", OPT_FLAG, &quiet, 0, 0, "no progress display", 0},
                  F32_OPT(f32),
                  {"tokenizer", OPT_STR, &tok_path, 0, 0, "tokenizer.json file or directory, or byte (default: the model directory's tokenizer.json, else byte)", 0},
                  {0}};
    command_spec cmd = {"eval", "--model FILE --data FILE [--chunk C] [--window W]",
                        "Loss (nats per token), bits per byte and perplexity of a whole file. The recurrent\n"
                        "state is carried across the file (unbounded context) unless --window cuts it.",
                        opts};
    args_parse(&cmd, argc, argv);
    if (!path || !data) die_usage("eval", "--model and --data are required");
    if (threads) rn_set_threads(threads);
    rn_model *m = load_model_as_or_die(path, f32);
    rn_tokenizer *tok = model_tokenizer("eval", path, tok_path, rn_model_config(m)->vocab);
    char *text;
    size_t len, n;
    if (rn_read_file(data, (size_t)1 << 34, &text, &len) != RN_OK) die("%s", rn_last_error());
    int32_t *ids = malloc(sizeof(int32_t) * (len + 1));
    if (!ids || rn_tokenizer_encode(tok, text, len, ids, len + 1, &n) != RN_OK) die("%s", rn_last_error());
    if (n < 2) die("%s: needs at least 2 tokens", data);
    rn_state *st;
    if (rn_state_create(m, 1, &st) != RN_OK) die("%s", rn_last_error());
    double total = 0, t0 = now_seconds();
    long count = 0;
    int tty = isatty(2) && !quiet;
    /* Position p predicts p+1; windows restart the state every W tokens. */
    for (size_t p = 0; p + 1 < n;) {
        size_t end = p + (size_t)seg;
        if (window) {
            size_t wend = (p / (size_t)window + 1) * (size_t)window;
            if (p % (size_t)window == 0) rn_state_reset(st);
            if (end > wend) end = wend;
        }
        if (end > n - 1) end = n - 1;
        int T = (int)(end - p), cnt;
        double nll;
        if (rn_model_score(m, st, ids + p, ids + p + 1, T, chunk, &nll, &cnt) != RN_OK) die("%s", rn_last_error());
        total += nll;
        count += cnt;
        p = end;
        if (tty) {
            double el = now_seconds() - t0;
            fprintf(stderr, "\r\033[K%5.1f%%  %zu/%zu tokens  loss %.4f  %.0f tok/s", 100.0 * p / (n - 1), p, n - 1,
                    total / count, p / el);
        }
    }
    if (tty) fputc('\n', stderr);
    double loss = total / count;
    /* Bits per byte of the original text (what models with different
     * tokenizers compare on): every token but the first is predicted, so the
     * bytes scored are the text's but those of the first token. */
    const char *first;
    size_t first_len = 0;
    if (rn_tokenizer_decode(tok, ids[0], &first, &first_len) != RN_OK || first_len > len) first_len = 0;
    double bytes = (double)(len - first_len), bpb = bytes > 0 ? loss / log(2.0) * ((double)count / bytes) : NAN;
    printf("tokens:     %ld\nloss:       %.6f nats/token\nbits/byte:  %.6f\nperplexity: %.4f\ncontext:    %s\n", count,
           loss, bpb, exp(loss), window ? "windowed" : "whole file (state carried)");
    if (window) printf("window:     %d\n", window);
    rn_state_free(st);
    free(ids);
    free(text);
    rn_tokenizer_free(tok);
    rn_model_free(m);
    return 0;
}
