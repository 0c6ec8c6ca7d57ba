/* internal.h: helpers shared by the library's source files (not public). */
#ifndef RN_INTERNAL_H
#define RN_INTERNAL_H

#include "retnet.h"
#include <stdio.h>

/* Records a formatted message for rn_last_error() and returns s. */
rn_status rn_fail(rn_status s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* rn_config_from_json for configs that need not name their preset (a
 * config.json beside the weights): preset >= 0 is the one the tensor names
 * say, and a config of another preset is refused as a mismatch; -1 reads
 * the "preset" key (default torchscale). Keys of the upstream configs
 * that would change the math away from the preset are refused. */
rn_status rn_config_from_json_as(const char *json, int preset, rn_config *cfg);

/* Overflow-checked size arithmetic: return 0 on overflow. */
int rn_mul_ok(size_t a, size_t b, size_t *out);
int rn_add_ok(size_t a, size_t b, size_t *out);

/* Adds the number v to the JSON object o under key, exactly: cJSON prints
 * 15 significant digits when they come within about an ulp of v, which a
 * file read back (a learning rate, an eps, a ratio) would feel. NULL on
 * failure. */
struct cJSON;
struct cJSON *rn_json_add_number(struct cJSON *o, const char *key, double v);

/* 64-byte aligned allocation, NULL on failure or overflow (n elements of sz). */
void *rn_alloc(size_t n, size_t sz);
void *rn_calloc(size_t n, size_t sz);
void rn_free(void *p);

/* Atomic file write: data goes to PATH.tmp.PID, is fsync'ed, then renamed
 * over path, and the directory is fsync'ed. Never leaves a partial file at
 * path. */
typedef struct rn_atomic_file {
    FILE *f;
    char *path;
    char *tmp;
} rn_atomic_file;
rn_status rn_atomic_open(rn_atomic_file *af, const char *path);
rn_status rn_atomic_write(rn_atomic_file *af, const void *data, size_t n);
rn_status rn_atomic_commit(rn_atomic_file *af);
void rn_atomic_abort(rn_atomic_file *af);

#endif
