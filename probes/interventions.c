#include "interventions.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/util.h"

#define ROPE_OFFSET 1000

typedef struct {
    Prober *pr;
    Moe *m;
    long step;
    FILE *f;
    const char *path;
    int base_variant;        /* the variant the run trained on: natural, or bos for a run trained with BOS */
    const ProbeRecord *base; /* that variant without intervention */
    ProbeRecord after;
    FILE *variants_f;        /* where each variant's full record goes too (a probes.jsonl) */
    const char *variants_path;
    long long tokens;
    float *base_attn;  /* attention of the base forward [L][N][H][T][T] */
    float *base_state; /* residual after block 1 (point 4) of the base forward [N][T][C] */
    float *attn_mean;  /* [L][C] mean attention output over sequences and positions >= 1 */
    float *moe_mean;   /* [L][C] the same for the MoE output */
    StRng rng;
    char *err;
} Session;

/* mean over sequences and positions i >= 1 of x [L][N][T][C], into out [L][C] */
static void mean_output(float *out, const float *x, const ProbeDims *d) {
    size_t NTC = (size_t)d->N * d->T * d->C;
    for (int l = 0; l < d->L; l++)
        for (int c = 0; c < d->C; c++) {
            double s = 0;
            for (int n = 0; n < d->N; n++)
                for (int i = 1; i < d->T; i++) s += x[l * NTC + ((size_t)n * d->T + i) * d->C + c];
            out[(size_t)l * d->C + c] = (float)(s / ((double)d->N * (d->T - 1)));
        }
}

static double point_or_nan(const double *v, int P, int p) { return p < P ? v[p] : NAN; }

static double max_abs_diff(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - b[i]));
    return m;
}

static void pair(StJson *j, const char *name, double before, double after) {
    char key[64];
    snprintf(key, sizeof key, "%s_before", name);
    sj_num(j, key, before);
    snprintf(key, sizeof key, "%s_after", name);
    sj_num(j, key, after);
}

static void pair_array(StJson *j, const char *name, const double *before, const double *after, int n) {
    char key[64];
    snprintf(key, sizeof key, "%s_before", name);
    sj_doubles(j, key, before, n);
    snprintf(key, sizeof key, "%s_after", name);
    sj_doubles(j, key, after, n);
}

/* mean over heads of attention on key `key` from queries > key, per layer, of the last capture */
static void attn_on_key_layer(double *out, const Prober *pr, int key) {
    const ProbeDims *d = &pr->dims;
    double *a = st_malloc(sizeof(double) * (size_t)d->L * d->H);
    attn_on_key(a, pr->cap.attn, d, key, key + 1);
    for (int l = 0; l < d->L; l++) {
        out[l] = 0;
        for (int h = 0; h < d->H; h++) out[l] += a[l * d->H + h] / d->H;
    }
    free(a);
}

/* one intervention: forward of `variant` with iv, then its line (layer, head: -1 when not a head) */
static int run_one(Session *s, const char *name, int variant, const MoeCapture *iv, int position, int layer,
                   int head) {
    Prober *pr = s->pr;
    const ProbeDims *d = &pr->dims;
    int L = d->L, P = 2 * L + 1;
    prober_measure(pr, s->m, variant, iv, &s->after);
    const ProbeRecord *b = s->base, *a = &s->after;
    StJson *j = &pr->json;
    sj_begin(j);
    sj_int(j, "step", s->step);
    sj_str(j, "intervention", name);
    sj_str(j, "variant", probe_variant_name(variant));
    sj_str(j, "base_variant", probe_variant_name(s->base_variant));
    sj_int(j, "position", position);
    sj_int(j, "layer", layer);
    sj_int(j, "head", head);
    pair(j, "a_p0_2plus", b->a_p0_2plus, a->a_p0_2plus);
    pair(j, "sink_rate_30", b->sink_rate_30, a->sink_rate_30);
    pair(j, "sink_rate_2plus_30", b->sink_rate_2plus_30, a->sink_rate_2plus_30);
    pair(j, "rho_max", b->rho_max, a->rho_max);
    pair(j, "rho_2", point_or_nan(b->rho, P, 4), point_or_nan(a->rho, P, 4));
    pair(j, "kappa_p0_2", point_or_nan(b->kappa_p0, P, 4), point_or_nan(a->kappa_p0, P, 4));
    pair(j, "C2", b->C2, a->C2);
    pair(j, "d_star", b->d_star, a->d_star);
    pair(j, "probe_loss", b->probe_loss, a->probe_loss);
    pair_array(j, "a_p0_layer", b->a_p0_layer, a->a_p0_layer, L);
    pair_array(j, "rho", b->rho, a->rho, P);
    pair_array(j, "kappa_p0", b->kappa_p0, a->kappa_p0, P);
    size_t n_attn = (size_t)L * d->N * d->H * d->T * d->T;
    sj_num(j, "max_attn_diff", max_abs_diff(pr->cap.attn, s->base_attn, n_attn));
    /* bos and shifted move the window's first token to position 1 and `shift`: does the sink follow
     * it, or stay at the new position 0? (Against a bos base, bos is the base itself.) */
    int old_p0 = variant == PV_BOS && s->base_variant != PV_BOS ? 1 : variant == PV_SHIFTED ? pr->set.shift : -1;
    if (old_p0 > 0) {
        double *moved = st_malloc(sizeof(double) * (size_t)L);
        attn_on_key_layer(moved, pr, old_p0);
        sj_doubles(j, "a_old_p0_layer_after", moved, L);
        free(moved);
    }
    return sj_write_line(j, s->f, s->path, s->err);
}

/* every other variant against the base; a BOS-trained run's base is bos, and natural is then one of
 * the variants (BOS removed) */
static int run_variants(Session *s) {
    Prober *pr = s->pr;
    for (int v = PV_NATURAL; v < PV_COUNT; v++) {
        if (v == s->base_variant || !probe_set_has(&pr->set, v)) continue;
        if (run_one(s, probe_variant_name(v), v, NULL, -1, -1, -1)) return -1;
        if (v == PV_NATURAL) continue; /* the natural line is the prober's own */
        /* the same forward is this step's line of the variant in probes.jsonl */
        s->after.step = s->step, s->after.tokens = s->tokens, s->after.val_loss = NAN;
        if (prober_write_record(pr, &s->after, s->variants_f, s->variants_path, s->err)) return -1;
    }
    return 0;
}

/* the RoPE offset only where the model has RoPE (a model with learned positions has none to shift) */
static int run_rope_and_window(Session *s) {
    MoeCapture iv;
    moe_capture_init(&iv);
    iv.pos_offset = ROPE_OFFSET;
    if (!s->m->cfg.learned_pos && run_one(s, "rope_offset", s->base_variant, &iv, -1, -1, -1)) return -1;
    moe_capture_init(&iv);
    iv.window = s->pr->dims.T / 4;
    return run_one(s, "window", s->base_variant, &iv, -1, -1, -1);
}

/* zero and mean ablation of block l's attention (moe = 0) or MoE (moe = 1) output at `pos` */
static int run_output_ablation(Session *s, int moe, int l, int pos) {
    const ProbeDims *d = &s->pr->dims;
    unsigned char *mask = st_calloc((size_t)d->L * d->T, 1); /* [L][T] */
    mask[(size_t)l * d->T + pos] = 1;
    int rc = 0;
    for (int mean = 0; mean <= 1 && !rc; mean++) {
        MoeCapture iv;
        moe_capture_init(&iv);
        const float *repl = mean ? (moe ? s->moe_mean : s->attn_mean) : NULL;
        if (moe) iv.ablate_moe = mask, iv.moe_repl = repl;
        else iv.ablate_attn = mask, iv.attn_repl = repl;
        char name[32];
        snprintf(name, sizeof name, "%s_%s%d", mean ? "mean" : "zero", moe ? "moe" : "attn", l);
        rc = run_one(s, name, s->base_variant, &iv, pos, l, -1);
    }
    free(mask);
    return rc;
}

/* what replaces the residual after block 1 at a position, per sequence n */
typedef enum {
    PATCH_OTHER_SEQ, /* the same state of sequence n+1 */
    PATCH_REDIRECT,  /* a random direction with the norm of the original */
    PATCH_RESCALE,   /* the original rescaled to the median norm of positions >= 1 of its sequence */
    PATCH_COUNT
} PatchKind;

static int run_state_patch(Session *s, PatchKind kind, int pos) {
    const ProbeDims *d = &s->pr->dims;
    int N = d->N, T = d->T, C = d->C;
    float *vec = st_malloc(sizeof(float) * (size_t)N * C);
    for (int n = 0; n < N; n++) {
        const float *own = s->base_state + ((size_t)n * T + pos) * C;
        float *out = vec + (size_t)n * C;
        double own_norm = 0;
        for (int c = 0; c < C; c++) own_norm += (double)own[c] * own[c];
        own_norm = sqrt(own_norm);
        if (kind == PATCH_OTHER_SEQ) {
            memcpy(out, s->base_state + ((size_t)((n + 1) % N) * T + pos) * C, sizeof(float) * C);
        } else if (kind == PATCH_REDIRECT) {
            double r2 = 0;
            for (int c = 0; c < C; c++) out[c] = (float)st_rng_normal(&s->rng), r2 += (double)out[c] * out[c];
            for (int c = 0; c < C; c++) out[c] = (float)(out[c] * own_norm / sqrt(r2));
        } else {
            double med = median_later_norm(s->base_state + (size_t)n * T * C, T, C);
            for (int c = 0; c < C; c++) out[c] = (float)(own[c] * med / own_norm);
        }
    }
    MoeCapture iv;
    moe_capture_init(&iv);
    iv.patch_point = 4, iv.patch_pos = pos, iv.patch_vec = vec;
    static const char *const names[PATCH_COUNT] = {"patch_other_seq", "redirect", "rescale_median"};
    int rc = run_one(s, names[kind], s->base_variant, &iv, pos, 1, -1);
    free(vec);
    return rc;
}

static int run_head_ablations(Session *s) {
    const ProbeDims *d = &s->pr->dims;
    unsigned char *mask = st_calloc((size_t)d->L * d->H, 1); /* [L][H] */
    int rc = 0;
    for (int l = 0; l < d->L && l < 2 && !rc; l++)
        for (int h = 0; h < d->H && !rc; h++) {
            MoeCapture iv;
            moe_capture_init(&iv);
            mask[l * d->H + h] = 1;
            iv.zero_head = mask;
            rc = run_one(s, "zero_head", s->base_variant, &iv, -1, l, h);
            mask[l * d->H + h] = 0;
        }
    free(mask);
    return rc;
}

/* what the ablations take from the base forward still held in the prober's capture */
static void session_baseline(Session *s) {
    Prober *pr = s->pr;
    const ProbeDims *d = &pr->dims;
    size_t NTC = (size_t)d->N * d->T * d->C, n_attn = (size_t)d->L * d->N * d->H * d->T * d->T;
    record_alloc(&s->after, d->L, d->H);
    s->base_attn = st_malloc(sizeof(float) * n_attn);
    memcpy(s->base_attn, pr->cap.attn, sizeof(float) * n_attn);
    s->base_state = st_malloc(sizeof(float) * NTC);
    int point = d->L >= 2 ? 4 : 2 * d->L; /* after block 1 (the last block of a 1-block model) */
    memcpy(s->base_state, pr->cap.resid + (size_t)point * NTC, sizeof(float) * NTC);
    s->attn_mean = st_malloc(sizeof(float) * (size_t)d->L * d->C);
    s->moe_mean = st_malloc(sizeof(float) * (size_t)d->L * d->C);
    mean_output(s->attn_mean, pr->cap.attn_out, d);
    mean_output(s->moe_mean, pr->cap.moe_out, d);
    st_rng_seed(&s->rng, pr->set.seed ^ 0x5eedULL);
}

static void session_free(Session *s) {
    record_free(&s->after);
    free(s->base_attn), free(s->base_state), free(s->attn_mean), free(s->moe_mean);
}

int interventions_run(Prober *pr, Moe *m, int base_variant, const ProbeRecord *base, long long tokens,
                      FILE *variants_f, const char *variants_path, const char *name, char *err) {
    char path[4200];
    if (snprintf(path, sizeof path, "%s/%s", pr->run_dir, name) >= (int)sizeof path)
        return st_errorf(err, "%s: run directory path too long", pr->run_dir);
    FILE *f = fopen(path, "a");
    if (!f) return st_errorf(err, "%s: cannot open for appending", path);
    Session s = {.pr = pr, .m = m, .base_variant = base_variant, .step = base->step, .f = f, .path = path, .base = base, .variants_f = variants_f,
                 .variants_path = variants_path, .tokens = tokens, .err = err};
    session_baseline(&s);
    int T = pr->dims.T, L = pr->dims.L, positions[2] = {0, T / 2}; /* P0 and its control */
    int rc = run_variants(&s);
    if (!rc) rc = run_rope_and_window(&s);
    for (int i = 0; i < 2 && !rc; i++) {
        rc = run_output_ablation(&s, 0, 0, positions[i]);
        for (int l = 0; l < 2 && l < L && !rc; l++) rc = run_output_ablation(&s, 1, l, positions[i]);
        for (int kind = 0; kind < PATCH_COUNT && !rc && L >= 2; kind++) rc = run_state_patch(&s, kind, positions[i]);
    }
    if (!rc) rc = run_head_ablations(&s);
    session_free(&s);
    if (fclose(f) != 0 && !rc) rc = st_errorf(err, "%s: write failed: %s", path, strerror(errno));
    return rc;
}
