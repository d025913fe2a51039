/*
 * The evaluator and the batched evaluation of p_t = Σ_k w_k N(α μ_k, C_k), C_k = α²Σ_k + σ²I.
 *
 * Points are grouped by equal t (within windows of DIFFSDE_I_GMM_BLOCK consecutive points, so
 * that no index array of size n is needed) and processed in blocks of at most
 * DIFFSDE_I_GMM_BLOCK points sharing one factorisation, by one of two paths:
 * - D ≤ small_dim_max (DIFFSDE_I_GMM_SMALL_DIM): evaluate_small.c, hand-written substitutions
 *   vectorised over the points and a two-pass log-sum-exp, computing only what is requested;
 * - larger D, here: for each component k the block's residual rows R = X − α μ_kᵀ are solved
 *   with two BLAS-3 triangular solves,
 *     Y = R L_k⁻ᵀ (rows L_k⁻¹ r: ‖y‖² is the Mahalanobis distance),  Z = Y L_k⁻¹ (rows C_k⁻¹ r),
 *   and the components are combined in one pass with a running log-sum-exp (the maximum log
 *   term so far, and weights w_k = exp(a_k − max) ≤ 1, rescaled when the maximum grows): the
 *   weighted sum A = Σ w_k s_k of the component scores s_k = −C_k⁻¹ r (so that s = A/W has
 *   rounding error ~ε Σ γ_k |s_k|, whatever the order of the components) and, for the
 *   divergence only, West's weighted update of S = Σ w_k ‖s_k − s‖² (non-negative terms).
 * Both paths form
 *     s   = Σ γ_k s_k                         (the weighted mean),
 *     div = Σ γ_k ‖s_k − s‖² − Σ γ_k tr C_k⁻¹  (= Σ γ_k (‖s_k‖² − tr C_k⁻¹) − ‖s‖²)
 * without the cancellation of ‖s‖² against Σ γ_k ‖s_k‖² far from the modes.
 *
 * Every point's arithmetic is independent of the rest of the batch (see solve_blas and
 * evaluate_small.c), so the results do not depend on how a batch is grouped or blocked.
 */
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "gmm/gmm_impl.h"

void diffsde_gmm_eval_free(diffsde_gmm_eval *ev)
{
    if (!ev)
        return;
    diffsde_ctx *ctx = ev->ctx;
    for (size_t i = 0; i < DIFFSDE_I_GMM_SLOTS; i++) {
        diffsde_i_free(ctx, ev->slot[i].L);
        diffsde_i_free(ctx, ev->slot[i].rdiag);
        diffsde_i_free(ctx, ev->slot[i].logc);
        diffsde_i_free(ctx, ev->slot[i].trinv);
    }
    diffsde_i_free(ctx, ev->xb);
    diffsde_i_free(ctx, ev->work);
    diffsde_i_free(ctx, ev->acc);
    diffsde_i_free(ctx, ev->lterm);
    diffsde_i_free(ctx, ev->pmax);
    diffsde_i_free(ctx, ev->wsum);
    diffsde_i_free(ctx, ev->dss);
    diffsde_i_free(ctx, ev->trw);
    diffsde_i_free(ctx, ev->qn);
    diffsde_i_free(ctx, ev->idx);
    diffsde_i_free(ctx, ev->done);
    diffsde_i_free(ctx, ev);
}

int diffsde_gmm_eval_new(const diffsde_gmm *gmm, const diffsde_sde *sde, diffsde_gmm_eval **out)
{
    static const char fn[] = "diffsde_gmm_eval_new";
    if (out)
        *out = NULL;
    if (!gmm)
        return DIFFSDE_ENULL;
    diffsde_ctx *ctx = gmm->ctx;
    if (!out)
        return diffsde_i_fail(ctx, DIFFSDE_ENULL, "%s: out is NULL", fn);
    if (!gmm->finalized)
        return diffsde_i_fail(ctx, DIFFSDE_ESTATE, "%s: the model is not finalised", fn);
    size_t D = gmm->dim, K = gmm->K, B = DIFFSDE_I_GMM_BLOCK, nmat, nkd, nbd, nbk;
    if (diffsde_i_mul_size(K, D * D, &nmat) || diffsde_i_mul_size(K, D, &nkd) ||
        diffsde_i_mul_size(B, D, &nbd) ||
        diffsde_i_mul_size(B, K, &nbk))
        return diffsde_i_fail(ctx, DIFFSDE_ESIZE,
                              "%s: %zu components of dimension %zu overflow size_t", fn, K, D);
    diffsde_gmm_eval *ev = diffsde_i_alloc(ctx, sizeof *ev);
    if (!ev)
        return diffsde_i_fail(ctx, DIFFSDE_ENOMEM, "%s: cannot allocate the evaluator", fn);
    memset(ev, 0, sizeof *ev);
    ev->gmm = gmm;
    ev->sde = sde;
    ev->ctx = ctx;
    ev->dim = D;
    ev->K = K;
    ev->T = 0;
    if (sde)
        diffsde_sde_time_range(sde, NULL, &ev->T);
    ev->small_dim_max = DIFFSDE_I_GMM_SMALL_DIM;
    int ok = 1;
    for (size_t i = 0; i < DIFFSDE_I_GMM_SLOTS && ok; i++) {
        ok = (ev->slot[i].L = diffsde_i_calloc(ctx, nmat, sizeof(double))) &&
             (ev->slot[i].rdiag = diffsde_i_calloc(ctx, nkd, sizeof(double))) &&
             (ev->slot[i].logc = diffsde_i_calloc(ctx, K, sizeof(double))) &&
             (ev->slot[i].trinv = diffsde_i_calloc(ctx, K, sizeof(double)));
    }
    ok = ok && (ev->xb = diffsde_i_calloc(ctx, nbd, sizeof(double))) &&
         (ev->work = diffsde_i_calloc(ctx, nbd, sizeof(double))) &&
         (ev->acc = diffsde_i_calloc(ctx, nbd, sizeof(double))) &&
         (ev->lterm = diffsde_i_calloc(ctx, nbk, sizeof(double))) &&
         (ev->pmax = diffsde_i_calloc(ctx, B, sizeof(double))) &&
         (ev->wsum = diffsde_i_calloc(ctx, B, sizeof(double))) &&
         (ev->dss = diffsde_i_calloc(ctx, B, sizeof(double))) &&
         (ev->trw = diffsde_i_calloc(ctx, B, sizeof(double))) &&
         (ev->qn = diffsde_i_calloc(ctx, B, sizeof(double))) &&
         (ev->idx = diffsde_i_calloc(ctx, B, sizeof(size_t))) &&
         (ev->done = diffsde_i_calloc(ctx, B, 1));
    if (!ok) {
        diffsde_gmm_eval_free(ev);
        return diffsde_i_fail(ctx, DIFFSDE_ENOMEM,
                              "%s: cannot allocate the factor cache and scratch (K = %zu, D = %zu)",
                              fn, K, D);
    }
    *out = ev;
    return DIFFSDE_OK;
}

/* Rows of W (nb × D) ← rows L⁻¹ w, qn[b] = ‖L⁻¹ w_b‖²; then, if back, rows L⁻ᵀ L⁻¹ w: two
 * cblas_dtrsm calls over the block. */
static void solve_blas(size_t nb, size_t D, const double *L, double *W, double *qn, int back)
{
    /* OpenBLAS's dtrsm computes a row by different code paths depending on where it falls
     * in the row count (a single row; the odd last row of the Haswell kernel), which changes
     * the last bits. Padding the rows with zeros to a multiple of DIFFSDE_I_GMM_PAD makes every
     * point's result independent of how a batch is grouped and blocked (B is a multiple of
     * the padding, so the scratch has room). */
    size_t m = (nb + DIFFSDE_I_GMM_PAD - 1) / DIFFSDE_I_GMM_PAD * DIFFSDE_I_GMM_PAD;
    if (m > nb)
        memset(W + nb * D, 0, (m - nb) * D * sizeof(double));
    cblas_dtrsm(CblasRowMajor, CblasRight, CblasLower, CblasTrans, CblasNonUnit, (int)m, (int)D,
                1.0, L, (int)D, W, (int)D);
    for (size_t b = 0; b < nb; b++) {
        const double *w = W + b * D;
        double q = 0;
        for (size_t j = 0; j < D; j++)
            q += w[j] * w[j];
        qn[b] = q;
    }
    if (back)
        cblas_dtrsm(CblasRowMajor, CblasRight, CblasLower, CblasNoTrans, CblasNonUnit, (int)m,
                    (int)D, 1.0, L, (int)D, W, (int)D);
}

/* Outputs requested by the caller. */
typedef struct outputs {
    double *logp, *score, *div, *resp;
} outputs;

/* ---- the BLAS path ----------------------------------------------------------------------- */

/*
 * Points ev->idx[0..nb) of x, all at the time of factor slot f, component by component with
 * two dtrsm over the block and a one-pass log-sum-exp (the O(K D) bookkeeping per point is
 * negligible beside the O(K D²) solves, and one pass needs no storage per component).
 */
static int block_blas(diffsde_gmm_eval *ev, const diffsde_i_gmm_factor *f, size_t nb,
                      const double *x, const outputs *o, const char *fn)
{
    const diffsde_gmm *g = ev->gmm;
    size_t D = ev->dim, K = ev->K;
    int need_z = o->score || o->div, need_div = o->div != NULL;
    double a = f->alpha;
    double *xb = ev->xb, *W = ev->work, *acc = ev->acc, *dss = ev->dss, *lt = ev->lterm;
    for (size_t b = 0; b < nb; b++) {
        memcpy(xb + b * D, x + ev->idx[b] * D, D * sizeof(double));
        ev->pmax[b] = -INFINITY;
        ev->wsum[b] = 0;
        ev->trw[b] = 0;
        dss[b] = 0;
    }
    for (size_t k = 0; k < K; k++) {
        const double *mu = g->mean + k * D, *L = f->L + k * D * D;
        for (size_t b = 0; b < nb; b++)
            for (size_t j = 0; j < D; j++)
                W[b * D + j] = xb[b * D + j] - a * mu[j];
        double *qn = ev->qn;
        solve_blas(nb, D, L, W, qn, need_z);
        for (size_t b = 0; b < nb; b++) {
            double lk = f->logc[k] - 0.5 * qn[b];
            lt[b * K + k] = lk;
            double w, m = ev->pmax[b];
            if (lk > m) {
                /* the terms so far, relative to the new maximum; below 1e-300 they are
                 * dropped (exactly 0 weight), so that 1/W below cannot overflow */
                double scale = exp(m - lk); /* 0 when m = −∞ */
                if (ev->wsum[b] * scale < 1e-300) {
                    ev->wsum[b] = 0;
                    dss[b] = 0;
                    ev->trw[b] = 0;
                } else {
                    ev->wsum[b] *= scale;
                    dss[b] *= scale;
                    ev->trw[b] *= scale;
                    if (need_z)
                        for (size_t j = 0; j < D; j++)
                            acc[b * D + j] *= scale;
                }
                ev->pmax[b] = lk;
                w = 1.0;
            } else {
                w = lk == -INFINITY ? 0.0 : exp(lk - m);
            }
            if (w == 0.0)
                continue;
            double wold = ev->wsum[b], wnew = wold + w;
            ev->wsum[b] = wnew;
            if (need_div)
                ev->trw[b] += w * f->trinv[k];
            if (!need_z)
                continue;
            /* s_k = −z. A = Σ w_k s_k (the mean is A/W); for div, West's update of the
             * squared deviations, S += w (W_old/W_new) ‖s_k − A/W_old‖², terms ≥ 0. */
            double *Ab = acc + b * D;
            const double *z = W + b * D;
            if (wold == 0 || !need_div) {
                if (wold == 0)
                    for (size_t j = 0; j < D; j++)
                        Ab[j] = -w * z[j];
                else
                    for (size_t j = 0; j < D; j++)
                        Ab[j] -= w * z[j];
                continue;
            }
            double inv = 1.0 / wold, d2 = 0;
            for (size_t j = 0; j < D; j++) {
                double d = -z[j] - Ab[j] * inv;
                Ab[j] -= w * z[j];
                d2 += d * d;
            }
            dss[b] += w * (wold / wnew) * d2;
        }
    }
    for (size_t b = 0; b < nb; b++) {
        size_t i = ev->idx[b];
        double lp = ev->pmax[b] + log(ev->wsum[b]);
        int bad = !isfinite(lp);
        if (o->logp)
            o->logp[i] = lp;
        if (o->score)
            for (size_t j = 0; j < D; j++) {
                double v = acc[b * D + j] / ev->wsum[b];
                o->score[i * D + j] = v;
                bad |= !isfinite(v);
            }
        if (o->div) {
            o->div[i] = dss[b] / ev->wsum[b] - ev->trw[b] / ev->wsum[b];
            bad |= !isfinite(o->div[i]);
        }
        if (o->resp)
            for (size_t k = 0; k < K; k++)
                o->resp[i * K + k] = exp(ev->lterm[b * K + k] - lp);
        if (bad)
            return diffsde_i_fail(ev->ctx, DIFFSDE_ENONFINITE,
                                  "%s: sample %zu at t = %.17g: log p_t = %g; the point is too "
                                  "far from every component for double precision",
                                  fn, i, f->t, lp);
    }
    return DIFFSDE_OK;
}

/* Evaluate the nb points ev->idx[0..nb) of x, all at time t0. */
static int process_block(diffsde_gmm_eval *ev, double t0, size_t nb, const double *x,
                         const outputs *o, const char *fn)
{
    diffsde_i_gmm_factor *f;
    int st = diffsde_i_gmm_factor_get(ev, t0, o->div != NULL, &f, fn);
    if (st != DIFFSDE_OK)
        return st;
    if (ev->dim > ev->small_dim_max)
        return block_blas(ev, f, nb, x, o, fn);
    return diffsde_i_gmm_eval_small(ev, f, nb, x, o->logp, o->score, o->div, o->resp, fn);
}

int diffsde_gmm_evaluate(diffsde_gmm_eval *ev, size_t n, const double *t, const double *x,
                         double *logp, double *score, double *div, double *resp)
{
    static const char fn[] = "diffsde_gmm_evaluate";
    if (!ev)
        return DIFFSDE_ENULL;
    if (n == 0)
        return DIFFSDE_OK;
    if (!x || (!t && ev->sde))
        return diffsde_i_fail(ev->ctx, DIFFSDE_ENULL, "%s: %s is NULL with n = %zu", fn,
                              !x ? "x" : "t", n);
    size_t D = ev->dim, B = DIFFSDE_I_GMM_BLOCK, nsame = 1; /* t[0..nsame) equal */
    while (ev->sde && nsame < n && t[nsame] == t[0])
        nsame++;
    int inputs_ok = (!ev->sde || (t[0] >= 0 && t[0] <= ev->T)) &&
                    diffsde_i_gmm_inputs_ok(n * D, x, n - nsame, ev->sde ? t + nsame : NULL,
                                            ev->T);
    for (size_t i = 0; !inputs_ok && i < n; i++) { /* find the first offender */
        int st = diffsde_i_gmm_check_time(ev, ev->sde ? t[i] : 0.0, i, fn);
        if (st != DIFFSDE_OK)
            return st;
        for (size_t j = 0; j < D; j++)
            if (!isfinite(x[i * D + j]))
                return diffsde_i_fail(ev->ctx, DIFFSDE_ENONFINITE,
                                      "%s: x[%zu][%zu] (sample %zu) is %g", fn, i, j, i,
                                      x[i * D + j]);
    }
    outputs o = {logp, score, div, resp};
    if (!logp && !score && !div && !resp)
        return DIFFSDE_OK;
    for (size_t w0 = 0; w0 < n; w0 += B) {
        size_t wn = n - w0 < B ? n - w0 : B, first = 0, same = 1;
        if (!ev->sde || w0 + wn <= nsame)
            same = wn;
        while (same < wn && t[w0 + same] == t[w0])
            same++;
        if (same == wn) { /* one time in the window (the usual case): one block */
            for (size_t j = 0; j < wn; j++)
                ev->idx[j] = w0 + j;
            int st = process_block(ev, ev->sde ? t[w0] : 0.0, wn, x, &o, fn);
            if (st != DIFFSDE_OK)
                return st;
            continue;
        }
        memset(ev->done, 0, wn);
        for (;;) {
            while (first < wn && ev->done[first])
                first++;
            if (first == wn)
                break;
            double t0 = ev->sde ? t[w0 + first] : 0.0;
            size_t nb = 0;
            for (size_t j = first; j < wn; j++)
                if (!ev->done[j] && (!ev->sde || t[w0 + j] == t0)) {
                    ev->done[j] = 1;
                    ev->idx[nb++] = w0 + j;
                }
            int st = process_block(ev, t0, nb, x, &o, fn);
            if (st != DIFFSDE_OK)
                return st;
        }
    }
    return DIFFSDE_OK;
}
