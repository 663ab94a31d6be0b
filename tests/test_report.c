/* tests/test_report.c: bin/report on hand-built run directories: the report states the fixture's
 * numbers and no finding they do not support, figures decode, bad input names file and line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <stb_image.h>

#include "../common/jsonl.h"
#include "../common/util.h"
#include "../probes/report/figures.h"
#include "../probes/report/report.h"
#include "fixtures.h"

static char dir[64];

enum { L = 3, H = 2, P = 2 * L + 1, E = 4, STEPS = 400 };

static void path_in(char *out, const char *run, const char *file) { snprintf(out, 512, "%s/%s/%s", dir, run, file); }

static void write_text(const char *run, const char *file, const char *text) {
    char path[512];
    path_in(path, run, file);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static char *read_text(const char *run, const char *file) {
    char path[512];
    path_in(path, run, file);
    FILE *f = fopen(path, "r");
    if (!f) return NULL;
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

/* a page with its figures inlined: larger than read_text's buffer */
static const char *read_page(const char *run, const char *file) {
    static char html[1 << 23];
    char path[512];
    path_in(path, run, file);
    size_t n = fixture_read_text(path, html, sizeof html);
    assert_true(n > 0 && n < sizeof html - 1);
    return html;
}

static int file_exists(const char *run, const char *file) {
    char path[512];
    path_in(path, run, file);
    return access(path, F_OK) == 0;
}

static void write_train(const char *run) {
    char path[512];
    path_in(path, run, "train.jsonl");
    FILE *f = fopen(path, "w");
    StJson j = {0};
    for (int s = 0; s <= STEPS; s += 50) {
        sj_begin(&j);
        sj_int(&j, "step", s);
        sj_num(&j, "loss", 3.01 - s / 200.0);
        sj_num(&j, "ce", 3.0 - s / 200.0);
        sj_int(&j, "tokens", s * 1000LL);
        sj_num(&j, "tok_per_s", 10000);
        sj_num(&j, "ms_per_step", 100);
        if (s % 100 == 0) sj_num(&j, "val_loss", 3.1 - s / 200.0);
        for (int l = 0; l < L; l++) {
            char key[32];
            double load[E] = {0.4, 0.3, 0.2, 0.1};
            snprintf(key, sizeof key, "expert_load_l%d", l);
            sj_doubles(&j, key, load, E);
        }
        double ratio[L] = {1.6, 1.6, 1.6};
        sj_doubles(&j, "load_max_mean", ratio, L);
        char err[ST_ERR_LEN];
        assert_int_equal(sj_write_line(&j, f, path, err), 0);
    }
    sj_free(&j);
    fclose(f);
}

/* one probe row of a variant; with a sink, layer 2's heads reach 0.625 and 0.875 at the final step */
static void probe_row(StJson *j, int step, int sink, const char *variant) {
    double g = sink ? step / (double)STEPS : 0; /* how far the sink has grown */
    double a[L * H], al[L], rate_layer[L] = {0, 0, 0}, rho[P], delta[2 * L], kappa[P], control[P];
    double cons[L] = {0.5, 0.5, 0.5};
    for (int l = 0; l < L; l++)
        for (int h = 0; h < H; h++) a[l * H + h] = l == 2 ? 0.125 + g * (0.5 + 0.25 * h) : 0.125;
    int over = 0;
    for (int l = 0; l < L; l++) {
        al[l] = (a[l * H] + a[l * H + 1]) / 2;
        for (int h = 0; h < H; h++) rate_layer[l] += (a[l * H + h] > 0.3) / (double)H;
    }
    for (int i = 0; i < L * H; i++) over += a[i] > 0.3;
    for (int p = 0; p < P; p++) {
        rho[p] = p == 0 ? 1 : p < 3 ? 1.5 : 1.5 + 18 * g; /* the jump in block 1's attention */
        kappa[p] = 0.1 + 0.8 * g * (p >= 3);
        control[p] = 0.1;
    }
    for (int q = 0; q < 2 * L; q++) delta[q] = log(rho[q + 1] / rho[q]);
    sj_begin(j);
    sj_int(j, "step", step);
    sj_str(j, "variant", variant);
    sj_int(j, "tokens", step * 1000LL);
    sj_num(j, "val_loss", 3.1 - step / 200.0);
    sj_int(j, "T", 16);
    sj_num(j, "chance", 0.125);
    sj_doubles(j, "a_p0", a, L * H);
    sj_doubles(j, "a_p0_layer", al, L);
    sj_num(j, "a_p0_2plus", al[2]);
    sj_num(j, "sink_rate_30", over / (double)(L * H));
    sj_num(j, "sink_rate_2plus_30", rate_layer[2]);
    sj_doubles(j, "sink_rate_layer_30", rate_layer, L);
    sj_doubles(j, "rho", rho, P);
    sj_doubles(j, "kappa_p0", kappa, P);
    sj_doubles(j, "kappa_mid", control, P);
    sj_doubles(j, "delta", delta, 2 * L);
    sj_doubles(j, "p0_route_consistency", cons, L);
    sj_num(j, "d_star", g > 0.2 ? 1.5 : 0.5);
    sj_num(j, "C2", g > 0.2 ? 0.9 : 0.3);
    /* parking, without query classes: every head half on the previous token, its top key token 7 */
    double prev[L * H], self[L * H], none[L * H], v0[L * H], mass[L * H * 3], lift[L * H * 3], vnorm[L * H * 3];
    int ids[L * H * 3];
    for (int i = 0; i < L * H; i++) prev[i] = 0.5, self[i] = 0.1, none[i] = NAN, v0[i] = 1 - 0.5 * g;
    for (int i = 0; i < L * H * 3; i++) ids[i] = i % 3 ? i % 3 : 7, mass[i] = 0.4, lift[i] = 3.2, vnorm[i] = 0.25;
    sj_doubles(j, "a_prev", prev, L * H);
    sj_doubles(j, "a_self", self, L * H);
    sj_doubles(j, "a_p0_trigger", none, L * H);
    sj_doubles(j, "a_p0_ordinary", a, L * H);
    sj_doubles(j, "a_prev_trigger", none, L * H);
    sj_doubles(j, "a_prev_ordinary", prev, L * H);
    sj_doubles(j, "v0_head", v0, L * H);
    sj_ints(j, "park_id", ids, L * H * 3);
    sj_doubles(j, "park_mass", mass, L * H * 3);
    sj_doubles(j, "park_lift", lift, L * H * 3);
    sj_doubles(j, "park_vnorm", vnorm, L * H * 3);
}

static const char *summary_text(int sink) {
    return sink ? "{\"total_steps\":400,\"sink_rate_2plus_30_initial\":0,\"sink_rate_2plus_30_final\":1,"
                  "\"sink_rate_2plus_30_emergence_step\":300,\"sink_rate_2plus_30_emergence_frac\":0.75,"
                  "\"sink_rate_2plus_30_emergence_loss\":1.6,\"C2_initial\":0.3,\"C2_final\":0.9,"
                  "\"C2_emergence_step\":200,\"C2_emergence_frac\":0.5,\"C2_emergence_loss\":2.1}\n"
                : "{\"total_steps\":400,\"sink_rate_2plus_30_initial\":0,\"sink_rate_2plus_30_final\":0,"
                  "\"sink_rate_2plus_30_emergence_step\":null,\"a_p0_2plus_emergence_step\":null,"
                  "\"C2_initial\":0.3,\"C2_final\":0.3,\"C2_emergence_step\":null}\n";
}

/* natural rows (a sink when sink) and, at each step, a bos row: full (a sink when bos_sink >= 1, none
 * when 0) with its summary_bos.json, or a bare one the figures must ignore (bos_sink < 0) */
static void write_probes_variants(const char *run, int sink, int bos_sink) {
    char path[512], err[ST_ERR_LEN];
    path_in(path, run, "probes.jsonl");
    FILE *f = fopen(path, "w");
    StJson j = {0};
    for (int s = 0; s <= STEPS; s += 100) {
        probe_row(&j, s, sink, "natural");
        assert_int_equal(sj_write_line(&j, f, path, err), 0);
        if (bos_sink >= 0) {
            probe_row(&j, s, bos_sink, "bos");
        } else {
            sj_begin(&j);
            sj_int(&j, "step", s);
            sj_str(&j, "variant", "bos");
        }
        assert_int_equal(sj_write_line(&j, f, path, err), 0);
    }
    sj_free(&j);
    fclose(f);
    /* summary.json as the probes write it: emergence of the sink rate only when there is a sink */
    write_text(run, "summary.json", summary_text(sink));
    if (bos_sink >= 0) write_text(run, "summary_bos.json", summary_text(bos_sink));
}

static void write_probes(const char *run, int sink) { write_probes_variants(run, sink, -1); }

static void make_run(const char *run, int sink, int with_probes) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, run);
    assert_int_equal(mkdir(path, 0777), 0);
    write_text(run, "config.txt", "n_layer = 3  # layers\nn_expert = 4\nsteps = 400\n");
    write_train(run);
    if (with_probes) write_probes(run, sink);
}

/* three intervention lines: an ablation at P0, an input variant, and the ablation's control at T/2 */
static const char *interventions_text =
    "{\"step\":400,\"intervention\":\"zero_moe1\",\"position\":0,\"layer\":1,\"head\":-1,"
    "\"a_p0_2plus_before\":0.75,\"a_p0_2plus_after\":0.2,\"rho_max_before\":19.5,\"rho_max_after\":2}\n"
    "{\"step\":400,\"intervention\":\"bos\",\"position\":-1,\"layer\":-1,\"head\":-1,"
    "\"a_p0_2plus_before\":0.75,\"a_p0_2plus_after\":0.7,\"rho_max_before\":19.5,\"rho_max_after\":18}\n"
    "{\"step\":400,\"intervention\":\"zero_moe1\",\"position\":8,\"layer\":1,\"head\":-1,"
    "\"a_p0_2plus_before\":0.75,\"a_p0_2plus_after\":0.74,\"rho_max_before\":19.5,\"rho_max_after\":19}\n";

static void test_report_with_sink_states_fixture_numbers(void **state) {
    (void)state;
    char err[ST_ERR_LEN], path[512];
    make_run("sink", 1, 1);
    write_text("sink", "interventions.jsonl", interventions_text);
    snprintf(path, sizeof path, "%s/sink", dir);
    assert_int_equal(report_run(path, err), 0);
    const char *md = read_text("sink", "report.md");
    assert_non_null(md);
    assert_non_null(strstr(md, "A P0 sink formed"));
    assert_null(strstr(md, "No P0 sink"));
    assert_non_null(strstr(md, "| 2 | 0.75 | 6 | 1 |"));                    /* layer 2: mean, x chance, rate */
    assert_non_null(strstr(md, "0.333 of all heads"));                     /* 2 of 6 heads above 0.3 */
    assert_non_null(strstr(md, "emerged at step 300 (75% of the run; validation loss 1.6"));
    assert_non_null(strstr(md, "That is 0.5 minutes of training on this machine.")); /* 300 steps of 100 ms */
    assert_non_null(strstr(md, "across block 1's attention"));            /* the fixture's rho jump */
    assert_non_null(strstr(md, "grew from 1.5 to 19.5"));
    assert_non_null(strstr(md, "0.9 at position 0 and 0.1 at position T/2 (the control): position 0 is more alike"));
    assert_non_null(strstr(md, "| training tokens seen | 400000 |"));
    /* the parking table: head 2.1 at the end, on P0 and on its top key token */
    assert_non_null(strstr(md, "| 2.1 | 0.875 | 7 | 0.5 | 0.1 | 7 | 0.4 | 3.2 | 0.25 | 0.5 |"));
    assert_non_null(strstr(md, "attention_maps.png not drawn: attention.bin is missing"));
    assert_non_null(strstr(md, "story.png not drawn: attention.bin is missing"));
    /* the intervention table keeps each ablation next to its control, and the halving is stated */
    const char *p0 = strstr(md, "| zero_moe1 @P0 | 0.75 -> 0.2 |"), *t2 = strstr(md, "| zero_moe1 @T/2 | 0.75 -> 0.74 |");
    const char *bos = strstr(md, "| bos | 0.75 -> 0.7 |");
    assert_true(p0 && t2 && bos && p0 < t2 && t2 < bos);
    assert_non_null(strstr(md, "at least halved the attention on P0 in layers >= 2: zero_moe1 @P0. 0 of the 1 "
                               "controls at T/2 did."));
    /* every other figure is a real PNG */
    for (int i = 0; i < n_run_figures; i++) {
        const char *file = run_figures[i].file;
        if (!strcmp(file, "attention_maps.png") || !strcmp(file, "story.png")) { /* no attention.bin here */
            assert_false(file_exists("sink", file));
            continue;
        }
        int w, h, n;
        path_in(path, "sink", file);
        uint8_t *px = stbi_load(path, &w, &h, &n, 3);
        assert_non_null(px);
        assert_true(w >= 400 && h >= 300);
        free(px);
    }
}

/* report.html: the report as HTML with its figures inlined, the run's data, the viewer; nothing fetched
 * from outside the file */
static void test_report_html_is_self_contained(void **state) {
    (void)state;
    char err[ST_ERR_LEN], path[512];
    make_run("html", 1, 1);
    snprintf(path, sizeof path, "%s/html", dir);
    assert_int_equal(report_run(path, err), 0);
    const char *html = read_page("html", "report.html");
    assert_non_null(strstr(html, "<h1>Run report: html</h1>"));
    assert_non_null(strstr(html, "<tr><th>layer</th><th>mean attention on P0</th>"));
    assert_non_null(strstr(html, "<img alt=\"loss.png\" src=\"data:image/png;base64,iVBORw0KGgo"));
    assert_non_null(strstr(html, "<strong>A P0 sink formed</strong>"));
    assert_non_null(strstr(html, "<script type=\"application/json\" id=\"run-data\">{\"runs\":[{\"name\":\"html\""));
    assert_non_null(strstr(html, "const data = JSON.parse(")); /* probes/report/viewer.js, built in */
    assert_non_null(strstr(html, "<style>\n/* probes/report/viewer.css"));
    assert_null(strstr(html, "http://"));
    assert_null(strstr(html, "https://"));
    assert_null(strstr(html, "src=\"/"));
}

/* a run trained with BOS is read on its bos rows and summary_bos.json: the sink on BOS is reported
 * even though the natural windows (no BOS, out of its training distribution) show none */
static void test_bos_trained_run_is_read_on_its_bos_rows(void **state) {
    (void)state;
    char err[ST_ERR_LEN], path[512];
    snprintf(path, sizeof path, "%s/bosrun", dir);
    assert_int_equal(mkdir(path, 0777), 0);
    write_text("bosrun", "config.txt", "n_layer = 3\nn_expert = 4\nsteps = 400\nbos = prepend\n");
    write_train("bosrun");
    write_probes_variants("bosrun", 0, 1);
    assert_int_equal(report_run(path, err), 0);
    const char *md = read_text("bosrun", "report.md");
    assert_non_null(strstr(md, "the probe numbers are the `bos` variant's"));
    assert_non_null(strstr(md, "A P0 sink formed"));
    assert_non_null(strstr(md, "emerged at step 300"));
    /* the same files read as a run without BOS: the natural rows, no sink */
    write_text("bosrun", "config.txt", "n_layer = 3\nn_expert = 4\nsteps = 400\nbos = none\n");
    assert_int_equal(report_run(path, err), 0);
    md = read_text("bosrun", "report.md");
    assert_null(strstr(md, "`bos` variant's"));
    assert_non_null(strstr(md, "No P0 sink formed"));
}

/* a sink whose rate over layers >= 2 never settles: the report gives the emergence over all layers */
static void test_report_falls_back_to_the_overall_sink_rate(void **state) {
    (void)state;
    char err[ST_ERR_LEN], path[512];
    make_run("overall", 1, 1);
    write_text("overall", "summary.json",
               "{\"total_steps\":400,\"sink_rate_2plus_30_emergence_step\":null,\"sink_rate_30_initial\":0,"
               "\"sink_rate_30_final\":0.333,\"sink_rate_30_emergence_step\":200,\"sink_rate_30_emergence_frac\":0.5,"
               "\"sink_rate_30_emergence_loss\":2.1}\n");
    snprintf(path, sizeof path, "%s/overall", dir);
    assert_int_equal(report_run(path, err), 0);
    const char *md = read_text("overall", "report.md");
    assert_non_null(strstr(md, "over all layers (eps 0.3) it emerged at step 200 (50% of the run; validation loss "
                               "2.1 then), from 0 to 0.333."));
    assert_non_null(strstr(md, "That is 0.333 minutes of training")); /* 200 steps of 100 ms */
}

static void test_report_without_sink_claims_none(void **state) {
    (void)state;
    char err[ST_ERR_LEN], path[512];
    make_run("flat", 0, 1);
    snprintf(path, sizeof path, "%s/flat", dir);
    assert_int_equal(report_run(path, err), 0);
    const char *md = read_text("flat", "report.md");
    assert_non_null(strstr(md, "No P0 sink formed"));
    assert_null(strstr(md, "A P0 sink formed"));
    assert_null(strstr(md, "emerged at step"));
    assert_null(strstr(md, "moved into blocks 0-1"));
    assert_non_null(strstr(md, "no norm jump formed"));
    assert_non_null(strstr(md, "no more alike across inputs than the control"));
}

static void test_report_without_probes_says_so(void **state) {
    (void)state;
    char err[ST_ERR_LEN], path[512];
    make_run("bare", 0, 0);
    snprintf(path, sizeof path, "%s/bare", dir);
    assert_int_equal(report_run(path, err), 0);
    const char *md = read_text("bare", "report.md");
    assert_non_null(strstr(md, "Missing: probes.jsonl, summary.json, interventions.jsonl"));
    assert_non_null(strstr(md, "probes.jsonl is missing: there are no probe results"));
    assert_false(file_exists("bare", "interventions.png"));
    assert_null(strstr(md, "sink formed"));
    assert_true(file_exists("bare", "loss.png"));
    assert_true(file_exists("bare", "experts.png"));
    assert_false(file_exists("bare", "sink_by_layer.png"));
}

static void test_report_with_null_metrics_claims_nothing(void **state) {
    (void)state;
    char err[ST_ERR_LEN], path[512];
    make_run("nulls", 0, 0);
    write_text("nulls", "probes.jsonl",
               "{\"step\":0,\"variant\":\"natural\",\"a_p0\":[null,null,null,null,null,null],"
               "\"a_p0_layer\":[null,null,null],\"rho\":null,\"sink_rate_30\":null}\n");
    snprintf(path, sizeof path, "%s/nulls", dir);
    assert_int_equal(report_run(path, err), 0);
    const char *md = read_text("nulls", "report.md");
    assert_non_null(strstr(md, "The sink rate at the final step is not in probes.jsonl"));
    assert_non_null(strstr(md, "no finding about the norm"));
    assert_null(strstr(md, "sink formed"));
    assert_null(strstr(md, "norm jump"));
    assert_null(strstr(md, "more alike"));
}

static void test_dense_run_has_no_expert_claims(void **state) {
    (void)state;
    char err[ST_ERR_LEN], path[512];
    make_run("dense", 0, 1);
    write_text("dense", "config.txt", "n_layer = 3\nn_expert = 1\nsteps = 400\n");
    snprintf(path, sizeof path, "%s/dense", dir);
    assert_int_equal(report_run(path, err), 0);
    const char *md = read_text("dense", "report.md");
    assert_non_null(strstr(md, "The model is dense (n_expert = 1): there is no routing to report."));
    assert_null(strstr(md, "Load balance"));
    assert_false(file_exists("dense", "experts.png"));
}

/* report_run on a copy of the "bare" run whose file `file` is replaced by `text`: the error */
static const char *error_for(const char *run, const char *file, const char *text) {
    static char err[ST_ERR_LEN];
    char path[512];
    make_run(run, 0, 1);
    write_text(run, file, text);
    snprintf(path, sizeof path, "%s/%s", dir, run);
    assert_int_equal(report_run(path, err), -1);
    return err;
}

static void test_bad_input_names_file_line_and_key(void **state) {
    (void)state;
    const char *err = error_for("bad1", "train.jsonl", "{\"step\": 0, \"loss\": 3}\n\n{\"step\": 1, \"loss\"\n");
    assert_non_null(strstr(err, "bad1/train.jsonl:3: expected one JSON object per line"));
    err = error_for("bad2", "train.jsonl", "{\"step\": 0}\n{\"step\": \"ten\"}\n");
    assert_non_null(strstr(err, "bad2/train.jsonl:2: key 'step': expected a number, found a string"));
    err = error_for("bad3", "probes.jsonl",
                    "{\"step\":0,\"variant\":\"natural\",\"a_p0\":[0,0,0,0],\"a_p0_layer\":[0,0,0],\"rho\":[1,1]}\n");
    assert_non_null(strstr(err, "bad3/probes.jsonl:1"));
    assert_non_null(strstr(err, "'a_p0'"));
    err = error_for("bad4", "probes.jsonl",
                    "{\"step\":0,\"variant\":\"natural\",\"a_p0\":[0,0,0,0,0,0],\"a_p0_layer\":[0,0,0],\"rho\":[1,1]}\n");
    assert_non_null(strstr(err, "bad4/probes.jsonl:1: key 'rho': expected an array of 7 numbers, found 2"));
    err = error_for("bad5", "summary.json", "{\"total_steps\": 4");
    assert_non_null(strstr(err, "bad5/summary.json: expected one JSON object"));
    /* a missing train.jsonl is named */
    char path[512], e[ST_ERR_LEN];
    snprintf(path, sizeof path, "%s/nothing", dir);
    mkdir(path, 0777);
    assert_int_equal(report_run(path, e), -1);
    assert_non_null(strstr(e, "nothing/train.jsonl: missing"));
}

static void test_compare_overlays_runs(void **state) {
    (void)state;
    char err[ST_ERR_LEN], a[512], b[512], out[512];
    make_run("cmp_a", 1, 1);
    make_run("cmp_b", 0, 1);
    write_text("cmp_b", "config.txt", "n_layer = 3\nn_expert = 1\nsteps = 400\n");
    snprintf(a, sizeof a, "%s/cmp_a", dir);
    snprintf(b, sizeof b, "%s/cmp_b", dir);
    snprintf(out, sizeof out, "%s/cmp_out", dir);
    const char *runs[2] = {a, b};
    assert_int_equal(report_compare(runs, 2, out, err), 0);
    const char *md = read_text("cmp_out", "compare.md");
    assert_non_null(md);
    /* run, tokens, final val loss, attention on P0 >= 2, its lift (chance 0.125 at the fixture's T), sink
     * rate, rho max, rho at point 2 over step 0, C2, kappa at point 2 (P0 / T/2), emergence */
    assert_non_null(strstr(md, "| cmp_a | 400000 | 1.1 | 0.75 | 6 | 0.333 | n/a | 13 | 0.9 | 0.9 / 0.1 | 300 |"));
    assert_non_null(strstr(md, "| cmp_b | 400000 | 1.1 | 0.125 | 1 | 0 | n/a | 1 | 0.3 | 0.1 / 0.1 | no sink |"));
    assert_non_null(strstr(md, "| run | n_expert |\n"));           /* only the key that differs */
    assert_non_null(strstr(md, "| cmp_b | 1 |"));
    assert_true(file_exists("cmp_out", "compare_val_loss.png"));
    assert_true(file_exists("cmp_out", "compare_a_p0_2plus.png"));
    const char *html = read_page("cmp_out", "compare.html"); /* both runs' data in one page */
    assert_non_null(strstr(html, "{\"name\":\"cmp_a\""));
    assert_non_null(strstr(html, "{\"name\":\"cmp_b\""));
}

static int setup(void **state) {
    (void)state;
    return fixture_make_tmpdir(dir, sizeof dir, "test_report");
}

static int teardown(void **state) {
    (void)state;
    return fixture_remove_dir(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_report_with_sink_states_fixture_numbers),
        cmocka_unit_test(test_report_html_is_self_contained),
        cmocka_unit_test(test_report_without_sink_claims_none),
        cmocka_unit_test(test_bos_trained_run_is_read_on_its_bos_rows),
        cmocka_unit_test(test_report_falls_back_to_the_overall_sink_rate),
        cmocka_unit_test(test_report_without_probes_says_so),
        cmocka_unit_test(test_report_with_null_metrics_claims_nothing),
        cmocka_unit_test(test_dense_run_has_no_expert_claims),
        cmocka_unit_test(test_bad_input_names_file_line_and_key),
        cmocka_unit_test(test_compare_overlays_runs),
    };
    return cmocka_run_group_tests_name("report", tests, setup, teardown);
}
