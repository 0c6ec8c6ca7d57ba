/* vmath.h: the activations (GELU, swish) and their derivatives as inline
 * straight-line code, so that a `#pragma omp simd` loop over a row compiles
 * to vector instructions. libm's expf/erff are scalar calls; in the float32
 * build the activations were about 8% of a training step through them
 * (docs/PERFORMANCE.md). The float64 build keeps libm: its gradients are
 * checked against finite differences far below float32 rounding, which
 * needs the derivative of exactly the function computed. */
#ifndef RN_VMATH_H
#define RN_VMATH_H

#include "retnet.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#ifndef RETNET_DOUBLE

/* fmaf is one instruction where the target has FMA, a slow call elsewhere. */
#ifdef FP_FAST_FMAF
#define RN_FMA(a, b, c) fmaf(a, b, c)
#else
#define RN_FMA(a, b, c) ((a) * (b) + (c))
#endif

/* c[0] x^(n-1) + ... + c[n-1] by Horner's rule (n is a constant where it is
 * called, so the loop unrolls into straight-line multiply-adds). */
static inline float rni_horner(float x, const float *c, int n) {
    float p = c[0];
    for (int i = 1; i < n; i++) p = RN_FMA(p, x, c[i]);
    return p;
}

/* exp(x) to about 1 ulp: x = n ln2 + r, |r| <= ln2/2, exp(r) by its Taylor
 * series to r^7 (truncation < 6e-9 relative), times 2^n built in the
 * exponent bits. x is clamped to [-87.3, 88] (NaN goes to -87.3: the
 * callers multiply by x, which carries the NaN on). */
static inline float rni_vexpf(float x) {
    static const float taylor[8] = {1.98412698e-4f, 1.38888889e-3f, 8.33333333e-3f, 4.16666667e-2f,
                                    1.66666667e-1f, 0.5f, 1.0f, 1.0f};  /* 1/7!, 1/6!, ..., 1/1!, 1/0! */
    x = x > -87.3f ? x : -87.3f;
    x = x < 88.0f ? x : 88.0f;
    /* round to nearest by adding 1.5 * 2^23 (floorf is a call, not vectorised) */
    float n = (x * 1.44269504f + 12582912.0f) - 12582912.0f;
    float r = RN_FMA(n, -0.693145752f, x);  /* ln2 in two parts: n * hi is exact */
    r = RN_FMA(n, -1.42860677e-6f, r);
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return rni_horner(r, taylor, 8) * scale;
}

/* Phi(x) = (1 + erf(x / sqrt 2)) / 2, the GELU's gate. |z| < 1: erf's
 * Taylor series to z^23 (2/sqrt(pi) (-1)^k / (k! (2k+1)), truncation < 1e-9);
 * |z| >= 1: erfc(|z|) = exp(poly(|z| - 2.5)), a least-squares fit of
 * log erfc on [1, 4] (scripts/fit_erfc.py, |error| < 2e-9); beyond 4,
 * erfc/2 < 8e-9 is taken as 0, as float32 1 + erf(z) rounds it (what
 * PyTorch computes). Both are computed and one selected, so the loop stays
 * branch-free. */
static inline float rni_vphi(float x) {
    static const float erf_taylor[12] = {-1.22905553e-9f, 1.48071928e-8f, -1.63658447e-7f, 1.64621144e-6f,
                                         -1.49256504e-5f, 1.20553330e-4f, -8.54832702e-4f, 5.22397763e-3f,
                                         -2.68661706e-2f, 1.12837917e-1f, -3.76126389e-1f, 1.12837917f};
    static const float log_erfc[11] = {-4.104853711e-08f, -6.582858126e-08f, 1.844959634e-06f, -1.297613319e-05f,
                                       7.693984504e-05f, -4.207069391e-04f, 2.165525598e-03f, -1.085816553e-02f,
                                       -9.438937430e-01f, -5.352680740e+00f, -7.806815272e+00f};
    float z = x * 0.707106781f, az = fabsf(z);
    float erf_small = z * rni_horner(z * z, erf_taylor, 12);
    float t = (az < 4.0f ? az : 4.0f) - 2.5f;
    float half_erfc = az < 4.0f ? 0.5f * rni_vexpf(rni_horner(t, log_erfc, 11)) : 0.0f;  /* erfc(|z|) / 2 */
    float big = z < 0 ? half_erfc : 1.0f - half_erfc;
    return az < 1.0f ? 0.5f + 0.5f * erf_small : big;
}

static inline float rni_vsigmoid(float x) { return 1.0f / (1.0f + rni_vexpf(-x)); }
#define RN_PHI(x) rni_vphi(x)
#define RN_SIGMOID(x) rni_vsigmoid(x)
#define RN_GAUSS(x) rni_vexpf(x)
#define RN_EXP_REAL(x) rni_vexpf(x)
#define RN_SQRT_REAL(x) sqrtf(x)

#else

#define RN_PHI(x) (0.5 * (1 + erf((x) * 0.70710678118654752440)))
#define RN_SIGMOID(x) (1 / (1 + exp(-(x))))
#define RN_GAUSS(x) exp(x)
#define RN_EXP_REAL(x) exp(x)
#define RN_SQRT_REAL(x) sqrt(x)

#endif

/* An activation is x * gate(x): GELU's Phi(x), swish's sigmoid(x). The
 * forward pass of training keeps the gate, so the backward pass needs no
 * erf and (swish) no exp. */
static inline rn_real rni_act_gate(rn_act a, rn_real x) {
    return a == RN_ACT_GELU ? (rn_real)RN_PHI(x) : (rn_real)RN_SIGMOID(x);
}

/* act'(x) from x and its gate: GELU' = Phi(x) + x phi(x); swish' = s (1 + x (1 - s)). */
static inline rn_real rni_act_deriv(rn_act a, rn_real x, rn_real gate) {
    if (a == RN_ACT_GELU) return gate + x * (rn_real)0.39894228040143267794 * (rn_real)RN_GAUSS((rn_real)-0.5 * x * x);
    return gate * ((rn_real)1 + x * ((rn_real)1 - gate));
}

#endif
