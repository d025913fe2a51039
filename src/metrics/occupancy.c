/*
 * Mode coverage: every sample goes to its most responsible component; the counts are tested
 * against the weights (Pearson, one sample) and against the counts of an exact reference set
 * (Pearson homogeneity, two samples).
 */
#include <gsl/gsl_cdf.h>
#include <stdio.h>
#include <string.h>

#include "metrics/metrics_impl.h"

int diffsde_i_metrics_assign(const diffsde_i_metrics_call *c, const char *set,
                             const diffsde_gmm *gmm, diffsde_gmm_eval *ev, double t, size_t n,
                             const double *x, size_t *counts, double *ambiguity, double *tb,
                             double *resp)
{
    const size_t d = diffsde_gmm_dim(gmm), K = diffsde_gmm_ncomponents(gmm);
    const size_t B = DIFFSDE_METRICS_BLOCK;
    double amb = 0;
    memset(counts, 0, K * sizeof *counts);
    for (size_t b = 0; b < B; b++)
        tb[b] = t;
    for (size_t i0 = 0; i0 < n; i0 += B) {
        size_t nb = n - i0 < B ? n - i0 : B;
        int st = diffsde_gmm_evaluate(ev, nb, tb, x + i0 * d, NULL, NULL, NULL, resp);
        if (st != DIFFSDE_OK) {
            char what[128];
            snprintf(what, sizeof what, "diffsde_gmm_evaluate on %s %zu..%zu", set, i0,
                     i0 + nb - 1);
            return diffsde_i_metrics_restate(c, st, what);
        }
        for (size_t b = 0; b < nb; b++) {
            const double *g = resp + b * K;
            size_t best = 0;
            for (size_t k = 1; k < K; k++)
                if (g[k] > g[best])
                    best = k;
            counts[best]++;
            amb += 1.0 - g[best];
        }
    }
    if (ambiguity)
        *ambiguity = amb / (double)n;
    return DIFFSDE_OK;
}

void diffsde_i_metrics_occupancy_tests(const diffsde_gmm *gmm, size_t n, const size_t *counts,
                                       size_t n_ref, const size_t *ref_counts,
                                       diffsde_occupancy *out)
{
    const size_t K = diffsde_gmm_ncomponents(gmm);
    const double nn = (double)n;
    double chi2 = 0, empty_expected = 0;
    size_t empty = 0, cells = 0;
    for (size_t k = 0; k < K; k++) {
        double w = 0;
        diffsde_gmm_component(gmm, k, &w, NULL, NULL);
        double e = nn * w, c = (double)counts[k];
        empty += counts[k] == 0;
        empty_expected += exp(nn * log1p(-w));
        if (e > 0) {
            chi2 += (c - e) * (c - e) / e;
            cells++;
        } else if (c > 0) {
            chi2 = INFINITY; /* a weight that underflowed, yet samples there */
        }
    }
    out->K = K;
    out->empty = empty;
    out->empty_expected = empty_expected;
    out->chi2 = chi2;
    out->dof = cells > 0 ? cells - 1 : 0;
    out->pvalue = out->dof > 0 ? gsl_cdf_chisq_Q(chi2, (double)out->dof) : (chi2 > 0 ? 0.0 : 1.0);

    out->ref_chi2 = NAN;
    out->ref_pvalue = NAN;
    out->ref_dof = 0;
    out->ref_empty = 0;
    if (n_ref == 0 || !ref_counts)
        return;
    const double na = nn, nb = (double)n_ref, N = na + nb;
    double rchi2 = 0;
    size_t cols = 0;
    for (size_t k = 0; k < K; k++) {
        out->ref_empty += ref_counts[k] == 0;
        double a = (double)counts[k], b = (double)ref_counts[k], tot = a + b;
        if (tot == 0)
            continue;
        cols++;
        double ea = tot * na / N, eb = tot * nb / N;
        rchi2 += (a - ea) * (a - ea) / ea + (b - eb) * (b - eb) / eb;
    }
    out->ref_chi2 = rchi2;
    out->ref_dof = cols - 1; /* cols ≥ 1: n ≥ 1 samples were assigned */
    out->ref_pvalue = out->ref_dof > 0 ? gsl_cdf_chisq_Q(rchi2, (double)out->ref_dof) : 1.0;
}

int diffsde_metrics_occupancy(diffsde_ctx *ctx, const diffsde_gmm *gmm, const diffsde_sde *sde,
                              double t, size_t n, const double *x, size_t n_ref, const double *ref,
                              size_t *counts, diffsde_occupancy *out)
{
    static const char fn[] = "diffsde_metrics_occupancy";
    if (!ctx)
        return DIFFSDE_ENULL;
    diffsde_i_metrics_call call;
    diffsde_i_metrics_call_init(&call, ctx, fn, gmm, sde);
    const diffsde_i_metrics_call *c = &call;
    int st = diffsde_i_metrics_check_sets(c, gmm, n, x, n_ref, ref, out);
    if (st != DIFFSDE_OK)
        return st;
    const size_t K = diffsde_gmm_ncomponents(gmm);
    size_t bk;
    if (diffsde_i_mul_size(DIFFSDE_METRICS_BLOCK + 1, K, &bk) != 0)
        return diffsde_i_fail(ctx, DIFFSDE_ESIZE, "%s: K (%zu) is too large", fn, K);
    double *work = diffsde_i_calloc(ctx, bk + DIFFSDE_METRICS_BLOCK, sizeof(double));
    size_t *cnt = diffsde_i_calloc(ctx, 2 * K, sizeof(size_t));
    diffsde_gmm_eval *ev = NULL;
    if (!work || !cnt) {
        st = diffsde_i_fail(ctx, DIFFSDE_ENOMEM, "%s: cannot allocate the workspace (K = %zu)", fn,
                            K);
        goto done;
    }
    st = diffsde_gmm_eval_new(gmm, sde, &ev);
    if (st != DIFFSDE_OK) {
        st = diffsde_i_metrics_restate(c, st, "diffsde_gmm_eval_new");
        goto done;
    }
    double *tb = work, *resp = work + DIFFSDE_METRICS_BLOCK, amb = 0;
    st = diffsde_i_metrics_assign(c, "samples", gmm, ev, t, n, x, cnt, &amb, tb, resp);
    if (st == DIFFSDE_OK && n_ref > 0)
        st = diffsde_i_metrics_assign(c, "reference samples", gmm, ev, t, n_ref, ref, cnt + K, NULL,
                                      tb, resp);
    if (st != DIFFSDE_OK)
        goto done;
    diffsde_i_metrics_occupancy_tests(gmm, n, cnt, n_ref, n_ref > 0 ? cnt + K : NULL, out);
    out->ambiguity = amb;
    if (counts)
        memcpy(counts, cnt, K * sizeof *counts);
done:
    diffsde_gmm_eval_free(ev);
    diffsde_i_free(ctx, cnt);
    diffsde_i_free(ctx, work);
    return st;
}
