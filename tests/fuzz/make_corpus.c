/* make_corpus.c: writes the fuzzers' seed corpus (`make fuzz-corpus`):
 * small valid inputs for every target, made with the library's own
 * writers so that they stay valid as the formats evolve:
 *   model/       tiny models of each preset (tied, embedding norm, ...), in
 *                F32 as written, and rewritten to F16, BF16 and F64, with
 *                and without the checksum (without it, mutations of the
 *                data reach the parser instead of the checksum test)
 *   model_dir/   the same models in each format's directory layout (config.json
 *                and weights, or shards and their index), as fuzz_model_dir's
 *                records
 *   checkpoint/  tiny trainer checkpoints (parallel and chunkwise), F32 and
 *                F64, with and without the checksums
 *   config/      the configs of those models and upstream-style configs
 *   tokens/      token lists
 *   dataset/     4 parameter bytes and a short text
 *   shards/      6 parameter bytes, then a training and a validation shard
 *                (uint16 and uint32, and one with a bad magic)
 * Usage: make_corpus DIR (DIR/<target>/ must exist). */
#define _POSIX_C_SOURCE 200809L
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "retnet.h"
#include "retnet_data.h"

static const char *dir;

static void die(const char *what) {
    fprintf(stderr, "make_corpus: %s: %s\n", what, rn_last_error());
    exit(1);
}

static void put(const char *target, const char *name, const void *data, size_t n) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s/%s", dir, target, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, n, f) != n || fclose(f) != 0) die(path);
}

static unsigned char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) die(path);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(*n + 1);
    if (!b || fread(b, 1, *n, f) != *n) die(path);
    fclose(f);
    return b;
}

/* A shards/ input: parameter bytes p (4), the training shard's length,
 * then two shards of nt and nv tokens (i * 7 % vocab) written by the
 * library's writer; bad_magic spoils the validation shard's magic. */
static void shard_seed(const char *name, const unsigned char *p, int vocab, size_t nt, size_t nv, int bad_magic) {
    char path[1024];
    snprintf(path, sizeof path, "%s/.tmp.shard", dir);
    unsigned char *out = malloc(6 + 2 * 1024 + 4 * (nt + nv));
    size_t len = 6, tl = 0;
    if (!out) die("malloc");
    memcpy(out, p, 4);
    for (int k = 0; k < 2; k++) {
        size_t n = k ? nv : nt;
        int32_t *t = malloc(n * sizeof *t);
        rn_shard_writer *w;
        if (!t) die("malloc");
        for (size_t i = 0; i < n; i++) t[i] = (int32_t)((i * 7) % (size_t)vocab);
        if (rn_shard_writer_open(path, vocab, &w) != RN_OK || rn_shard_writer_write(w, t, n) != RN_OK ||
            rn_shard_writer_close(w) != RN_OK)
            die("shard writer");
        free(t);
        size_t sl;
        unsigned char *b = slurp(path, &sl);
        if (k && bad_magic) b[0] ^= 1;
        memcpy(out + len, b, sl);
        len += sl;
        if (!k) tl = sl;
        free(b);
    }
    remove(path);
    out[4] = (unsigned char)(tl & 0xff);
    out[5] = (unsigned char)(tl >> 8);
    put("shards", name, out, len);
    free(out);
}

static uint64_t fnv1a(const unsigned char *p, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

static uint16_t to_f16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    uint32_t s = (u >> 16) & 0x8000;
    int e = (int)((u >> 23) & 255) - 127 + 15;
    uint32_t m = u & 0x7fffff;
    if (e <= 0) return (uint16_t)s;                 /* tiny values flush to zero */
    if (e >= 31) return (uint16_t)(s | 0x7bff);     /* clamp to the largest finite */
    return (uint16_t)(s | (uint32_t)e << 10 | (m + 0x1000) >> 13);
}

/* A safetensors image made from the F32 file src: its tensors number
 * part, part + parts, ... (all with parts = 1) in dtype (F32, F16, BF16,
 * F64), with or without the checksums. Returns a new buffer (*len bytes). */
static unsigned char *st_image(const char *src, const char *dtype, int checksum, int part, int parts, size_t *len) {
    size_t n;
    unsigned char *b = slurp(src, &n);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = hl << 8 | b[i];
    cJSON *hdr = cJSON_ParseWithLength((const char *)b + 8, hl);
    if (!hdr) die("header");
    const unsigned char *data = b + 8 + hl;
    size_t es = strcmp(dtype, "F64") == 0 ? 8 : strcmp(dtype, "F32") == 0 ? 4 : 2;
    unsigned char *out = malloc(2 * n + 64);
    size_t off = 0;
    int i = 0;
    for (cJSON *t = hdr->child, *next; t; t = next) {
        next = t->next;
        if (strcmp(t->string, "__metadata__") == 0) continue;
        if (i++ % parts != part) { cJSON_Delete(cJSON_DetachItemViaPointer(hdr, t)); continue; }
        cJSON *of = cJSON_GetObjectItem(t, "data_offsets");
        size_t b0 = (size_t)cJSON_GetArrayItem(of, 0)->valuedouble, b1 = (size_t)cJSON_GetArrayItem(of, 1)->valuedouble;
        size_t start = off;
        for (size_t p = b0; p < b1; p += 4) {
            float f;
            memcpy(&f, data + p, 4);
            if (es == 8) { double d = f; memcpy(out + off, &d, 8); }
            else if (es == 4) memcpy(out + off, &f, 4);
            else {
                uint32_t u;
                memcpy(&u, &f, 4);
                uint16_t h = dtype[0] == 'B' ? (uint16_t)((u + 0x8000) >> 16) : to_f16(f);
                memcpy(out + off, &h, 2);
            }
            off += es;
        }
        cJSON_ReplaceItemInObject(t, "dtype", cJSON_CreateString(dtype));
        cJSON *no = cJSON_CreateArray();
        cJSON_AddItemToArray(no, cJSON_CreateNumber((double)start));
        cJSON_AddItemToArray(no, cJSON_CreateNumber((double)off));
        cJSON_ReplaceItemInObject(t, "data_offsets", no);
    }
    cJSON *meta = cJSON_GetObjectItem(hdr, "__metadata__");
    cJSON_DeleteItemFromObject(meta, "checksum_fnv1a64");
    if (!checksum) cJSON_DeleteItemFromObject(meta, "checksum_meta_fnv1a64");
    if (checksum) {
        char sum[32];
        snprintf(sum, sizeof sum, "%016llx", (unsigned long long)fnv1a(out, off));
        cJSON_AddStringToObject(meta, "checksum_fnv1a64", sum);
    }
    char *js = cJSON_PrintUnformatted(hdr);
    size_t jl = strlen(js), padded = (jl + 7) & ~(size_t)7;
    unsigned char *file = malloc(8 + padded + off);
    for (int k = 0; k < 8; k++) file[k] = (unsigned char)((uint64_t)padded >> (8 * k));
    memcpy(file + 8, js, jl);
    memset(file + 8 + jl, ' ', padded - jl);
    memcpy(file + 8 + padded, out, off);
    *len = 8 + padded + off;
    free(js); free(out); free(b);
    cJSON_Delete(hdr);
    return file;
}

static void rewrite(const char *src, const char *target, const char *name, const char *dtype, int checksum) {
    size_t n;
    unsigned char *img = st_image(src, dtype, checksum, 0, 1, &n);
    put(target, name, img, n);
    free(img);
}

/* model_dir inputs: records [name index] [length, 2 bytes LE] [bytes], the
 * names of tests/fuzz/fuzz_model_dir.c. */
typedef struct { unsigned char *b; size_t n; } record_buf;

static void record(record_buf *r, int name, const void *data, size_t n) {
    r->b = realloc(r->b, r->n + 3 + n);
    r->b[r->n] = (unsigned char)name;
    r->b[r->n + 1] = (unsigned char)(n & 255);
    r->b[r->n + 2] = (unsigned char)(n >> 8);
    memcpy(r->b + r->n + 3, data, n);
    r->n += 3 + n;
}

static void record_file(record_buf *r, int name, const char *path) {
    size_t n;
    unsigned char *b = slurp(path, &n);
    record(r, name, b, n);
    free(b);
}

static void copy(const char *src, const char *target, const char *name) {
    size_t n;
    unsigned char *b = slurp(src, &n);
    put(target, name, b, n);
    free(b);
}

static rn_config tiny(rn_preset p, int value_dim) {
    rn_config c;
    memset(&c, 0, sizeof c);
    rn_config_preset(&c, p, NULL);
    c.dim = 4; c.heads = 2; c.value_dim = value_dim; c.ffn_dim = 6; c.layers = 1; c.vocab = 8;
    return c;
}

static void model_files(const char *name, const rn_config *c, const char *tmp) {
    rn_model *m;
    if (rn_model_create(c, &m) != RN_OK) die(name);
    rn_model_init_random(m, 7);
    if (rn_model_save(m, tmp) != RN_OK) die(name);
    char js_name[128], fn[128];
    snprintf(fn, sizeof fn, "%s.safetensors", name);
    copy(tmp, "model", fn);
    snprintf(fn, sizeof fn, "%s-nosum.safetensors", name);
    rewrite(tmp, "model", fn, "F32", 0);
    static const char *dts[] = {"F16", "BF16", "F64"};
    for (int i = 0; i < 3; i++) {
        snprintf(fn, sizeof fn, "%s-%s.safetensors", name, dts[i]);
        rewrite(tmp, "model", fn, dts[i], i == 0);
    }
    char *js = rn_config_to_json(c);
    snprintf(js_name, sizeof js_name, "%s.json", name);
    put("config", js_name, js, strlen(js));
    free(js);
    rn_model_free(m);
}

/* Quantised files (rn_model_quantize): q8_0 and q4_0 blocks in U8 tensors,
 * with the checksum and without it (so that mutations of the blocks reach
 * the checks behind it). Widths of one block (32) keep them small. */
static void quant_files(const char *name, rn_config c, const char *tmp) {
    c.dim = 32; c.heads = 1; c.value_dim = 32; c.ffn_dim = 32;
    rn_model *m;
    if (rn_model_create(&c, &m) != RN_OK) die(name);
    rn_model_init_random(m, 7);
    static const rn_wtype types[] = {RN_WTYPE_Q8_0, RN_WTYPE_Q4_0};
    for (int i = 0; i < 2; i++) {
        if (rn_model_quantize(m, tmp, types[i], 0) != RN_OK) die(name);
        size_t n;
        unsigned char *b = slurp(tmp, &n);
        char fn[128];
        snprintf(fn, sizeof fn, "%s-%s.safetensors", name, rn_wtype_name(types[i]));
        put("model", fn, b, n);
        /* the same without "checksum_xxh3" (renamed: the header keeps its length) */
        for (size_t k = 0; k + 13 <= n; k++)
            if (!memcmp(b + k, "checksum_xxh3", 13)) { b[k + 12] = '4'; break; }
        snprintf(fn, sizeof fn, "%s-%s-nosum.safetensors", name, rn_wtype_name(types[i]));
        put("model", fn, b, n);
        free(b);
    }
    rn_model_free(m);
}

/* model_dir seeds: the model saved in format fmt (weights and, for the
 * formats that have one, config.json), whole and in two shards listed in
 * an index. */
static void dir_files(const char *name, const rn_config *c, rn_format fmt, const char *tmpdir) {
    rn_model *m;
    if (rn_model_create(c, &m) != RN_OK) die(name);
    rn_model_init_random(m, 7);
    char w[1024], cj[1024], fn[128];
    snprintf(w, sizeof w, "%s/model.safetensors", tmpdir);
    snprintf(cj, sizeof cj, "%s/config.json", tmpdir);
    remove(cj);
    if (rn_model_save_as(m, w, fmt, RN_DTYPE_F32) != RN_OK) die(name);
    FILE *f = fopen(cj, "rb");
    int has_config = f != NULL;
    if (f) fclose(f);
    record_buf whole = {0}, shards = {0};
    if (has_config) { record_file(&whole, 0, cj); record_file(&shards, 0, cj); }
    record_file(&whole, 1, w);
    snprintf(fn, sizeof fn, "%s.bin", name);
    put("model_dir", fn, whole.b, whole.n);
    /* tensor i goes to shard i % 2, as st_image splits them */
    size_t n;
    unsigned char *b = slurp(w, &n);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = hl << 8 | b[i];
    cJSON *hdr = cJSON_ParseWithLength((const char *)b + 8, hl), *index = cJSON_CreateObject();
    cJSON *map = cJSON_CreateObject();
    cJSON_AddItemToObject(cJSON_AddObjectToObject(index, "metadata"), "total_size", cJSON_CreateNumber((double)(n - 8 - hl)));
    int i = 0;
    for (cJSON *t = hdr->child; t; t = t->next)
        if (strcmp(t->string, "__metadata__") != 0)
            cJSON_AddStringToObject(map, t->string, i++ % 2 ? "model-00002-of-00002.safetensors" : "model-00001-of-00002.safetensors");
    cJSON_AddItemToObject(index, "weight_map", map);
    char *js = cJSON_PrintUnformatted(index);
    record(&shards, 2, js, strlen(js));
    for (int part = 0; part < 2; part++) {
        unsigned char *img = st_image(w, "F32", 1, part, 2, &n);
        record(&shards, 3 + part, img, n);
        free(img);
    }
    snprintf(fn, sizeof fn, "%s-shards.bin", name);
    put("model_dir", fn, shards.b, shards.n);
    free(js); free(b); free(whole.b); free(shards.b);
    cJSON_Delete(hdr); cJSON_Delete(index);
    remove(w); remove(cj);
    rn_model_free(m);
}

static void checkpoint_files(const char *name, const rn_config *c, rn_mode mode, const char *tmp) {
    rn_model *m;
    if (rn_model_create(c, &m) != RN_OK) die(name);
    rn_model_init_random(m, 9);
    rn_train_config tc;
    rn_train_config_default(&tc);
    tc.batch = 2; tc.seq = 4; tc.steps = 10; tc.warmup = 2; tc.mode = mode; tc.chunk = 2;
    rn_trainer *t;
    if (rn_trainer_create(m, &tc, &t) != RN_OK) die(name);
    int32_t x[8], y[8];
    for (int i = 0; i < 8; i++) { x[i] = i % c->vocab; y[i] = (i + 1) % c->vocab; }
    rn_step_info info;
    if (rn_trainer_step(t, x, y, &info) != RN_OK) die(name);
    const char *user = "{\"rng\":[\"0123456789abcdef\",\"fedcba9876543210\",\"0000000000000001\",\"8000000000000000\"],"
                       "\"seed\":1,\"data_tokens\":0}";
    if (rn_trainer_save(t, tmp, user) != RN_OK) die(name);
    char fn[128];
    snprintf(fn, sizeof fn, "%s.safetensors", name);
    copy(tmp, "checkpoint", fn);
    snprintf(fn, sizeof fn, "%s-nosum.safetensors", name);
    rewrite(tmp, "checkpoint", fn, "F32", 0);
    snprintf(fn, sizeof fn, "%s-F64.safetensors", name);
    rewrite(tmp, "checkpoint", fn, "F64", 1);
    rn_trainer_free(t);
    rn_model_free(m);
}

#define PUT_STR(target, name, s) put(target, name, s, sizeof s - 1)

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: make_corpus DIR\n"); return 2; }
    dir = argv[1];
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s/.tmp.safetensors", dir);

    rn_config c = tiny(RN_PRESET_TORCHSCALE, 8);
    model_files("torchscale", &c, tmp);
    c.tie_embed = 1; c.embed_norm = 1; c.scale_embed = 1;
    model_files("torchscale-tied", &c, tmp);
    c = tiny(RN_PRESET_SEED, 8);
    model_files("seed", &c, tmp);
    c = tiny(RN_PRESET_SEED, 4);
    model_files("seed-v1", &c, tmp);
    c = tiny(RN_PRESET_FLA, 8);
    model_files("fla", &c, tmp);
    quant_files("torchscale", tiny(RN_PRESET_TORCHSCALE, 8), tmp);
    quant_files("fla", tiny(RN_PRESET_FLA, 8), tmp);

    c = tiny(RN_PRESET_TORCHSCALE, 8);
    dir_files("retnet", &c, RN_FORMAT_RETNET, dir);
    dir_files("torchscale", &c, RN_FORMAT_TORCHSCALE, dir);
    c.tie_embed = 1;
    dir_files("torchscale-hf-tied", &c, RN_FORMAT_TORCHSCALE_HF, dir);
    c = tiny(RN_PRESET_SEED, 8);
    dir_files("seed", &c, RN_FORMAT_SEED, dir);
    c = tiny(RN_PRESET_FLA, 8);
    dir_files("fla", &c, RN_FORMAT_FLA, dir);

    c = tiny(RN_PRESET_TORCHSCALE, 8);
    checkpoint_files("torchscale", &c, RN_PARALLEL, tmp);
    c = tiny(RN_PRESET_SEED, 8);
    checkpoint_files("seed-chunkwise", &c, RN_CHUNKWISE, tmp);
    c = tiny(RN_PRESET_FLA, 4);
    checkpoint_files("fla", &c, RN_PARALLEL, tmp);
    remove(tmp);

    /* Upstream-style configs: defaults, ratios, booleans as numbers. */
    PUT_STR("config", "torchscale-defaults.json", "{\"vocab_size\":64000}");
    PUT_STR("config", "torchscale-full.json",
            "{\"preset\":\"torchscale\",\"decoder_embed_dim\":512,\"decoder_value_embed_dim\":864,"
            "\"decoder_retention_heads\":2,\"decoder_ffn_embed_dim\":864,\"decoder_layers\":6,\"vocab_size\":32000,"
            "\"layernorm_eps\":1e-06,\"activation_fn\":\"swish\",\"no_scale_embedding\":false,"
            "\"share_decoder_input_output_embed\":1,\"layernorm_embedding\":true,\"dropout\":0.1}");
    PUT_STR("config", "seed-upstream.json",
            "{\"preset\":\"seed\",\"layers\":2,\"hidden_dim\":32,\"ffn_size\":64,\"heads\":4,\"double_v_dim\":true,"
            "\"vocab_size\":100}");
    PUT_STR("config", "fla-upstream.json",
            "{\"preset\":\"fla\",\"hidden_size\":2048,\"num_hidden_layers\":24,\"num_heads\":8,\"expand_k\":1,"
            "\"expand_v\":2,\"hidden_ratio\":4,\"norm_eps\":1e-06,\"vocab_size\":32000,\"tie_word_embeddings\":false}");
    PUT_STR("config", "fla-ratio.json",
            "{\"preset\":\"fla\",\"hidden_size\":96,\"num_hidden_layers\":1,\"num_heads\":3,\"expand_v\":1.5,"
            "\"vocab_size\":256}");

    PUT_STR("tokens", "list.txt", "1,2,3");
    PUT_STR("tokens", "spaces.txt", "0 1\n2\t3\r\n 255 , 7,\n");
    PUT_STR("tokens", "large.txt", "2147483647,0,65535");
    PUT_STR("tokens", "one.txt", "7");

    /* dataset: validation fraction byte, B, T, seed; then the text */
    PUT_STR("dataset", "text.txt", "\x0a\x03\x07\x01The quick brown fox jumps over the lazy dog.\n"
                                   "Pack my box with five dozen liquor jugs.\n");
    PUT_STR("dataset", "short.txt", "\x64\x00\x02\x05" "abc");
    PUT_STR("dataset", "binary.txt", "\x00\x0f\x3f\xc0\x00\x01\x02\x03\xff\xfe\x80\x7f\x00\x00\x00\x01\x00\x00\x00\x02\x00\x00\x00");

    /* shards: vocabulary byte, B, T, seed; the training shard's length; the shards */
    shard_seed("gpt2.bin", (const unsigned char *)"\x00\x03\x07\x01", 65536, 40, 12, 0);
    shard_seed("small-vocab.bin", (const unsigned char *)"\x03\x02\x05\x02", 13, 30, 9, 0);
    shard_seed("llama3.bin", (const unsigned char *)"\x91\x01\x04\x03", 1 << 17, 20, 6, 0);
    shard_seed("bad-magic.bin", (const unsigned char *)"\x00\x01\x03\x04", 256, 10, 10, 1);

    /* tokenizer: a tokenizer.json, a NUL, then a text to encode. */
    PUT_STR("tokenizer", "bytefallback",
            "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2,\"<0x41>\":3},\"merges\":[\"a b\"],\"byte_fallback\":true,\"unk_token\":\"b\",\"fuse_unk\":true},\"added_tokens\":[{\"id\":4,\"content\":\"<s>\",\"special\":true,\"normalized\":false,\"lstrip\":true}],\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"NFKC\"},{\"type\":\"Prepend\",\"prepend\":\"_\"},{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"_\"}]},\"decoder\":{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"Replace\",\"pattern\":{\"String\":\"_\"},\"content\":\" \"},{\"type\":\"ByteFallback\"},{\"type\":\"Fuse\"},{\"type\":\"Strip\",\"content\":\" \",\"start\":1,\"stop\":0}]},\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"<s>\",\"type_id\":0}},{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}],\"special_tokens\":{\"<s>\":{\"id\":\"<s>\",\"ids\":[4],\"tokens\":[\"<s>\"]}}}}"
            "\0ab <s>abA x");
    PUT_STR("tokenizer", "bytelevel",
            "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2,\"\\u0120\":3,\"\\u0120a\":4},\"merges\":[[\"\\u0120\",\"a\"],[\"a\",\"b\"]],\"ignore_merges\":true},\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":\"\\\\p{L}+|\\\\s+\"},\"behavior\":\"MergedWithNext\",\"invert\":false},{\"type\":\"ByteLevel\",\"add_prefix_space\":true,\"use_regex\":true}]},\"decoder\":{\"type\":\"ByteLevel\"}}"
            "\0ab a ba");
    PUT_STR("tokenizer", "misc",
            "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"##b\":2,\"a##b\":3,\"</w>\":4},\"merges\":[],\"continuing_subword_prefix\":\"##\",\"end_of_word_suffix\":\"</w>\"},\"normalizer\":{\"type\":\"Lowercase\"},\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Metaspace\",\"replacement\":\"_\",\"prepend_scheme\":\"first\",\"split\":true},{\"type\":\"Digits\",\"individual_digits\":true},{\"type\":\"Punctuation\",\"behavior\":\"Contiguous\"},{\"type\":\"Whitespace\"},{\"type\":\"WhitespaceSplit\"}]},\"decoder\":{\"type\":\"Metaspace\",\"replacement\":\"_\",\"prepend_scheme\":\"always\"}}"
            "\0AB 12, ab!");
    return 0;
}
