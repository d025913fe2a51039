/*
 * The sampler driver: lifecycle (new / init / step / done / finish / run), the two time grids,
 * the predictor–corrector loop with rollback, the final denoising step, the observer and the
 * statistics. The adaptive method is dispatched to sampler/adaptive.c.
 *
 * Time grids (sampler.h): by default t_i = T − i·(T − ε)/N for i < N and t_N = ε exactly, the
 * predictor moving from t_i to t_{i+1} with dt = t_i − t_{i+1}; in reference mode
 * t_i = linspace(T, ε, N)[i] with EM's dt = T/N, and the times reported after level i are
 * t_{i+1} (ε after the last level, where score_sde considers the run to end).
 *
 * Memory: diffsde_sampler_new() allocates the object and the discrete table, init() the
 * workspace (one block, kept while later runs fit in it); step() and finish() never allocate.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "sampler/sampler_impl.h"

static double now_seconds(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
        return 0.0;
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ------------------------------------------------------------------------------------------ */
/* Creation                                                                                     */

/* Refuse a VP/sub-VP DDPM table with an entry ≥ 1 (score_sde would produce NaN there). */
static int check_ddpm_table(diffsde_ctx *ctx, const diffsde_sde *sde, size_t N, const char *who,
                            const char *fn)
{
    double bmax = 0.0;
    if (diffsde_sde_get_param(sde, "beta_max", &bmax) != DIFFSDE_OK)
        return diffsde_i_fail(ctx, DIFFSDE_EPARAM, "%s: cannot read the SDE's beta_max", fn);
    double top = bmax / (double)N;
    if (top < 1.0)
        return DIFFSDE_OK;
    /* the smallest N' with beta_max/N' < 1 in double (bounded: no loop on huge beta_max) */
    double nmin = floor(bmax) + 1.0;
    if (!(bmax / nmin < 1.0))
        nmin += 1.0;
    return diffsde_i_fail(ctx, DIFFSDE_EPARAM,
                          "%s: the %s needs the DDPM table b_i = linspace(beta_min/N, "
                          "beta_max/N, N) of this %s SDE, whose largest entry beta_max/N = "
                          "%g/%zu = %g >= 1: use at least N = %.0f steps",
                          fn, who, diffsde_sde_name(sde), bmax, N, top, nmin);
}

int diffsde_sampler_new(diffsde_ctx *ctx, const diffsde_sde *sde, const diffsde_score *score,
                        const diffsde_sampler_options *opt, diffsde_sampler **out)
{
    static const char fn[] = "diffsde_sampler_new";
    if (out)
        *out = NULL;
    if (!ctx)
        return DIFFSDE_ENULL;
    if (!sde || !score || !out)
        return diffsde_i_fail(ctx, DIFFSDE_ENULL, "%s: %s is NULL", fn,
                              !sde ? "sde" : !score ? "score" : "out");
    diffsde_sampler_options def, o;
    if (!opt) {
        diffsde_sampler_options_default(&def);
        opt = &def;
    }
    int st = diffsde_i_sampler_options_resolve(ctx, sde, opt, &o, fn);
    if (st != DIFFSDE_OK)
        return st;

    const diffsde_i_predictor_type *pred = NULL;
    const diffsde_i_corrector_type *corr = NULL;
    const diffsde_sde_kind kind = diffsde_sde_get_kind(sde);
    int need_table = 0;
    if (o.method == DIFFSDE_SAMPLER_PC) {
        pred = diffsde_i_predictor_lookup(o.predictor);
        corr = diffsde_i_corrector_lookup(o.corrector);
        if (!pred || !corr)
            return diffsde_i_fail(ctx, DIFFSDE_EPARAM, "%s: no stepper for predictor %d or "
                                  "corrector %d", fn, (int)o.predictor, (int)o.corrector);
        const int vevp = kind == DIFFSDE_SDE_VE || kind == DIFFSDE_SDE_VP;
        if (!vevp && (pred->flags & DIFFSDE_I_VE_VP_ONLY))
            return diffsde_i_fail(ctx, DIFFSDE_EUNSUPPORTED,
                                  "%s: the %s predictor supports VE and VP SDEs only, not %s", fn,
                                  pred->name, diffsde_sde_name(sde));
        if (!vevp && (corr->flags & DIFFSDE_I_VE_VP_ONLY))
            return diffsde_i_fail(ctx, DIFFSDE_EUNSUPPORTED,
                                  "%s: the %s corrector supports VE and VP SDEs only, not %s", fn,
                                  corr->name, diffsde_sde_name(sde));
        if (((pred->flags | corr->flags) & DIFFSDE_I_NEEDS_LOGP) &&
            !diffsde_score_has_logp(score))
            return diffsde_i_fail(ctx, DIFFSDE_EUNSUPPORTED,
                                  "%s: the %s corrector needs the model's log-density, which "
                                  "this model does not give (diffsde_score_set_logp())",
                                  fn, corr->name);
        /* Predictors discretise sub-VP generically (no table); correctors use the DDPM β
         * table on VP and sub-VP alike (α_j = 1 − b_j). User SDEs have no table. */
        const int pred_table = (pred->flags & DIFFSDE_I_NEEDS_TABLE) && vevp;
        const int corr_table = (corr->flags & DIFFSDE_I_NEEDS_TABLE) && kind != DIFFSDE_SDE_USER;
        need_table = pred_table || corr_table;
        if (need_table && kind != DIFFSDE_SDE_VE) {
            char who[64];
            snprintf(who, sizeof who, "%s %s", pred_table ? pred->name : corr->name,
                     pred_table ? "predictor" : "corrector");
            st = check_ddpm_table(ctx, sde, o.steps, who, fn);
            if (st != DIFFSDE_OK)
                return st;
        }
    }

    diffsde_sampler *s = diffsde_i_calloc(ctx, 1, sizeof *s);
    if (!s)
        return diffsde_i_fail(ctx, DIFFSDE_ENOMEM, "%s: cannot allocate the sampler", fn);
    s->ctx = ctx;
    s->sde = sde;
    s->score = score;
    s->opt = o;
    s->pred = pred;
    s->corr = corr;
    diffsde_sde_time_range(sde, NULL, &s->T);
    s->state = DIFFSDE_I_SAMPLER_IDLE;
    if (need_table) {
        s->table = diffsde_i_calloc(ctx, o.steps, sizeof *s->table);
        if (!s->table) {
            diffsde_i_free(ctx, s);
            return diffsde_i_fail(ctx, DIFFSDE_ENOMEM,
                                  "%s: cannot allocate the discrete table (%zu levels)", fn,
                                  o.steps);
        }
        unsigned long before = ctx->nfail;
        st = diffsde_sde_discrete_table(sde, o.steps, s->table);
        if (st != DIFFSDE_OK) {
            diffsde_i_free(ctx, s->table);
            diffsde_i_free(ctx, s);
            if (ctx->nfail != before)
                return diffsde_i_fail_prefix(ctx, st, "%s", fn);
            return diffsde_i_fail(ctx, st, "%s: the SDE's discrete table failed (%s)", fn,
                                  diffsde_strerror(st));
        }
    }
    *out = s;
    return DIFFSDE_OK;
}

void diffsde_sampler_free(diffsde_sampler *s)
{
    if (!s)
        return;
    diffsde_i_adaptive_free(s->adaptive);
    diffsde_i_free(s->ctx, s->block);
    diffsde_i_free(s->ctx, s->table);
    diffsde_i_free(s->ctx, s);
}

int diffsde_sampler_set_observer(diffsde_sampler *s, diffsde_observer_fn fn, void *user,
                                 size_t every)
{
    if (!s)
        return DIFFSDE_ENULL;
    if (fn && every == 0)
        return diffsde_i_fail(s->ctx, DIFFSDE_EPARAM,
                              "diffsde_sampler_set_observer: every (0) must be >= 1");
    s->observer = fn;
    s->observer_user = fn ? user : NULL;
    s->observer_every = fn ? every : 0;
    return DIFFSDE_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Runs                                                                                         */

/* Size the workspace for n × d: reuse the block when it is large enough, else replace it. */
static int ensure_workspace(diffsde_sampler *s, size_t n, size_t nd, const char *fn)
{
    if (s->block && nd <= s->cap_nd && n <= s->cap_n)
        return DIFFSDE_OK;
    diffsde_i_free(s->ctx, s->block);
    s->block = NULL;
    s->cap_nd = s->cap_n = 0;
    size_t a, b, total;
    if (diffsde_i_mul_size(nd, 6, &a) || diffsde_i_mul_size(n, 3, &b) || a > SIZE_MAX - b ||
        diffsde_i_mul_size(a + b, sizeof(double), &total))
        return diffsde_i_fail(s->ctx, DIFFSDE_ESIZE, "%s: the workspace of n = %zu samples "
                              "overflows size_t", fn, n);
    s->block = diffsde_i_alloc(s->ctx, total);
    if (!s->block)
        return diffsde_i_fail(s->ctx, DIFFSDE_ENOMEM,
                              "%s: cannot allocate the workspace (%zu bytes)", fn, total);
    s->cap_nd = nd;
    s->cap_n = n;
    return DIFFSDE_OK;
}

/* (Re)create the adaptive solver when the run's shape changes. */
static int ensure_adaptive(diffsde_sampler *s, size_t n, size_t d, const char *fn)
{
    if (s->adaptive && s->ad_n == n && s->ad_d == d)
        return DIFFSDE_OK;
    diffsde_i_adaptive_free(s->adaptive);
    s->adaptive = NULL;
    unsigned long before = s->ctx->nfail;
    int st = diffsde_i_adaptive_new(s->ctx, s->sde, s->score, &s->opt, n, d, &s->adaptive);
    if (st != DIFFSDE_OK) {
        s->adaptive = NULL;
        if (s->ctx->nfail != before)
            return diffsde_i_fail_prefix(s->ctx, st, "%s", fn);
        return diffsde_i_fail(s->ctx, st, "%s: cannot create the adaptive solver (%s)", fn,
                              diffsde_strerror(st));
    }
    s->ad_n = n;
    s->ad_d = d;
    return DIFFSDE_OK;
}

int diffsde_sampler_init(diffsde_sampler *s, const diffsde_noise *noise, uint64_t sample0,
                         size_t n, size_t d, double *x)
{
    static const char fn[] = "diffsde_sampler_init";
    if (!s)
        return DIFFSDE_ENULL;
    double t0 = now_seconds();
    s->state = DIFFSDE_I_SAMPLER_IDLE;
    if (!noise || !x)
        return diffsde_i_fail(s->ctx, DIFFSDE_ENULL, "%s: %s is NULL", fn, !noise ? "noise" : "x");
    size_t nd;
    if (n == 0 || d == 0 || diffsde_i_mul_size(n, d, &nd))
        return diffsde_i_fail(s->ctx, DIFFSDE_ESIZE,
                              "%s: n (%zu) and d (%zu) must be >= 1 and n*d must not overflow",
                              fn, n, d);
    int st = ensure_workspace(s, n, nd, fn);
    if (st == DIFFSDE_OK && s->opt.method == DIFFSDE_SAMPLER_ADAPTIVE_SDE)
        st = ensure_adaptive(s, n, d, fn);
    if (st != DIFFSDE_OK)
        return st;

    unsigned long before = s->ctx->nfail;
    st = diffsde_sde_prior_sample(s->sde, noise, sample0, n, d, x);
    if (st != DIFFSDE_OK) {
        if (s->ctx->nfail != before)
            return diffsde_i_fail_prefix(s->ctx, st, "%s: prior draw", fn);
        return diffsde_i_fail(s->ctx, st, "%s: the prior draw failed (%s; the details are on "
                              "the noise source's context)", fn, diffsde_strerror(st));
    }
    if (s->opt.method == DIFFSDE_SAMPLER_ADAPTIVE_SDE) {
        before = s->ctx->nfail;
        st = diffsde_i_adaptive_start(s->adaptive, noise, sample0);
        if (st != DIFFSDE_OK) {
            if (s->ctx->nfail != before)
                return diffsde_i_fail_prefix(s->ctx, st, "%s", fn);
            return diffsde_i_fail(s->ctx, st, "%s: the adaptive solver failed to start (%s)",
                                  fn, diffsde_strerror(st));
        }
    }

    s->backup = s->block;
    s->xmean = s->backup + nd;
    s->s = s->xmean + nd;
    s->z = s->s + nd;
    s->w = s->z + nd;
    s->w2 = s->w + nd;
    s->tvec = s->w2 + nd;
    s->wn = s->tvec + n;
    s->wn2 = s->wn + n;

    s->noise = noise;
    s->sample0 = sample0;
    s->n = n;
    s->d = d;
    s->nstep = 0;
    s->level = 0;
    s->t = s->T;
    memset(&s->stats, 0, sizeof s->stats);

    diffsde_i_level *lv = &s->lv;
    memset(lv, 0, sizeof *lv);
    lv->ctx = s->ctx;
    lv->sde = s->sde;
    lv->score = s->score;
    lv->noise = noise;
    lv->opt = &s->opt;
    lv->n = n;
    lv->d = d;
    lv->sample0 = sample0;
    lv->N = s->opt.steps;
    lv->table = s->table;
    lv->tvec = s->tvec;
    lv->s = s->s;
    lv->z = s->z;
    lv->w = s->w;
    lv->w2 = s->w2;
    lv->wn = s->wn;
    lv->wn2 = s->wn2;
    lv->stats = &s->stats;

    s->state = DIFFSDE_I_SAMPLER_RUNNING;
    s->stats.wall_seconds = now_seconds() - t0;
    return DIFFSDE_OK;
}

/* The time of grid index i in 0..N (see the file comment). */
static double grid_time(const diffsde_sampler *s, size_t i)
{
    const size_t N = s->opt.steps;
    const double T = s->T, eps = s->opt.eps;
    if (i >= N)
        return eps;
    if (s->opt.reference) {
        if (i == N - 1)
            return eps;
        return (double)i * ((eps - T) / (double)(N - 1)) + T; /* NumPy's linspace */
    }
    return T - (double)i * ((T - eps) / (double)N);
}

/* One PC level: K corrector steps then the predictor, with x restored on any failure. */
static int pc_step(diffsde_sampler *s, double *x)
{
    static const char fn[] = "diffsde_sampler_step";
    const size_t i = s->level, N = s->opt.steps, K = s->opt.corrector_steps;
    const size_t n = s->n, d = s->d, nd = n * d;
    const double ti = grid_time(s, i), tnext = grid_time(s, i + 1);
    diffsde_i_level *lv = &s->lv;
    lv->level = i;
    lv->t = ti;
    lv->dt = s->opt.reference ? s->T / (double)N : ti - tnext;
    unsigned long before = s->ctx->nfail;
    int st = diffsde_sde_coefs_at(s->sde, ti, &lv->c);
    if (st != DIFFSDE_OK) {
        if (s->ctx->nfail != before)
            return diffsde_i_fail_prefix(s->ctx, st, "%s: level %zu, t=%.17g", fn, i, ti);
        return diffsde_i_fail(s->ctx, st, "%s: level %zu: the SDE's coefficients at t=%.17g "
                              "failed (%s)", fn, i, ti, diffsde_strerror(st));
    }
    for (size_t k = 0; k < n; k++)
        s->tvec[k] = ti;

    memcpy(s->backup, x, nd * sizeof *x);
    const uint64_t acc = s->stats.accepted, rej = s->stats.rejected;
    for (size_t k = 0; k < K && st == DIFFSDE_OK; k++)
        st = s->corr->step(lv, k, x);
    if (st == DIFFSDE_OK)
        st = s->pred->step(lv, x, s->xmean);
    if (st == DIFFSDE_OK) {
        for (size_t k = 0; k < nd; k++) {
            if (!isfinite(x[k])) {
                st = diffsde_i_fail(s->ctx, DIFFSDE_ENONFINITE,
                                    "%s: level %zu (step %zu of %zu), t=%.17g: the new state "
                                    "has %g at sample %zu (global sample %" PRIu64
                                    "), coordinate %zu",
                                    fn, i, i + 1, N, ti, x[k], k / d, s->sample0 + k / d, k % d);
                break;
            }
        }
    }
    if (st != DIFFSDE_OK) {
        memcpy(x, s->backup, nd * sizeof *x);
        s->stats.accepted = acc;
        s->stats.rejected = rej;
        return st;
    }
    s->level = i + 1;
    s->t = tnext;
    s->stats.steps = s->level;
    return DIFFSDE_OK;
}

int diffsde_sampler_done(const diffsde_sampler *s)
{
    if (!s || s->state == DIFFSDE_I_SAMPLER_IDLE)
        return 0;
    if (s->state == DIFFSDE_I_SAMPLER_FINISHED)
        return 1;
    if (s->opt.method == DIFFSDE_SAMPLER_ADAPTIVE_SDE)
        return diffsde_i_adaptive_done(s->adaptive) != 0;
    return s->level >= s->opt.steps;
}

/* The run's current per-sample times into t (n values). */
static void current_times(const diffsde_sampler *s, double *t)
{
    if (s->opt.method == DIFFSDE_SAMPLER_ADAPTIVE_SDE) {
        diffsde_i_adaptive_times(s->adaptive, t);
        return;
    }
    for (size_t k = 0; k < s->n; k++)
        t[k] = s->t;
}

/* Reject a call outside the running state. */
static int check_running(const diffsde_sampler *s, const char *fn)
{
    if (s->state == DIFFSDE_I_SAMPLER_IDLE)
        return diffsde_i_fail(s->ctx, DIFFSDE_ESTATE,
                              "%s: no run: call diffsde_sampler_init() first", fn);
    if (s->state == DIFFSDE_I_SAMPLER_FINISHED)
        return diffsde_i_fail(s->ctx, DIFFSDE_ESTATE,
                              "%s: the run is finished: call diffsde_sampler_init() for a new "
                              "one", fn);
    return DIFFSDE_OK;
}

int diffsde_sampler_step(diffsde_sampler *s, double *x)
{
    static const char fn[] = "diffsde_sampler_step";
    if (!s)
        return DIFFSDE_ENULL;
    if (!x)
        return diffsde_i_fail(s->ctx, DIFFSDE_ENULL, "%s: x is NULL", fn);
    int st = check_running(s, fn);
    if (st != DIFFSDE_OK)
        return st;
    if (diffsde_sampler_done(s))
        return diffsde_i_fail(s->ctx, DIFFSDE_ESTATE,
                              "%s: every sample has reached eps: call "
                              "diffsde_sampler_finish()", fn);
    double t0 = now_seconds();
    if (s->opt.method == DIFFSDE_SAMPLER_ADAPTIVE_SDE) {
        unsigned long before = s->ctx->nfail;
        st = diffsde_i_adaptive_step(s->adaptive, x, &s->stats);
        if (st != DIFFSDE_OK && s->ctx->nfail == before)
            st = diffsde_i_fail(s->ctx, st, "%s: adaptive step failed (%s)", fn,
                                diffsde_strerror(st));
    } else {
        st = pc_step(s, x);
    }
    if (st == DIFFSDE_OK) {
        s->nstep++;
        if (s->observer &&
            (s->nstep % s->observer_every == 0 || diffsde_sampler_done(s))) {
            current_times(s, s->tvec);
            int r = s->observer(s->nstep, s->n, s->d, s->tvec, x, s->observer_user);
            if (r != 0)
                st = diffsde_i_fail(s->ctx, DIFFSDE_ECALLBACK,
                                    "%s: the observer returned %d after step %zu (t=%.17g): "
                                    "run stopped",
                                    fn, r, s->nstep, s->tvec[0]);
        }
    }
    s->stats.wall_seconds += now_seconds() - t0;
    return st;
}

/* The final Tweedie step x ← (x + σ(ε)² s(x, ε))/α(ε), x untouched on failure. */
static int denoise(diffsde_sampler *s, double *x, const char *fn)
{
    const size_t n = s->n, d = s->d, nd = n * d;
    const double eps = s->opt.eps;
    diffsde_sde_coefs c;
    unsigned long before = s->ctx->nfail;
    int st = diffsde_sde_coefs_at(s->sde, eps, &c);
    if (st == DIFFSDE_OK) {
        for (size_t k = 0; k < n; k++)
            s->tvec[k] = eps;
        st = diffsde_score_eval(s->score, s->sde, n, d, s->tvec, x, s->s);
        s->stats.score_calls++;
        s->stats.score_evals += n;
        s->stats.denoise_calls++;
    }
    if (st != DIFFSDE_OK) {
        if (s->ctx->nfail != before)
            return diffsde_i_fail_prefix(s->ctx, st, "%s: denoising step at t=%.17g", fn, eps);
        return diffsde_i_fail(s->ctx, st, "%s: denoising step at t=%.17g: %s (the details are "
                              "on the model's context)", fn, eps, diffsde_strerror(st));
    }
    const double s2 = c.sigma * c.sigma, ia = 1.0 / c.alpha;
    for (size_t k = 0; k < nd; k++) {
        double v = (x[k] + s2 * s->s[k]) * ia;
        if (!isfinite(v))
            return diffsde_i_fail(s->ctx, DIFFSDE_ENONFINITE,
                                  "%s: denoising step at t=%.17g gives %g at sample %zu (global "
                                  "sample %" PRIu64 "), coordinate %zu",
                                  fn, eps, v, k / d, s->sample0 + k / d, k % d);
        s->w[k] = v;
    }
    memcpy(x, s->w, nd * sizeof *x);
    return DIFFSDE_OK;
}

int diffsde_sampler_finish(diffsde_sampler *s, double *x)
{
    static const char fn[] = "diffsde_sampler_finish";
    if (!s)
        return DIFFSDE_ENULL;
    if (!x)
        return diffsde_i_fail(s->ctx, DIFFSDE_ENULL, "%s: x is NULL", fn);
    int st = check_running(s, fn);
    if (st != DIFFSDE_OK)
        return st;
    if (!diffsde_sampler_done(s))
        return diffsde_i_fail(s->ctx, DIFFSDE_ESTATE,
                              "%s: the run is not done (%zu of %zu steps taken): step until "
                              "diffsde_sampler_done()", fn, s->stats.steps, s->opt.steps);
    double t0 = now_seconds();
    const size_t nd = s->n * s->d;
    if (s->opt.denoise && s->opt.reference && s->opt.method == DIFFSDE_SAMPLER_PC) {
        /* score_sde: the last predictor's noise-free mean */
        for (size_t k = 0; k < nd && st == DIFFSDE_OK; k++)
            if (!isfinite(s->xmean[k]))
                st = diffsde_i_fail(s->ctx, DIFFSDE_ENONFINITE,
                                    "%s: the last predictor mean has %g at sample %zu (global "
                                    "sample %" PRIu64 "), coordinate %zu",
                                    fn, s->xmean[k], k / s->d, s->sample0 + k / s->d, k % s->d);
        if (st == DIFFSDE_OK)
            memcpy(x, s->xmean, nd * sizeof *x);
    } else if (s->opt.denoise) {
        st = denoise(s, x, fn);
    }
    if (st == DIFFSDE_OK)
        s->state = DIFFSDE_I_SAMPLER_FINISHED;
    s->stats.wall_seconds += now_seconds() - t0;
    return st;
}

int diffsde_sampler_run(diffsde_sampler *s, const diffsde_noise *noise, uint64_t sample0,
                        size_t n, size_t d, double *x)
{
    int st = diffsde_sampler_init(s, noise, sample0, n, d, x);
    while (st == DIFFSDE_OK && !diffsde_sampler_done(s))
        st = diffsde_sampler_step(s, x);
    if (st == DIFFSDE_OK)
        st = diffsde_sampler_finish(s, x);
    return st;
}

int diffsde_sampler_get_times(const diffsde_sampler *s, double *t)
{
    if (!s)
        return DIFFSDE_ENULL;
    if (!t)
        return diffsde_i_fail(s->ctx, DIFFSDE_ENULL, "diffsde_sampler_get_times: t is NULL");
    if (s->state == DIFFSDE_I_SAMPLER_IDLE)
        return diffsde_i_fail(s->ctx, DIFFSDE_ESTATE,
                              "diffsde_sampler_get_times: no run: call diffsde_sampler_init() "
                              "first");
    current_times(s, t);
    return DIFFSDE_OK;
}

int diffsde_sampler_get_stats(const diffsde_sampler *s, diffsde_sampler_stats *st)
{
    if (!s)
        return DIFFSDE_ENULL;
    if (!st)
        return diffsde_i_fail(s->ctx, DIFFSDE_ENULL, "diffsde_sampler_get_stats: st is NULL");
    *st = s->stats;
    st->nfe_per_sample = s->n ? (double)s->stats.score_evals / (double)s->n : 0.0;
    return DIFFSDE_OK;
}
