#include "adamw.h"

#include <math.h>
#include <stdlib.h>

#include "../common/util.h"

void adamw_init(AdamW *o, size_t n) {
    o->n = n;
    o->m = st_calloc(n, sizeof(float));
    o->v = st_calloc(n, sizeof(float));
}

void adamw_free(AdamW *o) {
    free(o->m);
    free(o->v);
    o->m = o->v = NULL;
}

/* updates one tensor's n parameters; decay is lr * weight_decay or 0 */
static void adamw_tensor(float *p, const float *g, float *m, float *v, size_t n, const AdamWHyper *h,
                         float bias1, float bias2, float decay, float clip_scale) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        float gi = g[i] * clip_scale;
        m[i] = h->beta1 * m[i] + (1.0f - h->beta1) * gi;
        v[i] = h->beta2 * v[i] + (1.0f - h->beta2) * gi * gi;
        float m_hat = m[i] / bias1, v_hat = v[i] / bias2;
        p[i] -= decay * p[i];
        p[i] -= h->lr * m_hat / (sqrtf(v_hat) + h->eps);
    }
}

void adamw_step(AdamW *o, float *params, const float *grads, const MoeTensor *tensors, int n_tensors,
                const AdamWHyper *h, int64_t t, float clip_scale) {
    /* bias corrections: the moments start at 0, so early averages are scaled up */
    float bias1 = (float)(1.0 - pow(h->beta1, (double)t));
    float bias2 = (float)(1.0 - pow(h->beta2, (double)t));
    for (int i = 0; i < n_tensors; i++) {
        const MoeTensor *tn = &tensors[i];
        float decay = tn->decay ? h->lr * h->weight_decay : 0.0f;
        adamw_tensor(params + tn->offset, grads + tn->offset, o->m + tn->offset, o->v + tn->offset, tn->size, h,
                     bias1, bias2, decay, clip_scale);
    }
}

double grad_global_norm(const float *grads, size_t n) {
    double sum = 0.0;
    for (size_t i = 0; i < n; i++) sum += (double)grads[i] * grads[i];
    return sqrt(sum);
}

float grad_clip_scale(double norm, float max_norm) {
    if (max_norm <= 0.0f || !(norm > max_norm)) return 1.0f;
    return (float)(max_norm / norm);
}

int first_nonfinite_tensor(const float *buf, const MoeTensor *tensors, int n_tensors) {
    for (int i = 0; i < n_tensors; i++)
        for (size_t j = 0; j < tensors[i].size; j++)
            if (!isfinite(buf[tensors[i].offset + j])) return i;
    return -1;
}
