/*
 * diffsde_metrics_compute: draw the exact reference set(s) once and run every sample metric,
 * sharing one evaluator of the mixture.
 */
#include <inttypes.h>
#include <string.h>

#include "metrics/metrics_impl.h"

diffsde_metrics_options diffsde_metrics_options_default(void)
{
    diffsde_metrics_options o;
    o.sliced_directions = DIFFSDE_METRICS_DEFAULT_DIRECTIONS;
    o.energy_max_points = DIFFSDE_METRICS_DEFAULT_ENERGY_POINTS;
    o.energy_permutations = DIFFSDE_METRICS_DEFAULT_PERMUTATIONS;
    o.ref_sample0 = DIFFSDE_METRICS_REF_SAMPLE0;
    o.null_reference = 1;
    return o;
}

static int check_options(diffsde_ctx *ctx, const char *fn, const diffsde_metrics_options *o,
                         size_t n)
{
    if (o->sliced_directions == 0)
        return diffsde_i_fail(ctx, DIFFSDE_EPARAM,
                              "%s: opts->sliced_directions must be >= 1 (got 0)", fn);
    if (o->energy_max_points < 2)
        return diffsde_i_fail(ctx, DIFFSDE_EPARAM, "%s: opts->energy_max_points (%zu) must be >= 2",
                              fn, o->energy_max_points);
    uint64_t sets = o->null_reference ? 2 : 1;
    uint64_t max = DIFFSDE_NOISE_MAX_SAMPLES;
    if (o->ref_sample0 > max || (uint64_t)n > (max - o->ref_sample0) / sets)
        return diffsde_i_fail(ctx, DIFFSDE_ERANGE,
                              "%s: opts->ref_sample0 + %" PRIu64 "n (%" PRIu64 " + %" PRIu64
                              " * %zu) exceeds 2^48",
                              fn, sets, o->ref_sample0, sets, n);
    return DIFFSDE_OK;
}

int diffsde_metrics_compute(diffsde_ctx *ctx, const diffsde_gmm *gmm, const diffsde_sde *sde,
                            double t, const diffsde_noise *noise, size_t n, const double *x,
                            const diffsde_metrics_options *opts, diffsde_metrics *out)
{
    static const char fn[] = "diffsde_metrics_compute";
    if (!ctx)
        return DIFFSDE_ENULL;
    diffsde_i_metrics_call call;
    diffsde_i_metrics_call_init(&call, ctx, fn, gmm, sde);
    const diffsde_i_metrics_call *c = &call;
    int st = diffsde_i_metrics_check_gmm(c, gmm);
    if (st != DIFFSDE_OK)
        return st;
    if (!noise || !x || !out)
        return diffsde_i_fail(ctx, DIFFSDE_ENULL, "%s: %s is NULL", fn,
                              !noise ? "noise"
                              : !x   ? "x"
                                     : "out");
    const diffsde_metrics_options o = opts ? *opts : diffsde_metrics_options_default();
    const size_t d = diffsde_gmm_dim(gmm), K = diffsde_gmm_ncomponents(gmm);
    const size_t B = DIFFSDE_METRICS_BLOCK;
    size_t nd, bk;
    if ((st = diffsde_i_metrics_size(c, "x", n, 2, d, &nd)) != DIFFSDE_OK ||
        (st = check_options(ctx, fn, &o, n)) != DIFFSDE_OK ||
        (st = diffsde_i_metrics_finite(c, "x", n, d, x)) != DIFFSDE_OK ||
        (st = diffsde_i_metrics_need_philox(c, noise, "drawing the exact reference set")) !=
            DIFFSDE_OK)
        return st;
    if (diffsde_i_mul_size(B, K, &bk) != 0 || bk > SIZE_MAX - 2 * B ||
        (o.null_reference && nd > SIZE_MAX / 2))
        return diffsde_i_fail(ctx, DIFFSDE_ESIZE, "%s: workspace size overflows size_t", fn);

    double *ref = diffsde_i_calloc(ctx, o.null_reference ? 2 * nd : nd, sizeof(double));
    double *work = diffsde_i_calloc(ctx, bk + 2 * B, sizeof(double));
    size_t *cnt = diffsde_i_calloc(ctx, 2 * K, sizeof(size_t));
    diffsde_gmm_eval *ev = NULL;
    if (!ref || !work || !cnt) {
        st = diffsde_i_fail(ctx, DIFFSDE_ENOMEM,
                            "%s: cannot allocate the reference set(s) (%zu x %zu doubles) and "
                            "workspace",
                            fn, o.null_reference ? 2 * n : n, d);
        goto done;
    }
    double *null_set = o.null_reference ? ref + nd : NULL;
    double *tb = work, *lp = work + B, *resp = work + 2 * B;
    st = diffsde_gmm_eval_new(gmm, sde, &ev);
    if (st != DIFFSDE_OK) {
        st = diffsde_i_metrics_restate(c, st, "diffsde_gmm_eval_new");
        goto done;
    }
    st = diffsde_gmm_sample(ev, noise, t, o.ref_sample0, n, ref);
    if (st == DIFFSDE_OK && null_set)
        st = diffsde_gmm_sample(ev, noise, t, o.ref_sample0 + n, n, null_set);
    if (st != DIFFSDE_OK) {
        st = diffsde_i_metrics_restate(c, st,
                                       "drawing the exact reference set (diffsde_gmm_sample)");
        goto done;
    }
    memset(out, 0, sizeof *out);
    out->n = n;
    out->d = d;
    out->t = sde ? t : 0.0;

    st = diffsde_i_metrics_moments(c, gmm, sde, t, n, x, &out->moments);
    if (st != DIFFSDE_OK)
        goto done;

    double amb = 0;
    st = diffsde_i_metrics_assign(c, "samples", gmm, ev, t, n, x, cnt, &amb, tb, resp);
    if (st == DIFFSDE_OK)
        st = diffsde_i_metrics_assign(c, "reference samples", gmm, ev, t, n, ref, cnt + K, NULL, tb,
                                      resp);
    if (st != DIFFSDE_OK)
        goto done;
    diffsde_i_metrics_occupancy_tests(gmm, n, cnt, n, cnt + K, &out->occupancy);
    out->occupancy.ambiguity = amb;

    out->sliced_directions = o.sliced_directions;
    st = diffsde_i_metrics_sliced_w2(c, noise, n, d, x, ref, o.sliced_directions, &out->sliced_w2);
    out->sliced_w2_null = NAN;
    if (st == DIFFSDE_OK && null_set)
        st = diffsde_i_metrics_sliced_w2(c, noise, n, d, ref, null_set, o.sliced_directions,
                                         &out->sliced_w2_null);
    if (st != DIFFSDE_OK)
        goto done;

    st = diffsde_i_metrics_energy(c, noise, n, n, d, x, ref, o.energy_max_points,
                                  o.energy_permutations, &out->energy);
    if (st != DIFFSDE_OK)
        goto done;

    st = diffsde_i_metrics_mean_logp(c, "samples", gmm, ev, t, n, x, tb, lp, &out->loglik.samples);
    if (st == DIFFSDE_OK)
        st = diffsde_i_metrics_mean_logp(c, "reference samples", gmm, ev, t, n, ref, tb, lp,
                                         &out->loglik.reference);
    if (st == DIFFSDE_OK)
        diffsde_i_metrics_loglik_diff(&out->loglik);
done:
    diffsde_gmm_eval_free(ev);
    diffsde_i_free(ctx, cnt);
    diffsde_i_free(ctx, work);
    diffsde_i_free(ctx, ref);
    return st;
}
