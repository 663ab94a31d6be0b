/* data/corpus.c: reading documents, the document-level split, and encoding a split into one stream. */
#include "corpus.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../common/util.h"

static void add_doc(Corpus *c, const uint8_t *bytes, size_t n) {
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 64;
        uint8_t **doc = st_malloc((size_t)c->cap * sizeof *doc);
        size_t *len = st_malloc((size_t)c->cap * sizeof *len);
        if (c->n) {
            memcpy(doc, c->doc, (size_t)c->n * sizeof *doc);
            memcpy(len, c->len, (size_t)c->n * sizeof *len);
        }
        free(c->doc);
        free(c->len);
        c->doc = doc;
        c->len = len;
    }
    c->doc[c->n] = st_malloc(n);
    memcpy(c->doc[c->n], bytes, n);
    c->len[c->n++] = n;
    c->total_bytes += (int64_t)n;
}

/* the length of the next document: all that is left, or up to the last newline within doc_bytes */
static size_t next_doc_len(const uint8_t *s, size_t n, size_t doc_bytes) {
    if (doc_bytes == 0 || n <= doc_bytes) return n;
    for (size_t i = doc_bytes; i > 0; i--)
        if (s[i - 1] == '\n') return i;
    return doc_bytes;
}

static int add_file(Corpus *c, const char *path, size_t doc_bytes, char *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return st_errorf(err, "%s: cannot open input: %s", path, strerror(errno));
    int64_t size = 0;
    struct stat st;
    if (fstat(fileno(f), &st) == 0) size = (int64_t)st.st_size;
    if (size == 0) {
        fclose(f);
        return st_errorf(err, "%s: empty input: expected at least one byte of text, found 0 bytes", path);
    }
    uint8_t *buf = st_malloc((size_t)size);
    size_t got = fread(buf, 1, (size_t)size, f);
    fclose(f);
    if (got != (size_t)size) {
        free(buf);
        return st_errorf(err, "%s: reading input: expected %lld bytes, found %zu", path, (long long)size, got);
    }
    for (size_t at = 0; at < got;) {
        size_t n = next_doc_len(buf + at, got - at, doc_bytes);
        add_doc(c, buf + at, n);
        at += n;
    }
    free(buf);
    return 0;
}

static int compare_names(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* the folder's entry names (hidden ones skipped), sorted */
static int list_folder(const char *path, char ***names, int *n, char *err) {
    DIR *d = opendir(path);
    if (!d) return st_errorf(err, "%s: cannot open folder: %s", path, strerror(errno));
    int cap = 64;
    *names = st_malloc((size_t)cap * sizeof **names);
    *n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue; /* ., .. and hidden files */
        if (*n == cap) {
            cap *= 2;
            char **grown = st_malloc((size_t)cap * sizeof *grown);
            memcpy(grown, *names, (size_t)*n * sizeof *grown);
            free(*names);
            *names = grown;
        }
        (*names)[(*n)++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(*names, (size_t)*n, sizeof **names, compare_names);
    return 0;
}

static int add_folder(Corpus *c, const char *path, size_t doc_bytes, char *err) {
    char **names = NULL;
    int n = 0, rc;
    if (list_folder(path, &names, &n, err)) return -1;
    int before = c->n;
    rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        char child[4096];
        snprintf(child, sizeof child, "%s/%s", path, names[i]);
        rc = corpus_add_path(c, child, doc_bytes, err);
    }
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    if (rc == 0 && c->n == before)
        rc = st_errorf(err, "%s: empty input: expected text files in the folder, found none", path);
    return rc;
}

int corpus_add_path(Corpus *c, const char *path, size_t doc_bytes, char *err) {
    struct stat st;
    if (stat(path, &st) != 0) return st_errorf(err, "%s: cannot open input: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode)) return add_folder(c, path, doc_bytes, err);
    if (S_ISREG(st.st_mode)) return add_file(c, path, doc_bytes, err);
    return st_errorf(err, "%s: input: expected a file or a folder, found something else", path);
}

void corpus_free(Corpus *c) {
    for (int i = 0; i < c->n; i++) free(c->doc[i]);
    free(c->doc);
    free(c->len);
    memset(c, 0, sizeof *c);
}

int corpus_split(int n_docs, double val_frac, uint64_t seed, uint8_t *is_val, char *err) {
    if (!(val_frac > 0 && val_frac < 1))
        return st_errorf(err, "--val_frac: expected a fraction in (0, 1), found %g", val_frac);
    if (n_docs < 2)
        return st_errorf(err,
                         "input: expected at least 2 documents to split into train and val, found %d (give a folder "
                         "or several files, or cut a file with --doc_bytes N)",
                         n_docs);
    int k = (int)(val_frac * n_docs + 0.5);
    if (k < 1) k = 1;
    if (k > n_docs - 1) k = n_docs - 1;
    /* a partial Fisher-Yates shuffle: its first k entries are the validation documents */
    int *order = st_malloc((size_t)n_docs * sizeof *order);
    for (int i = 0; i < n_docs; i++) order[i] = i;
    StRng rng;
    st_rng_seed(&rng, seed);
    for (int i = 0; i < k; i++) {
        int j = i + (int)st_rng_below(&rng, (uint32_t)(n_docs - i));
        int t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    memset(is_val, 0, (size_t)n_docs);
    for (int i = 0; i < k; i++) is_val[order[i]] = 1;
    free(order);
    return 0;
}

/* Documents are encoded in parallel, each into the stream at the offset it would have if every
 * byte became one id (an upper bound); the gaps are then closed in document order. */
int *corpus_encode(const Corpus *c, const Tokenizer *tok, const uint8_t *is_val, int want_val, int64_t *n_tokens) {
    int64_t *at = st_malloc(((size_t)c->n + 1) * sizeof *at), *count = st_calloc((size_t)c->n + 1, sizeof *count);
    at[0] = 0;
    for (int i = 0; i < c->n; i++) at[i + 1] = at[i] + (is_val[i] == want_val ? 1 + (int64_t)c->len[i] : 0);
    int *out = st_malloc((size_t)(at[c->n] ? at[c->n] : 1) * sizeof *out);
#pragma omp parallel for schedule(dynamic, 1)
    for (int i = 0; i < c->n; i++) {
        if (is_val[i] != want_val) continue;
        out[at[i]] = tokenizer_bos_id(tok);
        count[i] = 1 + (int64_t)tokenizer_encode(tok, c->doc[i], c->len[i], out + at[i] + 1);
    }
    int64_t n = 0;
    for (int i = 0; i < c->n; i++) {
        memmove(out + n, out + at[i], (size_t)count[i] * sizeof *out);
        n += count[i];
    }
    free(at);
    free(count);
    *n_tokens = n;
    return out;
}
