/* tests/test_loader.c: the batch loader: determinism, the BOS property of each policy, exact resume
 * from a saved state, the fixed validation set, and the errors of mismatched or too short data.
 *
 * The test data uses a symbol tokenizer with 5000 symbols (BOS = 5000): with BOS removed, the stream
 * counts 0, 1, 2, ... so every window shows where it came from. */
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
#include "../train/config.h"
#include "fixtures.h"

#define N_SYMBOLS 5000
#define BOS N_SYMBOLS
#define T 32
#define B 8

static char dir[64];

/* a split of documents with the given lengths (cycled) until `content` ordinary tokens: BOS, then the
 * count continues from *next; returns the stream length */
static int64_t make_split(int *out, int content, int *next, const int *doc_lens, int n_lens) {
    int64_t n = 0;
    for (int d = 0; content > 0; d++) {
        int len = doc_lens[d % n_lens] < content ? doc_lens[d % n_lens] : content;
        out[n++] = BOS;
        for (int k = 0; k < len; k++) out[n++] = (*next)++;
        content -= len;
    }
    return n;
}

static void write_data_dir(const char *path, int train_content, int val_content, int shard_vocab) {
    char file[300], err[ST_ERR_LEN];
    mkdir(path, 0755);
    Tokenizer *tok = tokenizer_new_symbols(N_SYMBOLS);
    snprintf(file, sizeof file, "%s/tokenizer.bin", path);
    assert_int_equal(tokenizer_save(tok, file, err), 0);
    tokenizer_free(tok);
    static int stream[2 * N_SYMBOLS];
    const int lens[] = {5, 40, 100, 13, 70, 31, 32};
    int next = 0;
    int64_t n = make_split(stream, train_content, &next, lens, 7);
    snprintf(file, sizeof file, "%s/train.bin", path);
    assert_int_equal(shard_write(file, stream, n, shard_vocab, BOS, err), 0);
    n = make_split(stream, val_content, &next, lens + 2, 5);
    snprintf(file, sizeof file, "%s/val.bin", path);
    assert_int_equal(shard_write(file, stream, n, N_SYMBOLS + 1, BOS, err), 0);
}

static void data_path(char *out, const char *name) { snprintf(out, 256, "%s/%s", dir, name); }

static void open_loader(Loader *ld, BosPolicy bos, uint64_t seed) {
    char path[256], err[ST_ERR_LEN];
    data_path(path, "good");
    if (loader_open(ld, path, T, bos, seed, err) != 0) fail_msg("loader_open: %s", err);
}

/* checks the window's shape under its policy: targets are inputs shifted by one, BOS where it belongs,
 * and the ordinary tokens count up (a contiguous piece of the stream) */
static void check_window(BosPolicy bos, const int *in, const int *tg, const int *doc_first, int n_docs_first) {
    for (int t = 0; t + 1 < T; t++) assert_int_equal(tg[t], in[t + 1]);
    if (bos == BOS_NONE || bos == BOS_START)
        for (int t = 0; t < T; t++) assert_true(in[t] != BOS && tg[t] != BOS);
    else
        assert_int_equal(in[0], BOS);
    if (bos == BOS_PREPEND)
        for (int t = 1; t < T; t++) assert_true(in[t] != BOS && tg[t] != BOS);
    int last = -1;
    for (int t = 0; t <= T; t++) {
        int x = t < T ? in[t] : tg[T - 1];
        if (x == BOS) continue;
        if (last >= 0) assert_int_equal(x, last + 1);
        last = x;
    }
    if (bos == BOS_DOC || bos == BOS_START) { /* the window opens a document: its first ordinary token */
        int found = 0;
        for (int k = 0; k < n_docs_first; k++) found |= doc_first[k] == in[bos == BOS_DOC];
        assert_true(found);
    }
}

/* the first ordinary token of every document (both splits) */
static int doc_firsts(int *firsts) {
    const int lens[] = {5, 40, 100, 13, 70, 31, 32};
    int n = 0, at = 0;
    for (int d = 0; at < 3000; d++) {
        firsts[n++] = at;
        at += lens[d % 7] < 3000 - at ? lens[d % 7] : 3000 - at;
    }
    for (int d = 0; at < 3000 + 600; d++) {
        firsts[n++] = at;
        at += lens[2 + d % 5];
    }
    return n;
}

static int setup(void **state) {
    (void)state;
    char path[256];
    data_path(path, "good");
    write_data_dir(path, 3000, 600, N_SYMBOLS + 1);
    return 0;
}

/* the config key bos reads each policy's name as that policy */
static void test_policy_names_are_the_config_values(void **state) {
    (void)state;
    char err[ST_ERR_LEN];
    TrainConfig c;
    config_defaults(&c);
    for (int k = 0; k < 4; k++) {
        assert_int_equal(config_set(&c, "bos", bos_policy_name((BosPolicy)k), "test", err), 0);
        assert_int_equal(c.bos, k);
    }
    assert_int_equal(config_set(&c, "bos", "first", "test", err), -1);
    assert_string_equal(err, "test: bos: expected one of none|prepend|doc|start, found 'first'");
}

static void test_each_policy_puts_bos_where_it_belongs(void **state) {
    (void)state;
    int firsts[200], n_firsts = doc_firsts(firsts);
    int in[B * T], tg[B * T];
    for (int k = 0; k < 4; k++) {
        Loader ld;
        open_loader(&ld, (BosPolicy)k, 11);
        assert_int_equal(ld.vocab_size, N_SYMBOLS + 1);
        assert_int_equal(ld.bos_id, BOS);
        for (int step = 0; step < 50; step++) {
            loader_train_batch(&ld, in, tg, B);
            for (int b = 0; b < B; b++) check_window(ld.bos, in + b * T, tg + b * T, firsts, n_firsts);
        }
        for (int first = 0; first < ld.n_val_windows; first += B) {
            loader_val_batch(&ld, first, in, tg, NULL, B);
            for (int b = 0; b < B; b++) check_window(ld.bos, in + b * T, tg + b * T, firsts, n_firsts);
            for (int b = 0; b < B; b++) assert_true(in[b * T + 1] >= 3000); /* val tokens only */
        }
        loader_close(&ld);
    }
}

static void test_training_windows_cover_the_stream(void **state) {
    (void)state;
    /* none: offsets are uniform over all 3000 - T starts: both ends get drawn */
    Loader ld;
    open_loader(&ld, BOS_NONE, 3);
    int in[B * T], tg[B * T], lo = 1 << 30, hi = 0;
    for (int step = 0; step < 400; step++) {
        loader_train_batch(&ld, in, tg, B);
        for (int b = 0; b < B; b++) {
            lo = in[b * T] < lo ? in[b * T] : lo;
            hi = in[b * T] > hi ? in[b * T] : hi;
        }
    }
    assert_int_equal(ld.n_train_tokens, 3000);
    assert_true(lo < 10 && hi > 3000 - T - 1 - 10 && hi <= 3000 - T - 1);
    loader_close(&ld);
}

static void test_same_seed_same_batches(void **state) {
    (void)state;
    Loader a, b, c;
    open_loader(&a, BOS_PREPEND, 7);
    open_loader(&b, BOS_PREPEND, 7);
    open_loader(&c, BOS_PREPEND, 8);
    int ia[B * T], ta[B * T], ib[B * T], tb[B * T], ic[B * T], tc[B * T];
    int differ = 0;
    for (int step = 0; step < 10; step++) {
        loader_train_batch(&a, ia, ta, B);
        loader_train_batch(&b, ib, tb, B);
        loader_train_batch(&c, ic, tc, B);
        assert_memory_equal(ia, ib, sizeof ia);
        assert_memory_equal(ta, tb, sizeof ta);
        differ |= memcmp(ia, ic, sizeof ia) != 0;
    }
    assert_true(differ);
    loader_close(&a);
    loader_close(&b);
    loader_close(&c);
}

static void test_saved_state_resumes_exact_sequence(void **state) {
    (void)state;
    int in[B * T], tg[B * T], first[5][B * T], again[B * T];
    for (int k = 0; k < 4; k++) {
        Loader ld, resumed;
        open_loader(&ld, (BosPolicy)k, 21);
        for (int step = 0; step < 3; step++) loader_train_batch(&ld, in, tg, B);
        uint64_t saved = loader_get_state(&ld);
        for (int step = 0; step < 5; step++) loader_train_batch(&ld, first[step], tg, B);
        /* a fresh loader (another seed, as after a restart) given the saved state replays the batches */
        open_loader(&resumed, (BosPolicy)k, 999);
        loader_set_state(&resumed, saved);
        for (int step = 0; step < 5; step++) {
            loader_train_batch(&resumed, again, tg, B);
            assert_memory_equal(again, first[step], sizeof again);
        }
        loader_close(&ld);
        loader_close(&resumed);
    }
}

static void test_validation_set_is_fixed(void **state) {
    (void)state;
    /* val has 600 ordinary tokens in documents of 100, 13, 70, 31, 32, 100, ... tokens */
    const int expected_windows[3] = {(600 - 1) / T, 600 / T, 0};
    int starts_with_room = 0, start_windows = 0, at = 0, lens[] = {100, 13, 70, 31, 32};
    for (int d = 0, pos = 0; pos < 600; pos += lens[d++ % 5]) start_windows += pos + T + 1 <= 600; /* BOS removed */
    int n_val_stream = 600;
    for (int d = 0; at < 600; d++) n_val_stream++, at += lens[d % 5];
    at = 0;
    for (int d = 0, pos = 0; at < 600; d++) { /* pos: the document's BOS in the val stream */
        starts_with_room += pos + T + 1 <= n_val_stream;
        pos += 1 + lens[d % 5];
        at += lens[d % 5];
    }
    int in1[B * T], tg1[B * T], in2[B * T], tg2[B * T];
    for (int k = 0; k < 4; k++) {
        Loader a, b;
        open_loader(&a, (BosPolicy)k, 1);
        open_loader(&b, (BosPolicy)k, 2);
        assert_int_equal(a.n_val_windows, k == BOS_DOC     ? starts_with_room
                                          : k == BOS_START ? start_windows
                                                           : expected_windows[k]);
        for (int step = 0; step < 3; step++) loader_train_batch(&a, in1, tg1, B); /* training draws change nothing */
        loader_val_batch(&a, 0, in1, tg1, NULL, B);
        loader_val_batch(&b, 0, in2, tg2, NULL, B);
        assert_memory_equal(in1, in2, sizeof in1);
        assert_memory_equal(tg1, tg2, sizeof tg1);
        /* the set wraps around: window n_val_windows is window 0 */
        loader_val_batch(&a, a.n_val_windows, in2, tg2, NULL, 1);
        assert_memory_equal(in1, in2, T * sizeof *in1);
        loader_close(&a);
        loader_close(&b);
    }
}

static void expect_open_error(const char *name, int T_, BosPolicy bos, const char *message) {
    char path[256], err[ST_ERR_LEN];
    data_path(path, name);
    Loader ld;
    if (loader_open(&ld, path, T_, bos, 1, err) != -1) fail_msg("loader_open succeeded; expected '%s'", message);
    assert_null(ld.data);
    if (!strstr(err, message)) fail_msg("error '%s' lacks '%s'", err, message);
}

static void test_bad_data_errors(void **state) {
    (void)state;
    char path[256], file[300], err[ST_ERR_LEN];
    data_path(path, "vocab_mismatch");
    write_data_dir(path, 3000, 600, 6000);
    expect_open_error("vocab_mismatch", T, BOS_NONE, "vocab_mismatch/train.bin: vocab_size: expected 5001 (as in ");
    data_path(path, "short");
    write_data_dir(path, 3000, 20, N_SYMBOLS + 1);
    expect_open_error("short", T, BOS_NONE,
                      "short/val.bin: too short: expected at least one window of T+1 = 33 tokens under bos=none "
                      "(BOS removed), found 20 tokens");
    expect_open_error("short", T, BOS_DOC, "short/val.bin: too short: expected at least one window of T+1 = 33 tokens "
                                          "under bos=doc starting at a document's BOS, found 21 tokens");
    expect_open_error("nowhere", T, BOS_NONE, "nowhere/tokenizer.bin: cannot open tokenizer");
    snprintf(file, sizeof file, "%s/train.bin", path);
    remove(file);
    expect_open_error("short", T, BOS_NONE, "short/train.bin: cannot open shard");
    expect_open_error("good", 0, BOS_NONE, "T: expected at least 1, found 0");
    Loader ld;
    open_loader(&ld, BOS_NONE, 1);
    assert_int_equal(loader_check_vocab(&ld, N_SYMBOLS + 1, "good", err), 0);
    assert_int_equal(loader_check_vocab(&ld, 257, "good", err), -1);
    assert_string_equal(err, "good: vocab_size: the model expects 257, the tokenizer and shards have 5001");
    loader_close(&ld);
}

int main(void) {
    if (fixture_make_tmpdir(dir, sizeof dir, "sinktrace_loader")) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_policy_names_are_the_config_values),
        cmocka_unit_test(test_each_policy_puts_bos_where_it_belongs),
        cmocka_unit_test(test_training_windows_cover_the_stream),
        cmocka_unit_test(test_same_seed_same_batches),
        cmocka_unit_test(test_saved_state_resumes_exact_sequence),
        cmocka_unit_test(test_validation_set_is_fixed),
        cmocka_unit_test(test_bad_data_errors),
    };
    int rc = cmocka_run_group_tests_name("loader", tests, setup, NULL);
    if (fixture_remove_dir(dir) != 0) return 1;
    return rc;
}
