/*
 * Private helpers shared by the files of src/metrics/:
 *   common.c        argument checks, restating failures of the oracle / model / noise, Welford
 *   moments.c       mean and covariance errors
 *   occupancy.c     hard assignment to components, Pearson tests
 *   sliced_w2.c     sliced Wasserstein-2
 *   energy.c        energy distance and its permutation test
 *   loglik.c        mean exact log-density
 *   report.c        diffsde_metrics_compute and the options
 *   score_quality.c Fisher divergence and denoising score matching
 *   jvp_fd.c        central-difference JVP of a score model
 *   gmm_curv.c      vᵀ (∇² log p_t) v of the mixture in closed form
 *   sliced_sm.c     sliced score matching
 * Not installed.
 */
#ifndef DIFFSDE_METRICS_IMPL_H
#define DIFFSDE_METRICS_IMPL_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "core/internal.h"
#include "diffsde/metrics.h"

/* Running mean and sum of squared deviations (Welford), for diffsde_estimate. */
typedef struct diffsde_i_welford {
    size_t n;
    double mean, m2;
} diffsde_i_welford;

static inline void diffsde_i_welford_add(diffsde_i_welford *w, double v)
{
    w->n++;
    double d = v - w->mean;
    w->mean += d / (double)w->n;
    w->m2 += d * (v - w->mean);
}

static inline diffsde_estimate diffsde_i_welford_get(const diffsde_i_welford *w)
{
    diffsde_estimate e;
    e.n = w->n;
    e.mean = w->n > 0 ? w->mean : NAN;
    e.se = w->n > 1 ? sqrt(w->m2 / (double)(w->n - 1) / (double)w->n) : NAN;
    return e;
}

/*
 * One public call: its context, its name, and a fingerprint of the failure records of the
 * contexts its callees may record on, taken when the call starts. A callee that fails records
 * its message on its own context; comparing fingerprints afterwards tells which context holds
 * that fresh message (no counter exists in a context), so that it can be restated on ctx
 * without quoting a stale message from an earlier, unrelated failure.
 */
#define DIFFSDE_I_METRICS_ORIGINS 2
typedef struct diffsde_i_metrics_call {
    diffsde_ctx *ctx;
    const char *fn;
    const diffsde_ctx *origin[DIFFSDE_I_METRICS_ORIGINS]; /* the model's and the SDE's */
    uint64_t key[DIFFSDE_I_METRICS_ORIGINS + 1];          /* fingerprints: origins, then ctx */
} diffsde_i_metrics_call;

/* Start a call: gmm and sde may be NULL. */
void diffsde_i_metrics_call_init(diffsde_i_metrics_call *c, diffsde_ctx *ctx, const char *fn,
                                 const diffsde_gmm *gmm, const diffsde_sde *sde);

/*
 * Restate on c->ctx a failure `rc` of a callee described by `what`: "fn: what failed: <detail>",
 * the detail being the callee's fresh message (from the model's or the SDE's context if it
 * changed there since the call started, in place if it changed on ctx itself), else the status
 * description (e.g. a noise source or a model created on another context). Returns rc.
 */
int diffsde_i_metrics_restate(const diffsde_i_metrics_call *c, int rc, const char *what);

/*
 * n·d without overflow and with d ≥ 1, n ≥ n_min; records "fn: ..." on c->ctx otherwise
 * (ESIZE). `what` names the array ("x", "the reference set").
 */
int diffsde_i_metrics_size(const diffsde_i_metrics_call *c, const char *what, size_t n,
                           size_t n_min, size_t d, size_t *nd);

/* Every entry of x (n × d) finite, else ENONFINITE naming `what`, the sample and coordinate. */
int diffsde_i_metrics_finite(const diffsde_i_metrics_call *c, const char *what, size_t n, size_t d,
                             const double *x);

/* EUNSUPPORTED (message saying `why` needs uniforms) for a callback noise source. */
int diffsde_i_metrics_need_philox(const diffsde_i_metrics_call *c, const diffsde_noise *noise,
                                  const char *why);

/*
 * The arguments of a metric on n samples x and an optional reference set ref (n_ref rows,
 * may be 0): the mixture finalised, x, out and (n_ref > 0) ref non-NULL, n ≥ 1, sizes without
 * overflow, every entry finite. Records the failure on c->ctx.
 */
int diffsde_i_metrics_check_sets(const diffsde_i_metrics_call *c, const diffsde_gmm *gmm,
                                 size_t n, const double *x, size_t n_ref, const double *ref,
                                 const void *out);

/* The mixture is non-NULL and finalised (ENULL / ESTATE otherwise). */
int diffsde_i_metrics_check_gmm(const diffsde_i_metrics_call *c, const diffsde_gmm *gmm);

/*
 * Workers on an existing evaluator `ev` of the mixture at time t (shared by the public
 * functions and by diffsde_metrics_compute). `tb` is a scratch of DIFFSDE_METRICS_BLOCK
 * doubles (the per-point times), `resp` one of DIFFSDE_METRICS_BLOCK × K (occupancy) and
 * `logp` one of DIFFSDE_METRICS_BLOCK (loglik). Arguments are already checked.
 */
int diffsde_i_metrics_assign(const diffsde_i_metrics_call *c, const char *set,
                             const diffsde_gmm *gmm, diffsde_gmm_eval *ev, double t, size_t n,
                             const double *x, size_t *counts, double *ambiguity, double *tb,
                             double *resp);
void diffsde_i_metrics_occupancy_tests(const diffsde_gmm *gmm, size_t n, const size_t *counts,
                                       size_t n_ref, const size_t *ref_counts,
                                       diffsde_occupancy *out);
int diffsde_i_metrics_mean_logp(const diffsde_i_metrics_call *c, const char *set,
                                const diffsde_gmm *gmm, diffsde_gmm_eval *ev, double t, size_t n,
                                const double *x, double *tb, double *logp, diffsde_estimate *out);
void diffsde_i_metrics_loglik_diff(diffsde_loglik_check *out);
int diffsde_i_metrics_moments(const diffsde_i_metrics_call *c, const diffsde_gmm *gmm,
                              const diffsde_sde *sde, double t, size_t n, const double *x,
                              diffsde_moment_errors *out);
int diffsde_i_metrics_sliced_w2(const diffsde_i_metrics_call *c, const diffsde_noise *noise,
                                size_t n, size_t d, const double *x, const double *y,
                                size_t n_directions, double *out);
int diffsde_i_metrics_energy(const diffsde_i_metrics_call *c, const diffsde_noise *noise, size_t nx,
                             size_t ny, size_t d, const double *x, const double *y,
                             size_t max_points, size_t permutations, diffsde_energy_test *out);

/*
 * Checks shared by the score diagnostics: ctx non-NULL is the caller's job; gmm finalised,
 * sde, score, noise and out non-NULL (`out_ok`), n ≥ 1, sample0 + n ≤ 2^48. Sets *d.
 */
int diffsde_i_metrics_check_score_args(const diffsde_i_metrics_call *c, const diffsde_gmm *gmm,
                                       const diffsde_sde *sde, const diffsde_score *score,
                                       const diffsde_noise *noise, uint64_t sample0, size_t n,
                                       int out_ok, size_t *d);

/* Restate a failure of diffsde_score_eval (message on the model's context). */
int diffsde_i_metrics_score_fail(const diffsde_i_metrics_call *c, int rc, size_t i0, size_t nb);

/*
 * Central-difference JVP without argument checks: `work` holds 3·n·d doubles; v rows are
 * non-zero; h0 > 0 is the relative step. Failures of the model are restated on ctx.
 */
int diffsde_i_metrics_jvp_fd(const diffsde_i_metrics_call *c, const diffsde_score *score,
                             const diffsde_sde *sde, size_t n, size_t d, const double *t,
                             const double *x, const double *v, double h0, double *jv, double *work);

/*
 * Closed-form curvature of log p_t: the factors of C_k(t) = α²Σ_k + σ²I for all k, and
 * vᵀ (∇² log p_t)(x) v from the responsibilities and the exact score at x.
 */
typedef struct diffsde_i_metrics_curv {
    diffsde_ctx *ctx;
    size_t d, K;
    double alpha;
    double *L;    /* K × d × d lower Cholesky factors of C_k */
    double *mean; /* K × d means μ_k */
    double *w1;   /* d scratch */
    double *w2;   /* d scratch */
} diffsde_i_metrics_curv;

int diffsde_i_metrics_curv_init(diffsde_i_metrics_curv *cv, const diffsde_i_metrics_call *c,
                                const diffsde_gmm *gmm, const diffsde_sde *sde, double t);
void diffsde_i_metrics_curv_free(diffsde_i_metrics_curv *c);
/* vᵀ H v at x, given the responsibilities resp (K) and the exact score s (d) at x. */
double diffsde_i_metrics_curv_vhv(diffsde_i_metrics_curv *c, const double *x, const double *v,
                                  const double *resp, const double *s);

#endif /* DIFFSDE_METRICS_IMPL_H */
