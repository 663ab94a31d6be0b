/* tests/test_torch.c: the PyTorch twin (python/sinktrace_torch.py, written from docs/MODEL.md) against the
 * C model, on files bin/export writes.
 *
 * For each configuration below: a 6-step run of a tiny model, its export (train/export.h), and the C
 * model's numbers on the run's natural probe windows (logits, loss parts, every gradient, attention,
 * residual stream, a_p0 per head, rho per residual point, and the parameters) written to
 * <config>.c.safetensors. Then one run of tests/torch_parity.py compares them all with the twin,
 * checks that two deliberately wrong conventions fail that comparison, and that bad files get one-line
 * errors; it writes its verdicts to parity.json, which each test here reads. tests/replica_check.py
 * checks python/guo_replica.py against the twin. Everything is skipped,
 * with the reason, when /usr/bin/python3 cannot import torch and numpy. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/safetensors.h"
#include "../common/util.h"
#include "../model/moe.h"
#include "../probes/metrics.h"
#include "../probes/probeset.h"
#include "../train/checkpoint.h"
#include "../train/export.h"
#include "fixtures.h"

/* Debian's interpreter, where python3-torch installs torch (the Makefile's TORCH_PYTHON) */
#define PYTHON "/usr/bin/python3"

/* the configurations compared, on top of the fixture's tiny MoE (QK-norm on, top-2 of 4 experts,
 * renormalised); the loss coefficients are raised so that the aux and z gradients weigh in the check */
static const struct {
    const char *name;
    const char *kv[4][2];
    int n;
} CONFIGS[] = {
    {"moe", {{"aux_loss_coef", "0.5"}, {"z_loss_coef", "0.1"}}, 2},
    {"dense", {{"n_expert", "1"}, {"top_k", "1"}, {"d_ff", "64"}}, 3},
    {"grouped_kv", {{"n_kv_head", "2"}, {"norm_topk", "0"}, {"aux_loss_coef", "0.5"}, {"z_loss_coef", "0.1"}}, 4},
    {"qk_norm_off", {{"qk_norm", "0"}, {"aux_loss_coef", "0.5"}, {"z_loss_coef", "0.1"}}, 3},
    {"tied", {{"tie_embeddings", "1"}, {"head_dim", "12"}}, 2},
    {"controls", {{"attn_window", "6"}, {"attn_sink_logit", "1"}, {"attn_gate", "1"}}, 3},
    {"learned_pos", {{"learned_pos", "1"}, {"qk_norm", "0"}}, 2},
    {"gpt2_pieces", {{"learned_pos", "1"}, {"qk_norm", "0"}, {"norm", "layer"}, {"mlp", "relu"}}, 4},
};
#define N_CONFIGS ((int)(sizeof CONFIGS / sizeof *CONFIGS))

static char dir[64];
static int have_torch;
static cJSON *verdicts; /* parity.json */

/* ---- the C numbers -------------------------------------------------------------------------- */

/* Forward with capture (logits, attention, residual stream), then forward and backward with targets
 * (loss parts, gradients) on the natural probe windows; the metrics through probes/metrics.h. */
static void write_c_numbers(const char *run_dir, const char *path) {
    char err[ST_ERR_LEN], ckpt[4200], set_path[4200];
    TrainConfig cfg;
    Moe m = {0};
    CkptState s;
    ProbeSet ps;
    assert_int_equal(ckpt_open_model(run_dir, -1, &cfg, &m, &s, ckpt, sizeof ckpt, err), 0);
    snprintf(set_path, sizeof set_path, "%s/probe_set.bin", run_dir);
    assert_int_equal(probe_set_load(&ps, set_path, err), 0);
    const MoeConfig *c = &m.cfg;
    int B = ps.n, T = ps.T, L = c->n_layer, H = c->n_head, C = c->d_model, V = c->vocab_size, P = 2 * L + 1;
    ProbeDims dims = {.L = L, .N = B, .T = T, .C = C, .H = H, .KV = c->n_kv_head, .D = c->head_dim, .V = V};
    const int *tokens = probe_set_tokens(&ps, PV_NATURAL);

    MoeCapture cap;
    moe_capture_init(&cap);
    cap.attn = st_malloc(sizeof(float) * (size_t)L * B * H * T * T);
    cap.resid = st_malloc(sizeof(float) * (size_t)P * B * T * C);
    moe_forward(&m, tokens, NULL, B, T, &cap);
    moe_zero_grad(&m);
    moe_forward(&m, tokens, ps.targets, B, T, NULL);
    moe_backward(&m, 1.0f);
    float loss[4] = {m.loss.loss, m.loss.ce, m.loss.aux, m.loss.z};
    double *a_p0 = st_malloc(sizeof(double) * (size_t)L * H), *rho = st_malloc(sizeof(double) * (size_t)P);
    attn_on_key(a_p0, cap.attn, &dims, 0, 1);
    for (int p = 0; p < P; p++) rho[p] = p0_norm_ratio(cap.resid + (size_t)p * B * T * C, B, T, C);

    SftTensor *t = st_calloc((size_t)m.n_tensors + 7, sizeof *t);
    int n = 0;
    t[n++] = sft_tensor("params", SFT_F32, m.params, 1, (int64_t[]){(int64_t)m.n_params});
    t[n++] = sft_tensor("logits", SFT_F32, m.logits, 3, (int64_t[]){B, T, V});
    t[n++] = sft_tensor("loss", SFT_F32, loss, 1, (int64_t[]){4});
    t[n++] = sft_tensor("attn", SFT_F32, cap.attn, 5, (int64_t[]){L, B, H, T, T});
    t[n++] = sft_tensor("resid", SFT_F32, cap.resid, 4, (int64_t[]){P, B, T, C});
    t[n++] = sft_tensor("a_p0", SFT_F64, a_p0, 2, (int64_t[]){L, H});
    t[n++] = sft_tensor("rho", SFT_F64, rho, 1, (int64_t[]){P});
    for (int i = 0; i < m.n_tensors; i++) {
        const MoeTensor *mt = &m.tensors[i];
        char name[96];
        snprintf(name, sizeof name, "grad.%s", mt->name);
        t[n++] = sft_tensor(name, SFT_F32, m.grads + mt->offset, mt->ndim,
                            (int64_t[]){mt->shape[0], mt->shape[1], mt->shape[2]});
    }
    assert_int_equal(sft_save(path, t, n, NULL, err), 0);
    free(t);
    free(a_p0);
    free(rho);
    free(cap.attn);
    free(cap.resid);
    probe_set_free(&ps);
    moe_free(&m);
}

/* every configuration: train, export, C numbers; then the Python side once */
static int setup(void **state) {
    (void)state;
    have_torch = system(PYTHON " -c 'import torch, numpy' >/dev/null 2>&1") == 0;
    if (!have_torch) {
        printf("note: test_torch skipped: " PYTHON " cannot import torch and numpy (Debian: apt-get install "
               "python3-torch python3-numpy, or make deps PYTHON=1)\n");
        return 0;
    }
    char data_dir[128], cmd[512], err[ST_ERR_LEN], path[256];
    if (fixture_make_tmpdir(dir, sizeof dir, "sinktrace_torch")) return -1;
    snprintf(data_dir, sizeof data_dir, "%s/data", dir);
    if (fixture_tiny_data(data_dir)) return -1;
    int len = snprintf(cmd, sizeof cmd, PYTHON " tests/torch_parity.py %s", dir);
    for (int i = 0; i < N_CONFIGS; i++) {
        char run_dir[256];
        ExportInfo info;
        snprintf(run_dir, sizeof run_dir, "%s/%s", dir, CONFIGS[i].name);
        snprintf(path, sizeof path, "%s/%s.safetensors", dir, CONFIGS[i].name);
        if (fixture_tiny_run(data_dir, dir, CONFIGS[i].name, CONFIGS[i].kv, CONFIGS[i].n, 6)) return -1;
        if (export_run(run_dir, -1, path, &info, err)) return fprintf(stderr, "%s\n", err), -1;
        snprintf(path, sizeof path, "%s/%s.c.safetensors", dir, CONFIGS[i].name);
        write_c_numbers(run_dir, path);
        len += snprintf(cmd + len, sizeof cmd - (size_t)len, " %s", CONFIGS[i].name);
    }
    if (system(cmd) != 0) fprintf(stderr, "tests/torch_parity.py reported a failure (the tests below say which)\n");
    snprintf(path, sizeof path, "%s/parity.json", dir);
    static char text[1 << 16];
    fixture_read_text(path, text, sizeof text);
    verdicts = cJSON_Parse(text);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    cJSON_Delete(verdicts);
    return have_torch ? fixture_remove_dir(dir) : 0;
}

/* the verdict object parity.json holds for `section`.`name`, printing its summary */
static const cJSON *verdict(const char *section, const char *name) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(verdicts, section), name);
    assert_non_null(v);
    const cJSON *summary = cJSON_GetObjectItemCaseSensitive(v, "summary");
    if (cJSON_IsString(summary)) printf("note: %s\n", summary->valuestring);
    return v;
}

static int verdict_is(const cJSON *v, const char *key) {
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(v, key));
}

/* ---- the tests ------------------------------------------------------------------------------ */

/* logits, loss parts, every gradient, attention, residual stream, a_p0, rho within the tolerances, and
 * the loaded parameters bit for bit the C model's */
static void test_twin_matches_c(void **state) {
    if (!have_torch) skip();
    const cJSON *v = verdict("configs", (const char *)*state);
    assert_true(verdict_is(v, "params_identical"));
    assert_true(verdict_is(v, "within_tolerance"));
}

/* a twin with a wrong convention must fail the same comparison: the check can fail */
static void test_wrong_convention_fails(void **state) {
    if (!have_torch) skip();
    const cJSON *v = verdict("wrong_conventions", (const char *)*state);
    assert_false(verdict_is(v, "within_tolerance"));
}

/* the twin reproduces the run's own probes.jsonl line (a_p0, rho) from the export alone */
static void test_probe_line_reproduced(void **state) {
    (void)state;
    if (!have_torch) skip();
    assert_true(verdict_is(verdict("probe_line", "moe"), "within_tolerance"));
}

/* a truncated file, a file that is not safetensors and a safetensors file that is not an export get
 * one-line errors naming the file */
static void test_python_loader_errors(void **state) {
    (void)state;
    if (!have_torch) skip();
    assert_true(verdict_is(verdict("loader_errors", "all"), "one_line_naming_the_file"));
}

/* an export from before the learned_pos, norm, mlp and embed_std keys loads into the twin as a model with
 * their defaults (RoPE, RMSNorm, SwiGLU) */
static void test_python_older_export(void **state) {
    (void)state;
    if (!have_torch) skip();
    assert_true(verdict_is(verdict("older_export", "moe"), "loads"));
}

/* python/guo_replica.py: its default model is the twin's, its streams keep their rules, its attention
 * split gives the known answer on uniform attention (tests/replica_check.py) */
static void test_guo_replica(void **state) {
    (void)state;
    if (!have_torch) skip();
    assert_int_equal(system(PYTHON " tests/replica_check.py"), 0);
}

int main(void) {
    static char names[N_CONFIGS][64];
    struct CMUnitTest tests[N_CONFIGS + 6];
    int n = 0;
    for (int i = 0; i < N_CONFIGS; i++) {
        snprintf(names[i], sizeof names[i], "test_twin_matches_c_%s", CONFIGS[i].name);
        tests[n++] = (struct CMUnitTest){names[i], test_twin_matches_c, NULL, NULL, (void *)CONFIGS[i].name};
    }
    tests[n++] = (struct CMUnitTest){"test_wrong_convention_fails_rope_reversed", test_wrong_convention_fails, NULL,
                                     NULL, (void *)"rope_reversed"};
    tests[n++] = (struct CMUnitTest){"test_wrong_convention_fails_kv_interleaved", test_wrong_convention_fails, NULL,
                                     NULL, (void *)"kv_interleaved"};
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_probe_line_reproduced);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_python_loader_errors);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_python_older_export);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_guo_replica);
    return cmocka_run_group_tests_name("torch", tests, setup, teardown);
}
