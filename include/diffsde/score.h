/**
 * @file diffsde/score.h
 * @brief The model: a batched score callback, its parametrisation, and the conversions between
 *        parametrisations.
 *
 * A score-based model gives, for a batch of n points x (n × d, row-major) at per-sample times
 * t (n values), one of four equivalent outputs (x = α x̂0 + σ ε̂ under the SDE's kernel):
 *
 * | parametrisation | output | relation to the score s = ∇ log p_t(x) |
 * |---|---|---|
 * | ::DIFFSDE_PARAM_SCORE | s                    | — |
 * | ::DIFFSDE_PARAM_EPS   | ε̂ (noise prediction) | ε̂ = −σ s |
 * | ::DIFFSDE_PARAM_X0    | x̂0 (data prediction, Tweedie) | x̂0 = (x + σ² s)/α |
 * | ::DIFFSDE_PARAM_V     | v̂ = α ε̂ − σ x̂0       | v̂ = −(σ/α)(x + (α² + σ²) s) |
 *
 * v follows Salimans & Ho (2022), written for any α, σ (not only α² + σ² = 1): the inverse is
 * ε̂ = (σ x + α v̂)/(α² + σ²), x̂0 = (α x − σ v̂)/(α² + σ²).
 *
 * Conversions go through ε̂, which is defined at every t; those that divide by σ (to the score,
 * from x̂0) are undefined where σ(t) = 0 (VP and sub-VP at t = 0) and are refused there.
 */
#ifndef DIFFSDE_SCORE_H
#define DIFFSDE_SCORE_H

#include "diffsde/common.h"
#include "diffsde/context.h"
#include "diffsde/sde.h"

#ifdef __cplusplus
extern "C" {
#endif

/** What a model's callback returns. */
typedef enum diffsde_param {
    DIFFSDE_PARAM_SCORE = 0, /**< the score ∇ log p_t(x) */
    DIFFSDE_PARAM_EPS = 1,   /**< noise prediction ε̂ */
    DIFFSDE_PARAM_X0 = 2,    /**< data prediction x̂0 */
    DIFFSDE_PARAM_V = 3      /**< velocity v̂ = α ε̂ − σ x̂0 */
} diffsde_param;

/**
 * The batched model callback.
 *
 * @param n    number of samples in the batch (≥ 1).
 * @param d    dimension of each sample (≥ 1).
 * @param t    n per-sample times (borrowed, read only for the call); adaptive solvers give
 *             each sample its own time.
 * @param x    n × d points, row-major (borrowed, read only).
 * @param out  n × d output in the model's parametrisation (borrowed, write only; does not
 *             alias x).
 * @param user the pointer given at diffsde_score_new().
 * @return 0 on success; > 0 recoverable failure (an adaptive solver shrinks the step and
 *         retries; a fixed-step solver stops with ::DIFFSDE_ERETRY); < 0 fatal (the run stops
 *         with ::DIFFSDE_ECALLBACK and the code in the message). NaN/Inf written to `out` is
 *         detected by the library and treated like a recoverable failure
 *         (::DIFFSDE_ENONFINITE), reported with the sample, coordinate and t.
 */
typedef int (*diffsde_score_fn)(size_t n, size_t d, const double *t, const double *x,
                                double *out, void *user);

/**
 * Name of a parametrisation: "score", "eps", "x0" or "v"; "" for an invalid value.
 * Thread-safety: safe from any thread.
 */
DIFFSDE_API const char *diffsde_param_name(diffsde_param param);

/**
 * Parse a parametrisation name (as diffsde_param_name() gives; also "epsilon", "noise",
 * "data").
 * @return ::DIFFSDE_OK; ::DIFFSDE_ENULL; ::DIFFSDE_EPARAM for an unknown name (no context, so
 *         no message: the caller knows the string).
 */
DIFFSDE_API int diffsde_param_from_name(const char *name, diffsde_param *param);

/**
 * Convert model outputs between parametrisations under an SDE's kernel (table above).
 *
 * @param sde   the SDE giving α(t), σ(t) (borrowed).
 * @param from, to parametrisations.
 * @param n, d  batch shape; d ≥ 1.
 * @param t     n per-sample times in [0, T].
 * @param x     n × d points the outputs refer to.
 * @param in    n × d values in `from`.
 * @param out   n × d values in `to` (caller-owned); may be the same array as `in` (in place).
 * @return ::DIFFSDE_OK; ::DIFFSDE_ENULL; ::DIFFSDE_ESIZE (d = 0, n·d overflow);
 *         ::DIFFSDE_EPARAM (invalid parametrisation); ::DIFFSDE_EDOM (a t outside [0, T], or
 *         a conversion dividing by σ(t) = 0; the message gives the sample and t). Every t is
 *         checked before anything is written, so on failure `out` is untouched.
 * Thread-safety: safe (no shared state beyond the SDE's context for messages).
 */
DIFFSDE_API int diffsde_param_convert(const diffsde_sde *sde, diffsde_param from,
                                      diffsde_param to, size_t n, size_t d, const double *t,
                                      const double *x, const double *in, double *out);

/** Opaque model: a callback plus what it returns and what the library may do with it. */
typedef struct diffsde_score diffsde_score;

/**
 * Create a model from a batched callback.
 *
 * @param ctx   context (borrowed; must outlive the model).
 * @param fn    the callback (required).
 * @param user  passed to every call; borrowed — it must stay valid for the model's life.
 * @param param what `fn` returns.
 * @param[out] out the model, owned by the caller (diffsde_score_free()); NULL on failure.
 * @return ::DIFFSDE_OK; ::DIFFSDE_ENULL; ::DIFFSDE_EPARAM (invalid param); ::DIFFSDE_ENOMEM.
 */
DIFFSDE_API int diffsde_score_new(diffsde_ctx *ctx, diffsde_score_fn fn, void *user,
                                  diffsde_param param, diffsde_score **out);

/**
 * Give the model ownership of its user pointer: `release(user)` is called once by
 * diffsde_score_free(). Used by adapters that create their own state (the Gaussian-mixture
 * oracle, plugins). NULL restores the default (the user pointer is borrowed).
 * @return ::DIFFSDE_OK; ::DIFFSDE_ENULL if score is NULL.
 */
DIFFSDE_API int diffsde_score_set_release(diffsde_score *score, void (*release)(void *user));

/** Free a model; NULL is a no-op. Calls the release hook, if set, on the user pointer. */
DIFFSDE_API void diffsde_score_free(diffsde_score *score);

/** The parametrisation the model's callback returns (−1 if score is NULL). */
DIFFSDE_API int diffsde_score_get_param(const diffsde_score *score);

/**
 * Declare whether the callback may be called concurrently on disjoint parts of a batch
 * (default 0: never). Only then may the library split a batch across threads. Results never
 * depend on this flag (see the reproducibility promise).
 * @return ::DIFFSDE_OK; ::DIFFSDE_ENULL.
 */
DIFFSDE_API int diffsde_score_set_thread_safe(diffsde_score *score, int thread_safe);

/** Whether the callback was declared thread-safe (0 or 1; 0 if score is NULL). */
DIFFSDE_API int diffsde_score_get_thread_safe(const diffsde_score *score);

/**
 * Evaluate the score ∇ log p_t(x) of a batch: call the callback, check its output, convert it
 * to the score under the SDE's kernel.
 *
 * @param score the model. @param sde the SDE defining α, σ for the conversion.
 * @param n, d  batch shape (d ≥ 1; n = 0 does nothing).
 * @param t     n per-sample times in [0, T] (borrowed).
 * @param x     n × d points (borrowed; must not alias s).
 * @param s     n × d output: the score (caller-owned).
 * @return ::DIFFSDE_OK; ::DIFFSDE_ENULL; ::DIFFSDE_ESIZE; ::DIFFSDE_EDOM (t outside [0, T],
 *         or σ(t) = 0 for a non-score parametrisation); ::DIFFSDE_ERETRY (callback returned
 *         > 0); ::DIFFSDE_ECALLBACK (callback returned < 0; its code is in the message);
 *         ::DIFFSDE_ENONFINITE (NaN/Inf in the output: the message names the sample index in
 *         the batch, the coordinate, the value and t). On failure `s` is unspecified.
 * Thread-safety: as thread-safe as the callback; the model itself is not modified.
 */
DIFFSDE_API int diffsde_score_eval(const diffsde_score *score, const diffsde_sde *sde, size_t n,
                                   size_t d, const double *t, const double *x, double *s);

/**
 * Optional log-density callback of a model: log p_t(x) for a batch, e.g. the exact mixture
 * oracle or an energy-based model. Used by the Metropolis-adjusted Langevin corrector
 * ("mala"), which needs differences log p_t(y) − log p_t(x) at one t: the values may carry
 * an additive constant that depends on t but not on x (an unnormalised log-density).
 *
 * @param n    number of samples in the batch (≥ 1).
 * @param d    dimension of each sample (≥ 1).
 * @param t    n per-sample times (borrowed, read only for the call).
 * @param x    n × d points, row-major (borrowed, read only).
 * @param logp n outputs, log p_t(x_i) (borrowed, write only; does not overlap x).
 * @param user the model's user pointer, the same as the score callback's (diffsde_score_new()).
 * @return 0 on success; > 0 recoverable failure (::DIFFSDE_ERETRY); < 0 fatal
 *         (::DIFFSDE_ECALLBACK, the code in the message). NaN/Inf written to `logp` is
 *         reported as ::DIFFSDE_ENONFINITE with the sample and t.
 */
typedef int (*diffsde_logp_fn)(size_t n, size_t d, const double *t, const double *x,
                               double *logp, void *user);

/**
 * Give the model a log-density callback (fn non-NULL) or remove it (fn NULL). It receives
 * the same user pointer as the score callback. diffsde_gmm_score_new() sets the exact
 * log p_t of the mixture.
 * @param score the model. @param fn the callback, or NULL to clear it.
 * @return ::DIFFSDE_OK; ::DIFFSDE_ENULL if score is NULL.
 * Thread-safety: modifies the model; not concurrently with any use of it.
 */
DIFFSDE_API int diffsde_score_set_logp(diffsde_score *score, diffsde_logp_fn fn);

/** 1 if the model has a log-density callback (diffsde_score_set_logp()), else 0 (also for
 *  a NULL model). Thread-safety: safe (reads the model). */
DIFFSDE_API int diffsde_score_has_logp(const diffsde_score *score);

/**
 * Evaluate the model's log-density log p_t(x) of a batch through its log-density callback,
 * and check the output.
 *
 * The model does not know the SDE, so the times are checked for what is knowable without
 * it: every t must be finite and ≥ 0 (the upper end T is the caller's to respect; the
 * samplers only pass times of their grid). As in diffsde_score_eval(), a bad t never reaches
 * the callback.
 *
 * @param score the model (must have a log-density callback).
 * @param n, d  batch shape (d ≥ 1; n = 0 does nothing and calls nothing).
 * @param t     n per-sample times (borrowed).
 * @param x     n × d points (borrowed; must not overlap logp).
 * @param logp  n outputs (caller-owned).
 * @return ::DIFFSDE_OK; ::DIFFSDE_ENULL (score — no message then —, or t, x, logp with
 *         n > 0); ::DIFFSDE_ESIZE (d = 0, n·d overflow); ::DIFFSDE_EUNSUPPORTED (the model
 *         has no log-density callback); ::DIFFSDE_EDOM (a t NaN, infinite or negative: the
 *         message names the sample and t); ::DIFFSDE_ERETRY (callback returned > 0);
 *         ::DIFFSDE_ECALLBACK (callback returned < 0; its code is in the message);
 *         ::DIFFSDE_ENONFINITE (NaN/Inf in the output: the message names the sample index in
 *         the batch, the value and t). Messages go to the model's context. On failure `logp`
 *         is unspecified.
 * Thread-safety: as thread-safe as the callback; the model itself is not modified.
 */
DIFFSDE_API int diffsde_score_eval_logp(const diffsde_score *score, size_t n, size_t d,
                                        const double *t, const double *x, double *logp);

/**
 * Optional divergence callback of a model: ∇·s(x, t) = Σ_j ∂s_j/∂x_j, the trace of the score's
 * Jacobian, for a batch — always of the *score*, whatever the model's parametrisation (for an
 * ε̂-model that is −∇·ε̂/σ; for an x̂0-model (α ∇·x̂0 − d)/σ²). The likelihood
 * (diffsde_loglik_eval()) uses it for the exact divergence; without it the exact divergence is
 * computed by d central finite-difference Jacobian–vector products.
 *
 * @param n    number of samples in the batch (≥ 1).
 * @param d    dimension of each sample (≥ 1).
 * @param t    n per-sample times (borrowed, read only for the call).
 * @param x    n × d points, row-major (borrowed, read only).
 * @param div  n outputs, ∇·s(x_i, t_i) (borrowed, write only; does not overlap x).
 * @param user the model's user pointer, the same as the score callback's.
 * @return 0 on success; > 0 recoverable failure (::DIFFSDE_ERETRY); < 0 fatal
 *         (::DIFFSDE_ECALLBACK). NaN/Inf in `div` is reported as ::DIFFSDE_ENONFINITE.
 */
typedef int (*diffsde_div_fn)(size_t n, size_t d, const double *t, const double *x, double *div,
                              void *user);

/**
 * Give the model a divergence callback (fn non-NULL) or remove it (fn NULL); it receives the
 * score callback's user pointer. diffsde_gmm_score_new() sets the mixture's exact divergence.
 * @return ::DIFFSDE_OK; ::DIFFSDE_ENULL if score is NULL.
 * Thread-safety: modifies the model; not concurrently with any use of it.
 */
DIFFSDE_API int diffsde_score_set_divergence(diffsde_score *score, diffsde_div_fn fn);

/** 1 if the model has a divergence callback, else 0 (also for NULL). Thread-safety: safe. */
DIFFSDE_API int diffsde_score_has_divergence(const diffsde_score *score);

/**
 * Evaluate ∇·s(x, t) through the model's divergence callback and check the output.
 * The times are validated against the SDE first (as diffsde_score_eval() does).
 * @param score the model (must have a divergence callback). @param sde the SDE (for the
 *        time check). @param n, d batch shape (n = 0 calls nothing). @param t n times.
 * @param x n × d points. @param div n outputs (caller-owned).
 * @return ::DIFFSDE_OK; ::DIFFSDE_ENULL; ::DIFFSDE_ESIZE; ::DIFFSDE_EUNSUPPORTED (no
 *         divergence callback); ::DIFFSDE_EDOM (t outside [0, T]); ::DIFFSDE_ERETRY;
 *         ::DIFFSDE_ECALLBACK; ::DIFFSDE_ENONFINITE (the message names the sample and t).
 *         Messages go to the model's context. On failure `div` is unspecified.
 * Thread-safety: as thread-safe as the callback.
 */
DIFFSDE_API int diffsde_score_eval_divergence(const diffsde_score *score, const diffsde_sde *sde,
                                              size_t n, size_t d, const double *t,
                                              const double *x, double *div);

#ifdef __cplusplus
}
#endif

#endif /* DIFFSDE_SCORE_H */
