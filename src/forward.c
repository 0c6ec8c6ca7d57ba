/* forward.c: the model's forward pass (embedding, layers, head) in the
 * three paradigms, run in the activation arena of acts.c. */
#include "forward.h"
#include "ops.h"
#include "retention.h"
#include "vmath.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ layers */

static rn_norm head_norm_kind(const rn_config *c) {
    return c->head_norm == RN_HEADNORM_GROUP ? RN_NORM_LAYER : RN_NORM_RMS;
}

/* Multi-scale retention over all (batch, head) streams. */
static void retention_forward(rn_model *m, rn_acts *a, rn_layer_acts *la, rn_real *U,
                              int64_t pos0, rn_mode mode, unsigned flags) {
    const rn_config *c = &m->cfg;
    int B = a->B, T = a->T, H = c->heads, K = m->K, Dv = m->Dv, d = c->dim, Vd = c->value_dim;
    int Pw = 2 * d + 2 * Vd, C = a->chunk, nch = a->nchunk;
    size_t kd = (size_t)K * Dv;
    /* Threads only where there is work for them: a decoding step's parallel
     * regions would cost more than they save (and much more on a loaded
     * machine, where a descheduled thread stalls the barrier). */
#pragma omp parallel for schedule(dynamic, 1) if (B * H > 1 && (size_t)T * B * H * K * Dv >= (1u << 18))
    for (int bh = 0; bh < B * H; bh++) {
        int b = bh / H, h = bh % H;
        rn_real *ws = a->ws + (size_t)rni_thread_id() * a->ws_per_thread;
        rn_real *Ubh = U ? U + (size_t)bh * kd : ws;  /* fresh start: scratch state */
        rn_real *absn = ws + kd, *rws = absn + C;
        const rn_real *q = la->P + (size_t)b * T * Pw + (size_t)h * K;  /* (T, K) stride Pw */
        const rn_real *k = q + d;                                        /* (T, K) stride Pw */
        const rn_real *v = la->P + (size_t)b * T * Pw + 2 * d + (size_t)h * Dv; /* (T, Dv) */
        rn_real *o = la->o + (size_t)b * T * Vd + (size_t)h * Dv;        /* (T, Dv) stride Vd */
        if (mode == RN_RECURRENT) {
            rni_retention_step(m, h, pos0, q, k, v, Ubh, o);
            continue;
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
}

static void layer_forward(rn_model *m, rn_acts *a, int l, rn_real *U, int64_t pos0, rn_mode mode,
                          unsigned flags) {
    const rn_config *c = &m->cfg;
    const rn_layer_w *w = &m->w.layer[l];
    rn_layer_acts *la = &a->layer[a->train ? l : 0];
    int N = a->N, d = c->dim, Vd = c->value_dim, F = c->ffn_dim, H = c->heads, Dv = m->Dv;
    int Pw = 2 * d + 2 * Vd;

    /* q, k, v, g = RMSNorm(x) [Wq; Wk; Wv; Wg]^T in one GEMM */
    rni_norm_forward(c->block_norm, la->xn1, la->mean1, la->rstd1, la->x_in, w->norm1_w, w->norm1_b, N, d, c->norm_eps);
    rni_gemm(0, 1, N, Pw, d, 1, la->xn1, d, w->wqkvg, d, 0, la->P, Pw);
    rni_rotate(m, la->P, Pw, a->B, a->T, pos0, 0);  /* and the q/k scale */
    retention_forward(m, a, la, U, pos0, mode, flags);

    /* y = headnorm(o); gated = swish(g) * y; x_mid = x_in + gated Wo^T */
    rni_norm_forward(head_norm_kind(c), la->y, la->hmean, la->hrstd, la->o, NULL, NULL, N * H, Dv, c->head_eps);
    const rn_real *hw = w->hn_w, *hb = w->hn_b;
    int wmod = c->head_norm == RN_HEADNORM_RMS_SHARED ? Dv : Vd;
#pragma omp parallel for schedule(static) if (N > 16)
    for (int n = 0; n < N; n++) {
        const rn_real *g = la->P + (size_t)n * Pw + 2 * d + Vd;
        rn_real *y = la->y + (size_t)n * Vd, *gt = la->gated + (size_t)n * Vd;
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
    if (la->x_mid != la->x_in) memcpy(la->x_mid, la->x_in, sizeof(rn_real) * (size_t)N * d);
    rni_gemm(0, 1, N, d, Vd, 1, la->gated, Vd, w->wo, Vd, 1, la->x_mid, d);

    /* FFN: x_out = x_mid + fc2(act(fc1 xn) * gate xn)  or  fc2(act(fc1 xn + b1)) + b2 */
    rni_norm_forward(c->block_norm, la->xn2, la->mean2, la->rstd2, la->x_mid, w->norm2_w, w->norm2_b, N, d, c->norm_eps);
    int Fw = c->ffn == RN_FFN_GLU ? 2 * F : F;
    rni_gemm(0, 1, N, Fw, d, 1, la->xn2, d, w->fc1, d, 0, la->hf, Fw);
#pragma omp parallel for schedule(static) if (N > 16)
    for (int n = 0; n < N; n++) {
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
    rn_real *x_out = la->x_out_next;
    if (x_out != la->x_mid) memcpy(x_out, la->x_mid, sizeof(rn_real) * (size_t)N * d);
    rni_gemm(0, 1, N, d, F, 1, la->a, F, w->fc2, F, 1, x_out, d);
    if (w->fc2_b)
        for (int n = 0; n < N; n++)
            for (int i = 0; i < d; i++) x_out[(size_t)n * d + i] += w->fc2_b[i];
}

rn_status rni_forward_hidden(rn_model *m, rn_acts *a, const int32_t *tokens, rn_real *U,
                            int64_t pos0, rn_mode mode, unsigned flags) {
    const rn_config *c = &m->cfg;
    int N = a->N, d = c->dim;
    rn_real scale = c->scale_embed ? (rn_real)sqrt((double)d) : 1;
    for (int n = 0; n < N; n++) {
        if (tokens[n] < 0 || tokens[n] >= c->vocab)
            return rni_fail(RN_ERR_ARG, "token %d at index %d is outside the vocabulary [0, %d)", (int)tokens[n], n, c->vocab);
        const rn_real *e = m->w.embed + (size_t)tokens[n] * d;
        for (int i = 0; i < d; i++) a->emb_raw[(size_t)n * d + i] = e[i] * scale;
    }
    if (c->embed_norm)
        rni_norm_forward(c->block_norm, a->emb, a->emean, a->erstd, a->emb_raw, m->w.embed_norm_w,
                        m->w.embed_norm_b, N, d, c->norm_eps);
    size_t per_layer = (size_t)a->B * c->heads * m->K * m->Dv;
    for (int l = 0; l < c->layers; l++)
        layer_forward(m, a, l, U ? U + (size_t)l * per_layer : NULL, pos0, mode, flags);
    if (c->final_norm)
        rni_norm_forward(c->block_norm, a->xf, a->meanf, a->rstdf, a->x_out, m->w.final_w, m->w.final_b, N, d, c->norm_eps);
    return RN_OK;
}

/* ---------------------------------------------------------- public API */

/* The inference arena for B x T rows and chunk: one kept for single-token
 * steps and one for sequences, each reused while the request fits its
 * capacity, so alternating prefill and decoding never reallocates. */
static rn_status ensure_inf(rn_model *m, int B, int T, int chunk, rn_acts **out) {
    rn_acts **slot = T == 1 ? &m->inf_step : &m->inf;
    rn_acts *a = *slot;
    int C = chunk < T ? chunk : T;
    if (!a || a->B != B || a->cap_T < T || a->cap_chunk < C || a->nthreads != rn_get_threads()) {
        rni_acts_free(a);
        *slot = NULL;
        rn_status st = rni_acts_create(m, B, T, C, 0, slot);
        if (st != RN_OK) return st;
        a = *slot;
    }
    /* Use a prefix of the capacity: every tensor is row-major over rows. */
    a->T = T; a->N = B * T; a->chunk = C; a->nchunk = (T + C - 1) / C;
    *out = a;
    return RN_OK;
}

/* Inference processes long sequences in segments (a whole number of
 * chunks), carrying the state: memory stays bounded however long T is,
 * and the results are those of one call. */
#define RN_SEGMENT 2048

rn_status rn_forward(rn_model *m, rn_state *state, const int32_t *tokens, int B, int T,
                     rn_mode mode, int chunk, unsigned flags, rn_real *logits) {
    const rn_config *c = &m->cfg;
    if (!state || !tokens) return rni_fail(RN_ERR_ARG, "forward: state and tokens are required");
    if (B < 1 || T < 1) return rni_fail(RN_ERR_ARG, "forward: batch %d and length %d must be >= 1", B, T);
    if (state->B != B || state->L != c->layers || state->H != c->heads || state->K != m->K || state->Dv != m->Dv)
        return rni_fail(RN_ERR_ARG, "forward: the state was made for another model or batch size");
    if ((unsigned)mode > RN_RECURRENT) return rni_fail(RN_ERR_ARG, "forward: unknown mode %d", (int)mode);
    if (mode == RN_CHUNKWISE && chunk < 1) return rni_fail(RN_ERR_ARG, "forward: chunk length %d must be >= 1", chunk);
    if ((flags & RN_FWD_ABS_NORM) && (mode != RN_PARALLEL || state->pos != 0 || c->decay_norm == 0))
        return rni_fail(RN_ERR_ARG, "forward: abs_norm is torchscale's parallel mode from position 0 only");
    /* Row counts and strides are ints in the kernels. */
    if ((int64_t)B * T * c->heads >= INT32_MAX || (int64_t)T * c->dim >= INT32_MAX)
        return rni_fail(RN_ERR_ARG, "forward: %d x %d tokens is too large for one call", B, T);
    for (size_t i = 0; i < (size_t)B * T; i++)
        if (tokens[i] < 0 || tokens[i] >= c->vocab)
            return rni_fail(RN_ERR_ARG, "token %d at index %zu is outside the vocabulary [0, %d)", (int)tokens[i], i, c->vocab);

    int V = c->vocab, d = c->dim, last = (flags & RN_FWD_LAST_ONLY) != 0;
    int S = T;  /* segment length */
    if (mode == RN_RECURRENT) S = 1;
    else if (mode == RN_CHUNKWISE && T > RN_SEGMENT) S = chunk >= RN_SEGMENT ? chunk : RN_SEGMENT / chunk * chunk;
    int32_t *seg = NULL;  /* (B, S) tokens of a segment when they are strided */
    if (S < T && B > 1 && !(seg = malloc(sizeof(int32_t) * (size_t)B * S)))
        return rni_fail(RN_ERR_NOMEM, "out of memory");
    rn_status st = RN_OK;
    for (int t0 = 0; t0 < T && st == RN_OK; t0 += S) {
        int L = T - t0 < S ? T - t0 : S;
        rn_acts *a;
        if ((st = ensure_inf(m, B, L, mode == RN_CHUNKWISE ? chunk : L, &a)) != RN_OK) break;
        const int32_t *tk = tokens + t0;
        if (seg) {
            for (int b = 0; b < B; b++) memcpy(seg + (size_t)b * L, tokens + (size_t)b * T + t0, sizeof(int32_t) * L);
            tk = seg;
        }
        if ((st = rni_forward_hidden(m, a, tk, state->U, state->pos, mode, flags)) != RN_OK) break;
        state->pos += L;
        if (!logits) continue;
        if (last) {
            if (t0 + L == T)  /* rows b*L + L-1, a stride of L*d apart */
                rni_gemm(0, 1, B, V, d, 1, a->xf + (size_t)(L - 1) * d, L * d, m->w.head, d, 0, logits, V);
        } else if (L == T) {
            rni_gemm(0, 1, B * T, V, d, 1, a->xf, d, m->w.head, d, 0, logits, V);
        } else {
            for (int b = 0; b < B; b++)  /* logits (B, T, V): rows b*T + t0 .. */
                rni_gemm(0, 1, L, V, d, 1, a->xf + (size_t)b * L * d, d, m->w.head, d, 0,
                        logits + ((size_t)b * T + t0) * V, V);
        }
    }
    free(seg);
    return st;
}
