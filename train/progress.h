/* train/progress.h: the console progress line. On a terminal one line is redrawn in place every step;
 * otherwise (CI, pipes) a plain line is printed every log_every steps. */
#ifndef SINKTRACE_PROGRESS_H
#define SINKTRACE_PROGRESS_H

#include <stdint.h>
#include <stdio.h>

typedef struct {
    FILE *out;
    int tty;             /* redraw in place */
    double start_time;   /* of this process (a resume starts again), for the ETA */
    int64_t start_step;
    int drawn;           /* a partial line is on screen */
    double inv_rate_sum; /* sum over this process's steps of 1 / (tokens per second) */
    int64_t n_rates;
} Progress;

typedef struct {
    int64_t step, total;
    float loss, lr;
    double val_loss; /* NaN = none yet */
    double tok_per_s; /* of this step; the line shows the session's average */
} ProgressInfo;

void progress_init(Progress *p, FILE *out, int64_t start_step);
/* shows the line: redrawn on a terminal, printed when `due` otherwise */
void progress_show(Progress *p, const ProgressInfo *info, int due);
/* ends a redrawn line, so a message can be printed below it */
void progress_break(Progress *p);

#endif
