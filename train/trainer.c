#include "trainer.h"

#include <errno.h>
#include <math.h>
#include <omp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/util.h"
#include "checkpoint.h"
#include "dist.h"
#include "schedule.h"

static volatile sig_atomic_t stop_requested = 0;

void trainer_request_stop(void) { stop_requested = 1; }

static void on_signal(int sig) {
    (void)sig;
    trainer_request_stop();
}

void trainer_install_signal_handlers(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    /* the second signal takes the default action (an immediate exit); interrupted calls resume */
    sa.sa_flags = SA_RESETHAND | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

static int64_t tokens_per_step(const TrainConfig *c) {
    return (int64_t)c->batch_size * c->model.seq_len * c->grad_accum;
}

/* the data decides vocab_size unless the config sets it, and then they must agree */
static int resolve_vocab(Trainer *t, char *err) {
    if (t->cfg.model.vocab_size == 0) t->cfg.model.vocab_size = t->loader.vocab_size;
    return loader_check_vocab(&t->loader, t->cfg.model.vocab_size, t->cfg.data_dir, err);
}

/* A damaged latest checkpoint: the error names the newest valid earlier one and the commands that
 * resume from it (the damaged file set aside, so that it is no longer the latest). */
static int explain_damaged_latest(const Trainer *t, const char *path, char *err) {
    char cause[ST_ERR_LEN], earlier[4200];
    memcpy(cause, err, ST_ERR_LEN);
    if (ckpt_newest_valid(t->run_dir, earlier, sizeof earlier) != 0)
        return st_errorf(err, "%s; no earlier checkpoint reads back whole: start again with --config FILE --overwrite",
                         cause);
    return st_errorf(err, "%s; the newest valid earlier checkpoint is %s: resume from it with `mv %s %s.damaged && "
                     "bin/train --resume %s`", cause, earlier, path, path, t->run_dir);
}

/* loads the latest checkpoint of the run directory and continues from its state */
static int resume_from_latest(Trainer *t, char *err) {
    char path[4200], log_path[4200];
    CkptState s;
    if (ckpt_latest(t->run_dir, path, sizeof path, err)) {
        /* a run killed before its first checkpoint has nothing to continue */
        char cause[ST_ERR_LEN];
        memcpy(cause, err, ST_ERR_LEN);
        return st_errorf(err, "%s; start it again with --config FILE --overwrite", cause);
    }
    if (ckpt_load(path, &t->cfg, &t->model, &t->opt, &s, err)) {
        int64_t step;
        char damage[ST_ERR_LEN];
        /* a checkpoint that reads back whole differs from this run (its config): nothing earlier helps */
        return ckpt_read_step(path, &step, damage) == 0 ? -1 : explain_damaged_latest(t, path, err);
    }
    t->step = t->ckpt_step = s.step;
    t->tokens = s.tokens;
    t->last_val_loss = s.last_val_loss;
    t->n_norms = s.n_norms;
    memcpy(t->norms, s.norms, sizeof t->norms);
    loader_set_state(&t->loader, s.loader_state);
    if (!dist_is_root()) return 0;
    /* lines logged after that checkpoint will be logged again by this run */
    snprintf(log_path, sizeof log_path, "%s/train.jsonl", t->run_dir);
    if (jsonl_truncate_after_step(log_path, s.step, err)) return -1;
    snprintf(log_path, sizeof log_path, "%s/probes.jsonl", t->run_dir);
    if (jsonl_truncate_after_step(log_path, s.step, err)) return -1;
    printf("resuming %s from %s (step %lld)\n", t->run_dir, path, (long long)s.step);
    return rundir_note_resume(t->run_dir, s.step, t->threads, err);
}

int open_windows(Loader *ld, const TrainConfig *c, int T, BosPolicy bos, uint64_t seed, char *err) {
    if (c->stream.kind == STREAM_CORPUS) return loader_open(ld, c->data_dir, T, bos, seed, err);
    Stream *s;
    if (stream_open(&s, &c->stream, c->data_dir, err)) return -1;
    return loader_open_stream(ld, s, T, bos, seed, err);
}

BosPolicy probe_window_policy(const TrainConfig *c) {
    int aligned = c->bos == BOS_START || (c->bos == BOS_DOC && c->stream.kind != STREAM_CORPUS);
    return aligned ? BOS_START : BOS_NONE;
}

/* the validation windows the probe set is built from, checked before anything is created on disk */
static int open_probe_windows(const TrainConfig *c, Loader *windows, char *err) {
    if (open_windows(windows, c, c->probes.len, probe_window_policy(c), c->model.seed, err)) return -1;
    if (probe_windows_check(windows, c->probes.n, err)) {
        loader_close(windows);
        return -1;
    }
    return 0;
}

/* the probe set is built from the windows on the first run, read back on a resume */
static int open_prober(Trainer *t, const Loader *windows, char *err) {
    const TrainConfig *c = &t->cfg;
    return prober_open(&t->prober, t->run_dir, windows, &c->probes, &t->model.cfg,
                       c->bos != BOS_NONE && c->bos != BOS_START, c->model.seed, err);
}

/* --overwrite must not delete a directory that another bin/train is writing */
static int overwrite_only_if_unlocked(const char *run_dir, RunMode mode, char *err) {
    int fd;
    if (mode != RUN_OVERWRITE || access(run_dir, F_OK) != 0) return 0;
    if (rundir_lock(run_dir, &fd, err)) return -1;
    close(fd);
    return 0;
}

/* rank 0: the run directory made (or resumed and locked), config.txt written, train.jsonl open */
static int open_run_dir(Trainer *t, RunMode mode, char *err) {
    const char *run_dir = t->run_dir;
    if (mode == RUN_RESUME) {
        if (rundir_lock(run_dir, &t->lock_fd, err) || rundir_check_data_fingerprint(run_dir, t->cfg.data_dir, err) ||
            resume_from_latest(t, err))
            return -1;
    } else if (overwrite_only_if_unlocked(run_dir, mode, err) || rundir_create(run_dir, mode, err) ||
               rundir_lock(run_dir, &t->lock_fd, err) || rundir_write_config(run_dir, &t->cfg, t->threads, err) ||
               rundir_write_data_fingerprint(run_dir, t->cfg.data_dir, err)) {
        return -1;
    }
    char log_path[4200];
    snprintf(log_path, sizeof log_path, "%s/train.jsonl", run_dir);
    t->log = fopen(log_path, "a");
    if (!t->log) return st_errorf(err, "%s: cannot open for appending: %s", log_path, strerror(errno));
    return 0;
}

int trainer_open(Trainer *t, const TrainConfig *cfg, const char *run_dir, RunMode mode, char *err) {
    memset(t, 0, sizeof *t);
    t->cfg = *cfg;
    t->last_val_loss = NAN;
    t->ckpt_step = -1;
    t->lock_fd = -1;
    snprintf(t->run_dir, sizeof t->run_dir, "%s", run_dir);
    /* only rank 0 touches the run directory (the others read a resumed checkpoint) */
    if (dist_check_batch(cfg->batch_size, dist_size(), err) || (dist_is_root() && rundir_check(run_dir, mode, err)))
        return -1;
    if (cfg->threads > 0) omp_set_num_threads(cfg->threads);
    t->threads = omp_get_max_threads();

    const TrainConfig *c = &t->cfg;
    /* the window stream gets a seed of its own, distinct from the parameter init's */
    uint64_t data_seed = c->model.seed ^ 0x5eed5eed5eed5eedull;
    if (open_windows(&t->loader, c, c->model.seq_len, (BosPolicy)c->bos, data_seed, err) ||
        resolve_vocab(t, err) || moe_init(&t->model, &t->cfg.model, err))
        return -1;
    adamw_init(&t->opt, t->model.n_params);
    size_t BT = (size_t)c->batch_size * c->model.seq_len;
    t->inputs = st_malloc(BT * sizeof(int));
    t->targets = st_malloc(BT * sizeof(int));
    t->step_load = st_calloc((size_t)c->model.n_layer * c->model.n_expert, sizeof(float));

    if (!dist_is_root()) return mode == RUN_RESUME ? resume_from_latest(t, err) : 0;
    Loader windows;
    if (open_probe_windows(c, &windows, err)) return -1;
    int rc = open_run_dir(t, mode, err) || open_prober(t, &windows, err) ? -1 : 0;
    loader_close(&windows);
    if (rc == 0) progress_init(&t->progress, stdout, t->step);
    return rc;
}

void trainer_close(Trainer *t) {
    if (t->log) fclose(t->log);
    if (t->lock_fd >= 0) close(t->lock_fd);
    prober_close(&t->prober);
    sj_free(&t->json);
    free(t->inputs);
    free(t->targets);
    free(t->step_load);
    adamw_free(&t->opt);
    moe_free(&t->model);
    loader_close(&t->loader);
    t->log = NULL;
    t->inputs = t->targets = NULL;
    t->step_load = NULL;
    t->lock_fd = -1;
}

/* names where a non-finite loss came from: a parameter tensor, or the forward pass itself */
static int report_bad_loss(const Trainer *t, float loss, char *err) {
    const Moe *m = &t->model;
    int bad = first_nonfinite_tensor(m->params, m->tensors, m->n_tensors);
    if (bad >= 0)
        return st_errorf(err, "step %lld: the loss is %g: NaN or Inf in the parameters of %s",
                         (long long)t->step + 1, loss, m->tensors[bad].name);
    return st_errorf(err, "step %lld: the loss is %g with finite parameters (the forward pass overflowed)",
                     (long long)t->step + 1, loss);
}

/* Every rank draws the whole global micro-batch (so the loader stays in step with a single process)
 * and computes its own slice of it; the micro-batch losses and gradients are then averaged over the
 * ranks. The ranks' slices have equal token counts, and (every target being valid, as the loaders
 * make them) equal target counts, so the mean of their cross-entropy and z-loss means is the mean
 * over the global micro-batch. The load-balancing loss E sum_i f_i P_i is a product of two batch
 * means: the model sums its routing counts over the ranks (m->sum_counts), so every rank uses the
 * global f_i with its own P_i, and the mean over ranks is the global micro-batch's loss exactly. */
int trainer_compute_grads(Trainer *t, char *err) {
    const TrainConfig *c = &t->cfg;
    Moe *m = &t->model;
    int B = c->batch_size, T = c->model.seq_len, A = c->grad_accum, first, count;
    dist_slice(B, dist_rank(), dist_size(), &first, &count);
    size_t n_load = (size_t)c->model.n_layer * c->model.n_expert, at = (size_t)first * T;
    /* sums over this rank's micro-batches: loss, ce, aux, z, n_targets, then the expert load */
    double *sum = st_calloc(5 + n_load, sizeof(double));
    float bad_loss = 0;
    moe_zero_grad(m);
    m->sum_counts = dist_size() > 1 ? dist_sum_doubles : NULL; /* only here: every rank runs these forwards */
    uint64_t loader_before = loader_get_state(&t->loader);
    for (int a = 0; a < A && isfinite(bad_loss); a++) {
        /* a stop asked for during a long step abandons it, so that it is honoured within one
         * micro-batch: the windows are given back and nothing is updated */
        if (a > 0 && dist_any(stop_requested)) {
            m->sum_counts = NULL;
            loader_set_state(&t->loader, loader_before);
            free(sum);
            return 1;
        }
        loader_train_batch(&t->loader, t->inputs, t->targets, B);
        float l = moe_forward(m, t->inputs + at, t->targets + at, count, T, NULL);
        if (!isfinite(l)) bad_loss = l;
        else moe_backward(m, 1.0f / (float)A);
        MoeLoss *ml = &m->loss;
        sum[0] += ml->loss, sum[1] += ml->ce, sum[2] += ml->aux, sum[3] += ml->z, sum[4] += ml->n_targets;
        for (size_t i = 0; i < n_load; i++) sum[5 + i] += m->expert_load[i];
    }
    m->sum_counts = NULL;
    /* every rank takes part in the same collectives, whichever rank saw the bad loss */
    if (dist_any(!isfinite(bad_loss))) {
        free(sum);
        return report_bad_loss(t, isfinite(bad_loss) ? NAN : bad_loss, err);
    }
    dist_sum_doubles(sum, 5 + n_load);
    dist_mean_floats(m->grads, m->n_params);
    double n_micro = (double)A * dist_size();
    t->step_loss = (MoeLoss){(float)(sum[0] / n_micro), (float)(sum[1] / n_micro), (float)(sum[2] / n_micro),
                             (float)(sum[3] / n_micro), (int)sum[4]};
    for (size_t i = 0; i < n_load; i++) t->step_load[i] = (float)(sum[5 + i] / n_micro);
    free(sum);
    return 0;
}

int trainer_check_grads(Trainer *t, char *err) {
    const Moe *m = &t->model;
    t->grad_norm = grad_global_norm(m->grads, m->n_params);
    if (isfinite(t->grad_norm)) return 0;
    int bad = first_nonfinite_tensor(m->grads, m->tensors, m->n_tensors);
    return st_errorf(err, "step %lld: NaN or Inf in the gradient of %s", (long long)t->step + 1,
                     bad >= 0 ? m->tensors[bad].name : "(none found)");
}

/* the median of v[0..n) (n >= 1), v left untouched */
static double median_of(const double *v, int n) {
    double s[SPIKE_WINDOW];
    for (int i = 0; i < n; i++) { /* insertion sort: n is at most SPIKE_WINDOW */
        int j = i;
        for (; j > 0 && s[j - 1] > v[i]; j--) s[j] = s[j - 1];
        s[j] = v[i];
    }
    return n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
}

void trainer_spike_guard(Trainer *t) {
    t->skipped = 0;
    if (t->cfg.spike_guard <= 0) return;
    /* the guard waits for a quarter of a window of history before it judges */
    if (t->n_norms >= SPIKE_WINDOW / 4)
        t->skipped = t->grad_norm > t->cfg.spike_guard * median_of(t->norms, t->n_norms);
    /* every norm enters the window, skipped ones too: a lasting rise in the norm moves the median
     * within half a window instead of freezing the run */
    if (t->n_norms == SPIKE_WINDOW) memmove(t->norms, t->norms + 1, (SPIKE_WINDOW - 1) * sizeof *t->norms);
    else t->n_norms++;
    t->norms[t->n_norms - 1] = t->grad_norm;
}

void trainer_apply_update(Trainer *t) {
    const TrainConfig *c = &t->cfg;
    Moe *m = &t->model;
    t->lr = lr_at(c, (int)t->step);
    AdamWHyper h = {t->lr, c->beta1, c->beta2, c->eps, c->weight_decay};
    if (!t->skipped)
        adamw_step(&t->opt, m->params, m->grads, m->tensors, m->n_tensors, &h, t->step + 1,
                   grad_clip_scale(t->grad_norm, c->grad_clip));
    t->step++;
    t->tokens += tokens_per_step(c);
}

double trainer_evaluate(Trainer *t) {
    const TrainConfig *c = &t->cfg;
    int B = c->batch_size, T = c->model.seq_len, first, count;
    dist_slice(B, dist_rank(), dist_size(), &first, &count);
    double sum[2] = {0, 0}; /* cross-entropy summed over targets, target count */
    /* cross-entropy weighted by target count, so the mean is per token over all batches (and ranks) */
    for (int i = 0; i < c->eval_batches; i++) {
        loader_val_batch(&t->loader, i * B + first, t->inputs, t->targets, NULL, count);
        moe_forward(&t->model, t->inputs, t->targets, count, T, NULL);
        sum[0] += (double)t->model.loss.ce * t->model.loss.n_targets;
        sum[1] += t->model.loss.n_targets;
    }
    dist_sum_doubles(sum, 2);
    return sum[1] > 0 ? sum[0] / sum[1] : NAN;
}

/* a hash of everything that must be equal on every rank: parameters, AdamW moments, loader state */
static uint64_t training_state_hash(const Trainer *t) {
    size_t bytes = t->model.n_params * sizeof(float);
    uint64_t h = dist_hash_bytes(t->model.params, bytes, DIST_HASH_INIT);
    h = dist_hash_bytes(t->opt.m, bytes, h);
    h = dist_hash_bytes(t->opt.v, bytes, h);
    uint64_t loader_state = loader_get_state(&t->loader);
    return dist_hash_bytes(&loader_state, sizeof loader_state, h);
}

/* every rank checks that the ranks still agree; rank 0 writes */
int trainer_checkpoint(Trainer *t, char *err) {
    char path[4200];
    if (dist_size() > 1 && dist_check_same(training_state_hash(t), "the model and optimizer state", err)) return -1;
    if (!dist_is_root()) {
        t->ckpt_step = t->step;
        return 0;
    }
    ckpt_path(path, sizeof path, t->run_dir, t->step);
    CkptState s = {t->step, t->tokens, loader_get_state(&t->loader), t->last_val_loss, t->n_norms, {0}};
    memcpy(s.norms, t->norms, sizeof s.norms);
    if (ckpt_save(path, &t->cfg, &t->model, &t->opt, &s, err) || ckpt_prune(t->run_dir, t->cfg.keep_ckpts, err))
        return -1;
    t->ckpt_step = t->step;
    return 0;
}

int run_probes_if_due(Trainer *t, char *err) {
    if (!dist_is_root() || !probe_is_due(t->step, t->cfg.steps, &t->prober.cfg)) return 0;
    return prober_step(&t->prober, &t->model, t->step, t->cfg.steps, t->tokens, t->last_val_loss, err);
}

/* one train.jsonl line: the step's losses, rates, and per MoE layer the expert load */
static int write_log_line(Trainer *t, int with_val, char *err) {
    const TrainConfig *c = &t->cfg;
    StJson *j = &t->json;
    double secs = t->interval_seconds, steps = (double)t->interval_steps;
    sj_begin(j);
    sj_int(j, "step", t->step);
    sj_num(j, "loss", t->step_loss.loss);
    sj_num(j, "ce", t->step_loss.ce);
    sj_num(j, "aux", t->step_loss.aux);
    sj_num(j, "z", t->step_loss.z);
    sj_num(j, "lr", t->lr);
    sj_num(j, "grad_norm", t->grad_norm);
    sj_int(j, "tokens", t->tokens);
    sj_num(j, "tok_per_s", secs > 0 ? steps * (double)tokens_per_step(c) / secs : 0);
    sj_num(j, "ms_per_step", steps > 0 ? 1000.0 * secs / steps : 0);
    if (with_val) sj_num(j, "val_loss", t->last_val_loss);
    if (t->skipped) sj_int(j, "skipped", 1);
    int L = c->model.n_layer, E = c->model.n_expert;
    if (E > 1) {
        /* max/mean load ratio: 1 = perfectly balanced, E = every slot on one expert */
        float ratio[L];
        char key[32];
        for (int l = 0; l < L; l++) {
            float max = 0;
            for (int e = 0; e < E; e++) max = fmaxf(max, t->step_load[l * E + e]);
            ratio[l] = max * (float)E;
            snprintf(key, sizeof key, "expert_load_l%d", l);
            sj_floats(j, key, t->step_load + (size_t)l * E, E);
        }
        sj_floats(j, "load_max_mean", ratio, L);
    }
    char path[4200];
    snprintf(path, sizeof path, "%s/train.jsonl", t->run_dir);
    return sj_write_line(j, t->log, path, err);
}

static int due(int64_t step, int every) { return every > 0 && step % every == 0; }

/* a checkpoint after a NaN/Inf would save the damage: keep the last good one and say which it is */
static void explain_stop_on_error(Trainer *t, char *err) {
    char path[4200] = "(none yet)", cause[ST_ERR_LEN];
    if (t->ckpt_step >= 0) ckpt_path(path, sizeof path, t->run_dir, t->ckpt_step);
    memcpy(cause, err, ST_ERR_LEN);
    st_errorf(err, "%s; stopped, the last good checkpoint is %s", cause, path);
}

/* rank 0's share of a step: the train.jsonl line when due, the progress line, the probes */
static int record_step(Trainer *t, int eval, double step_seconds, char *err) {
    const TrainConfig *c = &t->cfg;
    int log = due(t->step, c->log_every) || eval || t->step == 1 || t->skipped;
    if (log) {
        if (write_log_line(t, eval, err)) return -1;
        t->interval_seconds = 0;
        t->interval_steps = 0;
    }
    ProgressInfo info = {t->step, c->steps, t->step_loss.loss, t->lr, t->last_val_loss,
                         (double)tokens_per_step(c) / step_seconds};
    progress_show(&t->progress, &info, log);
    return run_probes_if_due(t, err);
}

/* one step, its evaluation, log line, progress and probes */
static int train_step(Trainer *t, char *err) {
    const TrainConfig *c = &t->cfg;
    double start = st_now_seconds();
    int rc = trainer_compute_grads(t, err);
    if (rc) return rc; /* an error, or a step abandoned for a stop */
    if (trainer_check_grads(t, err)) return -1;
    trainer_spike_guard(t);
    trainer_apply_update(t);
    double step_seconds = st_now_seconds() - start;
    t->interval_seconds += step_seconds;
    t->interval_steps++;

    int last = t->step == c->steps;
    int eval = due(t->step, c->eval_every) || last;
    if (eval) t->last_val_loss = trainer_evaluate(t);
    if (dist_is_root() && record_step(t, eval, step_seconds, err)) return -1;
    if (due(t->step, c->ckpt_every) && !last) return trainer_checkpoint(t, err);
    return 0;
}

int trainer_run(Trainer *t, int64_t until, char *err) {
    if (until > t->cfg.steps) until = t->cfg.steps;
    /* step 0's probes, unless this run resumes from a step-0 checkpoint (a stop before the first
     * step), whose probes.jsonl has them already */
    if (t->step == 0 && t->ckpt_step != 0 && run_probes_if_due(t, err)) return -1;
    while (t->step < until && !dist_any(stop_requested)) {
        int rc = train_step(t, err);
        if (rc < 0) {
            progress_break(&t->progress);
            explain_stop_on_error(t, err);
            return -1;
        }
        if (rc == 1) break; /* abandoned for a stop */
    }
    progress_break(&t->progress);
    if (t->ckpt_step != t->step && trainer_checkpoint(t, err)) return -1;
    return t->step < until ? 1 : 0;
}
