/* data/loader.c: training and validation windows under the three BOS policies.
 *
 * Each split (train, val) is turned into a stream that windows are cut from:
 *   none, prepend: the shard's tokens with every BOS removed; a window is the T+1 tokens (none) or
 *                  BOS + T tokens (prepend) from an offset;
 *   doc:           the shard's tokens as they are; a window is the T+1 tokens from a document's BOS
 *                  (so later documents keep their BOS inside the window).
 * Training draws offsets (or document starts) uniformly with the loader's RNG; validation walks
 * consecutive windows (stride T, so each token is a target once) or every document start. */
#include "loader.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shard.h"
#include "tokenizer.h"

typedef struct {
    int *tokens;     /* the stream windows are cut from */
    int64_t n;
    int64_t *starts; /* doc: the document starts that leave room for a whole window */
    int64_t n_windows_choices; /* how many distinct windows a draw chooses among */
} Split;

struct LoaderData {
    Split train, val;
};

const char *bos_policy_name(BosPolicy p) {
    switch (p) {
    case BOS_NONE: return "none";
    case BOS_PREPEND: return "prepend";
    case BOS_DOC: return "doc";
    case BOS_START: return "start";
    }
    return "?";
}

/* the shard's tokens without BOS; with `starts`, also where each document begins in them */
static void strip_bos(Split *sp, const Shard *sh, int64_t *starts, int64_t *n_starts) {
    sp->tokens = st_malloc((size_t)(sh->n_tokens ? sh->n_tokens : 1) * sizeof *sp->tokens);
    sp->n = 0;
    for (int64_t i = 0; i < sh->n_tokens; i++)
        if (sh->tokens[i] != sh->bos_id) sp->tokens[sp->n++] = sh->tokens[i];
        else if (starts) starts[(*n_starts)++] = sp->n;
}

/* builds the split's stream for the policy and counts the windows a training draw chooses among */
static void build_split(Split *sp, Shard *sh, int T, BosPolicy bos) {
    memset(sp, 0, sizeof *sp);
    if (bos == BOS_DOC) {
        sp->tokens = sh->tokens; /* take the shard's buffer */
        sh->tokens = NULL;
        sp->n = sh->n_tokens;
        /* document starts with at least T+1 tokens from there to the end of the stream */
        sp->starts = st_malloc((size_t)(sh->n_docs + 1) * sizeof *sp->starts);
        for (int64_t i = 0; i + T + 1 <= sp->n; i++)
            if (sp->tokens[i] == sh->bos_id) sp->starts[sp->n_windows_choices++] = i;
        return;
    }
    if (bos == BOS_START) {
        /* the document starts of the BOS-free stream with at least T+1 tokens from there on */
        int64_t n_starts = 0;
        sp->starts = st_malloc((size_t)(sh->n_docs + 1) * sizeof *sp->starts);
        strip_bos(sp, sh, sp->starts, &n_starts);
        for (int64_t i = 0; i < n_starts; i++)
            if (sp->starts[i] + T + 1 <= sp->n) sp->starts[sp->n_windows_choices++] = sp->starts[i];
        return;
    }
    strip_bos(sp, sh, NULL, NULL);
    int64_t needed = bos == BOS_NONE ? T + 1 : T; /* prepend supplies the window's first token itself */
    sp->n_windows_choices = sp->n >= needed ? sp->n - needed + 1 : 0;
}

static int64_t val_window_count(const Split *sp, int T, BosPolicy bos) {
    switch (bos) {
    case BOS_NONE: return sp->n >= 1 ? (sp->n - 1) / T : 0;
    case BOS_PREPEND: return sp->n / T;
    case BOS_DOC:
    case BOS_START: return sp->n_windows_choices;
    }
    return 0;
}

static int open_split(Split *sp, const char *path, const Tokenizer *tok, const char *tok_path, int T, BosPolicy bos,
                      char *err) {
    Shard sh;
    if (shard_read(path, &sh, err)) return -1;
    int rc = 0;
    if (sh.vocab_size != tokenizer_vocab_size(tok))
        rc = st_errorf(err, "%s: vocab_size: expected %d (as in %s), found %d", path, tokenizer_vocab_size(tok),
                       tok_path, sh.vocab_size);
    else if (sh.bos_id != tokenizer_bos_id(tok))
        rc = st_errorf(err, "%s: bos_id: expected %d (as in %s), found %d", path, tokenizer_bos_id(tok), tok_path,
                       sh.bos_id);
    else if (bos != BOS_NONE && sh.bos_id < 0)
        rc = st_errorf(err, "%s: bos_id: expected a BOS token for bos=%s, found none", path, bos_policy_name(bos));
    if (rc == 0) {
        build_split(sp, &sh, T, bos);
        if (sp->n_windows_choices < 1 || val_window_count(sp, T, bos) < 1)
            rc = st_errorf(err,
                           "%s: too short: expected at least one window of T+1 = %d tokens under bos=%s%s, found "
                           "%lld tokens",
                           path, T + 1, bos_policy_name(bos),
                           bos == BOS_DOC     ? " starting at a document's BOS"
                           : bos == BOS_START ? " starting at a document (BOS removed)"
                                              : " (BOS removed)",
                           (long long)sp->n);
        else if (sp->n_windows_choices > UINT32_MAX)
            rc = st_errorf(err, "%s: n_tokens: expected at most %u windows, found %lld", path, UINT32_MAX,
                           (long long)sp->n_windows_choices);
    }
    shard_free(&sh);
    return rc;
}

static void free_split(Split *sp) {
    free(sp->tokens);
    free(sp->starts);
}

int loader_open(Loader *ld, const char *data_dir, int T, BosPolicy bos, uint64_t seed, char *err) {
    memset(ld, 0, sizeof *ld);
    if (T < 1) return st_errorf(err, "loader: T: expected at least 1, found %d", T);
    char tok_path[4096], train_path[4096], val_path[4096];
    snprintf(tok_path, sizeof tok_path, "%s/tokenizer.bin", data_dir);
    snprintf(train_path, sizeof train_path, "%s/train.bin", data_dir);
    snprintf(val_path, sizeof val_path, "%s/val.bin", data_dir);
    Tokenizer *tok;
    if (tokenizer_load(&tok, tok_path, err)) return -1;
    LoaderData *d = st_calloc(1, sizeof *d);
    int rc = open_split(&d->train, train_path, tok, tok_path, T, bos, err);
    if (rc == 0) rc = open_split(&d->val, val_path, tok, tok_path, T, bos, err);
    ld->vocab_size = tokenizer_vocab_size(tok);
    ld->bos_id = tokenizer_bos_id(tok);
    tokenizer_free(tok);
    if (rc) {
        free_split(&d->train);
        free_split(&d->val);
        free(d);
        return -1;
    }
    ld->T = T;
    ld->bos = bos;
    ld->n_train_tokens = d->train.n;
    ld->n_val_tokens = d->val.n;
    int64_t n_val = val_window_count(&d->val, T, bos);
    ld->n_val_windows = n_val > INT32_MAX ? INT32_MAX : (int)n_val;
    st_rng_seed(&ld->rng, seed);
    ld->data = d;
    return 0;
}

void loader_close(Loader *ld) {
    stream_free(ld->stream);
    ld->stream = NULL;
    if (ld->data) {
        free_split(&ld->data->train);
        free_split(&ld->data->val);
        free(ld->data);
    }
    ld->data = NULL;
}

int loader_check_vocab(const Loader *ld, int model_vocab, const char *data_dir, char *err) {
    if (model_vocab != ld->vocab_size)
        return st_errorf(err, "%s: vocab_size: the model expects %d, the tokenizer and shards have %d", data_dir,
                         model_vocab, ld->vocab_size);
    return 0;
}

/* window number `choice` of the split (an offset, or an index into the document starts) */
static void fill_window(const Loader *ld, const Split *sp, int64_t choice, int *inputs, int *targets) {
    int T = ld->T;
    const int *src;
    if (ld->bos == BOS_PREPEND) {
        /* window = BOS, s[choice .. choice+T-1]: inputs BOS, s[..T-2]; targets s[..T-1] */
        src = sp->tokens + choice;
        inputs[0] = ld->bos_id;
        memcpy(inputs + 1, src, (size_t)(T - 1) * sizeof *inputs);
        memcpy(targets, src, (size_t)T * sizeof *targets);
        return;
    }
    src = sp->tokens + (ld->bos == BOS_DOC || ld->bos == BOS_START ? sp->starts[choice] : choice);
    memcpy(inputs, src, (size_t)T * sizeof *inputs);
    memcpy(targets, src + 1, (size_t)T * sizeof *targets);
}

/* One window of a synthetic stream drawn from rng: documents (BOS-led under doc) follow each other
 * until T+1 tokens are there; none and prepend start at a random offset of the first document. */
static void stream_window(const Loader *ld, StRng *rng, int *inputs, int *targets, uint8_t *classes) {
    const Stream *s = ld->stream;
    int T = ld->T, n = stream_doc_len(s), len = 0, first = 1;
    int *w = st_malloc(sizeof(int) * (size_t)(T + 1)), *doc = st_malloc(sizeof(int) * (size_t)n);
    uint8_t *wc = st_malloc((size_t)(T + 1)), *dc = st_malloc((size_t)n);
    if (ld->bos == BOS_PREPEND) w[len] = stream_bos_id(s), wc[len++] = STREAM_ORDINARY;
    while (len < T + 1) {
        stream_document(s, rng, doc, dc);
        int skip = first && (ld->bos == BOS_NONE || ld->bos == BOS_PREPEND) ? (int)st_rng_below(rng, (uint32_t)n) : 0;
        if (ld->bos == BOS_DOC) w[len] = stream_bos_id(s), wc[len++] = STREAM_ORDINARY;
        for (int i = skip; i < n && len < T + 1; i++) w[len] = doc[i], wc[len++] = dc[i];
        first = 0;
    }
    memcpy(inputs, w, sizeof(int) * (size_t)T);
    memcpy(targets, w + 1, sizeof(int) * (size_t)T);
    if (classes) memcpy(classes, wc, (size_t)T);
    free(w), free(doc), free(wc), free(dc);
}

int loader_open_stream(Loader *ld, Stream *s, int T, BosPolicy bos, uint64_t seed, char *err) {
    memset(ld, 0, sizeof *ld);
    ld->stream = s;
    if (T < 1) {
        loader_close(ld);
        return st_errorf(err, "loader: T: expected at least 1, found %d", T);
    }
    ld->vocab_size = stream_vocab_size(s);
    ld->bos_id = stream_bos_id(s);
    ld->T = T;
    ld->bos = bos;
    ld->n_train_tokens = ld->n_val_tokens = INT64_MAX; /* unbounded: fresh tokens for every window */
    ld->n_val_windows = 1 << 20;
    ld->val_seed = stream_seed(s) ^ 0x76616c69646174ull; /* the same windows for every run of a stream */
    st_rng_seed(&ld->rng, seed);
    return 0;
}

void loader_train_batch(Loader *ld, int *inputs, int *targets, int B) {
    if (ld->stream) {
        for (int b = 0; b < B; b++)
            stream_window(ld, &ld->rng, inputs + (size_t)b * ld->T, targets + (size_t)b * ld->T, NULL);
        return;
    }
    const Split *sp = &ld->data->train;
    for (int b = 0; b < B; b++) {
        int64_t choice = st_rng_below(&ld->rng, (uint32_t)sp->n_windows_choices);
        fill_window(ld, sp, choice, inputs + (size_t)b * ld->T, targets + (size_t)b * ld->T);
    }
}

void loader_val_batch(const Loader *ld, int first, int *inputs, int *targets, uint8_t *classes, int B) {
    for (int b = 0; b < B; b++) {
        int64_t k = ((int64_t)first + b) % ld->n_val_windows;
        if (k < 0) k += ld->n_val_windows;
        if (ld->stream) { /* window k from a seed of its own */
            StRng rng;
            st_rng_seed_indexed(&rng, ld->val_seed, (uint64_t)k);
            stream_window(ld, &rng, inputs + (size_t)b * ld->T, targets + (size_t)b * ld->T,
                          classes ? classes + (size_t)b * ld->T : NULL);
            continue;
        }
        const Split *sp = &ld->data->val;
        if (classes) memset(classes + (size_t)b * ld->T, STREAM_ORDINARY, (size_t)ld->T);
        /* doc: the k-th document start; none/prepend: consecutive windows with stride T */
        int64_t choice = ld->bos == BOS_DOC || ld->bos == BOS_START ? k : k * ld->T;
        fill_window(ld, sp, choice, inputs + (size_t)b * ld->T, targets + (size_t)b * ld->T);
    }
}

uint64_t loader_get_state(const Loader *ld) { return ld->rng.state; }
void loader_set_state(Loader *ld, uint64_t state) { ld->rng.state = state; }
