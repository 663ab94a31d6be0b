#include "export.h"

#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/binfile.h"
#include "../common/jsonl.h"
#include "../common/safetensors.h"
#include "../common/util.h"
#include "../data/tokenizer.h"
#include "../model/moe.h"
#include "../probes/probeset.h"
#include "checkpoint.h"
#include "config.h"

/* everything one export writes, gathered before the file is */
typedef struct {
    TrainConfig cfg;
    Moe model;
    CkptState state;
    Tokenizer *tok;
    int32_t *tok_offsets; /* [V+1] */
    uint8_t *tok_bytes;
    ProbeSet probes;      /* n = 0: the run has no probe set */
    char *probe_lines;    /* probes.jsonl lines at the step, '\n'-separated */
    SftTensor *tensors;
    int n_tensors;
} Export;

/* the tokenizer the run's ids belong to: a synthetic stream's own symbols, else data_dir's */
static int run_tokenizer(const TrainConfig *c, Tokenizer **tok, char *err) {
    if (c->stream.kind != STREAM_CORPUS && stream_own_symbols(&c->stream)) {
        *tok = tokenizer_new_symbols(c->stream.vocab);
        return 0;
    }
    char path[600];
    snprintf(path, sizeof path, "%s/tokenizer.bin", c->data_dir);
    return tokenizer_load(tok, path, err);
}

/* every id's bytes, concatenated, and where each id's begin */
static void tokenizer_table(Export *e) {
    int V = tokenizer_vocab_size(e->tok);
    e->tok_offsets = st_malloc(sizeof(int32_t) * ((size_t)V + 1));
    size_t total = 0;
    const uint8_t *bytes;
    for (int id = 0; id < V; id++) total += tokenizer_token_bytes(e->tok, id, &bytes);
    e->tok_bytes = st_malloc(total + 1);
    e->tok_offsets[0] = 0;
    for (int id = 0; id < V; id++) {
        size_t n = tokenizer_token_bytes(e->tok, id, &bytes);
        memcpy(e->tok_bytes + e->tok_offsets[id], bytes, n);
        e->tok_offsets[id + 1] = e->tok_offsets[id] + (int32_t)n;
    }
}

/* the run's probe set (absent: n = 0) and its probes.jsonl lines at the exported step */
static int run_probes(Export *e, const char *run_dir, char *err) {
    char path[4200];
    snprintf(path, sizeof path, "%s/probe_set.bin", run_dir);
    if (access(path, F_OK) == 0 && probe_set_load(&e->probes, path, err)) return -1;
    snprintf(path, sizeof path, "%s/probes.jsonl", run_dir);
    Jsonl lines;
    if (jsonl_read(path, &lines, err) < 0) return -1;
    char **text = st_calloc((size_t)lines.n + 1, sizeof *text);
    size_t total = 1;
    int n = 0;
    for (int r = 0; r < lines.n; r++) {
        if (jnum(lines.row[r], "step") != (double)e->state.step) continue;
        text[n] = cJSON_PrintUnformatted(lines.row[r]);
        total += strlen(text[n++]) + 1;
    }
    e->probe_lines = st_calloc(total, 1);
    for (int i = 0, len = 0; i < n; i++) {
        len += sprintf(e->probe_lines + len, "%s%s", i ? "\n" : "", text[i]);
        free(text[i]);
    }
    free(text);
    jsonl_free(&lines);
    return 0;
}

static void add_tensor(Export *e, const char *name, SftDtype dtype, const void *data, int ndim, const int64_t *shape) {
    e->tensors[e->n_tensors++] = sft_tensor(name, dtype, data, ndim, shape);
}

/* the tensor list: the model's in table order, then the 4-byte ones, then the bytes (so every 4-byte
 * tensor stays aligned in the file) */
static void list_tensors(Export *e) {
    const Moe *m = &e->model;
    e->tensors = st_calloc((size_t)m->n_tensors + 5, sizeof *e->tensors);
    for (int i = 0; i < m->n_tensors; i++) {
        const MoeTensor *t = &m->tensors[i];
        int64_t shape[3] = {t->shape[0], t->shape[1], t->shape[2]};
        add_tensor(e, t->name, SFT_F32, m->params + t->offset, t->ndim, shape);
    }
    const ProbeSet *ps = &e->probes;
    int64_t V = tokenizer_vocab_size(e->tok), tokens_shape[3] = {PV_COUNT, ps->n, ps->T}, offsets_shape[1] = {V + 1},
            bytes_shape[1] = {e->tok_offsets[V]};
    if (ps->n) {
        add_tensor(e, "probe.tokens", SFT_I32, ps->tokens, 3, tokens_shape);
        add_tensor(e, "probe.targets", SFT_I32, ps->targets, 2, tokens_shape + 1);
    }
    add_tensor(e, "tokenizer.offsets", SFT_I32, e->tok_offsets, 1, offsets_shape);
    add_tensor(e, "tokenizer.bytes", SFT_U8, e->tok_bytes, 1, bytes_shape);
    if (ps->n) add_tensor(e, "probe.classes", SFT_U8, ps->classes, 2, tokens_shape + 1);
}

static void meta_num(cJSON *meta, const char *key, const char *fmt, double v) {
    char buf[64];
    snprintf(buf, sizeof buf, fmt, v);
    cJSON_AddStringToObject(meta, key, buf);
}

static cJSON *metadata(const Export *e) {
    static const char *const kinds[] = {"bytes", "bpe", "symbols"};
    cJSON *meta = cJSON_CreateObject();
    cJSON_AddStringToObject(meta, "format", "sinktrace");
    cJSON_AddStringToObject(meta, "format_version", "1");
    TrainConfig resolved = e->cfg;
    resolved.model = e->model.cfg; /* head_dim resolved, as the model was built */
    char *config = config_to_text(&resolved);
    cJSON_AddStringToObject(meta, "config", config);
    free(config);
    meta_num(meta, "step", "%.0f", (double)e->state.step);
    meta_num(meta, "tokens", "%.0f", (double)e->state.tokens);
    meta_num(meta, "val_loss", "%.9g", e->state.last_val_loss);
    cJSON_AddStringToObject(meta, "tokenizer", kinds[tokenizer_kind(e->tok)]);
    meta_num(meta, "bos_id", "%.0f", tokenizer_bos_id(e->tok));
    char variants[256] = "";
    for (int v = 0; v < PV_COUNT; v++)
        snprintf(variants + strlen(variants), sizeof variants - strlen(variants), "%s%s", v ? "," : "",
                 probe_variant_name(v));
    cJSON_AddStringToObject(meta, "probe_variants", variants);
    cJSON_AddStringToObject(meta, "probes_jsonl", e->probe_lines);
    return meta;
}

/* the file as written must read back with the same names, shapes and bits */
static int verify(const Export *e, const char *out, char *err) {
    SftFile f;
    if (sft_load(&f, out, err)) return -1;
    int rc = f.n == e->n_tensors ? 0
                                 : st_errorf(err, "%s: read back: expected %d tensors, found %d", out, e->n_tensors, f.n);
    for (int i = 0; i < e->n_tensors && rc == 0; i++) {
        const SftTensor *w = &e->tensors[i], *r = sft_find(&f, w->name);
        if (!r || r->dtype != w->dtype || r->ndim != w->ndim ||
            memcmp(r->shape, w->shape, sizeof(int64_t) * (size_t)w->ndim) != 0 ||
            memcmp(r->data, w->data, (size_t)sft_bytes(w)) != 0)
            rc = st_errorf(err, "%s: read back: tensor '%s' is not what was written", out, w->name);
    }
    sft_free(&f);
    return rc;
}

static void export_free(Export *e) {
    moe_free(&e->model);
    if (e->tok) tokenizer_free(e->tok);
    free(e->tok_offsets);
    free(e->tok_bytes);
    if (e->probes.n) probe_set_free(&e->probes);
    free(e->probe_lines);
    free(e->tensors);
}

int export_run(const char *run_dir, int64_t step, const char *out, ExportInfo *info, char *err) {
    Export e;
    memset(&e, 0, sizeof e);
    memset(info, 0, sizeof *info);
    int rc = ckpt_open_model(run_dir, step, &e.cfg, &e.model, &e.state, info->ckpt, sizeof info->ckpt, err) ||
                     run_tokenizer(&e.cfg, &e.tok, err) || run_probes(&e, run_dir, err)
                 ? -1
                 : 0;
    if (rc == 0) {
        tokenizer_table(&e);
        list_tensors(&e);
        cJSON *meta = metadata(&e);
        rc = sft_save(out, e.tensors, e.n_tensors, meta, err) || verify(&e, out, err) ? -1 : 0;
        cJSON_Delete(meta);
    }
    if (rc == 0) {
        info->step = e.state.step;
        info->n_tensors = e.n_tensors;
        info->probe_n = e.probes.n;
        info->probe_T = e.probes.T;
        for (const char *p = e.probe_lines; *p; p++) info->probe_lines += *p == '\n';
        info->probe_lines += e.probe_lines[0] != 0;
        rc = st_file_size(out, &info->bytes, err);
    }
    export_free(&e);
    return rc;
}
