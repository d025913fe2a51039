/*
 * The public flow-ODE object (ode.h) and the fixed-grid integrators euler, heun and rk4, on
 * Gaussian data p0 = N(m, diag(v)) whose flow map is a closed form (ode_testutil.h):
 * - options, method names and their parsing, every invalid option and argument (status and
 *   the message naming the culprit), the resolved defaults;
 * - one and two steps of each method against the same step written out here from the
 *   formulas (the SDE's coefficients and the closed-form score), to 1e-13;
 * - endpoints against the exact flow map for VE, VP and sub-VP in both directions, and the
 *   measured convergence order: least-squares slope of log error against log N on a doubling
 *   ladder (euler N = 128..2048, heun 32..512, rk4 64..1024: the error ratios there are within
 *   ~10% of 2^p, and rk4's smallest error, ~1e-12, is far above rounding), within ±0.25 of
 *   p, also for rk4 on the log-SNR grid; the finest rung's error below a stated target;
 * - encode then decode returns the input (rk4, N = 512) and encode reaches the exact latent;
 * - sampling: equal to a prior draw followed by diffsde_ode_solve(T → ε), bit-identical for
 *   the same seed and for batches of 1, 7 and 23 (sample0 offsets); the Tweedie step against
 *   its formula;
 * - statistics: steps, accepted, score calls and evaluations, NFE per sample (stages·N, + 1
 *   with denoising), per-sample NFE, denoising calls, against the model's own call count;
 * - failures: NaN from the model, a callback status > 0 and < 0, a drift that overflows the
 *   state, at the first call and inside a later step: the status, the entry point, step,
 *   sample and t in the message, x unchanged, and the next solve equal to a clean one;
 * - memory: a second solve (and sample) of the same or smaller size allocates nothing; an
 *   allocator failing at every call of new + sample gives ENOMEM and leaks nothing.
 * Nothing here is statistical.
 */
#define _DEFAULT_SOURCE /* M_PI, used by ode_testutil.h */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "diffsde.h"
#include "ode_testutil.h"
#include "testutil.h"

#define SEED UINT64_C(0x3c6ef372fe94f82b)

typedef struct fixture {
    diffsde_ctx *ctx;
    diffsde_sde *sde[3]; /* VE, VP, sub-VP with default parameters */
} fixture;

static int setup(void **state)
{
    static fixture fx;
    if (diffsde_ctx_new(&fx.ctx, NULL) != DIFFSDE_OK || otu_sdes_new(fx.ctx, fx.sde))
        return -1;
    *state = &fx;
    return 0;
}

static int teardown(void **state)
{
    fixture *fx = *state;
    otu_sdes_free(fx->sde);
    diffsde_ctx_free(fx->ctx);
    return 0;
}

static const diffsde_ode_method FIXED[3] = {DIFFSDE_ODE_EULER, DIFFSDE_ODE_HEUN, DIFFSDE_ODE_RK4};
static const unsigned STAGES[3] = {1, 2, 4};

static diffsde_ode *make_ode(diffsde_ctx *ctx, const diffsde_sde *sde, const diffsde_score *sc,
                             diffsde_ode_method m, size_t N, int denoise)
{
    diffsde_ode_options o;
    diffsde_ode_options_default(&o);
    o.method = m;
    o.steps = N;
    o.denoise = denoise;
    diffsde_ode *ode = NULL;
    otu_ok(diffsde_ode_new(ctx, sde, sc, &o, &ode), ctx);
    return ode;
}

static double default_eps(const diffsde_sde *sde)
{
    double e;
    diffsde_sde_default_eps(sde, &e);
    return e;
}

/* n = 4 rows of d = 2 at time t, spread over p_t (u = standardised values). */
#define NP 4
static const double U[NP][2] = {{1.385, -0.731}, {-2.104, 0.262}, {0.477, 1.913}, {-0.118, -1.546}};

static void points_at(const otu_gauss *g, double t, double *x)
{
    double a;
    diffsde_sde_alpha(g->sde, t, &a);
    for (size_t i = 0; i < NP; i++)
        for (size_t j = 0; j < 2; j++)
            x[i * 2 + j] = a * g->m[j] + sqrt(otu_var(g, j, t)) * U[i][j];
}

/* Largest |x − exact flow of x0| over the rows, relative to max(1, |exact|). */
static double flow_error(const otu_gauss *g, double t0, double t1, size_t n, const double *x0,
                         const double *x)
{
    double err = 0.0;
    for (size_t i = 0; i < n; i++) {
        double e[OTU_MAXD];
        otu_flow(g, t0, t1, x0 + i * g->d, e);
        for (size_t j = 0; j < g->d; j++) {
            double r = fabs(x[i * g->d + j] - e[j]) / fmax(1.0, fabs(e[j]));
            err = r > err ? r : err;
        }
    }
    return err;
}

/* ------------------------------------------------------------------------------------------ */
/* Options and names                                                                            */

static void test_options_default(void **state)
{
    (void)state;
    diffsde_ode_options o;
    memset(&o, 0x5a, sizeof o);
    diffsde_ode_options_default(&o);
    assert_int_equal(o.method, DIFFSDE_ODE_RK45);
    assert_int_equal(o.steps, 0);
    assert_int_equal(o.grid, DIFFSDE_GRID_DEFAULT);
    assert_true(o.rho == 7.0);
    assert_true(o.rtol == 1e-5);
    assert_true(o.atol == 1e-5);
    assert_true(o.first_step == 0.0);
    assert_int_equal(o.max_steps, 100000);
    assert_int_equal(o.whole_batch, 0);
    assert_true(isnan(o.eps));
    assert_int_equal(o.denoise, 0);
    diffsde_ode_options_default(NULL); /* documented as "must not be NULL"; must not crash */
}

static void test_names(void **state)
{
    (void)state;
    /* the table of ode.h: name, order (its first figure), adaptive */
    static const struct {
        diffsde_ode_method m;
        const char *name;
        int lo, hi, adaptive; /* order in [lo, hi]: variable-order methods give a range */
    } tab[DIFFSDE_ODE_NMETHODS] = {
        {DIFFSDE_ODE_EULER, "euler", 1, 1, 0},
        {DIFFSDE_ODE_HEUN, "heun", 2, 2, 0},
        {DIFFSDE_ODE_RK4, "rk4", 4, 4, 0},
        {DIFFSDE_ODE_RK45, "rk45", 5, 5, 1},
        {DIFFSDE_ODE_CVODE_ADAMS, "cvode-adams", 1, 12, 1},
        {DIFFSDE_ODE_CVODE_BDF, "cvode-bdf", 1, 5, 1},
        {DIFFSDE_ODE_ARKODE_DP, "arkode-dp", 5, 5, 1},
        {DIFFSDE_ODE_GSL_RKF45, "gsl-rkf45", 5, 5, 1},
        {DIFFSDE_ODE_GSL_RK8PD, "gsl-rk8pd", 8, 8, 1},
        {DIFFSDE_ODE_GSL_MSADAMS, "gsl-msadams", 1, 12, 1},
        {DIFFSDE_ODE_DDIM, "ddim", 1, 1, 0},
        {DIFFSDE_ODE_DPM_SOLVER_PP_2M, "dpm-solver++2m", 2, 2, 0},
        {DIFFSDE_ODE_EDM_HEUN, "edm-heun", 2, 2, 0},
    };
    for (int k = 0; k < DIFFSDE_ODE_NMETHODS; k++) {
        assert_int_equal(tab[k].m, k);
        assert_string_equal(diffsde_ode_method_name(tab[k].m), tab[k].name);
        diffsde_ode_method m = (diffsde_ode_method)-1;
        assert_int_equal(diffsde_ode_method_from_name(tab[k].name, &m), DIFFSDE_OK);
        assert_int_equal(m, tab[k].m);
        assert_in_range(diffsde_ode_method_order(tab[k].m), tab[k].lo, tab[k].hi);
        assert_int_equal(diffsde_ode_method_is_adaptive(tab[k].m), tab[k].adaptive);
    }
    const diffsde_ode_method bad[2] = {(diffsde_ode_method)-1,
                                       (diffsde_ode_method)DIFFSDE_ODE_NMETHODS};
    for (int k = 0; k < 2; k++) {
        assert_string_equal(diffsde_ode_method_name(bad[k]), "");
        assert_int_equal(diffsde_ode_method_order(bad[k]), 0);
        assert_int_equal(diffsde_ode_method_is_adaptive(bad[k]), 0);
    }
    diffsde_ode_method m = DIFFSDE_ODE_HEUN;
    assert_int_equal(diffsde_ode_method_from_name(NULL, &m), DIFFSDE_ENULL);
    assert_int_equal(diffsde_ode_method_from_name("euler", NULL), DIFFSDE_ENULL);
    const char *unknown[] = {"", "Euler", "euler ", "rk", "rk45x", "cvode_adams", "dpm-solver++"};
    for (size_t k = 0; k < sizeof unknown / sizeof unknown[0]; k++)
        assert_int_equal(diffsde_ode_method_from_name(unknown[k], &m), DIFFSDE_EPARAM);
    assert_int_equal(m, DIFFSDE_ODE_HEUN); /* untouched by the failures */
}

static void test_new_invalid(void **state)
{
    fixture *fx = *state;
    diffsde_ctx *ctx = fx->ctx;
    otu_gauss g;
    otu_gauss_default(&g, fx->sde[1]);
    diffsde_score *sc = otu_model(ctx, &g);
    assert_non_null(sc);
    diffsde_ode *ode = (diffsde_ode *)&g; /* must be reset to NULL on failure */

    assert_int_equal(diffsde_ode_new(NULL, fx->sde[1], sc, NULL, &ode), DIFFSDE_ENULL);
    assert_null(ode);
    assert_int_equal(diffsde_ode_new(ctx, NULL, sc, NULL, &ode), DIFFSDE_ENULL);
    otu_assert_msg_has(ctx, "sde");
    assert_int_equal(diffsde_ode_new(ctx, fx->sde[1], NULL, NULL, &ode), DIFFSDE_ENULL);
    otu_assert_msg_has(ctx, "score");
    assert_int_equal(diffsde_ode_new(ctx, fx->sde[1], sc, NULL, NULL), DIFFSDE_ENULL);
    otu_assert_msg_has(ctx, "out");

    const double nan = NAN, inf = INFINITY;
    struct {
        int field;
        double value;
        int status;
        const char *needle;
    } cases[] = {
        {0, -1, DIFFSDE_EPARAM, "method"},       {0, 13, DIFFSDE_EPARAM, "method"},
        {1, -1, DIFFSDE_EPARAM, "grid"},         {1, 4, DIFFSDE_EPARAM, "grid"},
        {2, 0, DIFFSDE_EPARAM, "rho"},           {2, -7, DIFFSDE_EPARAM, "rho"},
        {2, nan, DIFFSDE_EPARAM, "rho"},         {2, inf, DIFFSDE_EPARAM, "rho"},
        {3, 0, DIFFSDE_EPARAM, "rtol"},          {3, nan, DIFFSDE_EPARAM, "rtol"},
        {3, -1e-5, DIFFSDE_EPARAM, "rtol"},      {4, 0, DIFFSDE_EPARAM, "atol"},
        {4, inf, DIFFSDE_EPARAM, "atol"},        {5, -1e-3, DIFFSDE_EPARAM, "first_step"},
        {5, nan, DIFFSDE_EPARAM, "first_step"},  {6, 0, DIFFSDE_EPARAM, "max_steps"},
        {7, 2, DIFFSDE_EPARAM, "whole_batch"},   {7, -1, DIFFSDE_EPARAM, "whole_batch"},
        {8, 0, DIFFSDE_EPARAM, "eps"},           {8, -1e-3, DIFFSDE_EPARAM, "eps"},
        {8, 1.0, DIFFSDE_EPARAM, "eps"},         {8, 2.0, DIFFSDE_EPARAM, "eps"},
        {8, inf, DIFFSDE_EPARAM, "eps"},         {9, 2, DIFFSDE_EPARAM, "denoise"},
        {9, -1, DIFFSDE_EPARAM, "denoise"},
        /* whole_batch with a fixed-grid method: no step control to share */
        {10, 1, DIFFSDE_EUNSUPPORTED, "whole_batch"},
    };
    assert_int_equal(DIFFSDE_ODE_NMETHODS, 13); /* the second case is the first invalid one */
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        diffsde_ode_options o;
        diffsde_ode_options_default(&o);
        const double v = cases[k].value;
        switch (cases[k].field) {
        case 0: o.method = (diffsde_ode_method)(int)v; break;
        case 1: o.grid = (diffsde_time_grid)(int)v; break;
        case 2: o.rho = v; break;
        case 3: o.rtol = v; break;
        case 4: o.atol = v; break;
        case 5: o.first_step = v; break;
        case 6: o.max_steps = (size_t)v; break;
        case 7: o.whole_batch = (int)v; break;
        case 8: o.eps = v; break;
        case 9: o.denoise = (int)v; break;
        default: o.method = DIFFSDE_ODE_EULER; o.whole_batch = 1; break;
        }
        ode = (diffsde_ode *)&g;
        diffsde_clear_error(ctx);
        int st = diffsde_ode_new(ctx, fx->sde[1], sc, &o, &ode);
        if (st != cases[k].status)
            print_error("case %zu: %s (%s)\n", k, diffsde_status_name(st), diffsde_errmsg(ctx));
        assert_int_equal(st, cases[k].status);
        assert_null(ode);
        otu_assert_msg_starts(ctx, "diffsde_ode_new: ");
        otu_assert_msg_has(ctx, cases[k].needle);
    }

    /* resolved defaults: N = 100 and the uniform grid for every fixed-grid method, ε the
     * SDE's default; an explicit ε and N are kept */
    for (int s = 0; s < 3; s++) {
        g.sde = fx->sde[s];
        for (int k = 0; k < 3; k++) {
            ode = make_ode(ctx, fx->sde[s], sc, FIXED[k], 0, 0);
            diffsde_ode_options o;
            otu_ok(diffsde_ode_get_options(ode, &o), ctx);
            assert_int_equal(o.method, FIXED[k]);
            assert_int_equal(o.steps, 100);
            assert_int_equal(o.grid, DIFFSDE_GRID_UNIFORM);
            assert_true(o.eps == (s == 0 ? 1e-5 : 1e-3));
            assert_int_equal(diffsde_ode_get_options(NULL, &o), DIFFSDE_ENULL);
            assert_int_equal(diffsde_ode_get_options(ode, NULL), DIFFSDE_ENULL);
            diffsde_ode_free(ode);
        }
        diffsde_ode_options o;
        diffsde_ode_options_default(&o);
        o.method = DIFFSDE_ODE_RK4;
        o.steps = 37;
        o.eps = 0.0625;
        o.grid = DIFFSDE_GRID_LOGSNR;
        otu_ok(diffsde_ode_new(ctx, fx->sde[s], sc, &o, &ode), ctx);
        diffsde_ode_options r;
        otu_ok(diffsde_ode_get_options(ode, &r), ctx);
        assert_int_equal(r.steps, 37);
        assert_true(r.eps == 0.0625);
        assert_int_equal(r.grid, DIFFSDE_GRID_LOGSNR);
        diffsde_ode_free(ode);
    }
    otu_ok(diffsde_ode_new(ctx, fx->sde[1], sc, NULL, &ode), ctx); /* NULL options: defaults */
    diffsde_ode_options r;
    otu_ok(diffsde_ode_get_options(ode, &r), ctx);
    assert_int_equal(r.method, DIFFSDE_ODE_RK45);
    diffsde_ode_free(ode);
    diffsde_ode_free(NULL);
    diffsde_score_free(sc);
}

static void test_solve_invalid(void **state)
{
    fixture *fx = *state;
    diffsde_ctx *ctx = fx->ctx;
    otu_gauss g;
    otu_gauss_default(&g, fx->sde[1]);
    diffsde_score *sc = otu_model(ctx, &g);
    diffsde_ode *ode = make_ode(ctx, fx->sde[1], sc, DIFFSDE_ODE_EULER, 4, 0);
    diffsde_noise *noise = NULL;
    otu_ok(diffsde_noise_new_philox(ctx, SEED, &noise), ctx);
    double x[4] = {0.25, -1.5, 2.0, 0.75}, x0[4];
    memcpy(x0, x, sizeof x);
    uint64_t nfe[2];
    diffsde_ode_stats stt;

    /* before any solve */
    assert_int_equal(diffsde_ode_get_sample_nfe(ode, 2, nfe), DIFFSDE_ESTATE);
    otu_assert_msg_starts(ctx, "diffsde_ode_get_sample_nfe: ");

    assert_int_equal(diffsde_ode_solve(NULL, 1.0, 0.5, 2, 2, x), DIFFSDE_ENULL);
    assert_int_equal(diffsde_ode_solve(ode, 1.0, 0.5, 2, 2, NULL), DIFFSDE_ENULL);
    otu_assert_msg_has(ctx, "x is NULL");
    assert_int_equal(diffsde_ode_solve(ode, 1.0, 0.5, 0, 2, x), DIFFSDE_ESIZE);
    otu_assert_msg_starts(ctx, "diffsde_ode_solve: ");
    assert_int_equal(diffsde_ode_solve(ode, 1.0, 0.5, 2, 0, x), DIFFSDE_ESIZE);
    assert_int_equal(diffsde_ode_solve(ode, 1.0, 0.5, SIZE_MAX / 2, 3, x), DIFFSDE_ESIZE);
    assert_int_equal(diffsde_ode_solve(ode, 1.0, 0.5, SIZE_MAX / 16 + 1, 2, x), DIFFSDE_ESIZE);
    const struct {
        double t0, t1;
        const char *needle;
    } times[] = {{0.0, 0.5, "t0"}, {-0.5, 0.5, "t0"}, {NAN, 0.5, "t0"},   {1.0 + 1e-12, 0.5, "t0"},
                 {1.0, 0.0, "t1"}, {1.0, 2.0, "t1"},  {1.0, NAN, "t1"},   {0.5, INFINITY, "t1"},
                 {0.5, 0.5, "equal"}};
    for (size_t k = 0; k < sizeof times / sizeof times[0]; k++) {
        assert_int_equal(diffsde_ode_solve(ode, times[k].t0, times[k].t1, 2, 2, x), DIFFSDE_EDOM);
        otu_assert_msg_starts(ctx, "diffsde_ode_solve: ");
        otu_assert_msg_has(ctx, times[k].needle);
    }
    /* a non-finite state: refused, naming the sample and coordinate */
    x[3] = NAN;
    assert_int_equal(diffsde_ode_solve(ode, 1.0, 0.5, 2, 2, x), DIFFSDE_ENONFINITE);
    otu_assert_msg_has(ctx, "sample 1");
    otu_assert_msg_has(ctx, "coordinate 1");
    x[3] = x0[3];
    assert_memory_equal(x, x0, sizeof x);
    otu_ok(diffsde_ode_get_stats(ode, &stt), ctx);
    assert_int_equal(stt.score_calls, 0);

    assert_int_equal(diffsde_ode_encode(NULL, 2, 2, x), DIFFSDE_ENULL);
    assert_int_equal(diffsde_ode_encode(ode, 2, 2, NULL), DIFFSDE_ENULL);
    otu_assert_msg_starts(ctx, "diffsde_ode_encode: ");
    assert_int_equal(diffsde_ode_decode(NULL, 2, 2, x), DIFFSDE_ENULL);
    assert_int_equal(diffsde_ode_decode(ode, 0, 2, x), DIFFSDE_ESIZE);
    otu_assert_msg_starts(ctx, "diffsde_ode_decode: ");

    assert_int_equal(diffsde_ode_sample(NULL, noise, 0, 2, 2, x), DIFFSDE_ENULL);
    assert_int_equal(diffsde_ode_sample(ode, NULL, 0, 2, 2, x), DIFFSDE_ENULL);
    otu_assert_msg_has(ctx, "noise");
    assert_int_equal(diffsde_ode_sample(ode, noise, 0, 2, 2, NULL), DIFFSDE_ENULL);
    otu_assert_msg_starts(ctx, "diffsde_ode_sample: ");
    assert_int_equal(diffsde_ode_sample(ode, noise, 0, 2, 0, x), DIFFSDE_ESIZE);

    assert_int_equal(diffsde_ode_get_stats(NULL, &stt), DIFFSDE_ENULL);
    assert_int_equal(diffsde_ode_get_stats(ode, NULL), DIFFSDE_ENULL);
    assert_int_equal(diffsde_ode_get_sample_nfe(NULL, 2, nfe), DIFFSDE_ENULL);

    otu_ok(diffsde_ode_solve(ode, 1.0, 0.5, 2, 2, x), ctx);
    assert_int_equal(diffsde_ode_get_sample_nfe(ode, 2, NULL), DIFFSDE_ENULL);
    assert_int_equal(diffsde_ode_get_sample_nfe(ode, 1, nfe), DIFFSDE_ESIZE);
    otu_assert_msg_has(ctx, "n (1)");
    otu_ok(diffsde_ode_get_sample_nfe(ode, 2, nfe), ctx);
    assert_int_equal(nfe[0], 4);
    assert_int_equal(nfe[1], 4);

    diffsde_noise_free(noise);
    diffsde_ode_free(ode);
    diffsde_score_free(sc);
}

/* ------------------------------------------------------------------------------------------ */
/* Accuracy                                                                                     */

/* The flow drift v(t, x) = f x − ½ g² s(x, t) of one row, from the closed forms. */
static void drift(const otu_gauss *g, double t, const double *x, double *v)
{
    diffsde_sde_coefs c;
    diffsde_sde_coefs_at(g->sde, t, &c);
    double s[OTU_MAXD];
    otu_score_cb(1, g->d, &t, x, s, (void *)g);
    for (size_t j = 0; j < g->d; j++)
        v[j] = c.f * x[j] - 0.5 * c.g2 * s[j];
}

/* One step of method k from (t, x) to t + h, written out from the formulas. */
static void hand_step(const otu_gauss *g, int k, double t, double h, double *x)
{
    const size_t d = g->d;
    double k1[OTU_MAXD], k2[OTU_MAXD], k3[OTU_MAXD], k4[OTU_MAXD], y[OTU_MAXD];
    drift(g, t, x, k1);
    if (k == 0) {
        for (size_t j = 0; j < d; j++)
            x[j] += h * k1[j];
        return;
    }
    if (k == 1) {
        for (size_t j = 0; j < d; j++)
            y[j] = x[j] + h * k1[j];
        drift(g, t + h, y, k2);
        for (size_t j = 0; j < d; j++)
            x[j] += h / 2 * (k1[j] + k2[j]);
        return;
    }
    for (size_t j = 0; j < d; j++)
        y[j] = x[j] + h / 2 * k1[j];
    drift(g, t + h / 2, y, k2);
    for (size_t j = 0; j < d; j++)
        y[j] = x[j] + h / 2 * k2[j];
    drift(g, t + h / 2, y, k3);
    for (size_t j = 0; j < d; j++)
        y[j] = x[j] + h * k3[j];
    drift(g, t + h, y, k4);
    for (size_t j = 0; j < d; j++)
        x[j] += h / 6 * (k1[j] + 2 * k2[j] + 2 * k3[j] + k4[j]);
}

static void test_steps_by_hand(void **state)
{
    fixture *fx = *state;
    diffsde_ctx *ctx = fx->ctx;
    for (int s = 0; s < 3; s++) {
        otu_gauss g;
        otu_gauss_default(&g, fx->sde[s]);
        diffsde_score *sc = otu_model(ctx, &g);
        /* two steps each way on the uniform grid between 0.9 and 0.35 */
        const double ta = 0.9, tb = 0.35;
        for (int k = 0; k < 3; k++) {
            diffsde_ode *ode = make_ode(ctx, fx->sde[s], sc, FIXED[k], 2, 0);
            for (int dir = 0; dir < 2; dir++) {
                const double t0 = dir ? tb : ta, t1 = dir ? ta : tb;
                double x[2 * NP], e[2 * NP];
                points_at(&g, t0, x);
                memcpy(e, x, sizeof x);
                otu_ok(diffsde_ode_solve(ode, t0, t1, NP, 2, x), ctx);
                double times[3];
                otu_ok(diffsde_time_grid_make(fx->sde[s], DIFFSDE_GRID_UNIFORM, 7.0, t0, t1, 2, times),
                   ctx);
                for (size_t i = 0; i < NP; i++)
                    for (int step = 0; step < 2; step++)
                        hand_step(&g, k, times[step], times[step + 1] - times[step], e + 2 * i);
                for (size_t j = 0; j < 2 * NP; j++)
                    assert_close(x[j], e[j], 1e-13, 1e-15);
            }
            diffsde_ode_free(ode);
        }
        diffsde_score_free(sc);
    }
}

/* Fit the slope of log(err) against log(N) by least squares. */
static double fitted_slope(size_t m, const double *N, const double *err)
{
    double sx = 0, sy = 0, sxx = 0, sxy = 0;
    for (size_t i = 0; i < m; i++) {
        double lx = log(N[i]), ly = log(err[i]);
        sx += lx;
        sy += ly;
        sxx += lx * lx;
        sxy += lx * ly;
    }
    double mm = (double)m;
    return (mm * sxy - sx * sy) / (mm * sxx - sx * sx);
}

static void test_convergence_order(void **state)
{
    fixture *fx = *state;
    diffsde_ctx *ctx = fx->ctx;
    /* rungs N0·2^r, r < 5, where the error ratios of consecutive rungs are within ~10% of
     * 2^p (sub-VP's rk4 error is pre-asymptotic below N ≈ 64) */
    static const size_t N0[3] = {128, 32, 64};
    /* the accuracy the finest rung (N = 2048, 512, 1024) must reach, relative to max(1, |x|):
     * targets stated for these N, a factor 4–6 above the worst of the three SDEs */
    static const double target[3] = {0.05, 1e-3, 1e-9};
    enum { RUNGS = 5 };
    for (int s = 0; s < 3; s++) {
        otu_gauss g;
        otu_gauss_default(&g, fx->sde[s]);
        diffsde_score *sc = otu_model(ctx, &g);
        const double eps = default_eps(fx->sde[s]);
        for (int k = 0; k < 3; k++) {
            for (int dir = 0; dir < 2; dir++) {
                /* dir 0: sampling (T → ε), dir 1: encoding (ε → T) */
                const double t0 = dir ? eps : 1.0, t1 = dir ? 1.0 : eps;
                double Ns[RUNGS], err[RUNGS];
                for (int r = 0; r < RUNGS; r++) {
                    Ns[r] = (double)(N0[k] << r);
                    diffsde_ode *ode = make_ode(ctx, fx->sde[s], sc, FIXED[k], N0[k] << r, 0);
                    double x0[2 * NP], x[2 * NP];
                    points_at(&g, t0, x0);
                    memcpy(x, x0, sizeof x);
                    otu_ok(diffsde_ode_solve(ode, t0, t1, NP, 2, x), ctx);
                    err[r] = flow_error(&g, t0, t1, NP, x0, x);
                    diffsde_ode_free(ode);
                }
                const double p = fitted_slope(RUNGS, Ns, err);
                print_message("# %-5s %-6s %s: err(N=%4.0f) = %.3e ... err(N=%4.0f) = %.3e, "
                              "order %.3f\n", diffsde_sde_name(fx->sde[s]),
                              diffsde_ode_method_name(FIXED[k]), dir ? "encode" : "sample",
                              Ns[0], err[0], Ns[RUNGS - 1], err[RUNGS - 1], -p);
                assert_close(-p, (double)diffsde_ode_method_order(FIXED[k]), 0, 0.25);
                assert_true(err[RUNGS - 1] < target[k]);
            }
        }
        diffsde_score_free(sc);
    }
}

/* rk4 also converges at order 4 on the log-SNR grid (a smooth change of variable). */
static void test_convergence_logsnr(void **state)
{
    fixture *fx = *state;
    diffsde_ctx *ctx = fx->ctx;
    enum { RUNGS = 5 };
    for (int s = 0; s < 3; s++) {
        otu_gauss g;
        otu_gauss_default(&g, fx->sde[s]);
        diffsde_score *sc = otu_model(ctx, &g);
        const double eps = default_eps(fx->sde[s]);
        double Ns[RUNGS], err[RUNGS];
        for (int r = 0; r < RUNGS; r++) {
            diffsde_ode_options o;
            diffsde_ode_options_default(&o);
            o.method = DIFFSDE_ODE_RK4;
            o.grid = DIFFSDE_GRID_LOGSNR;
            o.steps = (size_t)64 << r;
            Ns[r] = (double)o.steps;
            diffsde_ode *ode = NULL;
            otu_ok(diffsde_ode_new(ctx, fx->sde[s], sc, &o, &ode), ctx);
            double x0[2 * NP], x[2 * NP];
            points_at(&g, 1.0, x0);
            memcpy(x, x0, sizeof x);
            otu_ok(diffsde_ode_solve(ode, 1.0, eps, NP, 2, x), ctx);
            err[r] = flow_error(&g, 1.0, eps, NP, x0, x);
            diffsde_ode_free(ode);
        }
        const double p = fitted_slope(RUNGS, Ns, err);
        print_message("# %-5s rk4 logsnr grid: err(N=64) = %.3e ... err(N=1024) = %.3e, order "
                      "%.3f\n", diffsde_sde_name(fx->sde[s]), err[0], err[RUNGS - 1], -p);
        assert_close(-p, 4.0, 0, 0.25);
        diffsde_score_free(sc);
    }
}

static void test_encode_decode(void **state)
{
    fixture *fx = *state;
    diffsde_ctx *ctx = fx->ctx;
    for (int s = 0; s < 3; s++) {
        otu_gauss g;
        otu_gauss_default(&g, fx->sde[s]);
        diffsde_score *sc = otu_model(ctx, &g);
        const double eps = default_eps(fx->sde[s]);
        diffsde_ode *ode = make_ode(ctx, fx->sde[s], sc, DIFFSDE_ODE_RK4, 512, 1);
        double x0[2 * NP], x[2 * NP], y[2 * NP];
        points_at(&g, eps, x0);
        memcpy(x, x0, sizeof x);
        otu_ok(diffsde_ode_encode(ode, NP, 2, x), ctx);
        /* rk4 at N = 512: ~2e-11 relative error each way (test_convergence_order) */
        /* rk4 at N = 512 (test_convergence_order: ≤ 3e-9 relative each way) */
        assert_true(flow_error(&g, eps, 1.0, NP, x0, x) < 1e-8);
        memcpy(y, x0, sizeof y);
        otu_ok(diffsde_ode_solve(ode, eps, 1.0, NP, 2, y), ctx);
        assert_memory_equal(x, y, sizeof x); /* encode is solve(ε, T) */
        memcpy(y, x, sizeof y);
        otu_ok(diffsde_ode_decode(ode, NP, 2, x), ctx); /* never denoises, although denoise = 1 */
        diffsde_ode_stats st;
        otu_ok(diffsde_ode_get_stats(ode, &st), ctx);
        assert_int_equal(st.denoise_calls, 0);
        for (size_t j = 0; j < 2 * NP; j++)
            assert_close(x[j], x0[j], 0, 1e-9 * fmax(1.0, fabs(x0[j])));
        otu_ok(diffsde_ode_solve(ode, 1.0, eps, NP, 2, y), ctx);
        assert_memory_equal(x, y, sizeof x); /* decode is solve(T, ε) */
        diffsde_ode_free(ode);
        diffsde_score_free(sc);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Sampling and statistics                                                                      */

static void test_sample_reproducible(void **state)
{
    fixture *fx = *state;
    diffsde_ctx *ctx = fx->ctx;
    enum { NS = 23, D = 2 };
    const uint64_t s0 = 1000;
    diffsde_noise *noise = NULL;
    otu_ok(diffsde_noise_new_philox(ctx, SEED, &noise), ctx);
    for (int s = 0; s < 3; s++) {
        otu_gauss g;
        otu_gauss_default(&g, fx->sde[s]);
        diffsde_score *sc = otu_model(ctx, &g);
        const double eps = default_eps(fx->sde[s]);
        for (int k = 0; k < 3; k++) {
            for (int dn = 0; dn < 2; dn++) {
                diffsde_ode *ode = make_ode(ctx, fx->sde[s], sc, FIXED[k], 20, dn);
                double all[NS * D], again[NS * D], part[NS * D], ref[NS * D];
                otu_ok(diffsde_ode_sample(ode, noise, s0, NS, D, all), ctx);
                otu_ok(diffsde_ode_sample(ode, noise, s0, NS, D, again), ctx);
                assert_memory_equal(all, again, sizeof all);
                static const size_t chunk[2] = {1, 7};
                for (int c = 0; c < 2; c++) {
                    memset(part, 0, sizeof part);
                    for (size_t i = 0; i < NS; i += chunk[c]) {
                        size_t m = NS - i < chunk[c] ? NS - i : chunk[c];
                        otu_ok(diffsde_ode_sample(ode, noise, s0 + i, m, D, part + i * D), ctx);
                    }
                    assert_memory_equal(all, part, sizeof all);
                }
                /* = prior draw, then the flow from T to ε, then (dn) Tweedie's formula */
                otu_ok(diffsde_sde_prior_sample(fx->sde[s], noise, s0, NS, D, ref), ctx);
                otu_ok(diffsde_ode_solve(ode, 1.0, eps, NS, D, ref), ctx);
                if (dn) {
                    double a, sg, sc_[NS * D], tv[NS];
                    diffsde_sde_alpha(fx->sde[s], eps, &a);
                    diffsde_sde_sigma(fx->sde[s], eps, &sg);
                    for (size_t i = 0; i < NS; i++)
                        tv[i] = eps;
                    otu_score_cb(NS, D, tv, ref, sc_, &g);
                    for (size_t j = 0; j < NS * D; j++)
                        assert_close(all[j], (ref[j] + sg * sg * sc_[j]) / a, 1e-14, 1e-14);
                } else {
                    assert_memory_equal(all, ref, sizeof all);
                }
                diffsde_ode_free(ode);
            }
        }
        diffsde_score_free(sc);
    }
    diffsde_noise_free(noise);
}

static void test_stats(void **state)
{
    fixture *fx = *state;
    diffsde_ctx *ctx = fx->ctx;
    enum { NS = 5, D = 3, N = 13 };
    diffsde_noise *noise = NULL;
    otu_ok(diffsde_noise_new_philox(ctx, SEED, &noise), ctx);
    otu_gauss g;
    otu_gauss_default(&g, fx->sde[2]);
    g.d = D;
    g.m[2] = 0.3;
    g.v[2] = 0.7;
    diffsde_score *sc = otu_model(ctx, &g);
    for (int k = 0; k < 3; k++) {
        for (int dn = 0; dn < 2; dn++) {
            diffsde_ode *ode = make_ode(ctx, fx->sde[2], sc, FIXED[k], N, dn);
            double x[NS * D];
            for (int call = 0; call < 4; call++) {
                g.calls = 0;
                int st;
                if (call == 0)
                    st = diffsde_ode_sample(ode, noise, 3, NS, D, x);
                else if (call == 1)
                    st = diffsde_ode_encode(ode, NS, D, x);
                else if (call == 2)
                    st = diffsde_ode_decode(ode, NS, D, x);
                else
                    st = diffsde_ode_solve(ode, 0.75, 0.25, NS, D, x);
                otu_ok(st, ctx);
                const uint64_t extra = call == 0 && dn ? 1 : 0;
                const uint64_t per = (uint64_t)STAGES[k] * N + extra;
                diffsde_ode_stats S;
                otu_ok(diffsde_ode_get_stats(ode, &S), ctx);
                assert_int_equal(S.steps, N);
                assert_int_equal(S.accepted, (uint64_t)N * NS);
                assert_int_equal(S.rejected, 0);
                assert_int_equal(S.score_calls, per);
                assert_int_equal(S.score_calls, g.calls);
                assert_int_equal(S.score_evals, per * NS);
                assert_int_equal(S.nfe_min, per);
                assert_int_equal(S.nfe_max, per);
                assert_true(S.nfe_per_sample == (double)per);
                assert_int_equal(S.denoise_calls, extra);
                assert_true(S.wall_seconds >= 0.0);
                uint64_t nfe[NS];
                otu_ok(diffsde_ode_get_sample_nfe(ode, NS, nfe), ctx);
                for (size_t i = 0; i < NS; i++)
                    assert_int_equal(nfe[i], per);
            }
            diffsde_ode_free(ode);
        }
    }
    diffsde_score_free(sc);
    diffsde_noise_free(noise);
}

/* ------------------------------------------------------------------------------------------ */
/* Failures                                                                                     */

enum fault { F_NONE, F_NAN, F_RETRY, F_FATAL, F_HUGE };

typedef struct faulty {
    otu_gauss g;
    long calls;    /* invocations so far (1-based below) */
    long fault_at; /* the invocation that misbehaves, 0 for none */
    enum fault kind;
    size_t row;    /* the row of a planted value */
} faulty;

static int faulty_cb(size_t n, size_t d, const double *t, const double *x, double *out,
                     void *user)
{
    faulty *f = user;
    f->calls++;
    otu_score_cb(n, d, t, x, out, &f->g);
    if (f->calls != f->fault_at)
        return 0;
    switch (f->kind) {
    case F_NAN: out[f->row * d + 1] = NAN; return 0;
    case F_RETRY: return 1;
    case F_FATAL: return -3;
    case F_HUGE: out[f->row * d] = DBL_MAX; return 0; /* ½ g² · DBL_MAX overflows */
    default: return 0;
    }
}

static void test_failures(void **state)
{
    fixture *fx = *state;
    diffsde_ctx *ctx = fx->ctx;
    const diffsde_sde *sde = fx->sde[1]; /* VP: g² = β ≥ 2 wherever t ≥ 0.1 */
    enum { N = 6, NB = 4 };
    faulty f = {.kind = F_NONE};
    otu_gauss_default(&f.g, sde);
    diffsde_score *sc = NULL;
    otu_ok(diffsde_score_new(ctx, faulty_cb, &f, DIFFSDE_PARAM_SCORE, &sc), ctx);
    const double t0 = 1.0, t1 = 0.4;
    double times[N + 1];
    otu_ok(diffsde_time_grid_make(sde, DIFFSDE_GRID_UNIFORM, 7.0, t0, t1, N, times), ctx);
    for (int k = 0; k < 3; k++) {
        const unsigned S = STAGES[k];
        diffsde_ode *ode = make_ode(ctx, sde, sc, FIXED[k], N, 0);
        double xin[2 * NP], clean[2 * NP];
        points_at(&f.g, t0, xin);
        memcpy(clean, xin, sizeof clean);
        otu_ok(diffsde_ode_solve(ode, t0, t1, NB, 2, clean), ctx);
        /* the first call, and the last stage of step 3 */
        const long at[2] = {1, (long)(2 * S + S)};
        for (int kind = F_NAN; kind <= F_HUGE; kind++) {
            for (int a = 0; a < 2; a++) {
                for (size_t n = 1; n <= NB; n += NB - 1) {
                    if (kind == F_HUGE && at[a] != 1)
                        continue; /* β is large only near T */
                    f.calls = 0;
                    f.fault_at = at[a];
                    f.kind = (enum fault)kind;
                    f.row = n - 1;
                    double x[2 * NP];
                    memcpy(x, xin, sizeof x);
                    diffsde_clear_error(ctx);
                    int st = diffsde_ode_solve(ode, t0, t1, n, 2, x);
                    const int want = kind == F_RETRY   ? DIFFSDE_ERETRY
                                     : kind == F_FATAL ? DIFFSDE_ECALLBACK
                                                       : DIFFSDE_ENONFINITE;
                    if (st != want)
                        print_error("%s, fault %d at call %ld, n = %zu: %s (%s)\n",
                                    diffsde_ode_method_name(FIXED[k]), kind, at[a], n,
                                    diffsde_status_name(st), diffsde_errmsg(ctx));
                    assert_int_equal(st, want);
                    assert_memory_equal(x, xin, n * 2 * sizeof *x); /* restored */
                    otu_assert_msg_starts(ctx, "diffsde_ode_solve: ");
                    char buf[128];
                    const long step = (at[a] - 1) / (long)S + 1, stage = (at[a] - 1) % (long)S + 1;
                    /* the huge drift is caught in the next stage's model call or the state */
                    if (kind != F_HUGE) {
                        snprintf(buf, sizeof buf, "%s step %ld of %d",
                                 diffsde_ode_method_name(FIXED[k]), step, N);
                        otu_assert_msg_has(ctx, buf);
                        if (S > 1) {
                            snprintf(buf, sizeof buf, "stage %ld", stage);
                            otu_assert_msg_has(ctx, buf);
                        }
                        const double ti = times[step - 1], h = times[step] - ti;
                        const double c = S == 1 ? 0.0 : S == 2 ? (stage == 1 ? 0.0 : 1.0)
                                       : stage == 1 ? 0.0 : stage == 4 ? 1.0 : 0.5;
                        const double ts = c == 0.0   ? ti
                                          : c == 1.0 ? times[step]
                                                     : ti + 0.5 * h;
                        snprintf(buf, sizeof buf, "t=%.17g", ts);
                        otu_assert_msg_has(ctx, buf);
                    } else {
                        otu_assert_msg_has(ctx, "step 1 of");
                    }
                    if (kind == F_NAN || kind == F_HUGE || n == 1) {
                        snprintf(buf, sizeof buf, "sample %zu", n - 1);
                        otu_assert_msg_has(ctx, buf);
                    }
                    uint64_t nfe[NB];
                    assert_int_equal(diffsde_ode_get_sample_nfe(ode, n, nfe), DIFFSDE_ESTATE);
                }
            }
        }
        /* the object is unharmed: the next solve is the clean one */
        f.fault_at = 0;
        double x[2 * NP];
        memcpy(x, xin, sizeof x);
        otu_ok(diffsde_ode_solve(ode, t0, t1, NB, 2, x), ctx);
        assert_memory_equal(x, clean, sizeof x);
        diffsde_ode_free(ode);
    }

    /* a failing denoising step */
    diffsde_noise *noise = NULL;
    otu_ok(diffsde_noise_new_philox(ctx, SEED, &noise), ctx);
    diffsde_ode *ode = make_ode(ctx, sde, sc, DIFFSDE_ODE_HEUN, N, 1);
    f.calls = 0;
    f.fault_at = 2 * N + 1;
    f.kind = F_NAN;
    f.row = 2;
    double x[2 * NP];
    assert_int_equal(diffsde_ode_sample(ode, noise, 40, NP, 2, x), DIFFSDE_ENONFINITE);
    otu_assert_msg_starts(ctx, "diffsde_ode_sample: denoising step");
    otu_assert_msg_has(ctx, "sample 2");
    diffsde_ode_stats stt;
    otu_ok(diffsde_ode_get_stats(ode, &stt), ctx);
    assert_int_equal(stt.denoise_calls, 1);
    assert_int_equal(stt.score_calls, 2 * N + 1);
    diffsde_ode_free(ode);
    diffsde_noise_free(noise);
    diffsde_score_free(sc);
}

/* ------------------------------------------------------------------------------------------ */
/* Memory                                                                                       */

static void test_allocation(void **state)
{
    (void)state;
    enum { NS = 9, D = 2, N = 5 };
    tu_alloc al = {0, 0, 0};
    diffsde_allocator hooks = tu_allocator(&al);
    diffsde_ctx *ctx = NULL;
    otu_ok(diffsde_ctx_new(&ctx, &hooks), ctx);
    diffsde_sde *sde = NULL;
    otu_ok(diffsde_sde_new_vp(ctx, DIFFSDE_VP_BETA_MIN, DIFFSDE_VP_BETA_MAX, &sde), ctx);
    otu_gauss g;
    otu_gauss_default(&g, sde);
    diffsde_score *sc = otu_model(ctx, &g);
    diffsde_noise *noise = NULL;
    otu_ok(diffsde_noise_new_philox(ctx, SEED, &noise), ctx);
    const long live0 = al.live;
    double x[NS * D];

    for (int k = 0; k < 3; k++) {
        diffsde_ode *ode = make_ode(ctx, sde, sc, FIXED[k], N, 1);
        points_at(&g, 1.0, x);
        otu_ok(diffsde_ode_solve(ode, 1.0, 0.2, NP, D, x), ctx);
        long calls = al.calls;
        points_at(&g, 1.0, x);
        otu_ok(diffsde_ode_solve(ode, 1.0, 0.2, NP, D, x), ctx);
        otu_ok(diffsde_ode_solve(ode, 0.2, 1.0, 2, D, x), ctx);
        otu_ok(diffsde_ode_encode(ode, NP, D, x), ctx);
        otu_ok(diffsde_ode_decode(ode, 1, D, x), ctx);
        assert_int_equal(al.calls, calls);
        otu_ok(diffsde_ode_sample(ode, noise, 0, NS, D, x), ctx);
        calls = al.calls;
        otu_ok(diffsde_ode_sample(ode, noise, 0, NS, D, x), ctx);
        otu_ok(diffsde_ode_sample(ode, noise, 0, 3, D, x), ctx);
        otu_ok(diffsde_ode_solve(ode, 1.0, 0.2, NS, D, x), ctx);
        assert_int_equal(al.calls, calls);
        diffsde_ode_free(ode);
        assert_int_equal(al.live, live0);

        /* fail each allocation of new + sample in turn */
        for (long fail_at = 1;; fail_at++) {
            al.calls = 0;
            al.fail_at = fail_at;
            diffsde_ode_options o;
            diffsde_ode_options_default(&o);
            o.method = FIXED[k];
            o.steps = N;
            o.denoise = 1;
            diffsde_ode *p = NULL;
            int st = diffsde_ode_new(ctx, sde, sc, &o, &p);
            if (st == DIFFSDE_OK)
                st = diffsde_ode_sample(p, noise, 0, NS, D, x);
            const long made = al.calls;
            diffsde_ode_free(p);
            al.fail_at = 0;
            assert_int_equal(al.live, live0);
            if (made < fail_at) {
                otu_ok(st, ctx);
                break;
            }
            assert_int_equal(st, DIFFSDE_ENOMEM);
        }
    }
    diffsde_noise_free(noise);
    diffsde_score_free(sc);
    diffsde_sde_free(sde);
    diffsde_ctx_free(ctx);
    assert_int_equal(al.live, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_options_default),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_new_invalid),
        cmocka_unit_test(test_solve_invalid),
        cmocka_unit_test(test_steps_by_hand),
        cmocka_unit_test(test_convergence_order),
        cmocka_unit_test(test_convergence_logsnr),
        cmocka_unit_test(test_encode_decode),
        cmocka_unit_test(test_sample_reproducible),
        cmocka_unit_test(test_stats),
        cmocka_unit_test(test_failures),
        cmocka_unit_test(test_allocation),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
