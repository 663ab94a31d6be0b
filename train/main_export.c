/* bin/export: a run's checkpoint as a safetensors file for PyTorch and notebooks (train/export.h has
 * every tensor and metadata key; python/sinktrace_torch.py loads it).
 *   bin/export runs/NAME [--step S] --out FILE.safetensors
 * Exports ckpt_<S>.bin (default: the latest), then reads the file back and checks every tensor. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/args.h"
#include "../common/util.h"
#include "export.h"

typedef struct {
    const char *run_dir, *out;
    long long step; /* -1 = the latest checkpoint */
} ExportArgs;

static void usage(FILE *f) {
    fprintf(f, "usage: bin/export RUN_DIR [--step S] --out FILE.safetensors\n"
               "Exports checkpoint S of the run (default: the latest), then reads the file back and checks it.\n");
}

static int parse_args(int argc, char **argv, ExportArgs *a, char *err) {
    *a = (ExportArgs){NULL, NULL, -1};
    if (args_check_repeats(argc, argv, err)) return -1;
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i], *value;
        if (strncmp(f, "--", 2) != 0) {
            if (a->run_dir) return st_errorf(err, "expected one run directory, found '%s' and '%s'", a->run_dir, f);
            a->run_dir = f;
        } else if (strcmp(f, "--step") != 0 && strcmp(f, "--out") != 0) {
            return st_errorf(err, "unknown flag '%s' (expected --step, --out)", f);
        } else if (args_value(argc, argv, i++, &value, err)) {
            return -1;
        } else if (strcmp(f, "--out") == 0) {
            a->out = value;
        } else if (args_int(f, value, 0, INT64_MAX, &a->step, err)) {
            return -1;
        }
    }
    if (!a->run_dir || !a->out)
        return st_errorf(err, "expected a run directory and --out, e.g. bin/export runs/default --out "
                              "runs/default/model.safetensors");
    return 0;
}

int main(int argc, char **argv) {
    char err[ST_ERR_LEN];
    ExportArgs a;
    ExportInfo info;
    if (args_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    if (parse_args(argc, argv, &a, err) || export_run(a.run_dir, a.step, a.out, &info, err)) {
        fprintf(stderr, "error: %s\n", err);
        return 1;
    }
    printf("%s (step %lld) -> %s: %d tensors, %.2f MB, read back identical\n", info.ckpt, (long long)info.step, a.out,
           info.n_tensors, info.bytes / 1e6);
    if (info.probe_n)
        printf("probe set: %d windows of %d tokens; %d probes.jsonl lines at step %lld\n", info.probe_n, info.probe_T,
               info.probe_lines, (long long)info.step);
    else
        printf("no probe set (%s/probe_set.bin): the file holds the model and the tokenizer\n", a.run_dir);
    return 0;
}
