/*
 * DPM-Solver++(2M) (Lu et al. 2022, "DPM-Solver++", Algorithm 2): the second-order multistep
 * exponential integrator in data prediction, one model evaluation per step. In
 * λ_D = log(α/σ) = λ/2 (half of our λ) with h_i = λ_D(t_{i+1}) − λ_D(t_i),
 *     x_{i+1} = (σ_{i+1}/σ_i) x_i − α_{i+1} expm1(−h_i) D_i,
 *     D_0 = x̂0_0,   D_i = (1 + 1/(2r_i)) x̂0_i − (1/(2r_i)) x̂0_{i−1},   r_i = h_{i−1}/h_i,
 * x̂0_i = x̂0(x_i, t_i): the first step is DDIM, later ones extrapolate x̂0 linearly in λ_D
 * from the previous node. Nothing assumes a direction: encoding has h_i < 0 and the same
 * r_i > 0. The published choice of grid is uniform in λ (r_i = 1).
 */
#include <math.h>

#include "ode/ode_impl.h"

/* Nodes: times, α, σ, λ (N + 1 each); per-row times (n); x̂0 at this node and the previous
 * one (2 × n × w). */
static int work_size(const diffsde_ode_options *opt, size_t n, size_t w, size_t *len)
{
    size_t nw, nw2, nodes;
    if (diffsde_i_mul_size(n, w, &nw) || diffsde_i_mul_size(nw, 2, &nw2) ||
        opt->steps == SIZE_MAX || diffsde_i_mul_size(opt->steps + 1, 4, &nodes) ||
        nw2 > SIZE_MAX - n - nodes)
        return DIFFSDE_ESIZE;
    *len = nodes + n + nw2;
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
    static const char name[] = "dpm-solver++2m";
    if (!run->flow || run->sys != &run->flow->sys)
        return diffsde_i_fail(run->ctx, DIFFSDE_EUNSUPPORTED,
                              "%s: %s needs the flow's data prediction and cannot integrate "
                              "this system",
                              run->fname, name);
    const size_t n = run->n, w = run->sys->w, N = run->opt->steps, nw = n * w;
    double *t = run->work, *alpha = t + N + 1, *sigma = alpha + N + 1, *lambda = sigma + N + 1;
    double *tv = lambda + N + 1, *buf[2] = {tv + n, tv + n + nw}, *y = run->y;
    int st = nodes(run, name, N, t, alpha, sigma, lambda);
    if (st != DIFFSDE_OK)
        return st;
    double h_prev = 0.0;
    for (size_t i = 0; i < N; i++) {
        double *x0 = buf[i & 1];
        const double *x0_prev = buf[(i + 1) & 1];
        for (size_t r = 0; r < n; r++)
            tv[r] = t[i];
        st = diffsde_i_flow_x0(run->flow, run, n, run->all_rows, tv, y, x0);
        if (st != DIFFSDE_OK)
            return diffsde_i_fail_prefix(run->ctx, st, "%s: %s step %zu of %zu", run->fname,
                                         name, i + 1, N);
        const double h = 0.5 * (lambda[i + 1] - lambda[i]);
        const double a = sigma[i + 1] / sigma[i], b = -alpha[i + 1] * expm1(-h);
        if (i == 0) {
            for (size_t k = 0; k < nw; k++)
                y[k] = a * y[k] + b * x0[k];
        } else {
            /* 1/(2 r_i) = h_i / (2 h_{i−1}) */
            const double q = 0.5 * h / h_prev;
            for (size_t k = 0; k < nw; k++)
                y[k] = a * y[k] + b * ((1.0 + q) * x0[k] - q * x0_prev[k]);
        }
        h_prev = h;
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

const diffsde_i_integrator diffsde_i_integrator_dpm_solver_pp_2m = {
    .method = DIFFSDE_ODE_DPM_SOLVER_PP_2M,
    .name = "dpm-solver++2m",
    .order = 2,
    .flags = DIFFSDE_I_ODE_FEWSTEP,
    .default_steps = 20,
    .default_grid = DIFFSDE_GRID_LOGSNR,
    .work_size = work_size,
    .solve = solve,
};
