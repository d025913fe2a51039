/**
 * @file diffsde/likelihood.h
 * @brief Exact log-likelihoods through the probability-flow ODE.
 *
 * For data x at time ε, the flow ODE carries x to x(T), and the instantaneous
 * change-of-variables formula gives
 *
 *     log p_ε(x) = log p_T(x(T)) + ∫_ε^T ∇·v(x(t), t) dt,   v = f x − ½ g² s,
 *     ∇·v = d·f(t) − ½ g(t)² ∇·s(x, t),
 *
 * integrated from ε to T together with the state (one augmented ODE of d + 1 components per
 * sample, with any adaptive or fixed-grid integrator of diffsde/ode.h; the few-step methods,
 * which need the flow's structure, are refused).
 *
 * ## Divergence
 * - "exact": the model's divergence callback (diffsde_score_set_divergence()) when it has
 *   one, else d central finite-difference Jacobian–vector products along the coordinate axes
 *   (2d extra score evaluations per right-hand side);
 * - "hutchinson": the Hutchinson–Skilling estimate ∇·s ≈ (1/K) Σ_k v_kᵀ J v_k with K probes
 *   v_k fixed for the whole solve of a sample (Rademacher ±1 or standard normal), each
 *   Jᵀv by one central finite difference (2K extra evaluations per right-hand side). Probe k
 *   of global sample i is the row (stream ::DIFFSDE_STREAM_PROBE, step k, sample i): the
 *   estimate of a sample does not depend on its batch. Unbiased for the divergence; the log
 *   density it gives is unbiased up to the (small) effect of the integration.
 * The central difference uses h = cbrt(DBL_EPSILON)·max(1, RMS of the row) along unit-RMS
 * probe directions (an axis JVP moves its one coordinate by h), unless
 * ::diffsde_loglik_options.fd_step sets the absolute step h itself.
 *
 * ## Terminal density
 * "prior" (default): the SDE's prior N(0, s²I), which is only approximately p_T — on the
 * standard problems that mismatch alone is 1e-3–1e-2 nats. "exact": the model's own
 * log-density at T (diffsde_score_set_logp(); for the mixture oracle the exact p_T), so that
 * only the integration error remains.
 *
 * ## Discrete data
 * When the data are quantised with bins of width b (in the units the model sees: for 8-bit
 * images scaled to [−1, 1], b = 2/256), ::diffsde_loglik_options.bin_width = b makes the
 * bits-per-dimension figure that of the discrete data: bpd = −(log p + d log b)/(d log 2).
 * With dequantize = 1 each point is first moved to x + b·u, u uniform in [0, 1)^d (stream
 * ::DIFFSDE_STREAM_DEQUANT, step 0), the uniform-dequantisation bound of the discrete
 * log-probability; nothing is added silently when dequantize = 0 and b = 0 (continuous data:
 * bpd = −log p/(d log 2)).
 *
 * Thread-safety: a likelihood object is used by one thread at a time.
 */
#ifndef DIFFSDE_LIKELIHOOD_H
#define DIFFSDE_LIKELIHOOD_H

#include "diffsde/common.h"
#include "diffsde/context.h"
#include "diffsde/metrics.h"
#include "diffsde/noise.h"
#include "diffsde/ode.h"
#include "diffsde/score.h"
#include "diffsde/sde.h"

#ifdef __cplusplus
extern "C" {
#endif

/** How ∇·s is obtained. */
typedef enum diffsde_divergence {
    DIFFSDE_DIVERGENCE_EXACT = 0,     /**< "exact": callback, else d finite-difference JVPs */
    DIFFSDE_DIVERGENCE_HUTCHINSON = 1 /**< "hutchinson": K fixed probes */
} diffsde_divergence;

/* The probes' distribution is ::diffsde_probe of diffsde/metrics.h ("rademacher": ±1, the sign
 * of the PROBE-stream normal; "gaussian": the standard normal itself). */

/** Density at T that closes the change of variables. */
typedef enum diffsde_terminal {
    DIFFSDE_TERMINAL_PRIOR = 0, /**< "prior": the SDE's prior */
    DIFFSDE_TERMINAL_EXACT = 1  /**< "exact": the model's log-density at T */
} diffsde_terminal;

/** Options; fill with diffsde_loglik_options_default() and change fields. */
typedef struct diffsde_loglik_options {
    diffsde_ode_options ode;       /**< the integrator (default rk45, rtol = atol = 1e-5;
                                        ode.eps NaN means 1e-5 for every SDE, score_sde's
                                        likelihood ε; ode.denoise is not used) */
    diffsde_divergence divergence; /**< default ::DIFFSDE_DIVERGENCE_EXACT */
    size_t probes;                 /**< K Hutchinson probes (≥ 1; default 1) */
    diffsde_probe probe;           /**< default ::DIFFSDE_PROBE_RADEMACHER */
    double fd_step;                /**< absolute finite-difference step h (> 0); NaN (default):
                                        automatic (file comment) */
    diffsde_terminal terminal;     /**< default ::DIFFSDE_TERMINAL_PRIOR */
    double bin_width;              /**< b ≥ 0 (default 0: continuous data) */
    int dequantize;                /**< 1: uniform dequantisation (needs b > 0); default 0 */
} diffsde_loglik_options;

/**
 * Fill options with the defaults documented in ::diffsde_loglik_options.
 * @param opt the options (must not be NULL).
 */
DIFFSDE_API void diffsde_loglik_options_default(diffsde_loglik_options *opt);

/** "exact" or "hutchinson"; "" if invalid. */
DIFFSDE_API const char *diffsde_divergence_name(diffsde_divergence v);
/** Parse "exact" / "hutchinson". @return ::DIFFSDE_OK; ::DIFFSDE_ENULL; ::DIFFSDE_EPARAM.
 *  @param name the name. @param[out] v the value. */
DIFFSDE_API int diffsde_divergence_from_name(const char *name, diffsde_divergence *v);
/** "rademacher" or "gaussian"; "" if invalid. */
DIFFSDE_API const char *diffsde_probe_name(diffsde_probe p);
/** Parse "rademacher" / "gaussian". @return ::DIFFSDE_OK; ::DIFFSDE_ENULL; ::DIFFSDE_EPARAM.
 *  @param name the name. @param[out] p the value. */
DIFFSDE_API int diffsde_probe_from_name(const char *name, diffsde_probe *p);
/** "prior" or "exact"; "" if invalid. */
DIFFSDE_API const char *diffsde_terminal_name(diffsde_terminal v);
/** Parse "prior" / "exact". @return ::DIFFSDE_OK; ::DIFFSDE_ENULL; ::DIFFSDE_EPARAM.
 *  @param name the name. @param[out] v the value. */
DIFFSDE_API int diffsde_terminal_from_name(const char *name, diffsde_terminal *v);

/**
 * Bits per dimension of a log-density: −(logp + d log b)/(d log 2) for b > 0, −logp/(d log 2)
 * for b = 0. NaN if d = 0 or b < 0.
 * @param logp log-density (nats). @param d dimension. @param bin_width b.
 */
DIFFSDE_API double diffsde_bits_per_dim(double logp, size_t d, double bin_width);

/** Counters and summary of the last evaluation (diffsde_loglik_get_stats()). */
typedef struct diffsde_loglik_stats {
    diffsde_ode_stats ode;     /**< the augmented solve; its score counters include the
                                    divergence's finite-difference evaluations */
    uint64_t div_calls;        /**< divergence-callback invocations */
    double mean;               /**< mean of log p over the n points (nats) */
    double std_error;          /**< its standard error, sd/√n (0 for n = 1) */
    double bpd;                /**< bits per dimension of the mean (diffsde_bits_per_dim()) */
} diffsde_loglik_stats;

/** Opaque likelihood evaluator. */
typedef struct diffsde_loglik diffsde_loglik;

/**
 * Create a likelihood evaluator.
 * @param ctx context (borrowed; must outlive the object). @param sde, score borrowed likewise.
 * @param opt options (copied); NULL for the defaults.
 * @param[out] out owned by the caller (diffsde_loglik_free()).
 * @return ::DIFFSDE_OK; ::DIFFSDE_ENULL; ::DIFFSDE_EPARAM (option out of range, named);
 *         ::DIFFSDE_EUNSUPPORTED (a few-step method; terminal "exact" for a model without
 *         log-density; dequantize without bin_width); ::DIFFSDE_ENOMEM.
 */
DIFFSDE_API int diffsde_loglik_new(diffsde_ctx *ctx, const diffsde_sde *sde,
                                   const diffsde_score *score, const diffsde_loglik_options *opt,
                                   diffsde_loglik **out);

/** Free; NULL is a no-op. */
DIFFSDE_API void diffsde_loglik_free(diffsde_loglik *ll);

/**
 * log p_ε(x) of n points (x: n × d, read only).
 * @param ll the evaluator. @param noise noise source for the probes and dequantisation
 *        (borrowed; may be NULL when neither is used). @param sample0 global index of the
 *        first point (probes and dequantisation of point i use sample0 + i).
 * @param n, d sizes (≥ 1). @param x the points (borrowed).
 * @param logp n outputs: log p (nats), at the dequantised point when dequantize = 1.
 * @param latent n × d outputs x(T), or NULL. @param terminal n outputs log p_T(x(T)) (of the
 *        chosen terminal density), or NULL. @param delta n outputs ∫ ∇·v dt, or NULL;
 *        logp = terminal + delta.
 * @return ::DIFFSDE_OK; ::DIFFSDE_ENULL; ::DIFFSDE_ESIZE; the errors of diffsde_ode_solve();
 *         the model's log-density errors (terminal "exact"); noise errors. On failure the
 *         outputs are unspecified.
 */
DIFFSDE_API int diffsde_loglik_eval(diffsde_loglik *ll, const diffsde_noise *noise,
                                    uint64_t sample0, size_t n, size_t d, const double *x,
                                    double *logp, double *latent, double *terminal,
                                    double *delta);

/** Statistics of the last evaluation. @return ::DIFFSDE_OK; ::DIFFSDE_ENULL. */
DIFFSDE_API int diffsde_loglik_get_stats(const diffsde_loglik *ll, diffsde_loglik_stats *st);

#ifdef __cplusplus
}
#endif

#endif /* DIFFSDE_LIKELIHOOD_H */
