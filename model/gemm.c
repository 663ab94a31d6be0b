/* model/gemm.c: matmul, out[n][o] = sum_i in[n][i] * w[o][i] (in [N][IN], w [OUT][IN], out [N][OUT]),
 * on a blocked, vectorised GEMM; its plain version is ref_matmul_forward/backward in ref_kernels.c.
 *
 * The three products of a linear layer (out = in w^T, din += dout w, dw += dout^T in) are one blocked
 * GEMM, C (+)= A B with A [M][K] and B [K][N] read through strides (Gemm and linear_forward, _din,
 * _dw in kernels.h).
 * C is cut into MR x NR tiles, 6 x 16 with AVX2's 16 vector registers (6 x 32 where AVX-512 gives
 * 32 of them); the micro-kernel keeps a tile's MR x NR/8 accumulators (8 floats each) in registers
 * for up to KC = 256 steps of k, each step NR/8 vector loads of B, 6 broadcasts of A and 6 NR/8 FMAs.
 * B is first copied into panels the micro-kernel reads contiguously (strided rows would fight over
 * the same cache sets): once per call as [K][NR] column panels shared by every tile, or, for a
 * product of few rows such as a weight gradient, a KC block at a time by the tile that reads it
 * (packs_per_tile). A is read in place through its strides, 6 of its rows (or, transposed, 6
 * adjacent floats of a row of dout) per step of k, except a last strip of fewer than MR rows, which
 * is packed with zero rows. Macro tiles of MC x NC elements of C (all M rows x NC when B is packed
 * per tile) are the unit of parallel work, and several independent products (both backward
 * products; all experts of a MoE block) share one parallel pass, so threads meet at a barrier once
 * per batch, not once per product.
 * Every element of C is computed by one thread, summing over k in the same order whatever the
 * thread count or the tile it falls in, so results are bit-identical across runs and thread counts,
 * and a row's result does not depend on the other rows. */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "moe.h"

enum { KC = 256, MC = 48, NC = 128, NV = NR / 8 /* vectors per tile row */ };

/* products of at most this many rows pack B per tile (packs_per_tile) */
enum { TILE_PACK_MAX_ROWS = 8 * MC };

/* the packed B panels of a batch, grown on demand and kept: batches run one at a time */
static float *packed_b;
static size_t packed_b_cap;

static int panels_of(const Gemm *g) { return (g->N + NR - 1) / NR; }

/* buf, grown in place when it holds fewer than `need` floats (its size in *cap). It grows with a
 * quarter to spare and by realloc, which keeps the pages already in memory: the sizes of a MoE
 * block's batches move with the routing from step to step, and every new page costs a page fault
 * the first time it is written. */
static float *grown(float *buf, size_t *cap, size_t need) {
    if (need <= *cap) return buf;
    *cap = need + need / 4;
    return st_realloc(buf, sizeof(float) * *cap);
}

/* y[c][i] = x[i][c] for an 8 x 8 block: rows of x are xs floats apart, rows of y ys apart. Three rounds
 * of shuffles: interleave pairs of rows, then pairs of pairs, then the two halves. */
void transpose8x8(float *y, size_t ys, const float *x, size_t xs) {
    v8 r[8], t[8], u[8];
    for (int i = 0; i < 8; i++) r[i] = load8(x + i * xs);
    for (int i = 0; i < 8; i += 2) { /* t[i] = r_i[0] r_i+1[0] r_i[1] r_i+1[1] | same for 4, 5; t[i+1]: 2, 3 | 6, 7 */
        t[i] = __builtin_shufflevector(r[i], r[i + 1], 0, 8, 1, 9, 4, 12, 5, 13);
        t[i + 1] = __builtin_shufflevector(r[i], r[i + 1], 2, 10, 3, 11, 6, 14, 7, 15);
    }
    for (int i = 0; i < 8; i += 4) /* u[i + c] = rows i..i+3 of channel c | of channel c + 4, c < 4 */
        for (int h = 0; h < 2; h++) {
            u[i + 2 * h] = __builtin_shufflevector(t[i + h], t[i + h + 2], 0, 1, 8, 9, 4, 5, 12, 13);
            u[i + 2 * h + 1] = __builtin_shufflevector(t[i + h], t[i + h + 2], 2, 3, 10, 11, 6, 7, 14, 15);
        }
    for (int c = 0; c < 4; c++) { /* rows 0-3 from u[c], rows 4-7 from u[4 + c] */
        store8(y + c * ys, __builtin_shufflevector(u[c], u[4 + c], 0, 1, 2, 3, 8, 9, 10, 11));
        store8(y + (c + 4) * ys, __builtin_shufflevector(u[c], u[4 + c], 4, 5, 6, 7, 12, 13, 14, 15));
    }
}

/* panel q (columns q*NR ..) of g's B, rows k0 .. k0 + kc - 1, into dst as [kc][NR] floats; zero
 * columns pad the last panel */
static void pack_b_panel(float *dst, const Gemm *g, int q, int k0, int kc) {
    size_t n0 = (size_t)q * NR;
    const float *b = g->b + (size_t)k0 * g->sbk;
    int k = 0;
    if (g->sbk == 1 && n0 + NR <= (size_t)g->N) /* B stored transposed (a forward's weights): 8 x 8 blocks */
        for (; k + 8 <= kc; k += 8)
            for (int j = 0; j < NR; j += 8) transpose8x8(dst + (size_t)k * NR + j, NR, b + k + (n0 + j) * g->sbn, g->sbn);
    for (; k < kc; k++) {
        const float *row = b + k * g->sbk;
        if (g->sbn == 1 && n0 + NR <= (size_t)g->N) { /* a full panel of a row-major B: one copy */
            memcpy(dst + (size_t)k * NR, row + n0, sizeof(float) * NR);
            continue;
        }
        for (int j = 0; j < NR; j++) dst[(size_t)k * NR + j] = n0 + j < (size_t)g->N ? row[(n0 + j) * g->sbn] : 0.0f;
    }
}

/* A(m0 + r, k0 + k) for r < rows < MR, k < kc into dst as one [kc][MR] panel, zero rows past `rows`:
 * the last strip of a macro tile, which the micro-kernel cannot read in place (it reads MR rows) */
static void pack_a_tail(float *dst, const Gemm *g, int m0, int rows, int k0, int kc) {
    memset(dst, 0, sizeof(float) * (size_t)kc * MR);
    for (int k = 0; k < kc; k++)
        for (int r = 0; r < rows; r++) dst[k * MR + r] = g->a[(size_t)(m0 + r) * g->sam + (size_t)(k0 + k) * g->sak];
}

/* one tile: c[r][j] (+)= sum_{k < kc} A(r, k) B(k, j), r < rows, j < cols, with A(r, k) = a[r * rs + k * ks]
 * (a packed panel: rs 1, ks MR; A read in place: rs and ks its strides, either of them 1) and
 * B(k, j) = b[k * ldb + j] (a packed panel: ldb NR). Only nv = ceil(cols / 8) vectors of B are read
 * per k, so a narrow last panel costs nv / NV of a full one; inlined with a constant nv, the
 * accumulators stay in registers. All MR rows of A are read (the caller pads them); rows past
 * `rows` are computed and dropped. */
static inline __attribute__((always_inline)) void tile_kernel(int nv, int kc, const float *a, size_t rs, size_t ks,
                                                              const float *b, size_t ldb, float *c, size_t ldc,
                                                              int rows, int cols, int accumulate,
                                                              const float *relu_mask) {
    v8 acc[MR][NV];
    const float *mask = relu_mask == c ? NULL : relu_mask; /* a mask of its own to read, or NULL */
    for (int r = 0; r < MR; r++) {
        for (int v = 0; v < nv; v++) acc[r][v] = splat8(0.0f);
        /* fetch the tile's C lines for writing now, so that the loads and stores at the end, after kc
         * steps, do not wait on memory (a fresh output is not in cache). A row of 8 nv floats spans
         * one more line than 8 nv / 16 when it does not start on a line: its last float is fetched
         * too. Prefetches never fault, so the rows of an edge tile past the matrix are harmless. */
        for (int v = 0; v < nv; v += 2) __builtin_prefetch(c + r * ldc + 8 * v, 1, 3);
        __builtin_prefetch(c + r * ldc + 8 * nv - 1, 1, 3);
        if (mask) { /* and the mask's lines, read at the same time */
            for (int v = 0; v < nv; v += 2) __builtin_prefetch(mask + r * ldc + 8 * v, 0, 3);
            __builtin_prefetch(mask + r * ldc + 8 * nv - 1, 0, 3);
        }
    }
    for (int k = 0; k < kc; k++, a += ks, b += ldb) {
        v8 bv[NV];
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++) bv[v] = load8(b + 8 * v);
#pragma GCC unroll 6
        for (int r = 0; r < MR; r++) {
            v8 ar = splat8(a[r * rs]);
#pragma GCC unroll 4
            for (int v = 0; v < nv; v++) acc[r][v] = FMA8(ar, bv[v], acc[r][v]);
        }
    }
    if (rows == MR && cols == 8 * nv) {
        for (int r = 0; r < MR; r++)
            for (int v = 0; v < nv; v++) {
                float *cv = c + r * ldc + 8 * v;
                v8 x = accumulate ? acc[r][v] + load8(cv) : acc[r][v];
                if (relu_mask) x = where_positive(mask ? load8(mask + r * ldc + 8 * v) : x, x);
                store8(cv, x);
            }
        return;
    }
    float tile[MR][NR]; /* an edge tile: only its valid part is written */
    for (int r = 0; r < MR; r++)
        for (int v = 0; v < nv; v++) store8(tile[r] + 8 * v, acc[r][v]);
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < cols; j++) {
            float x = accumulate ? c[r * ldc + j] + tile[r][j] : tile[r][j];
            if (relu_mask) x = (mask ? mask[r * ldc + j] : x) > 0.0f ? x : 0.0f;
            c[r * ldc + j] = x;
        }
}

/* tile_kernel with as many vectors of B as cols needs (1 .. NV) */
static inline __attribute__((always_inline)) void tile_of_width(int kc, const float *a, size_t rs, size_t ks,
                                                                const float *b, size_t ldb, float *c, size_t ldc,
                                                                int rows, int cols, int accumulate,
                                                                const float *relu_mask) {
    int nv = (cols + 7) / 8;
    if (nv == 1) tile_kernel(1, kc, a, rs, ks, b, ldb, c, ldc, rows, cols, accumulate, relu_mask);
    else if (nv == 2 && NV > 2) tile_kernel(2, kc, a, rs, ks, b, ldb, c, ldc, rows, cols, accumulate, relu_mask);
    else if (nv == 3 && NV > 3) tile_kernel(3, kc, a, rs, ks, b, ldb, c, ldc, rows, cols, accumulate, relu_mask);
    else tile_kernel(NV, kc, a, rs, ks, b, ldb, c, ldc, rows, cols, accumulate, relu_mask);
}

/* two copies: the tiles without a mask (every product but a ReLU's, and attention's small ones)
 * compile with no trace of it */
void micro_kernel(int kc, const float *a, size_t rs, size_t ks, const float *b, size_t ldb, float *c, size_t ldc,
                  int rows, int cols, int accumulate, const float *relu_mask) {
    if (relu_mask) tile_of_width(kc, a, rs, ks, b, ldb, c, ldc, rows, cols, accumulate, relu_mask);
    else tile_of_width(kc, a, rs, ks, b, ldb, c, ldc, rows, cols, accumulate, NULL);
}

/* whether g's B is packed by each macro tile for itself rather than once for the whole product: when
 * M is short, as in a weight gradient (M = OUT), whose B is a whole activation (K = the batch's rows).
 * Its macro tiles then take all M rows, so each block of B is still packed once, but into the
 * thread's own buffer, where it stays in cache for the tile's products: a shared copy is a pass over
 * memory of its own, before the products and with nothing to overlap it, which they then read back. */
static int packs_per_tile(const Gemm *g) { return g->M <= TILE_PACK_MAX_ROWS; }

/* the rows of g's macro tiles */
static int tile_rows(const Gemm *g) { return packs_per_tile(g) ? g->M : MC; }

/* g's macro tiles */
static int tiles_of(const Gemm *g) { return (g->M + tile_rows(g) - 1) / tile_rows(g) * ((g->N + NC - 1) / NC); }

/* macro tile (mt, nt) of g, whose B panels start at bp, or, when bp is NULL, packed here a KC block at
 * a time into the thread's own [NC / NR][KC][NR] floats at tile_b. A is read in place, MR rows at a
 * time: a row-major A (the forward's input, din's dout) with its rows short enough to stay in L1
 * across the tile's B panels, a transposed one (dw's dout^T) 6 adjacent floats of a row per k. Only a
 * last strip of fewer than MR rows is packed (zero-padded). */
static void gemm_macro_tile(const Gemm *g, const float *bp, float *tile_b, int mt, int nt) {
    _Alignas(32) float tail[MR * KC];
    int mc = tile_rows(g), m0 = mt * mc, n0 = nt * NC, m1 = m0 + mc < g->M ? m0 + mc : g->M;
    int n1 = n0 + NC < g->N ? n0 + NC : g->N;
    int m_full = m0 + (m1 - m0) / MR * MR; /* rows m_full.. are the last, partial strip */
    for (int k0 = 0; k0 < g->K; k0 += KC) {
        int kc = g->K - k0 < KC ? g->K - k0 : KC;
        if (m_full < m1) pack_a_tail(tail, g, m_full, m1 - m_full, k0, kc);
        if (!bp)
            for (int n = n0; n < n1; n += NR) pack_b_panel(tile_b + (size_t)(n - n0) * kc, g, n / NR, k0, kc);
        for (int n = n0; n < n1; n += NR) {
            const float *b = bp ? bp + (size_t)n * g->K + (size_t)k0 * NR : tile_b + (size_t)(n - n0) * kc;
            for (int m = m0; m < m1; m += MR) {
                const float *a = g->a + (size_t)m * g->sam + (size_t)k0 * g->sak;
                size_t rs = g->sam, ks = g->sak;
                if (m >= m_full) a = tail, rs = 1, ks = MR;
                const float *mask = g->relu_mask && k0 + kc == g->K ? g->relu_mask + m * g->ldc + n : NULL;
                micro_kernel(kc, a, rs, ks, b, NR, g->c + m * g->ldc + n, g->ldc, m1 - m < MR ? m1 - m : MR,
                             n1 - n < NR ? n1 - n : NR, g->accumulate || k0 > 0, mask);
            }
        }
    }
}

/* each thread's block of B for the products that pack per tile */
static float *own_b;
static size_t own_b_cap;

/* whether two products read the same B (their packed panels are then the same) */
static int same_b(const Gemm *x, const Gemm *y) {
    return x->b == y->b && x->sbk == y->sbk && x->sbn == y->sbn && x->K == y->K && x->N == y->N;
}

/* runs n products, no two of which write the same C, in one parallel region: first the shared B
 * panels are packed (once for products that share a B, such as the weight gradients of a wide
 * SwiGLU's gate and up, which read the same input; not for the products that pack per tile), then
 * every macro tile of every product is computed */
static void gemm_tiles(const Gemm *g, int n) {
    size_t boff[n + 1];               /* product i's packed panels start at packed_b + boff[i] */
    int pstart[n + 1], tstart[n + 1]; /* its first panel and first macro tile in the batch's numbering */
    int owner[n];                     /* the product whose panels product i reads: itself or an earlier one */
    int any_own = 0;                  /* whether a product packs B per tile */
    boff[0] = 0, pstart[0] = 0, tstart[0] = 0;
    for (int i = 0; i < n; i++) {
        int live = g[i].M > 0 && g[i].N > 0 && g[i].K > 0, own = live && packs_per_tile(&g[i]);
        if (g[i].K <= 0 && !g[i].accumulate) /* an empty sum */
            for (int m = 0; m < g[i].M; m++) memset(g[i].c + m * g[i].ldc, 0, sizeof(float) * g[i].N);
        owner[i] = i;
        for (int j = 0; j < i && owner[i] == i && live && !own; j++) /* an earlier live product packs the shared B */
            if (same_b(&g[i], &g[j]) && g[j].M > 0 && !packs_per_tile(&g[j])) owner[i] = owner[j];
        int panels = live && !own && owner[i] == i ? panels_of(&g[i]) : 0;
        any_own |= own;
        boff[i + 1] = boff[i] + (size_t)panels * NR * (live ? g[i].K : 0);
        pstart[i + 1] = pstart[i] + panels;
        tstart[i + 1] = tstart[i] + (live ? tiles_of(&g[i]) : 0);
    }
    packed_b = grown(packed_b, &packed_b_cap, boff[n]);
    if (any_own) own_b = grown(own_b, &own_b_cap, (size_t)omp_get_max_threads() * KC * NC);
#pragma omp parallel
    {
        float *mine = any_own ? own_b + (size_t)omp_get_thread_num() * KC * NC : NULL;
#pragma omp for schedule(static)
        for (int p = 0; p < pstart[n]; p++) {
            int i = 0;
            while (p >= pstart[i + 1]) i++;
            pack_b_panel(packed_b + boff[i] + (size_t)(p - pstart[i]) * NR * g[i].K, &g[i], p - pstart[i], 0, g[i].K);
        }
        /* dynamic: a tile costs the same whichever thread runs it, so the schedule only balances load */
#pragma omp for schedule(dynamic)
        for (int t = 0; t < tstart[n]; t++) {
            int i = 0;
            while (t >= tstart[i + 1]) i++;
            int ntiles = (g[i].N + NC - 1) / NC, local = t - tstart[i];
            const float *bp = packs_per_tile(&g[i]) ? NULL : packed_b + boff[owner[i]];
            gemm_macro_tile(&g[i], bp, mine, local / ntiles, local % ntiles);
        }
    }
}

/* A weight gradient dw = dout^T in has few macro tiles (OUT x IN) and a long sum over the N rows:
 * on many cores its tiles alone would leave most threads idle. Such a product is split along k into
 * chunks of KSPLIT: chunk 0 sums into C as usual, every later chunk into its own partial buffer (all
 * of them tiles of one parallel pass), then the partials are added to C in chunk order. The chunks
 * are fixed by the shape, not by the thread count, so results stay bit-identical on any thread count. */
enum { KSPLIT = 1024, SPLIT_MAX_TILES = 16 };

static float *partial; /* the partial sums of the split products of a batch, grown on demand */
static size_t partial_cap;

/* the chunks g's sum is split into: 1 unless its MC x NC blocks are few and its sum long, and always 1
 * with a ReLU mask (which needs the whole sum). The count is of MC-row blocks whatever the tiles'
 * height (tile_rows), so that it, and the order of every sum, depends on the shape alone. */
static int k_chunks(const Gemm *g) {
    int blocks = (g->M + MC - 1) / MC * ((g->N + NC - 1) / NC);
    return g->K >= 2 * KSPLIT && blocks < SPLIT_MAX_TILES && !g->relu_mask ? (g->K + KSPLIT - 1) / KSPLIT : 1;
}

/* chunk j of the nk that g's sum over k is cut into (KSPLIT rows each, the last the rest), into c
 * with row stride ldc */
static Gemm k_chunk(const Gemm *g, int j, int nk, float *c, size_t ldc) {
    Gemm s = *g;
    int k0 = j * KSPLIT;
    s.a += (size_t)k0 * g->sak, s.b += (size_t)k0 * g->sbk;
    s.K = j == nk - 1 ? g->K - k0 : KSPLIT;
    s.c = c, s.ldc = ldc;
    s.accumulate = j == 0 ? g->accumulate : 0;
    return s;
}

/* runs n products, no two of which write the same C: long weight-gradient sums split into chunks
 * (above), everything in one parallel pass of tiles, then the partial sums added in order */
void gemm_batch(const Gemm *g, int n) {
    int total = 0;
    size_t floats = 0;
    for (int i = 0; i < n; i++) {
        int nk = k_chunks(&g[i]);
        total += nk;
        floats += (size_t)(nk - 1) * g[i].M * g[i].N;
    }
    if (total == n) {
        gemm_tiles(g, n);
        return;
    }
    partial = grown(partial, &partial_cap, floats);
    Gemm sub[total];
    float *dst[n]; /* product i's partial sums, when it is split */
    int m = 0;
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        int nk = k_chunks(&g[i]);
        dst[i] = partial + off;
        sub[m++] = k_chunk(&g[i], 0, nk, g[i].c, g[i].ldc);
        for (int j = 1; j < nk; j++, off += (size_t)g[i].M * g[i].N)
            sub[m++] = k_chunk(&g[i], j, nk, partial + off, (size_t)g[i].N);
    }
    gemm_tiles(sub, total);
    for (int i = 0; i < n; i++) {
        int nk = k_chunks(&g[i]), M = g[i].M, N = g[i].N;
        if (nk == 1) continue;
        size_t chunk = (size_t)M * N;
#pragma omp parallel for schedule(static)
        for (int r = 0; r < M; r++) {
            float *c = g[i].c + r * g[i].ldc;
            for (int j = 1; j < nk; j++) { /* chunk by chunk, in order */
                const float *p = dst[i] + (size_t)(j - 1) * chunk + (size_t)r * N;
                for (int col = 0; col < N; col++) c[col] += p[col];
            }
        }
    }
}

void matmul_forward(float *out, const float *in, const float *w, int N, int IN, int OUT) {
    Gemm g = linear_forward(out, in, w, N, IN, OUT);
    gemm_batch(&g, 1);
}

/* din[n][i] += sum_o dout[n][o] w[o][i]   (din may be NULL when not needed)
 * dw[o][i]  += sum_n dout[n][o] in[n][i] */
void matmul_backward(float *din, float *dw, const float *dout, const float *in, const float *w, int N, int IN,
                     int OUT) {
    Gemm g[2] = {linear_dw(dw, dout, in, N, IN, OUT), linear_din(din, dout, w, N, IN, OUT)};
    gemm_batch(g, din ? 2 : 1);
}
