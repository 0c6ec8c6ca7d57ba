/* safetensors.h: reading and writing safetensors files (safetensors.c). */
#ifndef RN_SAFETENSORS_H
#define RN_SAFETENSORS_H

#include "internal.h"

struct cJSON;

/* Safetensors' U8, read and written for the block types of quantised
 * files only (not an rn_dtype: no value is read as a number from it). */
#define RNI_DTYPE_U8 ((rn_dtype)RN_DTYPE_COUNT)

/* One tensor of a file's header, validated. */
typedef struct {
    const char *name;
    rn_dtype dt;
    size_t esize, begin, end;
    int ndim;
    int64_t shape[8];
    int used;                /* marked by readers that check none is left over */
} st_entry;

/* An open safetensors file: mapped, header parsed and validated. */
typedef struct {
    const char *path;
    unsigned char *map;
    size_t size;
    struct cJSON *hdr;
    const char *config;          /* __metadata__["retnet"] or NULL */
    st_entry *e;
    int ne;
    const unsigned char *data;   /* the data section */
    size_t data_len;
} st_file;

/* Opens, maps and validates path (header, offsets, no overlaps or repeated
 * names, the metadata checksum when present) and, with verify, the data
 * checksum. On failure f is closed. */
rn_status rni_st_open(const char *path, st_file *f, int verify);
/* The data checksum (__metadata__.checksum_xxh3, 16 hex digits): XXH3-64 of
 * each block of RNI_HASH_BLOCK bytes, then of those digests (little-endian). */
#define RNI_HASH_BLOCK ((size_t)1 << 22)
uint64_t rni_st_data_hash(const void *p, size_t n);
void rni_st_close(st_file *f);
/* The header entry of a tensor, or NULL. */
st_entry *rni_st_find(st_file *f, const char *name);
/* __metadata__[key] when it is a string, else NULL. */
const char *rni_st_meta(const st_file *f, const char *key);
/* Element i of raw little-endian data p of type dt (unaligned-safe). */
double rni_st_elem(const unsigned char *p, rn_dtype dt, size_t i);
/* The config in __metadata__["retnet"], refused when it cannot fit. */
rn_status rni_st_config(const st_file *f, rn_config *cfg);
/* Refuses (before anything is allocated) a config whose parameters cannot
 * fit in data_len bytes of files at 18 bytes per 32 (q4_0, the smallest
 * type). */
rn_status rni_st_config_fits(const char *path, const rn_config *cfg, size_t data_len);
/* "[2, 3]" */
void rni_shape_str(char *buf, size_t n, int ndim, const int64_t *shape);
/* v is finite and stays finite as rn_real (an F64 1e300 would not in float). */
int rni_real_ok(double v);

/* A tensor to write: count elements produced by get(ctx, i). */
typedef struct {
    const char *name;
    int ndim;
    int64_t shape[2];
    size_t count;
    double (*get)(const void *ctx, size_t i);
    const void *ctx;
    /* or, when raw is set, count elements of raw_dt (BF16, F16, or
     * RNI_DTYPE_U8) written as they are, whatever the file's dtype */
    const void *raw;
    rn_dtype raw_dt;
} st_out;
/* Producer of a flat rn_real array (ctx). */
double rni_st_flat_get(const void *ctx, size_t j);

/* Writes the tensors as one file of dtype dt, atomically, with the XXH3 block
 * checksum of the data section in the metadata; meta is consumed. Values
 * beyond F16's range are refused before any file is made. */
rn_status rni_st_write(const char *path, struct cJSON *meta, const st_out *t, int n, rn_dtype dt);
/* Metadata objects: PyTorch's "format" and config_json (may be NULL) as
 * "retnet"; the same with cfg's JSON. */
struct cJSON *rni_st_file_meta(const char *config_json);
struct cJSON *rni_st_config_meta(const rn_config *cfg);
/* FNV-1a 64 of the metadata's string entries but the checksums. */
uint64_t rni_st_meta_hash(const struct cJSON *meta);

#endif
