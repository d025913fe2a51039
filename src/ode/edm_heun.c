/*
 * EDM's deterministic sampler (Karras et al. 2022, Algorithm 1 without churn): Heun's method
 * in the variables ς = σ/α and x̃ = x/α, in which the flow is
 *     dx̃/dς = (x̃ − x̂0(α x̃, t(ς)))/ς,
 * for any α(t), σ(t) (VE: ς = σ, x̃ = x). Every step but the last is Heun (two model
 * evaluations, the second at the Euler trial point at t_{i+1}); the last one is Euler, as in
 * EDM where ς_N = 0 makes the corrector undefined, so NFE = 2N − 1. The published grid is
 * Karras's, uniform in ς^{1/ρ}. The state stays in x; x̃ is formed per step as x/α.
 */
#include <math.h>

#include "ode/ode_impl.h"

/* Nodes: times, α, σ, λ (N + 1 each); per-row times (n); slope at t_i, x̂0 and the trial
 * point (3 × n × w). */
static int work_size(const diffsde_ode_options *opt, size_t n, size_t w, size_t *len)
{
    size_t nw, nw3, nodes;
    if (diffsde_i_mul_size(n, w, &nw) || diffsde_i_mul_size(nw, 3, &nw3) ||
        opt->steps == SIZE_MAX || diffsde_i_mul_size(opt->steps + 1, 4, &nodes) ||
        nw3 > SIZE_MAX - n - nodes)
        return DIFFSDE_ESIZE;
    *len = nodes + n + nw3;
    return DIFFSDE_OK;
}

/* The grid and α, σ, λ on it; an SDE failure is restated with the method's name. */
static int nodes(diffsde_i_oderun *run, const char *name, size_t N, double *t, double *alpha,
                 double *sigma, double *lambda)
{
    unsigned long before = run->ctx->nfail;
    int st = diffsde_time_grid_make(run->sde, run->opt->grid, run->opt->rho, run->t0, run->t1, N,
                                    t);
    for (size_t i = 0; st == DIFFSDE_OK && i <= N; i++) {
        diffsde_sde_coefs c;
        if ((st = diffsde_sde_coefs_at(run->sde, t[i], &c)) != DIFFSDE_OK ||
            (st = diffsde_sde_log_snr(run->sde, t[i], &lambda[i])) != DIFFSDE_OK)
            break;
        alpha[i] = c.alpha;
        sigma[i] = c.sigma;
        if (!(c.sigma > 0.0 && isfinite(lambda[i])))
            return diffsde_i_fail(run->ctx, DIFFSDE_EDOM,
                                  "%s: %s needs sigma(t) > 0 at every node; sigma(%.17g) = %g",
                                  run->fname, name, t[i], c.sigma);
    }
    if (st == DIFFSDE_OK)
        return DIFFSDE_OK;
    if (run->ctx->nfail != before)
        return diffsde_i_fail_prefix(run->ctx, st, "%s: %s grid", run->fname, name);
    return diffsde_i_fail(run->ctx, st, "%s: the %s grid failed (%s; details on the SDE's "
                          "context)", run->fname, name, diffsde_strerror(st));
}

static int x0_at(diffsde_i_oderun *run, const char *name, size_t i, size_t N, double t,
                 double *tv, const double *x, double *x0)
{
    for (size_t r = 0; r < run->n; r++)
        tv[r] = t;
    int st = diffsde_i_flow_x0(run->flow, run, run->n, run->all_rows, tv, x, x0);
    if (st != DIFFSDE_OK)
        return diffsde_i_fail_prefix(run->ctx, st, "%s: %s step %zu of %zu", run->fname, name,
                                     i + 1, N);
    return DIFFSDE_OK;
}

static int solve(diffsde_i_oderun *run)
{
    static const char name[] = "edm-heun";
    if (!run->flow || run->sys != &run->flow->sys)
        return diffsde_i_fail(run->ctx, DIFFSDE_EUNSUPPORTED,
                              "%s: %s needs the flow's data prediction and cannot integrate "
                              "this system",
                              run->fname, name);
    const size_t n = run->n, w = run->sys->w, N = run->opt->steps, nw = n * w;
    double *t = run->work, *alpha = t + N + 1, *sigma = alpha + N + 1, *lambda = sigma + N + 1;
    double *tv = lambda + N + 1, *slope = tv + n, *x0 = slope + nw, *trial = x0 + nw;
    double *y = run->y;
    int st = nodes(run, name, N, t, alpha, sigma, lambda);
    if (st != DIFFSDE_OK)
        return st;
    for (size_t i = 0; i < N; i++) {
        const double a0 = alpha[i], a1 = alpha[i + 1];
        const double s0 = sigma[i] / a0, s1 = sigma[i + 1] / a1, ds = s1 - s0;
        if ((st = x0_at(run, name, i, N, t[i], tv, y, x0)) != DIFFSDE_OK)
            return st;
        for (size_t k = 0; k < nw; k++)
            slope[k] = (y[k] / a0 - x0[k]) / s0;
        if (i + 1 == N) {
            for (size_t k = 0; k < nw; k++)
                y[k] = a1 * (y[k] / a0 + ds * slope[k]);
        } else {
            for (size_t k = 0; k < nw; k++)
                trial[k] = a1 * (y[k] / a0 + ds * slope[k]);
            if ((st = x0_at(run, name, i, N, t[i + 1], tv, trial, x0)) != DIFFSDE_OK)
                return st;
            for (size_t k = 0; k < nw; k++) {
                const double slope1 = (trial[k] / a1 - x0[k]) / s1;
                y[k] = a1 * (y[k] / a0 + 0.5 * ds * (slope[k] + slope1));
            }
        }
        size_t row, col;
        if (diffsde_i_find_nonfinite(n, w, y, &row, &col))
            return diffsde_i_fail(run->ctx, DIFFSDE_ENONFINITE,
                                  "%s: %s step %zu of %zu: the state of sample %zu is not "
                                  "finite at t=%.17g (coordinate %zu = %g)",
                                  run->fname, name, i + 1, N, row, t[i + 1], col,
                                  y[row * w + col]);
    }
    run->stats->steps = N;
    run->stats->accepted = (uint64_t)N * (uint64_t)n;
    return DIFFSDE_OK;
}

const diffsde_i_integrator diffsde_i_integrator_edm_heun = {
    .method = DIFFSDE_ODE_EDM_HEUN,
    .name = "edm-heun",
    .order = 2,
    .flags = DIFFSDE_I_ODE_FEWSTEP,
    .default_steps = 18,
    .default_grid = DIFFSDE_GRID_KARRAS,
    .work_size = work_size,
    .solve = solve,
};
