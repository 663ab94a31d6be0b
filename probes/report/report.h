/* probes/report/report.h: the run report. report_run reads a run directory (runlog.h), draws every figure of
 * figures.h into it and writes report.md: the config, the training numbers, and findings stated from
 * probes.jsonl, summary.json and interventions.jsonl, each next to its figure. report_compare overlays
 * several runs (compare_*.png) and writes a table of their headline numbers (compare.md). */
#ifndef SINKTRACE_REPORT_H
#define SINKTRACE_REPORT_H

#include "runlog.h"

/* the headline numbers of one run: final values from train.jsonl, probes.jsonl and summary.json */
typedef struct {
    double tokens, val_loss, a_p0_2plus, sink_rate, rho_max, C2;
    double lift_2plus;            /* a_p0_2plus / chance(T) */
    double rho2_jump;             /* rho at residual point 2 (after block 1) over its step-0 value */
    double kappa2_p0, kappa2_mid; /* cross-input cosine at point 2, at P0 and at T/2 */
    double emergence; /* NaN without a sink at the end: a half-way crossing of a flat or falling metric
                         is not a sink's emergence */
} Headline;
Headline report_headline(const Run *r);

/* a number for prose: 3 significant digits, integers without decimals, "n/a" for NaN; the result
 * lives in one of 16 rotating static buffers, so up to 16 may be used in one printf */
const char *report_num(double v);

/* 0, or -1 with err (missing or malformed input named by file and line, or a write failure) */
int report_run(const char *run_dir, char *err);
int report_compare(const char *const *run_dirs, int n_runs, const char *out_dir, char *err);

#endif
