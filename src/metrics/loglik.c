/*
 * Mean exact log-density of a sample set, beside that of an exact reference set (whose
 * expectation is minus the entropy of p_t), with standard errors.
 */
#include <stdio.h>

#include "metrics/metrics_impl.h"

int diffsde_i_metrics_mean_logp(const diffsde_i_metrics_call *c, const char *set,
                                const diffsde_gmm *gmm, diffsde_gmm_eval *ev, double t, size_t n,
                                const double *x, double *tb, double *logp, diffsde_estimate *out)
{
    const size_t d = diffsde_gmm_dim(gmm), B = DIFFSDE_METRICS_BLOCK;
    diffsde_i_welford w = {0, 0, 0};
    for (size_t b = 0; b < B; b++)
        tb[b] = t;
    for (size_t i0 = 0; i0 < n; i0 += B) {
        size_t nb = n - i0 < B ? n - i0 : B;
        int st = diffsde_gmm_evaluate(ev, nb, tb, x + i0 * d, logp, NULL, NULL, NULL);
        if (st != DIFFSDE_OK) {
            char what[128];
            snprintf(what, sizeof what, "diffsde_gmm_evaluate on %s %zu..%zu", set, i0,
                     i0 + nb - 1);
            return diffsde_i_metrics_restate(c, st, what);
        }
        for (size_t b = 0; b < nb; b++)
            diffsde_i_welford_add(&w, logp[b]);
    }
    *out = diffsde_i_welford_get(&w);
    return DIFFSDE_OK;
}

void diffsde_i_metrics_loglik_diff(diffsde_loglik_check *out)
{
    out->diff = out->samples.mean - out->reference.mean;
    out->diff_se = sqrt(out->samples.se * out->samples.se + out->reference.se * out->reference.se);
}

int diffsde_metrics_loglik(diffsde_ctx *ctx, const diffsde_gmm *gmm, const diffsde_sde *sde,
                           double t, size_t n, const double *x, size_t n_ref, const double *ref,
                           diffsde_loglik_check *out)
{
    static const char fn[] = "diffsde_metrics_loglik";
    if (!ctx)
        return DIFFSDE_ENULL;
    diffsde_i_metrics_call call;
    diffsde_i_metrics_call_init(&call, ctx, fn, gmm, sde);
    const diffsde_i_metrics_call *c = &call;
    int st = diffsde_i_metrics_check_sets(c, gmm, n, x, n_ref, ref, out);
    if (st != DIFFSDE_OK)
        return st;
    double *work = diffsde_i_calloc(ctx, 2 * DIFFSDE_METRICS_BLOCK, sizeof(double));
    if (!work)
        return diffsde_i_fail(ctx, DIFFSDE_ENOMEM, "%s: cannot allocate the workspace", fn);
    diffsde_gmm_eval *ev = NULL;
    st = diffsde_gmm_eval_new(gmm, sde, &ev);
    if (st != DIFFSDE_OK) {
        st = diffsde_i_metrics_restate(c, st, "diffsde_gmm_eval_new");
        goto done;
    }
    double *tb = work, *lp = work + DIFFSDE_METRICS_BLOCK;
    st = diffsde_i_metrics_mean_logp(c, "samples", gmm, ev, t, n, x, tb, lp, &out->samples);
    if (st != DIFFSDE_OK)
        goto done;
    if (n_ref > 0) {
        st = diffsde_i_metrics_mean_logp(c, "reference samples", gmm, ev, t, n_ref, ref, tb, lp,
                                         &out->reference);
        if (st != DIFFSDE_OK)
            goto done;
        diffsde_i_metrics_loglik_diff(out);
    } else {
        out->reference.mean = out->reference.se = NAN;
        out->reference.n = 0;
        out->diff = out->diff_se = NAN;
    }
done:
    diffsde_gmm_eval_free(ev);
    diffsde_i_free(ctx, work);
    return st;
}
