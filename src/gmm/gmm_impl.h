/*
 * Private definitions of the Gaussian-mixture oracle, shared by the files of src/gmm/:
 *   gmm.c           the model: builder, accessors, moments
 *   builtin.c       the named models (ring8, grid25, gauss1, random:D,K,SEED)
 *   factor.c        the evaluator's per-t cache of Cholesky factors of α²Σ_k + σ²I
 *   evaluate.c      the evaluator and diffsde_gmm_evaluate (batched, BLAS-3 for larger D)
 *   evaluate_small.c the small-D evaluation (vectorised substitutions and log-sum-exp)
 *   sample.c        exact sampling
 *   score_adapter.c the mixture as a ::diffsde_score
 *   posterior.c     Bayes posterior of a mixture prior (uses only the public builder and the
 *                   model fields below, read only)
 * Not installed.
 *
 * Storage conventions: every matrix is D × D row-major; every Cholesky factor is lower
 * triangular (LAPACKE_dpotrf, LAPACK_ROW_MAJOR, 'L') with its strict upper triangle set to 0.
 */
#ifndef DIFFSDE_GMM_IMPL_H
#define DIFFSDE_GMM_IMPL_H

#include <stddef.h>

#include "core/internal.h"
#include "diffsde/gmm.h"

/* Points per block of the batched evaluation (the evaluator's scratch is sized for it). */
#define DIFFSDE_I_GMM_BLOCK 256

/* Row count of every cblas_dtrsm call is padded to a multiple of this (see evaluate.c);
 * DIFFSDE_I_GMM_BLOCK is a multiple of it. */
#define DIFFSDE_I_GMM_PAD 8

/*
 * Dimension up to which diffsde_gmm_evaluate uses the hand-written substitutions of
 * evaluate_small.c (vectorised over points; specialised for each D ≤ 8) and diffsde_gmm_sample
 * its own, instead of BLAS calls per (block, component). Measured with bench/bench_gmm.c
 * (n = 10^4, K = 8, OpenBLAS 0.3.21 Haswell kernels, one thread, AVX-512 clone): the hand
 * path is 4.5–10× faster than dtrsm for D ≤ 8 (several runs), about 2× at D = 10–16 and
 * 1.3–1.5× at D = 32 (there it loops over coordinates); sampling (L z per point against
 * dtrmv) 2–3× for D ≤ 8. 8 keeps the D = 12 model of test_gmm's grouping and sampling
 * tests on the BLAS path. Each evaluator copies it into `small_dim_max`, which the benchmark
 * changes to compare both paths.
 */
#define DIFFSDE_I_GMM_SMALL_DIM 8

/*
 * The model. Before finalisation only ctx, dim, K, cap, finalized and the per-component arrays
 * (log_weight, mean, cov, chol, logdet) are meaningful; log_weight then holds the raw log of
 * the weight passed to add_*. finalize() normalises: log_weight[k] = log w_k − log Σ_j w_j
 * (by log-sum-exp, so a weight that underflows exp() keeps its exact log), weight[k] =
 * exp(log_weight[k]), cumw[k] = w_0 + … + w_k.
 */
struct diffsde_gmm {
    diffsde_ctx *ctx; /* borrowed */
    size_t dim;       /* D ≥ 1 */
    size_t K;         /* components added so far */
    size_t cap;       /* capacity of the per-component arrays (components) */
    int finalized;

    double *log_weight; /* cap: log w_k (normalised after finalisation) */
    double *mean;       /* cap × D: μ_k */
    double *cov;        /* cap × D × D: Σ_k, exactly symmetric (the average of the input) */
    double *chol;       /* cap × D × D: lower Cholesky factor of Σ_k (upper part 0) */
    double *logdet;     /* cap: log det Σ_k = 2 Σ_j log chol_k[j][j] */

    /* set by finalize() */
    double *weight; /* K: normalised weights */
    double *cumw;   /* K: cumulative normalised weights (cumw[K−1] ≈ 1) */
};

/*
 * Internal builder entry point (used by add_full/add_diag/add_iso and by posterior.c): add a
 * component given the natural log of its (unnormalised) weight, which may be any finite value
 * (so that weights too small for exp(), e.g. marginal likelihoods, need not be exponentiated).
 * Same checks, messages (prefixed with `fn`) and statuses as diffsde_gmm_add_full(); the model
 * is unchanged on failure.
 */
int diffsde_i_gmm_add_log(diffsde_gmm *gmm, double log_weight, const double *mean,
                          const double *cov, const char *fn);

/*
 * α(t), σ(t) of sde at t (sde NULL: α = 1, σ = 0, t ignored). A failure of the SDE (EDOM for t
 * NaN or outside [0, T], a user callback's errors) is recorded on ctx as
 * "fn: <the SDE's message>" and its status returned.
 */
int diffsde_i_gmm_coefs(diffsde_ctx *ctx, const diffsde_sde *sde, double t, double *alpha,
                        double *sigma, const char *fn);

/* ---- the evaluator ---------------------------------------------------------------------- */

/* Factors of C_k(t) = α²Σ_k + σ²I for one t, all components. */
typedef struct diffsde_i_gmm_factor {
    int valid;      /* 1 when the fields below hold the factors for t */
    int have_trinv; /* 1 when trinv[] has been computed (lazily: only the divergence needs it) */
    double t;       /* the time (0 for a p0 evaluator) */
    double alpha;   /* α(t) (1 for p0) */
    double sigma;   /* σ(t) (0 for p0) */
    unsigned long stamp; /* last use, for least-recently-used replacement */
    double *L;           /* K × D × D: lower Cholesky factor of C_k (upper part 0) */
    double *rdiag;       /* K × D: 1 / L_k[j][j] (the small-D substitutions multiply) */
    double *logc;        /* K: log w_k − ½ log det C_k − (D/2) log 2π */
    double *trinv;       /* K: tr C_k⁻¹ */
} diffsde_i_gmm_factor;

/* Number of distinct times whose factors an evaluator keeps. */
#define DIFFSDE_I_GMM_SLOTS 2

struct diffsde_gmm_eval {
    const diffsde_gmm *gmm; /* borrowed, finalised */
    const diffsde_sde *sde; /* borrowed; NULL for p0 */
    diffsde_ctx *ctx;       /* gmm->ctx: receives the messages */
    size_t dim, K;
    double T;             /* final time of sde (unused for p0) */
    size_t small_dim_max; /* hand-written solves when dim ≤ this (DIFFSDE_I_GMM_SMALL_DIM) */
    unsigned long clock;  /* use counter for the slots' stamps */
    diffsde_i_gmm_factor slot[DIFFSDE_I_GMM_SLOTS];

    /* scratch for one block of B = DIFFSDE_I_GMM_BLOCK points, allocated at creation; the
     * small-D path cuts it into chunks of DIFFSDE_I_GMM_PAD points, each stored by
     * coordinate (or component) then point */
    double *xb; /* B × D: the gathered points */
    double *work; /* B × D: x − αμ_k, then L⁻¹(x − αμ_k) (rows), then C_k⁻¹(x − αμ_k) */
    double *acc;         /* B × D: weighted sum (small D: mean) of the component scores */
    double *lterm;       /* B × K: log w_k N_k(x) (small D: then exp(lterm − pmax)) */
    double *pmax;        /* B: (running) maximum of lterm */
    double *wsum;        /* B: Σ_k exp(lterm − pmax) */
    double *dss;         /* B: weighted sum of squared deviations of the component scores */
    double *trw;         /* B: Σ_k exp(lterm − pmax) tr C_k⁻¹ */
    double *qn;          /* B: ‖L_k⁻¹ (x − α μ_k)‖² of the current component */
    size_t *idx;         /* B: indices of the block's points in the caller's batch */
    unsigned char *done; /* B: window flags of the grouping by equal t */
};

/*
 * The factors for time t (already checked to lie in [0, T]; ignored for p0), from the cache
 * or computed into the least recently used slot. need_trinv: also make trinv[] valid.
 * Returns DIFFSDE_OK; a user SDE's callback errors (message recorded on ev->ctx, prefixed
 * with fn); DIFFSDE_ECONVERGENCE if dpotrf fails (message names k and t).
 */
int diffsde_i_gmm_factor_get(diffsde_gmm_eval *ev, double t, int need_trinv,
                             diffsde_i_gmm_factor **out, const char *fn);

/*
 * The small-D evaluation (evaluate_small.c) of the nb points ev->idx[0..nb) of x (n × D, the
 * caller's), all at the time of factor slot f: the requested outputs (NULL: not computed) at
 * the points' rows, as diffsde_gmm_evaluate. Uses the evaluator's block scratch; needs f's
 * trinv when div is requested. Returns DIFFSDE_OK, or DIFFSDE_ENONFINITE (message prefixed
 * with fn naming the sample) for a point too far from every component; the outputs are then
 * partially written.
 */
int diffsde_i_gmm_eval_small(diffsde_gmm_eval *ev, const diffsde_i_gmm_factor *f, size_t nb,
                             const double *x, double *logp, double *score, double *div,
                             double *resp, const char *fn);

/* 1 when every x[0..nx) is finite and, if t is not NULL, every t[0..n) lies in [0, T]; else 0
 * (one vectorised pass; the caller then looks for the first offender). */
int diffsde_i_gmm_inputs_ok(size_t nx, const double *x, size_t n, const double *t, double T);

/*
 * Check that t is a valid time for the evaluator's SDE (NaN or outside [0, T] → EDOM,
 * message naming fn, the sample index `i` and t). Always OK for p0.
 */
int diffsde_i_gmm_check_time(const diffsde_gmm_eval *ev, double t, size_t i, const char *fn);

#endif /* DIFFSDE_GMM_IMPL_H */
