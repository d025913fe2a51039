/*
 * The adaptive reverse-SDE solver: Euler–Maruyama paired with improved Euler on the same
 * Brownian increment, per-sample step control (Jolicoeur-Martineau et al. 2021), the
 * increments taken from per-sample Brownian path memories (adaptive_path.c; Rackauckas & Nie
 * 2017). The algorithm, the noise layout, the batching and the failure contract are
 * documented in adaptive.h.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "sampler/adaptive.h"

/* Per-sample flags. */
enum {
    F_DONE = 1u << 0,  /* t == ε */
    F_COEF = 1u << 1,  /* f, g2, g hold the SDE coefficients at t */
    F_SCORE = 1u << 2  /* s0 row holds s(x, t) */
};

/* Row marks of a batch after a failed batched call (see eval_batch()). */
enum { ROW_OK = 0, ROW_RETRY = 1 };

struct diffsde_i_adaptive {
    diffsde_ctx *ctx;
    const diffsde_sde *sde;
    const diffsde_score *score;
    const diffsde_noise *noise; /* borrowed for the run */
    size_t n, d;
    double T, eps, rtol, atol, h0;
    size_t max_steps;
    uint64_t sample0;
    int started;
    size_t ndone;

    void *block; /* the single allocation holding every array below */
    /* n × d */
    double *s0;    /* s(x, t), cached while x and t do not change */
    double *z;     /* the increment W of the attempt */
    double *xprev; /* x' of the last accepted step (valid when nacc > 0) */
    double *xb;    /* batch input rows (x for s(x, t); x' for s(x', t')) */
    double *sb;    /* batch output rows; then x'' in place */
    /* n, per sample */
    double *t, *h;      /* current time and next step size */
    double *f, *g2, *g; /* SDE coefficients at t */
    uint64_t *nacc, *nrej;
    unsigned char *flag;
    /* n, per active sample k of the current step (act[k] is the sample) */
    size_t *act;
    double *tn, *hk;       /* target time t' and the step t − t' */
    double *f1, *g21, *g1; /* SDE coefficients at t' */
    double *err;           /* E of the attempt (+inf: rejected without an estimate) */
    size_t *rowof;         /* the row of k in the second batch, or SIZE_MAX */
    /* n, per row of a batch */
    double *tb;  /* times of the rows */
    size_t *smp; /* sample of each row */
    unsigned char *mark;
    diffsde_i_apath path; /* the samples' Brownian path memories */
};

static const char FN_NEW[] = "diffsde_i_adaptive_new";
static const char FN_START[] = "diffsde_i_adaptive_start";
static const char FN_STEP[] = "diffsde_i_adaptive_step";

/* ---- messages ------------------------------------------------------------------------- */

/*
 * Restate the failure `rc` of a callee (score, noise, SDE) on the solver's context with a
 * prefix naming the sample: the callee's own message when it was recorded on this context
 * since `key` (the context's failure count before the call), its status description
 * otherwise (a callee made on another context keeps its message there).
 */
static int restate(const diffsde_i_adaptive *a, unsigned long key, int rc, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

static int restate(const diffsde_i_adaptive *a, unsigned long key, int rc, const char *fmt, ...)
{
    char prefix[DIFFSDE_ERRMSG_CAPACITY];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    if (a->ctx->nfail != key && diffsde_last_status(a->ctx) == rc)
        return diffsde_i_fail_prefix(a->ctx, rc, "%s", prefix);
    return diffsde_i_fail(a->ctx, rc, "%s: %s", prefix, diffsde_strerror(rc));
}

/* ---- creation ------------------------------------------------------------------------- */

/* *total += count * elem, rounded up to a multiple of 8 bytes; -1 on overflow. */
static int add_bytes(size_t *total, size_t count, size_t elem)
{
    size_t b;
    if (diffsde_i_mul_size(count, elem, &b) != 0 || b > SIZE_MAX - 7)
        return -1;
    b = (b + 7) & ~(size_t)7;
    if (*total > SIZE_MAX - b)
        return -1;
    *total += b;
    return 0;
}

/* Carve count * elem bytes (rounded up to 8) from *p. */
static void *carve(unsigned char **p, size_t count, size_t elem)
{
    void *r = *p;
    *p += (count * elem + 7) & ~(size_t)7;
    return r;
}

static int check_options(diffsde_ctx *ctx, const diffsde_sde *sde,
                         const diffsde_sampler_options *opt, double T, double *eps)
{
    if (!(opt->rtol > 0) || !isfinite(opt->rtol))
        return diffsde_i_fail(ctx, DIFFSDE_EPARAM, "%s: opt->rtol (%g) must be finite and > 0",
                              FN_NEW, opt->rtol);
    if (!(opt->atol > 0) || !isfinite(opt->atol))
        return diffsde_i_fail(ctx, DIFFSDE_EPARAM, "%s: opt->atol (%g) must be finite and > 0",
                              FN_NEW, opt->atol);
    if (opt->max_steps == 0)
        return diffsde_i_fail(ctx, DIFFSDE_EPARAM, "%s: opt->max_steps (0) must be >= 1",
                              FN_NEW);
    double e = opt->eps;
    if (isnan(e))
        diffsde_sde_default_eps(sde, &e);
    else if (!(e > 0 && e < T))
        return diffsde_i_fail(ctx, DIFFSDE_EPARAM, "%s: opt->eps (%g) must lie in (0, T = %g)",
                              FN_NEW, e, T);
    *eps = e;
    return DIFFSDE_OK;
}

int diffsde_i_adaptive_new(diffsde_ctx *ctx, const diffsde_sde *sde, const diffsde_score *score,
                           const diffsde_sampler_options *opt, size_t n, size_t d,
                           diffsde_i_adaptive **out)
{
    if (out)
        *out = NULL;
    if (!ctx)
        return DIFFSDE_ENULL;
    if (!sde || !score || !opt || !out)
        return diffsde_i_fail(ctx, DIFFSDE_ENULL, "%s: %s is NULL", FN_NEW,
                              !sde ? "sde" : !score ? "score" : !opt ? "opt" : "out");
    if (n == 0 || d == 0)
        return diffsde_i_fail(ctx, DIFFSDE_ESIZE, "%s: %s (0) must be >= 1", FN_NEW,
                              n == 0 ? "n" : "d");
    double T = 1, eps = 0;
    diffsde_sde_time_range(sde, NULL, &T);
    int rc = check_options(ctx, sde, opt, T, &eps);
    if (rc != DIFFSDE_OK)
        return rc;

    size_t nd, total = 0;
    int bad = diffsde_i_mul_size(n, d, &nd) != 0;
    for (int k = 0; k < 5 && !bad; k++)
        bad = add_bytes(&total, nd, sizeof(double));
    bad = bad || add_bytes(&total, n, 12 * sizeof(double)) ||
          add_bytes(&total, n, 2 * sizeof(uint64_t)) ||
          add_bytes(&total, n, 3 * sizeof(size_t)) || add_bytes(&total, n, 1) ||
          add_bytes(&total, n, 1) || diffsde_i_apath_bytes(n, d, &total);
    if (bad)
        return diffsde_i_fail(ctx, DIFFSDE_ESIZE,
                              "%s: the workspace for n = %zu samples of d = %zu overflows size_t",
                              FN_NEW, n, d);

    diffsde_i_adaptive *a = diffsde_i_alloc(ctx, sizeof *a);
    if (!a)
        return diffsde_i_fail(ctx, DIFFSDE_ENOMEM, "%s: out of memory", FN_NEW);
    memset(a, 0, sizeof *a);
    a->block = diffsde_i_alloc(ctx, total);
    if (!a->block) {
        diffsde_i_free(ctx, a);
        return diffsde_i_fail(ctx, DIFFSDE_ENOMEM,
                              "%s: out of memory (%zu bytes of workspace for n = %zu, d = %zu)",
                              FN_NEW, total, n, d);
    }
    unsigned char *p = a->block;
    double **dnd[] = {&a->s0, &a->z, &a->xprev, &a->xb, &a->sb};
    for (size_t k = 0; k < sizeof dnd / sizeof dnd[0]; k++)
        *dnd[k] = carve(&p, nd, sizeof(double));
    double **dn[] = {&a->t,  &a->h,   &a->f,  &a->g2,  &a->g, &a->tn,
                     &a->hk, &a->f1, &a->g21, &a->g1, &a->err, &a->tb};
    for (size_t k = 0; k < sizeof dn / sizeof dn[0]; k++)
        *dn[k] = carve(&p, n, sizeof(double));
    a->nacc = carve(&p, n, sizeof(uint64_t));
    a->nrej = carve(&p, n, sizeof(uint64_t));
    a->act = carve(&p, n, sizeof(size_t));
    a->rowof = carve(&p, n, sizeof(size_t));
    a->smp = carve(&p, n, sizeof(size_t));
    a->flag = carve(&p, n, 1);
    a->mark = carve(&p, n, 1);
    diffsde_i_apath_carve(&a->path, n, d, &p);

    a->ctx = ctx;
    a->sde = sde;
    a->score = score;
    a->n = n;
    a->d = d;
    a->T = T;
    a->eps = eps;
    a->rtol = opt->rtol;
    a->atol = opt->atol;
    a->max_steps = opt->max_steps;
    a->h0 = DIFFSDE_I_ADAPTIVE_H0 * (T - eps);
    for (size_t i = 0; i < n; i++)
        a->t[i] = T;
    *out = a;
    return DIFFSDE_OK;
}

void diffsde_i_adaptive_free(diffsde_i_adaptive *a)
{
    if (!a)
        return;
    diffsde_i_free(a->ctx, a->block);
    diffsde_i_free(a->ctx, a);
}

int diffsde_i_adaptive_start(diffsde_i_adaptive *a, const diffsde_noise *noise,
                             uint64_t sample0)
{
    if (!a)
        return DIFFSDE_ENULL;
    if (!noise)
        return diffsde_i_fail(a->ctx, DIFFSDE_ENULL, "%s: noise is NULL", FN_START);
    if (sample0 > DIFFSDE_NOISE_MAX_SAMPLES || a->n > DIFFSDE_NOISE_MAX_SAMPLES - sample0)
        return diffsde_i_fail(a->ctx, DIFFSDE_ERANGE,
                              "%s: samples sample0 = %llu .. + n = %zu exceed the noise layout's "
                              "2^48 sample indices",
                              FN_START, (unsigned long long)sample0, a->n);
    a->noise = noise;
    a->sample0 = sample0;
    for (size_t i = 0; i < a->n; i++) {
        a->t[i] = a->T;
        a->h[i] = a->h0;
        a->nacc[i] = a->nrej[i] = 0;
        a->flag[i] = 0;
    }
    diffsde_i_apath_reset(&a->path);
    a->ndone = 0;
    a->started = 1;
    return DIFFSDE_OK;
}

int diffsde_i_adaptive_done(const diffsde_i_adaptive *a)
{
    return a && a->started && a->ndone == a->n;
}

void diffsde_i_adaptive_times(const diffsde_i_adaptive *a, double *t)
{
    if (!a || !t)
        return;
    memcpy(t, a->t, a->n * sizeof *t);
}

void diffsde_i_adaptive_path_info(const diffsde_i_adaptive *a, size_t *max_pieces,
                                  uint64_t *merges)
{
    if (max_pieces)
        *max_pieces = a ? a->path.max_depth : 0;
    if (merges)
        *merges = a ? a->path.merges : 0;
}

/* ---- one step ------------------------------------------------------------------------- */

/* Global index of sample i, for messages. */
static unsigned long long gidx(const diffsde_i_adaptive *a, size_t i)
{
    return (unsigned long long)(a->sample0 + i);
}

/* The increment W used by the attempt of active sample k. */
static const double *increment(const diffsde_i_adaptive *a, size_t k)
{
    return a->z + a->act[k] * a->d;
}

/* The step-size factor θ E^(−r), clamped; E = +inf or NaN gives the minimum. */
static double step_factor(double e)
{
    if (!(e < INFINITY))
        return DIFFSDE_I_ADAPTIVE_FAC_MIN;
    if (e == 0)
        return DIFFSDE_I_ADAPTIVE_FAC_MAX;
    double fac = DIFFSDE_I_ADAPTIVE_SAFETY * pow(e, -DIFFSDE_I_ADAPTIVE_EXPONENT);
    if (fac < DIFFSDE_I_ADAPTIVE_FAC_MIN)
        return DIFFSDE_I_ADAPTIVE_FAC_MIN;
    if (fac > DIFFSDE_I_ADAPTIVE_FAC_MAX)
        return DIFFSDE_I_ADAPTIVE_FAC_MAX;
    return fac;
}

/* Evaluate the score on rows r0..r0+m-1 of (tb, xb) into sb, counting the call. */
static int eval_rows(diffsde_i_adaptive *a, size_t r0, size_t m, diffsde_sampler_stats *st)
{
    st->score_calls++;
    st->score_evals += m;
    return diffsde_score_eval(a->score, a->sde, m, a->d, a->tb + r0, a->xb + r0 * a->d,
                              a->sb + r0 * a->d);
}

/*
 * Evaluate the score of batch rows 0..m-1 (times tb, inputs xb, samples smp) into sb.
 * `where` names the stage for messages. When the batched call fails with a status that may
 * concern only some rows (DIFFSDE_ERETRY, DIFFSDE_ENONFINITE), every row is evaluated alone
 * to find them: with retry_ok, the rows with a recoverable failure are marked ROW_RETRY and
 * the others kept; any other failure of a row is returned, restated with its sample and t. A
 * recoverable failure that no row shows alone was transient: the rows' own results are used.
 */
static int eval_batch(diffsde_i_adaptive *a, size_t m, int retry_ok, const char *where,
                      diffsde_sampler_stats *st)
{
    memset(a->mark, ROW_OK, m);
    if (m == 0)
        return DIFFSDE_OK;
    unsigned long key = a->ctx->nfail;
    int rc = eval_rows(a, 0, m, st);
    if (rc == DIFFSDE_OK)
        return DIFFSDE_OK;
    if (m == 1) {
        if (rc == DIFFSDE_ERETRY && retry_ok) {
            a->mark[0] = ROW_RETRY;
            return DIFFSDE_OK;
        }
        return restate(a, key, rc, "%s: sample %llu: score at %s, t=%.17g", FN_STEP,
                       gidx(a, a->smp[0]), where, a->tb[0]);
    }
    if (rc != DIFFSDE_ERETRY && rc != DIFFSDE_ENONFINITE)
        return restate(a, key, rc, "%s: score at %s for a batch of %zu samples", FN_STEP, where,
                       m);
    int rc0 = rc, found = 0;
    for (size_t r = 0; r < m; r++) {
        key = a->ctx->nfail;
        rc = eval_rows(a, r, 1, st);
        if (rc == DIFFSDE_OK)
            continue;
        found = 1;
        if (rc == DIFFSDE_ERETRY && retry_ok) {
            a->mark[r] = ROW_RETRY;
            continue;
        }
        return restate(a, key, rc, "%s: sample %llu: score at %s, t=%.17g", FN_STEP,
                       gidx(a, a->smp[r]), where, a->tb[r]);
    }
    if (found || rc0 == DIFFSDE_ERETRY)
        return DIFFSDE_OK; /* a recoverable failure gone on retrying: every row is evaluated */
    /* NaN/Inf in the batch but in no row alone: the callback is not a function of its row. */
    return diffsde_i_fail(a->ctx, rc0,
                          "%s: score at %s failed for a batch of %zu samples (%s) but for no "
                          "sample alone: the callback's rows depend on the batch",
                          FN_STEP, where, m, diffsde_strerror(rc0));
}

/* SDE coefficients at t into (f, g2, g), restating a failure with the sample. */
static int coefs(const diffsde_i_adaptive *a, size_t i, double t, double *f, double *g2,
                 double *g)
{
    unsigned long key = a->ctx->nfail;
    diffsde_sde_coefs c;
    int rc = diffsde_sde_coefs_at(a->sde, t, &c);
    if (rc != DIFFSDE_OK)
        return restate(a, key, rc, "%s: sample %llu: SDE coefficients at t=%.17g", FN_STEP,
                       gidx(a, i), t);
    *f = c.f;
    *g2 = c.g2;
    *g = c.g;
    return DIFFSDE_OK;
}

/* The checks made before an attempt (nothing is computed when one fails); builds the active
 * list with t', the step and the plan of the increment. */
static int plan(diffsde_i_adaptive *a, size_t *m_out)
{
    size_t m = 0;
    for (size_t i = 0; i < a->n; i++) {
        if (a->flag[i] & F_DONE)
            continue;
        double t = a->t[i], h = a->h[i], room = t - a->eps;
        unsigned long long na = a->nacc[i], nr = a->nrej[i];
        if (a->nacc[i] + a->nrej[i] >= a->max_steps)
            return diffsde_i_fail(a->ctx, DIFFSDE_ECONVERGENCE,
                                  "%s: sample %llu: max_steps (%zu) attempts made without "
                                  "reaching eps=%.17g: t=%.17g, h=%.3g (%llu accepted, %llu "
                                  "rejected)",
                                  FN_STEP, gidx(a, i), a->max_steps, a->eps, t, h, na, nr);
        double tn = t - h;
        if (h >= room || tn <= a->eps)
            tn = a->eps; /* land on ε exactly */
        if (!(tn < t) || !(h > 0))
            return diffsde_i_fail(a->ctx, DIFFSDE_ECONVERGENCE,
                                  "%s: sample %llu: step size h=%.3g underflows at t=%.17g "
                                  "(t - h == t) after %llu accepted and %llu rejected steps",
                                  FN_STEP, gidx(a, i), h, t, na, nr);
        a->act[m] = i;
        a->tn[m] = tn;
        a->hk[m] = t - tn;
        diffsde_i_apath_plan(&a->path, m, i, t, tn);
        m++;
    }
    *m_out = m;
    return DIFFSDE_OK;
}

/* The increments of the attempts (rows of z), from the path memories and their draws. */
static int increments(diffsde_i_adaptive *a, size_t m)
{
    unsigned long key = a->ctx->nfail;
    diffsde_i_apath_failure fl;
    int rc = diffsde_i_apath_draw(&a->path, a->act, m, a->noise, a->sample0, &fl);
    if (rc != DIFFSDE_OK)
        return restate(a, key, rc, "%s: noise of samples %llu..%llu, stream %u, step %llu",
                       FN_STEP, gidx(a, fl.i), gidx(a, fl.i + fl.len - 1), (unsigned)fl.stream,
                       (unsigned long long)fl.step);
    diffsde_i_apath_make(&a->path, a->act, m, a->z);
    return DIFFSDE_OK;
}

/* s(x, t) and the coefficients at t for the active samples without them. */
static int first_stage(diffsde_i_adaptive *a, size_t m, const double *x,
                       diffsde_sampler_stats *st)
{
    size_t d = a->d, mb = 0;
    for (size_t k = 0; k < m; k++) {
        size_t i = a->act[k];
        if (!(a->flag[i] & F_COEF)) {
            int rc = coefs(a, i, a->t[i], &a->f[i], &a->g2[i], &a->g[i]);
            if (rc != DIFFSDE_OK)
                return rc;
            a->flag[i] |= F_COEF;
        }
        if (a->flag[i] & F_SCORE)
            continue;
        a->smp[mb] = i;
        a->tb[mb] = a->t[i];
        memcpy(a->xb + mb * d, x + i * d, d * sizeof *x);
        mb++;
    }
    int rc = eval_batch(a, mb, 0, "(x, t)", st);
    if (rc != DIFFSDE_OK)
        return rc;
    for (size_t r = 0; r < mb; r++) {
        size_t i = a->smp[r];
        memcpy(a->s0 + i * d, a->sb + r * d, d * sizeof *a->sb);
        a->flag[i] |= F_SCORE;
    }
    return DIFFSDE_OK;
}

/* The Euler–Maruyama proposals x' (rows of xb, finite ones only) and s(x', t'). */
static int second_stage(diffsde_i_adaptive *a, size_t m, const double *x,
                        diffsde_sampler_stats *st)
{
    size_t d = a->d, mb = 0;
    for (size_t k = 0; k < m; k++) {
        size_t i = a->act[k];
        int rc = coefs(a, i, a->tn[k], &a->f1[k], &a->g21[k], &a->g1[k]);
        if (rc != DIFFSDE_OK)
            return rc;
        const double h = a->hk[k], f = a->f[i], g2 = a->g2[i], g = a->g[i];
        const double *xi = x + i * d, *si = a->s0 + i * d, *wi = increment(a, k);
        double *xp = a->xb + mb * d;
        int finite = 1;
        for (size_t j = 0; j < d; j++) {
            xp[j] = xi[j] + h * (g2 * si[j] - f * xi[j]) + g * wi[j];
            finite &= isfinite(xp[j]) != 0;
        }
        if (!finite) {
            a->rowof[k] = SIZE_MAX; /* rejected without calling the score */
            continue;
        }
        a->rowof[k] = mb;
        a->smp[mb] = i;
        a->tb[mb] = a->tn[k];
        mb++;
    }
    return eval_batch(a, mb, 1, "(x', t - h)", st);
}

/* x'' (in place over the rows of sb) and the error estimate E of each active sample. */
static void estimate(diffsde_i_adaptive *a, size_t m, const double *x)
{
    size_t d = a->d;
    for (size_t k = 0; k < m; k++) {
        size_t r = a->rowof[k];
        if (r == SIZE_MAX || a->mark[r] == ROW_RETRY) {
            a->err[k] = INFINITY;
            continue;
        }
        size_t i = a->act[k];
        const double h = a->hk[k], f0 = a->f[i], g20 = a->g2[i], f1 = a->f1[k], g21 = a->g21[k];
        const double half_h = 0.5 * h, gm = 0.5 * (a->g[i] + a->g1[k]);
        const double *xi = x + i * d, *s0 = a->s0 + i * d, *wi = increment(a, k);
        const double *xo = a->nacc[i] > 0 ? a->xprev + i * d : xi;
        const double *xp = a->xb + r * d;
        double *s1 = a->sb + r * d; /* becomes x'' */
        double sum = 0;
        for (size_t j = 0; j < d; j++) {
            double b0 = g20 * s0[j] - f0 * xi[j];
            double b1 = g21 * s1[j] - f1 * xp[j];
            double xpp = xi[j] + half_h * (b0 + b1) + gm * wi[j];
            double ax = fabs(xp[j]), ao = fabs(xo[j]);
            double delta = a->rtol * (ax > ao ? ax : ao);
            if (!(delta > a->atol))
                delta = a->atol;
            double e = (xpp - xp[j]) / delta;
            sum += e * e;
            s1[j] = xpp;
        }
        double e = sqrt(sum / (double)d);
        a->err[k] = isnan(e) ? INFINITY : e;
    }
}

/* Accept or reject every attempt: the only place where x, t, h, the counters and the path
 * memory change. */
static void commit(diffsde_i_adaptive *a, size_t m, double *x, diffsde_sampler_stats *st)
{
    size_t d = a->d;
    for (size_t k = 0; k < m; k++) {
        size_t i = a->act[k];
        /* the controller continues from its own h (t − ε for the last step), not from the
         * rounded t − t', so that a shrinking h reaches the underflow check */
        double hc = a->tn[k] == a->eps ? a->hk[k] : a->h[i];
        double e = a->err[k], fac = step_factor(e), hnew = hc * fac;
        diffsde_i_apath_commit(&a->path, k, i, e <= 1);
        if (e <= 1) {
            size_t r = a->rowof[k];
            memcpy(x + i * d, a->sb + r * d, d * sizeof *x);
            memcpy(a->xprev + i * d, a->xb + r * d, d * sizeof *x);
            a->t[i] = a->tn[k];
            a->f[i] = a->f1[k];
            a->g2[i] = a->g21[k];
            a->g[i] = a->g1[k];
            a->flag[i] = F_COEF; /* score of the new state not yet known */
            a->nacc[i]++;
            st->accepted++;
            if (a->nacc[i] > st->steps)
                st->steps = (size_t)a->nacc[i];
            if (a->t[i] == a->eps) {
                a->flag[i] |= F_DONE;
                a->ndone++;
            }
        } else {
            a->nrej[i]++;
            st->rejected++;
        }
        double room = a->t[i] - a->eps;
        a->h[i] = hnew < room ? hnew : room;
    }
}

int diffsde_i_adaptive_step(diffsde_i_adaptive *a, double *x, diffsde_sampler_stats *st)
{
    if (!a)
        return DIFFSDE_ENULL;
    if (!x)
        return diffsde_i_fail(a->ctx, DIFFSDE_ENULL, "%s: x is NULL", FN_STEP);
    if (!a->started)
        return diffsde_i_fail(a->ctx, DIFFSDE_ESTATE, "%s: no run started", FN_STEP);
    if (a->ndone == a->n)
        return diffsde_i_fail(a->ctx, DIFFSDE_ESTATE,
                              "%s: every sample has already reached eps=%.17g", FN_STEP, a->eps);
    diffsde_sampler_stats none;
    if (!st) {
        memset(&none, 0, sizeof none);
        st = &none;
    }
    size_t m = 0;
    int rc = plan(a, &m);
    if (rc == DIFFSDE_OK)
        rc = increments(a, m);
    if (rc == DIFFSDE_OK)
        rc = first_stage(a, m, x, st);
    if (rc == DIFFSDE_OK)
        rc = second_stage(a, m, x, st);
    if (rc != DIFFSDE_OK)
        return rc;
    estimate(a, m, x);
    commit(a, m, x, st);
    return DIFFSDE_OK;
}
