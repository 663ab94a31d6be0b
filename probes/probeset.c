#include "probeset.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/binfile.h"
#include "../common/util.h"
#include "../data/stream.h"

#define PROBESET_MAGIC "STPROBE"
#define PROBESET_VERSION 3 /* 3: the checksum trailer of common/binfile.h */
/* int32 arrays after the header: the variants' tokens, the targets, the natural windows' query classes */
#define PROBESET_ARRAYS (PV_COUNT + 2)

static const char *const variant_names[PV_COUNT] = {"natural",  "bos",     "random",      "shuffled",
                                                    "repeated", "shifted", "random_first"};

const char *probe_variant_name(int v) { return v >= 0 && v < PV_COUNT ? variant_names[v] : "?"; }

const int *probe_set_tokens(const ProbeSet *ps, int v) { return ps->tokens + (size_t)v * ps->n * ps->T; }

int probe_set_has(const ProbeSet *ps, int v) { return v != PV_BOS || ps->bos_id >= 0; }

static int *variant_rw(ProbeSet *ps, int v) { return ps->tokens + (size_t)v * ps->n * ps->T; }

/* a uniform token that is never BOS: draw from the vocab - 1 other ids and skip over bos_id */
static int random_token(StRng *rng, int vocab, int bos_id) {
    int has_bos = bos_id >= 0 && bos_id < vocab;
    int t = (int)st_rng_below(rng, (uint32_t)(vocab - has_bos));
    return has_bos && t >= bos_id ? t + 1 : t;
}

/* fills variant v of window w (T tokens) into out */
static void make_variant(int *out, const int *w, int T, int v, const ProbeSet *ps, StRng *rng) {
    switch (v) {
    case PV_NATURAL: memcpy(out, w, sizeof(int) * (size_t)T); break;
    case PV_BOS:
        out[0] = ps->bos_id >= 0 ? ps->bos_id : w[0];
        memcpy(out + 1, w, sizeof(int) * (size_t)(T - 1));
        break;
    case PV_RANDOM:
        for (int i = 0; i < T; i++) out[i] = random_token(rng, ps->vocab, ps->bos_id);
        break;
    case PV_SHUFFLED: /* Fisher-Yates */
        memcpy(out, w, sizeof(int) * (size_t)T);
        for (int i = T - 1; i > 0; i--) {
            int j = (int)st_rng_below(rng, (uint32_t)(i + 1)), t = out[i];
            out[i] = out[j];
            out[j] = t;
        }
        break;
    case PV_REPEATED:
        for (int i = 0; i < T; i++) out[i] = w[0];
        break;
    case PV_SHIFTED:
        for (int i = 0; i < ps->shift; i++) out[i] = random_token(rng, ps->vocab, ps->bos_id);
        memcpy(out + ps->shift, w, sizeof(int) * (size_t)(T - ps->shift));
        break;
    case PV_RANDOM_FIRST:
        memcpy(out, w, sizeof(int) * (size_t)T);
        out[0] = random_token(rng, ps->vocab, ps->bos_id);
        break;
    }
}

static void probe_set_alloc(ProbeSet *ps) {
    ps->tokens = st_malloc(sizeof(int) * (size_t)PV_COUNT * ps->n * ps->T);
    ps->targets = st_malloc(sizeof(int) * (size_t)ps->n * ps->T);
    ps->classes = st_calloc((size_t)ps->n * ps->T, 1);
}

int probe_set_check(const char *where, int n, int T, int shift, char *err) {
    if (n < PROBE_MIN_N)
        return st_errorf(err, "%s: probe_n: expected >= %d (cross-input cosines need pairs), found %d", where,
                         PROBE_MIN_N, n);
    if (T < PROBE_MIN_LEN) return st_errorf(err, "%s: probe_len: expected >= %d, found %d", where, PROBE_MIN_LEN, T);
    if (shift < 1 || shift >= T)
        return st_errorf(err, "%s: probe_shift: expected 1 to %d (below probe_len), found %d", where, T - 1, shift);
    return 0;
}

static int check_vocab(const char *where, int vocab, char *err) {
    return vocab < 2 ? st_errorf(err, "%s: vocab: expected >= 2, found %d", where, vocab) : 0;
}

int probe_set_from_windows(ProbeSet *ps, const int *windows, const int *targets, const uint8_t *classes, int n,
                           int T, int vocab, int bos_id, int shift, uint64_t seed, char *err) {
    memset(ps, 0, sizeof *ps);
    if (probe_set_check("probe set", n, T, shift, err) || check_vocab("probe set", vocab, err)) return -1;
    *ps = (ProbeSet){.n = n, .T = T, .vocab = vocab, .bos_id = bos_id, .shift = shift, .seed = seed};
    probe_set_alloc(ps);
    memcpy(ps->targets, targets, sizeof(int) * (size_t)n * T);
    if (classes) memcpy(ps->classes, classes, (size_t)n * T);
    StRng rng;
    st_rng_seed(&rng, seed);
    for (int v = 0; v < PV_COUNT; v++)
        for (int s = 0; s < n; s++)
            make_variant(variant_rw(ps, v) + (size_t)s * T, windows + (size_t)s * T, T, v, ps, &rng);
    return 0;
}

int probe_set_save(const ProbeSet *ps, const char *path, char *err) {
    StHeader h;
    st_header_init(&h, PROBESET_MAGIC, PROBESET_VERSION);
    int64_t fields[7] = {ps->n, ps->T, ps->vocab, ps->bos_id, ps->shift, (int64_t)ps->seed, PV_COUNT};
    for (int i = 0; i < 7; i++) st_header_add(&h, fields[i]);
    size_t nt = (size_t)ps->n * ps->T;
    int32_t *buf = st_malloc(sizeof(int32_t) * nt * PROBESET_ARRAYS);
    for (size_t i = 0; i < nt * PV_COUNT; i++) buf[i] = ps->tokens[i];
    for (size_t i = 0; i < nt; i++) buf[nt * PV_COUNT + i] = ps->targets[i];
    for (size_t i = 0; i < nt; i++) buf[nt * (PV_COUNT + 1) + i] = ps->classes[i];
    StAtomic a;
    int rc = st_atomic_open(&a, path, err);
    if (!rc) rc = st_atomic_write_header(&a, &h, err);
    if (!rc) rc = st_write_all(a.f, path, buf, sizeof(int32_t) * nt * PROBESET_ARRAYS, err);
    if (!rc) rc = st_atomic_commit(&a, err);
    else st_atomic_abort(&a);
    free(buf);
    return rc;
}

/* checks every value of what the file calls `what` is below limit (targets may also be -1) */
static int check_ids(const char *path, const char *what, const int32_t *ids, size_t count, int limit,
                     int allow_ignore, char *err) {
    const char *kind = strcmp(what, "classes") == 0 ? "a query class below" : "a token id below vocab";
    for (size_t i = 0; i < count; i++)
        if (ids[i] >= limit || ids[i] < (allow_ignore ? -1 : 0))
            return st_errorf(err, "%s: %s[%zu]: expected %s %d, found %d", path, what, i, kind, limit, ids[i]);
    return 0;
}

/* Before anything is allocated from it: the int fields (n, T, vocab, bos_id, shift) fit an int, and
 * the file holds exactly the PROBESET_ARRAYS * n * T int32 values they imply. */
static int check_payload_size(const char *path, const StHeader *h, char *err) {
    static const char *names[5] = {"n", "T", "vocab", "bos_id", "shift"};
    for (int i = 0; i < 5; i++)
        if (h->field[i] < -1 || h->field[i] > INT_MAX)
            return st_errorf(err, "%s: %s: expected -1 to %d, found %lld", path, names[i], INT_MAX,
                             (long long)h->field[i]);
    int64_t n = h->field[0], T = h->field[1], payload;
    if (st_payload_bytes(path, h, &payload, err)) return -1;
    int64_t per_window = PROBESET_ARRAYS * (int64_t)sizeof(int32_t);
    /* n * T * per_window == payload, in divisions so that no product overflows */
    if (payload < 0 || (n && T && (payload / per_window / n != T || payload % (per_window * n) != 0)) ||
        ((n == 0 || T == 0) && payload != 0))
        return st_errorf(err, "%s: %s: expected %d x %lld x %lld int32 values after the header, found %lld bytes",
                         path, (double)n * (double)T * (double)per_window > (double)payload ? "truncated" : "size",
                         PROBESET_ARRAYS, (long long)n, (long long)T, (long long)payload);
    return 0;
}

int probe_set_load(ProbeSet *ps, const char *path, char *err) {
    memset(ps, 0, sizeof *ps);
    FILE *f = fopen(path, "rb");
    if (!f) return st_errorf(err, "%s: cannot open", path);
    StHeader h;
    int rc = st_header_read(f, path, PROBESET_MAGIC, PROBESET_VERSION, 7, &h, err);
    if (!rc && h.field[6] != PV_COUNT)
        rc = st_errorf(err, "%s: n_variants: expected %d, found %lld", path, PV_COUNT, (long long)h.field[6]);
    if (!rc) rc = check_payload_size(path, &h, err);
    if (!rc) rc = probe_set_check(path, (int)h.field[0], (int)h.field[1], (int)h.field[4], err);
    if (!rc) rc = check_vocab(path, (int)h.field[2], err);
    if (rc) {
        fclose(f);
        return -1;
    }
    *ps = (ProbeSet){.n = (int)h.field[0], .T = (int)h.field[1], .vocab = (int)h.field[2],
                     .bos_id = (int)h.field[3], .shift = (int)h.field[4], .seed = (uint64_t)h.field[5]};
    size_t nt = (size_t)ps->n * ps->T;
    int32_t *buf = st_malloc(sizeof(int32_t) * nt * PROBESET_ARRAYS);
    rc = st_read_exact(f, path, buf, sizeof(int32_t) * nt * PROBESET_ARRAYS, "probe tokens", err);
    fclose(f);
    if (!rc) rc = check_ids(path, "tokens", buf, nt * PV_COUNT, ps->vocab, 0, err);
    if (!rc) rc = check_ids(path, "targets", buf + nt * PV_COUNT, nt, ps->vocab, 1, err);
    if (!rc) rc = check_ids(path, "classes", buf + nt * (PV_COUNT + 1), nt, STREAM_CLASSES, 0, err);
    if (!rc) {
        probe_set_alloc(ps);
        for (size_t i = 0; i < nt * PV_COUNT; i++) ps->tokens[i] = buf[i];
        for (size_t i = 0; i < nt; i++) ps->targets[i] = buf[nt * PV_COUNT + i];
        for (size_t i = 0; i < nt; i++) ps->classes[i] = (uint8_t)buf[nt * (PV_COUNT + 1) + i];
    }
    free(buf);
    return rc;
}

void probe_set_free(ProbeSet *ps) {
    free(ps->tokens);
    free(ps->targets);
    free(ps->classes);
    memset(ps, 0, sizeof *ps);
}
