/* preset.h: everything one architecture preset knows, in one descriptor
 * (src/presets/<name>.c): its switches, its named sizes, the keys of its
 * upstream config.json, the names of its tensors in its PyTorch state dict,
 * and its initialisation. Adding a preset is one new descriptor, listed in
 * preset.c (and, for a file layout of its own, a format in formats.c). */
#ifndef RN_PRESET_H
#define RN_PRESET_H

#include "model.h"

struct cJSON;

typedef struct { const char *name; int dim, value_dim, ffn, layers, heads; } rni_named_size;

/* fla's kernels assert a key dimension per head of at most 256. */
#define RNI_FLA_MAX_HEAD_K 256

/* An upstream config key that would take the model away from the preset's
 * math: accepted when absent or with one of the values listed (JSON, '|'
 * separated). */
typedef struct { const char *key, *values; } rni_fixed_key;

/* Variants of a preset's tensor names. All zero: the names of the
 * reference implementation. */
typedef struct {
    int hf_prefix;     /* torchscale's Hugging Face port: "model." before each
                          name, the head as "lm_head.weight" */
    int fused_mlp;     /* older fla files: one mlp.gate_proj.weight [2I, d]
                          holding gate, then up */
    int g_norm_alias;  /* older fla files: attn.g_norm.weight */
} rn_names;

/* A tensor as a file holds it: a block of rows [row0, row0+rows) of the
 * internal tensor at param offset off (cols wide), stored transposed when
 * transpose is set; or a constant buffer (values, checked on read). */
typedef struct {
    char name[112];
    int ndim;
    int64_t shape[2];        /* file shape */
    size_t off;              /* first element of the block in params */
    int rows, cols;          /* internal block shape */
    int transpose;
    double *buffer;          /* constant buffer values (rows) or NULL */
    int alias;               /* a second name of a block listed before it (a
                                tied head): optional, checked equal on read,
                                not written */
} rni_file_tensor;

typedef struct {
    rni_file_tensor *t;
    int n, cap;
    const char *prefix;      /* before every name added */
    int ok;                  /* 0 once an allocation failed */
} rni_file_list;

/* Builders of a list (tensor_io.c); failures clear l->ok. add_block adds
 * rows [row0, row0 + rows) (rows < 0: all) of the model's tensor of kind k
 * in layer (-1: global), stored [in, out] when tr; nothing when the
 * architecture has no such tensor. */
void rni_add_block(rni_file_list *l, const rn_model *m, rn_tensor_kind k, int layer, int row0, int rows,
                   int tr, const char *fmt, ...) __attribute__((format(printf, 8, 9)));
/* A constant buffer of n values (taken over, freed with the list). */
void rni_add_buffer(rni_file_list *l, const char *name, int n, double *values);
/* The head of a tied model under its own name (an alias of the embedding). */
void rni_add_tied_head(rni_file_list *l, const rn_model *m, const char *name);
void rni_file_list_free(rni_file_list *l);

typedef struct {
    rn_preset id;
    const char *name;
    /* The switches (rn_config's architecture fields; sizes left zero). */
    void (*switches)(rn_config *c);
    const rni_named_size *sizes;   /* named sizes beyond tiny, small, demo */
    int n_sizes;
    /* A key only this preset's upstream config.json has. */
    const char *signature_key;
    const rni_fixed_key *fixed_keys;
    int n_fixed;
    /* Sizes and options from the upstream config object o, over the
     * switches: NULL, or the name of the first missing or invalid key. */
    const char *(*config_read)(const struct cJSON *o, rn_config *c);
    /* The config as upstream keys (beside "preset"). */
    void (*config_write)(const rn_config *c, struct cJSON *o);
    /* The extra refusals beyond fixed_keys (e.g. values that must agree). */
    const char *(*config_unsupported)(const struct cJSON *o);
    /* The file tensors of m under names nm. */
    void (*tensors)(rni_file_list *l, const rn_model *m, const rn_names *nm);
    /* The reference's initialisation of parameter tensor t (values p). */
    void (*init)(const rn_model *m, const rn_tensor_info *t, rn_real *p, rn_rng *rng);
} rni_preset_desc;

/* The descriptor of p, or NULL when p is no preset. */
const rni_preset_desc *rni_preset(rn_preset p);

/* Helpers for the descriptors (preset.c). json_*: 1 when the key is absent
 * (unless required) or valid, 0 when invalid. */
int rni_json_int(const struct cJSON *o, const char *key, int *out, int required);
int rni_json_bool(const struct cJSON *o, const char *key, int *out);
int rni_json_double(const struct cJSON *o, const char *key, double *out);
void rni_fill_uniform(rn_rng *r, rn_real *p, size_t n, double bound);
void rni_fill_normal(rn_rng *r, rn_real *p, size_t n, double std);
/* xavier_uniform: U(-a, a), a = gain sqrt(6 / (fan_in + fan_out)). */
void rni_xavier(rn_rng *r, rn_real *p, int rows, int cols, double gain);

#endif
