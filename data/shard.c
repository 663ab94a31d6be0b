/* data/shard.c: writing and reading token shards. */
#include "shard.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/binfile.h"
#include "../common/util.h"

#define SHARD_MAGIC "STSHARD"
#define SHARD_VERSION 2 /* 2: the checksum trailer of common/binfile.h */
enum { FIELD_VOCAB, FIELD_N_TOKENS, FIELD_TOKEN_BYTES, FIELD_BOS, FIELD_N_DOCS, N_FIELDS };

static int token_width(int64_t vocab_size) { return vocab_size <= 65536 ? 2 : 4; }

static int64_t count_docs(const int *tokens, int64_t n, int bos_id) {
    int64_t docs = 0;
    for (int64_t i = 0; i < n; i++) docs += tokens[i] == bos_id;
    return docs;
}

/* packs ids into little-endian uint16 or uint32 */
static void pack_tokens(const int *tokens, int64_t n, int width, uint8_t *out) {
    for (int64_t i = 0; i < n; i++)
        for (int b = 0; b < width; b++) out[i * width + b] = (uint8_t)((uint32_t)tokens[i] >> (8 * b));
}

static void unpack_tokens(const uint8_t *in, int64_t n, int width, int *tokens) {
    for (int64_t i = 0; i < n; i++) {
        uint32_t v = 0;
        for (int b = 0; b < width; b++) v |= (uint32_t)in[i * width + b] << (8 * b);
        tokens[i] = (int)v;
    }
}

int shard_write(const char *path, const int *tokens, int64_t n_tokens, int vocab_size, int bos_id, char *err) {
    for (int64_t i = 0; i < n_tokens; i++)
        if (tokens[i] < 0 || tokens[i] >= vocab_size)
            return st_errorf(err, "%s: token %lld: expected an id below vocab_size %d, found %d", path, (long long)i,
                             vocab_size, tokens[i]);
    StHeader h;
    st_header_init(&h, SHARD_MAGIC, SHARD_VERSION);
    int width = token_width(vocab_size);
    st_header_add(&h, vocab_size);
    st_header_add(&h, n_tokens);
    st_header_add(&h, width);
    st_header_add(&h, bos_id);
    st_header_add(&h, count_docs(tokens, n_tokens, bos_id));
    uint8_t *packed = st_malloc((size_t)n_tokens * (size_t)width);
    pack_tokens(tokens, n_tokens, width, packed);
    StAtomic a;
    int rc = st_atomic_open(&a, path, err);
    if (rc == 0) {
        rc = st_atomic_write_header(&a, &h, err) || st_write_all(a.f, path, packed, (size_t)n_tokens * (size_t)width, err)
                 ? -1
                 : 0;
        if (rc) st_atomic_abort(&a);
        else rc = st_atomic_commit(&a, err);
    }
    free(packed);
    return rc;
}

static int check_shard_header(const char *path, const StHeader *h, int64_t payload, char *err) {
    int64_t vocab = h->field[FIELD_VOCAB], n = h->field[FIELD_N_TOKENS], width = h->field[FIELD_TOKEN_BYTES],
            bos = h->field[FIELD_BOS];
    if (vocab < 2 || vocab > INT32_MAX)
        return st_errorf(err, "%s: vocab_size: expected 2 to %d, found %lld", path, INT32_MAX, (long long)vocab);
    if (width != token_width(vocab))
        return st_errorf(err, "%s: token_bytes: expected %d for vocab_size %lld, found %lld", path, token_width(vocab),
                         (long long)vocab, (long long)width);
    if (bos < -1 || bos >= vocab)
        return st_errorf(err, "%s: bos_id: expected -1 to %lld, found %lld", path, (long long)vocab - 1, (long long)bos);
    /* the payload size must match the header before anything is allocated from it */
    if (n < 0 || n > payload / width || n * width != payload)
        return st_errorf(err, "%s: size: expected %lld tokens of %lld bytes after the header, found %lld bytes%s", path,
                         (long long)n, (long long)width, (long long)payload,
                         n > payload / width ? " (truncated)" : "");
    return 0;
}

static int read_shard(FILE *f, const char *path, Shard *s, char *err) {
    StHeader h;
    int64_t payload;
    if (st_header_read(f, path, SHARD_MAGIC, SHARD_VERSION, N_FIELDS, &h, err) || st_payload_bytes(path, &h, &payload, err) ||
        check_shard_header(path, &h, payload, err))
        return -1;
    int width = (int)h.field[FIELD_TOKEN_BYTES];
    s->vocab_size = (int)h.field[FIELD_VOCAB];
    s->bos_id = (int)h.field[FIELD_BOS];
    s->n_tokens = h.field[FIELD_N_TOKENS];
    uint8_t *packed = st_malloc((size_t)(s->n_tokens * width));
    int rc = st_read_exact(f, path, packed, (size_t)(s->n_tokens * width), "tokens", err);
    if (rc == 0) {
        s->tokens = st_malloc((size_t)s->n_tokens * sizeof *s->tokens);
        unpack_tokens(packed, s->n_tokens, width, s->tokens);
    }
    free(packed);
    if (rc) return -1;
    for (int64_t i = 0; i < s->n_tokens; i++)
        if (s->tokens[i] >= s->vocab_size)
            return st_errorf(err, "%s: token %lld: expected an id below vocab_size %d, found %d (corrupt shard)", path,
                             (long long)i, s->vocab_size, s->tokens[i]);
    s->n_docs = count_docs(s->tokens, s->n_tokens, s->bos_id);
    if (s->n_docs != h.field[FIELD_N_DOCS])
        return st_errorf(err, "%s: n_docs: expected %lld (the header), found %lld BOS ids in the tokens", path,
                         (long long)h.field[FIELD_N_DOCS], (long long)s->n_docs);
    return 0;
}

int shard_read(const char *path, Shard *s, char *err) {
    memset(s, 0, sizeof *s);
    FILE *f = fopen(path, "rb");
    if (!f) return st_errorf(err, "%s: cannot open shard: missing or unreadable (run bin/prepare)", path);
    int rc = read_shard(f, path, s, err);
    fclose(f);
    if (rc) shard_free(s);
    return rc;
}

void shard_free(Shard *s) {
    free(s->tokens);
    s->tokens = NULL;
}
