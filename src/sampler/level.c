/*
 * The two services the driver gives every stepper at a level: a counted score evaluation and
 * the run's noise, each restating a failure with the level, the step and t.
 */
#include <inttypes.h>
#include <stdio.h>

#include "sampler/stepper.h"

/* Restate a callee's failure on the sampler's context. When the callee recorded its message
 * on this context (its failure count moved), keep that message after our prefix; when it
 * recorded it elsewhere (a model or noise source made from another context), say so. */
static int restate(diffsde_i_level *lv, int st, unsigned long nfail_before, const char *what,
                   const char *owner)
{
    char where[320];
    if (lv->sample0 != 0)
        snprintf(where, sizeof where,
                 "diffsde_sampler_step: %s at level %zu (step %zu of %zu), t=%.17g (sample "
                 "numbers are within the batch, which starts at global sample %" PRIu64 ")",
                 what, lv->level, lv->level + 1, lv->N, lv->t, lv->sample0);
    else
        snprintf(where, sizeof where,
                 "diffsde_sampler_step: %s at level %zu (step %zu of %zu), t=%.17g", what,
                 lv->level, lv->level + 1, lv->N, lv->t);
    if (lv->ctx->nfail != nfail_before)
        return diffsde_i_fail_prefix(lv->ctx, st, "%s", where);
    return diffsde_i_fail(lv->ctx, st, "%s: %s (the details are on the context of the %s)",
                          where, diffsde_strerror(st), owner);
}

int diffsde_i_level_score(diffsde_i_level *lv, const double *x)
{
    unsigned long before = lv->ctx->nfail;
    int st = diffsde_score_eval(lv->score, lv->sde, lv->n, lv->d, lv->tvec, x, lv->s);
    lv->stats->score_calls++;
    lv->stats->score_evals += lv->n;
    if (st != DIFFSDE_OK)
        return restate(lv, st, before, "score evaluation", "model");
    return DIFFSDE_OK;
}

int diffsde_i_level_noise(diffsde_i_level *lv, uint32_t stream, uint64_t step)
{
    unsigned long before = lv->ctx->nfail;
    int st = diffsde_noise_fill_normal(lv->noise, stream, step, lv->sample0, lv->n, lv->d, lv->z);
    if (st != DIFFSDE_OK)
        return restate(lv, st, before, "noise draw", "noise source");
    return DIFFSDE_OK;
}

int diffsde_i_level_discretize(diffsde_i_level *lv, const char *what, diffsde_sde_discrete *dd)
{
    unsigned long before = lv->ctx->nfail;
    int st = diffsde_sde_discretize(lv->sde, lv->N, lv->t, dd);
    if (st == DIFFSDE_OK)
        return DIFFSDE_OK;
    if (lv->ctx->nfail != before) /* the SDE shares our context and said why */
        return diffsde_i_fail_prefix(lv->ctx, st, "diffsde_sampler_step: %s at level %zu, t=%.17g",
                                     what, lv->level, lv->t);
    return diffsde_i_fail(lv->ctx, st,
                          "diffsde_sampler_step: %s at level %zu, t=%.17g: the SDE's "
                          "discretisation failed (%s)",
                          what, lv->level, lv->t, diffsde_strerror(st));
}
