/* probes/report/figures.h: the figures of one run (PNG files written into its directory) and the overlays of
 * several runs for --compare. Each figure function returns 0 when it wrote the file, 1 when the run
 * lacks what the figure needs (then `why` says what, in one sentence), -1 on an error (err). */
#ifndef SINKTRACE_FIGURES_H
#define SINKTRACE_FIGURES_H

#include "plot.h"
#include "runlog.h"

#define FIG_WHY_LEN 256

typedef int (*FigureFn)(const Run *r, char *why, char *err);

typedef struct {
    const char *file; /* e.g. "loss.png" */
    FigureFn draw;
} Figure;

/* every figure of a run, in the order report.md shows them */
extern const Figure run_figures[];
extern const int n_run_figures;

int fig_loss(const Run *r, char *why, char *err);
int fig_sink_by_layer(const Run *r, char *why, char *err);
int fig_parking(const Run *r, char *why, char *err);
int fig_trace_sink(const Run *r, char *why, char *err);
int fig_trace_norm(const Run *r, char *why, char *err);
int fig_norm_profile(const Run *r, char *why, char *err);
int fig_attention_maps(const Run *r, char *why, char *err);
int fig_cosine(const Run *r, char *why, char *err);
int fig_concentration(const Run *r, char *why, char *err);
int fig_experts(const Run *r, char *why, char *err);
int fig_interventions(const Run *r, char *why, char *err);
/* one slide of the whole run (1920 x 1080): a title saying when the sink emerged, the loss, attention
 * on P0 per layer and rho after block 1 against the step, and the attention map of the layer with the
 * most attention on P0 at three steps */
int fig_story(const Run *r, char *why, char *err);

/* the three probe rows (indices into the natural rows) the profile figures show: the first, the one
 * nearest half the final step, and the last; returns how many distinct ones there are (1..3) */
int profile_rows(const Run *r, int out[3]);

/* The interventions.jsonl lines of the last step that has any, as row indices into r->interv (caller
 * frees), with the lines of one intervention next to each other (P0, then its T/2 control) in the order
 * the interventions first appear; *step receives that step. */
int *intervention_rows(const Run *r, int *n, double *step);

/* One curve of a panel: n points (x, y) (a NaN y breaks the line), its legend entry (NULL: none, e.g.
 * a further seed of a condition already named), colour, line width and marker radius (0: none). */
typedef struct {
    const char *name;
    const double *x, *y;
    int n;
    PlColor col;
    double width, marker;
} FigCurve;
/* a panel's labels, an optional dashed reference line at y = ref (NaN: none) named ref_name in the
 * legend, and its x axis: training steps/tokens (log when they span decades, see step_range) or
 * integer categories such as layers (integer_x) */
typedef struct {
    const char *title, *xlabel, *ylabel;
    double ref;
    const char *ref_name;
    int integer_x;
} FigPanel;
/* draws the curves into the canvas rectangle [x0, x1) x [y0, y1), a legend in its right legend_width
 * pixels (none when 0) */
void fig_curves_panel(PlCanvas *c, int x0, int y0, int x1, int y1, int legend_width, const FigCurve *curves, int n,
                      const FigPanel *p);

/* one figure of metric `key` with every run's curve against training tokens (from probes.jsonl, or
 * from train.jsonl when from_train), written as out_dir/compare_<key>.png; returns 0 or -1 */
int fig_compare(const Run *runs, int n_runs, const char *key, const char *title, const char *ylabel,
                int from_train, const char *out_dir, char *err);

/* four panels (y[0..3], titled titles[0..3]) of one headline number per run against x[i], the run's
 * value of config key `key` (a sweep's axis), written as out_dir/versus_<key>.png; a NaN y (no sink,
 * so no emergence step) is left out and the panel says so; returns 0 or -1 */
int fig_versus_key(const char *key, const double *x, const double *const *y, const char *const *titles, int n_runs,
                   const char *out_dir, char *err);

#endif
