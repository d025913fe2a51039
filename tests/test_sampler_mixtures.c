/*
 * The samplers on Gaussian mixtures, statistically: every predictor × corrector combination
 * at N = 1000 levels under VE, VP and sub-VP (default parameters, ε, snr and grid, one
 * corrector step per level, final denoising on), on the exact score of two mixtures — ring8
 * (d = 2, K = 8, weights ∝ 1..8) and random:16,4,2385 (d = 16, K = 4) — compared with exact
 * samples of p0 by the oracle's metrics (metrics.h).
 *
 * Combinations: predictors none, euler-maruyama, reverse-diffusion, ancestral (VE and VP only)
 * × correctors none, langevin, ald, mala (the exact score has the log-density), none + none
 * excluded: 15 + 15 + 11 = 41 per model, 82 in all, every one run by default.
 *
 * Sizes and seeds: n = N_RING ring8 samples, n = N_RAND random:16,4 samples; NFE per sample
 * 1001 without a corrector, 2001 with langevin or ald, 3001 with mala (K = 1), each printed.
 * Sampler noise Philox SEED_X, run number r drawing global samples r·2^20 … ; metrics noise
 * Philox SEED_M, reference sets from 2^47 + r·2^20 (runs are independent of each other).
 *
 * Tests per run, each at false-alarm rate ≤ 3e-5 for exact samples; with 4 tests × 82
 * combinations the battery raises a false alarm with probability ≤ 328 × 3e-5 ≈ 1%
 * (Bonferroni; the remedy runs below add 4 × 3e-5 each). The outcome at these fixed seeds is
 * deterministic; the rate says how likely another seed is to fail.
 * - occupancy: no empty component and the Pearson χ² p-value of the mode counts against the
 *   weights > ALPHA = 3e-5 (both mixtures are well separated at t = 0 — ambiguity ≈ 0 — so
 *   the one-sample χ² applies; the smallest expected count is n w_min = 1000/36 ≈ 28);
 * - energy distance to an exact reference set of the same size (m = ENERGY_M points of each,
 *   even striding) with its permutation test: fail when none of the first B2 = 39999
 *   permutations reaches the observed statistic (p = 1/40000 = 2.5e-5). Computed in nested
 *   stages — 200 permutations (diffsde_metrics_compute), then 1999, then 39999 — stopping as
 *   soon as one permutation reaches the statistic: permutation b is the same in every call,
 *   so this is exactly the 39999-permutation test at a fraction of its cost;
 * - sliced W2 (128 directions) to the reference set below SW2_MAX = 0.9, read beside its
 *   yardstick sliced_w2_null. Calibrated on exact samples (throwaway runs, 8000 values at
 *   the n used here): ring8 n = 1000 mean 0.329, sd 0.085, 99.9th percentile 0.668, maximum
 *   0.740; random:16,4 n = 500 mean 0.305, sd 0.086, 99.9th percentile 0.646, maximum 0.774.
 *   Tail fits put P(SW2 > 0.9) at 2e-8 (gamma fit to SW2²) to 1.5e-5 and 2.7e-5
 *   (exponential fit to the top 10%). (The ratio sliced_w2 / sliced_w2_null, printed, is a
 *   poor test statistic: its random denominator gives it a heavy tail, P(ratio > 3) ≈ 1e-3.)
 * - mean exact log-density of the samples against the reference set: |diff| < ZLL = 4.2
 *   diff_se (two-sided normal tail 2.7e-5): samples too spread, too concentrated or between
 *   modes. This test is the most sensitive to the step-size and per-sample-norm biases below.
 *
 * Known failures (KNOWN[]; the method, not the implementation — explained with the measured
 * figures in doc/sampler-accuracy.md): run and reported, not asserted. For each one a remedy
 * run — the same predictor and corrector with a sound step (batch-averaged Langevin norms, a
 * larger snr, more corrector steps) — must pass all four tests; by default the remedies
 * marked `dflt` run, DIFFSDE_LONG_TESTS=1 runs all of them.
 * - the Langevin corrector with per-sample norms (the default): its step ε(x) = 2a snr²
 *   ‖z‖²/‖s(x)‖² depends on the state, and Langevin dynamics with a state-dependent step h(x)
 *   leaves p_t/h(x) ∝ p_t ‖s‖² invariant, not p_t — mass pushed away from the modes' centres
 *   (and kicks of size ∝ 1/‖s‖ near them). Fails on ring8 with every predictor, and on
 *   random:16,4 under VE (snr 0.16); passes on random:16,4 under VP and sub-VP, where the
 *   default snr 0.01 makes the corrector weak (asserted);
 * - corrector-only sampling (predictor none), one step per level: with the default snr the
 *   correctors cannot follow p_t down the 1000 levels (VP and sub-VP: steps 2a(0.01 σ)²
 *   barely move the prior), and the unadjusted ones (langevin, ald) keep a step-size bias.
 *
 * Time (-O2, this machine): ~50 s by default, ~95 s with DIFFSDE_LONG_TESTS=1 (ASan+UBSan:
 * ~120 s by default).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include <time.h>

#include "diffsde/sampler.h"
#include "mixture_testutil.h"
#include "testutil.h"

#define SEED_X UINT64_C(0x243f6a8885a308d3)
#define SEED_M UINT64_C(0x13198a2e03707344)
#define NLEV 1000
#define N_RING 1000
#define N_RAND 500
#define ENERGY_M 500
#define ALPHA 3e-5
#define ZLL 4.2
#define SW2_MAX 0.9
#define RUN_STRIDE (UINT64_C(1) << 20)

enum { RING8, RANDOM };
enum { VE, VP, SUBVP };
#define NONE_P DIFFSDE_PREDICTOR_NONE
#define EM DIFFSDE_PREDICTOR_EULER_MARUYAMA
#define RD DIFFSDE_PREDICTOR_REVERSE_DIFFUSION
#define ANC DIFFSDE_PREDICTOR_ANCESTRAL
#define LANG DIFFSDE_CORRECTOR_LANGEVIN
#define ALD DIFFSDE_CORRECTOR_ALD
#define MALA DIFFSDE_CORRECTOR_MALA

static const char *const MODELS[2] = {"ring8", "random:16,4,2385"};
static const size_t NSAMP[2] = {N_RING, N_RAND};
static const char *const SDES[3] = {"ve", "vp", "subvp"};

/* One run: a combination, with the step settings of a remedy where given. */
typedef struct combo {
    int model, sde;
    diffsde_predictor p;
    diffsde_corrector c;
    double snr;      /* 0: the default */
    size_t K;        /* corrector steps per level; 0: 1 */
    int batch_norms; /* 1: batch-averaged Langevin norms */
} combo;

/* Known failures and their remedies (the remedy: the same p and c with snr, K, batch). */
typedef struct known {
    int model, sde;
    diffsde_predictor p;
    diffsde_corrector c;
    double snr;
    size_t K;
    int batch_norms;
    int dflt; /* remedy run by default (else only with DIFFSDE_LONG_TESTS=1) */
} known;

static const known KNOWN[] = {
    /* per-sample Langevin norms, with a predictor */
    {RING8, VE, EM, LANG, 0, 0, 1, 0},
    {RING8, VE, RD, LANG, 0, 0, 1, 1},
    {RING8, VE, ANC, LANG, 0, 0, 1, 0},
    {RING8, VP, EM, LANG, 0, 0, 1, 0},
    {RING8, VP, RD, LANG, 0, 0, 1, 0},
    {RING8, VP, ANC, LANG, 0, 0, 1, 0},
    {RING8, SUBVP, EM, LANG, 0, 0, 1, 0},
    {RING8, SUBVP, RD, LANG, 0, 0, 1, 0},
    {RANDOM, VE, EM, LANG, 0.04, 0, 1, 0},
    {RANDOM, VE, RD, LANG, 0.04, 0, 1, 1},
    {RANDOM, VE, ANC, LANG, 0.04, 0, 1, 0},
    /* corrector only */
    {RING8, VE, NONE_P, LANG, 0, 0, 1, 0},
    {RING8, VE, NONE_P, ALD, 0.3, 5, 0, 0},
    {RING8, VE, NONE_P, MALA, 0.3, 0, 0, 0},
    {RING8, VP, NONE_P, LANG, 0.15, 10, 1, 0},
    {RING8, VP, NONE_P, ALD, 0.5, 5, 0, 0},
    {RING8, VP, NONE_P, MALA, 1.0, 0, 0, 1},
    {RING8, SUBVP, NONE_P, LANG, 0.15, 10, 1, 0},
    {RING8, SUBVP, NONE_P, ALD, 0.5, 5, 0, 0},
    {RING8, SUBVP, NONE_P, MALA, 1.0, 0, 0, 0},
    {RANDOM, VE, NONE_P, LANG, 0.08, 5, 1, 0},
    {RANDOM, VE, NONE_P, ALD, 0.1, 20, 0, 0},
    {RANDOM, VE, NONE_P, MALA, 0.5, 5, 0, 0},
    {RANDOM, VP, NONE_P, LANG, 0.15, 10, 1, 0},
    {RANDOM, VP, NONE_P, ALD, 0.15, 10, 0, 0},
    {RANDOM, VP, NONE_P, MALA, 0.6, 3, 0, 0},
    {RANDOM, SUBVP, NONE_P, LANG, 0.15, 10, 1, 0},
    {RANDOM, SUBVP, NONE_P, ALD, 0.15, 10, 0, 0},
    {RANDOM, SUBVP, NONE_P, MALA, 0.7, 3, 0, 0},
};
#define NKNOWN (sizeof KNOWN / sizeof KNOWN[0])

typedef struct fixture {
    diffsde_ctx *ctx;
    diffsde_gmm *gmm[2];
    diffsde_sde *sde[3];
    diffsde_score *score[2][3];
    diffsde_noise *nx, *nm;
    double *x, *ref;
    int long_tests;
} fixture;

typedef struct result {
    double occ_p, energy_p, sw2, sw2_null, ll_z, nfe, acc_rate, secs;
    size_t empty;
    int pass;
} result;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f || diffsde_ctx_new(&f->ctx, NULL) || diffsde_noise_new_philox(f->ctx, SEED_X, &f->nx) ||
        diffsde_noise_new_philox(f->ctx, SEED_M, &f->nm))
        return -1;
    for (int k = 0; k < 3; k++)
        if (diffsde_sde_new_named(f->ctx, SDES[k], 0, NULL, NULL, &f->sde[k]))
            return -1;
    size_t most = 0;
    for (int m = 0; m < 2; m++) {
        if (diffsde_gmm_new_builtin(f->ctx, MODELS[m], &f->gmm[m]))
            return -1;
        size_t nd = NSAMP[m] * diffsde_gmm_dim(f->gmm[m]);
        most = nd > most ? nd : most;
        for (int k = 0; k < 3; k++)
            if (diffsde_gmm_score_new(f->gmm[m], f->sde[k], &f->score[m][k]))
                return -1;
    }
    if (!(f->x = malloc(most * sizeof(double))) || !(f->ref = malloc(most * sizeof(double))))
        return -1;
    const char *env = getenv("DIFFSDE_LONG_TESTS");
    f->long_tests = env && *env && strcmp(env, "0") != 0;
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

static const char *combo_name(const combo *c, char *buf, size_t len)
{
    int k = snprintf(buf, len, "%s %s %s+%s", c->model == RING8 ? "ring8" : "random16,4",
                     SDES[c->sde], diffsde_predictor_name(c->p), diffsde_corrector_name(c->c));
    if (c->snr > 0)
        k += snprintf(buf + k, len - (size_t)k, " snr=%g", c->snr);
    if (c->K > 1)
        k += snprintf(buf + k, len - (size_t)k, " K=%zu", c->K);
    if (c->batch_norms)
        snprintf(buf + k, len - (size_t)k, " batch");
    return buf;
}

static const known *find_known(const combo *c)
{
    for (size_t i = 0; i < NKNOWN; i++)
        if (KNOWN[i].model == c->model && KNOWN[i].sde == c->sde && KNOWN[i].p == c->p &&
            KNOWN[i].c == c->c)
            return &KNOWN[i];
    return NULL;
}

/* Run one combination as run number `run` (its noise and reference indices) and apply the
 * four tests; known failures skip the costly stages of the energy test. */
static void evaluate(fixture *f, const combo *c, uint64_t run, int is_known, result *r)
{
    const size_t n = NSAMP[c->model], d = diffsde_gmm_dim(f->gmm[c->model]);
    diffsde_sampler_options opt;
    diffsde_sampler_options_default(&opt);
    opt.predictor = c->p;
    opt.corrector = c->c;
    opt.steps = NLEV;
    if (c->snr > 0)
        opt.snr = c->snr;
    if (c->K > 0)
        opt.corrector_steps = c->K;
    opt.batch_norms = c->batch_norms;
    clock_t t0 = clock();
    diffsde_sampler *s = NULL;
    int st = diffsde_sampler_new(f->ctx, f->sde[c->sde], f->score[c->model][c->sde], &opt, &s);
    if (st == DIFFSDE_OK)
        st = diffsde_sampler_run(s, f->nx, run * RUN_STRIDE, n, d, f->x);
    if (st != DIFFSDE_OK)
        print_error("%s\n", diffsde_errmsg(f->ctx));
    assert_int_equal(st, DIFFSDE_OK);
    diffsde_sampler_stats stats;
    assert_int_equal(diffsde_sampler_get_stats(s, &stats), DIFFSDE_OK);
    diffsde_sampler_free(s);

    diffsde_metrics_options mo = diffsde_metrics_options_default();
    mo.energy_max_points = ENERGY_M;
    mo.ref_sample0 = DIFFSDE_METRICS_REF_SAMPLE0 + run * RUN_STRIDE;
    diffsde_metrics m;
    st = diffsde_metrics_compute(f->ctx, f->gmm[c->model], NULL, 0.0, f->nm, n, f->x, &mo, &m);
    if (st != DIFFSDE_OK)
        print_error("%s\n", diffsde_errmsg(f->ctx));
    assert_int_equal(st, DIFFSDE_OK);
    assert_int_equal(m.energy.permutations, 200);
    r->energy_p = m.energy.pvalue;
    if (!is_known)
        r->energy_p = mtu_energy_stages(f->ctx, f->nm, f->gmm[c->model], NULL, 0.0, mo.ref_sample0,
                                        NSAMP[c->model], ENERGY_M, f->x, f->ref,
                                        m.energy.pvalue, m.energy.energy);
    r->occ_p = m.occupancy.pvalue;
    r->empty = m.occupancy.empty;
    r->sw2 = m.sliced_w2;
    r->sw2_null = m.sliced_w2_null;
    r->ll_z = m.loglik.diff / m.loglik.diff_se;
    r->nfe = stats.nfe_per_sample;
    r->acc_rate = stats.accepted + stats.rejected
                      ? (double)stats.accepted / (double)(stats.accepted + stats.rejected)
                      : NAN;
    r->secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
    r->pass = r->empty == 0 && r->occ_p > ALPHA && r->energy_p > 1.5 / 40000 &&
              r->sw2 < SW2_MAX && fabs(r->ll_z) < ZLL;
    char name[128], acc[32] = "";
    if (c->c == MALA)
        snprintf(acc, sizeof acc, " | acc %.3f", r->acc_rate);
    printf("# %-40s occ p %8.2e empty %zu | energy p %s%8.2e | sw2 %.3f (null %.3f) | "
           "loglik z %+7.2f | nfe %.0f%s | %.1f s%s\n",
           combo_name(c, name, sizeof name), r->occ_p, r->empty,
           is_known && r->energy_p < 1.5 / 201 ? "<=" : "  ", r->energy_p, r->sw2,
           r->sw2_null, r->ll_z, r->nfe, acc, r->secs,
           r->pass ? (is_known ? "  (known failure; passed here)" : "")
                   : (is_known ? "  KNOWN FAILURE" : "  FAIL"));
}

/* The 41 valid combinations of a model, in a fixed order (their index is their run number). */
static size_t enumerate(int model, combo *out)
{
    size_t k = 0;
    for (int sd = 0; sd < 3; sd++)
        for (int p = 0; p < 4; p++)
            for (int c = 0; c < 4; c++) {
                if ((p == NONE_P && c == DIFFSDE_CORRECTOR_NONE) || (p == ANC && sd == SUBVP))
                    continue;
                combo cb = {model, sd, (diffsde_predictor)p, (diffsde_corrector)c, 0, 0, 0};
                out[k++] = cb;
            }
    return k;
}

static void run_model(void **state, int model)
{
    fixture *f = *state;
    combo all[48];
    size_t nc = enumerate(model, all), nknown = 0;
    assert_int_equal(nc, 41);
    int fails = 0;
    double total = 0;
    for (size_t i = 0; i < nc; i++) {
        result r;
        const known *kn = find_known(&all[i]);
        evaluate(f, &all[i], (uint64_t)model * 64 + i, kn != NULL, &r);
        total += r.secs;
        nknown += kn != NULL;
        fails += !r.pass && !kn;
    }
    printf("# %s: %zu combinations, %zu known failures (not asserted), %d unexpected "
           "failures; %.1f s\n",
           MODELS[model], nc, nknown, fails, total);
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

/* Every known failure is a real combination, and its remedy passes. */
static void test_remedies(void **state)
{
    fixture *f = *state;
    int fails = 0, runs = 0;
    double total = 0;
    for (size_t i = 0; i < NKNOWN; i++) {
        const known *k = &KNOWN[i];
        combo all[48];
        size_t nc = enumerate(k->model, all), hit = 0;
        for (size_t j = 0; j < nc; j++)
            hit += all[j].sde == k->sde && all[j].p == k->p && all[j].c == k->c;
        assert_int_equal(hit, 1);
        if (!k->dflt && !f->long_tests)
            continue;
        combo c = {k->model, k->sde, k->p, k->c, k->snr, k->K, k->batch_norms};
        result r;
        evaluate(f, &c, 128 + i, 0, &r);
        fails += !r.pass;
        runs++;
        total += r.secs;
    }
    printf("# remedies: %d run (%s), %d fail; %.1f s\n", runs,
           f->long_tests ? "all" : "the default ones; DIFFSDE_LONG_TESTS=1 runs all", fails,
           total);
    assert_int_equal(fails, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ring8),
        cmocka_unit_test(test_random),
        cmocka_unit_test(test_remedies),
    };
    return cmocka_run_group_tests_name("sampler_mixtures", tests, setup, teardown);
}
