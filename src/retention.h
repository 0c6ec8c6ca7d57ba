/* retention.h: multi-scale retention of one (batch, head) stream: decays and
 * rotation, a chunk (parallel inside, recurrent across), a recurrent step,
 * and the chunk's backward. docs/ARCHITECTURE.md derives why they agree. */
#ifndef RN_RETENTION_H
#define RN_RETENTION_H

#include "model.h"

/* Computes the position-dependent parts of the model (decays, rotation). */
rn_status rni_model_consts(rn_model *m);

/* The factors of the rotation of q and k rows at positions 0..T-1, with
 * the config's q or k scale 1/sqrt(K) folded in, tab (T, 4, K/2): per
 * position cos and sin with the q scale, then with the k scale. */
void rni_rotation_table(const rn_model *m, rn_real *tab, int T);
/* The same factors for B x T rows whose stream b starts at pos[b] (NULL:
 * 0), tab (B T, 4, K/2): one computation a forward; rni_rotate_rows then
 * rotates every layer's q and k rows (N rows of 2H heads of K, row stride
 * ld) by them. */
void rni_rotation_rows(const rn_model *m, rn_real *tab, int B, int T, const int64_t *pos);
void rni_rotate_rows(const rn_model *m, rn_real *x, int ld, int N, const rn_real *tab);
/* The rotation of one head's q (k = 0) or k (k = 1) over T rows of stride
 * ld at positions 0..T-1, from the table: the same values as rni_rotate_rows
 * (inverse: its transpose). Training rotates inside each stream's
 * retention, whose rows are then in cache. */
void rni_rotate_head(const rn_model *m, rn_real *x, int ld, int T, const rn_real *tab, int k, int inverse);

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

#endif
