/*
 * Explicit Euler on a fixed grid: y ← y + h F(t, y), one right-hand side per step.
 * The reference first-order method of the convergence tests.
 */
#include "ode/ode_impl.h"

static const diffsde_i_erk_tableau euler = {
    .name = "euler",
    .stages = 1,
    .c = {0.0},
    .b = {1.0},
    .bden = 1.0,
};

static int work_size(const diffsde_ode_options *opt, size_t n, size_t w, size_t *len)
{
    return diffsde_i_erk_work_size(&euler, opt, n, w, len);
}

static int solve(diffsde_i_oderun *run)
{
    return diffsde_i_erk_solve(&euler, run);
}

const diffsde_i_integrator diffsde_i_integrator_euler = {
    .method = DIFFSDE_ODE_EULER,
    .name = "euler",
    .order = 1,
    .flags = 0,
    .default_steps = 100,
    .default_grid = DIFFSDE_GRID_UNIFORM,
    .work_size = work_size,
    .solve = solve,
};
