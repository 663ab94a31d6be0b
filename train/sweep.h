/* train/sweep.h: a sweep file names a set of runs; bin/sweep expands, runs, skips and resumes them.
 *
 *   # runs/sweeps/lr.sweep
 *   config = runs/default.conf       # optional base config file
 *   steps = 300                      # a setting for every run
 *   lr = 0.001, 0.003, 0.01          # a list: one axis of the grid
 *   seeds = 1, 2                     # shorthand for an axis on `seed`
 *   [dense]                          # optional named variants: each section is a variant with its
 *   n_expert = 1                     #   own settings and axes, on top of everything above it
 *
 * Runs = for each variant (or the whole file if it has none) the cartesian product of its axes and
 * the global axes, in file order with the last axis fastest. A run is named by its variant and its
 * axis values, e.g. "dense-lr0.003-seed2"; its directory is <dir of the sweep file>/<sweep name>/<run>
 * and its full resolved config is written beside it as <run>.conf. */
#ifndef SINKTRACE_SWEEP_H
#define SINKTRACE_SWEEP_H

#include <stdio.h>

#include "config.h"

#define SWEEP_MAX_ITEMS 48
#define SWEEP_MAX_AXES 8
#define SWEEP_MAX_VALUES 32
#define SWEEP_MAX_VARIANTS 32

typedef struct {
    char key[64];
    char value[512];
} SweepSetting;

typedef struct {
    char key[64];
    int n_values;
    char values[SWEEP_MAX_VALUES][64];
} SweepAxis;

typedef struct {
    char name[64]; /* "" for the global part */
    int n_settings;
    SweepSetting settings[SWEEP_MAX_ITEMS];
    int n_axes;
    SweepAxis axes[SWEEP_MAX_AXES];
} SweepVariant;

typedef struct {
    char path[1024];
    char name[128];      /* the file name without .sweep */
    char dir[1200];      /* where the runs go: <dir of the file>/<name> */
    char base_config[1024]; /* "" = none */
    SweepVariant global;
    int n_variants;
    SweepVariant variants[SWEEP_MAX_VARIANTS];
    int n_runs;
} Sweep;

/* reads and checks a sweep file: every key and every value is tried on a config (errors name the
 * file and line), and every run's full config must validate */
int sweep_load(Sweep *s, const char *path, char *err);

/* the full config and the name of run i (0 <= i < n_runs) */
int sweep_run_config(const Sweep *s, int i, TrainConfig *cfg, char *name, size_t size, char *err);

typedef enum { SWEEP_RUN_NEW, SWEEP_RUN_EMPTY, SWEEP_RUN_PARTIAL, SWEEP_RUN_DONE } SweepRunState;
/* NEW: no run directory; EMPTY: a directory without a checkpoint (died before its first: start it
 * again); PARTIAL: a checkpoint before the last step, or a damaged latest one (resume it: a damaged one
 * fails, naming the checkpoint to resume from); DONE: a checkpoint at the last step */
SweepRunState sweep_run_state(const TrainConfig *cfg);

/* writes <dir>/<run>.conf for every run (creating dir) */
int sweep_write_configs(const Sweep *s, char *err);
/* the words of a command, passed to execv as they are (a space inside a path stays in its word) */
#define SWEEP_CMD_WORDS 6
typedef struct {
    int n;
    char word[SWEEP_CMD_WORDS][2100];
} SweepCommand;
/* the command that (re)starts a run: `<train_exe> --config <dir>/<run>.conf [--overwrite]`, or
 * `<train_exe> --resume <dir>/<run> --config <dir>/<run>.conf` for a PARTIAL one */
void sweep_run_argv(const Sweep *s, const TrainConfig *cfg, SweepRunState state, const char *train_exe,
                    SweepCommand *cmd);
/* the same command as one line for a POSIX shell, each word quoted when it needs it */
void sweep_run_command(const Sweep *s, const TrainConfig *cfg, SweepRunState state, const char *train_exe, char *out,
                       size_t size);
/* appends `word` to out as one shell word: as it is when it has only safe characters, else in single
 * quotes (a ' inside becomes '\'') */
void sweep_shell_quote(const char *word, char *out, size_t size);

/* one command line per unfinished run, for GNU parallel */
int sweep_emit_parallel(const Sweep *s, FILE *f, char *err);
/* a Slurm job-array script running one unfinished run per array task */
int sweep_emit_slurm(const Sweep *s, FILE *f, char *err);

#endif
