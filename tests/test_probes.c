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

#include "../common/util.h"
#include "../probes/metrics.h"

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
    double late[5] = {0, 0, 0, 0.1, 1}; /* crosses only at the final probe */
    assert_int_equal(emergence_index(late, 5), 4);
    double flat[4] = {2, 2, 2, 2};
    assert_int_equal(emergence_index(flat, 4), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chance_value),     cmocka_unit_test(test_uniform_attention_is_chance),
        cmocka_unit_test(test_sink_head_and_controls), cmocka_unit_test(test_norm_ratio_and_gain),
        cmocka_unit_test(test_kappa),            cmocka_unit_test(test_massive_ratio),
        cmocka_unit_test(test_p0_units),         cmocka_unit_test(test_qk_cos),
        cmocka_unit_test(test_routing),          cmocka_unit_test(test_dstar_c2_k2_delta),
        cmocka_unit_test(test_emergence),
    };
    return cmocka_run_group_tests_name("probes", tests, NULL, NULL);
}
