/*
 * The model object and the parametrisation conversions, checked on Gaussian data where the
 * posterior mean E[x0 | x_t] and E[ε | x_t] have independent closed forms:
 *   p0 = N(m, s0² I)  ⇒  p_t = N(α m, (α² s0² + σ²) I),
 *   score = −(x − α m)/v_t,  E[ε|x] = σ (x − α m)/v_t,  E[x0|x] = m + α s0² (x − α m)/v_t,
 * with v_t = α² s0² + σ².
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <float.h>
#include <string.h>

#include "testutil.h"

#define M0 0.731
#define S0 1.385

typedef struct gauss_model {
    const diffsde_sde *sde;
    diffsde_param param;
    int calls;
    int status;       /* returned by the callback */
    size_t nan_index; /* where to plant a NaN, SIZE_MAX for none */
} gauss_model;

static double exact(diffsde_param p, const diffsde_sde *sde, double t, double x)
{
    diffsde_sde_coefs c;
    if (diffsde_sde_coefs_at(sde, t, &c) != DIFFSDE_OK)
        return NAN;
    double a = c.alpha, s = c.sigma, vt = a * a * S0 * S0 + s * s;
    double r = x - a * M0;
    double eps = s * r / vt, x0 = M0 + a * S0 * S0 * r / vt;
    switch (p) {
    case DIFFSDE_PARAM_SCORE:
        return -r / vt;
    case DIFFSDE_PARAM_EPS:
        return eps;
    case DIFFSDE_PARAM_X0:
        return x0;
    case DIFFSDE_PARAM_V:
        return a * eps - s * x0;
    }
    return NAN;
}

static int gauss_cb(size_t n, size_t d, const double *t, const double *x, double *out,
                    void *user)
{
    gauss_model *g = user;
    g->calls++;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++)
            out[i * d + j] = exact(g->param, g->sde, t[i], x[i * d + j]);
    if (g->nan_index != SIZE_MAX)
        out[g->nan_index] = NAN;
    return g->status;
}

typedef struct fixture {
    diffsde_ctx *ctx;
    diffsde_sde *sde[3];
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f || diffsde_ctx_new(&f->ctx, NULL) || diffsde_sde_new_ve(f->ctx, 0.0137, 42.5, &f->sde[0]) ||
        diffsde_sde_new_vp(f->ctx, 0.173, 17.3, &f->sde[1]) ||
        diffsde_sde_new_subvp(f->ctx, 0.173, 17.3, &f->sde[2]))
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


/*
 * Rounding-error bound of a conversion: the converted value is a short sum of products of
 * `in` and x with the coefficients of the formulas in score.h, some of which are large where
 * σ or α is small (from x̂0 to the score divides by σ², ill-conditioned as t → 0). The bound
 * is 16 ulp of each term, so the tests check the implementation, not the conditioning.
 */
static double convert_bound(diffsde_param from, diffsde_param to, const diffsde_sde *sde,
                            double t, double x, double in)
{
    diffsde_sde_coefs c;
    diffsde_sde_coefs_at(sde, t, &c);
    double a = c.alpha, s = c.sigma, r = a * a + s * s;
    double ax = fabs(x), ai = fabs(in);
    double eps_mag; /* magnitude of the terms that make ε̂ */
    switch (from) {
    case DIFFSDE_PARAM_SCORE: eps_mag = s * ai; break;
    case DIFFSDE_PARAM_EPS: eps_mag = ai; break;
    case DIFFSDE_PARAM_X0: eps_mag = (ax + a * ai) / s; break;
    default: eps_mag = (s * ax + a * ai) / r; break;
    }
    double out_mag;
    switch (to) {
    case DIFFSDE_PARAM_SCORE: out_mag = eps_mag / s; break;
    case DIFFSDE_PARAM_EPS: out_mag = eps_mag; break;
    case DIFFSDE_PARAM_X0: out_mag = (ax + s * eps_mag) / a; break;
    default: out_mag = (r * eps_mag + s * ax) / a; break;
    }
    return 16 * DBL_EPSILON * out_mag;
}

enum { N = 6, D = 3 };
static const double times[N] = {1e-5, 1e-3, 0.137, 0.5, 0.871, 1.0};

static void fill_points(double *x)
{
    for (size_t k = 0; k < N * D; k++)
        x[k] = -2.385 + 0.731 * (double)k;
}

/* Every parametrisation, evaluated through the model object, gives the exact score. */
static void test_eval_every_param(void **state)
{
    fixture *f = *state;
    double x[N * D], s[N * D];
    fill_points(x);
    for (int k = 0; k < 3; k++) {
        for (int p = DIFFSDE_PARAM_SCORE; p <= DIFFSDE_PARAM_V; p++) {
            gauss_model g = {f->sde[k], (diffsde_param)p, 0, 0, SIZE_MAX};
            diffsde_score *model;
            assert_int_equal(diffsde_score_new(f->ctx, gauss_cb, &g, (diffsde_param)p, &model),
                             DIFFSDE_OK);
            assert_int_equal(diffsde_score_get_param(model), p);
            assert_int_equal(diffsde_score_eval(model, f->sde[k], N, D, times, x, s),
                             DIFFSDE_OK);
            assert_int_equal(g.calls, 1);
            for (size_t i = 0; i < N; i++)
                for (size_t j = 0; j < D; j++)
                    assert_close(s[i * D + j],
                                 exact(DIFFSDE_PARAM_SCORE, f->sde[k], times[i], x[i * D + j]),
                                 0, convert_bound((diffsde_param)p, DIFFSDE_PARAM_SCORE, f->sde[k],
                                                  times[i], x[i * D + j],
                                                  exact((diffsde_param)p, f->sde[k], times[i],
                                                        x[i * D + j])));
            diffsde_score_free(model);
        }
    }
}

/* Every pair (from, to) of conversions maps the exact value of one to the exact other. */
static void test_convert_all_pairs(void **state)
{
    fixture *f = *state;
    double x[N * D], in[N * D], out[N * D];
    fill_points(x);
    for (int k = 0; k < 3; k++) {
        for (int from = 0; from <= 3; from++) {
            for (int to = 0; to <= 3; to++) {
                for (size_t i = 0; i < N; i++)
                    for (size_t j = 0; j < D; j++)
                        in[i * D + j] = exact((diffsde_param)from, f->sde[k], times[i], x[i * D + j]);
                assert_int_equal(diffsde_param_convert(f->sde[k], (diffsde_param)from,
                                                       (diffsde_param)to, N, D, times, x, in, out),
                                 DIFFSDE_OK);
                for (size_t i = 0; i < N; i++)
                    for (size_t j = 0; j < D; j++) {
                        double want = exact((diffsde_param)to, f->sde[k], times[i], x[i * D + j]);
                        assert_close(out[i * D + j], want, 0,
                                     convert_bound((diffsde_param)from, (diffsde_param)to,
                                                   f->sde[k], times[i], x[i * D + j],
                                                   in[i * D + j]));
                    }
                /* In place gives the same bits. */
                double copy[N * D];
                memcpy(copy, in, sizeof in);
                assert_int_equal(diffsde_param_convert(f->sde[k], (diffsde_param)from,
                                                       (diffsde_param)to, N, D, times, x, copy,
                                                       copy),
                                 DIFFSDE_OK);
                assert_memory_equal(copy, out, sizeof out);
            }
        }
    }
}

/* At t = 0 a VP SDE has σ = 0: conversions that divide by σ are refused, the others work. */
static void test_convert_sigma_zero(void **state)
{
    fixture *f = *state;
    double t[2] = {0.5, 0.0}, x[2] = {1.25, -0.5}, in[2] = {0.3, 0.7};
    double out[2] = {123, 456};
    assert_int_equal(diffsde_param_convert(f->sde[1], DIFFSDE_PARAM_EPS, DIFFSDE_PARAM_SCORE, 2,
                                           1, t, x, in, out),
                     DIFFSDE_EDOM);
    assert_non_null(strstr(diffsde_errmsg(f->ctx), "sample 1"));
    assert_non_null(strstr(diffsde_errmsg(f->ctx), "sigma"));
    /* out untouched: the check precedes every write */
    assert_true(out[0] == 123 && out[1] == 456);
    assert_int_equal(diffsde_param_convert(f->sde[1], DIFFSDE_PARAM_X0, DIFFSDE_PARAM_EPS, 2, 1,
                                           t, x, in, out),
                     DIFFSDE_EDOM);
    /* score → eps, eps → x0 and v are fine at σ = 0: x0 = x/α there. */
    assert_int_equal(diffsde_param_convert(f->sde[1], DIFFSDE_PARAM_EPS, DIFFSDE_PARAM_X0, 2, 1,
                                           t, x, in, out),
                     DIFFSDE_OK);
    assert_close(out[1], x[1], 1e-15, 0); /* α(0) = 1, σ(0) = 0 */
    assert_int_equal(diffsde_param_convert(f->sde[1], DIFFSDE_PARAM_SCORE, DIFFSDE_PARAM_EPS, 2,
                                           1, t, x, in, out),
                     DIFFSDE_OK);
    assert_true(out[1] == 0.0);
}

static void test_convert_bad_arguments(void **state)
{
    fixture *f = *state;
    double t[1] = {0.5}, x[1] = {1}, v[1] = {2}, out[1];
    double tbad[1] = {1.5};
    assert_int_equal(diffsde_param_convert(NULL, 0, 1, 1, 1, t, x, v, out), DIFFSDE_ENULL);
    assert_int_equal(diffsde_param_convert(f->sde[0], 0, 1, 1, 0, t, x, v, out), DIFFSDE_ESIZE);
    assert_int_equal(diffsde_param_convert(f->sde[0], 0, 1, SIZE_MAX, 2, t, x, v, out),
                     DIFFSDE_ESIZE);
    assert_int_equal(diffsde_param_convert(f->sde[0], (diffsde_param)7, 1, 1, 1, t, x, v, out),
                     DIFFSDE_EPARAM);
    assert_int_equal(diffsde_param_convert(f->sde[0], 0, 1, 1, 1, NULL, x, v, out),
                     DIFFSDE_ENULL);
    assert_int_equal(diffsde_param_convert(f->sde[0], 0, 1, 1, 1, tbad, x, v, out), DIFFSDE_EDOM);
    assert_non_null(strstr(diffsde_errmsg(f->ctx), "sample 0"));
    assert_int_equal(diffsde_param_convert(f->sde[0], 0, 1, 0, 1, NULL, NULL, NULL, NULL),
                     DIFFSDE_OK);
}

static void test_param_names(void **state)
{
    (void)state;
    const char *names[] = {"score", "eps", "x0", "v"};
    for (int p = 0; p < 4; p++) {
        diffsde_param q;
        assert_string_equal(diffsde_param_name((diffsde_param)p), names[p]);
        assert_int_equal(diffsde_param_from_name(names[p], &q), DIFFSDE_OK);
        assert_int_equal(q, p);
    }
    diffsde_param q;
    assert_int_equal(diffsde_param_from_name("noise", &q), DIFFSDE_OK);
    assert_int_equal(q, DIFFSDE_PARAM_EPS);
    assert_int_equal(diffsde_param_from_name("data", &q), DIFFSDE_OK);
    assert_int_equal(q, DIFFSDE_PARAM_X0);
    assert_int_equal(diffsde_param_from_name("velocity!", &q), DIFFSDE_EPARAM);
    assert_int_equal(diffsde_param_from_name(NULL, &q), DIFFSDE_ENULL);
    assert_string_equal(diffsde_param_name((diffsde_param)9), "");
}

/* Callback failures: the three kinds, each with its own status and a message with context. */
static void test_eval_callback_failures(void **state)
{
    fixture *f = *state;
    double x[N * D], s[N * D];
    fill_points(x);
    gauss_model g = {f->sde[1], DIFFSDE_PARAM_SCORE, 0, -3, SIZE_MAX};
    diffsde_score *model;
    assert_int_equal(diffsde_score_new(f->ctx, gauss_cb, &g, DIFFSDE_PARAM_SCORE, &model),
                     DIFFSDE_OK);
    assert_int_equal(diffsde_score_eval(model, f->sde[1], N, D, times, x, s), DIFFSDE_ECALLBACK);
    assert_non_null(strstr(diffsde_errmsg(f->ctx), "-3"));
    g.status = 2;
    assert_int_equal(diffsde_score_eval(model, f->sde[1], N, D, times, x, s), DIFFSDE_ERETRY);
    g.status = 0;
    g.nan_index = 4 * D + 2; /* sample 4, coordinate 2 */
    assert_int_equal(diffsde_score_eval(model, f->sde[1], N, D, times, x, s),
                     DIFFSDE_ENONFINITE);
    const char *msg = diffsde_errmsg(f->ctx);
    assert_non_null(strstr(msg, "sample 4"));
    assert_non_null(strstr(msg, "coordinate 2"));
    assert_non_null(strstr(msg, "t=0.87"));
    /* A bad t never reaches the callback. */
    g.nan_index = SIZE_MAX;
    g.calls = 0;
    double tbad[N];
    memcpy(tbad, times, sizeof tbad);
    tbad[3] = -0.25;
    assert_int_equal(diffsde_score_eval(model, f->sde[1], N, D, tbad, x, s), DIFFSDE_EDOM);
    assert_non_null(strstr(diffsde_errmsg(f->ctx), "sample 3"));
    tbad[3] = NAN;
    assert_int_equal(diffsde_score_eval(model, f->sde[1], N, D, tbad, x, s), DIFFSDE_EDOM);
    assert_int_equal(g.calls, 0);
    /* Shape and pointer errors. */
    assert_int_equal(diffsde_score_eval(model, f->sde[1], N, 0, times, x, s), DIFFSDE_ESIZE);
    assert_int_equal(diffsde_score_eval(model, NULL, N, D, times, x, s), DIFFSDE_ENULL);
    assert_int_equal(diffsde_score_eval(NULL, f->sde[1], N, D, times, x, s), DIFFSDE_ENULL);
    assert_int_equal(diffsde_score_eval(model, f->sde[1], N, D, times, x, x), DIFFSDE_EPARAM);
    assert_int_equal(diffsde_score_eval(model, f->sde[1], 0, D, NULL, NULL, NULL), DIFFSDE_OK);
    assert_int_equal(g.calls, 0);
    diffsde_score_free(model);

    /* An eps-model cannot give the score where σ = 0 (VP, t = 0). */
    gauss_model ge = {f->sde[1], DIFFSDE_PARAM_EPS, 0, 0, SIZE_MAX};
    assert_int_equal(diffsde_score_new(f->ctx, gauss_cb, &ge, DIFFSDE_PARAM_EPS, &model),
                     DIFFSDE_OK);
    double t0[1] = {0.0};
    assert_int_equal(diffsde_score_eval(model, f->sde[1], 1, D, t0, x, s), DIFFSDE_EDOM);
    assert_int_equal(ge.calls, 0);
    diffsde_score_free(model);
}

static void test_score_new_errors_and_flags(void **state)
{
    fixture *f = *state;
    diffsde_score *model = (diffsde_score *)&model;
    assert_int_equal(diffsde_score_new(NULL, gauss_cb, NULL, 0, &model), DIFFSDE_ENULL);
    assert_null(model);
    assert_int_equal(diffsde_score_new(f->ctx, NULL, NULL, 0, &model), DIFFSDE_ENULL);
    assert_int_equal(diffsde_score_new(f->ctx, gauss_cb, NULL, (diffsde_param)4, &model),
                     DIFFSDE_EPARAM);
    assert_null(model);
    assert_int_equal(diffsde_score_new(f->ctx, gauss_cb, NULL, 0, NULL), DIFFSDE_ENULL);
    assert_int_equal(diffsde_score_new(f->ctx, gauss_cb, NULL, 0, &model), DIFFSDE_OK);
    assert_int_equal(diffsde_score_get_thread_safe(model), 0);
    assert_int_equal(diffsde_score_set_thread_safe(model, 5), DIFFSDE_OK);
    assert_int_equal(diffsde_score_get_thread_safe(model), 1);
    assert_int_equal(diffsde_score_set_thread_safe(NULL, 1), DIFFSDE_ENULL);
    assert_int_equal(diffsde_score_get_param(NULL), -1);
    diffsde_score_free(model);
    diffsde_score_free(NULL);
}

/* Allocation failure at every call: ENOMEM and nothing left allocated. */
static void test_score_alloc_failures(void **state)
{
    (void)state;
    for (long k = 1;; k++) {
        tu_alloc a = {.fail_at = k};
        diffsde_allocator al = tu_allocator(&a);
        diffsde_ctx *ctx = NULL;
        diffsde_score *model = NULL;
        int rc = diffsde_ctx_new(&ctx, &al);
        if (rc == DIFFSDE_OK)
            rc = diffsde_score_new(ctx, gauss_cb, NULL, DIFFSDE_PARAM_EPS, &model);
        if (rc == DIFFSDE_OK) {
            diffsde_score_free(model);
            diffsde_ctx_free(ctx);
            assert_int_equal(a.live, 0);
            assert_true(k > 2); /* both allocations were failed once before success */
            break;
        }
        assert_int_equal(rc, DIFFSDE_ENOMEM);
        assert_null(model);
        diffsde_ctx_free(ctx);
        assert_int_equal(a.live, 0);
    }
}

static int released;
static void release_hook(void *user)
{
    released += *(int *)user;
}

/* An owning model calls its release hook exactly once, at free. */
static void test_score_release_hook(void **state)
{
    fixture *f = *state;
    int token = 7;
    released = 0;
    diffsde_score *model;
    assert_int_equal(diffsde_score_new(f->ctx, gauss_cb, &token, DIFFSDE_PARAM_SCORE, &model),
                     DIFFSDE_OK);
    assert_int_equal(diffsde_score_set_release(model, release_hook), DIFFSDE_OK);
    assert_int_equal(released, 0);
    diffsde_score_free(model);
    assert_int_equal(released, 7);
    assert_int_equal(diffsde_score_set_release(NULL, release_hook), DIFFSDE_ENULL);
}

/* log N(x; α m, v_t I) of each row: the log-density callback of the Gaussian model. */
static int gauss_logp_cb(size_t n, size_t d, const double *t, const double *x, double *logp,
                         void *user)
{
    gauss_model *g = user;
    g->calls++;
    for (size_t i = 0; i < n; i++) {
        diffsde_sde_coefs c;
        if (diffsde_sde_coefs_at(g->sde, t[i], &c) != DIFFSDE_OK)
            return -99;
        double vt = c.alpha * c.alpha * S0 * S0 + c.sigma * c.sigma, q = 0;
        for (size_t j = 0; j < d; j++) {
            double r = x[i * d + j] - c.alpha * M0;
            q += r * r;
        }
        logp[i] = -0.5 * (double)d * log(2 * 3.14159265358979323846 * vt) - 0.5 * q / vt;
    }
    if (g->nan_index != SIZE_MAX)
        logp[g->nan_index] = g->nan_index % 2 ? NAN : -INFINITY;
    return g->status;
}

/*
 * The log-density plumbing: set/has/clear, values passed through unchanged from the callback
 * (with the model's user pointer), and every error with its status and message; a bad t or
 * a missing callback never reaches user code.
 */
static void test_eval_logp(void **state)
{
    fixture *f = *state;
    double x[N * D], lp[N], want[N];
    fill_points(x);
    gauss_model g = {f->sde[2], DIFFSDE_PARAM_EPS, 0, 0, SIZE_MAX};
    diffsde_score *model;
    assert_int_equal(diffsde_score_new(f->ctx, gauss_cb, &g, DIFFSDE_PARAM_EPS, &model),
                     DIFFSDE_OK);
    assert_int_equal(diffsde_score_has_logp(model), 0);
    assert_int_equal(diffsde_score_eval_logp(model, N, D, times, x, lp), DIFFSDE_EUNSUPPORTED);
    assert_non_null(strstr(diffsde_errmsg(f->ctx), "diffsde_score_eval_logp"));
    assert_non_null(strstr(diffsde_errmsg(f->ctx), "no log-density"));
    assert_int_equal(diffsde_score_set_logp(model, gauss_logp_cb), DIFFSDE_OK);
    assert_int_equal(diffsde_score_has_logp(model), 1);
    assert_int_equal(diffsde_score_eval_logp(model, N, D, times, x, lp), DIFFSDE_OK);
    assert_int_equal(g.calls, 1);
    assert_int_equal(gauss_logp_cb(N, D, times, x, want, &g), 0);
    assert_memory_equal(lp, want, sizeof lp);
    /* an independent value: sample 2 at t = 0.137 under sub-VP, by the closed form */
    {
        double a, s;
        assert_int_equal(diffsde_sde_alpha(f->sde[2], times[2], &a), DIFFSDE_OK);
        assert_int_equal(diffsde_sde_sigma(f->sde[2], times[2], &s), DIFFSDE_OK);
        double vt = a * a * S0 * S0 + s * s, e = 0;
        for (size_t j = 0; j < D; j++)
            e += log(exp(-0.5 * pow(x[2 * D + j] - a * M0, 2) / vt) / sqrt(2 * 3.14159265358979323846 * vt));
        assert_close(lp[2], e, 1e-13, 0);
    }

    /* statuses of the callback */
    g.calls = 0;
    g.status = -3;
    assert_int_equal(diffsde_score_eval_logp(model, N, D, times, x, lp), DIFFSDE_ECALLBACK);
    assert_non_null(strstr(diffsde_errmsg(f->ctx), "-3"));
    assert_non_null(strstr(diffsde_errmsg(f->ctx), "fatal"));
    g.status = 2;
    assert_int_equal(diffsde_score_eval_logp(model, N, D, times, x, lp), DIFFSDE_ERETRY);
    assert_non_null(strstr(diffsde_errmsg(f->ctx), "recoverable"));
    g.status = 0;
    for (size_t bad = 3; bad <= 4; bad++) { /* -Inf at sample 4, NaN at sample 3 */
        g.nan_index = bad;
        assert_int_equal(diffsde_score_eval_logp(model, N, D, times, x, lp), DIFFSDE_ENONFINITE);
        const char *msg = diffsde_errmsg(f->ctx);
        assert_non_null(strstr(msg, bad == 4 ? "sample 4" : "sample 3"));
        assert_non_null(strstr(msg, bad == 4 ? "t=0.87" : "t=0.5"));
    }
    g.nan_index = SIZE_MAX;
    assert_int_equal(g.calls, 4);

    /* times checked before the call: negative, NaN, infinite */
    double tbad[N];
    const double bad_t[3] = {-0.25, NAN, INFINITY};
    for (int b = 0; b < 3; b++) {
        memcpy(tbad, times, sizeof tbad);
        tbad[5] = bad_t[b];
        assert_int_equal(diffsde_score_eval_logp(model, N, D, tbad, x, lp), DIFFSDE_EDOM);
        assert_non_null(strstr(diffsde_errmsg(f->ctx), "sample 5"));
    }
    assert_int_equal(g.calls, 4);
    /* shapes and pointers */
    assert_int_equal(diffsde_score_eval_logp(model, N, 0, times, x, lp), DIFFSDE_ESIZE);
    assert_int_equal(diffsde_score_eval_logp(model, SIZE_MAX, 2, times, x, lp), DIFFSDE_ESIZE);
    assert_int_equal(diffsde_score_eval_logp(model, N, D, NULL, x, lp), DIFFSDE_ENULL);
    assert_int_equal(diffsde_score_eval_logp(model, N, D, times, NULL, lp), DIFFSDE_ENULL);
    assert_int_equal(diffsde_score_eval_logp(model, N, D, times, x, NULL), DIFFSDE_ENULL);
    assert_non_null(strstr(diffsde_errmsg(f->ctx), "logp"));
    assert_int_equal(diffsde_score_eval_logp(NULL, N, D, times, x, lp), DIFFSDE_ENULL);
    assert_int_equal(diffsde_score_eval_logp(model, 0, D, NULL, NULL, NULL), DIFFSDE_OK);
    assert_int_equal(g.calls, 4);

    /* clearing, and the NULL model */
    assert_int_equal(diffsde_score_set_logp(model, NULL), DIFFSDE_OK);
    assert_int_equal(diffsde_score_has_logp(model), 0);
    assert_int_equal(diffsde_score_eval_logp(model, N, D, times, x, lp), DIFFSDE_EUNSUPPORTED);
    assert_int_equal(diffsde_score_set_logp(NULL, gauss_logp_cb), DIFFSDE_ENULL);
    assert_int_equal(diffsde_score_has_logp(NULL), 0);
    assert_int_equal(g.calls, 4);
    diffsde_score_free(model);
}

/* ∇·s = −d/v_t for every row: the divergence callback of the Gaussian model. */
static int gauss_div_cb(size_t n, size_t d, const double *t, const double *x, double *div,
                        void *user)
{
    (void)x;
    gauss_model *g = user;
    g->calls++;
    for (size_t i = 0; i < n; i++) {
        diffsde_sde_coefs c;
        if (diffsde_sde_coefs_at(g->sde, t[i], &c) != DIFFSDE_OK)
            return -99;
        div[i] = -(double)d / (c.alpha * c.alpha * S0 * S0 + c.sigma * c.sigma);
    }
    if (g->nan_index != SIZE_MAX)
        div[g->nan_index] = NAN;
    return g->status;
}

/*
 * The divergence plumbing, as the log-density's: values passed through, every status with
 * its message, times checked against the SDE before the call, and the mixture oracle's
 * model carries its exact divergence (equal to diffsde_gmm_evaluate's).
 */
static void test_eval_divergence(void **state)
{
    fixture *f = *state;
    double x[N * D], dv[N], want[N];
    fill_points(x);
    gauss_model g = {f->sde[1], DIFFSDE_PARAM_SCORE, 0, 0, SIZE_MAX};
    diffsde_score *model;
    assert_int_equal(diffsde_score_new(f->ctx, gauss_cb, &g, DIFFSDE_PARAM_SCORE, &model),
                     DIFFSDE_OK);
    assert_int_equal(diffsde_score_has_divergence(model), 0);
    assert_int_equal(diffsde_score_eval_divergence(model, f->sde[1], N, D, times, x, dv),
                     DIFFSDE_EUNSUPPORTED);
    assert_non_null(strstr(diffsde_errmsg(f->ctx), "no divergence"));
    assert_int_equal(diffsde_score_set_divergence(model, gauss_div_cb), DIFFSDE_OK);
    assert_int_equal(diffsde_score_has_divergence(model), 1);
    g.calls = 0;
    assert_int_equal(diffsde_score_eval_divergence(model, f->sde[1], N, D, times, x, dv),
                     DIFFSDE_OK);
    assert_int_equal(g.calls, 1);
    assert_int_equal(gauss_div_cb(N, D, times, x, want, &g), 0);
    assert_memory_equal(dv, want, sizeof dv);

    g.calls = 0;
    g.status = -4;
    assert_int_equal(diffsde_score_eval_divergence(model, f->sde[1], N, D, times, x, dv),
                     DIFFSDE_ECALLBACK);
    assert_non_null(strstr(diffsde_errmsg(f->ctx), "-4"));
    g.status = 1;
    assert_int_equal(diffsde_score_eval_divergence(model, f->sde[1], N, D, times, x, dv),
                     DIFFSDE_ERETRY);
    g.status = 0;
    g.nan_index = 3;
    assert_int_equal(diffsde_score_eval_divergence(model, f->sde[1], N, D, times, x, dv),
                     DIFFSDE_ENONFINITE);
    assert_non_null(strstr(diffsde_errmsg(f->ctx), "sample 3"));
    g.nan_index = SIZE_MAX;
    assert_int_equal(g.calls, 3);
    double tbad[N];
    memcpy(tbad, times, sizeof tbad);
    tbad[5] = 7.0; /* beyond T = 1 */
    assert_int_equal(diffsde_score_eval_divergence(model, f->sde[1], N, D, tbad, x, dv),
                     DIFFSDE_EDOM);
    assert_non_null(strstr(diffsde_errmsg(f->ctx), "sample 5"));
    assert_int_equal(g.calls, 3);
    assert_int_equal(diffsde_score_eval_divergence(model, NULL, N, D, times, x, dv),
                     DIFFSDE_ENULL);
    assert_int_equal(diffsde_score_eval_divergence(model, f->sde[1], N, 0, times, x, dv),
                     DIFFSDE_ESIZE);
    assert_int_equal(diffsde_score_eval_divergence(model, f->sde[1], N, D, times, x, NULL),
                     DIFFSDE_ENULL);
    assert_int_equal(diffsde_score_eval_divergence(NULL, f->sde[1], N, D, times, x, dv),
                     DIFFSDE_ENULL);
    assert_int_equal(diffsde_score_eval_divergence(model, f->sde[1], 0, D, NULL, NULL, NULL),
                     DIFFSDE_OK);
    assert_int_equal(diffsde_score_set_divergence(model, NULL), DIFFSDE_OK);
    assert_int_equal(diffsde_score_has_divergence(model), 0);
    assert_int_equal(diffsde_score_set_divergence(NULL, gauss_div_cb), DIFFSDE_ENULL);
    assert_int_equal(diffsde_score_has_divergence(NULL), 0);
    diffsde_score_free(model);

    /* the oracle's model: its divergence is the evaluator's */
    diffsde_gmm *gmm;
    assert_int_equal(diffsde_gmm_new_builtin(f->ctx, "ring8", &gmm), DIFFSDE_OK);
    diffsde_score *exact_model;
    assert_int_equal(diffsde_gmm_score_new(gmm, f->sde[1], &exact_model), DIFFSDE_OK);
    assert_int_equal(diffsde_score_has_divergence(exact_model), 1);
    diffsde_gmm_eval *ev;
    assert_int_equal(diffsde_gmm_eval_new(gmm, f->sde[1], &ev), DIFFSDE_OK);
    double x2[N * 2];
    for (size_t k = 0; k < N * 2; k++)
        x2[k] = x[k];
    assert_int_equal(diffsde_score_eval_divergence(exact_model, f->sde[1], N, 2, times, x2, dv),
                     DIFFSDE_OK);
    assert_int_equal(diffsde_gmm_evaluate(ev, N, times, x2, NULL, NULL, want, NULL), DIFFSDE_OK);
    assert_memory_equal(dv, want, sizeof dv);
    diffsde_gmm_eval_free(ev);
    diffsde_score_free(exact_model);
    diffsde_gmm_free(gmm);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_eval_every_param),
        cmocka_unit_test(test_convert_all_pairs),
        cmocka_unit_test(test_convert_sigma_zero),
        cmocka_unit_test(test_convert_bad_arguments),
        cmocka_unit_test(test_param_names),
        cmocka_unit_test(test_eval_callback_failures),
        cmocka_unit_test(test_score_new_errors_and_flags),
        cmocka_unit_test(test_score_alloc_failures),
        cmocka_unit_test(test_score_release_hook),
        cmocka_unit_test(test_eval_logp),
        cmocka_unit_test(test_eval_divergence),
    };
    return cmocka_run_group_tests_name("score", tests, setup, teardown);
}
