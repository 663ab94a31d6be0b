/* probes/report/runlog.c: JSONL and config.txt readers for the report (see runlog.h). */
#include "runlog.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../common/jsonl.h"
#include "../../common/util.h"
#include "../../train/config.h"
#include "../record.h"

/* one `key = value` line of config.txt into the display list */
static int keep_config_line(void *ctx, const char *key, const char *value, const char *where, char *err) {
    RunConfig *c = ctx;
    if (!value) return st_errorf(err, "%s: expected 'key = value', found '%.60s'", where, key);
    if (c->n == (int)(sizeof c->key / sizeof c->key[0])) return st_errorf(err, "%s: more than %d keys", where, c->n);
    snprintf(c->key[c->n], sizeof c->key[0], "%s", key);
    snprintf(c->value[c->n], sizeof c->value[0], "%s", value);
    c->n++;
    return 0;
}

int runconfig_read(const char *path, RunConfig *c, char *err) {
    memset(c, 0, sizeof *c);
    if (access(path, F_OK) != 0 && errno == ENOENT) return 1;
    char *text = config_read_file(path, err);
    if (!text) return -1;
    int rc = config_parse_lines(text, path, keep_config_line, c, err);
    free(text);
    return rc;
}

const char *runconfig_get(const RunConfig *c, const char *key) {
    for (int i = 0; i < c->n; i++)
        if (!strcmp(c->key[i], key)) return c->value[i];
    return NULL;
}

static const char *train_scalars[] = {"loss", "ce", "aux", "z", "lr", "grad_norm", "tokens",
                                      "tok_per_s", "ms_per_step", "val_loss"};

static void note_missing(Run *r, const char *file) {
    size_t n = strlen(r->missing);
    snprintf(r->missing + n, sizeof r->missing - n, "%s%s", n ? ", " : "", file);
}

static void run_path(const Run *r, const char *file, char *out, size_t len) {
    snprintf(out, len, "%s/%s", r->dir, file);
}

static int validate_train(const Jsonl *j, char *err) {
    if (jsonl_require_num(j, "step", 1, err)) return -1;
    for (size_t k = 0; k < sizeof train_scalars / sizeof *train_scalars; k++)
        if (jsonl_require_num(j, train_scalars[k], 0, err)) return -1;
    return 0;
}

/* selects the rows of r->variant and takes L and H from the first one's arrays */
static int index_probes(Run *r, char *err) {
    const Jsonl *j = &r->probes;
    if (jsonl_require_num(j, "step", 1, err)) return -1;
    r->sel = st_malloc(sizeof(int) * (j->n + 1));
    for (int i = 0; i < j->n; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(j->row[i], "variant");
        if (!cJSON_IsString(v))
            return st_errorf(err, "%s:%d: key 'variant': expected a string, found %s", j->path, j->line[i],
                             json_kind(v));
        if (!strcmp(v->valuestring, r->variant)) r->sel[r->np++] = i;
    }
    if (r->np == 0) return 0;
    const cJSON *first = j->row[r->sel[0]];
    r->L = jlen(first, "a_p0_layer");
    int heads = jlen(first, "a_p0");
    if (r->L <= 0 || heads <= 0 || heads % r->L)
        return st_errorf(err, "%s:%d: keys 'a_p0_layer' and 'a_p0': expected arrays of L and L*H numbers, "
                         "found lengths %d and %d", j->path, j->line[r->sel[0]], r->L, heads);
    r->H = heads / r->L;
    r->P = 2 * r->L + 1;
    for (int k = 0; k < record_n_fields; k++) { /* every key of the record's schema that a line has */
        const RecordField *f = &record_fields[k];
        if (f->kind == RF_TEXT) continue; /* the variant, read above */
        int rc = f->shape == RS_ONE ? jsonl_require_num(j, f->key, 0, err)
                                    : jsonl_require_arr(j, f->key, record_shape_length(f->shape, r->L, r->H), err);
        if (rc) return -1;
    }
    /* the learned sink logits, written only for a model with attn_sink_logit (probes/probe.h) */
    return jsonl_require_arr(j, "sink_logit", r->L * r->H, err);
}

/* reads a whole small JSON file (summary.json): 0, 1 absent, -1 error */
static int read_json_file(const char *path, cJSON **out, char *err) {
    *out = NULL;
    FILE *f = fopen(path, "r");
    if (!f) {
        if (errno == ENOENT) return 1;
        return st_errorf(err, "%s: cannot open: %s", path, strerror(errno));
    }
    char *text = NULL;
    size_t cap = 0, len = 0, got;
    char chunk[65536];
    while ((got = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (len + got + 1 > cap) {
            cap = 2 * (len + got + 1);
            text = st_realloc(text, cap);
        }
        memcpy(text + len, chunk, got);
        len += got;
    }
    fclose(f);
    if (text) text[len] = 0;
    *out = text ? cJSON_Parse(text) : NULL;
    free(text);
    if (!*out || !cJSON_IsObject(*out)) {
        cJSON_Delete(*out);
        *out = NULL;
        return st_errorf(err, "%s: expected one JSON object, found %s", path,
                         len ? "text that is not a valid JSON object" : "an empty file");
    }
    return 0;
}

const char *runconfig_trained_variant(const RunConfig *c) {
    const char *bos = runconfig_get(c, "bos");
    return bos && (!strcmp(bos, "prepend") || !strcmp(bos, "doc")) ? "bos" : "natural";
}

int run_load(Run *r, const char *dir, char *err) { return run_load_variant(r, dir, NULL, err); }

int run_load_variant(Run *r, const char *dir, const char *variant, char *err) {
    memset(r, 0, sizeof *r);
    snprintf(r->dir, sizeof r->dir, "%s", dir);
    size_t n = strlen(r->dir);
    while (n > 1 && r->dir[n - 1] == '/') r->dir[--n] = 0;
    const char *base = strrchr(r->dir, '/');
    snprintf(r->name, sizeof r->name, "%s", base ? base + 1 : r->dir);
    char path[1100];
    int rc;
    run_path(r, "config.txt", path, sizeof path);
    if ((rc = runconfig_read(path, &r->cfg, err)) < 0) return -1;
    r->has_cfg = rc == 0;
    if (!r->has_cfg) note_missing(r, "config.txt");
    snprintf(r->variant, sizeof r->variant, "%s", variant ? variant : runconfig_trained_variant(&r->cfg));

    run_path(r, "train.jsonl", path, sizeof path);
    if ((rc = jsonl_read(path, &r->train, err)) < 0) return -1;
    if (rc == 1) return st_errorf(err, "%s: missing (is %s a run directory?)", path, r->dir);
    if (r->train.n == 0) return st_errorf(err, "%s: expected at least one logged step, found none", path);
    if (validate_train(&r->train, err)) return -1;

    run_path(r, "probes.jsonl", path, sizeof path);
    if ((rc = jsonl_read(path, &r->probes, err)) < 0) return -1;
    if (rc == 1) note_missing(r, "probes.jsonl");
    if (rc == 0 && index_probes(r, err)) return -1;

    const char *summary = strcmp(r->variant, "bos") ? "summary.json" : "summary_bos.json";
    run_path(r, summary, path, sizeof path);
    if ((rc = read_json_file(path, &r->summary, err)) < 0) return -1;
    if (rc == 1) note_missing(r, summary);

    run_path(r, "interventions.jsonl", path, sizeof path);
    if ((rc = jsonl_read(path, &r->interv, err)) < 0) return -1;
    if (rc == 1) note_missing(r, "interventions.jsonl");
    return 0;
}

void run_free(Run *r) {
    jsonl_free(&r->train);
    jsonl_free(&r->probes);
    jsonl_free(&r->interv);
    cJSON_Delete(r->summary);
    free(r->sel);
    memset(r, 0, sizeof *r);
}

double *run_train_col(const Run *r, const char *key) {
    double *v = st_malloc(sizeof(double) * (r->train.n + 1));
    for (int i = 0; i < r->train.n; i++) v[i] = jnum(r->train.row[i], key);
    return v;
}

double *run_probe_col(const Run *r, const char *key) {
    double *v = st_malloc(sizeof(double) * (r->np + 1));
    for (int i = 0; i < r->np; i++) v[i] = jnum(r->probes.row[r->sel[i]], key);
    return v;
}

double *run_probe_mat(const Run *r, const char *key, int width) {
    double *v = st_malloc(sizeof(double) * ((size_t)r->np * width + 1));
    for (int i = 0; i < r->np; i++) jarr(r->probes.row[r->sel[i]], key, v + (size_t)i * width, width);
    return v;
}

double run_training_seconds(const Run *r) { return run_training_seconds_until(r, INFINITY); }

double run_training_seconds_until(const Run *r, double until) {
    double t = 0, prev = 0;
    int any = 0;
    for (int i = 0; i < r->train.n; i++) {
        double s = jnum(r->train.row[i], "step"), ms = jnum(r->train.row[i], "ms_per_step");
        if (isfinite(ms) && s > prev && prev < until) {
            t += ms * ((s < until ? s : until) - prev) / 1000; /* a line's steps up to `until` */
            any = 1;
        }
        if (isfinite(s)) prev = s;
    }
    return any ? t : NAN;
}

double last_finite(const double *v, int n, int *at) {
    for (int i = n - 1; i >= 0; i--)
        if (isfinite(v[i])) {
            if (at) *at = i;
            return v[i];
        }
    return NAN;
}

int run_is_dense(const Run *r) {
    const char *ne = r->has_cfg ? runconfig_get(&r->cfg, "n_expert") : NULL;
    return ne && atoi(ne) == 1;
}
