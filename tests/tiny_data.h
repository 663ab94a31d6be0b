/* tests/tiny_data.h: a tiny prepared data directory for the tests that train (test_train, test_dist). */
#ifndef SINKTRACE_TINY_DATA_H
#define SINKTRACE_TINY_DATA_H

#include <stddef.h>

/* Writes <dir>/data (tokenizer.bin, train.bin, val.bin: pseudo-English bytes, every document starting
 * with BOS) and its path into data_dir. 0, or -1 after printing why. */
int make_tiny_data(const char *dir, char *data_dir, size_t size);

#endif
