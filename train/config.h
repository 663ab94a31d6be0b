/* train/config.h: THE config of a run, and its one parser.
 *
 * Every setting of the model, the data, the optimizer, the schedule, the probes and the run is a key
 * of one table (name, type, default, valid range, one-line help). The table drives everything: the
 * `key = value` file parser, the `--key value` flags, validation (errors name the key), `--help`, the
 * config.txt of a run, and the config stored in checkpoints (compared key by key on resume). */
#ifndef SINKTRACE_CONFIG_H
#define SINKTRACE_CONFIG_H

#include <stdint.h>
#include <stdio.h>

#include "../data/stream.h"
#include "../model/moe.h"
#include "../probes/probe.h"

typedef enum { SCHEDULE_COSINE = 0, SCHEDULE_WSD = 1, SCHEDULE_CONSTANT = 2 } ScheduleKind;

typedef struct {
    MoeConfig model; /* the model keys; vocab_size 0 = take it from the data's tokenizer */

    /* data */
    char data_dir[512];
    int bos; /* a BosPolicy (data/loader.h): 0 none, 1 prepend, 2 doc, 3 start */
    StreamConfig stream; /* kind STREAM_CORPUS: windows of data_dir's shards; else generated on the fly */

    /* optimizer and schedule */
    int batch_size;
    int grad_accum;
    int steps;
    float lr;
    float min_lr_ratio;
    int warmup_steps;
    int schedule; /* a ScheduleKind */
    float decay_frac;
    float weight_decay;
    float beta1, beta2, eps;
    float grad_clip;
    float spike_guard; /* > 0: skip a step whose gradient norm exceeds this times the recent median */

    /* run */
    char run_name[128];
    char out_dir[512];
    int eval_every;
    int eval_batches;
    int log_every;
    int ckpt_every;
    int keep_ckpts;
    int threads;

    ProbeConfig probes; /* the probe_* keys */
} TrainConfig;

/* every key at its default (model keys from moe_config_default) */
void config_defaults(TrainConfig *c);

/* Sets one key from its text value. `origin` prefixes errors, e.g. "runs/a.conf:3" or "--lr". */
int config_set(TrainConfig *c, const char *key, const char *value, const char *origin, char *err);
/* The one line reader of config-like files: calls fn for each non-blank line after stripping '#'
 * comments and white space, with the text left and right of the first '=' (value NULL when the line
 * has none); `where` is "origin:line" for error messages. Stops at the first error fn returns. */
typedef int (*ConfigLineFn)(void *ctx, const char *key, const char *value, const char *where, char *err);
int config_parse_lines(const char *text, const char *origin, ConfigLineFn fn, void *ctx, char *err);
/* a whole text file, NUL-terminated and malloc'd; NULL with err if unreadable or not text */
char *config_read_file(const char *path, char *err);

/* Reads `key = value` lines (# starts a comment; blank lines ignored); a key given twice is an error. */
int config_load_file(TrainConfig *c, const char *path, char *err);
/* Same, from text in memory (a checkpoint's stored config); `origin` names where it came from. */
int config_load_text(TrainConfig *c, const char *text, const char *origin, char *err);
/* Checks what no single key can: combinations, and the model through moe_config_validate. */
int config_validate(TrainConfig *c, char *err);

/* Writes every key as `key = value` with its help as a comment; returns -1 on a write error. */
int config_write(const TrainConfig *c, FILE *f, const char *path, char *err);
/* The same lines, without comments, into a malloc'd string (what checkpoints store). */
char *config_to_text(const TrainConfig *c);
/* Compares the keys that change what is computed (everything except run-control keys such as
 * log_every or threads). Returns 0 if equal, else -1 with "<origin>: config key K differs: ..." */
int config_compare(const TrainConfig *stored, const TrainConfig *run, const char *origin, char *err);

/* `--help`: every key with its default and one-line meaning */
void config_print_help(FILE *f);
/* the text of one key's value (buf of at least 600 bytes); -1 if the key does not exist */
int config_get(const TrainConfig *c, const char *key, char *buf, size_t size);

#endif
