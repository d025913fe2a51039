/*
 * Reverse diffusion: the reverse of the SDE's own discretisation on N levels
 * (diffsde_sde_discretize(): forward x_{j+1} = x_j + f_coef·x_j + G z), as in score_sde:
 *
 *     x̄ = x − f_coef·x + G² s,      x ← x̄ + G z,
 *
 * with the level j = ⌊t (N−1)/T⌋ of the time t and the score at the continuous t. VE: f_coef = 0,
 * G² = σ_j² − σ_{j−1}²; VP: f_coef = √(1 − b_j) − 1, G² = b_j; sub-VP and user SDEs: the
 * generic Euler discretisation f_coef = f(t) T/N, G = g(t) √(T/N). The step does not depend on
 * the grid spacing, only on the level's time.
 *
 * DIFFSDE_I_NEEDS_TABLE: the step does not read lv->table (diffsde_sde_discretize() computes
 * the entry it needs), but it relies on the VE/VP table being valid, so the flag makes
 * diffsde_sampler_new() refuse VP with N ≤ βmax up front rather than at the first step.
 */
#include "sampler/stepper.h"

static int rd_step(diffsde_i_level *lv, double *x, double *xmean)
{
    diffsde_sde_discrete dd;
    int st = diffsde_i_level_discretize(lv, "reverse diffusion", &dd);
    if (st != DIFFSDE_OK)
        return st;
    st = diffsde_i_level_score(lv, x);
    if (st != DIFFSDE_OK)
        return st;
    st = diffsde_i_level_noise(lv, DIFFSDE_STREAM_PREDICTOR, lv->level);
    if (st != DIFFSDE_OK)
        return st;
    const double fc = dd.f_coef, G = dd.G, G2 = dd.G * dd.G;
    const double *s = lv->s, *z = lv->z;
    const size_t nd = lv->n * lv->d;
    for (size_t k = 0; k < nd; k++) {
        double m = x[k] - fc * x[k] + G2 * s[k];
        xmean[k] = m;
        x[k] = m + G * z[k];
    }
    return DIFFSDE_OK;
}

const diffsde_i_predictor_type diffsde_i_predictor_reverse_diffusion = {
    "reverse-diffusion", DIFFSDE_I_NEEDS_TABLE | DIFFSDE_I_USES_NOISE, rd_step};
