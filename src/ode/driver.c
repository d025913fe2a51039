/*
 * The ODE driver: resolves options, keeps the workspace, hands a solve to the integrator of
 * the chosen method, counts evaluations, and restores the state when a solve fails.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "ode/ode_impl.h"

static double now_seconds(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
        return 0.0;
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int diffsde_i_find_nonfinite(size_t m, size_t w, const double *a, size_t *row, size_t *col)
{
    for (size_t k = 0; k < m * w; k++) {
        if (!isfinite(a[k])) {
            *row = k / w;
            *col = k % w;
            return 1;
        }
    }
    return 0;
}

int diffsde_i_ode_restate(const diffsde_i_oderun *run, int st, const char *fmt, ...)
{
    char where[256], prev[DIFFSDE_ERRMSG_CAPACITY];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(where, sizeof where, fmt, ap);
    va_end(ap);
    diffsde_errmsg_copy(run->ctx, prev, sizeof prev);
    const size_t L = strlen(run->fname);
    const char *rest = prev;
    if (strncmp(prev, run->fname, L) == 0 && prev[L] == ':' && prev[L + 1] == ' ')
        rest = prev + L + 2;
    return diffsde_i_fail(run->ctx, st, "%s: %s: %s", run->fname, where, rest);
}

int diffsde_i_ode_rhs(diffsde_i_oderun *run, size_t m, const size_t *rows, const double *t,
                      const double *y, double *dy)
{
    int st = run->sys->rhs(run->sys->self, run, m, rows, t, y, dy);
    const unsigned e = run->sys->evals_per_rhs;
    for (size_t r = 0; r < m; r++)
        run->nfe[rows[r]] += e;
    return st;
}

void diffsde_i_odews_free(diffsde_ctx *ctx, diffsde_i_odews *ws)
{
    if (!ws)
        return;
    diffsde_i_free(ctx, ws->work);
    diffsde_i_free(ctx, ws->backup);
    diffsde_i_free(ctx, ws->nfe);
    diffsde_i_free(ctx, ws->rows);
    memset(ws, 0, sizeof *ws);
}

int diffsde_i_ode_options_resolve(diffsde_ctx *ctx, const char *fname, const diffsde_sde *sde,
                                  const diffsde_ode_options *opt, double default_eps,
                                  diffsde_ode_options *out)
{
    diffsde_ode_options o = *opt;
    const diffsde_i_integrator *in = diffsde_i_integrator_get(o.method);
    if (!in)
        return diffsde_i_fail(ctx, DIFFSDE_EPARAM, "%s: invalid ODE method %d", fname,
                              (int)o.method);
    const int adaptive = (in->flags & DIFFSDE_I_ODE_ADAPTIVE) != 0;
    if (o.steps == 0)
        o.steps = adaptive ? 0 : in->default_steps;
    if ((int)o.grid < DIFFSDE_GRID_DEFAULT || (int)o.grid > DIFFSDE_GRID_KARRAS)
        return diffsde_i_fail(ctx, DIFFSDE_EPARAM, "%s: invalid time grid %d", fname,
                              (int)o.grid);
    if (o.grid == DIFFSDE_GRID_DEFAULT)
        o.grid = adaptive ? DIFFSDE_GRID_UNIFORM : in->default_grid;
    if (!(o.rho > 0.0) || !isfinite(o.rho))
        return diffsde_i_fail(ctx, DIFFSDE_EPARAM, "%s: rho (%g) must be finite and > 0", fname,
                              o.rho);
    if (!(o.rtol > 0.0) || !isfinite(o.rtol))
        return diffsde_i_fail(ctx, DIFFSDE_EPARAM, "%s: rtol (%g) must be finite and > 0", fname,
                              o.rtol);
    if (!(o.atol > 0.0) || !isfinite(o.atol))
        return diffsde_i_fail(ctx, DIFFSDE_EPARAM, "%s: atol (%g) must be finite and > 0", fname,
                              o.atol);
    if (!(o.first_step >= 0.0) || !isfinite(o.first_step))
        return diffsde_i_fail(ctx, DIFFSDE_EPARAM, "%s: first_step (%g) must be finite and >= 0",
                              fname, o.first_step);
    if (o.max_steps == 0)
        return diffsde_i_fail(ctx, DIFFSDE_EPARAM, "%s: max_steps must be >= 1", fname);
    if (o.whole_batch != 0 && o.whole_batch != 1)
        return diffsde_i_fail(ctx, DIFFSDE_EPARAM, "%s: whole_batch (%d) must be 0 or 1", fname,
                              o.whole_batch);
    if (o.whole_batch && !adaptive)
        return diffsde_i_fail(ctx, DIFFSDE_EUNSUPPORTED,
                              "%s: whole_batch needs an adaptive method; %s takes a fixed grid of "
                              "steps, so every sample already has the same steps",
                              fname, in->name);
    if (o.denoise != 0 && o.denoise != 1)
        return diffsde_i_fail(ctx, DIFFSDE_EPARAM, "%s: denoise (%d) must be 0 or 1", fname,
                              o.denoise);
    double tmin, T;
    int st = diffsde_sde_time_range(sde, &tmin, &T);
    if (st != DIFFSDE_OK)
        return diffsde_i_fail(ctx, st, "%s: the SDE's time range: %s", fname,
                              diffsde_strerror(st));
    if (isnan(o.eps))
        o.eps = default_eps;
    if (!(o.eps > 0.0 && o.eps < T))
        return diffsde_i_fail(ctx, DIFFSDE_EPARAM, "%s: eps (%g) must be in (0, T = %g)", fname,
                              o.eps, T);
    *out = o;
    return DIFFSDE_OK;
}

/* Grow a buffer to hold `need` elements of `size` bytes (contents not kept). */
static int grow(diffsde_ctx *ctx, void **buf, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap && *buf)
        return DIFFSDE_OK;
    size_t bytes;
    if (diffsde_i_mul_size(need ? need : 1, size, &bytes) != 0)
        return DIFFSDE_ESIZE;
    void *p = diffsde_i_alloc(ctx, bytes);
    if (!p)
        return DIFFSDE_ENOMEM;
    diffsde_i_free(ctx, *buf);
    *buf = p;
    *cap = need ? need : 1;
    return DIFFSDE_OK;
}

int diffsde_i_ode_integrate(diffsde_ctx *ctx, const char *fname, const diffsde_ode_options *opt,
                            const diffsde_sde *sde, const diffsde_i_odesys *sys,
                            diffsde_i_flow *flow, double t0, double t1, size_t n, double *y,
                            diffsde_i_odews *ws, diffsde_ode_stats *stats)
{
    const double start = now_seconds();
    memset(stats, 0, sizeof *stats);
    const diffsde_i_integrator *in = diffsde_i_integrator_get(opt->method);
    if (!in)
        return diffsde_i_fail(ctx, DIFFSDE_EPARAM, "%s: invalid ODE method %d", fname,
                              (int)opt->method);
    if ((in->flags & DIFFSDE_I_ODE_FEWSTEP) && !flow)
        return diffsde_i_fail(ctx, DIFFSDE_EUNSUPPORTED,
                              "%s: %s is written in the flow's data prediction and cannot "
                              "integrate this system (use an adaptive or fixed-grid method)",
                              fname, in->name);
    size_t ny, work_len = 0;
    if (diffsde_i_mul_size(n, sys->w, &ny) != 0)
        return diffsde_i_fail(ctx, DIFFSDE_ESIZE, "%s: n*w overflows (n=%zu, w=%zu)", fname, n,
                              sys->w);
    if (in->work_size(opt, n, sys->w, &work_len) != 0)
        return diffsde_i_fail(ctx, DIFFSDE_ESIZE,
                              "%s: the workspace of %s for n=%zu, w=%zu overflows", fname,
                              in->name, n, sys->w);
    int st;
    if ((st = grow(ctx, (void **)&ws->backup, &ws->backup_cap, ny, sizeof(double))) ||
        (st = grow(ctx, (void **)&ws->nfe, &ws->nfe_cap, n, sizeof(uint64_t))) ||
        (st = grow(ctx, (void **)&ws->rows, &ws->rows_cap, n, sizeof(size_t))) ||
        (work_len > 0 && (st = grow(ctx, (void **)&ws->work, &ws->work_cap, work_len,
                                    sizeof(double)))))
        return diffsde_i_fail(ctx, st, "%s: %s for the workspace (n=%zu, w=%zu)", fname,
                              st == DIFFSDE_ENOMEM ? "out of memory" : "size overflow", n,
                              sys->w);
    memcpy(ws->backup, y, ny * sizeof(double));
    for (size_t i = 0; i < n; i++) {
        ws->nfe[i] = 0;
        ws->rows[i] = i;
    }
    diffsde_i_oderun run = {
        .ctx = ctx,
        .fname = fname,
        .opt = opt,
        .sde = sde,
        .sys = sys,
        .flow = flow,
        .t0 = t0,
        .t1 = t1,
        .n = n,
        .y = y,
        .all_rows = ws->rows,
        .nfe = ws->nfe,
        .stats = stats,
        .work = work_len > 0 ? ws->work : NULL,
        .work_len = work_len,
    };
    st = in->solve(&run);
    if (st == DIFFSDE_OK && !(in->flags & DIFFSDE_I_ODE_ADAPTIVE)) {
        stats->steps = opt->steps;
        stats->accepted = (uint64_t)opt->steps * (uint64_t)n;
    }
    if (st == DIFFSDE_OK) {
        size_t r, c;
        if (diffsde_i_find_nonfinite(n, sys->w, y, &r, &c))
            st = diffsde_i_fail(ctx, DIFFSDE_ENONFINITE,
                                "%s: %s produced a non-finite state for sample %zu, component "
                                "%zu, at t=%.17g",
                                fname, in->name, r, c, t1);
    }
    if (st != DIFFSDE_OK)
        memcpy(y, ws->backup, ny * sizeof(double));
    uint64_t lo = UINT64_MAX, hi = 0;
    for (size_t i = 0; i < n; i++) {
        lo = ws->nfe[i] < lo ? ws->nfe[i] : lo;
        hi = ws->nfe[i] > hi ? ws->nfe[i] : hi;
    }
    stats->nfe_min = n ? lo : 0;
    stats->nfe_max = hi;
    stats->nfe_per_sample = n ? (double)stats->score_evals / (double)n : 0.0;
    stats->wall_seconds = now_seconds() - start;
    return st;
}
