/* tests/fixtures.c: see fixtures.h. */
#include "fixtures.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/binfile.h"
#include "../common/util.h"
#include "../data/shard.h"
#include "../data/tokenizer.h"
#include "../train/config.h"
#include "../train/rundir.h"
#include "../train/trainer.h"

int fixture_tiny_data(const char *data_dir) {
    static const char *words[] = {"the", "whale", "sea", "ship", "and", "of", "a", "white", "captain", "sailed"};
    char err[ST_ERR_LEN], path[1024];
    StRng r;
    st_rng_seed(&r, 3);
    Tokenizer *tok = tokenizer_new_bytes();
    snprintf(path, sizeof path, "%s/tokenizer.bin", data_dir);
    int rc = rundir_create(data_dir, RUN_NEW, err) || tokenizer_save(tok, path, err);
    const char *split[2] = {"train.bin", "val.bin"};
    int n_tokens[2] = {20000, 3000};
    for (int s = 0; s < 2 && rc == 0; s++) {
        int *ids = st_malloc(sizeof(int) * (size_t)n_tokens[s]), n = 0;
        ids[n++] = tokenizer_bos_id(tok); /* every document starts with BOS */
        while (n < n_tokens[s]) {
            const char *w = words[st_rng_below(&r, 10)];
            for (const char *p = w; *p && n < n_tokens[s]; p++) ids[n++] = (unsigned char)*p;
            if (n < n_tokens[s]) ids[n++] = st_rng_below(&r, 8) ? ' ' : '.';
        }
        snprintf(path, sizeof path, "%s/%s", data_dir, split[s]);
        rc = shard_write(path, ids, n, tokenizer_vocab_size(tok), tokenizer_bos_id(tok), err);
        free(ids);
    }
    tokenizer_free(tok);
    if (rc) fprintf(stderr, "making the test data in %s: %s\n", data_dir, err);
    return rc;
}

int fixture_tiny_run(const char *data_dir, const char *out_dir, const char *run_name, const char *const (*kv)[2], int n,
                     int steps) {
    static const char *const tiny[][2] = {
        {"d_model", "32"},    {"n_layer", "3"},      {"n_head", "4"},      {"n_kv_head", "4"},   {"n_expert", "4"},
        {"top_k", "2"},       {"d_ff", "32"},        {"seq_len", "16"},    {"batch_size", "4"},  {"warmup_steps", "1"},
        {"lr", "0.02"},       {"eval_batches", "1"}, {"log_every", "1"},   {"ckpt_every", "0"},  {"probe_n", "4"},
        {"probe_len", "16"}, {"threads", "1"}};
    char err[ST_ERR_LEN], steps_text[32], run_dir[1024];
    TrainConfig c;
    config_defaults(&c);
    snprintf(steps_text, sizeof steps_text, "%d", steps);
    int rc = config_set(&c, "steps", steps_text, "fixture", err) ||
             config_set(&c, "data_dir", data_dir, "fixture", err) ||
             config_set(&c, "out_dir", out_dir, "fixture", err) ||
             config_set(&c, "run_name", run_name, "fixture", err);
    for (size_t i = 0; i < sizeof tiny / sizeof *tiny && rc == 0; i++)
        rc = config_set(&c, tiny[i][0], tiny[i][1], "fixture", err);
    for (int i = 0; i < n && rc == 0; i++) rc = config_set(&c, kv[i][0], kv[i][1], "fixture", err);
    if (rc == 0) rc = config_validate(&c, err);
    snprintf(run_dir, sizeof run_dir, "%s/%s", out_dir, run_name);
    Trainer t;
    if (rc == 0) {
        rc = trainer_open(&t, &c, run_dir, RUN_NEW, err) || trainer_run(&t, steps, err) ? -1 : 0;
        trainer_close(&t);
    }
    if (rc) fprintf(stderr, "training the tiny run %s: %s\n", run_dir, err);
    return rc;
}

int fixture_make_tmpdir(char *dir, size_t size, const char *prefix) {
    snprintf(dir, size, "/tmp/%s_XXXXXX", prefix);
    return mkdtemp(dir) ? 0 : -1;
}

int fixture_remove_dir(const char *dir) {
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

size_t fixture_read_text(const char *path, char *out, size_t size) {
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(out, 1, size - 1, f) : 0;
    out[n] = 0;
    if (f) fclose(f);
    return n;
}

void fixture_write_file(const char *path, const void *bytes, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(bytes, 1, n, f), n);
    fclose(f);
}

void fixture_write_sealed(const char *path, const void *bytes, size_t n) {
    uint8_t *sealed = st_malloc(n + ST_TRAILER_BYTES);
    memcpy(sealed, bytes, n);
    st_checksum_trailer(sealed, n, sealed + n);
    fixture_write_file(path, sealed, n + ST_TRAILER_BYTES);
    free(sealed);
}

void fixture_reseal(const char *path) {
    static uint8_t buf[1 << 20];
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    assert_true(n >= ST_TRAILER_BYTES && n < sizeof buf);
    fixture_write_sealed(path, buf, n - ST_TRAILER_BYTES);
}
