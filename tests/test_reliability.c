/* test_reliability.c: a damaged checkpoint never loads (docs/RELIABILITY.md).
 * - Every single-bit flip anywhere in the header of a checkpoint (the
 *   length, the tensor entries, the config and the training state in the
 *   metadata, the checksums and their keys), and every flip of one bit in
 *   each 97th byte of the data, is refused with RN_ERR_FORMAT and a
 *   one-line message; so is every truncation to a length inside the header
 *   (or just past it), and to every 61st length after that.
 * - The undamaged file loads, and loads again after a save (the checksums
 *   are deterministic). */
#define _POSIX_C_SOURCE 200809L
#include "check.h"

#include <unistd.h>

static unsigned char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) { perror(path); exit(1); }
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(*n);
    if (!b || fread(b, 1, *n, f) != *n) { perror(path); exit(1); }
    fclose(f);
    return b;
}

static void spit(const char *path, const unsigned char *b, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(b, 1, n, f) != n || fclose(f) != 0) { perror(path); exit(1); }
}

/* Loads path as a checkpoint: RN_OK (and frees it) or the status. */
static rn_status load(const char *path) {
    rn_trainer *t;
    char *user;
    rn_status st = rn_trainer_load(path, &t, &user);
    if (st == RN_OK) {
        rn_model_free(rn_trainer_model(t));
        rn_trainer_free(t);
        free(user);
    }
    return st;
}

/* The damaged file is refused as it should be; returns 1 if it was. */
static int refused(const char *path, const char *what, size_t at) {
    rn_status st = load(path);
    const char *e = rn_last_error();
    int ok = st == RN_ERR_FORMAT && e[0] && !strchr(e, '\n');
    CHECK(ok, "%s at %zu: %s (%s)", what, at, rn_status_name(st), e);
    return ok;
}

int main(void) {
    /* some 25,000 small files: in memory when there is /dev/shm */
    char dir[64], good[96], bad[96];
    snprintf(dir, sizeof dir, "%s/retnet_test_reliability.XXXXXX", access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
    if (!mkdtemp(dir)) { perror("mkdtemp"); return 1; }
    snprintf(good, sizeof good, "%s/good.safetensors", dir);
    snprintf(bad, sizeof bad, "%s/bad.safetensors", dir);

    rn_model *m = make_model(RN_PRESET_TORCHSCALE, 8, 2, 16, 1, 16, 3);
    rn_train_config tc;
    rn_train_config_default(&tc);
    tc.batch = 2; tc.seq = 4; tc.steps = 10;
    rn_trainer *t;
    CHECK_OK(rn_trainer_create(m, &tc, &t));
    int32_t x[8], y[8];
    random_tokens(x, 8, 16, 1);
    random_tokens(y, 8, 16, 2);
    CHECK_OK(rn_trainer_step(t, x, y, NULL));
    CHECK_OK(rn_trainer_save(t, good, "{\"rng\":[\"0123456789abcdef\"],\"seed\":1}"));
    CHECK_OK(load(good));
    CHECK_OK(rn_trainer_save(t, bad, "{\"rng\":[\"0123456789abcdef\"],\"seed\":1}"));
    size_t n, n2;
    unsigned char *b = slurp(good, &n), *b2 = slurp(bad, &n2);
    CHECK(n == n2 && memcmp(b, b2, n) == 0, "saving twice gives different files");
    free(b2);

    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = hl << 8 | b[i];
    size_t header = 8 + (size_t)hl, flips = 0, ok = 0;
    for (size_t off = 0; off < n; off += off < header ? 1 : 97)
        for (int bit = 0; bit < 8; bit++) {
            /* the padding after the header's JSON is not part of it */
            if (off >= 8 && off < header && b[off] == ' ' && strspn((char *)b + off, " ") >= header - off) continue;
            b[off] ^= (unsigned char)(1 << bit);
            spit(bad, b, n);
            ok += refused(bad, "bit flipped", off);
            flips++;
            b[off] ^= (unsigned char)(1 << bit);
        }
    size_t cuts = 0;
    for (size_t len = 0; len < n; len += len < header + 64 ? 1 : 61, cuts++) {
        spit(bad, b, len);
        ok += refused(bad, "truncated", len);
    }
    printf("checkpoint of %zu bytes (header %zu): %zu of %zu single-bit flips and %zu truncations refused (%s)\n", n,
           header, ok, flips + cuts, cuts, PRECISION);
    free(b);
    rn_trainer_free(t);
    rn_model_free(m);
    unlink(good);
    unlink(bad);
    rmdir(dir);
    CHECK_DONE();
}
