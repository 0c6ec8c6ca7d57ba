/* scratch.h: a test program's temporary directory (scratch_open makes it,
 * scratch_close removes it and all in it), paths and files in it, and the
 * fixed xorshift stream the tests draw random inputs from. The including
 * file defines _POSIX_C_SOURCE 200809L or _GNU_SOURCE (mkdtemp). */
#ifndef RN_SCRATCH_H
#define RN_SCRATCH_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include "retnet.h"

static char tmpdir[64];

/* /tmp/PREFIX.XXXXXX; 0, or -1 if it cannot be made */
static inline int scratch_open(const char *prefix) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/%s.XXXXXX", prefix);
    return mkdtemp(tmpdir) ? 0 : -1;
}

static inline void scratch_close(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", tmpdir);
}

/* tmpdir/name, in one of 64 static buffers taken in turn */
static inline const char *tmp_path(const char *name) {
    static char path[64][256];
    static int k;
    k = (k + 1) % 64;
    snprintf(path[k], sizeof path[k], "%s/%s", tmpdir, name);
    return path[k];
}

/* n bytes to path: 0, or -1 */
static inline int write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = n ? fwrite(data, 1, n, f) : 0;
    return fclose(f) == 0 && w == n ? 0 : -1;
}

/* n bytes to tmpdir/name, atomically; its path, or the program exits */
static inline const char *write_tmp(const char *name, const void *data, size_t n) {
    const char *p = tmp_path(name);
    rn_atomic_file af;
    if (rn_atomic_open(&af, p) != RN_OK || rn_atomic_write(&af, data, n) != RN_OK || rn_atomic_commit(&af) != RN_OK) {
        fprintf(stderr, "cannot write %s: %s\n", p, rn_last_error());
        exit(1);
    }
    return p;
}

static uint64_t rng_state = 88172645463325252ull;
static inline uint64_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

#endif
