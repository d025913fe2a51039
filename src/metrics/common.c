/* Argument checks and the restating of failures of the objects the metrics call. */
#include <string.h>

#include "metrics/metrics_impl.h"

int diffsde_i_metrics_size(const diffsde_i_metrics_call *c, const char *what, size_t n,
                           size_t n_min, size_t d, size_t *nd)
{
    if (d == 0)
        return diffsde_i_fail(c->ctx, DIFFSDE_ESIZE, "%s: the dimension d must be >= 1", c->fn);
    if (n < n_min)
        return diffsde_i_fail(c->ctx, DIFFSDE_ESIZE, "%s: %s has %zu points; at least %zu needed",
                              c->fn, what, n, n_min);
    if (diffsde_i_mul_size(n, d, nd) != 0)
        return diffsde_i_fail(c->ctx, DIFFSDE_ESIZE,
                              "%s: %s: n*d overflows size_t (n = %zu, d = %zu)", c->fn, what, n, d);
    return DIFFSDE_OK;
}

int diffsde_i_metrics_finite(const diffsde_i_metrics_call *c, const char *what, size_t n, size_t d,
                             const double *x)
{
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++)
            if (!isfinite(x[i * d + j]))
                return diffsde_i_fail(c->ctx, DIFFSDE_ENONFINITE,
                                      "%s: %s[%zu][%zu] (sample %zu, coordinate %zu) is %g", c->fn,
                                      what, i, j, i, j, x[i * d + j]);
    return DIFFSDE_OK;
}

/* Fingerprint of a context's failure record: how many failures it has recorded so far. */
static uint64_t fingerprint(const diffsde_ctx *ctx)
{
    return ctx ? (uint64_t)ctx->nfail : 0;
}

void diffsde_i_metrics_call_init(diffsde_i_metrics_call *c, diffsde_ctx *ctx, const char *fn,
                                 const diffsde_gmm *gmm, const diffsde_sde *sde)
{
    c->ctx = ctx;
    c->fn = fn;
    c->origin[0] = gmm ? diffsde_i_gmm_ctx(gmm) : NULL;
    c->origin[1] = sde ? diffsde_i_sde_ctx(sde) : NULL;
    for (int k = 0; k < DIFFSDE_I_METRICS_ORIGINS; k++)
        c->key[k] = fingerprint(c->origin[k]);
    c->key[DIFFSDE_I_METRICS_ORIGINS] = fingerprint(ctx);
}

int diffsde_i_metrics_restate(const diffsde_i_metrics_call *c, int rc, const char *what)
{
    diffsde_ctx *ctx = c->ctx;
    if (!ctx)
        return rc;
    for (int k = 0; k < DIFFSDE_I_METRICS_ORIGINS; k++) {
        const diffsde_ctx *o = c->origin[k];
        if (o && o != ctx && diffsde_last_status(o) == rc && fingerprint(o) != c->key[k]) {
            char msg[DIFFSDE_ERRMSG_CAPACITY];
            diffsde_errmsg_copy(o, msg, sizeof msg);
            return diffsde_i_fail(ctx, rc, "%s: %s failed: %s", c->fn, what, msg);
        }
    }
    if (diffsde_last_status(ctx) == rc && fingerprint(ctx) != c->key[DIFFSDE_I_METRICS_ORIGINS])
        return diffsde_i_fail_prefix(ctx, rc, "%s: %s failed", c->fn, what);
    return diffsde_i_fail(ctx, rc, "%s: %s failed: %s", c->fn, what, diffsde_strerror(rc));
}

int diffsde_i_metrics_check_gmm(const diffsde_i_metrics_call *c, const diffsde_gmm *gmm)
{
    if (!gmm)
        return diffsde_i_fail(c->ctx, DIFFSDE_ENULL, "%s: the mixture gmm is NULL", c->fn);
    if (!diffsde_i_gmm_finalized(gmm))
        return diffsde_i_fail(c->ctx, DIFFSDE_ESTATE, "%s: the mixture is not finalised", c->fn);
    return DIFFSDE_OK;
}

int diffsde_i_metrics_need_philox(const diffsde_i_metrics_call *c, const diffsde_noise *noise,
                                  const char *why)
{
    uint64_t seed;
    if (diffsde_noise_seed(noise, &seed) == DIFFSDE_EUNSUPPORTED)
        return diffsde_i_fail(c->ctx, DIFFSDE_EUNSUPPORTED,
                              "%s: the noise source is a callback source, which gives normals "
                              "only; %s needs the uniforms of a Philox source",
                              c->fn, why);
    return DIFFSDE_OK;
}

int diffsde_i_metrics_check_sets(const diffsde_i_metrics_call *c, const diffsde_gmm *gmm,
                                 size_t n, const double *x, size_t n_ref, const double *ref,
                                 const void *out)
{
    int st = diffsde_i_metrics_check_gmm(c, gmm);
    if (st != DIFFSDE_OK)
        return st;
    if (!x || !out || (n_ref > 0 && !ref))
        return diffsde_i_fail(c->ctx, DIFFSDE_ENULL, "%s: %s is NULL", c->fn,
                              !x     ? "x"
                              : !out ? "out"
                                     : "ref (with n_ref > 0)");
    const size_t d = diffsde_gmm_dim(gmm);
    size_t nd, nrd;
    if ((st = diffsde_i_metrics_size(c, "x", n, 1, d, &nd)) != DIFFSDE_OK ||
        (n_ref > 0 && (st = diffsde_i_metrics_size(c, "ref", n_ref, 1, d, &nrd)) != DIFFSDE_OK) ||
        (st = diffsde_i_metrics_finite(c, "x", n, d, x)) != DIFFSDE_OK ||
        (st = diffsde_i_metrics_finite(c, "ref", n_ref, d, ref)) != DIFFSDE_OK)
        return st;
    return DIFFSDE_OK;
}
