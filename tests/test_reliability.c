/* tests/test_reliability.c: bin/train under the faults of docs/RELIABILITY.md, done for real on a tiny
 * model: kill -9 at random moments and during checkpoint writes (then --resume gives the losses of an
 * uninterrupted run), a full disk (RLIMIT_FSIZE) during a checkpoint or a log write, and two bin/train
 * on one run directory (the lock), and the loss-spike guard. Run from the repository root, after `make`. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../common/util.h"
#include "../train/checkpoint.h"
#include "../train/rundir.h"
#include "../train/trainer.h"
#include "fixtures.h"

static char dir[64];       /* this test's temporary directory */
static char data_dir[128]; /* a tiny prepared data directory inside it */

/* writes <dir>/<name>.conf: a tiny MoE run named name, one thread (bit-identical across resumes),
 * probes every probe_every steps on the given schedule, and the lines of extra ("" for none) */
static void write_conf(char *conf, size_t size, const char *name, int steps, int ckpt_every, int probe_every,
                       const char *probe_schedule, const char *extra) {
    snprintf(conf, size, "%s/%s.conf", dir, name);
    FILE *f = fopen(conf, "w");
    assert_non_null(f);
    fprintf(f,
            "d_model = 16\nn_layer = 2\nn_head = 2\nn_kv_head = 1\nn_expert = 4\ntop_k = 2\nd_ff = 16\n"
            "seq_len = 16\nbatch_size = 4\nsteps = %d\nwarmup_steps = 2\nlr = 0.01\neval_every = 5\n"
            "eval_batches = 1\nlog_every = 1\nckpt_every = %d\nkeep_ckpts = 2\nthreads = 1\nprobe_n = 2\n"
            "probe_len = 16\nprobe_every = %d\nprobe_schedule = %s\ndata_dir = %s\nout_dir = %s\nrun_name = %s\n",
            steps, ckpt_every, probe_every, probe_schedule, data_dir, dir, name);
    fputs(extra, f);
    fclose(f);
}

/* bin/train argv[] as a child, stdout and stderr into log; fsize_limit > 0 caps every file it writes
 * (a full disk: writes past it fail with EFBIG, SIGXFSZ ignored so the process sees the error) */
static pid_t spawn_train(char *const argv[], const char *log, long fsize_limit) {
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (!freopen(log, "w", stdout) || dup2(fileno(stdout), 2) < 0) _exit(127);
        if (fsize_limit > 0) {
            struct rlimit rl = {(rlim_t)fsize_limit, (rlim_t)fsize_limit};
            signal(SIGXFSZ, SIG_IGN); /* an ignored signal stays ignored across execv */
            if (setrlimit(RLIMIT_FSIZE, &rl) != 0) _exit(127);
        }
        execv("bin/train", argv);
        _exit(127);
    }
    return pid;
}

static int exit_code(int status) {
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return WEXITSTATUS(status);
}

static int wait_exit_code(pid_t pid) {
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return exit_code(status);
}

static int run_train(char *const argv[], const char *log, long fsize_limit) {
    return wait_exit_code(spawn_train(argv, log, fsize_limit));
}

/* the whole of a small text file (malloc'd; "" when absent) */
static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        char *empty = st_malloc(1);
        empty[0] = 0;
        return empty;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = st_malloc((size_t)n + 1);
    s[fread(s, 1, (size_t)n, f)] = 0;
    fclose(f);
    return s;
}

static int exists(const char *path) { return access(path, F_OK) == 0; }

static long file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

/* Removes the wall-clock fields of a train.jsonl line in place: what is left must be bit-identical
 * between an interrupted and an uninterrupted run. */
static void strip_timing(char *line) {
    char *a = strstr(line, ",\"tok_per_s\":"), *b = a ? strstr(a, "\"ms_per_step\":") : NULL;
    if (!b) return;
    b += strcspn(b, ",}");
    memmove(a, b, strlen(b) + 1);
}

/* the step of the latest checkpoint of run, or -1 */
static int64_t latest_ckpt_step(const char *run) {
    char path[4200], err[ST_ERR_LEN];
    int64_t step;
    if (ckpt_latest(run, path, sizeof path, err) || ckpt_read_step(path, &step, err)) return -1;
    return step;
}

/* Waits until run has a checkpoint at step or later (1), or the child pid ends first (0, its wait
 * status in *status): a child that fails early ends the wait instead of hanging the test. */
static int wait_for_ckpt(pid_t pid, const char *run, int64_t step, int *status) {
    while (latest_ckpt_step(run) < step) {
        if (waitpid(pid, status, WNOHANG) == pid) return 0;
        usleep(500);
    }
    return 1;
}

/* the highest "step" logged in run/train.jsonl (0 if none) */
static int64_t last_logged_step(const char *run) {
    char path[4200];
    snprintf(path, sizeof path, "%s/train.jsonl", run);
    char *text = slurp(path);
    long long last = 0, step;
    for (char *s = text; (s = strstr(s, "\"step\":")); s++)
        if (sscanf(s + 7, "%lld", &step) == 1 && step > last) last = step;
    free(text);
    return last;
}

/* 1 when a checkpoint write was in progress (its temporary file exists) */
static int ckpt_write_in_progress(const char *run) {
    DIR *d = opendir(run);
    int found = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strncmp(e->d_name, "ckpt_", 5) == 0 && strstr(e->d_name, ".tmp")) found = 1;
    if (d) closedir(d);
    return found;
}

/* train.jsonl lines of two runs equal line by line once the timing is stripped */
static void assert_same_losses(const char *run_a, const char *run_b, int steps) {
    char path[4200];
    int lines = 0;
    snprintf(path, sizeof path, "%s/train.jsonl", run_a);
    FILE *fa = fopen(path, "r");
    snprintf(path, sizeof path, "%s/train.jsonl", run_b);
    FILE *fb = fopen(path, "r");
    assert_non_null(fa);
    assert_non_null(fb);
    char la[8192], lb[8192];
    while (fgets(la, sizeof la, fa)) {
        if (!fgets(lb, sizeof lb, fb)) fail_msg("%s has fewer lines than %s", run_b, run_a);
        strip_timing(la);
        strip_timing(lb);
        if (strcmp(la, lb) != 0) fail_msg("line %d differs:\n  %s  %s", lines + 1, la, lb);
        lines++;
    }
    if (fgets(lb, sizeof lb, fb)) fail_msg("%s has more lines than %s", run_b, run_a);
    fclose(fa);
    fclose(fb);
    assert_int_equal(lines, steps);
}

/* ------------------------------------------------------------------------------------------------ */

/* Kills a resumed run in the middle of writing its next checkpoint: the checkpoint's temporary file
 * is made a FIFO, so the write blocks once the pipe is full; a few KB are read from it, the process
 * is killed, and what was read is left behind as the torn temporary file a real crash leaves.
 * Returns 1 when the kill landed mid-write, 0 when the run ended first. */
static int kill_during_checkpoint_write(char *const argv[], const char *run, int64_t next_step, const char *log) {
    char ckpt[4200], tmp[4300], torn[4096];
    ckpt_path(ckpt, sizeof ckpt, run, next_step);
    snprintf(tmp, sizeof tmp, "%s.tmp", ckpt);
    unlink(tmp); /* a torn one left by an earlier kill */
    assert_int_equal(mkfifo(tmp, 0644), 0);
    pid_t pid = spawn_train(argv, log, 0);
    int fd = open(tmp, O_RDONLY | O_NONBLOCK), status, ended = 0;
    assert_true(fd >= 0);
    size_t got = 0;
    while (got < sizeof torn && !ended) {
        ssize_t n = read(fd, torn + got, sizeof torn - got);
        if (n > 0) got += (size_t)n;
        else if (!(ended = waitpid(pid, &status, WNOHANG) == pid)) usleep(200);
    }
    if (!ended) {
        kill(pid, SIGKILL);
        status = 0;
        assert_int_equal(wait_exit_code(pid), 128 + SIGKILL);
    }
    close(fd);
    unlink(tmp);
    FILE *f = fopen(tmp, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(torn, 1, got, f), got);
    fclose(f);
    return !ended;
}

/* kill -9 at random moments and in the middle of checkpoint writes; every time, --resume (or a fresh
 * start when no checkpoint was written yet) continues, at most the steps since the last checkpoint
 * are lost, and the finished run logs exactly the losses of an uninterrupted one */
static void test_kill9_then_resume_equals_uninterrupted(void **state) {
    (void)state;
    enum { STEPS = 24 };
    char conf_ref[256], conf[256], ref[256], run[256], log[256];
    write_conf(conf_ref, sizeof conf_ref, "ref", STEPS, 1, 10, "log", "");
    write_conf(conf, sizeof conf, "killed", STEPS, 1, 10, "log", "");
    snprintf(ref, sizeof ref, "%s/ref", dir);
    snprintf(run, sizeof run, "%s/killed", dir);
    snprintf(log, sizeof log, "%s/train.log", dir);

    /* the uninterrupted run, and how long its training takes (until its last checkpoint: the
     * report that follows is not worth killing) */
    double start = st_now_seconds();
    char *ref_argv[] = {"bin/train", "--config", conf_ref, NULL};
    pid_t pid = spawn_train(ref_argv, log, 0);
    int status;
    int reached = wait_for_ckpt(pid, ref, STEPS, &status);
    double train_seconds = st_now_seconds() - start;
    assert_int_equal(reached ? wait_exit_code(pid) : exit_code(status), 0);

    StRng r;
    st_rng_seed(&r, 2026);
    char *fresh[] = {"bin/train", "--config", conf, "--overwrite", NULL};
    char *resume[] = {"bin/train", "--resume", run, NULL};
    int kills = 0, kills_mid_write = 0;
    /* first kill: just after the first checkpoint */
    pid_t first = spawn_train(fresh, log, 0);
    assert_true(wait_for_ckpt(first, run, 1, &status));
    kills += kill(first, SIGKILL) == 0;
    assert_int_equal(wait_exit_code(first), 128 + SIGKILL);
    /* then two kills in the middle of checkpoint writes, then three at random moments */
    for (int attempt = 0; attempt < 5; attempt++) {
        int64_t ckpt = latest_ckpt_step(run);
        if (attempt < 2) {
            assert_true(ckpt >= 1 && ckpt < STEPS);
            int mid = kill_during_checkpoint_write(resume, run, ckpt + 1, log);
            kills_mid_write += mid, kills += mid;
            /* the torn write is not a checkpoint: the latest is still the one before it */
            assert_int_equal(latest_ckpt_step(run), ckpt);
        } else {
            pid_t pid = spawn_train(ckpt >= 0 ? resume : fresh, log, 0);
            usleep((useconds_t)(st_rng_uniform(&r) * train_seconds * 1e6));
            kills += kill(pid, SIGKILL) == 0;
            int code = wait_exit_code(pid);
            assert_true(code == 0 || code == 128 + SIGKILL);
        }
        /* at most the steps since the last checkpoint are lost (train.jsonl is written before it) */
        ckpt = latest_ckpt_step(run);
        if (ckpt >= 0) assert_true(last_logged_step(run) - ckpt <= 1);
    }
    assert_int_equal(run_train(latest_ckpt_step(run) >= 0 ? resume : fresh, log, 0), 0);
    print_message("killed %d times, %d in the middle of a checkpoint write\n", kills, kills_mid_write);
    assert_int_equal(kills_mid_write, 2);
    assert_same_losses(ref, run, STEPS);
}

/* a full disk while a checkpoint is written: a clear error, the previous checkpoint intact (it
 * loads, and resuming from it without the limit finishes with the losses of an uninterrupted run) */
static void test_full_disk_during_checkpoint_keeps_the_previous(void **state) {
    (void)state;
    char conf[256], run[256], log[256], ckpt4[4200], ckpt8[4200];
    write_conf(conf, sizeof conf, "full_ckpt", 8, 4, 10, "log", "");
    snprintf(run, sizeof run, "%s/full_ckpt", dir);
    snprintf(log, sizeof log, "%s/full_ckpt.log", dir);
    char *fresh[] = {"bin/train", "--config", conf, NULL};
    assert_int_equal(run_train(fresh, log, 0), 0);
    char ref[256];
    snprintf(ref, sizeof ref, "%s/full_ckpt_ref", dir);
    assert_int_equal(rename(run, ref), 0);
    assert_int_equal(run_train(fresh, log, 0), 0);

    /* back to step 4, then steps 5-8 with files capped below a checkpoint's size */
    ckpt_path(ckpt4, sizeof ckpt4, run, 4);
    ckpt_path(ckpt8, sizeof ckpt8, run, 8);
    assert_int_equal(unlink(ckpt8), 0);
    char *before = slurp(ckpt4);
    long ckpt_bytes = file_size(ckpt4);
    char *resume[] = {"bin/train", "--resume", run, NULL};
    assert_int_equal(run_train(resume, log, ckpt_bytes - 1), 1);
    char *out = slurp(log);
    if (!strstr(out, "ckpt_00000008.bin: write failed: File too large"))
        fail_msg("expected a write error naming the checkpoint, found:\n%s", out);
    free(out);
    assert_false(exists(ckpt8));
    assert_false(ckpt_write_in_progress(run));
    char *after = slurp(ckpt4);
    assert_int_equal(file_size(ckpt4), ckpt_bytes);
    assert_memory_equal(before, after, (size_t)ckpt_bytes);
    free(before);
    free(after);

    assert_int_equal(run_train(resume, log, 0), 0);
    assert_same_losses(ref, run, 8);
}

/* a full disk while train.jsonl is written: a clear error naming it; the run then starts over (it
 * wrote no checkpoint) and logs exactly the losses of an uninterrupted run */
static void test_full_disk_during_log_write_is_an_error(void **state) {
    (void)state;
    enum { STEPS = 40 };
    char conf[256], run[256], log[256], jsonl[4200], ref[256], config_txt[4200];
    /* probes only at the start and the end, no checkpoint before the end: train.jsonl grows fastest */
    write_conf(conf, sizeof conf, "full_log", STEPS, 0, 1000, "linear", "");
    snprintf(run, sizeof run, "%s/full_log", dir);
    snprintf(ref, sizeof ref, "%s/full_log_ref", dir);
    snprintf(log, sizeof log, "%s/full_log.log", dir);
    snprintf(jsonl, sizeof jsonl, "%s/train.jsonl", run);
    snprintf(config_txt, sizeof config_txt, "%s/config.txt", ref);
    char *fresh[] = {"bin/train", "--config", conf, NULL};
    assert_int_equal(run_train(fresh, log, 0), 0);
    assert_int_equal(rename(run, ref), 0);
    /* config.txt is written first: a cap just above its size lets the run start; train.jsonl
     * (longer than that in the finished run) hits it */
    long cap = file_size(config_txt) + 200;
    assert_true(file_size(jsonl) < 0);
    snprintf(jsonl, sizeof jsonl, "%s/train.jsonl", ref);
    assert_true(file_size(jsonl) > cap);
    snprintf(jsonl, sizeof jsonl, "%s/train.jsonl", run);
    assert_int_equal(run_train(fresh, log, cap), 1);
    char *out = slurp(log);
    if (!strstr(out, "train.jsonl: write failed: File too large"))
        fail_msg("expected a write error naming train.jsonl, found:\n%s", out);
    free(out);
    assert_true(file_size(jsonl) <= cap);

    char *over[] = {"bin/train", "--config", conf, "--overwrite", NULL};
    assert_int_equal(run_train(over, log, 0), 0);
    assert_same_losses(ref, run, STEPS);
}

/* two bin/train on one run directory: the second refuses, naming the first's pid, and --overwrite
 * does not delete the directory under it; once the first is killed, its stale lock is taken over */
static void test_second_train_on_a_busy_run_refuses(void **state) {
    (void)state;
    char conf[256], run[256], log[256], log2[256], lock[4200];
    write_conf(conf, sizeof conf, "busy", 100000, 0, 10, "log", "");
    snprintf(run, sizeof run, "%s/busy", dir);
    snprintf(log, sizeof log, "%s/busy.log", dir);
    snprintf(log2, sizeof log2, "%s/busy2.log", dir);
    snprintf(lock, sizeof lock, "%s/train.lock", run);
    char *first[] = {"bin/train", "--config", conf, NULL};
    pid_t pid = spawn_train(first, log, 0);
    /* wait until the first run has written its first log line (it holds the lock by then) */
    while (last_logged_step(run) < 1 && waitpid(pid, NULL, WNOHANG) == 0) usleep(1000);

    char expected[128];
    snprintf(expected, sizeof expected, "in use by another bin/train (pid %d", (int)pid);
    char *resume[] = {"bin/train", "--resume", run, NULL};
    char *over[] = {"bin/train", "--config", conf, "--overwrite", NULL};
    char *const *second[] = {resume, over};
    for (int i = 0; i < 2; i++) {
        assert_int_equal(run_train((char *const *)second[i], log2, 0), 1);
        char *out = slurp(log2);
        if (!strstr(out, expected)) fail_msg("expected '%s', found:\n%s", expected, out);
        free(out);
    }
    assert_true(exists(lock));
    assert_true(last_logged_step(run) >= 1); /* --overwrite deleted nothing */

    kill(pid, SIGKILL);
    assert_int_equal(wait_exit_code(pid), 128 + SIGKILL);
    /* the lock file stays behind with the dead pid; a resume takes it over */
    assert_true(exists(lock));
    /* the lock is taken before the checkpoint is looked for: "no checkpoint" (this run wrote none)
     * shows it got past the lock */
    assert_int_equal(run_train(resume, log2, 0), 1);
    char *out = slurp(log2);
    if (!strstr(out, "no checkpoint (ckpt_*.bin) in the run directory; start it again with --config FILE --overwrite"))
        fail_msg("expected the stale lock taken over, found:\n%s", out);
    free(out);
}

/* the loss-spike guard: an outlier gradient (the step's gradients x1000) is skipped, leaving the
 * parameters as they were; the next ordinary step updates them; with the guard off the same outlier
 * is applied */
static void test_spike_guard_skips_an_outlier_step(void **state) {
    (void)state;
    char conf[256], run[256], err[ST_ERR_LEN];
    write_conf(conf, sizeof conf, "spike", 40, 0, 1000, "linear", "spike_guard = 3\n");
    snprintf(run, sizeof run, "%s/spike", dir);
    TrainConfig cfg;
    config_defaults(&cfg);
    assert_int_equal(config_load_file(&cfg, conf, err) || config_validate(&cfg, err), 0);
    Trainer *t = st_malloc(sizeof *t);
    if (trainer_open(t, &cfg, run, RUN_NEW, err)) fail_msg("%s", err);
    assert_int_equal(trainer_run(t, 12, err), 0);
    size_t bytes = t->model.n_params * sizeof(float);
    float *before = st_malloc(bytes);
    for (int guard_on = 1; guard_on >= 0; guard_on--) {
        t->cfg.spike_guard = guard_on ? 3.0f : 0.0f;
        for (int outlier = 1; outlier >= 0; outlier--) {
            memcpy(before, t->model.params, bytes);
            int64_t step = t->step;
            assert_int_equal(trainer_compute_grads(t, err), 0);
            if (outlier)
                for (size_t i = 0; i < t->model.n_params; i++) t->model.grads[i] *= 1000.0f;
            assert_int_equal(trainer_check_grads(t, err), 0);
            trainer_spike_guard(t);
            trainer_apply_update(t);
            assert_int_equal(t->skipped, guard_on && outlier);
            assert_int_equal(t->step, step + 1);
            int unchanged = memcmp(before, t->model.params, bytes) == 0;
            assert_int_equal(unchanged, guard_on && outlier);
        }
    }
    free(before);
    trainer_close(t);
    free(t);
}

/* with a guard tighter than any real run would use (0.95 x the median, so that steps are skipped), the skipped steps are
 * logged, and a run killed and resumed skips exactly the steps the uninterrupted run skips (the
 * window of norms is in the checkpoint) */
static void test_spike_guard_is_logged_and_resumes_exactly(void **state) {
    (void)state;
    enum { STEPS = 30 };
    char conf_ref[256], conf[256], ref[256], run[256], log[256], path[4200];
    write_conf(conf_ref, sizeof conf_ref, "guard_ref", STEPS, 0, 1000, "linear", "spike_guard = 0.95\n");
    write_conf(conf, sizeof conf, "guard", STEPS, 5, 1000, "linear", "spike_guard = 0.95\n");
    snprintf(ref, sizeof ref, "%s/guard_ref", dir);
    snprintf(run, sizeof run, "%s/guard", dir);
    snprintf(log, sizeof log, "%s/guard.log", dir);
    char *ref_argv[] = {"bin/train", "--config", conf_ref, NULL};
    assert_int_equal(run_train(ref_argv, log, 0), 0);
    snprintf(path, sizeof path, "%s/train.jsonl", ref);
    char *text = slurp(path);
    int skipped = 0;
    for (char *s = text; (s = strstr(s, "\"skipped\":1")); s++) skipped++;
    free(text);
    print_message("%d of %d steps skipped\n", skipped, STEPS);
    assert_true(skipped >= 2 && skipped < STEPS - SPIKE_WINDOW / 4);

    char *fresh[] = {"bin/train", "--config", conf, NULL};
    pid_t pid = spawn_train(fresh, log, 0);
    int status;
    assert_true(wait_for_ckpt(pid, run, 15, &status));
    kill(pid, SIGKILL);
    wait_exit_code(pid);
    char *resume[] = {"bin/train", "--resume", run, NULL};
    assert_int_equal(run_train(resume, log, 0), 0);
    assert_same_losses(ref, run, STEPS);
}

int main(void) {
    if (fixture_make_tmpdir(dir, sizeof dir, "sinktrace_rel")) return 1;
    snprintf(data_dir, sizeof data_dir, "%s/data", dir);
    if (fixture_tiny_data(data_dir)) return 1;
    /* bin/train of an MPI build would keep its runtime's job data in shared-memory files larger than
     * the full-disk tests' file size cap: keep it in memory (serial builds ignore this) */
    setenv("PMIX_MCA_gds", "hash", 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kill9_then_resume_equals_uninterrupted),
        cmocka_unit_test(test_full_disk_during_checkpoint_keeps_the_previous),
        cmocka_unit_test(test_full_disk_during_log_write_is_an_error),
        cmocka_unit_test(test_second_train_on_a_busy_run_refuses),
        cmocka_unit_test(test_spike_guard_skips_an_outlier_step),
        cmocka_unit_test(test_spike_guard_is_logged_and_resumes_exactly),
    };
    int rc = cmocka_run_group_tests_name("reliability", tests, NULL, NULL);
    if (getenv("KEEP") == 0 && fixture_remove_dir(dir) != 0) return 1;
    return rc;
}
