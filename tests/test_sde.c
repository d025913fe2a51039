/*
 * Tests of the sde module (include/diffsde/sde.h): closed forms against independent formulas
 * and the reference fixtures, the variance identity, the log-SNR and its inverse, the
 * score_sde discretisations, the prior, argument validation and allocation failures.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "testutil.h"

#include <float.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------ */
/* helpers                                                                                     */

static diffsde_ctx *new_ctx(void)
{
    diffsde_ctx *ctx = NULL;
    assert_int_equal(diffsde_ctx_new(&ctx, NULL), DIFFSDE_OK);
    assert_non_null(ctx);
    return ctx;
}

static void assert_msg_has(const diffsde_ctx *ctx, const char *needle)
{
    const char *msg = diffsde_errmsg(ctx);
    if (!strstr(msg, needle)) {
        char buf[700];
        snprintf(buf, sizeof buf, "error message \"%s\" does not contain \"%s\"", msg, needle);
        tu_fail_msg(buf, __FILE__, __LINE__);
    }
}

/* A built-in SDE specification: kind and its two parameters. */
typedef struct spec {
    diffsde_sde_kind kind;
    double p0, p1;
} spec;

/* Defaults and "high-entropy" values; (2.385, 2.385) has Δ = 0, (0, 12.5) has βmin = 0. */
static const spec SPECS[] = {
    {DIFFSDE_SDE_VE, 0.01, 50.0},      {DIFFSDE_SDE_VE, 0.0137, 378.5},
    {DIFFSDE_SDE_VE, 0.3, 1.7},        {DIFFSDE_SDE_VP, 0.1, 20.0},
    {DIFFSDE_SDE_VP, 0.0713, 17.3},    {DIFFSDE_SDE_VP, 0.0, 12.5},
    {DIFFSDE_SDE_VP, 2.385, 2.385},    {DIFFSDE_SDE_SUBVP, 0.1, 20.0},
    {DIFFSDE_SDE_SUBVP, 0.0713, 17.3}, {DIFFSDE_SDE_SUBVP, 0.0, 12.5},
    {DIFFSDE_SDE_SUBVP, 2.385, 2.385},
};
#define NSPECS (sizeof SPECS / sizeof SPECS[0])

static diffsde_sde *make_sde(diffsde_ctx *ctx, const spec *s)
{
    diffsde_sde *sde = NULL;
    int st = s->kind == DIFFSDE_SDE_VE   ? diffsde_sde_new_ve(ctx, s->p0, s->p1, &sde)
             : s->kind == DIFFSDE_SDE_VP ? diffsde_sde_new_vp(ctx, s->p0, s->p1, &sde)
                                         : diffsde_sde_new_subvp(ctx, s->p0, s->p1, &sde);
    assert_int_equal(st, DIFFSDE_OK);
    assert_non_null(sde);
    return sde;
}

/* 1 − e^{−B} by its Taylor series for small B (independent of the library's expm1). */
static double ref_one_minus_exp_neg(double B)
{
    if (B >= 0.5)
        return 1.0 - exp(-B);
    double sum = 0.0, term = B;
    for (int k = 1; k < 60 && term != 0.0; k++) {
        sum += term;
        term *= -B / (k + 1);
    }
    return sum;
}

/* Closed forms written from DESIGN.md §1 with plain pow/exp. */
static diffsde_sde_coefs ref_coefs(const spec *s, double t)
{
    diffsde_sde_coefs c;
    c.t = t;
    if (s->kind == DIFFSDE_SDE_VE) {
        double L = log(s->p1) - log(s->p0);
        c.sigma = exp((1.0 - t) * log(s->p0) + t * log(s->p1));
        c.alpha = 1.0;
        c.f = 0.0;
        c.g2 = 2.0 * L * c.sigma * c.sigma;
    } else {
        double beta = s->p0 + t * (s->p1 - s->p0);
        double B = s->p0 * t + 0.5 * (s->p1 - s->p0) * t * t;
        c.alpha = exp(-B / 2.0);
        c.f = -beta / 2.0;
        if (s->kind == DIFFSDE_SDE_VP) {
            c.sigma = sqrt(ref_one_minus_exp_neg(B));
            c.g2 = beta;
        } else {
            c.sigma = ref_one_minus_exp_neg(B);
            c.g2 = beta * ref_one_minus_exp_neg(2.0 * B);
        }
    }
    c.g = sqrt(c.g2);
    return c;
}

static const double TIMES[] = {0.0,    1e-12, 1e-8, 1e-5, 1e-3,        0.1,
                               0.2385, 0.5,   0.77, 1.0 - 1e-9, 1.0};
#define NTIMES (sizeof TIMES / sizeof TIMES[0])

/* ---- user SDEs written from the closed forms ---- */

typedef struct user_params {
    diffsde_sde_kind kind; /* which closed form */
    double p0, p1;
    double g2_scale;    /* 1 for the true SDE */
    double alpha_scale; /* exponent scale of α; 1 for the true SDE */
    double nan_after;   /* callbacks return NaN for t > nan_after (2 = never) */
    int sigma_const;    /* σ ≡ 0.5, α ≡ 1, f = g² = 0: identity holds, λ is constant */
} user_params;

static double up_B(const user_params *p, double t)
{
    return t * (p->p0 + 0.5 * (p->p1 - p->p0) * t);
}

static double u_f(double t, void *u)
{
    const user_params *p = u;
    if (p->kind == DIFFSDE_SDE_VE || p->sigma_const)
        return 0.0;
    return -0.5 * (p->p0 + t * (p->p1 - p->p0));
}

static double u_g2(double t, void *u)
{
    const user_params *p = u;
    if (p->sigma_const)
        return 0.0;
    if (p->kind == DIFFSDE_SDE_VE) {
        double s = p->p0 * pow(p->p1 / p->p0, t);
        return p->g2_scale * 2.0 * log(p->p1 / p->p0) * s * s;
    }
    double beta = p->p0 + t * (p->p1 - p->p0);
    if (p->kind == DIFFSDE_SDE_VP)
        return p->g2_scale * beta;
    return p->g2_scale * -beta * expm1(-2.0 * up_B(p, t));
}

static double u_alpha(double t, void *u)
{
    const user_params *p = u;
    if (p->kind == DIFFSDE_SDE_VE || p->sigma_const)
        return 1.0;
    return exp(-0.5 * p->alpha_scale * up_B(p, t));
}

static double u_sigma(double t, void *u)
{
    const user_params *p = u;
    if (t > p->nan_after)
        return NAN;
    if (p->sigma_const)
        return 0.5;
    if (p->kind == DIFFSDE_SDE_VE)
        return p->p0 * pow(p->p1 / p->p0, t);
    if (p->kind == DIFFSDE_SDE_VP)
        return sqrt(-expm1(-up_B(p, t)));
    return -expm1(-up_B(p, t));
}

static user_params user_true(diffsde_sde_kind kind, double p0, double p1)
{
    user_params p = {kind, p0, p1, 1.0, 1.0, 2.0, 0};
    return p;
}

static diffsde_sde_user user_def(user_params *p)
{
    diffsde_sde_user def = {u_f, u_g2, u_alpha, u_sigma, p, 1.0, 0.0};
    return def;
}

/* ------------------------------------------------------------------------------------------ */
/* 1. coefficients                                                                             */

static void check_coefs_against_ref(const diffsde_sde *sde, const spec *s, double t,
                                    double rtol)
{
    diffsde_sde_coefs c, r = ref_coefs(s, t);
    assert_int_equal(diffsde_sde_coefs_at(sde, t, &c), DIFFSDE_OK);
    assert_true(c.t == t);
    assert_close(c.alpha, r.alpha, rtol, 0.0);
    assert_close(c.sigma, r.sigma, rtol, 1e-300);
    assert_close(c.f, r.f, rtol, 1e-300);
    assert_close(c.g2, r.g2, rtol, 1e-300);
    assert_close(c.g, r.g, rtol, 1e-300);
    assert_close(c.g, sqrt(c.g2), 4 * DBL_EPSILON, 1e-300);

    double a, sg, f, g;
    assert_int_equal(diffsde_sde_alpha(sde, t, &a), DIFFSDE_OK);
    assert_int_equal(diffsde_sde_sigma(sde, t, &sg), DIFFSDE_OK);
    assert_int_equal(diffsde_sde_drift_coef(sde, t, &f), DIFFSDE_OK);
    assert_int_equal(diffsde_sde_diffusion(sde, t, &g), DIFFSDE_OK);
    assert_true(a == c.alpha && sg == c.sigma && f == c.f && g == c.g);
}

static void test_coefs_closed_forms(void **state)
{
    (void)state;
    diffsde_ctx *ctx = new_ctx();
    for (size_t i = 0; i < NSPECS; i++) {
        diffsde_sde *sde = make_sde(ctx, &SPECS[i]);
        for (size_t k = 0; k < NTIMES; k++)
            check_coefs_against_ref(sde, &SPECS[i], TIMES[k], 1e-13);
        diffsde_sde_free(sde);
    }
    /* exact values at the ends */
    diffsde_sde *ve, *vp, *svp;
    assert_int_equal(diffsde_sde_new_ve(ctx, 0.0137, 378.5, &ve), DIFFSDE_OK);
    assert_int_equal(diffsde_sde_new_vp(ctx, 0.0713, 17.3, &vp), DIFFSDE_OK);
    assert_int_equal(diffsde_sde_new_subvp(ctx, 0.0713, 17.3, &svp), DIFFSDE_OK);
    diffsde_sde_coefs c;
    assert_int_equal(diffsde_sde_coefs_at(ve, 0.0, &c), DIFFSDE_OK);
    assert_true(c.sigma == 0.0137 && c.alpha == 1.0 && c.f == 0.0);
    assert_int_equal(diffsde_sde_coefs_at(ve, 1.0, &c), DIFFSDE_OK);
    assert_close(c.sigma, 378.5, 2 * DBL_EPSILON, 0.0);
    assert_int_equal(diffsde_sde_coefs_at(vp, 0.0, &c), DIFFSDE_OK);
    assert_true(c.sigma == 0.0 && c.alpha == 1.0 && c.g2 == 0.0713 && c.f == -0.5 * 0.0713);
    assert_int_equal(diffsde_sde_coefs_at(svp, 0.0, &c), DIFFSDE_OK);
    assert_true(c.sigma == 0.0 && c.alpha == 1.0 && c.g2 == 0.0);
    /* σ of VP with βmin = 0 at a t where B underflows: σ ≈ √(Δ/2) t, not 0 */
    diffsde_sde *vp0;
    assert_int_equal(diffsde_sde_new_vp(ctx, 0.0, 12.5, &vp0), DIFFSDE_OK);
    double s;
    assert_int_equal(diffsde_sde_sigma(vp0, 1e-170, &s), DIFFSDE_OK);
    assert_close(s, sqrt(6.25) * 1e-170, 1e-14, 0.0);
    diffsde_sde_free(vp0);
    diffsde_sde_free(ve);
    diffsde_sde_free(vp);
    diffsde_sde_free(svp);
    diffsde_ctx_free(ctx);
}

/*
 * Source: /work/shared/fixtures/pointwise_gmm1d.json, "sdes" → {ve, vp, subvp} → "times":
 * (t, alpha, std, fcoef, g2), default parameters, printed with %.17g.
 */
typedef struct fixture_row {
    double t, alpha, std, f, g2;
} fixture_row;

static const fixture_row FIX_VE[] = {
    {1.0000000000000001e-05, 1, 0.010000851755591462, 0, 0.0017037288333184577},
    {0.001, 1, 0.01008553567677516, 0, 0.0017327042232042551},
    {0.10000000000000001, 1, 0.023436729115920995, 0, 0.0093566523798053886},
    {0.5, 1, 0.70710678118654757, 0, 8.51719319141624},
    {1, 1, 50, 0, 42585.965957081193},
};
static const fixture_row FIX_VP[] = {
    {1.0000000000000001e-05, 0.99999949950262523, 0.0010004971259352385,
     -0.050099500000000005, 0.10019900000000001},
    {0.001, 0.99994502651109762, 0.010485416335094895, -0.059950000000000003,
     0.11990000000000001},
    {0.10000000000000001, 0.94672179882059804, 0.32205253552470448, -1.0449999999999999,
     2.0899999999999999},
    {0.5, 0.28118288079675241, 0.95965420206803631, -5.0249999999999995, 10.049999999999999},
    {1, 0.0065715864949296189, 0.99997840689233863, -10, 20},
};
static const fixture_row FIX_SUBVP[] = {
    {1.0000000000000001e-05, 0.99999949950262523, 1.0009944990046723e-06,
     -0.050099500000000005, 2.0059719521314361e-07},
    {0.001, 0.99994502651109762, 0.00010994395572027488, -0.059950000000000003,
     2.636311126968133e-05},
    {0.10000000000000001, 0.94672179882059804, 0.10371783563789104, -1.0449999999999999,
     0.41105760905892058},
    {0.5, 0.28118288079675241, 0.92093618754683937, -5.0249999999999995, 9.9871765812817319},
    {1, 0.0065715864949296189, 0.99995681425093963, -10, 19.999999962699821},
};

static void test_coefs_fixture(void **state)
{
    (void)state;
    diffsde_ctx *ctx = new_ctx();
    const fixture_row *tables[3] = {FIX_VE, FIX_VP, FIX_SUBVP};
    const char *names[3] = {"ve", "vp", "subvp"};
    double worst = 0.0;
    for (int k = 0; k < 3; k++) {
        diffsde_sde *sde = NULL;
        assert_int_equal(diffsde_sde_new_named(ctx, names[k], 0, NULL, NULL, &sde), DIFFSDE_OK);
        for (int i = 0; i < 5; i++) {
            const fixture_row *r = &tables[k][i];
            diffsde_sde_coefs c;
            assert_int_equal(diffsde_sde_coefs_at(sde, r->t, &c), DIFFSDE_OK);
            assert_close(c.alpha, r->alpha, 1e-12, 0.0);
            assert_close(c.sigma, r->std, 1e-12, 0.0);
            assert_close(c.f, r->f, 1e-12, 0.0);
            assert_close(c.g2, r->g2, 1e-12, 0.0);
            assert_close(c.g, sqrt(r->g2), 1e-12, 0.0);
            const double got[4] = {c.alpha, c.sigma, c.f, c.g2};
            const double want[4] = {r->alpha, r->std, r->f, r->g2};
            for (int j = 0; j < 4; j++)
                if (want[j] != 0.0)
                    worst = fmax(worst, fabs(got[j] - want[j]) / fabs(want[j]));
        }
        diffsde_sde_free(sde);
    }
    print_message("# fixture pointwise_gmm1d: worst relative error of alpha, sigma, f, g2 = "
                  "%.3g\n",
                  worst);
    diffsde_ctx_free(ctx);
}

/* ------------------------------------------------------------------------------------------ */
/* 2. variance identity                                                                        */

/* Five-point central difference of σ² in the test, independent of the library's rule. */
static double test_fd_variance(const diffsde_sde *sde, double t, double h)
{
    double s[4];
    const double at[4] = {t + 2 * h, t + h, t - h, t - 2 * h};
    for (int i = 0; i < 4; i++)
        assert_int_equal(diffsde_sde_sigma(sde, at[i], &s[i]), DIFFSDE_OK);
    return (-s[0] * s[0] + 8 * s[1] * s[1] - 8 * s[2] * s[2] + s[3] * s[3]) / (12 * h);
}

static double identity_for(const diffsde_sde *sde, const char *label)
{
    double err = -1, wt = -1;
    assert_int_equal(diffsde_sde_check_variance_identity(sde, 64, 1e-10, &err, &wt),
                     DIFFSDE_OK);
    assert_true(err >= 0.0 && err <= 1e-10);
    assert_true(wt > 0.0 && wt < 1.0);
    double err2;
    assert_int_equal(diffsde_sde_check_variance_identity(sde, 1000, 1e-10, &err2, NULL),
                     DIFFSDE_OK);
    assert_int_equal(diffsde_sde_check_variance_identity(sde, 1, 1e-9, NULL, NULL), DIFFSDE_OK);

    /* independent FD at a few times, h = 2^-14 */
    const double ts[4] = {0.0713, 0.2385, 0.5, 0.9137};
    double worst_fd = 0.0;
    for (int i = 0; i < 4; i++) {
        diffsde_sde_coefs c;
        assert_int_equal(diffsde_sde_coefs_at(sde, ts[i], &c), DIFFSDE_OK);
        double rhs = 2 * c.f * c.sigma * c.sigma + c.g2;
        double d = test_fd_variance(sde, ts[i], 1.0 / 16384);
        assert_close(d, rhs, 1e-8, 0.0);
        worst_fd = fmax(worst_fd, fabs(d - rhs) / fabs(rhs));
    }
    print_message("# identity %-28s library FD worst rel err %.3g (m=64, at t=%.4g), %.3g "
                  "(m=1000); test FD %.3g\n",
                  label, err, wt, err2, worst_fd);
    return err;
}

static void test_variance_identity(void **state)
{
    (void)state;
    diffsde_ctx *ctx = new_ctx();
    for (size_t i = 0; i < NSPECS; i++) {
        diffsde_sde *sde = make_sde(ctx, &SPECS[i]);
        char label[64];
        snprintf(label, sizeof label, "%s(%g, %g)", diffsde_sde_name(sde), SPECS[i].p0,
                 SPECS[i].p1);
        identity_for(sde, label);
        diffsde_sde_free(sde);
    }
    /* user SDEs built from the closed forms must pass creation and the check */
    const diffsde_sde_kind kinds[3] = {DIFFSDE_SDE_VE, DIFFSDE_SDE_VP, DIFFSDE_SDE_SUBVP};
    const double p0[3] = {0.0137, 0.0713, 0.0713}, p1[3] = {378.5, 17.3, 17.3};
    for (int k = 0; k < 3; k++) {
        user_params p = user_true(kinds[k], p0[k], p1[k]);
        diffsde_sde_user def = user_def(&p);
        diffsde_sde *sde = NULL;
        assert_int_equal(diffsde_sde_new_user(ctx, &def, &sde), DIFFSDE_OK);
        assert_int_equal(diffsde_sde_get_kind(sde), DIFFSDE_SDE_USER);
        char label[64];
        snprintf(label, sizeof label, "user-%s(%g, %g)", k == 0 ? "ve" : k == 1 ? "vp" : "subvp",
                 p0[k], p1[k]);
        identity_for(sde, label);
        /* the user SDE reproduces the built-in one */
        spec s = {kinds[k], p0[k], p1[k]};
        diffsde_sde *b = make_sde(ctx, &s);
        for (size_t j = 0; j < NTIMES; j++) {
            diffsde_sde_coefs cu, cb;
            assert_int_equal(diffsde_sde_coefs_at(sde, TIMES[j], &cu), DIFFSDE_OK);
            assert_int_equal(diffsde_sde_coefs_at(b, TIMES[j], &cb), DIFFSDE_OK);
            assert_close(cu.sigma, cb.sigma, 1e-13, 1e-300);
            assert_close(cu.g2, cb.g2, 1e-13, 1e-300);
        }
        diffsde_sde_free(b);
        diffsde_sde_free(sde);
    }

    /* g² scaled by 1.01: inconsistent, the message names t */
    user_params bad = user_true(DIFFSDE_SDE_VP, 0.0713, 17.3);
    bad.g2_scale = 1.01;
    diffsde_sde_user def = user_def(&bad);
    diffsde_sde *sde = (diffsde_sde *)&bad; /* must be reset to NULL */
    assert_int_equal(diffsde_sde_new_user(ctx, &def, &sde), DIFFSDE_EINCONSISTENT);
    assert_null(sde);
    assert_msg_has(ctx, "diffsde_sde_new_user");
    assert_msg_has(ctx, "t=");
    assert_msg_has(ctx, "variance identity");
    assert_int_equal(diffsde_last_status(ctx), DIFFSDE_EINCONSISTENT);

    /* α inconsistent with f (exponent off by 1%): the mean identity fails */
    bad = user_true(DIFFSDE_SDE_SUBVP, 0.0713, 17.3);
    bad.alpha_scale = 1.01;
    def = user_def(&bad);
    assert_int_equal(diffsde_sde_new_user(ctx, &def, &sde), DIFFSDE_EINCONSISTENT);
    assert_null(sde);
    assert_msg_has(ctx, "mean identity");
    assert_msg_has(ctx, "t=");

    /* argument errors of the check */
    diffsde_sde *vp = NULL;
    assert_int_equal(diffsde_sde_new_vp(ctx, 0.1, 20, &vp), DIFFSDE_OK);
    assert_int_equal(diffsde_sde_check_variance_identity(vp, 0, 1e-6, NULL, NULL),
                     DIFFSDE_EPARAM);
    assert_msg_has(ctx, "m");
    assert_int_equal(diffsde_sde_check_variance_identity(vp, 8, 0.0, NULL, NULL),
                     DIFFSDE_EPARAM);
    assert_msg_has(ctx, "rtol");
    assert_int_equal(diffsde_sde_check_variance_identity(vp, 8, NAN, NULL, NULL),
                     DIFFSDE_EPARAM);
    assert_int_equal(diffsde_sde_check_variance_identity(NULL, 8, 1e-6, NULL, NULL),
                     DIFFSDE_ENULL);
    /* an absurdly tight rtol makes a correct SDE "fail" with the message format */
    assert_int_equal(diffsde_sde_check_variance_identity(vp, 8, 1e-300, NULL, NULL),
                     DIFFSDE_EINCONSISTENT);
    assert_msg_has(ctx, "t=");
    diffsde_sde_free(vp);
    diffsde_ctx_free(ctx);
}

static void test_user_validation(void **state)
{
    (void)state;
    diffsde_ctx *ctx = new_ctx();
    diffsde_sde *sde = NULL;

    user_params p = user_true(DIFFSDE_SDE_VP, 0.1, 20);
    p.nan_after = 0.5;
    diffsde_sde_user def = user_def(&p);
    assert_int_equal(diffsde_sde_new_user(ctx, &def, &sde), DIFFSDE_ENONFINITE);
    assert_null(sde);
    assert_msg_has(ctx, "sigma");

    p = user_true(DIFFSDE_SDE_VP, 0.1, 20);
    p.sigma_const = 1;
    def = user_def(&p);
    assert_int_equal(diffsde_sde_new_user(ctx, &def, &sde), DIFFSDE_EPARAM);
    assert_null(sde);
    assert_msg_has(ctx, "decreasing");

    p = user_true(DIFFSDE_SDE_VP, 0.1, 20);
    p.g2_scale = -1.0;
    def = user_def(&p);
    assert_int_equal(diffsde_sde_new_user(ctx, &def, &sde), DIFFSDE_EPARAM);
    assert_msg_has(ctx, "g2");

    p = user_true(DIFFSDE_SDE_VP, 0.1, 20);
    def = user_def(&p);
    def.T = 0.0;
    assert_int_equal(diffsde_sde_new_user(ctx, &def, &sde), DIFFSDE_EPARAM);
    assert_msg_has(ctx, "T (0)");
    def.T = NAN;
    assert_int_equal(diffsde_sde_new_user(ctx, &def, &sde), DIFFSDE_EPARAM);
    assert_msg_has(ctx, "T");
    def = user_def(&p);
    def.prior_std = -2.385;
    assert_int_equal(diffsde_sde_new_user(ctx, &def, &sde), DIFFSDE_EPARAM);
    assert_msg_has(ctx, "prior_std");
    def = user_def(&p);
    def.g2 = NULL;
    assert_int_equal(diffsde_sde_new_user(ctx, &def, &sde), DIFFSDE_ENULL);
    assert_msg_has(ctx, "g2");
    assert_null(sde);
    assert_int_equal(diffsde_sde_new_user(ctx, NULL, &sde), DIFFSDE_ENULL);
    def = user_def(&p);
    assert_int_equal(diffsde_sde_new_user(ctx, &def, NULL), DIFFSDE_ENULL);
    assert_int_equal(diffsde_sde_new_user(NULL, &def, &sde), DIFFSDE_ENULL);

    /* a valid user SDE whose callback turns NaN later is reported at evaluation */
    p = user_true(DIFFSDE_SDE_VP, 0.1, 20);
    def = user_def(&p);
    def.T = 0.75; /* a user SDE on [0, 0.75] */
    assert_int_equal(diffsde_sde_new_user(ctx, &def, &sde), DIFFSDE_OK);
    double T, eps, v;
    assert_int_equal(diffsde_sde_time_range(sde, NULL, &T), DIFFSDE_OK);
    assert_true(T == 0.75);
    assert_int_equal(diffsde_sde_default_eps(sde, &eps), DIFFSDE_OK);
    assert_close(eps, 0.75e-3, 1e-15, 0.0);
    assert_int_equal(diffsde_sde_get_param(sde, "T", &v), DIFFSDE_OK);
    assert_true(v == 0.75);
    assert_int_equal(diffsde_sde_alpha(sde, 0.8, &v), DIFFSDE_EDOM);
    p.nan_after = 0.5;
    assert_int_equal(diffsde_sde_sigma(sde, 0.6, &v), DIFFSDE_ENONFINITE);
    assert_msg_has(ctx, "t=0.59999");
    diffsde_sde_coefs c;
    assert_int_equal(diffsde_sde_coefs_at(sde, 0.6, &c), DIFFSDE_ENONFINITE);
    p.nan_after = 2.0;
    p.g2_scale = -1.0;
    assert_int_equal(diffsde_sde_coefs_at(sde, 0.6, &c), DIFFSDE_ECALLBACK);
    assert_msg_has(ctx, "g2");
    diffsde_sde_free(sde);
    diffsde_ctx_free(ctx);
}

/* ------------------------------------------------------------------------------------------ */
/* 3. log-SNR                                                                                  */

static double roundtrip_worst(const diffsde_sde *sde, int is_ve, double L, double lambda0)
{
    double worst = 0.0;
    for (int k = 0; k <= 240; k++) {
        double t = k <= 200 ? pow(10.0, -6.0 + 6.0 * k / 200.0)
                            : 0.0137 + (1.0 - 0.0137) * (k - 200) / 40.0;
        if (t > 1.0)
            t = 1.0;
        double lam, back;
        assert_int_equal(diffsde_sde_log_snr(sde, t, &lam), DIFFSDE_OK);
        assert_int_equal(diffsde_sde_t_from_log_snr(sde, lam, &back), DIFFSDE_OK);
        if (is_ve) {
            /* VE: λ is linear in t, so the double λ carries t only to an absolute
             * ε |λ| / (2L): below t ~ 1e-4 that is above 1e-12 relative (conditioning of λ). */
            double atol = 4 * DBL_EPSILON * (fabs(lam) + fabs(lambda0)) / (2 * L);
            assert_close(back, t, 1e-12, atol);
        } else {
            assert_close(back, t, 1e-12, 0.0);
        }
        worst = fmax(worst, fabs(back - t) / t);
    }
    return worst;
}

static void test_log_snr(void **state)
{
    (void)state;
    diffsde_ctx *ctx = new_ctx();
    for (size_t i = 0; i < NSPECS; i++) {
        const spec *s = &SPECS[i];
        diffsde_sde *sde = make_sde(ctx, s);
        int is_ve = s->kind == DIFFSDE_SDE_VE;
        /* against log(α²/σ²) from the independent closed forms */
        for (size_t k = 0; k < NTIMES; k++) {
            double lam;
            assert_int_equal(diffsde_sde_log_snr(sde, TIMES[k], &lam), DIFFSDE_OK);
            diffsde_sde_coefs r = ref_coefs(s, TIMES[k]);
            if (TIMES[k] == 0.0 && !is_ve) {
                assert_true(isinf(lam) && lam > 0);
                continue;
            }
            assert_close(lam, 2.0 * log(r.alpha / r.sigma), 1e-12, 1e-13);
        }
        /* strictly decreasing */
        double prev = INFINITY;
        for (int k = 0; k <= 4000; k++) {
            double t = k / 4000.0, lam;
            assert_int_equal(diffsde_sde_log_snr(sde, t, &lam), DIFFSDE_OK);
            if (!(lam < prev) && !(k == 0 && is_ve == 0))
                fail_msg("lambda not decreasing at t=%.17g (%.17g >= %.17g)", t, lam, prev);
            prev = lam;
        }
        /* round trip */
        double lam0, lamT, L = is_ve ? log(s->p1 / s->p0) : 0.0;
        assert_int_equal(diffsde_sde_log_snr(sde, 0.0, &lam0), DIFFSDE_OK);
        assert_int_equal(diffsde_sde_log_snr(sde, 1.0, &lamT), DIFFSDE_OK);
        double w = roundtrip_worst(sde, is_ve, L, lam0);
        print_message("# log-SNR round trip %-5s(%g, %g): worst |t' - t|/t over [1e-6, 1] = "
                      "%.3g\n",
                      diffsde_sde_name(sde), s->p0, s->p1, w);
        /* ends and domain */
        double t;
        assert_int_equal(diffsde_sde_t_from_log_snr(sde, lamT, &t), DIFFSDE_OK);
        assert_close(t, 1.0, 1e-14, 0.0);
        assert_int_equal(diffsde_sde_t_from_log_snr(sde, lam0, &t), DIFFSDE_OK);
        assert_close(t, 0.0, 0.0, 1e-15);
        t = -7.0;
        assert_int_equal(diffsde_sde_t_from_log_snr(sde, lamT - 1e-3, &t), DIFFSDE_EDOM);
        assert_true(t == -7.0);
        assert_msg_has(ctx, "lambda");
        assert_int_equal(diffsde_sde_t_from_log_snr(sde, NAN, &t), DIFFSDE_EDOM);
        assert_int_equal(diffsde_sde_t_from_log_snr(sde, -INFINITY, &t), DIFFSDE_EDOM);
        if (is_ve)
            assert_int_equal(diffsde_sde_t_from_log_snr(sde, lam0 + 1e-3, &t), DIFFSDE_EDOM);
        diffsde_sde_free(sde);
    }

    /* large |λ|: tiny t (B underflows for βmin = 0) and huge β */
    const struct {
        spec s;
        double t;
    } extreme[] = {
        {{DIFFSDE_SDE_VP, 0.1, 20}, 1e-200},      {{DIFFSDE_SDE_VP, 0.0, 12.5}, 1e-300},
        {{DIFFSDE_SDE_VP, 0.0, 12.5}, 1e-170},    {{DIFFSDE_SDE_SUBVP, 0.1, 20}, 1e-200},
        {{DIFFSDE_SDE_SUBVP, 0.0, 12.5}, 1e-150}, {{DIFFSDE_SDE_VP, 0.1, 2000}, 1.0},
        {{DIFFSDE_SDE_VP, 0.1, 2000}, 0.9},       {{DIFFSDE_SDE_SUBVP, 0.1, 2000}, 1.0},
        {{DIFFSDE_SDE_SUBVP, 0.1, 2000}, 0.9},    {{DIFFSDE_SDE_SUBVP, 0.1, 2000}, 0.0137},
    };
    for (size_t i = 0; i < sizeof extreme / sizeof extreme[0]; i++) {
        diffsde_sde *sde = make_sde(ctx, &extreme[i].s);
        double lam, back, t = extreme[i].t;
        assert_int_equal(diffsde_sde_log_snr(sde, t, &lam), DIFFSDE_OK);
        assert_true(isfinite(lam));
        /* λ from log B directly: VP −log(expm1 B) ≈ −log B for tiny B, −B for huge B */
        double B = t * (extreme[i].s.p0 + 0.5 * (extreme[i].s.p1 - extreme[i].s.p0) * t);
        double logB = log(t) + log(extreme[i].s.p0 + 0.5 * (extreme[i].s.p1 - extreme[i].s.p0) * t);
        double expect = extreme[i].s.kind == DIFFSDE_SDE_VP
                            ? (B < 1e-100 ? -logB : -B - log1p(-exp(-B)))
                            : (B < 1e-100 ? -2 * logB : -B - 2 * log1p(-exp(-B)));
        assert_close(lam, expect, 1e-14, 0.0);
        assert_int_equal(diffsde_sde_t_from_log_snr(sde, lam, &back), DIFFSDE_OK);
        assert_close(back, t, 1e-12, 0.0);
        diffsde_sde_free(sde);
    }
    /* λ = +∞ is λ(0) for VP */
    diffsde_sde *vp = make_sde(ctx, &SPECS[3]);
    double t = -1;
    assert_int_equal(diffsde_sde_t_from_log_snr(vp, INFINITY, &t), DIFFSDE_OK);
    assert_true(t == 0.0);
    assert_int_equal(diffsde_sde_t_from_log_snr(vp, 800.0, &t), DIFFSDE_OK);
    assert_true(t >= 0.0 && t < 1e-300);
    diffsde_sde_free(vp);

    /* user SDEs: the bracketing inverse */
    const diffsde_sde_kind kinds[3] = {DIFFSDE_SDE_VE, DIFFSDE_SDE_VP, DIFFSDE_SDE_SUBVP};
    for (int k = 0; k < 3; k++) {
        user_params p = kinds[k] == DIFFSDE_SDE_VE ? user_true(kinds[k], 0.0137, 378.5)
                                                   : user_true(kinds[k], 0.0713, 17.3);
        diffsde_sde_user def = user_def(&p);
        diffsde_sde *sde = NULL;
        assert_int_equal(diffsde_sde_new_user(ctx, &def, &sde), DIFFSDE_OK);
        spec s = {kinds[k], p.p0, p.p1};
        diffsde_sde *b = make_sde(ctx, &s);
        double lam0;
        assert_int_equal(diffsde_sde_log_snr(sde, 0.0, &lam0), DIFFSDE_OK);
        double w = roundtrip_worst(sde, kinds[k] == DIFFSDE_SDE_VE, log(p.p1 / p.p0), lam0);
        /* same λ as the built-in kind */
        for (size_t j = 1; j < NTIMES; j++) {
            double lu, lb;
            assert_int_equal(diffsde_sde_log_snr(sde, TIMES[j], &lu), DIFFSDE_OK);
            assert_int_equal(diffsde_sde_log_snr(b, TIMES[j], &lb), DIFFSDE_OK);
            assert_close(lu, lb, 1e-13, 1e-13);
        }
        /* user inverse agrees with the closed-form inverse of the built-in kind */
        double lam, tu, tb;
        assert_int_equal(diffsde_sde_log_snr(b, 0.2385, &lam), DIFFSDE_OK);
        assert_int_equal(diffsde_sde_t_from_log_snr(sde, lam, &tu), DIFFSDE_OK);
        assert_int_equal(diffsde_sde_t_from_log_snr(b, lam, &tb), DIFFSDE_OK);
        assert_close(tu, tb, 1e-13, 0.0);
        double lamT;
        assert_int_equal(diffsde_sde_log_snr(sde, 1.0, &lamT), DIFFSDE_OK);
        assert_int_equal(diffsde_sde_t_from_log_snr(sde, lamT - 0.01, &tu), DIFFSDE_EDOM);
        if (kinds[k] != DIFFSDE_SDE_VE) {
            assert_int_equal(diffsde_sde_t_from_log_snr(sde, INFINITY, &tu), DIFFSDE_OK);
            assert_true(tu == 0.0);
            /* a root at tiny t is found with full relative accuracy */
            assert_int_equal(diffsde_sde_log_snr(sde, 1e-30, &lam), DIFFSDE_OK);
            assert_int_equal(diffsde_sde_t_from_log_snr(sde, lam, &tu), DIFFSDE_OK);
            assert_close(tu, 1e-30, 1e-12, 0.0);
        }
        print_message("# log-SNR round trip user-%s: worst |t' - t|/t over [1e-6, 1] = %.3g\n",
                      diffsde_sde_name(b), w);
        diffsde_sde_free(b);
        diffsde_sde_free(sde);
    }
    diffsde_ctx_free(ctx);
}

/* ------------------------------------------------------------------------------------------ */
/* 4. discretisation                                                                           */

/* NumPy linspace written out in the test. */
static double np_linspace(double start, double stop, size_t N, size_t i)
{
    if (i == N - 1)
        return stop;
    return (double)i * ((stop - start) / (double)(N - 1)) + start;
}

static void test_discrete_tables(void **state)
{
    (void)state;
    diffsde_ctx *ctx = new_ctx();
    static double table[4096];
    const size_t Ns[] = {1000, 57, 18, 2};
    double worst_beta = 0.0, worst_sigma = 0.0;

    for (size_t i = 0; i < NSPECS; i++) {
        const spec *s = &SPECS[i];
        diffsde_sde *sde = make_sde(ctx, s);
        for (size_t n = 0; n < sizeof Ns / sizeof Ns[0]; n++) {
            size_t N = Ns[n];
            if (s->kind != DIFFSDE_SDE_VE && (double)N <= s->p1) {
                assert_int_equal(diffsde_sde_discrete_table(sde, N, table), DIFFSDE_EPARAM);
                assert_msg_has(ctx, "beta_max");
                continue;
            }
            assert_int_equal(diffsde_sde_discrete_table(sde, N, table), DIFFSDE_OK);
            for (size_t j = 0; j < N; j++) {
                if (s->kind == DIFFSDE_SDE_VE) {
                    double lin = np_linspace(log(s->p0), log(s->p1), N, j);
                    assert_true(table[j] == exp(lin));
                    double ind = s->p0 * pow(s->p1 / s->p0, (double)j / (double)(N - 1));
                    assert_close(table[j], ind, 1e-13, 0.0);
                    worst_sigma = fmax(worst_sigma, fabs(table[j] - ind) / ind);
                } else {
                    double lin = np_linspace(s->p0 / N, s->p1 / N, N, j);
                    assert_true(table[j] == lin);
                    double ind = s->p0 / N + j * (s->p1 - s->p0) / ((double)N * (N - 1));
                    assert_close(table[j], ind, 2e-15, 1e-300);
                    if (ind != 0.0)
                        worst_beta = fmax(worst_beta, fabs(table[j] - ind) / ind);
                }
            }
            if (s->kind != DIFFSDE_SDE_VE) {
                assert_true(table[0] == s->p0 / N);
                assert_true(table[N - 1] == s->p1 / N);
            }
        }
        diffsde_sde_free(sde);
    }
    print_message("# tables: worst rel diff DDPM beta vs independent formula %.3g, NCSN sigma "
                  "%.3g\n",
                  worst_beta, worst_sigma);

    /* the DDPM validity limit: N ≤ βmax refused, N > βmax accepted */
    diffsde_sde *vp = NULL, *svp = NULL;
    assert_int_equal(diffsde_sde_new_vp(ctx, 0.1, 20.0, &vp), DIFFSDE_OK);
    assert_int_equal(diffsde_sde_discrete_table(vp, 20, table), DIFFSDE_EPARAM);
    assert_msg_has(ctx, "N = 20");
    assert_int_equal(diffsde_sde_discrete_table(vp, 21, table), DIFFSDE_OK);
    assert_true(table[20] == 20.0 / 21);
    assert_int_equal(diffsde_sde_new_subvp(ctx, 0.0713, 17.3, &svp), DIFFSDE_OK);
    assert_int_equal(diffsde_sde_discrete_table(svp, 17, table), DIFFSDE_EPARAM);
    assert_int_equal(diffsde_sde_discrete_table(svp, 18, table), DIFFSDE_OK);
    assert_int_equal(diffsde_sde_discrete_table(vp, 1, table), DIFFSDE_ESIZE);
    assert_int_equal(diffsde_sde_discrete_table(vp, 0, table), DIFFSDE_ESIZE);
    assert_int_equal(diffsde_sde_discrete_table(vp, 100, NULL), DIFFSDE_ENULL);
    assert_int_equal(diffsde_sde_discrete_table(NULL, 100, table), DIFFSDE_ENULL);
    diffsde_sde_free(vp);
    diffsde_sde_free(svp);

    /* user SDE: no table */
    user_params p = user_true(DIFFSDE_SDE_VP, 0.1, 20);
    diffsde_sde_user def = user_def(&p);
    diffsde_sde *u = NULL;
    assert_int_equal(diffsde_sde_new_user(ctx, &def, &u), DIFFSDE_OK);
    assert_int_equal(diffsde_sde_discrete_table(u, 100, table), DIFFSDE_EUNSUPPORTED);
    diffsde_sde_free(u);
    diffsde_ctx_free(ctx);
}

static void test_discretize(void **state)
{
    (void)state;
    diffsde_ctx *ctx = new_ctx();
    static double table[2000];
    diffsde_sde_discrete d;

    /* the index rule j = floor(t (N − 1)) in double: 0.29·100 = 28.999999999999996 → 28 */
    const struct {
        double t;
        size_t N, j;
    } idx[] = {{0.0, 1000, 0},   {1.0, 1000, 999}, {0.29, 101, 28},        {0.57, 101, 56},
               {0.3, 11, 3},     {0.5, 1000, 499}, {1.0 - 1e-9, 1000, 998}, {0.35, 21, 7},
               {1e-5, 1000, 0},  {1e-3, 1000, 0},  {0.0137, 2, 0},          {1.0, 2, 1}};

    const spec ve_s = {DIFFSDE_SDE_VE, 0.0137, 378.5};
    const spec vp_s = {DIFFSDE_SDE_VP, 0.0713, 17.3};
    const spec svp_s = {DIFFSDE_SDE_SUBVP, 0.0713, 17.3};
    diffsde_sde *ve = make_sde(ctx, &ve_s), *vp = make_sde(ctx, &vp_s);
    diffsde_sde *svp = make_sde(ctx, &svp_s);
    user_params p = user_true(DIFFSDE_SDE_SUBVP, 0.0713, 17.3);
    diffsde_sde_user def = user_def(&p);
    diffsde_sde *usr = NULL;
    assert_int_equal(diffsde_sde_new_user(ctx, &def, &usr), DIFFSDE_OK);

    for (size_t k = 0; k < sizeof idx / sizeof idx[0]; k++) {
        size_t N = idx[k].N, j = idx[k].j;
        double t = idx[k].t;
        assert_int_equal((size_t)floor(t * (double)(N - 1)), j); /* the rule itself */

        /* VE: G = √(σ_j² − σ_{j−1}²), σ_{−1} = 0 */
        assert_int_equal(diffsde_sde_discrete_table(ve, N, table), DIFFSDE_OK);
        assert_int_equal(diffsde_sde_discretize(ve, N, t, &d), DIFFSDE_OK);
        assert_int_equal(d.index, j);
        assert_true(d.f_coef == 0.0);
        double prev = j > 0 ? table[j - 1] : 0.0;
        assert_close(d.G, sqrt(table[j] * table[j] - prev * prev), 1e-15, 0.0);
        if (j == 0)
            assert_true(d.G == table[0]);

        /* VP: f_coef = √(1 − b_j) − 1, G = √b_j */
        if ((double)N > 17.3) {
            assert_int_equal(diffsde_sde_discrete_table(vp, N, table), DIFFSDE_OK);
            assert_int_equal(diffsde_sde_discretize(vp, N, t, &d), DIFFSDE_OK);
            assert_int_equal(d.index, j);
            double b = table[j];
            assert_true(d.G == sqrt(b));
            assert_close(d.f_coef, sqrt(1.0 - b) - 1.0, 1e-11, 0.0);
            assert_close(d.f_coef, -b / (1.0 + sqrt(1.0 - b)), 2 * DBL_EPSILON, 0.0);
        } else {
            assert_int_equal(diffsde_sde_discretize(vp, N, t, &d), DIFFSDE_EPARAM);
        }

        /* sub-VP and user: generic Euler f/N, g √(1/N) */
        diffsde_sde *gen[2] = {svp, usr};
        for (int g = 0; g < 2; g++) {
            diffsde_sde_coefs c;
            assert_int_equal(diffsde_sde_coefs_at(gen[g], t, &c), DIFFSDE_OK);
            assert_int_equal(diffsde_sde_discretize(gen[g], N, t, &d), DIFFSDE_OK);
            assert_int_equal(d.index, j);
            assert_close(d.f_coef, c.f / (double)N, 1e-15, 0.0);
            assert_close(d.G, c.g * sqrt(1.0 / (double)N), 1e-15, 1e-300);
        }
    }
    /* VP with N ≤ βmax: refused, not NaN */
    diffsde_sde *vpd = NULL;
    assert_int_equal(diffsde_sde_new_vp(ctx, 0.1, 20.0, &vpd), DIFFSDE_OK);
    d.index = 12345;
    assert_int_equal(diffsde_sde_discretize(vpd, 20, 0.5, &d), DIFFSDE_EPARAM);
    assert_int_equal(d.index, 12345);
    assert_msg_has(ctx, "beta_max");
    assert_int_equal(diffsde_sde_discretize(vpd, 10, 0.0, &d), DIFFSDE_EPARAM);
    assert_int_equal(diffsde_sde_discretize(vpd, 21, 1.0, &d), DIFFSDE_OK);
    assert_true(isfinite(d.f_coef) && isfinite(d.G));
    /* the README's example: N = 25 with defaults */
    assert_int_equal(diffsde_sde_discretize(vpd, 25, 1.0, &d), DIFFSDE_OK);
    assert_int_equal(d.index, 24);
    assert_true(d.G == sqrt(20.0 / 25));
    /* argument errors */
    assert_int_equal(diffsde_sde_discretize(vpd, 1, 0.5, &d), DIFFSDE_ESIZE);
    assert_int_equal(diffsde_sde_discretize(vpd, 100, 1.5, &d), DIFFSDE_EDOM);
    assert_int_equal(diffsde_sde_discretize(vpd, 100, -1e-300, &d), DIFFSDE_EDOM);
    assert_int_equal(diffsde_sde_discretize(vpd, 100, NAN, &d), DIFFSDE_EDOM);
    assert_int_equal(diffsde_sde_discretize(vpd, 100, 0.5, NULL), DIFFSDE_ENULL);
    assert_int_equal(diffsde_sde_discretize(NULL, 100, 0.5, &d), DIFFSDE_ENULL);
    diffsde_sde_free(vpd);
    diffsde_sde_free(ve);
    diffsde_sde_free(vp);
    diffsde_sde_free(svp);
    diffsde_sde_free(usr);
    diffsde_ctx_free(ctx);
}

/* ------------------------------------------------------------------------------------------ */
/* 5. prior                                                                                    */

static void test_prior(void **state)
{
    (void)state;
    diffsde_ctx *ctx = new_ctx();
    diffsde_sde *sdes[6];
    double stds[6];
    assert_int_equal(diffsde_sde_new_ve(ctx, 0.01, 50, &sdes[0]), DIFFSDE_OK);
    stds[0] = 50;
    assert_int_equal(diffsde_sde_new_ve(ctx, 0.0137, 378.5, &sdes[1]), DIFFSDE_OK);
    stds[1] = 378.5;
    assert_int_equal(diffsde_sde_new_vp(ctx, 0.0713, 17.3, &sdes[2]), DIFFSDE_OK);
    stds[2] = 1;
    assert_int_equal(diffsde_sde_new_subvp(ctx, 0.0713, 17.3, &sdes[3]), DIFFSDE_OK);
    stds[3] = 1;
    user_params p = user_true(DIFFSDE_SDE_VP, 0.0713, 17.3);
    diffsde_sde_user def = user_def(&p);
    assert_int_equal(diffsde_sde_new_user(ctx, &def, &sdes[4]), DIFFSDE_OK);
    stds[4] = sqrt(-expm1(-(0.0713 + 17.3) / 2)); /* σ(T) */
    def.prior_std = 1.2385;
    assert_int_equal(diffsde_sde_new_user(ctx, &def, &sdes[5]), DIFFSDE_OK);
    stds[5] = 1.2385;

    diffsde_noise *noise = NULL;
    assert_int_equal(diffsde_noise_new_philox(ctx, UINT64_C(0x2385c0ffee), &noise), DIFFSDE_OK);

    static double x[3 * 1024], lp[3];
    const size_t ds[3] = {1, 3, 1024};
    for (int k = 0; k < 6; k++) {
        double s;
        assert_int_equal(diffsde_sde_prior_std(sdes[k], &s), DIFFSDE_OK);
        assert_close(s, stds[k], 1e-15, 0.0);

        for (int m = 0; m < 3; m++) {
            size_t d = ds[m], n = 3;
            for (size_t i = 0; i < n * d; i++)
                x[i] = 2.385 * s * sin(1.7 * (double)i + 0.3);
            assert_int_equal(diffsde_sde_prior_logpdf(sdes[k], n, d, x, lp), DIFFSDE_OK);
            for (size_t i = 0; i < n; i++) {
                double ref = 0.0; /* Σ_j log N(x_j; 0, s²) */
                for (size_t j = 0; j < d; j++) {
                    double v = x[i * d + j];
                    ref += -0.5 * log(2 * 3.14159265358979323846 * s * s) - v * v / (2 * s * s);
                }
                assert_close(lp[i], ref, 1e-13, 0.0);
            }
        }

        /* prior sample = s · Z(seed, PRIOR, sample, 0, coord) */
        const size_t n = 5, d = 3;
        const uint64_t sample0 = 7;
        assert_int_equal(diffsde_sde_prior_sample(sdes[k], noise, sample0, n, d, x), DIFFSDE_OK);
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < d; j++) {
                double z = diffsde_noise_normal_at(UINT64_C(0x2385c0ffee), DIFFSDE_STREAM_PRIOR,
                                                   sample0 + i, 0, j);
                assert_true(x[i * d + j] == s * z);
            }
    }
    /* errors */
    assert_int_equal(diffsde_sde_prior_sample(sdes[0], noise, 0, 2, 0, x), DIFFSDE_ESIZE);
    assert_msg_has(ctx, "d");
    assert_int_equal(diffsde_sde_prior_sample(sdes[0], noise, 0, SIZE_MAX, 2, x),
                     DIFFSDE_ESIZE);
    assert_int_equal(diffsde_sde_prior_sample(sdes[0], NULL, 0, 2, 2, x), DIFFSDE_ENULL);
    assert_int_equal(diffsde_sde_prior_sample(sdes[0], noise, 0, 2, 2, NULL), DIFFSDE_ENULL);
    assert_int_equal(diffsde_sde_prior_sample(NULL, noise, 0, 2, 2, x), DIFFSDE_ENULL);
    assert_int_equal(diffsde_sde_prior_sample(sdes[0], noise, 0, 0, 2, x), DIFFSDE_OK);
    assert_int_equal(diffsde_sde_prior_logpdf(sdes[0], 2, 0, x, lp), DIFFSDE_ESIZE);
    assert_int_equal(diffsde_sde_prior_logpdf(sdes[0], 2, 2, NULL, lp), DIFFSDE_ENULL);
    assert_int_equal(diffsde_sde_prior_logpdf(sdes[0], 2, 2, x, NULL), DIFFSDE_ENULL);
    assert_int_equal(diffsde_sde_prior_logpdf(NULL, 2, 2, x, lp), DIFFSDE_ENULL);
    assert_int_equal(diffsde_sde_prior_std(NULL, lp), DIFFSDE_ENULL);
    assert_int_equal(diffsde_sde_prior_std(sdes[0], NULL), DIFFSDE_ENULL);

    diffsde_noise_free(noise);
    for (int k = 0; k < 6; k++)
        diffsde_sde_free(sdes[k]);
    diffsde_ctx_free(ctx);
}

/* ------------------------------------------------------------------------------------------ */
/* 6. invalid parameters                                                                       */

typedef struct bad_case {
    int which; /* 0 ve, 1 vp, 2 subvp */
    double p0, p1;
    const char *needle; /* must appear in the message */
} bad_case;

static void test_invalid_params(void **state)
{
    (void)state;
    diffsde_ctx *ctx = new_ctx();
    const bad_case cases[] = {
        {0, 0.0, 50, "sigma_min (0)"},     {0, -0.0137, 50, "sigma_min"},
        {0, NAN, 50, "sigma_min"},         {0, INFINITY, 50, "sigma_min"},
        {0, 0.0137, 0.0137, "sigma_max"},  {0, 0.0137, 0.005, "sigma_max"},
        {0, 0.0137, NAN, "sigma_max"},     {0, 0.0137, INFINITY, "sigma_max"},
        {0, 1e-300, 1e300, "sigma_max"},   {1, -0.1, 20, "beta_min (-0.1)"},
        {1, 0.1, 0.05, "beta_max"},        {1, 0.0, 0.0, "beta_max"},
        {1, NAN, 20, "beta_min"},          {1, 0.1, NAN, "beta_max"},
        {1, 0.1, INFINITY, "beta_max"},    {1, -INFINITY, 20, "beta_min"},
        {2, -0.1, 20, "beta_min"},         {2, 0.1, 0.05, "beta_max"},
        {2, 0.0, 0.0, "beta_max"},         {2, NAN, 20, "beta_min"},
        {2, 0.1, NAN, "beta_max"},
    };
    const char *fns[3] = {"diffsde_sde_new_ve", "diffsde_sde_new_vp", "diffsde_sde_new_subvp"};
    const char *names[3] = {"ve", "vp", "subvp"};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const bad_case *c = &cases[i];
        diffsde_sde *sde = (diffsde_sde *)&sde; /* must be reset to NULL */
        int st = c->which == 0   ? diffsde_sde_new_ve(ctx, c->p0, c->p1, &sde)
                 : c->which == 1 ? diffsde_sde_new_vp(ctx, c->p0, c->p1, &sde)
                                 : diffsde_sde_new_subvp(ctx, c->p0, c->p1, &sde);
        assert_int_equal(st, DIFFSDE_EPARAM);
        assert_null(sde);
        assert_msg_has(ctx, fns[c->which]);
        assert_msg_has(ctx, c->needle);
        /* the same through the named constructor */
        const char *keys[2] = {c->which == 0 ? "sigma_min" : "beta_min",
                               c->which == 0 ? "sigma_max" : "beta_max"};
        const double vals[2] = {c->p0, c->p1};
        sde = (diffsde_sde *)&sde;
        assert_int_equal(diffsde_sde_new_named(ctx, names[c->which], 2, keys, vals, &sde),
                         DIFFSDE_EPARAM);
        assert_null(sde);
        assert_msg_has(ctx, "diffsde_sde_new_named");
        assert_msg_has(ctx, c->needle);
    }

    /* NULL handles */
    diffsde_sde *sde = NULL;
    assert_int_equal(diffsde_sde_new_ve(NULL, 0.01, 50, &sde), DIFFSDE_ENULL);
    assert_null(sde);
    assert_int_equal(diffsde_sde_new_vp(ctx, 0.1, 20, NULL), DIFFSDE_ENULL);
    assert_msg_has(ctx, "out");
    assert_int_equal(diffsde_sde_new_subvp(ctx, 0.1, 20, NULL), DIFFSDE_ENULL);
    assert_int_equal(diffsde_sde_new_named(ctx, NULL, 0, NULL, NULL, &sde), DIFFSDE_ENULL);
    assert_int_equal(diffsde_sde_new_named(NULL, "ve", 0, NULL, NULL, &sde), DIFFSDE_ENULL);
    assert_int_equal(diffsde_sde_new_named(ctx, "ve", 0, NULL, NULL, NULL), DIFFSDE_ENULL);

    /* the named constructor: unknown names and keys */
    assert_int_equal(diffsde_sde_new_named(ctx, "VE", 0, NULL, NULL, &sde), DIFFSDE_EPARAM);
    assert_null(sde);
    assert_msg_has(ctx, "\"VE\"");
    assert_int_equal(diffsde_sde_new_named(ctx, "ddpm", 0, NULL, NULL, &sde), DIFFSDE_EPARAM);
    assert_msg_has(ctx, "ddpm");
    const char *k1[1] = {"sigma_min"};
    const double v1[1] = {0.0137};
    assert_int_equal(diffsde_sde_new_named(ctx, "vp", 1, k1, v1, &sde), DIFFSDE_EPARAM);
    assert_msg_has(ctx, "\"sigma_min\"");
    const char *k2[1] = {"beta"};
    assert_int_equal(diffsde_sde_new_named(ctx, "subvp", 1, k2, v1, &sde), DIFFSDE_EPARAM);
    assert_msg_has(ctx, "\"beta\"");
    assert_int_equal(diffsde_sde_new_named(ctx, "vp", 1, NULL, v1, &sde), DIFFSDE_ENULL);
    assert_int_equal(diffsde_sde_new_named(ctx, "vp", 1, k1, NULL, &sde), DIFFSDE_ENULL);
    const char *k3[1] = {NULL};
    assert_int_equal(diffsde_sde_new_named(ctx, "vp", 1, k3, v1, &sde), DIFFSDE_ENULL);
    assert_null(sde);

    /* t outside [0, T], NaN t: EDOM, the output untouched, the message names t */
    diffsde_sde *vp = NULL;
    assert_int_equal(diffsde_sde_new_vp(ctx, 0.1, 20, &vp), DIFFSDE_OK);
    const double bad_t[] = {-1e-300, -0.5, 1.0 + 1e-15, 2.385, NAN, INFINITY, -INFINITY};
    for (size_t i = 0; i < sizeof bad_t / sizeof bad_t[0]; i++) {
        double v = 42.0;
        diffsde_sde_coefs c;
        memset(&c, 0x5a, sizeof c);
        diffsde_sde_coefs c0 = c;
        assert_int_equal(diffsde_sde_coefs_at(vp, bad_t[i], &c), DIFFSDE_EDOM);
        assert_memory_equal(&c, &c0, sizeof c);
        assert_msg_has(ctx, "diffsde_sde_coefs_at: t");
        assert_int_equal(diffsde_sde_alpha(vp, bad_t[i], &v), DIFFSDE_EDOM);
        assert_msg_has(ctx, "diffsde_sde_alpha: t");
        assert_int_equal(diffsde_sde_sigma(vp, bad_t[i], &v), DIFFSDE_EDOM);
        assert_int_equal(diffsde_sde_drift_coef(vp, bad_t[i], &v), DIFFSDE_EDOM);
        assert_int_equal(diffsde_sde_diffusion(vp, bad_t[i], &v), DIFFSDE_EDOM);
        assert_int_equal(diffsde_sde_log_snr(vp, bad_t[i], &v), DIFFSDE_EDOM);
        assert_msg_has(ctx, "diffsde_sde_log_snr: t");
        assert_true(v == 42.0);
    }
    /* NULL arguments of the pointwise functions */
    double v;
    diffsde_sde_coefs c;
    assert_int_equal(diffsde_sde_coefs_at(NULL, 0.5, &c), DIFFSDE_ENULL);
    assert_int_equal(diffsde_sde_coefs_at(vp, 0.5, NULL), DIFFSDE_ENULL);
    assert_int_equal(diffsde_sde_alpha(NULL, 0.5, &v), DIFFSDE_ENULL);
    assert_int_equal(diffsde_sde_alpha(vp, 0.5, NULL), DIFFSDE_ENULL);
    assert_int_equal(diffsde_sde_sigma(NULL, 0.5, &v), DIFFSDE_ENULL);
    assert_int_equal(diffsde_sde_sigma(vp, 0.5, NULL), DIFFSDE_ENULL);
    assert_int_equal(diffsde_sde_drift_coef(vp, 0.5, NULL), DIFFSDE_ENULL);
    assert_int_equal(diffsde_sde_diffusion(vp, 0.5, NULL), DIFFSDE_ENULL);
    assert_int_equal(diffsde_sde_log_snr(NULL, 0.5, &v), DIFFSDE_ENULL);
    assert_int_equal(diffsde_sde_log_snr(vp, 0.5, NULL), DIFFSDE_ENULL);
    assert_int_equal(diffsde_sde_t_from_log_snr(NULL, 0.5, &v), DIFFSDE_ENULL);
    assert_int_equal(diffsde_sde_t_from_log_snr(vp, 0.5, NULL), DIFFSDE_ENULL);
    assert_int_equal(diffsde_sde_get_param(vp, NULL, &v), DIFFSDE_ENULL);
    assert_int_equal(diffsde_sde_get_param(vp, "beta_min", NULL), DIFFSDE_ENULL);
    assert_int_equal(diffsde_sde_get_param(NULL, "beta_min", &v), DIFFSDE_ENULL);
    assert_int_equal(diffsde_sde_default_eps(NULL, &v), DIFFSDE_ENULL);
    assert_int_equal(diffsde_sde_default_eps(vp, NULL), DIFFSDE_ENULL);
    assert_int_equal(diffsde_sde_time_range(NULL, &v, &v), DIFFSDE_ENULL);
    diffsde_sde_free(vp);
    diffsde_sde_free(NULL);
    diffsde_ctx_free(ctx);
}

/* ------------------------------------------------------------------------------------------ */
/* 7. allocation failures                                                                      */

static int construct(int which, diffsde_ctx *ctx, diffsde_sde **out, user_params *up)
{
    static const char *const keys[2] = {"beta_max", "beta_min"};
    static const double vals[2] = {17.3, 0.0713};
    diffsde_sde_user def = user_def(up);
    switch (which) {
    case 0:
        return diffsde_sde_new_ve(ctx, 0.0137, 378.5, out);
    case 1:
        return diffsde_sde_new_vp(ctx, 0.0713, 17.3, out);
    case 2:
        return diffsde_sde_new_subvp(ctx, 0.0713, 17.3, out);
    case 3:
        return diffsde_sde_new_named(ctx, "subvp", 2, keys, vals, out);
    default:
        return diffsde_sde_new_user(ctx, &def, out);
    }
}

static void test_alloc_failures(void **state)
{
    (void)state;
    for (int which = 0; which < 5; which++) {
        int succeeded = 0;
        for (long k = 1; k < 100 && !succeeded; k++) {
            tu_alloc a = {0, 0, 0};
            diffsde_allocator al = tu_allocator(&a);
            diffsde_ctx *ctx = NULL;
            assert_int_equal(diffsde_ctx_new(&ctx, &al), DIFFSDE_OK);
            a.fail_at = a.calls + k;
            user_params up = user_true(DIFFSDE_SDE_VP, 0.0713, 17.3);
            diffsde_sde *sde = (diffsde_sde *)&a;
            int st = construct(which, ctx, &sde, &up);
            if (st == DIFFSDE_OK) {
                succeeded = 1;
                assert_non_null(sde);
                double s;
                assert_int_equal(diffsde_sde_sigma(sde, 0.5, &s), DIFFSDE_OK);
            } else {
                assert_int_equal(st, DIFFSDE_ENOMEM);
                assert_null(sde);
                assert_int_equal(a.live, 1); /* only the context */
                assert_msg_has(ctx, "allocate");
            }
            diffsde_sde_free(sde);
            diffsde_ctx_free(ctx);
            assert_int_equal(a.live, 0);
        }
        assert_true(succeeded);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* 8. accessors                                                                                */

static void test_accessors(void **state)
{
    (void)state;
    diffsde_ctx *ctx = new_ctx();
    diffsde_sde *ve, *vp, *svp, *named;
    assert_int_equal(diffsde_sde_new_ve(ctx, 0.0137, 378.5, &ve), DIFFSDE_OK);
    assert_int_equal(diffsde_sde_new_vp(ctx, 0.0713, 17.3, &vp), DIFFSDE_OK);
    assert_int_equal(diffsde_sde_new_subvp(ctx, 0.0, 12.5, &svp), DIFFSDE_OK);
    const char *keys[1] = {"sigma_max"};
    const double vals[1] = {378.5};
    assert_int_equal(diffsde_sde_new_named(ctx, "ve", 1, keys, vals, &named), DIFFSDE_OK);

    assert_int_equal(diffsde_sde_get_kind(ve), DIFFSDE_SDE_VE);
    assert_int_equal(diffsde_sde_get_kind(vp), DIFFSDE_SDE_VP);
    assert_int_equal(diffsde_sde_get_kind(svp), DIFFSDE_SDE_SUBVP);
    assert_int_equal(diffsde_sde_get_kind(NULL), 0);
    assert_string_equal(diffsde_sde_name(ve), "ve");
    assert_string_equal(diffsde_sde_name(vp), "vp");
    assert_string_equal(diffsde_sde_name(svp), "subvp");
    assert_string_equal(diffsde_sde_name(NULL), "");

    double v;
    assert_int_equal(diffsde_sde_get_param(ve, "sigma_min", &v), DIFFSDE_OK);
    assert_true(v == 0.0137);
    assert_int_equal(diffsde_sde_get_param(ve, "sigma_max", &v), DIFFSDE_OK);
    assert_true(v == 378.5);
    assert_int_equal(diffsde_sde_get_param(ve, "T", &v), DIFFSDE_OK);
    assert_true(v == 1.0);
    assert_int_equal(diffsde_sde_get_param(ve, "beta_min", &v), DIFFSDE_EPARAM);
    assert_msg_has(ctx, "beta_min");
    assert_int_equal(diffsde_sde_get_param(vp, "beta_min", &v), DIFFSDE_OK);
    assert_true(v == 0.0713);
    assert_int_equal(diffsde_sde_get_param(vp, "beta_max", &v), DIFFSDE_OK);
    assert_true(v == 17.3);
    assert_int_equal(diffsde_sde_get_param(svp, "beta_min", &v), DIFFSDE_OK);
    assert_true(v == 0.0);
    assert_int_equal(diffsde_sde_get_param(svp, "beta_max", &v), DIFFSDE_OK);
    assert_true(v == 12.5);
    assert_int_equal(diffsde_sde_get_param(vp, "sigma_max", &v), DIFFSDE_EPARAM);
    assert_int_equal(diffsde_sde_get_param(vp, "Beta_min", &v), DIFFSDE_EPARAM);
    assert_msg_has(ctx, "Beta_min");
    assert_int_equal(diffsde_sde_get_param(named, "sigma_min", &v), DIFFSDE_OK);
    assert_true(v == DIFFSDE_VE_SIGMA_MIN);
    assert_int_equal(diffsde_sde_get_param(named, "sigma_max", &v), DIFFSDE_OK);
    assert_true(v == 378.5);

    double t0 = -1, T = -1;
    assert_int_equal(diffsde_sde_time_range(vp, &t0, &T), DIFFSDE_OK);
    assert_true(t0 == 0.0 && T == 1.0);
    assert_int_equal(diffsde_sde_time_range(vp, NULL, NULL), DIFFSDE_OK);

    assert_int_equal(diffsde_sde_default_eps(ve, &v), DIFFSDE_OK);
    assert_true(v == 1e-5);
    assert_int_equal(diffsde_sde_default_eps(vp, &v), DIFFSDE_OK);
    assert_true(v == 1e-3);
    assert_int_equal(diffsde_sde_default_eps(svp, &v), DIFFSDE_OK);
    assert_true(v == 1e-3);

    /* defaults through the named constructor */
    const char *nm[3] = {"ve", "vp", "subvp"};
    const char *k0[3] = {"sigma_min", "beta_min", "beta_min"};
    const char *k1[3] = {"sigma_max", "beta_max", "beta_max"};
    const double d0[3] = {DIFFSDE_VE_SIGMA_MIN, DIFFSDE_VP_BETA_MIN, DIFFSDE_VP_BETA_MIN};
    const double d1[3] = {DIFFSDE_VE_SIGMA_MAX, DIFFSDE_VP_BETA_MAX, DIFFSDE_VP_BETA_MAX};
    for (int i = 0; i < 3; i++) {
        diffsde_sde *s = NULL;
        assert_int_equal(diffsde_sde_new_named(ctx, nm[i], 0, NULL, NULL, &s), DIFFSDE_OK);
        assert_string_equal(diffsde_sde_name(s), nm[i]);
        assert_int_equal(diffsde_sde_get_param(s, k0[i], &v), DIFFSDE_OK);
        assert_true(v == d0[i]);
        assert_int_equal(diffsde_sde_get_param(s, k1[i], &v), DIFFSDE_OK);
        assert_true(v == d1[i]);
        diffsde_sde_free(s);
    }
    /* user kind */
    user_params p = user_true(DIFFSDE_SDE_VP, 0.1, 20);
    diffsde_sde_user def = user_def(&p);
    diffsde_sde *u = NULL;
    assert_int_equal(diffsde_sde_new_user(ctx, &def, &u), DIFFSDE_OK);
    assert_string_equal(diffsde_sde_name(u), "user");
    assert_int_equal(diffsde_sde_get_kind(u), DIFFSDE_SDE_USER);
    assert_int_equal(diffsde_sde_get_param(u, "beta_min", &v), DIFFSDE_EPARAM);
    assert_int_equal(diffsde_sde_default_eps(u, &v), DIFFSDE_OK);
    assert_true(v == 1e-3);

    diffsde_sde_free(u);
    diffsde_sde_free(ve);
    diffsde_sde_free(vp);
    diffsde_sde_free(svp);
    diffsde_sde_free(named);
    diffsde_ctx_free(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_coefs_closed_forms), cmocka_unit_test(test_coefs_fixture),
        cmocka_unit_test(test_variance_identity),  cmocka_unit_test(test_user_validation),
        cmocka_unit_test(test_log_snr),            cmocka_unit_test(test_discrete_tables),
        cmocka_unit_test(test_discretize),         cmocka_unit_test(test_prior),
        cmocka_unit_test(test_invalid_params),     cmocka_unit_test(test_alloc_failures),
        cmocka_unit_test(test_accessors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
