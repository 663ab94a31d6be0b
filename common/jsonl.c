#include "jsonl.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static void append(StJson *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void append(StJson *j, const char *fmt, ...) {
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int need = vsnprintf(j->buf + j->len, j->cap - j->len, fmt, ap);
        va_end(ap);
        if ((size_t)need < j->cap - j->len) {
            j->len += (size_t)need;
            return;
        }
        size_t cap = 2 * j->cap + (size_t)need + 64;
        j->buf = st_realloc(j->buf, cap);
        j->cap = cap;
    }
}

void sj_begin(StJson *j) {
    if (!j->buf) {
        j->cap = 1024;
        j->buf = st_malloc(j->cap);
    }
    j->len = 0;
    j->n_keys = 0;
    append(j, "{");
}

void sj_free(StJson *j) {
    free(j->buf);
    memset(j, 0, sizeof *j);
}

static void append_string(StJson *j, const char *s) {
    append(j, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') append(j, "\\%c", *p);
        else if (*p < 32) append(j, "\\u%04x", *p);
        else append(j, "%c", *p);
    }
    append(j, "\"");
}

static void key(StJson *j, const char *k) {
    if (j->n_keys++) append(j, ",");
    append_string(j, k);
    append(j, ":");
}

/* %.9g keeps every float32 exact and stays short for round values */
static void number(StJson *j, double v) {
    if (isfinite(v)) append(j, "%.9g", v);
    else append(j, "null");
}

void sj_int(StJson *j, const char *k, long long v) {
    key(j, k);
    append(j, "%lld", v);
}

void sj_num(StJson *j, const char *k, double v) {
    key(j, k);
    number(j, v);
}

void sj_str(StJson *j, const char *k, const char *v) {
    key(j, k);
    append_string(j, v);
}

void sj_bool(StJson *j, const char *k, int v) {
    key(j, k);
    append(j, v ? "true" : "false");
}

/* an array of n numbers read from floats or doubles */
static void numbers(StJson *j, const char *k, const float *f, const double *d, int n) {
    key(j, k);
    append(j, "[");
    for (int i = 0; i < n; i++) {
        if (i) append(j, ",");
        number(j, f ? f[i] : d[i]);
    }
    append(j, "]");
}

void sj_floats(StJson *j, const char *k, const float *v, int n) { numbers(j, k, v, NULL, n); }

void sj_doubles(StJson *j, const char *k, const double *v, int n) { numbers(j, k, NULL, v, n); }

void sj_ints(StJson *j, const char *k, const int *v, int n) {
    key(j, k);
    append(j, "[");
    for (int i = 0; i < n; i++) append(j, i ? ",%d" : "%d", v[i]);
    append(j, "]");
}

const char *sj_end(StJson *j) {
    append(j, "}");
    return j->buf;
}

int sj_write_line(StJson *j, FILE *f, const char *path, char *err) {
    sj_end(j);
    if (fprintf(f, "%s\n", j->buf) < 0 || fflush(f) != 0)
        return st_errorf(err, "%s: write failed: %s", path, strerror(errno));
    return 0;
}
