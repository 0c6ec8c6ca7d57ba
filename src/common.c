/* common.c: errors, threads, random numbers, allocation, atomic writes. */
#define _POSIX_C_SOURCE 200809L
#include "internal.h"
#include "ops.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <time.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* ---------------------------------------------------------------- errors */

static _Thread_local char rn_errbuf[512];

rn_status rni_fail(rn_status s, const char *fmt, ...) {
    /* Formatted aside first: callers may pass rn_last_error() itself as an
     * argument (to prefix a file name), which must not be overwritten while
     * it is read. */
    char buf[sizeof rn_errbuf];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    /* One line, whatever a hostile file put in the names it quotes: control
     * characters (newlines, terminal escapes) are shown as '?'. */
    for (char *c = buf; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f) *c = '?';
    memcpy(rn_errbuf, buf, sizeof buf);
    return s;
}

const char *rn_last_error(void) { return rn_errbuf; }

const char *rn_version(void) { return RETNET_VERSION_STRING; }

const char *rn_status_name(rn_status s) {
    switch (s) {
    case RN_OK: return "ok";
    case RN_ERR_NOMEM: return "out of memory";
    case RN_ERR_IO: return "I/O error";
    case RN_ERR_FORMAT: return "bad file format";
    case RN_ERR_ARG: return "invalid argument";
    case RN_ERR_NUMERIC: return "non-finite value";
    case RN_ERR_INTERRUPTED: return "interrupted";
    }
    return "unknown error";
}

/* ----------------------------------------------------------------- names */

const char *rni_name_of(const char *const *names, int count, int i) {
    return i >= 0 && i < count ? names[i] : "unknown";
}

rn_status rni_name_lookup(const char *const *names, int count, const char *what, const char *name, int *out) {
    for (int i = 0; name && i < count; i++)
        if (strcmp(name, names[i]) == 0) { *out = i; return RN_OK; }
    char list[256] = "";
    for (int i = 0; i < count; i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "", names[i]);
    return rni_fail(RN_ERR_ARG, "unknown %s '%s' (expected %s)", what, name ? name : "(null)", list);
}

/* --------------------------------------------------------------- threads */

static int rn_threads = 0;

void rn_set_threads(int n) {
    if (n <= 0) return;
    rn_threads = n;
#ifdef _OPENMP
    omp_set_num_threads(n);
#endif
    rni_blas_set_threads(n);
}

int rn_get_threads(void) {
#ifdef _OPENMP
    /* omp_set_num_threads sets the calling thread's count only: a thread
     * that calls in after rn_set_threads on another would run its regions
     * with more threads than the scratch it was sized for. */
    if (rn_threads > 0 && omp_get_max_threads() != rn_threads) omp_set_num_threads(rn_threads);
    return rn_threads > 0 ? rn_threads : omp_get_max_threads();
#else
    return 1;
#endif
}

/* ------------------------------------------------------------------- rng */

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void rn_rng_seed(rn_rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t rn_rng_u64(rn_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3];
    s[2] ^= t; s[3] = rotl(s[3], 45);
    return result;
}

double rn_rng_uniform(rn_rng *r) { return (double)(rn_rng_u64(r) >> 11) * 0x1.0p-53; }

double rn_rng_normal(rn_rng *r) {
    /* Box-Muller; one value per call keeps the stream position simple. */
    double u1 = rn_rng_uniform(r), u2 = rn_rng_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* ------------------------------------------------------------ allocation */

int rni_mul_ok(size_t a, size_t b, size_t *out) {
    if (a != 0 && b > SIZE_MAX / a) return 0;
    *out = a * b;
    return 1;
}

int rni_add_ok(size_t a, size_t b, size_t *out) {
    if (b > SIZE_MAX - a) return 0;
    *out = a + b;
    return 1;
}

void *rni_alloc(size_t n, size_t sz) {
    size_t bytes;
    if (!rni_mul_ok(n, sz, &bytes) || bytes > ((size_t)1 << 46)) return NULL;
    if (bytes == 0) bytes = 64;
    bytes = (bytes + 63) & ~(size_t)63;
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes) != 0) return NULL;
    return p;
}

void *rni_calloc(size_t n, size_t sz) {
    void *p = rni_alloc(n, sz);
    if (p) memset(p, 0, n * sz);
    return p;
}

void rni_free(void *p) { free(p); }

/* --------------------------------------------------------- atomic writes */

rn_status rn_atomic_open(rn_atomic_file *af, const char *path) {
    memset(af, 0, sizeof *af);
    size_t n = strlen(path) + 32;
    af->path = strdup(path);
    af->tmp = malloc(n);
    if (!af->path || !af->tmp) {
        rn_atomic_abort(af);
        return rni_fail(RN_ERR_NOMEM, "out of memory");
    }
    snprintf(af->tmp, n, "%s.tmp.%ld", path, (long)getpid());
    af->f = fopen(af->tmp, "wb");
    if (!af->f) {
        rn_status s = rni_fail(RN_ERR_IO, "cannot create %s: %s", af->tmp, strerror(errno));
        rn_atomic_abort(af);
        return s;
    }
    return RN_OK;
}

rn_status rn_atomic_write(rn_atomic_file *af, const void *data, size_t n) {
    if (n && fwrite(data, 1, n, af->f) != n)
        return rni_fail(RN_ERR_IO, "cannot write %s: %s", af->tmp, strerror(errno));
    return RN_OK;
}

static void fsync_parent_dir(const char *path) {
    char *dir = strdup(path);
    if (!dir) return;
    char *slash = strrchr(dir, '/');
    if (slash) { if (slash == dir) slash[1] = 0; else *slash = 0; }
    int fd = open(slash ? dir : ".", O_RDONLY);
    if (fd >= 0) { fsync(fd); close(fd); }
    free(dir);
}

/* Temporaries of `path` left by writers that died mid-write (kill -9, power
 * loss): `path`.tmp.PID where no process PID exists on this machine and the
 * file has not changed for a minute (a writer on another machine sharing the
 * directory would still be changing it). Removed after a successful write. */
static void remove_stale_temps(const char *path) {
    const char *slash = strrchr(path, '/');
    int dlen = slash ? (int)(slash - path) + 1 : 0;  /* the directory part, '/' included */
    const char *base = path + dlen;
    size_t blen = strlen(base), fsize = strlen(path) + 300;
    char *dir = malloc((size_t)dlen + 2), *full = malloc(fsize);
    if (!dir || !full) { free(dir); free(full); return; }
    snprintf(dir, (size_t)dlen + 2, "%.*s", dlen ? dlen : 1, dlen ? path : ".");
    DIR *dp = opendir(dir);
    for (struct dirent *e; dp && (e = readdir(dp));) {
        const char *n = e->d_name;
        if (strncmp(n, base, blen) != 0 || strncmp(n + blen, ".tmp.", 5) != 0) continue;
        char *end;
        long pid = strtol(n + blen + 5, &end, 10);
        if (end == n + blen + 5 || *end || pid <= 0 || pid == (long)getpid()) continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;  /* alive, or not ours to judge */
        snprintf(full, fsize, "%.*s%s", dlen, path, n);
        struct stat st;
        if (stat(full, &st) == 0 && S_ISREG(st.st_mode) && time(NULL) - st.st_mtime > 60) unlink(full);
    }
    if (dp) closedir(dp);
    free(dir);
    free(full);
}

rn_status rn_atomic_commit(rn_atomic_file *af) {
    rn_status s = RN_OK;
    if (fflush(af->f) != 0 || fsync(fileno(af->f)) != 0)
        s = rni_fail(RN_ERR_IO, "cannot write %s: %s", af->tmp, strerror(errno));
    if (fclose(af->f) != 0 && s == RN_OK)
        s = rni_fail(RN_ERR_IO, "cannot write %s: %s", af->tmp, strerror(errno));
    af->f = NULL;
    if (s == RN_OK && rename(af->tmp, af->path) != 0)
        s = rni_fail(RN_ERR_IO, "cannot rename %s to %s: %s", af->tmp, af->path, strerror(errno));
    if (s == RN_OK) {
        fsync_parent_dir(af->path);
        remove_stale_temps(af->path);
    } else {
        unlink(af->tmp);
    }
    free(af->path); free(af->tmp);
    af->path = af->tmp = NULL;
    return s;
}

void rn_atomic_abort(rn_atomic_file *af) {
    if (af->f) fclose(af->f);
    if (af->tmp) unlink(af->tmp);
    free(af->path); free(af->tmp);
    memset(af, 0, sizeof *af);
}
