/* tests/test_dist.c: data parallelism (train/dist.h). Always: the batch slices of the ranks are
 * disjoint and cover the batch, the loader makes the slicing equal to smaller micro-batches, and a
 * batch the ranks cannot share is an error. Built with `make MPI=1` also, through mpirun -np 2: the
 * loss curve equals the single process's, resume works across a change of rank count, and bin/train
 * rejects a batch_size the rank count does not divide. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/util.h"
#include "../data/loader.h"
#include "../train/checkpoint.h"
#include "../train/config.h"
#include "../train/dist.h"
#include "../train/trainer.h"
#include "fixtures.h"

static char dir[64];      /* this test's temporary directory */
static char data_dir[128]; /* a tiny prepared data directory inside it */

static void test_slices_are_disjoint_and_cover_the_batch(void **state) {
    (void)state;
    for (int B = 1; B <= 48; B++)
        for (int size = 1; size <= B; size++) {
            if (B % size) continue;
            int next = 0; /* the slices, in rank order, must tile 0..B-1 exactly */
            for (int r = 0; r < size; r++) {
                int first, count;
                dist_slice(B, r, size, &first, &count);
                assert_int_equal(first, next);
                assert_int_equal(count, B / size);
                next = first + count;
            }
            assert_int_equal(next, B);
        }
}

static void test_indivisible_batch_is_an_error(void **state) {
    (void)state;
    char err[ST_ERR_LEN];
    assert_int_equal(dist_check_batch(8, 4, err), 0);
    assert_int_equal(dist_check_batch(8, 1, err), 0);
    assert_int_equal(dist_check_batch(6, 4, err), -1);
    assert_non_null(strstr(err, "batch_size: expected a multiple of the 4 MPI ranks, found 6"));
}

/* what makes N ranks equal one process: the global batch of B windows that every rank draws is the
 * same as N successive batches of B/N, so rank r's slice is the r-th of those smaller micro-batches */
static void test_slices_are_the_single_process_micro_batches(void **state) {
    (void)state;
    char err[ST_ERR_LEN];
    enum { B = 6, T = 16, N = 3 };
    Loader whole, parts;
    assert_int_equal(loader_open(&whole, data_dir, T, BOS_DOC, 11, err), 0);
    assert_int_equal(loader_open(&parts, data_dir, T, BOS_DOC, 11, err), 0);
    int in_w[B * T], tg_w[B * T], in_p[B * T], tg_p[B * T];
    for (int step = 0; step < 3; step++) {
        loader_train_batch(&whole, in_w, tg_w, B);
        for (int r = 0; r < N; r++) {
            int first, count;
            dist_slice(B, r, N, &first, &count);
            loader_train_batch(&parts, in_p, tg_p, count);
            assert_memory_equal(in_p, in_w + first * T, sizeof(int) * count * T);
            assert_memory_equal(tg_p, tg_w + first * T, sizeof(int) * count * T);
        }
    }
    loader_close(&whole);
    loader_close(&parts);
}

#ifdef ST_MPI
/* ------------------------------------------------------------------------------------------------ */
/* bin/train under mpirun (only in `make MPI=1` builds) */

/* the single-copy mode of shared memory (CMA) is refused inside many containers: plain copies */
#define MPIRUN                                                                                          \
    "mpirun --allow-run-as-root --oversubscribe --bind-to none --mca btl_vader_single_copy_mechanism none " \
    "-np 2 "

/* a tiny MoE config file with gradient accumulation, evaluation, probes and checkpoints on */
static void write_tiny_config(const char *path, const char *run_name) {
    char err[ST_ERR_LEN];
    TrainConfig c;
    config_defaults(&c);
    const char *kv[][2] = {{"d_model", "16"},  {"n_layer", "2"},      {"n_head", "2"},       {"n_kv_head", "1"},
                           {"n_expert", "4"},  {"top_k", "2"},        {"d_ff", "16"},        {"seq_len", "16"},
                           {"batch_size", "4"}, {"grad_accum", "2"},  {"steps", "6"},        {"warmup_steps", "2"},
                           {"lr", "0.01"},     {"grad_clip", "0.5"},  {"eval_every", "3"},   {"eval_batches", "2"},
                           {"log_every", "1"}, {"ckpt_every", "3"},   {"threads", "1"},      {"out_dir", dir},
                           {"probe_n", "4"},   {"probe_len", "16"},   {"data_dir", data_dir}, {"run_name", run_name},
                           {"aux_loss_coef", "0.01"}};
    for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++)
        assert_int_equal(config_set(&c, kv[i][0], kv[i][1], "test", err), 0);
    assert_int_equal(config_validate(&c, err), 0);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(config_write(&c, f, path, err), 0);
    fclose(f);
}

/* runs a shell command with stdout discarded and stderr into <dir>/stderr.txt; its exit code */
static int run(const char *command) {
    char line[2048];
    snprintf(line, sizeof line, "%s > /dev/null 2> %s/stderr.txt", command, dir);
    int status = system(line);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static char *read_text(const char *path) {
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char *text = st_calloc(1 << 20, 1);
    size_t n = fread(text, 1, (1 << 20) - 1, f);
    text[n] = 0;
    fclose(f);
    return text;
}

/* runs a command that must succeed; shows its stderr when it does not */
static void run_ok(const char *command) {
    int code = run(command);
    if (code != 0) {
        char path[300];
        snprintf(path, sizeof path, "%s/stderr.txt", dir);
        char *text = read_text(path);
        fprintf(stderr, "%s: exit code %d\n%s", command, code, text);
        free(text);
    }
    assert_int_equal(code, 0);
}

/* the largest |a - b| / (1 + |b|) over the numbers of two JSON values of the same shape */
static double max_rel_diff(const cJSON *a, const cJSON *b) {
    if (cJSON_IsNumber(a)) {
        assert_true(cJSON_IsNumber(b));
        return fabs(a->valuedouble - b->valuedouble) / (1.0 + fabs(b->valuedouble));
    }
    assert_true(cJSON_IsArray(a) && cJSON_IsArray(b));
    assert_int_equal(cJSON_GetArraySize(a), cJSON_GetArraySize(b));
    double worst = 0;
    for (int i = 0; i < cJSON_GetArraySize(a); i++)
        worst = fmax(worst, max_rel_diff(cJSON_GetArrayItem(a, i), cJSON_GetArrayItem(b, i)));
    return worst;
}

/* Compares two train.jsonl files line by line: the same steps and keys, every number within rel_tol
 * (relative to 1 + |value|); the timing fields and the keys in `skip` (NULL-terminated) excepted. */
static void assert_logs_close(const char *run_a, const char *run_b, double rel_tol, const char *const *skip) {
    char path[300];
    snprintf(path, sizeof path, "%s/%s/train.jsonl", dir, run_a);
    char *text_a = read_text(path);
    snprintf(path, sizeof path, "%s/%s/train.jsonl", dir, run_b);
    char *text_b = read_text(path);
    char *save_a, *save_b, *la = strtok_r(text_a, "\n", &save_a), *lb = strtok_r(text_b, "\n", &save_b);
    int lines = 0;
    double worst = 0;
    for (; la && lb; la = strtok_r(NULL, "\n", &save_a), lb = strtok_r(NULL, "\n", &save_b), lines++) {
        cJSON *ja = cJSON_Parse(la), *jb = cJSON_Parse(lb);
        assert_true(ja && jb);
        assert_int_equal(cJSON_GetArraySize(ja), cJSON_GetArraySize(jb));
        for (cJSON *item = ja->child; item; item = item->next) {
            int skipped = !strcmp(item->string, "tok_per_s") || !strcmp(item->string, "ms_per_step");
            for (const char *const *k = skip; k && *k; k++) skipped |= !strcmp(item->string, *k);
            if (skipped) continue;
            double d = max_rel_diff(item, cJSON_GetObjectItemCaseSensitive(jb, item->string));
            if (d > rel_tol) fprintf(stderr, "line %d, %s: relative difference %.3g\n", lines + 1, item->string, d);
            assert_true(d <= rel_tol);
            worst = fmax(worst, d);
        }
        cJSON_Delete(ja);
        cJSON_Delete(jb);
    }
    assert_true(la == NULL && lb == NULL); /* the same number of lines */
    assert_int_equal(lines, 6);          /* one per step */
    printf("        %s vs %s: largest relative difference %.2g over %d lines\n", run_a, run_b, worst, lines);
    free(text_a);
    free(text_b);
}

/* The tolerance of the comparisons: the ranks' gradients are summed by MPI_Allreduce in another order
 * than one process accumulates its micro-batches (and the loss means are summed in another order), so
 * the results differ in the last bits: measured 5e-8 to 8e-8 relative over six steps here.
 * A real error (a wrong slice, a missing 1/N) changes the losses by 1e-2 or more. */
#define REL_TOL 1e-5

/* np 2 computes what one process computes with the same global batch (batch_size 4 x grad_accum 2:
 * the same 8 windows per step, in the same order). The load-balancing loss is on (0.01): the ranks sum
 * their routing counts, so it is the whole micro-batch's, not a mean of the slices'. */
static void test_np2_matches_one_process(void **state) {
    (void)state;
    char conf[256], cmd[1024];
    snprintf(conf, sizeof conf, "%s/tiny.conf", dir);
    write_tiny_config(conf, "np2");
    snprintf(cmd, sizeof cmd, MPIRUN "bin/train --config %s", conf);
    run_ok(cmd);
    snprintf(cmd, sizeof cmd, "bin/train --config %s --run_name np1", conf);
    run_ok(cmd);
    assert_logs_close("np2", "np1", REL_TOL, NULL);
    /* rank 0 alone wrote the run directory: one report, probes and the final checkpoint */
    char path[300];
    snprintf(path, sizeof path, "%s/np2/report.md", dir);
    assert_int_equal(access(path, F_OK), 0);
    snprintf(path, sizeof path, "%s/np2", dir);
    char ckpt[400];
    ckpt_path(ckpt, sizeof ckpt, path, 6);
    assert_int_equal(access(ckpt, F_OK), 0);
}

/* Any rank count computes the same step for the same batch_size (load-balancing loss on): 3 steps
 * in one process, then 3 more under mpirun -np 2 from its checkpoint, equal a whole run in one
 * process. */
static void test_resume_with_another_rank_count(void **state) {
    (void)state;
    char err[ST_ERR_LEN], conf[256], cmd[1024], run_dir[256];
    snprintf(conf, sizeof conf, "%s/resume.conf", dir);
    write_tiny_config(conf, "whole");
    snprintf(cmd, sizeof cmd, "bin/train --config %s", conf);
    run_ok(cmd);

    TrainConfig c;
    config_defaults(&c);
    assert_int_equal(config_load_file(&c, conf, err), 0);
    assert_int_equal(config_set(&c, "run_name", "halves", "test", err), 0);
    assert_int_equal(config_validate(&c, err), 0);
    snprintf(run_dir, sizeof run_dir, "%s/halves", dir);
    Trainer t;
    assert_int_equal(trainer_open(&t, &c, run_dir, RUN_NEW, err), 0);
    assert_int_equal(trainer_run(&t, 3, err), 0);
    trainer_close(&t);
    snprintf(cmd, sizeof cmd, MPIRUN "bin/train --resume %s", run_dir);
    run_ok(cmd);
    assert_logs_close("halves", "whole", REL_TOL, NULL);
}

static void test_bin_train_rejects_indivisible_batch(void **state) {
    (void)state;
    char conf[256], cmd[1024], path[300];
    snprintf(conf, sizeof conf, "%s/odd.conf", dir);
    write_tiny_config(conf, "odd");
    snprintf(cmd, sizeof cmd, MPIRUN "bin/train --config %s --batch_size 3", conf);
    assert_int_equal(run(cmd), 2);
    snprintf(path, sizeof path, "%s/stderr.txt", dir);
    char *text = read_text(path);
    const char *want = "error: batch_size: expected a multiple of the 2 MPI ranks, found 3";
    char *hit = strstr(text, want);
    assert_non_null(hit);
    assert_null(strstr(hit + 1, want)); /* said once, by rank 0 */
    free(text);
    snprintf(path, sizeof path, "%s/odd", dir);
    assert_int_equal(access(path, F_OK), -1); /* nothing was written */
}
#endif

int main(void) {
    if (fixture_make_tmpdir(dir, sizeof dir, "sinktrace_dist")) return 1;
    snprintf(data_dir, sizeof data_dir, "%s/data", dir);
    if (fixture_tiny_data(data_dir)) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slices_are_disjoint_and_cover_the_batch),
        cmocka_unit_test(test_indivisible_batch_is_an_error),
        cmocka_unit_test(test_slices_are_the_single_process_micro_batches),
#ifdef ST_MPI
        cmocka_unit_test(test_np2_matches_one_process),
        cmocka_unit_test(test_resume_with_another_rank_count),
        cmocka_unit_test(test_bin_train_rejects_indivisible_batch),
#endif
    };
    int rc = cmocka_run_group_tests_name("dist", tests, NULL, NULL);
    if (fixture_remove_dir(dir) != 0) return 1;
    return rc;
}
