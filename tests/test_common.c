/* tests/test_common.c: the shared helpers: binary headers, crash-safe writes, JSONL, the RNG. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/binfile.h"
#include "../common/jsonl.h"
#include "../common/util.h"
#include "fixtures.h"

static char dir[64];

static void path_in_dir(char *out, const char *name) { snprintf(out, 256, "%s/%s", dir, name); }

/* a file of just the header h (and its checksum trailer), as every format writes its header */
static void write_header_file(const char *path, const StHeader *h) {
    char err[ST_ERR_LEN];
    StAtomic a;
    if (st_atomic_open(&a, path, err) || st_atomic_write_header(&a, h, err) || st_atomic_commit(&a, err))
        fail_msg("%s", err);
}

static void test_header_round_trip(void **state) {
    (void)state;
    char path[256], err[ST_ERR_LEN];
    path_in_dir(path, "h.bin");
    StHeader h, r;
    st_header_init(&h, "STTEST", 3);
    st_header_add(&h, 42);
    st_header_add(&h, -7);
    write_header_file(path, &h);
    FILE *f = fopen(path, "rb");
    assert_int_equal(st_header_read(f, path, "STTEST", 3, 2, &r, err), 0);
    fclose(f);
    assert_int_equal(r.n_fields, 2);
    assert_true(r.field[0] == 42 && r.field[1] == -7);
    assert_int_equal(st_header_bytes(&r), 32);
}

static void test_header_errors(void **state) {
    (void)state;
    char path[256], err[ST_ERR_LEN];
    path_in_dir(path, "bad.bin");
    StHeader h, r;
    st_header_init(&h, "STOTHER", 1);
    write_header_file(path, &h);
    FILE *f = fopen(path, "rb");
    assert_int_equal(st_header_read(f, path, "STTEST", 1, 0, &r, err), -1);
    fclose(f);
    assert_non_null(strstr(err, "magic: expected 'STTEST', found 'STOTHER'"));
    assert_non_null(strstr(err, path));

    st_header_init(&h, "STTEST", 2);
    write_header_file(path, &h);
    f = fopen(path, "rb");
    assert_int_equal(st_header_read(f, path, "STTEST", 1, 0, &r, err), -1);
    fclose(f);
    assert_non_null(strstr(err, "version: expected 1, found 2"));

    f = fopen(path, "wb");
    fwrite("STTE", 1, 4, f);
    fclose(f);
    f = fopen(path, "rb");
    assert_int_equal(st_header_read(f, path, "STTEST", 1, 0, &r, err), -1);
    fclose(f);
    assert_non_null(strstr(err, "truncated: expected 8 bytes of header magic, found 4"));
}

static void test_atomic_write_keeps_old_file_until_commit(void **state) {
    (void)state;
    char path[256], err[ST_ERR_LEN], buf[16] = {0};
    path_in_dir(path, "a.txt");
    FILE *f = fopen(path, "w");
    fputs("old", f);
    fclose(f);
    StAtomic a;
    assert_int_equal(st_atomic_open(&a, path, err), 0);
    fputs("new", a.f);
    st_atomic_abort(&a); /* a crash or error before commit: the old file stays */
    f = fopen(path, "r");
    assert_non_null(fgets(buf, sizeof buf, f));
    fclose(f);
    assert_string_equal(buf, "old");
    assert_int_equal(access(a.tmp, F_OK), -1);
    assert_int_equal(st_atomic_open(&a, path, err), 0);
    fputs("new", a.f);
    assert_int_equal(st_atomic_commit(&a, err), 0);
    f = fopen(path, "r");
    assert_non_null(fgets(buf, sizeof buf, f));
    fclose(f);
    assert_string_equal(buf, "new");
}

static void test_jsonl_flat_object(void **state) {
    (void)state;
    StJson j = {0};
    float a[3] = {0.5f, 1.0f, -2.25f};
    int n[2] = {3, 4};
    sj_begin(&j);
    sj_int(&j, "step", 12);
    sj_num(&j, "loss", 1.5);
    sj_num(&j, "bad", NAN);
    sj_str(&j, "name", "a\"b");
    sj_floats(&j, "a_p0", a, 3);
    sj_ints(&j, "n", n, 2);
    assert_string_equal(sj_end(&j),
                        "{\"step\":12,\"loss\":1.5,\"bad\":null,\"name\":\"a\\\"b\",\"a_p0\":[0.5,1,-2.25],\"n\":[3,4]}");
    sj_free(&j);
}

static void test_rng_deterministic_and_uniform(void **state) {
    (void)state;
    StRng a, b;
    st_rng_seed(&a, 7);
    st_rng_seed(&b, 7);
    for (int i = 0; i < 100; i++) assert_true(st_rng_u64(&a) == st_rng_u64(&b));
    /* the state is the whole stream: copying it replays the same numbers */
    StRng c = a;
    assert_true(st_rng_u64(&a) == st_rng_u64(&c));
    int counts[4] = {0};
    double sum = 0, sumsq = 0;
    for (int i = 0; i < 40000; i++) {
        counts[st_rng_below(&a, 4)]++;
        double z = st_rng_normal(&a);
        sum += z;
        sumsq += z * z;
    }
    for (int i = 0; i < 4; i++) assert_true(counts[i] > 9500 && counts[i] < 10500);
    assert_true(fabs(sum / 40000) < 0.03 && fabs(sumsq / 40000 - 1) < 0.05);
}

int main(void) {
    if (fixture_make_tmpdir(dir, sizeof dir, "sinktrace_common")) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_round_trip),
        cmocka_unit_test(test_header_errors),
        cmocka_unit_test(test_atomic_write_keeps_old_file_until_commit),
        cmocka_unit_test(test_jsonl_flat_object),
        cmocka_unit_test(test_rng_deterministic_and_uniform),
    };
    int rc = cmocka_run_group_tests_name("common", tests, NULL, NULL);
    if (fixture_remove_dir(dir) != 0) return 1;
    return rc;
}
