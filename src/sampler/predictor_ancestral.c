/*
 * Ancestral sampling with the SDE's discrete table (score_sde's conventions), at the level
 * j = ⌊t (N−1)/T⌋ of the time t, the score evaluated at the continuous t:
 *
 *   VE (NCSN, σ_j table, σ_{−1} = 0):
 *     x̄ = x + (σ_j² − σ_{j−1}²) s,     std = √(σ_{j−1}² (σ_j² − σ_{j−1}²) / σ_j²);
 *   VP (DDPM, b_j table):
 *     x̄ = (x + b_j s) / √(1 − b_j),    std = √b_j;
 *
 * then x ← x̄ + std·z. The table is computed once by diffsde_sampler_new() (which also refuses
 * sub-VP and user SDEs, and VP tables with b_j ≥ 1).
 */
#include <math.h>

#include "sampler/stepper.h"

static int ancestral_step(diffsde_i_level *lv, double *x, double *xmean)
{
    diffsde_sde_discrete dd;
    int st = diffsde_i_level_discretize(lv, "ancestral step", &dd);
    if (st != DIFFSDE_OK)
        return st;
    if (!lv->table)
        return diffsde_i_fail(lv->ctx, DIFFSDE_ESTATE,
                              "diffsde_sampler_step: the ancestral predictor has no discrete "
                              "table");
    const size_t j = dd.index;
    const int ve = diffsde_sde_get_kind(lv->sde) == DIFFSDE_SDE_VE;
    double a, b, std; /* x̄ = (x + b s)·a */
    if (ve) {
        double s2 = lv->table[j] * lv->table[j];
        double p2 = j > 0 ? lv->table[j - 1] * lv->table[j - 1] : 0.0;
        a = 1.0;
        b = s2 - p2;
        std = sqrt(p2 * b / s2);
    } else {
        double beta = lv->table[j];
        a = 1.0 / sqrt(1.0 - beta);
        b = beta;
        std = sqrt(beta);
    }

    st = diffsde_i_level_score(lv, x);
    if (st != DIFFSDE_OK)
        return st;
    st = diffsde_i_level_noise(lv, DIFFSDE_STREAM_PREDICTOR, lv->level);
    if (st != DIFFSDE_OK)
        return st;
    const double *s = lv->s, *z = lv->z;
    const size_t nd = lv->n * lv->d;
    if (ve) {
        for (size_t k = 0; k < nd; k++) {
            double m = x[k] + b * s[k];
            xmean[k] = m;
            x[k] = m + std * z[k];
        }
    } else {
        for (size_t k = 0; k < nd; k++) {
            double m = (x[k] + b * s[k]) * a;
            xmean[k] = m;
            x[k] = m + std * z[k];
        }
    }
    return DIFFSDE_OK;
}

const diffsde_i_predictor_type diffsde_i_predictor_ancestral = {
    "ancestral", DIFFSDE_I_NEEDS_TABLE | DIFFSDE_I_VE_VP_ONLY | DIFFSDE_I_USES_NOISE,
    ancestral_step};
