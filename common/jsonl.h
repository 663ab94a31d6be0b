/* common/jsonl.h: the one JSONL writer. Builds one flat JSON object in memory (keys in the order
 * added, numbers as numbers, arrays of numbers for per-layer/per-head values) and appends it to a
 * file as one line. Reading JSON back uses cJSON (libcjson-dev). */
#ifndef SINKTRACE_JSONL_H
#define SINKTRACE_JSONL_H

#include <stddef.h>
#include <stdio.h>

typedef struct {
    char *buf;
    size_t len, cap;
    int n_keys;
} StJson;

void sj_begin(StJson *j);         /* starts an empty object (reuses the buffer) */
void sj_free(StJson *j);
void sj_int(StJson *j, const char *key, long long v);
void sj_num(StJson *j, const char *key, double v); /* NaN and Inf are written as null */
void sj_str(StJson *j, const char *key, const char *v);
void sj_bool(StJson *j, const char *key, int v);
void sj_floats(StJson *j, const char *key, const float *v, int n);
void sj_doubles(StJson *j, const char *key, const double *v, int n);
void sj_ints(StJson *j, const char *key, const int *v, int n);
const char *sj_end(StJson *j);    /* closes the object and returns it (no newline) */
/* closes the object and writes it plus '\n' to f, then flushes; -1 with err on failure */
int sj_write_line(StJson *j, FILE *f, const char *path, char *err);

#endif
