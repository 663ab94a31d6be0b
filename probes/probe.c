#include "probe.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/binfile.h"
#include "../common/util.h"
#include "../data/loader.h"
#include "attnmaps.h"
#include "interventions.h"

/* ---- config and schedule -------------------------------------------------------------------- */

int probe_config_check(const char *where, const ProbeConfig *c, int seq_len, char *err) {
    if (probe_set_check(where, c->n, c->len, c->shift, err)) return -1;
    if (c->len > seq_len)
        return st_errorf(err, "%s: probe_len: expected at most seq_len %d, found %d", where, seq_len, c->len);
    return 0;
}

int probe_is_due(long step, long total_steps, const ProbeConfig *c) {
    if (step == 0 || step == total_steps) return 1;
    if (c->every > 0 && step % c->every == 0) return 1;
    if (c->schedule == PROBE_SCHEDULE_LOG && total_steps >= 10) {
        double span = log(total_steps / 10.0); /* log-spaced from step 1 to step total/10 */
        for (int k = 0; k < 10; k++)
            if (step == lround(exp(span * k / 9.0))) return 1;
    }
    return 0;
}

/* ---- the probe set of a run ----------------------------------------------------------------- */

/* the first n validation windows of the loader (opened with probe_len tokens, no BOS) */
int probe_windows_check(const Loader *ld, int n, char *err) {
    if (ld->n_val_windows < n)
        return st_errorf(err, "validation split: expected at least probe_n = %d windows of %d tokens, found %d", n,
                         ld->T, ld->n_val_windows);
    return 0;
}

static int probe_set_build(ProbeSet *ps, const Loader *ld, int n, int shift, uint64_t seed, char *err) {
    int T = ld->T;
    if (probe_windows_check(ld, n, err)) return -1;
    int *inputs = st_malloc(sizeof(int) * (size_t)n * T), *targets = st_malloc(sizeof(int) * (size_t)n * T);
    uint8_t *classes = st_malloc((size_t)n * T);
    loader_val_batch(ld, 0, inputs, targets, classes, n);
    int rc = probe_set_from_windows(ps, inputs, targets, classes, n, T, ld->vocab_size, ld->bos_id, shift, seed, err);
    free(inputs);
    free(targets);
    free(classes);
    return rc;
}

int probe_set_open(ProbeSet *ps, const char *path, const Loader *ld, int n, int T, int shift, uint64_t seed,
                   char *err) {
    if (access(path, F_OK) != 0) {
        if (!ld) return st_errorf(err, "%s: no probe set, and no data to build one from", path);
        if (ld->T != T)
            return st_errorf(err, "%s: probe windows: expected %d tokens (probe_len), the loader gives %d", path, T,
                             ld->T);
        if (probe_set_build(ps, ld, n, shift, seed, err)) return -1;
        if (probe_set_save(ps, path, err) == 0) return 0;
        probe_set_free(ps);
        return -1;
    }
    if (probe_set_load(ps, path, err)) return -1;
    const struct {
        const char *key;
        int expected, found;
    } keys[3] = {{"probe_n", n, ps->n}, {"probe_len", T, ps->T}, {"probe_shift", shift, ps->shift}};
    for (int i = 0; i < 3; i++)
        if (keys[i].expected != keys[i].found) {
            st_errorf(err, "%s: %s: expected %d (this run's config), found %d (a run keeps its probe set)", path,
                      keys[i].key, keys[i].expected, keys[i].found);
            probe_set_free(ps);
            return -1;
        }
    return 0;
}

/* ---- the prober ----------------------------------------------------------------------------- */

static float *floats(size_t n) { return st_calloc(n, sizeof(float)); }

static void capture_alloc(MoeCapture *cap, const ProbeDims *d) {
    size_t NT = (size_t)d->N * d->T, L = (size_t)d->L;
    moe_capture_init(cap);
    cap->attn = floats(L * d->N * d->H * d->T * d->T);
    cap->resid = floats((2 * L + 1) * NT * d->C);
    cap->attn_out = floats(L * NT * d->C);
    cap->moe_out = floats(L * NT * d->C);
    cap->q = floats(L * NT * d->H * d->D);
    cap->k = floats(L * NT * d->KV * d->D);
    cap->v = floats(L * NT * d->KV * d->D);
    cap->router_probs = floats(L * NT * d->E);
    cap->router_choice = st_calloc(L * NT * d->K, sizeof(int)); /* a dense model leaves it 0: expert 0 */
    cap->moe_hidden = floats(2 * NT * d->K * d->F);
}

static void capture_free(MoeCapture *cap) {
    free(cap->attn), free(cap->resid), free(cap->attn_out), free(cap->moe_out);
    free(cap->q), free(cap->k), free(cap->v);
    free(cap->router_probs), free(cap->router_choice), free(cap->moe_hidden);
    moe_capture_init(cap);
}

int prober_open(Prober *pr, const char *run_dir, const Loader *windows, const ProbeConfig *c, const MoeConfig *mc,
                int probe_bos, uint64_t seed, char *err) {
    memset(pr, 0, sizeof *pr);
    pr->cfg = *c;
    pr->probe_bos = probe_bos;
    snprintf(pr->run_dir, sizeof pr->run_dir, "%s", run_dir);
    if (probe_config_check("probes", c, mc->seq_len, err)) return -1;
    char path[4200];
    snprintf(path, sizeof path, "%s/probe_set.bin", run_dir);
    if (probe_set_open(&pr->set, path, windows, c->n, c->len, c->shift, seed, err)) return -1;
    if (pr->set.vocab != mc->vocab_size) {
        st_errorf(err, "%s: vocab: expected the model's vocab_size %d, found %d", path, mc->vocab_size, pr->set.vocab);
        probe_set_free(&pr->set);
        return -1;
    }
    pr->dims = (ProbeDims){.L = mc->n_layer, .N = c->n, .T = c->len, .C = mc->d_model, .H = mc->n_head,
                           .KV = mc->n_kv_head, .D = mc->head_dim, .E = mc->n_expert, .K = mc->top_k, .F = mc->d_ff,
                           .V = mc->vocab_size};
    capture_alloc(&pr->cap, &pr->dims);
    int N = c->n, T = c->len;
    pr->bos_classes = st_calloc((size_t)N * T, 1);
    for (int n = 0; n < N; n++)
        memcpy(pr->bos_classes + (size_t)n * T + 1, pr->set.classes + (size_t)n * T, (size_t)T - 1);
    pr->norm_gains = floats((size_t)(2 * mc->n_layer + 1) * mc->d_model);
    if (mc->attn_sink_logit) pr->sink_logit = floats((size_t)mc->n_layer * mc->n_head);
    pr->opened_at = st_now_seconds();
    return 0;
}

void prober_close(Prober *pr) {
    probe_set_free(&pr->set);
    capture_free(&pr->cap);
    free(pr->norm_gains);
    free(pr->sink_logit);
    free(pr->bos_classes);
    sj_free(&pr->json);
    memset(pr, 0, sizeof *pr);
}

/* the gain of the RMSNorm that reads residual point p: block l's attention norm reads point 2l, its
 * MoE norm point 2l+1, the final norm point 2L */
static void copy_norm_gains(float *out, const Moe *m) {
    int L = m->cfg.n_layer, C = m->cfg.d_model;
    char name[40];
    for (int p = 0; p <= 2 * L; p++) {
        if (p == 2 * L) snprintf(name, sizeof name, "final_norm");
        else snprintf(name, sizeof name, "blocks.%d.%s", p / 2, p % 2 ? "moe_norm" : "attn_norm");
        const MoeTensor *t = moe_find(m, name);
        for (int c = 0; c < C; c++) out[(size_t)p * C + c] = t ? m->params[t->offset + c] : 1.0f;
    }
}

/* the learned sink logits blocks.<l>.attn.sink [H], layer after layer */
static void copy_sink_logits(float *out, const Moe *m) {
    int H = m->cfg.n_head;
    char name[40];
    for (int l = 0; l < m->cfg.n_layer; l++) {
        snprintf(name, sizeof name, "blocks.%d.attn.sink", l);
        const MoeTensor *t = moe_find(m, name);
        for (int h = 0; h < H; h++) out[(size_t)l * H + h] = t ? m->params[t->offset + h] : NAN;
    }
}

void prober_measure(Prober *pr, Moe *m, int v, const MoeCapture *iv, ProbeRecord *r) {
    MoeCapture cap = pr->cap;
    if (iv) { /* the interventions of iv, the capture arrays of the prober */
        cap = *iv;
        cap.attn = pr->cap.attn, cap.resid = pr->cap.resid, cap.attn_out = pr->cap.attn_out;
        cap.moe_out = pr->cap.moe_out, cap.q = pr->cap.q, cap.k = pr->cap.k, cap.v = pr->cap.v;
        cap.router_probs = pr->cap.router_probs, cap.router_choice = pr->cap.router_choice;
        cap.moe_hidden = pr->cap.moe_hidden;
    }
    const ProbeSet *ps = &pr->set;
    /* the bos variant's targets are the natural tokens: BOS, w0, w1, ... predicts w0, w1, w2, ... */
    const int *targets = v == PV_NATURAL ? ps->targets : v == PV_BOS ? probe_set_tokens(ps, PV_NATURAL) : NULL;
    moe_forward(m, probe_set_tokens(ps, v), targets, pr->dims.N, pr->dims.T, &cap);
    copy_norm_gains(pr->norm_gains, m);
    if (pr->sink_logit) copy_sink_logits(pr->sink_logit, m);
    /* query classes: the natural windows', shifted one place behind BOS in the bos variant */
    const uint8_t *classes = v == PV_NATURAL ? ps->classes : v == PV_BOS ? pr->bos_classes : NULL;
    record_compute(r, &cap, &pr->dims, pr->norm_gains, probe_set_tokens(ps, v), classes);
    r->variant = probe_variant_name(v);
    r->probe_loss = targets ? m->loss.ce : NAN;
}

static int run_path(char *out, size_t cap, const Prober *pr, const char *name, char *err) {
    if (snprintf(out, cap, "%s/%s", pr->run_dir, name) < (int)cap) return 0;
    return st_errorf(err, "%s: run directory path too long", pr->run_dir);
}

int prober_write_record(Prober *pr, ProbeRecord *r, FILE *f, const char *path, char *err) {
    r->probe_seconds = pr->seconds;
    record_to_json(r, &pr->json);
    /* the learned sink logits [L*H] of a model with attn_sink_logit: the one key outside record_fields,
     * since only those models have it */
    if (pr->sink_logit) sj_floats(&pr->json, "sink_logit", pr->sink_logit, pr->dims.L * pr->dims.H);
    return sj_write_line(&pr->json, f, path, err);
}

/* attention.bin: adds the attention probabilities [L][H][T][T] of window 0 of the last forward */
static int append_attention(Prober *pr, long step, char *err) {
    const ProbeDims *d = &pr->dims;
    size_t TT = (size_t)d->T * d->T;
    float *maps = st_malloc(sizeof(float) * (size_t)d->L * d->H * TT);
    for (int l = 0; l < d->L; l++) /* sequence 0 of the capture [L][N][H][T][T] */
        memcpy(maps + (size_t)l * d->H * TT, pr->cap.attn + (size_t)l * d->N * d->H * TT, sizeof(float) * d->H * TT);
    char path[4200];
    int rc = run_path(path, sizeof path, pr, "attention.bin", err) ||
             attnmaps_append(path, step, maps, d->L, d->H, d->T, err);
    free(maps);
    return rc ? -1 : 0;
}

/* Measures the natural variant (its line goes to run_dir/name) and, for a run trained with BOS, the
 * bos variant; then with `all` every other variant and, when `interventions` names a file, the
 * interventions into it (their forwards of the variants give the variants' lines). `attention`: also
 * the maps of this step into attention.bin. Attention maps and interventions come from the variant the
 * run trained on. */
static int probe_variants(Prober *pr, Moe *m, long step, long long tokens, double val_loss, const char *name,
                          int all, const char *interventions, int attention, char *err) {
    char path[4200];
    if (run_path(path, sizeof path, pr, name, err)) return -1;
    FILE *f = fopen(path, "a");
    if (!f) return st_errorf(err, "%s: cannot open for appending", path);
    ProbeRecord r;
    record_alloc(&r, pr->dims.L, pr->dims.H);
    int home = pr->probe_bos ? PV_BOS : PV_NATURAL;
    int rc = 0;
    for (int v = PV_NATURAL; v <= home && !rc; v++) { /* natural, then bos when it is home */
        prober_measure(pr, m, v, NULL, &r);
        r.step = step, r.tokens = tokens, r.val_loss = v == PV_NATURAL ? val_loss : NAN;
        rc = prober_write_record(pr, &r, f, path, err);
    }
    if (!rc && attention) rc = append_attention(pr, step, err);
    if (!rc && interventions) {
        rc = interventions_run(pr, m, home, &r, tokens, f, path, interventions, err);
    } else {
        for (int v = home + 1; v < PV_COUNT && all && !rc; v++) {
            if (!probe_set_has(&pr->set, v)) continue;
            prober_measure(pr, m, v, NULL, &r);
            r.step = step, r.tokens = tokens, r.val_loss = NAN;
            rc = prober_write_record(pr, &r, f, path, err);
        }
    }
    record_free(&r);
    if (fclose(f) != 0 && !rc) rc = st_errorf(err, "%s: write failed: %s", path, strerror(errno));
    return rc;
}

int prober_step(Prober *pr, Moe *m, long step, long total_steps, long long tokens, double val_loss, char *err) {
    double t0 = st_now_seconds();
    int final = step >= total_steps;
    /* every step: natural, and bos when the run trains with it, and the attention maps of the last of
     * those; the final step: everything */
    int rc = probe_variants(pr, m, step, tokens, val_loss, "probes.jsonl", final,
                            final ? "interventions.jsonl" : NULL, 1, err);
    double spent = st_now_seconds() - t0;
    pr->seconds += spent;
    if (final) pr->final_seconds += spent;
    char probes[4200], summary[4200];
    if (rc || run_path(probes, sizeof probes, pr, "probes.jsonl", err) ||
        run_path(summary, sizeof summary, pr, "summary.json", err))
        return -1;
    ProbeCost cost = {pr->seconds, pr->final_seconds, st_now_seconds() - pr->opened_at};
    if (summary_write(probes, "natural", summary, total_steps, &cost, err)) return -1;
    if (!pr->probe_bos) return 0;
    return run_path(summary, sizeof summary, pr, "summary_bos.json", err) ||
           summary_write(probes, "bos", summary, total_steps, &cost, err);
}

int prober_full(Prober *pr, Moe *m, long step, long long tokens, double val_loss, const char *out_name,
                const char *interventions_name, char *err) {
    double t0 = st_now_seconds();
    int rc = probe_variants(pr, m, step, tokens, val_loss, out_name, 1, interventions_name, 0, err);
    pr->seconds += st_now_seconds() - t0;
    return rc;
}
