/*
 * diffsde_gmm_posterior: the posterior of a Gaussian-mixture prior under y = A x + n,
 * n ~ N(0, Σ_y), checked against two independent references:
 * - direct Bayes on a grid: p(x | y) = p0(x) N(y; A x, Σ_y) / Z, with p0 from the prior's own
 *   p0 evaluator, the likelihood written out here (1 × 1 or 2 × 2 inverse by hand), and Z by
 *   the trapezoid rule. For these smooth, fast-decaying integrands the trapezoid rule is
 *   spectrally accurate (error ~ exp(−2π² s²/h²) for a Gaussian of std s on spacing h: below
 *   1e-300 for s/h ≥ 10, which each grid asserts), and the grids span the posterior mean
 *   ± 12 standard deviations of the posterior mixture (truncated mass < 1e-20), so the grid
 *   densities and moments are exact up to rounding;
 * - the Kalman update of one Gaussian written out with explicit 2 × 2 inverses, and the
 *   marginal likelihoods w_k N(y; A μ_k, A Σ_k Aᵀ + Σ_y) for the weights.
 * Grid tolerance: 1e-10 relative density wherever the density is ≥ 1e-6 of its peak (the
 * oracle's requirement is 1e-6). Both sides are exp of log-densities whose terms reach ~2000
 * (y far in the tails), each rounded to ~ε relative, so ~1e-13 is what an exact
 * implementation shows; 1e-10 keeps a margin of ~100 over the worst case measured (5.7e-13)
 * and still fails any real error in a mean, covariance or weight. Moments: 1e-10 in units of
 * the posterior standard deviations (measured ≤ 4.7e-12, from the cancellation in the
 * closed-form mixture covariance Σ w (Σ + μμᵀ) − m mᵀ with |μ| ≈ 40 in the tail case).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <float.h>
#include <limits.h>
#include <string.h>

#include "testutil.h"
#include "diffsde/gmm.h"

#define LOG_2PI 1.83787706640934548356

/* ---- the priors ---------------------------------------------------------------------- */

/* 1-D: three components with unequal weights and variances. */
static const double W3[3] = {0.5, 0.3, 0.2};
static const double MU1[3] = {-1.2, 0.9, 2.4};
static const double VAR1[3] = {0.5, 1.3, 0.25};

/* 2-D: three components with full covariances. */
static const double MU2[3 * 2] = {-1.3, 0.4, 1.1, 1.6, 0.7, -1.5};
static const double COV2[3 * 4] = {0.6, 0.2, 0.2, 0.4, 0.3, -0.1, -0.1, 0.5,
                                   0.8, 0.3, 0.3, 0.35};

/* The observation operators. */
static const double A_PROJ[2] = {0.8, -0.6};                /* 1 × 2: under-determined */
static const double A_FULL[4] = {1.2, 0.3, -0.4, 0.9};      /* 2 × 2 */
static const double SY_FULL[4] = {0.2, 0.05, 0.05, 0.15};   /* its noise covariance */

typedef struct fixture {
    diffsde_ctx *ctx;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f || diffsde_ctx_new(&f->ctx, NULL) != DIFFSDE_OK)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    diffsde_ctx_free(f->ctx);
    free(f);
    return 0;
}

static diffsde_gmm *make_gmm(diffsde_ctx *ctx, size_t D, size_t K, const double *w,
                             const double *mu, const double *cov)
{
    diffsde_gmm *g = NULL;
    assert_int_equal(diffsde_gmm_new(ctx, D, &g), DIFFSDE_OK);
    for (size_t k = 0; k < K; k++)
        assert_int_equal(diffsde_gmm_add_full(g, w[k], mu + k * D, cov + k * D * D),
                         DIFFSDE_OK);
    assert_int_equal(diffsde_gmm_finalize(g), DIFFSDE_OK);
    return g;
}

static diffsde_gmm *prior_1d(diffsde_ctx *ctx)
{
    return make_gmm(ctx, 1, 3, W3, MU1, VAR1);
}

static diffsde_gmm *prior_2d(diffsde_ctx *ctx)
{
    return make_gmm(ctx, 2, 3, W3, MU2, COV2);
}

/* ---- the hand-written Kalman update (D ≤ 2, m ≤ 2) ----------------------------------- */

/* Inverse of a 1 × 1 or 2 × 2 matrix, written out; returns the determinant. */
static double inv_small(size_t n, const double *M, double *Mi)
{
    if (n == 1) {
        Mi[0] = 1.0 / M[0];
        return M[0];
    }
    double det = M[0] * M[3] - M[1] * M[2];
    Mi[0] = M[3] / det;
    Mi[1] = -M[1] / det;
    Mi[2] = -M[2] / det;
    Mi[3] = M[0] / det;
    return det;
}

typedef struct ref_update {
    double mean[2];
    double cov[4];
    double loglik; /* log N(y; A μ, A Σ Aᵀ + Σ_y) */
} ref_update;

/* S = A Σ Aᵀ + Σ_y, G = Σ Aᵀ S⁻¹, m = μ + G (y − A μ), P = Σ − G A Σ. */
static ref_update hand_update(size_t D, size_t m, const double *mu, const double *Sig,
                              const double *A, const double *y, const double *Sy)
{
    ref_update r;
    double AS[4] = {0}, S[4], Si[4], G[4], res[2];
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < D; j++)
            for (size_t l = 0; l < D; l++)
                AS[i * D + j] += A[i * D + l] * Sig[l * D + j];
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < m; j++) {
            S[i * m + j] = Sy[i * m + j];
            for (size_t l = 0; l < D; l++)
                S[i * m + j] += AS[i * D + l] * A[j * D + l];
        }
    double det = inv_small(m, S, Si);
    for (size_t i = 0; i < D; i++)
        for (size_t j = 0; j < m; j++) {
            G[i * m + j] = 0.0;
            for (size_t l = 0; l < m; l++)
                G[i * m + j] += AS[l * D + i] * Si[l * m + j];
        }
    for (size_t i = 0; i < m; i++) {
        res[i] = y[i];
        for (size_t l = 0; l < D; l++)
            res[i] -= A[i * D + l] * mu[l];
    }
    double q = 0.0;
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < m; j++)
            q += res[i] * Si[i * m + j] * res[j];
    for (size_t i = 0; i < D; i++) {
        r.mean[i] = mu[i];
        for (size_t l = 0; l < m; l++)
            r.mean[i] += G[i * m + l] * res[l];
        for (size_t j = 0; j < D; j++) {
            r.cov[i * D + j] = Sig[i * D + j];
            for (size_t l = 0; l < m; l++)
                r.cov[i * D + j] -= G[i * m + l] * AS[l * D + j];
        }
    }
    r.loglik = -0.5 * (double)m * LOG_2PI - 0.5 * log(det) - 0.5 * q;
    return r;
}

/*
 * Every component of `post` against the hand update of the prior's component k, and the
 * weights against w_k N(y; A μ_k, S_k) normalised by log-sum-exp. Tolerances: rtol on each
 * entry, relative to the largest entry of the matrix (off-diagonals may be ~0).
 */
static void check_components(const diffsde_gmm *prior, const diffsde_gmm *post, size_t m,
                             const double *A, const double *y, const double *Sy, double rtol)
{
    size_t D = diffsde_gmm_dim(prior), K = diffsde_gmm_ncomponents(prior);
    assert_int_equal(diffsde_gmm_dim(post), D);
    assert_int_equal(diffsde_gmm_ncomponents(post), K);
    double lw[8], lmax = -INFINITY;
    ref_update ref[8];
    for (size_t k = 0; k < K; k++) {
        double w, mu[2], Sig[4];
        assert_int_equal(diffsde_gmm_component(prior, k, &w, mu, Sig), DIFFSDE_OK);
        ref[k] = hand_update(D, m, mu, Sig, A, y, Sy);
        lw[k] = log(w) + ref[k].loglik;
        if (lw[k] > lmax)
            lmax = lw[k];
    }
    double s = 0.0;
    for (size_t k = 0; k < K; k++)
        s += exp(lw[k] - lmax);
    for (size_t k = 0; k < K; k++) {
        double w, mean[2], cov[4];
        assert_int_equal(diffsde_gmm_component(post, k, &w, mean, cov), DIFFSDE_OK);
        assert_true(isfinite(w));
        assert_close(w, exp(lw[k] - lmax) / s, rtol, 1e-300);
        double cmax = 0.0, mmax = 0.0;
        for (size_t i = 0; i < D * D; i++)
            cmax = fmax(cmax, fabs(ref[k].cov[i]));
        for (size_t i = 0; i < D; i++)
            mmax = fmax(mmax, fabs(ref[k].mean[i]));
        for (size_t i = 0; i < D; i++)
            assert_close(mean[i], ref[k].mean[i], 0, rtol * mmax);
        for (size_t i = 0; i < D * D; i++)
            assert_close(cov[i], ref[k].cov[i], 0, rtol * cmax);
    }
}

/* ---- direct Bayes on a grid ---------------------------------------------------------- */

/* log N(y; A x, Σ_y), written out (m ≤ 2). */
static double loglik(size_t D, size_t m, const double *A, const double *y, const double *Sy,
                     const double *x)
{
    double Si[4], r[2], q = 0.0;
    double det = inv_small(m, Sy, Si);
    for (size_t i = 0; i < m; i++) {
        r[i] = y[i];
        for (size_t l = 0; l < D; l++)
            r[i] -= A[i * D + l] * x[l];
    }
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < m; j++)
            q += r[i] * Si[i * m + j] * r[j];
    return -0.5 * (double)m * LOG_2PI - 0.5 * log(det) - 0.5 * q;
}

static double *log_density(const diffsde_gmm *g, size_t n, const double *x)
{
    diffsde_gmm_eval *ev = NULL;
    double *lp = malloc(n * sizeof *lp);
    assert_non_null(lp);
    assert_int_equal(diffsde_gmm_eval_new(g, NULL, &ev), DIFFSDE_OK);
    assert_int_equal(diffsde_gmm_evaluate(ev, n, NULL, x, lp, NULL, NULL, NULL), DIFFSDE_OK);
    diffsde_gmm_eval_free(ev);
    return lp;
}

/*
 * Compute the posterior, then compare it with direct Bayes on a grid of npd points per axis
 * spanning the posterior mean ± 12 posterior standard deviations (from the mixture's own
 * moments: the whole posterior, all modes included, lies within). Density: relative error
 * ≤ DENS_RTOL where the density is ≥ 1e-6 of its peak. Moments: mean within MOM_RTOL · sd,
 * covariance within MOM_RTOL · sd_i sd_j. (Tolerances justified in the file comment.)
 */
#define DENS_RTOL 1e-10
#define MOM_RTOL 1e-10

static diffsde_gmm *grid_check(const diffsde_gmm *prior, size_t m, const double *A,
                               const double *y, const double *Sy, size_t npd, const char *label)
{
    size_t D = diffsde_gmm_dim(prior);
    diffsde_gmm *post = NULL;
    assert_int_equal(diffsde_gmm_posterior(prior, m, A, y, Sy, &post), DIFFSDE_OK);
    assert_non_null(post);
    double pm[2], pc[4], lo[2], h[2];
    assert_int_equal(diffsde_gmm_moments(post, NULL, 0.0, pm, pc), DIFFSDE_OK);
    for (size_t j = 0; j < D; j++) {
        double sd = sqrt(pc[j * D + j]);
        lo[j] = pm[j] - 12.0 * sd;
        h[j] = 24.0 * sd / (double)(npd - 1);
    }
    /* the grid resolves every component that matters: its standard deviation along each
     * axis line (the conditional one, 1/√(P⁻¹)_jj) is ≥ 10 h, so the trapezoid rule is exact */
    for (size_t k = 0; k < diffsde_gmm_ncomponents(post); k++) {
        double w, P[4];
        assert_int_equal(diffsde_gmm_component(post, k, &w, NULL, P), DIFFSDE_OK);
        for (size_t j = 0; j < D && w > 1e-20; j++) {
            double csd = D == 1 ? sqrt(P[0]) : sqrt((P[0] * P[3] - P[1] * P[2]) / P[3 - 3 * j]);
            assert_true(csd >= 10.0 * h[j]);
        }
    }
    size_t n = D == 1 ? npd : npd * npd;
    double *x = malloc(n * D * sizeof *x), *tw = malloc(n * sizeof *tw);
    assert_non_null(x);
    assert_non_null(tw);
    for (size_t p = 0; p < n; p++) {
        size_t idx[2] = {p % npd, p / npd};
        tw[p] = 1.0; /* trapezoid weights */
        for (size_t j = 0; j < D; j++) {
            x[p * D + j] = lo[j] + (double)idx[j] * h[j];
            if (idx[j] == 0 || idx[j] == npd - 1)
                tw[p] *= 0.5;
        }
    }
    double *lprior = log_density(prior, n, x), *lpost = log_density(post, n, x);
    /* unnormalised log posterior, its maximum and log Z */
    double umax = -INFINITY;
    for (size_t p = 0; p < n; p++) {
        lprior[p] += loglik(D, m, A, y, Sy, x + p * D);
        assert_true(isfinite(lprior[p]));
        umax = fmax(umax, lprior[p]);
    }
    double zs = 0.0;
    for (size_t p = 0; p < n; p++)
        zs += tw[p] * exp(lprior[p] - umax);
    double logZ = umax + log(zs);
    for (size_t j = 0; j < D; j++)
        logZ += log(h[j]);
    /* densities, and the grid's moments */
    double worst = 0.0, gm[2] = {0, 0}, gc[4] = {0, 0, 0, 0}, mass = 0.0;
    size_t checked = 0;
    for (size_t p = 0; p < n; p++) {
        double lb = lprior[p] - logZ;
        assert_true(isfinite(lpost[p]));
        if (lprior[p] - umax >= log(1e-6)) {
            double rel = fabs(expm1(lpost[p] - lb));
            worst = fmax(worst, rel);
            checked++;
        }
        double pw = tw[p] * exp(lprior[p] - umax);
        mass += pw;
        for (size_t i = 0; i < D; i++)
            gm[i] += pw * x[p * D + i];
    }
    for (size_t i = 0; i < D; i++)
        gm[i] /= mass;
    for (size_t p = 0; p < n; p++) {
        double pw = tw[p] * exp(lprior[p] - umax);
        for (size_t i = 0; i < D; i++)
            for (size_t j = 0; j < D; j++)
                gc[i * D + j] += pw * (x[p * D + i] - gm[i]) * (x[p * D + j] - gm[j]);
    }
    double mom_err = 0.0;
    for (size_t i = 0; i < D; i++) {
        double si = sqrt(pc[i * D + i]);
        mom_err = fmax(mom_err, fabs(gm[i] - pm[i]) / si);
        for (size_t j = 0; j < D; j++)
            mom_err = fmax(mom_err, fabs(gc[i * D + j] / mass - pc[i * D + j]) /
                                        (si * sqrt(pc[j * D + j])));
    }
    print_message("%s: %zu grid points, %zu checked: max relative density error %.3g, "
                  "max moment error %.3g (in posterior sd)\n",
                  label, n, checked, worst, mom_err);
    assert_true(checked >= 100);
    assert_true(worst <= DENS_RTOL);
    assert_true(mom_err <= MOM_RTOL);
    free(lprior);
    free(lpost);
    free(tw);
    free(x);
    return post;
}

/* 1-D, A = 1.7 (informative) and A = 0.6 (weak: the posterior stays multimodal). */
static void test_grid_1d(void **state)
{
    fixture *f = *state;
    diffsde_gmm *prior = prior_1d(f->ctx);
    const double A1[1] = {1.7}, y1[1] = {1.9}, s1[1] = {0.4};
    diffsde_gmm *post = grid_check(prior, 1, A1, y1, s1, 4001, "1-D, A = 1.7");
    check_components(prior, post, 1, A1, y1, s1, 1e-13);
    diffsde_gmm_free(post);
    const double A2[1] = {0.6}, y2[1] = {0.3}, s2[1] = {0.5};
    post = grid_check(prior, 1, A2, y2, s2, 4001, "1-D, A = 0.6");
    check_components(prior, post, 1, A2, y2, s2, 1e-13);
    /* all three components keep a visible weight: the posterior is genuinely a mixture */
    for (size_t k = 0; k < 3; k++) {
        double w;
        assert_int_equal(diffsde_gmm_component(post, k, &w, NULL, NULL), DIFFSDE_OK);
        assert_true(w > 0.05);
    }
    diffsde_gmm_free(post);
    diffsde_gmm_free(prior);
}

/* 2-D with a 1 × 2 projection (the unobserved direction keeps the prior's spread) and 2 × 2. */
static void test_grid_2d(void **state)
{
    fixture *f = *state;
    diffsde_gmm *prior = prior_2d(f->ctx);
    const double y1[1] = {0.37}, s1[1] = {0.25};
    diffsde_gmm *post = grid_check(prior, 1, A_PROJ, y1, s1, 801, "2-D, A 1 x 2");
    check_components(prior, post, 1, A_PROJ, y1, s1, 1e-13);
    diffsde_gmm_free(post);
    const double y2[2] = {0.5, 0.8};
    post = grid_check(prior, 2, A_FULL, y2, SY_FULL, 801, "2-D, A 2 x 2");
    check_components(prior, post, 2, A_FULL, y2, SY_FULL, 1e-13);
    diffsde_gmm_free(post);
    diffsde_gmm_free(prior);
}

/*
 * y far in a tail: one component dominates (the one with the widest predictive
 * distribution), the others' weights underflow (log weights ~ −900 below), and nothing is NaN.
 */
static void test_grid_tail(void **state)
{
    fixture *f = *state;
    diffsde_gmm *prior = prior_1d(f->ctx);
    const double A1[1] = {1.0}, y1[1] = {60.0}, s1[1] = {0.5};
    diffsde_gmm *post = grid_check(prior, 1, A1, y1, s1, 4001, "1-D tail, y = 60");
    check_components(prior, post, 1, A1, y1, s1, 1e-13);
    double w;
    assert_int_equal(diffsde_gmm_component(post, 1, &w, NULL, NULL), DIFFSDE_OK);
    assert_close(w, 1.0, 1e-15, 0);
    for (size_t k = 0; k < 3; k += 2) {
        assert_int_equal(diffsde_gmm_component(post, k, &w, NULL, NULL), DIFFSDE_OK);
        assert_true(w >= 0.0 && w < 1e-300);
    }
    diffsde_gmm_free(post);
    diffsde_gmm_free(prior);

    prior = prior_2d(f->ctx);
    const double y2[2] = {30.0, -25.0};
    post = grid_check(prior, 2, A_FULL, y2, SY_FULL, 801, "2-D tail, y = (30, -25)");
    check_components(prior, post, 2, A_FULL, y2, SY_FULL, 1e-12);
    double wmax = 0.0;
    for (size_t k = 0; k < 3; k++) {
        assert_int_equal(diffsde_gmm_component(post, k, &w, NULL, NULL), DIFFSDE_OK);
        assert_true(isfinite(w));
        wmax = fmax(wmax, w);
    }
    assert_close(wmax, 1.0, 1e-12, 0);
    diffsde_gmm_free(post);
    diffsde_gmm_free(prior);
}

/* ---- single Gaussian: the Kalman update written out ---------------------------------- */

static void test_single_gaussian(void **state)
{
    fixture *f = *state;
    const double w[1] = {1.0}, mu[2] = {0.731, -1.385}, Sig[4] = {1.5, 0.4, 0.4, 0.6};
    diffsde_gmm *prior = make_gmm(f->ctx, 2, 1, w, mu, Sig);

    /* 2 × 2: S = A Σ Aᵀ + Σ_y with every entry written out */
    const double y[2] = {2.385, -0.42}, Sy[4] = {0.3, -0.07, -0.07, 0.45};
    const double *A = A_FULL;
    double as11 = A[0] * Sig[0] + A[1] * Sig[2], as12 = A[0] * Sig[1] + A[1] * Sig[3];
    double as21 = A[2] * Sig[0] + A[3] * Sig[2], as22 = A[2] * Sig[1] + A[3] * Sig[3];
    double s11 = as11 * A[0] + as12 * A[1] + Sy[0], s12 = as11 * A[2] + as12 * A[3] + Sy[1];
    double s21 = as21 * A[0] + as22 * A[1] + Sy[2], s22 = as21 * A[2] + as22 * A[3] + Sy[3];
    double det = s11 * s22 - s12 * s21;
    double i11 = s22 / det, i12 = -s12 / det, i21 = -s21 / det, i22 = s11 / det;
    /* G = (A Σ)ᵀ S⁻¹ */
    double g11 = as11 * i11 + as21 * i21, g12 = as11 * i12 + as21 * i22;
    double g21 = as12 * i11 + as22 * i21, g22 = as12 * i12 + as22 * i22;
    double r1 = y[0] - (A[0] * mu[0] + A[1] * mu[1]), r2 = y[1] - (A[2] * mu[0] + A[3] * mu[1]);
    double m1 = mu[0] + g11 * r1 + g12 * r2, m2 = mu[1] + g21 * r1 + g22 * r2;
    double p11 = Sig[0] - (g11 * as11 + g12 * as21), p12 = Sig[1] - (g11 * as12 + g12 * as22);
    double p21 = Sig[2] - (g21 * as11 + g22 * as21), p22 = Sig[3] - (g21 * as12 + g22 * as22);

    diffsde_gmm *post = NULL;
    assert_int_equal(diffsde_gmm_posterior(prior, 2, A, y, Sy, &post), DIFFSDE_OK);
    assert_int_equal(diffsde_gmm_ncomponents(post), 1);
    double wp, mp[2], cp[4];
    assert_int_equal(diffsde_gmm_component(post, 0, &wp, mp, cp), DIFFSDE_OK);
    assert_close(wp, 1.0, 1e-15, 0);
    assert_close(mp[0], m1, 1e-13, 0);
    assert_close(mp[1], m2, 1e-13, 0);
    assert_close(cp[0], p11, 1e-13, 0);
    assert_close(cp[1], p12, 1e-13, 0);
    assert_close(cp[2], p21, 1e-13, 0);
    assert_close(cp[3], p22, 1e-13, 0);
    diffsde_gmm_free(post);

    /* 1 × 2: S is a scalar, G = Σ aᵀ / S */
    const double y1[1] = {0.93}, sy1[1] = {0.21};
    const double *a = A_PROJ;
    double sa1 = Sig[0] * a[0] + Sig[1] * a[1], sa2 = Sig[2] * a[0] + Sig[3] * a[1];
    double S = a[0] * sa1 + a[1] * sa2 + sy1[0];
    double r = y1[0] - (a[0] * mu[0] + a[1] * mu[1]);
    assert_int_equal(diffsde_gmm_posterior(prior, 1, a, y1, sy1, &post), DIFFSDE_OK);
    assert_int_equal(diffsde_gmm_component(post, 0, &wp, mp, cp), DIFFSDE_OK);
    assert_close(wp, 1.0, 1e-15, 0);
    assert_close(mp[0], mu[0] + sa1 * r / S, 1e-13, 0);
    assert_close(mp[1], mu[1] + sa2 * r / S, 1e-13, 0);
    assert_close(cp[0], Sig[0] - sa1 * sa1 / S, 1e-13, 0);
    assert_close(cp[1], Sig[1] - sa1 * sa2 / S, 1e-13, 0);
    assert_close(cp[2], Sig[2] - sa2 * sa1 / S, 1e-13, 0);
    assert_close(cp[3], Sig[3] - sa2 * sa2 / S, 1e-13, 0);
    diffsde_gmm_free(post);
    diffsde_gmm_free(prior);
}

/* ---- Σ_y → 0 with A = I: the posterior collapses onto y and stays SPD ----------------- */

static void test_tiny_noise(void **state)
{
    fixture *f = *state;
    diffsde_gmm *prior = prior_2d(f->ctx);
    const double I2[4] = {1, 0, 0, 1}, y[2] = {0.3, -0.7};
    const double scales[2] = {1e-12, 1e-20};
    for (int c = 0; c < 2; c++) {
        double s = scales[c];
        const double Sy[4] = {s, 0, 0, s};
        diffsde_gmm *post = NULL;
        assert_int_equal(diffsde_gmm_posterior(prior, 2, I2, y, Sy, &post), DIFFSDE_OK);
        assert_int_equal(diffsde_gmm_ncomponents(post), 3);
        double werr = 0.0, merr = 0.0, perr = 0.0, lw[3], lmax = -INFINITY;
        for (size_t k = 0; k < 3; k++) {
            /* reference in information form, stable as s → 0: P = (Σ⁻¹ + I/s)⁻¹,
             * m = P (Σ⁻¹ μ + y/s); weight ∝ w_k N(y; μ_k, Σ_k + s I) */
            const double *mu = MU2 + 2 * k, *Sig = COV2 + 4 * k;
            double Si[4], J[4], P[4];
            inv_small(2, Sig, Si);
            J[0] = Si[0] + 1.0 / s, J[1] = Si[1], J[2] = Si[2], J[3] = Si[3] + 1.0 / s;
            inv_small(2, J, P);
            double b0 = Si[0] * mu[0] + Si[1] * mu[1] + y[0] / s;
            double b1 = Si[2] * mu[0] + Si[3] * mu[1] + y[1] / s;
            double mref[2] = {P[0] * b0 + P[1] * b1, P[2] * b0 + P[3] * b1};
            const double C[4] = {Sig[0] + s, Sig[1], Sig[2], Sig[3] + s};
            lw[k] = log(W3[k]) + loglik(2, 2, I2, y, C, mu);
            lmax = fmax(lmax, lw[k]);
            double w, m[2], cov[4];
            assert_int_equal(diffsde_gmm_component(post, k, &w, m, cov), DIFFSDE_OK);
            for (int i = 0; i < 2; i++) {
                merr = fmax(merr, fabs(m[i] - mref[i]));
                /* collapsed onto y: |m − y| = s |Σ⁻¹(y − μ)| + rounding */
                assert_close(m[i], y[i], 0, 100 * s + 4 * DBL_EPSILON);
            }
            for (int i = 0; i < 4; i++)
                perr = fmax(perr, fabs(cov[i] - P[i]) / s);
            assert_true(cov[0] > 0 && cov[3] > 0 && cov[0] * cov[3] - cov[1] * cov[2] > 0);
        }
        double z = 0.0;
        for (size_t k = 0; k < 3; k++)
            z += exp(lw[k] - lmax);
        for (size_t k = 0; k < 3; k++) {
            double w;
            assert_int_equal(diffsde_gmm_component(post, k, &w, NULL, NULL), DIFFSDE_OK);
            werr = fmax(werr, fabs(w - exp(lw[k] - lmax) / z));
        }
        print_message("Sigma_y = %g I: mean error %.3g, cov error %.3g (in units of s), "
                      "weight error %.3g\n", s, merr, perr, werr);
        assert_true(merr <= 1e-15);
        assert_true(perr <= 1e-9);
        assert_true(werr <= 1e-13);
        /* the collapsed posterior evaluates without trouble at y */
        diffsde_gmm_eval *ev = NULL;
        double lp;
        assert_int_equal(diffsde_gmm_eval_new(post, NULL, &ev), DIFFSDE_OK);
        assert_int_equal(diffsde_gmm_evaluate(ev, 1, NULL, y, &lp, NULL, NULL, NULL),
                         DIFFSDE_OK);
        assert_true(isfinite(lp) && lp > 0.0);
        diffsde_gmm_eval_free(ev);
        diffsde_gmm_free(post);
    }

    /*
     * A rotated projection with Σ_y = 1e-30: P_k has eigenvalues ~1e-30 and ~0.5, a condition
     * number beyond 1/ε that no rounded symmetric matrix need keep positive definite. The
     * outcome may depend on the BLAS kernels' rounding, so only the contract is checked: a
     * finalised posterior, or EPARAM naming noise_cov with no result — never NaN.
     */
    const double y1[1] = {0.37}, s1[1] = {1e-30};
    diffsde_gmm *post = (diffsde_gmm *)f->ctx;
    int st = diffsde_gmm_posterior(prior, 1, A_PROJ, y1, s1, &post);
    if (st == DIFFSDE_OK) {
        for (size_t k = 0; k < 3; k++) {
            double w, m[2], cov[4];
            assert_int_equal(diffsde_gmm_component(post, k, &w, m, cov), DIFFSDE_OK);
            assert_true(isfinite(w) && isfinite(m[0]) && isfinite(m[1]));
            assert_true(cov[0] > 0 && cov[3] > 0);
        }
        diffsde_gmm_free(post);
    } else {
        assert_int_equal(st, DIFFSDE_EPARAM);
        assert_null(post);
        assert_non_null(strstr(diffsde_errmsg(f->ctx), "noise_cov"));
    }
    diffsde_gmm_free(prior);
}

/*
 * Over-determined (m = 3 > D = 2) and independent of every formula above: with Σ_y block
 * diagonal, observing (y₁, y₂) at once equals observing y₁ (2 × 2) and then y₂ (1 × 2) with the
 * first posterior as the prior — component by component, weights included (Bayes is
 * associative). Both routes round differently, so they agree to ~1e-14, not bit for bit.
 */
static void test_sequential_equals_joint(void **state)
{
    fixture *f = *state;
    diffsde_gmm *prior = prior_2d(f->ctx);
    const double y[3] = {0.5, 0.8, -0.45};
    const double A3[6] = {A_FULL[0], A_FULL[1], A_FULL[2], A_FULL[3], A_PROJ[0], A_PROJ[1]};
    const double S3[9] = {SY_FULL[0], SY_FULL[1], 0, SY_FULL[2], SY_FULL[3], 0, 0, 0, 0.3};
    const double s1[1] = {0.3};
    diffsde_gmm *joint = NULL, *step1 = NULL, *step2 = NULL;
    assert_int_equal(diffsde_gmm_posterior(prior, 3, A3, y, S3, &joint), DIFFSDE_OK);
    assert_int_equal(diffsde_gmm_posterior(prior, 2, A_FULL, y, SY_FULL, &step1), DIFFSDE_OK);
    assert_int_equal(diffsde_gmm_posterior(step1, 1, A_PROJ, y + 2, s1, &step2), DIFFSDE_OK);
    assert_int_equal(diffsde_gmm_ncomponents(joint), 3);
    double err = 0.0;
    for (size_t k = 0; k < 3; k++) {
        double wj, ws, mj[2], ms[2], cj[4], cs[4];
        assert_int_equal(diffsde_gmm_component(joint, k, &wj, mj, cj), DIFFSDE_OK);
        assert_int_equal(diffsde_gmm_component(step2, k, &ws, ms, cs), DIFFSDE_OK);
        err = fmax(err, fabs(wj - ws));
        for (int i = 0; i < 2; i++)
            err = fmax(err, fabs(mj[i] - ms[i]));
        for (int i = 0; i < 4; i++)
            err = fmax(err, fabs(cj[i] - cs[i]));
    }
    print_message("joint (m = 3) vs sequential (2 + 1): max difference %.3g\n", err);
    assert_true(err <= 1e-13);
    diffsde_gmm_free(joint);
    diffsde_gmm_free(step1);
    diffsde_gmm_free(step2);
    diffsde_gmm_free(prior);
}

/* ---- errors ---------------------------------------------------------------------------- */

/* `post` is read through its address: the call's argument order is unspecified. */
static void expect_fail(diffsde_ctx *ctx, int status, int expected, diffsde_gmm *const *post,
                        const char *needle)
{
    assert_int_equal(status, expected);
    assert_null(*post);
    const char *msg = diffsde_errmsg(ctx);
    if (!strstr(msg, "diffsde_gmm_posterior") || !strstr(msg, needle)) {
        print_error("message \"%s\" lacks \"%s\"\n", msg, needle);
        fail();
    }
}

static void test_errors(void **state)
{
    fixture *f = *state;
    diffsde_ctx *ctx = f->ctx;
    diffsde_gmm *prior = prior_2d(ctx), *post = (diffsde_gmm *)ctx;
    const double y[2] = {0.5, 0.8};

    assert_int_equal(diffsde_gmm_posterior(NULL, 2, A_FULL, y, SY_FULL, &post),
                     DIFFSDE_ENULL);
    assert_null(post);
    assert_int_equal(diffsde_gmm_posterior(prior, 2, A_FULL, y, SY_FULL, NULL), DIFFSDE_ENULL);
    post = (diffsde_gmm *)ctx;
    expect_fail(ctx, diffsde_gmm_posterior(prior, 2, NULL, y, SY_FULL, &post), DIFFSDE_ENULL,
                &post, "A is NULL");
    expect_fail(ctx, diffsde_gmm_posterior(prior, 2, A_FULL, NULL, SY_FULL, &post),
                DIFFSDE_ENULL, &post, "y is NULL");
    expect_fail(ctx, diffsde_gmm_posterior(prior, 2, A_FULL, y, NULL, &post), DIFFSDE_ENULL,
                &post, "noise_cov is NULL");

    /* sizes: m = 0; m beyond the BLAS index range; scratch overflow (A etc. are not read) */
    expect_fail(ctx, diffsde_gmm_posterior(prior, 0, A_FULL, y, SY_FULL, &post), DIFFSDE_ESIZE,
                &post, "m");
    expect_fail(ctx, diffsde_gmm_posterior(prior, (size_t)INT_MAX + 1, A_FULL, y, SY_FULL, &post),
                DIFFSDE_ESIZE, &post, "2147483648");
    expect_fail(ctx, diffsde_gmm_posterior(prior, (size_t)INT_MAX, A_FULL, y, SY_FULL, &post),
                DIFFSDE_ESIZE, &post, "overflows");

    /* non-finite inputs, each named with its index */
    double A[4], yb[2], S[4];
    memcpy(A, A_FULL, sizeof A);
    A[2] = INFINITY;
    expect_fail(ctx, diffsde_gmm_posterior(prior, 2, A, y, SY_FULL, &post), DIFFSDE_EPARAM,
                &post, "A[1][0]");
    memcpy(yb, y, sizeof yb);
    yb[1] = NAN;
    expect_fail(ctx, diffsde_gmm_posterior(prior, 2, A_FULL, yb, SY_FULL, &post),
                DIFFSDE_EPARAM, &post, "y[1]");
    memcpy(S, SY_FULL, sizeof S);
    S[3] = NAN;
    expect_fail(ctx, diffsde_gmm_posterior(prior, 2, A_FULL, y, S, &post), DIFFSDE_EPARAM, &post,
                "noise_cov[1][1]");

    /* noise_cov not symmetric beyond 1e-12 · max|C| (but within it: accepted) */
    memcpy(S, SY_FULL, sizeof S);
    S[1] += 1e-9;
    expect_fail(ctx, diffsde_gmm_posterior(prior, 2, A_FULL, y, S, &post), DIFFSDE_EPARAM, &post,
                "not symmetric");
    S[1] = SY_FULL[1] + 1e-14;
    assert_int_equal(diffsde_gmm_posterior(prior, 2, A_FULL, y, S, &post), DIFFSDE_OK);
    diffsde_gmm_free(post);
    post = (diffsde_gmm *)ctx;

    /* noise_cov symmetric but indefinite; zero */
    const double Sind[4] = {1.0, 2.0, 2.0, 1.0}, Szero[4] = {0, 0, 0, 0};
    expect_fail(ctx, diffsde_gmm_posterior(prior, 2, A_FULL, y, Sind, &post), DIFFSDE_EPARAM,
                &post, "noise_cov is not positive definite");
    expect_fail(ctx, diffsde_gmm_posterior(prior, 2, A_FULL, y, Szero, &post), DIFFSDE_EPARAM,
                &post, "noise_cov is not positive definite");

    /* Σ_y SPD but negligible beside a singular A Σ Aᵀ: S is not numerically SPD */
    const double Arank1[4] = {1.0, 1.0, 1.0, 1.0}, Stiny[4] = {1e-300, 0, 0, 1e-300};
    expect_fail(ctx, diffsde_gmm_posterior(prior, 2, Arank1, y, Stiny, &post), DIFFSDE_EPARAM,
                &post, "noise_cov");

    /* y so far out that the Mahalanobis distance overflows */
    const double yfar[2] = {1e300, -1e300};
    expect_fail(ctx, diffsde_gmm_posterior(prior, 2, A_FULL, yfar, SY_FULL, &post),
                DIFFSDE_EPARAM, &post, "y");

    /* an unfinalised prior */
    diffsde_gmm *open = NULL;
    assert_int_equal(diffsde_gmm_new(ctx, 2, &open), DIFFSDE_OK);
    assert_int_equal(diffsde_gmm_add_full(open, 1.0, MU2, COV2), DIFFSDE_OK);
    expect_fail(ctx, diffsde_gmm_posterior(open, 2, A_FULL, y, SY_FULL, &post), DIFFSDE_ESTATE,
                &post, "not finalised");
    diffsde_gmm_free(open);
    diffsde_gmm_free(prior);
}

/* A failing allocator at every k: ENOMEM or success, nothing leaks, the prior is untouched. */
static void test_alloc_failures(void **state)
{
    (void)state;
    int succeeded = 0;
    long failures = 0;
    for (long k = 1; !succeeded && k < 200; k++) {
        tu_alloc a = {0, 0, 0};
        diffsde_allocator al = tu_allocator(&a);
        diffsde_ctx *ctx = NULL;
        assert_int_equal(diffsde_ctx_new(&ctx, &al), DIFFSDE_OK);
        diffsde_gmm *prior = prior_2d(ctx), *post = (diffsde_gmm *)ctx;
        long live = a.live;
        a.fail_at = a.calls + k;
        const double y[2] = {0.5, 0.8};
        int st = diffsde_gmm_posterior(prior, 2, A_FULL, y, SY_FULL, &post);
        if (st == DIFFSDE_OK) {
            succeeded = 1;
            check_components(prior, post, 2, A_FULL, y, SY_FULL, 1e-13);
            diffsde_gmm_free(post);
        } else {
            assert_int_equal(st, DIFFSDE_ENOMEM);
            assert_null(post);
            assert_non_null(strstr(diffsde_errmsg(ctx), "diffsde_gmm_posterior"));
            failures++;
        }
        assert_int_equal(a.live, live);
        diffsde_gmm_free(prior);
        diffsde_ctx_free(ctx);
        assert_int_equal(a.live, 0);
    }
    assert_true(succeeded);
    /* the scratch, the new model, its component arrays, finalisation: every one was failed */
    print_message("allocation failures injected: %ld\n", failures);
    assert_true(failures >= 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grid_1d),
        cmocka_unit_test(test_grid_2d),
        cmocka_unit_test(test_grid_tail),
        cmocka_unit_test(test_single_gaussian),
        cmocka_unit_test(test_tiny_noise),
        cmocka_unit_test(test_sequential_equals_joint),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_alloc_failures),
    };
    return cmocka_run_group_tests_name("posterior", tests, setup, teardown);
}
