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

/* Nodes (diffsde_i_fewstep_work_size), slope at t_i, x̂0 and
 * the trial point (3 × n × w). */
static int work_size(const diffsde_ode_options *opt, size_t n, size_t w, size_t *len)
{
    return diffsde_i_fewstep_work_size(opt, n, w, 3, len);
}

static int solve(diffsde_i_oderun *run)
{
    static const char name[] = "edm-heun";
    diffsde_i_fewstep fs;
    int st = diffsde_i_fewstep_begin(run, name, &fs);
    if (st != DIFFSDE_OK)
        return st;
    const size_t n = run->n, N = fs.N, nw = n * run->sys->w;
    const double *t = fs.t, *alpha = fs.alpha, *sigma = fs.sigma;
    double *slope = fs.arrays, *x0 = slope + nw, *trial = x0 + nw, *y = run->y;
    for (size_t i = 0; i < N; i++) {
        const double a0 = alpha[i], a1 = alpha[i + 1];
        const double s0 = sigma[i] / a0, s1 = sigma[i + 1] / a1, ds = s1 - s0;
        if ((st = diffsde_i_fewstep_x0(run, name, &fs, i, t[i], y, x0)) != DIFFSDE_OK)
            return st;
        for (size_t k = 0; k < nw; k++)
            slope[k] = (y[k] / a0 - x0[k]) / s0;
        if (i + 1 == N) {
            for (size_t k = 0; k < nw; k++)
                y[k] = a1 * (y[k] / a0 + ds * slope[k]);
        } else {
            for (size_t k = 0; k < nw; k++)
                trial[k] = a1 * (y[k] / a0 + ds * slope[k]);
            if ((st = diffsde_i_fewstep_x0(run, name, &fs, i, t[i + 1], trial, x0)) != DIFFSDE_OK)
                return st;
            for (size_t k = 0; k < nw; k++) {
                const double slope1 = (trial[k] / a1 - x0[k]) / s1;
                y[k] = a1 * (y[k] / a0 + 0.5 * ds * (slope[k] + slope1));
            }
        }
        if ((st = diffsde_i_ode_step_finite(run, name, i, N, t[i + 1])) != DIFFSDE_OK)
            return st;
    }
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
