/* internal.h: helpers shared by the library's source files (not public). */
#ifndef RN_INTERNAL_H
#define RN_INTERNAL_H

#include "retnet.h"
#include <stdio.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* The calling thread's index in its OpenMP team (0 outside one). */
static inline int rni_thread_id(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* The number of threads in the calling thread's team (1 outside one). */
static inline int rni_team_size(void) {
#ifdef _OPENMP
    return omp_get_num_threads();
#else
    return 1;
#endif
}

/* Records a formatted message for rn_last_error() and returns s. */
rn_status rni_fail(rn_status s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* rn_config_from_json for configs that need not name their preset (a
 * config.json beside the weights): preset >= 0 is the one the tensor names
 * say, and a config of another preset is refused as a mismatch; -1 reads
 * the "preset" key (default torchscale). Keys of the upstream configs
 * that would change the math away from the preset are refused. */
rn_status rni_config_from_json_as(const char *json, int preset, rn_config *cfg);

/* Limits that keep every size computation far from overflow and refuse
 * absurd files before anything is allocated. */
#define RN_MAX_DIM    (1 << 16)
#define RN_MAX_LAYERS 1024
#define RN_MAX_VOCAB  (1 << 22)

/* Names of an enum's values, indexed by value (count of them, the enum's
 * *_COUNT sentinel): the name of value i ("unknown" out of range), and the
 * value named name, or an error that lists the names ("unknown <what>"). */
const char *rni_name_of(const char *const *names, int count, int i);
rn_status rni_name_lookup(const char *const *names, int count, const char *what, const char *name, int *out);

/* Overflow-checked size arithmetic: return 0 on overflow. */
int rni_mul_ok(size_t a, size_t b, size_t *out);
int rni_add_ok(size_t a, size_t b, size_t *out);

/* Adds the number v to the JSON object o under key, exactly: cJSON prints
 * 15 significant digits when they come within about an ulp of v, which a
 * file read back (a learning rate, an eps, a ratio) would feel. NULL on
 * failure. */
struct cJSON;
struct cJSON *rni_json_add_number(struct cJSON *o, const char *key, double v);

/* 64-byte aligned allocation, NULL on failure or overflow (n elements of sz). */
void *rni_alloc(size_t n, size_t sz);
void *rni_calloc(size_t n, size_t sz);
void rni_free(void *p);


#endif
