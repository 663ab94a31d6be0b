/* data/main_prepare.c: bin/prepare, text (or the synthetic Bigram-Backcopy stream) to a data directory
 * with tokenizer.bin, train.bin and val.bin.
 *
 *   bin/prepare --input PATH... --out DIR [--tokenizer byte|bpe] [--vocab N] [--val_frac F] [--seed S]
 *               [--doc_bytes N]
 *   bin/prepare --synthetic bb --out DIR [--vocab V] [--triggers K] [--trigger_prob P] [--successors S]
 *               [--tokens N] [--doc_len L] [--val_frac F] [--seed S]
 *   bin/prepare --check DIR      exit 0 when DIR's three files read back whole (format and checksum)
 * The synthetic corpus is data/stream.h's Bigram-Backcopy with a sparse table, written to shards (a
 * finite corpus; bin/train can also draw the same kind of stream fresh, with the stream_* keys). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../common/args.h"
#include "../common/binfile.h"
#include "../common/util.h"
#include "bpe.h"
#include "corpus.h"
#include "shard.h"
#include "stream.h"
#include "tokenizer.h"

#define MAX_INPUTS 4096

typedef struct {
    const char *inputs[MAX_INPUTS];
    int n_inputs;
    const char *out, *tokenizer, *synthetic;
    long vocab; /* -1: the default of the tokenizer or generator */
    double val_frac;
    uint64_t seed;
    long doc_bytes, triggers, successors, doc_len;
    double trigger_prob;
    long long tokens;
} Options;

static void usage(FILE *f) {
    fprintf(f,
            "usage: bin/prepare --input PATH... --out DIR [--tokenizer byte|bpe] [--vocab N] [--val_frac F]\n"
            "                   [--seed S] [--doc_bytes N]\n"
            "       bin/prepare --synthetic bb --out DIR [--vocab V] [--triggers K] [--trigger_prob P]\n"
            "                   [--successors S] [--tokens N] [--doc_len L] [--val_frac F] [--seed S]\n"
            "       bin/prepare --check DIR   (exit 0 when DIR's files read back whole, else 1)\n");
}

/* one flag and its value(s); returns how many arguments it used, or -1 */
static int parse_flag(Options *o, int argc, char **argv, int i, char *err) {
    const char *f = argv[i];
    if (strcmp(f, "--input") == 0) {
        int k = i + 1;
        for (; k < argc && strncmp(argv[k], "--", 2) != 0; k++) {
            if (o->n_inputs == MAX_INPUTS) return st_errorf(err, "--input: expected at most %d paths", MAX_INPUTS);
            o->inputs[o->n_inputs++] = argv[k];
        }
        if (k == i + 1) return st_errorf(err, "--input: expected at least one path, found none");
        return k - i;
    }
    const char *v;
    if (args_value(argc, argv, i, &v, err)) return -1;
    long long x;
    if (strcmp(f, "--out") == 0) o->out = v;
    else if (strcmp(f, "--tokenizer") == 0) o->tokenizer = v;
    else if (strcmp(f, "--synthetic") == 0) o->synthetic = v;
    else if (strcmp(f, "--val_frac") == 0) return args_number(f, v, 0, 1, &o->val_frac, err) ? -1 : 2;
    else if (strcmp(f, "--trigger_prob") == 0) return args_number(f, v, 0, 1, &o->trigger_prob, err) ? -1 : 2;
    else if (strcmp(f, "--seed") == 0) {
        if (args_int(f, v, 0, INT64_MAX, &x, err)) return -1;
        o->seed = (uint64_t)x;
    } else if (strcmp(f, "--tokens") == 0) {
        if (args_int(f, v, 1, (long long)1 << 40, &o->tokens, err)) return -1;
    } else {
        long *dst = strcmp(f, "--vocab") == 0        ? &o->vocab
                    : strcmp(f, "--doc_bytes") == 0  ? &o->doc_bytes
                    : strcmp(f, "--triggers") == 0   ? &o->triggers
                    : strcmp(f, "--successors") == 0 ? &o->successors
                    : strcmp(f, "--doc_len") == 0    ? &o->doc_len
                                                     : NULL;
        if (!dst) return st_errorf(err, "%s: unknown flag", f);
        if (args_int(f, v, 0, INT32_MAX, &x, err)) return -1;
        *dst = (long)x;
    }
    return 2;
}

static int parse_options(Options *o, int argc, char **argv, char *err) {
    *o = (Options){.tokenizer = "byte", .vocab = -1, .val_frac = 0.1, .seed = 1, .triggers = 3, .successors = 3,
                   .doc_len = 256, .trigger_prob = 0.1, .tokens = 2000000};
    if (args_check_repeats(argc, argv, err)) return -1;
    for (int i = 1; i < argc;) {
        int used = parse_flag(o, argc, argv, i, err);
        if (used < 0) return -1;
        i += used;
    }
    if (!o->out) return st_errorf(err, "--out: expected a directory, found none");
    if (o->synthetic && strcmp(o->synthetic, "bb") != 0)
        return st_errorf(err, "--synthetic: expected bb (Bigram-Backcopy), found '%s'", o->synthetic);
    if (!o->synthetic && o->n_inputs == 0) return st_errorf(err, "--input: expected at least one path, found none");
    if (strcmp(o->tokenizer, "byte") != 0 && strcmp(o->tokenizer, "bpe") != 0)
        return st_errorf(err, "--tokenizer: expected byte or bpe, found '%s'", o->tokenizer);
    if (strcmp(o->tokenizer, "byte") == 0 && !o->synthetic && o->vocab >= 0 && o->vocab != 257)
        return st_errorf(err, "--vocab: the byte tokenizer has vocab 257, found %ld (use --tokenizer bpe)", o->vocab);
    if (strcmp(o->tokenizer, "bpe") == 0 && o->vocab >= 0 &&
        (o->vocab < BPE_FIRST_MERGE_ID || o->vocab > BPE_FIRST_MERGE_ID + (1 << 20)))
        return st_errorf(err, "--vocab: expected %d to %d for BPE, found %ld", BPE_FIRST_MERGE_ID,
                         BPE_FIRST_MERGE_ID + (1 << 20), o->vocab);
    return 0;
}

static int write_outputs(const char *dir, const Tokenizer *tok, const int *train, int64_t n_train, const int *val,
                         int64_t n_val, char *err) {
    char path[4200];
    snprintf(path, sizeof path, "%s/tokenizer.bin", dir);
    if (tokenizer_save(tok, path, err)) return -1;
    int vocab = tokenizer_vocab_size(tok), bos = tokenizer_bos_id(tok);
    snprintf(path, sizeof path, "%s/train.bin", dir);
    if (shard_write(path, train, n_train, vocab, bos, err)) return -1;
    snprintf(path, sizeof path, "%s/val.bin", dir);
    return shard_write(path, val, n_val, vocab, bos, err);
}

/* the byte tokenizer, or BPE learned from the training documents only (validation text stays unseen) */
static int build_tokenizer(const Options *o, const Corpus *c, const uint8_t *is_val, Tokenizer **tok, char *err) {
    if (strcmp(o->tokenizer, "byte") == 0) {
        *tok = tokenizer_new_bytes();
        return 0;
    }
    long vocab = o->vocab < 0 ? 4096 : o->vocab;
    const uint8_t **docs = st_malloc((size_t)c->n * sizeof *docs);
    size_t *lens = st_malloc((size_t)c->n * sizeof *lens);
    int n = 0;
    for (int i = 0; i < c->n; i++)
        if (!is_val[i]) {
            docs[n] = c->doc[i];
            lens[n++] = c->len[i];
        }
    double t0 = st_now_seconds();
    int32_t *merges;
    int want = (int)vocab - BPE_FIRST_MERGE_ID;
    int got = bpe_train(docs, lens, n, want, &merges);
    printf("BPE: %d merges learned from the %d training documents in %.2f s (vocab %d)\n", got, n,
           st_now_seconds() - t0, BPE_FIRST_MERGE_ID + got);
    if (got < want) printf("BPE: note: the corpus ran out of pairs before the requested vocab %ld\n", vocab);
    int rc = tokenizer_new_bpe(tok, merges, got, "BPE training", err);
    free(merges);
    free(docs);
    free(lens);
    return rc;
}

static int prepare_text(const Options *o, char *err) {
    double t0 = st_now_seconds();
    Corpus c = {0};
    int rc = 0;
    for (int i = 0; i < o->n_inputs && rc == 0; i++) rc = corpus_add_path(&c, o->inputs[i], (size_t)o->doc_bytes, err);
    uint8_t *is_val = st_malloc((size_t)(c.n ? c.n : 1));
    if (rc == 0) rc = corpus_split(c.n, o->val_frac, o->seed, is_val, err);
    Tokenizer *tok = NULL;
    if (rc == 0) rc = build_tokenizer(o, &c, is_val, &tok, err);
    if (rc == 0) {
        double t1 = st_now_seconds();
        int64_t n_train, n_val;
        int *train = corpus_encode(&c, tok, is_val, 0, &n_train);
        int *val = corpus_encode(&c, tok, is_val, 1, &n_val);
        double enc = st_now_seconds() - t1;
        int n_val_docs = 0;
        for (int i = 0; i < c.n; i++) n_val_docs += is_val[i];
        int64_t tokens = n_train + n_val - c.n; /* BOS excluded */
        printf("%d documents (%d train, %d val), %lld bytes -> %lld tokens + %d BOS, %.3f bytes/token, vocab %d\n",
               c.n, c.n - n_val_docs, n_val_docs, (long long)c.total_bytes, (long long)tokens, c.n,
               (double)c.total_bytes / (double)tokens, tokenizer_vocab_size(tok));
        printf("encoded in %.2f s (%.1f MB/s)\n", enc, (double)c.total_bytes / 1e6 / (enc > 1e-9 ? enc : 1e-9));
        rc = st_make_dirs(o->out, err);
        if (rc == 0) rc = write_outputs(o->out, tok, train, n_train, val, n_val, err);
        free(train);
        free(val);
    }
    tokenizer_free(tok);
    free(is_val);
    corpus_free(&c);
    if (rc == 0) printf("wrote %s/{tokenizer,train,val}.bin in %.2f s\n", o->out, st_now_seconds() - t0);
    return rc;
}

/* the documents with is_val[d] == want_val, back to back */
/* the stream's documents, each led by BOS: n_docs of doc_len tokens (BOS included), drawn in order */
static int prepare_synthetic(const Options *o, char *err) {
    double t0 = st_now_seconds();
    int64_t n_docs = o->doc_len > 0 ? o->tokens / o->doc_len : 0;
    if (o->doc_len < 3) return st_errorf(err, "--doc_len: expected at least 3, found %ld", o->doc_len);
    if (n_docs < 2 || n_docs > INT32_MAX)
        return st_errorf(err, "--tokens: expected 2 to %d documents of --doc_len %ld tokens, found %lld", INT32_MAX,
                         o->doc_len, (long long)n_docs);
    /* the sparse Bigram-Backcopy of data/stream.h; its errors name the stream_ key of each flag */
    StreamConfig sc = {.kind = STREAM_BB, .bigram = BIGRAM_SPARSE, .vocab = o->vocab < 0 ? 64 : (int)o->vocab,
                       .doc_len = (int)o->doc_len - 1, .triggers = (int)o->triggers, .trigger_prob = (float)o->trigger_prob,
                       .lag = 2, .successors = (int)o->successors, .alpha = 1, .seed = o->seed};
    Stream *stream;
    if (stream_open(&stream, &sc, NULL, err)) return -1;
    uint8_t *is_val = st_malloc((size_t)n_docs);
    if (corpus_split((int)n_docs, o->val_frac, o->seed, is_val, err)) {
        free(is_val);
        stream_free(stream);
        return -1;
    }
    int64_t n_split[2] = {0, 0};
    int *split[2] = {st_malloc(sizeof(int) * (size_t)(n_docs * o->doc_len)),
                     st_malloc(sizeof(int) * (size_t)(n_docs * o->doc_len))};
    StRng rng;
    st_rng_seed(&rng, o->seed);
    for (int64_t d = 0; d < n_docs; d++) {
        int *doc = split[is_val[d]] + n_split[is_val[d]];
        doc[0] = stream_bos_id(stream);
        stream_document(stream, &rng, doc + 1, NULL);
        n_split[is_val[d]] += o->doc_len;
    }
    Tokenizer *tok = tokenizer_new_symbols(sc.vocab);
    printf("Bigram-Backcopy: %d symbols (%d triggers, p=%g), %d successors, %lld documents of %ld tokens "
           "(%lld train, %lld val tokens), vocab %d with BOS %d\n",
           sc.vocab, sc.triggers, (double)sc.trigger_prob, sc.successors, (long long)n_docs, o->doc_len,
           (long long)n_split[0], (long long)n_split[1], tokenizer_vocab_size(tok), tokenizer_bos_id(tok));
    int rc = st_make_dirs(o->out, err);
    if (rc == 0) rc = write_outputs(o->out, tok, split[0], n_split[0], split[1], n_split[1], err);
    if (rc == 0) printf("wrote %s/{tokenizer,train,val}.bin in %.2f s\n", o->out, st_now_seconds() - t0);
    tokenizer_free(tok);
    stream_free(stream);
    free(split[0]);
    free(split[1]);
    free(is_val);
    return rc;
}

/* reads back a prepared directory's tokenizer and shards, as bin/train would */
static int check_prepared(const char *dir, char *err) {
    char path[4200];
    Tokenizer *tok;
    snprintf(path, sizeof path, "%s/tokenizer.bin", dir);
    if (tokenizer_load(&tok, path, err)) return -1;
    tokenizer_free(tok);
    const char *shards[2] = {"train.bin", "val.bin"};
    for (int i = 0; i < 2; i++) {
        Shard s;
        snprintf(path, sizeof path, "%s/%s", dir, shards[i]);
        if (shard_read(path, &s, err)) return -1;
        shard_free(&s);
    }
    return 0;
}

int main(int argc, char **argv) {
    char err[ST_ERR_LEN];
    Options o;
    if (args_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    if (argc == 3 && strcmp(argv[1], "--check") == 0) {
        if (check_prepared(argv[2], err) == 0) return 0;
        fprintf(stderr, "error: %s\n", err);
        return 1;
    }
    if (parse_options(&o, argc, argv, err)) {
        fprintf(stderr, "error: %s\n", err);
        usage(stderr);
        return 2;
    }
    if ((o.synthetic ? prepare_synthetic(&o, err) : prepare_text(&o, err)) != 0) {
        fprintf(stderr, "error: %s\n", err);
        return 1;
    }
    return 0;
}
