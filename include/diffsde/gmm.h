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
 * over blocks of up to 256 points (vectorised hand-written substitutions for D ≤ 8, where the BLAS call
 * overhead dominates), log-sum-exp over components, no explicit inverse.
 *
 * Reproducibility: the results for a point do not depend on the other points of the batch
 * (nor on how the batch is grouped by t or cut into blocks): bit for bit, with the OpenBLAS
 * kernels the test suite checks.
 *
 * p0 itself: an evaluator made with sde = NULL evaluates p0 (α = 1, σ = 0) and ignores t.
 *
 * Messages of failing calls are recorded on the model's context (that of diffsde_gmm_new()),
 * except the noise source's own errors in diffsde_gmm_sample(), recorded on its context.
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
 * @return ::DIFFSDE_OK; ::DIFFSDE_ENULL (ctx — no message then — or out); ::DIFFSDE_ESIZE
 *         (dim = 0, or D² doubles overflow size_t); ::DIFFSDE_ENOMEM.
 * Thread-safety: a model under construction is not thread-safe; a finalised one is read only.
 */
DIFFSDE_API int diffsde_gmm_new(diffsde_ctx *ctx, size_t dim, diffsde_gmm **out);

/**
 * Add a component with a full covariance. The covariance is checked and factorised here
 * (Cholesky, LAPACKE dpotrf): "positive definite" means that this factorisation succeeds in
 * double precision.
 * @param gmm a model not yet finalised.
 * @param weight w > 0, finite (weights are normalised at finalisation).
 * @param mean D values (copied).
 * @param cov D × D row-major, symmetric (|C_ij − C_ji| ≤ 1e-12·max|C|) positive definite
 *        (copied; the symmetric average is stored).
 * @return ::DIFFSDE_OK; ::DIFFSDE_ENULL (gmm — no message then —, mean or cov);
 *         ::DIFFSDE_ESTATE (already finalised); ::DIFFSDE_EPARAM (weight ≤ 0 or not finite;
 *         NaN/Inf in mean or cov; cov not symmetric; cov not positive definite — the message
 *         names the component index, the field and the entry); ::DIFFSDE_ESIZE (the component
 *         arrays would overflow size_t); ::DIFFSDE_ENOMEM. On failure the model is unchanged.
 */
DIFFSDE_API int diffsde_gmm_add_full(diffsde_gmm *gmm, double weight, const double *mean,
                                     const double *cov);

/** Add a component with a diagonal covariance diag[0..D−1], each > 0 and finite (copied); as
 *  diffsde_gmm_add_full() (messages name diag[j]). */
DIFFSDE_API int diffsde_gmm_add_diag(diffsde_gmm *gmm, double weight, const double *mean,
                                     const double *diag);

/** Add a component with an isotropic covariance var·I, var > 0 and finite; as
 *  diffsde_gmm_add_full() (messages name var). */
DIFFSDE_API int diffsde_gmm_add_iso(diffsde_gmm *gmm, double weight, const double *mean,
                                    double var);

/**
 * Finalise: normalise the weights, w_k / Σ_j w_j, from their logarithms by log-sum-exp (each
 * Σ_k was checked and factorised when it was added). After this the model is immutable.
 * @return ::DIFFSDE_OK; ::DIFFSDE_ENULL; ::DIFFSDE_ESTATE (no components, or already
 *         finalised); ::DIFFSDE_ENOMEM (the model is then unchanged, still open).
 */
DIFFSDE_API int diffsde_gmm_finalize(diffsde_gmm *gmm);

/**
 * Create a built-in model by name:
 * - "ring8": 2-D, 8 components, component k (k = 0..7) with mean 4 (cos 2πk/8, sin 2πk/8),
 *   isotropic variance 0.03, weight ∝ k + 1;
 * - "grid25": 2-D, 25 components, component k = 5i + j (i, j = 0..4) with mean
 *   (−4 + 2i, −4 + 2j), isotropic variance 0.05, equal weights;
 * - "gauss1": 2-D single Gaussian, mean (1, −0.5), covariance [[1.5, 0.4], [0.4, 0.6]];
 * - "random:D,K,SEED": K components in D dims; component k takes, with
 *   U(step, coord) = diffsde_noise_uniform_at(SEED, ::DIFFSDE_STREAM_MODEL, k, step, coord) and
 *   Z likewise from diffsde_noise_normal_at():
 *   weight ∝ 0.5 + U(0, 0) (so U(0.5, 1.5) before normalisation), mean μ_j = 3 Z(1, j)
 *   (N(0, 9 I)), covariance A Aᵀ/D + 0.1 I with A_il = Z(2, i·D + l). The products are
 *   summed in a fixed order without BLAS, so the model is the same on every machine.
 *   D, K and SEED are plain decimal numbers (digits only: no sign, space or other base),
 *   1 ≤ D ≤ 65536, 1 ≤ K ≤ 65536, 0 ≤ SEED < 2^64.
 * Returned finalised.
 * @param ctx context (borrowed; must outlive the model). @param name the name (borrowed).
 * @param[out] out the model, owned by the caller (diffsde_gmm_free()); NULL on failure.
 * @return ::DIFFSDE_OK; ::DIFFSDE_ENULL; ::DIFFSDE_EPARAM (unknown name; malformed
 *         random:D,K,SEED — the message names the first faulty part, D, K or SEED, and why:
 *         empty, missing, not a decimal integer, zero, overflowing, above its maximum, or a
 *         fourth part); ::DIFFSDE_ENOMEM.
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
 * Mean (D) and covariance (D × D row-major) of p_t under sde (sde NULL: of p0; t ignored), in
 * closed form: mean = α m̄ with m̄ = Σ w_k μ_k, cov = Σ w_k (α² Σ_k + σ² I + α² μ_k μ_kᵀ) −
 * mean meanᵀ, computed without that cancellation as α² Σ w_k (Σ_k + (μ_k − m̄)(μ_k − m̄)ᵀ) + σ² I.
 * Either output may be NULL (caller-owned otherwise).
 * @return ::DIFFSDE_OK; ::DIFFSDE_ENULL; ::DIFFSDE_ESTATE (not finalised); ::DIFFSDE_EDOM (t NaN
 *         or outside [0, T]); a user SDE's callback errors (see diffsde_sde_coefs_at()).
 * Thread-safety: safe (the model is only read).
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
 * @return ::DIFFSDE_OK; ::DIFFSDE_ENULL (gmm — no message then — or out); ::DIFFSDE_ESTATE
 *         (model not finalised); ::DIFFSDE_ESIZE (the sizes below overflow size_t);
 *         ::DIFFSDE_ENOMEM.
 * Memory, all allocated here (diffsde_gmm_evaluate() and diffsde_gmm_sample() allocate
 * nothing): 2 K (D² + D + 2) doubles (the factors of two cached times) plus 3 · 256 · D +
 * 256 · (K + 6) doubles of scratch.
 * Thread-safety: several evaluators may share one model, one per thread.
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
 * Points whose t values are equal (==) share one factorisation of each C_k = α²Σ_k + σ²I
 * (cached across calls for the two most recently used distinct times; tr C_k⁻¹ is computed
 * only when div is requested). C_k is symmetric positive definite for every t, including
 * σ(t) = 0 (VP, sub-VP at t = 0; p0), so no t in [0, T] is excluded; for t → 0 with a
 * near-singular Σ_k the results keep the accuracy the conditioning of C_k allows. Stable far
 * from every mode: log-sum-exp over components, the score as a weighted mean and the
 * divergence as Σ_k γ_k ‖s_k − s‖² − Σ_k γ_k tr C_k⁻¹ (no cancellation of ‖s‖²).
 * Cost: O(K D²) per point, plus O(K D³) per new t (the factorisation; D³ more with div).
 * @return ::DIFFSDE_OK (n = 0: nothing is read; no output requested: the inputs are only
 *         checked);
 *         ::DIFFSDE_ENULL (ev — no message then —, or x, or t for an SDE evaluator, with
 *         n > 0); ::DIFFSDE_EDOM (a t NaN or outside [0, T]: the message names the sample and
 *         t); ::DIFFSDE_ENONFINITE (NaN/Inf in x: the message names the sample and the
 *         coordinate; or a point so far out, ~1e150 in units of the components' spread, that
 *         log p_t or the score overflows: the message names the sample); a user SDE's
 *         callback errors (see diffsde_sde_coefs_at()); ::DIFFSDE_ECONVERGENCE (dpotrf failed
 *         on C_k — only when rounding destroys its definiteness, condition number ≳ 1e16: the
 *         message names k, t, α and σ). Every t and x is checked before anything is written;
 *         after a later failure (the last two kinds) the outputs are partially written.
 * Thread-safety: not on a shared evaluator; use one per thread.
 */
DIFFSDE_API int diffsde_gmm_evaluate(diffsde_gmm_eval *ev, size_t n, const double *t,
                                     const double *x, double *logp, double *score, double *div,
                                     double *resp);

/**
 * Exact samples from p_t at one time t: sample i (global index sample0 + i) picks component k
 * by inverse-CDF on the weights with U = U(stream ::DIFFSDE_STREAM_MODEL, step 1, coord 0):
 * the first k with U < w_0 + … + w_k (the last component of positive weight should rounding
 * leave U above the final sum), then x = α μ_k + L_k z with L_k the lower Cholesky factor of
 * α²Σ_k + σ²I and z the normals of (stream ::DIFFSDE_STREAM_MODEL, step 0, coords 0..D−1).
 * Reproducible: sample i does not depend on n or sample0 (bit for bit).
 * @param ev evaluator (its factor cache is used and updated). @param noise a Philox source
 *        (borrowed; callback sources cannot give uniforms: ::DIFFSDE_EUNSUPPORTED).
 * @param t time in [0, T] (ignored for p0). @param sample0 global index of the first sample.
 * @param n number of samples. @param x n × D output (caller-owned; may be NULL when n = 0).
 * @return ::DIFFSDE_OK; ::DIFFSDE_ENULL (ev — no message then —, noise, or x with n > 0);
 *         ::DIFFSDE_EDOM (t NaN or outside [0, T]); ::DIFFSDE_ECONVERGENCE and a user SDE's
 *         errors as diffsde_gmm_evaluate(); the noise source's errors, returned unchanged
 *         (::DIFFSDE_EUNSUPPORTED, ::DIFFSDE_ERANGE when sample0 + n > 2^48; message on the
 *         noise source's context). On failure x is unspecified.
 * Thread-safety: not on a shared evaluator.
 */
DIFFSDE_API int diffsde_gmm_sample(diffsde_gmm_eval *ev, const diffsde_noise *noise, double t,
                                   uint64_t sample0, size_t n, double *x);

/**
 * The exact score of p_t as a ready model: a ::diffsde_score (parametrisation
 * ::DIFFSDE_PARAM_SCORE) whose callback evaluates this mixture under `sde`, so that any
 * sampler can be run on the exact model. The score object owns a private evaluator (its user
 * pointer, released by diffsde_score_free()); it is not thread-safe (flag 0). The callback
 * returns the evaluator's status on failure (negative: fatal, the details on the model's
 * context), ::DIFFSDE_ESIZE if called with d ≠ D. The model also has the exact log p_t
 * (diffsde_score_set_logp()) and the exact divergence ∇·∇log p_t
 * (diffsde_score_set_divergence()), evaluated on the same private evaluator.
 * @param gmm finalised model, borrowed (must outlive the score). @param sde borrowed likewise,
 *        or NULL for the score of p0 (t ignored).
 * @param[out] out owned by the caller (diffsde_score_free()); NULL on failure.
 * @return as diffsde_gmm_eval_new().
 */
DIFFSDE_API int diffsde_gmm_score_new(const diffsde_gmm *gmm, const diffsde_sde *sde,
                                      diffsde_score **out);

/**
 * Posterior of the mixture prior given an observation y = A x + n, n ~ N(0, Σ_y): again a
 * mixture, component by component (Bayes for each Gaussian, marginal likelihood for the
 * weights). With S_k = A Σ_k Aᵀ + Σ_y and the gain G_k = Σ_k Aᵀ S_k⁻¹:
 *   m_k  = μ_k + G_k (y − A μ_k),
 *   P_k  = (I − G_k A) Σ_k (I − G_k A)ᵀ + G_k Σ_y G_kᵀ   (= (Σ_k⁻¹ + Aᵀ Σ_y⁻¹ A)⁻¹),
 *   w'_k ∝ w_k N(y; A μ_k, S_k)   (normalised by log-sum-exp).
 * P_k is computed in this Joseph form, as the sum of two Gram matrices, rather than as
 * Σ_k − G_k A Σ_k: it is symmetric positive semi-definite whatever the rounding, and stays
 * accurate as Σ_y → 0 (A = I, Σ_y = 1e-20 I: P_k ≈ Σ_y to ~1e-12 relative, where the short
 * form loses every digit). Numerics: Cholesky of Σ_y and of each S_k (LAPACKE dpotrf),
 * triangular solves (no explicit inverse), BLAS-3 products.
 *
 * Component k of the posterior is the update of component k of the prior, for every k: a
 * component whose posterior weight underflows (y far in the tails: log-weight differences
 * beyond ~745) keeps its exact log weight in the model and a weight of 0 (or subnormal) as
 * read by diffsde_gmm_component().
 *
 * @param prior finalised prior of dimension D (borrowed, read only; its context receives the
 *        messages and provides the memory).
 * @param m number of observations (rows of A), 1 ≤ m ≤ INT_MAX; any m relative to D
 *        (under- or over-determined).
 * @param A m × D row-major, finite (borrowed). @param y m values, finite (borrowed).
 * @param noise_cov Σ_y: m × m row-major, finite, symmetric (|C_ij − C_ji| ≤ 1e-12·max|C|; the
 *        symmetric average is used) and positive definite (borrowed).
 * @param[out] out the posterior (dimension D, K components, finalised), owned by the caller
 *        (diffsde_gmm_free()); NULL on failure.
 * @return ::DIFFSDE_OK;
 *         ::DIFFSDE_ENULL (prior — no message then —, A, y, noise_cov or out NULL);
 *         ::DIFFSDE_ESTATE (prior not finalised);
 *         ::DIFFSDE_ESIZE (m = 0, m or D > INT_MAX, or the scratch size overflows);
 *         ::DIFFSDE_EPARAM (NaN/Inf in A, y or noise_cov — the message names the entry;
 *         noise_cov not symmetric or not positive definite; A Σ_k Aᵀ + Σ_y not numerically
 *         positive definite, or a posterior covariance P_k not numerically positive definite
 *         — both happen only when Σ_y is below ~1e-16 of the prior's covariance along the
 *         observed directions, with A rank-deficient or P_k's condition number beyond 1/ε;
 *         the log-likelihood of y, or m_k, P_k, overflowing — y absurdly far out; every such
 *         message names the component k);
 *         ::DIFFSDE_ENOMEM.
 * Memory: one scratch block of 2D² + 2mD + 2m² + D + m doubles per call, plus the result.
 * Cost: O(K (D³ + m D² + m² D + m³)).
 * Thread-safety: safe to call concurrently on one prior (it is only read); messages go to the
 * prior's context (see context.h for shared contexts).
 */
DIFFSDE_API int diffsde_gmm_posterior(const diffsde_gmm *prior, size_t m, const double *A,
                                      const double *y, const double *noise_cov,
                                      diffsde_gmm **out);

#ifdef __cplusplus
}
#endif

#endif /* DIFFSDE_GMM_H */
