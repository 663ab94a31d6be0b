#include "metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../common/util.h"

/* ---- small helpers -------------------------------------------------------------------------- */

/* the k-th smallest of v[0..n-1] (k from 0) by quickselect; reorders v so that v[0..k-1] <= v[k] */
static double select_kth(double *v, int n, int k) {
    int lo = 0, hi = n - 1;
    while (lo < hi) {
        double pivot = v[lo + (hi - lo) / 2];
        int i = lo, j = hi;
        while (i <= j) { /* Hoare partition: v[lo..j] <= pivot <= v[i..hi] */
            while (v[i] < pivot) i++;
            while (v[j] > pivot) j--;
            if (i <= j) {
                double t = v[i];
                v[i++] = v[j];
                v[j--] = t;
            }
        }
        if (k <= j) hi = j;
        else if (k >= i) lo = i;
        else break; /* v[j+1..i-1] all equal the pivot, and k is among them */
    }
    return v[k];
}

/* median of v[0..n-1] (reorders v); the mean of the two middle values when n is even; NaN if n = 0 */
static double median(double *v, int n) {
    if (n == 0) return NAN;
    double upper = select_kth(v, n, n / 2);
    if (n % 2) return upper;
    double lower = v[0]; /* the largest of v[0..n/2-1], which are all <= upper */
    for (int i = 1; i < n / 2; i++)
        if (v[i] > lower) lower = v[i];
    return 0.5 * (lower + upper);
}

static double norm(const float *x, int n) {
    double s = 0;
    for (int i = 0; i < n; i++) s += (double)x[i] * x[i];
    return sqrt(s);
}

static double dot(const float *x, const float *y, int n) {
    double s = 0;
    for (int i = 0; i < n; i++) s += (double)x[i] * y[i];
    return s;
}

/* ||x[0]|| / median_{i>=1} ||x[i]|| for one sequence of T vectors of `stride` floats, the vector of
 * interest being the `width` floats at `offset` inside each; scratch holds T doubles */
static double p0_ratio_one(const float *x, int T, int stride, int offset, int width, double *scratch) {
    for (int i = 1; i < T; i++) scratch[i - 1] = norm(x + (size_t)i * stride + offset, width);
    return norm(x + offset, width) / median(scratch, T - 1);
}

/* ---- attention on a key --------------------------------------------------------------------- */

double chance(int T) {
    double harmonic = 0;
    for (int t = 1; t <= T; t++) harmonic += 1.0 / t;
    return (harmonic - 1.0) / (T - 1);
}

void attn_on_key(double *out, const float *attn, const ProbeDims *d, int key, int q_first) {
    int T = d->T;
    size_t TT = (size_t)T * T;
    for (int l = 0; l < d->L; l++)
        for (int h = 0; h < d->H; h++) {
            double s = 0;
            for (int n = 0; n < d->N; n++) {
                const float *A = attn + (((size_t)l * d->N + n) * d->H + h) * TT; /* [T][T] of (l, n, h) */
                for (int i = q_first; i < T; i++) s += A[(size_t)i * T + key];
            }
            out[l * d->H + h] = s / ((double)d->N * (T - q_first));
        }
}

double sink_rate(const double *a, int H, int first_layer, int last_layer, double eps) {
    int n = 0, above = 0;
    for (int l = first_layer; l <= last_layer; l++)
        for (int h = 0; h < H; h++, n++) above += a[l * H + h] > eps;
    return n ? (double)above / n : NAN;
}

/* ---- where attention parks ------------------------------------------------------------------ */

/* does query i of sequence n count for class cls */
static int counts(const uint8_t *classes, int cls, int T, int n, int i) {
    return !classes || cls < 0 || classes[(size_t)n * T + i] == cls;
}

static const float *attn_map(const float *attn, const ProbeDims *d, int l, int n, int h) {
    return attn + (((size_t)l * d->N + n) * d->H + h) * (size_t)d->T * d->T; /* [T][T] of (l, n, h) */
}

/* What one query i of window n contributes, from its attention row: 1 with *value set when the query
 * counts, 0 when it does not */
typedef int (*QueryValue)(const float *row, int n, int i, const void *ctx, double *value);

/* out[l*H + h] = the mean over windows n and queries i >= 1 of what `query` gives for the row
 * A[l,h][n,i,:], over the queries that count (NaN when none does) */
static void mean_over_queries(double *out, const float *attn, const ProbeDims *d, QueryValue query, const void *ctx) {
    int T = d->T;
    for (int l = 0; l < d->L; l++)
        for (int h = 0; h < d->H; h++) {
            double s = 0, v;
            long count = 0;
            for (int n = 0; n < d->N; n++) {
                const float *A = attn_map(attn, d, l, n, h);
                for (int i = 1; i < T; i++)
                    if (query(A + (size_t)i * T, n, i, ctx, &v)) s += v, count++;
            }
            out[l * d->H + h] = count ? s / count : NAN;
        }
}

typedef struct {
    KeyOfQuery which;
    const uint8_t *classes;
    int cls, T;
} RelativeKey;

static int on_relative_key(const float *row, int n, int i, const void *ctx, double *value) {
    const RelativeKey *k = ctx;
    if (!counts(k->classes, k->cls, k->T, n, i)) return 0;
    *value = row[k->which == KEY_P0 ? 0 : k->which == KEY_PREV ? i - 1 : i];
    return 1;
}

void attn_on_relative(double *out, const float *attn, const ProbeDims *d, KeyOfQuery which, const uint8_t *classes,
                      int cls) {
    RelativeKey k = {which, classes, cls, d->T};
    mean_over_queries(out, attn, d, on_relative_key, &k);
}

typedef struct {
    const int *tokens;
    int T;
} Windows;

/* the attention on keys j whose previous token is the query's own; only queries whose token repeats */
static int on_successors(const float *row, int n, int i, const void *ctx, double *value) {
    const Windows *w = ctx;
    const int *x = w->tokens + (size_t)n * w->T;
    int repeats = 0;
    *value = 0;
    for (int j = 1; j <= i; j++)
        if (x[j - 1] == x[i]) *value += row[j], repeats = 1;
    return repeats;
}

void attn_on_successors(double *out, const float *attn, const int *tokens, const ProbeDims *d) {
    Windows w = {tokens, d->T};
    mean_over_queries(out, attn, d, on_successors, &w);
}

int attn_mass_by_token(double *mass, double *base, const float *attn, const int *tokens, const ProbeDims *d, int l,
                       int h, const uint8_t *classes, int cls) {
    int T = d->T, count = 0;
    memset(mass, 0, sizeof(double) * (size_t)d->V);
    memset(base, 0, sizeof(double) * (size_t)d->V);
    for (int n = 0; n < d->N; n++) {
        const float *A = attn_map(attn, d, l, n, h);
        const int *x = tokens + (size_t)n * T;
        for (int i = 1; i < T; i++) {
            if (!counts(classes, cls, T, n, i)) continue;
            count++;
            for (int j = 1; j <= i; j++) {
                mass[x[j]] += A[(size_t)i * T + j];
                base[x[j]] += 1.0 / (i + 1); /* uniform causal attention gives each key 1/(i+1) */
            }
        }
    }
    for (int id = 0; id < d->V && count; id++) mass[id] /= count, base[id] /= count;
    return count;
}

void top_tokens(const double *mass, const double *base, int V, int top, int *ids, double *top_mass, double *top_lift) {
    for (int k = 0; k < top; k++) {
        int best = -1;
        for (int id = 0; id < V; id++) {
            int taken = 0;
            for (int q = 0; q < k; q++) taken |= ids[q] == id;
            if (!taken && mass[id] > 0 && (best < 0 || mass[id] > mass[best])) best = id;
        }
        ids[k] = best;
        top_mass[k] = best >= 0 ? mass[best] : NAN;
        top_lift[k] = best >= 0 && base[best] > 0 ? mass[best] / base[best] : NAN;
    }
}

void value_norms(double *p0, double *by_token, const float *v, const int *tokens, const ProbeDims *d, int kvh) {
    int N = d->N, T = d->T, D = d->D;
    size_t stride = (size_t)d->KV * D;
    double *all = st_malloc(sizeof(double) * (size_t)N * (T - 1)), *count = st_calloc((size_t)d->V, sizeof(double));
    double p0_sum = 0;
    memset(by_token, 0, sizeof(double) * (size_t)d->V);
    for (int n = 0; n < N; n++)
        for (int j = 0; j < T; j++) {
            double nv = norm(v + ((size_t)n * T + j) * stride + (size_t)kvh * D, D);
            if (j == 0) {
                p0_sum += nv;
                continue;
            }
            all[(size_t)n * (T - 1) + j - 1] = nv;
            int id = tokens[(size_t)n * T + j];
            by_token[id] += nv;
            count[id] += 1;
        }
    double med = median(all, N * (T - 1));
    *p0 = p0_sum / N / med;
    for (int id = 0; id < d->V; id++) by_token[id] = count[id] > 0 ? by_token[id] / count[id] / med : NAN;
    free(all);
    free(count);
}

/* ---- norms of the P0 state ------------------------------------------------------------------ */

double p0_norm_ratio(const float *x, int N, int T, int C) {
    double *scratch = st_malloc(sizeof(double) * (size_t)T), s = 0;
    for (int n = 0; n < N; n++) s += p0_ratio_one(x + (size_t)n * T * C, T, C, 0, C, scratch);
    free(scratch);
    return s / N;
}

double median_later_norm(const float *x, int T, int C) {
    double *scratch = st_malloc(sizeof(double) * (size_t)T);
    for (int i = 1; i < T; i++) scratch[i - 1] = norm(x + (size_t)i * C, C);
    double m = median(scratch, T - 1);
    free(scratch);
    return m;
}

double p0_gain(const float *before, const float *after, int N, int T, int C) {
    double s = 0;
    for (int n = 0; n < N; n++) {
        size_t at = (size_t)n * T * C; /* position 0 of sequence n */
        s += norm(after + at, C) / norm(before + at, C);
    }
    return s / N;
}

/* y = x / rms(x) * gain */
static void rms_normalise(float *y, const float *x, const float *gain, int C) {
    double ms = 0;
    for (int c = 0; c < C; c++) ms += (double)x[c] * x[c];
    double inv = ms > 0 ? 1.0 / sqrt(ms / C) : 0.0;
    for (int c = 0; c < C; c++) y[c] = (float)(x[c] * inv * gain[c]);
}

double kappa(const float *x, int N, int T, int C, int j, const float *gain) {
    /* sum over pairs n != m of u_n . u_m for unit vectors u = ||sum_n u_n||^2 - sum_n ||u_n||^2 */
    double *sum = st_calloc((size_t)C, sizeof(double)), self = 0;
    float *y = st_malloc(sizeof(float) * (size_t)C);
    for (int n = 0; n < N; n++) {
        const float *v = x + ((size_t)n * T + j) * C;
        if (gain) {
            rms_normalise(y, v, gain, C);
            v = y;
        }
        double nv = norm(v, C);
        if (nv == 0) continue;
        for (int c = 0; c < C; c++) sum[c] += v[c] / nv;
        self += 1.0;
    }
    double total = 0;
    for (int c = 0; c < C; c++) total += sum[c] * sum[c];
    free(sum);
    free(y);
    return N > 1 ? (total - self) / ((double)N * (N - 1)) : NAN;
}

double massive_ratio(const float *x, int N, int T, int C, int *channel) {
    double *scratch = st_malloc(sizeof(double) * (size_t)(T - 1) * C);
    double *p0_abs = st_calloc((size_t)C, sizeof(double)), s = 0;
    for (int n = 0; n < N; n++) {
        const float *r = x + (size_t)n * T * C;
        double top = 0;
        for (int c = 0; c < C; c++) {
            double a = fabs(r[c]);
            p0_abs[c] += a;
            if (a > top) top = a;
        }
        for (size_t ic = 0; ic < (size_t)(T - 1) * C; ic++) scratch[ic] = fabs(r[C + ic]);
        s += top / median(scratch, (T - 1) * C);
    }
    int best = 0;
    for (int c = 1; c < C; c++)
        if (p0_abs[c] > p0_abs[best]) best = c;
    *channel = best;
    free(scratch);
    free(p0_abs);
    return s / N;
}

/* ---- circuit pieces per block --------------------------------------------------------------- */

static int chosen_expert(const int *choice, const ProbeDims *d, int n, int t, int slot) {
    return choice ? choice[((size_t)n * d->T + t) * d->K + slot] : 0;
}

double p0_units(const float *hidden, const int *choice, const ProbeDims *d) {
    int T = d->T, K = d->K, F = d->F;
    double *scratch = st_malloc(sizeof(double) * (size_t)T), total = 0;
    for (int n = 0; n < d->N; n++)
        for (int s0 = 0; s0 < K; s0++) {
            int e = chosen_expert(choice, d, n, 0, s0);
            for (int f = 0; f < F; f++) {
                /* |h| of unit (e, f) at every later position whose token was also routed to e */
                int m = 0;
                for (int i = 1; i < T; i++)
                    for (int s = 0; s < K; s++)
                        if (chosen_expert(choice, d, n, i, s) == e)
                            scratch[m++] = fabs(hidden[(((size_t)n * T + i) * K + s) * F + f]);
                if (m == 0) continue;
                double h0 = fabs(hidden[((size_t)n * T * K + s0) * F + f]);
                total += h0 > 10.0 * median(scratch, m);
            }
        }
    free(scratch);
    return total / d->N;
}

void qk_cos(const float *q, const float *k, const ProbeDims *d, double *p0, double *other) {
    int T = d->T, H = d->H, KV = d->KV, D = d->D, group = H / KV; /* query head h reads kv head h/group */
    double *k_norm = st_malloc(sizeof(double) * (size_t)T * KV), s0 = 0, so = 0;
    long n0 = 0, no = 0;
    for (int n = 0; n < d->N; n++) {
        const float *kn = k + (size_t)n * T * KV * D;
        for (int jh = 0; jh < T * KV; jh++) k_norm[jh] = norm(kn + (size_t)jh * D, D);
        for (int h = 0; h < H; h++)
            for (int i = 1; i < T; i++) {
                const float *qi = q + (((size_t)n * T + i) * H + h) * D;
                double q_norm = norm(qi, D);
                for (int j = 0; j <= i; j++) {
                    int jh = j * KV + h / group;
                    double den = q_norm * k_norm[jh];
                    double c = den > 0 ? dot(qi, kn + (size_t)jh * D, D) / den : 0.0; /* cosine, 0 for a zero vector */
                    if (j == 0) s0 += c, n0++;
                    else so += c, no++;
                }
            }
    }
    free(k_norm);
    *p0 = n0 ? s0 / n0 : NAN;
    *other = no ? so / no : NAN;
}

double head_p0_norm_ratio(const float *x, int N, int T, int n_heads, int D) {
    double *scratch = st_malloc(sizeof(double) * (size_t)T), s = 0;
    for (int n = 0; n < N; n++)
        for (int h = 0; h < n_heads; h++)
            s += p0_ratio_one(x + (size_t)n * T * n_heads * D, T, n_heads * D, h * D, D, scratch);
    free(scratch);
    return s / ((double)N * n_heads);
}

double p0_route_consistency(const int *choice, const ProbeDims *d) {
    if (!choice) return 1.0;
    int *count = st_calloc((size_t)d->E, sizeof(int)), best = 0;
    for (int n = 0; n < d->N; n++) count[chosen_expert(choice, d, n, 0, 0)]++;
    for (int e = 0; e < d->E; e++)
        if (count[e] > best) best = count[e];
    free(count);
    return (double)best / d->N;
}

static double entropy(const float *p, int E) {
    double h = 0;
    for (int e = 0; e < E; e++)
        if (p[e] > 0) h -= p[e] * log(p[e]);
    return h;
}

void router_entropy(const float *probs, const ProbeDims *d, double *p0, double *median_out) {
    *p0 = *median_out = 0;
    if (!probs) return;
    int T = d->T, E = d->E;
    double *scratch = st_malloc(sizeof(double) * (size_t)T);
    for (int n = 0; n < d->N; n++) {
        const float *pn = probs + (size_t)n * T * E;
        *p0 += entropy(pn, E);
        for (int i = 1; i < T; i++) scratch[i - 1] = entropy(pn + (size_t)i * E, E);
        *median_out += median(scratch, T - 1);
    }
    free(scratch);
    *p0 /= d->N;
    *median_out /= d->N;
}

/* ---- derived over residual points ----------------------------------------------------------- */

static double max_of(const double *v, int n) {
    double m = v[0];
    for (int i = 1; i < n; i++)
        if (v[i] > m) m = v[i];
    return m;
}

double d_star(const double *rho, int n_points) {
    double half = 0.5 * max_of(rho, n_points);
    for (int p = 0; p < n_points; p++)
        if (rho[p] >= half) return p / 2.0;
    return NAN; /* only when rho holds NaN */
}

/* (v[4] - v[0]) / (max_p v[p] - v[0]): the share of the rise of v done by the end of block 1 */
static double share_by_block_1(const double *v, int n_points) {
    if (n_points < 5) return NAN;
    double rise = max_of(v, n_points) - v[0];
    return rise > 0 ? (v[4] - v[0]) / rise : NAN;
}

double c2_share(const double *rho, int n_points) {
    double *log_rho = st_malloc(sizeof(double) * (size_t)n_points);
    for (int p = 0; p < n_points; p++) log_rho[p] = log(rho[p]);
    double c2 = share_by_block_1(log_rho, n_points);
    free(log_rho);
    if (c2 < 0) return 0;
    if (c2 > 1) return 1;
    return c2; /* NaN passes through both comparisons */
}

double k2_share(const double *kappa_p0, int n_points) { return share_by_block_1(kappa_p0, n_points); }

void log_norm_growth(double *delta, const double *rho, int n_points) {
    for (int q = 0; q + 1 < n_points; q++) delta[q] = log(rho[q + 1]) - log(rho[q]);
}

int emergence_index(const double *values, int n) {
    if (n < 2) return -1;
    double first = values[0], change = values[n - 1] - first;
    if (!(change != 0)) return -1; /* no change, or NaN */
    double dir = change > 0 ? 1.0 : -1.0, threshold = first + 0.5 * change;
    for (int k = 0; k + 2 < n; k++)
        if (dir * (values[k] - threshold) >= 0 && dir * (values[k + 1] - threshold) >= 0 &&
            dir * (values[k + 2] - threshold) >= 0)
            return k;
    return -1;
}
