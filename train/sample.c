#include "sample.h"

#include <math.h>
#include <stdlib.h>

/* qsort order: higher logit first, then lower id (so ties are deterministic) */
static const float *sort_logits;
static int by_logit_desc(const void *a, const void *b) {
    int i = *(const int *)a, j = *(const int *)b;
    if (sort_logits[i] != sort_logits[j]) return sort_logits[i] > sort_logits[j] ? -1 : 1;
    return i - j;
}

int sample_next(const float *logits, int V, float temperature, int top_k, StRng *rng) {
    int *ids = st_malloc(sizeof(int) * (size_t)V);
    for (int i = 0; i < V; i++) ids[i] = i;
    sort_logits = logits;
    qsort(ids, (size_t)V, sizeof(int), by_logit_desc);
    int k = top_k > 0 && top_k < V ? top_k : V, pick = ids[0];
    if (temperature > 0) {
        /* softmax over the k best with the maximum (ids[0]'s logit) subtracted; draw by inverse CDF */
        double *p = st_malloc(sizeof(double) * (size_t)k), sum = 0;
        for (int r = 0; r < k; r++) sum += p[r] = exp((double)(logits[ids[r]] - logits[ids[0]]) / temperature);
        double u = st_rng_uniform(rng) * sum;
        int r = 0;
        for (; r < k - 1 && u >= p[r]; r++) u -= p[r];
        pick = ids[r];
        free(p);
    }
    free(ids);
    return pick;
}
