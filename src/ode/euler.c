/*
 * Explicit Euler on a fixed grid: y ← y + h F(t, y), one right-hand side per step.
 * The reference first-order method of the convergence tests.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ode/ode_impl.h"

/* times (N + 1), per-row times (n), one stage (n × w). */
static int work_size(const diffsde_ode_options *opt, size_t n, size_t w, size_t *len)
{
    size_t nw;
    if (opt->steps == SIZE_MAX || diffsde_i_mul_size(n, w, &nw) ||
        nw > SIZE_MAX - n - (opt->steps + 1))
        return DIFFSDE_ESIZE;
    *len = (opt->steps + 1) + n + nw;
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

static int solve(diffsde_i_oderun *run)
{
    const size_t n = run->n, w = run->sys->w, N = run->opt->steps, nw = n * w;
    double *times = run->work, *tv = times + N + 1, *k = tv + n, *y = run->y;
    unsigned long before = run->ctx->nfail;
    int st = diffsde_time_grid_make(run->sde, run->opt->grid, run->opt->rho, run->t0, run->t1, N,
                                    times);
    if (st != DIFFSDE_OK) {
        if (run->ctx->nfail != before)
            return diffsde_i_fail_prefix(run->ctx, st, "%s: euler grid", run->fname);
        return diffsde_i_fail(run->ctx, st, "%s: the euler grid failed (%s)", run->fname,
                              diffsde_strerror(st));
    }
    for (size_t i = 0; i < N; i++) {
        const double t = times[i], h = times[i + 1] - t;
        for (size_t r = 0; r < n; r++)
            tv[r] = t;
        st = diffsde_i_ode_rhs(run, n, run->all_rows, tv, y, k);
        if (st != DIFFSDE_OK)
            {
            char where[64];
            snprintf(where, sizeof where, "euler step %zu of %zu", i + 1, N);
            return step_failed(run, st, where);
        }
        for (size_t j = 0; j < nw; j++)
            y[j] += h * k[j];
        size_t row, col;
        if (diffsde_i_find_nonfinite(n, w, y, &row, &col))
            return diffsde_i_fail(run->ctx, DIFFSDE_ENONFINITE,
                                  "%s: euler step %zu of %zu: the state of sample %zu is not "
                                  "finite at t=%.17g (coordinate %zu = %g)",
                                  run->fname, i + 1, N, row, times[i + 1], col, y[row * w + col]);
    }
    run->stats->steps = N;
    run->stats->accepted = (uint64_t)N * (uint64_t)n;
    return DIFFSDE_OK;
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
