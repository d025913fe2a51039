/*
 * Bayes posterior of a Gaussian-mixture prior under a linear-Gaussian observation
 *
 *     y = A x + n,   n ~ N(0, Σ_y),   x ~ Σ_k w_k N(μ_k, Σ_k),   A m × D (any shape).
 *
 * For each component k (Kalman update of one Gaussian, marginal likelihood for its weight):
 *
 *     S   = A Σ_k Aᵀ + Σ_y = L_S L_Sᵀ                   (m × m, Cholesky)
 *     Z   = L_S⁻¹ A Σ_k,   u = L_S⁻¹ (y − A μ_k)        (triangular solves)
 *     Gᵀ  = L_S⁻ᵀ Z = S⁻¹ A Σ_k                          (G = Σ_k Aᵀ S⁻¹, the gain)
 *     m_k = μ_k + G (y − A μ_k) = μ_k + Zᵀ u
 *     P_k = (I − G A) Σ_k (I − G A)ᵀ + G Σ_y Gᵀ          (Joseph form)
 *         = [(I − G A) L_k] [(I − G A) L_k]ᵀ + [G L_y] [G L_y]ᵀ
 *     log w'_k = log w_k − (m/2) log 2π − Σ_i log (L_S)_ii − ½ uᵀu   (+ const, normalised
 *                by the builder's log-sum-exp)
 *
 * with L_k the prior's Cholesky factor of Σ_k and L_y that of Σ_y. The Joseph form equals
 * Σ_k − G A Σ_k in exact arithmetic, but is a sum of two Gram matrices (two dsyrk calls), so it
 * stays symmetric positive semi-definite whatever the rounding in G, and it keeps the small
 * eigenvalues accurately when Σ_y is tiny (A = I, Σ_y = 1e-12 I: P ≈ Σ_y comes from G Σ_y Gᵀ,
 * not from the cancellation Σ_k − G A Σ_k between O(1) numbers).
 *
 * The log weights are handed to the builder as logs (diffsde_i_gmm_add_log), so a component
 * whose posterior weight underflows exp() keeps its exact log weight and its place: component k
 * of the posterior is always the update of component k of the prior.
 *
 * Factorisations use LAPACKE_dpotrf_work in column-major 'U' on the row-major arrays: for a
 * symmetric matrix that is the row-major lower factor, and the column-major path of LAPACKE
 * allocates nothing (all memory goes through the context allocator, once per call).
 */
#include <cblas.h>
#include <lapacke.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "gmm/gmm_impl.h"

#define FN "diffsde_gmm_posterior"

/* log 2π */
#define LOG_2PI 1.83787706640934548356

/* Relative asymmetry tolerated in noise_cov, as diffsde_gmm_add_full() does for Σ_k. */
#define SYM_RTOL 1e-12

/* Scratch of one call, carved from one allocation. */
typedef struct post_ws {
    size_t D, m;
    double *Ly;   /* m × m: lower Cholesky factor of Σ_y (strict upper part 0) */
    double *S;    /* m × m: A Σ_k Aᵀ + Σ_y, then its lower factor (lower part only) */
    double *G;    /* m × D: A Σ_k, then Z = L_S⁻¹ A Σ_k, then Gᵀ = S⁻¹ A Σ_k */
    double *u;    /* m: y − A μ_k, then L_S⁻¹ (y − A μ_k) */
    double *mean; /* D: m_k */
    double *B;    /* D × D: I − G A, then (I − G A) L_k */
    double *GL;   /* D × m: G L_y */
    double *P;    /* D × D: P_k */
} post_ws;

/* NaN/Inf in a rows × cols array named `name`: EPARAM naming the entry. */
static int check_finite(diffsde_ctx *ctx, const char *name, size_t rows, size_t cols,
                        const double *v)
{
    for (size_t i = 0; i < rows; i++)
        for (size_t j = 0; j < cols; j++)
            if (!isfinite(v[i * cols + j])) {
                if (rows == 1)
                    return diffsde_i_fail(ctx, DIFFSDE_EPARAM, "%s: %s[%zu] is not finite (%g)",
                                          FN, name, j, v[i * cols + j]);
                return diffsde_i_fail(ctx, DIFFSDE_EPARAM, "%s: %s[%zu][%zu] is not finite (%g)",
                                      FN, name, i, j, v[i * cols + j]);
            }
    return DIFFSDE_OK;
}

/* |C_ij − C_ji| ≤ SYM_RTOL · max|C| (C finite, m × m). */
static int check_symmetric(diffsde_ctx *ctx, size_t m, const double *C)
{
    double cmax = 0.0;
    for (size_t i = 0; i < m * m; i++)
        if (fabs(C[i]) > cmax)
            cmax = fabs(C[i]);
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < i; j++) {
            double d = fabs(C[i * m + j] - C[j * m + i]);
            if (d > SYM_RTOL * cmax)
                return diffsde_i_fail(ctx, DIFFSDE_EPARAM,
                                      "%s: noise_cov is not symmetric: |noise_cov[%zu][%zu] − "
                                      "noise_cov[%zu][%zu]| = %g > %g · max|noise_cov| = %g",
                                      FN, i, j, j, i, d, SYM_RTOL, SYM_RTOL * cmax);
        }
    return DIFFSDE_OK;
}

/* Bytes of scratch for D and m, or ESIZE on overflow (the message names D and m). */
static int ws_size(diffsde_ctx *ctx, size_t D, size_t m, size_t *bytes)
{
    size_t dd, md, mm, total = 0, part[8];
    if (diffsde_i_mul_size(D, D, &dd) || diffsde_i_mul_size(m, D, &md) ||
        diffsde_i_mul_size(m, m, &mm))
        goto overflow;
    /* Ly, S, G, u, mean, B, GL, P */
    part[0] = mm, part[1] = mm, part[2] = md, part[3] = m;
    part[4] = D, part[5] = dd, part[6] = md, part[7] = dd;
    for (int i = 0; i < 8; i++) {
        if (total > SIZE_MAX - part[i])
            goto overflow;
        total += part[i];
    }
    if (diffsde_i_mul_size(total, sizeof(double), bytes))
        goto overflow;
    return DIFFSDE_OK;
overflow:
    return diffsde_i_fail(ctx, DIFFSDE_ESIZE,
                          "%s: the scratch for m = %zu observations in dimension D = %zu "
                          "overflows size_t",
                          FN, m, D);
}

static void ws_carve(post_ws *w, double *block, size_t D, size_t m)
{
    w->D = D;
    w->m = m;
    w->Ly = block;
    w->S = w->Ly + m * m;
    w->G = w->S + m * m;
    w->u = w->G + m * D;
    w->mean = w->u + m;
    w->B = w->mean + D;
    w->GL = w->B + D * D;
    w->P = w->GL + D * m;
}

/* L_y: the lower Cholesky factor of the symmetric average of noise_cov (EPARAM if not SPD). */
static int factor_noise(diffsde_ctx *ctx, post_ws *w, const double *C)
{
    size_t m = w->m;
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < m; j++)
            w->Ly[i * m + j] = j <= i ? 0.5 * (C[i * m + j] + C[j * m + i]) : 0.0;
    /* column-major 'U' on row-major storage = row-major lower; the strict upper stays 0 */
    lapack_int info = LAPACKE_dpotrf_work(LAPACK_COL_MAJOR, 'U', (lapack_int)m, w->Ly,
                                          (lapack_int)m);
    if (info != 0)
        return diffsde_i_fail(ctx, DIFFSDE_EPARAM,
                              "%s: noise_cov is not positive definite (Cholesky fails at its "
                              "leading minor of order %d)",
                              FN, (int)info);
    return DIFFSDE_OK;
}

/*
 * Component k: factor S, whiten the residual, and return log w_k + log N(y; A μ_k, S) in
 * *log_weight; leaves Z = L_S⁻¹ A Σ_k in w->G and u = L_S⁻¹ (y − A μ_k) in w->u.
 */
static int innovation(diffsde_ctx *ctx, const diffsde_gmm *prior, size_t k, post_ws *w,
                      const double *A, const double *y, const double *C, double *log_weight)
{
    size_t D = w->D, m = w->m;
    const double *mu = prior->mean + k * D, *Sig = prior->cov + k * D * D;
    int iD = (int)D, im = (int)m;

    /* A Σ_k, then S = (A Σ_k) Aᵀ + Σ_y (lower triangle; only it is read) */
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, im, iD, iD, 1.0, A, iD, Sig, iD, 0.0,
                w->G, iD);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, im, im, iD, 1.0, w->G, iD, A, iD, 0.0,
                w->S, im);
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j <= i; j++) {
            w->S[i * m + j] += 0.5 * (C[i * m + j] + C[j * m + i]);
            if (!isfinite(w->S[i * m + j]))
                return diffsde_i_fail(ctx, DIFFSDE_EPARAM,
                                      "%s: A Σ_k Aᵀ + noise_cov overflows for component k = %zu "
                                      "(entry [%zu][%zu] = %g)",
                                      FN, k, i, j, w->S[i * m + j]);
        }
    lapack_int info = LAPACKE_dpotrf_work(LAPACK_COL_MAJOR, 'U', (lapack_int)m, w->S,
                                          (lapack_int)m);
    if (info != 0)
        return diffsde_i_fail(ctx, DIFFSDE_EPARAM,
                              "%s: A Σ_k Aᵀ + noise_cov is not numerically positive definite for "
                              "component k = %zu (Cholesky fails at order %d): noise_cov is too "
                              "small for the scale of A Σ_k Aᵀ",
                              FN, k, (int)info);

    /* Z = L_S⁻¹ A Σ_k; u = L_S⁻¹ (y − A μ_k) */
    cblas_dtrsm(CblasRowMajor, CblasLeft, CblasLower, CblasNoTrans, CblasNonUnit, im, iD, 1.0,
                w->S, im, w->G, iD);
    memcpy(w->u, y, m * sizeof *w->u);
    cblas_dgemv(CblasRowMajor, CblasNoTrans, im, iD, -1.0, A, iD, mu, 1, 1.0, w->u, 1);
    cblas_dtrsv(CblasRowMajor, CblasLower, CblasNoTrans, CblasNonUnit, im, w->S, im, w->u, 1);

    double logdet_half = 0.0;
    for (size_t i = 0; i < m; i++)
        logdet_half += log(w->S[i * m + i]);
    double q = cblas_ddot(im, w->u, 1, w->u, 1);
    double lw = prior->log_weight[k] - 0.5 * (double)m * LOG_2PI - logdet_half - 0.5 * q;
    if (!isfinite(lw))
        return diffsde_i_fail(ctx, DIFFSDE_EPARAM,
                              "%s: the log-likelihood of y under component k = %zu is not finite "
                              "(squared Mahalanobis distance %g): y is too far out",
                              FN, k, q);
    *log_weight = lw;
    return DIFFSDE_OK;
}

/* Posterior mean and covariance of component k, after innovation() (into w->mean, w->P). */
static void update(const diffsde_gmm *prior, size_t k, post_ws *w, const double *A)
{
    size_t D = w->D, m = w->m;
    const double *mu = prior->mean + k * D, *Lk = prior->chol + k * D * D;
    int iD = (int)D, im = (int)m;

    /* m_k = μ_k + Zᵀ u */
    memcpy(w->mean, mu, D * sizeof *w->mean);
    cblas_dgemv(CblasRowMajor, CblasTrans, im, iD, 1.0, w->G, iD, w->u, 1, 1.0, w->mean, 1);

    /* Gᵀ = L_S⁻ᵀ Z */
    cblas_dtrsm(CblasRowMajor, CblasLeft, CblasLower, CblasTrans, CblasNonUnit, im, iD, 1.0,
                w->S, im, w->G, iD);

    /* B = (I − G A) L_k */
    memset(w->B, 0, D * D * sizeof *w->B);
    for (size_t i = 0; i < D; i++)
        w->B[i * D + i] = 1.0;
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, iD, iD, im, -1.0, w->G, iD, A, iD, 1.0,
                w->B, iD);
    cblas_dtrmm(CblasRowMajor, CblasRight, CblasLower, CblasNoTrans, CblasNonUnit, iD, iD, 1.0,
                Lk, iD, w->B, iD);

    /* G L_y (L_y has a zero strict upper triangle) */
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, iD, im, im, 1.0, w->G, iD, w->Ly, im,
                0.0, w->GL, im);

    /* P = B Bᵀ + (G L_y)(G L_y)ᵀ, lower triangle, then mirrored: exactly symmetric */
    cblas_dsyrk(CblasRowMajor, CblasLower, CblasNoTrans, iD, iD, 1.0, w->B, iD, 0.0, w->P, iD);
    cblas_dsyrk(CblasRowMajor, CblasLower, CblasNoTrans, iD, im, 1.0, w->GL, im, 1.0, w->P, iD);
    for (size_t i = 0; i < D; i++)
        for (size_t j = i + 1; j < D; j++)
            w->P[i * D + j] = w->P[j * D + i];
}

int diffsde_gmm_posterior(const diffsde_gmm *prior, size_t m, const double *A, const double *y,
                          const double *noise_cov, diffsde_gmm **out)
{
    if (out)
        *out = NULL;
    if (!prior)
        return DIFFSDE_ENULL;
    diffsde_ctx *ctx = prior->ctx;
    if (!out || !A || !y || !noise_cov)
        return diffsde_i_fail(ctx, DIFFSDE_ENULL, "%s: %s is NULL", FN,
                              !out ? "out" : !A ? "A" : !y ? "y" : "noise_cov");
    if (!prior->finalized)
        return diffsde_i_fail(ctx, DIFFSDE_ESTATE, "%s: the prior is not finalised", FN);
    size_t D = prior->dim, K = prior->K;
    if (m == 0)
        return diffsde_i_fail(ctx, DIFFSDE_ESIZE, "%s: m (number of observations) is 0", FN);
    if (m > INT_MAX || D > INT_MAX)
        return diffsde_i_fail(ctx, DIFFSDE_ESIZE,
                              "%s: m = %zu or D = %zu exceeds the BLAS/LAPACK index range %d", FN,
                              m, D, INT_MAX);
    size_t bytes;
    int st = ws_size(ctx, D, m, &bytes);
    if (st != DIFFSDE_OK)
        return st;
    if ((st = check_finite(ctx, "A", m, D, A)) != DIFFSDE_OK ||
        (st = check_finite(ctx, "y", 1, m, y)) != DIFFSDE_OK ||
        (st = check_finite(ctx, "noise_cov", m, m, noise_cov)) != DIFFSDE_OK ||
        (st = check_symmetric(ctx, m, noise_cov)) != DIFFSDE_OK)
        return st;

    double *block = diffsde_i_alloc(ctx, bytes);
    if (!block)
        return diffsde_i_fail(ctx, DIFFSDE_ENOMEM, "%s: cannot allocate %zu bytes of scratch",
                              FN, bytes);
    post_ws w;
    ws_carve(&w, block, D, m);
    diffsde_gmm *post = NULL;
    if ((st = factor_noise(ctx, &w, noise_cov)) != DIFFSDE_OK)
        goto done;
    if ((st = diffsde_gmm_new(ctx, D, &post)) != DIFFSDE_OK) {
        diffsde_i_fail_prefix(ctx, st, "%s", FN);
        goto done;
    }
    for (size_t k = 0; k < K; k++) {
        double lw = 0.0;
        if ((st = innovation(ctx, prior, k, &w, A, y, noise_cov, &lw)) != DIFFSDE_OK)
            goto done;
        update(prior, k, &w, A);
        st = diffsde_i_gmm_add_log(post, lw, w.mean, w.P, FN);
        if (st == DIFFSDE_EPARAM) {
            diffsde_i_fail_prefix(ctx, st,
                                  "%s: the posterior of component k = %zu is not representable "
                                  "in double (noise_cov too small beside the prior's covariance "
                                  "along A, or overflow)",
                                  FN, k);
            goto done;
        }
        if (st != DIFFSDE_OK)
            goto done;
    }
    if ((st = diffsde_gmm_finalize(post)) != DIFFSDE_OK) {
        diffsde_i_fail_prefix(ctx, st, "%s", FN);
        goto done;
    }
    *out = post;
    post = NULL;
done:
    diffsde_gmm_free(post);
    diffsde_i_free(ctx, block);
    return st;
}
