/* data/loader.h: batches of training and validation windows from a prepared data directory
 * (DIR/tokenizer.bin, DIR/train.bin, DIR/val.bin, written by bin/prepare).
 *
 * A window is T+1 consecutive tokens of the stream: inputs are the first T, targets the last T.
 * BOS policy (config key `bos`):
 *   none    - T+1 tokens from a random offset of the stream with every BOS removed: position 0 is an
 *             ordinary token (the no-BOS condition of the experiments);
 *   prepend - BOS, then T tokens from a random offset of the BOS-free stream (LLaMA-style inputs;
 *             BOS appears only at position 0);
 *   doc     - windows start at a document start (position 0 is that document's BOS); a document
 *             shorter than the window is followed by the next one;
 *   start   - windows start at a document's first token, with every BOS removed (no BOS, but position
 *             0 is always a document's beginning).
 * Validation windows are a fixed, deterministic set (the same for every run on the same data).
 *
 * The tokens come from a prepared data directory's shards, or from a synthetic stream (data/stream.h)
 * generated on the fly: then every training window is drawn fresh from the loader's RNG (documents
 * concatenated as the policy says; none and prepend start at a random offset of the first document),
 * and validation window k is drawn from its own seed, so the fixed set needs no storage. */
#ifndef SINKTRACE_LOADER_H
#define SINKTRACE_LOADER_H

#include <stdint.h>

#include "../common/util.h"
#include "stream.h"

typedef enum { BOS_NONE = 0, BOS_PREPEND = 1, BOS_DOC = 2, BOS_START = 3 } BosPolicy;

/* "none" | "prepend" | "doc" | "start": the config key bos's values */
const char *bos_policy_name(BosPolicy p);

typedef struct LoaderData LoaderData; /* the token streams, private to the loader */

typedef struct {
    int vocab_size;     /* from the tokenizer/shards */
    int bos_id;         /* the BOS token id, -1 if the tokenizer has none */
    int T;              /* window length (inputs) */
    BosPolicy bos;
    int64_t n_train_tokens, n_val_tokens; /* stream lengths windows are cut from (BOS removed: none, prepend) */
    int n_val_windows;  /* size of the fixed validation set */
    StRng rng;          /* draws training windows; its state is the loader's whole state */
    LoaderData *data;   /* the shards' streams, or NULL for a synthetic stream */
    Stream *stream;     /* the synthetic stream, or NULL */
    uint64_t val_seed;  /* a synthetic stream's validation windows */
} Loader;

/* Opens DIR's shards and tokenizer, checks they agree and that each split holds at least one window. */
int loader_open(Loader *ld, const char *data_dir, int T, BosPolicy bos, uint64_t seed, char *err);
/* The same over a synthetic stream, which the loader then owns (and frees, also on error). */
int loader_open_stream(Loader *ld, Stream *s, int T, BosPolicy bos, uint64_t seed, char *err);
void loader_close(Loader *ld);
/* the model's vocab must equal the data's: a one-line error naming data_dir otherwise */
int loader_check_vocab(const Loader *ld, int model_vocab, const char *data_dir, char *err);

/* B random training windows: inputs and targets [B][T] */
void loader_train_batch(Loader *ld, int *inputs, int *targets, int B);
/* validation windows first..first+B-1 of the fixed set (wrapping around its end); classes [B][T]
 * (may be NULL): each input position's QueryClass (data/stream.h; all ordinary for shard data) */
void loader_val_batch(const Loader *ld, int first, int *inputs, int *targets, uint8_t *classes, int B);

/* the loader's state is its RNG: save it into a checkpoint, restore it to resume the exact stream */
uint64_t loader_get_state(const Loader *ld);
void loader_set_state(Loader *ld, uint64_t state);

#endif
