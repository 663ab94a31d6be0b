/* tests/test_prepare.c: bin/prepare end to end (run from the repository root, after `make`): text in,
 * shards out that decode back to the input documents and open in the loader; the synthetic stream;
 * and the one-line errors of bad input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../common/util.h"
#include "../data/loader.h"
#include "../data/shard.h"
#include "../data/tokenizer.h"
#include "fixtures.h"

static char dir[64];

static void path_in_dir(char *out, const char *name) { snprintf(out, 256, "%s/%s", dir, name); }


/* runs bin/prepare with args; returns its exit status and its stderr in err_text */
static int run_prepare(const char *args, char *err_text, size_t cap) {
    char cmd[2048], log[300];
    path_in_dir(log, "stderr.txt");
    snprintf(cmd, sizeof cmd, "bin/prepare %s >/dev/null 2>%s", args, log);
    int rc = system(cmd);
    fixture_read_text(log, err_text, cap);
    return rc;
}

#define N_DOCS 12

/* documents of text, one with bytes that are not UTF-8; each names itself at its start ("doc07") */
static void write_corpus(const char *folder, char docs[N_DOCS][600], size_t *lens) {
    mkdir(folder, 0755);
    for (int d = 0; d < N_DOCS; d++) {
        int n = snprintf(docs[d], 600, "doc%02d Call me Ishmael. Some years ago, never mind how long precisely, "
                         "having little or no money in my purse, I thought I would sail about.\n", d);
        if (d == 3) docs[d][n++] = (char)0xff, docs[d][n++] = (char)0xc3; /* invalid UTF-8 */
        lens[d] = (size_t)n;
        char path[300];
        snprintf(path, sizeof path, "%s/%02d.txt", folder, d);
        fixture_write_file(path, docs[d], lens[d]);
    }
}

/* decodes a shard and checks that each document in it is one of the inputs, whole; returns how many */
static int check_shard_docs(const char *path, const Tokenizer *tok, char docs[N_DOCS][600], const size_t *lens,
                            int *seen) {
    char err[ST_ERR_LEN];
    Shard s;
    if (shard_read(path, &s, err)) fail_msg("%s", err);
    assert_int_equal(s.vocab_size, tokenizer_vocab_size(tok));
    int n_docs = 0;
    static uint8_t text[4096];
    for (int64_t i = 0; i < s.n_tokens;) {
        assert_int_equal(s.tokens[i], tokenizer_bos_id(tok)); /* every document starts with BOS */
        int64_t end = i + 1;
        while (end < s.n_tokens && s.tokens[end] != tokenizer_bos_id(tok)) end++;
        size_t n = tokenizer_decode(tok, s.tokens + i + 1, (size_t)(end - i - 1), text, sizeof text);
        int d = (text[3] - '0') * 10 + (text[4] - '0');
        assert_true(d >= 0 && d < N_DOCS);
        assert_int_equal(n, lens[d]);
        assert_memory_equal(text, docs[d], n);
        seen[d]++;
        n_docs++;
        i = end;
    }
    shard_free(&s);
    return n_docs;
}

static void check_prepared_text(const char *out, char docs[N_DOCS][600], const size_t *lens) {
    char path[300], err[ST_ERR_LEN];
    Tokenizer *tok;
    snprintf(path, sizeof path, "%s/tokenizer.bin", out);
    if (tokenizer_load(&tok, path, err)) fail_msg("%s", err);
    int seen[N_DOCS] = {0};
    snprintf(path, sizeof path, "%s/train.bin", out);
    int n_train = check_shard_docs(path, tok, docs, lens, seen);
    snprintf(path, sizeof path, "%s/val.bin", out);
    int n_val = check_shard_docs(path, tok, docs, lens, seen);
    for (int d = 0; d < N_DOCS; d++) assert_int_equal(seen[d], 1); /* each document in one split, once */
    assert_int_equal(n_val, 3);                                     /* round(0.25 * 12) */
    assert_int_equal(n_train, 9);
    Loader ld;
    if (loader_open(&ld, out, 16, BOS_DOC, 1, err)) fail_msg("%s", err);
    assert_int_equal(ld.vocab_size, tokenizer_vocab_size(tok));
    loader_close(&ld);
    tokenizer_free(tok);
}

static void test_prepare_bytes_and_bpe_round_trip_documents(void **state) {
    (void)state;
    char folder[256], out[256], args[1024], err[4096];
    static char docs[N_DOCS][600];
    size_t lens[N_DOCS];
    path_in_dir(folder, "corpus");
    write_corpus(folder, docs, lens);
    path_in_dir(out, "bytes");
    snprintf(args, sizeof args, "--input %s --out %s --val_frac 0.25", folder, out);
    if (run_prepare(args, err, sizeof err)) fail_msg("bin/prepare failed: %s", err);
    check_prepared_text(out, docs, lens);
    path_in_dir(out, "bpe");
    snprintf(args, sizeof args, "--input %s --out %s --val_frac 0.25 --tokenizer bpe --vocab 300", folder, out);
    if (run_prepare(args, err, sizeof err)) fail_msg("bin/prepare failed: %s", err);
    check_prepared_text(out, docs, lens);
}

static void test_prepare_synthetic_stream(void **state) {
    (void)state;
    char out[256], args[512], err[4096], path[300];
    path_in_dir(out, "bb");
    snprintf(args, sizeof args,
             "--synthetic bb --out %s --vocab 40 --triggers 2 --trigger_prob 0.3 --tokens 20000 --doc_len 100", out);
    if (run_prepare(args, err, sizeof err)) fail_msg("bin/prepare failed: %s", err);
    Shard s;
    snprintf(path, sizeof path, "%s/train.bin", out);
    if (shard_read(path, &s, err)) fail_msg("%s", err);
    assert_int_equal(s.vocab_size, 41);
    assert_int_equal(s.bos_id, 40);
    assert_int_equal(s.n_tokens, 18000); /* 200 documents, 20 of them for validation */
    for (int64_t i = 0; i < s.n_tokens; i++) {
        assert_int_equal(s.tokens[i] == 40, i % 100 == 0);
        /* after a trigger inside a document, the token before it returns */
        if (s.tokens[i] < 2 && (i + 1) % 100 != 0) assert_int_equal(s.tokens[i + 1], s.tokens[i - 1]);
    }
    shard_free(&s);
    Loader ld;
    if (loader_open(&ld, out, 64, BOS_PREPEND, 1, err)) fail_msg("%s", err);
    loader_close(&ld);
}

static void expect_prepare_error(const char *args, const char *message) {
    char err[4096];
    if (run_prepare(args, err, sizeof err) == 0) fail_msg("bin/prepare %s succeeded; expected '%s'", args, message);
    if (!strstr(err, message)) fail_msg("stderr '%s' lacks '%s'", err, message);
    assert_non_null(strstr(err, "error: "));
}

static void test_prepare_bad_input_errors(void **state) {
    (void)state;
    char empty[256], one[256], out[256], args[1024];
    path_in_dir(empty, "empty.txt");
    fixture_write_file(empty, "", 0);
    path_in_dir(one, "one.txt");
    fixture_write_file(one, "just one document\n", 18);
    path_in_dir(out, "never");
    snprintf(args, sizeof args, "--input %s --out %s", empty, out);
    expect_prepare_error(args, "empty.txt: empty input: expected at least one byte of text, found 0 bytes");
    snprintf(args, sizeof args, "--input %s --out %s", one, out);
    expect_prepare_error(args, "expected at least 2 documents to split into train and val, found 1");
    snprintf(args, sizeof args, "--input %s --out %s --tokenizer bpe --vocab 100", one, out);
    expect_prepare_error(args, "--vocab: expected 257 to");
    snprintf(args, sizeof args, "--input %s --out %s --tokenizer words", one, out);
    expect_prepare_error(args, "--tokenizer: expected byte or bpe, found 'words'");
    snprintf(args, sizeof args, "--input %s --out %s --val_frac half", one, out);
    expect_prepare_error(args, "--val_frac: expected a decimal number in [0, 1], found 'half'");
    expect_prepare_error("--synthetic bb", "--out: expected a directory, found none");
    snprintf(args, sizeof args, "--synthetic bb --out %s --triggers 64", out);
    expect_prepare_error(args, "stream_triggers: expected 0 to 63 (fewer than the symbols), found 64");
    struct stat st;
    assert_int_equal(stat(out, &st), -1); /* nothing was written */
}

int main(void) {
    if (fixture_make_tmpdir(dir, sizeof dir, "sinktrace_prepare")) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prepare_bytes_and_bpe_round_trip_documents),
        cmocka_unit_test(test_prepare_synthetic_stream),
        cmocka_unit_test(test_prepare_bad_input_errors),
    };
    int rc = cmocka_run_group_tests_name("prepare", tests, NULL, NULL);
    if (fixture_remove_dir(dir) != 0) return 1;
    return rc;
}
