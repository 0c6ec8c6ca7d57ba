/* checkpoint.c: training checkpoints: the parameters and the optimiser
 * moments in native precision (exact resume), the config and the training
 * state as metadata, every byte checksummed. */
#define _POSIX_C_SOURCE 200809L
#include "checkpoint.h"
#include "safetensors.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#ifdef RETNET_DOUBLE
#define CKPT_DTYPE RN_DTYPE_F64
#else
#define CKPT_DTYPE RN_DTYPE_F32
#endif

/* The metadata of a checkpoint, all of it: anything else is a key with a
 * bit flipped (which could hide a checksum), refused on load. */
static const char *const ckpt_meta_keys[] = {"format", "retnet", "train", "checksum_meta_fnv1a64", "checksum_fnv1a64",
                                            "checksum_xxh3"};

rn_status rni_ckpt_save(const char *path, const rn_model *m, const rn_real *const *bufs,
                       const char *const *names, int nbuf, const char *train_json) {
    st_out t[8];
    if (nbuf > 7) return rni_fail(RN_ERR_ARG, "too many checkpoint buffers");
    t[0] = (st_out){"params", 1, {(int64_t)m->n_params, 0}, m->n_params, rni_st_flat_get, m->params, NULL, RN_DTYPE_F32};
    for (int i = 0; i < nbuf; i++) t[i + 1] = (st_out){names[i], 1, {(int64_t)m->n_params, 0}, m->n_params, rni_st_flat_get, bufs[i], NULL, RN_DTYPE_F32};
    cJSON *meta = rni_st_config_meta(&m->cfg);
    if (meta) {
        char msum[32];
        cJSON_AddStringToObject(meta, "train", train_json ? train_json : "{}");
        snprintf(msum, sizeof msum, "%016llx", (unsigned long long)rni_st_meta_hash(meta));
        cJSON_AddStringToObject(meta, "checksum_meta_fnv1a64", msum);
    }
    /* Exact resume: the native precision, bit for bit. */
    return rni_st_write(path, meta, t, nbuf + 1, CKPT_DTYPE);
}

static rn_status read_flat(st_file *f, const char *name, size_t n, rn_real *dst) {
    st_entry *e = rni_st_find(f, name);
    if (!e) return rni_fail(RN_ERR_FORMAT, "%s: missing tensor '%s'", f->path, name);
    if (e->ndim != 1 || (size_t)e->shape[0] != n)
        return rni_fail(RN_ERR_FORMAT, "%s: tensor '%s' does not match the model's %zu parameters", f->path, name, n);
    for (size_t i = 0; i < n; i++) {
        double v = rni_st_elem(f->data + e->begin, e->dt, i);
        if (!rni_real_ok(v)) return rni_fail(RN_ERR_FORMAT, "%s: tensor '%s' holds a non-finite value", f->path, name);
        dst[i] = (rn_real)v;
    }
    return RN_OK;
}

rn_status rni_ckpt_load(const char *path, rn_model **mout, rn_real **bufs, const char *const *names,
                       int nbuf, char **train_json) {
    *mout = NULL;
    for (int i = 0; i < nbuf; i++) bufs[i] = NULL;
    *train_json = NULL;
    st_file f;
    rn_status st = rni_st_open(path, &f, 1);
    if (st != RN_OK) return st;
    rn_model *m = NULL;
    rn_config cfg;
    const char *tj = rni_st_meta(&f, "train");
    if (!f.config || !tj) { st = rni_fail(RN_ERR_FORMAT, "%s: not a retnet training checkpoint", path); goto done; }
    for (const cJSON *it = cJSON_GetObjectItemCaseSensitive(f.hdr, "__metadata__")->child; it; it = it->next) {
        size_t k = 0, nk = sizeof ckpt_meta_keys / sizeof *ckpt_meta_keys;
        while (k < nk && strcmp(it->string, ckpt_meta_keys[k]) != 0) k++;
        if (k == nk) { st = rni_fail(RN_ERR_FORMAT, "%s: unknown metadata '%s' (file corrupted?)", path, it->string); goto done; }
    }
    if ((st = rni_st_config(&f, &cfg)) != RN_OK) goto done;
    if ((st = rn_model_create(&cfg, &m)) != RN_OK) goto done;
    if ((st = read_flat(&f, "params", m->n_params, m->params)) != RN_OK) goto done;
    for (int i = 0; i < nbuf; i++) {
        bufs[i] = rni_alloc(m->n_params, sizeof(rn_real));
        if (!bufs[i]) { st = rni_fail(RN_ERR_NOMEM, "out of memory"); goto done; }
        if ((st = read_flat(&f, names[i], m->n_params, bufs[i])) != RN_OK) goto done;
    }
    *train_json = strdup(tj);
    if (!*train_json) st = rni_fail(RN_ERR_NOMEM, "out of memory");
done:
    rni_st_close(&f);
    if (st != RN_OK) {
        rn_model_free(m);
        for (int i = 0; i < nbuf; i++) { rni_free(bufs[i]); bufs[i] = NULL; }
        return st;
    }
    *mout = m;
    return RN_OK;
}

