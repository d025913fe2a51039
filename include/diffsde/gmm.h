/**
 * @file diffsde/gmm.h
 * @brief The exact oracle: Gaussian mixtures perturbed by any forward SDE.
 *
 * For data p0 = Σ_k w_k N(μ_k, Σ_k) and an SDE with kernel N(α(t) x0, σ(t)² I), the perturbed
 * density is exactly p_t = Σ_k w_k N(α μ_k, α² Σ_k + σ² I). This module gives, batched over n
 * points with per-sample times: log p_t, the exact score ∇ log p_t, its divergence, the
 * component responsibilities; exact samples from p_t; the mean and covariance of p_t.
 *
 * Two objects:
 * - ::diffsde_gmm, the model (weights, means, covariances): immutable once finalised, so it
 *   may be shared by any number of threads and evaluators.
 * - ::diffsde_gmm_eval, an evaluator of one model under one SDE: it caches the Cholesky
 *   factors of C_k(t) = α²Σ_k + σ²I per distinct t and owns scratch space. It is mutable:
 *   one evaluator per thread.
 *
 * Numerics: Cholesky factors by LAPACKE (dpotrf), batched triangular solves (BLAS-3 dtrsm)
 * over blocks of points, log-sum-exp over components, no explicit inverse.
 *
 * p0 itself: an evaluator made with sde = NULL evaluates p0 (α = 1, σ = 0) and ignores t.
 */
#ifndef DIFFSDE_GMM_H
#define DIFFSDE_GMM_H

#include "diffsde/common.h"
#include "diffsde/context.h"
#include "diffsde/noise.h"
#include "diffsde/score.h"
#include "diffsde/sde.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Opaque Gaussian mixture model. */
typedef struct diffsde_gmm diffsde_gmm;

/**
 * Start an empty mixture in dimension dim; add components, then diffsde_gmm_finalize().
 * @param ctx context (borrowed; must outlive the model).
 * @param dim dimension D ≥ 1.
 * @param[out] out the model, owned by the caller (diffsde_gmm_free()); NULL on failure.
 * @return ::DIFFSDE_OK; ::DIFFSDE_ENULL; ::DIFFSDE_ESIZE (dim = 0 or D² overflows);
 *         ::DIFFSDE_ENOMEM.
 */
DIFFSDE_API int diffsde_gmm_new(diffsde_ctx *ctx, size_t dim, diffsde_gmm **out);

/**
 * Add a component with a full covariance.
 * @param gmm a model not yet finalised.
 * @param weight w > 0, finite (weights are normalised at finalisation).
 * @param mean D values (copied).
 * @param cov D × D row-major, symmetric (|C_ij − C_ji| ≤ 1e-12·max|C|) positive definite
 *        (copied; the symmetric average is stored).
 * @return ::DIFFSDE_OK; ::DIFFSDE_ENULL; ::DIFFSDE_ESTATE (already finalised);
 *         ::DIFFSDE_EPARAM (weight ≤ 0 or not finite; NaN/Inf in mean or cov; cov not
 *         symmetric; cov not positive definite — the message names the component index and
 *         the field); ::DIFFSDE_ENOMEM. On failure the model is unchanged.
 */
DIFFSDE_API int diffsde_gmm_add_full(diffsde_gmm *gmm, double weight, const double *mean,
                                     const double *cov);

/** Add a component with a diagonal covariance diag[0..D−1] > 0 (copied); as add_full. */
DIFFSDE_API int diffsde_gmm_add_diag(diffsde_gmm *gmm, double weight, const double *mean,
                                     const double *diag);

/** Add a component with an isotropic covariance var·I, var > 0; as add_full. */
DIFFSDE_API int diffsde_gmm_add_iso(diffsde_gmm *gmm, double weight, const double *mean,
                                    double var);

/**
 * Finalise: normalise the weights, factorise every Σ_k. After this the model is immutable.
 * @return ::DIFFSDE_OK; ::DIFFSDE_ENULL; ::DIFFSDE_ESTATE (no components, or already
 *         finalised); ::DIFFSDE_ENOMEM.
 */
DIFFSDE_API int diffsde_gmm_finalize(diffsde_gmm *gmm);

/**
 * Create a built-in model by name:
 * - "ring8": 2-D, 8 components on the circle of radius 4 at angles 2πk/8, isotropic
 *   variance 0.03, weights ∝ (1, 2, ..., 8);
 * - "grid25": 2-D, 5 × 5 grid at {−4, −2, 0, 2, 4}², isotropic variance 0.05, equal weights;
 * - "gauss1": 2-D single Gaussian, mean (1, −0.5), covariance [[1.5, 0.4], [0.4, 0.6]];
 * - "random:D,K,SEED": K components in D dims, weights U(0.5, 1.5) normalised, means N(0, 9 I),
 *   covariances A Aᵀ/D + 0.1 I with A having N(0, 1) entries: all drawn from Philox with seed
 *   SEED (stream ::DIFFSDE_STREAM_MODEL), so the model is the same on every machine.
 * Returned finalised.
 * @return ::DIFFSDE_OK; ::DIFFSDE_ENULL; ::DIFFSDE_EPARAM (unknown name, malformed
 *         random:D,K,SEED — the message says which part); ::DIFFSDE_ENOMEM.
 */
DIFFSDE_API int diffsde_gmm_new_builtin(diffsde_ctx *ctx, const char *name, diffsde_gmm **out);

/** Free a model; NULL is a no-op. Evaluators of it must be freed first. */
DIFFSDE_API void diffsde_gmm_free(diffsde_gmm *gmm);

/** Dimension D (0 if gmm is NULL). */
DIFFSDE_API size_t diffsde_gmm_dim(const diffsde_gmm *gmm);
/** Number of components K (0 if gmm is NULL). */
DIFFSDE_API size_t diffsde_gmm_ncomponents(const diffsde_gmm *gmm);

/**
 * Read component k: normalised weight, mean (D values) and covariance (D × D row-major).
 * Any out-pointer may be NULL. Valid after finalisation.
 * @return ::DIFFSDE_OK; ::DIFFSDE_ENULL; ::DIFFSDE_ESTATE (not finalised); ::DIFFSDE_ERANGE
 *         (k ≥ K).
 */
DIFFSDE_API int diffsde_gmm_component(const diffsde_gmm *gmm, size_t k, double *weight,
                                      double *mean, double *cov);

/**
 * Mean (D) and covariance (D × D row-major) of p_t under sde (sde NULL: of p0), in closed form:
 * mean = α Σ w_k μ_k, cov = Σ w_k (α² Σ_k + σ² I + α² μ_k μ_kᵀ) − mean meanᵀ.
 * Either output may be NULL.
 * @return ::DIFFSDE_OK; ::DIFFSDE_ENULL; ::DIFFSDE_ESTATE; ::DIFFSDE_EDOM (t outside [0, T]).
 */
DIFFSDE_API int diffsde_gmm_moments(const diffsde_gmm *gmm, const diffsde_sde *sde, double t,
                                    double *mean, double *cov);

/** Opaque evaluator (per-t factor cache + scratch). One per thread. */
typedef struct diffsde_gmm_eval diffsde_gmm_eval;

/**
 * Create an evaluator.
 * @param gmm a finalised model (borrowed; must outlive the evaluator).
 * @param sde the SDE (borrowed; must outlive the evaluator), or NULL for p0 itself.
 * @param[out] out the evaluator, owned by the caller (diffsde_gmm_eval_free()).
 * @return ::DIFFSDE_OK; ::DIFFSDE_ENULL; ::DIFFSDE_ESTATE (model not finalised);
 *         ::DIFFSDE_ENOMEM.
 * Memory: about 2 K D² doubles (two cached times) plus 3 · 256 · D doubles of scratch.
 */
DIFFSDE_API int diffsde_gmm_eval_new(const diffsde_gmm *gmm, const diffsde_sde *sde,
                                     diffsde_gmm_eval **out);

/** Free an evaluator; NULL is a no-op. */
DIFFSDE_API void diffsde_gmm_eval_free(diffsde_gmm_eval *ev);

/**
 * Exact quantities of p_t at n points (x: n × D row-major) with per-sample times t (n
 * values; ignored, and may be NULL, for a p0 evaluator). Any output may be NULL (not
 * computed):
 * - logp (n): log p_t(x);
 * - score (n × D): ∇ log p_t(x);
 * - div (n): ∇·∇ log p_t(x) = Σ_k γ_k (‖s_k‖² − tr C_k⁻¹) − ‖s‖², with s_k = −C_k⁻¹(x − αμ_k);
 * - resp (n × K): responsibilities γ_k(x) = w_k N_k(x)/p_t(x).
 * Points with equal t share one factorisation (cached across calls for the two most recent
 * distinct times). Stable far from every mode (log-sum-exp) and for t → 0 with near-singular
 * Σ_k.
 * @return ::DIFFSDE_OK; ::DIFFSDE_ENULL (ev, or x / t with n > 0); ::DIFFSDE_EDOM (a t outside
 *         [0, T], or σ(t) = 0 with a singular... never for a finalised model: Σ_k is SPD);
 *         ::DIFFSDE_ENONFINITE (NaN/Inf in x: the message names the sample);
 *         ::DIFFSDE_ECONVERGENCE (a factorisation failed: the message names k and t).
 * Thread-safety: not on a shared evaluator; use one per thread.
 */
DIFFSDE_API int diffsde_gmm_evaluate(diffsde_gmm_eval *ev, size_t n, const double *t,
                                     const double *x, double *logp, double *score, double *div,
                                     double *resp);

/**
 * Exact samples from p_t at one time t: sample i (global index sample0 + i) picks component k
 * by inverse-CDF on the weights with U(stream ::DIFFSDE_STREAM_MODEL, step 1, coord 0), then
 * x = α μ_k + L_k z with L_k the Cholesky factor of α²Σ_k + σ²I and z the normals of
 * (stream ::DIFFSDE_STREAM_MODEL, step 0, coords 0..D−1). Reproducible: sample i does not
 * depend on n or sample0.
 * @param ev evaluator (t ignored for p0). @param noise a Philox source (callback sources
 *        cannot give uniforms: ::DIFFSDE_EUNSUPPORTED).
 * @param x n × D output (caller-owned).
 * @return ::DIFFSDE_OK; ::DIFFSDE_ENULL; ::DIFFSDE_EDOM; the noise source's errors.
 */
DIFFSDE_API int diffsde_gmm_sample(diffsde_gmm_eval *ev, const diffsde_noise *noise, double t,
                                   uint64_t sample0, size_t n, double *x);

/**
 * The exact score of p_t as a ready model: a ::diffsde_score (parametrisation
 * ::DIFFSDE_PARAM_SCORE) whose callback evaluates this mixture under `sde`, so that any
 * sampler can be run on the exact model. The score object owns a private evaluator (freed
 * with it); it is not thread-safe (flag 0).
 * @param gmm finalised model, borrowed (must outlive the score). @param sde borrowed likewise.
 * @param[out] out owned by the caller (diffsde_score_free()).
 * @return as diffsde_gmm_eval_new().
 */
DIFFSDE_API int diffsde_gmm_score_new(const diffsde_gmm *gmm, const diffsde_sde *sde,
                                      diffsde_score **out);

/**
 * Posterior of the mixture prior given y = A x + n, n ~ N(0, Σ_y): again a mixture, with
 * components (Bayes for each Gaussian, marginal likelihood for the weights)
 *   S_k = (Σ_k⁻¹ + Aᵀ Σ_y⁻¹ A)⁻¹ computed as Σ_k − Σ_k Aᵀ (A Σ_k Aᵀ + Σ_y)⁻¹ A Σ_k,
 *   m_k = μ_k + Σ_k Aᵀ (A Σ_k Aᵀ + Σ_y)⁻¹ (y − A μ_k),
 *   w'_k ∝ w_k N(y; A μ_k, A Σ_k Aᵀ + Σ_y).
 * @param prior finalised prior (dimension D).
 * @param m number of observations (rows of A), ≥ 1.
 * @param A m × D row-major. @param y m values. @param noise_cov m × m SPD row-major.
 * @param[out] out the posterior, finalised, owned by the caller.
 * @return ::DIFFSDE_OK; ::DIFFSDE_ENULL; ::DIFFSDE_ESIZE; ::DIFFSDE_EPARAM (noise_cov not SPD,
 *         NaN input); ::DIFFSDE_ENOMEM.
 */
DIFFSDE_API int diffsde_gmm_posterior(const diffsde_gmm *prior, size_t m, const double *A,
                                      const double *y, const double *noise_cov,
                                      diffsde_gmm **out);

#ifdef __cplusplus
}
#endif

#endif /* DIFFSDE_GMM_H */
