/* test_grad.c: the hand-written backward pass. In float64: every tensor of
 * every preset against central finite differences (relative 1e-6), for the
 * parallel and the chunkwise paradigm; in both precisions: parallel and
 * chunkwise gradients agree (1e-12 / 1e-5). Plus per-operation checks of
 * the norms and of one retention chunk. */
#include "check.h"
#ifdef _OPENMP
#include <omp.h>
#endif
#include "ops.h"
#include "params.h"
#include "retention.h"

#ifdef RETNET_DOUBLE
static double loss_of(rn_model *m, const int32_t *x, const int32_t *y, int B, int T, rn_mode mode, int chunk) {
    double l;
    rn_model_loss_grad(m, x, y, B, T, mode, chunk, 1, NULL, &l, NULL);
    return l;
}

/* Whole model against finite differences, a few entries of every tensor. */
static void fd_model(rn_preset p, rn_mode mode, int chunk, int embed_norm) {
    rn_model *m;
    if (embed_norm) {
        /* layernorm_embedding (a torchscale option), with tied embeddings */
        rn_config c;
        memset(&c, 0, sizeof c);
        rn_config_preset(&c, p, NULL);
        c.dim = 16; c.heads = 2; c.value_dim = 32; c.ffn_dim = 32; c.layers = 2; c.vocab = 13;
        c.embed_norm = 1; c.tie_embed = 1;
        CHECK_OK(rn_model_create(&c, &m));
        rn_model_init_random(m, 42);
    } else {
        m = make_model(p, 16, 2, 32, 2, 13, 42);
    }
    int B = 2, T = 11, V = 13;
    int32_t x[22], y[22];
    random_tokens(x, (size_t)B * T, V, 1);
    random_tokens(y, (size_t)B * T, V, 2);
    y[3] = -1;  /* ignored target */
    size_t np = rn_model_num_params(m);
    rn_real *g = calloc(np, sizeof *g), *p0 = rn_model_params(m);
    /* Non-trivial norm weights and biases so their gradients matter. */
    rn_rng r;
    rn_rng_seed(&r, 5);
    for (int i = 0; i < m->n_tensors; i++)
        if (m->tensors[i].cols == 1)
            for (int j = 0; j < m->tensors[i].rows; j++) p0[m->tensors[i].offset + j] += (rn_real)(0.3 * (rn_rng_uniform(&r) - 0.5));
    double loss;
    CHECK_OK(rn_model_loss_grad(m, x, y, B, T, mode, chunk, 1, g, &loss, NULL));
    double worst = 0;
    for (int ti = 0; ti < m->n_tensors; ti++) {
        const rn_tensor_info *t = &m->tensors[ti];
        size_t n = (size_t)t->rows * t->cols;
        double num2 = 0, den2 = 0;
        for (int s = 0; s < 6; s++) {
            size_t j = t->offset + (size_t)(rn_rng_u64(&r) % n);
            /* Five-point central difference: truncation O(h^4), so h can
             * be large enough that rounding stays far below the bound. */
            double h = 3e-4, save = p0[j], f[4];
            const double at[4] = {2, 1, -1, -2};
            for (int k = 0; k < 4; k++) {
                p0[j] = (rn_real)(save + at[k] * h);
                f[k] = loss_of(m, x, y, B, T, mode, chunk);
            }
            p0[j] = (rn_real)save;
            double fd = (-f[0] + 8 * f[1] - 8 * f[2] + f[3]) / (12 * h);
            num2 += (fd - g[j]) * (fd - g[j]);
            den2 += fd * fd;
        }
        /* Relative error; for a tensor whose gradient is tiny (below 1e-4),
         * relative to 1e-4: the differences' rounding floor is ~1e-12. */
        double e = sqrt(num2) / fmax(sqrt(den2), 1e-4);
        CHECK(e <= 1e-6, "%s %s: tensor %s (layer %d) gradient vs finite differences: rel err %.3g",
              rn_preset_name(p), mode == RN_PARALLEL ? "parallel" : "chunkwise", rni_tensor_kind_name(t->kind), t->layer, e);
        if (e > worst) worst = e;
    }
    printf("  %-10s %-9s finite differences over %d tensors%s: worst rel err %.2e\n", rn_preset_name(p),
           mode == RN_PARALLEL ? "parallel" : "chunkwise", m->n_tensors, embed_norm ? " (embed norm, tied)" : "", worst);
    free(g);
    rn_model_free(m);
}

#endif

/* Parallel and chunkwise gradients agree. */
static void par_vs_chunk(rn_preset p, int T, int chunk) {
    rn_model *m = make_model(p, 32, 4, 64, 2, 29, 7);
    int B = 2, V = 29;
    int32_t *x = malloc(sizeof(int32_t) * B * T), *y = malloc(sizeof(int32_t) * B * T);
    random_tokens(x, (size_t)B * T, V, 3);
    random_tokens(y, (size_t)B * T, V, 4);
    size_t np = rn_model_num_params(m);
    rn_real *ga = calloc(np, sizeof *ga), *gb = calloc(np, sizeof *gb);
    double la, lb;
    CHECK_OK(rn_model_loss_grad(m, x, y, B, T, RN_PARALLEL, 0, 1, ga, &la, NULL));
    CHECK_OK(rn_model_loss_grad(m, x, y, B, T, RN_CHUNKWISE, chunk, 1, gb, &lb, NULL));
    double e = rel_err(gb, ga, np);
    CHECK(e <= AGREE_TOL, "%s %s T=%d chunk=%d: chunkwise vs parallel gradients %.3g", rn_preset_name(p), PRECISION, T, chunk, e);
    CHECK(fabs(la - lb) <= AGREE_TOL * fabs(la), "losses differ: %.17g vs %.17g", la, lb);
    printf("  %-10s %s T=%-4d chunk=%-3d parallel vs chunkwise gradients: rel err %.2e\n", rn_preset_name(p), PRECISION, T, chunk, e);
    free(ga); free(gb); free(x); free(y);
    rn_model_free(m);
}

#ifdef RETNET_DOUBLE
/* Norm backward against finite differences of sum(w_out * norm(x)). */
static void fd_norm(rn_norm kind) {
    enum { N = 3, D = 7 };
    rn_real x[N * D], w[D], b[D], wo[N * D], out[N * D], mean[N], rstd[N];
    rn_real dx[N * D] = {0}, dw[D] = {0}, db[D] = {0};
    rn_rng r;
    rn_rng_seed(&r, 11);
    for (int i = 0; i < N * D; i++) { x[i] = (rn_real)rn_rng_normal(&r); wo[i] = (rn_real)rn_rng_normal(&r); }
    for (int i = 0; i < D; i++) { w[i] = (rn_real)(1 + 0.3 * rn_rng_normal(&r)); b[i] = (rn_real)rn_rng_normal(&r); }
    rn_real *bb = kind == RN_NORM_LAYER ? b : NULL;
    rni_norm_forward(kind, out, mean, rstd, x, w, bb, N, D, 1e-5);
    rni_norm_backward(kind, dx, 0, dw, kind == RN_NORM_LAYER ? db : NULL, wo, x, w, mean, rstd, N, D);
    double num = 0, den = 0;
    rn_real *params[3] = {x, w, b};
    rn_real *grads[3] = {dx, dw, db};
    int sizes[3] = {N * D, D, kind == RN_NORM_LAYER ? D : 0};
    for (int p = 0; p < 3; p++)
        for (int i = 0; i < sizes[p]; i++) {
            double save = params[p][i], h = 1e-5, f[2];
            for (int s = 0; s < 2; s++) {
                params[p][i] = (rn_real)(save + (s ? -h : h));
                rni_norm_forward(kind, out, mean, rstd, x, w, bb, N, D, 1e-5);
                f[s] = 0;
                for (int j = 0; j < N * D; j++) f[s] += out[j] * wo[j];
            }
            params[p][i] = (rn_real)save;
            double fd = (f[0] - f[1]) / (2 * h);
            num += (fd - grads[p][i]) * (fd - grads[p][i]);
            den += fd * fd;
        }
    double e = sqrt(num / den);
    CHECK(e <= 1e-6, "%s norm backward vs finite differences: %.3g", kind == RN_NORM_LAYER ? "layer" : "rms", e);
    printf("  %s norm: finite differences rel err %.2e\n", kind == RN_NORM_LAYER ? "layer" : "rms", e);
}

/* One retention chunk with a prior state, all inputs (q, k, v, U_prev). */
static void fd_retention(rn_preset p) {
    rn_model *m = make_model(p, 8, 2, 8, 1, 5, 1);
    int K = m->K, Dv = m->Dv, L = 5, h = 1;
    int64_t pos = 9;
    size_t nq = (size_t)L * K, nv = (size_t)L * Dv, nu = (size_t)K * Dv;
    rn_real *q = malloc(sizeof(rn_real) * nq), *k = malloc(sizeof(rn_real) * nq), *v = malloc(sizeof(rn_real) * nv);
    rn_real *U = malloc(sizeof(rn_real) * nu), *U1 = malloc(sizeof(rn_real) * nu), *o = malloc(sizeof(rn_real) * nv);
    rn_real *wo = malloc(sizeof(rn_real) * nv), *wu = malloc(sizeof(rn_real) * nu);
    rn_real *dq = calloc(nq, sizeof(rn_real)), *dk = calloc(nq, sizeof(rn_real)), *dv = calloc(nv, sizeof(rn_real));
    rn_real *dU = malloc(sizeof(rn_real) * nu);
    rn_real *ws = malloc(sizeof(rn_real) * (rni_retention_bwd_ws(m, L) + rni_retention_ws(m, L)));
    rn_rng r;
    rn_rng_seed(&r, 3);
    for (size_t i = 0; i < nq; i++) { q[i] = (rn_real)rn_rng_normal(&r); k[i] = (rn_real)rn_rng_normal(&r); }
    for (size_t i = 0; i < nv; i++) { v[i] = (rn_real)rn_rng_normal(&r); wo[i] = (rn_real)rn_rng_normal(&r); }
    for (size_t i = 0; i < nu; i++) { U[i] = (rn_real)rn_rng_normal(&r); wu[i] = (rn_real)rn_rng_normal(&r); }
    /* f = sum(wo * o) + sum(wu * U_next) */
    memcpy(dU, wu, sizeof(rn_real) * nu);
    rni_retention_chunk_backward(m, h, pos, L, q, k, K, v, Dv, U, wo, Dv, dU, 1, dq, dk, dv, ws);
    rn_real *params[4] = {q, k, v, U}, *grads[4] = {dq, dk, dv, dU};
    size_t sizes[4] = {nq, nq, nv, nu};
    double num = 0, den = 0;
    for (int pi = 0; pi < 4; pi++)
        for (size_t i = 0; i < sizes[pi]; i++) {
            double save = params[pi][i], hh = 1e-6, f[2];
            for (int s = 0; s < 2; s++) {
                params[pi][i] = (rn_real)(save + (s ? -hh : hh));
                memcpy(U1, U, sizeof(rn_real) * nu);
                rni_retention_chunk(m, h, pos, L, q, k, K, v, Dv, U1, RN_STATE_IN | RN_STATE_OUT, o, Dv, ws, NULL);
                f[s] = 0;
                for (size_t j = 0; j < nv; j++) f[s] += wo[j] * o[j];
                for (size_t j = 0; j < nu; j++) f[s] += wu[j] * U1[j];
            }
            params[pi][i] = (rn_real)save;
            double fd = (f[0] - f[1]) / (2 * hh);
            num += (fd - grads[pi][i]) * (fd - grads[pi][i]);
            den += fd * fd;
        }
    double e = sqrt(num / den);
    CHECK(e <= 1e-6, "%s retention chunk backward vs finite differences: %.3g", rn_preset_name(p), e);
    printf("  %-10s retention chunk (q, k, v, state): finite differences rel err %.2e\n", rn_preset_name(p), e);
    free(q); free(k); free(v); free(U); free(U1); free(o); free(wo); free(wu);
    free(dq); free(dk); free(dv); free(dU); free(ws);
    rn_model_free(m);
}

#endif

/* rn_train_flops counts exactly the multiply-adds a step issues (x 2):
 * the benchmark's FLOP/s rest on it. */
static void flop_count(rn_preset p) {
    rn_model *m = make_model(p, 32, 2, 64, 2, 29, 3);
    const struct { int B, T, chunk; rn_mode mode; } cases[] = {
        {2, 300, 0, RN_PARALLEL}, {2, 300, 64, RN_CHUNKWISE}, {1, 70, 7, RN_CHUNKWISE},
        {3, 5, 64, RN_CHUNKWISE}, {1, 129, 128, RN_CHUNKWISE}, {1, 1, 0, RN_PARALLEL}};
    rn_real *g = calloc(rn_model_num_params(m), sizeof *g);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int B = cases[i].B, T = cases[i].T;
        int32_t *x = malloc(sizeof(int32_t) * (size_t)B * T), *y = malloc(sizeof(int32_t) * (size_t)B * T);
        random_tokens(x, (size_t)B * T, 29, 1);
        random_tokens(y, (size_t)B * T, 29, 2);
        uint64_t before = rni_gemm_madds();
        double loss;
        CHECK_OK(rn_model_loss_grad(m, x, y, B, T, cases[i].mode, cases[i].chunk, 1, g, &loss, NULL));
        double issued = 2.0 * (double)(rni_gemm_madds() - before);
        double counted = rn_train_flops(rn_model_config(m), B, T, cases[i].mode, cases[i].chunk);
        CHECK(issued == counted, "%s B=%d T=%d chunk=%d: rn_train_flops %.0f, issued %.0f", rn_preset_name(p), B, T,
              cases[i].chunk, counted, issued);
        free(x);
        free(y);
    }
    const rn_config *c = rn_model_config(m);
    CHECK(rn_train_flops(c, 0, 8, RN_PARALLEL, 0) == 0 && rn_train_flops(c, 1, 8, RN_CHUNKWISE, 0) == 0 &&
          rn_train_flops(c, 1, 8, RN_RECURRENT, 4) == 0 && rn_train_flops(NULL, 1, 8, RN_PARALLEL, 0) == 0,
          "rn_train_flops of arguments a step refuses is not 0");
    free(g);
    rn_model_free(m);
}

/* The products run on kernels for this CPU: OpenBLAS 0.3.21 falls back to
 * its SSE3 (Prescott) kernels on cores it does not know, an eighth of the
 * speed, and src/ops.c then picks them by the instruction set. */
static void blas_kernels(void) {
#if defined(__x86_64__) && !defined(RETNET_BLIS)
    __builtin_cpu_init();
    if (!getenv("OPENBLAS_CORETYPE") && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        CHECK(strstr(rni_blas_name(), "Prescott") == NULL, "BLAS runs %s on a CPU with AVX2 and FMA", rni_blas_name());
#endif
}

/* Holding BLAS at one thread leaves OpenMP's count alone: OpenBLAS's
 * OpenMP build sets the caller's count with its own, which once left every
 * region of a program that did not call rn_set_threads on one thread. */
static void default_threads(void) {
#ifdef _OPENMP
    if (!getenv("OMP_NUM_THREADS") && !getenv("OMP_THREAD_LIMIT"))
        CHECK(rn_get_threads() == omp_get_num_procs(), "rn_get_threads() is %d by default on %d processors",
              rn_get_threads(), omp_get_num_procs());
#endif
}

int main(void) {
    default_threads();
    rn_set_threads(2);
    blas_kernels();
    for (int pi = 0; pi < 3; pi++) {
        rn_preset p = (rn_preset)pi;
#ifdef RETNET_DOUBLE
        fd_retention(p);
        fd_model(p, RN_PARALLEL, 0, 0);
        fd_model(p, RN_CHUNKWISE, 4, 0);
        fd_model(p, RN_CHUNKWISE, 3, 1);
#endif
        flop_count(p);
        par_vs_chunk(p, 64, 7);
        par_vs_chunk(p, 300, 64);
    }
#ifdef RETNET_DOUBLE
    fd_norm(RN_NORM_RMS);
    fd_norm(RN_NORM_LAYER);
#endif
    CHECK_DONE();
}
