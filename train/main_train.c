/* bin/train: trains a model from a config file and flags, in a run directory it owns.
 *   bin/train --config runs/NAME.conf [--key value ...] [--overwrite]
 *   bin/train --resume runs/NAME [--key value ...]
 *   bin/train --help
 * Under mpirun (built with `make MPI=1`), every rank trains its slice of each batch (train/dist.h)
 * and rank 0 alone prints and writes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/args.h"
#include "../common/util.h"
#include "../probes/report/report.h"
#include "config.h"
#include "dist.h"
#include "trainer.h"

static void usage(FILE *f) {
    fprintf(f, "usage: bin/train --config FILE [--key value ...] [--overwrite]\n"
               "       bin/train --resume RUN_DIR [--key value ...]\n"
               "       bin/train --help\n"
               "A new run writes <out_dir>/<run_name>/ and refuses an existing one unless --overwrite.\n"
               "--resume continues RUN_DIR from its latest checkpoint, with RUN_DIR/config.txt as the config\n"
               "(or --config FILE); keys that change the computation must equal the checkpoint's.\n"
               "Exit status: 0 finished; 75 stopped by SIGINT or SIGTERM before the last step, with a checkpoint\n"
               "(--resume continues it); 1 an error; 2 a bad command line or config.\n\n");
}

typedef struct {
    const char *config_file;
    const char *resume_dir;
    int overwrite;
} Args;

/* Pass 1 finds --config, --resume, --overwrite, --help; pass 2 (after the file is read) applies the
 * --key value flags, so flags win whatever their position. */
static int parse_run_flags(int argc, char **argv, Args *a, char *err) {
    memset(a, 0, sizeof *a);
    if (args_check_repeats(argc, argv, err)) return -1;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *value;
        if (strcmp(arg, "--overwrite") == 0) {
            a->overwrite = 1;
            continue;
        }
        if (strncmp(arg, "--", 2) != 0) return st_errorf(err, "expected a --flag, found '%s'", arg);
        if (args_value(argc, argv, i, &value, err)) return -1;
        if (strcmp(arg, "--config") == 0) a->config_file = value;
        else if (strcmp(arg, "--resume") == 0) a->resume_dir = value;
        i++;
    }
    if (!a->config_file && !a->resume_dir) return st_errorf(err, "expected --config FILE or --resume RUN_DIR");
    if (a->resume_dir && a->overwrite) return st_errorf(err, "--resume and --overwrite exclude each other");
    return 0;
}

static int apply_key_flags(int argc, char **argv, TrainConfig *c, char *err) {
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--overwrite") == 0) continue;
        if (strcmp(arg, "--config") != 0 && strcmp(arg, "--resume") != 0 &&
            config_set(c, arg + 2, argv[i + 1], arg, err))
            return -1;
        i++;
    }
    return 0;
}

/* the config: defaults, then the file (--config, or the resumed run's config.txt), then the flags */
static int resolve_config(int argc, char **argv, const Args *a, TrainConfig *c, char *err) {
    char path[4200];
    if (a->config_file) snprintf(path, sizeof path, "%s", a->config_file);
    else snprintf(path, sizeof path, "%s/config.txt", a->resume_dir);
    config_defaults(c);
    if (config_load_file(c, path, err) || apply_key_flags(argc, argv, c, err)) return -1;
    return config_validate(c, err);
}

/* an error line; under MPI a rank other than 0 names itself */
static void print_error(const char *err) {
    if (dist_is_root()) fprintf(stderr, "error: %s\n", err);
    else fprintf(stderr, "error (MPI rank %d): %s\n", dist_rank(), err);
}

/* everything bin/train does, on every rank; returns the exit code */
static int train_main(int argc, char **argv) {
    int root = dist_is_root();
    if (args_wants_help(argc, argv)) {
        if (root) usage(stdout), config_print_help(stdout);
        return 0;
    }
    char err[ST_ERR_LEN];
    Args a;
    TrainConfig cfg;
    if (parse_run_flags(argc, argv, &a, err) || resolve_config(argc, argv, &a, &cfg, err) ||
        dist_check_batch(cfg.batch_size, dist_size(), err)) {
        if (root) fprintf(stderr, "error: %s\n", err);
        if (root && !a.config_file && !a.resume_dir) usage(stderr);
        return 2;
    }
    char run_dir[4096];
    if (a.resume_dir) snprintf(run_dir, sizeof run_dir, "%s", a.resume_dir);
    else snprintf(run_dir, sizeof run_dir, "%s/%s", cfg.out_dir, cfg.run_name);
    RunMode mode = a.resume_dir ? RUN_RESUME : a.overwrite ? RUN_OVERWRITE : RUN_NEW;

    Trainer t;
    trainer_install_signal_handlers();
    int rc = trainer_open(&t, &cfg, run_dir, mode, err);
    /* a rank whose own open succeeded still stops when another rank's failed (that one says why) */
    if (dist_any(rc != 0)) {
        if (rc != 0) print_error(err);
        trainer_close(&t);
        return 1;
    }
    if (root) {
        char ranks[32] = "";
        if (dist_size() > 1) snprintf(ranks, sizeof ranks, "%d MPI ranks x ", dist_size());
        char wait[160];
        printf("run %s: %zu parameters, %s%d threads (%s), %d steps of %lld tokens\n", run_dir, t.model.n_params,
               ranks, t.threads, st_openmp_wait_description(wait, sizeof wait), cfg.steps,
               (long long)cfg.batch_size * cfg.model.seq_len * cfg.grad_accum);
    }
    rc = trainer_run(&t, cfg.steps, err);
    if (rc < 0) { /* an error on one rank may leave the others waiting in a collective: end them all */
        print_error(err);
        trainer_close(&t);
        dist_abort(1);
    }
    if (!root) { /* rank 0 says how it ended and writes the report */
        trainer_close(&t);
        return 0;
    }
    if (rc == 1)
        printf("stopped at step %lld with a checkpoint; continue with: bin/train --resume %s\n", (long long)t.step,
               run_dir);
    else if (rc == 0)
        printf("done: %lld steps, validation loss %.4f; %s/train.jsonl has the curve\n", (long long)t.step,
               t.last_val_loss, run_dir);
    trainer_close(&t);
    if (rc == 0) { /* the figures and report.md of the finished run */
        rc = report_run(run_dir, err);
        if (rc == 0) printf("report: %s/report.md\n", run_dir);
        else fprintf(stderr, "error: report: %s\n", err);
    }
    return rc < 0 ? 1 : rc == 1 ? TRAIN_EXIT_STOPPED : 0;
}

int main(int argc, char **argv) {
    st_openmp_wait_passively(argv);
    dist_init(&argc, &argv);
    int code = train_main(argc, argv);
    dist_finalize();
    return code;
}
