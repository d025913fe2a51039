/*
 * The Brownian path memories of the adaptive solver (see adaptive_path.h and adaptive.h).
 */
#include <math.h>
#include <string.h>

#include "sampler/adaptive_path.h"

#define NP DIFFSDE_I_ADAPTIVE_MAX_PIECES

/* *total += count * elem rounded up to 8 bytes; -1 on overflow. */
static int add(size_t *total, size_t count, size_t elem)
{
    size_t b;
    if (diffsde_i_mul_size(count, elem, &b) != 0 || b > SIZE_MAX - 7)
        return -1;
    b = (b + 7) & ~(size_t)7;
    if (*total > SIZE_MAX - b)
        return -1;
    *total += b;
    return 0;
}

static void *take(unsigned char **mem, size_t count, size_t elem)
{
    void *r = *mem;
    *mem += (count * elem + 7) & ~(size_t)7;
    return r;
}

int diffsde_i_apath_bytes(size_t n, size_t d, size_t *total)
{
    size_t nd, t = *total;
    if (diffsde_i_mul_size(n, d, &nd) != 0 || add(&t, nd, NP * sizeof(double)) ||
        add(&t, n, NP * sizeof(double)) || add(&t, nd, sizeof(double)) ||
        add(&t, n, 3 * sizeof(double)) || add(&t, n, 2 * sizeof(size_t)) ||
        add(&t, n, 2 * sizeof(uint64_t)) || add(&t, n, 1))
        return -1;
    *total = t;
    return 0;
}

void diffsde_i_apath_carve(diffsde_i_apath *p, size_t n, size_t d, unsigned char **mem)
{
    p->max_depth = 0;
    p->merges = 0;
    p->n = n;
    p->d = d;
    p->w = take(mem, n * d, NP * sizeof(double));
    p->lo = take(mem, n, NP * sizeof(double));
    p->r = take(mem, n * d, sizeof(double));
    p->u = take(mem, n, sizeof(double));
    p->blo = take(mem, n, sizeof(double));
    p->bup = take(mem, n, sizeof(double));
    p->depth = take(mem, n, sizeof(size_t));
    p->npop = take(mem, n, sizeof(size_t));
    p->nfresh = take(mem, n, sizeof(uint64_t));
    p->nbridge = take(mem, n, sizeof(uint64_t));
    p->draw = take(mem, n, 1);
}

void diffsde_i_apath_reset(diffsde_i_apath *p)
{
    for (size_t i = 0; i < p->n; i++) {
        p->depth[i] = 0;
        p->nfresh[i] = p->nbridge[i] = 0;
    }
    p->max_depth = 0;
    p->merges = 0;
}

/* Piece q of sample i. */
static double *piece(const diffsde_i_apath *p, size_t i, size_t q)
{
    return p->w + (i * NP + q) * p->d;
}

void diffsde_i_apath_plan(diffsde_i_apath *p, size_t k, size_t i, double t, double u)
{
    const double *lo = p->lo + i * NP;
    double up = t;
    size_t q = p->depth[i], pop = 0;
    while (q > 0 && lo[q - 1] >= u) {
        up = lo[--q];
        pop++;
    }
    p->u[k] = u;
    p->npop[k] = pop;
    p->bup[k] = up;
    p->blo[k] = q > 0 ? lo[q - 1] : u;
    if (!(u < up))
        p->draw[k] = DIFFSDE_I_APATH_NONE; /* u is the lower end of a piece taken */
    else
        p->draw[k] = q > 0 ? DIFFSDE_I_APATH_BRIDGE : DIFFSDE_I_APATH_FRESH;
}

/* Stream and step index of the draw of entry k (sample i). */
static uint64_t draw_step(const diffsde_i_apath *p, size_t k, size_t i, uint32_t *stream)
{
    int fresh = p->draw[k] == DIFFSDE_I_APATH_FRESH;
    *stream = fresh ? DIFFSDE_STREAM_PREDICTOR : DIFFSDE_STREAM_BRIDGE;
    return fresh ? p->nfresh[i] : p->nbridge[i];
}

int diffsde_i_apath_draw(diffsde_i_apath *p, const size_t *act, size_t m,
                         const diffsde_noise *noise, uint64_t sample0,
                         diffsde_i_apath_failure *fail)
{
    size_t d = p->d;
    for (size_t k = 0; k < m;) {
        if (p->draw[k] == DIFFSDE_I_APATH_NONE) {
            k++;
            continue;
        }
        size_t i = act[k], len = 1;
        uint32_t stream, s2;
        uint64_t step = draw_step(p, k, i, &stream);
        while (k + len < m && act[k + len] == i + len && p->draw[k + len] == p->draw[k] &&
               draw_step(p, k + len, i + len, &s2) == step)
            len++;
        int rc = diffsde_noise_fill_normal(noise, stream, step, sample0 + i, len, d,
                                           p->r + i * d);
        if (rc != DIFFSDE_OK) {
            fail->i = i;
            fail->len = len;
            fail->stream = stream;
            fail->step = step;
            return rc;
        }
        k += len;
    }
    return DIFFSDE_OK;
}

/*
 * The new part from the draw ξ (row of r): the bridge part of the straddling piece W_q over
 * [blo, bup], q W_q + s ξ with q = (bup − u)/(bup − blo), s² = (bup − u)(u − blo)/(bup − blo),
 * or the fresh √(bup − u) ξ; W = the pieces taken, summed from the top down, plus the part.
 */
void diffsde_i_apath_make(diffsde_i_apath *p, const size_t *act, size_t m, double *z)
{
    size_t d = p->d;
    for (size_t k = 0; k < m; k++) {
        size_t i = act[k], dp = p->depth[i], pop = p->npop[k];
        double u = p->u[k], lo = p->blo[k], up = p->bup[k];
        double *w = z + i * d, *xi = p->r + i * d;
        if (p->draw[k] == DIFFSDE_I_APATH_BRIDGE) {
            const double *wq = piece(p, i, dp - pop - 1);
            double q = (up - u) / (up - lo), s = sqrt((up - u) * (u - lo) / (up - lo));
            for (size_t j = 0; j < d; j++)
                xi[j] = q * wq[j] + s * xi[j];
        } else if (p->draw[k] == DIFFSDE_I_APATH_FRESH) {
            double s = sqrt(up - u);
            for (size_t j = 0; j < d; j++)
                xi[j] = s * xi[j];
        }
        for (size_t q = 0; q < pop; q++) {
            const double *wq = piece(p, i, dp - 1 - q);
            for (size_t j = 0; j < d; j++)
                w[j] = q == 0 ? wq[j] : w[j] + wq[j];
        }
        if (p->draw[k] != DIFFSDE_I_APATH_NONE)
            for (size_t j = 0; j < d; j++)
                w[j] = pop == 0 ? xi[j] : w[j] + xi[j];
    }
}

/* Accepted: the pieces taken and the new part are used up. Rejected: the new part becomes a
 * piece of its own, over [u, bup], below the pieces taken. Either way a split piece keeps W_q
 * minus its part, over [blo, u]. A rejection that would store more than MAX_PIECES pieces
 * first merges the two lowest of the new layout (their sum, over their union). */
void diffsde_i_apath_commit(diffsde_i_apath *p, size_t k, size_t i, int accepted)
{
    size_t d = p->d, dp = p->depth[i], pop = p->npop[k], q = dp - pop;
    double *part = p->r + i * d, *lo = p->lo + i * NP;
    if (p->draw[k] == DIFFSDE_I_APATH_FRESH)
        p->nfresh[i]++;
    else if (p->draw[k] == DIFFSDE_I_APATH_BRIDGE) {
        p->nbridge[i]++;
        double *wq = piece(p, i, q - 1);
        for (size_t j = 0; j < d; j++)
            wq[j] -= part[j];
    }
    if (accepted) {
        p->depth[i] = q;
        return;
    }
    if (p->draw[k] == DIFFSDE_I_APATH_NONE)
        return;
    if (dp == NP) { /* full: merge the two lowest pieces of the new layout */
        p->merges++;
        double *w0 = piece(p, i, 0);
        if (q <= 1) { /* they are the new part and its neighbour below (q = 1) or above */
            for (size_t j = 0; j < d; j++)
                w0[j] = q == 1 ? w0[j] + part[j] : part[j] + w0[j];
            if (q == 0)
                lo[0] = p->u[k];
            return;
        }
        const double *w1 = piece(p, i, 1);
        for (size_t j = 0; j < d; j++)
            w0[j] += w1[j];
        memmove(piece(p, i, 1), piece(p, i, 2), (dp - 2) * d * sizeof *p->w);
        memmove(lo + 1, lo + 2, (dp - 2) * sizeof *lo);
        q--;
        dp--;
    }
    memmove(piece(p, i, q + 1), piece(p, i, q), pop * d * sizeof *p->w);
    memmove(lo + q + 1, lo + q, pop * sizeof *lo);
    memcpy(piece(p, i, q), part, d * sizeof *part);
    lo[q] = p->u[k];
    p->depth[i] = dp + 1;
    if (dp + 1 > p->max_depth)
        p->max_depth = dp + 1;
}
