/* tests/test_edges.c: the edges of docs/RELIABILITY.md, tried as a careless or hostile user would:
 * --overwrite of what is not a run, a config from a pipe, flags given twice or swallowed, sizes past
 * their ceiling, a stop before the first step, a validation split too small for the probes, a data
 * directory changed under a run, every program's --help. Most run the programs of bin/ as a shell
 * would; run from the repository root, after `make`. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../common/util.h"
#include "../data/shard.h"
#include "../data/tokenizer.h"
#include "../probes/attnmaps.h"
#include "../probes/probeset.h"
#include "../probes/report/plot.h"
#include "../train/checkpoint.h"
#include "../train/trainer.h"
#include "fixtures.h"

static char dir[64];       /* this test's temporary directory */
static char data_dir[128]; /* a tiny prepared data directory inside it */
static char out[65536];    /* what the last sh() printed, stdout and stderr */

/* runs a bash command line, its output into out[]; returns its exit code */
static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...) {
    char cmd[8192], quoted[8400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    /* bash for <(...); the command goes in single quotes, so it must hold none */
    assert_null(strchr(cmd, '\''));
    snprintf(quoted, sizeof quoted, "bash -c '%s' 2>&1", cmd);
    FILE *p = popen(quoted, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = 0;
    int status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static int exists(const char *path) { return access(path, F_OK) == 0; }

/* <dir>/<name>.conf: a tiny run named name of `steps` steps, one thread, and the lines of extra */
static void write_conf(char *conf, size_t size, const char *name, int steps, const char *extra) {
    snprintf(conf, size, "%s/%s.conf", dir, name);
    FILE *f = fopen(conf, "w");
    assert_non_null(f);
    fprintf(f,
            "d_model = 16\nn_layer = 1\nn_head = 2\nn_kv_head = 1\nn_expert = 2\ntop_k = 1\nd_ff = 16\n"
            "seq_len = 16\nbatch_size = 2\nsteps = %d\nwarmup_steps = 0\neval_every = 0\neval_batches = 1\n"
            "threads = 1\nprobe_n = 2\nprobe_len = 16\nprobe_every = 1\ndata_dir = %s\nout_dir = %s\n"
            "run_name = %s\n%s",
            steps, data_dir, dir, name, extra);
    fclose(f);
}

/* --------------------------------------------------------------------------------------------- */
/* bug 1: --overwrite deletes only a run */

static void test_overwrite_keeps_what_is_not_a_run(void **state) {
    (void)state;
    char conf[256], keep[256], thesis[512], lock[600];
    write_conf(conf, sizeof conf, "important", 1, "");
    /* a directory of the user's, with the run's name */
    snprintf(keep, sizeof keep, "%s/important", dir);
    snprintf(thesis, sizeof thesis, "%s/thesis.tex", keep);
    assert_int_equal(mkdir(keep, 0755), 0);
    fixture_write_file(thesis, "chapter 1", 9);
    assert_int_not_equal(sh("bin/train --config %s --overwrite", conf), 0);
    assert_non_null(strstr(out, "not a run of bin/train"));
    assert_true(exists(thesis));
    snprintf(lock, sizeof lock, "%s/train.lock", keep);
    assert_false(exists(lock)); /* not even a lock file was added */

    /* a real run with a file of the user's dropped into it: refused, nothing deleted */
    assert_int_equal(fixture_remove_dir(keep), 0);
    assert_int_equal(sh("bin/train --config %s", conf), 0);
    fixture_write_file(thesis, "chapter 1", 9);
    assert_int_not_equal(sh("bin/train --config %s --overwrite", conf), 0);
    assert_non_null(strstr(out, "thesis.tex is not a file of a run"));
    assert_true(exists(thesis));
    char cfg_txt[600];
    snprintf(cfg_txt, sizeof cfg_txt, "%s/config.txt", keep);
    assert_true(exists(cfg_txt));

    /* without the stray file the run is overwritten */
    assert_int_equal(unlink(thesis), 0);
    assert_int_equal(sh("bin/train --config %s --overwrite", conf), 0);
}

static void test_overwrite_does_not_follow_a_symlink(void **state) {
    (void)state;
    char conf[256], target[256], link[256], ckpt[600];
    /* a real run elsewhere, and a link to it under the name of the run being overwritten */
    write_conf(conf, sizeof conf, "elsewhere", 1, "");
    assert_int_equal(sh("bin/train --config %s", conf), 0);
    snprintf(target, sizeof target, "%s/elsewhere", dir);
    snprintf(link, sizeof link, "%s/linked", dir);
    assert_int_equal(symlink(target, link), 0);
    write_conf(conf, sizeof conf, "linked", 1, "");
    assert_int_not_equal(sh("bin/train --config %s --overwrite", conf), 0);
    assert_non_null(strstr(out, "symbolic link"));
    snprintf(ckpt, sizeof ckpt, "%s/ckpt_00000001.bin", target);
    assert_true(exists(ckpt));
}

/* --------------------------------------------------------------------------------------------- */
/* bug 2: a config from a pipe; flags given twice */

static void test_config_from_a_pipe_is_read(void **state) {
    (void)state;
    char conf[256], cfg_txt[600];
    write_conf(conf, sizeof conf, "piped", 1, "d_model = 24\n");
    /* the pipe holds the whole config; the flags keep a misread one small and out of runs/ */
    const char *guard = "--steps 1 --warmup_steps 0 --threads 1 --probe_n 2 --probe_len 16";
    assert_int_equal(sh("bin/train --config <(sed /^d_model.=.16/d %s) --out_dir %s --run_name piped --data_dir %s %s",
                        conf, dir, data_dir, guard),
                     0);
    snprintf(cfg_txt, sizeof cfg_txt, "%s/piped/config.txt", dir);
    char text[16384];
    fixture_read_text(cfg_txt, text, sizeof text);
    assert_non_null(strstr(text, "d_model         = 24 "));

    assert_int_equal(sh("sed /^d_model.=.16/d %s | bin/train --config /dev/stdin --out_dir %s --run_name stdin "
                        "--data_dir %s %s",
                        conf, dir, data_dir, guard),
                     0);
    snprintf(cfg_txt, sizeof cfg_txt, "%s/stdin/config.txt", dir);
    fixture_read_text(cfg_txt, text, sizeof text);
    assert_non_null(strstr(text, "d_model         = 24 "));
}

static void test_a_flag_given_twice_or_swallowed_is_refused(void **state) {
    (void)state;
    char conf[256], run[512];
    write_conf(conf, sizeof conf, "twice", 1, "");
    snprintf(run, sizeof run, "%s/twice", dir);
    assert_int_equal(sh("bin/train --config %s --config %s", conf, conf), 2);
    assert_non_null(strstr(out, "--config: expected once, found twice"));
    assert_int_equal(sh("bin/train --config %s --lr 0.1 --lr 0.2", conf), 2);
    assert_non_null(strstr(out, "--lr: expected once"));
    /* "--steps --lr 3": --lr is not the steps */
    assert_int_equal(sh("bin/train --config %s --steps --lr 3", conf), 2);
    assert_non_null(strstr(out, "--steps: expected a value, found the flag '--lr'"));
    assert_int_equal(sh("bin/train --config %s --run_name --overwrite", conf), 2);
    assert_int_equal(sh("bin/train --config %s --run_name -x", conf), 2);
    assert_non_null(strstr(out, "run_name"));
    assert_false(exists(run));
}

static void test_numbers_are_plain_decimals(void **state) {
    (void)state;
    char conf[256], run[512];
    write_conf(conf, sizeof conf, "decimals", 1, "");
    snprintf(run, sizeof run, "%s/decimals", dir);
    const char *bad[][2] = {{"lr", "0x1p-4"}, {"lr", "inf"},   {"lr", "nan"},       {"lr", "1e-3x"},
                            {"steps", "0x10"}, {"steps", "1e3"}, {"steps", "10abc"}, {"steps", " 5"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(sh("bin/train --config %s --%s \"%s\"", conf, bad[i][0], bad[i][1]), 2);
        assert_non_null(strstr(out, bad[i][0]));
    }
    assert_false(exists(run));
}

/* --------------------------------------------------------------------------------------------- */
/* bug 4: every size-like key has a ceiling, checked before the run directory is made */

static void test_sizes_past_their_ceiling_are_refused_first(void **state) {
    (void)state;
    char conf[256], run[512];
    write_conf(conf, sizeof conf, "ceiling", 1, "");
    snprintf(run, sizeof run, "%s/ceiling", dir);
    const char *bad[][3] = {{"threads", "100000", "1024"},     {"seq_len", "2147483648", "65536"},
                            {"seq_len", "100000", "65536"},    {"grad_accum", "4294967297", "65536"},
                            {"grad_accum", "100000", "65536"}, {"eval_batches", "100000", "4096"},
                            {"batch_size", "100000", "4096"},  {"probe_n", "100000", "4096"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(sh("bin/train --config %s --%s %s", conf, bad[i][0], bad[i][1]), 2);
        assert_non_null(strstr(out, bad[i][0]));
        assert_non_null(strstr(out, bad[i][2])); /* the limit */
        assert_null(strchr(strchr(out, '\n') + 1, '\n')); /* one line */
        assert_false(exists(run));
    }
}

/* --------------------------------------------------------------------------------------------- */
/* bug 7: a stop before the first step, then --resume: step 0 is probed once */

/* the lines of a JSONL file whose step is 0 */
static int count_step0_lines(const char *path) {
    char *text = st_malloc(1 << 20);
    fixture_read_text(path, text, 1 << 20);
    int n = 0;
    for (const char *p = text; (p = strstr(p, "\"step\":0,")); p++) n++;
    free(text);
    return n;
}

static void test_stop_at_step_0_then_resume_probes_step_0_once(void **state) {
    (void)state;
    char conf[256], run[512], ref[512], path[600];
    write_conf(conf, sizeof conf, "ref0", 3, "");
    assert_int_equal(sh("bin/train --config %s", conf), 0);
    snprintf(ref, sizeof ref, "%s/ref0/probes.jsonl", dir);
    int want = count_step0_lines(ref);
    assert_true(want > 0);

    /* a SIGTERM that arrives before the first step: a child asks for the stop before training */
    write_conf(conf, sizeof conf, "stop0", 3, "");
    snprintf(run, sizeof run, "%s/stop0", dir);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        TrainConfig c;
        char err[ST_ERR_LEN];
        Trainer t;
        config_defaults(&c);
        if (config_load_file(&c, conf, err) || config_validate(&c, err) || trainer_open(&t, &c, run, RUN_NEW, err)) _exit(3);
        trainer_request_stop();
        int rc = trainer_run(&t, c.steps, err);
        trainer_close(&t);
        _exit(rc == 1 ? 0 : 4);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_int_equal(sh("bin/train --resume %s", run), 0);
    snprintf(path, sizeof path, "%s/probes.jsonl", run);
    assert_int_equal(count_step0_lines(path), want);
}

/* --------------------------------------------------------------------------------------------- */
/* bug 8: what can be checked is checked before anything is created */

static void test_a_small_validation_split_fails_before_the_run_dir(void **state) {
    (void)state;
    char conf[256], run[512];
    write_conf(conf, sizeof conf, "fewval", 1, "");
    snprintf(run, sizeof run, "%s/fewval", dir);
    /* the tiny data's 3,000 validation tokens hold under 200 windows of 16 */
    assert_int_equal(sh("bin/train --config %s --probe_n 4000", conf), 1);
    assert_non_null(strstr(out, "probe_n = 4000"));
    assert_false(exists(run));
    /* so the same command, corrected, needs no --overwrite */
    assert_int_equal(sh("bin/train --config %s --probe_n 4", conf), 0);
}

/* --------------------------------------------------------------------------------------------- */
/* bug 5: --resume checks that the data is the data the run started on */

static void test_resume_on_changed_data_is_refused(void **state) {
    (void)state;
    char conf[256], data2[256], run[512], shard[512];
    /* a data directory of this test's own, changed after the run started */
    snprintf(data2, sizeof data2, "%s/data_changed", dir);
    assert_int_equal(fixture_tiny_data(data2), 0);
    write_conf(conf, sizeof conf, "redata", 2, "");
    snprintf(run, sizeof run, "%s/redata", dir);
    assert_int_equal(sh("bin/train --config %s --data_dir %s", conf, data2), 0);
    assert_int_equal(sh("bin/train --resume %s", run), 0); /* unchanged: resumes (and finds it finished) */

    /* train.bin written again with one token changed to a control byte the fixture never writes, as
     * preparing a changed corpus would change many (a whole, valid shard: only the fingerprint tells) */
    snprintf(shard, sizeof shard, "%s/train.bin", data2);
    Shard s;
    char err[ST_ERR_LEN];
    assert_int_equal(shard_read(shard, &s, err), 0);
    s.tokens[s.n_tokens - 2] = 1;
    assert_int_equal(shard_write(shard, s.tokens, s.n_tokens, s.vocab_size, s.bos_id, err), 0);
    shard_free(&s);
    assert_int_equal(sh("bin/train --resume %s", run), 1);
    assert_non_null(strstr(out, "train.bin changed since the run started"));
}

/* --------------------------------------------------------------------------------------------- */
/* bug 3: bin/sweep with spaces in the sweep's directory and its data path; bug 6 is in test_sweep */

/* "<dir>/<sub>/<name>.sweep": two tiny runs (lr 0.01, 0.02) of `steps` steps on data_path */
static void write_sweep(char *path, size_t size, const char *sub, const char *name, const char *data_path) {
    char folder[256];
    snprintf(folder, sizeof folder, "%s/%s", dir, sub);
    mkdir(folder, 0755);
    snprintf(path, size, "%s/%s.sweep", folder, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f,
            "d_model = 16\nn_layer = 1\nn_head = 2\nn_kv_head = 1\nn_expert = 2\ntop_k = 1\nd_ff = 16\n"
            "seq_len = 16\nbatch_size = 2\nsteps = 2\nwarmup_steps = 0\neval_every = 0\neval_batches = 1\n"
            "threads = 1\nprobe_n = 2\nprobe_len = 16\nprobe_every = 1\ndata_dir = %s\nlr = 0.01, 0.02\n",
            data_path);
    fclose(f);
}

static void test_sweep_with_spaces_in_its_paths(void **state) {
    (void)state;
    char sweep[512], spaced_data[256];
    /* the data reached through a path with a space */
    snprintf(spaced_data, sizeof spaced_data, "%s/my data", dir);
    assert_int_equal(symlink(data_dir, spaced_data), 0);

    write_sweep(sweep, sizeof sweep, "my sweeps", "run", spaced_data);
    assert_int_equal(sh("bin/sweep \"%s\"", sweep), 0);
    assert_non_null(strstr(out, "2 of 2 runs finished, 0 failed"));

    /* the emitted lines run as they are in a shell */
    write_sweep(sweep, sizeof sweep, "my sweeps", "par", spaced_data);
    assert_int_equal(sh("bin/sweep \"%s\" --emit parallel | bash", sweep), 0);
    assert_int_equal(sh("bin/sweep \"%s\" --list", sweep), 0);
    assert_null(strstr(out, "new"));

    write_sweep(sweep, sizeof sweep, "my sweeps", "slurm", spaced_data);
    assert_int_equal(sh("bin/sweep \"%s\" --emit slurm > \"%s/my sweeps/job.sh\"", sweep, dir), 0);
    for (int task = 0; task < 2; task++)
        assert_int_equal(sh("SLURM_ARRAY_TASK_ID=%d SLURM_SUBMIT_DIR=$PWD bash \"%s/my sweeps/job.sh\"", task, dir), 0);
    assert_int_equal(sh("bin/sweep \"%s\" --list", sweep), 0);
    assert_null(strstr(out, "new"));
}

/* --------------------------------------------------------------------------------------------- */
/* every program: --help and -h; flags checked as what they claim */

static void test_every_program_answers_help(void **state) {
    (void)state;
    const char *progs[] = {"prepare", "train", "probe", "sample", "export", "report", "sweep", "bench"};
    const char *flags[] = {"--help", "-h"};
    for (size_t p = 0; p < sizeof progs / sizeof progs[0]; p++)
        for (int f = 0; f < 2; f++) {
            int rc = sh("bin/%s %s 2>/dev/null", progs[p], flags[f]);
            if (rc != 0 || strncmp(out, "usage: bin/", 11) != 0)
                fail_msg("bin/%s %s: exit %d, stdout '%.80s'", progs[p], flags[f], rc, out);
        }
}

static void test_every_program_checks_its_flags(void **state) {
    (void)state;
    char conf[256], run[512];
    write_conf(conf, sizeof conf, "flags", 1, "");
    snprintf(run, sizeof run, "%s/flags", dir);
    assert_int_equal(sh("bin/train --config %s", conf), 0);
    /* each: a program, its flags, and what the one-line error must name */
    const char *cases[][2] = {
        {"bin/sample %s --tokens 0x10", "--tokens"},          {"bin/sample %s --tokens 5 --tokens 6", "--tokens"},
        {"bin/sample %s --temperature 1e", "--temperature"},  {"bin/sample %s --prompt --tokens 5", "--prompt"},
        {"bin/probe %s --step 1abc", "--step"},               {"bin/probe %s --threads 100000", "--threads"},
        {"bin/probe %s --step 1 --step 1", "--step"},         {"bin/export %s --out --step 1", "--out"},
        {"bin/export %s --out x --step -1", "--step"},        {"bin/prepare --out %s/p --vocab 1e3", "--vocab"},
        {"bin/prepare --out %s/p --val_frac 0x1", "--val_frac"}, {"bin/prepare --out %s/p --out x", "--out"},
        {"bin/report --compare %s --out", "--out"},           {"bin/bench --steps 5x --out %s/b.json", "--steps"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char cmd[1024];
        snprintf(cmd, sizeof cmd, cases[c][0], cases[c][0][4] == 'p' && cases[c][0][5] == 'r' ? dir : run);
        int rc = sh("%s", cmd);
        if (rc == 0 || !strstr(out, cases[c][1]))
            fail_msg("%s: exit %d, output '%.200s'", cmd, rc, out);
    }
    /* bin/sweep's own flags */
    char sweep[512];
    write_sweep(sweep, sizeof sweep, "flags", "f", data_dir);
    assert_int_equal(sh("bin/sweep %s --jobs 2x", sweep), 2);
    assert_non_null(strstr(out, "--jobs"));
    assert_int_equal(sh("bin/sweep %s --emit --list", sweep), 2);
    assert_non_null(strstr(out, "--emit: expected a value"));
}

/* --------------------------------------------------------------------------------------------- */
/* every binary file: a flipped byte or a truncation anywhere is one error naming the file */

static int read_shard_file(const char *path, char *err) {
    Shard s;
    int rc = shard_read(path, &s, err);
    if (rc == 0) shard_free(&s);
    return rc;
}

static int read_tokenizer_file(const char *path, char *err) {
    Tokenizer *tok;
    int rc = tokenizer_load(&tok, path, err);
    if (rc == 0) tokenizer_free(tok);
    return rc;
}

static int read_checkpoint_file(const char *path, char *err) {
    TrainConfig c;
    return ckpt_read_config(path, &c, err);
}

static int read_probe_set_file(const char *path, char *err) {
    ProbeSet ps;
    int rc = probe_set_load(&ps, path, err);
    if (rc == 0) probe_set_free(&ps);
    return rc;
}

static int read_attention_file(const char *path, char *err) {
    AttnMaps m;
    int rc = attnmaps_read(path, &m, err);
    if (rc == 0) attnmaps_free(&m);
    return rc;
}

/* the reader must refuse path, in one line naming it */
static void expect_refused(int (*reader)(const char *, char *), const char *path, const char *damage) {
    char err[ST_ERR_LEN] = "";
    if (reader(path, err) == 0) fail_msg("%s: accepted after %s", path, damage);
    if (!strstr(err, path) || strchr(err, '\n')) fail_msg("%s: after %s, expected one line naming it, found '%s'", path, damage, err);
}

/* flips one byte at several places of a copy of the file (header, payload, trailer), then cuts the
 * copy at several lengths: each damage must be refused (the original stays whole for later tests) */
static void damage_everywhere(int (*reader)(const char *, char *), const char *original) {
    static uint8_t whole[1 << 20];
    char path[700];
    snprintf(path, sizeof path, "%s/damaged_%s", dir, strrchr(original, '/') + 1);
    FILE *f = fopen(original, "rb");
    assert_non_null(f);
    size_t n = fread(whole, 1, sizeof whole, f);
    fclose(f);
    assert_true(n > 41 && n < sizeof whole); /* past the byte flipped at 40 */
    char err[ST_ERR_LEN], damage[64];
    fixture_write_file(path, whole, n);
    if (reader(path, err)) fail_msg("%s: the undamaged file was refused: %s", path, err);
    size_t at[] = {0, 9, 13, 17, 40, n / 3, n / 2, n - 9, n - 5, n - 1};
    for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) {
        whole[at[i]] ^= 0x04;
        fixture_write_file(path, whole, n);
        whole[at[i]] ^= 0x04;
        snprintf(damage, sizeof damage, "a flipped bit in byte %zu of %zu", at[i], n);
        expect_refused(reader, path, damage);
    }
    size_t cut[] = {n - 1, n - 8, n / 2, 20, 3};
    for (size_t i = 0; i < sizeof cut / sizeof cut[0]; i++) {
        fixture_write_file(path, whole, cut[i]);
        snprintf(damage, sizeof damage, "a cut to %zu of %zu bytes", cut[i], n);
        expect_refused(reader, path, damage);
    }
}

static void test_every_binary_file_is_checked(void **state) {
    (void)state;
    char conf[256], path[600];
    write_conf(conf, sizeof conf, "damage", 1, "");
    assert_int_equal(sh("bin/train --config %s", conf), 0);
    const struct {
        const char *dir, *name;
        int (*reader)(const char *, char *);
    } files[] = {{data_dir, "tokenizer.bin", read_tokenizer_file}, {data_dir, "train.bin", read_shard_file},
                 {data_dir, "val.bin", read_shard_file},           {"damage", "ckpt_00000001.bin", read_checkpoint_file},
                 {"damage", "probe_set.bin", read_probe_set_file}, {"damage", "attention.bin", read_attention_file}};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        if (files[i].dir == data_dir) snprintf(path, sizeof path, "%s/%s", data_dir, files[i].name);
        else snprintf(path, sizeof path, "%s/%s/%s", dir, files[i].dir, files[i].name);
        damage_everywhere(files[i].reader, path);
    }
}

/* --------------------------------------------------------------------------------------------- */
/* a damaged latest checkpoint: the error names the newest valid one and how to resume from it */

static void test_a_damaged_latest_checkpoint_names_the_one_before(void **state) {
    (void)state;
    char conf[256], run[512], latest[600], cmd[2048];
    write_conf(conf, sizeof conf, "damaged", 3, "ckpt_every = 1\nkeep_ckpts = 3\n");
    snprintf(run, sizeof run, "%s/damaged", dir);
    assert_int_equal(sh("bin/train --config %s", conf), 0);
    snprintf(latest, sizeof latest, "%s/ckpt_00000003.bin", run);
    FILE *f = fopen(latest, "r+b");
    assert_non_null(f);
    fseek(f, 200, SEEK_SET);
    fputc(0x5a ^ fgetc(f), f);
    fclose(f);
    assert_int_equal(sh("bin/train --resume %s", run), 1);
    assert_non_null(strstr(out, "ckpt_00000003.bin: checksum"));
    assert_non_null(strstr(out, "the newest valid earlier checkpoint is"));
    assert_non_null(strstr(out, "ckpt_00000002.bin"));
    /* the command it gives resumes */
    char *start = strstr(out, "`mv "), *end = start ? strchr(start + 1, '`') : NULL;
    assert_non_null(end);
    snprintf(cmd, sizeof cmd, "%.*s", (int)(end - start - 1), start + 1);
    assert_int_equal(sh("%s", cmd), 0);
    assert_non_null(strstr(out, "step 2"));
}

/* --------------------------------------------------------------------------------------------- */
/* schedulers: SIGTERM in a long step is honoured within a micro-batch, and the exit code says
 * "stopped, resume me" */

static void test_sigterm_in_a_long_step_stops_soon_with_exit_75(void **state) {
    (void)state;
    char conf[256], run[512], probes[600], ckpt[600], log[600];
    /* 20,000 micro-batches: a step of seconds */
    write_conf(conf, sizeof conf, "longstep", 2, "grad_accum = 20000\n");
    snprintf(run, sizeof run, "%s/longstep", dir);
    snprintf(probes, sizeof probes, "%s/probes.jsonl", run);
    snprintf(log, sizeof log, "%s/longstep.log", dir);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (!freopen(log, "w", stdout) || dup2(fileno(stdout), 2) < 0) _exit(127);
        execl("bin/train", "bin/train", "--config", conf, (char *)NULL);
        _exit(127);
    }
    /* step 0's probes are written just before the first step starts */
    while (count_step0_lines(probes) == 0) {
        assert_int_equal(waitpid(pid, NULL, WNOHANG), 0);
        usleep(2000);
    }
    usleep(300000);
    double start = st_now_seconds();
    kill(pid, SIGTERM);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    double seconds = st_now_seconds() - start;
    print_message("stopped %.2f s after SIGTERM\n", seconds);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), TRAIN_EXIT_STOPPED);
    /* the step was abandoned, not finished: the checkpoint is of step 0 */
    snprintf(ckpt, sizeof ckpt, "%s/ckpt_00000000.bin", run);
    assert_true(exists(ckpt));
    snprintf(ckpt, sizeof ckpt, "%s/ckpt_00000001.bin", run);
    assert_false(exists(ckpt));
}

/* the --emit slurm script: a task whose bin/train the time limit stops (SIGTERM to the script) is
 * requeued, and the requeued task resumes the run */
static void test_slurm_script_requeues_a_stopped_task(void **state) {
    (void)state;
    char sweep[512], fake[256], calls[300], probes[600];
    /* a stand-in for Slurm's scontrol, on PATH, that writes down how it was called */
    snprintf(fake, sizeof fake, "%s/fakebin", dir);
    mkdir(fake, 0755);
    snprintf(calls, sizeof calls, "%s/scontrol.calls", dir);
    char script[600], path[300];
    snprintf(script, sizeof script, "#!/bin/sh\necho \"$@\" >> %s\n", calls);
    snprintf(path, sizeof path, "%s/scontrol", fake);
    fixture_write_file(path, script, strlen(script));
    assert_int_equal(chmod(path, 0755), 0);

    /* one run of 1 long step (20,000 micro-batches) */
    write_sweep(sweep, sizeof sweep, "slurm requeue", "rq", data_dir);
    FILE *f = fopen(sweep, "a");
    fputs("grad_accum = 20000\nsteps = 1\n", f);
    fclose(f);
    {   /* the sweep's two lr values make two tasks; task 0 is the one under test */
        char text[4096];
        fixture_read_text(sweep, text, sizeof text);
        char *steps = strstr(text, "steps = 2\n");
        memmove(steps, steps + 10, strlen(steps + 10) + 1);
        fixture_write_file(sweep, text, strlen(text));
    }
    assert_int_equal(sh("bin/sweep \"%s\" --emit slurm > \"%s/slurm requeue/job.sh\"", sweep, dir), 0);
    snprintf(probes, sizeof probes, "%s/slurm requeue/rq/lr0.01/probes.jsonl", dir);
    const char *env = "SLURM_ARRAY_JOB_ID=7 SLURM_ARRAY_TASK_ID=0 SLURM_SUBMIT_DIR=$PWD";
    int rc = sh("PATH=%s:$PATH %s bash \"%s/slurm requeue/job.sh\" > %s/job.log 2>&1 & p=$!; "
                "for i in $(seq 1200); do grep -qs step \"%s\" && break; sleep 0.05; done; sleep 0.3; kill -TERM $p; "
                "wait $p",
                fake, env, dir, dir, probes);
    assert_int_equal(rc, TRAIN_EXIT_STOPPED);
    char text[256];
    fixture_read_text(calls, text, sizeof text);
    assert_string_equal(text, "requeue 7_0\n");
    /* the requeued task resumes the run to its end */
    assert_int_equal(sh("PATH=%s:$PATH SLURM_RESTART_COUNT=1 %s bash \"%s/slurm requeue/job.sh\"", fake, env, dir), 0);
    assert_non_null(strstr(out, "resuming"));
    assert_non_null(strstr(out, "done: 1 steps"));
}

/* --------------------------------------------------------------------------------------------- */
/* a failed write says why (errno's text): a figure on a full disk */

static void test_a_failed_png_write_says_why(void **state) {
    (void)state;
    char path[256], log[256];
    snprintf(path, sizeof path, "%s/big.png", dir);
    snprintf(log, sizeof log, "%s/png.err", dir);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) { /* a file size cap below the PNG's: its writes fail with EFBIG, as on a full disk */
        struct rlimit rl = {4096, 4096};
        signal(SIGXFSZ, SIG_IGN);
        PlCanvas c;
        char err[ST_ERR_LEN];
        pl_canvas_init(&c, 400, 300);
        for (int y = 0; y < 300; y += 3) pl_line(&c, 0, y, 400, 300 - y, 1.5, (PlColor){y % 255, 40, 200});
        if (setrlimit(RLIMIT_FSIZE, &rl) != 0) _exit(3);
        int rc = pl_save_png(&c, path, err);
        FILE *f = fopen(log, "w");
        if (f) fputs(err, f), fclose(f);
        _exit(rc == 0 ? 4 : 0);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_int_equal(WEXITSTATUS(status), 0);
    char text[ST_ERR_LEN];
    fixture_read_text(log, text, sizeof text);
    if (!strstr(text, "big.png: write failed: File too large")) fail_msg("found '%s'", text);
    assert_false(exists(path));
}

/* --------------------------------------------------------------------------------------------- */
/* a failed sweep run says why, in the sweep's summary and in compare.md */

static void test_a_failed_sweep_run_says_why(void **state) {
    (void)state;
    char sweep[512], data_list[300], compare[600], text[8192];
    /* a data_dir axis whose second value does not exist: two of the four runs fail */
    snprintf(data_list, sizeof data_list, "%s, %s/no_such_data", data_dir, dir);
    write_sweep(sweep, sizeof sweep, "failing", "fl", data_list);
    assert_int_not_equal(sh("bin/sweep %s --jobs 2", sweep), 0);
    assert_non_null(strstr(out, "2 of 4 runs finished, 2 failed"));
    assert_non_null(strstr(out, "failed: data_dir"));
    assert_non_null(strstr(out, "no_such_data/tokenizer.bin: cannot open tokenizer"));
    snprintf(compare, sizeof compare, "%s/failing/fl/compare.md", dir);
    fixture_read_text(compare, text, sizeof text);
    assert_non_null(strstr(text, "## Runs that failed"));
    assert_non_null(strstr(text, "no_such_data/tokenizer.bin: cannot open tokenizer"));
}

/* a sweep run whose latest checkpoint is damaged is resumed (and fails, saying from where), never
 * restarted with --overwrite, which would delete its earlier checkpoints */
static void test_a_sweep_keeps_a_run_with_a_damaged_checkpoint(void **state) {
    (void)state;
    char sweep[512], ckpt[600];
    write_sweep(sweep, sizeof sweep, "keep", "kp", data_dir);
    FILE *f = fopen(sweep, "a");
    fputs("ckpt_every = 1\nkeep_ckpts = 2\n", f);
    fclose(f);
    assert_int_equal(sh("bin/sweep %s", sweep), 0);
    snprintf(ckpt, sizeof ckpt, "%s/keep/kp/lr0.01/ckpt_00000002.bin", dir);
    assert_int_equal(truncate(ckpt, 100), 0);
    assert_int_not_equal(sh("bin/sweep %s", sweep), 0);
    assert_non_null(strstr(out, "[resume] lr0.01"));
    assert_non_null(strstr(out, "the newest valid earlier checkpoint is"));
    snprintf(ckpt, sizeof ckpt, "%s/keep/kp/lr0.01/ckpt_00000001.bin", dir);
    assert_true(exists(ckpt));
}

int main(void) {
    if (fixture_make_tmpdir(dir, sizeof dir, "sinktrace_edges")) return 1;
    snprintf(data_dir, sizeof data_dir, "%s/data", dir);
    if (fixture_tiny_data(data_dir)) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_overwrite_keeps_what_is_not_a_run),
        cmocka_unit_test(test_overwrite_does_not_follow_a_symlink),
        cmocka_unit_test(test_config_from_a_pipe_is_read),
        cmocka_unit_test(test_a_flag_given_twice_or_swallowed_is_refused),
        cmocka_unit_test(test_numbers_are_plain_decimals),
        cmocka_unit_test(test_sizes_past_their_ceiling_are_refused_first),
        cmocka_unit_test(test_stop_at_step_0_then_resume_probes_step_0_once),
        cmocka_unit_test(test_a_small_validation_split_fails_before_the_run_dir),
        cmocka_unit_test(test_resume_on_changed_data_is_refused),
        cmocka_unit_test(test_sweep_with_spaces_in_its_paths),
        cmocka_unit_test(test_every_program_answers_help),
        cmocka_unit_test(test_every_program_checks_its_flags),
        cmocka_unit_test(test_every_binary_file_is_checked),
        cmocka_unit_test(test_a_damaged_latest_checkpoint_names_the_one_before),
        cmocka_unit_test(test_sigterm_in_a_long_step_stops_soon_with_exit_75),
        cmocka_unit_test(test_slurm_script_requeues_a_stopped_task),
        cmocka_unit_test(test_a_failed_png_write_says_why),
        cmocka_unit_test(test_a_failed_sweep_run_says_why),
        cmocka_unit_test(test_a_sweep_keeps_a_run_with_a_damaged_checkpoint),
    };
    int rc = cmocka_run_group_tests_name("edges", tests, NULL, NULL);
    if (getenv("KEEP") == 0 && fixture_remove_dir(dir) != 0) return 1;
    return rc;
}
