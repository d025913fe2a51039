/*
 * Annealed Langevin dynamics (Song & Ermon 2019, NCSN; score_sde's AnnealedLangevinDynamics
 * corrector). Corrector step k at level i, time t:
 *
 *     s = ∇log p_t(x),   z ~ N(0, I)  (stream DIFFSDE_STREAM_CORRECTOR, step i·K + k),
 *     ε_i = 2 a (snr σ(t))²,         x ← x + ε_i s + √(2ε_i) z,
 *
 * with σ(t) the SDE's marginal standard deviation and a from diffsde_i_langevin_a(). This is
 * the Langevin rule with ‖z‖/‖s‖ replaced by σ(t), its value for data much narrower than
 * σ(t) (there ‖s‖ ≈ ‖z‖/σ); the step is ∝ σ_i² as in NCSN (whose α_i = δ σ_i²/σ_L²
 * corresponds to snr² = δ/(2σ_L²)), independent of the state, so that on Gaussian data the
 * iteration is a linear recursion.
 */
#include <math.h>

#include "sampler/stepper.h"

static int ald_step(diffsde_i_level *lv, size_t k, double *x)
{
    const size_t n = lv->n, d = lv->d;
    double a;
    int st = diffsde_i_langevin_a(lv, "ald", &a);
    if (st != DIFFSDE_OK)
        return st;
    st = diffsde_i_level_score(lv, x);
    if (st != DIFFSDE_OK)
        return st;
    uint64_t step = (uint64_t)lv->level * (uint64_t)lv->opt->corrector_steps + (uint64_t)k;
    st = diffsde_i_level_noise(lv, DIFFSDE_STREAM_CORRECTOR, step);
    if (st != DIFFSDE_OK)
        return st;

    const double r = lv->opt->snr * lv->c.sigma;
    const double e = r * r * 2.0 * a, sq = sqrt(e * 2.0);
    for (size_t i = 0; i < n * d; i++) {
        double xm = x[i] + e * lv->s[i];
        x[i] = xm + sq * lv->z[i];
    }
    return DIFFSDE_OK;
}

const diffsde_i_corrector_type diffsde_i_corrector_ald = {
    "ald", DIFFSDE_I_NEEDS_TABLE | DIFFSDE_I_USES_NOISE, ald_step};
