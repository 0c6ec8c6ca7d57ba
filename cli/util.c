/* util.c: the CLI's libc-only helpers (util.h). */
#define _POSIX_C_SOURCE 200809L
#include "util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

void die_usage(const char *cmd, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "retnet %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see retnet %s --help)\n", cmd);
    exit(2);
}

void die(const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "retnet: error: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

double cpu_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int make_dirs(const char *path) {
    char p[4096];
    if (snprintf(p, sizeof p, "%s", path) >= (int)sizeof p) { errno = ENAMETOOLONG; return -1; }
    for (char *s = p + 1; *s; s++)
        if (*s == '/') {
            *s = 0;
            if (mkdir(p, 0755) != 0 && errno != EEXIST) return -1;
            *s = '/';
        }
    struct stat sb;
    if (mkdir(p, 0755) != 0 && errno != EEXIST) return -1;
    if (stat(p, &sb) != 0) return -1;
    if (!S_ISDIR(sb.st_mode)) { errno = ENOTDIR; return -1; }
    return 0;
}

void format_duration(char *buf, size_t n, double s) {
    if (!(s >= 0) || s > 1e7) { snprintf(buf, n, "--:--"); return; }
    int t = (int)(s + 0.5);
    if (t >= 3600) snprintf(buf, n, "%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60);
    else snprintf(buf, n, "%02d:%02d", t / 60, t % 60);
}

size_t utf8_complete(const unsigned char *b, size_t n) {
    for (size_t back = 1; back <= 3 && back <= n; back++) {
        unsigned char c = b[n - back];
        if ((c & 0xC0) == 0x80) continue;  /* a continuation byte: look further back */
        size_t need = c >= 0xF0 && c <= 0xF7 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
        return c >= 0xC0 && need > back ? n - back : n;
    }
    return n;  /* no lead byte within 3: not one character, print it */
}

void wait_passively(const char *command, int argc, char **argv, int threads) {
    if (threads == 1 || getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT")) return;
    char **av = malloc(sizeof *av * ((size_t)argc + 3));
    if (!av || setenv("OMP_WAIT_POLICY", "passive", 1) != 0) { free(av); return; }
    av[0] = "retnet";
    av[1] = (char *)command;
    memcpy(av + 2, argv, sizeof *av * (size_t)argc);
    av[argc + 2] = NULL;
    execv("/proc/self/exe", av);
    free(av);  /* no /proc: run as we are */
}
