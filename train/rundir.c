#include "rundir.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../common/binfile.h"
#include "../common/util.h"

static int is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int rundir_check(const char *run_dir, RunMode mode, char *err) {
    int exists = access(run_dir, F_OK) == 0;
    if (mode == RUN_NEW && exists)
        return st_errorf(err,
                         "%s: the run directory already exists; continue it with `bin/train --resume %s` or "
                         "start over with --overwrite",
                         run_dir, run_dir);
    if (mode == RUN_RESUME && !is_dir(run_dir))
        return st_errorf(err, "%s: --resume: expected a run directory, found none", run_dir);
    if (mode == RUN_OVERWRITE && exists && !is_dir(run_dir))
        return st_errorf(err, "%s: --overwrite: expected a run directory, found a file", run_dir);
    return 0;
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw) {
    (void)st, (void)type, (void)ftw;
    return remove(path);
}

int rundir_create(const char *run_dir, RunMode mode, char *err) {
    if (mode == RUN_OVERWRITE && is_dir(run_dir) && nftw(run_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        return st_errorf(err, "%s: --overwrite: cannot delete the old run: %s", run_dir, strerror(errno));
    return st_make_dirs(run_dir, err);
}

int rundir_lock(const char *run_dir, int *fd, char *err) {
    char path[4200], pid[32] = "";
    snprintf(path, sizeof path, "%s/train.lock", run_dir);
    *fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (*fd < 0) return st_errorf(err, "%s: cannot open the lock file: %s", path, strerror(errno));
    if (flock(*fd, LOCK_EX | LOCK_NB) != 0) {
        int saved = errno;
        ssize_t got = read(*fd, pid, sizeof pid - 1);
        pid[got > 0 ? got : 0] = 0;
        pid[strcspn(pid, "\n")] = 0;
        close(*fd);
        *fd = -1;
        if (saved == EWOULDBLOCK)
            return st_errorf(err, "%s: the run is in use by another bin/train (pid %s, lock %s); wait for it or stop it",
                             run_dir, pid[0] ? pid : "unknown", path);
        return st_errorf(err, "%s: cannot lock: %s", path, strerror(saved));
    }
    /* the holder's pid, for the message of a process refused above */
    int len = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(*fd, 0) != 0 || pwrite(*fd, pid, (size_t)len, 0) != len) {
        int saved = errno;
        close(*fd);
        *fd = -1;
        return st_errorf(err, "%s: cannot write the lock file: %s", path, strerror(saved));
    }
    return 0;
}

void git_commit(char *buf, size_t size) {
    snprintf(buf, size, "unknown");
    FILE *p = popen("git describe --always --dirty 2>/dev/null", "r");
    if (!p) return;
    char line[128];
    if (fgets(line, sizeof line, p)) {
        line[strcspn(line, "\n")] = 0;
        if (line[0]) snprintf(buf, size, "%s", line);
    }
    pclose(p);
}

static void utc_now(char *buf, size_t size) {
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(buf, size, "%Y-%m-%d %H:%M:%S UTC", &tm);
}

int rundir_write_config(const char *run_dir, const TrainConfig *c, int threads, char *err) {
    char path[4200], commit[128], when[64];
    snprintf(path, sizeof path, "%s/config.txt", run_dir);
    git_commit(commit, sizeof commit);
    utc_now(when, sizeof when);
    StAtomic a;
    if (st_atomic_open(&a, path, err)) return -1;
    fprintf(a.f, "# sinktrace run config: every resolved setting, in the format of bin/train --config\n");
    fprintf(a.f, "# git commit: %s\n# threads: %d\n# started: %s\n", commit, threads, when);
    if (config_write(c, a.f, path, err)) {
        st_atomic_abort(&a);
        return -1;
    }
    return st_atomic_commit(&a, err);
}

int rundir_note_resume(const char *run_dir, int64_t step, int threads, char *err) {
    char path[4200], commit[128], when[64];
    snprintf(path, sizeof path, "%s/config.txt", run_dir);
    git_commit(commit, sizeof commit);
    utc_now(when, sizeof when);
    FILE *f = fopen(path, "a");
    if (!f) return st_errorf(err, "%s: cannot append: %s", path, strerror(errno));
    fprintf(f, "# resumed at step %" PRId64 ": %s, threads %d, git commit %s\n", step, when, threads, commit);
    if (fclose(f) != 0) return st_errorf(err, "%s: write failed: %s", path, strerror(errno));
    return 0;
}

int jsonl_truncate_after_step(const char *path, int64_t step, char *err) {
    FILE *in = fopen(path, "r");
    if (!in) return errno == ENOENT ? 0 : st_errorf(err, "%s: cannot open: %s", path, strerror(errno));
    StAtomic a;
    if (st_atomic_open(&a, path, err)) {
        fclose(in);
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, in) > 0) {
        const char *s = strstr(line, "\"step\":");
        long long line_step;
        /* a torn last line (a crash while writing it) has no newline: drop it too */
        int keep = s && sscanf(s + 7, "%lld", &line_step) == 1 && line_step <= step && strchr(line, '\n');
        if (keep) fputs(line, a.f);
    }
    free(line);
    fclose(in);
    return st_atomic_commit(&a, err);
}
