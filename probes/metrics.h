/* probes/metrics.h: every probe metric of SCIENCE.md ("Definitions"), as pure functions of the arrays
 * a MoeCapture fills (their layouts are those of model/moe.h, with N probe sequences as the batch).
 *
 * Names follow SCIENCE.md. Conventions used throughout:
 *   - "median over positions" means over positions i >= 1 (position 0 is what is being compared);
 *   - a per-sequence ratio is computed first, then averaged over the N sequences;
 *   - residual points p = 0 .. 2L are stored at index p (the paper's p/2: 0, 0.5, 1, ..., L);
 *   - undefined values (0/0) are NaN, which the JSONL writer prints as null.
 * Nothing here allocates more than O(T) scratch per call; nothing depends on thread scheduling. */
#ifndef SINKTRACE_METRICS_H
#define SINKTRACE_METRICS_H

#include <stdint.h>

/* the shapes of one capture: N sequences of T tokens; see model/moe.h for the others */
typedef struct {
    int L, N, T, C;  /* layers, sequences, positions, d_model */
    int H, KV, D;    /* query heads, key/value heads, head_dim */
    int E, K, F;     /* experts, top-k, expert hidden units */
    int V;           /* vocabulary (token ids of the probe windows are below it) */
} ProbeDims;

/* ---- attention on a key --------------------------------------------------------------------- */

/* chance(T) = (H_T - 1) / (T - 1): the mean weight of uniform causal attention on key 0 over queries
 * i >= 1 (query i spreads 1/(i+1) on each key); 0.059 at T = 64 */
double chance(int T);

/* out[l*H + h] = mean_n mean_{i = q_first}^{T-1} A[l,h][n,i,key] for attn [L][N][H][T][T].
 *   a_p0      = attn_on_key(key 0, q_first 1)
 *   a_p0_gu   = attn_on_key(key 0, q_first 0)     (Gu et al.: includes query 0, divides by T)
 *   a_p0_late = attn_on_key(key 0, q_first T/2)
 *   a_k1      = attn_on_key(key 1, q_first 2)     (control)
 *   a_mid     = attn_on_key(key T/2, q_first T/2 + 1) (control) */
void attn_on_key(double *out, const float *attn, const ProbeDims *d, int key, int q_first);

/* share of the heads of layers first_layer .. last_layer (inclusive) whose score a[l*H + h] > eps */
double sink_rate(const double *a, int H, int first_layer, int last_layer, double eps);

/* ---- where attention parks ------------------------------------------------------------------ */

/* Which key a query i reads: position 0, the previous token i-1, or itself. */
typedef enum { KEY_P0 = 0, KEY_PREV = 1, KEY_SELF = 2 } KeyOfQuery;

/* out[l*H + h] = mean over n and queries i >= 1 of A[l,h][n,i,key(i)], counting only the queries with
 * classes[n][i] == cls (classes NULL or cls < 0: every query). NaN when no query counts.
 * a_prev = (KEY_PREV, all), a_self = (KEY_SELF, all), a_p0_trigger = (KEY_P0, STREAM_TRIGGER), ... */
void attn_on_relative(double *out, const float *attn, const ProbeDims *d, KeyOfQuery which, const uint8_t *classes,
                      int cls);

/* The induction score: out[l*H + h] = mean over n and the queries i >= 1 whose token occurred before
 * in the window of sum_{j=1}^{i} A[l,h][n,i,j] [x_{j-1} = x_i]: the attention on the tokens that
 * followed earlier occurrences of the query's token (what an induction head reads). NaN when no
 * query's token repeats. tokens [N][T]. */
void attn_on_successors(double *out, const float *attn, const int *tokens, const ProbeDims *d);

/* Attention mass by key token of head (l, h): mass[id] = mean over the counted queries i >= 1 (as in
 * attn_on_relative) of sum_{j=1}^{i} A[i,j] [x_j = id] (position 0 excluded: a_p0 has it), and
 * base[id] the same for uniform causal attention (count of id among keys 1..i over i+1). mass/base > 1:
 * the head prefers keys with that token over what it would get by spreading its attention evenly.
 * tokens [N][T]; mass and base [V] (d->V). Returns the number of queries counted. */
int attn_mass_by_token(double *mass, double *base, const float *attn, const int *tokens, const ProbeDims *d, int l,
                       int h, const uint8_t *classes, int cls);

/* The `top` token ids with the most attention mass (ties to the smaller id) into ids[top], with
 * mass[ids] and mass/base into top_mass, top_lift; unused slots get id -1 and NaN. */
void top_tokens(const double *mass, const double *base, int V, int top, int *ids, double *top_mass, double *top_lift);

/* Value norms of one K/V head (kvh) of one block, v [N][T][KV][D]: *p0 = mean_n ||v^n[0]|| over the
 * median of ||v^n[j]|| over every n and j >= 1; by_token[id] = mean ||v^n[j]|| over the positions j >= 1
 * holding id, over the same median (NaN for an id that does not occur). tokens [N][T]; by_token [V]. */
void value_norms(double *p0, double *by_token, const float *v, const int *tokens, const ProbeDims *d, int kvh);

/* ---- norms of the P0 state ------------------------------------------------------------------ */

/* mean_n ||x^n[0]|| / median_{i>=1} ||x^n[i]|| for x [N][T][C]: rho_p (x = residual point p),
 * eta_l (x = attention output o^l), mu_l (x = MoE output m^l) */
double p0_norm_ratio(const float *x, int N, int T, int C);

/* median_{i>=1} ||x[i]|| of one sequence x [T][C] */
double median_later_norm(const float *x, int T, int C);

/* gain_l = mean_n ||after[n][0]|| / ||before[n][0]||, with before = r_{l+0.5}, after = r_{l+1} */
double p0_gain(const float *before, const float *after, int N, int T, int C);

/* kappa(j) = mean over pairs n != m of cos(x^n[j], x^m[j]) for x [N][T][C]. gain [C] (may be NULL):
 * compare RMSNorm(x) * gain, the state the next sublayer reads, instead of x itself (without a gain,
 * normalising would change nothing: a cosine ignores scale). A zero vector has cosine 0 with all. */
double kappa(const float *x, int N, int T, int C, int j, const float *gain);

/* massive_ratio = mean_n max_c |x^n[0,c]| / median_{i>=1,c} |x^n[i,c]|; *channel = the channel c with
 * the largest mean_n |x^n[0,c]| */
double massive_ratio(const float *x, int N, int T, int C, int *channel);

/* ---- circuit pieces per block --------------------------------------------------------------- */

/* p0_units of one block: mean over sequences of the number of hidden units (expert e, unit f) of the
 * experts chosen at P0 with |h[0]| > 10 x the median of |h[i]| over positions i >= 1 routed to the
 * same expert. hidden [N][T][K][F] (one block of MoeCapture.moe_hidden), choice [N][T][K] (NULL for a
 * dense block: every slot is expert 0). */
double p0_units(const float *hidden, const int *choice, const ProbeDims *d);

/* qk cosines of one block, q [N][T][H][D], k [N][T][KV][D]: *p0 = mean over n, h, i >= 1 of
 * cos(q_i, k_0); *other = mean over n, h, 1 <= j <= i of cos(q_i, k_j) (the keys query i can see) */
void qk_cos(const float *q, const float *k, const ProbeDims *d, double *p0, double *other);

/* ||x_0|| over median_{i>=1} ||x_i|| per head, averaged over heads and sequences, x [N][T][n_heads][D]:
 * k0_ratio (x = keys), v0_ratio (x = values) */
double head_p0_norm_ratio(const float *x, int N, int T, int n_heads, int D);

/* share of sequences whose P0 top-1 expert (choice[n][0][0]) is the most common one; choice [N][T][K]
 * (1 for a dense block: choice NULL) */
double p0_route_consistency(const int *choice, const ProbeDims *d);

/* router entropy (nats) of probs [N][T][E]: *p0 = mean_n H(p^n[0]), *median = mean_n median_{i>=1}
 * H(p^n[i]); both 0 for a dense block (probs NULL) */
void router_entropy(const float *probs, const ProbeDims *d, double *p0, double *median);

/* ---- derived over residual points ----------------------------------------------------------- */

/* formation depth d* = min { p : rho_p >= 1/2 max_q rho_q }, returned in the paper's units (p/2) */
double d_star(const double *rho, int n_points);
/* C2 = clip((log rho_2 - log rho_0) / (log max_p rho_p - log rho_0), 0, 1); rho_2 is point index 4.
 * NaN when no point rises above rho_0 or the model has fewer than 2 blocks. */
double c2_share(const double *rho, int n_points);
/* K2 = (kappa_2(0) - kappa_0(0)) / (max_p kappa_p(0) - kappa_0(0)); NaN as for C2 */
double k2_share(const double *kappa_p0, int n_points);
/* delta[q] = log rho[q+1] - log rho[q], q = 0 .. n_points-2 (per sublayer); the per-block growth
 * delta_l = log rho_{l+1} - log rho_l is delta[2l] + delta[2l+1] */
void log_norm_growth(double *delta, const double *rho, int n_points);

/* Emergence of a metric sampled at n probes (values[0] = step 0, values[n-1] = final): the index of
 * the first probe at which the metric has moved at least half-way from values[0] to values[n-1] and
 * stays there for the next two probes (so the last two probes can confirm but not be the emergence).
 * Moves are measured in the direction of the overall change, so a falling metric "emerges" too.
 * -1 when there is no such probe, the metric does not change, or a value is NaN. */
int emergence_index(const double *values, int n);

#endif
