/*
 * Time grids and the few-step flow-ODE solvers (ode.h: ddim, dpm-solver++2m, edm-heun).
 *
 * - grids: names and their parsing; for VE, VP and sub-VP, both directions and several N:
 *   t_0 = start and t_N = end bit for bit, strict monotonicity, and uniform spacing in the
 *   grid's own variable (t; λ = log(α²/σ²); (σ/α)^{1/ρ} for ρ = 7 and 2.5) to 1e-12 of the
 *   variable's span; for VE, where α = 1 and λ = −2 log σ is affine in t, the log-SNR grid is
 *   the uniform one and the Karras nodes have the closed form
 *   t_i = log(ς_i/σmin)/log(σmax/σmin), written here; every invalid argument.
 * - solvers, against the exact flow of Gaussian data (ode_testutil.h: p0 = N(m, diag v), the
 *   flow keeps (x − α m)/√(α² v + σ²) constant): under VE, VP and sub-VP, sampling (T → ε) and
 *   encoding (ε → T) on each method's default grid, the convergence order MEASURED as the
 *   least-squares slope of log(error) against log N on a ladder N = LADDER (error: the largest
 *   standardised deviation over 3 rows × 2 coordinates), asserted within ±0.25 of 1, 2, 2.
 *   The slopes are printed as TAP comments.
 * - data that is a single point (v = 0): x̂0 = m exactly, the flow is x = α m + σ u with u
 *   constant, and all three methods reproduce it exactly, in one step or several.
 * - NFE (N, N, 2N − 1 per sample), steps, default steps and grids, encode → decode round trip,
 *   a user SDE equal to VP giving VP's answer, and a NaN from the model: ENONFINITE naming the
 *   method's step, x unchanged.
 * Everything here is deterministic (no random draws).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "diffsde/ode.h"
#ifndef M_PI /* ode_testutil.h uses it; strict C11 <math.h> does not define it */
#define M_PI 3.14159265358979323846
#endif
#include "ode_testutil.h"
#include "testutil.h"

#define NKINDS 3
static const char *const KIND_NAMES[NKINDS] = {"ve", "vp", "subvp"};

static const diffsde_ode_method METHODS[3] = {DIFFSDE_ODE_DDIM, DIFFSDE_ODE_DPM_SOLVER_PP_2M,
                                              DIFFSDE_ODE_EDM_HEUN};
static const int ORDERS[3] = {1, 2, 2};

/* Standard-normal-like offsets of the test rows ("high-entropy" values). */
#define NROWS 3
static const double Z[NROWS][2] = {{0.8137, -1.2291}, {-0.3712, 0.5409}, {1.9731, 0.1123}};

typedef struct fixture {
    diffsde_ctx *ctx;
    diffsde_sde *sde[NKINDS];
} fixture;

static int setup(void **state)
{
    static fixture f;
    if (diffsde_ctx_new(&f.ctx, NULL) != DIFFSDE_OK || otu_sdes_new(f.ctx, f.sde))
        return -1;
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    otu_sdes_free(f->sde);
    diffsde_ctx_free(f->ctx);
    return 0;
}

static double eps_of(const diffsde_sde *sde)
{
    double e;
    assert_int_equal(diffsde_sde_default_eps(sde, &e), DIFFSDE_OK);
    return e;
}

static double ncr(const diffsde_sde *sde, double t) /* ς = σ/α */
{
    diffsde_sde_coefs c;
    assert_int_equal(diffsde_sde_coefs_at(sde, t, &c), DIFFSDE_OK);
    return c.sigma / c.alpha;
}

/* ---- grids ------------------------------------------------------------------------------ */

static void test_grid_names(void **state)
{
    (void)state;
    const char *names[4] = {"default", "uniform", "logsnr", "karras"};
    for (int g = 0; g < 4; g++) {
        assert_string_equal(diffsde_time_grid_name((diffsde_time_grid)g), names[g]);
        diffsde_time_grid back = (diffsde_time_grid)-1;
        assert_int_equal(diffsde_time_grid_from_name(names[g], &back), DIFFSDE_OK);
        assert_int_equal(back, g);
    }
    assert_string_equal(diffsde_time_grid_name((diffsde_time_grid)4), "");
    assert_string_equal(diffsde_time_grid_name((diffsde_time_grid)-1), "");
    diffsde_time_grid g;
    assert_int_equal(diffsde_time_grid_from_name("Karras", &g), DIFFSDE_EPARAM);
    assert_int_equal(diffsde_time_grid_from_name("", &g), DIFFSDE_EPARAM);
    assert_int_equal(diffsde_time_grid_from_name(NULL, &g), DIFFSDE_ENULL);
    assert_int_equal(diffsde_time_grid_from_name("uniform", NULL), DIFFSDE_ENULL);
}

#define GMAX 200

/* The grid variable: t, λ, or ς^{1/ρ}. */
static double grid_var(const diffsde_sde *sde, diffsde_time_grid g, double rho, double t)
{
    if (g == DIFFSDE_GRID_UNIFORM)
        return t;
    if (g == DIFFSDE_GRID_LOGSNR) {
        double l;
        assert_int_equal(diffsde_sde_log_snr(sde, t, &l), DIFFSDE_OK);
        return l;
    }
    return pow(ncr(sde, t), 1.0 / rho);
}

static void test_grid_spacing(void **state)
{
    fixture *f = *state;
    const size_t Ns[4] = {1, 2, 17, GMAX};
    const double rhos[2] = {7.0, 2.5};
    double times[GMAX + 1];
    for (int k = 0; k < NKINDS; k++) {
        const diffsde_sde *sde = f->sde[k];
        const double eps = eps_of(sde);
        const double ends[3][2] = {{1.0, eps}, {eps, 1.0}, {0.83, 0.21}};
        for (int g = DIFFSDE_GRID_UNIFORM; g <= DIFFSDE_GRID_KARRAS; g++) {
            for (int ri = 0; ri < (g == DIFFSDE_GRID_KARRAS ? 2 : 1); ri++) {
                for (int e = 0; e < 3; e++) {
                    for (int ni = 0; ni < 4; ni++) {
                        const size_t N = Ns[ni];
                        const double s = ends[e][0], en = ends[e][1], rho = rhos[ri];
                        assert_int_equal(diffsde_time_grid_make(sde, (diffsde_time_grid)g, rho,
                                                                s, en, N, times),
                                         DIFFSDE_OK);
                        assert_true(times[0] == s);
                        assert_true(times[N] == en);
                        const double v0 = grid_var(sde, (diffsde_time_grid)g, rho, s);
                        const double v1 = grid_var(sde, (diffsde_time_grid)g, rho, en);
                        for (size_t i = 0; i < N; i++) {
                            assert_true(en > s ? times[i + 1] > times[i]
                                               : times[i + 1] < times[i]);
                            double want = v0 + ((double)i / (double)N) * (v1 - v0);
                            assert_close(grid_var(sde, (diffsde_time_grid)g, rho, times[i]),
                                         want, 0.0, 1e-12 * fabs(v1 - v0));
                        }
                    }
                }
            }
        }
    }
}

/* VE: α = 1, λ = −2 log σ affine in t, so the log-SNR grid is the uniform one, and
 * ς = σ gives the Karras nodes in closed form. */
static void test_grid_ve_closed_form(void **state)
{
    fixture *f = *state;
    const diffsde_sde *ve = f->sde[0];
    const double smin = DIFFSDE_VE_SIGMA_MIN, smax = DIFFSDE_VE_SIGMA_MAX, rho = 7.0;
    const double eps = eps_of(ve);
    enum { N = 18 };
    double tl[N + 1], tk[N + 1];
    assert_int_equal(diffsde_time_grid_make(ve, DIFFSDE_GRID_LOGSNR, rho, 1.0, eps, N, tl),
                     DIFFSDE_OK);
    assert_int_equal(diffsde_time_grid_make(ve, DIFFSDE_GRID_KARRAS, rho, 1.0, eps, N, tk),
                     DIFFSDE_OK);
    const double s0 = smin * pow(smax / smin, 1.0), s1 = smin * pow(smax / smin, eps);
    for (size_t i = 0; i <= N; i++) {
        const double fr = (double)i / (double)N;
        assert_close(tl[i], 1.0 + fr * (eps - 1.0), 0.0, 1e-13);
        const double sig = pow(pow(s0, 1 / rho) + fr * (pow(s1, 1 / rho) - pow(s0, 1 / rho)), rho);
        assert_close(tk[i], log(sig / smin) / log(smax / smin), 0.0, 1e-13);
    }
}

static void test_grid_invalid(void **state)
{
    fixture *f = *state;
    const diffsde_sde *vp = f->sde[1];
    double t[9];
    assert_int_equal(diffsde_time_grid_make(NULL, DIFFSDE_GRID_UNIFORM, 7, 1, 0.5, 8, t),
                     DIFFSDE_ENULL);
    assert_int_equal(diffsde_time_grid_make(vp, DIFFSDE_GRID_UNIFORM, 7, 1, 0.5, 8, NULL),
                     DIFFSDE_ENULL);
    assert_int_equal(diffsde_time_grid_make(vp, (diffsde_time_grid)4, 7, 1, 0.5, 8, t),
                     DIFFSDE_EPARAM);
    assert_non_null(strstr(diffsde_errmsg(f->ctx), "grid"));
    assert_int_equal(diffsde_time_grid_make(vp, (diffsde_time_grid)-1, 7, 1, 0.5, 8, t),
                     DIFFSDE_EPARAM);
    assert_int_equal(diffsde_time_grid_make(vp, DIFFSDE_GRID_KARRAS, 0.0, 1, 0.5, 8, t),
                     DIFFSDE_EPARAM);
    assert_non_null(strstr(diffsde_errmsg(f->ctx), "rho"));
    assert_int_equal(diffsde_time_grid_make(vp, DIFFSDE_GRID_KARRAS, NAN, 1, 0.5, 8, t),
                     DIFFSDE_EPARAM);
    assert_int_equal(diffsde_time_grid_make(vp, DIFFSDE_GRID_KARRAS, INFINITY, 1, 0.5, 8, t),
                     DIFFSDE_EPARAM);
    /* rho is only the Karras grid's parameter. */
    assert_int_equal(diffsde_time_grid_make(vp, DIFFSDE_GRID_LOGSNR, 0.0, 1, 0.5, 8, t),
                     DIFFSDE_OK);
    assert_int_equal(diffsde_time_grid_make(vp, DIFFSDE_GRID_UNIFORM, 7, 1, 0.5, 0, t),
                     DIFFSDE_EPARAM);
    assert_non_null(strstr(diffsde_errmsg(f->ctx), "N"));
    assert_int_equal(diffsde_time_grid_make(vp, DIFFSDE_GRID_UNIFORM, 7, 0.5, 0.5, 8, t),
                     DIFFSDE_EPARAM);
    const double bad[5] = {0.0, -0.1, 1.0 + 1e-12, NAN, INFINITY};
    for (int b = 0; b < 5; b++) {
        assert_int_equal(diffsde_time_grid_make(vp, DIFFSDE_GRID_LOGSNR, 7, bad[b], 0.5, 8, t),
                         DIFFSDE_EDOM);
        assert_non_null(strstr(diffsde_errmsg(f->ctx), "start"));
        assert_int_equal(diffsde_time_grid_make(vp, DIFFSDE_GRID_KARRAS, 7, 0.5, bad[b], 8, t),
                         DIFFSDE_EDOM);
        assert_non_null(strstr(diffsde_errmsg(f->ctx), "end"));
    }
    /* Eight steps across four ulps cannot be strictly monotone in double. */
    const double a = 0.5, b = nextafter(nextafter(nextafter(nextafter(a, 1), 1), 1), 1);
    for (int g = DIFFSDE_GRID_UNIFORM; g <= DIFFSDE_GRID_KARRAS; g++) {
        assert_int_equal(diffsde_time_grid_make(vp, (diffsde_time_grid)g, 7, a, b, 8, t),
                         DIFFSDE_ECONVERGENCE);
        assert_non_null(strstr(diffsde_errmsg(f->ctx), "monotone"));
    }
    /* DEFAULT is the uniform grid here. */
    double u[9];
    assert_int_equal(diffsde_time_grid_make(vp, DIFFSDE_GRID_DEFAULT, 7, 1, 0.5, 8, t),
                     DIFFSDE_OK);
    assert_int_equal(diffsde_time_grid_make(vp, DIFFSDE_GRID_UNIFORM, 7, 1, 0.5, 8, u),
                     DIFFSDE_OK);
    assert_memory_equal(t, u, sizeof t);
}

/* ---- solvers ---------------------------------------------------------------------------- */

/* Rows at t with standardised values Z: x = α m + √var · z. */
static void rows_at(const otu_gauss *g, double t, double *x)
{
    double a;
    assert_int_equal(diffsde_sde_alpha(g->sde, t, &a), DIFFSDE_OK);
    for (int r = 0; r < NROWS; r++)
        for (size_t j = 0; j < g->d; j++)
            x[r * g->d + j] = a * g->m[j] + sqrt(otu_var(g, j, t)) * Z[r][j];
}

/* Largest error of a solve from t0 to t1 with N steps (0: the default), standardised by
 * √var(t1) (absolute = 0) or absolute relative to the largest |x| in or out (absolute = 1). */
static double solve_error_mode(diffsde_ctx *ctx, otu_gauss *g, diffsde_ode_method m,
                               diffsde_time_grid grid, size_t N, double t0, double t1,
                               diffsde_ode_stats *st, int absolute)
{
    diffsde_score *sc = otu_model(ctx, g);
    assert_non_null(sc);
    diffsde_ode_options o;
    diffsde_ode_options_default(&o);
    o.method = m;
    o.steps = N;
    o.grid = grid;
    diffsde_ode *ode = NULL;
    assert_int_equal(diffsde_ode_new(ctx, g->sde, sc, &o, &ode), DIFFSDE_OK);
    double x[NROWS * 2], ex[2];
    rows_at(g, t0, x);
    double x_in[NROWS * 2];
    memcpy(x_in, x, sizeof x);
    int rc = diffsde_ode_solve(ode, t0, t1, NROWS, g->d, x);
    if (rc != DIFFSDE_OK)
        fail_msg("%s: %s", diffsde_ode_method_name(m), diffsde_errmsg(ctx));
    double err = 0.0, scale = 0.0;
    for (int r = 0; r < NROWS; r++) {
        otu_flow(g, t0, t1, x_in + r * g->d, ex);
        for (size_t j = 0; j < g->d; j++) {
            double e = fabs(x[r * g->d + j] - ex[j]);
            err = fmax(err, absolute ? e : e / sqrt(otu_var(g, j, t1)));
            scale = fmax(scale, fmax(fabs(ex[j]), fabs(x_in[r * g->d + j])));
        }
    }
    if (absolute)
        err /= scale;
    if (st)
        assert_int_equal(diffsde_ode_get_stats(ode, st), DIFFSDE_OK);
    diffsde_ode_free(ode);
    diffsde_score_free(sc);
    return err;
}

static double solve_error(diffsde_ctx *ctx, otu_gauss *g, diffsde_ode_method m,
                          diffsde_time_grid grid, size_t N, double t0, double t1,
                          diffsde_ode_stats *st)
{
    return solve_error_mode(ctx, g, m, grid, N, t0, t1, st, 0);
}

#define NLADDER 5
static const size_t LADDER[NLADDER] = {16, 32, 64, 128, 256};

/* Least-squares slope of y on x. */
static double ls_slope(const double *x, const double *y, int n)
{
    double mx = 0, my = 0, sxy = 0, sxx = 0;
    for (int i = 0; i < n; i++) {
        mx += x[i] / n;
        my += y[i] / n;
    }
    for (int i = 0; i < n; i++) {
        sxy += (x[i] - mx) * (y[i] - my);
        sxx += (x[i] - mx) * (x[i] - mx);
    }
    return sxy / sxx;
}

static void test_convergence_order(void **state)
{
    fixture *f = *state;
    printf("# measured order (least-squares slope of -log err vs log N, N = 16..256), "
           "sampling / encoding; errors at N = 16 and 256\n");
    for (int mi = 0; mi < 3; mi++) {
        for (int k = 0; k < NKINDS; k++) {
            otu_gauss g;
            otu_gauss_default(&g, f->sde[k]);
            const double eps = eps_of(f->sde[k]);
            double slope[2], e_lo[2], e_hi[2];
            for (int dir = 0; dir < 2; dir++) {
                double lx[NLADDER], ly[NLADDER];
                for (int i = 0; i < NLADDER; i++) {
                    double e = solve_error(f->ctx, &g, METHODS[mi], DIFFSDE_GRID_DEFAULT,
                                           LADDER[i], dir ? eps : 1.0, dir ? 1.0 : eps, NULL);
                    lx[i] = log((double)LADDER[i]);
                    ly[i] = log(e);
                    if (i == 0)
                        e_lo[dir] = e;
                    e_hi[dir] = e;
                }
                slope[dir] = -ls_slope(lx, ly, NLADDER);
            }
            printf("# %-15s %-6s %.3f / %.3f   (%.2e .. %.2e / %.2e .. %.2e)\n",
                   diffsde_ode_method_name(METHODS[mi]), KIND_NAMES[k], slope[0], slope[1],
                   e_lo[0], e_hi[0], e_lo[1], e_hi[1]);
            for (int dir = 0; dir < 2; dir++)
                assert_close(slope[dir], ORDERS[mi], 0.0, 0.25);
        }
    }
}

/* A point mass (v = 0): x̂0 is m at every x and t, so every method is exact. Measured
 * relative to the largest |x| and to the conditioning: the data prediction at t divides by
 * α(t), which amplifies the rounding of x by up to 1/α(T) (150 for VP and sub-VP), and
 * encoding carries a rounding of the input through the exact map, which scales it by
 * σ(T)/σ(ε) (up to 10⁴ for sub-VP). The tolerance is 1e-14 · κ with κ the product of the two,
 * a few ulps carried through. */
static void test_point_data_exact(void **state)
{
    fixture *f = *state;
    const size_t Ns[3] = {1, 2, 7};
    double worst = 0.0;
    for (int k = 0; k < NKINDS; k++) {
        otu_gauss g;
        otu_gauss_default(&g, f->sde[k]);
        g.m[0] = 1.3;
        g.m[1] = -0.7;
        g.v[0] = g.v[1] = 0.0;
        const double eps = eps_of(f->sde[k]);
        double s_eps, s_T, a_T;
        assert_int_equal(diffsde_sde_sigma(g.sde, eps, &s_eps), DIFFSDE_OK);
        assert_int_equal(diffsde_sde_sigma(g.sde, 1.0, &s_T), DIFFSDE_OK);
        assert_int_equal(diffsde_sde_alpha(g.sde, 1.0, &a_T), DIFFSDE_OK);
        for (int mi = 0; mi < 3; mi++)
            for (int ni = 0; ni < 3; ni++)
                for (int dir = 0; dir < 2; dir++) {
                    const double kappa = (dir ? fmax(1.0, s_T / s_eps) : 1.0) / a_T;
                    double e = solve_error_mode(f->ctx, &g, METHODS[mi], DIFFSDE_GRID_DEFAULT,
                                                Ns[ni], dir ? eps : 1.0, dir ? 1.0 : eps, NULL, 1);
                    worst = fmax(worst, e / kappa);
                    if (!(e <= 1e-14 * kappa))
                        fail_msg("%s %s N=%zu dir=%d: relative error %.3e (kappa %.3g)",
                                 diffsde_ode_method_name(METHODS[mi]), KIND_NAMES[k], Ns[ni], dir,
                                 e, kappa);
                }
    }
    printf("# point data: largest relative error / kappa %.2e\n", worst);
}

static void test_nfe_and_defaults(void **state)
{
    fixture *f = *state;
    const size_t def_steps[3] = {20, 20, 18};
    const diffsde_time_grid def_grid[3] = {DIFFSDE_GRID_UNIFORM, DIFFSDE_GRID_KARRAS,
                                           DIFFSDE_GRID_KARRAS};
    otu_gauss g;
    otu_gauss_default(&g, f->sde[1]);
    diffsde_score *sc = otu_model(f->ctx, &g);
    for (int mi = 0; mi < 3; mi++) {
        assert_int_equal(diffsde_ode_method_order(METHODS[mi]), ORDERS[mi]);
        assert_int_equal(diffsde_ode_method_is_adaptive(METHODS[mi]), 0);
        diffsde_ode_options o;
        diffsde_ode_options_default(&o);
        o.method = METHODS[mi];
        diffsde_ode *ode = NULL;
        assert_int_equal(diffsde_ode_new(f->ctx, g.sde, sc, &o, &ode), DIFFSDE_OK);
        diffsde_ode_options r;
        assert_int_equal(diffsde_ode_get_options(ode, &r), DIFFSDE_OK);
        assert_int_equal(r.steps, def_steps[mi]);
        assert_int_equal(r.grid, def_grid[mi]);
        diffsde_ode_free(ode);
        for (size_t N = 1; N <= 9; N += 4) {
            diffsde_ode_stats st;
            unsigned long calls0 = g.calls;
            solve_error(f->ctx, &g, METHODS[mi], DIFFSDE_GRID_DEFAULT, N, 1.0, 0.5, &st);
            const uint64_t nfe = mi == 2 ? 2 * N - 1 : N;
            assert_int_equal(st.steps, N);
            assert_int_equal(st.accepted, N * NROWS); /* summed over samples (ode.h) */
            assert_int_equal(st.rejected, 0);
            assert_int_equal(st.nfe_min, nfe);
            assert_int_equal(st.nfe_max, nfe);
            assert_close(st.nfe_per_sample, (double)nfe, 0.0, 0.0);
            assert_int_equal(st.score_calls, nfe);
            assert_int_equal(st.score_evals, nfe * NROWS);
            assert_int_equal(g.calls - calls0, nfe);
        }
    }
    diffsde_score_free(sc);
}

/* Encode ε → T then decode T → ε with N steps. The one-way errors e(N) extrapolated from
 * N = 256 at the method's order, e(256)·(256/N)^p, are ≤ 3e-5 standardised for the N chosen
 * (ddim 2·10⁵, the others 2000); the round trip must return the input to within the sum of
 * the two, with 25 % for the extrapolation: ≤ 2.5 · e(N). */
static void test_round_trip(void **state)
{
    fixture *f = *state;
    for (int k = 0; k < NKINDS; k++) {
        otu_gauss g;
        otu_gauss_default(&g, f->sde[k]);
        const double eps = eps_of(g.sde);
        diffsde_score *sc = otu_model(f->ctx, &g);
        for (int mi = 0; mi < 3; mi++) {
            diffsde_ode_options o;
            diffsde_ode_options_default(&o);
            o.method = METHODS[mi];
            o.steps = mi == 0 ? 200000 : 2000;
            const double e256 =
                fmax(solve_error(f->ctx, &g, METHODS[mi], DIFFSDE_GRID_DEFAULT, 256, eps, 1.0, NULL),
                     solve_error(f->ctx, &g, METHODS[mi], DIFFSDE_GRID_DEFAULT, 256, 1.0, eps, NULL));
            const double e_pred = e256 * pow(256.0 / (double)o.steps, ORDERS[mi]);
            assert_true(e_pred <= 3e-5);
            diffsde_ode *ode = NULL;
            assert_int_equal(diffsde_ode_new(f->ctx, g.sde, sc, &o, &ode), DIFFSDE_OK);
            double x[NROWS * 2], x_in[NROWS * 2];
            rows_at(&g, eps, x);
            memcpy(x_in, x, sizeof x);
            assert_int_equal(diffsde_ode_encode(ode, NROWS, 2, x), DIFFSDE_OK);
            assert_int_equal(diffsde_ode_decode(ode, NROWS, 2, x), DIFFSDE_OK);
            double err = 0.0;
            for (int i = 0; i < NROWS * 2; i++)
                err = fmax(err, fabs(x[i] - x_in[i]) / sqrt(otu_var(&g, (size_t)i % 2, eps)));
            printf("# round trip %-15s %-6s N=%-6zu %.2e (one-way prediction %.2e)\n",
                   diffsde_ode_method_name(METHODS[mi]), KIND_NAMES[k], o.steps, err, e_pred);
            assert_true(err <= 2.5 * e_pred);
            diffsde_ode_free(ode);
        }
        diffsde_score_free(sc);
    }
}

/* ---- a user SDE equal to VP ------------------------------------------------------------- */

static double B_of(double t)
{
    return DIFFSDE_VP_BETA_MIN * t + 0.5 * (DIFFSDE_VP_BETA_MAX - DIFFSDE_VP_BETA_MIN) * t * t;
}
static double u_f(double t, void *u)
{
    (void)u;
    return -0.5 * (DIFFSDE_VP_BETA_MIN + t * (DIFFSDE_VP_BETA_MAX - DIFFSDE_VP_BETA_MIN));
}
static double u_g2(double t, void *u)
{
    return -2.0 * u_f(t, u);
}
static double u_alpha(double t, void *u)
{
    (void)u;
    return exp(-0.5 * B_of(t));
}
static double u_sigma(double t, void *u)
{
    (void)u;
    return sqrt(-expm1(-B_of(t)));
}

/* Only α(t), σ(t) and λ enter the few-step formulas, so a user SDE with VP's coefficients
 * gives VP's answer to the accuracy of its numerically inverted λ (grid nodes to ~1e-15
 * relative, sde.h) and of its λ = 2 log(α/σ): 1e-13 absolute for |x| ≲ 3 (measured 3e-15). */
static void test_user_sde_matches_vp(void **state)
{
    fixture *f = *state;
    diffsde_sde_user def = {u_f, u_g2, u_alpha, u_sigma, NULL, 1.0, 1.0};
    diffsde_sde *usr = NULL;
    assert_int_equal(diffsde_sde_new_user(f->ctx, &def, &usr), DIFFSDE_OK);
    otu_gauss gv, gu;
    otu_gauss_default(&gv, f->sde[1]);
    otu_gauss_default(&gu, usr);
    diffsde_score *sv = otu_model(f->ctx, &gv), *su = otu_model(f->ctx, &gu);
    for (int mi = 0; mi < 3; mi++) {
        double xv[NROWS * 2], xu[NROWS * 2];
        diffsde_ode_options o;
        diffsde_ode_options_default(&o);
        o.method = METHODS[mi];
        o.steps = 12;
        o.eps = 1e-3;
        diffsde_ode *ov = NULL, *ou = NULL;
        assert_int_equal(diffsde_ode_new(f->ctx, gv.sde, sv, &o, &ov), DIFFSDE_OK);
        assert_int_equal(diffsde_ode_new(f->ctx, gu.sde, su, &o, &ou), DIFFSDE_OK);
        rows_at(&gv, 1.0, xv);
        memcpy(xu, xv, sizeof xv);
        assert_int_equal(diffsde_ode_decode(ov, NROWS, 2, xv), DIFFSDE_OK);
        assert_int_equal(diffsde_ode_decode(ou, NROWS, 2, xu), DIFFSDE_OK);
        for (int i = 0; i < NROWS * 2; i++)
            assert_close(xu[i], xv[i], 0.0, 1e-13);
        diffsde_ode_free(ov);
        diffsde_ode_free(ou);
    }
    diffsde_score_free(sv);
    diffsde_score_free(su);
    diffsde_sde_free(usr);
}

/* ---- a model that fails ----------------------------------------------------------------- */

typedef struct nan_model {
    otu_gauss g;
    unsigned long nan_at; /* the callback invocation (1-based) that returns a NaN in row 1 */
} nan_model;

static int nan_cb(size_t n, size_t d, const double *t, const double *x, double *out, void *user)
{
    nan_model *nm = user;
    int st = otu_score_cb(n, d, t, x, out, &nm->g);
    if (nm->g.calls == nm->nan_at && n > 1)
        out[d] = NAN;
    return st;
}

static void test_model_nan(void **state)
{
    fixture *f = *state;
    const char *needle[3] = {"ddim step 3 of 5", "dpm-solver++2m step 3 of 5",
                             "edm-heun step 2 of 5"};
    for (int mi = 0; mi < 3; mi++) {
        nan_model nm;
        otu_gauss_default(&nm.g, f->sde[2]);
        nm.nan_at = 3;
        diffsde_score *sc = NULL;
        assert_int_equal(diffsde_score_new(f->ctx, nan_cb, &nm, DIFFSDE_PARAM_SCORE, &sc),
                         DIFFSDE_OK);
        diffsde_ode_options o;
        diffsde_ode_options_default(&o);
        o.method = METHODS[mi];
        o.steps = 5;
        diffsde_ode *ode = NULL;
        assert_int_equal(diffsde_ode_new(f->ctx, nm.g.sde, sc, &o, &ode), DIFFSDE_OK);
        double x[NROWS * 2], x_in[NROWS * 2];
        rows_at(&nm.g, 1.0, x);
        memcpy(x_in, x, sizeof x);
        assert_int_equal(diffsde_ode_decode(ode, NROWS, 2, x), DIFFSDE_ENONFINITE);
        const char *msg = diffsde_errmsg(f->ctx);
        if (!strstr(msg, needle[mi]) || !strstr(msg, "sample 1"))
            fail_msg("message: %s", msg);
        assert_memory_equal(x, x_in, sizeof x);
        diffsde_ode_free(ode);
        diffsde_score_free(sc);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grid_names),
        cmocka_unit_test(test_grid_spacing),
        cmocka_unit_test(test_grid_ve_closed_form),
        cmocka_unit_test(test_grid_invalid),
        cmocka_unit_test(test_convergence_order),
        cmocka_unit_test(test_point_data_exact),
        cmocka_unit_test(test_nfe_and_defaults),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_user_sde_matches_vp),
        cmocka_unit_test(test_model_nan),
    };
    return cmocka_run_group_tests_name("ode_fewstep", tests, setup, teardown);
}
