/* tests/fuzz_feed.h: one function per parser of outside input, feeding it a byte string as the file
 * it reads. The fuzz targets of fuzz/ call them under libFuzzer; tests/test_fuzz_corpus.c replays the
 * committed corpus tests/fuzz_corpus/<parser>/ through them in `make test`. Each returns the parser's
 * result (0 accepted, -1 rejected with a one-line error); a crash, hang or sanitizer report is a bug. */
#ifndef SINKTRACE_FUZZ_FEED_H
#define SINKTRACE_FUZZ_FEED_H

#include <stddef.h>
#include <stdint.h>

typedef int (*FuzzFeed)(const uint8_t *data, size_t size, char *err);

typedef struct {
    const char *name; /* the fuzz/<name>.c target and the tests/fuzz_corpus/<name>/ directory */
    FuzzFeed feed;
} FuzzParser;

/* 1 (the fuzz targets): the binary formats' checksum trailer (common/binfile.h) is rewritten to fit
 * each input, so that mutated inputs reach the parser behind the checksum; 0 (the corpus replay): the
 * inputs are read as they are, checksum included */
extern int fuzz_reseal_checksums;

extern const FuzzParser FUZZ_PARSERS[];
extern const int FUZZ_N_PARSERS;
/* the parser called name, or NULL */
const FuzzParser *fuzz_parser(const char *name);

#endif
