/* tests/test_probes.c: the probe metrics on hand-built captures whose answer is known, and the derived
 * quantities (d*, C2, K2, delta, emergence) on synthetic curves. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../common/binfile.h"
#include "../common/util.h"
#include "../data/shard.h"
#include "../data/tokenizer.h"
#include "../model/moe.h"
#include "../probes/attnmaps.h"
#include "../probes/metrics.h"
#include "../probes/probe.h"
#include "../probes/probeset.h"
#include "../probes/record.h"
#include "../train/adamw.h"
#include "../train/checkpoint.h"
#include "../train/config.h"
#include "fixtures.h"

static char dir[64];

static int make_dir(void **state) {
    (void)state;
    return fixture_make_tmpdir(dir, sizeof dir, "test_probes");
}

static int remove_dir(void **state) {
    (void)state;
    return fixture_remove_dir(dir);
}

/* ---- attention ------------------------------------------------------------------------------ */

/* attention [L][N][H][T][T] where head (l, h) is a sink head (all weight on key 0) when sink[l*H+h],
 * and uniform causal attention otherwise */
static float *make_attn(const ProbeDims *d, const int *sink) {
    int T = d->T;
    float *a = st_calloc((size_t)d->L * d->N * d->H * T * T, sizeof(float));
    for (int l = 0; l < d->L; l++)
        for (int n = 0; n < d->N; n++)
            for (int h = 0; h < d->H; h++) {
                float *A = a + (((size_t)l * d->N + n) * d->H + h) * T * T;
                for (int i = 0; i < T; i++)
                    for (int j = 0; j <= i; j++)
                        A[i * T + j] = sink[l * d->H + h] ? (j == 0) : 1.0f / (i + 1);
            }
    return a;
}

static void test_chance_value(void **state) {
    (void)state;
    assert_true(fabs(chance(64) - 0.0594) < 5e-4); /* SCIENCE.md: 0.059 at T = 64 */
    assert_true(fabs(chance(2) - 0.5) < 1e-12);    /* query 1 puts 1/2 on key 0 */
}

static void test_uniform_attention_is_chance(void **state) {
    (void)state;
    ProbeDims d = {.L = 2, .N = 3, .T = 64, .H = 2};
    int sink[4] = {0, 0, 0, 0};
    float *a = make_attn(&d, sink);
    double out[4];
    attn_on_key(out, a, &d, 0, 1);
    for (int i = 0; i < 4; i++) assert_true(fabs(out[i] - chance(64)) < 1e-7);
    /* Gu's version: query 0 adds weight 1, divided by T: (H_T - 1 + 1) / T */
    attn_on_key(out, a, &d, 0, 0);
    assert_true(fabs(out[0] - (chance(64) * 63 + 1) / 64) < 1e-7);
    assert_true(sink_rate(out, 2, 0, 1, 0.2) == 0.0);
    free(a);
}

static void test_sink_head_and_controls(void **state) {
    (void)state;
    ProbeDims d = {.L = 4, .N = 2, .T = 16, .H = 2};
    int sink[8] = {0, 0, 0, 0, 1, 0, 1, 1}; /* layer 2 head 0, both heads of layer 3 */
    float *a = make_attn(&d, sink);
    double p0[8], k1[8], late[8];
    attn_on_key(p0, a, &d, 0, 1);
    attn_on_key(k1, a, &d, 1, 2);
    attn_on_key(late, a, &d, 0, 8);
    assert_true(fabs(p0[4] - 1) < 1e-12 && fabs(p0[7] - 1) < 1e-12);
    assert_true(k1[4] == 0 && late[6] == 1);
    assert_true(fabs(late[0] - (1.0 / 9 + 1.0 / 10 + 1.0 / 11 + 1.0 / 12 + 1.0 / 13 + 1.0 / 14 + 1.0 / 15 +
                                1.0 / 16) / 8) < 1e-7);
    assert_true(sink_rate(p0, 2, 0, 3, 0.3) == 3.0 / 8);
    assert_true(sink_rate(p0, 2, 2, 3, 0.3) == 3.0 / 4); /* Sink[2:] */
    assert_true(sink_rate(p0, 2, 2, 2, 0.5) == 0.5);     /* per layer */
    assert_true(sink_rate(k1, 2, 0, 3, 0.2) == 0.0);
    free(a);
}

/* ---- norms and cosines ---------------------------------------------------------------------- */

static void test_norm_ratio_and_gain(void **state) {
    (void)state;
    int N = 2, T = 5, C = 4;
    float x[2 * 5 * 4] = {0}, y[2 * 5 * 4] = {0};
    for (int n = 0; n < N; n++) {
        x[(n * T) * C + 1] = 5.0f; /* P0 norm 5 */
        for (int i = 1; i < T; i++) x[(n * T + i) * C + i % C] = (i == 4) ? 9.0f : -1.0f; /* median 1 */
        y[(n * T) * C + 2] = 5.0f * (n + 2); /* after: norm 10 and 15 */
    }
    assert_true(fabs(p0_norm_ratio(x, N, T, C) - 5.0) < 1e-12);
    assert_true(fabs(p0_gain(x, y, N, T, C) - 2.5) < 1e-12);
    /* as 2 heads of 2 channels: head 0 has 5 / median(1, 0, 0, 9) = 10, head 1 has 0 / 0.5: mean 5 */
    assert_true(fabs(head_p0_norm_ratio(x, N, T, 2, 2) - 5.0) < 1e-12);
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static void test_median(void **state) {
    (void)state;
    float odd[6] = {9, 3, 1, 2, 2, 5}; /* C = 1: the norms are the values; position 0 is left out */
    assert_true(median_later_norm(odd, 6, 1) == 2.0);
    float even[5] = {0, 4, 1, 3, 2};
    assert_true(median_later_norm(even, 5, 1) == 2.5);
    /* against sorting, on many ties and both parities */
    StRng rng;
    st_rng_seed(&rng, 1);
    for (int T = 2; T < 200; T += 7) {
        float x[200], sorted[200];
        for (int i = 0; i < T; i++) x[i] = (float)st_rng_below(&rng, 10);
        memcpy(sorted, x + 1, sizeof(float) * (T - 1));
        qsort(sorted, (size_t)(T - 1), sizeof(float), cmp_float);
        int n = T - 1;
        double expect = n % 2 ? sorted[n / 2] : 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]);
        assert_true(median_later_norm(x, T, 1) == expect);
    }
}

static void test_kappa(void **state) {
    (void)state;
    int N = 4, T = 2, C = 2;
    float same[4 * 2 * 2], flip[4 * 2 * 2];
    for (int n = 0; n < N; n++)
        for (int i = 0; i < T; i++) {
            float *s = same + (n * T + i) * C, *f = flip + (n * T + i) * C;
            s[0] = 3.0f * (n + 1), s[1] = 4.0f * (n + 1); /* one direction, different norms */
            f[0] = n < 2 ? 1.0f : -1.0f, f[1] = 0; /* two +v, two -v */
        }
    assert_true(fabs(kappa(same, N, T, C, 0, NULL) - 1) < 1e-12);
    /* ordered pairs: 4 alike (+1), 8 opposite (-1): (4 - 8) / 12 */
    assert_true(fabs(kappa(flip, N, T, C, 1, NULL) + 1.0 / 3) < 1e-12);

    /* (1, 1) and (1, -1) are orthogonal; a gain that drops channel 1 makes them identical */
    float two[2 * 1 * 2] = {1, 1, 1, -1}, gain[2] = {1, 0};
    assert_true(fabs(kappa(two, 2, 1, 2, 0, NULL)) < 1e-12);
    assert_true(fabs(kappa(two, 2, 1, 2, 0, gain) - 1) < 1e-12);
}

static void test_massive_ratio(void **state) {
    (void)state;
    int N = 2, T = 3, C = 4, channel = -1;
    float x[2 * 3 * 4];
    for (int i = 0; i < N * T * C; i++) x[i] = (i % 2) ? -1.0f : 1.0f;
    x[0 * T * C + 3] = 100.0f;
    x[1 * T * C + 3] = -50.0f;
    assert_true(fabs(massive_ratio(x, N, T, C, &channel) - 75.0) < 1e-12);
    assert_int_equal(channel, 3);
}

/* ---- circuit pieces ------------------------------------------------------------------------- */

static void test_p0_units(void **state) {
    (void)state;
    ProbeDims d = {.N = 1, .T = 5, .K = 1, .F = 3, .E = 2};
    float h[5 * 3];
    for (int i = 0; i < 15; i++) h[i] = 1.0f;
    h[0 * 3 + 2] = 50.0f;  /* unit 2 of P0's expert: 50x the median */
    h[0 * 3 + 1] = 9.0f;   /* 9x: not selective */
    int choice[5] = {1, 1, 0, 1, 1};
    h[2 * 3 + 2] = 1000.0f; /* position 2 went to another expert: not part of the median */
    assert_true(p0_units(h, choice, &d) == 1.0);
    h[1 * 3 + 2] = h[3 * 3 + 2] = h[4 * 3 + 2] = 10.0f; /* now 50 < 10 x median 10 */
    assert_true(p0_units(h, choice, &d) == 0.0);
    assert_true(p0_units(h, NULL, &d) == 0.0); /* dense: the same expert everywhere */
}

static void test_qk_cos(void **state) {
    (void)state;
    ProbeDims d = {.N = 1, .T = 3, .H = 2, .KV = 1, .D = 2};
    /* every query points along e0; key 0 along e0, keys 1 and 2 along e1 */
    float q[3 * 2 * 2] = {1, 0, 1, 0, 2, 0, 3, 0, 1, 0, 1, 0};
    float k[3 * 1 * 2] = {4, 0, 0, 1, 0, -2};
    double p0, other;
    qk_cos(q, k, &d, &p0, &other);
    assert_true(fabs(p0 - 1) < 1e-12 && fabs(other) < 1e-12);
}

static void test_routing(void **state) {
    (void)state;
    ProbeDims d = {.N = 4, .T = 2, .K = 1, .E = 3};
    int choice[4 * 2] = {1, 0, 1, 2, 1, 2, 2, 2};
    assert_true(p0_route_consistency(choice, &d) == 0.75);
    float probs[4 * 2 * 3];
    for (int n = 0; n < 4; n++) {
        float *p = probs + n * 2 * 3;
        p[0] = p[1] = p[2] = 1.0f / 3; /* P0: uniform */
        p[3] = 1, p[4] = p[5] = 0;     /* position 1: certain */
    }
    double h0, hmed;
    router_entropy(probs, &d, &h0, &hmed);
    assert_true(fabs(h0 - log(3.0)) < 1e-6 && hmed == 0);
}

/* ---- derived -------------------------------------------------------------------------------- */

static void test_dstar_c2_k2_delta(void **state) {
    (void)state;
    double early[9] = {1, 1.5, 4, 8, 8.2, 8.1, 8, 8, 8};
    assert_true(d_star(early, 9) == 1.5);
    assert_true(c2_share(early, 9) == 1.0);
    double late[9] = {1, 1, 1, 1, 2, 2, 4, 4, 4};
    assert_true(d_star(late, 9) == 2.0);
    assert_true(fabs(c2_share(late, 9) - 0.5) < 1e-12);
    double dip[9] = {2, 2, 1, 1, 1, 3, 3, 3, 3}; /* below rho_0 at point 2: clipped to 0 */
    assert_true(c2_share(dip, 9) == 0.0);
    double flat[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    assert_true(isnan(c2_share(flat, 9)));
    double kap[9] = {0.1, 0.2, 0.4, 0.5, 0.7, 0.8, 0.9, 1.0, 0.95};
    assert_true(fabs(k2_share(kap, 9) - 0.6 / 0.9) < 1e-12);
    double delta[8];
    log_norm_growth(delta, late, 9);
    assert_true(delta[0] == 0 && fabs(delta[3] - log(2.0)) < 1e-12 && fabs(delta[5] - log(2.0)) < 1e-12);
}

static void test_emergence(void **state) {
    (void)state;
    double rise[7] = {0, 0, 0.1, 0.6, 0.7, 0.8, 1.0};
    assert_int_equal(emergence_index(rise, 7), 3);
    double blip[7] = {0, 0.6, 0.2, 0.7, 0.8, 0.9, 1.0}; /* crosses at 1 but falls back */
    assert_int_equal(emergence_index(blip, 7), 3);
    double fall[5] = {1, 0.9, 0.4, 0.3, 0};
    assert_int_equal(emergence_index(fall, 5), 2);
    double late[5] = {0, 0, 0, 0.1, 1}; /* crosses only at the final probe: not confirmed */
    assert_int_equal(emergence_index(late, 5), -1);
    double nan[5] = {0, 0, NAN, 1, 1};
    assert_int_equal(emergence_index(nan, 5), -1);
    double flat[4] = {2, 2, 2, 2};
    assert_int_equal(emergence_index(flat, 4), -1);
}


/* ---- where attention parks ------------------------------------------------------------------ */

/* head 0 reads the previous token, head 1 position 0; tokens 3 5 5 7 5 9, queries 2 and 4 triggers */
static void test_parking_on_known_attention(void **state) {
    (void)state;
    enum { T = 6 };
    ProbeDims d = {.L = 1, .N = 1, .T = T, .H = 2, .KV = 1, .D = 2, .V = 10};
    float attn[2 * T * T] = {0}, v[T * 2] = {0};
    for (int i = 0; i < T; i++) {
        attn[i * T + (i > 0 ? i - 1 : 0)] = 1; /* head 0 */
        attn[T * T + i * T] = 1;               /* head 1 */
        v[i * 2] = (float)i;                    /* ||v_j|| = j */
    }
    int x[T] = {3, 5, 5, 7, 5, 9};
    uint8_t cls[T] = {0, 0, 1, 0, 1, 0};
    double out[2];
    attn_on_relative(out, attn, &d, KEY_PREV, NULL, -1);
    assert_true(out[0] == 1 && fabs(out[1] - 1.0 / 5) < 1e-12); /* head 1: query 1's previous is P0 */
    attn_on_relative(out, attn, &d, KEY_SELF, NULL, -1);
    assert_true(out[0] == 0 && out[1] == 0);
    attn_on_relative(out, attn, &d, KEY_P0, cls, STREAM_TRIGGER);
    assert_true(out[0] == 0 && out[1] == 1);
    attn_on_relative(out, attn, &d, KEY_P0, cls, STREAM_ORDINARY); /* queries 1, 3, 5 */
    assert_true(fabs(out[0] - 1.0 / 3) < 1e-12 && out[1] == 1);
    uint8_t none[T] = {0};
    attn_on_relative(out, attn, &d, KEY_P0, none, STREAM_TRIGGER);
    assert_true(isnan(out[0]) && isnan(out[1])); /* no trigger query */

    /* induction: queries 2 (a 5 before, followed by key 2), 4 (keys 2 and 3 follow 5s) repeat; head 0
     * reads key 1 from query 2 (a successor? x0 = 3, no) and key 3 from query 4 (x2 = 5, yes) */
    attn_on_successors(out, attn, x, &d);
    assert_true(fabs(out[0] - 0.5) < 1e-12 && out[1] == 0);

    /* head 0's mass: queries 2, 3, 5 land on a 5, query 4 on the 7 (query 1 on P0, not counted) */
    double mass[10], base[10], top_mass[3], top_lift[3];
    int ids[3];
    assert_int_equal(attn_mass_by_token(mass, base, attn, x, &d, 0, 0, NULL, -1), 5);
    assert_true(fabs(mass[5] - 3.0 / 5) < 1e-12 && fabs(mass[7] - 1.0 / 5) < 1e-12 && mass[9] == 0);
    /* uniform attention: query i gives each of keys 1..i weight 1/(i+1) */
    double base5 = (1.0 / 2 + 2.0 / 3 + 2.0 / 4 + 3.0 / 5 + 3.0 / 6) / 5;
    assert_true(fabs(base[5] - base5) < 1e-12 && fabs(base[9] - 1.0 / 30) < 1e-12);
    top_tokens(mass, base, 10, 3, ids, top_mass, top_lift);
    assert_true(ids[0] == 5 && ids[1] == 7 && ids[2] == -1); /* 9 gets nothing: no third id */
    assert_true(fabs(top_lift[0] - (3.0 / 5) / base5) < 1e-12 && isnan(top_mass[2]));
    /* only the trigger queries 2 and 4: a 5 and the 7 */
    assert_int_equal(attn_mass_by_token(mass, base, attn, x, &d, 0, 0, cls, STREAM_TRIGGER), 2);
    assert_true(mass[5] == 0.5 && mass[7] == 0.5);

    /* value norms over the median of positions 1..5 (3): P0 0, the 5s (1, 2, 4) 7/9, the 9 5/3 */
    double p0, by_token[10];
    value_norms(&p0, by_token, v, x, &d, 0);
    assert_true(p0 == 0 && fabs(by_token[5] - 7.0 / 9) < 1e-12 && fabs(by_token[9] - 5.0 / 3) < 1e-12);
    assert_true(isnan(by_token[3])); /* only at position 0 */
}

/* ---- the probe set -------------------------------------------------------------------------- */

/* n windows of T tokens: token (7 s + i) % 200, vocab 257 with BOS 256; every third query a trigger */
static void make_probe_set(ProbeSet *ps, int n, int T, uint64_t seed) {
    int *w = st_malloc(sizeof(int) * (size_t)n * T), *t = st_malloc(sizeof(int) * (size_t)n * T);
    uint8_t *c = st_malloc((size_t)n * T);
    for (int s = 0; s < n; s++)
        for (int i = 0; i < T; i++)
            w[s * T + i] = (7 * s + i) % 200, t[s * T + i] = (7 * s + i + 1) % 200, c[s * T + i] = i % 3 == 1;
    char err[ST_ERR_LEN];
    assert_int_equal(probe_set_from_windows(ps, w, t, c, n, T, 257, 256, 3, seed, err), 0);
    free(w);
    free(t);
    free(c);
}

static void test_probe_set_variants(void **state) {
    (void)state;
    int n = 4, T = 16;
    ProbeSet ps;
    make_probe_set(&ps, n, T, 5);
    const int *nat = probe_set_tokens(&ps, PV_NATURAL);
    for (int s = 0; s < n; s++) {
        const int *w = nat + s * T;
        const int *bos = probe_set_tokens(&ps, PV_BOS) + s * T, *rnd = probe_set_tokens(&ps, PV_RANDOM) + s * T;
        const int *shu = probe_set_tokens(&ps, PV_SHUFFLED) + s * T, *rep = probe_set_tokens(&ps, PV_REPEATED) + s * T;
        const int *sft = probe_set_tokens(&ps, PV_SHIFTED) + s * T;
        const int *rf = probe_set_tokens(&ps, PV_RANDOM_FIRST) + s * T;
        assert_int_equal(bos[0], 256);
        int count[257] = {0};
        for (int i = 0; i < T; i++) {
            if (i > 0) assert_int_equal(bos[i], w[i - 1]);
            assert_true(rnd[i] >= 0 && rnd[i] < 256); /* never BOS */
            assert_int_equal(rep[i], w[0]);
            if (i >= 3) assert_int_equal(sft[i], w[i - 3]);
            if (i > 0) assert_int_equal(rf[i], w[i]);
            count[w[i]]++;
            count[shu[i]]--;
        }
        for (int t = 0; t < 257; t++) assert_int_equal(count[t], 0); /* shuffled is a permutation */
        assert_memory_not_equal(shu, w, sizeof(int) * T);
    }
    assert_true(probe_set_has(&ps, PV_BOS));
    probe_set_free(&ps);
}

static void test_probe_set_round_trip(void **state) {
    (void)state;
    char path[256], err[ST_ERR_LEN];
    snprintf(path, sizeof path, "%s/probe_set.bin", dir);
    ProbeSet a, b, c;
    make_probe_set(&a, 3, 8, 11);
    make_probe_set(&c, 3, 8, 11); /* a resumed run rebuilding from the same seed gets the same set */
    assert_memory_equal(a.tokens, c.tokens, sizeof(int) * PV_COUNT * 3 * 8);
    assert_int_equal(probe_set_save(&a, path, err), 0);
    assert_int_equal(probe_set_load(&b, path, err), 0);
    assert_true(b.n == 3 && b.T == 8 && b.vocab == 257 && b.bos_id == 256 && b.shift == 3 && b.seed == 11);
    assert_memory_equal(a.tokens, b.tokens, sizeof(int) * PV_COUNT * 3 * 8);
    assert_memory_equal(a.targets, b.targets, sizeof(int) * 3 * 8);
    assert_memory_equal(a.classes, b.classes, 3 * 8);
    assert_int_equal(b.classes[1], STREAM_TRIGGER);
    probe_set_free(&b);
    /* a query class that does not exist is refused, naming the array */
    {
        FILE *f = fopen(path, "r+b");
        assert_non_null(f);
        int32_t bad = 7;
        assert_int_equal(fseek(f, -(long)(sizeof bad + ST_TRAILER_BYTES), SEEK_END), 0);
        assert_int_equal(fwrite(&bad, sizeof bad, 1, f), 1);
        fclose(f);
        fixture_reseal(path); /* behind the checksum, to the format's own check */
    }
    assert_int_equal(probe_set_load(&b, path, err), -1);
    assert_non_null(strstr(err, "classes[23]: expected a query class below 2, found 7"));
    /* a truncated file is reported as such, naming the file */
    assert_int_equal(truncate(path, 100), 0);
    assert_int_equal(probe_set_load(&b, path, err), -1);
    assert_non_null(strstr(err, "truncated"));
    assert_non_null(strstr(err, path));
    probe_set_free(&a);
    probe_set_free(&c);
    int w[2 * 4] = {0};
    assert_int_equal(probe_set_from_windows(&a, w, w, NULL, 2, 4, 257, -1, 4, 1, err), -1);
    assert_non_null(strstr(err, "probe_shift"));
}

/* ---- one record and the summary ------------------------------------------------------------- */

static float *random_floats(StRng *rng, size_t n) {
    float *x = st_malloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++) x[i] = (float)st_rng_normal(rng);
    return x;
}

/* every key the figures read, with its array length (0 = scalar) */
static void test_record_json_schema(void **state) {
    (void)state;
    ProbeDims d = {.L = 3, .N = 3, .T = 8, .C = 8, .H = 2, .KV = 1, .D = 4, .E = 4, .K = 2, .F = 6, .V = 11};
    int L = d.L, N = d.N, T = d.T, P = 2 * L + 1, tokens[3 * 8];
    for (int i = 0; i < N * T; i++) tokens[i] = i % d.V;
    StRng rng;
    st_rng_seed(&rng, 3);
    int sink[6] = {0};
    MoeCapture cap = {0}; /* only the captured arrays matter here */
    cap.attn = make_attn(&d, sink);
    cap.resid = random_floats(&rng, (size_t)P * N * T * d.C);
    cap.attn_out = random_floats(&rng, (size_t)L * N * T * d.C);
    cap.moe_out = random_floats(&rng, (size_t)L * N * T * d.C);
    cap.q = random_floats(&rng, (size_t)L * N * T * d.H * d.D);
    cap.k = random_floats(&rng, (size_t)L * N * T * d.KV * d.D);
    cap.v = random_floats(&rng, (size_t)L * N * T * d.KV * d.D);
    cap.router_probs = st_malloc(sizeof(float) * L * N * T * d.E);
    for (int i = 0; i < L * N * T * d.E; i++) cap.router_probs[i] = 0.25f;
    cap.router_choice = st_malloc(sizeof(int) * L * N * T * d.K);
    for (int i = 0; i < L * N * T * d.K; i++) cap.router_choice[i] = i % d.E;
    cap.moe_hidden = random_floats(&rng, (size_t)2 * N * T * d.K * d.F);
    ProbeRecord r;
    record_alloc(&r, L, d.H);
    r.step = 7, r.variant = "natural", r.tokens = 100, r.val_loss = NAN, r.probe_loss = 2.5;
    record_compute(&r, &cap, &d, NULL, tokens, NULL);
    StJson j = {0};
    record_to_json(&r, &j);
    cJSON *o = cJSON_Parse(sj_end(&j));
    assert_non_null(o);
    /* the line holds the schema's keys, each with its shape, and nothing else (L = 3, H = 2) */
    assert_int_equal(cJSON_GetArraySize(o), record_n_fields);
    for (int i = 0; i < record_n_fields; i++) {
        const RecordField *f = &record_fields[i];
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, f->key);
        if (!v) fail_msg("missing key %s", f->key);
        if (f->shape != RS_ONE) assert_int_equal(cJSON_GetArraySize(v), record_shape_length(f->shape, 3, 2));
        else assert_false(cJSON_IsArray(v));
    }
    assert_int_equal(record_shape_length(RS_PARK, 3, 2), 6 * PARK_TOP);
    /* uniform attention: lift 1 in every layer; uniform routing: entropy log 4 */
    assert_true(fabs(cJSON_GetArrayItem(cJSON_GetObjectItem(o, "lift_layer"), 2)->valuedouble - 1) < 1e-6);
    assert_true(fabs(r.router_entropy_p0[1] - log(4.0)) < 1e-6);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(o, "val_loss")));
    cJSON_Delete(o);
    sj_free(&j);
    record_free(&r);
    free(cap.attn), free(cap.resid), free(cap.attn_out), free(cap.moe_out), free(cap.q), free(cap.k), free(cap.v);
    free(cap.router_probs), free(cap.router_choice), free(cap.moe_hidden);
}

static void test_summary(void **state) {
    (void)state;
    char probes[256], summary[256], err[ST_ERR_LEN];
    snprintf(probes, sizeof probes, "%s/probes.jsonl", dir);
    snprintf(summary, sizeof summary, "%s/summary.json", dir);
    FILE *f = fopen(probes, "w");
    double sink[6] = {0, 0, 0.05, 0.6, 0.7, 0.8};
    for (int i = 0; i < 6; i++) {
        fprintf(f, "{\"step\":%d,\"variant\":\"natural\",\"val_loss\":%g,\"a_p0_2plus\":%g,\"rho\":[1,1,1,1,%d]}\n",
                100 * i, 5.0 - i, sink[i], 1 + i);
        fprintf(f, "{\"step\":%d,\"variant\":\"bos\",\"a_p0_2plus\":1}\n", 100 * i);
    }
    fprintf(f, "{\"step\":300,\"variant\":\"natural\",\"val_loss\":1.5,\"a_p0_2plus\":0.6}\n"); /* resumed */
    fclose(f);
    assert_int_equal(summary_write(probes, "natural", summary, 1000, NULL, err), 0);
    f = fopen(summary, "r");
    char buf[8192] = {0};
    assert_true(fread(buf, 1, sizeof buf - 1, f) > 0);
    fclose(f);
    cJSON *o = cJSON_Parse(buf);
    assert_non_null(o);
    assert_int_equal(cJSON_GetObjectItem(o, "n_probes")->valueint, 6);
    assert_int_equal(cJSON_GetObjectItem(o, "a_p0_2plus_emergence_step")->valueint, 300);
    assert_true(fabs(cJSON_GetObjectItem(o, "a_p0_2plus_emergence_frac")->valuedouble - 0.3) < 1e-12);
    assert_true(fabs(cJSON_GetObjectItem(o, "a_p0_2plus_emergence_loss")->valuedouble - 1.5) < 1e-12);
    assert_true(fabs(cJSON_GetObjectItem(o, "rho_2_final")->valuedouble - 6) < 1e-12);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(o, "C2_emergence_step"))); /* absent metric: null */
    cJSON_Delete(o);
    /* a broken line is named */
    f = fopen(probes, "a");
    fprintf(f, "not json\n");
    fclose(f);
    assert_int_equal(summary_write(probes, "natural", summary, 1000, NULL, err), -1);
    assert_non_null(strstr(err, "probes.jsonl:14"));
}

/* ---- probes.jsonl's documentation ----------------------------------------------------------- */

/* a key of docs/PROBES.md's probes.jsonl table with its shape as written there ("" for one value) */
typedef struct {
    char key[64], shape[16];
} DocKey;

/* the keys of the first column of one table row: `a`, `b` [S]; `c` gives a and b the shape S, c none */
static int row_keys(const char *cell, DocKey *out, int n, int max) {
    int pending = n;
    for (const char *p = cell; *p && *p != '|'; p++) {
        const char *end = p[0] == '`' || p[0] == '[' ? strchr(p + 1, p[0] == '`' ? '`' : ']') : NULL;
        if (p[0] == ';') pending = n;
        if (!end) continue;
        if (p[0] == '`' && n < max) snprintf(out[n++].key, sizeof out->key, "%.*s", (int)(end - p - 1), p + 1);
        for (; p[0] == '[' && pending < n; pending++)
            snprintf(out[pending].shape, sizeof out->shape, "%.*s", (int)(end - p - 1), p + 1);
        p = end;
    }
    return n;
}

/* every key of the table between "**probes.jsonl**" and "**summary.json**" */
static int doc_keys(DocKey *out, int max) {
    static char text[1 << 17];
    fixture_read_text("docs/PROBES.md", text, sizeof text);
    const char *from = strstr(text, "\n**probes.jsonl**"), *to = from ? strstr(from, "\n**summary.json**") : NULL;
    if (!to) fail_msg("docs/PROBES.md: no probes.jsonl section before summary.json's");
    int n = 0;
    memset(out, 0, sizeof *out * (size_t)max);
    for (const char *p = strstr(from, "\n| `"); p && p < to; p = strstr(p + 1, "\n| `")) n = row_keys(p + 3, out, n, max);
    return n;
}

static const DocKey *find_doc_key(const DocKey *keys, int n, const char *key) {
    for (int i = 0; i < n; i++)
        if (!strcmp(keys[i].key, key)) return &keys[i];
    return NULL;
}

/* the record's schema and docs/PROBES.md's table name the same keys with the same shapes */
static void test_docs_list_every_probe_key(void **state) {
    (void)state;
    static const char *const shapes[] = {[RS_ONE] = "", [RS_HEADS] = "L*H", [RS_PARK] = "L*H*3", [RS_POINTS] = "P",
                                         [RS_LAYERS] = "L", [RS_SUBLAYERS] = "2L", [RS_PAIR] = "2"};
    assert_int_equal(PARK_TOP, 3);
    DocKey doc[256];
    int n = doc_keys(doc, 256);
    for (int i = 0; i < record_n_fields; i++) {
        const DocKey *d = find_doc_key(doc, n, record_fields[i].key);
        if (!d) fail_msg("docs/PROBES.md's probes.jsonl table lacks the key %s", record_fields[i].key);
        if (strcmp(d->shape, shapes[record_fields[i].shape]))
            fail_msg("docs/PROBES.md gives %s the shape [%s], probes.jsonl writes [%s]", d->key, d->shape,
                     shapes[record_fields[i].shape]);
    }
    /* the one key outside the table: the prober writes it only for a model with attn_sink_logit */
    const DocKey *sink = find_doc_key(doc, n, "sink_logit");
    if (!sink || strcmp(sink->shape, "L*H")) fail_msg("docs/PROBES.md lacks sink_logit [L*H]");
    for (int i = 0; i < n; i++) {
        int found = !strcmp(doc[i].key, "sink_logit");
        for (int k = 0; k < record_n_fields; k++) found |= !strcmp(doc[i].key, record_fields[k].key);
        if (!found) fail_msg("docs/PROBES.md documents %s, which probes.jsonl does not have", doc[i].key);
    }
    assert_int_equal(n, record_n_fields + 1); /* each key once */
}

/* ---- the schedule --------------------------------------------------------------------------- */

/* the probe keys as the config sets them: the run config's table is their one home */
static void test_schedule(void **state) {
    (void)state;
    TrainConfig tc;
    config_defaults(&tc);
    const ProbeConfig *c = &tc.probes;
    int due[1001] = {0}, count = 0;
    for (long s = 0; s <= 1000; s++) count += due[s] = probe_is_due(s, 1000, c);
    /* the defaults: 100^(k/9) rounded: 1 2 3 5 8 13 22 36 60 100; then every 100 */
    int early[] = {0, 1, 2, 3, 5, 8, 13, 22, 36, 60, 100};
    for (size_t i = 0; i < sizeof early / sizeof *early; i++) assert_true(due[early[i]]);
    assert_int_equal(count, 20);
    char err[ST_ERR_LEN];
    assert_int_equal(config_set(&tc, "probe_schedule", "linear", "test", err), 0);
    count = 0;
    for (long s = 0; s <= 1000; s++) count += probe_is_due(s, 1000, c);
    assert_int_equal(count, 11);
    assert_int_equal(config_set(&tc, "probe_every", "0", "test", err), 0); /* only the ends */
    assert_true(probe_is_due(0, 50, c) && probe_is_due(50, 50, c) && !probe_is_due(25, 50, c));
    assert_int_equal(config_set(&tc, "probe_schedule", "exp", "test", err), -1);
    assert_string_equal(err, "test: probe_schedule: expected one of log|linear, found 'exp'");
    /* a probe window longer than the model's context is refused before anything runs */
    assert_int_equal(probe_config_check("config", c, 64, err), 0);
    assert_int_equal(probe_config_check("config", c, 16, err), -1);
    assert_non_null(strstr(err, "config: probe_len: expected at most seq_len 16, found 64"));
}

/* each probe key's bound is the table's, one line naming the key; the probe set's own check agrees */
static void test_probe_keys_out_of_bounds(void **state) {
    (void)state;
    static const char *const cases[][3] = {
        {"probe_n", "1", "conf:3: probe_n: expected an integer in [2, 4096], found '1'"},
        {"probe_len", "3", "conf:3: probe_len: expected an integer in [4, 65536], found '3'"},
        {"probe_shift", "0", "conf:3: probe_shift: expected an integer in [1, 65536], found '0'"},
        {"probe_every", "-1", "conf:3: probe_every: expected an integer >= 0, found '-1'"}};
    TrainConfig c;
    config_defaults(&c);
    char err[ST_ERR_LEN];
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        assert_int_equal(config_set(&c, cases[i][0], cases[i][1], "conf:3", err), -1);
        assert_string_equal(err, cases[i][2]);
    }
    assert_int_equal(probe_set_check("set", PROBE_MIN_N, PROBE_MIN_LEN, 1, err), 0);
    assert_int_equal(probe_set_check("set", PROBE_MIN_N - 1, PROBE_MIN_LEN, 1, err), -1);
    assert_int_equal(probe_set_check("set", PROBE_MIN_N, PROBE_MIN_LEN - 1, 1, err), -1);
    /* what no single key can check: the shift must stay below the window */
    assert_int_equal(config_set(&c, "probe_shift", "64", "conf:3", err), 0);
    assert_int_equal(config_validate(&c, err), -1);
    assert_string_equal(err, "config: probe_shift: expected 1 to 63 (below probe_len), found 64");
}

/* ---- the prober on a tiny model ------------------------------------------------------------- */

enum { TINY_N = 4, TINY_T = 16 };

static ProbeConfig tiny_probe_config(void) {
    return (ProbeConfig){.n = TINY_N, .len = TINY_T, .shift = 3, .every = 0, .schedule = PROBE_SCHEDULE_LOG};
}

static MoeConfig tiny_model_config(void) {
    MoeConfig c;
    moe_config_default(&c);
    c.vocab_size = 257, c.seq_len = TINY_T, c.d_model = 16, c.n_layer = 3, c.n_head = 2, c.n_kv_head = 1;
    c.n_expert = 4, c.top_k = 2, c.d_ff = 12, c.init_std = 0.3f, c.seed = 9;
    return c;
}

/* a run directory holding a saved probe set, a model of config mc and a prober on it (probe_bos: for a
 * run trained with BOS) */
static void open_prober_on(const char *name, const MoeConfig *mc, int probe_bos, Moe *m, Prober *pr) {
    char run[256], path[300], err[ST_ERR_LEN];
    snprintf(run, sizeof run, "%s/%s", dir, name);
    assert_int_equal(mkdir(run, 0755), 0);
    ProbeSet ps;
    make_probe_set(&ps, TINY_N, TINY_T, 4);
    snprintf(path, sizeof path, "%s/probe_set.bin", run);
    assert_int_equal(probe_set_save(&ps, path, err), 0);
    probe_set_free(&ps);
    assert_int_equal(moe_init(m, mc, err), 0);
    ProbeConfig pc = tiny_probe_config();
    if (prober_open(pr, run, NULL, &pc, &m->cfg, probe_bos, 4, err)) fail_msg("%s", err);
}

/* the same with the tiny model (dense: E = 1, k = 1) */
static void open_tiny_prober(const char *name, int dense, int probe_bos, Moe *m, Prober *pr) {
    MoeConfig mc = tiny_model_config();
    if (dense) mc.n_expert = 1, mc.top_k = 1;
    open_prober_on(name, &mc, probe_bos, m, pr);
}

static void open_tiny_model(const char *name, int dense, Moe *m, Prober *pr) { open_tiny_prober(name, dense, 0, m, pr); }
static void open_tiny(const char *name, Moe *m, Prober *pr) { open_tiny_model(name, 0, m, pr); }

static int count_lines(const char *run, const char *name) {
    char path[300], buf[1 << 16];
    snprintf(path, sizeof path, "%s/%s/%s", dir, run, name);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    int n = 0;
    size_t got;
    while ((got = fread(buf, 1, sizeof buf, f)) > 0)
        for (size_t i = 0; i < got; i++) n += buf[i] == '\n';
    fclose(f);
    return n;
}

/* the first line of run/interventions.jsonl whose "intervention" is `what` at `position` */
static cJSON *find_intervention(const char *run, const char *what, int position) {
    char path[300];
    snprintf(path, sizeof path, "%s/%s/interventions.jsonl", dir, run);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char *line = NULL;
    size_t cap = 0;
    cJSON *found = NULL;
    while (!found && getline(&line, &cap, f) > 0) {
        cJSON *o = cJSON_Parse(line);
        if (strcmp(cJSON_GetObjectItem(o, "intervention")->valuestring, what) == 0 &&
            cJSON_GetObjectItem(o, "position")->valueint == position)
            found = o;
        else cJSON_Delete(o);
    }
    free(line);
    fclose(f);
    if (!found) fail_msg("no %s at %d", what, position);
    return found;
}

/* a scalar (i < 0) or element i of an array */
static double item(const cJSON *o, const char *key, int i) {
    const cJSON *v = cJSON_GetObjectItem(o, key);
    return i < 0 ? v->valuedouble : cJSON_GetArrayItem(v, i)->valuedouble;
}

static void test_prober_run(void **state) {
    (void)state;
    Moe m;
    Prober pr;
    char err[ST_ERR_LEN];
    open_tiny("run", &m, &pr);
    assert_int_equal(prober_step(&pr, &m, 0, 10, 0, NAN, err), 0);
    assert_int_equal(count_lines("run", "probes.jsonl"), 1); /* natural only */
    assert_int_equal(prober_step(&pr, &m, 10, 10, 1000, 3.5, err), 0);
    assert_int_equal(count_lines("run", "probes.jsonl"), 1 + PV_COUNT);
    assert_int_equal(count_lines("run", "summary.json"), 1);
    AttnMaps maps; /* one record per probe step */
    char path[300];
    snprintf(path, sizeof path, "%s/run/attention.bin", dir);
    assert_int_equal(attnmaps_read(path, &maps, err), 0);
    assert_int_equal(maps.n_steps, 2);
    assert_true(maps.step[0] == 0 && maps.step[1] == 10);
    attnmaps_free(&maps);
    /* 6 variants, rope and window, 2 positions x (2 attention + 4 MoE ablations + 3 state patches),
     * 2 blocks x 2 heads */
    assert_int_equal(count_lines("run", "interventions.jsonl"), 6 + 2 + 2 * 9 + 4);

    /* a RoPE offset changes no attention probability beyond float rounding */
    cJSON *o = find_intervention("run", "rope_offset", -1);
    assert_true(item(o, "max_attn_diff", -1) < 1e-5);
    cJSON_Delete(o);
    /* zeroing block 0's MoE output at P0 changes the residual after block 0 (point 2) but not the one
     * after block 0's attention (point 1); at T/2 it leaves P0 untouched up to block 0 */
    o = find_intervention("run", "zero_moe0", 0);
    assert_true(item(o, "rho_before", 1) == item(o, "rho_after", 1));
    assert_true(item(o, "rho_before", 2) != item(o, "rho_after", 2));
    cJSON_Delete(o);
    o = find_intervention("run", "zero_moe0", TINY_T / 2);
    assert_true(item(o, "rho_before", 0) == item(o, "rho_after", 0));
    assert_true(item(o, "a_p0_layer_before", 0) == item(o, "a_p0_layer_after", 0));
    cJSON_Delete(o);
    /* the BOS variant puts the same token at P0 in every sequence: its states there are identical */
    o = find_intervention("run", "bos", -1);
    assert_true(fabs(item(o, "kappa_p0_after", 2) - 1) < 1e-6);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(o, "a_old_p0_layer_after")), 3);
    cJSON_Delete(o);
    o = find_intervention("run", "shifted", -1);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(o, "a_old_p0_layer_after")), 3);
    cJSON_Delete(o);
    prober_close(&pr);
    moe_free(&m);
}

/* a model with learned positions has no RoPE to offset: its interventions are the others, one fewer */
static void test_interventions_learned_positions(void **state) {
    (void)state;
    Moe m;
    Prober pr;
    char err[ST_ERR_LEN];
    MoeConfig mc = tiny_model_config();
    mc.learned_pos = 1;
    open_prober_on("learned", &mc, 0, &m, &pr);
    assert_int_equal(prober_step(&pr, &m, 10, 10, 1000, 3.5, err), 0);
    assert_int_equal(count_lines("learned", "interventions.jsonl"), 6 + 1 + 2 * 9 + 4);
    cJSON *o = find_intervention("learned", "window", -1);
    assert_non_null(o);
    cJSON_Delete(o);
    prober_close(&pr);
    moe_free(&m);
}

/* the lines of run/probes.jsonl whose variant is `variant` */
static int count_variant_lines(const char *run, const char *variant) {
    char path[300], want[64];
    snprintf(path, sizeof path, "%s/%s/probes.jsonl", dir, run);
    snprintf(want, sizeof want, "\"variant\":\"%s\"", variant);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char *line = NULL;
    size_t cap = 0;
    int n = 0;
    while (getline(&line, &cap, f) > 0) n += strstr(line, want) != NULL;
    free(line);
    fclose(f);
    return n;
}

/* a run trained with BOS is probed on bos at every step, and its interventions act on the bos forward
 * (where its sink is); natural is then one of the variants, and no line is written twice */
static void test_prober_run_trained_with_bos(void **state) {
    (void)state;
    Moe m;
    Prober pr;
    char err[ST_ERR_LEN];
    open_tiny_prober("bosrun", 0, 1, &m, &pr);
    assert_int_equal(prober_step(&pr, &m, 0, 10, 0, NAN, err), 0);
    assert_int_equal(count_variant_lines("bosrun", "natural"), 1);
    assert_int_equal(count_variant_lines("bosrun", "bos"), 1);
    assert_int_equal(prober_step(&pr, &m, 10, 10, 1000, 3.5, err), 0);
    assert_int_equal(count_lines("bosrun", "probes.jsonl"), 2 + PV_COUNT);
    assert_int_equal(count_variant_lines("bosrun", "bos"), 2);
    assert_int_equal(count_lines("bosrun", "interventions.jsonl"), 6 + 2 + 2 * 9 + 4);
    /* BOS is the same token at P0 in every sequence: the base's states there are identical (kappa 1),
     * and removing BOS (the natural variant) makes them differ */
    cJSON *o = find_intervention("bosrun", "natural", -1);
    assert_string_equal(cJSON_GetObjectItem(o, "base_variant")->valuestring, "bos");
    assert_true(fabs(item(o, "kappa_p0_before", 2) - 1) < 1e-6);
    assert_true(item(o, "kappa_p0_after", 2) < 0.999);
    cJSON_Delete(o);
    o = find_intervention("bosrun", "zero_moe0", 0);
    assert_true(fabs(item(o, "kappa_p0_before", 2) - 1) < 1e-6);
    cJSON_Delete(o);
    prober_close(&pr);
    moe_free(&m);
}

static void test_interventions_on_capture(void **state) {
    (void)state;
    Moe m;
    Prober pr;
    open_tiny("capture", &m, &pr);
    const ProbeDims *d = &pr.dims;
    int L = d->L, N = d->N, H = d->H, T = d->T, C = d->C;
    size_t TT = (size_t)T * T, n_attn = (size_t)L * N * H * TT, NTC = (size_t)N * T * C;
    ProbeRecord r, again;
    record_alloc(&r, L, H);
    record_alloc(&again, L, H);
    prober_measure(&pr, &m, PV_NATURAL, NULL, &r);
    float *attn = st_malloc(sizeof(float) * n_attn), *out0 = st_malloc(sizeof(float) * NTC);
    memcpy(attn, pr.cap.attn, sizeof(float) * n_attn);
    memcpy(out0, pr.cap.attn_out, sizeof(float) * NTC);

    /* the same forward twice gives bit-identical metrics (what bin/probe relies on) */
    prober_measure(&pr, &m, PV_NATURAL, NULL, &again);
    assert_memory_equal(r.a_p0, again.a_p0, sizeof(double) * L * H);
    assert_memory_equal(r.rho, again.rho, sizeof(double) * (2 * L + 1));

    /* a sliding window of 4 keys: queries i >= 4 put nothing on key 0 */
    MoeCapture iv;
    moe_capture_init(&iv);
    iv.window = 4;
    prober_measure(&pr, &m, PV_NATURAL, &iv, &again);
    for (size_t lnh = 0; lnh < (size_t)L * N * H; lnh++)
        for (int i = 4; i < T; i++) assert_true(pr.cap.attn[lnh * TT + (size_t)i * T] == 0.0f);
    for (int lh = 0; lh < L * H; lh++) assert_true(again.a_p0_late[lh] == 0.0);

    /* a RoPE offset leaves attention unchanged */
    moe_capture_init(&iv);
    iv.pos_offset = 1000;
    prober_measure(&pr, &m, PV_NATURAL, &iv, &again);
    for (size_t i = 0; i < n_attn; i++) assert_true(fabsf(pr.cap.attn[i] - attn[i]) < 1e-5f);

    /* mean ablation of block 0's attention output at P0: exactly the replacement there, every other
     * position of block 0 unchanged */
    float *repl = st_calloc((size_t)L * C, sizeof(float));
    for (int c = 0; c < C; c++) repl[c] = 0.5f + c;
    unsigned char *mask = st_calloc((size_t)L * T, 1);
    mask[0] = 1;
    moe_capture_init(&iv);
    iv.ablate_attn = mask, iv.attn_repl = repl;
    prober_measure(&pr, &m, PV_NATURAL, &iv, &again);
    for (int n = 0; n < N; n++)
        for (int t = 0; t < T; t++)
            for (int c = 0; c < C; c++) {
                size_t at = ((size_t)n * T + t) * C + c;
                assert_true(pr.cap.attn_out[at] == (t == 0 ? repl[c] : out0[at]));
            }

    /* zeroing block 0's MoE output at P0 changes the residual after block 0 at P0 by exactly that
     * output, and nothing at any other position */
    prober_measure(&pr, &m, PV_NATURAL, NULL, &r);
    float *after0 = st_malloc(sizeof(float) * NTC), *moe0 = st_malloc(sizeof(float) * NTC);
    memcpy(after0, pr.cap.resid + 2 * NTC, sizeof(float) * NTC); /* point 2 = after block 0 */
    memcpy(moe0, pr.cap.moe_out, sizeof(float) * NTC);
    moe_capture_init(&iv);
    iv.ablate_moe = mask; /* still [L][T] with position 0 of block 0 set */
    prober_measure(&pr, &m, PV_NATURAL, &iv, &again);
    for (int n = 0; n < N; n++)
        for (int t = 0; t < T; t++)
            for (int c = 0; c < C; c++) {
                size_t at = ((size_t)n * T + t) * C + c;
                float expect = t == 0 ? after0[at] - moe0[at] : after0[at];
                assert_true(fabsf(pr.cap.resid[2 * NTC + at] - expect) < 1e-5f);
            }
    free(after0), free(moe0);
    free(mask), free(repl), free(attn), free(out0);
    record_free(&r);
    record_free(&again);
    prober_close(&pr);
    moe_free(&m);
}

/* a dense model has no router: consistent routing, zero entropy, and every other metric defined */
static void test_prober_dense(void **state) {
    (void)state;
    Moe m;
    Prober pr;
    char err[ST_ERR_LEN];
    open_tiny_model("dense", 1, &m, &pr);
    assert_int_equal(prober_step(&pr, &m, 0, 0, 0, NAN, err), 0); /* step 0 of 0: the final probe */
    assert_int_equal(count_lines("dense", "probes.jsonl"), PV_COUNT);
    ProbeRecord r;
    record_alloc(&r, pr.dims.L, pr.dims.H);
    prober_measure(&pr, &m, PV_NATURAL, NULL, &r);
    for (int l = 0; l < pr.dims.L; l++)
        assert_true(r.p0_route_consistency[l] == 1 && r.router_entropy_p0[l] == 0 && r.router_entropy_median[l] == 0);
    assert_true(isfinite(r.p0_units[0]) && isfinite(r.p0_units[1]) && isfinite(r.rho_max));
    record_free(&r);
    prober_close(&pr);
    moe_free(&m);
}

/* ---- bin/probe ------------------------------------------------------------------------------ */

/* runs bin/probe with argv (stdout and stderr to /dev/null); its exit code */
static int run_bin_probe(char *const argv[]) {
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (!freopen("/dev/null", "w", stdout) || !freopen("/dev/null", "w", stderr)) _exit(127);
        execv("bin/probe", argv);
        _exit(127);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

/* the natural line at `step` of run/name, without its timing, as text */
static char *natural_line_text(const char *run, const char *name, long step) {
    char path[300];
    snprintf(path, sizeof path, "%s/%s/%s", dir, run, name);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char *line = NULL, *text = NULL;
    size_t cap = 0;
    while (!text && getline(&line, &cap, f) > 0) {
        cJSON *o = cJSON_Parse(line);
        if (strcmp(cJSON_GetObjectItem(o, "variant")->valuestring, "natural") == 0 &&
            (long)cJSON_GetObjectItem(o, "step")->valuedouble == step) {
            cJSON_DeleteItemFromObject(o, "probe_seconds");
            text = cJSON_PrintUnformatted(o);
        }
        cJSON_Delete(o);
    }
    free(line);
    fclose(f);
    assert_non_null(text);
    return text;
}

/* a model with learned sink logits gets them in every probes.jsonl line (sink_logit [L*H], what the
 * suite's report reads instead of a checkpoint); a model without them gets no such key */
static void test_prober_writes_sink_logits(void **state) {
    (void)state;
    Moe m;
    Prober pr;
    char err[ST_ERR_LEN];
    MoeConfig mc = tiny_model_config();
    mc.attn_sink_logit = 1;
    open_prober_on("sinklogit", &mc, 0, &m, &pr);
    int L = mc.n_layer, H = mc.n_head;
    for (int l = 0; l < L; l++) {
        char name[40];
        snprintf(name, sizeof name, "blocks.%d.attn.sink", l);
        const MoeTensor *t = moe_find(&m, name);
        assert_non_null(t);
        for (int h = 0; h < H; h++) m.params[t->offset + h] = 0.5f * l - 0.25f * h;
    }
    assert_int_equal(prober_step(&pr, &m, 0, 10, 0, NAN, err), 0);
    char *text = natural_line_text("sinklogit", "probes.jsonl", 0);
    cJSON *o = cJSON_Parse(text);
    free(text);
    const cJSON *a = cJSON_GetObjectItem(o, "sink_logit");
    assert_int_equal(cJSON_GetArraySize(a), L * H);
    for (int l = 0; l < L; l++)
        for (int h = 0; h < H; h++) assert_true(item(o, "sink_logit", l * H + h) == 0.5 * l - 0.25 * h);
    cJSON_Delete(o);
    prober_close(&pr);
    moe_free(&m);

    open_tiny("nosinklogit", &m, &pr);
    assert_int_equal(prober_step(&pr, &m, 0, 10, 0, NAN, err), 0);
    text = natural_line_text("nosinklogit", "probes.jsonl", 0);
    o = cJSON_Parse(text);
    free(text);
    assert_null(cJSON_GetObjectItem(o, "sink_logit"));
    cJSON_Delete(o);
    prober_close(&pr);
    moe_free(&m);
}

/* a checkpoint re-probed by bin/probe gives exactly the line the run wrote at that step */
static void test_bin_probe_reproduces_the_run(void **state) {
    (void)state;
    Moe m;
    Prober pr;
    char err[ST_ERR_LEN], run[256], path[300];
    open_tiny("reprobe", &m, &pr);
    assert_int_equal(prober_step(&pr, &m, 5, 10, 100, 2.5, err), 0);
    /* the checkpoint of that step, with the config of the same model and probes */
    TrainConfig c;
    config_defaults(&c);
    c.model = m.cfg;
    c.probes = tiny_probe_config();
    snprintf(c.data_dir, sizeof c.data_dir, "/nonexistent-data-dir");
    assert_int_equal(config_validate(&c, err), 0);
    AdamW opt;
    adamw_init(&opt, m.n_params);
    CkptState s = {.step = 5, .tokens = 100, .loader_state = 0, .last_val_loss = 2.5};
    snprintf(run, sizeof run, "%s/reprobe", dir);
    ckpt_path(path, sizeof path, run, 5);
    assert_int_equal(ckpt_save(path, &c, &m, &opt, &s, err), 0);
    adamw_free(&opt);
    prober_close(&pr);
    moe_free(&m);

    char *argv[] = {"bin/probe", run, "--step", "5", NULL};
    assert_int_equal(run_bin_probe(argv), 0);
    char *original = natural_line_text("reprobe", "probes.jsonl", 5);
    char *again = natural_line_text("reprobe", "reprobe.jsonl", 5);
    assert_string_equal(again, original);
    free(original);
    free(again);
    assert_int_equal(count_lines("reprobe", "reprobe.jsonl"), PV_COUNT);

    char *bad_flag[] = {"bin/probe", run, "--steps", "5", NULL};
    assert_int_equal(run_bin_probe(bad_flag), 2);
    char *missing[] = {"bin/probe", run, "--step", "7", NULL}; /* no checkpoint of step 7 */
    assert_int_equal(run_bin_probe(missing), 2);
}

static void test_probe_set_kept_across_resume(void **state) {
    (void)state;
    Moe m;
    Prober pr;
    char err[ST_ERR_LEN], run[256];
    open_tiny("resume", &m, &pr);
    int *copy = st_malloc(sizeof(int) * PV_COUNT * TINY_N * TINY_T);
    memcpy(copy, pr.set.tokens, sizeof(int) * PV_COUNT * TINY_N * TINY_T);
    prober_close(&pr);
    /* reopening (a resumed run) reads the same file back, whatever seed it is given */
    snprintf(run, sizeof run, "%s/resume", dir);
    ProbeConfig pc = tiny_probe_config();
    assert_int_equal(prober_open(&pr, run, NULL, &pc, &m.cfg, 0, 99, err), 0);
    assert_memory_equal(pr.set.tokens, copy, sizeof(int) * PV_COUNT * TINY_N * TINY_T);
    prober_close(&pr);
    /* a resumed run with another probe_n is refused, naming the field */
    pc.n = TINY_N + 1;
    assert_int_equal(prober_open(&pr, run, NULL, &pc, &m.cfg, 0, 4, err), -1);
    assert_non_null(strstr(err, "probe_n: expected 5"));
    free(copy);
    moe_free(&m);
}

/* a prepared data directory: byte tokenizer, one document of text per split */
static void make_data_dir(const char *data) {
    char path[300], err[ST_ERR_LEN];
    assert_int_equal(mkdir(data, 0755), 0);
    Tokenizer *tok = tokenizer_new_bytes();
    snprintf(path, sizeof path, "%s/tokenizer.bin", data);
    assert_int_equal(tokenizer_save(tok, path, err), 0);
    int bos = tokenizer_bos_id(tok), ids[2001];
    tokenizer_free(tok);
    ids[0] = bos;
    for (int i = 1; i <= 2000; i++) ids[i] = 'a' + (i * 7) % 26;
    snprintf(path, sizeof path, "%s/train.bin", data);
    assert_int_equal(shard_write(path, ids, 2001, 257, bos, err), 0);
    snprintf(path, sizeof path, "%s/val.bin", data);
    assert_int_equal(shard_write(path, ids, 2001, 257, bos, err), 0);
}

static void test_probe_set_from_data(void **state) {
    (void)state;
    char data[256], path[300], err[ST_ERR_LEN];
    snprintf(data, sizeof data, "%s/data", dir);
    make_data_dir(data);
    snprintf(path, sizeof path, "%s/probe_set_data.bin", dir);
    ProbeSet a, b;
    Loader ld;
    if (loader_open(&ld, data, 32, BOS_NONE, 5, err)) fail_msg("%s", err);
    if (probe_set_open(&a, path, &ld, 8, 32, 4, 5, err)) fail_msg("%s", err);
    assert_true(a.vocab == 257 && a.bos_id == 256);
    const int *nat = probe_set_tokens(&a, PV_NATURAL);
    for (int s = 0; s < 8; s++)
        for (int i = 0; i < 32; i++) {
            assert_true(nat[s * 32 + i] >= 'a' && nat[s * 32 + i] <= 'z'); /* text, never BOS */
            if (i + 1 < 32) assert_int_equal(a.targets[s * 32 + i], nat[s * 32 + i + 1]);
        }
    /* the second open reads the saved file: the same set even if the data changed */
    assert_int_equal(probe_set_open(&b, path, NULL, 8, 32, 4, 5, err), 0);
    assert_memory_equal(a.tokens, b.tokens, sizeof(int) * PV_COUNT * 8 * 32);
    probe_set_free(&a);
    probe_set_free(&b);
    /* more windows than the validation split holds */
    snprintf(path, sizeof path, "%s/probe_set_big.bin", dir);
    assert_int_equal(probe_set_open(&a, path, &ld, 1000, 32, 4, 5, err), -1);
    assert_non_null(strstr(err, "validation split"));
    /* windows of another length than probe_len, and no data at all */
    assert_int_equal(probe_set_open(&a, path, &ld, 8, 16, 4, 5, err), -1);
    assert_non_null(strstr(err, "expected 16 tokens (probe_len), the loader gives 32"));
    assert_int_equal(probe_set_open(&a, path, NULL, 8, 32, 4, 5, err), -1);
    assert_non_null(strstr(err, "no probe set, and no data to build one from"));
    loader_close(&ld);
}

/* attention.bin: records in step order, a re-probed step replaces the later ones, shapes are checked,
 * and a truncated file is named */
static void test_attention_file(void **state) {
    (void)state;
    char path[300], err[ST_ERR_LEN];
    snprintf(path, sizeof path, "%s/attention.bin", dir);
    const int L = 2, H = 1, T = 3;
    float maps[2 * 1 * 3 * 3] = {1, 0, 0, 0.5f, 0.5f, 0, 0.25f, 0.25f, 0.5f, 1, 0, 0, 1, 0, 0, 1, 0, 0};
    AttnMaps m;
    assert_int_equal(attnmaps_read(path, &m, err), 1);
    for (long step = 0; step <= 20; step += 10) assert_int_equal(attnmaps_append(path, step, maps, L, H, T, err), 0);
    maps[3] = 0; /* step 10 again, as a resumed run would probe it: step 20 goes */
    maps[4] = 1;
    assert_int_equal(attnmaps_append(path, 10, maps, L, H, T, err), 0);
    assert_int_equal(attnmaps_read(path, &m, err), 0);
    assert_int_equal(m.n_steps, 2);
    assert_true(m.step[1] == 10);
    assert_true(fabs(attnmaps_prob(&m, 0, 0, 0, 1, 0) - 0.5) < 1e-4);
    assert_true(fabs(attnmaps_prob(&m, 1, 0, 0, 1, 1) - 1) < 1e-4);
    assert_true(fabs(attnmaps_prob(&m, 1, 0, 0, 2, 2) - 0.5) < 1e-4);
    assert_int_equal(attnmaps_nearest(&m, 7), 1);
    attnmaps_free(&m);
    assert_int_equal(attnmaps_append(path, 30, maps, L, H, 2, err), -1);
    assert_non_null(strstr(err, "attention.bin: shapes: expected n_layer 2, n_head 1, T 2"));
    assert_int_equal(truncate(path, 50), 0);
    assert_int_equal(attnmaps_read(path, &m, err), -1);
    assert_non_null(strstr(err, "attention.bin: "));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chance_value),     cmocka_unit_test(test_uniform_attention_is_chance),
        cmocka_unit_test(test_sink_head_and_controls), cmocka_unit_test(test_norm_ratio_and_gain),
        cmocka_unit_test(test_median),           cmocka_unit_test(test_kappa),            cmocka_unit_test(test_massive_ratio),
        cmocka_unit_test(test_p0_units),         cmocka_unit_test(test_qk_cos),
        cmocka_unit_test(test_routing),          cmocka_unit_test(test_dstar_c2_k2_delta),
        cmocka_unit_test(test_emergence),        cmocka_unit_test(test_parking_on_known_attention),
        cmocka_unit_test(test_probe_set_variants),
        cmocka_unit_test(test_probe_set_round_trip), cmocka_unit_test(test_record_json_schema),
        cmocka_unit_test(test_summary),          cmocka_unit_test(test_schedule),
        cmocka_unit_test(test_probe_keys_out_of_bounds),
        cmocka_unit_test(test_docs_list_every_probe_key),
        cmocka_unit_test(test_prober_run),
        cmocka_unit_test(test_interventions_learned_positions), cmocka_unit_test(test_prober_run_trained_with_bos),       cmocka_unit_test(test_interventions_on_capture),
        cmocka_unit_test(test_prober_dense),     cmocka_unit_test(test_prober_writes_sink_logits),     cmocka_unit_test(test_bin_probe_reproduces_the_run),     cmocka_unit_test(test_probe_set_kept_across_resume), cmocka_unit_test(test_probe_set_from_data),
        cmocka_unit_test(test_attention_file),
    };
    return cmocka_run_group_tests_name("probes", tests, make_dir, remove_dir);
}
