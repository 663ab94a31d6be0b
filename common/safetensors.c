#include "safetensors.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "binfile.h"
#include "util.h"

static const char *const DTYPE_NAME[SFT_DTYPES] = {"F64", "F32", "I32", "U8"};
static const int DTYPE_BYTES[SFT_DTYPES] = {8, 4, 4, 1};

/* the safetensors library refuses headers larger than this */
#define SFT_MAX_HEADER 100000000LL

SftTensor sft_tensor(const char *name, SftDtype dtype, const void *data, int ndim, const int64_t *shape) {
    SftTensor t = {.dtype = dtype, .ndim = ndim, .data = data};
    snprintf(t.name, sizeof t.name, "%s", name);
    memcpy(t.shape, shape, sizeof(int64_t) * (size_t)ndim);
    return t;
}

int64_t sft_count(const SftTensor *t) {
    int64_t n = 1;
    for (int d = 0; d < t->ndim; d++) n *= t->shape[d];
    return n;
}

int64_t sft_bytes(const SftTensor *t) { return sft_count(t) * DTYPE_BYTES[t->dtype]; }

/* ---- writing -------------------------------------------------------------------------------- */

/* the JSON header: metadata first, then each tensor with its offsets in the data */
static char *header_json(const SftTensor *tensors, int n, const cJSON *metadata) {
    cJSON *root = cJSON_CreateObject();
    if (metadata) cJSON_AddItemToObject(root, "__metadata__", cJSON_Duplicate(metadata, 1));
    int64_t at = 0;
    for (int i = 0; i < n; i++) {
        const SftTensor *t = &tensors[i];
        cJSON *o = cJSON_AddObjectToObject(root, t->name);
        cJSON_AddStringToObject(o, "dtype", DTYPE_NAME[t->dtype]);
        cJSON *shape = cJSON_AddArrayToObject(o, "shape");
        for (int d = 0; d < t->ndim; d++) cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t->shape[d]));
        cJSON *off = cJSON_AddArrayToObject(o, "data_offsets");
        cJSON_AddItemToArray(off, cJSON_CreateNumber((double)at));
        at += sft_bytes(t);
        cJSON_AddItemToArray(off, cJSON_CreateNumber((double)at));
    }
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return text;
}

int sft_save(const char *path, const SftTensor *tensors, int n, const cJSON *metadata, char *err) {
    char *json = header_json(tensors, n, metadata);
    if (!json) return st_errorf(err, "%s: cannot build the JSON header", path);
    size_t len = strlen(json);
    uint64_t padded = (len + 7) / 8 * 8; /* spaces after the JSON align the data to 8 bytes */
    StAtomic a;
    int rc = st_atomic_open(&a, path, err);
    if (rc == 0) rc = st_write_all(a.f, path, &padded, 8, err) || st_write_all(a.f, path, json, len, err) ? -1 : 0;
    for (size_t i = len; i < padded && rc == 0; i++) rc = st_write_all(a.f, path, " ", 1, err);
    for (int i = 0; i < n && rc == 0; i++)
        rc = st_write_all(a.f, path, tensors[i].data, (size_t)sft_bytes(&tensors[i]), err);
    free(json);
    if (rc == 0) return st_atomic_commit(&a, err);
    st_atomic_abort(&a);
    return -1;
}

/* ---- reading -------------------------------------------------------------------------------- */

/* a JSON number that is an integer in [0, max] */
static int json_index(const cJSON *v, int64_t max, int64_t *out) {
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > (double)max ||
        v->valuedouble != floor(v->valuedouble))
        return -1;
    *out = (int64_t)v->valuedouble;
    return 0;
}

static int parse_dtype(const char *s, SftDtype *out) {
    for (int d = 0; d < SFT_DTYPES; d++)
        if (strcmp(s, DTYPE_NAME[d]) == 0) return *out = (SftDtype)d, 0;
    return -1;
}

/* one tensor entry of the header; begin/end are its byte offsets in the data of data_bytes */
static int parse_tensor(const char *path, const cJSON *o, int64_t data_bytes, SftTensor *t, int64_t *begin,
                        int64_t *end, char *err) {
    const char *name = o->string;
    if (strlen(name) >= sizeof t->name)
        return st_errorf(err, "%s: tensor '%.40s...': name: expected at most %zu bytes, found %zu", path, name,
                         sizeof t->name - 1, strlen(name));
    snprintf(t->name, sizeof t->name, "%s", name);
    const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(o, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(o, "shape");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(o, "data_offsets");
    if (!cJSON_IsString(dtype))
        return st_errorf(err, "%s: tensor '%s': dtype: expected a string, found none or another JSON value", path,
                         name);
    if (parse_dtype(dtype->valuestring, &t->dtype))
        return st_errorf(err, "%s: tensor '%s': dtype: expected F64, F32, I32 or U8, found '%s'", path, name,
                         dtype->valuestring);
    if (!cJSON_IsArray(shape) || cJSON_GetArraySize(shape) > SFT_MAX_DIMS)
        return st_errorf(err, "%s: tensor '%s': shape: expected an array of at most %d sizes", path, name,
                         SFT_MAX_DIMS);
    t->ndim = cJSON_GetArraySize(shape);
    int64_t count = 1;
    for (int d = 0; d < t->ndim; d++) {
        if (json_index(cJSON_GetArrayItem(shape, d), data_bytes, &t->shape[d]))
            return st_errorf(err, "%s: tensor '%s': shape[%d]: expected an integer from 0 to %lld (the data's size)",
                             path, name, d, (long long)data_bytes);
        /* saturates past data_bytes (such a tensor cannot fit anyway), so the product never overflows */
        count = t->shape[d] && count > data_bytes / t->shape[d] ? data_bytes + 1 : count * t->shape[d];
    }
    if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2 ||
        json_index(cJSON_GetArrayItem(off, 0), INT64_MAX / 2, begin) ||
        json_index(cJSON_GetArrayItem(off, 1), INT64_MAX / 2, end) || *end < *begin)
        return st_errorf(err, "%s: tensor '%s': data_offsets: expected [begin, end] with 0 <= begin <= end", path,
                         name);
    if (*end > data_bytes)
        return st_errorf(err, "%s: tensor '%s': data_offsets: expected an end within the %lld bytes of data, found "
                         "%lld (truncated file?)", path, name, (long long)data_bytes, (long long)*end);
    if (count > data_bytes)
        return st_errorf(err, "%s: tensor '%s': shape: expected at most the %lld bytes of data, found more elements",
                         path, name, (long long)data_bytes);
    if (count * DTYPE_BYTES[t->dtype] != *end - *begin)
        return st_errorf(err, "%s: tensor '%s': data_offsets: expected %lld bytes for its shape and dtype %s, found "
                         "%lld", path, name, (long long)(count * DTYPE_BYTES[t->dtype]), DTYPE_NAME[t->dtype],
                         (long long)(*end - *begin));
    return 0;
}

static int check_metadata(const char *path, const cJSON *meta, char *err) {
    if (!cJSON_IsObject(meta)) return st_errorf(err, "%s: __metadata__: expected an object of strings", path);
    const cJSON *v;
    cJSON_ArrayForEach(v, meta) {
        if (!cJSON_IsString(v))
            return st_errorf(err, "%s: __metadata__: key '%s': expected a string, found another JSON value", path,
                             v->string);
    }
    return 0;
}

typedef struct {
    int64_t begin, end;
    const char *name;
} Span;

static int by_begin_then_end(const void *a, const void *b) {
    const Span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return (x->end > y->end) - (x->end < y->end);
}

/* the tensors' spans, in offset order, must cover [0, data_bytes) exactly once */
static int check_tiling(const char *path, Span *spans, int n, int64_t data_bytes, char *err) {
    qsort(spans, (size_t)n, sizeof *spans, by_begin_then_end);
    int64_t at = 0;
    for (int i = 0; i < n; i++) {
        if (spans[i].begin != at)
            return st_errorf(err, "%s: tensor '%s': data_offsets: expected to begin at byte %lld, found %lld (tensors "
                             "must tile the data without gaps or overlaps)", path, spans[i].name, (long long)at,
                             (long long)spans[i].begin);
        at = spans[i].end;
    }
    if (at != data_bytes)
        return st_errorf(err, "%s: data: expected %lld bytes (where the last tensor ends), found %lld", path,
                         (long long)at, (long long)data_bytes);
    return 0;
}

/* the header object: metadata and every tensor */
static int parse_header(const char *path, SftFile *f, const cJSON *root, int64_t data_bytes,
                        const unsigned char *data, char *err) {
    int n = 0;
    const cJSON *o;
    cJSON_ArrayForEach(o, root) n += strcmp(o->string, "__metadata__") != 0;
    f->tensors = st_calloc((size_t)n + 1, sizeof *f->tensors);
    Span *spans = st_malloc(sizeof *spans * ((size_t)n + 1));
    int rc = 0;
    cJSON_ArrayForEach(o, root) {
        if (rc) break;
        if (strcmp(o->string, "__metadata__") == 0) {
            rc = f->metadata ? st_errorf(err, "%s: __metadata__: expected once, found twice", path)
                             : check_metadata(path, o, err);
            if (!rc) f->metadata = cJSON_Duplicate(o, 1);
            continue;
        }
        if (!cJSON_IsObject(o)) {
            rc = st_errorf(err, "%s: tensor '%s': expected an object with dtype, shape, data_offsets", path, o->string);
            break;
        }
        if (sft_find(f, o->string)) {
            rc = st_errorf(err, "%s: tensor '%s': expected once, found twice", path, o->string);
            break;
        }
        Span *s = &spans[f->n];
        rc = parse_tensor(path, o, data_bytes, &f->tensors[f->n], &s->begin, &s->end, err);
        if (rc) break;
        s->name = f->tensors[f->n].name;
        f->tensors[f->n++].data = data + s->begin;
    }
    if (!rc) rc = check_tiling(path, spans, f->n, data_bytes, err);
    free(spans);
    return rc;
}

int sft_load(SftFile *f, const char *path, char *err) {
    memset(f, 0, sizeof *f);
    int64_t size;
    if (st_file_size(path, &size, err)) return -1;
    if (size < 8)
        return st_errorf(err, "%s: truncated: expected at least 8 bytes (the header length), found %lld", path,
                         (long long)size);
    FILE *in = fopen(path, "rb");
    if (!in) return st_errorf(err, "%s: cannot open", path);
    f->bytes = st_malloc((size_t)size);
    int rc = st_read_exact(in, path, f->bytes, (size_t)size, "safetensors file", err);
    fclose(in);
    uint64_t header;
    memcpy(&header, f->bytes, 8);
    int64_t most = size - 8 < SFT_MAX_HEADER ? size - 8 : SFT_MAX_HEADER;
    if (rc == 0 && header > (uint64_t)most)
        rc = st_errorf(err, "%s: header length: expected at most %lld bytes (the rest of the file), found %llu "
                       "(truncated, or not a safetensors file)", path, (long long)most, (unsigned long long)header);
    cJSON *root = rc ? NULL : cJSON_ParseWithLength((const char *)f->bytes + 8, (size_t)header);
    if (rc == 0 && !cJSON_IsObject(root))
        rc = st_errorf(err, "%s: header: expected a JSON object, found %s (not a safetensors file)", path,
                       root ? "another JSON value" : "text that is not JSON");
    if (rc == 0) rc = parse_header(path, f, root, size - 8 - (int64_t)header, f->bytes + 8 + header, err);
    cJSON_Delete(root);
    if (rc) sft_free(f);
    return rc;
}

void sft_free(SftFile *f) {
    free(f->tensors);
    cJSON_Delete(f->metadata);
    free(f->bytes);
    memset(f, 0, sizeof *f);
}

const SftTensor *sft_find(const SftFile *f, const char *name) {
    for (int i = 0; i < f->n; i++)
        if (strcmp(f->tensors[i].name, name) == 0) return &f->tensors[i];
    return NULL;
}

const char *sft_meta(const SftFile *f, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(f->metadata, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}
