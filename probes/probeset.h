/* probes/probeset.h: the fixed inputs every probe step sees. probe_n held-out windows of probe_len
 * tokens (the `natural` variant) and their variants, built once per run and saved in the run directory
 * (probe_set.bin), so every probe step, every resume and every later re-analysis reads the same tokens.
 *
 * Variants of window w (all of length T, so the chance level is the same for each):
 *   natural      w                                   position 0 is whatever token starts the window
 *   bos          BOS, w[0..T-2]                      (only when the tokenizer has a BOS)
 *   random       T i.i.d. uniform tokens (never BOS)
 *   shuffled     a random permutation of w
 *   repeated     w[0] repeated T times
 *   shifted      `shift` random tokens, then w[0..T-shift-1] (the old position 0 moves to `shift`)
 *   random_first w with position 0 replaced by a random token
 *
 * probe_set.bin: StHeader "STPROBE" v2, fields n, T, vocab, bos_id, shift, seed, n_variants; then
 * int32 tokens [n_variants][n][T], int32 targets [n][T] (the next token of each natural position,
 * which is also the target of the bos variant's positions) and int32 classes [n][T] (the query class
 * of each natural position, data/stream.h; all ordinary for text). Building it from a data directory and
 * reopening it on resume is probe_set_open in probes/probe.h. */
#ifndef SINKTRACE_PROBESET_H
#define SINKTRACE_PROBESET_H

#include <stdint.h>

typedef enum {
    PV_NATURAL = 0,
    PV_BOS,
    PV_RANDOM,
    PV_SHUFFLED,
    PV_REPEATED,
    PV_SHIFTED,
    PV_RANDOM_FIRST,
    PV_COUNT
} ProbeVariant;

const char *probe_variant_name(int v); /* "natural", "bos", ... */

typedef struct {
    int n, T;
    int vocab, bos_id; /* bos_id -1: no BOS, the bos variant is absent */
    int shift;
    uint64_t seed;
    int *tokens;  /* [PV_COUNT][n][T] */
    int *targets; /* [n][T] */
    uint8_t *classes; /* [n][T] QueryClass of each natural position */
} ProbeSet;

/* tokens [n][T] of variant v */
const int *probe_set_tokens(const ProbeSet *ps, int v);
int probe_set_has(const ProbeSet *ps, int v); /* 0 only for bos without a BOS token */

/* the smallest probe set: cross-input cosines need pairs of windows, and the control keys 1 and T/2
 * need later queries (the bounds of the config keys probe_n and probe_len) */
enum { PROBE_MIN_N = 2, PROBE_MIN_LEN = 4 };

/* checks n >= PROBE_MIN_N, T >= PROBE_MIN_LEN, 1 <= shift < T; errors start with `where` */
int probe_set_check(const char *where, int n, int T, int shift, char *err);

/* Builds every variant from the natural windows [n][T], their targets [n][T] and query classes [n][T]
 * (copied; classes NULL = all ordinary), drawing the random tokens from seed. Checks the shape with
 * probe_set_check. */
int probe_set_from_windows(ProbeSet *ps, const int *windows, const int *targets, const uint8_t *classes, int n,
                           int T, int vocab, int bos_id, int shift, uint64_t seed, char *err);
int probe_set_save(const ProbeSet *ps, const char *path, char *err);
int probe_set_load(ProbeSet *ps, const char *path, char *err);
void probe_set_free(ProbeSet *ps);

#endif
