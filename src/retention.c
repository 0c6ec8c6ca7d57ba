/* retention.c: multi-scale retention in its three paradigms, forward and
 * backward. Per head h (docs/ARCHITECTURE.md):
 *
 *   o_n = r_n * sum_{m<=n} (qr_n . (z^(n-m) ⊙ kr_m)) gamma^(n-m) v_m
 *
 * with r_n = 1/sqrt(c_n) when the decay is normalised (torchscale) and 1
 * otherwise, and z (K) the seed's xPos factor zeta^(1/512) per dimension (1
 * elsewhere): xPos' s_n / s_m depends only on n - m, so it is a decay.
 *
 * All three paradigms work on the un-normalised state
 *   U_t = sum_{m<=t} gamma^(t-m) (z^(t-m) ⊙ kr_m)^T v_m     (K, Dv)
 * so they compute the same sums in different orders and agree to rounding:
 * - parallel:   one chunk of length T;
 * - chunkwise:  chunks of length C, each one intra-chunk product plus the
 *               contribution of the state carried from earlier chunks;
 * - recurrent:  U_n = gamma z ⊙ U_{n-1} + kr_n^T v_n, o_n = r_n qr_n U_n.
 * Every decay power is bounded by the chunk length, so nothing overflows
 * however long the stream. */
#include "ops.h"
#include "retention.h"

#include <math.h>
#include <string.h>

/* ---------------------------------------------------------- constants */

rn_status rni_model_consts(rn_model *m) {
    const rn_config *c = &m->cfg;
    int H = c->heads, K = m->K, half = K / 2;
    for (int h = 0; h < H; h++) {
        double lam;
        if (c->decay == RN_DECAY_POW2) {
            lam = log1p(-pow(2.0, -5.0 - h));
        } else {
            double lo = log(1.0 / 32), hi = log(1.0 / 512);
            double e = H == 1 ? lo : lo + (hi - lo) * h / (H - 1);
            lam = log1p(-exp(e));
        }
        m->head[h].lambda = lam;
    }
    for (int j = 0; j < half; j++) {
        double f;
        if (c->rotation == RN_ROT_TORCHSCALE)
            f = half == 1 ? 1.0 : pow(10000.0, -(double)j / (half - 1));
        else
            f = pow(10000.0, -(double)j / half);
        m->rot_freq[j] = f;
    }
    if (m->xpos_logz) {
        for (int j = 0; j < half; j++) {
            double zeta = (2.0 * j + 0.4 * K) / (1.4 * K);
            m->xpos_logz[2 * j] = m->xpos_logz[2 * j + 1] = log(zeta) / 512.0;
        }
    }
    return RN_OK;
}

/* 1/sqrt(c_n), c_n = sum_{i<=n} gamma^i = expm1((n+1) lambda) / expm1(lambda). */
static double row_scale(const rn_model *m, int h, int64_t n) {
    if (!m->cfg.decay_norm) return 1.0;
    double lam = m->head[h].lambda;
    return sqrt(expm1(lam) / expm1((double)(n + 1) * lam));
}

/* ----------------------------------------------------------- rotation */

/* One head's vector rotated by the factors cp, sp (K/2 each): sp carries
 * the sign (the forward), or inverse = 1 applies the transpose with the
 * forward's factors (x - (-y) is x + y exactly, so both ways give the same
 * bits). */
static inline void rotate_vec(rn_real *v, const rn_real *cp, const rn_real *sp, int half, int interleaved, int inverse) {
    if (interleaved && !inverse) {
#pragma omp simd
        for (int j = 0; j < half; j++) {
            rn_real a = v[2 * j], bb = v[2 * j + 1];
            v[2 * j] = a * cp[j] - bb * sp[j];
            v[2 * j + 1] = bb * cp[j] + a * sp[j];
        }
    } else if (interleaved) {
#pragma omp simd
        for (int j = 0; j < half; j++) {
            rn_real a = v[2 * j], bb = v[2 * j + 1];
            v[2 * j] = a * cp[j] + bb * sp[j];
            v[2 * j + 1] = bb * cp[j] - a * sp[j];
        }
    } else if (!inverse) {
#pragma omp simd
        for (int j = 0; j < half; j++) {
            rn_real a = v[j], bb = v[j + half];
            v[j] = a * cp[j] - bb * sp[j];
            v[j + half] = bb * cp[j] + a * sp[j];
        }
    } else {
#pragma omp simd
        for (int j = 0; j < half; j++) {
            rn_real a = v[j], bb = v[j + half];
            v[j] = a * cp[j] + bb * sp[j];
            v[j + half] = bb * cp[j] - a * sp[j];
        }
    }
}

/* The cos and sin factors of position n with the two scales: cs[p], sn[p]
 * for p = q, k (sign -1: the inverse's). */
static void rotation_factors(const rn_model *m, double n, double sign, const double scale[2], rn_real *cs0,
                             rn_real *sn0, rn_real *cs1, rn_real *sn1) {
    int half = m->K / 2;
    for (int j = 0; j < half; j++) {
        double cj = cos(n * m->rot_freq[j]), sj = sign * sin(n * m->rot_freq[j]);
        cs0[j] = (rn_real)(cj * scale[0]);
        sn0[j] = (rn_real)(sj * scale[0]);
        cs1[j] = (rn_real)(cj * scale[1]);
        sn1[j] = (rn_real)(sj * scale[1]);
    }
}

/* The q/k scale commutes with the rotation: folded into its factors. */
static void qk_scales(const rn_model *m, double scale[2]) {
    double s = 1.0 / sqrt((double)m->K);
    scale[0] = m->cfg.qk_scale == RN_QK_SCALE_Q ? s : 1;
    scale[1] = m->cfg.qk_scale == RN_QK_SCALE_K ? s : 1;
}

void rni_rotation_table(const rn_model *m, rn_real *tab, int T) {
    int half = m->K / 2;
    double scale[2];
    qk_scales(m, scale);
    for (int t = 0; t < T; t++) {
        rn_real *r = tab + (size_t)t * 4 * half;
        rotation_factors(m, t, 1.0, scale, r, r + half, r + 2 * half, r + 3 * half);
    }
}

void rni_rotate_head(const rn_model *m, rn_real *x, int ld, int T, const rn_real *tab, int k, int inverse) {
    int half = m->K / 2, interleaved = m->cfg.rotation != RN_ROT_HALF;
    for (int t = 0; t < T; t++) {
        const rn_real *r = tab + (size_t)t * 4 * half + (size_t)k * 2 * half;
        rotate_vec(x + (size_t)t * ld, r, r + half, half, interleaved, inverse);
    }
}

/* Rows [n0, n1) of rni_rotation_rows. */
static void rotation_rows(const rn_model *m, rn_real *tab, int T, const int64_t *pos, int n0, int n1,
                          const double scale[2]) {
    int half = m->K / 2;
    for (int n = n0; n < n1; n++) {
        rn_real *r = tab + (size_t)n * 4 * half;
        rotation_factors(m, (double)((pos ? pos[n / T] : 0) + n % T), 1.0, scale, r, r + half, r + 2 * half, r + 3 * half);
    }
}

void rni_rotation_rows(const rn_model *m, rn_real *tab, int B, int T, const int64_t *pos) {
    double scale[2];
    qk_scales(m, scale);
    int N = B * T;
    /* A decoding step's rows enter no parallel region: an if(0) one still
     * costs libgomp a team, a malloc and a free. */
    if (N > 16) {
#pragma omp parallel
        {
            int id = rni_thread_id(), nt = rni_team_size();
            rotation_rows(m, tab, T, pos, (int)((int64_t)N * id / nt), (int)((int64_t)N * (id + 1) / nt), scale);
        }
        return;
    }
    rotation_rows(m, tab, T, pos, 0, N, scale);
}

/* Rows [n0, n1) of rni_rotate_rows. */
static void rotate_tab_rows(const rn_model *m, rn_real *x, int ld, const rn_real *tab, int n0, int n1) {
    int K = m->K, half = K / 2, H = m->cfg.heads, interleaved = m->cfg.rotation != RN_ROT_HALF;
    for (int n = n0; n < n1; n++) {
        const rn_real *r = tab + (size_t)n * 4 * half;
        rn_real *row = x + (size_t)n * ld;  /* (2H, K): q heads, k heads */
        for (int hh = 0; hh < 2 * H; hh++) {
            const rn_real *f = r + (hh >= H) * 2 * half;
            rotate_vec(row + (size_t)hh * K, f, f + half, half, interleaved, 0);
        }
    }
}

void rni_rotate_rows(const rn_model *m, rn_real *x, int ld, int N, const rn_real *tab) {
    if (N > 16) {
#pragma omp parallel
        {
            int id = rni_thread_id(), nt = rni_team_size();
            rotate_tab_rows(m, x, ld, tab, (int)((int64_t)N * id / nt), (int)((int64_t)N * (id + 1) / nt));
        }
        return;
    }
    rotate_tab_rows(m, x, ld, tab, 0, N);
}

/* ------------------------------------------------------------ forward */

size_t rni_retention_ws(const rn_model *m, int L) {
    return (size_t)L * L + 2 * (size_t)L * m->K + 2 * (size_t)L + 2;
}

/* xPos factor z_j^e of key dimension j (1 without xPos). */
static inline double dim_decay(const rn_model *m, int j, double e) {
    return m->xpos_logz ? exp(e * m->xpos_logz[j]) : 1.0;
}

/* Shared prologue of forward and backward: gamma powers gp (L+1), row
 * scales r (L), and the xPos-centred q~ = q z^(i-c0), k~ = k z^(c0-i) so
 * that q~_i . k~_m = q_i . (z^(i-m) k_m) with exponents at most L/2. */
static void chunk_setup(const rn_model *m, int h, int64_t pos, int L, const rn_real *q,
                        const rn_real *k, int ldq, rn_real *qt, rn_real *kt, rn_real *gp, rn_real *r,
                        const rn_real **qa, const rn_real **ka, int *lda) {
    int K = m->K;
    double lam = m->head[h].lambda;
    for (int i = 0; i <= L; i++) gp[i] = (rn_real)exp(i * lam);
    for (int i = 0; i < L; i++) r[i] = (rn_real)row_scale(m, h, pos + i);
    if (m->xpos_logz) {
        int c0 = L / 2;
        for (int i = 0; i < L; i++)
            for (int j = 0; j < K; j++) {
                qt[(size_t)i * K + j] = (rn_real)(q[(size_t)i * ldq + j] * dim_decay(m, j, i - c0));
                kt[(size_t)i * K + j] = (rn_real)(k[(size_t)i * ldq + j] * dim_decay(m, j, c0 - i));
            }
        *qa = qt; *ka = kt; *lda = K;
    } else {
        *qa = q; *ka = k; *lda = ldq;
    }
}

/* A (L, L) = r ⊙ (q~ k~^T) ⊙ Gamma, Gamma[i,m] = gamma^(i-m) for m <= i,
 * else 0: the row scale r rides on the mask's pass, so neither o (forward)
 * nor d o (backward) needs a pass of its own for it. */
static void decay_mask(rn_real *A, const rn_real *gp, const rn_real *r, int L) {
    for (int i = 0; i < L; i++) {
        rn_real *a = A + (size_t)i * L, ri = r[i];
#pragma omp simd
        for (int mm = 0; mm <= i; mm++) a[mm] *= gp[i - mm] * ri;
        if (i + 1 < L) memset(a + i + 1, 0, sizeof(rn_real) * (size_t)(L - 1 - i));
    }
}

/* Scaled rows: out[i,j] = x[i,j] gamma^(e_i) z_j^(e_i) (* r_i), e_i = e0 + s*i. */
static void decayed_rows(const rn_model *m, rn_real *out, const rn_real *x, int ld, int L,
                         const rn_real *gp, int e0, int s, const rn_real *r) {
    int K = m->K;
    for (int i = 0; i < L; i++) {
        int e = e0 + s * i;
        double f = r ? (double)gp[e] * r[i] : gp[e];
        if (!m->xpos_logz) {
            rn_real ff = (rn_real)f;
            for (int j = 0; j < K; j++) out[(size_t)i * K + j] = x[(size_t)i * ld + j] * ff;
            continue;
        }
        for (int j = 0; j < K; j++)
            out[(size_t)i * K + j] = (rn_real)(x[(size_t)i * ld + j] * f * dim_decay(m, j, e));
    }
}

void rni_retention_chunk(const rn_model *m, int h, int64_t pos, int L, const rn_real *q,
                        const rn_real *k, int ldq, const rn_real *v, int ldv, rn_real *U,
                        unsigned state, rn_real *o, int ldo, rn_real *ws, rn_real *absn) {
    int has_state = (state & RN_STATE_IN) != 0;
    int K = m->K, Dv = m->Dv;
    rn_real *A = ws;                  /* (L, L) */
    rn_real *qt = A + (size_t)L * L;  /* (L, K) */
    rn_real *kt = qt + (size_t)L * K; /* (L, K) */
    rn_real *gp = kt + (size_t)L * K; /* (L+1)  */
    rn_real *r = gp + L + 1;          /* (L)    */
    const rn_real *qa, *ka;
    int lda;
    chunk_setup(m, h, pos, L, q, k, ldq, qt, kt, gp, r, &qa, &ka, &lda);

    /* Intra-chunk: o = (r ⊙ (q~ k~^T) ⊙ Gamma) v */
    rni_gemm_act(0, 1, L, L, K, 1, qa, lda, ka, lda, 0, A, L);
    decay_mask(A, gp, r, L);
    rni_gemm(0, 0, L, Dv, L, 1, A, L, v, ldv, 0, o, ldo);

    /* Earlier chunks: o_i += r_i gamma^(i+1) (z^(i+1) ⊙ q_i) U */
    if (has_state) {
        decayed_rows(m, qt, q, ldq, L, gp, 1, 1, r);
        rni_gemm(0, 0, L, Dv, K, 1, qt, K, U, Dv, 1, o, ldo);
    }
    if (absn)
        for (int i = 0; i < L; i++) {
            /* torchscale: R rows divided by clamp(sum |R|, 1, 5e4) */
            double a = 0;
            for (int mm = 0; mm <= i; mm++) a += fabs((double)A[(size_t)i * L + mm]);
            a = a < 1 ? 1 : a > 5e4 ? 5e4 : a;
            absn[i] = (rn_real)a;
            for (int c = 0; c < Dv; c++) o[(size_t)i * ldo + c] = (rn_real)(o[(size_t)i * ldo + c] / a);
        }

    /* Advance: U = gamma^L z^L ⊙ U + sum_i gamma^(L-1-i) (z^(L-1-i) ⊙ k_i)^T v_i */
    if (!(state & RN_STATE_OUT)) return;
    decayed_rows(m, kt, k, ldq, L, gp, L - 1, -1, NULL);
    if (has_state)
        for (int j = 0; j < K; j++) {
            rn_real f = (rn_real)(gp[L] * dim_decay(m, j, L));
            for (int c = 0; c < Dv; c++) U[(size_t)j * Dv + c] *= f;
        }
    rni_gemm(1, 0, K, Dv, L, 1, kt, K, v, ldv, has_state ? 1 : 0, U, Dv);
}

/* Columns [c0, c0 + n) of a step: the state's rows updated and read in
 * one sweep, o's columns accumulating in a local block (registers for a
 * full block) instead of in memory that might alias the state. The same
 * operations in the same order per element as a plain loop. */
static inline __attribute__((always_inline)) void step_cols(const int n, int K, int Dv, int c0, double g,
                                                            const rn_model *m, const rn_real *q, const rn_real *k,
                                                            const rn_real *restrict v, rn_real *restrict U,
                                                            rn_real *acc) {
    for (int c = 0; c < n; c++) acc[c] = 0;
    for (int j = 0; j < K; j++) {
        rn_real f = (rn_real)(g * dim_decay(m, j, 1)), kj = k[j], qj = q[j];
        rn_real *restrict u = U + (size_t)j * Dv + c0;
        const rn_real *restrict vv = v + c0;
        for (int c = 0; c < n; c++) {
            u[c] = u[c] * f + kj * vv[c];
            acc[c] += qj * u[c];
        }
    }
}

void rni_retention_step(const rn_model *m, int h, int64_t pos, const rn_real *q,
                       const rn_real *k, const rn_real *v, rn_real *U, rn_real *o) {
    int K = m->K, Dv = m->Dv;
    double g = exp(m->head[h].lambda), r = row_scale(m, h, pos);
    enum { BLK = 64 };
    for (int c0 = 0; c0 < Dv; c0 += BLK) {
        rn_real acc[BLK];
        int n = Dv - c0 < BLK ? Dv - c0 : BLK;
        if (n == BLK) step_cols(BLK, K, Dv, c0, g, m, q, k, v, U, acc);
        else step_cols(n, K, Dv, c0, g, m, q, k, v, U, acc);
        for (int c = 0; c < n; c++) o[c0 + c] = (rn_real)(acc[c] * r);
    }
}

/* ----------------------------------------------------------- backward */

size_t rni_retention_bwd_ws(const rn_model *m, int L) {
    return 2 * (size_t)L * L + 3 * (size_t)L * m->K + 2 * (size_t)L + 2;
}

void rni_retention_chunk_backward(const rn_model *m, int h, int64_t pos, int L,
                                 const rn_real *q, const rn_real *k, int ldq, const rn_real *v,
                                 int ldv, const rn_real *U_prev, const rn_real *dout, int ldo,
                                 rn_real *dU, int dU_in, rn_real *dq, rn_real *dk, rn_real *dv, rn_real *ws) {
    int K = m->K, Dv = m->Dv;
    rn_real *A = ws;                    /* (L, L)  */
    rn_real *dA = A + (size_t)L * L;    /* (L, L)  */
    rn_real *qt = dA + (size_t)L * L;   /* (L, K)  */
    rn_real *kt = qt + (size_t)L * K;   /* (L, K)  */
    rn_real *tmp = kt + (size_t)L * K;  /* (L, K)  */
    rn_real *gp = tmp + (size_t)L * K;  /* (L+1)   */
    rn_real *r = gp + L + 1;            /* (L)     */
    const rn_real *qa, *ka;
    int lda;
    chunk_setup(m, h, pos, L, q, k, ldq, qt, kt, gp, r, &qa, &ka, &lda);
    int xp = m->xpos_logz != NULL, c0 = L / 2;

    /* o = A v (A with the row scale r):  dv = A^T do;  dA = r ⊙ (do v^T) ⊙ Gamma
     * (the first writes of dv, dq, dk: a chunk's rows get gradient from
     * that chunk only) */
    rni_gemm_act(0, 1, L, L, K, 1, qa, lda, ka, lda, 0, A, L);
    decay_mask(A, gp, r, L);
    rni_gemm(1, 0, L, Dv, L, 1, A, L, dout, ldo, 0, dv, ldv);
    rni_gemm_act(0, 1, L, L, Dv, 1, dout, ldo, v, ldv, 0, dA, L);
    decay_mask(dA, gp, r, L);

    /* A = q~ k~^T:  dq~ = dA k~,  dk~ = dA^T q~;  q~ = q z^(i-c0), k~ = k z^(c0-i)
     * (without xPos q~ = q: the products write dq, dk in place) */
    rni_gemm(0, 0, L, K, L, 1, dA, L, ka, lda, 0, xp ? tmp : dq, xp ? K : ldq);
    if (xp)
        for (int i = 0; i < L; i++)
            for (int j = 0; j < K; j++)
                dq[(size_t)i * ldq + j] = (rn_real)(tmp[(size_t)i * K + j] * dim_decay(m, j, i - c0));
    rni_gemm(1, 0, L, K, L, 1, dA, L, qa, lda, 0, xp ? tmp : dk, xp ? K : ldq);
    if (xp)
        for (int i = 0; i < L; i++)
            for (int j = 0; j < K; j++)
                dk[(size_t)i * ldq + j] = (rn_real)(tmp[(size_t)i * K + j] * dim_decay(m, j, c0 - i));

    /* U_new = D_L U_prev + kd^T v, kd_i = gamma^(L-1-i) z^(L-1-i) k_i:
     * dv += kd dU;  dkd = v dU^T */
    if (dU_in) {
        decayed_rows(m, kt, k, ldq, L, gp, L - 1, -1, NULL);
        rni_gemm(0, 0, L, Dv, K, 1, kt, K, dU, Dv, 1, dv, ldv);
        rni_gemm_act(0, 1, L, K, Dv, 1, v, ldv, dU, Dv, 0, tmp, K);
        for (int i = 0; i < L; i++) {
            int e = L - 1 - i;
            for (int j = 0; j < K; j++)
                dk[(size_t)i * ldq + j] += (rn_real)(tmp[(size_t)i * K + j] * gp[e] * dim_decay(m, j, e));
        }
    }
    /* Without a prior state there is no dU_prev to compute. */
    if (U_prev) {
        /* dU_prev = D_L dU + qc^T do  (cross term o += qc U_prev, qc_i = r_i gamma^(i+1) z^(i+1) q_i);
         * dq += (do U_prev^T) ⊙ r_i gamma^(i+1) z^(i+1) */
        if (dU_in)
            for (int j = 0; j < K; j++) {
                rn_real f = (rn_real)(gp[L] * dim_decay(m, j, L));
                for (int c = 0; c < Dv; c++) dU[(size_t)j * Dv + c] *= f;
            }
        decayed_rows(m, qt, q, ldq, L, gp, 1, 1, r);
        rni_gemm(1, 0, K, Dv, L, 1, qt, K, dout, ldo, dU_in ? 1 : 0, dU, Dv);
        rni_gemm_act(0, 1, L, K, Dv, 1, dout, ldo, U_prev, Dv, 0, tmp, K);
        for (int i = 0; i < L; i++) {
            double f = (double)gp[i + 1] * r[i];
            for (int j = 0; j < K; j++)
                dq[(size_t)i * ldq + j] += (rn_real)(tmp[(size_t)i * K + j] * f * dim_decay(m, j, i + 1));
        }
    }
}
