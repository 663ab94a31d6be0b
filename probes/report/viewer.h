/* probes/report/viewer.h: report.html and compare.html, the run viewer. One self-contained page (no network,
 * no external scripts, fonts or images): the report (report.md, or compare.md, turned into HTML with
 * its figures inlined as PNG data) and, with JavaScript, a viewer whose slider scrubs through the probe
 * steps: the attention map of any layer and head at that step (attention.bin), the rho profile through
 * the blocks, the attention on P0 per layer and the loss so far. Without JavaScript the page is the
 * static report. The viewer's script and style are probes/report/viewer.js and probes/report/viewer.css, built into
 * the program. A run still training can be viewed: the page shows the steps probed so far. */
#ifndef SINKTRACE_VIEWER_H
#define SINKTRACE_VIEWER_H

#include "runlog.h"

/* r->dir/report.html from r->dir/report.md (written first by report_run) and the run's files */
int viewer_write_run(const Run *r, char *err);
/* out_dir/compare.html from out_dir/compare.md: the runs side by side, one slider for all */
int viewer_write_compare(const Run *runs, int n_runs, const char *out_dir, char *err);

#endif
