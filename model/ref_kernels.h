/* model/ref_kernels.h: the plain, obviously-correct versions of the fast kernels of gemm.c,
 * attention.c and moe.c's RoPE. They are the tests' oracle: tests/test_kernels.c checks every fast
 * kernel against its reference on shapes that hit every edge of the tiling. Same shapes and
 * conventions as moe.h. */
#ifndef SINKTRACE_REF_KERNELS_H
#define SINKTRACE_REF_KERNELS_H

#include <stddef.h>

/* out[n][o] = sum_i in[n][i] * w[o][i] */
void ref_matmul_forward(float *out, const float *in, const float *w, int N, int IN, int OUT);
/* din[n][i] += sum_o dout[n][o] w[o][i] (din may be NULL);  dw[o][i] += sum_n dout[n][o] in[n][i] */
void ref_matmul_backward(float *din, float *dw, const float *dout, const float *in, const float *w, int N, int IN,
                         int OUT);

/* ReLU: h = max(u, 0); du = dh where u > 0, else 0 (written, not added) */
void ref_relu_forward(float *h, const float *u, size_t n);
void ref_relu_backward(float *du, const float *dh, const float *u, size_t n);

/* RoPE: rotates the pairs (x[i], x[i + D/2]) of every head of x [N][n_heads][D] in place by the
 * angles of its position n % T (cos_t, sin_t [T][D/2]), sign = +1 forward, -1 backward */
void ref_rope_rotate(float *x, const float *cos_t, const float *sin_t, int N, int T, int n_heads, int D, float sign);

/* causal softmax attention with the probabilities materialised: att [B][H][T][T] (zeros where masked),
 * out [B][T][H][D]; q [B][T][H][D], k, v [B][T][KV][D]; window > 0 limits keys to i - j < window;
 * sink [H] or NULL: a logit per head for an extra key of value zero */
void ref_attention_forward(float *out, float *att, const float *q, const float *k, const float *v,
                           const float *sink, int B, int T, int H, int KV, int D, int window);
/* adds the gradients of q, k, v (and of the sink logits into dsink, if not NULL) given dout and att */
void ref_attention_backward(float *dq, float *dk, float *dv, float *dsink, const float *dout, const float *att,
                            const float *q, const float *k, const float *v, int B, int T, int H, int KV, int D);

/* mean cross-entropy over rows with target >= 0 of the whole logits buffer [N][V]; returns it and the
 * count of such rows in n_valid */
float ref_cross_entropy_forward(const float *logits, const int *targets, int N, int V, int *n_valid);
/* dlogits[n] += dloss (softmax(logits[n]) - onehot(target)) / n_valid, rows with target < 0 untouched */
void ref_cross_entropy_backward(float *dlogits, float dloss, const float *logits, const int *targets, int N, int V);

#endif
