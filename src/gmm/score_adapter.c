/*
 * The exact score of a mixture as a ::diffsde_score: the callback evaluates a private
 * evaluator (the score's user pointer), released with the score. The exact log p_t is the
 * model's log-density callback (diffsde_score_set_logp) and its exact divergence the model's
 * divergence callback, on the same evaluator.
 */
#include "gmm/gmm_impl.h"

/* The callbacks are called with the caller's d: refuse one that is not the mixture's. */
static int check_dim(diffsde_gmm_eval *ev, size_t d, const char *which)
{
    if (d == ev->dim)
        return DIFFSDE_OK;
    return diffsde_i_fail(ev->ctx, DIFFSDE_ESIZE,
                          "diffsde_gmm_score_new %s: d (%zu) differs from the mixture's "
                          "dimension (%zu)",
                          which, d, ev->dim);
}

/* The three callbacks return the evaluator's status (< 0, fatal) on failure; its message is on
 * the model's context. A dimension mismatch is reported as DIFFSDE_ESIZE. */
static int gmm_score_cb(size_t n, size_t d, const double *t, const double *x, double *out,
                        void *user)
{
    int st = check_dim(user, d, "callback");
    return st ? st : diffsde_gmm_evaluate(user, n, t, x, NULL, out, NULL, NULL);
}

/* The exact log p_t at each point. */
static int gmm_logp_cb(size_t n, size_t d, const double *t, const double *x, double *logp,
                       void *user)
{
    int st = check_dim(user, d, "log-density callback");
    return st ? st : diffsde_gmm_evaluate(user, n, t, x, logp, NULL, NULL, NULL);
}

/* The exact divergence of the score at each point. */
static int gmm_div_cb(size_t n, size_t d, const double *t, const double *x, double *div,
                      void *user)
{
    int st = check_dim(user, d, "divergence callback");
    return st ? st : diffsde_gmm_evaluate(user, n, t, x, NULL, NULL, div, NULL);
}

static void release_eval(void *user)
{
    diffsde_gmm_eval_free(user);
}

int diffsde_gmm_score_new(const diffsde_gmm *gmm, const diffsde_sde *sde, diffsde_score **out)
{
    if (out)
        *out = NULL;
    if (!gmm)
        return DIFFSDE_ENULL;
    if (!out)
        return diffsde_i_fail(gmm->ctx, DIFFSDE_ENULL, "diffsde_gmm_score_new: out is NULL");
    diffsde_gmm_eval *ev;
    int st = diffsde_gmm_eval_new(gmm, sde, &ev);
    if (st != DIFFSDE_OK)
        return diffsde_i_fail_prefix(gmm->ctx, st, "diffsde_gmm_score_new");
    diffsde_score *s;
    st = diffsde_score_new(gmm->ctx, gmm_score_cb, ev, DIFFSDE_PARAM_SCORE, &s);
    if (st != DIFFSDE_OK) {
        diffsde_gmm_eval_free(ev);
        return diffsde_i_fail_prefix(gmm->ctx, st, "diffsde_gmm_score_new");
    }
    diffsde_score_set_release(s, release_eval);
    diffsde_score_set_logp(s, gmm_logp_cb);
    diffsde_score_set_divergence(s, gmm_div_cb);
    *out = s;
    return DIFFSDE_OK;
}
