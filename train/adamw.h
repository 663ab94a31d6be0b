/* train/adamw.h: the AdamW optimizer (Loshchilov & Hutter) with decoupled weight decay, and the
 * global gradient norm used for clipping and for catching NaN/Inf.
 *
 * One step, for every parameter p with gradient g (times clip_scale) at step t = 1, 2, ...:
 *   m = beta1 m + (1 - beta1) g           v = beta2 v + (1 - beta2) g^2
 *   p = p - lr * weight_decay * p         (only tensors whose `decay` flag is 1: not norm gains)
 *   p = p - lr * (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps) */
#ifndef SINKTRACE_ADAMW_H
#define SINKTRACE_ADAMW_H

#include <stddef.h>
#include <stdint.h>

#include "../model/moe.h"

typedef struct {
    float lr, beta1, beta2, eps, weight_decay;
} AdamWHyper;

typedef struct {
    size_t n;
    float *m; /* first moments, one per parameter */
    float *v; /* second moments */
} AdamW;

void adamw_init(AdamW *o, size_t n); /* moments start at zero */
void adamw_free(AdamW *o);
/* one update of params (laid out as `tensors` describes) from grads * clip_scale; t = 1-based step */
void adamw_step(AdamW *o, float *params, const float *grads, const MoeTensor *tensors, int n_tensors,
                const AdamWHyper *h, int64_t t, float clip_scale);

/* sqrt(sum of g^2) over all n gradients, in double: fixed blocks summed in parallel, then added in
 * block order (deterministic, and the same on any thread count) */
double grad_global_norm(const float *grads, size_t n);
/* what multiplies the gradients so their norm is at most max_norm (1 if max_norm is 0 = off) */
float grad_clip_scale(double norm, float max_norm);
/* the index of the first tensor holding a NaN or Inf in buf (params or grads), or -1 */
int first_nonfinite_tensor(const float *buf, const MoeTensor *tensors, int n_tensors);

#endif
