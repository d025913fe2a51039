/*
 * User-defined SDEs: evaluation of the callbacks with their checks, the consistency checks run
 * at creation (signs, strictly decreasing λ, the variance identity d(σ²)/dt = 2fσ² + g² and the
 * mean identity d(log α)/dt = f), the finite-difference scan shared with
 * diffsde_sde_check_variance_identity(), and the inverse of λ by safeguarded bracketing.
 *
 * The root finder is written here rather than taken from GSL: GSL reports failures through a
 * process-wide error handler that aborts by default, and a library must not touch that global.
 */
#include <float.h>
#include <math.h>

#include "sde/sde_impl.h"

/* Number of interior check times used at creation. */
#define USER_CHECK_TIMES 64

/* Finite-difference step: a fraction of T, and of the distance t to the left end, where the
 * coefficients may behave like powers of t (see fd_step()). */
#define FD_STEP_FRACTION (1.0 / 16384.0)
#define FD_STEP_LEFT_FRACTION (1.0 / 64.0)

/* Iteration cap of the bracketing inverse of λ (the geometric phase alone can take ~360). */
#define BRACKET_MAX_ITER 1000

/* One raw callback value, checked for finiteness. */
static int call(const diffsde_sde *sde, double (*cb)(double, void *), const char *name,
                double t, double *v, const char *fn)
{
    double x = cb(t, sde->user.user);
    if (!isfinite(x))
        return diffsde_i_fail(sde->ctx, DIFFSDE_ENONFINITE,
                              "%s: user callback %s returned %g at t=%.17g", fn, name, x, t);
    *v = x;
    return DIFFSDE_OK;
}

/*
 * All four callbacks at t, finite, with the sign rules α > 0, σ ≥ 0, g² ≥ 0; a wrong sign is
 * reported with `sign_status` (EPARAM at creation, ECALLBACK afterwards).
 */
static int user_eval(const diffsde_sde *sde, double t, diffsde_sde_coefs *c, int sign_status,
                     const char *fn)
{
    const diffsde_sde_user *u = &sde->user;
    int st;
    if ((st = call(sde, u->f, "f", t, &c->f, fn)) != DIFFSDE_OK ||
        (st = call(sde, u->g2, "g2", t, &c->g2, fn)) != DIFFSDE_OK ||
        (st = call(sde, u->alpha, "alpha", t, &c->alpha, fn)) != DIFFSDE_OK ||
        (st = call(sde, u->sigma, "sigma", t, &c->sigma, fn)) != DIFFSDE_OK)
        return st;
    if (!(c->g2 >= 0.0))
        return diffsde_i_fail(sde->ctx, sign_status,
                              "%s: user callback g2 returned %g < 0 at t=%.17g", fn, c->g2, t);
    if (!(c->alpha > 0.0))
        return diffsde_i_fail(sde->ctx, sign_status,
                              "%s: user callback alpha returned %g <= 0 at t=%.17g", fn,
                              c->alpha, t);
    if (!(c->sigma >= 0.0))
        return diffsde_i_fail(sde->ctx, sign_status,
                              "%s: user callback sigma returned %g < 0 at t=%.17g", fn, c->sigma,
                              t);
    c->t = t;
    c->g = sqrt(c->g2);
    return DIFFSDE_OK;
}

int diffsde_i_user_coefs(const diffsde_sde *sde, double t, diffsde_sde_coefs *c,
                         const char *fn)
{
    return user_eval(sde, t, c, DIFFSDE_ECALLBACK, fn);
}

int diffsde_i_user_sigma(const diffsde_sde *sde, double t, double *sigma, const char *fn)
{
    double s = 0.0;
    int st = call(sde, sde->user.sigma, "sigma", t, &s, fn);
    if (st != DIFFSDE_OK)
        return st;
    if (!(s >= 0.0))
        return diffsde_i_fail(sde->ctx, DIFFSDE_ECALLBACK,
                              "%s: user callback sigma returned %g < 0 at t=%.17g", fn, s, t);
    *sigma = s;
    return DIFFSDE_OK;
}

/* λ = 2 (log α − log σ), +∞ where σ = 0. */
static double log_snr_of(double alpha, double sigma)
{
    if (sigma == 0.0)
        return INFINITY;
    return 2.0 * (log(alpha) - log(sigma));
}

int diffsde_i_user_log_snr(const diffsde_sde *sde, double t, double *lambda, const char *fn)
{
    double a = 0.0, s = 0.0;
    int st = call(sde, sde->user.alpha, "alpha", t, &a, fn);
    if (st != DIFFSDE_OK)
        return st;
    if (!(a > 0.0))
        return diffsde_i_fail(sde->ctx, DIFFSDE_ECALLBACK,
                              "%s: user callback alpha returned %g <= 0 at t=%.17g", fn, a, t);
    st = diffsde_i_user_sigma(sde, t, &s, fn);
    if (st != DIFFSDE_OK)
        return st;
    *lambda = log_snr_of(a, s);
    return DIFFSDE_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* finite differences                                                                          */

/* The check times t_k = T (k + ½) / m. */
static double check_time(double T, size_t k, size_t m)
{
    return T * (((double)k + 0.5) / (double)m);
}

/*
 * h = min(T / 16384, t / 64, (T − t) / 4). The first term balances the h⁴ truncation error
 * against the ε/h rounding error for coefficients varying on a time scale ~T/20 (relative
 * error ~1e-13 for the built-in kinds); the second keeps h/t small near t = 0, where σ² may
 * behave like a power of t (sub-VP: σ² ∝ t⁴ for βmin = 0); the last keeps t + 2h inside (0, T).
 */
static double fd_step(double T, double t)
{
    double h = T * FD_STEP_FRACTION;
    if (t * FD_STEP_LEFT_FRACTION < h)
        h = t * FD_STEP_LEFT_FRACTION;
    if ((T - t) / 4.0 < h)
        h = (T - t) / 4.0;
    return h;
}

/*
 * Fourth-order central difference of a function sampled at the four points t ± h, t ± 2h:
 * with the second-order quotients D1 = (y(t+h) − y(t−h)) / ((t+h) − (t−h)) and D2 likewise
 * over 2h, the combination (4 D1 − D2) / 3 cancels the h² term (it equals the classical
 * five-point stencil). Dividing by the spacings as actually represented keeps the rounding of
 * t ± h out of the result.
 */
typedef struct fd_points {
    double tp1, tm1, tp2, tm2;
} fd_points;

static fd_points fd_points_at(double t, double h)
{
    fd_points p = {t + h, t - h, t + 2.0 * h, t - 2.0 * h};
    return p;
}

static double fd_combine(const fd_points *p, double yp1, double ym1, double yp2, double ym2)
{
    double d1 = (yp1 - ym1) / (p->tp1 - p->tm1);
    double d2 = (yp2 - ym2) / (p->tp2 - p->tm2);
    return (4.0 * d1 - d2) / 3.0;
}

/* d(σ²)/dt at t by fourth-order central differences. */
static int fd_variance(const diffsde_sde *sde, double t, double *deriv, const char *fn)
{
    fd_points p = fd_points_at(t, fd_step(sde->T, t));
    double s[4];
    const double at[4] = {p.tp1, p.tm1, p.tp2, p.tm2};
    for (int i = 0; i < 4; i++) {
        int st = diffsde_i_sde_eval_sigma(sde, at[i], &s[i], fn);
        if (st != DIFFSDE_OK)
            return st;
    }
    *deriv = fd_combine(&p, s[0] * s[0], s[1] * s[1], s[2] * s[2], s[3] * s[3]);
    return DIFFSDE_OK;
}

int diffsde_i_sde_identity_scan(const diffsde_sde *sde, size_t m, double *max_rel_err,
                                double *worst_t, const char *fn)
{
    double worst = 0.0, wt = check_time(sde->T, 0, m);
    for (size_t k = 0; k < m; k++) {
        double t = check_time(sde->T, k, m);
        diffsde_sde_coefs c;
        double d;
        int st = diffsde_i_sde_eval(sde, t, &c, fn);
        if (st == DIFFSDE_OK)
            st = fd_variance(sde, t, &d, fn);
        if (st != DIFFSDE_OK)
            return st;
        double drift = 2.0 * c.f * c.sigma * c.sigma;
        double rhs = drift + c.g2;
        double scale = fmax(fabs(d), fmax(fabs(drift) + c.g2, DBL_MIN));
        double err = fabs(d - rhs) / scale;
        if (!(err <= worst)) { /* also catches a NaN error */
            worst = err;
            wt = t;
        }
    }
    *max_rel_err = worst;
    *worst_t = wt;
    return DIFFSDE_OK;
}

/*
 * Worst relative error of the mean identity d(log α)/dt = f over the check times, relative to
 * max(|d log α/dt|, |f|, g²/(2σ²)): the last term is the other half of dλ/dt = 2f − (2fσ² +
 * g²)/σ², so that an f of negligible size (VE-like SDEs, α ≡ 1) is not judged on its own.
 */
static int mean_identity_scan(const diffsde_sde *sde, size_t m, double *max_rel_err,
                              double *worst_t, const char *fn)
{
    double worst = 0.0, wt = check_time(sde->T, 0, m);
    for (size_t k = 0; k < m; k++) {
        double t = check_time(sde->T, k, m);
        diffsde_sde_coefs c;
        int st = user_eval(sde, t, &c, DIFFSDE_EPARAM, fn);
        if (st != DIFFSDE_OK)
            return st;
        fd_points p = fd_points_at(t, fd_step(sde->T, t));
        const double at[4] = {p.tp1, p.tm1, p.tp2, p.tm2};
        double la[4];
        for (int i = 0; i < 4; i++) {
            double a = 0.0;
            st = call(sde, sde->user.alpha, "alpha", at[i], &a, fn);
            if (st != DIFFSDE_OK)
                return st;
            if (!(a > 0.0))
                return diffsde_i_fail(sde->ctx, DIFFSDE_EPARAM,
                                      "%s: user callback alpha returned %g <= 0 at t=%.17g", fn,
                                      a, at[i]);
            la[i] = log(a);
        }
        double d = fd_combine(&p, la[0], la[1], la[2], la[3]);
        double scale = fmax(fmax(fabs(d), fabs(c.f)), 0.5 * c.g2 / (c.sigma * c.sigma));
        if (!(scale > DBL_MIN))
            scale = DBL_MIN;
        double err = fabs(d - c.f) / scale;
        if (!(err <= worst)) {
            worst = err;
            wt = t;
        }
    }
    *max_rel_err = worst;
    *worst_t = wt;
    return DIFFSDE_OK;
}

int diffsde_i_user_validate(diffsde_sde *sde, const char *fn)
{
    const double T = sde->T;
    diffsde_sde_coefs c;

    /* t = 0: α(0) > 0, σ(0) ≥ 0, g²(0) ≥ 0 */
    int st = user_eval(sde, 0.0, &c, DIFFSDE_EPARAM, fn);
    if (st != DIFFSDE_OK)
        return st;
    double lambda_prev = log_snr_of(c.alpha, c.sigma);
    sde->lambda_0 = lambda_prev;

    /* the check times and T: σ > 0 and λ strictly decreasing */
    for (size_t k = 0; k <= USER_CHECK_TIMES; k++) {
        double t = k < USER_CHECK_TIMES ? check_time(T, k, USER_CHECK_TIMES) : T;
        st = user_eval(sde, t, &c, DIFFSDE_EPARAM, fn);
        if (st != DIFFSDE_OK)
            return st;
        if (!(c.sigma > 0.0))
            return diffsde_i_fail(sde->ctx, DIFFSDE_EPARAM,
                                  "%s: user callback sigma returned %g at t=%.17g (must be > 0 "
                                  "for t in (0, T])",
                                  fn, c.sigma, t);
        double lambda = log_snr_of(c.alpha, c.sigma);
        if (!(lambda < lambda_prev))
            return diffsde_i_fail(sde->ctx, DIFFSDE_EPARAM,
                                  "%s: lambda(t) = log(alpha^2/sigma^2) is not strictly "
                                  "decreasing: lambda(%.17g) = %.17g >= %.17g at the previous "
                                  "check time",
                                  fn, t, lambda, lambda_prev);
        lambda_prev = lambda;
        if (k == USER_CHECK_TIMES) {
            sde->lambda_T = lambda;
            if (sde->prior_std == 0.0)
                sde->prior_std = c.sigma;
        }
    }

    double err, wt;
    st = diffsde_i_sde_identity_scan(sde, USER_CHECK_TIMES, &err, &wt, fn);
    if (st != DIFFSDE_OK)
        return st;
    if (!(err <= DIFFSDE_SDE_IDENTITY_RTOL))
        return diffsde_i_fail(sde->ctx, DIFFSDE_EINCONSISTENT,
                              "%s: variance identity d(sigma^2)/dt = 2 f sigma^2 + g^2 violated "
                              "at t=%.17g (relative error %.3g > rtol %.3g)",
                              fn, wt, err, DIFFSDE_SDE_IDENTITY_RTOL);
    st = mean_identity_scan(sde, USER_CHECK_TIMES, &err, &wt, fn);
    if (st != DIFFSDE_OK)
        return st;
    if (!(err <= DIFFSDE_SDE_IDENTITY_RTOL))
        return diffsde_i_fail(sde->ctx, DIFFSDE_EINCONSISTENT,
                              "%s: mean identity d(log alpha)/dt = f violated at t=%.17g "
                              "(relative error %.3g > rtol %.3g)",
                              fn, wt, err, DIFFSDE_SDE_IDENTITY_RTOL);
    return DIFFSDE_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* inverse of λ                                                                                */

/*
 * Find t with λ(t) = lambda, λ decreasing, keeping a bracket lo < t* < hi with
 * g(lo) = λ(lo) − lambda > 0 > g(hi). Three phases, by the shape of the bracket:
 * - lo = 0 (λ(0) may be +∞): geometric descent m = hi/8, so that roots at tiny t are reached
 *   in O(log) steps and with full relative accuracy;
 * - hi > 8 lo: bisection of log t (geometric mean);
 * - otherwise: Illinois regula falsi, with a bisection whenever two steps failed to halve the
 *   bracket. It stops when hi − lo ≤ 2 ε hi and returns the end with the smaller |g|.
 */
int diffsde_i_user_t_from_log_snr(const diffsde_sde *sde, double lambda, double *t_out,
                                  const char *fn)
{
    const double T = sde->T;
    if (lambda == sde->lambda_T) {
        *t_out = T;
        return DIFFSDE_OK;
    }
    if (lambda == sde->lambda_0) {
        *t_out = 0.0;
        return DIFFSDE_OK;
    }
    double lo = 0.0, hi = T;
    double glo = sde->lambda_0 - lambda, ghi = sde->lambda_T - lambda; /* true values */
    double flo = glo, fhi = ghi; /* Illinois-weighted copies */
    int side = 0;                /* +1: last step moved lo, −1: moved hi, 0: not regula falsi */
    int n_rf = -1;               /* regula falsi steps since w_ref was taken; −1: take it */
    double w_ref = hi - lo;
    for (int it = 0; it < BRACKET_MAX_ITER; it++) {
        double m;
        int rf = 0;
        if (lo == 0.0 || hi > 8.0 * lo) {
            m = lo == 0.0 ? hi * 0.125 : sqrt(lo) * sqrt(hi);
            if (!(m > lo && m < hi))
                break;
            n_rf = -1; /* w_ref is taken after this step */
        } else {
            if (!(hi - lo > 2.0 * DBL_EPSILON * hi))
                break;
            int bisect = 0;
            if (n_rf < 0 || n_rf == 2) {
                bisect = n_rf == 2 && hi - lo > 0.5 * w_ref;
                n_rf = 0;
                w_ref = hi - lo;
            }
            if (bisect) {
                m = lo + 0.5 * (hi - lo);
            } else {
                m = lo + (hi - lo) * (flo / (flo - fhi));
                rf = 1;
                n_rf++;
            }
            if (!(m > lo && m < hi)) {
                m = lo + 0.5 * (hi - lo);
                rf = 0;
            }
            if (!(m > lo && m < hi))
                break; /* lo and hi are adjacent doubles */
        }
        double lm;
        int st = diffsde_i_user_log_snr(sde, m, &lm, fn);
        if (st != DIFFSDE_OK)
            return st;
        double gm = lm - lambda;
        if (gm == 0.0) {
            *t_out = m;
            return DIFFSDE_OK;
        }
        if (gm > 0.0) {
            lo = m;
            glo = flo = gm;
            if (rf && side == 1)
                fhi *= 0.5;
            side = rf ? 1 : 0;
        } else if (gm < 0.0) {
            hi = m;
            ghi = fhi = gm;
            if (rf && side == -1)
                flo *= 0.5;
            side = rf ? -1 : 0;
        } else {
            return diffsde_i_fail(sde->ctx, DIFFSDE_ENONFINITE,
                                  "%s: lambda(t) is NaN at t=%.17g", fn, m);
        }
        if (it == BRACKET_MAX_ITER - 1)
            return diffsde_i_fail(sde->ctx, DIFFSDE_ECONVERGENCE,
                                  "%s: bracketing for lambda = %.17g did not converge in %d "
                                  "iterations (bracket [%.17g, %.17g])",
                                  fn, lambda, BRACKET_MAX_ITER, lo, hi);
    }
    *t_out = (lo > 0.0 && fabs(glo) < fabs(ghi)) ? lo : hi;
    return DIFFSDE_OK;
}
