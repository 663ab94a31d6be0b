/* data/bpe_train.c: the pre-tokenizer (chunks) and incremental BPE training.
 *
 * Training works on distinct chunks ("words") with their counts. A table holds, for every adjacent
 * symbol pair, its total count over the corpus and the list of words it occurs in. Each merge
 * rewrites only the words that contain the merged pair and updates the counts of their pairs, so a
 * merge costs time proportional to the words it touches, not to the corpus. The most frequent pair is
 * found with a max-heap whose stale entries (a count that has since changed) are skipped when popped. */
#include "bpe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/util.h"

enum { CLASS_SPACE, CLASS_LETTER, CLASS_DIGIT, CLASS_PUNCT };

/* bytes >= 0x80 count as letters so that UTF-8 characters stay inside words */
static int byte_class(uint8_t c) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f') return CLASS_SPACE;
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80) return CLASS_LETTER;
    if (c >= '0' && c <= '9') return CLASS_DIGIT;
    return CLASS_PUNCT;
}

size_t bpe_chunk_len(const uint8_t *s, size_t n) {
    size_t i = 0;
    /* a single space joins the word that follows it: " whale" */
    if (s[0] == ' ' && n > 1 && byte_class(s[1]) != CLASS_SPACE) i = 1;
    int c = byte_class(s[i]);
    size_t j = i;
    while (j < n && byte_class(s[j]) == c) j++;
    /* a whitespace run leaves its last space to the word after it: "\n  the" -> "\n ", " the" */
    if (c == CLASS_SPACE && j < n && j - i >= 2 && s[j - 1] == ' ') j--;
    return j < BPE_CHUNK_MAX ? j : BPE_CHUNK_MAX;
}

int bpe_is_safe_split(const uint8_t *s, size_t p) {
    return p > 0 && s[p - 1] == '\n' && byte_class(s[p]) != CLASS_SPACE;
}

#define GROW(ptr, new_cap) ptr = st_realloc(ptr, sizeof *(ptr) * (size_t)(new_cap))

/* ---- growable int32 list ---- */
typedef struct {
    int32_t *v;
    int n, cap;
} IntList;

static void list_push(IntList *l, int32_t x) {
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 4;
        GROW(l->v, l->cap);
    }
    l->v[l->n++] = x;
}

/* ---- hashing for the open-addressing tables below (linear probing, power-of-two sizes) ---- */
static uint64_t mix64(uint64_t x) {
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

/* ---- distinct words ---- */
typedef struct {
    int32_t *sym;  /* all words' symbols, back to back; a word only ever shrinks in place */
    int64_t *start; /* word w is sym[start[w] .. start[w] + len[w]) */
    int32_t *len;
    int64_t *count; /* occurrences of the word in the corpus */
    int32_t *stamp; /* last merge that rewrote the word (to visit each word once per merge) */
    int n, cap;
    int64_t n_sym, sym_cap;
    int32_t *slots; /* hash table of word indices, -1 = empty */
    size_t n_slots;
} Words;

static uint64_t hash_bytes(const uint8_t *s, size_t n) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 1099511628211ull;
    return mix64(h);
}

static int word_equals(const Words *W, int w, const uint8_t *s, size_t n) {
    if ((size_t)W->len[w] != n) return 0;
    const int32_t *sym = W->sym + W->start[w];
    for (size_t i = 0; i < n; i++)
        if (sym[i] != s[i]) return 0;
    return 1;
}

static void words_rehash(Words *W, size_t n_slots) {
    free(W->slots);
    W->slots = st_malloc(n_slots * sizeof *W->slots);
    memset(W->slots, 0xff, n_slots * sizeof *W->slots);
    W->n_slots = n_slots;
    for (int w = 0; w < W->n; w++) {
        const int32_t *sym = W->sym + W->start[w];
        uint8_t buf[BPE_CHUNK_MAX];
        for (int i = 0; i < W->len[w]; i++) buf[i] = (uint8_t)sym[i];
        size_t h = hash_bytes(buf, (size_t)W->len[w]) & (n_slots - 1);
        while (W->slots[h] >= 0) h = (h + 1) & (n_slots - 1);
        W->slots[h] = w;
    }
}

static void words_add_chunk(Words *W, const uint8_t *s, size_t n) {
    if ((size_t)W->n * 2 >= W->n_slots) words_rehash(W, W->n_slots ? 2 * W->n_slots : 1024);
    size_t h = hash_bytes(s, n) & (W->n_slots - 1);
    while (W->slots[h] >= 0) {
        if (word_equals(W, W->slots[h], s, n)) {
            W->count[W->slots[h]]++;
            return;
        }
        h = (h + 1) & (W->n_slots - 1);
    }
    if (W->n == W->cap) {
        W->cap = W->cap ? 2 * W->cap : 1024;
        GROW(W->start, W->cap);
        GROW(W->len, W->cap);
        GROW(W->count, W->cap);
        GROW(W->stamp, W->cap);
    }
    if (W->n_sym + (int64_t)n > W->sym_cap) {
        W->sym_cap = 2 * (W->sym_cap + (int64_t)n);
        GROW(W->sym, W->sym_cap);
    }
    int w = W->n++;
    W->start[w] = W->n_sym;
    W->len[w] = (int32_t)n;
    W->count[w] = 1;
    W->stamp[w] = -1;
    for (size_t i = 0; i < n; i++) W->sym[W->n_sym++] = s[i];
    W->slots[h] = w;
}

static void words_free(Words *W) {
    free(W->sym);
    free(W->start);
    free(W->len);
    free(W->count);
    free(W->stamp);
    free(W->slots);
}

/* ---- pairs: counts, the words they occur in, and a hash table from (left, right) to pair index ---- */
typedef struct {
    int32_t *left, *right;
    int64_t *count;
    int64_t *heap_count; /* count of the pair's newest heap entry */
    IntList *words;      /* may hold stale or repeated entries: checked when used */
    uint8_t *dirty;      /* count changed during the current merge */
    int n, cap;
    int32_t *slots;
    size_t n_slots;
    IntList dirty_list;
} Pairs;

static uint64_t pair_key(int32_t a, int32_t b) { return ((uint64_t)(uint32_t)a << 32) | (uint32_t)b; }

static void pairs_rehash(Pairs *P, size_t n_slots) {
    free(P->slots);
    P->slots = st_malloc(n_slots * sizeof *P->slots);
    memset(P->slots, 0xff, n_slots * sizeof *P->slots);
    P->n_slots = n_slots;
    for (int p = 0; p < P->n; p++) {
        size_t h = mix64(pair_key(P->left[p], P->right[p])) & (n_slots - 1);
        while (P->slots[h] >= 0) h = (h + 1) & (n_slots - 1);
        P->slots[h] = p;
    }
}

static int pairs_get(Pairs *P, int32_t a, int32_t b) {
    if ((size_t)P->n * 2 >= P->n_slots) pairs_rehash(P, P->n_slots ? 2 * P->n_slots : 4096);
    size_t h = mix64(pair_key(a, b)) & (P->n_slots - 1);
    while (P->slots[h] >= 0) {
        int p = P->slots[h];
        if (P->left[p] == a && P->right[p] == b) return p;
        h = (h + 1) & (P->n_slots - 1);
    }
    if (P->n == P->cap) {
        P->cap = P->cap ? 2 * P->cap : 4096;
        GROW(P->left, P->cap);
        GROW(P->right, P->cap);
        GROW(P->count, P->cap);
        GROW(P->heap_count, P->cap);
        GROW(P->words, P->cap);
        GROW(P->dirty, P->cap);
    }
    int p = P->n++;
    P->left[p] = a;
    P->right[p] = b;
    P->count[p] = 0;
    P->heap_count[p] = 0;
    P->words[p] = (IntList){0};
    P->dirty[p] = 0;
    P->slots[h] = p;
    return p;
}

/* adds delta occurrences of the pair (a, b) seen in word w */
static void pairs_add(Pairs *P, int32_t a, int32_t b, int64_t delta, int w, int record_word) {
    int p = pairs_get(P, a, b);
    P->count[p] += delta;
    if (!P->dirty[p]) {
        P->dirty[p] = 1;
        list_push(&P->dirty_list, p);
    }
    IntList *l = &P->words[p];
    if (record_word && (l->n == 0 || l->v[l->n - 1] != w)) list_push(l, w);
}

static void pairs_free(Pairs *P) {
    for (int p = 0; p < P->n; p++) free(P->words[p].v);
    free(P->left);
    free(P->right);
    free(P->count);
    free(P->heap_count);
    free(P->words);
    free(P->dirty);
    free(P->slots);
    free(P->dirty_list.v);
}

/* ---- max-heap of (count, pair): larger count first, then smaller (left, right) ---- */
typedef struct {
    int64_t count;
    int32_t pair;
} HeapEntry;

typedef struct {
    HeapEntry *e;
    size_t n, cap;
    const Pairs *P;
} Heap;

static int heap_before(const Heap *H, HeapEntry x, HeapEntry y) {
    if (x.count != y.count) return x.count > y.count;
    const Pairs *P = H->P;
    if (P->left[x.pair] != P->left[y.pair]) return P->left[x.pair] < P->left[y.pair];
    return P->right[x.pair] < P->right[y.pair];
}

static void heap_push(Heap *H, HeapEntry x) {
    if (H->n == H->cap) {
        H->cap = H->cap ? 2 * H->cap : 4096;
        GROW(H->e, H->cap);
    }
    size_t i = H->n++;
    while (i > 0 && heap_before(H, x, H->e[(i - 1) / 2])) {
        H->e[i] = H->e[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    H->e[i] = x;
}

static HeapEntry heap_pop(Heap *H) {
    HeapEntry top = H->e[0], last = H->e[--H->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= H->n) break;
        if (c + 1 < H->n && heap_before(H, H->e[c + 1], H->e[c])) c++;
        if (!heap_before(H, H->e[c], last)) break;
        H->e[i] = H->e[c];
        i = c;
    }
    if (H->n) H->e[i] = last;
    return top;
}

/* pushes a fresh entry for every pair whose count changed since its last entry */
static void push_dirty_pairs(Pairs *P, Heap *H) {
    for (int k = 0; k < P->dirty_list.n; k++) {
        int p = P->dirty_list.v[k];
        P->dirty[p] = 0;
        if (P->count[p] > 0 && P->count[p] != P->heap_count[p]) {
            P->heap_count[p] = P->count[p];
            heap_push(H, (HeapEntry){P->count[p], p});
        }
    }
    P->dirty_list.n = 0;
}

/* the most frequent pair still present, or -1 when none is left */
static int pop_best_pair(Heap *H, const Pairs *P) {
    while (H->n) {
        HeapEntry top = heap_pop(H);
        if (top.count == P->count[top.pair] && top.count > 0) return top.pair;
    }
    return -1;
}

static int word_has_pair(const int32_t *sym, int len, int32_t a, int32_t b) {
    for (int i = 0; i + 1 < len; i++)
        if (sym[i] == a && sym[i + 1] == b) return 1;
    return 0;
}

/* replaces every (a, b) in the word by z, left to right; returns the new length */
static int merge_in_word(int32_t *sym, int len, int32_t a, int32_t b, int32_t z) {
    int out = 0;
    for (int i = 0; i < len; i++) {
        if (i + 1 < len && sym[i] == a && sym[i + 1] == b) {
            sym[out++] = z;
            i++;
        } else {
            sym[out++] = sym[i];
        }
    }
    return out;
}

/* rewrites each word holding (a, b): its old pairs are subtracted, its new pairs added */
static void apply_merge(Words *W, Pairs *P, int best, int32_t z, int32_t stamp) {
    int32_t a = P->left[best], b = P->right[best];
    IntList todo = P->words[best]; /* (a, b) gains no words during its own merge: safe to walk */
    P->words[best] = (IntList){0};
    for (int k = 0; k < todo.n; k++) {
        int w = todo.v[k];
        int32_t *sym = W->sym + W->start[w];
        if (W->stamp[w] == stamp || !word_has_pair(sym, W->len[w], a, b)) continue;
        W->stamp[w] = stamp;
        int64_t c = W->count[w];
        for (int i = 0; i + 1 < W->len[w]; i++) pairs_add(P, sym[i], sym[i + 1], -c, w, 0);
        W->len[w] = merge_in_word(sym, W->len[w], a, b, z);
        for (int i = 0; i + 1 < W->len[w]; i++)
            pairs_add(P, sym[i], sym[i + 1], c, w, sym[i] == z || sym[i + 1] == z);
    }
    free(todo.v);
}

int bpe_train(const uint8_t *const *docs, const size_t *lens, int n_docs, int n_merges, int32_t **merges) {
    Words W = {0};
    for (int d = 0; d < n_docs; d++)
        for (size_t i = 0; i < lens[d];) {
            size_t n = bpe_chunk_len(docs[d] + i, lens[d] - i);
            words_add_chunk(&W, docs[d] + i, n);
            i += n;
        }
    Pairs P = {0};
    Heap H = {.P = &P};
    for (int w = 0; w < W.n; w++) {
        const int32_t *sym = W.sym + W.start[w];
        for (int i = 0; i + 1 < W.len[w]; i++) pairs_add(&P, sym[i], sym[i + 1], W.count[w], w, 1);
    }
    push_dirty_pairs(&P, &H);
    *merges = st_malloc(2 * (size_t)(n_merges > 0 ? n_merges : 1) * sizeof **merges);
    int m = 0;
    for (; m < n_merges; m++) {
        int best = pop_best_pair(&H, &P);
        if (best < 0) break;
        (*merges)[2 * m] = P.left[best];
        (*merges)[2 * m + 1] = P.right[best];
        apply_merge(&W, &P, best, BPE_FIRST_MERGE_ID + m, m);
        push_dirty_pairs(&P, &H);
    }
    free(H.e);
    pairs_free(&P);
    words_free(&W);
    return m;
}
