/* tests/test_sweep.c: bin/sweep's runner (train/sweep.h): grid expansion (names, counts, seeds,
 * variants), errors naming file:line, the skip / resume / restart decision, the GNU parallel and Slurm
 * texts, and a miniature experiment suite (three tiny runs) run end to end by bin/sweep into the comparison
 * and the suite's claim-by-claim report. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/util.h"
#include "../train/sweep.h"
#include "fixtures.h"

static char dir[64];       /* this test's temporary directory */
static char data_dir[128]; /* a tiny prepared data directory inside it */

/* writes text to <dir>/name and returns the path in a static buffer */
static const char *write_file(const char *name, const char *text) {
    static char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

/* the settings of a tiny model that trains in well under a second; steps and ckpt_every vary */
static void tiny_sweep_text(char *out, size_t size, const char *extra) {
    snprintf(out, size,
             "data_dir = %s\nd_model = 16\nn_layer = 2\nn_head = 2\nn_kv_head = 2\nn_expert = 4\ntop_k = 2\n"
             "d_ff = 16\nseq_len = 16\nbatch_size = 4\nwarmup_steps = 1\neval_every = 2\neval_batches = 1\n"
             "log_every = 1\nthreads = 1\nprobe_n = 4\nprobe_len = 16\nprobe_every = 2\n%s",
             data_dir, extra);
}

/* the name and the config of every run of a sweep */
static void load_ok(Sweep *s, const char *path) {
    char err[ST_ERR_LEN];
    if (sweep_load(s, path, err)) fail_msg("%s", err);
}

static void run_at(const Sweep *s, int i, TrainConfig *cfg, char *name) {
    char err[ST_ERR_LEN];
    assert_int_equal(sweep_run_config(s, i, cfg, name, 256, err), 0);
}

/* ------------------------------------------------------------------------------------------------ */
/* grid expansion */

static void test_grid_names_counts_and_seeds(void **state) {
    (void)state;
    char name[256];
    Sweep *s = st_malloc(sizeof *s);
    const char *path = write_file("grid.sweep", "# a comment\nsteps = 7\nwarmup_steps = 1\nlr = 0.001, 0.01\nseeds = 1, 2, 3\n");
    load_ok(s, path);
    assert_int_equal(s->n_runs, 6);
    assert_string_equal(s->name, "grid");
    char want_dir[256];
    snprintf(want_dir, sizeof want_dir, "%s/grid", dir);
    assert_string_equal(s->dir, want_dir);
    /* file order, the last axis fastest */
    const char *names[6] = {"lr0.001-seed1", "lr0.001-seed2", "lr0.001-seed3", "lr0.01-seed1", "lr0.01-seed2", "lr0.01-seed3"};
    for (int i = 0; i < 6; i++) {
        TrainConfig cfg;
        run_at(s, i, &cfg, name);
        assert_string_equal(name, names[i]);
        assert_string_equal(cfg.run_name, names[i]);
        assert_string_equal(cfg.out_dir, want_dir);
        assert_int_equal(cfg.steps, 7);
        assert_int_equal(cfg.model.seed, (uint64_t)(i % 3 + 1));
        assert_float_equal(cfg.lr, i < 3 ? 0.001 : 0.01, 1e-12);
    }
    free(s);
}

static void test_variants_add_settings_and_axes(void **state) {
    (void)state;
    char name[256];
    Sweep *s = st_malloc(sizeof *s);
    const char *path = write_file("suite.sweep", "n_expert = 8\nseeds = 1, 2\n[moe]\n[dense]\nn_expert = 1\ntop_k = 1\n"
                                                 "d_ff = 64, 128\n[moe_bos]\nbos = prepend\n");
    load_ok(s, path);
    assert_int_equal(s->n_variants, 3);
    assert_int_equal(s->n_runs, 2 + 4 + 2);
    const char *names[8] = {"moe-seed1",          "moe-seed2",           "dense-seed1-d_ff64", "dense-seed1-d_ff128",
                            "dense-seed2-d_ff64", "dense-seed2-d_ff128", "moe_bos-seed1",      "moe_bos-seed2"};
    for (int i = 0; i < 8; i++) {
        TrainConfig cfg;
        run_at(s, i, &cfg, name);
        assert_string_equal(name, names[i]);
        int dense = i >= 2 && i < 6;
        assert_int_equal(cfg.model.n_expert, dense ? 1 : 8);
        if (dense) assert_int_equal(cfg.model.d_ff, i % 2 == 0 ? 64 : 128);
        assert_int_equal(cfg.bos == 1, i >= 6); /* bos choices: none|prepend|doc */
    }
    /* a variant's settings do not leak into the variants after it */
    TrainConfig last;
    run_at(s, 7, &last, name);
    assert_int_equal(last.model.top_k, 2);
    free(s);
}

static void test_a_base_config_under_the_settings(void **state) {
    (void)state;
    char name[256], text[512];
    Sweep *s = st_malloc(sizeof *s);
    const char *base = write_file("base.conf", "steps = 11\nwarmup_steps = 2\nlr = 0.005\nweight_decay = 0.3\n");
    snprintf(text, sizeof text, "config = %s\nlr = 0.002\n", base);
    load_ok(s, write_file("based.sweep", text));
    assert_int_equal(s->n_runs, 1);
    TrainConfig cfg;
    run_at(s, 0, &cfg, name);
    assert_string_equal(name, "based"); /* no axes, no variants: the sweep's own name */
    assert_int_equal(cfg.steps, 11);
    assert_float_equal(cfg.lr, 0.002, 1e-12);
    assert_float_equal(cfg.weight_decay, 0.3, 1e-12);
    free(s);
}

/* every mistake is one line naming the file and line (or the run), the key, and what was found */
static void test_errors_name_file_and_line(void **state) {
    (void)state;
    static const struct {
        const char *text, *want1, *want2;
    } cases[] = {
        {"steps = 5\nlearning_rate = 0.1\n", "bad.sweep:2", "learning_rate"},
        {"lr = 0.001, fast\n", "bad.sweep:1", "fast"},
        {"lr = 0.001, , 0.01\n", "bad.sweep:1", "between commas"},
        {"steps = 5\n[a]\n[a]\n", "bad.sweep:3", "[a] given twice"},
        {"run_name = x\n", "bad.sweep:1", "run_name"},
        {"steps = 5\njust words\n", "bad.sweep:2", "just words"},
        {"[v]\nconfig = x.conf\n", "bad.sweep:2", "before the first [variant]"},
        {"lr = 0.1, 0.2\nlr = 0.3, 0.4\n", "bad.sweep:2", "lr: key given twice"},
        /* two runs in one directory: a value twice, or two texts of one value, or a key set twice */
        {"lr = 0.001, 0.001\n", "bad.sweep:1", "value '0.001' given twice"},
        {"lr = 0.001, 1e-3\n", "bad.sweep:1", "given twice (as '0.001' and '1e-3')"},
        {"steps = 5\nsteps = 6\n", "bad.sweep:2", "steps: key given twice"},
        {"seed = 1\nseeds = 1, 2\n", "bad.sweep:2", "seed: key given twice"},
        {"data_dir = a/b, a_b\n", "bad.sweep", "would share one directory"},
        {"n_expert = 2\ntop_k = 1, 3\n", "run top_k3", "top_k"},
    };
    Sweep *s = st_malloc(sizeof *s);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char err[ST_ERR_LEN] = "";
        assert_int_equal(sweep_load(s, write_file("bad.sweep", cases[c].text), err), -1);
        if (!strstr(err, cases[c].want1) || !strstr(err, cases[c].want2)) fail_msg("case %zu: got '%s'", c, err);
        assert_null(strchr(err, '\n'));
    }
    char err[ST_ERR_LEN];
    assert_int_equal(sweep_load(s, write_file("bad.txt", "lr = 0.1\n"), err), -1);
    assert_non_null(strstr(err, "NAME.sweep"));
    free(s);
}

/* ------------------------------------------------------------------------------------------------ */
/* running: skip, resume, restart, the emitted commands, and a miniature suite end to end */

/* runs a shell command from the repository root, its output into <dir>/name.out; returns the status */
static int shell(const char *cmd, const char *name, char *out, size_t size) {
    char full[4400], log[256];
    snprintf(log, sizeof log, "%s/%s.out", dir, name);
    snprintf(full, sizeof full, "%s > %s 2>&1", cmd, log);
    int rc = system(full);
    fixture_read_text(log, out, size);
    return rc;
}

static int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

static void test_emitted_parallel_and_slurm_texts(void **state) {
    (void)state;
    char text[1024], err[ST_ERR_LEN];
    tiny_sweep_text(text, sizeof text, "steps = 3\nlr = 0.01, 0.02\n");
    const char *path = write_file("emit.sweep", text);
    Sweep *s = st_malloc(sizeof *s);
    load_ok(s, path);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_int_equal(sweep_emit_parallel(s, f, err), 0);
    fclose(f);
    char want[1024];
    snprintf(want, sizeof want, "bin/train --config %s/emit/lr0.01.conf\nbin/train --config %s/emit/lr0.02.conf\n", dir, dir);
    assert_string_equal(buf, want);
    free(buf);
    /* the configs the commands name are written */
    snprintf(want, sizeof want, "%s/emit/lr0.02.conf", dir);
    assert_true(file_exists(want));

    f = open_memstream(&buf, &len);
    assert_int_equal(sweep_emit_slurm(s, f, err), 0);
    fclose(f);
    assert_true(strncmp(buf, "#!/bin/bash\n", 12) == 0);
    assert_non_null(strstr(buf, "#SBATCH --array=0-1\n"));
    assert_non_null(strstr(buf, "#SBATCH --cpus-per-task=1\n"));
    assert_non_null(strstr(buf, "export OMP_NUM_THREADS=$SLURM_CPUS_PER_TASK\n"));
    snprintf(want, sizeof want, "cmds=(\n  'bin/train --config %s/emit/lr0.01.conf'\n  'bin/train --config %s/emit/lr0.02.conf'\n)\n",
             dir, dir);
    assert_non_null(strstr(buf, want));
    /* every #SBATCH line comes before the first command, or Slurm ignores it */
    assert_true(strstr(buf, "#SBATCH --array") < strstr(buf, "cd \"$SLURM_SUBMIT_DIR\""));
    free(buf);
    free(s);
}

/* the decision for each state of a run directory, and the command it makes */
static void test_skip_resume_restart(void **state) {
    (void)state;
    char text[1024], err[ST_ERR_LEN], name[256], cmd[4096], out[8192], want[1024];
    tiny_sweep_text(text, sizeof text, "steps = 4\nckpt_every = 2\nkeep_ckpts = 3\nlr = 0.01, 0.02\n");
    const char *path = write_file("states.sweep", text);
    Sweep *s = st_malloc(sizeof *s);
    load_ok(s, path);
    TrainConfig a, b;
    run_at(s, 0, &a, name);
    run_at(s, 1, &b, name);
    assert_int_equal(sweep_run_state(&a), SWEEP_RUN_NEW);
    sweep_run_command(s, &a, SWEEP_RUN_NEW, "bin/train", cmd, sizeof cmd);
    snprintf(want, sizeof want, "bin/train --config %s/states/lr0.01.conf", dir);
    assert_string_equal(cmd, want);

    /* both runs trained to the end: DONE, and a second bin/sweep starts nothing */
    snprintf(cmd, sizeof cmd, "bin/sweep %s --jobs 2", path);
    assert_int_equal(shell(cmd, "states1", out, sizeof out), 0);
    assert_int_equal(sweep_run_state(&a), SWEEP_RUN_DONE);
    assert_int_equal(sweep_run_state(&b), SWEEP_RUN_DONE);
    assert_int_equal(shell(cmd, "states2", out, sizeof out), 0);
    assert_null(strstr(out, "[new]"));
    assert_null(strstr(out, "[resume]"));
    assert_non_null(strstr(out, "2 of 2 runs finished, 0 failed"));

    /* without its last checkpoint a run is PARTIAL and resumes from step 2 to the end */
    snprintf(want, sizeof want, "%s/states/lr0.01/ckpt_00000004.bin", dir);
    assert_int_equal(unlink(want), 0);
    assert_int_equal(sweep_run_state(&a), SWEEP_RUN_PARTIAL);
    sweep_run_command(s, &a, SWEEP_RUN_PARTIAL, "bin/train", cmd, sizeof cmd);
    snprintf(want, sizeof want, "bin/train --resume %s/states/lr0.01 --config %s/states/lr0.01.conf", dir, dir);
    assert_string_equal(cmd, want);

    /* a directory without a checkpoint (a run that died before its first) is EMPTY: restarted */
    snprintf(want, sizeof want, "%s/states/lr0.02", dir);
    snprintf(cmd, sizeof cmd, "rm -f %s/ckpt_*.bin", want);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(sweep_run_state(&b), SWEEP_RUN_EMPTY);
    sweep_run_command(s, &b, SWEEP_RUN_EMPTY, "bin/train", cmd, sizeof cmd);
    assert_non_null(strstr(cmd, "--config"));
    assert_non_null(strstr(cmd, "lr0.02.conf --overwrite"));

    snprintf(cmd, sizeof cmd, "bin/sweep %s --jobs 2", path);
    assert_int_equal(shell(cmd, "states3", out, sizeof out), 0);
    assert_non_null(strstr(out, "[resume] lr0.01"));
    assert_non_null(strstr(out, "[restart] lr0.02"));
    assert_non_null(strstr(out, "2 of 2 runs finished, 0 failed"));
    assert_int_equal(sweep_run_state(&a), SWEEP_RUN_DONE);
    assert_int_equal(sweep_run_state(&b), SWEEP_RUN_DONE);
    /* the resumed run logged the steps after its checkpoint, not from 0 */
    snprintf(want, sizeof want, "%s/states/lr0.01.log", dir);
    assert_true(fixture_read_text(want, out, sizeof out) > 0);
    assert_non_null(strstr(out, "resum"));

    /* the comparison plots the headline numbers against the swept learning rate */
    snprintf(want, sizeof want, "%s/states/compare.md", dir);
    assert_true(fixture_read_text(want, out, sizeof out) > 0);
    assert_non_null(strstr(out, "![headline numbers against lr](versus_lr.png)"));
    snprintf(want, sizeof want, "%s/states/versus_lr.png", dir);
    assert_true(file_exists(want));

    /* once everything is done, nothing is left to emit */
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_int_equal(sweep_emit_parallel(s, f, err), 0);
    fclose(f);
    assert_string_equal(buf, "");
    free(buf);
    free(s);
}

/* a miniature experiment suite, a no-BOS, a BOS and a sink-logit run, through bin/sweep into a comparison
 * report and the suite report */
static void test_miniature_suite_end_to_end(void **state) {
    (void)state;
    char text[1024], cmd[1024], out[8192], path[512];
    tiny_sweep_text(text, sizeof text, "steps = 6\nckpt_every = 3\nlr = 0.01\n[moe_nobos]\n[moe_bos]\nbos = prepend\n"
                                       "[sinklogit_nobos]\nattn_sink_logit = 1\n");
    const char *sweep = write_file("mini.sweep", text);
    snprintf(cmd, sizeof cmd, "bin/sweep %s --jobs 2", sweep);
    if (shell(cmd, "mini", out, sizeof out)) fail_msg("%s: %s", cmd, out);
    assert_non_null(strstr(out, "3 of 3 runs finished, 0 failed"));
    const char *runs[3] = {"moe_nobos", "moe_bos", "sinklogit_nobos"};
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/mini/%s/report.md", dir, runs[i]);
        assert_true(file_exists(path));
        snprintf(path, sizeof path, "%s/mini/%s/summary.json", dir, runs[i]);
        assert_true(file_exists(path));
    }
    snprintf(path, sizeof path, "%s/mini/compare.md", dir);
    assert_true(fixture_read_text(path, out, sizeof out) > 0);
    assert_non_null(strstr(out, "# Comparison of 3 runs"));
    assert_non_null(strstr(out, "| moe_nobos |"));
    assert_non_null(strstr(out, "| moe_bos |"));
    assert_non_null(strstr(out, "Settings that differ between the runs"));
    assert_non_null(strstr(out, "| bos |"));
    assert_non_null(strstr(out, "(compare_val_loss.png)"));
    assert_non_null(strstr(out, "## Against each setting that differs"));
    assert_non_null(strstr(out, "bos is not a number in every run: no figure against it."));
    snprintf(path, sizeof path, "%s/mini/compare_val_loss.png", dir);
    assert_true(file_exists(path));

    /* the suite's claim-by-claim report, beside the suite directory: every claim has its section, and
     * the conditions that did not run are named */
    snprintf(cmd, sizeof cmd, "bin/report --suite %s/mini", dir);
    if (shell(cmd, "mini_suite", out, sizeof out)) fail_msg("%s: %s", cmd, out);
    static char md[1 << 16];
    snprintf(path, sizeof path, "%s/report.md", dir);
    assert_true(fixture_read_text(path, md, sizeof md) > 0);
    static const char *const sections[] = {"## (a) The P0 sink emerges early", "## (b) It forms within the first two blocks",
                                           "## (c) Over training it concentrates", "## (d) What removing BOS does",
                                           "## (e) Dense versus MoE", "## (f) The controls", "## Rules", "## What ran"};
    for (int i = 0; i < 8; i++)
        if (!strstr(md, sections[i])) fail_msg("report.md lacks '%s'", sections[i]);
    assert_non_null(strstr(md, "| moe_bos | moe_bos | finished | bos = prepend |"));
    assert_non_null(strstr(md, "Conditions with no run at all: moe_nobos_long, dense_nobos"));
    /* the BOS-trained run is judged on the bos variant, which bin/train probed at every scheduled step */
    assert_non_null(strstr(md, "| moe_bos | MoE | at P0 | bos (every probe) |"));
    /* the sink-logit control's learned logits, written into probes.jsonl by bin/train's prober at its
     * last probe (step 6) */
    assert_non_null(strstr(md, "Learned sink logits of sinklogit_nobos (probes.jsonl, step 6), per layer mean / "
                               "largest over heads: layer 0: "));
    snprintf(path, sizeof path, "%s/suite_lift.png", dir);
    assert_true(file_exists(path));
}

int main(void) {
    if (fixture_make_tmpdir(dir, sizeof dir, "sinktrace_sweep")) return 1;
    snprintf(data_dir, sizeof data_dir, "%s/data", dir);
    if (fixture_tiny_data(data_dir)) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grid_names_counts_and_seeds),
        cmocka_unit_test(test_variants_add_settings_and_axes),
        cmocka_unit_test(test_a_base_config_under_the_settings),
        cmocka_unit_test(test_errors_name_file_and_line),
        cmocka_unit_test(test_emitted_parallel_and_slurm_texts),
        cmocka_unit_test(test_skip_resume_restart),
        cmocka_unit_test(test_miniature_suite_end_to_end),
    };
    int rc = cmocka_run_group_tests_name("sweep", tests, NULL, NULL);
    if (fixture_remove_dir(dir) != 0) return 1;
    return rc;
}
