/*
 * The Langevin corrector with the signal-to-noise step (Song et al., ICLR 2021; score_sde's
 * LangevinCorrector). Corrector step k at level i, time t:
 *
 *     s = ∇log p_t(x),   z ~ N(0, I)  (stream DIFFSDE_STREAM_CORRECTOR, step i·K + k),
 *     ε = 2 a (snr ‖z‖ / ‖s‖)²,      x̄ = x + ε s,   x ← x̄ + √(2ε) z,
 *
 * with a from diffsde_i_langevin_a() (1 − b_j for VP and sub-VP, 1 otherwise). The norms are
 * per sample by default, so each sample's result depends on nothing else in its batch; with
 * opt.batch_norms or opt.reference they are averaged over the batch (mean of the per-sample
 * norms, score_sde's convention) and one ε serves every sample. A zero score (‖s‖ = 0, or a
 * zero batch mean) gives ε = 0: the sample is left unchanged, no noise added.
 *
 * This file also holds diffsde_i_langevin_a(), shared with the ALD and MALA correctors.
 */
#include <math.h>

#include "sampler/stepper.h"

int diffsde_i_langevin_a(const diffsde_i_level *lv, const char *who, double *a)
{
    diffsde_sde_kind kind = diffsde_sde_get_kind(lv->sde);
    if (kind != DIFFSDE_SDE_VP && kind != DIFFSDE_SDE_SUBVP) {
        *a = 1.0;
        return DIFFSDE_OK;
    }
    if (!lv->table || lv->N < 2)
        return diffsde_i_fail(lv->ctx, DIFFSDE_ESTATE,
                              "diffsde_sampler_step: %s corrector at level %zu, t=%.17g: no "
                              "discrete table of the %s SDE on N = %zu levels",
                              who, lv->level, lv->t, diffsde_sde_name(lv->sde), lv->N);
    double T = 1.0;
    diffsde_sde_time_range(lv->sde, NULL, &T);
    /* the level of t as in diffsde_sde_discretize(): ⌊t (N − 1)/T⌋ in double, clamped */
    double xj = floor(lv->t * (double)(lv->N - 1) / T);
    size_t j = xj <= 0.0 ? 0 : xj >= (double)(lv->N - 1) ? lv->N - 1 : (size_t)xj;
    double av = 1.0 - lv->table[j];
    if (!(av > 0.0))
        return diffsde_i_fail(lv->ctx, DIFFSDE_EPARAM,
                              "diffsde_sampler_step: %s corrector at level %zu, t=%.17g: "
                              "a = 1 - b_%zu = %g is not > 0 (the DDPM table needs N > "
                              "beta_max; N = %zu)",
                              who, lv->level, lv->t, j, av, lv->N);
    *a = av;
    return DIFFSDE_OK;
}

/* Euclidean norm of a row of d values. */
static double row_norm(const double *v, size_t d)
{
    double ss = 0.0;
    for (size_t j = 0; j < d; j++)
        ss += v[j] * v[j];
    return sqrt(ss);
}

static int langevin_step(diffsde_i_level *lv, size_t k, double *x)
{
    const size_t n = lv->n, d = lv->d;
    const double snr = lv->opt->snr;
    double a;
    int st = diffsde_i_langevin_a(lv, "langevin", &a);
    if (st != DIFFSDE_OK)
        return st;
    st = diffsde_i_level_score(lv, x);
    if (st != DIFFSDE_OK)
        return st;
    uint64_t step = (uint64_t)lv->level * (uint64_t)lv->opt->corrector_steps + (uint64_t)k;
    st = diffsde_i_level_noise(lv, DIFFSDE_STREAM_CORRECTOR, step);
    if (st != DIFFSDE_OK)
        return st;

    /* wn[i] = ‖s_i‖, wn2[i] = ‖z_i‖, then wn[i] = ε_i */
    for (size_t i = 0; i < n; i++) {
        lv->wn[i] = row_norm(lv->s + i * d, d);
        lv->wn2[i] = row_norm(lv->z + i * d, d);
    }
    if (lv->opt->batch_norms || lv->opt->reference) {
        double ms = 0.0, mz = 0.0;
        for (size_t i = 0; i < n; i++) {
            ms += lv->wn[i];
            mz += lv->wn2[i];
        }
        ms /= (double)n;
        mz /= (double)n;
        double r = ms > 0.0 ? snr * mz / ms : 0.0;
        double e = r * r * 2.0 * a;
        for (size_t i = 0; i < n; i++)
            lv->wn[i] = e;
    } else {
        for (size_t i = 0; i < n; i++) {
            double r = lv->wn[i] > 0.0 ? snr * lv->wn2[i] / lv->wn[i] : 0.0;
            lv->wn[i] = r * r * 2.0 * a;
        }
    }

    for (size_t i = 0; i < n; i++) {
        const double e = lv->wn[i], sq = sqrt(e * 2.0);
        double *xi = x + i * d;
        const double *si = lv->s + i * d, *zi = lv->z + i * d;
        for (size_t j = 0; j < d; j++) {
            double xm = xi[j] + e * si[j];
            xi[j] = xm + sq * zi[j];
        }
    }
    return DIFFSDE_OK;
}

const diffsde_i_corrector_type diffsde_i_corrector_langevin = {
    "langevin", DIFFSDE_I_NEEDS_TABLE | DIFFSDE_I_USES_NOISE, langevin_step};
