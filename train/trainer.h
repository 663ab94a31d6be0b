/* train/trainer.h: the training loop of bin/train.
 *
 * One optimizer step: grad_accum micro-batches of batch_size training windows, each forward and
 * backward with scale 1/grad_accum (so the gradient is the mean over micro-batches); a check that the
 * loss and every gradient are finite; the global gradient norm clipped to grad_clip; one AdamW update
 * at the schedule's learning rate, unless the spike guard (spike_guard > 0) finds the gradient norm
 * above spike_guard x the median of the last SPIKE_WINDOW steps': then the update is skipped (the
 * step still counts, its data is consumed) and logged with "skipped": 1. Around the steps: validation loss every eval_every steps and at the
 * end, a train.jsonl line every log_every steps, the probes when due, checkpoints every ckpt_every
 * steps and at the end, and a clean stop with a checkpoint on SIGINT/SIGTERM.
 *
 * Under mpirun (train/dist.h) each rank computes its slice of every micro-batch, the gradients and
 * losses are averaged over the ranks before the checks, and rank 0 alone writes the run directory. */
#ifndef SINKTRACE_TRAINER_H
#define SINKTRACE_TRAINER_H

#include <stdint.h>
#include <stdio.h>

#include "../common/jsonl.h"
#include "../data/loader.h"
#include "../model/moe.h"
#include "../probes/probe.h"
#include "adamw.h"
#include "checkpoint.h"
#include "config.h"
#include "progress.h"
#include "rundir.h"

typedef struct {
    TrainConfig cfg;       /* resolved: vocab_size from the data, head_dim from the model */
    char run_dir[4096];
    Moe model;
    Loader loader;
    AdamW opt;
    int threads;           /* OpenMP threads in use */
    int lock_fd;           /* holds <run_dir>/train.lock (rundir_lock); -1 = not held */

    /* loop state (what the probes read) */
    int64_t step;          /* optimizer steps done */
    int64_t tokens;        /* training tokens consumed */
    double last_val_loss;  /* mean validation cross-entropy of the last evaluation; NaN before one */
    int64_t ckpt_step;     /* step of the last checkpoint written or loaded; -1 = none */

    /* the current step */
    int *inputs, *targets; /* [batch_size][seq_len] */
    MoeLoss step_loss;     /* mean over the step's micro-batches */
    float *step_load;      /* [L][E] expert load, mean over the step's micro-batches */
    double grad_norm;      /* before clipping */
    int skipped;           /* 1 when the spike guard skipped this step's update */

    /* the loss-spike guard (cfg.spike_guard > 0): the last gradient norms, oldest first */
    int n_norms;
    double norms[SPIKE_WINDOW];
    float lr;

    /* logging */
    FILE *log;             /* train.jsonl */
    StJson json;
    Progress progress;
    double interval_seconds; /* compute time of the steps since the last log line */
    int64_t interval_steps;

    Prober prober;           /* the probe set and capture of probes/probe.h */
} Trainer;

/* A loader of T-token windows under policy bos from the config's token source: data_dir's shards, or
 * the synthetic stream of the stream_* keys (whose corpus table reads data_dir). */
int open_windows(Loader *ld, const TrainConfig *c, int T, BosPolicy bos, uint64_t seed, char *err);
/* The policy of the natural probe windows (no BOS): none, except start-aligned windows for runs whose
 * training windows start at documents (start; doc on a synthetic stream, whose documents fill a window). */
BosPolicy probe_window_policy(const TrainConfig *c);

/* Opens the data, builds the model and optimizer, and prepares the run directory: RUN_NEW and
 * RUN_OVERWRITE write config.txt; RUN_RESUME loads the latest checkpoint of run_dir (rejecting one
 * whose config differs from cfg) and continues exactly where it stopped. */
/* the exit code of a bin/train stopped (SIGINT, SIGTERM) before its last step, with a checkpoint to
 * resume from: EX_TEMPFAIL of sysexits.h, "try again", which a scheduler's wrapper can requeue on */
#define TRAIN_EXIT_STOPPED 75

int trainer_open(Trainer *t, const TrainConfig *cfg, const char *run_dir, RunMode mode, char *err);
void trainer_close(Trainer *t);

/* Trains until `until` steps are done (at most cfg.steps) or a stop is requested, then writes a
 * checkpoint. A stop (SIGINT, SIGTERM) is honoured within one micro-batch: the step under way is
 * abandoned (its windows given back, nothing updated) and the checkpoint holds the state before it.
 * Returns 0 when `until` was reached, 1 when stopped by a signal, -1 on an error (NaN or Inf: the last
 * good checkpoint is kept, no new one is written). */
int trainer_run(Trainer *t, int64_t until, char *err);

/* The phases of one step, in the order trainer_run calls them. */
/* micro-batches forward + backward; -1 on a NaN loss, 1 when abandoned for a stop */
int trainer_compute_grads(Trainer *t, char *err);
int trainer_check_grads(Trainer *t, char *err);   /* grad norm; -1 naming the first non-finite tensor */
/* the spike guard's decision for the step whose grad_norm trainer_check_grads just computed: sets
 * t->skipped and adds the norm to the window */
void trainer_spike_guard(Trainer *t);
void trainer_apply_update(Trainer *t);            /* clip, AdamW (unless skipped), step += 1 */

/* mean cross-entropy over eval_batches batches of the loader's fixed validation windows */
double trainer_evaluate(Trainer *t);
int trainer_checkpoint(Trainer *t, char *err);

/* THE place where the probes run, after every step (and once before the first): when the schedule
 * (probes/probe.h) says the step is due, probes the model into t->run_dir (probes.jsonl, summary.json,
 * attention.bin; at the last step also every variant and interventions.jsonl). -1 on a write error. */
int run_probes_if_due(Trainer *t, char *err);

/* SIGINT and SIGTERM ask the loop to stop after the current step (a second one kills at once) */
void trainer_install_signal_handlers(void);
void trainer_request_stop(void);

#endif
