/* data/corpus.h: text documents read from files and folders, and the train/val split by document. */
#ifndef SINKTRACE_CORPUS_H
#define SINKTRACE_CORPUS_H

#include <stddef.h>
#include <stdint.h>

#include "tokenizer.h"

typedef struct {
    uint8_t **doc; /* document i is doc[i][0 .. len[i]) */
    size_t *len;
    int n, cap;
    int64_t total_bytes;
} Corpus;

/* Adds a file (one document) or every regular file under a folder (recursively, in name order,
 * hidden files skipped).
 * doc_bytes > 0 cuts each file into documents of at most doc_bytes, at the last newline that fits
 * when there is one. An empty file, or a folder without files, is an error. */
int corpus_add_path(Corpus *c, const char *path, size_t doc_bytes, char *err);
void corpus_free(Corpus *c);

/* Marks round(val_frac * n_docs) documents (at least one) for validation, chosen by a seeded
 * shuffle: deterministic, and a document is wholly in one split. Needs 0 < val_frac < 1, n_docs >= 2. */
int corpus_split(int n_docs, double val_frac, uint64_t seed, uint8_t *is_val, char *err);

/* The token stream of the documents with is_val[i] == want_val: BOS, then the document's ids, for each.
 * Returns the stream (free() it) and its length in *n_tokens. */
int *corpus_encode(const Corpus *c, const Tokenizer *tok, const uint8_t *is_val, int want_val, int64_t *n_tokens);

#endif
