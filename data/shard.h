/* data/shard.h: token shards, the files bin/prepare writes and the loader reads.
 *
 * File (common/binfile.h header): magic "STSHARD", version 1, fields vocab_size, n_tokens,
 * token_bytes (2 while vocab_size <= 65536, else 4), bos_id (-1: none), n_docs; then n_tokens
 * little-endian unsigned ids of token_bytes each. Every document starts with bos_id. */
#ifndef SINKTRACE_SHARD_H
#define SINKTRACE_SHARD_H

#include <stdint.h>

typedef struct {
    int vocab_size, bos_id;
    int64_t n_tokens, n_docs;
    int *tokens;
} Shard;

int shard_write(const char *path, const int *tokens, int64_t n_tokens, int vocab_size, int bos_id, char *err);
/* reads and checks a shard: size against the header, every id below vocab_size, n_docs BOS ids */
int shard_read(const char *path, Shard *s, char *err);
void shard_free(Shard *s);

#endif
