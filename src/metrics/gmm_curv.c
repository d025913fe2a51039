/*
 * Curvature of log p_t for the exact score's sliced score-matching term, in closed form:
 *     ∇² log p_t = Σ_k γ_k (s_k s_kᵀ − C_k⁻¹) − s sᵀ,   s_k = −C_k⁻¹(x − α μ_k),  s = Σ_k γ_k s_k,
 * so vᵀ H v = Σ_k γ_k (vᵀs_k − vᵀs)² − Σ_k γ_k ‖L_k⁻¹ v‖² (the weighted variance form avoids the
 * cancellation of Σ γ_k (vᵀs_k)² against (vᵀs)²), with C_k = α²Σ_k + σ²I = L_k L_kᵀ.
 */
#include <lapacke.h>
#include <string.h>

#include "metrics/metrics_impl.h"

void diffsde_i_metrics_curv_free(diffsde_i_metrics_curv *c)
{
    diffsde_i_free(c->ctx, c->L);
    diffsde_i_free(c->ctx, c->mean);
    diffsde_i_free(c->ctx, c->w1);
    c->L = c->mean = c->w1 = c->w2 = NULL;
}

int diffsde_i_metrics_curv_init(diffsde_i_metrics_curv *cv, const diffsde_i_metrics_call *call,
                                const diffsde_gmm *gmm, const diffsde_sde *sde, double t)
{
    diffsde_ctx *ctx = call->ctx;
    const char *fn = call->fn;
    diffsde_i_metrics_curv *c = cv;
    memset(c, 0, sizeof *c);
    c->ctx = ctx;
    const size_t d = diffsde_gmm_dim(gmm), K = diffsde_gmm_ncomponents(gmm);
    c->d = d;
    c->K = K;
    diffsde_sde_coefs co;
    int st = diffsde_sde_coefs_at(sde, t, &co);
    if (st != DIFFSDE_OK)
        return diffsde_i_metrics_restate(call, st, "the SDE's coefficients (diffsde_sde_coefs_at)");
    c->alpha = co.alpha;
    size_t dd, kdd, kd;
    if (diffsde_i_mul_size(d, d, &dd) || diffsde_i_mul_size(K, dd, &kdd) ||
        diffsde_i_mul_size(K, d, &kd))
        return diffsde_i_fail(ctx, DIFFSDE_ESIZE, "%s: K d^2 overflows size_t (K = %zu, d = %zu)",
                              fn, K, d);
    c->L = diffsde_i_calloc(ctx, kdd, sizeof(double));
    c->mean = diffsde_i_calloc(ctx, kd, sizeof(double));
    c->w1 = diffsde_i_calloc(ctx, 2 * d, sizeof(double));
    if (!c->L || !c->mean || !c->w1) {
        diffsde_i_metrics_curv_free(c);
        return diffsde_i_fail(ctx, DIFFSDE_ENOMEM,
                              "%s: cannot allocate the component factors (K = %zu, d = %zu)", fn, K,
                              d);
    }
    c->w2 = c->w1 + d;
    const double a2 = co.alpha * co.alpha, s2 = co.sigma * co.sigma;
    for (size_t k = 0; k < K; k++) {
        double *L = c->L + k * dd;
        diffsde_gmm_component(gmm, k, NULL, c->mean + k * d, L);
        for (size_t i = 0; i < d; i++) {
            for (size_t j = 0; j < d; j++)
                L[i * d + j] *= a2;
            L[i * d + i] += s2;
        }
        lapack_int info = LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'L', (lapack_int)d, L, (lapack_int)d);
        if (info != 0) {
            diffsde_i_metrics_curv_free(c);
            return diffsde_i_fail(ctx, DIFFSDE_ECONVERGENCE,
                                  "%s: the covariance of component %zu at t = %.17g is not "
                                  "numerically positive definite (dpotrf info = %d)",
                                  fn, k, t, (int)info);
        }
    }
    return DIFFSDE_OK;
}

/* w ← L⁻¹ w (forward substitution, L lower with the upper part ignored). */
static void forward(size_t d, const double *L, double *w)
{
    for (size_t j = 0; j < d; j++) {
        double v = w[j];
        for (size_t l = 0; l < j; l++)
            v -= L[j * d + l] * w[l];
        w[j] = v / L[j * d + j];
    }
}

double diffsde_i_metrics_curv_vhv(diffsde_i_metrics_curv *c, const double *x, const double *v,
                                  const double *resp, const double *s)
{
    const size_t d = c->d, dd = d * d;
    double vs = 0;
    for (size_t j = 0; j < d; j++)
        vs += v[j] * s[j];
    double var = 0, tr = 0;
    for (size_t k = 0; k < c->K; k++) {
        double g = resp[k];
        if (g == 0)
            continue;
        const double *L = c->L + k * dd, *mu = c->mean + k * d;
        for (size_t j = 0; j < d; j++) {
            c->w1[j] = x[j] - c->alpha * mu[j];
            c->w2[j] = v[j];
        }
        forward(d, L, c->w1);
        forward(d, L, c->w2);
        double vsk = 0, q = 0;
        for (size_t j = 0; j < d; j++) {
            vsk -= c->w1[j] * c->w2[j]; /* vᵀ s_k = −(L⁻¹r)·(L⁻¹v) */
            q += c->w2[j] * c->w2[j];
        }
        var += g * (vsk - vs) * (vsk - vs);
        tr += g * q;
    }
    return var - tr;
}
