/*
 * The built-in mixtures (see diffsde_gmm_new_builtin in gmm.h): ring8, grid25, gauss1 and
 * random:D,K,SEED, whose parameters are Philox draws (stream DIFFSDE_STREAM_MODEL, seed SEED)
 * combined in a fixed order without BLAS, so that the model is bitwise the same wherever the
 * C library's log/sqrt are correctly rounded.
 */
#include <inttypes.h>
#include <math.h>
#include <string.h>

#include "gmm/gmm_impl.h"

#define PI 3.14159265358979323846264338327950288

/* Largest D and K accepted by random:D,K,SEED (D² coordinates must fit the counter layout). */
#define RANDOM_MAX_DIM 65536u
#define RANDOM_MAX_K 65536u

static const char fn[] = "diffsde_gmm_new_builtin";

static int build_ring8(diffsde_gmm *g)
{
    int st = DIFFSDE_OK;
    for (int k = 0; k < 8 && st == DIFFSDE_OK; k++) {
        double a = 2.0 * PI * k / 8.0, mu[2] = {4.0 * cos(a), 4.0 * sin(a)};
        st = diffsde_gmm_add_iso(g, (double)(k + 1), mu, 0.03);
    }
    return st;
}

static int build_grid25(diffsde_gmm *g)
{
    int st = DIFFSDE_OK;
    for (int i = 0; i < 5 && st == DIFFSDE_OK; i++)
        for (int j = 0; j < 5 && st == DIFFSDE_OK; j++) {
            double mu[2] = {-4.0 + 2.0 * i, -4.0 + 2.0 * j};
            st = diffsde_gmm_add_iso(g, 1.0, mu, 0.05);
        }
    return st;
}

static int build_gauss1(diffsde_gmm *g)
{
    static const double mu[2] = {1.0, -0.5}, cov[4] = {1.5, 0.4, 0.4, 0.6};
    return diffsde_gmm_add_full(g, 1.0, mu, cov);
}

/*
 * Parse one decimal field of random:D,K,SEED: [s, e) must be 1 to 20 ASCII digits whose
 * value is ≤ max. Returns 0, or records the failure naming the part and returns EPARAM.
 */
static int parse_field(diffsde_ctx *ctx, const char *name, const char *part, const char *s,
                       const char *e, uint64_t max, uint64_t *out)
{
    if (s == e)
        return diffsde_i_fail(ctx, DIFFSDE_EPARAM, "%s: \"%s\": %s is empty", fn, name, part);
    uint64_t v = 0;
    for (const char *p = s; p < e; p++) {
        if (*p < '0' || *p > '9')
            return diffsde_i_fail(ctx, DIFFSDE_EPARAM,
                                  "%s: \"%s\": %s (\"%.*s\") is not a decimal integer "
                                  "(character '%c')",
                                  fn, name, part, (int)(e - s), s, *p);
        unsigned dgt = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - dgt) / 10)
            return diffsde_i_fail(ctx, DIFFSDE_EPARAM, "%s: \"%s\": %s (\"%.*s\") overflows", fn,
                                  name, part, (int)(e - s), s);
        v = 10 * v + dgt;
    }
    if (v > max)
        return diffsde_i_fail(ctx, DIFFSDE_EPARAM,
                              "%s: \"%s\": %s (%" PRIu64 ") exceeds its maximum %" PRIu64, fn, name,
                              part, v, max);
    *out = v;
    return DIFFSDE_OK;
}

/* "random:D,K,SEED" → D, K, SEED; strict (exactly three fields, digits only, D, K ≥ 1). */
static int parse_random(diffsde_ctx *ctx, const char *name, size_t *D, size_t *K, uint64_t *seed)
{
    static const char *const parts[3] = {"D", "K", "SEED"};
    const uint64_t max[3] = {RANDOM_MAX_DIM, RANDOM_MAX_K, UINT64_MAX};
    const char *s = name + strlen("random:");
    const char *start[3], *end[3];
    int n = 0;
    for (;;) {
        const char *c = strchr(s, ',');
        if (n == 3)
            return diffsde_i_fail(ctx, DIFFSDE_EPARAM,
                                  "%s: \"%s\": more than three comma-separated parts (expected "
                                  "random:D,K,SEED)",
                                  fn, name);
        start[n] = s;
        end[n] = c ? c : s + strlen(s);
        n++;
        if (!c)
            break;
        s = c + 1;
    }
    uint64_t v[3];
    for (int i = 0; i < n; i++) { /* the first fault from the left is reported */
        int st = parse_field(ctx, name, parts[i], start[i], end[i], max[i], &v[i]);
        if (st != DIFFSDE_OK)
            return st;
        if (i < 2 && v[i] == 0)
            return diffsde_i_fail(ctx, DIFFSDE_EPARAM, "%s: \"%s\": %s (0) must be >= 1", fn, name,
                                  parts[i]);
    }
    if (n < 3)
        return diffsde_i_fail(ctx, DIFFSDE_EPARAM,
                              "%s: \"%s\": %s is missing (expected random:D,K,SEED, got %d "
                              "part%s)",
                              fn, name, parts[n], n, n == 1 ? "" : "s");
    *D = (size_t)v[0];
    *K = (size_t)v[1];
    *seed = v[2];
    return DIFFSDE_OK;
}

/*
 * Component k: w = 0.5 + U(step 0, coord 0); μ_j = 3 Z(step 1, coord j);
 * A_il = Z(step 2, coord i·D + l); Σ = A Aᵀ/D + 0.1 I; all at (seed, stream MODEL, sample k).
 */
static int build_random(diffsde_gmm *g, size_t D, size_t K, uint64_t seed)
{
    diffsde_ctx *ctx = g->ctx;
    double *A = diffsde_i_calloc(ctx, D * D, sizeof(double));
    double *S = diffsde_i_calloc(ctx, D * D, sizeof(double));
    double *mu = diffsde_i_calloc(ctx, D, sizeof(double));
    int st = DIFFSDE_OK;
    if (!A || !S || !mu)
        st = diffsde_i_fail(ctx, DIFFSDE_ENOMEM, "%s: cannot allocate the %zu x %zu scratch", fn, D,
                            D);
    for (size_t k = 0; k < K && st == DIFFSDE_OK; k++) {
        double u;
        diffsde_i_philox_fill(seed, DIFFSDE_STREAM_MODEL, 0, k, 1, 1, 0, &u);
        diffsde_i_philox_fill(seed, DIFFSDE_STREAM_MODEL, 1, k, 1, D, 1, mu);
        diffsde_i_philox_fill(seed, DIFFSDE_STREAM_MODEL, 2, k, 1, D * D, 1, A);
        for (size_t j = 0; j < D; j++)
            mu[j] *= 3.0;
        for (size_t i = 0; i < D; i++) {
            const double *ai = A + i * D;
            for (size_t j = 0; j <= i; j++) {
                const double *aj = A + j * D;
                double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
                size_t l = 0;
                for (; l + 4 <= D; l += 4) {
                    s0 += ai[l] * aj[l];
                    s1 += ai[l + 1] * aj[l + 1];
                    s2 += ai[l + 2] * aj[l + 2];
                    s3 += ai[l + 3] * aj[l + 3];
                }
                for (; l < D; l++)
                    s0 += ai[l] * aj[l];
                double c = ((s0 + s1) + (s2 + s3)) / (double)D;
                if (i == j)
                    c += 0.1;
                S[i * D + j] = c;
                S[j * D + i] = c;
            }
        }
        st = diffsde_gmm_add_full(g, 0.5 + u, mu, S);
    }
    diffsde_i_free(ctx, A);
    diffsde_i_free(ctx, S);
    diffsde_i_free(ctx, mu);
    return st;
}

int diffsde_gmm_new_builtin(diffsde_ctx *ctx, const char *name, diffsde_gmm **out)
{
    if (out)
        *out = NULL;
    if (!ctx)
        return DIFFSDE_ENULL;
    if (!name || !out)
        return diffsde_i_fail(ctx, DIFFSDE_ENULL, "%s: %s is NULL", fn, !name ? "name" : "out");
    size_t D = 2, K = 0;
    uint64_t seed = 0;
    int which;
    if (strcmp(name, "ring8") == 0)
        which = 0;
    else if (strcmp(name, "grid25") == 0)
        which = 1;
    else if (strcmp(name, "gauss1") == 0)
        which = 2;
    else if (strncmp(name, "random:", 7) == 0) {
        which = 3;
        int st = parse_random(ctx, name, &D, &K, &seed);
        if (st != DIFFSDE_OK)
            return st;
    } else
        return diffsde_i_fail(ctx, DIFFSDE_EPARAM,
                              "%s: unknown model name \"%s\" (known: ring8, grid25, gauss1, "
                              "random:D,K,SEED)",
                              fn, name);
    diffsde_gmm *g;
    int st = diffsde_gmm_new(ctx, D, &g);
    if (st != DIFFSDE_OK)
        return st;
    switch (which) {
    case 0: st = build_ring8(g); break;
    case 1: st = build_grid25(g); break;
    case 2: st = build_gauss1(g); break;
    default: st = build_random(g, D, K, seed); break;
    }
    if (st == DIFFSDE_OK)
        st = diffsde_gmm_finalize(g);
    if (st != DIFFSDE_OK) {
        diffsde_gmm_free(g);
        return diffsde_i_fail_prefix(ctx, st, "%s(\"%s\")", fn, name);
    }
    *out = g;
    return DIFFSDE_OK;
}
