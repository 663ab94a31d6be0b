#include "dist.h"

#include <stdlib.h>
#include <time.h>

#include "../common/util.h"

#ifdef ST_MPI
#include <mpi.h>
#endif

int dist_check_batch(int B, int size, char *err) {
    if (size >= 1 && B % size == 0) return 0;
    return st_errorf(err, "batch_size: expected a multiple of the %d MPI ranks, found %d (run with a rank count "
                          "that divides %d, or change batch_size)",
                     size, B, B);
}

void dist_slice(int B, int rank, int size, int *first, int *count) {
    *count = B / size;
    *first = rank * *count;
}

uint64_t dist_hash_bytes(const void *data, size_t n, uint64_t hash) {
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) hash = (hash ^ p[i]) * 0x100000001b3ull;
    return hash;
}

#ifdef ST_MPI

void dist_init(int *argc, char ***argv) { MPI_Init(argc, argv); }
void dist_finalize(void) { MPI_Finalize(); }
void dist_abort(int code) {
    if (dist_size() > 1) MPI_Abort(MPI_COMM_WORLD, code);
    exit(code);
}

/* a program that never called dist_init (the tests' own trainers) is one process */
static int mpi_running(void) {
    int initialized, finalized;
    MPI_Initialized(&initialized);
    MPI_Finalized(&finalized);
    return initialized && !finalized;
}

int dist_rank(void) {
    int r = 0;
    if (mpi_running()) MPI_Comm_rank(MPI_COMM_WORLD, &r);
    return r;
}

int dist_size(void) {
    int n = 1;
    if (mpi_running()) MPI_Comm_size(MPI_COMM_WORLD, &n);
    return n;
}

/* One in-place MPI_Allreduce over the whole buffer. Open MPI reduces a given message size with a
 * fixed algorithm, so the sum order (and the result) is the same on every rank and every run; it is
 * not the order a single process would accumulate in, hence tolerances rather than bit equality. */
void dist_mean_floats(float *x, size_t n) {
    int size = dist_size();
    if (size == 1) return;
    /* MPI counts are int: reduce in chunks of at most 2^30 elements */
    for (size_t done = 0; done < n;) {
        int count = n - done > (1u << 30) ? (1 << 30) : (int)(n - done);
        MPI_Allreduce(MPI_IN_PLACE, x + done, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        done += (size_t)count;
    }
    float scale = 1.0f / (float)size;
    for (size_t i = 0; i < n; i++) x[i] *= scale;
}

void dist_sum_doubles(double *x, size_t n) {
    if (dist_size() > 1) MPI_Allreduce(MPI_IN_PLACE, x, (int)n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
}

int dist_any(int flag) {
    if (dist_size() > 1) MPI_Allreduce(MPI_IN_PLACE, &flag, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    return flag != 0;
}

void dist_barrier_idle(void) {
    if (dist_size() == 1) return;
    MPI_Request request;
    MPI_Ibarrier(MPI_COMM_WORLD, &request);
    struct timespec ms = {0, 1000000};
    for (int done = 0; MPI_Test(&request, &done, MPI_STATUS_IGNORE), !done;) nanosleep(&ms, NULL);
}

int dist_check_same(uint64_t hash, const char *what, char *err) {
    if (dist_size() == 1) return 0;
    uint64_t lo = hash, hi = hash;
    MPI_Allreduce(MPI_IN_PLACE, &lo, 1, MPI_UINT64_T, MPI_MIN, MPI_COMM_WORLD);
    MPI_Allreduce(MPI_IN_PLACE, &hi, 1, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD);
    if (lo == hi) return 0;
    return st_errorf(err, "%s differs between the MPI ranks (hash %016llx on rank %d, range %016llx..%016llx)",
                     what, (unsigned long long)hash, dist_rank(), (unsigned long long)lo, (unsigned long long)hi);
}

#else /* one process: nothing to communicate */

void dist_init(int *argc, char ***argv) { (void)argc, (void)argv; }
void dist_finalize(void) {}
void dist_abort(int code) { exit(code); }
int dist_rank(void) { return 0; }
int dist_size(void) { return 1; }
void dist_mean_floats(float *x, size_t n) { (void)x, (void)n; }
void dist_sum_doubles(double *x, size_t n) { (void)x, (void)n; }
int dist_any(int flag) { return flag != 0; }
void dist_barrier_idle(void) {}
int dist_check_same(uint64_t hash, const char *what, char *err) {
    (void)hash, (void)what, (void)err;
    return 0;
}

#endif
