/* ops.c: the dense building blocks: GEMM (BLAS), norms, activations. */
#define _POSIX_C_SOURCE 200809L  /* setenv */
#include "ops.h"
#include "vmath.h"

#include <cblas.h>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif
#include <pthread.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* ------------------------------------------------------------------- BLAS */

#ifdef RETNET_BLIS
/* The standard CBLAS prototypes come from <cblas.h> (any vendor's); the
 * few BLIS calls are declared here because blis.h needs POSIX extensions
 * this C11 build does not enable. dim_t is BLIS's 64-bit gint_t. */
void bli_thread_set_num_threads(int64_t n);
const char *bli_info_get_version_str(void);
int bli_arch_query_id(void);
const char *bli_arch_string(int id);

/* One thread: rni_gemm splits a product over OpenMP's threads (blas_split),
 * whatever BLIS_NUM_THREADS says. */
void rni_blas_set_threads(int n) { (void)n; bli_thread_set_num_threads(1); }

/* BLIS 0.9.0 does not recognise this project's Xeon (family 6 model 0xcf,
 * AVX-512) and runs its Haswell (AVX2) kernels there, which trained the
 * d256 case at about 0.6 of the rate of its SkylakeX ones (README "BLAS").
 * When the user has not chosen (BLIS_ARCH_TYPE) and an Intel CPU has the
 * AVX-512 subsets those kernels use, they are chosen before BLIS fixes
 * its choice (when it initialises); the environment is left as it was. */
__attribute__((constructor)) static void blas_init(void) {
    int pick = 0;
    if (!getenv("BLIS_ARCH_TYPE")) {
        __builtin_cpu_init();
        /* BLIS_ARCH_TYPE is a number, arch_t's: 0 is skx where this BLIS's table says so */
        pick = __builtin_cpu_is("intel") && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
               strcmp(bli_arch_string(0), "skx") == 0 && setenv("BLIS_ARCH_TYPE", "0", 1) == 0;
    }
    bli_thread_set_num_threads(1); /* initialises BLIS, which fixes its choice */
    if (pick) unsetenv("BLIS_ARCH_TYPE");
}

const char *rni_blas_name(void) {
    static char name[64];
    if (!name[0]) snprintf(name, sizeof name, "BLIS %s (%s)", bli_info_get_version_str(), bli_arch_string(bli_arch_query_id()));
    return name;
}
#else
/* One thread: rni_gemm splits a product over OpenMP's threads (blas_split).
 * OpenBLAS's OpenMP build (Debian's libopenblas0-openmp) also sets the
 * calling thread's OpenMP count to what it is given, which would leave
 * every OpenMP region of libretnet on one thread: that count is put back. */
static void blas_one_thread(void) {
#ifdef _OPENMP
    int n = omp_get_max_threads();
#endif
    openblas_set_num_threads(1);
#ifdef _OPENMP
    omp_set_num_threads(n);
#endif
}

void rni_blas_set_threads(int n) {
    (void)n;
    blas_one_thread();
}

char *openblas_get_corename(void);
/* Present in OpenBLAS builds with DYNAMIC_ARCH (Debian's); weak, so a
 * build for one fixed core links too. */
void gotoblas_dynamic_init(void) __attribute__((weak));
void gotoblas_dynamic_quit(void) __attribute__((weak));

/* OpenBLAS 0.3.21 (Debian 12) does not know some newer Intel server cores
 * (this project's machine: Xeon, family 6 model 0xcf, AVX-512) and falls
 * back to its Prescott (SSE3) kernels there: sgemm at an eighth of the
 * SkylakeX kernels' rate (36 against 300 GFLOP/s on 2 cores). When the user has not chosen a core (OPENBLAS_CORETYPE) and
 * the library fell back so, choose by the instruction set the CPU reports,
 * before any product runs; the environment is left as it was. */
static void pick_core(void) {
    if (getenv("OPENBLAS_CORETYPE") || !gotoblas_dynamic_init || !gotoblas_dynamic_quit) return;
    const char *core = openblas_get_corename();
    if (!core || strcmp(core, "Prescott") != 0) return;
    __builtin_cpu_init();
    const char *pick = NULL;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
        pick = "SkylakeX";
    else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        pick = "Haswell";
    if (!pick || setenv("OPENBLAS_CORETYPE", pick, 1) != 0) return;
    gotoblas_dynamic_quit();
    gotoblas_dynamic_init();
    unsetenv("OPENBLAS_CORETYPE");
}

__attribute__((constructor)) static void blas_init(void) {
    pick_core();
    blas_one_thread(); /* before any product: see blas_split */
}

const char *rni_blas_name(void) {
    static char name[96];
    if (!name[0]) snprintf(name, sizeof name, "OpenBLAS (%s kernels)", openblas_get_corename());
    return name;
}
#endif

/* Multiply-adds issued, so a test can hold rn_train_flops to the truth. */
static _Atomic uint64_t gemm_madds;

uint64_t rni_gemm_madds(void) { return atomic_load(&gemm_madds); }
void rni_gemm_count(uint64_t madds) { atomic_fetch_add_explicit(&gemm_madds, madds, memory_order_relaxed); }

/* x W^T for a few rows (decoding a batch of streams): BLAS packs all of W
 * on every call, which costs more than the product when x has few rows.
 * Here each W row is read once and used against tiles of 4 x rows, in 4 x 4
 * register tiles of vector accumulators. Every element is the same
 * sequence of operations (vector partial sums over k, one fixed horizontal
 * order, then the scalar tail) whatever M and wherever it sits in a tile,
 * so a row's result does not depend on the other rows: a stream decoded in
 * a batch gets what it gets alone, bit for bit. */
#if defined(__AVX__) && !defined(__AVX512F__)
#define RN_VBYTES 32  /* wider generic vectors stay on the stack with 16 ymm registers */
#else
#define RN_VBYTES 64
#endif
/* Vectors returned between these static functions only: without AVX-512
 * clang warns that such values have another ABI, which no caller sees (GCC's
 * note on vector arguments is avoided by passing pointers). */
#pragma GCC diagnostic ignored "-Wpsabi"
typedef rn_real rn_vec __attribute__((vector_size(RN_VBYTES)));
typedef rn_real rn_vec4 __attribute__((vector_size(4 * sizeof(rn_real))));
#define RN_VL ((int)(RN_VBYTES / sizeof(rn_real)))

static inline rn_vec vload(const rn_real *p) {
    rn_vec v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* The horizontal sums of four accumulators, by one fixed tree of lane-wise
 * adds: each sum involves only its own lanes, in the same order in every
 * position (so a zero vector may fill the others). */
static inline rn_vec4 hsum4(const rn_vec *pa, const rn_vec *pb, const rn_vec *pc, const rn_vec *pd) {
    rn_vec a = *pa, b = *pb, c = *pc, d = *pd;
#if RN_VBYTES == 32 && defined(RETNET_DOUBLE)
    rn_vec ab = __builtin_shufflevector(a, b, 0, 1, 4, 5) + __builtin_shufflevector(a, b, 2, 3, 6, 7);
    rn_vec cd = __builtin_shufflevector(c, d, 0, 1, 4, 5) + __builtin_shufflevector(c, d, 2, 3, 6, 7);
    return __builtin_shufflevector(ab, cd, 0, 2, 4, 6) + __builtin_shufflevector(ab, cd, 1, 3, 5, 7);
#elif RN_VBYTES == 32
    rn_vec ab = __builtin_shufflevector(a, b, 0, 1, 2, 3, 8, 9, 10, 11) + __builtin_shufflevector(a, b, 4, 5, 6, 7, 12, 13, 14, 15);
    rn_vec cd = __builtin_shufflevector(c, d, 0, 1, 2, 3, 8, 9, 10, 11) + __builtin_shufflevector(c, d, 4, 5, 6, 7, 12, 13, 14, 15);
    rn_vec x = __builtin_shufflevector(ab, cd, 0, 1, 4, 5, 8, 9, 12, 13) + __builtin_shufflevector(ab, cd, 2, 3, 6, 7, 10, 11, 14, 15);
    return __builtin_shufflevector(x, x, 0, 2, 4, 6) + __builtin_shufflevector(x, x, 1, 3, 5, 7);
#elif defined(RETNET_DOUBLE)
    rn_vec ab = __builtin_shufflevector(a, b, 0, 1, 2, 3, 8, 9, 10, 11) + __builtin_shufflevector(a, b, 4, 5, 6, 7, 12, 13, 14, 15);
    rn_vec cd = __builtin_shufflevector(c, d, 0, 1, 2, 3, 8, 9, 10, 11) + __builtin_shufflevector(c, d, 4, 5, 6, 7, 12, 13, 14, 15);
    rn_vec x = __builtin_shufflevector(ab, cd, 0, 1, 4, 5, 8, 9, 12, 13) + __builtin_shufflevector(ab, cd, 2, 3, 6, 7, 10, 11, 14, 15);
    return __builtin_shufflevector(x, x, 0, 2, 4, 6) + __builtin_shufflevector(x, x, 1, 3, 5, 7);
#else
    typedef rn_real v8 __attribute__((vector_size(8 * sizeof(rn_real))));
    rn_vec ab = __builtin_shufflevector(a, b, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23) +
                __builtin_shufflevector(a, b, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
    rn_vec cd = __builtin_shufflevector(c, d, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23) +
                __builtin_shufflevector(c, d, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
    rn_vec x = __builtin_shufflevector(ab, cd, 0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27) +
               __builtin_shufflevector(ab, cd, 4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31);
    v8 y = __builtin_shufflevector(x, x, 0, 1, 4, 5, 8, 9, 12, 13) + __builtin_shufflevector(x, x, 2, 3, 6, 7, 10, 11, 14, 15);
    return __builtin_shufflevector(y, y, 0, 2, 4, 6) + __builtin_shufflevector(y, y, 1, 3, 5, 7);
#endif
}

/* Multiply-adds fused (ISO C mode leaves them apart): the same fusion in
 * every path, so the per-element sequence stays one. */
#if defined(__clang__)
#define RN_FUSED _Pragma("clang fp contract(fast)")
#define RN_FUSED_FN
#elif defined(__GNUC__)
#define RN_FUSED
#define RN_FUSED_FN __attribute__((optimize("fp-contract=fast")))
#else
#define RN_FUSED
#define RN_FUSED_FN
#endif

/* c = alpha (sum + a[k0..K) . w[k0..K)) (+ beta c) */
RN_FUSED_FN static inline void put(rn_real *c, rn_real alpha, rn_real sum, const rn_real *a, const rn_real *w, int k0,
                                   int K, rn_real beta) {
    RN_FUSED
    for (int k = k0; k < K; k++) sum += a[k] * w[k];
    *c = alpha == 1 && beta == 0 ? sum : alpha * sum + (beta == 0 ? 0 : beta * *c);
}

/* Columns [j0, j1) of gemm_rows_wt's product (j0 a multiple of 4). */
RN_FUSED_FN static void rows_wt(int M, int j0, int j1, int K, rn_real alpha, const rn_real *A, int lda, const rn_real *W,
                                int ldw, rn_real beta, rn_real *C, int ldc) {
    RN_FUSED
    int Kv = K / RN_VL * RN_VL;
    int plain = alpha == 1 && beta == 0 && Kv == K; /* the sums are the results: stored four at a time */
    const rn_vec z = {0};
    int j = j0;
    for (; j + 4 <= j1; j += 4) {
        const rn_real *w[4] = {W + (size_t)j * ldw, W + (size_t)(j + 1) * ldw, W + (size_t)(j + 2) * ldw,
                               W + (size_t)(j + 3) * ldw};
        int i = 0;
        for (; i + 4 <= M; i += 4) {
            const rn_real *a0 = A + (size_t)i * lda, *a1 = a0 + lda, *a2 = a1 + lda, *a3 = a2 + lda;
            /* sixteen named accumulators: arrays of them end up on the stack */
            rn_vec c00 = z, c01 = z, c02 = z, c03 = z, c10 = z, c11 = z, c12 = z, c13 = z;
            rn_vec c20 = z, c21 = z, c22 = z, c23 = z, c30 = z, c31 = z, c32 = z, c33 = z;
            for (int k = 0; k < Kv; k += RN_VL) {
                rn_vec b0 = vload(w[0] + k), b1 = vload(w[1] + k), b2 = vload(w[2] + k), b3 = vload(w[3] + k), x;
                x = vload(a0 + k); c00 += x * b0; c01 += x * b1; c02 += x * b2; c03 += x * b3;
                x = vload(a1 + k); c10 += x * b0; c11 += x * b1; c12 += x * b2; c13 += x * b3;
                x = vload(a2 + k); c20 += x * b0; c21 += x * b1; c22 += x * b2; c23 += x * b3;
                x = vload(a3 + k); c30 += x * b0; c31 += x * b1; c32 += x * b2; c33 += x * b3;
            }
            rn_vec4 s[4] = {hsum4(&c00, &c01, &c02, &c03), hsum4(&c10, &c11, &c12, &c13), hsum4(&c20, &c21, &c22, &c23),
                            hsum4(&c30, &c31, &c32, &c33)};
            const rn_real *a[4] = {a0, a1, a2, a3};
            for (int r = 0; r < 4; r++) {
                if (plain) { memcpy(C + (size_t)(i + r) * ldc + j, &s[r], sizeof s[r]); continue; }
                for (int q = 0; q < 4; q++) put(C + (size_t)(i + r) * ldc + j + q, alpha, s[r][q], a[r], w[q], Kv, K, beta);
            }
        }
        for (; i < M; i++) {
            const rn_real *a = A + (size_t)i * lda;
            rn_vec c0 = z, c1 = z, c2 = z, c3 = z;
            for (int k = 0; k < Kv; k += RN_VL) {
                rn_vec x = vload(a + k);
                c0 += x * vload(w[0] + k);
                c1 += x * vload(w[1] + k);
                c2 += x * vload(w[2] + k);
                c3 += x * vload(w[3] + k);
            }
            rn_vec4 s4 = hsum4(&c0, &c1, &c2, &c3);
            if (plain) memcpy(C + (size_t)i * ldc + j, &s4, sizeof s4);
            else
                for (int q = 0; q < 4; q++) put(C + (size_t)i * ldc + j + q, alpha, s4[q], a, w[q], Kv, K, beta);
        }
    }
    for (; j < j1; j++) {
        const rn_real *w = W + (size_t)j * ldw;
        for (int i = 0; i < M; i++) {
            const rn_real *a = A + (size_t)i * lda;
            rn_vec acc = z;
            for (int k = 0; k < Kv; k += RN_VL) acc += vload(a + k) * vload(w + k);
            put(C + (size_t)i * ldc + j, alpha, hsum4(&acc, &z, &z, &z)[0], a, w, Kv, K, beta);
        }
    }
}

static void gemm_rows_wt(int M, int N, int K, rn_real alpha, const rn_real *A, int lda, const rn_real *W, int ldw,
                         rn_real beta, rn_real *C, int ldc) {
    /* Both cores split the output columns (groups of 4) once the product
     * pays for the fork (about a microsecond): each element's operations
     * stay the same, so exactness holds. A decoding row streams W from L3,
     * whose bandwidth is per core (bench --case decode measures it), so
     * from 2^16 multiply-adds (256 KB of W, ~10 us on one core) two cores
     * halve it. Below, no parallel region at all: an if(0) region still
     * costs libgomp a team (a malloc and a free) on every call. */
    int ng = N / 4;
    if ((size_t)M * N * K >= ((size_t)1 << 16) && ng > 1 && rn_get_threads() > 1) {
#pragma omp parallel
        {
            int t = rni_thread_id(), nt = rni_team_size();
            int g0 = (int)((int64_t)ng * t / nt), g1 = (int)((int64_t)ng * (t + 1) / nt);
            rows_wt(M, 4 * g0, t == nt - 1 ? N : 4 * g1, K, alpha, A, lda, W, ldw, beta, C, ldc);
        }
        return;
    }
    rows_wt(M, 0, N, K, alpha, A, lda, W, ldw, beta, C, ldc);
}


/* ------------------------------------------------ panel-packed weights */

/* The panel kernel's vectors are the machine's own width (rows_wt's stay
 * 64 bytes without AVX, where its horizontal sums are written for them). */
#if defined(__AVX512F__)
#define PANEL_VBYTES 64
#elif defined(__AVX__)
#define PANEL_VBYTES 32
#else
#define PANEL_VBYTES 16
#endif
typedef rn_real pvec __attribute__((vector_size(PANEL_VBYTES)));
#define PANEL_VL ((int)(PANEL_VBYTES / sizeof(rn_real)))

/* x W^T for a few rows from W packed in panels of PANEL_VL output columns
 * (panel p: K rows of PANEL_VL, pk[p K VL + k VL + j] = W[p VL + j][k]). Each
 * output is one chain of multiply-adds over k = 0..K-1 in a vector lane,
 * so no horizontal sums (rows_wt spends a third of its time at 16 rows
 * there) and, again, a row's result does not depend on the tile it sits
 * in: the same bits alone or batched. A tile keeps MR x NP accumulators
 * and reads each panel vector once for its MR rows. */
size_t rni_panel_size(int N, int K) { return (size_t)((N + PANEL_VL - 1) / PANEL_VL) * (size_t)K * PANEL_VL; }

#if defined(__AVX512F__) && !defined(RETNET_DOUBLE)
/* A 16 x 16 block transposed in registers (64 shuffles): r[j] holds row j,
 * then column j. Four stages: pairs of rows interleaved (ps), pairs of
 * pairs (pd), then 128-bit lanes across the halves. */
static inline void transpose16(__m512 r[16]) {
    __m512 t[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++) {  /* r[4i + c], lane L: rows 4i..4i+3 of column 4L + c */
        __m512d a = _mm512_castps_pd(t[4 * i]), b = _mm512_castps_pd(t[4 * i + 1]);
        __m512d c = _mm512_castps_pd(t[4 * i + 2]), d = _mm512_castps_pd(t[4 * i + 3]);
        r[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
        r[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
        r[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
        r[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
    }
    for (int c = 0; c < 4; c++) {
        t[c] = _mm512_shuffle_f32x4(r[c], r[4 + c], 0x88);
        t[4 + c] = _mm512_shuffle_f32x4(r[c], r[4 + c], 0xdd);
        t[8 + c] = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0x88);
        t[12 + c] = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0xdd);
    }
    for (int c = 0; c < 4; c++) {
        r[c] = _mm512_shuffle_f32x4(t[c], t[8 + c], 0x88);
        r[8 + c] = _mm512_shuffle_f32x4(t[c], t[8 + c], 0xdd);
        r[4 + c] = _mm512_shuffle_f32x4(t[4 + c], t[12 + c], 0x88);
        r[12 + c] = _mm512_shuffle_f32x4(t[4 + c], t[12 + c], 0xdd);
    }
}

/* Columns k0.. (16, or what is left of K: the count returned) of panel p
 * of W (N, K): r[i] = (W[16 p + j][k0 + i])_j, rows past N zero. */
static inline int panel_columns(const rn_real *W, size_t ldw, int N, int K, int p, int k0, __m512 r[16]) {
    int kn = K - k0 < 16 ? K - k0 : 16;
    __mmask16 m = (__mmask16)((1u << kn) - 1);
    for (int j = 0; j < 16; j++) {
        int n = p * 16 + j;
        r[j] = n < N ? _mm512_maskz_loadu_ps(m, W + (size_t)n * ldw + k0) : _mm512_setzero_ps();
    }
    transpose16(r);
    return kn;
}

void rni_panel_pack(const rn_real *W, size_t ldw, int N, int K, rn_real *pk) {
    int np = (N + PANEL_VL - 1) / PANEL_VL;
    for (int p = 0; p < np; p++) {
        rn_real *dst = pk + (size_t)p * K * PANEL_VL;
        for (int k0 = 0; k0 < K; k0 += 16) {
            __m512 r[16];
            int kn = panel_columns(W, ldw, N, K, p, k0, r);
            for (int i = 0; i < kn; i++) _mm512_storeu_ps(dst + (size_t)(k0 + i) * 16, r[i]);
        }
    }
}
#else
void rni_panel_pack(const rn_real *W, size_t ldw, int N, int K, rn_real *pk) {
    int np = (N + PANEL_VL - 1) / PANEL_VL;
    for (int p = 0; p < np; p++)
        for (int j = 0; j < PANEL_VL; j++) {
            int n = p * PANEL_VL + j;
            rn_real *dst = pk + (size_t)p * K * PANEL_VL + j;
            for (int k = 0; k < K; k++) dst[(size_t)k * PANEL_VL] = n < N ? W[(size_t)n * ldw + k] : 0;
        }
}
#endif

/* Loops over a tile's accumulators unrolled before register allocation,
 * so the accumulators live in registers, not in a stack array. */
#if defined(__clang__)
#define RN_UNROLL _Pragma("clang loop unroll(full)")
#elif defined(__GNUC__)
#define RN_UNROLL _Pragma("GCC unroll 16")
#else
#define RN_UNROLL
#endif

static inline pvec pload(const rn_real *p) {
    pvec v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline void pstore(rn_real *p, pvec v) { memcpy(p, &v, sizeof v); }

/* Output columns [n0, n0 + VL) of a row (fewer at the end of the row). */
static inline void panel_store(rn_real *yr, int n0, int N, pvec v, int accumulate) {
    if (n0 + PANEL_VL <= N) {
        pstore(yr + n0, accumulate ? pload(yr + n0) + v : v);
        return;
    }
    rn_real t[PANEL_VL];  /* a copy: indexing the vector itself would keep the tile in memory */
    pstore(t, v);
    for (int j = 0; j < N - n0; j++) yr[n0 + j] = accumulate ? yr[n0 + j] + t[j] : t[j];
}

/* Rows [0, MR) x panels [p, p + NP): one function per tile shape, so the
 * accumulator array has its exact size and lives in registers. */
#define PANEL_TILE(MR, NP)                                                                                         \
    RN_FUSED_FN static void panel_tile_##MR##_##NP(int p, int N, int K, const rn_real *x, int ldx,                 \
                                                   const rn_real *pk, rn_real *y, int ldy, int accumulate) {       \
        RN_FUSED                                                                                                   \
        pvec acc[MR][NP];                                                                                        \
        RN_UNROLL for (int r = 0; r < MR; r++) RN_UNROLL for (int q = 0; q < NP; q++) acc[r][q] = (pvec){0};   \
        const rn_real *w = pk + (size_t)p * K * PANEL_VL;                                                             \
        for (int k = 0; k < K; k++) {                                                                              \
            pvec wv[NP];                                                                                         \
            RN_UNROLL for (int q = 0; q < NP; q++) wv[q] = pload(w + ((size_t)q * K + k) * PANEL_VL);                 \
            RN_UNROLL for (int r = 0; r < MR; r++) {                                                               \
                rn_real a = x[(size_t)r * ldx + k];                                                                \
                RN_UNROLL for (int q = 0; q < NP; q++) acc[r][q] += a * wv[q];                                     \
            }                                                                                                      \
        }                                                                                                          \
        RN_UNROLL for (int r = 0; r < MR; r++) RN_UNROLL for (int q = 0; q < NP; q++)                              \
            panel_store(y + (size_t)r * ldy, (p + q) * PANEL_VL, N, acc[r][q], accumulate);                          \
    }


/* MR rows over panels [p0, p1): NP at a time, then the rest with
 * narrower tiles. The shapes below fit the register file: MR x NP
 * accumulators and NP panel vectors in 32 registers with AVX-512, 16
 * otherwise. */
#define PANEL_COLS(MR, NP, TAIL)                                                                                   \
    static void panel_cols_##MR(int p0, int p1, int N, int K, const rn_real *x, int ldx, const rn_real *pk,       \
                                rn_real *y, int ldy, int accumulate) {                                             \
        int p = p0;                                                                                                \
        for (; p + NP <= p1; p += NP) panel_tile_##MR##_##NP(p, N, K, x, ldx, pk, y, ldy, accumulate);             \
        TAIL                                                                                                       \
        for (; p < p1; p++) panel_tile_##MR##_1(p, N, K, x, ldx, pk, y, ldy, accumulate);                          \
    }

#if defined(__AVX512F__)
PANEL_TILE(8, 3)
PANEL_TILE(8, 2)
PANEL_TILE(8, 1)
PANEL_TILE(4, 4)
PANEL_TILE(4, 1)
PANEL_TILE(1, 8)
PANEL_TILE(1, 1)
PANEL_COLS(8, 3, if (p + 2 <= p1) { panel_tile_8_2(p, N, K, x, ldx, pk, y, ldy, accumulate); p += 2; })
PANEL_COLS(4, 4, )
PANEL_COLS(1, 8, )
#else
PANEL_TILE(4, 2)
PANEL_TILE(4, 1)
PANEL_TILE(1, 4)
PANEL_TILE(1, 1)
PANEL_COLS(4, 2, )
PANEL_COLS(1, 4, )
#endif

static void panel_rows(int M, int p0, int p1, int N, int K, const rn_real *x, int ldx, const rn_real *pk,
                       rn_real *y, int ldy, int accumulate) {
    int i = 0;
#if defined(__AVX512F__)
    for (; i + 8 <= M; i += 8) panel_cols_8(p0, p1, N, K, x + (size_t)i * ldx, ldx, pk, y + (size_t)i * ldy, ldy, accumulate);
    for (; i + 4 <= M; i += 4) panel_cols_4(p0, p1, N, K, x + (size_t)i * ldx, ldx, pk, y + (size_t)i * ldy, ldy, accumulate);
#else
    for (; i + 4 <= M; i += 4) panel_cols_4(p0, p1, N, K, x + (size_t)i * ldx, ldx, pk, y + (size_t)i * ldy, ldy, accumulate);
#endif
    for (; i < M; i++) panel_cols_1(p0, p1, N, K, x + (size_t)i * ldx, ldx, pk, y + (size_t)i * ldy, ldy, accumulate);
}

/* Panels [p0, p1) by the same operations one output at a time (scalar
 * multiply-adds fused as the vector ones are): where no scratch could be
 * had. */
RN_FUSED_FN static void panel_rows_scalar(int M, int p0, int p1, int N, int K, const rn_real *x, int ldx,
                                          const rn_real *W, size_t ldw, rn_real *y, int ldy, int accumulate) {
    RN_FUSED
    int n1 = p1 * PANEL_VL < N ? p1 * PANEL_VL : N;
    for (int i = 0; i < M; i++)
        for (int n = p0 * PANEL_VL; n < n1; n++) {
            rn_real acc = 0;
            for (int k = 0; k < K; k++) acc += x[(size_t)i * ldx + k] * W[(size_t)n * ldw + k];
            rn_real *o = y + (size_t)i * ldy + n;
            *o = accumulate ? *o + acc : acc;
        }
}

/* This thread's scratch of at least n values, kept for its next call and
 * freed when the thread ends (a key's destructor: a server's threads come
 * and go); NULL without memory. */
typedef struct {
    size_t cap;
    rn_real v[];
} panel_buf;
static pthread_key_t panel_key;
static pthread_once_t panel_once = PTHREAD_ONCE_INIT;
static int panel_key_ok;
static void panel_key_make(void) { panel_key_ok = pthread_key_create(&panel_key, free) == 0; }

static rn_real *panel_scratch(size_t n) {
    pthread_once(&panel_once, panel_key_make);
    if (!panel_key_ok) return NULL;
    panel_buf *b = pthread_getspecific(panel_key);
    if (b && b->cap >= n) return b->v;
    panel_buf *nb = realloc(b, sizeof *nb + n * sizeof(rn_real));
    if (!nb) return NULL;
    nb->cap = n;
    if (pthread_setspecific(panel_key, nb) != 0) { free(nb); return NULL; }
    return nb->v;
}

#if defined(__AVX512F__) && !defined(RETNET_DOUBLE)
/* One row from W itself over panels [p0, p1) (a decoding stream): each
 * 16 x 16 block transposed in registers and used at once, no scratch; the
 * same chain per output as the tiles. */
static void panel_row1_w(int p0, int p1, int N, int K, const rn_real *x, const rn_real *W, size_t ldw, rn_real *y,
                         int accumulate) {
    for (int p = p0; p < p1; p++) {
        __m512 acc = _mm512_setzero_ps();
        for (int k0 = 0; k0 < K; k0 += 16) {
            __m512 r[16];
            int kn = panel_columns(W, ldw, N, K, p, k0, r);
            for (int i = 0; i < kn; i++) acc = _mm512_fmadd_ps(_mm512_set1_ps(x[k0 + i]), r[i], acc);
        }
        pvec v;
        memcpy(&v, &acc, sizeof v);
        panel_store(y, p * 16, N, v, accumulate);
    }
}
#endif

/* Panels [p0, p1) from W itself: packed a block at a time into this
 * thread's scratch (kept for its next call), then the same tiles, so the
 * same bits as from the load's panels. */
enum { PANEL_BLOCK = 24 }; /* a multiple of every tile's panel count */
static void panel_rows_w(int M, int p0, int p1, int N, int K, const rn_real *x, int ldx, const rn_real *W, size_t ldw,
                         rn_real *y, int ldy, int accumulate) {
#if defined(__AVX512F__) && !defined(RETNET_DOUBLE)
    if (M == 1) { panel_row1_w(p0, p1, N, K, x, W, ldw, y, accumulate); return; }
#endif
    rn_real *scratch = panel_scratch((size_t)PANEL_BLOCK * K * PANEL_VL);
    if (!scratch) { panel_rows_scalar(M, p0, p1, N, K, x, ldx, W, ldw, y, ldy, accumulate); return; }
    for (int pb = p0; pb < p1; pb += PANEL_BLOCK) {
        int nb = p1 - pb < PANEL_BLOCK ? p1 - pb : PANEL_BLOCK, n0 = pb * PANEL_VL;
        int ncols = N - n0 < nb * PANEL_VL ? N - n0 : nb * PANEL_VL;
        rni_panel_pack(W + (size_t)n0 * ldw, ldw, ncols, K, scratch);
        panel_rows(M, 0, nb, N - n0, K, x, ldx, scratch, y + n0, ldy, accumulate);
    }
}

void rni_panel_gemm(int M, int N, int K, const rn_real *x, int ldx, const rn_real *pk, rn_real *y, int ldy,
                    int accumulate) {
    rni_panel_gemm_w(M, N, K, x, ldx, pk, NULL, 0, y, ldy, accumulate);
}

void rni_panel_gemm_w(int M, int N, int K, const rn_real *x, int ldx, const rn_real *pk, const rn_real *W, size_t ldw,
                      rn_real *y, int ldy, int accumulate) {
    if (M <= 0 || N <= 0) return;
    atomic_fetch_add_explicit(&gemm_madds, (uint64_t)M * N * K, memory_order_relaxed);
    int np = (N + PANEL_VL - 1) / PANEL_VL;
    /* both cores split the panels once the product pays for the fork, as
     * gemm_rows_wt splits its columns */
    if ((size_t)M * N * K >= ((size_t)1 << 16) && np > 1 && rn_get_threads() > 1) {
#pragma omp parallel
        {
            int t = rni_thread_id(), nt = rni_team_size();
            int p0 = (int)((int64_t)np * t / nt), p1 = (int)((int64_t)np * (t + 1) / nt);
            if (pk) panel_rows(M, p0, p1, N, K, x, ldx, pk, y, ldy, accumulate);
            else panel_rows_w(M, p0, p1, N, K, x, ldx, W, ldw, y, ldy, accumulate);
        }
        return;
    }
    if (pk) panel_rows(M, 0, np, N, K, x, ldx, pk, y, ldy, accumulate);
    else panel_rows_w(M, 0, np, N, K, x, ldx, W, ldw, y, ldy, accumulate);
}

/* One BLAS call, float (dbl 0) or double; alpha and beta in double. */
static void blas_call(int dbl, int ta, int tb, int M, int N, int K, double alpha, const void *A, int lda,
                      const void *B, int ldb, double beta, void *C, int ldc) {
    enum CBLAS_TRANSPOSE a = ta ? CblasTrans : CblasNoTrans, b = tb ? CblasTrans : CblasNoTrans;
    if (dbl) cblas_dgemm(CblasRowMajor, a, b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    else cblas_sgemm(CblasRowMajor, a, b, M, N, K, (float)alpha, A, lda, B, ldb, (float)beta, C, ldc);
}

/* BLAS runs one thread (rni_blas_set_threads); a product large enough to
 * pay for a parallel region is split here into one block of C per thread of
 * OpenMP's team, along its longer side in multiples of 16 (the kernels'
 * unroll). So the process has one pool of threads: OpenBLAS's own would
 * spin for the cores while OpenMP's team waits for its next region, and at
 * small widths a step is many short regions and products. Every element of
 * C comes from one BLAS call on its block, summed over K in the same order
 * for a given number of threads. */
void rni_split_rows(int len, int t, int nt, int *i0, int *i1) {
    int blk = ((len + nt - 1) / nt + 15) / 16 * 16;
    int64_t a = (int64_t)t * blk, b = a + blk;
    *i0 = a < len ? (int)a : len;
    *i1 = b < len ? (int)b : len;
}

/* The threads a product of M x N x K is split over (outside a parallel
 * region): none below 2^18 multiply-adds, at most one per 16 rows. */
static int split_threads(int M, int N, int K) {
    int nt = 1, len = M >= N ? M : N;
#ifdef _OPENMP
    if (!omp_in_parallel() && (double)M * N * K >= (double)(1 << 18)) nt = rn_get_threads();
#endif
    return nt > len / 16 ? len / 16 : nt;
}

/* Thread t's block of the product split over nt threads: rows of C when
 * M >= N, else columns. */
static void blas_block(int dbl, int t, int nt, int ta, int tb, int M, int N, int K, double alpha, const void *A,
                       int lda, const void *B, int ldb, double beta, void *C, int ldc) {
    int rows = M >= N, b0, b1;
    size_t es = dbl ? sizeof(double) : sizeof(float);
    rni_split_rows(rows ? M : N, t, nt, &b0, &b1);
    size_t i0 = (size_t)b0;
    int n = b1 - b0;
    if (n <= 0) return;
    if (rows)  /* rows i0.. of C: of A (its columns when transposed) */
        blas_call(dbl, ta, tb, n, N, K, alpha, (const char *)A + (ta ? i0 : i0 * lda) * es, lda, B, ldb, beta,
                  (char *)C + i0 * ldc * es, ldc);
    else       /* columns i0.. of C: of B (its rows when transposed) */
        blas_call(dbl, ta, tb, M, n, K, alpha, A, lda, (const char *)B + (tb ? i0 * ldb : i0) * es, ldb, beta,
                  (char *)C + i0 * es, ldc);
}

static void blas_split(int dbl, int ta, int tb, int M, int N, int K, double alpha, const void *A, int lda,
                       const void *B, int ldb, double beta, void *C, int ldc) {
    int nt = split_threads(M, N, K);
    if (nt <= 1) {
        blas_call(dbl, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
#pragma omp parallel for schedule(static) num_threads(nt)
    for (int t = 0; t < nt; t++) blas_block(dbl, t, nt, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void rni_sgemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
               float beta, float *C, int ldc) {
    if (M > 0 && N > 0 && K > 0) blas_split(0, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

/* few: x W^T of up to 64 rows goes to the few-row kernel and larger
 * products are split over the threads (rni_gemm); else one BLAS call
 * (rni_gemm_act). */
static void gemm(int few, int ta, int tb, int M, int N, int K, rn_real alpha, const rn_real *A, int lda,
                 const rn_real *B, int ldb, rn_real beta, rn_real *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    if (K > 0) atomic_fetch_add_explicit(&gemm_madds, (uint64_t)M * N * K, memory_order_relaxed);
    if (K <= 0) {
        /* BLAS leaves C untouched for K = 0 only if beta = 1; be explicit. */
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) C[(size_t)i * ldc + j] = beta == 0 ? 0 : beta * C[(size_t)i * ldc + j];
        return;
    }
    if (few && !ta && tb && M <= 64) {
        /* A few rows times W^T (decoding a batch of streams, short prompts):
         * BLAS's packing would cost more than it saves; and one kernel for
         * every size keeps a stream's bits the same batched or alone. */
        gemm_rows_wt(M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    if (few) blas_split(sizeof(rn_real) == sizeof(double), ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    else blas_call(sizeof(rn_real) == sizeof(double), ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void rni_gemm(int ta, int tb, int M, int N, int K, rn_real alpha, const rn_real *A, int lda,
             const rn_real *B, int ldb, rn_real beta, rn_real *C, int ldc) {
    gemm(1, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

static void gemm_args(const rni_gemm_args *g) {
    gemm(1, g->ta, g->tb, g->M, g->N, g->K, g->alpha, g->A, g->lda, g->B, g->ldb, g->beta, g->C, g->ldc);
}

void rni_gemm2(const rni_gemm_args g[2], void (*rows)(void *ctx, int r0, int r1), void *ctx, int sync) {
    int nt[2], team = 1, dbl = sizeof(rn_real) == sizeof(double);
    for (int i = 0; i < 2; i++) {
        /* BLAS's products only (no few-row kernel, no empty K): else in turn */
        if ((!g[i].ta && g[i].tb && g[i].M <= 64) || g[i].K <= 0 || g[i].M <= 0 || g[i].N <= 0) team = 0;
        nt[i] = split_threads(g[i].M, g[i].N, g[i].K);
        if (team && nt[i] > team) team = nt[i];
    }
    if (team <= 1) {
        gemm_args(&g[0]);
        gemm_args(&g[1]);
        if (rows) rows(ctx, 0, g[1].M);
        return;
    }
    for (int i = 0; i < 2; i++)
        atomic_fetch_add_explicit(&gemm_madds, (uint64_t)g[i].M * g[i].N * g[i].K, memory_order_relaxed);
    /* The rows a thread computed are its rows for fn unless the second
     * product is split otherwise: then fn waits for all of it. */
    if (g[1].M < g[1].N || nt[1] != team) sync = 1;
#pragma omp parallel num_threads(team)
    {
        int t = rni_thread_id();
        for (int i = 0; i < 2; i++)
            if (t < nt[i] && nt[i] > 1)
                blas_block(dbl, t, nt[i], g[i].ta, g[i].tb, g[i].M, g[i].N, g[i].K, g[i].alpha, g[i].A, g[i].lda, g[i].B,
                           g[i].ldb, g[i].beta, g[i].C, g[i].ldc);
            else if (t == 0 && nt[i] <= 1)
                blas_call(dbl, g[i].ta, g[i].tb, g[i].M, g[i].N, g[i].K, g[i].alpha, g[i].A, g[i].lda, g[i].B, g[i].ldb,
                          g[i].beta, g[i].C, g[i].ldc);
        if (rows) {
            if (sync) {
#pragma omp barrier
            }
            int r0, r1;
            rni_split_rows(g[1].M, t, team, &r0, &r1);
            if (r1 > r0) rows(ctx, r0, r1);
        }
    }
}

void rni_gemm_act(int ta, int tb, int M, int N, int K, rn_real alpha, const rn_real *A, int lda,
                  const rn_real *B, int ldb, rn_real beta, rn_real *C, int ldc) {
    gemm(0, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

/* ------------------------------------------------------------------ norms */

void rni_norm_rows(rn_norm kind, rn_real *out, rn_real *mean, rn_real *rstd, const rn_real *x, const rn_real *w,
                   const rn_real *b, int n0, int n1, int D, double eps) {
    for (int n = n0; n < n1; n++) {
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

void rni_norm_forward(rn_norm kind, rn_real *out, rn_real *mean, rn_real *rstd, const rn_real *x,
                     const rn_real *w, const rn_real *b, int N, int D, double eps) {
    if (N <= 64) { rni_norm_rows(kind, out, mean, rstd, x, w, b, 0, N, D, eps); return; }
#pragma omp parallel
    {
        int t = rni_thread_id(), nt = rni_team_size();
        rni_norm_rows(kind, out, mean, rstd, x, w, b, (int)((int64_t)N * t / nt), (int)((int64_t)N * (t + 1) / nt), D, eps);
    }
}

/* Row n of the norm's dx (see rni_norm_backward). */
static inline void norm_dx_row(rn_norm kind, rn_real *dx, int accumulate, const rn_real *dout, const rn_real *x,
                               const rn_real *w, const rn_real *mean, const rn_real *rstd, int n, int D) {
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

void rni_norm_dx_rows(rn_norm kind, rn_real *dx, int accumulate, const rn_real *dout, const rn_real *x,
                      const rn_real *w, const rn_real *mean, const rn_real *rstd, int n0, int n1, int D) {
    for (int n = n0; n < n1; n++) norm_dx_row(kind, dx, accumulate, dout, x, w, mean, rstd, n, D);
}

/* Columns of dw, db a thread sums per pass over its rows (on its stack). */
#define RN_NORM_COLS 2048

/* Backward of y = xhat * w + b, xhat = (x - mu) r. With g = dy * w:
 *   RMS:   dx = r (g - xhat mean(g xhat))
 *   Layer: dx = r (g - mean(g) - xhat mean(g xhat))
 * dw += sum_n dy xhat, db += sum_n dy. dx is accumulated (+=) when
 * accumulate is set, else written. One sweep over dout and x: a row's
 * dw, db terms are summed while it is in cache, into each thread's partial
 * sums (its static share of the rows), which are then added in thread
 * order (deterministic for a given thread count). */
void rni_norm_backward(rn_norm kind, rn_real *dx, int accumulate, rn_real *dw, rn_real *db, const rn_real *dout,
                      const rn_real *x, const rn_real *w, const rn_real *mean, const rn_real *rstd,
                      int N, int D) {
    int sums = dw || db, DB = D < RN_NORM_COLS ? D : RN_NORM_COLS;
    double acc[sums ? 2 * DB : 1]; /* the threads' partials, added in order */
#pragma omp parallel if (N > 64)
    {
        double part[sums ? 2 * DB : 1]; /* sw | sb of this thread's rows */
        int nt = rni_team_size();
        for (int c0 = 0; c0 < D; c0 += DB) {
            int c1 = c0 + DB < D ? c0 + DB : D;
            if (sums) memset(part, 0, sizeof(double) * 2 * (size_t)DB);
#pragma omp for schedule(static) nowait
            for (int n = 0; n < N; n++) {
                const rn_real *xn = x + (size_t)n * D, *dy = dout + (size_t)n * D;
                rn_real mu = kind == RN_NORM_LAYER ? mean[n] : 0, r = rstd[n];
                if (sums) {
                    double *sw = part, *sb = part + DB;
#pragma omp simd
                    for (int i = c0; i < c1; i++) {
                        sw[i - c0] += (double)dy[i] * ((xn[i] - mu) * r);
                        sb[i - c0] += dy[i];
                    }
                }
                if (!c0) norm_dx_row(kind, dx, accumulate, dout, x, w, mean, rstd, n, D); /* dx: the first pass */
            }
            if (!sums) break;
            /* iteration t is thread t's (static, chunk 1): its partials in turn */
#pragma omp for ordered schedule(static, 1)
            for (int t = 0; t < nt; t++) {
#pragma omp ordered
                {
                    for (int i = 0; i < 2 * DB; i++) acc[i] = t ? acc[i] + part[i] : part[i];
                    if (t == nt - 1)
                        for (int i = c0; i < c1; i++) {
                            if (dw) dw[i] += (rn_real)acc[i - c0];
                            if (db) db[i] += (rn_real)acc[DB + i - c0];
                        }
                }
            }
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
