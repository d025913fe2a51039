/**
 * @file diffsde/metrics.h
 * @brief How good is a sample set, and how good is a score model? Measured against an exact
 *        Gaussian mixture (the oracle of gmm.h).
 *
 * ## Sample metrics
 * Given n samples x (n × d, row-major) that claim to come from p_t (the mixture of gmm.h
 * perturbed to time t by an SDE, or p0 itself when the SDE is NULL), each metric compares them
 * with p_t and says how to read the number:
 *
 * | metric | function | compares | reading |
 * |---|---|---|---|
 * | moments   | diffsde_metrics_moments()   | sample mean/covariance with the closed form | error vs its sampling size; χ² p-value of the mean |
 * | occupancy | diffsde_metrics_occupancy() | which component each sample belongs to | empty components; Pearson χ² p-value |
 * | sliced W2 | diffsde_metrics_sliced_w2() | 1-D projections with an exact sample set | distance in units of x; compare with exact-vs-exact |
 * | energy    | diffsde_metrics_energy()    | all pairwise distances with an exact set | permutation p-value |
 * | log-lik   | diffsde_metrics_loglik()    | mean exact log p_t of the samples with that of exact samples | difference in standard errors |
 *
 * diffsde_metrics_compute() draws the exact reference set itself and fills one
 * ::diffsde_metrics with all of them. Mode coverage (occupancy) is usually the first thing to
 * look at: a sampler that drops a mode can still have a small sliced W2.
 *
 * A p-value is the probability, for samples that really come from p_t, of a statistic at
 * least as extreme as the one observed: tiny values (say < 1e-4) mean the samples are
 * distinguishable from p_t at this n; for exact samples p-values are (approximately) uniform
 * on (0, 1), so a threshold τ raises a false alarm with probability τ.
 *
 * ## Score diagnostics
 * For a user's model (::diffsde_score) at one time t, by Monte Carlo over exact draws:
 * - diffsde_metrics_fisher(): the Fisher divergence E_{p_t}‖s_θ − ∇log p_t‖²;
 * - diffsde_metrics_dsm(): the denoising score-matching loss, for the model and for the exact
 *   score (its irreducible part);
 * - diffsde_metrics_ssm(): the sliced score-matching objective, with the Jacobian-vector
 *   product from a user callback (::diffsde_jvp_fn) or by central differences
 *   (diffsde_metrics_score_jvp_fd()).
 *
 * ## Randomness (pinned: changing it changes every reported value)
 * Every random quantity comes from the ::diffsde_noise given to the call:
 * - exact samples of p_t or p0: diffsde_gmm_sample() (stream ::DIFFSDE_STREAM_MODEL, steps 0
 *   and 1) at the sample indices stated for each function;
 * - everything else from stream ::DIFFSDE_METRICS_STREAM (= ::DIFFSDE_STREAM_PROBE) with the
 *   steps ::DIFFSDE_METRICS_STEP_DIRECTIONS, ::DIFFSDE_METRICS_STEP_PERMUTATIONS,
 *   ::DIFFSDE_METRICS_STEP_DSM_NOISE, ::DIFFSDE_METRICS_STEP_SSM_PROBES, as documented there.
 * Results are therefore bit-reproducible for a given seed and are independent of the internal
 * block size. Functions that draw exact samples need a Philox source (a callback source cannot
 * give the uniforms of the component choice: ::DIFFSDE_EUNSUPPORTED).
 *
 * ## Contexts and messages
 * Every function takes a context `ctx` for its allocations and its failure messages. The
 * objects it calls — the mixture's evaluators, the SDE, the score model, the noise source —
 * allocate and record their own failures on the contexts they were created from; such a
 * failure is restated on `ctx` as "<function>: <what> failed: <detail>", the detail being the
 * callee's own message when it was recorded on `ctx`, the mixture's or the SDE's context, and
 * the status description otherwise (a score model or noise source made on another context).
 * The status returned is always the callee's.
 *
 * ## Thread-safety
 * All functions are safe to call concurrently when the calls use distinct contexts or a
 * shared context (see context.h). The model, the SDE and a Philox noise source are only read;
 * each call makes its own evaluator. A ::diffsde_score is called as thread-safely as its
 * callback allows: do not share one non-thread-safe score between concurrent calls (the exact
 * score of diffsde_gmm_score_new() is not thread-safe).
 */
#ifndef DIFFSDE_METRICS_H
#define DIFFSDE_METRICS_H

#include "diffsde/common.h"
#include "diffsde/context.h"
#include "diffsde/gmm.h"
#include "diffsde/noise.h"
#include "diffsde/score.h"
#include "diffsde/sde.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Noise stream of the metrics' own draws (directions, permutations, DSM noise, probes). */
#define DIFFSDE_METRICS_STREAM DIFFSDE_STREAM_PROBE

/**
 * Step of the sliced-W2 directions: direction p (0-based) is θ_p = z/‖z‖₂ with z the d
 * normals of (::DIFFSDE_METRICS_STREAM, sample p, this step, coordinates 0..d−1).
 */
#define DIFFSDE_METRICS_STEP_DIRECTIONS UINT64_C(1000)

/**
 * Step of the energy-distance permutations: permutation b (0-based) of the pooled points is
 * a Fisher–Yates shuffle driven by the uniforms of (::DIFFSDE_METRICS_STREAM, sample b, this
 * step, coordinates 0..N−1), see diffsde_metrics_energy().
 */
#define DIFFSDE_METRICS_STEP_PERMUTATIONS UINT64_C(1001)

/**
 * Step of the denoising-score-matching noise: the z of sample index i is the d normals of
 * (::DIFFSDE_METRICS_STREAM, sample i, this step, coordinates 0..d−1).
 */
#define DIFFSDE_METRICS_STEP_DSM_NOISE UINT64_C(1002)

/**
 * Step of the sliced-score-matching probes: the probe v of sample index i is made from the d
 * normals z of (::DIFFSDE_METRICS_STREAM, sample i, this step, coordinates 0..d−1): v = z
 * (Gaussian probes) or v_j = sign(z_j) (Rademacher probes; z is never 0).
 */
#define DIFFSDE_METRICS_STEP_SSM_PROBES UINT64_C(1003)

/**
 * Default index of the first exact reference sample drawn by diffsde_metrics_compute():
 * 2^47, half-way through the sample-index range of noise.h, so that the reference set does not
 * coincide with samples a user drew with the same seed from index 0.
 */
#define DIFFSDE_METRICS_REF_SAMPLE0 (UINT64_C(1) << 47)

/** Default number of sliced-W2 directions P. */
#define DIFFSDE_METRICS_DEFAULT_DIRECTIONS 128
/** Default number of points m used from each set by the energy distance. */
#define DIFFSDE_METRICS_DEFAULT_ENERGY_POINTS 1000
/** Default number of permutations B of the energy-distance test. */
#define DIFFSDE_METRICS_DEFAULT_PERMUTATIONS 200

/**
 * Largest number of samples passed to one call of a score or JVP callback (and of the
 * oracle): the metrics and diagnostics work through their points in blocks of this many.
 */
#define DIFFSDE_METRICS_BLOCK 256

/** A Monte-Carlo estimate: the sample mean of n terms and its standard error. */
typedef struct diffsde_estimate {
    double mean; /**< the mean of the n terms */
    double se; /**< its standard error: (sample standard deviation of the terms)/√n; NaN if n < 2 */
    size_t n; /**< number of terms */
} diffsde_estimate;

/**
 * Moment errors of a sample set against the exact mean m and covariance C of p_t
 * (diffsde_gmm_moments()). Ĉ is the unbiased sample covariance (divisor n − 1).
 */
typedef struct diffsde_moment_errors {
    /** ‖m̂ − m‖₂, in units of x. */
    double mean_err;
    /**
     * √(tr C / n): the root-mean-square of mean_err for n exact samples. mean_err of a few
     * times this is unremarkable; much more means a shifted sample set.
     */
    double mean_err_rms;
    /** n (m̂ − m)ᵀ C⁻¹ (m̂ − m): for exact samples, asymptotically χ² with d degrees of freedom. */
    double mean_chi2;
    /** P(χ²_d ≥ mean_chi2): the p-value of "the samples have mean m" (tiny = shifted). */
    double mean_pvalue;
    /** ‖Ĉ − C‖_F / ‖C‖_F, dimensionless. */
    double cov_rel_err;
    /**
     * The expected size of cov_rel_err for samples from p_t: √(Σ_ij Var(Ĉ_ij)) / ‖C‖_F, with
     * Var(Ĉ_ij) estimated from the samples themselves by the sample variance of the products
     * (x_i − m̂_i)(x_j − m̂_j) divided by n. For exact samples cov_rel_err / cov_rel_err_rms is
     * of order 1 and exceeds 4 with probability at most about 6e-5 (asymptotically; the worst
     * case is a single dominant entry, a χ²₁ tail).
     */
    double cov_rel_err_rms;
} diffsde_moment_errors;

/**
 * Mode coverage. Each sample is assigned to its most responsible component k(x) =
 * argmax_k γ_k(x) (ties to the lowest k), γ from diffsde_gmm_evaluate() at time t.
 */
typedef struct diffsde_occupancy {
    size_t K;     /**< number of components */
    size_t empty; /**< components to which no sample is assigned */
    /**
     * Σ_k (1 − w_k)^n: the expected number of empty components for n exact samples (when
     * components do not overlap). empty above this (say by 1 with empty_expected ≪ 1) means
     * dropped modes.
     */
    double empty_expected;
    /**
     * Pearson's statistic Σ_k (c_k − n w_k)² / (n w_k) of the counts c_k against the
     * weights. Exact for well separated components (ambiguity ≈ 0) and expected counts
     * n w_k ≳ 5; where components overlap, the hard assignment does not follow the weights and
     * this test raises false alarms that grow with n: use ref_pvalue then.
     */
    double chi2;
    size_t dof;    /**< K − 1 */
    double pvalue; /**< P(χ²_{K−1} ≥ chi2); 1 when K = 1. Tiny = wrong mode weights */
    /**
     * Mean over the samples of 1 − max_k γ_k(x): how ambiguous the assignments are. At most
     * about 1/n for well separated components under exact sampling; larger values mean the
     * samples sit between modes, or the modes overlap at this t (see chi2).
     */
    double ambiguity;
    /**
     * Pearson's homogeneity statistic of the 2 × K table (sample counts, reference counts):
     * valid whatever the overlap, because both sets are assigned by the same rule. NaN when no
     * reference set was given.
     */
    double ref_chi2;
    size_t ref_dof;    /**< (components with a non-zero total count) − 1; 0 without reference */
    double ref_pvalue; /**< P(χ²_{ref_dof} ≥ ref_chi2); NaN without reference; 1 if ref_dof = 0 */
    size_t ref_empty; /**< components empty in the reference set (0 without reference) */
} diffsde_occupancy;

/** Energy distance with its permutation test (see diffsde_metrics_energy()). */
typedef struct diffsde_energy_test {
    /**
     * E = 2 E‖X − Y‖ − E‖X − X'‖ − E‖Y − Y'‖ (units of x), estimated with U-statistics on
     * the points used: zero in expectation for identical distributions (so it can be slightly
     * negative), positive otherwise.
     */
    double energy;
    /**
     * (1 + #{b : E_b ≥ E}) / (B + 1) over B random relabellings of the pooled points: the
     * permutation p-value of "both sets come from one distribution". Its smallest possible
     * value is 1/(B + 1), reached when no relabelling comes close; for identical distributions
     * P(pvalue ≤ k/(B + 1)) = k/(B + 1). NaN when B = 0.
     */
    double pvalue;
    size_t mx;           /**< points of the first set used */
    size_t my;           /**< points of the second set used */
    size_t permutations; /**< B */
} diffsde_energy_test;

/**
 * Mean exact log-density of the samples, beside that of exact samples from p_t. The latter
 * estimates E_{p_t}[log p_t] = −H(p_t) (minus the differential entropy, in nats).
 */
typedef struct diffsde_loglik_check {
    diffsde_estimate samples;   /**< mean log p_t(x_i) of the samples, with its standard error */
    diffsde_estimate reference; /**< the same over the exact reference set */
    /**
     * samples.mean − reference.mean (nats). Negative by several diff_se: the samples sit in
     * low-density regions (too spread, shifted, between modes). Positive by several diff_se:
     * they are over-concentrated on the modes (too little variance, low-temperature
     * sampling). For exact samples |diff| > 4 diff_se has probability about 6e-5.
     */
    double diff;
    double diff_se; /**< √(samples.se² + reference.se²) (the two sets are independent) */
} diffsde_loglik_check;

/** Options of diffsde_metrics_compute(); start from diffsde_metrics_options_default(). */
typedef struct diffsde_metrics_options {
    size_t sliced_directions;   /**< P ≥ 1 (default 128) */
    size_t energy_max_points;   /**< m ≥ 2 (default 1000); cost O(m² d + B m²) */
    size_t energy_permutations; /**< B (default 200); 0 skips the permutation test */
    /**
     * Index of the first exact reference sample (default ::DIFFSDE_METRICS_REF_SAMPLE0). The
     * reference set uses indices ref_sample0 .. ref_sample0 + n − 1; the null set (below) the
     * next n. ref_sample0 + 2n must not exceed 2^48.
     */
    uint64_t ref_sample0;
    /**
     * Non-zero (default 1): also draw a second exact set of n samples and report the sliced
     * W2 between the two exact sets (::diffsde_metrics::sliced_w2_null), the yardstick for
     * sliced_w2 at this n.
     */
    int null_reference;
} diffsde_metrics_options;

/** Everything diffsde_metrics_compute() measures. */
typedef struct diffsde_metrics {
    size_t n;                      /**< number of samples */
    size_t d;                      /**< dimension */
    double t;                      /**< the time of p_t (0 when the SDE is NULL: p0) */
    diffsde_moment_errors moments; /**< see ::diffsde_moment_errors */
    diffsde_occupancy occupancy;   /**< see ::diffsde_occupancy (with the reference set) */
    /** Sliced W2 between the samples and the exact reference set (units of x). */
    double sliced_w2;
    /**
     * Sliced W2 between the reference set and a second independent exact set of the same
     * size, with the same directions: what sliced_w2 looks like when nothing is wrong.
     * sliced_w2 well above it (by more than the spread of the null: over 500 exact pairs of
     * n = 2000 ring8 samples at VP t = 0.05, 0.228 ± 0.065, maximum 0.472) means a
     * difference. On well-separated multimodal targets the null is dominated by the sampling
     * fluctuation of the mode weights (mass moved between modes), so small shifts within the
     * modes are seen better by the moments or the log-likelihood. NaN when null_reference
     * is 0.
     */
    double sliced_w2_null;
    size_t sliced_directions;    /**< P used */
    diffsde_energy_test energy;  /**< energy distance to the reference set */
    diffsde_loglik_check loglik; /**< mean log p_t, samples vs reference set */
} diffsde_metrics;

/**
 * The default options: P = 128 directions, m = 1000 energy points, B = 200 permutations,
 * ref_sample0 = ::DIFFSDE_METRICS_REF_SAMPLE0, null_reference = 1.
 * Thread-safety: safe from any thread.
 */
DIFFSDE_API diffsde_metrics_options diffsde_metrics_options_default(void);

/**
 * All sample metrics at once. Draws the exact reference set of n samples from p_t with
 * diffsde_gmm_sample() at indices opts->ref_sample0 .. + n − 1 (and, with null_reference, a
 * second set at the next n indices), then fills every field of `out`: moments, occupancy
 * (with the two-sample test against the reference), sliced W2 (and its null), energy distance
 * and test, log-likelihoods.
 *
 * @param ctx   context for allocations and messages (see the file comment).
 * @param gmm   finalised mixture p0 (borrowed), of dimension d.
 * @param sde   the forward SDE (borrowed), or NULL to compare with p0 itself (t ignored).
 * @param t     time in [0, T] of the SDE.
 * @param noise a Philox noise source (borrowed) for every random draw (file comment).
 * @param n     number of samples, ≥ 2.
 * @param x     n × d samples, row-major (borrowed; all finite).
 * @param opts  options (copied), NULL for the defaults.
 * @param[out] out the metrics (caller-owned); unspecified on failure.
 * @return ::DIFFSDE_OK; ::DIFFSDE_ENULL (ctx — without a message —, gmm, noise, x or out);
 *         ::DIFFSDE_ESIZE (n < 2, or n·d overflows); ::DIFFSDE_EPARAM (an option out of range,
 *         named in the message); ::DIFFSDE_ERANGE (ref_sample0 + n, or + 2n with
 *         null_reference, exceeds 2^48); ::DIFFSDE_ENONFINITE (NaN/Inf in x: the message gives
 *         sample and coordinate; or a sample so far from every mode that log p_t underflows);
 *         ::DIFFSDE_EUNSUPPORTED (a callback noise source, refused before anything is drawn);
 *         ::DIFFSDE_ESTATE (model not finalised); ::DIFFSDE_EDOM (t outside [0, T]);
 *         ::DIFFSDE_ECONVERGENCE (a factorisation failed); ::DIFFSDE_ENOMEM. Nothing is
 *         leaked on any failure.
 * Memory: n · d doubles per exact set drawn (two with null_reference), m(2m − 1) doubles for
 * the energy distance (m = min(n, energy_max_points)), O(d² + 256 K) workspace, and one
 * evaluator of the mixture (see diffsde_gmm_eval_new()).
 * Cost: O(n d² + n K d² + P n log n + (d + B) m²).
 * Thread-safety: see the file comment.
 */
DIFFSDE_API int diffsde_metrics_compute(diffsde_ctx *ctx, const diffsde_gmm *gmm,
                                        const diffsde_sde *sde, double t,
                                        const diffsde_noise *noise, size_t n, const double *x,
                                        const diffsde_metrics_options *opts, diffsde_metrics *out);

/**
 * Moment errors of n samples against the exact mean and covariance of p_t (see
 * ::diffsde_moment_errors for the meaning of each field).
 *
 * @param ctx context. @param gmm finalised mixture of dimension d (borrowed).
 * @param sde SDE (borrowed) or NULL for p0. @param t time in [0, T].
 * @param n number of samples, ≥ 2. @param x n × d samples (borrowed).
 * @param[out] out the errors.
 * @return ::DIFFSDE_OK; ::DIFFSDE_ENULL; ::DIFFSDE_ESIZE (n < 2, n·d overflows);
 *         ::DIFFSDE_ENONFINITE (NaN/Inf in x); ::DIFFSDE_ESTATE; ::DIFFSDE_EDOM;
 *         ::DIFFSDE_ECONVERGENCE (the exact covariance is not numerically positive definite);
 *         ::DIFFSDE_ENOMEM.
 * Cost O(n d² + d³); memory O(d²). Thread-safety: see the file comment.
 */
DIFFSDE_API int diffsde_metrics_moments(diffsde_ctx *ctx, const diffsde_gmm *gmm,
                                        const diffsde_sde *sde, double t, size_t n, const double *x,
                                        diffsde_moment_errors *out);

/**
 * Mode coverage of n samples (see ::diffsde_occupancy), optionally with the two-sample test
 * against a reference set.
 *
 * @param ctx context. @param gmm finalised mixture (borrowed). @param sde SDE or NULL (p0).
 * @param t time in [0, T]. @param n number of samples, ≥ 1. @param x n × d samples.
 * @param n_ref size of the reference set (0 for none). @param ref n_ref × d exact samples
 *        (may be NULL when n_ref = 0).
 * @param[out] counts K counts c_k of the samples (caller-owned), or NULL.
 * @param[out] out the summary.
 * @return ::DIFFSDE_OK; ::DIFFSDE_ENULL; ::DIFFSDE_ESIZE (n = 0, overflow);
 *         ::DIFFSDE_ENONFINITE; ::DIFFSDE_ESTATE; ::DIFFSDE_EDOM; ::DIFFSDE_ECONVERGENCE;
 *         ::DIFFSDE_ENOMEM.
 * Cost O((n + n_ref) K d²); memory O(K · 256 + K). Thread-safety: see the file comment.
 */
DIFFSDE_API int diffsde_metrics_occupancy(diffsde_ctx *ctx, const diffsde_gmm *gmm,
                                          const diffsde_sde *sde, double t, size_t n,
                                          const double *x, size_t n_ref, const double *ref,
                                          size_t *counts, diffsde_occupancy *out);

/**
 * Sliced Wasserstein-2 distance between two sets of n points in d dimensions:
 *
 *     SW2 = √( (1/P) Σ_p W2²(θ_pᵀx, θ_pᵀy) ),   W2²(a, b) = (1/n) Σ_i (a_(i) − b_(i))²,
 *
 * with a_(i), b_(i) the sorted projections and θ_p the P random unit directions of
 * ::DIFFSDE_METRICS_STEP_DIRECTIONS. Units of x. It is a distance between distributions
 * (zero only for equal ones) but, estimated from n points, it is positive even for two exact
 * sets, shrinking like n^(−1/4)…n^(−1/2): read it against the same statistic between two exact
 * sets (::diffsde_metrics::sliced_w2_null).
 *
 * @param ctx context. @param noise source of the directions (any kind; borrowed).
 * @param n points per set, ≥ 1. @param d dimension ≥ 1.
 * @param x, y n × d point sets (borrowed).
 * @param n_directions P ≥ 1.
 * @param[out] out SW2.
 * @return ::DIFFSDE_OK; ::DIFFSDE_ENULL; ::DIFFSDE_ESIZE (n or d = 0, overflow);
 *         ::DIFFSDE_EPARAM (P = 0); ::DIFFSDE_ENONFINITE (NaN/Inf in x or y); the noise
 *         source's errors (e.g. ::DIFFSDE_ERANGE for P > 2^48); ::DIFFSDE_ENOMEM.
 * Cost O(P (n d + n log n)); memory 2n + d doubles. Thread-safety: see the file comment.
 */
DIFFSDE_API int diffsde_metrics_sliced_w2(diffsde_ctx *ctx, const diffsde_noise *noise, size_t n,
                                          size_t d, const double *x, const double *y,
                                          size_t n_directions, double *out);

/**
 * Energy distance between two point sets with a permutation test (Székely & Rizzo).
 *
 * Points used: at most m = max_points from each set, chosen deterministically by even
 * striding — point ⌊j·n/m⌋ for j = 0..m−1 when n > m, all otherwise — which bounds the cost
 * at O(m² d) for the distances and O(B m²) for the test. The pooled N = mx + my points have
 * their N(N−1)/2 distances stored once. With S_XX, S_YY, S_XY the sums of distances over
 * within-X, within-Y and cross pairs,
 *
 *     E = 2 S_XY/(mx my) − 2 S_XX/(mx(mx − 1)) − 2 S_YY/(my(my − 1)).
 *
 * Permutation b relabels the pooled points: positions 0..N−1 are shuffled by Fisher–Yates
 * (for i = N−1 down to 1, swap i with ⌊u_i (i + 1)⌋, u_i the uniform of coordinate i of
 * ::DIFFSDE_METRICS_STEP_PERMUTATIONS, sample b) and the first mx positions form X.
 *
 * @param ctx context. @param noise a Philox source (uniforms); used only when B > 0, and may
 *        be NULL then.
 * @param nx, ny sizes of the sets (each ≥ 2). @param d dimension ≥ 1.
 * @param x nx × d, @param y ny × d point sets (borrowed).
 * @param max_points m ≥ 2. @param permutations B (0: no test, pvalue NaN).
 * @param[out] out energy, p-value and sizes.
 * @return ::DIFFSDE_OK; ::DIFFSDE_ENULL; ::DIFFSDE_ESIZE (a set smaller than 2, d = 0, the
 *         distance table overflows size_t); ::DIFFSDE_EPARAM (m < 2); ::DIFFSDE_ENONFINITE;
 *         the noise source's errors (::DIFFSDE_EUNSUPPORTED for a callback source with B > 0);
 *         ::DIFFSDE_ENOMEM.
 * Memory N(N − 1)/2 + 3N doubles (m = 1000: 16 MB). Thread-safety: see the file comment.
 */
DIFFSDE_API int diffsde_metrics_energy(diffsde_ctx *ctx, const diffsde_noise *noise, size_t nx,
                                       size_t ny, size_t d, const double *x, const double *y,
                                       size_t max_points, size_t permutations,
                                       diffsde_energy_test *out);

/**
 * Mean exact log-density of the samples, beside the same mean over a reference set (see
 * ::diffsde_loglik_check).
 *
 * @param ctx context. @param gmm finalised mixture. @param sde SDE or NULL (p0).
 * @param t time in [0, T]. @param n samples (≥ 1). @param x n × d samples.
 * @param n_ref reference size (0 for none: reference, diff and diff_se are NaN).
 * @param ref n_ref × d exact samples (NULL when n_ref = 0).
 * @param[out] out the means and standard errors.
 * @return ::DIFFSDE_OK; ::DIFFSDE_ENULL; ::DIFFSDE_ESIZE; ::DIFFSDE_ENONFINITE;
 *         ::DIFFSDE_ESTATE; ::DIFFSDE_EDOM; ::DIFFSDE_ECONVERGENCE; ::DIFFSDE_ENOMEM.
 * Thread-safety: see the file comment.
 */
DIFFSDE_API int diffsde_metrics_loglik(diffsde_ctx *ctx, const diffsde_gmm *gmm,
                                       const diffsde_sde *sde, double t, size_t n, const double *x,
                                       size_t n_ref, const double *ref, diffsde_loglik_check *out);

/* ---------------------------------------------------------------------------------------- */
/* Score diagnostics                                                                         */

/**
 * Jacobian-vector product of a score model: jv = (∂s/∂x) v for each of n points, where s is
 * the score ∇log p_t (after conversion from the model's parametrisation), x and v are n × d
 * row-major, t holds n times. Returns 0 on success; any other value is reported as
 * ::DIFFSDE_ECALLBACK. `user` is the pointer given with the callback.
 */
typedef int (*diffsde_jvp_fn)(size_t n, size_t d, const double *t, const double *x, const double *v,
                              double *jv, void *user);

/** Distribution of the probe vectors of sliced score matching. */
typedef enum diffsde_probe {
    DIFFSDE_PROBE_RADEMACHER = 0, /**< independent ±1 entries */
    DIFFSDE_PROBE_GAUSSIAN = 1    /**< independent standard-normal entries */
} diffsde_probe;

/** A score-matching objective for the model, for the exact score, and their paired difference. */
typedef struct diffsde_sm_estimates {
    diffsde_estimate model; /**< the objective for the user's model */
    diffsde_estimate exact; /**< the same objective, same draws, for the exact score */
    /**
     * model − exact, term by term on the same draws (so its standard error is that of the
     * difference, usually far smaller than model.se): the part of the objective the model
     * could still remove. Its expectation is E‖s_θ − ∇log p_t‖² (the Fisher divergence) for
     * DSM and half of it for sliced score matching.
     */
    diffsde_estimate excess;
} diffsde_sm_estimates;

/**
 * Fisher divergence at time t: F = E_{x∼p_t} ‖s_θ(x, t) − ∇log p_t(x)‖², estimated over n
 * exact samples of p_t (diffsde_gmm_sample() at indices sample0 .. sample0 + n − 1), with its
 * standard error. Units: (1/x)². Zero exactly for the exact score; a model that is off by a
 * constant vector c everywhere gives ‖c‖². √F is the RMS score error.
 *
 * @param ctx context. @param gmm finalised mixture (borrowed). @param sde the SDE (borrowed;
 *        required: the score needs α, σ). @param score the model (borrowed; called with
 *        batches of at most ::DIFFSDE_METRICS_BLOCK points, all at time t).
 * @param t time in [0, T]; σ(t) > 0 unless the model returns the score itself.
 * @param noise a Philox source. @param sample0 first sample index. @param n draws, ≥ 1.
 * @param[out] out the estimate.
 * @return ::DIFFSDE_OK; ::DIFFSDE_ENULL (ctx — without a message —, gmm, sde, score, noise or
 *         out); ::DIFFSDE_ESIZE (n = 0); ::DIFFSDE_ERANGE (sample0 + n > 2^48);
 *         ::DIFFSDE_EUNSUPPORTED (a callback noise source); ::DIFFSDE_ESTATE (model not
 *         finalised); ::DIFFSDE_EDOM (t outside [0, T]; σ(t) = 0 for a model that is not in
 *         the score parametrisation); the model's errors as diffsde_score_eval()
 *         (::DIFFSDE_ERETRY, ::DIFFSDE_ECALLBACK, ::DIFFSDE_ENONFINITE); the oracle's
 *         (::DIFFSDE_ECONVERGENCE, ::DIFFSDE_ENONFINITE); ::DIFFSDE_ENOMEM.
 * Thread-safety: see the file comment.
 */
DIFFSDE_API int diffsde_metrics_fisher(diffsde_ctx *ctx, const diffsde_gmm *gmm,
                                       const diffsde_sde *sde, const diffsde_score *score, double t,
                                       const diffsde_noise *noise, uint64_t sample0, size_t n,
                                       diffsde_estimate *out);

/**
 * Denoising score-matching loss at time t (Vincent 2011), unweighted:
 *
 *     DSM(s) = E_{x0∼p0, z∼N(0,I)} ‖s(α x0 + σ z, t) + z/σ‖²,
 *
 * with x0 the exact p0 samples of diffsde_gmm_sample() (an evaluator of p0) at indices
 * sample0 .. sample0 + n − 1 and z the normals of ::DIFFSDE_METRICS_STEP_DSM_NOISE at the same
 * indices. For any s, DSM(s) = F(s) + DSM(∇log p_t) (F the Fisher divergence), so the model's
 * loss can never go below out->exact (the irreducible part, d/σ² − E‖∇log p_t‖²), and
 * out->excess estimates F. Multiply by σ² for the ε-prediction loss E‖ε̂ − z‖².
 * Units: (1/x)².
 *
 * @param ctx, gmm, sde, score, t, noise, sample0, n as diffsde_metrics_fisher(); σ(t) > 0 is
 *        required (::DIFFSDE_EDOM otherwise).
 * @param[out] out model, exact and excess estimates.
 * @return as diffsde_metrics_fisher().
 */
DIFFSDE_API int diffsde_metrics_dsm(diffsde_ctx *ctx, const diffsde_gmm *gmm,
                                    const diffsde_sde *sde, const diffsde_score *score, double t,
                                    const diffsde_noise *noise, uint64_t sample0, size_t n,
                                    diffsde_sm_estimates *out);

/**
 * Sliced score-matching objective at time t (Song et al. 2019), one probe per sample:
 *
 *     J(s) = E_{x∼p_t, v} [ vᵀ ∇_x(vᵀ s(x)) + ½ (vᵀ s(x))² ],
 *
 * x the exact samples of p_t at indices sample0 .. sample0 + n − 1 (diffsde_gmm_sample()),
 * v the probes of ::DIFFSDE_METRICS_STEP_SSM_PROBES at the same indices. Since E[v vᵀ] = I,
 * J(s) = ½ F(s) − ½ E‖∇log p_t‖² (F the Fisher divergence), so out->excess estimates F/2.
 * vᵀ∇_x(vᵀ s) = vᵀ (J_s v) comes from `jvp` when given, otherwise from
 * diffsde_metrics_score_jvp_fd() with step fd_step. For the exact score the curvature term
 * is exact: vᵀ H v = Σ_k γ_k ((vᵀs_k)² − vᵀC_k⁻¹v) − (vᵀs)², s_k = −C_k⁻¹(x − αμ_k),
 * C_k = α²Σ_k + σ²I, with the Cholesky factors of the C_k computed here.
 * Units: (1/x)².
 *
 * @param ctx, gmm, sde, score, t, noise, sample0, n as diffsde_metrics_fisher().
 * @param jvp JVP of the model's score (::diffsde_jvp_fn), or NULL for central differences.
 * @param jvp_user passed to jvp (borrowed).
 * @param probe ::DIFFSDE_PROBE_RADEMACHER or ::DIFFSDE_PROBE_GAUSSIAN.
 * @param fd_step relative step of the central differences (see
 *        diffsde_metrics_score_jvp_fd()); 0 selects the default ∛ε ≈ 6.06e-6.
 * @param[out] out model, exact and excess estimates.
 * @return as diffsde_metrics_fisher(); ::DIFFSDE_EPARAM (invalid probe, fd_step < 0 or not
 *         finite); ::DIFFSDE_ECALLBACK (jvp returned non-zero); ::DIFFSDE_ENONFINITE (jvp
 *         wrote NaN/Inf).
 */
DIFFSDE_API int diffsde_metrics_ssm(diffsde_ctx *ctx, const diffsde_gmm *gmm,
                                    const diffsde_sde *sde, const diffsde_score *score,
                                    diffsde_jvp_fn jvp, void *jvp_user, double t,
                                    const diffsde_noise *noise, uint64_t sample0, size_t n,
                                    diffsde_probe probe, double fd_step, diffsde_sm_estimates *out);

/**
 * Jacobian-vector product of a model's score by central differences:
 *
 *     jv_i ≈ (s(x_i + h_i v_i) − s(x_i − h_i v_i)) / (2 h_i),
 *     h_i = fd_step · max(1, ‖x_i‖_∞) / ‖v_i‖_∞,
 *
 * i.e. the largest coordinate change is fd_step relative to the point's scale. The error is
 * O(h²) (third derivatives of s; zero for a Gaussian, whose score is affine) plus rounding of
 * order ε·|s|/h; the default fd_step = ∛ε ≈ 6.06e-6 balances them for scores that vary on the
 * scale of x. The score is evaluated twice, on the n points x + h v and on x − h v.
 *
 * @param ctx context. @param score the model. @param sde its SDE.
 * @param n points (0 does nothing). @param d dimension (≥ 1). @param t n times.
 * @param x, v n × d points and probes (borrowed; every v_i ≠ 0, all finite).
 * @param fd_step relative step, 0 for the default.
 * @param[out] jv n × d result (caller-owned; must not alias x or v).
 * @param work 3·n·d doubles of workspace (caller-owned), so that the call does not allocate.
 * @return ::DIFFSDE_OK; ::DIFFSDE_ENULL; ::DIFFSDE_ESIZE (d = 0, 3·n·d overflows);
 *         ::DIFFSDE_EPARAM (fd_step < 0 or not finite; a zero probe row; jv aliasing x or v);
 *         ::DIFFSDE_ENONFINITE (NaN/Inf in x or v); the model's errors as
 *         diffsde_score_eval().
 * Thread-safety: as the score callback.
 */
DIFFSDE_API int diffsde_metrics_score_jvp_fd(diffsde_ctx *ctx, const diffsde_score *score,
                                             const diffsde_sde *sde, size_t n, size_t d,
                                             const double *t, const double *x, const double *v,
                                             double fd_step, double *jv, double *work);

#ifdef __cplusplus
}
#endif

#endif /* DIFFSDE_METRICS_H */
