/*
 * Gaussian data for the flow-ODE tests: p0 = N(m, diag(v)), so p_t = N(α m, diag(α² v + σ²))
 * and the flow keeps each coordinate's standardised value u = (x − α m)/√(α² v + σ²)
 * constant: the exact flow map, score, divergence and log-density are closed forms.
 */
#ifndef DIFFSDE_ODE_TESTUTIL_H
#define DIFFSDE_ODE_TESTUTIL_H

#include <math.h>
#include <stddef.h>

#include "diffsde.h"

#define OTU_MAXD 16

typedef struct otu_gauss {
    const diffsde_sde *sde;
    size_t d;
    double m[OTU_MAXD];
    double v[OTU_MAXD]; /* variances of p0 */
    unsigned long calls; /* score callback invocations */
} otu_gauss;

/* Variance of coordinate j of p_t. */
static inline double otu_var(const otu_gauss *g, size_t j, double t)
{
    double a, s;
    diffsde_sde_alpha(g->sde, t, &a);
    diffsde_sde_sigma(g->sde, t, &s);
    return a * a * g->v[j] + s * s;
}

static inline int otu_score_cb(size_t n, size_t d, const double *t, const double *x, double *out,
                               void *user)
{
    otu_gauss *g = user;
    g->calls++;
    for (size_t i = 0; i < n; i++) {
        double a;
        diffsde_sde_alpha(g->sde, t[i], &a);
        for (size_t j = 0; j < d; j++)
            out[i * d + j] = -(x[i * d + j] - a * g->m[j]) / otu_var(g, j, t[i]);
    }
    return 0;
}

static inline int otu_div_cb(size_t n, size_t d, const double *t, const double *x, double *div,
                             void *user)
{
    (void)x;
    otu_gauss *g = user;
    for (size_t i = 0; i < n; i++) {
        double acc = 0.0;
        for (size_t j = 0; j < d; j++)
            acc -= 1.0 / otu_var(g, j, t[i]);
        div[i] = acc;
    }
    return 0;
}

static inline int otu_logp_cb(size_t n, size_t d, const double *t, const double *x, double *lp,
                              void *user)
{
    otu_gauss *g = user;
    for (size_t i = 0; i < n; i++) {
        double a;
        diffsde_sde_alpha(g->sde, t[i], &a);
        double acc = 0.0;
        for (size_t j = 0; j < d; j++) {
            double var = otu_var(g, j, t[i]), r = x[i * d + j] - a * g->m[j];
            acc += -0.5 * log(6.283185307179586 * var) - 0.5 * r * r / var;
        }
        lp[i] = acc;
    }
    return 0;
}

/* The exact flow map of one row from t0 to t1. */
static inline void otu_flow(const otu_gauss *g, double t0, double t1, const double *x0,
                            double *x1)
{
    double a0, a1;
    diffsde_sde_alpha(g->sde, t0, &a0);
    diffsde_sde_alpha(g->sde, t1, &a1);
    for (size_t j = 0; j < g->d; j++) {
        double u = (x0[j] - a0 * g->m[j]) / sqrt(otu_var(g, j, t0));
        x1[j] = a1 * g->m[j] + sqrt(otu_var(g, j, t1)) * u;
    }
}

/* A model for g with the score, divergence and log-density callbacks (caller frees). */
static inline diffsde_score *otu_model(diffsde_ctx *ctx, otu_gauss *g)
{
    diffsde_score *s = NULL;
    if (diffsde_score_new(ctx, otu_score_cb, g, DIFFSDE_PARAM_SCORE, &s) != DIFFSDE_OK)
        return NULL;
    diffsde_score_set_divergence(s, otu_div_cb);
    diffsde_score_set_logp(s, otu_logp_cb);
    return s;
}

/* A 2-D problem with well-separated scales: m = (1, −0.5), v = (0.25, 2). */
static inline void otu_gauss_default(otu_gauss *g, const diffsde_sde *sde)
{
    g->sde = sde;
    g->d = 2;
    g->m[0] = 1.0;
    g->m[1] = -0.5;
    g->v[0] = 0.25;
    g->v[1] = 2.0;
    g->calls = 0;
}

#endif /* DIFFSDE_ODE_TESTUTIL_H */
