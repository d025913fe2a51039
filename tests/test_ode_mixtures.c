/*
 * The flow-ODE integrators on Gaussian mixtures, statistically: samples from every method of
 * ode.h (all 13, plus rk45 in whole-batch mode) under VE, VP and sub-VP (default parameters
 * and ε), on the exact score of two mixtures — ring8 (d = 2, K = 8, weights ∝ 1..8) and
 * random:16,4,2385 (d = 16, K = 4) — compared with exact samples of p_ε by the oracle's
 * metrics (metrics.h). The flow carries p_T to p_ε exactly, so (without the denoising step)
 * an accurate integrator's output is a sample of p_ε, and any discrepancy is integration
 * error.
 *
 * Settings (METHODS[]): the adaptive methods at rtol = atol = 1e-6; the fixed-grid and
 * few-step methods, on their default grids, with enough steps that their bias is far below
 * what the tests resolve: euler 10000, heun 400, rk4 100, ddim 2000, dpm-solver++2m 400,
 * edm-heun 400 (NFE 799). Chosen from a measurement (throwaway program, 400 exact draws of
 * p_T per case, each endpoint against a rtol = atol = 1e-10 rk45 solution from the same
 * start): the mean over samples of log p_ε(endpoint) − log p_ε(reference), the bias of the
 * mean log-density test, is at these settings at most 0.029 nats (euler, random:16,4 under
 * VE; 0.30 with 1000 steps, which DIFFSDE_LONG_TESTS=1 detected), 0.016 (ddim, random:16,4),
 * 0.004 (heun, dpm-solver++2m, edm-heun), 1e-4 (rk4) and 4e-4 (every adaptive method at
 * 1e-6); on ring8 at most 0.027 (euler, VE) and 0.009 (ddim, VE). The test resolves
 * diff_se ≈ 0.18 nats on random:16,4 (n = 500) and ≈ 0.05 on ring8 (n = 1000), half that with
 * DIFFSDE_LONG_TESTS=1. Each run's NFE per sample is printed.
 *
 * Starting points: exact samples of p_T (diffsde_gmm_sample() at T), integrated from T to ε
 * with diffsde_ode_solve(), so that the output is exactly a sample of p_ε up to the
 * integration error. Not the prior (diffsde_ode_sample()): the flow is a bijection, so its
 * output from the prior differs from p_ε by exactly KL(prior ‖ p_T), which is not negligible
 * at these n — measured (2·10⁵ Monte-Carlo draws): ring8 2.7e-4 (VE), 2.8e-5 (VP, sub-VP);
 * random:16,4 4.7e-3 (VE: the mixture's mean, |m̄| = 4.8, against σmax = 50), 5.1e-4 (VP,
 * sub-VP). At n = 20000 rk45 from the prior fails the mean test on random:16,4 under VE
 * (p = 1e-22) and passes from p_T (p = 0.86). That gap is the SDE's, not the integrator's;
 * diffsde_ode_sample() itself is tested in test_ode.c.
 *
 * Sizes and seeds: n = N_RING ring8 samples, n = N_RAND random:16,4 samples (×4 with
 * DIFFSDE_LONG_TESTS=1). Starting points from Philox SEED_X, run r drawing global samples
 * r·2^20 …; metrics noise Philox SEED_M, reference sets from 2^47 + r·2^20: every run sees its
 * own starting points and its own reference set, so the runs are independent checks.
 *
 * Tests per run, the battery of tests/test_sampler_mixtures.c, each at false-alarm rate
 * ≤ 3e-5 for exact samples; with 4 tests × 84 runs the battery raises a false alarm with
 * probability ≤ 336 × 3e-5 ≈ 1% (Bonferroni). The outcome at these fixed seeds is
 * deterministic; the rate says how likely another seed is to fail.
 * - occupancy: no empty component and the Pearson χ² p-value of the mode counts against the
 *   weights > ALPHA = 3e-5 (both mixtures are well separated at t = ε, the components' spread
 *   growing by σ(ε)² ≤ 1.1e-4 only — so the one-sample χ² applies; the smallest expected
 *   count is n w_min = 1000/36 ≈ 28 on ring8);
 * - energy distance to an exact reference set of the same size (m = ENERGY_M points of each,
 *   2 ENERGY_M with DIFFSDE_LONG_TESTS=1)
 *   with its permutation test: fail when none of the first 39999 permutations reaches the
 *   observed statistic (p = 2.5e-5), computed in nested stages (200, 1999, 39999) that stop
 *   as soon as one permutation reaches it — exactly the 39999-permutation test;
 * - sliced W2 (128 directions) to the reference set below SW2_MAX = 0.9: the calibration of
 *   test_sampler_mixtures.c (8000 exact-vs-exact values at these n on p0: ring8 n = 1000
 *   99.9th percentile 0.668, maximum 0.740; random:16,4 n = 500 99.9th percentile 0.646,
 *   maximum 0.774; tail fits P(SW2 > 0.9) ≤ 2.7e-5). p_ε is p0 scaled by α(ε) ≥ 0.9999 and
 *   smoothed by σ(ε)² ≤ 1.1e-4, which moves these quantiles by well under 1%. With
 *   DIFFSDE_LONG_TESTS=1 (4× n) the exact-vs-exact SW2 is smaller, so the threshold is
 *   conservative there;
 * - mean exact log p_ε of the samples against the reference set: |diff| < ZLL = 4.2
 *   diff_se (two-sided normal tail 2.7e-5) — the test most sensitive to integration error
 *   (samples not contracted enough onto the modes, or too much).
 *
 * Power: test_power runs euler with 8 steps on ring8 under VP (its samples' mean log p_ε is
 * 1.9 nats low) and asserts the battery rejects it.
 *
 * Time (-O2, this machine): about 35 s by default (Euler's 10000 steps on random:16,4 are half
 * of it), about 4× that with DIFFSDE_LONG_TESTS=1. Figures in doc/ode-accuracy.md.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include <time.h>

#include "diffsde/metrics.h"
#include "diffsde/ode.h"
#include "mixture_testutil.h"
#include "testutil.h"

#define SEED_X UINT64_C(0x452821e638d01377)
#define SEED_M UINT64_C(0xbe5466cf34e90c6c)
#define N_RING 1000
#define N_RAND 500
#define ENERGY_M 500
#define ALPHA 3e-5
#define ZLL 4.2
#define SW2_MAX 0.9
#define RUN_STRIDE (UINT64_C(1) << 20)
#define TOL 1e-6

enum { RING8, RANDOM };
static const char *const MODELS[2] = {"ring8", "random:16,4,2385"};
static const size_t NSAMP[2] = {N_RING, N_RAND};
static const char *const SDES[3] = {"ve", "vp", "subvp"};

/* One integrator setting: steps for the grid methods, TOL for the adaptive ones. */
typedef struct setting {
    diffsde_ode_method method;
    size_t steps;
    int whole_batch;
} setting;

static const setting METHODS[] = {
    {DIFFSDE_ODE_EULER, 10000, 0},
    {DIFFSDE_ODE_HEUN, 400, 0},
    {DIFFSDE_ODE_RK4, 100, 0},
    {DIFFSDE_ODE_RK45, 0, 0},
    {DIFFSDE_ODE_RK45, 0, 1},
    {DIFFSDE_ODE_CVODE_ADAMS, 0, 0},
    {DIFFSDE_ODE_CVODE_BDF, 0, 0},
    {DIFFSDE_ODE_ARKODE_DP, 0, 0},
    {DIFFSDE_ODE_GSL_RKF45, 0, 0},
    {DIFFSDE_ODE_GSL_RK8PD, 0, 0},
    {DIFFSDE_ODE_GSL_MSADAMS, 0, 0},
    {DIFFSDE_ODE_DDIM, 2000, 0},
    {DIFFSDE_ODE_DPM_SOLVER_PP_2M, 400, 0},
    {DIFFSDE_ODE_EDM_HEUN, 400, 0},
};
#define NSETTINGS (sizeof METHODS / sizeof METHODS[0])

typedef struct fixture {
    diffsde_ctx *ctx;
    diffsde_gmm *gmm[2];
    diffsde_sde *sde[3];
    diffsde_score *score[2][3];
    diffsde_noise *nx, *nm;
    double *x, *ref;
    size_t n[2];
    size_t energy_m;
    int long_tests;
} fixture;

typedef struct result {
    double occ_p, energy_p, sw2, sw2_null, ll_diff, ll_z, nfe, secs;
    size_t empty;
    int pass;
} result;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f || diffsde_ctx_new(&f->ctx, NULL) || diffsde_noise_new_philox(f->ctx, SEED_X, &f->nx) ||
        diffsde_noise_new_philox(f->ctx, SEED_M, &f->nm))
        return -1;
    const char *env = getenv("DIFFSDE_LONG_TESTS");
    f->long_tests = env && *env && strcmp(env, "0") != 0;
    f->energy_m = f->long_tests ? 2 * ENERGY_M : ENERGY_M;
    for (int k = 0; k < 3; k++)
        if (diffsde_sde_new_named(f->ctx, SDES[k], 0, NULL, NULL, &f->sde[k]))
            return -1;
    size_t most = 0;
    for (int m = 0; m < 2; m++) {
        if (diffsde_gmm_new_builtin(f->ctx, MODELS[m], &f->gmm[m]))
            return -1;
        f->n[m] = f->long_tests ? 4 * NSAMP[m] : NSAMP[m];
        size_t nd = f->n[m] * diffsde_gmm_dim(f->gmm[m]);
        most = nd > most ? nd : most;
        for (int k = 0; k < 3; k++)
            if (diffsde_gmm_score_new(f->gmm[m], f->sde[k], &f->score[m][k]))
                return -1;
    }
    if (!(f->x = malloc(most * sizeof(double))) || !(f->ref = malloc(most * sizeof(double))))
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    for (int m = 0; m < 2; m++) {
        for (int k = 0; k < 3; k++)
            diffsde_score_free(f->score[m][k]);
        diffsde_gmm_free(f->gmm[m]);
    }
    for (int k = 0; k < 3; k++)
        diffsde_sde_free(f->sde[k]);
    diffsde_noise_free(f->nx);
    diffsde_noise_free(f->nm);
    diffsde_ctx_free(f->ctx);
    free(f->x);
    free(f->ref);
    free(f);
    return 0;
}

/* Sample with one setting as run number `run` and apply the four tests. */
static void evaluate(fixture *f, int model, int sde, const setting *s, uint64_t run, result *r)
{
    const size_t n = f->n[model], d = diffsde_gmm_dim(f->gmm[model]);
    diffsde_ode_options opt;
    diffsde_ode_options_default(&opt);
    opt.method = s->method;
    opt.whole_batch = s->whole_batch;
    if (diffsde_ode_method_is_adaptive(s->method)) {
        opt.rtol = TOL;
        opt.atol = TOL;
    } else {
        opt.steps = s->steps;
    }
    clock_t c0 = clock();
    double T, eps;
    assert_int_equal(diffsde_sde_time_range(f->sde[sde], NULL, &T), DIFFSDE_OK);
    assert_int_equal(diffsde_sde_default_eps(f->sde[sde], &eps), DIFFSDE_OK);
    diffsde_gmm_eval *ev = NULL;
    assert_int_equal(diffsde_gmm_eval_new(f->gmm[model], f->sde[sde], &ev), DIFFSDE_OK);
    assert_int_equal(diffsde_gmm_sample(ev, f->nx, T, run * RUN_STRIDE, n, f->x), DIFFSDE_OK);
    diffsde_gmm_eval_free(ev);
    diffsde_ode *ode = NULL;
    int st = diffsde_ode_new(f->ctx, f->sde[sde], f->score[model][sde], &opt, &ode);
    if (st == DIFFSDE_OK)
        st = diffsde_ode_solve(ode, T, eps, n, d, f->x);
    if (st != DIFFSDE_OK)
        print_error("%s\n", diffsde_errmsg(f->ctx));
    assert_int_equal(st, DIFFSDE_OK);
    diffsde_ode_stats stats;
    assert_int_equal(diffsde_ode_get_stats(ode, &stats), DIFFSDE_OK);
    diffsde_ode_free(ode);

    diffsde_metrics_options mo = diffsde_metrics_options_default();
    mo.energy_max_points = f->energy_m;
    mo.ref_sample0 = DIFFSDE_METRICS_REF_SAMPLE0 + run * RUN_STRIDE;
    diffsde_metrics m;
    st = diffsde_metrics_compute(f->ctx, f->gmm[model], f->sde[sde], eps, f->nm, n, f->x, &mo,
                                 &m);
    if (st != DIFFSDE_OK)
        print_error("%s\n", diffsde_errmsg(f->ctx));
    assert_int_equal(st, DIFFSDE_OK);
    r->energy_p = mtu_energy_stages(f->ctx, f->nm, f->gmm[model], f->sde[sde], eps,
                                    mo.ref_sample0, f->n[model], f->energy_m, f->x, f->ref,
                                    m.energy.pvalue, m.energy.energy);
    r->occ_p = m.occupancy.pvalue;
    r->empty = m.occupancy.empty;
    r->sw2 = m.sliced_w2;
    r->sw2_null = m.sliced_w2_null;
    r->ll_diff = m.loglik.diff;
    r->ll_z = m.loglik.diff / m.loglik.diff_se;
    r->nfe = stats.nfe_per_sample;
    r->secs = (double)(clock() - c0) / CLOCKS_PER_SEC;
    r->pass = r->empty == 0 && r->occ_p > ALPHA && r->energy_p > 1.5 / 40000 &&
              r->sw2 < SW2_MAX && fabs(r->ll_z) < ZLL;
    char name[64];
    if (diffsde_ode_method_is_adaptive(s->method))
        snprintf(name, sizeof name, "%s%s tol=%g", diffsde_ode_method_name(s->method),
                 s->whole_batch ? " whole-batch" : "", TOL);
    else
        snprintf(name, sizeof name, "%s N=%zu", diffsde_ode_method_name(s->method), s->steps);
    printf("# %-10s %-5s %-28s occ p %8.2e empty %zu | energy p %8.2e | sw2 %.3f (null %.3f) "
           "| loglik %+.4f z %+6.2f | nfe %6.1f | %5.2f s%s\n",
           model == RING8 ? "ring8" : "random16,4", SDES[sde], name, r->occ_p, r->empty,
           r->energy_p, r->sw2, r->sw2_null, r->ll_diff, r->ll_z, r->nfe, r->secs,
           r->pass ? "" : "  FAIL");
}

static void run_model(void **state, int model)
{
    fixture *f = *state;
    int fails = 0, covered[DIFFSDE_ODE_NMETHODS] = {0};
    double total = 0;
    for (int sde = 0; sde < 3; sde++)
        for (size_t i = 0; i < NSETTINGS; i++) {
            result r;
            evaluate(f, model, sde, &METHODS[i], (uint64_t)(model * 3 + sde) * 64 + i, &r);
            total += r.secs;
            fails += !r.pass;
            covered[METHODS[i].method] = 1;
        }
    for (int m = 0; m < DIFFSDE_ODE_NMETHODS; m++)
        assert_true(covered[m]); /* every method of ode.h is in the table */
    printf("# %s: %zu settings × 3 SDEs, n = %zu, %d failures; %.1f s\n", MODELS[model],
           NSETTINGS, f->n[model], fails, total);
    assert_int_equal(fails, 0);
}

static void test_ring8(void **state)
{
    run_model(state, RING8);
}

static void test_random(void **state)
{
    run_model(state, RANDOM);
}

/* The battery has power: Euler with 8 steps is rejected. */
static void test_power(void **state)
{
    fixture *f = *state;
    const setting coarse = {DIFFSDE_ODE_EULER, 8, 0};
    result r;
    evaluate(f, RING8, 1, &coarse, 1000, &r);
    assert_false(r.pass);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ring8),
        cmocka_unit_test(test_random),
        cmocka_unit_test(test_power),
    };
    return cmocka_run_group_tests_name("ode_mixtures", tests, setup, teardown);
}
