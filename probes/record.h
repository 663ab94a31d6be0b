/* probes/record.h: every metric of one probe step and variant (one line of probes.jsonl), computed from
 * one MoeCapture with probes/metrics.h, and the run summary (summary.json) derived from probes.jsonl.
 *
 * Array layouts: [L*H] layer-major (index l*H + h); [P] = [2L+1] residual points (index p is the
 * paper's p/2); [L] per block. The keys of a line are the table record_fields (below). */
#ifndef SINKTRACE_RECORD_H
#define SINKTRACE_RECORD_H

#include <stdio.h>

#include "../common/jsonl.h"
#include "../model/moe.h"
#include "metrics.h"

#define PARK_TOP 3 /* key tokens reported per head */

typedef struct {
    /* identity */
    long step;
    const char *variant;
    long long tokens;    /* training tokens seen at this step */
    double val_loss;     /* the trainer's validation loss at this step, NaN if not known */
    double probe_loss;   /* mean cross-entropy of this variant's windows (natural, bos), else NaN */
    double probe_seconds; /* wall time the run had spent probing before this line */
    int L, H, T, N;
    double chance;       /* chance(T) */

    /* attention on key 0 and the controls, [L*H] */
    double *a_p0, *a_p0_gu, *a_p0_late, *a_k1, *a_mid;
    double *a_p0_layer, *lift_layer; /* [L] mean over heads, and that over chance */
    double a_p0_2plus;               /* mean of a_p0 over the heads of layers >= 2 (NaN if L < 3) */
    double sink_rate_20, sink_rate_30, sink_rate_50;
    double sink_rate_2plus_20, sink_rate_2plus_30, sink_rate_2plus_50;
    double sink_rate_k1_30, sink_rate_mid_30;
    double *sink_rate_layer_30; /* [L] */

    /* where attention parks, [L*H]: on the previous token, on itself, and on P0 and the previous token
     * split by query class (NaN when no probe query has the class); v0_head: P0's value norm over the
     * median, per query head */
    double *a_prev, *a_self, *a_p0_trigger, *a_p0_ordinary, *a_prev_trigger, *a_prev_ordinary, *v0_head;
    double *a_induction; /* [L*H] attention on the successors of the query token's earlier occurrences */
    /* [L*H*PARK_TOP]: the key tokens (positions >= 1) holding the most attention mass of the ordinary
     * queries (all queries without classes): id, mass, mass over uniform attention's, value norm over
     * the median value norm */
    int *park_id;
    double *park_mass, *park_lift, *park_vnorm;

    /* residual stream, [2L+1] */
    double *rho, *kappa_p0, *kappa_p1, *kappa_mid, *kappa_p0_norm, *kappa_p1_norm, *kappa_mid_norm;
    double *massive_ratio;
    int *massive_channel;
    double rho_max;

    /* per block, [L] */
    double *eta, *mu, *gain, *qk_cos_p0, *qk_cos_other, *k0_ratio, *v0_ratio;
    double *p0_route_consistency, *router_entropy_p0, *router_entropy_median;
    double *p0_units; /* [2] blocks 0 and 1 (NaN for a block the model lacks) */

    /* derived */
    double *delta;       /* [2L] per sublayer: log rho[q+1] - log rho[q] */
    double *delta_block; /* [L] SCIENCE.md's delta_l = log rho_{l+1} - log rho_l */
    double d_star, C2, K2;

    double *mem; /* one allocation behind every double array above */
    int *imem;   /* and one behind the int arrays */
} ProbeRecord;

/* The schema of a probes.jsonl line: each key in the order written, what it holds and where in
 * ProbeRecord. This one table drives record_alloc, the writer (record_to_json), the reader's checks
 * (probes/report/runlog.c), and a test that docs/PROBES.md documents exactly these keys with these shapes. */
typedef enum { RF_LONG, RF_LLONG, RF_INT, RF_NUM, RF_TEXT, RF_NUMS, RF_INTS } RecordKind;
/* a value's shape: one value, or an array of L*H, L*H*PARK_TOP, P = 2L+1, L, 2L or 2 values */
typedef enum { RS_ONE, RS_HEADS, RS_PARK, RS_POINTS, RS_LAYERS, RS_SUBLAYERS, RS_PAIR } RecordShape;
typedef struct {
    const char *key;
    RecordKind kind;
    RecordShape shape;
    size_t offset; /* of the field in ProbeRecord: the value, or the pointer to the array */
} RecordField;
extern const RecordField record_fields[];
extern const int record_n_fields;
/* values in a field of this shape for L blocks of H heads (1 for RS_ONE) */
int record_shape_length(RecordShape s, int L, int H);

void record_alloc(ProbeRecord *r, int L, int H);
void record_free(ProbeRecord *r);

/* Fills every metric from a capture of N sequences (dims d) that holds attn, resid, attn_out, moe_out,
 * q, k, v, router_probs, router_choice and moe_hidden. norm_gains [2L+1][C] (may be NULL) is the gain
 * of the RMSNorm that reads each residual point (the *_norm kappas use it; NULL: raw kappas again).
 * tokens [N][T] are the windows the capture read; classes [N][T] their query classes (data/stream.h),
 * NULL when unknown (then the class splits are NaN and the parking metrics count every query). */
void record_compute(ProbeRecord *r, const MoeCapture *cap, const ProbeDims *d, const float *norm_gains,
                    const int *tokens, const uint8_t *classes);

/* one probes.jsonl line */
void record_to_json(const ProbeRecord *r, StJson *j);

/* The run summary of probes.jsonl's lines of one variant (in file order), written to summary_path:
 * for each headline metric (a_p0_2plus, a_p0_max, sink_rate_30, sink_rate_2plus_30, rho_max, rho_2,
 * kappa_p0_2, C2) its initial and final values, emergence step (SCIENCE.md), emergence as a share of
 * total_steps, and the loss at emergence; plus the series of steps, losses, d_star and C2, and the
 * cost of probing (cost may be NULL). summary.json is the natural variant's; a run trained with BOS
 * also gets summary_bos.json, the bos variant's (the windows as it was trained on them). */
typedef struct {
    double probe_seconds; /* wall time spent probing */
    double final_seconds; /* the part of it spent on the final step's variants and interventions */
    double run_seconds;   /* wall time of the run (this process) */
} ProbeCost;
int summary_write(const char *probes_path, const char *variant, const char *summary_path, long total_steps,
                  const ProbeCost *cost, char *err);

#endif
