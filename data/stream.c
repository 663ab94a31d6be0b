/* data/stream.c: the synthetic streams of data/stream.h. */
#include "stream.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shard.h"
#include "tokenizer.h"

struct Stream {
    StreamConfig cfg;
    int V;             /* symbols; BOS = V */
    double *cumul;     /* [V][V] cumulative bigram rows (the last entry of a used row is 1) */
    double *first;     /* [V] cumulative unigram without triggers: a document's first token */
    uint8_t *trigger;  /* [V] bb's fixed triggers */
    int *alive;        /* the symbols that occur, n_alive of them: what induction draws from */
    int n_alive;
};

int stream_vocab_size(const Stream *s) { return s->V + 1; }
int stream_bos_id(const Stream *s) { return s->V; }
int stream_doc_len(const Stream *s) { return s->cfg.doc_len; }
uint64_t stream_seed(const Stream *s) { return s->cfg.seed; }
int stream_is_trigger(const Stream *s, int id) { return id >= 0 && id < s->V && s->trigger[id]; }

/* ---- tables --------------------------------------------------------------------------------- */

/* Gamma(alpha, 1) by Marsaglia and Tsang; alpha < 1 through Gamma(alpha + 1) * U^(1/alpha) */
static double gamma_draw(StRng *rng, double alpha) {
    if (alpha < 1) return gamma_draw(rng, alpha + 1) * pow(1.0 - st_rng_uniform(rng), 1.0 / alpha);
    double d = alpha - 1.0 / 3.0, c = 1.0 / sqrt(9.0 * d);
    for (;;) {
        double x = st_rng_normal(rng), v = 1 + c * x;
        if (v <= 0) continue;
        v = v * v * v;
        double u = 1.0 - st_rng_uniform(rng);
        if (log(u) < 0.5 * x * x + d - d * v + d * log(v)) return d * v;
    }
}

/* weights [V][V] of the table kind; the corpus table also returns the unigram counts */
static double *dirichlet_weights(const StreamConfig *c, StRng *rng) {
    int V = c->vocab;
    double *w = st_malloc(sizeof(double) * (size_t)V * V);
    for (size_t i = 0; i < (size_t)V * V; i++) w[i] = gamma_draw(rng, c->alpha);
    return w;
}

/* each row: `successors` distinct ordinary symbols with weights 0.05 + U(0, 1) */
static double *sparse_weights(const StreamConfig *c, StRng *rng) {
    int V = c->vocab, n_ord = V - c->triggers, S = c->successors;
    double *w = st_calloc((size_t)V * V, sizeof(double));
    int *pool = st_malloc(sizeof(int) * (size_t)n_ord);
    for (int i = 0; i < n_ord; i++) pool[i] = c->triggers + i;
    for (int s = 0; s < V; s++)
        for (int k = 0; k < S; k++) { /* partial shuffle: k distinct picks */
            int j = k + (int)st_rng_below(rng, (uint32_t)(n_ord - k)), t = pool[k];
            pool[k] = pool[j];
            pool[j] = t;
            w[(size_t)s * V + pool[k]] = 0.05 + st_rng_uniform(rng);
        }
    free(pool);
    return w;
}

/* the corpus's bigram counts (pairs across a BOS are skipped); V = its vocab without BOS */
static double *corpus_weights(const char *dir, int *V, char *err) {
    char tok_path[4200], train_path[4200];
    snprintf(tok_path, sizeof tok_path, "%s/tokenizer.bin", dir);
    snprintf(train_path, sizeof train_path, "%s/train.bin", dir);
    Tokenizer *tok;
    if (tokenizer_load(&tok, tok_path, err)) return NULL;
    int vocab = tokenizer_vocab_size(tok), bos = tokenizer_bos_id(tok);
    tokenizer_free(tok);
    if (bos != vocab - 1) {
        st_errorf(err, "%s: stream_bigram corpus: expected a tokenizer whose BOS is its last id, found BOS %d of %d",
                  tok_path, bos, vocab);
        return NULL;
    }
    Shard sh;
    if (shard_read(train_path, &sh, err)) return NULL;
    *V = vocab - 1;
    double *w = st_calloc((size_t)*V * *V, sizeof(double));
    for (int64_t i = 1; i < sh.n_tokens; i++)
        if (sh.tokens[i - 1] != bos && sh.tokens[i] != bos) w[(size_t)sh.tokens[i - 1] * *V + sh.tokens[i]] += 1;
    shard_free(&sh);
    return w;
}

/* rows of weights into cumulative rows; with trigger_prob > 0 the triggers' columns are left out */
static void build_cumulative(Stream *s, const double *w) {
    int V = s->V;
    int drop_triggers = s->cfg.kind == STREAM_BB && s->cfg.trigger_prob > 0;
    for (int a = 0; a < V; a++) {
        double total = 0, run = 0;
        for (int b = 0; b < V; b++) total += drop_triggers && s->trigger[b] ? 0 : w[(size_t)a * V + b];
        for (int b = 0; b < V; b++) {
            run += drop_triggers && s->trigger[b] ? 0 : w[(size_t)a * V + b];
            s->cumul[(size_t)a * V + b] = total > 0 ? run / total : 0; /* an empty row: never used as such */
        }
    }
}

/* the unigram (column sums of the weights) gives the first token (without triggers), the trigger
 * ranking of a corpus table and the symbols that occur at all */
static int build_unigram(Stream *s, const double *w, char *err) {
    int V = s->V;
    double *uni = st_calloc((size_t)V, sizeof(double));
    for (size_t i = 0; i < (size_t)V * V; i++) uni[i % V] += w[i];
    int fixed = s->cfg.kind == STREAM_BB ? s->cfg.triggers : 0; /* induction draws its triggers per document */
    if (s->cfg.bigram == BIGRAM_CORPUS) /* the `triggers` most frequent, ties to the smaller id */
        for (int k = 0; k < fixed; k++) {
            int best = -1;
            for (int b = 0; b < V; b++)
                if (!s->trigger[b] && uni[b] > 0 && (best < 0 || uni[b] > uni[best])) best = b;
            if (best < 0) {
                free(uni);
                return st_errorf(err, "stream_triggers: expected at most the %d symbols the corpus has, found %d", k,
                                 s->cfg.triggers);
            }
            s->trigger[best] = 1;
        }
    else
        for (int k = 0; k < fixed; k++) s->trigger[k] = 1;
    double total = 0, run = 0;
    for (int b = 0; b < V; b++) {
        total += s->trigger[b] ? 0 : uni[b];
        if (uni[b] > 0) s->alive[s->n_alive++] = b;
    }
    for (int b = 0; b < V; b++) s->first[b] = total > 0 ? (run += s->trigger[b] ? 0 : uni[b]) / total : 0;
    free(uni);
    if (total <= 0) return st_errorf(err, "stream_triggers: %d leave no ordinary symbol", s->cfg.triggers);
    return 0;
}

int stream_own_symbols(const StreamConfig *c) { return c->bigram != BIGRAM_CORPUS || c->kind >= STREAM_MARKOV; }

static int check_config(const StreamConfig *c, char *err) {
    if (c->kind < STREAM_BB || c->kind > STREAM_REPEAT)
        return st_errorf(err, "stream: expected bb, induction, markov or repeat for a synthetic stream, found kind %d",
                         c->kind);
    if (c->kind == STREAM_REPEAT && (c->span < 2 || c->span > c->doc_len))
        return st_errorf(err, "stream_span: expected 2 to stream_doc_len (%d), found %d", c->doc_len, c->span);
    int own_symbols = stream_own_symbols(c);
    if (own_symbols && (c->vocab < 2 || c->vocab > 4096))
        return st_errorf(err, "stream_vocab: expected 2 to 4096 symbols, found %d", c->vocab);
    int V = own_symbols ? c->vocab : 1 << 30;
    if (c->doc_len < 2) return st_errorf(err, "stream_doc_len: expected at least 2, found %d", c->doc_len);
    /* bb needs an ordinary symbol to start documents; induction may make every symbol a trigger */
    int most = c->kind == STREAM_BB ? V - 1 : V;
    if (c->triggers < 0 || c->triggers > most)
        return st_errorf(err, "stream_triggers: expected 0 to %d (%s), found %d", most,
                         c->kind == STREAM_BB ? "fewer than the symbols" : "the symbols", c->triggers);
    if (c->kind == STREAM_INDUCTION && c->triggers < 1)
        return st_errorf(err, "stream_triggers: expected at least 1 for stream induction, found %d", c->triggers);
    if (!(c->trigger_prob >= 0 && c->trigger_prob < 1))
        return st_errorf(err, "stream_trigger_prob: expected a number in [0, 1), found %g", c->trigger_prob);
    if (c->kind == STREAM_BB && c->trigger_prob > 0 && c->triggers < 1)
        return st_errorf(err, "stream_trigger_prob: expected 0 when stream_triggers is 0, found %g", c->trigger_prob);
    if (c->lag < 2 || c->lag > c->doc_len)
        return st_errorf(err, "stream_lag: expected 2 to stream_doc_len (%d), found %d", c->doc_len, c->lag);
    if (c->bigram == BIGRAM_SPARSE && c->kind < STREAM_MARKOV) {
        if (c->successors < 1 || c->successors > V - c->triggers)
            return st_errorf(err, "stream_successors: expected 1 to %d (the ordinary symbols), found %d",
                             V - c->triggers, c->successors);
        if (c->kind == STREAM_BB && c->triggers > 0 && c->trigger_prob <= 0)
            return st_errorf(err, "stream_trigger_prob: expected > 0 with stream_bigram sparse (its table never "
                                  "draws a trigger), found %g", c->trigger_prob);
    }
    if (!(c->noise >= 0 && c->noise <= 1))
        return st_errorf(err, "stream_noise: expected a number in [0, 1], found %g", c->noise);
    if ((c->bigram == BIGRAM_DIRICHLET || c->kind == STREAM_MARKOV) && !(c->alpha > 0 && c->alpha <= 1e6))
        return st_errorf(err, "stream_alpha: expected a number in (0, 1e6], found %g", c->alpha);
    return 0;
}

int stream_open(Stream **out, const StreamConfig *c, const char *corpus_dir, char *err) {
    *out = NULL;
    if (check_config(c, err)) return -1;
    StRng rng;
    st_rng_seed(&rng, c->seed);
    int V = c->vocab;
    /* markov and repeat draw no token from the stream's table: it only sets the symbols */
    int bigram = c->kind >= STREAM_MARKOV ? BIGRAM_DIRICHLET : c->bigram;
    double *w = bigram == BIGRAM_CORPUS      ? corpus_weights(corpus_dir, &V, err)
                : bigram == BIGRAM_DIRICHLET ? dirichlet_weights(c, &rng)
                                             : sparse_weights(c, &rng);
    if (!w) return -1;
    Stream *s = st_calloc(1, sizeof *s);
    s->cfg = *c;
    s->V = V;
    s->cumul = st_malloc(sizeof(double) * (size_t)V * V);
    s->first = st_malloc(sizeof(double) * (size_t)V);
    s->trigger = st_calloc((size_t)V, 1);
    s->alive = st_malloc(sizeof(int) * (size_t)V);
    int rc = build_unigram(s, w, err);
    if (rc == 0) build_cumulative(s, w);
    free(w);
    if (rc) {
        stream_free(s);
        return -1;
    }
    *out = s;
    return 0;
}

void stream_free(Stream *s) {
    if (!s) return;
    free(s->cumul);
    free(s->first);
    free(s->trigger);
    free(s->alive);
    free(s);
}

/* ---- documents ------------------------------------------------------------------------------ */

/* the first index whose cumulative value exceeds a uniform draw (binary search) */
static int draw_cumulative(const double *cu, int n, StRng *rng) {
    double u = st_rng_uniform(rng);
    int lo = 0, hi = n - 1;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (u < cu[mid]) hi = mid;
        else lo = mid + 1;
    }
    return lo;
}

/* the bigram successor of `prev`; a row without successors falls back to the first-token unigram */
static int bigram_next(const Stream *s, int prev, StRng *rng) {
    const double *row = s->cumul + (size_t)prev * s->V;
    return row[s->V - 1] > 0 ? draw_cumulative(row, s->V, rng) : draw_cumulative(s->first, s->V, rng);
}

/* the ordinary successor of x_{t-1} under bb: a placed trigger (trigger_prob) or the table */
static int bb_ordinary_next(const Stream *s, int prev, StRng *rng) {
    if (s->cfg.trigger_prob > 0 && st_rng_uniform(rng) < s->cfg.trigger_prob) {
        int k = (int)st_rng_below(rng, (uint32_t)s->cfg.triggers), seen = -1;
        for (int b = 0; b < s->V; b++) /* the k-th trigger symbol */
            if (s->trigger[b] && ++seen == k) return b;
    }
    return bigram_next(s, prev, rng);
}

/* bb: after a trigger (and far enough into the document) the token `lag` back is copied */
static void bb_document(const Stream *s, StRng *rng, int *x, uint8_t *classes) {
    int lag = s->cfg.lag;
    x[0] = draw_cumulative(s->first, s->V, rng);
    for (int t = 1; t < s->cfg.doc_len; t++) {
        int copy = s->trigger[x[t - 1]] && t >= lag;
        x[t] = copy ? x[t - lag] : bb_ordinary_next(s, x[t - 1], rng);
        if (classes) classes[t - 1] = copy ? STREAM_TRIGGER : STREAM_ORDINARY;
    }
    if (classes) classes[s->cfg.doc_len - 1] = STREAM_ORDINARY; /* the next document follows it */
}

/* induction: triggers drawn per document (distinct, from the symbols that occur), each with its
 * output, which follows it unless noise redraws it from the table; a trigger's second and later
 * occurrences are the queries a copy can answer */
static void induction_document(const Stream *s, StRng *rng, int *x, uint8_t *classes) {
    int K = s->cfg.triggers < s->n_alive ? s->cfg.triggers : s->n_alive, n = s->n_alive;
    int *pick = st_malloc(sizeof(int) * (size_t)n), *output = st_malloc(sizeof(int) * (size_t)s->V);
    uint8_t *state = st_calloc((size_t)s->V, 1); /* bit 0: a trigger, bit 1: seen in this document */
    memcpy(pick, s->alive, sizeof(int) * (size_t)n);
    for (int k = 0; k < K; k++) { /* partial shuffle: K distinct triggers */
        int j = k + (int)st_rng_below(rng, (uint32_t)(n - k)), t = pick[k];
        pick[k] = pick[j];
        pick[j] = t;
        state[pick[k]] = 1;
        output[pick[k]] = s->alive[st_rng_below(rng, (uint32_t)n)];
    }
    x[0] = draw_cumulative(s->first, s->V, rng);
    for (int t = 0; t < s->cfg.doc_len; t++) {
        int a = x[t];
        if (classes) classes[t] = state[a] == 3 && t + 1 < s->cfg.doc_len ? STREAM_TRIGGER : STREAM_ORDINARY;
        state[a] |= 2;
        if (t + 1 >= s->cfg.doc_len) break;
        if ((state[a] & 1) && !(s->cfg.noise > 0 && st_rng_uniform(rng) < s->cfg.noise)) x[t + 1] = output[a];
        else if (s->cfg.trigger_prob > 0 && st_rng_uniform(rng) < s->cfg.trigger_prob)
            x[t + 1] = pick[st_rng_below(rng, (uint32_t)K)]; /* one of the document's triggers */
        else x[t + 1] = bigram_next(s, a, rng);
    }
    free(pick);
    free(output);
    free(state);
}

/* markov: a transition table of the document's own, rows from Dirichlet(alpha); a query whose symbol
 * occurred before has in-context evidence (TRIGGER) */
static void markov_document(const Stream *s, StRng *rng, int *x, uint8_t *classes) {
    int V = s->V;
    double *cumul = st_malloc(sizeof(double) * (size_t)V * V);
    uint8_t *seen = st_calloc((size_t)V, 1);
    for (int a = 0; a < V; a++) {
        double total = 0, run = 0, *row = cumul + (size_t)a * V;
        for (int b = 0; b < V; b++) total += row[b] = gamma_draw(rng, s->cfg.alpha);
        for (int b = 0; b < V; b++) row[b] = (run += row[b]) / total;
        row[V - 1] = 1; /* no rounding gap at the top */
    }
    x[0] = (int)st_rng_below(rng, (uint32_t)V);
    for (int t = 0; t < s->cfg.doc_len; t++) {
        if (classes) classes[t] = seen[x[t]] && t + 1 < s->cfg.doc_len ? STREAM_TRIGGER : STREAM_ORDINARY;
        seen[x[t]] = 1;
        if (t + 1 < s->cfg.doc_len) x[t + 1] = draw_cumulative(cumul + (size_t)x[t] * V, V, rng);
    }
    free(cumul);
    free(seen);
}

/* repeat: uniform tokens, and after each one, with probability trigger_prob, a span copied from a
 * uniformly drawn earlier position; a query inside a span (after its first token) can be answered */
static void repeat_document(const Stream *s, StRng *rng, int *x, uint8_t *classes) {
    int n = s->cfg.doc_len, src = 0, left = 0; /* the span being copied: next source, tokens left */
    x[0] = (int)st_rng_below(rng, (uint32_t)s->V);
    if (classes) classes[0] = STREAM_ORDINARY;
    for (int t = 1; t < n; t++) {
        if (left == 0 && st_rng_uniform(rng) < s->cfg.trigger_prob) {
            src = (int)st_rng_below(rng, (uint32_t)t);
            left = s->cfg.span;
        }
        int copying = left > 0;
        x[t] = copying ? x[src++] : (int)st_rng_below(rng, (uint32_t)s->V);
        left -= copying;
        /* position t's query can predict x[t+1] when the span goes on after x[t] */
        if (classes) classes[t] = left > 0 && t + 1 < n ? STREAM_TRIGGER : STREAM_ORDINARY;
    }
}

void stream_document(const Stream *s, StRng *rng, int *tokens, uint8_t *classes) {
    if (s->cfg.kind == STREAM_BB) bb_document(s, rng, tokens, classes);
    else if (s->cfg.kind == STREAM_INDUCTION) induction_document(s, rng, tokens, classes);
    else if (s->cfg.kind == STREAM_MARKOV) markov_document(s, rng, tokens, classes);
    else repeat_document(s, rng, tokens, classes);
}
