/* data/tokenizer.h: byte-level and byte-level BPE tokenizers with one saved format.
 * Byte-level: ids 0-255 are the bytes, 256 is BOS (vocab 257). BPE: ids 0-255 bytes, 256 BOS, then one
 * id per learned merge in the order learned. Encode/decode round-trip ANY byte sequence exactly. */
#ifndef SINKTRACE_TOKENIZER_H
#define SINKTRACE_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

typedef struct Tokenizer Tokenizer;

int tokenizer_load(Tokenizer **tok, const char *path, char *err);
int tokenizer_save(const Tokenizer *tok, const char *path, char *err);
void tokenizer_free(Tokenizer *tok);
int tokenizer_vocab_size(const Tokenizer *tok);
int tokenizer_bos_id(const Tokenizer *tok);
/* encodes n bytes; returns the number of ids written to out (capacity: n ids always suffices) */
size_t tokenizer_encode(const Tokenizer *tok, const uint8_t *bytes, size_t n, int *out);
/* decodes one id to its bytes (BOS decodes to nothing); returns the byte count, *bytes points inside tok */
size_t tokenizer_token_bytes(const Tokenizer *tok, int id, const uint8_t **bytes);

#endif
