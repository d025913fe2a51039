/*
 * The probability-flow drift v = f(t) x − ½ g(t)² s(x, t), derived from (sde, score) here
 * and nowhere else, and the data prediction x̂0 the few-step methods are written in.
 */
#include <math.h>
#include <stdio.h>

#include "ode/ode_impl.h"

/* Restate a model failure on our context with the batch sample it concerns. The score's
 * message names the index within the call; the call's rows map it to the batch sample,
 * which we find again from the output when the failure is a non-finite value. */
static int restate(diffsde_i_flow *fl, diffsde_i_oderun *run, int st, unsigned long nfail_before,
                   size_t m, const size_t *rows, const double *t, const double *out)
{
    size_t r = 0, col = 0;
    if (st == DIFFSDE_ENONFINITE && out)
        diffsde_i_find_nonfinite(m, fl->d, out, &r, &col);
    char where[256];
    if (m == 1 || st == DIFFSDE_ENONFINITE)
        snprintf(where, sizeof where, "%s: model evaluation for sample %zu at t=%.17g",
                 run->fname, rows[r], t[r]);
    else
        snprintf(where, sizeof where,
                 "%s: model evaluation for %zu samples (batch samples %zu.., t=%.17g..)",
                 run->fname, m, rows[0], t[0]);
    if (fl->ctx->nfail != nfail_before)
        return diffsde_i_fail_prefix(fl->ctx, st, "%s", where);
    return diffsde_i_fail(fl->ctx, st, "%s: %s (the details are on the model's context)", where,
                          diffsde_strerror(st));
}

/* Coefficients at t, reusing the previous row's when the time repeats (batches usually
 * share one t). */
static int coefs(diffsde_i_flow *fl, diffsde_i_oderun *run, double t, diffsde_sde_coefs *c,
                 int *have)
{
    if (*have && c->t == t)
        return DIFFSDE_OK;
    int st = diffsde_sde_coefs_at(fl->sde, t, c);
    if (st != DIFFSDE_OK)
        return diffsde_i_fail(fl->ctx, st, "%s: SDE coefficients at t=%.17g: %s", run->fname, t,
                              diffsde_strerror(st));
    *have = 1;
    return DIFFSDE_OK;
}

static int score(diffsde_i_flow *fl, diffsde_i_oderun *run, size_t m, const size_t *rows,
                 const double *t, const double *x, double *s)
{
    unsigned long before = fl->ctx->nfail;
    int st = diffsde_score_eval(fl->score, fl->sde, m, fl->d, t, x, s);
    run->stats->score_calls++;
    run->stats->score_evals += m;
    if (st != DIFFSDE_OK)
        return restate(fl, run, st, before, m, rows, t, s);
    return DIFFSDE_OK;
}

static int flow_rhs(void *self, diffsde_i_oderun *run, size_t m, const size_t *rows,
                    const double *t, const double *y, double *dy)
{
    diffsde_i_flow *fl = self;
    const size_t d = fl->d;
    int st = score(fl, run, m, rows, t, y, dy);
    if (st != DIFFSDE_OK)
        return st;
    diffsde_sde_coefs c;
    int have = 0;
    for (size_t r = 0; r < m; r++) {
        if ((st = coefs(fl, run, t[r], &c, &have)) != DIFFSDE_OK)
            return st;
        const double f = c.f, h = 0.5 * c.g2;
        const double *x = y + r * d;
        double *v = dy + r * d;
        for (size_t j = 0; j < d; j++)
            v[j] = f * x[j] - h * v[j];
    }
    return DIFFSDE_OK;
}

void diffsde_i_flow_init(diffsde_i_flow *fl, diffsde_ctx *ctx, const diffsde_sde *sde,
                         const diffsde_score *score_, size_t d)
{
    fl->ctx = ctx;
    fl->sde = sde;
    fl->score = score_;
    fl->d = d;
    fl->sys.w = d;
    fl->sys.rhs = flow_rhs;
    fl->sys.self = fl;
    fl->sys.evals_per_rhs = 1;
}

int diffsde_i_flow_x0(diffsde_i_flow *fl, diffsde_i_oderun *run, size_t m, const size_t *rows,
                      const double *t, const double *x, double *x0)
{
    const size_t d = fl->d;
    int st = score(fl, run, m, rows, t, x, x0);
    for (size_t r = 0; r < m; r++)
        run->nfe[rows[r]] += 1;
    if (st != DIFFSDE_OK)
        return st;
    diffsde_sde_coefs c;
    int have = 0;
    for (size_t r = 0; r < m; r++) {
        if ((st = coefs(fl, run, t[r], &c, &have)) != DIFFSDE_OK)
            return st;
        const double s2 = c.sigma * c.sigma, ia = 1.0 / c.alpha;
        const double *xr = x + r * d;
        double *o = x0 + r * d;
        for (size_t j = 0; j < d; j++)
            o[j] = (xr[j] + s2 * o[j]) * ia;
    }
    return DIFFSDE_OK;
}
