#include "rundir.h"

#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <fnmatch.h>
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

/* the names of the files a run of bin/train (and bin/probe, bin/report, bin/export into it) writes */
static const char *const RUN_FILES[] = {"config.txt", "train.lock", "data.txt", "ckpt_*.bin", "ckpt_*.bin.damaged", "probe_set.bin", "attention.bin",
                                        "*.jsonl",    "*.json",     "*.png",    "*.md",         "*.html",
                                        "*.safetensors", "*.tmp"};

static int is_run_file(const char *name) {
    for (size_t i = 0; i < sizeof RUN_FILES / sizeof RUN_FILES[0]; i++)
        if (fnmatch(RUN_FILES[i], name, FNM_PERIOD) == 0) return 1;
    return 0;
}

/* a run directory is a real directory (not a symlink to one) whose config.txt bin/train wrote */
static int check_is_run(const char *run_dir, char *err) {
    struct stat st;
    char path[4200], first[64] = "";
    if (lstat(run_dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return st_errorf(err, "%s: --overwrite: expected a run directory, found %s", run_dir,
                         S_ISLNK(st.st_mode) ? "a symbolic link (not followed)" : "something else");
    snprintf(path, sizeof path, "%s/config.txt", run_dir);
    FILE *f = fopen(path, "r");
    if (f) {
        if (!fgets(first, sizeof first, f)) first[0] = 0;
        fclose(f);
    }
    if (strncmp(first, RUN_CONFIG_MARK, strlen(RUN_CONFIG_MARK)) != 0)
        return st_errorf(err, "%s: --overwrite: not a run of bin/train (no config.txt starting '%s'); delete it "
                         "yourself if it must go",
                         run_dir, RUN_CONFIG_MARK);
    return 0;
}

/* Checks that the run directory holds only files a run writes (no subdirectory, symbolic link or file
 * of another name); with `delete`, then deletes them and the directory. Nothing is deleted on a refusal. */
static int run_files(const char *run_dir, int delete, char *err) {
    DIR *d = opendir(run_dir);
    if (!d) return st_errorf(err, "%s: --overwrite: cannot list: %s", run_dir, strerror(errno));
    char path[4400];
    int rc = 0;
    for (int pass = 0; pass < 1 + delete && rc == 0; pass++) { /* pass 0 checks every entry, pass 1 deletes */
        rewinddir(d);
        for (struct dirent *e; rc == 0 && (e = readdir(d));) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            snprintf(path, sizeof path, "%s/%s", run_dir, e->d_name);
            struct stat st;
            /* an entry gone since the listing is skipped: a running bin/train renames its temporary
             * files into place (the lock check then names that run) */
            int found = lstat(path, &st) == 0;
            if (!found && errno == ENOENT) continue;
            int plain = found && S_ISREG(st.st_mode);
            if (pass == 0 && (!plain || !is_run_file(e->d_name)))
                rc = st_errorf(err, "%s: --overwrite: %s is not a file of a run; nothing deleted (move it out first)",
                               run_dir, e->d_name);
            else if (pass == 1 && unlink(path) != 0 && errno != ENOENT)
                rc = st_errorf(err, "%s: --overwrite: cannot delete: %s", path, strerror(errno));
        }
    }
    closedir(d);
    if (rc == 0 && delete && rmdir(run_dir) != 0)
        rc = st_errorf(err, "%s: --overwrite: cannot delete the old run: %s", run_dir, strerror(errno));
    return rc;
}

int rundir_check(const char *run_dir, RunMode mode, char *err) {
    struct stat st;
    int exists = lstat(run_dir, &st) == 0; /* a dangling symbolic link exists too */
    if (mode == RUN_NEW && exists)
        return st_errorf(err,
                         "%s: the run directory already exists; continue it with `bin/train --resume %s` or "
                         "start over with --overwrite",
                         run_dir, run_dir);
    if (mode == RUN_RESUME && !is_dir(run_dir))
        return st_errorf(err, "%s: --resume: expected a run directory, found none", run_dir);
    if (mode == RUN_OVERWRITE && exists && (check_is_run(run_dir, err) || run_files(run_dir, 0, err))) return -1;
    return 0;
}

int rundir_create(const char *run_dir, RunMode mode, char *err) {
    struct stat st;
    if (mode == RUN_OVERWRITE && lstat(run_dir, &st) == 0 && (check_is_run(run_dir, err) || run_files(run_dir, 1, err)))
        return -1;
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
    fprintf(a.f, "%s: every resolved setting, in the format of bin/train --config\n", RUN_CONFIG_MARK);
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

/* the files of a prepared data directory a run reads (a synthetic stream may read none of them) */
static const char *const DATA_FILES[] = {"tokenizer.bin", "train.bin", "val.bin"};
#define N_DATA_FILES (int)(sizeof DATA_FILES / sizeof DATA_FILES[0])

/* line i of data.txt: "<file> <size> <crc32>", or "<file> absent" */
static int fingerprint_line(const char *data_dir, int i, char *line, size_t size, char *err) {
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", data_dir, DATA_FILES[i]);
    int64_t bytes;
    uint32_t crc;
    if (access(path, F_OK) != 0) snprintf(line, size, "%s absent", DATA_FILES[i]);
    else if (st_file_crc32(path, &bytes, &crc, err)) return -1;
    else snprintf(line, size, "%s %" PRId64 " %08" PRIx32, DATA_FILES[i], bytes, crc);
    return 0;
}

int rundir_write_data_fingerprint(const char *run_dir, const char *data_dir, char *err) {
    char path[4200], line[600];
    snprintf(path, sizeof path, "%s/data.txt", run_dir);
    StAtomic a;
    if (st_atomic_open(&a, path, err)) return -1;
    fprintf(a.f, "# the data this run trains on (%s): file, bytes, CRC-32; --resume checks it\n", data_dir);
    for (int i = 0; i < N_DATA_FILES; i++) {
        if (fingerprint_line(data_dir, i, line, sizeof line, err)) {
            st_atomic_abort(&a);
            return -1;
        }
        fprintf(a.f, "%s\n", line);
    }
    return st_atomic_commit(&a, err);
}

int rundir_check_data_fingerprint(const char *run_dir, const char *data_dir, char *err) {
    char path[4200], stored[600], now[600];
    snprintf(path, sizeof path, "%s/data.txt", run_dir);
    FILE *f = fopen(path, "r");
    if (!f) return errno == ENOENT ? 0 : st_errorf(err, "%s: cannot open: %s", path, strerror(errno));
    int rc = 0;
    for (int i = 0; i < N_DATA_FILES && rc == 0; i++) {
        int got;
        while ((got = fgets(stored, sizeof stored, f) != NULL) && stored[0] == '#') continue; /* the comment */
        stored[strcspn(stored, "\n")] = 0;
        if (!got) rc = st_errorf(err, "%s: expected a line for %s, found the end", path, DATA_FILES[i]);
        else if (fingerprint_line(data_dir, i, now, sizeof now, err)) rc = -1;
        else if (strcmp(stored, now) != 0)
            rc = st_errorf(err,
                           "%s/%s changed since the run started (then: %s; now: %s): resuming would train on other "
                           "tokens; restore the data, or start a new run",
                           data_dir, DATA_FILES[i], stored, now);
    }
    fclose(f);
    return rc;
}
