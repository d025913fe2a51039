/*
 * Energy distance (Székely & Rizzo) between two point sets, on at most m points of each chosen
 * by even striding, with a permutation test. The N(N − 1)/2 distances of the pooled points are
 * computed once; a relabelling then costs one pass over them.
 */
#include <stdint.h>
#include <string.h>

#include "metrics/metrics_impl.h"

/* Index of the j-th of m points chosen from n: ⌊j n / m⌋ without overflow (j < m ≤ n). */
static size_t stride_index(size_t j, size_t n, size_t m)
{
    if (n <= m)
        return j;
    size_t q = n / m, r = n % m;
    return j * q + (j * r) / m; /* j·r < m² fits: m² distances are stored */
}

/*
 * E from the labels g (1 for Y) given the packed distances: for each i, r_i = Σ_{j>i} D_ij g_j
 * splits the row into its Y part and (rowsum_i − r_i), its X part.
 */
static double energy_stat(size_t N, size_t mx, size_t my, const double *D, const double *rowsum,
                          double total, const double *g)
{
    double sxx = 0, syy = 0;
    const double *row = D;
    for (size_t i = 0; i + 1 < N; i++) {
        size_t len = N - 1 - i;
        const double *gi = g + i + 1;
        double r = 0;
        for (size_t j = 0; j < len; j++)
            r += row[j] * gi[j];
        if (g[i] != 0)
            syy += r;
        else
            sxx += rowsum[i] - r;
        row += len;
    }
    double sxy = total - sxx - syy, fx = (double)mx, fy = (double)my;
    return 2 * sxy / (fx * fy) - 2 * sxx / (fx * (fx - 1)) - 2 * syy / (fy * (fy - 1));
}

int diffsde_i_metrics_energy(const diffsde_i_metrics_call *c, const diffsde_noise *noise, size_t nx,
                             size_t ny, size_t d, const double *x, const double *y,
                             size_t max_points, size_t permutations, diffsde_energy_test *out)
{
    diffsde_ctx *ctx = c->ctx;
    const char *fn = c->fn;
    const size_t mx = nx < max_points ? nx : max_points, my = ny < max_points ? ny : max_points;
    const size_t N = mx + my; /* ≤ 2 max_points */
    size_t npairs, nwork;
    int overflow = diffsde_i_mul_size(N, N - 1, &npairs) != 0 ||
                   diffsde_i_mul_size(N, 3, &nwork) != 0 || npairs / 2 > SIZE_MAX - nwork;
    if (overflow)
        return diffsde_i_fail(ctx, DIFFSDE_ESIZE,
                              "%s: the distance table of %zu + %zu points overflows size_t", fn, mx,
                              my);
    npairs /= 2;
    double *buf = diffsde_i_calloc(ctx, npairs + nwork, sizeof(double));
    size_t *perm = permutations > 0 ? diffsde_i_calloc(ctx, N, sizeof(size_t)) : NULL;
    int st = DIFFSDE_OK;
    if (!buf || (permutations > 0 && !perm)) {
        st = diffsde_i_fail(ctx, DIFFSDE_ENOMEM,
                            "%s: cannot allocate the distance table (%zu doubles for %zu + %zu "
                            "points; lower max_points)",
                            fn, npairs + nwork, mx, my);
        goto done;
    }
    double *D = buf, *rowsum = D + npairs, *g = rowsum + N, *u = g + N;

    /* Pooled points: 0..mx−1 from x, mx..N−1 from y. */
    double total = 0, *dp = D;
    for (size_t i = 0; i + 1 < N; i++) {
        const double *pi =
            i < mx ? x + stride_index(i, nx, mx) * d : y + stride_index(i - mx, ny, my) * d;
        double rs = 0;
        for (size_t j = i + 1; j < N; j++) {
            const double *pj =
                j < mx ? x + stride_index(j, nx, mx) * d : y + stride_index(j - mx, ny, my) * d;
            double s = 0;
            for (size_t k = 0; k < d; k++)
                s += (pi[k] - pj[k]) * (pi[k] - pj[k]);
            s = sqrt(s);
            *dp++ = s;
            rs += s;
        }
        rowsum[i] = rs;
        total += rs;
    }
    for (size_t i = 0; i < N; i++)
        g[i] = i >= mx;
    const double e = energy_stat(N, mx, my, D, rowsum, total, g);

    size_t exceed = 0;
    for (size_t b = 0; b < permutations; b++) {
        st = diffsde_noise_fill_uniform(noise, DIFFSDE_METRICS_STREAM,
                                        DIFFSDE_METRICS_STEP_PERMUTATIONS, (uint64_t)b, 1, N, u);
        if (st != DIFFSDE_OK) {
            st = diffsde_i_metrics_restate(c, st,
                                           "drawing the permutations (diffsde_noise_fill_uniform)");
            goto done;
        }
        for (size_t i = 0; i < N; i++)
            perm[i] = i;
        for (size_t i = N - 1; i > 0; i--) {
            size_t j = (size_t)(u[i] * (double)(i + 1));
            if (j > i)
                j = i;
            size_t tmp = perm[i];
            perm[i] = perm[j];
            perm[j] = tmp;
        }
        for (size_t k = 0; k < N; k++)
            g[perm[k]] = k >= mx;
        if (energy_stat(N, mx, my, D, rowsum, total, g) >= e)
            exceed++;
    }
    out->energy = e;
    out->pvalue = permutations > 0 ? (1.0 + (double)exceed) / (1.0 + (double)permutations) : NAN;
    out->mx = mx;
    out->my = my;
    out->permutations = permutations;
done:
    diffsde_i_free(ctx, perm);
    diffsde_i_free(ctx, buf);
    return st;
}

int diffsde_metrics_energy(diffsde_ctx *ctx, const diffsde_noise *noise, size_t nx, size_t ny,
                           size_t d, const double *x, const double *y, size_t max_points,
                           size_t permutations, diffsde_energy_test *out)
{
    static const char fn[] = "diffsde_metrics_energy";
    if (!ctx)
        return DIFFSDE_ENULL;
    diffsde_i_metrics_call call;
    diffsde_i_metrics_call_init(&call, ctx, fn, NULL, NULL);
    const diffsde_i_metrics_call *c = &call;
    if ((!noise && permutations > 0) || !x || !y || !out)
        return diffsde_i_fail(ctx, DIFFSDE_ENULL, "%s: %s is NULL", fn,
                              !x     ? "x"
                              : !y   ? "y"
                              : !out ? "out"
                                     : "noise (with permutations > 0)");
    size_t nd;
    int st;
    if ((st = diffsde_i_metrics_size(c, "x", nx, 2, d, &nd)) != DIFFSDE_OK ||
        (st = diffsde_i_metrics_size(c, "y", ny, 2, d, &nd)) != DIFFSDE_OK)
        return st;
    if (max_points < 2)
        return diffsde_i_fail(ctx, DIFFSDE_EPARAM, "%s: max_points (%zu) must be >= 2", fn,
                              max_points);
    if ((st = diffsde_i_metrics_finite(c, "x", nx, d, x)) != DIFFSDE_OK ||
        (st = diffsde_i_metrics_finite(c, "y", ny, d, y)) != DIFFSDE_OK ||
        (permutations > 0 &&
         (st = diffsde_i_metrics_need_philox(c, noise, "the permutation test")) != DIFFSDE_OK))
        return st;
    return diffsde_i_metrics_energy(c, noise, nx, ny, d, x, y, max_points, permutations, out);
}
