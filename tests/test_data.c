/* tests/test_data.c: tokenizers (bytes, BPE, symbols), BPE training, token shards, corpus reading and
 * the document split, and the error of every corrupt or bad input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../common/binfile.h"
#include "../common/util.h"
#include "../data/bpe.h"
#include "../data/corpus.h"
#include "../data/shard.h"
#include "../data/tokenizer.h"
#include "fixtures.h"

static char dir[64];

static void path_in_dir(char *out, const char *name) { snprintf(out, 256, "%s/%s", dir, name); }


/* words from a few syllables, with spaces, newlines, punctuation, digits and UTF-8 letters */
static size_t make_text(uint8_t *out, size_t n, uint64_t seed) {
    static const char *parts[] = {"th", "e", "wh", "al", "e ", "sea", " ", "\n", ", ", ".", "ship", "é", "—", "42",
                                  "  ", "Ahab", "ing", "ed", " the"};
    StRng r;
    st_rng_seed(&r, seed);
    size_t len = 0;
    for (;;) {
        const char *p = parts[st_rng_below(&r, sizeof parts / sizeof *parts)];
        size_t k = strlen(p);
        if (len + k > n) return len;
        memcpy(out + len, p, k);
        len += k;
    }
}

static Tokenizer *train_tokenizer(const uint8_t *text, size_t n, int n_merges) {
    const uint8_t *docs[1] = {text};
    int32_t *merges;
    int got = bpe_train(docs, &n, 1, n_merges, &merges);
    Tokenizer *tok;
    char err[ST_ERR_LEN];
    assert_int_equal(tokenizer_new_bpe(&tok, merges, got, "test", err), 0);
    free(merges);
    return tok;
}

static void assert_round_trip(const Tokenizer *tok, const uint8_t *bytes, size_t n) {
    int *ids = malloc((n ? n : 1) * sizeof *ids);
    uint8_t *back = malloc(n ? n : 1);
    size_t n_ids = tokenizer_encode(tok, bytes, n, ids);
    assert_true(n_ids <= n);
    for (size_t i = 0; i < n_ids; i++) assert_true(ids[i] >= 0 && ids[i] < tokenizer_vocab_size(tok));
    assert_int_equal(tokenizer_decode(tok, ids, n_ids, back, n), n);
    assert_memory_equal(back, bytes, n);
    free(ids);
    free(back);
}

static void test_byte_tokenizer_round_trips_any_bytes(void **state) {
    (void)state;
    Tokenizer *tok = tokenizer_new_bytes();
    assert_int_equal(tokenizer_vocab_size(tok), 257);
    assert_int_equal(tokenizer_bos_id(tok), 256);
    uint8_t bytes[4096];
    StRng r;
    st_rng_seed(&r, 1);
    for (size_t i = 0; i < sizeof bytes; i++) bytes[i] = (uint8_t)st_rng_below(&r, 256);
    assert_round_trip(tok, bytes, sizeof bytes);
    const char *prose = "Call me Ishmael. Naïve café — 東京 «ça va»\r\n";
    assert_round_trip(tok, (const uint8_t *)prose, strlen(prose));
    const uint8_t *b;
    assert_int_equal(tokenizer_token_bytes(tok, 256, &b), 0); /* BOS decodes to nothing */
    tokenizer_free(tok);
}

static void test_bpe_merges_by_hand(void **state) {
    (void)state;
    /* "aaabdaaabac" is one chunk. Pair counts: aa 4 -> 257 = aa. Then 257 a b d 257 a b a c: (257,a) and
     * (a,b) tie at 2, the smaller pair wins -> 258 = ab. Then (257,258) 2 -> 259 = aaab. Then 259 d 259 a c:
     * all pairs count 1, the smallest is (a,c) -> 260. Then 259 d 259 260: smallest (d,259) -> 261.
     * Then 259 261 260 -> (259,261) = 262, then 262 260 -> 263, and no pair is left. */
    const uint8_t text[] = "aaabdaaabac";
    const uint8_t *docs[1] = {text};
    size_t len = 11;
    int32_t *merges;
    assert_int_equal(bpe_train(docs, &len, 1, 10, &merges), 7);
    const int32_t expected[] = {'a', 'a', 'a', 'b', 257, 258, 'a', 'c', 'd', 259, 259, 261, 262, 260};
    assert_memory_equal(merges, expected, sizeof expected);
    free(merges);
    Tokenizer *tok = train_tokenizer(text, 11, 5);
    int ids[11];
    assert_int_equal(tokenizer_encode(tok, text, 11, ids), 3);
    assert_int_equal(ids[0], 259);
    assert_int_equal(ids[1], 261);
    assert_int_equal(ids[2], 260);
    tokenizer_free(tok);
}

static void test_chunks_keep_words_apart(void **state) {
    (void)state;
    const uint8_t s[] = "Call me  Ishmael.\n\nSome";
    const char *expected[] = {"Call", " me", " ", " Ishmael", ".", "\n\n", "Some"};
    size_t at = 0, n = sizeof s - 1;
    for (int k = 0; k < 7; k++) {
        size_t len = bpe_chunk_len(s + at, n - at);
        assert_int_equal(len, strlen(expected[k]));
        assert_memory_equal(s + at, expected[k], len);
        at += len;
    }
    assert_int_equal(at, n);
}

/* The obvious BPE: recount every pair of every chunk before each merge. The incremental trainer must
 * learn exactly the same merges. */
static int reference_bpe(const uint8_t *text, size_t n, int n_merges, int32_t *merges) {
    int32_t *sym = malloc(n * sizeof *sym);
    size_t *chunk_end = malloc((n + 1) * sizeof *chunk_end);
    int n_chunks = 0;
    for (size_t i = 0; i < n;) {
        i += bpe_chunk_len(text + i, n - i);
        chunk_end[n_chunks++] = i;
    }
    for (size_t i = 0; i < n; i++) sym[i] = text[i];
    int *len = malloc((size_t)n_chunks * sizeof *len);
    size_t *start = malloc((size_t)n_chunks * sizeof *start);
    for (int c = 0; c < n_chunks; c++) {
        start[c] = c ? chunk_end[c - 1] : 0;
        len[c] = (int)(chunk_end[c] - start[c]);
    }
    int vocab = BPE_FIRST_MERGE_ID + n_merges;
    int *count = malloc((size_t)vocab * vocab * sizeof *count);
    int m = 0;
    for (; m < n_merges; m++) {
        memset(count, 0, (size_t)vocab * vocab * sizeof *count);
        for (int c = 0; c < n_chunks; c++)
            for (int i = 0; i + 1 < len[c]; i++) count[sym[start[c] + i] * vocab + sym[start[c] + i + 1]]++;
        int best = -1;
        for (int p = 0; p < vocab * vocab; p++)
            if (count[p] > 0 && (best < 0 || count[p] > count[best])) best = p; /* first max = smallest pair */
        if (best < 0) break;
        int32_t a = best / vocab, b = best % vocab, z = BPE_FIRST_MERGE_ID + m;
        merges[2 * m] = a;
        merges[2 * m + 1] = b;
        for (int c = 0; c < n_chunks; c++) {
            int32_t *s = sym + start[c];
            int o = 0;
            for (int i = 0; i < len[c]; i++) s[o++] = (i + 1 < len[c] && s[i] == a && s[i + 1] == b) ? (i++, z) : s[i];
            len[c] = o;
        }
    }
    free(sym);
    free(chunk_end);
    free(len);
    free(start);
    free(count);
    return m;
}

static void test_bpe_matches_reference_trainer(void **state) {
    (void)state;
    static uint8_t text[12000];
    size_t n = make_text(text, sizeof text, 3);
    int32_t ref[2 * 200], *merges;
    const uint8_t *docs[1] = {text};
    int n_ref = reference_bpe(text, n, 200, ref);
    assert_int_equal(bpe_train(docs, &n, 1, 200, &merges), n_ref);
    assert_true(n_ref > 100);
    assert_memory_equal(merges, ref, 2 * (size_t)n_ref * sizeof *ref);
    free(merges);
}

static void test_bpe_round_trips_text_and_random_bytes(void **state) {
    (void)state;
    static uint8_t text[200000];
    size_t n = make_text(text, sizeof text, 5);
    Tokenizer *tok = train_tokenizer(text, n, 300);
    assert_int_equal(tokenizer_vocab_size(tok), 557);
    assert_round_trip(tok, text, n);
    /* real UTF-8 prose it never saw */
    const char *prose = "Call me Ishmael. Naïve café — 東京 «ça va» 1851!\r\n\tend  ";
    assert_round_trip(tok, (const uint8_t *)prose, strlen(prose));
    /* random bytes (not UTF-8), and long runs of one class that get cut into BPE_CHUNK_MAX pieces */
    StRng r;
    st_rng_seed(&r, 9);
    static uint8_t bytes[100000];
    for (size_t i = 0; i < sizeof bytes; i++) bytes[i] = (uint8_t)st_rng_below(&r, 256);
    assert_round_trip(tok, bytes, sizeof bytes);
    for (size_t i = 0; i < sizeof bytes; i++) bytes[i] = "ae\n "[st_rng_below(&r, i % 1000 < 500 ? 2 : 4)];
    assert_round_trip(tok, bytes, sizeof bytes);
    /* the text compresses: fewer ids than bytes */
    int *ids = malloc(n * sizeof *ids);
    assert_true(tokenizer_encode(tok, text, n, ids) < n / 2);
    free(ids);
    tokenizer_free(tok);
}

static void test_bpe_encoding_independent_of_threads(void **state) {
    (void)state;
    static uint8_t text[300000];
    size_t n = make_text(text, sizeof text, 6);
    Tokenizer *tok = train_tokenizer(text, 20000, 200);
    int *one = malloc(n * sizeof *one), *two = malloc(n * sizeof *two);
    int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    size_t n1 = tokenizer_encode(tok, text, n, one);
    omp_set_num_threads(3); /* more pieces, cut at other places: the same ids */
    size_t n2 = tokenizer_encode(tok, text, n, two);
    omp_set_num_threads(saved);
    assert_int_equal(n1, n2);
    assert_memory_equal(one, two, n1 * sizeof *one);
    free(one);
    free(two);
    tokenizer_free(tok);
}

static void test_tokenizer_save_load_round_trip(void **state) {
    (void)state;
    char path[256], err[ST_ERR_LEN];
    static uint8_t text[20000];
    size_t n = make_text(text, sizeof text, 7);
    Tokenizer *kinds[3] = {tokenizer_new_bytes(), train_tokenizer(text, n, 100), tokenizer_new_symbols(10)};
    path_in_dir(path, "tok.bin");
    for (int k = 0; k < 3; k++) {
        Tokenizer *back;
        assert_int_equal(tokenizer_save(kinds[k], path, err), 0);
        assert_int_equal(tokenizer_load(&back, path, err), 0);
        assert_int_equal(tokenizer_kind(back), tokenizer_kind(kinds[k]));
        assert_int_equal(tokenizer_vocab_size(back), tokenizer_vocab_size(kinds[k]));
        assert_int_equal(tokenizer_bos_id(back), tokenizer_bos_id(kinds[k]));
        for (int id = 0; id < tokenizer_vocab_size(back); id++) {
            const uint8_t *a, *b;
            size_t la = tokenizer_token_bytes(kinds[k], id, &a), lb = tokenizer_token_bytes(back, id, &b);
            assert_int_equal(la, lb);
            assert_memory_equal(a, b, la);
        }
        tokenizer_free(back);
        tokenizer_free(kinds[k]);
    }
}

static void test_symbol_tokenizer(void **state) {
    (void)state;
    Tokenizer *tok = tokenizer_new_symbols(64);
    assert_int_equal(tokenizer_vocab_size(tok), 65);
    assert_int_equal(tokenizer_bos_id(tok), 64);
    int ids[3] = {64, 3, 12};
    uint8_t out[32];
    size_t n = tokenizer_decode(tok, ids, 3, out, sizeof out);
    assert_int_equal(n, 9);
    assert_memory_equal(out, "<s3><s12>", 9);
    tokenizer_free(tok);
}

/* writes a valid tokenizer file, lets `corrupt` damage its bytes, and checks the load error */
static void expect_tokenizer_error(const Tokenizer *tok, void (*corrupt)(uint8_t *, size_t *), const char *message) {
    char path[256], err[ST_ERR_LEN];
    path_in_dir(path, "bad_tok.bin");
    assert_int_equal(tokenizer_save(tok, path, err), 0);
    static uint8_t buf[1 << 16];
    FILE *f = fopen(path, "rb");
    size_t n = fread(buf, 1, sizeof buf, f) - ST_TRAILER_BYTES; /* the damage goes behind the checksum */
    fclose(f);
    corrupt(buf, &n);
    fixture_write_sealed(path, buf, n);
    Tokenizer *back = (Tokenizer *)1;
    if (tokenizer_load(&back, path, err) != -1) fail_msg("corrupt tokenizer loaded; expected an error with '%s'", message);
    assert_null(back);
    assert_non_null(strstr(err, path));
    if (!strstr(err, message)) fail_msg("error '%s' lacks '%s'", err, message);
}

/* header: magic 8, version 4, n_fields 4, then fields kind, vocab, bos, n_merges (8 each); merges at 48 */
static void cut_last_merge(uint8_t *b, size_t *n) { (void)b, *n -= 8; }
static void cut_header(uint8_t *b, size_t *n) { (void)b, *n = 20; }
static void bad_kind(uint8_t *b, size_t *n) { (void)n, b[16] = 7; }
static void bad_vocab(uint8_t *b, size_t *n) { (void)n, b[24] += 1; }
static void future_merge_id(uint8_t *b, size_t *n) { (void)n, b[48] = 0x10, b[49] = 0x27; } /* 10000 */
static void bos_in_merge(uint8_t *b, size_t *n) { (void)n, b[48] = 0x00, b[49] = 0x01; }   /* 256 */
static void other_magic(uint8_t *b, size_t *n) { (void)n, memcpy(b, "STOTHER", 8); }

static void test_corrupt_tokenizer_errors(void **state) {
    (void)state;
    static uint8_t text[5000];
    size_t n = make_text(text, sizeof text, 8);
    Tokenizer *tok = train_tokenizer(text, n, 20);
    expect_tokenizer_error(tok, cut_last_merge, "size: expected 160 bytes of 20 merges after the header, found 152");
    expect_tokenizer_error(tok, cut_header, "truncated");
    expect_tokenizer_error(tok, bad_kind, "kind: expected 0 (bytes), 1 (BPE) or 2 (symbols), found 7");
    expect_tokenizer_error(tok, bad_vocab, "vocab_size/bos_id: expected 277/256");
    expect_tokenizer_error(tok, future_merge_id, "merge 0: expected ids in 0..256 other than BOS 256, found 10000");
    expect_tokenizer_error(tok, bos_in_merge, "found 256");
    expect_tokenizer_error(tok, other_magic, "magic: expected 'STTOKEN', found 'STOTHER'");
    tokenizer_free(tok);
    char err[ST_ERR_LEN], path[256];
    Tokenizer *back;
    path_in_dir(path, "missing_tok.bin");
    assert_int_equal(tokenizer_load(&back, path, err), -1);
    assert_non_null(strstr(err, "missing_tok.bin: cannot open tokenizer"));
}

static void test_shard_round_trip_both_widths(void **state) {
    (void)state;
    char path[256], err[ST_ERR_LEN];
    path_in_dir(path, "shard.bin");
    const int vocabs[2] = {300, 70000}; /* uint16 tokens, then uint32 */
    for (int v = 0; v < 2; v++) {
        int tokens[1000];
        StRng r;
        st_rng_seed(&r, (uint64_t)v);
        for (int i = 0; i < 1000; i++) tokens[i] = i % 100 == 0 ? 256 : (int)st_rng_below(&r, (uint32_t)vocabs[v]);
        assert_int_equal(shard_write(path, tokens, 1000, vocabs[v], 256, err), 0);
        int64_t size;
        assert_int_equal(st_file_size(path, &size, err), 0);
        assert_int_equal(size, 16 + 5 * 8 + 1000 * (v == 0 ? 2 : 4) + ST_TRAILER_BYTES);
        Shard s;
        assert_int_equal(shard_read(path, &s, err), 0);
        assert_int_equal(s.vocab_size, vocabs[v]);
        assert_int_equal(s.bos_id, 256);
        assert_int_equal(s.n_tokens, 1000);
        assert_true(s.n_docs >= 10);
        assert_memory_equal(s.tokens, tokens, sizeof tokens);
        shard_free(&s);
    }
}

static void expect_shard_error(void (*corrupt)(uint8_t *, size_t *), const char *message) {
    char path[256], err[ST_ERR_LEN];
    path_in_dir(path, "bad_shard.bin");
    int tokens[100];
    for (int i = 0; i < 100; i++) tokens[i] = i % 50 == 0 ? 256 : i;
    assert_int_equal(shard_write(path, tokens, 100, 257, 256, err), 0);
    static uint8_t buf[4096];
    FILE *f = fopen(path, "rb");
    size_t n = fread(buf, 1, sizeof buf, f) - ST_TRAILER_BYTES; /* the damage goes behind the checksum */
    fclose(f);
    corrupt(buf, &n);
    fixture_write_sealed(path, buf, n);
    Shard s;
    if (shard_read(path, &s, err) != -1) fail_msg("corrupt shard loaded; expected an error with '%s'", message);
    assert_null(s.tokens);
    assert_non_null(strstr(err, path));
    if (!strstr(err, message)) fail_msg("error '%s' lacks '%s'", err, message);
}

/* header: 16 bytes, then vocab, n_tokens, token_bytes, bos_id, n_docs; tokens from byte 56 */
static void cut_tokens(uint8_t *b, size_t *n) { (void)b, *n -= 10; }
static void huge_count(uint8_t *b, size_t *n) { (void)n, b[30] = 0x7f; } /* n_tokens ~ 2^55 */
static void wide_tokens(uint8_t *b, size_t *n) { (void)n, b[32] = 4; }
static void token_past_vocab(uint8_t *b, size_t *n) { (void)n, b[58] = 0xff, b[59] = 0x01; }
static void wrong_doc_count(uint8_t *b, size_t *n) { (void)n, b[48] = 5; }

static void test_corrupt_shard_errors(void **state) {
    (void)state;
    expect_shard_error(cut_tokens, "size: expected 100 tokens of 2 bytes after the header, found 190 bytes (truncated)");
    expect_shard_error(cut_header, "truncated");
    expect_shard_error(huge_count, "size: expected");
    expect_shard_error(wide_tokens, "token_bytes: expected 2 for vocab_size 257, found 4");
    expect_shard_error(token_past_vocab, "token 1: expected an id below vocab_size 257, found 511");
    expect_shard_error(wrong_doc_count, "n_docs: expected 5 (the header), found 2");
    expect_shard_error(other_magic, "magic: expected 'STSHARD', found 'STOTHER'");
    char path[256], err[ST_ERR_LEN];
    Shard s;
    path_in_dir(path, "missing.bin");
    assert_int_equal(shard_read(path, &s, err), -1);
    assert_non_null(strstr(err, "missing.bin: cannot open shard"));
}

static void test_corpus_reads_folders_in_order_and_rejects_empty_input(void **state) {
    (void)state;
    char sub[256], path[300], err[ST_ERR_LEN];
    path_in_dir(sub, "docs");
    mkdir(sub, 0755);
    snprintf(path, sizeof path, "%s/b.txt", sub);
    fixture_write_file(path, "second\n", 7);
    snprintf(path, sizeof path, "%s/a.txt", sub);
    fixture_write_file(path, "\xff\xfe not utf-8\n", 13); /* any bytes are fine */
    Corpus c = {0};
    assert_int_equal(corpus_add_path(&c, sub, 0, err), 0);
    assert_int_equal(c.n, 2);
    assert_memory_equal(c.doc[0], "\xff\xfe not utf-8\n", 13);
    assert_memory_equal(c.doc[1], "second\n", 7);
    corpus_free(&c);
    /* --doc_bytes cuts a file at the last newline that fits, or at doc_bytes when none does */
    path_in_dir(path, "cut.txt");
    fixture_write_file(path, "ab\ncdefgh\nijklmnopqr", 20);
    assert_int_equal(corpus_add_path(&c, path, 8, err), 0);
    assert_int_equal(c.n, 4);
    assert_int_equal(c.len[0], 3);
    assert_int_equal(c.len[1], 7);
    assert_int_equal(c.len[2], 8);
    assert_int_equal(c.len[3], 2);
    assert_int_equal(c.total_bytes, 20);
    corpus_free(&c);

    snprintf(path, sizeof path, "%s/empty.txt", sub);
    fixture_write_file(path, "", 0);
    assert_int_equal(corpus_add_path(&c, path, 0, err), -1);
    assert_non_null(strstr(err, "empty.txt: empty input: expected at least one byte of text, found 0 bytes"));
    corpus_free(&c);
    path_in_dir(path, "nothing_here");
    mkdir(path, 0755);
    assert_int_equal(corpus_add_path(&c, path, 0, err), -1);
    assert_non_null(strstr(err, "nothing_here: empty input: expected text files in the folder, found none"));
    corpus_free(&c);
    path_in_dir(path, "no_such_file.txt");
    assert_int_equal(corpus_add_path(&c, path, 0, err), -1);
    assert_non_null(strstr(err, "no_such_file.txt: cannot open input"));
    corpus_free(&c);
}

static void test_split_by_document_is_deterministic(void **state) {
    (void)state;
    char err[ST_ERR_LEN];
    uint8_t a[200], b[200], c[200];
    assert_int_equal(corpus_split(200, 0.1, 5, a, err), 0);
    assert_int_equal(corpus_split(200, 0.1, 5, b, err), 0);
    assert_int_equal(corpus_split(200, 0.1, 6, c, err), 0);
    assert_memory_equal(a, b, sizeof a);
    assert_memory_not_equal(a, c, sizeof a);
    int n_val = 0;
    for (int i = 0; i < 200; i++) n_val += a[i];
    assert_int_equal(n_val, 20);
    assert_int_equal(corpus_split(1, 0.1, 5, a, err), -1);
    assert_non_null(strstr(err, "expected at least 2 documents"));
    assert_int_equal(corpus_split(10, 0, 5, a, err), -1);
    assert_non_null(strstr(err, "--val_frac: expected a fraction in (0, 1), found 0"));
}

static void test_split_streams_hold_each_document_once(void **state) {
    (void)state;
    /* documents "doc00 ", "doc01 ", ...: each appears in exactly one of the two encoded streams */
    Corpus c = {0};
    char text[32], err[ST_ERR_LEN], path[256];
    path_in_dir(path, "split");
    mkdir(path, 0755);
    for (int d = 0; d < 30; d++) {
        char file[300];
        snprintf(file, sizeof file, "%s/%02d.txt", path, d);
        int len = snprintf(text, sizeof text, "doc%02d ", d);
        fixture_write_file(file, text, (size_t)len);
    }
    assert_int_equal(corpus_add_path(&c, path, 0, err), 0);
    uint8_t is_val[30];
    assert_int_equal(corpus_split(c.n, 0.2, 1, is_val, err), 0);
    Tokenizer *tok = tokenizer_new_bytes();
    int64_t n_train, n_val;
    int *train = corpus_encode(&c, tok, is_val, 0, &n_train), *val = corpus_encode(&c, tok, is_val, 1, &n_val);
    int seen[30] = {0};
    const int *streams[2] = {train, val};
    int64_t lens[2] = {n_train, n_val};
    for (int s = 0; s < 2; s++)
        for (int64_t i = 0; i < lens[s]; i++) {
            if (streams[s][i] != 256) continue;
            int d = (streams[s][i + 4] - '0') * 10 + (streams[s][i + 5] - '0'); /* BOS d o c D D */
            assert_int_equal(is_val[d], s);
            seen[d]++;
        }
    for (int d = 0; d < 30; d++) assert_int_equal(seen[d], 1);
    free(train);
    free(val);
    tokenizer_free(tok);
    corpus_free(&c);
}

int main(void) {
    if (fixture_make_tmpdir(dir, sizeof dir, "sinktrace_data")) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_byte_tokenizer_round_trips_any_bytes),
        cmocka_unit_test(test_bpe_merges_by_hand),
        cmocka_unit_test(test_chunks_keep_words_apart),
        cmocka_unit_test(test_bpe_matches_reference_trainer),
        cmocka_unit_test(test_bpe_round_trips_text_and_random_bytes),
        cmocka_unit_test(test_bpe_encoding_independent_of_threads),
        cmocka_unit_test(test_tokenizer_save_load_round_trip),
        cmocka_unit_test(test_symbol_tokenizer),
        cmocka_unit_test(test_corrupt_tokenizer_errors),
        cmocka_unit_test(test_shard_round_trip_both_widths),
        cmocka_unit_test(test_corrupt_shard_errors),
        cmocka_unit_test(test_corpus_reads_folders_in_order_and_rejects_empty_input),
        cmocka_unit_test(test_split_by_document_is_deterministic),
        cmocka_unit_test(test_split_streams_hold_each_document_once),
    };
    int rc = cmocka_run_group_tests_name("data", tests, NULL, NULL);
    if (fixture_remove_dir(dir) != 0) return 1;
    return rc;
}
