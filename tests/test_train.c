/* tests/test_train.c: the trainer: config parsing, schedules, AdamW, checkpoints, exact resume, the NaN
 * stop and the SIGINT checkpoint, on a tiny model and a tiny prepared data directory made here. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <cJSON.h>
#include <glob.h>
#include <math.h>
#include <omp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../common/util.h"
#include "../train/adamw.h"
#include "../train/checkpoint.h"
#include "../train/config.h"
#include "../train/rundir.h"
#include "../train/sample.h"
#include "../train/schedule.h"
#include "../train/trainer.h"
#include "fixtures.h"

static char dir[64];      /* this test's temporary directory */
static char data_dir[128]; /* a tiny prepared data directory inside it */

static void path_in_dir(char *out, size_t size, const char *name) { snprintf(out, size, "%s/%s", dir, name); }

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* ------------------------------------------------------------------------------------------------ */
/* config */

static void test_config_file_then_flags(void **state) {
    (void)state;
    char path[256], err[ST_ERR_LEN], value[600];
    path_in_dir(path, sizeof path, "a.conf");
    write_text(path, "# a comment\n\nlr = 0.01   # peak\nschedule = wsd\nn_layer = 2\nrun_name = x1\n");
    TrainConfig c;
    config_defaults(&c);
    assert_int_equal(config_load_file(&c, path, err), 0);
    assert_true(c.lr == 0.01f && c.schedule == SCHEDULE_WSD && c.model.n_layer == 2);
    assert_string_equal(c.run_name, "x1");
    assert_int_equal(c.batch_size, 16); /* untouched keys keep their defaults */
    /* a flag applied after the file wins */
    assert_int_equal(config_set(&c, "lr", "0.5", "--lr", err), 0);
    assert_true(c.lr == 0.5f);
    assert_int_equal(config_validate(&c, err), 0);
    assert_int_equal(c.model.head_dim, 128 / 4); /* resolved by moe_config_validate */
    assert_int_equal(config_get(&c, "lr", value, sizeof value), 0);
    assert_string_equal(value, "0.5");
}

static void test_config_errors_name_the_key(void **state) {
    (void)state;
    char path[256], err[ST_ERR_LEN];
    TrainConfig c;
    path_in_dir(path, sizeof path, "bad.conf");

    write_text(path, "lr = 0.01\nlearning_rate = 3\n");
    config_defaults(&c);
    assert_int_equal(config_load_file(&c, path, err), -1);
    assert_non_null(strstr(err, "bad.conf:2: unknown config key 'learning_rate'"));

    write_text(path, "lr = fast\n");
    config_defaults(&c);
    assert_int_equal(config_load_file(&c, path, err), -1);
    assert_non_null(strstr(err, "bad.conf:1: lr: expected a number > 0, found 'fast'"));

    config_defaults(&c);
    assert_int_equal(config_set(&c, "batch_size", "0", "--batch_size", err), -1);
    assert_string_equal(err, "--batch_size: batch_size: expected an integer in [1, 4096], found '0'");
    assert_int_equal(config_set(&c, "steps", "1.5", "--steps", err), -1);
    assert_non_null(strstr(err, "steps: expected an integer >= 1, found '1.5'"));
    assert_int_equal(config_set(&c, "beta2", "1", "--beta2", err), -1);
    assert_non_null(strstr(err, "beta2: expected a number in [0, 1), found '1'"));
    assert_int_equal(config_set(&c, "schedule", "linear", "--schedule", err), -1);
    assert_non_null(strstr(err, "schedule: expected one of cosine|wsd|constant, found 'linear'"));
    assert_int_equal(config_set(&c, "bos", "always", "--bos", err), -1);
    assert_non_null(strstr(err, "bos: expected one of none|prepend|doc"));

    write_text(path, "lr = 0.01\nlr = 0.02\n");
    config_defaults(&c);
    assert_int_equal(config_load_file(&c, path, err), -1);
    assert_non_null(strstr(err, "bad.conf:2: lr: key given twice"));

    write_text(path, "just some words\n");
    config_defaults(&c);
    assert_int_equal(config_load_file(&c, path, err), -1);
    assert_non_null(strstr(err, "bad.conf:1: expected 'key = value', found 'just some words'"));

    /* combinations, and model fields through moe_config_validate */
    config_defaults(&c);
    c.warmup_steps = c.steps + 1;
    assert_int_equal(config_validate(&c, err), -1);
    assert_non_null(strstr(err, "warmup_steps"));
    config_defaults(&c);
    c.model.top_k = c.model.n_expert + 1;
    assert_int_equal(config_validate(&c, err), -1);
    assert_non_null(strstr(err, "top_k"));
    config_defaults(&c);
    snprintf(c.run_name, sizeof c.run_name, "../x");
    assert_int_equal(config_validate(&c, err), -1);
    assert_non_null(strstr(err, "run_name: expected letters"));
}

/* every config the repository ships (runs/ and runs/lab/) loads and validates: a renamed key or a
 * value out of range there would stop a user's first command */
static void test_shipped_configs_load(void **state) {
    (void)state;
    glob_t g;
    assert_int_equal(glob("runs/*.conf", 0, NULL, &g), 0);
    assert_int_equal(glob("runs/lab/*.conf", GLOB_APPEND, NULL, &g), 0);
    assert_true(g.gl_pathc >= 8); /* default, moby and the lab's */
    for (size_t i = 0; i < g.gl_pathc; i++) {
        TrainConfig c;
        char err[ST_ERR_LEN] = "";
        config_defaults(&c);
        if (config_load_file(&c, g.gl_pathv[i], err) || config_validate(&c, err)) fail_msg("%s", err);
    }
    globfree(&g);
}

static void test_config_text_round_trip_and_compare(void **state) {
    (void)state;
    char err[ST_ERR_LEN];
    TrainConfig a, b;
    config_defaults(&a);
    config_set(&a, "lr", "0.0003", "t", err);
    config_set(&a, "decay_frac", "0.1", "t", err);
    config_set(&a, "data_dir", "some/where", "t", err);
    char *text = config_to_text(&a);
    config_defaults(&b);
    assert_int_equal(config_load_text(&b, text, "stored", err), 0);
    free(text);
    assert_int_equal(memcmp(&a, &b, sizeof a), 0); /* every key survives the text exactly */
    /* run-control keys may differ, keys that change the computation may not */
    b.log_every = 7;
    assert_int_equal(config_compare(&a, &b, "ck.bin", err), 0);
    b.beta1 = 0.8f;
    assert_int_equal(config_compare(&a, &b, "ck.bin", err), -1);
    assert_string_equal(err, "ck.bin: config key beta1 differs: the checkpoint has 0.9, this run has 0.8");
}

/* --help is the table: one line per key of config.txt, in its order, with the key's default */
static void test_help_lists_every_key(void **state) {
    (void)state;
    TrainConfig c;
    config_defaults(&c);
    char *text = config_to_text(&c), *help = NULL, key[64], value[600], want[700];
    size_t help_len = 0;
    FILE *f = open_memstream(&help, &help_len);
    config_print_help(f);
    fclose(f);
    int keys = 0, lines = 0;
    const char *at = help;
    for (const char *p = text; sscanf(p, "%63s = %599[^\n]", key, value) == 2; p = strchr(p, '\n') + 1, keys++) {
        snprintf(want, sizeof want, "\n  --%-15s ", key);
        const char *line = strstr(at, want);
        if (!line) fail_msg("--help lacks %s (or lists it out of config.txt's order)", key);
        const char *def = strstr(line, " default ");
        assert_non_null(def);
        assert_memory_equal(def + 9, value, strlen(value));
        at = line + 1;
    }
    for (const char *p = help; (p = strstr(p, "\n  --")); p++) lines++;
    assert_int_equal(lines, keys);
    assert_true(keys > 60);
    free(text);
    free(help);
}

/* ------------------------------------------------------------------------------------------------ */
/* schedules and AdamW */

static void test_schedules(void **state) {
    (void)state;
    TrainConfig c;
    config_defaults(&c);
    c.lr = 1.0f, c.min_lr_ratio = 0.1f, c.warmup_steps = 10, c.steps = 111;
    c.schedule = SCHEDULE_COSINE;
    assert_float_equal(lr_at(&c, 0), 0.1, 1e-6);  /* warmup: lr * (step + 1) / warmup */
    assert_float_equal(lr_at(&c, 4), 0.5, 1e-6);
    assert_float_equal(lr_at(&c, 9), 1.0, 1e-6);
    assert_float_equal(lr_at(&c, 10), 1.0, 1e-6); /* cosine starts at the peak */
    assert_float_equal(lr_at(&c, 35), 0.868198052, 1e-6);
    assert_float_equal(lr_at(&c, 60), 0.55, 1e-6); /* halfway: the mean of lr and min */
    assert_float_equal(lr_at(&c, 110), 0.1, 1e-6); /* the last step at min_lr_ratio * lr */

    c.schedule = SCHEDULE_WSD, c.steps = 100, c.decay_frac = 0.2f;
    assert_float_equal(lr_at(&c, 4), 0.5, 1e-6);
    assert_float_equal(lr_at(&c, 50), 1.0, 1e-6);
    assert_float_equal(lr_at(&c, 79), 1.0, 1e-6);  /* stable until the last 20 steps */
    assert_float_equal(lr_at(&c, 80), 0.955, 1e-6); /* 1 - 0.9 * 1/20 */
    assert_float_equal(lr_at(&c, 89), 0.55, 1e-6);
    assert_float_equal(lr_at(&c, 99), 0.1, 1e-6);

    c.schedule = SCHEDULE_CONSTANT;
    assert_float_equal(lr_at(&c, 0), 0.1, 1e-6);
    assert_float_equal(lr_at(&c, 99), 1.0, 1e-6);
}

/* the vectorised, parallel AdamW against the update written one parameter at a time, on tensors whose
 * sizes are not multiples of the vector width or of the parallel chunk; and the same bits on 1 and 3
 * threads, for the update and for the global norm */
static void adamw_steps(float *p, const float *g, const MoeTensor *tensors, int n_tensors, size_t n, int threads) {
    int saved = omp_get_max_threads();
    omp_set_num_threads(threads);
    AdamW o;
    adamw_init(&o, n);
    AdamWHyper h = {0.01f, 0.9f, 0.95f, 1e-8f, 0.1f};
    for (int t = 1; t <= 3; t++) adamw_step(&o, p, g, tensors, n_tensors, &h, t, 0.5f);
    adamw_free(&o);
    omp_set_num_threads(saved);
}

static void test_adamw_vectorised_matches_scalar(void **state) {
    (void)state;
    MoeTensor tensors[3] = {{.name = "a", .offset = 0, .size = 13, .decay = 1},
                            {.name = "b", .offset = 13, .size = 9001, .decay = 0},
                            {.name = "c", .offset = 9014, .size = 1, .decay = 1}};
    size_t n = 9015;
    float *p1 = malloc(sizeof(float) * n), *p3 = malloc(sizeof(float) * n), *ref = malloc(sizeof(float) * n);
    float *g = malloc(sizeof(float) * n), *m = calloc(n, sizeof(float)), *v = calloc(n, sizeof(float));
    for (size_t i = 0; i < n; i++) {
        p1[i] = p3[i] = ref[i] = sinf((float)i);
        g[i] = cosf(0.37f * (float)i) * (i % 7 == 0 ? 0.0f : 1.0f);
    }
    adamw_steps(p1, g, tensors, 3, n, 1);
    adamw_steps(p3, g, tensors, 3, n, 3);
    assert_memory_equal(p1, p3, sizeof(float) * n);
    for (int t = 1; t <= 3; t++) /* the update of train/adamw.h's comment, one parameter at a time */
        for (int k = 0; k < 3; k++)
            for (size_t i = tensors[k].offset; i < tensors[k].offset + tensors[k].size; i++) {
                float gi = g[i] * 0.5f;
                m[i] = 0.9f * m[i] + (1.0f - 0.9f) * gi;
                v[i] = 0.95f * v[i] + (1.0f - 0.95f) * gi * gi;
                float m_hat = m[i] / (float)(1.0 - pow(0.9, t)), v_hat = v[i] / (float)(1.0 - pow(0.95, t));
                ref[i] -= (tensors[k].decay ? 0.01f * 0.1f : 0.0f) * ref[i];
                ref[i] -= 0.01f * m_hat / (sqrtf(v_hat) + 1e-8f);
            }
    for (size_t i = 0; i < n; i++) assert_float_equal(p1[i], ref[i], 1e-6);
    double norm_ref = 0.0;
    for (size_t i = 0; i < n; i++) norm_ref += (double)g[i] * g[i];
    int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    double norm1 = grad_global_norm(g, n);
    omp_set_num_threads(3);
    double norm3 = grad_global_norm(g, n);
    omp_set_num_threads(saved);
    assert_memory_equal(&norm1, &norm3, sizeof(double));
    assert_float_equal(norm1, sqrt(norm_ref), 1e-9 * sqrt(norm_ref));
    free(p1), free(p3), free(ref), free(g), free(m), free(v);
}

static void test_adamw_two_steps_by_hand(void **state) {
    (void)state;
    /* tensor 0 is a matrix (decayed), tensor 1 a norm gain (not decayed) */
    MoeTensor tensors[2] = {{.name = "w", .offset = 0, .size = 1, .decay = 1},
                            {.name = "gain", .offset = 1, .size = 1, .decay = 0}};
    float p[2] = {1.0f, -2.0f}, g1[2] = {0.5f, -0.1f}, g2[2] = {-0.25f, 0.3f};
    AdamW o;
    adamw_init(&o, 2);
    AdamWHyper h = {0.1f, 0.9f, 0.999f, 1e-8f, 0.1f};
    adamw_step(&o, p, g1, tensors, 2, &h, 1, 1.0f);
    /* step 1: m_hat = g, v_hat = g^2, so the update is lr * sign(g); w also shrinks by lr * wd * w */
    assert_float_equal(p[0], 0.89, 1e-6);
    assert_float_equal(p[1], -1.9, 1e-6);
    assert_float_equal(o.m[0], 0.05, 1e-7);
    assert_float_equal(o.v[1], 1e-5, 1e-9);
    adamw_step(&o, p, g2, tensors, 2, &h, 2, 1.0f);
    assert_float_equal(p[0], 0.854466299, 1e-6);
    assert_float_equal(p[1], -1.949418991, 1e-6);
    adamw_free(&o);

    /* clipping: the norm of (3, 4) is 5; a max of 1 scales by 0.2; a norm below the max is kept */
    float g[2] = {3.0f, 4.0f};
    assert_float_equal(grad_global_norm(g, 2), 5.0, 1e-12);
    assert_float_equal(grad_clip_scale(5.0, 1.0f), 0.2, 1e-7);
    assert_float_equal(grad_clip_scale(0.5, 1.0f), 1.0, 0);
    assert_float_equal(grad_clip_scale(5.0, 0.0f), 1.0, 0);
    g[1] = NAN;
    assert_int_equal(first_nonfinite_tensor(g, tensors, 2), 1);
    g[1] = 4.0f;
    assert_int_equal(first_nonfinite_tensor(g, tensors, 2), -1);
}

static void test_sample_next(void **state) {
    (void)state;
    float logits[4] = {1.0f, 3.0f, 3.0f, -1.0f};
    StRng rng;
    st_rng_seed(&rng, 5);
    assert_int_equal(sample_next(logits, 4, 0.0f, 0, &rng), 1); /* argmax, ties to the lower id */
    int counts[4] = {0};
    for (int i = 0; i < 2000; i++) counts[sample_next(logits, 4, 1.0f, 2, &rng)]++;
    assert_int_equal(counts[0] + counts[3], 0); /* top-2 keeps only ids 1 and 2 */
    assert_true(counts[1] > 850 && counts[2] > 850);
}

/* ------------------------------------------------------------------------------------------------ */
/* the loop on a tiny model */

/* a tiny MoE with gradient accumulation, clipping and every loop feature switched on */
static void tiny_config(TrainConfig *c, const char *run_name) {
    char err[ST_ERR_LEN];
    config_defaults(c);
    const char *kv[][2] = {{"d_model", "16"}, {"n_layer", "2"},     {"n_head", "2"},       {"n_kv_head", "1"},
                           {"n_expert", "4"}, {"top_k", "2"},       {"d_ff", "16"},        {"seq_len", "16"},
                           {"batch_size", "4"}, {"grad_accum", "2"}, {"steps", "8"},       {"warmup_steps", "2"},
                           {"lr", "0.01"},    {"grad_clip", "0.5"}, {"eval_every", "3"},   {"eval_batches", "2"},
                           {"log_every", "1"}, {"ckpt_every", "0"}, {"threads", "2"},      {"out_dir", dir},
                           {"probe_n", "4"},  {"probe_len", "16"}};
    for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++) assert_int_equal(config_set(c, kv[i][0], kv[i][1], "t", err), 0);
    assert_int_equal(config_set(c, "data_dir", data_dir, "t", err), 0);
    assert_int_equal(config_set(c, "run_name", run_name, "t", err), 0);
    assert_int_equal(config_validate(c, err), 0);
}

static void run_dir_of(char *out, size_t size, const char *run_name) { snprintf(out, size, "%s/%s", dir, run_name); }

/* train.jsonl without the timing fields (the only ones that differ between identical runs) */
static char *log_without_timing(const char *run_dir) {
    char path[256], line[8192];
    snprintf(path, sizeof path, "%s/train.jsonl", run_dir);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t cap = 1 << 16, len = 0;
    char *out = st_calloc(cap, 1);
    while (fgets(line, sizeof line, f)) {
        cJSON *j = cJSON_Parse(line);
        assert_non_null(j);
        cJSON_DeleteItemFromObject(j, "tok_per_s");
        cJSON_DeleteItemFromObject(j, "ms_per_step");
        char *s = cJSON_PrintUnformatted(j);
        assert_true(len + strlen(s) + 2 < cap);
        len += (size_t)snprintf(out + len, cap - len, "%s\n", s);
        free(s);
        cJSON_Delete(j);
    }
    fclose(f);
    return out;
}

/* Trains `whole` for 8 steps in one go and `halves` for 4, stops, logs two lines past the checkpoint
 * (a crash while writing) and resumes to 8: the parameters and train.jsonl must be the same. `extra`
 * holds n_extra further (key, value) settings of both runs. */
static void check_resume_matches(const char *whole, const char *halves, const char *const (*extra)[2], int n_extra) {
    char err[ST_ERR_LEN], dir_a[256], dir_b[256], path[300];
    TrainConfig ca, cb;
    tiny_config(&ca, whole);
    tiny_config(&cb, halves);
    for (int i = 0; i < n_extra; i++) {
        assert_int_equal(config_set(&ca, extra[i][0], extra[i][1], "t", err), 0);
        assert_int_equal(config_set(&cb, extra[i][0], extra[i][1], "t", err), 0);
    }
    run_dir_of(dir_a, sizeof dir_a, whole);
    run_dir_of(dir_b, sizeof dir_b, halves);
    Trainer t;

    assert_int_equal(trainer_open(&t, &ca, dir_a, RUN_NEW, err), 0);
    assert_int_equal(trainer_run(&t, 8, err), 0);
    float *params_a = st_malloc(t.model.n_params * sizeof(float));
    memcpy(params_a, t.model.params, t.model.n_params * sizeof(float));
    trainer_close(&t);

    assert_int_equal(trainer_open(&t, &cb, dir_b, RUN_NEW, err), 0);
    assert_int_equal(trainer_run(&t, 4, err), 0); /* stops after 4 steps with a checkpoint */
    trainer_close(&t);
    ckpt_path(path, sizeof path, dir_b, 4);
    assert_int_equal(access(path, F_OK), 0);
    /* as if the run had logged step 5 and crashed while writing step 6, after its last checkpoint */
    snprintf(path, sizeof path, "%s/train.jsonl", dir_b);
    FILE *f = fopen(path, "a");
    fputs("{\"step\":5,\"loss\":1}\n{\"step\":6,\"lo", f);
    fclose(f);
    assert_int_equal(trainer_open(&t, &cb, dir_b, RUN_RESUME, err), 0);
    assert_int_equal(t.step, 4);
    assert_int_equal(trainer_run(&t, 8, err), 0);
    assert_int_equal(memcmp(params_a, t.model.params, t.model.n_params * sizeof(float)), 0);
    trainer_close(&t);
    free(params_a);

    char *log_a = log_without_timing(dir_a), *log_b = log_without_timing(dir_b);
    assert_string_equal(log_a, log_b);
    assert_non_null(strstr(log_a, "\"step\":8,")); /* all 8 steps were logged, with their val loss */
    assert_non_null(strstr(log_a, "\"val_loss\""));
    free(log_a);
    free(log_b);
}

static void test_resume_is_bit_identical(void **state) {
    (void)state;
    check_resume_matches("whole", "halves", NULL, 0);
    /* the run directory is not reused silently */
    char err[ST_ERR_LEN], dir_a[256];
    TrainConfig ca;
    Trainer t;
    tiny_config(&ca, "whole");
    run_dir_of(dir_a, sizeof dir_a, "whole");
    assert_int_equal(trainer_open(&t, &ca, dir_a, RUN_NEW, err), -1);
    trainer_close(&t);
    assert_non_null(strstr(err, "already exists"));
    assert_non_null(strstr(err, "--overwrite"));
}

/* a synthetic stream drawn on the fly resumes as exactly: the loader's RNG state is all it has */
static void test_stream_run_resumes_bit_identically(void **state) {
    (void)state;
    static const char *const markov[][2] = {{"stream", "markov"}, {"stream_vocab", "12"}, {"stream_alpha", "0.3"},
                                            {"stream_doc_len", "40"}, {"bos", "start"}, {"vocab_size", "13"}};
    check_resume_matches("markov_whole", "markov_halves", markov, 6);
    static const char *const bb[][2] = {{"stream", "bb"}, {"stream_bigram", "dirichlet"}, {"stream_vocab", "20"},
                                        {"stream_trigger_prob", "0.2"}, {"bos", "doc"}, {"stream_doc_len", "12"}};
    check_resume_matches("bb_whole", "bb_halves", bb, 6);
}

/* copies src to dst, then applies `damage`: truncate to `keep` bytes (keep >= 0), or write `bytes` at `at` */
static void damaged_copy(const char *src, const char *dst, long keep, long at, const char *bytes) {
    FILE *in = fopen(src, "rb"), *out = fopen(dst, "wb");
    assert_true(in && out);
    int ch;
    for (long i = 0; (ch = fgetc(in)) != EOF && (keep < 0 || i < keep); i++) fputc(ch, out);
    if (bytes) {
        fseek(out, at, SEEK_SET);
        fwrite(bytes, 1, strlen(bytes), out);
    }
    fclose(in);
    fclose(out);
}

static void test_checkpoints_every_n_steps_keep_the_latest(void **state) {
    (void)state;
    char err[ST_ERR_LEN], run_dir[256], path[300];
    TrainConfig c;
    tiny_config(&c, "keep");
    c.steps = 7, c.ckpt_every = 2, c.keep_ckpts = 2;
    run_dir_of(run_dir, sizeof run_dir, "keep");
    Trainer t;
    assert_int_equal(trainer_open(&t, &c, run_dir, RUN_NEW, err), 0);
    assert_int_equal(trainer_run(&t, 7, err), 0);
    trainer_close(&t);
    /* written at 2, 4, 6 and the end (7); the two latest remain */
    int64_t want[] = {2, 4, 6, 7};
    for (int i = 0; i < 4; i++) {
        ckpt_path(path, sizeof path, run_dir, want[i]);
        assert_int_equal(access(path, F_OK), i < 2 ? -1 : 0);
    }
    assert_int_equal(ckpt_latest(run_dir, path, sizeof path, err), 0);
    assert_non_null(strstr(path, "ckpt_00000007.bin"));
}

static void test_corrupt_checkpoints_are_rejected(void **state) {
    (void)state;
    char err[ST_ERR_LEN], run_dir[256], good[300], bad[300];
    TrainConfig c;
    tiny_config(&c, "corrupt");
    c.steps = 2, c.warmup_steps = 1;
    run_dir_of(run_dir, sizeof run_dir, "corrupt");
    Trainer t;
    assert_int_equal(trainer_open(&t, &c, run_dir, RUN_NEW, err), 0);
    assert_int_equal(trainer_run(&t, 2, err), 0);
    ckpt_path(good, sizeof good, run_dir, 2);
    snprintf(bad, sizeof bad, "%s/bad.bin", dir);
    CkptState s;
    assert_int_equal(ckpt_load(good, &t.cfg, &t.model, &t.opt, &s, err), 0);
    assert_int_equal(s.step, 2);

    damaged_copy(good, bad, 1000, 0, NULL);
    assert_int_equal(ckpt_load(bad, &t.cfg, &t.model, &t.opt, &s, err), -1);
    assert_non_null(strstr(err, "truncated"));
    assert_non_null(strstr(err, bad));

    damaged_copy(good, bad, -1, 0, "XXCKPT");
    assert_int_equal(ckpt_load(bad, &t.cfg, &t.model, &t.opt, &s, err), -1);
    assert_non_null(strstr(err, "magic: expected 'STCKPT', found 'XXCKPT'"));

    long size = 0;
    FILE *f = fopen(good, "rb");
    fseek(f, 0, SEEK_END);
    size = ftell(f);
    fclose(f);
    damaged_copy(good, bad, -1, size - 5, "\x7f"); /* one byte of the AdamW moments */
    assert_int_equal(ckpt_load(bad, &t.cfg, &t.model, &t.opt, &s, err), -1);
    assert_non_null(strstr(err, "checksum"));

    TrainConfig other = t.cfg;
    other.weight_decay = 0.25f;
    assert_int_equal(ckpt_load(good, &other, &t.model, &t.opt, &s, err), -1);
    assert_non_null(strstr(err, "config key weight_decay differs: the checkpoint has 0.1, this run has 0.25"));
    trainer_close(&t);

    /* resuming with a changed key is refused the same way, before training anything */
    other.steps = 3;
    assert_int_equal(trainer_open(&t, &other, run_dir, RUN_RESUME, err), -1);
    trainer_close(&t);
    assert_non_null(strstr(err, "config key steps differs"));
}

static void test_nan_in_a_gradient_stops_and_keeps_the_checkpoint(void **state) {
    (void)state;
    char err[ST_ERR_LEN], run_dir[256], path[300];
    TrainConfig c;
    tiny_config(&c, "nan");
    run_dir_of(run_dir, sizeof run_dir, "nan");
    Trainer t;
    assert_int_equal(trainer_open(&t, &c, run_dir, RUN_NEW, err), 0);
    assert_int_equal(trainer_run(&t, 3, err), 0);
    /* step 4, as trainer_run does it, with a NaN injected into one gradient of the second tensor */
    assert_int_equal(trainer_compute_grads(&t, err), 0);
    const MoeTensor *bad = &t.model.tensors[1];
    t.model.grads[bad->offset + bad->size / 2] = NAN;
    assert_int_equal(trainer_check_grads(&t, err), -1);
    char want[128];
    snprintf(want, sizeof want, "step 4: NaN or Inf in the gradient of %s", bad->name);
    assert_string_equal(err, want);
    trainer_close(&t);

    /* the checkpoint of step 3 is intact and loads */
    ckpt_path(path, sizeof path, run_dir, 3);
    TrainConfig stored;
    Moe m;
    CkptState s;
    assert_int_equal(ckpt_read_config(path, &stored, err), 0);
    assert_int_equal(moe_init(&m, &stored.model, err), 0);
    assert_int_equal(ckpt_load(path, NULL, &m, NULL, &s, err), 0);
    assert_int_equal(s.step, 3);
    moe_free(&m);
}

/* bin/train run as a child with stdout to /dev/null; returns its pid */
static pid_t spawn_train(char *const argv[]) {
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (!freopen("/dev/null", "w", stdout)) _exit(127);
        execv("bin/train", argv);
        _exit(127);
    }
    return pid;
}

static int wait_exit_code(pid_t pid) {
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

/* the number of lines of a file (0 if it does not exist) */
static int count_lines(const char *path) {
    FILE *f = fopen(path, "r");
    int n = 0, ch;
    if (!f) return 0;
    while ((ch = fgetc(f)) != EOF) n += ch == '\n';
    fclose(f);
    return n;
}

static void test_sigint_writes_a_loadable_checkpoint(void **state) {
    (void)state;
    char err[ST_ERR_LEN], conf[256], run_dir[256], log[300], path[300];
    TrainConfig c;
    tiny_config(&c, "sigint");
    c.steps = 1000000, c.eval_every = 0; /* runs until the signal */
    path_in_dir(conf, sizeof conf, "sigint.conf");
    FILE *f = fopen(conf, "w");
    assert_int_equal(config_write(&c, f, conf, err), 0);
    fclose(f);
    run_dir_of(run_dir, sizeof run_dir, "sigint");
    snprintf(log, sizeof log, "%s/train.jsonl", run_dir);

    char *argv[] = {"bin/train", "--config", conf, NULL};
    pid_t pid = spawn_train(argv);
    while (count_lines(log) < 3) { /* mid-run: some steps are done */
        assert_int_equal(waitpid(pid, NULL, WNOHANG), 0); /* still running */
        usleep(10000);
    }
    kill(pid, SIGINT);
    assert_int_equal(wait_exit_code(pid), TRAIN_EXIT_STOPPED); /* stopped before its last step */

    TrainConfig stored;
    Moe m;
    CkptState s;
    assert_int_equal(ckpt_latest(run_dir, path, sizeof path, err), 0);
    assert_int_equal(ckpt_read_config(path, &stored, err), 0);
    assert_int_equal(moe_init(&m, &stored.model, err), 0);
    assert_int_equal(ckpt_load(path, NULL, &m, NULL, &s, err), 0);
    assert_true(s.step >= 3 && s.step < 1000000);
    assert_int_equal(s.step, count_lines(log)); /* log_every 1: one line per step done */
    moe_free(&m);
}

static void test_bin_train_rejects_bad_flags(void **state) {
    (void)state;
    char conf[256], err[ST_ERR_LEN];
    TrainConfig c;
    tiny_config(&c, "never");
    path_in_dir(conf, sizeof conf, "never.conf");
    FILE *f = fopen(conf, "w");
    assert_int_equal(config_write(&c, f, conf, err), 0);
    fclose(f);
    char *unknown[] = {"bin/train", "--config", conf, "--learning_rate", "3", NULL};
    assert_int_equal(wait_exit_code(spawn_train(unknown)), 2);
    char *bad[] = {"bin/train", "--config", conf, "--top_k", "9", NULL}; /* more than n_expert */
    assert_int_equal(wait_exit_code(spawn_train(bad)), 2);
    char run_dir[256];
    run_dir_of(run_dir, sizeof run_dir, "never");
    assert_int_equal(access(run_dir, F_OK), -1); /* nothing was written */
}

/* the output of `cmd` (stdout and stderr) into out */
static void run_capture(const char *cmd, char *out, size_t size) {
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, size - 1, p);
    out[n] = 0;
    pclose(p);
}

/* bin/sample on a run of a symbol stream: the prompt is symbol ids, the output symbols; a text prompt
 * is refused in one line instead of feeding byte ids the model does not have */
static void test_sample_speaks_a_symbol_stream(void **state) {
    (void)state;
    char err[ST_ERR_LEN], run_dir[256], cmd[600], out[4096];
    TrainConfig c;
    tiny_config(&c, "symbols");
    static const char *const kv[][2] = {{"stream", "markov"}, {"stream_vocab", "6"}, {"stream_doc_len", "40"},
                                        {"bos", "doc"}, {"steps", "2"}, {"vocab_size", "7"}, {"eval_every", "0"}};
    for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++) assert_int_equal(config_set(&c, kv[i][0], kv[i][1], "t", err), 0);
    run_dir_of(run_dir, sizeof run_dir, "symbols");
    Trainer t;
    assert_int_equal(trainer_open(&t, &c, run_dir, RUN_NEW, err), 0);
    assert_int_equal(trainer_run(&t, 2, err), 0);
    trainer_close(&t);
    snprintf(cmd, sizeof cmd, "bin/sample %s --tokens 5 --prompt '1 4' 2>&1", run_dir);
    run_capture(cmd, out, sizeof out);
    assert_non_null(strstr(out, "1 4<s"));
    snprintf(cmd, sizeof cmd, "bin/sample %s --tokens 5 2>&1", run_dir);
    run_capture(cmd, out, sizeof out);
    assert_non_null(strstr(out, "error: --prompt: expected symbol ids 0 to 5 separated by spaces"));
}

/* bin/train runs its OpenMP threads with a passive wait policy after a short spin unless the user set a
 * policy: the start line names the policy and spin count the process ran with (after it executed itself
 * again with the variables set) */
static void test_bin_train_waits_passively_unless_told(void **state) {
    (void)state;
    char err[ST_ERR_LEN], conf[256], cmd[800], out[4096];
    TrainConfig c;
    tiny_config(&c, "waiting");
    c.steps = 1, c.warmup_steps = 0;
    path_in_dir(conf, sizeof conf, "waiting.conf");
    FILE *f = fopen(conf, "w");
    assert_int_equal(config_write(&c, f, conf, err), 0);
    fclose(f);
    snprintf(cmd, sizeof cmd, "env -u OMP_WAIT_POLICY -u GOMP_SPINCOUNT bin/train --config %s --threads 2 --overwrite 2>&1",
             conf);
    run_capture(cmd, out, sizeof out);
    assert_non_null(strstr(out, "2 threads (OMP_WAIT_POLICY=passive, GOMP_SPINCOUNT=3000)"));
    snprintf(cmd, sizeof cmd, "env -u GOMP_SPINCOUNT OMP_WAIT_POLICY=passive bin/train --config %s --threads 2 --overwrite 2>&1",
             conf);
    run_capture(cmd, out, sizeof out); /* a policy the user set: no spin count added either */
    assert_non_null(strstr(out, "2 threads (OMP_WAIT_POLICY=passive, GOMP_SPINCOUNT=unset)"));
    snprintf(cmd, sizeof cmd, "OMP_WAIT_POLICY=active bin/train --config %s --threads 2 --overwrite 2>&1", conf);
    run_capture(cmd, out, sizeof out);
    assert_non_null(strstr(out, "2 threads (OMP_WAIT_POLICY=active"));
}

static void test_nan_loss_stops_bin_train(void **state) {
    (void)state;
    char err[ST_ERR_LEN], conf[256], run_dir[256], path[300], want[300];
    TrainConfig c;
    tiny_config(&c, "blowup");
    c.warmup_steps = 0, c.schedule = SCHEDULE_CONSTANT, c.ckpt_every = 1, c.grad_clip = 0;
    path_in_dir(conf, sizeof conf, "blowup.conf");
    FILE *f = fopen(conf, "w");
    assert_int_equal(config_write(&c, f, conf, err), 0);
    fclose(f);
    /* an absurd learning rate, given as a flag before the file (flags win wherever they are): step 1's
     * update sends the weights to ~1e30, step 2 overflows */
    char *argv[] = {"bin/train", "--lr", "1e30", "--config", conf, NULL};
    assert_int_equal(wait_exit_code(spawn_train(argv)), 1);
    run_dir_of(run_dir, sizeof run_dir, "blowup");
    assert_int_equal(ckpt_latest(run_dir, path, sizeof path, err), 0);
    ckpt_path(want, sizeof want, run_dir, 1); /* the only checkpoint: step 1, before the overflow */
    assert_string_equal(path, want);
}

int main(void) {
    if (fixture_make_tmpdir(dir, sizeof dir, "sinktrace_train")) return 1;
    snprintf(data_dir, sizeof data_dir, "%s/data", dir);
    if (fixture_tiny_data(data_dir)) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_file_then_flags),
        cmocka_unit_test(test_config_errors_name_the_key),
        cmocka_unit_test(test_config_text_round_trip_and_compare),
        cmocka_unit_test(test_shipped_configs_load),
        cmocka_unit_test(test_help_lists_every_key),
        cmocka_unit_test(test_schedules),
        cmocka_unit_test(test_adamw_two_steps_by_hand),
        cmocka_unit_test(test_adamw_vectorised_matches_scalar),
        cmocka_unit_test(test_sample_next),
        cmocka_unit_test(test_resume_is_bit_identical),
        cmocka_unit_test(test_bin_train_waits_passively_unless_told),
        cmocka_unit_test(test_stream_run_resumes_bit_identically),
        cmocka_unit_test(test_sample_speaks_a_symbol_stream),
        cmocka_unit_test(test_checkpoints_every_n_steps_keep_the_latest),
        cmocka_unit_test(test_corrupt_checkpoints_are_rejected),
        cmocka_unit_test(test_nan_in_a_gradient_stops_and_keeps_the_checkpoint),
        cmocka_unit_test(test_sigint_writes_a_loadable_checkpoint),
        cmocka_unit_test(test_bin_train_rejects_bad_flags),
        cmocka_unit_test(test_nan_loss_stops_bin_train),
    };
    int rc = cmocka_run_group_tests_name("train", tests, NULL, NULL);
    if (fixture_remove_dir(dir) != 0) return 1;
    return rc;
}
