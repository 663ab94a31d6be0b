#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "../common/args.h"
#include "../common/binfile.h"
#include "../common/util.h"

typedef enum { KEY_INT, KEY_U64, KEY_FLOAT, KEY_STRING, KEY_CHOICE } KeyType;

/* How a number must lie: lo/hi bounds, each open (strict) or closed; NO_LIMIT for none. */
#define NO_LIMIT 1e300
typedef struct {
    const char *name;
    KeyType type;
    size_t offset;       /* of the field inside TrainConfig */
    size_t size;         /* bytes of a string field */
    const char *def;     /* default as text; NULL = from moe_config_default */
    double lo, hi;
    int lo_open, hi_open;
    const char *choices; /* KEY_CHOICE: "a|b|c", the value stored is the index */
    int runtime;         /* run control only: may differ when a run is resumed */
    const char *help;
} ConfigKey;

#define F(field) offsetof(TrainConfig, field), sizeof(((TrainConfig *)0)->field)
#define M(field) offsetof(TrainConfig, model.field), sizeof(((TrainConfig *)0)->model.field)
#define P(field) offsetof(TrainConfig, probes.field), sizeof(((TrainConfig *)0)->probes.field)
/* model keys: moe_config_validate checks their values, so the table checks only their type */
#define MODEL_INT(name, help) {#name, KEY_INT, M(name), NULL, -NO_LIMIT, NO_LIMIT, 0, 0, NULL, 0, help}
/* a model key with a ceiling the model cannot check: sizes whose products must fit an int */
#define MODEL_INT_MAX(name, hi, help) {#name, KEY_INT, M(name), NULL, -NO_LIMIT, hi, 0, 0, NULL, 0, help}
#define MODEL_FLOAT(name, help) {#name, KEY_FLOAT, M(name), NULL, -NO_LIMIT, NO_LIMIT, 0, 0, NULL, 0, help}

static const ConfigKey KEYS[] = {
    /* model */
    MODEL_INT(vocab_size, "vocabulary size; 0 = the data's tokenizer decides"),
    MODEL_INT_MAX(seq_len, 65536, "tokens per training window (and the longest sequence the model takes)"),
    MODEL_INT(d_model, "width of the residual stream"),
    MODEL_INT(n_layer, "number of transformer blocks"),
    MODEL_INT(n_head, "attention query heads per block"),
    MODEL_INT(n_kv_head, "key/value heads per block (grouped-query attention)"),
    MODEL_INT(head_dim, "channels per head; 0 = d_model / n_head"),
    MODEL_FLOAT(rope_theta, "RoPE base frequency"),
    MODEL_INT(learned_pos, "1 = learned absolute position embeddings added to the token embeddings (GPT-2), no RoPE"),
    MODEL_INT(qk_norm, "1 = RMSNorm of each head's q and k before RoPE (Qwen3)"),
    {"norm", KEY_CHOICE, M(norm), "rms", 0, 0, 0, 0, "rms|layer", 0,
     "the blocks' and the final norm: rms (RMSNorm, Qwen3) or layer (LayerNorm with a bias, GPT-2)"},
    {"mlp", KEY_CHOICE, M(mlp), "swiglu", 0, 0, 0, 0, "swiglu|relu", 0,
     "each expert's MLP: swiglu (w_down (silu(w_gate x) * w_up x), Qwen3) or relu (w_down relu(w_up x))"},
    MODEL_INT(attn_window, "> 0: sliding-window attention, query i sees keys j with i - j < attn_window"),
    MODEL_INT(attn_sink_logit, "1 = a learned per-head logit for an extra always-visible key of value zero"),
    MODEL_INT(attn_gate, "1 = a sigmoid gate on each head's output, computed from the block input"),
    MODEL_INT(n_expert, "experts per MoE block; 1 (with top_k 1) = a dense MLP block"),
    MODEL_INT(top_k, "experts each token is routed to"),
    MODEL_INT(d_ff, "hidden units of each expert"),
    MODEL_INT(norm_topk, "1 = renormalise the top-k routing weights to sum to 1"),
    MODEL_FLOAT(aux_loss_coef, "weight of the load-balancing loss"),
    MODEL_FLOAT(z_loss_coef, "weight of the router z-loss"),
    MODEL_INT(tie_embeddings, "1 = the LM head reuses the token embedding"),
    MODEL_FLOAT(rms_eps, "epsilon of every norm (RMSNorm or LayerNorm)"),
    MODEL_FLOAT(init_std, "standard deviation of the initial weights"),
    MODEL_FLOAT(embed_std, "standard deviation of the initial token and position embeddings; 0 = init_std"),
    {"seed", KEY_U64, M(seed), NULL, 0, NO_LIMIT, 0, 0, NULL, 0,
     "seed of the parameter init and of the training-window stream"},
    /* data */
    {"data_dir", KEY_STRING, F(data_dir), "data/prepared/moby", 0, 0, 0, 0, NULL, 0,
     "prepared data directory (tokenizer.bin, train.bin, val.bin)"},
    {"bos", KEY_CHOICE, F(bos), "none", 0, 0, 0, 0, "none|prepend|doc|start", 0,
     "BOS policy: none (position 0 is an ordinary token), prepend, doc (windows start at a document's BOS), "
     "start (windows start at a document's first token, no BOS)"},
    {"stream", KEY_CHOICE, F(stream.kind), "corpus", 0, 0, 0, 0, "corpus|bb|induction|markov|repeat", 0,
     "token source: corpus (data_dir's shards), or generated on the fly (data/stream.h): bb "
     "(Bigram-Backcopy), induction (per-document triggers), markov (a Markov chain per document), "
     "repeat (uniform tokens with repeated spans)"},
    {"stream_bigram", KEY_CHOICE, F(stream.bigram), "corpus", 0, 0, 0, 0, "corpus|dirichlet|sparse", 0,
     "a stream's bigram table: corpus (data_dir's bigram counts), dirichlet (rows ~ Dirichlet(stream_alpha) "
     "over stream_vocab symbols) or sparse (stream_successors per symbol)"},
    {"stream_vocab", KEY_INT, F(stream.vocab), "64", 2, 4096, 0, 0, NULL, 0,
     "symbols of a dirichlet or sparse table (the vocab is this + 1 for BOS)"},
    {"stream_doc_len", KEY_INT, F(stream.doc_len), "256", 2, NO_LIMIT, 0, 0, NULL, 0,
     "tokens per generated document, BOS not counted"},
    {"stream_triggers", KEY_INT, F(stream.triggers), "3", 0, NO_LIMIT, 0, 0, NULL, 0,
     "bb: trigger symbols (the most frequent of a corpus table, else symbols 0..k-1); induction: triggers "
     "drawn per document"},
    {"stream_trigger_prob", KEY_FLOAT, F(stream.trigger_prob), "0", 0, 1, 0, 1, NULL, 0,
     "bb: 0 = triggers occur as the table draws them; > 0 = a trigger follows an ordinary token with this "
     "probability (the table then never draws one); induction: the same for the document's triggers; "
     "repeat: the chance that a repeated span starts after a token"},
    {"stream_lag", KEY_INT, F(stream.lag), "2", 2, NO_LIMIT, 0, 0, NULL, 0,
     "bb: after a trigger at t-1, x_t = x_{t-lag} (2: the token before the trigger)"},
    {"stream_successors", KEY_INT, F(stream.successors), "4", 1, NO_LIMIT, 0, 0, NULL, 0,
     "sparse table: successors per symbol"},
    {"stream_alpha", KEY_FLOAT, F(stream.alpha), "1", 0, 1e6, 1, 0, NULL, 0,
     "dirichlet table and markov: concentration of each row (small = peaked rows)"},
    {"stream_noise", KEY_FLOAT, F(stream.noise), "0", 0, 1, 0, 0, NULL, 0,
     "induction: chance that a trigger's successor is drawn from the table instead of its output"},
    {"stream_span", KEY_INT, F(stream.span), "8", 2, NO_LIMIT, 0, 0, NULL, 0,
     "repeat: tokens per repeated span"},
    {"stream_seed", KEY_U64, F(stream.seed), "1", 0, NO_LIMIT, 0, 0, NULL, 0,
     "seed of a stream's tables and validation windows (the training windows follow `seed`)"},
    /* optimizer and schedule */
    {"batch_size", KEY_INT, F(batch_size), "16", 1, 4096, 0, 0, NULL, 0, "sequences per micro-batch"},
    {"grad_accum", KEY_INT, F(grad_accum), "1", 1, 65536, 0, 0, NULL, 0,
     "micro-batches whose gradients are summed into one step"},
    {"steps", KEY_INT, F(steps), "1000", 1, NO_LIMIT, 0, 0, NULL, 0, "optimizer steps of the whole run"},
    {"lr", KEY_FLOAT, F(lr), "0.001", 0, NO_LIMIT, 1, 0, NULL, 0, "peak learning rate"},
    {"min_lr_ratio", KEY_FLOAT, F(min_lr_ratio), "0.1", 0, 1, 0, 0, NULL, 0,
     "final learning rate as a fraction of lr (cosine, wsd)"},
    {"warmup_steps", KEY_INT, F(warmup_steps), "100", 0, NO_LIMIT, 0, 0, NULL, 0,
     "steps of linear warmup from 0 to lr"},
    {"schedule", KEY_CHOICE, F(schedule), "cosine", 0, 0, 0, 0, "cosine|wsd|constant", 0,
     "learning-rate schedule after warmup"},
    {"decay_frac", KEY_FLOAT, F(decay_frac), "0.2", 0, 1, 0, 0, NULL, 0,
     "wsd: fraction of the steps, at the end, of linear decay to min_lr_ratio * lr"},
    {"weight_decay", KEY_FLOAT, F(weight_decay), "0.1", 0, NO_LIMIT, 0, 0, NULL, 0,
     "AdamW decoupled weight decay (matrices and embeddings; never norm gains)"},
    {"beta1", KEY_FLOAT, F(beta1), "0.9", 0, 1, 0, 1, NULL, 0, "AdamW first-moment decay"},
    {"beta2", KEY_FLOAT, F(beta2), "0.95", 0, 1, 0, 1, NULL, 0, "AdamW second-moment decay"},
    {"eps", KEY_FLOAT, F(eps), "1e-8", 0, NO_LIMIT, 1, 0, NULL, 0, "AdamW epsilon"},
    {"grad_clip", KEY_FLOAT, F(grad_clip), "1.0", 0, NO_LIMIT, 0, 0, NULL, 0,
     "clip the global gradient norm to this; 0 = no clipping"},
    /* run */
    {"spike_guard", KEY_FLOAT, F(spike_guard), "0", 0, NO_LIMIT, 0, 0, NULL, 0,
     "> 0: skip the update of a step whose gradient norm exceeds spike_guard x the median of the last 32 "
     "steps' (logged as skipped); 0 = off"},
    {"run_name", KEY_STRING, F(run_name), "default", 0, 0, 0, 0, NULL, 1,
     "name of the run directory <out_dir>/<run_name> (letters, digits, . _ -)"},
    {"out_dir", KEY_STRING, F(out_dir), "runs", 0, 0, 0, 0, NULL, 1, "where run directories are made"},
    {"eval_every", KEY_INT, F(eval_every), "100", 0, NO_LIMIT, 0, 0, NULL, 1,
     "validation loss every this many steps (and at the end); 0 = only at the end"},
    {"eval_batches", KEY_INT, F(eval_batches), "8", 1, 4096, 0, 0, NULL, 1,
     "batches of fixed validation windows per evaluation"},
    {"log_every", KEY_INT, F(log_every), "10", 1, NO_LIMIT, 0, 0, NULL, 1,
     "a train.jsonl line (and a console line when not a terminal) every this many steps"},
    {"ckpt_every", KEY_INT, F(ckpt_every), "500", 0, NO_LIMIT, 0, 0, NULL, 1,
     "checkpoint every this many steps (and at the end); 0 = only at the end"},
    {"keep_ckpts", KEY_INT, F(keep_ckpts), "2", 1, NO_LIMIT, 0, 0, NULL, 1, "how many latest checkpoints to keep"},
    {"threads", KEY_INT, F(threads), "0", 0, 1024, 0, 0, NULL, 1,
     "OpenMP threads; 0 = OpenMP's default (bit-identical results need the same count)"},
    /* probes */
    {"probe_every", KEY_INT, P(every), "100", 0, NO_LIMIT, 0, 0, NULL, 1,
     "probe the sink every this many steps (after the early log-spaced probes); 0 = only step 0, the "
     "early probes and the last step"},
    {"probe_n", KEY_INT, P(n), "64", PROBE_MIN_N, 4096, 0, 0, NULL, 1, "held-out windows in the probe set"},
    {"probe_len", KEY_INT, P(len), "64", PROBE_MIN_LEN, 65536, 0, 0, NULL, 1, "tokens per probe window"},
    {"probe_schedule", KEY_CHOICE, P(schedule), "log", 0, 0, 0, 0, "log|linear", 1,
     "log = log-spaced early probes then every probe_every; linear = every probe_every only"},
    {"probe_shift", KEY_INT, P(shift), "8", 1, 65536, 0, 0, NULL, 1,
     "random tokens prepended in the `shifted` probe variant (below probe_len)"},
};
#define N_KEYS ((int)(sizeof KEYS / sizeof KEYS[0]))

static const ConfigKey *find_key(const char *name) {
    for (int i = 0; i < N_KEYS; i++)
        if (strcmp(KEYS[i].name, name) == 0) return &KEYS[i];
    return NULL;
}

/* the index of `value` in "a|b|c", or -1 */
static int choice_index(const char *choices, const char *value) {
    size_t n = strlen(value);
    int i = 0;
    for (const char *p = choices;; i++) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && strncmp(p, value, n) == 0) return i;
        if (!bar) return -1;
        p = bar + 1;
    }
}

/* writes the i-th choice of "a|b|c" into buf */
static void choice_name(const char *choices, int index, char *buf, size_t size) {
    const char *p = choices;
    for (int i = 0; i < index && p; i++) {
        p = strchr(p, '|');
        if (p) p++;
    }
    if (!p) p = "?";
    const char *bar = strchr(p, '|');
    int len = bar ? (int)(bar - p) : (int)strlen(p);
    snprintf(buf, size, "%.*s", len, p);
}

/* "an integer >= 1", "a number in [0, 1)", "a number > 0": what a key's range asks for */
static void describe_range(const ConfigKey *k, char *buf, size_t size) {
    const char *what = k->type == KEY_FLOAT ? "a number" : "an integer";
    int has_lo = k->lo > -NO_LIMIT, has_hi = k->hi < NO_LIMIT;
    if (has_lo && has_hi)
        snprintf(buf, size, "%s in %c%g, %g%c", what, k->lo_open ? '(' : '[', k->lo, k->hi, k->hi_open ? ')' : ']');
    else if (has_lo) snprintf(buf, size, "%s %s %g", what, k->lo_open ? ">" : ">=", k->lo);
    else if (has_hi) snprintf(buf, size, "%s %s %g", what, k->hi_open ? "<" : "<=", k->hi);
    else snprintf(buf, size, "%s", what);
}

static int in_range(const ConfigKey *k, double v) {
    if (k->lo_open ? !(v > k->lo) : !(v >= k->lo)) return 0;
    if (k->hi_open ? !(v < k->hi) : !(v <= k->hi)) return 0;
    return 1;
}

static int parse_number(const ConfigKey *k, const char *value, void *field, const char *origin, char *err) {
    char want[96];
    describe_range(k, want, sizeof want);
    char *end;
    errno = 0;
    /* plain decimals only: integers are digits ("1.5", "1e3" refused), no number is hex, inf or nan */
    int decimal = args_is_decimal(value, k->type == KEY_FLOAT);
    double v = decimal ? strtod(value, &end) : 0;
    if (!decimal || errno == ERANGE || !isfinite(v) || !in_range(k, v))
        return st_errorf(err, "%s: %s: expected %s, found '%s'", origin, k->name, want, value);
    if (k->type == KEY_FLOAT) {
        if (fabs(v) > FLT_MAX) return st_errorf(err, "%s: %s: %s does not fit a float", origin, k->name, value);
        *(float *)field = (float)v;
    } else if (k->type == KEY_U64) {
        if (value[0] == '-') return st_errorf(err, "%s: %s: expected %s, found '%s'", origin, k->name, want, value);
        errno = 0;
        unsigned long long u = strtoull(value, &end, 10);
        if (errno == ERANGE) return st_errorf(err, "%s: %s: %s does not fit 64 bits", origin, k->name, value);
        *(uint64_t *)field = (uint64_t)u;
    } else {
        if (v < -2147483647.0 || v > 2147483647.0)
            return st_errorf(err, "%s: %s: %s does not fit an int", origin, k->name, value);
        *(int *)field = (int)v;
    }
    return 0;
}

int config_set(TrainConfig *c, const char *key, const char *value, const char *origin, char *err) {
    const ConfigKey *k = find_key(key);
    if (!k) return st_errorf(err, "%s: unknown config key '%s' (bin/train --help lists them)", origin, key);
    void *field = (char *)c + k->offset;
    switch (k->type) {
    case KEY_STRING:
        if (value[0] == 0) return st_errorf(err, "%s: %s: expected a non-empty text, found ''", origin, key);
        if (strlen(value) >= k->size)
            return st_errorf(err, "%s: %s: expected at most %zu characters, found %zu", origin, key, k->size - 1,
                             strlen(value));
        snprintf(field, k->size, "%s", value);
        return 0;
    case KEY_CHOICE: {
        int i = choice_index(k->choices, value);
        if (i < 0) return st_errorf(err, "%s: %s: expected one of %s, found '%s'", origin, key, k->choices, value);
        *(int *)field = i;
        return 0;
    }
    default:
        return parse_number(k, value, field, origin, err);
    }
}

/* the shortest %g text that reads back as exactly the same float (0.002, not 0.00200000009) */
static void format_float(float v, char *buf, size_t size) {
    for (int digits = 6; digits <= 9; digits++) {
        snprintf(buf, size, "%.*g", digits, (double)v);
        if (strtof(buf, NULL) == v) return;
    }
}

int config_get(const TrainConfig *c, const char *key, char *buf, size_t size) {
    const ConfigKey *k = find_key(key);
    if (!k) return -1;
    const void *field = (const char *)c + k->offset;
    switch (k->type) {
    case KEY_INT: snprintf(buf, size, "%d", *(const int *)field); break;
    case KEY_U64: snprintf(buf, size, "%llu", (unsigned long long)*(const uint64_t *)field); break;
    case KEY_FLOAT: format_float(*(const float *)field, buf, size); break;
    case KEY_STRING: snprintf(buf, size, "%s", (const char *)field); break;
    case KEY_CHOICE: choice_name(k->choices, *(const int *)field, buf, size); break;
    }
    return 0;
}

void config_defaults(TrainConfig *c) {
    memset(c, 0, sizeof *c);
    moe_config_default(&c->model);
    c->model.vocab_size = 0; /* decided by the data's tokenizer unless set */
    char err[ST_ERR_LEN];
    for (int i = 0; i < N_KEYS; i++)
        if (KEYS[i].def && config_set(c, KEYS[i].name, KEYS[i].def, "default", err) != 0) {
            fprintf(stderr, "internal error: %s\n", err); /* a typo in the table above */
            exit(1);
        }
}

int config_parse_lines(const char *text, const char *origin, ConfigLineFn fn, void *ctx, char *err) {
    char line[2048], where[600];
    int line_no = 0;
    for (const char *p = text; *p;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        line_no++;
        snprintf(where, sizeof where, "%s:%d", origin, line_no);
        if (len >= sizeof line) return st_errorf(err, "%s: line longer than %zu characters", where, sizeof line - 1);
        memcpy(line, p, len);
        line[len] = 0;
        p += len + (nl != NULL);
        char *hash = strchr(line, '#');
        if (hash) *hash = 0;
        char *s = st_trim(line);
        if (!*s) continue;
        char *eq = strchr(s, '=');
        if (eq) *eq = 0;
        if (fn(ctx, st_trim(s), eq ? st_trim(eq + 1) : NULL, where, err)) return -1;
    }
    return 0;
}

typedef struct {
    TrainConfig *c;
    unsigned char seen[sizeof KEYS / sizeof KEYS[0]];
} LoadCtx;

static int load_line(void *ctx, const char *key, const char *value, const char *where, char *err) {
    LoadCtx *lc = ctx;
    if (!value) return st_errorf(err, "%s: expected 'key = value', found '%s'", where, key);
    const ConfigKey *k = find_key(key);
    if (k && lc->seen[k - KEYS]++) return st_errorf(err, "%s: %s: key given twice", where, key);
    return config_set(lc->c, key, value, where, err);
}

int config_load_text(TrainConfig *c, const char *text, const char *origin, char *err) {
    LoadCtx lc = {.c = c};
    return config_parse_lines(text, origin, load_line, &lc, err);
}

/* Reads to the end of the stream rather than to the size stat reports, which is 0 for a pipe
 * (`--config <(...)`, /dev/stdin). */
char *config_read_file(const char *path, char *err) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        st_errorf(err, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    size_t len = 0, cap = 4096;
    char *text = st_malloc(cap);
    for (size_t got; (got = fread(text + len, 1, cap - 1 - len, f)) > 0;) {
        len += got;
        if (len == cap - 1) text = st_realloc(text, cap *= 2);
    }
    text[len] = 0;
    int rc = 0;
    if (ferror(f)) rc = st_errorf(err, "%s: reading config text: %s", path, strerror(errno));
    else if (strlen(text) != len) rc = st_errorf(err, "%s: expected a text file, found a NUL byte", path);
    fclose(f);
    if (rc) {
        free(text);
        return NULL;
    }
    return text;
}

int config_load_file(TrainConfig *c, const char *path, char *err) {
    char *text = config_read_file(path, err);
    if (!text) return -1;
    int rc = config_load_text(c, text, path, err);
    free(text);
    return rc;
}

/* a run name becomes a directory name: keep it to a safe alphabet */
static int check_run_name(const char *name, char *err) {
    /* "-x" or "--x" would read as a flag wherever the name is passed on (bin/sweep's commands) */
    if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0 || name[0] == '-')
        return st_errorf(err, "run_name: expected a directory name not starting with '-', found '%s'", name);
    for (const char *p = name; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '.' && *p != '_' && *p != '-')
            return st_errorf(err, "run_name: expected letters, digits, '.', '_' or '-', found '%s'", name);
    return 0;
}

int config_validate(TrainConfig *c, char *err) {
    if (check_run_name(c->run_name, err)) return -1;
    if (c->warmup_steps > c->steps)
        return st_errorf(err, "warmup_steps: expected at most steps (%d), found %d", c->steps, c->warmup_steps);
    /* vocab_size 0 is resolved when the data opens; validate the rest with a stand-in */
    MoeConfig model = c->model;
    if (model.vocab_size == 0) model.vocab_size = 257;
    if (moe_config_validate(&model, err)) return -1;
    c->model.head_dim = model.head_dim;
    return probe_config_check("config", &c->probes, c->model.seq_len, err);
}

int config_write(const TrainConfig *c, FILE *f, const char *path, char *err) {
    char value[600];
    for (int i = 0; i < N_KEYS; i++) {
        config_get(c, KEYS[i].name, value, sizeof value);
        if (fprintf(f, "%-15s = %-24s # %s\n", KEYS[i].name, value, KEYS[i].help) < 0)
            return st_errorf(err, "%s: write failed: %s", path, strerror(errno));
    }
    return 0;
}

char *config_to_text(const TrainConfig *c) {
    size_t cap = 64 * 1024, len = 0;
    char *text = st_malloc(cap), value[600];
    text[0] = 0;
    for (int i = 0; i < N_KEYS; i++) {
        config_get(c, KEYS[i].name, value, sizeof value);
        len += (size_t)snprintf(text + len, cap - len, "%s = %s\n", KEYS[i].name, value);
    }
    return text;
}

int config_compare(const TrainConfig *stored, const TrainConfig *run, const char *origin, char *err) {
    char a[600], b[600];
    for (int i = 0; i < N_KEYS; i++) {
        if (KEYS[i].runtime) continue;
        config_get(stored, KEYS[i].name, a, sizeof a);
        config_get(run, KEYS[i].name, b, sizeof b);
        if (strcmp(a, b) != 0)
            return st_errorf(err, "%s: config key %s differs: the checkpoint has %s, this run has %s", origin,
                             KEYS[i].name, a, b);
    }
    return 0;
}

void config_print_help(FILE *f) {
    TrainConfig c;
    config_defaults(&c);
    char value[600], what[96];
    fprintf(f, "config keys (in a --config file as `key = value`, or as flags `--key value`; flags win):\n");
    for (int i = 0; i < N_KEYS; i++) {
        const ConfigKey *k = &KEYS[i];
        config_get(&c, k->name, value, sizeof value);
        if (k->type == KEY_CHOICE) snprintf(what, sizeof what, "%s", k->choices);
        else if (k->type == KEY_STRING) snprintf(what, sizeof what, "text");
        else describe_range(k, what, sizeof what);
        fprintf(f, "  --%-15s %-20s default %-20s %s\n", k->name, what, value, k->help);
    }
}
