#include "jsonl.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
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

/* ---- reading JSONL back (cJSON) ------------------------------------------------------------- */

const char *json_kind(const cJSON *v) {
    if (!v) return "nothing";
    if (cJSON_IsNumber(v)) return "a number";
    if (cJSON_IsString(v)) return "a string";
    if (cJSON_IsNull(v)) return "null";
    if (cJSON_IsBool(v)) return "a boolean";
    if (cJSON_IsArray(v)) return "an array";
    return "an object";
}

static int blank(const char *s) {
    while (*s && isspace((unsigned char)*s)) s++;
    return *s == 0;
}

static void jsonl_append(Jsonl *j, cJSON *obj, int line, int *cap) {
    if (j->n == *cap) {
        *cap = *cap ? 2 * *cap : 64;
        j->row = st_realloc(j->row, sizeof(cJSON *) * *cap);
        j->line = st_realloc(j->line, sizeof(int) * *cap);
    }
    j->row[j->n] = obj;
    j->line[j->n++] = line;
}

int jsonl_read(const char *path, Jsonl *j, char *err) {
    memset(j, 0, sizeof *j);
    snprintf(j->path, sizeof j->path, "%s", path);
    FILE *f = fopen(path, "r");
    if (!f) {
        if (errno == ENOENT) return 1;
        return st_errorf(err, "%s: cannot open: %s", path, strerror(errno));
    }
    char *buf = NULL;
    size_t bufcap = 0;
    int cap = 0, line = 0, rc = 0;
    while (getline(&buf, &bufcap, f) >= 0) {
        line++;
        if (blank(buf)) continue;
        cJSON *obj = cJSON_Parse(buf);
        if (!obj || !cJSON_IsObject(obj)) {
            rc = st_errorf(err, "%s:%d: expected one JSON object per line, found %s", path, line,
                           obj ? json_kind(obj) : "text that is not valid JSON");
            cJSON_Delete(obj);
            break;
        }
        jsonl_append(j, obj, line, &cap);
    }
    if (!rc && ferror(f)) rc = st_errorf(err, "%s: read error after line %d", path, line);
    free(buf);
    fclose(f);
    if (rc) jsonl_free(j);
    return rc;
}

void jsonl_free(Jsonl *j) {
    for (int i = 0; i < j->n; i++) cJSON_Delete(j->row[i]);
    free(j->row);
    free(j->line);
    j->row = NULL;
    j->line = NULL;
    j->n = 0;
}

double jnum(const cJSON *row, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(row, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

int jarr(const cJSON *row, const char *key, double *out, int n) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(row, key);
    int len = cJSON_IsArray(a) ? cJSON_GetArraySize(a) : 0, i = 0;
    const cJSON *v;
    for (int k = 0; k < n; k++) out[k] = NAN;
    cJSON_ArrayForEach(v, a) {
        if (i < n && cJSON_IsNumber(v)) out[i] = v->valuedouble;
        i++;
    }
    return len;
}

int jlen(const cJSON *row, const char *key) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(row, key);
    return cJSON_IsArray(a) ? cJSON_GetArraySize(a) : -1;
}

int jsonl_require_num(const Jsonl *j, const char *key, int required, char *err) {
    for (int r = 0; r < j->n; r++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(j->row[r], key);
        if (!v && !required) continue;
        if (!v) return st_errorf(err, "%s:%d: missing key '%s' (a number)", j->path, j->line[r], key);
        if (!cJSON_IsNumber(v) && !cJSON_IsNull(v))
            return st_errorf(err, "%s:%d: key '%s': expected a number, found %s", j->path, j->line[r], key,
                             json_kind(v));
    }
    return 0;
}

int jsonl_require_arr(const Jsonl *j, const char *key, int n, char *err) {
    for (int r = 0; r < j->n; r++) {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(j->row[r], key), *v;
        if (!a || cJSON_IsNull(a)) continue;
        if (!cJSON_IsArray(a))
            return st_errorf(err, "%s:%d: key '%s': expected an array of %d numbers, found %s", j->path,
                             j->line[r], key, n, json_kind(a));
        if (cJSON_GetArraySize(a) != n)
            return st_errorf(err, "%s:%d: key '%s': expected an array of %d numbers, found %d", j->path,
                             j->line[r], key, n, cJSON_GetArraySize(a));
        cJSON_ArrayForEach(v, a) {
            if (!cJSON_IsNumber(v) && !cJSON_IsNull(v))
                return st_errorf(err, "%s:%d: key '%s': expected numbers in the array, found %s", j->path,
                                 j->line[r], key, json_kind(v));
        }
    }
    return 0;
}
