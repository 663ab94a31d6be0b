/* tests/test_suite.c: bin/report --suite (probes/report/suite.h) on hand-built suite directories: known
 * verdicts for known runs (all seeds with an early sink, none, one of three, late sinks, a dense model
 * without a sink), BOS-trained runs judged on the bos variant, missing and unfinished runs reported as such, malformed files named in one line. */
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
#include "../probes/report/suite.h"
#include "fixtures.h"

static char dir[64];

/* 4 layers of 2 heads (residual points 0, 0.5, ..., 4), probes every 100 steps of a 400-step run */
enum { L = 4, H = 2, P = 2 * L + 1, STEPS = 400, EVERY = 100 };
#define CHANCE 0.125

/* how a fixture run's sink behaves: none, emerging at step 100 (a quarter of the run: early), or at
 * step 300 (late) */
typedef enum { NO_SINK, EARLY, LATE } Kind;

static int emergence_step(Kind k) { return k == EARLY ? 100 : k == LATE ? 300 : -1; }

static void suite_path(char *out, const char *suite, const char *file) { snprintf(out, 512, "%s/%s/%s", dir, suite, file); }

static void write_text(const char *suite, const char *file, const char *text) {
    char path[512];
    suite_path(path, suite, file);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void make_dir(const char *suite, const char *sub) {
    char path[512];
    suite_path(path, suite, sub);
    assert_int_equal(mkdir(path, 0777), 0);
}

static void write_train(const char *suite, const char *run) {
    char path[512], err[ST_ERR_LEN], file[300];
    snprintf(file, sizeof file, "%s/train.jsonl", run);
    suite_path(path, suite, file);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    StJson j = {0};
    for (int s = 0; s <= STEPS; s += EVERY) {
        sj_begin(&j);
        sj_int(&j, "step", s);
        sj_int(&j, "tokens", s * 1000LL);
        sj_num(&j, "ms_per_step", 100);
        sj_num(&j, "val_loss", 3 - s / 400.0);
        assert_int_equal(sj_write_line(&j, f, path, err), 0);
    }
    sj_free(&j);
    fclose(f);
}

/* one probe row of a variant: with a grown sink (g = 1) layers 2-3 put 0.725 on P0 (5.8 x chance), rho
 * jumps from 1.5 to 7.5 after block 1, and P0's states are alike across inputs (kappa 0.9 vs 0.1) */
/* set while a fixture run with learned sink logits is written: its probe rows then carry sink_logit
 * [L*H] as the prober writes it, (0.25 (L - l) + 0.5 h) step / STEPS for layer l, head h */
static int sink_logit_rows;

static void probe_row(StJson *j, int step, const char *variant, Kind kind) {
    double g = kind != NO_SINK && step >= emergence_step(kind) ? 1 : 0;
    double a[L * H], al[L], rho[P], kappa[P], control[P];
    for (int l = 0; l < L; l++) {
        al[l] = l >= 2 ? 0.125 + 0.6 * g : 0.125;
        for (int h = 0; h < H; h++) a[l * H + h] = al[l];
    }
    for (int p = 0; p < P; p++) {
        rho[p] = p == 0 ? 1 : 1.5 + (p >= 3 ? 6 * g : 0);
        kappa[p] = 0.1 + 0.8 * g * (p >= 3);
        control[p] = 0.1;
    }
    sj_begin(j);
    sj_int(j, "step", step);
    sj_str(j, "variant", variant);
    sj_int(j, "tokens", step * 1000LL);
    sj_int(j, "T", 16);
    sj_num(j, "chance", CHANCE);
    sj_doubles(j, "a_p0", a, L * H);
    sj_doubles(j, "a_p0_layer", al, L);
    sj_num(j, "a_p0_2plus", (al[2] + al[3]) / 2);
    sj_num(j, "sink_rate_2plus_30", g);
    sj_num(j, "sink_rate_k1_30", 0);
    sj_num(j, "sink_rate_mid_30", 0);
    sj_doubles(j, "rho", rho, P);
    sj_doubles(j, "kappa_p0", kappa, P);
    sj_doubles(j, "kappa_mid", control, P);
    /* C2 climbs with the sink through the second half (0.75 at step 300, 0.9 at 400) */
    sj_num(j, "C2", 0.3 + 0.6 * g * step / STEPS);
    sj_num(j, "d_star", g ? 1.5 : 0.5);
    if (sink_logit_rows) {
        double logit[L * H];
        for (int l = 0; l < L; l++)
            for (int h = 0; h < H; h++) logit[l * H + h] = (0.25 * (L - l) + 0.5 * h) * step / STEPS;
        sj_doubles(j, "sink_logit", logit, L * H);
    }
}

/* which bos-variant rows a fixture run's probes.jsonl holds: none (a run trained without BOS), one at
 * every probe step (as bin/train writes for a BOS-trained run), or only the final step's */
typedef enum { BOS_ROWS_NONE, BOS_ROWS_EVERY, BOS_ROWS_FINAL } BosRows;

static void write_probes(const char *suite, const char *run, Kind kind, Kind bos_kind, BosRows bos_rows) {
    char path[512], err[ST_ERR_LEN], file[300];
    snprintf(file, sizeof file, "%s/probes.jsonl", run);
    suite_path(path, suite, file);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    StJson j = {0};
    for (int s = 0; s <= STEPS; s += EVERY) {
        probe_row(&j, s, "natural", kind);
        assert_int_equal(sj_write_line(&j, f, path, err), 0);
        if (bos_rows == BOS_ROWS_EVERY || (bos_rows == BOS_ROWS_FINAL && s == STEPS)) {
            probe_row(&j, s, "bos", bos_kind);
            assert_int_equal(sj_write_line(&j, f, path, err), 0);
        }
    }
    static const char *const variants[] = {"random", "shuffled", "random_first", "repeated"};
    for (int v = 0; v < 4; v++) {
        probe_row(&j, STEPS, variants[v], v == 3 ? NO_SINK : kind);
        assert_int_equal(sj_write_line(&j, f, path, err), 0);
    }
    sj_free(&j);
    fclose(f);
}

static void write_summary(const char *suite, const char *run, Kind kind) {
    char text[512], file[300];
    int e = emergence_step(kind);
    if (kind == NO_SINK)
        snprintf(text, sizeof text, "{\"total_steps\":%d,\"run_seconds\":50,\"sink_rate_2plus_30_final\":0,"
                                    "\"sink_rate_2plus_30_emergence_step\":null,\"sink_rate_2plus_30_emergence_frac\":null,"
                                    "\"sink_rate_2plus_30_emergence_loss\":null}\n", STEPS);
    else
        snprintf(text, sizeof text, "{\"total_steps\":%d,\"run_seconds\":50,\"sink_rate_2plus_30_final\":1,"
                                    "\"sink_rate_2plus_30_emergence_step\":%d,\"sink_rate_2plus_30_emergence_frac\":%g,"
                                    "\"sink_rate_2plus_30_emergence_loss\":%g}\n", STEPS, e, e / (double)STEPS, 3 - e / 400.0);
    snprintf(file, sizeof file, "%s/summary.json", run);
    write_text(suite, file, text);
}

/* the planned config beside the run (as bin/sweep writes it) and the run's own config.txt */
static void write_configs(const char *suite, const char *run, const char *settings) {
    char file[300];
    snprintf(file, sizeof file, "%s.conf", run);
    write_text(suite, file, settings);
    snprintf(file, sizeof file, "%s/config.txt", run);
    write_text(suite, file, settings);
}

/* a finished fixture run whose natural variant (and summary.json) is of one kind and bos variant of another */
static void make_bos_run(const char *suite, const char *run, Kind kind, Kind bos_kind, BosRows bos_rows,
                         const char *settings) {
    make_dir(suite, run);
    write_configs(suite, run, settings);
    write_train(suite, run);
    write_probes(suite, run, kind, bos_kind, bos_rows);
    write_summary(suite, run, kind);
}

/* a finished fixture run of a kind; trained with BOS, its bos variant is probed at every step alike */
static void make_run(const char *suite, const char *run, Kind kind, const char *settings) {
    make_bos_run(suite, run, kind, kind, strstr(settings, "bos = prepend") ? BOS_ROWS_EVERY : BOS_ROWS_NONE, settings);
}

static void new_suite(const char *suite) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, suite);
    assert_int_equal(mkdir(path, 0777), 0);
    make_dir(suite, "suite");
}

/* the three moe_nobos seeds, of the given kinds */
static void make_seeds(const char *suite, Kind a, Kind b, Kind c) {
    make_run(suite, "suite/moe_nobos-seed1", a, "n_layer = 4\nseed = 1\n");
    make_run(suite, "suite/moe_nobos-seed2", b, "n_layer = 4\nseed = 2\n");
    make_run(suite, "suite/moe_nobos-seed1337", c, "n_layer = 4\nseed = 1337\n");
}

/* writes the report of <suite>/suite into <suite>/report.md and returns its text */
static const char *report(const char *suite) {
    char path[512], err[ST_ERR_LEN];
    static char text[1 << 17];
    suite_path(path, suite, "suite");
    if (report_suite(path, NULL, err)) fail_msg("%s", err);
    suite_path(path, suite, "report.md");
    assert_true(fixture_read_text(path, text, sizeof text) > 0);
    return text;
}

/* the verdict row of a claim in the summary table */
static void assert_verdict(const char *md, const char *claim, const char *verdict) {
    char row[256];
    snprintf(row, sizeof row, "| %s | %s |\n", claim, verdict);
    if (!strstr(md, row)) fail_msg("expected the row '%s' in the report", row);
}

static void test_all_early_sinks_reproduce_every_claim(void **state) {
    (void)state;
    new_suite("full");
    make_seeds("full", EARLY, EARLY, EARLY);
    make_run("full", "suite/moe_nobos_long", EARLY, "n_layer = 4\nseed = 1\nsteps = 1600\n");
    make_run("full", "suite/moe_bos", EARLY, "n_layer = 4\nseed = 1\nbos = prepend\n");
    make_run("full", "suite/dense_nobos", EARLY, "n_layer = 4\nseed = 1\nn_expert = 1\n");
    make_run("full", "suite/dense_bos", EARLY, "n_layer = 4\nseed = 1\nn_expert = 1\nbos = prepend\n");
    make_run("full", "suite/window_nobos", NO_SINK, "n_layer = 4\nseed = 1\nattn_window = 8\n");
    make_run("full", "suite/sinklogit_nobos", NO_SINK, "n_layer = 4\nseed = 1\nattn_sink_logit = 1\n");
    make_run("full", "suite/gate_nobos", NO_SINK, "n_layer = 4\nseed = 1\nattn_gate = 1\n");
    const char *md = report("full");
    assert_verdict(md, "(a) emerges early", "reproduced");
    assert_verdict(md, "(b) forms within blocks 0-1, no BOS, no cue", "reproduced");
    assert_verdict(md, "(c) concentrates in the first two layers", "reproduced");
    assert_verdict(md, "(d) removing BOS", "reproduced");
    assert_verdict(md, "(e) dense versus MoE", "reproduced");
    assert_verdict(md, "(f) the controls", "reproduced");
    /* the numbers behind them: emergence at step 100 = 0.25 of the run in every seed, a lift of
     * 0.725 / 0.125 = 5.8, rho after block 1 from 1.5 to 7.5 */
    assert_non_null(strstr(md, "| mean +- sd | 3 of 3 runs | 100 +- 0 (3 runs) | 0.25 +- 0 (3 runs) | | 1 +- 0 (3 runs) "
                               "| 5.8 +- 0 (3 runs) | 7.5 +- 0 (3 runs) |"));
    assert_non_null(strstr(md, "| moe_nobos-seed1 | yes | 1.5 | 7.5 | 5 | 0.9 | 0.1 | 5.8 | 5.8 | 5.8 | rho yes, kappa yes, inputs yes |"));
    assert_non_null(strstr(md, "| moe_nobos_long | yes | 0.9 | 1.5 | 0.75 | 0.9 | 0.15 | C2 yes, d* yes, rising yes |"));
    assert_non_null(strstr(md, "| window_nobos | no | 1 | 0 | 0 | 0 | 1.5 | as predicted |"));
    assert_non_null(strstr(md, "sinklogit_nobos has no sink logits in its probes.jsonl (key sink_logit), so its "
                               "learned sink logits cannot be reported."));
    /* what ran: the settings that differ from moe_nobos, and the suite's total time */
    assert_non_null(strstr(md, "| dense_bos | dense_bos | finished | n_expert = 1, bos = prepend | 400 | 400000 | 40 | 50 | 2 |"));
    assert_non_null(strstr(md, "10 of 10 runs finished. Suite total: 500 s"));
    assert_null(strstr(md, "Provisional"));
    assert_null(strstr(md, "not drawn"));
    /* the rules are printed with their values */
    assert_non_null(strstr(md, "| early | 0.25 | (a) the sink emerged EARLY"));
    /* every suite figure is a real PNG beside the report */
    static const char *const figures[] = {"suite_lift.png", "suite_rho.png", "suite_concentration.png", "suite_layers.png"};
    for (int i = 0; i < 4; i++) {
        char path[512];
        int w = 0, h = 0, n = 0;
        suite_path(path, "full", figures[i]);
        unsigned char *img = stbi_load(path, &w, &h, &n, 3);
        if (!img) fail_msg("%s does not decode", path);
        assert_true(w >= 600 && h >= 300);
        assert_non_null(strstr(md, figures[i]));
        stbi_image_free(img);
    }
}

static void test_no_seed_with_a_sink_is_not_reproduced(void **state) {
    (void)state;
    new_suite("none");
    make_seeds("none", NO_SINK, NO_SINK, NO_SINK);
    const char *md = report("none");
    assert_verdict(md, "(a) emerges early", "not reproduced");
    assert_non_null(strstr(md, "0 of 3 finished moe_nobos seeds have a P0 sink"));
    /* where a sink forms presupposes a sink */
    assert_verdict(md, "(b) forms within blocks 0-1, no BOS, no cue", "not testable");
    /* the other conditions never ran: said, not guessed */
    assert_verdict(md, "(c) concentrates in the first two layers", "not judged yet (runs missing)");
    assert_verdict(md, "(f) the controls", "not judged yet (runs missing)");
    assert_non_null(strstr(md, "Conditions with no run at all: moe_nobos_long, moe_bos, dense_nobos, dense_bos, "
                               "window_nobos, sinklogit_nobos, gate_nobos."));
    assert_non_null(strstr(md, "*suite_concentration.png not drawn: moe_nobos_long has not finished.*"));
}

static void test_one_seed_of_three_or_late_sinks_are_mixed(void **state) {
    (void)state;
    new_suite("one");
    make_seeds("one", NO_SINK, EARLY, NO_SINK);
    const char *md = report("one");
    assert_verdict(md, "(a) emerges early", "mixed");
    assert_non_null(strstr(md, "1 of 3 finished moe_nobos seeds have a P0 sink; 1 of them emerged within 0.25"));
    /* moe_nobos as a condition has no sink (1 of 3 is not a majority), so the controls cannot be read */
    make_run("one", "suite/gate_nobos", NO_SINK, "n_layer = 4\nseed = 1\nattn_gate = 1\n");
    md = report("one");
    assert_verdict(md, "(f) the controls", "not testable");

    new_suite("late");
    make_seeds("late", LATE, LATE, LATE);
    md = report("late");
    assert_verdict(md, "(a) emerges early", "mixed");
    assert_non_null(strstr(md, "3 of 3 finished moe_nobos seeds have a P0 sink; 0 of them emerged within 0.25"));
    assert_non_null(strstr(md, "| 300 +- 0 (3 runs) | 0.75 +- 0 (3 runs) |"));
}

/* the learned sink logits of the sink-logit control come from its last natural probe row (the prober
 * writes them; the report builds no model): per layer the mean and the largest over heads */
static void test_sink_logits_are_read_from_probes_jsonl(void **state) {
    (void)state;
    new_suite("logits");
    make_seeds("logits", EARLY, EARLY, EARLY);
    sink_logit_rows = 1;
    make_run("logits", "suite/sinklogit_nobos", NO_SINK, "n_layer = 4\nseed = 1\nattn_sink_logit = 1\n");
    sink_logit_rows = 0;
    make_run("logits", "suite/sinklogit_nobos-seed2", NO_SINK, "n_layer = 4\nseed = 2\nattn_sink_logit = 1\n");
    const char *md = report("logits");
    assert_non_null(strstr(md, "Learned sink logits of sinklogit_nobos (probes.jsonl, step 400), per layer mean / "
                               "largest over heads: layer 0: 1.25 / 1.5; layer 1: 1 / 1.25; layer 2: 0.75 / 1; "
                               "layer 3: 0.5 / 0.75."));
    assert_non_null(strstr(md, "sinklogit_nobos-seed2 has no sink logits in its probes.jsonl"));
}

/* a dense model without a sink where its BOS twin has one: the dense pair disagrees with the paper */
static void test_dense_without_a_sink_makes_d_and_e_mixed(void **state) {
    (void)state;
    new_suite("dense");
    make_seeds("dense", EARLY, EARLY, EARLY);
    make_run("dense", "suite/moe_bos", EARLY, "n_layer = 4\nbos = prepend\n");
    make_run("dense", "suite/dense_nobos", NO_SINK, "n_layer = 4\nn_expert = 1\n");
    make_run("dense", "suite/dense_bos", EARLY, "n_layer = 4\nn_expert = 1\nbos = prepend\n");
    const char *md = report("dense");
    assert_verdict(md, "(d) removing BOS", "mixed");
    assert_non_null(strstr(md, "- MoE (moe_nobos vs moe_bos): agrees with the paper\n"));
    assert_non_null(strstr(md, "- dense (dense_nobos vs dense_bos): disagrees with the paper\n"));
    assert_verdict(md, "(e) dense versus MoE", "mixed");
    assert_non_null(strstr(md, "- no BOS (moe_nobos vs dense_nobos): disagrees with the paper\n"));
    /* (b) reads dense_nobos too: 3 of 3 no-BOS runs with a sink pass, dense_nobos has none */
    assert_verdict(md, "(b) forms within blocks 0-1, no BOS, no cue", "reproduced");
    assert_non_null(strstr(md, "3 of the 3 no-BOS runs with a sink pass all three tests"));
}

/* controls that form the sink anyway, and a sink only with BOS, contradict the paper */
static void test_contradicting_runs_are_not_reproduced(void **state) {
    (void)state;
    new_suite("ctrl");
    make_seeds("ctrl", EARLY, EARLY, NO_SINK);
    make_run("ctrl", "suite/window_nobos", EARLY, "n_layer = 4\nattn_window = 8\n");
    make_run("ctrl", "suite/gate_nobos", LATE, "n_layer = 4\nattn_gate = 1\n");
    const char *md = report("ctrl");
    assert_verdict(md, "(f) the controls", "not reproduced");
    assert_non_null(strstr(md, "0 of 2 finished controls have no P0 sink"));
    assert_non_null(strstr(md, "| gate_nobos | yes | 5.8 | 1 | 0 | 0 | 7.5 | not as predicted |"));
    assert_non_null(strstr(md, "| sinklogit_nobos | missing |"));

    new_suite("bosonly");
    make_seeds("bosonly", NO_SINK, NO_SINK, EARLY);
    make_run("bosonly", "suite/moe_bos", EARLY, "n_layer = 4\nbos = prepend\n");
    md = report("bosonly");
    assert_verdict(md, "(d) removing BOS", "not reproduced");
    assert_non_null(strstr(md, "- MoE (moe_nobos vs moe_bos): disagrees with the paper\n"));
    assert_non_null(strstr(md, "- dense (dense_nobos vs dense_bos): runs missing\n"));
    assert_non_null(strstr(md, "| moe_nobos | MoE | none | natural | 1 of 3 runs |"));
}

/* BOS-trained runs are judged on the bos variant: a sink on BOS with none on the natural variant counts
 * as a sink, so with no no-BOS sink both (d) pairs disagree with the paper */
static void test_bos_runs_with_a_sink_on_bos_only_have_a_sink(void **state) {
    (void)state;
    new_suite("onbos");
    make_seeds("onbos", NO_SINK, NO_SINK, NO_SINK);
    make_bos_run("onbos", "suite/moe_bos", NO_SINK, EARLY, BOS_ROWS_EVERY, "n_layer = 4\nbos = prepend\n");
    /* documents read from their first token without BOS (bos = start) are a no-BOS condition */
    make_run("onbos", "suite/dense_nobos", NO_SINK, "n_layer = 4\nn_expert = 1\nbos = start\n");
    /* the bos variant of the final probe only: a sink, but no emergence step or step-0 ratio */
    make_bos_run("onbos", "suite/dense_bos", NO_SINK, LATE, BOS_ROWS_FINAL, "n_layer = 4\nn_expert = 1\nbos = prepend\n");
    const char *md = report("onbos");
    assert_verdict(md, "(d) removing BOS", "not reproduced");
    assert_non_null(strstr(md, "- MoE (moe_nobos vs moe_bos): disagrees with the paper\n"));
    assert_non_null(strstr(md, "- dense (dense_nobos vs dense_bos): disagrees with the paper\n"));
    /* on bos: lift 5.8, rho_2 from 1.5 to 7.5, emergence at step 100 (summary.json's rule on the bos
     * rows); on natural: no sink, lift 1, rate 0 */
    assert_non_null(strstr(md, "| moe_bos | MoE | at P0 | bos (every probe) | yes | 5.8 | 1 | 7.5 | 5 | 100 | no, 1, 0 |"));
    assert_non_null(strstr(md, "| dense_bos | dense | at P0 | bos (final probe only) | yes | 5.8 | 1 | 7.5 | n/a | n/a | "
                               "no, 1, 0 |"));
    assert_non_null(strstr(md, "| moe_nobos | MoE | none | natural | 0 of 3 runs |"));
    assert_non_null(strstr(md, "| dense_nobos | dense | none | natural | no |"));
    /* (e): the BOS pair both sink on BOS, the no-BOS pair neither */
    assert_verdict(md, "(e) dense versus MoE", "reproduced");
    assert_non_null(strstr(md, "- BOS (moe_bos vs dense_bos): agrees with the paper\n"));
    assert_non_null(strstr(md, "| sink_bos | 0 | a run TRAINED WITH BOS"));
}

/* the reverse: a sink on the natural variant of a BOS-trained run, none on BOS, is no sink; with no no-BOS
 * sink either, (d) cannot be tested (on the natural variant it would have read "not reproduced") */
static void test_bos_runs_with_a_sink_on_natural_only_have_none(void **state) {
    (void)state;
    new_suite("onnat");
    make_seeds("onnat", NO_SINK, NO_SINK, NO_SINK);
    make_bos_run("onnat", "suite/moe_bos", EARLY, NO_SINK, BOS_ROWS_EVERY, "n_layer = 4\nbos = prepend\n");
    make_run("onnat", "suite/dense_nobos", NO_SINK, "n_layer = 4\nn_expert = 1\n");
    make_bos_run("onnat", "suite/dense_bos", EARLY, NO_SINK, BOS_ROWS_EVERY, "n_layer = 4\nn_expert = 1\nbos = prepend\n");
    const char *md = report("onnat");
    assert_verdict(md, "(d) removing BOS", "not testable");
    assert_non_null(strstr(md, "- MoE (moe_nobos vs moe_bos): not testable (neither has a sink)\n"));
    assert_non_null(strstr(md, "| moe_bos | MoE | at P0 | bos (every probe) | no | 1 | 0 | 1.5 | 1 | n/a | yes, 5.8, 1 |"));
    assert_verdict(md, "(e) dense versus MoE", "not testable");
}

/* planned runs that never started and a run still training are reported, and mark verdicts provisional */
static void test_missing_and_unfinished_runs_are_reported(void **state) {
    (void)state;
    new_suite("partial");
    make_run("partial", "suite/moe_nobos-seed1", EARLY, "n_layer = 4\nseed = 1\n");
    write_text("partial", "suite/moe_nobos-seed2.conf", "n_layer = 4\nseed = 2\n"); /* planned only */
    make_dir("partial", "suite/moe_nobos-seed1337");                               /* started, no summary */
    write_configs("partial", "suite/moe_nobos-seed1337", "n_layer = 4\nseed = 1337\n");
    write_train("partial", "suite/moe_nobos-seed1337");
    const char *md = report("partial");
    assert_non_null(strstr(md, "| moe_nobos | moe_nobos-seed2 | missing | seed = 2 |"));
    assert_non_null(strstr(md, "| moe_nobos | moe_nobos-seed1337 | unfinished (no summary.json) | seed = 1337 | 400 |"));
    assert_non_null(strstr(md, "1 of 3 runs finished."));
    assert_verdict(md, "(a) emerges early", "reproduced");
    assert_non_null(strstr(md, "Provisional: 2 of the runs this claim reads have not finished"));
}

/* a malformed summary.json is one line naming the file (and the key), and the old report survives */
static void test_malformed_summary_is_one_line_naming_the_file(void **state) {
    (void)state;
    char path[512], err[ST_ERR_LEN], text[256];
    new_suite("bad");
    make_seeds("bad", EARLY, EARLY, EARLY);
    write_text("bad", "report.md", "the previous report\n");
    write_text("bad", "suite/moe_nobos-seed2/summary.json", "{\"total_steps\": 400, ");
    suite_path(path, "bad", "suite");
    assert_int_equal(report_suite(path, NULL, err), -1);
    assert_non_null(strstr(err, "moe_nobos-seed2/summary.json"));
    assert_null(strchr(err, '\n'));
    write_text("bad", "suite/moe_nobos-seed2/summary.json",
               "{\"total_steps\":400,\"sink_rate_2plus_30_final\":\"high\",\"sink_rate_2plus_30_emergence_step\":null,"
               "\"sink_rate_2plus_30_emergence_frac\":null,\"sink_rate_2plus_30_emergence_loss\":null}");
    assert_int_equal(report_suite(path, NULL, err), -1);
    assert_non_null(strstr(err, "moe_nobos-seed2/summary.json: key 'sink_rate_2plus_30_final': expected a number or null, found a string"));
    assert_null(strchr(err, '\n'));
    suite_path(path, "bad", "report.md");
    fixture_read_text(path, text, sizeof text);
    assert_string_equal(text, "the previous report\n");
    /* a suite directory that does not exist is an error too, not an empty report */
    suite_path(path, "bad", "no_such_suite");
    assert_int_equal(report_suite(path, NULL, err), -1);
    assert_non_null(strstr(err, "no_such_suite"));
}

int main(void) {
    if (fixture_make_tmpdir(dir, sizeof dir, "sinktrace_suite")) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_all_early_sinks_reproduce_every_claim),
        cmocka_unit_test(test_no_seed_with_a_sink_is_not_reproduced),
        cmocka_unit_test(test_one_seed_of_three_or_late_sinks_are_mixed),
        cmocka_unit_test(test_sink_logits_are_read_from_probes_jsonl),
        cmocka_unit_test(test_dense_without_a_sink_makes_d_and_e_mixed),
        cmocka_unit_test(test_contradicting_runs_are_not_reproduced),
        cmocka_unit_test(test_bos_runs_with_a_sink_on_bos_only_have_a_sink),
        cmocka_unit_test(test_bos_runs_with_a_sink_on_natural_only_have_none),
        cmocka_unit_test(test_missing_and_unfinished_runs_are_reported),
        cmocka_unit_test(test_malformed_summary_is_one_line_naming_the_file),
    };
    int rc = cmocka_run_group_tests_name("suite", tests, NULL, NULL);
    if (fixture_remove_dir(dir) != 0) return 1;
    return rc;
}
