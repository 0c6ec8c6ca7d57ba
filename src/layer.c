/* layer.c: one RetNet layer, each part as a forward / backward pair (as
 * llm.c pairs its ops): multi-scale retention over the (batch, head)
 * streams, then the whole layer, x + MSR(norm1 x), then + FFN(norm2 .).
 * Each backward line restates the forward line it differentiates; the math
 * is in docs/ARCHITECTURE.md. */
#include "layer.h"
#include "ops.h"
#include "retention.h"
#include "vmath.h"

#include <string.h>

/* The norm of each head's values: GroupNorm is a LayerNorm per group. */
static rn_norm head_norm_kind(const rn_config *c) {
    return c->head_norm == RN_HEADNORM_GROUP ? RN_NORM_LAYER : RN_NORM_RMS;
}

/* ------------------------------------------------------------- retention */

/* Multi-scale retention of stream bh = (batch row, head) of layer l. */
static void retention_stream(rn_model *m, rn_acts *a, rn_layer_acts *la, int l, rn_state *st, rn_mode mode,
                             unsigned flags, int bh) {
    const rn_config *c = &m->cfg;
    int T = a->T, H = c->heads, K = m->K, Dv = m->Dv, d = c->dim, Vd = c->value_dim;
    int Pw = 2 * d + 2 * Vd, C = a->chunk, nch = a->nchunk;
    size_t kd = (size_t)K * Dv;
    rn_real *U = st ? st->U + (size_t)l * H * kd : NULL;  /* layer l of row 0 */
    size_t urow = st ? rni_state_row(st) : 0;            /* one stream's state */
    int b = bh / H, h = bh % H;
    rn_real *ws = a->ws + (size_t)rni_thread_id() * a->ws_per_thread;
    rn_real *Ubh = U ? U + b * urow + (size_t)h * kd : ws;  /* fresh start: scratch state */
    int64_t pos0 = st ? st->pos[b] : 0;
    rn_real *absn = ws + kd, *rws = absn + C;
    rn_real *q = la->P + (size_t)b * T * Pw + (size_t)h * K;        /* (T, K) stride Pw */
    rn_real *k = q + d;                                              /* (T, K) stride Pw */
    const rn_real *v = la->P + (size_t)b * T * Pw + 2 * d + (size_t)h * Dv; /* (T, Dv) */
    rn_real *o = la->o + (size_t)b * T * Vd + (size_t)h * Dv;        /* (T, Dv) stride Vd */
    if (mode == RN_RECURRENT) {
        rni_retention_step(m, h, pos0, q, k, v, Ubh, o);
        return;
    }
    if (a->rot) {  /* training: this head's q and k rotated here, where they are used next */
        rni_rotate_head(m, q, Pw, T, a->rot, 0, 0);
        rni_rotate_head(m, k, Pw, T, a->rot, 1, 0);
    }
    int has_state = U && pos0 > 0;
    /* Without U, the state after the last chunk is not wanted. */
    for (int ci = 0; ci < nch; ci++) {
        int t0 = ci * C, L = T - t0 < C ? T - t0 : C;
        if (la->U0 && has_state)  /* the backward reads the states entering chunks 1.. */
            memcpy(la->U0 + ((size_t)bh * nch + ci) * kd, Ubh, kd * sizeof(rn_real));
        rni_retention_chunk(m, h, pos0 + t0, L, q + (size_t)t0 * Pw, k + (size_t)t0 * Pw, Pw,
                           v + (size_t)t0 * Pw, Pw, Ubh,
                           (has_state ? RN_STATE_IN : 0) | (U || ci < nch - 1 ? RN_STATE_OUT : 0),
                           o + (size_t)t0 * Vd, Vd, rws,
                           (flags & RN_FWD_ABS_NORM) ? absn : NULL);
        has_state = 1;
    }
}

/* Multi-scale retention over all (batch, head) streams. */
static void retention_forward(rn_model *m, rn_acts *a, rn_layer_acts *la, int l, rn_state *st,
                              rn_mode mode, unsigned flags) {
    int BH = a->B * m->cfg.heads;
    /* Threads only where there is work for them: one stream's decoding
     * step would cost more in the fork than it saves (and much more on a
     * loaded machine, where a descheduled thread stalls the barrier); a
     * batch's states (K x Dv each, read and written once a token) pay from
     * 2^16 elements, e.g. 16 streams of the small size (2 MB of state).
     * Serial work enters no parallel region: an if(0) one still costs
     * libgomp a team, a malloc and a free. */
    if (BH > 1 && (size_t)a->T * BH * m->K * m->Dv >= (1u << 16) && rn_get_threads() > 1) {
#pragma omp parallel for schedule(dynamic, 1)
        for (int bh = 0; bh < BH; bh++) retention_stream(m, a, la, l, st, mode, flags, bh);
    } else {
        for (int bh = 0; bh < BH; bh++) retention_stream(m, a, la, l, st, mode, flags, bh);
    }
}

/* Backward of retention_forward (parallel or chunkwise, from a fresh
 * state): chunk by chunk from the last, carrying d loss / d U. dout (N, Vd)
 * is d loss / d o; dq, dk, dv are written into dP (N, 2d+2Vd) at the
 * places of q, k, v in la->P. */
static void retention_backward(rn_model *m, rn_acts *a, const rn_layer_acts *la, const rn_real *dout, rn_real *dP) {
    const rn_config *c = &m->cfg;
    int B = a->B, T = a->T, H = c->heads, K = m->K, Dv = m->Dv, d = c->dim, Vd = c->value_dim;
    int Pw = 2 * d + 2 * Vd, C = a->chunk, nch = a->nchunk;
    size_t kd = (size_t)K * Dv;
    const rn_real *P = la->P;
#pragma omp parallel for schedule(dynamic, 1)
    for (int bh = 0; bh < B * H; bh++) {
        int b = bh / H, h = bh % H;
        rn_real *ws = a->ws + (size_t)rni_thread_id() * a->ws_per_thread;
        rn_real *dU = ws, *rws = ws + kd;  /* zero after the last chunk: not read there */
        size_t qo = (size_t)b * T * Pw + (size_t)h * K, vo = (size_t)b * T * Pw + 2 * d + (size_t)h * Dv;
        const rn_real *dob = dout + (size_t)b * T * Vd + (size_t)h * Dv;
        for (int ci = nch - 1; ci >= 0; ci--) {
            int t0 = ci * C, L = T - t0 < C ? T - t0 : C;
            size_t r0 = (size_t)t0 * Pw;
            rni_retention_chunk_backward(m, h, t0, L, P + qo + r0, P + qo + d + r0, Pw, P + vo + r0, Pw,
                                        ci ? la->U0 + ((size_t)bh * nch + ci) * kd : NULL,
                                        dob + (size_t)t0 * Vd, Vd, dU, ci < nch - 1, dP + qo + r0, dP + qo + d + r0,
                                        dP + vo + r0, rws);
        }
        /* q, k were scaled and rotated: the transpose of both, while this
         * stream's dq, dk are in cache */
        rni_rotate_head(m, dP + qo, Pw, T, a->rot, 0, 1);
        rni_rotate_head(m, dP + qo + d, Pw, T, a->rot, 1, 1);
    }
}

/* ----------------------------------------------------------------- layer */

/* Column sums: out (D) += sum_n x (N, D). */
static void col_sum(rn_real *out, const rn_real *x, int N, int D) {
    for (int n = 0; n < N; n++)
        for (int i = 0; i < D; i++) out[i] += x[(size_t)n * D + i];
}

/* Row n of y = headnorm(o) w (+ b); gated = swish(g) * y (the saved
 * swish(g) when training); and the residual's copy x_mid = x_in: one pass
 * over the row while it is in cache, one parallel region for all three. */
static void gate_row(const rn_model *m, const rn_layer_w *w, rn_layer_acts *la, int n) {
    const rn_config *c = &m->cfg;
    int d = c->dim, Vd = c->value_dim, Pw = 2 * d + 2 * Vd, H = c->heads;
    const rn_real *hw = w->hn_w, *hb = w->hn_b;
    int wmod = c->head_norm == RN_HEADNORM_RMS_SHARED ? m->Dv : Vd;
    const rn_real *g = la->P + (size_t)n * Pw + 2 * d + Vd;
    rn_real *y = la->y + (size_t)n * Vd, *gt = la->gated + (size_t)n * Vd;
    /* the row's H heads of Dv as H rows of the norm */
    rni_norm_rows(head_norm_kind(c), y, la->hmean + (size_t)n * H, la->hrstd + (size_t)n * H, la->o + (size_t)n * Vd,
                  NULL, NULL, 0, H, m->Dv, c->head_eps);
    if (la->x_mid != la->x_in) memcpy(la->x_mid + (size_t)n * d, la->x_in + (size_t)n * d, sizeof(rn_real) * (size_t)d);
    if (hw)
        for (int i = 0; i < Vd; i++) y[i] *= hw[i % wmod];
    if (hb)
        for (int i = 0; i < Vd; i++) y[i] += hb[i];
    if (la->sg) {
        rn_real *sg = la->sg + (size_t)n * Vd;
#pragma omp simd
        for (int i = 0; i < Vd; i++) {
            sg[i] = rni_act_gate(RN_ACT_SWISH, g[i]);
            gt[i] = g[i] * sg[i] * y[i];
        }
    } else {
#pragma omp simd
        for (int i = 0; i < Vd; i++) gt[i] = g[i] * rni_act_gate(RN_ACT_SWISH, g[i]) * y[i];
    }
}

/* Row n of the FFN's activation: a = act(h1) * h2 (GLU) or act(h + b1);
 * and the residual's copy x_out = x_mid (the same region). */
static void ffn_act_row(const rn_model *m, const rn_layer_w *w, rn_layer_acts *la, int n) {
    const rn_config *c = &m->cfg;
    int F = c->ffn_dim, Fw = c->ffn == RN_FFN_GLU ? 2 * F : F, d = c->dim;
    if (la->x_out_next != la->x_mid)
        memcpy(la->x_out_next + (size_t)n * d, la->x_mid + (size_t)n * d, sizeof(rn_real) * (size_t)d);
    rn_real *hf = la->hf + (size_t)n * Fw, *an = la->a + (size_t)n * F;
    rn_real *ag = la->ag ? la->ag + (size_t)n * F : an;  /* inference: the gate in place */
    if (c->ffn != RN_FFN_GLU)
        for (int i = 0; i < F; i++) hf[i] += w->fc1_b[i];
    if (c->act == RN_ACT_GELU) {
#pragma omp simd
        for (int i = 0; i < F; i++) ag[i] = rni_act_gate(RN_ACT_GELU, hf[i]);
    } else {
#pragma omp simd
        for (int i = 0; i < F; i++) ag[i] = rni_act_gate(RN_ACT_SWISH, hf[i]);
    }
    if (c->ffn == RN_FFN_GLU) {
#pragma omp simd
        for (int i = 0; i < F; i++) an[i] = hf[i] * ag[i] * hf[F + i];  /* act(h1) * h2 */
    } else {
#pragma omp simd
        for (int i = 0; i < F; i++) an[i] = hf[i] * ag[i];
    }
}

/* Rows [r0, r1) of the layer before retention: xn1 = norm1(x_in);
 * q, k, v, g = xn1 [Wq; Wk; Wv; Wg]^T in one GEMM. */
static void pre_rows(const rn_model *m, const rn_layer_w *w, rn_layer_acts *la, int r0, int r1) {
    const rn_config *c = &m->cfg;
    int d = c->dim, Pw = 2 * d + 2 * c->value_dim;
    rni_norm_rows(c->block_norm, la->xn1, la->mean1, la->rstd1, la->x_in, w->norm1_w, w->norm1_b, r0, r1, d, c->norm_eps);
    rni_linear_forward(&w->Wqkvg, r1 - r0, Pw, d, la->xn1 + (size_t)r0 * d, d, la->P + (size_t)r0 * Pw, Pw, 0, m->x8);
}

/* x_out (+)= b2 on rows [r0, r1) */
static void fc2_bias_rows(const rn_model *m, const rn_layer_w *w, rn_real *x_out, int r0, int r1) {
    int d = m->cfg.dim;
    if (w->fc2_b)
        for (int n = r0; n < r1; n++)
            for (int i = 0; i < d; i++) x_out[(size_t)n * d + i] += w->fc2_b[i];
}

/* Rows [r0, r1) of the layer after retention: y = headnorm(o), gated =
 * swish(g) * y, x_mid = x_in + gated Wo^T; x_out = x_mid + FFN(norm2 x_mid). */
static void post_rows(const rn_model *m, const rn_layer_w *w, rn_layer_acts *la, int r0, int r1) {
    const rn_config *c = &m->cfg;
    int d = c->dim, Vd = c->value_dim, F = c->ffn_dim, Fw = c->ffn == RN_FFN_GLU ? 2 * F : F, n = r1 - r0;
    for (int i = r0; i < r1; i++) gate_row(m, w, la, i);
    rni_linear_forward(&w->Wo, n, d, Vd, la->gated + (size_t)r0 * Vd, Vd, la->x_mid + (size_t)r0 * d, d, 1, m->x8);
    rni_norm_rows(c->block_norm, la->xn2, la->mean2, la->rstd2, la->x_mid, w->norm2_w, w->norm2_b, r0, r1, d, c->norm_eps);
    rni_linear_forward(&w->Wfc1, n, Fw, d, la->xn2 + (size_t)r0 * d, d, la->hf + (size_t)r0 * Fw, Fw, 0, m->x8);
    for (int i = r0; i < r1; i++) ffn_act_row(m, w, la, i);
    rni_linear_forward(&w->Wfc2, n, d, F, la->a + (size_t)r0 * F, F, la->x_out_next + (size_t)r0 * d, d, 1, m->x8);
    fc2_bias_rows(m, w, la->x_out_next, r0, r1);
}

/* Training: every step before and after retention is row-wise, so one
 * parallel region each runs them all, every thread on its own block of
 * rows (rni_gemm's blocks of a split product), instead of a region and a
 * barrier per step (eight fewer per layer), and a thread's rows of xn1,
 * gated, x_mid, xn2, hf, a feed its own products. With threads, each block
 * must be more than 64 rows: BLAS's products, not the few-row kernel, and
 * no nested region. (Inference keeps a region per step: its typed weights'
 * kernels share their own threads.) */
static int rows_fused(const rn_acts *a) {
    int nt = rn_get_threads(), r0, r1;
    if (!a->train) return 0;
    if (nt < 2) return 1;
    rni_split_rows(a->N, nt - 1, nt, &r0, &r1);
    return r1 - r0 > 64;
}

typedef void (*rows_fn)(const rn_model *m, const rn_layer_w *w, rn_layer_acts *la, int r0, int r1);

/* fn on rows [0, N): one block per thread in one region, or here. */
static void by_rows(rows_fn fn, const rn_model *m, const rn_layer_w *w, rn_layer_acts *la, int N) {
    if (rn_get_threads() < 2) { fn(m, w, la, 0, N); return; }
#pragma omp parallel
    {
        int r0, r1;
        rni_split_rows(N, rni_thread_id(), rni_team_size(), &r0, &r1);
        fn(m, w, la, r0, r1);
    }
}

void rni_layer_forward(rn_model *m, rn_acts *a, int l, rn_state *st, rn_mode mode, unsigned flags) {
    const rn_config *c = &m->cfg;
    const rn_layer_w *w = &m->w.layer[l];
    rn_layer_acts *la = &a->layer[a->train ? l : 0];
    int N = a->N, d = c->dim, Vd = c->value_dim, F = c->ffn_dim;
    int Pw = 2 * d + 2 * Vd;

    if (rows_fused(a)) {
        by_rows(pre_rows, m, w, la, N);
        retention_forward(m, a, la, l, st, mode, flags);  /* rotates q, k (training) */
        by_rows(post_rows, m, w, la, N);
        return;
    }

    /* q, k, v, g = RMSNorm(x) [Wq; Wk; Wv; Wg]^T in one GEMM */
    rni_norm_forward(c->block_norm, la->xn1, la->mean1, la->rstd1, la->x_in, w->norm1_w, w->norm1_b, N, d, c->norm_eps);
    rni_linear_forward(&w->Wqkvg, N, Pw, d, la->xn1, d, la->P, Pw, 0, m->x8);
    if (!a->rot) rni_rotate_rows(m, la->P, Pw, N, a->rot_rows);  /* and the q/k scale (training: in retention) */
    retention_forward(m, a, la, l, st, mode, flags);

    /* y = headnorm(o); gated = swish(g) * y; x_mid = x_in + gated Wo^T */
    /* Rows in parallel only for batches: serial work enters no parallel
     * region (an if(0) one still costs libgomp a team, a malloc and a free). */
    if (N > 16) {
#pragma omp parallel for schedule(static)
        for (int n = 0; n < N; n++) gate_row(m, w, la, n);
    } else {
        for (int n = 0; n < N; n++) gate_row(m, w, la, n);
    }
    rni_linear_forward(&w->Wo, N, d, Vd, la->gated, Vd, la->x_mid, d, 1, m->x8);

    /* FFN: x_out = x_mid + fc2(act(fc1 xn) * gate xn)  or  fc2(act(fc1 xn + b1)) + b2 */
    rni_norm_forward(c->block_norm, la->xn2, la->mean2, la->rstd2, la->x_mid, w->norm2_w, w->norm2_b, N, d, c->norm_eps);
    int Fw = c->ffn == RN_FFN_GLU ? 2 * F : F;
    rni_linear_forward(&w->Wfc1, N, Fw, d, la->xn2, d, la->hf, Fw, 0, m->x8);
    if (N > 16) {
#pragma omp parallel for schedule(static)
        for (int n = 0; n < N; n++) ffn_act_row(m, w, la, n);
    } else {
        for (int n = 0; n < N; n++) ffn_act_row(m, w, la, n);
    }
    rni_linear_forward(&w->Wfc2, N, d, F, la->a, F, la->x_out_next, d, 1, m->x8);
    fc2_bias_rows(m, w, la->x_out_next, 0, N);
}


/* What the row passes of the layer's backward read. */
typedef struct {
    const rn_model *m;
    const rn_layer_w *w;
    const rn_layer_acts *la;
    rn_acts *a;
} back_ctx;

/* Rows [r0, r1) of the FFN activation's backward: dh (a->dbuf, (N, Fw))
 * from da (a->dtmp, (N, F)). */
static void ffn_act_back_rows(void *ctx, int r0, int r1) {
    const back_ctx *x = ctx;
    const rn_config *c = &x->m->cfg;
    int F = c->ffn_dim, Fw = c->ffn == RN_FFN_GLU ? 2 * F : F;
    for (int n = r0; n < r1; n++) {
        const rn_real *hf = x->la->hf + (size_t)n * Fw, *dan = x->a->dtmp + (size_t)n * F, *ag = x->la->ag + (size_t)n * F;
        rn_real *dh = x->a->dbuf + (size_t)n * Fw;
        /* dh1 = da act'(h1) (* h2 for GLU), act' from the saved gate */
        if (c->act == RN_ACT_GELU) {
#pragma omp simd
            for (int i = 0; i < F; i++) dh[i] = dan[i] * rni_act_deriv(RN_ACT_GELU, hf[i], ag[i]);
        } else {
#pragma omp simd
            for (int i = 0; i < F; i++) dh[i] = dan[i] * rni_act_deriv(RN_ACT_SWISH, hf[i], ag[i]);
        }
        if (c->ffn == RN_FFN_GLU) {
            /* a = act(h1) * h2: dh2 = da act(h1) */
#pragma omp simd
            for (int i = 0; i < F; i++) {
                dh[F + i] = dan[i] * hf[i] * ag[i];
                dh[i] *= hf[F + i];
            }
        }
    }
}

/* Rows [r0, r1) of the gate's and the head norm's backward. gated =
 * swish(g) * y, y = yhat * w + b: dg into dP (a->dbuf), dy over dgated
 * (a->dtmp), dyhat = dy * w over la->gated (no longer needed) when there is
 * a w; then, in the same pass over the row, yhat = headnorm(o): d loss / d o
 * over la->gated (in place over dyhat: each element is read before it is
 * written). (dq, dk, dv are written by retention.) */
static void gate_back_rows(void *ctx, int r0, int r1) {
    const back_ctx *x = ctx;
    const rn_model *m = x->m;
    const rn_config *c = &m->cfg;
    const rn_layer_w *w = x->w;
    const rn_layer_acts *la = x->la;
    int d = c->dim, Vd = c->value_dim, Pw = 2 * d + 2 * Vd, H = c->heads, Dv = m->Dv;
    int wmod = c->head_norm == RN_HEADNORM_RMS_SHARED ? Dv : Vd;
    rn_real *dout = la->gated;                                            /* (N, Vd): d loss / d o */
    for (int n = r0; n < r1; n++) {
        const rn_real *gv = la->P + (size_t)n * Pw + 2 * d + Vd, *y = la->y + (size_t)n * Vd, *sg = la->sg + (size_t)n * Vd;
        rn_real *dg = x->a->dbuf + (size_t)n * Pw + 2 * d + Vd, *dy = x->a->dtmp + (size_t)n * Vd;
#pragma omp simd
        for (int i = 0; i < Vd; i++) {
            dg[i] = dy[i] * y[i] * rni_act_deriv(RN_ACT_SWISH, gv[i], sg[i]);
            dy[i] *= gv[i] * sg[i];
        }
        const rn_real *dyhat = dy;
        if (w->hn_w) {
            rn_real *dyh = dout + (size_t)n * Vd;
            for (int i = 0; i < Vd; i++) dyh[i] = dy[i] * w->hn_w[i % wmod];
            dyhat = dyh;
        }
        /* the row's H heads of Dv as H rows of the norm */
        rni_norm_dx_rows(head_norm_kind(c), dout + (size_t)n * Vd, 0, dyhat, la->o + (size_t)n * Vd, NULL,
                         la->hmean + (size_t)n * H, la->hrstd + (size_t)n * H, 0, H, Dv);
    }
}

/* Each pair of products below is a weight gradient and an input gradient
 * of one layer input, independent, so they share one parallel region
 * (rni_gemm2), with the row pass that follows them. */
void rni_layer_backward(rn_model *m, rn_acts *a, int l, rn_layer_w *g) {
    const rn_config *c = &m->cfg;
    const rn_layer_w *w = &m->w.layer[l];
    rn_layer_acts *la = &a->layer[l];
    int N = a->N, d = c->dim, Vd = c->value_dim, F = c->ffn_dim, H = c->heads;
    int Dv = m->Dv, Pw = 2 * d + 2 * Vd, Fw = c->ffn == RN_FFN_GLU ? 2 * F : F;
    rn_real *dres = a->dres;  /* (N, d): d loss / d x_out on entry */
    back_ctx bc = {m, w, la, a};

    /* ---- FFN: x_out = x_mid + a fc2^T (+ b2) */
    if (g->fc2_b) col_sum(g->fc2_b, dres, N, d);
    rn_real *da = a->dtmp;                                                /* (N, F) */
    rn_real *dhf = a->dbuf;                                               /* (N, Fw) */
    rni_gemm2((rni_gemm_args[2]){{1, 0, d, F, N, 1, dres, d, la->a, F, 1, g->fc2, F},        /* dfc2 += dx^T a */
                                 {0, 0, N, F, d, 1, dres, d, w->fc2, F, 0, da, F}},          /* da = dx fc2 */
              ffn_act_back_rows, &bc, 0);                                 /* dh from da */
    if (g->fc1_b) col_sum(g->fc1_b, dhf, N, F);
    rni_gemm2((rni_gemm_args[2]){{1, 0, Fw, d, N, 1, dhf, Fw, la->xn2, d, 1, g->fc1, d},     /* dfc1 += dh^T xn2 */
                                 {0, 0, N, d, Fw, 1, dhf, Fw, w->fc1, d, 0, a->dxn, d}},     /* dxn2 = dh fc1 */
              NULL, NULL, 0);
    /* xn2 = norm2(x_mid); dres becomes d loss / d x_mid (residual + norm path) */
    rni_norm_backward(c->block_norm, dres, 1, g->norm2_w, g->norm2_b, a->dxn, la->x_mid, w->norm2_w,
                     la->mean2, la->rstd2, N, d);

    /* ---- MSR: x_mid = x_in + gated Wo^T, gated = swish(g) * y */
    rn_real *dP = a->dbuf;                                                /* (N, Pw) */
    int wmod = c->head_norm == RN_HEADNORM_RMS_SHARED ? Dv : Vd;
    int group = c->head_norm == RN_HEADNORM_GROUP;
    rn_real *dgated = a->dtmp;                                            /* (N, Vd) */
    /* the row pass writes d loss / d o over la->gated, which dWo reads: sync */
    rni_gemm2((rni_gemm_args[2]){{1, 0, d, Vd, N, 1, dres, d, la->gated, Vd, 1, g->wo, Vd},  /* dWo += dx^T gated */
                                 {0, 0, N, Vd, d, 1, dres, d, w->wo, Vd, 0, dgated, Vd}},    /* dgated = dx Wo */
              gate_back_rows, &bc, 1);
    rn_real *dout = la->gated;                                            /* (N, Vd): d loss / d o */
    if (g->hn_w) {
        /* dw[j] += sum over rows (and heads sharing j) of dy yhat; db += dy */
#pragma omp parallel for schedule(static)
        for (int j = 0; j < wmod; j++) {
            double sw = 0, sb = 0;
            for (int n = 0; n < N; n++)
                for (int i = j; i < Vd; i += wmod) {
                    size_t ni = (size_t)n * Vd + i, nh = (size_t)n * H + i / Dv;
                    double yhat = ((double)la->o[ni] - (group ? la->hmean[nh] : 0)) * la->hrstd[nh];
                    sw += dgated[ni] * yhat;
                    sb += dgated[ni];
                }
            g->hn_w[j] += (rn_real)sw;
            if (g->hn_b) g->hn_b[j] += (rn_real)sb;
        }
    }

    retention_backward(m, a, la, dout, dP);  /* and the rotation's transpose */
    rni_gemm2((rni_gemm_args[2]){{1, 0, Pw, d, N, 1, dP, Pw, la->xn1, d, 1, g->wqkvg, d},    /* dW += dP^T xn1 */
                                 {0, 0, N, d, Pw, 1, dP, Pw, w->wqkvg, d, 0, a->dxn, d}},    /* dxn1 = dP W */
              NULL, NULL, 0);
    rni_norm_backward(c->block_norm, dres, 1, g->norm1_w, g->norm1_b, a->dxn, la->x_in, w->norm1_w,
                     la->mean1, la->rstd1, N, d);
    /* dres is now d loss / d x_in */
}
