/* acts.h: the activation arena: every tensor a forward (and, for training,
 * backward) pass of B x T tokens writes, carved from one allocation. */
#ifndef RN_ACTS_H
#define RN_ACTS_H

#include "model.h"

/* Saved activations of one layer (training) or scratch (inference, where
 * every layer shares one set and x_in == x_mid == the residual stream). */
typedef struct {
    rn_real *x_in;                 /* (N, d) layer input                         */
    rn_real *xn1, *mean1, *rstd1;  /* (N, d), (N), (N): retention_layer_norm     */
    rn_real *P;                    /* (N, 2d+2Vd): q, k (scaled, rotated), v, g  */
    rn_real *o;                    /* (N, Vd): retention output, before the norm */
    rn_real *hmean, *hrstd;        /* (N, H): per-head norm statistics           */
    rn_real *y;                    /* (N, Vd): per-head normed (affine applied)  */
    rn_real *sg;                   /* (N, Vd): sigmoid(g) (train; else NULL)     */
    rn_real *gated;                /* (N, Vd): swish(g) * y                      */
    rn_real *x_mid;                /* (N, d): x_in + MSR                         */
    rn_real *xn2, *mean2, *rstd2;  /* (N, d), (N), (N): final_layer_norm         */
    rn_real *hf;                   /* (N, 2F) GLU [fc1 | gate], (N, F) MLP        */
    rn_real *a;                    /* (N, F): activation output, input of fc2    */
    rn_real *ag;                   /* (N, F): the activation's gate (train; else NULL) */
    rn_real *U0;                   /* (B, H, nchunk, K, Dv): state at chunk starts */
    rn_real *x_out_next;           /* (N, d): layer output (next layer's x_in)  */
} rn_layer_acts;

typedef struct rn_acts {
    int B, T, N;                   /* N = B*T rows                                */
    int train;                     /* every layer keeps its own activations       */
    int chunk, nchunk;             /* retention chunk length and count            */
    int cap_B, cap_T, cap_chunk;   /* the sizes the arena was made for            */
    rn_real *emb;                  /* (N, d): embeddings (after the embed norm)   */
    rn_real *emb_raw;              /* (N, d): before the embed norm (== emb without one, or in inference) */
    rn_real *emean, *erstd;        /* (N)                                         */
    rn_layer_acts *layer;          /* (L), or (1) shared when !train              */
    rn_real *x_out;                /* (N, d): output of the last layer            */
    rn_real *xf, *meanf, *rstdf;   /* (N, d), (N), (N): final norm                */
    rn_real *gated;                /* (N, Vd): the layers' shared gated (inference) */
    rn_real *logits;               /* (N, V): logits, then their gradient (train) */
    rn_real *dres;                 /* (N, d): gradient of the residual stream     */
    rn_real *dxn;                  /* (N, d): gradient of a norm's output         */
    rn_real *dtmp;                 /* (N, max(F, Vd)) backward scratch            */
    rn_real *dbuf;                 /* (N, max(2F, 2d+2Vd)) backward scratch        */
    rn_real *rot;                  /* (T, 4, K/2): rotation table of positions 0.. (train; else NULL) */
    rn_real *rot_rows;             /* (N, 4, K/2): each row's factors at its position, filled once a
                                      forward for every layer (inference; else NULL) */
    rn_real *ws;                   /* (nthreads, ws_per_thread) retention scratch */
    size_t ws_per_thread;
    int nthreads;
    rn_real *arena;
    size_t arena_size;
} rn_acts;

/* Allocates activations for B x T tokens with retention chunks of chunk
 * rows (T for parallel). */
rn_status rni_acts_create(const rn_model *m, int B, int T, int chunk, int train, rn_acts **out);
void rni_acts_free(rn_acts *a);

#endif
