/*
 * The public flow-ODE object: options, method names (read from the registry, the one place
 * that knows them), and sample / solve / encode / decode around the driver.
 *
 * Memory: the object keeps the driver's workspace and the denoising scratch, both grown on
 * demand and never shrunk, so repeated solves of the same size allocate nothing.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */

#include <inttypes.h>
#include <math.h>
#include <string.h>
#include <time.h>

#include "ode/ode_impl.h"

struct diffsde_ode {
    diffsde_ctx *ctx;
    const diffsde_sde *sde;
    const diffsde_score *score;
    diffsde_ode_options opt; /* resolved */
    double T;
    diffsde_i_odews ws;
    diffsde_ode_stats stats;
    size_t last_n; /* n of the last successful solve, 0 if none (ws.nfe holds its counts) */
    double *dn;    /* denoising scratch: n × d scores, then n times */
    size_t dn_cap;
};

static double now_seconds(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
        return 0.0;
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ------------------------------------------------------------------------------------------ */
/* Options and names                                                                            */

void diffsde_ode_options_default(diffsde_ode_options *opt)
{
    if (!opt)
        return;
    memset(opt, 0, sizeof *opt);
    opt->method = DIFFSDE_ODE_RK45;
    opt->steps = 0;
    opt->grid = DIFFSDE_GRID_DEFAULT;
    opt->rho = 7.0;
    opt->rtol = 1e-5;
    opt->atol = 1e-5;
    opt->first_step = 0.0;
    opt->max_steps = 100000;
    opt->whole_batch = 0;
    opt->eps = NAN;
    opt->denoise = 0;
}

const char *diffsde_ode_method_name(diffsde_ode_method m)
{
    const diffsde_i_integrator *it = diffsde_i_integrator_get(m);
    return it && it->name ? it->name : "";
}

int diffsde_ode_method_from_name(const char *name, diffsde_ode_method *m)
{
    if (!name || !m)
        return DIFFSDE_ENULL;
    for (int k = 0; k < DIFFSDE_ODE_NMETHODS; k++) {
        const diffsde_i_integrator *it = diffsde_i_integrator_get((diffsde_ode_method)k);
        if (it && it->name && strcmp(it->name, name) == 0) {
            *m = (diffsde_ode_method)k;
            return DIFFSDE_OK;
        }
    }
    return DIFFSDE_EPARAM;
}

int diffsde_ode_method_order(diffsde_ode_method m)
{
    const diffsde_i_integrator *it = diffsde_i_integrator_get(m);
    return it ? it->order : 0;
}

int diffsde_ode_method_is_adaptive(diffsde_ode_method m)
{
    const diffsde_i_integrator *it = diffsde_i_integrator_get(m);
    return it && (it->flags & DIFFSDE_I_ODE_ADAPTIVE) ? 1 : 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Lifecycle                                                                                    */

int diffsde_ode_new(diffsde_ctx *ctx, const diffsde_sde *sde, const diffsde_score *score,
                    const diffsde_ode_options *opt, diffsde_ode **out)
{
    static const char fn[] = "diffsde_ode_new";
    if (out)
        *out = NULL;
    if (!ctx)
        return DIFFSDE_ENULL;
    if (!sde || !score || !out)
        return diffsde_i_fail(ctx, DIFFSDE_ENULL, "%s: %s is NULL", fn,
                              !sde ? "sde" : !score ? "score" : "out");
    diffsde_ode_options def, o;
    if (!opt) {
        diffsde_ode_options_default(&def);
        opt = &def;
    }
    double eps0 = 0.0, T = 0.0;
    if (diffsde_sde_default_eps(sde, &eps0) != DIFFSDE_OK ||
        diffsde_sde_time_range(sde, NULL, &T) != DIFFSDE_OK)
        return diffsde_i_fail(ctx, DIFFSDE_EPARAM, "%s: cannot read the SDE's time range", fn);
    int st = diffsde_i_ode_options_resolve(ctx, fn, sde, opt, eps0, &o);
    if (st != DIFFSDE_OK)
        return st;

    diffsde_ode *ode = diffsde_i_calloc(ctx, 1, sizeof *ode);
    if (!ode)
        return diffsde_i_fail(ctx, DIFFSDE_ENOMEM, "%s: cannot allocate the integrator", fn);
    ode->ctx = ctx;
    ode->sde = sde;
    ode->score = score;
    ode->opt = o;
    ode->T = T;
    *out = ode;
    return DIFFSDE_OK;
}

void diffsde_ode_free(diffsde_ode *ode)
{
    if (!ode)
        return;
    diffsde_i_odews_free(ode->ctx, &ode->ws);
    diffsde_i_free(ode->ctx, ode->dn);
    diffsde_i_free(ode->ctx, ode);
}

/* ------------------------------------------------------------------------------------------ */
/* Solves                                                                                       */

static int check_time(const diffsde_ode *ode, const char *fn, const char *what, double t)
{
    if (t > 0.0 && t <= ode->T)
        return DIFFSDE_OK;
    return diffsde_i_fail(ode->ctx, DIFFSDE_EDOM, "%s: %s (%.17g) must be in (0, T = %.17g]", fn,
                          what, t, ode->T);
}

static int check_sizes(const diffsde_ode *ode, const char *fn, size_t n, size_t d)
{
    size_t nd;
    if (n == 0 || d == 0 || diffsde_i_mul_size(n, d, &nd) || nd > SIZE_MAX / sizeof(double))
        return diffsde_i_fail(ode->ctx, DIFFSDE_ESIZE,
                              "%s: n (%zu) and d (%zu) must be >= 1 and n*d doubles must not "
                              "overflow size_t", fn, n, d);
    return DIFFSDE_OK;
}

/* Arguments already validated except the times. The stats are those of this call, also when
 * it fails (zero when it fails before integrating). */
static int solve_impl(diffsde_ode *ode, const char *fn, double t0, double t1, size_t n, size_t d,
                      double *x)
{
    memset(&ode->stats, 0, sizeof ode->stats);
    ode->last_n = 0;
    int st = check_time(ode, fn, "t0", t0);
    if (st == DIFFSDE_OK)
        st = check_time(ode, fn, "t1", t1);
    if (st != DIFFSDE_OK)
        return st;
    if (t0 == t1)
        return diffsde_i_fail(ode->ctx, DIFFSDE_EDOM, "%s: t0 and t1 are equal (%.17g)", fn, t0);
    size_t row, col;
    if (diffsde_i_find_nonfinite(n, d, x, &row, &col))
        return diffsde_i_fail(ode->ctx, DIFFSDE_ENONFINITE,
                              "%s: the initial state of sample %zu is not finite (coordinate "
                              "%zu = %g, t = %.17g)", fn, row, col, x[row * d + col], t0);
    diffsde_i_flow fl;
    diffsde_i_flow_init(&fl, ode->ctx, ode->sde, ode->score, d);
    st = diffsde_i_ode_integrate(ode->ctx, fn, &ode->opt, ode->sde, &fl.sys, &fl, t0, t1, n, x,
                                 &ode->ws, &ode->stats);
    if (st == DIFFSDE_OK)
        ode->last_n = n;
    return st;
}

static int solve_public(diffsde_ode *ode, const char *fn, double t0, double t1, size_t n,
                        size_t d, double *x)
{
    if (!ode)
        return DIFFSDE_ENULL;
    if (!x)
        return diffsde_i_fail(ode->ctx, DIFFSDE_ENULL, "%s: x is NULL", fn);
    int st = check_sizes(ode, fn, n, d);
    if (st != DIFFSDE_OK)
        return st;
    return solve_impl(ode, fn, t0, t1, n, d, x);
}

int diffsde_ode_solve(diffsde_ode *ode, double t0, double t1, size_t n, size_t d, double *x)
{
    return solve_public(ode, "diffsde_ode_solve", t0, t1, n, d, x);
}

int diffsde_ode_encode(diffsde_ode *ode, size_t n, size_t d, double *x)
{
    if (!ode)
        return DIFFSDE_ENULL;
    return solve_public(ode, "diffsde_ode_encode", ode->opt.eps, ode->T, n, d, x);
}

int diffsde_ode_decode(diffsde_ode *ode, size_t n, size_t d, double *x)
{
    if (!ode)
        return DIFFSDE_ENULL;
    return solve_public(ode, "diffsde_ode_decode", ode->T, ode->opt.eps, n, d, x);
}

/* Grow the denoising scratch to n × d scores plus n times (sizes already checked). */
static int ensure_denoise_scratch(diffsde_ode *ode, const char *fn, size_t n, size_t d)
{
    size_t need = n * d;
    if (need > SIZE_MAX / sizeof(double) - n)
        return diffsde_i_fail(ode->ctx, DIFFSDE_ESIZE, "%s: the denoising scratch of n = %zu "
                              "samples overflows size_t", fn, n);
    need += n;
    if (ode->dn && need <= ode->dn_cap)
        return DIFFSDE_OK;
    diffsde_i_free(ode->ctx, ode->dn);
    ode->dn_cap = 0;
    ode->dn = diffsde_i_alloc(ode->ctx, need * sizeof(double));
    if (!ode->dn)
        return diffsde_i_fail(ode->ctx, DIFFSDE_ENOMEM,
                              "%s: cannot allocate the denoising scratch (%zu doubles)", fn, need);
    ode->dn_cap = need;
    return DIFFSDE_OK;
}

/* Tweedie's x̂0 = (x + σ(ε)² s(x, ε))/α(ε) in place, as one more score evaluation of every
 * sample, counted in the stats and the per-sample nfe of the solve before it. */
static int denoise(diffsde_ode *ode, const char *fn, uint64_t sample0, size_t n, size_t d,
                   double *x)
{
    const double eps = ode->opt.eps, start = now_seconds();
    double *s = ode->dn, *tv = ode->dn + n * d;
    diffsde_sde_coefs c;
    unsigned long before = ode->ctx->nfail;
    int st = diffsde_sde_coefs_at(ode->sde, eps, &c);
    if (st == DIFFSDE_OK) {
        for (size_t i = 0; i < n; i++)
            tv[i] = eps;
        st = diffsde_score_eval(ode->score, ode->sde, n, d, tv, x, s);
        diffsde_ode_stats *S = &ode->stats;
        S->score_calls++;
        S->score_evals += n;
        S->denoise_calls++;
        S->nfe_min++;
        S->nfe_max++;
        S->nfe_per_sample = (double)S->score_evals / (double)n;
        for (size_t i = 0; i < n; i++)
            ode->ws.nfe[i]++;
    }
    ode->stats.wall_seconds += now_seconds() - start;
    if (st != DIFFSDE_OK) {
        if (ode->ctx->nfail != before)
            return diffsde_i_fail_prefix(ode->ctx, st, "%s: denoising step at t=%.17g", fn, eps);
        return diffsde_i_fail(ode->ctx, st, "%s: denoising step at t=%.17g: %s (the details are "
                              "on the model's context)", fn, eps, diffsde_strerror(st));
    }
    const double s2 = c.sigma * c.sigma, ia = 1.0 / c.alpha;
    for (size_t k = 0; k < n * d; k++) {
        double v = (x[k] + s2 * s[k]) * ia;
        if (!isfinite(v))
            return diffsde_i_fail(ode->ctx, DIFFSDE_ENONFINITE,
                                  "%s: denoising step at t=%.17g gives %g at sample %zu (global "
                                  "sample %" PRIu64 "), coordinate %zu",
                                  fn, eps, v, k / d, sample0 + k / d, k % d);
        x[k] = v;
    }
    return DIFFSDE_OK;
}

int diffsde_ode_sample(diffsde_ode *ode, const diffsde_noise *noise, uint64_t sample0, size_t n,
                       size_t d, double *x)
{
    static const char fn[] = "diffsde_ode_sample";
    if (!ode)
        return DIFFSDE_ENULL;
    memset(&ode->stats, 0, sizeof ode->stats);
    ode->last_n = 0;
    if (!noise || !x)
        return diffsde_i_fail(ode->ctx, DIFFSDE_ENULL, "%s: %s is NULL", fn,
                              !noise ? "noise" : "x");
    int st = check_sizes(ode, fn, n, d);
    if (st == DIFFSDE_OK && ode->opt.denoise)
        st = ensure_denoise_scratch(ode, fn, n, d);
    if (st != DIFFSDE_OK)
        return st;

    unsigned long before = ode->ctx->nfail;
    st = diffsde_sde_prior_sample(ode->sde, noise, sample0, n, d, x);
    if (st != DIFFSDE_OK) {
        if (ode->ctx->nfail != before)
            return diffsde_i_fail_prefix(ode->ctx, st, "%s: prior draw", fn);
        return diffsde_i_fail(ode->ctx, st, "%s: the prior draw failed (%s; the details are on "
                              "the noise source's context)", fn, diffsde_strerror(st));
    }
    st = solve_impl(ode, fn, ode->T, ode->opt.eps, n, d, x);
    if (st != DIFFSDE_OK || !ode->opt.denoise)
        return st;
    st = denoise(ode, fn, sample0, n, d, x);
    if (st != DIFFSDE_OK)
        ode->last_n = 0;
    return st;
}

/* ------------------------------------------------------------------------------------------ */
/* Queries                                                                                      */

int diffsde_ode_get_stats(const diffsde_ode *ode, diffsde_ode_stats *st)
{
    if (!ode)
        return DIFFSDE_ENULL;
    if (!st)
        return diffsde_i_fail(ode->ctx, DIFFSDE_ENULL, "diffsde_ode_get_stats: st is NULL");
    *st = ode->stats;
    return DIFFSDE_OK;
}

int diffsde_ode_get_sample_nfe(const diffsde_ode *ode, size_t n, uint64_t *nfe)
{
    static const char fn[] = "diffsde_ode_get_sample_nfe";
    if (!ode)
        return DIFFSDE_ENULL;
    if (!nfe)
        return diffsde_i_fail(ode->ctx, DIFFSDE_ENULL, "%s: nfe is NULL", fn);
    if (ode->last_n == 0)
        return diffsde_i_fail(ode->ctx, DIFFSDE_ESTATE,
                              "%s: no successful solve yet (or the last one failed)", fn);
    if (n != ode->last_n)
        return diffsde_i_fail(ode->ctx, DIFFSDE_ESIZE,
                              "%s: n (%zu) differs from the last solve's n (%zu)", fn, n,
                              ode->last_n);
    memcpy(nfe, ode->ws.nfe, n * sizeof *nfe);
    return DIFFSDE_OK;
}

int diffsde_ode_get_options(const diffsde_ode *ode, diffsde_ode_options *opt)
{
    if (!ode)
        return DIFFSDE_ENULL;
    if (!opt)
        return diffsde_i_fail(ode->ctx, DIFFSDE_ENULL, "diffsde_ode_get_options: opt is NULL");
    *opt = ode->opt;
    return DIFFSDE_OK;
}
