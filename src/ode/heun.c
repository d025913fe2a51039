/*
 * Heun's method (the explicit trapezoid) on a fixed grid:
 *   k1 = F(t, y),  k2 = F(t + h, y + h k1),  y ← y + h (k1 + k2)/2.
 * Two right-hand sides per step, second order.
 */
#include "ode/ode_impl.h"

static const diffsde_i_erk_tableau heun = {
    .name = "heun",
    .stages = 2,
    .c = {0.0, 1.0},
    .a = {0.0, 1.0},
    .b = {1.0, 1.0},
    .bden = 2.0,
};

static int work_size(const diffsde_ode_options *opt, size_t n, size_t w, size_t *len)
{
    return diffsde_i_erk_work_size(&heun, opt, n, w, len);
}

static int solve(diffsde_i_oderun *run)
{
    return diffsde_i_erk_solve(&heun, run);
}

const diffsde_i_integrator diffsde_i_integrator_heun = {
    .method = DIFFSDE_ODE_HEUN,
    .name = "heun",
    .order = 2,
    .flags = 0,
    .default_steps = 100,
    .default_grid = DIFFSDE_GRID_UNIFORM,
    .work_size = work_size,
    .solve = solve,
};
