/* model/moe.c: a miniature Qwen3-MoE transformer, forward and backward.
 *
 * Read it top to bottom:
 *   1. config         defaults and validation
 *   2. parameters     the table of named tensors over one float buffer, the typed pointers the code
 *                     reaches them by, and their initialisation
 *   3. operations     each forward next to its backward: embedding, RMSNorm and LayerNorm, matmul,
 *                     RoPE, attention, softmax, top-k routing, SwiGLU and ReLU, aux loss, z-loss,
 *                     cross-entropy
 *   4. activations    the buffers one forward keeps for its backward
 *   5. the model      forward (with the capture hook for probes) and backward
 *
 * Notation: B sequences of T tokens, N = B*T rows; C = d_model; H query heads, KV key/value heads,
 * D = head_dim; E experts, top-k, F = d_ff; V = vocab; L = n_layer. Matrices are [out][in].
 * Parallelism: every OpenMP loop splits over outputs that no other iteration writes, and every sum
 * runs in a fixed order, so results do not depend on the thread count or the schedule.
 * Speed: matmul runs on a blocked, vectorised GEMM (gemm.c) and attention is fused (attention.c);
 * their plain one-output-at-a-time versions are in ref_kernels.c, the tests' oracle. */
#include "moe.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/util.h"
#include "kernels.h"
#include "simd.h"

/* ================================================================================================ */
/* 1. Config */

void moe_config_default(MoeConfig *c) {
    memset(c, 0, sizeof *c);
    c->vocab_size = 257;
    c->seq_len = 256;
    c->d_model = 128;
    c->n_layer = 4;
    c->n_head = 4;
    c->n_kv_head = 4;
    c->head_dim = 0;
    c->rope_theta = 10000.0f;
    c->learned_pos = 0;
    c->qk_norm = 1;
    c->norm = MOE_NORM_RMS;
    c->mlp = MOE_MLP_SWIGLU;
    c->attn_window = 0;
    c->attn_sink_logit = 0;
    c->attn_gate = 0;
    c->n_expert = 8;
    c->top_k = 2;
    c->d_ff = 256;
    c->norm_topk = 1;
    c->aux_loss_coef = 0.01f;
    c->z_loss_coef = 0.001f;
    c->tie_embeddings = 0;
    c->rms_eps = 1e-6f;
    c->init_std = 0.02f;
    c->embed_std = 0.0f;
    c->seed = 1337;
}

int moe_config_validate(MoeConfig *c, char *err) {
    const struct {
        const char *name;
        int value;
    } positive[] = {{"vocab_size", c->vocab_size}, {"seq_len", c->seq_len}, {"d_model", c->d_model},
                    {"n_layer", c->n_layer},       {"n_head", c->n_head},   {"n_kv_head", c->n_kv_head},
                    {"n_expert", c->n_expert},     {"top_k", c->top_k},     {"d_ff", c->d_ff}};
    for (size_t i = 0; i < sizeof positive / sizeof positive[0]; i++)
        if (positive[i].value <= 0)
            return st_errorf(err, "config: %s: expected a positive integer, found %d", positive[i].name,
                             positive[i].value);
    if (c->head_dim < 0) return st_errorf(err, "config: head_dim: expected >= 0 (0 = d_model / n_head), found %d", c->head_dim);
    if (c->head_dim == 0) {
        if (c->d_model % c->n_head)
            return st_errorf(err, "config: head_dim: 0 means d_model / n_head, but d_model %d is not divisible by n_head %d",
                             c->d_model, c->n_head);
        c->head_dim = c->d_model / c->n_head;
    }
    if (c->head_dim % 2 && !c->learned_pos)
        return st_errorf(err, "config: head_dim: expected an even number (RoPE rotates pairs), found %d", c->head_dim);
    if (c->n_head % c->n_kv_head)
        return st_errorf(err, "config: n_kv_head: expected a divisor of n_head %d, found %d", c->n_head, c->n_kv_head);
    if (c->top_k > c->n_expert)
        return st_errorf(err, "config: top_k: expected at most n_expert %d, found %d", c->n_expert, c->top_k);
    if (c->attn_window < 0)
        return st_errorf(err, "config: attn_window: expected >= 0 (0 = full causal attention), found %d", c->attn_window);
    if (!(c->rope_theta > 0)) return st_errorf(err, "config: rope_theta: expected > 0, found %g", c->rope_theta);
    if (!(c->rms_eps > 0)) return st_errorf(err, "config: rms_eps: expected > 0, found %g", c->rms_eps);
    if (!(c->init_std > 0)) return st_errorf(err, "config: init_std: expected > 0, found %g", c->init_std);
    if (!(c->embed_std >= 0))
        return st_errorf(err, "config: embed_std: expected >= 0 (0 = init_std), found %g", c->embed_std);
    if (!(c->aux_loss_coef >= 0))
        return st_errorf(err, "config: aux_loss_coef: expected >= 0, found %g", c->aux_loss_coef);
    if (!(c->z_loss_coef >= 0)) return st_errorf(err, "config: z_loss_coef: expected >= 0, found %g", c->z_loss_coef);
    const struct {
        const char *name;
        int value;
    } flags[] = {{"learned_pos", c->learned_pos},
                 {"qk_norm", c->qk_norm},
                 {"norm_topk", c->norm_topk},
                 {"tie_embeddings", c->tie_embeddings},
                 {"attn_sink_logit", c->attn_sink_logit},
                 {"attn_gate", c->attn_gate}};
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
        if (flags[i].value != 0 && flags[i].value != 1)
            return st_errorf(err, "config: %s: expected 0 or 1, found %d", flags[i].name, flags[i].value);
    if (c->norm != MOE_NORM_RMS && c->norm != MOE_NORM_LAYER)
        return st_errorf(err, "config: norm: expected %d (rms) or %d (layer), found %d", MOE_NORM_RMS, MOE_NORM_LAYER,
                         c->norm);
    if (c->mlp != MOE_MLP_SWIGLU && c->mlp != MOE_MLP_RELU)
        return st_errorf(err, "config: mlp: expected %d (swiglu) or %d (relu), found %d", MOE_MLP_SWIGLU, MOE_MLP_RELU,
                         c->mlp);
    return 0;
}

/* ================================================================================================ */
/* 2. Parameters: one float buffer, a table of named tensors into it, typed pointers to each */

static int is_dense(const MoeConfig *c) { return c->n_expert == 1; }

static void add_tensor(Moe *m, int cap, const char *name, int decay, int ndim, int d0, int d1, int d2) {
    if (m->n_tensors >= cap) {
        fprintf(stderr, "internal error: tensor table full\n");
        exit(1);
    }
    MoeTensor *t = &m->tensors[m->n_tensors++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = ndim;
    t->shape[0] = d0;
    t->shape[1] = ndim > 1 ? d1 : 1;
    t->shape[2] = ndim > 2 ? d2 : 1;
    t->size = (size_t)t->shape[0] * (size_t)t->shape[1] * (size_t)t->shape[2];
    t->offset = m->n_params;
    t->decay = decay;
    m->n_params += t->size;
}

/* the tensor table, in the order the forward uses them */
static void build_tensor_table(Moe *m) {
    const MoeConfig *c = &m->cfg;
    int C = c->d_model, HD = c->n_head * c->head_dim, KVD = c->n_kv_head * c->head_dim;
    int cap = 5 + 16 * c->n_layer;
    m->tensors = st_calloc((size_t)cap, sizeof(MoeTensor));
    m->n_tensors = 0;
    m->n_params = 0;
    char name[40];
    add_tensor(m, cap, "wte", 1, 2, c->vocab_size, C, 0);
    if (c->learned_pos) add_tensor(m, cap, "wpe", 1, 2, c->seq_len, C, 0);
    for (int l = 0; l < c->n_layer; l++) {
#define BLOCK_TENSOR(suffix, decay, ndim, d0, d1, d2)                   \
    do {                                                                \
        snprintf(name, sizeof name, "blocks.%d.%s", l, suffix);         \
        add_tensor(m, cap, name, decay, ndim, d0, d1, d2);              \
    } while (0)
        BLOCK_TENSOR("attn_norm", 0, 1, C, 0, 0);
        if (c->norm == MOE_NORM_LAYER) BLOCK_TENSOR("attn_norm_bias", 0, 1, C, 0, 0);
        BLOCK_TENSOR("attn.wq", 1, 2, HD, C, 0);
        BLOCK_TENSOR("attn.wk", 1, 2, KVD, C, 0);
        BLOCK_TENSOR("attn.wv", 1, 2, KVD, C, 0);
        if (c->qk_norm) {
            BLOCK_TENSOR("attn.q_norm", 0, 1, c->head_dim, 0, 0);
            BLOCK_TENSOR("attn.k_norm", 0, 1, c->head_dim, 0, 0);
        }
        if (c->attn_sink_logit) BLOCK_TENSOR("attn.sink", 0, 1, c->n_head, 0, 0);
        if (c->attn_gate) BLOCK_TENSOR("attn.w_gate", 1, 2, HD, C, 0);
        BLOCK_TENSOR("attn.wo", 1, 2, C, HD, 0);
        BLOCK_TENSOR("moe_norm", 0, 1, C, 0, 0);
        if (c->norm == MOE_NORM_LAYER) BLOCK_TENSOR("moe_norm_bias", 0, 1, C, 0, 0);
        if (!is_dense(c)) BLOCK_TENSOR("moe.router", 1, 2, c->n_expert, C, 0);
        if (c->mlp == MOE_MLP_SWIGLU) BLOCK_TENSOR("moe.w_gate", 1, 3, c->n_expert, c->d_ff, C);
        BLOCK_TENSOR("moe.w_up", 1, 3, c->n_expert, c->d_ff, C);
        BLOCK_TENSOR("moe.w_down", 1, 3, c->n_expert, C, c->d_ff);
#undef BLOCK_TENSOR
    }
    add_tensor(m, cap, "final_norm", 0, 1, C, 0, 0);
    if (c->norm == MOE_NORM_LAYER) add_tensor(m, cap, "final_norm_bias", 0, 1, C, 0, 0);
    if (!c->tie_embeddings) add_tensor(m, cap, "lm_head", 1, 2, c->vocab_size, C, 0);
}

const MoeTensor *moe_find(const Moe *m, const char *name) {
    for (int i = 0; i < m->n_tensors; i++)
        if (strcmp(m->tensors[i].name, name) == 0) return &m->tensors[i];
    return NULL;
}

/* pointer to a tensor's values in buf (params or grads); NULL if the tensor is absent */
static float *tensor_in(const Moe *m, float *buf, const char *name) {
    const MoeTensor *t = moe_find(m, name);
    return t ? buf + t->offset : NULL;
}

/* block l's tensors in buf, looked up by name once (the model's code then uses the fields) */
static void bind_block(const Moe *m, float *buf, int l, BlockWeights *w) {
    const struct {
        const char *suffix;
        float **field;
    } fields[] = {{"attn_norm", &w->attn_norm},     {"attn_norm_bias", &w->attn_norm_bias},
                  {"attn.wq", &w->wq},                 {"attn.wk", &w->wk},
                  {"attn.wv", &w->wv},                 {"attn.q_norm", &w->q_norm},
                  {"attn.k_norm", &w->k_norm},         {"attn.sink", &w->sink},
                  {"attn.w_gate", &w->attn_gate},      {"attn.wo", &w->wo},
                  {"moe_norm", &w->moe_norm},          {"moe_norm_bias", &w->moe_norm_bias},
                  {"moe.router", &w->router},          {"moe.w_gate", &w->w_gate},
                  {"moe.w_up", &w->w_up},              {"moe.w_down", &w->w_down}};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        char name[40];
        snprintf(name, sizeof name, "blocks.%d.%s", l, fields[i].suffix);
        *fields[i].field = tensor_in(m, buf, name);
    }
}

/* the typed pointers of every tensor into buf (params or grads), built once by moe_init */
static void bind_weights(const Moe *m, float *buf, MoeWeights *w) {
    w->wte = tensor_in(m, buf, "wte");
    w->wpe = tensor_in(m, buf, "wpe");
    w->block = st_calloc((size_t)m->cfg.n_layer, sizeof(BlockWeights));
    for (int l = 0; l < m->cfg.n_layer; l++) bind_block(m, buf, l, &w->block[l]);
    w->final_norm = tensor_in(m, buf, "final_norm");
    w->final_norm_bias = tensor_in(m, buf, "final_norm_bias");
    w->lm_head = m->cfg.tie_embeddings ? w->wte : tensor_in(m, buf, "lm_head");
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

void moe_init_params(Moe *m) {
    StRng rng;
    st_rng_seed(&rng, m->cfg.seed);
    /* residual-branch outputs are scaled down so the residual stream's variance does not grow with depth */
    float out_scale = 1.0f / sqrtf(2.0f * (float)m->cfg.n_layer);
    for (int i = 0; i < m->n_tensors; i++) {
        const MoeTensor *t = &m->tensors[i];
        float *p = m->params + t->offset;
        if (!t->decay) { /* norm gains start at 1, norm biases and sink logits at 0 */
            float v = ends_with(t->name, "norm") ? 1.0f : 0.0f;
            for (size_t j = 0; j < t->size; j++) p[j] = v;
            continue;
        }
        float std = m->cfg.init_std;
        int embedding = strcmp(t->name, "wte") == 0 || strcmp(t->name, "wpe") == 0;
        if (embedding && m->cfg.embed_std > 0) std = m->cfg.embed_std; /* nn.Embedding's default is 1 */
        if (ends_with(t->name, "attn.wo") || ends_with(t->name, "moe.w_down")) std *= out_scale;
        for (size_t j = 0; j < t->size; j++) p[j] = (float)(std * st_rng_normal(&rng));
    }
}

/* ================================================================================================ */
/* 3. Operations. A backward adds into its gradient outputs, except attention_backward and
 * swiglu_backward, which write theirs, and rope_backward, which rotates dx in place (moe.h). ReLU
 * (mlp = relu) has no pass of its own: the GEMM applies it to its tiles (Gemm.relu_mask). */

/* --- token embedding: out[n] = wte[tokens[n]] --- */
void embed_forward(float *out, const int *tokens, const float *wte, int N, int C) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) memcpy(out + (size_t)n * C, wte + (size_t)tokens[n] * C, sizeof(float) * C);
}

/* rows of dwte receive the sum over the positions holding that token; split over channels so no two
 * threads write the same entry, and positions are summed in order */
void embed_backward(float *dwte, const float *dout, const int *tokens, int N, int C, int V) {
    (void)V;
#pragma omp parallel for schedule(static)
    for (int c = 0; c < C; c++)
        for (int n = 0; n < N; n++) dwte[(size_t)tokens[n] * C + c] += dout[(size_t)n * C + c];
}

/* --- learned positions: out[b][t] += wpe[t] --- */
void position_embed_forward(float *out, const float *wpe, int N, int T, int C) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) out[(size_t)n * C + c] += wpe[(size_t)(n % T) * C + c];
}

/* one position per work item, its sequences summed in order */
void position_embed_backward(float *dwpe, const float *dout, int N, int T, int C) {
#pragma omp parallel for schedule(static)
    for (int t = 0; t < T; t++)
        for (int n = t; n < N; n += T)
            for (int c = 0; c < C; c++) dwpe[(size_t)t * C + c] += dout[(size_t)n * C + c];
}

/* --- Norms. RMSNorm: out = in / rms(in) * gain, rms = sqrt(mean(in^2) + eps). LayerNorm (norm =
 * layer, GPT-2): out = (in - mean(in)) / sd(in) * gain + bias, sd = sqrt(mean((in - mean)^2) + eps).
 * Every function takes the bias, NULL for RMSNorm; rstd = 1/rms or 1/sd is saved per row. --- */

/* mean of a row's C values (0 without a bias: RMSNorm does not centre); 8 partial sums side by side */
static float row_centre(const float *x, const float *bias, int C) {
    if (!bias) return 0.0f;
    v8 acc = splat8(0.0f);
    for (int c = 0; c < C; c += 8) acc += load_part(x + c, C - c < 8 ? (size_t)(C - c) : 8);
    return hsum8(acc) / (float)C;
}

/* sum over c < C of (x[c] - mu)^2, 8 partial sums side by side (the lanes past C are zeroed: they
 * would add mu^2) */
static float centred_sum_of_squares(const float *x, float mu, int C) {
    v8 acc = splat8(0.0f);
    for (int c = 0; c < C; c += 8) {
        size_t m = C - c < 8 ? (size_t)(C - c) : 8;
        v8 d = load_part(x + c, m) - splat8(mu);
        for (size_t l = m; l < 8; l++) d[l] = 0.0f;
        acc += d * d;
    }
    return hsum8(acc);
}

/* one row: y = (x - centre) / rms(x - centre) * gain (+ bias); returns 1/rms */
static float norm_row(float *y, const float *x, const float *gain, const float *bias, int C, float eps) {
    float mu = row_centre(x, bias, C);
    float ss = bias ? centred_sum_of_squares(x, mu, C) : sum_of_products(x, x, NULL, C);
    float r = 1.0f / sqrtf(ss / (float)C + eps);
    v8 vmu = splat8(mu), vr = splat8(r);
    for (int c = 0; c < C; c += 8) {
        size_t m = C - c < 8 ? (size_t)(C - c) : 8;
        v8 yc = (load_part(x + c, m) - vmu) * vr * load_part(gain + c, m);
        store_part(y + c, bias ? yc + load_part(bias + c, m) : yc, m);
    }
    return r;
}

void norm_forward(float *out, float *rstd, const float *in, const float *gain, const float *bias, int N, int C,
                  float eps) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) rstd[n] = norm_row(out + (size_t)n * C, in + (size_t)n * C, gain, bias, C, eps);
}

/* each row is added and normalised while it is in cache: one pass instead of two */
void residual_norm_forward(float *out, float *xn, float *rstd, const float *x, const float *branch,
                           const float *gain, const float *bias, int N, int C, float eps) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        float *o = out + (size_t)n * C;
        const float *xr = x + (size_t)n * C, *br = branch + (size_t)n * C;
        for (int c = 0; c < C; c += 8) {
            size_t m = C - c < 8 ? (size_t)(C - c) : 8;
            store_part(o + c, load_part(xr + c, m) + load_part(br + c, m), m);
        }
        rstd[n] = norm_row(xn + (size_t)n * C, o, gain, bias, C, eps);
    }
}

/* with xhat = (x - centre) * r and dxhat = dout * gain:
 *   RMSNorm:   dx = r * (dxhat - xhat * mean(dxhat * xhat))
 *   LayerNorm: dx = r * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))  (the centring's share)
 * dgain[c] = sum_n dout[n][c] * xhat[n][c], dbias[c] = sum_n dout[n][c] */
/* rows per partial sum of the gain's (and bias's) gradient: each block of rows is one parallel work
 * item that computes its rows' dx and its own partials in the same pass; the partials are then added
 * in block order (fixed by N, not by the thread count) */
enum { NORM_ROWS = 256 };

void norm_backward(float *din, float *dgain, float *dbias, const float *dout, const float *in, const float *gain,
                   const float *rstd, int N, int C) {
    int nb = (N + NORM_ROWS - 1) / NORM_ROWS, parts = dbias ? 2 : 1;
    float *part = st_calloc((size_t)nb * parts * C, sizeof(float)); /* [nb][parts][C]: dgain's, dbias's */
#pragma omp parallel for schedule(static)
    for (int blk = 0; blk < nb; blk++) {
        float *pg = part + (size_t)blk * parts * C, *pb = pg + C;
        int n1 = (blk + 1) * NORM_ROWS < N ? (blk + 1) * NORM_ROWS : N;
        for (int n = blk * NORM_ROWS; n < n1; n++) {
            const float *x = in + (size_t)n * C, *dy = dout + (size_t)n * C;
            float r = rstd[n], mu = row_centre(x, dbias, C);
            /* sum dxhat = sum dy g; sum dxhat xhat = r (sum dy g x - mu sum dy g) */
            float sum_dxhat = dbias ? sum_of_products(dy, gain, NULL, C) : 0.0f;
            float dot = r * (sum_of_products(dy, gain, x, C) - mu * sum_dxhat) / (float)C;
            float mean_dxhat = sum_dxhat / (float)C;
            float *dx = din + (size_t)n * C;
            v8 vr = splat8(r), vmu = splat8(mu), vmean = splat8(mean_dxhat), vdot = splat8(dot);
            for (int c = 0; c < C; c += 8) {
                size_t m = C - c < 8 ? (size_t)(C - c) : 8;
                v8 dyc = load_part(dy + c, m), xc = load_part(x + c, m) - vmu;
                store_part(dx + c, load_part(dx + c, m) + vr * (dyc * load_part(gain + c, m) - vmean - xc * vr * vdot), m);
                store_part(pg + c, load_part(pg + c, m) + dyc * xc * vr, m);
                if (dbias) store_part(pb + c, load_part(pb + c, m) + dyc, m);
            }
        }
    }
    for (int blk = 0; blk < nb; blk++)
        for (int c = 0; c < C; c++) {
            dgain[c] += part[(size_t)blk * parts * C + c];
            if (dbias) dbias[c] += part[(size_t)blk * parts * C + C + c];
        }
    free(part);
}

/* --- matmul: out[n][o] = sum_i in[n][i] * w[o][i] (in [N][IN], w [OUT][IN], out [N][OUT]);
 * din += dout w, dw += dout^T in. On the blocked GEMM of gemm.c; ref_kernels.c has the plain loops. --- */

/* --- RoPE --- */
void rope_table(float *cos_t, float *sin_t, int T, int D, float theta, int pos_offset) {
    int half = D / 2;
    for (int t = 0; t < T; t++)
        for (int i = 0; i < half; i++) {
            double angle = (double)(t + pos_offset) * pow((double)theta, -2.0 * i / D);
            cos_t[t * half + i] = (float)cos(angle);
            sin_t[t * half + i] = (float)sin(angle);
        }
}

/* rotates the pairs (a, b) = (v[i], v[i+half]) of one head by +angle (sign = +1) or -angle (sign = -1),
 * cs and sn the cos and sin of this position's angles */
static void rope_head(float *v, const float *cs, const float *sn, int half, float sign) {
    v8 vsign = splat8(sign);
    for (int i = 0; i < half; i += 8) { /* 8 pairs at a time: both halves are read before either is written */
        size_t m = half - i < 8 ? (size_t)(half - i) : 8;
        v8 a = load_part(v + i, m), b = load_part(v + i + half, m), c = load_part(cs + i, m);
        v8 s = vsign * load_part(sn + i, m);
        store_part(v + i, a * c - b * s, m);
        store_part(v + i + half, a * s + b * c, m);
    }
}

static void rope_rotate(float *x, const float *cos_t, const float *sin_t, int N, int T, int n_heads, int D,
                        float sign) {
    int half = D / 2;
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++)
        for (int h = 0; h < n_heads; h++)
            rope_head(x + ((size_t)n * n_heads + h) * D, cos_t + (size_t)(n % T) * half,
                      sin_t + (size_t)(n % T) * half, half, sign);
}

/* at position 0 (no offset) the angle is 0: cos 1, sin 0, so P0's q and k pass unrotated */
void rope_forward(float *x, const float *cos_t, const float *sin_t, int N, int T, int n_heads, int D) {
    rope_rotate(x, cos_t, sin_t, N, T, n_heads, D, 1.0f);
}

/* the Jacobian of a rotation is the rotation; its transpose rotates back */
void rope_backward(float *dx, const float *cos_t, const float *sin_t, int N, int T, int n_heads, int D) {
    rope_rotate(dx, cos_t, sin_t, N, T, n_heads, D, -1.0f);
}

/* each head is normalised and rotated while it is in cache: one pass instead of two */
void qk_norm_rope_forward(float *out, float *rstd, const float *in, const float *gain, const float *cos_t,
                          const float *sin_t, int N, int T, int n_heads, int D, float eps) {
    int half = D / 2;
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++)
        for (int h = 0; h < n_heads; h++) {
            size_t row = (size_t)n * n_heads + h;
            rstd[row] = norm_row(out + row * D, in + row * D, gain, NULL, D, eps);
            if (cos_t)
                rope_head(out + row * D, cos_t + (size_t)(n % T) * half, sin_t + (size_t)(n % T) * half, half, 1.0f);
        }
}

/* --- causal attention: score[i][j] = q_i . k_j / sqrt(D) over the visible keys j <= i, p[i][.] its
 * softmax, out_i = sum_j p[i][j] v_j. Fused in attention.c (one logsumexp per query row is kept, and
 * the backward recomputes p from it); ref_kernels.c has the plain loops. --- */

/* --- sigmoid output gate: out = y * sigmoid(z); dy = dout * sig, dz = dout * y * sig (1 - sig) --- */
void gate_forward(float *out, const float *y, const float *gate_logits, size_t n) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) out[i] = y[i] / (1.0f + expf(-gate_logits[i]));
}

void gate_backward(float *dy, float *dgate_logits, const float *dout, const float *y, const float *gate_logits,
                   size_t n) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        float sig = 1.0f / (1.0f + expf(-gate_logits[i]));
        dy[i] += dout[i] * sig;
        dgate_logits[i] += dout[i] * y[i] * sig * (1.0f - sig);
    }
}

/* --- softmax over rows of E --- */
void softmax_forward(float *probs, const float *logits, int N, int E) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *z = logits + (size_t)n * E;
        float *p = probs + (size_t)n * E;
        float mx = z[0], sum = 0.0f;
        for (int e = 1; e < E; e++) mx = z[e] > mx ? z[e] : mx;
        for (int e = 0; e < E; e++) sum += (p[e] = expf(z[e] - mx));
        for (int e = 0; e < E; e++) p[e] /= sum;
    }
}

/* dz_e = p_e (dp_e - sum_e' p_e' dp_e') */
void softmax_backward(float *dlogits, const float *dprobs, const float *probs, int N, int E) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *p = probs + (size_t)n * E, *dp = dprobs + (size_t)n * E;
        float s = 0.0f;
        for (int e = 0; e < E; e++) s += p[e] * dp[e];
        for (int e = 0; e < E; e++) dlogits[(size_t)n * E + e] += p[e] * (dp[e] - s);
    }
}

/* --- top-k routing: the k largest probabilities, in decreasing order, ties to the lower index --- */
void topk_forward(int *idx, float *w, const float *probs, int N, int E, int k, int norm_topk) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *p = probs + (size_t)n * E;
        int *ix = idx + (size_t)n * k;
        float *wn = w + (size_t)n * k, total = 0.0f;
        for (int j = 0; j < k; j++) {
            int best = -1;
            for (int e = 0; e < E; e++) {
                int taken = 0;
                for (int jj = 0; jj < j; jj++) taken |= ix[jj] == e;
                if (!taken && (best < 0 || p[e] > p[best])) best = e; /* strict >: ties keep the lower index */
            }
            ix[j] = best;
            wn[j] = p[best];
            total += p[best];
        }
        if (norm_topk)
            for (int j = 0; j < k; j++) wn[j] /= total;
    }
}

/* without renormalisation w_j = p_{e_j}: dp_{e_j} += dw_j. With it, w_j = p_{e_j} / S, S = sum of the
 * chosen p:  dp_{e_i} += (dw_i - sum_j dw_j w_j) / S. Unchosen experts get nothing from this path. */
void topk_backward(float *dprobs, const float *dw, const float *probs, const int *idx, const float *w, int N,
                   int E, int k, int norm_topk) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const int *ix = idx + (size_t)n * k;
        const float *dwn = dw + (size_t)n * k, *wn = w + (size_t)n * k;
        float *dp = dprobs + (size_t)n * E;
        if (!norm_topk) {
            for (int j = 0; j < k; j++) dp[ix[j]] += dwn[j];
            continue;
        }
        float S = 0.0f, dot = 0.0f;
        for (int j = 0; j < k; j++) {
            S += probs[(size_t)n * E + ix[j]];
            dot += dwn[j] * wn[j];
        }
        for (int j = 0; j < k; j++) dp[ix[j]] += (dwn[j] - dot) / S;
    }
}

/* --- SwiGLU: h = silu(g) * u, silu(g) = g * sigmoid(g) --- */
static v8 sigmoid8(v8 x) { return splat8(1.0f) / (splat8(1.0f) + exp8(-x)); }

void swiglu_forward(float *h, const float *g, const float *u, size_t n) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i += 8) {
        size_t m = n - i < 8 ? n - i : 8;
        v8 gv = load_part(g + i, m);
        store_part(h + i, gv * sigmoid8(gv) * load_part(u + i, m), m);
    }
}

/* silu'(g) = sigmoid(g) (1 + g (1 - sigmoid(g))) */
void swiglu_backward(float *dg, float *du, const float *dh, const float *g, const float *u, size_t n) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i += 8) {
        size_t m = n - i < 8 ? n - i : 8;
        v8 gv = load_part(g + i, m), dhv = load_part(dh + i, m), sig = sigmoid8(gv);
        v8 dgv = dhv * load_part(u + i, m) * sig * (splat8(1.0f) + gv * (splat8(1.0f) - sig));
        store_part(dg + i, dgv, m);
        store_part(du + i, dhv * gv * sig, m);
    }
}

/* --- load-balancing loss: E * sum_i f_i P_i, f_i = share of the routing slots sent to expert i,
 * P_i = mean router probability of expert i over these N rows. f comes from counts (no gradient):
 * routing_shares normalises the counts, which data parallelism first sums over the replicas, so f
 * is the whole batch's while P is each replica's mean; dP_i/dp[n][i] = 1/N. --- */
void routing_counts(double *counts, const int *idx, int N, int E, int k) {
    for (int e = 0; e < E; e++) counts[e] = 0.0;
    for (size_t s = 0; s < (size_t)N * k; s++) counts[idx[s]] += 1.0;
}

void routing_shares(double *f, int E) {
    double total = 0.0;
    for (int e = 0; e < E; e++) total += f[e];
    for (int e = 0; e < E; e++) f[e] /= total;
}

float aux_loss_forward(const float *probs, const double *f, int N, int E) {
    double *P = st_malloc(sizeof(double) * (size_t)E); /* each expert's sum over rows in row order */
#pragma omp parallel for schedule(static)
    for (int e = 0; e < E; e++) {
        double sum = 0.0;
        for (int n = 0; n < N; n++) sum += probs[(size_t)n * E + e];
        P[e] = sum;
    }
    double loss = 0.0;
    for (int e = 0; e < E; e++) loss += f[e] * P[e] / N;
    free(P);
    return (float)(E * loss);
}

void aux_loss_backward(float *dprobs, float dloss, const double *f, int N, int E) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++)
        for (int e = 0; e < E; e++) dprobs[(size_t)n * E + e] += (float)(dloss * E * f[e] / N);
}

/* lse of one row of n logits (the router's, or the LM head's): the max, then exp(z - max) summed in 8
 * lanes, the tail scalar */
static float logsumexp(const float *z, int n) {
    float mx = z[0];
    for (int i = 1; i < n; i++) mx = z[i] > mx ? z[i] : mx;
    v8 acc = splat8(0.0f);
    int i = 0;
    for (; i + 8 <= n; i += 8) acc += exp8(load8(z + i) - splat8(mx));
    float s = hsum8(acc);
    for (; i < n; i++) s += expf(z[i] - mx);
    return mx + logf(s);
}

/* --- router z-loss: mean_n lse(z_n)^2; d/dz[n][e] = 2 lse(z_n) softmax(z_n)_e / N --- */
float z_loss_forward(const float *logits, int N, int E) {
    double *sq = st_malloc(sizeof(double) * (size_t)N);
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        double lse = logsumexp(logits + (size_t)n * E, E);
        sq[n] = lse * lse;
    }
    double s = 0.0; /* summed in row order, whatever the thread count */
    for (int n = 0; n < N; n++) s += sq[n];
    free(sq);
    return (float)(s / N);
}

void z_loss_backward(float *dlogits, float dloss, const float *logits, int N, int E) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *z = logits + (size_t)n * E;
        float lse = logsumexp(z, E);
        for (int e = 0; e < E; e++) dlogits[(size_t)n * E + e] += dloss * 2.0f * lse * expf(z[e] - lse) / N;
    }
}

/* rows that have a target (a target < 0 is ignored) */
static int count_targets(const int *targets, int N) {
    int count = 0;
    for (int n = 0; n < N; n++) count += targets[n] >= 0;
    return count;
}

/* --- LM head + cross-entropy, chunked over rows ---
 * logits = x w^T ([N][V], x the final norm's output, w [V][C]) exist only `chunk` rows at a time, in
 * scratch [chunk][V]. The forward computes a chunk's logits, each row's lse = logsumexp(logits) and
 * loss lse - logits[target], and keeps only lse [N]. The backward recomputes a chunk's logits, turns
 * them in place into dlogits = g (exp(logits - lse) - onehot(target)), g = dloss / n_valid, and runs
 * both products of the chunk: dx += dlogits w, dw += dlogits^T x (chunks added in order). */

float lm_head_loss_forward(float *lse, float *scratch, const float *x, const float *w, const int *targets, int N,
                           int C, int V, int chunk, int *n_valid) {
    double total = 0.0; /* summed in row order, whatever the thread count */
    for (int r0 = 0; r0 < N; r0 += chunk) {
        int rows = N - r0 < chunk ? N - r0 : chunk;
        Gemm g = linear_forward(scratch, x + (size_t)r0 * C, w, rows, C, V);
        gemm_batch(&g, 1);
#pragma omp parallel for schedule(static)
        for (int r = 0; r < rows; r++)
            lse[r0 + r] = targets[r0 + r] < 0 ? 0.0f : logsumexp(scratch + (size_t)r * V, V);
        for (int r = 0; r < rows; r++)
            if (targets[r0 + r] >= 0) total += (double)lse[r0 + r] - scratch[(size_t)r * V + targets[r0 + r]];
    }
    *n_valid = count_targets(targets, N);
    return *n_valid ? (float)(total / *n_valid) : 0.0f;
}

void lm_head_loss_backward(float *dx, float *dw, float *scratch, float dloss, const float *x, const float *w,
                           const float *lse, const int *targets, int N, int C, int V, int chunk) {
    int count = count_targets(targets, N);
    if (!count) return;
    float g = dloss / (float)count;
    for (int r0 = 0; r0 < N; r0 += chunk) {
        int rows = N - r0 < chunk ? N - r0 : chunk;
        Gemm fwd = linear_forward(scratch, x + (size_t)r0 * C, w, rows, C, V);
        gemm_batch(&fwd, 1);
#pragma omp parallel for schedule(static)
        for (int r = 0; r < rows; r++) {
            float *dz = scratch + (size_t)r * V;
            int t = targets[r0 + r];
            if (t < 0) { /* an ignored row sends no gradient */
                memset(dz, 0, sizeof(float) * (size_t)V);
                continue;
            }
            v8 shift = splat8(lse[r0 + r]), vg = splat8(g);
            int v = 0;
            for (; v + 8 <= V; v += 8) store8(dz + v, vg * exp8(load8(dz + v) - shift));
            for (; v < V; v++) dz[v] = g * expf(dz[v] - lse[r0 + r]);
            dz[t] -= g;
        }
        Gemm bwd[2] = {linear_dw(dw, scratch, x + (size_t)r0 * C, rows, C, V),
                       linear_din(dx + (size_t)r0 * C, scratch, w, rows, C, V)};
        gemm_batch(bwd, 2);
    }
}

/* ================================================================================================ */
/* 4. Activations: what one forward keeps for its backward, per block */

typedef struct {
    float *xn1, *rstd1;          /* attention RMSNorm output [N][C] and 1/rms [N] */
    float *q_pre, *k_pre;        /* q, k before QK-norm [N][H*D], [N][KV*D] (only with qk_norm) */
    float *q_rstd, *k_rstd;      /* QK-norm 1/rms per row and head [N*H], [N*KV] */
    float *q, *k, *v;            /* after QK-norm and RoPE: [N][H*D], [N][KV*D], [N][KV*D] */
    float *lse;                  /* [B][H][T] log of each query row's softmax denominator */
    float *y;                    /* [N][H*D] heads' outputs */
    float *gz, *yg;              /* with attn_gate: gate logits and gated outputs [N][H*D] (else yg = y) */
    float *o;                    /* [N][C] attention output o^l */
    float *xn2, *rstd2;          /* MoE RMSNorm output [N][C] and 1/rms [N] */
    float *rlogits, *probs;      /* router logits and softmax [N][E] */
    int *idx;                    /* [N][k] chosen experts */
    float *w;                    /* [N][k] their weights */
    int *expert_start;           /* [E+1] first grouped row of each expert */
    int *slot_row;               /* [N*k] grouped row of token n's slot j (index n*k+j) */
    int *row_token;              /* [N*k] token of each grouped row */
    float *xg;                   /* [N*k][C] MoE input gathered in expert order */
    float *g, *u, *h;            /* [N*k][F] gate, up, silu(gate)*up in expert order (ReLU: h = max(up, 0), no g, u) */
    float *eo;                   /* [N*k][C] expert outputs in expert order */
    float *mo;                   /* [N][C] MoE output m^l */
    double *shares;              /* [E] routing slot shares f of the aux loss */
    float aux, z;                /* this block's aux and z losses */
} BlockActs;

struct MoeActs {
    int N_cap;                   /* rows allocated for */
    int B, T;                    /* of the last forward */
    int backward_ready;          /* the last forward had targets and no intervention */
    int *tokens, *targets;       /* [N] copies of the last forward's inputs */
    float *resid;                /* [2L+1][N][C] residual stream at every point */
    BlockActs *blk;              /* [L] */
    float *xnf, *rstdf;          /* final RMSNorm */
    float *head_lse;             /* [N] logsumexp of each row's logits (0 for rows without a target) */
    float *head_chunk;           /* [MOE_LOSS_CHUNK][V] one chunk of logits, then of their gradient */
    float *rope_cos, *rope_sin;  /* [seq_len][D/2] for the last forward's positions */
    /* backward scratch */
    float *dresid, *dxn, *dq, *dk, *dv, *dq_pre, *dk_pre, *dy, *dyg, *dgz;
    float *dprobs, *drlogits, *dw, *dxg, *dg, *du, *dh, *deo;
};


static void free_rows(Moe *m) {
    MoeActs *a = m->acts;
    if (!a->blk) return;
    for (int l = 0; l < m->cfg.n_layer; l++) {
        BlockActs *b = &a->blk[l];
        float *fl[] = {b->xn1, b->rstd1, b->q_pre, b->k_pre, b->q_rstd, b->k_rstd, b->q, b->k, b->v, b->lse,
                       b->y, b->gz, b->o, b->xn2, b->rstd2, b->rlogits, b->probs, b->w, b->xg, b->g, b->u, b->h,
                       b->eo, b->mo};
        for (size_t i = 0; i < sizeof fl / sizeof fl[0]; i++) free(fl[i]);
        if (b->yg != b->y) free(b->yg);
        free(b->idx);
        free(b->shares);
        free(b->expert_start);
        free(b->slot_row);
        free(b->row_token);
    }
    free(a->blk);
    float *fl[] = {a->resid, a->xnf, a->rstdf, a->dresid, a->dxn, a->dq, a->dk, a->dv, a->dq_pre, a->dk_pre,
                   a->dy, a->dyg, a->dgz, a->head_lse, a->head_chunk, a->dprobs, a->drlogits, a->dw, a->dxg, a->dg, a->du, a->dh, a->deo,
                   m->logits};
    for (size_t i = 0; i < sizeof fl / sizeof fl[0]; i++) free(fl[i]);
    m->logits = NULL;
    free(a->tokens);
    free(a->targets);
    a->blk = NULL;
}

/* (re)allocates every activation for B sequences of seq_len rows when the batch grows, so a smaller T
 * always fits; every buffer is linear in B * seq_len (attention keeps only lse per query row) */
static void ensure_rows(Moe *m, int B, int T) {
    MoeActs *a = m->acts;
    const MoeConfig *c = &m->cfg;
    size_t N = (size_t)B * T;
    if (a->blk && (size_t)a->N_cap >= (size_t)B * c->seq_len) return;
    free_rows(m);
    N = (size_t)B * c->seq_len;
    a->N_cap = (int)N;
    size_t C = c->d_model, HD = (size_t)c->n_head * c->head_dim, KVD = (size_t)c->n_kv_head * c->head_dim;
    size_t E = c->n_expert, K = c->top_k, F = c->d_ff, V = c->vocab_size, L = c->n_layer;
    a->blk = st_calloc(L, sizeof(BlockActs));
    for (size_t l = 0; l < L; l++) {
        BlockActs *b = &a->blk[l];
        b->xn1 = fbuf(N * C), b->rstd1 = fbuf(N);
        if (c->qk_norm) b->q_pre = fbuf(N * HD), b->k_pre = fbuf(N * KVD);
        b->q_rstd = fbuf(N * c->n_head), b->k_rstd = fbuf(N * c->n_kv_head);
        b->q = fbuf(N * HD), b->k = fbuf(N * KVD), b->v = fbuf(N * KVD);
        b->lse = fbuf(N * c->n_head);
        b->y = fbuf(N * HD), b->o = fbuf(N * C);
        b->yg = b->y;
        if (c->attn_gate) b->gz = fbuf(N * HD), b->yg = fbuf(N * HD);
        b->xn2 = fbuf(N * C), b->rstd2 = fbuf(N), b->rlogits = fbuf(N * E), b->probs = fbuf(N * E);
        b->shares = st_calloc(E, sizeof(double));
        b->idx = st_calloc(N * K, sizeof(int)), b->w = fbuf(N * K);
        b->expert_start = st_calloc(E + 1, sizeof(int));
        b->slot_row = st_calloc(N * K, sizeof(int)), b->row_token = st_calloc(N * K, sizeof(int));
        b->xg = fbuf(N * K * C), b->h = fbuf(N * K * F);
        if (c->mlp == MOE_MLP_SWIGLU) b->g = fbuf(N * K * F), b->u = fbuf(N * K * F);
        b->eo = fbuf(N * K * C), b->mo = fbuf(N * C);
    }
    a->tokens = st_calloc(N, sizeof(int)), a->targets = st_calloc(N, sizeof(int));
    a->resid = fbuf((2 * L + 1) * N * C);
    a->xnf = fbuf(N * C), a->rstdf = fbuf(N);
    a->head_lse = fbuf(N), a->head_chunk = fbuf((size_t)MOE_LOSS_CHUNK * V); /* m->logits: on demand */
    a->dresid = fbuf(N * C), a->dxn = fbuf(N * C);
    a->dq = fbuf(N * HD), a->dk = fbuf(N * KVD), a->dv = fbuf(N * KVD), a->dy = fbuf(N * HD);
    if (c->attn_gate) a->dyg = fbuf(N * HD), a->dgz = fbuf(N * HD);
    a->dq_pre = fbuf(N * HD), a->dk_pre = fbuf(N * KVD);
    a->dprobs = fbuf(N * E), a->drlogits = fbuf(N * E), a->dw = fbuf(N * K);
    a->dxg = fbuf(N * K * C), a->du = fbuf(N * K * F);
    if (c->mlp == MOE_MLP_SWIGLU) a->dg = fbuf(N * K * F), a->dh = fbuf(N * K * F);
    a->deo = fbuf(N * K * C);
}

int moe_init(Moe *m, const MoeConfig *cfg, char *err) {
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    if (moe_config_validate(&m->cfg, err)) return -1;
    build_tensor_table(m);
    m->params = fbuf(m->n_params);
    m->grads = fbuf(m->n_params);
    bind_weights(m, m->params, &m->weights);
    bind_weights(m, m->grads, &m->weight_grads);
    m->acts = st_calloc(1, sizeof(MoeActs));
    m->acts->rope_cos = fbuf((size_t)m->cfg.seq_len * m->cfg.head_dim / 2);
    m->acts->rope_sin = fbuf((size_t)m->cfg.seq_len * m->cfg.head_dim / 2);
    m->expert_load = fbuf((size_t)m->cfg.n_layer * m->cfg.n_expert);
    moe_init_params(m);
    return 0;
}

int moe_count_params(const MoeConfig *cfg, size_t *n_params, char *err) {
    Moe m;
    memset(&m, 0, sizeof m);
    m.cfg = *cfg;
    if (moe_config_validate(&m.cfg, err)) return -1;
    build_tensor_table(&m);
    free(m.tensors);
    *n_params = m.n_params;
    return 0;
}

void moe_free(Moe *m) {
    if (m->acts) {
        free_rows(m);
        free(m->acts->rope_cos);
        free(m->acts->rope_sin);
        free(m->acts);
    }
    free(m->params);
    free(m->grads);
    free(m->tensors);
    free(m->weights.block);
    free(m->weight_grads.block);
    free(m->expert_load);
    memset(m, 0, sizeof *m);
}

void moe_zero_grad(Moe *m) { memset(m->grads, 0, sizeof(float) * m->n_params); }

void moe_capture_init(MoeCapture *cap) {
    memset(cap, 0, sizeof *cap);
    cap->patch_point = -1;
}

/* ================================================================================================ */
/* 5. The model */

const char *const moe_op_class_names[MOE_OP_CLASSES] = {"matmul", "attention", "routing", "elementwise", "loss"};

/* runs stmt and adds its wall time to m->op_seconds[cls] */
#define TIMED(m, cls, stmt)                                 \
    do {                                                    \
        double t0_ = st_now_seconds();                      \
        stmt;                                               \
        (m)->op_seconds[cls] += st_now_seconds() - t0_;     \
    } while (0)

static float *resid_at(const Moe *m, int p) {
    return m->acts->resid + (size_t)p * m->acts->N_cap * m->cfg.d_model;
}

/* the capture overwrites the residual at point p */
static int patches(const MoeCapture *cap, int p) { return cap && cap->patch_vec && cap->patch_point == p; }

/* overwrite the residual at (point p, position t) of every sequence, when the capture asks */
static void apply_patch(Moe *m, const MoeCapture *cap, int p) {
    if (!patches(cap, p)) return;
    int C = m->cfg.d_model, T = m->acts->T;
    for (int b = 0; b < m->acts->B; b++)
        memcpy(resid_at(m, p) + ((size_t)b * T + cap->patch_pos) * C, cap->patch_vec + (size_t)b * C,
               sizeof(float) * C);
}

/* replace rows of out [B][T][C] at the flagged positions by repl (or zeros) */
static void ablate_positions(float *out, const unsigned char *flags, const float *repl, int B, int T, int C) {
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            if (!flags[t]) continue;
            float *row = out + ((size_t)b * T + t) * C;
            for (int c = 0; c < C; c++) row[c] = repl ? repl[c] : 0.0f;
        }
}

/* residual point p = x + branch and the norm of it that the next sublayer reads (xn, rstd, with
 * gain and, for LayerNorm, bias), in one pass. A capture's patch at p overwrites the residual after
 * the add, so then the norm is taken again over the patched stream. */
static void residual_and_norm(Moe *m, const MoeCapture *cap, int p, const float *x, const float *branch,
                              const float *gain, const float *bias, float *xn, float *rstd) {
    int N = m->acts->B * m->acts->T, C = m->cfg.d_model;
    TIMED(m, MOE_OP_ELEMENTWISE,
          residual_norm_forward(resid_at(m, p), xn, rstd, x, branch, gain, bias, N, C, m->cfg.rms_eps));
    if (!patches(cap, p)) return;
    apply_patch(m, cap, p);
    TIMED(m, MOE_OP_ELEMENTWISE, norm_forward(xn, rstd, resid_at(m, p), gain, bias, N, C, m->cfg.rms_eps));
}

/* the attention window of a forward: the capture's when it sets one, else the config's (0 = none) */
static int attention_window(const Moe *m, const MoeCapture *cap) {
    return cap && cap->window > 0 ? cap->window : m->cfg.attn_window;
}

/* --- the attention block: forward, then backward --- */

/* o = Wo [gate *] attention(RoPE(QKnorm(Wq xn)), RoPE(QKnorm(Wk xn)), Wv xn), gate = sigmoid(Wgate xn)
 * when attn_gate, from xn = RMSNorm(x) (b->xn1, computed with the residual add that produced x); the
 * caller adds o to the residual */
static void attention_block_forward(Moe *m, int l, const MoeCapture *cap) {
    const MoeConfig *c = &m->cfg;
    MoeActs *a = m->acts;
    BlockActs *b = &a->blk[l];
    int B = a->B, T = a->T, N = B * T, C = c->d_model, H = c->n_head, KV = c->n_kv_head, D = c->head_dim;
    const BlockWeights *W = &m->weights.block[l];
    float *q = c->qk_norm ? b->q_pre : b->q, *k = c->qk_norm ? b->k_pre : b->k;
    const float *cos_t = c->learned_pos ? NULL : a->rope_cos; /* NULL: no rotation */
    Gemm proj[4] = {linear_forward(q, b->xn1, W->wq, N, C, H * D), /* one pass */
                    linear_forward(k, b->xn1, W->wk, N, C, KV * D),
                    linear_forward(b->v, b->xn1, W->wv, N, C, KV * D),
                    linear_forward(b->gz, b->xn1, W->attn_gate, N, C, H * D)};
    TIMED(m, MOE_OP_MATMUL, gemm_batch(proj, c->attn_gate ? 4 : 3)); /* the gate logits too, if any */
    /* with QK-norm each head's q and k are normalised over their D channels (one gain for all heads),
     * then rotated unless the model has learned positions */
    if (c->qk_norm) {
        TIMED(m, MOE_OP_ELEMENTWISE,
              qk_norm_rope_forward(b->q, b->q_rstd, b->q_pre, W->q_norm, cos_t, a->rope_sin, N, T, H, D, c->rms_eps));
        TIMED(m, MOE_OP_ELEMENTWISE,
              qk_norm_rope_forward(b->k, b->k_rstd, b->k_pre, W->k_norm, cos_t, a->rope_sin, N, T, KV, D, c->rms_eps));
    } else if (cos_t) {
        TIMED(m, MOE_OP_ELEMENTWISE, rope_forward(b->q, a->rope_cos, a->rope_sin, N, T, H, D));
        TIMED(m, MOE_OP_ELEMENTWISE, rope_forward(b->k, a->rope_cos, a->rope_sin, N, T, KV, D));
    }
    TIMED(m, MOE_OP_ATTENTION,
          attention_forward(b->y, b->lse, b->q, b->k, b->v, W->sink, B, T, H, KV, D, attention_window(m, cap)));
    if (c->attn_gate) TIMED(m, MOE_OP_ELEMENTWISE, gate_forward(b->yg, b->y, b->gz, (size_t)N * H * D));
    if (cap && cap->zero_head)
        for (int n = 0; n < N; n++)
            for (int h = 0; h < H; h++)
                if (cap->zero_head[l * H + h]) memset(b->yg + ((size_t)n * H + h) * D, 0, sizeof(float) * D);
    TIMED(m, MOE_OP_MATMUL, matmul_forward(b->o, b->yg, W->wo, N, H * D, C));
    if (cap && cap->ablate_attn)
        ablate_positions(b->o, cap->ablate_attn + (size_t)l * T, cap->attn_repl ? cap->attn_repl + (size_t)l * C : NULL,
                         B, T, C);
}

/* backward of attention_block_forward: dresid holds d x_mid on entry; the attention branch's
 * gradient is added to it, so on exit it holds d x (the residual passes the gradient through) */
static void attention_block_backward(Moe *m, int l, float *dresid) {
    const MoeConfig *c = &m->cfg;
    MoeActs *a = m->acts;
    BlockActs *b = &a->blk[l];
    int B = a->B, T = a->T, N = B * T, C = c->d_model, H = c->n_head, KV = c->n_kv_head, D = c->head_dim;
    const BlockWeights *W = &m->weights.block[l], *dW = &m->weight_grads.block[l];
    size_t NHD = (size_t)N * H * D;
    /* the first product into a gradient buffer writes it (accumulate 0) instead of adding to zeros */
    float *dyg = c->attn_gate ? a->dyg : a->dy;
    Gemm wo[2] = {linear_dw(dW->wo, dresid, b->yg, N, H * D, C), linear_din(dyg, dresid, W->wo, N, H * D, C)};
    wo[1].accumulate = 0;
    TIMED(m, MOE_OP_MATMUL, gemm_batch(wo, 2));
    if (c->attn_gate) {
        memset(a->dy, 0, sizeof(float) * NHD);
        memset(a->dgz, 0, sizeof(float) * NHD);
        TIMED(m, MOE_OP_ELEMENTWISE, gate_backward(a->dy, a->dgz, dyg, b->y, b->gz, NHD));
        Gemm gz[2] = {linear_dw(dW->attn_gate, a->dgz, b->xn1, N, C, H * D),
                      linear_din(a->dxn, a->dgz, W->attn_gate, N, C, H * D)};
        gz[1].accumulate = 0;
        TIMED(m, MOE_OP_MATMUL, gemm_batch(gz, 2));
    }
    TIMED(m, MOE_OP_ATTENTION,
          attention_backward(a->dq, a->dk, a->dv, dW->sink, a->dy, b->y, b->lse, b->q, b->k, b->v, W->sink, B, T, H,
                             KV, D, c->attn_window));
    if (!c->learned_pos) {
        TIMED(m, MOE_OP_ELEMENTWISE, rope_backward(a->dq, a->rope_cos, a->rope_sin, N, T, H, D));
        TIMED(m, MOE_OP_ELEMENTWISE, rope_backward(a->dk, a->rope_cos, a->rope_sin, N, T, KV, D));
    }
    float *dq = a->dq, *dk = a->dk;
    if (c->qk_norm) {
        memset(a->dq_pre, 0, sizeof(float) * (size_t)N * H * D);
        memset(a->dk_pre, 0, sizeof(float) * (size_t)N * KV * D);
        TIMED(m, MOE_OP_ELEMENTWISE,
              norm_backward(a->dq_pre, dW->q_norm, NULL, a->dq, b->q_pre, W->q_norm, b->q_rstd, N * H, D));
        TIMED(m, MOE_OP_ELEMENTWISE,
              norm_backward(a->dk_pre, dW->k_norm, NULL, a->dk, b->k_pre, W->k_norm, b->k_rstd, N * KV, D));
        dq = a->dq_pre, dk = a->dk_pre;
    }
    /* the weight gradients of q, k and v (each reads the same input, packed in its own tiles) share
     * a pass with q's input gradient; k's and v's also add into dxn, so each takes a pass of its own,
     * in that order */
    Gemm qkv[4] = {linear_dw(dW->wq, dq, b->xn1, N, C, H * D), linear_dw(dW->wk, dk, b->xn1, N, C, KV * D),
                   linear_dw(dW->wv, a->dv, b->xn1, N, C, KV * D), linear_din(a->dxn, dq, W->wq, N, C, H * D)};
    qkv[3].accumulate = c->attn_gate; /* the first product into dxn, unless the gate's came first */
    Gemm din_k = linear_din(a->dxn, dk, W->wk, N, C, KV * D), din_v = linear_din(a->dxn, a->dv, W->wv, N, C, KV * D);
    TIMED(m, MOE_OP_MATMUL, gemm_batch(qkv, 4));
    TIMED(m, MOE_OP_MATMUL, gemm_batch(&din_k, 1));
    TIMED(m, MOE_OP_MATMUL, gemm_batch(&din_v, 1));
    TIMED(m, MOE_OP_ELEMENTWISE,
          norm_backward(dresid, dW->attn_norm, dW->attn_norm_bias, a->dxn, resid_at(m, 2 * l), W->attn_norm, b->rstd1,
                        N, C));
}

/* --- the MoE block: the permutation into expert order and back, each step beside its backward; then
 * the block's forward and backward --- */

/* counting sort of the N*k routing slots by expert; within an expert, slots stay in token order */
static void group_by_expert(BlockActs *b, int N, int E, int k) {
    int *start = b->expert_start, *fill = st_malloc(sizeof(int) * (size_t)E);
    memset(start, 0, sizeof(int) * (size_t)(E + 1));
    for (size_t s = 0; s < (size_t)N * k; s++) start[b->idx[s] + 1]++;
    for (int e = 0; e < E; e++) start[e + 1] += start[e];
    memcpy(fill, start, sizeof(int) * (size_t)E);
    for (size_t s = 0; s < (size_t)N * k; s++) {
        int r = fill[b->idx[s]]++;
        b->slot_row[s] = r;
        b->row_token[r] = (int)(s / (size_t)k);
    }
    free(fill);
}

/* xg[r] = xn2[token of grouped row r]: the MoE input permuted into expert order */
static void gather_rows(BlockActs *b, int rows, int C) {
#pragma omp parallel for schedule(static)
    for (int r = 0; r < rows; r++)
        memcpy(b->xg + (size_t)r * C, b->xn2 + (size_t)b->row_token[r] * C, sizeof(float) * C);
}

/* backward of gather_rows: each token's gradient dxn[n] is the sum of the gradients of its k grouped
 * rows, slots summed in order */
static void gather_rows_backward(float *dxn, const float *dxg, const BlockActs *b, int N, int K, int C) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) { /* dxn[n] = the sum of its k slots' rows (written: the first into dxn) */
        float *dst = dxn + (size_t)n * C;
        memcpy(dst, dxg + (size_t)b->slot_row[n * K] * C, sizeof(float) * C);
        for (int j = 1; j < K; j++) {
            const float *src = dxg + (size_t)b->slot_row[n * K + j] * C;
            for (int ch = 0; ch < C; ch++) dst[ch] += src[ch];
        }
    }
}

/* mo[n] = sum_j w[n][j] eo[grouped row of slot (n, j)]: back to token order, weighted */
static void combine_expert_outputs(BlockActs *b, int N, int K, int C) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        float *out = b->mo + (size_t)n * C;
        for (int ch = 0; ch < C; ch++) out[ch] = 0.0f;
        for (int j = 0; j < K; j++) {
            const float *eo = b->eo + (size_t)b->slot_row[n * K + j] * C;
            float wj = b->w[n * K + j];
            for (int ch = 0; ch < C; ch++) out[ch] += wj * eo[ch];
        }
    }
}

/* backward of combine_expert_outputs. m_n = sum_j w_nj eo_nj:  d eo_nj = w_nj dm_n (into deo, in
 * expert order),  d w_nj = dm_n . eo_nj (into dw) */
static void combine_expert_outputs_backward(MoeActs *a, const BlockActs *b, const float *dmo, int N, int K, int C) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++)
        for (int j = 0; j < K; j++) {
            int s = n * K + j;
            const float *dm = dmo + (size_t)n * C, *eo = b->eo + (size_t)b->slot_row[s] * C;
            float *deo = a->deo + (size_t)b->slot_row[s] * C, dot = 0.0f;
            for (int ch = 0; ch < C; ch++) {
                dot += dm[ch] * eo[ch];
                deo[ch] = b->w[s] * dm[ch];
            }
            a->dw[s] = dot;
        }
}

/* m = sum_j w_j expert_{e_j}(xn), each expert w_down (silu(w_gate xn) * w_up xn) (SwiGLU) or w_down
 * relu(w_up xn): route, group the slots by expert, run each expert as dense matmuls over its rows, and
 * combine. A dense block (E = 1) routes every token to expert 0 with weight 1. */
static void moe_block_forward(Moe *m, int l) {
    const MoeConfig *c = &m->cfg;
    MoeActs *a = m->acts;
    BlockActs *b = &a->blk[l];
    const BlockWeights *W = &m->weights.block[l];
    int N = a->B * a->T, C = c->d_model, E = c->n_expert, K = c->top_k, F = c->d_ff;
    if (is_dense(c)) {
        for (int n = 0; n < N; n++) b->idx[n] = 0, b->w[n] = 1.0f;
        b->aux = b->z = 0.0f;
    } else {
        TIMED(m, MOE_OP_MATMUL,
              matmul_forward(b->rlogits, b->xn2, W->router, N, C, E));
        TIMED(m, MOE_OP_ROUTING, softmax_forward(b->probs, b->rlogits, N, E));
        TIMED(m, MOE_OP_ROUTING, topk_forward(b->idx, b->w, b->probs, N, E, K, c->norm_topk));
        routing_counts(b->shares, b->idx, N, E, K);
        if (m->sum_counts) m->sum_counts(b->shares, (size_t)E); /* the whole data-parallel batch's */
        routing_shares(b->shares, E);
        TIMED(m, MOE_OP_ROUTING, b->aux = aux_loss_forward(b->probs, b->shares, N, E));
        TIMED(m, MOE_OP_ROUTING, b->z = z_loss_forward(b->rlogits, N, E));
    }
    TIMED(m, MOE_OP_ROUTING, group_by_expert(b, N, E, K));
    TIMED(m, MOE_OP_ROUTING, gather_rows(b, N * K, C));
    int swiglu = c->mlp == MOE_MLP_SWIGLU;
    Gemm g[2 * E]; /* every expert's gate and up products in one parallel pass, then every down product */
    int n = 0;
    for (int e = 0; e < E; e++) {
        int r0 = b->expert_start[e], ne = b->expert_start[e + 1] - r0;
        m->expert_load[l * E + e] = (float)ne / (float)(N * K);
        if (!ne) continue;
        if (swiglu)
            g[n++] = linear_forward(b->g + (size_t)r0 * F, b->xg + (size_t)r0 * C, W->w_gate + (size_t)e * F * C, ne,
                                    C, F);
        float *up = (swiglu ? b->u : b->h) + (size_t)r0 * F;
        g[n] = linear_forward(up, b->xg + (size_t)r0 * C, W->w_up + (size_t)e * F * C, ne, C, F);
        if (!swiglu) g[n].relu_mask = up; /* h = max(xg w_up^T, 0), in the product's tiles */
        n++;
    }
    TIMED(m, MOE_OP_MATMUL, gemm_batch(g, n));
    if (swiglu) TIMED(m, MOE_OP_ELEMENTWISE, swiglu_forward(b->h, b->g, b->u, (size_t)N * K * F));
    n = 0;
    for (int e = 0; e < E; e++) {
        int r0 = b->expert_start[e], ne = b->expert_start[e + 1] - r0;
        if (ne)
            g[n++] = linear_forward(b->eo + (size_t)r0 * C, b->h + (size_t)r0 * F, W->w_down + (size_t)e * C * F, ne, F, C);
    }
    TIMED(m, MOE_OP_MATMUL, gemm_batch(g, n));
    TIMED(m, MOE_OP_ROUTING, combine_expert_outputs(b, N, K, C));
}

/* backward of moe_block_forward: dmo [N][C] in, writes dxn (the MoE input's gradient) and adds into the
 * expert and router weights' gradients */
static void moe_block_backward(Moe *m, int l, const float *dmo, float *dxn, float scale) {
    const MoeConfig *c = &m->cfg;
    MoeActs *a = m->acts;
    BlockActs *b = &a->blk[l];
    int N = a->B * a->T, C = c->d_model, E = c->n_expert, K = c->top_k, F = c->d_ff, L = c->n_layer;
    TIMED(m, MOE_OP_ROUTING, combine_expert_outputs_backward(a, b, dmo, N, K, C));
    size_t NK = (size_t)N * K;
    const BlockWeights *W = &m->weights.block[l], *dW = &m->weight_grads.block[l];
    int swiglu = c->mlp == MOE_MLP_SWIGLU;
    /* each step runs every expert's products in one parallel pass. Every grouped row belongs to one
     * expert, so the first product into dh (du for ReLU) and into dxg overwrites them (no zeroing pass). */
    Gemm g[3 * E];
    int n = 0;
    for (int e = 0; e < E; e++) { /* down: dh = deo W_down (ReLU: du, masked), dW_down += deo^T h */
        int r0 = b->expert_start[e], ne = b->expert_start[e + 1] - r0;
        if (!ne) continue;
        g[n] = linear_din((swiglu ? a->dh : a->du) + (size_t)r0 * F, a->deo + (size_t)r0 * C,
                          W->w_down + (size_t)e * C * F, ne, F, C);
        g[n].accumulate = 0;
        if (!swiglu) g[n].relu_mask = b->h + (size_t)r0 * F; /* du = dh where h > 0, i.e. where u > 0 */
        n++;
        g[n++] = linear_dw(dW->w_down + (size_t)e * C * F, a->deo + (size_t)r0 * C, b->h + (size_t)r0 * F, ne, F, C);
    }
    TIMED(m, MOE_OP_MATMUL, gemm_batch(g, n));
    if (swiglu) TIMED(m, MOE_OP_ELEMENTWISE, swiglu_backward(a->dg, a->du, a->dh, b->g, b->u, NK * F));
    n = 0;
    for (int e = 0; e < E; e++) { /* dxg = dg W_gate, dW_gate += dg^T xg (SwiGLU), dW_up += du^T xg */
        int r0 = b->expert_start[e], ne = b->expert_start[e + 1] - r0;
        if (!ne) continue;
        const float *xg = b->xg + (size_t)r0 * C, *du = a->du + (size_t)r0 * F;
        if (swiglu) {
            const float *dg = a->dg + (size_t)r0 * F;
            g[n] = linear_din(a->dxg + (size_t)r0 * C, dg, W->w_gate + (size_t)e * F * C, ne, C, F);
            g[n++].accumulate = 0;
            g[n++] = linear_dw(dW->w_gate + (size_t)e * F * C, dg, xg, ne, C, F);
        }
        g[n++] = linear_dw(dW->w_up + (size_t)e * F * C, du, xg, ne, C, F);
    }
    TIMED(m, MOE_OP_MATMUL, gemm_batch(g, n));
    n = 0;
    for (int e = 0; e < E; e++) { /* dxg += du W_up (after the gate's product: both write dxg; else it writes) */
        int r0 = b->expert_start[e], ne = b->expert_start[e + 1] - r0;
        if (!ne) continue;
        g[n] = linear_din(a->dxg + (size_t)r0 * C, a->du + (size_t)r0 * F, W->w_up + (size_t)e * F * C, ne, C, F);
        g[n++].accumulate = swiglu;
    }
    TIMED(m, MOE_OP_MATMUL, gemm_batch(g, n));
    TIMED(m, MOE_OP_ROUTING, gather_rows_backward(dxn, a->dxg, b, N, K, C));
    if (is_dense(c)) return;
    /* router: weights <- top-k <- softmax <- logits, plus the aux loss on the probabilities and the
     * z-loss on the logits, each averaged over the L blocks */
    memset(a->dprobs, 0, sizeof(float) * (size_t)N * E);
    memset(a->drlogits, 0, sizeof(float) * (size_t)N * E);
    TIMED(m, MOE_OP_ROUTING, topk_backward(a->dprobs, a->dw, b->probs, b->idx, b->w, N, E, K, c->norm_topk));
    TIMED(m, MOE_OP_ROUTING, aux_loss_backward(a->dprobs, scale * c->aux_loss_coef / L, b->shares, N, E));
    TIMED(m, MOE_OP_ROUTING, softmax_backward(a->drlogits, a->dprobs, b->probs, N, E));
    TIMED(m, MOE_OP_ROUTING, z_loss_backward(a->drlogits, scale * c->z_loss_coef / L, b->rlogits, N, E));
    TIMED(m, MOE_OP_MATMUL, matmul_backward(dxn, dW->router, a->drlogits, b->xn2, W->router, N, C, E));
}

/* --- the whole model --- */

/* copies what the capture asks for out of the activations, into its [L][B]... layouts */
static void capture_block(const Moe *m, int l, MoeCapture *cap) {
    const MoeConfig *c = &m->cfg;
    const MoeActs *a = m->acts;
    const BlockActs *b = &a->blk[l];
    size_t B = a->B, T = a->T, N = B * T, C = c->d_model, H = c->n_head, KV = c->n_kv_head, D = c->head_dim;
    size_t E = c->n_expert, K = c->top_k, F = c->d_ff;
    if (cap->attn) /* recomputed from the saved lse: training never holds the B x H x T x T probabilities */
        attention_probs(cap->attn + l * B * H * T * T, b->lse, b->q, b->k, (int)B, (int)T, (int)H, (int)KV, (int)D,
                        attention_window(m, cap));
    if (cap->attn_out) memcpy(cap->attn_out + l * N * C, b->o, sizeof(float) * N * C);
    if (cap->moe_out) memcpy(cap->moe_out + l * N * C, b->mo, sizeof(float) * N * C);
    if (cap->q) memcpy(cap->q + l * N * H * D, b->q, sizeof(float) * N * H * D);
    if (cap->k) memcpy(cap->k + l * N * KV * D, b->k, sizeof(float) * N * KV * D);
    if (cap->v) memcpy(cap->v + l * N * KV * D, b->v, sizeof(float) * N * KV * D);
    if (cap->router_probs && !is_dense(c)) memcpy(cap->router_probs + l * N * E, b->probs, sizeof(float) * N * E);
    if (cap->router_choice) memcpy(cap->router_choice + l * N * K, b->idx, sizeof(int) * N * K);
    if (cap->moe_hidden && l < 2) /* back from expert order to [token][slot] order */
        for (size_t s = 0; s < N * K; s++)
            memcpy(cap->moe_hidden + (l * N * K + s) * F, b->h + (size_t)b->slot_row[s] * F, sizeof(float) * F);
}

static int has_intervention(const MoeCapture *cap) {
    return cap && (cap->zero_head || cap->ablate_attn || cap->ablate_moe || cap->patch_vec || cap->pos_offset ||
                   cap->window > 0);
}

float moe_forward(Moe *m, const int *tokens, const int *targets, int B, int T, MoeCapture *cap) {
    const MoeConfig *c = &m->cfg;
    if (T > c->seq_len || T < 1 || B < 1) {
        fprintf(stderr, "error: moe_forward: T %d must be in 1..seq_len %d and B %d >= 1\n", T, c->seq_len, B);
        exit(1);
    }
    ensure_rows(m, B, T);
    MoeActs *a = m->acts;
    int N = B * T, C = c->d_model, L = c->n_layer, V = c->vocab_size;
    a->B = B, a->T = T;
    memcpy(a->tokens, tokens, sizeof(int) * (size_t)N);
    if (c->learned_pos && cap && cap->pos_offset) {
        fprintf(stderr, "internal error: moe_forward: pos_offset shifts RoPE, and this model has learned positions\n");
        exit(1);
    }
    if (!c->learned_pos)
        rope_table(a->rope_cos, a->rope_sin, T, c->head_dim, c->rope_theta, cap ? cap->pos_offset : 0);

    TIMED(m, MOE_OP_ELEMENTWISE, embed_forward(resid_at(m, 0), tokens, m->weights.wte, N, C));
    if (c->learned_pos)
        TIMED(m, MOE_OP_ELEMENTWISE, position_embed_forward(resid_at(m, 0), m->weights.wpe, N, T, C));
    apply_patch(m, cap, 0);
    const MoeWeights *W = &m->weights;
    TIMED(m, MOE_OP_ELEMENTWISE, norm_forward(a->blk[0].xn1, a->blk[0].rstd1, resid_at(m, 0), W->block[0].attn_norm,
                                              W->block[0].attn_norm_bias, N, C, c->rms_eps));
    for (int l = 0; l < L; l++) {
        BlockActs *b = &a->blk[l];
        attention_block_forward(m, l, cap);
        residual_and_norm(m, cap, 2 * l + 1, resid_at(m, 2 * l), b->o, W->block[l].moe_norm, W->block[l].moe_norm_bias,
                          b->xn2, b->rstd2);
        moe_block_forward(m, l);
        if (cap && cap->ablate_moe)
            ablate_positions(b->mo, cap->ablate_moe + (size_t)l * T, cap->moe_repl ? cap->moe_repl + (size_t)l * C : NULL,
                             B, T, C);
        if (l + 1 < L) /* the residual after block l, normalised for block l+1's attention */
            residual_and_norm(m, cap, 2 * l + 2, resid_at(m, 2 * l + 1), b->mo, W->block[l + 1].attn_norm,
                              W->block[l + 1].attn_norm_bias, a->blk[l + 1].xn1, a->blk[l + 1].rstd1);
        else /* or for the LM head */
            residual_and_norm(m, cap, 2 * l + 2, resid_at(m, 2 * l + 1), b->mo, W->final_norm, W->final_norm_bias,
                              a->xnf, a->rstdf);
        if (cap) capture_block(m, l, cap);
    }
    if (cap && cap->resid)
        for (int p = 0; p <= 2 * L; p++)
            memcpy(cap->resid + (size_t)p * N * C, resid_at(m, p), sizeof(float) * (size_t)N * C);

    const float *head = m->weights.lm_head;
    a->backward_ready = 0;
    if (!targets) { /* inference: every row's logits, into the [N][V] buffer allocated on first use */
        if (!m->logits) m->logits = fbuf((size_t)a->N_cap * V);
        TIMED(m, MOE_OP_MATMUL, matmul_forward(m->logits, a->xnf, head, N, C, V));
        return 0.0f;
    }
    memcpy(a->targets, targets, sizeof(int) * (size_t)N);
    MoeLoss *loss = &m->loss;
    TIMED(m, MOE_OP_LOSS,
          loss->ce = lm_head_loss_forward(a->head_lse, a->head_chunk, a->xnf, head, targets, N, C, V, MOE_LOSS_CHUNK,
                                          &loss->n_targets));
    double aux = 0.0, z = 0.0;
    for (int l = 0; l < L; l++) aux += a->blk[l].aux, z += a->blk[l].z;
    loss->aux = (float)(aux / L);
    loss->z = (float)(z / L);
    loss->loss = loss->ce + c->aux_loss_coef * loss->aux + c->z_loss_coef * loss->z;
    a->backward_ready = !has_intervention(cap);
    return loss->loss;
}

void moe_backward(Moe *m, float scale) {
    const MoeConfig *c = &m->cfg;
    MoeActs *a = m->acts;
    if (!a || !a->backward_ready) {
        fprintf(stderr, "internal error: moe_backward needs a forward with targets and no intervention\n");
        exit(1);
    }
    int N = a->B * a->T, C = c->d_model, V = c->vocab_size, L = c->n_layer;
    const MoeWeights *W = &m->weights, *dW = &m->weight_grads;
    /* loss -> logits -> final norm */
    memset(a->dxn, 0, sizeof(float) * (size_t)N * C);
    TIMED(m, MOE_OP_LOSS,
          lm_head_loss_backward(a->dxn, dW->lm_head, a->head_chunk, scale, a->xnf, W->lm_head,
                                a->head_lse, a->targets, N, C, V, MOE_LOSS_CHUNK));
    memset(a->dresid, 0, sizeof(float) * (size_t)N * C);
    TIMED(m, MOE_OP_ELEMENTWISE, norm_backward(a->dresid, dW->final_norm, dW->final_norm_bias, a->dxn,
                                               resid_at(m, 2 * L), W->final_norm, a->rstdf, N, C));
    /* blocks in reverse; dresid is the gradient of the residual stream at the current point */
    for (int l = L - 1; l >= 0; l--) {
        BlockActs *b = &a->blk[l];
        moe_block_backward(m, l, a->dresid, a->dxn, scale); /* writes dxn */
        TIMED(m, MOE_OP_ELEMENTWISE, norm_backward(a->dresid, dW->block[l].moe_norm, dW->block[l].moe_norm_bias, a->dxn,
                                                   resid_at(m, 2 * l + 1), W->block[l].moe_norm, b->rstd2, N, C));
        attention_block_backward(m, l, a->dresid);
    }
    TIMED(m, MOE_OP_ELEMENTWISE, embed_backward(dW->wte, a->dresid, a->tokens, N, C, V));
    if (c->learned_pos) TIMED(m, MOE_OP_ELEMENTWISE, position_embed_backward(dW->wpe, a->dresid, N, a->T, C));
}
