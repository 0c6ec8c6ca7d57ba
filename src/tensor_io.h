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
/* verify: also check each file's data checksum (every byte is read). */
rn_status rni_tensor_set_open(const char *label, const char *const *paths, int n, int verify, rn_tensor_set **out);
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
 * anything is allocated. Tensors stored as they are held (float32 in our
 * layout, a quantised file's types, a projection's BF16 / F16) are read
 * where they are mapped (the model keeps the mappings, s loses them); the
 * rest are copied: into one f32 buffer when every tensor is f32, else into
 * one block as held (16-bit projections assembled bit for bit, vectors
 * widened to f32). flags: RN_LOAD_* (RN_LOAD_F32 widens bf16 and f16). */
rn_status rni_tensor_set_model(rn_tensor_set *s, const rn_config *cfg, const rn_names *names, unsigned flags,
                               rn_model **out);

/* What rn_model_inspect reports of s for cfg (no data is read). */
rn_status rni_tensor_set_info(rn_tensor_set *s, const rn_config *cfg, const rn_names *names, rn_model_info *info);

/* Writes values (laid out like m's parameters; NULL: m's own, wherever they
 * are) under names as one
 * safetensors file of dtype, atomically, with the XXH3 checksum of the
 * data in the metadata; buffers adds the preset's position buffers;
 * config_json (may be NULL) goes to __metadata__["retnet"]. */
rn_status rni_tensors_save(const char *path, const rn_model *m, const rn_real *values, const rn_names *names,
                          int buffers, rn_dtype dtype, const char *config_json);

/* Writes m as one safetensors file whose large projections (and embedding
 * and head unless flags keep them) are of type wt (rn_model_quantize),
 * atomically, with the XXH3 data checksum; config_json (may be NULL) goes to
 * __metadata__["retnet"]. */
rn_status rni_tensors_quantize(const char *path, const rn_model *m, const rn_names *names, rn_wtype wt,
                               unsigned flags, const char *config_json);

#endif
