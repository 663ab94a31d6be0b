/* tests/test_viewer.c: report.html in a real browser. A tiny run trained with BOS is reported, and a
 * headless Chromium (driven over the DevTools protocol, tests/cdp.h) loads report.html from disk: the
 * viewer must show, move the slider through every probe step, change the shown step, numbers and
 * attention map with it and with the layer, and leave no console error; a screenshot is kept at
 * build/test_viewer.png. Then compare.html of the run beside itself: the slider over all runs moves
 * both panels. Skipped, with a note, only when chromium is not installed (CI installs it). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/util.h"
#include "../probes/report/report.h"
#include "cdp.h"
#include "fixtures.h"

static char dir[64];

static int setup(void **state) {
    (void)state;
    return fixture_make_tmpdir(dir, sizeof dir, "test_viewer");
}

static int teardown(void **state) {
    (void)state;
    return fixture_remove_dir(dir);
}

/* what the viewer shows of run 0: [step label, numbers table, attention map as a PNG data URL] */
static const char *shown =
    "JSON.stringify([document.getElementById('step-0').textContent, "
    "document.getElementById('numbers-0').textContent, document.getElementById('attn-0').toDataURL()])";

static void eval_ok(Cdp *c, const char *js, char *out, size_t size) {
    char err[ST_ERR_LEN];
    if (cdp_eval(c, js, out, size, err)) fail_msg("%s", err);
}

/* the chromium to run, or the test is skipped with a note */
static const char *chromium_or_skip(void) {
    const char *chromium = cdp_find_chromium();
    if (!chromium) {
        printf("note: test_viewer skipped: chromium is not installed (apt-get install --no-install-recommends "
               "chromium; CI installs it)\n");
        skip();
    }
    return chromium;
}

/* the tiny run, trained with BOS and reported once: its directory */
static const char *reported_run(void) {
    static char run[128];
    char data[128], err[ST_ERR_LEN];
    if (run[0]) return run;
    snprintf(data, sizeof data, "%s/data", dir);
    static const char *const kv[][2] = {{"bos", "doc"}, {"probe_every", "5"}};
    assert_int_equal(fixture_tiny_data(data), 0);
    assert_int_equal(fixture_tiny_run(data, dir, "run", kv, 2, 20), 0);
    snprintf(run, sizeof run, "%s/run", dir);
    if (report_run(run, err)) fail_msg("%s", err);
    return run;
}

/* opens file://path in a new chromium; fails the test when it cannot */
static void open_page(Cdp *c, const char *chromium, const char *path) {
    char page[300], err[ST_ERR_LEN];
    snprintf(page, sizeof page, "file://%s", path);
    if (cdp_launch(c, chromium, 1280, 1000, err) || cdp_open(c, page, err)) {
        cdp_close(c);
        fail_msg("%s", err);
    }
}

/* closes chromium and fails the test if the page logged an error */
static void close_page(Cdp *c) {
    int errors = c->console_errors;
    char first[512];
    snprintf(first, sizeof first, "%s", c->first_error);
    cdp_close(c);
    if (errors) fail_msg("%d console error(s), the first: %s", errors, first);
}

static void test_viewer_scrubs_through_the_steps(void **state) {
    (void)state;
    const char *chromium = chromium_or_skip();
    double t0 = st_now_seconds();
    const char *run = reported_run();
    char path[256], err[ST_ERR_LEN];
    char story[160], png[8];
    snprintf(story, sizeof story, "%s/story.png", run); /* the slide, drawn from attention.bin too */
    assert_true(fixture_read_text(story, png, sizeof png) >= 4 && !memcmp(png + 1, "PNG", 3));

    Cdp c;
    snprintf(path, sizeof path, "%s/report.html", run);
    open_page(&c, chromium, path);
    static char before[1 << 16], after[1 << 16], out[1 << 16];
    eval_ok(&c, "String(document.getElementById('viewer').hidden) + ' ' + document.querySelector('#report h1').textContent",
            out, sizeof out);
    assert_string_equal(out, "false Run report: run"); /* the viewer is on, the static report below it */
    eval_ok(&c, shown, before, sizeof before);
    assert_non_null(strstr(before, "step 20 ("));      /* it opens on the last probe step */

    /* every slider position shows its own step */
    eval_ok(&c, "(() => { const s = document.getElementById('slider-0'), seen = new Set();"
                " for (let k = 0; k <= Number(s.max); k++) { s.value = k; s.dispatchEvent(new Event('input'));"
                " seen.add(document.getElementById('step-0').textContent); }"
                " return seen.size + ' of ' + (Number(s.max) + 1); })()",
            out, sizeof out);
    char *of = strstr(out, " of ");
    assert_non_null(of);
    assert_true(atoi(out) >= 5 && atoi(out) == atoi(of + 4));

    eval_ok(&c, "(() => { const s = document.getElementById('slider-0'); s.value = 0;"
                " s.dispatchEvent(new Event('input')); return s.value; })()",
            out, sizeof out);
    eval_ok(&c, shown, after, sizeof after);
    assert_non_null(strstr(after, "[\"step 0 (1 of "));
    /* the numbers and the map are the step's own */
    char *b_num = strchr(before + 2, '"'), *a_num = strchr(after + 2, '"');
    assert_true(b_num && a_num && strcmp(b_num, a_num) != 0);
    const char *b_map = strstr(before, "data:image/png"), *a_map = strstr(after, "data:image/png");
    assert_true(b_map && a_map && strcmp(b_map, a_map) != 0);
    assert_non_null(strstr(after, "attention on P0, layer 2 (x chance)"));

    /* another layer, another map */
    eval_ok(&c, "(() => { const l = document.getElementById('layer-0'); l.value = 2;"
                " l.dispatchEvent(new Event('change')); return document.getElementById('attn-0').toDataURL(); })()",
            out, sizeof out);
    assert_true(strcmp(out, a_map) != 0 && strncmp(out, a_map, strlen(out)) != 0);

    const char *shot = "build/test_viewer.png"; /* tests run from the repository's root */
    if (cdp_screenshot(&c, shot, err)) fail_msg("%s", err);
    close_page(&c);
    assert_true(fixture_read_text(shot, png, sizeof png) >= 4 && !memcmp(png + 1, "PNG", 3));
    printf("note: test_viewer: chromium scrubbed report.html in %.1f s; screenshot %s\n", st_now_seconds() - t0, shot);
}

/* compare.html: a panel per run, and the slider over all runs moves each of them */
static void test_compare_page_moves_every_run(void **state) {
    (void)state;
    const char *chromium = chromium_or_skip();
    const char *runs[2] = {reported_run(), reported_run()};
    char out_dir[128], path[256], err[ST_ERR_LEN], out[256];
    snprintf(out_dir, sizeof out_dir, "%s/cmp", dir);
    if (report_compare(runs, 2, out_dir, err)) fail_msg("%s", err);
    snprintf(path, sizeof path, "%s/compare.html", out_dir);
    Cdp c;
    open_page(&c, chromium, path);
    eval_ok(&c, "(() => { const s = document.getElementById('slider-all'); s.value = 0;"
                " s.dispatchEvent(new Event('input')); return document.getElementById('step-0').textContent"
                " + ' | ' + document.getElementById('step-1').textContent; })()",
            out, sizeof out);
    assert_string_equal(out, "step 0 (1 of 7) | step 0 (1 of 7)");
    close_page(&c);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_viewer_scrubs_through_the_steps),
                                       cmocka_unit_test(test_compare_page_moves_every_run)};
    return cmocka_run_group_tests_name("viewer", tests, setup, teardown);
}
