/*
 * Deterministic DDIM (Song, Meng & Ermon 2021, η = 0): the first-order exponential integrator
 * of the flow in data prediction. Over a step t_i → t_{i+1} it holds x̂0 = x̂0(x_i, t_i)
 * fixed and moves the noise ε̂ = (x_i − α_i x̂0)/σ_i along, x_{i+1} = α_{i+1} x̂0 + σ_{i+1} ε̂,
 * which for any α(t), σ(t) is
 *     x_{i+1} = (σ_{i+1}/σ_i) x_i − α_{i+1} expm1(−h) x̂0,   h = (λ_{i+1} − λ_i)/2,
 * (λ = log(α²/σ²), so h is a step in log(α/σ)). Written with expm1 of the SDE's own λ because
 * the x̂0 coefficient α_{i+1} − σ_{i+1}α_i/σ_i cancels catastrophically on fine grids.
 * Exact for data that is a single point (x̂0 is then constant along the flow).
 */
#include <math.h>

#include "ode/ode_impl.h"

/* Nodes: times, α, σ, λ (N + 1 each); per-row times (n); x̂0 (n × w). */
static int work_size(const diffsde_ode_options *opt, size_t n, size_t w, size_t *len)
{
    size_t nw, nodes;
    if (diffsde_i_mul_size(n, w, &nw) || opt->steps == SIZE_MAX ||
        diffsde_i_mul_size(opt->steps + 1, 4, &nodes) || nw > SIZE_MAX - n - nodes)
        return DIFFSDE_ESIZE;
    *len = nodes + n + nw;
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

static int solve(diffsde_i_oderun *run)
{
    if (!run->flow || run->sys != &run->flow->sys)
        return diffsde_i_fail(run->ctx, DIFFSDE_EUNSUPPORTED,
                              "%s: ddim needs the flow's data prediction and cannot integrate "
                              "this system",
                              run->fname);
    const size_t n = run->n, w = run->sys->w, N = run->opt->steps, nw = n * w;
    double *t = run->work, *alpha = t + N + 1, *sigma = alpha + N + 1, *lambda = sigma + N + 1;
    double *tv = lambda + N + 1, *x0 = tv + n, *y = run->y;
    int st = nodes(run, "ddim", N, t, alpha, sigma, lambda);
    if (st != DIFFSDE_OK)
        return st;
    for (size_t i = 0; i < N; i++) {
        for (size_t r = 0; r < n; r++)
            tv[r] = t[i];
        st = diffsde_i_flow_x0(run->flow, run, n, run->all_rows, tv, y, x0);
        if (st != DIFFSDE_OK)
            return diffsde_i_fail_prefix(run->ctx, st, "%s: ddim step %zu of %zu", run->fname,
                                         i + 1, N);
        const double a = sigma[i + 1] / sigma[i];
        const double b = -alpha[i + 1] * expm1(-0.5 * (lambda[i + 1] - lambda[i]));
        for (size_t k = 0; k < nw; k++)
            y[k] = a * y[k] + b * x0[k];
        size_t row, col;
        if (diffsde_i_find_nonfinite(n, w, y, &row, &col))
            return diffsde_i_fail(run->ctx, DIFFSDE_ENONFINITE,
                                  "%s: ddim step %zu of %zu: the state of sample %zu is not "
                                  "finite at t=%.17g (coordinate %zu = %g)",
                                  run->fname, i + 1, N, row, t[i + 1], col, y[row * w + col]);
    }
    run->stats->steps = N;
    run->stats->accepted = (uint64_t)N * (uint64_t)n;
    return DIFFSDE_OK;
}

const diffsde_i_integrator diffsde_i_integrator_ddim = {
    .method = DIFFSDE_ODE_DDIM,
    .name = "ddim",
    .order = 1,
    .flags = DIFFSDE_I_ODE_FEWSTEP,
    .default_steps = 20,
    .default_grid = DIFFSDE_GRID_UNIFORM,
    .work_size = work_size,
    .solve = solve,
};
