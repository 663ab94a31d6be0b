/* model/kernels.h: the fast engine behind matmul and attention, shared inside model/.
 *
 *   gemm.c         a blocked, vectorised GEMM: every product of a linear layer (and of the MoE
 *                  experts, the LM head, attention's strips) runs on its register tiles
 *   attention.c    causal attention fused over strips of query rows: no T x T matrix is held
 *   ref_kernels.c  the plain versions of both, one output at a time: what they compute, and the
 *                  oracle tests/test_kernels.c checks them against
 *
 * matmul_forward/backward and attention_forward/backward/probs are declared in moe.h with the other
 * operations; this header is what moe.c and attention.c need beyond them. Shapes and conventions as
 * in moe.h. */
#ifndef SINKTRACE_KERNELS_H
#define SINKTRACE_KERNELS_H

#include <stddef.h>

#include "../common/util.h"
#include "simd.h"

/* the register tile of C: MR rows x NR columns, 6 x 16 with AVX2's 16 vector registers */
#if defined(__AVX512VL__) /* 32 vector registers: 24 accumulators, 4 loads of B and a broadcast fit */
enum { NR = 32 };
#else
enum { NR = 16 };
#endif
enum { MR = 6 };

/* one product C [M][N] (row stride ldc) = A B, or += A B when accumulate, with
 * A(m, k) = a[m * sam + k * sak] and B(k, n) = b[k * sbk + n * sbn]: a transpose is only a change
 * of strides. With relu_mask (row stride ldc, like C), each finished tile of C is zeroed wherever
 * relu_mask <= 0 while it is still in cache: ReLU's forward with relu_mask = c (C = max(A B, 0)) and
 * its backward with relu_mask = h = max(u, 0) (du = dh where u > 0), neither a pass of its own. */
typedef struct {
    float *c;
    size_t ldc;
    const float *a;
    size_t sam, sak;
    const float *b;
    size_t sbk, sbn;
    int M, N, K, accumulate;
    const float *relu_mask;
} Gemm;

/* the three products of a linear layer (in [N][IN], w [OUT][IN], out [N][OUT]):
 *   forward   out  = in w^T      A = in [N][IN]                    B(k, n) = w[n][k]
 *   backward  din += dout w      A = dout [N][OUT]                 B = w [OUT][IN]
 *             dw  += dout^T in   A(m, k) = dout[k][m]              B = in [N][IN] */
static inline Gemm linear_forward(float *out, const float *in, const float *w, int N, int IN, int OUT) {
    return (Gemm){out, (size_t)OUT, in, (size_t)IN, 1, w, 1, (size_t)IN, N, OUT, IN, 0, NULL};
}

static inline Gemm linear_din(float *din, const float *dout, const float *w, int N, int IN, int OUT) {
    return (Gemm){din, (size_t)IN, dout, (size_t)OUT, 1, w, (size_t)IN, 1, N, IN, OUT, 1, NULL};
}

static inline Gemm linear_dw(float *dw, const float *dout, const float *in, int N, int IN, int OUT) {
    return (Gemm){dw, (size_t)IN, dout, 1, (size_t)OUT, in, (size_t)IN, 1, OUT, IN, N, 1, NULL};
}

/* runs n products, no two of which write the same C, in one parallel pass (call it from one thread,
 * outside any parallel region: the packed panels are kept between calls) */
void gemm_batch(const Gemm *g, int n);

/* one register tile: c[r][j] (+)= sum_{k < kc} A(r, k) B(k, j) for r < rows <= MR, j < cols <= NR,
 * A(r, k) = a[r * rs + k * ks] (all MR rows are read: the caller pads them), B(k, j) = b[k * ldb + j]
 * (8 * ceil(cols / 8) columns are read). relu_mask: NULL, or the tile's ReLU mask (Gemm.relu_mask,
 * rows ldc floats apart; given only when this tile finishes C's sum): each stored value is zeroed
 * where the mask is <= 0, the mask being the stored value itself when relu_mask == c. */
void micro_kernel(int kc, const float *a, size_t rs, size_t ks, const float *b, size_t ldb, float *c, size_t ldc,
                  int rows, int cols, int accumulate, const float *relu_mask);

/* y[c][i] = x[i][c] for an 8 x 8 block: rows of x are xs floats apart, rows of y ys apart */
void transpose8x8(float *y, size_t ys, const float *x, size_t xs);

/* a zeroed buffer of n floats */
static inline float *fbuf(size_t n) { return st_calloc(n, sizeof(float)); }

/* sum over c < n of x[c] y[c] (z[c]): 8 partial sums side by side (one long chain of adds would wait
 * on each add's latency), then added in a fixed order. z may be NULL. */
static inline float sum_of_products(const float *x, const float *y, const float *z, int n) {
    v8 acc = splat8(0.0f);
    for (int c = 0; c < n; c += 8) {
        size_t m = n - c < 8 ? (size_t)(n - c) : 8;
        v8 t = load_part(x + c, m) * load_part(y + c, m);
        acc += z ? t * load_part(z + c, m) : t;
    }
    return hsum8(acc);
}

#endif
