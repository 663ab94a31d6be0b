#include "record.h"

#include <cJSON.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "../common/binfile.h"
#include "../common/util.h"
#include "../data/stream.h"

/* ---- one record ----------------------------------------------------------------------------- */

#define R(field) offsetof(ProbeRecord, field)
#define ONE(kind, key, field) {key, kind, RS_ONE, R(field)}
#define NUM(key) ONE(RF_NUM, #key, key)
#define NUMS(key, shape) {#key, RF_NUMS, shape, R(key)}

const RecordField record_fields[] = {
    ONE(RF_LONG, "step", step), ONE(RF_TEXT, "variant", variant), ONE(RF_LLONG, "tokens", tokens),
    NUM(val_loss), NUM(probe_loss), ONE(RF_INT, "T", T), ONE(RF_INT, "n_seq", N), ONE(RF_INT, "n_layer", L),
    ONE(RF_INT, "n_head", H), NUM(chance),
    /* attention on key 0 and the controls */
    NUMS(a_p0, RS_HEADS), NUMS(a_p0_gu, RS_HEADS), NUMS(a_p0_late, RS_HEADS), NUMS(a_k1, RS_HEADS),
    NUMS(a_mid, RS_HEADS),
    /* where attention parks */
    NUMS(a_prev, RS_HEADS), NUMS(a_self, RS_HEADS), NUMS(a_p0_trigger, RS_HEADS), NUMS(a_p0_ordinary, RS_HEADS),
    NUMS(a_prev_trigger, RS_HEADS), NUMS(a_prev_ordinary, RS_HEADS), NUMS(v0_head, RS_HEADS),
    NUMS(a_induction, RS_HEADS), {"park_id", RF_INTS, RS_PARK, R(park_id)}, NUMS(park_mass, RS_PARK),
    NUMS(park_lift, RS_PARK), NUMS(park_vnorm, RS_PARK),
    /* per layer and sink rates */
    NUMS(a_p0_layer, RS_LAYERS), NUMS(lift_layer, RS_LAYERS), NUM(a_p0_2plus), NUM(sink_rate_20), NUM(sink_rate_30),
    NUM(sink_rate_50), NUM(sink_rate_2plus_20), NUM(sink_rate_2plus_30), NUM(sink_rate_2plus_50),
    NUM(sink_rate_k1_30), NUM(sink_rate_mid_30), NUMS(sink_rate_layer_30, RS_LAYERS),
    /* residual stream */
    NUMS(rho, RS_POINTS), NUM(rho_max), NUMS(kappa_p0, RS_POINTS), NUMS(kappa_p1, RS_POINTS),
    NUMS(kappa_mid, RS_POINTS), NUMS(kappa_p0_norm, RS_POINTS), NUMS(kappa_p1_norm, RS_POINTS),
    NUMS(kappa_mid_norm, RS_POINTS), NUMS(massive_ratio, RS_POINTS),
    {"massive_channel", RF_INTS, RS_POINTS, R(massive_channel)},
    /* per block */
    NUMS(eta, RS_LAYERS), NUMS(mu, RS_LAYERS), NUMS(gain, RS_LAYERS), NUMS(qk_cos_p0, RS_LAYERS),
    NUMS(qk_cos_other, RS_LAYERS), NUMS(k0_ratio, RS_LAYERS), NUMS(v0_ratio, RS_LAYERS),
    NUMS(p0_route_consistency, RS_LAYERS), NUMS(router_entropy_p0, RS_LAYERS),
    NUMS(router_entropy_median, RS_LAYERS), NUMS(p0_units, RS_PAIR),
    /* derived */
    NUMS(delta, RS_SUBLAYERS), NUMS(delta_block, RS_LAYERS), NUM(d_star), NUM(C2), NUM(K2), NUM(probe_seconds)};
const int record_n_fields = (int)(sizeof record_fields / sizeof record_fields[0]);

int record_shape_length(RecordShape s, int L, int H) {
    switch (s) {
    case RS_ONE: return 1;
    case RS_HEADS: return L * H;
    case RS_PARK: return L * H * PARK_TOP;
    case RS_POINTS: return 2 * L + 1;
    case RS_LAYERS: return L;
    case RS_SUBLAYERS: return 2 * L;
    case RS_PAIR: return 2;
    }
    return 0;
}

/* the array behind field f of r */
static void *field_of(const ProbeRecord *r, const RecordField *f) { return (char *)r + f->offset; }

/* the values of the table's arrays of one kind (RF_NUMS or RF_INTS) for L blocks of H heads */
static size_t array_values(RecordKind kind, int L, int H) {
    size_t n = 0;
    for (int i = 0; i < record_n_fields; i++)
        if (record_fields[i].kind == kind) n += (size_t)record_shape_length(record_fields[i].shape, L, H);
    return n;
}

void record_alloc(ProbeRecord *r, int L, int H) {
    memset(r, 0, sizeof *r);
    r->L = L;
    r->H = H;
    r->mem = st_calloc(array_values(RF_NUMS, L, H), sizeof(double));
    r->imem = st_calloc(array_values(RF_INTS, L, H), sizeof(int));
    double *m = r->mem;
    int *im = r->imem;
    for (int i = 0; i < record_n_fields; i++) {
        const RecordField *f = &record_fields[i];
        size_t n = (size_t)record_shape_length(f->shape, L, H);
        if (f->kind == RF_NUMS) *(double **)field_of(r, f) = m, m += n;
        if (f->kind == RF_INTS) *(int **)field_of(r, f) = im, im += n;
    }
}

void record_free(ProbeRecord *r) {
    free(r->mem);
    free(r->imem);
    memset(r, 0, sizeof *r);
}

static void attention_metrics(ProbeRecord *r, const float *attn, const ProbeDims *d) {
    int L = d->L, H = d->H, T = d->T;
    attn_on_key(r->a_p0, attn, d, 0, 1);
    attn_on_key(r->a_p0_gu, attn, d, 0, 0);
    attn_on_key(r->a_p0_late, attn, d, 0, T / 2);
    attn_on_key(r->a_k1, attn, d, 1, 2);
    attn_on_key(r->a_mid, attn, d, T / 2, T / 2 + 1);
    r->chance = chance(T);
    for (int l = 0; l < L; l++) {
        double s = 0;
        for (int h = 0; h < H; h++) s += r->a_p0[l * H + h];
        r->a_p0_layer[l] = s / H;
        r->lift_layer[l] = r->a_p0_layer[l] / r->chance;
        r->sink_rate_layer_30[l] = sink_rate(r->a_p0, H, l, l, 0.3);
    }
    double s = 0;
    for (int i = 2 * H; i < L * H; i++) s += r->a_p0[i];
    r->a_p0_2plus = L > 2 ? s / ((L - 2) * H) : NAN;
    r->sink_rate_20 = sink_rate(r->a_p0, H, 0, L - 1, 0.2);
    r->sink_rate_30 = sink_rate(r->a_p0, H, 0, L - 1, 0.3);
    r->sink_rate_50 = sink_rate(r->a_p0, H, 0, L - 1, 0.5);
    r->sink_rate_2plus_20 = sink_rate(r->a_p0, H, 2, L - 1, 0.2);
    r->sink_rate_2plus_30 = sink_rate(r->a_p0, H, 2, L - 1, 0.3);
    r->sink_rate_2plus_50 = sink_rate(r->a_p0, H, 2, L - 1, 0.5);
    r->sink_rate_k1_30 = sink_rate(r->a_k1, H, 0, L - 1, 0.3);
    r->sink_rate_mid_30 = sink_rate(r->a_mid, H, 0, L - 1, 0.3);
}

static void residual_metrics(ProbeRecord *r, const float *resid, const ProbeDims *d, const float *norm_gains) {
    int N = d->N, T = d->T, C = d->C, P = 2 * d->L + 1;
    for (int p = 0; p < P; p++) {
        const float *x = resid + (size_t)p * N * T * C;
        const float *g = norm_gains ? norm_gains + (size_t)p * C : NULL;
        r->rho[p] = p0_norm_ratio(x, N, T, C);
        r->kappa_p0[p] = kappa(x, N, T, C, 0, NULL);
        r->kappa_p1[p] = kappa(x, N, T, C, 1, NULL);
        r->kappa_mid[p] = kappa(x, N, T, C, T / 2, NULL);
        r->kappa_p0_norm[p] = g ? kappa(x, N, T, C, 0, g) : r->kappa_p0[p];
        r->kappa_p1_norm[p] = g ? kappa(x, N, T, C, 1, g) : r->kappa_p1[p];
        r->kappa_mid_norm[p] = g ? kappa(x, N, T, C, T / 2, g) : r->kappa_mid[p];
        r->massive_ratio[p] = massive_ratio(x, N, T, C, &r->massive_channel[p]);
    }
    r->rho_max = r->rho[0];
    for (int p = 1; p < P; p++)
        if (r->rho[p] > r->rho_max) r->rho_max = r->rho[p];
    log_norm_growth(r->delta, r->rho, P);
    for (int l = 0; l < d->L; l++) r->delta_block[l] = r->delta[2 * l] + r->delta[2 * l + 1];
    r->d_star = d_star(r->rho, P);
    r->C2 = c2_share(r->rho, P);
    r->K2 = k2_share(r->kappa_p0, P);
}

static void block_metrics(ProbeRecord *r, const MoeCapture *cap, const ProbeDims *d) {
    int N = d->N, T = d->T, C = d->C, H = d->H, KV = d->KV, D = d->D;
    size_t NTC = (size_t)N * T * C;
    for (int l = 0; l < d->L; l++) {
        r->eta[l] = p0_norm_ratio(cap->attn_out + l * NTC, N, T, C);
        r->mu[l] = p0_norm_ratio(cap->moe_out + l * NTC, N, T, C);
        /* r_{l+0.5} is point 2l+1, r_{l+1} is point 2l+2 */
        r->gain[l] = p0_gain(cap->resid + (2 * l + 1) * NTC, cap->resid + (2 * l + 2) * NTC, N, T, C);
        const float *q = cap->q + (size_t)l * N * T * H * D;
        const float *k = cap->k + (size_t)l * N * T * KV * D, *v = cap->v + (size_t)l * N * T * KV * D;
        qk_cos(q, k, d, &r->qk_cos_p0[l], &r->qk_cos_other[l]);
        r->k0_ratio[l] = head_p0_norm_ratio(k, N, T, KV, D);
        r->v0_ratio[l] = head_p0_norm_ratio(v, N, T, KV, D);
        const int *choice = cap->router_choice + (size_t)l * N * T * d->K;
        r->p0_route_consistency[l] = d->E > 1 ? p0_route_consistency(choice, d) : 1.0;
        router_entropy(d->E > 1 ? cap->router_probs + (size_t)l * N * T * d->E : NULL, d, &r->router_entropy_p0[l],
                       &r->router_entropy_median[l]);
    }
    for (int b = 0; b < 2; b++)
        r->p0_units[b] = b < d->L ? p0_units(cap->moe_hidden + (size_t)b * N * T * d->K * d->F,
                                             d->E > 1 ? cap->router_choice + (size_t)b * N * T * d->K : NULL, d)
                                  : NAN;
}

/* where each head's attention goes when it is not on P0, and what the values it lands on weigh */
static void parking_metrics(ProbeRecord *r, const MoeCapture *cap, const ProbeDims *d, const int *tokens,
                            const uint8_t *classes) {
    int H = d->H, group = d->H / d->KV;
    attn_on_relative(r->a_prev, cap->attn, d, KEY_PREV, NULL, -1);
    attn_on_relative(r->a_self, cap->attn, d, KEY_SELF, NULL, -1);
    attn_on_relative(r->a_p0_trigger, cap->attn, d, KEY_P0, classes, STREAM_TRIGGER);
    attn_on_relative(r->a_p0_ordinary, cap->attn, d, KEY_P0, classes, STREAM_ORDINARY);
    attn_on_relative(r->a_prev_trigger, cap->attn, d, KEY_PREV, classes, STREAM_TRIGGER);
    attn_on_relative(r->a_prev_ordinary, cap->attn, d, KEY_PREV, classes, STREAM_ORDINARY);
    attn_on_successors(r->a_induction, cap->attn, tokens, d);
    double *mass = st_malloc(sizeof(double) * (size_t)d->V), *base = st_malloc(sizeof(double) * (size_t)d->V);
    double *vnorm = st_malloc(sizeof(double) * (size_t)d->V);
    for (int l = 0; l < d->L; l++)
        for (int h = 0; h < H; h++) {
            int at = l * H + h;
            value_norms(&r->v0_head[at], vnorm, cap->v + (size_t)l * d->N * d->T * d->KV * d->D, tokens, d, h / group);
            attn_mass_by_token(mass, base, cap->attn, tokens, d, l, h, classes, classes ? STREAM_ORDINARY : -1);
            int *ids = r->park_id + (size_t)at * PARK_TOP;
            top_tokens(mass, base, d->V, PARK_TOP, ids, r->park_mass + (size_t)at * PARK_TOP,
                       r->park_lift + (size_t)at * PARK_TOP);
            for (int k = 0; k < PARK_TOP; k++) r->park_vnorm[(size_t)at * PARK_TOP + k] = ids[k] >= 0 ? vnorm[ids[k]] : NAN;
        }
    free(mass);
    free(base);
    free(vnorm);
}

void record_compute(ProbeRecord *r, const MoeCapture *cap, const ProbeDims *d, const float *norm_gains,
                    const int *tokens, const uint8_t *classes) {
    r->T = d->T;
    r->N = d->N;
    attention_metrics(r, cap->attn, d);
    parking_metrics(r, cap, d, tokens, classes);
    residual_metrics(r, cap->resid, d, norm_gains);
    block_metrics(r, cap, d);
}

void record_to_json(const ProbeRecord *r, StJson *j) {
    sj_begin(j);
    for (int i = 0; i < record_n_fields; i++) {
        const RecordField *f = &record_fields[i];
        const void *v = field_of(r, f);
        int n = record_shape_length(f->shape, r->L, r->H);
        switch (f->kind) {
        case RF_LONG: sj_int(j, f->key, *(const long *)v); break;
        case RF_LLONG: sj_int(j, f->key, *(const long long *)v); break;
        case RF_INT: sj_int(j, f->key, *(const int *)v); break;
        case RF_NUM: sj_num(j, f->key, *(const double *)v); break;
        case RF_TEXT: sj_str(j, f->key, *(const char *const *)v); break;
        case RF_NUMS: sj_doubles(j, f->key, *(const double *const *)v, n); break;
        case RF_INTS: sj_ints(j, f->key, *(const int *const *)v, n); break;
        }
    }
}

/* ---- the run summary ------------------------------------------------------------------------ */

/* the headline metrics whose emergence the summary reports */
enum { HL_A_P0_2PLUS, HL_A_P0_MAX, HL_SINK_RATE_30, HL_SINK_RATE_2PLUS_30, HL_RHO_MAX, HL_RHO_2, HL_KAPPA_P0_2, HL_C2,
       HL_D_STAR, HL_COUNT };
static const char *const headline_names[HL_COUNT] = {"a_p0_2plus", "a_p0_max", "sink_rate_30", "sink_rate_2plus_30",
                                                     "rho_max",    "rho_2",    "kappa_p0_2",   "C2", "d_star"};

typedef struct {
    long step;
    double loss; /* val_loss, else probe_loss */
    double value[HL_COUNT];
} SummaryRow;

static double json_num(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* element i of a numeric array, or its maximum when i < 0; NaN if absent */
static double json_elem(const cJSON *o, const char *key, int i) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsArray(a)) return NAN;
    if (i >= 0) {
        const cJSON *v = cJSON_GetArrayItem(a, i);
        return cJSON_IsNumber(v) ? v->valuedouble : NAN;
    }
    double m = NAN;
    const cJSON *v;
    /* !(x <= m) is true for the first number (m NaN) and for every larger one */
    cJSON_ArrayForEach(v, a) if (cJSON_IsNumber(v) && !(v->valuedouble <= m)) m = v->valuedouble;
    return m;
}

static void summary_row(SummaryRow *s, const cJSON *o) {
    s->step = (long)json_num(o, "step");
    s->loss = json_num(o, "val_loss");
    if (isnan(s->loss)) s->loss = json_num(o, "probe_loss");
    s->value[HL_A_P0_2PLUS] = json_num(o, "a_p0_2plus");
    s->value[HL_A_P0_MAX] = json_elem(o, "a_p0", -1);
    s->value[HL_SINK_RATE_30] = json_num(o, "sink_rate_30");
    s->value[HL_SINK_RATE_2PLUS_30] = json_num(o, "sink_rate_2plus_30");
    s->value[HL_RHO_MAX] = json_num(o, "rho_max");
    s->value[HL_RHO_2] = json_elem(o, "rho", 4); /* point 4 = after block 1 */
    s->value[HL_KAPPA_P0_2] = json_elem(o, "kappa_p0", 4);
    s->value[HL_C2] = json_num(o, "C2");
    s->value[HL_D_STAR] = json_num(o, "d_star");
}

/* the rows of one variant of probes.jsonl; a step probed twice (a resumed run) keeps its last line */
static int read_variant_rows(const char *path, const char *want, SummaryRow **rows_out, int *n_out, char *err) {
    FILE *f = fopen(path, "r");
    if (!f) return st_errorf(err, "%s: cannot open", path);
    SummaryRow *rows = NULL;
    int n = 0, cap = 0, lineno = 0, rc = 0;
    char *line = NULL;
    size_t line_cap = 0;
    while (getline(&line, &line_cap, f) > 0) {
        lineno++;
        cJSON *o = cJSON_Parse(line);
        if (!cJSON_IsObject(o)) {
            rc = st_errorf(err, "%s:%d: expected one JSON object per line, found something else", path, lineno);
            cJSON_Delete(o);
            break;
        }
        const cJSON *variant = cJSON_GetObjectItemCaseSensitive(o, "variant");
        if (cJSON_IsString(variant) && strcmp(variant->valuestring, want) == 0) {
            SummaryRow row;
            summary_row(&row, o);
            int at = n;
            for (int i = 0; i < n; i++)
                if (rows[i].step == row.step) at = i;
            if (at == n) {
                if (n == cap) rows = st_realloc(rows, sizeof *rows * (size_t)(cap = 2 * cap + 16));
                n++;
            }
            rows[at] = row;
        }
        cJSON_Delete(o);
    }
    free(line);
    fclose(f);
    if (rc) {
        free(rows);
        return -1;
    }
    *rows_out = rows;
    *n_out = n;
    return 0;
}

static int by_step(const void *a, const void *b) {
    long x = ((const SummaryRow *)a)->step, y = ((const SummaryRow *)b)->step;
    return (x > y) - (x < y);
}

/* writes "<name><suffix>": v */
static void sj_num_named(StJson *j, const char *name, const char *suffix, double v) {
    char key[96];
    snprintf(key, sizeof key, "%s%s", name, suffix);
    sj_num(j, key, v);
}

static void summary_metric(StJson *j, const SummaryRow *rows, int n, int m, long total_steps) {
    double *v = st_malloc(sizeof(double) * (size_t)(n ? n : 1));
    for (int i = 0; i < n; i++) v[i] = rows[i].value[m];
    int k = emergence_index(v, n);
    const char *name = headline_names[m];
    sj_num_named(j, name, "_initial", n ? v[0] : NAN);
    sj_num_named(j, name, "_direction", n > 1 && v[n - 1] != v[0] ? (v[n - 1] > v[0] ? 1 : -1) : 0);
    sj_num_named(j, name, "_final", n ? v[n - 1] : NAN);
    sj_num_named(j, name, "_emergence_step", k >= 0 ? (double)rows[k].step : NAN);
    sj_num_named(j, name, "_emergence_frac", k >= 0 && total_steps > 0 ? (double)rows[k].step / total_steps : NAN);
    sj_num_named(j, name, "_emergence_loss", k >= 0 ? rows[k].loss : NAN);
    free(v);
}

int summary_write(const char *probes_path, const char *variant, const char *summary_path, long total_steps,
                  const ProbeCost *cost, char *err) {
    SummaryRow *rows = NULL;
    int n = 0;
    if (read_variant_rows(probes_path, variant, &rows, &n, err)) return -1;
    qsort(rows, (size_t)n, sizeof *rows, by_step);
    double *series = st_malloc(sizeof(double) * (size_t)(n ? n : 1));
    StJson j = {0};
    sj_begin(&j);
    sj_str(&j, "variant", variant);
    sj_int(&j, "total_steps", total_steps);
    sj_int(&j, "n_probes", n);
    sj_int(&j, "final_step", n ? rows[n - 1].step : 0);
    for (int i = 0; i < n; i++) series[i] = (double)rows[i].step;
    sj_doubles(&j, "steps", series, n);
    for (int i = 0; i < n; i++) series[i] = rows[i].loss;
    sj_doubles(&j, "loss", series, n);
    for (int i = 0; i < n; i++) series[i] = rows[i].value[HL_D_STAR];
    sj_doubles(&j, "d_star", series, n);
    for (int i = 0; i < n; i++) series[i] = rows[i].value[HL_C2];
    sj_doubles(&j, "C2", series, n);
    for (int m = 0; m < HL_COUNT; m++) summary_metric(&j, rows, n, m, total_steps);
    if (cost) {
        double run = cost->run_seconds > 0 ? cost->run_seconds : NAN;
        sj_num(&j, "probe_seconds", cost->probe_seconds);
        sj_num(&j, "final_probe_seconds", cost->final_seconds);
        sj_num(&j, "run_seconds", cost->run_seconds);
        sj_num(&j, "probe_share", cost->probe_seconds / run);
        sj_num(&j, "schedule_probe_share", (cost->probe_seconds - cost->final_seconds) / run);
    }
    StAtomic a;
    int rc = st_atomic_open(&a, summary_path, err);
    if (!rc) rc = sj_write_line(&j, a.f, summary_path, err);
    if (!rc) rc = st_atomic_commit(&a, err);
    else st_atomic_abort(&a);
    sj_free(&j);
    free(series);
    free(rows);
    return rc;
}
