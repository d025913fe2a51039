/*
 * The classical fourth-order Runge–Kutta method (rk4) on a fixed grid:
 *   k1 = F(t, y), k2 = F(t + h/2, y + h k1/2), k3 = F(t + h/2, y + h k2/2),
 *   k4 = F(t + h, y + h k3),  y ← y + h (k1 + 2 k2 + 2 k3 + k4)/6.
 */
#include "ode/ode_impl.h"

static const diffsde_i_erk_tableau rk4 = {
    .name = "rk4",
    .stages = 4,
    .c = {0.0, 0.5, 0.5, 1.0},
    .a = {0.0, 0.5, 0.5, 1.0},
    .b = {1.0, 2.0, 2.0, 1.0},
    .bden = 6.0,
};

static int work_size(const diffsde_ode_options *opt, size_t n, size_t w, size_t *len)
{
    return diffsde_i_erk_work_size(&rk4, opt, n, w, len);
}

static int solve(diffsde_i_oderun *run)
{
    return diffsde_i_erk_solve(&rk4, run);
}

const diffsde_i_integrator diffsde_i_integrator_rk4 = {
    .method = DIFFSDE_ODE_RK4,
    .name = "rk4",
    .order = 4,
    .flags = 0,
    .default_steps = 100,
    .default_grid = DIFFSDE_GRID_UNIFORM,
    .work_size = work_size,
    .solve = solve,
};
