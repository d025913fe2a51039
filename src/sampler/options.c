/*
 * Sampler options: defaults, the names of methods, predictors and correctors, and the
 * validation applied by diffsde_sampler_new() (every message names the option and its value).
 */
#include <math.h>
#include <string.h>

#include "sampler/sampler_impl.h"

void diffsde_sampler_options_default(diffsde_sampler_options *opt)
{
    if (!opt)
        return;
    opt->method = DIFFSDE_SAMPLER_PC;
    opt->predictor = DIFFSDE_PREDICTOR_REVERSE_DIFFUSION;
    opt->corrector = DIFFSDE_CORRECTOR_LANGEVIN;
    opt->steps = 1000;
    opt->corrector_steps = 1;
    opt->snr = NAN;
    opt->eps = NAN;
    opt->denoise = 1;
    opt->reference = 0;
    opt->batch_norms = 0;
    opt->rtol = 0.05;
    opt->atol = 0.01;
    opt->max_steps = 100000;
}

static const char *const method_names[] = {"pc", "adaptive-sde"};
static const char *const predictor_names[] = {"none", "euler-maruyama", "reverse-diffusion",
                                              "ancestral"};
static const char *const corrector_names[] = {"none", "langevin", "ald", "mala"};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

const char *diffsde_sampler_method_name(diffsde_sampler_method m)
{
    return (unsigned)m < COUNT(method_names) ? method_names[m] : "";
}

const char *diffsde_predictor_name(diffsde_predictor p)
{
    return (unsigned)p < COUNT(predictor_names) ? predictor_names[p] : "";
}

const char *diffsde_corrector_name(diffsde_corrector c)
{
    return (unsigned)c < COUNT(corrector_names) ? corrector_names[c] : "";
}

/* Index of name in names[0..count), or -1. */
static int find_name(const char *name, const char *const *names, size_t count)
{
    for (size_t i = 0; i < count; i++)
        if (strcmp(name, names[i]) == 0)
            return (int)i;
    return -1;
}

int diffsde_sampler_method_from_name(const char *name, diffsde_sampler_method *m)
{
    if (!name || !m)
        return DIFFSDE_ENULL;
    int i = find_name(name, method_names, COUNT(method_names));
    if (i < 0)
        return DIFFSDE_EPARAM;
    *m = (diffsde_sampler_method)i;
    return DIFFSDE_OK;
}

int diffsde_predictor_from_name(const char *name, diffsde_predictor *p)
{
    if (!name || !p)
        return DIFFSDE_ENULL;
    int i = find_name(name, predictor_names, COUNT(predictor_names));
    if (i < 0)
        return DIFFSDE_EPARAM;
    *p = (diffsde_predictor)i;
    return DIFFSDE_OK;
}

int diffsde_corrector_from_name(const char *name, diffsde_corrector *c)
{
    if (!name || !c)
        return DIFFSDE_ENULL;
    int i = find_name(name, corrector_names, COUNT(corrector_names));
    if (i < 0)
        return DIFFSDE_EPARAM;
    *c = (diffsde_corrector)i;
    return DIFFSDE_OK;
}

/* A boolean option must be 0 or 1. */
static int check_flag(diffsde_ctx *ctx, const char *fn, const char *key, int v)
{
    if (v != 0 && v != 1)
        return diffsde_i_fail(ctx, DIFFSDE_EPARAM, "%s: option %s (%d) must be 0 or 1", fn, key,
                              v);
    return DIFFSDE_OK;
}

int diffsde_i_sampler_options_resolve(diffsde_ctx *ctx, const diffsde_sde *sde,
                                      const diffsde_sampler_options *in,
                                      diffsde_sampler_options *out, const char *fn)
{
    diffsde_sampler_options o = *in;
    if (diffsde_sampler_method_name(o.method)[0] == '\0')
        return diffsde_i_fail(ctx, DIFFSDE_EPARAM, "%s: option method (%d) is not a method",
                              fn, (int)o.method);
    if (diffsde_predictor_name(o.predictor)[0] == '\0')
        return diffsde_i_fail(ctx, DIFFSDE_EPARAM,
                              "%s: option predictor (%d) is not a predictor", fn,
                              (int)o.predictor);
    if (diffsde_corrector_name(o.corrector)[0] == '\0')
        return diffsde_i_fail(ctx, DIFFSDE_EPARAM,
                              "%s: option corrector (%d) is not a corrector", fn,
                              (int)o.corrector);
    /* Noise step indices must stay below 2^32: the predictor uses step i < N, the corrector
     * step i·K + k < N·K. */
    if (o.steps < 2 || (uint64_t)o.steps > DIFFSDE_NOISE_MAX_STEPS)
        return diffsde_i_fail(ctx, DIFFSDE_EPARAM,
                              "%s: option steps (%zu) must be in [2, 2^32]", fn, o.steps);
    if (o.corrector_steps < 1)
        return diffsde_i_fail(ctx, DIFFSDE_EPARAM,
                              "%s: option corrector_steps (%zu) must be >= 1", fn,
                              o.corrector_steps);
    if ((uint64_t)o.corrector_steps > DIFFSDE_NOISE_MAX_STEPS / (uint64_t)o.steps)
        return diffsde_i_fail(ctx, DIFFSDE_EPARAM,
                              "%s: option corrector_steps (%zu) times steps (%zu) must not "
                              "exceed 2^32 (the noise step index)",
                              fn, o.corrector_steps, o.steps);
    if (isnan(o.snr))
        o.snr = diffsde_sde_get_kind(sde) == DIFFSDE_SDE_VE ? 0.16 : 0.01;
    else if (!(o.snr > 0.0) || !isfinite(o.snr))
        return diffsde_i_fail(ctx, DIFFSDE_EPARAM,
                              "%s: option snr (%g) must be finite and > 0 (NaN: the default)",
                              fn, o.snr);
    double T = 0.0;
    diffsde_sde_time_range(sde, NULL, &T);
    if (isnan(o.eps)) {
        int st = diffsde_sde_default_eps(sde, &o.eps);
        if (st != DIFFSDE_OK)
            return diffsde_i_fail(ctx, st, "%s: cannot get the SDE's default eps", fn);
    } else if (!(o.eps > 0.0 && o.eps < T)) {
        return diffsde_i_fail(ctx, DIFFSDE_EPARAM,
                              "%s: option eps (%g) must be in (0, T) = (0, %g) (NaN: the "
                              "default)",
                              fn, o.eps, T);
    }
    int st;
    if ((st = check_flag(ctx, fn, "denoise", o.denoise)) != DIFFSDE_OK ||
        (st = check_flag(ctx, fn, "reference", o.reference)) != DIFFSDE_OK ||
        (st = check_flag(ctx, fn, "batch_norms", o.batch_norms)) != DIFFSDE_OK)
        return st;
    if (o.reference)
        o.batch_norms = 1;
    if (!(o.rtol > 0.0) || !isfinite(o.rtol))
        return diffsde_i_fail(ctx, DIFFSDE_EPARAM, "%s: option rtol (%g) must be finite and > 0",
                              fn, o.rtol);
    if (!(o.atol > 0.0) || !isfinite(o.atol))
        return diffsde_i_fail(ctx, DIFFSDE_EPARAM, "%s: option atol (%g) must be finite and > 0",
                              fn, o.atol);
    if (o.max_steps < 1)
        return diffsde_i_fail(ctx, DIFFSDE_EPARAM, "%s: option max_steps (%zu) must be >= 1", fn,
                              o.max_steps);
    *out = o;
    return DIFFSDE_OK;
}
