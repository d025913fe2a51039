/*
 * Log-likelihoods through the flow ODE (diffsde/likelihood.h), against exact answers:
 * - Gaussian data (ode_testutil.h): log p_ε in closed form; the divergence by the model's
 *   callback and by finite differences; the latent against the exact flow map; VE, VP, sub-VP.
 * - ode_gmm3d.json (an independent NumPy solve to ~1e-10): the ODE log-likelihood with the
 *   exact p_1 and with the prior as terminal density, ε = 1e-5.
 * - The validation: ring8 and random:16,4,7 (D = 16, K = 4, seed 7) under VE, VP and
 *   sub-VP, points drawn from p_ε, exact divergence and terminal p_T, rtol = atol = 1e-8:
 *   |log p − exact log p_ε| < 1e-5; with the prior as terminal density the difference is the
 *   prior-mismatch term log prior(x_T) − log p_T(x_T).
 * - Hutchinson: unbiased within its reported standard error (statistics stated at the test);
 *   exact with Rademacher probes when the score's Jacobian is diagonal; independent of the
 *   batch.
 * - Counting and batching of the finite-difference evaluations (one model call per
 *   right-hand side when the scratch allows, several otherwise, with identical results).
 * - Bits per dimension, dequantisation with its documented stream, names, option and argument
 *   validation, model errors restated with the point and t.
 */
#define _DEFAULT_SOURCE /* M_PI, used by ode_testutil.h */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ode_testutil.h"
#include "testutil.h"

#define SEED UINT64_C(0x10c1d5eed)

typedef struct fixture {
    diffsde_ctx *ctx;
    diffsde_sde *sde[3]; /* default VE, VP, sub-VP */
    diffsde_noise *noise;
} fixture;

static const char *const sde_names[3] = {"ve", "vp", "subvp"};

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f || diffsde_ctx_new(&f->ctx, NULL))
        return -1;
    if (otu_sdes_new(f->ctx, f->sde))
        return -1;
    if (diffsde_noise_new_philox(f->ctx, SEED, &f->noise))
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    otu_sdes_free(f->sde);
    diffsde_noise_free(f->noise);
    diffsde_ctx_free(f->ctx);
    free(f);
    return 0;
}

static diffsde_loglik_options tight(double tol, diffsde_terminal terminal)
{
    diffsde_loglik_options o;
    diffsde_loglik_options_default(&o);
    o.ode.rtol = tol;
    o.ode.atol = tol;
    o.terminal = terminal;
    return o;
}

/* One evaluation on a fresh object. */
static int run_once(diffsde_ctx *ctx, const diffsde_sde *sde, const diffsde_score *score,
                    const diffsde_loglik_options *o, const diffsde_noise *noise, uint64_t sample0,
                    size_t n, size_t d, const double *x, double *logp, double *latent,
                    double *terminal, double *delta, diffsde_loglik_stats *st)
{
    diffsde_loglik *ll;
    int rc = diffsde_loglik_new(ctx, sde, score, o, &ll);
    if (rc != DIFFSDE_OK)
        return rc;
    rc = diffsde_loglik_eval(ll, noise, sample0, n, d, x, logp, latent, terminal, delta);
    if (st)
        diffsde_loglik_get_stats(ll, st);
    diffsde_loglik_free(ll);
    return rc;
}

/* A Gaussian model without the divergence callback: the exact divergence then comes from d
 * finite-difference JVPs. */
static diffsde_score *otu_model_fd(diffsde_ctx *ctx, otu_gauss *g)
{
    diffsde_score *s = otu_model(ctx, g);
    if (s)
        diffsde_score_set_divergence(s, NULL);
    return s;
}

/* Points around p_ε's mean, some in the tails. */
#define GN 5
static void gauss_points(const otu_gauss *g, double eps, double *x)
{
    static const double u[GN][2] = {
        {0.0, 0.0}, {1.385, -0.731}, {-2.213, 0.4}, {0.25, 2.875}, {-3.1, -2.6}};
    double a;
    diffsde_sde_alpha(g->sde, eps, &a);
    for (size_t i = 0; i < GN; i++)
        for (size_t j = 0; j < 2; j++)
            x[i * 2 + j] = a * g->m[j] + sqrt(otu_var(g, j, eps)) * u[i][j];
}

/* ---------------------------------------------------------------------------------------- */

/* Gaussian data, terminal exact: the only error left is the integration's (and the finite
 * differences' rounding), ≤ 1e-6 at rtol = atol = 1e-8. The latent is the exact flow map and
 * logp = terminal + delta. */
static void test_gaussian_closed_form(void **state)
{
    fixture *f = *state;
    const double eps = 1e-5;
    for (int k = 0; k < 3; k++) {
        otu_gauss g;
        otu_gauss_default(&g, f->sde[k]);
        double T, x[GN * 2], exact[GN], tv[GN];
        diffsde_sde_time_range(f->sde[k], NULL, &T);
        gauss_points(&g, eps, x);
        for (size_t i = 0; i < GN; i++)
            tv[i] = eps;
        otu_logp_cb(GN, 2, tv, x, exact, &g);
        for (int fd = 0; fd < 2; fd++) {
            diffsde_score *s = fd ? otu_model_fd(f->ctx, &g) : otu_model(f->ctx, &g);
            assert_non_null(s);
            diffsde_loglik_options o = tight(1e-8, DIFFSDE_TERMINAL_EXACT);
            double lp[GN], lat[GN * 2], term[GN], del[GN];
            diffsde_loglik_stats st;
            otu_ok(run_once(f->ctx, f->sde[k], s, &o, NULL, 0, GN, 2, x, lp, lat, term, del, &st),
               f->ctx);
            double worst = 0;
            for (size_t i = 0; i < GN; i++) {
                assert_close(lp[i], exact[i], 0, 1e-6);
                worst = fmax(worst, fabs(lp[i] - exact[i]));
                assert_close(lp[i], term[i] + del[i], 1e-15, 1e-15);
                double xT[2];
                otu_flow(&g, eps, T, x + 2 * i, xT);
                assert_close(lat[2 * i], xT[0], 1e-6, 1e-6);
                assert_close(lat[2 * i + 1], xT[1], 1e-6, 1e-6);
            }
            /* With the callback: one model call and one divergence call per rhs; with finite
             * differences 1 + 2d = 5 evaluations per point and rhs, still one call. */
            if (fd) {
                assert_int_equal(st.div_calls, 0);
                assert_true(st.ode.score_evals % 5 == 0 && st.ode.nfe_min % 5 == 0);
            } else {
                assert_int_equal(st.div_calls, st.ode.score_calls);
            }
            assert_close(st.ode.nfe_per_sample, (double)st.ode.score_evals / GN, 1e-15, 0);
            printf("# gaussian %s %s: worst |logp - exact| = %.2e, nfe/sample %.0f\n",
                   sde_names[k], fd ? "fd" : "callback", worst, st.ode.nfe_per_sample);
            diffsde_score_free(s);
        }
    }
}

/* The augmented ODE under every integrator that accepts it (Gaussian data under VP, the
 * divergence callback, terminal exact):
 * - the adaptive ones at rtol = atol = 1e-8, per sample and whole batch: the error of log p
 *   within the method's global-error factor times the tolerance. The likelihood integrates in
 *   the encoding direction (ε → T) and its last component is weighted in the error norm like
 *   the others, so the factors are the encoding ones of tests/test_ode_backends.c (about
 *   twice their measured maxima) and LADDER_C = 10 of tests/test_ode_rk45.c for rk45. Measured
 *   here, in units of 1e-8 (per sample | whole batch): rk45 0.5 | 0.7, cvode-adams 20 | 30,
 *   cvode-bdf 60 | 28, arkode-dp 1.1 | 2.3, gsl-rkf45 16 | 16, gsl-rk8pd 0.16 | 0.17,
 *   gsl-msadams 164 | 157.
 * - the fixed-grid ones converge at their order: log2 of the error ratio from N = 100 to 200
 *   steps within ±0.3 of it;
 * - the few-step ones are refused (test_option_validation). */
static double global_factor(diffsde_ode_method m)
{
    switch (m) {
    case DIFFSDE_ODE_RK45: return 10;
    case DIFFSDE_ODE_CVODE_ADAMS: return 400;
    case DIFFSDE_ODE_CVODE_BDF: return 800;
    case DIFFSDE_ODE_ARKODE_DP: return 10;
    case DIFFSDE_ODE_GSL_RKF45: return 150;
    case DIFFSDE_ODE_GSL_RK8PD: return 5;
    case DIFFSDE_ODE_GSL_MSADAMS: return 1200;
    default: return 0;
    }
}

static void test_every_integrator(void **state)
{
    fixture *f = *state;
    const double eps = 1e-5;
    otu_gauss g;
    otu_gauss_default(&g, f->sde[1]);
    double x[GN * 2], exact[GN], tv[GN], lp[GN];
    gauss_points(&g, eps, x);
    for (size_t i = 0; i < GN; i++)
        tv[i] = eps;
    otu_logp_cb(GN, 2, tv, x, exact, &g);
    diffsde_score *s = otu_model(f->ctx, &g);
    for (int m = 0; m < DIFFSDE_ODE_NMETHODS; m++) {
        if (m == DIFFSDE_ODE_DDIM || m == DIFFSDE_ODE_DPM_SOLVER_PP_2M ||
            m == DIFFSDE_ODE_EDM_HEUN)
            continue;
        const int adaptive = diffsde_ode_method_is_adaptive((diffsde_ode_method)m);
        double err[2] = {0, 0};
        for (int v = 0; v < 2; v++) {
            diffsde_loglik_options o = tight(1e-8, DIFFSDE_TERMINAL_EXACT);
            o.ode.method = (diffsde_ode_method)m;
            if (adaptive)
                o.ode.whole_batch = v;
            else
                o.ode.steps = v ? 200 : 100;
            otu_ok(run_once(f->ctx, f->sde[1], s, &o, NULL, 0, GN, 2, x, lp, NULL, NULL, NULL, NULL),
               f->ctx);
            for (size_t i = 0; i < GN; i++)
                err[v] = fmax(err[v], fabs(lp[i] - exact[i]));
        }
        const char *name = diffsde_ode_method_name((diffsde_ode_method)m);
        if (adaptive) {
            printf("# %s: max error %.2e (per sample), %.2e (whole batch)\n", name, err[0],
                   err[1]);
            const double bound = global_factor((diffsde_ode_method)m) * 1e-8;
            assert_true(err[0] <= bound && err[1] <= bound);
        } else {
            const double order = log2(err[0] / err[1]);
            printf("# %s: max error %.2e (N = 100), %.2e (N = 200), observed order %.2f\n", name,
                   err[0], err[1], order);
            assert_close(order, diffsde_ode_method_order((diffsde_ode_method)m), 0, 0.3);
        }
    }
    diffsde_score_free(s);
}

/* Evaluation counts and batching, with Euler on a fixed grid of N steps so that the number
 * of right-hand sides is known: per point and rhs 1 + 2d evaluations (finite differences),
 * 1 + 2K (Hutchinson) or 1 (callback), all in one model call while the scratch allows. */
static void test_counts(void **state)
{
    fixture *f = *state;
    otu_gauss g;
    otu_gauss_default(&g, f->sde[1]);
    double x[GN * 2], lp[GN];
    gauss_points(&g, 1e-5, x);
    const size_t N = 7;
    for (int mode = 0; mode < 3; mode++) {
        diffsde_score *s = mode == 0 ? otu_model(f->ctx, &g) : otu_model_fd(f->ctx, &g);
        diffsde_loglik_options o;
        diffsde_loglik_options_default(&o);
        o.ode.method = DIFFSDE_ODE_EULER;
        o.ode.steps = N;
        if (mode == 2) {
            o.divergence = DIFFSDE_DIVERGENCE_HUTCHINSON;
            o.probes = 3;
        }
        diffsde_loglik_stats st;
        otu_ok(run_once(f->ctx, f->sde[1], s, &o, f->noise, 0, GN, 2, x, lp, NULL, NULL, NULL, &st),
           f->ctx);
        const uint64_t per = mode == 0 ? 1 : mode == 1 ? 5 : 7;
        assert_int_equal(st.ode.score_calls, N);
        assert_int_equal(st.ode.score_evals, N * GN * per);
        assert_int_equal(st.ode.nfe_min, N * per);
        assert_int_equal(st.ode.nfe_max, N * per);
        assert_int_equal(st.div_calls, mode == 0 ? N : 0);
        diffsde_score_free(s);
    }
}

/* A batch too large for one model call per rhs (d = 16 axes: 33 points of 34 doubles per row
 * against a 2^22-double scratch): the evaluations are split over several calls, and every
 * point's result is the same as when it is evaluated alone. */
static void test_chunked_batch(void **state)
{
    fixture *f = *state;
    enum { D = 16, NB = 4000 };
    otu_gauss g;
    g.sde = f->sde[2];
    g.d = D;
    g.calls = 0;
    for (size_t j = 0; j < D; j++) {
        g.m[j] = 0.3 * (double)j - 2.0;
        g.v[j] = 0.2 + 0.15 * (double)j;
    }
    diffsde_score *s = otu_model_fd(f->ctx, &g);
    double *x = malloc(sizeof(double) * NB * D), *lp = malloc(sizeof(double) * NB);
    assert_non_null(x);
    assert_non_null(lp);
    for (size_t i = 0; i < NB; i++)
        for (size_t j = 0; j < D; j++)
            x[i * D + j] = g.m[j] + diffsde_noise_normal_at(SEED, DIFFSDE_STREAM_USER, i, 0, j);
    diffsde_loglik_options o = tight(1e-5, DIFFSDE_TERMINAL_EXACT);
    o.ode.method = DIFFSDE_ODE_EULER;
    o.ode.steps = 2;
    diffsde_loglik_stats st;
    otu_ok(run_once(f->ctx, f->sde[2], s, &o, NULL, 0, NB, D, x, lp, NULL, NULL, NULL, &st), f->ctx);
    assert_int_equal(st.ode.score_evals, (uint64_t)2 * NB * (1 + 2 * D));
    assert_true(st.ode.score_calls > 2);
    static const size_t pick[] = {0, 1, 1234, NB - 1};
    for (size_t p = 0; p < sizeof pick / sizeof pick[0]; p++) {
        double one;
        otu_ok(run_once(f->ctx, f->sde[2], s, &o, NULL, 0, 1, D, x + pick[p] * D, &one, NULL, NULL,
                    NULL, NULL),
           f->ctx);
        assert_true(one == lp[pick[p]]);
    }
    free(x);
    free(lp);
    diffsde_score_free(s);
}

/* ode_gmm3d.json: the reference solve's log-likelihoods at ε = 1e-5, with the exact p_1
 * (logp_ode_exact_prior) and with the standard prior (logp_ode_scoresde_prior) as terminal
 * density, reached here at rtol = atol = 1e-10 with the exact divergence. */
static void test_fixture_gmm3d(void **state)
{
    fixture *f = *state;
    char path[4096];
    otu_fixture_path("problem_gmm3d.json", path, sizeof path);
    diffsde_gmm *gmm;
    otu_ok(diffsde_gmm_from_json_file(f->ctx, path, &gmm), f->ctx);
    otu_fixture_path("ode_gmm3d.json", path, sizeof path);
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    assert_non_null(root);
    for (int k = 0; k < 3; k++) {
        const json_t *ll = json_object_get(json_object_get(json_object_get(root, "sdes"),
                                                           sde_names[k]),
                                           "loglik");
        assert_non_null(ll);
        const json_t *jx = json_object_get(ll, "x");
        const size_t n = json_array_size(jx), d = 3;
        assert_int_equal(n, 16);
        double x[16 * 3], want_exact[16], want_prior[16], lp_e[16], lp_p[16];
        for (size_t i = 0; i < n; i++) {
            for (size_t j = 0; j < d; j++)
                x[i * d + j] = json_number_value(json_array_get(json_array_get(jx, i), j));
            want_exact[i] =
                json_number_value(json_array_get(json_object_get(ll, "logp_ode_exact_prior"), i));
            want_prior[i] = json_number_value(
                json_array_get(json_object_get(ll, "logp_ode_scoresde_prior"), i));
        }
        diffsde_score *s;
        otu_ok(diffsde_gmm_score_new(gmm, f->sde[k], &s), f->ctx);
        diffsde_loglik_options o = tight(1e-10, DIFFSDE_TERMINAL_EXACT);
        o.ode.eps = json_number_value(json_object_get(ll, "eps"));
        otu_ok(run_once(f->ctx, f->sde[k], s, &o, NULL, 0, n, d, x, lp_e, NULL, NULL, NULL, NULL),
           f->ctx);
        o.terminal = DIFFSDE_TERMINAL_PRIOR;
        otu_ok(run_once(f->ctx, f->sde[k], s, &o, NULL, 0, n, d, x, lp_p, NULL, NULL, NULL, NULL),
           f->ctx);
        double we = 0, wp = 0;
        for (size_t i = 0; i < n; i++) {
            we = fmax(we, fabs(lp_e[i] - want_exact[i]));
            wp = fmax(wp, fabs(lp_p[i] - want_prior[i]));
            assert_close(lp_e[i], want_exact[i], 0, 1e-8);
            assert_close(lp_p[i], want_prior[i], 0, 1e-8);
        }
        printf("# ode_gmm3d %s: max error terminal exact %.2e, terminal prior %.2e\n",
               sde_names[k], we, wp);
        diffsde_score_free(s);
    }
    json_decref(root);
    diffsde_gmm_free(gmm);
}

/* The validation on ring8 and random:16,4,7 (D = 16, K = 4). NP points from p_ε per
 * SDE (exact samples, diffsde_gmm_sample), exact divergence, rtol = atol = 1e-8:
 * - terminal exact: |log p − log p_ε| < 1e-5 per point;
 * - terminal prior: log p_prior − log p_exact = log prior(x_T) − log p_T(x_T) at the latent
 *   (to 1e-8), and log p_prior − log p_ε equals that mismatch within 1e-5. */
#define NP 12
static void test_mixture_validation(void **state)
{
    fixture *f = *state;
    static const char *const models[] = {"ring8", "random:16,4,7"};
    const double eps = 1e-5;
    for (int mi = 0; mi < 2; mi++) {
        diffsde_gmm *gmm;
        otu_ok(diffsde_gmm_new_builtin(f->ctx, models[mi], &gmm), f->ctx);
        const size_t d = diffsde_gmm_dim(gmm);
        double *x = malloc(sizeof(double) * NP * d), *lat = malloc(sizeof(double) * NP * d);
        assert_non_null(x);
        assert_non_null(lat);
        for (int k = 0; k < 3; k++) {
            double T, tv[NP], tT[NP], exact[NP], lp_e[NP], lp_p[NP], prior[NP], pT[NP];
            diffsde_sde_time_range(f->sde[k], NULL, &T);
            diffsde_gmm_eval *ev;
            otu_ok(diffsde_gmm_eval_new(gmm, f->sde[k], &ev), f->ctx);
            otu_ok(diffsde_gmm_sample(ev, f->noise, eps, (uint64_t)(100 * mi + 10 * k) * NP, NP, x),
               f->ctx);
            for (size_t i = 0; i < NP; i++) {
                tv[i] = eps;
                tT[i] = T;
            }
            otu_ok(diffsde_gmm_evaluate(ev, NP, tv, x, exact, NULL, NULL, NULL), f->ctx);
            diffsde_score *s;
            otu_ok(diffsde_gmm_score_new(gmm, f->sde[k], &s), f->ctx);
            diffsde_loglik_options o = tight(1e-8, DIFFSDE_TERMINAL_EXACT);
            o.ode.eps = eps;
            diffsde_loglik_stats st;
            otu_ok(run_once(f->ctx, f->sde[k], s, &o, NULL, 0, NP, d, x, lp_e, lat, NULL, NULL, &st),
               f->ctx);
            o.terminal = DIFFSDE_TERMINAL_PRIOR;
            otu_ok(run_once(f->ctx, f->sde[k], s, &o, NULL, 0, NP, d, x, lp_p, NULL, NULL, NULL,
                        NULL),
               f->ctx);
            otu_ok(diffsde_sde_prior_logpdf(f->sde[k], NP, d, lat, prior), f->ctx);
            otu_ok(diffsde_gmm_evaluate(ev, NP, tT, lat, pT, NULL, NULL, NULL), f->ctx);
            double worst = 0, mis = 0;
            for (size_t i = 0; i < NP; i++) {
                worst = fmax(worst, fabs(lp_e[i] - exact[i]));
                mis = fmax(mis, fabs(prior[i] - pT[i]));
                assert_close(lp_e[i], exact[i], 0, 1e-5);
                assert_close(lp_p[i] - lp_e[i], prior[i] - pT[i], 0, 1e-8);
                assert_close(lp_p[i] - exact[i], prior[i] - pT[i], 0, 1e-5);
            }
            printf("# %s %s: worst |logp - log p_eps| = %.2e (terminal exact), max prior "
                   "mismatch %.2e, nfe/sample %.0f\n",
                   models[mi], sde_names[k], worst, mis, st.ode.nfe_per_sample);
            diffsde_score_free(s);
            diffsde_gmm_eval_free(ev);
        }
        free(x);
        free(lat);
        diffsde_gmm_free(gmm);
    }
}

/* Hutchinson's estimate is unbiased. NH copies of one point in one batch draw independent
 * probes (point i uses the probe rows of sample i), so their log-likelihoods are NH i.i.d.
 * estimates; their mean must lie within 4 reported standard errors of the exact value
 * (gmm3d under VP, a full Jacobian, so the estimate does vary; integration error at
 * rtol = atol = 1e-7 is ≪ the standard error). Seed SEED, NH = 2000 per probe kind and K ∈
 * {1, 2}: four checks, each failing with probability 6.3e-5 (two-sided normal tail at 4 SE, by
 * the central limit theorem), ≤ 2.6e-4 together. */
#define NH 2000
static void test_hutchinson_unbiased(void **state)
{
    fixture *f = *state;
    char path[4096];
    otu_fixture_path("problem_gmm3d.json", path, sizeof path);
    diffsde_gmm *gmm;
    otu_ok(diffsde_gmm_from_json_file(f->ctx, path, &gmm), f->ctx);
    diffsde_score *s;
    otu_ok(diffsde_gmm_score_new(gmm, f->sde[1], &s), f->ctx);
    const size_t d = 3;
    const double x0[3] = {0.8125, -1.0625, 0.4375};
    double *x = malloc(sizeof(double) * NH * d), *lp = malloc(sizeof(double) * NH), exact;
    assert_non_null(x);
    assert_non_null(lp);
    for (size_t i = 0; i < NH; i++)
        memcpy(x + i * d, x0, sizeof x0);
    diffsde_loglik_options o = tight(1e-7, DIFFSDE_TERMINAL_EXACT);
    otu_ok(run_once(f->ctx, f->sde[1], s, &o, NULL, 0, 1, d, x0, &exact, NULL, NULL, NULL, NULL),
       f->ctx);
    o.divergence = DIFFSDE_DIVERGENCE_HUTCHINSON;
    for (int kind = 0; kind < 2; kind++) {
        for (size_t K = 1; K <= 2; K++) {
            o.probe = kind ? DIFFSDE_PROBE_GAUSSIAN : DIFFSDE_PROBE_RADEMACHER;
            o.probes = K;
            diffsde_loglik_stats st;
            otu_ok(run_once(f->ctx, f->sde[1], s, &o, f->noise, 1000, NH, d, x, lp, NULL, NULL, NULL,
                        &st),
               f->ctx);
            printf("# hutchinson %s K=%zu: mean %.6f exact %.6f (%.2f SE, SE %.2e)\n",
                   diffsde_probe_name(o.probe), K, st.mean, exact,
                   (st.mean - exact) / st.std_error, st.std_error);
            assert_true(st.std_error > 0);
            assert_close(st.mean, exact, 0, 4 * st.std_error);
            /* A point's estimate does not depend on its batch: alone, with its global index. */
            double one;
            otu_ok(run_once(f->ctx, f->sde[1], s, &o, f->noise, 1000 + 37, 1, d, x0, &one, NULL,
                        NULL, NULL, NULL),
               f->ctx);
            assert_close(one, lp[37], 1e-13, 0);
        }
    }
    free(x);
    free(lp);
    diffsde_score_free(s);
    diffsde_gmm_free(gmm);
}

/* With a diagonal Jacobian (Gaussian data, independent coordinates) a Rademacher probe gives
 * vᵀJv = Σ J_jj exactly: Hutchinson is then exact, which checks the probes' scaling. */
static void test_hutchinson_diagonal(void **state)
{
    fixture *f = *state;
    const double eps = 1e-5;
    otu_gauss g;
    otu_gauss_default(&g, f->sde[0]);
    double x[GN * 2], exact[GN], tv[GN], lp[GN];
    gauss_points(&g, eps, x);
    for (size_t i = 0; i < GN; i++)
        tv[i] = eps;
    otu_logp_cb(GN, 2, tv, x, exact, &g);
    diffsde_score *s = otu_model(f->ctx, &g);
    diffsde_loglik_options o = tight(1e-8, DIFFSDE_TERMINAL_EXACT);
    o.divergence = DIFFSDE_DIVERGENCE_HUTCHINSON;
    o.probes = 2;
    diffsde_loglik_stats st;
    otu_ok(run_once(f->ctx, f->sde[0], s, &o, f->noise, 3, GN, 2, x, lp, NULL, NULL, NULL, &st),
       f->ctx);
    for (size_t i = 0; i < GN; i++)
        assert_close(lp[i], exact[i], 0, 1e-6);
    assert_int_equal(st.div_calls, 0); /* Hutchinson never uses the callback */
    diffsde_score_free(s);
}

static void test_bits_per_dim(void **state)
{
    (void)state;
    const double ln2 = log(2.0);
    assert_close(diffsde_bits_per_dim(-10.5, 4, 0), 10.5 / (4 * ln2), 1e-15, 0);
    const double b = 2.0 / 256;
    assert_close(diffsde_bits_per_dim(-10.5, 4, b), -(-10.5 + 4 * log(b)) / (4 * ln2), 1e-15, 0);
    /* 8-bit data scaled to [−1, 1] with the uniform density on [−1, 1]^d: log p = −d log 2,
     * so each dimension carries exactly 8 bits. */
    assert_close(diffsde_bits_per_dim(-3 * ln2, 3, b), 8.0, 1e-14, 0);
    assert_true(isnan(diffsde_bits_per_dim(-1, 0, 0)));
    assert_true(isnan(diffsde_bits_per_dim(-1, 2, -0.5)));
    assert_true(isnan(diffsde_bits_per_dim(-1, 2, NAN)));
}

/* Dequantisation moves point i to x + b·u with u the uniforms of (DEQUANT, sample0 + i,
 * step 0): the log-likelihood is the exact log p_ε there; the statistics follow. */
static void test_dequantize(void **state)
{
    fixture *f = *state;
    const double eps = 1e-5, b = 0.125;
    const uint64_t sample0 = 5;
    otu_gauss g;
    otu_gauss_default(&g, f->sde[1]);
    double x[GN * 2], xd[GN * 2], exact[GN], tv[GN], lp[GN];
    gauss_points(&g, eps, x);
    for (size_t i = 0; i < GN; i++) {
        tv[i] = eps;
        for (size_t j = 0; j < 2; j++)
            xd[i * 2 + j] = x[i * 2 + j] + b * diffsde_noise_uniform_at(SEED, DIFFSDE_STREAM_DEQUANT,
                                                                        sample0 + i, 0, j);
    }
    otu_logp_cb(GN, 2, tv, xd, exact, &g);
    diffsde_score *s = otu_model(f->ctx, &g);
    diffsde_loglik_options o = tight(1e-8, DIFFSDE_TERMINAL_EXACT);
    o.bin_width = b;
    o.dequantize = 1;
    diffsde_loglik_stats st;
    otu_ok(run_once(f->ctx, f->sde[1], s, &o, f->noise, sample0, GN, 2, x, lp, NULL, NULL, NULL,
                &st),
       f->ctx);
    double mean = 0, ss = 0;
    for (size_t i = 0; i < GN; i++) {
        assert_close(lp[i], exact[i], 0, 1e-6);
        mean += lp[i] / GN;
    }
    for (size_t i = 0; i < GN; i++)
        ss += (lp[i] - mean) * (lp[i] - mean);
    assert_close(st.mean, mean, 1e-14, 1e-14);
    assert_close(st.std_error, sqrt(ss / (GN - 1) / GN), 1e-12, 0);
    assert_close(st.bpd, -(mean + 2 * log(b)) / (2 * log(2.0)), 1e-14, 0);
    /* Without dequantisation the points are taken as they are (nothing added silently) and
     * b only enters bits/dim. */
    o.dequantize = 0;
    otu_logp_cb(GN, 2, tv, x, exact, &g);
    otu_ok(run_once(f->ctx, f->sde[1], s, &o, NULL, sample0, GN, 2, x, lp, NULL, NULL, NULL, &st),
       f->ctx);
    for (size_t i = 0; i < GN; i++)
        assert_close(lp[i], exact[i], 0, 1e-6);
    diffsde_score_free(s);
}

static void test_names(void **state)
{
    (void)state;
    diffsde_divergence dv;
    diffsde_probe pr;
    diffsde_terminal tm;
    assert_string_equal(diffsde_divergence_name(DIFFSDE_DIVERGENCE_EXACT), "exact");
    assert_string_equal(diffsde_divergence_name(DIFFSDE_DIVERGENCE_HUTCHINSON), "hutchinson");
    assert_string_equal(diffsde_divergence_name((diffsde_divergence)7), "");
    assert_string_equal(diffsde_probe_name(DIFFSDE_PROBE_RADEMACHER), "rademacher");
    assert_string_equal(diffsde_probe_name(DIFFSDE_PROBE_GAUSSIAN), "gaussian");
    assert_string_equal(diffsde_probe_name((diffsde_probe)-1), "");
    assert_string_equal(diffsde_terminal_name(DIFFSDE_TERMINAL_PRIOR), "prior");
    assert_string_equal(diffsde_terminal_name(DIFFSDE_TERMINAL_EXACT), "exact");
    assert_string_equal(diffsde_terminal_name((diffsde_terminal)2), "");
    assert_int_equal(diffsde_divergence_from_name("hutchinson", &dv), DIFFSDE_OK);
    assert_int_equal(dv, DIFFSDE_DIVERGENCE_HUTCHINSON);
    assert_int_equal(diffsde_divergence_from_name("Exact", &dv), DIFFSDE_EPARAM);
    assert_int_equal(diffsde_divergence_from_name(NULL, &dv), DIFFSDE_ENULL);
    assert_int_equal(diffsde_probe_from_name("gaussian", &pr), DIFFSDE_OK);
    assert_int_equal(pr, DIFFSDE_PROBE_GAUSSIAN);
    assert_int_equal(diffsde_probe_from_name("normal", &pr), DIFFSDE_EPARAM);
    assert_int_equal(diffsde_probe_from_name("gaussian", NULL), DIFFSDE_ENULL);
    assert_int_equal(diffsde_terminal_from_name("exact", &tm), DIFFSDE_OK);
    assert_int_equal(tm, DIFFSDE_TERMINAL_EXACT);
    assert_int_equal(diffsde_terminal_from_name("", &tm), DIFFSDE_EPARAM);
    diffsde_loglik_options o;
    diffsde_loglik_options_default(&o);
    assert_int_equal(o.ode.method, DIFFSDE_ODE_RK45);
    assert_close(o.ode.rtol, 1e-5, 0, 0);
    assert_close(o.ode.atol, 1e-5, 0, 0);
    assert_true(isnan(o.ode.eps) && isnan(o.fd_step));
    assert_int_equal(o.divergence, DIFFSDE_DIVERGENCE_EXACT);
    assert_int_equal(o.probes, 1);
    assert_int_equal(o.probe, DIFFSDE_PROBE_RADEMACHER);
    assert_int_equal(o.terminal, DIFFSDE_TERMINAL_PRIOR);
    assert_true(o.bin_width == 0 && o.dequantize == 0);
}

/* Every invalid option is refused at creation, named in the message. */
static void test_option_validation(void **state)
{
    fixture *f = *state;
    otu_gauss g;
    otu_gauss_default(&g, f->sde[1]);
    diffsde_score *s = otu_model(f->ctx, &g), *nologp;
    otu_ok(diffsde_score_new(f->ctx, otu_score_cb, &g, DIFFSDE_PARAM_SCORE, &nologp), f->ctx);
    diffsde_loglik *ll = NULL;
    struct {
        int field;
        int status;
        const char *needle;
    } cases[] = {
        {0, DIFFSDE_EPARAM, "divergence"},   {1, DIFFSDE_EPARAM, "probes"},
        {2, DIFFSDE_EPARAM, "probe ("},      {3, DIFFSDE_EPARAM, "fd_step"},
        {4, DIFFSDE_EPARAM, "fd_step"},      {5, DIFFSDE_EPARAM, "terminal"},
        {6, DIFFSDE_EPARAM, "bin_width"},    {7, DIFFSDE_EPARAM, "bin_width"},
        {8, DIFFSDE_EPARAM, "dequantize"},   {9, DIFFSDE_EUNSUPPORTED, "bin_width"},
        {10, DIFFSDE_EUNSUPPORTED, "few-step"}, {11, DIFFSDE_EUNSUPPORTED, "few-step"},
        {12, DIFFSDE_EPARAM, "rtol"},        {13, DIFFSDE_EPARAM, "eps"},
        {14, DIFFSDE_EPARAM, "ODE method"},  {15, DIFFSDE_EUNSUPPORTED, "log-density"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        diffsde_loglik_options o;
        diffsde_loglik_options_default(&o);
        const diffsde_score *model = s;
        switch (cases[c].field) {
        case 0: o.divergence = (diffsde_divergence)2; break;
        case 1: o.probes = 0; break;
        case 2: o.probe = (diffsde_probe)5; break;
        case 3: o.fd_step = -1e-3; break;
        case 4: o.fd_step = INFINITY; break;
        case 5: o.terminal = (diffsde_terminal)2; break;
        case 6: o.bin_width = -0.5; break;
        case 7: o.bin_width = NAN; break;
        case 8: o.dequantize = 2; break;
        case 9: o.dequantize = 1; break;
        case 10: o.ode.method = DIFFSDE_ODE_DDIM; break;
        case 11: o.ode.method = DIFFSDE_ODE_EDM_HEUN; break;
        case 12: o.ode.rtol = 0; break;
        case 13: o.ode.eps = 1.0; break;
        case 14: o.ode.method = (diffsde_ode_method)99; break;
        case 15: o.terminal = DIFFSDE_TERMINAL_EXACT; model = nologp; break;
        }
        diffsde_clear_error(f->ctx);
        assert_int_equal(diffsde_loglik_new(f->ctx, f->sde[1], model, &o, &ll), cases[c].status);
        assert_null(ll);
        otu_assert_msg_has(f->ctx, "diffsde_loglik_new");
        otu_assert_msg_has(f->ctx, cases[c].needle);
    }
    assert_int_equal(diffsde_loglik_new(NULL, f->sde[1], s, NULL, &ll), DIFFSDE_ENULL);
    assert_int_equal(diffsde_loglik_new(f->ctx, NULL, s, NULL, &ll), DIFFSDE_ENULL);
    assert_int_equal(diffsde_loglik_new(f->ctx, f->sde[1], NULL, NULL, &ll), DIFFSDE_ENULL);
    assert_int_equal(diffsde_loglik_new(f->ctx, f->sde[1], s, NULL, NULL), DIFFSDE_ENULL);
    assert_int_equal(diffsde_loglik_get_stats(NULL, NULL), DIFFSDE_ENULL);
    diffsde_loglik_free(NULL);

    /* Arguments of an evaluation. */
    diffsde_loglik_options o;
    diffsde_loglik_options_default(&o);
    o.divergence = DIFFSDE_DIVERGENCE_HUTCHINSON;
    otu_ok(diffsde_loglik_new(f->ctx, f->sde[1], s, &o, &ll), f->ctx);
    double x[4] = {0.5, 0.25, NAN, 1.0}, lp[2];
    assert_int_equal(diffsde_loglik_eval(NULL, f->noise, 0, 2, 2, x, lp, NULL, NULL, NULL),
                     DIFFSDE_ENULL);
    assert_int_equal(diffsde_loglik_eval(ll, f->noise, 0, 2, 2, NULL, lp, NULL, NULL, NULL),
                     DIFFSDE_ENULL);
    assert_int_equal(diffsde_loglik_eval(ll, f->noise, 0, 2, 2, x, NULL, NULL, NULL, NULL),
                     DIFFSDE_ENULL);
    assert_int_equal(diffsde_loglik_eval(ll, f->noise, 0, 0, 2, x, lp, NULL, NULL, NULL),
                     DIFFSDE_ESIZE);
    assert_int_equal(diffsde_loglik_eval(ll, f->noise, 0, 2, 0, x, lp, NULL, NULL, NULL),
                     DIFFSDE_ESIZE);
    assert_int_equal(diffsde_loglik_eval(ll, NULL, 0, 1, 2, x, lp, NULL, NULL, NULL),
                     DIFFSDE_ENULL);
    otu_assert_msg_has(f->ctx, "Hutchinson");
    assert_int_equal(diffsde_loglik_eval(ll, f->noise, 0, 2, 2, x, lp, NULL, NULL, NULL),
                     DIFFSDE_ENONFINITE);
    otu_assert_msg_has(f->ctx, "x[1][0]");
    /* Probe indices beyond the counter layout. */
    assert_int_equal(diffsde_loglik_eval(ll, f->noise, DIFFSDE_NOISE_MAX_SAMPLES, 1, 2, x, lp,
                                         NULL, NULL, NULL),
                     DIFFSDE_ERANGE);
    otu_assert_msg_has(f->ctx, "probe");
    diffsde_loglik_free(ll);
    diffsde_score_free(nologp);
    diffsde_score_free(s);
}

/* A model that fails: fatal status at a given call, or NaN planted in one row's output. */
typedef struct failing {
    otu_gauss g;
    long call, fail_at; /* 0-based call that fails; −1 never */
    int nan_row;        /* ≥ 0: plant NaN there instead of returning a status */
} failing;

static int failing_cb(size_t n, size_t d, const double *t, const double *x, double *out,
                      void *user)
{
    failing *fl = user;
    otu_score_cb(n, d, t, x, out, &fl->g);
    if (fl->call++ != fl->fail_at)
        return 0;
    if (fl->nan_row >= 0) {
        out[(size_t)fl->nan_row * d] = NAN;
        return 0;
    }
    return -3;
}

static int failing_logp_cb(size_t n, size_t d, const double *t, const double *x, double *lp,
                           void *user)
{
    failing *fl = user;
    otu_logp_cb(n, d, t, x, lp, &fl->g);
    if (n > 2)
        lp[2] = NAN;
    return 0;
}

static void test_model_errors(void **state)
{
    fixture *f = *state;
    failing fl;
    otu_gauss_default(&fl.g, f->sde[1]);
    diffsde_score *s;
    otu_ok(diffsde_score_new(f->ctx, failing_cb, &fl, DIFFSDE_PARAM_SCORE, &s), f->ctx);
    diffsde_loglik_options o;
    diffsde_loglik_options_default(&o);
    o.ode.method = DIFFSDE_ODE_EULER;
    o.ode.steps = 10;
    double x[6] = {0.5, 0.25, -0.75, 1.5, 1.25, -0.5}, lp[3];
    diffsde_loglik *ll;
    otu_ok(diffsde_loglik_new(f->ctx, f->sde[1], s, &o, &ll), f->ctx);

    fl.call = 0;
    fl.fail_at = 3;
    fl.nan_row = -1;
    assert_int_equal(diffsde_loglik_eval(ll, NULL, 0, 3, 2, x, lp, NULL, NULL, NULL),
                     DIFFSDE_ECALLBACK);
    otu_assert_msg_has(f->ctx, "diffsde_loglik_eval");
    otu_assert_msg_has(f->ctx, "t=");
    otu_assert_msg_has(f->ctx, "returned -3");

    /* NaN in the output of the call on all the points' ± pairs and bases: traced to the
     * point (the second of the batch; the model call saw it as one of 15 points). */
    fl.call = 0;
    fl.fail_at = 2;
    fl.nan_row = 13; /* pairs of points 0..2 are rows 0..11, bases 12..14: point 1 */
    assert_int_equal(diffsde_loglik_eval(ll, NULL, 7, 3, 2, x, lp, NULL, NULL, NULL),
                     DIFFSDE_ENONFINITE);
    otu_assert_msg_has(f->ctx, "point 1 (global sample 8)");
    otu_assert_msg_has(f->ctx, "t=");
    diffsde_loglik_free(ll);

    /* The exact terminal density failing at the end: NaN for the third point's latent. */
    fl.call = 0;
    fl.fail_at = -1;
    o.terminal = DIFFSDE_TERMINAL_EXACT;
    diffsde_score_set_logp(s, failing_logp_cb);
    otu_ok(diffsde_loglik_new(f->ctx, f->sde[1], s, &o, &ll), f->ctx);
    assert_int_equal(diffsde_loglik_eval(ll, NULL, 0, 3, 2, x, lp, NULL, NULL, NULL),
                     DIFFSDE_ENONFINITE);
    otu_assert_msg_has(f->ctx, "log-density at T=1");
    otu_assert_msg_has(f->ctx, "point 2");
    diffsde_loglik_free(ll);
    diffsde_score_set_logp(s, NULL);
    assert_int_equal(diffsde_loglik_new(f->ctx, f->sde[1], s, &o, &ll), DIFFSDE_EUNSUPPORTED);
    diffsde_score_free(s);
}

/* Every allocation failure is reported as ENOMEM and leaks nothing; the buffers are grown,
 * never shrunk, so a second evaluation of no larger a batch allocates nothing. */
static void test_allocation(void **state)
{
    (void)state;
    int completed = 0;
    for (long k = 1; k < 200 && !completed; k++) {
        tu_alloc a = {0, 0, k};
        diffsde_allocator al = tu_allocator(&a);
        diffsde_ctx *ctx = NULL;
        diffsde_sde *sde = NULL;
        diffsde_noise *noise = NULL;
        diffsde_loglik *ll = NULL;
        otu_gauss g;
        diffsde_score *s = NULL;
        int st = diffsde_ctx_new(&ctx, &al);
        if (st == DIFFSDE_OK)
            st = diffsde_sde_new_named(ctx, "vp", 0, NULL, NULL, &sde);
        if (st == DIFFSDE_OK)
            st = diffsde_noise_new_philox(ctx, SEED, &noise);
        if (st == DIFFSDE_OK) {
            otu_gauss_default(&g, sde);
            s = otu_model_fd(ctx, &g);
            st = s ? DIFFSDE_OK : DIFFSDE_ENOMEM;
        }
        diffsde_loglik_options o;
        diffsde_loglik_options_default(&o);
        o.divergence = DIFFSDE_DIVERGENCE_HUTCHINSON;
        o.probes = 2;
        o.bin_width = 0.25;
        o.dequantize = 1;
        if (st == DIFFSDE_OK)
            st = diffsde_loglik_new(ctx, sde, s, &o, &ll);
        double x[GN * 2], lp[GN], lat[GN * 2];
        if (st == DIFFSDE_OK) {
            gauss_points(&g, 1e-5, x);
            st = diffsde_loglik_eval(ll, noise, 0, GN, 2, x, lp, lat, NULL, NULL);
        }
        if (st == DIFFSDE_OK) {
            const long before = a.calls;
            otu_ok(diffsde_loglik_eval(ll, noise, 0, GN - 2, 2, x, lp, lat, NULL, NULL), ctx);
            otu_ok(diffsde_loglik_eval(ll, noise, 3, GN, 2, x, lp, lat, NULL, NULL), ctx);
            assert_int_equal(a.calls, before);
            completed = a.calls < k;
        } else {
            assert_int_equal(st, DIFFSDE_ENOMEM);
        }
        diffsde_loglik_free(ll);
        diffsde_score_free(s);
        diffsde_noise_free(noise);
        diffsde_sde_free(sde);
        diffsde_ctx_free(ctx);
        assert_int_equal(a.live, 0);
    }
    assert_true(completed);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_bits_per_dim),
        cmocka_unit_test(test_option_validation),
        cmocka_unit_test(test_model_errors),
        cmocka_unit_test(test_allocation),
        cmocka_unit_test(test_counts),
        cmocka_unit_test(test_chunked_batch),
        cmocka_unit_test(test_gaussian_closed_form),
        cmocka_unit_test(test_every_integrator),
        cmocka_unit_test(test_hutchinson_diagonal),
        cmocka_unit_test(test_dequantize),
        cmocka_unit_test(test_fixture_gmm3d),
        cmocka_unit_test(test_mixture_validation),
        cmocka_unit_test(test_hutchinson_unbiased),
    };
    return cmocka_run_group_tests_name("loglik", tests, setup, teardown);
}
