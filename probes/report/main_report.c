/* probes/report/main_report.c: bin/report, the figures and report.md of a run, or a comparison of runs.
 *   bin/report runs/<name>                                  figures + report.md in runs/<name>/
 *   bin/report --compare runs/a runs/b ... [--out DIR]      compare_*.png + compare.md in DIR
 *                                                           (default runs/compare)
 *   bin/report --suite SUITE_DIR [--out FILE]               the suite's claim-by-claim report.md and
 *                                                           suite_*.png beside it (default FILE =
 *                                                           SUITE_DIR/../report.md) */
#include <stdio.h>
#include <string.h>

#include "../../common/args.h"
#include "../../common/util.h"
#include "report.h"
#include "suite.h"

/* the usage on f; returns the exit code of a usage error */
static int usage(FILE *f) {
    fprintf(f, "usage: bin/report RUN_DIR\n"
               "       bin/report --compare RUN_DIR RUN_DIR ... [--out DIR]\n"
               "       bin/report --suite SUITE_DIR [--out FILE]\n");
    return 2;
}

/* bin/report --suite SUITE_DIR [--out FILE] */
static int suite_main(int argc, char **argv) {
    char err[ST_ERR_LEN];
    const char *out = NULL;
    if (argc > 5 || (argc > 3 && strcmp(argv[3], "--out"))) return usage(stderr);
    if (argc > 3 && args_value(argc, argv, 3, &out, err)) {
        fprintf(stderr, "error: %s\n", err);
        return usage(stderr);
    }
    if (report_suite(argv[2], out, err)) {
        fprintf(stderr, "error: %s\n", err);
        return 1;
    }
    if (out) printf("wrote %s and the suite figures beside it\n", out);
    else printf("wrote %s/../report.md and the suite figures beside it\n", argv[2]);
    return 0;
}

int main(int argc, char **argv) {
    char err[ST_ERR_LEN];
    if (args_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    if (args_check_repeats(argc, argv, err)) {
        fprintf(stderr, "error: %s\n", err);
        return 2;
    }
    if (argc == 2 && argv[1][0] != '-') {
        if (report_run(argv[1], err)) {
            fprintf(stderr, "error: %s\n", err);
            return 1;
        }
        printf("wrote %s/report.md and its figures\n", argv[1]);
        return 0;
    }
    if (argc >= 3 && !strcmp(argv[1], "--suite")) return suite_main(argc, argv);
    if (argc < 3 || strcmp(argv[1], "--compare")) return usage(stderr);
    const char *out = "runs/compare";
    const char *dirs[64];
    int n = 0;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--out")) {
            if (args_value(argc, argv, i++, &out, err)) {
                fprintf(stderr, "error: %s\n", err);
                return usage(stderr);
            }
        } else if (n < 64) {
            dirs[n++] = argv[i];
        } else {
            fprintf(stderr, "error: --compare: at most 64 runs, found more\n");
            return 1;
        }
    }
    if (report_compare(dirs, n, out, err)) {
        fprintf(stderr, "error: %s\n", err);
        return 1;
    }
    printf("wrote %s/compare.md and %s/compare_*.png\n", out, out);
    return 0;
}
