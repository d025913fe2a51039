/*
 * Adaptive Dormand–Prince 5(4) (Dormand & Prince 1980; Hairer, Nørsett & Wanner, Solving ODEs
 * I, §II.5): seven stages, the seventh evaluated at the new point and reused as the next
 * step's first (FSAL), so an attempt costs six evaluations after the first. The 5th-order
 * solution is propagated; the embedded 4th-order one only estimates the error.
 *
 * Error norm: scipy's RK45 convention, so that rtol and atol mean the same there and here:
 * the RMS over a unit's components of err_j / (atol + rtol·max(|y_j|, |y_new,j|)); the step
 * is accepted when it is ≤ 1.
 *
 * A "unit" is what one step size controls: a row (per-sample control, the default: each
 * sample integrates its own ODE) or the whole batch flattened into one vector of n·w
 * components (opt->whole_batch). Units that are still integrating are gathered every round
 * into contiguous buffers, and each stage is one right-hand-side call over all of them.
 * A unit's arithmetic reads only its own values, in an order that does not depend on its
 * position in the gathered buffers, so under per-sample control a sample's result and NFE
 * do not depend on its batch (given a model whose rows are independent).
 *
 * Evaluations per unit: 1 (FSAL start) + 1 (initial step selection, unless opt->first_step
 * > 0) + 6 per step attempt, accepted or rejected; an attempt cut short by a failed stage
 * costs the stages it reached, and a failed batched call is counted for every row in it
 * (the model was called) before the rows are re-evaluated one by one to find the culprits.
 */
#include <float.h>
#include <math.h>
#include <stdalign.h>
#include <stdio.h>
#include <string.h>

#include "ode/ode_impl.h"

/* ---- the Dormand–Prince tableau ------------------------------------------------------- */

static const double C2 = 1.0 / 5.0, C3 = 3.0 / 10.0, C4 = 4.0 / 5.0, C5 = 8.0 / 9.0;
static const double A21 = 1.0 / 5.0;
static const double A31 = 3.0 / 40.0, A32 = 9.0 / 40.0;
static const double A41 = 44.0 / 45.0, A42 = -56.0 / 15.0, A43 = 32.0 / 9.0;
static const double A51 = 19372.0 / 6561.0, A52 = -25360.0 / 2187.0, A53 = 64448.0 / 6561.0,
                    A54 = -212.0 / 729.0;
static const double A61 = 9017.0 / 3168.0, A62 = -355.0 / 33.0, A63 = 46732.0 / 5247.0,
                    A64 = 49.0 / 176.0, A65 = -5103.0 / 18656.0;
/* 5th-order weights, also row 7 of A (FSAL); b2 = b7 = 0. */
static const double B1 = 35.0 / 384.0, B3 = 500.0 / 1113.0, B4 = 125.0 / 192.0,
                    B5 = -2187.0 / 6784.0, B6 = 11.0 / 84.0;
/* b − b̂ (5th minus embedded 4th order weights); e2 = 0. */
static const double E1 = 71.0 / 57600.0, E3 = -71.0 / 16695.0, E4 = 71.0 / 1920.0,
                    E5 = -17253.0 / 339200.0, E6 = 22.0 / 525.0, E7 = -1.0 / 40.0;

/* ---- step-size control ---------------------------------------------------------------- */

/*
 * The error estimate is O(h^5), so the exponents are on k = 5. After an accepted step a PI
 * controller (Gustafsson 1991; HNW II §IV.2): h ← h·SAFETY·E^(−β1)·E_prev^(β2) with β1 =
 * 0.7/k, β2 = 0.4/k. The flow ODE's steps are limited by stability where the score is
 * stiff (the last stretch towards ε, around narrow modes); there the classical I controller
 * h·0.9·E^(−1/k) (scipy's) oscillates between accepted and rejected steps, and the
 * proportional factor damps that. Its fixed point E = SAFETY^(1/(β1−β2)) ≈ 0.17 is more
 * cautious than the I controller's 0.59, but costs fewer evaluations than the rejections it
 * avoids. Measured on ring8, 64 prior samples, t 1 → 1e-3, rtol = atol = 1e-5, NFE per
 * sample under per-sample control (whole batch in brackets): this PI 82 (92) with 2.1
 * rejections per sample; the I controller 97 (122), 5.7 rejections; DOPRI5's PI (β1 =
 * 0.17, β2 = 0.04) 88 (104); this PI aimed at E = 0.59 instead of 0.17 87 (116); endpoint
 * errors within a factor 2 of each other. After a rejection the plain E^(−1/k) (the history
 * says nothing about the step that just failed) and, as in scipy, no growth on the step right
 * after a rejection. SAFETY 0.9 and growth in [0.2, 10] as in scipy and DOPRI5. E_prev is
 * floored at 1e-4 (DOPRI5's facold) so that one lucky step cannot license a large jump.
 */
#define SAFETY 0.9
#define FAC_MIN 0.2
#define FAC_MAX 10.0
#define BETA1 (0.7 / 5.0)
#define BETA2 (0.4 / 5.0)
#define ERR_PREV_FLOOR 1e-4
/* Step factor after a failed right-hand side or a non-finite error estimate. */
#define FAC_FAIL 0.25

/* ---- workspace -------------------------------------------------------------------------- */

/* Doubles per unit of bookkeeping: t, |h|, signed step, t_new, E_prev, last attempt
 * rejected, accepted, rejected, attempts, failed-this-round. */
enum { U_T, U_H, U_STEP, U_TNEW, U_EPREV, U_LASTREJ, U_NACC, U_NREJ, U_NATT, U_BAD, U_NFIELDS };

typedef struct layout {
    size_t units, width, rows_per_unit; /* U, W (components of a unit), R (rows of a unit) */
    size_t o_act, o_round;              /* U size_t each, carved from the doubles */
    size_t o_unit;                      /* U_NFIELDS × U */
    size_t o_k1;                        /* U × W, by unit (FSAL stage) */
    size_t o_k[6];                      /* stages 2..7: U × W, gathered */
    size_t o_ys;                        /* U × W, gathered stage input, then y_new */
    size_t o_tst;                       /* n: per-row stage times, gathered */
    size_t len;
} layout;

_Static_assert(sizeof(size_t) <= sizeof(double) && alignof(size_t) <= alignof(double),
               "index arrays are carved out of the double workspace");

static int add_len(size_t *len, size_t count, size_t *offset)
{
    *offset = *len;
    if (count > SIZE_MAX - *len)
        return -1;
    *len += count;
    return 0;
}

static int make_layout(const diffsde_ode_options *opt, size_t n, size_t w, layout *L)
{
    size_t nw, uf;
    if (diffsde_i_mul_size(n, w, &nw))
        return -1;
    if (opt->whole_batch) {
        L->units = 1;
        L->width = nw;
        L->rows_per_unit = n;
    } else {
        L->units = n;
        L->width = w;
        L->rows_per_unit = 1;
    }
    if (diffsde_i_mul_size(U_NFIELDS, L->units, &uf))
        return -1;
    L->len = 0;
    if (add_len(&L->len, L->units, &L->o_act) || add_len(&L->len, L->units, &L->o_round) ||
        add_len(&L->len, uf, &L->o_unit) || add_len(&L->len, nw, &L->o_k1))
        return -1;
    for (int s = 0; s < 6; s++)
        if (add_len(&L->len, nw, &L->o_k[s]))
            return -1;
    if (add_len(&L->len, nw, &L->o_ys) || add_len(&L->len, n, &L->o_tst))
        return -1;
    return 0;
}

static int rk45_work_size(const diffsde_ode_options *opt, size_t n, size_t w, size_t *len)
{
    layout L;
    if (make_layout(opt, n, w, &L))
        return DIFFSDE_ESIZE;
    *len = L.len;
    return DIFFSDE_OK;
}

/* ---- the solver state of one solve ---------------------------------------------------- */

typedef struct rk45 {
    diffsde_i_oderun *run;
    layout L;
    double dir; /* sign of t1 − t0 */
    size_t *act;    /* units still integrating (nact of them) */
    size_t nact;
    size_t *round;  /* units attempting a step this round (gathered positions) */
    double *u[U_NFIELDS];
    double *k1;     /* by unit */
    double *k[8];   /* k[2..7]: gathered stage derivatives; k[0], k[1] unused */
    double *ys;
    double *tst;
} rk45;

static double *unit_y(const rk45 *s, size_t unit)
{
    return s->run->y + unit * s->L.width;
}

static double *unit_k1(const rk45 *s, size_t unit)
{
    return s->k1 + unit * s->L.width;
}

static int recoverable(int st)
{
    return st == DIFFSDE_ERETRY || st == DIFFSDE_ENONFINITE;
}

/* Report a unit as the sample (per-sample control) or the batch. */
static int unit_fail(const rk45 *s, size_t unit, int status, const char *what)
{
    const diffsde_i_oderun *run = s->run;
    double t = s->u[U_T][unit];
    if (run->opt->whole_batch)
        return diffsde_i_fail(run->ctx, status,
                              "%s: rk45 (whole batch of %zu): %s at t = %.17g (|h| = %.3g, "
                              "integrating from %.17g to %.17g)",
                              run->fname, run->n, what, t, s->u[U_H][unit], run->t0, run->t1);
    return diffsde_i_fail(run->ctx, status,
                          "%s: rk45: sample %zu: %s at t = %.17g (|h| = %.3g, integrating from "
                          "%.17g to %.17g)",
                          run->fname, unit, what, t, s->u[U_H][unit], run->t0, run->t1);
}

/*
 * One stage over the m units of s->round: input s->ys, times s->tst, output dy (gathered).
 * A recoverable failure of a batched call is located by re-evaluating the units one by one;
 * the units that fail alone are marked U_BAD (the others keep their own evaluation, so a
 * unit's values do not depend on its neighbours). Fatal statuses are returned.
 */
static int stage_eval(rk45 *s, size_t m, double *dy)
{
    diffsde_i_oderun *run = s->run;
    const size_t R = s->L.rows_per_unit, W = s->L.width;
    const size_t *rows = run->opt->whole_batch ? run->all_rows : s->round;
    int st = diffsde_i_ode_rhs(run, m * R, rows, s->tst, s->ys, dy);
    if (st == DIFFSDE_OK)
        return DIFFSDE_OK;
    if (!recoverable(st))
        return st;
    if (m == 1) {
        s->u[U_BAD][s->round[0]] = 1.0;
        return DIFFSDE_OK;
    }
    /* R = 1 here: whole-batch mode has a single unit. */
    int found = 0;
    for (size_t p = 0; p < m; p++) {
        int st1 = diffsde_i_ode_rhs(run, 1, &s->round[p], &s->tst[p], s->ys + p * W,
                                    dy + p * W);
        if (st1 == DIFFSDE_OK)
            continue;
        if (!recoverable(st1))
            return st1;
        s->u[U_BAD][s->round[p]] = 1.0;
        found = 1;
    }
    if (!found && st == DIFFSDE_ENONFINITE)
        return diffsde_i_fail(run->ctx, DIFFSDE_ENONFINITE,
                              "%s: rk45: the right-hand side of a batch of %zu samples was not "
                              "finite, but that of every sample alone was: the model's rows "
                              "depend on the batch",
                              run->fname, m);
    return DIFFSDE_OK;
}

/* Drop the units marked U_BAD from the round after stage `stage` (2..7) was evaluated,
 * keeping the others' gathered stage derivatives 2..stage and stage input (y_new after stage
 * 7) aligned. Returns the new m. */
static size_t drop_bad(rk45 *s, size_t m, int stage)
{
    const size_t W = s->L.width;
    size_t q = 0;
    for (size_t p = 0; p < m; p++) {
        size_t unit = s->round[p];
        if (s->u[U_BAD][unit] != 0.0)
            continue;
        if (q != p) {
            s->round[q] = unit;
            for (int j = 2; j <= stage; j++)
                memmove(s->k[j] + q * W, s->k[j] + p * W, W * sizeof(double));
            memmove(s->ys + q * W, s->ys + p * W, W * sizeof(double));
        }
        q++;
    }
    return q;
}

/* The per-row stage times of position p: t + c·step (exactly t_new for c = 1). */
static void set_times(rk45 *s, size_t p, size_t unit, double c)
{
    const size_t R = s->L.rows_per_unit;
    const double tnew = s->u[U_TNEW][unit];
    double t = tnew;
    if (c != 1.0) {
        t = s->u[U_T][unit] + c * s->u[U_STEP][unit];
        if (s->dir * (t - tnew) > 0.0) /* rounding must not carry a stage past t_new (T) */
            t = tnew;
    }
    for (size_t r = 0; r < R; r++)
        s->tst[p * R + r] = t;
}

/* RMS of v/scale over a unit (scale = atol + rtol·|y|). */
static double rms_scaled(size_t W, const double *v, const double *y, double atol, double rtol)
{
    double acc = 0.0;
    for (size_t j = 0; j < W; j++) {
        double r = v[j] / (atol + rtol * fabs(y[j]));
        acc += r * r;
    }
    return sqrt(acc / (double)W);
}

/* RMS of (a − b)/scale over a unit. */
static double rms_diff_scaled(size_t W, const double *a, const double *b, const double *y,
                              double atol, double rtol)
{
    double acc = 0.0;
    for (size_t j = 0; j < W; j++) {
        double r = (a[j] - b[j]) / (atol + rtol * fabs(y[j]));
        acc += r * r;
    }
    return sqrt(acc / (double)W);
}

/*
 * The initial |h| of every unit: opt->first_step, or the algorithm of HNW I §II.4 in scipy's
 * form (one extra evaluation at y0 + h0·f0): h = min(100·h0, (0.01/max(d1, d2))^(1/5), |t1 −
 * t0|) with d0 = ‖y0‖, d1 = ‖f0‖, h0 = 0.01·d0/d1 (1e-6 when either is < 1e-5) and d2 =
 * ‖f1 − f0‖/h0, all in the error norm's weights. k1 holds f0.
 */
static int initial_steps(rk45 *s)
{
    diffsde_i_oderun *run = s->run;
    const diffsde_ode_options *opt = run->opt;
    const size_t U = s->L.units, W = s->L.width;
    const double span = fabs(run->t1 - run->t0), atol = opt->atol, rtol = opt->rtol;
    if (opt->first_step > 0.0) {
        for (size_t u = 0; u < U; u++)
            s->u[U_H][u] = fmin(opt->first_step, span);
        return DIFFSDE_OK;
    }
    double *h0 = s->u[U_STEP]; /* borrowed until the first attempt sets the step */
    for (size_t u = 0; u < U; u++) {
        const double *y = unit_y(s, u), *f0 = unit_k1(s, u);
        double d0 = rms_scaled(W, y, y, atol, rtol), d1 = rms_scaled(W, f0, y, atol, rtol);
        double h = (d0 < 1e-5 || d1 < 1e-5) ? 1e-6 : 0.01 * d0 / d1;
        if (!(h <= span))
            h = span;
        h0[u] = h;
        s->round[u] = u;
        s->u[U_BAD][u] = 0.0;
        double *y1 = s->ys + u * W;
        for (size_t j = 0; j < W; j++)
            y1[j] = y[j] + s->dir * h * f0[j];
        s->u[U_TNEW][u] = run->t0 + s->dir * h;
        set_times(s, u, u, 1.0);
    }
    int st = stage_eval(s, U, s->k[2]);
    if (st != DIFFSDE_OK)
        return st;
    for (size_t u = 0; u < U; u++) {
        double h;
        if (s->u[U_BAD][u] != 0.0) {
            /* f failed at t0 + h0: start below h0. */
            h = FAC_FAIL * h0[u];
            s->u[U_BAD][u] = 0.0;
        } else {
            const double *y = unit_y(s, u), *f0 = unit_k1(s, u), *f1 = s->k[2] + u * W;
            double d1 = rms_scaled(W, f0, y, atol, rtol);
            double d2 = rms_diff_scaled(W, f1, f0, y, atol, rtol) / h0[u];
            double h1 = (d1 <= 1e-15 && d2 <= 1e-15) ? fmax(1e-6, 1e-3 * h0[u])
                                                     : pow(0.01 / fmax(d1, d2), 1.0 / 5.0);
            h = 100.0 * h0[u];
            if (h1 < h) /* false for NaN: keep 100·h0 */
                h = h1;
            if (!(h <= span))
                h = span;
        }
        s->u[U_H][u] = h;
    }
    return DIFFSDE_OK;
}

/* Form the input of stage `stage` (2..7) for position p (unit `unit`). */
static void stage_input(rk45 *s, size_t p, size_t unit, int stage)
{
    const size_t W = s->L.width;
    const double h = s->u[U_STEP][unit];
    const double *y = unit_y(s, unit), *k1 = unit_k1(s, unit);
    const double *k2 = s->k[2] + p * W, *k3 = s->k[3] + p * W, *k4 = s->k[4] + p * W,
                 *k5 = s->k[5] + p * W, *k6 = s->k[6] + p * W;
    double *o = s->ys + p * W;
    switch (stage) {
    case 2:
        for (size_t j = 0; j < W; j++)
            o[j] = y[j] + h * (A21 * k1[j]);
        set_times(s, p, unit, C2);
        break;
    case 3:
        for (size_t j = 0; j < W; j++)
            o[j] = y[j] + h * (A31 * k1[j] + A32 * k2[j]);
        set_times(s, p, unit, C3);
        break;
    case 4:
        for (size_t j = 0; j < W; j++)
            o[j] = y[j] + h * (A41 * k1[j] + A42 * k2[j] + A43 * k3[j]);
        set_times(s, p, unit, C4);
        break;
    case 5:
        for (size_t j = 0; j < W; j++)
            o[j] = y[j] + h * (A51 * k1[j] + A52 * k2[j] + A53 * k3[j] + A54 * k4[j]);
        set_times(s, p, unit, C5);
        break;
    case 6:
        for (size_t j = 0; j < W; j++)
            o[j] = y[j] + h * (A61 * k1[j] + A62 * k2[j] + A63 * k3[j] + A64 * k4[j] +
                               A65 * k5[j]);
        set_times(s, p, unit, 1.0); /* c6 = 1: exactly t_new */
        break;
    default: /* 7: y_new */
        for (size_t j = 0; j < W; j++)
            o[j] = y[j] + h * (B1 * k1[j] + B3 * k3[j] + B4 * k4[j] + B5 * k5[j] + B6 * k6[j]);
        set_times(s, p, unit, 1.0);
        break;
    }
}

/* The scaled RMS error of position p's attempt; NaN when it or y_new is not finite. */
static double error_norm(const rk45 *s, size_t p, size_t unit)
{
    const size_t W = s->L.width;
    const double h = s->u[U_STEP][unit], atol = s->run->opt->atol, rtol = s->run->opt->rtol;
    const double *y = unit_y(s, unit), *k1 = unit_k1(s, unit), *yn = s->ys + p * W;
    const double *k3 = s->k[3] + p * W, *k4 = s->k[4] + p * W, *k5 = s->k[5] + p * W,
                 *k6 = s->k[6] + p * W, *k7 = s->k[7] + p * W;
    double acc = 0.0;
    for (size_t j = 0; j < W; j++) {
        if (!isfinite(yn[j]))
            return NAN;
        double e = h * (E1 * k1[j] + E3 * k3[j] + E4 * k4[j] + E5 * k5[j] + E6 * k6[j] +
                        E7 * k7[j]);
        double r = e / (atol + rtol * fmax(fabs(y[j]), fabs(yn[j])));
        acc += r * r;
    }
    double norm = sqrt(acc / (double)W);
    return isfinite(norm) ? norm : NAN;
}

/* A failed attempt of `unit`: |h| ← fac·|h|. */
static void reject(rk45 *s, size_t unit, double fac)
{
    s->u[U_H][unit] *= fac;
    s->u[U_NREJ][unit] += 1.0;
    s->u[U_LASTREJ][unit] = 1.0;
}

/* Accept or reject position p's attempt on its error norm. */
static void conclude(rk45 *s, size_t p, size_t unit, double norm)
{
    const size_t W = s->L.width;
    double *u_h = &s->u[U_H][unit];
    if (!(norm <= 1.0)) {
        if (isnan(norm))
            reject(s, unit, FAC_FAIL);
        else
            reject(s, unit, fmax(FAC_MIN, SAFETY * pow(norm, -1.0 / 5.0)));
        return;
    }
    memcpy(unit_y(s, unit), s->ys + p * W, W * sizeof(double));
    memcpy(unit_k1(s, unit), s->k[7] + p * W, W * sizeof(double));
    s->u[U_T][unit] = s->u[U_TNEW][unit];
    s->u[U_NACC][unit] += 1.0;
    double fac = FAC_MAX;
    if (norm > 0.0)
        fac = SAFETY * pow(norm, -BETA1) * pow(s->u[U_EPREV][unit], BETA2);
    fac = fmin(FAC_MAX, fmax(FAC_MIN, fac));
    if (s->u[U_LASTREJ][unit] != 0.0 && fac > 1.0)
        fac = 1.0;
    *u_h *= fac;
    s->u[U_EPREV][unit] = fmax(norm, ERR_PREV_FLOOR);
    s->u[U_LASTREJ][unit] = 0.0;
}

/* Set up this round's attempts: checks, the signed step (clipped to land on t1) and the
 * round list. Returns a status (ECONVERGENCE when a unit is out of attempts or its step
 * underflowed). */
static int plan_round(rk45 *s, size_t *m_out)
{
    diffsde_i_oderun *run = s->run;
    const double t1 = run->t1;
    for (size_t a = 0; a < s->nact; a++) {
        size_t unit = s->act[a];
        double t = s->u[U_T][unit], habs = s->u[U_H][unit];
        if (s->u[U_NATT][unit] >= (double)run->opt->max_steps) {
            char what[96];
            snprintf(what, sizeof what, "max_steps (%zu) step attempts used up",
                     run->opt->max_steps);
            return unit_fail(s, unit, DIFFSDE_ECONVERGENCE, what);
        }
        double ulp = fabs(nextafter(t, s->dir * INFINITY) - t);
        if (!(habs >= 10.0 * ulp))
            return unit_fail(s, unit, DIFFSDE_ECONVERGENCE,
                             "step size underflow (|h| < 10 ulp(t))");
        double tnew = t + s->dir * habs;
        if (s->dir * (tnew - t1) >= 0.0)
            tnew = t1;
        s->u[U_TNEW][unit] = tnew;
        s->u[U_STEP][unit] = tnew - t;
        s->u[U_NATT][unit] += 1.0;
        s->u[U_BAD][unit] = 0.0;
        s->round[a] = unit;
    }
    *m_out = s->nact;
    return DIFFSDE_OK;
}

static int rk45_solve(diffsde_i_oderun *run)
{
    rk45 s;
    memset(&s, 0, sizeof s);
    s.run = run;
    if (make_layout(run->opt, run->n, run->sys->w, &s.L) || s.L.len > run->work_len)
        return diffsde_i_fail(run->ctx, DIFFSDE_ESIZE, "%s: rk45: workspace too small",
                              run->fname);
    double *wk = run->work;
    s.act = (size_t *)(void *)(wk + s.L.o_act);
    s.round = (size_t *)(void *)(wk + s.L.o_round);
    for (int f = 0; f < U_NFIELDS; f++)
        s.u[f] = wk + s.L.o_unit + (size_t)f * s.L.units;
    s.k1 = wk + s.L.o_k1;
    for (int j = 2; j <= 7; j++)
        s.k[j] = wk + s.L.o_k[j - 2];
    s.ys = wk + s.L.o_ys;
    s.tst = wk + s.L.o_tst;
    s.dir = run->t1 > run->t0 ? 1.0 : -1.0;

    const size_t U = s.L.units;
    for (size_t u = 0; u < U; u++) {
        for (int f = 0; f < U_NFIELDS; f++)
            s.u[f][u] = 0.0;
        s.u[U_T][u] = run->t0;
        s.u[U_EPREV][u] = 1.0;
        s.act[u] = u;
    }
    s.nact = U;
    for (size_t r = 0; r < run->n; r++)
        s.tst[r] = run->t0;
    int st = diffsde_i_ode_rhs(run, run->n, run->all_rows, s.tst, run->y, s.k1);
    if (st != DIFFSDE_OK)
        return recoverable(st)
                   ? diffsde_i_ode_restate(run, st,
                                           "rk45: the right-hand side failed at the initial "
                                           "point t0 = %.17g (no smaller step can help)",
                                           run->t0)
                   : st;
    st = initial_steps(&s);

    size_t total_steps = 0;
    while (st == DIFFSDE_OK && s.nact > 0) {
        size_t m = 0;
        st = plan_round(&s, &m);
        if (st != DIFFSDE_OK)
            break;
        for (int stage = 2; stage <= 7 && m > 0; stage++) {
            for (size_t p = 0; p < m; p++)
                stage_input(&s, p, s.round[p], stage);
            int had_bad = 0;
            st = stage_eval(&s, m, s.k[stage]);
            if (st != DIFFSDE_OK)
                break;
            for (size_t p = 0; p < m; p++)
                if (s.u[U_BAD][s.round[p]] != 0.0) {
                    reject(&s, s.round[p], FAC_FAIL);
                    had_bad = 1;
                }
            if (had_bad)
                m = drop_bad(&s, m, stage);
        }
        if (st != DIFFSDE_OK)
            break;
        for (size_t p = 0; p < m; p++) {
            size_t unit = s.round[p];
            conclude(&s, p, unit, error_norm(&s, p, unit));
        }
        size_t q = 0;
        for (size_t a = 0; a < s.nact; a++)
            if (s.u[U_T][s.act[a]] != run->t1)
                s.act[q++] = s.act[a];
        s.nact = q;
    }
    uint64_t acc = 0, rej = 0;
    for (size_t u = 0; u < U; u++) {
        acc += (uint64_t)s.u[U_NACC][u];
        rej += (uint64_t)s.u[U_NREJ][u];
        if ((size_t)s.u[U_NACC][u] > total_steps)
            total_steps = (size_t)s.u[U_NACC][u];
    }
    run->stats->steps = total_steps;
    run->stats->accepted = acc;
    run->stats->rejected = rej;
    return st;
}

const diffsde_i_integrator diffsde_i_integrator_rk45 = {
    .method = DIFFSDE_ODE_RK45,
    .name = "rk45",
    .order = 5,
    .flags = DIFFSDE_I_ODE_ADAPTIVE,
    .default_steps = 0,
    .default_grid = DIFFSDE_GRID_UNIFORM,
    .work_size = rk45_work_size,
    .solve = rk45_solve,
};
