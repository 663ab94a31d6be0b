/* tests/test_ops.c: every operation's backward against central finite differences of its forward.
 * Each test builds a scalar loss = sum(out * R) with a fixed random R, so d loss / d out = R is fed to
 * the backward, and compares the analytic gradient of every input with (L(x+eps) - L(x-eps)) / 2eps.
 * The check is on the whole gradient vector: ||fd - analytic|| <= 1e-2 ||fd||; a wrong sign, a missing
 * term or a transposed index is off by O(1) of that norm. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../common/util.h"
#include "../model/moe.h"
#include "../model/ref_kernels.h"

static StRng rng;

static float *randn(size_t n, float std) {
    float *x = st_malloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++) x[i] = (float)(std * st_rng_normal(&rng));
    return x;
}

static double dot(const float *a, const float *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

/* A loss closure: recomputes the forward from the current inputs and returns sum(out * R). */
typedef double (*LossFn)(void *ctx);

/* compares analytic[i] with the central difference of f in x[i] for every i */
static void check_grad(const char *what, float *x, size_t n, const float *analytic, LossFn f, void *ctx, float eps) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        float saved = x[i];
        x[i] = saved + eps;
        double lp = f(ctx);
        x[i] = saved - eps;
        double lm = f(ctx);
        x[i] = saved;
        double fd = (lp - lm) / (2.0 * eps);
        num += (fd - analytic[i]) * (fd - analytic[i]);
        den += fd * fd;
    }
    double rel = sqrt(num) / (sqrt(den) + 1e-12);
    print_message("  %-28s |grad| %.3e  rel.err %.2e\n", what, sqrt(den), rel);
    assert_true(sqrt(den) > 1e-6); /* a vanishing gradient would make the check vacuous */
    assert_true(rel < 1e-2);
}

/* ---------------------------------------------------------------------------------------------- */
typedef struct {
    int N, C, V;
    int *tokens;
    float *wte, *out, *R;
} EmbedCtx;

static double embed_loss(void *p) {
    EmbedCtx *c = p;
    embed_forward(c->out, c->tokens, c->wte, c->N, c->C);
    return dot(c->out, c->R, (size_t)c->N * c->C);
}

static void test_embedding(void **state) {
    (void)state;
    EmbedCtx c = {.N = 7, .C = 5, .V = 4};
    int tokens[7] = {0, 3, 3, 1, 0, 3, 2};
    c.tokens = tokens;
    c.wte = randn(20, 1), c.out = randn(35, 1), c.R = randn(35, 1);
    float *dwte = calloc(20, sizeof(float));
    embed_backward(dwte, c.R, tokens, c.N, c.C, c.V);
    check_grad("embedding wte", c.wte, 20, dwte, embed_loss, &c, 1e-2f);
    free(c.wte), free(c.out), free(c.R), free(dwte);
}

/* ---------------------------------------------------------------------------------------------- */
typedef struct {
    int N, C;
    float *in, *gain, *bias, *out, *rstd, *R; /* bias NULL: RMSNorm */
} NormCtx;

static double norm_loss(void *p) {
    NormCtx *c = p;
    norm_forward(c->out, c->rstd, c->in, c->gain, c->bias, c->N, c->C, 1e-5f);
    return dot(c->out, c->R, (size_t)c->N * c->C);
}

/* RMSNorm and LayerNorm against finite differences, every input */
static void norm_case(int layer) {
    NormCtx c = {.N = 4, .C = 6};
    size_t n = 24;
    c.in = randn(n, 1), c.gain = randn(6, 1), c.out = randn(n, 1), c.rstd = randn(4, 1), c.R = randn(n, 1);
    c.bias = layer ? randn(6, 3) : NULL;
    float *din = calloc(n, sizeof(float)), *dgain = calloc(6, sizeof(float));
    float *dbias = layer ? calloc(6, sizeof(float)) : NULL;
    norm_loss(&c);
    norm_backward(din, dgain, dbias, c.R, c.in, c.gain, c.rstd, c.N, c.C);
    check_grad(layer ? "layernorm input" : "rmsnorm input", c.in, n, din, norm_loss, &c, 1e-3f);
    check_grad(layer ? "layernorm gain" : "rmsnorm gain", c.gain, 6, dgain, norm_loss, &c, 1e-3f);
    if (layer) check_grad("layernorm bias", c.bias, 6, dbias, norm_loss, &c, 1e-3f);
    free(c.in), free(c.gain), free(c.bias), free(c.out), free(c.rstd), free(c.R), free(din), free(dgain), free(dbias);
}

static void test_rmsnorm(void **state) {
    (void)state;
    norm_case(0);
}

/* LayerNorm of (1, 2, 3, 6): mean 3, variance 3.5, so (x - 3) / sqrt(3.5) * gain + bias; RMSNorm of the
 * same row would not centre it */
static void test_layernorm(void **state) {
    (void)state;
    norm_case(1);
    float x[4] = {1, 2, 3, 6}, gain[4] = {1, 2, 1, 1}, bias[4] = {0, 0, 0, 10}, y[4], rstd;
    norm_forward(y, &rstd, x, gain, bias, 1, 4, 0.0f);
    const float sd = sqrtf(3.5f);
    assert_float_equal(rstd, 1.0f / sd, 1e-6f);
    assert_float_equal(y[0], -2.0f / sd, 1e-6f);
    assert_float_equal(y[1], -2.0f / sd, 1e-6f);
    assert_float_equal(y[2], 0.0f, 1e-6f);
    assert_float_equal(y[3], 3.0f / sd + 10.0f, 1e-5f);
}

/* ---------------------------------------------------------------------------------------------- */
typedef struct {
    int N, IN, OUT;
    float *in, *w, *out, *R;
} MatmulCtx;

static double matmul_loss(void *p) {
    MatmulCtx *c = p;
    matmul_forward(c->out, c->in, c->w, c->N, c->IN, c->OUT);
    return dot(c->out, c->R, (size_t)c->N * c->OUT);
}

static void test_matmul(void **state) {
    (void)state;
    MatmulCtx c = {.N = 5, .IN = 7, .OUT = 3}; /* non-square, so a transposed index cannot pass */
    c.in = randn(35, 1), c.w = randn(21, 1), c.out = randn(15, 1), c.R = randn(15, 1);
    float *din = calloc(35, sizeof(float)), *dw = calloc(21, sizeof(float));
    matmul_backward(din, dw, c.R, c.in, c.w, c.N, c.IN, c.OUT);
    check_grad("matmul input", c.in, 35, din, matmul_loss, &c, 1e-2f);
    check_grad("matmul weight", c.w, 21, dw, matmul_loss, &c, 1e-2f);
    free(c.in), free(c.w), free(c.out), free(c.R), free(din), free(dw);
}

/* ---------------------------------------------------------------------------------------------- */
/* RoPE alone, and the QK path: RoPE(RMSNorm over each head's D channels) of x [N][H][D] */
typedef struct {
    int N, T, H, D, norm;
    float *x, *gain, *normed, *rstd, *out, *R, *cos_t, *sin_t;
} RopeCtx;

static double rope_loss(void *p) {
    RopeCtx *c = p;
    size_t n = (size_t)c->N * c->H * c->D;
    if (c->norm) norm_forward(c->out, c->rstd, c->x, c->gain, NULL, c->N * c->H, c->D, 1e-5f);
    else memcpy(c->out, c->x, sizeof(float) * n);
    rope_forward(c->out, c->cos_t, c->sin_t, c->N, c->T, c->H, c->D);
    return dot(c->out, c->R, n);
}

static void rope_case(int norm) {
    RopeCtx c = {.N = 6, .T = 3, .H = 2, .D = 8, .norm = norm};
    size_t n = 96;
    c.x = randn(n, 1), c.gain = randn(8, 1), c.out = randn(n, 1), c.rstd = randn(12, 1), c.R = randn(n, 1);
    c.cos_t = randn(12, 1), c.sin_t = randn(12, 1);
    rope_table(c.cos_t, c.sin_t, c.T, c.D, 100.0f, 0);
    rope_loss(&c);
    /* backward: rotate R back, then through the norm */
    float *dr = malloc(sizeof(float) * n), *dx = calloc(n, sizeof(float)), *dgain = calloc(8, sizeof(float));
    memcpy(dr, c.R, sizeof(float) * n);
    rope_backward(dr, c.cos_t, c.sin_t, c.N, c.T, c.H, c.D);
    if (norm) norm_backward(dx, dgain, NULL, dr, c.x, c.gain, c.rstd, c.N * c.H, c.D);
    else memcpy(dx, dr, sizeof(float) * n);
    check_grad(norm ? "qk-norm + rope input" : "rope input", c.x, n, dx, rope_loss, &c, 1e-3f);
    if (norm) check_grad("qk-norm gain", c.gain, 8, dgain, rope_loss, &c, 1e-3f);
    free(c.x), free(c.gain), free(c.out), free(c.rstd), free(c.R), free(c.cos_t), free(c.sin_t);
    free(dr), free(dx), free(dgain);
}

static void test_rope(void **state) {
    (void)state;
    rope_case(0);
}

static void test_qk_norm(void **state) {
    (void)state;
    rope_case(1);
}

static void test_rope_leaves_position_zero_unchanged(void **state) {
    (void)state;
    int T = 5, H = 2, D = 6;
    float *x = randn((size_t)2 * T * H * D, 1), *orig = malloc(sizeof(float) * 2 * T * H * D);
    float cos_t[15], sin_t[15];
    memcpy(orig, x, sizeof(float) * 2 * T * H * D);
    rope_table(cos_t, sin_t, T, D, 10000.0f, 0);
    rope_forward(x, cos_t, sin_t, 2 * T, T, H, D);
    for (int b = 0; b < 2; b++) /* row b*T is position 0 of sequence b: bit-identical */
        assert_memory_equal(x + (size_t)b * T * H * D, orig + (size_t)b * T * H * D, sizeof(float) * H * D);
    assert_memory_not_equal(x + H * D, orig + H * D, sizeof(float) * H * D); /* position 1 does rotate */
    free(x), free(orig);
}

/* ---------------------------------------------------------------------------------------------- */
typedef struct {
    int B, T, H, KV, D, window;
    float *q, *k, *v, *sink, *out, *lse, *att, *R;
} AttnCtx;

static double attn_loss(void *p) {
    AttnCtx *c = p;
    attention_forward(c->out, c->lse, c->q, c->k, c->v, c->sink, c->B, c->T, c->H, c->KV, c->D, c->window);
    attention_probs(c->att, c->lse, c->q, c->k, c->B, c->T, c->H, c->KV, c->D, c->window);
    return dot(c->out, c->R, (size_t)c->B * c->T * c->H * c->D);
}

static void attention_case(int H, int KV, int window, int with_sink) {
    AttnCtx c = {.B = 2, .T = 5, .H = H, .KV = KV, .D = 4, .window = window};
    float *dsink = NULL;
    if (with_sink) c.sink = randn((size_t)H, 1), dsink = calloc((size_t)H, sizeof(float));
    size_t nq = (size_t)c.B * c.T * H * c.D, nk = (size_t)c.B * c.T * KV * c.D;
    c.q = randn(nq, 1), c.k = randn(nk, 1), c.v = randn(nk, 1), c.out = randn(nq, 1), c.R = randn(nq, 1);
    c.att = randn((size_t)c.B * H * c.T * c.T, 1), c.lse = randn((size_t)c.B * H * c.T, 1);
    attn_loss(&c);
    float *dq = randn(nq, 1), *dk = randn(nk, 1), *dv = randn(nk, 1); /* written, not added to */
    attention_backward(dq, dk, dv, dsink, c.R, c.out, c.lse, c.q, c.k, c.v, c.sink, c.B, c.T, H, KV, c.D, window);
    check_grad("attention q", c.q, nq, dq, attn_loss, &c, 1e-3f);
    if (with_sink) check_grad("attention sink logit", c.sink, (size_t)H, dsink, attn_loss, &c, 1e-3f);
    check_grad("attention k", c.k, nk, dk, attn_loss, &c, 1e-3f);
    check_grad("attention v", c.v, nk, dv, attn_loss, &c, 1e-3f);
    /* probabilities: rows sum to 1, nothing above the diagonal or outside the window */
    for (int b = 0; b < c.B; b++)
        for (int h = 0; h < H; h++)
            for (int i = 0; i < c.T; i++) {
                const float *a = c.att + (((size_t)b * H + h) * c.T + i) * c.T;
                double s = 0;
                for (int j = 0; j < c.T; j++) {
                    int visible = j <= i && (window <= 0 || i - j < window);
                    if (!visible) assert_true(a[j] == 0.0f);
                    s += a[j];
                }
                if (with_sink) assert_true(s < 1 - 1e-3); /* the sink key takes a share */
                else assert_true(fabs(s - 1) < 1e-5);
            }
    free(c.q), free(c.k), free(c.v), free(c.out), free(c.R), free(c.att), free(c.lse), free(dq), free(dk), free(dv);
    free(c.sink), free(dsink);
}

static void test_attention(void **state) {
    (void)state;
    attention_case(2, 2, 0, 0);
}

static void test_attention_grouped_kv(void **state) {
    (void)state;
    attention_case(4, 2, 0, 0);
}

static void test_attention_sliding_window(void **state) {
    (void)state;
    attention_case(2, 1, 2, 0);
}

static void test_attention_sink_logit(void **state) {
    (void)state;
    attention_case(4, 2, 0, 1);
}

/* ---------------------------------------------------------------------------------------------- */
typedef struct {
    size_t n;
    float *y, *z, *out, *R;
} GateCtx;

static double gate_loss(void *p) {
    GateCtx *c = p;
    gate_forward(c->out, c->y, c->z, c->n);
    return dot(c->out, c->R, c->n);
}

static void test_sigmoid_gate(void **state) {
    (void)state;
    GateCtx c = {.n = 12};
    c.y = randn(12, 1), c.z = randn(12, 2), c.out = randn(12, 1), c.R = randn(12, 1);
    float *dy = calloc(12, sizeof(float)), *dz = calloc(12, sizeof(float));
    gate_backward(dy, dz, c.R, c.y, c.z, c.n);
    check_grad("gate input", c.y, 12, dy, gate_loss, &c, 1e-3f);
    check_grad("gate logits", c.z, 12, dz, gate_loss, &c, 1e-3f);
    free(c.y), free(c.z), free(c.out), free(c.R), free(dy), free(dz);
}

/* ---------------------------------------------------------------------------------------------- */
typedef struct {
    int N, E;
    float *z, *p, *R;
} SoftmaxCtx;

static double softmax_loss(void *p) {
    SoftmaxCtx *c = p;
    softmax_forward(c->p, c->z, c->N, c->E);
    return dot(c->p, c->R, (size_t)c->N * c->E);
}

static void test_softmax(void **state) {
    (void)state;
    SoftmaxCtx c = {.N = 3, .E = 5};
    c.z = randn(15, 2), c.p = randn(15, 1), c.R = randn(15, 1);
    c.z[0] = 80.0f; /* large logits must not overflow: the max is subtracted */
    softmax_loss(&c);
    assert_true(isfinite(c.p[0]) && fabsf(c.p[0] - 1.0f) < 1e-6f);
    c.z[0] = 0.3f;
    softmax_loss(&c);
    float *dz = calloc(15, sizeof(float));
    softmax_backward(dz, c.R, c.p, c.N, c.E);
    check_grad("softmax logits", c.z, 15, dz, softmax_loss, &c, 1e-3f);
    free(c.z), free(c.p), free(c.R), free(dz);
}

/* ---------------------------------------------------------------------------------------------- */
/* the router: probabilities = softmax(logits), top-k, optional renormalisation; loss = sum(w * R) */
typedef struct {
    int N, E, k, norm;
    float *z, *p, *w, *R;
    int *idx;
} RouterCtx;

static double router_loss(void *p) {
    RouterCtx *c = p;
    softmax_forward(c->p, c->z, c->N, c->E);
    topk_forward(c->idx, c->w, c->p, c->N, c->E, c->k, c->norm);
    return dot(c->w, c->R, (size_t)c->N * c->k);
}

static void router_case(int k, int norm) {
    RouterCtx c = {.N = 6, .E = 5, .k = k, .norm = norm};
    c.z = randn(30, 1.5f), c.p = randn(30, 1), c.w = randn(30, 1), c.R = randn(30, 1);
    c.idx = calloc(30, sizeof(int));
    router_loss(&c);
    int *idx0 = malloc(sizeof(int) * 30);
    memcpy(idx0, c.idx, sizeof(int) * (size_t)c.N * k);
    float *dp = calloc(30, sizeof(float)), *dz = calloc(30, sizeof(float));
    topk_backward(dp, c.R, c.p, c.idx, c.w, c.N, c.E, k, norm);
    softmax_backward(dz, dp, c.p, c.N, c.E);
    check_grad(norm ? "router top-k renormalised" : "router top-k", c.z, 30, dz, router_loss, &c, 1e-3f);
    router_loss(&c);
    assert_memory_equal(idx0, c.idx, sizeof(int) * (size_t)c.N * k); /* eps never flipped a choice */
    free(c.z), free(c.p), free(c.w), free(c.R), free(c.idx), free(idx0), free(dp), free(dz);
}

static void test_router_topk(void **state) {
    (void)state;
    router_case(1, 0);
    router_case(2, 0);
    router_case(2, 1);
    router_case(3, 1);
}

static void test_topk_order_and_ties(void **state) {
    (void)state;
    float p[5] = {0.1f, 0.3f, 0.1f, 0.3f, 0.2f};
    int idx[3];
    float w[3];
    topk_forward(idx, w, p, 1, 5, 3, 0);
    assert_int_equal(idx[0], 1); /* the tie 0.3/0.3 goes to the lower index first */
    assert_int_equal(idx[1], 3);
    assert_int_equal(idx[2], 4);
    topk_forward(idx, w, p, 1, 5, 2, 1);
    assert_true(fabsf(w[0] - 0.5f) < 1e-7f && fabsf(w[1] - 0.5f) < 1e-7f);
}

/* ---------------------------------------------------------------------------------------------- */
typedef struct {
    size_t n;
    float *g, *u, *h, *R;
} SwigluCtx;

static double swiglu_loss(void *p) {
    SwigluCtx *c = p;
    swiglu_forward(c->h, c->g, c->u, c->n);
    return dot(c->h, c->R, c->n);
}

static void test_swiglu(void **state) {
    (void)state;
    SwigluCtx c = {.n = 20};
    c.g = randn(20, 2), c.u = randn(20, 1), c.h = randn(20, 1), c.R = randn(20, 1);
    float *dg = malloc(20 * sizeof(float)), *du = malloc(20 * sizeof(float));
    for (int i = 0; i < 20; i++) dg[i] = du[i] = 1e3f; /* written, not added to: what was there is gone */
    swiglu_backward(dg, du, c.R, c.g, c.u, c.n);
    check_grad("swiglu gate", c.g, 20, dg, swiglu_loss, &c, 1e-3f);
    check_grad("swiglu up", c.u, 20, du, swiglu_loss, &c, 1e-3f);
    free(c.g), free(c.u), free(c.h), free(c.R), free(dg), free(du);
}

/* ReLU (the plain version; training runs it inside the GEMM, checked against this in test_kernels):
 * max(u, 0), its gradient dh where u > 0 (written over what was there); u is kept away from 0,
 * where the kink would spoil the finite difference */
static double relu_loss(void *p) {
    SwigluCtx *c = p;
    ref_relu_forward(c->h, c->u, c->n);
    return dot(c->h, c->R, c->n);
}

static void test_relu(void **state) {
    (void)state;
    SwigluCtx c = {.n = 20};
    c.u = randn(20, 1), c.h = randn(20, 1), c.R = randn(20, 1);
    for (int i = 0; i < 20; i++) c.u[i] += c.u[i] > 0 ? 0.1f : -0.1f;
    float *du = malloc(20 * sizeof(float));
    for (int i = 0; i < 20; i++) du[i] = 1e3f;
    relu_loss(&c);
    for (int i = 0; i < 20; i++) assert_true(c.h[i] == (c.u[i] > 0 ? c.u[i] : 0.0f));
    ref_relu_backward(du, c.R, c.u, c.n);
    check_grad("relu", c.u, 20, du, relu_loss, &c, 1e-3f);
    free(c.u), free(c.h), free(c.R), free(du);
}

/* ---------------------------------------------------------------------------------------------- */
typedef struct {
    int N, E, k;
    float *p, *z;
    int *idx;
    double f[4]; /* routing shares of idx */
} AuxCtx;

static double aux_loss(void *p) {
    AuxCtx *c = p;
    return aux_loss_forward(c->p, c->f, c->N, c->E);
}

static double zl_loss(void *p) {
    AuxCtx *c = p;
    return z_loss_forward(c->z, c->N, c->E);
}

static void test_aux_and_z_loss(void **state) {
    (void)state;
    AuxCtx c = {.N = 6, .E = 4, .k = 2};
    c.z = randn(24, 1), c.p = randn(24, 1), c.idx = calloc(12, sizeof(int));
    float w[12];
    softmax_forward(c.p, c.z, c.N, c.E);
    topk_forward(c.idx, w, c.p, c.N, c.E, c.k, 1);
    routing_counts(c.f, c.idx, c.N, c.E, c.k);
    routing_shares(c.f, c.E);
    double share_sum = 0;
    for (int e = 0; e < c.E; e++) share_sum += c.f[e];
    assert_true(fabs(share_sum - 1.0) < 1e-12);
    float *dp = calloc(24, sizeof(float)), *dz = calloc(24, sizeof(float));
    aux_loss_backward(dp, 1.0f, c.f, c.N, c.E);
    check_grad("aux loss probs", c.p, 24, dp, aux_loss, &c, 1e-3f);
    z_loss_backward(dz, 1.0f, c.z, c.N, c.E);
    check_grad("z-loss logits", c.z, 24, dz, zl_loss, &c, 1e-3f);
    /* a perfectly balanced router scores exactly 1: uniform probabilities, every expert chosen equally */
    float pu[8] = {0.25f, 0.25f, 0.25f, 0.25f, 0.25f, 0.25f, 0.25f, 0.25f};
    int iu[4] = {0, 1, 2, 3};
    double fu[4];
    routing_counts(fu, iu, 2, 4, 2);
    routing_shares(fu, 4);
    assert_true(fabsf(aux_loss_forward(pu, fu, 2, 4) - 1.0f) < 1e-6f);
    /* counts summed over two replicas (as data parallelism does) give the whole batch's shares */
    int half_a[2] = {0, 0}, half_b[2] = {1, 2};
    double ca[4], cb[4];
    routing_counts(ca, half_a, 2, 4, 1), routing_counts(cb, half_b, 2, 4, 1);
    for (int e = 0; e < 4; e++) ca[e] += cb[e];
    routing_shares(ca, 4);
    assert_true(ca[0] == 0.5 && ca[1] == 0.25 && ca[2] == 0.25 && ca[3] == 0.0);
    /* z-loss of equal logits 0: lse = log E */
    float z0[4] = {0, 0, 0, 0};
    assert_true(fabsf(z_loss_forward(z0, 1, 4) - logf(4.0f) * logf(4.0f)) < 1e-6f);
    free(c.z), free(c.p), free(c.idx), free(dp), free(dz);
}

/* ---------------------------------------------------------------------------------------------- */
typedef struct {
    int N, V;
    float *z;
    int *t;
} CeCtx;

static double ce_loss(void *p) {
    CeCtx *c = p;
    int n;
    return ref_cross_entropy_forward(c->z, c->t, c->N, c->V, &n);
}

static void test_cross_entropy(void **state) {
    (void)state;
    int t[5] = {2, -1, 0, 6, 6};
    CeCtx c = {.N = 5, .V = 7, .t = t};
    c.z = randn(35, 2);
    float *dz = calloc(35, sizeof(float));
    int n;
    ref_cross_entropy_forward(c.z, t, 5, 7, &n);
    assert_int_equal(n, 4); /* the -1 target is ignored */
    ref_cross_entropy_backward(dz, 1.0f, c.z, t, 5, 7);
    check_grad("cross-entropy logits", c.z, 35, dz, ce_loss, &c, 1e-3f);
    for (int v = 0; v < 7; v++) assert_true(dz[7 + v] == 0.0f); /* the ignored row gets no gradient */
    /* uniform logits: loss = log V exactly */
    float zu[14] = {0};
    int tu[2] = {1, 3};
    assert_true(fabsf(ref_cross_entropy_forward(zu, tu, 2, 7, &n) - logf(7.0f)) < 1e-6f);
    free(c.z), free(dz);
}

int main(void) {
    st_rng_seed(&rng, 12345);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_embedding),
        cmocka_unit_test(test_rmsnorm),
        cmocka_unit_test(test_layernorm),
        cmocka_unit_test(test_matmul),
        cmocka_unit_test(test_rope),
        cmocka_unit_test(test_qk_norm),
        cmocka_unit_test(test_rope_leaves_position_zero_unchanged),
        cmocka_unit_test(test_attention),
        cmocka_unit_test(test_attention_grouped_kv),
        cmocka_unit_test(test_attention_sliding_window),
        cmocka_unit_test(test_attention_sink_logit),
        cmocka_unit_test(test_sigmoid_gate),
        cmocka_unit_test(test_softmax),
        cmocka_unit_test(test_router_topk),
        cmocka_unit_test(test_topk_order_and_ties),
        cmocka_unit_test(test_swiglu),
        cmocka_unit_test(test_relu),
        cmocka_unit_test(test_aux_and_z_loss),
        cmocka_unit_test(test_cross_entropy),
    };
    return cmocka_run_group_tests_name("ops", tests, NULL, NULL);
}
