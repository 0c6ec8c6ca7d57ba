/* model.h: the model's internal layout (parameters, activations, state),
 * shared by model.c, retention.c, train.c and io.c. Not public. */
#ifndef RN_MODEL_H
#define RN_MODEL_H

#include "internal.h"
#ifdef _OPENMP
#include <omp.h>
#endif

static inline int rni_thread_id(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

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
} rn_layer_w;

typedef struct {
    rn_real *embed;                 /* (V, d) */
    rn_real *embed_norm_w, *embed_norm_b; /* (d) */
    rn_layer_w *layer;              /* (L)    */
    rn_real *final_w, *final_b;     /* (d)    */
    rn_real *head;                  /* (V, d); == embed when tied */
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
    size_t offset;       /* in elements */
    int rows, cols;      /* cols = 1 for vectors */
} rn_tensor_info;

/* Per-head constants of the retention. */
typedef struct {
    double lambda;       /* log gamma_h */
} rn_head_const;

struct rn_model {
    rn_config cfg;
    int K, Dv;                /* head key / value dims */
    size_t n_params;
    rn_real *params;          /* (n_params) */
    rn_weights w;
    rn_tensor_info *tensors;  /* parameter table */
    int n_tensors;
    rn_head_const *head;      /* (H) */
    double *rot_freq;         /* (K/2) rotation frequencies */
    double *xpos_logz;        /* (K) log of the per-dimension xPos decay, or NULL */
    /* Activations and scratch of the inference forward, grown on demand
     * and reused by every call (no allocation per token). */
    struct rn_acts *inf;
    struct rn_acts *inf_step; /* the same for single-token steps */
    struct rn_acts *train;    /* the same for loss and gradient computation */
};

struct rn_state {
    int B, L, H, K, Dv;
    int64_t pos;              /* position of the next token */
    rn_real *U;               /* (L, B, H, K, Dv) un-normalised state */
};

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
    int cap_T, cap_chunk;          /* the sizes the arena was made for            */
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

/* Forward of B x T tokens from state (per layer U, or NULL for a fresh
 * start) at position pos0, through the layers; leaves the final hidden
 * states in a->xf. mode is RN_PARALLEL or RN_CHUNKWISE (a->chunk rows per
 * chunk) or RN_RECURRENT (T == 1). */
rn_status rni_forward_hidden(rn_model *m, rn_acts *a, const int32_t *tokens, rn_real *U,
                            int64_t pos0, rn_mode mode, unsigned flags);

/* Builds the parameter table for cfg (count only when tab is NULL). */
int rni_param_table(const rn_config *cfg, rn_tensor_info *tab, size_t *n_params);
/* Points w's fields into buf laid out as the table says. */
rn_status rni_weights_bind(const rn_config *cfg, const rn_tensor_info *tab, int n,
                          rn_real *buf, rn_weights *w);
const char *rni_tensor_kind_name(rn_tensor_kind k);

/* ---------------------------------------------------------------- ops.c */

/* C (M,N) = alpha * op(A) op(B) + beta * C; row-major; ta/tb transpose. */
void rni_gemm(int ta, int tb, int M, int N, int K, rn_real alpha, const rn_real *A, int lda,
             const rn_real *B, int ldb, rn_real beta, rn_real *C, int ldc);
/* Multiply-adds issued through rni_gemm by this process so far (tests). */
uint64_t rni_gemm_madds(void);

/* Norm over the last dim of x (N, D): out = norm(x) * w (+ b). mean/rstd
 * (N) are saved for the backward (mean may be NULL for RMS). */
void rni_norm_forward(rn_norm kind, rn_real *out, rn_real *mean, rn_real *rstd, const rn_real *x,
                     const rn_real *w, const rn_real *b, int N, int D, double eps);
void rni_norm_backward(rn_norm kind, rn_real *dx, int accumulate, rn_real *dw, rn_real *db, const rn_real *dout,
                      const rn_real *x, const rn_real *w, const rn_real *mean, const rn_real *rstd,
                      int N, int D);

/* Softmax cross-entropy of logits (N, V) against targets (N) (< 0:
 * ignored): returns the summed loss and the count; with dscale != 0 the
 * logits are replaced by dscale * d(loss)/d(logits). */
double rni_cross_entropy(rn_real *logits, const int32_t *y, int N, int V, double dscale, int *count);

/* -------------------------------------------------------- retention.c */

/* Computes the position-dependent parts of the model (decays, rotation). */
rn_status rni_model_consts(rn_model *m);

/* Rotation of q and k rows (N rows of H heads of K; row stride ld) for
 * positions pos0 + (row % T), and the config's q or k scale 1/sqrt(K);
 * inverse = 1 applies the transpose (for gradients). */
void rni_rotate(const rn_model *m, rn_real *x, int ld, int B, int T, int64_t pos0, int inverse);

/* Scratch floats one retention call of L rows needs per thread. */
size_t rni_retention_ws(const rn_model *m, int L);

/* One chunk of L rows of one (batch, head) stream at positions pos..pos+L-1,
 * with state U (K, Dv): state & RN_STATE_IN: U holds the state before the
 * chunk (else a zero state); state & RN_STATE_OUT: U is advanced to pos+L
 * (else the state after the chunk is not wanted and U not written).
 * q, k: (L, K) row stride ldq; v: (L, Dv) row stride ldv; o: (L, Dv)
 * stride ldo; ws: rni_retention_ws(m, L) scratch. If absn is not NULL the
 * torchscale row clamp is applied and the clamp per row stored in absn (L). */
void rni_retention_chunk(const rn_model *m, int h, int64_t pos, int L, const rn_real *q,
                        const rn_real *k, int ldq, const rn_real *v, int ldv, rn_real *U,
                        unsigned state, rn_real *o, int ldo, rn_real *ws, rn_real *absn);
enum { RN_STATE_IN = 1, RN_STATE_OUT = 2 };

/* One token for one (batch, head): U = gamma z U + k^T v; o = q U r. */
void rni_retention_step(const rn_model *m, int h, int64_t pos, const rn_real *q,
                       const rn_real *k, const rn_real *v, rn_real *U, rn_real *o);

/* Backward of rni_retention_chunk (no abs_norm). U_prev is the state the
 * forward started from (NULL: a zero state). dU (K, Dv) holds the gradient
 * w.r.t. the state after the chunk on entry (dU_in = 0: it is zero, and
 * not read) and w.r.t. U_prev on exit (not written when U_prev is NULL).
 * dq, dk, dv are written (not accumulated) with the same strides as q, k, v. */
void rni_retention_chunk_backward(const rn_model *m, int h, int64_t pos, int L,
                                 const rn_real *q, const rn_real *k, int ldq, const rn_real *v,
                                 int ldv, const rn_real *U_prev, const rn_real *dout, int ldo,
                                 rn_real *dU, int dU_in, rn_real *dq, rn_real *dk, rn_real *dv, rn_real *ws);
size_t rni_retention_bwd_ws(const rn_model *m, int L);

/* ----------------------------------------------------------- backward.c */

/* Called during the backward pass each time a contiguous range of the
 * gradient buffer is final (the head, then each layer from the last, then
 * the embeddings): lets data-parallel training reduce it while the
 * backward pass goes on. */
typedef struct {
    void (*fn)(void *ctx, size_t offset, size_t count);
    void *ctx;
} rn_grad_hook;

rn_status rni_model_loss_grad_hook(rn_model *m, const int32_t *x, const int32_t *y, int B, int T,
                                  rn_mode mode, int chunk, double grad_scale, rn_real *grad,
                                  double *loss, int *count, const rn_grad_hook *hook);

/* ----------------------------------------------------------------- io.c */

/* Training checkpoint: the parameters and nbuf more buffers of the same
 * size (optimiser moments) in native precision, the config and a JSON
 * string of training state; atomic, checksummed. */
rn_status rni_ckpt_save(const char *path, const rn_model *m, const rn_real *const *bufs,
                       const char *const *names, int nbuf, const char *train_json);
rn_status rni_ckpt_load(const char *path, rn_model **m, rn_real **bufs, const char *const *names,
                       int nbuf, char **train_json);

#endif
