#include "util.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int st_errorf(char *err, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, ST_ERR_LEN, fmt, ap);
        va_end(ap);
    }
    return -1;
}

void st_rng_seed(StRng *r, uint64_t seed) { r->state = seed; }

void st_rng_seed_indexed(StRng *r, uint64_t seed, uint64_t k) {
    StRng hash = {seed ^ (k * 0xD1B54A32D192ED03ull)};
    r->state = st_rng_u64(&hash);
}

uint64_t st_rng_u64(StRng *r) {
    /* splitmix64: a Weyl sequence scrambled by two xor-shift-multiply rounds */
    uint64_t z = (r->state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

uint32_t st_rng_below(StRng *r, uint32_t n) {
    /* rejection sampling: drop the top partial range so every value is equally likely */
    uint64_t limit = UINT64_MAX - (UINT64_MAX % n);
    uint64_t x;
    do {
        x = st_rng_u64(r);
    } while (x >= limit);
    return (uint32_t)(x % n);
}

double st_rng_uniform(StRng *r) { return (double)(st_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0); }

double st_rng_normal(StRng *r) {
    double u1 = st_rng_uniform(r), u2 = st_rng_uniform(r);
    return sqrt(-2.0 * log(1.0 - u1)) * cos(6.283185307179586 * u2); /* 1-u1 is in (0, 1] */
}

void st_openmp_wait_passively(char **argv) {
    if (getenv("OMP_WAIT_POLICY")) return;
    setenv("OMP_WAIT_POLICY", "passive", 1);
    if (!getenv("GOMP_SPINCOUNT")) setenv("GOMP_SPINCOUNT", "3000", 1);
    execv("/proc/self/exe", argv); /* returns only if it failed: then run on with the default policy */
}

const char *st_openmp_wait_description(char *buf, size_t size) {
    const char *policy = getenv("OMP_WAIT_POLICY"), *spin = getenv("GOMP_SPINCOUNT");
    snprintf(buf, size, "OMP_WAIT_POLICY=%s, GOMP_SPINCOUNT=%s", policy ? policy : "unset", spin ? spin : "unset");
    return buf;
}

double st_now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

char *st_trim(char *s) {
    while (isspace((unsigned char)*s)) s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1])) *--e = 0;
    return s;
}

void *st_malloc(size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p) {
        fprintf(stderr, "error: out of memory allocating %zu bytes\n", bytes);
        exit(1);
    }
    return p;
}

void *st_calloc(size_t count, size_t size) {
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) {
        fprintf(stderr, "error: out of memory allocating %zu x %zu bytes\n", count, size);
        exit(1);
    }
    return p;
}

void *st_realloc(void *p, size_t bytes) {
    void *q = realloc(p, bytes ? bytes : 1);
    if (!q) {
        fprintf(stderr, "error: out of memory allocating %zu bytes\n", bytes);
        exit(1);
    }
    return q;
}
