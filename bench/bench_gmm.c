/*
 * Throughput of the Gaussian-mixture oracle (diffsde_gmm_evaluate, score + log p at one t)
 * against a straightforward per-point implementation, on random:D,K,SEED models under VP at
 * t = 0.5. Prints tables; asserts nothing.
 *
 * Table 1, for (n, D, K) = (10^4, 2, 8), (10^4, 64, 16), (10^3, 1024, 4):
 * - points/s of diffsde_gmm_evaluate (the factors already cached: the first call is untimed);
 * - points/s of the reference loop: for each point, for each component, r = x − αμ_k, then
 *   cblas_dtrsv forward (L y = r) and back (Lᵀ z = y) substitution with the SAME cached
 *   factors (read from the evaluator), then log-sum-exp and s = Σ γ_k (−z_k) — what a naive
 *   implementation does; and the speed-up;
 * - GFLOP/s of the evaluation, counting only the two triangular solves per point per
 *   component, D² flops each (D(D−1)/2 multiply-adds plus D divisions ≈ D² flops), i.e.
 *   2 n K D² flops per call (the O(n K D) residuals and accumulations are not counted);
 * - that rate as a fraction of cblas_dgemm measured in the same run on the shape of the
 *   batched solves (256 × D times D × D), and of a 1024³ dgemm (the machine's peak);
 * - the largest relative difference between the two implementations' scores (a sanity check).
 *
 * Table 2: the hand-written small-D path against the dtrsm path (the evaluator's
 * small_dim_max switched between them) for D = 1..32, K = 8, n = 10^4: the measured
 * crossover is what DIFFSDE_I_GMM_SMALL_DIM (gmm_impl.h) is set from.
 *
 * Threads: OpenBLAS reads OPENBLAS_NUM_THREADS when the library is loaded, before main(), so
 * the environment variable is set here for completeness and openblas_set_num_threads(1) is
 * called before the first BLAS call; the thread count reported is openblas_get_num_threads().
 * (`make bench` also exports OPENBLAS_NUM_THREADS=1.)
 */
#define _POSIX_C_SOURCE 200809L

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "diffsde.h"
#include "diffsde/gmm.h"
#include "gmm/gmm_impl.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void die(const char *what, diffsde_ctx *ctx)
{
    fprintf(stderr, "bench_gmm: %s: %s\n", what, ctx ? diffsde_errmsg(ctx) : "");
    exit(1);
}

/* Seconds per call of fn(arg): best of 3 rounds of enough calls to last ≥ 0.2 s. */
static double time_per_call(void (*fn)(void *), void *arg)
{
    double best = INFINITY;
    for (int round = 0; round < 3; round++) {
        long calls = 0;
        double t0 = now(), el;
        do {
            fn(arg);
            calls++;
            el = now() - t0;
        } while (el < 0.2);
        if (el / (double)calls < best)
            best = el / (double)calls;
    }
    return best;
}

typedef struct job {
    diffsde_ctx *ctx;
    diffsde_gmm_eval *ev;
    const diffsde_gmm *gmm;
    size_t n, D, K;
    double *t, *x, *logp, *score;
    /* reference scratch */
    double *r, *z, *a;
    /* dgemm */
    double *A, *B, *C;
    size_t gm, gn, gk;
} job;

static void run_eval(void *p)
{
    job *j = p;
    if (diffsde_gmm_evaluate(j->ev, j->n, j->t, j->x, j->logp, j->score, NULL, NULL) != 0)
        die("diffsde_gmm_evaluate", j->ctx);
}

/* The naive implementation, with the evaluator's cached factors for t = j->t[0]. */
static void run_reference(void *p)
{
    job *j = p;
    const diffsde_i_gmm_factor *f = NULL;
    for (int s = 0; s < DIFFSDE_I_GMM_SLOTS; s++)
        if (j->ev->slot[s].valid && j->ev->slot[s].t == j->t[0])
            f = &j->ev->slot[s];
    if (!f)
        die("reference: the factors are not cached", NULL);
    size_t D = j->D, K = j->K;
    for (size_t i = 0; i < j->n; i++) {
        const double *x = j->x + i * D;
        double m = -INFINITY;
        for (size_t k = 0; k < K; k++) {
            const double *mu = j->gmm->mean + k * D, *L = f->L + k * D * D;
            double *z = j->z + k * D, q = 0;
            for (size_t c = 0; c < D; c++)
                z[c] = x[c] - f->alpha * mu[c];
            cblas_dtrsv(CblasRowMajor, CblasLower, CblasNoTrans, CblasNonUnit, (int)D, L, (int)D, z,
                        1);
            for (size_t c = 0; c < D; c++)
                q += z[c] * z[c];
            cblas_dtrsv(CblasRowMajor, CblasLower, CblasTrans, CblasNonUnit, (int)D, L, (int)D, z,
                        1);
            j->a[k] = f->logc[k] - 0.5 * q;
            if (j->a[k] > m)
                m = j->a[k];
        }
        double sum = 0;
        for (size_t k = 0; k < K; k++)
            sum += exp(j->a[k] - m);
        double lp = m + log(sum), *s = j->r + i * D;
        j->logp[i] = lp;
        memset(s, 0, D * sizeof(double));
        for (size_t k = 0; k < K; k++) {
            double g = exp(j->a[k] - lp);
            for (size_t c = 0; c < D; c++)
                s[c] -= g * j->z[k * D + c];
        }
    }
}

static void run_dgemm(void *p)
{
    job *j = p;
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)j->gm, (int)j->gn, (int)j->gk, 1.0,
                j->A, (int)j->gk, j->B, (int)j->gn, 0.0, j->C, (int)j->gn);
}

/* GFLOP/s of an m × k by k × n dgemm (2 m n k flops). */
static double dgemm_rate(size_t m, size_t n, size_t k)
{
    job j = {0};
    j.gm = m, j.gn = n, j.gk = k;
    j.A = malloc(m * k * sizeof(double));
    j.B = malloc(k * n * sizeof(double));
    j.C = malloc(m * n * sizeof(double));
    if (!j.A || !j.B || !j.C)
        die("out of memory", NULL);
    for (size_t i = 0; i < m * k; i++)
        j.A[i] = sin((double)i);
    for (size_t i = 0; i < k * n; i++)
        j.B[i] = cos((double)i);
    double sec = time_per_call(run_dgemm, &j);
    free(j.A), free(j.B), free(j.C);
    return 2.0 * (double)m * (double)n * (double)k / sec * 1e-9;
}

/* Set up a job on random:D,K,SEED with n points (exact samples of p_t) at t = 0.5. */
static void job_init(job *j, diffsde_ctx *ctx, const diffsde_sde *sde, size_t n, size_t D, size_t K,
                     diffsde_gmm **gmm)
{
    char name[64];
    snprintf(name, sizeof name, "random:%zu,%zu,%d", D, K, 2025);
    if (diffsde_gmm_new_builtin(ctx, name, gmm))
        die(name, ctx);
    memset(j, 0, sizeof *j);
    j->ctx = ctx, j->gmm = *gmm, j->n = n, j->D = D, j->K = K;
    if (diffsde_gmm_eval_new(*gmm, sde, &j->ev))
        die("diffsde_gmm_eval_new", ctx);
    j->t = malloc(n * sizeof(double));
    j->x = malloc(n * D * sizeof(double));
    j->logp = malloc(n * sizeof(double));
    j->score = malloc(n * D * sizeof(double));
    j->r = malloc(n * D * sizeof(double));
    j->z = malloc(K * D * sizeof(double));
    j->a = malloc(K * sizeof(double));
    if (!j->t || !j->x || !j->logp || !j->score || !j->r || !j->z || !j->a)
        die("out of memory", NULL);
    for (size_t i = 0; i < n; i++)
        j->t[i] = 0.5;
    diffsde_noise *noise;
    if (diffsde_noise_new_philox(ctx, 7, &noise) ||
        diffsde_gmm_sample(j->ev, noise, 0.5, 0, n, j->x))
        die("sampling the points", ctx);
    diffsde_noise_free(noise);
    run_eval(j); /* factorise (untimed) */
}

static void job_free(job *j, diffsde_gmm *gmm)
{
    diffsde_gmm_eval_free(j->ev);
    diffsde_gmm_free(gmm);
    free(j->t), free(j->x), free(j->logp), free(j->score), free(j->r), free(j->z), free(j->a);
}

int main(void)
{
    setenv("OPENBLAS_NUM_THREADS", "1", 1);
    openblas_set_num_threads(1);
    diffsde_ctx *ctx;
    diffsde_sde *sde;
    if (diffsde_ctx_new(&ctx, NULL) || diffsde_sde_new_vp(ctx, 0.1, 20, &sde))
        die("setup", NULL);
    printf("bench_gmm: OpenBLAS threads %d (%s); VP (0.1, 20) at t = 0.5; models random:D,K,2025;\n"
           "evaluation = score + log p; flops = 2 n K D^2 (two triangular solves of D^2 flops per "
           "point and component)\n\n",
           openblas_get_num_threads(), openblas_get_config());
    double peak = dgemm_rate(1024, 1024, 1024);
    printf("dgemm 1024^3: %.2f GFLOP/s\n\n", peak);

    static const size_t cases[3][3] = {{10000, 2, 8}, {10000, 64, 16}, {1000, 1024, 4}};
    printf("%6s %5s %3s | %12s %12s %8s | %8s %10s %8s %8s | %9s\n", "n", "D", "K", "eval pts/s",
           "naive pts/s", "speedup", "GFLOP/s", "dgemm(shp)", "frac", "frac1024", "max rdiff");
    for (int c = 0; c < 3; c++) {
        size_t n = cases[c][0], D = cases[c][1], K = cases[c][2];
        job j;
        diffsde_gmm *gmm;
        job_init(&j, ctx, sde, n, D, K, &gmm);
        double te = time_per_call(run_eval, &j);
        double tr = time_per_call(run_reference, &j);
        run_eval(&j);
        double md = 0;
        for (size_t i = 0; i < n; i++) {
            double nrm = 0, e = 0;
            for (size_t k = 0; k < D; k++) {
                nrm = fmax(nrm, fabs(j.score[i * D + k]));
                e = fmax(e, fabs(j.score[i * D + k] - j.r[i * D + k]));
            }
            md = fmax(md, e / nrm);
        }
        double gf = 2.0 * (double)n * (double)K * (double)D * (double)D / te * 1e-9;
        double shp = dgemm_rate(DIFFSDE_I_GMM_BLOCK, D, D);
        printf("%6zu %5zu %3zu | %12.4g %12.4g %8.2f | %8.3f %10.2f %8.3f %8.3f | %9.2e\n", n, D, K,
               (double)n / te, (double)n / tr, tr / te, gf, shp, gf / shp, gf / peak, md);
        job_free(&j, gmm);
    }

    printf("\nsmall-D path (hand-written substitutions) vs dtrsm path, n = 10000, K = 8:\n");
    printf("%5s | %14s %14s %8s\n", "D", "hand pts/s", "dtrsm pts/s", "hand/blas");
    static const size_t dims[] = {1, 2, 3, 4, 6, 8, 10, 12, 16, 24, 32};
    for (size_t c = 0; c < sizeof dims / sizeof dims[0]; c++) {
        job j;
        diffsde_gmm *gmm;
        job_init(&j, ctx, sde, 10000, dims[c], 8, &gmm);
        j.ev->small_dim_max = (size_t)-1;
        double th = time_per_call(run_eval, &j);
        j.ev->small_dim_max = 0;
        double tb = time_per_call(run_eval, &j);
        printf("%5zu | %14.4g %14.4g %8.2f\n", dims[c], 1e4 / th, 1e4 / tb, tb / th);
        job_free(&j, gmm);
    }
    printf("(the library uses the hand-written path for D <= %d)\n", DIFFSDE_I_GMM_SMALL_DIM);
    diffsde_sde_free(sde);
    diffsde_ctx_free(ctx);
    return 0;
}
