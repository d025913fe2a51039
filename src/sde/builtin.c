/*
 * Closed forms of the built-in SDEs (VE, VP, sub-VP): coefficients, log-SNR and its inverse.
 *
 * Notation: β(t) = βmin + t Δ with Δ = βmax − βmin, B(t) = ∫₀ᵗ β = t (βmin + ½ Δ t).
 *
 *   VE:     σ = σmin r^t (r = σmax/σmin, L = log r),  g² = 2 L σ²,  λ = −2 log σ
 *   VP:     α = e^{−B/2},  σ² = 1 − e^{−B},   λ = −B − log(1 − e^{−B})
 *   sub-VP: α = e^{−B/2},  σ  = 1 − e^{−B},   λ = −B − 2 log(1 − e^{−B}),  g² = β (1 − e^{−2B})
 *
 * Everything is written without cancellation: 1 − e^{−B} as −expm1(−B), log(1 − e^{−B}) by the
 * two-branch rule (expm1 below log 2, log1p above), and log B from log t + log(βmin + ½Δt) so
 * that λ stays finite and exact for t so small that B itself underflows.
 */
#include <float.h>
#include <math.h>

#include "sde/sde_impl.h"

/* Below this B the series forms are exact to double precision (the dropped terms are
 * O(B²) relative, i.e. < 1e-17). */
#define SMALL_B 1e-8

/* log 2 (M_LN2 is not ISO C). */
#define LN2 0.69314718055994530942
/* √2 (M_SQRT2 is not ISO C). */
#define SQRT2 1.41421356237309504880

/* B(t) = t (βmin + ½ Δ t). */
static double integral_beta(const diffsde_sde *sde, double t)
{
    return t * (sde->beta_min + 0.5 * sde->beta_delta * t);
}

/* log B(t), finite for every t > 0 even when B(t) underflows; −∞ at t = 0. */
static double log_integral_beta(const diffsde_sde *sde, double t)
{
    return log(t) + log(sde->beta_min + 0.5 * sde->beta_delta * t);
}

/* log(1 − e^{−B}) for B ≥ 0, given B and log B (−∞ at B = 0). */
static double log1mexp(double B, double logB)
{
    if (B < SMALL_B)
        return logB - 0.5 * B; /* log(B (1 − B/2 + B²/6 − …)) */
    if (B <= LN2)
        return log(-expm1(-B));
    return log1p(-exp(-B));
}

/* softplus(x) = log(1 + e^x) without overflow or loss of accuracy. */
static double softplus(double x)
{
    if (x > 0.0)
        return x + log1p(exp(-x));
    return log1p(exp(x));
}

/*
 * The t ≥ 0 with B(t) = b², from b = √B: the positive root of ½Δt² + βmin t − B = 0 written
 * without cancellation, t = 2B / (βmin + √(βmin² + 2ΔB)), evaluated as 2b · (b / D) with
 * D = βmin + hypot(βmin, √(2Δ) b) so that neither b² nor 2ΔB has to be representable.
 */
static double t_from_sqrt_integral(const diffsde_sde *sde, double b)
{
    if (!(b > 0.0))
        return 0.0;
    /* √2 · √Δ rather than √(2Δ): no overflow for Δ near DBL_MAX */
    double D = sde->beta_min + hypot(sde->beta_min, SQRT2 * sqrt(sde->beta_delta) * b);
    return 2.0 * b * (b / D);
}

void diffsde_i_builtin_coefs(const diffsde_sde *sde, double t, diffsde_sde_coefs *c)
{
    c->t = t;
    if (sde->kind == DIFFSDE_SDE_VE) {
        double sigma = sde->sigma_min * pow(sde->sigma_max / sde->sigma_min, t);
        c->f = 0.0;
        c->alpha = 1.0;
        c->sigma = sigma;
        c->g2 = 2.0 * sde->log_ratio * sigma * sigma;
        c->g = sigma * sqrt(2.0 * sde->log_ratio);
        return;
    }
    double beta = sde->beta_min + t * sde->beta_delta;
    double B = integral_beta(sde, t);
    c->f = -0.5 * beta;
    c->alpha = exp(-0.5 * B);
    c->sigma = diffsde_i_builtin_sigma(sde, t);
    if (sde->kind == DIFFSDE_SDE_VP)
        c->g2 = beta;
    else
        c->g2 = -beta * expm1(-2.0 * B);
    c->g = sqrt(c->g2);
}

double diffsde_i_builtin_sigma(const diffsde_sde *sde, double t)
{
    if (sde->kind == DIFFSDE_SDE_VE)
        return sde->sigma_min * pow(sde->sigma_max / sde->sigma_min, t);
    double B = integral_beta(sde, t);
    if (sde->kind == DIFFSDE_SDE_VP) {
        if (B < SMALL_B) {
            /* √(1 − e^{−B}) = √B (1 − B/4 + O(B²)), with √B = √t √(βmin + ½Δt) so that it
             * does not underflow with B. */
            double sqrtB = sqrt(t) * sqrt(sde->beta_min + 0.5 * sde->beta_delta * t);
            return sqrtB * (1.0 - 0.25 * B);
        }
        return sqrt(-expm1(-B));
    }
    return -expm1(-B);
}

double diffsde_i_builtin_log_snr(const diffsde_sde *sde, double t)
{
    if (sde->kind == DIFFSDE_SDE_VE)
        return -2.0 * (sde->log_sigma_min + t * sde->log_ratio);
    double B = integral_beta(sde, t);
    double lm = log1mexp(B, log_integral_beta(sde, t));
    if (sde->kind == DIFFSDE_SDE_VP)
        return -B - lm;
    return -B - 2.0 * lm;
}

double diffsde_i_builtin_t_from_log_snr(const diffsde_sde *sde, double lambda)
{
    double t;
    if (sde->kind == DIFFSDE_SDE_VE) {
        /* λ = −2 log σmin − 2 L t */
        t = (-2.0 * sde->log_sigma_min - lambda) / (2.0 * sde->log_ratio);
    } else if (lambda == INFINITY) {
        t = 0.0;
    } else if (sde->kind == DIFFSDE_SDE_VP) {
        /* e^{−λ} = e^B − 1  ⇒  B = softplus(−λ). For λ > 37, B = e^{−λ} to double precision
         * and √B = e^{−λ/2} stays representable long after B underflows. */
        double b = lambda > 37.0 ? exp(-0.5 * lambda) : sqrt(softplus(-lambda));
        t = t_from_sqrt_integral(sde, b);
    } else {
        /* h = e^{−λ} = e^B − 2 + e^{−B}  ⇒  e^B = 1 + h/2 + √(h² + 4h)/2.
         * λ ≥ 0: with s = √h = e^{−λ/2}, B = log1p(s²/2 + s √(s² + 4)/2) (s ≤ 1, no overflow,
         *        and B ≈ s for large λ without cancellation);
         * λ < 0: with e = 1/h = e^{λ}, B = −λ + log(e + ½ + ½ √(1 + 4e)). */
        double B;
        if (lambda >= 0.0) {
            double s = exp(-0.5 * lambda);
            B = log1p(0.5 * s * s + 0.5 * s * sqrt(s * s + 4.0));
        } else {
            double e = exp(lambda);
            B = -lambda + log(e + 0.5 + 0.5 * sqrt(1.0 + 4.0 * e));
        }
        t = t_from_sqrt_integral(sde, sqrt(B));
    }
    if (!(t > 0.0))
        t = 0.0;
    if (t > sde->T)
        t = sde->T;
    return t;
}
