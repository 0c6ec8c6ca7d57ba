/* model.h: the model's data (parameters, their table, per-head constants,
 * state): types only, shared by every part of the library that reads the
 * model. The functions on these types are in params.h (the table), acts.h
 * (the activation arena) and the public retnet.h (objects.c). Not public. */
#ifndef RN_MODEL_H
#define RN_MODEL_H

#include "internal.h"
#include "quant.h"

/* Pointers into one parameter (or gradient) buffer. Linear weights are
 * [out, in] (y = x W^T) whatever the file layout; NULL where the
 * architecture has no such tensor. */
typedef struct {
    rn_real *norm1_w, *norm1_b;  /* (d)                                  */
    rn_real *wqkvg;              /* (2d + 2Vd, d): Wq; Wk; Wv; Wg stacked */
    rn_real *wo;                 /* (d, Vd)                               */
    rn_real *hn_w, *hn_b;        /* (Vd) group norm, or (Dv) shared RMS   */
    rn_real *norm2_w, *norm2_b;  /* (d)                                  */
    rn_real *fc1;                /* (F, d), or (2F, d) for GLU: fc1; gate */
    rn_real *fc1_b;              /* (F)                                   */
    rn_real *fc2;                /* (d, F)                                */
    rn_real *fc2_b;              /* (d)                                   */
    /* The four projections as held (of a model: f32 in the buffer or a
     * mapped file, or another type in a mapped file; the f32 pointers
     * above are then NULL). Unused in gradients. */
    rni_wmat Wqkvg, Wo, Wfc1, Wfc2;
} rn_layer_w;

typedef struct {
    rn_real *embed;                 /* (V, d) */
    rn_real *embed_norm_w, *embed_norm_b; /* (d) */
    rn_layer_w *layer;              /* (L)    */
    rn_real *final_w, *final_b;     /* (d)    */
    rn_real *head;                  /* (V, d); == embed when tied */
    rni_wmat Wembed, Whead;         /* as held (see rn_layer_w) */
} rn_weights;

/* One entry of the parameter table: a named tensor at an offset. The
 * table drives layout, initialisation and file I/O. */
typedef enum {
    RN_T_EMBED, RN_T_EMBED_NORM_W, RN_T_EMBED_NORM_B,
    RN_T_NORM1_W, RN_T_NORM1_B, RN_T_WQKVG, RN_T_WO, RN_T_HN_W, RN_T_HN_B,
    RN_T_NORM2_W, RN_T_NORM2_B, RN_T_FC1, RN_T_FC1_B, RN_T_FC2, RN_T_FC2_B,
    RN_T_FINAL_W, RN_T_FINAL_B, RN_T_HEAD
} rn_tensor_kind;

typedef struct {
    rn_tensor_kind kind;
    int layer;           /* -1 for global tensors */
    size_t offset;       /* in elements, in params (and gradients, moments) */
    int rows, cols;      /* cols = 1 for vectors */
    rn_real *data;       /* where the values are: params + offset, or in a
                            mapped file (the model then has no params);
                            NULL when held in another type than f32 */
    rn_wtype wtype;      /* the type held: f32, or the type of a quantised
                            file, or the BF16 / F16 of a projection stored so
                            (then wdata points at it: mapped, or in own) */
    const void *wdata;   /* (rows, rn_wtype_row_bytes(wtype, cols)) */
} rn_tensor_info;

/* Per-head constants of the retention. */
typedef struct {
    double lambda;       /* log gamma_h */
} rn_head_const;

struct rn_model {
    rn_config cfg;
    int K, Dv;                /* head key / value dims */
    size_t n_params;
    /* (n_params) every parameter in one buffer; NULL while the weights are
     * read in place from memory-mapped files (maps), until something needs
     * them writable or contiguous (rni_model_materialize). */
    rn_real *params;
    void **maps;              /* (n_maps) mappings the tensors point into */
    size_t *map_sizes;        /* (n_maps) */
    int n_maps;
    /* The tensors that could not be read in place beside mapped or typed
     * ones (16-bit blocks assembled into one projection, vectors widened to
     * f32), in one block of our own; NULL when there are none. */
    void *own;
    /* The f32 projections packed for few-row products (rni_wmat.pk), or
     * NULL: made at load for models small enough, dropped when the weights
     * become writable (rni_model_materialize). */
    rn_real *panels;
    rn_weights w;
    rn_tensor_info *tensors;  /* parameter table */
    int n_tensors;
    rn_head_const *head;      /* (H) */
    double *rot_freq;         /* (K/2) rotation frequencies */
    double *xpos_logz;        /* (K) log of the per-dimension xPos decay, or NULL */
    /* Activations and scratch of the inference forward, grown on demand
     * and reused by every call (no allocation per token). */
    struct rn_acts *inf;      /* (acts.h) */
    struct rn_acts *inf_step; /* the same for single-token steps */
    struct rn_acts *train;    /* the same for loss and gradient computation */
    int x8;                   /* decoding quantises activations for q8_0 / q4_0
                                 (rn_model_set_int8_activations) */
};

/* Each stream (row) has its own position, so streams at different places
 * step together (a server's continuous batching); a stream's state is
 * contiguous, so moving it between states is one copy. */
struct rn_state {
    int B, L, H, K, Dv;
    int cap;                  /* rows allocated: rn_state_resize within it allocates nothing */
    int64_t *pos;             /* (cap) position of each stream's next token */
    rn_real *U;               /* (cap, L, H, K, Dv) un-normalised state, stream-major */
};

/* Floats of one stream's state: L x H x K x Dv. */
static inline size_t rni_state_row(const rn_state *s) {
    return (size_t)s->L * s->H * s->K * s->Dv;
}

#endif
