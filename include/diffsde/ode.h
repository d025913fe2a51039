/**
 * @file diffsde/ode.h
 * @brief The probability-flow ODE: fixed-step, adaptive, SUNDIALS, GSL and few-step
 *        integrators; sampling, encoding and decoding.
 *
 * The flow ODE dx/dt = f(t) x − ½ g(t)² s(x, t) (s the model's score, ::diffsde_score) has the
 * same marginals p_t as the forward SDE. Integrated from the prior at T down to ε it samples
 * (diffsde_ode_sample()); from data at ε up to T it encodes (diffsde_ode_encode()), and back
 * it decodes (diffsde_ode_decode()). The drift is derived from (sde, score) here once; every
 * integrator sees the same function.
 *
 * ## Methods (::diffsde_ode_method, selected by name)
 * | name | kind | order | score evaluations per step |
 * |---|---|---|---|
 * | "euler" | fixed grid | 1 | 1 |
 * | "heun" | fixed grid (explicit trapezoid) | 2 | 2 |
 * | "rk4" | fixed grid (classical Runge–Kutta) | 4 | 4 |
 * | "rk45" | adaptive Dormand–Prince 5(4), written here | 5 (error est. 4) | 6 (FSAL) |
 * | "cvode-adams" | SUNDIALS CVODE, Adams–Moulton, fixed-point iteration | 1–12 | ~1–2 |
 * | "cvode-bdf" | SUNDIALS CVODE, BDF, Newton with matrix-free GMRES | 1–5 | varies |
 * | "arkode-dp" | SUNDIALS ARKODE ERKStep, Dormand–Prince table | 5 (4) | 6 |
 * | "gsl-rkf45", "gsl-rk8pd", "gsl-msadams" | GSL odeiv2 drivers | 5, 8, 1–12 | 6, 13, ~1 |
 * | "ddim" | exponential integrator in data prediction (DDIM) | 1 | 1 |
 * | "dpm-solver++2m" | DPM-Solver++ (2M), multistep in log-SNR | 2 | 1 |
 * | "edm-heun" | Heun in EDM's (σ/α, x/α) variables, Euler last step | 2 | 2 (NFE 2N−1) |
 *
 * Fixed-grid and few-step methods take N = ::diffsde_ode_options.steps steps on a grid
 * (::diffsde_time_grid); the adaptive ones control their step from rtol/atol.
 *
 * ## Tolerances and per-sample control
 * Adaptive methods measure a step's error with scipy's RK45 convention, so that tolerances
 * mean the same: the RMS over a sample's d components of err_j / (atol + rtol·max(|y_j|,
 * |y_new,j|)) must be ≤ 1 (CVODE and GSL use their own weighted norms with the same rtol and
 * atol). By default every sample integrates its own ODE with its own step sizes
 * (per-sample control): its result and its NFE do not depend on the other samples of the
 * batch. ::diffsde_ode_options.whole_batch = 1 instead integrates the batch as one flattened
 * system of n·d equations with one step size (the score_sde reference implementation's
 * convention), offered to reproduce it.
 *
 * ## Time grids
 * N steps from t_0 = start to t_N = end (either direction):
 * - "uniform": uniform in t;
 * - "logsnr": uniform in λ(t) = log(α²/σ²) (diffsde_sde_log_snr());
 * - "karras": EDM's grid, uniform in ς^{1/ρ} with ς = σ/α (the noise-to-signal ratio; σ itself
 *   for VE), ρ = ::diffsde_ode_options.rho (7).
 * The default grid is "uniform" for euler, heun, rk4 and ddim, and "karras" for dpm-solver++2m
 * and edm-heun (for DPM-Solver++ (2M) the Karras grid is measurably better than uniform log-SNR
 * steps at 20 NFE: doc/ode-accuracy.md).
 *
 * ## Lifecycle and memory
 * diffsde_ode_new() (validates the options) → diffsde_ode_sample() / _solve() / _encode() /
 * _decode(), any number of times → diffsde_ode_free(). A solve allocates its workspace on the
 * first call for a given (n, d) and keeps it; later calls with no larger n·d allocate nothing
 * in the diffsde integrators (CVODE and GSL allocate their own solver memory per solve).
 * On any failure x is restored to what it was on entry.
 *
 * Thread-safety: an integrator object is used by one thread at a time; distinct objects are
 * independent (they only read the SDE and the model, provided the model's callback is safe
 * to call from several threads).
 */
#ifndef DIFFSDE_ODE_H
#define DIFFSDE_ODE_H

#include "diffsde/common.h"
#include "diffsde/context.h"
#include "diffsde/noise.h"
#include "diffsde/score.h"
#include "diffsde/sde.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Integrator of the flow ODE (names in the file comment). */
typedef enum diffsde_ode_method {
    DIFFSDE_ODE_EULER = 0,          /**< "euler" */
    DIFFSDE_ODE_HEUN = 1,           /**< "heun" */
    DIFFSDE_ODE_RK4 = 2,            /**< "rk4" */
    DIFFSDE_ODE_RK45 = 3,           /**< "rk45": Dormand–Prince 5(4), PI control */
    DIFFSDE_ODE_CVODE_ADAMS = 4,    /**< "cvode-adams" */
    DIFFSDE_ODE_CVODE_BDF = 5,      /**< "cvode-bdf" */
    DIFFSDE_ODE_ARKODE_DP = 6,      /**< "arkode-dp": cross-check of rk45 */
    DIFFSDE_ODE_GSL_RKF45 = 7,      /**< "gsl-rkf45" */
    DIFFSDE_ODE_GSL_RK8PD = 8,      /**< "gsl-rk8pd" */
    DIFFSDE_ODE_GSL_MSADAMS = 9,    /**< "gsl-msadams" */
    DIFFSDE_ODE_DDIM = 10,          /**< "ddim" */
    DIFFSDE_ODE_DPM_SOLVER_PP_2M = 11, /**< "dpm-solver++2m" */
    DIFFSDE_ODE_EDM_HEUN = 12       /**< "edm-heun" */
} diffsde_ode_method;

/** Number of ::diffsde_ode_method values (they run from 0 to this − 1). */
#define DIFFSDE_ODE_NMETHODS 13

/** Time grid of fixed-step and few-step methods. */
typedef enum diffsde_time_grid {
    DIFFSDE_GRID_DEFAULT = 0, /**< the method's own choice (file comment) */
    DIFFSDE_GRID_UNIFORM = 1, /**< "uniform" in t */
    DIFFSDE_GRID_LOGSNR = 2,  /**< "logsnr": uniform in λ = log(α²/σ²) */
    DIFFSDE_GRID_KARRAS = 3   /**< "karras": uniform in (σ/α)^{1/ρ} */
} diffsde_time_grid;

/** Options of an ODE integrator; fill with diffsde_ode_options_default() and change fields. */
typedef struct diffsde_ode_options {
    diffsde_ode_method method; /**< default ::DIFFSDE_ODE_RK45 */
    size_t steps;      /**< N for fixed-grid and few-step methods (≥ 1; default 0 = the
                            method's default: 100 for euler/heun/rk4, 20 for ddim and
                            dpm-solver++2m, 18 for edm-heun); ignored by adaptive ones */
    diffsde_time_grid grid; /**< default ::DIFFSDE_GRID_DEFAULT */
    double rho;        /**< Karras grid exponent (> 0; default 7) */
    double rtol;       /**< adaptive relative tolerance (> 0; default 1e-5) */
    double atol;       /**< adaptive absolute tolerance (> 0; default 1e-5) */
    double first_step; /**< adaptive initial |h| (≥ 0; default 0 = automatic selection) */
    size_t max_steps;  /**< adaptive: most steps per sample (whole batch: in all; ≥ 1;
                            default 100000) — attempts for rk45, accepted steps for CVODE,
                            ARKODE and GSL, which count them their own way */
    int whole_batch;   /**< adaptive: 1 = one flattened system for the batch; default 0 */
    double eps;        /**< final time ε of sampling / start of encoding, in (0, T); NaN (default):
                            diffsde_sde_default_eps() */
    int denoise;       /**< diffsde_ode_sample() only: 1 = a final Tweedie step
                            x̂0 = (x + σ(ε)² s)/α(ε); default 0 (the flow's value at ε is a
                            sample of p_ε, which is what the oracle checks) */
} diffsde_ode_options;

/**
 * Fill options with the defaults documented in ::diffsde_ode_options.
 * @param opt the options (must not be NULL; nothing can fail).
 */
DIFFSDE_API void diffsde_ode_options_default(diffsde_ode_options *opt);

/** Name of a method (table in the file comment); "" if invalid. Static storage. */
DIFFSDE_API const char *diffsde_ode_method_name(diffsde_ode_method m);
/**
 * Parse a method name. @param name the name. @param[out] m the method.
 * @return ::DIFFSDE_OK; ::DIFFSDE_ENULL; ::DIFFSDE_EPARAM (unknown name).
 */
DIFFSDE_API int diffsde_ode_method_from_name(const char *name, diffsde_ode_method *m);
/** Convergence order of a method (the table's first figure; for the variable-order methods the
 *  highest order they use: 12 for cvode-adams and gsl-msadams, 5 for cvode-bdf), 0 if invalid. */
DIFFSDE_API int diffsde_ode_method_order(diffsde_ode_method m);
/** 1 if the method chooses its own steps from rtol/atol, 0 if it uses a grid of N steps. */
DIFFSDE_API int diffsde_ode_method_is_adaptive(diffsde_ode_method m);

/** Name of a grid ("default", "uniform", "logsnr", "karras"); "" if invalid. */
DIFFSDE_API const char *diffsde_time_grid_name(diffsde_time_grid g);
/**
 * Parse a grid name. @return ::DIFFSDE_OK; ::DIFFSDE_ENULL; ::DIFFSDE_EPARAM (unknown).
 * @param name the name. @param[out] g the grid.
 */
DIFFSDE_API int diffsde_time_grid_from_name(const char *name, diffsde_time_grid *g);

/**
 * The N + 1 times of a grid from `start` to `end` (either order), as the fixed-step and
 * few-step methods use them: times[0] = start and times[N] = end exactly.
 * @param sde the SDE (for λ and σ/α). @param grid the grid (DEFAULT means uniform here).
 * @param rho Karras exponent (> 0). @param start, end distinct times in (0, T].
 * @param N number of steps (≥ 1). @param times N + 1 outputs (caller-owned).
 * @return ::DIFFSDE_OK; ::DIFFSDE_ENULL; ::DIFFSDE_EPARAM (grid, rho or N invalid; start =
 *         end); ::DIFFSDE_EDOM (a time outside (0, T]); the SDE's errors.
 */
DIFFSDE_API int diffsde_time_grid_make(const diffsde_sde *sde, diffsde_time_grid grid, double rho,
                                       double start, double end, size_t N, double *times);

/** Counters of the last solve (diffsde_ode_get_stats()). */
typedef struct diffsde_ode_stats {
    size_t steps;           /**< fixed: N; adaptive: most accepted steps of any sample (whole
                                 batch: accepted steps) */
    uint64_t score_calls;   /**< callback invocations (denoising included) */
    uint64_t score_evals;   /**< Σ over invocations of the samples evaluated */
    uint64_t accepted;      /**< accepted steps summed over samples (whole batch: steps) */
    uint64_t rejected;      /**< rejected steps (error test and, for CVODE, convergence
                                 failures) summed over samples */
    uint64_t nfe_min;       /**< fewest score evaluations of any sample */
    uint64_t nfe_max;       /**< most score evaluations of any sample */
    double nfe_per_sample;  /**< score_evals / n, denoising included */
    uint64_t denoise_calls; /**< callback invocations of the final denoising step */
    double wall_seconds;    /**< wall-clock time of the solve */
} diffsde_ode_stats;

/** Opaque flow-ODE integrator. */
typedef struct diffsde_ode diffsde_ode;

/**
 * Create an integrator.
 * @param ctx context (borrowed; must outlive the object). @param sde the forward SDE
 *        (borrowed likewise). @param score the model (borrowed likewise).
 * @param opt options (copied); NULL for the defaults.
 * @param[out] out the integrator, owned by the caller (diffsde_ode_free()).
 * @return ::DIFFSDE_OK; ::DIFFSDE_ENULL; ::DIFFSDE_EPARAM (an option out of range, named in
 *         the message); ::DIFFSDE_EUNSUPPORTED (whole_batch with a method that has no
 *         step control); ::DIFFSDE_ENOMEM.
 */
DIFFSDE_API int diffsde_ode_new(diffsde_ctx *ctx, const diffsde_sde *sde,
                                const diffsde_score *score, const diffsde_ode_options *opt,
                                diffsde_ode **out);

/** Free an integrator; NULL is a no-op. */
DIFFSDE_API void diffsde_ode_free(diffsde_ode *ode);

/**
 * Integrate the flow ODE for n samples of dimension d from time t0 to t1 (either
 * direction), in place.
 * @param ode the integrator. @param t0, t1 distinct times in (0, T].
 * @param n number of samples (≥ 1). @param d dimension (≥ 1).
 * @param x n × d states at t0 (caller-owned), replaced by the states at t1.
 * @return ::DIFFSDE_OK; ::DIFFSDE_ENULL; ::DIFFSDE_ESIZE; ::DIFFSDE_EDOM (t0 or t1 outside
 *         (0, T], or equal); ::DIFFSDE_ENOMEM; ::DIFFSDE_ENONFINITE (NaN/Inf from the model
 *         or in the state: the message names the sample and t); ::DIFFSDE_ECALLBACK (fatal
 *         callback status); ::DIFFSDE_ERETRY (a fixed-step method got a recoverable callback
 *         failure; adaptive methods shrink the step instead, and return it only when the
 *         model fails at the starting point itself, where no smaller step helps);
 *         ::DIFFSDE_ECONVERGENCE (a
 *         sample exceeded max_steps, its step underflowed, or CVODE/GSL failed: the message
 *         names the sample, t and the back end's reason). On failure x is unchanged.
 */
DIFFSDE_API int diffsde_ode_solve(diffsde_ode *ode, double t0, double t1, size_t n, size_t d,
                                  double *x);

/**
 * Sample: draw x from the prior at T (diffsde_sde_prior_sample(), so stream
 * ::DIFFSDE_STREAM_PRIOR, step 0, global samples sample0..sample0+n−1), integrate to ε, and
 * apply the denoising step if enabled. Sample i's result does not depend on n or on the
 * other samples (per-sample control; bit for bit, given a model whose rows are independent).
 * @param ode the integrator. @param noise the noise source (borrowed).
 * @param sample0 global index of the first sample. @param n, d sizes (≥ 1).
 * @param x n × d output (caller-owned). @return as diffsde_ode_solve(); noise errors. On
 *        failure x is unspecified.
 */
DIFFSDE_API int diffsde_ode_sample(diffsde_ode *ode, const diffsde_noise *noise,
                                   uint64_t sample0, size_t n, size_t d, double *x);

/**
 * Encode: integrate data at ε up to T (the latent). Same as diffsde_ode_solve(ode, ε, T, ...).
 * @return as diffsde_ode_solve().
 */
DIFFSDE_API int diffsde_ode_encode(diffsde_ode *ode, size_t n, size_t d, double *x);

/**
 * Decode: integrate latents at T down to ε, without the denoising step, so that decode
 * inverts encode to the integrator's tolerance. Same as diffsde_ode_solve(ode, T, ε, ...).
 * @return as diffsde_ode_solve().
 */
DIFFSDE_API int diffsde_ode_decode(diffsde_ode *ode, size_t n, size_t d, double *x);

/**
 * Statistics of the last solve (or sample/encode/decode).
 * @return ::DIFFSDE_OK; ::DIFFSDE_ENULL.
 */
DIFFSDE_API int diffsde_ode_get_stats(const diffsde_ode *ode, diffsde_ode_stats *st);

/**
 * Score evaluations of each sample in the last solve (n values, caller-owned; n must be the
 * last solve's n). Under per-sample control these are each sample's own cost.
 * @return ::DIFFSDE_OK; ::DIFFSDE_ENULL; ::DIFFSDE_ESTATE (no solve yet); ::DIFFSDE_ESIZE
 *         (n differs from the last solve's).
 */
DIFFSDE_API int diffsde_ode_get_sample_nfe(const diffsde_ode *ode, size_t n, uint64_t *nfe);

/** The options in use (after defaults were resolved: steps, grid and eps are concrete). */
DIFFSDE_API int diffsde_ode_get_options(const diffsde_ode *ode, diffsde_ode_options *opt);

#ifdef __cplusplus
}
#endif

#endif /* DIFFSDE_ODE_H */
