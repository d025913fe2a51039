/*
 * The adaptive reverse-SDE solver with per-sample step control (method "adaptive-sde"):
 * Jolicoeur-Martineau, Li, Piché-Taillefer, Kachman, Mitliagkas, "Gotta Go Fast When
 * Generating Data with Score-Based Models" (2021), Algorithm 1, with the Brownian increments
 * of rejected steps kept and split by Brownian bridges ("rejection sampling with memory",
 * Rackauckas & Nie, "Adaptive methods for stochastic differential equations via natural
 * embeddings and rejection sampling with memory", 2017). Internal: the driver (sampler.c)
 * calls it when opt.method == DIFFSDE_SAMPLER_ADAPTIVE_SDE; the final Tweedie denoising step
 * is the driver's, not this module's.
 *
 * ## One attempt of sample i
 * Reverse time runs from T down to ε; the reverse drift is b(x, t) = −f(t) x + g(t)² s(x, t)
 * (s the score), so that a step of size h > 0 moves t to t − h. At (x, t) with step size h,
 * the target is t' = t − h, or exactly ε when h ≥ t − ε or t − h rounds to ≤ ε (the last step
 * lands on ε bit for bit; h is then taken as t − ε); the step used is h' = t − t' (computed:
 * h up to rounding). With W the increment of the sample's Brownian path over [t', t] (d
 * values, variance h' each; see below):
 *     x'  = x + h' b(x, t) + g(t) W                                (Euler–Maruyama)
 *     x'' = x + ½ h' [b(x, t) + b(x', t')] + ½ [g(t) + g(t')] W   (improved Euler)
 * i.e. x'' = ½ (x' + x̃) with x̃ = x + h' b(x', t') + g(t') W, the paper's form, the same W in
 * both (additive noise). The error of the pair is measured with a mixed tolerance:
 *     δ_j = max(atol, rtol · max(|x'_j|, |x'prev_j|)),   E = ‖(x'' − x') / δ‖₂ / √d,
 * where x'prev is the Euler–Maruyama proposal x' of the sample's last accepted step (the
 * paper's x'_prev; the initial state x_T before the first acceptance).
 * - E ≤ 1: accept. x ← x'' (the higher-order solution), t ← t', x'prev ← x', and
 *   h ← min(t' − ε, h · fac(E)).
 * - E > 1: reject. x and t stay, h ← min(t − ε, h · fac(E)) (< h), and W is kept: the retry
 *   uses the part of it over the shorter step (below).
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
 * ## The Brownian path of a sample (rejection sampling with memory)
 * Each sample follows one Brownian path W on [ε, T], drawn as it is needed. What has been
 * drawn and not yet used by an accepted step is a stack of pieces, the increments of W over
 * consecutive intervals [lo_0, lo_1], ..., [lo_{D−1}, t] below the current t (D ≤
 * DIFFSDE_I_ADAPTIVE_MAX_PIECES). The increment W over [t', t] of an attempt is made of:
 * 1. the pieces lying in [t', t], taken whole from the top (the one ending at t) down;
 * 2. then, if a piece [a, b] straddles t' (a < t' < b), the part of it over [t', b], drawn
 *    from the Brownian bridge given its increment W_p: q W_p + s ξ with q = (b − t')/(b − a),
 *    s = √((b − t')(t' − a)/(b − a)), ξ ~ N(0, I) (a bridge draw; the piece keeps the rest
 *    W_p − (q W_p + s ξ), over [a, t']);
 * 3. or, if every piece lies in [t', t] and they end at b > t' (b = t for an empty stack), a
 *    fresh increment √(b − t') ξ over [t', b] (a fresh draw);
 * 4. or nothing more, when t' is the lower end of a piece.
 * W is the sum of these, in that order (pieces from the top down, then the new part). On
 * acceptance all of them are used up. On rejection nothing is lost: the pieces taken stay,
 * and the new part (2 or 3) becomes a piece of its own, over [t', b]; the retry, with t'
 * closer to t, takes fewer of them and splits one. Each piece is only ever split given its
 * own increment and never replaced by a sum, and every decision depends only on the sum of a
 * run of consecutive pieces (the new part being one), so that all the draws build one
 * Brownian path whatever the decisions: the accepted increments are its increments over the
 * accepted grid, W(T) − W(ε) in total. (Splitting a rejected sum of pieces as one increment
 * would forget values of the path the decisions already saw: measured, that biases ring8's
 * mode weights.)
 *
 * Why (measured; the accepted step size must not depend on the noise it is used with): the
 * paper retries a rejected step with the same normals z at the smaller h, i.e. √h z, which
 * is not the path's increment over the shorter step, and the accepted h then depends on z
 * (on its size, and its sign relative to the drift's error term). When E averages over many
 * coordinates the dependence fades; in a few dimensions it leaves a bias that does not shrink
 * with the tolerance. Data N(0, 0.25 I) under VP (βmin 0.1, βmax 20), variance at ε relative
 * to the exact one, rtol 0.05 / 0.005 (atol = rtol/5), 2·10⁴–4·10⁴ samples, standard error
 * 0.007: same-z retries: d = 1: +30% / +35%; d = 2: +9% / +12%; d = 4: +1.9% / +3.8%; d ≥ 16
 * within the standard error. With the path memory: d = 1: +1.5% / −0.1%; d = 2: −1.5% /
 * +0.6%; d = 4: −0.4% / −0.2% (a discretisation error, gone at the tighter tolerance); d ≥ 16
 * within the standard error. ring8, 2·10⁴ samples, default tolerances, occupancy χ² p: same-z
 * 1e-28 (VP) and 2e-23 (VE) (seed 7); with the memory p from 0.004 to 0.91 over 8 seeds (VP, a
 * slight excess of small p that goes at rtol 0.035: a discretisation error) and 0.23 to 0.83
 * (VE).
 * The price: more rejected steps (a retry no longer repeats the lucky or unlucky z): NFE per
 * sample on ring8 134 instead of 119 (VP) and 211 instead of 183 (VE), and the stored pieces
 * (DIFFSDE_I_ADAPTIVE_MAX_PIECES n·d doubles).
 *
 * ## Noise (pinned)
 * Each attempt makes at most one draw of d normals for sample i (global index g = sample0 +
 * i): a fresh draw (3) is the row (stream DIFFSDE_STREAM_PREDICTOR, sample g, step f_i), a
 * bridge draw (2) the row (stream DIFFSDE_STREAM_BRIDGE, sample g, step b_i), where f_i and
 * b_i count the sample's fresh and bridge draws made so far (0, 1, 2, ... each); (4) draws
 * nothing. Draws of a failed step call are not counted (the step is redone with the same
 * ones). So the noise of a sample is a pure function of (seed, g, its own counters), and
 * without rejections the k-th step uses (PREDICTOR, g, k), W = √h' z. Both counters stay
 * below the noise layout's 2^32 steps (DIFFSDE_ERANGE from the noise source otherwise).
 *
 * ## Memory of the path: the limit
 * A rejection that draws adds one piece; an acceptance removes the pieces it takes whole.
 * Each sample stores at most DIFFSDE_I_ADAPTIVE_MAX_PIECES = 32 pieces (32 n·d doubles,
 * allocated up front). A rejection that would store a 33rd first merges the two pieces of the
 * new layout farthest from t into one (their sum, over their union): the memory never
 * overflows and no run fails for it, the path's total W(T) − W(ε) stays exact, but the path's
 * value at the merged pieces' common end, which earlier decisions saw, is forgotten — if a
 * later step splits the merged piece, its bridge is not conditioned on that value (a small,
 * local inexactness of the kind the memory exists to avoid). diffsde_i_adaptive_path_info()
 * counts such merges. Measured deepest memory of one sample, rtol 0.05, no failures: ring8
 * (2·10⁴ samples, VP or VE) 12 to 14; N(0, 0.25 I) d = 1 (4·10⁴ samples) 16, d = 2: 10,
 * d = 16: 5, d = 256: 2; each further level about 3 times rarer; ring8 VP with a score that
 * fails recoverably for a pseudo-random quarter of the times t' in (2ε, 0.5): 23 (2·10⁴
 * samples). No merge in any of these. The memory fills when rejections come in long runs
 * whose step does not shrink fast, as with a score whose error estimate stays just above 1
 * when h shrinks (a discontinuous or noisy score): each rejection of such a run beyond the
 * 32nd merges. (An error at the limit would make such runs fail, where same-noise retries
 * went on.)
 *
 * ## Batching and independence
 * Each call of diffsde_i_adaptive_step() makes one attempt for every sample not yet at ε.
 * The score is called at most twice per call (plus the single-sample calls after a failing
 * batch), each time on a batch of the samples that need it, with their own times: s(x, t)
 * for the samples whose state changed (it is cached across rejections, like the SDE
 * coefficients at t), then s(x', t') for every active sample. A sample's arithmetic uses only
 * its own row and its own path memory, so its result, its sequence of times and its
 * accepted/rejected counts are bit-identical whatever the other samples of the batch —
 * provided the score callback computes each row independently of the others (the mixture
 * oracle does). Draws: one diffsde_noise_fill_normal() call per run of consecutive samples
 * needing the same (stream, step).
 *
 * ## Failures (on every failure x and the per-sample times are exactly as before the call)
 * The step computes every attempt in private workspace and writes x, the times, the step
 * sizes, the counters and the path memories only after all score and noise calls of the step
 * have succeeded; what it may have updated before a failure
 * (the cached score and coefficients of a sample) are pure functions of the unchanged (x, t).
 * A failed call made again (say after a transient failure) requests the same draws and gives
 * the same result as if it had not failed. Messages name the function and, when the failure
 * concerns one sample, its global index sample0 + i and its t. Statistics count the calls
 * made, including those of a failing step.
 *
 * Memory: everything is allocated by diffsde_i_adaptive_new() in one block: (6 + 32) n·d
 * doubles (cached score, increment, draws, x'prev, batch input, batch output; the 32 pieces
 * of each path memory, sampler/adaptive_path.h) and (32 + 24) n words plus 3 n bytes of
 * per-sample state. Start and step allocate nothing.
 *
 * Thread-safety: an object is used by one thread at a time.
 */
#ifndef DIFFSDE_ADAPTIVE_H
#define DIFFSDE_ADAPTIVE_H

#include "core/internal.h"
#include "diffsde/sampler.h"
#include "sampler/adaptive_path.h"

/* Safety factor θ and exponent r of the step-size rule (Jolicoeur-Martineau et al. 2021). */
#define DIFFSDE_I_ADAPTIVE_SAFETY 0.9
#define DIFFSDE_I_ADAPTIVE_EXPONENT 0.9
/* Bounds of the step-size factor θ E^(−r). */
#define DIFFSDE_I_ADAPTIVE_FAC_MIN 0.1
#define DIFFSDE_I_ADAPTIVE_FAC_MAX 10.0
/* Initial step as a fraction of T − ε. */
#define DIFFSDE_I_ADAPTIVE_H0 0.01
/* DIFFSDE_I_ADAPTIVE_MAX_PIECES (32): sampler/adaptive_path.h. */

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

/*
 * Diagnostics of the path memories since the run started, over all samples: the most pieces
 * one sample stored (≤ DIFFSDE_I_ADAPTIVE_MAX_PIECES) and the number of rejections that found
 * the memory full and merged two pieces (see "Memory of the path"). NULL outputs are skipped;
 * a NULL solver gives 0.
 */
void diffsde_i_adaptive_path_info(const diffsde_i_adaptive *a, size_t *max_pieces,
                                  uint64_t *merges);

#endif /* DIFFSDE_ADAPTIVE_H */
