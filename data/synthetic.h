/* data/synthetic.h: the Bigram-Backcopy stream (Guo et al. 2024, arXiv 2410.13835), a synthetic corpus
 * on which 1-3 layer transformers grow attention sinks.
 *
 * Symbols 0..triggers-1 are triggers, the others ordinary. A seeded sparse bigram table gives each
 * symbol `successors` ordinary successors with random weights. A document is BOS (id vocab), an
 * ordinary symbol drawn uniformly, then: after a trigger, a copy of the symbol before that trigger;
 * otherwise a uniformly drawn trigger with probability trigger_prob (never as the last token), else a
 * successor drawn from the bigram table. */
#ifndef SINKTRACE_SYNTHETIC_H
#define SINKTRACE_SYNTHETIC_H

#include <stdint.h>

typedef struct {
    int vocab;           /* symbols; the token vocab is vocab + 1 (BOS = vocab) */
    int triggers;        /* symbols 0..triggers-1 */
    int successors;      /* ordinary successors per symbol in the bigram table */
    int doc_len;         /* tokens per document, BOS included */
    double trigger_prob; /* chance of a trigger where one may go */
    int64_t n_docs;
    uint64_t seed;
} BbConfig;

int bb_check(const BbConfig *c, char *err);
/* writes n_docs * doc_len tokens; the same config gives the same stream */
void bb_generate(const BbConfig *c, int *out);

#endif
