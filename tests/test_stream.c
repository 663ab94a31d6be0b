/* tests/test_stream.c: the synthetic streams (data/stream.h) and the loader over them: each
 * generator's rule and statistics on documents with a known answer, query classes, the window
 * policies, fresh and resumable training windows, fixed validation windows, and config errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../data/loader.h"
#include "../data/shard.h"
#include "../data/stream.h"
#include "../data/tokenizer.h"
#include "../train/rundir.h"
#include "fixtures.h"

static char dir[256];

static StreamConfig bb_config(void) {
    return (StreamConfig){.kind = STREAM_BB, .bigram = BIGRAM_DIRICHLET, .vocab = 16, .doc_len = 200, .triggers = 2,
                          .trigger_prob = 0, .lag = 2, .successors = 4, .alpha = 1, .seed = 7};
}

static Stream *open_or_fail(const StreamConfig *c, const char *corpus) {
    Stream *s;
    char err[ST_ERR_LEN];
    if (stream_open(&s, c, corpus, err)) fail_msg("stream_open: %s", err);
    return s;
}

/* a corpus whose text is "cabcab...": bigrams a->b, b->c, c->a; as successors a and b occur 100
 * times, c 99 (the first c follows BOS) */
static void write_abc_corpus(const char *data_dir) {
    char err[ST_ERR_LEN], path[600];
    Tokenizer *tok = tokenizer_new_bytes();
    snprintf(path, sizeof path, "%s/tokenizer.bin", data_dir);
    if (rundir_create(data_dir, RUN_NEW, err) || tokenizer_save(tok, path, err)) fail_msg("%s", err);
    int ids[301];
    ids[0] = 256;
    for (int i = 1; i < 301; i++) ids[i] = "cab"[(i - 1) % 3];
    snprintf(path, sizeof path, "%s/train.bin", data_dir);
    if (shard_write(path, ids, 301, 257, 256, err)) fail_msg("%s", err);
    tokenizer_free(tok);
}

/* Guo's rule on a corpus table with one trigger: after 'a' the token two back returns; elsewhere the
 * corpus's only successor. From x0 = 'b': b c a c a c a ... (a copies c, c is followed by a). */
static void test_bb_corpus_table_follows_the_rule_exactly(void **state) {
    (void)state;
    char corpus[300];
    snprintf(corpus, sizeof corpus, "%s/abc", dir);
    write_abc_corpus(corpus);
    StreamConfig c = bb_config();
    c.bigram = BIGRAM_CORPUS;
    c.triggers = 1;
    c.doc_len = 12;
    Stream *s = open_or_fail(&c, corpus);
    assert_int_equal(stream_vocab_size(s), 257);
    assert_int_equal(stream_bos_id(s), 256);
    assert_true(stream_is_trigger(s, 'a')); /* a and b tie on frequency: the smaller id wins */
    assert_false(stream_is_trigger(s, 'b'));
    StRng rng;
    st_rng_seed(&rng, 1);
    int x[12], n_b = 0;
    uint8_t cls[12];
    for (int d = 0; d < 50; d++) {
        stream_document(s, &rng, x, cls);
        assert_true(x[0] == 'b' || x[0] == 'c'); /* the first token is never a trigger */
        n_b += x[0] == 'b';
        for (int t = 1; t < 12; t++) {
            int expected = x[t - 1] == 'a' && t >= 2 ? x[t - 2] : x[t - 1] == 'a' ? 'b' : x[t - 1] == 'b' ? 'c' : 'a';
            assert_int_equal(x[t], expected);
            assert_int_equal(cls[t - 1], x[t - 1] == 'a' && t >= 2 ? STREAM_TRIGGER : STREAM_ORDINARY);
        }
        assert_int_equal(cls[11], STREAM_ORDINARY); /* what follows the document is not the rule's */
    }
    assert_true(n_b > 10 && n_b < 40); /* b and c start documents equally often */
    stream_free(s);
}

/* lag 3: after a trigger the token three back returns; placed triggers follow ordinary tokens at the
 * asked rate and never come out of the table */
static void test_bb_lag_and_trigger_prob(void **state) {
    (void)state;
    StreamConfig c = bb_config();
    c.lag = 3;
    c.trigger_prob = 0.25f;
    c.bigram = BIGRAM_SPARSE;
    c.vocab = 12;
    c.successors = 3;
    Stream *s = open_or_fail(&c, NULL);
    StRng rng;
    st_rng_seed(&rng, 3);
    int x[200];
    long after_ordinary = 0, placed = 0;
    for (int d = 0; d < 200; d++) {
        stream_document(s, &rng, x, NULL);
        for (int t = 1; t < 200; t++) {
            int trig_prev = stream_is_trigger(s, x[t - 1]);
            if (trig_prev && t >= 3) assert_int_equal(x[t], x[t - 3]);
            if (!trig_prev) {
                after_ordinary++;
                placed += stream_is_trigger(s, x[t]);
            }
        }
    }
    double rate = (double)placed / after_ordinary;
    assert_true(rate > 0.23 && rate < 0.27);
    stream_free(s);
}

/* induction: within a document every occurrence of a trigger is followed by the same token, the
 * document's triggers differ between documents, and the classes mark second and later occurrences */
static void test_induction_outputs_repeat_within_a_document(void **state) {
    (void)state;
    StreamConfig c = bb_config();
    c.kind = STREAM_INDUCTION;
    c.vocab = 20;
    c.triggers = 3;
    c.trigger_prob = 0.2f;
    Stream *s = open_or_fail(&c, NULL);
    StRng rng;
    st_rng_seed(&rng, 5);
    int x[200], first_trigger_set[20] = {0}, differs = 0;
    uint8_t cls[200];
    for (int d = 0; d < 100; d++) {
        stream_document(s, &rng, x, cls);
        int next[20], seen[20] = {0}, consistent[20];
        for (int a = 0; a < 20; a++) consistent[a] = 1, next[a] = -1;
        for (int t = 0; t + 1 < 200; t++) {
            int a = x[t];
            if (next[a] >= 0 && next[a] != x[t + 1]) consistent[a] = 0;
            next[a] = x[t + 1];
        }
        for (int t = 0; t + 1 < 200; t++) {
            if (cls[t] == STREAM_TRIGGER) {
                assert_true(consistent[x[t]]); /* a trigger's successor never changes */
                assert_true(seen[x[t]]);       /* and the query saw it before */
            }
            seen[x[t]] = 1;
        }
        /* the triggers of this document: symbols marked TRIGGER somewhere */
        int set[20] = {0};
        for (int t = 0; t < 200; t++) set[x[t]] |= cls[t] == STREAM_TRIGGER;
        if (d == 0) memcpy(first_trigger_set, set, sizeof set);
        else differs |= memcmp(first_trigger_set, set, sizeof set) != 0;
    }
    assert_true(differs);
    stream_free(s);
}

/* markov: with alpha 0.05 each document's rows are nearly deterministic (a symbol's most common
 * successor takes most of its transitions), yet that successor changes from document to document
 * (no successor is the top one of a row in most documents); a query is a TRIGGER exactly when its
 * symbol occurred before in the document */
static void test_markov_tables_are_per_document(void **state) {
    (void)state;
    StreamConfig c = bb_config();
    c.kind = STREAM_MARKOV;
    c.bigram = BIGRAM_CORPUS; /* does not apply: markov draws its own tables */
    c.vocab = 8;
    c.alpha = 0.05f;
    c.doc_len = 400;
    Stream *s = open_or_fail(&c, NULL);
    assert_int_equal(stream_vocab_size(s), 9);
    StRng rng;
    st_rng_seed(&rng, 2);
    int x[400];
    uint8_t cls[400];
    long votes[8][8] = {{0}}, top_share_sum = 0, rows = 0;
    for (int d = 0; d < 100; d++) {
        stream_document(s, &rng, x, cls);
        long n[8][8] = {{0}};
        int seen[8] = {0};
        for (int t = 0; t < 400; t++) {
            assert_true(x[t] >= 0 && x[t] < 8);
            assert_int_equal(cls[t], seen[x[t]] && t < 399 ? STREAM_TRIGGER : STREAM_ORDINARY);
            seen[x[t]] = 1;
            if (t + 1 < 400) n[x[t]][x[t + 1]]++;
        }
        for (int a = 0; a < 8; a++) {
            long total = 0;
            int top = 0;
            for (int b = 0; b < 8; b++) total += n[a][b], top = n[a][b] > n[a][top] ? b : top;
            if (total < 20) continue;
            top_share_sum += 100 * n[a][top] / total, rows++;
            votes[a][top]++;
        }
    }
    assert_true(rows > 100 && top_share_sum / rows > 80); /* within a document: near-deterministic */
    for (int a = 0; a < 8; a++) {
        long total = 0, top = 0;
        for (int b = 0; b < 8; b++) total += votes[a][b], top = votes[a][b] > top ? votes[a][b] : top;
        assert_true(total > 10 && 2 * top < total); /* across documents: no fixed successor */
    }
    stream_free(s);
}

/* repeat: with 1000 symbols a token seldom recurs by chance, so a query marked TRIGGER is followed
 * by the token that followed an earlier occurrence of its own token (the span's source), and spans
 * start at about trigger_prob per free position */
static void test_repeat_spans_copy_earlier_text(void **state) {
    (void)state;
    StreamConfig c = bb_config();
    c.kind = STREAM_REPEAT;
    c.vocab = 1000;
    c.trigger_prob = 0.1f;
    c.span = 6;
    c.doc_len = 300;
    Stream *s = open_or_fail(&c, NULL);
    StRng rng;
    st_rng_seed(&rng, 4);
    int x[300];
    uint8_t cls[300];
    long triggers = 0, answered = 0;
    for (int d = 0; d < 50; d++) {
        stream_document(s, &rng, x, cls);
        for (int t = 0; t + 1 < 300; t++) {
            if (cls[t] != STREAM_TRIGGER) continue;
            triggers++;
            for (int j = 0; j < t; j++)
                if (x[j] == x[t] && x[j + 1] == x[t + 1]) {
                    answered++;
                    break;
                }
        }
    }
    assert_true(answered == triggers); /* every continuation repeats an earlier bigram */
    /* spans of 6 (5 answerable queries) start after about 1 in 10 free tokens: ~1/3 of queries */
    double share = triggers / (50.0 * 299);
    assert_true(share > 0.25 && share < 0.4);
    stream_free(s);
}

static void test_same_seed_same_documents(void **state) {
    (void)state;
    StreamConfig c = bb_config();
    Stream *a = open_or_fail(&c, NULL), *b = open_or_fail(&c, NULL);
    c.seed = 8;
    Stream *other = open_or_fail(&c, NULL);
    StRng ra, rb, ro;
    st_rng_seed(&ra, 9), st_rng_seed(&rb, 9), st_rng_seed(&ro, 9);
    int xa[200], xb[200], xo[200];
    stream_document(a, &ra, xa, NULL);
    stream_document(b, &rb, xb, NULL);
    stream_document(other, &ro, xo, NULL);
    assert_memory_equal(xa, xb, sizeof xa);
    assert_memory_not_equal(xa, xo, sizeof xa); /* another table */
    stream_free(a), stream_free(b), stream_free(other);
}

static Loader open_stream_loader(StreamConfig c, int T, BosPolicy bos, uint64_t seed) {
    Loader ld;
    char err[ST_ERR_LEN];
    Stream *s = open_or_fail(&c, NULL);
    if (loader_open_stream(&ld, s, T, bos, seed, err)) fail_msg("%s", err);
    return ld;
}

/* where BOS goes under each policy, and where windows start: start-aligned windows begin with a
 * document's first token (never a placed trigger), random-offset ones anywhere */
static void test_stream_windows_under_each_policy(void **state) {
    (void)state;
    StreamConfig c = bb_config();
    c.bigram = BIGRAM_SPARSE;
    c.trigger_prob = 0.3f;
    c.doc_len = 40;
    enum { T = 64, B = 50 };
    int in[B * T], tg[B * T];
    for (int bos = BOS_NONE; bos <= BOS_START; bos++) {
        Loader ld = open_stream_loader(c, T, (BosPolicy)bos, 2);
        assert_int_equal(ld.vocab_size, 17);
        assert_int_equal(ld.bos_id, 16);
        loader_train_batch(&ld, in, tg, B);
        int p0_triggers = 0;
        for (int b = 0; b < B; b++) {
            const int *x = in + b * T, *y = tg + b * T;
            for (int i = 0; i + 1 < T; i++) assert_int_equal(y[i], x[i + 1]);
            for (int i = 1; i < T; i++) {
                /* doc: a BOS at every document start (0, 41, 82...); elsewhere never after position 0 */
                int expect_bos = bos == BOS_DOC && i % 41 == 0;
                assert_int_equal(x[i] == 16, expect_bos);
            }
            assert_int_equal(x[0] == 16, bos == BOS_DOC || bos == BOS_PREPEND);
            p0_triggers += stream_is_trigger(ld.stream, x[0]);
        }
        if (bos == BOS_START) assert_int_equal(p0_triggers, 0);
        if (bos == BOS_NONE) assert_true(p0_triggers > 0);
        loader_close(&ld);
    }
}

/* training windows are fresh, resume from the saved state bit-identically, and leave the fixed
 * validation windows (the same for every training seed) alone */
static void test_stream_loader_resumes_and_validates_identically(void **state) {
    (void)state;
    StreamConfig c = bb_config();
    enum { T = 32, B = 4 };
    int a[B * T], b[B * T], tg[B * T], v1[B * T], v2[B * T];
    uint8_t cls[B * T];
    Loader ld = open_stream_loader(c, T, BOS_NONE, 11), other = open_stream_loader(c, T, BOS_NONE, 12);
    loader_val_batch(&ld, 0, v1, tg, cls, B);
    loader_train_batch(&ld, a, tg, B);
    uint64_t saved = loader_get_state(&ld);
    loader_train_batch(&ld, a, tg, B);
    loader_train_batch(&ld, b, tg, B);
    assert_memory_not_equal(a, b, sizeof a); /* never repeated */
    loader_set_state(&ld, saved);
    loader_train_batch(&ld, b, tg, B);
    assert_memory_equal(a, b, sizeof a);
    loader_val_batch(&other, 0, v2, tg, NULL, B);
    assert_memory_equal(v1, v2, sizeof v1);
    loader_val_batch(&ld, 1, v2, tg, NULL, 1); /* window 1 alone is the second of the batch */
    assert_memory_equal(v1 + T, v2, sizeof(int) * T);
    loader_close(&ld);
    loader_close(&other);
}

/* the longest run of equal tokens that windows x and y share at any offset of one against the other */
static int longest_shared_run(const int *x, const int *y, int T) {
    int longest = 0;
    for (int offset = 1 - T; offset < T; offset++)
        for (int t = 0, run = 0; t < T; t++) {
            int u = t + offset;
            run = u >= 0 && u < T && x[t] == y[u] ? run + 1 : 0;
            if (run > longest) longest = run;
        }
    return longest;
}

/* the validation (and probe) windows are independent draws, not one window shifted: no two of them
 * share 16 tokens in a row at any offset (chance: under 1e-9 on this table) */
static void test_validation_windows_are_independent(void **state) {
    (void)state;
    enum { T = 64, B = 16 };
    int v[B * T], tg[B * T];
    Loader ld = open_stream_loader(bb_config(), T, BOS_DOC, 11);
    loader_val_batch(&ld, 0, v, tg, NULL, B);
    for (int i = 0; i < B; i++)
        for (int j = i + 1; j < B; j++) {
            int run = longest_shared_run(v + i * T, v + j * T, T);
            if (run >= 16) fail_msg("validation windows %d and %d share a run of %d tokens", i, j, run);
        }
    loader_close(&ld);
}

static void expect_stream_error(StreamConfig c, const char *message) {
    Stream *s;
    char err[ST_ERR_LEN];
    assert_int_equal(stream_open(&s, &c, dir, err), -1);
    assert_null(s);
    if (!strstr(err, message)) fail_msg("error '%s' lacks '%s'", err, message);
}

static void test_impossible_parameters_name_their_key(void **state) {
    (void)state;
    StreamConfig c = bb_config();
    c.triggers = 16;
    expect_stream_error(c, "stream_triggers: expected 0 to 15 (fewer than the symbols), found 16");
    c = bb_config();
    c.lag = 300;
    expect_stream_error(c, "stream_lag: expected 2 to stream_doc_len (200), found 300");
    c = bb_config();
    c.bigram = BIGRAM_SPARSE;
    expect_stream_error(c, "stream_trigger_prob: expected > 0 with stream_bigram sparse");
    c = bb_config();
    c.kind = STREAM_INDUCTION;
    c.triggers = 0;
    expect_stream_error(c, "stream_triggers: expected at least 1 for stream induction, found 0");
    c = bb_config();
    c.bigram = BIGRAM_CORPUS;
    expect_stream_error(c, "tokenizer.bin: cannot open");
    c = bb_config();
    c.kind = STREAM_REPEAT;
    c.span = 1;
    expect_stream_error(c, "stream_span: expected 2 to stream_doc_len (200), found 1");
}

int main(void) {
    if (fixture_make_tmpdir(dir, sizeof dir, "sinktrace_stream")) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bb_corpus_table_follows_the_rule_exactly),
        cmocka_unit_test(test_bb_lag_and_trigger_prob),
        cmocka_unit_test(test_induction_outputs_repeat_within_a_document),
        cmocka_unit_test(test_markov_tables_are_per_document),
        cmocka_unit_test(test_repeat_spans_copy_earlier_text),
        cmocka_unit_test(test_same_seed_same_documents),
        cmocka_unit_test(test_stream_windows_under_each_policy),
        cmocka_unit_test(test_stream_loader_resumes_and_validates_identically),
        cmocka_unit_test(test_validation_windows_are_independent),
        cmocka_unit_test(test_impossible_parameters_name_their_key),
    };
    int rc = cmocka_run_group_tests_name("stream", tests, NULL, NULL);
    if (fixture_remove_dir(dir) != 0) return 1;
    return rc;
}
