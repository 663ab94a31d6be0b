/* probes/report/figures.c: the figures of a run and of a comparison (see figures.h). */
#include "figures.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/util.h"
#include "../attnmaps.h"
#include "plot.h"

const Figure run_figures[] = {
    {"loss.png", fig_loss},
    {"sink_by_layer.png", fig_sink_by_layer},
    {"parking.png", fig_parking},
    {"trace_sink.png", fig_trace_sink},
    {"trace_norm.png", fig_trace_norm},
    {"norm_profile.png", fig_norm_profile},
    {"attention_maps.png", fig_attention_maps},
    {"cosine.png", fig_cosine},
    {"concentration.png", fig_concentration},
    {"experts.png", fig_experts},
    {"interventions.png", fig_interventions},
    {"story.png", fig_story},
};
const int n_run_figures = sizeof run_figures / sizeof run_figures[0];

/* ---------------------------------------------------------------- helpers */

/* widens [*lo, *hi] to include every finite v[i]; returns how many were finite */
static int finite_range(const double *v, size_t n, double *lo, double *hi) {
    int k = 0;
    for (size_t i = 0; i < n; i++)
        if (isfinite(v[i])) {
            if (v[i] < *lo) *lo = v[i];
            if (v[i] > *hi) *hi = v[i];
            k++;
        }
    return k;
}

/* a y range with 5% air on both sides (not below 0 for data that is not); [0, 1] without data */
static void padded(double *lo, double *hi) {
    if (!isfinite(*lo) || !isfinite(*hi)) { /* no finite data: an empty unit range */
        *lo = 0;
        *hi = 1;
        return;
    }
    double pad = (*hi - *lo) * 0.05;
    if (!(pad > 0)) pad = fabs(*hi) > 0 ? 0.05 * fabs(*hi) : 0.5;
    *lo = (*lo >= 0 && *lo - pad < 0) ? 0 : *lo - pad;
    *hi += pad;
}

/* keeps the points whose y is finite, so a sparse series (validation every N steps) draws connected */
static int compact(const double *x, const double *y, int n, double *xo, double *yo) {
    int k = 0;
    for (int i = 0; i < n; i++)
        if (isfinite(x[i]) && isfinite(y[i])) {
            xo[k] = x[i];
            yo[k++] = y[i];
        }
    return k;
}

/* a step (or token) x axis: logarithmic when it spans more than a decade and a half, with step 0 in a
 * strip of its own; linear otherwise */
static void step_range(PlAxes *a, const double *x, int n, double ylo, double yhi) {
    double pos = INFINITY, lo = INFINITY, hi = -INFINITY;
    for (int i = 0; i < n; i++) {
        if (!isfinite(x[i])) continue;
        if (x[i] > 0 && x[i] < pos) pos = x[i];
        if (x[i] < lo) lo = x[i];
        if (x[i] > hi) hi = x[i];
    }
    if (isfinite(pos) && hi / pos >= 30) {
        a->zero_gap = lo <= 0;
        pl_axes_range(a, pos, hi, ylo, yhi, 1, 0);
    } else {
        pl_axes_range(a, isfinite(lo) ? lo : 0, isfinite(hi) ? hi : 1, ylo, yhi, 0, 0);
    }
}

static int save_figure(PlCanvas *c, const char *dir, const char *file, char *err) {
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    int rc = pl_save_png(c, path, err);
    pl_canvas_free(c);
    return rc;
}

/* the label of residual point p: p/2 written as 0, 0.5, 1, 1.5, ... */
static void point_label(int p, char *out, int len) {
    if (p % 2)
        snprintf(out, len, "%d.5", p / 2);
    else
        snprintf(out, len, "%d", p / 2);
}

/* x ticks at residual points (every one when they fit, else whole blocks only) */
static void point_xticks(PlAxes *a, int P) {
    for (int p = 0; p < P; p++) {
        if (P > 17 && p % 2) continue;
        char lab[16];
        point_label(p, lab, sizeof lab);
        pl_axes_xtick(a, p / 2.0, lab);
    }
}

/* x ticks of a heat map whose columns are probe steps: about eight labelled columns */
static void column_step_ticks(PlAxes *a, const double *step, int n) {
    int every = (n + 7) / 8;
    for (int i = 0; i < n; i += every) {
        char lab[24];
        pl_format_tick(step[i], 1, lab, sizeof lab);
        pl_axes_xtick(a, i + 0.5, lab);
    }
}

/* [rows][cols] -> [cols][rows] */
static double *transpose(const double *m, int rows, int cols) {
    double *t = st_malloc(sizeof(double) * ((size_t)rows * cols + 1));
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++) t[(size_t)j * rows + i] = m[(size_t)i * cols + j];
    return t;
}

static int need_probes(const Run *r, char *why) {
    if (r->np > 0) return 0;
    if (r->probes.n) snprintf(why, FIG_WHY_LEN, "probes.jsonl has no rows of variant \"%s\"", r->variant);
    else snprintf(why, FIG_WHY_LEN, "probes.jsonl is missing");
    return 1;
}

int profile_rows(const Run *r, int out[3]) {
    /* the middle one is the probe whose step is nearest half the final step (probes are log-spaced
     * early, so the middle row by index would be an early step) */
    double *step = run_probe_col(r, "step"), half = step[r->np - 1] / 2;
    int mid = 0;
    for (int i = 1; i < r->np; i++)
        if (fabs(step[i] - half) < fabs(step[mid] - half)) mid = i;
    free(step);
    int cand[3] = {0, mid, r->np - 1}, k = 0;
    for (int i = 0; i < 3; i++)
        if (k == 0 || cand[i] != out[k - 1]) out[k++] = cand[i];
    return k;
}

/* ---------------------------------------------------------------- loss.png */

int fig_loss(const Run *r, char *why, char *err) {
    (void)why;
    int n = r->train.n;
    double *step = run_train_col(r, "step"), *ce = run_train_col(r, "ce"), *val = run_train_col(r, "val_loss");
    double *xs = st_malloc(sizeof(double) * n), *ys = st_malloc(sizeof(double) * n);
    double lo = INFINITY, hi = -INFINITY;
    int has_ce = finite_range(ce, n, &lo, &hi) > 0;
    if (!has_ce) { /* no cross-entropy column: the total loss is what there is */
        free(ce);
        ce = run_train_col(r, "loss");
        finite_range(ce, n, &lo, &hi);
    }
    int nv = compact(step, val, n, xs, ys);
    finite_range(ys, nv, &lo, &hi);
    padded(&lo, &hi);
    PlCanvas c;
    pl_canvas_init(&c, 960, 560);
    PlAxes a;
    pl_axes_init(&a, &c, 0, 0, 960, 560, 210);
    pl_axes_range(&a, step[0], step[n - 1], lo, hi, 0, 0);
    char title[320];
    snprintf(title, sizeof title, "Loss of run %s", r->name);
    pl_axes_draw(&a, title, "step", "cross-entropy (nats per token)");
    pl_series(&a, step, ce, n, pl_palette(0), 1.5, 0);
    pl_series(&a, xs, ys, nv, pl_palette(1), 2.5, 3.5);
    const char *names[2] = {has_ce ? "train" : "train (total loss)", "validation"};
    PlColor cols[2] = {pl_palette(0), pl_palette(1)};
    pl_legend_right(&a, names, cols, nv > 0 ? 2 : 1);
    free(step);
    free(ce);
    free(val);
    free(xs);
    free(ys);
    return save_figure(&c, r->dir, "loss.png", err);
}

/* ---------------------------------------------------------------- sink_by_layer.png */

int fig_sink_by_layer(const Run *r, char *why, char *err) {
    if (need_probes(r, why)) return 1;
    int n = r->np, L = r->L;
    double *step = run_probe_col(r, "step"), *chance = run_probe_col(r, "chance");
    double *layer = run_probe_mat(r, "a_p0_layer", L), *by_layer = transpose(layer, n, L);
    double lo = 0, hi = -INFINITY, ch = last_finite(chance, n, NULL);
    finite_range(layer, (size_t)n * L, &lo, &hi);
    if (isfinite(ch) && ch > hi) hi = ch;
    padded(&lo, &hi);
    PlCanvas c;
    pl_canvas_init(&c, 1560, 580);
    PlAxes a;
    pl_axes_init(&a, &c, 0, 0, 860, 580, 150);
    step_range(&a, step, n, lo, hi);
    pl_axes_draw(&a, "Mean attention on position 0, per layer", "probe step", "attention on P0");
    const char *names[33];
    char name_buf[32][24];
    PlColor cols[33];
    int shown = L < 32 ? L : 32;
    for (int l = 0; l < shown; l++) {
        pl_series(&a, step, by_layer + (size_t)l * n, n, pl_palette(l), 2, 2.5);
        snprintf(name_buf[l], sizeof name_buf[l], "layer %d", l);
        names[l] = name_buf[l];
        cols[l] = pl_palette(l);
    }
    int nn = shown;
    if (isfinite(ch)) {
        pl_hline(&a, ch, PL_BLACK, 1);
        names[nn] = "chance";
        cols[nn++] = PL_BLACK;
    }
    pl_legend_right(&a, names, cols, nn);

    /* right: the sink rate over layers >= 2 (all layers when the model has fewer than 3) */
    int two_plus = L >= 3;
    const char *keys[3][2] = {{"sink_rate_2plus_20", "sink_rate_20"},
                              {"sink_rate_2plus_30", "sink_rate_30"},
                              {"sink_rate_2plus_50", "sink_rate_50"}};
    const char *eps_names[3] = {"eps = 0.2", "eps = 0.3", "eps = 0.5"};
    PlColor eps_cols[3] = {pl_palette(0), pl_palette(1), pl_palette(3)};
    PlAxes b;
    pl_axes_init(&b, &c, 860, 0, 1560, 580, 150);
    step_range(&b, step, n, 0, 1.02);
    pl_axes_draw(&b, two_plus ? "Sink rate over layers >= 2" : "Sink rate over all layers", "probe step",
                 "share of heads with a_p0 > eps");
    for (int k = 0; k < 3; k++) {
        double *rate = run_probe_col(r, keys[k][two_plus ? 0 : 1]);
        pl_series(&b, step, rate, n, eps_cols[k], 2, 2.5);
        free(rate);
    }
    pl_legend_right(&b, eps_names, eps_cols, 3);
    free(step);
    free(chance);
    free(layer);
    free(by_layer);
    return save_figure(&c, r->dir, "sink_by_layer.png", err);
}

/* ---------------------------------------------------------------- parking.png */

/* one curve per head against the probe steps: element h * stride of the natural-probe array key
 * [np][L*H*stride], times scale */
static void head_panel(const Run *r, PlCanvas *c, int x0, int x1, const char *key, int stride, double scale,
                       const FigPanel *p) {
    int n = r->np, LH = r->L * r->H, shown = LH < 64 ? LH : 64;
    double *step = run_probe_col(r, "step"), *m = run_probe_mat(r, key, LH * stride);
    double *by_head = st_malloc(sizeof(double) * (size_t)shown * n);
    FigCurve curves[64];
    char names[64][16];
    for (int h = 0; h < shown; h++) {
        for (int k = 0; k < n; k++) by_head[(size_t)h * n + k] = scale * m[((size_t)k * LH + h) * stride];
        snprintf(names[h], sizeof names[h], "head %d.%d", h / r->H, h % r->H);
        curves[h] = (FigCurve){names[h], step, by_head + (size_t)h * n, n, pl_palette(h), 2, 2};
    }
    fig_curves_panel(c, x0, 0, x1, 560, 130, curves, shown, p);
    free(step);
    free(m);
    free(by_head);
}

/* where each head's attention goes: P0 (x chance), the previous token, the most-attended key token */
int fig_parking(const Run *r, char *why, char *err) {
    if (need_probes(r, why)) return 1;
    int LH = r->L * r->H;
    const cJSON *last = r->probes.row[r->sel[r->np - 1]];
    if (jlen(last, "a_prev") != LH || jlen(last, "park_lift") < LH) {
        snprintf(why, FIG_WHY_LEN, "probes.jsonl has no parking metrics");
        return 1;
    }
    /* with query classes (a_p0_trigger not null), P0 from the ordinary queries, the previous token
     * from the trigger ones */
    double t0 = NAN;
    jarr(last, "a_p0_trigger", &t0, 1);
    int classes = isfinite(t0), top = jlen(last, "park_lift") / LH;
    PlCanvas c;
    pl_canvas_init(&c, 2100, 560);
    FigPanel on_p0 = {classes ? "Attention on P0 from ordinary queries" : "Attention on P0", "probe step", "x chance",
                      1, "chance", 0};
    head_panel(r, &c, 0, 700, classes ? "a_p0_ordinary" : "a_p0", 1, 1 / jnum(last, "chance"), &on_p0);
    FigPanel prev = {classes ? "Attention on the previous token, trigger queries" : "Attention on the previous token",
                     "probe step", "attention", NAN, NULL, 0};
    head_panel(r, &c, 700, 1400, classes ? "a_prev_trigger" : "a_prev", 1, 1, &prev);
    FigPanel park = {"Most-attended key token: its mass over uniform attention's", "probe step", "x uniform", 1,
                     "uniform", 0};
    head_panel(r, &c, 1400, 2100, "park_lift", top, 1, &park);
    return save_figure(&c, r->dir, "parking.png", err);
}

/* ---------------------------------------------------------------- trace_sink.png, trace_norm.png */

/* a heat map of a per-probe-step array key[np][rows] with rows on y (labelled by row_label) */
static int trace_figure(const Run *r, const char *key, int rows, void (*row_label)(int, char *, int),
                        int log_colour, int from_zero, const char *title, const char *ylabel, const char *bar_label,
                        const char *file, char *err) {
    int n = r->np;
    double *step = run_probe_col(r, "step"), *m = run_probe_mat(r, key, rows), *v = transpose(m, n, rows);
    double lo = INFINITY, hi = -INFINITY;
    finite_range(m, (size_t)n * rows, &lo, &hi);
    if (!isfinite(lo)) lo = 0, hi = 1;
    if (from_zero && lo > 0) lo = 0; /* attention shares: the scale starts at none */
    if (log_colour && !(lo > 0)) log_colour = 0;
    if (!(hi > lo)) hi = lo + (lo > 0 ? lo : 1);
    int h = 170 + rows * (rows > 12 ? 26 : 44);
    PlCanvas c;
    pl_canvas_init(&c, 1100, h < 420 ? 420 : h);
    PlAxes a;
    pl_axes_init(&a, &c, 0, 0, 1100, c.h, 150);
    pl_heatmap(&a, v, rows, n, lo, hi, log_colour, 0);
    column_step_ticks(&a, step, n);
    for (int i = 0; i < rows; i++) {
        char lab[16];
        row_label(i, lab, sizeof lab);
        if (lab[0]) pl_axes_ytick(&a, i + 0.5, lab);
    }
    pl_axes_draw(&a, title, "probe step", ylabel);
    pl_colorbar(&a, lo, hi, log_colour, bar_label);
    free(step);
    free(m);
    free(v);
    return save_figure(&c, r->dir, file, err);
}

static void layer_label(int l, char *out, int len) { snprintf(out, len, "%d", l); }

static void point_row_label(int p, char *out, int len) { point_label(p, out, len); }

int fig_trace_sink(const Run *r, char *why, char *err) {
    if (need_probes(r, why)) return 1;
    double *chance = run_probe_col(r, "chance");
    char title[160];
    snprintf(title, sizeof title, "Attention on position 0: layer x step (chance = %.3f)",
             last_finite(chance, r->np, NULL));
    free(chance);
    return trace_figure(r, "a_p0_layer", r->L, layer_label, 0, 1, title, "layer", "mean attention on P0",
                        "trace_sink.png", err);
}

int fig_trace_norm(const Run *r, char *why, char *err) {
    if (need_probes(r, why)) return 1;
    /* a log colour scale when rho spans more than a factor of 4 */
    double *m = run_probe_mat(r, "rho", r->P), lo = INFINITY, hi = -INFINITY;
    finite_range(m, (size_t)r->np * r->P, &lo, &hi);
    free(m);
    return trace_figure(r, "rho", r->P, point_row_label, lo > 0 && hi / lo > 4, 0,
                        "P0 norm ratio rho: residual point x step", "residual point",
                        "rho = norm at P0 / median norm", "trace_norm.png", err);
}

/* ---------------------------------------------------------------- profiles at three steps */

/* one panel of key[P] against the residual point at the profile steps */
static void profile_panel(const Run *r, PlCanvas *c, int x0, int x1, int h, const char *key,
                          const char *title, const char *ylabel, int y_from_zero, double hline) {
    int rows[3], k = profile_rows(r, rows), P = r->P;
    double *m = run_probe_mat(r, key, P), *step = run_probe_col(r, "step");
    double lo = y_from_zero ? 0 : INFINITY, hi = -INFINITY, x[256];
    finite_range(m, (size_t)r->np * P, &lo, &hi);
    if (isfinite(hline)) finite_range(&hline, 1, &lo, &hi);
    padded(&lo, &hi);
    for (int p = 0; p < P && p < 256; p++) x[p] = p / 2.0;
    PlAxes a;
    pl_axes_init(&a, c, x0, 0, x1, h, 170);
    pl_axes_range(&a, 0, (P - 1) / 2.0, lo, hi, 0, 0);
    point_xticks(&a, P);
    pl_axes_draw(&a, title, "residual point (k.5 = after the attention of block k)", ylabel);
    if (isfinite(hline)) pl_hline(&a, hline, PL_GREY, 1);
    const char *names[3];
    char buf[3][32];
    PlColor cols[3];
    const PlColor step_cols[3] = {pl_colormap(0.1), pl_colormap(0.5), pl_colormap(0.85)};
    for (int i = 0; i < k; i++) {
        cols[i] = step_cols[k == 1 ? 2 : i * (3 - 1) / (k - 1)];
        pl_series(&a, x, m + (size_t)rows[i] * P, P < 256 ? P : 256, cols[i], 2.5, 3.5);
        snprintf(buf[i], sizeof buf[i], "step %.0f", step[rows[i]]);
        names[i] = buf[i];
    }
    pl_legend_right(&a, names, cols, k);
    free(m);
    free(step);
}

int fig_norm_profile(const Run *r, char *why, char *err) {
    if (need_probes(r, why)) return 1;
    PlCanvas c;
    pl_canvas_init(&c, 1000, 580);
    profile_panel(r, &c, 0, 1000, 580, "rho", "Norm of position 0 over the median position (rho)",
                  "rho = norm at P0 / median norm", 1, 1.0);
    return save_figure(&c, r->dir, "norm_profile.png", err);
}

int fig_cosine(const Run *r, char *why, char *err) {
    if (need_probes(r, why)) return 1;
    PlCanvas c;
    pl_canvas_init(&c, 1700, 580);
    profile_panel(r, &c, 0, 850, 580, "kappa_p0", "Position 0: cosine across inputs", "mean pairwise cosine",
                  0, 0.0);
    profile_panel(r, &c, 850, 1700, 580, "kappa_mid", "Position T/2 (control)", "mean pairwise cosine", 0,
                  0.0);
    return save_figure(&c, r->dir, "cosine.png", err);
}

/* ---------------------------------------------------------------- attention_maps.png */

/* the maps of attention.bin: 0, 1 when absent or empty (why says so), -1 on an error */
static int read_attention(const char *dir, AttnMaps *m, char *why, char *err) {
    char path[1200];
    snprintf(path, sizeof path, "%s/attention.bin", dir);
    int rc = attnmaps_read(path, m, err);
    if (rc == 1 || (rc == 0 && m->n_steps == 0)) {
        snprintf(why, FIG_WHY_LEN, "attention.bin is %s", rc == 1 ? "missing" : "empty");
        attnmaps_free(m);
        return 1;
    }
    return rc;
}

/* map (l, h) of record s as doubles [T][T]; h = -1: the mean over the heads */
static void attention_map(const AttnMaps *m, int s, int l, int h, double *out) {
    int T = m->T, h0 = h < 0 ? 0 : h, h1 = h < 0 ? m->H : h + 1;
    for (int q = 0; q < T; q++)
        for (int k = 0; k < T; k++) {
            double sum = 0;
            for (int hh = h0; hh < h1; hh++) sum += attnmaps_prob(m, s, l, hh, q, k);
            out[(size_t)q * T + k] = sum / (h1 - h0);
        }
}

/* draws one T x T map into an s x s square at (x0, y0): each pixel shows the mean probability of the
 * query x key block it covers (log colour scale 1e-3..1); blocks wholly above the diagonal (masked)
 * are light grey */
static void draw_attention_square(PlCanvas *c, const double *map, int T, int x0, int y0, int s) {
    for (int py = 0; py < s; py++) {
        int q0 = py * T / s, q1 = (py + 1) * T / s;
        if (q1 <= q0) q1 = q0 + 1;
        for (int px = 0; px < s; px++) {
            int k0 = px * T / s, k1 = (px + 1) * T / s;
            if (k1 <= k0) k1 = k0 + 1;
            if (k0 > q1 - 1) { /* every key of the block comes after every query: masked */
                pl_fill_rect(c, x0 + px, y0 + py, x0 + px + 1, y0 + py + 1, PL_LIGHT);
                continue;
            }
            double sum = 0;
            for (int q = q0; q < q1; q++)
                for (int k = k0; k < k1; k++) sum += map[(size_t)q * T + k];
            double mean = sum / ((double)(q1 - q0) * (k1 - k0));
            pl_fill_rect(c, x0 + px, y0 + py, x0 + px + 1, y0 + py + 1,
                         pl_colormap(pl_colormap_t(mean, 1e-3, 1, 1)));
        }
    }
}

int fig_attention_maps(const Run *r, char *why, char *err) {
    AttnMaps m;
    int rc = read_attention(r->dir, &m, why, err);
    if (rc) return rc;
    /* columns: the mean over heads, then each head for blocks 0-2; the last step of the file */
    int T = m.T, L = m.L, H = m.H, cols = 1 + H, detail = L < 3 ? L : 3, last = m.n_steps - 1;
    int s = 150, gap = 34, left = 70, top = 70;
    while (L * (s + gap) > 1500 && s > 60) s -= 10;
    int w = left + cols * (s + 16) + 170, h = top + L * (s + gap) + 20;
    PlCanvas c;
    pl_canvas_init(&c, w, h);
    char title[160];
    snprintf(title, sizeof title, "Attention maps at step %lld (query down, key across), T = %d",
             (long long)m.step[last], T);
    pl_text(&c, w / 2.0, 16, title, 2, PL_CENTER, PL_BLACK);
    double *map = st_malloc(sizeof(double) * T * T);
    for (int l = 0; l < L; l++) {
        int y0 = top + l * (s + gap);
        char lab[32];
        snprintf(lab, sizeof lab, "layer %d", l);
        pl_text_up(&c, 20, y0 + s / 2.0, lab, 2, PL_BLACK);
        for (int col = 0; col < (l < detail ? cols : 1); col++) {
            int x0 = left + col * (s + 16);
            attention_map(&m, last, l, col - 1, map);
            draw_attention_square(&c, map, T, x0, y0, s);
            if (col == 0)
                snprintf(lab, sizeof lab, "mean of heads");
            else
                snprintf(lab, sizeof lab, "head %d", col - 1);
            pl_text(&c, x0 + s / 2.0, y0 - 22, lab, 2, PL_CENTER, PL_BLACK);
        }
    }
    /* the colour bar: an axes object whose only use is to place it */
    PlAxes bar;
    pl_axes_init(&bar, &c, 0, 0, w, h, 0);
    bar.right = left + cols * (s + 16);
    bar.top = top;
    bar.bottom = top + (L < 3 ? L : 3) * (s + gap) - gap;
    pl_colorbar(&bar, 1e-3, 1, 1, "attention probability");
    free(map);
    attnmaps_free(&m);
    return save_figure(&c, r->dir, "attention_maps.png", err);
}

/* ---------------------------------------------------------------- story.png */

/* the headline of story.png: when the sink emerged (summary.json), or that none formed */
static void story_title(const Run *r, const cJSON *last, char *out, int len) {
    double rate = jnum(last, "sink_rate_30"), at = NAN;
    const char *keys[2] = {"sink_rate_2plus_30_emergence_step", "sink_rate_30_emergence_step"};
    for (int k = 0; k < 2 && r->summary && !isfinite(at); k++) at = jnum(r->summary, keys[k]);
    if (!(rate > 0))
        snprintf(out, len, "Run %s: no attention sink on position 0 formed", r->name);
    else if (isfinite(at))
        snprintf(out, len, "Run %s: the attention sink on position 0 emerges at step %.0f", r->name, at);
    else
        snprintf(out, len, "Run %s: an attention sink on position 0 formed", r->name);
}

/* the layer with the most attention on P0 at the last probe step */
static int top_sink_layer(const Run *r, const cJSON *last) {
    double *a = st_malloc(sizeof(double) * r->L);
    jarr(last, "a_p0_layer", a, r->L);
    int top = 0;
    for (int l = 1; l < r->L; l++)
        if (a[l] > a[top]) top = l;
    free(a);
    return top;
}

/* the three curve panels of the top row: loss, attention on P0 per layer, rho after block 1 */
static void story_curves(const Run *r, PlCanvas *c, int y0, int y1) {
    int n = r->train.n, np = r->np, L = r->L < 10 ? r->L : 10;
    double *tstep = run_train_col(r, "step"), *ce = run_train_col(r, "ce"), *val = run_train_col(r, "val_loss");
    double *vx = st_malloc(sizeof(double) * (n + 1)), *vy = st_malloc(sizeof(double) * (n + 1));
    int nv = compact(tstep, val, n, vx, vy);
    FigCurve loss[2] = {{"train", tstep, ce, n, pl_palette(0), 1.5, 0}, {"validation", vx, vy, nv, pl_palette(1), 2.5, 3}};
    FigPanel lp = {"Loss", "step", "nats per token", NAN, NULL, 0};
    fig_curves_panel(c, 0, y0, 640, y1, 150, loss, nv ? 2 : 1, &lp);

    double *step = run_probe_col(r, "step"), *chance = run_probe_col(r, "chance");
    double *layer_rows = run_probe_mat(r, "a_p0_layer", r->L), *by_layer = transpose(layer_rows, np, r->L);
    FigCurve layers[10];
    char names[10][16];
    for (int l = 0; l < L; l++) {
        snprintf(names[l], sizeof names[l], "layer %d", l);
        layers[l] = (FigCurve){names[l], step, by_layer + (size_t)l * np, np, pl_palette(l), 2.5, 2.5};
    }
    FigPanel ap = {"Attention on position 0, per layer", "probe step", "attention on P0",
                   last_finite(chance, np, NULL), "chance", 0};
    fig_curves_panel(c, 640, y0, 1280, y1, 150, layers, L, &ap);

    /* rho at residual point 2, the state after block 1 (NaN in a model of one block) */
    double *rho = run_probe_mat(r, "rho", r->P), *rho2 = st_malloc(sizeof(double) * (np + 1));
    for (int k = 0; k < np; k++) rho2[k] = r->P > 4 ? rho[(size_t)k * r->P + 4] : NAN;
    FigCurve rc = {"rho", step, rho2, np, pl_palette(3), 2.5, 2.5};
    FigPanel rp = {"Norm of P0 after block 1 over the median (rho)", "probe step", "rho", 1, "rho = 1", 0};
    fig_curves_panel(c, 1280, y0, 1920, y1, 150, &rc, 1, &rp);
    free(tstep), free(ce), free(val), free(vx), free(vy), free(step), free(chance);
    free(layer_rows), free(by_layer), free(rho), free(rho2);
}

/* the bottom row: the mean attention map of `layer` at the first, middle and last probe steps */
static void story_maps(const Run *r, const AttnMaps *m, int layer, PlCanvas *c, int y0) {
    int rows[3], k = profile_rows(r, rows), s = 330;
    double *step = run_probe_col(r, "step"), *map = st_malloc(sizeof(double) * m->T * m->T);
    for (int i = 0; i < k; i++) {
        int rec = attnmaps_nearest(m, step[rows[i]]), x0 = 170 + i * (s + 190);
        char lab[96];
        snprintf(lab, sizeof lab, "layer %d at step %lld", layer, (long long)m->step[rec]);
        pl_text(c, x0 + s / 2.0, y0, lab, 3, PL_CENTER, PL_BLACK);
        attention_map(m, rec, layer, -1, map);
        draw_attention_square(c, map, m->T, x0, y0 + 40, s);
    }
    pl_text(c, 1600, y0 + 90, "query down, key across", 2, PL_LEFT, PL_BLACK);
    pl_text(c, 1600, y0 + 120, "mean of the heads", 2, PL_LEFT, PL_BLACK);
    pl_text(c, 1600, y0 + 150, "column 0 = the sink", 2, PL_LEFT, PL_BLACK);
    PlAxes bar; /* an axes object whose only use is to place the colour bar */
    pl_axes_init(&bar, c, 0, 0, c->w, c->h, 0);
    bar.right = 1740, bar.top = y0 + 190, bar.bottom = y0 + 40 + s;
    pl_colorbar(&bar, 1e-3, 1, 1, "attention");
    free(step);
    free(map);
}

int fig_story(const Run *r, char *why, char *err) {
    if (need_probes(r, why)) return 1;
    AttnMaps m;
    int rc = read_attention(r->dir, &m, why, err);
    if (rc) return rc;
    const cJSON *last = r->probes.row[r->sel[r->np - 1]];
    PlCanvas c;
    pl_canvas_init(&c, 1920, 1080);
    char title[320];
    story_title(r, last, title, sizeof title);
    pl_text(&c, 960, 20, title, 4, PL_CENTER, PL_BLACK);
    story_curves(r, &c, 90, 590);
    story_maps(r, &m, top_sink_layer(r, last), &c, 640);
    attnmaps_free(&m);
    return save_figure(&c, r->dir, "story.png", err);
}

/* ---------------------------------------------------------------- concentration.png */

int fig_concentration(const Run *r, char *why, char *err) {
    if (need_probes(r, why)) return 1;
    int n = r->np;
    double *step = run_probe_col(r, "step"), *d = run_probe_col(r, "d_star"), *c2 = run_probe_col(r, "C2");
    PlCanvas c;
    pl_canvas_init(&c, 1000, 960);
    PlAxes a;
    pl_axes_init(&a, &c, 0, 0, 1000, 320, 60);
    step_range(&a, step, n, 0, r->L + 0.25);
    pl_axes_draw(&a, "Formation depth d* (first residual point with rho >= half its maximum)", NULL,
                 "d* (residual point)");
    pl_series(&a, step, d, n, pl_palette(0), 2, 3.5);
    pl_axes_init(&a, &c, 0, 320, 1000, 640, 60);
    step_range(&a, step, n, 0, 1.02);
    pl_axes_draw(&a, "Concentration C2 (share of log-norm growth done by the end of block 1)", NULL, "C2");
    pl_series(&a, step, c2, n, pl_palette(2), 2, 3.5);

    /* the loss beside them: the validation loss at the trainer's eval steps (train.jsonl), and the loss on
     * the probe windows at every probe step (probes.jsonl's probe_loss) */
    int nt = r->train.n;
    double *ts = run_train_col(r, "step"), *tv = run_train_col(r, "val_loss"), *pl = run_probe_col(r, "probe_loss");
    double *xs = st_malloc(sizeof(double) * (nt + n + 1)), *ys = st_malloc(sizeof(double) * (nt + n + 1));
    int nv = compact(ts, tv, nt, xs, ys), np = compact(step, pl, n, xs + nv, ys + nv);
    double lo = INFINITY, hi = -INFINITY;
    if (finite_range(ys, nv + np, &lo, &hi) == 0) lo = 0, hi = 1;
    padded(&lo, &hi);
    pl_axes_init(&a, &c, 0, 640, 1000, 960, 60);
    step_range(&a, step, n, lo, hi);
    pl_axes_draw(&a, "Loss", "probe step", "loss (nats/token)");
    pl_series(&a, xs, ys, nv, pl_palette(1), 2, 3.5);
    pl_series(&a, xs + nv, ys + nv, np, pl_palette(4), 2, 3.5);
    const char *names[2] = {"validation", "probe windows"};
    PlColor cols[2] = {pl_palette(1), pl_palette(4)};
    pl_legend(&c, a.right - 230, a.top + 8, names, cols, 2);
    free(step);
    free(d);
    free(c2);
    free(ts);
    free(tv);
    free(pl);
    free(xs);
    free(ys);
    return save_figure(&c, r->dir, "concentration.png", err);
}

/* ---------------------------------------------------------------- experts.png */

/* the number of MoE layers logged in train.jsonl (keys expert_load_l0, expert_load_l1, ...) and the
 * experts per layer, from the first row that has them; 0 when none */
static int expert_layers(const Run *r, int *E) {
    for (int i = 0; i < r->train.n; i++) {
        *E = jlen(r->train.row[i], "expert_load_l0");
        if (*E <= 0) continue;
        int L = 1;
        char key[32];
        for (;; L++) {
            snprintf(key, sizeof key, "expert_load_l%d", L);
            if (jlen(r->train.row[i], key) != *E) break;
        }
        return L;
    }
    return 0;
}

/* experts.png's last panel at (x0, y0), pw x ph: per layer, the share of probe windows whose P0 goes
 * to the modal expert */
static void p0_routing_panel(PlCanvas *c, const Run *r, int x0, int y0, int pw, int ph) {
    if (r->np == 0) {
        pl_text(c, x0 + pw / 2.0, y0 + ph / 2.0, "P0 routing: probes.jsonl is missing", 2, PL_CENTER, PL_BLACK);
        return;
    }
    PlAxes a;
    pl_axes_init(&a, c, x0, y0, x0 + pw, y0 + ph, 140);
    double *pstep = run_probe_col(r, "step"), *cons = run_probe_mat(r, "p0_route_consistency", r->L);
    double *by_layer = transpose(cons, r->np, r->L);
    step_range(&a, pstep, r->np, 0, 1.02);
    pl_axes_draw(&a, "P0 routing consistency", "probe step", "share with the modal expert");
    const char *names[64];
    char buf[64][24];
    PlColor cols[64];
    for (int l = 0; l < r->L && l < 64; l++) {
        pl_series(&a, pstep, by_layer + (size_t)l * r->np, r->np, pl_palette(l), 2, 2.5);
        snprintf(buf[l], sizeof buf[l], "layer %d", l);
        names[l] = buf[l];
        cols[l] = pl_palette(l);
    }
    pl_legend_right(&a, names, cols, r->L < 12 ? r->L : 12);
    free(pstep);
    free(cons);
    free(by_layer);
}

int fig_experts(const Run *r, char *why, char *err) {
    if (run_is_dense(r)) {
        snprintf(why, FIG_WHY_LEN, "the model is dense (n_expert = 1): there is no routing to show");
        return 1;
    }
    int E = 0, L = expert_layers(r, &E), n = r->train.n;
    if (L == 0) {
        snprintf(why, FIG_WHY_LEN, "train.jsonl has no expert load (keys expert_load_l0, ...)");
        return 1;
    }
    /* load[i][l][e]: share of layer l's routed slots that went to expert e at logged row i */
    double *step = run_train_col(r, "step"), *load = st_malloc(sizeof(double) * ((size_t)n * L * E + 1));
    for (int i = 0; i < n; i++)
        for (int l = 0; l < L; l++) {
            char key[32];
            snprintf(key, sizeof key, "expert_load_l%d", l);
            jarr(r->train.row[i], key, load + ((size_t)i * L + l) * E, E);
        }
    int len = L * E;
    double lo = 0, hi = -INFINITY;
    finite_range(load, (size_t)n * len, &lo, &hi);
    padded(&lo, &hi);
    int panels = L + 1, pcols = 2, prows = (panels + 1) / 2, pw = 760, ph = 380;
    PlCanvas c;
    pl_canvas_init(&c, pcols * pw, prows * ph);
    double *ys = st_malloc(sizeof(double) * n), *xs = st_malloc(sizeof(double) * n),
           *yc = st_malloc(sizeof(double) * n);
    const char *names[64];
    char buf[64][24];
    PlColor cols[64];
    for (int l = 0; l < L; l++) {
        PlAxes a;
        int x0 = (l % pcols) * pw, y0 = (l / pcols) * ph;
        pl_axes_init(&a, &c, x0, y0, x0 + pw, y0 + ph, 140);
        pl_axes_range(&a, step[0], step[n - 1], lo, hi, 0, 0);
        char title[64];
        snprintf(title, sizeof title, "Expert load, layer %d", l);
        pl_axes_draw(&a, title, "step", "share of routed tokens");
        for (int e = 0; e < E; e++) {
            for (int i = 0; i < n; i++) ys[i] = load[(size_t)i * len + l * E + e];
            int k = compact(step, ys, n, xs, yc);
            pl_series(&a, xs, yc, k, pl_palette(e), 1.5, 0);
            if (e < 64) {
                snprintf(buf[e], sizeof buf[e], "expert %d", e);
                names[e] = buf[e];
                cols[e] = pl_palette(e);
            }
        }
        pl_hline(&a, 1.0 / E, PL_BLACK, 1); /* the even share */
        int shown = E < 12 ? E : 12;
        names[shown] = "even";
        cols[shown] = PL_BLACK;
        pl_legend_right(&a, names, cols, shown + 1);
    }
    /* the last panel: how consistently P0 goes to one expert, per layer */
    p0_routing_panel(&c, r, (L % pcols) * pw, (L / pcols) * ph, pw, ph);
    free(step);
    free(load);
    free(ys);
    free(xs);
    free(yc);
    return save_figure(&c, r->dir, "experts.png", err);
}

/* ---------------------------------------------------------------- interventions.png */

static const char *intervention_name(const cJSON *row) {
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(row, "intervention");
    return cJSON_IsString(name) ? name->valuestring : "?";
}

int *intervention_rows(const Run *r, int *n, double *step) {
    *step = r->interv.n ? jnum(r->interv.row[r->interv.n - 1], "step") : NAN;
    int *sel = st_malloc(sizeof(int) * (r->interv.n + 1)), *taken = st_calloc(r->interv.n + 1, sizeof(int));
    *n = 0;
    for (int i = 0; i < r->interv.n; i++) {
        if (taken[i] || jnum(r->interv.row[i], "step") != *step) continue;
        /* line i and every later line of the same intervention at this step */
        const char *name = intervention_name(r->interv.row[i]);
        for (int k = i; k < r->interv.n; k++)
            if (!taken[k] && jnum(r->interv.row[k], "step") == *step &&
                !strcmp(intervention_name(r->interv.row[k]), name)) {
                taken[k] = 1;
                sel[(*n)++] = k;
            }
    }
    free(taken);
    return sel;
}

/* the row label of one intervention line: its name, where it acts, and the head when it is one */
static void intervention_label(const cJSON *row, char *out, int len) {
    double pos = jnum(row, "position"), layer = jnum(row, "layer"), head = jnum(row, "head");
    const char *where = pos == 0 ? " @P0" : pos > 0 ? " @T/2" : "";
    if (head >= 0)
        snprintf(out, len, "%s l%.0f h%.0f", intervention_name(row), layer, head);
    else
        snprintf(out, len, "%s%s", intervention_name(row), where);
}

/* one panel: for every selected line, a bar at key_after coloured by where the intervention acts, and
 * a black tick at key_before */
static void intervention_panel(const Run *r, const int *sel, int n, PlCanvas *c, int x0, int x1, int h,
                               int label_width, const char *key, const char *title, const PlColor *where_cols) {
    char kb[64], ka[64];
    snprintf(kb, sizeof kb, "%s_before", key);
    snprintf(ka, sizeof ka, "%s_after", key);
    double lo = 0, hi = -INFINITY;
    for (int i = 0; i < n; i++) {
        double v[2] = {jnum(r->interv.row[sel[i]], kb), jnum(r->interv.row[sel[i]], ka)};
        finite_range(v, 2, &lo, &hi);
    }
    if (!isfinite(hi)) hi = 1;
    padded(&lo, &hi);
    PlAxes a;
    pl_axes_init(&a, c, x0, 0, x1, h, 0);
    a.left = x0 + label_width;
    pl_axes_range(&a, lo, hi, 0, n, 0, 0);
    for (int i = 0; i < n; i++) {
        const cJSON *row = r->interv.row[sel[i]];
        double yc = n - 1 - i; /* the first line at the top */
        if (label_width > 84) {
            char lab[48];
            intervention_label(row, lab, sizeof lab);
            pl_axes_ytick(&a, yc + 0.5, lab);
        } else {
            pl_axes_ytick(&a, yc + 0.5, "");
        }
        double pos = jnum(row, "position"), after = jnum(row, ka), before = jnum(row, kb);
        PlColor col = where_cols[pos == 0 ? 0 : pos > 0 ? 1 : 2];
        if (isfinite(after))
            pl_fill_rect(c, pl_x(&a, lo > 0 ? lo : 0), pl_y(&a, yc + 0.8), pl_x(&a, after), pl_y(&a, yc + 0.2), col);
        else
            pl_text(c, a.left + 6, pl_y(&a, yc + 0.5) - 7, "n/a", 2, PL_LEFT, PL_GREY);
        if (isfinite(before))
            pl_fill_rect(c, pl_x(&a, before) - 1.5, pl_y(&a, yc + 0.95), pl_x(&a, before) + 1.5, pl_y(&a, yc + 0.05),
                         PL_BLACK);
    }
    a.grid = 0;
    pl_axes_draw(&a, title, NULL, NULL);
}

int fig_interventions(const Run *r, char *why, char *err) {
    if (r->interv.n == 0) {
        snprintf(why, FIG_WHY_LEN, "interventions.jsonl is %s",
                 strstr(r->missing, "interventions") ? "missing" : "empty");
        return 1;
    }
    double last;
    int n, *sel = intervention_rows(r, &n, &last);
    if (n > PL_MAX_TICKS) n = PL_MAX_TICKS; /* one labelled row each */
    int h = 150 + n * 22;
    PlCanvas c;
    pl_canvas_init(&c, 1820, h < 400 ? 400 : h);
    const PlColor where_cols[3] = {pl_palette(3), pl_palette(0), PL_GREY};
    char title[96];
    snprintf(title, sizeof title, "Attention on P0, layers >= 2 (step %.0f)", last);
    intervention_panel(r, sel, n, &c, 0, 760, c.h, 290, "a_p0_2plus", title, where_cols);
    intervention_panel(r, sel, n, &c, 740, 1140, c.h, 40, "rho_max", "P0 norm ratio, max over points", where_cols);
    intervention_panel(r, sel, n, &c, 1120, 1520, c.h, 40, "probe_loss", "Probe loss (nats/token)", where_cols);
    const char *names[4] = {"after, at P0", "after, at T/2", "after, input/other", "before"};
    PlColor cols[4] = {where_cols[0], where_cols[1], where_cols[2], PL_BLACK};
    pl_legend(&c, 1530, 36, names, cols, 4);
    free(sel);
    return save_figure(&c, r->dir, "interventions.png", err);
}

/* ---------------------------------------------------------------- --compare */

void fig_curves_panel(PlCanvas *c, int x0, int y0, int x1, int y1, int legend_width, const FigCurve *curves, int n,
                      const FigPanel *p) {
    PlAxes a;
    pl_axes_init(&a, c, x0, y0, x1, y1, legend_width);
    double lo = INFINITY, hi = -INFINITY, xlo = INFINITY, xhi = -INFINITY;
    int total = 0;
    for (int i = 0; i < n; i++) {
        total += curves[i].n;
        finite_range(curves[i].y, curves[i].n, &lo, &hi);
        finite_range(curves[i].x, curves[i].n, &xlo, &xhi);
    }
    if (isfinite(p->ref)) finite_range(&p->ref, 1, &lo, &hi);
    padded(&lo, &hi);
    if (p->integer_x) {
        /* categories 0, 1, 2, ... (layers): half a unit of air on both sides, a tick at each */
        pl_axes_range(&a, (isfinite(xlo) ? xlo : 0) - 0.5, (isfinite(xhi) ? xhi : 0) + 0.5, lo, hi, 0, 0);
        for (int v = (int)ceil(a.xmin); v <= a.xmax && a.n_xt < PL_MAX_TICKS; v++) {
            char lab[24];
            snprintf(lab, sizeof lab, "%d", v);
            pl_axes_xtick(&a, v, lab);
        }
    } else {
        double *all = st_malloc(sizeof(double) * (total + 1));
        int k = 0;
        for (int i = 0; i < n; i++)
            for (int j = 0; j < curves[i].n; j++) all[k++] = curves[i].x[j];
        step_range(&a, all, total, lo, hi);
        free(all);
    }
    pl_axes_draw(&a, p->title, p->xlabel, p->ylabel);
    if (isfinite(p->ref)) pl_hline(&a, p->ref, PL_BLACK, 1);
    const char *names[65];
    PlColor cols[65];
    int shown = 0;
    for (int i = 0; i < n; i++) {
        pl_series(&a, curves[i].x, curves[i].y, curves[i].n, curves[i].col, curves[i].width, curves[i].marker);
        if (curves[i].name && shown < 64) {
            names[shown] = curves[i].name;
            cols[shown++] = curves[i].col;
        }
    }
    if (isfinite(p->ref) && p->ref_name && shown < 65) {
        names[shown] = p->ref_name;
        cols[shown++] = PL_BLACK;
    }
    if (legend_width > 0) pl_legend_right(&a, names, cols, shown < 20 ? shown : 20);
}

int fig_compare(const Run *runs, int n_runs, const char *key, const char *title, const char *ylabel,
                int from_train, const char *out_dir, char *err) {
    if (n_runs > 64) n_runs = 64;
    FigCurve curves[64] = {{0}};
    double *x[64], *y[64];
    for (int i = 0; i < n_runs; i++) {
        const Run *r = &runs[i];
        double *tok = from_train ? run_train_col(r, "tokens") : run_probe_col(r, "tokens");
        double *v = from_train ? run_train_col(r, key) : run_probe_col(r, key);
        int rows = from_train ? r->train.n : r->np;
        x[i] = st_malloc(sizeof(double) * (rows + 1));
        y[i] = st_malloc(sizeof(double) * (rows + 1));
        curves[i] = (FigCurve){r->name, x[i], y[i], compact(tok, v, rows, x[i], y[i]), pl_palette(i), 2, 2.5};
        free(tok);
        free(v);
    }
    PlCanvas c;
    pl_canvas_init(&c, 1100, 580);
    FigPanel panel = {title, "training tokens", ylabel, NAN, NULL, 0};
    fig_curves_panel(&c, 0, 0, 1100, 580, 260, curves, n_runs, &panel);
    for (int i = 0; i < n_runs; i++) {
        free(x[i]);
        free(y[i]);
    }
    char file[128];
    snprintf(file, sizeof file, "compare_%s.png", key);
    return save_figure(&c, out_dir, file, err);
}

/* one panel of fig_versus_key: the runs' values of one headline number against the key's value */
static void versus_panel(PlCanvas *c, int x0, int y0, int x1, int y1, const char *key, const double *x,
                         const double *y, int n, const char *title) {
    PlAxes a;
    pl_axes_init(&a, c, x0, y0, x1, y1, 30);
    double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
    finite_range(x, n, &xlo, &xhi);
    int shown = 0;
    for (int i = 0; i < n; i++)
        if (isfinite(x[i]) && isfinite(y[i])) {
            if (y[i] < ylo) ylo = y[i];
            if (y[i] > yhi) yhi = y[i];
            shown++;
        }
    padded(&ylo, &yhi);
    /* a key spanning a decade or more (learning rates) reads best on a log axis */
    int xlog = xlo > 0 && xhi / xlo >= 10;
    if (!(xhi > xlo)) { /* one value: a unit-wide range around it */
        xlo = isfinite(xlo) ? xlo - 0.5 : 0;
        xhi = xlo + 1;
        xlog = 0;
    } else if (!xlog) {
        double pad = (xhi - xlo) * 0.08;
        xlo -= pad;
        xhi += pad;
    } else {
        xlo /= 1.25;
        xhi *= 1.25;
    }
    pl_axes_range(&a, xlo, xhi, ylo, yhi, xlog, 0);
    char full[160];
    snprintf(full, sizeof full, "%s%s", title, shown < n ? " (missing points: none / n/a)" : "");
    pl_axes_draw(&a, full, key, NULL);
    for (int i = 0; i < n; i++)
        if (isfinite(x[i]) && isfinite(y[i])) pl_disc(c, pl_x(&a, x[i]), pl_y(&a, y[i]), 5, pl_palette(i));
}

int fig_versus_key(const char *key, const double *x, const double *const *y, const char *const *titles, int n_runs,
                   const char *out_dir, char *err) {
    PlCanvas c;
    pl_canvas_init(&c, 1100, 760);
    for (int m = 0; m < 4; m++) {
        int x0 = (m % 2) * 550, y0 = (m / 2) * 380;
        versus_panel(&c, x0, y0, x0 + 550, y0 + 380, key, x, y[m], n_runs, titles[m]);
    }
    char file[128];
    snprintf(file, sizeof file, "versus_%s.png", key);
    return save_figure(&c, out_dir, file, err);
}
