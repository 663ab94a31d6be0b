/* model/moe.h: a miniature Qwen3-MoE transformer with hand-written forward and backward passes.
 *
 * The model knows nothing of files, flags or probe metrics. It exposes its parameters (one contiguous
 * float buffer plus a table of named tensors), forward, backward, and an optional capture hook that
 * records internals and applies interventions for the probes. Training passes NULL and pays nothing.
 *
 * Shapes: B sequences of T tokens; C = d_model; H query heads and KV key/value heads of D = head_dim
 * channels; E experts, top-k routing, F = d_ff hidden units per expert; V = vocab_size; L = n_layer.
 * Every weight matrix is stored [out][in] (rows are outputs), like torch.nn.Linear. */
#ifndef SINKTRACE_MOE_H
#define SINKTRACE_MOE_H

#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------------------------------------------ */
/* Config */

enum { MOE_NORM_RMS, MOE_NORM_LAYER };  /* MoeConfig.norm, in the order of the config key norm = rms|layer */
enum { MOE_MLP_SWIGLU, MOE_MLP_RELU };  /* MoeConfig.mlp, in the order of mlp = swiglu|relu */

typedef struct {
    int vocab_size;
    int seq_len;    /* largest T the model is built for */
    int d_model;
    int n_layer;
    int n_head;
    int n_kv_head;  /* grouped-query attention: n_head / n_kv_head query heads share one K/V head */
    int head_dim;   /* 0 = d_model / n_head (resolved by moe_config_validate) */
    float rope_theta;
    int learned_pos; /* 1 = learned absolute positions (GPT-2's wpe, added to the token embeddings), no RoPE */
    int qk_norm;    /* per-head RMSNorm of q and k before RoPE (Qwen3) */
    int norm;       /* the block and final norms: MOE_NORM_RMS, or MOE_NORM_LAYER (GPT-2's, with a bias) */
    int mlp;        /* each expert: MOE_MLP_SWIGLU, or MOE_MLP_RELU (GPT-2's w_down relu(w_up x), no w_gate) */
    int attn_window;     /* > 0: sliding-window attention, query i sees keys i - j < attn_window */
    int attn_sink_logit; /* a learned per-head logit for an extra always-visible key of value zero */
    int attn_gate;       /* sigmoid gate on each head's output, from the block input (Qiu et al.) */
    int n_expert;   /* 1 (with top_k 1) = a dense MLP block with no router */
    int top_k;
    int d_ff;       /* hidden units of each expert */
    int norm_topk;  /* renormalise the k routing weights to sum to 1 */
    float aux_loss_coef;
    float z_loss_coef;
    int tie_embeddings; /* LM head reuses the token embedding */
    float rms_eps;  /* epsilon of every norm (RMSNorm and LayerNorm) */
    float init_std;
    float embed_std; /* std of the initial token (and position) embeddings; 0 = init_std */
    uint64_t seed;
} MoeConfig;

void moe_config_default(MoeConfig *c);
/* Checks every field and every combination; resolves head_dim = 0. Returns 0, or -1 with a one-line
 * message naming the field in err (ST_ERR_LEN bytes). */
int moe_config_validate(MoeConfig *c, char *err);

/* ------------------------------------------------------------------------------------------------ */
/* Parameters */

typedef struct {
    char name[40];   /* e.g. "blocks.3.attn.wq" */
    int ndim;
    int shape[3];
    size_t offset;   /* into Moe.params / Moe.grads, in floats */
    size_t size;     /* number of floats */
    int decay;       /* 1 for matrices (weight decay applies), 0 for norm gains and sink logits */
} MoeTensor;

/* The same tensors as typed pointers into one buffer (params or grads): the model's code reaches its
 * weights through these; the names above are for checkpoints, export and probes. A tensor the config
 * leaves out is NULL (q_norm and k_norm without qk_norm, sink without attn_sink_logit, attn_gate
 * without attn_gate, router when n_expert is 1, the norm biases with RMSNorm, moe.w_gate with a ReLU MLP). */
typedef struct {
    float *attn_norm;      /* blocks.l.attn_norm [C] */
    float *attn_norm_bias; /* blocks.l.attn_norm_bias [C] (LayerNorm only) */
    float *wq, *wk, *wv;   /* blocks.l.attn.wq [H*D][C], attn.wk and attn.wv [KV*D][C] */
    float *q_norm, *k_norm; /* blocks.l.attn.q_norm, attn.k_norm [D] */
    float *sink;           /* blocks.l.attn.sink [H] */
    float *attn_gate;      /* blocks.l.attn.w_gate [H*D][C] */
    float *wo;             /* blocks.l.attn.wo [C][H*D] */
    float *moe_norm;       /* blocks.l.moe_norm [C] */
    float *moe_norm_bias;  /* blocks.l.moe_norm_bias [C] (LayerNorm only) */
    float *router;         /* blocks.l.moe.router [E][C] */
    float *w_gate, *w_up;  /* blocks.l.moe.w_gate (SwiGLU only), moe.w_up [E][F][C] */
    float *w_down;         /* blocks.l.moe.w_down [E][C][F] */
} BlockWeights;

typedef struct {
    float *wte;            /* [V][C] */
    float *wpe;            /* [seq_len][C] learned position embeddings; NULL without learned_pos */
    BlockWeights *block;   /* [L] */
    float *final_norm;     /* [C] */
    float *final_norm_bias; /* [C] (LayerNorm only) */
    float *lm_head;        /* [V][C]; with tie_embeddings, wte itself */
} MoeWeights;

/* ------------------------------------------------------------------------------------------------ */
/* Capture and interventions (forward only). Every pointer may be NULL (= not wanted). Output arrays
 * are allocated by the caller for the B and T of the forward call; l = block, p = residual point. */

typedef struct {
    /* captured */
    float *attn;        /* [L][B][H][T][T] attention probabilities (query row, key column) */
    float *resid;       /* [2L+1][B][T][C] residual stream: p = 0 embeddings, 2l+1 after block l's
                           attention residual (the paper's l+0.5), 2l+2 after block l (l+1) */
    float *attn_out;    /* [L][B][T][C] o^l: block l's attention output (after Wo, before the add) */
    float *moe_out;     /* [L][B][T][C] m^l: block l's MoE output (before the add) */
    float *q;           /* [L][B][T][H][D] queries after QK-norm and RoPE (what the scores use) */
    float *k;           /* [L][B][T][KV][D] keys after QK-norm and RoPE */
    float *v;           /* [L][B][T][KV][D] values */
    float *router_probs;/* [L][B][T][E] router softmax (absent for dense blocks: left untouched) */
    int *router_choice; /* [L][B][T][k] chosen experts, in order of decreasing probability */
    float *moe_hidden;  /* [2][B][T][k][F] expert hidden units (silu(g)*u or relu(u)) of blocks 0 and 1,
                           per chosen slot */

    /* interventions */
    const unsigned char *zero_head; /* [L][H]: 1 = zero that head's output (before Wo) */
    const unsigned char *ablate_attn; /* [L][T]: 1 = replace block l's attention output at position t */
    const float *attn_repl;         /* [L][C] the replacement vector; NULL = zeros */
    const unsigned char *ablate_moe;  /* [L][T]: 1 = replace block l's MoE output at position t */
    const float *moe_repl;          /* [L][C] the replacement vector; NULL = zeros */
    int patch_point;                /* residual point to overwrite (0..2L), -1 = none */
    int patch_pos;                  /* position to overwrite */
    const float *patch_vec;         /* [B][C] the new residual at (patch_point, patch_pos) per sequence */
    int pos_offset;                 /* RoPE positions start here instead of 0 (RoPE models only) */
    int window;                     /* > 0: query i sees only keys j with i - j < window */
} MoeCapture;

/* all pointers NULL, no intervention */
void moe_capture_init(MoeCapture *cap);

/* ------------------------------------------------------------------------------------------------ */
/* The model */

typedef struct {
    float loss; /* ce + aux_loss_coef * aux + z_loss_coef * z */
    float ce;   /* mean cross-entropy over targets != -1 (nats per token) */
    float aux;  /* load-balancing loss averaged over MoE layers (1 = perfectly balanced; 0 if dense) */
    float z;    /* router z-loss averaged over MoE layers and tokens (0 if dense) */
    int n_targets;
} MoeLoss;

typedef struct MoeActs MoeActs; /* activation buffers, private to moe.c */

/* Where the time of forward and backward goes, by class of operation (bin/bench reports it).
 * MOE_OP_ROUTING is the router's softmax, top-k, aux and z losses and the token permutation to and
 * from expert order; MOE_OP_ELEMENTWISE is the norms, RoPE, SwiGLU or ReLU, embedding and residual adds;
 * MOE_OP_LOSS is the LM head's products and the cross-entropy, one chunked kernel in training. */
enum { MOE_OP_MATMUL, MOE_OP_ATTENTION, MOE_OP_ROUTING, MOE_OP_ELEMENTWISE, MOE_OP_LOSS, MOE_OP_CLASSES };
extern const char *const moe_op_class_names[MOE_OP_CLASSES]; /* "matmul", "attention", ... */

typedef struct {
    MoeConfig cfg;
    size_t n_params;
    float *params;
    float *grads;
    int n_tensors;
    MoeTensor *tensors;
    MoeWeights weights;      /* every tensor's values in params, by field */
    MoeWeights weight_grads; /* and in grads */
    MoeActs *acts;   /* grown on demand to the largest B*T seen */
    /* [B][T][V] logits of the last forward WITHOUT targets (inference: sampling, tests), allocated by
     * the first such forward (NULL before). A forward with targets (training, probes) computes the LM
     * head and the loss in chunks of rows (lm_head_loss_forward) and neither allocates nor updates it. */
    float *logits;
    MoeLoss loss;    /* of the last forward with targets */
    /* expert load of the last forward: [L][E] share of the k*B*T routing slots per expert */
    float *expert_load;
    /* data parallelism (set by train/dist around training forwards, NULL otherwise): sums x[0..n) over
     * the replicas sharing a batch, used for each MoE block's routing counts so that the load-balancing
     * loss sees the whole batch's f_i, as one process would */
    void (*sum_counts)(double *x, size_t n);
    /* wall-clock seconds per operation class, accumulated by every forward and backward (zero it to
     * start a measurement; it costs two clock reads per operation call) */
    double op_seconds[MOE_OP_CLASSES];
} Moe;

/* validates cfg, allocates, and initialises the parameters from cfg.seed */
int moe_init(Moe *m, const MoeConfig *cfg, char *err);
/* validates cfg and counts the parameters moe_init would allocate, without allocating them (a
 * checkpoint's stored config is checked against its size this way before a model is built) */
int moe_count_params(const MoeConfig *cfg, size_t *n_params, char *err);
void moe_free(Moe *m);
const MoeTensor *moe_find(const Moe *m, const char *name); /* NULL if absent */
/* deterministic init from cfg.seed: normal(0, init_std); output projections (attn.wo, expert down)
 * scaled by 1/sqrt(2 L); embeddings (wte, wpe) normal(0, embed_std) when it is set; norm gains 1;
 * sink logits 0 */
void moe_init_params(Moe *m);

/* Forward for tokens [B][T] (ids < V, T <= seq_len). targets [B][T] (-1 = ignored) may be NULL: then
 * only the logits are computed, into m->logits. Returns the total loss (0 without targets). cap may be NULL.
 * Forwards and backwards run in parallel inside (OpenMP) and share one packing buffer per process:
 * call them from one thread at a time, not from inside a parallel region. */
float moe_forward(Moe *m, const int *tokens, const int *targets, int B, int T, MoeCapture *cap);
void moe_zero_grad(Moe *m);
/* Adds scale * d(total loss)/d(params) of the last forward into m->grads (scale = 1/grad_accum
 * for gradient accumulation). Needs a forward with targets and without capture interventions. */
void moe_backward(Moe *m, float scale);

/* ------------------------------------------------------------------------------------------------ */
/* The operations, each forward beside its backward. Exposed so tests can check each one against
 * finite differences. Backward functions ADD into their gradient outputs (+=), except two:
 * attention_backward and swiglu_backward WRITE theirs; rope_backward rotates dx in place. N = rows.
 * ReLU (mlp = relu) runs inside the experts' products (kernels.h: Gemm.relu_mask); its plain version
 * is ref_relu_forward/backward. */

void embed_forward(float *out, const int *tokens, const float *wte, int N, int C);
void embed_backward(float *dwte, const float *dout, const int *tokens, int N, int C, int V);
/* learned positions: out [N][C] += wpe [T][C] at each row's position n % T; the backward adds to
 * dwpe[t] the sum of dout over the sequences' rows at position t */
void position_embed_forward(float *out, const float *wpe, int N, int T, int C);
void position_embed_backward(float *dwpe, const float *dout, int N, int T, int C);

/* RMSNorm (bias NULL): out = in / rms(in) * gain; LayerNorm: out = (in - mean(in)) / sd(in) * gain + bias.
 * rstd [N] receives 1/rms or 1/sd; norm_backward's dbias is NULL for RMSNorm. */
void norm_forward(float *out, float *rstd, const float *in, const float *gain, const float *bias, int N, int C,
                  float eps);
void norm_backward(float *din, float *dgain, float *dbias, const float *dout, const float *in, const float *gain,
                   const float *rstd, int N, int C);
/* the residual add and the norm after it, fused (one pass over each row): out = x + branch, then
 * xn, rstd = norm_forward of out; the same values as the two steps apart. Its backward is
 * norm_backward adding into the residual's gradient. */
void residual_norm_forward(float *out, float *xn, float *rstd, const float *x, const float *branch,
                           const float *gain, const float *bias, int N, int C, float eps);

/* out[n][o] = sum_i in[n][i] * w[o][i] (on the blocked GEMM of gemm.c) */
void matmul_forward(float *out, const float *in, const float *w, int N, int IN, int OUT);
void matmul_backward(float *din, float *dw, const float *dout, const float *in, const float *w, int N, int IN,
                     int OUT);

/* RoPE. rope_table fills cos/sin [T][D/2] of the angle pos * theta^(-2i/D), pos = t + pos_offset;
 * rope_forward rotates the pair (i, i + D/2) of every head of x [N][n_heads][D] (row n is position
 * n % T) by that angle; the backward rotates the gradient back (the transpose of a rotation). */
void rope_table(float *cos_t, float *sin_t, int T, int D, float theta, int pos_offset);
void rope_forward(float *x, const float *cos_t, const float *sin_t, int N, int T, int n_heads, int D);
void rope_backward(float *dx, const float *cos_t, const float *sin_t, int N, int T, int n_heads, int D);
/* QK-norm and RoPE fused (one pass over each head): out = rope_forward of norm_forward(in) (RMSNorm) over the
 * N * n_heads rows of D channels, rstd [N * n_heads]; the same values as the two steps apart. With
 * cos_t NULL (learned positions) it only normalises. */
void qk_norm_rope_forward(float *out, float *rstd, const float *in, const float *gain, const float *cos_t,
                          const float *sin_t, int N, int T, int n_heads, int D, float eps);

/* causal softmax attention, fused (attention.c): q [B][T][H][D], k, v [B][T][KV][D], out [B][T][H][D];
 * lse [B][H][T] receives each query row's log softmax denominator, which is all the backward needs
 * to recompute the probabilities (no B x H x T x T buffer). window > 0 limits keys to i - j < window.
 * sink [H] (or NULL): a logit per head for an extra key whose value is zero (it takes attention and
 * adds nothing), so a row's probabilities may sum to < 1. attention_probs materialises the
 * probabilities att [B][H][T][T] (zeros where masked) from lse, for the probes. attention_backward
 * needs the forward's out, lse, sink and window; dsink [H] may be NULL when sink is NULL. Unlike the
 * other backwards it WRITES dq, dk and dv (each element has one writer; no zeroing pass first) and
 * adds into dsink. */
void attention_forward(float *out, float *lse, const float *q, const float *k, const float *v, const float *sink,
                       int B, int T, int H, int KV, int D, int window);
void attention_probs(float *att, const float *lse, const float *q, const float *k, int B, int T, int H, int KV,
                     int D, int window);
void attention_backward(float *dq, float *dk, float *dv, float *dsink, const float *dout, const float *out,
                        const float *lse, const float *q, const float *k, const float *v, const float *sink, int B,
                        int T, int H, int KV, int D, int window);

/* sigmoid gate: out = y * sigmoid(gate_logits), elementwise over n values */
void gate_forward(float *out, const float *y, const float *gate_logits, size_t n);
void gate_backward(float *dy, float *dgate_logits, const float *dout, const float *y, const float *gate_logits,
                   size_t n);

/* row-wise softmax with the maximum subtracted */
void softmax_forward(float *probs, const float *logits, int N, int E);
void softmax_backward(float *dlogits, const float *dprobs, const float *probs, int N, int E);

/* top-k of router probabilities (ties to the lower index), weights = those probabilities,
 * renormalised to sum 1 when norm_topk */
void topk_forward(int *idx, float *w, const float *probs, int N, int E, int k, int norm_topk);
void topk_backward(float *dprobs, const float *dw, const float *probs, const int *idx, const float *w, int N,
                   int E, int k, int norm_topk);

/* SwiGLU activation of an expert's hidden layer: h = silu(g) * u, elementwise over n values. Unlike
 * the other backwards, swiglu_backward WRITES dg and du (each hidden value has one gradient, so
 * the MoE block's backward skips zeroing two [N k][F] buffers first). */
void swiglu_forward(float *h, const float *g, const float *u, size_t n);
void swiglu_backward(float *dg, float *du, const float *dh, const float *g, const float *u, size_t n);

/* load balancing E * sum_i f_i P_i. routing_counts counts the N*k slots per expert; routing_shares
 * turns counts (summed over data-parallel replicas, if any) into shares f; P = mean of probs over the
 * N rows given. f carries no gradient. */
void routing_counts(double *counts, const int *idx, int N, int E, int k);
void routing_shares(double *f, int E);
float aux_loss_forward(const float *probs, const double *f, int N, int E);
void aux_loss_backward(float *dprobs, float dloss, const double *f, int N, int E);
/* router z-loss: mean over rows of logsumexp(logits)^2 */
float z_loss_forward(const float *logits, int N, int E);
void z_loss_backward(float *dlogits, float dloss, const float *logits, int N, int E);

/* rows of logits per chunk in training: 1024 x 257 floats (the default vocab) is a megabyte. Each chunk
 * is three parallel passes (logits, their gradient, the head's two backward products), so fewer
 * chunks meet at fewer barriers; a chunk stays a multiple of the GEMM's k block (256) and below its
 * k split (2048 rows), so the head's weight gradient sums in the same order whatever the chunk. */
enum { MOE_LOSS_CHUNK = 1024 };

/* The LM head and cross-entropy fused, over rows in chunks of `chunk`: logits = x w^T (x [N][C], w
 * [V][C]) exist only one chunk at a time, in scratch [chunk][V]. The forward returns the mean
 * cross-entropy over rows with target >= 0 (their count in n_valid) and keeps each row's logsumexp in
 * lse [N] (0 for ignored rows); the backward recomputes each chunk's logits and adds dx += dlogits w
 * and dw += dlogits^T x, dlogits = dloss (softmax - onehot(target)) / n_valid. Same results as
 * matmul_forward + the cross-entropy of the whole logits buffer (model/ref_kernels.h) and their
 * backwards, without the N x V buffers. */
float lm_head_loss_forward(float *lse, float *scratch, const float *x, const float *w, const int *targets, int N,
                           int C, int V, int chunk, int *n_valid);
void lm_head_loss_backward(float *dx, float *dw, float *scratch, float dloss, const float *x, const float *w,
                           const float *lse, const int *targets, int N, int C, int V, int chunk);

#endif
