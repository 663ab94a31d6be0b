/* probes/report/runlog.h: reading a run directory back (train.jsonl, probes.jsonl, summary.json,
 * interventions.jsonl, config.txt) for the figures and the report (attention.bin: probes/attnmaps.h).
 *
 * JSONL files are read with common/jsonl.h's reader; a required key that is missing, or a value of the
 * wrong type or length, is an error naming the file, the line and the key. */
#ifndef SINKTRACE_RUNLOG_H
#define SINKTRACE_RUNLOG_H

#include "../../common/jsonl.h"

/* config.txt: `key = value` lines (# comments) kept in file order, for display */
typedef struct {
    int n;
    char key[256][64];
    char value[256][192];
} RunConfig;
/* 0 read, 1 absent, -1 error (a line that is not `key = value`) */
int runconfig_read(const char *path, RunConfig *c, char *err);
const char *runconfig_get(const RunConfig *c, const char *key); /* NULL if absent */
/* the probe variant a run is read on: its windows as trained, "bos" (BOS in front) for bos = prepend
 * or doc, else "natural" (none, and start: documents from their first token, no BOS) */
const char *runconfig_trained_variant(const RunConfig *c);

/* One run directory, read and validated. train.jsonl is required; every other file may be absent (a
 * run without probes, interventions not yet run): `missing` lists what was not there. */
typedef struct {
    char dir[1024], name[256];
    RunConfig cfg;
    int has_cfg;
    Jsonl train, probes, interv; /* n = 0 when absent */
    cJSON *summary;              /* summary.json (summary_bos.json for the bos variant), NULL when absent */
    char variant[16];            /* the probe variant read: "bos" for a run trained with BOS, else "natural" */
    int np, *sel;                /* the probes.jsonl rows of that variant, in file order */
    int L, H, P;                 /* layers, heads, residual points 2L+1 (from probes.jsonl) */
    char missing[512];           /* absent files, comma-separated ("" when none) */
} Run;
int run_load(Run *r, const char *dir, char *err);
/* the same, reading the rows and summary of one probe variant ("natural" or "bos") whatever the run
 * trained on */
int run_load_variant(Run *r, const char *dir, const char *variant, char *err);
void run_free(Run *r);
/* columns as malloc'd arrays (NaN where a row lacks the key): a train.jsonl number [train.n], a
 * natural-probe number [np], a natural-probe array [np][width] */
double *run_train_col(const Run *r, const char *key);
double *run_probe_col(const Run *r, const char *key);
double *run_probe_mat(const Run *r, const char *key, int width);
/* the training time in seconds: each logged ms_per_step times the steps its interval covers (NaN
 * when none is logged); a resumed run's log holds both processes' steps */
double run_training_seconds(const Run *r);
/* the same for the steps up to `until` (a line's interval counted in proportion when it straddles it) */
double run_training_seconds_until(const Run *r, double until);
/* 1 when config.txt says n_expert = 1 (a dense model, no routing) */
int run_is_dense(const Run *r);
/* the last finite value of v[0..n) (NaN if none) and, when at is not NULL, its index */
double last_finite(const double *v, int n, int *at);

#endif
