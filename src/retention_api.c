/* retention_api.c: multi-scale retention on its own (rn_retention_forward,
 * rn_retention_backward), for callers with their own model around it (the
 * Python binding's PyTorch autograd function). A thin layer over
 * retention.c's per-head kernels: a model that holds nothing but the head
 * sizes and decays, with no rotation, no xPos and no row normalisation. */
#include "ops.h"
#include "retention.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The retention-only "model" the kernels of retention.c read: K, Dv, the
 * per-head decays; every other switch off. */
typedef struct {
    rn_model m;
    rn_head_const *head;
} ret_model;

static rn_status ret_model_init(ret_model *rm, int B, int H, int T, int K, int Dv, const double *gammas,
                                rn_mode mode, int chunk, const void *q, const void *k, const void *v,
                                const void *out, const char *what) {
    if (B < 1 || H < 1 || T < 1 || K < 1 || Dv < 1)
        return rni_fail(RN_ERR_ARG, "%s: sizes must be positive (B=%d, H=%d, T=%d, K=%d, Dv=%d)", what, B, H, T, K, Dv);
    if (!q || !k || !v || !gammas || !out) return rni_fail(RN_ERR_ARG, "%s: NULL argument", what);
    if (mode != RN_PARALLEL && mode != RN_CHUNKWISE && mode != RN_RECURRENT)
        return rni_fail(RN_ERR_ARG, "%s: unknown mode %d", what, (int)mode);
    if (mode == RN_CHUNKWISE && chunk < 1) return rni_fail(RN_ERR_ARG, "%s: chunk must be >= 1 (got %d)", what, chunk);
    size_t n;
    if (!rni_mul_ok((size_t)B * H, (size_t)T, &n) || !rni_mul_ok(n, (size_t)(K > Dv ? K : Dv), &n) ||
        n > ((size_t)1 << 40) || (size_t)T * T > ((size_t)1 << 40))
        return rni_fail(RN_ERR_NOMEM, "%s: sizes too large", what);
    for (int h = 0; h < H; h++)
        if (!(gammas[h] > 0 && gammas[h] <= 1))
            return rni_fail(RN_ERR_ARG, "%s: gamma of head %d is %g, want 0 < gamma <= 1", what, h, gammas[h]);
    memset(rm, 0, sizeof *rm);
    rm->head = malloc(sizeof *rm->head * (size_t)H);
    if (!rm->head) return rni_fail(RN_ERR_NOMEM, "%s: out of memory", what);
    for (int h = 0; h < H; h++) rm->head[h].lambda = log(gammas[h]);
    rm->m.cfg.heads = H;
    rm->m.cfg.decay_norm = 0;
    rm->m.cfg.qk_scale = RN_QK_NONE;
    rm->m.K = K;
    rm->m.Dv = Dv;
    rm->m.head = rm->head;
    rm->m.xpos_logz = NULL;
    return RN_OK;
}

/* The chunk length an evaluation order uses (the recurrent backward is the
 * chunkwise one: the gradient of the same function). */
static int chunk_len(rn_mode mode, int chunk, int T) {
    int C = mode == RN_PARALLEL ? T : mode == RN_RECURRENT ? 64 : chunk;
    return C > T ? T : C;
}

rn_status rn_retention_forward(int B, int H, int T, int K, int Dv, const rn_real *q, const rn_real *k,
                               const rn_real *v, const double *gammas, rn_mode mode, int chunk, rn_real *o) {
    ret_model rm;
    rn_status st = ret_model_init(&rm, B, H, T, K, Dv, gammas, mode, chunk, q, k, v, o, "rn_retention_forward");
    if (st != RN_OK) return st;
    const rn_model *m = &rm.m;
    int C = mode == RN_RECURRENT ? 1 : chunk_len(mode, chunk, T);
    size_t kd = (size_t)K * Dv, wsn = kd + rni_retention_ws(m, C);
    int failed = 0;
#pragma omp parallel if (B * H > 1)
    {
        rn_real *ws = rni_alloc(wsn, sizeof(rn_real));
        if (!ws) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(dynamic, 1)
        for (int bh = 0; bh < B * H; bh++) {
            if (!ws) continue;
            int h = bh % H;
            const rn_real *qb = q + (size_t)bh * T * K, *kb = k + (size_t)bh * T * K;
            const rn_real *vb = v + (size_t)bh * T * Dv;
            rn_real *ob = o + (size_t)bh * T * Dv, *U = ws, *rws = ws + kd;
            if (mode == RN_RECURRENT) {
                memset(U, 0, kd * sizeof *U);
                for (int t = 0; t < T; t++)
                    rni_retention_step(m, h, t, qb + (size_t)t * K, kb + (size_t)t * K, vb + (size_t)t * Dv, U,
                                       ob + (size_t)t * Dv);
                continue;
            }
            for (int t0 = 0; t0 < T; t0 += C) {
                int L = T - t0 < C ? T - t0 : C;
                rni_retention_chunk(m, h, t0, L, qb + (size_t)t0 * K, kb + (size_t)t0 * K, K, vb + (size_t)t0 * Dv, Dv,
                                    U, (t0 ? RN_STATE_IN : 0) | (t0 + L < T ? RN_STATE_OUT : 0),
                                    ob + (size_t)t0 * Dv, Dv, rws, NULL);
            }
        }
        rni_free(ws);
    }
    free(rm.head);
    if (failed) return rni_fail(RN_ERR_NOMEM, "rn_retention_forward: out of memory");
    return RN_OK;
}

rn_status rn_retention_backward(int B, int H, int T, int K, int Dv, const rn_real *q, const rn_real *k,
                                const rn_real *v, const double *gammas, rn_mode mode, int chunk,
                                const rn_real *dout, rn_real *dq, rn_real *dk, rn_real *dv) {
    ret_model rm;
    rn_status st = ret_model_init(&rm, B, H, T, K, Dv, gammas, mode, chunk, q, k, v, dout, "rn_retention_backward");
    if (st != RN_OK) return st;
    if (!dq || !dk || !dv) {
        free(rm.head);
        return rni_fail(RN_ERR_ARG, "rn_retention_backward: NULL argument");
    }
    const rn_model *m = &rm.m;
    int C = chunk_len(mode, chunk, T), nch = (T + C - 1) / C;
    size_t kd = (size_t)K * Dv;
    size_t bws = rni_retention_bwd_ws(m, C);
    /* per thread: dU, the states entering chunks 1.., kernel scratch, decayed keys and decays */
    size_t wsn = kd + (size_t)nch * kd + bws, tmpn = (size_t)C * K + C;
    int failed = 0;
#pragma omp parallel if (B * H > 1)
    {
        rn_real *ws = rni_alloc(wsn + tmpn, sizeof(rn_real));
        if (!ws) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(dynamic, 1)
        for (int bh = 0; bh < B * H; bh++) {
            if (!ws) continue;
            int h = bh % H;
            const rn_real *qb = q + (size_t)bh * T * K, *kb = k + (size_t)bh * T * K;
            const rn_real *vb = v + (size_t)bh * T * Dv, *dob = dout + (size_t)bh * T * Dv;
            rn_real *dqb = dq + (size_t)bh * T * K, *dkb = dk + (size_t)bh * T * K, *dvb = dv + (size_t)bh * T * Dv;
            rn_real *dU = ws, *U0 = ws + kd, *rws = U0 + (size_t)nch * kd, *kdec = ws + wsn, *gpow = kdec + (size_t)C * K;
            /* The states entering chunks 1.. (U0[ci]), as the forward advances
             * them: U = gamma^C U + sum_i gamma^(C-1-i) k_i^T v_i (no output
             * needed, so not the whole chunk). */
            double lam = m->head[h].lambda;
            for (int i = 0; i < C; i++) gpow[i] = (rn_real)exp((C - 1 - i) * lam);
            rn_real gC = (rn_real)exp(C * lam);
            for (int ci = 0; ci + 1 < nch; ci++) {
                int t0 = ci * C;
                rn_real *U = U0 + (size_t)(ci + 1) * kd;
                const rn_real *kc = kb + (size_t)t0 * K;
                for (int i = 0; i < C; i++)
                    for (int j = 0; j < K; j++) kdec[(size_t)i * K + j] = kc[(size_t)i * K + j] * gpow[i];
                if (ci)
                    for (size_t e = 0; e < kd; e++) U[e] = U0[(size_t)ci * kd + e] * gC;
                rni_gemm(1, 0, K, Dv, C, 1, kdec, K, vb + (size_t)t0 * Dv, Dv, ci ? 1 : 0, U, Dv);
            }
            /* Backward, from the last chunk, carrying d loss / d U. */
            for (int ci = nch - 1; ci >= 0; ci--) {
                int t0 = ci * C, L = T - t0 < C ? T - t0 : C;
                rni_retention_chunk_backward(m, h, t0, L, qb + (size_t)t0 * K, kb + (size_t)t0 * K, K,
                                             vb + (size_t)t0 * Dv, Dv, ci ? U0 + (size_t)ci * kd : NULL,
                                             dob + (size_t)t0 * Dv, Dv, dU, ci < nch - 1, dqb + (size_t)t0 * K,
                                             dkb + (size_t)t0 * K, dvb + (size_t)t0 * Dv, rws);
            }
        }
        rni_free(ws);
    }
    free(rm.head);
    if (failed) return rni_fail(RN_ERR_NOMEM, "rn_retention_backward: out of memory");
    return RN_OK;
}
