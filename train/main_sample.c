/* bin/sample: generates text from the latest checkpoint of a run, to see what the model learned.
 *   bin/sample runs/NAME [--prompt TEXT] [--tokens N] [--temperature T] [--top_k K] [--seed S]
 * A run on a synthetic stream of its own symbols takes a prompt of symbol ids ("3 7 12") and prints
 * symbols as <s3>. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/args.h"
#include "../common/util.h"
#include "../data/loader.h"
#include "../data/stream.h"
#include "../data/tokenizer.h"
#include "../model/moe.h"
#include "checkpoint.h"
#include "config.h"
#include "sample.h"

typedef struct {
    const char *run_dir, *prompt;
    long tokens, top_k;
    double temperature;
    unsigned long long seed;
} SampleArgs;

static void usage(FILE *f) {
    fprintf(f, "usage: bin/sample RUN_DIR [--prompt TEXT] [--tokens N] [--temperature T] [--top_k K] [--seed S]\n"
               "Generates --tokens tokens (default 200) after the prompt from the run's latest checkpoint.\n");
}

/* one `--flag value` pair */
static int parse_flag(SampleArgs *a, const char *flag, const char *v, char *err) {
    long long x;
    if (strcmp(flag, "--prompt") == 0) a->prompt = v;
    else if (strcmp(flag, "--tokens") == 0) {
        if (args_int(flag, v, 1, 1000000, &x, err)) return -1;
        a->tokens = (long)x;
    } else if (strcmp(flag, "--top_k") == 0) {
        if (args_int(flag, v, 0, 1000000000, &x, err)) return -1;
        a->top_k = (long)x;
    } else if (strcmp(flag, "--temperature") == 0) {
        if (args_number(flag, v, 0, 100, &a->temperature, err)) return -1;
    } else if (strcmp(flag, "--seed") == 0) {
        if (args_int(flag, v, 0, INT64_MAX, &x, err)) return -1;
        a->seed = (unsigned long long)x;
    } else {
        return st_errorf(err, "unknown flag '%s' (expected --prompt, --tokens, --temperature, --top_k, --seed)", flag);
    }
    return 0;
}

static int parse_args(int argc, char **argv, SampleArgs *a, char *err) {
    *a = (SampleArgs){NULL, "The ", 200, 40, 0.8, 1};
    if (args_check_repeats(argc, argv, err)) return -1;
    for (int i = 1; i < argc; i++) {
        const char *value;
        if (strncmp(argv[i], "--", 2) != 0) {
            if (a->run_dir)
                return st_errorf(err, "expected one run directory, found '%s' and '%s'", a->run_dir, argv[i]);
            a->run_dir = argv[i];
        } else if (args_value(argc, argv, i, &value, err) || parse_flag(a, argv[i], value, err)) {
            return -1;
        } else {
            i++;
        }
    }
    if (!a->run_dir) return st_errorf(err, "expected a run directory, e.g. bin/sample runs/default");
    return 0;
}

/* builds the model of the run's latest checkpoint and its tokenizer */
static int load_run(const char *run_dir, TrainConfig *cfg, Moe *m, Tokenizer **tok, char *err) {
    char path[4200], tok_path[4200];
    CkptState s;
    if (ckpt_open_model(run_dir, -1, cfg, m, &s, path, sizeof path, err)) return -1;
    /* a synthetic stream of its own symbols has no tokenizer file: its ids are the symbols, BOS last */
    if (cfg->stream.kind != STREAM_CORPUS && stream_own_symbols(&cfg->stream)) {
        *tok = tokenizer_new_symbols(cfg->model.vocab_size - 1);
    } else {
        snprintf(tok_path, sizeof tok_path, "%s/tokenizer.bin", cfg->data_dir);
        if (tokenizer_load(tok, tok_path, err)) return -1;
    }
    fprintf(stderr, "%s: step %lld, validation loss %.4f\n", path, (long long)s.step, s.last_val_loss);
    return 0;
}

static void print_token(const Tokenizer *tok, int id) {
    const uint8_t *bytes;
    size_t n = tokenizer_token_bytes(tok, id, &bytes);
    fwrite(bytes, 1, n, stdout);
    fflush(stdout);
}

/* a symbol stream's prompt: symbol ids separated by spaces, e.g. "3 7 12" */
static int parse_symbols(const char *prompt, int n_symbols, int *ids, int *n, char *err) {
    for (const char *p = prompt; *p;) {
        char *end;
        errno = 0;
        long id = strtol(p, &end, 10);
        if (end == p || errno || id < 0 || id >= n_symbols)
            return st_errorf(err, "--prompt: expected symbol ids 0 to %d separated by spaces (the run trains on "
                                  "symbols), found '%s'", n_symbols - 1, prompt);
        ids[(*n)++] = (int)id;
        for (p = end; *p == ' '; p++) {}
    }
    return 0;
}

/* encodes the prompt the way the model saw its training windows: BOS first when it trained with one */
static int encode_prompt(const Tokenizer *tok, const TrainConfig *cfg, const char *prompt, int *ids, int *n,
                         char *err) {
    *n = 0;
    if (cfg->bos == BOS_PREPEND || cfg->bos == BOS_DOC) ids[(*n)++] = tokenizer_bos_id(tok);
    if (tokenizer_kind(tok) == TOK_SYMBOLS) {
        if (parse_symbols(prompt, tokenizer_vocab_size(tok) - 1, ids, n, err)) return -1;
    } else {
        *n += (int)tokenizer_encode(tok, (const uint8_t *)prompt, strlen(prompt), ids + *n);
    }
    if (*n == 0) return st_errorf(err, "--prompt: expected at least one token (the run trains without BOS), found ''");
    return 0;
}

int main(int argc, char **argv) {
    st_openmp_wait_passively(argv);
    char err[ST_ERR_LEN];
    SampleArgs a;
    TrainConfig cfg;
    Moe m = {0};
    Tokenizer *tok = NULL;
    if (args_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    if (parse_args(argc, argv, &a, err) || load_run(a.run_dir, &cfg, &m, &tok, err)) {
        fprintf(stderr, "error: %s\n", err);
        moe_free(&m);
        return 2;
    }
    int T_max = cfg.model.seq_len, V = cfg.model.vocab_size, n;
    int *ids = st_malloc(sizeof(int) * (strlen(a.prompt) + 1 + (size_t)a.tokens));
    int rc = encode_prompt(tok, &cfg, a.prompt, ids, &n, err);
    if (rc == 0) {
        fputs(a.prompt, stdout);
        StRng rng;
        st_rng_seed(&rng, a.seed);
        for (long i = 0; i < a.tokens; i++) {
            /* the model sees at most seq_len tokens: the latest ones */
            int T = n < T_max ? n : T_max;
            moe_forward(&m, ids + n - T, NULL, 1, T, NULL);
            ids[n] = sample_next(m.logits + (size_t)(T - 1) * V, V, (float)a.temperature, (int)a.top_k, &rng);
            print_token(tok, ids[n++]);
        }
        putchar('\n');
    } else {
        fprintf(stderr, "error: %s\n", err);
    }
    free(ids);
    tokenizer_free(tok);
    moe_free(&m);
    return rc ? 2 : 0;
}
