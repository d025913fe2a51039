/*
 * Conversions between model parametrisations. The pivot is the noise prediction ε̂ because
 * it is defined at every t, including σ(t) = 0 where the score is not.
 */
#include <math.h>
#include <string.h>

#include "core/internal.h"
#include "diffsde/score.h"

const char *diffsde_param_name(diffsde_param param)
{
    switch (param) {
    case DIFFSDE_PARAM_SCORE:
        return "score";
    case DIFFSDE_PARAM_EPS:
        return "eps";
    case DIFFSDE_PARAM_X0:
        return "x0";
    case DIFFSDE_PARAM_V:
        return "v";
    }
    return "";
}

int diffsde_param_from_name(const char *name, diffsde_param *param)
{
    if (!name || !param)
        return DIFFSDE_ENULL;
    static const struct {
        const char *name;
        diffsde_param param;
    } names[] = {{"score", DIFFSDE_PARAM_SCORE}, {"eps", DIFFSDE_PARAM_EPS},
                 {"epsilon", DIFFSDE_PARAM_EPS}, {"noise", DIFFSDE_PARAM_EPS},
                 {"x0", DIFFSDE_PARAM_X0},       {"data", DIFFSDE_PARAM_X0},
                 {"v", DIFFSDE_PARAM_V}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcmp(name, names[i].name) == 0) {
            *param = names[i].param;
            return DIFFSDE_OK;
        }
    }
    return DIFFSDE_EPARAM;
}

static int valid_param(int p)
{
    return p >= DIFFSDE_PARAM_SCORE && p <= DIFFSDE_PARAM_V;
}

/* Whether converting from `from` to `to` divides by σ. */
static int needs_sigma(diffsde_param from, diffsde_param to)
{
    if (from == to)
        return 0;
    return from == DIFFSDE_PARAM_X0 || to == DIFFSDE_PARAM_SCORE;
}

/* ε̂ from a value in `from`, for one coordinate. */
static double to_eps(diffsde_param from, double a, double s, double x, double v)
{
    switch (from) {
    case DIFFSDE_PARAM_SCORE:
        return -s * v;
    case DIFFSDE_PARAM_EPS:
        return v;
    case DIFFSDE_PARAM_X0:
        return (x - a * v) / s;
    case DIFFSDE_PARAM_V:
        return (s * x + a * v) / (a * a + s * s);
    }
    return NAN;
}

/* A value in `to` from ε̂, for one coordinate. */
static double from_eps(diffsde_param to, double a, double s, double x, double e)
{
    switch (to) {
    case DIFFSDE_PARAM_SCORE:
        return -e / s;
    case DIFFSDE_PARAM_EPS:
        return e;
    case DIFFSDE_PARAM_X0:
        return (x - s * e) / a;
    case DIFFSDE_PARAM_V:
        return ((a * a + s * s) * e - s * x) / a;
    }
    return NAN;
}

void diffsde_i_param_convert_row(diffsde_param from, diffsde_param to, double alpha,
                                 double sigma, size_t d, const double *x, const double *in,
                                 double *out)
{
    if (from == to) {
        if (out != in)
            memmove(out, in, d * sizeof *out);
        return;
    }
    for (size_t j = 0; j < d; j++) {
        double e = to_eps(from, alpha, sigma, x[j], in[j]);
        out[j] = from_eps(to, alpha, sigma, x[j], e);
    }
}

int diffsde_param_convert(const diffsde_sde *sde, diffsde_param from, diffsde_param to, size_t n,
                          size_t d, const double *t, const double *x, const double *in,
                          double *out)
{
    static const char fn[] = "diffsde_param_convert";
    if (!sde)
        return DIFFSDE_ENULL;
    diffsde_ctx *ctx = diffsde_i_sde_ctx(sde);
    if (!valid_param((int)from) || !valid_param((int)to))
        return diffsde_i_fail(ctx, DIFFSDE_EPARAM, "%s: invalid parametrisation (from %d, to %d)",
                              fn, (int)from, (int)to);
    if (d == 0)
        return diffsde_i_fail(ctx, DIFFSDE_ESIZE, "%s: dimension d must be >= 1", fn);
    size_t nd;
    if (diffsde_i_mul_size(n, d, &nd) != 0)
        return diffsde_i_fail(ctx, DIFFSDE_ESIZE, "%s: n*d overflows (n=%zu, d=%zu)", fn, n, d);
    if (n == 0)
        return DIFFSDE_OK;
    if (!t || !x || !in || !out)
        return diffsde_i_fail(ctx, DIFFSDE_ENULL, "%s: t, x, in and out must not be NULL", fn);

    /* Check every time first so that a failure leaves `out` untouched. */
    for (size_t i = 0; i < n; i++) {
        diffsde_sde_coefs c;
        int rc = diffsde_sde_coefs_at(sde, t[i], &c);
        if (rc != DIFFSDE_OK)
            return diffsde_i_fail_prefix(ctx, rc, "%s: sample %zu", fn, i);
        if (needs_sigma(from, to) && !(c.sigma > 0))
            return diffsde_i_fail(ctx, DIFFSDE_EDOM,
                                  "%s: sample %zu: converting %s to %s divides by sigma(t), "
                                  "which is 0 at t=%.17g",
                                  fn, i, diffsde_param_name(from), diffsde_param_name(to), t[i]);
    }
    diffsde_sde_coefs c = {0};
    for (size_t i = 0; i < n; i++) {
        if (i == 0 || t[i] != c.t)
            diffsde_sde_coefs_at(sde, t[i], &c);
        diffsde_i_param_convert_row(from, to, c.alpha, c.sigma, d, x + i * d, in + i * d,
                                    out + i * d);
    }
    return DIFFSDE_OK;
}
