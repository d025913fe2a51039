/*
 * The small-D evaluation of p_t = Σ_k w_k N(α μ_k, C_k) (D ≤ the evaluator's small_dim_max):
 * hand-written substitutions with the reciprocal diagonals of the cached factors, vectorised
 * over chunks of LANES = DIFFSDE_I_GMM_PAD points stored by coordinate, and a two-pass
 * log-sum-exp whose exponentials are computed here (exp_nonpos) so that they vectorise too.
 * Only what is requested is computed: log p and the responsibilities need one pass over the
 * components, the score a second, the divergence a third (see chunk_small).
 *
 * Reproducibility: each point's arithmetic is a fixed sequence of IEEE-754 operations of its
 * own lane (sums over the components in component order; no fused multiply-adds), so its
 * results do not depend on the other points of the batch, on its lane or chunk, or on which
 * of the instruction-set clones runs.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "gmm/gmm_impl.h"

/*
 * Compiled so that the loops over the lanes of a chunk vectorise: GCC's ordinary cost model
 * (-O2 uses a "very cheap" one that declines these loops), comparisons assumed not to trap
 * (otherwise a select, as in exp_nonpos, keeps its loop scalar), contraction into fused
 * multiply-adds forbidden (it would change the last bits between instruction sets), and on
 * x86-64 with GCC clones for AVX-512F, AVX2 and the baseline picked at load time
 * (DIFFSDE_NO_SIMD turns the clones off). None of this changes a value: every operation is
 * a correctly rounded IEEE-754 one in a fixed order, so each point's result is the same in
 * any lane, chunk or clone (checked bit for bit between the three clones and a clang build).
 */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off", "tree-vectorize", "vect-cost-model=dynamic", \
                     "no-trapping-math")
#endif

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__ELF__) && \
    __GNUC__ >= 6 && !defined(DIFFSDE_NO_SIMD)
#define SMALL_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define SMALL_CLONES
#endif

/* Always inlined, so that the dimension is a constant in each specialisation below, whose
 * loops over coordinates are then unrolled completely (UNROLL). */
#if defined(__GNUC__) || defined(__clang__)
#define KERNEL static inline __attribute__((always_inline))
#else
#define KERNEL static inline
#endif
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 8
#define UNROLL _Pragma("GCC unroll 8")
#else
#define UNROLL /* clang unrolls these loops by itself */
#endif

/* Before a loop over the lanes: its arrays do not overlap (restrict, which the compiler does
 * not carry through inlining, says so for the kernels' parameters). */
#if defined(__GNUC__) && !defined(__clang__)
#define IVDEP _Pragma("GCC ivdep")
#else
#define IVDEP
#endif

/* Points per chunk: a block's scratch is cut into chunks (DIFFSDE_I_GMM_BLOCK is a multiple);
 * a chunk's arrays are stored [coordinate or component][lane]. */
#define LANES DIFFSDE_I_GMM_PAD

/* Dimensions up to this get a kernel specialised for their value (each lane's vectors held
 * in registers); larger ones loop over coordinates with the lanes innermost. */
#define FIXED_DIM_MAX 8

/*
 * exp(x) for the relative weights of log-sum-exp (x ≤ 0), without branches or calls, so that
 * it vectorises (glibc's exp is a call, and a slow one where it underflows — for most
 * components, far from a point). x = n ln 2 + r with n = round(x / ln 2) (adding 1.5·2⁵²
 * leaves n in the low bits of the representation), ln 2 split in two so that n·LN2_HI is
 * exact, |r| ≤ ln 2 / 2 + ε; exp r by its Taylor polynomial of degree 13 (truncation below
 * 1e-17 relative); 2ⁿ built in the exponent field. Below −708 (results under 3.4e-308, and
 * −∞) the result is 0 (a select: the arithmetic is meaningless there); NaN gives NaN;
 * exp(0) = 1 exactly. Against expl over 2·10⁷ points of [−708, 0]: at most 0.96 ulp, 0.27
 * ulp on average (glibc's exp: 0.51 and 0.25).
 */
#define EXP_SHIFT 0x1.8p52
#define EXP_SHIFT_BITS UINT64_C(0x4338000000000000) /* the representation of EXP_SHIFT */
#define EXP_INV_LN2 0x1.71547652b82fep+0
#define EXP_LN2_HI 0x1.62e42fee00000p-1 /* 32 significant bits: n·LN2_HI is exact */
#define EXP_LN2_LO 0x1.a39ef35793c76p-33
#define EXP_MIN (-708.0)

KERNEL double exp_nonpos(double x)
{
    double kd = x * EXP_INV_LN2 + EXP_SHIFT, n = kd - EXP_SHIFT;
    double r = (x - n * EXP_LN2_HI) - n * EXP_LN2_LO;
    /* Σ_{i≤13} rⁱ/i! = 1 + (r + r²(a1 + r²(b1 + r⁴ c1))), a short dependency chain
     * (Estrin's scheme) with the 1 added last */
    double r2 = r * r, r4 = r2 * r2;
    double a1 = 1.0 / 2 + r * (1.0 / 6), a2 = 1.0 / 24 + r * (1.0 / 120);
    double a3 = 1.0 / 720 + r * (1.0 / 5040), a4 = 1.0 / 40320 + r * (1.0 / 362880);
    double a5 = 1.0 / 3628800 + r * (1.0 / 39916800);
    double a6 = 1.0 / 479001600 + r * (1.0 / 6227020800);
    double b1 = a2 + r2 * a3, c1 = (a4 + r2 * a5) + r4 * a6;
    double p = 1.0 + (r + r2 * (a1 + r2 * (b1 + r4 * c1)));
    uint64_t kb, sb;
    memcpy(&kb, &kd, sizeof kb);
    sb = (kb - EXP_SHIFT_BITS + 1023u) << 52; /* 2ⁿ for −1022 ≤ n ≤ 1023 */
    double scale;
    memcpy(&scale, &sb, sizeof scale);
    return x < EXP_MIN ? 0.0 : p * scale; /* NaN: the comparison is false, p is NaN */
}

/*
 * The substitutions, in one fixed order for every kernel below: forward, for j = 0..D−1,
 *   v = (x_j − α μ_j) − L_j0 y_0 − … − L_j,j−1 y_j−1,  y_j = v · (1/L_jj),  q += y_j²;
 * back, for j = D−1..0, z_j = (y_j − L_j+1,j z_j+1 − … − L_D−1,j z_D−1) · (1/L_jj).
 */

/* One lane (x_j = xl[j·LANES]), y a local vector (D ≤ FIXED_DIM_MAX); returns ‖y‖². */
KERNEL double lane_forward(size_t D, const double *restrict L, const double *restrict rd,
                           const double *restrict mu, double a, const double *restrict xl,
                           double *restrict y)
{
    double q = 0;
    UNROLL
    for (size_t j = 0; j < D; j++) {
        double v = xl[j * LANES] - a * mu[j];
        UNROLL
        for (size_t i = 0; i < j; i++)
            v -= L[j * D + i] * y[i];
        v *= rd[j];
        y[j] = v;
        q += v * v;
    }
    return q;
}

KERNEL void lane_back(size_t D, const double *restrict L, const double *restrict rd,
                      double *restrict y)
{
    UNROLL
    for (size_t j = D; j-- > 0;) {
        double v = y[j];
        UNROLL
        for (size_t i = j + 1; i < D; i++)
            v -= L[i * D + j] * y[i];
        y[j] = v * rd[j];
    }
}

/* All lanes, coordinates outermost (any D): y[j][l], q[l] = ‖y[·][l]‖². */
KERNEL void soa_forward(size_t D, const double *restrict L, const double *restrict rd,
                        const double *restrict mu, double a, const double *restrict xs,
                        double *restrict y, double *restrict q)
{
    for (size_t l = 0; l < LANES; l++)
        q[l] = 0;
    for (size_t j = 0; j < D; j++) {
        double v[LANES], am = a * mu[j];
        for (size_t l = 0; l < LANES; l++)
            v[l] = xs[j * LANES + l] - am;
        for (size_t i = 0; i < j; i++)
            for (size_t l = 0; l < LANES; l++)
                v[l] -= L[j * D + i] * y[i * LANES + l];
        for (size_t l = 0; l < LANES; l++) {
            v[l] *= rd[j];
            y[j * LANES + l] = v[l];
            q[l] += v[l] * v[l];
        }
    }
}

KERNEL void soa_back(size_t D, const double *restrict L, const double *restrict rd,
                     double *restrict y)
{
    for (size_t j = D; j-- > 0;) {
        double v[LANES];
        for (size_t l = 0; l < LANES; l++)
            v[l] = y[j * LANES + l];
        for (size_t i = j + 1; i < D; i++)
            for (size_t l = 0; l < LANES; l++)
                v[l] -= L[i * D + j] * y[i * LANES + l];
        for (size_t l = 0; l < LANES; l++)
            y[j * LANES + l] = v[l] * rd[j];
    }
}

/* One chunk's work: the inputs, outputs and scratch of chunk_passes. */
typedef struct chunk_job {
    const diffsde_i_gmm_factor *f;
    const double *mean;  /* K × D */
    size_t D, K;
    int want_s, want_div; /* score, divergence requested */
    const double *x;     /* the caller's points (n × D) */
    const size_t *idx;   /* LANES: the chunk's rows of x (increasing), the first cnt valid */
    size_t cnt;          /* the lanes beyond cnt hold x = 0, computed and discarded */
    double *xs;          /* D × LANES: the chunk's points */
    double *y;           /* D × LANES: scratch */
    double *q;           /* LANES: scratch */
    double *w;           /* K × LANES: log terms a_k, then weights w_k */
    double *m, *W;       /* LANES: max_k a_k, Σ_k w_k */
    double *s;           /* D × LANES: the score (want_s or want_div) */
    double *T, *S;       /* LANES: Σ_k w_k tr C_k⁻¹, Σ_k w_k ‖s_k − s‖² (want_div) */
    double *score;       /* the caller's score (n × D), written here, or NULL */
    uint64_t bad[LANES]; /* 1 when log p (m, W) or the score written is not finite */
} chunk_job;

/*
 * One component (L, rd = 1/diag L, μ), all lanes: the lanes outermost with local vectors for
 * D ≤ FIXED_DIM_MAX, else the coordinates outermost in the scratch y (q: scratch).
 * comp_logterm: lt[l] = log c − ½‖L⁻¹ (x_l − α μ)‖².
 */
KERNEL void comp_logterm(size_t D, const double *restrict L, const double *restrict rd,
                         const double *restrict mu, double a, double logc,
                         const double *restrict xs, double *restrict y, double *restrict q,
                         double *restrict lt)
{
    if (D <= FIXED_DIM_MAX) {
        IVDEP
        for (size_t l = 0; l < LANES; l++) {
            double yl[FIXED_DIM_MAX];
            lt[l] = logc - 0.5 * lane_forward(D, L, rd, mu, a, xs + l, yl);
        }
    } else {
        soa_forward(D, L, rd, mu, a, xs, y, q);
        for (size_t l = 0; l < LANES; l++)
            lt[l] = logc - 0.5 * q[l];
    }
}

/* comp_score: s[·][l] −= w[l] z_l, z_l = C⁻¹ (x_l − α μ). */
KERNEL void comp_score(size_t D, const double *restrict L, const double *restrict rd,
                       const double *restrict mu, double a, const double *restrict xs,
                       const double *restrict w, double *restrict y, double *restrict q,
                       double *restrict s)
{
    if (D <= FIXED_DIM_MAX) {
        IVDEP
        for (size_t l = 0; l < LANES; l++) {
            double yl[FIXED_DIM_MAX];
            lane_forward(D, L, rd, mu, a, xs + l, yl);
            lane_back(D, L, rd, yl);
            UNROLL
            for (size_t j = 0; j < D; j++)
                s[j * LANES + l] -= w[l] * yl[j];
        }
    } else {
        soa_forward(D, L, rd, mu, a, xs, y, q);
        soa_back(D, L, rd, y);
        for (size_t j = 0; j < D; j++)
            for (size_t l = 0; l < LANES; l++)
                s[j * LANES + l] -= w[l] * y[j * LANES + l];
    }
}

/* comp_sqdev: S[l] += w[l] ‖−z_l − s[·][l]‖². */
KERNEL void comp_sqdev(size_t D, const double *restrict L, const double *restrict rd,
                       const double *restrict mu, double a, const double *restrict xs,
                       const double *restrict w, const double *restrict s,
                       double *restrict y, double *restrict q, double *restrict S)
{
    if (D <= FIXED_DIM_MAX) {
        IVDEP
        for (size_t l = 0; l < LANES; l++) {
            double yl[FIXED_DIM_MAX], d2 = 0;
            lane_forward(D, L, rd, mu, a, xs + l, yl);
            lane_back(D, L, rd, yl);
            UNROLL
            for (size_t j = 0; j < D; j++) {
                double d = -yl[j] - s[j * LANES + l];
                d2 += d * d;
            }
            S[l] += w[l] * d2;
        }
    } else {
        soa_forward(D, L, rd, mu, a, xs, y, q);
        soa_back(D, L, rd, y);
        for (size_t l = 0; l < LANES; l++)
            q[l] = 0;
        for (size_t j = 0; j < D; j++)
            for (size_t l = 0; l < LANES; l++) {
                double d = -y[j * LANES + l] - s[j * LANES + l];
                q[l] += d * d;
            }
        for (size_t l = 0; l < LANES; l++)
            S[l] += w[l] * q[l];
    }
}

/* Log terms a_k → w_k = exp(a_k − m) in place, m = max_k a_k, W = Σ_k w_k. */
KERNEL void lse_weights(size_t K, double *restrict w, double *restrict m, double *restrict W)
{
    for (size_t l = 0; l < LANES; l++) {
        m[l] = w[l];
        W[l] = 0;
    }
    for (size_t k = 1; k < K; k++)
        for (size_t l = 0; l < LANES; l++)
            m[l] = w[k * LANES + l] > m[l] ? w[k * LANES + l] : m[l];
    for (size_t k = 0; k < K; k++)
        for (size_t l = 0; l < LANES; l++) {
            double e = exp_nonpos(w[k * LANES + l] - m[l]);
            w[k * LANES + l] = e;
            W[l] += e;
        }
}

/* s ← s / W; T = Σ_k w_k tr C_k⁻¹ (component order). */
KERNEL void finish_score(size_t D, size_t K, const double *restrict trinv,
                         const double *restrict w, const double *restrict W, double *restrict s,
                         double *restrict T, int want_div)
{
    for (size_t j = 0; j < D; j++)
        for (size_t l = 0; l < LANES; l++)
            s[j * LANES + l] /= W[l];
    if (!want_div)
        return;
    for (size_t l = 0; l < LANES; l++)
        T[l] = 0;
    for (size_t k = 0; k < K; k++)
        for (size_t l = 0; l < LANES; l++)
            T[l] += w[k * LANES + l] * trinv[k];
}

/* 1 when v is ±∞ or NaN (all exponent bits set: adding one carries into the sign bit). */
KERNEL uint64_t not_finite(double v)
{
    uint64_t b;
    memcpy(&b, &v, sizeof b);
    return ((b & UINT64_C(0x7ff0000000000000)) + UINT64_C(0x0010000000000000)) >> 63;
}

/* bad[l] for m, W and, if given, the score s; the score scattered to the caller's rows. */
KERNEL void finish_lanes(size_t D, const size_t *restrict idx, size_t cnt,
                         const double *restrict m, const double *restrict W,
                         const double *restrict s, double *restrict score,
                         uint64_t *restrict bad)
{
    for (size_t l = 0; l < LANES; l++)
        bad[l] = not_finite(m[l]) | not_finite(W[l]);
    if (!score)
        return;
    for (size_t j = 0; j < D; j++)
        for (size_t l = 0; l < LANES; l++)
            bad[l] |= not_finite(s[j * LANES + l]);
    for (size_t l = 0; l < cnt; l++)
        for (size_t j = 0; j < D; j++)
            score[idx[l] * D + j] = s[j * LANES + l];
}

/* The passes of chunk_small over the components, sums over k in component order. */
KERNEL void chunk_passes(chunk_job *c, size_t D)
{
    const diffsde_i_gmm_factor *f = c->f;
    const size_t K = c->K, DD = D * D;
    if (c->cnt == LANES && c->idx[LANES - 1] - c->idx[0] == LANES - 1) {
        /* consecutive rows (idx increases): a transposition */
        const double *x0 = c->x + c->idx[0] * D;
        for (size_t l = 0; l < LANES; l++)
            for (size_t j = 0; j < D; j++)
                c->xs[j * LANES + l] = x0[l * D + j];
    } else {
        for (size_t l = 0; l < LANES; l++)
            for (size_t j = 0; j < D; j++)
                c->xs[j * LANES + l] = l < c->cnt ? c->x[c->idx[l] * D + j] : 0.0;
    }
    for (size_t k = 0; k < K; k++)
        comp_logterm(D, f->L + k * DD, f->rdiag + k * D, c->mean + k * D, f->alpha, f->logc[k],
                     c->xs, c->y, c->q, c->w + k * LANES);
    lse_weights(K, c->w, c->m, c->W);
    if (!c->want_s && !c->want_div) {
        finish_lanes(D, c->idx, c->cnt, c->m, c->W, c->s, NULL, c->bad);
        return;
    }
    for (size_t j = 0; j < D * LANES; j++)
        c->s[j] = 0;
    for (size_t k = 0; k < K; k++)
        comp_score(D, f->L + k * DD, f->rdiag + k * D, c->mean + k * D, f->alpha, c->xs,
                   c->w + k * LANES, c->y, c->q, c->s);
    finish_score(D, K, f->trinv, c->w, c->W, c->s, c->T, c->want_div);
    finish_lanes(D, c->idx, c->cnt, c->m, c->W, c->s, c->score, c->bad);
    if (!c->want_div)
        return;
    for (size_t l = 0; l < LANES; l++)
        c->S[l] = 0;
    for (size_t k = 0; k < K; k++)
        comp_sqdev(D, f->L + k * DD, f->rdiag + k * D, c->mean + k * D, f->alpha, c->xs,
                   c->w + k * LANES, c->s, c->y, c->q, c->S);
}

/* The passes with the dimension a constant for D ≤ FIXED_DIM_MAX. */
SMALL_CLONES static void chunk_compute(chunk_job *c)
{
    switch (c->D) {
    case 1:
        chunk_passes(c, 1);
        break;
    case 2:
        chunk_passes(c, 2);
        break;
    case 3:
        chunk_passes(c, 3);
        break;
    case 4:
        chunk_passes(c, 4);
        break;
    case 5:
        chunk_passes(c, 5);
        break;
    case 6:
        chunk_passes(c, 6);
        break;
    case 7:
        chunk_passes(c, 7);
        break;
    case 8:
        chunk_passes(c, 8);
        break;
    default:
        chunk_passes(c, c->D);
        break;
    }
}

/* Outputs requested by the caller (NULL: not computed). */
typedef struct outputs {
    double *logp, *score, *div, *resp;
} outputs;

/*
 * Points ev->idx[c0 .. c0 + cnt) of x (cnt ≤ LANES; the lanes beyond cnt hold x = 0, are
 * computed and discarded), in two or three passes over the components:
 *   1. a_k = log c_k − ½‖L_k⁻¹ r_k‖² (r_k = x − α μ_k); m = max_k a_k; w_k = exp(a_k − m),
 *      W = Σ_k w_k ≥ 1 (the maximum's weight is exactly 1): log p = m + log W,
 *      γ_k = w_k / W;
 *   2. (score or div) z_k = C_k⁻¹ r_k, the forward substitution repeated rather than stored
 *      for every k: s = Σ_k w_k (−z_k) / W;
 *   3. (div) div = S / W − T / W with S = Σ_k w_k ‖−z_k − s‖² (deviations from the final
 *      mean, no cancellation) and T = Σ_k w_k tr C_k⁻¹.
 */
static int chunk_small(diffsde_gmm_eval *ev, const diffsde_i_gmm_factor *f, size_t c0,
                       size_t cnt, const double *x, const outputs *o, const char *fn)
{
    const size_t D = ev->dim, K = ev->K;
    chunk_job c = {f,
                   ev->gmm->mean,
                   D,
                   K,
                   o->score != NULL,
                   o->div != NULL,
                   x,
                   ev->idx + c0,
                   cnt,
                   ev->xb + c0 * D,
                   ev->work + c0 * D,
                   ev->qn + c0,
                   ev->lterm + c0 * K,
                   ev->pmax + c0,
                   ev->wsum + c0,
                   ev->acc + c0 * D,
                   ev->trw + c0,
                   ev->dss + c0,
                   o->score,
                   {0}};
    chunk_compute(&c);
    if (!o->logp && !o->div && !o->resp) { /* the score alone: written, unless a lane is bad */
        uint64_t any = 0;
        for (size_t l = 0; l < cnt; l++)
            any |= c.bad[l];
        if (!any)
            return DIFFSDE_OK;
    }
    for (size_t l = 0; l < cnt; l++) {
        size_t i = ev->idx[c0 + l];
        double m = c.m[l], W = c.W[l];
        int bad = c.bad[l] != 0; /* log p = m + log W is finite when m and W (≥ 1) are */
        if (o->logp)
            o->logp[i] = m == -INFINITY ? -INFINITY : m + log(W);
        if (o->div) {
            o->div[i] = c.S[l] / W - c.T[l] / W;
            bad |= !isfinite(o->div[i]);
        }
        if (o->resp)
            for (size_t k = 0; k < K; k++)
                o->resp[i * K + k] = c.w[k * LANES + l] / W;
        if (bad)
            return diffsde_i_fail(ev->ctx, DIFFSDE_ENONFINITE,
                                  "%s: sample %zu at t = %.17g: log p_t = %g; the point is too "
                                  "far from every component for double precision",
                                  fn, i, f->t, m == -INFINITY ? -INFINITY : m + log(W));
    }
    return DIFFSDE_OK;
}


int diffsde_i_gmm_eval_small(diffsde_gmm_eval *ev, const diffsde_i_gmm_factor *f, size_t nb,
                             const double *x, double *logp, double *score, double *div,
                             double *resp, const char *fn)
{
    outputs o = {logp, score, div, resp};
    for (size_t c0 = 0; c0 < nb; c0 += LANES) {
        int st = chunk_small(ev, f, c0, nb - c0 < LANES ? nb - c0 : LANES, x, &o, fn);
        if (st != DIFFSDE_OK)
            return st;
    }
    return DIFFSDE_OK;
}

int diffsde_i_gmm_inputs_ok(size_t nx, const double *x, size_t n, const double *t, double T)
{
    uint64_t bad = 0;
    for (size_t k = 0; k < nx; k++)
        bad |= not_finite(x[k]);
    if (t)
        for (size_t i = 0; i < n; i++)
            bad |= (uint64_t)!((t[i] >= 0) & (t[i] <= T));
    return bad == 0;
}
