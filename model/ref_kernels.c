/* model/ref_kernels.c: matmul, ReLU, RoPE and attention as plain loops, one output at a time: what
 * gemm.c (ReLU runs in its tiles), moe.c's RoPE and attention.c compute, written for clarity, not
 * speed, and the oracle tests/test_kernels.c checks them against. Training never calls them. */
#include "ref_kernels.h"

#include <math.h>
#include <stdlib.h>

#include "../common/util.h"

void ref_matmul_forward(float *out, const float *in, const float *w, int N, int IN, int OUT) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *x = in + (size_t)n * IN;
        float *y = out + (size_t)n * OUT;
        for (int o = 0; o < OUT; o++) {
            const float *wr = w + (size_t)o * IN;
            float s = 0.0f;
            for (int i = 0; i < IN; i++) s += x[i] * wr[i];
            y[o] = s;
        }
    }
}

/* din[n][i] += sum_o dout[n][o] w[o][i]   (din may be NULL when not needed)
 * dw[o][i]  += sum_n dout[n][o] in[n][i] */
void ref_matmul_backward(float *din, float *dw, const float *dout, const float *in, const float *w, int N, int IN,
                     int OUT) {
    if (din) {
#pragma omp parallel for schedule(static)
        for (int n = 0; n < N; n++) {
            float *dx = din + (size_t)n * IN;
            const float *dy = dout + (size_t)n * OUT;
            for (int o = 0; o < OUT; o++) {
                const float *wr = w + (size_t)o * IN;
                float g = dy[o];
                for (int i = 0; i < IN; i++) dx[i] += g * wr[i];
            }
        }
    }
#pragma omp parallel for schedule(static)
    for (int o = 0; o < OUT; o++) {
        float *dwr = dw + (size_t)o * IN;
        for (int n = 0; n < N; n++) {
            const float *x = in + (size_t)n * IN;
            float g = dout[(size_t)n * OUT + o];
            for (int i = 0; i < IN; i++) dwr[i] += g * x[i];
        }
    }
}

void ref_relu_forward(float *h, const float *u, size_t n) {
    for (size_t i = 0; i < n; i++) h[i] = u[i] > 0.0f ? u[i] : 0.0f;
}

void ref_relu_backward(float *du, const float *dh, const float *u, size_t n) {
    for (size_t i = 0; i < n; i++) du[i] = u[i] > 0.0f ? dh[i] : 0.0f;
}

void ref_rope_rotate(float *x, const float *cos_t, const float *sin_t, int N, int T, int n_heads, int D, float sign) {
    int half = D / 2;
    for (int n = 0; n < N; n++)
        for (int h = 0; h < n_heads; h++) {
            float *v = x + ((size_t)n * n_heads + h) * D;
            const float *cs = cos_t + (size_t)(n % T) * half, *sn = sin_t + (size_t)(n % T) * half;
            for (int i = 0; i < half; i++) {
                float a = v[i], b = v[i + half], s = sign * sn[i];
                v[i] = a * cs[i] - b * s;
                v[i + half] = a * s + b * cs[i];
            }
        }
}

void ref_attention_forward(float *out, float *att, const float *q, const float *k, const float *v, const float *sink,
                       int B, int T, int H, int KV, int D, int window) {
    int group = H / KV;
    float scale = 1.0f / sqrtf((float)D);
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            int kvh = h / group;
            for (int i = 0; i < T; i++) {
                const float *qi = q + (((size_t)b * T + i) * H + h) * D;
                float *a = att + (((size_t)b * H + h) * T + i) * T;
                int j0 = (window > 0 && i - window + 1 > 0) ? i - window + 1 : 0;
                float mx = sink ? sink[h] : -INFINITY;
                for (int j = j0; j <= i; j++) {
                    const float *kj = k + (((size_t)b * T + j) * KV + kvh) * D;
                    float s = 0.0f;
                    for (int d = 0; d < D; d++) s += qi[d] * kj[d];
                    a[j] = s * scale;
                    if (a[j] > mx) mx = a[j];
                }
                float sum = sink ? expf(sink[h] - mx) : 0.0f;
                for (int j = j0; j <= i; j++) {
                    a[j] = expf(a[j] - mx);
                    sum += a[j];
                }
                float inv = 1.0f / sum;
                for (int j = 0; j < T; j++) a[j] = (j >= j0 && j <= i) ? a[j] * inv : 0.0f;
                float *oi = out + (((size_t)b * T + i) * H + h) * D;
                for (int d = 0; d < D; d++) oi[d] = 0.0f;
                for (int j = j0; j <= i; j++) {
                    const float *vj = v + (((size_t)b * T + j) * KV + kvh) * D;
                    for (int d = 0; d < D; d++) oi[d] += a[j] * vj[d];
                }
            }
        }
}

/* With p = att[i][.] and dp_j = dout_i . v_j:  dv_j += p_j dout_i;
 * dscore_j = p_j (dp_j - sum_j' p_j' dp_j');  dq_i += dscore_j k_j / sqrt(D);  dk_j += dscore_j q_i / sqrt(D).
 * The sink key has value 0, so dp_sink = 0 and dsink_h += -p_sink sum_j p_j dp_j, p_sink = 1 - sum_j p_j.
 * Masked keys have p_j = 0 and so receive nothing. Split over (b, kv head): every query head sharing
 * a K/V head is handled by one iteration, so dk and dv are never written by two threads; the sink
 * gradients are summed per (b, h) and then over b in order. */
void ref_attention_backward(float *dq, float *dk, float *dv, float *dsink, const float *dout, const float *att,
                        const float *q, const float *k, const float *v, int B, int T, int H, int KV, int D) {
    int group = H / KV;
    float scale = 1.0f / sqrtf((float)D);
    float *dsink_bh = dsink ? st_calloc((size_t)B * H, sizeof(float)) : NULL;
#pragma omp parallel
    {
        float *dp = st_malloc(sizeof(float) * (size_t)T);
#pragma omp for collapse(2) schedule(static)
        for (int b = 0; b < B; b++)
            for (int kvh = 0; kvh < KV; kvh++)
                for (int h = kvh * group; h < (kvh + 1) * group; h++)
                    for (int i = 0; i < T; i++) {
                        const float *a = att + (((size_t)b * H + h) * T + i) * T;
                        const float *doi = dout + (((size_t)b * T + i) * H + h) * D;
                        const float *qi = q + (((size_t)b * T + i) * H + h) * D;
                        float *dqi = dq + (((size_t)b * T + i) * H + h) * D;
                        float pdp = 0.0f, psum = 0.0f;
                        for (int j = 0; j <= i; j++) {
                            const float *vj = v + (((size_t)b * T + j) * KV + kvh) * D;
                            float s = 0.0f;
                            for (int d = 0; d < D; d++) s += doi[d] * vj[d];
                            dp[j] = s;
                            pdp += a[j] * s;
                            psum += a[j];
                        }
                        if (dsink_bh) dsink_bh[b * H + h] -= (1.0f - psum) * pdp;
                        for (int j = 0; j <= i; j++) {
                            if (a[j] == 0.0f) continue;
                            size_t kv_off = (((size_t)b * T + j) * KV + kvh) * D;
                            float ds = a[j] * (dp[j] - pdp) * scale;
                            for (int d = 0; d < D; d++) {
                                dqi[d] += ds * k[kv_off + d];
                                dk[kv_off + d] += ds * qi[d];
                                dv[kv_off + d] += a[j] * doi[d];
                            }
                        }
                    }
        free(dp);
    }
    if (dsink_bh) {
        for (int b = 0; b < B; b++)
            for (int h = 0; h < H; h++) dsink[h] += dsink_bh[b * H + h];
        free(dsink_bh);
    }
}

static double ref_logsumexp(const float *z, int n) {
    float m = z[0];
    for (int i = 1; i < n; i++) m = z[i] > m ? z[i] : m;
    double s = 0.0;
    for (int i = 0; i < n; i++) s += exp((double)z[i] - m);
    return m + log(s);
}

static int count_targets(const int *targets, int N) {
    int count = 0;
    for (int n = 0; n < N; n++) count += targets[n] >= 0;
    return count;
}

float ref_cross_entropy_forward(const float *logits, const int *targets, int N, int V, int *n_valid) {
    double total = 0.0;
    for (int n = 0; n < N; n++)
        if (targets[n] >= 0) total += ref_logsumexp(logits + (size_t)n * V, V) - logits[(size_t)n * V + targets[n]];
    *n_valid = count_targets(targets, N);
    return *n_valid ? (float)(total / *n_valid) : 0.0f;
}

void ref_cross_entropy_backward(float *dlogits, float dloss, const float *logits, const int *targets, int N, int V) {
    int count = count_targets(targets, N);
    if (!count) return;
    double g = (double)dloss / count;
    for (int n = 0; n < N; n++) {
        if (targets[n] < 0) continue;
        const float *z = logits + (size_t)n * V;
        float *dz = dlogits + (size_t)n * V;
        double lse = ref_logsumexp(z, V);
        for (int v = 0; v < V; v++) dz[v] += (float)(g * exp(z[v] - lse));
        dz[targets[n]] -= (float)g;
    }
}
