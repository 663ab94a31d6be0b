/* bin/sweep: runs every run of a sweep file (train/sweep.h), J at a time, skipping finished runs and
 * resuming interrupted ones, then compares them with bin/report --compare.
 *   bin/sweep FILE.sweep [--jobs J] [--list]
 *   bin/sweep FILE.sweep --emit parallel     one command per unfinished run, for GNU parallel
 *   bin/sweep FILE.sweep --emit slurm        a Slurm job-array script */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../common/args.h"
#include "../common/util.h"
#include "sweep.h"
#include "trainer.h"

static volatile sig_atomic_t stop_requested = 0;
static void on_signal(int sig) {
    (void)sig;
    stop_requested = 1; /* the running children are passed SIGTERM: they checkpoint and exit */
}

static const char *STATE_NAME[] = {"new", "restart", "resume", "done"};

/* <dir of this program>/NAME, so bin/sweep finds bin/train wherever it is run from */
static void sibling_exe(const char *argv0, const char *name, char *out, size_t size) {
    const char *slash = strrchr(argv0, '/');
    if (slash) snprintf(out, size, "%.*s/%s", (int)(slash - argv0), argv0, name);
    else snprintf(out, size, "%s", name);
}

/* starts the command's words as they are (execv: no shell, no splitting), output appended to log;
 * returns the pid */
static pid_t start(SweepCommand *cmd, const char *log) {
    pid_t pid = fork();
    if (pid != 0) return pid;
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
        close(fd);
    }
    char *argv[SWEEP_CMD_WORDS + 1];
    for (int i = 0; i < cmd->n; i++) argv[i] = cmd->word[i];
    argv[cmd->n] = NULL;
    execv(argv[0], argv);
    fprintf(stderr, "error: cannot run %s: %s\n", argv[0], strerror(errno));
    _exit(127);
}

typedef struct {
    pid_t pid;
    int index;
} Job;

/* why a run failed: the last line of its log that starts with "error", else its last line */
static void failure_reason(const char *log, char *out, size_t size) {
    FILE *f = fopen(log, "r");
    snprintf(out, size, "(no log: %.480s)", log);
    if (!f) return;
    char line[ST_ERR_LEN + 64];
    int have_error = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        int is_error = strncmp(line, "error", 5) == 0;
        if (line[0] && (is_error || !have_error)) snprintf(out, size, "%.500s", line);
        have_error |= is_error;
    }
    fclose(f);
}

/* runs the unfinished runs J at a time; ok[i] = 1 for a finished run, why[i] the reason of a failed
 * one; returns the number that failed */
static int run_all(const Sweep *s, int jobs, const char *train_exe, int *ok, char (*why)[ST_ERR_LEN]) {
    Job *running = st_calloc((size_t)jobs, sizeof(Job));
    int n_running = 0, failed = 0, next = 0, forwarded = 0;
    for (;;) {
        while (!stop_requested && n_running < jobs && next < s->n_runs) {
            TrainConfig cfg;
            char name[256], cmd[4096], log[1600], err[ST_ERR_LEN];
            int i = next++;
            if (sweep_run_config(s, i, &cfg, name, sizeof name, err)) {
                fprintf(stderr, "error: %s\n", err);
                snprintf(why[i], ST_ERR_LEN, "error: %.480s", err);
                failed++;
                continue;
            }
            SweepRunState st = sweep_run_state(&cfg);
            if (st == SWEEP_RUN_DONE) {
                ok[i] = 1;
                continue;
            }
            SweepCommand argv;
            sweep_run_argv(s, &cfg, st, train_exe, &argv);
            sweep_run_command(s, &cfg, st, train_exe, cmd, sizeof cmd);
            snprintf(log, sizeof log, "%s/%s.log", s->dir, name);
            printf("[%s] %s: %s  (log: %s)\n", STATE_NAME[st], name, cmd, log);
            fflush(stdout);
            running[n_running].pid = start(&argv, log);
            running[n_running++].index = i;
        }
        if (n_running == 0) break;
        int status;
        pid_t pid = wait(&status);
        if (pid < 0) {
            if (errno != EINTR) break;
            /* a Ctrl-C reaches the children anyway; a `kill` of bin/sweep alone must be passed on */
            if (stop_requested && !forwarded) {
                for (int j = 0; j < n_running; j++) kill(running[j].pid, SIGTERM);
                forwarded = 1;
            }
            continue;
        }
        for (int j = 0; j < n_running; j++) {
            if (running[j].pid != pid) continue;
            /* a run stopped by a signal (exit 75) is not a failure: the next bin/sweep resumes it */
            int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1, good = code == 0 || code == TRAIN_EXIT_STOPPED;
            TrainConfig cfg;
            char name[256], err[ST_ERR_LEN], log[1600];
            int i = running[j].index;
            sweep_run_config(s, i, &cfg, name, sizeof name, err);
            int done = good && sweep_run_state(&cfg) == SWEEP_RUN_DONE;
            ok[i] = done;
            if (!good) {
                failed++;
                snprintf(log, sizeof log, "%s/%s.log", s->dir, name);
                failure_reason(log, why[i], ST_ERR_LEN);
            }
            printf("[%s] %s%s%s\n", done ? "finished" : good ? "stopped" : "FAILED", name, good ? "" : ": ",
                   good ? "" : why[i]);
            fflush(stdout);
            running[j] = running[--n_running];
            break;
        }
    }
    free(running);
    return failed;
}

/* bin/report --compare over every finished run, into the sweep's directory */
static int compare_runs(const Sweep *s, const int *ok, const char *report_exe) {
    char **argv = st_calloc((size_t)s->n_runs + 6, sizeof(char *));
    int n = 0;
    argv[n++] = (char *)report_exe;
    argv[n++] = "--compare";
    for (int i = 0; i < s->n_runs; i++) {
        if (!ok[i]) continue;
        TrainConfig cfg;
        char name[256], err[ST_ERR_LEN];
        sweep_run_config(s, i, &cfg, name, sizeof name, err);
        argv[n] = st_malloc(2048);
        snprintf(argv[n++], 2048, "%s/%s", s->dir, name);
    }
    int runs = n - 2;
    argv[n++] = "--out";
    argv[n++] = (char *)s->dir;
    int rc = 0;
    if (runs >= 1) {
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            execv(report_exe, argv);
            fprintf(stderr, "error: cannot run %s: %s\n", report_exe, strerror(errno));
            _exit(127);
        }
        int status;
        waitpid(pid, &status, 0);
        rc = WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
    }
    for (int i = 2; i < runs + 2; i++) free(argv[i]);
    free(argv);
    return rc;
}

/* the usage on f; returns the exit code of a usage error */
/* the name of run i (its directory under the sweep's) */
static const char *run_name(const Sweep *s, int i) {
    static char name[256];
    TrainConfig cfg;
    char err[ST_ERR_LEN];
    sweep_run_config(s, i, &cfg, name, sizeof name, err);
    return name;
}

/* appends to the sweep's compare.md (made when no run finished) the runs that failed and why */
static int note_failures(const Sweep *s, char (*why)[ST_ERR_LEN], char *err) {
    char path[1400];
    snprintf(path, sizeof path, "%s/compare.md", s->dir);
    FILE *f = fopen(path, "a");
    if (!f) return st_errorf(err, "%s: cannot append: %s", path, strerror(errno));
    fprintf(f, "\n## Runs that failed\n\nTheir logs are beside this file (<run>.log); the last error of each:\n\n");
    for (int i = 0; i < s->n_runs; i++)
        if (why[i][0]) fprintf(f, "- %s: `%s`\n", run_name(s, i), why[i]);
    if (fclose(f) != 0) return st_errorf(err, "%s: write failed: %s", path, strerror(errno));
    return 0;
}

static int usage(FILE *f) {
    fprintf(f, "usage: bin/sweep FILE.sweep [--jobs J] [--list]\n"
               "       bin/sweep FILE.sweep --emit parallel|slurm\n");
    return 2;
}

/* the flags after the sweep file; 0, or -1 with err */
static int parse_flags(int argc, char **argv, int *jobs, int *list, const char **emit, char *err) {
    if (args_check_repeats(argc, argv, err)) return -1;
    for (int i = 2; i < argc; i++) {
        const char *value;
        long long j;
        if (!strcmp(argv[i], "--list")) *list = 1;
        else if (strcmp(argv[i], "--jobs") && strcmp(argv[i], "--emit"))
            return st_errorf(err, "unknown argument '%s' (expected --jobs, --list, --emit)", argv[i]);
        else if (args_value(argc, argv, i++, &value, err)) return -1;
        else if (!strcmp(argv[i - 1], "--emit")) *emit = value;
        else if (args_int("--jobs", value, 1, 256, &j, err)) return -1;
        else *jobs = (int)j;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (args_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    if (argc < 2 || argv[1][0] == '-') return usage(stderr);
    int jobs = 1, list = 0;
    const char *emit = NULL;
    char err[ST_ERR_LEN];
    static Sweep s;
    if (parse_flags(argc, argv, &jobs, &list, &emit, err)) {
        fprintf(stderr, "error: %s\n", err);
        return usage(stderr);
    }
    if (sweep_load(&s, argv[1], err)) {
        fprintf(stderr, "error: %s\n", err);
        return 2;
    }
    if (emit) {
        int rc = !strcmp(emit, "parallel") ? sweep_emit_parallel(&s, stdout, err)
                 : !strcmp(emit, "slurm")  ? sweep_emit_slurm(&s, stdout, err)
                                           : st_errorf(err, "--emit: expected parallel or slurm, found '%s'", emit);
        if (rc) fprintf(stderr, "error: %s\n", err);
        return rc ? 1 : 0;
    }
    if (list) {
        for (int i = 0; i < s.n_runs; i++) {
            TrainConfig cfg;
            char name[256];
            if (sweep_run_config(&s, i, &cfg, name, sizeof name, err)) return 1;
            printf("%-8s %s/%s\n", STATE_NAME[sweep_run_state(&cfg)], s.dir, name);
        }
        return 0;
    }
    if (sweep_write_configs(&s, err)) {
        fprintf(stderr, "error: %s\n", err);
        return 1;
    }
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    char train_exe[1024], report_exe[1024];
    sibling_exe(argv[0], "train", train_exe, sizeof train_exe);
    sibling_exe(argv[0], "report", report_exe, sizeof report_exe);
    printf("sweep %s: %d runs in %s, %d at a time\n", s.path, s.n_runs, s.dir, jobs);
    int *ok = st_calloc((size_t)s.n_runs, sizeof(int));
    char(*why)[ST_ERR_LEN] = st_calloc((size_t)s.n_runs, sizeof *why);
    int failed = run_all(&s, jobs, train_exe, ok, why), finished = 0;
    for (int i = 0; i < s.n_runs; i++) finished += ok[i];
    printf("sweep %s: %d of %d runs finished, %d failed%s\n", s.name, finished, s.n_runs, failed,
           stop_requested ? " (stopped: run the same command again to resume)" : "");
    for (int i = 0; i < s.n_runs; i++)
        if (why[i][0]) printf("  failed: %s: %s\n", run_name(&s, i), why[i]);
    int rc = failed || stop_requested || finished < s.n_runs;
    if (finished && compare_runs(&s, ok, report_exe)) rc = 1;
    if (failed && note_failures(&s, why, err)) {
        fprintf(stderr, "error: %s\n", err);
        rc = 1;
    }
    free(why);
    free(ok);
    return rc;
}
