/* tests/test_kernels.c: every fast kernel of model/ (gemm.c, attention.c) against its plain reference
 * in model/ref_kernels.c, on shapes that hit every edge of the tiling (sizes below, at and past the
 * 6 x 16 register tile (6 x 32 with AVX-512), last column panels of every width, and the 256-long
 * k block; T = 1; query rows past one 48-row attention backward block; windows that start mid-block;
 * head sizes not a multiple of 8 and wider than a register tile), and the MoE block
 * on batches that leave experts with no token and with exactly one. Also: results do not depend on
 * the thread count, and a row's result does not depend on the other rows. Comparisons are on whole arrays:
 * ||fast - ref|| <= 1e-5 ||ref|| (a wrong index or a missing term is off by O(1) of the norm). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "../common/util.h"
#include "../model/kernels.h"
#include "../model/moe.h"
#include "../model/ref_kernels.h"

static StRng rng;

static float *randn(size_t n) {
    float *x = st_malloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++) x[i] = (float)st_rng_normal(&rng);
    return x;
}

static float *copy_of(const float *x, size_t n) {
    float *y = st_malloc(sizeof(float) * n);
    memcpy(y, x, sizeof(float) * n);
    return y;
}

static void assert_close(const char *what, const float *fast, const float *ref, size_t n, double tol) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        num += ((double)fast[i] - ref[i]) * ((double)fast[i] - ref[i]);
        den += (double)ref[i] * ref[i];
    }
    double rel = sqrt(num) / (sqrt(den) + 1e-30);
    if (!(rel <= tol)) print_message("  %s: relative error %.3e > %.1e\n", what, rel, tol);
    assert_true(den > 0);
    assert_true(rel <= tol);
}

/* ---------------------------------------------------------------------------------------------- */
/* matmul: forward, and both backward products added into non-zero gradients */

static void matmul_case(int N, int IN, int OUT) {
    size_t ni = (size_t)N * IN, nw = (size_t)OUT * IN, no = (size_t)N * OUT;
    float *in = randn(ni), *w = randn(nw), *dout = randn(no);
    float *out = randn(no), *out_ref = randn(no);
    matmul_forward(out, in, w, N, IN, OUT);
    ref_matmul_forward(out_ref, in, w, N, IN, OUT);
    assert_close("matmul forward", out, out_ref, no, 1e-5);
    float *din = randn(ni), *dw = randn(nw), *din_ref = copy_of(din, ni), *dw_ref = copy_of(dw, nw);
    matmul_backward(din, dw, dout, in, w, N, IN, OUT);
    ref_matmul_backward(din_ref, dw_ref, dout, in, w, N, IN, OUT);
    assert_close("matmul din", din, din_ref, ni, 1e-5);
    assert_close("matmul dw", dw, dw_ref, nw, 1e-5);
    float *dw2 = copy_of(dw_ref, nw); /* din = NULL: only dw */
    matmul_backward(NULL, dw2, dout, in, w, N, IN, OUT);
    ref_matmul_backward(NULL, dw_ref, dout, in, w, N, IN, OUT);
    assert_close("matmul dw (no din)", dw2, dw_ref, nw, 1e-5);
    free(in), free(w), free(dout), free(out), free(out_ref), free(din), free(dw), free(din_ref), free(dw_ref);
    free(dw2);
}

static void test_matmul_matches_reference(void **state) {
    (void)state;
    const int shapes[][3] = {
        {1, 1, 1},      {5, 7, 3},     {6, 16, 16},   {7, 17, 15},  {13, 9, 33},  /* below, at, around a tile */
        {12, 32, 32},   {7, 31, 31},                                 /* at and below a 32-wide tile */
        {48, 64, 64},   {49, 65, 65},  {97, 128, 257},               /* one macro tile, just past it, lm head */
        {300, 5, 64},   {70, 300, 40}, {513, 40, 48},                /* N and IN past the 256-long k block */
        {2100, 20, 13}, {4096, 7, 70},                               /* dw's rows split into 1024-row chunks */
        {11, 19, 56},   {8, 24, 20},                                 /* last panels 24 and 20 columns wide */
    };
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) matmul_case(shapes[s][0], shapes[s][1], shapes[s][2]);
}

/* each output row depends on its input row only (bit for bit), and on no thread count */
static void test_matmul_rows_and_threads_independent(void **state) {
    (void)state;
    int N = 2100, IN = 300, OUT = 70; /* dw's sum over N rows is split into chunks */
    float *in = randn((size_t)N * IN), *w = randn((size_t)OUT * IN), *dout = randn((size_t)N * OUT);
    float *full = st_malloc(sizeof(float) * N * OUT), *part = st_malloc(sizeof(float) * N * OUT);
    matmul_forward(full, in, w, N, IN, OUT);
    matmul_forward(part, in + 37 * IN, w, 11, IN, OUT); /* rows 37..47 alone, at another tile position */
    assert_memory_equal(part, full + 37 * OUT, sizeof(float) * 11 * OUT);
    int threads = omp_get_max_threads();
    float *dw1 = st_calloc((size_t)OUT * IN, sizeof(float)), *dw3 = st_calloc((size_t)OUT * IN, sizeof(float));
    float *din1 = st_calloc((size_t)N * IN, sizeof(float)), *din3 = st_calloc((size_t)N * IN, sizeof(float));
    omp_set_num_threads(1);
    matmul_forward(part, in, w, N, IN, OUT);
    matmul_backward(din1, dw1, dout, in, w, N, IN, OUT);
    omp_set_num_threads(3);
    matmul_backward(din3, dw3, dout, in, w, N, IN, OUT);
    omp_set_num_threads(threads);
    assert_memory_equal(part, full, sizeof(float) * N * OUT);
    assert_memory_equal(din1, din3, sizeof(float) * N * IN);
    assert_memory_equal(dw1, dw3, sizeof(float) * OUT * IN);
    free(in), free(w), free(dout), free(full), free(part), free(dw1), free(dw3), free(din1), free(din3);
}

/* a batch in which one weight gradient is split along k and another, whose sum is also longer than
 * a chunk, is not (as two experts' weight gradients, one with 4,096 rows and one with 1,500): each
 * against the plain loops. The unsplit one must sum over all its rows, not over the first chunk. */
static void test_batch_of_split_and_unsplit_sums(void **state) {
    (void)state;
    int IN = 16, OUT = 8, rows[2] = {4096, 1500};
    float *dw[2], *ref[2], *in[2], *dout[2];
    Gemm g[2];
    for (int p = 0; p < 2; p++) {
        in[p] = randn((size_t)rows[p] * IN), dout[p] = randn((size_t)rows[p] * OUT);
        dw[p] = st_calloc((size_t)OUT * IN, sizeof(float)), ref[p] = st_calloc((size_t)OUT * IN, sizeof(float));
        g[p] = linear_dw(dw[p], dout[p], in[p], rows[p], IN, OUT);
    }
    gemm_batch(g, 2);
    for (int p = 0; p < 2; p++) {
        ref_matmul_backward(NULL, ref[p], dout[p], in[p], NULL, rows[p], IN, OUT);
        assert_close(p ? "unsplit dw beside a split one" : "split dw", dw[p], ref[p], (size_t)OUT * IN, 1e-5);
        free(in[p]), free(dout[p]), free(dw[p]), free(ref[p]);
    }
}

/* ReLU in the GEMM's tiles (Gemm.relu_mask) = the product, then ReLU as a pass of its own: the forward
 * (mask = C itself) and the backward (mask = h) bit for bit, on edge tiles of every width */
static void relu_in_gemm_case(int N, int IN, int OUT) {
    size_t ni = (size_t)N * IN, no = (size_t)N * OUT;
    float *in = randn(ni), *w = randn((size_t)OUT * IN), *dout = randn(ni), *h = randn(no);
    float *plain = st_malloc(sizeof(float) * no), *fused = st_malloc(sizeof(float) * no);
    Gemm g = linear_forward(plain, in, w, N, IN, OUT);
    gemm_batch(&g, 1);
    ref_relu_forward(plain, plain, no);
    g.c = fused, g.relu_mask = fused;
    gemm_batch(&g, 1);
    assert_memory_equal(fused, plain, sizeof(float) * no);
    Gemm d = linear_din(plain, dout, w, N, OUT, IN); /* dh [N][OUT] = dout [N][IN] w, w read as [IN][OUT] */
    d.accumulate = 0;
    gemm_batch(&d, 1);
    ref_relu_backward(plain, plain, h, no);
    d.c = fused, d.relu_mask = h;
    gemm_batch(&d, 1);
    assert_memory_equal(fused, plain, sizeof(float) * no);
    free(in), free(w), free(dout), free(h), free(plain), free(fused);
}

static void test_relu_in_gemm_matches_relu_after(void **state) {
    (void)state;
    const int shapes[][3] = {{1, 1, 1}, {7, 17, 15}, {13, 9, 33}, {49, 65, 65}, {11, 19, 56}, {300, 128, 512}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        relu_in_gemm_case(shapes[s][0], shapes[s][1], shapes[s][2]);
    /* a long sum over few tiles, which an unmasked product splits into chunks: the mask must see the
     * whole sum (against the plain loops, since the split changes the order of the sum) */
    int M = 5, K = 4096, N = 7;
    float *a = randn((size_t)M * K), *b = randn((size_t)N * K), *c = st_malloc(sizeof(float) * M * N);
    float *ref = st_malloc(sizeof(float) * M * N);
    Gemm g = linear_forward(c, a, b, M, K, N);
    g.relu_mask = c;
    gemm_batch(&g, 1);
    ref_matmul_forward(ref, a, b, M, K, N);
    ref_relu_forward(ref, ref, (size_t)M * N);
    assert_close("relu in a long gemm", c, ref, (size_t)M * N, 1e-5);
    free(a), free(b), free(c), free(ref);
}

/* ---------------------------------------------------------------------------------------------- */
/* the residual add fused with the norm (RMSNorm and LayerNorm), and QK-norm fused with RoPE: the same
 * bits as the steps apart */

static void test_residual_norm_matches_add_then_norm(void **state) {
    (void)state;
    const int shapes[][2] = {{1, 1}, {7, 13}, {33, 128}};
    for (int layer = 0; layer <= 1; layer++)
        for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
            int N = shapes[i][0], C = shapes[i][1];
            size_t n = (size_t)N * C;
            float *x = randn(n), *branch = randn(n), *gain = randn(C), *out = randn(n), *xn = randn(n);
            float *bias = layer ? randn(C) : NULL;
            float *sum = st_malloc(sizeof(float) * n), *xn_ref = st_malloc(sizeof(float) * n);
            float *rstd = st_malloc(sizeof(float) * N), *rstd_ref = st_malloc(sizeof(float) * N);
            residual_norm_forward(out, xn, rstd, x, branch, gain, bias, N, C, 1e-6f);
            for (size_t j = 0; j < n; j++) sum[j] = x[j] + branch[j];
            norm_forward(xn_ref, rstd_ref, sum, gain, bias, N, C, 1e-6f);
            assert_memory_equal(out, sum, sizeof(float) * n);
            assert_memory_equal(xn, xn_ref, sizeof(float) * n);
            assert_memory_equal(rstd, rstd_ref, sizeof(float) * N);
            free(x), free(branch), free(gain), free(bias), free(out), free(xn), free(sum), free(xn_ref), free(rstd),
                free(rstd_ref);
        }
}

/* RoPE on 8 pairs at a time: the same bits as the plain loop, forward and backward, for heads whose
 * D / 2 is a multiple of 8, above one and below one */
static void test_rope_matches_reference(void **state) {
    (void)state;
    const int dims[] = {32, 40, 6, 64};
    int N = 10, T = 4, H = 3;
    for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++) {
        int D = dims[i];
        size_t n = (size_t)N * H * D;
        float *x = randn(n), *ref = st_malloc(sizeof(float) * n);
        float *cos_t = st_malloc(sizeof(float) * T * D / 2), *sin_t = st_malloc(sizeof(float) * T * D / 2);
        rope_table(cos_t, sin_t, T, D, 100.0f, 3);
        memcpy(ref, x, sizeof(float) * n);
        rope_forward(x, cos_t, sin_t, N, T, H, D);
        ref_rope_rotate(ref, cos_t, sin_t, N, T, H, D, 1.0f);
        assert_memory_equal(x, ref, sizeof(float) * n);
        rope_backward(x, cos_t, sin_t, N, T, H, D);
        ref_rope_rotate(ref, cos_t, sin_t, N, T, H, D, -1.0f);
        assert_memory_equal(x, ref, sizeof(float) * n);
        free(x), free(ref), free(cos_t), free(sin_t);
    }
}

/* QK-norm fused with RoPE: the same bits as norm_forward (RMSNorm), then rope_forward */
static void test_qk_norm_rope_matches_norm_then_rope(void **state) {
    (void)state;
    int T = 5, N = 2 * T, heads = 3, D = 6;
    size_t n = (size_t)N * heads * D;
    float *in = randn(n), *gain = randn(D), *out = randn(n), *ref = st_malloc(sizeof(float) * n);
    float *rstd = st_malloc(sizeof(float) * N * heads), *rstd_ref = st_malloc(sizeof(float) * N * heads);
    float cos_t[5 * 3], sin_t[5 * 3];
    rope_table(cos_t, sin_t, T, D, 100.0f, 2);
    qk_norm_rope_forward(out, rstd, in, gain, cos_t, sin_t, N, T, heads, D, 1e-6f);
    norm_forward(ref, rstd_ref, in, gain, NULL, N * heads, D, 1e-6f);
    rope_forward(ref, cos_t, sin_t, N, T, heads, D);
    assert_memory_equal(out, ref, sizeof(float) * n);
    assert_memory_equal(rstd, rstd_ref, sizeof(float) * N * heads);
    free(in), free(gain), free(out), free(ref), free(rstd), free(rstd_ref);
}

/* ---------------------------------------------------------------------------------------------- */
/* the chunked LM head + cross-entropy against the full logits buffer: matmul_forward, then
 * ref_cross_entropy_forward / ref_cross_entropy_backward and matmul_backward */

static void lm_head_loss_case(int N, int C, int V, int chunk, int ignore_every) {
    float *x = randn((size_t)N * C), *w = randn((size_t)V * C), *scratch = st_malloc(sizeof(float) * chunk * V);
    for (size_t i = 0; i < (size_t)V * C; i++) w[i] *= 0.5f;
    int *targets = st_malloc(sizeof(int) * N);
    for (int n = 0; n < N; n++) targets[n] = ignore_every && n % ignore_every == 1 ? -1 : (n * 7 + 3) % V;
    float *logits = st_malloc(sizeof(float) * N * V), *lse = st_malloc(sizeof(float) * N);
    int n_valid, n_valid_ref;
    float loss = lm_head_loss_forward(lse, scratch, x, w, targets, N, C, V, chunk, &n_valid);
    matmul_forward(logits, x, w, N, C, V);
    float loss_ref = ref_cross_entropy_forward(logits, targets, N, V, &n_valid_ref);
    assert_int_equal(n_valid, n_valid_ref);
    assert_true(fabsf(loss - loss_ref) <= 1e-5f * fabsf(loss_ref));
    float *dx = randn((size_t)N * C), *dw = randn((size_t)V * C);
    float *dx_ref = copy_of(dx, (size_t)N * C), *dw_ref = copy_of(dw, (size_t)V * C);
    float *dlogits = st_calloc((size_t)N * V, sizeof(float));
    lm_head_loss_backward(dx, dw, scratch, 0.7f, x, w, lse, targets, N, C, V, chunk);
    ref_cross_entropy_backward(dlogits, 0.7f, logits, targets, N, V);
    matmul_backward(dx_ref, dw_ref, dlogits, x, w, N, C, V);
    assert_close("lm head dx", dx, dx_ref, (size_t)N * C, 1e-5);
    assert_close("lm head dw", dw, dw_ref, (size_t)V * C, 1e-5);
    for (int n = 0; n < N; n++) /* an ignored row's dx is left as it was */
        if (targets[n] < 0) assert_memory_equal(dx + (size_t)n * C, dx_ref + (size_t)n * C, sizeof(float) * C);
    free(x), free(w), free(scratch), free(targets), free(logits), free(lse), free(dx), free(dw), free(dx_ref);
    free(dw_ref), free(dlogits);
}

static void test_lm_head_loss_matches_full_logits(void **state) {
    (void)state;
    lm_head_loss_case(37, 20, 19, 8, 0);    /* rows and vocab not multiples of the chunk or of 8 */
    lm_head_loss_case(37, 20, 19, 8, 5);    /* some rows ignored */
    lm_head_loss_case(1, 16, 257, 512, 0);  /* one row (T = 1), the default vocab */
    lm_head_loss_case(600, 33, 257, 512, 3); /* a full chunk and a partial one */
    lm_head_loss_case(50, 24, 7, 50, 0);    /* exactly one chunk, vocab below one vector */
}

/* the chunk is a speed setting, not a numerical one: chunks of 256 rows and of MOE_LOSS_CHUNK give
 * bit-identical loss and gradients (the head's weight gradient adds its k blocks of 256 rows in the
 * same order either way) */
static void test_lm_head_loss_chunk_does_not_change_bits(void **state) {
    (void)state;
    int N = 2 * MOE_LOSS_CHUNK + 300, C = 32, V = 257;
    float *x = randn((size_t)N * C), *w = randn((size_t)V * C), *scratch = st_malloc(sizeof(float) * MOE_LOSS_CHUNK * V);
    int *targets = st_malloc(sizeof(int) * N), n_valid;
    for (int n = 0; n < N; n++) targets[n] = (n * 7 + 3) % V;
    float *lse = st_malloc(sizeof(float) * N), *lse_small = st_malloc(sizeof(float) * N);
    float *dx = st_calloc((size_t)N * C, sizeof(float)), *dw = st_calloc((size_t)V * C, sizeof(float));
    float *dx_small = st_calloc((size_t)N * C, sizeof(float)), *dw_small = st_calloc((size_t)V * C, sizeof(float));
    float loss = lm_head_loss_forward(lse, scratch, x, w, targets, N, C, V, MOE_LOSS_CHUNK, &n_valid);
    float loss_small = lm_head_loss_forward(lse_small, scratch, x, w, targets, N, C, V, 256, &n_valid);
    assert_memory_equal(&loss, &loss_small, sizeof loss);
    assert_memory_equal(lse, lse_small, sizeof(float) * N);
    lm_head_loss_backward(dx, dw, scratch, 1.0f, x, w, lse, targets, N, C, V, MOE_LOSS_CHUNK);
    lm_head_loss_backward(dx_small, dw_small, scratch, 1.0f, x, w, lse, targets, N, C, V, 256);
    assert_memory_equal(dx, dx_small, sizeof(float) * N * C);
    assert_memory_equal(dw, dw_small, sizeof(float) * V * C);
    free(x), free(w), free(scratch), free(targets), free(lse), free(lse_small), free(dx), free(dw), free(dx_small);
    free(dw_small);
}

/* no row with a target: zero loss, no gradient */
static void test_lm_head_loss_without_targets(void **state) {
    (void)state;
    int N = 9, C = 8, V = 11, targets[9];
    for (int n = 0; n < N; n++) targets[n] = -1;
    float *x = randn((size_t)N * C), *w = randn((size_t)V * C), *scratch = st_malloc(sizeof(float) * 4 * V);
    float lse[9], *dx = st_calloc((size_t)N * C, sizeof(float)), *dw = st_calloc((size_t)V * C, sizeof(float));
    int n_valid = -1;
    assert_true(lm_head_loss_forward(lse, scratch, x, w, targets, N, C, V, 4, &n_valid) == 0.0f);
    assert_int_equal(n_valid, 0);
    lm_head_loss_backward(dx, dw, scratch, 1.0f, x, w, lse, targets, N, C, V, 4);
    for (int i = 0; i < N * C; i++) assert_true(dx[i] == 0.0f);
    for (int i = 0; i < V * C; i++) assert_true(dw[i] == 0.0f);
    free(x), free(w), free(scratch), free(dx), free(dw);
}

/* ---------------------------------------------------------------------------------------------- */
/* attention: output, probabilities and the three gradients against the materialised reference */

static void attention_case(int B, int T, int H, int KV, int D, int window, int with_sink) {
    size_t nq = (size_t)B * T * H * D, nk = (size_t)B * T * KV * D, na = (size_t)B * H * T * T;
    float *q = randn(nq), *k = randn(nk), *v = randn(nk), *dout = randn(nq), *sink = with_sink ? randn(H) : NULL;
    for (size_t i = 0; i < nq; i++) q[i] *= 2.0f; /* peaked rows: the max subtraction must do real work */
    float *out = st_malloc(sizeof(float) * nq), *out_ref = st_malloc(sizeof(float) * nq);
    float *lse = st_malloc(sizeof(float) * (size_t)B * H * T);
    float *att = st_malloc(sizeof(float) * na), *att_ref = st_malloc(sizeof(float) * na);
    attention_forward(out, lse, q, k, v, sink, B, T, H, KV, D, window);
    attention_probs(att, lse, q, k, B, T, H, KV, D, window);
    ref_attention_forward(out_ref, att_ref, q, k, v, sink, B, T, H, KV, D, window);
    assert_close("attention out", out, out_ref, nq, 1e-5);
    assert_close("attention probabilities", att, att_ref, na, 1e-5);
    for (size_t i = 0; i < na; i++) assert_true((att[i] == 0.0f) == (att_ref[i] == 0.0f)); /* same mask */
    /* dq, dk, dv are written: their old contents must not leak in. The fast kernel's start random, the
     * reference's (which adds) at zero, and both get the same random offset before the comparison
     * (so a gradient that is exactly zero, as dq at T = 1, still has a norm to compare against).
     * dsink is added to: both start from the same random values. */
    float *dq = randn(nq), *dk = randn(nk), *dv = randn(nk), *ds = randn(H);
    float *dq_ref = calloc(nq, sizeof(float)), *dk_ref = calloc(nk, sizeof(float));
    float *dv_ref = calloc(nk, sizeof(float)), *ds_ref = copy_of(ds, H);
    attention_backward(dq, dk, dv, with_sink ? ds : NULL, dout, out, lse, q, k, v, sink, B, T, H, KV, D, window);
    ref_attention_backward(dq_ref, dk_ref, dv_ref, with_sink ? ds_ref : NULL, dout, att_ref, q, k, v, B, T, H, KV, D);
    float *grads[3][2] = {{dq, dq_ref}, {dk, dk_ref}, {dv, dv_ref}};
    size_t sizes[3] = {nq, nk, nk};
    for (int g = 0; g < 3; g++) {
        float *offset = randn(sizes[g]);
        for (size_t i = 0; i < sizes[g]; i++) grads[g][0][i] += offset[i], grads[g][1][i] += offset[i];
        free(offset);
    }
    assert_close("attention dq", dq, dq_ref, nq, 1e-5);
    assert_close("attention dk", dk, dk_ref, nk, 1e-5);
    assert_close("attention dv", dv, dv_ref, nk, 1e-5);
    assert_close("attention dsink", ds, ds_ref, H, 1e-5);
    free(q), free(k), free(v), free(dout), free(sink), free(out), free(out_ref), free(lse), free(att), free(att_ref);
    free(dq), free(dk), free(dv), free(ds), free(dq_ref), free(dk_ref), free(dv_ref), free(ds_ref);
}

static void test_attention_matches_reference(void **state) {
    (void)state;
    attention_case(2, 1, 2, 2, 4, 0, 0);    /* T = 1: one key */
    attention_case(1, 9, 2, 1, 6, 0, 0);    /* GQA, D not a multiple of 8, T not a multiple of 8 */
    attention_case(2, 67, 4, 2, 8, 0, 0);   /* past a 64-key span, T not a multiple of 6 or 8 */
    attention_case(1, 150, 2, 2, 32, 0, 0); /* three blocks */
    attention_case(1, 150, 2, 1, 12, 70, 0); /* a window starting mid-block */
    attention_case(1, 20, 2, 2, 4, 1, 0);   /* window 1: each query sees only itself */
    attention_case(2, 1, 2, 2, 4, 0, 1);    /* a sink logit, with T = 1 */
    attention_case(1, 90, 4, 2, 8, 0, 1);   /* a sink logit over two key blocks, GQA */
    attention_case(2, 61, 4, 2, 40, 0, 1);  /* D wider than a register tile: several column panels */
    attention_case(1, 100, 2, 1, 10, 30, 1); /* past two backward blocks of 48 rows, window, sink, GQA */
}

/* ---------------------------------------------------------------------------------------------- */
/* the MoE block: grouped experts against a per-token computation with the reference matmul */

static void test_moe_block_matches_per_token_experts(void **state) {
    (void)state;
    MoeConfig c;
    moe_config_default(&c);
    c.vocab_size = 13, c.seq_len = 4, c.d_model = 24, c.n_layer = 1, c.n_head = 2, c.n_kv_head = 2;
    c.n_expert = 8, c.top_k = 2, c.d_ff = 20, c.init_std = 0.5f, c.seed = 3;
    Moe m;
    char err[ST_ERR_LEN];
    if (moe_init(&m, &c, err)) fail_msg("%s", err);
    int tok[3] = {1, 5, 9}; /* 3 tokens x 2 slots over 8 experts: some get none */
    size_t N = 3, C = c.d_model, F = c.d_ff, E = c.n_expert, K = c.top_k;
    MoeCapture cap;
    moe_capture_init(&cap);
    cap.resid = st_calloc(3 * N * C, sizeof(float));
    cap.moe_out = st_calloc(N * C, sizeof(float));
    cap.router_probs = st_calloc(N * E, sizeof(float));
    cap.router_choice = st_calloc(N * K, sizeof(int));
    moe_forward(&m, tok, NULL, 1, 3, &cap);
    int empty = 0, single = 0;
    for (size_t e = 0; e < E; e++) {
        float rows = m.expert_load[e] * (float)(N * K);
        empty += rows == 0.0f, single += rows == 1.0f;
    }
    assert_true(empty > 0 && single > 0); /* the batch does exercise both edges */
    const float *gain = m.params + moe_find(&m, "blocks.0.moe_norm")->offset;
    const float *wg = m.params + moe_find(&m, "blocks.0.moe.w_gate")->offset;
    const float *wu = m.params + moe_find(&m, "blocks.0.moe.w_up")->offset;
    const float *wd = m.params + moe_find(&m, "blocks.0.moe.w_down")->offset;
    float *expect = st_calloc(N * C, sizeof(float)), xn[64], g[64], u[64], h[64], y[64];
    for (size_t n = 0; n < N; n++) {
        const float *x = cap.resid + N * C + n * C; /* the MoE's input, point 0.5 */
        double ss = 0;
        for (size_t i = 0; i < C; i++) ss += (double)x[i] * x[i];
        for (size_t i = 0; i < C; i++) xn[i] = (float)(x[i] / sqrt(ss / C + c.rms_eps)) * gain[i];
        const int *ch = cap.router_choice + n * K;
        float total = cap.router_probs[n * E + ch[0]] + cap.router_probs[n * E + ch[1]];
        for (size_t j = 0; j < K; j++) {
            size_t e = (size_t)ch[j];
            ref_matmul_forward(g, xn, wg + e * F * C, 1, (int)C, (int)F);
            ref_matmul_forward(u, xn, wu + e * F * C, 1, (int)C, (int)F);
            for (size_t f = 0; f < F; f++) h[f] = g[f] / (1.0f + expf(-g[f])) * u[f];
            ref_matmul_forward(y, h, wd + e * C * F, 1, (int)F, (int)C);
            for (size_t i = 0; i < C; i++) expect[n * C + i] += cap.router_probs[n * E + e] / total * y[i];
        }
    }
    assert_close("moe output", cap.moe_out, expect, N * C, 1e-5);
    free(cap.resid), free(cap.moe_out), free(cap.router_probs), free(cap.router_choice), free(expect);
    moe_free(&m);
}

/* ---------------------------------------------------------------------------------------------- */
/* the whole step: same losses and gradients, bit for bit, on 1 and on 3 threads, and run to run */

static void forward_backward(MoeConfig *c, int threads, float *loss, float *grads) {
    Moe m;
    char err[ST_ERR_LEN];
    if (moe_init(&m, c, err)) fail_msg("%s", err);
    int B = 2, T = 40, tok[80], tgt[80];
    StRng r;
    st_rng_seed(&r, 11);
    for (int i = 0; i < B * T; i++) tok[i] = (int)st_rng_below(&r, 50), tgt[i] = (int)st_rng_below(&r, 50);
    int saved = omp_get_max_threads();
    omp_set_num_threads(threads);
    moe_zero_grad(&m);
    *loss = moe_forward(&m, tok, tgt, B, T, NULL);
    moe_backward(&m, 1.0f);
    omp_set_num_threads(saved);
    memcpy(grads, m.grads, sizeof(float) * m.n_params);
    moe_free(&m);
}

static void test_step_bit_identical_across_threads(void **state) {
    (void)state;
    MoeConfig c;
    moe_config_default(&c);
    c.vocab_size = 50, c.seq_len = 40, c.d_model = 40, c.n_layer = 2, c.n_head = 4, c.n_kv_head = 2;
    c.n_expert = 4, c.d_ff = 36;
    Moe probe;
    char err[ST_ERR_LEN];
    if (moe_init(&probe, &c, err)) fail_msg("%s", err);
    size_t n = probe.n_params;
    moe_free(&probe);
    float l1, l3, l3b, *g1 = st_malloc(sizeof(float) * n), *g3 = st_malloc(sizeof(float) * n);
    forward_backward(&c, 1, &l1, g1);
    forward_backward(&c, 3, &l3, g3);
    assert_memory_equal(&l1, &l3, sizeof(float));
    assert_memory_equal(g1, g3, sizeof(float) * n);
    forward_backward(&c, 3, &l3b, g1);
    assert_memory_equal(&l3, &l3b, sizeof(float));
    assert_memory_equal(g1, g3, sizeof(float) * n);
    free(g1), free(g3);
}

int main(void) {
    st_rng_seed(&rng, 2024);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matmul_matches_reference),
        cmocka_unit_test(test_matmul_rows_and_threads_independent),
        cmocka_unit_test(test_batch_of_split_and_unsplit_sums),
        cmocka_unit_test(test_relu_in_gemm_matches_relu_after),
        cmocka_unit_test(test_residual_norm_matches_add_then_norm),
        cmocka_unit_test(test_rope_matches_reference),
        cmocka_unit_test(test_qk_norm_rope_matches_norm_then_rope),
        cmocka_unit_test(test_lm_head_loss_matches_full_logits),
        cmocka_unit_test(test_lm_head_loss_chunk_does_not_change_bits),
        cmocka_unit_test(test_lm_head_loss_without_targets),
        cmocka_unit_test(test_attention_matches_reference),
        cmocka_unit_test(test_moe_block_matches_per_token_experts),
        cmocka_unit_test(test_step_bit_identical_across_threads),
    };
    return cmocka_run_group_tests_name("kernels", tests, NULL, NULL);
}
