/* probes/report/report.c: report.md of a run and the --compare table (see report.h). Every sentence of the
 * findings is built from a number it prints; where the numbers are missing, the report says so. */
#include "report.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../../common/binfile.h"
#include "../../common/util.h"
#include "figures.h"
#include "runlog.h"
#include "viewer.h"

/* ---------------------------------------------------------------- number helpers */

/* a number for prose: 3 significant digits, "n/a" for NaN (several may be used in one printf) */
static const char *num(double v) {
    static char buf[16][32]; /* a compare.md row uses 12 */
    static int k;
    char *b = buf[k++ % 16];
    if (!isfinite(v))
        snprintf(b, 32, "n/a");
    else if (fabs(v) < 1e15 && v == floor(v))
        snprintf(b, 32, "%.0f", v);
    else
        snprintf(b, 32, "%.3g", v);
    return b;
}

const char *report_num(double v) { return num(v); }

static double sget(const Run *r, const char *key) { return r->summary ? jnum(r->summary, key) : NAN; }

/* residual point p as the paper writes it (p/2) */
static const char *point_name(double p) {
    static char buf[4][16];
    static int k;
    char *b = buf[k++ % 4];
    if (!isfinite(p))
        snprintf(b, 16, "n/a");
    else if (((int)p) % 2)
        snprintf(b, 16, "%d.5", (int)p / 2);
    else
        snprintf(b, 16, "%d", (int)p / 2);
    return b;
}

/* d* as stored (already in units of blocks, half-integers allowed) */
static const char *depth_name(double d) { return isfinite(d) ? point_name(2 * d) : "n/a"; }

/* ---------------------------------------------------------------- sections */

/* the figure's image link, or why it was not drawn (why[i] is "" for the drawn figures of run_figures) */
static void figure_line(FILE *f, const char *file, const char *const *why) {
    for (int i = 0; i < n_run_figures; i++) {
        if (strcmp(run_figures[i].file, file)) continue;
        if (why[i][0] == 0)
            fprintf(f, "![%s](%s)\n\n", file, file);
        else
            fprintf(f, "*%s not drawn: %s.*\n\n", file, why[i]);
    }
}

static void section_config(FILE *f, const Run *r) {
    fprintf(f, "## Configuration\n\n");
    if (!r->has_cfg) {
        fprintf(f, "config.txt is missing.\n\n");
        return;
    }
    fprintf(f, "| key | value | key | value |\n|---|---|---|---|\n");
    for (int i = 0; i < r->cfg.n; i += 2)
        fprintf(f, "| %s | %s | %s | %s |\n", r->cfg.key[i], r->cfg.value[i], i + 1 < r->cfg.n ? r->cfg.key[i + 1] : "",
                i + 1 < r->cfg.n ? r->cfg.value[i + 1] : "");
    fprintf(f, "\n");
}

static void section_training(FILE *f, const Run *r, const char *const *why) {
    int n = r->train.n, at_val = -1, at_best = -1;
    double *step = run_train_col(r, "step"), *ce = run_train_col(r, "ce"), *val = run_train_col(r, "val_loss");
    double *tok = run_train_col(r, "tokens");
    double best = INFINITY;
    for (int i = 0; i < n; i++)
        if (isfinite(val[i]) && val[i] < best) best = val[i], at_best = i;
    double last_val = last_finite(val, n, &at_val), secs = run_training_seconds(r), tokens = last_finite(tok, n, NULL);
    const char *planned = r->has_cfg ? runconfig_get(&r->cfg, "steps") : NULL;
    fprintf(f, "## Training\n\n| quantity | value |\n|---|---|\n");
    fprintf(f, "| last logged step | %s%s%s |\n", num(step[n - 1]), planned ? " of " : "", planned ? planned : "");
    fprintf(f, "| training tokens seen | %s |\n", num(tokens));
    fprintf(f, "| final train cross-entropy (last logged step) | %s |\n", num(last_finite(ce, n, NULL)));
    if (at_val >= 0) {
        fprintf(f, "| final validation loss | %s (step %s) |\n", num(last_val), num(step[at_val]));
        fprintf(f, "| best validation loss | %s (step %s) |\n", num(best), num(step[at_best]));
    } else {
        fprintf(f, "| validation loss | none logged |\n");
    }
    if (isfinite(secs))
        fprintf(f, "| training time (sum of logged step times) | %.0f s (%.1f min) |\n", secs, secs / 60);
    else
        fprintf(f, "| training time | n/a (no ms_per_step logged) |\n");
    fprintf(f, "| throughput | %s tokens/s |\n\n", num(tokens / secs));
    figure_line(f, "loss.png", why);
    free(step);
    free(ce);
    free(val);
    free(tok);
}

/* the per-layer table at the final probe step: attention on P0, its lift over chance, sink rate */
static void layer_table(FILE *f, const Run *r, const double *a_layer, const double *rate_layer, double chance) {
    fprintf(f, "| layer | mean attention on P0 | x chance | share of heads with a_p0 > 0.3 |\n|---|---|---|---|\n");
    for (int l = 0; l < r->L; l++)
        fprintf(f, "| %d | %s | %s | %s |\n", l, num(a_layer[l]), num(a_layer[l] / chance), num(rate_layer[l]));
    fprintf(f, "\n");
}

/* the wall-clock time to a step: training from train.jsonl's step times, plus the probing done by
 * then (the probes.jsonl line of that step carries the probing time before it) */
static void emergence_time(FILE *f, const Run *r, double step) {
    double train = run_training_seconds_until(r, step), probing = NAN;
    for (int k = 0; k < r->np; k++) {
        const cJSON *row = r->probes.row[r->sel[k]];
        if (jnum(row, "step") == step) probing = jnum(row, "probe_seconds");
    }
    if (!isfinite(train)) return;
    fprintf(f, "That is %s minutes of training on this machine", num(train / 60));
    if (isfinite(probing)) fprintf(f, " (%s with the probes)", num((train + probing) / 60));
    fprintf(f, ".\n\n");
}

static void finding_sink(FILE *f, const Run *r, const char *const *why) {
    fprintf(f, "### Attention on position 0\n\n");
    int last = r->np - 1, L = r->L;
    const cJSON *first_row = r->probes.row[r->sel[0]], *final_row = r->probes.row[r->sel[last]];
    double step0 = jnum(first_row, "step"), stepN = jnum(final_row, "step"), chance = jnum(final_row, "chance");
    double *a_layer = st_malloc(sizeof(double) * L), *rate_layer = st_malloc(sizeof(double) * L);
    jarr(final_row, "a_p0_layer", a_layer, L);
    jarr(final_row, "sink_rate_layer_30", rate_layer, L);
    double rate = jnum(final_row, "sink_rate_30");
    int top = 0;
    for (int l = 1; l < L; l++)
        if (a_layer[l] > a_layer[top]) top = l;
    fprintf(f, "At the final probe step (%s), per layer (chance = %s for T = %s):\n\n", num(stepN), num(chance),
            num(jnum(final_row, "T")));
    layer_table(f, r, a_layer, rate_layer, chance);
    if (rate > 0) {
        fprintf(f, "**A P0 sink formed** by the sink-rate measure: %s of all heads put more than 0.3 of their "
                   "attention on position 0 at the final step, in layer(s)",
                num(rate));
        int listed = 0;
        for (int l = 0; l < L; l++)
            if (rate_layer[l] > 0) fprintf(f, "%s %d", listed++ ? "," : "", l);
        fprintf(f, ".");
    } else if (isfinite(rate)) {
        fprintf(f, "**No P0 sink formed** by the sink-rate measure: no head puts more than 0.3 of its attention on "
                   "position 0 at the final step (sink rate 0). The largest per-layer mean is %s in layer %d "
                   "(%s x chance).",
                num(a_layer[top]), top, num(a_layer[top] / chance));
    } else {
        fprintf(f, "The sink rate at the final step is not in probes.jsonl.");
    }
    double a0 = jnum(first_row, "a_p0_2plus"), aN = jnum(final_row, "a_p0_2plus");
    if (isfinite(a0) && isfinite(aN))
        fprintf(f, " Over layers >= 2, the mean attention on P0 went from %s at step %s to %s at step %s (%s).", num(a0),
                num(step0), num(aN), num(stepN),
                aN > chance ? "above chance" : aN < chance ? "below chance" : "at chance");
    fprintf(f, "\n\n");
    /* emergence (summary.json): a halfway crossing is a sink's emergence only if a sink is there */
    double es = sget(r, "sink_rate_2plus_30_emergence_step"), ea = sget(r, "a_p0_2plus_emergence_step");
    if (!r->summary) {
        fprintf(f, "summary.json is missing: no emergence step.\n\n");
    } else if (rate > 0 && isfinite(es)) {
        fprintf(f, "The sink rate over layers >= 2 (eps 0.3) emerged at step %s (%s%% of the run; validation loss "
                   "%s then), by our definition: the first probe step past half-way from its initial (%s) to its "
                   "final value (%s), staying there for the next two probes.\n\n",
                num(es), num(100 * sget(r, "sink_rate_2plus_30_emergence_frac")),
                num(sget(r, "sink_rate_2plus_30_emergence_loss")), num(sget(r, "sink_rate_2plus_30_initial")),
                num(sget(r, "sink_rate_2plus_30_final")));
        emergence_time(f, r, es);
    } else if (rate > 0 && isfinite(sget(r, "sink_rate_30_emergence_step"))) {
        double e30 = sget(r, "sink_rate_30_emergence_step");
        fprintf(f, "The sink rate over layers >= 2 has no emergence step; over all layers (eps 0.3) it emerged at "
                   "step %s (%s%% of the run; validation loss %s then), from %s to %s.\n\n",
                num(e30), num(100 * sget(r, "sink_rate_30_emergence_frac")), num(sget(r, "sink_rate_30_emergence_loss")),
                num(sget(r, "sink_rate_30_initial")), num(sget(r, "sink_rate_30_final")));
        emergence_time(f, r, e30);
    } else if (isfinite(ea)) {
        fprintf(f, "The mean attention on P0 over layers >= 2 crossed half-way from %s to %s at step %s (%s%% of the "
                   "run; validation loss %s then)%s.\n\n",
                num(sget(r, "a_p0_2plus_initial")), num(sget(r, "a_p0_2plus_final")), num(ea),
                num(100 * sget(r, "a_p0_2plus_emergence_frac")), num(sget(r, "a_p0_2plus_emergence_loss")),
                rate > 0 ? "" : "; with no sink at the end this marks that change, not a sink's emergence");
    } else {
        fprintf(f, "summary.json gives no emergence step for the attention on P0 (it did not cross half-way and stay).\n\n");
    }
    figure_line(f, "sink_by_layer.png", why);
    figure_line(f, "trace_sink.png", why);
    figure_line(f, "attention_maps.png", why);
    free(a_layer);
    free(rate_layer);
}

/* a key token for prose: its id, and the character for a printable byte of a byte-level vocabulary */
static const char *token_name(int id, int vocab) {
    static char buf[4][24];
    static int k;
    char *b = buf[k++ % 4];
    if (id < 0) snprintf(b, 24, "-");
    else if (vocab == 257 && id >= 33 && id < 127) snprintf(b, 24, "%d '%c'", id, id);
    else if (vocab == 257 && id == 32) snprintf(b, 24, "32 (space)");
    else if (vocab == 257 && id == 10) snprintf(b, 24, "10 (newline)");
    else snprintf(b, 24, "%d", id);
    return b;
}

static void finding_parking(FILE *f, const Run *r, const char *const *why) {
    fprintf(f, "### Where attention parks\n\n");
    const cJSON *row = r->probes.row[r->sel[r->np - 1]];
    int LH = r->L * r->H, top = jlen(row, "park_id") / (LH > 0 ? LH : 1);
    if (jlen(row, "a_prev") != LH || top < 1) {
        fprintf(f, "probes.jsonl has no parking metrics (a run probed before they existed).\n\n");
        return;
    }
    const char *vocab_text = runconfig_get(&r->cfg, "vocab_size");
    int vocab = vocab_text ? atoi(vocab_text) : 0;
    double chance = jnum(row, "chance");
    int n = LH * (7 + 4 * top);
    double *v = st_malloc(sizeof(double) * (size_t)n), *p0 = v, *p0_trig = v + LH, *p0_ord = v + 2 * LH;
    double *prev = v + 3 * LH, *prev_trig = v + 4 * LH, *self = v + 5 * LH, *v0 = v + 6 * LH;
    double *ids = v + 7 * LH, *mass = ids + LH * top, *lift = mass + LH * top, *vnorm = lift + LH * top;
    jarr(row, "a_p0", p0, LH), jarr(row, "a_p0_trigger", p0_trig, LH), jarr(row, "a_p0_ordinary", p0_ord, LH);
    jarr(row, "a_prev", prev, LH), jarr(row, "a_prev_trigger", prev_trig, LH), jarr(row, "a_self", self, LH);
    jarr(row, "v0_head", v0, LH), jarr(row, "park_id", ids, LH * top), jarr(row, "park_mass", mass, LH * top);
    jarr(row, "park_lift", lift, LH * top), jarr(row, "park_vnorm", vnorm, LH * top);
    int classes = 0;
    for (int i = 0; i < LH; i++) classes |= isfinite(p0_trig[i]);
    fprintf(f, "At the final probe step (%s), per head: attention on P0 (x chance)%s, on the previous token%s and "
               "on itself; the key token (positions >= 1) that holds the most attention mass of the %s, that mass, "
               "the mass over what uniform attention would give it, and its value norm over the head's median "
               "value norm; and P0's value norm over that median. A dormant head parks on a token whose mass is "
               "well above uniform and whose value norm is small.\n\n",
            num(jnum(row, "step")), classes ? " from trigger / ordinary queries" : "",
            classes ? " (all queries / trigger queries)" : "", classes ? "ordinary queries" : "queries");
    fprintf(f, "| head | on P0 | x chance |%s on previous | on itself | top key token | its mass | x uniform | its "
               "value norm | P0 value norm |\n|---|---|---|%s---|---|---|---|---|---|---|\n",
            classes ? " P0: trigger / ordinary |" : "", classes ? "---|" : "");
    for (int i = 0; i < LH; i++) {
        fprintf(f, "| %d.%d | %s | %s |", i / r->H, i % r->H, num(p0[i]), num(p0[i] / chance));
        if (classes) fprintf(f, " %s / %s |", num(p0_trig[i]), num(p0_ord[i]));
        fprintf(f, " %s%s%s | %s | %s | %s | %s | %s | %s |\n", num(prev[i]), classes ? " / " : "",
                classes ? num(prev_trig[i]) : "", num(self[i]), token_name((int)ids[i * top], vocab),
                num(mass[i * top]), num(lift[i * top]), num(vnorm[i * top]), num(v0[i]));
    }
    fprintf(f, "\n");
    figure_line(f, "parking.png", why);
    free(v);
}

/* the largest per-sublayer growth of log rho in a row: which sublayer, and by how much */
static int largest_growth(const cJSON *row, int L, double *amount) {
    double *delta = st_malloc(sizeof(double) * 2 * L);
    jarr(row, "delta", delta, 2 * L);
    int best = -1;
    for (int q = 0; q < 2 * L; q++)
        if (isfinite(delta[q]) && (best < 0 || delta[q] > delta[best])) best = q;
    *amount = best >= 0 ? delta[best] : NAN;
    free(delta);
    return best;
}

/* the maximum of a row's rho over the residual points, and where it is */
static double rho_peak(const Run *r, const cJSON *row, int *at) {
    double *rho = st_malloc(sizeof(double) * r->P), best = NAN;
    jarr(row, "rho", rho, r->P);
    *at = 0;
    for (int p = 0; p < r->P; p++)
        if (isfinite(rho[p]) && !(rho[p] <= best)) best = rho[p], *at = p; /* !(x <= NaN) takes the first */
    free(rho);
    return best;
}

/* our threshold: a norm jump formed when rho's maximum over the residual points at least doubled between
 * the first and the final probe step; 1 yes, 0 no, -1 unknown (rho missing) */
static int norm_jump_formed(const Run *r) {
    int p;
    double first = rho_peak(r, r->probes.row[r->sel[0]], &p), final = rho_peak(r, r->probes.row[r->sel[r->np - 1]], &p);
    if (!isfinite(first) || !isfinite(final)) return -1;
    return final >= 2 * first;
}

static void finding_norm(FILE *f, const Run *r, const char *const *why) {
    fprintf(f, "### The norm of position 0\n\n");
    int L = r->L, P = r->P;
    const cJSON *first_row = r->probes.row[r->sel[0]], *final_row = r->probes.row[r->sel[r->np - 1]];
    double step0 = jnum(first_row, "step"), stepN = jnum(final_row, "step");
    double *rho0 = st_malloc(sizeof(double) * P);
    jarr(first_row, "rho", rho0, P);
    int p0, pN;
    double peak0 = rho_peak(r, first_row, &p0), peakN = rho_peak(r, final_row, &pN);
    if (norm_jump_formed(r) < 0) {
        fprintf(f, "rho (position 0's norm over the median position's) is not in probes.jsonl at the first or the "
                   "final probe step: no finding about the norm.\n\n");
        figure_line(f, "trace_norm.png", why);
        figure_line(f, "norm_profile.png", why);
        free(rho0);
        return;
    }
    fprintf(f, "rho = ||r[0]|| / median ||r[i]|| (position 0's norm over the median position's) peaks at %s at point %s "
               "at step %s, and at %s at point %s at the final step %s.",
            num(peak0), point_name(p0), num(step0), num(peakN), point_name(pN), num(stepN));
    if (isfinite(rho0[1]))
        fprintf(f, " Right after block 0's attention (point 0.5) it is %s at step %s: at initialisation that is the "
                   "causal mask's signal (query 0 attends only to itself), not a learned sink.",
                num(rho0[1]), num(step0));
    fprintf(f, "\n\n");
    double growth;
    int q = largest_growth(final_row, L, &growth);
    if (q >= 0)
        fprintf(f, "At the final step the largest growth of log rho is across block %d's %s (+%s, a factor %s).\n\n",
                q / 2, q % 2 ? "MoE" : "attention", num(growth), num(exp(growth)));
    double d0 = jnum(first_row, "d_star"), dN = jnum(final_row, "d_star");
    double c0 = jnum(first_row, "C2"), cN = jnum(final_row, "C2");
    fprintf(f, "Formation depth d* (the first point with rho >= half its maximum) went from %s at step %s to %s at "
               "the final step; the concentration C2 (share of P0's log-norm growth done by the end of block 1) "
               "went from %s to %s. ",
            depth_name(d0), num(step0), depth_name(dN), num(c0), num(cN));
    if (!norm_jump_formed(r))
        fprintf(f, "rho's maximum went from %s to %s, less than doubling (our threshold): no norm jump formed beyond "
                   "what the first probe step already had, so d* only locates that initial profile.\n\n",
                num(peak0), num(peakN));
    else if (!isfinite(dN))
        fprintf(f, "rho's maximum grew from %s to %s; d* at the final step is not in probes.jsonl.\n\n", num(peak0),
                num(peakN));
    else if (dN <= 2 && d0 > 2)
        fprintf(f, "rho's maximum grew from %s to %s, and the norm jump moved into blocks 0-1 (d* <= 2).\n\n",
                num(peak0), num(peakN));
    else if (dN <= 2)
        fprintf(f, "rho's maximum grew from %s to %s; the norm jump lies within blocks 0-1 (d* <= 2) at the final "
                   "step%s.\n\n",
                num(peak0), num(peakN), d0 <= 2 ? ", and d* was already <= 2 at the first probe step" : "");
    else
        fprintf(f, "rho's maximum grew from %s to %s, but the norm jump is not within blocks 0-1 at the final step "
                   "(d* > 2).\n\n",
                num(peak0), num(peakN));
    figure_line(f, "trace_norm.png", why);
    figure_line(f, "norm_profile.png", why);
    free(rho0);
}

static void finding_cosine(FILE *f, const Run *r, const char *const *why) {
    fprintf(f, "### Is position 0 the same vector for every input?\n\n");
    const cJSON *final_row = r->probes.row[r->sel[r->np - 1]];
    double *k0 = st_malloc(sizeof(double) * r->P), *km = st_malloc(sizeof(double) * r->P);
    jarr(final_row, "kappa_p0", k0, r->P);
    jarr(final_row, "kappa_mid", km, r->P);
    int p = r->P > 4 ? 4 : r->P - 1; /* point 2 = after block 1 */
    fprintf(f, "At the final step, at residual point %s the mean cosine between the states of different inputs is %s "
               "at position 0 and %s at position T/2 (the control)",
            point_name(p), num(k0[p]), num(km[p]));
    /* our threshold: "more alike" needs a cosine at least 0.1 above the control's */
    if (isfinite(k0[p]) && isfinite(km[p]) && k0[p] >= km[p] + 0.1)
        fprintf(f, ": position 0 is more alike across inputs than the control (by %s).\n\n", num(k0[p] - km[p]));
    else if (isfinite(k0[p]) && isfinite(km[p]))
        fprintf(f, ": position 0 is no more alike across inputs than the control (difference %s; our threshold for "
                   "\"more alike\" is 0.1).\n\n",
                num(k0[p] - km[p]));
    else
        fprintf(f, ".\n\n");
    figure_line(f, "cosine.png", why);
    free(k0);
    free(km);
}

static void finding_concentration(FILE *f, const Run *r, const char *const *why) {
    fprintf(f, "### Concentration in blocks 0-1 as a convergence signal\n\n");
    if (norm_jump_formed(r) == 0)
        fprintf(f, "No norm jump formed (see above), so C2 here describes the shape of a nearly flat rho profile, "
                   "not a mechanism concentrating in blocks 0-1. ");
    double ec = sget(r, "C2_emergence_step");
    if (!r->summary)
        fprintf(f, "summary.json is missing: no emergence step for C2.\n\n");
    else if (isfinite(ec))
        fprintf(f, "C2 went from %s to %s and crossed half-way at step %s (%s%% of the run), when the validation "
                   "loss was %s (final: see the training table).\n\n",
                num(sget(r, "C2_initial")), num(sget(r, "C2_final")), num(ec), num(100 * sget(r, "C2_emergence_frac")),
                num(sget(r, "C2_emergence_loss")));
    else
        fprintf(f, "C2 went from %s to %s without crossing half-way and staying (no emergence step).\n\n",
                num(sget(r, "C2_initial")), num(sget(r, "C2_final")));
    figure_line(f, "concentration.png", why);
}

static void finding_experts(FILE *f, const Run *r, const char *const *why) {
    fprintf(f, "### Experts\n\n");
    if (run_is_dense(r)) {
        fprintf(f, "The model is dense (n_expert = 1): there is no routing to report.\n\n");
        return;
    }
    const cJSON *last = r->train.row[r->train.n - 1];
    int L = jlen(last, "load_max_mean");
    if (L > 0) {
        double *ratio = st_malloc(sizeof(double) * L);
        jarr(last, "load_max_mean", ratio, L);
        fprintf(f, "Load balance at the last logged step (max over mean expert load; 1 = even):");
        for (int l = 0; l < L; l++) fprintf(f, " layer %d: %s%s", l, num(ratio[l]), l + 1 < L ? ";" : ".");
        fprintf(f, "\n");
        free(ratio);
    }
    if (r->np > 0 && jlen(r->probes.row[r->sel[r->np - 1]], "p0_route_consistency") == r->L) {
        double *cons = st_malloc(sizeof(double) * r->L);
        jarr(r->probes.row[r->sel[r->np - 1]], "p0_route_consistency", cons, r->L);
        fprintf(f, "Share of probe sequences whose P0 goes to the modal top-1 expert at the final probe step:");
        for (int l = 0; l < r->L; l++) fprintf(f, " layer %d: %s%s", l, num(cons[l]), l + 1 < r->L ? ";" : ".");
        fprintf(f, "\n");
        free(cons);
    }
    fprintf(f, "\n");
    figure_line(f, "experts.png", why);
}

/* names the interventions (lines sel of interventions.jsonl) that at least halved the attention on P0
 * in layers >= 2, and says whether any control (@T/2) did */
static void interventions_halving(FILE *f, const Run *r, const int *sel, int n) {
    int any = 0, controls = 0, n_controls = 0;
    for (int i = 0; i < n; i++) {
        const cJSON *row = r->interv.row[sel[i]];
        double before = jnum(row, "a_p0_2plus_before"), after = jnum(row, "a_p0_2plus_after");
        double pos = jnum(row, "position"), layer = jnum(row, "layer"), head = jnum(row, "head");
        n_controls += pos > 0;
        if (!(after <= 0.5 * before)) continue;
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(row, "intervention");
        fprintf(f, "%s%s", any ? ", " : "Interventions that at least halved the attention on P0 in layers >= 2: ",
                cJSON_IsString(name) ? name->valuestring : "?");
        if (head >= 0) fprintf(f, " (layer %s head %s)", num(layer), num(head));
        fprintf(f, "%s", pos == 0 ? " @P0" : pos > 0 ? " @T/2" : "");
        any = 1;
        controls += pos > 0;
    }
    if (!any)
        fprintf(f, "No intervention halved the attention on P0 in layers >= 2.\n\n");
    else if (n_controls > 0)
        fprintf(f, ". %d of the %d controls at T/2 did.\n\n", controls, n_controls);
    else
        fprintf(f, ".\n\n");
}

static void finding_interventions(FILE *f, const Run *r, const char *const *why) {
    fprintf(f, "### Interventions\n\n");
    if (r->interv.n == 0) {
        fprintf(f, "interventions.jsonl is %s: no intervention results.\n\n",
                strstr(r->missing, "interventions") ? "missing" : "empty");
        return;
    }
    double last;
    int n, *sel = intervention_rows(r, &n, &last);
    const cJSON *base = cJSON_GetObjectItemCaseSensitive(r->interv.row[sel[0]], "base_variant");
    fprintf(f, "At step %s, each intervention against the %s forward (before -> after); \"@P0\" acts on "
               "position 0, \"@T/2\" is the same intervention on the control position.",
            num(last), cJSON_IsString(base) ? base->valuestring : "natural");
    double rate = r->np ? jnum(r->probes.row[r->sel[r->np - 1]], "sink_rate_30") : NAN;
    if (rate == 0)
        fprintf(f, " This run has no P0 sink (sink rate 0), so these are changes to attention near or below chance, "
                   "not to a sink.");
    fprintf(f, "\n\n");
    fprintf(f, "| intervention | attention on P0, layers >= 2 | sink rate >= 2 (0.3) | rho max | rho after block 1 "
               "| probe loss |\n|---|---|---|---|---|---|\n");
    const char *keys[5] = {"a_p0_2plus", "sink_rate_2plus_30", "rho_max", "rho_2", "probe_loss"};
    for (int i = 0; i < n; i++) {
        const cJSON *row = r->interv.row[sel[i]];
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(row, "intervention");
        double pos = jnum(row, "position"), layer = jnum(row, "layer"), head = jnum(row, "head");
        fprintf(f, "| %s", cJSON_IsString(name) ? name->valuestring : "?");
        if (head >= 0) fprintf(f, " (layer %s head %s)", num(layer), num(head));
        fprintf(f, "%s", pos == 0 ? " @P0" : pos > 0 ? " @T/2" : "");
        for (int k = 0; k < 5; k++) {
            char kb[64], ka[64];
            snprintf(kb, sizeof kb, "%s_before", keys[k]);
            snprintf(ka, sizeof ka, "%s_after", keys[k]);
            fprintf(f, " | %s -> %s", num(jnum(row, kb)), num(jnum(row, ka)));
        }
        fprintf(f, " |\n");
    }
    fprintf(f, "\n");
    interventions_halving(f, r, sel, n);
    free(sel);
    figure_line(f, "interventions.png", why);
}

static void section_findings(FILE *f, const Run *r, const char *const *why) {
    fprintf(f, "## Findings\n\nDefinitions are docs/SCIENCE.md's; the thresholds (eps = 0.3, half-way crossings, "
               "blocks 0-1) are ours, not the paper's.\n\n");
    if (r->np == 0) {
        if (r->probes.n) fprintf(f, "probes.jsonl has no rows of variant \"%s\"", r->variant);
        else fprintf(f, "probes.jsonl is missing");
        fprintf(f, ": there are no probe results, so this report states no finding about the sink.\n\n");
        finding_experts(f, r, why);
        return;
    }
    finding_sink(f, r, why);
    finding_parking(f, r, why);
    finding_norm(f, r, why);
    finding_cosine(f, r, why);
    finding_concentration(f, r, why);
    finding_experts(f, r, why);
    finding_interventions(f, r, why);
}

/* ---------------------------------------------------------------- report_run */

int report_run(const char *run_dir, char *err) {
    Run r;
    if (run_load(&r, run_dir, err)) {
        run_free(&r);
        return -1;
    }
    /* draw every figure; why[i] stays "" for the drawn ones */
    char (*why_buf)[FIG_WHY_LEN] = st_calloc(n_run_figures, FIG_WHY_LEN);
    const char **why = st_malloc(sizeof(char *) * n_run_figures);
    int rc = 0;
    for (int i = 0; i < n_run_figures && !rc; i++) {
        why[i] = why_buf[i];
        rc = run_figures[i].draw(&r, why_buf[i], err) < 0 ? -1 : 0;
    }
    char path[1200];
    snprintf(path, sizeof path, "%s/report.md", r.dir);
    StAtomic a;
    if (!rc) rc = st_atomic_open(&a, path, err);
    if (!rc) {
        FILE *f = a.f;
        fprintf(f, "# Run report: %s\n\nWritten by `bin/report %s` from the run's files.", r.name, r.dir);
        if (r.missing[0]) fprintf(f, " Missing: %s; what needs them is left out and said so.", r.missing);
        if (!strcmp(r.variant, "bos"))
            fprintf(f, " The run trained with BOS at position 0, so the probe numbers are the `bos` variant's (the "
                       "probe windows with BOS in front, as in training) and summary_bos.json's.");
        fprintf(f, "\n\n");
        figure_line(f, "story.png", why);
        section_config(f, &r);
        section_training(f, &r, why);
        section_findings(f, &r, why);
        if (ferror(f)) {
            st_atomic_abort(&a);
            rc = st_errorf(err, "%s: write failed: %s", path, strerror(errno));
        } else {
            rc = st_atomic_commit(&a, err);
        }
    }
    if (!rc) rc = viewer_write_run(&r, err); /* report.html: report.md and the viewer */
    free(why);
    free(why_buf);
    run_free(&r);
    return rc;
}

/* ---------------------------------------------------------------- report_compare */

static const struct {
    const char *key, *title, *ylabel;
    int from_train;
} compare_metrics[] = {
    {"val_loss", "Validation loss", "loss (nats/token)", 1},
    {"a_p0_2plus", "Mean attention on P0, layers >= 2", "attention on P0", 0},
    {"sink_rate_2plus_30", "Sink rate over layers >= 2 (eps = 0.3)", "share of heads", 0},
    {"rho_max", "P0 norm ratio rho, max over points", "rho", 0},
    {"C2", "Concentration C2", "C2", 0},
    {"d_star", "Formation depth d*", "d* (residual point)", 0},
};

static int make_dir(const char *dir, char *err) {
    if (mkdir(dir, 0777) && errno != EEXIST) return st_errorf(err, "%s: cannot create directory: %s", dir, strerror(errno));
    return 0;
}

Headline report_headline(const Run *r) {
    double *val = run_train_col(r, "val_loss"), *tok = run_train_col(r, "tokens");
    const cJSON *fin = r->np ? r->probes.row[r->sel[r->np - 1]] : NULL;
    Headline h = {
        .tokens = last_finite(tok, r->train.n, NULL),
        .val_loss = last_finite(val, r->train.n, NULL),
        .a_p0_2plus = fin ? jnum(fin, "a_p0_2plus") : NAN,
        .sink_rate = fin ? jnum(fin, "sink_rate_30") : NAN,
        .rho_max = fin ? jnum(fin, "rho_max") : NAN,
        .C2 = fin ? jnum(fin, "C2") : NAN,
    };
    h.emergence = h.sink_rate > 0 ? sget(r, "sink_rate_2plus_30_emergence_step") : NAN;
    h.lift_2plus = h.rho2_jump = h.kappa2_p0 = h.kappa2_mid = NAN;
    if (fin) {
        /* point 2 is index 4 of the 2L+1 residual points 0, 0.5, 1, ... */
        double rho[5], rho0[5], kp[5], km[5];
        const cJSON *first = r->probes.row[r->sel[0]];
        h.lift_2plus = h.a_p0_2plus / jnum(fin, "chance");
        if (jarr(fin, "rho", rho, 5) >= 5 && jarr(first, "rho", rho0, 5) >= 5) h.rho2_jump = rho[4] / rho0[4];
        if (jarr(fin, "kappa_p0", kp, 5) >= 5 && jarr(fin, "kappa_mid", km, 5) >= 5) {
            h.kappa2_p0 = kp[4];
            h.kappa2_mid = km[4];
        }
    }
    free(val);
    free(tok);
    return h;
}

static void compare_row(FILE *f, const Run *r) {
    Headline h = report_headline(r);
    fprintf(f, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s / %s | %s |\n", r->name, num(h.tokens), num(h.val_loss),
            num(h.a_p0_2plus), num(h.lift_2plus), num(h.sink_rate), num(h.rho_max), num(h.rho2_jump), num(h.C2),
            num(h.kappa2_p0), num(h.kappa2_mid), h.sink_rate > 0 ? num(h.emergence) : h.sink_rate == 0 ? "no sink" : "n/a");
}

/* config keys whose values differ between runs (keys of the first run with a config.txt) */
static int differing_keys(const Run *runs, int n_runs, const char **keys, int max_keys) {
    const Run *ref = NULL;
    for (int i = 0; i < n_runs && !ref; i++)
        if (runs[i].has_cfg) ref = &runs[i];
    int n = 0;
    for (int k = 0; ref && k < ref->cfg.n && n < max_keys; k++) {
        if (!strcmp(ref->cfg.key[k], "run_name") || !strcmp(ref->cfg.key[k], "out_dir")) continue;
        for (int i = 0; i < n_runs; i++) {
            const char *v = runconfig_get(&runs[i].cfg, ref->cfg.key[k]);
            if (!v || strcmp(v, ref->cfg.value[k])) {
                keys[n++] = ref->cfg.key[k];
                break;
            }
        }
    }
    return n;
}

/* versus_<key>.png for every differing key whose values are all numbers; lists them (or why not) */
static int versus_figures(FILE *f, const Run *runs, int n_runs, const char *out_dir, char *err) {
    const char *keys[32];
    int n = differing_keys(runs, n_runs, keys, 32);
    double *x = st_malloc(sizeof(double) * n_runs), *y[4];
    for (int m = 0; m < 4; m++) y[m] = st_malloc(sizeof(double) * n_runs);
    for (int i = 0; i < n_runs; i++) {
        Headline h = report_headline(&runs[i]);
        y[0][i] = h.emergence;
        y[1][i] = h.sink_rate;
        y[2][i] = h.C2;
        y[3][i] = h.val_loss;
    }
    static const char *titles[4] = {"sink emergence step", "final sink rate (eps 0.3)", "final C2", "final val loss"};
    int rc = 0;
    for (int k = 0; k < n && !rc; k++) {
        int numeric = 1;
        for (int i = 0; i < n_runs && numeric; i++) {
            const char *v = runconfig_get(&runs[i].cfg, keys[k]);
            char *end;
            x[i] = v ? strtod(v, &end) : NAN;
            numeric = v && end != v && *end == 0;
        }
        if (!numeric) {
            fprintf(f, "%s is not a number in every run: no figure against it.\n\n", keys[k]);
            continue;
        }
        rc = fig_versus_key(keys[k], x, (const double *const *)y, titles, n_runs, out_dir, err);
        if (!rc) fprintf(f, "![headline numbers against %s](versus_%s.png)\n\n", keys[k], keys[k]);
    }
    free(x);
    for (int m = 0; m < 4; m++) free(y[m]);
    return rc;
}

static void config_differences(FILE *f, const Run *runs, int n_runs) {
    const char *keys[32];
    int n = differing_keys(runs, n_runs, keys, 32);
    if (n == 0) {
        fprintf(f, "The runs' config.txt files agree on every key (or are missing).\n\n");
        return;
    }
    fprintf(f, "Settings that differ between the runs:\n\n| run |");
    for (int k = 0; k < n; k++) fprintf(f, " %s |", keys[k]);
    fprintf(f, "\n|---|");
    for (int k = 0; k < n; k++) fprintf(f, "---|");
    fprintf(f, "\n");
    for (int i = 0; i < n_runs; i++) {
        fprintf(f, "| %s |", runs[i].name);
        for (int k = 0; k < n; k++) {
            const char *v = runconfig_get(&runs[i].cfg, keys[k]);
            fprintf(f, " %s |", v ? v : "n/a");
        }
        fprintf(f, "\n");
    }
    fprintf(f, "\n");
}

int report_compare(const char *const *run_dirs, int n_runs, const char *out_dir, char *err) {
    if (n_runs < 1 || n_runs > 64) return st_errorf(err, "--compare: expected 1 to 64 run directories, found %d", n_runs);
    Run *runs = st_calloc(n_runs, sizeof(Run));
    int rc = make_dir(out_dir, err), loaded = 0;
    for (; loaded < n_runs && !rc; loaded++) rc = run_load(&runs[loaded], run_dirs[loaded], err);
    int n_metrics = sizeof compare_metrics / sizeof compare_metrics[0];
    for (int m = 0; m < n_metrics && !rc; m++)
        rc = fig_compare(runs, n_runs, compare_metrics[m].key, compare_metrics[m].title, compare_metrics[m].ylabel,
                         compare_metrics[m].from_train, out_dir, err);
    char path[1200];
    snprintf(path, sizeof path, "%s/compare.md", out_dir);
    StAtomic a;
    if (!rc) rc = st_atomic_open(&a, path, err);
    if (!rc) {
        FILE *f = a.f;
        fprintf(f, "# Comparison of %d runs\n\nFinal values (last logged or probed step); \"n/a\" where a run lacks "
                   "the file or the number.\n\n", n_runs);
        fprintf(f, "| run | tokens | final val loss | attention on P0, layers >= 2 | lift, layers >= 2 | sink rate (0.3) "
                   "| rho max | rho at point 2 / step 0 | C2 | kappa at point 2: P0 / T/2 "
                   "| sink emergence step (sink rate >= 2, eps 0.3) |\n|---|---|---|---|---|---|---|---|---|---|---|\n");
        for (int i = 0; i < n_runs; i++) compare_row(f, &runs[i]);
        fprintf(f, "\n");
        config_differences(f, runs, n_runs);
        for (int m = 0; m < n_metrics; m++)
            fprintf(f, "![%s](compare_%s.png)\n\n", compare_metrics[m].title, compare_metrics[m].key);
        fprintf(f, "## Against each setting that differs\n\nEach run's sink emergence step (none without a final "
                   "sink), final sink rate, final C2 and final validation loss against the setting's value.\n\n");
        if (versus_figures(f, runs, n_runs, out_dir, err)) {
            st_atomic_abort(&a);
            rc = -1;
        } else if (ferror(f)) {
            st_atomic_abort(&a);
            rc = st_errorf(err, "%s: write failed: %s", path, strerror(errno));
        } else {
            rc = st_atomic_commit(&a, err);
        }
    }
    if (!rc) rc = viewer_write_compare(runs, n_runs, out_dir, err); /* compare.html */
    for (int i = 0; i < loaded; i++) run_free(&runs[i]);
    free(runs);
    return rc;
}
