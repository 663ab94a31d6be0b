/* probes/report/runlog.h: reading a run directory back (train.jsonl, probes.jsonl, summary.json,
 * interventions.jsonl, config.txt) for the figures and the report (attention.bin: probes/attnmaps.h).
 *
 * JSONL files are read one line at a time with cJSON; a line that is not a JSON object, a required key
 * that is missing, or a value of the wrong type or length is an error naming the file, the line and
 * the key. After validation, the getters are lenient: a missing key or a JSON null reads as NaN. */
#ifndef SINKTRACE_RUNLOG_H
#define SINKTRACE_RUNLOG_H

#include <cJSON.h>

typedef struct {
    char path[1024];
    int n;        /* objects read */
    cJSON **row;  /* [n] */
    int *line;    /* [n] 1-based line number of each object */
} Jsonl;

/* 0 read, 1 file absent (j empty), -1 unreadable or malformed (err names path:line) */
int jsonl_read(const char *path, Jsonl *j, char *err);
void jsonl_free(Jsonl *j);

/* what a JSON value is, for error messages: "a number", "a string", "null", ..., "nothing" (NULL) */
const char *json_kind(const cJSON *v);
/* row r's key as a number: NaN when absent or null */
double jnum(const cJSON *row, const char *key);
/* row r's array key into out[0..n): NaN for absent entries; returns the array's length (0 if none) */
int jarr(const cJSON *row, const char *key, double *out, int n);
/* the array length of key in row (-1 when the key is absent or not an array) */
int jlen(const cJSON *row, const char *key);

/* Checks that every row has `key` as a number (required) or as a number/null when present. */
int jsonl_require_num(const Jsonl *j, const char *key, int required, char *err);
/* Checks that every row that has `key` holds an array of numbers/nulls of length n. */
int jsonl_require_arr(const Jsonl *j, const char *key, int n, char *err);

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
