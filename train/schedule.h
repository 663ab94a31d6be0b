/* train/schedule.h: the learning rate of each step. Every schedule starts with a linear warmup from
 * lr / warmup_steps to lr over warmup_steps steps, then:
 *   cosine   - lr * (r + (1 - r) * (1 + cos(pi * p)) / 2), p going 0 -> 1 from the end of warmup to
 *              the last step, r = min_lr_ratio: the last step runs at exactly r * lr;
 *   wsd      - warmup, stable at lr, then a linear decay over the last decay_frac of the steps ending
 *              at r * lr on the last step;
 *   constant - lr. */
#ifndef SINKTRACE_SCHEDULE_H
#define SINKTRACE_SCHEDULE_H

#include "config.h"

/* the learning rate of step `step` (0-based: step 0 is the first optimizer step) */
float lr_at(const TrainConfig *c, int step);

#endif
