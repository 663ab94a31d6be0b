/* train/main_bench.c: `bin/bench` (run by `make bench`): training speed against this machine's
 * measured peak, on the shapes the experiments run.
 *
 *   bin/bench [--steps N] [--out bench.json] [--quick] [--shape default|bos|guo|moe]
 *   mpirun -np N bin/bench --data-parallel [--steps N]     (built with make MPI=1)
 *
 * 1. peak: the FP32 multiply-add rate of a register-only FMA loop on every thread (GFLOP/s);
 * 2. GEMM micro-benchmark: matmul_forward and matmul_backward at the default run's own shapes;
 * 3. training steps (forward, backward, AdamW) of each shape on random tokens, on all threads and on 1:
 *    median tokens/s, ms per step by operation class (matmul, attention, routing, elementwise, loss),
 *    the optimizer and the probes (one probe step of the shape's probe set, spread over the steps
 *    between probes), achieved GFLOP/s and the share of the peak (MFU), the scaling, the peak
 *    resident memory of each shape;
 * 4. the default run on a shared machine: the same steps while another process keeps one core busy;
 * 5. time to the sink: the default run's emergence step (runs/default's summary, when `make run` has
 *    made it) at the speed just measured.
 * Everything is printed as a table and written as one JSON object.
 *
 * The shapes: "default" is runs/default.conf (the model and batch `make run` trains: 3 dense blocks,
 * B 128 x T 64), "bos" runs/bos.conf (the lab's BOS run: 4 MoE blocks, B 64 x T 128), "guo" is
 * runs/lab/guo_bos.conf (Guo et al.'s one block of one 256-wide head with a dense SwiGLU of 1,024),
 * "moe" the trainer's built-in defaults (8 experts, 4 heads, B 16 x T 256: the wave-1 default).
 *
 * FLOPs are counted analytically (flops_per_token): 2 per multiply-add of every matmul a token goes
 * through in the forward (its k experts only, the router, the LM head) plus the attention scores and
 * weighted sum over the (T+1)/2 keys a query sees on average; training = 3 x forward (the backward
 * computes two products per forward product). Elementwise work is not counted.
 *
 * --data-parallel (`make bench MPI=1`): the scaling of train/dist.h. The moe shape's batch on
 * 1 rank x N threads (the other ranks asleep), then on N ranks x 1 thread, each rank computing B/N
 * windows and averaging the gradients with MPI_Allreduce: tokens/s per rank and in all, the
 * all-reduce's time per step, and the efficiency (N ranks' tokens/s / 1 rank's). */
#include <cJSON.h>
#include <dirent.h>
#include <math.h>
#include <omp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../common/args.h"
#include "../common/binfile.h"
#include "../common/jsonl.h"
#include "../common/util.h"
#include "../model/moe.h"
#include "../model/simd.h"
#include "../probes/probe.h"
#include "adamw.h"
#include "config.h"
#include "dist.h"

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

/* the shapes of the default run's matmuls: B*T rows; an expert sees B*T*k/E rows on average; the LM
 * head runs on MOE_LOSS_CHUNK rows at a time in training (lm_head_loss_forward) */
static void bench_gemms(const TrainConfig *tc, double peak, int reps, StJson *j) {
    const MoeConfig *c = &tc->model;
    int rows = tc->batch_size * c->seq_len, erows = rows * c->top_k / c->n_expert, dense = c->n_expert == 1;
    const char *up = dense ? (c->mlp == MOE_MLP_SWIGLU ? "mlp gate/up" : "mlp up")
                           : (c->mlp == MOE_MLP_SWIGLU ? "expert gate/up" : "expert up");
    GemmShape gemm[] = {{"attn q/k/v/o", "gemm_attn", rows, c->d_model, c->d_model, 0, 0},
                        {up, "gemm_expert_up", erows, c->d_model, c->d_ff, 0, 0},
                        {dense ? "mlp down" : "expert down", "gemm_expert_down", erows, c->d_ff, c->d_model, 0, 0},
                        {"lm head chunk", "gemm_lm_head", MOE_LOSS_CHUNK, c->d_model, c->vocab_size, 0, 0}};
    printf("\nGEMM at the default run's shapes (rows x in -> out), best of %d\n", reps);
    for (size_t g = 0; g < sizeof gemm / sizeof gemm[0]; g++) {
        bench_gemm(&gemm[g], reps);
        printf("  %-16s %5d x %3d -> %3d   forward %6.1f GFLOP/s (%4.1f%%)   backward %6.1f GFLOP/s (%4.1f%%)\n",
               gemm[g].name, gemm[g].N, gemm[g].IN, gemm[g].OUT, gemm[g].fwd_gflops, 100 * gemm[g].fwd_gflops / peak,
               gemm[g].bwd_gflops, 100 * gemm[g].bwd_gflops / peak);
        char key[64];
        snprintf(key, sizeof key, "%s_fwd_gflops", gemm[g].key);
        sj_num(j, key, gemm[g].fwd_gflops);
        snprintf(key, sizeof key, "%s_bwd_gflops", gemm[g].key);
        sj_num(j, key, gemm[g].bwd_gflops);
    }
}

/* ------------------------------------------------------------------------------------------------ */
/* training steps */

/* forward FLOPs of one token at sequence length T (see the header comment); training is 3x */
static double flops_per_token(const MoeConfig *c, int T) {
    double C = c->d_model, HD = (double)c->n_head * c->head_dim, KVD = (double)c->n_kv_head * c->head_dim;
    double F = c->d_ff, K = c->top_k, E = c->n_expert, V = c->vocab_size;
    double proj = C * (HD + 2 * KVD) + HD * C;          /* wq, wk, wv, wo */
    double router = E > 1 ? C * E : 0.0;
    double products = c->mlp == MOE_MLP_RELU ? 2 : 3;  /* SwiGLU: gate, up, down; ReLU: up, down */
    double experts = K * products * C * F;              /* of k experts */
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

/* random tokens and their next-token targets for one step of B windows of T */
static void random_batch(int *tok, int *tgt, StRng *r, int B, int T, int V) {
    int N = B * T;
    for (int n = 0; n < N; n++) tok[n] = (int)st_rng_below(r, (uint32_t)V);
    for (int n = 0; n < N; n++) tgt[n] = n % T == T - 1 ? tok[n] : tok[n + 1];
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
        random_batch(tok, tgt, &r, s->B, s->T, s->cfg.vocab_size);
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

/* ------------------------------------------------------------------------------------------------ */
/* probes */

/* removes the files of a flat directory, then the directory */
static void remove_flat_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char path[4400];
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            unlink(path);
        }
    closedir(d);
    rmdir(dir);
}

/* a probe set of random windows saved where prober_open looks for it */
static void save_random_probe_set(const char *dir, const TrainConfig *tc, int bos_id) {
    int n = tc->probes.n, T = tc->probes.len, V = tc->model.vocab_size, *tok = st_malloc(sizeof(int) * (size_t)n * T),
        *tgt = st_malloc(sizeof(int) * (size_t)n * T);
    StRng r;
    st_rng_seed(&r, 7);
    random_batch(tok, tgt, &r, n, T, bos_id >= 0 ? V - 1 : V);
    ProbeSet ps;
    char err[ST_ERR_LEN], path[4200];
    snprintf(path, sizeof path, "%s/probe_set.bin", dir);
    if (probe_set_from_windows(&ps, tok, tgt, NULL, n, T, V, bos_id, tc->probes.shift, 1, err) ||
        probe_set_save(&ps, path, err)) {
        fprintf(stderr, "bench: probes: %s\n", err);
        exit(1);
    }
    probe_set_free(&ps);
    free(tok), free(tgt);
}

/* wall ms of one probe step of the shape's probe set (its metrics, records, summary and attention
 * maps, written to a scratch directory), median of `reps`, on the current thread count */
static double bench_probe_step(const TrainConfig *tc, int reps) {
    char dir[] = "/tmp/sinktrace-bench-XXXXXX", err[ST_ERR_LEN];
    if (!mkdtemp(dir)) {
        fprintf(stderr, "bench: cannot make a scratch directory in /tmp\n");
        exit(1);
    }
    int probe_bos = tc->bos == BOS_DOC || tc->bos == BOS_PREPEND;
    save_random_probe_set(dir, tc, probe_bos ? tc->model.vocab_size - 1 : -1);
    Prober pr;
    Moe m;
    if (moe_init(&m, &tc->model, err) || prober_open(&pr, dir, NULL, &tc->probes, &tc->model, probe_bos, 1, err)) {
        fprintf(stderr, "bench: probes: %s\n", err);
        exit(1);
    }
    double *ms = st_malloc(sizeof(double) * (size_t)reps);
    for (int i = 0; i < reps; i++) {
        double t0 = st_now_seconds();
        /* a step between the first and the last: the scheduled variants, not the final step's extras */
        if (prober_step(&pr, &m, 1 + i, tc->steps, 0, NAN, err)) {
            fprintf(stderr, "bench: probes: %s\n", err);
            exit(1);
        }
        ms[i] = 1e3 * (st_now_seconds() - t0);
    }
    double med = median(ms, reps);
    free(ms);
    prober_close(&pr);
    moe_free(&m);
    remove_flat_dir(dir);
    return med;
}

/* how many of a run's steps 0..steps are probe steps */
static int probe_steps_of_run(const TrainConfig *tc) {
    int n = 0;
    for (long s = 0; s <= tc->steps; s++) n += probe_is_due(s, tc->steps, &tc->probes);
    return n;
}

/* ------------------------------------------------------------------------------------------------ */
/* memory */

/* starts a new high-water mark of resident memory (Linux: clear_refs 5 resets VmHWM) */
static void reset_peak_rss(void) {
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (!f) return;
    fputs("5", f);
    fclose(f);
}

/* the resident high-water mark since reset_peak_rss, in MB (NaN if /proc cannot tell) */
static double peak_rss_mb(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return NAN;
    char line[256];
    double kb = NAN;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %lf kB", &kb) == 1) break;
    fclose(f);
    return kb / 1024.0;
}

/* peak memory of one training step of the default shape at T, 2T and 4T with B*T fixed: flat when
 * nothing in training grows with T^2 (attention keeps one logsumexp per query, not its T x T weights) */
static void bench_memory_in_t(const TrainConfig *tc, int threads, StJson *j) {
    printf("\npeak resident memory of a training step, B x T fixed at %d tokens:", tc->batch_size * tc->model.seq_len);
    for (int k = 1; k <= 4 && tc->batch_size % k == 0; k *= 2) {
        StepBench b = {.cfg = tc->model, .B = tc->batch_size / k, .T = tc->model.seq_len * k, .threads = threads};
        b.cfg.seq_len = b.T;
        reset_peak_rss();
        bench_steps(&b, 0, 1, 1.0);
        double mb = peak_rss_mb();
        printf("%s T %d: %.0f MB", k > 1 ? "," : "", b.T, mb);
        char key[64];
        snprintf(key, sizeof key, "default_peak_rss_mb_T%d", b.T);
        sj_num(j, key, mb);
    }
    printf("\n");
}

/* ------------------------------------------------------------------------------------------------ */
/* one shape */

typedef struct {
    const char *name, *origin; /* the table's label; the config it comes from */
    TrainConfig tc;
    StepBench all, one; /* on every thread, on 1 */
    double ms_probe_step, ms_probe_per_step, rss_mb;
    int probe_steps;
} Shape;

/* the shapes the bench trains, by name, with the config each is read from (NULL: the built-in defaults) */
static const struct {
    const char *name, *conf;
} bench_shapes[] = {{"default", "runs/default.conf"}, {"bos", "runs/bos.conf"}, {"guo", "runs/lab/guo_bos.conf"},
                    {"moe", NULL}};
enum { N_BENCH_SHAPES = sizeof bench_shapes / sizeof bench_shapes[0] };

static int is_bench_shape(const char *name) {
    for (int i = 0; i < N_BENCH_SHAPES; i++)
        if (!strcmp(name, bench_shapes[i].name)) return 1;
    return 0;
}

static void shape_load(Shape *s, const char *name, const char *conf) {
    char err[ST_ERR_LEN];
    s->name = name, s->origin = conf ? conf : "the trainer's defaults";
    config_defaults(&s->tc);
    if ((conf && config_load_file(&s->tc, conf, err)) || config_validate(&s->tc, err)) {
        fprintf(stderr, "bench: %s\n", err);
        exit(1);
    }
    if (s->tc.model.vocab_size == 0) s->tc.model.vocab_size = 257; /* bytes + BOS, as the corpus' tokenizer */
}

static StepBench step_bench_of(const Shape *s, int threads) {
    return (StepBench){.cfg = s->tc.model, .B = s->tc.batch_size, .T = s->tc.model.seq_len, .threads = threads};
}

static void bench_shape(Shape *s, int threads, int steps, double peak, double peak1) {
    reset_peak_rss();
    s->all = step_bench_of(s, threads);
    s->one = step_bench_of(s, 1);
    bench_steps(&s->all, 1, steps, peak);
    omp_set_num_threads(threads);
    s->ms_probe_step = bench_probe_step(&s->tc, steps > 3 ? 3 : steps);
    s->probe_steps = probe_steps_of_run(&s->tc);
    s->ms_probe_per_step = s->ms_probe_step * s->probe_steps / s->tc.steps;
    s->rss_mb = peak_rss_mb();
    bench_steps(&s->one, 1, steps > 3 ? 3 : steps, peak1);
}

static void print_parts(const StepBench *b) {
    printf("  %-26s", "ms per step by part");
    for (int k = 0; k < MOE_OP_CLASSES; k++) printf(" %s %.1f,", moe_op_class_names[k], b->ms_op[k]);
    printf(" optimizer %.1f\n", b->ms_opt);
}

static void print_shape(const Shape *s) {
    const MoeConfig *c = &s->tc.model;
    const StepBench *a = &s->all, *o = &s->one;
    printf("\n%s (%s): d_model %d, %d layer%s, %d head%s of %d, %d expert%s top-%d, d_ff %d, vocab %d; B %d x T %d\n",
           s->name, s->origin, c->d_model, c->n_layer, c->n_layer > 1 ? "s" : "", c->n_head, c->n_head > 1 ? "s" : "",
           c->head_dim, c->n_expert, c->n_expert > 1 ? "s" : "", c->top_k, c->d_ff, c->vocab_size, a->B, a->T);
    printf("  %-26s %10s %10s\n", "", "threads", "1 thread");
    printf("  %-26s %10d %10d\n", "threads", a->threads, 1);
    printf("  %-26s %10.0f %10.0f   scaling %.2fx\n", "tokens/s (median step)", a->tokens_per_s, o->tokens_per_s,
           a->tokens_per_s / o->tokens_per_s);
    printf("  %-26s %9.1f%% %9.1f%%   (%.1f MFLOP per token, training)\n", "share of the peak (MFU)", 100 * a->mfu,
           100 * o->mfu, a->flops_tok * 1e-6);
    printf("  %-26s %10.1f %10.1f   forward %.1f, backward %.1f, optimizer %.1f (threads)\n", "ms per step",
           a->ms_step, o->ms_step, a->ms_fwd, a->ms_bwd, a->ms_opt);
    print_parts(a);
    printf("  %-26s %10.1f ms per probe step x %d probe steps / %d steps = %.1f ms per step (%.1f%%)\n", "probes",
           s->ms_probe_step, s->probe_steps, s->tc.steps, s->ms_probe_per_step,
           100 * s->ms_probe_per_step / (a->ms_step + s->ms_probe_per_step));
    printf("  %-26s %10.2f %10.2f   (CPU time / (wall time x threads); below 1: other processes shared the cores)\n",
           "CPU share", a->cpu_share, o->cpu_share);
    printf("  %-26s %10.0f MB   (parameters, gradients and AdamW moments: %.1f MB)\n", "peak resident memory",
           s->rss_mb, 16.0 * a->n_params / 1e6);
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

static void json_shape(StJson *j, const Shape *s) {
    char prefix[64], key[96];
    json_steps(j, s->name, &s->all);
    snprintf(prefix, sizeof prefix, "%s_1thread", s->name);
    json_steps(j, prefix, &s->one);
#define KEY(suffix) (snprintf(key, sizeof key, "%s_%s", s->name, suffix), key)
    sj_num(j, KEY("scaling"), s->all.tokens_per_s / s->one.tokens_per_s);
    sj_num(j, KEY("ms_probe_step"), s->ms_probe_step);
    sj_num(j, KEY("ms_probes_per_step"), s->ms_probe_per_step);
    sj_num(j, KEY("peak_rss_mb"), s->rss_mb);
#undef KEY
}

/* ------------------------------------------------------------------------------------------------ */
/* a shared machine */

/* a child process that keeps one core busy until killed (it runs no OpenMP: a forked child of an
 * OpenMP process may only do plain work) */
static pid_t start_spinner(void) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        volatile unsigned long x = 0;
        for (;;) x++;
    }
    return pid;
}

static void stop_spinner(pid_t pid) {
    if (pid <= 0) return;
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

/* the default shape on every thread and on 1 while another process keeps a core busy */
static void bench_shared(const Shape *s, int threads, int steps, StepBench *all, StepBench *one) {
    *all = step_bench_of(s, threads);
    *one = step_bench_of(s, 1);
    pid_t spinner = start_spinner();
    if (spinner < 0) {
        fprintf(stderr, "bench: cannot fork the busy process of the shared-machine measurement\n");
        exit(1);
    }
    bench_steps(all, 1, steps, 1.0);
    bench_steps(one, 1, steps, 1.0);
    stop_spinner(spinner);
    char wait[160];
    printf("\n%s with another process keeping one core busy (%s):\n", s->name,
           st_openmp_wait_description(wait, sizeof wait));
    printf("  %d threads %8.0f tokens/s (CPU share %.2f), 1 thread %8.0f tokens/s: %.2fx the 1-thread speed\n",
           threads, all->tokens_per_s, all->cpu_share, one->tokens_per_s, all->tokens_per_s / one->tokens_per_s);
}

/* ------------------------------------------------------------------------------------------------ */
/* time to the sink */

/* the default run's emergence step of sink_rate_2plus_30 from its summary (the bos variant's when it
 * trains with BOS), or -1 with why[] saying what is missing */
static long default_emergence_step(const TrainConfig *tc, char *path, size_t size, char *why) {
    int bos = tc->bos == BOS_DOC || tc->bos == BOS_PREPEND;
    snprintf(path, size, "%s/%s/%s", tc->out_dir, tc->run_name, bos ? "summary_bos.json" : "summary.json");
    char *text = config_read_file(path, why);
    if (!text) return -1;
    cJSON *summary = cJSON_Parse(text);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(summary, "sink_rate_2plus_30_emergence_step");
    long step = cJSON_IsNumber(v) ? (long)v->valuedouble : -1;
    if (!summary) st_errorf(why, "%s: expected a JSON object, found text that is not JSON", path);
    else if (step < 0) st_errorf(why, "%s: no sink_rate_2plus_30_emergence_step (no sink yet)", path);
    cJSON_Delete(summary);
    free(text);
    return step;
}

static void print_time_to_sink(const Shape *s, StJson *j) {
    char path[1200], why[ST_ERR_LEN];
    long step = default_emergence_step(&s->tc, path, sizeof path, why);
    if (step < 0) {
        printf("\ntime to the sink: not measured: %s (`make run` trains the default run)\n", why);
        return;
    }
    double ms = s->all.ms_step + s->ms_probe_per_step, minutes = step * ms / 60e3;
    printf("\ntime to the sink: the default run's sink emerges at step %ld (%s); at %.0f ms per step with its\n"
           "  probes on %d threads that is %.1f minutes of training\n",
           step, path, ms, s->all.threads, minutes);
    sj_int(j, "default_emergence_step", step);
    sj_num(j, "default_minutes_to_sink", minutes);
}

/* ------------------------------------------------------------------------------------------------ */

static void usage_error(const char *msg, const char *arg) {
    fprintf(stderr, "bench: %s%s (usage: bin/bench [--steps N] [--out FILE] [--quick] [--shape default|bos|guo|moe])\n",
            msg, arg);
    exit(2);
}

/* --data-parallel: 1 rank x N threads against N ranks x 1 thread on the moe shape's batch */
static int bench_data_parallel(int steps) {
    int N = dist_size(), root = dist_is_root();
    if (N == 1) {
        fprintf(stderr, "bench: --data-parallel: expected several MPI ranks, found 1 (build with make MPI=1, then "
                        "mpirun -np 2 bin/bench --data-parallel)\n");
        return 2;
    }
    Shape moe;
    shape_load(&moe, "moe", NULL);
    char err[ST_ERR_LEN];
    int B = moe.tc.batch_size;
    if (dist_check_batch(B, N, err)) usage_error(err, "");
    double load = -1.0;
    getloadavg(&load, 1);
    StepBench one = step_bench_of(&moe, N), dp = step_bench_of(&moe, 1);
    dp.B = B / N, dp.allreduce = 1;
    if (root) bench_steps(&one, 1, steps, 1.0); /* the peak is not measured here: MFU is left out */
    dist_barrier_idle();
    bench_steps(&dp, 1, steps, 1.0);
    if (!root) return 0;
    double all = dp.tokens_per_s * N;
    printf("data parallel, moe shape, global batch %d x %d (load average %.2f on %d cores before)\n", B, one.T, load,
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

/* the peak on every thread and on 1, with a warning when the threads did not run at once */
static void bench_peak(int threads, double *peak, double *peak1, StJson *j) {
    *peak = measure_peak_gflops(threads), *peak1 = measure_peak_gflops(1);
    printf("\npeak FP32 (FMA loop): %.1f GFLOP/s on %d thread%s, %.1f on 1\n", *peak, threads, threads > 1 ? "s" : "",
           *peak1);
    if (*peak < 0.75 * threads * *peak1)
        printf("  warning: %d threads reached only %.2fx the peak of 1: the cores were shared while measuring, so\n"
               "  every share of the peak below is inflated; rerun on a quiet machine\n",
               threads, *peak / *peak1);
    sj_num(j, "peak_gflops", *peak);
    sj_num(j, "peak_gflops_1thread", *peak1);
}

static int write_json(StJson *j, StAtomic *out, const char *out_path) {
    char err[ST_ERR_LEN];
    if (sj_write_line(j, out->f, out->tmp, err) || st_atomic_commit(out, err)) {
        fprintf(stderr, "bench: %s\n", err);
        st_atomic_abort(out);
        return 1;
    }
    sj_free(j);
    printf("wrote %s\n", out_path);
    return 0;
}

/* the whole bench on the current thread count (only_shape: that shape's steps only); every figure
 * to stdout and into j */
static void bench_all(int steps, int quick, const char *only_shape, StJson *j) {
    int threads = omp_get_max_threads();
    double load = -1.0, peak, peak1; /* other processes on the same cores slow every figure below */
    getloadavg(&load, 1);
    printf("sinktrace bench: %d thread%s (OMP_NUM_THREADS), FMA %s; load average %.2f on %d cores before the run\n",
           threads, threads > 1 ? "s" : "", ST_HAVE_FMA ? "on" : "off (portable build)", load, omp_get_num_procs());
    sj_int(j, "threads", threads);
    sj_num(j, "load_average", load);
    sj_bool(j, "fma", ST_HAVE_FMA);
    bench_peak(threads, &peak, &peak1, j);

    Shape shapes[N_BENCH_SHAPES]; /* shapes[0] is the default run's */
    for (int i = 0; i < N_BENCH_SHAPES; i++) shape_load(&shapes[i], bench_shapes[i].name, bench_shapes[i].conf);
    if (!only_shape) bench_gemms(&shapes[0].tc, peak, quick ? 5 : 20, j); /* a few ms each: the best of many */
    for (int i = 0; i < N_BENCH_SHAPES; i++) {
        if (only_shape && strcmp(only_shape, shapes[i].name)) continue;
        bench_shape(&shapes[i], threads, steps, peak, peak1);
        print_shape(&shapes[i]);
        json_shape(j, &shapes[i]);
    }
    if (only_shape && strcmp(only_shape, "default")) return;
    bench_memory_in_t(&shapes[0].tc, threads, j);
    print_time_to_sink(&shapes[0], j);
    if (threads > 1) {
        StepBench all, one;
        bench_shared(&shapes[0], threads, steps, &all, &one);
        sj_num(j, "default_shared_tokens_per_s", all.tokens_per_s);
        sj_num(j, "default_shared_1thread_tokens_per_s", one.tokens_per_s);
        sj_num(j, "default_shared_ratio", all.tokens_per_s / one.tokens_per_s);
    }
}

int main(int argc, char **argv) {
    st_openmp_wait_passively(argv);
    int steps = 5, quick = 0, data_parallel = 0;
    const char *out_path = "bench.json", *value, *only_shape = NULL;
    char err[ST_ERR_LEN];
    if (args_wants_help(argc, argv)) {
        printf("usage: bin/bench [--steps N] [--out FILE] [--quick] [--shape default|bos|guo|moe] [--data-parallel]\n");
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
        } else if (!strcmp(argv[i], "--shape")) {
            if (args_value(argc, argv, i++, &only_shape, err)) usage_error(err, "");
            if (!is_bench_shape(only_shape)) usage_error("--shape: expected default, bos, guo or moe, found ", only_shape);
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
    StJson j = {0};
    sj_begin(&j);
    bench_all(steps, quick, only_shape, &j);
    return write_json(&j, &out, out_path);
}
