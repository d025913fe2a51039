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

/* Nodes (diffsde_i_fewstep_work_size) and x̂0 (n × w). */
static int work_size(const diffsde_ode_options *opt, size_t n, size_t w, size_t *len)
{
    return diffsde_i_fewstep_work_size(opt, n, w, 1, len);
}

static int solve(diffsde_i_oderun *run)
{
    static const char name[] = "ddim";
    diffsde_i_fewstep fs;
    int st = diffsde_i_fewstep_begin(run, name, &fs);
    if (st != DIFFSDE_OK)
        return st;
    const size_t n = run->n, N = fs.N, nw = n * run->sys->w;
    const double *t = fs.t, *alpha = fs.alpha, *sigma = fs.sigma, *lambda = fs.lambda;
    double *x0 = fs.arrays, *y = run->y;
    for (size_t i = 0; i < N; i++) {
        if ((st = diffsde_i_fewstep_x0(run, name, &fs, i, t[i], y, x0)) != DIFFSDE_OK)
            return st;
        const double a = sigma[i + 1] / sigma[i];
        const double b = -alpha[i + 1] * expm1(-0.5 * (lambda[i + 1] - lambda[i]));
        for (size_t k = 0; k < nw; k++)
            y[k] = a * y[k] + b * x0[k];
        if ((st = diffsde_i_ode_step_finite(run, name, i, N, t[i + 1])) != DIFFSDE_OK)
            return st;
    }
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
