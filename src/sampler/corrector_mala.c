/*
 * The Metropolis-adjusted Langevin corrector (MALA; Besag 1994, Roberts & Tweedie 1996): a
 * Metropolis–Hastings kernel that leaves p_t exactly invariant, so K steps at a level remove
 * the step-size bias of the unadjusted Langevin corrector. Corrector step k at level i, time t:
 *
 *     ε = 2 a (snr σ(t))²     (the ALD step: it does not depend on the state),
 *     y = x + ε s(x) + √(2ε) z,   z ~ N(0, I)  (stream DIFFSDE_STREAM_CORRECTOR, step i·K + k),
 *     log r = log p_t(y) − log p_t(x) + log q(x | y) − log q(y | x),
 *     q(y | x) = N(y; x + ε s(x), 2ε I),  so  log q(y | x) = −‖y − x − ε s(x)‖²/(4ε) + const,
 *     accept (x ← y) when log U < log r,  U ~ U(0, 1)  (stream DIFFSDE_STREAM_ACCEPT, same
 *     step, coordinate 0).
 *
 * ε must be the same in both directions for q to be one kernel, hence the state-independent
 * step: the SNR rule's ε, which depends on ‖s(x)‖ and ‖z‖, would break detailed balance.
 * a comes from diffsde_i_langevin_a(). Needs the model's log-density
 * (diffsde_score_set_logp()) and uniforms (a Philox noise source: a callback source gives
 * DIFFSDE_EUNSUPPORTED). Accepted and rejected proposals are counted in lv->stats.
 *
 * Cost: the score and log p_t at x (step k = 0 only: later steps of a level reuse them from
 * w2 and wn, updated on acceptance), and at the proposal y. Scratch: w2 = s(x), wn = log p(x),
 * w = y, s = s(y), wn2 = log p(y), z = the normals then the uniforms. Nothing is written to x
 * before every fallible call has succeeded, so on failure x is unchanged.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "sampler/stepper.h"

/* Restate a callee's failure on the sampler's context, as level.c does for the score: keep
 * the callee's message when it is on this context, else point to where it is. */
static int restate(diffsde_i_level *lv, int st, unsigned long nfail_before, const char *what,
                   const char *owner)
{
    char where[200];
    snprintf(where, sizeof where,
             "diffsde_sampler_step: mala corrector: %s at level %zu (step %zu of %zu), t=%.17g",
             what, lv->level, lv->level + 1, lv->N, lv->t);
    if (lv->ctx->nfail != nfail_before)
        return diffsde_i_fail_prefix(lv->ctx, st, "%s", where);
    return diffsde_i_fail(lv->ctx, st, "%s: %s (the details are on the context of the %s)",
                          where, diffsde_strerror(st), owner);
}

static int level_logp(diffsde_i_level *lv, const double *pts, double *out, const char *what)
{
    unsigned long before = lv->ctx->nfail;
    int st = diffsde_score_eval_logp(lv->score, lv->n, lv->d, lv->tvec, pts, out);
    if (st != DIFFSDE_OK)
        return restate(lv, st, before, what, "model");
    return DIFFSDE_OK;
}

static int mala_step(diffsde_i_level *lv, size_t k, double *x)
{
    const size_t n = lv->n, d = lv->d;
    if (!diffsde_score_has_logp(lv->score))
        return diffsde_i_fail(lv->ctx, DIFFSDE_EUNSUPPORTED,
                              "diffsde_sampler_step: mala corrector at level %zu, t=%.17g: the "
                              "model has no log-density (diffsde_score_set_logp)",
                              lv->level, lv->t);
    double a;
    int st = diffsde_i_langevin_a(lv, "mala", &a);
    if (st != DIFFSDE_OK)
        return st;
    const double r = lv->opt->snr * lv->c.sigma;
    const double e = r * r * 2.0 * a, sq = sqrt(e * 2.0);
    if (!(e > 0.0))
        return DIFFSDE_OK; /* σ(t) = 0: no proposal can move */
    const uint64_t step =
        (uint64_t)lv->level * (uint64_t)lv->opt->corrector_steps + (uint64_t)k;
    double *sx = lv->w2, *lpx = lv->wn, *y = lv->w, *lpy = lv->wn2;

    if (k == 0) {
        st = diffsde_i_level_score(lv, x);
        if (st != DIFFSDE_OK)
            return st;
        memcpy(sx, lv->s, n * d * sizeof *sx);
        st = level_logp(lv, x, lpx, "log-density at the state");
        if (st != DIFFSDE_OK)
            return st;
    }
    st = diffsde_i_level_noise(lv, DIFFSDE_STREAM_CORRECTOR, step);
    if (st != DIFFSDE_OK)
        return st;
    for (size_t i = 0; i < n * d; i++)
        y[i] = x[i] + e * sx[i] + sq * lv->z[i];

    /* the normals are no longer needed: z receives the n accept uniforms */
    unsigned long before = lv->ctx->nfail;
    st = diffsde_noise_fill_uniform(lv->noise, DIFFSDE_STREAM_ACCEPT, step, lv->sample0, n, 1,
                                    lv->z);
    if (st != DIFFSDE_OK)
        return restate(lv, st, before, "accept uniforms", "noise source");
    st = diffsde_i_level_score(lv, y);
    if (st != DIFFSDE_OK)
        return st;
    st = level_logp(lv, y, lpy, "log-density at the proposal");
    if (st != DIFFSDE_OK)
        return st;

    uint64_t accepted = 0;
    const double inv4e = 1.0 / (4.0 * e);
    for (size_t i = 0; i < n; i++) {
        double *xi = x + i * d, *sxi = sx + i * d;
        const double *yi = y + i * d, *syi = lv->s + i * d;
        double fwd = 0.0, bwd = 0.0; /* ‖y − x − ε s(x)‖², ‖x − y − ε s(y)‖² */
        for (size_t j = 0; j < d; j++) {
            double u = yi[j] - xi[j] - e * sxi[j];
            double v = xi[j] - yi[j] - e * syi[j];
            fwd += u * u;
            bwd += v * v;
        }
        double log_r = lpy[i] - lpx[i] + (fwd - bwd) * inv4e;
        if (log(lv->z[i]) < log_r) {
            memcpy(xi, yi, d * sizeof *xi);
            memcpy(sxi, syi, d * sizeof *sxi);
            lpx[i] = lpy[i];
            accepted++;
        }
    }
    lv->stats->accepted += accepted;
    lv->stats->rejected += (uint64_t)n - accepted;
    return DIFFSDE_OK;
}

const diffsde_i_corrector_type diffsde_i_corrector_mala = {
    "mala", DIFFSDE_I_NEEDS_TABLE | DIFFSDE_I_NEEDS_LOGP | DIFFSDE_I_USES_NOISE, mala_step};
