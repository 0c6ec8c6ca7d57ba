/* bench_load.c (CLI): `retnet bench --case load`: how fast a big model
 * starts. A fla-shaped model (1.22 B parameters, 4.9 GB in float32; --quick:
 * 0.2 B) is written once; then, in a fresh process each, the time to read
 * the file once from the page cache (the limit), and the time from
 * rn_model_load to the first generated token with its peak resident memory.
 * `--case load-bf16`: the same for a BF16 Hugging Face checkpoint, its
 * projections kept as stored against widened to f32. */
#define _DEFAULT_SOURCE  /* wait4 */
#include "bench_load.h"
#include "retnet.h"
#include "retnet_data.h"
#include "util.h"

#include <cjson/cJSON.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* The model of --size: torchscale's named sizes, or the shape of
 * fla-hub/retnet-1.3B-100B (README "A public checkpoint": d 2048, 24
 * layers, 8 heads, values 4096, SwiGLU 2816, untied head). */
void bench_config(const char *size, rn_config *c) {
    memset(c, 0, sizeof *c);
    c->vocab = 32000;  /* a real vocabulary: the head is part of every step */
    if (!strcmp(size, "fla-1.3b")) {
        if (rn_config_preset(c, RN_PRESET_FLA, "small") != RN_OK) die("%s", rn_last_error());
        c->dim = 2048; c->layers = 24; c->heads = 8; c->value_dim = 4096; c->ffn_dim = 2816; c->tie_embed = 0;
        return;
    }
    if (rn_config_preset(c, RN_PRESET_TORCHSCALE, size) != RN_OK) die("%s", rn_last_error());
}

/* Seconds to read path once with read(2) (best of reps, page cache warm). */
static double read_time(const char *path, int reps) {
    static char buf[1 << 20];
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        int fd = open(path, O_RDONLY);
        if (fd < 0) die("cannot open %s", path);
        double t0 = now_seconds();
        while (read(fd, buf, sizeof buf) > 0) {}
        double t = now_seconds() - t0;
        close(fd);
        if (t < best) best = t;
    }
    return best;
}


/* The timed start itself, in a fresh process (`retnet bench --load-child
 * PATH`): load, first token (the logits after a one-token prompt), and the
 * mean of 3 more decoding steps, printed as one line of seconds. */
int bench_load_child(const char *path, int f32) {
    load_times t = {0};
    rn_model_info info;
    double t0 = now_seconds();
    if (rn_model_inspect(path, &info) != RN_OK) die("%s", rn_last_error());
    t.inspect = now_seconds() - t0;
    t0 = now_seconds();
    rn_model *m;
    rn_session *s;
    rn_sampler_config sc;
    rn_sampler_config_default(&sc);
    if (rn_model_load_flags(path, f32 ? RN_LOAD_F32 : 0, &m, NULL) != RN_OK || rn_session_create(m, &sc, 64, &s) != RN_OK)
        die("%s", rn_last_error());
    t.load = now_seconds() - t0;
    int32_t tok = 1;
    if (rn_session_prefill(s, &tok, 1) != RN_OK) die("%s", rn_last_error());
    t.first = now_seconds() - t0;  /* the first token's logits: it is sampled from them */
    if (rn_session_step(s, &tok) != RN_OK) die("%s", rn_last_error());
    double t1 = now_seconds(), c1 = cpu_seconds();
    for (int i = 0; i < 3; i++)
        if (rn_session_step(s, &tok) != RN_OK) die("%s", rn_last_error());
    t.step = (now_seconds() - t1) / 3;
    t.step_cpu = (cpu_seconds() - c1) / 3;
    printf("%.6f %.6f %.6f %.6f %zu %.6f\n", t.load, t.first, t.step, t.inspect, rn_model_decode_bytes(m), t.step_cpu);
    rn_session_free(s);
    rn_model_free(m);
    return 0;
}

/* Runs bench_load_child in a new process image (a fork of this one could
 * not use OpenMP again) and returns its times and peak RSS. */
load_times bench_timed_start(const char *path, int f32, long *rss_kb) {
    int fds[2];
    if (pipe(fds) != 0) die("pipe failed");
    pid_t pid = fork();
    if (pid < 0) die("fork failed");
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        execl("/proc/self/exe", "retnet", "bench", "--load-child", path, f32 ? "--load-f32" : (char *)NULL, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    char line[256] = "";
    FILE *f = fdopen(fds[0], "r");
    if (!f || !fgets(line, sizeof line, f)) line[0] = 0;
    if (f) fclose(f);
    int status;
    struct rusage ru;
    load_times t = {0};
    if (wait4(pid, &status, 0, &ru) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0 ||
        sscanf(line, "%lf %lf %lf %lf %lf %lf", &t.load, &t.first, &t.step, &t.inspect, &t.bytes, &t.step_cpu) != 6)
        die("bench load: the timed process failed");
    *rss_kb = ru.ru_maxrss;
    return t;
}

void bench_load(int quick) {
    rn_config c;
    memset(&c, 0, sizeof c);
    rn_config_preset(&c, RN_PRESET_FLA, NULL);
    c.dim = quick ? 1024 : 2048; c.layers = quick ? 8 : 16; c.heads = 8; c.value_dim = 2 * c.dim;
    c.ffn_dim = quick ? 2816 : 5632; c.vocab = 32000;
    const char *dir = getenv("TMPDIR");
    char path[512];
    snprintf(path, sizeof path, "%s/retnet-bench-load-%ld.safetensors", dir && *dir ? dir : "/tmp", (long)getpid());
    rn_model *m;
    if (rn_model_create(&c, &m) != RN_OK) die("%s", rn_last_error());
    /* Values do not matter here, only bytes: a cheap pattern instead of the
     * preset's (slow) random initialisation. */
    rn_real *p = rn_model_params(m);
    size_t n = rn_model_num_params(m);
    for (size_t i = 0; i < n; i++) p[i] = (rn_real)((double)((i * 2654435761u) >> 22 & 1023) / 51200.0 - 0.01);
    double tw = now_seconds();
    if (rn_model_save(m, path) != RN_OK) die("%s", rn_last_error());
    tw = now_seconds() - tw;
    rn_model_free(m);
    rn_model_info info;
    if (rn_model_inspect(path, &info) != RN_OK) die("%s", rn_last_error());
    double mb = info.file_bytes / 1e6;
    double rt = read_time(path, 3);
    long rss;
    load_times t = bench_timed_start(path, 0, &rss);
    double limit = 2 * rt + t.step;
    printf("\nload, fla %.2f B parameters, float32 file %.0f MB (written in %.1f s)%s\n", n / 1e9, mb, tw,
           info.in_place ? ", read in place" : "");
    printf("  read the file once (page cache):     %7.2f s  (%.1f GB/s)\n", rt, info.file_bytes / rt / 1e9);
    printf("  retnet info (headers only):          %7.3f s\n", t.inspect);
    printf("  load (checksum + finite check):      %7.2f s\n", t.load);
    printf("  first token (load + a 1-token prompt): %5.2f s   limit 2 x read + one step = %.2f s: ratio %.2f (target <= 1)\n",
           t.first, limit, t.first / limit);
    printf("  decoding step:                       %7.2f s   (%.1f tokens/s)\n", t.step, 1 / t.step);
    printf("  peak resident memory:                %7.0f MB  = %.2f x the file (target <= 1.10)\n", rss / 1e3,
           rss * 1e3 / (double)info.file_bytes);
    unlink(path);
}

/* ------------------------------------------------------------ load-bf16 */

/* src rewritten as dst with its tensors in name order (as Hugging Face's
 * writer leaves them: a projection's q/k/v/g are then not adjacent in our
 * row order) and no checksum (PyTorch's writers store none). */
static void write_sorted(const char *src, const char *dst) {
    FILE *f = fopen(src, "rb");
    unsigned char n8[8];
    if (!f || fread(n8, 1, 8, f) != 8) die("cannot read %s", src);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | n8[i];
    char *js = malloc(n + 1);
    if (!js || fread(js, 1, n, f) != n) die("cannot read the header of %s", src);
    js[n] = 0;
    cJSON *h = cJSON_Parse(js), *meta = h ? cJSON_DetachItemFromObjectCaseSensitive(h, "__metadata__") : NULL;
    free(js);
    if (!h) die("%s: bad header", src);
    if (meta) cJSON_DeleteItemFromObjectCaseSensitive(meta, "checksum_xxh3");
    int nt = cJSON_GetArraySize(h);
    cJSON **t = malloc(sizeof *t * (size_t)(nt + 1));
    int k = 0;
    for (cJSON *e = h->child; e; e = e->next) t[k++] = e;
    for (int i = 1; i < nt; i++)  /* insertion sort by name: a few hundred tensors */
        for (int j = i; j > 0 && strcmp(t[j - 1]->string, t[j]->string) > 0; j--) { cJSON *x = t[j]; t[j] = t[j - 1]; t[j - 1] = x; }
    cJSON *out = cJSON_CreateObject();
    if (meta) cJSON_AddItemToObject(out, "__metadata__", meta);
    double *begin = malloc(sizeof *begin * (size_t)(nt + 1)), off = 0;
    for (int i = 0; i < nt; i++) {
        cJSON *o = cJSON_GetObjectItem(t[i], "data_offsets"), *e = cJSON_Duplicate(t[i], 1);
        begin[i] = cJSON_GetArrayItem(o, 0)->valuedouble;
        double len = cJSON_GetArrayItem(o, 1)->valuedouble - begin[i];
        cJSON *no = cJSON_CreateArray();
        cJSON_AddItemToArray(no, cJSON_CreateNumber(off));
        cJSON_AddItemToArray(no, cJSON_CreateNumber(off + len));
        cJSON_ReplaceItemInObjectCaseSensitive(e, "data_offsets", no);
        cJSON_AddItemToObject(out, t[i]->string, e);
        off += len;
    }
    char *hj = cJSON_PrintUnformatted(out);
    size_t hl = strlen(hj), pad = (8 - hl % 8) % 8;
    unsigned char hn[8];
    for (int i = 0; i < 8; i++) hn[i] = (unsigned char)((hl + pad) >> (8 * i));
    rn_atomic_file af;
    static char buf[1 << 20];
    if (rn_atomic_open(&af, dst) != RN_OK || rn_atomic_write(&af, hn, 8) != RN_OK || rn_atomic_write(&af, hj, hl) != RN_OK ||
        rn_atomic_write(&af, "        ", pad) != RN_OK)
        die("%s", rn_last_error());
    for (int i = 0; i < nt; i++) {
        cJSON *o = cJSON_GetObjectItem(t[i], "data_offsets");
        size_t left = (size_t)(cJSON_GetArrayItem(o, 1)->valuedouble - begin[i]);
        if (fseeko(f, (off_t)(8 + n + (uint64_t)begin[i]), SEEK_SET) != 0) die("cannot seek in %s", src);
        while (left) {
            size_t r = fread(buf, 1, left < sizeof buf ? left : sizeof buf, f);
            if (!r || rn_atomic_write(&af, buf, r) != RN_OK) die("cannot copy %s", src);
            left -= r;
        }
    }
    if (rn_atomic_commit(&af) != RN_OK) die("%s", rn_last_error());
    fclose(f);
    free(hj); free(begin); free(t);
    cJSON_Delete(out);
    cJSON_Delete(h);
}

void bench_load_bf16(int quick, const char *size) {
    rn_config c;
    bench_config(size ? size : quick ? "base" : "fla-1.3b", &c);
    rn_format fmt = c.preset == RN_PRESET_FLA ? RN_FORMAT_FLA : RN_FORMAT_TORCHSCALE_HF;
    const char *tmp = getenv("TMPDIR");
    char dir[2][512], file[2][560], cfg[2][560];
    for (int i = 0; i < 2; i++) {
        snprintf(dir[i], sizeof dir[i], "%.400s/retnet-bench-bf16-%ld-%s", tmp && *tmp ? tmp : "/tmp", (long)getpid(),
                 i ? "sorted" : "ours");
        snprintf(file[i], sizeof file[i], "%.500s/model.safetensors", dir[i]);
        snprintf(cfg[i], sizeof cfg[i], "%.500s/config.json", dir[i]);
    }
    rn_model *m;
    if (rn_model_create(&c, &m) != RN_OK) die("%s", rn_last_error());
    rn_real *p = rn_model_params(m);  /* a cheap pattern: only bytes matter */
    size_t np = rn_model_num_params(m);
    for (size_t i = 0; i < np; i++) p[i] = (rn_real)((double)((i * 2654435761u) >> 22 & 1023) / 51200.0 - 0.01);
    fprintf(stderr, "bench: writing a %.2f B-parameter BF16 checkpoint (%s format)\n", np / 1e9, rn_format_name(fmt));
    if (rn_model_save_as(m, dir[0], fmt, RN_DTYPE_BF16) != RN_OK) die("%s", rn_last_error());
    rn_model_free(m);
    if (mkdir(dir[1], 0755) != 0) die("cannot create %s", dir[1]);
    char *cj;
    size_t cl;
    rn_atomic_file af;
    if (rn_read_file(cfg[0], 1 << 20, &cj, &cl) != RN_OK || rn_atomic_open(&af, cfg[1]) != RN_OK ||
        rn_atomic_write(&af, cj, cl) != RN_OK || rn_atomic_commit(&af) != RN_OK)
        die("%s", rn_last_error());
    free(cj);
    write_sorted(file[0], file[1]);
    rn_model_info in[2];
    for (int i = 0; i < 2; i++)
        if (rn_model_inspect(dir[i], &in[i]) != RN_OK) die("%s", rn_last_error());
    double rt = read_time(file[1], 2);
    printf("\n## a BF16 checkpoint (%s, %.2f B parameters, %.0f MB), kept as stored vs widened to f32 (RN_LOAD_F32 / --f32)\n\n"
           "Fresh processes, file in the page cache (read once: %.2f s, %.1f GB/s), the better of two starts each;\n"
           "a decoding step is the mean of 3.\n\n",
           size ? size : quick ? "torchscale base" : "fla-1.3b shape", np / 1e9, in[1].file_bytes / 1e6, rt,
           in[1].file_bytes / rt / 1e9);
    printf("| tensor order | held | copied at load MB | load s | first token s | step s | tokens/s | tokens per CPU s | weight MB per token | peak RSS MB |\n"
           "|---|---|---|---|---|---|---|---|---|---|\n");
    struct { int file, f32; } runs[] = {{0, 0}, {1, 0}, {1, 1}};
    load_times t[3];
    long rss[3];
    for (int r = 0; r < 3; r++) {
        for (int rep = 0; rep < 2; rep++) {  /* the better of two starts: a shared machine's noise */
            long kb;
            load_times x = bench_timed_start(dir[runs[r].file], runs[r].f32, &kb);
            if (!rep || x.first < t[r].first) t[r] = x;
            if (!rep || kb < rss[r]) rss[r] = kb;
        }
        printf("| %s | %s | %.0f | %.2f | %.2f | %.3f | %.2f | %.2f | %.0f | %.0f |\n", runs[r].file ? "sorted (Hugging Face)" : "ours",
               runs[r].f32 ? "f32 (widened)" : "bf16 (as stored)",
               runs[r].f32 ? sizeof(rn_real) * (double)np / 1e6 : in[runs[r].file].copy_bytes / 1e6, t[r].load, t[r].first,
               t[r].step, 1 / t[r].step, 1 / t[r].step_cpu, t[r].bytes / 1e6, rss[r] / 1e3);
        fflush(stdout);
    }
    printf("\nsorted checkpoint, kept against widened: peak RSS x%.2f, first token x%.2f, decoding x%.2f faster "
           "(x%.2f per CPU second; weight bytes per token x%.2f)\n", (double)rss[1] / rss[2], t[1].first / t[2].first,
           t[2].step / t[1].step, t[2].step_cpu / t[1].step_cpu, t[1].bytes / t[2].bytes);
    for (int i = 0; i < 2; i++) { unlink(file[i]); unlink(cfg[i]); rmdir(dir[i]); }
}
