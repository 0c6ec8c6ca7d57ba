/* ops.c: the dense building blocks: GEMM (BLAS), norms, activations. */
#include "ops.h"
#include "vmath.h"

#include <cblas.h>
#include <math.h>
#include <stdatomic.h>
#include <string.h>

/* Multiply-adds issued, so a test can hold rn_train_flops to the truth. */
static _Atomic uint64_t gemm_madds;

uint64_t rni_gemm_madds(void) { return atomic_load(&gemm_madds); }
void rni_gemm_count(uint64_t madds) { atomic_fetch_add_explicit(&gemm_madds, madds, memory_order_relaxed); }

void rni_gemm(int ta, int tb, int M, int N, int K, rn_real alpha, const rn_real *A, int lda,
             const rn_real *B, int ldb, rn_real beta, rn_real *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    if (K > 0) atomic_fetch_add_explicit(&gemm_madds, (uint64_t)M * N * K, memory_order_relaxed);
    if (K <= 0) {
        /* BLAS leaves C untouched for K = 0 only if beta = 1; be explicit. */
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) C[(size_t)i * ldc + j] = beta == 0 ? 0 : beta * C[(size_t)i * ldc + j];
        return;
    }
    if (!ta && tb && M <= 8 && (size_t)M * N * K <= ((size_t)1 << 21)) {
        /* A few rows times a small W^T (decoding, short prompts) on one
         * core: BLAS's threads would cost more in synchronisation than they
         * save, the more so on a loaded machine. */
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) {
                const rn_real *a = A + (size_t)i * lda, *b = B + (size_t)j * ldb;
                rn_real acc = 0;
#pragma omp simd reduction(+ : acc)
                for (int k = 0; k < K; k++) acc += a[k] * b[k];
                rn_real *c = C + (size_t)i * ldc + j;
                *c = alpha * acc + (beta == 0 ? 0 : beta * *c);
            }
        return;
    }
    /* A single row times a transposed matrix (decoding: x W^T) is a
     * matrix-vector product; gemv streams W at memory bandwidth. */
    if (M == 1 && !ta && tb) {
#ifdef RETNET_DOUBLE
        cblas_dgemv(CblasRowMajor, CblasNoTrans, N, K, alpha, B, ldb, A, 1, beta, C, 1);
#else
        cblas_sgemv(CblasRowMajor, CblasNoTrans, N, K, alpha, B, ldb, A, 1, beta, C, 1);
#endif
        return;
    }
#ifdef RETNET_DOUBLE
    cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K,
                alpha, A, lda, B, ldb, beta, C, ldc);
#else
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K,
                alpha, A, lda, B, ldb, beta, C, ldc);
#endif
}

/* ------------------------------------------------------------------ norms */

void rni_norm_forward(rn_norm kind, rn_real *out, rn_real *mean, rn_real *rstd, const rn_real *x,
                     const rn_real *w, const rn_real *b, int N, int D, double eps) {
#pragma omp parallel for schedule(static) if (N > 64)
    for (int n = 0; n < N; n++) {
        const rn_real *xn = x + (size_t)n * D;  /* (D) */
        rn_real *on = out + (size_t)n * D;      /* (D) */
        /* Sums in double (vectorised, two passes); the row in rn_real. */
        double mu = 0, var = 0;
        if (kind == RN_NORM_LAYER) {
#pragma omp simd reduction(+ : mu)
            for (int i = 0; i < D; i++) mu += xn[i];
            mu /= D;
        }
#pragma omp simd reduction(+ : var)
        for (int i = 0; i < D; i++) { double c = xn[i] - mu; var += c * c; }
        var /= D;
        double r = 1.0 / sqrt(var + eps);
        rn_real mr = (rn_real)mu, rr = (rn_real)r;
        if (w && b) {
#pragma omp simd
            for (int i = 0; i < D; i++) on[i] = (xn[i] - mr) * rr * w[i] + b[i];
        } else if (w) {
#pragma omp simd
            for (int i = 0; i < D; i++) on[i] = (xn[i] - mr) * rr * w[i];
        } else {
#pragma omp simd
            for (int i = 0; i < D; i++) on[i] = (xn[i] - mr) * rr;
        }
        if (mean) mean[n] = mr;
        if (rstd) rstd[n] = rr;
    }
}

/* Backward of y = xhat * w + b, xhat = (x - mu) r. With g = dy * w:
 *   RMS:   dx = r (g - xhat mean(g xhat))
 *   Layer: dx = r (g - mean(g) - xhat mean(g xhat))
 * dw += sum_n dy xhat, db += sum_n dy. dx is accumulated (+=) when
 * accumulate is set, else written. */
void rni_norm_backward(rn_norm kind, rn_real *dx, int accumulate, rn_real *dw, rn_real *db, const rn_real *dout,
                      const rn_real *x, const rn_real *w, const rn_real *mean, const rn_real *rstd,
                      int N, int D) {
    /* dx: rows are independent */
#pragma omp parallel for schedule(static) if (N > 64)
    for (int n = 0; n < N; n++) {
        const rn_real *xn = x + (size_t)n * D, *dy = dout + (size_t)n * D;
        rn_real *dxn = dx + (size_t)n * D;
        rn_real mu = kind == RN_NORM_LAYER ? mean[n] : 0, r = rstd[n];
        double sg = 0, sgx = 0;
#pragma omp simd reduction(+ : sg, sgx)
        for (int i = 0; i < D; i++) {
            rn_real g = w ? dy[i] * w[i] : dy[i], xh = (xn[i] - mu) * r;
            sg += g;
            sgx += (double)g * xh;
        }
        rn_real msg = kind == RN_NORM_LAYER ? (rn_real)(sg / D) : 0, msgx = (rn_real)(sgx / D);
        if (accumulate) {
#pragma omp simd
            for (int i = 0; i < D; i++) {
                rn_real g = w ? dy[i] * w[i] : dy[i], xh = (xn[i] - mu) * r;
                dxn[i] += r * (g - msg - xh * msgx);
            }
        } else {
#pragma omp simd
            for (int i = 0; i < D; i++) {
                rn_real g = w ? dy[i] * w[i] : dy[i], xh = (xn[i] - mu) * r;
                dxn[i] = r * (g - msg - xh * msgx);
            }
        }
    }
    if (!dw && !db) return;
    /* dw, db: sums over rows, one column block per thread (deterministic) */
#pragma omp parallel for schedule(static) if (N > 64)
    for (int i0 = 0; i0 < D; i0 += 16) {
        int i1 = i0 + 16 < D ? i0 + 16 : D;
        double sw[16] = {0}, sb[16] = {0};
        for (int n = 0; n < N; n++) {
            const rn_real *xn = x + (size_t)n * D, *dy = dout + (size_t)n * D;
            rn_real mu = kind == RN_NORM_LAYER ? mean[n] : 0, r = rstd[n];
#pragma omp simd
            for (int i = i0; i < i1; i++) {
                sw[i - i0] += (double)dy[i] * ((xn[i] - mu) * r);
                sb[i - i0] += dy[i];
            }
        }
        for (int i = i0; i < i1; i++) {
            if (dw) dw[i] += (rn_real)sw[i - i0];
            if (db) db[i] += (rn_real)sb[i - i0];
        }
    }
}

/* Softmax cross-entropy of logits (N, V) against targets (N) (< 0: ignored).
 * Returns the summed loss; with dscale != 0 the logits are replaced by
 * dscale * d(loss)/d(logits). */
double rni_cross_entropy(rn_real *logits, const int32_t *y, int N, int V, double dscale, int *count) {
    double total = 0;
    int cnt = 0;
#pragma omp parallel for reduction(+ : total, cnt) schedule(static) if (N > 16)
    for (int n = 0; n < N; n++) {
        rn_real *l = logits + (size_t)n * V;
        if (y[n] < 0) {
            if (dscale != 0) memset(l, 0, sizeof(rn_real) * (size_t)V);
            continue;
        }
        rn_real mx = l[0], ly = l[y[n]];
        for (int i = 1; i < V; i++) mx = l[i] > mx ? l[i] : mx;
        double s = 0;
        if (dscale != 0) {
            /* keep exp(l - max) in place: the gradient is it over the sum */
#pragma omp simd reduction(+ : s)
            for (int i = 0; i < V; i++) { l[i] = RN_EXP_REAL(l[i] - mx); s += l[i]; }
            rn_real f = (rn_real)(dscale / s);
#pragma omp simd
            for (int i = 0; i < V; i++) l[i] *= f;
            l[y[n]] -= (rn_real)dscale;
        } else {
#pragma omp simd reduction(+ : s)
            for (int i = 0; i < V; i++) s += RN_EXP_REAL(l[i] - mx);
        }
        total += (double)mx + log(s) - (double)ly;
        cnt++;
    }
    *count = cnt;
    return total;
}
