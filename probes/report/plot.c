/* probes/report/plot.c: the canvas, text, axes, legends, colour map and heat maps of plot.h. */
#include "plot.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stb_image_write.h>

/* stb_easy_font is a header of static functions; this is the one file that includes it. Its
 * initialisers trip -Wmissing-braces and it defines helpers we do not call. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-braces"
#pragma GCC diagnostic ignored "-Wunused-function"
#include <stb_easy_font.h>
#pragma GCC diagnostic pop

#include "../../common/binfile.h"
#include "../../common/util.h"

/* ---------------------------------------------------------------- colours */

PlColor pl_palette(int i) {
    /* ten well-separated hues (the usual "category10" family), dark enough on white */
    static const PlColor p[10] = {{31, 119, 180}, {255, 127, 14}, {44, 160, 44},  {214, 39, 40},
                                  {148, 103, 189}, {140, 86, 75}, {227, 119, 194}, {127, 127, 127},
                                  {188, 189, 34},  {23, 190, 207}};
    return p[((i % 10) + 10) % 10];
}

static uint8_t unit_to_byte(double v) {
    if (!(v > 0)) return 0;
    if (v >= 1) return 255;
    return (uint8_t)lround(v * 255.0);
}

PlColor pl_colormap(double t) {
    /* Degree-5 least-squares polynomials in t, one per channel, fitted (by us) to the eight viridis
     * anchor colours #440154 #46337E #365C8D #277F8E #1FA187 #4AC16D #9FDA3A #FDE725 at t = k/7; the
     * fit is within 3/255 of every anchor. Lightness rises monotonically from 0 to 1. */
    static const double coef[3][6] = {
        {0.267293, 0.016823, 1.506349, -13.340457, 23.780644, -11.238467},
        {0.003734, 1.586465, -1.724429, 2.125819, -1.001377, -0.084500},
        {0.328434, 2.185907, -9.853470, 24.286623, -29.182592, 12.379213}};
    if (!(t > 0)) t = 0; /* NaN maps to the low end; callers draw NaN cells themselves */
    if (t > 1) t = 1;
    double ch[3];
    for (int c = 0; c < 3; c++) {
        double v = 0; /* Horner's rule */
        for (int k = 5; k >= 0; k--) v = v * t + coef[c][k];
        ch[c] = v;
    }
    return (PlColor){unit_to_byte(ch[0]), unit_to_byte(ch[1]), unit_to_byte(ch[2])};
}

/* ---------------------------------------------------------------- canvas */

void pl_canvas_init(PlCanvas *c, int w, int h) {
    c->w = w;
    c->h = h;
    c->rgb = st_malloc((size_t)w * h * 3);
    memset(c->rgb, 255, (size_t)w * h * 3);
}

void pl_canvas_free(PlCanvas *c) {
    free(c->rgb);
    c->rgb = NULL;
}

void pl_blend(PlCanvas *c, int x, int y, PlColor col, double alpha) {
    if (x < 0 || y < 0 || x >= c->w || y >= c->h || !(alpha > 0)) return;
    if (alpha > 1) alpha = 1;
    uint8_t *p = c->rgb + ((size_t)y * c->w + x) * 3;
    const uint8_t src[3] = {col.r, col.g, col.b};
    for (int k = 0; k < 3; k++) p[k] = (uint8_t)lround(p[k] + alpha * (src[k] - p[k]));
}

/* length of the overlap of [a0, a1) with pixel [i, i+1) */
static double overlap(double a0, double a1, int i) {
    double lo = a0 > i ? a0 : i, hi = a1 < i + 1 ? a1 : i + 1;
    return hi > lo ? hi - lo : 0;
}

void pl_fill_rect(PlCanvas *c, double x0, double y0, double x1, double y1, PlColor col) {
    /* each pixel gets the share of its area the rectangle covers: exact fills on whole pixels,
     * soft edges on fractional ones */
    int ix0 = (int)floor(x0), ix1 = (int)ceil(x1), iy0 = (int)floor(y0), iy1 = (int)ceil(y1);
    if (ix0 < 0) ix0 = 0;
    if (iy0 < 0) iy0 = 0;
    if (ix1 > c->w) ix1 = c->w;
    if (iy1 > c->h) iy1 = c->h;
    for (int y = iy0; y < iy1; y++) {
        double cy = overlap(y0, y1, y);
        for (int x = ix0; x < ix1; x++) pl_blend(c, x, y, col, cy * overlap(x0, x1, x));
    }
}

/* distance from point (px, py) to the segment (x0, y0)-(x1, y1) */
static double segment_distance(double px, double py, double x0, double y0, double x1, double y1) {
    double dx = x1 - x0, dy = y1 - y0, len2 = dx * dx + dy * dy;
    double t = len2 > 0 ? ((px - x0) * dx + (py - y0) * dy) / len2 : 0;
    if (t < 0) t = 0;
    if (t > 1) t = 1;
    double ex = px - (x0 + t * dx), ey = py - (y0 + t * dy);
    return sqrt(ex * ex + ey * ey);
}

void pl_line(PlCanvas *c, double x0, double y0, double x1, double y1, double width, PlColor col) {
    /* The line is a capsule of radius width/2 around the segment; a pixel's coverage is approximated
     * by how far its centre lies inside the capsule's edge (a 1-px soft ramp). Walk along the major
     * axis and visit only the few pixels across the line at each step. */
    double r = width / 2, reach = r + 1.5;
    int steep = fabs(y1 - y0) > fabs(x1 - x0);
    double a0 = steep ? y0 : x0, a1 = steep ? y1 : x1, b0 = steep ? x0 : y0, b1 = steep ? x1 : y1;
    if (a0 > a1) {
        double t = a0; a0 = a1; a1 = t;
        t = b0; b0 = b1; b1 = t;
    }
    double slope = a1 > a0 ? (b1 - b0) / (a1 - a0) : 0;
    /* only the steps inside the canvas (a far-off end point must not cost a long walk) */
    double a_lo = fmax(a0 - reach, -1), a_hi = fmin(a1 + reach, steep ? c->h : c->w);
    for (int a = (int)floor(a_lo); a <= (int)ceil(a_hi); a++) {
        double ac = a + 0.5, at = ac < a0 ? a0 : ac > a1 ? a1 : ac;
        double bc = b0 + slope * (at - a0); /* the line's minor coordinate at this step */
        double span = reach * sqrt(1 + slope * slope);
        double b_lo = fmax(bc - span, -1), b_hi = fmin(bc + span, steep ? c->w : c->h);
        for (int b = (int)floor(b_lo); b <= (int)ceil(b_hi); b++) {
            int x = steep ? b : a, y = steep ? a : b;
            double d = segment_distance(x + 0.5, y + 0.5, x0, y0, x1, y1);
            double cover = r + 0.5 - d;
            if (cover > 0) pl_blend(c, x, y, col, cover);
        }
    }
}

void pl_disc(PlCanvas *c, double x, double y, double radius, PlColor col) {
    for (int py = (int)floor(y - radius - 1); py <= (int)ceil(y + radius + 1); py++)
        for (int px = (int)floor(x - radius - 1); px <= (int)ceil(x + radius + 1); px++) {
            double d = hypot(px + 0.5 - x, py + 0.5 - y);
            pl_blend(c, px, py, col, radius + 0.5 - d);
        }
}

/* where the PNG goes, and errno of its first failed write (0: none) */
typedef struct {
    FILE *f;
    int write_errno;
} PngSink;

static void write_to_file(void *ctx, void *data, int size) {
    /* stb_image_write hands the PNG over in pieces and cannot be told of a failure: keep the first */
    PngSink *sink = ctx;
    if (fwrite(data, 1, (size_t)size, sink->f) != (size_t)size && !sink->write_errno) sink->write_errno = errno;
}

int pl_save_png(const PlCanvas *c, const char *path, char *err) {
    StAtomic a;
    if (st_atomic_open(&a, path, err)) return -1;
    PngSink sink = {a.f, 0};
    if (!stbi_write_png_to_func(write_to_file, &sink, c->w, c->h, 3, c->rgb, c->w * 3)) {
        st_atomic_abort(&a);
        return st_errorf(err, "%s: PNG encoder failed for a %dx%d image", path, c->w, c->h);
    }
    if (sink.write_errno) {
        st_atomic_abort(&a);
        return st_errorf(err, "%s: write failed: %s", path, strerror(sink.write_errno));
    }
    return st_atomic_commit(&a, err);
}

/* ---------------------------------------------------------------- text */

/* stb_easy_font draws ASCII 32..126 only */
static void printable_copy(const char *s, char *out, size_t out_len) {
    size_t i = 0;
    for (; s[i] && i + 1 < out_len; i++) out[i] = (s[i] >= 32 && s[i] <= 126) ? s[i] : '?';
    out[i] = 0;
}

int pl_text_width(const char *s, int scale) {
    char buf[512];
    printable_copy(s, buf, sizeof buf);
    /* the advance of a glyph is its ink plus two units of spacing; the box ends at the last ink */
    int w = stb_easy_font_width(buf);
    return (w > 2 ? w - 2 : 0) * scale;
}

/* draws the text's quads, each mapped through a rotation: up = 0 for normal text, 1 for text that
 * reads upwards with its box's left edge at x and its baseline direction pointing to -y */
static void draw_glyph_quads(PlCanvas *c, double x, double y, const char *s, int scale, int up,
                             PlColor col) {
    char buf[512];
    static char vbuf[512 * 300]; /* stb_easy_font uses about 270 bytes of vertices per character */
    printable_copy(s, buf, sizeof buf);
    int n = stb_easy_font_print(0, 0, buf, NULL, vbuf, sizeof vbuf);
    for (int q = 0; q < n; q++) {
        /* vertices 0 and 2 of a quad are opposite corners */
        const float *v0 = (const float *)(vbuf + q * 64), *v2 = (const float *)(vbuf + q * 64 + 32);
        double u0 = v0[0] * scale, w0 = v0[1] * scale, u1 = v2[0] * scale, w1 = v2[1] * scale;
        if (!up)
            pl_fill_rect(c, x + u0, y + w0, x + u1, y + w1, col);
        else /* rotate 90 degrees anticlockwise: text x -> -y, text y -> +x */
            pl_fill_rect(c, x + w0, y - u1, x + w1, y - u0, col);
    }
}

void pl_text(PlCanvas *c, double x, double y, const char *s, int scale, int align, PlColor col) {
    int w = pl_text_width(s, scale);
    double left = align == PL_CENTER ? x - w / 2.0 : align == PL_RIGHT ? x - w : x;
    draw_glyph_quads(c, round(left), round(y), s, scale, 0, col);
}

void pl_text_up(PlCanvas *c, double x, double y, const char *s, int scale, PlColor col) {
    int w = pl_text_width(s, scale);
    draw_glyph_quads(c, round(x), round(y + w / 2.0), s, scale, 1, col);
}

/* ---------------------------------------------------------------- ticks */

int pl_nice_ticks(double lo, double hi, int max_n, double *ticks) {
    if (!(hi > lo) || max_n < 2) {
        ticks[0] = lo;
        return 1;
    }
    /* the smallest step of the form {1, 2, 5} x 10^k that leaves at most max_n multiples in range,
     * searched upwards from a step surely too small */
    const double mult[3] = {1, 2, 5};
    double mag = pow(10, floor(log10((hi - lo) / max_n)) - 1), step = mag;
    for (int k = 0;; k++) {
        step = mult[k % 3] * mag * pow(10, k / 3);
        if (floor(hi / step + 1e-9) - ceil(lo / step - 1e-9) + 1 <= max_n) break;
    }
    int n = 0;
    for (double t = ceil(lo / step - 1e-9) * step; t <= hi + step * 1e-9 && n < PL_MAX_TICKS; t += step)
        ticks[n++] = fabs(t) < step * 1e-9 ? 0 : t; /* avoid "-0" */
    return n;
}

/* the numbers m x 10^e inside [lo, hi] for m in mult[0..n_mult) */
static int decade_multiples(double lo, double hi, const double *mult, int n_mult, double *ticks) {
    int n = 0;
    for (int e = (int)floor(log10(lo)); e <= (int)ceil(log10(hi)); e++)
        for (int k = 0; k < n_mult; k++) {
            double v = mult[k] * pow(10, e);
            if (v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9) && n < PL_MAX_TICKS) ticks[n++] = v;
        }
    return n;
}

int pl_log_ticks(double lo, double hi, double *ticks) {
    const double powers[1] = {1}, one_two_five[3] = {1, 2, 5};
    int n = decade_multiples(lo, hi, powers, 1, ticks);
    /* a range of less than two decades gets 2 and 5 times the powers as well */
    return n >= 3 ? n : decade_multiples(lo, hi, one_two_five, 3, ticks);
}

void pl_format_tick(double v, double step, char *out, int out_len) {
    double a = fabs(v);
    if (a >= 1e6 && fmod(a, 1e6) == 0)
        snprintf(out, out_len, "%.0fM", v / 1e6);
    else if (a >= 1e4 && fmod(a, 1e3) == 0)
        snprintf(out, out_len, "%.0fk", v / 1e3);
    else if (a >= 1e5 || (a > 0 && a < 1e-3))
        snprintf(out, out_len, "%.0e", v);
    else {
        /* decimals enough to resolve the step (and the value itself when it is finer) */
        double s = step > 0 ? step : (a > 0 ? a : 1);
        int dec = (int)ceil(-log10(s) - 1e-9);
        if (dec < 0) dec = 0;
        if (dec > 6) dec = 6;
        snprintf(out, out_len, "%.*f", dec, v);
    }
}

/* ---------------------------------------------------------------- axes */

#define TICK_SCALE 2   /* tick labels and legends */
#define TITLE_SCALE 2
#define ZERO_GAP_PX 44 /* width of the x <= 0 strip of a log axis with zero_gap */

void pl_axes_init(PlAxes *a, PlCanvas *cv, int x0, int y0, int x1, int y1, int right_margin) {
    memset(a, 0, sizeof *a);
    a->cv = cv;
    a->left = x0 + 84;   /* y axis label + tick labels */
    a->top = y0 + 36;    /* title */
    a->right = x1 - 16 - right_margin;
    a->bottom = y1 - 58; /* tick labels + x axis label */
    a->xmin = a->ymin = 0;
    a->xmax = a->ymax = 1;
    a->grid = 1;
}

void pl_axes_range(PlAxes *a, double xmin, double xmax, double ymin, double ymax, int xlog, int ylog) {
    /* a degenerate range (one point, or a constant series) is widened so it still has a scale */
    if (!(xmax > xmin)) {
        double d = xlog ? xmin : (fabs(xmin) > 0 ? 0.5 * fabs(xmin) : 1);
        xmin -= xlog ? 0.5 * d : d;
        xmax += d;
    }
    if (!(ymax > ymin)) {
        double d = fabs(ymin) > 0 ? 0.1 * fabs(ymin) : 1;
        ymin -= ylog ? 0.5 * ymin : d;
        ymax += ylog ? ymax : d;
    }
    a->xmin = xmin;
    a->xmax = xmax;
    a->ymin = ymin;
    a->ymax = ymax;
    a->xlog = xlog;
    a->ylog = ylog;
}

void pl_axes_xtick(PlAxes *a, double pos, const char *label) {
    if (a->n_xt >= PL_MAX_TICKS) return;
    a->xt[a->n_xt] = pos;
    snprintf(a->xtl[a->n_xt++], sizeof a->xtl[0], "%s", label);
}

void pl_axes_ytick(PlAxes *a, double pos, const char *label) {
    if (a->n_yt >= PL_MAX_TICKS) return;
    a->yt[a->n_yt] = pos;
    snprintf(a->ytl[a->n_yt++], sizeof a->ytl[0], "%s", label);
}

/* position of v in [0, 1] along an axis range, linear or log10 */
static double axis_fraction(double v, double lo, double hi, int log_axis) {
    if (log_axis) return (log10(v) - log10(lo)) / (log10(hi) - log10(lo));
    return (v - lo) / (hi - lo);
}

double pl_x(const PlAxes *a, double v) {
    if (isnan(v)) return NAN;
    if (a->xlog && v <= 0) return a->zero_gap ? a->left + 0.4 * ZERO_GAP_PX : NAN;
    double lo = a->left + (a->xlog && a->zero_gap ? ZERO_GAP_PX : 0);
    return lo + axis_fraction(v, a->xmin, a->xmax, a->xlog) * (a->right - lo);
}

double pl_y(const PlAxes *a, double v) {
    if (isnan(v) || (a->ylog && v <= 0)) return NAN;
    return a->bottom - axis_fraction(v, a->ymin, a->ymax, a->ylog) * (a->bottom - a->top);
}

/* the automatic ticks of one axis (positions and labels) when no custom ones were set */
static int auto_ticks(double lo, double hi, int log_axis, int max_n, double *t, char lab[][24]) {
    int n = log_axis ? pl_log_ticks(lo, hi, t) : pl_nice_ticks(lo, hi, max_n, t);
    double step = n > 1 ? t[1] - t[0] : 0;
    for (int i = 0; i < n; i++) pl_format_tick(t[i], log_axis ? t[i] : step, lab[i], 24);
    return n;
}

/* short unlabelled marks at 2..9 x 10^k on a log x axis */
static void draw_log_minor_ticks(PlAxes *a) {
    for (int e = (int)floor(log10(a->xmin)); e <= (int)ceil(log10(a->xmax)); e++)
        for (int m = 2; m <= 9; m++) {
            double v = m * pow(10, e);
            if (v < a->xmin || v > a->xmax) continue;
            int ix = (int)floor(pl_x(a, v));
            pl_fill_rect(a->cv, ix, a->bottom, ix + 1, a->bottom + 3, PL_BLACK);
        }
}

/* the ticks of one axis: the ones set by the caller (n_set > 0), else round ones, at most max_n */
static int axis_ticks(const double *set_t, char set_lab[][24], int n_set, double lo, double hi, int log_axis,
                      int max_n, double *t, char lab[][24]) {
    if (n_set == 0) return auto_ticks(lo, hi, log_axis, max_n, t, lab);
    memcpy(t, set_t, sizeof(double) * (size_t)n_set);
    memcpy(lab, set_lab, sizeof(lab[0]) * (size_t)n_set);
    return n_set;
}

static void draw_x_ticks(PlAxes *a) {
    PlCanvas *c = a->cv;
    double t[PL_MAX_TICKS];
    char lab[PL_MAX_TICKS][24];
    int first = a->n_xt == 0 && a->xlog && a->zero_gap; /* step 0 gets the first label of a broken log axis */
    if (first) {
        t[0] = 0;
        snprintf(lab[0], 24, "0");
    }
    int n = first + axis_ticks(a->xt, a->xtl, a->n_xt, a->xmin, a->xmax, a->xlog, (a->right - a->left) / 90 + 2,
                               t + first, lab + first);
    if (a->xlog) draw_log_minor_ticks(a);
    double last_end = -1e9; /* right edge of the last label drawn: a label that would touch it is skipped */
    for (int i = 0; i < n; i++) {
        double px = pl_x(a, t[i]);
        if (isnan(px) || px < a->left - 0.5 || px > a->right + 0.5) continue;
        int ix = (int)floor(px);
        if (a->grid) pl_fill_rect(c, ix, a->top, ix + 1, a->bottom, PL_LIGHT);
        pl_fill_rect(c, ix, a->bottom, ix + 1, a->bottom + 6, PL_BLACK);
        int w = pl_text_width(lab[i], TICK_SCALE);
        if (ix - w / 2.0 < last_end + 8) continue;
        pl_text(c, ix + 0.5, a->bottom + 10, lab[i], TICK_SCALE, PL_CENTER, PL_BLACK);
        last_end = ix + w / 2.0;
    }
    if (a->xlog && a->zero_gap) { /* the axis break between the step-0 strip and the log axis */
        double bx = a->left + ZERO_GAP_PX * 0.8;
        pl_fill_rect(c, bx - 3, a->bottom - 8, bx + 3, a->bottom + 8, PL_WHITE);
        pl_line(c, bx - 6, a->bottom + 6, bx - 1, a->bottom - 6, 1.5, PL_BLACK);
        pl_line(c, bx + 1, a->bottom + 6, bx + 6, a->bottom - 6, 1.5, PL_BLACK);
    }
}

static void draw_y_ticks(PlAxes *a) {
    PlCanvas *c = a->cv;
    double t[PL_MAX_TICKS];
    char lab[PL_MAX_TICKS][24];
    int n = axis_ticks(a->yt, a->ytl, a->n_yt, a->ymin, a->ymax, a->ylog, (a->bottom - a->top) / 45 + 2, t, lab);
    for (int i = 0; i < n; i++) {
        double py = pl_y(a, t[i]);
        if (isnan(py) || py < a->top - 0.5 || py > a->bottom + 0.5) continue;
        int iy = (int)floor(py);
        if (a->grid) pl_fill_rect(c, a->left, iy, a->right, iy + 1, PL_LIGHT);
        pl_fill_rect(c, a->left - 6, iy, a->left, iy + 1, PL_BLACK);
        pl_text(c, a->left - 10, iy + 0.5 - 3.5 * TICK_SCALE, lab[i], TICK_SCALE, PL_RIGHT, PL_BLACK);
    }
}

void pl_axes_draw(PlAxes *a, const char *title, const char *xlabel, const char *ylabel) {
    PlCanvas *c = a->cv;
    draw_x_ticks(a);
    draw_y_ticks(a);
    /* the frame: 1-px lines just outside the plot area */
    pl_fill_rect(c, a->left - 1, a->top - 1, a->right + 1, a->top, PL_BLACK);
    pl_fill_rect(c, a->left - 1, a->bottom, a->right + 1, a->bottom + 1, PL_BLACK);
    pl_fill_rect(c, a->left - 1, a->top - 1, a->left, a->bottom + 1, PL_BLACK);
    pl_fill_rect(c, a->right, a->top - 1, a->right + 1, a->bottom + 1, PL_BLACK);
    double cx = (a->left + a->right) / 2.0;
    if (title) pl_text(c, cx, a->top - 28, title, TITLE_SCALE, PL_CENTER, PL_BLACK);
    if (xlabel) pl_text(c, cx, a->bottom + 36, xlabel, TICK_SCALE, PL_CENTER, PL_BLACK);
    if (ylabel) pl_text_up(c, a->left - 78, (a->top + a->bottom) / 2.0, ylabel, TICK_SCALE, PL_BLACK);
}

void pl_series(PlAxes *a, const double *x, const double *y, int n, PlColor col, double width,
               double marker_r) {
    double px_prev = NAN, py_prev = NAN;
    for (int i = 0; i < n; i++) {
        double px = pl_x(a, x[i]), py = pl_y(a, y[i]);
        if (isnan(px) || isnan(py)) {
            px_prev = py_prev = NAN;
            continue;
        }
        if (!isnan(px_prev)) pl_line(a->cv, px_prev, py_prev, px, py, width, col);
        if (marker_r > 0) pl_disc(a->cv, px, py, marker_r, col);
        px_prev = px;
        py_prev = py;
    }
}

void pl_hline(PlAxes *a, double y, PlColor col, int dashed) {
    double py = pl_y(a, y);
    if (isnan(py) || py < a->top || py > a->bottom) return;
    for (double x = a->left; x < a->right; x += dashed ? 12 : a->right - a->left) {
        double x1 = dashed ? x + 7 : a->right;
        pl_line(a->cv, x, py, x1 < a->right ? x1 : a->right, py, 1.5, col);
    }
}

void pl_legend(PlCanvas *c, int x, int y, const char *const *names, const PlColor *cols, int n) {
    int w = 0, row = 22;
    for (int i = 0; i < n; i++) {
        int tw = pl_text_width(names[i], TICK_SCALE);
        if (tw > w) w = tw;
    }
    int bw = w + 48, bh = n * row + 8;
    pl_fill_rect(c, x, y, x + bw, y + bh, PL_WHITE);
    pl_fill_rect(c, x, y, x + bw, y + 1, PL_GREY);
    pl_fill_rect(c, x, y + bh - 1, x + bw, y + bh, PL_GREY);
    pl_fill_rect(c, x, y, x + 1, y + bh, PL_GREY);
    pl_fill_rect(c, x + bw - 1, y, x + bw, y + bh, PL_GREY);
    for (int i = 0; i < n; i++) {
        double cy = y + 4 + i * row + row / 2.0;
        pl_line(c, x + 8, cy, x + 34, cy, 2.5, cols[i]);
        pl_text(c, x + 42, cy - 3.5 * TICK_SCALE, names[i], TICK_SCALE, PL_LEFT, PL_BLACK);
    }
}

void pl_legend_right(PlAxes *a, const char *const *names, const PlColor *cols, int n) {
    pl_legend(a->cv, a->right + 14, a->top, names, cols, n);
}

/* ---------------------------------------------------------------- heat maps */

double pl_colormap_t(double v, double vmin, double vmax, int log_scale) {
    if (log_scale) {
        v = v > 0 ? log10(v) : -INFINITY;
        vmin = log10(vmin);
        vmax = log10(vmax);
    }
    return vmax > vmin ? (v - vmin) / (vmax - vmin) : 0.5;
}

void pl_heatmap(PlAxes *a, const double *v, int ny, int nx, double vmin, double vmax, int log_scale,
                int top_down) {
    pl_axes_range(a, 0, nx, 0, ny, 0, 0);
    a->grid = 0; /* grid lines would cut through the cells */
    for (int i = 0; i < ny; i++)
        for (int j = 0; j < nx; j++) {
            double val = v[(size_t)i * nx + j];
            int row = top_down ? ny - 1 - i : i;
            PlColor col = isnan(val) ? PL_LIGHT : pl_colormap(pl_colormap_t(val, vmin, vmax, log_scale));
            /* cell edges snapped to whole pixels so neighbouring cells neither overlap nor gap */
            pl_fill_rect(a->cv, round(pl_x(a, j)), round(pl_y(a, row + 1)), round(pl_x(a, j + 1)),
                         round(pl_y(a, row)), col);
        }
}

void pl_colorbar(PlAxes *a, double vmin, double vmax, int log_scale, const char *label) {
    PlCanvas *c = a->cv;
    int x0 = a->right + 16, x1 = x0 + 20, top = a->top, bottom = a->bottom;
    for (int y = top; y < bottom; y++) {
        double t = (bottom - 0.5 - y) / (bottom - top); /* 0 at the bottom, 1 at the top */
        pl_fill_rect(c, x0, y, x1, y + 1, pl_colormap(t));
    }
    pl_fill_rect(c, x0 - 1, top - 1, x1 + 1, top, PL_BLACK);
    pl_fill_rect(c, x0 - 1, bottom, x1 + 1, bottom + 1, PL_BLACK);
    pl_fill_rect(c, x0 - 1, top, x0, bottom, PL_BLACK);
    pl_fill_rect(c, x1, top, x1 + 1, bottom, PL_BLACK);
    double t[PL_MAX_TICKS];
    char lab[PL_MAX_TICKS][24];
    int n = auto_ticks(vmin, vmax, log_scale, (bottom - top) / 40 + 2, t, lab);
    int widest = 0;
    for (int i = 0; i < n; i++) {
        double f = pl_colormap_t(t[i], vmin, vmax, log_scale);
        int iy = (int)floor(bottom - f * (bottom - top)), w = pl_text_width(lab[i], TICK_SCALE);
        pl_fill_rect(c, x1, iy, x1 + 5, iy + 1, PL_BLACK);
        pl_text(c, x1 + 8, iy + 0.5 - 3.5 * TICK_SCALE, lab[i], TICK_SCALE, PL_LEFT, PL_BLACK);
        if (w > widest) widest = w;
    }
    if (label) pl_text_up(c, x1 + 20 + widest, (top + bottom) / 2.0, label, TICK_SCALE, PL_BLACK);
}
