#include "schedule.h"

#include <math.h>

/* the fraction of lr after warmup, for p in [0, 1] (0 = end of warmup or of the stable phase) */
static double cosine_factor(double p, double r) { return r + (1.0 - r) * 0.5 * (1.0 + cos(M_PI * p)); }
static double linear_factor(double p, double r) { return 1.0 - (1.0 - r) * p; }

float lr_at(const TrainConfig *c, int step) {
    double lr = c->lr, r = c->min_lr_ratio;
    if (step < c->warmup_steps) return (float)(lr * (step + 1) / c->warmup_steps);
    int last = c->steps - 1;
    switch (c->schedule) {
    case SCHEDULE_COSINE: {
        int span = last - c->warmup_steps; /* steps from the first after warmup to the last */
        return (float)(lr * (span > 0 ? cosine_factor((double)(step - c->warmup_steps) / span, r) : 1.0));
    }
    case SCHEDULE_WSD: {
        /* the decay phase holds the last n_decay steps; its last step reaches r exactly */
        int n_decay = (int)lround(c->decay_frac * c->steps);
        int first_decay = c->steps - n_decay;
        if (n_decay == 0 || step < first_decay) return (float)lr;
        return (float)(lr * linear_factor((double)(step - first_decay + 1) / n_decay, r));
    }
    default:
        return (float)lr;
    }
}
