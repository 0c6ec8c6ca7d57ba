/* backward.c: cross-entropy loss and the hand-written backward pass of the
 * model around its layers (head, final norm, embeddings; the layers are
 * layer.c's), in the parallel and chunkwise paradigms. Gradients accumulate
 * (+=) into a buffer laid out like the parameters. */
#include "backward.h"
#include "forward.h"
#include "layer.h"
#include "objects.h"
#include "ops.h"
#include "params.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

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
    rn_status qs = rni_model_check_f32(m, "loss and gradients");
    if (qs != RN_OK) return qs;
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
    rn_status st = rni_forward_hidden(m, a, x, NULL, mode, 0);
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
    /* dhead += dlogits^T xf and dxf = dlogits head: one parallel region */
    rni_gemm2((rni_gemm_args[2]){{1, 0, V, d, N, 1, a->logits, V, a->xf, d, 1, gw.head, d},
                                 {0, 0, N, d, V, 1, a->logits, V, m->w.head, d, 0, c->final_norm ? a->dxn : a->dres, d}},
              NULL, NULL, 0);
    if (c->final_norm)
        rni_norm_backward(c->block_norm, a->dres, 0, gw.final_w, gw.final_b, a->dxn, a->x_out, m->w.final_w,
                         a->meanf, a->rstdf, N, d);
    if (!c->tie_embed) ready(m, hook, c->layers);  /* final norm, head */
    for (int l = c->layers - 1; l >= 0; l--) {
        rni_layer_backward(m, a, l, &gw.layer[l]);
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
