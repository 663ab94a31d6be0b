/* common/util.h: the few helpers every room of the house shares: error messages, a seeded random
 * generator whose whole state is one integer (so checkpoints can save it), wall-clock time, and
 * allocation that fails loudly. */
#ifndef SINKTRACE_UTIL_H
#define SINKTRACE_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Errors: library functions return 0 on success and -1 on failure, after writing ONE line into a
 * caller-provided buffer of ST_ERR_LEN bytes (no trailing newline). Callers print it and stop. */
#define ST_ERR_LEN 512
int st_errorf(char *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Random numbers: splitmix64. The state is a single uint64_t; copying it saves the stream. */
typedef struct {
    uint64_t state;
} StRng;
void st_rng_seed(StRng *r, uint64_t seed);
/* the k-th of many generators drawn from one seed, its state a hash of (seed, k): seeding with
 * seed + k * splitmix's increment instead would give generator k generator 0's draws shifted by k */
void st_rng_seed_indexed(StRng *r, uint64_t seed, uint64_t k);
uint64_t st_rng_u64(StRng *r);
uint32_t st_rng_below(StRng *r, uint32_t n); /* uniform in [0, n), n >= 1, unbiased */
double st_rng_uniform(StRng *r);             /* uniform in [0, 1) with 53 random bits */
double st_rng_normal(StRng *r);              /* standard normal (Box-Muller, one draw per call) */

double st_now_seconds(void); /* monotonic wall clock */

/* Makes OpenMP's idle threads sleep instead of spin (OMP_WAIT_POLICY=passive) unless the user chose a
 * policy, after a short spin (GOMP_SPINCOUNT=3000, about 30 us, unless set): the next parallel region
 * of a step usually starts within that, and a thread woken from sleep costs ~15 us at each of the
 * step's hundreds of regions and barriers. libgomp reads both variables when it loads, before main,
 * so the program sets them and executes itself again with the same arguments; call it first in main.
 * On a machine where another process holds a core, spinning threads wait at every barrier for the one
 * the scheduler parked: a 2-thread step then runs several times slower than a 1-thread one. */
void st_openmp_wait_passively(char **argv);

/* "OMP_WAIT_POLICY=<value>, GOMP_SPINCOUNT=<value>" as this process runs ("unset" for either) */
const char *st_openmp_wait_description(char *buf, size_t size);

/* strips leading and trailing white space in place; returns the first non-space character */
char *st_trim(char *s);

/* malloc/calloc that print what they could not allocate and exit(1): out of memory is not an
 * input error a caller could recover from. */
void *st_malloc(size_t bytes);
void *st_calloc(size_t count, size_t size);
void *st_realloc(void *p, size_t bytes);

#endif
