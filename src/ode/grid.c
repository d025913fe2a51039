/*
 * Time grids of the fixed-step and few-step integrators: uniform in t, uniform in
 * λ = log(α²/σ²), and EDM's Karras grid, uniform in ς^{1/ρ} with ς = σ/α = exp(−λ/2).
 *
 * The last two are built in λ and mapped back to t by the SDE's inverse of λ, which is the
 * accurate direction (closed forms for the built-in kinds). The Karras nodes are written as
 *   λ_i = λ_s − 2ρ log1p((i/N) expm1((λ_s − λ_e)/(2ρ))),
 * the same as ς_i^{1/ρ} = ς_s^{1/ρ} + (i/N)(ς_e^{1/ρ} − ς_s^{1/ρ}) divided through by ς_s^{1/ρ},
 * so that neither ς^{1/ρ} itself (which under- or overflows for extreme user SDEs) nor a
 * difference of nearly equal powers is ever formed.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "ode/ode_impl.h"

static const char *const grid_names[] = {
    [DIFFSDE_GRID_DEFAULT] = "default",
    [DIFFSDE_GRID_UNIFORM] = "uniform",
    [DIFFSDE_GRID_LOGSNR] = "logsnr",
    [DIFFSDE_GRID_KARRAS] = "karras",
};

#define NGRIDS (sizeof grid_names / sizeof grid_names[0])

const char *diffsde_time_grid_name(diffsde_time_grid g)
{
    if ((unsigned)g >= NGRIDS)
        return "";
    return grid_names[g];
}

int diffsde_time_grid_from_name(const char *name, diffsde_time_grid *g)
{
    if (!name || !g)
        return DIFFSDE_ENULL;
    for (size_t k = 0; k < NGRIDS; k++) {
        if (strcmp(name, grid_names[k]) == 0) {
            *g = (diffsde_time_grid)k;
            return DIFFSDE_OK;
        }
    }
    return DIFFSDE_EPARAM;
}

/* λ at t, restating an SDE failure (its message is on the same context) with our name. */
static int lambda_at(const diffsde_sde *sde, diffsde_ctx *ctx, const char *fn, double t,
                     double *lambda)
{
    int st = diffsde_sde_log_snr(sde, t, lambda);
    if (st != DIFFSDE_OK)
        return diffsde_i_fail_prefix(ctx, st, "%s: log-SNR at t=%.17g", fn, t);
    if (!isfinite(*lambda))
        return diffsde_i_fail(ctx, DIFFSDE_EDOM, "%s: log-SNR at t=%.17g is not finite (%g)", fn,
                              t, *lambda);
    return DIFFSDE_OK;
}

/* The interior nodes through their λ values, each clamped to the closed interval between
 * the end values so that rounding cannot leave the inverse's domain. */
static int from_lambda(const diffsde_sde *sde, diffsde_ctx *ctx, const char *fn,
                       diffsde_time_grid grid, double rho, double ls, double le, size_t N,
                       double *times)
{
    double lo = fmin(ls, le), hi = fmax(ls, le);
    double karras_span = grid == DIFFSDE_GRID_KARRAS ? expm1((ls - le) / (2.0 * rho)) : 0.0;
    if (grid == DIFFSDE_GRID_KARRAS && !isfinite(karras_span))
        return diffsde_i_fail(ctx, DIFFSDE_EDOM,
                              "%s: Karras grid with rho=%g over log-SNR [%g, %g] overflows "
                              "(sigma/alpha spans too many orders of magnitude)",
                              fn, rho, lo, hi);
    for (size_t i = 1; i < N; i++) {
        double frac = (double)i / (double)N, l;
        if (grid == DIFFSDE_GRID_KARRAS)
            l = ls - 2.0 * rho * log1p(frac * karras_span);
        else
            l = ls + frac * (le - ls);
        l = fmin(fmax(l, lo), hi);
        int st = diffsde_sde_t_from_log_snr(sde, l, &times[i]);
        if (st != DIFFSDE_OK)
            return diffsde_i_fail_prefix(ctx, st, "%s: %s grid node %zu of %zu (log-SNR %.17g)",
                                         fn, grid_names[grid], i, N, l);
    }
    return DIFFSDE_OK;
}

int diffsde_time_grid_make(const diffsde_sde *sde, diffsde_time_grid grid, double rho,
                           double start, double end, size_t N, double *times)
{
    static const char fn[] = "diffsde_time_grid_make";
    if (!sde)
        return DIFFSDE_ENULL;
    diffsde_ctx *ctx = diffsde_i_sde_ctx(sde);
    if (!times)
        return diffsde_i_fail(ctx, DIFFSDE_ENULL, "%s: times is NULL", fn);
    if ((unsigned)grid >= NGRIDS)
        return diffsde_i_fail(ctx, DIFFSDE_EPARAM, "%s: invalid grid %d", fn, (int)grid);
    if (grid == DIFFSDE_GRID_DEFAULT)
        grid = DIFFSDE_GRID_UNIFORM;
    /* rho only matters to the Karras grid; other grids accept any value, as the options do
     * not make the caller invent one. */
    if (grid == DIFFSDE_GRID_KARRAS && !(rho > 0.0 && isfinite(rho)))
        return diffsde_i_fail(ctx, DIFFSDE_EPARAM, "%s: rho (%g) must be finite and > 0", fn,
                              rho);
    if (N == 0 || N == SIZE_MAX)
        return diffsde_i_fail(ctx, DIFFSDE_EPARAM, "%s: N (%zu) must be >= 1 and N + 1 must "
                              "fit in size_t", fn, N);
    double T;
    diffsde_sde_time_range(sde, NULL, &T);
    if (!(start > 0.0 && start <= T))
        return diffsde_i_fail(ctx, DIFFSDE_EDOM, "%s: start (%.17g) is outside (0, %.17g]", fn,
                              start, T);
    if (!(end > 0.0 && end <= T))
        return diffsde_i_fail(ctx, DIFFSDE_EDOM, "%s: end (%.17g) is outside (0, %.17g]", fn, end,
                              T);
    if (start == end)
        return diffsde_i_fail(ctx, DIFFSDE_EPARAM, "%s: start and end are equal (%.17g)", fn,
                              start);

    if (grid == DIFFSDE_GRID_UNIFORM) {
        for (size_t i = 1; i < N; i++)
            times[i] = start + ((double)i / (double)N) * (end - start);
    } else {
        double ls, le;
        int st = lambda_at(sde, ctx, fn, start, &ls);
        if (st == DIFFSDE_OK)
            st = lambda_at(sde, ctx, fn, end, &le);
        if (st == DIFFSDE_OK)
            st = from_lambda(sde, ctx, fn, grid, rho, ls, le, N, times);
        if (st != DIFFSDE_OK)
            return st;
    }
    times[0] = start;
    times[N] = end;

    double dir = end > start ? 1.0 : -1.0;
    for (size_t i = 0; i < N; i++) {
        if (!((times[i + 1] - times[i]) * dir > 0.0))
            return diffsde_i_fail(ctx, DIFFSDE_ECONVERGENCE,
                                  "%s: the %s grid with N=%zu from %.17g to %.17g is not strictly "
                                  "monotone in double: t[%zu]=%.17g, t[%zu]=%.17g (too many steps "
                                  "for this interval)",
                                  fn, grid_names[grid], N, start, end, i, times[i], i + 1,
                                  times[i + 1]);
    }
    return DIFFSDE_OK;
}
