/* common/jsonl.h: the one JSONL writer and its reader. The writer builds one flat JSON object in memory
 * (keys in the order added, numbers as numbers, arrays of numbers for per-layer/per-head values) and
 * appends it to a file as one line. The reader reads a JSONL file back one line at a time with cJSON
 * (libcjson-dev); a line that is not a JSON object is an error naming the file and the line, and the
 * checks below name the key too. After validation, the getters are lenient: a missing key or a JSON
 * null reads as NaN. */
#ifndef SINKTRACE_JSONL_H
#define SINKTRACE_JSONL_H

#include <cJSON.h>
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

typedef struct {
    char path[1024];
    int n;        /* objects read */
    cJSON **row;  /* [n] */
    int *line;    /* [n] 1-based line number of each object */
} Jsonl;

/* 0 read, 1 file absent (j empty), -1 unreadable or malformed (err names path:line) */
int jsonl_read(const char *path, Jsonl *j, char *err);
void jsonl_free(Jsonl *j);

/* what a JSON value is, for error messages: "a number", "a string", "null", ..., "nothing" (NULL) */
const char *json_kind(const cJSON *v);
/* row r's key as a number: NaN when absent or null */
double jnum(const cJSON *row, const char *key);
/* row r's array key into out[0..n): NaN for absent entries; returns the array's length (0 if none) */
int jarr(const cJSON *row, const char *key, double *out, int n);
/* the array length of key in row (-1 when the key is absent or not an array) */
int jlen(const cJSON *row, const char *key);

/* Checks that every row has `key` as a number (required) or as a number/null when present. */
int jsonl_require_num(const Jsonl *j, const char *key, int required, char *err);
/* Checks that every row that has `key` holds an array of numbers/nulls of length n. */
int jsonl_require_arr(const Jsonl *j, const char *key, int n, char *err);

#endif
