/*
 * The Gaussian-mixture model: builder (new, add_*, finalize), accessors and the closed-form
 * moments of p_t. Each covariance is checked (finite, symmetric, positive definite by its
 * Cholesky factorisation) when its component is added; the factor is kept for the evaluator,
 * the sampler and the posterior.
 */
#include <float.h>
#include <lapacke.h>
#include <math.h>
#include <string.h>

#include "gmm/gmm_impl.h"

/* How the covariance of a component being added is given. */
enum cov_form { COV_FULL, COV_DIAG, COV_ISO };

int diffsde_i_gmm_coefs(diffsde_ctx *ctx, const diffsde_sde *sde, double t, double *alpha,
                        double *sigma, const char *fn)
{
    if (!sde) {
        *alpha = 1.0;
        *sigma = 0.0;
        return DIFFSDE_OK;
    }
    diffsde_sde_coefs c;
    int st = diffsde_sde_coefs_at(sde, t, &c);
    if (st != DIFFSDE_OK) {
        diffsde_ctx *sctx = diffsde_i_sde_ctx(sde);
        if (sctx == ctx)
            return diffsde_i_fail_prefix(ctx, st, "%s", fn);
        char msg[DIFFSDE_ERRMSG_CAPACITY];
        if (diffsde_errmsg_copy(sctx, msg, sizeof msg) == DIFFSDE_ENULL)
            msg[0] = '\0';
        return diffsde_i_fail(ctx, st, "%s: %s", fn, msg);
    }
    *alpha = c.alpha;
    *sigma = c.sigma;
    return DIFFSDE_OK;
}

int diffsde_gmm_new(diffsde_ctx *ctx, size_t dim, diffsde_gmm **out)
{
    static const char fn[] = "diffsde_gmm_new";
    if (out)
        *out = NULL;
    if (!ctx)
        return DIFFSDE_ENULL;
    if (!out)
        return diffsde_i_fail(ctx, DIFFSDE_ENULL, "%s: out is NULL", fn);
    size_t d2, bytes;
    if (dim == 0)
        return diffsde_i_fail(ctx, DIFFSDE_ESIZE, "%s: dim (0) must be >= 1", fn);
    if (diffsde_i_mul_size(dim, dim, &d2) || diffsde_i_mul_size(d2, sizeof(double), &bytes))
        return diffsde_i_fail(ctx, DIFFSDE_ESIZE, "%s: dim (%zu): a D x D matrix overflows size_t",
                              fn, dim);
    diffsde_gmm *g = diffsde_i_alloc(ctx, sizeof *g);
    if (!g)
        return diffsde_i_fail(ctx, DIFFSDE_ENOMEM, "%s: cannot allocate the model (%zu bytes)", fn,
                              sizeof *g);
    memset(g, 0, sizeof *g);
    g->ctx = ctx;
    g->dim = dim;
    *out = g;
    return DIFFSDE_OK;
}

void diffsde_gmm_free(diffsde_gmm *gmm)
{
    if (!gmm)
        return;
    diffsde_ctx *ctx = gmm->ctx;
    diffsde_i_free(ctx, gmm->log_weight);
    diffsde_i_free(ctx, gmm->mean);
    diffsde_i_free(ctx, gmm->cov);
    diffsde_i_free(ctx, gmm->chol);
    diffsde_i_free(ctx, gmm->logdet);
    diffsde_i_free(ctx, gmm->weight);
    diffsde_i_free(ctx, gmm->cumw);
    diffsde_i_free(ctx, gmm);
}

/* Make room for one more component; the model is unchanged on failure. */
static int grow(diffsde_gmm *g, const char *fn)
{
    if (g->K < g->cap)
        return DIFFSDE_OK;
    size_t D = g->dim, d2 = D * D; /* D² fits: checked by diffsde_gmm_new */
    size_t cap = g->cap ? 2 * g->cap : (d2 <= 4096 ? 8 : 1);
    size_t nmat, bmat, bvec, nmean, bmean;
    if (cap < g->cap || diffsde_i_mul_size(cap, d2, &nmat) ||
        diffsde_i_mul_size(nmat, sizeof(double), &bmat) ||
        diffsde_i_mul_size(cap, sizeof(double), &bvec) || diffsde_i_mul_size(cap, D, &nmean) ||
        diffsde_i_mul_size(nmean, sizeof(double), &bmean))
        return diffsde_i_fail(g->ctx, DIFFSDE_ESIZE,
                              "%s: component %zu: %zu components of dimension %zu overflow size_t",
                              fn, g->K, cap, D);
    double *lw = diffsde_i_alloc(g->ctx, bvec);
    double *mean = diffsde_i_alloc(g->ctx, bmean);
    double *cov = diffsde_i_alloc(g->ctx, bmat);
    double *chol = diffsde_i_alloc(g->ctx, bmat);
    double *ld = diffsde_i_alloc(g->ctx, bvec);
    if (!lw || !mean || !cov || !chol || !ld) {
        diffsde_i_free(g->ctx, lw);
        diffsde_i_free(g->ctx, mean);
        diffsde_i_free(g->ctx, cov);
        diffsde_i_free(g->ctx, chol);
        diffsde_i_free(g->ctx, ld);
        return diffsde_i_fail(g->ctx, DIFFSDE_ENOMEM,
                              "%s: component %zu: cannot grow the model to %zu components", fn,
                              g->K, cap);
    }
    if (g->K) {
        memcpy(lw, g->log_weight, g->K * sizeof(double));
        memcpy(mean, g->mean, g->K * D * sizeof(double));
        memcpy(cov, g->cov, g->K * d2 * sizeof(double));
        memcpy(chol, g->chol, g->K * d2 * sizeof(double));
        memcpy(ld, g->logdet, g->K * sizeof(double));
    }
    diffsde_i_free(g->ctx, g->log_weight);
    diffsde_i_free(g->ctx, g->mean);
    diffsde_i_free(g->ctx, g->cov);
    diffsde_i_free(g->ctx, g->chol);
    diffsde_i_free(g->ctx, g->logdet);
    g->log_weight = lw;
    g->mean = mean;
    g->cov = cov;
    g->chol = chol;
    g->logdet = ld;
    g->cap = cap;
    return DIFFSDE_OK;
}

/* Check everything that needs no storage; messages name the component and the field. */
static int check_input(const diffsde_gmm *g, const double *mean, enum cov_form form,
                       const double *cov, double var, const char *fn)
{
    size_t D = g->dim, k = g->K;
    for (size_t j = 0; j < D; j++)
        if (!isfinite(mean[j]))
            return diffsde_i_fail(g->ctx, DIFFSDE_EPARAM,
                                  "%s: component %zu: mean[%zu] (%g) is not finite", fn, k, j,
                                  mean[j]);
    if (form == COV_ISO) {
        if (!(var > 0) || !isfinite(var))
            return diffsde_i_fail(g->ctx, DIFFSDE_EPARAM,
                                  "%s: component %zu: var (%g) must be > 0 and finite", fn, k, var);
        return DIFFSDE_OK;
    }
    if (form == COV_DIAG) {
        for (size_t j = 0; j < D; j++)
            if (!(cov[j] > 0) || !isfinite(cov[j]))
                return diffsde_i_fail(g->ctx, DIFFSDE_EPARAM,
                                      "%s: component %zu: diag[%zu] (%g) must be > 0 and finite",
                                      fn, k, j, cov[j]);
        return DIFFSDE_OK;
    }
    double cmax = 0;
    for (size_t i = 0; i < D * D; i++) {
        if (!isfinite(cov[i]))
            return diffsde_i_fail(g->ctx, DIFFSDE_EPARAM,
                                  "%s: component %zu: cov[%zu][%zu] (%g) is not finite", fn, k,
                                  i / D, i % D, cov[i]);
        if (fabs(cov[i]) > cmax)
            cmax = fabs(cov[i]);
    }
    for (size_t i = 0; i < D; i++)
        for (size_t j = 0; j < i; j++) {
            double a = cov[i * D + j], b = cov[j * D + i];
            if (fabs(a - b) > 1e-12 * cmax)
                return diffsde_i_fail(g->ctx, DIFFSDE_EPARAM,
                                      "%s: component %zu: cov is not symmetric: cov[%zu][%zu] = "
                                      "%.17g but cov[%zu][%zu] = %.17g (tolerance 1e-12 * %g)",
                                      fn, k, i, j, a, j, i, b, cmax);
        }
    return DIFFSDE_OK;
}

static int add_component(diffsde_gmm *g, double log_weight, const double *mean, enum cov_form form,
                         const double *cov, double var, const char *fn)
{
    if (g->finalized)
        return diffsde_i_fail(g->ctx, DIFFSDE_ESTATE,
                              "%s: component %zu: the model is already finalised", fn, g->K);
    int st = check_input(g, mean, form, cov, var, fn);
    if (st == DIFFSDE_OK)
        st = grow(g, fn);
    if (st != DIFFSDE_OK)
        return st;
    size_t D = g->dim, d2 = D * D, k = g->K;
    double *S = g->cov + k * d2, *L = g->chol + k * d2;
    for (size_t i = 0; i < D; i++)
        for (size_t j = 0; j < D; j++) {
            double v;
            if (form == COV_FULL)
                v = i == j ? cov[i * D + i] : 0.5 * (cov[i * D + j] + cov[j * D + i]);
            else if (i != j)
                v = 0.0;
            else
                v = form == COV_DIAG ? cov[i] : var;
            S[i * D + j] = v;
            L[i * D + j] = j <= i ? v : 0.0;
        }
    /* Column-major 'U' on the row-major array is the row-major lower factor; unlike the
     * row-major LAPACKE entry it needs no hidden copy (no allocation outside our allocator). */
    lapack_int info =
        LAPACKE_dpotrf_work(LAPACK_COL_MAJOR, 'U', (lapack_int)D, L, (lapack_int)D);
    if (info != 0)
        return diffsde_i_fail(g->ctx, DIFFSDE_EPARAM,
                              "%s: component %zu: cov is not positive definite (Cholesky "
                              "factorisation fails at leading minor %d)",
                              fn, k, (int)info);
    double ld = 0;
    for (size_t j = 0; j < D; j++)
        ld += log(L[j * D + j]);
    memcpy(g->mean + k * D, mean, D * sizeof(double));
    g->log_weight[k] = log_weight;
    g->logdet[k] = 2.0 * ld;
    g->K = k + 1;
    return DIFFSDE_OK;
}

/* NULL checks shared by the add_* functions. */
static int check_add_args(diffsde_gmm *gmm, const double *mean, const double *cov,
                          const char *covname, const char *fn)
{
    if (!gmm)
        return DIFFSDE_ENULL;
    if (!mean || !cov)
        return diffsde_i_fail(gmm->ctx, DIFFSDE_ENULL, "%s: component %zu: %s is NULL", fn, gmm->K,
                              !mean ? "mean" : covname);
    return DIFFSDE_OK;
}

static int check_weight(const diffsde_gmm *gmm, double weight, const char *fn)
{
    if (!(weight > 0) || !isfinite(weight))
        return diffsde_i_fail(gmm->ctx, DIFFSDE_EPARAM,
                              "%s: component %zu: weight (%g) must be > 0 and finite", fn, gmm->K,
                              weight);
    return DIFFSDE_OK;
}

int diffsde_i_gmm_add_log(diffsde_gmm *gmm, double log_weight, const double *mean,
                          const double *cov, const char *fn)
{
    int st = check_add_args(gmm, mean, cov, "cov", fn);
    if (st != DIFFSDE_OK)
        return st;
    if (!isfinite(log_weight))
        return diffsde_i_fail(gmm->ctx, DIFFSDE_EPARAM,
                              "%s: component %zu: log weight (%g) is not finite", fn, gmm->K,
                              log_weight);
    return add_component(gmm, log_weight, mean, COV_FULL, cov, 0, fn);
}

int diffsde_gmm_add_full(diffsde_gmm *gmm, double weight, const double *mean, const double *cov)
{
    static const char fn[] = "diffsde_gmm_add_full";
    int st = check_add_args(gmm, mean, cov, "cov", fn);
    if (st == DIFFSDE_OK)
        st = check_weight(gmm, weight, fn);
    if (st != DIFFSDE_OK)
        return st;
    return add_component(gmm, log(weight), mean, COV_FULL, cov, 0, fn);
}

int diffsde_gmm_add_diag(diffsde_gmm *gmm, double weight, const double *mean, const double *diag)
{
    static const char fn[] = "diffsde_gmm_add_diag";
    int st = check_add_args(gmm, mean, diag, "diag", fn);
    if (st == DIFFSDE_OK)
        st = check_weight(gmm, weight, fn);
    if (st != DIFFSDE_OK)
        return st;
    return add_component(gmm, log(weight), mean, COV_DIAG, diag, 0, fn);
}

int diffsde_gmm_add_iso(diffsde_gmm *gmm, double weight, const double *mean, double var)
{
    static const char fn[] = "diffsde_gmm_add_iso";
    double dummy = 0;
    int st = check_add_args(gmm, mean, &dummy, "", fn);
    if (st == DIFFSDE_OK)
        st = check_weight(gmm, weight, fn);
    if (st != DIFFSDE_OK)
        return st;
    return add_component(gmm, log(weight), mean, COV_ISO, NULL, var, fn);
}

int diffsde_gmm_finalize(diffsde_gmm *gmm)
{
    static const char fn[] = "diffsde_gmm_finalize";
    if (!gmm)
        return DIFFSDE_ENULL;
    if (gmm->finalized)
        return diffsde_i_fail(gmm->ctx, DIFFSDE_ESTATE, "%s: the model is already finalised", fn);
    if (gmm->K == 0)
        return diffsde_i_fail(gmm->ctx, DIFFSDE_ESTATE,
                              "%s: the model has no components (add at least one)", fn);
    size_t K = gmm->K;
    double *w = diffsde_i_alloc(gmm->ctx, K * sizeof(double));
    double *cw = diffsde_i_alloc(gmm->ctx, K * sizeof(double));
    if (!w || !cw) {
        diffsde_i_free(gmm->ctx, w);
        diffsde_i_free(gmm->ctx, cw);
        return diffsde_i_fail(gmm->ctx, DIFFSDE_ENOMEM,
                              "%s: cannot allocate the weights of %zu components", fn, K);
    }
    double m = -INFINITY;
    for (size_t k = 0; k < K; k++)
        if (gmm->log_weight[k] > m)
            m = gmm->log_weight[k];
    double s = 0;
    for (size_t k = 0; k < K; k++)
        s += exp(gmm->log_weight[k] - m);
    double lse = m + log(s), c = 0;
    for (size_t k = 0; k < K; k++) {
        gmm->log_weight[k] -= lse;
        w[k] = exp(gmm->log_weight[k]);
        c += w[k];
        cw[k] = c;
    }
    gmm->weight = w;
    gmm->cumw = cw;
    gmm->finalized = 1;
    return DIFFSDE_OK;
}

size_t diffsde_gmm_dim(const diffsde_gmm *gmm)
{
    return gmm ? gmm->dim : 0;
}

size_t diffsde_gmm_ncomponents(const diffsde_gmm *gmm)
{
    return gmm ? gmm->K : 0;
}

int diffsde_gmm_component(const diffsde_gmm *gmm, size_t k, double *weight, double *mean,
                          double *cov)
{
    static const char fn[] = "diffsde_gmm_component";
    if (!gmm)
        return DIFFSDE_ENULL;
    if (!gmm->finalized)
        return diffsde_i_fail(gmm->ctx, DIFFSDE_ESTATE, "%s: the model is not finalised", fn);
    if (k >= gmm->K)
        return diffsde_i_fail(gmm->ctx, DIFFSDE_ERANGE,
                              "%s: k (%zu) must be < the number of components (%zu)", fn, k,
                              gmm->K);
    size_t D = gmm->dim;
    if (weight)
        *weight = gmm->weight[k];
    if (mean)
        memcpy(mean, gmm->mean + k * D, D * sizeof(double));
    if (cov)
        memcpy(cov, gmm->cov + k * D * D, D * D * sizeof(double));
    return DIFFSDE_OK;
}

/* m̄_i = Σ_k w_k μ_k[i]. */
static double mixture_mean(const diffsde_gmm *g, size_t i)
{
    double s = 0;
    for (size_t k = 0; k < g->K; k++)
        s += g->weight[k] * g->mean[k * g->dim + i];
    return s;
}

int diffsde_gmm_moments(const diffsde_gmm *gmm, const diffsde_sde *sde, double t, double *mean,
                        double *cov)
{
    static const char fn[] = "diffsde_gmm_moments";
    if (!gmm)
        return DIFFSDE_ENULL;
    if (!gmm->finalized)
        return diffsde_i_fail(gmm->ctx, DIFFSDE_ESTATE, "%s: the model is not finalised", fn);
    double a, s;
    int st = diffsde_i_gmm_coefs(gmm->ctx, sde, t, &a, &s, fn);
    if (st != DIFFSDE_OK)
        return st;
    size_t D = gmm->dim, K = gmm->K;
    if (mean)
        for (size_t i = 0; i < D; i++)
            mean[i] = a * mixture_mean(gmm, i);
    if (!cov)
        return DIFFSDE_OK;
    /* α² Σ_k w_k (Σ_k + (μ_k − m̄)(μ_k − m̄)ᵀ) + σ² I: the between-component part as a sum of
     * squares, without the cancellation of E[x xᵀ] − m mᵀ. */
    for (size_t i = 0; i < D; i++) {
        double mi = mixture_mean(gmm, i);
        for (size_t j = 0; j <= i; j++) {
            double mj = mixture_mean(gmm, j), c = 0;
            for (size_t k = 0; k < K; k++) {
                const double *mu = gmm->mean + k * D;
                c += gmm->weight[k] *
                     (gmm->cov[k * D * D + i * D + j] + (mu[i] - mi) * (mu[j] - mj));
            }
            c *= a * a;
            if (i == j)
                c += s * s;
            cov[i * D + j] = c;
            cov[j * D + i] = c;
        }
    }
    return DIFFSDE_OK;
}

diffsde_ctx *diffsde_i_gmm_ctx(const struct diffsde_gmm *gmm)
{
    return gmm->ctx;
}

int diffsde_i_gmm_finalized(const struct diffsde_gmm *gmm)
{
    return gmm->finalized;
}
