/* tests/test_lab.c: docs/LAB.md cannot go stale. Each test runs the lab step's commands on the lab's
 * miniature (runs/lab/mini.conf: bin/train and bin/report, as a learner types them) and checks the
 * step's qualitative claims: a sink forms on BOS in layers 0-2 and not in layer 3; column 0 of the
 * attention maps lights up; the block-0 MoE ablation at BOS removes it and the same at T/2 does not;
 * without BOS no head sinks on P0 and heads park on the space or 's'; a learned sink logit, a
 * sliding window and an output gate each take attention off BOS at about the same loss. Needs the
 * corpus (make data; CI runs it); skipped with a note without it. The five runs of the miniature train
 * at once, one thread each: 70 s on the shared 2-core development machine (load 4-5). */
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

#include "../common/util.h"
#include "../probes/attnmaps.h"
#include "../probes/report/figures.h"
#include "../probes/report/runlog.h"
#include "fixtures.h"

static char dir[64];
static int have_corpus;

/* the lab's runs: name and the flags it adds to runs/lab/mini.conf */
static const char *const lab_runs[][2] = {{"mini", ""},
                                          {"mini_nobos", "--bos start"},
                                          {"mini_sinklogit", "--attn_sink_logit 1"},
                                          {"mini_window", "--attn_window 8"},
                                          {"mini_gate", "--attn_gate 1"}};

/* trains every run of the lab at once, one thread each, as a learner may (bin/train --config
 * runs/lab/mini.conf --run_name NAME FLAGS &), and waits for them */
static int setup(void **state) {
    (void)state;
    if (fixture_make_tmpdir(dir, sizeof dir, "test_lab")) return -1;
    have_corpus = access("data/prepared/moby/train.bin", F_OK) == 0;
    if (!have_corpus) return 0;
    /* one sh command: each run in the background (its pid in p<i>), then a wait for each */
    char cmd[4096];
    int n = snprintf(cmd, sizeof cmd, "rc=0; "), runs = (int)(sizeof lab_runs / sizeof *lab_runs);
    for (int i = 0; i < runs; i++)
        n += snprintf(cmd + n, sizeof cmd - (size_t)n,
                      "bin/train --config runs/lab/mini.conf --out_dir %s --run_name %s %s > %s/%s.log 2>&1 & p%d=$!; ",
                      dir, lab_runs[i][0], lab_runs[i][1], dir, lab_runs[i][0], i);
    for (int i = 0; i < runs; i++) n += snprintf(cmd + n, sizeof cmd - (size_t)n, "wait $p%d || rc=1; ", i);
    snprintf(cmd + n, sizeof cmd - (size_t)n, "exit $rc");
    double t0 = st_now_seconds();
    int rc = system(cmd);
    printf("note: test_lab: the lab's five miniature runs trained and reported in %.0f s%s\n", st_now_seconds() - t0,
           rc ? " (one failed: see its .log)" : "");
    return 0;
}

static int teardown(void **state) {
    (void)state;
    return fixture_remove_dir(dir);
}

/* the run `name` of the lab, which setup trained (skips the test without the corpus) */
static void need(const char *name) {
    if (!have_corpus) {
        printf("note: test_lab skipped: the lab trains on the corpus; run make data first\n");
        skip();
    }
    char done[256], log[256], text[2048];
    snprintf(done, sizeof done, "%s/%s/report.html", dir, name);
    snprintf(log, sizeof log, "%s/%s.log", dir, name);
    fixture_read_text(log, text, sizeof text);
    if (access(done, F_OK) != 0) fail_msg("the lab's run %s did not finish; %s begins: %.300s", name, log, text);
}

/* the run `name` read on its probe variant; the caller frees it with run_free */
static void load(Run *r, const char *name) {
    char path[256], err[ST_ERR_LEN];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (run_load(r, path, err)) fail_msg("%s", err);
    assert_true(r->np >= 2);
}

static const cJSON *last_row(const Run *r) { return r->probes.row[r->sel[r->np - 1]]; }

/* the largest attention on P0 of a layer in [lo, hi) at the last probe step, over chance */
static double best_lift(const Run *r, int lo, int hi) {
    double a[16], best = 0, chance = jnum(last_row(r), "chance");
    jarr(last_row(r), "a_p0_layer", a, r->L);
    for (int l = lo; l < hi && l < r->L; l++)
        if (a[l] / chance > best) best = a[l] / chance;
    return best;
}

static double final_val_loss(const Run *r) {
    double *v = run_train_col(r, "val_loss"), last = last_finite(v, r->train.n, NULL);
    free(v);
    return last;
}

/* step 1: the sink forms on BOS in layers 0-2, layer 3 turns away, and it has an emergence step */
static void test_step1_the_sink_emerges(void **state) {
    (void)state;
    need("mini");
    Run r;
    load(&r, "mini");
    assert_string_equal(r.variant, "bos");
    double first[16], chance = jnum(last_row(&r), "chance");
    jarr(r.probes.row[r.sel[0]], "a_p0_layer", first, r.L);
    for (int l = 0; l < r.L; l++) assert_true(fabs(first[l] / chance - 1) < 0.1); /* step 0: chance */
    assert_true(best_lift(&r, 0, 3) > 1.5);
    assert_true(best_lift(&r, 3, 4) < 0.5);
    assert_true(jnum(last_row(&r), "sink_rate_30") > 0);
    double emerged = jnum(r.summary, "a_p0_max_emergence_step");
    assert_true(emerged > 0 && emerged < 300);
    run_free(&r);
}

/* the mean attention on key 0 over queries i >= 1 of layer l at record s */
static double column0(const AttnMaps *m, int s, int l) {
    double sum = 0;
    for (int h = 0; h < m->H; h++)
        for (int q = 1; q < m->T; q++) sum += attnmaps_prob(m, s, l, h, q, 0);
    return sum / (m->H * (m->T - 1.0));
}

/* step 2: one map per probe step; column 0 of layer 2 lights up between step 0 and the end */
static void test_step2_the_maps_light_up_column_0(void **state) {
    (void)state;
    need("mini");
    Run r;
    load(&r, "mini");
    char path[256], err[ST_ERR_LEN];
    snprintf(path, sizeof path, "%s/mini/attention.bin", dir);
    AttnMaps m;
    if (attnmaps_read(path, &m, err)) fail_msg("%s", err);
    assert_int_equal(m.n_steps, r.np);
    assert_true(column0(&m, m.n_steps - 1, 2) > 1.5 * column0(&m, 0, 2));
    attnmaps_free(&m);
    run_free(&r);
}

/* the attention on P0 of `layer` after intervention `what` at `position` (and before, in *before) */
static double after_intervention(const Run *r, const char *what, int position, int layer, double *before) {
    for (int i = 0; i < r->interv.n; i++) {
        const cJSON *row = r->interv.row[i], *name = cJSON_GetObjectItemCaseSensitive(row, "intervention");
        if (!cJSON_IsString(name) || strcmp(name->valuestring, what) || jnum(row, "position") != position) continue;
        double b[16], a[16];
        jarr(row, "a_p0_layer_before", b, r->L);
        jarr(row, "a_p0_layer_after", a, r->L);
        *before = b[layer];
        return a[layer];
    }
    fail_msg("interventions.jsonl has no %s at position %d", what, position);
    return NAN;
}

/* step 3: rho after block 1 grows, BOS is one vector across windows, and the circuit is in the MoE of
 * block 0 at position 0: ablating it there halves layer 2's sink, at T/2 it does nothing; block 0's
 * attention output at BOS and BOS's norm do not matter */
static void test_step3_the_circuit(void **state) {
    (void)state;
    need("mini");
    Run r;
    load(&r, "mini");
    double rho0[5], rho[5], kp[5], km[5], before, T = jnum(last_row(&r), "T");
    jarr(r.probes.row[r.sel[0]], "rho", rho0, 5), jarr(last_row(&r), "rho", rho, 5);
    jarr(last_row(&r), "kappa_p0", kp, 5), jarr(last_row(&r), "kappa_mid", km, 5);
    assert_true(rho[4] > rho0[4]);
    assert_true(kp[4] > km[4] + 0.3);
    assert_true(after_intervention(&r, "zero_moe0", 0, 2, &before) < 0.5 * before);
    assert_true(fabs(after_intervention(&r, "zero_moe0", (int)T / 2, 2, &before) - before) < 0.1 * before);
    assert_true(fabs(after_intervention(&r, "zero_attn0", 0, 2, &before) - before) < 0.1 * before);
    assert_true(fabs(after_intervention(&r, "rescale_median", 0, 2, &before) - before) < 0.1 * before);
    assert_true(after_intervention(&r, "natural", -1, 2, &before) < 0.5 * before); /* BOS taken away */
    run_free(&r);
}

/* step 4: without BOS no head sinks on P0 (every layer below chance) at about the same loss */
static void test_step4_without_bos_no_sink(void **state) {
    (void)state;
    need("mini");
    need("mini_nobos");
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "bin/report --compare %s/mini %s/mini_nobos --out %s/cmp > /dev/null", dir, dir, dir);
    assert_int_equal(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "%s/cmp/compare.html", dir);
    assert_int_equal(access(cmd, F_OK), 0);
    Run bos, nobos;
    load(&bos, "mini");
    load(&nobos, "mini_nobos");
    assert_string_equal(nobos.variant, "natural");
    assert_true(jnum(last_row(&nobos), "sink_rate_30") == 0);
    assert_true(best_lift(&nobos, 0, nobos.L) < 1);
    assert_true(fabs(final_val_loss(&nobos) - final_val_loss(&bos)) < 0.1);
    run_free(&bos);
    run_free(&nobos);
}

/* step 5: each way to remove the sink takes attention off BOS in layers 0-2 at about the same loss */
static void test_step5_removing_the_sink(void **state) {
    (void)state;
    need("mini");
    const char *names[3] = {"mini_sinklogit", "mini_window", "mini_gate"};
    Run base;
    load(&base, "mini");
    for (int i = 0; i < 3; i++) {
        need(names[i]);
        Run r;
        load(&r, names[i]);
        double lift = best_lift(&r, 0, 3), base_lift = best_lift(&base, 0, 3);
        if (!(lift < 0.75 * base_lift)) fail_msg("%s: best lift in layers 0-2 %.2f, with the sink %.2f", names[i], lift, base_lift);
        assert_true(fabs(final_val_loss(&r) - final_val_loss(&base)) < 0.1);
        run_free(&r);
    }
    run_free(&base);
}

/* step 6: without BOS, heads of layers >= 1 park on a content token, the space (32) or 's' (115),
 * half as much again as uniform attention gives it or more */
static void test_step6_a_content_token_becomes_the_sink(void **state) {
    (void)state;
    need("mini_nobos");
    Run r;
    load(&r, "mini_nobos");
    int LH = r.L * r.H, top = jlen(last_row(&r), "park_id") / LH, parked = 0;
    double ids[256], lift[256];
    assert_true(top >= 1 && LH * top <= 256);
    jarr(last_row(&r), "park_id", ids, LH * top), jarr(last_row(&r), "park_lift", lift, LH * top);
    for (int i = r.H; i < LH; i++) /* heads of layers >= 1: their top key token */
        parked += (ids[i * top] == 32 || ids[i * top] == 115) && lift[i * top] > 1.5;
    assert_true(parked >= 2);
    run_free(&r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_step1_the_sink_emerges),         cmocka_unit_test(test_step2_the_maps_light_up_column_0),
        cmocka_unit_test(test_step3_the_circuit),              cmocka_unit_test(test_step4_without_bos_no_sink),
        cmocka_unit_test(test_step5_removing_the_sink),        cmocka_unit_test(test_step6_a_content_token_becomes_the_sink),
    };
    return cmocka_run_group_tests_name("lab", tests, setup, teardown);
}
