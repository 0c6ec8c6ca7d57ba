/* ops.h: the dense kernels every layer uses: matrix products (BLAS),
 * norms and their backward, softmax cross-entropy. */
#ifndef RN_OPS_H
#define RN_OPS_H

#include "internal.h"

/* BLAS threads (rn_set_threads: one; rni_gemm splits products over
 * OpenMP's threads); the BLAS and the kernels it chose, for
 * benchmark headers. */
void rni_blas_set_threads(int n);
const char *rni_blas_name(void);

/* C (M,N) = alpha * op(A) op(B) + beta * C; row-major; ta/tb transpose. */
void rni_gemm(int ta, int tb, int M, int N, int K, rn_real alpha, const rn_real *A, int lda,
             const rn_real *B, int ldb, rn_real beta, rn_real *C, int ldc);
/* Two independent products (neither reads what the other writes), then
 * rows(ctx, r0, r1) on blocks of rows of the second's C, in one parallel
 * region instead of up to three: each thread computes its blocks of both
 * (rni_gemm's blocks: the same bits), then fn on its rows, which are the
 * rows it computed (or, with sync, after both products are complete). rows
 * may be NULL. Without threads to split over, in turn on this thread. */
typedef struct {
    int ta, tb, M, N, K;
    rn_real alpha;
    const rn_real *A;
    int lda;
    const rn_real *B;
    int ldb;
    rn_real beta;
    rn_real *C;
    int ldc;
} rni_gemm_args;
void rni_gemm2(const rni_gemm_args g[2], void (*rows)(void *ctx, int r0, int r1), void *ctx, int sync);
/* rni_gemm without its few-row kernel, for products of activations by
 * activations (retention's, within one stream: no batching to keep the
 * bits of): BLAS's small kernels are faster there (one core, 64 x 64 x 32
 * with B transposed: 2.9 us against 5.5). One BLAS call on the calling
 * thread (retention runs its streams in parallel); counted as rni_gemm. */
void rni_gemm_act(int ta, int tb, int M, int N, int K, rn_real alpha, const rn_real *A, int lda,
                  const rn_real *B, int ldb, rn_real beta, rn_real *C, int ldc);
/* The same product through BLAS alone, in float whatever rn_real is (the
 * typed weights' kernels): no few-row kernel, no counting. */
void rni_sgemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
               float beta, float *C, int ldc);
/* The block [i0, i1) of len rows (or columns) that thread t of nt takes
 * when rni_gemm splits a product: multiples of 16 (the BLAS kernels'
 * unroll). */
void rni_split_rows(int len, int t, int nt, int *i0, int *i1);
/* Weights packed for few-row products: W (N, K), row stride ldw, into
 * rni_panel_size(N, K) values of panels of the vector width; then Y (M, N)
 * = X W^T (Y += with accumulate) from them, each output one multiply-add
 * chain over k, so a row gets the same bits in any batch (counted as
 * rni_gemm). For up to 64 rows; more go through BLAS on W itself. */
size_t rni_panel_size(int N, int K);
void rni_panel_pack(const rn_real *W, size_t ldw, int N, int K, rn_real *pk);
void rni_panel_gemm(int M, int N, int K, const rn_real *x, int ldx, const rn_real *pk, rn_real *y, int ldy,
                    int accumulate);
/* The same bits from W (N, K) itself (pk NULL: packed block by block into
 * a per-thread scratch as it goes; pk given: W unused). */
void rni_panel_gemm_w(int M, int N, int K, const rn_real *x, int ldx, const rn_real *pk, const rn_real *W, size_t ldw,
                      rn_real *y, int ldy, int accumulate);
/* Multiply-adds issued through rni_gemm by this process so far (tests);
 * the weight products that bypass it (rni_linear_forward's kernels) add
 * theirs with rni_gemm_count. */
uint64_t rni_gemm_madds(void);
void rni_gemm_count(uint64_t madds);

/* Norm over the last dim of x (N, D): out = norm(x) * w (+ b). mean/rstd
 * (N) are saved for the backward (mean may be NULL for RMS). */
void rni_norm_forward(rn_norm kind, rn_real *out, rn_real *mean, rn_real *rstd, const rn_real *x,
                     const rn_real *w, const rn_real *b, int N, int D, double eps);
/* The same for rows [n0, n1) on the calling thread (for fused row passes). */
void rni_norm_rows(rn_norm kind, rn_real *out, rn_real *mean, rn_real *rstd, const rn_real *x, const rn_real *w,
                   const rn_real *b, int n0, int n1, int D, double eps);
void rni_norm_backward(rn_norm kind, rn_real *dx, int accumulate, rn_real *dw, rn_real *db, const rn_real *dout,
                      const rn_real *x, const rn_real *w, const rn_real *mean, const rn_real *rstd,
                      int N, int D);
/* rni_norm_backward's dx alone, rows [n0, n1), on the calling thread (dx
 * may be dout: each element is read before it is written). */
void rni_norm_dx_rows(rn_norm kind, rn_real *dx, int accumulate, const rn_real *dout, const rn_real *x,
                      const rn_real *w, const rn_real *mean, const rn_real *rstd, int n0, int n1, int D);

/* Softmax cross-entropy of logits (N, V) against targets (N) (< 0:
 * ignored): returns the summed loss and the count; with dscale != 0 the
 * logits are replaced by dscale * d(loss)/d(logits). */
double rni_cross_entropy(rn_real *logits, const int32_t *y, int N, int V, double dscale, int *count);

#endif
