/* tests/test_fuzz_corpus.c: replays the committed fuzz corpus every file of tests/fuzz_corpus/<parser>/ through the
 * same feed functions the fuzz targets use (tests/fuzz_feed.c): the seeds (valid files made by the
 * project's own writers) must be accepted, every other input (the crashes and hangs `make fuzz` found,
 * now fixed, and hand-made malformed files) must be rejected with a one-line error. Under
 * `make sanitize` this is also the sanitizer check of every regression input. Run from the repository
 * root. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "../common/util.h"
#include "fuzz_feed.h"

/* the bytes of a file (malloc'd), its size in *size */
static uint8_t *read_all(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *data = st_malloc((size_t)n + 1);
    assert_int_equal(fread(data, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *size = (size_t)n;
    return data;
}

/* every input of one parser's corpus; returns how many there were */
static int replay(const FuzzParser *p) {
    char dir_path[256], path[600], err[ST_ERR_LEN];
    snprintf(dir_path, sizeof dir_path, "tests/fuzz_corpus/%s", p->name);
    DIR *d = opendir(dir_path);
    if (!d) fail_msg("%s: missing (run from the repository root)", dir_path);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "%s/%s", dir_path, e->d_name);
        size_t size;
        uint8_t *data = read_all(path, &size);
        err[0] = 0;
        int rc = p->feed(data, size, err);
        free(data);
        int seed = strncmp(e->d_name, "seed", 4) == 0;
        if (seed && rc != 0) fail_msg("%s: a valid file was rejected: %s", path, err);
        if (!seed && rc == 0) fail_msg("%s: a malformed file was accepted", path);
        if (!seed && (!err[0] || strchr(err, '\n'))) fail_msg("%s: expected a one-line error, found '%s'", path, err);
        n++;
    }
    closedir(d);
    return n;
}

static void test_every_parser_replays_its_corpus(void **state) {
    (void)state;
    for (int i = 0; i < FUZZ_N_PARSERS; i++) {
        int n = replay(&FUZZ_PARSERS[i]);
        if (n < 2) fail_msg("tests/fuzz_corpus/%s: expected a seed and a malformed input, found %d files",
                            FUZZ_PARSERS[i].name, n);
    }
}

int main(void) {
#ifndef __SANITIZE_ADDRESS__ /* ASan reserves terabytes of address space; make sanitize caps it its own way */
    /* a file that makes a parser allocate far more than its size fails here instead of passing slowly */
    struct rlimit heap = {1ull << 30, 1ull << 30};
    if (setrlimit(RLIMIT_DATA, &heap) != 0) return 1;
#endif
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_parser_replays_its_corpus),
    };
    return cmocka_run_group_tests_name("fuzz_corpus", tests, NULL, NULL);
}
