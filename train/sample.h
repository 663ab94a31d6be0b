/* train/sample.h: drawing the next token from a model's logits (bin/sample). */
#ifndef SINKTRACE_SAMPLE_H
#define SINKTRACE_SAMPLE_H

#include "../common/util.h"

/* Picks a token from logits[V]: temperature 0 = the most likely one (ties to the lower id); otherwise
 * softmax(logits / temperature) restricted to the top_k most likely tokens (top_k 0 = all V). */
int sample_next(const float *logits, int V, float temperature, int top_k, StRng *rng);

#endif
