/* train/rundir.h: the run directory <out_dir>/<run_name>/ and the files the trainer keeps in it:
 * config.txt (every resolved setting plus the git commit, thread count and start time), train.jsonl,
 * ckpt_<step>.bin (checkpoint.h); the probes add probes.jsonl and figures. */
#ifndef SINKTRACE_RUNDIR_H
#define SINKTRACE_RUNDIR_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

typedef enum {
    RUN_NEW,       /* the directory must not exist yet */
    RUN_OVERWRITE, /* an existing run directory is deleted first */
    RUN_RESUME     /* the directory holds a run to continue */
} RunMode;

/* Checks that the mode fits what is on disk (nothing is created or deleted): RUN_NEW refuses an
 * existing directory, naming --resume and --overwrite; RUN_RESUME needs one. */
int rundir_check(const char *run_dir, RunMode mode, char *err);
/* the first line of every config.txt bin/train writes: what --overwrite recognises a run by */
#define RUN_CONFIG_MARK "# sinktrace run config"
/* RUN_NEW: creates the directory (and out_dir); RUN_OVERWRITE: deletes an existing run first, but only
 * a recognisable one (config.txt starting with RUN_CONFIG_MARK, nothing but the files a run writes, no
 * subdirectory or symbolic link): anything else is refused with nothing deleted */
int rundir_create(const char *run_dir, RunMode mode, char *err);
/* Takes the run directory's lock, <run_dir>/train.lock (flock, so it dies with its process: a lock
 * left by a killed run is taken over), and writes this pid into it. Refuses, naming the pid, while
 * another process holds it. *fd stays open for as long as the lock must last; close it to release. */
int rundir_lock(const char *run_dir, int *fd, char *err);
/* writes config.txt, with the git commit, thread count and start time as comments at the top */
int rundir_write_config(const char *run_dir, const TrainConfig *c, int threads, char *err);
/* data.txt: the size and CRC-32 of each file of the data directory (tokenizer.bin, train.bin,
 * val.bin), written when a run starts; the check on --resume names the file that changed, with its old
 * and new size and CRC (a run from before data.txt passes unchecked) */
int rundir_write_data_fingerprint(const char *run_dir, const char *data_dir, char *err);
int rundir_check_data_fingerprint(const char *run_dir, const char *data_dir, char *err);
/* appends "# resumed at step S ..." to config.txt */
int rundir_note_resume(const char *run_dir, int64_t step, int threads, char *err);
/* Drops the lines of a JSONL file whose "step" is greater than `step` (logged after the checkpoint a
 * run resumes from, so the resumed run's lines are not doubled). A missing file is fine. */
int jsonl_truncate_after_step(const char *path, int64_t step, char *err);
/* `git describe --always --dirty` of the working directory, or "unknown" */
void git_commit(char *buf, size_t size);

#endif
