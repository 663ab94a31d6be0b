#include "progress.h"

#include <math.h>
#include <unistd.h>

#include "../common/util.h"

void progress_init(Progress *p, FILE *out, int64_t start_step) {
    p->out = out;
    p->tty = isatty(fileno(out));
    p->start_time = st_now_seconds();
    p->start_step = start_step;
    p->drawn = 0;
    p->inv_rate_sum = 0;
    p->n_rates = 0;
}

/* "1h02m", "4m05s", "12s" */
static void format_duration(char *buf, size_t size, double s) {
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, size, "%ldh%02ldm", t / 3600, t / 60 % 60);
    else if (t >= 60) snprintf(buf, size, "%ldm%02lds", t / 60, t % 60);
    else snprintf(buf, size, "%lds", t);
}

void progress_show(Progress *p, const ProgressInfo *info, int due) {
    /* every step has the same token count, so the harmonic mean of the step rates is the average rate
     * (tokens / seconds) over the session: steady where single steps jitter */
    p->inv_rate_sum += 1.0 / info->tok_per_s;
    p->n_rates++;
    if (!p->tty && !due) return;
    /* ETA from this process's average time per step */
    double elapsed = st_now_seconds() - p->start_time;
    int64_t done = info->step - p->start_step;
    char eta[32] = "?", val[32] = "-";
    if (done > 0) format_duration(eta, sizeof eta, elapsed / done * (double)(info->total - info->step));
    if (!isnan(info->val_loss)) snprintf(val, sizeof val, "%.4f", info->val_loss);
    fprintf(p->out, "%sstep %lld/%lld | loss %.4f | val %s | lr %.2e | %.0f tok/s | ETA %s%s", p->tty ? "\r\033[K" : "",
            (long long)info->step, (long long)info->total, info->loss, val, info->lr, (double)p->n_rates / p->inv_rate_sum, eta,
            p->tty ? "" : "\n");
    fflush(p->out);
    p->drawn = p->tty;
}

void progress_break(Progress *p) {
    if (p->drawn) fputc('\n', p->out);
    p->drawn = 0;
}
