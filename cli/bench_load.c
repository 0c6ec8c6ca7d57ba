/* bench_load.c (CLI): `retnet bench --case load`: how fast a big model
 * starts. A fla-shaped model (1.22 B parameters, 4.9 GB in float32; --quick:
 * 0.2 B) is written once; then, in a fresh process each, the time to read
 * the file once from the page cache (the limit), and the time from
 * rn_model_load to the first generated token with its peak resident memory. */
#define _DEFAULT_SOURCE  /* wait4 */
#include "bench_load.h"
#include "retnet.h"
#include "util.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

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
int bench_load_child(const char *path) {
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
    if (rn_model_load(path, &m) != RN_OK || rn_session_create(m, &sc, 64, &s) != RN_OK) die("%s", rn_last_error());
    t.load = now_seconds() - t0;
    int32_t tok = 1;
    if (rn_session_prefill(s, &tok, 1) != RN_OK) die("%s", rn_last_error());
    t.first = now_seconds() - t0;  /* the first token's logits: it is sampled from them */
    if (rn_session_step(s, &tok) != RN_OK) die("%s", rn_last_error());
    double t1 = now_seconds();
    for (int i = 0; i < 3; i++)
        if (rn_session_step(s, &tok) != RN_OK) die("%s", rn_last_error());
    t.step = (now_seconds() - t1) / 3;
    printf("%.6f %.6f %.6f %.6f\n", t.load, t.first, t.step, t.inspect);
    rn_session_free(s);
    rn_model_free(m);
    return 0;
}

/* Runs bench_load_child in a new process image (a fork of this one could
 * not use OpenMP again) and returns its times and peak RSS. */
load_times bench_timed_start(const char *path, long *rss_kb) {
    int fds[2];
    if (pipe(fds) != 0) die("pipe failed");
    pid_t pid = fork();
    if (pid < 0) die("fork failed");
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        execl("/proc/self/exe", "retnet", "bench", "--load-child", path, (char *)NULL);
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
        sscanf(line, "%lf %lf %lf %lf", &t.load, &t.first, &t.step, &t.inspect) != 4)
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
    load_times t = bench_timed_start(path, &rss);
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
