/* tensor_io.h: a model's tensors in safetensors files under the names of
 * its preset (tensor_io.c), for formats.c (model formats: paths,
 * directories, config.json, detection). */
#ifndef RN_TENSOR_IO_H
#define RN_TENSOR_IO_H

#include "preset.h"


/* The safetensors files of one model (one, or its shards), memory-mapped,
 * every header validated, tensor names unique across the files. label
 * (what the user named: a file or a directory) prefixes model-level errors;
 * it must outlive the set. */
typedef struct rn_tensor_set rn_tensor_set;
rn_status rni_tensor_set_open(const char *label, const char *const *paths, int n, rn_tensor_set **out);
void rni_tensor_set_close(rn_tensor_set *s);
/* __metadata__[key] of the first file, or NULL. */
const char *rni_tensor_set_meta(const rn_tensor_set *s, const char *key);
/* The file (0..n-1) holding the tensor, or -1; its shape in ndim and shape
 * (8 entries) when they are not NULL. */
int rni_tensor_set_find(const rn_tensor_set *s, const char *name, int *ndim, int64_t *shape);
/* A model of config cfg with its parameters read from s under names: every
 * tensor there with the config's shape and finite values; position buffers
 * and a tied head optional, but equal to what they must be when present; no
 * tensor left over. A config too large for the files is refused before
 * anything is allocated. */
rn_status rni_tensor_set_model(rn_tensor_set *s, const rn_config *cfg, const rn_names *names, rn_model **out);

/* Writes values (laid out like m's parameters) under names as one
 * safetensors file of dtype, atomically, with the FNV-1a checksum of the
 * data in the metadata; buffers adds the preset's position buffers;
 * config_json (may be NULL) goes to __metadata__["retnet"]. */
rn_status rni_tensors_save(const char *path, const rn_model *m, const rn_real *values, const rn_names *names,
                          int buffers, rn_dtype dtype, const char *config_json);

#endif
