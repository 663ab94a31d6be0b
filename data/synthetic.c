/* data/synthetic.c: the Bigram-Backcopy generator. */
#include "synthetic.h"

#include <stdlib.h>

#include "../common/util.h"

int bb_check(const BbConfig *c, char *err) {
    if (c->vocab < 2 || c->vocab > 65535)
        return st_errorf(err, "--vocab: expected 2 to 65535 symbols, found %d", c->vocab);
    if (c->triggers < 0 || c->triggers >= c->vocab)
        return st_errorf(err, "--triggers: expected 0 to %d (fewer than --vocab), found %d", c->vocab - 1, c->triggers);
    if (c->successors < 1 || c->successors > c->vocab - c->triggers)
        return st_errorf(err, "--successors: expected 1 to %d (the ordinary symbols), found %d", c->vocab - c->triggers,
                         c->successors);
    if (!(c->trigger_prob >= 0 && c->trigger_prob <= 1))
        return st_errorf(err, "--trigger_prob: expected 0 to 1, found %g", c->trigger_prob);
    if (c->doc_len < 3) return st_errorf(err, "--doc_len: expected at least 3, found %d", c->doc_len);
    if (c->n_docs < 2)
        return st_errorf(err, "--tokens: expected at least 2 documents of --doc_len %d tokens, found %lld documents",
                         c->doc_len, (long long)c->n_docs);
    return 0;
}

typedef struct {
    int *next;     /* [vocab][successors] ordinary symbols */
    double *cumul; /* [vocab][successors] cumulative probabilities */
} Bigram;

/* each symbol gets `successors` distinct ordinary successors with random weights */
static Bigram bigram_table(const BbConfig *c, StRng *rng) {
    int n_ord = c->vocab - c->triggers, S = c->successors;
    Bigram g = {st_malloc((size_t)c->vocab * S * sizeof(int)), st_malloc((size_t)c->vocab * S * sizeof(double))};
    int *pool = st_malloc((size_t)n_ord * sizeof *pool);
    for (int i = 0; i < n_ord; i++) pool[i] = c->triggers + i;
    for (int s = 0; s < c->vocab; s++) {
        double total = 0;
        for (int k = 0; k < S; k++) {
            int j = k + (int)st_rng_below(rng, (uint32_t)(n_ord - k)); /* partial shuffle: k distinct picks */
            int t = pool[k];
            pool[k] = pool[j];
            pool[j] = t;
            g.next[s * S + k] = pool[k];
            total += g.cumul[s * S + k] = 0.05 + st_rng_uniform(rng);
        }
        double run = 0;
        for (int k = 0; k < S; k++) g.cumul[s * S + k] = (run += g.cumul[s * S + k] / total);
    }
    free(pool);
    return g;
}

static int bigram_next(const BbConfig *c, const Bigram *g, int prev, StRng *rng) {
    double u = st_rng_uniform(rng);
    const double *cu = g->cumul + (size_t)prev * c->successors;
    for (int k = 0; k < c->successors - 1; k++)
        if (u < cu[k]) return g->next[(size_t)prev * c->successors + k];
    return g->next[(size_t)prev * c->successors + c->successors - 1];
}

static void generate_doc(const BbConfig *c, const Bigram *g, StRng *rng, int *doc) {
    doc[0] = c->vocab; /* BOS */
    doc[1] = c->triggers + (int)st_rng_below(rng, (uint32_t)(c->vocab - c->triggers));
    for (int p = 2; p < c->doc_len; p++) {
        int prev = doc[p - 1];
        if (prev < c->triggers) doc[p] = doc[p - 2]; /* back-copy: the symbol before the trigger */
        else if (c->triggers > 0 && p < c->doc_len - 1 && st_rng_uniform(rng) < c->trigger_prob)
            doc[p] = (int)st_rng_below(rng, (uint32_t)c->triggers);
        else doc[p] = bigram_next(c, g, prev, rng);
    }
}

void bb_generate(const BbConfig *c, int *out) {
    StRng rng;
    st_rng_seed(&rng, c->seed);
    Bigram g = bigram_table(c, &rng);
    for (int64_t d = 0; d < c->n_docs; d++) generate_doc(c, &g, &rng, out + d * c->doc_len);
    free(g.next);
    free(g.cumul);
}
