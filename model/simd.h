/* model/simd.h: the one vector type of the fast kernels: 8 floats (one AVX register), written with
 * GCC vector extensions so the same code compiles everywhere. The build picks the multiply-add:
 * with -march=native on an FMA machine it is one fused instruction (one rounding); elsewhere it is a
 * multiply then an add, which gcc lowers to whatever vector unit the target has. */
#ifndef SINKTRACE_SIMD_H
#define SINKTRACE_SIMD_H

#include <string.h>

typedef float v8 __attribute__((vector_size(32)));

#if defined(__FMA__)
#include <immintrin.h>
#define FMA8(a, b, c) _mm256_fmadd_ps((a), (b), (c)) /* a * b + c, fused */
#else
#define FMA8(a, b, c) ((a) * (b) + (c))
#endif

/* loads and stores at any alignment (memcpy compiles to one unaligned vector move) */
static inline v8 load8(const float *p) {
    v8 x;
    memcpy(&x, p, sizeof x);
    return x;
}

static inline void store8(float *p, v8 x) { memcpy(p, &x, sizeof x); }

static inline v8 splat8(float s) { return (v8){s, s, s, s, s, s, s, s}; }

static inline float hsum8(v8 x) {
    return ((x[0] + x[4]) + (x[1] + x[5])) + ((x[2] + x[6]) + (x[3] + x[7]));
}

#endif
