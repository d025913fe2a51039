/*
 * Sliced score matching over exact draws x ~ p_t with one probe v per draw:
 *     J(s) = E[ vᵀ (∂s/∂x) v + ½ (vᵀ s)² ],
 * for the model (JVP from the user's callback or central differences) and for the exact score
 * (curvature in closed form, gmm_curv.c), with the paired difference.
 */
#include <float.h>

#include "metrics/metrics_impl.h"

/* Call the user's JVP on one block and check what it wrote. */
static int user_jvp(diffsde_ctx *ctx, const char *fn, diffsde_jvp_fn jvp, void *user, size_t nb,
                    size_t d, const double *tb, const double *x, const double *v, double *jv,
                    size_t i0)
{
    int rc = jvp(nb, d, tb, x, v, jv, user);
    if (rc != 0)
        return diffsde_i_fail(ctx, DIFFSDE_ECALLBACK,
                              "%s: the JVP callback returned %d on draws %zu..%zu", fn, rc, i0,
                              i0 + nb - 1);
    for (size_t k = 0; k < nb * d; k++)
        if (!isfinite(jv[k]))
            return diffsde_i_fail(ctx, DIFFSDE_ENONFINITE,
                                  "%s: the JVP callback wrote %g for draw %zu, coordinate %zu "
                                  "(t = %.17g)",
                                  fn, jv[k], i0 + k / d, k % d, tb[0]);
    return DIFFSDE_OK;
}

int diffsde_metrics_ssm(diffsde_ctx *ctx, const diffsde_gmm *gmm, const diffsde_sde *sde,
                        const diffsde_score *score, diffsde_jvp_fn jvp, void *jvp_user, double t,
                        const diffsde_noise *noise, uint64_t sample0, size_t n, diffsde_probe probe,
                        double fd_step, diffsde_sm_estimates *out)
{
    static const char fn[] = "diffsde_metrics_ssm";
    if (!ctx)
        return DIFFSDE_ENULL;
    diffsde_i_metrics_call call;
    diffsde_i_metrics_call_init(&call, ctx, fn, gmm, sde);
    const diffsde_i_metrics_call *c = &call;
    size_t d, bd, bk;
    int st =
        diffsde_i_metrics_check_score_args(c, gmm, sde, score, noise, sample0, n, out != NULL, &d);
    if (st != DIFFSDE_OK)
        return st;
    if (probe != DIFFSDE_PROBE_RADEMACHER && probe != DIFFSDE_PROBE_GAUSSIAN)
        return diffsde_i_fail(ctx, DIFFSDE_EPARAM, "%s: invalid probe distribution %d", fn,
                              (int)probe);
    if (!(fd_step >= 0) || !isfinite(fd_step))
        return diffsde_i_fail(ctx, DIFFSDE_EPARAM, "%s: fd_step (%g) must be finite and >= 0", fn,
                              fd_step);
    const double h0 = fd_step > 0 ? fd_step : cbrt(DBL_EPSILON);
    const size_t B = DIFFSDE_METRICS_BLOCK, K = diffsde_gmm_ncomponents(gmm);
    if (diffsde_i_mul_size(B, d, &bd) != 0 || bd > SIZE_MAX / 9 ||
        diffsde_i_mul_size(B, K, &bk) != 0 || bk > SIZE_MAX - 8 * bd - B)
        return diffsde_i_fail(ctx, DIFFSDE_ESIZE, "%s: d (%zu) or K (%zu) is too large", fn, d, K);
    /* x, v, s, jv, se (5 B d), FD work (3 B d), resp (B K), tb (B) */
    double *buf = diffsde_i_calloc(ctx, 8 * bd + bk + B, sizeof(double));
    if (!buf)
        return diffsde_i_fail(ctx, DIFFSDE_ENOMEM, "%s: cannot allocate the workspace", fn);
    double *x = buf, *v = x + bd, *s = v + bd, *jv = s + bd, *se = jv + bd, *work = se + bd,
           *resp = work + 3 * bd, *tb = resp + bk;
    for (size_t b = 0; b < B; b++)
        tb[b] = t;
    diffsde_gmm_eval *ev = NULL;
    diffsde_i_metrics_curv curv;
    st = diffsde_i_metrics_curv_init(&curv, c, gmm, sde, t);
    if (st != DIFFSDE_OK)
        goto done_buf;
    st = diffsde_gmm_eval_new(gmm, sde, &ev);
    if (st != DIFFSDE_OK) {
        st = diffsde_i_metrics_restate(c, st, "diffsde_gmm_eval_new");
        goto done;
    }
    diffsde_i_welford wm = {0, 0, 0}, we = {0, 0, 0}, wx = {0, 0, 0};
    for (size_t i0 = 0; i0 < n; i0 += B) {
        size_t nb = n - i0 < B ? n - i0 : B;
        st = diffsde_gmm_sample(ev, noise, t, sample0 + i0, nb, x);
        if (st != DIFFSDE_OK) {
            st = diffsde_i_metrics_restate(c, st, "drawing x ~ p_t (diffsde_gmm_sample)");
            goto done;
        }
        st = diffsde_noise_fill_normal(noise, DIFFSDE_METRICS_STREAM,
                                       DIFFSDE_METRICS_STEP_SSM_PROBES, sample0 + i0, nb, d, v);
        if (st != DIFFSDE_OK) {
            st = diffsde_i_metrics_restate(c, st, "drawing the probes (diffsde_noise_fill_normal)");
            goto done;
        }
        if (probe == DIFFSDE_PROBE_RADEMACHER)
            for (size_t k = 0; k < nb * d; k++)
                v[k] = v[k] > 0 ? 1.0 : -1.0;
        st = diffsde_score_eval(score, sde, nb, d, tb, x, s);
        if (st != DIFFSDE_OK) {
            st = diffsde_i_metrics_score_fail(c, st, i0, nb);
            goto done;
        }
        if (jvp)
            st = user_jvp(ctx, fn, jvp, jvp_user, nb, d, tb, x, v, jv, i0);
        else
            st = diffsde_i_metrics_jvp_fd(c, score, sde, nb, d, tb, x, v, h0, jv, work);
        if (st != DIFFSDE_OK)
            goto done;
        st = diffsde_gmm_evaluate(ev, nb, tb, x, NULL, se, NULL, resp);
        if (st != DIFFSDE_OK) {
            st = diffsde_i_metrics_restate(c, st, "the exact score (diffsde_gmm_evaluate)");
            goto done;
        }
        for (size_t b = 0; b < nb; b++) {
            const double *vb = v + b * d;
            double vs = 0, vse = 0, vjv = 0;
            for (size_t j = 0; j < d; j++) {
                vs += vb[j] * s[b * d + j];
                vse += vb[j] * se[b * d + j];
                vjv += vb[j] * jv[b * d + j];
            }
            double vhv = diffsde_i_metrics_curv_vhv(&curv, x + b * d, vb, resp + b * K, se + b * d);
            diffsde_i_welford_add(&wm, vjv + 0.5 * vs * vs);
            diffsde_i_welford_add(&we, vhv + 0.5 * vse * vse);
            diffsde_i_welford_add(&wx, (vjv - vhv) + 0.5 * (vs - vse) * (vs + vse));
        }
    }
    out->model = diffsde_i_welford_get(&wm);
    out->exact = diffsde_i_welford_get(&we);
    out->excess = diffsde_i_welford_get(&wx);
done:
    diffsde_gmm_eval_free(ev);
    diffsde_i_metrics_curv_free(&curv);
done_buf:
    diffsde_i_free(ctx, buf);
    return st;
}
