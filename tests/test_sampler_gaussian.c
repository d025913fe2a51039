/*
 * The samplers on Gaussian data, exactly. With p0 = N(m, S) the score is affine,
 *   s(x, t) = −C_t⁻¹ (x − α_t m),   C_t = α_t² S + σ_t² I,
 * so every predictor step and every corrector whose step size does not depend on the state
 * is x' = A x + b + √q z, and the law of the output is Gaussian with moments given by
 *   μ' = A μ + b,   P' = A P Aᵀ + q I     (prior: μ = 0, P = prior_std² I),
 * the final Tweedie step x̂0 = (x + σ_ε² s(x, ε))/α_ε included. This file computes that
 * discrete-time recursion itself — from the closed forms of sde.h and the step formulas of
 * sampler.h and the corrector files, never from the library — and checks the samplers against
 * it. d = 2, m = (1.3, −0.7), S = [[1.2, 0.5], [0.5, 0.8]] (one full-covariance component of
 * diffsde_gmm, exact score diffsde_gmm_score_new()), default SDE parameters, default grid,
 * N = 50 levels (VP's DDPM table is valid for N > βmax = 20).
 *
 * Tests:
 * - exactness: every predictor (euler-maruyama, reverse-diffusion, ancestral where valid)
 *   with corrector none and with corrector ald, and ald alone, under VE, VP and sub-VP (19
 *   configurations): n = 10⁵ samples, Philox seed SEED, configuration k drawing sample indices
 *   k·n … (k + 1)·n − 1, so that the configurations are independent; the sample
 *   mean and covariance (divisor n − 1) against μ and P within 4 standard errors, SE(μ̂_i) =
 *   √(P_ii/n), SE(P̂_ij) = √((P_ii P_jj + P_ij²)/n) (the output is exactly Gaussian);
 * - Langevin (its step 2a(snr‖z‖/‖s‖)² depends on the state, so the recursion is not linear):
 *   (a) the exact law of one step from a fixed point x0, for which ε = c‖z‖², c =
 *   2a snr²/‖s(x0)‖², gives x' − x0 = c‖z‖² s + √(2c) ‖z‖ z with mean 2c s and covariance
 *   4c² s sᵀ + 8c I (d = 2: E‖z‖² = 2, Var‖z‖² = 4, E[‖z‖² z zᵀ] = 2 I); checked at levels 0,
 *   N/2 and N − 1 for each SDE (the state is reset to x0 before those levels' step, predictor
 *   none), n = 10⁵, 4 standard errors, the covariance's from the law's exact fourth moments
 *   (one_step_law()); (b) whole runs replayed: 7 samples (global
 *   indices 5..11) of PC runs with per-sample and with batch-averaged norms, recomputed here
 *   from the same Philox draws at the pinned streams and steps of sampler.h, to 1e-10.
 * - discretisation bias (a report, printed as TAP comments and copied into
 *   doc/sampler-accuracy.md): the recursion's distance to the continuous truth, p_ε =
 *   N(α_ε m, C_ε) followed by Tweedie, i.e. N(m, α_ε² S C_ε⁻¹ S), for N = 50 … 1000, beside
 *   each predictor's limit N → ∞ (the moment ODEs of the reverse SDE started from the prior,
 *   RK4; the table-based predictors' run κ = T/(T − ε) times faster, see
 *   continuous_from_prior()), which the recursion must approach at first order.
 *
 * False-failure probability of the 4-SE checks (two-sided normal tail 6.33e-5 each; the
 * outcome at the fixed seed is deterministic, the rate says how likely another seed is to
 * fail): 19 × 5 + 9 × 5 = 140 checks, Bonferroni ≤ 140 × 6.33e-5 = 8.9e-3.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "diffsde/sampler.h"
#include "testutil.h"

#define SEED UINT64_C(0x6a09e667f3bcc908)
#define NS 100000
#define NLEV 50
#define ZMAX 4.0
#define SMIN DIFFSDE_VE_SIGMA_MIN
#define SMAX DIFFSDE_VE_SIGMA_MAX
#define BMIN DIFFSDE_VP_BETA_MIN
#define BMAX DIFFSDE_VP_BETA_MAX

static const double M0[2] = {1.3, -0.7};
static const double S0[4] = {1.2, 0.5, 0.5, 0.8};
static const diffsde_sde_kind KINDS[3] = {DIFFSDE_SDE_VE, DIFFSDE_SDE_VP, DIFFSDE_SDE_SUBVP};

/* ---- closed forms of sde.h, written out here ------------------------------------------ */

typedef struct coefs {
    double alpha, sigma, f, g2;
} coefs;

static coefs sde_coefs(diffsde_sde_kind k, double t)
{
    coefs c;
    if (k == DIFFSDE_SDE_VE) {
        double r = log(SMAX / SMIN);
        c.alpha = 1;
        c.sigma = SMIN * exp(t * r);
        c.f = 0;
        c.g2 = 2 * r * c.sigma * c.sigma;
        return c;
    }
    double beta = BMIN + t * (BMAX - BMIN), B = BMIN * t + 0.5 * (BMAX - BMIN) * t * t;
    c.alpha = exp(-B / 2);
    c.f = -beta / 2;
    c.sigma = k == DIFFSDE_SDE_VP ? sqrt(-expm1(-B)) : -expm1(-B);
    c.g2 = k == DIFFSDE_SDE_VP ? beta : -beta * expm1(-2 * B);
    return c;
}

static double default_eps(diffsde_sde_kind k)
{
    return k == DIFFSDE_SDE_VE ? 1e-5 : 1e-3;
}

static double default_snr(diffsde_sde_kind k)
{
    return k == DIFFSDE_SDE_VE ? 0.16 : 0.01;
}

/* Entry j of the discrete table on N levels (NumPy linspace: start + j·step, last = stop):
 * VE σ_j = exp(linspace(log σmin, log σmax, N))[j]; VP, sub-VP β_j = linspace(βmin/N, βmax/N). */
static double table_at(diffsde_sde_kind k, size_t N, size_t j)
{
    double lo = k == DIFFSDE_SDE_VE ? log(SMIN) : BMIN / (double)N;
    double hi = k == DIFFSDE_SDE_VE ? log(SMAX) : BMAX / (double)N;
    double v = j == N - 1 ? hi : lo + (double)j * ((hi - lo) / (double)(N - 1));
    return k == DIFFSDE_SDE_VE ? exp(v) : v;
}

static size_t table_index(double t, size_t N)
{
    double j = floor(t * (double)(N - 1));
    return j < 0 ? 0 : j > (double)(N - 1) ? N - 1 : (size_t)j;
}

/* Level i of the default grid: t_i = T − i (T − ε)/N, T = 1. */
static double grid_t(diffsde_sde_kind k, size_t N, size_t i)
{
    return 1.0 - (double)i * ((1.0 - default_eps(k)) / (double)N);
}

/* ---- one step x' = a1 x + a2 s(x, t) + √q z, and its coefficients per method ----------- */

typedef struct stepc {
    double a1, a2, q;
} stepc;

static stepc predictor_coefs(diffsde_sde_kind k, diffsde_predictor p, size_t N, double t)
{
    stepc r = {1, 0, 0};
    size_t j = table_index(t, N);
    double dt = (1.0 - default_eps(k)) / (double)N;
    coefs c = sde_coefs(k, t);
    if (p == DIFFSDE_PREDICTOR_EULER_MARUYAMA) { /* x̄ = x − (f x − g² s) dt, noise g √dt */
        r.a1 = 1 - c.f * dt;
        r.a2 = r.q = c.g2 * dt;
    } else if (p == DIFFSDE_PREDICTOR_REVERSE_DIFFUSION) { /* x̄ = x − f_d + G² s, noise G */
        if (k == DIFFSDE_SDE_VE) {
            double sj = table_at(k, N, j), sm = j ? table_at(k, N, j - 1) : 0;
            r.a2 = r.q = sj * sj - sm * sm;
        } else if (k == DIFFSDE_SDE_VP) {
            double b = table_at(k, N, j);
            r.a1 = 2 - sqrt(1 - b); /* 1 − f_coef, f_coef = √(1 − b) − 1 */
            r.a2 = r.q = b;
        } else { /* generic: f_coef = f T/N, G² = g² T/N */
            r.a1 = 1 - c.f / (double)N;
            r.a2 = r.q = c.g2 / (double)N;
        }
    } else if (p == DIFFSDE_PREDICTOR_ANCESTRAL) {
        if (k == DIFFSDE_SDE_VE) {
            double sj = table_at(k, N, j), sm = j ? table_at(k, N, j - 1) : 0;
            r.a2 = sj * sj - sm * sm;
            r.q = sm * sm * r.a2 / (sj * sj);
        } else { /* VP: x̄ = (x + b s)/√(1 − b), noise √b */
            double b = table_at(k, N, j);
            r.a1 = 1 / sqrt(1 - b);
            r.a2 = b / sqrt(1 - b);
            r.q = b;
        }
    }
    return r;
}

/* Langevin/ALD's a: 1 − β_j (VP and sub-VP), 1 (VE). */
static double corrector_a(diffsde_sde_kind k, size_t N, double t)
{
    return k == DIFFSDE_SDE_VE ? 1.0 : 1.0 - table_at(k, N, table_index(t, N));
}

/* ALD: ε = 2 a (snr σ(t))², x' = x + ε s + √(2ε) z. */
static stepc ald_coefs(diffsde_sde_kind k, size_t N, double t, double snr)
{
    double sg = sde_coefs(k, t).sigma, e = 2 * corrector_a(k, N, t) * (snr * sg) * (snr * sg);
    stepc r = {1, e, 2 * e};
    return r;
}

/* ---- moments of a Gaussian law under affine steps --------------------------------------- */

typedef struct gmom {
    double mu[2], P[4]; /* P row-major, symmetric */
} gmom;

/* C_t⁻¹ and α_t. */
static double cinv(diffsde_sde_kind k, double t, double Ci[4])
{
    coefs c = sde_coefs(k, t);
    double a2 = c.alpha * c.alpha, s2 = c.sigma * c.sigma;
    double C0 = a2 * S0[0] + s2, C1 = a2 * S0[1], C3 = a2 * S0[3] + s2, det = C0 * C3 - C1 * C1;
    Ci[0] = C3 / det;
    Ci[1] = Ci[2] = -C1 / det;
    Ci[3] = C0 / det;
    return c.alpha;
}

static void affine(gmom *g, const double A[4], const double b[2], double q)
{
    double mu0 = A[0] * g->mu[0] + A[1] * g->mu[1] + b[0];
    double mu1 = A[2] * g->mu[0] + A[3] * g->mu[1] + b[1];
    double AP[4] = {A[0] * g->P[0] + A[1] * g->P[2], A[0] * g->P[1] + A[1] * g->P[3],
                    A[2] * g->P[0] + A[3] * g->P[2], A[2] * g->P[1] + A[3] * g->P[3]};
    g->P[0] = AP[0] * A[0] + AP[1] * A[1] + q;
    g->P[1] = g->P[2] = AP[0] * A[2] + AP[1] * A[3];
    g->P[3] = AP[2] * A[2] + AP[3] * A[3] + q;
    g->mu[0] = mu0;
    g->mu[1] = mu1;
}

/* x' = a1 x + a2 s(x, t) + √q z with s = −C⁻¹x + α C⁻¹ m: A = a1 I − a2 C⁻¹, b = a2 α C⁻¹ m. */
static void step_moments(gmom *g, diffsde_sde_kind k, double t, stepc c)
{
    double Ci[4], al = cinv(k, t, Ci);
    double A[4] = {c.a1 - c.a2 * Ci[0], -c.a2 * Ci[1], -c.a2 * Ci[2], c.a1 - c.a2 * Ci[3]};
    double b[2] = {c.a2 * al * (Ci[0] * M0[0] + Ci[1] * M0[1]),
                   c.a2 * al * (Ci[2] * M0[0] + Ci[3] * M0[1])};
    affine(g, A, b, c.q);
}

/* Tweedie at ε: x̂0 = (x + σ² s)/α. */
static void tweedie_moments(gmom *g, diffsde_sde_kind k)
{
    coefs c = sde_coefs(k, default_eps(k));
    stepc tw = {1 / c.alpha, c.sigma * c.sigma / c.alpha, 0};
    step_moments(g, k, default_eps(k), tw);
}

static gmom prior_moments(diffsde_sde_kind k)
{
    double v = k == DIFFSDE_SDE_VE ? SMAX * SMAX : 1.0;
    gmom g = {{0, 0}, {v, 0, 0, v}};
    return g;
}

/* The whole PC recursion: at each level the corrector (if ald) then the predictor. */
static gmom recursion(diffsde_sde_kind k, diffsde_predictor p, diffsde_corrector c, size_t N)
{
    gmom g = prior_moments(k);
    for (size_t i = 0; i < N; i++) {
        double t = grid_t(k, N, i);
        if (c == DIFFSDE_CORRECTOR_ALD)
            step_moments(&g, k, t, ald_coefs(k, N, t, default_snr(k)));
        if (p != DIFFSDE_PREDICTOR_NONE)
            step_moments(&g, k, t, predictor_coefs(k, p, N, t));
    }
    tweedie_moments(&g, k);
    return g;
}

/* The continuous truth: p_ε = N(α m, C_ε), then Tweedie. */
static gmom truth(diffsde_sde_kind k)
{
    coefs c = sde_coefs(k, default_eps(k));
    double a2 = c.alpha * c.alpha, s2 = c.sigma * c.sigma;
    gmom g = {{c.alpha * M0[0], c.alpha * M0[1]},
              {a2 * S0[0] + s2, a2 * S0[1], a2 * S0[2], a2 * S0[3] + s2}};
    tweedie_moments(&g, k);
    return g;
}

/* d/dt of (μ, P) along the reverse SDE (time decreasing) with f and g² scaled by κ: with
 * M = κ (f I + g² C⁻¹), dμ/dt = κ [f μ + g² C⁻¹ (μ − α m)], dP/dt = M P + P Mᵀ − κ g² I. */
static void ode_rhs(diffsde_sde_kind k, double kappa, double t, const gmom *g, gmom *d)
{
    double Ci[4], al = cinv(k, t, Ci);
    coefs c = sde_coefs(k, t);
    c.f *= kappa;
    c.g2 *= kappa;
    double M[4] = {c.f + c.g2 * Ci[0], c.g2 * Ci[1], c.g2 * Ci[2], c.f + c.g2 * Ci[3]};
    double r0 = g->mu[0] - al * M0[0], r1 = g->mu[1] - al * M0[1];
    d->mu[0] = c.f * g->mu[0] + c.g2 * (Ci[0] * r0 + Ci[1] * r1);
    d->mu[1] = c.f * g->mu[1] + c.g2 * (Ci[2] * r0 + Ci[3] * r1);
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++)
            d->P[2 * i + j] = M[2 * i] * g->P[j] + M[2 * i + 1] * g->P[2 + j] +
                              g->P[2 * i] * M[2 * j] + g->P[2 * i + 1] * M[2 * j + 1] -
                              (i == j ? c.g2 : 0);
}

static void axpy_mom(gmom *y, const gmom *x, double h, const gmom *d)
{
    for (int i = 0; i < 2; i++)
        y->mu[i] = x->mu[i] + h * d->mu[i];
    for (int i = 0; i < 4; i++)
        y->P[i] = x->P[i] + h * d->P[i];
}

/* A limit N → ∞: the moment ODEs from the prior at T to ε (RK4, m steps), then Tweedie.
 * κ = 1: the reverse SDE itself (Euler–Maruyama's limit). The table-based predictors
 * (reverse diffusion, ancestral) take N steps of the table's dt = T/N while the grid spans
 * T − ε: their limit is the reverse SDE run κ = T/(T − ε) times faster. */
static gmom continuous_from_prior(diffsde_sde_kind k, double kappa, size_t m)
{
    gmom g = prior_moments(k), k1, k2, k3, k4, tmp;
    double h = -(1.0 - default_eps(k)) / (double)m;
    for (size_t i = 0; i < m; i++) {
        double t = 1.0 + (double)i * h;
        ode_rhs(k, kappa, t, &g, &k1);
        axpy_mom(&tmp, &g, h / 2, &k1);
        ode_rhs(k, kappa, t + h / 2, &tmp, &k2);
        axpy_mom(&tmp, &g, h / 2, &k2);
        ode_rhs(k, kappa, t + h / 2, &tmp, &k3);
        axpy_mom(&tmp, &g, h, &k3);
        ode_rhs(k, kappa, t + h, &tmp, &k4);
        for (int j = 0; j < 2; j++)
            g.mu[j] += h / 6 * (k1.mu[j] + 2 * k2.mu[j] + 2 * k3.mu[j] + k4.mu[j]);
        for (int j = 0; j < 4; j++)
            g.P[j] += h / 6 * (k1.P[j] + 2 * k2.P[j] + 2 * k3.P[j] + k4.P[j]);
    }
    tweedie_moments(&g, k);
    return g;
}

/* ‖Δμ‖₂ and ‖ΔP‖_F. */
static void mom_dist(const gmom *a, const gmom *b, double *dmu, double *dP)
{
    double e0 = a->mu[0] - b->mu[0], e1 = a->mu[1] - b->mu[1], s = 0;
    for (int i = 0; i < 4; i++)
        s += (a->P[i] - b->P[i]) * (a->P[i] - b->P[i]);
    *dmu = hypot(e0, e1);
    *dP = sqrt(s);
}

/* ---- fixture ------------------------------------------------------------------------------ */

typedef struct fixture {
    diffsde_ctx *ctx;
    diffsde_sde *sde[3];
    diffsde_gmm *gmm;
    diffsde_score *score[3];
    diffsde_noise *noise;
    double *x; /* NS × 2 */
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f || diffsde_ctx_new(&f->ctx, NULL) ||
        diffsde_sde_new_ve(f->ctx, SMIN, SMAX, &f->sde[0]) ||
        diffsde_sde_new_vp(f->ctx, BMIN, BMAX, &f->sde[1]) ||
        diffsde_sde_new_subvp(f->ctx, BMIN, BMAX, &f->sde[2]) ||
        diffsde_gmm_new(f->ctx, 2, &f->gmm) || diffsde_gmm_add_full(f->gmm, 1.0, M0, S0) ||
        diffsde_gmm_finalize(f->gmm) || diffsde_noise_new_philox(f->ctx, SEED, &f->noise) ||
        !(f->x = malloc(sizeof(double) * 2 * NS)))
        return -1;
    for (int k = 0; k < 3; k++)
        if (diffsde_gmm_score_new(f->gmm, f->sde[k], &f->score[k]))
            return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    for (int k = 0; k < 3; k++) {
        diffsde_score_free(f->score[k]);
        diffsde_sde_free(f->sde[k]);
    }
    diffsde_gmm_free(f->gmm);
    diffsde_noise_free(f->noise);
    diffsde_ctx_free(f->ctx);
    free(f->x);
    free(f);
    return 0;
}

static diffsde_sampler *make_sampler(fixture *f, int ki, diffsde_predictor p, diffsde_corrector c,
                                     int batch_norms)
{
    diffsde_sampler_options opt;
    diffsde_sampler_options_default(&opt);
    opt.predictor = p;
    opt.corrector = c;
    opt.steps = NLEV;
    opt.batch_norms = batch_norms;
    diffsde_sampler *s = NULL;
    int st = diffsde_sampler_new(f->ctx, f->sde[ki], f->score[ki], &opt, &s);
    if (st != DIFFSDE_OK)
        print_error("diffsde_sampler_new: %s\n", diffsde_errmsg(f->ctx));
    assert_int_equal(st, DIFFSDE_OK);
    return s;
}

static void run(fixture *f, diffsde_sampler *s, uint64_t sample0, size_t n, double *x)
{
    int st = diffsde_sampler_run(s, f->noise, sample0, n, 2, x);
    if (st != DIFFSDE_OK)
        print_error("diffsde_sampler_run: %s\n", diffsde_errmsg(f->ctx));
    assert_int_equal(st, DIFFSDE_OK);
}

/* Compare the n samples' mean and covariance (divisor n − 1) with ref: returns the number of
 * |z| > ZMAX over the 5 checks. V: the variances of the products (x_i − μ_i)(x_j − μ_j) for
 * (i, j) = (0,0), (0,1), (1,1), or NULL for a Gaussian law (P_ii P_jj + P_ij²). */
static int check_moments(const char *label, const double *x, size_t n, const gmom *ref,
                         const double *V)
{
    double mu[2] = {0, 0}, P[3] = {0, 0, 0}, nn = (double)n;
    static const int I[3] = {0, 0, 1}, J[3] = {0, 1, 1};
    for (size_t i = 0; i < n; i++)
        for (int j = 0; j < 2; j++)
            mu[j] += x[2 * i + j];
    mu[0] /= nn;
    mu[1] /= nn;
    for (size_t i = 0; i < n; i++)
        for (int e = 0; e < 3; e++)
            P[e] += (x[2 * i + I[e]] - mu[I[e]]) * (x[2 * i + J[e]] - mu[J[e]]);
    double z[5], zabs = 0;
    int bad = 0;
    for (int j = 0; j < 2; j++)
        z[j] = (mu[j] - ref->mu[j]) / sqrt(ref->P[3 * j] / nn);
    for (int e = 0; e < 3; e++) {
        double pij = ref->P[2 * I[e] + J[e]];
        double var = V ? V[e] : ref->P[3 * I[e]] * ref->P[3 * J[e]] + pij * pij;
        z[2 + e] = (P[e] / (nn - 1) - pij) / sqrt(var / nn);
    }
    for (int e = 0; e < 5; e++) {
        bad += !(fabs(z[e]) <= ZMAX);
        zabs = fabs(z[e]) > zabs ? fabs(z[e]) : zabs;
    }
    printf("# %-34s z(mean) %+5.2f %+5.2f  z(cov) %+5.2f %+5.2f %+5.2f  max|z| %.2f%s\n", label,
           z[0], z[1], z[2], z[3], z[4], zabs, bad ? "  FAIL" : "");
    return bad;
}

static const char *kind_name(diffsde_sde_kind k)
{
    return k == DIFFSDE_SDE_VE ? "ve" : k == DIFFSDE_SDE_VP ? "vp" : "subvp";
}

/* ---- tests ---------------------------------------------------------------------------------- */

/* Every affine configuration against its recursion, 10⁵ samples, 4 SE. */
static void test_exact_moments(void **state)
{
    fixture *f = *state;
    static const diffsde_predictor preds[4] = {
        DIFFSDE_PREDICTOR_NONE, DIFFSDE_PREDICTOR_EULER_MARUYAMA,
        DIFFSDE_PREDICTOR_REVERSE_DIFFUSION, DIFFSDE_PREDICTOR_ANCESTRAL};
    static const diffsde_corrector corrs[2] = {DIFFSDE_CORRECTOR_NONE, DIFFSDE_CORRECTOR_ALD};
    int bad = 0, configs = 0;
    for (int ki = 0; ki < 3; ki++)
        for (int pi = 0; pi < 4; pi++)
            for (int ci = 0; ci < 2; ci++) {
                diffsde_sde_kind k = KINDS[ki];
                if ((pi == 0 && ci == 0) || (pi == 3 && k == DIFFSDE_SDE_SUBVP))
                    continue;
                diffsde_sampler *s = make_sampler(f, ki, preds[pi], corrs[ci], 0);
                run(f, s, (uint64_t)configs * NS, NS, f->x); /* independent draws per config */
                diffsde_sampler_free(s);
                gmom ref = recursion(k, preds[pi], corrs[ci], NLEV);
                char label[96];
                snprintf(label, sizeof label, "%s %s+%s N=%d", kind_name(k),
                         diffsde_predictor_name(preds[pi]), diffsde_corrector_name(corrs[ci]),
                         NLEV);
                bad += check_moments(label, f->x, NS, &ref, NULL);
                configs++;
            }
    assert_int_equal(configs, 19);
    assert_int_equal(bad, 0);
}

/* x0 at t: α m + √diag(C_t) ⊙ (0.83, −1.21), and s(x0, t). */
static void fixed_point(diffsde_sde_kind k, double t, double x0[2], double s[2])
{
    double Ci[4], al = cinv(k, t, Ci);
    coefs c = sde_coefs(k, t);
    double a2 = c.alpha * c.alpha, s2 = c.sigma * c.sigma;
    x0[0] = al * M0[0] + sqrt(a2 * S0[0] + s2) * 0.83;
    x0[1] = al * M0[1] - sqrt(a2 * S0[3] + s2) * 1.21;
    double r0 = x0[0] - al * M0[0], r1 = x0[1] - al * M0[1];
    s[0] = -(Ci[0] * r0 + Ci[1] * r1);
    s[1] = -(Ci[2] * r0 + Ci[3] * r1);
}

/* The law of one Langevin step from x0 with ε = c‖z‖² (d = 2): w = x' − x0 − 2c s =
 * (R − 2) a + b r z with R = r² = ‖z‖² ~ χ²₂ (E R^k = 2^k k!), a = c s, b = √(2c), and
 * z = r u, u uniform on the circle. Mean x0 + 2a; E[w_i w_j] = 4 a_i a_j + 4 b² δ_ij; the
 * variance of the products w_i w_j (odd terms vanish):
 *   E[(w_i w_j)²] = a_i² a_j² E(R−2)⁴ + δ_ij a_i a_j b² E R²(R−2)² + b⁴ E R⁴ E u_i² u_j²
 *                 + b² E R²(R−2)² (a_i² + a_j² + 2 δ_ij a_i a_j)/2,
 * with E(R−2)⁴ = 144, E R²(R−2)² = 224, E R⁴ = 384, E u_i⁴ = 3/8, E u_0² u_1² = 1/8. */
static void one_step_law(const double x0[2], const double s[2], double c, gmom *ref, double V[3])
{
    double a[2] = {c * s[0], c * s[1]}, b2 = 2 * c;
    static const int I[3] = {0, 0, 1}, J[3] = {0, 1, 1};
    for (int j = 0; j < 2; j++)
        ref->mu[j] = x0[j] + 2 * a[j];
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++)
            ref->P[2 * i + j] = 4 * a[i] * a[j] + (i == j ? 4 * b2 : 0);
    for (int e = 0; e < 3; e++) {
        double ai = a[I[e]], aj = a[J[e]], dl = I[e] == J[e];
        double m4 = ai * ai * aj * aj * 144 + dl * ai * aj * b2 * 224 +
                    b2 * b2 * 384 * (dl ? 3.0 / 8 : 1.0 / 8) +
                    b2 * 224 * (ai * ai + aj * aj + 2 * dl * ai * aj) / 2;
        double pij = ref->P[2 * I[e] + J[e]];
        V[e] = m4 - pij * pij;
    }
}

/* Langevin, per-sample norms: the exact law of one step from a fixed point x0 (see the file
 * comment), at levels 0, N/2 and N − 1 (predictor none; x reset to x0 before those steps). */
static void test_langevin_one_step(void **state)
{
    fixture *f = *state;
    const size_t lev[3] = {0, NLEV / 2, NLEV - 1};
    int bad = 0;
    for (int ki = 0; ki < 3; ki++) {
        diffsde_sde_kind k = KINDS[ki];
        diffsde_sampler *s =
            make_sampler(f, ki, DIFFSDE_PREDICTOR_NONE, DIFFSDE_CORRECTOR_LANGEVIN, 0);
        assert_int_equal(diffsde_sampler_init(s, f->noise, (uint64_t)ki * NS, NS, 2, f->x),
                         DIFFSDE_OK);
        for (size_t i = 0, li = 0; i < NLEV; i++) {
            int at = li < 3 && lev[li] == i;
            double t = grid_t(k, NLEV, i), x0[2] = {0, 0}, sc[2] = {0, 0};
            if (at) {
                fixed_point(k, t, x0, sc);
                for (size_t r = 0; r < NS; r++)
                    memcpy(f->x + 2 * r, x0, sizeof x0);
            }
            int st = diffsde_sampler_step(s, f->x);
            if (st != DIFFSDE_OK)
                print_error("diffsde_sampler_step: %s\n", diffsde_errmsg(f->ctx));
            assert_int_equal(st, DIFFSDE_OK);
            if (!at)
                continue;
            double snr = default_snr(k), c = 2 * corrector_a(k, NLEV, t) * snr * snr /
                                             (sc[0] * sc[0] + sc[1] * sc[1]);
            gmom ref;
            double V[3];
            one_step_law(x0, sc, c, &ref, V);
            char label[96];
            snprintf(label, sizeof label, "%s langevin one step, level %zu", kind_name(k), i);
            bad += check_moments(label, f->x, NS, &ref, V);
            li++;
        }
        diffsde_sampler_free(s);
    }
    assert_int_equal(bad, 0);
}

static void score_closed(diffsde_sde_kind k, double t, const double *x, double *s)
{
    double Ci[4], al = cinv(k, t, Ci);
    double r0 = x[0] - al * M0[0], r1 = x[1] - al * M0[1];
    s[0] = -(Ci[0] * r0 + Ci[1] * r1);
    s[1] = -(Ci[2] * r0 + Ci[3] * r1);
}

#define RN 7
#define RS0 5

/* A PC run with the Langevin corrector recomputed from the draws of sampler.h's pinned
 * streams: prior (PRIOR, step 0), corrector at level i (CORRECTOR, step i), predictor
 * (PREDICTOR, step i); samples RS0..RS0+RN−1. */
static void replay(diffsde_sde_kind k, diffsde_predictor p, int batch, double *x)
{
    double pstd = k == DIFFSDE_SDE_VE ? SMAX : 1.0, snr = default_snr(k);
    double s[2 * RN], z[2 * RN], e[RN];
    for (size_t r = 0; r < RN; r++)
        for (int j = 0; j < 2; j++)
            x[2 * r + j] = pstd * diffsde_noise_normal_at(SEED, DIFFSDE_STREAM_PRIOR, RS0 + r, 0,
                                                          (uint64_t)j);
    for (size_t i = 0; i < NLEV; i++) {
        double t = grid_t(k, NLEV, i), a = corrector_a(k, NLEV, t), zs = 0, ss = 0;
        for (size_t r = 0; r < RN; r++) {
            score_closed(k, t, x + 2 * r, s + 2 * r);
            for (int j = 0; j < 2; j++)
                z[2 * r + j] = diffsde_noise_normal_at(SEED, DIFFSDE_STREAM_CORRECTOR, RS0 + r,
                                                       i, (uint64_t)j);
            double zn = hypot(z[2 * r], z[2 * r + 1]), sn = hypot(s[2 * r], s[2 * r + 1]);
            e[r] = 2 * a * (snr * zn / sn) * (snr * zn / sn);
            zs += zn / RN;
            ss += sn / RN;
        }
        for (size_t r = 0; r < RN; r++) {
            double er = batch ? 2 * a * (snr * zs / ss) * (snr * zs / ss) : e[r];
            for (int j = 0; j < 2; j++)
                x[2 * r + j] += er * s[2 * r + j] + sqrt(2 * er) * z[2 * r + j];
        }
        if (p == DIFFSDE_PREDICTOR_NONE)
            continue;
        stepc c = predictor_coefs(k, p, NLEV, t);
        for (size_t r = 0; r < RN; r++) {
            score_closed(k, t, x + 2 * r, s);
            for (int j = 0; j < 2; j++)
                x[2 * r + j] = c.a1 * x[2 * r + j] + c.a2 * s[j] +
                               sqrt(c.q) * diffsde_noise_normal_at(SEED, DIFFSDE_STREAM_PREDICTOR,
                                                                   RS0 + r, i, (uint64_t)j);
        }
    }
    coefs c = sde_coefs(k, default_eps(k));
    for (size_t r = 0; r < RN; r++) {
        score_closed(k, default_eps(k), x + 2 * r, s);
        for (int j = 0; j < 2; j++)
            x[2 * r + j] = (x[2 * r + j] + c.sigma * c.sigma * s[j]) / c.alpha;
    }
}

/* Langevin in whole runs: per-sample and batch-averaged norms, every predictor, against the
 * replay, to 1e-10 relative to max(1, |x|). */
static void test_langevin_replay(void **state)
{
    fixture *f = *state;
    static const diffsde_predictor preds[4] = {
        DIFFSDE_PREDICTOR_NONE, DIFFSDE_PREDICTOR_EULER_MARUYAMA,
        DIFFSDE_PREDICTOR_REVERSE_DIFFUSION, DIFFSDE_PREDICTOR_ANCESTRAL};
    double worst = 0;
    for (int ki = 0; ki < 3; ki++)
        for (int pi = 0; pi < 4; pi++)
            for (int batch = 0; batch < 2; batch++) {
                diffsde_sde_kind k = KINDS[ki];
                if (pi == 3 && k == DIFFSDE_SDE_SUBVP)
                    continue;
                double got[2 * RN], want[2 * RN];
                diffsde_sampler *s = make_sampler(f, ki, preds[pi], DIFFSDE_CORRECTOR_LANGEVIN,
                                                  batch);
                run(f, s, RS0, RN, got);
                diffsde_sampler_free(s);
                replay(k, preds[pi], batch, want);
                for (int e = 0; e < 2 * RN; e++) {
                    double err = fabs(got[e] - want[e]) / fmax(1.0, fabs(want[e]));
                    worst = fmax(worst, err);
                    assert_close(got[e], want[e], 1e-10, 1e-10);
                }
            }
    printf("# langevin replay: worst relative difference %.2e\n", worst);
}

/* The discretisation bias (a report): distance of the recursion (what the samplers compute,
 * certified by the tests above) to the continuous truth for N = 50 … 1000, and that of each
 * predictor's limit N → ∞ (κ = 1 for Euler–Maruyama, κ = T/(T − ε) for the table-based
 * predictors; see continuous_from_prior()). Asserted: every predictor approaches its limit —
 * the distance at N = 8000 is below a quarter of that at N = 1000 (first order: an eighth) —
 * and the RK4 limit is converged (halving its step changes it by < 1e-10). */
static void test_discretisation_bias(void **state)
{
    (void)state;
    static const size_t Ns[5] = {50, 100, 200, 500, 1000};
    static const struct {
        diffsde_predictor p;
        diffsde_corrector c;
    } meth[5] = {{DIFFSDE_PREDICTOR_EULER_MARUYAMA, DIFFSDE_CORRECTOR_NONE},
                 {DIFFSDE_PREDICTOR_REVERSE_DIFFUSION, DIFFSDE_CORRECTOR_NONE},
                 {DIFFSDE_PREDICTOR_ANCESTRAL, DIFFSDE_CORRECTOR_NONE},
                 {DIFFSDE_PREDICTOR_REVERSE_DIFFUSION, DIFFSDE_CORRECTOR_ALD},
                 {DIFFSDE_PREDICTOR_NONE, DIFFSDE_CORRECTOR_ALD}};
    printf("# discretisation bias, |mean - m|_2 / |cov - cov*|_F against the truth "
           "N(m, a^2 S C^-1 S) at eps, for N = 50 100 200 500 1000 and N -> inf:\n");
    for (int ki = 0; ki < 3; ki++) {
        diffsde_sde_kind k = KINDS[ki];
        double kap = 1.0 / (1.0 - default_eps(k));
        gmom tr = truth(k), lim[2], chk;
        double cmu, cP, gmu, gP;
        for (int l = 0; l < 2; l++) {
            lim[l] = continuous_from_prior(k, l ? kap : 1.0, 20000);
            chk = continuous_from_prior(k, l ? kap : 1.0, 40000);
            mom_dist(&lim[l], &chk, &cmu, &cP);
            assert_true(cmu < 1e-10 && cP < 1e-10);
        }
        mom_dist(&lim[0], &lim[1], &gmu, &gP);
        printf("# %s: the two limits (kappa = 1 and T/(T - eps)) differ by %.2e / %.2e\n",
               kind_name(k), gmu, gP);
        for (int mi = 0; mi < 5; mi++) {
            diffsde_predictor p = meth[mi].p;
            diffsde_corrector c = meth[mi].c;
            if (p == DIFFSDE_PREDICTOR_ANCESTRAL && k == DIFFSDE_SDE_SUBVP)
                continue;
            char line[512];
            int len = snprintf(line, sizeof line, "# | %s | %s%s%s |", kind_name(k),
                               p ? diffsde_predictor_name(p) : "",
                               p && c ? " + " : "", c ? diffsde_corrector_name(c) : "");
            for (int ni = 0; ni < 5; ni++) {
                gmom g = recursion(k, p, c, Ns[ni]);
                double dmu, dP;
                mom_dist(&g, &tr, &dmu, &dP);
                len += snprintf(line + len, sizeof line - (size_t)len, " %.1e / %.1e |", dmu,
                                dP);
            }
            if (c == DIFFSDE_CORRECTOR_NONE) {
                const gmom *L = &lim[p != DIFFSDE_PREDICTOR_EULER_MARUYAMA];
                double lmu, lP, e[2];
                mom_dist(L, &tr, &lmu, &lP);
                snprintf(line + len, sizeof line - (size_t)len, " %.1e / %.1e |", lmu, lP);
                for (int r = 0; r < 2; r++) {
                    gmom g = recursion(k, p, c, r ? 8000 : 1000);
                    double emu, eP;
                    mom_dist(&g, L, &emu, &eP);
                    e[r] = emu + eP;
                }
                printf("%s\n# (distance to its limit: N = 1000 %.2e, N = 8000 %.2e)\n", line,
                       e[0], e[1]);
                assert_true(e[1] < e[0] / 4);
            } else {
                snprintf(line + len, sizeof line - (size_t)len, " — |");
                printf("%s\n", line);
            }
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_discretisation_bias),
        cmocka_unit_test(test_langevin_replay),
        cmocka_unit_test(test_langevin_one_step),
        cmocka_unit_test(test_exact_moments),
    };
    return cmocka_run_group_tests_name("sampler_gaussian", tests, setup, teardown);
}
