/* data/bpe.h: byte-level BPE training and the pre-tokenizer it shares with encoding.
 *
 * Text is first cut into chunks (roughly words: an optional leading space then a run of letters,
 * digits or punctuation; or a run of whitespace). Merges never cross a chunk boundary, so training
 * can count each distinct chunk once, and encoding can work chunk by chunk (in parallel). */
#ifndef SINKTRACE_BPE_H
#define SINKTRACE_BPE_H

#include <stddef.h>
#include <stdint.h>

#define BPE_FIRST_MERGE_ID 257 /* ids 0-255 are bytes, 256 is BOS */
#define BPE_CHUNK_MAX 64       /* longer runs are cut into pieces of this many bytes */

/* length in bytes (1..BPE_CHUNK_MAX) of the chunk that starts at s (n >= 1 bytes available) */
size_t bpe_chunk_len(const uint8_t *s, size_t n);

/* true when a chunk always starts at position p of s (whatever came before): after a newline and
 * before a non-whitespace byte. Lets a long text be cut into pieces encoded independently. */
int bpe_is_safe_split(const uint8_t *s, size_t p);

/* Learns up to n_merges merges from n_docs documents. Merge i joins the pair (merges[2i], merges[2i+1])
 * into id BPE_FIRST_MERGE_ID + i. The most frequent pair wins; ties go to the smallest (left, right)
 * ids. Stops early when no adjacent pair is left. Returns the number of merges learned; *merges is
 * allocated (free() it). */
int bpe_train(const uint8_t *const *docs, const size_t *lens, int n_docs, int n_merges, int32_t **merges);

#endif
