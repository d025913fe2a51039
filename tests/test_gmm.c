/*
 * The Gaussian-mixture oracle, checked against independent references:
 * - the reference fixtures (an independent NumPy implementation) and a long-double hand
 *   computation of the 1-D mixture;
 * - closed forms of a single Gaussian (gauss1) under every SDE;
 * - finite differences (score = ∇ log p_t, divergence = ∇·score);
 * - GSL quadrature (p_t integrates to 1 in 1-D and 2-D);
 * - moments by hand, and exact samples against the moments (statistical, fixed seeds);
 * plus the builder's and the built-ins' contracts, allocation failures, reproducibility and
 * stability (D = 1024, σmax = 378, a near-singular covariance).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <float.h>
#include <gsl/gsl_errno.h>
#include <gsl/gsl_integration.h>
#include <gsl/gsl_linalg.h>
#include <jansson.h>
#include <string.h>

#include "testutil.h"
#include "diffsde/gmm.h"

#define PI 3.14159265358979323846

typedef struct fixture {
    diffsde_ctx *ctx;
    diffsde_sde *sde[3]; /* VE, VP, sub-VP with the default parameters */
} fixture;

static const char *const SDE_NAME[3] = {"ve", "vp", "subvp"};

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f || diffsde_ctx_new(&f->ctx, NULL) ||
        diffsde_sde_new_ve(f->ctx, DIFFSDE_VE_SIGMA_MIN, DIFFSDE_VE_SIGMA_MAX, &f->sde[0]) ||
        diffsde_sde_new_vp(f->ctx, DIFFSDE_VP_BETA_MIN, DIFFSDE_VP_BETA_MAX, &f->sde[1]) ||
        diffsde_sde_new_subvp(f->ctx, DIFFSDE_VP_BETA_MIN, DIFFSDE_VP_BETA_MAX, &f->sde[2]))
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    for (int k = 0; k < 3; k++)
        diffsde_sde_free(f->sde[k]);
    diffsde_ctx_free(f->ctx);
    free(f);
    return 0;
}

static void ok(int status, diffsde_ctx *ctx)
{
    if (status != DIFFSDE_OK)
        print_error("status %s: %s\n", diffsde_status_name(status), diffsde_errmsg(ctx));
    assert_int_equal(status, DIFFSDE_OK);
}

static void coefs(const diffsde_sde *sde, double t, double *a, double *s)
{
    diffsde_sde_coefs c = {0, 0, 0, 0, 1, 0};
    if (sde)
        assert_int_equal(diffsde_sde_coefs_at(sde, t, &c), DIFFSDE_OK);
    *a = c.alpha;
    *s = c.sigma;
}

static diffsde_gmm *builtin(diffsde_ctx *ctx, const char *name)
{
    diffsde_gmm *g = NULL;
    ok(diffsde_gmm_new_builtin(ctx, name, &g), ctx);
    return g;
}

/* ---- fixtures ------------------------------------------------------------------------- */

/*
 * The fixture files: $DIFFSDE_FIXTURES if set (and nothing else); otherwise the copies in the
 * repository, tests/fixtures (found through $top_srcdir, which the test harness exports, the
 * Makefile's DIFFSDE_TEST_FIXTURES_DIR if defined, the directory of __FILE__, or the working
 * directory), then the shared originals (FIXTURES_DIR: the Makefile defines it as
 * $(abs_top_srcdir)/../shared/fixtures; fallback ../shared/fixtures).
 */
#ifndef FIXTURES_DIR
#define FIXTURES_DIR "../shared/fixtures"
#endif

static json_t *load_json(const char *name)
{
    char path[4096], top[4000];
    json_error_t err;
    const char *env = getenv("DIFFSDE_FIXTURES");
    if (env && *env) {
        snprintf(path, sizeof path, "%s/%s", env, name);
        json_t *j = json_load_file(path, 0, &err);
        if (!j)
            print_error("cannot read %s: %s\n", path, err.text);
        assert_non_null(j);
        return j;
    }
    const char *src = getenv("top_srcdir");
    snprintf(top, sizeof top, "%s/tests/fixtures", src ? src : ".");
    /* beside this source file, as the compiler named it */
    char here[4000];
    snprintf(here, sizeof here, "%s", __FILE__);
    char *slash = strrchr(here, '/');
    if (slash)
        snprintf(slash, sizeof here - (size_t)(slash - here), "/fixtures");
    else
        snprintf(here, sizeof here, "fixtures");
    const char *dirs[] = {top,
#ifdef DIFFSDE_TEST_FIXTURES_DIR
                          DIFFSDE_TEST_FIXTURES_DIR,
#endif
                          here, "tests/fixtures", FIXTURES_DIR};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dirs[i], name);
        json_t *j = json_load_file(path, 0, &err);
        if (j)
            return j;
    }
    print_error("fixture %s not found (set DIFFSDE_FIXTURES)\n", name);
    fail();
    return NULL;
}

static double jnum(const json_t *j)
{
    assert_true(json_is_number(j));
    return json_number_value(j);
}

static diffsde_gmm *gmm_from_problem(diffsde_ctx *ctx, const json_t *pr)
{
    size_t D = (size_t)json_integer_value(json_object_get(pr, "dim")), k;
    diffsde_gmm *g;
    ok(diffsde_gmm_new(ctx, D, &g), ctx);
    const json_t *c;
    double mu[8], cov[64];
    assert_true(D <= 8);
    json_array_foreach (json_object_get(pr, "components"), k, c) {
        for (size_t i = 0; i < D; i++) {
            mu[i] = jnum(json_array_get(json_object_get(c, "mean"), i));
            for (size_t j = 0; j < D; j++)
                cov[i * D + j] =
                    jnum(json_array_get(json_array_get(json_object_get(c, "cov"), i), j));
        }
        ok(diffsde_gmm_add_full(g, jnum(json_object_get(c, "weight")), mu, cov), ctx);
    }
    ok(diffsde_gmm_finalize(g), ctx);
    return g;
}

static diffsde_sde *sde_from_params(diffsde_ctx *ctx, int kind, const json_t *p)
{
    diffsde_sde *sde = NULL;
    if (kind == 0)
        ok(diffsde_sde_new_ve(ctx, jnum(json_object_get(p, "smin")),
                              jnum(json_object_get(p, "smax")), &sde),
           ctx);
    else if (kind == 1)
        ok(diffsde_sde_new_vp(ctx, jnum(json_object_get(p, "b0")), jnum(json_object_get(p, "b1")),
                              &sde),
           ctx);
    else
        ok(diffsde_sde_new_subvp(ctx, jnum(json_object_get(p, "b0")),
                                 jnum(json_object_get(p, "b1")), &sde),
           ctx);
    return sde;
}

/*
 * Tolerances against the fixtures (worst errors observed are printed):
 * - log p: 1e-13 relative;
 * - score: 4e-12 · ‖s_ref‖∞ per coordinate;
 * - divergence: 1e-12 |div_ref| + 4e-12 ‖s_ref‖², the floor being the size of the terms the
 *   reference cancels (it forms Σγ_k‖s_k‖² − ‖s‖²): at x = −200, VP t = 1 it is off by
 *   6.7e-8 relative (1.7e-12 ‖s‖²), and so is its score by 1.7e-12; a 50-digit mpmath
 *   recomputation and test_gmm1d_long_double below agree with diffsde there to ~1e-16;
 * - flow drift f x − ½ g² s: 4e-12 (|f x_j| + ½ g² |s_j|) (a difference of two terms that
 *   cancel to 3e-4 relative far out at t = 1).
 */
static void check_row(size_t D, const double *x, const double *s, double lp, double dv,
                      const diffsde_sde_coefs *c, const json_t *tj, size_t i, double worst[4])
{
    double elp = jnum(json_array_get(json_object_get(tj, "logp"), i));
    double ediv = jnum(json_array_get(json_object_get(tj, "div_score"), i));
    const json_t *es = json_array_get(json_object_get(tj, "score"), i);
    const json_t *ep = json_array_get(json_object_get(tj, "pf_drift"), i);
    double smax = 0, s2 = 0;
    for (size_t j = 0; j < D; j++) {
        double v = jnum(json_array_get(es, j));
        smax = fmax(smax, fabs(v));
        s2 += v * v;
    }
    assert_close(lp, elp, 1e-13, 0);
    worst[0] = fmax(worst[0], fabs(lp - elp) / fabs(elp));
    assert_close(dv, ediv, 1e-12, 4e-12 * s2);
    worst[2] = fmax(worst[2], fabs(dv - ediv) / fabs(ediv));
    for (size_t j = 0; j < D; j++) {
        double v = jnum(json_array_get(es, j));
        assert_close(s[j], v, 0, 4e-12 * smax);
        worst[1] = fmax(worst[1], fabs(s[j] - v) / smax);
        double pf = c->f * x[j] - 0.5 * c->g2 * s[j], epf = jnum(json_array_get(ep, j));
        double mag = fabs(c->f * x[j]) + 0.5 * c->g2 * fabs(s[j]);
        assert_close(pf, epf, 0, 4e-12 * mag);
        worst[3] = fmax(worst[3], fabs(pf - epf) / mag);
    }
}

static void check_fixture(fixture *f, const char *tag)
{
    char name[64];
    snprintf(name, sizeof name, "problem_%s.json", tag);
    json_t *pr = load_json(name);
    snprintf(name, sizeof name, "pointwise_%s.json", tag);
    json_t *pw = load_json(name);
    diffsde_gmm *g = gmm_from_problem(f->ctx, pr);
    size_t D = diffsde_gmm_dim(g);
    const json_t *pts = json_object_get(pw, "points");
    size_t n = json_array_size(pts);
    assert_true(n > 0 && n <= 16);
    double x[16 * 8], xm[5 * 16 * 8], tm[5 * 16], s[5 * 16 * 8], lp[5 * 16], dv[5 * 16];
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < D; j++)
            x[i * D + j] = jnum(json_array_get(json_array_get(pts, i), j));
    double worst[4] = {0, 0, 0, 0};
    for (int k = 0; k < 3; k++) {
        const json_t *sj = json_object_get(json_object_get(pw, "sdes"), SDE_NAME[k]);
        diffsde_sde *sde = sde_from_params(f->ctx, k, json_object_get(sj, "params"));
        diffsde_gmm_eval *ev;
        ok(diffsde_gmm_eval_new(g, sde, &ev), f->ctx);
        const json_t *times = json_object_get(sj, "times");
        size_t nt = json_array_size(times);
        assert_true(nt <= 5);
        /* one batch per t */
        for (size_t ti = 0; ti < nt; ti++) {
            const json_t *tj = json_array_get(times, ti);
            double t = jnum(json_object_get(tj, "t")), tt[16];
            diffsde_sde_coefs c;
            ok(diffsde_sde_coefs_at(sde, t, &c), f->ctx);
            for (size_t i = 0; i < n; i++)
                tt[i] = t;
            ok(diffsde_gmm_evaluate(ev, n, tt, x, lp, s, dv, NULL), f->ctx);
            for (size_t i = 0; i < n; i++)
                check_row(D, x + i * D, s + i * D, lp[i], dv[i], &c, tj, i, worst);
        }
        /* every (t, point) in one batch, times interleaved: grouping and the factor cache */
        size_t m = 0;
        for (size_t i = 0; i < n; i++)
            for (size_t ti = 0; ti < nt; ti++, m++) {
                tm[m] = jnum(json_object_get(json_array_get(times, ti), "t"));
                memcpy(xm + m * D, x + i * D, D * sizeof(double));
            }
        ok(diffsde_gmm_evaluate(ev, m, tm, xm, lp, s, dv, NULL), f->ctx);
        m = 0;
        for (size_t i = 0; i < n; i++)
            for (size_t ti = 0; ti < nt; ti++, m++) {
                diffsde_sde_coefs c;
                ok(diffsde_sde_coefs_at(sde, tm[m], &c), f->ctx);
                check_row(D, xm + m * D, s + m * D, lp[m], dv[m], &c, json_array_get(times, ti), i,
                          worst);
            }
        diffsde_gmm_eval_free(ev);
        diffsde_sde_free(sde);
    }
    print_message("# fixture %s: worst relative error logp %.2e, score %.2e (of max|s|), div "
                  "%.2e, flow drift %.2e (of its terms)\n",
                  tag, worst[0], worst[1], worst[2], worst[3]);
    diffsde_gmm_free(g);
    json_decref(pr);
    json_decref(pw);
}

static void test_fixture_1d(void **state)
{
    check_fixture(*state, "gmm1d");
}

static void test_fixture_3d(void **state)
{
    check_fixture(*state, "gmm3d");
}

/*
 * The 1-D fixture problem computed by hand in long double (64-bit significand) at the
 * fixture's points and times, with the library's α(t), σ(t): log p, score and divergence agree
 * to 1e-14 of the magnitude of the terms summed (Σγ_k|s_k| for the score; Σγ_k(s_k − s)² +
 * Σγ_k/C_k for the divergence), far points included.
 */
static void test_gmm1d_long_double(void **state)
{
    fixture *f = *state;
    json_t *pr = load_json("problem_gmm1d.json"), *pw = load_json("pointwise_gmm1d.json");
    diffsde_gmm *g = gmm_from_problem(f->ctx, pr);
    long double w[2], mu[2], S[2];
    for (size_t k = 0; k < 2; k++) {
        const json_t *c = json_array_get(json_object_get(pr, "components"), k);
        w[k] = jnum(json_object_get(c, "weight"));
        mu[k] = jnum(json_array_get(json_object_get(c, "mean"), 0));
        S[k] = jnum(json_array_get(json_array_get(json_object_get(c, "cov"), 0), 0));
    }
    const double times[] = {0, 1e-5, 1e-3, 0.1, 0.5, 1.0};
    const json_t *pts = json_object_get(pw, "points");
    double worst = 0;
    for (int kind = 0; kind < 3; kind++) {
        diffsde_gmm_eval *ev;
        ok(diffsde_gmm_eval_new(g, f->sde[kind], &ev), f->ctx);
        for (size_t ti = 0; ti < sizeof times / sizeof times[0]; ti++) {
            double a, sg, t = times[ti];
            coefs(f->sde[kind], t, &a, &sg);
            for (size_t i = 0; i < json_array_size(pts); i++) {
                double x = jnum(json_array_get(json_array_get(pts, i), 0)), lp, s, dv;
                ok(diffsde_gmm_evaluate(ev, 1, &t, &x, &lp, &s, &dv, NULL), f->ctx);
                long double at[2], sk[2], C[2], m, z = 0, L, sl = 0, mag = 0, dl = 0, dmag = 0;
                for (int k = 0; k < 2; k++) {
                    C[k] = (long double)a * a * S[k] + (long double)sg * sg;
                    long double r = x - a * mu[k];
                    at[k] = logl(w[k]) - 0.5L * logl(2 * PI * C[k]) - r * r / (2 * C[k]);
                    sk[k] = -r / C[k];
                }
                m = at[0] > at[1] ? at[0] : at[1];
                for (int k = 0; k < 2; k++)
                    z += expl(at[k] - m);
                L = m + logl(z);
                for (int k = 0; k < 2; k++) {
                    long double gk = expl(at[k] - L);
                    sl += gk * sk[k];
                    mag += gk * fabsl(sk[k]);
                }
                for (int k = 0; k < 2; k++) {
                    long double gk = expl(at[k] - L), d = sk[k] - sl;
                    dl += gk * (d * d - 1 / C[k]);
                    dmag += gk * (d * d + 1 / C[k]);
                }
                assert_close(lp, (double)L, 1e-14, 1e-14);
                assert_close(s, (double)sl, 0, 1e-14 * (double)mag);
                assert_close(dv, (double)dl, 0, 1e-14 * (double)dmag);
                worst = fmax(worst, fabs(s - (double)sl) / (double)mag);
                worst = fmax(worst, fabs(dv - (double)dl) / (double)dmag);
            }
        }
        diffsde_gmm_eval_free(ev);
    }
    print_message("# 1-D long-double reference: worst error %.2e of the terms' magnitude\n", worst);
    diffsde_gmm_free(g);
    json_decref(pr);
    json_decref(pw);
}

/* ---- single Gaussian: closed forms ----------------------------------------------------- */

/*
 * gauss1 = N((1, −0.5), [[1.5, 0.4], [0.4, 0.6]]) under each SDE (and p0) is exactly
 * N(αμ, C), C = α²Σ + σ²I, written out with the 2 × 2 inverse: log p = −log 2π − ½ log det C
 * − ½ rᵀC⁻¹r, score −C⁻¹r, divergence −tr C⁻¹, responsibility 1; and its moments are αμ, C.
 * Tolerance 1e-13 relative (of ‖s‖∞ for the score coordinates).
 */
static void test_gauss1_closed_form(void **state)
{
    fixture *f = *state;
    diffsde_gmm *g = builtin(f->ctx, "gauss1");
    diffsde_sde *big;
    ok(diffsde_sde_new_ve(f->ctx, 0.01, 378, &big), f->ctx);
    const diffsde_sde *sdes[5] = {NULL, f->sde[0], f->sde[1], f->sde[2], big};
    const double times[] = {0, 1e-5, 1e-3, 0.3, 1.0};
    const double X[][2] = {{-3, 2}, {1, -0.5}, {0.3, 0.7}, {30, -20}, {200, 100}, {-141, -141}};
    const size_t n = sizeof X / sizeof X[0];
    for (int k = 0; k < 5; k++) {
        diffsde_gmm_eval *ev;
        ok(diffsde_gmm_eval_new(g, sdes[k], &ev), f->ctx);
        for (size_t ti = 0; ti < 5; ti++) {
            double a, sg, t[6], lp[6], s[12], dv[6], rs[6], mean[2], cov[4];
            coefs(sdes[k], times[ti], &a, &sg);
            for (size_t i = 0; i < n; i++)
                t[i] = times[ti];
            ok(diffsde_gmm_evaluate(ev, n, sdes[k] ? t : NULL, &X[0][0], lp, s, dv, rs), f->ctx);
            double c11 = a * a * 1.5 + sg * sg, c12 = a * a * 0.4, c22 = a * a * 0.6 + sg * sg;
            double det = c11 * c22 - c12 * c12;
            ok(diffsde_gmm_moments(g, sdes[k], times[ti], mean, cov), f->ctx);
            assert_close(mean[0], a, 1e-15, 0);
            assert_close(mean[1], -0.5 * a, 1e-15, 0);
            assert_close(cov[0], c11, 1e-15, 0);
            assert_close(cov[1], c12, 1e-15, 0);
            assert_close(cov[2], c12, 1e-15, 0);
            assert_close(cov[3], c22, 1e-15, 0);
            for (size_t i = 0; i < n; i++) {
                double r0 = X[i][0] - a, r1 = X[i][1] + 0.5 * a;
                double z0 = (c22 * r0 - c12 * r1) / det, z1 = (c11 * r1 - c12 * r0) / det;
                double elp = -log(2 * PI) - 0.5 * log(det) - 0.5 * (r0 * z0 + r1 * z1);
                double sm = fmax(fabs(z0), fabs(z1));
                assert_close(lp[i], elp, 1e-13, 0);
                assert_close(s[2 * i], -z0, 0, 1e-13 * sm);
                assert_close(s[2 * i + 1], -z1, 0, 1e-13 * sm);
                assert_close(dv[i], -(c11 + c22) / det, 1e-13, 0);
                assert_close(rs[i], 1.0, 0, 1e-15);
            }
        }
        diffsde_gmm_eval_free(ev);
    }
    diffsde_sde_free(big);
    diffsde_gmm_free(g);
}

/* ---- finite differences --------------------------------------------------------------- */

static double logp_at(diffsde_gmm_eval *ev, double t, const double *x)
{
    double lp;
    assert_int_equal(diffsde_gmm_evaluate(ev, 1, &t, x, &lp, NULL, NULL, NULL), DIFFSDE_OK);
    return lp;
}

/* Five-point central difference of log p_t along v at x, step h. */
static double fd_dir(diffsde_gmm_eval *ev, double t, size_t D, const double *x, const double *v,
                     double h, double *y)
{
    double fv[4];
    const double c[4] = {-2, -1, 1, 2};
    for (int m = 0; m < 4; m++) {
        for (size_t j = 0; j < D; j++)
            y[j] = x[j] + c[m] * h * v[j];
        fv[m] = logp_at(ev, t, y);
    }
    return (fv[0] - 8 * fv[1] + 8 * fv[2] - fv[3]) / (12 * h);
}

/*
 * Score vs the five-point central difference of log p_t (step h = 1e-3 · the smallest
 * component standard deviation √(α² v_min + σ²), truncation O(h⁴)): ‖s_fd − s‖ ≤ 1e-6 ‖s‖.
 * Divergence vs the five-point difference of each score coordinate along its axis:
 * |div_fd − div| ≤ 1e-6 Σ_j |∂_j s_j|. Models ring8 (v_min = 0.03) and random:5,3,7
 * (v_min ≥ 0.1), every SDE, t ∈ {1e-3, 0.1, 0.5, 1}; points: 6 exact samples of p_t
 * (Philox seed 2024) plus a point between two components and one 4 std off component 0.
 */
static void test_fd_score_div(void **state)
{
    fixture *f = *state;
    const char *models[2] = {"ring8", "random:5,3,7"};
    const double vmin[2] = {0.03, 0.1}, times[4] = {1e-3, 0.1, 0.5, 1.0};
    diffsde_noise *noise;
    ok(diffsde_noise_new_philox(f->ctx, 2024, &noise), f->ctx);
    double worst_s = 0, worst_d = 0;
    for (int mi = 0; mi < 2; mi++) {
        diffsde_gmm *g = builtin(f->ctx, models[mi]);
        size_t D = diffsde_gmm_dim(g);
        double mu0[5], mu1[5];
        ok(diffsde_gmm_component(g, 0, NULL, mu0, NULL), f->ctx);
        ok(diffsde_gmm_component(g, 1, NULL, mu1, NULL), f->ctx);
        for (int k = 0; k < 3; k++) {
            diffsde_gmm_eval *ev;
            ok(diffsde_gmm_eval_new(g, f->sde[k], &ev), f->ctx);
            for (int ti = 0; ti < 4; ti++) {
                double t = times[ti], a, sg, x[8 * 5], s[5], sy[5], dv, y[5], e[5];
                coefs(f->sde[k], t, &a, &sg);
                double sd = sqrt(a * a * vmin[mi] + sg * sg), h = 1e-3 * sd;
                ok(diffsde_gmm_sample(ev, noise, t, 100 * (uint64_t)(k * 4 + ti), 6, x), f->ctx);
                for (size_t j = 0; j < D; j++) {
                    x[6 * D + j] = a * 0.5 * (mu0[j] + mu1[j]);
                    x[7 * D + j] = a * mu0[j] + 4 * sd;
                }
                for (size_t i = 0; i < 8; i++) {
                    const double *xi = x + i * D;
                    ok(diffsde_gmm_evaluate(ev, 1, &t, xi, NULL, s, &dv, NULL), f->ctx);
                    double err = 0, nrm = 0, dfd = 0, dabs = 0;
                    for (size_t j = 0; j < D; j++) {
                        memset(e, 0, sizeof e);
                        e[j] = 1;
                        double d = fd_dir(ev, t, D, xi, e, h, y) - s[j];
                        err += d * d;
                        nrm += s[j] * s[j];
                        /* ∂_j s_j by the same stencil on the score */
                        double c[4] = {-2, -1, 1, 2}, sj[4];
                        for (int m = 0; m < 4; m++) {
                            memcpy(y, xi, D * sizeof(double));
                            y[j] += c[m] * h;
                            ok(diffsde_gmm_evaluate(ev, 1, &t, y, NULL, sy, NULL, NULL), f->ctx);
                            sj[m] = sy[j];
                        }
                        double djj = (sj[0] - 8 * sj[1] + 8 * sj[2] - sj[3]) / (12 * h);
                        dfd += djj;
                        dabs += fabs(djj);
                    }
                    assert_true(sqrt(err) <= 1e-6 * sqrt(nrm));
                    assert_close(dv, dfd, 0, 1e-6 * dabs);
                    worst_s = fmax(worst_s, sqrt(err / nrm));
                    worst_d = fmax(worst_d, fabs(dv - dfd) / dabs);
                }
            }
            diffsde_gmm_eval_free(ev);
        }
        diffsde_gmm_free(g);
    }
    diffsde_noise_free(noise);
    print_message("# finite differences: worst relative error score %.2e, divergence %.2e\n",
                  worst_s, worst_d);
}

/* ---- normalisation by quadrature ------------------------------------------------------ */

typedef struct quad {
    diffsde_gmm_eval *ev;
    double t;
    double x[2]; /* x[0] fixed by the outer integral in 2-D */
    gsl_integration_workspace *inner;
    double *pts; /* breakpoints of the inner integral */
    size_t npts;
} quad;

static double density_1d(double x, void *p)
{
    quad *q = p;
    return exp(logp_at(q->ev, q->t, &x));
}

static double density_2d_inner(double y, void *p)
{
    quad *q = p;
    double x[2] = {q->x[0], y};
    return exp(logp_at(q->ev, q->t, x));
}

static double density_2d_outer(double x, void *p)
{
    quad *q = p;
    q->x[0] = x;
    gsl_function fn = {density_2d_inner, q};
    double r, err;
    int st = gsl_integration_qagp(&fn, q->pts, q->npts, 0, 1e-11, 1000, q->inner, &r, &err);
    assert_int_equal(st, GSL_SUCCESS);
    return r;
}

/* Sorted breakpoints lo, the projections α μ_k[c] inside (lo, hi), hi. */
static size_t breakpoints(const diffsde_gmm *g, size_t c, double a, double lo, double hi,
                          double *pts)
{
    size_t n = 0, K = diffsde_gmm_ncomponents(g);
    pts[n++] = lo;
    for (size_t k = 0; k < K; k++) {
        double mu[2];
        ok(diffsde_gmm_component(g, k, NULL, mu, NULL), NULL);
        double v = a * mu[c];
        if (v > lo && v < hi)
            pts[n++] = v;
    }
    pts[n++] = hi;
    for (size_t i = 1; i < n; i++) /* insertion sort */
        for (size_t j = i; j > 0 && pts[j] < pts[j - 1]; j--) {
            double tmp = pts[j];
            pts[j] = pts[j - 1];
            pts[j - 1] = tmp;
        }
    size_t m = 1;
    for (size_t i = 1; i < n; i++)
        if (pts[i] > pts[m - 1])
            pts[m++] = pts[i];
    return m;
}

/*
 * ∫ p_t = 1: in 1-D (the gmm1d fixture problem) by gsl_integration_qagi over ℝ (relative
 * tolerance 1e-11), |I − 1| ≤ 1e-9; in 2-D (a 3-component mixture with full covariances) by
 * nested gsl_integration_qagp over the box mean ± 12 · (largest standard deviation of p_t),
 * breakpoints at the component means (inner tolerance 1e-11, outer 1e-10), |I − 1| ≤ 1e-8
 * (the mass outside the box is below 1e-30). Every SDE at t ∈ {1e-3, 0.5, 1} and p0.
 */
static void test_normalisation(void **state)
{
    fixture *f = *state;
    json_t *pr = load_json("problem_gmm1d.json");
    diffsde_gmm *g1 = gmm_from_problem(f->ctx, pr);
    json_decref(pr);
    diffsde_gmm *g2;
    ok(diffsde_gmm_new(f->ctx, 2, &g2), f->ctx);
    const double mu[3][2] = {{1, -1}, {-2, 0.5}, {0.5, 2.5}}, w[3] = {0.5, 0.3, 0.2};
    const double cv[3][4] = {{0.5, 0.2, 0.2, 0.3}, {0.2, -0.05, -0.05, 0.4}, {0.3, 0, 0, 0.3}};
    for (int k = 0; k < 3; k++)
        ok(diffsde_gmm_add_full(g2, w[k], mu[k], cv[k]), f->ctx);
    ok(diffsde_gmm_finalize(g2), f->ctx);
    gsl_integration_workspace *ws1 = gsl_integration_workspace_alloc(1000);
    gsl_integration_workspace *ws2 = gsl_integration_workspace_alloc(1000);
    assert_non_null(ws1);
    assert_non_null(ws2);
    const double times[3] = {1e-3, 0.5, 1.0};
    double worst1 = 0, worst2 = 0;
    for (int k = -1; k < 3; k++) {
        const diffsde_sde *sde = k < 0 ? NULL : f->sde[k];
        for (int ti = 0; ti < (k < 0 ? 1 : 3); ti++) {
            double t = times[ti], r, err, a, sg;
            coefs(sde, t, &a, &sg);
            quad q = {NULL, t, {0, 0}, ws2, NULL, 0};
            /* 1-D */
            ok(diffsde_gmm_eval_new(g1, sde, &q.ev), f->ctx);
            gsl_function fn1 = {density_1d, &q};
            assert_int_equal(gsl_integration_qagi(&fn1, 0, 1e-11, 1000, ws1, &r, &err),
                             GSL_SUCCESS);
            assert_close(r, 1.0, 0, 1e-9);
            worst1 = fmax(worst1, fabs(r - 1));
            diffsde_gmm_eval_free(q.ev);
            /* 2-D */
            double m[2], c[4], ptsx[5], ptsy[5];
            ok(diffsde_gmm_moments(g2, sde, t, m, c), f->ctx);
            double hw = 12 * sqrt(fmax(c[0], c[3]));
            size_t nx = breakpoints(g2, 0, a, m[0] - hw, m[0] + hw, ptsx);
            q.npts = breakpoints(g2, 1, a, m[1] - hw, m[1] + hw, ptsy);
            q.pts = ptsy;
            ok(diffsde_gmm_eval_new(g2, sde, &q.ev), f->ctx);
            gsl_function fn2 = {density_2d_outer, &q};
            assert_int_equal(gsl_integration_qagp(&fn2, ptsx, nx, 0, 1e-10, 1000, ws1, &r, &err),
                             GSL_SUCCESS);
            assert_close(r, 1.0, 0, 1e-8);
            worst2 = fmax(worst2, fabs(r - 1));
            diffsde_gmm_eval_free(q.ev);
        }
    }
    print_message("# quadrature: worst |I - 1| = %.2e (1-D), %.2e (2-D)\n", worst1, worst2);
    gsl_integration_workspace_free(ws1);
    gsl_integration_workspace_free(ws2);
    diffsde_gmm_free(g1);
    diffsde_gmm_free(g2);
}

/* ---- moments -------------------------------------------------------------------------- */

/*
 * diffsde_gmm_moments against the textbook form E[x xᵀ] − m mᵀ computed here from the
 * components (ring8 and random:3,4,11; every SDE at t ∈ {0, 0.3, 1}, and p0):
 * |error| ≤ 1e-13 · max|cov| (the textbook form cancels; the library's does not).
 */
static void test_moments_by_hand(void **state)
{
    fixture *f = *state;
    const char *models[2] = {"ring8", "random:3,4,11"};
    for (int mi = 0; mi < 2; mi++) {
        diffsde_gmm *g = builtin(f->ctx, models[mi]);
        size_t D = diffsde_gmm_dim(g), K = diffsde_gmm_ncomponents(g);
        for (int k = -1; k < 3; k++)
            for (int ti = 0; ti < 3; ti++) {
                const diffsde_sde *sde = k < 0 ? NULL : f->sde[k];
                double t = ti * 0.3 + (ti == 2) * 0.4, a, sg, m[3] = {0}, e2[9] = {0}, gm[3], gc[9];
                coefs(sde, t, &a, &sg);
                for (size_t c = 0; c < K; c++) {
                    double w, mu[3], cv[9];
                    ok(diffsde_gmm_component(g, c, &w, mu, cv), f->ctx);
                    for (size_t i = 0; i < D; i++) {
                        m[i] += w * a * mu[i];
                        for (size_t j = 0; j < D; j++)
                            e2[i * D + j] += w * (a * a * cv[i * D + j] + (i == j) * sg * sg +
                                                  a * a * mu[i] * mu[j]);
                    }
                }
                ok(diffsde_gmm_moments(g, sde, t, gm, gc), f->ctx);
                double cmax = 0;
                for (size_t i = 0; i < D * D; i++)
                    cmax = fmax(cmax, fabs(gc[i]));
                for (size_t i = 0; i < D; i++) {
                    assert_close(gm[i], m[i], 1e-14, 1e-15);
                    for (size_t j = 0; j < D; j++)
                        assert_close(gc[i * D + j], e2[i * D + j] - m[i] * m[j], 0, 1e-13 * cmax);
                }
            }
        diffsde_gmm_free(g);
    }
}

/*
 * 10^5 exact samples (Philox seed 77) of ring8 and random:3,4,11 under each SDE at t = 0.3
 * and p0: every mean coordinate within 4.5 standard errors √(C_jj/n) of the exact mean, every
 * covariance entry within 4.5 standard errors of the exact covariance, the standard error of
 * (x_i − m_i)(x_j − m_j) estimated from the samples. Two-sided tail at 4.5σ: 6.8e-6 per
 * check; 56 checks, so the false-failure probability is ≤ 3.8e-4 (Bonferroni) — and the seed
 * is fixed, so the outcome is deterministic.
 */
static void test_sample_moments(void **state)
{
    fixture *f = *state;
    enum { NS = 100000 };
    const char *models[2] = {"ring8", "random:3,4,11"};
    double *x = malloc(NS * 3 * sizeof(double));
    assert_non_null(x);
    diffsde_noise *noise;
    ok(diffsde_noise_new_philox(f->ctx, 77, &noise), f->ctx);
    double worst = 0;
    for (int mi = 0; mi < 2; mi++) {
        diffsde_gmm *g = builtin(f->ctx, models[mi]);
        size_t D = diffsde_gmm_dim(g);
        for (int k = -1; k < 3; k++) {
            const diffsde_sde *sde = k < 0 ? NULL : f->sde[k];
            diffsde_gmm_eval *ev;
            double m[3], c[9];
            ok(diffsde_gmm_eval_new(g, sde, &ev), f->ctx);
            ok(diffsde_gmm_sample(ev, noise, 0.3, 0, NS, x), f->ctx);
            ok(diffsde_gmm_moments(g, sde, 0.3, m, c), f->ctx);
            for (size_t i = 0; i < D; i++) {
                double s = 0;
                for (size_t r = 0; r < NS; r++)
                    s += x[r * D + i];
                double se = sqrt(c[i * D + i] / NS), z = fabs(s / NS - m[i]) / se;
                assert_true(z <= 4.5);
                worst = fmax(worst, z);
                for (size_t j = 0; j <= i; j++) {
                    double s1 = 0, s2 = 0;
                    for (size_t r = 0; r < NS; r++) {
                        double v = (x[r * D + i] - m[i]) * (x[r * D + j] - m[j]);
                        s1 += v;
                        s2 += v * v;
                    }
                    double mean = s1 / NS, var = s2 / NS - mean * mean;
                    z = fabs(mean - c[i * D + j]) / sqrt(var / NS);
                    assert_true(z <= 4.5);
                    worst = fmax(worst, z);
                }
            }
            diffsde_gmm_eval_free(ev);
        }
        diffsde_gmm_free(g);
    }
    print_message("# sample moments: worst deviation %.2f standard errors\n", worst);
    diffsde_noise_free(noise);
    free(x);
}

/* ---- responsibilities ----------------------------------------------------------------- */

/*
 * 1-D (gmm1d problem, every SDE, several t): γ_k = w_k N_k(x)/p(x) computed by hand at points
 * within 3 standard deviations of a component (where nothing underflows), to 1e-13; and on ring8 at samples
 * and far points (‖x‖ up to 300) Σ_k γ_k = 1 within 1e-14·K.
 */
static void test_responsibilities(void **state)
{
    fixture *f = *state;
    json_t *pr = load_json("problem_gmm1d.json");
    diffsde_gmm *g = gmm_from_problem(f->ctx, pr);
    json_decref(pr);
    double w[2], mu[2], S[2];
    for (size_t k = 0; k < 2; k++)
        ok(diffsde_gmm_component(g, k, &w[k], &mu[k], &S[k]), f->ctx);
    const double times[4] = {1e-5, 0.1, 0.5, 1.0};
    for (int kind = 0; kind < 3; kind++) {
        diffsde_gmm_eval *ev;
        ok(diffsde_gmm_eval_new(g, f->sde[kind], &ev), f->ctx);
        for (int ti = 0; ti < 4; ti++) {
            double a, sg, t[13], x[13], rs[26], lp[13];
            coefs(f->sde[kind], times[ti], &a, &sg);
            for (int i = 0; i < 13; i++) {
                t[i] = times[ti];
                x[i] = a * mu[i % 2] + (i - 6) * 0.5 * sqrt(a * a * S[i % 2] + sg * sg);
            }
            ok(diffsde_gmm_evaluate(ev, 13, t, x, lp, NULL, NULL, rs), f->ctx);
            for (int i = 0; i < 13; i++) {
                double nk[2], p = 0;
                for (int k = 0; k < 2; k++) {
                    double C = a * a * S[k] + sg * sg, r = x[i] - a * mu[k];
                    nk[k] = w[k] * exp(-r * r / (2 * C)) / sqrt(2 * PI * C);
                    p += nk[k];
                }
                assert_close(lp[i], log(p), 1e-13, 1e-14);
                for (int k = 0; k < 2; k++)
                    assert_close(rs[i * 2 + k], nk[k] / p, 1e-13, 1e-15);
            }
        }
        diffsde_gmm_eval_free(ev);
    }
    diffsde_gmm_free(g);

    g = builtin(f->ctx, "ring8");
    diffsde_noise *noise;
    ok(diffsde_noise_new_philox(f->ctx, 5, &noise), f->ctx);
    for (int kind = 0; kind < 3; kind++) {
        diffsde_gmm_eval *ev;
        ok(diffsde_gmm_eval_new(g, f->sde[kind], &ev), f->ctx);
        double x[20 * 2], t[20], rs[20 * 8];
        ok(diffsde_gmm_sample(ev, noise, 0.05, 0, 16, x), f->ctx);
        const double far[4][2] = {{300, 0}, {-150, 200}, {0, -30}, {21, 21}};
        memcpy(x + 32, far, sizeof far);
        for (int i = 0; i < 20; i++)
            t[i] = 0.05;
        ok(diffsde_gmm_evaluate(ev, 20, t, x, NULL, NULL, NULL, rs), f->ctx);
        for (int i = 0; i < 20; i++) {
            double s = 0;
            for (int k = 0; k < 8; k++) {
                assert_true(rs[i * 8 + k] >= 0 && rs[i * 8 + k] <= 1);
                s += rs[i * 8 + k];
            }
            assert_close(s, 1.0, 0, 8e-14);
        }
        diffsde_gmm_eval_free(ev);
    }
    diffsde_noise_free(noise);
    diffsde_gmm_free(g);
}

/* ---- sampling reproducibility --------------------------------------------------------- */

static int rows_equal(const double *a, const double *b, size_t D)
{
    return memcmp(a, b, D * sizeof(double)) == 0;
}

/*
 * Sample i is bit-identical whatever n and sample0 (one batch of 1000; batches 0..299 and
 * 300..999; sample 537 alone), for ring8 (hand-written path) and random:12,3,5 (BLAS path);
 * another seed changes every sample; a callback noise source is refused (EUNSUPPORTED).
 */
static int noise_cb(uint32_t stream, uint64_t step, uint64_t sample0, size_t n, size_t d, double *z,
                    void *user)
{
    (void)stream, (void)step, (void)sample0, (void)user;
    for (size_t i = 0; i < n * d; i++)
        z[i] = 0.5;
    return 0;
}

static void test_sample_reproducible(void **state)
{
    fixture *f = *state;
    enum { NS = 1000 };
    const char *models[2] = {"ring8", "random:12,3,5"};
    diffsde_noise *n1, *n2, *cb;
    ok(diffsde_noise_new_philox(f->ctx, 99, &n1), f->ctx);
    ok(diffsde_noise_new_philox(f->ctx, 100, &n2), f->ctx);
    ok(diffsde_noise_new_callback(f->ctx, noise_cb, NULL, &cb), f->ctx);
    for (int mi = 0; mi < 2; mi++) {
        diffsde_gmm *g = builtin(f->ctx, models[mi]);
        size_t D = diffsde_gmm_dim(g);
        double *a = malloc(NS * D * sizeof(double)), *b = malloc(NS * D * sizeof(double));
        double *c = malloc(D * sizeof(double));
        assert_true(a && b && c);
        diffsde_gmm_eval *ev;
        ok(diffsde_gmm_eval_new(g, f->sde[1], &ev), f->ctx);
        ok(diffsde_gmm_sample(ev, n1, 0.4, 0, NS, a), f->ctx);
        ok(diffsde_gmm_sample(ev, n1, 0.4, 0, 300, b), f->ctx);
        ok(diffsde_gmm_sample(ev, n1, 0.4, 300, NS - 300, b + 300 * D), f->ctx);
        ok(diffsde_gmm_sample(ev, n1, 0.4, 537, 1, c), f->ctx);
        assert_memory_equal(a, b, NS * D * sizeof(double));
        assert_true(rows_equal(a + 537 * D, c, D));
        ok(diffsde_gmm_sample(ev, n2, 0.4, 0, NS, b), f->ctx);
        for (size_t i = 0; i < NS; i++)
            assert_false(rows_equal(a + i * D, b + i * D, D));
        assert_int_equal(diffsde_gmm_sample(ev, cb, 0.4, 0, 4, b), DIFFSDE_EUNSUPPORTED);
        assert_int_equal(diffsde_gmm_sample(ev, n1, 1.5, 0, 4, b), DIFFSDE_EDOM);
        assert_non_null(strstr(diffsde_errmsg(f->ctx), "diffsde_gmm_sample: t (1.5"));
        assert_int_equal(diffsde_gmm_sample(ev, NULL, 0.4, 0, 4, b), DIFFSDE_ENULL);
        diffsde_gmm_eval_free(ev);
        diffsde_gmm_free(g);
        free(a);
        free(b);
        free(c);
    }
    diffsde_noise_free(n1);
    diffsde_noise_free(n2);
    diffsde_noise_free(cb);
}

/* ---- built-in models ------------------------------------------------------------------ */

static void spd(const double *cov, size_t D)
{
    gsl_matrix *m = gsl_matrix_alloc(D, D);
    assert_non_null(m);
    for (size_t i = 0; i < D; i++)
        for (size_t j = 0; j < D; j++) {
            assert_true(cov[i * D + j] == cov[j * D + i]);
            gsl_matrix_set(m, i, j, cov[i * D + j]);
        }
    assert_int_equal(gsl_linalg_cholesky_decomp1(m), GSL_SUCCESS);
    gsl_matrix_free(m);
}

/*
 * ring8, grid25, gauss1 as documented; random:5,3,7 against the documented recipe computed
 * here from diffsde_noise_uniform_at / diffsde_noise_normal_at (1e-14), reproducible bit for
 * bit, SPD (GSL Cholesky), and a different SEED gives a different model.
 */
static void test_builtins(void **state)
{
    fixture *f = *state;
    double w, mu[5], cov[25];
    diffsde_gmm *g = builtin(f->ctx, "ring8");
    assert_int_equal(diffsde_gmm_dim(g), 2);
    assert_int_equal(diffsde_gmm_ncomponents(g), 8);
    for (size_t k = 0; k < 8; k++) {
        ok(diffsde_gmm_component(g, k, &w, mu, cov), f->ctx);
        assert_close(w, (k + 1) / 36.0, 1e-15, 0);
        assert_close(mu[0], 4 * cos(2 * PI * k / 8), 0, 1e-15);
        assert_close(mu[1], 4 * sin(2 * PI * k / 8), 0, 1e-15);
        assert_true(cov[0] == 0.03 && cov[3] == 0.03 && cov[1] == 0 && cov[2] == 0);
    }
    diffsde_gmm_free(g);
    g = builtin(f->ctx, "grid25");
    assert_int_equal(diffsde_gmm_dim(g), 2);
    assert_int_equal(diffsde_gmm_ncomponents(g), 25);
    for (size_t k = 0; k < 25; k++) {
        ok(diffsde_gmm_component(g, k, &w, mu, cov), f->ctx);
        assert_close(w, 1 / 25.0, 1e-15, 0);
        assert_true(mu[0] == -4.0 + 2.0 * (double)(k / 5) && mu[1] == -4.0 + 2.0 * (double)(k % 5));
        assert_true(cov[0] == 0.05 && cov[3] == 0.05 && cov[1] == 0);
    }
    diffsde_gmm_free(g);
    g = builtin(f->ctx, "gauss1");
    assert_int_equal(diffsde_gmm_ncomponents(g), 1);
    ok(diffsde_gmm_component(g, 0, &w, mu, cov), f->ctx);
    assert_true(w == 1 && mu[0] == 1 && mu[1] == -0.5 && cov[0] == 1.5 && cov[1] == 0.4 &&
                cov[2] == 0.4 && cov[3] == 0.6);
    diffsde_gmm_free(g);

    enum { D = 5, K = 3 };
    const uint64_t seed = 7;
    g = builtin(f->ctx, "random:5,3,7");
    diffsde_gmm *g2 = builtin(f->ctx, "random:5,3,7"), *g3 = builtin(f->ctx, "random:5,3,8");
    assert_int_equal(diffsde_gmm_dim(g), D);
    assert_int_equal(diffsde_gmm_ncomponents(g), K);
    double raw[K], tot = 0;
    for (size_t k = 0; k < K; k++) {
        raw[k] = 0.5 + diffsde_noise_uniform_at(seed, DIFFSDE_STREAM_MODEL, k, 0, 0);
        assert_true(raw[k] > 0.5 && raw[k] < 1.5);
        tot += raw[k];
    }
    for (size_t k = 0; k < K; k++) {
        double w2, mu2[D], cov2[D * D], w3, mu3[D], A[D * D];
        ok(diffsde_gmm_component(g, k, &w, mu, cov), f->ctx);
        ok(diffsde_gmm_component(g2, k, &w2, mu2, cov2), f->ctx);
        ok(diffsde_gmm_component(g3, k, &w3, mu3, NULL), f->ctx);
        assert_true(w == w2);
        assert_memory_equal(mu, mu2, sizeof mu2);
        assert_memory_equal(cov, cov2, sizeof cov2);
        assert_true(mu3[0] != mu[0]);
        assert_close(w, raw[k] / tot, 1e-14, 0);
        for (size_t j = 0; j < D * D; j++)
            A[j] = diffsde_noise_normal_at(seed, DIFFSDE_STREAM_MODEL, k, 2, j);
        for (size_t i = 0; i < D; i++) {
            assert_close(mu[i], 3 * diffsde_noise_normal_at(seed, DIFFSDE_STREAM_MODEL, k, 1, i),
                         1e-15, 0);
            for (size_t j = 0; j < D; j++) {
                double c = 0;
                for (size_t l = 0; l < D; l++)
                    c += A[i * D + l] * A[j * D + l];
                assert_close(cov[i * D + j], c / D + (i == j) * 0.1, 1e-14, 1e-15);
            }
        }
        spd(cov, D);
    }
    diffsde_gmm_free(g);
    diffsde_gmm_free(g2);
    diffsde_gmm_free(g3);
}

/* Malformed names: DIFFSDE_EPARAM, the message naming the faulty part; out set to NULL. */
static void test_builtin_malformed(void **state)
{
    fixture *f = *state;
    static const struct {
        const char *name, *msg;
    } bad[] = {
        {"random:0,3,1", "D (0) must be >= 1"},
        {"random:2,,1", "K is empty"},
        {"random:2,3", "SEED is missing"},
        {"random:2,3,1x", "SEED (\"1x\") is not a decimal integer"},
        {"nosuch", "unknown model name \"nosuch\""},
        {"random:2,0,1", "K (0) must be >= 1"},
        {"random:", "D is empty"},
        {"random:2", "K is missing"},
        {"random:2,3,1,4", "more than three"},
        {"random:-2,3,1", "D (\"-2\") is not a decimal integer"},
        {"random: 2,3,1", "D (\" 2\") is not a decimal integer"},
        {"random:2,3,", "SEED is empty"},
        {"random:2,3,18446744073709551616", "SEED (\"18446744073709551616\") overflows"},
        {"random:70000,1,1", "D (70000) exceeds its maximum 65536"},
        {"Ring8", "unknown model name"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        diffsde_gmm *g = (diffsde_gmm *)f;
        assert_int_equal(diffsde_gmm_new_builtin(f->ctx, bad[i].name, &g), DIFFSDE_EPARAM);
        assert_null(g);
        if (!strstr(diffsde_errmsg(f->ctx), bad[i].msg))
            print_error("%s: message \"%s\"\n", bad[i].name, diffsde_errmsg(f->ctx));
        assert_non_null(strstr(diffsde_errmsg(f->ctx), bad[i].msg));
        assert_non_null(strstr(diffsde_errmsg(f->ctx), "diffsde_gmm_new_builtin"));
    }
    diffsde_gmm *g = builtin(f->ctx, "random:2,3,18446744073709551615");
    diffsde_gmm_free(g);
    assert_int_equal(diffsde_gmm_new_builtin(f->ctx, NULL, &g), DIFFSDE_ENULL);
    assert_int_equal(diffsde_gmm_new_builtin(NULL, "ring8", &g), DIFFSDE_ENULL);
}

/* ---- builder errors ------------------------------------------------------------------- */

static void expect(diffsde_ctx *ctx, int got, int status, const char *m1, const char *m2)
{
    if (got != status || !strstr(diffsde_errmsg(ctx), m1) ||
        (m2 && !strstr(diffsde_errmsg(ctx), m2)))
        print_error("got %s \"%s\", expected %s with \"%s\"\n", diffsde_status_name(got),
                    diffsde_errmsg(ctx), diffsde_status_name(status), m1);
    assert_int_equal(got, status);
    assert_non_null(strstr(diffsde_errmsg(ctx), m1));
    if (m2)
        assert_non_null(strstr(diffsde_errmsg(ctx), m2));
}

static void test_builder_errors(void **state)
{
    fixture *f = *state;
    diffsde_ctx *ctx = f->ctx;
    diffsde_gmm *g = (diffsde_gmm *)f;
    expect(ctx, diffsde_gmm_new(ctx, 0, &g), DIFFSDE_ESIZE, "diffsde_gmm_new: dim (0)", NULL);
    assert_null(g);
    expect(ctx, diffsde_gmm_new(ctx, SIZE_MAX / 2, &g), DIFFSDE_ESIZE, "overflows", NULL);
    assert_int_equal(diffsde_gmm_new(NULL, 2, &g), DIFFSDE_ENULL);
    ok(diffsde_gmm_new(ctx, 2, &g), ctx);
    const double mu[2] = {0.25, -1.5}, nanmu[2] = {0.25, NAN}, cov[4] = {1.0, 0.3, 0.3, 0.8};
    const double asym[4] = {1.0, 0.3, 0.3 + 1e-9, 0.8}, nspd[4] = {1.0, 2.0, 2.0, 1.0};
    const double nancov[4] = {1.0, NAN, NAN, 1.0}, diag_bad[2] = {1.0, 0.0};
    expect(ctx, diffsde_gmm_finalize(g), DIFFSDE_ESTATE, "no components", NULL);
    expect(ctx, diffsde_gmm_component(g, 0, NULL, NULL, NULL), DIFFSDE_ESTATE, "not finalised",
           NULL);
    diffsde_gmm_eval *ev = (diffsde_gmm_eval *)f;
    expect(ctx, diffsde_gmm_eval_new(g, NULL, &ev), DIFFSDE_ESTATE, "not finalised", NULL);
    assert_null(ev);
    ok(diffsde_gmm_add_full(g, 2.0, mu, cov), ctx);
    ok(diffsde_gmm_add_iso(g, 1.0, mu, 0.5), ctx);
    /* component 2 onwards: every rejection names index 2 and the field */
    expect(ctx, diffsde_gmm_add_full(g, 0.0, mu, cov), DIFFSDE_EPARAM, "component 2: weight (0)",
           NULL);
    expect(ctx, diffsde_gmm_add_full(g, -1.0, mu, cov), DIFFSDE_EPARAM, "component 2: weight (-1)",
           NULL);
    expect(ctx, diffsde_gmm_add_full(g, NAN, mu, cov), DIFFSDE_EPARAM, "component 2: weight", NULL);
    expect(ctx, diffsde_gmm_add_iso(g, INFINITY, mu, 1.0), DIFFSDE_EPARAM, "component 2: weight",
           NULL);
    expect(ctx, diffsde_gmm_add_full(g, 1.0, nanmu, cov), DIFFSDE_EPARAM, "component 2: mean[1]",
           NULL);
    expect(ctx, diffsde_gmm_add_full(g, 1.0, mu, nancov), DIFFSDE_EPARAM, "component 2: cov[0][1]",
           NULL);
    expect(ctx, diffsde_gmm_add_full(g, 1.0, mu, asym), DIFFSDE_EPARAM,
           "component 2: cov is not symmetric", NULL);
    expect(ctx, diffsde_gmm_add_full(g, 1.0, mu, nspd), DIFFSDE_EPARAM,
           "component 2: cov is not positive definite", "diffsde_gmm_add_full");
    expect(ctx, diffsde_gmm_add_diag(g, 1.0, mu, diag_bad), DIFFSDE_EPARAM,
           "component 2: diag[1] (0)", NULL);
    expect(ctx, diffsde_gmm_add_iso(g, 1.0, mu, -0.5), DIFFSDE_EPARAM, "component 2: var (-0.5)",
           NULL);
    expect(ctx, diffsde_gmm_add_full(g, 1.0, NULL, cov), DIFFSDE_ENULL, "component 2: mean is NULL",
           NULL);
    expect(ctx, diffsde_gmm_add_diag(g, 1.0, mu, NULL), DIFFSDE_ENULL, "component 2: diag is NULL",
           NULL);
    assert_int_equal(diffsde_gmm_add_full(NULL, 1.0, mu, cov), DIFFSDE_ENULL);
    assert_int_equal(diffsde_gmm_ncomponents(g), 2); /* unchanged by the failures */
    /* a symmetric difference within 1e-12·max|C| is accepted and averaged */
    const double nearly[4] = {1.0, 0.3, 0.3 + 5e-13, 0.8};
    ok(diffsde_gmm_add_full(g, 1.0, mu, nearly), ctx);
    ok(diffsde_gmm_finalize(g), ctx);
    double w, c[4];
    ok(diffsde_gmm_component(g, 2, &w, NULL, c), ctx);
    assert_close(w, 0.25, 1e-15, 0);
    assert_true(c[1] == c[2]);
    expect(ctx, diffsde_gmm_add_full(g, 1.0, mu, cov), DIFFSDE_ESTATE,
           "component 3: the model is already finalised", NULL);
    expect(ctx, diffsde_gmm_add_iso(g, 1.0, mu, 1.0), DIFFSDE_ESTATE, "already finalised", NULL);
    expect(ctx, diffsde_gmm_finalize(g), DIFFSDE_ESTATE, "already finalised", NULL);
    expect(ctx, diffsde_gmm_component(g, 3, NULL, NULL, NULL), DIFFSDE_ERANGE, "k (3)", NULL);
    expect(ctx, diffsde_gmm_moments(g, f->sde[1], 1.5, NULL, NULL), DIFFSDE_EDOM,
           "diffsde_gmm_moments", NULL);
    assert_int_equal(diffsde_gmm_dim(NULL), 0);
    assert_int_equal(diffsde_gmm_ncomponents(NULL), 0);
    diffsde_gmm_free(g);
    diffsde_gmm_free(NULL);
    diffsde_gmm_eval_free(NULL);
}

/* ---- allocation failures -------------------------------------------------------------- */

/*
 * The whole life cycle with an allocator failing at call k, for every k until a run
 * succeeds: every failure is DIFFSDE_ENOMEM and nothing leaks (live blocks == 0 after the
 * clean-up). 11 components force the builder to grow its arrays.
 */
static int lifecycle(diffsde_ctx *ctx)
{
    diffsde_gmm *g = NULL, *b = NULL;
    diffsde_sde *sde = NULL;
    diffsde_gmm_eval *ev = NULL;
    diffsde_score *sc = NULL;
    const double cov[4] = {1.0, 0.2, 0.2, 0.5}, diag[2] = {0.3, 0.4};
    double t[3] = {0.2, 0.5, 0.2}, x[6] = {0.1, 0.2, -1, 2, 3, 0.5}, s[6], lp[3], dv[3];
    int st = diffsde_sde_new_vp(ctx, 0.1, 20, &sde);
    if (!st)
        st = diffsde_gmm_new(ctx, 2, &g);
    for (int k = 0; k < 11 && !st; k++) {
        double mu[2] = {k * 0.5, -0.25 * k};
        st = k % 3 == 0   ? diffsde_gmm_add_full(g, 1.0 + k, mu, cov)
             : k % 3 == 1 ? diffsde_gmm_add_diag(g, 1.0, mu, diag)
                          : diffsde_gmm_add_iso(g, 0.5, mu, 0.7);
    }
    if (!st)
        st = diffsde_gmm_finalize(g);
    if (!st)
        st = diffsde_gmm_eval_new(g, sde, &ev);
    if (!st)
        st = diffsde_gmm_evaluate(ev, 3, t, x, lp, s, dv, NULL);
    if (!st)
        st = diffsde_gmm_score_new(g, sde, &sc);
    if (!st)
        st = diffsde_score_eval(sc, sde, 3, 2, t, x, s);
    if (!st)
        st = diffsde_gmm_new_builtin(ctx, "random:3,2,5", &b);
    diffsde_score_free(sc);
    diffsde_gmm_eval_free(ev);
    diffsde_gmm_free(g);
    diffsde_gmm_free(b);
    diffsde_sde_free(sde);
    return st;
}

static void test_alloc_failures(void **state)
{
    (void)state;
    int runs = 0;
    for (long k = 1;; k++) {
        tu_alloc a = {0, 0, k};
        diffsde_allocator al = tu_allocator(&a);
        diffsde_ctx *ctx;
        int st = diffsde_ctx_new(&ctx, &al);
        if (st == DIFFSDE_OK) {
            st = lifecycle(ctx);
            if (st != DIFFSDE_OK && st != DIFFSDE_ENOMEM)
                print_error("fail_at %ld: %s\n", k, diffsde_errmsg(ctx));
            diffsde_ctx_free(ctx);
        }
        assert_true(st == DIFFSDE_OK || st == DIFFSDE_ENOMEM);
        assert_int_equal(a.live, 0);
        runs++;
        if (st == DIFFSDE_OK) {
            assert_true(a.calls < k); /* the run that succeeded never reached the failing call */
            break;
        }
    }
    print_message("# allocation failures: %d failing points, no leak\n", runs - 1);
}

/* ---- stability ------------------------------------------------------------------------ */

static int all_finite(const double *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i]))
            return 0;
    return 1;
}

/*
 * D = 1024 (random:1024,4,2025) under VP at t = 1e-3 and t = 1: log p, score, divergence and
 * responsibilities of 3 exact samples and one far point (x = 30·(1, …, 1), ‖x‖ = 960) are
 * finite; the directional derivative of log p along s/‖s‖ and along axes 0 and 517 (five-point
 * differences, h = 1e-3 √(α²·0.1 + σ²)) matches the score within 1e-6 ‖s‖; one-point calls
 * agree with the batched call to 1e-13.
 */
static void test_stability_d1024(void **state)
{
    fixture *f = *state;
    enum { D = 1024, NP = 4 };
    diffsde_gmm *g = builtin(f->ctx, "random:1024,4,2025");
    diffsde_gmm_eval *ev;
    ok(diffsde_gmm_eval_new(g, f->sde[1], &ev), f->ctx);
    diffsde_noise *noise;
    ok(diffsde_noise_new_philox(f->ctx, 31, &noise), f->ctx);
    double *x = malloc(NP * D * sizeof(double)), *s = malloc(NP * D * sizeof(double));
    double *s1 = malloc(D * sizeof(double)), *u = malloc(D * sizeof(double));
    double *y = malloc(D * sizeof(double));
    assert_true(x && s && s1 && u && y);
    const double times[2] = {1e-3, 1.0};
    double worst = 0;
    for (int ti = 0; ti < 2; ti++) {
        double t[NP], lp[NP], dv[NP], rs[NP * 4], a, sg;
        coefs(f->sde[1], times[ti], &a, &sg);
        for (int i = 0; i < NP; i++)
            t[i] = times[ti];
        ok(diffsde_gmm_sample(ev, noise, t[0], 0, NP - 1, x), f->ctx);
        for (size_t j = 0; j < D; j++)
            x[(NP - 1) * D + j] = 30;
        ok(diffsde_gmm_evaluate(ev, NP, t, x, lp, s, dv, rs), f->ctx);
        assert_true(all_finite(lp, NP) && all_finite(s, NP * D) && all_finite(dv, NP) &&
                    all_finite(rs, NP * 4));
        double h = 1e-3 * sqrt(a * a * 0.1 + sg * sg);
        for (int i = 0; i < NP; i++) {
            double lp1, dv1, nrm = 0;
            ok(diffsde_gmm_evaluate(ev, 1, t, x + i * D, &lp1, s1, &dv1, NULL), f->ctx);
            assert_close(lp1, lp[i], 1e-13, 0);
            assert_close(dv1, dv[i], 1e-13, 0);
            for (size_t j = 0; j < D; j++)
                nrm += s[i * D + j] * s[i * D + j];
            nrm = sqrt(nrm);
            for (size_t j = 0; j < D; j++) {
                assert_close(s1[j], s[i * D + j], 0, 1e-13 * nrm);
                u[j] = s[i * D + j] / nrm;
            }
            double d = fd_dir(ev, t[0], D, x + i * D, u, h, y);
            assert_close(d, nrm, 0, 1e-6 * nrm);
            worst = fmax(worst, fabs(d - nrm) / nrm);
            const size_t axes[2] = {0, 517};
            for (int m = 0; m < 2; m++) {
                memset(u, 0, D * sizeof(double));
                u[axes[m]] = 1;
                d = fd_dir(ev, t[0], D, x + i * D, u, h, y);
                assert_close(d, s[i * D + axes[m]], 0, 1e-6 * nrm);
                worst = fmax(worst, fabs(d - s[i * D + axes[m]]) / nrm);
            }
        }
    }
    print_message("# D = 1024: worst finite-difference error %.2e of |s|\n", worst);
    diffsde_noise_free(noise);
    diffsde_gmm_eval_free(ev);
    diffsde_gmm_free(g);
    free(x);
    free(s);
    free(s1);
    free(u);
    free(y);
}

/*
 * VE with σmax = 378 at t = 1: C_k = Σ_k + 378² I. random:4,3,9 at 5 exact samples and a
 * point 5σ out: finite, and equal to the moment-matched Gaussian N(m, V) (diffsde_gmm_moments,
 * solved here with GSL's Cholesky) up to the Edgeworth correction, whose relative size is
 * ~κ3(p0)·z/σ³ ≈ 1e-6 for ‖z‖ ≤ 5 (measured ≤ 1.3e-6): score within 1e-5 ‖s‖, log p within
 * 1e-5, divergence within 1e-5 |tr V⁻¹|. (gauss1, where the limit is exact, is checked to 1e-13
 * with this SDE in test_gauss1_closed_form.)
 */
static void test_stability_ve_large_sigma(void **state)
{
    fixture *f = *state;
    diffsde_gmm *g = builtin(f->ctx, "random:4,3,9");
    diffsde_sde *sde;
    ok(diffsde_sde_new_ve(f->ctx, 0.01, 378, &sde), f->ctx);
    diffsde_gmm_eval *ev;
    ok(diffsde_gmm_eval_new(g, sde, &ev), f->ctx);
    diffsde_noise *noise;
    ok(diffsde_noise_new_philox(f->ctx, 3, &noise), f->ctx);
    double x[6 * 4], t[6], lp[6], s[6 * 4], dv[6], m[4], V[16];
    ok(diffsde_gmm_sample(ev, noise, 1.0, 0, 5, x), f->ctx);
    for (int j = 0; j < 4; j++)
        x[20 + j] = 5 * 378 * (j % 2 ? 1 : -1) / 2.0;
    for (int i = 0; i < 6; i++)
        t[i] = 1;
    ok(diffsde_gmm_evaluate(ev, 6, t, x, lp, s, dv, NULL), f->ctx);
    assert_true(all_finite(lp, 6) && all_finite(s, 24) && all_finite(dv, 6));
    ok(diffsde_gmm_moments(g, sde, 1.0, m, V), f->ctx);
    gsl_matrix_view Vm = gsl_matrix_view_array(V, 4, 4);
    assert_int_equal(gsl_linalg_cholesky_decomp1(&Vm.matrix), GSL_SUCCESS);
    double ld = 0, trinv = 0;
    for (int j = 0; j < 4; j++)
        ld += 2 * log(gsl_matrix_get(&Vm.matrix, j, j));
    for (int j = 0; j < 4; j++) {
        double e[4] = {0, 0, 0, 0};
        e[j] = 1;
        gsl_vector_view ev_ = gsl_vector_view_array(e, 4);
        gsl_linalg_cholesky_svx(&Vm.matrix, &ev_.vector);
        trinv += e[j];
    }
    double worst = 0;
    for (int i = 0; i < 6; i++) {
        double r[4], z[4], q = 0, e2 = 0, n2 = 0;
        for (int j = 0; j < 4; j++)
            r[j] = z[j] = x[i * 4 + j] - m[j];
        gsl_vector_view zv = gsl_vector_view_array(z, 4);
        gsl_linalg_cholesky_svx(&Vm.matrix, &zv.vector);
        for (int j = 0; j < 4; j++) {
            q += r[j] * z[j];
            e2 += (s[i * 4 + j] + z[j]) * (s[i * 4 + j] + z[j]);
            n2 += s[i * 4 + j] * s[i * 4 + j];
        }
        assert_true(sqrt(e2) <= 1e-5 * sqrt(n2));
        assert_close(lp[i], -2 * log(2 * PI) - 0.5 * ld - 0.5 * q, 0, 1e-5);
        assert_close(dv[i], -trinv, 1e-5, 0);
        worst = fmax(worst, sqrt(e2 / n2));
    }
    print_message("# VE sigma_max = 378, t = 1: score within %.2e of the Gaussian limit\n", worst);
    diffsde_noise_free(noise);
    diffsde_gmm_eval_free(ev);
    diffsde_sde_free(sde);
    diffsde_gmm_free(g);
}

/* Long-double Cholesky solve of the 3 × 3 SPD C: z = C⁻¹ r, log det C, tr C⁻¹. */
static void solve3_ld(const long double C[9], const long double r[3], long double z[3],
                      long double *logdet, long double *trinv)
{
    long double L[9] = {0}, y[3];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j <= i; j++) {
            long double v = C[i * 3 + j];
            for (int k = 0; k < j; k++)
                v -= L[i * 3 + k] * L[j * 3 + k];
            L[i * 3 + j] = i == j ? sqrtl(v) : v / L[j * 3 + j];
        }
    *logdet = 2 * (logl(L[0]) + logl(L[4]) + logl(L[8]));
    *trinv = 0;
    for (int c = -1; c < 3; c++) { /* c = −1: the right-hand side r; else the unit vector e_c */
        long double b[3], w[3];
        for (int i = 0; i < 3; i++)
            b[i] = c < 0 ? r[i] : (long double)(i == c);
        for (int i = 0; i < 3; i++) {
            y[i] = b[i];
            for (int k = 0; k < i; k++)
                y[i] -= L[i * 3 + k] * y[k];
            y[i] /= L[i * 4];
        }
        for (int i = 2; i >= 0; i--) {
            w[i] = y[i];
            for (int k = i + 1; k < 3; k++)
                w[i] -= L[k * 3 + i] * w[k];
            w[i] /= L[i * 4];
        }
        if (c < 0)
            memcpy(z, w, sizeof w);
        else
            *trinv += w[c];
    }
}

/*
 * A covariance with eigenvalues (1, 0.5, 1e-10) (rotated by the Householder reflection of
 * (1, 2, 2)/3) at t = 1e-5 under each SDE and for p0 (σ = 0): finite, and equal to a
 * long-double Cholesky solve of the same stored C = α²Σ + σ²I within the backward-stability
 * bound of a Cholesky solve, 64 κ(C) ε relative (κ = (α² + σ²)/(1e-10 α² + σ²): 1e4 for VE,
 * 1e6 for VP, 1e10 for sub-VP (σ ≈ 1e-6) and p0); log p within 64 κ ε (rᵀC⁻¹r + D).
 */
static void test_near_singular(void **state)
{
    fixture *f = *state;
    const double v[3] = {1 / 3.0, 2 / 3.0, 2 / 3.0}, lam[3] = {1, 0.5, 1e-10};
    double R[9], S[9], mu[3] = {0.3, -0.2, 0.1};
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            R[i * 3 + j] = (i == j) - 2 * v[i] * v[j];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) {
            double c = 0;
            for (int k = 0; k < 3; k++)
                c += R[i * 3 + k] * lam[k] * R[j * 3 + k];
            S[i * 3 + j] = c;
        }
    for (int i = 0; i < 3; i++) /* exactly symmetric */
        for (int j = 0; j < i; j++)
            S[j * 3 + i] = S[i * 3 + j];
    diffsde_gmm *g;
    ok(diffsde_gmm_new(f->ctx, 3, &g), f->ctx);
    ok(diffsde_gmm_add_full(g, 1.0, mu, S), f->ctx);
    ok(diffsde_gmm_finalize(g), f->ctx);
    double worst = 0; /* score error / bound */
    for (int k = -1; k < 3; k++) {
        const diffsde_sde *sde = k < 0 ? NULL : f->sde[k];
        double t = 1e-5, a, sg;
        coefs(sde, t, &a, &sg);
        double lmin = a * a * 1e-10 + sg * sg, kappa = (a * a + sg * sg) / lmin;
        double bound = 64 * kappa * DBL_EPSILON;
        diffsde_gmm_eval *ev;
        ok(diffsde_gmm_eval_new(g, sde, &ev), f->ctx);
        double x[4 * 3], tt[4] = {t, t, t, t}, lp[4], s[12], dv[4];
        const double cq[4][3] = {{0, 0, 2}, {0.7, -0.3, -1.5}, {0, 0, 0.01}, {30, -20, 10}};
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 3; j++) /* α μ + c1 q1 + c2 q2 + c3 √λmin q3 (c3 scaled) */
                x[i * 3 + j] = a * mu[j] + cq[i][0] * R[j * 3 + 0] + cq[i][1] * R[j * 3 + 1] +
                               cq[i][2] * sqrt(lmin) * R[j * 3 + 2];
        ok(diffsde_gmm_evaluate(ev, 4, tt, x, lp, s, dv, NULL), f->ctx);
        assert_true(all_finite(lp, 4) && all_finite(s, 12) && all_finite(dv, 4));
        long double C[9];
        for (int i = 0; i < 9; i++)
            C[i] = (long double)a * a * S[i] + (i % 4 == 0) * (long double)sg * sg;
        for (int i = 0; i < 4; i++) {
            long double r[3], z[3], ldet, tr, q = 0, e2 = 0, n2 = 0;
            for (int j = 0; j < 3; j++)
                r[j] = (long double)x[i * 3 + j] - (long double)a * mu[j];
            solve3_ld(C, r, z, &ldet, &tr);
            for (int j = 0; j < 3; j++) {
                q += r[j] * z[j];
                e2 += (s[i * 3 + j] + z[j]) * (s[i * 3 + j] + z[j]);
                n2 += z[j] * z[j];
            }
            double elp = (double)(-1.5L * logl(2 * PI) - 0.5L * ldet - 0.5L * q);
            assert_true(sqrtl(e2) <= bound * sqrtl(n2));
            worst = fmax(worst, (double)(sqrtl(e2 / n2)) / bound);
            assert_close(lp[i], elp, 0, bound * ((double)q + 3));
            assert_close(dv[i], (double)-tr, bound, 0);
        }
        diffsde_gmm_eval_free(ev);
    }
    print_message("# near-singular covariance: worst score error %.2g of the 64 kappa eps bound\n",
                  worst);
    diffsde_gmm_free(g);
}

/* ---- the score adapter ---------------------------------------------------------------- */

/*
 * diffsde_score_eval on diffsde_gmm_score_new equals diffsde_gmm_evaluate's score bit for
 * bit (VE, random:3,2,1, mixed times; and p0 with sde NULL), and so does its log-density
 * (diffsde_score_eval_logp) with the evaluator's log p_t; a dimension mismatch is a fatal
 * callback failure; freeing the score releases its evaluator (counting allocator: live
 * returns to the count before diffsde_gmm_score_new, then 0).
 */
static void test_score_adapter(void **state)
{
    (void)state;
    tu_alloc al = {0, 0, 0};
    diffsde_allocator hooks = tu_allocator(&al);
    diffsde_ctx *ctx;
    ok(diffsde_ctx_new(&ctx, &hooks), NULL);
    diffsde_sde *sde;
    ok(diffsde_sde_new_ve(ctx, 0.01, 50, &sde), ctx);
    diffsde_gmm *g = builtin(ctx, "random:3,2,1");
    long before = al.live;
    diffsde_score *sc;
    ok(diffsde_gmm_score_new(g, sde, &sc), ctx);
    assert_true(al.live > before);
    assert_int_equal(diffsde_score_get_param(sc), DIFFSDE_PARAM_SCORE);
    assert_int_equal(diffsde_score_get_thread_safe(sc), 0);
    diffsde_gmm_eval *ev;
    ok(diffsde_gmm_eval_new(g, sde, &ev), ctx);
    double t[5] = {0.1, 0.7, 0.1, 1e-5, 1.0}, x[15], s1[15], s2[15];
    for (int i = 0; i < 15; i++)
        x[i] = -2.385 + 0.731 * i;
    ok(diffsde_score_eval(sc, sde, 5, 3, t, x, s1), ctx);
    ok(diffsde_gmm_evaluate(ev, 5, t, x, NULL, s2, NULL, NULL), ctx);
    assert_memory_equal(s1, s2, sizeof s1);
    assert_int_equal(diffsde_score_eval(sc, sde, 3, 5, t, x, s1), DIFFSDE_ECALLBACK);
    double lp1[5], lp2[5];
    assert_int_equal(diffsde_score_has_logp(sc), 1);
    ok(diffsde_score_eval_logp(sc, 5, 3, t, x, lp1), ctx);
    ok(diffsde_gmm_evaluate(ev, 5, t, x, lp2, NULL, NULL, NULL), ctx);
    assert_memory_equal(lp1, lp2, sizeof lp1);
    assert_int_equal(diffsde_score_eval_logp(sc, 3, 5, t, x, lp1), DIFFSDE_ECALLBACK);
    diffsde_gmm_eval_free(ev);
    diffsde_score_free(sc);
    assert_int_equal(al.live, before);
    /* p0 */
    ok(diffsde_gmm_score_new(g, NULL, &sc), ctx);
    ok(diffsde_gmm_eval_new(g, NULL, &ev), ctx);
    ok(diffsde_score_eval(sc, sde, 5, 3, t, x, s1), ctx);
    ok(diffsde_gmm_evaluate(ev, 5, NULL, x, NULL, s2, NULL, NULL), ctx);
    assert_memory_equal(s1, s2, sizeof s1);
    ok(diffsde_score_eval_logp(sc, 5, 3, t, x, lp1), ctx);
    ok(diffsde_gmm_evaluate(ev, 5, NULL, x, lp2, NULL, NULL, NULL), ctx);
    assert_memory_equal(lp1, lp2, sizeof lp1);
    diffsde_gmm_eval_free(ev);
    diffsde_score_free(sc);
    assert_int_equal(diffsde_gmm_score_new(NULL, sde, &sc), DIFFSDE_ENULL);
    diffsde_gmm_free(g);
    diffsde_sde_free(sde);
    diffsde_ctx_free(ctx);
    assert_int_equal(al.live, 0);
}

/* ---- evaluate: errors, grouping, cache ------------------------------------------------ */

/* A user SDE with α = 1e160 (α² overflows): C_k = α²Σ_k + σ²I is infinite, so dpotrf fails. */
static double huge_f(double t, void *u)
{
    (void)t, (void)u;
    return 0;
}
static double huge_g2(double t, void *u)
{
    (void)t, (void)u;
    return 1;
}
static double huge_alpha(double t, void *u)
{
    (void)t, (void)u;
    return 1e160;
}
static double huge_sigma(double t, void *u)
{
    (void)u;
    return sqrt(1 + t);
}

/*
 * Argument and domain errors (every input checked before anything is written), t ignored by a
 * p0 evaluator, ECONVERGENCE when the factorisation fails (message names k and t), and
 * ENONFINITE for a point so far out that log p_t underflows to −∞ (x = 1e200).
 */
static void test_evaluate_errors(void **state)
{
    fixture *f = *state;
    diffsde_gmm *g = builtin(f->ctx, "ring8");
    diffsde_gmm_eval *ev, *p0;
    ok(diffsde_gmm_eval_new(g, f->sde[2], &ev), f->ctx);
    ok(diffsde_gmm_eval_new(g, NULL, &p0), f->ctx);
    double x[6] = {0.5, 1, 2, 3, -1, 0}, t[3] = {0.5, 1.25, 0.5}, lp[3] = {7, 7, 7};
    expect(f->ctx, diffsde_gmm_evaluate(ev, 3, t, x, lp, NULL, NULL, NULL), DIFFSDE_EDOM,
           "diffsde_gmm_evaluate: t[1] (1.25) is outside [0, 1]", NULL);
    assert_true(lp[0] == 7); /* every input checked before anything is written */
    t[1] = NAN;
    expect(f->ctx, diffsde_gmm_evaluate(ev, 3, t, x, lp, NULL, NULL, NULL), DIFFSDE_EDOM,
           "t[1] (nan)", NULL);
    t[1] = -1e-300;
    expect(f->ctx, diffsde_gmm_evaluate(ev, 3, t, x, lp, NULL, NULL, NULL), DIFFSDE_EDOM, "t[1]",
           NULL);
    t[1] = 0.25;
    x[5] = INFINITY;
    expect(f->ctx, diffsde_gmm_evaluate(ev, 3, t, x, lp, NULL, NULL, NULL), DIFFSDE_ENONFINITE,
           "x[2][1] (sample 2) is inf", NULL);
    x[5] = 0;
    expect(f->ctx, diffsde_gmm_evaluate(ev, 3, NULL, x, lp, NULL, NULL, NULL), DIFFSDE_ENULL,
           "t is NULL", NULL);
    expect(f->ctx, diffsde_gmm_evaluate(ev, 3, t, NULL, lp, NULL, NULL, NULL), DIFFSDE_ENULL,
           "x is NULL", NULL);
    assert_int_equal(diffsde_gmm_evaluate(NULL, 3, t, x, lp, NULL, NULL, NULL), DIFFSDE_ENULL);
    ok(diffsde_gmm_evaluate(ev, 0, NULL, NULL, NULL, NULL, NULL, NULL), f->ctx);
    ok(diffsde_gmm_evaluate(ev, 3, t, x, NULL, NULL, NULL, NULL), f->ctx);
    ok(diffsde_gmm_evaluate(p0, 3, NULL, x, lp, NULL, NULL, NULL), f->ctx); /* t ignored */
    t[1] = 7; /* ... even when out of range */
    double lp2[3];
    ok(diffsde_gmm_evaluate(p0, 3, t, x, lp2, NULL, NULL, NULL), f->ctx);
    assert_memory_equal(lp, lp2, sizeof lp);
    double far[2] = {1e200, -1e200}, tf = 0.5, sf[2];
    expect(f->ctx, diffsde_gmm_evaluate(ev, 1, &tf, far, lp, sf, NULL, NULL), DIFFSDE_ENONFINITE,
           "sample 0 at t = 0.5", "too far");
    diffsde_sde_user def = {huge_f, huge_g2, huge_alpha, huge_sigma, NULL, 1.0, 0.0};
    diffsde_sde *huge;
    ok(diffsde_sde_new_user(f->ctx, &def, &huge), f->ctx);
    diffsde_gmm_eval *evh;
    ok(diffsde_gmm_eval_new(g, huge, &evh), f->ctx);
    expect(f->ctx, diffsde_gmm_evaluate(evh, 1, &tf, x, lp, NULL, NULL, NULL), DIFFSDE_ECONVERGENCE,
           "component 0: Cholesky factorisation", "t = 0.5");
    diffsde_noise *noise;
    ok(diffsde_noise_new_philox(f->ctx, 1, &noise), f->ctx);
    expect(f->ctx, diffsde_gmm_sample(evh, noise, 0.5, 0, 1, sf), DIFFSDE_ECONVERGENCE,
           "diffsde_gmm_sample: component 0", NULL);
    diffsde_noise_free(noise);
    diffsde_gmm_eval_free(evh);
    diffsde_sde_free(huge);
    diffsde_gmm_eval_free(ev);
    diffsde_gmm_eval_free(p0);
    diffsde_gmm_free(g);
}

/*
 * 600 points of ring8 (hand-written solves) and random:12,3,5 (BLAS path) with per-sample
 * times cycling through 4 distinct values (more than the cache holds), in one call: every
 * output is bit-identical to a call per point at its own time (the grouping, the factor
 * cache's replacement and the blocking change nothing: each point's arithmetic is the same
 * whatever batch it is in — for the BLAS path this relies on OpenBLAS's dtrsm computing every
 * row of an m ≥ 2 solve identically, which the evaluator ensures by never calling it with
 * m = 1), and a second call gives bit-identical results.
 */
static void test_grouping_cache(void **state)
{
    fixture *f = *state;
    enum { NP = 600 };
    const char *models[2] = {"ring8", "random:12,3,5"};
    const double times[4] = {0.05, 0.3, 0.05 + 1e-12, 0.9};
    for (int mi = 0; mi < 2; mi++) {
        diffsde_gmm *g = builtin(f->ctx, models[mi]);
        size_t D = diffsde_gmm_dim(g), K = diffsde_gmm_ncomponents(g);
        double *x = malloc(NP * D * sizeof(double)), *s = malloc(NP * D * sizeof(double));
        double *s2 = malloc(NP * D * sizeof(double)), *rs = malloc(NP * K * sizeof(double));
        double *rs1 = malloc(K * sizeof(double)), *s1 = malloc(D * sizeof(double));
        double t[NP], lp[NP], dv[NP], lp2[NP], dv2[NP];
        assert_true(x && s && s2 && rs && rs1 && s1);
        for (size_t i = 0; i < NP * D; i++)
            x[i] = 3 * sin(0.37 * (double)i + 0.1 * mi);
        for (size_t i = 0; i < NP; i++)
            t[i] = times[(i * 7 + i / 5) % 4];
        diffsde_gmm_eval *ev;
        ok(diffsde_gmm_eval_new(g, f->sde[1], &ev), f->ctx);
        ok(diffsde_gmm_evaluate(ev, NP, t, x, lp, s, dv, rs), f->ctx);
        ok(diffsde_gmm_evaluate(ev, NP, t, x, lp2, s2, dv2, NULL), f->ctx);
        assert_memory_equal(lp, lp2, sizeof lp);
        assert_memory_equal(dv, dv2, sizeof dv);
        assert_memory_equal(s, s2, NP * D * sizeof(double));
        for (size_t i = 0; i < NP; i++) {
            double l1, d1;
            ok(diffsde_gmm_evaluate(ev, 1, t + i, x + i * D, &l1, s1, &d1, rs1), f->ctx);
            assert_true(l1 == lp[i] && d1 == dv[i]);
            assert_memory_equal(s1, s + i * D, D * sizeof(double));
            assert_memory_equal(rs1, rs + i * K, K * sizeof(double));
        }
        diffsde_gmm_eval_free(ev);
        diffsde_gmm_free(g);
        free(x), free(s), free(s2), free(rs), free(rs1), free(s1);
    }
}

/* A user-defined SDE written from the VP closed forms gives the built-in VP's answers: the
 * oracle works through α(t), σ(t) only, whatever defines them. */
static double uvp_B(double t) { return 0.1 * t + 0.5 * (20.0 - 0.1) * t * t; }
static double uvp_f(double t, void *u) { (void)u; return -0.5 * (0.1 + t * (20.0 - 0.1)); }
static double uvp_g2(double t, void *u) { (void)u; return 0.1 + t * (20.0 - 0.1); }
static double uvp_alpha(double t, void *u) { (void)u; return exp(-0.5 * uvp_B(t)); }
static double uvp_sigma(double t, void *u) { (void)u; return sqrt(-expm1(-uvp_B(t))); }

static void test_user_sde(void **state)
{
    fixture *f = *state;
    diffsde_sde_user def = {uvp_f, uvp_g2, uvp_alpha, uvp_sigma, NULL, 1.0, 0.0};
    diffsde_sde *user;
    ok(diffsde_sde_new_user(f->ctx, &def, &user), f->ctx);
    diffsde_gmm *g;
    ok(diffsde_gmm_new_builtin(f->ctx, "ring8", &g), f->ctx);
    diffsde_gmm_eval *eu, *ev;
    ok(diffsde_gmm_eval_new(g, user, &eu), f->ctx);
    ok(diffsde_gmm_eval_new(g, f->sde[1], &ev), f->ctx);
    enum { n = 9 };
    double t[n], x[2 * n], lu[n], lv[n], su[2 * n], sv[2 * n], du[n], dv[n];
    for (int i = 0; i < n; i++) {
        t[i] = (i % 3 == 0) ? 1e-3 : (i % 3 == 1 ? 0.3 : 1.0);
        x[2 * i] = -3.85 + 0.93 * i;
        x[2 * i + 1] = 2.41 - 0.57 * i;
    }
    ok(diffsde_gmm_evaluate(eu, n, t, x, lu, su, du, NULL), f->ctx);
    ok(diffsde_gmm_evaluate(ev, n, t, x, lv, sv, dv, NULL), f->ctx);
    for (int i = 0; i < n; i++) {
        assert_close(lu[i], lv[i], 1e-13, 1e-13);
        double smag = fabs(sv[2 * i]) + fabs(sv[2 * i + 1]) + 1;
        assert_close(su[2 * i], sv[2 * i], 0, 1e-13 * smag);
        assert_close(su[2 * i + 1], sv[2 * i + 1], 0, 1e-13 * smag);
        assert_close(du[i], dv[i], 1e-13, 1e-13 * smag * smag);
    }
    diffsde_gmm_eval_free(eu);
    diffsde_gmm_eval_free(ev);
    diffsde_gmm_free(g);
    diffsde_sde_free(user);
}

int main(void)
{
    /* GSL's default error handler aborts; the quadrature checks its status codes instead.
     * (Test code only: the library never touches the handler.) */
    gsl_set_error_handler_off();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixture_1d),        cmocka_unit_test(test_fixture_3d),
        cmocka_unit_test(test_gmm1d_long_double), cmocka_unit_test(test_gauss1_closed_form),
        cmocka_unit_test(test_fd_score_div),      cmocka_unit_test(test_normalisation),
        cmocka_unit_test(test_moments_by_hand),   cmocka_unit_test(test_sample_moments),
        cmocka_unit_test(test_responsibilities),  cmocka_unit_test(test_sample_reproducible),
        cmocka_unit_test(test_builtins),          cmocka_unit_test(test_builtin_malformed),
        cmocka_unit_test(test_builder_errors),    cmocka_unit_test(test_alloc_failures),
        cmocka_unit_test(test_stability_d1024),   cmocka_unit_test(test_stability_ve_large_sigma),
        cmocka_unit_test(test_near_singular),     cmocka_unit_test(test_score_adapter),
        cmocka_unit_test(test_evaluate_errors),   cmocka_unit_test(test_grouping_cache),
        cmocka_unit_test(test_user_sde),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
