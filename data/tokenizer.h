/* data/tokenizer.h: byte-level and byte-level BPE tokenizers with one saved format.
 * Byte-level: ids 0-255 are the bytes, 256 is BOS (vocab 257). BPE: ids 0-255 bytes, 256 BOS, then one
 * id per learned merge in the order learned. Encode/decode round-trip ANY byte sequence exactly.
 * Symbols (the synthetic corpus): ids 0..n-1 are abstract symbols (they decode to "<s12>"), n is BOS.
 *
 * File (common/binfile.h header): magic "STTOKEN", version 1, fields kind (0 bytes, 1 BPE, 2 symbols),
 * vocab_size, bos_id, n_merges; then n_merges pairs of int32 (left id, right id). */
#ifndef SINKTRACE_TOKENIZER_H
#define SINKTRACE_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

typedef struct Tokenizer Tokenizer;

typedef enum { TOK_BYTES = 0, TOK_BPE = 1, TOK_SYMBOLS = 2 } TokenizerKind;

Tokenizer *tokenizer_new_bytes(void);
/* a BPE tokenizer from merges[2*i], merges[2*i+1] -> id 257+i (as learned by bpe_train); checks them */
int tokenizer_new_bpe(Tokenizer **tok, const int32_t *merges, int n_merges, const char *what, char *err);
Tokenizer *tokenizer_new_symbols(int n_symbols);
TokenizerKind tokenizer_kind(const Tokenizer *tok);

int tokenizer_load(Tokenizer **tok, const char *path, char *err);
int tokenizer_save(const Tokenizer *tok, const char *path, char *err);
void tokenizer_free(Tokenizer *tok);
int tokenizer_vocab_size(const Tokenizer *tok);
int tokenizer_bos_id(const Tokenizer *tok);
/* encodes n bytes; returns the number of ids written to out (capacity: n ids always suffices).
 * Long BPE inputs are cut at line starts and encoded in parallel (OpenMP): the ids do not depend on
 * the thread count. A symbols tokenizer encodes nothing (returns 0). */
size_t tokenizer_encode(const Tokenizer *tok, const uint8_t *bytes, size_t n, int *out);
/* decodes one id to its bytes (BOS decodes to nothing); returns the byte count, *bytes points inside tok */
size_t tokenizer_token_bytes(const Tokenizer *tok, int id, const uint8_t **bytes);

/* decodes n ids into out (at most cap bytes written); returns the full decoded length */
size_t tokenizer_decode(const Tokenizer *tok, const int *ids, size_t n, uint8_t *out, size_t cap);

#endif
