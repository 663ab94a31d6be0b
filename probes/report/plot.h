/* probes/report/plot.h: a tiny plotting library for the run's figures. A canvas of RGB pixels with
 * anti-aliased lines and markers, filled rectangles and text (stb_easy_font's segment font, scaled),
 * axes with round-number ticks (linear or log x), legends, a viridis-like colour map with a colour bar,
 * heat maps, and PNG output (stb_image_write) through a crash-safe write.
 *
 * Coordinates: pixel (i, j) covers [i, i+1) x [j, j+1), y grows downwards. Axes map data values to
 * continuous pixel coordinates; a data point (x, y) lands in pixel (floor(pl_x(x)), floor(pl_y(y))). */
#ifndef SINKTRACE_PLOT_H
#define SINKTRACE_PLOT_H

#include <stdint.h>

typedef struct {
    uint8_t r, g, b;
} PlColor;

typedef struct {
    int w, h;
    uint8_t *rgb; /* [h][w][3] */
} PlCanvas;

#define PL_BLACK ((PlColor){0, 0, 0})
#define PL_WHITE ((PlColor){255, 255, 255})
#define PL_GREY ((PlColor){128, 128, 128})
#define PL_LIGHT ((PlColor){225, 225, 225})

/* the i-th colour of a qualitative palette for lines (cycles after 10) */
PlColor pl_palette(int i);
/* viridis-like perceptual map: dark purple (t = 0) -> blue -> green -> yellow (t = 1); t is clamped */
PlColor pl_colormap(double t);

void pl_canvas_init(PlCanvas *c, int w, int h); /* all white */
void pl_canvas_free(PlCanvas *c);
/* mixes col into pixel (x, y) with weight alpha in [0, 1]; outside the canvas it does nothing */
void pl_blend(PlCanvas *c, int x, int y, PlColor col, double alpha);
/* fills every pixel whose centre lies in [x0, x1) x [y0, y1) */
void pl_fill_rect(PlCanvas *c, double x0, double y0, double x1, double y1, PlColor col);
/* anti-aliased line of the given width with round ends */
void pl_line(PlCanvas *c, double x0, double y0, double x1, double y1, double width, PlColor col);
void pl_disc(PlCanvas *c, double x, double y, double radius, PlColor col); /* anti-aliased marker */
/* writes the canvas as a PNG through StAtomic (old file kept on failure); 0 or -1 with err */
int pl_save_png(const PlCanvas *c, const char *path, char *err);

/* Text: stb_easy_font glyphs scaled by an integer factor (2 = the normal label size, cap height 14
 * px). (x, y) is the top-left of the text box. Characters outside printable ASCII draw as '?'. */
enum { PL_LEFT, PL_CENTER, PL_RIGHT };
int pl_text_width(const char *s, int scale);
void pl_text(PlCanvas *c, double x, double y, const char *s, int scale, int align, PlColor col);
/* text turned 90 degrees anticlockwise (reads upwards), centred vertically on y, left edge at x */
void pl_text_up(PlCanvas *c, double x, double y, const char *s, int scale, PlColor col);

/* Round-number ticks. pl_nice_ticks: multiples of 1, 2 or 5 x 10^k inside [lo, hi], at most max_n.
 * pl_log_ticks: the powers of ten inside [lo, hi] (lo > 0), and 2 and 5 times them too when fewer
 * than three powers fall inside. Both return the count written. */
#define PL_MAX_TICKS 64
int pl_nice_ticks(double lo, double hi, int max_n, double *ticks);
int pl_log_ticks(double lo, double hi, double *ticks);
/* a tick label: integers without decimals (10000 as "10k", 1e6 as "1M"), others with enough decimals
 * to tell ticks `step` apart */
void pl_format_tick(double v, double step, char *out, int out_len);

/* Axes: a plot area inside a canvas with a data range. Build with pl_axes_init (the panel's pixel
 * rectangle; margins for labels are left inside it), set the range, optionally replace the ticks by
 * labelled ones, then pl_axes_draw and draw data. A log x axis with zero_gap set puts x <= 0 (step 0)
 * in a separate strip at its left, marked by a break, so runs can show step 0 on a log axis. */
typedef struct {
    PlCanvas *cv;
    int left, top, right, bottom; /* the plot area */
    double xmin, xmax, ymin, ymax;
    int xlog, ylog, zero_gap;
    int grid; /* light grid lines at the ticks (on by default) */
    int n_xt, n_yt; /* custom ticks, when > 0 */
    double xt[PL_MAX_TICKS], yt[PL_MAX_TICKS];
    char xtl[PL_MAX_TICKS][24], ytl[PL_MAX_TICKS][24];
} PlAxes;

/* margins (pixels) left inside the panel for the title, tick labels, axis labels and a legend or a
 * colour bar on the right */
void pl_axes_init(PlAxes *a, PlCanvas *cv, int x0, int y0, int x1, int y1, int right_margin);
void pl_axes_range(PlAxes *a, double xmin, double xmax, double ymin, double ymax, int xlog, int ylog);
void pl_axes_xtick(PlAxes *a, double pos, const char *label);
void pl_axes_ytick(PlAxes *a, double pos, const char *label);
double pl_x(const PlAxes *a, double v);
double pl_y(const PlAxes *a, double v);
/* frame, grid, ticks, tick labels, the title above and the axis labels (any may be NULL) */
void pl_axes_draw(PlAxes *a, const char *title, const char *xlabel, const char *ylabel);
/* a polyline through (x[i], y[i]); a NaN (or x <= 0 on a log axis without zero_gap) breaks it;
 * marker_r > 0 also draws a disc at every point */
void pl_series(PlAxes *a, const double *x, const double *y, int n, PlColor col, double width,
               double marker_r);
void pl_hline(PlAxes *a, double y, PlColor col, int dashed);
/* a legend box with a line sample per entry, top-left corner at (x, y) in pixels */
void pl_legend(PlCanvas *c, int x, int y, const char *const *names, const PlColor *cols, int n);
/* a legend in the right margin of the axes, top aligned with the plot area */
void pl_legend_right(PlAxes *a, const char *const *names, const PlColor *cols, int n);

/* Heat map: v is [ny][nx] row-major; cell (i, j) covers x in [j, j+1) and y in [i, i+1) of axes whose
 * range is [0, nx] x [0, ny] (set by this call, which also turns the grid off: call pl_axes_draw after
 * it; row 0 at the bottom unless top_down). Colours map
 * (v - vmin) / (vmax - vmin) (or the same on log10 values when log_scale); NaN cells are light grey. */
void pl_heatmap(PlAxes *a, const double *v, int ny, int nx, double vmin, double vmax, int log_scale,
                int top_down);
double pl_colormap_t(double v, double vmin, double vmax, int log_scale);
/* the colour bar for pl_heatmap's scale, in the right margin of the axes */
void pl_colorbar(PlAxes *a, double vmin, double vmax, int log_scale, const char *label);

#endif
