#include "adamw.h"

#include <math.h>
#include <stdlib.h>

#include "../common/util.h"
#include "../model/simd.h"

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

/* the step's constants, hoisted so the loop body is pure vector arithmetic */
typedef struct {
    float lr, beta1, beta2, eps, bias1, bias2, clip_scale;
} AdamWStep;

/* updates n parameters from index i (8 at a time: one lane per parameter, so a parameter's update
 * does not depend on where its chunk starts); decay is lr * weight_decay or 0 */
static void adamw_range(float *p, const float *g, float *m, float *v, size_t n, const AdamWStep *s, float decay) {
    const v8 b1 = splat8(s->beta1), b2 = splat8(s->beta2), one = splat8(1.0f), lr = splat8(s->lr);
    const v8 bias1 = splat8(s->bias1), bias2 = splat8(s->bias2), eps = splat8(s->eps), dec = splat8(decay);
    for (size_t i = 0; i < n; i += 8) {
        size_t k = n - i < 8 ? n - i : 8;
        v8 gi = load_part(g + i, k) * splat8(s->clip_scale);
        v8 mi = b1 * load_part(m + i, k) + (one - b1) * gi;
        v8 vi = b2 * load_part(v + i, k) + (one - b2) * gi * gi;
        v8 pi = load_part(p + i, k);
        pi -= dec * pi;
        pi -= lr * (mi / bias1) / (sqrt8(vi / bias2) + eps);
        store_part(m + i, mi, k), store_part(v + i, vi, k), store_part(p + i, pi, k);
    }
}

/* every tensor's parameters split into fixed chunks, all tensors in one parallel pass (no barrier
 * between tensors); each parameter is updated by itself, so the thread count changes nothing */
enum { ADAMW_CHUNK = 4096 };

void adamw_step(AdamW *o, float *params, const float *grads, const MoeTensor *tensors, int n_tensors,
                const AdamWHyper *h, int64_t t, float clip_scale) {
    /* bias corrections: the moments start at 0, so early averages are scaled up */
    AdamWStep s = {h->lr, h->beta1, h->beta2, h->eps, (float)(1.0 - pow(h->beta1, (double)t)),
                   (float)(1.0 - pow(h->beta2, (double)t)), clip_scale};
#pragma omp parallel
    for (int i = 0; i < n_tensors; i++) {
        const MoeTensor *tn = &tensors[i];
        float decay = tn->decay ? h->lr * h->weight_decay : 0.0f;
        size_t off = tn->offset;
#pragma omp for schedule(static) nowait
        for (size_t c = 0; c < tn->size; c += ADAMW_CHUNK) {
            size_t n = tn->size - c < ADAMW_CHUNK ? tn->size - c : ADAMW_CHUNK;
            adamw_range(params + off + c, grads + off + c, o->m + off + c, o->v + off + c, n, &s, decay);
        }
    }
}

/* sums of squares of fixed blocks of NORM_BLOCK gradients (each in double, in four interleaved chains
 * added in a fixed order), then the blocks' sums in block order: the same result whatever the thread
 * count */
enum { NORM_BLOCK = 16384 };

double grad_global_norm(const float *grads, size_t n) {
    size_t nb = (n + NORM_BLOCK - 1) / NORM_BLOCK;
    double *block = st_malloc(sizeof(double) * (nb ? nb : 1));
#pragma omp parallel for schedule(static)
    for (size_t b = 0; b < nb; b++) {
        size_t end = (b + 1) * NORM_BLOCK < n ? (b + 1) * NORM_BLOCK : n;
        double s[4] = {0.0, 0.0, 0.0, 0.0}; /* four independent chains: one would wait on each add */
        size_t i = b * NORM_BLOCK;
        for (; i + 4 <= end; i += 4)
            for (int l = 0; l < 4; l++) s[l] += (double)grads[i + l] * grads[i + l];
        for (; i < end; i++) s[0] += (double)grads[i] * grads[i];
        block[b] = (s[0] + s[1]) + (s[2] + s[3]);
    }
    double sum = 0.0;
    for (size_t b = 0; b < nb; b++) sum += block[b];
    free(block);
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
