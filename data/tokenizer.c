/* data/tokenizer.c: byte-level, BPE and symbol tokenizers; encode, decode, save, load. */
#include "tokenizer.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/binfile.h"
#include "../common/util.h"
#include "bpe.h"

#define TOKENIZER_MAGIC "STTOKEN"
#define TOKENIZER_VERSION 2 /* 2: the checksum trailer of common/binfile.h */
#define MAX_MERGES (1 << 20)
#define MAX_SYMBOLS (1 << 20)
enum { FIELD_KIND, FIELD_VOCAB, FIELD_BOS, FIELD_N_MERGES, N_FIELDS };

struct Tokenizer {
    TokenizerKind kind;
    int vocab_size, bos_id, n_merges;
    int32_t *merges;  /* [n_merges][2] */
    int64_t *offset;  /* [vocab_size + 1]: id's bytes are bytes[offset[id] .. offset[id + 1]) */
    uint8_t *bytes;
    int32_t *rank;    /* hash table (left, right) -> merge index, -1 = empty; n_slots entries */
    uint64_t *rank_key;
    size_t n_slots;
};

static Tokenizer *tokenizer_alloc(TokenizerKind kind, int vocab_size, int bos_id, int n_merges) {
    Tokenizer *t = st_calloc(1, sizeof *t);
    t->kind = kind;
    t->vocab_size = vocab_size;
    t->bos_id = bos_id;
    t->n_merges = n_merges;
    t->offset = st_calloc((size_t)vocab_size + 1, sizeof *t->offset);
    return t;
}

/* ids 0-255 decode to their byte, BOS to nothing */
static void fill_byte_tokens(Tokenizer *t, size_t total_bytes) {
    t->bytes = st_malloc(total_bytes);
    for (int b = 0; b < 256; b++) {
        t->bytes[b] = (uint8_t)b;
        t->offset[b + 1] = b + 1;
    }
    t->offset[257] = 256;
}

Tokenizer *tokenizer_new_bytes(void) {
    Tokenizer *t = tokenizer_alloc(TOK_BYTES, 257, 256, 0);
    fill_byte_tokens(t, 256);
    return t;
}

Tokenizer *tokenizer_new_symbols(int n_symbols) {
    Tokenizer *t = tokenizer_alloc(TOK_SYMBOLS, n_symbols + 1, n_symbols, 0);
    t->bytes = st_malloc((size_t)n_symbols * 12 + 1);
    int64_t at = 0;
    for (int s = 0; s < n_symbols; s++) {
        at += sprintf((char *)t->bytes + at, "<s%d>", s);
        t->offset[s + 1] = at;
    }
    t->offset[n_symbols + 1] = at; /* BOS decodes to nothing */
    return t;
}

static uint64_t pair_hash(int32_t a, int32_t b) {
    uint64_t x = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

static void build_rank_table(Tokenizer *t) {
    t->n_slots = 16;
    while (t->n_slots < 2 * (size_t)t->n_merges) t->n_slots *= 2;
    t->rank = st_malloc(t->n_slots * sizeof *t->rank);
    t->rank_key = st_malloc(t->n_slots * sizeof *t->rank_key);
    memset(t->rank, 0xff, t->n_slots * sizeof *t->rank);
    for (int i = 0; i < t->n_merges; i++) {
        int32_t a = t->merges[2 * i], b = t->merges[2 * i + 1];
        size_t h = pair_hash(a, b) & (t->n_slots - 1);
        while (t->rank[h] >= 0) h = (h + 1) & (t->n_slots - 1);
        t->rank[h] = i;
        t->rank_key[h] = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    }
}

/* the merge index of the pair (a, b), or -1 if they never merge */
static int32_t merge_rank(const Tokenizer *t, int32_t a, int32_t b) {
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    size_t h = pair_hash(a, b) & (t->n_slots - 1);
    while (t->rank[h] >= 0) {
        if (t->rank_key[h] == key) return t->rank[h];
        h = (h + 1) & (t->n_slots - 1);
    }
    return -1;
}

int tokenizer_new_bpe(Tokenizer **tok, const int32_t *merges, int n_merges, const char *what, char *err) {
    *tok = NULL;
    if (n_merges < 0 || n_merges > MAX_MERGES)
        return st_errorf(err, "%s: n_merges: expected 0 to %d, found %d", what, MAX_MERGES, n_merges);
    /* each merge may only join ids that exist before it (bytes or earlier merges), never BOS */
    size_t total = 256;
    for (int i = 0; i < n_merges; i++)
        for (int s = 0; s < 2; s++) {
            int32_t id = merges[2 * i + s];
            if (id < 0 || id >= BPE_FIRST_MERGE_ID + i || id == 256)
                return st_errorf(err, "%s: merge %d: expected ids in 0..%d other than BOS 256, found %d", what, i,
                                 BPE_FIRST_MERGE_ID + i - 1, id);
        }
    Tokenizer *t = tokenizer_alloc(TOK_BPE, BPE_FIRST_MERGE_ID + n_merges, 256, n_merges);
    t->merges = st_malloc(2 * (size_t)(n_merges ? n_merges : 1) * sizeof *t->merges);
    memcpy(t->merges, merges, 2 * (size_t)n_merges * sizeof *t->merges);
    /* a merged token's bytes are its left part's bytes followed by its right part's */
    int64_t *len = st_calloc((size_t)t->vocab_size, sizeof *len);
    for (int b = 0; b < 256; b++) len[b] = 1;
    for (int i = 0; i < n_merges; i++) {
        len[BPE_FIRST_MERGE_ID + i] = len[merges[2 * i]] + len[merges[2 * i + 1]];
        total += (size_t)len[BPE_FIRST_MERGE_ID + i];
    }
    fill_byte_tokens(t, total);
    for (int i = 0; i < n_merges; i++) {
        int id = BPE_FIRST_MERGE_ID + i;
        int32_t a = merges[2 * i], b = merges[2 * i + 1];
        int64_t at = t->offset[id];
        memcpy(t->bytes + at, t->bytes + t->offset[a], (size_t)len[a]);
        memcpy(t->bytes + at + len[a], t->bytes + t->offset[b], (size_t)len[b]);
        t->offset[id + 1] = at + len[id];
    }
    free(len);
    build_rank_table(t);
    *tok = t;
    return 0;
}

void tokenizer_free(Tokenizer *tok) {
    if (!tok) return;
    free(tok->merges);
    free(tok->offset);
    free(tok->bytes);
    free(tok->rank);
    free(tok->rank_key);
    free(tok);
}

TokenizerKind tokenizer_kind(const Tokenizer *tok) { return tok->kind; }
int tokenizer_vocab_size(const Tokenizer *tok) { return tok->vocab_size; }
int tokenizer_bos_id(const Tokenizer *tok) { return tok->bos_id; }

size_t tokenizer_token_bytes(const Tokenizer *tok, int id, const uint8_t **bytes) {
    if (id < 0 || id >= tok->vocab_size) {
        *bytes = tok->bytes;
        return 0;
    }
    *bytes = tok->bytes + tok->offset[id];
    return (size_t)(tok->offset[id + 1] - tok->offset[id]);
}

size_t tokenizer_decode(const Tokenizer *tok, const int *ids, size_t n, uint8_t *out, size_t cap) {
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *b;
        size_t len = tokenizer_token_bytes(tok, ids[i], &b);
        if (total < cap) memcpy(out + total, b, len < cap - total ? len : cap - total);
        total += len;
    }
    return total;
}

/* BPE on one chunk: repeatedly merge every occurrence (left to right) of the pair learned first,
 * exactly as training rewrote the words. rank[i] caches the merge index of (sym[i], sym[i+1]); after a
 * merge only the pairs next to a new symbol are looked up again. */
static size_t encode_chunk(const Tokenizer *t, const uint8_t *s, size_t n, int *out) {
    int32_t sym[BPE_CHUNK_MAX], rank[BPE_CHUNK_MAX];
    int len = (int)n;
    for (int i = 0; i < len; i++) sym[i] = s[i];
    for (int i = 0; i + 1 < len; i++) rank[i] = merge_rank(t, sym[i], sym[i + 1]);
    for (;;) {
        int32_t best = -1;
        for (int i = 0; i + 1 < len; i++)
            if (rank[i] >= 0 && (best < 0 || rank[i] < best)) best = rank[i];
        if (best < 0) break;
        int32_t a = t->merges[2 * best], b = t->merges[2 * best + 1], z = BPE_FIRST_MERGE_ID + best;
        int32_t nsym[BPE_CHUNK_MAX], nrank[BPE_CHUNK_MAX], from[BPE_CHUNK_MAX]; /* from: old index, -1 if merged */
        int o = 0;
        for (int i = 0; i < len; i++, o++) {
            if (i + 1 < len && sym[i] == a && sym[i + 1] == b) {
                nsym[o] = z;
                from[o] = -1;
                i++;
            } else {
                nsym[o] = sym[i];
                from[o] = i;
            }
        }
        /* a pair of two unmerged neighbours that were already adjacent keeps its rank */
        for (int i = 0; i + 1 < o; i++)
            nrank[i] = from[i] >= 0 && from[i + 1] == from[i] + 1 ? rank[from[i]] : merge_rank(t, nsym[i], nsym[i + 1]);
        len = o;
        memcpy(sym, nsym, (size_t)len * sizeof *sym);
        memcpy(rank, nrank, (size_t)len * sizeof *rank);
    }
    for (int i = 0; i < len; i++) out[i] = sym[i];
    return (size_t)len;
}

static size_t encode_bpe_range(const Tokenizer *t, const uint8_t *s, size_t n, int *out) {
    size_t n_out = 0;
    for (size_t i = 0; i < n;) {
        size_t len = bpe_chunk_len(s + i, n - i);
        n_out += encode_chunk(t, s + i, len, out + n_out);
        i += len;
    }
    return n_out;
}

#define PARALLEL_MIN_BYTES (1 << 16)
#define MAX_PIECES 256

/* Cuts the input into pieces at safe splits (line starts), encodes each piece into out at its own
 * byte offset (a piece of k bytes never yields more than k ids), then closes the gaps in order. */
static size_t encode_bpe(const Tokenizer *t, const uint8_t *s, size_t n, int *out) {
    int pieces = n < PARALLEL_MIN_BYTES ? 1 : 4 * omp_get_max_threads();
    if (pieces > MAX_PIECES) pieces = MAX_PIECES;
    size_t start[MAX_PIECES + 1], count[MAX_PIECES];
    start[0] = 0;
    for (int k = 1; k < pieces; k++) {
        size_t p = n / (size_t)pieces * (size_t)k;
        if (p < start[k - 1]) p = start[k - 1];
        while (p < n && !bpe_is_safe_split(s, p)) p++;
        start[k] = p;
    }
    start[pieces] = n;
#pragma omp parallel for schedule(dynamic, 1)
    for (int k = 0; k < pieces; k++) count[k] = encode_bpe_range(t, s + start[k], start[k + 1] - start[k], out + start[k]);
    size_t total = 0;
    for (int k = 0; k < pieces; k++) {
        memmove(out + total, out + start[k], count[k] * sizeof *out);
        total += count[k];
    }
    return total;
}

size_t tokenizer_encode(const Tokenizer *tok, const uint8_t *bytes, size_t n, int *out) {
    switch (tok->kind) {
    case TOK_BYTES:
        for (size_t i = 0; i < n; i++) out[i] = bytes[i];
        return n;
    case TOK_BPE:
        return encode_bpe(tok, bytes, n, out);
    case TOK_SYMBOLS:
        break;
    }
    return 0;
}

int tokenizer_save(const Tokenizer *tok, const char *path, char *err) {
    StHeader h;
    st_header_init(&h, TOKENIZER_MAGIC, TOKENIZER_VERSION);
    st_header_add(&h, tok->kind);
    st_header_add(&h, tok->vocab_size);
    st_header_add(&h, tok->bos_id);
    st_header_add(&h, tok->n_merges);
    StAtomic a;
    if (st_atomic_open(&a, path, err)) return -1;
    if (st_atomic_write_header(&a, &h, err) ||
        st_write_all(a.f, path, tok->merges, 2 * (size_t)tok->n_merges * sizeof *tok->merges, err)) {
        st_atomic_abort(&a);
        return -1;
    }
    return st_atomic_commit(&a, err);
}

/* checks the header fields against what the kind requires */
static int check_tokenizer_header(const char *path, const StHeader *h, char *err) {
    int64_t kind = h->field[FIELD_KIND], vocab = h->field[FIELD_VOCAB], bos = h->field[FIELD_BOS],
            merges = h->field[FIELD_N_MERGES];
    if (kind < TOK_BYTES || kind > TOK_SYMBOLS)
        return st_errorf(err, "%s: kind: expected 0 (bytes), 1 (BPE) or 2 (symbols), found %lld", path, (long long)kind);
    if (merges < 0 || merges > MAX_MERGES || (kind != TOK_BPE && merges != 0))
        return st_errorf(err, "%s: n_merges: expected %s, found %lld", path, kind == TOK_BPE ? "0 to 1048576" : "0",
                         (long long)merges);
    if (kind != TOK_SYMBOLS && (vocab != BPE_FIRST_MERGE_ID + merges || bos != 256))
        return st_errorf(err, "%s: vocab_size/bos_id: expected %lld/256 (257 + n_merges), found %lld/%lld", path,
                         (long long)(BPE_FIRST_MERGE_ID + merges), (long long)vocab, (long long)bos);
    if (kind == TOK_SYMBOLS && (vocab < 2 || vocab > MAX_SYMBOLS + 1 || bos != vocab - 1))
        return st_errorf(err, "%s: vocab_size/bos_id: expected 2..%d symbols+BOS with BOS last, found %lld/%lld",
                         path, MAX_SYMBOLS + 1, (long long)vocab, (long long)bos);
    return 0;
}

static int read_tokenizer(FILE *f, const char *path, Tokenizer **tok, char *err) {
    StHeader h;
    if (st_header_read(f, path, TOKENIZER_MAGIC, TOKENIZER_VERSION, N_FIELDS, &h, err) ||
        check_tokenizer_header(path, &h, err))
        return -1;
    int64_t payload, merges = h.field[FIELD_N_MERGES];
    if (st_payload_bytes(path, &h, &payload, err)) return -1;
    if (payload != 8 * merges)
        return st_errorf(err, "%s: size: expected %lld bytes of %lld merges after the header, found %lld", path,
                         (long long)(8 * merges), (long long)merges, (long long)payload);
    if (h.field[FIELD_KIND] == TOK_BYTES) {
        *tok = tokenizer_new_bytes();
        return 0;
    }
    if (h.field[FIELD_KIND] == TOK_SYMBOLS) {
        *tok = tokenizer_new_symbols((int)h.field[FIELD_VOCAB] - 1);
        return 0;
    }
    int32_t *m = st_malloc(8 * (size_t)(merges ? merges : 1));
    int rc = st_read_exact(f, path, m, 8 * (size_t)merges, "merges", err);
    if (rc == 0) rc = tokenizer_new_bpe(tok, m, (int)merges, path, err);
    free(m);
    return rc;
}

int tokenizer_load(Tokenizer **tok, const char *path, char *err) {
    *tok = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return st_errorf(err, "%s: cannot open tokenizer: missing or unreadable (run bin/prepare)", path);
    int rc = read_tokenizer(f, path, tok, err);
    fclose(f);
    return rc;
}
