/* backward.c: cross-entropy loss and the hand-written backward pass of the
 * whole model, in the parallel and chunkwise paradigms. Each step restates
 * the forward line it differentiates; gradients accumulate (+=) into a
 * buffer laid out like the parameters. */
#include "backward.h"
#include "forward.h"
#include "ops.h"
#include "params.h"
#include "retention.h"
#include "vmath.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Column sums: out (D) += sum_n x (N, D). */
static void col_sum(rn_real *out, const rn_real *x, int N, int D) {
    for (int n = 0; n < N; n++)
        for (int i = 0; i < D; i++) out[i] += x[(size_t)n * D + i];
}

static void layer_backward(rn_model *m, rn_acts *a, int l, rn_layer_w *g) {
    const rn_config *c = &m->cfg;
    const rn_layer_w *w = &m->w.layer[l];
    rn_layer_acts *la = &a->layer[l];
    int N = a->N, B = a->B, T = a->T, d = c->dim, Vd = c->value_dim, F = c->ffn_dim, H = c->heads;
    int K = m->K, Dv = m->Dv, Pw = 2 * d + 2 * Vd, Fw = c->ffn == RN_FFN_GLU ? 2 * F : F;
    int C = a->chunk, nch = a->nchunk;
    size_t kd = (size_t)K * Dv;
    rn_real *dres = a->dres;  /* (N, d): d loss / d x_out on entry */

    /* ---- FFN: x_out = x_mid + a fc2^T (+ b2) */
    rni_gemm(1, 0, d, F, N, 1, dres, d, la->a, F, 1, g->fc2, F);          /* dfc2 += dx^T a */
    if (g->fc2_b) col_sum(g->fc2_b, dres, N, d);
    rn_real *da = a->dtmp;                                                /* (N, F) */
    rni_gemm(0, 0, N, F, d, 1, dres, d, w->fc2, F, 0, da, F);             /* da = dx fc2 */
    rn_real *dhf = a->dbuf;                                               /* (N, Fw) */
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const rn_real *hf = la->hf + (size_t)n * Fw, *dan = da + (size_t)n * F, *ag = la->ag + (size_t)n * F;
        rn_real *dh = dhf + (size_t)n * Fw;
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
    if (g->fc1_b) col_sum(g->fc1_b, dhf, N, F);
    rni_gemm(1, 0, Fw, d, N, 1, dhf, Fw, la->xn2, d, 1, g->fc1, d);       /* dfc1 += dh^T xn2 */
    rni_gemm(0, 0, N, d, Fw, 1, dhf, Fw, w->fc1, d, 0, a->dxn, d);        /* dxn2 = dh fc1 */
    /* xn2 = norm2(x_mid); dres becomes d loss / d x_mid (residual + norm path) */
    rni_norm_backward(c->block_norm, dres, 1, g->norm2_w, g->norm2_b, a->dxn, la->x_mid, w->norm2_w,
                     la->mean2, la->rstd2, N, d);

    /* ---- MSR: x_mid = x_in + gated Wo^T, gated = swish(g) * y */
    rn_real *P = la->P, *dP = a->dbuf;                                    /* (N, Pw) */
    int wmod = c->head_norm == RN_HEADNORM_RMS_SHARED ? Dv : Vd;
    int group = c->head_norm == RN_HEADNORM_GROUP;
    rni_gemm(1, 0, d, Vd, N, 1, dres, d, la->gated, Vd, 1, g->wo, Vd);    /* dWo += dx^T gated */
    rn_real *dgated = a->dtmp;                                            /* (N, Vd) */
    rni_gemm(0, 0, N, Vd, d, 1, dres, d, w->wo, Vd, 0, dgated, Vd);
    /* gated = swish(g) * y, y = yhat * w + b: dg into dP, dy over dgated,
     * dyhat = dy * w over la->gated (no longer needed) when there is a w.
     * (dq, dk, dv are written by retention.) */
    rn_real *dyhat = w->hn_w ? la->gated : dgated;
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const rn_real *gv = P + (size_t)n * Pw + 2 * d + Vd, *y = la->y + (size_t)n * Vd, *sg = la->sg + (size_t)n * Vd;
        rn_real *dg = dP + (size_t)n * Pw + 2 * d + Vd, *dy = dgated + (size_t)n * Vd;
#pragma omp simd
        for (int i = 0; i < Vd; i++) {
            dg[i] = dy[i] * y[i] * rni_act_deriv(RN_ACT_SWISH, gv[i], sg[i]);
            dy[i] *= gv[i] * sg[i];
        }
        if (w->hn_w) {
            rn_real *dyh = dyhat + (size_t)n * Vd;
            for (int i = 0; i < Vd; i++) dyh[i] = dy[i] * w->hn_w[i % wmod];
        }
    }
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
    rn_real *dout = dyhat == dgated ? la->gated : dgated;                 /* (N, Vd): d loss / d o */
    rni_norm_backward(c->head_norm == RN_HEADNORM_GROUP ? RN_NORM_LAYER : RN_NORM_RMS, dout, 0, NULL, NULL,
                     dyhat, la->o, NULL, la->hmean, la->hrstd, N * H, Dv);

    /* Retention, chunk by chunk from the last, carrying d loss / d U. */
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
    }
    /* q, k were scaled and rotated: the transpose of both. */
    rni_rotate(m, dP, Pw, B, T, 0, 1);
    rni_gemm(1, 0, Pw, d, N, 1, dP, Pw, la->xn1, d, 1, g->wqkvg, d);      /* dW += dP^T xn1 */
    rni_gemm(0, 0, N, d, Pw, 1, dP, Pw, w->wqkvg, d, 0, a->dxn, d);       /* dxn1 = dP W */
    rni_norm_backward(c->block_norm, dres, 1, g->norm1_w, g->norm1_b, a->dxn, la->x_in, w->norm1_w,
                     la->mean1, la->rstd1, N, d);
    /* dres is now d loss / d x_in */
}

double rn_train_flops(const rn_config *c, int B, int T, rn_mode mode, int chunk) {
    if (!c || B < 1 || T < 1 || c->heads < 1 || (mode == RN_CHUNKWISE && chunk < 1) || mode == RN_RECURRENT) return 0;
    double d = c->dim, Vd = c->value_dim, F = c->ffn_dim, V = c->vocab, H = c->heads;
    double K = d / H, Dv = Vd / H, N = (double)B * T;
    double Fw = c->ffn == RN_FFN_GLU ? 2 * F : F;
    int C = mode == RN_PARALLEL || chunk > T ? T : chunk;
    /* dense: forward x W^T, backward dX and dW: 3 products each */
    double dense = N * (d * (2 * d + 2 * Vd) + Vd * d + d * Fw + F * d) * c->layers + N * d * V;
    /* retention per (sequence, head) and chunk of L rows: the intra-chunk
     * products are full L x L (the causal mask is applied after them); the
     * state enters after the first chunk and leaves before the last */
    double ret_f = 0, ret_b = 0;
    for (int t0 = 0; t0 < T; t0 += C) {
        double L = T - t0 < C ? T - t0 : C, P = L * L, in = t0 > 0, out = t0 + C < T;
        ret_f += P * K + P * Dv + in * L * K * Dv + out * K * L * Dv;
        ret_b += 3 * P * K + 2 * P * Dv + out * 2 * L * K * Dv + in * 2 * L * K * Dv;
    }
    return 2 * 3 * dense + 2 * (ret_f + ret_b) * B * H * c->layers;
}

/* Gradient weights bound to a buffer laid out like the parameters. */
static rn_status bind_grads(rn_model *m, rn_real *grad, rn_weights *gw) {
    gw->layer = calloc((size_t)m->cfg.layers, sizeof *gw->layer);
    if (!gw->layer) return rni_fail(RN_ERR_NOMEM, "out of memory");
    return rni_weights_bind(&m->cfg, m->tensors, m->n_tensors, grad, gw);
}

/* Parameter range [off, off + n) of layer l (-1: global tensors before
 * the layers, L: after them). Layers are contiguous in the table. */
static void param_range(const rn_model *m, int l, size_t *off, size_t *n) {
    size_t lo = SIZE_MAX, hi = 0;
    int L = m->cfg.layers;
    for (int i = 0; i < m->n_tensors; i++) {
        const rn_tensor_info *t = &m->tensors[i];
        int where = t->layer >= 0 ? t->layer : (t->kind == RN_T_EMBED || t->kind == RN_T_EMBED_NORM_W ||
                                                t->kind == RN_T_EMBED_NORM_B) ? -1 : L;
        if (where != l) continue;
        if (t->offset < lo) lo = t->offset;
        if (t->offset + (size_t)t->rows * t->cols > hi) hi = t->offset + (size_t)t->rows * t->cols;
    }
    *off = lo == SIZE_MAX ? 0 : lo;
    *n = lo == SIZE_MAX ? 0 : hi - lo;
}

static void ready(rn_model *m, const rn_grad_hook *hook, int l) {
    if (!hook || !hook->fn) return;
    size_t off, n;
    param_range(m, l, &off, &n);
    if (n) hook->fn(hook->ctx, off, n);
}

rn_status rn_model_loss_grad(rn_model *m, const int32_t *x, const int32_t *y, int B, int T,
                             rn_mode mode, int chunk, double grad_scale, rn_real *grad,
                             double *loss, int *count) {
    return rni_model_loss_grad_hook(m, x, y, B, T, mode, chunk, grad_scale, grad, loss, count, NULL);
}

rn_status rni_model_loss_grad_hook(rn_model *m, const int32_t *x, const int32_t *y, int B, int T,
                                  rn_mode mode, int chunk, double grad_scale, rn_real *grad,
                                  double *loss, int *count, const rn_grad_hook *hook) {
    const rn_config *c = &m->cfg;
    if (B < 1 || T < 1) return rni_fail(RN_ERR_ARG, "batch %d and length %d must be >= 1", B, T);
    /* Row counts are ints in the kernels (as in rn_forward). */
    if ((int64_t)B * T * (c->heads > c->vocab ? c->heads : c->vocab) >= INT32_MAX || (int64_t)T * c->dim >= INT32_MAX)
        return rni_fail(RN_ERR_ARG, "%d x %d tokens is too large for one step", B, T);
    if (mode == RN_RECURRENT) return rni_fail(RN_ERR_ARG, "training runs in the parallel or chunkwise paradigm");
    if (mode == RN_CHUNKWISE && chunk < 1) return rni_fail(RN_ERR_ARG, "chunk length %d must be >= 1", chunk);
    for (size_t i = 0; i < (size_t)B * T; i++)
        if (y[i] >= c->vocab) return rni_fail(RN_ERR_ARG, "target %d at index %zu is outside the vocabulary", (int)y[i], i);
    int C = mode == RN_PARALLEL ? T : (chunk < T ? chunk : T);
    rn_acts *a = m->train;
    if (!a || a->B != B || a->T != T || a->chunk != C || a->nthreads != rn_get_threads()) {
        rni_acts_free(m->train);
        m->train = NULL;
        rn_status st = rni_acts_create(m, B, T, C, 1, &m->train);
        if (st != RN_OK) return st;
        a = m->train;
    }
    rn_status st = rni_forward_hidden(m, a, x, NULL, 0, mode, 0);
    if (st != RN_OK) return st;
    int N = a->N, d = c->dim, V = c->vocab;
    rni_gemm(0, 1, N, V, d, 1, a->xf, d, m->w.head, d, 0, a->logits, V);
    /* The mean's denominator is known before the softmax: one pass. */
    int cnt = 0;
    for (int n = 0; n < N; n++) cnt += y[n] >= 0;
    double total = rni_cross_entropy(a->logits, y, N, V, grad && cnt ? grad_scale / cnt : 0, &cnt);
    if (loss) *loss = cnt ? total / cnt : 0;
    if (count) *count = cnt;
    if (!grad || cnt == 0) return RN_OK;

    rn_weights gw;
    if ((st = bind_grads(m, grad, &gw)) != RN_OK) return st;
    /* logits = xf head^T */
    rni_gemm(1, 0, V, d, N, 1, a->logits, V, a->xf, d, 1, gw.head, d);
    if (c->final_norm) {
        rni_gemm(0, 0, N, d, V, 1, a->logits, V, m->w.head, d, 0, a->dxn, d);
        rni_norm_backward(c->block_norm, a->dres, 0, gw.final_w, gw.final_b, a->dxn, a->x_out, m->w.final_w,
                         a->meanf, a->rstdf, N, d);
    } else {
        rni_gemm(0, 0, N, d, V, 1, a->logits, V, m->w.head, d, 0, a->dres, d);
    }
    if (!c->tie_embed) ready(m, hook, c->layers);  /* final norm, head */
    for (int l = c->layers - 1; l >= 0; l--) {
        layer_backward(m, a, l, &gw.layer[l]);
        ready(m, hook, l);
    }
    /* x = embed_norm(embed[tokens] * scale) */
    const rn_real *dx = a->dres;
    if (c->embed_norm) {
        rni_norm_backward(c->block_norm, a->dxn, 0, gw.embed_norm_w, gw.embed_norm_b, a->dres, a->emb_raw,
                         m->w.embed_norm_w, a->emean, a->erstd, N, d);
        dx = a->dxn;
    }
    double scale = c->scale_embed ? sqrt((double)d) : 1;
    for (int n = 0; n < N; n++) {
        rn_real *ge = gw.embed + (size_t)x[n] * d;
        for (int i = 0; i < d; i++) ge[i] += (rn_real)(dx[(size_t)n * d + i] * scale);
    }
    if (c->tie_embed) ready(m, hook, c->layers);
    ready(m, hook, -1);
    free(gw.layer);
    return RN_OK;
}
