/* probes/report/suite.h: the experiment suite's claim-by-claim report (bin/report --suite).
 *
 * report_suite reads every run of a suite directory written by bin/sweep (runs/experiments/suite/:
 * <run>/ with train.jsonl, probes.jsonl, summary.json, and <run>.conf beside it), groups the runs into
 * the suite's conditions by name (moe_nobos-seed1337 is condition moe_nobos, seed 1337), and writes a
 * report that judges each claim of docs/SCIENCE.md ("What a reproduction should show") as reproduced,
 * not reproduced, mixed, not testable, or not judged yet (runs missing), by rules fixed in suite.c
 * before any result was seen, with the numbers and the suite figures (suite_*.png beside the report).
 * Runs that are planned (a .conf) but absent or unfinished (no summary.json) are reported as such. */
#ifndef SINKTRACE_SUITE_H
#define SINKTRACE_SUITE_H

/* out_file NULL = <suite_dir>/../report.md. 0, or -1 with err: a malformed file named with its field,
 * a directory that cannot be read, or a write failure (then no report is left half-written). */
int report_suite(const char *suite_dir, const char *out_file, char *err);

#endif
