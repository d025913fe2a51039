/**
 * @file diffsde/sampler.h
 * @brief Reverse-time sampling: predictors, correctors, predictor–corrector (PC) and an
 *        adaptive reverse-SDE solver, behind one step-level API.
 *
 * The reverse SDE dx = [f x − g² ∇log p_t(x)] dt + g dw̄ runs from the prior at T down to ε
 * with a pluggable score (::diffsde_score). Methods:
 * - predictors: Euler–Maruyama ("euler-maruyama"), reverse diffusion (the SDE's own
 *   discretisation, "reverse-diffusion"), ancestral sampling ("ancestral": DDPM for VP, NCSN
 *   for VE), or none;
 * - correctors: Langevin with the signal-to-noise step ε = 2 a (snr ‖z‖/‖s‖)² ("langevin"),
 *   annealed Langevin dynamics with step ∝ σ_i² ("ald"), Metropolis-adjusted Langevin
 *   ("mala", needs the model's log-density: diffsde_score_set_logp()), or none;
 * - "pc": at each level a corrector (K steps) then a predictor;
 * - "adaptive-sde": per-sample step control with Euler–Maruyama paired with improved Euler on
 *   the same noise (Jolicoeur-Martineau et al. 2021); a rejected step's Brownian increment is
 *   kept and split with Brownian bridges for the retry (rejection sampling with memory,
 *   Rackauckas & Nie 2017), so that each sample's accepted steps follow one Brownian path.
 *
 * ## Time grids
 * Default: N predictor steps on t_i = T − i (T − ε)/N, i = 0..N; at level i the correctors
 * run at t_i, then the predictor moves from t_i to t_{i+1}; the state ends at ε and (by
 * default) one Tweedie denoising step x̂0 = (x + σ(ε)² s(x, ε))/α(ε) is applied, its score
 * call counted separately. Reverse diffusion and ancestral use the level j = ⌊t_i (N−1)/T⌋ of
 * the SDE's discrete table (diffsde_sde_discretize()).
 * Reference mode (::diffsde_sampler_options.reference): score_sde's conventions exactly —
 * t_i = linspace(T, ε, N), Euler–Maruyama with dt = T/N, Langevin norms averaged over the
 * batch, and the returned sample is the last predictor's mean (no separate denoising call).
 *
 * ## Noise (pinned)
 * Prior: stream ::DIFFSDE_STREAM_PRIOR, step 0. Predictor at level i: stream
 * ::DIFFSDE_STREAM_PREDICTOR, step i. Corrector step k at level i: stream
 * ::DIFFSDE_STREAM_CORRECTOR, step i·K + k (MALA's accept uniform: ::DIFFSDE_STREAM_ACCEPT, same
 * step). Adaptive solver: each attempt of a sample draws at most one row; the sample's k-th
 * fresh Brownian increment (its path beyond what it has drawn) uses stream
 * ::DIFFSDE_STREAM_PREDICTOR, step k, and its k-th Brownian-bridge split of an increment
 * already drawn (the retries after rejections) uses stream ::DIFFSDE_STREAM_BRIDGE, step k
 * (k = 0, 1, ... counted per sample); without rejections the k-th step uses
 * (::DIFFSDE_STREAM_PREDICTOR, k). Sample i of a run uses global sample index sample0 + i: the
 * result is bit-identical whatever the batch split.
 *
 * ## Lifecycle
 * diffsde_sampler_new() (validates the options) → diffsde_sampler_init() (sizes the workspace —
 * the only allocation — and draws the prior) → diffsde_sampler_step() until
 * diffsde_sampler_done() → diffsde_sampler_finish() (denoising) → diffsde_sampler_free();
 * diffsde_sampler_run() does all of it. A failed step leaves x and the times exactly as they
 * were before it.
 *
 * Thread-safety: a sampler is used by one thread at a time; distinct samplers are
 * independent (the SDE, model and noise they share are only read, provided the model's
 * callback is itself safe to call from several threads).
 */
#ifndef DIFFSDE_SAMPLER_H
#define DIFFSDE_SAMPLER_H

#include "diffsde/common.h"
#include "diffsde/context.h"
#include "diffsde/noise.h"
#include "diffsde/score.h"
#include "diffsde/sde.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Sampling method. */
typedef enum diffsde_sampler_method {
    DIFFSDE_SAMPLER_PC = 0,          /**< "pc": predictor–corrector on a fixed grid */
    DIFFSDE_SAMPLER_ADAPTIVE_SDE = 1 /**< "adaptive-sde": per-sample adaptive steps */
} diffsde_sampler_method;

/** Predictor of the PC sampler. */
typedef enum diffsde_predictor {
    DIFFSDE_PREDICTOR_NONE = 0,              /**< "none" */
    DIFFSDE_PREDICTOR_EULER_MARUYAMA = 1,    /**< "euler-maruyama" */
    DIFFSDE_PREDICTOR_REVERSE_DIFFUSION = 2, /**< "reverse-diffusion" */
    DIFFSDE_PREDICTOR_ANCESTRAL = 3          /**< "ancestral" (VE and VP only) */
} diffsde_predictor;

/**
 * Corrector of the PC sampler. Each step k at level i (time t) draws z ~ N(0, I) from stream
 * ::DIFFSDE_STREAM_CORRECTOR, step i·K + k, and moves x ← x + ε s + √(2ε) z with
 * s = ∇log p_t(x). The factor a is 1 − b_j for VP and sub-VP (b_j the DDPM table entry at
 * j = ⌊t (N−1)/T⌋, as score_sde) and 1 for VE and user SDEs.
 */
typedef enum diffsde_corrector {
    DIFFSDE_CORRECTOR_NONE = 0,     /**< "none": x unchanged */
    DIFFSDE_CORRECTOR_LANGEVIN = 1, /**< "langevin": ε = 2a(snr‖z‖/‖s‖)² with per-sample
                                         norms (batch-averaged with batch_norms or
                                         reference); ‖s‖ = 0 gives ε = 0 (x unchanged) */
    DIFFSDE_CORRECTOR_ALD = 2,      /**< "ald": annealed Langevin dynamics (NCSN), ε =
                                         2a(snr σ(t))² — the Langevin rule with ‖z‖/‖s‖
                                         replaced by σ(t), its value for data much
                                         narrower than σ(t); ∝ σ_i² and state-independent
                                         (score_sde's AnnealedLangevinDynamics) */
    DIFFSDE_CORRECTOR_MALA = 3      /**< "mala": Metropolis-adjusted Langevin: the
                                         proposal y = x + ε s + √(2ε) z with the ALD step
                                         (state-independent, so the proposal kernel is the
                                         same both ways and detailed balance holds),
                                         accepted with probability min(1, p_t(y) q(x|y) /
                                         (p_t(x) q(y|x))), q(y|x) = N(y; x + ε s(x), 2εI),
                                         using the uniform of stream
                                         ::DIFFSDE_STREAM_ACCEPT, same step, coordinate 0;
                                         leaves p_t exactly invariant. Needs the model's
                                         log-density and a Philox noise source */
} diffsde_corrector;

/** Options of a sampler; fill with diffsde_sampler_options_default() and change fields. */
typedef struct diffsde_sampler_options {
    diffsde_sampler_method method; /**< default ::DIFFSDE_SAMPLER_PC */
    diffsde_predictor predictor;   /**< default ::DIFFSDE_PREDICTOR_REVERSE_DIFFUSION */
    diffsde_corrector corrector;   /**< default ::DIFFSDE_CORRECTOR_LANGEVIN */
    size_t steps;                  /**< N, number of levels (≥ 2; default 1000) */
    size_t corrector_steps;        /**< K corrector steps per level (≥ 1; default 1) */
    double snr;        /**< signal-to-noise ratio of Langevin/MALA (> 0); NaN: 0.16 for VE,
                            0.01 for VP, sub-VP and user SDEs (score_sde's choices) */
    double eps;        /**< final time ε in (0, T); NaN: diffsde_sde_default_eps() */
    int denoise;       /**< 1 (default): final Tweedie step; 0: return x at ε */
    int reference;     /**< 1: score_sde's conventions (see the file comment); default 0 */
    int batch_norms;   /**< 1: Langevin step from batch-averaged norms (implied by
                            reference); default 0: per-sample norms */
    double rtol;       /**< adaptive-sde relative tolerance (> 0; default 0.05) */
    double atol;       /**< adaptive-sde absolute tolerance (> 0; default 0.01) */
    size_t max_steps;  /**< adaptive-sde: most step attempts per sample (default 100000) */
} diffsde_sampler_options;

/**
 * Fill options with the defaults documented in ::diffsde_sampler_options.
 * @param opt the options to fill (must not be NULL; no status, nothing can fail).
 */
DIFFSDE_API void diffsde_sampler_options_default(diffsde_sampler_options *opt);

/** Name of a method ("pc", "adaptive-sde"); "" if invalid. Static storage. */
DIFFSDE_API const char *diffsde_sampler_method_name(diffsde_sampler_method m);
/** Name of a predictor ("none", "euler-maruyama", ...); "" if invalid. Static storage. */
DIFFSDE_API const char *diffsde_predictor_name(diffsde_predictor p);
/** Name of a corrector ("none", "langevin", "ald", "mala"); "" if invalid. Static storage. */
DIFFSDE_API const char *diffsde_corrector_name(diffsde_corrector c);

/**
 * Parse a method name. @return ::DIFFSDE_OK; ::DIFFSDE_ENULL; ::DIFFSDE_EPARAM (unknown).
 * @param name the name. @param[out] m the method.
 */
DIFFSDE_API int diffsde_sampler_method_from_name(const char *name, diffsde_sampler_method *m);
/**
 * Parse a predictor name. @return ::DIFFSDE_OK; ::DIFFSDE_ENULL; ::DIFFSDE_EPARAM (unknown).
 * @param name the name. @param[out] p the predictor.
 */
DIFFSDE_API int diffsde_predictor_from_name(const char *name, diffsde_predictor *p);
/**
 * Parse a corrector name. @return ::DIFFSDE_OK; ::DIFFSDE_ENULL; ::DIFFSDE_EPARAM (unknown).
 * @param name the name. @param[out] c the corrector.
 */
DIFFSDE_API int diffsde_corrector_from_name(const char *name, diffsde_corrector *c);

/**
 * Observer: called after every `every`-th completed step (and after the last) with the step
 * count, the n per-sample times and the state x (n × d), both read-only and valid only
 * during the call. Return 0 to continue, non-zero to stop the run (the step function then
 * returns ::DIFFSDE_ECALLBACK with the code in the message; x is the state just observed).
 */
typedef int (*diffsde_observer_fn)(size_t step, size_t n, size_t d, const double *t,
                                   const double *x, void *user);

/** Counters of a run (diffsde_sampler_get_stats()). */
typedef struct diffsde_sampler_stats {
    size_t steps;            /**< completed steps (PC: levels; adaptive: max over samples) */
    uint64_t score_calls;    /**< callback invocations, denoising included */
    uint64_t score_evals;    /**< Σ over invocations of the samples evaluated (NFE × n) */
    uint64_t denoise_calls;  /**< callback invocations of the final denoising step */
    uint64_t accepted;       /**< adaptive: accepted steps summed over samples; MALA: accepted proposals */
    uint64_t rejected;       /**< adaptive: rejected steps; MALA: rejected proposals */
    double nfe_per_sample;   /**< score_evals / n: score evaluations per sample, denoising included */
    double wall_seconds;     /**< wall-clock time spent in init/step/finish */
} diffsde_sampler_stats;

/** Opaque sampler. */
typedef struct diffsde_sampler diffsde_sampler;

/**
 * Create a sampler.
 * @param ctx context (borrowed; must outlive the sampler).
 * @param sde the forward SDE (borrowed; must outlive the sampler).
 * @param score the model (borrowed; must outlive the sampler).
 * @param opt options (copied); NULL for the defaults.
 * @param[out] out the sampler, owned by the caller (diffsde_sampler_free()).
 * @return ::DIFFSDE_OK; ::DIFFSDE_ENULL; ::DIFFSDE_EPARAM (an option out of range, named in
 *         the message; VP reverse diffusion/ancestral with N ≤ βmax, whose DDPM table would
 *         have β ≥ 1); ::DIFFSDE_EUNSUPPORTED (ancestral on sub-VP or user SDEs; MALA with a
 *         model without log-density); ::DIFFSDE_ENOMEM.
 */
DIFFSDE_API int diffsde_sampler_new(diffsde_ctx *ctx, const diffsde_sde *sde,
                                    const diffsde_score *score,
                                    const diffsde_sampler_options *opt, diffsde_sampler **out);

/** Free a sampler; NULL is a no-op. */
DIFFSDE_API void diffsde_sampler_free(diffsde_sampler *s);

/**
 * Set (fn non-NULL) or clear (fn NULL) the observer, called every `every` ≥ 1 steps.
 * @param s the sampler. @param fn the observer. @param user passed to fn (borrowed).
 * @param every the period in steps.
 * @return ::DIFFSDE_OK; ::DIFFSDE_ENULL; ::DIFFSDE_EPARAM (every = 0).
 */
DIFFSDE_API int diffsde_sampler_set_observer(diffsde_sampler *s, diffsde_observer_fn fn,
                                             void *user, size_t every);

/**
 * Start a run of n samples of dimension d: size the workspace (the only allocation of a
 * run) and draw x from the prior.
 * @param s the sampler. @param noise the noise source (borrowed until the run ends).
 * @param sample0 global index of the first sample (for reproducible splits of a run).
 * @param n number of samples (≥ 1). @param d dimension (≥ 1).
 * @param x n × d, caller-owned; receives the prior draw. The same array must be passed to
 *        every following step/finish call of the run.
 * @return ::DIFFSDE_OK; ::DIFFSDE_ENULL; ::DIFFSDE_ESIZE; ::DIFFSDE_ENOMEM; noise errors.
 */
DIFFSDE_API int diffsde_sampler_init(diffsde_sampler *s, const diffsde_noise *noise,
                                     uint64_t sample0, size_t n, size_t d, double *x);

/**
 * Advance one step: PC, one level (K corrector steps then the predictor); adaptive, one
 * attempt for every sample not yet at ε.
 * @param s the sampler. @param x the run's state (n × d), updated in place.
 * @return ::DIFFSDE_OK; ::DIFFSDE_ESTATE (not initialised, or already done);
 *         ::DIFFSDE_ENONFINITE (NaN/Inf from the score or in the new state: the message
 *         names the sample, the step and t); ::DIFFSDE_ECALLBACK (fatal callback status, or
 *         the observer stopped the run); ::DIFFSDE_ERETRY (a fixed-step method got a
 *         recoverable callback failure); ::DIFFSDE_ECONVERGENCE (adaptive: a sample exceeded
 *         max_steps or its step size underflowed). On failure x and
 *         the times are exactly as before the call.
 */
DIFFSDE_API int diffsde_sampler_step(diffsde_sampler *s, double *x);

/** 1 when every sample has reached ε (then call diffsde_sampler_finish()), else 0. */
DIFFSDE_API int diffsde_sampler_done(const diffsde_sampler *s);

/**
 * End the run: the final denoising step (if enabled; in reference mode, x becomes the last
 * predictor's mean). Afterwards the statistics are final and a new run may be initialised.
 * @return as diffsde_sampler_step(); ::DIFFSDE_ESTATE if not done.
 */
DIFFSDE_API int diffsde_sampler_finish(diffsde_sampler *s, double *x);

/**
 * One call: init, step until done, finish.
 * @return as the three calls; on failure x holds the state before the failing step.
 */
DIFFSDE_API int diffsde_sampler_run(diffsde_sampler *s, const diffsde_noise *noise,
                                    uint64_t sample0, size_t n, size_t d, double *x);

/**
 * Current per-sample times (n values, caller-owned).
 * @return ::DIFFSDE_OK; ::DIFFSDE_ENULL; ::DIFFSDE_ESTATE (no run initialised).
 */
DIFFSDE_API int diffsde_sampler_get_times(const diffsde_sampler *s, double *t);

/**
 * Statistics of the current or last run.
 * @return ::DIFFSDE_OK; ::DIFFSDE_ENULL.
 */
DIFFSDE_API int diffsde_sampler_get_stats(const diffsde_sampler *s, diffsde_sampler_stats *st);

#ifdef __cplusplus
}
#endif

#endif /* DIFFSDE_SAMPLER_H */
