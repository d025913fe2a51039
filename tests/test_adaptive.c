/*
 * The adaptive reverse-SDE solver (src/sampler/adaptive.h), through its internal interface and
 * through diffsde_sampler_run() with method "adaptive-sde". Philox seed SEED for the samplers,
 * SEED_M for the metrics' reference sets and directions.
 *
 * - Exactness: a scalar re-implementation written here from the algorithm stated in
 *   adaptive.h (EM proposal, improved-Euler solution on the same increment, mixed-tolerance
 *   error, θ = r = 0.9, factor clamped to [0.1, 10], h₀ = 0.01 (T − ε), last step landing on
 *   ε, and the Brownian path memory: pieces taken whole, bridge split of the straddling piece
 *   or fresh increment, new part stored on rejection) with a closed-form Gaussian score gives,
 *   for gauss1 (2-D, full covariance) under VP and VE at two tolerances, the same
 *   accepted/rejected sequence attempt by attempt, the same times (1e-13 relative) and the same
 *   samples (1e-12 relative); the memory reaches several pieces.
 * - Batch independence: ring8 (exact score) under VP and VE, samples 100..106 run alone, in a
 *   batch of 7 and inside a batch of 23 (95..117): bit-identical samples, time sequences and
 *   accepted/rejected counts.
 * - Distribution, Gaussian data: N(m, diag v) in d = 16 (affine score written here), VP,
 *   n = 20000, default tolerances: every coordinate's mean and variance within 4 standard
 *   errors of the exact p_ε (32 statistics, false alarm ≤ 32 × 6.3e-5 = 2e-3; the worst is
 *   printed). NFE strictly decreasing as rtol grows (0.01, 0.05, 0.2).
 *   gauss1 (d = 2), VP, n = 20000, default tolerances: the mean (2) and the covariance entries
 *   (3) within 4 standard errors: 5 statistics, false alarm ≤ 5 × 6.3e-5 = 3.2e-4 without
 *   bias. The discretisation bias at this tolerance, measured with 2·10⁶ samples (another
 *   seed): covariance −0.42%, −0.26%, −0.05% (± 0.1–0.2%), means 0.3 se of n = 20000, i.e.
 *   at most 0.42 standard error at n = 20000, which raises the bound to 5 × P(Z > 3.58) ≈
 *   9e-4. This is the test the paper's same-noise retries fail: they bias low dimensions
 *   (covariance +5%, +14%, +12% here, z-scores 5 to 12).
 * - Mixtures: ring8 under VP and VE, n = 2000, default tolerances, metrics against the exact
 *   p_ε: occupancy χ² p-values (weights and reference set) > 1e-4 (false alarm 1e-4 each),
 *   energy permutation p-value > 1/(B+1) with B = 200 (1/201), sliced W2 < 0.55 (exact-vs-
 *   exact at ε, n = 2000, 300 seed pairs in a throwaway run: mean 0.266, sd 0.067, maximum
 *   0.446; 0.55 = mean + 4.2 sd), |log-lik diff| < 4 se (6.3e-5 without bias). NFE per sample
 *   and the p-values are printed. At n = 2·10⁴ (a measuring program; too slow for this test
 *   under ASan) the occupancy p-values are 0.004–0.91 (VP) and 0.23–0.83 (VE) over 8 seeds,
 *   against 1e-28 and 2e-23 with same-noise retries; the log-likelihood difference, however,
 *   carries a discretisation bias at the default tolerance, −0.06 (VP) and +0.065 (VE)
 *   (se 0.012 at n = 2·10⁴), about 1.5 and 1.9 se at n = 2000: the false-alarm probability of
 *   that check is then about 0.6% and 1.5% per seed. The seed is fixed, and this test guards
 *   against gross errors (a lost mode, a broken controller or path).
 * - The Brownian path, seen through a probe SDE (f = 0, g = 1: x' = x'' = x + W, so that the
 *   score callback sees every attempt's increment) whose score callback rejects the attempts
 *   whose increment has a first coordinate above 0.25 in size:
 *   (1) bookkeeping, 5 samples, recording noise source: each step call requests exactly the
 *   draw predicted by the memory written out here, (PREDICTOR, f) or (BRIDGE, b) with the
 *   sample's counters, or none; the increment used is the predicted one bit for bit; every
 *   case (fresh, bridge, no draw; accepted and rejected) occurs; at ε the accepted increments
 *   (x_ε − x_T) sum to the fresh increments drawn (W(T) − W(ε)) within a rounding bound;
 *   (2) the law: n = 20000 samples, x_ε − x_T ~ N(0, (1 − ε) I) exactly whatever the
 *   rejections: means and variances within 4 standard errors (false alarm 2.5e-4; same-noise
 *   retries give a variance ratio of 0.17 on the first coordinate, z = −83).
 * - The path memory unit (adaptive_path.h) driven by a script against the memory written out
 *   here: 32 nested rejections, a rejection in each of the three layouts that overflow (each
 *   merging two pieces as adaptive.h states), then acceptances of every kind; the same plans,
 *   increments and pieces bit for bit, and the conservation of the fresh increments.
 * - Failures: NaN from the score (ENONFINITE, sample and t in the message), a batch-dependent
 *   NaN, recoverable failures at (x', t') (rejections, still batch-independent), transient
 *   ones (no effect on the samples) and at (x, t) (ERETRY), a fatal status (ECALLBACK),
 *   max_steps (ECONVERGENCE), step-size underflow (ECONVERGENCE), the path memory's limit
 *   (a score keeping E at 1.01: hundreds of rejections in a row, the memory capped at 32
 *   pieces by merges, no failure until the step underflows), a failing noise source:
 *   each time x and the times exactly as before the call. A failed call made again after the
 *   failure is gone ends the run bit for bit as without it (fatal status at three calls, a
 *   noise failure at two steps). Argument errors, lifecycle, no allocation after _new, no leak
 *   for any failing allocation.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diffsde/gmm.h"
#include "diffsde/metrics.h"
#include "diffsde/sampler.h"
#include "sampler/adaptive.h"
#include "testutil.h"

#define SEED UINT64_C(0x5eed2385)
#define SEED_M UINT64_C(0x2545f4914f6cdd1d)
#define MAXCALLS 4096 /* step calls recorded per run */

#define ok(expr, ctx)                                                                         \
    do {                                                                                      \
        int st_ = (expr);                                                                     \
        if (st_ != DIFFSDE_OK)                                                                \
            print_error("%s -> %s: %s\n", #expr, diffsde_status_name(st_),                   \
                        diffsde_errmsg(ctx));                                                 \
        assert_int_equal(st_, DIFFSDE_OK);                                                    \
    } while (0)

static void assert_msg_has(const diffsde_ctx *ctx, const char *a, const char *b)
{
    const char *m = diffsde_errmsg(ctx);
    if (!strstr(m, a) || (b && !strstr(m, b))) {
        print_error("message \"%s\" lacks \"%s\" / \"%s\"\n", m, a, b ? b : "");
        fail();
    }
}

typedef struct fixture {
    diffsde_ctx *ctx;
    diffsde_sde *vp, *ve;
    diffsde_gmm *ring8, *gauss1;
    diffsde_noise *noise, *mnoise;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f || diffsde_ctx_new(&f->ctx, NULL) ||
        diffsde_sde_new_vp(f->ctx, DIFFSDE_VP_BETA_MIN, DIFFSDE_VP_BETA_MAX, &f->vp) ||
        diffsde_sde_new_ve(f->ctx, DIFFSDE_VE_SIGMA_MIN, DIFFSDE_VE_SIGMA_MAX, &f->ve) ||
        diffsde_gmm_new_builtin(f->ctx, "ring8", &f->ring8) ||
        diffsde_gmm_new_builtin(f->ctx, "gauss1", &f->gauss1) ||
        diffsde_noise_new_philox(f->ctx, SEED, &f->noise) ||
        diffsde_noise_new_philox(f->ctx, SEED_M, &f->mnoise))
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    diffsde_noise_free(f->mnoise);
    diffsde_noise_free(f->noise);
    diffsde_gmm_free(f->gauss1);
    diffsde_gmm_free(f->ring8);
    diffsde_sde_free(f->ve);
    diffsde_sde_free(f->vp);
    diffsde_ctx_free(f->ctx);
    free(f);
    return 0;
}

static diffsde_sampler_options adaptive_opt(double rtol, double atol)
{
    diffsde_sampler_options o;
    diffsde_sampler_options_default(&o);
    o.method = DIFFSDE_SAMPLER_ADAPTIVE_SDE;
    o.rtol = rtol;
    o.atol = atol;
    return o;
}

static double default_eps(const diffsde_sde *sde)
{
    double e;
    diffsde_sde_default_eps(sde, &e);
    return e;
}

/* ---------------------------------------------------------------------------------------- */
/* A recorded run: prior draw, then step until done; the times after every step call.        */

typedef struct run_rec {
    size_t n, d, calls;
    double *x;    /* n × d */
    double *traj; /* MAXCALLS × n times after each call */
    uint64_t *acc, *rej; /* per sample, from the time sequences */
    diffsde_sampler_stats st;
} run_rec;

static void rec_init(run_rec *r, size_t n, size_t d)
{
    memset(r, 0, sizeof *r);
    r->n = n;
    r->d = d;
    r->x = calloc(n * d, sizeof *r->x);
    r->traj = n <= 64 ? calloc(MAXCALLS * n, sizeof *r->traj) : NULL; /* small runs only */
    r->acc = calloc(n, sizeof *r->acc);
    r->rej = calloc(n, sizeof *r->rej);
    assert_non_null(r->x);
    assert_non_null(r->acc);
    assert_non_null(r->rej);
}

static void rec_free(run_rec *r)
{
    free(r->x);
    free(r->traj);
    free(r->acc);
    free(r->rej);
}

/* Run to ε (returns the first failing status), filling r (the times and per-sample counts
 * only for n ≤ 64). */
static int run_adaptive(diffsde_ctx *ctx, const diffsde_sde *sde, const diffsde_score *score,
                        const diffsde_sampler_options *opt, const diffsde_noise *noise,
                        uint64_t sample0, run_rec *r)
{
    size_t n = r->n, d = r->d;
    double T, eps = isnan(opt->eps) ? default_eps(sde) : opt->eps;
    diffsde_sde_time_range(sde, NULL, &T);
    diffsde_i_adaptive *a;
    int rc = diffsde_i_adaptive_new(ctx, sde, score, opt, n, d, &a);
    if (rc != DIFFSDE_OK)
        return rc;
    rc = diffsde_sde_prior_sample(sde, noise, sample0, n, d, r->x);
    if (rc == DIFFSDE_OK)
        rc = diffsde_i_adaptive_start(a, noise, sample0);
    memset(&r->st, 0, sizeof r->st);
    r->calls = 0;
    while (rc == DIFFSDE_OK && !diffsde_i_adaptive_done(a)) {
        rc = diffsde_i_adaptive_step(a, r->x, &r->st);
        if (rc == DIFFSDE_OK && r->traj && r->calls < MAXCALLS)
            diffsde_i_adaptive_times(a, r->traj + r->calls * n);
        r->calls++;
    }
    diffsde_i_adaptive_free(a);
    if (rc != DIFFSDE_OK || !r->traj)
        return rc;
    assert_true(r->calls <= MAXCALLS);
    for (size_t i = 0; i < n; i++) {
        r->acc[i] = r->rej[i] = 0;
        double prev = T;
        for (size_t c = 0; c < r->calls && prev != eps; c++) {
            double now = r->traj[c * n + i];
            if (now != prev)
                r->acc[i]++;
            else
                r->rej[i]++;
            prev = now;
        }
        assert_true(prev == eps); /* lands on ε exactly */
    }
    return DIFFSDE_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* The path memory of adaptive.h ("The Brownian path of a sample"), written out for d = 2.    */

enum { REF_MAXP = 64 };

typedef struct ref_path {
    size_t depth;                          /* stored pieces; piece p over [lo[p], lo[p+1]] */
    double lo[REF_MAXP], w[REF_MAXP][2];
    uint64_t nf, nb;                       /* fresh and bridge draws made */
    double fresh[2];                       /* Σ of the fresh increments drawn */
    size_t merges;                         /* rejections that found the memory full */
} ref_path;

typedef struct ref_attempt {
    size_t pop, p;  /* pieces taken whole; p = depth − pop, the straddling piece is p − 1 */
    int draw;       /* 0: none; 1: fresh (PREDICTOR, nf); 2: bridge (BRIDGE, nb) */
    uint64_t step;  /* its step index */
    double u, part[2];
} ref_attempt;

/* The increment W over [u, t] of sample g (noise seed `seed`), without changing rp. */
static void ref_increment(const ref_path *rp, uint64_t seed, uint64_t g, double t, double u,
                          double W[2], ref_attempt *at)
{
    double up = t;
    size_t p = rp->depth, pop = 0;
    while (p > 0 && rp->lo[p - 1] >= u) {
        up = rp->lo[--p];
        pop++;
    }
    at->pop = pop;
    at->p = p;
    at->u = u;
    at->draw = !(u < up) ? 0 : p > 0 ? 2 : 1;
    at->step = at->draw == 1 ? rp->nf : rp->nb;
    for (int j = 0; j < 2; j++) {
        if (at->draw == 2) {
            double lo = rp->lo[p - 1], q = (up - u) / (up - lo);
            double sd = sqrt((up - u) * (u - lo) / (up - lo));
            at->part[j] = q * rp->w[p - 1][j] +
                          sd * diffsde_noise_normal_at(seed, DIFFSDE_STREAM_BRIDGE, g, rp->nb, j);
        } else if (at->draw == 1) {
            at->part[j] = sqrt(up - u) *
                          diffsde_noise_normal_at(seed, DIFFSDE_STREAM_PREDICTOR, g, rp->nf, j);
        }
        double w = 0;
        for (size_t k = 0; k < pop; k++)
            w = k == 0 ? rp->w[rp->depth - 1][j] : w + rp->w[rp->depth - 1 - k][j];
        if (at->draw)
            w = pop == 0 ? at->part[j] : w + at->part[j];
        W[j] = w;
    }
}

/* The memory after the attempt: accepted, everything used is consumed; rejected, the new part
 * becomes a piece of its own below the pieces taken, and if that makes more than
 * DIFFSDE_I_ADAPTIVE_MAX_PIECES pieces, the two lowest ones are merged (lower + upper). */
static void ref_commit(ref_path *rp, const ref_attempt *at, int accepted)
{
    size_t p = at->p;
    if (at->draw == 1) {
        rp->nf++;
        for (int j = 0; j < 2; j++)
            rp->fresh[j] += at->part[j];
    } else if (at->draw == 2) {
        rp->nb++;
        for (int j = 0; j < 2; j++)
            rp->w[p - 1][j] -= at->part[j];
    }
    if (accepted) {
        rp->depth = p;
        return;
    }
    if (at->draw == 0)
        return;
    assert_true(rp->depth < REF_MAXP);
    for (size_t k = rp->depth; k > p; k--) {
        rp->lo[k] = rp->lo[k - 1];
        memcpy(rp->w[k], rp->w[k - 1], sizeof rp->w[k]);
    }
    rp->lo[p] = at->u;
    memcpy(rp->w[p], at->part, sizeof at->part);
    rp->depth++;
    if (rp->depth > DIFFSDE_I_ADAPTIVE_MAX_PIECES) {
        for (int j = 0; j < 2; j++)
            rp->w[0][j] = rp->w[0][j] + rp->w[1][j];
        for (size_t k = 1; k + 1 < rp->depth; k++) {
            rp->lo[k] = rp->lo[k + 1];
            memcpy(rp->w[k], rp->w[k + 1], sizeof rp->w[k]);
        }
        rp->depth--;
        rp->merges++;
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Exactness against a scalar re-implementation (gauss1: mean M1, covariance S1).            */

static const double M1[2] = {1.0, -0.5};
static const double S1[4] = {1.5, 0.4, 0.4, 0.6};

/* Closed-form score of N(α m, α² S + σ² I) at (x, t). */
static void gauss1_score_at(const diffsde_sde *sde, double t, const double *x, double *s)
{
    diffsde_sde_coefs c;
    diffsde_sde_coefs_at(sde, t, &c);
    double a2 = c.alpha * c.alpha, s2 = c.sigma * c.sigma;
    double c00 = a2 * S1[0] + s2, c01 = a2 * S1[1], c11 = a2 * S1[3] + s2;
    double det = c00 * c11 - c01 * c01;
    double r0 = x[0] - c.alpha * M1[0], r1 = x[1] - c.alpha * M1[1];
    s[0] = -(c11 * r0 - c01 * r1) / det;
    s[1] = -(-c01 * r0 + c00 * r1) / det;
}

typedef struct gauss1_model {
    const diffsde_sde *sde;
} gauss1_model;

static int gauss1_cb(size_t n, size_t d, const double *t, const double *x, double *out,
                     void *user)
{
    gauss1_model *g = user;
    if (d != 2)
        return -1;
    for (size_t i = 0; i < n; i++)
        gauss1_score_at(g->sde, t[i], x + 2 * i, out + 2 * i);
    return 0;
}

/* One sample by the algorithm of adaptive.h, written out for d = 2: its attempts' outcomes
 * (1 accepted, 0 rejected) and the time after each attempt; returns the number of attempts.
 * *maxdepth is raised to the deepest path memory seen. */
static size_t reference_sample(const diffsde_sde *sde, double rtol, double atol, uint64_t g,
                               double *xout, unsigned char *outcome, double *times, size_t cap,
                               size_t *maxdepth)
{
    double T, eps = default_eps(sde), prior;
    diffsde_sde_time_range(sde, NULL, &T);
    diffsde_sde_prior_std(sde, &prior);
    double x[2], xprev[2], t = T, h = 0.01 * (T - eps);
    for (int j = 0; j < 2; j++)
        xprev[j] = x[j] = prior * diffsde_noise_normal_at(SEED, DIFFSDE_STREAM_PRIOR, g, 0, j);
    ref_path rp;
    memset(&rp, 0, sizeof rp);
    size_t att = 0;
    while (t != eps && att < cap) {
        double tn = t - h;
        if (h >= t - eps || tn <= eps)
            tn = eps;
        double hk = t - tn, W[2];
        ref_attempt at;
        ref_increment(&rp, SEED, g, t, tn, W, &at);
        diffsde_sde_coefs c0, c1;
        diffsde_sde_coefs_at(sde, t, &c0);
        diffsde_sde_coefs_at(sde, tn, &c1);
        double s0[2], s1[2], b0[2], b1[2], xp[2], xpp[2], sum = 0;
        gauss1_score_at(sde, t, x, s0);
        for (int j = 0; j < 2; j++) {
            b0[j] = c0.g2 * s0[j] - c0.f * x[j];
            xp[j] = x[j] + hk * b0[j] + c0.g * W[j];
        }
        gauss1_score_at(sde, tn, xp, s1);
        for (int j = 0; j < 2; j++) {
            b1[j] = c1.g2 * s1[j] - c1.f * xp[j];
            xpp[j] = x[j] + 0.5 * hk * (b0[j] + b1[j]) + 0.5 * (c0.g + c1.g) * W[j];
            double delta = fmax(atol, rtol * fmax(fabs(xp[j]), fabs(xprev[j])));
            sum += pow((xpp[j] - xp[j]) / delta, 2);
        }
        double E = sqrt(sum / 2);
        double fac = E == 0 ? 10 : fmin(10, fmax(0.1, 0.9 * pow(E, -0.9)));
        ref_commit(&rp, &at, E <= 1);
        if (rp.depth > *maxdepth)
            *maxdepth = rp.depth;
        if (E <= 1) {
            memcpy(x, xpp, sizeof x);
            memcpy(xprev, xp, sizeof xp);
            t = tn;
        }
        outcome[att] = E <= 1;
        times[att++] = t;
        h = fmin(t - eps, (tn == eps ? hk : h) * fac);
    }
    assert_int_equal(rp.depth, 0); /* at ε every drawn piece is used */
    memcpy(xout, x, sizeof x);
    return att;
}

static void test_reference(void **state)
{
    fixture *f = *state;
    enum { NS = 12, CAP = 2048 };
    const diffsde_sde *sdes[2] = {f->vp, f->ve};
    const double tol[2][2] = {{0.05, 0.01}, {0.005, 0.001}};
    static unsigned char outcome[CAP];
    static double times[CAP];
    double worst_x = 0, worst_t = 0;
    size_t attempts = 0, rejected = 0, maxdepth = 0;
    for (int s = 0; s < 2; s++) {
        gauss1_model gm = {sdes[s]};
        diffsde_score *sc;
        ok(diffsde_score_new(f->ctx, gauss1_cb, &gm, DIFFSDE_PARAM_SCORE, &sc), f->ctx);
        for (int q = 0; q < 2; q++) {
            diffsde_sampler_options o = adaptive_opt(tol[q][0], tol[q][1]);
            run_rec r;
            rec_init(&r, NS, 2);
            ok(run_adaptive(f->ctx, sdes[s], sc, &o, f->noise, 40, &r), f->ctx);
            for (size_t i = 0; i < NS; i++) {
                double xr[2];
                size_t na = reference_sample(sdes[s], tol[q][0], tol[q][1], 40 + i, xr,
                                             outcome, times, CAP, &maxdepth);
                assert_true(na < CAP);
                assert_int_equal(na, r.acc[i] + r.rej[i]);
                double prev = 1.0;
                for (size_t c = 0; c < na; c++) {
                    double tl = r.traj[c * NS + i];
                    assert_int_equal(outcome[c], tl != prev); /* same accept/reject */
                    assert_close(tl, times[c], 1e-13, 0);
                    worst_t = fmax(worst_t, fabs(tl - times[c]) / times[c]);
                    prev = tl;
                    rejected += !outcome[c];
                }
                attempts += na;
                for (int j = 0; j < 2; j++) {
                    double scale = fmax(fabs(xr[0]), fabs(xr[1]));
                    assert_close(r.x[2 * i + j], xr[j], 0, 1e-12 * scale);
                    worst_x = fmax(worst_x, fabs(r.x[2 * i + j] - xr[j]) / scale);
                }
            }
            rec_free(&r);
        }
        diffsde_score_free(sc);
    }
    assert_true(rejected > 0);
    assert_true(maxdepth >= 3);
    print_message("# reference recursion: %zu attempts (%zu rejected, path memory up to %zu "
                  "pieces) identical; worst relative difference x %.1e, t %.1e\n",
                  attempts, rejected, maxdepth, worst_x, worst_t);
}

/* ---------------------------------------------------------------------------------------- */
/* Batch independence.                                                                        */

static void test_batch_independence(void **state)
{
    fixture *f = *state;
    const diffsde_sde *sdes[2] = {f->vp, f->ve};
    for (int s = 0; s < 2; s++) {
        diffsde_score *sc;
        ok(diffsde_gmm_score_new(f->ring8, sdes[s], &sc), f->ctx);
        diffsde_sampler_options o = adaptive_opt(0.05, 0.01);
        run_rec b7, b23, one;
        rec_init(&b7, 7, 2);
        rec_init(&b23, 23, 2);
        rec_init(&one, 1, 2);
        ok(run_adaptive(f->ctx, sdes[s], sc, &o, f->noise, 100, &b7), f->ctx);
        ok(run_adaptive(f->ctx, sdes[s], sc, &o, f->noise, 95, &b23), f->ctx);
        uint64_t acc = 0, rej = 0;
        for (size_t i = 0; i < 7; i++) {
            ok(run_adaptive(f->ctx, sdes[s], sc, &o, f->noise, 100 + i, &one), f->ctx);
            acc += one.st.accepted;
            rej += one.st.rejected;
            const size_t k = 5 + i; /* its row in the batch of 23 */
            assert_memory_equal(one.x, b7.x + 2 * i, 2 * sizeof(double));
            assert_memory_equal(one.x, b23.x + 2 * k, 2 * sizeof(double));
            assert_int_equal(one.acc[0], one.st.accepted);
            assert_int_equal(one.rej[0], one.st.rejected);
            assert_int_equal(one.acc[0], b7.acc[i]);
            assert_int_equal(one.rej[0], b7.rej[i]);
            assert_int_equal(one.acc[0], b23.acc[k]);
            assert_int_equal(one.rej[0], b23.rej[k]);
            for (size_t c = 0; c < one.calls; c++) {
                assert_true(one.traj[c] == b7.traj[c * 7 + i]);
                assert_true(one.traj[c] == b23.traj[c * 23 + k]);
            }
        }
        assert_int_equal(acc, b7.st.accepted);
        assert_int_equal(rej, b7.st.rejected);
        assert_true(rej > 0);
        rec_free(&b7);
        rec_free(&b23);
        rec_free(&one);
        diffsde_score_free(sc);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Gaussian data.                                                                             */

enum { DG = 16 };

typedef struct diag_model {
    const diffsde_sde *sde;
    double m[DG], v[DG];
} diag_model;

static int diag_cb(size_t n, size_t d, const double *t, const double *x, double *out,
                   void *user)
{
    diag_model *g = user;
    diffsde_sde_coefs c = {0};
    for (size_t i = 0; i < n; i++) {
        if (i == 0 || t[i] != c.t)
            diffsde_sde_coefs_at(g->sde, t[i], &c);
        for (size_t j = 0; j < d; j++) {
            double var = c.alpha * c.alpha * g->v[j] + c.sigma * c.sigma;
            out[i * d + j] = -(x[i * d + j] - c.alpha * g->m[j]) / var;
        }
    }
    return 0;
}

static void test_gaussian(void **state)
{
    fixture *f = *state;
    enum { NG = 20000 };
    diag_model g = {f->vp, {0}, {0}};
    for (int j = 0; j < DG; j++) {
        g.m[j] = -1.385 + 0.2385 * j;
        g.v[j] = 0.05 * pow(1.25, j); /* 0.05 .. 1.42 */
    }
    diffsde_score *sc;
    ok(diffsde_score_new(f->ctx, diag_cb, &g, DIFFSDE_PARAM_SCORE, &sc), f->ctx);
    double eps = default_eps(f->vp);
    diffsde_sde_coefs ce;
    ok(diffsde_sde_coefs_at(f->vp, eps, &ce), f->ctx);

    /* d = 16: mean and variance of every coordinate within 4 standard errors. */
    diffsde_sampler_options o = adaptive_opt(0.05, 0.01);
    run_rec r;
    rec_init(&r, NG, DG);
    ok(run_adaptive(f->ctx, f->vp, sc, &o, f->noise, 0, &r), f->ctx);
    double worst = 0;
    for (int j = 0; j < DG; j++) {
        double var = ce.alpha * ce.alpha * g.v[j] + ce.sigma * ce.sigma, mu = ce.alpha * g.m[j];
        double s1 = 0, s2 = 0;
        for (size_t i = 0; i < NG; i++)
            s1 += r.x[i * DG + j];
        double mean = s1 / NG;
        for (size_t i = 0; i < NG; i++)
            s2 += (r.x[i * DG + j] - mean) * (r.x[i * DG + j] - mean);
        double v = s2 / (NG - 1);
        double zm = (mean - mu) / sqrt(var / NG), zv = (v - var) / (var * sqrt(2.0 / (NG - 1)));
        worst = fmax(worst, fmax(fabs(zm), fabs(zv)));
        assert_true(fabs(zm) < 4);
        assert_true(fabs(zv) < 4);
    }
    double nfe_default = (double)r.st.score_evals / NG;
    print_message("# d = 16 Gaussian, VP, n = %d, rtol 0.05: worst of 32 z-scores %.2f; NFE per "
                  "sample %.1f (%.1f accepted, %.1f rejected)\n",
                  NG, worst, nfe_default, (double)r.st.accepted / NG,
                  (double)r.st.rejected / NG);
    rec_free(&r);

    /* NFE decreases as the tolerance loosens (n = 2000). */
    const double rtols[3] = {0.01, 0.05, 0.2};
    double nfe[3];
    for (int q = 0; q < 3; q++) {
        diffsde_sampler_options oq = adaptive_opt(rtols[q], rtols[q] / 5);
        rec_init(&r, 2000, DG);
        ok(run_adaptive(f->ctx, f->vp, sc, &oq, f->noise, 0, &r), f->ctx);
        nfe[q] = (double)r.st.score_evals / 2000;
        rec_free(&r);
    }
    assert_true(nfe[0] > nfe[1] && nfe[1] > nfe[2]);
    print_message("# NFE per sample at rtol 0.01 / 0.05 / 0.2 (atol = rtol/5): %.1f / %.1f / "
                  "%.1f\n",
                  nfe[0], nfe[1], nfe[2]);
    diffsde_score_free(sc);

    /* gauss1 (d = 2): the mean and the covariance within 4 standard errors. */
    ok(diffsde_gmm_score_new(f->gauss1, f->vp, &sc), f->ctx);
    double m[2], C[4];
    ok(diffsde_gmm_moments(f->gauss1, f->vp, eps, m, C), f->ctx);
    rec_init(&r, NG, 2);
    ok(run_adaptive(f->ctx, f->vp, sc, &o, f->noise, 0, &r), f->ctx);
    double mean[2] = {0, 0}, cov[4] = {0, 0, 0, 0};
    for (size_t i = 0; i < NG; i++)
        for (int j = 0; j < 2; j++)
            mean[j] += r.x[2 * i + j] / NG;
    for (size_t i = 0; i < NG; i++)
        for (int a = 0; a < 2; a++)
            for (int b = 0; b < 2; b++)
                cov[2 * a + b] +=
                    (r.x[2 * i + a] - mean[a]) * (r.x[2 * i + b] - mean[b]) / (NG - 1);
    double z0 = (mean[0] - m[0]) / sqrt(C[0] / NG), z1 = (mean[1] - m[1]) / sqrt(C[3] / NG);
    /* standard errors of the sample covariance of Gaussian data: Var S_ab ≈ (C_aa C_bb +
     * C_ab²)/n */
    double se[3] = {sqrt(2 * C[0] * C[0] / NG), sqrt((C[0] * C[3] + C[1] * C[1]) / NG),
                    sqrt(2 * C[3] * C[3] / NG)};
    double zc[3] = {(cov[0] - C[0]) / se[0], (cov[1] - C[1]) / se[1], (cov[3] - C[3]) / se[2]};
    print_message("# gauss1 (d = 2), VP, n = %d, rtol 0.05: mean z-scores %+.2f %+.2f; "
                  "covariance z-scores %+.2f %+.2f %+.2f (relative errors %+.4f %+.4f %+.4f)\n",
                  NG, z0, z1, zc[0], zc[1], zc[2], cov[0] / C[0] - 1, cov[1] / C[1] - 1,
                  cov[3] / C[3] - 1);
    assert_true(fabs(z0) < 4 && fabs(z1) < 4);
    for (int k = 0; k < 3; k++)
        assert_true(fabs(zc[k]) < 4);
    rec_free(&r);
    diffsde_score_free(sc);
}

/* ---------------------------------------------------------------------------------------- */
/* ring8 metrics.                                                                             */

static void test_ring8(void **state)
{
    fixture *f = *state;
    enum { NR = 2000 };
    const diffsde_sde *sdes[2] = {f->vp, f->ve};
    const char *names[2] = {"VP", "VE"};
    for (int s = 0; s < 2; s++) {
        diffsde_score *sc;
        ok(diffsde_gmm_score_new(f->ring8, sdes[s], &sc), f->ctx);
        diffsde_sampler_options o;
        diffsde_sampler_options_default(&o);
        o.method = DIFFSDE_SAMPLER_ADAPTIVE_SDE;
        run_rec r;
        rec_init(&r, NR, 2);
        ok(run_adaptive(f->ctx, sdes[s], sc, &o, f->noise, 0, &r), f->ctx);
        double eps = default_eps(sdes[s]);
        diffsde_metrics m;
        ok(diffsde_metrics_compute(f->ctx, f->ring8, sdes[s], eps, f->mnoise, NR, r.x, NULL, &m),
           f->ctx);
        print_message("# ring8 %s, n = %d, default tolerances: NFE per sample %.1f (%.1f "
                      "accepted, %.1f rejected, most steps of one sample %zu); occupancy p %.3g, "
                      "vs reference p %.3g; energy p %.3f; sliced W2 %.3f (null %.3f); loglik "
                      "diff %+.3f (se %.3f)\n",
                      names[s], NR, (double)r.st.score_evals / NR, (double)r.st.accepted / NR,
                      (double)r.st.rejected / NR, r.st.steps, m.occupancy.pvalue,
                      m.occupancy.ref_pvalue, m.energy.pvalue, m.sliced_w2, m.sliced_w2_null,
                      m.loglik.diff, m.loglik.diff_se);
        assert_int_equal(m.occupancy.empty, 0);
        assert_true(m.occupancy.pvalue > 1e-4);
        assert_true(m.occupancy.ref_pvalue > 1e-4);
        assert_true(m.energy.pvalue > 1.0 / 201);
        assert_true(m.sliced_w2 < 0.55);
        assert_true(fabs(m.loglik.diff) < 4 * m.loglik.diff_se);
        rec_free(&r);
        diffsde_score_free(sc);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* The Brownian path: bookkeeping, conservation and law, seen through a Brownian probe.     */

enum { MAXREQ = 65536 };

typedef struct noise_log {
    size_t count;
    uint32_t stream[MAXREQ];
    uint64_t step[MAXREQ], sample[MAXREQ];
    int fail_step; /* >= 0: return 7 when this predictor step is requested */
    int fail_once; /* then stop failing */
} noise_log;

static int log_noise(uint32_t stream, uint64_t step, uint64_t sample0, size_t n, size_t d,
                     double *z, void *user)
{
    noise_log *l = user;
    if (stream == DIFFSDE_STREAM_PREDICTOR && l->fail_step >= 0 &&
        step == (uint64_t)l->fail_step) {
        if (l->fail_once)
            l->fail_step = -1;
        return 7;
    }
    for (size_t i = 0; i < n; i++) {
        if (l->count < MAXREQ) {
            l->stream[l->count] = stream;
            l->step[l->count] = step;
            l->sample[l->count] = sample0 + i;
            l->count++;
        }
        for (size_t j = 0; j < d; j++)
            z[i * d + j] = diffsde_noise_normal_at(SEED, stream, sample0 + i, step, j);
    }
    return 0;
}

/* The probe SDE: f = 0, g² = 1, α = 1, σ² = t on [0, 1] (Brownian motion). With a zero score
 * the drift vanishes and g ≡ 1, so x' = x'' = x + W exactly (E = 0: every attempt is accepted
 * unless the score callback fails): the increment of each attempt is seen at (x', t'). */
static double probe_zero(double t, void *user)
{
    (void)t;
    (void)user;
    return 0;
}
static double probe_one(double t, void *user)
{
    (void)t;
    (void)user;
    return 1;
}
static double probe_sigma(double t, void *user)
{
    (void)user;
    return sqrt(t);
}

/* The probe's score for one sample (n = 1): 0; at (x', t') with t' below the state's time t0
 * it records x' and t' and fails recoverably (a rejection) when |x'_0 − x0_0| > c: a rule
 * that depends on the increment, the situation that biases same-noise retries. */
typedef struct probe {
    double t0, x0[2], c;
    size_t seen;
    double tp, xp[2];
} probe;

static int probe_cb(size_t n, size_t d, const double *t, const double *x, double *out,
                    void *user)
{
    probe *p = user;
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < d; j++)
            out[i * d + j] = 0;
        if (t[i] == p->t0)
            continue; /* s(x, t) at the accepted state */
        p->seen++;
        p->tp = t[i];
        memcpy(p->xp, x + i * d, sizeof p->xp);
        if (fabs(x[i * d] - p->x0[0]) > p->c)
            rc = 1;
    }
    return rc;
}

static void test_path(void **state)
{
    fixture *f = *state;
    diffsde_sde_user def = {probe_zero, probe_one, probe_one, probe_sigma, NULL, 1.0, 0};
    diffsde_sde *bm;
    ok(diffsde_sde_new_user(f->ctx, &def, &bm), f->ctx);
    const double eps = default_eps(bm); /* 1e-3 */
    probe pr;
    memset(&pr, 0, sizeof pr);
    diffsde_score *sc;
    ok(diffsde_score_new(f->ctx, probe_cb, &pr, DIFFSDE_PARAM_SCORE, &sc), f->ctx);
    diffsde_sampler_options o = adaptive_opt(0.05, 0.01);
    diffsde_i_adaptive *a;
    ok(diffsde_i_adaptive_new(f->ctx, bm, sc, &o, 1, 2, &a), f->ctx);

    /* (1) Bookkeeping, samples 10..14 through a recording noise source: each step call
     * requests exactly the draw the written-out memory (ref_increment) predicts, (PREDICTOR,
     * f) or (BRIDGE, b) with the sample's counters, or nothing; the increment it uses is the
     * predicted one bit for bit (x' == x + W); and at ε the accepted increments, whose sum is
     * x_ε − x_T, add up to the sum of the fresh increments, W(T) − W(ε) of the path drawn:
     * equal in exact arithmetic, checked to a bound on rounding (each attempt adds at most a
     * few roundings of quantities below S = Σ|increments| + |x|: 8 u (attempts + 1) S). */
    static noise_log nlog;
    diffsde_noise *cb;
    ok(diffsde_noise_new_callback(f->ctx, log_noise, &nlog, &cb), f->ctx);
    size_t kinds[3][2] = {{0}}, taken = 0, worst_depth = 0;
    double worst_cons = 0;
    pr.c = 0.25;
    for (uint64_t g = 10; g < 15; g++) {
        memset(&nlog, 0, sizeof nlog);
        nlog.fail_step = -1;
        ref_path rp;
        memset(&rp, 0, sizeof rp);
        double x[2] = {0, 0}, t = 1, mag = 0;
        ok(diffsde_i_adaptive_start(a, cb, g), f->ctx);
        size_t attempts = 0;
        while (!diffsde_i_adaptive_done(a)) {
            pr.t0 = t;
            memcpy(pr.x0, x, sizeof x);
            pr.seen = 0;
            size_t before = nlog.count;
            ok(diffsde_i_adaptive_step(a, x, NULL), f->ctx);
            attempts++;
            assert_int_equal(pr.seen, 1);
            double W[2], tnow;
            ref_attempt at;
            ref_increment(&rp, SEED, g, t, pr.tp, W, &at);
            assert_int_equal(nlog.count - before, at.draw ? 1 : 0);
            if (at.draw) {
                assert_int_equal(nlog.stream[before], at.draw == 1 ? DIFFSDE_STREAM_PREDICTOR
                                                                   : DIFFSDE_STREAM_BRIDGE);
                assert_int_equal(nlog.step[before], at.step);
                assert_int_equal(nlog.sample[before], g);
            }
            for (int j = 0; j < 2; j++) {
                assert_true(pr.x0[j] + W[j] == pr.xp[j]);
                mag += fabs(W[j]) + (at.draw == 1 ? fabs(at.part[j]) : 0);
            }
            diffsde_i_adaptive_times(a, &tnow);
            int accepted = tnow != t;
            /* E = 0: only the rule rejects */
            assert_int_equal(accepted, fabs(pr.xp[0] - pr.x0[0]) <= pr.c);
            if (accepted) {
                assert_true(tnow == pr.tp);
                assert_memory_equal(x, pr.xp, sizeof x);
            }
            kinds[at.draw][accepted]++;
            taken += at.pop;
            ref_commit(&rp, &at, accepted);
            if (rp.depth > worst_depth)
                worst_depth = rp.depth;
            t = tnow;
        }
        assert_true(t == eps);
        assert_int_equal(rp.depth, 0);
        assert_int_equal(nlog.count, rp.nf + rp.nb);
        for (int j = 0; j < 2; j++) {
            double bound = 8 * DBL_EPSILON * (double)(attempts + 1) * (mag + fabs(x[j]));
            assert_close(x[j], rp.fresh[j], 0, bound);
            worst_cons = fmax(worst_cons, fabs(x[j] - rp.fresh[j]) / bound);
        }
    }
    for (int k = 0; k < 3; k++)
        for (int acc = 0; acc < 2; acc++)
            assert_true(kinds[k][acc] > 0); /* every case met, accepted and rejected */
    assert_true(taken > 0);
    print_message("# path bookkeeping, 5 samples: attempts with a fresh draw %zu/%zu "
                  "(accepted/rejected), a bridge draw %zu/%zu, no draw %zu/%zu; %zu pieces "
                  "taken whole; memory up to %zu pieces; conservation error at most %.2g of "
                  "its rounding bound\n",
                  kinds[1][1], kinds[1][0], kinds[2][1], kinds[2][0], kinds[0][1], kinds[0][0],
                  taken, worst_depth, worst_cons);
    diffsde_noise_free(cb);

    /* (2) The law: whatever the rejections, x_ε − x_T = W(ε) − W(T) ~ N(0, (1 − ε) I)
     * exactly (no discretisation error: the drift is zero). Philox seed SEED, samples 0 ..
     * NP − 1 (x_T = 0), the same rule (the increment's first coordinate ≤ 0.25 in size):
     * the mean and the variance of both coordinates within 4 standard errors (4 statistics,
     * false alarm ≤ 4 × 6.3e-5 = 2.5e-4). Retrying with the same normals at a smaller h
     * fails this grossly: the accepted steps shrink where |z_0| is large, and the variance of
     * the first coordinate came out 0.17 of the exact one (z = −83) with that solver. */
    enum { NP = 20000 };
    double s1[2] = {0, 0}, s2[2] = {0, 0};
    uint64_t acc = 0, rej = 0;
    for (uint64_t g = 0; g < NP; g++) {
        double x[2] = {0, 0};
        diffsde_sampler_stats st;
        memset(&st, 0, sizeof st);
        ok(diffsde_i_adaptive_start(a, f->noise, g), f->ctx);
        pr.t0 = 1;
        while (!diffsde_i_adaptive_done(a)) {
            memcpy(pr.x0, x, sizeof x);
            ok(diffsde_i_adaptive_step(a, x, &st), f->ctx);
            diffsde_i_adaptive_times(a, &pr.t0);
        }
        acc += st.accepted;
        rej += st.rejected;
        for (int j = 0; j < 2; j++) {
            s1[j] += x[j];
            s2[j] += x[j] * x[j];
        }
    }
    double var = 1 - eps, zs[4];
    for (int j = 0; j < 2; j++) {
        zs[2 * j] = s1[j] / NP / sqrt(var / NP);
        zs[2 * j + 1] = (s2[j] / NP - var) / (var * sqrt(2.0 / NP)); /* known mean 0 */
    }
    print_message("# path law, n = %d, rule |W_0| <= 0.25: %.1f accepted, %.1f rejected per "
                  "sample; x_eps: mean z %+.2f %+.2f, variance z %+.2f %+.2f (variance ratio "
                  "%.4f %.4f)\n",
                  NP, (double)acc / NP, (double)rej / NP, zs[0], zs[2], zs[1], zs[3],
                  s2[0] / NP / var, s2[1] / NP / var);
    for (int k = 0; k < 4; k++)
        assert_true(fabs(zs[k]) < 4);
    assert_true(rej > NP); /* the rule did reject */
    diffsde_i_adaptive_free(a);
    diffsde_score_free(sc);
    diffsde_sde_free(bm);
}

/* The path memory unit itself (adaptive_path.h), driven by a script of targets and outcomes
 * for one sample (global index 7, Philox seed SEED) against the memory written out here:
 * 32 nested rejections fill it; then a rejection in each of the three layouts that overflow
 * (the split piece high up, the split piece the lowest, a fresh part below all pieces), each
 * merging two pieces; then acceptances taking pieces and splitting one, covering exactly,
 * and drawing fresh below all. After every attempt: the same plan, the same increment bit for
 * bit, the same pieces, and the sum of the fresh increments equal to the accepted increments
 * plus the stored pieces within a rounding bound. */
static void test_path_memory(void **state)
{
    fixture *f = *state;
    size_t bytes = 0;
    assert_int_equal(diffsde_i_apath_bytes(1, 2, &bytes), 0);
    assert_int_equal(diffsde_i_apath_bytes(SIZE_MAX / 4, 3, &bytes), -1);
    unsigned char *mem = malloc(bytes), *cur = mem;
    assert_non_null(mem);
    diffsde_i_apath ap;
    diffsde_i_apath_carve(&ap, 1, 2, &cur);
    assert_true(cur == mem + bytes);
    diffsde_i_apath_reset(&ap);
    ref_path rp;
    memset(&rp, 0, sizeof rp);
    const size_t act[1] = {0};
    double t = 1, acc[2] = {0, 0}, mag = 0;
    size_t kinds[3][2] = {{0}};
    for (int step = 0; step < 40; step++) {
        double u;
        int accept = 0;
        size_t dp = ap.depth[0];
        if (step < 33)
            u = 1 - ldexp(1, -(step + 1)); /* nested rejections: 1/2, 3/4, ... */
        else if (step == 33)
            u = 0.5 * (ap.lo[0] + ap.lo[1]); /* inside the lowest piece */
        else if (step == 34)
            u = 0.5 * ap.lo[0]; /* below every piece */
        else if (step == 35)
            u = ap.lo[dp - 1] + 0.25 * (t - ap.lo[dp - 1]); /* accepted: split the top */
        else if (step == 36)
            u = ap.lo[dp - 3]; /* rejected, then accepted: exact cover */
        else if (step == 37) {
            u = ap.lo[dp - 3];
            accept = 1;
        } else if (step == 38)
            u = 0.5 * (ap.lo[dp - 2] + ap.lo[dp - 1]); /* accepted: pieces, then a split */
        else
            u = 0.5 * ap.lo[0]; /* accepted: everything, then fresh */
        if (step == 35 || step >= 38)
            accept = 1;
        double W[2], z[2];
        ref_attempt at;
        ref_increment(&rp, SEED, 7, t, u, W, &at);
        diffsde_i_apath_plan(&ap, 0, 0, t, u);
        assert_int_equal(ap.draw[0], at.draw);
        assert_int_equal(ap.npop[0], at.pop);
        diffsde_i_apath_failure fl;
        ok(diffsde_i_apath_draw(&ap, act, 1, f->noise, 7, &fl), f->ctx);
        diffsde_i_apath_make(&ap, act, 1, z);
        assert_memory_equal(z, W, sizeof W);
        diffsde_i_apath_commit(&ap, 0, 0, accept);
        ref_commit(&rp, &at, accept);
        kinds[at.draw][accept]++;
        assert_int_equal(ap.depth[0], rp.depth);
        assert_memory_equal(ap.lo, rp.lo, rp.depth * sizeof *ap.lo);
        for (size_t q = 0; q < rp.depth; q++)
            assert_memory_equal(ap.w + 2 * q, rp.w[q], sizeof rp.w[q]);
        if (accept) {
            t = u;
            for (int j = 0; j < 2; j++)
                acc[j] += W[j];
        }
        for (int j = 0; j < 2; j++) {
            double stored = 0;
            for (size_t q = 0; q < rp.depth; q++)
                stored += rp.w[q][j];
            mag += fabs(W[j]) + fabs(at.part[j]);
            double bound = 8 * DBL_EPSILON * (step + 1) * (mag + fabs(stored) + fabs(acc[j]));
            assert_close(acc[j] + stored, rp.fresh[j], 0, bound);
        }
        if (step == 31)
            assert_int_equal(ap.depth[0], DIFFSDE_I_ADAPTIVE_MAX_PIECES);
    }
    assert_int_equal(ap.merges, 3);
    assert_int_equal(rp.merges, 3);
    assert_int_equal(ap.max_depth, DIFFSDE_I_ADAPTIVE_MAX_PIECES);
    assert_int_equal(ap.depth[0], 0);
    for (int k = 0; k < 3; k++)
        for (int a = 0; a < 2; a++)
            assert_true(kinds[k][a] > 0);
    free(mem);
}

/* ---------------------------------------------------------------------------------------- */
/* Failures.                                                                                  */

typedef enum fault {
    FAULT_NONE,
    FAULT_NAN_ROW,     /* NaN in rows with t < 0.5 and x0 > 2 */
    FAULT_NAN_CALL,    /* NaN in row 0 of call number `call` when it has several rows */
    FAULT_RETRY_TIMES, /* > 0 for a quarter of the t ∈ (2ε, 0.5): a mixing hash of t's bits
                          (not its low bits, nor a linear hash: the times of the steps
                          can be arithmetic progressions, on which those repeat) */
    FAULT_RETRY_T0,    /* > 0 when a row is at t = T */
    FAULT_RETRY_ALL,   /* > 0 whenever a row is below t = T: every attempt fails */
    FAULT_RETRY_CALL,  /* > 0 at call number `call` only: a transient failure */
    FAULT_FATAL_CALL   /* -3 at call number `call` */
} fault;

/* MurmurHash3's 64-bit finaliser: a bijection mixing every bit into every bit. */
static uint64_t mix64(uint64_t v)
{
    v ^= v >> 33;
    v *= UINT64_C(0xff51afd7ed558ccd);
    v ^= v >> 33;
    v *= UINT64_C(0xc4ceb9fe1a85ec53);
    v ^= v >> 33;
    return v;
}

typedef struct faulty {
    diffsde_score *exact;
    const diffsde_sde *sde;
    fault kind;
    long calls, call;
} faulty;

static int faulty_cb(size_t n, size_t d, const double *t, const double *x, double *out,
                     void *user)
{
    faulty *fy = user;
    fy->calls++;
    if (diffsde_score_eval(fy->exact, fy->sde, n, d, t, x, out) != DIFFSDE_OK)
        return -1;
    double eps = default_eps(fy->sde);
    for (size_t i = 0; i < n; i++) {
        uint64_t bits;
        memcpy(&bits, &t[i], sizeof bits);
        switch (fy->kind) {
        case FAULT_NAN_ROW:
            if (t[i] < 0.5 && x[i * d] > 2)
                out[i * d + 1] = NAN;
            break;
        case FAULT_NAN_CALL:
            if (fy->calls == fy->call && n > 1 && i == 0)
                out[0] = NAN;
            break;
        case FAULT_RETRY_TIMES:
            if (t[i] > 2 * eps && t[i] < 0.5 && mix64(bits) >> 62 == 0)
                return 1;
            break;
        case FAULT_RETRY_T0:
            if (t[i] == 1.0)
                return 2;
            break;
        case FAULT_RETRY_CALL:
            if (fy->calls == fy->call)
                return 4;
            break;
        case FAULT_RETRY_ALL:
            if (t[i] < 1.0)
                return 3;
            break;
        case FAULT_FATAL_CALL:
            if (fy->calls == fy->call)
                return -3;
            break;
        case FAULT_NONE:
            break;
        }
    }
    return 0;
}

/* For the probe SDE: 0 at t = 1 (the initial state); at t' < 1 a constant score making
 * x'' − x' = ½ (1 − t') s = 1.01 atol (atol = 0.01) in every coordinate: E = 1.01. */
static int stubborn_cb(size_t n, size_t d, const double *t, const double *x, double *out,
                       void *user)
{
    (void)x;
    (void)user;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++)
            out[i * d + j] = t[i] == 1.0 ? 0 : 2 * 1.01 * 0.01 / (1 - t[i]);
    return 0;
}

/* Step until failure; assert the status, that x and the times are unchanged by the failing
 * call, and the message. Returns the number of successful steps. */
static size_t step_until_failure(fixture *f, diffsde_i_adaptive *a, size_t n, double *x,
                                 int expect, const char *m1, const char *m2)
{
    double *x0 = malloc(n * 2 * sizeof *x0), *t0 = malloc(n * sizeof *t0),
           *t1 = malloc(n * sizeof *t1);
    assert_non_null(x0);
    assert_non_null(t0);
    assert_non_null(t1);
    size_t steps = 0;
    int rc;
    for (;;) {
        memcpy(x0, x, n * 2 * sizeof *x);
        diffsde_i_adaptive_times(a, t0);
        rc = diffsde_i_adaptive_step(a, x, NULL);
        if (rc != DIFFSDE_OK)
            break;
        steps++;
        assert_false(diffsde_i_adaptive_done(a));
    }
    assert_int_equal(rc, expect);
    diffsde_i_adaptive_times(a, t1);
    assert_memory_equal(x, x0, n * 2 * sizeof *x);
    assert_memory_equal(t1, t0, n * sizeof *t0);
    assert_msg_has(f->ctx, m1, m2);
    free(x0);
    free(t0);
    free(t1);
    return steps;
}

static void test_failures(void **state)
{
    fixture *f = *state;
    enum { NF = 16 };
    diffsde_score *exact, *sc;
    ok(diffsde_gmm_score_new(f->ring8, f->vp, &exact), f->ctx);
    faulty fy = {exact, f->vp, FAULT_NONE, 0, 0};
    ok(diffsde_score_new(f->ctx, faulty_cb, &fy, DIFFSDE_PARAM_SCORE, &sc), f->ctx);
    diffsde_sampler_options o = adaptive_opt(0.05, 0.01);
    diffsde_i_adaptive *a;
    ok(diffsde_i_adaptive_new(f->ctx, f->vp, sc, &o, NF, 2, &a), f->ctx);
    double x[NF * 2];

    /* NaN from some rows: ENONFINITE naming a sample and t. */
    fy.kind = FAULT_NAN_ROW;
    ok(diffsde_sde_prior_sample(f->vp, f->noise, 0, NF, 2, x), f->ctx);
    ok(diffsde_i_adaptive_start(a, f->noise, 0), f->ctx);
    step_until_failure(f, a, NF, x, DIFFSDE_ENONFINITE, "sample ", "t=");
    assert_msg_has(f->ctx, "diffsde_i_adaptive_step", "nan");

    /* NaN depending on the batch, not on the row. */
    fy.kind = FAULT_NAN_CALL;
    fy.calls = 0;
    fy.call = 9;
    ok(diffsde_sde_prior_sample(f->vp, f->noise, 0, NF, 2, x), f->ctx);
    ok(diffsde_i_adaptive_start(a, f->noise, 0), f->ctx);
    step_until_failure(f, a, NF, x, DIFFSDE_ENONFINITE, "no sample alone", NULL);

    /* A fatal status. */
    fy.kind = FAULT_FATAL_CALL;
    fy.calls = 0;
    fy.call = 7;
    ok(diffsde_i_adaptive_start(a, f->noise, 0), f->ctx);
    step_until_failure(f, a, NF, x, DIFFSDE_ECALLBACK, "returned -3", NULL);

    /* Recoverable at the accepted state: nothing to shrink, ERETRY. */
    fy.kind = FAULT_RETRY_T0;
    ok(diffsde_sde_prior_sample(f->vp, f->noise, 0, NF, 2, x), f->ctx);
    ok(diffsde_i_adaptive_start(a, f->noise, 0), f->ctx);
    assert_int_equal(step_until_failure(f, a, NF, x, DIFFSDE_ERETRY, "sample 0", "t=1"), 0);

    /* A failing noise source. */
    static noise_log nlog;
    memset(&nlog, 0, sizeof nlog);
    nlog.fail_step = 3;
    diffsde_noise *cb;
    ok(diffsde_noise_new_callback(f->ctx, log_noise, &nlog, &cb), f->ctx);
    fy.kind = FAULT_NONE;
    ok(diffsde_sde_prior_sample(f->vp, cb, 0, NF, 2, x), f->ctx);
    ok(diffsde_i_adaptive_start(a, cb, 0), f->ctx);
    step_until_failure(f, a, NF, x, DIFFSDE_ECALLBACK, "noise of samples", "step 3");
    diffsde_noise_free(cb);
    diffsde_i_adaptive_free(a);

    /* max_steps: 5 attempts, then ECONVERGENCE. */
    o.max_steps = 5;
    ok(diffsde_i_adaptive_new(f->ctx, f->vp, sc, &o, NF, 2, &a), f->ctx);
    ok(diffsde_sde_prior_sample(f->vp, f->noise, 0, NF, 2, x), f->ctx);
    ok(diffsde_i_adaptive_start(a, f->noise, 0), f->ctx);
    assert_int_equal(step_until_failure(f, a, NF, x, DIFFSDE_ECONVERGENCE, "max_steps (5)",
                                        "sample 0"),
                     5);
    diffsde_i_adaptive_free(a);

    /* Underflow: every attempt fails recoverably at (x', t'), h × 0.1 each time until
     * 1 − h == 1: h₀ = 0.00999 × 0.1^k < 2^-53 from k = 15 on. */
    fy.kind = FAULT_RETRY_ALL;
    o = adaptive_opt(0.05, 0.01);
    ok(diffsde_i_adaptive_new(f->ctx, f->vp, sc, &o, NF, 2, &a), f->ctx);
    ok(diffsde_i_adaptive_start(a, f->noise, 0), f->ctx);
    size_t k = step_until_failure(f, a, NF, x, DIFFSDE_ECONVERGENCE, "underflows", "t=1 ");
    assert_int_equal(k, 15);
    diffsde_i_adaptive_free(a);

    /* The path memory's limit: every attempt rejected with E = 1.01 (h × 0.892), each
     * rejection storing one more piece, up to 32; from the 33rd rejection on, each one merges
     * two pieces, and nothing fails until the step size underflows (0.00999 × 0.892^k <
     * 2^-53 from k ≈ 290 on). */
    diffsde_sde_user def = {probe_zero, probe_one, probe_one, probe_sigma, NULL, 1.0, 0};
    diffsde_sde *bm;
    ok(diffsde_sde_new_user(f->ctx, &def, &bm), f->ctx);
    diffsde_score *st_sc;
    ok(diffsde_score_new(f->ctx, stubborn_cb, NULL, DIFFSDE_PARAM_SCORE, &st_sc), f->ctx);
    o = adaptive_opt(1e-9, 0.01);
    ok(diffsde_i_adaptive_new(f->ctx, bm, st_sc, &o, 3, 2, &a), f->ctx);
    memset(x, 0, sizeof x);
    ok(diffsde_i_adaptive_start(a, f->noise, 0), f->ctx);
    k = step_until_failure(f, a, 3, x, DIFFSDE_ECONVERGENCE, "underflows", "sample 0");
    size_t maxp;
    uint64_t merges;
    diffsde_i_adaptive_path_info(a, &maxp, &merges);
    assert_true(k > 250);
    assert_int_equal(maxp, DIFFSDE_I_ADAPTIVE_MAX_PIECES);
    /* every rejection from the 33rd on merges, but those whose t' rounds onto a stored end
     * (near the underflow) draw nothing and store nothing */
    assert_true(merges <= 3 * (k - DIFFSDE_I_ADAPTIVE_MAX_PIECES) && merges > 3 * 200);
    diffsde_i_adaptive_path_info(NULL, &maxp, NULL);
    assert_int_equal(maxp, 0);
    print_message("# path memory limit: %zu rejections in a row, %llu merges over 3 samples, "
                  "then underflow\n",
                  k, (unsigned long long)merges);
    diffsde_i_adaptive_free(a);
    diffsde_score_free(st_sc);
    diffsde_sde_free(bm);

    /* Recoverable at (x', t'): rejected and retried; results still batch-independent. */
    fy.kind = FAULT_RETRY_TIMES;
    o = adaptive_opt(0.05, 0.01);
    run_rec b7, one, clean, one7;
    rec_init(&one7, 7, 2);
    rec_init(&b7, 7, 2);
    rec_init(&one, 1, 2);
    rec_init(&clean, 7, 2);
    ok(run_adaptive(f->ctx, f->vp, sc, &o, f->noise, 100, &b7), f->ctx);
    for (size_t i = 0; i < 7; i++) {
        ok(run_adaptive(f->ctx, f->vp, sc, &o, f->noise, 100 + i, &one), f->ctx);
        assert_memory_equal(one.x, b7.x + 2 * i, 2 * sizeof(double));
        assert_int_equal(one.rej[0], b7.rej[i]);
    }
    fy.kind = FAULT_NONE;
    ok(run_adaptive(f->ctx, f->vp, sc, &o, f->noise, 100, &clean), f->ctx);
    assert_true(b7.st.rejected > clean.st.rejected);
    assert_true(b7.st.score_calls > clean.st.score_calls);
    /* a transient recoverable failure (gone when the rows are evaluated alone) changes
     * nothing but the number of calls */
    for (long call = 1; call <= 4; call++) {
        fy.kind = FAULT_RETRY_CALL;
        fy.calls = 0;
        fy.call = call;
        ok(run_adaptive(f->ctx, f->vp, sc, &o, f->noise, 100, &one7), f->ctx);
        assert_memory_equal(one7.x, clean.x, 7 * 2 * sizeof(double));
        assert_int_equal(one7.st.accepted, clean.st.accepted);
        assert_int_equal(one7.st.rejected, clean.st.rejected);
        assert_true(one7.st.score_calls > clean.st.score_calls);
    }
    fy.kind = FAULT_NONE;
    print_message("# recoverable failures at (x', t'): %llu rejected (%llu without), %llu score "
                  "calls (%llu without)\n",
                  (unsigned long long)b7.st.rejected, (unsigned long long)clean.st.rejected,
                  (unsigned long long)b7.st.score_calls, (unsigned long long)clean.st.score_calls);
    rec_free(&b7);
    rec_free(&one);
    rec_free(&clean);
    rec_free(&one7);
    diffsde_score_free(sc);
    diffsde_score_free(exact);
}

/* A failed step call changes nothing: made again once the failure is gone (a fatal score
 * status at call 3, 8 or 20; a noise source failing once at predictor step 2 or 9), the run
 * ends bit for bit as the run without failure, with the same accepted and rejected counts:
 * the path memories and draw counters are only written by a successful call. */
static void test_redo(void **state)
{
    fixture *f = *state;
    enum { NR2 = 16 };
    diffsde_score *exact, *sc;
    ok(diffsde_gmm_score_new(f->ring8, f->vp, &exact), f->ctx);
    faulty fy = {exact, f->vp, FAULT_NONE, 0, 0};
    ok(diffsde_score_new(f->ctx, faulty_cb, &fy, DIFFSDE_PARAM_SCORE, &sc), f->ctx);
    diffsde_sampler_options o = adaptive_opt(0.05, 0.01);
    static noise_log nlog;
    diffsde_noise *cb;
    ok(diffsde_noise_new_callback(f->ctx, log_noise, &nlog, &cb), f->ctx);
    run_rec clean;
    rec_init(&clean, NR2, 2);
    ok(run_adaptive(f->ctx, f->vp, sc, &o, f->noise, 0, &clean), f->ctx);
    diffsde_i_adaptive *a;
    ok(diffsde_i_adaptive_new(f->ctx, f->vp, sc, &o, NR2, 2, &a), f->ctx);
    const long calls[3] = {3, 8, 20};
    const int steps[2] = {2, 9};
    for (int c = 0; c < 5; c++) {
        double x[NR2 * 2];
        ok(diffsde_sde_prior_sample(f->vp, f->noise, 0, NR2, 2, x), f->ctx);
        memset(&nlog, 0, sizeof nlog);
        nlog.fail_step = -1;
        const diffsde_noise *src = f->noise;
        if (c < 3) {
            fy.kind = FAULT_FATAL_CALL;
            fy.calls = 0;
            fy.call = calls[c];
        } else {
            src = cb;
            nlog.fail_step = steps[c - 3];
            nlog.fail_once = 1;
        }
        ok(diffsde_i_adaptive_start(a, src, 0), f->ctx);
        diffsde_sampler_stats st;
        memset(&st, 0, sizeof st);
        size_t fails = 0;
        while (!diffsde_i_adaptive_done(a)) {
            int rc = diffsde_i_adaptive_step(a, x, &st);
            if (rc != DIFFSDE_OK) {
                assert_int_equal(rc, DIFFSDE_ECALLBACK);
                fails++;
                fy.kind = FAULT_NONE;
            }
        }
        assert_int_equal(fails, 1);
        assert_memory_equal(x, clean.x, sizeof x);
        assert_int_equal(st.accepted, clean.st.accepted);
        assert_int_equal(st.rejected, clean.st.rejected);
    }
    diffsde_i_adaptive_free(a);
    rec_free(&clean);
    diffsde_noise_free(cb);
    diffsde_score_free(sc);
    diffsde_score_free(exact);
}

/* ---------------------------------------------------------------------------------------- */
/* Arguments, lifecycle, allocation.                                                          */

static void test_arguments(void **state)
{
    fixture *f = *state;
    diffsde_score *sc;
    ok(diffsde_gmm_score_new(f->ring8, f->ve, &sc), f->ctx);
    diffsde_sampler_options o = adaptive_opt(0.05, 0.01);
    diffsde_i_adaptive *a = (diffsde_i_adaptive *)&o;
    assert_int_equal(diffsde_i_adaptive_new(NULL, f->ve, sc, &o, 1, 2, &a), DIFFSDE_ENULL);
    assert_null(a);
    assert_int_equal(diffsde_i_adaptive_new(f->ctx, NULL, sc, &o, 1, 2, &a), DIFFSDE_ENULL);
    assert_msg_has(f->ctx, "diffsde_i_adaptive_new", "sde");
    assert_int_equal(diffsde_i_adaptive_new(f->ctx, f->ve, NULL, &o, 1, 2, &a), DIFFSDE_ENULL);
    assert_int_equal(diffsde_i_adaptive_new(f->ctx, f->ve, sc, NULL, 1, 2, &a), DIFFSDE_ENULL);
    assert_int_equal(diffsde_i_adaptive_new(f->ctx, f->ve, sc, &o, 1, 2, NULL), DIFFSDE_ENULL);
    assert_int_equal(diffsde_i_adaptive_new(f->ctx, f->ve, sc, &o, 0, 2, &a), DIFFSDE_ESIZE);
    assert_msg_has(f->ctx, "n (0)", NULL);
    assert_int_equal(diffsde_i_adaptive_new(f->ctx, f->ve, sc, &o, 1, 0, &a), DIFFSDE_ESIZE);
    assert_int_equal(diffsde_i_adaptive_new(f->ctx, f->ve, sc, &o, SIZE_MAX / 2, 3, &a),
                     DIFFSDE_ESIZE);
    assert_msg_has(f->ctx, "overflows", NULL);
    const struct {
        double rtol, atol, eps;
        size_t max_steps;
        const char *what;
    } bad[] = {
        {0, 0.01, NAN, 10, "opt->rtol (0)"},     {-1, 0.01, NAN, 10, "opt->rtol (-1)"},
        {NAN, 0.01, NAN, 10, "opt->rtol (nan)"}, {INFINITY, 0.01, NAN, 10, "opt->rtol (inf)"},
        {0.05, 0, NAN, 10, "opt->atol (0)"},     {0.05, NAN, NAN, 10, "opt->atol (nan)"},
        {0.05, 0.01, NAN, 0, "opt->max_steps (0)"}, {0.05, 0.01, 0, 10, "opt->eps (0)"},
        {0.05, 0.01, 1, 10, "opt->eps (1)"},     {0.05, 0.01, -0.5, 10, "opt->eps (-0.5)"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        diffsde_sampler_options ob = adaptive_opt(bad[k].rtol, bad[k].atol);
        ob.eps = bad[k].eps;
        ob.max_steps = bad[k].max_steps;
        assert_int_equal(diffsde_i_adaptive_new(f->ctx, f->ve, sc, &ob, 1, 2, &a),
                         DIFFSDE_EPARAM);
        assert_null(a);
        assert_msg_has(f->ctx, "diffsde_i_adaptive_new", bad[k].what);
    }

    /* lifecycle */
    o.eps = 0.25; /* a custom ε */
    ok(diffsde_i_adaptive_new(f->ctx, f->ve, sc, &o, 3, 2, &a), f->ctx);
    double x[6] = {2.385, -1.5, 0.731, 4.2, -3.3, 0.1}, t[3];
    diffsde_i_adaptive_times(a, t);
    assert_true(t[0] == 1 && t[1] == 1 && t[2] == 1);
    assert_false(diffsde_i_adaptive_done(a));
    assert_false(diffsde_i_adaptive_done(NULL));
    diffsde_i_adaptive_times(NULL, t);
    diffsde_i_adaptive_times(a, NULL);
    assert_int_equal(diffsde_i_adaptive_step(a, x, NULL), DIFFSDE_ESTATE);
    assert_msg_has(f->ctx, "no run", NULL);
    assert_int_equal(diffsde_i_adaptive_step(NULL, x, NULL), DIFFSDE_ENULL);
    assert_int_equal(diffsde_i_adaptive_start(NULL, f->noise, 0), DIFFSDE_ENULL);
    assert_int_equal(diffsde_i_adaptive_start(a, NULL, 0), DIFFSDE_ENULL);
    assert_int_equal(diffsde_i_adaptive_start(a, f->noise, DIFFSDE_NOISE_MAX_SAMPLES - 2),
                     DIFFSDE_ERANGE);
    assert_msg_has(f->ctx, "2^48", NULL);
    ok(diffsde_i_adaptive_start(a, f->noise, DIFFSDE_NOISE_MAX_SAMPLES - 3), f->ctx);
    assert_int_equal(diffsde_i_adaptive_step(a, NULL, NULL), DIFFSDE_ENULL);
    size_t steps = 0;
    while (!diffsde_i_adaptive_done(a)) {
        ok(diffsde_i_adaptive_step(a, x, NULL), f->ctx);
        steps++;
    }
    diffsde_i_adaptive_times(a, t);
    assert_true(t[0] == 0.25 && t[1] == 0.25 && t[2] == 0.25);
    assert_int_equal(diffsde_i_adaptive_step(a, x, NULL), DIFFSDE_ESTATE);
    assert_msg_has(f->ctx, "already reached eps", NULL);
    /* restart: the same run again */
    double y[6] = {2.385, -1.5, 0.731, 4.2, -3.3, 0.1};
    ok(diffsde_i_adaptive_start(a, f->noise, DIFFSDE_NOISE_MAX_SAMPLES - 3), f->ctx);
    diffsde_i_adaptive_times(a, t);
    assert_true(t[0] == 1);
    while (!diffsde_i_adaptive_done(a))
        ok(diffsde_i_adaptive_step(a, y, NULL), f->ctx);
    assert_memory_equal(x, y, sizeof x);
    assert_true(steps > 1);
    diffsde_i_adaptive_free(a);
    diffsde_i_adaptive_free(NULL);
    diffsde_score_free(sc);
}

static void test_allocation(void **state)
{
    fixture *f = *state;
    (void)f;
    int done = 0;
    for (long k = 1; !done; k++) {
        tu_alloc al = {0, 0, k};
        diffsde_allocator hooks = tu_allocator(&al);
        diffsde_ctx *ctx;
        diffsde_sde *sde;
        diffsde_gmm *gmm;
        diffsde_score *sc;
        diffsde_noise *noise;
        al.fail_at = 0; /* everything but the solver itself may allocate */
        ok(diffsde_ctx_new(&ctx, &hooks), ctx);
        ok(diffsde_sde_new_vp(ctx, 0.1, 20, &sde), ctx);
        ok(diffsde_gmm_new_builtin(ctx, "ring8", &gmm), ctx);
        ok(diffsde_gmm_score_new(gmm, sde, &sc), ctx);
        ok(diffsde_noise_new_philox(ctx, SEED, &noise), ctx);
        diffsde_sampler_options o = adaptive_opt(0.05, 0.01);
        al.fail_at = al.calls + k;
        diffsde_i_adaptive *a;
        int rc = diffsde_i_adaptive_new(ctx, sde, sc, &o, 9, 2, &a);
        if (rc == DIFFSDE_OK) {
            done = 1;
            double x[18];
            ok(diffsde_sde_prior_sample(sde, noise, 0, 9, 2, x), ctx);
            long calls = al.calls;
            ok(diffsde_i_adaptive_start(a, noise, 0), ctx);
            while (!diffsde_i_adaptive_done(a))
                ok(diffsde_i_adaptive_step(a, x, NULL), ctx);
            assert_int_equal(al.calls, calls); /* no allocation after _new */
            diffsde_i_adaptive_free(a);
        } else {
            assert_int_equal(rc, DIFFSDE_ENOMEM);
            assert_null(a);
            assert_msg_has(ctx, "diffsde_i_adaptive_new", "out of memory");
        }
        diffsde_noise_free(noise);
        diffsde_score_free(sc);
        diffsde_gmm_free(gmm);
        diffsde_sde_free(sde);
        diffsde_ctx_free(ctx);
        assert_int_equal(al.live, 0);
        assert_true(k < 10);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Through the public driver.                                                                 */

static void test_driver(void **state)
{
    fixture *f = *state;
    enum { ND = 7 };
    diffsde_score *sc;
    ok(diffsde_gmm_score_new(f->ring8, f->ve, &sc), f->ctx);
    diffsde_sampler_options o = adaptive_opt(0.05, 0.01);
    o.denoise = 0;
    run_rec r;
    rec_init(&r, ND, 2);
    ok(run_adaptive(f->ctx, f->ve, sc, &o, f->noise, 30, &r), f->ctx);
    diffsde_sampler *s;
    ok(diffsde_sampler_new(f->ctx, f->ve, sc, &o, &s), f->ctx);
    double x[ND * 2], t[ND];
    ok(diffsde_sampler_run(s, f->noise, 30, ND, 2, x), f->ctx);
    assert_memory_equal(x, r.x, sizeof x);
    diffsde_sampler_stats st;
    ok(diffsde_sampler_get_stats(s, &st), f->ctx);
    assert_int_equal(st.accepted, r.st.accepted);
    assert_int_equal(st.rejected, r.st.rejected);
    assert_int_equal(st.score_calls, r.st.score_calls);
    assert_int_equal(st.score_evals, r.st.score_evals);
    assert_int_equal(st.denoise_calls, 0);
    assert_close(st.nfe_per_sample, (double)r.st.score_evals / ND, 1e-15, 0);
    ok(diffsde_sampler_get_times(s, t), f->ctx);
    for (size_t i = 0; i < ND; i++)
        assert_true(t[i] == default_eps(f->ve));
    diffsde_sampler_free(s);

    /* with the final denoising step: one more call, x̂0 = x + σ(ε)² s(x, ε) (α = 1 for VE) */
    o.denoise = 1;
    ok(diffsde_sampler_new(f->ctx, f->ve, sc, &o, &s), f->ctx);
    ok(diffsde_sampler_run(s, f->noise, 30, ND, 2, x), f->ctx);
    ok(diffsde_sampler_get_stats(s, &st), f->ctx);
    assert_int_equal(st.denoise_calls, 1);
    assert_int_equal(st.score_calls, r.st.score_calls + 1);
    double eps = default_eps(f->ve), sig, sx[ND * 2], te[ND];
    ok(diffsde_sde_sigma(f->ve, eps, &sig), f->ctx);
    for (size_t i = 0; i < ND; i++)
        te[i] = eps;
    ok(diffsde_score_eval(sc, f->ve, ND, 2, te, r.x, sx), f->ctx);
    for (size_t k = 0; k < ND * 2; k++)
        assert_close(x[k], r.x[k] + sig * sig * sx[k], 1e-14, 1e-14);
    diffsde_sampler_free(s);
    rec_free(&r);
    diffsde_score_free(sc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference),
        cmocka_unit_test(test_batch_independence),
        cmocka_unit_test(test_gaussian),
        cmocka_unit_test(test_ring8),
        cmocka_unit_test(test_path),
        cmocka_unit_test(test_path_memory),
        cmocka_unit_test(test_failures),
        cmocka_unit_test(test_redo),
        cmocka_unit_test(test_arguments),
        cmocka_unit_test(test_allocation),
        cmocka_unit_test(test_driver),
    };
    return cmocka_run_group_tests_name("adaptive", tests, setup, teardown);
}
