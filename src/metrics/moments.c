/*
 * Moment errors: the sample mean and covariance against the closed forms of p_t, each with
 * the size it has for exact samples (so that the user can read it), and a χ² test of the mean.
 */
#include <gsl/gsl_cdf.h>
#include <lapacke.h>
#include <string.h>

#include "metrics/metrics_impl.h"

int diffsde_i_metrics_moments(const diffsde_i_metrics_call *c, const diffsde_gmm *gmm,
                              const diffsde_sde *sde, double t, size_t n, const double *x,
                              diffsde_moment_errors *out)
{
    diffsde_ctx *ctx = c->ctx;
    const char *fn = c->fn;
    size_t d = diffsde_gmm_dim(gmm), dd, total;
    if (diffsde_i_mul_size(d, d, &dd) != 0 || diffsde_i_mul_size(dd + 1, 4, &total) != 0)
        return diffsde_i_fail(ctx, DIFFSDE_ESIZE, "%s: d*d overflows size_t (d = %zu)", fn, d);
    total += 3 * d; /* cannot overflow: 4(d² + 1) > 3d */
    double *buf = diffsde_i_calloc(ctx, total, sizeof(double));
    if (!buf)
        return diffsde_i_fail(ctx, DIFFSDE_ENOMEM,
                              "%s: cannot allocate the moment workspace (%zu doubles)", fn, total);
    double *m = buf, *mh = m + d, *r = mh + d, *C = r + d, *Ch = C + dd, *V = Ch + dd, *L = V + dd;
    int st = diffsde_gmm_moments(gmm, sde, sde ? t : 0.0, m, C);
    if (st != DIFFSDE_OK) {
        st = diffsde_i_metrics_restate(c, st, "diffsde_gmm_moments");
        goto done;
    }

    /* Sample mean (two passes: the sum, then the mean residual). */
    const double nn = (double)n;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++)
            mh[j] += x[i * d + j];
    for (size_t j = 0; j < d; j++)
        mh[j] /= nn;
    for (size_t j = 0; j < d; j++) {
        double corr = 0;
        for (size_t i = 0; i < n; i++)
            corr += x[i * d + j] - mh[j];
        mh[j] += corr / nn;
    }
    /* Products y_ij = (x_i − m̂_i)(x_j − m̂_j) (lower triangle): their mean, then their
     * sample variance. Ĉ = Σ y / (n − 1). */
    for (size_t s = 0; s < n; s++) {
        const double *xs = x + s * d;
        for (size_t i = 0; i < d; i++) {
            double ri = xs[i] - mh[i];
            for (size_t j = 0; j <= i; j++)
                Ch[i * d + j] += ri * (xs[j] - mh[j]);
        }
    }
    for (size_t i = 0; i < d; i++)
        for (size_t j = 0; j <= i; j++)
            Ch[i * d + j] /= nn; /* the mean product ȳ for now */
    for (size_t s = 0; s < n; s++) {
        const double *xs = x + s * d;
        for (size_t i = 0; i < d; i++) {
            double ri = xs[i] - mh[i];
            for (size_t j = 0; j <= i; j++) {
                double e = ri * (xs[j] - mh[j]) - Ch[i * d + j];
                V[i * d + j] += e * e;
            }
        }
    }
    double err2 = 0, cnorm2 = 0, var2 = 0, trc = 0;
    for (size_t i = 0; i < d; i++) {
        trc += C[i * d + i];
        for (size_t j = 0; j <= i; j++) {
            double mult = i == j ? 1.0 : 2.0; /* both (i, j) and (j, i) */
            double chij = Ch[i * d + j] * nn / (nn - 1.0);
            double e = chij - C[i * d + j];
            err2 += mult * e * e;
            cnorm2 += mult * C[i * d + j] * C[i * d + j];
            var2 += mult * V[i * d + j] / (nn - 1.0) / nn;
        }
    }
    double merr2 = 0;
    for (size_t j = 0; j < d; j++) {
        r[j] = mh[j] - m[j];
        merr2 += r[j] * r[j];
    }
    out->mean_err = sqrt(merr2);
    out->mean_err_rms = sqrt(trc / nn);
    out->cov_rel_err = sqrt(err2 / cnorm2);
    out->cov_rel_err_rms = sqrt(var2 / cnorm2);

    /* χ² of the mean: n ‖L⁻¹ (m̂ − m)‖² with C = L Lᵀ. */
    memcpy(L, C, dd * sizeof(double));
    lapack_int info = LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'L', (lapack_int)d, L, (lapack_int)d);
    if (info != 0) {
        st = diffsde_i_fail(ctx, DIFFSDE_ECONVERGENCE,
                            "%s: the exact covariance of p_t (t = %.17g) is not numerically "
                            "positive definite (dpotrf info = %d)",
                            fn, t, (int)info);
        goto done;
    }
    double q = 0;
    for (size_t j = 0; j < d; j++) {
        double v = r[j];
        for (size_t l = 0; l < j; l++)
            v -= L[j * d + l] * r[l];
        r[j] = v / L[j * d + j];
        q += r[j] * r[j];
    }
    out->mean_chi2 = nn * q;
    out->mean_pvalue = gsl_cdf_chisq_Q(out->mean_chi2, (double)d);
    st = DIFFSDE_OK;
done:
    diffsde_i_free(ctx, buf);
    return st;
}

int diffsde_metrics_moments(diffsde_ctx *ctx, const diffsde_gmm *gmm, const diffsde_sde *sde,
                            double t, size_t n, const double *x, diffsde_moment_errors *out)
{
    static const char fn[] = "diffsde_metrics_moments";
    if (!ctx)
        return DIFFSDE_ENULL;
    diffsde_i_metrics_call call;
    diffsde_i_metrics_call_init(&call, ctx, fn, gmm, sde);
    const diffsde_i_metrics_call *c = &call;
    int st = diffsde_i_metrics_check_gmm(c, gmm);
    if (st != DIFFSDE_OK)
        return st;
    if (!x || !out)
        return diffsde_i_fail(ctx, DIFFSDE_ENULL, "%s: %s is NULL", fn, !x ? "x" : "out");
    size_t d = diffsde_gmm_dim(gmm), nd;
    st = diffsde_i_metrics_size(c, "x", n, 2, d, &nd);
    if (st == DIFFSDE_OK)
        st = diffsde_i_metrics_finite(c, "x", n, d, x);
    if (st == DIFFSDE_OK)
        st = diffsde_i_metrics_moments(c, gmm, sde, t, n, x, out);
    return st;
}
