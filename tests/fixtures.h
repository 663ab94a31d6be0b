/* tests/fixtures.h: what several test programs share: a temporary directory, files written into it,
 * and a tiny prepared data directory for the tests that train. */
#ifndef SINKTRACE_FIXTURES_H
#define SINKTRACE_FIXTURES_H

#include <stddef.h>

/* writes a tiny prepared data directory (byte tokenizer, 20,000 train and 3,000 val tokens of random
 * sentences over ten words, one document per split starting with BOS) at data_dir, creating it.
 * Returns 0, or -1 after printing the error. */
int fixture_tiny_data(const char *data_dir);

/* trains a tiny model (3 blocks of width 32, 4 heads, 4 experts top-2, windows of 16 tokens, probe sets of
 * 4 windows) for `steps` steps on the tiny data at data_dir into out_dir/run_name, with the n config
 * settings kv[i] = {key, value} on top. Returns 0, or -1 after printing the error. */
int fixture_tiny_run(const char *data_dir, const char *out_dir, const char *run_name, const char *const (*kv)[2], int n,
                     int steps);

/* a new directory /tmp/<prefix>_XXXXXX, its path in dir (>= 64 bytes); 0 or -1 */
int fixture_make_tmpdir(char *dir, size_t size, const char *prefix);
/* deletes dir and everything in it; 0 or -1 */
int fixture_remove_dir(const char *dir);
/* reads at most size-1 bytes of path into out, NUL-terminated ("" if unreadable); returns the count */
size_t fixture_read_text(const char *path, char *out, size_t size);
/* writes n bytes to path, failing the current test if it cannot */
void fixture_write_file(const char *path, const void *bytes, size_t n);
/* writes n bytes of a binary file's header and payload to path, with a valid checksum trailer
 * (common/binfile.h) after them: a damaged file that reaches the format's own checks */
void fixture_write_sealed(const char *path, const void *bytes, size_t n);
/* rewrites the checksum trailer of the binary file at path to fit its other bytes */
void fixture_reseal(const char *path);

#endif
