/*
 * The fixed-grid explicit Runge–Kutta engine behind euler.c, heun.c and rk4.c, driven by a
 * tableau in which every stage's argument uses only the stage before it. The stages are
 * summed as they come, so three arrays serve any number of stages: the current stage, the
 * running weighted sum and the next stage's argument (one array for a single stage).
 *
 * The weights are kept as integers over a common denominator and the step is added as
 * (h/bden)·Σ b_s k_s, so that the classical forms y + h/6 (k1 + 2k2 + 2k3 + k4) and
 * y + h/2 (k1 + k2) are computed to the bit.
 */
#include <stdint.h>
#include <stdio.h>

#include "ode/ode_impl.h"

static size_t arrays(const diffsde_i_erk_tableau *tab)
{
    return tab->stages > 1 ? 3 : 1;
}

/* times (N + 1), per-row times (n), then the stage arrays (n × w each). */
int diffsde_i_erk_work_size(const diffsde_i_erk_tableau *tab, const diffsde_ode_options *opt,
                            size_t n, size_t w, size_t *len)
{
    size_t nw, nwk;
    if (opt->steps == SIZE_MAX || diffsde_i_mul_size(n, w, &nw) ||
        diffsde_i_mul_size(nw, arrays(tab), &nwk) || nwk > SIZE_MAX - n - (opt->steps + 1))
        return DIFFSDE_ESIZE;
    *len = (opt->steps + 1) + n + nwk;
    return DIFFSDE_OK;
}

static int stage(const diffsde_i_erk_tableau *tab, diffsde_i_oderun *run, size_t i, size_t N,
                 int s, double t, double *tv, const double *y, double *k)
{
    for (size_t r = 0; r < run->n; r++)
        tv[r] = t;
    int st = diffsde_i_ode_rhs(run, run->n, run->all_rows, tv, y, k);
    if (st == DIFFSDE_OK)
        return DIFFSDE_OK;
    if (tab->stages == 1)
        return diffsde_i_ode_restate(run, st, "%s step %zu of %zu", tab->name, i + 1, N);
    return diffsde_i_ode_restate(run, st, "%s step %zu of %zu, stage %d", tab->name, i + 1, N,
                                 s + 1);
}

int diffsde_i_erk_solve(const diffsde_i_erk_tableau *tab, diffsde_i_oderun *run)
{
    const size_t n = run->n, N = run->opt->steps, nw = n * run->sys->w;
    const int S = tab->stages;
    double *times = run->work, *tv = times + N + 1, *k = tv + n, *sum = k + nw, *ya = sum + nw;
    double *y = run->y;
    int st = diffsde_i_ode_grid(run, tab->name, N, times);
    if (st != DIFFSDE_OK)
        return st;
    for (size_t i = 0; i < N; i++) {
        const double t = times[i], t1 = times[i + 1], h = t1 - t;
        for (int s = 0; s < S; s++) {
            const double ts = tab->c[s] == 1.0 ? t1 : t + tab->c[s] * h;
            if ((st = stage(tab, run, i, N, s, ts, tv, s == 0 ? y : ya, k)) != DIFFSDE_OK)
                return st;
            if (s + 1 == S)
                break;
            const double b = tab->b[s], ha = h * tab->a[s + 1];
            for (size_t j = 0; j < nw; j++) {
                sum[j] = s == 0 ? b * k[j] : sum[j] + b * k[j];
                ya[j] = y[j] + ha * k[j];
            }
        }
        const double hb = h / tab->bden, b = tab->b[S - 1];
        if (S == 1)
            for (size_t j = 0; j < nw; j++)
                y[j] += hb * (b * k[j]);
        else
            for (size_t j = 0; j < nw; j++)
                y[j] += hb * (sum[j] + b * k[j]);
        if ((st = diffsde_i_ode_step_finite(run, tab->name, i, N, t1)) != DIFFSDE_OK)
            return st;
    }
    return DIFFSDE_OK;
}
