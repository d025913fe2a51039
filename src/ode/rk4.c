/*
 * The classical fourth-order Runge–Kutta method on a fixed grid:
 *   k1 = F(t, y), k2 = F(t + h/2, y + h k1/2), k3 = F(t + h/2, y + h k2/2),
 *   k4 = F(t + h, y + h k3),  y ← y + h (k1 + 2 k2 + 2 k3 + k4)/6.
 * The stages are summed as they come, so three arrays suffice: the current stage, the
 * running sum and the stage's argument.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ode/ode_impl.h"

/* times (N + 1), per-row times (n), stage, sum and argument (3 × n × w). */
static int work_size(const diffsde_ode_options *opt, size_t n, size_t w, size_t *len)
{
    size_t nw, nw3;
    if (opt->steps == SIZE_MAX || diffsde_i_mul_size(n, w, &nw) ||
        diffsde_i_mul_size(nw, 3, &nw3) || nw3 > SIZE_MAX - n - (opt->steps + 1))
        return DIFFSDE_ESIZE;
    *len = (opt->steps + 1) + n + nw3;
    return DIFFSDE_OK;
}

/* Prefix a failure with the step, keeping the entry point's name first: the rhs's message
 * usually starts with it already. */
static int step_failed(const diffsde_i_oderun *run, int st, const char *where)
{
    char prev[DIFFSDE_ERRMSG_CAPACITY];
    diffsde_errmsg_copy(run->ctx, prev, sizeof prev);
    const size_t L = strlen(run->fname);
    const char *rest = prev;
    if (strncmp(prev, run->fname, L) == 0 && prev[L] == ':' && prev[L + 1] == ' ')
        rest = prev + L + 2;
    return diffsde_i_fail(run->ctx, st, "%s: %s: %s", run->fname, where, rest);
}

static int stage(diffsde_i_oderun *run, size_t i, size_t N, int s, double t, double *tv,
                 const double *y, double *k)
{
    for (size_t r = 0; r < run->n; r++)
        tv[r] = t;
    int st = diffsde_i_ode_rhs(run, run->n, run->all_rows, tv, y, k);
    if (st != DIFFSDE_OK)
        {
        char where[64];
        snprintf(where, sizeof where, "rk4 step %zu of %zu, stage %d", i + 1, N, s);
        return step_failed(run, st, where);
    }
    return DIFFSDE_OK;
}

static int solve(diffsde_i_oderun *run)
{
    const size_t n = run->n, w = run->sys->w, N = run->opt->steps, nw = n * w;
    double *times = run->work, *tv = times + N + 1, *k = tv + n, *sum = k + nw, *ya = sum + nw;
    double *y = run->y;
    unsigned long before = run->ctx->nfail;
    int st = diffsde_time_grid_make(run->sde, run->opt->grid, run->opt->rho, run->t0, run->t1, N,
                                    times);
    if (st != DIFFSDE_OK) {
        if (run->ctx->nfail != before)
            return diffsde_i_fail_prefix(run->ctx, st, "%s: rk4 grid", run->fname);
        return diffsde_i_fail(run->ctx, st, "%s: the rk4 grid failed (%s)", run->fname,
                              diffsde_strerror(st));
    }
    for (size_t i = 0; i < N; i++) {
        const double t = times[i], t1 = times[i + 1], h = t1 - t, h2 = 0.5 * h;
        const double tm = t + h2;
        if ((st = stage(run, i, N, 1, t, tv, y, k)) != DIFFSDE_OK)
            return st;
        for (size_t j = 0; j < nw; j++) {
            sum[j] = k[j];
            ya[j] = y[j] + h2 * k[j];
        }
        if ((st = stage(run, i, N, 2, tm, tv, ya, k)) != DIFFSDE_OK)
            return st;
        for (size_t j = 0; j < nw; j++) {
            sum[j] += 2.0 * k[j];
            ya[j] = y[j] + h2 * k[j];
        }
        if ((st = stage(run, i, N, 3, tm, tv, ya, k)) != DIFFSDE_OK)
            return st;
        for (size_t j = 0; j < nw; j++) {
            sum[j] += 2.0 * k[j];
            ya[j] = y[j] + h * k[j];
        }
        if ((st = stage(run, i, N, 4, t1, tv, ya, k)) != DIFFSDE_OK)
            return st;
        const double h6 = h / 6.0;
        for (size_t j = 0; j < nw; j++)
            y[j] += h6 * (sum[j] + k[j]);
        size_t row, col;
        if (diffsde_i_find_nonfinite(n, w, y, &row, &col))
            return diffsde_i_fail(run->ctx, DIFFSDE_ENONFINITE,
                                  "%s: rk4 step %zu of %zu: the state of sample %zu is not "
                                  "finite at t=%.17g (coordinate %zu = %g)",
                                  run->fname, i + 1, N, row, t1, col, y[row * w + col]);
    }
    run->stats->steps = N;
    run->stats->accepted = (uint64_t)N * (uint64_t)n;
    return DIFFSDE_OK;
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
