/**
 * @file diffsde/sde.h
 * @brief Forward SDEs with an affine-Gaussian perturbation kernel.
 *
 *     dx = f(t) x dt + g(t) dw,      x(t) | x(0) ~ N(α(t) x(0), σ(t)² I),   t ∈ [0, T]
 *
 * | kind   | f(t)   | g(t)²                       | α(t)          | σ(t)                  | prior       |
 * |--------|--------|-----------------------------|---------------|-----------------------|-------------|
 * | VE     | 0      | d[σ²]/dt = 2 log(σmax/σmin) σ² | 1          | σmin (σmax/σmin)^t    | N(0, σmax² I) |
 * | VP     | −β/2   | β                           | exp(−B/2)     | √(1 − α²)             | N(0, I)     |
 * | sub-VP | −β/2   | β (1 − exp(−2B))            | exp(−B/2)     | 1 − α²                | N(0, I)     |
 *
 * with β(t) = βmin + t (βmax − βmin), B(t) = ∫₀ᵗ β = βmin t + ½ (βmax − βmin) t², and T = 1
 * for the three built-in kinds (Song et al., ICLR 2021).
 *
 * VE convention (score_sde's, kept deliberately): σ(t) is the marginal standard deviation
 * σmin (σmax/σmin)^t itself, so σ(0) = σmin > 0, and g² is its exact time derivative; the
 * strict kernel variance σ(t)² − σ(0)² is not used.
 *
 * Every kind satisfies d(σ²)/dt = 2 f σ² + g² and dα/dt = f α; diffsde_sde_check_variance_identity()
 * checks the first numerically, and user-defined SDEs are checked for both when they are created.
 *
 * Units: t is the diffusion time in [0, T]; f in 1/time, g² in variance/time; α dimensionless;
 * σ in units of x.
 *
 * Thread-safety: an SDE is immutable after creation. All functions taking a
 * `const diffsde_sde *` may be called concurrently on one SDE (a user SDE: if its callbacks
 * are thread-safe); a failing call records its message on the SDE's context (see context.h).
 */
#ifndef DIFFSDE_SDE_H
#define DIFFSDE_SDE_H

#include "diffsde/common.h"
#include "diffsde/context.h"
#include "diffsde/noise.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Opaque forward SDE. */
typedef struct diffsde_sde diffsde_sde;

/** The SDE families. */
typedef enum diffsde_sde_kind {
    DIFFSDE_SDE_VE = 1,    /**< variance exploding (SMLD / NCSN) */
    DIFFSDE_SDE_VP = 2,    /**< variance preserving (DDPM) */
    DIFFSDE_SDE_SUBVP = 3, /**< sub-variance preserving */
    DIFFSDE_SDE_USER = 4   /**< defined by user callbacks */
} diffsde_sde_kind;

/** Default σmin of VE. */
#define DIFFSDE_VE_SIGMA_MIN 0.01
/** Default σmax of VE. */
#define DIFFSDE_VE_SIGMA_MAX 50.0
/** Default βmin of VP and sub-VP. */
#define DIFFSDE_VP_BETA_MIN 0.1
/** Default βmax of VP and sub-VP. */
#define DIFFSDE_VP_BETA_MAX 20.0
/** Relative tolerance of the variance-identity check applied to user SDEs at creation. */
#define DIFFSDE_SDE_IDENTITY_RTOL 1e-6

/** All coefficients at one time t. */
typedef struct diffsde_sde_coefs {
    double t;     /**< the time they were evaluated at */
    double f;     /**< drift coefficient f(t): drift = f(t) x */
    double g2;    /**< squared diffusion g(t)² */
    double g;     /**< diffusion g(t) = √g² */
    double alpha; /**< mean coefficient α(t) */
    double sigma; /**< marginal standard deviation σ(t) */
} diffsde_sde_coefs;

/**
 * Create a VE SDE.
 * @param ctx context (borrowed; must outlive the SDE).
 * @param sigma_min σmin > 0 (finite). @param sigma_max σmax > σmin (finite), with σmax/σmin
 *        finite and log(σmax/σmin) > 0 in double.
 * @param[out] out the SDE, owned by the caller (diffsde_sde_free()); NULL on failure.
 * @return ::DIFFSDE_OK; ::DIFFSDE_ENULL (ctx or out NULL); ::DIFFSDE_EPARAM (the message names
 *         the parameter and its value); ::DIFFSDE_ENOMEM.
 */
DIFFSDE_API int diffsde_sde_new_ve(diffsde_ctx *ctx, double sigma_min, double sigma_max,
                                   diffsde_sde **out);

/**
 * Create a VP SDE.
 * @param ctx context (borrowed; must outlive the SDE).
 * @param beta_min βmin ≥ 0. @param beta_max βmax ≥ βmin, βmax > 0 (both finite).
 * @param[out] out the SDE, owned by the caller (diffsde_sde_free()); NULL on failure.
 * @return as diffsde_sde_new_ve().
 */
DIFFSDE_API int diffsde_sde_new_vp(diffsde_ctx *ctx, double beta_min, double beta_max,
                                   diffsde_sde **out);

/** Create a sub-VP SDE; parameters and returns as diffsde_sde_new_vp(). */
DIFFSDE_API int diffsde_sde_new_subvp(diffsde_ctx *ctx, double beta_min, double beta_max,
                                      diffsde_sde **out);

/**
 * Create a built-in SDE by name ("ve", "vp", "subvp"; case-sensitive) with its default
 * parameters overridden by (keys[i], values[i]) pairs — the command line's
 * `--sde-param key=value`. Keys: "sigma_min", "sigma_max" (VE); "beta_min", "beta_max"
 * (VP, sub-VP).
 *
 * @param ctx context (borrowed; must outlive the SDE).
 * @param name "ve", "vp" or "subvp" (borrowed).
 * @param nparams number of pairs (keys/values may be NULL when 0).
 * @param keys nparams parameter names (borrowed).
 * @param values nparams parameter values (borrowed).
 * @param[out] out the SDE, owned by the caller (diffsde_sde_free()); NULL on failure.
 * @return as diffsde_sde_new_ve(); ::DIFFSDE_EPARAM for an unknown name or key (named in the
 *         message).
 */
DIFFSDE_API int diffsde_sde_new_named(diffsde_ctx *ctx, const char *name, size_t nparams,
                                      const char *const *keys, const double *values,
                                      diffsde_sde **out);

/**
 * Callbacks of a user-defined affine-Gaussian SDE. Each returns the coefficient at t ∈ [0, T]
 * (they are only ever called with such t); a NaN or infinite return is reported as
 * ::DIFFSDE_ENONFINITE, a value of the wrong sign as ::DIFFSDE_EPARAM at creation and
 * ::DIFFSDE_ECALLBACK afterwards. `user` is passed back, borrowed: it must stay valid for the
 * life of the SDE.
 */
typedef struct diffsde_sde_user {
    double (*f)(double t, void *user);     /**< drift coefficient f(t) */
    double (*g2)(double t, void *user);    /**< squared diffusion g(t)² ≥ 0 */
    double (*alpha)(double t, void *user); /**< mean coefficient α(t) > 0 */
    double (*sigma)(double t, void *user); /**< marginal std σ(t) ≥ 0, > 0 for t > 0 */
    void *user;                            /**< passed to every callback */
    double T;                              /**< final time, finite and > 0 */
    double prior_std;                      /**< std of the N(0, s² I) prior; 0 means σ(T) */
} diffsde_sde_user;

/**
 * Create a user-defined SDE. The definition is copied (the `user` pointer inside it is
 * borrowed). At creation, on the 64 interior times t_k = T (k + ½)/64 (plus t = 0 and t = T
 * for the sign checks):
 * - α(t) > 0, g²(t) ≥ 0 everywhere, σ(0) ≥ 0 and σ(t) > 0 for t > 0;
 * - λ(t) strictly decreasing over 0, t_0, …, t_63, T;
 * - the variance identity d(σ²)/dt = 2fσ² + g² with rtol = ::DIFFSDE_SDE_IDENTITY_RTOL (the
 *   scan of diffsde_sde_check_variance_identity() with m = 64);
 * - the mean identity d(log α)/dt = f, by the same differences, with the same rtol; the error
 *   is relative to max(|d log α/dt|, |f|, g²/(2σ²)), so that a negligible f (α ≡ 1) is not
 *   judged on its own.
 * λ(0) and λ(T) are evaluated once here and fix the domain of diffsde_sde_t_from_log_snr().
 *
 * @return ::DIFFSDE_OK; ::DIFFSDE_ENULL (ctx, def, a callback or out NULL); ::DIFFSDE_EPARAM
 *         (T or prior_std invalid, a coefficient of the wrong sign, λ not strictly
 *         decreasing); ::DIFFSDE_ENONFINITE (a callback returned NaN/Inf);
 *         ::DIFFSDE_EINCONSISTENT (an identity violated: the message names it and gives the
 *         worst t and the relative error); ::DIFFSDE_ENOMEM.
 */
DIFFSDE_API int diffsde_sde_new_user(diffsde_ctx *ctx, const diffsde_sde_user *def,
                                     diffsde_sde **out);

/** Free an SDE; NULL is a no-op. */
DIFFSDE_API void diffsde_sde_free(diffsde_sde *sde);

/** Kind of an SDE (0 if sde is NULL). */
DIFFSDE_API diffsde_sde_kind diffsde_sde_get_kind(const diffsde_sde *sde);

/** Short name: "ve", "vp", "subvp" or "user" ("" if sde is NULL). Static storage. */
DIFFSDE_API const char *diffsde_sde_name(const diffsde_sde *sde);

/**
 * Read a named parameter ("sigma_min", "sigma_max", "beta_min", "beta_max", "T").
 * @return ::DIFFSDE_OK; ::DIFFSDE_ENULL; ::DIFFSDE_EPARAM if the kind has no such parameter.
 */
DIFFSDE_API int diffsde_sde_get_param(const diffsde_sde *sde, const char *key, double *value);

/**
 * The time range [t_min, T] = [0, T]. Either out-pointer may be NULL.
 * @return ::DIFFSDE_OK; ::DIFFSDE_ENULL if sde is NULL.
 */
DIFFSDE_API int diffsde_sde_time_range(const diffsde_sde *sde, double *t_min, double *T);

/**
 * The conventional smallest time ε at which sampling stops and likelihoods start:
 * 1e-5 for VE, 1e-3 for VP and sub-VP (score_sde's choices), 1e-3·T for user SDEs.
 * @return ::DIFFSDE_OK; ::DIFFSDE_ENULL.
 */
DIFFSDE_API int diffsde_sde_default_eps(const diffsde_sde *sde, double *eps);

/**
 * All coefficients at t.
 * @param sde the SDE.
 * @param t time in [0, T].
 * @param[out] out filled on success; untouched on failure.
 * @return ::DIFFSDE_OK; ::DIFFSDE_ENULL; ::DIFFSDE_EDOM if t is NaN or outside [0, T];
 *         ::DIFFSDE_ENONFINITE if a user callback returns NaN/Inf; ::DIFFSDE_ECALLBACK if a
 *         user callback returns a value of the wrong sign (α ≤ 0, σ < 0 or g² < 0).
 */
DIFFSDE_API int diffsde_sde_coefs_at(const diffsde_sde *sde, double t, diffsde_sde_coefs *out);

/** α(t); returns as diffsde_sde_coefs_at(). */
DIFFSDE_API int diffsde_sde_alpha(const diffsde_sde *sde, double t, double *alpha);
/** σ(t); returns as diffsde_sde_coefs_at(). */
DIFFSDE_API int diffsde_sde_sigma(const diffsde_sde *sde, double t, double *sigma);
/** f(t); returns as diffsde_sde_coefs_at(). */
DIFFSDE_API int diffsde_sde_drift_coef(const diffsde_sde *sde, double t, double *f);
/** g(t); returns as diffsde_sde_coefs_at(). */
DIFFSDE_API int diffsde_sde_diffusion(const diffsde_sde *sde, double t, double *g);

/**
 * Log signal-to-noise ratio λ(t) = log(α(t)² / σ(t)²), strictly decreasing in t;
 * +∞ where σ(t) = 0 (VP and sub-VP at t = 0). Closed forms for the built-in kinds, computed
 * without cancellation for t → 0 (finite and exact even where B(t) underflows) and for large B:
 * VE −2 log σ; VP −B − log(1 − e^{−B}); sub-VP −B − 2 log(1 − e^{−B}). User SDEs:
 * 2 (log α − log σ).
 * @return as diffsde_sde_coefs_at().
 */
DIFFSDE_API int diffsde_sde_log_snr(const diffsde_sde *sde, double t, double *lambda);

/**
 * Inverse of λ: the t ∈ [0, T] with λ(t) = lambda. Closed forms for the built-in kinds
 * (VP: B = softplus(−λ); sub-VP: e^B = 1 + h/2 + √(h² + 4h)/2 with h = e^{−λ}; then the root of
 * ½Δt² + βmin t = B as 2B/(βmin + √(βmin² + 2ΔB)); all without overflow or cancellation for
 * large |λ|); safeguarded bracketing for user SDEs (bracket width ≤ 2ε·t; regula falsi with
 * bisection fallback, geometric steps towards t = 0). lambda = +∞ gives t = 0 where λ(0) = +∞.
 * Accuracy: t is recovered to ~1e-15 relative for VP, sub-VP and VP-like user SDEs. For VE,
 * λ is linear in t, so a double λ carries t only to an absolute ~ε|λ|/(2 log(σmax/σmin))
 * (≈ 5e-17 for the defaults: 5e-11 relative at t = 1e-6) — the conditioning of λ, not of the
 * inverse.
 * @return ::DIFFSDE_OK; ::DIFFSDE_ENULL; ::DIFFSDE_EDOM if lambda is NaN or outside
 *         [λ(T), λ(0)]; ::DIFFSDE_ECONVERGENCE (user SDE, bracketing failed); a user SDE's
 *         callback errors as diffsde_sde_coefs_at().
 */
DIFFSDE_API int diffsde_sde_t_from_log_snr(const diffsde_sde *sde, double lambda, double *t);

/** Standard deviation s of the prior N(0, s² I): σmax (VE), 1 (VP, sub-VP), user's choice. */
DIFFSDE_API int diffsde_sde_prior_std(const diffsde_sde *sde, double *std);

/**
 * Draw n samples of dimension d from the prior into x (n × d, row-major, caller-owned):
 * x[i*d+j] = s · Z(stream ::DIFFSDE_STREAM_PRIOR, sample sample0+i, step 0, coord j).
 * @return ::DIFFSDE_OK (n = 0 writes nothing); ::DIFFSDE_ENULL; ::DIFFSDE_ESIZE (d = 0 or n·d
 *         overflow); the noise source's errors, returned unchanged (their message is recorded
 *         on the noise source's context).
 */
DIFFSDE_API int diffsde_sde_prior_sample(const diffsde_sde *sde, const diffsde_noise *noise,
                                         uint64_t sample0, size_t n, size_t d, double *x);

/**
 * Prior log-density log N(x; 0, s² I) = −(d/2) log(2π s²) − ‖x‖² / (2 s²) for each of the n
 * rows of x (n × d); writes logp[0..n−1] (caller-owned).
 * @return ::DIFFSDE_OK; ::DIFFSDE_ENULL; ::DIFFSDE_ESIZE (d = 0).
 */
DIFFSDE_API int diffsde_sde_prior_logpdf(const diffsde_sde *sde, size_t n, size_t d,
                                         const double *x, double *logp);

/**
 * One step of the SDE's discretisation on N levels (the reverse-diffusion predictor's view):
 * x_{i+1} = x_i + f_coef · x_i + G · z. Reproduces score_sde (with NumPy float64 tables):
 * - index j = ⌊t (N − 1) / T⌋ evaluated in double, clamped to [0, N − 1];
 * - VE: f_coef = 0, G = √(σ_j² − σ_{j−1}²) with σ_{−1} = 0 (the NCSN table below);
 * - VP: f_coef = √(1 − b_j) − 1, evaluated without cancellation as −b_j/(1 + √(1 − b_j)),
 *   G = √b_j (the DDPM table below);
 * - sub-VP and user: the generic Euler discretisation with dt = T/N (T = 1 for sub-VP):
 *   f_coef = f(t)·dt, G = g(t)·√dt.
 */
typedef struct diffsde_sde_discrete {
    size_t index;  /**< level j in [0, N−1] */
    double f_coef; /**< discrete drift multiplier: f_d = f_coef · x */
    double G;      /**< discrete diffusion */
} diffsde_sde_discrete;

/**
 * Discretisation at time t on N levels (see ::diffsde_sde_discrete).
 * @return ::DIFFSDE_OK; ::DIFFSDE_ENULL; ::DIFFSDE_ESIZE (N < 2); ::DIFFSDE_EDOM (t NaN or
 *         outside [0, T]); ::DIFFSDE_EPARAM for VP when the table's largest entry βmax/N
 *         (computed in double) is ≥ 1, i.e. N ≤ βmax, whatever j (score_sde returns NaN
 *         there, diffsde refuses); a user SDE's callback errors as diffsde_sde_coefs_at().
 */
DIFFSDE_API int diffsde_sde_discretize(const diffsde_sde *sde, size_t N, double t,
                                       diffsde_sde_discrete *out);

/**
 * The discrete table on N levels, written to table[0..N−1] (caller-owned):
 * - VP and sub-VP: DDPM β_i = linspace(βmin/N, βmax/N, N)[i] (NumPy's linspace: start + i·step,
 *   last element exactly βmax/N);
 * - VE: NCSN σ_i = exp(linspace(log σmin, log σmax, N)[i]) (so σ_0 = exp(log σmin), which
 *   may differ from σmin in the last bit, as in score_sde).
 * Entries are computed by the same expressions as diffsde_sde_discretize() uses, so both agree
 * bit for bit. No allocation.
 * @return ::DIFFSDE_OK; ::DIFFSDE_ENULL; ::DIFFSDE_ESIZE (N < 2); ::DIFFSDE_EPARAM (VP/sub-VP
 *         with βmax/N ≥ 1); ::DIFFSDE_EUNSUPPORTED (user SDE).
 */
DIFFSDE_API int diffsde_sde_discrete_table(const diffsde_sde *sde, size_t N, double *table);

/**
 * Check d(σ²)/dt = 2 f σ² + g² at m interior times t_k = T (k + ½)/m by fourth-order central
 * differences of σ²: with y = σ², D1 = (y(t+h) − y(t−h)) / ((t+h) − (t−h)) and D2 likewise
 * for 2h (the spacings as represented in double), d(σ²)/dt ≈ (4 D1 − D2)/3 (the five-point
 * stencil), with step h = min(T/16384, t/64, (T − t)/4).
 * The relative error at t is |d(σ²)/dt − (2fσ² + g²)| / max(|d(σ²)/dt|, |2fσ²| + g², DBL_MIN).
 * Exact SDEs reach ~1e-12 (VE, VP) and ~1e-11 (sub-VP near t = 0) with this rule.
 *
 * @param sde the SDE.
 * @param m number of check times (≥ 1).
 * @param rtol pass threshold on the worst relative error (> 0).
 * @param[out] max_rel_err worst relative error found (may be NULL); written on
 *             ::DIFFSDE_OK and ::DIFFSDE_EINCONSISTENT.
 * @param[out] worst_t time of the worst error (may be NULL); written likewise.
 * @return ::DIFFSDE_OK if the worst error ≤ rtol; ::DIFFSDE_EINCONSISTENT otherwise (message
 *         gives t and the error); ::DIFFSDE_ENULL; ::DIFFSDE_EPARAM (m = 0, rtol ≤ 0 or NaN);
 *         a user SDE's callback errors as diffsde_sde_coefs_at().
 */
DIFFSDE_API int diffsde_sde_check_variance_identity(const diffsde_sde *sde, size_t m,
                                                    double rtol, double *max_rel_err,
                                                    double *worst_t);

#ifdef __cplusplus
}
#endif

#endif /* DIFFSDE_SDE_H */
