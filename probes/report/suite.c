/* probes/report/suite.c: the experiment suite's claim-by-claim report (see suite.h). Every verdict comes from
 * the rules table below, applied to numbers read from the run directories; the report prints the
 * rules and the numbers next to each verdict. */
#include "suite.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../common/binfile.h"
#include "../../common/util.h"
#include "../metrics.h"
#include "figures.h"
#include "plot.h"
#include "report.h"
#include "runlog.h"

/* ---------------------------------------------------------------- the pre-registered rules */

/* Fixed before any suite result was seen; never tune them to an outcome. Metric names are
 * docs/SCIENCE.md's; the thresholds are ours (the paper gives no numbers for "early" or
 * "concentrated"). */
enum { R_SINK_FINAL, R_SINK_BOS, R_EARLY_FRAC, R_RHO_JUMP, R_KAPPA_GAP, R_VARIANT_LIFT, R_C2_FINAL, R_DSTAR_MAX, R_C2_RISE, N_RULES };
static const struct {
    const char *name;
    double value;
    const char *meaning;
} rules[N_RULES] = {
    [R_SINK_FINAL] = {"sink", 0,
                      "a run trained without BOS HAS A P0 SINK when summary.json (the natural probe variant) gives an "
                      "emergence step for sink_rate_2plus_30 (share of heads in layers >= 2 with a_p0 > 0.3) and its "
                      "final value is above this"},
    [R_SINK_BOS] = {"sink_bos", 0,
                    "a run TRAINED WITH BOS (config bos not none: moe_bos, dense_bos) is judged on the bos probe "
                    "variant (the held-out windows with BOS in front), where a BOS model's sink sits (on BOS, at "
                    "position 0); the natural variant is out of distribution for it. It HAS A SINK (on BOS) when "
                    "sink_rate_2plus_30 of its final bos-variant probe is above this. Its lift, rho_2 and emergence "
                    "step are the bos variant's too; the emergence step (summary.json's definition, applied to the "
                    "bos rows) and rho_2's step-0 ratio only when the bos variant was probed at every scheduled "
                    "step (bin/train does so for a BOS-trained run)"},
    [R_EARLY_FRAC] = {"early", 0.25, "(a) the sink emerged EARLY when its emergence step is at most this share of the run"},
    [R_RHO_JUMP] = {"rho_jump", 2,
                    "(b) a rho jump within the first two blocks: rho at residual point 2 (after block 1) at the final "
                    "probe is at least this times its step-0 value"},
    [R_KAPPA_GAP] = {"kappa_gap", 0.3,
                     "(b) P0 is a fixed vector by point 2: kappa_p0 at point 2 exceeds kappa at T/2 (kappa_mid) at "
                     "point 2 by at least this, at the final probe"},
    [R_VARIANT_LIFT] = {"variant_lift", 3,
                        "(b) no semantic cue needed: on random, shuffled and random-first probe inputs the attention "
                        "on P0 over layers >= 2 is at least this times chance(T)"},
    [R_C2_FINAL] = {"c2_final", 0.5, "(c) the long run's final C2 is at least this"},
    [R_DSTAR_MAX] = {"dstar_max", 2, "(c) the long run's final formation depth d* is at most this (in blocks)"},
    [R_C2_RISE] = {"c2_rise", 0.02,
                   "(c) C2 rises over the second half: its mean over the probes of the last quarter of the run minus "
                   "its mean over the probes of the third quarter is at least this"},
};

/* how the per-run tests combine into each claim's verdict */
static const char *const combine_rules[] = {
    "A condition with seeds has a sink when more than half of its finished seeds have one.",
    "(a) reproduced: every finished moe_nobos seed has a sink that emerged early; not reproduced: no seed has a "
    "sink; mixed: anything between.",
    "(b) over the no-BOS runs with a sink (moe_nobos seeds, moe_nobos_long, dense_nobos): reproduced if every one "
    "passes all three (b) tests, not reproduced if none does, mixed otherwise; not testable when no no-BOS run "
    "has a sink.",
    "(c) on moe_nobos_long: reproduced if it passes all three (c) tests, not reproduced if it passes none, mixed "
    "otherwise; not testable when it has no sink.",
    "(d) per model (MoE, dense): the BOS pair agrees with the paper when the no-BOS condition has a sink, "
    "disagrees when only the BOS condition has one (on BOS, rule sink_bos), is not testable when neither has; "
    "reproduced if every testable pair agrees, not reproduced if every one disagrees, mixed otherwise.",
    "(e) per BOS setting: dense and MoE agree when both have a sink (the BOS conditions on BOS, rule sink_bos), "
    "disagree when only one has; not testable when neither has; reproduced / not reproduced / mixed as in (d).",
    "(f) each control (window_nobos, sinklogit_nobos, gate_nobos) behaves as predicted when it has no P0 sink "
    "while moe_nobos has one; reproduced if every finished control does, not reproduced if none does, mixed "
    "otherwise; not testable when moe_nobos has no sink.",
    "Any claim whose runs have not finished is not judged yet (runs missing).",
};

/* ---------------------------------------------------------------- conditions and runs */

enum { C_MOE_NOBOS, C_LONG, C_MOE_BOS, C_DENSE_NOBOS, C_DENSE_BOS, C_WINDOW, C_SINKLOGIT, C_GATE, N_COND };
static const struct {
    const char *name, *what;
} conditions[N_COND] = {
    [C_MOE_NOBOS] = {"moe_nobos", "MoE, no BOS, over seeds"},
    [C_LONG] = {"moe_nobos_long", "moe_nobos with a longer budget"},
    [C_MOE_BOS] = {"moe_bos", "MoE, BOS at position 0"},
    [C_DENSE_NOBOS] = {"dense_nobos", "dense, no BOS (the default run)"},
    [C_DENSE_BOS] = {"dense_bos", "dense, BOS at position 0"},
    [C_WINDOW] = {"window_nobos", "control: sliding-window attention"},
    [C_SINKLOGIT] = {"sinklogit_nobos", "control: learned per-head sink logit"},
    [C_GATE] = {"gate_nobos", "control: sigmoid output gate"},
};

#define SUITE_MAX_RUNS 64
#define SUITE_MAX_LAYERS 64

typedef enum { RUN_MISSING, RUN_UNFINISHED, RUN_DONE } RunState;
static const char *const state_names[] = {"missing", "unfinished (no summary.json)", "finished"};

/* the variants of probes.jsonl that carry no semantic cue at P0 (claim b) */
enum { N_VARIANTS = 3 };
static const char *const cue_free_variants[N_VARIANTS] = {"random", "shuffled", "random_first"};

/* one run of the suite and the numbers the claims need (NaN where absent) */
typedef struct {
    char name[256];
    int cond; /* index into conditions, -1 for a run that is not part of the suite's claims */
    RunState state;
    Run run;
    RunConfig conf; /* <suite>/<run>.conf, else the run's config.txt */
    int has_conf;
    double steps, tokens, train_seconds, wall_seconds, val_loss;
    /* a run trained with BOS is judged on the bos probe variant (rule sink_bos): has_sink and the
     * numbers after it down to rho2_jump, and layer_lift, are then the bos variant's, and nat_* keep
     * its natural-variant ones; bos_probes counts its bos rows, bos_every_step says whether every
     * natural probe step has one */
    int bos_trained, bos_probes, bos_every_step, nat_has_sink;
    double nat_sink_rate_2plus, nat_lift2;
    int has_sink;
    double emerge_step, emerge_frac, emerge_loss, sink_rate_2plus;
    double lift2, rho2, rho2_0, rho2_jump, kappa2_p0, kappa2_mid, C2, dstar, c2_q3, c2_q4;
    double sink_k1, sink_mid; /* sink rates on key 1 and key T/2 (a moved sink) */
    double variant_lift[N_VARIANTS];
    int L;
    double layer_lift[SUITE_MAX_LAYERS]; /* final attention on P0 per layer over chance */
    /* a run with attn_sink_logit (has_sink_logit): its learned sink logits at the last natural probe
     * (probes.jsonl's sink_logit), per layer the mean and the largest over heads (n_sink_layers = 0
     * when its probes.jsonl has none) */
    int has_sink_logit, n_sink_layers;
    double sink_logit_mean[SUITE_MAX_LAYERS], sink_logit_max[SUITE_MAX_LAYERS];
    double sink_step; /* the probe step they were read from */
} SuiteRun;

typedef struct {
    SuiteRun *run[SUITE_MAX_RUNS];
    int n, n_done;
} Condition;

typedef struct {
    char dir[1024], out[1200], out_dir[1200];
    SuiteRun runs[SUITE_MAX_RUNS];
    int n_runs;
    Condition cond[N_COND];
} Suite;

/* the verdicts, as the report writes them */
typedef enum { V_REPRODUCED, V_NOT_REPRODUCED, V_MIXED, V_NOT_TESTABLE, V_MISSING } Verdict;
static const char *const verdict_names[] = {"reproduced", "not reproduced", "mixed", "not testable",
                                            "not judged yet (runs missing)"};

/* the verdict of `agree` passes out of `tested` (tested > 0) */
static Verdict tally(int agree, int tested) {
    return agree == tested ? V_REPRODUCED : agree == 0 ? V_NOT_REPRODUCED : V_MIXED;
}

static const char *num(double v) { return report_num(v); }

/* ---------------------------------------------------------------- finding and reading the runs */

static int has_suffix(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n > k && !strcmp(s + n - k, suffix);
}

/* the condition of a run name: "moe_nobos-seed1337" and "moe_nobos" both belong to moe_nobos */
static int condition_of(const char *name) {
    for (int c = 0; c < N_COND; c++) {
        size_t k = strlen(conditions[c].name);
        if (strncmp(name, conditions[c].name, k)) continue;
        if (name[k] == 0 || !strncmp(name + k, "-seed", 5)) return c;
    }
    return -1;
}

static int is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int add_name(Suite *s, const char *name, char *err) {
    for (int i = 0; i < s->n_runs; i++)
        if (!strcmp(s->runs[i].name, name)) return 0;
    if (s->n_runs == SUITE_MAX_RUNS)
        return st_errorf(err, "%s: expected at most %d runs, found more", s->dir, SUITE_MAX_RUNS);
    snprintf(s->runs[s->n_runs++].name, sizeof s->runs[0].name, "%s", name);
    return 0;
}

/* runs in the order of the conditions table (runs of no condition last), then by name */
static int by_condition(const void *a, const void *b) {
    const char *x = ((const SuiteRun *)a)->name, *y = ((const SuiteRun *)b)->name;
    int cx = condition_of(x), cy = condition_of(y);
    cx = cx < 0 ? N_COND : cx;
    cy = cy < 0 ? N_COND : cy;
    return cx != cy ? cx - cy : strcmp(x, y);
}

/* every run the directory names: a planned run's <run>.conf, or a run directory */
static int find_runs(Suite *s, char *err) {
    DIR *d = opendir(s->dir);
    if (!d) return st_errorf(err, "%s: cannot read the suite directory (has `make experiments` run?)", s->dir);
    struct dirent *e;
    int rc = 0;
    while (!rc && (e = readdir(d))) {
        char path[1400], name[256];
        if (e->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "%s/%s", s->dir, e->d_name);
        if (has_suffix(e->d_name, ".conf")) {
            snprintf(name, sizeof name, "%.*s", (int)(strlen(e->d_name) - 5), e->d_name);
            rc = add_name(s, name, err);
        } else if (is_dir(path)) {
            rc = add_name(s, e->d_name, err);
        }
    }
    closedir(d);
    qsort(s->runs, s->n_runs, sizeof s->runs[0], by_condition);
    return rc;
}

/* summary.json's keys the suite reads: total_steps a number, the rest numbers or null (a model of
 * fewer than three layers has no sink rate over layers >= 2; a run without a sink no emergence) */
static int check_summary(const Run *r, char *err) {
    static const char *const keys[] = {"total_steps", "sink_rate_2plus_30_final", "sink_rate_2plus_30_emergence_step",
                                       "sink_rate_2plus_30_emergence_frac", "sink_rate_2plus_30_emergence_loss"};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(r->summary, keys[k]);
        int nullable = k > 0;
        if (v && (cJSON_IsNumber(v) || (nullable && cJSON_IsNull(v)))) continue;
        return st_errorf(err, "%s/summary.json: key '%s': expected a number%s, found %s", r->dir, keys[k],
                         nullable ? " or null" : "", json_kind(v));
    }
    return 0;
}

/* the last probes.jsonl row of a variant (NULL if none) */
static const cJSON *last_variant_row(const Run *r, const char *variant) {
    for (int i = r->probes.n - 1; i >= 0; i--) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(r->probes.row[i], "variant");
        if (cJSON_IsString(v) && !strcmp(v->valuestring, variant)) return r->probes.row[i];
    }
    return NULL;
}

/* a probe row's attention on P0 over layers >= 2, over chance(T) */
static double lift_2plus(const cJSON *row) { return row ? jnum(row, "a_p0_2plus") / jnum(row, "chance") : NAN; }

/* element i of a probe row's array key (NaN if absent) */
static double jat(const cJSON *row, const char *key, int i) {
    double v[SUITE_MAX_LAYERS * 2 + 1];
    if (i < 0 || i >= (int)(sizeof v / sizeof v[0])) return NAN;
    return jarr(row, key, v, i + 1) > i ? v[i] : NAN;
}

/* the mean of the natural probes' C2 whose step lies in (lo, hi] of the run's final step */
static double c2_mean_between(const Run *r, double lo, double hi) {
    double *step = run_probe_col(r, "step"), *c2 = run_probe_col(r, "C2"), end = step[r->np - 1], sum = 0;
    int n = 0;
    for (int i = 0; i < r->np; i++)
        if (step[i] > lo * end && step[i] <= hi * end && isfinite(c2[i])) sum += c2[i], n++;
    free(step);
    free(c2);
    return n ? sum / n : NAN;
}

/* the numbers of a finished run on the natural variant: emergence from summary.json, the rest from the
 * final natural probe (the compare table's headline numbers, and more) */
static void read_numbers(SuiteRun *s) {
    const Run *r = &s->run;
    Headline h = report_headline(r);
    double final = jnum(r->summary, "sink_rate_2plus_30_final");
    s->emerge_step = jnum(r->summary, "sink_rate_2plus_30_emergence_step");
    s->emerge_frac = jnum(r->summary, "sink_rate_2plus_30_emergence_frac");
    s->emerge_loss = jnum(r->summary, "sink_rate_2plus_30_emergence_loss");
    s->sink_rate_2plus = final;
    s->has_sink = isfinite(s->emerge_step) && final > rules[R_SINK_FINAL].value;
    const cJSON *first = r->probes.row[r->sel[0]], *last = r->probes.row[r->sel[r->np - 1]];
    s->lift2 = h.lift_2plus;
    s->rho2_jump = h.rho2_jump;
    s->kappa2_p0 = h.kappa2_p0;
    s->kappa2_mid = h.kappa2_mid;
    s->C2 = h.C2;
    /* residual point 2 (after block 1) is index 4 of the points 0, 0.5, 1, ... */
    s->rho2 = jat(last, "rho", 4);
    s->rho2_0 = jat(first, "rho", 4);
    s->dstar = jnum(last, "d_star");
    s->c2_q3 = c2_mean_between(r, 0.5, 0.75);
    s->c2_q4 = c2_mean_between(r, 0.75, 1.0);
    s->sink_k1 = jnum(last, "sink_rate_k1_30");
    s->sink_mid = jnum(last, "sink_rate_mid_30");
    for (int v = 0; v < N_VARIANTS; v++) s->variant_lift[v] = lift_2plus(last_variant_row(r, cue_free_variants[v]));
    s->L = r->L < SUITE_MAX_LAYERS ? r->L : SUITE_MAX_LAYERS;
    for (int l = 0; l < s->L; l++) s->layer_lift[l] = jat(last, "a_p0_layer", l) / jnum(last, "chance");
}

static int by_row_step(const void *a, const void *b) {
    double x = jnum(*(const cJSON *const *)a, "step"), y = jnum(*(const cJSON *const *)b, "step");
    return (x > y) - (x < y);
}

/* the bos-variant rows of probes.jsonl into rows[] (room for probes.n), one per step in step order (a
 * step probed twice, by a resumed run, keeps its last row, as summary.json does); returns their count */
static int bos_rows(const Run *r, const cJSON **rows) {
    int n = 0;
    for (int i = 0; i < r->probes.n; i++) {
        const cJSON *row = r->probes.row[i], *v = cJSON_GetObjectItemCaseSensitive(row, "variant");
        if (!cJSON_IsString(v) || strcmp(v->valuestring, "bos")) continue;
        int at = n;
        for (int k = 0; k < n; k++)
            if (jnum(rows[k], "step") == jnum(row, "step")) at = k;
        rows[at] = row;
        n += at == n;
    }
    qsort(rows, (size_t)n, sizeof *rows, by_row_step);
    return n;
}

/* whether every natural probe step has a bos row among rows[0..n) */
static int bos_at_every_step(const Run *r, const cJSON **rows, int n) {
    for (int j = 0; j < r->np; j++) {
        double step = jnum(r->probes.row[r->sel[j]], "step");
        int found = 0;
        for (int k = 0; k < n && !found; k++) found = jnum(rows[k], "step") == step;
        if (!found) return 0;
    }
    return n > 0;
}

/* a BOS-trained run's numbers on the bos variant (rule sink_bos), its natural ones kept in nat_*; the
 * emergence step is metrics.h's emergence_index (summary.json's) over the bos rows' sink_rate_2plus_30 */
static void read_bos_numbers(SuiteRun *s) {
    const Run *r = &s->run;
    const cJSON **rows = st_malloc(sizeof *rows * (size_t)(r->probes.n + 1));
    int n = bos_rows(r, rows);
    s->nat_has_sink = s->has_sink;
    s->nat_sink_rate_2plus = s->sink_rate_2plus;
    s->nat_lift2 = s->lift2;
    s->bos_probes = n;
    s->bos_every_step = bos_at_every_step(r, rows, n);
    const cJSON *last = n ? rows[n - 1] : NULL;
    s->sink_rate_2plus = jnum(last, "sink_rate_2plus_30");
    s->has_sink = s->sink_rate_2plus > rules[R_SINK_BOS].value;
    s->lift2 = lift_2plus(last);
    s->rho2 = jat(last, "rho", 4);
    s->rho2_0 = s->bos_every_step ? jat(rows[0], "rho", 4) : NAN;
    s->rho2_jump = s->rho2 / s->rho2_0;
    s->emerge_step = s->emerge_frac = s->emerge_loss = NAN;
    if (s->bos_every_step) {
        double *rate = st_malloc(sizeof(double) * (size_t)n);
        for (int k = 0; k < n; k++) rate[k] = jnum(rows[k], "sink_rate_2plus_30");
        int k = emergence_index(rate, n);
        if (k >= 0) {
            s->emerge_step = jnum(rows[k], "step");
            s->emerge_frac = s->emerge_step / jnum(r->summary, "total_steps");
        }
        free(rate);
    }
    for (int l = 0; l < s->L; l++) s->layer_lift[l] = jat(last, "a_p0_layer", l) / jnum(last, "chance");
    free(rows);
}

/* the learned per-head sink logits (tensors blocks.<l>.attn.sink [H]) at the run's last natural probe:
 * the prober writes them into probes.jsonl (key sink_logit [L*H]); a run probed before it did has none
 * to read, which is not an error */
static void read_sink_logits(SuiteRun *s) {
    const Run *r = &s->run;
    const cJSON *last = r->probes.row[r->sel[r->np - 1]];
    int L = r->L, H = r->H;
    if (jlen(last, "sink_logit") != L * H) return;
    double *logit = st_malloc(sizeof(double) * (size_t)L * H);
    jarr(last, "sink_logit", logit, L * H);
    s->sink_step = jnum(last, "step");
    for (int l = 0; l < L && l < SUITE_MAX_LAYERS; l++) {
        double sum = 0, top = -INFINITY;
        for (int h = 0; h < H; h++) {
            sum += logit[l * H + h];
            if (logit[l * H + h] > top) top = logit[l * H + h];
        }
        s->sink_logit_mean[l] = sum / H;
        s->sink_logit_max[l] = top;
        s->n_sink_layers = l + 1;
    }
    free(logit);
}

static void clear_numbers(SuiteRun *s) {
    s->steps = s->tokens = s->train_seconds = s->wall_seconds = s->val_loss = NAN;
    s->emerge_step = s->emerge_frac = s->emerge_loss = s->sink_rate_2plus = NAN;
    s->lift2 = s->rho2 = s->rho2_0 = s->rho2_jump = s->kappa2_p0 = s->kappa2_mid = s->C2 = s->dstar = s->c2_q3 = s->c2_q4 = NAN;
    s->sink_k1 = s->sink_mid = s->nat_sink_rate_2plus = s->nat_lift2 = NAN;
    for (int v = 0; v < N_VARIANTS; v++) s->variant_lift[v] = NAN;
}

/* loads one run: its config, its directory if it has a train.jsonl, and its numbers if finished */
static int load_run(const Suite *suite, SuiteRun *s, char *err) {
    char path[1400];
    clear_numbers(s);
    s->cond = condition_of(s->name);
    snprintf(path, sizeof path, "%s/%s.conf", suite->dir, s->name);
    int rc = runconfig_read(path, &s->conf, err);
    if (rc < 0) return -1;
    s->has_conf = rc == 0;
    snprintf(path, sizeof path, "%s/%s/train.jsonl", suite->dir, s->name);
    if (access(path, F_OK) != 0) return 0; /* planned, never started */
    snprintf(path, sizeof path, "%s/%s", suite->dir, s->name);
    if (run_load_variant(&s->run, path, "natural", err)) return -1; /* BOS runs read their bos rows below */
    if (!s->has_conf && s->run.has_cfg) {
        s->conf = s->run.cfg;
        s->has_conf = 1;
    }
    const Run *r = &s->run;
    double *step = run_train_col(r, "step");
    Headline h = report_headline(r);
    s->steps = last_finite(step, r->train.n, NULL);
    s->tokens = h.tokens;
    s->val_loss = h.val_loss;
    s->train_seconds = run_training_seconds(r);
    free(step);
    s->state = RUN_UNFINISHED;
    if (!r->summary || r->np == 0) return 0;
    if (check_summary(r, err)) return -1;
    s->wall_seconds = jnum(r->summary, "run_seconds");
    s->state = RUN_DONE;
    read_numbers(s);
    s->bos_trained = s->has_conf && !strcmp(runconfig_trained_variant(&s->conf), "bos");
    if (s->bos_trained) read_bos_numbers(s);
    const char *sink_logit = s->has_conf ? runconfig_get(&s->conf, "attn_sink_logit") : NULL;
    s->has_sink_logit = sink_logit && atoi(sink_logit);
    if (s->has_sink_logit) read_sink_logits(s);
    return 0;
}

static int load_suite(Suite *s, char *err) {
    if (find_runs(s, err)) return -1;
    for (int i = 0; i < s->n_runs; i++) {
        SuiteRun *r = &s->runs[i];
        if (load_run(s, r, err)) return -1;
        if (r->cond < 0) continue;
        Condition *c = &s->cond[r->cond];
        c->run[c->n++] = r;
        c->n_done += r->state == RUN_DONE;
    }
    return 0;
}

/* ---------------------------------------------------------------- condition summaries */

/* a double field of SuiteRun, by offset, so one function summarises any of them over seeds */
#define FIELD(name) offsetof(SuiteRun, name)
static double field(const SuiteRun *r, size_t off) { return *(const double *)((const char *)r + off); }

/* the mean of a field over a condition's finished runs, and its sample standard deviation (NaN with
 * fewer than two); returns how many finite values there were */
static int cond_mean(const Condition *c, size_t off, double *mean, double *sd) {
    double sum = 0, sq = 0;
    int n = 0;
    for (int i = 0; i < c->n; i++) {
        double v = c->run[i]->state == RUN_DONE ? field(c->run[i], off) : NAN;
        if (isfinite(v)) sum += v, n++;
    }
    *mean = n ? sum / n : NAN;
    for (int i = 0; i < c->n; i++) {
        double v = c->run[i]->state == RUN_DONE ? field(c->run[i], off) : NAN;
        if (isfinite(v)) sq += (v - *mean) * (v - *mean);
    }
    *sd = n >= 2 ? sqrt(sq / (n - 1)) : NAN;
    return n;
}

/* "mean +- sd (n of m)" over several finished runs, the value itself for one, "n/a" for none */
static const char *cond_text(const Condition *c, size_t off) {
    static char buf[8][96];
    static int k;
    char *b = buf[k++ % 8];
    double mean, sd;
    int n = cond_mean(c, off, &mean, &sd);
    if (n >= 2)
        snprintf(b, 96, "%s +- %s (%d runs)", num(mean), num(sd), n);
    else
        snprintf(b, 96, "%s", num(mean));
    return b;
}

/* how many finished runs of a condition have a sink: has_sink (as judged), or nat_has_sink (a BOS-trained
 * run's sink on the natural variant), given by offset */
static int cond_sinks_at(const Condition *c, size_t flag) {
    int n = 0;
    for (int i = 0; i < c->n; i++) n += c->run[i]->state == RUN_DONE && *(const int *)((const char *)c->run[i] + flag);
    return n;
}
static int cond_sinks(const Condition *c) { return cond_sinks_at(c, offsetof(SuiteRun, has_sink)); }

/* a condition has a sink when more than half of its finished runs have one */
static int cond_has_sink(const Condition *c) { return c->n_done > 0 && 2 * cond_sinks(c) > c->n_done; }

static const char *sink_text_at(const Condition *c, size_t flag) {
    static char buf[4][64];
    static int k;
    char *b = buf[k++ % 4];
    if (c->n_done == 0)
        snprintf(b, 64, "%s", c->n ? "not finished" : "missing");
    else if (c->n_done == 1)
        snprintf(b, 64, "%s", cond_sinks_at(c, flag) ? "yes" : "no");
    else
        snprintf(b, 64, "%d of %d runs", cond_sinks_at(c, flag), c->n_done);
    return b;
}
static const char *sink_text(const Condition *c) { return sink_text_at(c, offsetof(SuiteRun, has_sink)); }

/* the first finished run of a condition (NULL if none) */
static const SuiteRun *first_done(const Condition *c) {
    for (int i = 0; i < c->n; i++)
        if (c->run[i]->state == RUN_DONE) return c->run[i];
    return NULL;
}

/* the probe variant a condition's numbers are on (that of its first finished run) */
static const char *variant_text(const Condition *c) {
    const SuiteRun *r = first_done(c);
    if (!r) return "";
    if (!r->bos_trained) return "natural";
    return r->bos_every_step ? "bos (every probe)" : r->bos_probes ? "bos (final probe only)" : "bos (not recorded)";
}

/* ---------------------------------------------------------------- figures */

/* one curve per finished run of the given conditions, y = value(run, row) over training tokens,
 * coloured by condition; seeds after a condition's first are thinner and unnamed */
typedef double (*RowValue)(const cJSON *row);
static double row_rho2(const cJSON *row) { return jat(row, "rho", 4); }
static double row_c2(const cJSON *row) { return jnum(row, "C2"); }
static double row_dstar(const cJSON *row) { return jnum(row, "d_star"); }

typedef struct {
    FigCurve c[SUITE_MAX_RUNS];
    double *buf[SUITE_MAX_RUNS];
    int n;
} Curves;

static void add_run_curves(Curves *cv, const Suite *s, const int *conds, int n_conds, RowValue value) {
    for (int k = 0; k < n_conds; k++) {
        const Condition *c = &s->cond[conds[k]];
        int first = 1;
        for (int i = 0; i < c->n && cv->n < SUITE_MAX_RUNS; i++) {
            const Run *r = &c->run[i]->run;
            if (c->run[i]->state != RUN_DONE) continue;
            double *xy = st_malloc(sizeof(double) * (2 * r->np + 1));
            for (int j = 0; j < r->np; j++) {
                xy[j] = jnum(r->probes.row[r->sel[j]], "tokens");
                xy[r->np + j] = value(r->probes.row[r->sel[j]]);
            }
            cv->buf[cv->n] = xy;
            cv->c[cv->n++] = (FigCurve){first ? conditions[conds[k]].name : NULL, xy, xy + r->np, r->np,
                                        pl_palette(conds[k]), first ? 2.5 : 1.5, first ? 2.5 : 0};
            first = 0;
        }
    }
}

static void free_curves(Curves *cv) {
    for (int i = 0; i < cv->n; i++) free(cv->buf[i]);
    cv->n = 0;
}

static int save(PlCanvas *c, const Suite *s, const char *file, char *err) {
    char path[1400];
    snprintf(path, sizeof path, "%s/%s", s->out_dir, file);
    int rc = pl_save_png(c, path, err);
    pl_canvas_free(c);
    return rc;
}

static const int all_conds[N_COND] = {C_MOE_NOBOS, C_LONG, C_MOE_BOS, C_DENSE_NOBOS, C_DENSE_BOS, C_WINDOW, C_SINKLOGIT, C_GATE};

/* one panel over every condition: the value of each run's natural probes over training tokens */
static int fig_over_steps(const Suite *s, RowValue value, const FigPanel *p, const char *file, char *err) {
    Curves cv = {.n = 0};
    add_run_curves(&cv, s, all_conds, N_COND, value);
    PlCanvas c;
    pl_canvas_init(&c, 1100, 520);
    fig_curves_panel(&c, 0, 0, 1100, 520, 250, cv.c, cv.n, p);
    free_curves(&cv);
    return save(&c, s, file, err);
}

/* C2 and d* over training tokens: the long run, with the moe_nobos seeds for reference */
static int fig_concentration_suite(const Suite *s, char *err) {
    static const int conds[2] = {C_LONG, C_MOE_NOBOS};
    PlCanvas c;
    pl_canvas_init(&c, 1400, 480);
    Curves cv = {.n = 0};
    add_run_curves(&cv, s, conds, 2, row_c2);
    FigPanel p = {"C2: share of P0's log-norm growth by block 1", "training tokens", "C2", NAN, NULL, 0};
    fig_curves_panel(&c, 0, 0, 700, 480, 0, cv.c, cv.n, &p);
    free_curves(&cv);
    add_run_curves(&cv, s, conds, 2, row_dstar);
    FigPanel q = {"Formation depth d*", "training tokens", "d* (blocks)", NAN, NULL, 0};
    fig_curves_panel(&c, 700, 0, 1400, 480, 200, cv.c, cv.n, &q);
    free_curves(&cv);
    return save(&c, s, "suite_concentration.png", err);
}

/* the final attention on P0 per layer over chance, seed-averaged, one line per condition */
static int fig_layers(const Suite *s, char *err) {
    FigCurve curves[N_COND];
    double x[N_COND][SUITE_MAX_LAYERS], y[N_COND][SUITE_MAX_LAYERS];
    char label[N_COND][96];
    int n = 0;
    for (int k = 0; k < N_COND; k++) {
        const Condition *c = &s->cond[k];
        int L = 0;
        for (int i = 0; i < c->n; i++)
            if (c->run[i]->state == RUN_DONE && c->run[i]->L > L) L = c->run[i]->L;
        if (L == 0) continue;
        for (int l = 0; l < L; l++) {
            double sd;
            x[n][l] = l;
            cond_mean(c, FIELD(layer_lift) + sizeof(double) * l, &y[n][l], &sd);
        }
        const SuiteRun *r = first_done(c);
        snprintf(label[n], sizeof label[n], "%s%s", conditions[k].name, r->bos_trained ? " (bos)" : "");
        curves[n] = (FigCurve){label[n], x[n], y[n], L, pl_palette(k), 2.5, 4};
        n++;
    }
    PlCanvas c;
    pl_canvas_init(&c, 1100, 520);
    FigPanel p = {"Final attention on P0 per layer, mean over seeds (BOS runs: bos variant)", "layer", "attention on P0 / chance", 1, "chance", 1};
    fig_curves_panel(&c, 0, 0, 1100, 520, 250, curves, n, &p);
    return save(&c, s, "suite_layers.png", err);
}

static int draw_figures(const Suite *s, int *have_long, char *err) {
    FigPanel lift = {"Attention on P0 in layers >= 2, over chance", "training tokens", "lift (1 = chance)", 1, "chance", 0};
    FigPanel rho = {"rho at residual point 2 (after block 1)", "training tokens", "rho_2", 1, "rho = 1", 0};
    *have_long = s->cond[C_LONG].n_done > 0;
    if (fig_over_steps(s, lift_2plus, &lift, "suite_lift.png", err) || fig_over_steps(s, row_rho2, &rho, "suite_rho.png", err))
        return -1;
    if (*have_long && fig_concentration_suite(s, err)) return -1;
    return fig_layers(s, err);
}

/* ---------------------------------------------------------------- report sections */

/* the verdict and why; provisional when some of the runs the claim reads (conditions conds) have not
 * finished */
static void verdict_line(FILE *f, const Suite *s, Verdict v, const char *why, const int *conds, int n) {
    int open = 0;
    for (int k = 0; k < n; k++) open += s->cond[conds[k]].n - s->cond[conds[k]].n_done;
    fprintf(f, "**Verdict: %s.** %s", verdict_names[v], why);
    if (open && v != V_MISSING)
        fprintf(f, " Provisional: %d of the runs this claim reads %s not finished; the verdict may change when %s.",
                open, open == 1 ? "has" : "have", open == 1 ? "it does" : "they do");
    fprintf(f, "\n\n");
}

/* the claim's sentence on toy scale versus the paper, chosen by its verdict: `agrees` when it was
 * reproduced or mixed, `differs` when not reproduced, `untestable` when not testable (nothing while
 * runs are missing) */
static void toy_scale(FILE *f, Verdict v, const char *agrees, const char *differs, const char *untestable) {
    const char *text = v == V_REPRODUCED || v == V_MIXED ? agrees : v == V_NOT_REPRODUCED ? differs
                       : v == V_NOT_TESTABLE ? untestable : NULL;
    if (text) fprintf(f, "Toy scale versus the paper: %s\n\n", text);
}

/* the config keys of run r whose values differ from the reference config (run_name, out_dir aside) */
static void config_differences(FILE *f, const SuiteRun *r, const RunConfig *ref) {
    if (!r->has_conf || !ref) {
        fprintf(f, "n/a");
        return;
    }
    int n = 0;
    for (int k = 0; k < r->conf.n; k++) {
        const char *key = r->conf.key[k], *v = runconfig_get(ref, key);
        if (!strcmp(key, "run_name") || !strcmp(key, "out_dir") || (v && !strcmp(v, r->conf.value[k]))) continue;
        fprintf(f, "%s%s = %s", n++ ? ", " : "", key, r->conf.value[k]);
    }
    if (!n) fprintf(f, "none");
}

/* the reference config: the moe_nobos run whose seed the most runs of the suite share (the default
 * run, whose seed the other conditions keep), so only the other seeds list their seed as a difference */
static const RunConfig *reference_config(const Suite *s) {
    const Condition *c = &s->cond[C_MOE_NOBOS];
    const RunConfig *best = NULL;
    int best_n = -1;
    for (int i = 0; i < c->n; i++) {
        if (!c->run[i]->has_conf) continue;
        const char *seed = runconfig_get(&c->run[i]->conf, "seed");
        int n = 0;
        for (int j = 0; j < s->n_runs && seed; j++) {
            const char *other = s->runs[j].has_conf ? runconfig_get(&s->runs[j].conf, "seed") : NULL;
            n += other && !strcmp(other, seed);
        }
        if (n > best_n) best = &c->run[i]->conf, best_n = n;
    }
    return best;
}

static void section_what_ran(FILE *f, const Suite *s) {
    const RunConfig *ref = reference_config(s);
    fprintf(f, "## What ran\n\n| condition | run | state | settings that differ from moe_nobos | steps | tokens | "
               "training time (s) | process wall time (s) | final val loss |\n|---|---|---|---|---|---|---|---|---|\n");
    double total = 0, total_train = 0;
    int done = 0, planned = 0;
    for (int i = 0; i < s->n_runs; i++) {
        const SuiteRun *r = &s->runs[i];
        planned++;
        done += r->state == RUN_DONE;
        if (isfinite(r->wall_seconds)) total += r->wall_seconds;
        if (isfinite(r->train_seconds)) total_train += r->train_seconds;
        fprintf(f, "| %s | %s | %s | ", r->cond >= 0 ? conditions[r->cond].name : "(not a suite condition)", r->name,
                state_names[r->state]);
        config_differences(f, r, ref);
        fprintf(f, " | %s | %s | %s | %s | %s |\n", num(r->steps), num(r->tokens), num(round(r->train_seconds)),
                num(round(r->wall_seconds)), num(r->val_loss));
    }
    fprintf(f, "\n%d of %d runs finished. Suite total: %.0f s (%.2f h) of process wall time and %.0f s of training "
               "steps, summed over runs (bin/sweep runs JOBS of them at once, so the elapsed time is about that sum "
               "over JOBS). Training time sums each run's logged ms_per_step; process wall time is summary.json's "
               "run_seconds (the last process only, for a resumed run).\n\n",
            done, planned, total, total / 3600, total_train);
    int missing = 0;
    for (int c = 0; c < N_COND; c++)
        if (s->cond[c].n == 0) fprintf(f, "%s%s", missing++ ? ", " : "Conditions with no run at all: ", conditions[c].name);
    if (missing) fprintf(f, ". Claims that need them are not judged.\n\n");
}

static void section_rules(FILE *f) {
    fprintf(f, "## Rules\n\nPre-registered in probes/report/suite.c before any suite result was seen, and not tuned to "
               "the outcome. Definitions and metric names are docs/SCIENCE.md's; the thresholds are ours (the paper "
               "defines neither \"early\" nor \"concentrated\").\n\n| rule | value | meaning |\n|---|---|---|\n");
    for (int i = 0; i < N_RULES; i++) fprintf(f, "| %s | %s | %s |\n", rules[i].name, num(rules[i].value), rules[i].meaning);
    fprintf(f, "\n");
    for (size_t i = 0; i < sizeof combine_rules / sizeof combine_rules[0]; i++) fprintf(f, "- %s\n", combine_rules[i]);
    fprintf(f, "\n");
}

static const char *yes_no(int v) { return v ? "yes" : "no"; }

/* (a) emergence over the moe_nobos seeds */
static Verdict claim_a(FILE *f, const Suite *s) {
    const Condition *c = &s->cond[C_MOE_NOBOS];
    fprintf(f, "## (a) The P0 sink emerges early in training\n\n");
    int sinks = 0, early = 0;
    for (int i = 0; i < c->n; i++) {
        const SuiteRun *r = c->run[i];
        if (r->state != RUN_DONE) continue;
        sinks += r->has_sink;
        early += r->has_sink && r->emerge_frac <= rules[R_EARLY_FRAC].value;
    }
    Verdict v = c->n_done == 0 ? V_MISSING : early == c->n_done ? V_REPRODUCED : sinks == 0 ? V_NOT_REPRODUCED : V_MIXED;
    char why[256];
    snprintf(why, sizeof why, "%d of %d finished moe_nobos seeds have a P0 sink; %d of them emerged within %s of the run.",
             sinks, c->n_done, early, num(rules[R_EARLY_FRAC].value));
    static const int conds[1] = {C_MOE_NOBOS};
    verdict_line(f, s, v, why, conds, 1);
    fprintf(f, "| run | sink | emergence step | share of run | val loss then | final sink_rate_2plus_30 | final lift, "
               "layers >= 2 | final rho_2 |\n|---|---|---|---|---|---|---|---|\n");
    for (int i = 0; i < c->n; i++) {
        const SuiteRun *r = c->run[i];
        if (r->state != RUN_DONE) {
            fprintf(f, "| %s | %s | | | | | | |\n", r->name, state_names[r->state]);
            continue;
        }
        fprintf(f, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", r->name, yes_no(r->has_sink),
                r->has_sink ? num(r->emerge_step) : "none", r->has_sink ? num(r->emerge_frac) : "", r->has_sink ? num(r->emerge_loss) : "",
                num(r->sink_rate_2plus), num(r->lift2), num(r->rho2));
    }
    fprintf(f, "| mean +- sd | %s | %s | %s | | %s | %s | %s |\n\n", sink_text(c), cond_text(c, FIELD(emerge_step)),
            cond_text(c, FIELD(emerge_frac)), cond_text(c, FIELD(sink_rate_2plus)), cond_text(c, FIELD(lift2)),
            cond_text(c, FIELD(rho2)));
    fprintf(f, "![lift over steps](suite_lift.png)\n\n![rho_2 over steps](suite_rho.png)\n\n");
    char agrees[320], differs[320];
    double mean_tokens, sd;
    cond_mean(c, FIELD(tokens), &mean_tokens, &sd);
    const char *tokens = num(mean_tokens);
    snprintf(agrees, sizeof agrees, "the paper traces a 30B-total MoE through its pre-training and gives no number for "
             "\"early\"; a run here is %s tokens, so \"early\" means the first quarter of a short run (our threshold).", tokens);
    snprintf(differs, sizeof differs, "no seed formed a sink within %s tokens, where the paper's model saw a full "
             "pre-training run and Gu et al.'s 60M model needed 1-2B tokens: a result about budget at this scale, not a "
             "refutation.", tokens);
    toy_scale(f, v, agrees, differs, differs);
    return v;
}

/* the three (b) tests of one run: rho jump, kappa gap, cue-free variants */
static int pass_rho(const SuiteRun *r) { return r->rho2_jump >= rules[R_RHO_JUMP].value; }
static int pass_kappa(const SuiteRun *r) { return r->kappa2_p0 - r->kappa2_mid >= rules[R_KAPPA_GAP].value; }
static int pass_variants(const SuiteRun *r) {
    for (int v = 0; v < N_VARIANTS; v++)
        if (!(r->variant_lift[v] >= rules[R_VARIANT_LIFT].value)) return 0;
    return 1;
}

/* (b) formation within blocks 0-1 without BOS or a semantic cue */
static Verdict claim_b(FILE *f, const Suite *s) {
    static const int conds[3] = {C_MOE_NOBOS, C_LONG, C_DENSE_NOBOS};
    fprintf(f, "## (b) It forms within the first two blocks, with no BOS and no semantic cue\n\n");
    int done = 0, sinks = 0, pass = 0;
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < s->cond[conds[k]].n; i++) {
            const SuiteRun *r = s->cond[conds[k]].run[i];
            if (r->state != RUN_DONE) continue;
            done++;
            sinks += r->has_sink;
            pass += r->has_sink && pass_rho(r) && pass_kappa(r) && pass_variants(r);
        }
    Verdict v = done == 0 ? V_MISSING : sinks == 0 ? V_NOT_TESTABLE : tally(pass, sinks);
    char why[320];
    if (v == V_NOT_TESTABLE)
        snprintf(why, sizeof why, "None of the %d finished no-BOS runs has a P0 sink, so where a sink forms cannot be "
                                  "judged; the numbers below say what happened at P0 instead.", done);
    else
        snprintf(why, sizeof why, "%d of the %d no-BOS runs with a sink pass all three tests (rho jump, kappa gap, "
                                  "cue-free inputs); %d finished no-BOS runs in all.", pass, sinks, done);
    verdict_line(f, s, v, why, conds, 3);
    fprintf(f, "| run | sink | rho_2 at step 0 | rho_2 final | ratio | kappa_p0 at 2 | kappa at T/2, at 2 | lift: random | "
               "lift: shuffled | lift: random-first | passes |\n|---|---|---|---|---|---|---|---|---|---|---|\n");
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < s->cond[conds[k]].n; i++) {
            const SuiteRun *r = s->cond[conds[k]].run[i];
            if (r->state != RUN_DONE) {
                fprintf(f, "| %s | %s | | | | | | | | | |\n", r->name, state_names[r->state]);
                continue;
            }
            fprintf(f, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | rho %s, kappa %s, inputs %s |\n", r->name,
                    yes_no(r->has_sink), num(r->rho2_0), num(r->rho2), num(r->rho2_jump), num(r->kappa2_p0),
                    num(r->kappa2_mid), num(r->variant_lift[0]), num(r->variant_lift[1]), num(r->variant_lift[2]),
                    yes_no(pass_rho(r)), yes_no(pass_kappa(r)), yes_no(pass_variants(r)));
        }
    fprintf(f, "\nThe lifts on random, shuffled and random-first inputs are measured at the final step.\n\n"
               "![rho_2 over steps](suite_rho.png)\n\n![lift over steps](suite_lift.png)\n\n");
    toy_scale(f, v,
              "the paper shows the circuit in trained LLMs of thousands of dimensions; here rho after block 0's "
              "attention is above 1 already at step 0 (the causal mask's own signal, docs/SCIENCE.md), so only a "
              "rise over the step-0 value counts.",
              "the sinks here did not form the way the paper describes by these tests; a toy model may reach a sink "
              "by another route, which the per-run reports (trace_norm.png, cosine.png) show.",
              "with no sink there is no circuit to locate: the causal mask marks P0 from step 0 (docs/SCIENCE.md), "
              "but at this budget nothing here turned that mark into a sink by these rules.");
    return v;
}

/* (c) concentration into blocks 0-1 over training, in the long run */
static Verdict claim_c(FILE *f, const Suite *s, int have_long) {
    const Condition *c = &s->cond[C_LONG];
    fprintf(f, "## (c) Over training it concentrates in the first two layers\n\n");
    const SuiteRun *r = NULL;
    for (int i = 0; i < c->n && !r; i++)
        if (c->run[i]->state == RUN_DONE) r = c->run[i];
    Verdict v = V_MISSING;
    char why[320] = "moe_nobos_long has not finished.";
    int p_c2 = 0, p_d = 0, p_rise = 0;
    if (r) {
        p_c2 = r->C2 >= rules[R_C2_FINAL].value;
        p_d = r->dstar <= rules[R_DSTAR_MAX].value;
        p_rise = r->c2_q4 - r->c2_q3 >= rules[R_C2_RISE].value;
        v = !r->has_sink ? V_NOT_TESTABLE : tally(p_c2 + p_d + p_rise, 3);
        if (v == V_NOT_TESTABLE)
            snprintf(why, sizeof why, "moe_nobos_long has no P0 sink, so there is no circuit to concentrate; C2 and d* "
                                      "below describe P0's norm profile only.");
        else
            snprintf(why, sizeof why, "moe_nobos_long passes %d of the three (c) tests.", p_c2 + p_d + p_rise);
    }
    static const int conds[1] = {C_LONG};
    verdict_line(f, s, v, why, conds, 1);
    if (r) {
        fprintf(f, "| run | sink | final C2 | final d* | mean C2, third quarter | mean C2, last quarter | rise | "
                   "passes |\n|---|---|---|---|---|---|---|---|\n");
        fprintf(f, "| %s | %s | %s | %s | %s | %s | %s | C2 %s, d* %s, rising %s |\n\n", r->name, yes_no(r->has_sink),
                num(r->C2), num(r->dstar), num(r->c2_q3), num(r->c2_q4), num(r->c2_q4 - r->c2_q3), yes_no(p_c2),
                yes_no(p_d), yes_no(p_rise));
    }
    if (have_long)
        fprintf(f, "![C2 and d* over steps](suite_concentration.png)\n\n");
    else
        fprintf(f, "*suite_concentration.png not drawn: moe_nobos_long has not finished.*\n\n");
    toy_scale(f, v,
              "the paper reads concentration off a model trained far longer; the long run here is a few times the "
              "default budget, so \"as the loss flattens\" means this run's own late phase.",
              "the long run is a few times the default budget, far short of the paper's; the circuit may still be "
              "moving when it ends.",
              "without a sink in the long run, C2 and d* describe P0's norm profile only (C2 is unstable when P0's "
              "norm barely grows: its denominator is then near zero).");
    return v;
}

/* the 2x2 table of {MoE, dense} x {no BOS, BOS} used by (d) and (e) */
static const int quad_2x2[4] = {C_MOE_NOBOS, C_MOE_BOS, C_DENSE_NOBOS, C_DENSE_BOS};
static void table_2x2(FILE *f, const Suite *s) {
    const int *conds = quad_2x2;
    fprintf(f, "| condition | model | BOS | probe variant | sink | final lift, layers >= 2 | final sink_rate_2plus_30 | "
               "final rho_2 | rho_2 / step 0 | emergence step | natural variant: sink, lift, sink_rate_2plus_30 |\n"
               "|---|---|---|---|---|---|---|---|---|---|---|\n");
    for (int k = 0; k < 4; k++) {
        const Condition *c = &s->cond[conds[k]];
        const SuiteRun *r = first_done(c);
        fprintf(f, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | ", conditions[conds[k]].name,
                k < 2 ? "MoE" : "dense", k % 2 ? "at P0" : "none", variant_text(c), sink_text(c),
                cond_text(c, FIELD(lift2)), cond_text(c, FIELD(sink_rate_2plus)), cond_text(c, FIELD(rho2)),
                cond_text(c, FIELD(rho2_jump)), cond_text(c, FIELD(emerge_step)));
        if (r && r->bos_trained)
            fprintf(f, "%s, %s, %s |\n", sink_text_at(c, offsetof(SuiteRun, nat_has_sink)), cond_text(c, FIELD(nat_lift2)),
                    cond_text(c, FIELD(nat_sink_rate_2plus)));
        else
            fprintf(f, "as left |\n");
    }
    fprintf(f, "\nThe BOS-trained conditions are judged on the bos probe variant (rule sink_bos: the held-out windows "
               "with BOS in front, P0 = BOS), where a BOS model's sink sits; the last column gives their numbers on "
               "the natural variant (no BOS, out of distribution for them) for the record.\n\n");
}

/* one pair's outcome: -1 missing, 0 not testable, 1 agrees with the paper, 2 disagrees */
enum { PAIR_MISSING = -1, PAIR_UNTESTABLE, PAIR_AGREES, PAIR_DISAGREES };
static const char *const pair_names[] = {"not testable (neither has a sink)", "agrees with the paper", "disagrees with the paper"};

static Verdict pairs_verdict(const int *outcome, int n) {
    int tested = 0, agree = 0, missing = 0;
    for (int i = 0; i < n; i++) {
        missing += outcome[i] == PAIR_MISSING;
        tested += outcome[i] > PAIR_UNTESTABLE;
        agree += outcome[i] == PAIR_AGREES;
    }
    if (tested) return tally(agree, tested);
    return missing ? V_MISSING : V_NOT_TESTABLE;
}

static void pair_lines(FILE *f, const char *const *labels, const int *outcome, int n) {
    for (int i = 0; i < n; i++)
        fprintf(f, "- %s: %s\n", labels[i], outcome[i] == PAIR_MISSING ? "runs missing" : pair_names[outcome[i]]);
    fprintf(f, "\n");
}

/* (d) removing BOS: the paper's P0 sink forms without BOS as with it */
static Verdict claim_d(FILE *f, const Suite *s) {
    fprintf(f, "## (d) What removing BOS does\n\n");
    static const int pairs[2][2] = {{C_MOE_NOBOS, C_MOE_BOS}, {C_DENSE_NOBOS, C_DENSE_BOS}};
    static const char *const labels[2] = {"MoE (moe_nobos vs moe_bos)", "dense (dense_nobos vs dense_bos)"};
    int outcome[2];
    for (int i = 0; i < 2; i++) {
        const Condition *nobos = &s->cond[pairs[i][0]], *bos = &s->cond[pairs[i][1]];
        if (!nobos->n_done || !bos->n_done)
            outcome[i] = PAIR_MISSING;
        else if (cond_has_sink(nobos))
            outcome[i] = PAIR_AGREES;
        else
            outcome[i] = cond_has_sink(bos) ? PAIR_DISAGREES : PAIR_UNTESTABLE;
    }
    Verdict v = pairs_verdict(outcome, 2);
    verdict_line(f, s, v, "The paper: without BOS the P0 sink still forms, on whatever token comes first (LLaMA's "
                       "layer-1 sink goes, the P0 sink re-emerges by layer 2).", quad_2x2, 4);
    pair_lines(f, labels, outcome, 2);
    table_2x2(f, s);
    fprintf(f, "![final attention on P0 per layer](suite_layers.png)\n\n![lift over steps](suite_lift.png)\n\n");
    toy_scale(f, v,
              "the paper's evidence is LLaMA3.1-8B and Qwen3-4B with and without BOS; here the same question is "
              "asked of toy runs at one budget.",
              "the runs of docs/SCIENCE.md (\"Where a sink forms at small scale\") found the same at this size: a sink "
              "that needs BOS here fits a budget too small for the no-BOS circuit and does not by itself refute it at "
              "scale.",
              "neither setting formed a sink at this budget, so what removing BOS does cannot be seen.");
    return v;
}

/* (e) dense versus MoE at each BOS setting */
static Verdict claim_e(FILE *f, const Suite *s) {
    fprintf(f, "## (e) Dense versus MoE\n\n");
    static const int pairs[2][2] = {{C_MOE_NOBOS, C_DENSE_NOBOS}, {C_MOE_BOS, C_DENSE_BOS}};
    static const char *const labels[2] = {"no BOS (moe_nobos vs dense_nobos)", "BOS (moe_bos vs dense_bos)"};
    int outcome[2];
    for (int i = 0; i < 2; i++) {
        const Condition *moe = &s->cond[pairs[i][0]], *dense = &s->cond[pairs[i][1]];
        int a = cond_has_sink(moe), b = cond_has_sink(dense);
        outcome[i] = !moe->n_done || !dense->n_done ? PAIR_MISSING : a && b ? PAIR_AGREES : a || b ? PAIR_DISAGREES : PAIR_UNTESTABLE;
    }
    Verdict v = pairs_verdict(outcome, 2);
    verdict_line(f, s, v, "The paper finds the circuit in a MoE and in dense models alike (the MLP or the experts of the "
                       "first blocks amplify P0); dense and MoE should agree.", quad_2x2, 4);
    pair_lines(f, labels, outcome, 2);
    table_2x2(f, s);
    fprintf(f, "![final attention on P0 per layer](suite_layers.png)\n\n");
    toy_scale(f, v,
              "the dense model here matches the MoE's active parameters (one SwiGLU of top_k x d_ff), not its total.",
              "the dense model matches the MoE's active parameters, not its total; at this scale the two differ in "
              "optimisation as much as in routing, so the difference may not carry to the paper's models.",
              "neither model formed a sink at this budget, so whether experts take the MLPs' role cannot be answered.");
    return v;
}

/* the learned sink logits of the sinklogit runs: a large one means the extra key took the sink's role */
static void sink_logit_lines(FILE *f, const Condition *c) {
    for (int i = 0; i < c->n; i++) {
        const SuiteRun *r = c->run[i];
        if (!r->has_sink_logit || r->state != RUN_DONE) continue;
        if (r->n_sink_layers == 0) {
            fprintf(f, "%s has no sink logits in its probes.jsonl (key sink_logit), so its learned sink logits "
                       "cannot be reported.\n\n", r->name);
            continue;
        }
        fprintf(f, "Learned sink logits of %s (probes.jsonl, step %s), per layer mean / largest over heads:", r->name,
                num(r->sink_step));
        for (int l = 0; l < r->n_sink_layers; l++)
            fprintf(f, " layer %d: %s / %s%s", l, num(r->sink_logit_mean[l]), num(r->sink_logit_max[l]),
                    l + 1 < r->n_sink_layers ? ";" : ".");
        fprintf(f, " They start at 0 (the extra key then gets the weight of one key of score 0).\n\n");
    }
}

/* (f) the controls against the moe_nobos baseline */
static Verdict claim_f(FILE *f, const Suite *s) {
    fprintf(f, "## (f) The controls\n\n");
    static const int ctrl[3] = {C_WINDOW, C_SINKLOGIT, C_GATE};
    const Condition *base = &s->cond[C_MOE_NOBOS];
    int base_sink = cond_has_sink(base), done = 0, as_predicted = 0;
    for (int k = 0; k < 3; k++) {
        const Condition *c = &s->cond[ctrl[k]];
        if (!c->n_done) continue;
        done++;
        as_predicted += !cond_has_sink(c);
    }
    Verdict v = !base->n_done || !done ? V_MISSING : !base_sink ? V_NOT_TESTABLE : tally(as_predicted, done);
    char why[320];
    if (v == V_MISSING)
        snprintf(why, sizeof why, "%s", !base->n_done ? "moe_nobos, the baseline, has not finished." : "No control has finished.");
    else if (v == V_NOT_TESTABLE)
        snprintf(why, sizeof why, "moe_nobos itself has no P0 sink (%s), so a control that also has none shows "
                                  "nothing; the numbers are given for the record.", sink_text(base));
    else
        snprintf(why, sizeof why, "%d of %d finished controls have no P0 sink (predicted: none).", as_predicted, done);
    static const int rows[4] = {C_MOE_NOBOS, C_WINDOW, C_SINKLOGIT, C_GATE};
    verdict_line(f, s, v, why, rows, 4);
    fprintf(f, "| condition | sink | final lift, layers >= 2 | final sink_rate_2plus_30 | sink rate on key 1 | sink rate "
               "on key T/2 | final rho_2 | outcome |\n|---|---|---|---|---|---|---|---|\n");
    for (int k = 0; k < 4; k++) {
        const Condition *c = &s->cond[rows[k]];
        const char *outcome = k == 0 ? "baseline" : !c->n_done ? "runs missing" : !base_sink ? "not testable"
                              : cond_has_sink(c) ? "not as predicted" : "as predicted";
        fprintf(f, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", conditions[rows[k]].name, sink_text(c),
                cond_text(c, FIELD(lift2)), cond_text(c, FIELD(sink_rate_2plus)), cond_text(c, FIELD(sink_k1)),
                cond_text(c, FIELD(sink_mid)), cond_text(c, FIELD(rho2)), outcome);
    }
    fprintf(f, "\n");
    sink_logit_lines(f, &s->cond[C_SINKLOGIT]);
    fprintf(f, "A sink rate on key 1 or T/2 above 0 would mean a control moved the sink rather than removed it. With "
               "a sliding window, queries past the window cannot see P0 at all, so its attention on P0 is low by "
               "construction.\n\n![final attention on P0 per layer](suite_layers.png)\n\n");
    toy_scale(f, v,
              "Gu et al. and Qiu et al. show these controls removing sinks in far larger models; here they are read "
              "against a toy baseline.",
              "a control that forms the sink anyway at this scale may behave differently in the far larger models "
              "of Gu et al. and Qiu et al.",
              "the controls can only remove or move a sink the baseline forms; at this budget it forms none.");
    return v;
}

/* ---------------------------------------------------------------- report_suite */

static void write_report(FILE *f, const Suite *s, int have_long) {
    fprintf(f, "# Experiment suite: the claims, one by one\n\nWritten by `bin/report --suite %s` from the run "
               "directories; nothing here is written by hand. Each claim of docs/SCIENCE.md (\"What a reproduction "
               "should show\") gets a verdict by the rules below, the numbers behind it and its figure.\n\n", s->dir);
    section_what_ran(f, s);
    section_rules(f);
    Verdict v[6];
    fprintf(f, "## Verdicts\n\n");
    /* the summary comes first in the file but needs the sections' verdicts: write the sections to a
     * memory stream, then both */
    char *body = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&body, &len);
    if (!m) {
        fprintf(stderr, "out of memory writing the suite report\n");
        exit(1);
    }
    v[0] = claim_a(m, s);
    v[1] = claim_b(m, s);
    v[2] = claim_c(m, s, have_long);
    v[3] = claim_d(m, s);
    v[4] = claim_e(m, s);
    v[5] = claim_f(m, s);
    fclose(m);
    static const char *const claims[6] = {"(a) emerges early", "(b) forms within blocks 0-1, no BOS, no cue",
                                          "(c) concentrates in the first two layers", "(d) removing BOS",
                                          "(e) dense versus MoE", "(f) the controls"};
    fprintf(f, "| claim | verdict |\n|---|---|\n");
    for (int i = 0; i < 6; i++) fprintf(f, "| %s | %s |\n", claims[i], verdict_names[v[i]]);
    fprintf(f, "\n");
    fwrite(body, 1, len, f);
    free(body);
}

/* the default report path: <suite_dir>/../report.md, and the directory the figures go to */
static void output_paths(Suite *s, const char *out_file) {
    if (out_file)
        snprintf(s->out, sizeof s->out, "%s", out_file);
    else
        snprintf(s->out, sizeof s->out, "%s/../report.md", s->dir);
    const char *slash = strrchr(s->out, '/');
    if (slash)
        snprintf(s->out_dir, sizeof s->out_dir, "%.*s", (int)(slash - s->out), s->out);
    else
        snprintf(s->out_dir, sizeof s->out_dir, ".");
}

int report_suite(const char *suite_dir, const char *out_file, char *err) {
    Suite *s = st_calloc(1, sizeof *s);
    snprintf(s->dir, sizeof s->dir, "%s", suite_dir);
    size_t n = strlen(s->dir);
    while (n > 1 && s->dir[n - 1] == '/') s->dir[--n] = 0;
    output_paths(s, out_file);
    int rc = load_suite(s, err), have_long = 0;
    if (!rc) rc = draw_figures(s, &have_long, err);
    StAtomic a;
    if (!rc) rc = st_atomic_open(&a, s->out, err);
    if (!rc) {
        write_report(a.f, s, have_long);
        if (ferror(a.f)) {
            st_atomic_abort(&a);
            rc = st_errorf(err, "%s: write failed: %s", s->out, strerror(errno));
        } else {
            rc = st_atomic_commit(&a, err);
        }
    }
    for (int i = 0; i < s->n_runs; i++) run_free(&s->runs[i].run);
    free(s);
    return rc;
}
