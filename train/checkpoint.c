#include "checkpoint.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/binfile.h"
#include "../common/util.h"

#define CKPT_MAGIC "STCKPT"
/* 2: the checksum is common/binfile.h's trailer over the whole file (1 had an FNV-1a header field) */
#define CKPT_VERSION 2
enum { F_STEP, F_N_PARAMS, F_CONFIG_BYTES, F_TOKENS, F_LOADER_STATE, F_VAL_LOSS, N_CKPT_FIELDS };

static int64_t double_bits(double d) {
    int64_t b;
    memcpy(&b, &d, sizeof b);
    return b;
}

static double bits_double(int64_t b) {
    double d;
    memcpy(&d, &b, sizeof d);
    return d;
}

int ckpt_save(const char *path, const TrainConfig *cfg, const Moe *m, const AdamW *opt, const CkptState *s,
              char *err) {
    char *text = config_to_text(cfg);
    size_t text_bytes = strlen(text), n = m->n_params;
    size_t float_bytes = n * sizeof(float);

    StHeader h;
    st_header_init(&h, CKPT_MAGIC, CKPT_VERSION);
    st_header_add(&h, s->step);
    st_header_add(&h, (int64_t)n);
    st_header_add(&h, (int64_t)text_bytes);
    st_header_add(&h, s->tokens);
    st_header_add(&h, (int64_t)s->loader_state);
    st_header_add(&h, double_bits(s->last_val_loss));
    st_header_add(&h, s->n_norms);
    for (int i = 0; i < s->n_norms; i++) st_header_add(&h, double_bits(s->norms[i]));

    StAtomic a;
    int rc = st_atomic_open(&a, path, err);
    if (rc == 0) {
        rc = st_atomic_write_header(&a, &h, err) || st_write_all(a.f, path, text, text_bytes, err) ||
             st_write_all(a.f, path, m->params, float_bytes, err) ||
             st_write_all(a.f, path, opt->m, float_bytes, err) || st_write_all(a.f, path, opt->v, float_bytes, err)
                 ? -1
                 : 0;
        if (rc == 0) rc = st_atomic_commit(&a, err);
        else st_atomic_abort(&a);
    }
    free(text);
    return rc;
}

/* opens a checkpoint, reads its header and its config text (malloc'd, NUL-terminated) */
static FILE *open_ckpt(const char *path, StHeader *h, char **text, char *err) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        st_errorf(err, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    if (st_header_read(f, path, CKPT_MAGIC, CKPT_VERSION, N_CKPT_FIELDS, h, err)) goto fail;
    int64_t text_bytes = h->field[F_CONFIG_BYTES], n = h->field[F_N_PARAMS], size;
    if (text_bytes < 0 || text_bytes > (1 << 20) || n < 0) {
        st_errorf(err, "%s: header: expected config bytes in [0, 2^20] and n_params >= 0, found %" PRId64
                  " and %" PRId64, path, text_bytes, n);
        goto fail;
    }
    int64_t n_norms = h->n_fields > N_CKPT_FIELDS ? h->field[N_CKPT_FIELDS] : 0;
    if (n_norms < 0 || n_norms > SPIKE_WINDOW || (h->n_fields > N_CKPT_FIELDS && h->n_fields != N_CKPT_FIELDS + 1 + n_norms)) {
        st_errorf(err, "%s: header: expected 0 to %d spike-guard norms in fields %d.., found a count of %" PRId64
                  " with %u fields", path, SPIKE_WINDOW, N_CKPT_FIELDS + 1, n_norms, h->n_fields);
        goto fail;
    }
    /* the exact size is known from the header: anything else is a truncated or padded file; n is
     * first bounded by the payload's size, so the size it implies cannot overflow */
    if (st_payload_bytes(path, h, &size, err)) goto fail;
    if (n > size / (3 * (int64_t)sizeof(float))) {
        st_errorf(err, "%s: truncated: n_params %" PRId64 " needs more than the payload's %" PRId64 " bytes", path, n,
                  size);
        goto fail;
    }
    int64_t expected = text_bytes + 3 * n * (int64_t)sizeof(float);
    if (size != expected) {
        st_errorf(err, "%s: %s: expected %" PRId64 " bytes after the header for %" PRId64 " parameters, found %" PRId64,
                  path, size < expected ? "truncated" : "size", expected, n, size);
        goto fail;
    }
    *text = st_malloc((size_t)text_bytes + 1);
    if (st_read_exact(f, path, *text, (size_t)text_bytes, "config text", err)) {
        free(*text);
        goto fail;
    }
    (*text)[text_bytes] = 0;
    return f;
fail:
    fclose(f);
    return NULL;
}

/* parses a stored config text into cfg */
static int parse_stored_config(const char *path, const char *text, TrainConfig *cfg, char *err) {
    char origin[4200];
    snprintf(origin, sizeof origin, "%s (stored config)", path);
    config_defaults(cfg);
    return config_load_text(cfg, text, origin, err);
}

/* the model the stored config describes must have the header's n_params (which the file's size
 * bounds), so that building it cannot allocate more than the file holds */
static int check_stored_model_size(const char *path, const StHeader *h, TrainConfig *cfg, char *err) {
    size_t n;
    char model_err[ST_ERR_LEN];
    if (moe_count_params(&cfg->model, &n, model_err))
        return st_errorf(err, "%s (stored config): %s", path, model_err);
    if ((int64_t)n != h->field[F_N_PARAMS])
        return st_errorf(err, "%s: n_params: expected %zu (the model of the stored config), found %" PRId64, path, n,
                         h->field[F_N_PARAMS]);
    return 0;
}

int ckpt_read_config(const char *path, TrainConfig *cfg, char *err) {
    StHeader h;
    char *text;
    FILE *f = open_ckpt(path, &h, &text, err);
    if (!f) return -1;
    fclose(f);
    int rc = parse_stored_config(path, text, cfg, err);
    if (rc == 0) rc = check_stored_model_size(path, &h, cfg, err);
    free(text);
    return rc;
}

int ckpt_read_step(const char *path, int64_t *step, char *err) {
    StHeader h;
    char *text;
    FILE *f = open_ckpt(path, &h, &text, err);
    if (!f) return -1;
    fclose(f);
    free(text);
    *step = h.field[F_STEP];
    return 0;
}

int ckpt_load(const char *path, const TrainConfig *run_cfg, Moe *m, AdamW *opt, CkptState *s, char *err) {
    StHeader h;
    char *text;
    FILE *f = open_ckpt(path, &h, &text, err);
    if (!f) return -1;
    TrainConfig stored;
    int rc = parse_stored_config(path, text, &stored, err);
    if (rc == 0 && run_cfg) rc = config_compare(&stored, run_cfg, path, err);
    if (rc == 0 && h.field[F_N_PARAMS] != (int64_t)m->n_params)
        rc = st_errorf(err, "%s: n_params: expected %zu (this model), found %" PRId64, path, m->n_params,
                       h.field[F_N_PARAMS]);
    size_t float_bytes = m->n_params * sizeof(float);
    /* the moments are read only into an optimizer (st_header_read's checksum covered them already) */
    if (rc == 0)
        rc = st_read_exact(f, path, m->params, float_bytes, "parameters", err) ||
                     (opt && (st_read_exact(f, path, opt->m, float_bytes, "AdamW first moments", err) ||
                              st_read_exact(f, path, opt->v, float_bytes, "AdamW second moments", err)))
                 ? -1
                 : 0;
    if (rc == 0) {
        s->step = h.field[F_STEP];
        s->tokens = h.field[F_TOKENS];
        s->loader_state = (uint64_t)h.field[F_LOADER_STATE];
        s->last_val_loss = bits_double(h.field[F_VAL_LOSS]);
        s->n_norms = h.n_fields > N_CKPT_FIELDS ? (int)h.field[N_CKPT_FIELDS] : 0;
        for (int i = 0; i < s->n_norms; i++) s->norms[i] = bits_double(h.field[N_CKPT_FIELDS + 1 + i]);
    }
    free(text);
    fclose(f);
    return rc;
}

void ckpt_path(char *out, size_t size, const char *run_dir, int64_t step) {
    snprintf(out, size, "%s/ckpt_%08" PRId64 ".bin", run_dir, step);
}

/* the step of a file named exactly ckpt_<8 digits>.bin (not the .tmp of a write in progress), or -1 */
static int64_t ckpt_step_of(const char *name) {
    if (strlen(name) != 17 || strncmp(name, "ckpt_", 5) != 0 || strcmp(name + 13, ".bin") != 0) return -1;
    int64_t step = 0;
    for (int i = 5; i < 13; i++) {
        if (!isdigit((unsigned char)name[i])) return -1;
        step = 10 * step + (name[i] - '0');
    }
    return step;
}

/* the steps of run_dir's checkpoints, sorted ascending (malloc'd); count in *n */
static int list_ckpt_steps(const char *run_dir, int64_t **steps, int *n, char *err) {
    DIR *d = opendir(run_dir);
    if (!d) return st_errorf(err, "%s: cannot open directory: %s", run_dir, strerror(errno));
    int cap = 16;
    *steps = st_malloc((size_t)cap * sizeof **steps);
    *n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        int64_t step = ckpt_step_of(e->d_name);
        if (step < 0) continue;
        if (*n == cap) {
            int64_t *bigger = st_malloc((size_t)(cap *= 2) * sizeof *bigger);
            memcpy(bigger, *steps, (size_t)*n * sizeof *bigger);
            free(*steps);
            *steps = bigger;
        }
        int i = (*n)++;
        for (; i > 0 && (*steps)[i - 1] > step; i--) (*steps)[i] = (*steps)[i - 1]; /* insertion sort */
        (*steps)[i] = step;
    }
    closedir(d);
    return 0;
}

int ckpt_latest(const char *run_dir, char *out, size_t size, char *err) {
    int64_t *steps;
    int n;
    if (list_ckpt_steps(run_dir, &steps, &n, err)) return -1;
    int rc = n ? 0 : st_errorf(err, "%s: no checkpoint (ckpt_*.bin) in the run directory", run_dir);
    if (n) ckpt_path(out, size, run_dir, steps[n - 1]);
    free(steps);
    return rc;
}

int ckpt_newest_valid(const char *run_dir, char *out, size_t size) {
    int64_t *steps, found_step;
    int n;
    char err[ST_ERR_LEN];
    if (list_ckpt_steps(run_dir, &steps, &n, err)) return -1;
    int i = n - 1;
    for (; i >= 0; i--) { /* newest first; reading the step checks the whole file's checksum */
        ckpt_path(out, size, run_dir, steps[i]);
        if (ckpt_read_step(out, &found_step, err) == 0) break;
    }
    free(steps);
    return i >= 0 ? 0 : -1;
}

int ckpt_of_step(const char *run_dir, int64_t step, char *out, size_t size, char *err) {
    if (step < 0) return ckpt_latest(run_dir, out, size, err);
    int64_t *steps;
    int n, found = 0;
    if (list_ckpt_steps(run_dir, &steps, &n, err)) return -1;
    char have[128] = "none";
    int len = 0;
    for (int i = 0; i < n; i++) {
        found |= steps[i] == step;
        if (len < 100) /* the first steps; a long list ends with "..." */
            len += snprintf(have + len, sizeof have - (size_t)len, "%s%lld", i ? ", " : "",
                            (long long)steps[i]);
        else if (len < 110)
            len += snprintf(have + len, sizeof have - (size_t)len, ", ...");
    }
    free(steps);
    ckpt_path(out, size, run_dir, step);
    if (!found) return st_errorf(err, "%s: no checkpoint at step %lld (its checkpoints are at steps: %s)", run_dir,
                                 (long long)step, have);
    return 0;
}

int ckpt_open_model(const char *run_dir, int64_t step, TrainConfig *cfg, Moe *m, CkptState *s, char *path,
                    size_t size, char *err) {
    if (ckpt_of_step(run_dir, step, path, size, err) || ckpt_read_config(path, cfg, err) ||
        moe_init(m, &cfg->model, err) || ckpt_load(path, NULL, m, NULL, s, err))
        return -1;
    return 0;
}

int ckpt_prune(const char *run_dir, int keep, char *err) {
    int64_t *steps;
    int n, rc = 0;
    if (list_ckpt_steps(run_dir, &steps, &n, err)) return -1;
    char path[4200];
    for (int i = 0; i < n - keep && rc == 0; i++) {
        ckpt_path(path, sizeof path, run_dir, steps[i]);
        if (unlink(path) != 0) rc = st_errorf(err, "%s: cannot delete: %s", path, strerror(errno));
    }
    free(steps);
    return rc;
}
