/*
 * Speed of reverse-time sampling (issue 4, "Speed"), in one run, each figure printed beside
 * its target:
 *
 * (i)   samples/s of PC sampling (reverse-diffusion predictor + one Langevin corrector step
 *       per level, VP, N = 1000 levels, final denoising step, the exact mixture score of
 *       diffsde_gmm_score_new) on ring8 and random:64,16,1, next to the vectorised NumPy
 *       implementation of the same sampler and score (bench/numpy_sampler.py, run with
 *       /usr/bin/python3 on the same mixture, exported as .npy), and their ratio
 *       (target ≥ 20×). The sample means of both runs are printed as a sanity check.
 * (ii)  ns per standard normal of diffsde_noise_fill_normal (a Philox source, 2^14 draws per
 *       call as rows of d = 2, 64 and 1, best of 3000 calls) and of NumPy's
 *       Generator.standard_normal (ziggurat) into a preallocated array of 10^6 (target ≤ 4 ns).
 * (iii) the solver's own cost per sample·step·dimension with a zero-cost score (a callback
 *       that writes zeros: the reverse-diffusion and Euler–Maruyama arithmetic is exercised
 *       all the same; a Langevin step with a zero score is ε = 0), as a ratio to the floor of
 *       any such solver measured on the same arrays in the same run: per step one noise fill
 *       (diffsde_noise_fill_normal) and one streaming y += a·z (target ≤ 2×). The Langevin
 *       row is compared with two fills and two updates per level.
 * (iv)  calls to the context's allocator made inside steps and the final denoising step
 *       (a counting allocator on the context of every run above; target 0).
 *
 * Usage: bench_sampler [--numpy PATH/numpy_sampler.py] [--quick]
 * --quick divides the sample counts by 10 (a smoke test, not a measurement).
 * NumPy missing (or the script failing) prints "numpy: unavailable" and the ratios as n/a.
 * Threads: OPENBLAS_NUM_THREADS=1 is set for the Python child, and openblas_set_num_threads(1)
 * is called here (`make bench` also exports the variable).
 */
#define _POSIX_C_SOURCE 200809L

#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "diffsde.h"
#include "diffsde/gmm.h"
#include "diffsde/io.h"
#include "diffsde/sampler.h"

#ifndef DIFFSDE_BENCH_NUMPY_SCRIPT
#define DIFFSDE_BENCH_NUMPY_SCRIPT "bench/numpy_sampler.py"
#endif

enum { N_LEVELS = 1000 };

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void die(const char *what, const diffsde_ctx *ctx)
{
    fprintf(stderr, "bench_sampler: %s: %s\n", what, ctx ? diffsde_errmsg(ctx) : "");
    exit(1);
}

/* ---------------------------------------------------------------------------------------- */
/* The counting allocator of (iv). */

typedef struct counter {
    unsigned long calls;
} counter;

static void *count_alloc(size_t size, void *user)
{
    ((counter *)user)->calls++;
    return malloc(size);
}

static void count_release(void *ptr, void *user)
{
    (void)user;
    free(ptr);
}

static diffsde_ctx *counted_ctx(counter *c)
{
    diffsde_allocator al = {count_alloc, count_release, c};
    diffsde_ctx *ctx = NULL;
    if (diffsde_ctx_new(&ctx, &al) != DIFFSDE_OK)
        die("diffsde_ctx_new", NULL);
    return ctx;
}

/* ---------------------------------------------------------------------------------------- */
/* One timed run: init, steps, finish; allocator calls inside steps and finish counted. */

typedef struct run_result {
    double seconds;              /* init + steps + finish */
    double step_seconds;         /* steps only */
    unsigned long step_allocs;   /* allocator calls during steps and finish */
    diffsde_sampler_stats stats;
} run_result;

static run_result timed_run(diffsde_ctx *ctx, counter *cnt, diffsde_sampler *s,
                            const diffsde_noise *noise, size_t n, size_t d, double *x)
{
    run_result r = {0};
    double t0 = now();
    if (diffsde_sampler_init(s, noise, 0, n, d, x) != DIFFSDE_OK)
        die("diffsde_sampler_init", ctx);
    unsigned long a0 = cnt->calls;
    double t1 = now();
    while (!diffsde_sampler_done(s))
        if (diffsde_sampler_step(s, x) != DIFFSDE_OK)
            die("diffsde_sampler_step", ctx);
    double t2 = now();
    if (diffsde_sampler_finish(s, x) != DIFFSDE_OK)
        die("diffsde_sampler_finish", ctx);
    r.step_allocs = cnt->calls - a0;
    r.seconds = now() - t0;
    r.step_seconds = t2 - t1;
    if (diffsde_sampler_get_stats(s, &r.stats) != DIFFSDE_OK)
        die("diffsde_sampler_get_stats", ctx);
    return r;
}

/* ---------------------------------------------------------------------------------------- */
/* NumPy child process. */

/* Write the mixture as DIR/weights.npy (K), means.npy (K, D), covs.npy (K, D·D). */
static void export_mixture(diffsde_ctx *ctx, const diffsde_gmm *gmm, const char *dir)
{
    size_t K = diffsde_gmm_ncomponents(gmm), D = diffsde_gmm_dim(gmm);
    double *w = malloc(K * sizeof *w), *mu = malloc(K * D * sizeof *mu);
    double *cov = malloc(K * D * D * sizeof *cov);
    if (!w || !mu || !cov)
        die("out of memory", NULL);
    for (size_t k = 0; k < K; k++)
        if (diffsde_gmm_component(gmm, k, w + k, mu + k * D, cov + k * D * D) != DIFFSDE_OK)
            die("diffsde_gmm_component", ctx);
    char path[4096];
    snprintf(path, sizeof path, "%s/weights.npy", dir);
    if (diffsde_array_write(ctx, path, 1, K, 1, w) != DIFFSDE_OK)
        die("diffsde_array_write", ctx);
    snprintf(path, sizeof path, "%s/means.npy", dir);
    if (diffsde_array_write(ctx, path, 2, K, D, mu) != DIFFSDE_OK)
        die("diffsde_array_write", ctx);
    snprintf(path, sizeof path, "%s/covs.npy", dir);
    if (diffsde_array_write(ctx, path, 2, K, D * D, cov) != DIFFSDE_OK)
        die("diffsde_array_write", ctx);
    free(w);
    free(mu);
    free(cov);
}

typedef struct numpy_result {
    int ok;
    double value;     /* samples_per_s or ns_per_normal */
    double mean[2];   /* sample mean (first two coordinates) */
    char version[32];
} numpy_result;

/* Run the script with args; read "key value" lines. NaN value when unavailable. */
static numpy_result run_numpy(const char *script, const char *args, const char *key)
{
    numpy_result r = {0};
    r.value = NAN;
    r.mean[0] = r.mean[1] = NAN;
    if (access("/usr/bin/python3", X_OK) != 0 || access(script, R_OK) != 0)
        return r;
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "OPENBLAS_NUM_THREADS=1 /usr/bin/python3 '%s' %s 2>/dev/null",
             script, args);
    fflush(stdout);
    FILE *p = popen(cmd, "r");
    if (!p)
        return r;
    char line[1024];
    size_t klen = strlen(key);
    while (fgets(line, sizeof line, p)) {
        if (strncmp(line, key, klen) == 0 && line[klen] == ' ')
            r.ok = sscanf(line + klen, "%lf", &r.value) == 1;
        else if (strncmp(line, "mean ", 5) == 0)
            sscanf(line + 5, "%lf %lf", &r.mean[0], &r.mean[1]);
        else if (strncmp(line, "numpy_version ", 14) == 0)
            sscanf(line + 14, "%31s", r.version);
    }
    if (pclose(p) != 0)
        r.ok = 0;
    if (!r.ok)
        r.value = NAN;
    return r;
}

/* ---------------------------------------------------------------------------------------- */
/* (i) samples/s against NumPy. */

static void bench_model(const char *model, size_t n, const char *script, const char *tmpdir,
                        unsigned long *allocs_in_steps)
{
    counter cnt = {0};
    diffsde_ctx *ctx = counted_ctx(&cnt);
    diffsde_gmm *gmm = NULL;
    diffsde_sde *sde = NULL;
    diffsde_score *score = NULL;
    diffsde_sampler *s = NULL;
    diffsde_noise *noise = NULL;
    if (diffsde_gmm_new_builtin(ctx, model, &gmm) != DIFFSDE_OK)
        die("diffsde_gmm_new_builtin", ctx);
    if (diffsde_sde_new_vp(ctx, 0.1, 20.0, &sde) != DIFFSDE_OK)
        die("diffsde_sde_new_vp", ctx);
    if (diffsde_gmm_score_new(gmm, sde, &score) != DIFFSDE_OK)
        die("diffsde_gmm_score_new", ctx);
    diffsde_sampler_options opt;
    diffsde_sampler_options_default(&opt);
    opt.steps = N_LEVELS;
    opt.predictor = DIFFSDE_PREDICTOR_REVERSE_DIFFUSION;
    opt.corrector = DIFFSDE_CORRECTOR_LANGEVIN;
    if (diffsde_sampler_new(ctx, sde, score, &opt, &s) != DIFFSDE_OK)
        die("diffsde_sampler_new", ctx);
    if (diffsde_noise_new_philox(ctx, 1, &noise) != DIFFSDE_OK)
        die("diffsde_noise_new_philox", ctx);
    const size_t d = diffsde_gmm_dim(gmm);
    double *x = malloc(n * d * sizeof *x);
    if (!x)
        die("out of memory", NULL);
    double eps = NAN;
    if (diffsde_sde_default_eps(sde, &eps) != DIFFSDE_OK)
        die("diffsde_sde_default_eps", ctx);

    run_result r = timed_run(ctx, &cnt, s, noise, n, d, x);
    *allocs_in_steps += r.step_allocs;
    double mean[2] = {0, 0};
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < 2 && j < d; j++)
            mean[j] += x[i * d + j] / (double)n;
    double rate = (double)n / r.seconds;

    export_mixture(ctx, gmm, tmpdir);
    char args[4608];
    snprintf(args, sizeof args, "sample '%s' %zu %d %.17g %.17g 1", tmpdir, n, N_LEVELS, eps,
             0.01);
    numpy_result np = run_numpy(script, args, "samples_per_s");
    double exact[2] = {NAN, NAN}, *m0 = malloc(d * sizeof *m0);
    if (m0 && diffsde_gmm_moments(gmm, NULL, 0.0, m0, NULL) == DIFFSDE_OK) {
        exact[0] = m0[0];
        exact[1] = d > 1 ? m0[1] : NAN;
    }
    free(m0);
    const double nfe = r.stats.nfe_per_sample;
    printf("%-16s %6zu %4.0f %12.1f %12.1f %10.2f   %s\n", model, n, nfe, rate, np.value,
           rate / np.value, "≥ 20×");
    printf("%-16s   per sample and score evaluation, sampler included: diffsde %.0f ns, "
           "numpy %.0f ns\n",
           "", 1e9 / (rate * nfe), 1e9 / (np.value * nfe));
    printf("%-16s   sample mean (x1, x2): diffsde (%.3f, %.3f), numpy (%.3f, %.3f), exact "
           "(%.3f, %.3f)\n",
           "", mean[0], d > 1 ? mean[1] : NAN, np.mean[0], np.mean[1], exact[0], exact[1]);

    free(x);
    diffsde_noise_free(noise);
    diffsde_sampler_free(s);
    diffsde_score_free(score);
    diffsde_sde_free(sde);
    diffsde_gmm_free(gmm);
    diffsde_ctx_free(ctx);
}

/* ---------------------------------------------------------------------------------------- */
/* (ii) ns per standard normal. */

/* Best of 3000 fills of 2^14 draws as (2^14/d) × d, the step varying. */
static double ns_per_normal(size_t d)
{
    enum { CALL = 1 << 14 };
    diffsde_ctx *ctx = NULL;
    diffsde_noise *noise = NULL;
    if (diffsde_ctx_new(&ctx, NULL) != DIFFSDE_OK)
        die("diffsde_ctx_new", NULL);
    if (diffsde_noise_new_philox(ctx, 2385, &noise) != DIFFSDE_OK)
        die("diffsde_noise_new_philox", ctx);
    const size_t n = CALL / d;
    double *z = malloc(CALL * sizeof *z), best = INFINITY, sink = 0.0;
    if (!z)
        die("out of memory", NULL);
    for (uint64_t step = 0; step < 3000; step++) {
        double t0 = now();
        if (diffsde_noise_fill_normal(noise, DIFFSDE_STREAM_PREDICTOR, step, 0, n, d, z) !=
            DIFFSDE_OK)
            die("diffsde_noise_fill_normal", ctx);
        double dt = now() - t0;
        sink += z[step % (n * d)];
        if (dt < best)
            best = dt;
    }
    free(z);
    diffsde_noise_free(noise);
    diffsde_ctx_free(ctx);
    if (sink == 12345.0) /* keep the fills */
        printf(" ");
    return best / (double)(n * d) * 1e9;
}

/* ---------------------------------------------------------------------------------------- */
/* (iii) the solver's own cost. */

static int zero_score(size_t n, size_t d, const double *t, const double *x, double *out,
                      void *user)
{
    (void)t;
    (void)x;
    (void)user;
    memset(out, 0, n * d * sizeof *out);
    return 0;
}

typedef struct floor_job {
    const diffsde_noise *noise;
    size_t n, d, fills; /* fills (and updates) per step */
    double *y, *z;
} floor_job;

/* The floor: per step `fills` noise fills and as many streaming y += a·z, N_LEVELS steps. */
static double floor_seconds(const floor_job *f)
{
    const size_t nd = f->n * f->d;
    double t0 = now();
    for (size_t i = 0; i < N_LEVELS; i++)
        for (size_t k = 0; k < f->fills; k++) {
            if (diffsde_noise_fill_normal(f->noise, DIFFSDE_STREAM_PREDICTOR, i * f->fills + k,
                                          0, f->n, f->d, f->z) != DIFFSDE_OK)
                die("diffsde_noise_fill_normal", NULL);
            const double a = 0.999 + 1e-6 * (double)i;
            for (size_t j = 0; j < nd; j++)
                f->y[j] += a * f->z[j];
        }
    return now() - t0;
}

static void bench_solver(unsigned long *allocs_in_steps)
{
    enum { NS = 1024, D = 16, REPS = 5 };
    counter cnt = {0};
    diffsde_ctx *ctx = counted_ctx(&cnt);
    diffsde_sde *sde = NULL;
    diffsde_score *score = NULL;
    diffsde_noise *noise = NULL;
    if (diffsde_sde_new_vp(ctx, 0.1, 20.0, &sde) != DIFFSDE_OK)
        die("diffsde_sde_new_vp", ctx);
    if (diffsde_score_new(ctx, zero_score, NULL, DIFFSDE_PARAM_SCORE, &score) != DIFFSDE_OK)
        die("diffsde_score_new", ctx);
    if (diffsde_noise_new_philox(ctx, 7, &noise) != DIFFSDE_OK)
        die("diffsde_noise_new_philox", ctx);
    double *x = malloc(NS * D * sizeof *x), *y = calloc(NS * D, sizeof *y);
    double *z = malloc(NS * D * sizeof *z);
    if (!x || !y || !z)
        die("out of memory", NULL);
    static const struct {
        diffsde_predictor p;
        diffsde_corrector c;
        size_t fills;
    } rows[] = {
        {DIFFSDE_PREDICTOR_REVERSE_DIFFUSION, DIFFSDE_CORRECTOR_NONE, 1},
        {DIFFSDE_PREDICTOR_EULER_MARUYAMA, DIFFSDE_CORRECTOR_NONE, 1},
        {DIFFSDE_PREDICTOR_REVERSE_DIFFUSION, DIFFSDE_CORRECTOR_LANGEVIN, 2},
    };
    printf("%-34s %14s %14s %8s   %s\n", "solver (n = 1024, d = 16, N = 1000)", "ns/(smp·stp·d)",
           "floor", "ratio", "target");
    for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
        diffsde_sampler_options opt;
        diffsde_sampler_options_default(&opt);
        opt.steps = N_LEVELS;
        opt.predictor = rows[r].p;
        opt.corrector = rows[r].c;
        diffsde_sampler *s = NULL;
        if (diffsde_sampler_new(ctx, sde, score, &opt, &s) != DIFFSDE_OK)
            die("diffsde_sampler_new", ctx);
        floor_job f = {noise, NS, D, rows[r].fills, y, z};
        double best_solver = INFINITY, best_floor = INFINITY;
        for (int rep = 0; rep < REPS; rep++) { /* interleaved, best of REPS each */
            run_result rr = timed_run(ctx, &cnt, s, noise, NS, D, x);
            *allocs_in_steps += rr.step_allocs;
            if (rr.step_seconds < best_solver)
                best_solver = rr.step_seconds;
            double fl = floor_seconds(&f);
            if (fl < best_floor)
                best_floor = fl;
        }
        const double per = 1e9 / ((double)N_LEVELS * NS * D);
        char name[64];
        snprintf(name, sizeof name, "%s + %s", diffsde_predictor_name(rows[r].p),
                 diffsde_corrector_name(rows[r].c));
        printf("%-34s %14.3f %14.3f %8.2f   ≤ 2×  (floor: %zu fill%s + %zu y += a·z per level)\n",
               name, best_solver * per, best_floor * per, best_solver / best_floor, rows[r].fills,
               rows[r].fills > 1 ? "s" : "", rows[r].fills);
        diffsde_sampler_free(s);
    }
    free(x);
    free(y);
    free(z);
    diffsde_noise_free(noise);
    diffsde_score_free(score);
    diffsde_sde_free(sde);
    diffsde_ctx_free(ctx);
}

/* ---------------------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    const char *script = DIFFSDE_BENCH_NUMPY_SCRIPT;
    int quick = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--numpy") == 0 && i + 1 < argc)
            script = argv[++i];
        else if (strcmp(argv[i], "--quick") == 0)
            quick = 1;
        else {
            fprintf(stderr, "usage: %s [--numpy PATH/numpy_sampler.py] [--quick]\n", argv[0]);
            return 2;
        }
    }
    setenv("OPENBLAS_NUM_THREADS", "1", 1);
    openblas_set_num_threads(1);
    char tmpdir[] = "/tmp/bench_sampler.XXXXXX";
    if (!mkdtemp(tmpdir))
        die("mkdtemp", NULL);
    printf("bench_sampler: diffsde %s, OpenBLAS threads %d, NumPy script %s\n",
           diffsde_version_string(), openblas_get_num_threads(), script);

    numpy_result npn = run_numpy(script, "normals", "ns_per_normal");
    if (!npn.ok)
        printf("numpy: unavailable\n");
    else
        printf("numpy %s\n", npn.version);
    unsigned long allocs = 0;

    printf("\n(i) PC sampling, VP, reverse-diffusion + langevin (K = 1, snr 0.01), N = %d, "
           "denoised\n",
           N_LEVELS);
    printf("%-16s %6s %4s %12s %12s %10s   %s\n", "model", "n", "nfe", "diffsde/s", "numpy/s",
           "ratio", "target");
    bench_model("ring8", quick ? 1000 : 10000, script, tmpdir, &allocs);
    bench_model("random:64,16,1", quick ? 25 : 256, script, tmpdir, &allocs);

    printf("\n(ii) one standard normal (Philox4x32-10 + AS 241 fills of 2^14 draws)\n");
    double ns = ns_per_normal(2);
    printf("diffsde_noise_fill_normal, d = 2:           %6.2f ns   target ≤ 4 ns\n", ns);
    printf("diffsde_noise_fill_normal, d = 64:          %6.2f ns   target ≤ 4 ns\n",
           ns_per_normal(64));
    printf("diffsde_noise_fill_normal, d = 1:           %6.2f ns   target ≤ 4 ns (half of each "
           "Philox block unused)\n",
           ns_per_normal(1));
    printf("numpy Generator.standard_normal (ziggurat): %6.2f ns   (%.1f× the d = 2 figure)\n",
           npn.value, npn.value / ns);

    printf("\n(iii) solver's own cost, zero-cost score\n");
    bench_solver(&allocs);

    printf("\n(iv) allocator calls inside steps and finish, all runs above: %lu   target 0\n",
           allocs);
    char path[4096];
    const char *files[] = {"weights.npy", "means.npy", "covs.npy"};
    for (size_t k = 0; k < 3; k++) {
        snprintf(path, sizeof path, "%s/%s", tmpdir, files[k]);
        remove(path);
    }
    rmdir(tmpdir);
    return allocs == 0 ? 0 : 1;
}
