/* model/attention.c: causal softmax attention, fused; its plain version (the probabilities of every
 * row held whole) is ref_attention_forward/backward in ref_kernels.c.
 *
 * score[i][j] = q_i . k_j / sqrt(D) for the visible keys j <= i (and i - j < window when window > 0);
 * p[i][.] = softmax of row i's scores over the visible keys; out_i = sum_j p[i][j] v_j.
 * Query head h reads K/V head h / (H / KV) (grouped-query attention). With a sink logit s_h the
 * softmax also covers one extra key with score s_h and value zero: it takes attention, adds nothing.
 * The products run on the GEMM's register tiles (micro_kernel), a strip of MR query rows at a time:
 * its scores against every key it sees (MR x T floats; no T x T matrix is ever held), their softmax,
 * then its output P V. The forward saves lse_i = log of row i's softmax denominator, from which the
 * backward (and the probes' attention_probs) recompute p[i][j] = exp(score[i][j] - lse_i). A score
 * sums over d in the same order wherever its strip and key panel fall, so the forward, the probes and
 * the backward see bit-identical scores. Each head is first copied into contiguous zero-padded
 * blocks: rows of Dp = D rounded up to 8 floats (q and, for dq, k pre-scaled by 1/sqrt(D)), and k and
 * v transposed as [D][Tp] (the B operand of the score products). */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "moe.h"

/* the backward's block of query rows: its p and dscore rows are kept for the dk and dv products */
enum { ATT_QB = 8 * MR };

static int round8(int n) { return (n + 7) / 8 * 8; }

/* the row stride of a transposed head: T rounded up to 8, plus 8 so that the D rows of xt, which a
 * score reads together, do not all fall into the same few cache sets (as a power-of-two stride does) */
static int padded_keys(int T) { return round8(T) + 8; }

/* xt[d][j] = x[j][d] of one (sequence, K/V head): rows j < T of x are KV*D floats apart; the row
 * stride of xt is Tp = padded_keys(T) and the padding columns are zero. 8 x 8 blocks go through
 * registers; the channels past the last multiple of 8 and the keys past the last multiple of 8 one
 * float at a time. */
static void transpose_head(float *xt, const float *x, int T, int Tp, int KV, int D) {
    size_t xs = (size_t)KV * D;
    int T8 = T / 8 * 8, D8 = D / 8 * 8;
    for (int j = 0; j < T8; j += 8)
        for (int d = 0; d < D8; d += 8) transpose8x8(xt + (size_t)d * Tp + j, (size_t)Tp, x + j * xs + d, xs);
    for (int j = 0; j < T; j++)
        for (int d = j < T8 ? D8 : 0; d < D; d++) xt[(size_t)d * Tp + j] = x[j * xs + d];
    for (int d = 0; d < D; d++)
        for (int j = T; j < Tp; j++) xt[(size_t)d * Tp + j] = 0.0f;
}

/* xc[j][0..D) = scale * x[j][0..D) for j < T (rows of x xs floats apart), xc's rows Dp floats apart.
 * Its padding columns and the MR rows past T (which a last strip reads as its spare rows) are never
 * written: they keep the zeros of head_bufs_init. */
static void copy_head(float *xc, const float *x, size_t xs, int T, int D, int Dp, float scale) {
    v8 sc = splat8(scale);
    for (int j = 0; j < T; j++)
        for (int d = 0; d < D; d += 8) {
            size_t m = D - d < 8 ? (size_t)(D - d) : 8;
            store_part(xc + (size_t)j * Dp + d, load_part(x + j * xs + d, m) * sc, m);
        }
}

/* one thread's copies of a head and its scratch; every size is linear in T */
typedef struct {
    int T, D, Dp, Tp;
    float *qs, *dos;  /* a query head's q / sqrt(D) and its dout, [T + MR][Dp] */
    float *kt, *vt;   /* its K/V head's k and v transposed, [D][Tp] */
    float *ks, *vc;   /* k / sqrt(D) and v, [T + MR][Dp] */
    float *s, *dp;    /* a strip's scores and dout . v, [MR][Tp] */
    float *p, *ds;    /* probabilities and score gradients of up to ATT_QB rows, [ATT_QB][Tp] */
    float *o;         /* a strip's unnormalised output, [MR][Dp] */
    float *dk, *dv;   /* the K/V head's gradients, [T][Dp] */
} HeadBufs;

static void head_bufs_init(HeadBufs *hb, int T, int D) {
    int Dp = round8(D), Tp = padded_keys(T);
    size_t rows = (size_t)(T + MR) * Dp, trans = (size_t)D * Tp, strip = (size_t)MR * Tp, block = (size_t)ATT_QB * Tp;
    *hb = (HeadBufs){.T = T, .D = D, .Dp = Dp, .Tp = Tp};
    /* zeroed: spare rows and lanes past the keys are read (and dropped) before anything is written there */
    hb->qs = fbuf(rows), hb->dos = fbuf(rows), hb->ks = fbuf(rows), hb->vc = fbuf(rows);
    hb->kt = fbuf(trans), hb->vt = fbuf(trans);
    hb->s = fbuf(strip), hb->dp = fbuf(strip), hb->p = fbuf(block), hb->ds = fbuf(block);
    hb->o = fbuf((size_t)MR * Dp), hb->dk = fbuf((size_t)T * Dp), hb->dv = fbuf((size_t)T * Dp);
}

static void head_bufs_free(HeadBufs *hb) {
    float *all[] = {hb->qs, hb->dos, hb->kt, hb->vt, hb->ks, hb->vc, hb->s, hb->dp, hb->p, hb->ds, hb->o, hb->dk, hb->dv};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) free(all[i]);
}

/* every thread's HeadBufs, kept between calls (forwards and backwards run one at a time per process,
 * as for the GEMM's packed panels) and built again only when T, D or the thread count change: no
 * allocation per call in training */
static HeadBufs *head_bufs;
static int head_bufs_n;

/* the buffers of one parallel region's threads, for heads of D channels and T positions */
static HeadBufs *thread_head_bufs(int T, int D) {
    int n = omp_get_max_threads();
    if (head_bufs_n >= n && head_bufs[0].T == T && head_bufs[0].D == D) return head_bufs;
    for (int i = 0; i < head_bufs_n; i++) head_bufs_free(&head_bufs[i]);
    free(head_bufs);
    head_bufs = st_malloc(sizeof(HeadBufs) * (size_t)n);
    for (int i = 0; i < n; i++) head_bufs_init(&head_bufs[i], T, D);
    head_bufs_n = n;
    return head_bufs;
}

/* the first visible key of query i */
static int first_key(int i, int window) { return (window > 0 && i - window + 1 > 0) ? i - window + 1 : 0; }

/* s[r][j - jb] = x_r . yt[.][j] (sum over d < D) for the MR rows x_r of x (Dp floats apart) and keys
 * j in [jb, j1) rounded up to 8 (the zero padding of yt gives the lanes past j1); s rows Tp apart */
static void strip_scores(float *s, const float *x, int Dp, const float *yt, int Tp, int jb, int j1, int D) {
    for (int j = jb; j < j1; j += NR) {
        int cols = round8(j1 - j) < NR ? round8(j1 - j) : NR;
        micro_kernel(D, x, (size_t)Dp, 1, yt + j, (size_t)Tp, s + (j - jb), (size_t)Tp, MR, cols, 0, NULL);
    }
}

/* keys jb + (0..7) that a row seeing keys [lo, hi) sees, as lanes of all ones */
static v8i seen_keys(int jb, int lo, int hi) {
    const v8i lane = {0, 1, 2, 3, 4, 5, 6, 7};
    v8i key = lane + jb;
    return (key >= lo) & (key < hi);
}

/* the largest score s[j - jb] over the keys lo <= j < hi */
static float masked_max(const float *s, int jb, int lo, int hi) {
    v8 mx = splat8(-INFINITY);
    for (int j = jb; j < hi; j += 8) {
        v8i seen = seen_keys(j, lo, hi);
        mx = max8(mx, (v8)(((v8i)load8(s + (j - jb)) & seen) | ((v8i)splat8(-INFINITY) & ~seen)));
    }
    return hmax8(mx);
}

/* p[j - jb] = exp(s[j - jb] - shift) for the keys lo <= j < hi and exactly 0 for the other keys of
 * [jb, end), end - jb a multiple of 8 (s is read only below hi rounded up to 8); returns sum_j p */
static float masked_exp(float *p, const float *s, float shift, int jb, int lo, int hi, int end) {
    v8 sum = splat8(0.0f);
    for (int j = jb; j < end; j += 8) {
        v8 pj = j < hi ? (v8)((v8i)exp8(load8(s + (j - jb)) - splat8(shift)) & seen_keys(j, lo, hi)) : splat8(0.0f);
        store8(p + (j - jb), pj);
        sum += pj;
    }
    return hsum8(sum);
}

/* out and lse of the query rows i0 .. i0 + rows - 1 (rows <= MR) of the head in hb (qs, kt, vc),
 * out's rows ldo floats apart: scores, a max-subtracted softmax per row (the sink logit, if any,
 * is one more score), then the strip's P V in registers and a division by each row's sum */
static void attention_strip_forward(HeadBufs *hb, float *out, size_t ldo, float *lse, int i0, int rows,
                                    const float *sink_h, int window) {
    int Dp = hb->Dp, Tp = hb->Tp, D = hb->D, jb = first_key(i0, window) / 8 * 8, j1 = i0 + rows;
    float mx[MR], l[MR];
    strip_scores(hb->s, hb->qs + (size_t)i0 * Dp, Dp, hb->kt, Tp, jb, j1, D);
    for (int r = 0; r < rows; r++) {
        int i = i0 + r, lo = first_key(i, window);
        const float *s = hb->s + (size_t)r * Tp;
        mx[r] = masked_max(s, jb, lo, i + 1);
        if (sink_h && *sink_h > mx[r]) mx[r] = *sink_h;
        l[r] = masked_exp(hb->p + (size_t)r * Tp, s, mx[r], jb, lo, i + 1, round8(j1));
        if (sink_h) l[r] += expf(*sink_h - mx[r]);
    }
    for (int n = 0; n < D; n += NR) /* o = p v over keys jb .. j1 - 1 */
        micro_kernel(j1 - jb, hb->p, (size_t)Tp, 1, hb->vc + (size_t)jb * Dp + n, (size_t)Dp, hb->o + n, (size_t)Dp,
                     MR, D - n < NR ? D - n : NR, 0, NULL);
    for (int r = 0; r < rows; r++) {
        v8 inv_l = splat8(1.0f / l[r]); /* one division per row, not per channel */
        for (int d = 0; d < D; d += 8) {
            size_t m = D - d < 8 ? (size_t)(D - d) : 8;
            store_part(out + r * ldo + d, load_part(hb->o + (size_t)r * Dp + d, m) * inv_l, m);
        }
        lse[r] = mx[r] + logf(l[r]);
    }
}

/* the offset of head h's first row (sequence b, position 0) in a [B][T][n_heads][D] tensor */
static size_t head_offset(int b, int T, int n_heads, int h, int D) { return ((size_t)b * T * n_heads + h) * D; }

/* head h of sequence b into the thread's buffers: its queries pre-scaled by 1/sqrt(D), and the keys of
 * its KV head (h / (H / KV)) transposed */
static void load_head_qk(HeadBufs *hb, const float *q, const float *k, int b, int h, int T, int H, int KV, int D) {
    copy_head(hb->qs, q + head_offset(b, T, H, h, D), (size_t)H * D, T, D, hb->Dp, 1.0f / sqrtf((float)D));
    transpose_head(hb->kt, k + head_offset(b, T, KV, h / (H / KV), D), T, hb->Tp, KV, D);
}

void attention_forward(float *out, float *lse, const float *q, const float *k, const float *v, const float *sink,
                       int B, int T, int H, int KV, int D, int window) {
    HeadBufs *bufs = thread_head_bufs(T, D);
#pragma omp parallel
    {
        HeadBufs *hb = &bufs[omp_get_thread_num()];
#pragma omp for collapse(2) schedule(static)
        for (int b = 0; b < B; b++)
            for (int h = 0; h < H; h++) {
                size_t q_off = head_offset(b, T, H, h, D), kv_off = head_offset(b, T, KV, h / (H / KV), D);
                load_head_qk(hb, q, k, b, h, T, H, KV, D);
                copy_head(hb->vc, v + kv_off, (size_t)KV * D, T, D, hb->Dp, 1.0f);
                for (int i = 0; i < T; i += MR)
                    attention_strip_forward(hb, out + q_off + (size_t)i * H * D, (size_t)H * D,
                                            lse + ((size_t)b * H + h) * T + i, i, T - i < MR ? T - i : MR,
                                            sink ? sink + h : NULL, window);
            }
    }
}

void attention_probs(float *att, const float *lse, const float *q, const float *k, int B, int T, int H, int KV,
                     int D, int window) {
    HeadBufs *bufs = thread_head_bufs(T, D);
#pragma omp parallel
    {
        HeadBufs *hb = &bufs[omp_get_thread_num()];
#pragma omp for collapse(2) schedule(static)
        for (int b = 0; b < B; b++)
            for (int h = 0; h < H; h++) {
                load_head_qk(hb, q, k, b, h, T, H, KV, D);
                for (int i0 = 0; i0 < T; i0 += MR) {
                    int rows = T - i0 < MR ? T - i0 : MR, jb = first_key(i0, window) / 8 * 8;
                    strip_scores(hb->s, hb->qs + (size_t)i0 * hb->Dp, hb->Dp, hb->kt, hb->Tp, jb, i0 + rows, D);
                    for (int i = i0; i < i0 + rows; i++) { /* p over [jb, i], then row i of att over [0, T) */
                        float *a = att + (((size_t)b * H + h) * T + i) * T, *p = hb->p;
                        masked_exp(p, hb->s + (size_t)(i - i0) * hb->Tp, lse[((size_t)b * H + h) * T + i], jb,
                                   first_key(i, window), i + 1, round8(i + 1));
                        memset(a, 0, sizeof(float) * (size_t)jb);
                        memcpy(a + jb, p, sizeof(float) * (size_t)(i + 1 - jb));
                        memset(a + i + 1, 0, sizeof(float) * (size_t)(T - i - 1));
                    }
                }
            }
    }
}

/* The backward, with p = p[i][.] recomputed from lse_i, dp_j = dout_i . v_j and delta_i = sum_j p_j dp_j =
 * dout_i . out_i:  dv_j += p_j dout_i;  dscore_j = p_j (dp_j - delta_i);  dq_i += dscore_j k_j / sqrt(D);
 * dk_j += dscore_j q_i / sqrt(D). The sink key has value 0, so dp_sink = 0 and dsink_h += -p_sink delta_i
 * with p_sink = exp(s_h - lse_i). */

/* strip i0 .. i0 + rows - 1 (rows <= MR) of a block whose keys start at jb: its scores and dp, then
 * rows `at` .. of the block's p and ds (dscore without the 1/sqrt(D), zero for the keys a row does
 * not see up to key `end`), then its dq (rows ld floats apart) = ds k / sqrt(D); returns its rows'
 * sum of -p_sink delta_i */
static float attention_strip_backward(HeadBufs *hb, float *dq, const float *dout, const float *out, size_t ld,
                                      const float *lse, int i0, int rows, int at, int jb, int end,
                                      const float *sink_h, int window) {
    int Dp = hb->Dp, Tp = hb->Tp, D = hb->D, j1 = i0 + rows;
    float dsink = 0.0f;
    strip_scores(hb->s, hb->qs + (size_t)i0 * Dp, Dp, hb->kt, Tp, jb, j1, D);
    strip_scores(hb->dp, hb->dos + (size_t)i0 * Dp, Dp, hb->vt, Tp, jb, j1, D);
    for (int r = 0; r < rows; r++) {
        int i = i0 + r;
        float *p = hb->p + (size_t)(at + r) * Tp, *ds = hb->ds + (size_t)(at + r) * Tp;
        const float *dp = hb->dp + (size_t)r * Tp;
        float delta = sum_of_products(dout + r * ld, out + r * ld, NULL, D);
        masked_exp(p, hb->s + (size_t)r * Tp, lse[r], jb, first_key(i, window), i + 1, end);
        for (int j = jb; j < end; j += 8) /* p is 0 where the row does not see key j; dp is read below j1 */
            store8(ds + (j - jb), j < j1 ? load8(p + (j - jb)) * (load8(dp + (j - jb)) - splat8(delta)) : splat8(0.0f));
        if (sink_h) dsink -= expf(*sink_h - lse[r]) * delta;
    }
    for (int n = 0; n < D; n += NR)
        micro_kernel(j1 - jb, hb->ds + (size_t)at * Tp, (size_t)Tp, 1, hb->ks + (size_t)jb * Dp + n, (size_t)Dp, dq + n,
                     ld, rows, D - n < NR ? D - n : NR, 0, NULL);
    return dsink;
}

/* dk_j += sum_r ds[r][j] q_r / sqrt(D) and dv_j += sum_r p[r][j] dout_r over the block's rows i0 .. i0 +
 * rows - 1, for its keys jb <= j < i0 + rows: products with the keys as rows, MR keys at a time */
static void attention_block_kv_grads(HeadBufs *hb, int i0, int rows, int jb) {
    int Dp = hb->Dp, Tp = hb->Tp, D = hb->D, j1 = i0 + rows;
    for (int j = jb; j < j1; j += MR) {
        int keys = j1 - j < MR ? j1 - j : MR;
        for (int n = 0; n < D; n += NR) {
            int cols = D - n < NR ? D - n : NR;
            micro_kernel(rows, hb->ds + (j - jb), 1, (size_t)Tp, hb->qs + (size_t)i0 * Dp + n, (size_t)Dp,
                         hb->dk + (size_t)j * Dp + n, (size_t)Dp, keys, cols, 1, NULL);
            micro_kernel(rows, hb->p + (j - jb), 1, (size_t)Tp, hb->dos + (size_t)i0 * Dp + n, (size_t)Dp,
                         hb->dv + (size_t)j * Dp + n, (size_t)Dp, keys, cols, 1, NULL);
        }
    }
}

/* x[j][d] = xc[j][d] for j < T, d < D: a head's padded rows back into a [.][KV][D] tensor */
static void store_head(float *x, size_t xs, const float *xc, int T, int D, int Dp) {
    for (int j = 0; j < T; j++)
        for (int d = 0; d < D; d += 8) {
            size_t m = D - d < 8 ? (size_t)(D - d) : 8;
            store_part(x + j * xs + d, load_part(xc + (size_t)j * Dp + d, m), m);
        }
}

/* Split over (b, kv head): every query head sharing a K/V head is handled by one iteration, so dk and
 * dv are never written by two threads; the sink gradients are summed per (b, h) and then over b in
 * order. Query rows go in blocks of ATT_QB (strips of MR within), whose dk and dv products run once
 * per block over its ATT_QB rows. */
void attention_backward(float *dq, float *dk, float *dv, float *dsink, const float *dout, const float *out,
                        const float *lse, const float *q, const float *k, const float *v, const float *sink, int B,
                        int T, int H, int KV, int D, int window) {
    int group = H / KV;
    float scale = 1.0f / sqrtf((float)D);
    float *dsink_bh = sink && dsink ? st_calloc((size_t)B * H, sizeof(float)) : NULL;
    HeadBufs *bufs = thread_head_bufs(T, D);
#pragma omp parallel
    {
        HeadBufs *hb = &bufs[omp_get_thread_num()];
#pragma omp for collapse(2) schedule(static)
        for (int b = 0; b < B; b++)
            for (int kvh = 0; kvh < KV; kvh++) {
                size_t kv_off = head_offset(b, T, KV, kvh, D), ld = (size_t)H * D;
                transpose_head(hb->kt, k + kv_off, T, hb->Tp, KV, D);
                transpose_head(hb->vt, v + kv_off, T, hb->Tp, KV, D);
                copy_head(hb->ks, k + kv_off, (size_t)KV * D, T, D, hb->Dp, scale);
                memset(hb->dk, 0, sizeof(float) * (size_t)T * hb->Dp);
                memset(hb->dv, 0, sizeof(float) * (size_t)T * hb->Dp);
                for (int h = kvh * group; h < (kvh + 1) * group; h++) {
                    size_t q_off = head_offset(b, T, H, h, D);
                    const float *lse_h = lse + ((size_t)b * H + h) * T;
                    copy_head(hb->qs, q + q_off, ld, T, D, hb->Dp, scale);
                    copy_head(hb->dos, dout + q_off, ld, T, D, hb->Dp, 1.0f);
                    for (int ib = 0; ib < T; ib += ATT_QB) {
                        int rows = T - ib < ATT_QB ? T - ib : ATT_QB, jb = first_key(ib, window) / 8 * 8;
                        for (int i = ib; i < ib + rows; i += MR) {
                            size_t at = q_off + (size_t)i * ld;
                            float g = attention_strip_backward(hb, dq + at, dout + at, out + at, ld, lse_h + i, i,
                                                               ib + rows - i < MR ? ib + rows - i : MR, i - ib, jb,
                                                               round8(ib + rows), sink ? sink + h : NULL, window);
                            if (dsink_bh) dsink_bh[b * H + h] += g;
                        }
                        attention_block_kv_grads(hb, ib, rows, jb);
                    }
                }
                store_head(dk + kv_off, (size_t)KV * D, hb->dk, T, D, hb->Dp);
                store_head(dv + kv_off, (size_t)KV * D, hb->dv, T, D, hb->Dp);
            }
    }
    if (dsink_bh) {
        for (int b = 0; b < B; b++)
            for (int h = 0; h < H; h++) dsink[h] += dsink_bh[b * H + h];
        free(dsink_bh);
    }
}
