/*
 * What the fixed-grid methods (explicit_rk.c) and the few-step ones (ddim.c,
 * dpm_solver_pp2m.c, edm_heun.c) share: the grid of a run with its failures restated, the
 * check of the state after each step, and the few-step methods' nodes (α, σ, λ at each grid
 * time) and data prediction.
 */
#include <math.h>
#include <stdint.h>

#include "ode/ode_impl.h"

/* A grid or node failure: the SDE's message is on run->ctx when the SDE shares it. */
static int grid_failed(diffsde_i_oderun *run, const char *name, int st, unsigned long before)
{
    if (run->ctx->nfail != before)
        return diffsde_i_fail_prefix(run->ctx, st, "%s: %s grid", run->fname, name);
    return diffsde_i_fail(run->ctx, st, "%s: the %s grid failed (%s; details on the SDE's "
                          "context)", run->fname, name, diffsde_strerror(st));
}

int diffsde_i_ode_grid(diffsde_i_oderun *run, const char *name, size_t N, double *t)
{
    unsigned long before = run->ctx->nfail;
    int st = diffsde_time_grid_make(run->sde, run->opt->grid, run->opt->rho, run->t0, run->t1, N,
                                    t);
    return st == DIFFSDE_OK ? DIFFSDE_OK : grid_failed(run, name, st, before);
}

static int fewstep_nodes(diffsde_i_oderun *run, const char *name, const diffsde_i_fewstep *fs)
{
    const size_t N = fs->N;
    int st = diffsde_i_ode_grid(run, name, N, fs->t);
    if (st != DIFFSDE_OK)
        return st;
    unsigned long before = run->ctx->nfail;
    for (size_t i = 0; i <= N; i++) {
        diffsde_sde_coefs c;
        if ((st = diffsde_sde_coefs_at(run->sde, fs->t[i], &c)) != DIFFSDE_OK ||
            (st = diffsde_sde_log_snr(run->sde, fs->t[i], &fs->lambda[i])) != DIFFSDE_OK)
            return grid_failed(run, name, st, before);
        fs->alpha[i] = c.alpha;
        fs->sigma[i] = c.sigma;
        if (!(c.sigma > 0.0 && isfinite(fs->lambda[i])))
            return diffsde_i_fail(run->ctx, DIFFSDE_EDOM,
                                  "%s: %s needs sigma(t) > 0 at every node; sigma(%.17g) = %g",
                                  run->fname, name, fs->t[i], c.sigma);
    }
    return DIFFSDE_OK;
}

int diffsde_i_fewstep_begin(diffsde_i_oderun *run, const char *name, diffsde_i_fewstep *fs)
{
    if (!run->flow || run->sys != &run->flow->sys)
        return diffsde_i_fail(run->ctx, DIFFSDE_EUNSUPPORTED,
                              "%s: %s needs the flow's data prediction and cannot integrate "
                              "this system",
                              run->fname, name);
    const size_t N = run->opt->steps;
    fs->N = N;
    fs->t = run->work;
    fs->alpha = fs->t + N + 1;
    fs->sigma = fs->alpha + N + 1;
    fs->lambda = fs->sigma + N + 1;
    fs->tv = fs->lambda + N + 1;
    fs->arrays = fs->tv + run->n;
    return fewstep_nodes(run, name, fs);
}

int diffsde_i_fewstep_x0(diffsde_i_oderun *run, const char *name, const diffsde_i_fewstep *fs,
                         size_t i, double t, const double *x, double *x0)
{
    for (size_t r = 0; r < run->n; r++)
        fs->tv[r] = t;
    int st = diffsde_i_flow_x0(run->flow, run, run->n, run->all_rows, fs->tv, x, x0);
    if (st != DIFFSDE_OK)
        return diffsde_i_ode_restate(run, st, "%s step %zu of %zu", name, i + 1, fs->N);
    return DIFFSDE_OK;
}

int diffsde_i_fewstep_work_size(const diffsde_ode_options *opt, size_t n, size_t w,
                                size_t arrays, size_t *len)
{
    size_t nw, nwk, nodes;
    if (diffsde_i_mul_size(n, w, &nw) || diffsde_i_mul_size(nw, arrays, &nwk) ||
        opt->steps == SIZE_MAX || diffsde_i_mul_size(opt->steps + 1, 4, &nodes) ||
        nwk > SIZE_MAX - n - nodes)
        return DIFFSDE_ESIZE;
    *len = nodes + n + nwk;
    return DIFFSDE_OK;
}

int diffsde_i_ode_step_finite(const diffsde_i_oderun *run, const char *name, size_t i, size_t N,
                              double t)
{
    const size_t w = run->sys->w;
    size_t row, col;
    if (!diffsde_i_find_nonfinite(run->n, w, run->y, &row, &col))
        return DIFFSDE_OK;
    return diffsde_i_fail(run->ctx, DIFFSDE_ENONFINITE,
                          "%s: %s step %zu of %zu: the state of sample %zu is not finite at "
                          "t=%.17g (coordinate %zu = %g)",
                          run->fname, name, i + 1, N, row, t, col, run->y[row * w + col]);
}
