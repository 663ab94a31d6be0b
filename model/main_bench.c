/* model/main_bench.c: `bin/bench` (run by `make bench`): training speed against this machine's
 * measured peak.
 *
 *   bin/bench [--steps N] [--out bench.json] [--quick]
 *   mpirun -np N bin/bench --data-parallel [--steps N]     (built with make MPI=1)
 *
 * 1. peak: the FP32 multiply-add rate of a register-only FMA loop on every thread (GFLOP/s);
 * 2. GEMM micro-benchmark: matmul_forward and matmul_backward at the default model's own shapes;
 * 3. training steps (forward, backward, AdamW) of the default config and a larger one on random
 *    tokens: median tokens/s, ms per step by phase and by operation class, achieved GFLOP/s and the
 *    share of the peak (MFU), with the default config also timed on 1 thread (the scaling);
 * 4. peak resident memory. Everything is printed as a table and written as one JSON object.
 *
 * FLOPs are counted analytically (flops_per_token): 2 per multiply-add of every matmul a token goes
 * through in the forward (its k experts only, the router, the LM head) plus the attention scores and
 * weighted sum over the (T+1)/2 keys a query sees on average; training = 3 x forward (the backward
 * computes two products per forward product). Elementwise work is not counted.
 *
 * --data-parallel (`make bench MPI=1`): the scaling of train/dist.h. The default config's batch on
 * 1 rank x N threads (the other ranks asleep), then on N ranks x 1 thread, each rank computing B/N
 * windows and averaging the gradients with MPI_Allreduce: tokens/s per rank and in all, the
 * all-reduce's time per step, and the efficiency (N ranks' tokens/s / 1 rank's). */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "../common/args.h"
#include "../common/binfile.h"
#include "../common/jsonl.h"
#include "../common/util.h"
#include "../train/adamw.h"
#include "../train/dist.h"
#include "moe.h"
#include "simd.h"

/* ------------------------------------------------------------------------------------------------ */
/* peak */

/* GFLOP/s of `threads` threads each running 12 independent chains of 8-wide multiply-adds (enough
 * chains in flight to cover the FMA latency on two pipes); best of 3 */
static double measure_peak_gflops(int threads) {
    enum { CHAINS = 12 };
    const long iters = 20000000;
    double best = 0.0;
    for (int trial = 0; trial < 3; trial++) {
        volatile float sink = 0.0f;
        double t0 = st_now_seconds();
#pragma omp parallel num_threads(threads)
        {
            v8 acc[CHAINS], mul = splat8(0.999999f), add = splat8(1e-7f);
            for (int c = 0; c < CHAINS; c++) acc[c] = splat8((float)c);
            for (long it = 0; it < iters; it++)
#pragma GCC unroll 12
                for (int c = 0; c < CHAINS; c++) acc[c] = FMA8(acc[c], mul, add);
            float s = 0.0f;
            for (int c = 0; c < CHAINS; c++) s += hsum8(acc[c]);
#pragma omp critical
            sink += s;
        }
        double secs = st_now_seconds() - t0;
        double gflops = (double)threads * iters * CHAINS * 8 * 2 / secs * 1e-9;
        if (gflops > best) best = gflops;
        (void)sink;
    }
    return best;
}

/* ------------------------------------------------------------------------------------------------ */
/* GEMM micro-benchmark */

typedef struct {
    const char *name, *key; /* for the table, for bench.json */
    int N, IN, OUT;
    double fwd_gflops, bwd_gflops;
} GemmShape;

static float *random_floats(StRng *r, size_t n) {
    float *x = st_malloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++) x[i] = (float)(st_rng_uniform(r) - 0.5);
    return x;
}

/* best-of-reps GFLOP/s of forward (2 N IN OUT flops) and backward (4 N IN OUT: din and dw) */
static void bench_gemm(GemmShape *g, int reps) {
    StRng r;
    st_rng_seed(&r, 1);
    size_t N = g->N, IN = g->IN, OUT = g->OUT;
    float *in = random_floats(&r, N * IN), *w = random_floats(&r, OUT * IN), *out = random_floats(&r, N * OUT);
    float *din = st_calloc(N * IN, sizeof(float)), *dw = st_calloc(OUT * IN, sizeof(float));
    double flops = 2.0 * N * IN * OUT, best_f = 1e30, best_b = 1e30;
    for (int i = 0; i < reps; i++) {
        double t0 = st_now_seconds();
        matmul_forward(out, in, w, g->N, g->IN, g->OUT);
        double t1 = st_now_seconds();
        matmul_backward(din, dw, out, in, w, g->N, g->IN, g->OUT);
        double t2 = st_now_seconds();
        if (t1 - t0 < best_f) best_f = t1 - t0;
        if (t2 - t1 < best_b) best_b = t2 - t1;
    }
    g->fwd_gflops = flops / best_f * 1e-9;
    g->bwd_gflops = 2 * flops / best_b * 1e-9;
    free(in), free(w), free(out), free(din), free(dw);
}

/* ------------------------------------------------------------------------------------------------ */
/* training steps */

/* forward FLOPs of one token at sequence length T (see the header comment); training is 3x */
static double flops_per_token(const MoeConfig *c, int T) {
    double C = c->d_model, HD = (double)c->n_head * c->head_dim, KVD = (double)c->n_kv_head * c->head_dim;
    double F = c->d_ff, K = c->top_k, E = c->n_expert, V = c->vocab_size;
    double proj = C * (HD + 2 * KVD) + HD * C;          /* wq, wk, wv, wo */
    double router = E > 1 ? C * E : 0.0;
    double experts = K * 3 * C * F;                     /* gate, up, down of k experts */
    double attn = 2 * HD * (T + 1) / 2.0;               /* q.k and p*v over the visible keys */
    double forward = 2 * (c->n_layer * (proj + router + experts + attn) + C * V);
    return 3 * forward;
}

/* CPU time used by the whole process (every thread) */
static double cpu_now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct {
    const char *name;
    MoeConfig cfg;
    int B, T, threads;
    int allreduce; /* data parallel: average the gradients over the MPI ranks after the backward */
    double ms_allreduce;
    size_t n_params;
    double tokens_per_s, ms_step, ms_fwd, ms_bwd, ms_opt, gflops, mfu, flops_tok;
    double cpu_share; /* CPU time the process got per step / (wall time x threads): < 1 on a shared machine */
    double ms_op[MOE_OP_CLASSES]; /* per step, forward + backward */
    float first_loss, last_loss;
} StepBench;

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *x, int n) {
    qsort(x, (size_t)n, sizeof(double), cmp_double);
    return n % 2 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2]);
}

/* warm-up steps, then `steps` timed steps of forward + backward + AdamW on random tokens */
static void bench_steps(StepBench *s, int warmup, int steps, double peak) {
    char err[ST_ERR_LEN];
    Moe m;
    if (moe_init(&m, &s->cfg, err)) {
        fprintf(stderr, "bench: %s\n", err);
        exit(1);
    }
    omp_set_num_threads(s->threads);
    int N = s->B * s->T;
    int *tok = st_malloc(sizeof(int) * (size_t)N), *tgt = st_malloc(sizeof(int) * (size_t)N);
    StRng r;
    st_rng_seed(&r, 42 + (uint64_t)dist_rank()); /* data parallel: each rank its own windows */
    AdamW opt;
    adamw_init(&opt, m.n_params);
    AdamWHyper hyper = {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f};
    double *fwd = st_malloc(sizeof(double) * (size_t)steps), *bwd = st_malloc(sizeof(double) * (size_t)steps);
    double *optt = st_malloc(sizeof(double) * (size_t)steps), *step = st_malloc(sizeof(double) * (size_t)steps);
    double *reduce = st_malloc(sizeof(double) * (size_t)steps);
    double cpu_seconds = 0.0, wall_seconds = 0.0;
    for (int i = 0; i < warmup + steps; i++) {
        if (i == warmup) memset(m.op_seconds, 0, sizeof m.op_seconds);
        for (int n = 0; n < N; n++) tok[n] = (int)st_rng_below(&r, (uint32_t)s->cfg.vocab_size);
        for (int n = 0; n < N; n++) tgt[n] = n % s->T == s->T - 1 ? tok[n] : tok[n + 1];
        double t0 = st_now_seconds(), c0 = cpu_now_seconds();
        float loss = moe_forward(&m, tok, tgt, s->B, s->T, NULL);
        double t1 = st_now_seconds();
        moe_zero_grad(&m);
        moe_backward(&m, 1.0f);
        double t2 = st_now_seconds();
        if (s->allreduce) dist_mean_floats(m.grads, m.n_params);
        double t2r = st_now_seconds();
        adamw_step(&opt, m.params, m.grads, m.tensors, m.n_tensors, &hyper, i + 1, 1.0f);
        double t3 = st_now_seconds(), c3 = cpu_now_seconds();
        if (i == 0) s->first_loss = loss;
        s->last_loss = loss;
        if (i < warmup) continue;
        fwd[i - warmup] = t1 - t0, bwd[i - warmup] = t2 - t1, reduce[i - warmup] = t2r - t2;
        optt[i - warmup] = t3 - t2r, step[i - warmup] = t3 - t0;
        cpu_seconds += c3 - c0, wall_seconds += t3 - t0;
    }
    s->cpu_share = cpu_seconds / (wall_seconds * s->threads);
    s->ms_fwd = 1e3 * median(fwd, steps);
    s->ms_bwd = 1e3 * median(bwd, steps);
    s->ms_opt = 1e3 * median(optt, steps);
    s->ms_allreduce = 1e3 * median(reduce, steps);
    s->n_params = m.n_params;
    s->ms_step = 1e3 * median(step, steps);
    for (int k = 0; k < MOE_OP_CLASSES; k++) s->ms_op[k] = 1e3 * m.op_seconds[k] / steps;
    s->tokens_per_s = N / (s->ms_step * 1e-3);
    s->flops_tok = flops_per_token(&m.cfg, s->T);
    s->gflops = s->flops_tok * s->tokens_per_s * 1e-9;
    s->mfu = s->gflops / peak;
    free(fwd), free(bwd), free(optt), free(step), free(reduce), free(tok), free(tgt);
    adamw_free(&opt);
    moe_free(&m);
}

static void print_steps(const StepBench *s) {
    printf("\n%s: d_model %d, %d layers, %d heads, %d experts top-%d, d_ff %d, vocab %d; B %d x T %d, %d thread%s\n",
           s->name, s->cfg.d_model, s->cfg.n_layer, s->cfg.n_head, s->cfg.n_expert, s->cfg.top_k, s->cfg.d_ff,
           s->cfg.vocab_size, s->B, s->T, s->threads, s->threads > 1 ? "s" : "");
    printf("  %-28s %10.0f   (loss %.3f -> %.3f)\n", "tokens/s (median step)", s->tokens_per_s, s->first_loss,
           s->last_loss);
    printf("  %-28s %10.1f   forward %.1f, backward %.1f, optimizer %.1f\n", "ms per step", s->ms_step, s->ms_fwd,
           s->ms_bwd, s->ms_opt);
    printf("  %-28s", "ms per step by operation");
    for (int k = 0; k < MOE_OP_CLASSES; k++)
        printf(" %s %.1f%s", moe_op_class_names[k], s->ms_op[k], k + 1 < MOE_OP_CLASSES ? "," : "\n");
    printf("  %-28s %10.2f\n", "MFLOP per token (train)", s->flops_tok * 1e-6);
    printf("  %-28s %10.1f   = %.1f%% of the measured peak (MFU)\n", "achieved GFLOP/s", s->gflops, 100 * s->mfu);
    printf("  %-28s %10.2f   (CPU time / (wall time x threads); below 1: other processes shared the cores)\n",
           "CPU share", s->cpu_share);
}

static void json_steps(StJson *j, const char *prefix, const StepBench *s) {
    char key[96];
#define KEY(suffix) (snprintf(key, sizeof key, "%s_%s", prefix, suffix), key)
    sj_int(j, KEY("batch"), s->B);
    sj_int(j, KEY("seq_len"), s->T);
    sj_int(j, KEY("threads"), s->threads);
    sj_num(j, KEY("tokens_per_s"), s->tokens_per_s);
    sj_num(j, KEY("ms_step"), s->ms_step);
    sj_num(j, KEY("ms_forward"), s->ms_fwd);
    sj_num(j, KEY("ms_backward"), s->ms_bwd);
    sj_num(j, KEY("ms_optimizer"), s->ms_opt);
    for (int k = 0; k < MOE_OP_CLASSES; k++) {
        char name[64];
        snprintf(name, sizeof name, "ms_%s", moe_op_class_names[k]);
        sj_num(j, KEY(name), s->ms_op[k]);
    }
    sj_num(j, KEY("flops_per_token"), s->flops_tok);
    sj_num(j, KEY("gflops"), s->gflops);
    sj_num(j, KEY("mfu"), s->mfu);
    sj_num(j, KEY("cpu_share"), s->cpu_share);
#undef KEY
}

/* ------------------------------------------------------------------------------------------------ */

/* the process's peak resident set so far, in MB */
static double peak_rss_mb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024.0;
}

static void usage_error(const char *msg, const char *arg) {
    fprintf(stderr, "bench: %s%s (usage: bin/bench [--steps N] [--out FILE] [--quick])\n", msg, arg);
    exit(2);
}

/* --data-parallel: 1 rank x N threads against N ranks x 1 thread on the default config's batch */
static int bench_data_parallel(int steps) {
    int N = dist_size(), root = dist_is_root();
    if (N == 1) {
        fprintf(stderr, "bench: --data-parallel: expected several MPI ranks, found 1 (build with make MPI=1, then "
                        "mpirun -np 2 bin/bench --data-parallel)\n");
        return 2;
    }
    MoeConfig dc;
    moe_config_default(&dc);
    char err[ST_ERR_LEN];
    if (moe_config_validate(&dc, err) || dist_check_batch(16, N, err)) usage_error(err, "");
    double load = -1.0;
    getloadavg(&load, 1);
    StepBench one = {.name = "1 rank", .cfg = dc, .B = 16, .T = 256, .threads = N};
    StepBench dp = {.name = "per rank", .cfg = dc, .B = 16 / N, .T = 256, .threads = 1, .allreduce = 1};
    if (root) bench_steps(&one, 1, steps, 1.0); /* the peak is not measured here: MFU is left out */
    dist_barrier_idle();
    bench_steps(&dp, 1, steps, 1.0);
    if (!root) return 0;
    double all = dp.tokens_per_s * N;
    printf("data parallel, default config, global batch 16 x 256 (load average %.2f on %d cores before)\n", load,
           omp_get_num_procs());
    printf("  1 rank x %d threads   %8.0f tokens/s   %6.1f ms per step   (CPU share %.2f)\n", N, one.tokens_per_s,
           one.ms_step, one.cpu_share);
    printf("  %d ranks x 1 thread   %8.0f tokens/s   %6.1f ms per step   = %.0f tokens/s per rank; all-reduce of "
           "%zu gradients %.2f ms per step (%.1f%%) (CPU share of rank 0 %.2f)\n",
           N, all, dp.ms_step, dp.tokens_per_s, dp.n_params, dp.ms_allreduce,
           100 * dp.ms_allreduce / dp.ms_step, dp.cpu_share);
    printf("  scaling efficiency   %.2f   (%d ranks' tokens/s / 1 rank's)\n", all / one.tokens_per_s, N);
    return 0;
}

int main(int argc, char **argv) {
    st_openmp_wait_passively(argv);
    int steps = 5, quick = 0, data_parallel = 0;
    const char *out_path = "bench.json", *value;
    char err[ST_ERR_LEN];
    if (args_wants_help(argc, argv)) {
        printf("usage: bin/bench [--steps N] [--out FILE] [--quick] [--data-parallel]\n");
        return 0;
    }
    if (args_check_repeats(argc, argv, err)) usage_error(err, "");
    for (int i = 1; i < argc; i++) {
        long long v;
        if (!strcmp(argv[i], "--quick")) quick = 1;
        else if (!strcmp(argv[i], "--data-parallel")) data_parallel = 1;
        else if (!strcmp(argv[i], "--steps")) {
            if (args_value(argc, argv, i++, &value, err) || args_int("--steps", value, 1, 1000, &v, err))
                usage_error(err, "");
            steps = (int)v;
        } else if (!strcmp(argv[i], "--out")) {
            if (args_value(argc, argv, i++, &out_path, err)) usage_error(err, "");
        } else usage_error("unknown argument ", argv[i]);
    }
    if (quick) steps = 2;
    if (data_parallel) {
        dist_init(&argc, &argv);
        int code = bench_data_parallel(steps);
        dist_finalize();
        return code;
    }
    /* the output goes to a temporary file renamed over out_path at the end: an unwritable path fails
     * now, not after the run, and an interrupted run leaves the previous file intact */
    StAtomic out;
    if (st_atomic_open(&out, out_path, err)) {
        fprintf(stderr, "bench: --out: %s\n", err);
        return 1;
    }
    int threads = omp_get_max_threads();
    double load = -1.0; /* other processes on the same cores slow every figure below */
    getloadavg(&load, 1);
    printf("sinktrace bench: %d thread%s (OMP_NUM_THREADS), FMA %s; load average %.2f on %d cores before the run\n",
           threads, threads > 1 ? "s" : "",
#if defined(__FMA__)
           "on",
#else
           "off (portable build)",
#endif
           load, omp_get_num_procs());

    double peak = measure_peak_gflops(threads), peak1 = measure_peak_gflops(1);
    printf("\npeak FP32 (FMA loop): %.1f GFLOP/s on %d thread%s, %.1f on 1\n", peak, threads, threads > 1 ? "s" : "",
           peak1);
    if (peak < 0.75 * threads * peak1) /* the threads' FMA loops did not all run at once */
        printf("  warning: %d threads reached only %.2fx the peak of 1: the cores were shared while measuring, so\n"
               "  every share of the peak below is inflated; rerun on a quiet machine\n",
               threads, peak / peak1);

    MoeConfig dc, lc;
    moe_config_default(&dc);
    lc = dc;
    lc.d_model = 256, lc.n_layer = 6, lc.n_head = 8, lc.n_kv_head = 8, lc.n_expert = 16, lc.d_ff = 512;
    if (moe_config_validate(&dc, err) || moe_config_validate(&lc, err)) usage_error(err, "");

    /* the default model's matmuls: B*T = 4096 rows; an expert sees B*T*k/E rows on average; the LM
     * head runs on MOE_LOSS_CHUNK rows at a time in training (lm_head_loss_forward) */
    int rows = 16 * 256, erows = rows * dc.top_k / dc.n_expert;
    GemmShape gemm[] = {{"attn q/k/v/o", "gemm_attn", rows, dc.d_model, dc.d_model, 0, 0},
                        {"expert gate/up", "gemm_expert_up", erows, dc.d_model, dc.d_ff, 0, 0},
                        {"expert down", "gemm_expert_down", erows, dc.d_ff, dc.d_model, 0, 0},
                        {"lm head chunk", "gemm_lm_head", MOE_LOSS_CHUNK, dc.d_model, dc.vocab_size, 0, 0}};
    int n_gemm = sizeof gemm / sizeof gemm[0];
    int gemm_reps = quick ? 5 : 20; /* a few ms each: the best of many is the least disturbed */
    printf("\nGEMM at the default model's shapes (rows x in -> out), best of %d\n", gemm_reps);
    for (int g = 0; g < n_gemm; g++) {
        bench_gemm(&gemm[g], gemm_reps);
        printf("  %-16s %5d x %3d -> %3d   forward %6.1f GFLOP/s (%4.1f%%)   backward %6.1f GFLOP/s (%4.1f%%)\n",
               gemm[g].name, gemm[g].N, gemm[g].IN, gemm[g].OUT, gemm[g].fwd_gflops, 100 * gemm[g].fwd_gflops / peak,
               gemm[g].bwd_gflops, 100 * gemm[g].bwd_gflops / peak);
    }

    StepBench def = {.name = "default", .cfg = dc, .B = 16, .T = 256, .threads = threads};
    StepBench big = {.name = "large", .cfg = lc, .B = 8, .T = 256, .threads = threads};
    StepBench one = {.name = "default on 1 thread", .cfg = dc, .B = 16, .T = 256, .threads = 1};
    bench_steps(&def, 1, steps, peak);
    print_steps(&def);
    bench_steps(&one, 1, steps > 3 ? 3 : steps, peak1);
    print_steps(&one);
    double scaling = def.tokens_per_s / one.tokens_per_s, rss_default_mb = peak_rss_mb();
    printf("\nscaling: %.2fx the tokens/s of 1 thread on %d thread%s\n", scaling, threads, threads > 1 ? "s" : "");
    bench_steps(&big, 1, steps, peak);
    print_steps(&big);
    double rss_mb = peak_rss_mb();
    printf("\npeak resident memory: %.0f MB with the default config, %.0f MB with the large one "
           "(parameters, gradients and AdamW moments are 16 bytes per parameter)\n", rss_default_mb, rss_mb);

    StJson j = {0};
    sj_begin(&j);
    sj_int(&j, "threads", threads);
    sj_num(&j, "load_average", load);
    sj_bool(&j, "fma", 
#if defined(__FMA__)
            1
#else
            0
#endif
    );
    sj_num(&j, "peak_gflops", peak);
    sj_num(&j, "peak_gflops_1thread", peak1);
    for (int g = 0; g < n_gemm; g++) {
        char key[64];
        snprintf(key, sizeof key, "%s_fwd_gflops", gemm[g].key);
        sj_num(&j, key, gemm[g].fwd_gflops);
        snprintf(key, sizeof key, "%s_bwd_gflops", gemm[g].key);
        sj_num(&j, key, gemm[g].bwd_gflops);
    }
    json_steps(&j, "default", &def);
    json_steps(&j, "large", &big);
    json_steps(&j, "default_1thread", &one);
    sj_num(&j, "scaling", scaling);
    sj_num(&j, "default_peak_rss_mb", rss_default_mb);
    sj_num(&j, "peak_rss_mb", rss_mb);
    if (sj_write_line(&j, out.f, out.tmp, err) || st_atomic_commit(&out, err)) {
        fprintf(stderr, "bench: %s\n", err);
        st_atomic_abort(&out);
        return 1;
    }
    sj_free(&j);
    printf("wrote %s\n", out_path);
    return 0;
}
