/*
 * Euler–Maruyama on the reverse SDE dx = [f x − g² s] dt + g dw̄, run from t to t − dt:
 *
 *     x̄ = x − [f x − g² s] dt,      x ← x̄ + g √dt z,      z ~ N(0, I),
 *
 * with f, g at t and the score s = ∇log p_t(x). The step dt > 0 comes from the driver: the
 * grid spacing by default, T/N in reference mode (score_sde's convention).
 */
#include <math.h>

#include "sampler/stepper.h"

static int em_step(diffsde_i_level *lv, double *x, double *xmean)
{
    int st = diffsde_i_level_score(lv, x);
    if (st != DIFFSDE_OK)
        return st;
    st = diffsde_i_level_noise(lv, DIFFSDE_STREAM_PREDICTOR, lv->level);
    if (st != DIFFSDE_OK)
        return st;
    const double f = lv->c.f, g2 = lv->c.g2, dt = lv->dt, gsd = lv->c.g * sqrt(dt);
    const double *s = lv->s, *z = lv->z;
    const size_t nd = lv->n * lv->d;
    for (size_t k = 0; k < nd; k++) {
        double m = x[k] - (f * x[k] - g2 * s[k]) * dt;
        xmean[k] = m;
        x[k] = m + gsd * z[k];
    }
    return DIFFSDE_OK;
}

const diffsde_i_predictor_type diffsde_i_predictor_euler_maruyama = {
    "euler-maruyama", DIFFSDE_I_USES_NOISE, em_step};
