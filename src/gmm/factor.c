/*
 * The evaluator's per-t factor cache: for the two most recently used distinct times, the
 * lower Cholesky factors L_k of C_k(t) = α²Σ_k + σ²I (dpotrf on the lower triangle), the
 * reciprocals of their diagonals, the log normalising constants
 * log w_k − ½ log det C_k − (D/2) log 2π and, on demand, tr C_k⁻¹.
 *
 * C_k(t) is SPD for every t: Σ_k is SPD (checked when added) and α > 0, σ ≥ 0, so for t → 0
 * (σ → 0) the factorisation tends to that of α²Σ_k and stays defined even when Σ_k is nearly
 * singular; dpotrf can only fail when rounding destroys definiteness (condition ≳ 1/ε), which
 * is reported as DIFFSDE_ECONVERGENCE.
 */
#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <string.h>

#include "gmm/gmm_impl.h"

/* log(2π) */
#define LOG_2PI 1.8378770664093454835606594728112

int diffsde_i_gmm_check_time(const diffsde_gmm_eval *ev, double t, size_t i, const char *fn)
{
    if (!ev->sde)
        return DIFFSDE_OK;
    if (!(t >= 0 && t <= ev->T))
        return diffsde_i_fail(ev->ctx, DIFFSDE_EDOM, "%s: t[%zu] (%.17g) is outside [0, %g]", fn, i,
                              t, ev->T);
    return DIFFSDE_OK;
}

/* tr C_k⁻¹ = ‖L_k⁻¹‖_F² = Σ_j ‖L_k⁻¹ e_j‖², the unit vectors solved in blocks of rows of
 * ev->work: row e_jᵀ L⁻ᵀ = (L⁻¹ e_j)ᵀ. */
static void compute_trinv(diffsde_gmm_eval *ev, diffsde_i_gmm_factor *f)
{
    size_t D = ev->dim, B = DIFFSDE_I_GMM_BLOCK;
    for (size_t k = 0; k < ev->K; k++) {
        const double *L = f->L + k * D * D;
        double tr = 0;
        for (size_t j0 = 0; j0 < D; j0 += B) {
            size_t nb = D - j0 < B ? D - j0 : B;
            memset(ev->work, 0, nb * D * sizeof(double));
            for (size_t r = 0; r < nb; r++)
                ev->work[r * D + j0 + r] = 1.0;
            cblas_dtrsm(CblasRowMajor, CblasRight, CblasLower, CblasTrans, CblasNonUnit,
                        (blasint)nb, (blasint)D, 1.0, L, (blasint)D, ev->work, (blasint)D);
            for (size_t r = 0; r < nb * D; r++)
                tr += ev->work[r] * ev->work[r];
        }
        f->trinv[k] = tr;
    }
    f->have_trinv = 1;
}

/* Factorise every C_k at t into slot f; on failure the slot is left invalid. */
static int compute_factors(diffsde_gmm_eval *ev, diffsde_i_gmm_factor *f, double t, const char *fn)
{
    const diffsde_gmm *g = ev->gmm;
    size_t D = ev->dim, d2 = D * D;
    double a, s;
    f->valid = 0;
    f->have_trinv = 0;
    int st = diffsde_i_gmm_coefs(ev->ctx, ev->sde, t, &a, &s, fn);
    if (st != DIFFSDE_OK)
        return st;
    double a2 = a * a, s2 = s * s;
    for (size_t k = 0; k < ev->K; k++) {
        double *L = f->L + k * d2;
        const double *S = g->cov + k * d2;
        if (!ev->sde) {
            memcpy(L, g->chol + k * d2, d2 * sizeof(double));
        } else {
            for (size_t i = 0; i < D; i++) {
                for (size_t j = 0; j < i; j++)
                    L[i * D + j] = a2 * S[i * D + j];
                L[i * D + i] = a2 * S[i * D + i] + s2;
                for (size_t j = i + 1; j < D; j++)
                    L[i * D + j] = 0.0;
            }
            /* Column-major 'U' on the row-major array is the row-major lower factor; unlike the
             * row-major LAPACKE entry it needs no hidden copy (no allocation outside our allocator). */
            lapack_int info =
                LAPACKE_dpotrf_work(LAPACK_COL_MAJOR, 'U', (lapack_int)D, L, (lapack_int)D);
            /* dpotrf does not see overflow (α²Σ = inf passes through): check the factor. */
            for (size_t j = 0; info == 0 && j < D; j++)
                if (!(isfinite(L[j * D + j]) && L[j * D + j] > 0))
                    info = (lapack_int)(j + 1);
            if (info != 0)
                return diffsde_i_fail(ev->ctx, DIFFSDE_ECONVERGENCE,
                                      "%s: component %zu: Cholesky factorisation of "
                                      "alpha^2 Sigma_k + sigma^2 I failed at t = %.17g "
                                      "(alpha = %.17g, sigma = %.17g, dpotrf info %d)",
                                      fn, k, t, a, s, (int)info);
        }
        double ld = 0, *rd = f->rdiag + k * D;
        for (size_t j = 0; j < D; j++) {
            ld += log(L[j * D + j]);
            rd[j] = 1.0 / L[j * D + j];
        }
        f->logc[k] = g->log_weight[k] - ld - 0.5 * (double)D * LOG_2PI;
    }
    f->t = t;
    f->alpha = a;
    f->sigma = s;
    f->valid = 1;
    return DIFFSDE_OK;
}

int diffsde_i_gmm_factor_get(diffsde_gmm_eval *ev, double t, int need_trinv,
                             diffsde_i_gmm_factor **out, const char *fn)
{
    if (!ev->sde)
        t = 0.0;
    diffsde_i_gmm_factor *f = NULL;
    for (size_t i = 0; i < DIFFSDE_I_GMM_SLOTS; i++)
        if (ev->slot[i].valid && ev->slot[i].t == t)
            f = &ev->slot[i];
    if (!f) {
        /* an unused slot, else the least recently used one */
        f = &ev->slot[0];
        for (size_t i = 1; i < DIFFSDE_I_GMM_SLOTS; i++) {
            diffsde_i_gmm_factor *c = &ev->slot[i];
            if (!f->valid)
                break;
            if (!c->valid || c->stamp < f->stamp)
                f = c;
        }
        int st = compute_factors(ev, f, t, fn);
        if (st != DIFFSDE_OK)
            return st;
    }
    if (need_trinv && !f->have_trinv)
        compute_trinv(ev, f);
    f->stamp = ++ev->clock;
    *out = f;
    return DIFFSDE_OK;
}
