/* fuzz_tokens.c: the CLI's token lists (`retnet logits --tokens 1,2,3` or
 * `--tokens @file`), parse_tokens in cli/common.c, linked as it is, with
 * two changes at link time (mk/fuzz.mk): the CLI's die() and die_usage()
 * are wrapped (-Wl,--wrap) to jump back here instead of exiting, and
 * common.o's malloc, realloc, strdup and free are redirected (objcopy) to
 * the tracking versions below, so that what a refusal leaves allocated
 * (the CLI exits instead of freeing) is freed here and leak checking stays
 * on. Properties, for every input, given inline and as @file:
 * - no crash, leak or undefined behaviour;
 * - an accepted list has 1 .. 10^7 ids, each in [0, 2^31), and both forms
 *   agree. */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>

#include "common.h"
#include "fuzz.h"

static jmp_buf on_die;

void __wrap_die(const char *fmt, ...);
void __wrap_die_usage(const char *cmd, const char *fmt, ...);

void __wrap_die(const char *fmt, ...) {
    (void)fmt;
    longjmp(on_die, 1);
}

void __wrap_die_usage(const char *cmd, const char *fmt, ...) {
    (void)cmd; (void)fmt;
    longjmp(on_die, 1);
}

/* The blocks common.o holds. */
static void *live[16];

static void track(void *p, void *old) {
    for (int i = 0; i < 16; i++)
        if (live[i] == old) { live[i] = p; return; }
    fuzz_fail("track", "too many live blocks");
}

void *fuzz_malloc(size_t n);
void *fuzz_realloc(void *p, size_t n);
char *fuzz_strdup(const char *s);
void fuzz_free(void *p);

void *fuzz_malloc(size_t n) {
    void *p = malloc(n);
    if (p) track(p, NULL);
    return p;
}

void *fuzz_realloc(void *p, size_t n) {
    void *q = realloc(p, n);
    if (q) track(q, p);
    return q;
}

char *fuzz_strdup(const char *s) {
    char *p = strdup(s);
    if (p) track(p, NULL);
    return p;
}

void fuzz_free(void *p) {
    if (p) track(NULL, p);
    free(p);
}

/* parse_tokens(spec) or NULL if the CLI would have exited. */
static int32_t *parse(const char *spec, int *n) {
    int32_t *volatile ids = NULL;
    if (setjmp(on_die) == 0) ids = parse_tokens("fuzz", spec, n);
    for (int i = 0; i < 16; i++) {
        if (live[i] != ids) free(live[i]);  /* the CLI would have exited */
        live[i] = NULL;
    }
    return ids;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* Inline: the argument is a C string, so it ends at the first NUL. */
    char *spec = malloc(size + 1);
    if (!spec) return 0;
    memcpy(spec, data, size);
    spec[size] = 0;
    int n1 = 0, n2 = 0;
    int32_t *a = spec[0] == '@' ? NULL : parse(spec, &n1);
    free(spec);
    /* From a file: every byte counts. */
    char at[400];
    snprintf(at, sizeof at, "@%s", fuzz_write("tokens.txt", data, size));
    int32_t *b = parse(at, &n2);
    if (b) {
        if (n2 < 1 || n2 > 10000000) fuzz_fail("parse_tokens", "count out of range");
        for (int i = 0; i < n2; i++)
            if (b[i] < 0) fuzz_fail("parse_tokens", "negative id");
    }
    if (a && !memchr(data, 0, size) && (!b || n1 != n2 || memcmp(a, b, sizeof *a * (size_t)n1) != 0))
        fuzz_fail("parse_tokens", "inline and @file disagree");
    free(a);
    free(b);
    return 0;
}
