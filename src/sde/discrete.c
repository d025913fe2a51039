/*
 * The discretisations of score_sde on N levels: the DDPM β table (VP), the NCSN σ table (VE)
 * and the generic Euler discretisation (sub-VP, user SDEs).
 *
 * Tables follow NumPy's linspace exactly: element i is start + i·step with
 * step = (stop − start)/(N − 1), and the last element is exactly stop. The level of a time t is
 * j = ⌊t (N − 1) / T⌋ evaluated in double and clamped to [0, N − 1]. Every entry is computed
 * on demand by the same expression as the table, so discretize() and discrete_table() agree
 * bit for bit and neither allocates.
 */
#include <math.h>

#include "sde/sde_impl.h"

/* NumPy's linspace(start, stop, N)[i], N ≥ 2. */
static double linspace_at(double start, double stop, size_t N, size_t i)
{
    if (i == N - 1)
        return stop;
    double step = (stop - start) / (double)(N - 1);
    return (double)i * step + start;
}

/* DDPM b_i = linspace(βmin/N, βmax/N, N)[i]. */
static double ddpm_beta(const diffsde_sde *sde, size_t N, size_t i)
{
    return linspace_at(sde->beta_min / (double)N, sde->beta_max / (double)N, N, i);
}

/* NCSN σ_i = exp(linspace(log σmin, log σmax, N)[i]). */
static double ncsn_sigma(const diffsde_sde *sde, size_t N, size_t i)
{
    return exp(linspace_at(log(sde->sigma_min), log(sde->sigma_max), N, i));
}

/* The DDPM table is valid only while its largest entry βmax/N is < 1. */
static int check_ddpm(const diffsde_sde *sde, size_t N, const char *fn)
{
    double top = sde->beta_max / (double)N;
    if (!(top < 1.0))
        return diffsde_i_fail(sde->ctx, DIFFSDE_EPARAM,
                              "%s: the DDPM table needs N > beta_max, got N = %zu with beta_max "
                              "= %g (beta_max/N = %g >= 1)",
                              fn, N, sde->beta_max, top);
    return DIFFSDE_OK;
}

int diffsde_sde_discretize(const diffsde_sde *sde, size_t N, double t, diffsde_sde_discrete *out)
{
    static const char fn[] = "diffsde_sde_discretize";
    if (!sde)
        return DIFFSDE_ENULL;
    if (!out)
        return diffsde_i_fail(sde->ctx, DIFFSDE_ENULL, "%s: out is NULL", fn);
    if (N < 2)
        return diffsde_i_fail(sde->ctx, DIFFSDE_ESIZE, "%s: N (%zu) must be >= 2", fn, N);
    if (isnan(t))
        return diffsde_i_fail(sde->ctx, DIFFSDE_EDOM, "%s: t is NaN", fn);
    if (!(t >= 0.0 && t <= sde->T))
        return diffsde_i_fail(sde->ctx, DIFFSDE_EDOM, "%s: t (%.17g) is outside [0, %.17g]", fn,
                              t, sde->T);

    double x = floor(t * (double)(N - 1) / sde->T);
    size_t j = x <= 0.0 ? 0 : x >= (double)(N - 1) ? N - 1 : (size_t)x;
    diffsde_sde_discrete d;
    d.index = j;

    if (sde->kind == DIFFSDE_SDE_VE) {
        double s = ncsn_sigma(sde, N, j);
        double sp = j > 0 ? ncsn_sigma(sde, N, j - 1) : 0.0;
        d.f_coef = 0.0;
        d.G = sqrt(s * s - sp * sp);
    } else if (sde->kind == DIFFSDE_SDE_VP) {
        int st = check_ddpm(sde, N, fn);
        if (st != DIFFSDE_OK)
            return st;
        double b = ddpm_beta(sde, N, j);
        /* √(1 − b) − 1 without cancellation */
        d.f_coef = -b / (1.0 + sqrt(1.0 - b));
        d.G = sqrt(b);
    } else {
        /* generic Euler with dt = T/N: f_d = f dt, G = g √dt */
        diffsde_sde_coefs c;
        int st = diffsde_i_sde_eval(sde, t, &c, fn);
        if (st != DIFFSDE_OK)
            return st;
        double dt = sde->T / (double)N;
        d.f_coef = c.f * dt;
        d.G = c.g * sqrt(dt);
    }
    *out = d;
    return DIFFSDE_OK;
}

int diffsde_sde_discrete_table(const diffsde_sde *sde, size_t N, double *table)
{
    static const char fn[] = "diffsde_sde_discrete_table";
    if (!sde)
        return DIFFSDE_ENULL;
    if (!table)
        return diffsde_i_fail(sde->ctx, DIFFSDE_ENULL, "%s: table is NULL", fn);
    if (N < 2)
        return diffsde_i_fail(sde->ctx, DIFFSDE_ESIZE, "%s: N (%zu) must be >= 2", fn, N);
    if (sde->kind == DIFFSDE_SDE_USER)
        return diffsde_i_fail(sde->ctx, DIFFSDE_EUNSUPPORTED,
                              "%s: a user SDE has no discrete table", fn);
    if (sde->kind == DIFFSDE_SDE_VE) {
        for (size_t i = 0; i < N; i++)
            table[i] = ncsn_sigma(sde, N, i);
        return DIFFSDE_OK;
    }
    int st = check_ddpm(sde, N, fn);
    if (st != DIFFSDE_OK)
        return st;
    for (size_t i = 0; i < N; i++)
        table[i] = ddpm_beta(sde, N, i);
    return DIFFSDE_OK;
}
