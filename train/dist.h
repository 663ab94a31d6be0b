/* train/dist.h: data parallelism across processes (MPI ranks), the only place that calls MPI.
 *
 * Every rank holds the whole model and optimizer. Every rank draws the same global batch from the
 * loader (the same RNG, so the same windows in the same order as a single process) and computes
 * forward and backward on its own slice of it: rank r of N takes windows [r B/N, (r+1) B/N). The
 * gradients are then summed over the ranks and scaled by 1/N, so every rank applies the same AdamW
 * update and the ranks stay identical (checked at every checkpoint). Rank 0 alone writes files.
 *
 * Built without ST_MPI (plain `make`), there is one rank and every reduction is a no-op: the single
 * process trainer is unchanged. The slicing arithmetic below needs no MPI and is always compiled. */
#ifndef SINKTRACE_DIST_H
#define SINKTRACE_DIST_H

#include <stddef.h>
#include <stdint.h>

/* MPI_Init / MPI_Finalize (no-ops without ST_MPI); dist_abort ends every rank with `code` */
void dist_init(int *argc, char ***argv);
void dist_finalize(void);
void dist_abort(int code);
int dist_rank(void); /* 0 .. dist_size() - 1 */
int dist_size(void);
static inline int dist_is_root(void) { return dist_rank() == 0; }

/* the windows [*first, *first + *count) of a global batch of B windows that rank `rank` of `size`
 * computes; -1 with an error naming batch_size when B is not a multiple of size */
int dist_check_batch(int B, int size, char *err);
void dist_slice(int B, int rank, int size, int *first, int *count);

/* in place, the same result on every rank: x[i] = the mean over ranks of x[i] (a sum, then times 1/N) */
void dist_mean_floats(float *x, size_t n);
/* x[i] = the sum over ranks of x[i] */
void dist_sum_doubles(double *x, size_t n);
/* 1 if flag is non-zero on any rank */
int dist_any(int flag);
/* waits until every rank has called it, asleep: a plain MPI_Barrier spins, taking a core from the
 * threads of a rank still working (bin/bench's data-parallel baseline) */
void dist_barrier_idle(void);
/* 0 if `hash` is the same on every rank, else -1 with an error naming `what` */
int dist_check_same(uint64_t hash, const char *what, char *err);

/* a 64-bit hash of n bytes (FNV-1a), to compare large buffers across ranks */
uint64_t dist_hash_bytes(const void *data, size_t n, uint64_t hash);
#define DIST_HASH_INIT 0xcbf29ce484222325ull

#endif
