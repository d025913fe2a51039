/*
 * Sliced Wasserstein-2 between two equal-size point sets: the mean over random unit
 * directions of the squared 1-D W2 of the projections (sorted and matched in order), then the
 * square root.
 */
#include <stdint.h>
#include <stdlib.h>

#include "metrics/metrics_impl.h"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void project(size_t n, size_t d, const double *x, const double *theta, double *a)
{
    for (size_t i = 0; i < n; i++) {
        const double *xi = x + i * d;
        double s = 0;
        for (size_t j = 0; j < d; j++)
            s += theta[j] * xi[j];
        a[i] = s;
    }
}

int diffsde_i_metrics_sliced_w2(const diffsde_i_metrics_call *c, const diffsde_noise *noise,
                                size_t n, size_t d, const double *x, const double *y,
                                size_t n_directions, double *out)
{
    diffsde_ctx *ctx = c->ctx;
    const char *fn = c->fn;
    size_t total;
    if (diffsde_i_mul_size(n, 2, &total) != 0 || total > SIZE_MAX - d)
        return diffsde_i_fail(ctx, DIFFSDE_ESIZE, "%s: 2n + d overflows size_t (n = %zu)", fn, n);
    double *buf = diffsde_i_calloc(ctx, total + d, sizeof(double));
    if (!buf)
        return diffsde_i_fail(ctx, DIFFSDE_ENOMEM,
                              "%s: cannot allocate 2n + d doubles for the projections (n = %zu)",
                              fn, n);
    double *a = buf, *b = a + n, *theta = b + n;
    double sum = 0;
    int st = DIFFSDE_OK;
    for (size_t p = 0; p < n_directions; p++) {
        st = diffsde_noise_fill_normal(noise, DIFFSDE_METRICS_STREAM,
                                       DIFFSDE_METRICS_STEP_DIRECTIONS, (uint64_t)p, 1, d, theta);
        if (st != DIFFSDE_OK) {
            st = diffsde_i_metrics_restate(c, st,
                                           "drawing the directions (diffsde_noise_fill_normal)");
            break;
        }
        double nrm = 0;
        for (size_t j = 0; j < d; j++)
            nrm += theta[j] * theta[j];
        nrm = sqrt(nrm); /* > 0: a normal draw is never exactly 0 */
        for (size_t j = 0; j < d; j++)
            theta[j] /= nrm;
        project(n, d, x, theta, a);
        project(n, d, y, theta, b);
        qsort(a, n, sizeof *a, cmp_double);
        qsort(b, n, sizeof *b, cmp_double);
        double w = 0;
        for (size_t i = 0; i < n; i++)
            w += (a[i] - b[i]) * (a[i] - b[i]);
        sum += w / (double)n;
    }
    if (st == DIFFSDE_OK)
        *out = sqrt(sum / (double)n_directions);
    diffsde_i_free(ctx, buf);
    return st;
}

int diffsde_metrics_sliced_w2(diffsde_ctx *ctx, const diffsde_noise *noise, size_t n, size_t d,
                              const double *x, const double *y, size_t n_directions, double *out)
{
    static const char fn[] = "diffsde_metrics_sliced_w2";
    if (!ctx)
        return DIFFSDE_ENULL;
    diffsde_i_metrics_call call;
    diffsde_i_metrics_call_init(&call, ctx, fn, NULL, NULL);
    const diffsde_i_metrics_call *c = &call;
    if (!noise || !x || !y || !out)
        return diffsde_i_fail(ctx, DIFFSDE_ENULL, "%s: %s is NULL", fn,
                              !noise ? "noise"
                              : !x   ? "x"
                              : !y   ? "y"
                                     : "out");
    size_t nd;
    int st = diffsde_i_metrics_size(c, "x", n, 1, d, &nd);
    if (st != DIFFSDE_OK)
        return st;
    if (n_directions == 0)
        return diffsde_i_fail(ctx, DIFFSDE_EPARAM, "%s: n_directions must be >= 1 (got 0)", fn);
    if ((st = diffsde_i_metrics_finite(c, "x", n, d, x)) != DIFFSDE_OK ||
        (st = diffsde_i_metrics_finite(c, "y", n, d, y)) != DIFFSDE_OK)
        return st;
    return diffsde_i_metrics_sliced_w2(c, noise, n, d, x, y, n_directions, out);
}
