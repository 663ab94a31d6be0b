/* probes/report.h: the run report. report_run reads a run directory (runlog.h), draws every figure of
 * figures.h into it and writes report.md: the config, the training numbers, and findings stated from
 * probes.jsonl, summary.json and interventions.jsonl, each next to its figure. report_compare overlays
 * several runs (compare_*.png) and writes a table of their headline numbers (compare.md). */
#ifndef SINKTRACE_REPORT_H
#define SINKTRACE_REPORT_H

/* 0, or -1 with err (missing or malformed input named by file and line, or a write failure) */
int report_run(const char *run_dir, char *err);
int report_compare(const char *const *run_dirs, int n_runs, const char *out_dir, char *err);

#endif
