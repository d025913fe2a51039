/*
 * Log-likelihoods through the flow ODE: options, names, the evaluator object and its
 * evaluation (dequantise, draw the probes, integrate the augmented ODE from ε to T, close
 * with the terminal density).
 *
 * Memory: diffsde_loglik_new() allocates only the object. diffsde_loglik_eval() sizes its
 * buffers for the batch — the augmented states n (d + 1), the latents and terminal values
 * n (d + 1), the probes K n (d + 1) (Hutchinson), the evaluation scratch (at most
 * DIFFSDE_I_LOGLIK_SCRATCH_DOUBLES unless one ± pair needs more) and the integrator's
 * workspace — and keeps them: they are grown, never shrunk, so repeated evaluations of no
 * larger batches allocate nothing.
 */
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "likelihood/likelihood_impl.h"

#define LN2 0.693147180559945309417232121458176568 /* M_LN2 is not ISO C */

struct diffsde_loglik {
    diffsde_ctx *ctx;
    const diffsde_sde *sde;
    const diffsde_score *score;
    diffsde_loglik_options opt; /* opt.ode resolved */
    double T;
    diffsde_i_odews ws;
    double *y;       size_t y_cap;       /* n × (d + 1) augmented states */
    double *xT;      size_t xT_cap;      /* n × d latents (and dequantisation uniforms) */
    double *tv;      size_t tv_cap;      /* 2n: the times T, then the terminal values */
    double *pu;      size_t pu_cap;      /* K × n × d probe directions */
    double *pr2;     size_t pr2_cap;     /* K × n probe squared RMS */
    double *scratch; size_t scratch_cap; /* evaluation scratch */
    diffsde_loglik_stats stats;
};

void diffsde_loglik_options_default(diffsde_loglik_options *opt)
{
    if (!opt)
        return;
    memset(opt, 0, sizeof *opt);
    diffsde_ode_options_default(&opt->ode);
    opt->ode.method = DIFFSDE_ODE_RK45;
    opt->ode.rtol = 1e-5;
    opt->ode.atol = 1e-5;
    opt->ode.eps = NAN;
    opt->divergence = DIFFSDE_DIVERGENCE_EXACT;
    opt->probes = 1;
    opt->probe = DIFFSDE_PROBE_RADEMACHER;
    opt->fd_step = NAN;
    opt->terminal = DIFFSDE_TERMINAL_PRIOR;
    opt->bin_width = 0.0;
    opt->dequantize = 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Names                                                                                      */

static const char *const divergence_names[] = {"exact", "hutchinson"};
static const char *const probe_names[] = {"rademacher", "gaussian"};
static const char *const terminal_names[] = {"prior", "exact"};

static const char *name_of(const char *const *names, int count, int v)
{
    return v >= 0 && v < count ? names[v] : "";
}

static int from_name(const char *const *names, int count, const char *name, int *v)
{
    if (!name || !v)
        return DIFFSDE_ENULL;
    for (int i = 0; i < count; i++) {
        if (strcmp(name, names[i]) == 0) {
            *v = i;
            return DIFFSDE_OK;
        }
    }
    return DIFFSDE_EPARAM;
}

const char *diffsde_divergence_name(diffsde_divergence v)
{
    return name_of(divergence_names, 2, (int)v);
}

int diffsde_divergence_from_name(const char *name, diffsde_divergence *v)
{
    int i = 0, st = from_name(divergence_names, 2, name, v ? &i : NULL);
    if (st == DIFFSDE_OK)
        *v = (diffsde_divergence)i;
    return st;
}

const char *diffsde_probe_name(diffsde_probe p)
{
    return name_of(probe_names, 2, (int)p);
}

int diffsde_probe_from_name(const char *name, diffsde_probe *p)
{
    int i = 0, st = from_name(probe_names, 2, name, p ? &i : NULL);
    if (st == DIFFSDE_OK)
        *p = (diffsde_probe)i;
    return st;
}

const char *diffsde_terminal_name(diffsde_terminal v)
{
    return name_of(terminal_names, 2, (int)v);
}

int diffsde_terminal_from_name(const char *name, diffsde_terminal *v)
{
    int i = 0, st = from_name(terminal_names, 2, name, v ? &i : NULL);
    if (st == DIFFSDE_OK)
        *v = (diffsde_terminal)i;
    return st;
}

double diffsde_bits_per_dim(double logp, size_t d, double bin_width)
{
    if (d == 0 || !(bin_width >= 0.0) || !isfinite(bin_width))
        return NAN;
    const double dd = (double)d;
    if (bin_width > 0.0)
        return -(logp + dd * log(bin_width)) / (dd * LN2);
    return -logp / (dd * LN2);
}

/* ---------------------------------------------------------------------------------------- */
/* Object                                                                                     */

static int check_options(diffsde_ctx *ctx, const char *fn, const diffsde_loglik_options *o,
                         const diffsde_score *score)
{
    if ((int)o->divergence != DIFFSDE_DIVERGENCE_EXACT &&
        (int)o->divergence != DIFFSDE_DIVERGENCE_HUTCHINSON)
        return diffsde_i_fail(ctx, DIFFSDE_EPARAM,
                              "%s: divergence (%d) must be exact or hutchinson", fn,
                              (int)o->divergence);
    if (o->probes == 0)
        return diffsde_i_fail(ctx, DIFFSDE_EPARAM, "%s: probes must be >= 1", fn);
    if (o->probes >= DIFFSDE_NOISE_MAX_STEPS)
        return diffsde_i_fail(ctx, DIFFSDE_EPARAM,
                              "%s: probes (%zu) must be < 2^32 (probe k is step k of the probe "
                              "stream)",
                              fn, o->probes);
    if ((int)o->probe != DIFFSDE_PROBE_RADEMACHER && (int)o->probe != DIFFSDE_PROBE_GAUSSIAN)
        return diffsde_i_fail(ctx, DIFFSDE_EPARAM, "%s: probe (%d) must be rademacher or gaussian",
                              fn, (int)o->probe);
    if (!isnan(o->fd_step) && !(o->fd_step > 0.0 && isfinite(o->fd_step)))
        return diffsde_i_fail(ctx, DIFFSDE_EPARAM,
                              "%s: fd_step (%g) must be finite and > 0 (NaN: automatic)", fn,
                              o->fd_step);
    if ((int)o->terminal != DIFFSDE_TERMINAL_PRIOR && (int)o->terminal != DIFFSDE_TERMINAL_EXACT)
        return diffsde_i_fail(ctx, DIFFSDE_EPARAM, "%s: terminal (%d) must be prior or exact", fn,
                              (int)o->terminal);
    if (!(o->bin_width >= 0.0) || !isfinite(o->bin_width))
        return diffsde_i_fail(ctx, DIFFSDE_EPARAM, "%s: bin_width (%g) must be finite and >= 0",
                              fn, o->bin_width);
    if (o->dequantize != 0 && o->dequantize != 1)
        return diffsde_i_fail(ctx, DIFFSDE_EPARAM, "%s: dequantize (%d) must be 0 or 1", fn,
                              o->dequantize);
    if (o->dequantize && o->bin_width == 0.0)
        return diffsde_i_fail(ctx, DIFFSDE_EUNSUPPORTED,
                              "%s: dequantize = 1 needs the bin width of the data (bin_width > 0)",
                              fn);
    if (o->terminal == DIFFSDE_TERMINAL_EXACT && !diffsde_score_has_logp(score))
        return diffsde_i_fail(ctx, DIFFSDE_EUNSUPPORTED,
                              "%s: terminal exact needs the model's log-density at T, and the "
                              "model has none (diffsde_score_set_logp)",
                              fn);
    return DIFFSDE_OK;
}

int diffsde_loglik_new(diffsde_ctx *ctx, const diffsde_sde *sde, const diffsde_score *score,
                       const diffsde_loglik_options *opt, diffsde_loglik **out)
{
    static const char fn[] = "diffsde_loglik_new";
    if (!ctx)
        return DIFFSDE_ENULL;
    if (!sde || !score || !out)
        return diffsde_i_fail(ctx, DIFFSDE_ENULL, "%s: %s is NULL", fn,
                              !sde ? "sde" : !score ? "score" : "out");
    *out = NULL;
    diffsde_loglik_options o;
    if (opt)
        o = *opt;
    else
        diffsde_loglik_options_default(&o);
    const diffsde_i_integrator *in = diffsde_i_integrator_get(o.ode.method);
    if (in && (in->flags & DIFFSDE_I_ODE_FEWSTEP))
        return diffsde_i_fail(ctx, DIFFSDE_EUNSUPPORTED,
                              "%s: ode.method %s is a few-step method written in the flow's data "
                              "prediction; the likelihood integrates the flow together with its "
                              "divergence, which needs an adaptive or fixed-grid method (e.g. "
                              "rk45)",
                              fn, in->name);
    diffsde_ode_options resolved;
    int st = diffsde_i_ode_options_resolve(ctx, fn, sde, &o.ode, 1e-5, &resolved);
    if (st != DIFFSDE_OK)
        return st;
    if ((st = check_options(ctx, fn, &o, score)) != DIFFSDE_OK)
        return st;
    o.ode = resolved;
    double T;
    if ((st = diffsde_sde_time_range(sde, NULL, &T)) != DIFFSDE_OK)
        return diffsde_i_fail(ctx, st, "%s: the SDE's time range: %s", fn, diffsde_strerror(st));
    diffsde_loglik *ll = diffsde_i_alloc(ctx, sizeof *ll);
    if (!ll)
        return diffsde_i_fail(ctx, DIFFSDE_ENOMEM, "%s: out of memory", fn);
    memset(ll, 0, sizeof *ll);
    ll->ctx = ctx;
    ll->sde = sde;
    ll->score = score;
    ll->opt = o;
    ll->T = T;
    *out = ll;
    return DIFFSDE_OK;
}

void diffsde_loglik_free(diffsde_loglik *ll)
{
    if (!ll)
        return;
    diffsde_ctx *ctx = ll->ctx;
    diffsde_i_odews_free(ctx, &ll->ws);
    diffsde_i_free(ctx, ll->y);
    diffsde_i_free(ctx, ll->xT);
    diffsde_i_free(ctx, ll->tv);
    diffsde_i_free(ctx, ll->pu);
    diffsde_i_free(ctx, ll->pr2);
    diffsde_i_free(ctx, ll->scratch);
    diffsde_i_free(ctx, ll);
}

int diffsde_loglik_get_stats(const diffsde_loglik *ll, diffsde_loglik_stats *st)
{
    if (!ll)
        return DIFFSDE_ENULL;
    if (!st)
        return diffsde_i_fail(ll->ctx, DIFFSDE_ENULL, "diffsde_loglik_get_stats: st is NULL");
    *st = ll->stats;
    return DIFFSDE_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Evaluation                                                                                 */

/* Grow a buffer of doubles to `need` (contents not kept). */
static int grow(diffsde_ctx *ctx, double **buf, size_t *cap, size_t need)
{
    if (need == 0 || (need <= *cap && *buf))
        return DIFFSDE_OK;
    size_t bytes;
    if (diffsde_i_mul_size(need, sizeof(double), &bytes) != 0)
        return DIFFSDE_ESIZE;
    double *p = diffsde_i_alloc(ctx, bytes);
    if (!p)
        return DIFFSDE_ENOMEM;
    diffsde_i_free(ctx, *buf);
    *buf = p;
    *cap = need;
    return DIFFSDE_OK;
}

/* Restate a failure of a callee (noise source, model) on our context. */
static int restate(diffsde_ctx *ctx, int st, unsigned long nfail_before, const char *where,
                   const char *owner)
{
    if (ctx->nfail != nfail_before)
        return diffsde_i_fail_prefix(ctx, st, "%s", where);
    return diffsde_i_fail(ctx, st, "%s: %s (the details are on the context of the %s)", where,
                          diffsde_strerror(st), owner);
}

/* Size the buffers for the batch; aug->chunk comes back for the evaluation. */
static int prepare(diffsde_loglik *ll, const char *fn, diffsde_i_augsys *aug, size_t n, size_t d)
{
    diffsde_ctx *ctx = ll->ctx;
    const size_t K = aug->K;
    size_t nd, nw, knd = 0, kn = 0, chunk, slen;
    if (d == SIZE_MAX || diffsde_i_mul_size(n, d, &nd) != 0 ||
        diffsde_i_mul_size(n, d + 1, &nw) != 0 || n > SIZE_MAX / 2 ||
        (aug->mode == DIFFSDE_I_DIV_PROBES &&
         (diffsde_i_mul_size(nd, K, &knd) != 0 || diffsde_i_mul_size(n, K, &kn) != 0)) ||
        1 + 2 * (unsigned long long)K > UINT_MAX ||
        diffsde_i_augsys_scratch_len(aug, n, &chunk, &slen) != 0)
        return diffsde_i_fail(ctx, DIFFSDE_ESIZE,
                              "%s: the buffers for n=%zu points of dimension d=%zu (%zu "
                              "finite-difference directions) overflow size_t",
                              fn, n, d, K);
    int st;
    if ((st = grow(ctx, &ll->y, &ll->y_cap, nw)) || (st = grow(ctx, &ll->xT, &ll->xT_cap, nd)) ||
        (st = grow(ctx, &ll->tv, &ll->tv_cap, 2 * n)) ||
        (st = grow(ctx, &ll->pu, &ll->pu_cap, knd)) ||
        (st = grow(ctx, &ll->pr2, &ll->pr2_cap, kn)) ||
        (st = grow(ctx, &ll->scratch, &ll->scratch_cap, slen)))
        return diffsde_i_fail(ctx, st, "%s: %s for the buffers of n=%zu points of dimension %zu",
                              fn, st == DIFFSDE_ENOMEM ? "out of memory" : "size overflow", n, d);
    aug->chunk = chunk;
    return DIFFSDE_OK;
}

/* y = (x [+ b·u], 0) row by row. */
static int load_states(diffsde_loglik *ll, const diffsde_noise *noise,
                       uint64_t sample0, size_t n, size_t d, const double *x)
{
    diffsde_ctx *ctx = ll->ctx;
    const double b = ll->opt.bin_width;
    double *u = ll->xT;
    if (ll->opt.dequantize) {
        unsigned long before = ctx->nfail;
        int st = diffsde_noise_fill_uniform(noise, DIFFSDE_STREAM_DEQUANT, 0, sample0, n, d, u);
        if (st != DIFFSDE_OK)
            return restate(ctx, st, before, "diffsde_loglik_eval: dequantisation uniforms",
                           "noise source");
    }
    for (size_t i = 0; i < n; i++) {
        double *yr = ll->y + i * (d + 1);
        for (size_t j = 0; j < d; j++)
            yr[j] = ll->opt.dequantize ? x[i * d + j] + b * u[i * d + j] : x[i * d + j];
        yr[d] = 0.0;
    }
    return DIFFSDE_OK;
}

/* log p_T of the latents into term (n values). */
static int terminal_logp(diffsde_loglik *ll, const char *fn, uint64_t sample0, size_t n, size_t d,
                         double *term)
{
    diffsde_ctx *ctx = ll->ctx;
    int st;
    if (ll->opt.terminal == DIFFSDE_TERMINAL_PRIOR) {
        st = diffsde_sde_prior_logpdf(ll->sde, n, d, ll->xT, term);
        if (st != DIFFSDE_OK)
            return diffsde_i_fail(ctx, st, "%s: prior log-density at T: %s", fn,
                                  diffsde_strerror(st));
        return DIFFSDE_OK;
    }
    double *tT = ll->tv;
    for (size_t i = 0; i < n; i++)
        tT[i] = ll->T;
    unsigned long before = ctx->nfail;
    st = diffsde_score_eval_logp(ll->score, n, d, tT, ll->xT, term);
    if (st == DIFFSDE_OK)
        return DIFFSDE_OK;
    char where[256];
    size_t i = 0;
    for (; st == DIFFSDE_ENONFINITE && i < n && isfinite(term[i]); i++)
        ;
    if (st == DIFFSDE_ENONFINITE && i < n) {
        if (sample0 != 0)
            snprintf(where, sizeof where,
                     "%s: model log-density at T=%.17g of the latent of point %zu (global "
                     "sample %" PRIu64 ")",
                     fn, ll->T, i, sample0 + i);
        else
            snprintf(where, sizeof where,
                     "%s: model log-density at T=%.17g of the latent of point %zu", fn, ll->T, i);
    } else {
        snprintf(where, sizeof where, "%s: model log-density at T=%.17g of the %zu latents", fn,
                 ll->T, n);
    }
    return restate(ctx, st, before, where, "model");
}

static void summarise(diffsde_loglik *ll, size_t n, size_t d, const double *logp)
{
    double mean = 0.0;
    for (size_t i = 0; i < n; i++)
        mean += logp[i];
    mean /= (double)n;
    double ss = 0.0;
    for (size_t i = 0; i < n; i++)
        ss += (logp[i] - mean) * (logp[i] - mean);
    ll->stats.mean = mean;
    ll->stats.std_error = n > 1 ? sqrt(ss / (double)(n - 1) / (double)n) : 0.0;
    ll->stats.bpd = diffsde_bits_per_dim(mean, d, ll->opt.bin_width);
}

int diffsde_loglik_eval(diffsde_loglik *ll, const diffsde_noise *noise, uint64_t sample0,
                        size_t n, size_t d, const double *x, double *logp, double *latent,
                        double *terminal, double *delta)
{
    static const char fn[] = "diffsde_loglik_eval";
    if (!ll)
        return DIFFSDE_ENULL;
    diffsde_ctx *ctx = ll->ctx;
    if (!x || !logp)
        return diffsde_i_fail(ctx, DIFFSDE_ENULL, "%s: %s is NULL", fn, !x ? "x" : "logp");
    if (n == 0 || d == 0)
        return diffsde_i_fail(ctx, DIFFSDE_ESIZE, "%s: n (%zu) and d (%zu) must be >= 1", fn, n,
                              d);
    const int hutch = ll->opt.divergence == DIFFSDE_DIVERGENCE_HUTCHINSON;
    if (!noise && (hutch || ll->opt.dequantize))
        return diffsde_i_fail(ctx, DIFFSDE_ENULL, "%s: noise is NULL but the %s needs it", fn,
                              hutch ? "Hutchinson probes" : "dequantisation");
    size_t nd;
    if (diffsde_i_mul_size(n, d, &nd) != 0)
        return diffsde_i_fail(ctx, DIFFSDE_ESIZE, "%s: n*d overflows (n=%zu, d=%zu)", fn, n, d);
    for (size_t k = 0; k < nd; k++)
        if (!isfinite(x[k]))
            return diffsde_i_fail(ctx, DIFFSDE_ENONFINITE,
                                  "%s: x[%zu][%zu] = %g is not finite", fn, k / d, k % d, x[k]);
    memset(&ll->stats, 0, sizeof ll->stats);

    /* The model's callbacks may change between evaluations (they are borrowed), so the
     * divergence route is chosen here, not at creation. */
    diffsde_i_divmode mode = hutch                                  ? DIFFSDE_I_DIV_PROBES
                             : diffsde_score_has_divergence(ll->score) ? DIFFSDE_I_DIV_CALLBACK
                                                                       : DIFFSDE_I_DIV_AXES;
    diffsde_i_augsys aug;
    diffsde_i_augsys_init(&aug, ctx, ll->sde, ll->score, d, mode, ll->opt.probes,
                          ll->opt.fd_step);
    int st = prepare(ll, fn, &aug, n, d);
    if (st != DIFFSDE_OK)
        return st;
    if ((st = load_states(ll, noise, sample0, n, d, x)) != DIFFSDE_OK)
        return st;
    if (mode == DIFFSDE_I_DIV_PROBES &&
        (st = diffsde_i_probes_fill(ctx, fn, noise, ll->opt.probe, aug.K, sample0, n, d, ll->pu,
                                    ll->pr2)) != DIFFSDE_OK)
        return st;
    diffsde_i_augsys_bind(&aug, n, sample0, ll->pu, ll->pr2, ll->scratch, aug.chunk);

    st = diffsde_i_ode_integrate(ctx, fn, &ll->opt.ode, ll->sde, &aug.sys, NULL, ll->opt.ode.eps,
                                 ll->T, n, ll->y, &ll->ws, &ll->stats.ode);
    ll->stats.div_calls = aug.div_calls;
    if (st != DIFFSDE_OK)
        return st;
    const size_t w = d + 1;
    for (size_t i = 0; i < n; i++)
        memcpy(ll->xT + i * d, ll->y + i * w, d * sizeof(double));
    double *term = ll->tv + n;
    if ((st = terminal_logp(ll, fn, sample0, n, d, term)) != DIFFSDE_OK)
        return st;
    for (size_t i = 0; i < n; i++) {
        const double dl = ll->y[i * w + d];
        logp[i] = term[i] + dl;
        if (terminal)
            terminal[i] = term[i];
        if (delta)
            delta[i] = dl;
    }
    if (latent)
        memcpy(latent, ll->xT, nd * sizeof(double));
    summarise(ll, n, d, logp);
    return DIFFSDE_OK;
}
