/* bin/probe: probes a checkpoint of a run again, outside training.
 *   bin/probe runs/NAME [--step S] [--interventions] [--threads N]
 * Loads ckpt_<S>.bin (default: the latest), measures every variant of the run's own probe set into
 * runs/NAME/reprobe.jsonl (and with --interventions every intervention into
 * runs/NAME/reprobe_interventions.jsonl), then compares the natural line with the one the run wrote
 * into probes.jsonl at the same step, if any: the numbers must be the same. */
#include <cJSON.h>
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/args.h"
#include "../common/util.h"
#include "../model/moe.h"
#include "../train/checkpoint.h"
#include "../train/config.h"
#include "../train/trainer.h"
#include "probe.h"
#include "report/report.h"

typedef struct {
    const char *run_dir;
    long step; /* -1 = the latest checkpoint */
    int interventions;
    int threads; /* 0 = the run's setting */
} ProbeArgs;

static void usage(FILE *f) {
    fprintf(f, "usage: bin/probe RUN_DIR [--step S] [--interventions] [--threads N]\n"
               "Probes checkpoint S of the run (default: the latest) again into RUN_DIR/reprobe.jsonl (with\n"
               "--interventions also reprobe_interventions.jsonl) and compares it with the run's own probes.\n");
}

static int parse_args(int argc, char **argv, ProbeArgs *a, char *err) {
    *a = (ProbeArgs){NULL, -1, 0, 0};
    if (args_check_repeats(argc, argv, err)) return -1;
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i], *value;
        long long v = 0;
        if (strncmp(f, "--", 2) != 0) {
            if (a->run_dir) return st_errorf(err, "expected one run directory, found '%s' and '%s'", a->run_dir, f);
            a->run_dir = f;
        } else if (strcmp(f, "--interventions") == 0) {
            a->interventions = 1;
        } else if (strcmp(f, "--step") == 0 || strcmp(f, "--threads") == 0) {
            int step = f[2] == 's';
            /* --threads has the ceiling of the threads key of bin/train */
            if (args_value(argc, argv, i++, &value, err) ||
                args_int(f, value, step ? 0 : 1, step ? INT32_MAX : 1024, &v, err))
                return -1;
            if (step) a->step = (long)v;
            else a->threads = (int)v;
        } else {
            return st_errorf(err, "unknown flag '%s' (expected --step, --interventions, --threads)", f);
        }
    }
    if (!a->run_dir) return st_errorf(err, "expected a run directory, e.g. bin/probe runs/default");
    return 0;
}

/* the model of the requested checkpoint, its config and its state */
static int load_checkpoint(const ProbeArgs *a, TrainConfig *cfg, Moe *m, CkptState *s, char *err) {
    char path[4200];
    if (ckpt_open_model(a->run_dir, a->step, cfg, m, s, path, sizeof path, err)) return -1;
    fprintf(stderr, "%s: step %lld\n", path, (long long)s->step);
    return 0;
}

/* the last natural line of a JSONL file at `step`, or NULL */
static cJSON *natural_line(const char *path, long step) {
    FILE *f = fopen(path, "r");
    if (!f) return NULL;
    cJSON *found = NULL;
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        cJSON *o = cJSON_Parse(line);
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "variant");
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(o, "step");
        if (cJSON_IsString(v) && strcmp(v->valuestring, "natural") == 0 && cJSON_IsNumber(st) &&
            (long)st->valuedouble == step) {
            cJSON_Delete(found);
            found = o;
        } else {
            cJSON_Delete(o);
        }
    }
    free(line);
    fclose(f);
    return found;
}

/* largest |a - b| over the numbers and number arrays of a that b also has (bookkeeping keys aside);
 * *compared counts the numbers; a null on one side only counts as a difference of infinity */
static double max_difference(const cJSON *a, const cJSON *b, int *compared) {
    static const char *const skip[] = {"probe_seconds"};
    double worst = 0;
    *compared = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, a) {
        int skipped = 0;
        for (size_t i = 0; i < sizeof skip / sizeof *skip; i++) skipped |= strcmp(x->string, skip[i]) == 0;
        const cJSON *y = cJSON_GetObjectItemCaseSensitive(b, x->string);
        if (skipped || !y) continue;
        int n = cJSON_IsArray(x) ? cJSON_GetArraySize(x) : 1;
        for (int i = 0; i < n; i++) {
            const cJSON *xi = cJSON_IsArray(x) ? cJSON_GetArrayItem(x, i) : x;
            const cJSON *yi = cJSON_IsArray(y) ? cJSON_GetArrayItem(y, i) : y;
            if (!yi || !(cJSON_IsNumber(xi) || cJSON_IsNull(xi))) continue;
            (*compared)++;
            if (cJSON_IsNull(xi) != cJSON_IsNull(yi)) worst = INFINITY;
            else if (cJSON_IsNumber(xi)) worst = fmax(worst, fabs(xi->valuedouble - yi->valuedouble));
        }
    }
    return worst;
}

static void compare_with_run(const char *run_dir, long step) {
    char run_path[4200], new_path[4200];
    snprintf(run_path, sizeof run_path, "%s/probes.jsonl", run_dir);
    snprintf(new_path, sizeof new_path, "%s/reprobe.jsonl", run_dir);
    cJSON *old = natural_line(run_path, step), *now = natural_line(new_path, step);
    if (!old || !now) {
        printf("%s has no natural line at step %ld to compare with\n", run_path, step);
    } else {
        int n;
        double diff = max_difference(now, old, &n);
        printf("compared %d numbers with %s at step %ld: largest difference %.3g\n", n, run_path, step, diff);
    }
    cJSON_Delete(old);
    cJSON_Delete(now);
}

int main(int argc, char **argv) {
    st_openmp_wait_passively(argv);
    char err[ST_ERR_LEN];
    ProbeArgs a;
    TrainConfig cfg;
    Moe m = {0};
    CkptState s;
    Prober pr = {0};
    if (args_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    if (parse_args(argc, argv, &a, err) || load_checkpoint(&a, &cfg, &m, &s, err)) {
        fprintf(stderr, "error: %s\n", err);
        moe_free(&m);
        return 2;
    }
    int threads = a.threads ? a.threads : cfg.threads;
    if (threads > 0) omp_set_num_threads(threads);
    /* the run's probe set, or (a bare checkpoint) one built from its data */
    Loader windows = {0};
    char set_path[4200];
    snprintf(set_path, sizeof set_path, "%s/probe_set.bin", a.run_dir);
    int build = access(set_path, F_OK) != 0;
    int rc = build ? open_windows(&windows, &cfg, cfg.probes.len, probe_window_policy(&cfg), cfg.model.seed, err) : 0;
    if (!rc)
        rc = prober_open(&pr, a.run_dir, build ? &windows : NULL, &cfg.probes, &m.cfg,
                         cfg.bos != BOS_NONE && cfg.bos != BOS_START, cfg.model.seed, err);
    loader_close(&windows);
    if (!rc)
        rc = prober_full(&pr, &m, (long)s.step, s.tokens, s.last_val_loss, "reprobe.jsonl",
                         a.interventions ? "reprobe_interventions.jsonl" : NULL, err);
    if (!rc) {
        printf("probed step %lld in %.1f s: %s/reprobe.jsonl%s\n", (long long)s.step, pr.seconds, a.run_dir,
               a.interventions ? ", reprobe_interventions.jsonl" : "");
        compare_with_run(a.run_dir, (long)s.step);
        /* the run's figures and report.md, with what it now holds; the probe's own output stands even
         * when the directory cannot be reported (a bare checkpoint without train.jsonl) */
        if (report_run(a.run_dir, err) == 0) printf("report: %s/report.md\n", a.run_dir);
        else fprintf(stderr, "warning: no report: %s\n", err);
    } else {
        fprintf(stderr, "error: %s\n", err);
    }
    prober_close(&pr);
    moe_free(&m);
    return rc ? 1 : 0;
}
