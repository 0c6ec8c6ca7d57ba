/* common.c: what several subcommands share that involves the library
 * (common.h). */
#define _POSIX_C_SOURCE 200809L
#include "common.h"
#include "retnet_data.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

rn_model *load_model_or_die(const char *path) { return load_model_as_or_die(path, 0); }

rn_model *load_model_as_or_die(const char *path, int f32) {
    rn_model *m;
    if (rn_model_load_flags(path, f32 ? RN_LOAD_F32 : 0, &m, NULL) != RN_OK) die("%s", rn_last_error());
    if (f32 && rn_model_quantized(m) && !rn_model_params(m)) die("%s", rn_last_error());  /* q8_0 / q4_0 */
    return m;
}

rn_model *model_reloaded_or_die(rn_model *made) {
    char path[] = "/tmp/retnet_bench_model_XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) die("cannot create a temporary file in /tmp");
    close(fd);
    rn_model *m;
    rn_status st = rn_model_save(made, path);
    if (st == RN_OK) st = rn_model_load(path, &m);
    unlink(path);
    if (st != RN_OK) die("%s", rn_last_error());
    rn_model_free(made);
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

struct rn_tokenizer *load_tokenizer_or_die(const char *spec) {
    rn_tokenizer *tok;
    rn_status s = strcmp(spec, "byte") == 0 ? rn_tokenizer_byte_create(&tok) : rn_tokenizer_load(spec, &tok);
    if (s != RN_OK) die("%s", rn_last_error());
    return tok;
}

struct rn_tokenizer *model_tokenizer(const char *cmd, const char *model_path, const char *override, int vocab) {
    const char *src = override;
    char dir[4096], tj[4200];
    struct stat sb;
    if (!src) {
        snprintf(dir, sizeof dir, "%s", model_path);
        if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
            char *slash = strrchr(dir, '/');
            if (slash) *slash = 0; else snprintf(dir, sizeof dir, ".");
        }
        snprintf(tj, sizeof tj, "%s/tokenizer.json", dir);
        src = stat(tj, &sb) == 0 ? dir : "byte";
    }
    rn_tokenizer *tok = load_tokenizer_or_die(src);
    if (tok->vocab_size > vocab) {
        int tv = tok->vocab_size;
        rn_tokenizer_free(tok);
        die_usage(cmd, "the tokenizer (%s) has %d ids, more than the model's vocabulary of %d", src, tv, vocab);
    }
    return tok;
}
