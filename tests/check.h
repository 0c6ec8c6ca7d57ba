/* check.h: a minimal test harness. Each test program counts its checks and
 * ends with "N passed, N failed"; tests/run.sh adds them up. */
#ifndef RN_CHECK_H
#define RN_CHECK_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "retnet.h"

static int check_passed, check_failed;

#define CHECK(cond, ...)                                                   \
    do {                                                                   \
        if (cond) {                                                        \
            check_passed++;                                                \
        } else {                                                           \
            check_failed++;                                                \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);           \
            fprintf(stderr, __VA_ARGS__);                                  \
            fputc('\n', stderr);                                           \
        }                                                                  \
    } while (0)

#define CHECK_OK(expr)                                                     \
    do {                                                                   \
        rn_status st_ = (expr);                                            \
        CHECK(st_ == RN_OK, "%s -> %s: %s", #expr, rn_status_name(st_),    \
              rn_last_error());                                            \
    } while (0)

#define CHECK_DONE()                                                       \
    do {                                                                   \
        printf("%d passed, %d failed\n", check_passed, check_failed);      \
        return check_failed != 0;                                          \
    } while (0)

#ifdef RETNET_DOUBLE
#define PRECISION "float64"
#define AGREE_TOL 1e-12
#else
#define PRECISION "float32"
#define AGREE_TOL 1e-5
#endif

/* ||a - b|| / ||b|| */
static inline double rel_err(const rn_real *a, const rn_real *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        num += d * d;
        den += (double)b[i] * b[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

static inline int all_finite(const rn_real *a, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(a[i])) return 0;
    return 1;
}

/* A small random model of the given preset. */
static inline rn_model *make_model(rn_preset p, int dim, int heads, int value_dim, int layers,
                                   int vocab, uint64_t seed) {
    rn_config c;
    memset(&c, 0, sizeof c);
    rn_config_preset(&c, p, NULL);
    c.dim = dim; c.heads = heads; c.value_dim = value_dim; c.ffn_dim = 2 * dim;
    c.layers = layers; c.vocab = vocab;
    rn_model *m = NULL;
    if (rn_model_create(&c, &m) != RN_OK) {
        fprintf(stderr, "make_model: %s\n", rn_last_error());
        exit(1);
    }
    rn_model_init_random(m, seed);
    return m;
}

static inline void random_tokens(int32_t *t, size_t n, int vocab, uint64_t seed) {
    rn_rng r;
    rn_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++) t[i] = (int32_t)(rn_rng_u64(&r) % (uint64_t)vocab);
}

#endif
