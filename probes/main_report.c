/* probes/main_report.c: bin/report, the figures and report.md of a run, or a comparison of runs.
 *   bin/report runs/<name>                                  figures + report.md in runs/<name>/
 *   bin/report --compare runs/a runs/b ... [--out DIR]      compare_*.png + compare.md in DIR
 *                                                           (default runs/compare) */
#include <stdio.h>
#include <string.h>

#include "../common/util.h"
#include "report.h"

static int usage(void) {
    fprintf(stderr, "usage: bin/report RUN_DIR\n"
                    "       bin/report --compare RUN_DIR RUN_DIR ... [--out DIR]\n");
    return 2;
}

int main(int argc, char **argv) {
    char err[ST_ERR_LEN];
    if (argc == 2 && argv[1][0] != '-') {
        if (report_run(argv[1], err)) {
            fprintf(stderr, "error: %s\n", err);
            return 1;
        }
        printf("wrote %s/report.md and its figures\n", argv[1]);
        return 0;
    }
    if (argc < 3 || strcmp(argv[1], "--compare")) return usage();
    const char *out = "runs/compare";
    const char *dirs[64];
    int n = 0;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--out")) {
            if (i + 1 >= argc) return usage();
            out = argv[++i];
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
