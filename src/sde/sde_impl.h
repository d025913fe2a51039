/*
 * Private definition of the forward SDE and the internal functions shared by the files of
 * src/sde/: sde.c (lifecycle, validation, dispatch, prior), builtin.c (closed forms of VE, VP,
 * sub-VP), user.c (user callbacks, the consistency checks, the bracketing inverse of λ) and
 * discrete.c (the score_sde discretisations). Not installed.
 */
#ifndef DIFFSDE_SDE_IMPL_H
#define DIFFSDE_SDE_IMPL_H

#include "core/internal.h"
#include "diffsde/sde.h"

struct diffsde_sde {
    diffsde_ctx *ctx;      /* borrowed; receives the messages of failing calls */
    diffsde_sde_kind kind;
    double T;              /* final time (1 for the built-in kinds) */
    double prior_std;      /* s of the prior N(0, s² I) */
    double eps;            /* conventional smallest time */
    double lambda_0;       /* λ(0) (+∞ when σ(0) = 0) */
    double lambda_T;       /* λ(T) */

    /* VE */
    double sigma_min, sigma_max;
    double log_ratio;      /* L = log(σmax/σmin) > 0 */
    double log_sigma_min;  /* log σmin */

    /* VP, sub-VP */
    double beta_min, beta_max;
    double beta_delta;     /* Δ = βmax − βmin ≥ 0 */

    /* user */
    diffsde_sde_user user; /* copied definition (user->user borrowed) */
};

/* ---- sde.c ---- */

/* Evaluate every coefficient at t, which the caller has checked to lie in [0, T].
 * Built-in kinds cannot fail; user kinds report ENONFINITE / ECALLBACK naming `fn`. */
int diffsde_i_sde_eval(const diffsde_sde *sde, double t, diffsde_sde_coefs *c, const char *fn);

/* σ(t) only (t checked by the caller); failures as diffsde_i_sde_eval(). */
int diffsde_i_sde_eval_sigma(const diffsde_sde *sde, double t, double *sigma, const char *fn);

/* λ(t) (t checked by the caller); failures as diffsde_i_sde_eval(). */
int diffsde_i_sde_eval_log_snr(const diffsde_sde *sde, double t, double *lambda,
                               const char *fn);

/* ---- builtin.c (kind VE, VP or SUBVP; t in [0, T]; never fail) ---- */

void diffsde_i_builtin_coefs(const diffsde_sde *sde, double t, diffsde_sde_coefs *c);
double diffsde_i_builtin_sigma(const diffsde_sde *sde, double t);
double diffsde_i_builtin_log_snr(const diffsde_sde *sde, double t);
/* Inverse of λ for lambda in [λ(T), λ(0)] (checked by the caller); result clamped to [0, T]. */
double diffsde_i_builtin_t_from_log_snr(const diffsde_sde *sde, double lambda);

/* ---- user.c ---- */

/* Coefficients from the user's callbacks at t (checked by the caller). */
int diffsde_i_user_coefs(const diffsde_sde *sde, double t, diffsde_sde_coefs *c,
                         const char *fn);
int diffsde_i_user_sigma(const diffsde_sde *sde, double t, double *sigma, const char *fn);
int diffsde_i_user_log_snr(const diffsde_sde *sde, double t, double *lambda, const char *fn);

/* Inverse of λ by safeguarded bracketing, lambda in [λ(T), λ(0)] (checked by the caller). */
int diffsde_i_user_t_from_log_snr(const diffsde_sde *sde, double lambda, double *t,
                                  const char *fn);

/* The checks of diffsde_sde_new_user() on a filled-in SDE; also sets lambda_0, lambda_T and
 * prior_std (when the definition's is 0). Failure messages name `fn`. */
int diffsde_i_user_validate(diffsde_sde *sde, const char *fn);

/* Worst relative error of d(σ²)/dt = 2 f σ² + g² over the m times T (k + ½)/m (see
 * diffsde_sde_check_variance_identity() for the rule). Fails only on callback failures. */
int diffsde_i_sde_identity_scan(const diffsde_sde *sde, size_t m, double *max_rel_err,
                                double *worst_t, const char *fn);

#endif /* DIFFSDE_SDE_IMPL_H */
