/* model/simd.h: the one vector type of the fast kernels: 8 floats (one AVX register), written with
 * GCC vector extensions so the same code compiles everywhere. The build picks the multiply-add:
 * with -march=native on an FMA machine it is one fused instruction (one rounding); elsewhere it is a
 * multiply then an add, which gcc lowers to whatever vector unit the target has. */
#ifndef SINKTRACE_SIMD_H
#define SINKTRACE_SIMD_H

#include <string.h>

typedef float v8 __attribute__((vector_size(32)));

#if defined(__AVX__)
#include <immintrin.h>
#endif
#if defined(__FMA__)
#define ST_HAVE_FMA 1
#define FMA8(a, b, c) _mm256_fmadd_ps((a), (b), (c)) /* a * b + c, fused */
#else
#define ST_HAVE_FMA 0
#define FMA8(a, b, c) ((a) * (b) + (c))
#endif

/* loads and stores at any alignment (memcpy compiles to one unaligned vector move) */
static inline v8 load8(const float *p) {
    v8 x;
    memcpy(&x, p, sizeof x);
    return x;
}

static inline void store8(float *p, v8 x) { memcpy(p, &x, sizeof x); }

/* x[0..m) as a vector, m <= 8, zeros past m; and the matching store. An element goes through the same
 * vector code whether or not it sits in a partial chunk, so its value does not depend on its position. */
static inline v8 load_part(const float *x, size_t m) {
    if (m == 8) return load8(x);
    v8 v = {0};
    memcpy(&v, x, sizeof(float) * m);
    return v;
}

static inline void store_part(float *x, v8 v, size_t m) {
    if (m == 8) store8(x, v);
    else memcpy(x, &v, sizeof(float) * m);
}

static inline v8 splat8(float s) { return (v8){s, s, s, s, s, s, s, s}; }

/* square roots of 8 floats, correctly rounded either way (IEEE sqrt is exact-rounded) */
static inline v8 sqrt8(v8 x) {
#if defined(__AVX__)
    return _mm256_sqrt_ps(x);
#else
    v8 r;
    for (int l = 0; l < 8; l++) r[l] = __builtin_sqrtf(x[l]);
    return r;
#endif
}

static inline float hsum8(v8 x) {
    return ((x[0] + x[4]) + (x[1] + x[5])) + ((x[2] + x[6]) + (x[3] + x[7]));
}

typedef int v8i __attribute__((vector_size(32)));

/* lane-wise a > b ? a : b (comparisons give lanes of all ones or zeros, used as a bit mask) */
static inline v8 max8(v8 a, v8 b) {
    v8i gt = a > b;
    return (v8)(((v8i)a & gt) | ((v8i)b & ~gt));
}

/* x where u > 0, else 0, lane by lane: a bit mask instead of a branch (the sign of a ReLU's
 * pre-activation is a coin flip the branch predictor would lose half the time) */
static inline v8 where_positive(v8 u, v8 x) { return (v8)((v8i)x & (u > splat8(0.0f))); }

static inline float hmax8(v8 x) {
    float m = x[0];
    for (int l = 1; l < 8; l++) m = x[l] > m ? x[l] : m;
    return m;
}

/* e^x of 8 floats, to within about 1 ulp (0.98 at worst over every 256th float of the range), for x
 * in [-87, 88] (clamped there): e^x = 2^n e^r with n the integer nearest x / ln 2 and |r| <= ln(2) / 2;
 * e^r from its degree-6 Taylor-like polynomial (the Cephes expf coefficients), 2^n built in the
 * exponent bits. exp8(0) is exactly 1. */
static inline v8 exp8(v8 x) {
    const v8 lo = splat8(-87.0f), hi = splat8(88.0f), magic = splat8(12582912.0f); /* 1.5 * 2^23 */
    v8i below = x < lo, above = x > hi;
    x = (v8)(((v8i)x & ~below) | ((v8i)lo & below));
    x = (v8)(((v8i)x & ~above) | ((v8i)hi & above));
    v8 n = (x * splat8(1.44269504f) + magic) - magic; /* round to nearest: the magic add drops the fraction */
    v8 r = FMA8(-n, splat8(0.693359375f), x);        /* x - n ln 2, ln 2 in two parts */
    r = FMA8(-n, splat8(-2.12194440e-4f), r);
    v8 p = splat8(1.9875691500e-4f);                  /* Horner steps, one multiply-add each */
    p = FMA8(p, r, splat8(1.3981999507e-3f));
    p = FMA8(p, r, splat8(8.3334519073e-3f));
    p = FMA8(p, r, splat8(4.1665795894e-2f));
    p = FMA8(p, r, splat8(1.6666665459e-1f));
    p = FMA8(p, r, splat8(5.0000001201e-1f));
    p = FMA8(p, r * r, r) + splat8(1.0f);
    v8i pow2n = (__builtin_convertvector(n, v8i) + 127) << 23;
    return p * (v8)pow2n;
}

#endif
