/* tests/test_plot.c: the plotting module, checked on the decoded PNG pixels (stb_image). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <stb_image.h>

#include "../common/util.h"
#include "../probes/report/plot.h"
#include "fixtures.h"

static char dir[64];

/* saves the canvas, decodes it back, and returns the RGB pixels (caller frees) */
static uint8_t *round_trip(const PlCanvas *c, const char *name) {
    char path[256], err[ST_ERR_LEN];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    assert_int_equal(pl_save_png(c, path, err), 0);
    int w, h, n;
    uint8_t *px = stbi_load(path, &w, &h, &n, 3);
    assert_non_null(px);
    assert_int_equal(w, c->w);
    assert_int_equal(h, c->h);
    return px;
}

static PlColor pixel(const uint8_t *px, int w, int x, int y) {
    const uint8_t *p = px + ((size_t)y * w + x) * 3;
    return (PlColor){p[0], p[1], p[2]};
}

static int near_color(PlColor a, PlColor b, int tol) {
    return abs(a.r - b.r) <= tol && abs(a.g - b.g) <= tol && abs(a.b - b.b) <= tol;
}

/* a pixel mostly covered by ink of colour col on white: every channel past the halfway mark */
static int inked_with(PlColor p, PlColor col) {
    return abs(p.r - col.r) * 2 < 255 - col.r + 1 && abs(p.g - col.g) * 2 < 255 - col.g + 1 &&
           abs(p.b - col.b) * 2 < 255 - col.b + 1;
}

static void test_line_passes_through_its_data_pixels(void **state) {
    (void)state;
    PlCanvas c;
    pl_canvas_init(&c, 600, 400);
    PlAxes a;
    pl_axes_init(&a, &c, 0, 0, 600, 400, 0);
    pl_axes_range(&a, 0, 10, -1, 1, 0, 0);
    pl_axes_draw(&a, "a sine", "x", "y");
    double x[11], y[11];
    for (int i = 0; i <= 10; i++) {
        x[i] = i;
        y[i] = sin(i * 0.7);
    }
    PlColor red = {220, 20, 30};
    pl_series(&a, x, y, 11, red, 2, 0);
    uint8_t *px = round_trip(&c, "line.png");
    for (int i = 0; i <= 10; i++) {
        /* every data point, and the midpoint of each segment, is painted in the line's colour */
        int ix = (int)floor(pl_x(&a, x[i])), iy = (int)floor(pl_y(&a, y[i]));
        assert_true(inked_with(pixel(px, c.w, ix, iy), red));
        if (i < 10) {
            double mx = (pl_x(&a, x[i]) + pl_x(&a, x[i + 1])) / 2, my = (pl_y(&a, y[i]) + pl_y(&a, y[i + 1])) / 2;
            assert_true(inked_with(pixel(px, c.w, (int)floor(mx), (int)floor(my)), red));
        }
    }
    /* and a point of the plot area far from the curve stays white: y = 0.95 at x = 3 (sin(2.1) = 0.86
     * and sin(2.8) = 0.33 around it, at least 15 px below) */
    assert_true(near_color(pixel(px, c.w, (int)pl_x(&a, 3.5), (int)pl_y(&a, -0.95)), PL_WHITE, 0));
    free(px);
    pl_canvas_free(&c);
}

static void test_nan_breaks_the_line(void **state) {
    (void)state;
    PlCanvas c;
    pl_canvas_init(&c, 400, 300);
    PlAxes a;
    pl_axes_init(&a, &c, 0, 0, 400, 300, 0);
    pl_axes_range(&a, 0, 4, 0, 1, 0, 0);
    double x[5] = {0, 1, 2, 3, 4}, y[5] = {0.5, 0.5, NAN, 0.5, 0.5};
    pl_series(&a, x, y, 5, PL_BLACK, 2, 0);
    int py = (int)floor(pl_y(&a, 0.5));
    assert_true(inked_with(pixel(c.rgb, c.w, (int)pl_x(&a, 0.5), py), PL_BLACK));
    assert_true(near_color(pixel(c.rgb, c.w, (int)pl_x(&a, 2), py), PL_WHITE, 0)); /* the gap */
    pl_canvas_free(&c);
}

static void test_text_ink_stays_inside_its_box(void **state) {
    (void)state;
    PlCanvas c;
    pl_canvas_init(&c, 300, 100);
    const char *s = "Hg 0.5 [|] H";
    /* stb_easy_font's ink spans rows [0, 9) of a line in font units, descenders included */
    int x = 40, y = 30, w = pl_text_width(s, 2), h = 9 * 2;
    pl_text(&c, x, y, s, 2, PL_LEFT, PL_BLACK);
    uint8_t *px = round_trip(&c, "text.png");
    int inside = 0, outside = 0;
    for (int j = 0; j < c.h; j++)
        for (int i = 0; i < c.w; i++) {
            int ink = !near_color(pixel(px, c.w, i, j), PL_WHITE, 0);
            int in_box = i >= x && i < x + w && j >= y && j < y + h;
            inside += ink && in_box;
            outside += ink && !in_box;
        }
    assert_int_equal(outside, 0);
    assert_true(inside > 100); /* ten glyphs of 2x2-pixel strokes */
    /* the box is tight: ink touches its first and last columns */
    int first_col = 0, last_col = 0;
    for (int j = y; j < y + h; j++) {
        first_col |= !near_color(pixel(px, c.w, x, j), PL_WHITE, 0);
        last_col |= !near_color(pixel(px, c.w, x + w - 1, j), PL_WHITE, 0);
    }
    assert_true(first_col && last_col);
    free(px);
    pl_canvas_free(&c);
}

static void test_heatmap_cell_has_colormap_colour(void **state) {
    (void)state;
    PlCanvas c;
    pl_canvas_init(&c, 500, 300);
    PlAxes a;
    pl_axes_init(&a, &c, 0, 0, 500, 300, 90);
    enum { NY = 3, NX = 5 };
    double v[NY * NX];
    for (int i = 0; i < NY * NX; i++) v[i] = 0.1 + 0.05 * i * i;
    v[7] = NAN;
    pl_heatmap(&a, v, NY, NX, 0.1, 10, 1, 0);
    pl_axes_draw(&a, "cells", NULL, NULL);
    pl_colorbar(&a, 0.1, 10, 1, "value");
    uint8_t *px = round_trip(&c, "heat.png");
    for (int i = 0; i < NY; i++)
        for (int j = 0; j < NX; j++) {
            PlColor got = pixel(px, c.w, (int)pl_x(&a, j + 0.5), (int)pl_y(&a, i + 0.5));
            double val = v[i * NX + j];
            PlColor want = isnan(val) ? PL_LIGHT : pl_colormap(pl_colormap_t(val, 0.1, 10, 1));
            assert_true(near_color(got, want, 0));
        }
    /* log scale: 1 sits halfway between 0.1 and 10 */
    assert_true(fabs(pl_colormap_t(1, 0.1, 10, 1) - 0.5) < 1e-12);
    free(px);
    pl_canvas_free(&c);
}

static void test_colormap_is_viridis_like(void **state) {
    (void)state;
    /* the ends match viridis (#440154 and #FDE725) and lightness (Rec. 709 luma) rises monotonically */
    assert_true(near_color(pl_colormap(0), (PlColor){0x44, 0x01, 0x54}, 4));
    assert_true(near_color(pl_colormap(1), (PlColor){0xFD, 0xE7, 0x25}, 4));
    double prev = -1;
    for (int i = 0; i <= 100; i++) {
        PlColor c = pl_colormap(i / 100.0);
        double luma = 0.2126 * c.r + 0.7152 * c.g + 0.0722 * c.b;
        assert_true(luma > prev);
        prev = luma;
    }
}

static void test_log_axis_ticks_at_powers_of_ten(void **state) {
    (void)state;
    double t[PL_MAX_TICKS];
    int n = pl_log_ticks(3, 20000, t);
    assert_int_equal(n, 4);
    for (int i = 0; i < n; i++) assert_true(fabs(t[i] - pow(10, i + 1)) < 1e-9);
    PlCanvas c;
    pl_canvas_init(&c, 600, 300);
    PlAxes a;
    pl_axes_init(&a, &c, 0, 0, 600, 300, 0);
    pl_axes_range(&a, 3, 20000, 0, 1, 1, 0);
    pl_axes_draw(&a, NULL, "step", NULL);
    uint8_t *px = round_trip(&c, "logx.png");
    /* decades are equally spaced, and a major tick mark hangs below the axis at each power of ten */
    double d1 = pl_x(&a, 100) - pl_x(&a, 10), d2 = pl_x(&a, 1000) - pl_x(&a, 100);
    assert_true(fabs(d1 - d2) < 1e-9);
    for (int i = 0; i < n; i++) {
        int ix = (int)floor(pl_x(&a, t[i]));
        assert_true(near_color(pixel(px, c.w, ix, a.bottom + 5), PL_BLACK, 0));
        assert_true(near_color(pixel(px, c.w, ix + 3, a.bottom + 5), PL_WHITE, 0));
    }
    /* with zero_gap, step 0 lands left of the log axis's start */
    a.zero_gap = 1;
    assert_true(pl_x(&a, 0) < pl_x(&a, 3) && pl_x(&a, 0) >= a.left);
    free(px);
    pl_canvas_free(&c);
}

static void test_nice_ticks_are_round(void **state) {
    (void)state;
    double t[PL_MAX_TICKS];
    int n = pl_nice_ticks(0, 5.3, 7, t);
    assert_int_equal(n, 6);
    for (int i = 0; i < n; i++) assert_true(fabs(t[i] - i) < 1e-12);
    n = pl_nice_ticks(0.013, 0.087, 5, t);
    assert_int_equal(n, 4);
    assert_true(fabs(t[0] - 0.02) < 1e-12 && fabs(t[3] - 0.08) < 1e-12);
    n = pl_nice_ticks(-37, 112, 8, t);
    assert_true(n <= 8 && fabs(t[1] - t[0] - 20) < 1e-9 && fabs(t[0] + 20) < 1e-9);
    char s[24];
    pl_format_tick(0.04, 0.02, s, sizeof s);
    assert_string_equal(s, "0.04");
    pl_format_tick(20000, 10000, s, sizeof s);
    assert_string_equal(s, "20k");
    pl_format_tick(1500, 500, s, sizeof s);
    assert_string_equal(s, "1500");
    pl_format_tick(2.5, 0.5, s, sizeof s);
    assert_string_equal(s, "2.5");
}

static void test_save_failure_names_the_path(void **state) {
    (void)state;
    char err[ST_ERR_LEN], path[256];
    PlCanvas c;
    pl_canvas_init(&c, 10, 10);
    snprintf(path, sizeof path, "%s/no_such_dir/x.png", dir);
    assert_int_equal(pl_save_png(&c, path, err), -1);
    assert_non_null(strstr(err, "no_such_dir/x.png"));
    pl_canvas_free(&c);
}

static int setup(void **state) {
    (void)state;
    return fixture_make_tmpdir(dir, sizeof dir, "test_plot");
}

static int teardown(void **state) {
    (void)state;
    return fixture_remove_dir(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_line_passes_through_its_data_pixels),
        cmocka_unit_test(test_nan_breaks_the_line),
        cmocka_unit_test(test_text_ink_stays_inside_its_box),
        cmocka_unit_test(test_heatmap_cell_has_colormap_colour),
        cmocka_unit_test(test_colormap_is_viridis_like),
        cmocka_unit_test(test_log_axis_ticks_at_powers_of_ten),
        cmocka_unit_test(test_nice_ticks_are_round),
        cmocka_unit_test(test_save_failure_names_the_path),
    };
    return cmocka_run_group_tests_name("plot", tests, setup, teardown);
}
