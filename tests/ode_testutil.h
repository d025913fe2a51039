/*
 * Gaussian data for the flow-ODE tests: p0 = N(m, diag(v)), so p_t = N(α m, diag(α² v + σ²))
 * and the flow keeps each coordinate's standardised value u = (x − α m)/√(α² v + σ²)
 * constant: the exact flow map, score, divergence and log-density are closed forms.
 * Also the set-up the ODE and likelihood tests share: status and message assertions, the
 * fixture search path and the three default SDEs.
 */
#ifndef DIFFSDE_ODE_TESTUTIL_H
#define DIFFSDE_ODE_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diffsde.h"

#ifndef FIXTURES_DIR
#define FIXTURES_DIR "../shared/fixtures"
#endif

/* Assert that expr returns DIFFSDE_OK, printing the status and ctx's message if not. */
#define otu_ok(expr, ctx)                                                                    \
    do {                                                                                     \
        int st_ = (expr);                                                                    \
        if (st_ != DIFFSDE_OK)                                                               \
            print_error("%s -> %s: %s\n", #expr, diffsde_status_name(st_), diffsde_errmsg(ctx)); \
        assert_int_equal(st_, DIFFSDE_OK);                                                   \
    } while (0)

static inline void otu_assert_msg_has(const diffsde_ctx *ctx, const char *needle)
{
    const char *m = diffsde_errmsg(ctx);
    if (!strstr(m, needle)) {
        print_error("message \"%s\" lacks \"%s\"\n", m, needle);
        fail();
    }
}

static inline void otu_assert_msg_starts(const diffsde_ctx *ctx, const char *prefix)
{
    const char *m = diffsde_errmsg(ctx);
    if (strncmp(m, prefix, strlen(prefix)) != 0) {
        print_error("message \"%s\" does not start with \"%s\"\n", m, prefix);
        fail();
    }
}

/* Path of a fixture: $DIFFSDE_FIXTURES, $top_srcdir/tests/fixtures, the Makefile's
 * DIFFSDE_TEST_FIXTURES_DIR, beside this file,
 * ./tests/fixtures, the shared originals beside the source tree and beside this file, then
 * FIXTURES_DIR. Fails the test when none has it. */
static inline void otu_fixture_path(const char *name, char *path, size_t len)
{
    char here[2000], top[4000], shared[4000], shared_here[2100];
    const char *env = getenv("DIFFSDE_FIXTURES"), *src = getenv("top_srcdir");
    snprintf(top, sizeof top, "%s/tests/fixtures", src ? src : ".");
    snprintf(shared, sizeof shared, "%s/../shared/fixtures", src ? src : ".");
    snprintf(here, sizeof here, "%s", __FILE__);
    char *slash = strrchr(here, '/');
    if (slash)
        *slash = '\0';
    else
        snprintf(here, sizeof here, ".");
    snprintf(shared_here, sizeof shared_here, "%s/../../shared/fixtures", here);
    strncat(here, "/fixtures", sizeof here - strlen(here) - 1);
    const char *dirs[] = {env && *env ? env : top, top,
#ifdef DIFFSDE_TEST_FIXTURES_DIR
                          DIFFSDE_TEST_FIXTURES_DIR,
#endif
                          here, "tests/fixtures", shared, shared_here, FIXTURES_DIR};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        snprintf(path, len, "%s/%s", dirs[i], name);
        FILE *f = fopen(path, "rb");
        if (f) {
            fclose(f);
            return;
        }
    }
    print_error("fixture %s not found (set DIFFSDE_FIXTURES)\n", name);
    fail();
}

/* The default VE, VP and sub-VP SDEs, in the order the ODE tests index them. Nonzero on
 * failure (those made so far are in sde[] for otu_sdes_free). */
#define OTU_NSDE 3
static inline int otu_sdes_new(diffsde_ctx *ctx, diffsde_sde *sde[OTU_NSDE])
{
    static const char *const names[OTU_NSDE] = {"ve", "vp", "subvp"};
    for (int k = 0; k < OTU_NSDE; k++)
        sde[k] = NULL;
    for (int k = 0; k < OTU_NSDE; k++)
        if (diffsde_sde_new_named(ctx, names[k], 0, NULL, NULL, &sde[k]) != DIFFSDE_OK)
            return -1;
    return 0;
}

static inline void otu_sdes_free(diffsde_sde *sde[OTU_NSDE])
{
    for (int k = 0; k < OTU_NSDE; k++)
        diffsde_sde_free(sde[k]);
}

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
