/*
 * Score diagnostics over exact draws: the Fisher divergence E_{p_t}‖s_θ − ∇log p_t‖² and the
 * denoising score-matching loss of the model and of the exact score.
 */
#include <inttypes.h>
#include <stdio.h>

#include "metrics/metrics_impl.h"

int diffsde_i_metrics_check_score_args(const diffsde_i_metrics_call *c, const diffsde_gmm *gmm,
                                       const diffsde_sde *sde, const diffsde_score *score,
                                       const diffsde_noise *noise, uint64_t sample0, size_t n,
                                       int out_ok, size_t *d)
{
    diffsde_ctx *ctx = c->ctx;
    const char *fn = c->fn;
    int st = diffsde_i_metrics_check_gmm(c, gmm);
    if (st != DIFFSDE_OK)
        return st;
    if (!sde || !score || !noise || !out_ok)
        return diffsde_i_fail(ctx, DIFFSDE_ENULL, "%s: %s is NULL", fn,
                              !sde     ? "sde"
                              : !score ? "score"
                              : !noise ? "noise"
                                       : "out");
    if (n == 0)
        return diffsde_i_fail(ctx, DIFFSDE_ESIZE, "%s: n must be >= 1 (got 0)", fn);
    if (sample0 > DIFFSDE_NOISE_MAX_SAMPLES || (uint64_t)n > DIFFSDE_NOISE_MAX_SAMPLES - sample0)
        return diffsde_i_fail(ctx, DIFFSDE_ERANGE,
                              "%s: sample0 + n (%" PRIu64 " + %zu) exceeds 2^48", fn, sample0, n);
    st = diffsde_i_metrics_need_philox(c, noise, "drawing exact samples");
    if (st != DIFFSDE_OK)
        return st;
    *d = diffsde_gmm_dim(gmm);
    return DIFFSDE_OK;
}

int diffsde_i_metrics_score_fail(const diffsde_i_metrics_call *c, int rc, size_t i0, size_t nb)
{
    char what[128];
    snprintf(what, sizeof what, "the model (diffsde_score_eval) on draws %zu..%zu", i0,
             i0 + nb - 1);
    return diffsde_i_metrics_restate(c, rc, what);
}

int diffsde_metrics_fisher(diffsde_ctx *ctx, const diffsde_gmm *gmm, const diffsde_sde *sde,
                           const diffsde_score *score, double t, const diffsde_noise *noise,
                           uint64_t sample0, size_t n, diffsde_estimate *out)
{
    static const char fn[] = "diffsde_metrics_fisher";
    if (!ctx)
        return DIFFSDE_ENULL;
    diffsde_i_metrics_call call;
    diffsde_i_metrics_call_init(&call, ctx, fn, gmm, sde);
    const diffsde_i_metrics_call *c = &call;
    size_t d, bd;
    int st =
        diffsde_i_metrics_check_score_args(c, gmm, sde, score, noise, sample0, n, out != NULL, &d);
    if (st != DIFFSDE_OK)
        return st;
    const size_t B = DIFFSDE_METRICS_BLOCK;
    if (diffsde_i_mul_size(B, d, &bd) != 0 || bd > (SIZE_MAX - B) / 3)
        return diffsde_i_fail(ctx, DIFFSDE_ESIZE, "%s: d (%zu) is too large", fn, d);
    double *buf = diffsde_i_calloc(ctx, 3 * bd + B, sizeof(double));
    if (!buf)
        return diffsde_i_fail(ctx, DIFFSDE_ENOMEM, "%s: cannot allocate the workspace", fn);
    double *x = buf, *s = x + bd, *se = s + bd, *tb = se + bd;
    for (size_t b = 0; b < B; b++)
        tb[b] = t;
    diffsde_gmm_eval *ev = NULL;
    st = diffsde_gmm_eval_new(gmm, sde, &ev);
    if (st != DIFFSDE_OK) {
        st = diffsde_i_metrics_restate(c, st, "diffsde_gmm_eval_new");
        goto done;
    }
    diffsde_i_welford w = {0, 0, 0};
    for (size_t i0 = 0; i0 < n; i0 += B) {
        size_t nb = n - i0 < B ? n - i0 : B;
        st = diffsde_gmm_sample(ev, noise, t, sample0 + i0, nb, x);
        if (st != DIFFSDE_OK) {
            st = diffsde_i_metrics_restate(c, st, "drawing x ~ p_t (diffsde_gmm_sample)");
            goto done;
        }
        st = diffsde_score_eval(score, sde, nb, d, tb, x, s);
        if (st != DIFFSDE_OK) {
            st = diffsde_i_metrics_score_fail(c, st, i0, nb);
            goto done;
        }
        st = diffsde_gmm_evaluate(ev, nb, tb, x, NULL, se, NULL, NULL);
        if (st != DIFFSDE_OK) {
            st = diffsde_i_metrics_restate(c, st, "the exact score (diffsde_gmm_evaluate)");
            goto done;
        }
        for (size_t b = 0; b < nb; b++) {
            double q = 0;
            for (size_t j = 0; j < d; j++) {
                double e = s[b * d + j] - se[b * d + j];
                q += e * e;
            }
            diffsde_i_welford_add(&w, q);
        }
    }
    *out = diffsde_i_welford_get(&w);
done:
    diffsde_gmm_eval_free(ev);
    diffsde_i_free(ctx, buf);
    return st;
}

int diffsde_metrics_dsm(diffsde_ctx *ctx, const diffsde_gmm *gmm, const diffsde_sde *sde,
                        const diffsde_score *score, double t, const diffsde_noise *noise,
                        uint64_t sample0, size_t n, diffsde_sm_estimates *out)
{
    static const char fn[] = "diffsde_metrics_dsm";
    if (!ctx)
        return DIFFSDE_ENULL;
    diffsde_i_metrics_call call;
    diffsde_i_metrics_call_init(&call, ctx, fn, gmm, sde);
    const diffsde_i_metrics_call *c = &call;
    size_t d, bd;
    int st =
        diffsde_i_metrics_check_score_args(c, gmm, sde, score, noise, sample0, n, out != NULL, &d);
    if (st != DIFFSDE_OK)
        return st;
    diffsde_sde_coefs co;
    st = diffsde_sde_coefs_at(sde, t, &co);
    if (st != DIFFSDE_OK)
        return diffsde_i_metrics_restate(c, st, "the SDE's coefficients (diffsde_sde_coefs_at)");
    if (!(co.sigma > 0))
        return diffsde_i_fail(ctx, DIFFSDE_EDOM,
                              "%s: sigma(t) = %g at t = %.17g: the DSM loss divides by sigma", fn,
                              co.sigma, t);
    const size_t B = DIFFSDE_METRICS_BLOCK;
    if (diffsde_i_mul_size(B, d, &bd) != 0 || bd > (SIZE_MAX - B) / 5)
        return diffsde_i_fail(ctx, DIFFSDE_ESIZE, "%s: d (%zu) is too large", fn, d);
    double *buf = diffsde_i_calloc(ctx, 5 * bd + B, sizeof(double));
    if (!buf)
        return diffsde_i_fail(ctx, DIFFSDE_ENOMEM, "%s: cannot allocate the workspace", fn);
    double *x0 = buf, *z = x0 + bd, *x = z + bd, *s = x + bd, *se = s + bd, *tb = se + bd;
    for (size_t b = 0; b < B; b++)
        tb[b] = t;
    diffsde_gmm_eval *ev = NULL, *ev0 = NULL;
    st = diffsde_gmm_eval_new(gmm, sde, &ev);
    if (st == DIFFSDE_OK)
        st = diffsde_gmm_eval_new(gmm, NULL, &ev0);
    if (st != DIFFSDE_OK) {
        st = diffsde_i_metrics_restate(c, st, "diffsde_gmm_eval_new");
        goto done;
    }
    const double a = co.alpha, sg = co.sigma;
    diffsde_i_welford wm = {0, 0, 0}, we = {0, 0, 0}, wx = {0, 0, 0};
    for (size_t i0 = 0; i0 < n; i0 += B) {
        size_t nb = n - i0 < B ? n - i0 : B;
        st = diffsde_gmm_sample(ev0, noise, 0.0, sample0 + i0, nb, x0);
        if (st != DIFFSDE_OK) {
            st = diffsde_i_metrics_restate(c, st, "drawing x0 ~ p0 (diffsde_gmm_sample)");
            goto done;
        }
        st = diffsde_noise_fill_normal(noise, DIFFSDE_METRICS_STREAM,
                                       DIFFSDE_METRICS_STEP_DSM_NOISE, sample0 + i0, nb, d, z);
        if (st != DIFFSDE_OK) {
            st = diffsde_i_metrics_restate(c, st,
                                           "drawing the DSM noise (diffsde_noise_fill_normal)");
            goto done;
        }
        for (size_t k = 0; k < nb * d; k++)
            x[k] = a * x0[k] + sg * z[k];
        st = diffsde_score_eval(score, sde, nb, d, tb, x, s);
        if (st != DIFFSDE_OK) {
            st = diffsde_i_metrics_score_fail(c, st, i0, nb);
            goto done;
        }
        st = diffsde_gmm_evaluate(ev, nb, tb, x, NULL, se, NULL, NULL);
        if (st != DIFFSDE_OK) {
            st = diffsde_i_metrics_restate(c, st, "the exact score (diffsde_gmm_evaluate)");
            goto done;
        }
        for (size_t b = 0; b < nb; b++) {
            double qm = 0, qe = 0, qx = 0;
            for (size_t j = 0; j < d; j++) {
                size_t k = b * d + j;
                double zs = z[k] / sg, am = s[k] + zs, ae = se[k] + zs;
                qm += am * am;
                qe += ae * ae;
                /* ‖a_m‖² − ‖a_e‖² = (s − s_e)·(s + s_e + 2z/σ), without cancellation */
                qx += (s[k] - se[k]) * (s[k] + se[k] + 2 * zs);
            }
            diffsde_i_welford_add(&wm, qm);
            diffsde_i_welford_add(&we, qe);
            diffsde_i_welford_add(&wx, qx);
        }
    }
    out->model = diffsde_i_welford_get(&wm);
    out->exact = diffsde_i_welford_get(&we);
    out->excess = diffsde_i_welford_get(&wx);
done:
    diffsde_gmm_eval_free(ev0);
    diffsde_gmm_eval_free(ev);
    diffsde_i_free(ctx, buf);
    return st;
}
