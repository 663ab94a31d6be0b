/* tests/test_export.c: the safetensors writer and reader (common/safetensors.h) and bin/export
 * (train/export.h): files round-trip bit for bit, an export holds the checkpoint's parameters, probe
 * set, config and tokenizer, and bad input gets one-line errors naming the file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/safetensors.h"
#include "../common/util.h"
#include "../probes/probeset.h"
#include "../train/checkpoint.h"
#include "../train/config.h"
#include "../train/export.h"
#include "fixtures.h"

static char dir[64];       /* this test's temporary directory */
static char data_dir[128]; /* a tiny prepared data directory inside it */

static void path_in_dir(char *out, size_t size, const char *name) { snprintf(out, size, "%s/%s", dir, name); }

/* ---- the format ----------------------------------------------------------------------------- */

static void test_safetensors_round_trip(void **state) {
    (void)state;
    char err[ST_ERR_LEN], path[256];
    path_in_dir(path, sizeof path, "round.safetensors");
    double f64[2] = {1.0 / 3, -2e300};
    float f32[2][3] = {{1, -2, 3.5f}, {0, 1e-30f, 7}};
    int32_t i32[3] = {-1, 0, 2147483647};
    uint8_t u8[5] = {'h', 0, 'i', 255, 7};
    SftTensor t[4] = {sft_tensor("blocks.0.attn.wq", SFT_F32, f32, 2, (int64_t[]){2, 3}),
                      sft_tensor("rho", SFT_F64, f64, 1, (int64_t[]){2}),
                      sft_tensor("probe.tokens", SFT_I32, i32, 3, (int64_t[]){1, 3, 1}),
                      sft_tensor("tokenizer.bytes", SFT_U8, u8, 1, (int64_t[]){5})};
    cJSON *meta = cJSON_CreateObject();
    cJSON_AddStringToObject(meta, "config", "d_model = 32\nn_layer = 3\n");
    assert_int_equal(sft_save(path, t, 4, meta, err), 0);
    cJSON_Delete(meta);

    SftFile f;
    assert_int_equal(sft_load(&f, path, err), 0);
    assert_int_equal(f.n, 4);
    for (int i = 0; i < 4; i++) {
        const SftTensor *r = &f.tensors[i]; /* in the order written */
        assert_string_equal(r->name, t[i].name);
        assert_int_equal(r->dtype, t[i].dtype);
        assert_int_equal(r->ndim, t[i].ndim);
        assert_memory_equal(r->shape, t[i].shape, sizeof(int64_t) * (size_t)t[i].ndim);
        assert_memory_equal(r->data, t[i].data, (size_t)sft_bytes(&t[i]));
    }
    assert_string_equal(sft_meta(&f, "config"), "d_model = 32\nn_layer = 3\n");
    assert_null(sft_meta(&f, "absent"));
    assert_null(sft_find(&f, "absent"));
    /* the layout: a little-endian length, the JSON padded to 8 bytes, then the data in order */
    uint64_t header;
    memcpy(&header, f.bytes, 8);
    assert_int_equal(header % 8, 0);
    assert_int_equal(f.bytes[8], '{');
    assert_ptr_equal(f.tensors[0].data, f.bytes + 8 + header);
    assert_ptr_equal(f.tensors[1].data, f.tensors[0].data + sizeof f32);
    sft_free(&f);
}

/* src without its last `drop` bytes, and with the header's text `from` replaced by `to` (the same
 * length; NULL: none), at dst */
static void altered_copy(const char *src, const char *dst, size_t drop, const char *from, const char *to) {
    char bytes[4096];
    size_t size = fixture_read_text(src, bytes, sizeof bytes);
    if (from) {
        char *at = memmem(bytes, size, from, strlen(from));
        assert_non_null(at);
        assert_int_equal(strlen(from), strlen(to));
        memcpy(at, to, strlen(to));
    }
    fixture_write_file(dst, bytes, size - drop);
}

static void expect_error(const char *path, const char *what) {
    char err[ST_ERR_LEN];
    SftFile f;
    assert_int_equal(sft_load(&f, path, err), -1);
    if (!strstr(err, path) || !strstr(err, what) || strchr(err, '\n'))
        fail_msg("%s: expected a one-line error naming the file and '%s', found '%s'", path, what, err);
}

static void test_safetensors_rejects_bad_files(void **state) {
    (void)state;
    char good[256], bad[256], err[ST_ERR_LEN];
    path_in_dir(good, sizeof good, "good.safetensors");
    path_in_dir(bad, sizeof bad, "bad.safetensors");
    float x[4] = {1, 2, 3, 4};
    int32_t y[2] = {5, 6};
    SftTensor t[2] = {sft_tensor("x", SFT_F32, x, 2, (int64_t[]){2, 2}),
                      sft_tensor("y", SFT_I32, y, 1, (int64_t[]){2})};
    assert_int_equal(sft_save(good, t, 2, NULL, err), 0);

    fixture_write_file(bad, "\x10\0\0", 3);
    expect_error(bad, "truncated: expected at least 8 bytes (the header length), found 3");
    fixture_write_file(bad, "\xff\0\0\0\0\0\0\0{}", 10);
    expect_error(bad, "header length: expected at most 2 bytes (the rest of the file), found 255");
    altered_copy(good, bad, 4, NULL, NULL); /* the header whole, the data cut */
    expect_error(bad, "tensor 'y': data_offsets: expected an end within the 20 bytes of data, found 24");
    altered_copy(good, bad, 0, "\"dtype\":\"F32\"", "\"dtype\":\"F16\"");
    expect_error(bad, "tensor 'x': dtype: expected F64, F32, I32 or U8, found 'F16'");
    altered_copy(good, bad, 0, "\"shape\":[2,2]", "\"shape\":[2,3]");
    expect_error(bad, "tensor 'x': data_offsets: expected 24 bytes for its shape and dtype F32, found 16");
    altered_copy(good, bad, 0, "[16,24]", "[12,20]");
    expect_error(bad, "tensor 'y': data_offsets: expected to begin at byte 16, found 12");
    altered_copy(good, bad, 0, "{\"x\":", "[\"x\",");
    expect_error(bad, "header: expected a JSON object");
    /* a checkpoint is not a safetensors file */
    char ckpt[256];
    snprintf(ckpt, sizeof ckpt, "%s/runs/exp/ckpt_00000004.bin", dir);
    expect_error(ckpt, "header length");
}

/* ---- bin/export ----------------------------------------------------------------------------- */

/* a 4-step tiny run with checkpoints and probes at steps 2 and 4, once for all the tests below */
static int setup(void **state) {
    (void)state;
    static const char *const kv[][2] = {{"ckpt_every", "2"}, {"keep_ckpts", "2"}, {"probe_every", "2"}};
    char out_dir[256];
    snprintf(out_dir, sizeof out_dir, "%s/runs", dir);
    return fixture_tiny_run(data_dir, out_dir, "exp", kv, 3, 4);
}

static void test_export_holds_the_checkpoint_bit_for_bit(void **state) {
    (void)state;
    char err[ST_ERR_LEN], run_dir[256], out[256], ckpt[4200], set_path[300];
    snprintf(run_dir, sizeof run_dir, "%s/runs/exp", dir);
    path_in_dir(out, sizeof out, "exp2.safetensors");
    ExportInfo info;
    assert_int_equal(export_run(run_dir, 2, out, &info, err), 0);
    assert_int_equal(info.step, 2);
    assert_int_equal(info.probe_n, 4);
    assert_int_equal(info.probe_T, 16);

    TrainConfig cfg, exported;
    Moe m = {0};
    CkptState s;
    assert_int_equal(ckpt_open_model(run_dir, 2, &cfg, &m, &s, ckpt, sizeof ckpt, err), 0);
    SftFile f;
    assert_int_equal(sft_load(&f, out, err), 0);
    for (int i = 0; i < m.n_tensors; i++) {
        const MoeTensor *mt = &m.tensors[i];
        const SftTensor *t = sft_find(&f, mt->name);
        assert_non_null(t);
        assert_int_equal(t->dtype, SFT_F32);
        assert_int_equal(t->ndim, mt->ndim);
        for (int d = 0; d < mt->ndim; d++) assert_int_equal(t->shape[d], mt->shape[d]);
        assert_memory_equal(t->data, m.params + mt->offset, mt->size * sizeof(float));
    }
    /* the metadata: the config as bin/train reads it, the step, the tokenizer */
    config_defaults(&exported);
    assert_int_equal(config_load_text(&exported, sft_meta(&f, "config"), "metadata", err), 0);
    assert_int_equal(config_compare(&exported, &cfg, "metadata", err), 0);
    assert_string_equal(sft_meta(&f, "format"), "sinktrace");
    assert_string_equal(sft_meta(&f, "step"), "2");
    assert_string_equal(sft_meta(&f, "tokenizer"), "bytes");
    assert_string_equal(sft_meta(&f, "bos_id"), "256");
    const SftTensor *offsets = sft_find(&f, "tokenizer.offsets"), *bytes = sft_find(&f, "tokenizer.bytes");
    assert_int_equal(offsets->shape[0], 258);
    int32_t at[2];
    memcpy(at, offsets->data + 4 * 'W', 8); /* byte ids are themselves; BOS (256) decodes to nothing */
    assert_int_equal(at[1] - at[0], 1);
    assert_int_equal(bytes->data[at[0]], 'W');
    memcpy(at, offsets->data + 4 * 256, 8);
    assert_int_equal(at[1], at[0]);
    /* the probe set as probe_set.bin holds it, and the probes.jsonl lines of step 2 (natural only) */
    ProbeSet ps;
    snprintf(set_path, sizeof set_path, "%s/probe_set.bin", run_dir);
    assert_int_equal(probe_set_load(&ps, set_path, err), 0);
    assert_memory_equal(sft_find(&f, "probe.tokens")->data, ps.tokens, sizeof(int) * PV_COUNT * 4 * 16);
    assert_memory_equal(sft_find(&f, "probe.targets")->data, ps.targets, sizeof(int) * 4 * 16);
    assert_memory_equal(sft_find(&f, "probe.classes")->data, ps.classes, 4 * 16);
    assert_string_equal(sft_meta(&f, "probe_variants"), "natural,bos,random,shuffled,repeated,shifted,random_first");
    assert_non_null(strstr(sft_meta(&f, "probes_jsonl"), "\"step\":2,"));
    assert_null(strchr(sft_meta(&f, "probes_jsonl"), '\n'));
    probe_set_free(&ps);
    sft_free(&f);
    moe_free(&m);
}

/* bin/export's output: status and the whole of stdout+stderr */
static int run_export(const char *args, char *out, size_t size) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "bin/export %s 2>&1", args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, size - 1, p);
    out[n] = 0;
    return pclose(p);
}

static void test_bin_export_and_its_errors(void **state) {
    (void)state;
    char args[512], out[2048];
    snprintf(args, sizeof args, "%s/runs/exp --out %s/latest.safetensors", dir, dir);
    assert_int_equal(run_export(args, out, sizeof out), 0);
    assert_non_null(strstr(out, "ckpt_00000004.bin (step 4)"));
    assert_non_null(strstr(out, "read back identical"));
    assert_non_null(strstr(out, "7 probes.jsonl lines at step 4")); /* every variant at the last step */

    const struct {
        const char *args, *message;
    } bad[] = {
        {"%s/runs/exp --step 3 --out %s/x.safetensors",
         "runs/exp: no checkpoint at step 3 (its checkpoints are at steps: 2, 4)"},
        {"%s/runs/none --out %s/x.safetensors", "runs/none: cannot open directory"},
        {"%s/runs/exp --out %s/no/such/dir/x.safetensors", "no/such/dir/x.safetensors.tmp: cannot create"},
        {"%s/runs/exp --step two --out %s/x", "--step: expected an integer >= 0, found 'two'"},
        {"%s/runs/exp", "expected a run directory and --out"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        snprintf(args, sizeof args, bad[i].args, dir, dir);
        assert_int_not_equal(run_export(args, out, sizeof out), 0);
        int one_line = strchr(out, '\n') == out + strlen(out) - 1;
        if (strncmp(out, "error: ", 7) != 0 || !strstr(out, bad[i].message) || !one_line)
            fail_msg("bin/export %s: expected one line with '%s', found '%s'", args, bad[i].message, out);
    }
}

/* a truncated checkpoint is named, and its checksum says it is damaged */
static void test_export_of_a_damaged_checkpoint_names_it(void **state) {
    (void)state;
    char err[ST_ERR_LEN], dst_dir[128], dst[128], cmd[512];
    snprintf(dst_dir, sizeof dst_dir, "%s/runs/damaged", dir);
    snprintf(cmd, sizeof cmd, "cp -r %s/runs/exp %s && truncate -s -100 %s/ckpt_00000004.bin", dir, dst_dir, dst_dir);
    assert_int_equal(system(cmd), 0);
    snprintf(dst, sizeof dst, "%s/x.safetensors", dir);
    ExportInfo info;
    assert_int_equal(export_run(dst_dir, -1, dst, &info, err), -1);
    assert_non_null(strstr(err, "damaged/ckpt_00000004.bin: checksum"));
    assert_non_null(strstr(err, "corrupt or truncated"));
}

/* a synthetic stream's own symbols are the tokenizer */
static void test_export_of_a_stream_run_describes_its_symbols(void **state) {
    (void)state;
    static const char *const kv[][2] = {{"stream", "markov"}, {"stream_vocab", "12"}, {"stream_doc_len", "32"}};
    char err[ST_ERR_LEN], out_dir[256], run_dir[300], out[256];
    snprintf(out_dir, sizeof out_dir, "%s/runs", dir);
    assert_int_equal(fixture_tiny_run(data_dir, out_dir, "markov", kv, 3, 1), 0);
    snprintf(run_dir, sizeof run_dir, "%s/markov", out_dir);
    path_in_dir(out, sizeof out, "markov.safetensors");
    ExportInfo info;
    assert_int_equal(export_run(run_dir, -1, out, &info, err), 0);
    SftFile f;
    assert_int_equal(sft_load(&f, out, err), 0);
    assert_string_equal(sft_meta(&f, "tokenizer"), "symbols");
    assert_string_equal(sft_meta(&f, "bos_id"), "12");
    assert_int_equal(sft_find(&f, "wte")->shape[0], 13);
    const SftTensor *offsets = sft_find(&f, "tokenizer.offsets"), *bytes = sft_find(&f, "tokenizer.bytes");
    int32_t at[2];
    memcpy(at, offsets->data + 4 * 11, 8);
    assert_int_equal(at[1] - at[0], 5);
    assert_memory_equal(bytes->data + at[0], "<s11>", 5);
    sft_free(&f);
}

int main(void) {
    if (fixture_make_tmpdir(dir, sizeof dir, "sinktrace_export")) return 1;
    snprintf(data_dir, sizeof data_dir, "%s/data", dir);
    if (fixture_tiny_data(data_dir)) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_safetensors_round_trip),
        cmocka_unit_test(test_safetensors_rejects_bad_files),
        cmocka_unit_test(test_export_holds_the_checkpoint_bit_for_bit),
        cmocka_unit_test(test_bin_export_and_its_errors),
        cmocka_unit_test(test_export_of_a_damaged_checkpoint_names_it),
        cmocka_unit_test(test_export_of_a_stream_run_describes_its_symbols),
    };
    int rc = cmocka_run_group_tests_name("export", tests, setup, NULL);
    if (fixture_remove_dir(dir) != 0) return 1;
    return rc;
}
