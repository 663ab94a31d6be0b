/* tests/test_model.c: the whole model. Gradients of the total loss (cross-entropy + aux + z) against
 * finite differences for sampled entries of EVERY named tensor in several configurations; causality;
 * RoPE and capture invariants; dense equivalence; interventions; determinism; overfitting one batch;
 * config validation. */
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

enum { B = 2, T = 7 };

static MoeConfig tiny_config(void) {
    MoeConfig c;
    moe_config_default(&c);
    c.vocab_size = 11, c.seq_len = 8, c.d_model = 16, c.n_layer = 2, c.n_head = 4, c.n_kv_head = 4;
    c.n_expert = 4, c.top_k = 2, c.d_ff = 12, c.init_std = 0.3f;
    c.aux_loss_coef = 0.1f, c.z_loss_coef = 0.05f; /* large enough that their gradients show */
    c.seed = 7;
    return c;
}

static void random_batch(int *tokens, int *targets, int V, uint64_t seed) {
    StRng r;
    st_rng_seed(&r, seed);
    for (int i = 0; i < B * T; i++) {
        tokens[i] = (int)st_rng_below(&r, (uint32_t)V);
        targets[i] = (int)st_rng_below(&r, (uint32_t)V);
    }
    targets[3] = -1; /* an ignored target */
}

static Moe make_model(const MoeConfig *c) {
    Moe m;
    char err[ST_ERR_LEN];
    if (moe_init(&m, c, err)) fail_msg("%s", err);
    return m;
}

/* where the loss is not differentiable: the top-k choices [L][B][T][k] and, with ReLU experts, which
 * hidden units of blocks 0 and 1 are active [2][B][T][k][F] (every block of the test models) */
static size_t n_choices(const MoeConfig *c) { return (size_t)c->n_layer * B * T * c->top_k; }
static size_t n_units(const MoeConfig *c) {
    return c->mlp == MOE_MLP_RELU ? (size_t)2 * B * T * c->top_k * c->d_ff : 0;
}

/* the loss at the current parameters, and its switches (above: choices, then units) into sw */
static double loss_and_switches(Moe *m, const int *tok, const int *tgt, int *sw) {
    size_t nchoice = n_choices(&m->cfg), nunits = n_units(&m->cfg);
    MoeCapture cap;
    moe_capture_init(&cap);
    cap.router_choice = sw;
    cap.moe_hidden = nunits ? calloc(nunits, sizeof(float)) : NULL;
    double loss = moe_forward(m, tok, tgt, B, T, &cap);
    for (size_t i = 0; i < nunits; i++) sw[nchoice + i] = cap.moe_hidden[i] > 0.0f;
    free(cap.moe_hidden);
    return loss;
}

/* For each tensor: up to 6 sampled entries, analytic gradient vs central difference of the total
 * loss. An entry whose perturbation flips a top-k choice or a ReLU unit is skipped (the loss is not
 * differentiable there); the test requires that almost all samples were usable. */
static void check_model_gradients(const MoeConfig *cfg, const char *label) {
    Moe m = make_model(cfg);
    int tok[B * T], tgt[B * T];
    random_batch(tok, tgt, cfg->vocab_size, 99);
    size_t nchoice = n_choices(cfg) + n_units(cfg);
    int *base = calloc(nchoice, sizeof(int)), *now = calloc(nchoice, sizeof(int));
    moe_zero_grad(&m);
    loss_and_switches(&m, tok, tgt, base);
    moe_backward(&m, 1.0f);
    StRng r;
    st_rng_seed(&r, 5);
    const float eps = 2e-3f;
    int tested = 0, skipped = 0;
    print_message("config %s: %zu parameters, loss %.4f (ce %.4f aux %.4f z %.4f)\n", label, m.n_params, m.loss.loss,
                  m.loss.ce, m.loss.aux, m.loss.z);
    for (int ti = 0; ti < m.n_tensors; ti++) {
        const MoeTensor *t = &m.tensors[ti];
        double num = 0, den = 0;
        int samples = t->size < 6 ? (int)t->size : 6;
        for (int s = 0; s < samples; s++) {
            size_t i = t->offset + st_rng_below(&r, (uint32_t)t->size);
            float saved = m.params[i];
            m.params[i] = saved + eps;
            double lp = loss_and_switches(&m, tok, tgt, now);
            int flipped = memcmp(base, now, sizeof(int) * nchoice) != 0;
            m.params[i] = saved - eps;
            double lm = loss_and_switches(&m, tok, tgt, now);
            flipped |= memcmp(base, now, sizeof(int) * nchoice) != 0;
            m.params[i] = saved;
            if (flipped) {
                skipped++;
                continue;
            }
            double fd = (lp - lm) / (2.0 * eps), an = m.grads[i];
            num += (fd - an) * (fd - an);
            den += fd * fd;
            tested++;
        }
        double rel = sqrt(num) / (sqrt(den) + 1e-12);
        /* float32 forward: the central difference carries ~1e-5 absolute noise, so tiny gradients are
         * compared in absolute terms */
        int ok = rel < 3e-2 || sqrt(num) < 2e-4;
        if (!ok) print_message("  %-24s |grad| %.3e  rel.err %.2e  FAIL\n", t->name, sqrt(den), rel);
        assert_true(ok);
    }
    print_message("  %d entries checked, %d skipped (a top-k choice or a ReLU unit flipped)\n", tested, skipped);
    /* a dense ReLU block has B*T*F units that any perturbation moves: kinks are commoner than top-k flips */
    assert_true(skipped * (cfg->mlp == MOE_MLP_RELU ? 3 : 10) < tested);
    free(base), free(now);
    moe_free(&m);
}

static void test_gradients_moe_top2_renorm(void **state) {
    (void)state;
    MoeConfig c = tiny_config();
    check_model_gradients(&c, "moe top-2 renormalised");
}

static void test_gradients_moe_top2_no_renorm(void **state) {
    (void)state;
    MoeConfig c = tiny_config();
    c.norm_topk = 0;
    check_model_gradients(&c, "moe top-2");
}

static void test_gradients_moe_top1(void **state) {
    (void)state;
    MoeConfig c = tiny_config();
    c.top_k = 1, c.norm_topk = 0;
    check_model_gradients(&c, "moe top-1");
    c.norm_topk = 1; /* top-1 renormalised: the weight is always 1, the router learns from aux and z only */
    check_model_gradients(&c, "moe top-1 renormalised");
}

static void test_gradients_dense(void **state) {
    (void)state;
    MoeConfig c = tiny_config();
    c.n_expert = 1, c.top_k = 1;
    check_model_gradients(&c, "dense");
}

/* the controls of the experiments: sliding window, a learned sink logit, a sigmoid output gate */
static void test_gradients_attention_controls(void **state) {
    (void)state;
    MoeConfig c = tiny_config();
    c.attn_window = 3;
    check_model_gradients(&c, "sliding window 3");
    c.attn_window = 0, c.attn_sink_logit = 1;
    check_model_gradients(&c, "sink logit");
    c.attn_sink_logit = 0, c.attn_gate = 1;
    check_model_gradients(&c, "sigmoid output gate");
}

/* GPT-2's learned absolute positions instead of RoPE (wpe is checked like every tensor), with QK-norm
 * on and off, and an odd head_dim, which only RoPE forbids */
static void test_gradients_learned_positions(void **state) {
    (void)state;
    MoeConfig c = tiny_config();
    c.learned_pos = 1;
    check_model_gradients(&c, "learned positions");
    c.qk_norm = 0, c.n_head = 2, c.n_kv_head = 2, c.head_dim = 5;
    check_model_gradients(&c, "learned positions, no QK-norm, head_dim 5");
}

/* GPT-2's pieces: LayerNorm (its biases checked like every tensor) and a ReLU MLP, in MoE and dense
 * blocks, and all of them with learned positions */
static void test_gradients_layernorm_relu(void **state) {
    (void)state;
    MoeConfig c = tiny_config();
    c.norm = MOE_NORM_LAYER;
    check_model_gradients(&c, "LayerNorm");
    c.norm = MOE_NORM_RMS, c.mlp = MOE_MLP_RELU;
    check_model_gradients(&c, "ReLU experts");
    c.norm = MOE_NORM_LAYER, c.n_expert = 1, c.top_k = 1, c.learned_pos = 1, c.qk_norm = 0;
    check_model_gradients(&c, "GPT-2 style: LayerNorm, dense ReLU, learned positions");
}

static void test_gradients_gqa_no_qknorm_tied(void **state) {
    (void)state;
    MoeConfig c = tiny_config();
    c.n_kv_head = 2;
    check_model_gradients(&c, "GQA 4q/2kv");
    c.qk_norm = 0;
    check_model_gradients(&c, "GQA, no QK-norm");
    c.tie_embeddings = 1;
    c.head_dim = 6; /* head_dim != d_model / n_head, as Qwen3 allows */
    check_model_gradients(&c, "tied embeddings, head_dim 6");
}

/* ---------------------------------------------------------------------------------------------- */

static void test_causality(void **state) {
    (void)state;
    MoeConfig c = tiny_config();
    Moe m = make_model(&c);
    int tok[B * T], tgt[B * T];
    random_batch(tok, tgt, c.vocab_size, 3);
    size_t V = c.vocab_size;
    float *before = malloc(sizeof(float) * B * T * V);
    for (int t = 1; t < T; t++) {
        moe_forward(&m, tok, NULL, B, T, NULL);
        memcpy(before, m.logits, sizeof(float) * B * T * V);
        tok[t] = (tok[t] + 1) % c.vocab_size; /* change the token at position t of sequence 0 */
        moe_forward(&m, tok, NULL, B, T, NULL);
        assert_memory_equal(before, m.logits, sizeof(float) * t * V); /* positions < t: bit-identical */
        assert_memory_not_equal(before + t * V, m.logits + t * V, sizeof(float) * V);
        assert_memory_equal(before + T * V, m.logits + T * V, sizeof(float) * T * V); /* sequence 1 */
    }
    free(before);
    moe_free(&m);
}

static void test_capture_does_not_change_loss(void **state) {
    (void)state;
    MoeConfig c = tiny_config();
    Moe m = make_model(&c);
    int tok[B * T], tgt[B * T];
    random_batch(tok, tgt, c.vocab_size, 4);
    float plain = moe_forward(&m, tok, tgt, B, T, NULL);
    size_t L = c.n_layer, N = B * T, C = c.d_model, H = c.n_head, D = c.d_model / c.n_head;
    MoeCapture cap;
    moe_capture_init(&cap);
    cap.attn = calloc(L * B * H * T * T, sizeof(float));
    cap.resid = calloc((2 * L + 1) * N * C, sizeof(float));
    cap.attn_out = calloc(L * N * C, sizeof(float));
    cap.moe_out = calloc(L * N * C, sizeof(float));
    cap.q = calloc(L * N * H * D, sizeof(float));
    cap.k = calloc(L * N * H * D, sizeof(float));
    cap.v = calloc(L * N * H * D, sizeof(float));
    cap.router_probs = calloc(L * N * c.n_expert, sizeof(float));
    cap.router_choice = calloc(L * N * c.top_k, sizeof(int));
    cap.moe_hidden = calloc(2 * N * c.top_k * c.d_ff, sizeof(float));
    float captured = moe_forward(&m, tok, tgt, B, T, &cap);
    assert_memory_equal(&plain, &captured, sizeof(float));
    /* the residual points are consistent: r_{l+0.5} = r_l + o^l and r_{l+1} = r_{l+0.5} + m^l */
    for (size_t l = 0; l < L; l++)
        for (size_t i = 0; i < N * C; i++) {
            assert_true(cap.resid[(2 * l + 1) * N * C + i] == cap.resid[2 * l * N * C + i] + cap.attn_out[l * N * C + i]);
            assert_true(cap.resid[(2 * l + 2) * N * C + i] == cap.resid[(2 * l + 1) * N * C + i] + cap.moe_out[l * N * C + i]);
        }
    /* position 0's query attends only to itself */
    assert_true(cap.attn[0] == 1.0f && cap.attn[T] == cap.attn[T] && cap.attn[1] == 0.0f);
    /* the router choice is the top of the captured probabilities */
    for (size_t n = 0; n < N; n++) {
        const float *p = cap.router_probs + n * c.n_expert;
        for (int e = 0; e < c.n_expert; e++) assert_true(p[e] <= p[cap.router_choice[n * c.top_k]]);
    }
    void *bufs[] = {cap.attn, cap.resid, cap.attn_out, cap.moe_out, cap.q, cap.k, cap.v, cap.router_probs,
                    cap.router_choice, cap.moe_hidden};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    moe_free(&m);
}

static void test_zero_all_heads_equals_removing_attention(void **state) {
    (void)state;
    MoeConfig c = tiny_config();
    Moe m = make_model(&c);
    int tok[B * T], tgt[B * T];
    random_batch(tok, tgt, c.vocab_size, 5);
    unsigned char zero_head[2 * 4] = {0, 0, 0, 0, 1, 1, 1, 1}; /* every head of layer 1 */
    MoeCapture cap;
    moe_capture_init(&cap);
    cap.zero_head = zero_head;
    float zeroed = moe_forward(&m, tok, tgt, B, T, &cap);
    float *wo = m.params + moe_find(&m, "blocks.1.attn.wo")->offset;
    memset(wo, 0, sizeof(float) * moe_find(&m, "blocks.1.attn.wo")->size);
    float removed = moe_forward(&m, tok, tgt, B, T, NULL);
    assert_memory_equal(&zeroed, &removed, sizeof(float));
    moe_free(&m);
}

/* norm = layer adds a bias to every block and final norm, starting at 0; mlp = relu drops w_gate */
static void test_layernorm_relu_tensors(void **state) {
    (void)state;
    MoeConfig c = tiny_config();
    c.norm = MOE_NORM_LAYER, c.mlp = MOE_MLP_RELU;
    Moe m = make_model(&c);
    const char *biases[] = {"blocks.0.attn_norm_bias", "blocks.1.moe_norm_bias", "final_norm_bias"};
    for (int i = 0; i < 3; i++) {
        const MoeTensor *t = moe_find(&m, biases[i]);
        assert_non_null(t);
        assert_int_equal(t->size, c.d_model), assert_int_equal(t->decay, 0);
        for (size_t j = 0; j < t->size; j++) assert_true(m.params[t->offset + j] == 0.0f);
    }
    assert_non_null(m.weights.block[1].moe_norm_bias), assert_non_null(m.weights.final_norm_bias);
    assert_null(moe_find(&m, "blocks.0.moe.w_gate")), assert_null(m.weights.block[0].w_gate);
    moe_free(&m);
    c = tiny_config();
    m = make_model(&c);
    assert_null(moe_find(&m, "final_norm_bias")), assert_null(m.weights.block[0].attn_norm_bias);
    moe_free(&m);
}

/* n_expert = 1, top_k = 1 is a dense SwiGLU block: no router tensor, aux = z = 0, and the block's
 * output is wd (silu(wg x) * (wu x)) of its normalised input */
static void test_dense_block_is_swiglu(void **state) {
    (void)state;
    MoeConfig c = tiny_config();
    c.n_expert = 1, c.top_k = 1;
    Moe m = make_model(&c);
    assert_null(moe_find(&m, "blocks.0.moe.router"));
    int tok[B * T], tgt[B * T];
    random_batch(tok, tgt, c.vocab_size, 6);
    size_t N = B * T, C = c.d_model, F = c.d_ff;
    MoeCapture cap;
    moe_capture_init(&cap);
    cap.resid = calloc(5 * N * C, sizeof(float));
    cap.moe_out = calloc(2 * N * C, sizeof(float));
    moe_forward(&m, tok, tgt, B, T, &cap);
    assert_true(m.loss.aux == 0.0f && m.loss.z == 0.0f && m.loss.loss == m.loss.ce);
    const float *gain = m.params + moe_find(&m, "blocks.0.moe_norm")->offset;
    const float *wg = m.params + moe_find(&m, "blocks.0.moe.w_gate")->offset;
    const float *wu = m.params + moe_find(&m, "blocks.0.moe.w_up")->offset;
    const float *wd = m.params + moe_find(&m, "blocks.0.moe.w_down")->offset;
    for (size_t n = 0; n < N; n++) {
        const float *x = cap.resid + 1 * N * C + n * C; /* point 0.5: the MoE's input */
        double ss = 0, hmax = 0;
        for (size_t i = 0; i < C; i++) ss += (double)x[i] * x[i];
        double r = 1.0 / sqrt(ss / C + c.rms_eps);
        double h[64];
        for (size_t f = 0; f < F; f++) {
            double g = 0, u = 0;
            for (size_t i = 0; i < C; i++) g += wg[f * C + i] * x[i] * r * gain[i], u += wu[f * C + i] * x[i] * r * gain[i];
            h[f] = g / (1 + exp(-g)) * u;
            hmax = fmax(hmax, fabs(h[f]));
        }
        for (size_t o = 0; o < C; o++) {
            double y = 0;
            for (size_t f = 0; f < F; f++) y += wd[o * F + f] * h[f];
            assert_true(fabs(y - cap.moe_out[n * C + o]) < 1e-5);
        }
    }
    free(cap.resid), free(cap.moe_out);
    moe_free(&m);
}

static void test_interventions(void **state) {
    (void)state;
    MoeConfig c = tiny_config();
    Moe m = make_model(&c);
    int tok[B * T], tgt[B * T];
    random_batch(tok, tgt, c.vocab_size, 8);
    size_t N = B * T, C = c.d_model, P = 2 * c.n_layer + 1;
    MoeCapture base, abl;
    moe_capture_init(&base);
    moe_capture_init(&abl);
    base.resid = calloc(P * N * C, sizeof(float)), base.moe_out = calloc(2 * N * C, sizeof(float));
    abl.resid = calloc(P * N * C, sizeof(float));
    moe_forward(&m, tok, NULL, B, T, &base);
    /* zeroing block 0's MoE output at P0 changes r_1 at P0 by exactly m^0[0], and nothing else there */
    unsigned char flags[2 * T] = {0};
    flags[0] = 1;
    abl.ablate_moe = flags;
    moe_forward(&m, tok, NULL, B, T, &abl);
    for (size_t b = 0; b < B; b++)
        for (size_t t = 0; t < T; t++)
            for (size_t i = 0; i < C; i++) {
                size_t at = 2 * N * C + (b * T + t) * C + i;
                float expect = t == 0 ? base.resid[at] - base.moe_out[(b * T) * C + i] : base.resid[at];
                assert_true(fabsf(abl.resid[at] - expect) < 1e-6f);
                assert_true(abl.resid[N * C + (b * T + t) * C + i] == base.resid[N * C + (b * T + t) * C + i]);
            }
    /* patching r_1 at P0 with its own value is a no-op; a RoPE offset leaves attention unchanged */
    MoeCapture patch;
    moe_capture_init(&patch);
    float *vec = malloc(sizeof(float) * B * C);
    for (size_t b = 0; b < B; b++) memcpy(vec + b * C, base.resid + 2 * N * C + b * T * C, sizeof(float) * C);
    patch.patch_point = 2, patch.patch_pos = 0, patch.patch_vec = vec, patch.resid = abl.resid;
    moe_forward(&m, tok, NULL, B, T, &patch);
    assert_memory_equal(abl.resid, base.resid, sizeof(float) * P * N * C);
    MoeCapture off;
    moe_capture_init(&off);
    off.pos_offset = 5, off.resid = abl.resid;
    moe_forward(&m, tok, NULL, B, T, &off);
    for (size_t i = 0; i < P * N * C; i++) assert_true(fabsf(abl.resid[i] - base.resid[i]) < 1e-4f);
    free(base.resid), free(base.moe_out), free(abl.resid), free(vec);
    moe_free(&m);
}

/* with learned positions the residual stream starts at wte[token] + wpe[position] (GPT-2), exactly,
 * and wpe has a row for every position up to seq_len */
static void test_learned_positions_enter_the_stream(void **state) {
    (void)state;
    MoeConfig c = tiny_config();
    c.learned_pos = 1;
    Moe m = make_model(&c);
    assert_non_null(m.weights.wpe);
    assert_int_equal(moe_find(&m, "wpe")->shape[0], c.seq_len);
    int tok[B * T], tgt[B * T];
    random_batch(tok, tgt, c.vocab_size, 3);
    size_t N = B * T, C = c.d_model;
    MoeCapture cap;
    moe_capture_init(&cap);
    cap.resid = calloc((2 * c.n_layer + 1) * N * C, sizeof(float));
    moe_forward(&m, tok, NULL, B, T, &cap);
    for (size_t n = 0; n < N; n++)
        for (size_t i = 0; i < C; i++)
            assert_true(cap.resid[n * C + i] ==
                        m.weights.wte[(size_t)tok[n] * C + i] + m.weights.wpe[(n % T) * C + i]);
    free(cap.resid);
    moe_free(&m);
}

/* a patch feeds everything after it, including the norm that is fused with the residual add at its
 * point: sequences A and B differ only in their last token, which no other position sees, so patching
 * B's residual at the last position with A's makes every later residual point and the logits A's */
static void test_patch_feeds_the_next_norm(void **state) {
    (void)state;
    MoeConfig c = tiny_config();
    Moe m = make_model(&c);
    int tok_a[B * T], tok_b[B * T], tgt[B * T];
    random_batch(tok_a, tgt, c.vocab_size, 9);
    memcpy(tok_b, tok_a, sizeof tok_a);
    for (int b = 0; b < B; b++) tok_b[b * T + T - 1] = (tok_a[b * T + T - 1] + 1) % c.vocab_size;
    size_t N = B * T, C = c.d_model, V = c.vocab_size, P = 2 * c.n_layer + 1;
    MoeCapture ca, cb;
    moe_capture_init(&ca);
    moe_capture_init(&cb);
    ca.resid = calloc(P * N * C, sizeof(float)), cb.resid = calloc(P * N * C, sizeof(float));
    float *logits_a = malloc(sizeof(float) * N * V), *vec = malloc(sizeof(float) * B * C);
    moe_forward(&m, tok_a, NULL, B, T, &ca);
    memcpy(logits_a, m.logits, sizeof(float) * N * V);
    for (int p = 1; p < (int)P; p++) { /* every point after an add (each fused with the next norm) */
        for (size_t b = 0; b < B; b++)
            memcpy(vec + b * C, ca.resid + (p * N + b * T + T - 1) * C, sizeof(float) * C);
        cb.patch_point = p, cb.patch_pos = T - 1, cb.patch_vec = vec;
        moe_forward(&m, tok_b, NULL, B, T, &cb);
        assert_memory_equal(cb.resid + p * N * C, ca.resid + p * N * C, sizeof(float) * (P - p) * N * C);
        assert_memory_equal(m.logits, logits_a, sizeof(float) * N * V);
    }
    free(ca.resid), free(cb.resid), free(logits_a), free(vec);
    moe_free(&m);
}

static void test_same_seed_bit_identical(void **state) {
    (void)state;
    MoeConfig c = tiny_config();
    Moe a = make_model(&c), b = make_model(&c);
    assert_memory_equal(a.params, b.params, sizeof(float) * a.n_params);
    int tok[B * T], tgt[B * T];
    random_batch(tok, tgt, c.vocab_size, 9);
    moe_zero_grad(&a), moe_zero_grad(&b);
    float la = moe_forward(&a, tok, tgt, B, T, NULL), lb = moe_forward(&b, tok, tgt, B, T, NULL);
    moe_backward(&a, 1.0f), moe_backward(&b, 1.0f);
    assert_memory_equal(&la, &lb, sizeof(float));
    assert_memory_equal(a.grads, b.grads, sizeof(float) * a.n_params);
    c.seed = 8; /* another seed: other parameters */
    Moe d = make_model(&c);
    assert_memory_not_equal(a.params, d.params, sizeof(float) * a.n_params);
    moe_free(&a), moe_free(&b), moe_free(&d);
}

/* a tiny model memorises one batch with plain Adam written here */
static void test_overfits_one_batch(void **state) {
    (void)state;
    MoeConfig c = tiny_config();
    c.init_std = 0.1f;
    Moe m = make_model(&c);
    int tok[B * T], tgt[B * T];
    random_batch(tok, tgt, c.vocab_size, 10);
    tok[T] = (tok[0] + 1) % c.vocab_size; /* no two positions share a whole context: every target is learnable */
    float *mom = calloc(m.n_params, sizeof(float)), *vel = calloc(m.n_params, sizeof(float));
    float first = 0, loss = 0;
    for (int step = 1; step <= 400; step++) {
        moe_zero_grad(&m);
        moe_forward(&m, tok, tgt, B, T, NULL);
        moe_backward(&m, 1.0f);
        loss = m.loss.ce;
        if (step == 1) first = loss;
        for (size_t i = 0; i < m.n_params; i++) {
            mom[i] = 0.9f * mom[i] + 0.1f * m.grads[i];
            vel[i] = 0.999f * vel[i] + 0.001f * m.grads[i] * m.grads[i];
            float mh = mom[i] / (1 - powf(0.9f, step)), vh = vel[i] / (1 - powf(0.999f, step));
            m.params[i] -= 1e-2f * mh / (sqrtf(vh) + 1e-8f);
        }
        if (loss < 0.05f) break;
    }
    print_message("cross-entropy %.3f -> %.4f\n", first, loss);
    assert_true(loss < 0.05f);
    free(mom), free(vel);
    moe_free(&m);
}

static void expect_invalid(MoeConfig c, const char *field) {
    char err[ST_ERR_LEN] = "";
    assert_int_equal(moe_config_validate(&c, err), -1);
    if (!strstr(err, field)) fail_msg("expected the error to name '%s', got: %s", field, err);
}

static void test_invalid_configs_name_the_field(void **state) {
    (void)state;
    MoeConfig c = tiny_config();
    char err[ST_ERR_LEN];
    assert_int_equal(moe_config_validate(&c, err), 0);
    assert_int_equal(c.head_dim, 4); /* resolved from d_model / n_head */
    MoeConfig b;
    b = tiny_config(), b.n_kv_head = 3, expect_invalid(b, "n_kv_head");
    b = tiny_config(), b.top_k = 5, expect_invalid(b, "top_k");
    b = tiny_config(), b.head_dim = 5, expect_invalid(b, "head_dim");
    b = tiny_config(), b.n_head = 3, expect_invalid(b, "head_dim"); /* 16 / 3: no default head_dim */
    b = tiny_config(), b.d_model = 0, expect_invalid(b, "d_model");
    b = tiny_config(), b.vocab_size = -1, expect_invalid(b, "vocab_size");
    b = tiny_config(), b.n_layer = 0, expect_invalid(b, "n_layer");
    b = tiny_config(), b.seq_len = 0, expect_invalid(b, "seq_len");
    b = tiny_config(), b.n_expert = 0, expect_invalid(b, "n_expert");
    b = tiny_config(), b.d_ff = 0, expect_invalid(b, "d_ff");
    b = tiny_config(), b.n_head = 0, expect_invalid(b, "n_head");
    b = tiny_config(), b.top_k = 0, expect_invalid(b, "top_k");
    b = tiny_config(), b.rope_theta = 0, expect_invalid(b, "rope_theta");
    b = tiny_config(), b.rms_eps = -1, expect_invalid(b, "rms_eps");
    b = tiny_config(), b.init_std = 0, expect_invalid(b, "init_std");
    b = tiny_config(), b.aux_loss_coef = -0.1f, expect_invalid(b, "aux_loss_coef");
    b = tiny_config(), b.z_loss_coef = NAN, expect_invalid(b, "z_loss_coef");
    b = tiny_config(), b.qk_norm = 2, expect_invalid(b, "qk_norm");
    b = tiny_config(), b.norm_topk = -1, expect_invalid(b, "norm_topk");
    b = tiny_config(), b.tie_embeddings = 3, expect_invalid(b, "tie_embeddings");
    b = tiny_config(), b.attn_window = -2, expect_invalid(b, "attn_window");
    b = tiny_config(), b.attn_sink_logit = 2, expect_invalid(b, "attn_sink_logit");
    b = tiny_config(), b.attn_gate = -1, expect_invalid(b, "attn_gate");
    b = tiny_config(), b.learned_pos = 2, expect_invalid(b, "learned_pos");
    b = tiny_config(), b.embed_std = -1, expect_invalid(b, "embed_std");
    b = tiny_config(), b.norm = 2, expect_invalid(b, "norm");
    b = tiny_config(), b.mlp = -1, expect_invalid(b, "mlp");
    Moe m;
    b = tiny_config(), b.top_k = 9;
    assert_int_equal(moe_init(&m, &b, err), -1); /* moe_init validates too */
}

/* standard deviation of n floats (their mean is ~0 here) */
static double sample_std(const float *x, size_t n) {
    double ss = 0;
    for (size_t i = 0; i < n; i++) ss += (double)x[i] * x[i];
    return sqrt(ss / (double)n);
}

/* embed_std sets the initial spread of wte and wpe (nn.Embedding starts at 1) and of nothing else;
 * 0 leaves them at init_std */
static void test_embed_std_sets_the_embeddings(void **state) {
    (void)state;
    MoeConfig c = tiny_config();
    c.vocab_size = 64, c.d_model = 64, c.seq_len = 64, c.learned_pos = 1, c.init_std = 0.02f, c.embed_std = 1.0f;
    Moe m = make_model(&c);
    const MoeTensor *wte = moe_find(&m, "wte"), *wpe = moe_find(&m, "wpe"), *wq = moe_find(&m, "blocks.0.attn.wq");
    assert_true(fabs(sample_std(m.params + wte->offset, wte->size) - 1.0) < 0.05); /* 4096 draws: ~1% error */
    assert_true(fabs(sample_std(m.params + wpe->offset, wpe->size) - 1.0) < 0.05);
    assert_true(fabs(sample_std(m.params + wq->offset, wq->size) - 0.02) < 0.001);
    moe_free(&m);
    c.embed_std = 0;
    m = make_model(&c);
    wte = moe_find(&m, "wte"); /* the table of the new model */
    assert_true(fabs(sample_std(m.params + wte->offset, wte->size) - 0.02) < 0.001);
    moe_free(&m);
}

static void test_tensor_table(void **state) {
    (void)state;
    MoeConfig c = tiny_config();
    Moe m = make_model(&c);
    const MoeTensor *wq = moe_find(&m, "blocks.1.attn.wq"), *ex = moe_find(&m, "blocks.0.moe.w_down");
    assert_non_null(wq);
    assert_int_equal(wq->shape[0], 16), assert_int_equal(wq->shape[1], 16);
    assert_int_equal(ex->ndim, 3), assert_int_equal(ex->shape[0], 4), assert_int_equal(ex->shape[1], 16),
        assert_int_equal(ex->shape[2], 12);
    assert_null(moe_find(&m, "blocks.2.attn.wq"));
    size_t total = 0;
    for (int i = 0; i < m.n_tensors; i++) {
        assert_int_equal(m.tensors[i].offset, total); /* contiguous, in order, no gaps */
        total += m.tensors[i].size;
        if (!m.tensors[i].decay) /* norm gains start at 1 (this config has no sink logits) */
            for (size_t j = 0; j < m.tensors[i].size; j++) assert_true(m.params[m.tensors[i].offset + j] == 1.0f);
    }
    assert_int_equal(total, m.n_params);
    moe_free(&m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gradients_moe_top2_renorm),
        cmocka_unit_test(test_gradients_moe_top2_no_renorm),
        cmocka_unit_test(test_gradients_moe_top1),
        cmocka_unit_test(test_gradients_learned_positions),
        cmocka_unit_test(test_learned_positions_enter_the_stream),
        cmocka_unit_test(test_gradients_dense),
        cmocka_unit_test(test_gradients_gqa_no_qknorm_tied),
        cmocka_unit_test(test_gradients_layernorm_relu),
        cmocka_unit_test(test_layernorm_relu_tensors),
        cmocka_unit_test(test_gradients_attention_controls),
        cmocka_unit_test(test_causality),
        cmocka_unit_test(test_capture_does_not_change_loss),
        cmocka_unit_test(test_zero_all_heads_equals_removing_attention),
        cmocka_unit_test(test_dense_block_is_swiglu),
        cmocka_unit_test(test_interventions),
        cmocka_unit_test(test_patch_feeds_the_next_norm),
        cmocka_unit_test(test_same_seed_bit_identical),
        cmocka_unit_test(test_overfits_one_batch),
        cmocka_unit_test(test_invalid_configs_name_the_field),
        cmocka_unit_test(test_embed_std_sets_the_embeddings),
        cmocka_unit_test(test_tensor_table),
    };
    return cmocka_run_group_tests_name("model", tests, NULL, NULL);
}
