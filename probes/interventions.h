/* probes/interventions.h: the experiments that test the P0 sink circuit (docs/SCIENCE.md,
 * "What a reproduction should show"). Each one is a forward of the probe set with an input variant or
 * a MoeCapture intervention; its line in interventions.jsonl holds the headline metrics before (the
 * base variant: the one the run trained on, natural or, for a run trained with BOS, bos; no
 * intervention) and after, and every ablation at position 0 is repeated at position T/2 as a control:
 *   natural, bos, random_first, shuffled, random, repeated, shifted   the input variants other than
 *                      the base (probes/probeset.h)
 *   rope_offset        RoPE positions start at 1000: must change nothing but float rounding (not run
 *                      for a model with learned positions)
 *   window             sliding-window attention of T/4 keys: later queries cannot see key 0
 *   zero_attn0, mean_attn0                block 0's attention output at the position: zeros / its mean
 *   zero_moe0, mean_moe0, zero_moe1, mean_moe1   the same for the MoE output of blocks 0 and 1
 *   patch_other_seq    the state after block 1 at the position taken from the next probe sequence
 *   redirect           the state after block 1 replaced by a random direction of the same norm
 *   rescale_median     the state after block 1 rescaled to the median norm of positions >= 1
 *   zero_head          each head of blocks 0 and 1 in turn, zeroed at every position
 * "mean" replacements are the mean over probe sequences and positions >= 1 of the base forward. */
#ifndef SINKTRACE_INTERVENTIONS_H
#define SINKTRACE_INTERVENTIONS_H

#include "probe.h"

/* Runs them all on the prober's probe set and appends one line each to run_dir/name. base is the
 * record of variant base_variant at this step, measured by the prober's last forward (its capture is
 * still in pr->cap). Each variant's full record (but natural's, which the prober writes) also goes to
 * variants_f (with `tokens`), so the final step's probes.jsonl lines of the variants cost no extra
 * forward. */
int interventions_run(Prober *pr, Moe *m, int base_variant, const ProbeRecord *base, long long tokens,
                      FILE *variants_f, const char *variants_path, const char *name, char *err);

#endif
