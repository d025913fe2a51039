/*
 * Shared by the mixture batteries (test_sampler_mixtures.c, test_ode_mixtures.c): the energy
 * permutation test continued past the 200 permutations of diffsde_metrics_compute().
 */
#ifndef DIFFSDE_MIXTURE_TESTUTIL_H
#define DIFFSDE_MIXTURE_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "diffsde.h"

/*
 * Permutation b is the same in every call, so the stages are one 39999-permutation test
 * stopped early: when the 200-permutation p-value p200 is at its floor, redraw the same exact
 * reference set (n samples of p_t under sde — sde NULL: of p0 — at global indices ref0..,
 * from the noise nm) into ref, rerun the test on x with 1999 and then 39999 permutations
 * (m points per set), and return the last stage's p-value. `energy` is the statistic the
 * first test saw; each stage must see the same one.
 */
static inline double mtu_energy_stages(diffsde_ctx *ctx, const diffsde_noise *nm,
                                       const diffsde_gmm *gmm, const diffsde_sde *sde, double t,
                                       uint64_t ref0, size_t n, size_t m, const double *x,
                                       double *ref, double p200, double energy)
{
    const size_t d = diffsde_gmm_dim(gmm);
    if (p200 > 1.5 / 201)
        return p200; /* a permutation reached the statistic: so will one of the 39999 */
    diffsde_gmm_eval *ev = NULL;
    assert_int_equal(diffsde_gmm_eval_new(gmm, sde, &ev), DIFFSDE_OK);
    assert_int_equal(diffsde_gmm_sample(ev, nm, t, ref0, n, ref), DIFFSDE_OK);
    diffsde_gmm_eval_free(ev);
    double p = 0;
    static const size_t stages[2] = {1999, 39999};
    for (int s = 0; s < 2; s++) {
        diffsde_energy_test e;
        assert_int_equal(diffsde_metrics_energy(ctx, nm, n, n, d, x, ref, m, stages[s], &e),
                         DIFFSDE_OK);
        assert_true(e.energy == energy); /* the statistic diffsde_metrics_compute() tested */
        p = e.pvalue;
        if (p > 1.5 / (double)(stages[s] + 1))
            break;
    }
    return p;
}

#endif /* DIFFSDE_MIXTURE_TESTUTIL_H */
