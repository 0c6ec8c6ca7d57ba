/* forward.c: the model's forward pass (embedding, the layers of layer.c,
 * final norm, head) in the three paradigms, in the activation arena of
 * acts.c, and the public rn_forward. */
#include "forward.h"
#include "layer.h"
#include "ops.h"
#include "retention.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

rn_status rni_forward_hidden(rn_model *m, rn_acts *a, const int32_t *tokens, rn_state *state,
                            rn_mode mode, unsigned flags) {
    const rn_config *c = &m->cfg;
    int N = a->N, d = c->dim;
    rn_real scale = c->scale_embed ? (rn_real)sqrt((double)d) : 1;
    for (int n = 0; n < N; n++) {
        if (tokens[n] < 0 || tokens[n] >= c->vocab)
            return rni_fail(RN_ERR_ARG, "token %d at index %d is outside the vocabulary [0, %d)", (int)tokens[n], n, c->vocab);
        rn_real *er = a->emb_raw + (size_t)n * d;
        const rni_wmat *E = &m->w.Wembed;
        const char *row = (const char *)E->p + (size_t)tokens[n] * E->stride;
        if (E->t == RN_WTYPE_F32) {
            for (int i = 0; i < d; i++) er[i] = ((const rn_real *)row)[i] * scale;
        } else {  /* the token's row dequantised (float build only: the float64 build holds f32) */
            rn_dequantize_row(E->t, row, (float *)er, d);
            for (int i = 0; i < d; i++) er[i] *= scale;
        }
    }
    if (c->embed_norm)
        rni_norm_forward(c->block_norm, a->emb, a->emean, a->erstd, a->emb_raw, m->w.embed_norm_w,
                        m->w.embed_norm_b, N, d, c->norm_eps);
    if (a->rot_rows) rni_rotation_rows(m, a->rot_rows, a->B, a->T, state ? state->pos : NULL);
    for (int l = 0; l < c->layers; l++) rni_layer_forward(m, a, l, state, mode, flags);
    if (c->final_norm)
        rni_norm_forward(c->block_norm, a->xf, a->meanf, a->rstdf, a->x_out, m->w.final_w, m->w.final_b, N, d, c->norm_eps);
    return RN_OK;
}

/* ---------------------------------------------------------- public API */

/* The inference arena for B x T rows and chunk: one kept for single-token
 * steps and one for sequences, each reused while the request fits its
 * capacity, so alternating prefill and decoding never reallocates, nor
 * does a batch of decoding streams that shrinks and grows again. */
static rn_status ensure_inf(rn_model *m, int B, int T, int chunk, rn_acts **out) {
    rn_acts **slot = T == 1 ? &m->inf_step : &m->inf;
    rn_acts *a = *slot;
    int C = chunk < T ? chunk : T;
    if (!a || a->cap_B < B || a->cap_T < T || a->cap_chunk < C || a->nthreads != rn_get_threads()) {
        rni_acts_free(a);
        *slot = NULL;
        rn_status st = rni_acts_create(m, B, T, C, 0, slot);
        if (st != RN_OK) return st;
        a = *slot;
    }
    /* Use a prefix of the capacity: every tensor is row-major over rows. */
    a->B = B; a->T = T; a->N = B * T; a->chunk = C; a->nchunk = (T + C - 1) / C;
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
    int at0 = 1;
    for (int b = 0; b < B; b++) at0 &= state->pos[b] == 0;
    if ((flags & RN_FWD_ABS_NORM) && (mode != RN_PARALLEL || !at0 || c->decay_norm == 0))
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
        if ((st = rni_forward_hidden(m, a, tk, state, mode, flags)) != RN_OK) break;
        for (int b = 0; b < B; b++) state->pos[b] += L;
        if (!logits) continue;
        if (last) {
            if (t0 + L == T)  /* rows b*L + L-1, a stride of L*d apart */
                rni_linear_forward(&m->w.Whead, B, V, d, a->xf + (size_t)(L - 1) * d, L * d, logits, V, 0, m->x8);
        } else if (L == T) {
            rni_linear_forward(&m->w.Whead, B * T, V, d, a->xf, d, logits, V, 0, m->x8);
        } else {
            for (int b = 0; b < B; b++)  /* logits (B, T, V): rows b*T + t0 .. */
                rni_linear_forward(&m->w.Whead, L, V, d, a->xf + (size_t)b * L * d, d,
                                   logits + ((size_t)b * T + t0) * V, V, 0, m->x8);
        }
    }
    free(seg);
    return st;
}
