/*
 * Exact samples from p_t = Σ_k w_k N(α μ_k, C_k): sample i (global index sample0 + i) takes
 *   U = uniform(stream DIFFSDE_STREAM_MODEL, sample0 + i, step 1, coord 0),
 *   k = the first k with U < w_0 + … + w_k (the last component of positive weight if rounding
 *       leaves U above the final cumulative sum),
 *   z = normals(stream DIFFSDE_STREAM_MODEL, sample0 + i, step 0, coords 0..D−1),
 *   x = α μ_k + L_k z,  L_k the lower Cholesky factor of C_k(t),
 * so sample i depends only on (seed, sample0 + i, t), not on n or on how a batch is split.
 */
#include <cblas.h>
#include <string.h>

#include "gmm/gmm_impl.h"

/* Inverse CDF on the cumulative weights. */
static size_t pick(const diffsde_gmm *g, double u)
{
    size_t lo = 0, hi = g->K; /* answer in [lo, hi) if it exists */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (u < g->cumw[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    if (lo < g->K)
        return lo;
    size_t k = g->K - 1;
    while (k > 0 && !(g->weight[k] > 0))
        k--;
    return k;
}

int diffsde_gmm_sample(diffsde_gmm_eval *ev, const diffsde_noise *noise, double t, uint64_t sample0,
                       size_t n, double *x)
{
    static const char fn[] = "diffsde_gmm_sample";
    if (!ev)
        return DIFFSDE_ENULL;
    if (!noise || (!x && n > 0))
        return diffsde_i_fail(ev->ctx, DIFFSDE_ENULL, "%s: %s is NULL", fn, !noise ? "noise" : "x");
    if (ev->sde && !(t >= 0 && t <= ev->T))
        return diffsde_i_fail(ev->ctx, DIFFSDE_EDOM, "%s: t (%.17g) is outside [0, %g]", fn, t,
                              ev->T);
    if (n == 0)
        return DIFFSDE_OK;
    diffsde_i_gmm_factor *f;
    int st = diffsde_i_gmm_factor_get(ev, t, 0, &f, fn);
    if (st != DIFFSDE_OK)
        return st;
    const diffsde_gmm *g = ev->gmm;
    size_t D = ev->dim, B = DIFFSDE_I_GMM_BLOCK;
    double *u = ev->qn;
    for (size_t b0 = 0; b0 < n; b0 += B) {
        size_t nb = n - b0 < B ? n - b0 : B;
        double *xb = x + b0 * D;
        st = diffsde_noise_fill_uniform(noise, DIFFSDE_STREAM_MODEL, 1, sample0 + b0, nb, 1, u);
        if (st == DIFFSDE_OK)
            st = diffsde_noise_fill_normal(noise, DIFFSDE_STREAM_MODEL, 0, sample0 + b0, nb, D, xb);
        if (st != DIFFSDE_OK)
            return st;
        for (size_t b = 0; b < nb; b++) {
            size_t k = pick(g, u[b]);
            const double *L = f->L + k * D * D, *mu = g->mean + k * D;
            double *row = xb + b * D;
            if (D <= ev->small_dim_max) {
                /* row ← L row in place: x_j uses z_0..z_j, so go from the last j down */
                for (size_t j = D; j-- > 0;) {
                    double v = 0;
                    for (size_t l = 0; l <= j; l++)
                        v += L[j * D + l] * row[l];
                    row[j] = v;
                }
            } else {
                cblas_dtrmv(CblasRowMajor, CblasLower, CblasNoTrans, CblasNonUnit, (int)D, L,
                            (int)D, row, 1);
            }
            for (size_t j = 0; j < D; j++)
                row[j] += f->alpha * mu[j];
        }
    }
    return DIFFSDE_OK;
}
