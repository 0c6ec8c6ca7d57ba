/* fuzz.h: what the libFuzzer targets share. The library reads files by
 * path, so each input is written to a file in a private temporary
 * directory (in /dev/shm when there is one: memory, no disk traffic),
 * removed when the fuzzer exits. A property that fails calls
 * fuzz_fail(), which aborts: libFuzzer then saves the input as a crash. */
#ifndef RN_FUZZ_H
#define RN_FUZZ_H

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "retnet.h"
#include "../same_config.h"

static char fuzz_dir[256];
static char fuzz_paths[16][320];
static int fuzz_npaths;

static inline void fuzz_cleanup(void) {
    char tmp[400];
    for (int i = 0; i < fuzz_npaths; i++) {
        unlink(fuzz_paths[i]);
        /* a file saved atomically may have left PATH.tmp.PID if a write failed */
        snprintf(tmp, sizeof tmp, "%s.tmp.%ld", fuzz_paths[i], (long)getpid());
        unlink(tmp);
    }
    if (fuzz_dir[0]) rmdir(fuzz_dir);
}

static inline void fuzz_fail(const char *what, const char *detail) {
    fprintf(stderr, "fuzz property failed: %s: %s\n", what, detail ? detail : "");
    abort();
}

/* A path in the private directory (created on first use). */
static inline const char *fuzz_path(const char *name) {
    if (!fuzz_dir[0]) {
        const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
        snprintf(fuzz_dir, sizeof fuzz_dir, "%s/retnet-fuzz.XXXXXX", base ? base : "/tmp");
        if (!mkdtemp(fuzz_dir)) { perror("mkdtemp"); exit(1); }
        atexit(fuzz_cleanup);
    }
    for (int i = 0; i < fuzz_npaths; i++)
        if (strcmp(strrchr(fuzz_paths[i], '/') + 1, name) == 0) return fuzz_paths[i];
    if (fuzz_npaths == 16) fuzz_fail("fuzz_path", "too many files");
    snprintf(fuzz_paths[fuzz_npaths], sizeof fuzz_paths[0], "%s/%s", fuzz_dir, name);
    return fuzz_paths[fuzz_npaths++];
}

/* Writes data (size bytes) to the file name in the private directory. */
static inline const char *fuzz_write(const char *name, const uint8_t *data, size_t size) {
    const char *path = fuzz_path(name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) { perror(path); exit(1); }
    for (size_t o = 0; o < size;) {
        ssize_t w = write(fd, data + o, size - o);
        if (w <= 0) { perror(path); exit(1); }
        o += (size_t)w;
    }
    close(fd);
    return path;
}

/* A refusal must come with one line of explanation. */
static inline void fuzz_check_message(const char *what) {
    const char *e = rn_last_error();
    if (!e[0]) fuzz_fail(what, "failed without a message");
    if (strchr(e, '\n')) fuzz_fail(what, e);
}

/* A model that loads runs: a chunkwise forward of 3 tokens (chunk 2), then
 * one recurrent step. */
static inline void fuzz_run_model(rn_model *m) {
    const rn_config *c = rn_model_config(m);
    int32_t tok[3] = {0, c->vocab - 1, c->vocab / 2};
    rn_real *logits = malloc(sizeof(rn_real) * 3 * (size_t)c->vocab);
    rn_state *s = NULL;
    if (!logits || rn_state_create(m, 1, &s) != RN_OK) fuzz_fail("state", rn_last_error());
    if (rn_forward(m, s, tok, 1, 3, RN_CHUNKWISE, 2, 0, logits) != RN_OK) fuzz_fail("chunkwise forward", rn_last_error());
    if (rn_forward(m, s, tok, 1, 1, RN_RECURRENT, 0, RN_FWD_LAST_ONLY, logits) != RN_OK)
        fuzz_fail("recurrent forward", rn_last_error());
    rn_state_free(s);
    free(logits);
}

#endif
