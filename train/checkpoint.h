/* train/checkpoint.h: checkpoints of a run, enough for a bit-exact resume.
 *
 * File <run_dir>/ckpt_<step, 8 digits>.bin, little-endian, common/binfile.h header:
 *   magic "STCKPT", version 1, fields:
 *     0 step (optimizer steps done)   1 n_params          2 bytes of config text
 *     3 training tokens consumed      4 loader RNG state  5 last validation loss (double bits, NaN = none)
 *     6 FNV-1a 64 checksum of everything after the header
 *     7 optional: n, the count of gradient norms in the spike guard's window, then 8.. 7+n those norms
 *       (double bits); a checkpoint without them loads with an empty window
 *   then the config text (`key = value` lines, every key), params[n_params], AdamW m[n_params],
 *   AdamW v[n_params] as float32.
 * Written through StAtomic (temporary file, fsync, rename): a crash leaves the previous checkpoint. */
#ifndef SINKTRACE_CHECKPOINT_H
#define SINKTRACE_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "../model/moe.h"
#include "adamw.h"
#include "config.h"

/* the loss-spike guard's window: the gradient norms of the last SPIKE_WINDOW steps */
#define SPIKE_WINDOW 32

typedef struct {
    int64_t step;
    int64_t tokens;
    uint64_t loader_state;
    double last_val_loss;
    int n_norms;                 /* the spike guard's window, oldest first, saved so that a resumed run */
    double norms[SPIKE_WINDOW];  /* skips exactly the steps the uninterrupted one skips */
} CkptState;

int ckpt_save(const char *path, const TrainConfig *cfg, const Moe *m, const AdamW *opt, const CkptState *s,
              char *err);
/* reads only the stored config (to build the model before loading it) */
int ckpt_read_config(const char *path, TrainConfig *cfg, char *err);
/* reads only the step a checkpoint was written at (checking the file as ckpt_read_config does) */
int ckpt_read_step(const char *path, int64_t *step, char *err);
/* Loads parameters into m (allocated for the same config), moments into opt (NULL = skip), and the
 * state. With run_cfg non-NULL, a stored config that differs from it is rejected naming the key. */
int ckpt_load(const char *path, const TrainConfig *run_cfg, Moe *m, AdamW *opt, CkptState *s, char *err);

void ckpt_path(char *out, size_t size, const char *run_dir, int64_t step);
/* the path of the checkpoint with the highest step in run_dir; -1 with an error if there is none */
int ckpt_latest(const char *run_dir, char *out, size_t size, char *err);
/* the path of the checkpoint at `step` (-1: the latest); -1 with an error naming the run and the steps it
 * has when there is none */
/* the newest checkpoint of run_dir that reads back whole (header and checksum), in out; -1 when there
 * is none */
int ckpt_newest_valid(const char *run_dir, char *out, size_t size);
int ckpt_of_step(const char *run_dir, int64_t step, char *out, size_t size, char *err);
/* builds the model of run_dir's checkpoint at `step` (-1: the latest) into m (zeroed by the caller; free it
 * with moe_free also on failure) with its config and state; the checkpoint's path goes to path */
int ckpt_open_model(const char *run_dir, int64_t step, TrainConfig *cfg, Moe *m, CkptState *s, char *path,
                    size_t size, char *err);
/* deletes all but the `keep` latest checkpoints of run_dir */
int ckpt_prune(const char *run_dir, int keep, char *err);

#endif
