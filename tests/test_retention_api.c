/* test_retention_api.c: rn_retention_forward / rn_retention_backward, the
 * retention alone: every mode against a naive double-precision loop, the
 * gradients against the exact gradient of that loop (a loss linear in o:
 * dq_n = sum_m D[n,m] (dout_n . v_m) k_m, and so on), and argument errors. */
#include "check.h"

#include <stdint.h>

static rn_real rnd(rn_rng *r) { return (rn_real)(rn_rng_uniform(r) * 2 - 1); }

/* o (B,H,T,Dv) and the gradients of sum(o * w), naive, in double. */
static void naive(int B, int H, int T, int K, int Dv, const rn_real *q, const rn_real *k, const rn_real *v,
                  const double *g, const rn_real *w, double *o, double *dq, double *dk, double *dv) {
    for (int bh = 0; bh < B * H; bh++) {
        int h = bh % H;
        const rn_real *qb = q + (size_t)bh * T * K, *kb = k + (size_t)bh * T * K, *vb = v + (size_t)bh * T * Dv;
        const rn_real *wb = w + (size_t)bh * T * Dv;
        double *ob = o + (size_t)bh * T * Dv, *dqb = dq + (size_t)bh * T * K, *dkb = dk + (size_t)bh * T * K;
        double *dvb = dv + (size_t)bh * T * Dv;
        for (size_t i = 0; i < (size_t)T * Dv; i++) ob[i] = dvb[i] = 0;
        for (size_t i = 0; i < (size_t)T * K; i++) dqb[i] = dkb[i] = 0;
        for (int n = 0; n < T; n++)
            for (int m = 0; m <= n; m++) {
                double s = 0, wv = 0, D = pow(g[h], n - m);
                for (int j = 0; j < K; j++) s += (double)qb[n * K + j] * kb[m * K + j];
                for (int c = 0; c < Dv; c++) {
                    ob[n * Dv + c] += D * s * vb[m * Dv + c];
                    dvb[m * Dv + c] += D * s * wb[n * Dv + c];
                    wv += (double)wb[n * Dv + c] * vb[m * Dv + c];
                }
                for (int j = 0; j < K; j++) {
                    dqb[n * K + j] += D * wv * kb[m * K + j];
                    dkb[m * K + j] += D * wv * qb[n * K + j];
                }
            }
    }
}

static double rel(const rn_real *a, const double *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        den += b[i] * b[i];
    }
    return sqrt(num / (den > 0 ? den : 1));
}

int main(void) {
    enum { B = 2, H = 3, T = 23, K = 6, Dv = 5 };
    const double g[H] = {0.97, 0.5, 1.0};
    size_t nq = (size_t)B * H * T * K, nv = (size_t)B * H * T * Dv;
    rn_real *q = malloc(nq * sizeof *q), *k = malloc(nq * sizeof *k), *v = malloc(nv * sizeof *v);
    rn_real *w = malloc(nv * sizeof *w), *o = malloc(nv * sizeof *o);
    rn_real *dq = malloc(nq * sizeof *dq), *dk = malloc(nq * sizeof *dk), *dv = malloc(nv * sizeof *dv);
    double *ro = malloc(nv * sizeof *ro), *rdq = malloc(nq * sizeof *rdq), *rdk = malloc(nq * sizeof *rdk);
    double *rdv = malloc(nv * sizeof *rdv);
    rn_rng r;
    rn_rng_seed(&r, 3);
    for (size_t i = 0; i < nq; i++) { q[i] = rnd(&r); k[i] = rnd(&r); }
    for (size_t i = 0; i < nv; i++) { v[i] = rnd(&r); w[i] = rnd(&r); }
    naive(B, H, T, K, Dv, q, k, v, g, w, ro, rdq, rdk, rdv);

    struct { rn_mode mode; int chunk; } cases[] = {{RN_PARALLEL, 0}, {RN_CHUNKWISE, 1}, {RN_CHUNKWISE, 4},
                                                   {RN_CHUNKWISE, 7}, {RN_CHUNKWISE, 100}, {RN_RECURRENT, 0}};
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        rn_mode md = cases[c].mode;
        int ch = cases[c].chunk;
        CHECK_OK(rn_retention_forward(B, H, T, K, Dv, q, k, v, g, md, ch, o));
        double e = rel(o, ro, nv);
        CHECK(e < AGREE_TOL, "forward mode %d chunk %d: relative error %.3g (" PRECISION ")", md, ch, e);
        CHECK_OK(rn_retention_backward(B, H, T, K, Dv, q, k, v, g, md, ch, w, dq, dk, dv));
        double eq = rel(dq, rdq, nq), ek = rel(dk, rdk, nq), ev = rel(dv, rdv, nv);
        CHECK(eq < AGREE_TOL && ek < AGREE_TOL && ev < AGREE_TOL,
              "backward mode %d chunk %d: relative errors dq %.3g dk %.3g dv %.3g", md, ch, eq, ek, ev);
    }
    /* one thread or several: the same bits */
    rn_real *o2 = malloc(nv * sizeof *o2);
    int nt = rn_get_threads();
    rn_set_threads(1);
    CHECK_OK(rn_retention_forward(B, H, T, K, Dv, q, k, v, g, RN_CHUNKWISE, 4, o));
    rn_set_threads(2);
    CHECK_OK(rn_retention_forward(B, H, T, K, Dv, q, k, v, g, RN_CHUNKWISE, 4, o2));
    rn_set_threads(nt);
    CHECK(memcmp(o, o2, nv * sizeof *o) == 0, "threads change the result");

    /* errors: RN_ERR_ARG with a message */
    const double bad[H] = {0.9, 1.5, 0.5};
    CHECK(rn_retention_forward(B, H, T, K, Dv, q, k, v, bad, RN_PARALLEL, 0, o) == RN_ERR_ARG &&
              strstr(rn_last_error(), "gamma of head 1"), "gamma > 1 accepted: %s", rn_last_error());
    CHECK(rn_retention_forward(B, H, T, K, Dv, q, k, v, g, RN_CHUNKWISE, 0, o) == RN_ERR_ARG &&
              strstr(rn_last_error(), "chunk"), "chunk 0 accepted");
    CHECK(rn_retention_forward(0, H, T, K, Dv, q, k, v, g, RN_PARALLEL, 0, o) == RN_ERR_ARG, "B = 0 accepted");
    CHECK(rn_retention_forward(B, H, T, K, Dv, q, k, v, g, (rn_mode)7, 0, o) == RN_ERR_ARG, "mode 7 accepted");
    CHECK(rn_retention_backward(B, H, T, K, Dv, q, k, v, g, RN_PARALLEL, 0, w, NULL, dk, dv) == RN_ERR_ARG,
          "NULL dq accepted");
    CHECK(rn_retention_forward(B, H, T, K, Dv, q, k, v, g, RN_PARALLEL, 0, NULL) == RN_ERR_ARG, "NULL o accepted");
    free(q); free(k); free(v); free(w); free(o); free(o2); free(dq); free(dk); free(dv);
    free(ro); free(rdq); free(rdk); free(rdv);
    CHECK_DONE();
}
