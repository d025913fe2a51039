/*
 * GSL odeiv2 back ends: "gsl-rkf45" (Runge–Kutta–Fehlberg 4(5)), "gsl-rk8pd" (Prince–Dormand
 * 8(7)) and "gsl-msadams" (variable-order Adams, functional iteration), each through a
 * gsl_odeiv2_driver with the standard "y" control (eps_abs = atol, eps_rel = rtol). GSL's
 * control takes the largest component of |err_j| / (atol + rtol·|y_j|), not the RMS that
 * rk45 and SUNDIALS use, so at equal tolerances it is somewhat stricter.
 *
 * GSL has no initial step selection: unless opt->first_step is given, h0 = 0.01·‖y0‖/‖F(y0)‖
 * in the tolerance-weighted RMS norm (the first guess of Hairer, Nørsett & Wanner's
 * algorithm; 1e-6·|t1 − t0| when either norm is tiny), clipped to |t1 − t0|. It costs one
 * right-hand side per problem, counted in the NFE like every other.
 *
 * Errors: GSL's error handler is process-global, so it is left alone; every odeiv2 call
 * used here reports through its return code, and the directions, step sizes and
 * tolerances passed are valid by construction. GSL can still call its handler (whose
 * default aborts) only when one of its own mallocs fails inside the driver's allocation,
 * or on msadams's internal "too large order change" sanity check, which its order control
 * never triggers.
 *
 * A recoverable model failure (ERETRY, ENONFINITE) makes the step fail with a status GSL
 * treats as "retry with half the step"; a fatal one returns GSL_EBADFUNC, which stops the
 * driver at once. max_steps is GSL's nmax: the driver stops (GSL_EMAXITER) once a problem
 * has taken more than max_steps accepted steps. Memory comes from GSL's malloc, per solve.
 */
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>

#include <gsl/gsl_errno.h>
#include <gsl/gsl_odeiv2.h>

#include "ode/ode_impl.h"

/* What the right-hand side returns for a recoverable failure: any status other than
 * GSL_SUCCESS, GSL_EBADFUNC and GSL_EFAULT makes odeiv2 retry with a smaller step. */
#define GSL_RHS_RETRY GSL_EDOM

/* Resumptions after recoverable model failures at one point before giving up. */
#define GSL_MAX_RETRIES 10

typedef struct gsl_state {
    diffsde_i_oderun *run;
    size_t m;           /* rows per right-hand side: 1 (per sample) or n (whole batch) */
    const size_t *rows;
    double *tv;         /* m copies of t */
    int status;         /* our status from the last failed right-hand side, else OK */
} gsl_state;

static int recoverable(int st)
{
    return st == DIFFSDE_ERETRY || st == DIFFSDE_ENONFINITE;
}

static int gsl_rhs(double t, const double y[], double dydt[], void *params)
{
    gsl_state *s = params;
    for (size_t r = 0; r < s->m; r++)
        s->tv[r] = t;
    int st = diffsde_i_ode_rhs(s->run, s->m, s->rows, s->tv, y, dydt);
    if (st == DIFFSDE_OK)
        return GSL_SUCCESS;
    s->status = st;
    return recoverable(st) ? GSL_RHS_RETRY : GSL_EBADFUNC;
}

/* Scratch: m times, then one state's F for the initial step. */
static int gsl_work_size(const diffsde_ode_options *opt, size_t n, size_t w, size_t *len)
{
    size_t m = opt->whole_batch ? n : 1, state;
    if (diffsde_i_mul_size(m, w, &state) != 0 || state > SIZE_MAX - m)
        return DIFFSDE_ESIZE;
    *len = m + state;
    return DIFFSDE_OK;
}

/* The signed initial step for y of length len (file comment). */
static int initial_step(diffsde_i_oderun *run, gsl_state *s, size_t len, const double *y,
                        double *f0, double *h)
{
    const diffsde_ode_options *opt = run->opt;
    double span = fabs(run->t1 - run->t0);
    if (opt->first_step > 0) {
        *h = copysign(fmin(opt->first_step, span), run->t1 - run->t0);
        return DIFFSDE_OK;
    }
    for (size_t r = 0; r < s->m; r++)
        s->tv[r] = run->t0;
    int st = diffsde_i_ode_rhs(run, s->m, s->rows, s->tv, y, f0);
    if (st != DIFFSDE_OK)
        return st;
    double d0 = 0.0, d1 = 0.0;
    for (size_t j = 0; j < len; j++) {
        double sc = opt->atol + opt->rtol * fabs(y[j]);
        d0 += (y[j] / sc) * (y[j] / sc);
        d1 += (f0[j] / sc) * (f0[j] / sc);
    }
    d0 = sqrt(d0 / (double)len);
    d1 = sqrt(d1 / (double)len);
    double h0 = (d0 < 1e-5 || d1 < 1e-5) ? 1e-6 * span : 0.01 * d0 / d1;
    if (!(h0 <= span)) /* also catches NaN */
        h0 = span;
    if (h0 < 1e-12 * span)
        h0 = 1e-12 * span;
    *h = copysign(h0, run->t1 - run->t0);
    return DIFFSDE_OK;
}

static int gsl_failure(diffsde_i_oderun *run, const char *method, const gsl_state *s,
                       int code, double t, size_t row)
{
    char who[64];
    if (row == SIZE_MAX)
        snprintf(who, sizeof who, "whole batch of %zu", run->n);
    else
        snprintf(who, sizeof who, "sample %zu", row);
    if ((code == GSL_RHS_RETRY || code == GSL_EBADFUNC) && s->status != DIFFSDE_OK)
        return diffsde_i_ode_restate(run, s->status, "%s: %s: stopped at t = %.17g", method, who,
                                     t);
    const char *why;
    switch (code) {
    case GSL_EMAXITER:
        why = "more than max_steps steps";
        break;
    case GSL_FAILURE:
        why = "the step size underflowed before the tolerance was met";
        break;
    default:
        why = gsl_strerror(code); /* a static string; never the error handler */
        break;
    }
    return diffsde_i_fail(run->ctx, DIFFSDE_ECONVERGENCE,
                          "%s: %s: %s: GSL odeiv2 stopped at t = %.17g (%s; max_steps = %zu)",
                          run->fname, method, who, t, why, run->opt->max_steps);
}

static int gsl_solve(diffsde_i_oderun *run, const gsl_odeiv2_step_type *type,
                     const char *method)
{
    const diffsde_ode_options *opt = run->opt;
    const size_t w = run->sys->w;
    const int whole = opt->whole_batch != 0;
    const size_t len = whole ? run->n * w : w;
    gsl_state s = {.run = run, .m = whole ? run->n : 1, .tv = run->work};
    double *f0 = run->work + s.m;
    gsl_odeiv2_system sys = {gsl_rhs, NULL, len, &s};
    size_t rows = whole ? 1 : run->n;
    int st = DIFFSDE_OK;

    /* hstart only has to be non-zero here; every problem sets its own below. */
    gsl_odeiv2_driver *drv = gsl_odeiv2_driver_alloc_y_new(
        &sys, type, copysign(1.0, run->t1 - run->t0), opt->atol, opt->rtol);
    if (!drv)
        return diffsde_i_fail(run->ctx, DIFFSDE_ENOMEM, "%s: %s: out of memory creating the driver",
                              run->fname, method);

    for (size_t i = 0; i < rows; i++) {
        size_t row = whole ? SIZE_MAX : i;
        double *y = run->y + (whole ? 0 : i * w);
        s.rows = whole ? run->all_rows : &run->all_rows[i];
        s.status = DIFFSDE_OK;
        double h, t = run->t0, tfail = NAN;
        st = initial_step(run, &s, len, y, f0, &h);
        if (st != DIFFSDE_OK) {
            st = diffsde_i_ode_restate(run, st, "%s: initial step", method);
            break;
        }
        size_t row_steps = 0;
        int code, retries = 0;
        /* The driver retries a recoverable failure inside a step with half the step, but
         * returns at once when the first evaluation of a step (at the accepted point) fails:
         * resume from there with a quarter of the step, at most GSL_MAX_RETRIES times in a
         * row at one point. */
        for (;;) {
            s.status = DIFFSDE_OK;
            size_t left = opt->max_steps - row_steps;
            gsl_odeiv2_driver_set_nmax(drv, left > ULONG_MAX ? ULONG_MAX : (unsigned long)left);
            code = gsl_odeiv2_driver_reset_hstart(drv, h);
            if (code == GSL_SUCCESS)
                code = gsl_odeiv2_driver_apply(drv, &t, run->t1, y);
            row_steps += drv->n;
            run->stats->accepted += drv->n;
            run->stats->rejected += drv->e->failed_steps;
            if (code != GSL_RHS_RETRY || !recoverable(s.status) || row_steps >= opt->max_steps)
                break;
            retries = t == tfail ? retries + 1 : 1;
            if (retries > GSL_MAX_RETRIES)
                break;
            tfail = t;
            h = 0.25 * drv->h;
            if (h == 0.0 || t + h == t)
                break;
            run->stats->rejected++;
        }
        if (row_steps > run->stats->steps)
            run->stats->steps = row_steps;
        if (code == GSL_SUCCESS && s.status != DIFFSDE_OK && !recoverable(s.status))
            code = GSL_EBADFUNC; /* never expected: GSL stops on GSL_EBADFUNC */
        if (code != GSL_SUCCESS) {
            st = gsl_failure(run, method, &s, code, t, row);
            break;
        }
    }
    gsl_odeiv2_driver_free(drv);
    return st;
}

static int solve_rkf45(diffsde_i_oderun *run)
{
    return gsl_solve(run, gsl_odeiv2_step_rkf45, "gsl-rkf45");
}

static int solve_rk8pd(diffsde_i_oderun *run)
{
    return gsl_solve(run, gsl_odeiv2_step_rk8pd, "gsl-rk8pd");
}

static int solve_msadams(diffsde_i_oderun *run)
{
    return gsl_solve(run, gsl_odeiv2_step_msadams, "gsl-msadams");
}

const diffsde_i_integrator diffsde_i_integrator_gsl_rkf45 = {
    .method = DIFFSDE_ODE_GSL_RKF45,
    .name = "gsl-rkf45",
    .order = 5,
    .flags = DIFFSDE_I_ODE_ADAPTIVE | DIFFSDE_I_ODE_OWNMEM,
    .default_steps = 0,
    .default_grid = DIFFSDE_GRID_UNIFORM,
    .work_size = gsl_work_size,
    .solve = solve_rkf45,
};

const diffsde_i_integrator diffsde_i_integrator_gsl_rk8pd = {
    .method = DIFFSDE_ODE_GSL_RK8PD,
    .name = "gsl-rk8pd",
    .order = 8,
    .flags = DIFFSDE_I_ODE_ADAPTIVE | DIFFSDE_I_ODE_OWNMEM,
    .default_steps = 0,
    .default_grid = DIFFSDE_GRID_UNIFORM,
    .work_size = gsl_work_size,
    .solve = solve_rk8pd,
};

const diffsde_i_integrator diffsde_i_integrator_gsl_msadams = {
    .method = DIFFSDE_ODE_GSL_MSADAMS,
    .name = "gsl-msadams",
    .order = 12,
    .flags = DIFFSDE_I_ODE_ADAPTIVE | DIFFSDE_I_ODE_OWNMEM,
    .default_steps = 0,
    .default_grid = DIFFSDE_GRID_UNIFORM,
    .work_size = gsl_work_size,
    .solve = solve_msadams,
};
