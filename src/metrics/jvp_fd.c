/*
 * Jacobian-vector product of a score model by central differences along each probe:
 * jv = (s(x + h v) − s(x − h v)) / (2h), h = h0 · max(1, ‖x‖∞) / ‖v‖∞.
 */
#include <float.h>

#include "metrics/metrics_impl.h"

static double inf_norm(size_t d, const double *a)
{
    double m = 0;
    for (size_t j = 0; j < d; j++)
        if (fabs(a[j]) > m)
            m = fabs(a[j]);
    return m;
}

static double step_of(size_t d, const double *x, const double *v, double h0)
{
    double sx = inf_norm(d, x);
    return h0 * (sx > 1 ? sx : 1) / inf_norm(d, v);
}

int diffsde_i_metrics_jvp_fd(const diffsde_i_metrics_call *c, const diffsde_score *score,
                             const diffsde_sde *sde, size_t n, size_t d, const double *t,
                             const double *x, const double *v, double h0, double *jv, double *work)
{
    const size_t nd = n * d;
    double *xp = work, *xm = work + nd, *sm = work + 2 * nd;
    for (size_t i = 0; i < n; i++) {
        double h = step_of(d, x + i * d, v + i * d, h0);
        for (size_t j = 0; j < d; j++) {
            size_t k = i * d + j;
            xp[k] = x[k] + h * v[k];
            xm[k] = x[k] - h * v[k];
        }
    }
    int st = diffsde_score_eval(score, sde, n, d, t, xp, jv);
    if (st == DIFFSDE_OK)
        st = diffsde_score_eval(score, sde, n, d, t, xm, sm);
    if (st != DIFFSDE_OK)
        return diffsde_i_metrics_restate(c, st, "the model at x +- h v (diffsde_score_eval)");
    for (size_t i = 0; i < n; i++) {
        double h = step_of(d, x + i * d, v + i * d, h0);
        for (size_t j = 0; j < d; j++) {
            size_t k = i * d + j;
            jv[k] = (jv[k] - sm[k]) / (2 * h);
        }
    }
    return DIFFSDE_OK;
}

int diffsde_metrics_score_jvp_fd(diffsde_ctx *ctx, const diffsde_score *score,
                                 const diffsde_sde *sde, size_t n, size_t d, const double *t,
                                 const double *x, const double *v, double fd_step, double *jv,
                                 double *work)
{
    static const char fn[] = "diffsde_metrics_score_jvp_fd";
    if (!ctx)
        return DIFFSDE_ENULL;
    diffsde_i_metrics_call call;
    diffsde_i_metrics_call_init(&call, ctx, fn, NULL, sde);
    const diffsde_i_metrics_call *c = &call;
    if (!score || !sde)
        return diffsde_i_fail(ctx, DIFFSDE_ENULL, "%s: %s is NULL", fn, !score ? "score" : "sde");
    size_t nd;
    int st = diffsde_i_metrics_size(c, "x", n, 0, d, &nd);
    if (st != DIFFSDE_OK)
        return st;
    if (nd > SIZE_MAX / 3)
        return diffsde_i_fail(ctx, DIFFSDE_ESIZE, "%s: 3*n*d overflows size_t (n = %zu, d = %zu)",
                              fn, n, d);
    if (!(fd_step >= 0) || !isfinite(fd_step))
        return diffsde_i_fail(ctx, DIFFSDE_EPARAM, "%s: fd_step (%g) must be finite and >= 0", fn,
                              fd_step);
    if (n == 0)
        return DIFFSDE_OK;
    if (!t || !x || !v || !jv || !work)
        return diffsde_i_fail(ctx, DIFFSDE_ENULL, "%s: %s is NULL", fn,
                              !t    ? "t"
                              : !x  ? "x"
                              : !v  ? "v"
                              : !jv ? "jv"
                                    : "work");
    if (jv == x || jv == v)
        return diffsde_i_fail(ctx, DIFFSDE_EPARAM, "%s: jv must not alias %s", fn,
                              jv == x ? "x" : "v");
    if ((st = diffsde_i_metrics_finite(c, "x", n, d, x)) != DIFFSDE_OK ||
        (st = diffsde_i_metrics_finite(c, "v", n, d, v)) != DIFFSDE_OK)
        return st;
    for (size_t i = 0; i < n; i++)
        if (inf_norm(d, v + i * d) == 0)
            return diffsde_i_fail(ctx, DIFFSDE_EPARAM, "%s: probe v[%zu] is the zero vector", fn,
                                  i);
    double h0 = fd_step > 0 ? fd_step : cbrt(DBL_EPSILON);
    return diffsde_i_metrics_jvp_fd(c, score, sde, n, d, t, x, v, h0, jv, work);
}
