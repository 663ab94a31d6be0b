/* tests/fixtures.h: test data shared by the test programs that train. */
#ifndef SINKTRACE_FIXTURES_H
#define SINKTRACE_FIXTURES_H

/* writes a tiny prepared data directory (byte tokenizer, 20,000 train and 3,000 val tokens of random
 * sentences over ten words, one document per split starting with BOS) at data_dir, creating it.
 * Returns 0, or -1 after printing the error. */
int fixture_tiny_data(const char *data_dir);

#endif
