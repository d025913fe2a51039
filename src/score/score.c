/* The model object: a user's batched callback, what it returns, and its checked evaluation. */
#include <math.h>

#include "core/internal.h"
#include "diffsde/score.h"

struct diffsde_score {
    diffsde_ctx *ctx;
    diffsde_score_fn fn;
    void *user;
    diffsde_param param;
    int thread_safe;
    void (*release)(void *user);
    diffsde_logp_fn logp; /* optional log-density callback, same user pointer; NULL if none */
    diffsde_div_fn div;   /* optional divergence of the score, same user pointer; NULL if none */
};

int diffsde_score_new(diffsde_ctx *ctx, diffsde_score_fn fn, void *user, diffsde_param param,
                      diffsde_score **out)
{
    static const char name[] = "diffsde_score_new";
    if (out)
        *out = NULL;
    if (!ctx)
        return DIFFSDE_ENULL;
    if (!out || !fn)
        return diffsde_i_fail(ctx, DIFFSDE_ENULL, "%s: %s is NULL", name,
                              !out ? "out" : "the callback fn");
    if (diffsde_param_name(param)[0] == '\0')
        return diffsde_i_fail(ctx, DIFFSDE_EPARAM, "%s: invalid parametrisation %d", name,
                              (int)param);
    diffsde_score *s = diffsde_i_alloc(ctx, sizeof *s);
    if (!s)
        return diffsde_i_fail(ctx, DIFFSDE_ENOMEM, "%s: out of memory", name);
    s->ctx = ctx;
    s->fn = fn;
    s->user = user;
    s->param = param;
    s->thread_safe = 0;
    s->release = NULL;
    s->logp = NULL;
    s->div = NULL;
    *out = s;
    return DIFFSDE_OK;
}

int diffsde_score_set_release(diffsde_score *score, void (*release)(void *user))
{
    if (!score)
        return DIFFSDE_ENULL;
    score->release = release;
    return DIFFSDE_OK;
}

void diffsde_score_free(diffsde_score *score)
{
    if (!score)
        return;
    if (score->release)
        score->release(score->user);
    diffsde_i_free(score->ctx, score);
}

int diffsde_score_get_param(const diffsde_score *score)
{
    return score ? (int)score->param : -1;
}

int diffsde_score_set_thread_safe(diffsde_score *score, int thread_safe)
{
    if (!score)
        return DIFFSDE_ENULL;
    score->thread_safe = thread_safe != 0;
    return DIFFSDE_OK;
}

int diffsde_score_get_thread_safe(const diffsde_score *score)
{
    return score ? score->thread_safe : 0;
}

int diffsde_score_eval(const diffsde_score *score, const diffsde_sde *sde, size_t n, size_t d,
                       const double *t, const double *x, double *s)
{
    static const char name[] = "diffsde_score_eval";
    if (!score)
        return DIFFSDE_ENULL;
    diffsde_ctx *ctx = score->ctx;
    if (!sde)
        return diffsde_i_fail(ctx, DIFFSDE_ENULL, "%s: the SDE is NULL", name);
    if (d == 0)
        return diffsde_i_fail(ctx, DIFFSDE_ESIZE, "%s: dimension d must be >= 1", name);
    size_t nd;
    if (diffsde_i_mul_size(n, d, &nd) != 0)
        return diffsde_i_fail(ctx, DIFFSDE_ESIZE, "%s: n*d overflows (n=%zu, d=%zu)", name, n,
                              d);
    if (n == 0)
        return DIFFSDE_OK;
    if (!t || !x || !s)
        return diffsde_i_fail(ctx, DIFFSDE_ENULL, "%s: t, x and s must not be NULL", name);
    if (x == s)
        return diffsde_i_fail(ctx, DIFFSDE_EPARAM, "%s: x and s must not alias", name);

    /* Validate the times before calling the model, so a bad t never reaches user code. */
    const int needs_sigma = score->param == DIFFSDE_PARAM_EPS ||
                            score->param == DIFFSDE_PARAM_X0 || score->param == DIFFSDE_PARAM_V;
    for (size_t i = 0; i < n; i++) {
        /* Batches usually share one t: validate each distinct run of equal times once. */
        if (i > 0 && t[i] == t[i - 1])
            continue;
        diffsde_sde_coefs c;
        int rc = diffsde_sde_coefs_at(sde, t[i], &c);
        if (rc != DIFFSDE_OK) {
            /* The SDE records on its own context; restate on the model's. */
            return diffsde_i_fail(ctx, rc, "%s: sample %zu: t=%.17g: %s", name, i, t[i],
                                  diffsde_strerror(rc));
        }
        if (needs_sigma && !(c.sigma > 0))
            return diffsde_i_fail(ctx, DIFFSDE_EDOM,
                                  "%s: sample %zu: a %s-model cannot give the score at t=%.17g "
                                  "where sigma(t)=0",
                                  name, i, diffsde_param_name(score->param), t[i]);
    }

    int cb = score->fn(n, d, t, x, s, score->user);
    if (cb < 0)
        return diffsde_i_fail(ctx, DIFFSDE_ECALLBACK, "%s: score callback returned %d (fatal)",
                              name, cb);
    if (cb > 0)
        return diffsde_i_fail(ctx, DIFFSDE_ERETRY,
                              "%s: score callback returned %d (recoverable)", name, cb);
    for (size_t k = 0; k < nd; k++) {
        if (!isfinite(s[k]))
            return diffsde_i_fail(ctx, DIFFSDE_ENONFINITE,
                                  "%s: score callback returned %g at sample %zu, coordinate %zu, "
                                  "t=%.17g",
                                  name, s[k], k / d, k % d, t[k / d]);
    }
    if (score->param != DIFFSDE_PARAM_SCORE) {
        diffsde_sde_coefs c = {0};
        for (size_t i = 0; i < n; i++) {
            if (i == 0 || t[i] != c.t)
                diffsde_sde_coefs_at(sde, t[i], &c);
            diffsde_i_param_convert_row(score->param, DIFFSDE_PARAM_SCORE, c.alpha, c.sigma, d,
                                        x + i * d, s + i * d, s + i * d);
        }
    }
    return DIFFSDE_OK;
}

int diffsde_score_set_logp(diffsde_score *score, diffsde_logp_fn fn)
{
    if (!score)
        return DIFFSDE_ENULL;
    score->logp = fn;
    return DIFFSDE_OK;
}

int diffsde_score_has_logp(const diffsde_score *score)
{
    return score && score->logp ? 1 : 0;
}

/* The checks shared by the per-row callbacks (log-density, divergence) before the call: the
 * shape, the callback's presence, the pointers. Returns DIFFSDE_OK with *empty = 1 when n = 0
 * (nothing to do). `what` names the callback, `setter` the function that installs it. */
static int row_callback_prologue(const diffsde_score *score, const char *name, size_t n, size_t d,
                                 int present, const char *what, const char *setter,
                                 const double *t, const double *x, const double *out,
                                 const char *outname, int *empty)
{
    diffsde_ctx *ctx = score->ctx;
    *empty = 0;
    if (d == 0)
        return diffsde_i_fail(ctx, DIFFSDE_ESIZE, "%s: dimension d must be >= 1", name);
    size_t nd;
    if (diffsde_i_mul_size(n, d, &nd) != 0)
        return diffsde_i_fail(ctx, DIFFSDE_ESIZE, "%s: n*d overflows (n=%zu, d=%zu)", name, n,
                              d);
    if (!present)
        return diffsde_i_fail(ctx, DIFFSDE_EUNSUPPORTED, "%s: the model has no %s callback (%s)",
                              name, what, setter);
    if (n == 0) {
        *empty = 1;
        return DIFFSDE_OK;
    }
    if (!t || !x || !out)
        return diffsde_i_fail(ctx, DIFFSDE_ENULL, "%s: %s is NULL", name,
                              !t ? "t" : !x ? "x" : outname);
    return DIFFSDE_OK;
}

/* The callback's status, then its n outputs, checked after the call. */
static int row_callback_result(const diffsde_score *score, const char *name, const char *what,
                               int cb, size_t n, const double *t, const double *out)
{
    diffsde_ctx *ctx = score->ctx;
    if (cb < 0)
        return diffsde_i_fail(ctx, DIFFSDE_ECALLBACK, "%s: %s callback returned %d (fatal)", name,
                              what, cb);
    if (cb > 0)
        return diffsde_i_fail(ctx, DIFFSDE_ERETRY, "%s: %s callback returned %d (recoverable)",
                              name, what, cb);
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(out[i]))
            return diffsde_i_fail(ctx, DIFFSDE_ENONFINITE,
                                  "%s: %s callback returned %g at sample %zu, t=%.17g", name, what,
                                  out[i], i, t[i]);
    }
    return DIFFSDE_OK;
}

int diffsde_score_eval_logp(const diffsde_score *score, size_t n, size_t d, const double *t,
                            const double *x, double *logp)
{
    static const char name[] = "diffsde_score_eval_logp";
    if (!score)
        return DIFFSDE_ENULL;
    int empty, st = row_callback_prologue(score, name, n, d, score->logp != NULL, "log-density",
                                          "diffsde_score_set_logp", t, x, logp, "logp", &empty);
    if (st != DIFFSDE_OK || empty)
        return st;
    /* Without the SDE only t >= 0 and finiteness can be checked; do it before the call. */
    for (size_t i = 0; i < n; i++) {
        if (!(t[i] >= 0.0 && isfinite(t[i])))
            return diffsde_i_fail(score->ctx, DIFFSDE_EDOM,
                                  "%s: sample %zu: t=%.17g is not a finite time >= 0", name, i,
                                  t[i]);
    }
    return row_callback_result(score, name, "log-density",
                               score->logp(n, d, t, x, logp, score->user), n, t, logp);
}

int diffsde_score_set_divergence(diffsde_score *score, diffsde_div_fn fn)
{
    if (!score)
        return DIFFSDE_ENULL;
    score->div = fn;
    return DIFFSDE_OK;
}

int diffsde_score_has_divergence(const diffsde_score *score)
{
    return score && score->div ? 1 : 0;
}

int diffsde_score_eval_divergence(const diffsde_score *score, const diffsde_sde *sde, size_t n,
                                  size_t d, const double *t, const double *x, double *div)
{
    static const char name[] = "diffsde_score_eval_divergence";
    if (!score)
        return DIFFSDE_ENULL;
    if (!sde)
        return diffsde_i_fail(score->ctx, DIFFSDE_ENULL, "%s: the SDE is NULL", name);
    int empty, st = row_callback_prologue(score, name, n, d, score->div != NULL, "divergence",
                                          "diffsde_score_set_divergence", t, x, div, "div",
                                          &empty);
    if (st != DIFFSDE_OK || empty)
        return st;
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && t[i] == t[i - 1])
            continue;
        diffsde_sde_coefs c;
        int rc = diffsde_sde_coefs_at(sde, t[i], &c);
        if (rc != DIFFSDE_OK)
            return diffsde_i_fail(score->ctx, rc, "%s: sample %zu: t=%.17g: %s", name, i, t[i],
                                  diffsde_strerror(rc));
    }
    return row_callback_result(score, name, "divergence",
                               score->div(n, d, t, x, div, score->user), n, t, div);
}
