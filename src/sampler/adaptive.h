/*
 * The adaptive reverse-SDE solver with per-sample step control (method "adaptive-sde"):
 * Jolicoeur-Martineau, Li, Piché-Taillefer, Kachman, Mitliagkas, "Gotta Go Fast When
 * Generating Data with Score-Based Models" (2021), Algorithm 1. Internal: the driver
 * (sampler.c) calls it when opt.method == DIFFSDE_SAMPLER_ADAPTIVE_SDE; the final Tweedie
 * denoising step is the driver's, not this module's.
 *
 * ## One attempt of sample i
 * Reverse time runs from T down to ε; the reverse drift is b(x, t) = −f(t) x + g(t)² s(x, t)
 * (s the score), so that a step of size h > 0 moves t to t − h. At (x, t) with step h, let
 * t' = t − h, or exactly ε when h ≥ t − ε or t − h rounds to ≤ ε (the last step lands on ε
 * bit for bit, with h taken as t − ε), and z the d normals of (stream
 * DIFFSDE_STREAM_PREDICTOR, sample sample0 + i, step k_i) where k_i is the number of steps
 * sample i has accepted so far:
 *     x'  = x + h b(x, t) + g(t) √h z                                (Euler–Maruyama)
 *     x'' = x + ½ h [b(x, t) + b(x', t')] + ½ [g(t) + g(t')] √h z   (improved Euler)
 * i.e. x'' = ½ (x' + x̃) with x̃ = x + h b(x', t') + g(t') √h z, the paper's form, the same z
 * in both (additive noise). The error of the pair is measured with a mixed tolerance:
 *     δ_j = max(atol, rtol · max(|x'_j|, |x'prev_j|)),   E = ‖(x'' − x') / δ‖₂ / √d,
 * where x'prev is the Euler–Maruyama proposal x' of the sample's last accepted step (the
 * paper's x'_prev; the initial state x_T before the first acceptance).
 * - E ≤ 1: accept. x ← x'' (the higher-order solution), t ← t', x'prev ← x', k_i ← k_i + 1,
 *   and h ← min(t' − ε, h · fac(E)).
 * - E > 1: reject. x and t stay, h ← min(t − ε, h · fac(E)); the retry uses the same z
 *   (k_i unchanged: the pinned noise layout of sampler.h). This is the paper's rule; it does
 *   not keep the Brownian path unchanged (√h z over a shorter step is not the path's
 *   increment over it): see "Accuracy in low dimension" below.
 * fac(E) = θ E^(−r) with the paper's θ = 0.9 (safety) and r = 0.9 (exponent), clamped to
 * [DIFFSDE_I_ADAPTIVE_FAC_MIN, DIFFSDE_I_ADAPTIVE_FAC_MAX] = [0.1, 10] so that the growth after
 * an easy step (E → 0) is bounded and E = ∞ (an overflowing proposal) still gives a finite
 * step. The initial step is h₀ = 0.01 (T − ε) (the paper's h_init = 0.01 for T = 1, ε → 0).
 *
 * A proposal x' with a NaN/Inf coordinate is not passed to the score: the attempt is rejected
 * with the factor 0.1. A recoverable score failure (callback status > 0, DIFFSDE_ERETRY) at
 * (x', t') likewise rejects the attempt of the samples it concerns with the factor 0.1
 * (the score is then called once more for each sample of that batch alone, to find them; if
 * none fails alone the failure was transient and those results are used). At the accepted
 * state (x, t), where a smaller step cannot help, it is an error (DIFFSDE_ERETRY). NaN/Inf
 * from the score is an error (DIFFSDE_ENONFINITE); the samples of a failing batch are also
 * evaluated alone, to name the first one that fails (if none does alone, the message says so).
 *
 * ## Batching and independence
 * Each call of diffsde_i_adaptive_step() makes one attempt for every sample not yet at ε.
 * The score is called at most twice per call (plus the single-sample calls after a failing
 * batch), each time on a batch of the samples that need it, with their own times: s(x, t)
 * for the samples whose state changed (it is cached across rejections, like the SDE
 * coefficients at t and the noise z of the pending step), then s(x', t') for every active
 * sample. A sample's arithmetic uses only its own row, so its
 * result, its sequence of times and its accepted/rejected counts are bit-identical whatever
 * the other samples of the batch — provided the score callback computes each row
 * independently of the others (the mixture oracle does). Noise: samples needing a fresh draw
 * are filled with one diffsde_noise_fill_normal() call per run of consecutive samples with the
 * same step index.
 *
 * ## Accuracy in low dimension (measured; a property of the method, not of this code)
 * Retrying a rejected attempt with the same z at a smaller h makes the accepted step size a
 * function of z (of its size, and of its sign relative to the drift's error term), so the
 * increments √h z of the accepted steps are not those of a Brownian path. When E averages
 * over many coordinates this dependence fades; in a few dimensions it leaves a bias that does
 * not shrink with the tolerance. Data N(0, 0.25 I) under VP (βmin 0.1, βmax 20), variance at ε
 * relative to the exact one, rtol 0.05 / 0.005 (atol = rtol/5), 2·10⁴–4·10⁴ samples: d = 1:
 * +30% / +35%; d = 2: +9% / +12%; d = 4: +2% / +4%; d = 16, 64, 256: within ±0.5% (the
 * standard error). gauss1 (2-D) at rtol 0.05: covariance entries +6%, +14%, +12%. ring8
 * under VP with 2·10⁴ samples: mode weights off (occupancy χ² p ≈ 1e-18 at rtol 0.05, 1e-34
 * at rtol 0.01); with 2000 samples the metrics of tests/test_adaptive.c pass. A scalar
 * re-implementation of this algorithm reproduces these figures. Splitting a rejected
 * increment with a Brownian bridge and keeping the remainder for the following steps
 * (rejection sampling with memory, Rackauckas & Nie 2017) removes them (prototype: d = 1 and
 * 2 within 1% at both tolerances; ring8 occupancy p 0.4 and 0.8 at rtol 0.05 and 0.01), at
 * the price of draws other than (PREDICTOR, accepted count), a per-sample stack of increments
 * and about 25% more score evaluations.
 *
 * ## Failures (on every failure x and the per-sample times are exactly as before the call)
 * The step computes every attempt in private workspace and writes x, the times, the step
 * sizes and the counters only after all score and noise calls of the step have succeeded;
 * what it may have updated before a failure (the cached score, coefficients and noise of a
 * sample) are pure functions of the unchanged (sample, x, t, k_i). Messages name the function
 * and, when the failure concerns one sample, its global index sample0 + i and its t.
 * Statistics count the calls made, including those of a failing step.
 *
 * Memory: everything is allocated by diffsde_i_adaptive_new() in one block: 5 n·d doubles
 * (cached score, cached noise, x'prev, batch input, batch output) and 18 n words plus 2 n
 * bytes of per-sample state. Start and step allocate nothing.
 *
 * Thread-safety: an object is used by one thread at a time.
 */
#ifndef DIFFSDE_ADAPTIVE_H
#define DIFFSDE_ADAPTIVE_H

#include "core/internal.h"
#include "diffsde/sampler.h"

/* Safety factor θ and exponent r of the step-size rule (Jolicoeur-Martineau et al. 2021). */
#define DIFFSDE_I_ADAPTIVE_SAFETY 0.9
#define DIFFSDE_I_ADAPTIVE_EXPONENT 0.9
/* Bounds of the step-size factor θ E^(−r). */
#define DIFFSDE_I_ADAPTIVE_FAC_MIN 0.1
#define DIFFSDE_I_ADAPTIVE_FAC_MAX 10.0
/* Initial step as a fraction of T − ε. */
#define DIFFSDE_I_ADAPTIVE_H0 0.01
/* Most stored pieces of a sample's Brownian path. */
#define DIFFSDE_I_ADAPTIVE_MAX_PIECES 32

typedef struct diffsde_i_adaptive diffsde_i_adaptive;

/*
 * Create a solver for n samples of dimension d and size all its workspace.
 * ctx, sde and score are borrowed (they must outlive the object). From opt (copied fields):
 * rtol and atol (finite, > 0), max_steps (≥ 1: attempts, accepted plus rejected, allowed per
 * sample) and eps (ε in (0, T); NaN: diffsde_sde_default_eps()). Other fields are ignored.
 * Returns DIFFSDE_OK; DIFFSDE_ENULL (ctx — no message then —, sde, score, opt or out);
 * DIFFSDE_ESIZE (n or d = 0, or the workspace size overflows size_t); DIFFSDE_EPARAM (an option
 * out of range: the message names opt->rtol, opt->atol, opt->max_steps or opt->eps and the
 * value); DIFFSDE_ENOMEM. *out is NULL on failure.
 */
int diffsde_i_adaptive_new(diffsde_ctx *ctx, const diffsde_sde *sde, const diffsde_score *score,
                           const diffsde_sampler_options *opt, size_t n, size_t d,
                           diffsde_i_adaptive **out);

/* Free the solver; NULL is a no-op. */
void diffsde_i_adaptive_free(diffsde_i_adaptive *a);

/*
 * Start a run: every sample at t = T with step h₀, no step accepted or rejected, nothing
 * cached. Sample i of the run is global sample sample0 + i of the noise source.
 * noise is borrowed until the run ends. A run may be restarted at any time.
 * Returns DIFFSDE_OK; DIFFSDE_ENULL (a NULL — no message —, or noise NULL); DIFFSDE_ERANGE
 * (sample0 + n > 2^48, the noise layout's limit).
 */
int diffsde_i_adaptive_start(diffsde_i_adaptive *a, const diffsde_noise *noise,
                             uint64_t sample0);

/*
 * One attempt for every sample not yet at ε (see the file comment), updating x (n × d, the
 * run's state; at the first step, the prior draw) in place and adding to st (may be NULL):
 * score_calls (callback invocations), score_evals (samples evaluated), accepted and rejected
 * (attempts, summed over samples); st->steps is raised to the largest number of steps accepted
 * by one sample. Returns DIFFSDE_OK;
 * DIFFSDE_ENULL (a NULL — no message —, or x NULL); DIFFSDE_ESTATE (no run started, or every
 * sample already at ε); DIFFSDE_ECONVERGENCE (a sample has made max_steps attempts without
 * reaching ε, or its step size underflows: t − h == t; checked before anything is computed);
 * DIFFSDE_ENONFINITE (NaN/Inf from the score: the message names the sample, its t and whether
 * at (x, t) or at (x', t')); DIFFSDE_ERETRY (recoverable callback failure at the accepted state
 * (x, t)); DIFFSDE_ECALLBACK (fatal callback status); the score's other errors
 * (DIFFSDE_EDOM...) and the noise source's (DIFFSDE_ECALLBACK, DIFFSDE_ENONFINITE,
 * DIFFSDE_ERANGE), restated with the samples concerned (a fatal status of a batched call
 * names the batch: its rows cannot be told apart). On failure x and the times are unchanged.
 */
int diffsde_i_adaptive_step(diffsde_i_adaptive *a, double *x, diffsde_sampler_stats *st);

/* 1 when a run is started and every sample has reached ε, else 0 (also for a NULL). */
int diffsde_i_adaptive_done(const diffsde_i_adaptive *a);

/*
 * Copy the n per-sample times into t (caller-owned, n values): T before the first step (and
 * before any run), exactly ε for the samples that are done. NULL arguments are a no-op.
 */
void diffsde_i_adaptive_times(const diffsde_i_adaptive *a, double *t);

#endif /* DIFFSDE_ADAPTIVE_H */
