/*
 * Forward SDEs: creation and validation, the accessors, argument checking and dispatch of the
 * pointwise functions (the closed forms are in builtin.c, the user callbacks in user.c), the
 * log-SNR pair, the prior and the variance-identity check.
 */
#include <math.h>
#include <string.h>

#include "sde/sde_impl.h"

/* ------------------------------------------------------------------------------------------ */
/* creation                                                                                    */

static int sde_alloc(diffsde_ctx *ctx, const char *fn, diffsde_sde_kind kind, diffsde_sde **out)
{
    diffsde_sde *sde = diffsde_i_alloc(ctx, sizeof *sde);
    if (!sde)
        return diffsde_i_fail(ctx, DIFFSDE_ENOMEM, "%s: cannot allocate the SDE (%zu bytes)", fn,
                              sizeof *sde);
    memset(sde, 0, sizeof *sde);
    sde->ctx = ctx;
    sde->kind = kind;
    sde->T = 1.0;
    *out = sde;
    return DIFFSDE_OK;
}

static int check_ve_params(diffsde_ctx *ctx, const char *fn, double sigma_min, double sigma_max)
{
    if (!isfinite(sigma_min) || !(sigma_min > 0.0))
        return diffsde_i_fail(ctx, DIFFSDE_EPARAM, "%s: sigma_min (%g) must be finite and > 0",
                              fn, sigma_min);
    if (!isfinite(sigma_max))
        return diffsde_i_fail(ctx, DIFFSDE_EPARAM, "%s: sigma_max (%g) must be finite", fn,
                              sigma_max);
    if (!(sigma_max > sigma_min))
        return diffsde_i_fail(ctx, DIFFSDE_EPARAM,
                              "%s: sigma_max (%.17g) must be > sigma_min (%.17g)", fn, sigma_max,
                              sigma_min);
    double r = sigma_max / sigma_min;
    if (!isfinite(r) || !(log(r) > 0.0))
        return diffsde_i_fail(ctx, DIFFSDE_EPARAM,
                              "%s: sigma_max/sigma_min (%.17g / %.17g) must be finite and "
                              "exceed 1 by more than rounding",
                              fn, sigma_max, sigma_min);
    return DIFFSDE_OK;
}

static int check_beta_params(diffsde_ctx *ctx, const char *fn, double beta_min, double beta_max)
{
    if (!isfinite(beta_min) || !(beta_min >= 0.0))
        return diffsde_i_fail(ctx, DIFFSDE_EPARAM, "%s: beta_min (%g) must be finite and >= 0",
                              fn, beta_min);
    if (!isfinite(beta_max))
        return diffsde_i_fail(ctx, DIFFSDE_EPARAM, "%s: beta_max (%g) must be finite", fn,
                              beta_max);
    if (!(beta_max >= beta_min))
        return diffsde_i_fail(ctx, DIFFSDE_EPARAM,
                              "%s: beta_max (%.17g) must be >= beta_min (%.17g)", fn, beta_max,
                              beta_min);
    if (!(beta_max > 0.0))
        return diffsde_i_fail(ctx, DIFFSDE_EPARAM,
                              "%s: beta_max (%g) must be > 0 (beta_min = beta_max = 0 is a "
                              "degenerate SDE)",
                              fn, beta_max);
    return DIFFSDE_OK;
}

/* Create a built-in SDE; p0, p1 = (σmin, σmax) for VE, (βmin, βmax) otherwise. */
static int new_builtin(diffsde_ctx *ctx, const char *fn, diffsde_sde_kind kind, double p0,
                       double p1, diffsde_sde **out)
{
    if (out)
        *out = NULL;
    if (!ctx)
        return DIFFSDE_ENULL;
    if (!out)
        return diffsde_i_fail(ctx, DIFFSDE_ENULL, "%s: out is NULL", fn);
    int st = kind == DIFFSDE_SDE_VE ? check_ve_params(ctx, fn, p0, p1)
                                    : check_beta_params(ctx, fn, p0, p1);
    if (st != DIFFSDE_OK)
        return st;
    diffsde_sde *sde;
    st = sde_alloc(ctx, fn, kind, &sde);
    if (st != DIFFSDE_OK)
        return st;
    if (kind == DIFFSDE_SDE_VE) {
        sde->sigma_min = p0;
        sde->sigma_max = p1;
        sde->log_ratio = log(p1 / p0);
        sde->log_sigma_min = log(p0);
        sde->prior_std = p1;
        sde->eps = 1e-5;
    } else {
        sde->beta_min = p0;
        sde->beta_max = p1;
        sde->beta_delta = p1 - p0;
        sde->prior_std = 1.0;
        sde->eps = 1e-3;
    }
    sde->lambda_0 = diffsde_i_builtin_log_snr(sde, 0.0);
    sde->lambda_T = diffsde_i_builtin_log_snr(sde, sde->T);
    *out = sde;
    return DIFFSDE_OK;
}

int diffsde_sde_new_ve(diffsde_ctx *ctx, double sigma_min, double sigma_max, diffsde_sde **out)
{
    return new_builtin(ctx, "diffsde_sde_new_ve", DIFFSDE_SDE_VE, sigma_min, sigma_max, out);
}

int diffsde_sde_new_vp(diffsde_ctx *ctx, double beta_min, double beta_max, diffsde_sde **out)
{
    return new_builtin(ctx, "diffsde_sde_new_vp", DIFFSDE_SDE_VP, beta_min, beta_max, out);
}

int diffsde_sde_new_subvp(diffsde_ctx *ctx, double beta_min, double beta_max, diffsde_sde **out)
{
    return new_builtin(ctx, "diffsde_sde_new_subvp", DIFFSDE_SDE_SUBVP, beta_min, beta_max,
                       out);
}

int diffsde_sde_new_named(diffsde_ctx *ctx, const char *name, size_t nparams,
                          const char *const *keys, const double *values, diffsde_sde **out)
{
    static const char fn[] = "diffsde_sde_new_named";
    if (out)
        *out = NULL;
    if (!ctx)
        return DIFFSDE_ENULL;
    if (!out)
        return diffsde_i_fail(ctx, DIFFSDE_ENULL, "%s: out is NULL", fn);
    if (!name)
        return diffsde_i_fail(ctx, DIFFSDE_ENULL, "%s: name is NULL", fn);
    if (nparams > 0 && (!keys || !values))
        return diffsde_i_fail(ctx, DIFFSDE_ENULL, "%s: %s is NULL with nparams = %zu", fn,
                              keys ? "values" : "keys", nparams);

    diffsde_sde_kind kind;
    const char *key0, *key1;
    double p0, p1;
    if (strcmp(name, "ve") == 0) {
        kind = DIFFSDE_SDE_VE;
        key0 = "sigma_min";
        key1 = "sigma_max";
        p0 = DIFFSDE_VE_SIGMA_MIN;
        p1 = DIFFSDE_VE_SIGMA_MAX;
    } else if (strcmp(name, "vp") == 0 || strcmp(name, "subvp") == 0) {
        kind = name[0] == 'v' ? DIFFSDE_SDE_VP : DIFFSDE_SDE_SUBVP;
        key0 = "beta_min";
        key1 = "beta_max";
        p0 = DIFFSDE_VP_BETA_MIN;
        p1 = DIFFSDE_VP_BETA_MAX;
    } else {
        return diffsde_i_fail(ctx, DIFFSDE_EPARAM,
                              "%s: unknown SDE name \"%.64s\" (expected \"ve\", \"vp\" or "
                              "\"subvp\")",
                              fn, name);
    }
    for (size_t i = 0; i < nparams; i++) {
        if (!keys[i])
            return diffsde_i_fail(ctx, DIFFSDE_ENULL, "%s: keys[%zu] is NULL", fn, i);
        if (strcmp(keys[i], key0) == 0)
            p0 = values[i];
        else if (strcmp(keys[i], key1) == 0)
            p1 = values[i];
        else
            return diffsde_i_fail(ctx, DIFFSDE_EPARAM,
                                  "%s: unknown parameter \"%.64s\" for SDE \"%s\" (expected "
                                  "\"%s\" or \"%s\")",
                                  fn, keys[i], name, key0, key1);
    }
    return new_builtin(ctx, fn, kind, p0, p1, out);
}

int diffsde_sde_new_user(diffsde_ctx *ctx, const diffsde_sde_user *def, diffsde_sde **out)
{
    static const char fn[] = "diffsde_sde_new_user";
    if (out)
        *out = NULL;
    if (!ctx)
        return DIFFSDE_ENULL;
    if (!out)
        return diffsde_i_fail(ctx, DIFFSDE_ENULL, "%s: out is NULL", fn);
    if (!def)
        return diffsde_i_fail(ctx, DIFFSDE_ENULL, "%s: def is NULL", fn);
    if (!def->f || !def->g2 || !def->alpha || !def->sigma)
        return diffsde_i_fail(ctx, DIFFSDE_ENULL, "%s: callback def->%s is NULL", fn,
                              !def->f ? "f" : !def->g2 ? "g2" : !def->alpha ? "alpha" : "sigma");
    if (!isfinite(def->T) || !(def->T > 0.0))
        return diffsde_i_fail(ctx, DIFFSDE_EPARAM, "%s: T (%g) must be finite and > 0", fn,
                              def->T);
    if (!isfinite(def->prior_std) || !(def->prior_std >= 0.0))
        return diffsde_i_fail(ctx, DIFFSDE_EPARAM,
                              "%s: prior_std (%g) must be finite and >= 0 (0 selects sigma(T))",
                              fn, def->prior_std);
    diffsde_sde *sde;
    int st = sde_alloc(ctx, fn, DIFFSDE_SDE_USER, &sde);
    if (st != DIFFSDE_OK)
        return st;
    sde->user = *def;
    sde->T = def->T;
    sde->prior_std = def->prior_std;
    sde->eps = 1e-3 * def->T;
    st = diffsde_i_user_validate(sde, fn);
    if (st != DIFFSDE_OK) {
        diffsde_i_free(ctx, sde);
        return st;
    }
    *out = sde;
    return DIFFSDE_OK;
}

void diffsde_sde_free(diffsde_sde *sde)
{
    if (sde)
        diffsde_i_free(sde->ctx, sde);
}

diffsde_ctx *diffsde_i_sde_ctx(const struct diffsde_sde *sde)
{
    return sde ? sde->ctx : NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* accessors                                                                                   */

diffsde_sde_kind diffsde_sde_get_kind(const diffsde_sde *sde)
{
    return sde ? sde->kind : (diffsde_sde_kind)0;
}

const char *diffsde_sde_name(const diffsde_sde *sde)
{
    if (!sde)
        return "";
    switch (sde->kind) {
    case DIFFSDE_SDE_VE:
        return "ve";
    case DIFFSDE_SDE_VP:
        return "vp";
    case DIFFSDE_SDE_SUBVP:
        return "subvp";
    case DIFFSDE_SDE_USER:
        return "user";
    }
    return "";
}

int diffsde_sde_get_param(const diffsde_sde *sde, const char *key, double *value)
{
    static const char fn[] = "diffsde_sde_get_param";
    if (!sde)
        return DIFFSDE_ENULL;
    if (!key || !value)
        return diffsde_i_fail(sde->ctx, DIFFSDE_ENULL, "%s: %s is NULL", fn,
                              key ? "value" : "key");
    double v;
    int found = 1;
    if (strcmp(key, "T") == 0)
        v = sde->T;
    else if (sde->kind == DIFFSDE_SDE_VE && strcmp(key, "sigma_min") == 0)
        v = sde->sigma_min;
    else if (sde->kind == DIFFSDE_SDE_VE && strcmp(key, "sigma_max") == 0)
        v = sde->sigma_max;
    else if ((sde->kind == DIFFSDE_SDE_VP || sde->kind == DIFFSDE_SDE_SUBVP) &&
             strcmp(key, "beta_min") == 0)
        v = sde->beta_min;
    else if ((sde->kind == DIFFSDE_SDE_VP || sde->kind == DIFFSDE_SDE_SUBVP) &&
             strcmp(key, "beta_max") == 0)
        v = sde->beta_max;
    else
        found = 0;
    if (!found)
        return diffsde_i_fail(sde->ctx, DIFFSDE_EPARAM,
                              "%s: a %s SDE has no parameter \"%.64s\"", fn,
                              diffsde_sde_name(sde), key);
    *value = v;
    return DIFFSDE_OK;
}

int diffsde_sde_time_range(const diffsde_sde *sde, double *t_min, double *T)
{
    if (!sde)
        return DIFFSDE_ENULL;
    if (t_min)
        *t_min = 0.0;
    if (T)
        *T = sde->T;
    return DIFFSDE_OK;
}

int diffsde_sde_default_eps(const diffsde_sde *sde, double *eps)
{
    if (!sde)
        return DIFFSDE_ENULL;
    if (!eps)
        return diffsde_i_fail(sde->ctx, DIFFSDE_ENULL, "diffsde_sde_default_eps: eps is NULL");
    *eps = sde->eps;
    return DIFFSDE_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* pointwise functions                                                                         */

static int check_t(const diffsde_sde *sde, double t, const char *fn)
{
    if (isnan(t))
        return diffsde_i_fail(sde->ctx, DIFFSDE_EDOM, "%s: t is NaN", fn);
    if (!(t >= 0.0 && t <= sde->T))
        return diffsde_i_fail(sde->ctx, DIFFSDE_EDOM, "%s: t (%.17g) is outside [0, %.17g]", fn,
                              t, sde->T);
    return DIFFSDE_OK;
}

int diffsde_i_sde_eval(const diffsde_sde *sde, double t, diffsde_sde_coefs *c, const char *fn)
{
    if (sde->kind == DIFFSDE_SDE_USER)
        return diffsde_i_user_coefs(sde, t, c, fn);
    diffsde_i_builtin_coefs(sde, t, c);
    return DIFFSDE_OK;
}

int diffsde_i_sde_eval_sigma(const diffsde_sde *sde, double t, double *sigma, const char *fn)
{
    if (sde->kind == DIFFSDE_SDE_USER)
        return diffsde_i_user_sigma(sde, t, sigma, fn);
    *sigma = diffsde_i_builtin_sigma(sde, t);
    return DIFFSDE_OK;
}

int diffsde_i_sde_eval_log_snr(const diffsde_sde *sde, double t, double *lambda,
                               const char *fn)
{
    if (sde->kind == DIFFSDE_SDE_USER)
        return diffsde_i_user_log_snr(sde, t, lambda, fn);
    *lambda = diffsde_i_builtin_log_snr(sde, t);
    return DIFFSDE_OK;
}

/* The checks every public pointwise function starts with: the handle, the output pointer, t. */
static int pointwise_prologue(const diffsde_sde *sde, double t, const void *out, const char *fn)
{
    if (!sde)
        return DIFFSDE_ENULL;
    if (!out)
        return diffsde_i_fail(sde->ctx, DIFFSDE_ENULL, "%s: output pointer is NULL", fn);
    return check_t(sde, t, fn);
}

/* Checked evaluation of all coefficients, shared by the public pointwise functions. */
static int coefs_checked(const diffsde_sde *sde, double t, const void *out, diffsde_sde_coefs *c,
                         const char *fn)
{
    int st = pointwise_prologue(sde, t, out, fn);
    if (st != DIFFSDE_OK)
        return st;
    return diffsde_i_sde_eval(sde, t, c, fn);
}

int diffsde_sde_coefs_at(const diffsde_sde *sde, double t, diffsde_sde_coefs *out)
{
    diffsde_sde_coefs c;
    int st = coefs_checked(sde, t, out, &c, "diffsde_sde_coefs_at");
    if (st == DIFFSDE_OK)
        *out = c;
    return st;
}

int diffsde_sde_alpha(const diffsde_sde *sde, double t, double *alpha)
{
    diffsde_sde_coefs c;
    int st = coefs_checked(sde, t, alpha, &c, "diffsde_sde_alpha");
    if (st == DIFFSDE_OK)
        *alpha = c.alpha;
    return st;
}

int diffsde_sde_sigma(const diffsde_sde *sde, double t, double *sigma)
{
    static const char fn[] = "diffsde_sde_sigma";
    int st = pointwise_prologue(sde, t, sigma, fn);
    if (st != DIFFSDE_OK)
        return st;
    double s;
    st = diffsde_i_sde_eval_sigma(sde, t, &s, fn);
    if (st == DIFFSDE_OK)
        *sigma = s;
    return st;
}

int diffsde_sde_drift_coef(const diffsde_sde *sde, double t, double *f)
{
    diffsde_sde_coefs c;
    int st = coefs_checked(sde, t, f, &c, "diffsde_sde_drift_coef");
    if (st == DIFFSDE_OK)
        *f = c.f;
    return st;
}

int diffsde_sde_diffusion(const diffsde_sde *sde, double t, double *g)
{
    diffsde_sde_coefs c;
    int st = coefs_checked(sde, t, g, &c, "diffsde_sde_diffusion");
    if (st == DIFFSDE_OK)
        *g = c.g;
    return st;
}

int diffsde_sde_log_snr(const diffsde_sde *sde, double t, double *lambda)
{
    static const char fn[] = "diffsde_sde_log_snr";
    int st = pointwise_prologue(sde, t, lambda, fn);
    if (st != DIFFSDE_OK)
        return st;
    double l;
    st = diffsde_i_sde_eval_log_snr(sde, t, &l, fn);
    if (st == DIFFSDE_OK)
        *lambda = l;
    return st;
}

int diffsde_sde_t_from_log_snr(const diffsde_sde *sde, double lambda, double *t)
{
    static const char fn[] = "diffsde_sde_t_from_log_snr";
    if (!sde)
        return DIFFSDE_ENULL;
    if (!t)
        return diffsde_i_fail(sde->ctx, DIFFSDE_ENULL, "%s: t is NULL", fn);
    if (isnan(lambda))
        return diffsde_i_fail(sde->ctx, DIFFSDE_EDOM, "%s: lambda is NaN", fn);
    if (!(lambda >= sde->lambda_T && lambda <= sde->lambda_0))
        return diffsde_i_fail(sde->ctx, DIFFSDE_EDOM,
                              "%s: lambda (%.17g) is outside [lambda(T), lambda(0)] = "
                              "[%.17g, %.17g]",
                              fn, lambda, sde->lambda_T, sde->lambda_0);
    if (sde->kind == DIFFSDE_SDE_USER)
        return diffsde_i_user_t_from_log_snr(sde, lambda, t, fn);
    *t = diffsde_i_builtin_t_from_log_snr(sde, lambda);
    return DIFFSDE_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* prior                                                                                       */

int diffsde_sde_prior_std(const diffsde_sde *sde, double *std)
{
    if (!sde)
        return DIFFSDE_ENULL;
    if (!std)
        return diffsde_i_fail(sde->ctx, DIFFSDE_ENULL, "diffsde_sde_prior_std: std is NULL");
    *std = sde->prior_std;
    return DIFFSDE_OK;
}

int diffsde_sde_prior_sample(const diffsde_sde *sde, const diffsde_noise *noise,
                             uint64_t sample0, size_t n, size_t d, double *x)
{
    static const char fn[] = "diffsde_sde_prior_sample";
    if (!sde)
        return DIFFSDE_ENULL;
    if (d == 0)
        return diffsde_i_fail(sde->ctx, DIFFSDE_ESIZE, "%s: d is 0", fn);
    size_t nd;
    if (diffsde_i_mul_size(n, d, &nd) != 0)
        return diffsde_i_fail(sde->ctx, DIFFSDE_ESIZE, "%s: n (%zu) * d (%zu) overflows", fn, n,
                              d);
    if (!noise)
        return diffsde_i_fail(sde->ctx, DIFFSDE_ENULL, "%s: noise is NULL", fn);
    if (nd == 0)
        return DIFFSDE_OK;
    if (!x)
        return diffsde_i_fail(sde->ctx, DIFFSDE_ENULL, "%s: x is NULL", fn);
    int st = diffsde_noise_fill_normal(noise, DIFFSDE_STREAM_PRIOR, 0, sample0, n, d, x);
    if (st != DIFFSDE_OK)
        return st;
    const double s = sde->prior_std;
    for (size_t k = 0; k < nd; k++)
        x[k] = s * x[k];
    return DIFFSDE_OK;
}

int diffsde_sde_prior_logpdf(const diffsde_sde *sde, size_t n, size_t d, const double *x,
                             double *logp)
{
    static const char fn[] = "diffsde_sde_prior_logpdf";
    if (!sde)
        return DIFFSDE_ENULL;
    if (d == 0)
        return diffsde_i_fail(sde->ctx, DIFFSDE_ESIZE, "%s: d is 0", fn);
    size_t nd;
    if (diffsde_i_mul_size(n, d, &nd) != 0)
        return diffsde_i_fail(sde->ctx, DIFFSDE_ESIZE, "%s: n (%zu) * d (%zu) overflows", fn, n,
                              d);
    if (n == 0)
        return DIFFSDE_OK;
    if (!x || !logp)
        return diffsde_i_fail(sde->ctx, DIFFSDE_ENULL, "%s: %s is NULL", fn, x ? "logp" : "x");
    const double s = sde->prior_std;
    /* −(d/2) log(2π s²) = −d (½ log 2π + log s) */
    const double c = -(double)d * (0.91893853320467274178 + log(s));
    for (size_t i = 0; i < n; i++) {
        const double *row = x + i * d;
        double q = 0.0;
        for (size_t j = 0; j < d; j++) {
            double z = row[j] / s;
            q += z * z;
        }
        logp[i] = c - 0.5 * q;
    }
    return DIFFSDE_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* variance identity                                                                           */

int diffsde_sde_check_variance_identity(const diffsde_sde *sde, size_t m, double rtol,
                                        double *max_rel_err, double *worst_t)
{
    static const char fn[] = "diffsde_sde_check_variance_identity";
    if (!sde)
        return DIFFSDE_ENULL;
    if (m == 0)
        return diffsde_i_fail(sde->ctx, DIFFSDE_EPARAM, "%s: m is 0", fn);
    if (!(rtol > 0.0))
        return diffsde_i_fail(sde->ctx, DIFFSDE_EPARAM, "%s: rtol (%g) must be > 0", fn, rtol);
    double err, wt;
    int st = diffsde_i_sde_identity_scan(sde, m, &err, &wt, fn);
    if (st != DIFFSDE_OK)
        return st;
    if (max_rel_err)
        *max_rel_err = err;
    if (worst_t)
        *worst_t = wt;
    if (!(err <= rtol))
        return diffsde_i_fail(sde->ctx, DIFFSDE_EINCONSISTENT,
                              "%s: d(sigma^2)/dt = 2 f sigma^2 + g^2 violated at t=%.17g "
                              "(relative error %.3g > rtol %.3g)",
                              fn, wt, err, rtol);
    return DIFFSDE_OK;
}
