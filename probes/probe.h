/* probes/probe.h: running the probes on a model during (or after) training.
 *
 * A Prober owns a run's probe set (probe_set.bin), the capture buffers for one forward of all probe_n
 * windows at once, and the run's probe outputs:
 *   probes.jsonl       one line per probe step and variant (record_fields of probes/record.h: every key;
 *                      and for a model with attn_sink_logit, sink_logit [L*H]: the learned sink logits
 *                      blocks.<l>.attn.sink, so a report needs no model)
 *   summary.json       rewritten after each probe step (emergence steps, final values, d* and C2)
 *   attention.bin      at every probe step: the attention maps of probe window 0 of the variant the
 *                      run trained on (probes/attnmaps.h)
 *   interventions.jsonl at the final probe: every intervention of probes/interventions.h
 *
 * Steps count optimizer updates done: step 0 is the initial model, step total_steps the trained one. */
#ifndef SINKTRACE_PROBE_H
#define SINKTRACE_PROBE_H

#include <stdint.h>

#include "../common/jsonl.h"
#include "../data/loader.h"
#include "../model/moe.h"
#include "metrics.h"
#include "probeset.h"
#include "record.h"

typedef enum { PROBE_SCHEDULE_LOG = 0, PROBE_SCHEDULE_LINEAR = 1 } ProbeScheduleKind;

/* The probe keys of a run, embedded in its TrainConfig (train/config.h) as `probes`: the config's
 * table of keys holds their names, defaults, bounds and help. */
typedef struct {
    int every;    /* probe_every: probe every this many steps (0 = only the schedule's other steps) */
    int n;        /* probe_n: probe windows */
    int len;      /* probe_len: tokens per window */
    int schedule; /* probe_schedule: a ProbeScheduleKind; log adds about ten log-spaced early probes */
    int shift;    /* probe_shift: random tokens the shifted variant prepends */
} ProbeConfig;

/* what no single key can check: the probe set's shape (probe_set_check: probe_shift below probe_len)
 * and probe_len <= the model's seq_len; errors start with `where` */
int probe_config_check(const char *where, const ProbeConfig *c, int seq_len, char *err);

/* 1 when `step` is a probe step: step 0, the last step, every `every` steps, and with the log schedule
 * the ten steps round(s^(k/9)), k = 0..9, with s = total_steps / 10 */
int probe_is_due(long step, long total_steps, const ProbeConfig *c);

/* Builds a run's probe set from the first n validation windows of `windows` (a loader of T tokens
 * without BOS, drawn like the run's training windows), or loads `path` when it exists after checking
 * it holds n windows of T tokens with this shift (windows may then be NULL). */
/* a probe set of n windows needs n validation windows in the loader (opened with probe_len tokens) */
int probe_windows_check(const Loader *ld, int n, char *err);
int probe_set_open(ProbeSet *ps, const char *path, const Loader *windows, int n, int T, int shift, uint64_t seed,
                   char *err);

typedef struct {
    ProbeConfig cfg;
    ProbeSet set;
    ProbeDims dims;
    int probe_bos;             /* the run trains with BOS: probe the bos variant at every step too */
    char run_dir[4096];
    StJson json;
    MoeCapture cap;            /* capture arrays for N = probe_n sequences of T = probe_len tokens */
    float *norm_gains;         /* [2L+1][C] gain of the RMSNorm that reads each residual point */
    float *sink_logit;         /* [L][H] the learned sink logits at the last measure (NULL: the model has none) */
    uint8_t *bos_classes;      /* [N][T] query classes of the bos variant (the natural ones, one place on) */
    double seconds;            /* wall time spent probing so far (this process) */
    double final_seconds;      /* the part of it spent on the final step (variants, interventions) */
    double opened_at;          /* st_now_seconds() at prober_open: the run's time in this process */
} Prober;

/* Opens (or creates, from `windows` as probe_set_open does) run_dir/probe_set.bin and allocates the
 * capture for model config mc. */
int prober_open(Prober *pr, const char *run_dir, const Loader *windows, const ProbeConfig *c, const MoeConfig *mc,
                int probe_bos, uint64_t seed, char *err);
void prober_close(Prober *pr);

/* One forward of variant v's windows with pr->cap plus the interventions in `iv` (NULL = none; its
 * capture pointers are ignored), then every metric into r (allocated by the caller with record_alloc).
 * Leaves the capture arrays filled. */
void prober_measure(Prober *pr, Moe *m, int v, const MoeCapture *iv, ProbeRecord *r);

/* appends one probes.jsonl line: the record, its probe_seconds set to the probing time so far (and
 * sink_logit when the model has them) */
int prober_write_record(Prober *pr, ProbeRecord *r, FILE *f, const char *path, char *err);

/* The probe step `step` of a run of total_steps: measures natural (and bos when probe_bos), appends to
 * probes.jsonl and rewrites summary.json; at step >= total_steps also every other variant,
 * interventions.jsonl; attention.bin gets this step's maps. val_loss may be NaN. */
int prober_step(Prober *pr, Moe *m, long step, long total_steps, long long tokens, double val_loss, char *err);

/* every variant of one step outside the schedule, and the interventions when interventions_name is
 * not NULL: what bin/probe runs on a checkpoint. Lines go to run_dir/out_name, run_dir/interventions_name. */
int prober_full(Prober *pr, Moe *m, long step, long long tokens, double val_loss, const char *out_name,
                const char *interventions_name, char *err);

#endif
