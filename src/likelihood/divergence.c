/*
 * The likelihood's augmented right-hand side: the flow drift and the divergence of the score,
 * by the model's callback or by central differences (coordinate axes or Hutchinson probes).
 *
 * Points of one call are numbered q = 0, 1, ...: first the ± pairs (row r, direction k) at
 * q = 2(rK + k) and 2(rK + k) + 1, then the m base points. Chunks hold an even number of
 * points, so a pair never straddles two model calls and its two scores are subtracted before
 * the dot product, which keeps the cancellation to one rounding per component. Each row's
 * sum runs over its directions in order whatever the chunking, so a point's result does not
 * depend on its batch.
 */
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "likelihood/likelihood_impl.h"

typedef struct point {
    size_t r;  /* row within the call */
    size_t k;  /* direction (pairs) */
    int minus; /* 1 for x − h u */
    int base;  /* 1 for the unperturbed x */
} point;

static point point_of(size_t q, size_t m, size_t K)
{
    point p = {0, 0, 0, 0};
    const size_t npts = 2 * m * K;
    if (q < npts) {
        p.r = q / (2 * K);
        p.k = (q / 2) % K;
        p.minus = (int)(q & 1u);
    } else {
        p.r = q - npts;
        p.base = 1;
    }
    return p;
}

/* The central-difference step of a row: the user's, else cbrt(ε)·max(1, RMS(x)), the
 * balance of truncation (h²) and rounding (ε/h) for a score varying on the scale of x. */
static double fd_step_of(const diffsde_i_augsys *a, const double *x)
{
    if (!isnan(a->fd_step))
        return a->fd_step;
    double ss = 0.0;
    for (size_t j = 0; j < a->d; j++)
        ss += x[j] * x[j];
    double rms = sqrt(ss / (double)a->d);
    return cbrt(DBL_EPSILON) * (rms > 1.0 ? rms : 1.0);
}

static void where_of(const diffsde_i_augsys *a, const diffsde_i_oderun *run, size_t row, double t,
                     char *buf, size_t len)
{
    if (a->sample0 != 0)
        snprintf(buf, len, "%s: point %zu (global sample %" PRIu64 ") at t=%.17g", run->fname, row,
                 a->sample0 + row, t);
    else
        snprintf(buf, len, "%s: point %zu at t=%.17g", run->fname, row, t);
}

/* Restate a model failure on our context with the point and t it concerns. A non-finite
 * output is traced to its point; otherwise a call on one point names it and a call on many
 * names the range of points. */
static int restate(diffsde_i_augsys *a, const diffsde_i_oderun *run, int st,
                   unsigned long nfail_before, const char *what, size_t m, const size_t *rows,
                   const double *t, size_t q0, size_t c, const double *out, size_t w)
{
    size_t pr = 0, col = 0;
    if (st == DIFFSDE_ENONFINITE && out)
        diffsde_i_find_nonfinite(c, w, out, &pr, &col);
    const point first = point_of(q0 + (st == DIFFSDE_ENONFINITE ? pr : 0), m, a->K);
    const point last = point_of(q0 + c - 1, m, a->K);
    char where[320];
    if (st == DIFFSDE_ENONFINITE || first.r == last.r) {
        where_of(a, run, rows[first.r], t[first.r], where, sizeof where);
    } else {
        snprintf(where, sizeof where, "%s: points %zu..%zu (of a call on %zu points, t=%.17g..)",
                 run->fname, rows[first.r], rows[last.r], c, t[first.r]);
    }
    if (a->ctx->nfail != nfail_before)
        return diffsde_i_fail_prefix(a->ctx, st, "%s: %s", where, what);
    return diffsde_i_fail(a->ctx, st, "%s: %s: %s (the details are on the model's context)", where,
                          what, diffsde_strerror(st));
}

/* Write the chunk's points q0..q0+c−1 into X (c × d) and their times into T. */
static void build(const diffsde_i_augsys *a, size_t m, const size_t *rows, const double *t,
                  const double *y, size_t q0, size_t c, double *X, double *T)
{
    const size_t d = a->d, w = d + 1;
    for (size_t i = 0; i < c; i++) {
        const point p = point_of(q0 + i, m, a->K);
        const double *x = y + p.r * w;
        double *o = X + i * d;
        T[i] = t[p.r];
        if (p.base) {
            memcpy(o, x, d * sizeof *o);
            continue;
        }
        const double h = p.minus ? -fd_step_of(a, x) : fd_step_of(a, x);
        if (a->mode == DIFFSDE_I_DIV_AXES) {
            memcpy(o, x, d * sizeof *o);
            o[p.k] = x[p.k] + h;
        } else {
            const double *u = a->probe_u + (p.k * a->n + rows[p.r]) * d;
            for (size_t j = 0; j < d; j++)
                o[j] = x[j] + h * u[j];
        }
    }
}

/* Fold the chunk's scores into dy: the base points' scores into the row's first d entries
 * (turned into the drift at the end), each pair's quotient into the row's last entry. */
static void absorb(const diffsde_i_augsys *a, size_t m, const size_t *rows, const double *y,
                   size_t q0, size_t c, const double *X, const double *S, double *dy)
{
    const size_t d = a->d, w = d + 1;
    for (size_t i = 0; i < c; i++) {
        const point p = point_of(q0 + i, m, a->K);
        double *dr = dy + p.r * w;
        if (p.base) {
            memcpy(dr, S + i * d, d * sizeof *dr);
            continue;
        }
        if (p.minus)
            continue; /* taken with its + partner, the point before */
        const double *sp = S + i * d, *sm = sp + d;
        if (a->mode == DIFFSDE_I_DIV_AXES) {
            /* The step actually taken, (x + h) − (x − h), not 2h: rounding of x ± h would
             * otherwise enter the quotient at relative size ε|x|/h. */
            const double *xp = X + i * d, *xm = xp + d;
            dr[d] += (sp[p.k] - sm[p.k]) / (xp[p.k] - xm[p.k]);
        } else {
            const double *u = a->probe_u + (p.k * a->n + rows[p.r]) * d;
            double dot = 0.0;
            for (size_t j = 0; j < d; j++)
                dot += u[j] * (sp[j] - sm[j]);
            const double h = fd_step_of(a, y + p.r * w);
            dr[d] += a->probe_r2[p.k * a->n + rows[p.r]] * dot / (2.0 * h);
        }
    }
}

static int aug_rhs(void *self, diffsde_i_oderun *run, size_t m, const size_t *rows,
                   const double *t, const double *y, double *dy)
{
    diffsde_i_augsys *a = self;
    const size_t d = a->d, w = d + 1, K = a->K;
    if (m > a->n)
        return diffsde_i_fail(a->ctx, DIFFSDE_ESIZE,
                              "%s: the augmented system was called on %zu rows, more than the "
                              "batch's %zu",
                              run->fname, m, a->n);
    const size_t total = m * (1 + 2 * K);
    size_t B = a->chunk;
    if (K > 0 && total > B)
        B &= ~(size_t)1; /* pairs start at even q: an even chunk never splits one */
    double *X = a->scratch, *S = X + a->chunk * d, *T = S + a->chunk * d, *D = T + a->chunk;
    for (size_t r = 0; r < m; r++)
        dy[r * w + d] = 0.0;
    for (size_t q0 = 0; q0 < total; q0 += B) {
        const size_t c = total - q0 < B ? total - q0 : B;
        build(a, m, rows, t, y, q0, c, X, T);
        unsigned long before = a->ctx->nfail;
        int st = diffsde_score_eval(a->score, a->sde, c, d, T, X, S);
        run->stats->score_calls++;
        run->stats->score_evals += c;
        if (st != DIFFSDE_OK)
            return restate(a, run, st, before, "score evaluation", m, rows, t, q0, c, S, d);
        if (a->mode == DIFFSDE_I_DIV_CALLBACK) {
            before = a->ctx->nfail;
            a->div_calls++;
            st = diffsde_score_eval_divergence(a->score, a->sde, c, d, T, X, D);
            if (st != DIFFSDE_OK)
                return restate(a, run, st, before, "divergence callback", m, rows, t, q0, c, D,
                               1);
            for (size_t i = 0; i < c; i++)
                dy[(q0 + i) * w + d] = D[i]; /* K = 0: every point is a base point */
        }
        absorb(a, m, rows, y, q0, c, X, S, dy);
    }
    diffsde_sde_coefs cf;
    int have = 0;
    const double scale = a->mode == DIFFSDE_I_DIV_PROBES ? 1.0 / (double)K : 1.0;
    for (size_t r = 0; r < m; r++) {
        if (!have || cf.t != t[r]) {
            int st = diffsde_sde_coefs_at(a->sde, t[r], &cf);
            if (st != DIFFSDE_OK) {
                char where[320];
                where_of(a, run, rows[r], t[r], where, sizeof where);
                return diffsde_i_fail(a->ctx, st, "%s: SDE coefficients: %s", where,
                                      diffsde_strerror(st));
            }
            have = 1;
        }
        const double f = cf.f, h = 0.5 * cf.g2;
        const double *x = y + r * w;
        double *v = dy + r * w;
        for (size_t j = 0; j < d; j++)
            v[j] = f * x[j] - h * v[j];
        v[d] = (double)d * f - h * (scale * v[d]);
    }
    return DIFFSDE_OK;
}

void diffsde_i_augsys_init(diffsde_i_augsys *a, diffsde_ctx *ctx, const diffsde_sde *sde,
                           const diffsde_score *score, size_t d, diffsde_i_divmode mode, size_t K,
                           double fd_step)
{
    memset(a, 0, sizeof *a);
    a->ctx = ctx;
    a->sde = sde;
    a->score = score;
    a->d = d;
    a->mode = mode;
    a->K = mode == DIFFSDE_I_DIV_CALLBACK ? 0 : mode == DIFFSDE_I_DIV_AXES ? d : K;
    a->fd_step = fd_step;
    a->sys.w = d + 1;
    a->sys.rhs = aug_rhs;
    a->sys.self = a;
    /* The caller checks that 1 + 2K fits (diffsde_i_augsys_scratch_len's callers do). */
    a->sys.evals_per_rhs = (unsigned)(1 + 2 * a->K);
}

int diffsde_i_augsys_scratch_len(const diffsde_i_augsys *a, size_t n, size_t *chunk, size_t *len)
{
    const size_t d = a->d;
    size_t total, per_point;
    if (a->K > (SIZE_MAX - 1) / 2 || diffsde_i_mul_size(n, 1 + 2 * a->K, &total) != 0 ||
        d > (SIZE_MAX - 2) / 2)
        return DIFFSDE_ESIZE;
    per_point = 2 * d + 2; /* x, s, t and the callback's divergence */
    size_t fit = DIFFSDE_I_LOGLIK_SCRATCH_DOUBLES / per_point;
    size_t c;
    if (total <= fit)
        c = total;
    else
        c = fit >= 2 ? fit & ~(size_t)1 : 2;
    if (diffsde_i_mul_size(c, per_point, len) != 0)
        return DIFFSDE_ESIZE;
    *chunk = c;
    return DIFFSDE_OK;
}

void diffsde_i_augsys_bind(diffsde_i_augsys *a, size_t n, uint64_t sample0, const double *probe_u,
                           const double *probe_r2, double *scratch, size_t chunk)
{
    a->n = n;
    a->sample0 = sample0;
    a->probe_u = probe_u;
    a->probe_r2 = probe_r2;
    a->scratch = scratch;
    a->chunk = chunk;
    a->div_calls = 0;
}

int diffsde_i_probes_fill(diffsde_ctx *ctx, const char *fname, const diffsde_noise *noise,
                          diffsde_probe kind, size_t K, uint64_t sample0, size_t n, size_t d,
                          double *u, double *r2)
{
    for (size_t k = 0; k < K; k++) {
        double *slab = u + k * n * d;
        unsigned long before = ctx->nfail;
        int st = diffsde_noise_fill_normal(noise, DIFFSDE_STREAM_PROBE, (uint64_t)k, sample0, n, d,
                                           slab);
        if (st != DIFFSDE_OK) {
            if (ctx->nfail != before)
                return diffsde_i_fail_prefix(ctx, st, "%s: Hutchinson probe %zu", fname, k);
            return diffsde_i_fail(ctx, st,
                                  "%s: Hutchinson probe %zu: %s (the details are on the noise "
                                  "source's context)",
                                  fname, k, diffsde_strerror(st));
        }
        for (size_t i = 0; i < n; i++) {
            double *z = slab + i * d;
            if (kind == DIFFSDE_PROBE_RADEMACHER) {
                for (size_t j = 0; j < d; j++)
                    z[j] = z[j] < 0.0 ? -1.0 : 1.0;
                r2[k * n + i] = 1.0;
                continue;
            }
            double ss = 0.0;
            for (size_t j = 0; j < d; j++)
                ss += z[j] * z[j];
            const double ms = ss / (double)d;
            /* A zero draw (only a callback source can give one) is a zero probe: its
             * estimate vᵀJv = 0 is what the formula gives, with u = 0. */
            const double inv = ms > 0.0 ? 1.0 / sqrt(ms) : 0.0;
            for (size_t j = 0; j < d; j++)
                z[j] *= inv;
            r2[k * n + i] = ms;
        }
    }
    return DIFFSDE_OK;
}
